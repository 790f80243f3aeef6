/*
 * cx/dbpool.h - a SQLite connection pool: WAL mode, N read-only connections handed out one
 * thread at a time, and one writer thread that group-commits queued writes.
 *
 * The seed's ThreadSafeSemanticCache/get_connection_pool (section 4.4) in C:
 *   - readers: `readers` connections (CORTEX_DB_POOL_SIZE, default 5; the config module reads
 *     the environment and passes the number here), each with PRAGMA query_only=ON. A thread
 *     takes one with cx_pool_checkout and gives it back with cx_pool_checkin; a connection is
 *     never handed to two threads at once. Checkout waits at most checkout_timeout_ms and then
 *     fails with CX_ETIMEDOUT ("no database connection free within N ms (pool of M)").
 *   - writes: every write is a callback queued to the single writer thread. The writer takes
 *     up to max_batch queued writes, runs them inside one BEGIN IMMEDIATE transaction (each in
 *     its own SAVEPOINT, so one failing write rolls back only itself), commits once, then
 *     completes each write in queue order. Throughput comes from the single commit per batch.
 *   - several processes (or several pools in one process) may open the same file: WAL lets
 *     their readers run concurrently; writers serialise on SQLite's write lock, waited for with
 *     the busy timeout.
 *
 * Durability: PRAGMA synchronous=NORMAL in WAL mode: a committed write survives a crash of the
 * process, not necessarily a power loss (the pool backs a cache and a history table).
 * Every connection also gets PRAGMA temp_store=MEMORY (temporary b-trees and statement journals
 * in memory rather than files under /var/tmp) and the busy timeout.
 *
 * Typical use:
 *     struct cx_pool_options o; cx_pool_options_init(&o); o.path = "/var/lib/cortex/cache.db";
 *     if (cx_pool_new(&o, &pool, &ei) < 0) fprintf(stderr, "%s\n", ei.msg);
 *     cx_pool_exec(pool, "CREATE TABLE IF NOT EXISTS t(x)", &ei);
 *     cx_pool_write(pool, my_insert, &row, &ei);                 // blocks until committed
 *     cx_pool_checkout(pool, CX_DEADLINE_NONE, &db, &ei); ...sqlite3_prepare_v2(db,...)...;
 *     cx_pool_checkin(pool, db);
 *     cx_pool_free(pool);
 */
#ifndef CX_DBPOOL_H
#define CX_DBPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_pool;

struct cx_pool_options {
    const char *path;        /* borrowed (copied by open); the database file, created if missing */
    int readers;             /* read-only connections, >= 1 (default 5: CORTEX_DB_POOL_SIZE) */
    int busy_timeout_ms;     /* SQLite busy timeout on every connection, >= 0 (default 5000) */
    int checkout_timeout_ms; /* longest cx_pool_checkout wait; < 0: no limit (default 5000) */
    size_t max_batch;        /* most writes per transaction, >= 1 (default 512) */
};

/* Fills o with the defaults above (path NULL). Threads: any thread. */
CX_API void cx_pool_options_init(struct cx_pool_options *o);

/*
 * Opens the pool: creates the file if missing, switches it to WAL, opens the writer and the
 * readers and starts the writer thread.
 * o: borrowed. out: returned, release with cx_pool_free.
 * Errors: CX_EINVAL (NULL/empty path, readers < 1, busy_timeout_ms < 0, max_batch 0: the message
 * names the field and value); CX_EPERM "cannot open database '<path>': ..." (cannot create or
 * open the file, or it is read-only); CX_ECORRUPT "database '<path>' is corrupt or not a
 * database: ..." (the file is never modified in that case); CX_EBUSY (another process held a
 * lock past the busy timeout); CX_EIO, CX_EDB, CX_ENOMEM. ei->detail holds the SQLite extended
 * result code when there is one. On failure *out is untouched and nothing is left open.
 * Threads: any thread.
 */
CX_API int cx_pool_new(const struct cx_pool_options *o, struct cx_pool **out,
                        struct cx_errinfo *ei);

/*
 * Finishes every queued write (their completions run), joins the writer and closes every
 * connection. All reader connections must have been checked in (a checked-out connection at
 * close is a broken invariant: abort). Accepts NULL.
 * Threads: not from the writer thread (inside a cx_write_fn or a done callback); no other thread
 * may use the pool during or after the call.
 */
CX_API void cx_pool_free(struct cx_pool *p);

/*
 * Takes a read-only connection (PRAGMA query_only=ON) for the calling thread's exclusive use
 * until cx_pool_checkin. Waits until one is free, until `deadline` (cx/clock.h; CX_DEADLINE_NONE
 * for no deadline of your own) or until checkout_timeout_ms have passed, whichever comes first.
 * db: returned. Leave no statement unfinalized and no transaction open when checking it in.
 * Errors: CX_EINVAL (NULL arguments), CX_ETIMEDOUT "no database connection free within N ms
 * (pool of M)", CX_ECLOSED (the pool is closing).
 * Threads: any thread; a thread may hold several connections at once.
 */
CX_API int cx_pool_checkout(struct cx_pool *p, uint64_t deadline, sqlite3 **db,
                            struct cx_errinfo *ei);

/* Gives back a connection from cx_pool_checkout (NULL db: no-op). Giving back a connection the
 * pool does not have checked out is a broken invariant (abort). Threads: any thread. */
CX_API void cx_pool_checkin(struct cx_pool *p, sqlite3 *db);

/*
 * A write: runs on the writer thread inside the group transaction and its own SAVEPOINT, on the
 * writer connection (which it may also read through). Returns 0 or a negative CX_E*; on failure
 * fill ei (cx_pool_sqlite_error helps) and the pool rolls back to the savepoint: the write's
 * changes vanish, the other writes of the batch are unaffected. Must not BEGIN/COMMIT itself,
 * must finalize its statements, and must not call cx_pool_write (it would wait for itself:
 * CX_EINVAL); cx_pool_write_async is allowed (runs in a later batch). It should not check out a
 * reader either: a thread holding the last reader may be waiting for this very write (the
 * checkout would then fail after checkout_timeout_ms). Read through db instead.
 */
typedef int (*cx_write_fn)(sqlite3 *db, void *arg, struct cx_errinfo *ei);

/*
 * Queues fn(arg) and blocks until its transaction has committed (or failed).
 * arg: borrowed until the call returns. Returns fn's result when it failed, else 0 once
 * committed, else the error of BEGIN/COMMIT (CX_EBUSY when another process held the write lock
 * past the busy timeout, CX_EIO, CX_EDB...). ei gets fn's message or the commit error.
 * Errors before queueing: CX_EINVAL (NULL p/fn, or called on the writer thread), CX_ECLOSED,
 * CX_ENOMEM.
 * Threads: any thread except the pool's writer thread.
 */
CX_API int cx_pool_write(struct cx_pool *p, cx_write_fn fn, void *arg, struct cx_errinfo *ei);

/*
 * Queues fn(arg) and returns at once. done (may be NULL) runs exactly once on the writer thread
 * after the write's transaction has committed or failed, with the same rc cx_pool_write would
 * return; writes complete in the order they were queued. arg: borrowed until done runs. If this
 * call fails (CX_EINVAL, CX_ECLOSED, CX_ENOMEM) neither fn nor done ever runs.
 * done must not block on the pool (no cx_pool_write, no cx_pool_free).
 * Threads: any thread, including the writer thread.
 */
CX_API int cx_pool_write_async(struct cx_pool *p, cx_write_fn fn, void *arg,
                               void (*done)(int rc, void *arg), struct cx_errinfo *ei);

/*
 * Runs one or more SQL statements (schema, DDL) through the writer, in its own savepoint of a
 * group transaction, and waits for the commit. sql: borrowed. Statements that cannot run inside
 * a transaction (VACUUM, PRAGMA journal_mode) fail. Errors as cx_pool_write; a failing statement
 * gives "<sql error message> in '<first 80 characters of sql>'".
 * Threads: any thread except the pool's writer thread.
 */
CX_API int cx_pool_exec(struct cx_pool *p, const char *sql, struct cx_errinfo *ei);

/* The database path the pool was opened with (owned by the pool). Threads: any thread. */
CX_API const char *cx_pool_path(const struct cx_pool *p);

/* Counters since open; read under the pool's lock, each field consistent at one moment. */
struct cx_pool_stats {
    uint64_t writes;            /* writes completed (committed or failed) */
    uint64_t failed_writes;     /* of which failed (fn error or commit error) */
    uint64_t transactions;      /* group transactions committed or attempted */
    uint64_t checkouts;         /* successful cx_pool_checkout calls */
    uint64_t checkout_timeouts; /* cx_pool_checkout calls that timed out */
    size_t queued;              /* writes waiting for the writer now */
    int readers;                /* reader connections */
    int readers_free;           /* reader connections not checked out now */
};
/* Fills out. Errors: CX_EINVAL (NULL). Threads: any thread. */
CX_API int cx_pool_stats(struct cx_pool *p, struct cx_pool_stats *out);

/*
 * Translates a SQLite result code into a CX_E* and fills ei with "<what>: <sqlite3_errmsg(db)>"
 * and the extended result code in ei->detail. Mapping: BUSY/LOCKED -> CX_EBUSY, NOTADB/CORRUPT
 * -> CX_ECORRUPT, CANTOPEN/READONLY/PERM/AUTH -> CX_EPERM, FULL/IOERR -> CX_EIO, NOMEM ->
 * CX_ENOMEM, CONSTRAINT -> CX_EEXIST, anything else -> CX_EDB. db may be NULL, what may be NULL.
 * For cx_write_fn implementations and reader code. Threads: the thread using db.
 */
CX_API int cx_pool_sqlite_error(sqlite3 *db, int rc, const char *what, struct cx_errinfo *ei);

#ifdef __cplusplus
}
#endif
#endif /* CX_DBPOOL_H */
