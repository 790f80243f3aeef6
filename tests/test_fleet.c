/*
 * test_fleet.c - the fleet's Redis connection against a real redis-server (tests/t_redis.h):
 * URL forms and their errors (a password never in a message), TCP and unix sockets, databases,
 * refused connections, passwords, a server without scripting, a server killed and restarted,
 * a server that stops answering (deadlines hold), and many threads sharing the pool.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "fleet.h"
#include "t_redis.h"
#include "t_util.h"

/* ---- URLs ---- */

static void parse_ok(const char *url, const char *pw, struct cx__redis_url *u) {
    struct cx_errinfo ei = {0};
    int rc = cx__redis_url_parse(url, "CORTEX_REDIS_URL", pw, u, &ei);
    if (rc != 0) fail_msg("%s: %s", url, ei.msg);
}

static void test_url_forms(void **state) {
    (void)state;
    struct cx__redis_url u;
    parse_ok("redis://127.0.0.1:6380/2", NULL, &u);
    assert_false(u.is_unix);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_null(u.user);
    assert_null(u.password);
    cx__redis_url_clear(&u);

    parse_ok("redis://cache.example", NULL, &u);
    assert_string_equal(u.host, "cache.example");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    cx__redis_url_clear(&u);

    parse_ok("redis://alice:p%40ss%3Aw0rd@h:1/0", NULL, &u);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "p@ss:w0rd");
    assert_null(strstr(u.redacted, "w0rd"));
    assert_non_null(strstr(u.redacted, "***"));
    cx__redis_url_clear(&u);

    parse_ok("redis://:only-pw@h/3", NULL, &u);
    assert_null(u.user);
    assert_string_equal(u.password, "only-pw");
    assert_int_equal(u.db, 3);
    cx__redis_url_clear(&u);

    parse_ok("redis://shorthand-pw@h", NULL, &u); /* redis-py: a lone userinfo is a password */
    assert_null(u.user);
    assert_string_equal(u.password, "shorthand-pw");
    cx__redis_url_clear(&u);

    parse_ok("redis://[::1]:7000/1", NULL, &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 1);
    cx__redis_url_clear(&u);

    parse_ok("unix:///run/redis/redis.sock?db=3", NULL, &u);
    assert_true(u.is_unix);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_int_equal(u.db, 3);
    cx__redis_url_clear(&u);

    parse_ok("redis+unix:///tmp/r%20s.sock", NULL, &u);
    assert_true(u.is_unix);
    assert_string_equal(u.path, "/tmp/r s.sock");
    cx__redis_url_clear(&u);

    parse_ok("unix://:sockpw@/tmp/s.sock?db=1&password=other", NULL, &u);
    assert_string_equal(u.password, "other"); /* the query's comes last and wins */
    assert_null(strstr(u.redacted, "sockpw"));
    assert_null(strstr(u.redacted, "other"));
    cx__redis_url_clear(&u);

    /* CORTEX_REDIS_PASSWORD (the override) wins over the URL's. */
    parse_ok("redis://:inurl@h:5/0", "fromenv", &u);
    assert_string_equal(u.password, "fromenv");
    cx__redis_url_clear(&u);
    cx__redis_url_clear(NULL);
}

static void parse_bad(const char *url, int want, const char *why) {
    struct cx__redis_url u;
    struct cx_errinfo ei = {0};
    int rc = cx__redis_url_parse(url, "CORTEX_REDIS_URL", NULL, &u, &ei);
    if (rc != want) fail_msg("%s: got %d (%s), want %d", url, rc, ei.msg, want);
    if (strstr(ei.msg, "CORTEX_REDIS_URL") == NULL) fail_msg("%s: '%s' names no setting", url, ei.msg);
    if (strstr(ei.msg, why) == NULL) fail_msg("%s: '%s' lacks '%s'", url, ei.msg, why);
    if (strstr(ei.msg, "hunter2") != NULL) fail_msg("%s: password leaked: '%s'", url, ei.msg);
    assert_null(u.host);
    assert_null(u.password);
}

static void test_url_errors(void **state) {
    (void)state;
    parse_bad("", CX_ECONFIG, "empty");
    parse_bad("http://h:1", CX_ECONFIG, "unknown scheme");
    parse_bad("rediss://:hunter2@h:6380", CX_ENOTSUP, "TLS");
    parse_bad("redis://:hunter2@h:99999/0", CX_ECONFIG, "port");
    parse_bad("redis://:hunter2@h:abc", CX_ECONFIG, "port");
    parse_bad("redis://:hunter2@h:0", CX_ECONFIG, "port");
    parse_bad("redis://:hunter2@h/abc", CX_ECONFIG, "database number");
    parse_bad("redis://:hunter2@/0", CX_ECONFIG, "no host");
    parse_bad("redis://:hunter2@", CX_ECONFIG, "no host");
    parse_bad("redis://[::1:6379", CX_ECONFIG, "']'");
    parse_bad("redis://h:1/0?db", CX_ECONFIG, "without '='");
    parse_bad("redis://h:1/0?timeout=5", CX_ECONFIG, "unknown query parameter");
    parse_bad("redis://h:1/0?db=-1", CX_ECONFIG, "db must be");
    parse_bad("redis://us%zzer:hunter2@h", CX_ECONFIG, "percent-escape");
    parse_bad("redis://:hunter2%00@h", CX_ECONFIG, "percent-escape");
    parse_bad("redis://h :1", CX_ECONFIG, "blank");
    parse_bad("unix://relative/path.sock", CX_ECONFIG, "absolute path");
    parse_bad("unix://", CX_ECONFIG, "absolute path");
    parse_bad("unix:///s.sock?password=hunter2&x=1", CX_ECONFIG, "unknown query parameter");
}

/* ---- connecting ---- */

static struct cx__fleet *open_ok(const char *url, const char *pw) {
    struct cx__fleet_options o;
    cx__fleet_options_init(&o);
    o.url = url;
    o.password = pw;
    o.prefix = "cxt";
    struct cx__fleet *f = NULL;
    struct cx_errinfo ei = {0};
    int rc = cx__fleet_open(&o, &f, &ei);
    if (rc != 0) fail_msg("open %s: %s", url, ei.msg);
    return f;
}

static int open_err(const char *url, const char *pw, int optional, struct cx_errinfo *ei,
                    struct cx__fleet **out) {
    struct cx__fleet_options o;
    cx__fleet_options_init(&o);
    o.url = url;
    o.password = pw;
    o.optional = optional;
    o.connect_timeout_ms = 500;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 100;
    struct cx__fleet *f = NULL;
    memset(ei, 0, sizeof *ei);
    int rc = cx__fleet_open(&o, &f, ei);
    if (out) *out = f;
    else cx__fleet_free(f);
    return rc;
}

/* SET/GET through the fleet; returns the reply string or "" (static buffer). */
static const char *cmd_str(struct cx__fleet *f, const char *a, const char *b, const char *c) {
    static char buf[128];
    const char *argv[3] = {a, b, c};
    int argc = c ? 3 : b ? 2 : 1;
    struct redisReply *r;
    struct cx_errinfo ei = {0};
    int rc = cx__fleet_command(f, t_deadline_ms(2000), argc, argv, NULL, &r, &ei);
    if (rc != 0) fail_msg("%s: %s", a, ei.msg);
    redisReply *rr = (redisReply *)r;
    snprintf(buf, sizeof buf, "%s", rr->str ? rr->str : "");
    cx__fleet_reply_free(r);
    return buf;
}

static void test_connect_tcp_unix_db(void **state) {
    (void)state;
    struct t_redis rs;
    t_redis_start(&rs, NULL);
    struct cx__fleet *tcp = open_ok(rs.url, NULL);
    assert_true(cx__fleet_up(tcp));
    assert_string_equal(cmd_str(tcp, "PING", NULL, NULL), "PONG");
    assert_string_equal(cmd_str(tcp, "SET", "k", "tcp"), "OK");

    struct cx__fleet *ux = open_ok(rs.unix_url, NULL);
    assert_string_equal(cmd_str(ux, "GET", "k", NULL), "tcp");

    char url2[400];
    snprintf(url2, sizeof url2, "%s/2", rs.url);
    struct cx__fleet *db2 = open_ok(url2, NULL);
    assert_string_equal(cmd_str(db2, "GET", "k", NULL), ""); /* another database */
    assert_string_equal(cmd_str(db2, "SET", "k", "two"), "OK");
    assert_string_equal(cmd_str(ux, "GET", "k", NULL), "tcp");
    snprintf(url2, sizeof url2, "%s?db=2", rs.unix_url);
    struct cx__fleet *ux2 = open_ok(url2, NULL);
    assert_string_equal(cmd_str(ux2, "GET", "k", NULL), "two");
    cx__fleet_free(tcp);
    cx__fleet_free(ux);
    cx__fleet_free(db2);
    cx__fleet_free(ux2);

    /* A database the server does not have (it was started with 4). */
    struct cx_errinfo ei;
    snprintf(url2, sizeof url2, "%s/9", rs.url);
    assert_int_equal(open_err(url2, NULL, 0, &ei, NULL), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL"));
    assert_non_null(strstr(ei.msg, "database 9"));
    t_redis_stop(&rs);
}

static void test_refused_and_optional(void **state) {
    (void)state;
    int fd;
    int port = t_refused_port(&fd);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    struct cx_errinfo ei;
    assert_int_equal(open_err(url, NULL, 0, &ei, NULL), CX_ECONN);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL"));
    assert_non_null(strstr(ei.msg, "127.0.0.1"));

    /* Optional: open succeeds down; says so once; commands fail at once, not at a timeout. */
    struct cx__fleet *f;
    assert_int_equal(open_err(url, NULL, 1, &ei, &f), 0);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL")); /* the reason is still reported */
    assert_false(cx__fleet_up(f));
    char msg[512];
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "falling back"));
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 0);
    const char *argv[1] = {"PING"};
    struct redisReply *r;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = cx_now_ns();
        int rc = cx__fleet_command(f, t_deadline_ms(1000), 1, argv, NULL, &r, &ei);
        assert_true(rc == CX_ECONN || rc == CX_ETIMEDOUT);
        assert_true(cx_elapsed_s(t0, cx_now_ns()) < 1.0 * t_timeout_scale());
    }
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 0); /* still the same outage */
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_int_equal(st.outages, 1);
    assert_true(st.failures >= 20);
    cx__fleet_free(f);
    close(fd);

    /* A malformed URL is an error even when optional. */
    assert_int_equal(open_err("redis://h:notaport", NULL, 1, &ei, NULL), CX_ECONFIG);
}

static void test_passwords(void **state) {
    (void)state;
    struct t_redis rs;
    t_redis_start(&rs, "requirepass s3cret-pw\n");
    struct cx_errinfo ei;
    char url[400];
    /* None given: the server requires one. */
    assert_int_equal(open_err(rs.url, NULL, 0, &ei, NULL), CX_EAUTH);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_PASSWORD"));
    /* Wrong one in the URL, and wrong one from CORTEX_REDIS_PASSWORD: never echoed. */
    snprintf(url, sizeof url, "redis://:wrong-pw-123@127.0.0.1:%d", rs.port);
    assert_int_equal(open_err(url, NULL, 0, &ei, NULL), CX_EAUTH);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_PASSWORD"));
    assert_null(strstr(ei.msg, "wrong-pw-123"));
    assert_non_null(strstr(ei.msg, "***"));
    assert_int_equal(open_err(rs.url, "wrong-pw-456", 0, &ei, NULL), CX_EAUTH);
    assert_null(strstr(ei.msg, "wrong-pw-456"));
    /* Right ones, from the URL, from the option, over the unix socket. */
    snprintf(url, sizeof url, "redis://:s3cret-pw@127.0.0.1:%d/1", rs.port);
    struct cx__fleet *f = open_ok(url, NULL);
    assert_string_equal(cmd_str(f, "PING", NULL, NULL), "PONG");
    char msg[512];
    cx__fleet_free(f);
    f = open_ok(rs.unix_url, "s3cret-pw");
    assert_string_equal(cmd_str(f, "PING", NULL, NULL), "PONG");
    /* Notices quote the URL, never the password. */
    t_redis_kill(&rs);
    const char *argv[1] = {"PING"};
    struct redisReply *r;
    assert_true(cx__fleet_command(f, t_deadline_ms(1000), 1, argv, NULL, &r, &ei) < 0);
    assert_null(strstr(ei.msg, "s3cret-pw"));
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 1);
    assert_null(strstr(msg, "s3cret-pw"));
    cx__fleet_free(f);
    t_redis_stop(&rs);

    /* A password sent to a server that has none: refused, and not quoted back. */
    t_redis_start(&rs, NULL);
    assert_int_equal(open_err(rs.url, "hunter2-unneeded", 0, &ei, NULL), CX_EAUTH);
    assert_null(strstr(ei.msg, "hunter2-unneeded"));
    t_redis_stop(&rs);
}

static void test_no_scripting(void **state) {
    (void)state;
    struct t_redis rs;
    t_redis_start(&rs, "rename-command EVAL \"\"\nrename-command EVALSHA \"\"\n");
    struct cx_errinfo ei;
    assert_int_equal(open_err(rs.url, NULL, 0, &ei, NULL), CX_ENOTSUP);
    assert_non_null(strstr(ei.msg, "Lua"));
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL"));
    struct cx__fleet *f;
    assert_int_equal(open_err(rs.url, NULL, 1, &ei, &f), 0);
    assert_false(cx__fleet_up(f));
    cx__fleet_free(f);
    t_redis_stop(&rs);
    /* SCRIPT renamed away too. */
    t_redis_start(&rs, "rename-command SCRIPT \"\"\n");
    assert_int_equal(open_err(rs.unix_url, NULL, 0, &ei, NULL), CX_ENOTSUP);
    assert_non_null(strstr(ei.msg, "Lua"));
    t_redis_stop(&rs);
}

/* Polls PING until it works or the deadline passes; returns 1 on success. */
static int wait_up(struct cx__fleet *f, int64_t ms) {
    uint64_t deadline = t_deadline_ms(ms);
    const char *argv[1] = {"PING"};
    while (!cx_deadline_expired(deadline)) {
        struct redisReply *r;
        if (cx__fleet_command(f, t_deadline_ms(500), 1, argv, NULL, &r, NULL) == 0) {
            cx__fleet_reply_free(r);
            return 1;
        }
        cx_sleep_ns(5 * CX_NSEC_PER_MSEC);
    }
    return 0;
}

static void test_kill_and_restart(void **state) {
    (void)state;
    struct t_redis rs;
    t_redis_start(&rs, NULL);
    struct cx__fleet *f;
    struct cx_errinfo ei;
    assert_int_equal(open_err(rs.url, NULL, 0, &ei, &f), 0);
    char msg[512];
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 0); /* up from the start: nothing */
    assert_string_equal(cmd_str(f, "SET", "a", "1"), "OK");
    t_redis_kill(&rs);
    const char *argv[1] = {"PING"};
    struct redisReply *r;
    uint64_t t0 = cx_now_ns();
    int rc = cx__fleet_command(f, t_deadline_ms(1000), 1, argv, NULL, &r, &ei);
    assert_true(rc == CX_ECONN || rc == CX_ETIMEDOUT);
    assert_true(cx_elapsed_s(t0, cx_now_ns()) < 1.5 * t_timeout_scale());
    assert_false(cx__fleet_up(f));
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "unavailable"));
    t_redis_restart(&rs);
    assert_true(wait_up(f, 5000));
    assert_true(cx__fleet_up(f));
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "reachable again"));
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 0);
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_int_equal(st.outages, 1);
    assert_int_equal(st.reconnects, 1);
    assert_true(st.connects >= 2);
    cx__fleet_free(f);

    /* Down at start (optional), then the server appears: the fleet comes up by itself. */
    t_redis_kill(&rs);
    assert_int_equal(open_err(rs.url, NULL, 1, &ei, &f), 0);
    assert_false(cx__fleet_up(f));
    t_redis_restart(&rs);
    assert_true(wait_up(f, 5000));
    cx__fleet_free(f);
    t_redis_stop(&rs);
}

static void test_stopped_server_deadline(void **state) {
    (void)state;
    struct t_redis rs;
    t_redis_start(&rs, NULL);
    struct cx__fleet *f = open_ok(rs.url, NULL);
    assert_string_equal(cmd_str(f, "PING", NULL, NULL), "PONG");
    kill(rs.pid, SIGSTOP); /* accepts nothing, answers nothing */
    const char *argv[1] = {"PING"};
    struct redisReply *r;
    struct cx_errinfo ei;
    uint64_t t0 = cx_now_ns();
    int rc = cx__fleet_command(f, cx_deadline_after_ms(200), 1, argv, NULL, &r, &ei);
    double took = cx_elapsed_s(t0, cx_now_ns());
    kill(rs.pid, SIGCONT);
    assert_int_equal(rc, CX_ETIMEDOUT);
    assert_true(took >= 0.15);
    assert_true(took < 0.2 + 1.0 * t_timeout_scale()); /* the deadline, plus generous slack */
    assert_true(wait_up(f, 5000));
    cx__fleet_free(f);
    t_redis_stop(&rs);
}

struct incr_arg {
    struct cx__fleet *f;
    int n;
    int failures;
};

static void *incr_thread(void *p) {
    struct incr_arg *a = p;
    const char *argv[2] = {"INCR", "cxt:counter"};
    for (int i = 0; i < a->n; i++) {
        struct redisReply *r;
        if (cx__fleet_command(a->f, t_deadline_ms(5000), 2, argv, NULL, &r, NULL) == 0)
            cx__fleet_reply_free(r);
        else
            a->failures++;
    }
    return NULL;
}

static void test_threads_share_pool(void **state) {
    (void)state;
    struct t_redis rs;
    t_redis_start(&rs, NULL);
    struct cx__fleet_options o;
    cx__fleet_options_init(&o);
    o.url = rs.unix_url;
    o.pool_size = 2;
    struct cx__fleet *f;
    assert_int_equal(cx__fleet_open(&o, &f, NULL), 0);
    enum { T = 8, N = 200 };
    pthread_t th[T];
    struct incr_arg a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (struct incr_arg){.f = f, .n = N};
        assert_int_equal(pthread_create(&th[i], NULL, incr_thread, &a[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    redisReply *rep = t_redis_cmd(&rs, "GET cxt:counter");
    assert_string_equal(rep->str, "1600");
    freeReplyObject(rep);
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_true(st.connects <= 2); /* the pool never grew past its size */
    cx__fleet_free(f);
    t_redis_stop(&rs);
}

static void test_bad_options(void **state) {
    (void)state;
    struct cx__fleet_options o;
    cx__fleet_options_init(&o);
    o.url = "redis://127.0.0.1:1";
    struct cx__fleet *f = NULL;
    struct cx_errinfo ei;
    o.prefix = "has space";
    assert_int_equal(cx__fleet_open(&o, &f, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_PREFIX"));
    o.prefix = "";
    assert_int_equal(cx__fleet_open(&o, &f, &ei), CX_ECONFIG);
    o.prefix = "ok";
    o.pool_size = 0;
    assert_int_equal(cx__fleet_open(&o, &f, &ei), CX_ECONFIG);
    assert_int_equal(cx__fleet_open(NULL, &f, &ei), CX_EINVAL);
    assert_null(f);
    cx__fleet_free(NULL);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_connect_tcp_unix_db),
        cmocka_unit_test(test_refused_and_optional),
        cmocka_unit_test(test_passwords),
        cmocka_unit_test(test_no_scripting),
        cmocka_unit_test(test_kill_and_restart),
        cmocka_unit_test(test_stopped_server_deadline),
        cmocka_unit_test(test_threads_share_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
