/*
 * test_cli.c - the `cx` command run in-process (cx_cli_main) with its output captured: install
 * with --json (plan, rejected, cache_hits, timings), the cache hit on the second run, both I/O
 * designs, a dangerous plan refused (exit 3) through --base-url, usage errors (exit 2), bad
 * package names, missing diagnose files and unwritable data directories named in the message,
 * --execute refused without a terminal, hwcheck, cache stats/clear and history; the argument
 * list as packages (one argument, one package) and the data directory's preparation (both moved
 * here from test_pipeline.c with the code they test).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cx/pipeline.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

#include "t_cli.h"

static void test_install_json_and_cache(void **state)
{
    struct fx *f = *state;
    int rc = run_cx(f, "install", "nginx", "redis", "postgresql", "docker", "nodejs", "--json",
                    "--time-scale", "0.01", "--mock-latency", "100ms", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, f->err);
    assert_non_null(strstr(f->err, "no API key set; using the embedded mock LLM server at http://127.0.0.1:"));
    cJSON *o = parse_out(f);
    cJSON *cmds = get(get(o, "plan"), "commands");
    assert_true(cJSON_IsArray(cmds));
    assert_true(cJSON_GetArraySize(cmds) >= 6);
    assert_string_equal(cJSON_GetArrayItem(cmds, 0)->valuestring, "sudo apt-get update");
    cJSON *e;
    int updates = 0;
    cJSON_ArrayForEach(e, cmds)
    {
        assert_true(cJSON_IsString(e));
        updates += strstr(e->valuestring, "apt-get update") != NULL;
    }
    assert_int_equal(updates, 1);
    assert_int_equal(cJSON_GetArraySize(get(o, "rejected")), 0);
    assert_int_equal(get(o, "cache_hits")->valueint, 0);
    cJSON *t = get(o, "timings");
    const char *tk[] = {"parse_s", "llm_s", "merge_s", "apt_s", "total_s"};
    for (size_t i = 0; i < 5; i++)
        assert_true(cJSON_IsNumber(get(t, tk[i])));
    assert_int_equal(cJSON_GetArraySize(get(o, "packages")), 5);
    char *first_plan = cJSON_PrintUnformatted(cmds);
    cJSON_Delete(o);

    /* The database was created in the data directory. */
    char *db = t_path(f->dir, CX_DB_FILE);
    struct stat st;
    assert_int_equal(stat(db, &st), 0);
    free(db);

    /* Second run: every package from the cache, the same plan, with the other I/O design. */
    rc = run_cx(f, "--json", "--io", "hybrid", "install", "nginx", "redis", "postgresql",
                "docker", "nodejs", NULL);
    assert_int_equal(rc, 0);
    o = parse_out(f);
    assert_int_equal(get(o, "cache_hits")->valueint, 5);
    assert_string_equal(get(o, "io_design")->valuestring, "hybrid");
    char *second_plan = cJSON_PrintUnformatted(get(get(o, "plan"), "commands"));
    assert_string_equal(first_plan, second_plan);
    cJSON_Delete(o);
    cJSON_free(first_plan);
    cJSON_free(second_plan);

    /* Another server (standing for a real API, same provider and model): the embedded mock's
     * answers are not served to it, since cache keys name the endpoint. */
    char url[256];
    struct mock_server *s = t_mock_start(NULL, 0.01, url, sizeof url);
    assert_non_null(s);
    rc = run_cx(f, "--json", "--base-url", url, "install", "nginx", "redis", "postgresql",
                "docker", "nodejs", NULL);
    assert_int_equal(rc, 0);
    o = parse_out(f);
    assert_int_equal(get(o, "cache_hits")->valueint, 0);
    cJSON_Delete(o);
    mock_server_stop(s);

    /* cache stats sees both servers' five entries and one lookup per query (10 misses, 5 hits);
     * clear empties it. */
    assert_int_equal(run_cx(f, "cache", "stats", "--json", NULL), 0);
    o = parse_out(f);
    assert_int_equal(get(o, "entries")->valueint, 10);
    assert_int_equal(get(o, "hits")->valueint, 5);
    assert_int_equal(get(o, "misses")->valueint, 10);
    cJSON_Delete(o);
    assert_int_equal(run_cx(f, "cache", "clear", NULL), 0);
    assert_non_null(strstr(f->out, "Cleared 10"));
    assert_int_equal(run_cx(f, "cache", "stats", "--json", NULL), 0);
    o = parse_out(f);
    assert_int_equal(get(o, "entries")->valueint, 0);
    cJSON_Delete(o);
}

/* Thread-local and hybrid designs print the same plan (no cache, so both really ask). */
static void test_io_designs_identical(void **state)
{
    struct fx *f = *state;
    char *plans[2];
    const char *designs[2] = {"thread", "hybrid"};
    for (int i = 0; i < 2; i++) {
        int rc = run_cx(f, "install", "nginx", "redis", "postgresql", "docker", "nodejs",
                        "--json", "--no-cache", "--io", designs[i], "--mode", "gil", NULL);
        assert_int_equal(rc, 0);
        cJSON *o = parse_out(f);
        assert_int_equal(get(o, "cache_hits")->valueint, 0);
        assert_string_equal(get(o, "mode")->valuestring, "gil");
        plans[i] = cJSON_PrintUnformatted(get(o, "packages"));
        /* latencies differ run to run; compare the plan only */
        cJSON_free(plans[i]);
        plans[i] = cJSON_PrintUnformatted(get(get(o, "plan"), "commands"));
        cJSON_Delete(o);
    }
    assert_string_equal(plans[0], plans[1]);
    cJSON_free(plans[0]);
    cJSON_free(plans[1]);
}

/* A dangerous answer (scripted on a server the test owns, reached with --base-url) is refused:
 * exit 3, the reasons in "rejected", nothing run. Text mode says so too. */
static void test_dangerous_refused(void **state)
{
    struct fx *f = *state;
    char url[256];
    struct mock_server *s = t_mock_start_opts(NULL, url, sizeof url);
    assert_non_null(s);
    t_mock_script(s, "next 1 dangerous");
    int rc = run_cx(f, "--base-url", url, "install", "docker", "--json", "--simulate", "1ms",
                    NULL);
    assert_int_equal(rc, CX_EXIT_REFUSED);
    assert_null(strstr(f->err, "embedded mock")); /* it used the given URL */
    cJSON *o = parse_out(f);
    cJSON *rej = get(o, "rejected");
    assert_int_equal(cJSON_GetArraySize(rej), 1);
    assert_string_equal(get(cJSON_GetArrayItem(rej, 0), "package")->valuestring, "docker");
    assert_true(cJSON_GetArraySize(get(cJSON_GetArrayItem(rej, 0), "reasons")) >= 1);
    assert_true(cJSON_IsTrue(get(o, "refused")));
    assert_int_equal(get(o, "exit_code")->valueint, CX_EXIT_REFUSED);
    cJSON_Delete(o);
    t_mock_script(s, "next 1 dangerous");
    rc = run_cx(f, "--base-url", url, "install", "nginx", NULL);
    assert_int_equal(rc, CX_EXIT_REFUSED);
    assert_non_null(strstr(f->out, "REJECTED"));
    assert_non_null(strstr(f->out, "Refused"));
    mock_server_stop(s);
}

/* Failed queries: some -> exit 4 with the others' plan; all -> exit 1. */
static void test_failed_queries(void **state)
{
    struct fx *f = *state;
    char url[256];
    struct mock_server *s = t_mock_start_opts(NULL, url, sizeof url);
    assert_non_null(s);
    /* one attempt; with a base URL every provider is that server, which is not tried again
     * under another provider's name: one 500 fails the query */
    setenv("CORTEX_MAX_RETRIES", "0", 1);
    t_mock_script(s, "next 1 500");
    int rc = run_cx(f, "--base-url", url, "--mode", "serial", "--no-cache", "install", "nginx",
                    "redis", "--json", NULL);
    assert_int_equal(rc, CX_EXIT_PARTIAL);
    cJSON *o = parse_out(f);
    assert_int_equal(cJSON_GetArraySize(get(o, "failed")), 1);
    assert_string_equal(get(cJSON_GetArrayItem(get(o, "failed"), 0), "package")->valuestring,
                        "nginx");
    char *plan = cJSON_PrintUnformatted(get(o, "plan"));
    assert_non_null(strstr(plan, "redis-server"));
    assert_null(strstr(plan, "install -y nginx"));
    cJSON_free(plan);
    cJSON_Delete(o);
    t_mock_script(s, "next 1 500");
    rc = run_cx(f, "--base-url", url, "--no-cache", "install", "nginx", NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->out, "nginx: query failed"));
    unsetenv("CORTEX_MAX_RETRIES");
    mock_server_stop(s);
}

static void test_usage_errors(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run_cx(f, NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "no command"));
    assert_int_equal(run_cx(f, "install", "--bogus", "nginx", NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "--bogus"));
    assert_int_equal(run_cx(f, "frobnicate", NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "frobnicate"));
    assert_int_equal(run_cx(f, "install", NULL), CX_EXIT_USAGE);
    assert_int_equal(run_cx(f, "install", "nginx", "--threads", "0", NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "--threads '0'"));
    assert_int_equal(run_cx(f, "install", "nginx", "--simulate", "fast", NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "fast"));
    assert_int_equal(run_cx(f, "cache", "purge", NULL), CX_EXIT_USAGE);
    assert_int_equal(run_cx(f, "diagnose", "x", "--yes", NULL), CX_EXIT_USAGE);
    /* Package names are checked by the validator's rule, before anything starts. */
    assert_int_equal(run_cx(f, "install", "nginx", "red;is", NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "red;is"));
    assert_null(strstr(f->err, "embedded mock"));
    /* One argument is one package: a quoted pair is one bad name, quoted whole. */
    assert_int_equal(run_cx(f, "install", "nginx redis", NULL), CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "package 'nginx redis'"));
    assert_null(strstr(f->err, "embedded mock"));
    /* --help documents the exit codes. */
    assert_int_equal(run_cx(f, "--help", NULL), 0);
    assert_non_null(strstr(f->out, "Exit codes"));
    assert_non_null(strstr(f->out, "3  plan refused"));
}

static void test_execute_needs_confirmation(void **state)
{
    struct fx *f = *state;
    if (isatty(STDIN_FILENO))
        skip(); /* the refusal is for a stdin that is not a terminal */
    int rc = run_cx(f, "install", "nginx", "--execute", NULL);
    assert_int_equal(rc, CX_EXIT_REFUSED);
    assert_non_null(strstr(f->err, "--yes"));
    assert_string_equal(f->out, "");
}

static void test_diagnose_files(void **state)
{
    struct fx *f = *state;
    char *a = write_file(f, "a.log", "dpkg: error: dpkg was interrupted, you must manually run "
                                     "'sudo dpkg --configure -a'\n");
    char *b = write_file(f, "b.log", "Error: listen tcp :8080: bind: address already in use\n");
    int rc = run_cx(f, "diagnose", a, b, "--json", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, f->err);
    cJSON *o = parse_out(f);
    cJSON *items = get(o, "items");
    assert_int_equal(cJSON_GetArraySize(items), 2);
    assert_string_equal(get(cJSON_GetArrayItem(items, 0), "file")->valuestring, a);
    assert_string_equal(get(cJSON_GetArrayItem(items, 0), "status")->valuestring, "ok");
    assert_true(cJSON_IsString(get(cJSON_GetArrayItem(items, 1), "cause")));
    cJSON_Delete(o);
    /* Text mode prints a section per file with the cause. */
    assert_int_equal(run_cx(f, "diagnose", a, NULL), 0);
    assert_non_null(strstr(f->out, "cause:"));
    /* A missing file is named, and nothing is asked. */
    char *missing = t_path(f->dir, "nope.log");
    rc = run_cx(f, "diagnose", a, missing, NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, missing));
    assert_null(strstr(f->err, "embedded mock"));
    /* So is an empty one. */
    char *empty = write_file(f, "empty.log", " \n");
    assert_int_equal(run_cx(f, "diagnose", empty, NULL), CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, empty));
    assert_non_null(strstr(f->err, "empty"));
    free(empty);
    free(a);
    free(b);
    free(missing);
}

static void test_hwcheck_json(void **state)
{
    struct fx *f = *state;
    int rc = run_cx(f, "hwcheck", "--json", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, f->err);
    cJSON *o = parse_out(f);
    cJSON *items = get(o, "items");
    assert_int_equal(cJSON_GetArraySize(items), 4);
    assert_string_equal(get(cJSON_GetArrayItem(items, 0), "component")->valuestring, "cpu");
    assert_string_equal(get(cJSON_GetArrayItem(items, 3), "component")->valuestring, "gpu");
    cJSON_Delete(o);
}

static void test_unwritable_data_dir(void **state)
{
    struct fx *f = *state;
    /* A file where a directory should be: refused for everyone, root included. */
    char *file = write_file(f, "plain", "x");
    char *under = t_path(file, "cortex");
    setenv("CORTEX_DATA_DIR", under, 1);
    int rc = run_cx(f, "install", "nginx", NULL);
    setenv("CORTEX_DATA_DIR", f->dir, 1);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, under));
    assert_null(strstr(f->err, "embedded mock")); /* refused before anything started */
    /* Under --json the failure is still one JSON object naming the path. */
    setenv("CORTEX_DATA_DIR", under, 1);
    rc = run_cx(f, "install", "nginx", "--json", NULL);
    setenv("CORTEX_DATA_DIR", f->dir, 1);
    assert_int_equal(rc, CX_EXIT_ERROR);
    cJSON *o = parse_out(f);
    assert_non_null(strstr(get(o, "error")->valuestring, under));
    assert_int_equal(get(o, "exit_code")->valueint, CX_EXIT_ERROR);
    cJSON_Delete(o);
    /* --data-dir names it the same way. */
    rc = run_cx(f, "cache", "stats", "--data-dir", file, NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, file));
    free(under);
    free(file);
    if (geteuid() == 0)
        return; /* root writes anywhere: permission bits cannot be tested */
    char *ro = t_path(f->dir, "ro");
    assert_int_equal(mkdir(ro, 0500), 0);
    char *data = t_path(ro, "cortex");
    setenv("CORTEX_DATA_DIR", data, 1);
    rc = run_cx(f, "install", "nginx", NULL);
    setenv("CORTEX_DATA_DIR", f->dir, 1);
    chmod(ro, 0700);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, data));
    free(data);
    free(ro);
}

static void test_history_rows(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run_cx(f, "install", "nginx", "--json", NULL), 0);
    cJSON *o = parse_out(f);
    assert_true(cJSON_IsNumber(get(o, "history_id")));
    int id1 = get(o, "history_id")->valueint;
    cJSON_Delete(o);
    assert_int_equal(run_cx(f, "install", "redis", "nodejs", "--json", NULL), 0);
    o = parse_out(f);
    int id2 = get(o, "history_id")->valueint;
    assert_true(id2 > id1);
    cJSON_Delete(o);
    assert_int_equal(run_cx(f, "history", "--json", NULL), 0);
    o = parse_out(f);
    cJSON *runs = get(o, "runs");
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    /* dry runs: nothing executed */
    assert_int_equal(get(cJSON_GetArrayItem(runs, 0), "commands_run")->valueint, 0);
    cJSON_Delete(o);
    assert_int_equal(run_cx(f, "history", "--limit", "1", NULL), 0);
    assert_non_null(strstr(f->out, "RAN"));
    assert_non_null(strstr(f->out, "redis"));
    assert_null(strstr(f->out, "install nginx\n"));
}

/* Without CORTEX_DATA_DIR the database goes to $XDG_DATA_HOME/cortex, created on first use. */
static void test_xdg_data_dir(void **state)
{
    struct fx *f = *state;
    char *xdg = t_path(f->dir, "xdg");
    unsetenv("CORTEX_DATA_DIR");
    setenv("XDG_DATA_HOME", xdg, 1);
    int rc = run_cx(f, "install", "nginx", "-q", NULL);
    unsetenv("XDG_DATA_HOME");
    setenv("CORTEX_DATA_DIR", f->dir, 1);
    assert_int_equal(rc, 0);
    assert_string_equal(f->err, ""); /* -q: not even the mock note */
    char *db = t_path(xdg, "cortex/" CX_DB_FILE);
    struct stat st;
    assert_int_equal(stat(db, &st), 0);
    free(db);
    free(xdg);
}

/* On a terminal, progress ("[done/total] elapsed") goes to stderr; the result to stdout. */
static void test_progress_on_terminal(void **state)
{
    struct fx *f = *state;
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
        skip(); /* no pseudo-terminals here */
    int sfd = open(ptsname(m), O_WRONLY | O_NOCTTY);
    assert_true(sfd >= 0);
    FILE *tty = fdopen(sfd, "w");
    assert_non_null(tty);
    FILE *out = tmpfile();
    assert_non_null(out);
    char *argv[] = {"cx", "install", "nginx", "redis", "docker", NULL};
    int rc = cx_cli_main(5, argv, out, tty);
    fclose(tty);
    assert_int_equal(rc, 0);
    char buf[8192];
    size_t got = 0;
    int fl = fcntl(m, F_GETFL);
    fcntl(m, F_SETFL, fl | O_NONBLOCK);
    for (;;) {
        ssize_t k = read(m, buf + got, sizeof buf - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    close(m);
    assert_non_null(strstr(buf, "[3/3]"));
    assert_non_null(strstr(buf, " s"));
    free(f->out);
    f->out = slurp(out);
    assert_non_null(strstr(f->out, "timings: parse"));
    assert_null(strstr(f->out, "[3/3]"));
}

/* The argument list as packages (was cx_pipeline_parse_request's test in test_pipeline.c). */
static void test_package_list(void **state)
{
    (void)state;
    char *args[] = {"install", "nginx", "redis", "and", "nginx"};
    const char **v = NULL;
    size_t n = 0;
    char msg[256] = "";
    assert_int_equal(cx_cli_packages(args, 5, &v, &n, msg, sizeof msg), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "nginx");
    assert_string_equal(v[1], "redis");
    free(v);
    char *bad[] = {"-rf"};
    assert_int_equal(cx_cli_packages(bad, 1, &v, &n, msg, sizeof msg), CX_EINVAL);
    assert_non_null(strstr(msg, "'-rf'"));
    assert_null(v);
    char *none[] = {"install"};
    assert_int_equal(cx_cli_packages(none, 1, &v, &n, msg, sizeof msg), CX_EINVAL);
    assert_non_null(strstr(msg, "no package"));
    /* Limits are named. */
    enum { BIG = CX_PIPELINE_MAX_PACKAGES + 1 };
    static char names[BIG][16];
    static char *many[BIG];
    for (int i = 0; i < BIG; i++) {
        snprintf(names[i], sizeof names[i], "pkg%d", i);
        many[i] = names[i];
    }
    assert_int_equal(cx_cli_packages(many, BIG, &v, &n, msg, sizeof msg), CX_ETOOBIG);
    assert_non_null(strstr(msg, "too many"));
}

/* The data directory (was test_data_dir in test_pipeline.c, for cx_data_dir_prepare). */
static void test_data_dir_prepare(void **state)
{
    struct fx *f = *state;
    char msg[512] = "";
    char *deep = t_path(f->dir, "a/b/c");
    assert_int_equal(cx_cli_data_dir_prepare(deep, msg, sizeof msg), 0);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(cx_cli_data_dir_prepare(deep, msg, sizeof msg), 0); /* idempotent */
    /* A file in the way. */
    char *file = t_path(f->dir, "file");
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(cx_cli_data_dir_prepare(file, msg, sizeof msg), CX_EINVAL);
    assert_non_null(strstr(msg, file));
    char *under = t_path(file, "sub");
    assert_true(cx_cli_data_dir_prepare(under, msg, sizeof msg) < 0);
    assert_non_null(strstr(msg, under));
    /* Unwritable (root ignores permissions, so only checked as a normal user). */
    if (geteuid() != 0) {
        char *ro = t_path(f->dir, "ro");
        assert_int_equal(mkdir(ro, 0500), 0);
        assert_int_equal(cx_cli_data_dir_prepare(ro, msg, sizeof msg), CX_EPERM);
        assert_non_null(strstr(msg, ro));
        char *below = t_path(ro, "x");
        assert_int_equal(cx_cli_data_dir_prepare(below, msg, sizeof msg), CX_EPERM);
        assert_non_null(strstr(msg, below));
        chmod(ro, 0700);
        free(below);
        free(ro);
    }
    free(under);
    free(file);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_install_json_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_designs_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dangerous_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execute_needs_confirmation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diagnose_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hwcheck_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xdg_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_on_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_dir_prepare, setup, teardown),
        cmocka_unit_test(test_package_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
