/*
 * dbpool.c - the SQLite connection pool: reader connections handed out one thread at a time and
 * a single writer thread that group-commits queued writes (contract in cx/dbpool.h).
 *
 * It does not know any schema, does not cache statements and does not retry failed writes: a
 * write that fails reports its error to its caller, who decides.
 *
 * DESIGN
 * Threads: the callers' threads and one writer thread per pool (started by cx_pool_new, joined
 * by cx_pool_free).
 * Shared state, all guarded by p->mu:
 *   - free_readers: a stack of reader connections not checked out; out[i] says whether
 *     readers[i] is checked out (checked in both directions to catch double hand-outs).
 *     Waiters for a reader sleep on p->reader_cv.
 *   - the write queue (wq_head/wq_tail, FIFO of struct witem); the writer sleeps on
 *     p->writer_cv. Synchronous writers sleep on their own item's condition variable.
 * Writer loop: take up to max_batch items off the queue (under mu), then without the lock:
 *   BEGIN IMMEDIATE; for each item SAVEPOINT, fn, RELEASE (or ROLLBACK TO + RELEASE on error);
 *   COMMIT (ROLLBACK on failure, which fails every item that had succeeded); then complete the
 *   items in queue order: an async item's done callback runs (no lock held), a sync item is
 *   marked finished under mu and its waiter signalled. A batch is completed entirely before the
 *   next one starts, so completions follow queue order across batches too.
 * Ordering: writes are applied and completed in the order they were queued.
 * Shutdown: cx_pool_free sets closing (new writes fail with CX_ECLOSED, new checkouts too), the
 *   writer drains everything already queued, then exits; close joins it and closes connections.
 * Connections: opened with SQLITE_OPEN_NOMUTEX, because each is used by one thread at a time
 *   (readers by their holder, the writer connection by the writer thread only).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx_internal.h"

struct witem {
    struct witem *next;
    cx_write_fn fn;
    void *arg;
    void (*done)(int rc, void *arg); /* async items only */
    int sync;                         /* 1: a cx_pool_write waiter owns this item (on its stack) */
    int rc;
    int finished;                     /* sync items: guarded by mu */
    pthread_cond_t cv;                /* sync items: signalled when finished */
    struct cx_errinfo ei;
};

struct cx_pool {
    char *path;
    struct cx_pool_options opt;
    struct cx__mutex mu;
    pthread_cond_t reader_cv;
    pthread_cond_t writer_cv;
    sqlite3 **readers;       /* fixed at open */
    unsigned char *out;      /* guarded by mu: readers[i] is checked out */
    sqlite3 **free_readers;  /* guarded by mu: stack */
    int nfree;               /* guarded by mu */
    sqlite3 *wdb;            /* writer thread only (after open) */
    sqlite3_stmt *tx[6];     /* writer thread only: the transaction-control statements */
    pthread_t writer;
    int writer_started;
    struct witem *wq_head;   /* guarded by mu */
    struct witem *wq_tail;   /* guarded by mu */
    size_t queued;           /* guarded by mu */
    int closing;             /* guarded by mu */
    struct cx_pool_stats st; /* guarded by mu */
};

/* ---- SQLite global configuration, once ---- */

static pthread_once_t g_sqlite_once = PTHREAD_ONCE_INIT;
static void sqlite_once(void) {
    /* Memory statistics take a global mutex on every SQLite allocation, which serialises
     * otherwise independent connections; we do not use them. This fails harmlessly (MISUSE) if
     * another module already initialised SQLite. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_initialize();
}

int cx_pool_sqlite_error(sqlite3 *db, int rc, const char *what, struct cx_errinfo *ei) {
    int code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = CX_EBUSY; break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: code = CX_ECORRUPT; break;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: code = CX_EPERM; break;
    case SQLITE_FULL:
    case SQLITE_IOERR: code = CX_EIO; break;
    case SQLITE_NOMEM: code = CX_ENOMEM; break;
    case SQLITE_CONSTRAINT: code = CX_EEXIST; break;
    default: code = CX_EDB; break;
    }
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    long detail = db ? sqlite3_extended_errcode(db) : rc;
    if (what) return cx__err_detail(ei, code, detail, "%s: %s", what, msg);
    return cx__err_detail(ei, code, detail, "%s", msg);
}

void cx_pool_options_init(struct cx_pool_options *o) {
    if (o == NULL) return;
    memset(o, 0, sizeof *o);
    o->path = NULL;
    o->readers = 5;
    o->busy_timeout_ms = 5000;
    o->checkout_timeout_ms = 5000;
    o->max_batch = 512;
}

const char *cx_pool_path(const struct cx_pool *p) { return p ? p->path : NULL; }

/* ---- opening connections ---- */

/* Fills ei for a failure while opening `path`, with the wording cx/dbpool.h promises. */
static int open_error(sqlite3 *db, int rc, const char *path, struct cx_errinfo *ei) {
    int code = cx_pool_sqlite_error(db, rc, NULL, NULL);
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    long detail = db ? sqlite3_extended_errcode(db) : rc;
    if (code == CX_ECORRUPT)
        return cx__err_detail(ei, code, detail, "database '%s' is corrupt or not a database: %s",
                              path, msg);
    if (code == CX_EPERM || (rc & 0xff) == SQLITE_CANTOPEN)
        return cx__err_detail(ei, CX_EPERM, detail, "cannot open database '%s': %s", path, msg);
    return cx__err_detail(ei, code, detail, "database '%s': %s", path, msg);
}

/* Runs a statement that may return one row; copies its first column into buf when asked. */
static int exec1(sqlite3 *db, const char *sql, char *buf, size_t bufsz) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (buf && bufsz) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(buf, bufsz, "%s", t ? (const char *)t : "");
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int open_conn(const struct cx_pool *p, int writer, sqlite3 **out, struct cx_errinfo *ei) {
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(p->path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (db == NULL) return cx__err(ei, CX_ENOMEM, "cannot open database '%s': out of memory",
                                       p->path);
        open_error(db, rc, p->path, ei);
        sqlite3_close(db);
        return ei ? ei->code : CX_EPERM;
    }
    sqlite3_extended_result_codes(db, 1);
    if (sqlite3_db_readonly(db, "main") == 1) {
        sqlite3_close(db);
        return cx__err(ei, CX_EPERM, "cannot open database '%s': the file is read-only", p->path);
    }
    sqlite3_busy_timeout(db, p->opt.busy_timeout_ms);
    /* Reading the schema makes SQLite read the file header, so a file of garbage fails here
     * with NOTADB before anything could write to it. When several processes create the file
     * at once, SQLite answers BUSY without waiting (its deadlock avoidance while one of them
     * switches to WAL), so those two steps are retried until the busy timeout. */
    uint64_t until = cx_deadline_after_ms(p->opt.busy_timeout_ms);
    for (;;) {
        rc = exec1(db, "SELECT count(*) FROM sqlite_master", NULL, 0);
        if (rc == SQLITE_OK && writer) {
            char mode[32] = "";
            rc = exec1(db, "PRAGMA journal_mode=WAL", mode, sizeof mode);
            if (rc == SQLITE_OK && strcmp(mode, "wal") != 0) {
                sqlite3_close(db);
                return cx__err(ei, CX_EDB, "database '%s': cannot switch to WAL mode "
                               "(journal_mode is '%s')", p->path, mode);
            }
        }
        int prim = rc & 0xff;
        if ((prim != SQLITE_BUSY && prim != SQLITE_LOCKED) || cx_deadline_expired(until)) break;
        cx_sleep_ns(2 * CX_NSEC_PER_MSEC); /* no lock of ours is held here */
    }
    if (rc == SQLITE_OK) rc = exec1(db, "PRAGMA synchronous=NORMAL", NULL, 0);
    /* Temporary b-trees (IN (SELECT ...), RETURNING, sorting) and statement journals stay in
     * memory: with the default they are files under /var/tmp, written on every statement. */
    if (rc == SQLITE_OK) rc = exec1(db, "PRAGMA temp_store=MEMORY", NULL, 0);
    if (rc == SQLITE_OK && !writer) rc = exec1(db, "PRAGMA query_only=ON", NULL, 0);
    if (rc != SQLITE_OK) {
        int code = open_error(db, rc, p->path, ei);
        sqlite3_close(db);
        return code;
    }
    *out = db;
    return 0;
}

/* ---- the writer thread ---- */

enum { TX_BEGIN, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO, TX_COMMIT, TX_ROLLBACK, TX_N };
static const char *const k_tx_sql[TX_N] = {"BEGIN IMMEDIATE", "SAVEPOINT cx_w", "RELEASE cx_w",
                                           "ROLLBACK TO cx_w", "COMMIT", "ROLLBACK"};

/* Runs a transaction-control statement, prepared once (parsing them per write cost as much as
 * a small insert). Writer thread only. */
static int run_tx(struct cx_pool *p, int which, struct cx_errinfo *ei) {
    sqlite3 *db = p->wdb;
    int rc = SQLITE_OK;
    if (p->tx[which] == NULL)
        rc = sqlite3_prepare_v3(db, k_tx_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &p->tx[which],
                                NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(p->tx[which]);
        sqlite3_reset(p->tx[which]);
        if (rc == SQLITE_DONE) return 0;
    }
    return cx_pool_sqlite_error(db, rc, k_tx_sql[which], ei);
}

/* Runs one batch (a detached list of items) in one transaction and sets each item's rc. */
static void run_batch(struct cx_pool *p, struct witem *batch) {
    sqlite3 *db = p->wdb;
    struct cx_errinfo tei;
    int trc = run_tx(p, TX_BEGIN, &tei);
    if (trc < 0) {
        for (struct witem *it = batch; it; it = it->next) {
            it->rc = trc;
            it->ei = tei;
        }
        return;
    }
    for (struct witem *it = batch; it; it = it->next) {
        it->ei.code = 0;
        it->ei.detail = 0;
        it->ei.msg[0] = '\0';
        int rc = run_tx(p, TX_SAVEPOINT, &it->ei);
        if (rc == 0) {
            rc = it->fn(db, it->arg, &it->ei);
            if (rc > 0) rc = CX_EDB; /* a write must return 0 or a negative CX_E* */
            if (rc < 0) {
                if (it->ei.code != rc) cx__err(&it->ei, rc, "write failed: %s", cx_strerror(rc));
                struct cx_errinfo ignore;
                run_tx(p, TX_ROLLBACK_TO, &ignore);
            }
            struct cx_errinfo rei;
            int rrc = run_tx(p, TX_RELEASE, &rei);
            if (rrc < 0 && rc == 0) {
                rc = rrc;
                it->ei = rei;
            }
        }
        it->rc = rc;
        if (sqlite3_get_autocommit(db)) {
            /* SQLite rolled the whole transaction back (e.g. disk full, I/O error): the earlier
             * writes of the batch are gone too, so they fail with this item's error; the rest
             * of the batch runs in a fresh transaction. */
            for (struct witem *e = batch; e != it; e = e->next) {
                if (e->rc == 0) {
                    e->rc = rc < 0 ? rc : CX_EDB;
                    cx__err_detail(&e->ei, e->rc, it->ei.detail, "the group transaction was "
                                   "rolled back by a failing write: %s", it->ei.msg);
                }
            }
            if (it->rc == 0) {
                it->rc = CX_EDB;
                cx__err(&it->ei, CX_EDB, "the group transaction ended inside a write");
            }
            if (it->next) {
                trc = run_tx(p, TX_BEGIN, &tei);
                if (trc < 0) {
                    for (struct witem *e = it->next; e; e = e->next) {
                        e->rc = trc;
                        e->ei = tei;
                    }
                    return;
                }
            } else {
                return;
            }
        }
    }
    trc = run_tx(p, TX_COMMIT, &tei);
    if (trc < 0) {
        struct cx_errinfo ignore;
        if (!sqlite3_get_autocommit(db)) run_tx(p, TX_ROLLBACK, &ignore);
        for (struct witem *it = batch; it; it = it->next) {
            if (it->rc == 0) {
                it->rc = trc;
                it->ei = tei;
            }
        }
    }
}

static void *writer_main(void *arg) {
    struct cx_pool *p = arg;
    cx__mutex_lock(&p->mu);
    for (;;) {
        while (p->wq_head == NULL && !p->closing)
            cx__cond_wait(&p->writer_cv, &p->mu, CX_DEADLINE_NONE);
        if (p->wq_head == NULL) break; /* closing and drained */
        struct witem *batch = p->wq_head, *last = batch;
        size_t n = 1;
        while (last->next && n < p->opt.max_batch) {
            last = last->next;
            n++;
        }
        p->wq_head = last->next;
        if (p->wq_head == NULL) p->wq_tail = NULL;
        last->next = NULL;
        p->queued -= n;
        cx__mutex_unlock(&p->mu);

        run_batch(p, batch);

        /* Counters first, so a waiter woken below sees its own write counted. */
        size_t failed = 0;
        for (struct witem *f = batch; f; f = f->next)
            if (f->rc < 0) failed++;
        cx__mutex_lock(&p->mu);
        p->st.writes += n;
        p->st.failed_writes += failed;
        p->st.transactions++;
        cx__mutex_unlock(&p->mu);
        struct witem *it = batch;
        while (it) {
            struct witem *next = it->next;
            if (it->sync) {
                cx__mutex_lock(&p->mu);
                it->finished = 1;
                pthread_cond_signal(&it->cv);
                cx__mutex_unlock(&p->mu);
                /* The waiter may free its item as soon as mu is released. */
            } else {
                if (it->done) it->done(it->rc, it->arg);
                cx__free(it);
            }
            it = next;
        }
        cx__mutex_lock(&p->mu);
    }
    cx__mutex_unlock(&p->mu);
    return NULL;
}

/* ---- open / close ---- */

static void pool_destroy(struct cx_pool *p) {
    if (p->readers) {
        for (int i = 0; i < p->opt.readers; i++) sqlite3_close_v2(p->readers[i]);
    }
    for (int i = 0; i < TX_N; i++) sqlite3_finalize(p->tx[i]);
    /* close_v2: a statement someone left unfinalized delays the close instead of leaking an
     * open connection. */
    sqlite3_close_v2(p->wdb);
    cx__free(p->readers);
    cx__free(p->free_readers);
    cx__free(p->out);
    cx__free(p->path);
    cx__free(p);
}

int cx_pool_new(const struct cx_pool_options *o, struct cx_pool **out, struct cx_errinfo *ei) {
    if (o == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pool_new: %s is NULL", o == NULL ? "options" : "out");
    if (o->path == NULL || o->path[0] == '\0')
        return cx__err(ei, CX_EINVAL, "cx_pool_new: options.path is %s",
                       o->path == NULL ? "NULL" : "empty");
    if (o->readers < 1)
        return cx__err(ei, CX_EINVAL, "cx_pool_new: options.readers must be >= 1 (got %d)",
                       o->readers);
    if (o->busy_timeout_ms < 0)
        return cx__err(ei, CX_EINVAL, "cx_pool_new: options.busy_timeout_ms must be >= 0 (got %d)",
                       o->busy_timeout_ms);
    if (o->max_batch < 1)
        return cx__err(ei, CX_EINVAL, "cx_pool_new: options.max_batch must be >= 1 (got 0)");
    pthread_once(&g_sqlite_once, sqlite_once);

    struct cx_pool *p = cx__calloc(1, sizeof *p);
    if (p == NULL) return cx__err(ei, CX_ENOMEM, "cx_pool_new: out of memory");
    p->opt = *o;
    p->path = cx__strdup(o->path);
    p->opt.path = p->path;
    p->readers = cx__calloc((size_t)o->readers, sizeof *p->readers);
    p->free_readers = cx__calloc((size_t)o->readers, sizeof *p->free_readers);
    p->out = cx__calloc((size_t)o->readers, 1);
    if (!p->path || !p->readers || !p->free_readers || !p->out) {
        pool_destroy(p);
        return cx__err(ei, CX_ENOMEM, "cx_pool_new: out of memory");
    }
    int rc = open_conn(p, 1, &p->wdb, ei);
    for (int i = 0; rc == 0 && i < o->readers; i++) rc = open_conn(p, 0, &p->readers[i], ei);
    if (rc < 0) {
        pool_destroy(p);
        return rc;
    }
    for (int i = 0; i < o->readers; i++) p->free_readers[i] = p->readers[i];
    p->nfree = o->readers;
    p->st.readers = o->readers;

    if (cx__mutex_init(&p->mu) < 0) {
        pool_destroy(p);
        return cx__err(ei, CX_ENOMEM, "cx_pool_new: cannot create a mutex");
    }
    if (cx__cond_init(&p->reader_cv) < 0) {
        cx__mutex_destroy(&p->mu);
        pool_destroy(p);
        return cx__err(ei, CX_ENOMEM, "cx_pool_new: cannot create a condition variable");
    }
    if (cx__cond_init(&p->writer_cv) < 0) {
        pthread_cond_destroy(&p->reader_cv);
        cx__mutex_destroy(&p->mu);
        pool_destroy(p);
        return cx__err(ei, CX_ENOMEM, "cx_pool_new: cannot create a condition variable");
    }
    int prc = pthread_create(&p->writer, NULL, writer_main, p);
    if (prc != 0) {
        pthread_cond_destroy(&p->writer_cv);
        pthread_cond_destroy(&p->reader_cv);
        cx__mutex_destroy(&p->mu);
        pool_destroy(p);
        return cx__err(ei, prc == EAGAIN ? CX_EAGAIN : CX_ENOMEM,
                       "cx_pool_new: cannot start the writer thread for '%s' (%s)", o->path,
                       strerror(prc));
    }
    p->writer_started = 1;
    *out = p;
    return 0;
}

void cx_pool_free(struct cx_pool *p) {
    if (p == NULL) return;
    CX_ASSERT(!pthread_equal(pthread_self(), p->writer));
    cx__mutex_lock(&p->mu);
    p->closing = 1;
    pthread_cond_broadcast(&p->writer_cv);
    pthread_cond_broadcast(&p->reader_cv);
    cx__mutex_unlock(&p->mu);
    pthread_join(p->writer, NULL);
    cx__mutex_lock(&p->mu);
    CX_ASSERT(p->nfree == p->opt.readers); /* every reader must be checked in */
    CX_ASSERT(p->wq_head == NULL);
    cx__mutex_unlock(&p->mu);
    pthread_cond_destroy(&p->writer_cv);
    pthread_cond_destroy(&p->reader_cv);
    cx__mutex_destroy(&p->mu);
    pool_destroy(p);
}

/* ---- readers ---- */

static int reader_index(const struct cx_pool *p, const sqlite3 *db) {
    for (int i = 0; i < p->opt.readers; i++)
        if (p->readers[i] == db) return i;
    return -1;
}

int cx_pool_checkout(struct cx_pool *p, uint64_t deadline, sqlite3 **db, struct cx_errinfo *ei) {
    if (p == NULL || db == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pool_checkout: %s is NULL", p == NULL ? "pool" : "db");
    uint64_t limit = deadline;
    int64_t waited_ms = -1;
    if (p->opt.checkout_timeout_ms >= 0) {
        uint64_t own = cx_deadline_after_ms(p->opt.checkout_timeout_ms);
        if (own < limit) {
            limit = own;
            waited_ms = p->opt.checkout_timeout_ms;
        }
    }
    if (waited_ms < 0 && limit != CX_DEADLINE_NONE) {
        uint64_t left = cx_deadline_remaining_ns(limit);
        waited_ms = (int64_t)(left / CX_NSEC_PER_MSEC);
    }
    cx__mutex_lock(&p->mu);
    for (;;) {
        if (p->closing) {
            cx__mutex_unlock(&p->mu);
            return cx__err(ei, CX_ECLOSED, "cx_pool_checkout: the pool for '%s' is closing",
                           p->path);
        }
        if (p->nfree > 0) break;
        if (cx__cond_wait(&p->reader_cv, &p->mu, limit) == CX_ETIMEDOUT && p->nfree == 0) {
            p->st.checkout_timeouts++;
            cx__mutex_unlock(&p->mu);
            return cx__err(ei, CX_ETIMEDOUT,
                           "no database connection free within %lld ms (pool of %d) for '%s'",
                           (long long)waited_ms, p->opt.readers, p->path);
        }
    }
    sqlite3 *c = p->free_readers[--p->nfree];
    int i = reader_index(p, c);
    CX_ASSERT(i >= 0 && !p->out[i]); /* never hand one connection to two threads */
    p->out[i] = 1;
    p->st.checkouts++;
    cx__mutex_unlock(&p->mu);
    *db = c;
    return 0;
}

void cx_pool_checkin(struct cx_pool *p, sqlite3 *db) {
    if (p == NULL || db == NULL) return;
    cx__mutex_lock(&p->mu);
    int i = reader_index(p, db);
    CX_ASSERT(i >= 0 && p->out[i]); /* only what was checked out comes back, once */
    p->out[i] = 0;
    p->free_readers[p->nfree++] = db;
    pthread_cond_signal(&p->reader_cv);
    cx__mutex_unlock(&p->mu);
}

/* ---- writes ---- */

/* Appends it to the queue. Caller holds mu. */
static void enqueue_locked(struct cx_pool *p, struct witem *it) {
    CX_ASSERT_HELD(&p->mu);
    it->next = NULL;
    if (p->wq_tail) p->wq_tail->next = it;
    else p->wq_head = it;
    p->wq_tail = it;
    p->queued++;
    pthread_cond_signal(&p->writer_cv);
}

int cx_pool_write(struct cx_pool *p, cx_write_fn fn, void *arg, struct cx_errinfo *ei) {
    if (p == NULL || fn == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pool_write: %s is NULL", p == NULL ? "pool" : "fn");
    if (pthread_equal(pthread_self(), p->writer))
        return cx__err(ei, CX_EINVAL, "cx_pool_write called on the pool's writer thread (from "
                       "inside a write or done callback): it would wait for itself");
    struct witem it;
    memset(&it, 0, sizeof it);
    it.fn = fn;
    it.arg = arg;
    it.sync = 1;
    if (cx__cond_init(&it.cv) < 0)
        return cx__err(ei, CX_ENOMEM, "cx_pool_write: cannot create a condition variable");
    cx__mutex_lock(&p->mu);
    if (p->closing) {
        cx__mutex_unlock(&p->mu);
        pthread_cond_destroy(&it.cv);
        return cx__err(ei, CX_ECLOSED, "cx_pool_write: the pool for '%s' is closing", p->path);
    }
    enqueue_locked(p, &it);
    while (!it.finished) cx__cond_wait(&it.cv, &p->mu, CX_DEADLINE_NONE);
    cx__mutex_unlock(&p->mu);
    pthread_cond_destroy(&it.cv);
    if (it.rc < 0 && ei) *ei = it.ei;
    return it.rc;
}

int cx_pool_write_async(struct cx_pool *p, cx_write_fn fn, void *arg,
                        void (*done)(int rc, void *arg), struct cx_errinfo *ei) {
    if (p == NULL || fn == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pool_write_async: %s is NULL",
                       p == NULL ? "pool" : "fn");
    struct witem *it = cx__calloc(1, sizeof *it);
    if (it == NULL) return cx__err(ei, CX_ENOMEM, "cx_pool_write_async: out of memory");
    it->fn = fn;
    it->arg = arg;
    it->done = done;
    cx__mutex_lock(&p->mu);
    if (p->closing) {
        cx__mutex_unlock(&p->mu);
        cx__free(it);
        return cx__err(ei, CX_ECLOSED, "cx_pool_write_async: the pool for '%s' is closing",
                       p->path);
    }
    enqueue_locked(p, it);
    cx__mutex_unlock(&p->mu);
    return 0;
}

static int exec_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    const char *sql = arg;
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        int code = cx_pool_sqlite_error(db, rc, NULL, NULL);
        cx__err_detail(ei, code, sqlite3_extended_errcode(db), "%s in '%.80s'",
                       err ? err : sqlite3_errstr(rc), sql);
        sqlite3_free(err);
        return code;
    }
    return 0;
}

int cx_pool_exec(struct cx_pool *p, const char *sql, struct cx_errinfo *ei) {
    if (p == NULL || sql == NULL || sql[0] == '\0')
        return cx__err(ei, CX_EINVAL, "cx_pool_exec: %s",
                       p == NULL ? "pool is NULL" : sql == NULL ? "sql is NULL" : "sql is empty");
    return cx_pool_write(p, exec_fn, (void *)sql, ei);
}

int cx_pool_stats(struct cx_pool *p, struct cx_pool_stats *out) {
    if (p == NULL || out == NULL) return CX_EINVAL;
    cx__mutex_lock(&p->mu);
    *out = p->st;
    out->queued = p->queued;
    out->readers_free = p->nfree;
    cx__mutex_unlock(&p->mu);
    return 0;
}
