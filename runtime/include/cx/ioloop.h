/*
 * cx/ioloop.h - the hybrid I/O design (the seed's section 9.2): one I/O thread drives a curl multi
 * handle for every in-flight request, so 1,000 requests in flight need one thread, not 1,000,
 * while the executor's CPU pool does the parsing, validation and caching.
 *
 * A transfer is prepared with cx_http_xfer_new (cx/http.h), handed to cx_ioloop_submit, and when
 * its bytes have moved (or it failed, timed out, was cancelled) the completion callback runs ON
 * THE I/O THREAD. That callback must be short: anything slow done in it delays every other
 * transfer. The router's is: it decodes the wire format (cx_http_xfer_finish, a small JSON or SSE
 * body), decides retry / fallback / done, and hands the raw answer to the CPU pool with one
 * cx_task_resume (cx/executor.h), where the pipeline parses and validates it.
 *
 * The loop also runs timers (cx_ioloop_timer), which the router uses for backoff, for waiting on
 * the rate limiter and for the shared Retry-After pause without blocking a thread.
 *
 * Also here: cx_io_choose, the `auto` choice between the two I/O designs (the seed's section 9.1
 * adaptive executor).
 */
#ifndef CX_IOLOOP_H
#define CX_IOLOOP_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"
#include "cx/config.h"
#include "cx/http.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_ioloop;

struct cx_ioloop_options {
    long max_connections;  /* connections the multi handle keeps for reuse; 0: 2048 (enough to
                              reuse ~1,000 concurrent connections). Per-host: unlimited. */
};
/* Threads: any thread. */
CX_API void cx_ioloop_options_init(struct cx_ioloop_options *o);

/*
 * Starts the I/O thread. opts may be NULL. *out is returned: free with cx_ioloop_free.
 * Returns 0, CX_ENOMEM, CX_EIO (curl multi could not be created), CX_EAGAIN (no thread).
 * Threads: any thread.
 */
CX_API int cx_ioloop_new(const struct cx_ioloop_options *opts, struct cx_ioloop **out,
                         struct cx_errinfo *ei);

/*
 * Stops the loop: every transfer still queued or in flight completes with CX_ECANCELED (its
 * callback runs, on the I/O thread, before this returns), every pending timer runs with
 * canceled = 1, then the thread is joined. Submissions from those callbacks fail with
 * CX_ECLOSED. Accepts NULL.
 * Threads: any thread except the I/O thread; once.
 */
CX_API void cx_ioloop_free(struct cx_ioloop *l);

/* Called on the I/O thread when x is finished moving; x is the caller's again (call
 * cx_http_xfer_finish, on any thread, then cx_http_xfer_free). */
typedef void (*cx_ioloop_done_fn)(struct cx_http_xfer *x, void *ud);

/*
 * Queues x (borrowed until `done` runs; do not touch it meanwhile). The deadline and cancel flag
 * of the request x was built from apply: a deadline already past ends it at once with
 * CX_ETIMEDOUT, the total timeout is the time left to the deadline when the transfer starts.
 * Returns 0 (then done runs exactly once) or CX_EINVAL / CX_ECLOSED (then it never runs).
 * Threads: any thread, including the I/O thread (from a callback).
 */
CX_API int cx_ioloop_submit(struct cx_ioloop *l, struct cx_http_xfer *x, cx_ioloop_done_fn done,
                            void *ud, struct cx_errinfo *ei);

/*
 * Makes the loop look at the cancel flags (struct cx_http_request.cancel) of every transfer it
 * holds now, ending the flagged ones with CX_ECANCELED without waiting for curl's next progress
 * call. Set the flag first, then kick.
 * Threads: any thread.
 */
CX_API void cx_ioloop_kick(struct cx_ioloop *l);

/* Runs on the I/O thread at (or soon after) `when`, or with canceled = 1 at shutdown. Short. */
typedef void (*cx_ioloop_timer_fn)(void *ud, int canceled);

/*
 * Schedules fn(ud, 0) on the I/O thread at `when` (a cx_now_ns() time; past = as soon as
 * possible). Returns 0 (fn runs exactly once) or CX_ENOMEM / CX_ECLOSED (never runs).
 * Threads: any thread, including the I/O thread.
 */
CX_API int cx_ioloop_timer(struct cx_ioloop *l, uint64_t when, cx_ioloop_timer_fn fn, void *ud,
                           struct cx_errinfo *ei);

/* 1 when the calling thread is l's I/O thread. Threads: any thread. */
CX_API int cx_ioloop_on_thread(const struct cx_ioloop *l);

struct cx_ioloop_stats {
    uint64_t submitted;      /* transfers accepted */
    uint64_t completed;      /* completion callbacks run */
    uint64_t in_flight;      /* in the multi handle now */
    uint64_t max_in_flight;  /* the most at once */
    uint64_t handles_created; /* curl easy handles made (reused after each transfer) */
    uint64_t timers;         /* timers run */
    uint64_t cpu_ns;         /* CPU time the I/O thread has used (curl, callbacks, timers) */
};
/* A snapshot (counters read one by one). Threads: any thread. */
CX_API void cx_ioloop_stats(struct cx_ioloop *l, struct cx_ioloop_stats *out);

/*
 * The `auto` I/O design (seed 9.1): picks the design and the worker-pool size for a batch of
 * `batch` queries on `cores` CPUs, given `cpu_share`, the measured fraction (0..1) of a recent
 * query's wall time spent on CPU (parsing, validation, caching); pass a negative value when
 * nothing has been measured yet (treated as 0.1).
 * The rule:
 *   - batch <= 32: thread-local, threads = batch (every query gets a thread and its own
 *     connection; the thread cost is small at this size and no hand-off latency is paid);
 *   - batch > 32 and cpu_share < 0.5 (I/O-bound): hybrid, threads = min(cores, max(1,
 *     ceil(batch * cpu_share))) CPU workers behind the one I/O thread;
 *   - batch > 32 and cpu_share >= 0.5 (CPU-bound), batch <= 256: thread-local, threads =
 *     min(batch, ceil(cores / cpu_share)), enough threads to keep every core busy while some
 *     wait on I/O;
 *   - batch > 256: hybrid, threads = cores (a thread per request no longer pays).
 * threads is always in 1..1024. Returns 0 or CX_EINVAL (NULL out-params, cores < 1).
 * Threads: any thread.
 */
CX_API int cx_io_choose(size_t batch, double cpu_share, int cores, enum cx_io_design *design,
                        int *threads);

#ifdef __cplusplus
}
#endif
#endif /* CX_IOLOOP_H */
