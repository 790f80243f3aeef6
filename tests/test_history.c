/* test_history.c - installation history on the SQLite pool: round trip of every field, newest
 * first with limits, argument errors, concurrent records from several threads and two pools on
 * one file, and persistence across a reopen. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cx/history.h"
#include "t_util.h"

static struct cx_pool *open_pool(const char *path) {
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_errinfo ei;
    if (cx_history_init(p, &ei) < 0) fail_msg("cx_history_init: %s", ei.msg);
    return p;
}

static void test_round_trip(void **state) {
    (void)state;
    char *dir = t_tmpdir("hist");
    char *path = t_path(dir, "h.db");
    struct cx_pool *p = open_pool(path);
    struct cx_errinfo ei;
    assert_int_equal(cx_history_init(p, &ei), 0); /* idempotent */

    struct cx_history_entry e = {0};
    e.request = "install nginx redis";
    e.plan_json = "[\"sudo apt-get update\",\"sudo apt-get install -y nginx\"]";
    e.executed = "dry-run";
    e.parse_s = 0.001;
    e.llm_s = 1.25;
    e.merge_s = 0.0005;
    e.apt_s = 0;
    e.total_s = 1.3;
    int64_t id1 = 0, id2 = 0, id3 = 0;
    assert_int_equal(cx_history_record(p, &e, &id1, &ei), 0);
    struct cx_history_entry r = {0};
    r.request = "install evil";
    r.validation_json = "[\"commands[1] 'rm -rf /': rm -rf on the root directory\"]";
    r.executed = "refused";
    r.status = CX_EREJECTED;
    r.created_at = "2026-01-02T03:04:05.678Z";
    assert_int_equal(cx_history_record(p, &r, &id2, &ei), 0);
    assert_true(id2 > id1);
    e.executed = "simulated";
    assert_int_equal(cx_history_record(p, &e, &id3, &ei), 0);

    struct cx_history_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(cx_history_list(p, 0, &v, &n, &ei), 0);
    assert_int_equal(n, 3);
    /* Newest first. */
    assert_int_equal(v[0].id, id3);
    assert_string_equal(v[0].executed, "simulated");
    assert_int_equal(v[1].id, id2);
    assert_string_equal(v[1].request, "install evil");
    assert_null(v[1].plan_json);
    assert_string_equal(v[1].validation_json, r.validation_json);
    assert_string_equal(v[1].created_at, "2026-01-02T03:04:05.678Z");
    assert_int_equal(v[1].status, CX_EREJECTED);
    assert_int_equal(v[2].id, id1);
    assert_string_equal(v[2].plan_json, e.plan_json);
    assert_null(v[2].validation_json);
    assert_true(v[2].llm_s == 1.25 && v[2].parse_s == 0.001 && v[2].total_s == 1.3);
    /* created_at defaults to now, in UTC ISO-8601 with milliseconds. */
    assert_int_equal(strlen(v[2].created_at), 24);
    assert_int_equal(v[2].created_at[10], 'T');
    assert_int_equal(v[2].created_at[23], 'Z');
    cx_history_entries_free(v, n);

    assert_int_equal(cx_history_list(p, 2, &v, &n, &ei), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[1].id, id2);
    cx_history_entries_free(v, n);
    cx_history_entries_free(NULL, 0);

    /* Argument errors name the field. */
    struct cx_history_entry bad = {0};
    bad.request = "x";
    bad.executed = "maybe";
    assert_int_equal(cx_history_record(p, &bad, NULL, &ei), CX_EINVAL);
    assert_string_equal(ei.msg, "executed must be dry-run, simulated, real or refused, got 'maybe'");
    bad.executed = NULL;
    assert_int_equal(cx_history_record(p, &bad, NULL, &ei), CX_EINVAL);
    bad.executed = "real";
    bad.request = NULL;
    assert_int_equal(cx_history_record(p, &bad, NULL, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "request"));
    assert_int_equal(cx_history_record(NULL, &e, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_history_list(p, 0, NULL, &n, &ei), CX_EINVAL);
    assert_int_equal(cx_history_init(NULL, &ei), CX_EINVAL);
    cx_pool_free(p);
    t_rmrf(dir);
    free(path);
    free(dir);
}

/* commands_run: stored and read back; a table made before the column existed gets it on
 * cx_history_init (old rows read 0), and init stays idempotent. */
static void test_commands_run_and_old_schema(void **state) {
    (void)state;
    char *dir = t_tmpdir("hist-old");
    char *path = t_path(dir, "old.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    const char *old_schema =
        "CREATE TABLE installation_history ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
        " request TEXT NOT NULL, plan_json TEXT, validation_json TEXT,"
        " executed TEXT NOT NULL CHECK (executed IN ('dry-run', 'simulated', 'real', 'refused')),"
        " parse_s REAL NOT NULL DEFAULT 0, llm_s REAL NOT NULL DEFAULT 0,"
        " merge_s REAL NOT NULL DEFAULT 0, apt_s REAL NOT NULL DEFAULT 0,"
        " total_s REAL NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO installation_history (request, executed) VALUES ('install old', 'real');";
    assert_int_equal(sqlite3_exec(db, old_schema, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    struct cx_pool *p = open_pool(path); /* cx_history_init adds the column */
    struct cx_errinfo ei;
    assert_int_equal(cx_history_init(p, &ei), 0);
    struct cx_history_entry e = {0};
    e.request = "install nginx redis";
    e.executed = "real";
    e.status = CX_EIO;
    e.commands_run = 2; /* stopped at the second of three commands */
    int64_t id = 0;
    assert_int_equal(cx_history_record(p, &e, &id, &ei), 0);
    struct cx_history_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(cx_history_list(p, 0, &v, &n, &ei), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, id);
    assert_int_equal(v[0].commands_run, 2);
    assert_int_equal(v[0].status, CX_EIO);
    assert_string_equal(v[1].request, "install old");
    assert_int_equal(v[1].commands_run, 0);
    cx_history_entries_free(v, n);
    cx_pool_free(p);

    /* reopened: the column is there, nothing is added twice */
    p = open_pool(path);
    assert_int_equal(cx_history_list(p, 1, &v, &n, &ei), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].commands_run, 2);
    cx_history_entries_free(v, n);
    cx_pool_free(p);
    t_rmrf(dir);
    free(path);
    free(dir);
}

static void test_empty_and_uninitialised(void **state) {
    (void)state;
    char *dir = t_tmpdir("hist");
    char *path = t_path(dir, "h.db");
    struct cx_pool *p = t_pool_open(path, 0);
    struct cx_errinfo ei;
    struct cx_history_entry e = {0};
    e.request = "x";
    e.executed = "real";
    assert_int_equal(cx_history_record(p, &e, NULL, &ei), CX_EDB);
    assert_non_null(strstr(ei.msg, "installation_history"));
    struct cx_history_entry *v = (struct cx_history_entry *)1;
    size_t n = 7;
    assert_true(cx_history_list(p, 0, &v, &n, &ei) < 0);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(cx_history_init(p, &ei), 0);
    assert_int_equal(cx_history_list(p, 0, &v, &n, &ei), 0);
    assert_null(v);
    assert_int_equal(n, 0);
    cx_pool_free(p);
    t_rmrf(dir);
    free(path);
    free(dir);
}

#define THREADS 8
#define PER_THREAD 25

struct worker {
    struct cx_pool *pool;
    pthread_barrier_t *start;
    int tid;
    int64_t ids[PER_THREAD];
    int failures;
    char msg[384];
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < PER_THREAD; i++) {
        char req[64];
        snprintf(req, sizeof req, "install t%d-%d", w->tid, i);
        struct cx_history_entry e = {0};
        e.request = req;
        e.executed = (i % 2) ? "simulated" : "dry-run";
        e.total_s = w->tid * 1000 + i;
        struct cx_errinfo ei;
        if (cx_history_record(w->pool, &e, &w->ids[i], &ei) < 0) {
            w->failures++;
            snprintf(w->msg, sizeof w->msg, "%s", ei.msg);
        }
        if (i % 5 == 4) { /* reads interleaved with other threads' writes */
            struct cx_history_entry *v;
            size_t n;
            if (cx_history_list(w->pool, 3, &v, &n, &ei) < 0 || n == 0) w->failures++;
            else cx_history_entries_free(v, n);
        }
    }
    return NULL;
}

/* Runs THREADS writers spread over the pools, then checks every row arrived exactly once. */
static void run_writers(struct cx_pool **pools, int npools, int64_t expect_before) {
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].pool = pools[t % npools];
        w[t].start = &start;
        w[t].tid = t;
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < THREADS; t++) {
        if (w[t].failures) fail_msg("thread %d: %d failures, last: %s", t, w[t].failures, w[t].msg);
        /* One thread's records commit in the order it made them. */
        for (int i = 1; i < PER_THREAD; i++) assert_true(w[t].ids[i] > w[t].ids[i - 1]);
    }
    struct cx_history_entry *v;
    size_t n;
    struct cx_errinfo ei;
    assert_int_equal(cx_history_list(pools[0], 0, &v, &n, &ei), 0);
    assert_int_equal(n, (size_t)(expect_before + THREADS * PER_THREAD));
    /* Every (thread, i) exactly once, and its id matches what record returned. */
    static unsigned char seen[THREADS][PER_THREAD];
    memset(seen, 0, sizeof seen);
    for (size_t k = 0; k < n; k++) {
        if (k > 0) assert_true(v[k].id < v[k - 1].id);
        int t, i;
        if (sscanf(v[k].request, "install t%d-%d", &t, &i) != 2) continue;
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < PER_THREAD);
        assert_int_equal(seen[t][i], 0);
        seen[t][i] = 1;
        assert_int_equal(v[k].id, w[t].ids[i]);
        assert_true(v[k].total_s == t * 1000 + i);
    }
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) assert_int_equal(seen[t][i], 1);
    cx_history_entries_free(v, n);
}

static void test_concurrent_and_reopen(void **state) {
    (void)state;
    char *dir = t_tmpdir("hist");
    char *path = t_path(dir, "h.db");
    struct cx_pool *p = open_pool(path);
    run_writers(&p, 1, 0);
    cx_pool_free(p);

    /* Reopen: every row survived. Two pools on the same file (two "processes") then write
     * concurrently; rows are renumbered by nobody and none is lost. */
    struct cx_pool *pools[2] = {open_pool(path), open_pool(path)};
    struct cx_history_entry *v;
    size_t n;
    struct cx_errinfo ei;
    assert_int_equal(cx_history_list(pools[1], 0, &v, &n, &ei), 0);
    assert_int_equal(n, THREADS * PER_THREAD);
    cx_history_entries_free(v, n);
    /* The second round reuses the requests, so count them separately. */
    {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        struct worker w[THREADS];
        pthread_t th[THREADS];
        for (int t = 0; t < THREADS; t++) {
            memset(&w[t], 0, sizeof w[t]);
            w[t].pool = pools[t % 2];
            w[t].start = &start;
            w[t].tid = t;
            assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
        }
        for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&start);
        for (int t = 0; t < THREADS; t++)
            if (w[t].failures) fail_msg("thread %d: %d failures, last: %s", t, w[t].failures, w[t].msg);
    }
    assert_int_equal(cx_history_list(pools[0], 0, &v, &n, &ei), 0);
    assert_int_equal(n, 2 * THREADS * PER_THREAD);
    for (size_t k = 1; k < n; k++) assert_true(v[k].id < v[k - 1].id);
    cx_history_entries_free(v, n);
    cx_pool_free(pools[0]);
    cx_pool_free(pools[1]);
    t_rmrf(dir);
    free(path);
    free(dir);
}

static struct cx_pool *g_pool;

static int list_scenario(void *ctx) {
    (void)ctx;
    struct cx_history_entry *v;
    size_t n;
    int rc = cx_history_list(g_pool, 0, &v, &n, NULL);
    if (rc < 0) return rc;
    rc = (n == 40 && v[0].plan_json && strcmp(v[39].request, "install 0") == 0) ? 0 : CX_EINVAL;
    cx_history_entries_free(v, n);
    return rc;
}

/* Every allocation cx_history_list makes may fail: CX_ENOMEM, nothing leaked, the reader given
 * back (the pool's close would abort otherwise). */
static void test_list_torture(void **state) {
    (void)state;
    char *dir = t_tmpdir("hist");
    char *path = t_path(dir, "h.db");
    g_pool = open_pool(path);
    for (int i = 0; i < 40; i++) {
        char req[32];
        snprintf(req, sizeof req, "install %d", i);
        struct cx_history_entry e = {0};
        e.request = req;
        e.plan_json = "[\"sudo apt-get update\"]";
        e.executed = "dry-run";
        assert_int_equal(cx_history_record(g_pool, &e, NULL, NULL), 0);
    }
    long n = t_torture(list_scenario, NULL);
    assert_true(n >= 40 * 4); /* strings of 40 rows, and the array growing */
    cx_pool_free(g_pool);
    t_rmrf(dir);
    free(path);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_commands_run_and_old_schema),
        cmocka_unit_test(test_empty_and_uninitialised),
        cmocka_unit_test(test_concurrent_and_reopen),
        cmocka_unit_test(test_list_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
