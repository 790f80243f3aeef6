/*
 * test_fleet_cache.c - the shared exact cache tier and fleet-wide single flight, against a real
 * redis-server (tests/t_redis.h): round trips keyed like the SQLite cache, TTL, the size bound
 * and LRU order, foreign values under our keys, one leader among many threads of two contexts,
 * a leader that dies (a forked process) or gives up, and an outage.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "fleet.h"
#include "fleet_cache.h"
#include "t_redis.h"
#include "t_util.h"

static struct t_redis rs;

static int group_setup(void **state) {
    (void)state;
    t_redis_start(&rs, NULL);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    t_redis_stop(&rs);
    return 0;
}

static int flush(void **state) {
    (void)state;
    if (rs.pid <= 0) t_redis_restart(&rs);
    t_redis_do(&rs, "FLUSHALL");
    return 0;
}

static struct cx__fleet *fleet_open(const char *url) {
    struct cx__fleet_options o;
    cx__fleet_options_init(&o);
    o.url = url;
    o.prefix = "cxt";
    o.backoff_min_ms = 10;
    o.connect_timeout_ms = 300;
    struct cx__fleet *f = NULL;
    struct cx_errinfo ei = {0};
    if (cx__fleet_open(&o, &f, &ei) != 0) fail_msg("open: %s", ei.msg);
    return f;
}

static struct cx__shared_cache *cache_open(struct cx__fleet *f, long max, long ttl_ms,
                                           long lease_ms) {
    struct cx__shared_cache_options o;
    cx__shared_cache_options_init(&o);
    if (max > 0) o.max_entries = max;
    if (ttl_ms > 0) o.ttl_ms = ttl_ms;
    if (lease_ms > 0) o.lease_ms = lease_ms;
    struct cx__shared_cache *c = NULL;
    struct cx_errinfo ei = {0};
    if (cx__shared_cache_open(f, &o, &c, &ei) != 0) fail_msg("cache: %s", ei.msg);
    return c;
}

static char *get_value(struct cx__shared_cache *c, const struct cx_cache_key *k, int *rc) {
    char *v = NULL;
    struct cx_errinfo ei = {0};
    *rc = cx__shared_cache_get(c, k, &v, &ei);
    return v;
}

/* The digest the module documents: SHA-256(provider \0 model \0 sha(system) \0 sha(prompt)). */
static void doc_digest(const struct cx_cache_key *k, char out[65]) {
    char sh[65], ph[65], buf[512];
    cx__sha256_hex(k->system_prompt, strlen(k->system_prompt), sh);
    cx__sha256_hex(k->prompt, strlen(k->prompt), ph);
    size_t n = 0;
    size_t a = strlen(k->provider) + 1, b = strlen(k->model) + 1;
    memcpy(buf + n, k->provider, a); n += a;
    memcpy(buf + n, k->model, b); n += b;
    memcpy(buf + n, sh, 65); n += 65;
    memcpy(buf + n, ph, 64); n += 64;
    cx__sha256_hex(buf, n, out);
}

static void test_round_trip(void **state) {
    (void)state;
    struct cx__fleet *f1 = fleet_open(rs.url), *f2 = fleet_open(rs.unix_url);
    struct cx__shared_cache *a = cache_open(f1, 0, 0, 0), *b = cache_open(f2, 0, 0, 0);
    struct cx_cache_key k = {"openai", "gpt-4o", "you are apt", "install nginx"};
    int rc;
    assert_null(get_value(b, &k, &rc));
    assert_int_equal(rc, CX_ENOENT);
    assert_int_equal(cx__shared_cache_put(a, &k, "[\"apt install nginx\"]", NULL), 0);
    char *v = get_value(b, &k, &rc); /* another process's answer */
    assert_int_equal(rc, 0);
    assert_string_equal(v, "[\"apt install nginx\"]");
    cx__free(v);
    /* Every part of the key counts. */
    struct cx_cache_key other[] = {{"anthropic", "gpt-4o", "you are apt", "install nginx"},
                                   {"openai", "gpt-4o-mini", "you are apt", "install nginx"},
                                   {"openai", "gpt-4o", "", "install nginx"},
                                   {"openai", "gpt-4o", "you are apt", "install nginx "}};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_null(get_value(b, &other[i], &rc));
        assert_int_equal(rc, CX_ENOENT);
    }
    /* Stored where the header says, with the "cx1\n" header. */
    char d[65];
    doc_digest(&k, d);
    redisReply *r = t_redis_cmd(&rs, "GET cxt:c:%s", d);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "cx1\n[\"apt install nginx\"]");
    freeReplyObject(r);
    /* Bad arguments name themselves. */
    struct cx_errinfo ei;
    struct cx_cache_key bad = {"openai", "", "", "x"};
    assert_int_equal(cx__shared_cache_get(a, &bad, &v, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "model"));
    assert_int_equal(cx__shared_cache_put(a, &k, "", &ei), CX_EINVAL);
    struct cx__shared_cache_stats st;
    cx__shared_cache_stats(b, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 5);
    cx__shared_cache_free(a);
    cx__shared_cache_free(b);
    cx__fleet_free(f1);
    cx__fleet_free(f2);
}

static void test_ttl_and_size(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url);
    struct cx__shared_cache *c = cache_open(f, 0, 300, 0);
    struct cx_cache_key k = {"p", "m", "", "short-lived"};
    assert_int_equal(cx__shared_cache_put(c, &k, "v", NULL), 0);
    char d[65];
    doc_digest(&k, d);
    redisReply *r = t_redis_cmd(&rs, "PTTL cxt:c:%s", d);
    assert_true(r->integer > 0 && r->integer <= 300);
    freeReplyObject(r);
    int rc;
    char *v = get_value(c, &k, &rc);
    assert_int_equal(rc, 0);
    cx__free(v);
    uint64_t deadline = t_deadline_ms(3000);
    do {
        v = get_value(c, &k, &rc);
        cx__free(v);
        if (rc == CX_ENOENT) break;
        cx_sleep_ns(20 * CX_NSEC_PER_MSEC);
    } while (!cx_deadline_expired(deadline));
    assert_int_equal(rc, CX_ENOENT);
    /* The expired entry left the LRU set on that miss. */
    r = t_redis_cmd(&rs, "ZCARD cxt:c:lru");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    cx__shared_cache_free(c);

    /* Size bound 5: put 0..4, touch 0, put 5..11: 0 survives longest among the first ones. */
    c = cache_open(f, 5, 0, 0);
    char prompts[12][16];
    struct cx_cache_key ks[12];
    for (int i = 0; i < 12; i++) {
        snprintf(prompts[i], sizeof prompts[i], "q%d", i);
        ks[i] = (struct cx_cache_key){"p", "m", "s", prompts[i]};
    }
    for (int i = 0; i < 5; i++) assert_int_equal(cx__shared_cache_put(c, &ks[i], "v", NULL), 0);
    v = get_value(c, &ks[0], &rc);
    assert_int_equal(rc, 0);
    cx__free(v);
    assert_int_equal(cx__shared_cache_put(c, &ks[5], "v", NULL), 0); /* evicts 1, not 0 */
    v = get_value(c, &ks[1], &rc);
    assert_int_equal(rc, CX_ENOENT);
    v = get_value(c, &ks[0], &rc);
    assert_int_equal(rc, 0);
    cx__free(v);
    for (int i = 6; i < 12; i++) assert_int_equal(cx__shared_cache_put(c, &ks[i], "v", NULL), 0);
    r = t_redis_cmd(&rs, "ZCARD cxt:c:lru");
    assert_int_equal(r->integer, 5);
    freeReplyObject(r);
    r = t_redis_cmd(&rs, "EVAL %s 0", "return #redis.call('KEYS', 'cxt:c:*')");
    assert_int_equal(r->integer, 6); /* five values and the set */
    freeReplyObject(r);
    for (int i = 7; i < 12; i++) {
        v = get_value(c, &ks[i], &rc);
        assert_int_equal(rc, 0);
        cx__free(v);
    }
    struct cx__shared_cache_stats st;
    cx__shared_cache_stats(c, &st);
    assert_int_equal(st.evictions, 7);
    /* Too big a value. */
    struct cx__shared_cache_options o;
    cx__shared_cache_options_init(&o);
    o.max_value_bytes = 4;
    struct cx__shared_cache *small;
    assert_int_equal(cx__shared_cache_open(f, &o, &small, NULL), 0);
    assert_int_equal(cx__shared_cache_put(small, &ks[0], "12345", NULL), CX_ETOOBIG);
    cx__shared_cache_free(small);
    o.max_entries = 0;
    struct cx_errinfo ei;
    assert_int_equal(cx__shared_cache_open(f, &o, &small, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "max_entries"));
    cx__shared_cache_free(c);
    cx__fleet_free(f);
}

static void expect_corrupt(int rc, const struct cx_errinfo *ei, const char *key, const char *what) {
    if (rc != CX_ECORRUPT) fail_msg("rc %d (%s), want CX_ECORRUPT", rc, ei->msg);
    if (!strstr(ei->msg, key) || !strstr(ei->msg, what))
        fail_msg("'%s' lacks %s / %s", ei->msg, key, what);
}

static void test_corrupt_keys(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url);
    struct cx__shared_cache *c = cache_open(f, 0, 0, 500);
    struct cx_cache_key k = {"p", "m", "", "q"};
    char d[65], vkey[128], lkey[128];
    doc_digest(&k, d);
    snprintf(vkey, sizeof vkey, "cxt:c:%s", d);
    snprintf(lkey, sizeof lkey, "cxt:l:%s", d);
    struct cx_errinfo ei;
    char *v = NULL;
    enum cx__flight_role role;
    struct cx__flight fl;
    t_redis_do(&rs, "SET %s garbage", vkey);
    expect_corrupt(cx__shared_cache_get(c, &k, &v, &ei), &ei, vkey, "not hold a cx cache entry");
    assert_null(v);
    expect_corrupt(cx__shared_cache_flight(c, &k, t_deadline_ms(1000), &role, &fl, &v, &ei), &ei,
                   vkey, "cx cache entry");
    /* A put over a foreign string replaces it (it is our key); a list is refused. */
    assert_int_equal(cx__shared_cache_put(c, &k, "ok", NULL), 0);
    t_redis_do(&rs, "DEL %s", vkey);
    t_redis_do(&rs, "RPUSH %s a", vkey);
    expect_corrupt(cx__shared_cache_get(c, &k, &v, &ei), &ei, vkey, "list");
    expect_corrupt(cx__shared_cache_put(c, &k, "ok", &ei), &ei, vkey, "list");
    t_redis_do(&rs, "DEL %s", vkey);
    t_redis_do(&rs, "DEL cxt:c:lru");
    t_redis_do(&rs, "SET cxt:c:lru whatever");
    expect_corrupt(cx__shared_cache_put(c, &k, "ok", &ei), &ei, "cxt:c:lru", "string");
    expect_corrupt(cx__shared_cache_get(c, &k, &v, &ei), &ei, "cxt:c:lru", "string");
    t_redis_do(&rs, "DEL cxt:c:lru");
    /* Lock keys: a list, and a string that would never expire. */
    t_redis_do(&rs, "RPUSH %s a", lkey);
    expect_corrupt(cx__shared_cache_flight(c, &k, t_deadline_ms(1000), &role, &fl, &v, &ei), &ei,
                   lkey, "list");
    t_redis_do(&rs, "DEL %s", lkey);
    t_redis_do(&rs, "SET %s forever", lkey);
    expect_corrupt(cx__shared_cache_flight(c, &k, t_deadline_ms(1000), &role, &fl, &v, &ei), &ei,
                   lkey, "no expiry");
    t_redis_do(&rs, "DEL %s", lkey);
    assert_int_equal(cx__shared_cache_flight(c, &k, t_deadline_ms(1000), &role, &fl, &v, &ei), 0);
    assert_int_equal(role, CX__FLIGHT_LEADER);
    assert_int_equal(cx__shared_cache_finish(c, &k, &fl, "answer", NULL), 0);
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_int_equal(st.corrupt, 8);
    cx__shared_cache_free(c);
    cx__fleet_free(f);
}

/* ---- single flight ---- */

struct flight_arg {
    struct cx__shared_cache *c;
    struct t_latch *go;
    atomic_int *leaders, *hits, *errors;
    char answer[64];
};

static void *flight_thread(void *p) {
    struct flight_arg *a = p;
    struct cx_cache_key k = {"openai", "gpt-4o", "sys", "install everything"};
    t_latch_wait(a->go, 1, t_deadline_ms(5000));
    enum cx__flight_role role;
    struct cx__flight fl;
    char *v = NULL;
    int rc = cx__shared_cache_flight(a->c, &k, t_deadline_ms(5000), &role, &fl, &v, NULL);
    if (rc != 0) {
        atomic_fetch_add(a->errors, 1);
        return NULL;
    }
    if (role == CX__FLIGHT_LEADER) {
        atomic_fetch_add(a->leaders, 1);
        cx_sleep_ns(150 * CX_NSEC_PER_MSEC); /* the upstream call */
        if (cx__shared_cache_finish(a->c, &k, &fl, "[\"the answer\"]", NULL) != 0)
            atomic_fetch_add(a->errors, 1);
        snprintf(a->answer, sizeof a->answer, "[\"the answer\"]");
    } else {
        atomic_fetch_add(a->hits, 1);
        snprintf(a->answer, sizeof a->answer, "%s", v);
        cx__free(v);
    }
    return NULL;
}

static void test_single_flight(void **state) {
    (void)state;
    struct cx__fleet *f1 = fleet_open(rs.url), *f2 = fleet_open(rs.unix_url);
    struct cx__shared_cache *c1 = cache_open(f1, 0, 0, 5000), *c2 = cache_open(f2, 0, 0, 5000);
    enum { T = 12 };
    pthread_t th[T];
    struct flight_arg a[T];
    struct t_latch go;
    t_latch_init(&go);
    atomic_int leaders = 0, hits = 0, errors = 0;
    for (int i = 0; i < T; i++) {
        a[i] = (struct flight_arg){i % 2 ? c1 : c2, &go, &leaders, &hits, &errors, ""};
        assert_int_equal(pthread_create(&th[i], NULL, flight_thread, &a[i]), 0);
    }
    t_latch_add(&go);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    assert_int_equal(errors, 0);
    assert_int_equal(leaders, 1); /* one upstream call for twelve identical queries */
    assert_int_equal(hits, T - 1);
    for (int i = 0; i < T; i++) assert_string_equal(a[i].answer, "[\"the answer\"]");
    struct cx__shared_cache_stats s1, s2;
    cx__shared_cache_stats(c1, &s1);
    cx__shared_cache_stats(c2, &s2);
    assert_int_equal(s1.leaders + s2.leaders, 1);
    assert_true(s1.waited + s2.waited >= 1);
    assert_int_equal(s1.takeovers + s2.takeovers, 0);
    t_latch_destroy(&go);
    cx__shared_cache_free(c1);
    cx__shared_cache_free(c2);
    cx__fleet_free(f1);
    cx__fleet_free(f2);
}

static void test_leader_dies(void **state) {
    (void)state;
    struct cx_cache_key k = {"p", "m", "", "orphaned"};
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) { /* another process: leads, then dies without finishing */
        struct cx__fleet *f = fleet_open(rs.url);
        struct cx__shared_cache *c = cache_open(f, 0, 0, 400);
        enum cx__flight_role role;
        struct cx__flight fl;
        char *v = NULL;
        int rc = cx__shared_cache_flight(c, &k, t_deadline_ms(2000), &role, &fl, &v, NULL);
        char ok = rc == 0 && role == CX__FLIGHT_LEADER ? 'L' : 'x';
        if (write(pipefd[1], &ok, 1) != 1) _exit(2);
        _exit(0);
    }
    close(pipefd[1]);
    char got = 0;
    assert_int_equal(read(pipefd[0], &got, 1), 1);
    close(pipefd[0]);
    int st;
    waitpid(child, &st, 0);
    assert_int_equal(got, 'L');
    struct cx__fleet *f = fleet_open(rs.url);
    struct cx__shared_cache *c = cache_open(f, 0, 0, 400);
    enum cx__flight_role role;
    struct cx__flight fl;
    char *v = NULL;
    uint64_t t0 = cx_now_ns();
    assert_int_equal(cx__shared_cache_flight(c, &k, t_deadline_ms(5000), &role, &fl, &v, NULL), 0);
    double waited = cx_elapsed_s(t0, cx_now_ns());
    assert_int_equal(role, CX__FLIGHT_LEADER); /* took over when the dead leader's lease ran out */
    assert_true(waited > 0.1);
    struct cx__shared_cache_stats s;
    cx__shared_cache_stats(c, &s);
    assert_int_equal(s.takeovers, 1);
    /* A leader that gives up (finish with NULL) hands over at once. */
    struct cx__fleet *f2 = fleet_open(rs.url);
    struct cx__shared_cache *c2 = cache_open(f2, 0, 0, 60000);
    assert_int_equal(cx__shared_cache_finish(c, &k, &fl, NULL, NULL), 0);
    struct cx__flight fl2;
    assert_int_equal(cx__shared_cache_flight(c2, &k, t_deadline_ms(1000), &role, &fl2, &v, NULL),
                     0);
    assert_int_equal(role, CX__FLIGHT_LEADER);
    /* A follower whose deadline passes while the (60 s) leader works gets CX_ETIMEDOUT. */
    struct cx__flight fl3;
    struct cx_errinfo ei;
    t0 = cx_now_ns();
    assert_int_equal(cx__shared_cache_flight(c, &k, cx_deadline_after_ms(150), &role, &fl3, &v,
                                             &ei), CX_ETIMEDOUT);
    assert_true(cx_elapsed_s(t0, cx_now_ns()) < 0.15 + 1.0 * t_timeout_scale());
    assert_int_equal(cx__shared_cache_finish(c2, &k, &fl2, "late answer", NULL), 0);
    assert_int_equal(cx__shared_cache_flight(c, &k, t_deadline_ms(1000), &role, &fl3, &v, NULL),
                     0);
    assert_int_equal(role, CX__FLIGHT_HIT);
    assert_string_equal(v, "late answer");
    cx__free(v);
    cx__shared_cache_free(c);
    cx__shared_cache_free(c2);
    cx__fleet_free(f);
    cx__fleet_free(f2);
}

static void test_outage(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url);
    struct cx__shared_cache *c = cache_open(f, 0, 0, 0);
    struct cx_cache_key k = {"p", "m", "", "q"};
    assert_int_equal(cx__shared_cache_put(c, &k, "v", NULL), 0);
    t_redis_kill(&rs);
    char *v = NULL;
    enum cx__flight_role role;
    struct cx__flight fl;
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = cx_now_ns();
        int rc = cx__shared_cache_get(c, &k, &v, NULL);
        assert_true(rc == CX_ECONN || rc == CX_ETIMEDOUT);
        rc = cx__shared_cache_put(c, &k, "v", NULL);
        assert_true(rc == CX_ECONN || rc == CX_ETIMEDOUT);
        rc = cx__shared_cache_flight(c, &k, t_deadline_ms(2000), &role, &fl, &v, NULL);
        assert_true(rc == CX_ECONN || rc == CX_ETIMEDOUT);
        assert_true(cx_elapsed_s(t0, cx_now_ns()) < 1.0 * t_timeout_scale());
    }
    struct cx__shared_cache_stats s;
    cx__shared_cache_stats(c, &s);
    assert_int_equal(s.outages, 15);
    t_redis_restart(&rs);
    uint64_t deadline = t_deadline_ms(5000);
    int rc;
    do {
        rc = cx__shared_cache_get(c, &k, &v, NULL);
        if (rc == CX_ENOENT) break;
        cx_sleep_ns(10 * CX_NSEC_PER_MSEC);
    } while (!cx_deadline_expired(deadline));
    assert_int_equal(rc, CX_ENOENT); /* back, and empty (nothing persisted) */
    cx__shared_cache_free(c);
    cx__fleet_free(f);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_round_trip, flush),
        cmocka_unit_test_setup(test_ttl_and_size, flush),
        cmocka_unit_test_setup(test_corrupt_keys, flush),
        cmocka_unit_test_setup(test_single_flight, flush),
        cmocka_unit_test_setup(test_leader_dies, flush),
        cmocka_unit_test_setup(test_outage, flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
