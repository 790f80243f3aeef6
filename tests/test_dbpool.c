/* test_dbpool.c - the SQLite pool: bad input, corrupt and unwritable files, exclusive
 * checkout, checkout timeout, group commit, per-write rollback, ordering, two pools on a file. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx_internal.h"
#include "t_util.h"

static struct cx_pool *open_pool(const char *name, int readers) {
    char *path = t_path(t_dir, name);
    struct cx_pool *p = t_pool_open(path, readers);
    free(path);
    return p;
}

static int64_t query_int(struct cx_pool *p, const char *sql) {
    sqlite3 *db;
    assert_int_equal(cx_pool_checkout(p, CX_DEADLINE_NONE, &db, NULL), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cx_pool_checkin(p, db);
    return v;
}

static void test_options_and_bad_input(void **state) {
    (void)state;
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    assert_int_equal(o.readers, 5);
    assert_int_equal(o.busy_timeout_ms, 5000);
    assert_int_equal(o.checkout_timeout_ms, 5000);
    assert_int_equal(o.max_batch, 512);
    struct cx_pool *p = NULL;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(NULL, &p, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_new(&o, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "path is NULL"));
    o.path = "";
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "path is empty"));
    char *path = t_path(t_dir, "bad.db");
    o.path = path;
    o.readers = 0;
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "readers must be >= 1 (got 0)"));
    o.readers = 2;
    o.max_batch = 0;
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "max_batch"));
    o.max_batch = 1;
    o.busy_timeout_ms = -1;
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "busy_timeout_ms"));
    assert_null(p);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* nothing was created */
    free(path);

    p = open_pool("null.db", 1);
    assert_int_equal(cx_pool_checkout(p, 0, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_checkout(NULL, 0, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_write(p, NULL, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_write_async(p, NULL, NULL, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_exec(p, "", &ei), CX_EINVAL);
    assert_int_equal(cx_pool_exec(p, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_pool_exec(p, "CREATE TABL oops", &ei), CX_EDB);
    assert_non_null(strstr(ei.msg, "CREATE TABL oops"));
    cx_pool_checkin(p, NULL);
    cx_pool_free(p);
    cx_pool_free(NULL);
}

static void test_unwritable_path(void **state) {
    (void)state;
    /* A path below a regular file cannot be created, even by root. */
    char *file = t_path(t_dir, "plainfile");
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
    char path[512];
    snprintf(path, sizeof path, "%s/sub/cache.db", file);
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    struct cx_pool *p = NULL;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_EPERM);
    assert_null(p);
    assert_non_null(strstr(ei.msg, "cannot open database"));
    assert_non_null(strstr(ei.msg, path));
    assert_int_not_equal(ei.detail, 0);
    free(file);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static size_t read_file(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void check_corrupt(const void *data, size_t n, const char *name) {
    char *path = t_path(t_dir, name);
    write_file(path, data, n);
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    struct cx_pool *p = NULL;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(&o, &p, &ei), CX_ECORRUPT);
    assert_null(p);
    assert_non_null(strstr(ei.msg, path));
    assert_non_null(strstr(ei.msg, "corrupt or not a database"));
    /* The file is left exactly as it was. */
    unsigned char back[8192];
    assert_int_equal(read_file(path, back, sizeof back), n);
    assert_memory_equal(back, data, n);
    free(path);
}

static void test_corrupt_file(void **state) {
    (void)state;
    unsigned char junk[4096];
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < sizeof junk; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk[i] = (unsigned char)x;
    }
    check_corrupt(junk, sizeof junk, "garbage.db");
    const char *text = "this is not a database, just some text that is long enough to have a "
                       "header of sorts in it, and then some more characters for good measure\n";
    check_corrupt(text, strlen(text), "text.db");
}

/* ---- writes ---- */

static int insert_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    long v = *(long *)arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?1)", -1, &st, NULL);
    if (rc != SQLITE_OK) return cx_pool_sqlite_error(db, rc, "prepare", ei);
    sqlite3_bind_int64(st, 1, v);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cx_pool_sqlite_error(db, rc, "insert", ei);
    return 0;
}

static int fail_after_insert_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    int rc = insert_fn(db, arg, ei);
    if (rc < 0) return rc;
    return cx__err(ei, CX_EREJECTED, "refusing value %ld", *(long *)arg);
}

static void test_write_read_reopen(void **state) {
    (void)state;
    struct cx_pool *p = open_pool("rw.db", 2);
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_exec(p, "CREATE TABLE t(v INTEGER UNIQUE)", &ei), 0);
    long v = 7;
    assert_int_equal(cx_pool_write(p, insert_fn, &v, &ei), 0);
    /* A failing write reports its own error and leaves nothing behind. */
    long w = 8;
    assert_int_equal(cx_pool_write(p, fail_after_insert_fn, &w, &ei), CX_EREJECTED);
    assert_string_equal(ei.msg, "refusing value 8");
    assert_int_equal(cx_pool_write(p, insert_fn, &v, &ei), CX_EEXIST); /* UNIQUE */
    assert_int_not_equal(ei.detail, 0);
    assert_int_equal(query_int(p, "SELECT count(*) FROM t"), 1);
    assert_int_equal(query_int(p, "SELECT sum(v) FROM t"), 7);
    /* Readers are read-only. */
    sqlite3 *db;
    assert_int_equal(cx_pool_checkout(p, CX_DEADLINE_NONE, &db, &ei), 0);
    assert_int_not_equal(sqlite3_exec(db, "INSERT INTO t(v) VALUES (99)", NULL, NULL, NULL),
                         SQLITE_OK);
    cx_pool_checkin(p, db);
    cx_pool_free(p);
    /* Reopen: what was committed is there, in WAL mode. */
    p = open_pool("rw.db", 1);
    assert_int_equal(query_int(p, "SELECT count(*) FROM t WHERE v = 7"), 1);
    sqlite3 *r;
    assert_int_equal(cx_pool_checkout(p, CX_DEADLINE_NONE, &r, &ei), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(r, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    cx_pool_checkin(p, r);
    assert_string_equal(strrchr(cx_pool_path(p), '/'), "/rw.db");
    cx_pool_free(p);
}

/* A write that holds the writer until the test has queued more work. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, open;
};

static int gate_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)db;
    (void)ei;
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

struct seqrec {
    pthread_mutex_t mu;
    long order[256];
    int rcs[256];
    int n;
};
struct aw {
    long v;
    struct seqrec *rec;
};

static void aw_done(int rc, void *arg) {
    struct aw *a = arg;
    pthread_mutex_lock(&a->rec->mu);
    a->rec->rcs[a->rec->n] = rc;
    a->rec->order[a->rec->n++] = a->v;
    pthread_mutex_unlock(&a->rec->mu);
}

static int aw_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct aw *a = arg;
    if (a->v % 10 == 5) return fail_after_insert_fn(db, &a->v, ei); /* rolls back itself only */
    return insert_fn(db, &a->v, ei);
}

static void test_group_commit_order_and_rollback(void **state) {
    (void)state;
    struct cx_pool *p = open_pool("group.db", 1);
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_exec(p, "CREATE TABLE t(v INTEGER)", &ei), 0);
    struct cx_pool_stats st0;
    assert_int_equal(cx_pool_stats(p, &st0), 0);

    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    assert_int_equal(cx_pool_write_async(p, gate_fn, &g, NULL, &ei), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* The writer is inside the first transaction: queue 200 writes behind it. */
    static struct seqrec rec = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, 0};
    static struct aw items[200];
    for (int i = 0; i < 200; i++) {
        items[i].v = i;
        items[i].rec = &rec;
        assert_int_equal(cx_pool_write_async(p, aw_fn, &items[i], aw_done, &ei), 0);
    }
    struct cx_pool_stats mid;
    assert_int_equal(cx_pool_stats(p, &mid), 0);
    assert_int_equal(mid.queued, 200);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    /* A sync write queued last completes after every async one. */
    long last = 1000;
    assert_int_equal(cx_pool_write(p, insert_fn, &last, &ei), 0);
    pthread_mutex_lock(&rec.mu);
    assert_int_equal(rec.n, 200);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(rec.order[i], i); /* completion in queue order */
        assert_int_equal(rec.rcs[i], i % 10 == 5 ? CX_EREJECTED : 0);
    }
    pthread_mutex_unlock(&rec.mu);
    struct cx_pool_stats st;
    assert_int_equal(cx_pool_stats(p, &st), 0);
    /* gate alone, then the 200 in one transaction, then the sync write (or with them). */
    assert_true(st.transactions - st0.transactions <= 3);
    assert_int_equal(st.writes - st0.writes, 202);
    assert_int_equal(st.failed_writes - st0.failed_writes, 20);
    assert_int_equal(query_int(p, "SELECT count(*) FROM t"), 181);
    assert_int_equal(query_int(p, "SELECT count(*) FROM t WHERE v % 10 = 5"), 0);
    cx_pool_free(p);
}

static int nested_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)db;
    struct cx_pool *p = arg;
    long v = 1;
    return cx_pool_write(p, insert_fn, &v, ei); /* must refuse, not deadlock */
}

static void test_write_from_writer_refused(void **state) {
    (void)state;
    struct cx_pool *p = open_pool("nested.db", 1);
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_exec(p, "CREATE TABLE t(v INTEGER)", &ei), 0);
    assert_int_equal(cx_pool_write(p, nested_fn, p, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "writer thread"));
    cx_pool_free(p);
}

/* Another process holding the write lock past the busy timeout: CX_EBUSY, nothing lost. */
static void test_busy_other_writer(void **state) {
    (void)state;
    char *path = t_path(t_dir, "busy.db");
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    o.readers = 1;
    o.busy_timeout_ms = 20;
    struct cx_pool *p = NULL;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(&o, &p, &ei), 0);
    assert_int_equal(cx_pool_exec(p, "CREATE TABLE t(v INTEGER)", &ei), 0);
    long v = 1;
    assert_int_equal(cx_pool_write(p, insert_fn, &v, &ei), 0);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    v = 2;
    assert_int_equal(cx_pool_write(p, insert_fn, &v, &ei), CX_EBUSY);
    assert_non_null(strstr(ei.msg, "BEGIN IMMEDIATE"));
    assert_int_equal(ei.detail & 0xff, SQLITE_BUSY);
    /* Readers are not blocked by a writer in WAL mode. */
    assert_int_equal(query_int(p, "SELECT count(*) FROM t"), 1);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(cx_pool_write(p, insert_fn, &v, &ei), 0);
    assert_int_equal(query_int(p, "SELECT sum(v) FROM t"), 3);
    cx_pool_free(p);
    free(path);
}

static void test_checkout_timeout(void **state) {
    (void)state;
    char *path = t_path(t_dir, "timeout.db");
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    o.readers = 2;
    o.checkout_timeout_ms = 30;
    struct cx_pool *p = NULL;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(&o, &p, &ei), 0);
    sqlite3 *a, *b, *c;
    assert_int_equal(cx_pool_checkout(p, CX_DEADLINE_NONE, &a, &ei), 0);
    assert_int_equal(cx_pool_checkout(p, CX_DEADLINE_NONE, &b, &ei), 0);
    assert_ptr_not_equal(a, b);
    assert_int_equal(cx_pool_checkout(p, CX_DEADLINE_NONE, &c, &ei), CX_ETIMEDOUT);
    assert_non_null(strstr(ei.msg, "no database connection free within 30 ms (pool of 2)"));
    /* The caller's own earlier deadline wins. */
    assert_int_equal(cx_pool_checkout(p, 0, &c, &ei), CX_ETIMEDOUT);
    struct cx_pool_stats st;
    assert_int_equal(cx_pool_stats(p, &st), 0);
    assert_int_equal(st.checkout_timeouts, 2);
    assert_int_equal(st.readers_free, 0);
    cx_pool_checkin(p, a);
    assert_int_equal(cx_pool_checkout(p, 0, &c, &ei), 0);
    assert_ptr_equal(c, a);
    cx_pool_checkin(p, b);
    cx_pool_checkin(p, c);
    cx_pool_free(p);
    free(path);
}

/* ---- many threads: a connection is never held by two threads at once ---- */

#define NT 16
#define ITERS 300

struct excl {
    struct cx_pool *p;
    sqlite3 *conns[8];
    _Atomic int holders[8];
    _Atomic int violations;
    _Atomic long writes_ok;
    pthread_barrier_t start;
    int id;
};

static int conn_slot(struct excl *x, sqlite3 *db) {
    for (int i = 0; i < 8; i++)
        if (x->conns[i] == db) return i;
    return -1;
}

static void *excl_thread(void *arg) {
    struct excl *x = arg;
    pthread_barrier_wait(&x->start);
    for (int i = 0; i < ITERS; i++) {
        sqlite3 *db;
        struct cx_errinfo ei;
        if (cx_pool_checkout(x->p, t_deadline_ms(10000), &db, &ei) < 0) {
            atomic_fetch_add(&x->violations, 1);
            continue;
        }
        int s = conn_slot(x, db);
        if (s < 0 || atomic_fetch_add(&x->holders[s], 1) != 0) atomic_fetch_add(&x->violations, 1);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
        if (s >= 0) atomic_fetch_sub(&x->holders[s], 1);
        cx_pool_checkin(x->p, db);
        if (i % 10 == 0) {
            long v = i;
            if (cx_pool_write(x->p, insert_fn, &v, &ei) == 0) atomic_fetch_add(&x->writes_ok, 1);
        }
    }
    return NULL;
}

static void test_exclusive_checkout_many_threads(void **state) {
    (void)state;
    static struct excl x;
    memset(&x, 0, sizeof x);
    x.p = open_pool("excl.db", 3);
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_exec(x.p, "CREATE TABLE t(v INTEGER)", &ei), 0);
    /* Learn the three connections. */
    sqlite3 *c[3];
    for (int i = 0; i < 3; i++) assert_int_equal(cx_pool_checkout(x.p, 0, &c[i], &ei), 0);
    for (int i = 0; i < 3; i++) {
        x.conns[i] = c[i];
        cx_pool_checkin(x.p, c[i]);
    }
    pthread_barrier_init(&x.start, NULL, NT);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) assert_int_equal(pthread_create(&th[i], NULL, excl_thread, &x), 0);
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&x.start);
    assert_int_equal(atomic_load(&x.violations), 0);
    assert_int_equal(atomic_load(&x.writes_ok), NT * (ITERS / 10));
    assert_int_equal(query_int(x.p, "SELECT count(*) FROM t"), NT * (ITERS / 10));
    struct cx_pool_stats st;
    assert_int_equal(cx_pool_stats(x.p, &st), 0);
    assert_int_equal(st.readers_free, 3);
    cx_pool_free(x.p);
}

static void test_two_pools_one_file(void **state) {
    (void)state;
    struct cx_pool *a = open_pool("shared.db", 2);
    struct cx_pool *b = open_pool("shared.db", 2);
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_exec(a, "CREATE TABLE IF NOT EXISTS t(v INTEGER)", &ei), 0);
    assert_int_equal(cx_pool_exec(b, "CREATE TABLE IF NOT EXISTS t(v INTEGER)", &ei), 0);
    for (long i = 0; i < 50; i++) {
        assert_int_equal(cx_pool_write(i % 2 ? a : b, insert_fn, &i, &ei), 0);
    }
    assert_int_equal(query_int(a, "SELECT count(*) FROM t"), 50);
    assert_int_equal(query_int(b, "SELECT sum(v) FROM t"), 49 * 50 / 2);
    cx_pool_free(a);
    cx_pool_free(b);
}

/* ---- allocation failures ---- */

static void noop_done(int rc, void *arg) {
    (void)rc;
    (void)arg;
}
static int noop_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)db;
    (void)arg;
    (void)ei;
    return 0;
}

static int open_scenario(void *ctx) {
    const char *path = ctx;
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    o.readers = 2;
    struct cx_pool *p = NULL;
    int rc = cx_pool_new(&o, &p, NULL);
    if (rc < 0) return rc;
    rc = cx_pool_write_async(p, noop_fn, NULL, noop_done, NULL);
    if (rc == 0) rc = cx_pool_exec(p, "CREATE TABLE IF NOT EXISTS t(v)", NULL);
    cx_pool_free(p);
    return rc;
}

static void test_alloc_torture(void **state) {
    (void)state;
    char *path = t_path(t_dir, "torture.db");
    assert_true(t_torture(open_scenario, path) > 3);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_and_bad_input),
        cmocka_unit_test(test_unwritable_path),
        cmocka_unit_test(test_corrupt_file),
        cmocka_unit_test(test_write_read_reopen),
        cmocka_unit_test(test_group_commit_order_and_rollback),
        cmocka_unit_test(test_write_from_writer_refused),
        cmocka_unit_test(test_busy_other_writer),
        cmocka_unit_test(test_checkout_timeout),
        cmocka_unit_test(test_exclusive_checkout_many_threads),
        cmocka_unit_test(test_two_pools_one_file),
        cmocka_unit_test(test_alloc_torture),
    };
    return cmocka_run_group_tests(tests, t_dir_setup, t_dir_teardown);
}
