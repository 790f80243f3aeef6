/*
 * cx/history.h - the installation history table on the SQLite pool (the seed's
 * installation_history.py): one row per install request with its plan, the validator's
 * verdict, how it was executed and the time each stage took.
 *
 * Writes go through the pool's single writer (group commit), so records from many threads are
 * safe and cheap; reads use a pooled read-only connection. Rows are never updated or deleted
 * here.
 */
#ifndef CX_HISTORY_H
#define CX_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"
#include "cx/dbpool.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_history_entry {
    int64_t id;            /* assigned by cx_history_record (ignored on input) */
    char *created_at;      /* UTC "2026-11-27T03:04:05.678Z"; NULL on input: now */
    char *request;         /* what was asked, e.g. "install nginx redis"; required */
    char *plan_json;       /* merged plan as a JSON array (cx_plan_to_json), may be NULL */
    char *validation_json; /* the validator's reasons as a JSON array, may be NULL */
    char *executed;        /* "dry-run" | "simulated" | "real" | "refused"; required */
    double parse_s, llm_s, merge_s, apt_s, total_s; /* stage durations in seconds */
    int status;            /* 0 on success, else the run's negative CX_E* code */
    int commands_run;      /* commands started by a real execution ("real"), counting a failing
                              last one; 0 otherwise. A stopped run (status CX_EIO) shows how
                              far it got: commands_run of the plan's length */
};

/*
 * Creates the installation_history table and its index if missing (idempotent; safe to call
 * from several processes or pools on the same file). A table from before the commands_run
 * column gets it (ALTER TABLE ... ADD COLUMN, default 0 for the old rows). pool: borrowed.
 * Errors: CX_EINVAL (NULL pool), those of cx_pool_exec.
 * Threads: any thread except the pool's writer thread.
 */
CX_API int cx_history_init(struct cx_pool *pool, struct cx_errinfo *ei);

/*
 * Inserts e (borrowed; its strings are copied by SQLite) and waits until it is committed.
 * id_out (may be NULL) gets the new row id.
 * Errors: CX_EINVAL (NULL pool/e/request, executed not one of the four values: "executed must
 * be dry-run, simulated, real or refused, got 'x'"), errors of cx_pool_write (CX_EBUSY, CX_EIO,
 * CX_EDB "no such table: installation_history" when cx_history_init was not called...).
 * Threads: any thread except the pool's writer thread.
 */
CX_API int cx_history_record(struct cx_pool *pool, const struct cx_history_entry *e,
                             int64_t *id_out, struct cx_errinfo *ei);

/*
 * The newest `limit` entries (0: all), newest first (by id). out: returned array of *n entries,
 * release with cx_history_entries_free(out, n); NULL with *n 0 when there are none. On failure
 * *out is NULL and *n 0.
 * Errors: CX_EINVAL (NULL arguments), CX_ETIMEDOUT (no reader free), CX_ENOMEM, CX_EDB...
 * Threads: any thread.
 */
CX_API int cx_history_list(struct cx_pool *pool, size_t limit, struct cx_history_entry **out,
                           size_t *n, struct cx_errinfo *ei);

/* Frees n entries returned by cx_history_list and the array. Accepts NULL. Threads: any. */
CX_API void cx_history_entries_free(struct cx_history_entry *e, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* CX_HISTORY_H */
