/*
 * test_cli_fleet.c - `cx --redis URL` (fleet mode) from the command line, against a real
 * redis-server (t_redis.h): a bad URL is refused naming --redis, before any query; a refused
 * connection and a wrong password are error 1 naming the setting, unless CORTEX_REDIS_OPTIONAL=1,
 * which runs without the fleet and says so once on stderr; one cx's answer is the next cx's
 * cache hit of the "fleet" tier although their data directories (SQLite caches) differ; Redis
 * killed between runs and in the middle of one: the run completes, the notice is printed once,
 * and --json's "fleet" object says redis_up false.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cx/clock.h"
#include "mock/server.h"
#include "t_cli.h"
#include "t_mock.h"
#include "t_redis.h"

static struct t_redis g_rs; /* this test's server, started by fleet_setup */

static int fleet_setup(void **state)
{
    const char *vars[] = {"CORTEX_REDIS_URL", "CORTEX_REDIS_PASSWORD", "CORTEX_REDIS_PREFIX",
                          "CORTEX_REDIS_OPTIONAL", "CORTEX_MAX_RETRIES"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setup(state);
    t_redis_start(&g_rs, NULL);
    return 0;
}

static int fleet_teardown(void **state)
{
    t_redis_stop(&g_rs);
    unsetenv("CORTEX_REDIS_OPTIONAL");
    return teardown(state);
}

/* How many times needle occurs in s. */
static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The --json output's "fleet" object (the caller deletes o). */
static cJSON *fleet_of(cJSON *o)
{
    cJSON *fl = get(o, "fleet");
    assert_true(cJSON_IsObject(fl));
    return fl;
}

static double num(const cJSON *o, const char *k)
{
    cJSON *v = get(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static int redis_up(const cJSON *fl)
{
    cJSON *v = get(fl, "redis_up");
    assert_true(cJSON_IsBool(v));
    return cJSON_IsTrue(v);
}

static cJSON *item0(cJSON *o)
{
    cJSON *it = cJSON_GetArrayItem(get(o, "packages"), 0);
    assert_non_null(it);
    return it;
}

/* A bad URL is a bad command line: exit 2 naming --redis and what is wrong, before the
 * embedded mock starts or any query is sent; under --json the one object says the same. */
static void test_bad_url(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"notaurl", "redis://127.0.0.1:99999", "redis://:6379",
                         "redis://h/notadb"};
    const char *why[] = {"unknown scheme", "port must be a number", "no host",
                         "database number"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run_cx(f, "--redis", bad[i], "install", "nginx", NULL);
        if (rc != CX_EXIT_USAGE || strstr(f->err, "--redis") == NULL ||
            strstr(f->err, why[i]) == NULL)
            fail_msg("--redis '%s': exit %d, expected %d naming --redis and \"%s\": %s", bad[i],
                     rc, CX_EXIT_USAGE, why[i], f->err);
        assert_null(strstr(f->err, "embedded mock"));
        assert_string_equal(f->out, "");
    }
    int rc = run_cx(f, "--json", "--redis", "notaurl", "install", "nginx", NULL);
    assert_int_equal(rc, CX_EXIT_USAGE);
    cJSON *o = parse_out(f);
    assert_non_null(strstr(get(o, "error")->valuestring, "--redis"));
    assert_int_equal((int)num(o, "exit_code"), CX_EXIT_USAGE);
    cJSON_Delete(o);
}

/* Nothing listens: error 1 naming the setting, no plan printed. CORTEX_REDIS_OPTIONAL=1: the
 * run works on local limits and cache and says so once on stderr; --json says redis_up false. */
static void test_refused(void **state)
{
    struct fx *f = *state;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", t_redis_free_port());
    int rc = run_cx(f, "--redis", url, "install", "nginx", NULL);
    if (rc != CX_EXIT_ERROR || strstr(f->err, "CORTEX_REDIS_URL") == NULL)
        fail_msg("refused %s: exit %d, expected 1 naming CORTEX_REDIS_URL: %s", url, rc, f->err);
    assert_non_null(strstr(f->err, url + 8)); /* the address it tried */
    assert_non_null(strstr(f->err, "(from --redis)")); /* where the setting came from */
    assert_null(strstr(f->out, "apt-get install"));

    setenv("CORTEX_REDIS_OPTIONAL", "1", 1);
    rc = run_cx(f, "--redis", url, "install", "nginx", NULL);
    if (rc != 0)
        fail_msg("optional: exit %d: %s", rc, f->err);
    assert_non_null(strstr(f->out, "apt-get install -y nginx"));
    assert_int_equal(count(f->err, "falling back to local limits and cache"), 1);
    assert_null(strstr(f->out, "falling back")); /* a note, never inside stdout */
    rc = run_cx(f, "--json", "--redis", url, "install", "curl", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(count(f->err, "falling back to local limits and cache"), 1);
    cJSON *o = parse_out(f);
    cJSON *fl = fleet_of(o);
    assert_false(redis_up(fl));
    assert_int_equal((int)num(fl, "cache_hits"), 0);
    assert_string_equal(get(item0(o), "status")->valuestring, "ok");
    cJSON_Delete(o);
    unsetenv("CORTEX_REDIS_OPTIONAL");
}

/* A wrong password: error 1 naming the password settings, the password itself never printed;
 * the right one works. */
static void test_wrong_password(void **state)
{
    struct fx *f = *state;
    struct t_redis auth;
    t_redis_start(&auth, "requirepass s3cret-pw\n");
    char url[128];
    snprintf(url, sizeof url, "redis://:wrong-pw-77@127.0.0.1:%d", auth.port);
    int rc = run_cx(f, "--redis", url, "install", "nginx", NULL);
    if (rc != CX_EXIT_ERROR || strstr(f->err, "refused the password") == NULL ||
        strstr(f->err, "CORTEX_REDIS_URL") == NULL)
        fail_msg("wrong password: exit %d, expected 1 naming the password: %s", rc, f->err);
    assert_null(strstr(f->err, "wrong-pw-77"));
    assert_null(strstr(f->out, "wrong-pw-77"));
    /* No password at all against a server that wants one: says which settings to set. */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", auth.port);
    rc = run_cx(f, "--redis", url, "install", "nginx", NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, "CORTEX_REDIS_PASSWORD"));
    snprintf(url, sizeof url, "redis://:s3cret-pw@127.0.0.1:%d", auth.port);
    rc = run_cx(f, "--json", "--redis", url, "install", "nginx", NULL);
    if (rc != 0)
        fail_msg("right password: exit %d: %s", rc, f->err);
    cJSON *o = parse_out(f);
    assert_true(redis_up(fleet_of(o)));
    cJSON_Delete(o);
    assert_null(strstr(f->out, "s3cret-pw"));
    assert_null(strstr(f->err, "s3cret-pw"));
    t_redis_stop(&auth);
}

/* Two cx processes with their own data directories (their own SQLite caches) on one Redis: the
 * first's answer is the second's cache hit, of the fleet tier, with no plan asked again; the
 * second's next run finds it in its own SQLite file. Without --redis a third directory misses:
 * the hit came through Redis. The embedded mock has a new port every run; its answers are still
 * found (the cache names it "cx-embedded-mock"). */
static void test_fleet_cache_across_dirs(void **state)
{
    struct fx *f = *state;
    char *dir_b = t_path(f->dir, "b"), *dir_c = t_path(f->dir, "c");
    int rc = run_cx(f, "--json", "--redis", g_rs.url, "install", "nginx", NULL);
    if (rc != 0)
        fail_msg("first run: exit %d: %s", rc, f->err);
    cJSON *o = parse_out(f);
    assert_false(cJSON_IsTrue(get(item0(o), "from_cache")));
    cJSON *fl = fleet_of(o);
    assert_true(redis_up(fl));
    assert_int_equal((int)num(fl, "cache_hits"), 0);
    assert_int_equal((int)num(fl, "cache_puts"), 1);
    cJSON *cmds = get(item0(o), "commands");
    assert_true(cJSON_GetArraySize(cmds) > 0);
    char *first = cJSON_PrintUnformatted(cmds);
    cJSON_Delete(o);

    rc = run_cx(f, "--json", "--redis", g_rs.url, "--data-dir", dir_b, "install", "nginx", NULL);
    if (rc != 0)
        fail_msg("second run: exit %d: %s", rc, f->err);
    o = parse_out(f);
    cJSON *it = item0(o);
    assert_true(cJSON_IsTrue(get(it, "from_cache")));
    assert_string_equal(get(it, "cache_tier")->valuestring, "fleet");
    char *second = cJSON_PrintUnformatted(get(it, "commands"));
    assert_string_equal(second, first); /* the same plan */
    fl = fleet_of(o);
    assert_true(redis_up(fl));
    assert_int_equal((int)num(fl, "cache_hits"), 1);
    assert_int_equal((int)num(fl, "cache_puts"), 0);
    cJSON_Delete(o);

    rc = run_cx(f, "--json", "--redis", g_rs.url, "--data-dir", dir_b, "install", "nginx", NULL);
    assert_int_equal(rc, 0);
    o = parse_out(f);
    assert_string_equal(get(item0(o), "cache_tier")->valuestring, "local");
    assert_int_equal((int)num(fleet_of(o), "cache_hits"), 0);
    cJSON_Delete(o);

    rc = run_cx(f, "--json", "--data-dir", dir_c, "install", "nginx", NULL);
    assert_int_equal(rc, 0);
    o = parse_out(f);
    assert_false(cJSON_IsTrue(get(item0(o), "from_cache")));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "fleet")); /* no fleet, no fleet object */
    cJSON_Delete(o);
    cJSON_free(first);
    cJSON_free(second);
    free(dir_b);
    free(dir_c);
}

/* Redis killed after one run: the next is error 1 unless optional; optional, it completes on
 * local limits and cache, with the notice once and redis_up false. Restarted, the fleet is back. */
static void test_killed_between_runs(void **state)
{
    struct fx *f = *state;
    char *dir_b = t_path(f->dir, "b");
    int rc = run_cx(f, "--json", "--redis", g_rs.url, "install", "nginx", NULL);
    assert_int_equal(rc, 0);
    t_redis_kill(&g_rs);

    rc = run_cx(f, "--redis", g_rs.url, "--data-dir", dir_b, "install", "nginx", NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, "CORTEX_REDIS_URL"));

    setenv("CORTEX_REDIS_OPTIONAL", "1", 1);
    rc = run_cx(f, "--json", "--redis", g_rs.url, "--data-dir", dir_b, "install", "nginx", NULL);
    if (rc != 0)
        fail_msg("optional, Redis down: exit %d: %s", rc, f->err);
    assert_int_equal(count(f->err, "cx: Redis at"), 1);
    assert_int_equal(count(f->err, "is unavailable"), 1);
    cJSON *o = parse_out(f);
    cJSON *it = item0(o);
    assert_string_equal(get(it, "status")->valuestring, "ok");
    assert_false(cJSON_IsTrue(get(it, "from_cache"))); /* dir b's cache is empty, Redis gone */
    assert_false(redis_up(fleet_of(o)));
    cJSON_Delete(o);
    unsetenv("CORTEX_REDIS_OPTIONAL");

    t_redis_restart(&g_rs); /* empty again: no persistence */
    rc = run_cx(f, "--json", "--redis", g_rs.url, "--data-dir", dir_b, "install", "curl", NULL);
    if (rc != 0)
        fail_msg("restarted: exit %d: %s", rc, f->err);
    assert_int_equal(count(f->err, "cx: Redis at"), 0);
    o = parse_out(f);
    assert_true(redis_up(fleet_of(o)));
    assert_int_equal((int)num(fleet_of(o), "cache_puts"), 1);
    cJSON_Delete(o);
    free(dir_b);
}

struct cx_run {
    struct fx *f;
    const char *url, *base;
    int rc;
};

enum { MID_N = 16 };
static char g_mid_pkgs[MID_N][16];

static void *mid_run_main(void *arg)
{
    struct cx_run *u = arg;
    char *argv[64];
    int argc = 0;
    argv[argc++] = "cx";
    argv[argc++] = "--json";
    argv[argc++] = "--io";
    argv[argc++] = "thread";
    argv[argc++] = "--threads";
    argv[argc++] = "2";
    argv[argc++] = "--redis";
    argv[argc++] = (char *)u->url;
    argv[argc++] = "--base-url";
    argv[argc++] = (char *)u->base;
    argv[argc++] = "install";
    for (int i = 0; i < MID_N; i++)
        argv[argc++] = g_mid_pkgs[i];
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    if (out == NULL || err == NULL) {
        u->rc = -1;
        return NULL;
    }
    u->rc = cx_cli_main(argc, argv, out, err);
    free(u->f->out);
    free(u->f->err);
    u->f->out = slurp(out);
    u->f->err = slurp(err);
    return NULL;
}

static uint64_t api_requests(struct mock_server *m)
{
    struct mock_counts c;
    mock_server_counts(m, &c);
    return c.api_requests;
}

/* Redis killed in the middle of a run (after the first query reached the LLM, with 15 still to
 * send two at a time (--io thread), each at least 50 ms): every package is still answered,
 * each asked once, exit 0; the notice is printed once; --json's fleet object says redis_up
 * false. */
static void test_killed_mid_run(void **state)
{
    struct fx *f = *state;
    char base[256];
    struct mock_server *m = t_mock_start("latency = 50ms\n", 1.0, base, sizeof base);
    assert_non_null(m);
    setenv("OPENAI_API_KEY", "sk-fleet-test", 1);
    for (int i = 0; i < MID_N; i++)
        snprintf(g_mid_pkgs[i], sizeof g_mid_pkgs[i], "midpkg%d", i);
    struct cx_run u = {f, g_rs.url, base, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, mid_run_main, &u), 0);
    uint64_t dl = t_deadline_ms(20000);
    while (api_requests(m) < 1) {
        if (cx_deadline_expired(dl))
            break; /* the join below then reports what the run said */
        cx_sleep_ns(CX_NSEC_PER_MSEC / 2);
    }
    t_redis_kill(&g_rs);
    pthread_join(t, NULL);
    unsetenv("OPENAI_API_KEY");
    if (u.rc != 0)
        fail_msg("exit %d: %s%s", u.rc, f->out, f->err);
    assert_int_equal(api_requests(m), MID_N); /* each asked once */
    mock_server_stop(m);
    assert_int_equal(count(f->err, "cx: Redis at"), 1);
    assert_int_equal(count(f->err, "is unavailable"), 1);
    cJSON *o = parse_out(f);
    cJSON *pk = get(o, "packages");
    assert_int_equal(cJSON_GetArraySize(pk), MID_N);
    for (int i = 0; i < MID_N; i++)
        assert_string_equal(get(cJSON_GetArrayItem(pk, i), "status")->valuestring, "ok");
    cJSON *fl = fleet_of(o);
    assert_false(redis_up(fl));
    assert_true(num(fl, "outages") >= 1);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_url, fleet_setup, fleet_teardown),
        cmocka_unit_test_setup_teardown(test_refused, fleet_setup, fleet_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, fleet_setup, fleet_teardown),
        cmocka_unit_test_setup_teardown(test_fleet_cache_across_dirs, fleet_setup,
                                        fleet_teardown),
        cmocka_unit_test_setup_teardown(test_killed_between_runs, fleet_setup, fleet_teardown),
        cmocka_unit_test_setup_teardown(test_killed_mid_run, fleet_setup, fleet_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
