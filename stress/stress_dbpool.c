/*
 * stress_dbpool.c - hundreds of threads on two pools over one file (as two processes would
 * have): exclusive checkouts, reads, sync and async group-committed writes.
 *
 * Usage: stress_dbpool [--seed S] [--iters N] [--threads T]
 *   T threads (default 200) each run N/10 operations (at least 1), chosen by a PRNG seeded with
 *   S and the thread number. Exits non-zero when an invariant breaks:
 *   - a connection is never held by two threads at once (also asserted inside the pool);
 *   - every write that reported success is in the table exactly once, and no failed one is;
 *   - every async completion runs exactly once;
 *   - no call fails except as the test provokes (writes that refuse by design).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/dbpool.h"
#include "s_util.h"

#define MAX_READERS 8

struct shared {
    struct cx_pool *pool[2];
    sqlite3 *conns[2][MAX_READERS];
    _Atomic int holder[2][MAX_READERS];
    _Atomic long failures;
    _Atomic long ok_writes, refused_writes, async_pending, async_done;
    _Atomic long sum_ok; /* sum of the values of committed writes */
    _Atomic long progress; /* operations finished (the hang monitor's clock) */
    pthread_barrier_t start;
    int ops;
    uint64_t seed;
};

static struct shared g;

static void fail(const char *what, const char *msg) {
    fprintf(stderr, "stress_dbpool: %s: %s\n", what, msg);
    atomic_fetch_add(&g.failures, 1);
}

static int insert_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    long v = *(long *)arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?1)", -1, &st, NULL);
    if (rc != SQLITE_OK) return cx_pool_sqlite_error(db, rc, "prepare", ei);
    sqlite3_bind_int64(st, 1, v);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cx_pool_sqlite_error(db, rc, "insert", ei);
    if (v % 7 == 0) return CX_EREJECTED; /* refuses after writing: must be rolled back */
    return 0;
}

struct async_w {
    long v;
    _Atomic int done_count;
};

static void async_done(int rc, void *arg) {
    struct async_w *a = arg;
    if (atomic_fetch_add(&a->done_count, 1) != 0) fail("async", "done ran twice");
    if (rc == 0) {
        atomic_fetch_add(&g.ok_writes, 1);
        atomic_fetch_add(&g.sum_ok, a->v);
    } else if (rc == CX_EREJECTED && a->v % 7 == 0) {
        atomic_fetch_add(&g.refused_writes, 1);
    } else {
        fail("async write", cx_strerror(rc));
    }
    atomic_fetch_add(&g.async_done, 1);
    atomic_fetch_add(&g.progress, 1);
    free(a);
}

static void *worker(void *arg) {
    long tid = (long)arg;
    uint64_t s = g.seed * 2654435761UL + (unsigned long)tid * 40503UL + 1;
    pthread_barrier_wait(&g.start);
    for (int i = 0; i < g.ops; i++, atomic_fetch_add(&g.progress, 1)) {
        int pi = (int)(s_xorshift64(&s) % 2);
        struct cx_pool *p = g.pool[pi];
        uint64_t op = s_xorshift64(&s) % 10;
        struct cx_errinfo ei;
        long v = tid * 1000000L + i + 1;
        if (op < 6) {
            sqlite3 *db;
            if (cx_pool_checkout(p, CX_DEADLINE_NONE, &db, &ei) < 0) {
                fail("checkout", ei.msg);
                continue;
            }
            int slot = -1;
            for (int k = 0; k < MAX_READERS; k++)
                if (g.conns[pi][k] == db) slot = k;
            if (slot < 0 || atomic_fetch_add(&g.holder[pi][slot], 1) != 0)
                fail("checkout", "connection handed to two threads");
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) != SQLITE_OK ||
                sqlite3_step(st) != SQLITE_ROW)
                fail("read", sqlite3_errmsg(db));
            sqlite3_finalize(st);
            if (slot >= 0) atomic_fetch_sub(&g.holder[pi][slot], 1);
            cx_pool_checkin(p, db);
        } else if (op < 8) {
            int rc = cx_pool_write(p, insert_fn, &v, &ei);
            if (rc == 0) {
                atomic_fetch_add(&g.ok_writes, 1);
                atomic_fetch_add(&g.sum_ok, v);
            } else if (rc == CX_EREJECTED && v % 7 == 0) {
                atomic_fetch_add(&g.refused_writes, 1);
            } else {
                fail("write", ei.msg);
            }
        } else {
            struct async_w *a = calloc(1, sizeof *a);
            a->v = v;
            atomic_fetch_add(&g.async_pending, 1);
            if (cx_pool_write_async(p, insert_fn, a, async_done, &ei) < 0) {
                fail("write_async", ei.msg);
                atomic_fetch_sub(&g.async_pending, 1);
                free(a);
            }
        }
    }
    return NULL;
}

static void describe(char *buf, size_t n) {
    snprintf(buf, n, "%ld writes committed, %ld async writes queued and %ld completed",
             atomic_load(&g.ok_writes), atomic_load(&g.async_pending), atomic_load(&g.async_done));
}

int main(int argc, char **argv) {
    struct s_args a = {(uint64_t)cx_now_ns(), 200, 200};
    s_args_parse("dbpool", argc, argv, &a, 4096);
    int threads = a.threads;
    g.seed = a.seed;
    g.ops = (int)(a.iters / 10 > 0 ? a.iters / 10 : 1);

    char path[4096];
    s_tmp_db("dbpool", "stress.db", path, sizeof path);
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    o.readers = 4;
    o.checkout_timeout_ms = -1; /* hundreds of threads on 4 connections: no time limit */
    o.busy_timeout_ms = 60000;  /* the two pools' writers wait for each other */
    struct cx_errinfo ei;
    for (int i = 0; i < 2; i++) {
        if (cx_pool_new(&o, &g.pool[i], &ei) < 0) {
            fprintf(stderr, "stress_dbpool: open: %s\n", ei.msg);
            return 1;
        }
        if (cx_pool_exec(g.pool[i], "CREATE TABLE IF NOT EXISTS t(v INTEGER)", &ei) < 0) {
            fprintf(stderr, "stress_dbpool: schema: %s\n", ei.msg);
            return 1;
        }
        sqlite3 *c[4];
        for (int k = 0; k < 4; k++) cx_pool_checkout(g.pool[i], CX_DEADLINE_NONE, &c[k], NULL);
        for (int k = 0; k < 4; k++) {
            g.conns[i][k] = c[k];
            cx_pool_checkin(g.pool[i], c[k]);
        }
    }
    pthread_barrier_init(&g.start, NULL, (unsigned)threads);
    s_watch_start("dbpool", &g.progress, s_scaled_ms(60000), describe);
    s_run_threads("dbpool", threads, worker);
    pthread_barrier_destroy(&g.start);
    /* Closing finishes every queued async write. */
    cx_pool_free(g.pool[1]);
    int bad = 0;
    sqlite3 *db;
    long rows = -1, sum = -1;
    /* A last sync write on pool 0 completes after every async write queued on it. */
    if (cx_pool_write(g.pool[0], insert_fn, &(long){7}, &ei) != CX_EREJECTED) bad = 1;
    cx_pool_checkout(g.pool[0], CX_DEADLINE_NONE, &db, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(v), 0) FROM t", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) {
        rows = sqlite3_column_int64(st, 0);
        sum = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    cx_pool_checkin(g.pool[0], db);
    cx_pool_free(g.pool[0]);
    if (atomic_load(&g.async_done) != atomic_load(&g.async_pending)) {
        fprintf(stderr, "stress_dbpool: %ld async writes queued, %ld completed\n",
                atomic_load(&g.async_pending), atomic_load(&g.async_done));
        bad = 1;
    }
    if (rows != atomic_load(&g.ok_writes) || sum != atomic_load(&g.sum_ok)) {
        fprintf(stderr,
                "stress_dbpool: table has %ld rows (sum %ld), %ld writes succeeded (sum %ld)\n",
                rows, sum, atomic_load(&g.ok_writes), atomic_load(&g.sum_ok));
        bad = 1;
    }
    if (atomic_load(&g.failures)) bad = 1;
    printf("stress_dbpool: %ld writes committed, %ld refused and rolled back, %ld failures: %s\n",
           atomic_load(&g.ok_writes), atomic_load(&g.refused_writes), atomic_load(&g.failures),
           bad ? "FAIL" : "ok");
    /* threads: the workers, each pool's writer thread, the monitor */
    s_watch_stop();
    s_report("dbpool", threads + 2 + 1, (long long)threads * g.ops, !bad);
    s_tmp_db_remove(path);
    return bad;
}
