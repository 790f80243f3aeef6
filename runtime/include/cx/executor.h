/*
 * cx/executor.h - a fixed pool of worker threads that runs batches of tasks (one task per LLM
 * query) and hands results back as they complete.
 *
 * The seed's ParallelLLMExecutorThreaded (section 4.2) in C: per-worker deques with work
 * stealing, a completion queue per batch, an optional progress callback (completed, total)
 * that never runs concurrently with itself, and per-batch statistics (the seed's
 * ExecutionStats). One task's failure never affects another.
 *
 * Execution modes (enum cx_exec_mode, cx/common.h) change scheduling only, never results:
 *   CX_MODE_SERIAL  one worker; tasks run one at a time in submission order (across all batches
 *                   of the executor). A task that suspends for hybrid I/O keeps the executor
 *                   busy until it has completed: no other task starts meanwhile, so serial I/O
 *                   never overlaps either. options.threads is ignored (one worker).
 *   CX_MODE_GIL     each worker holds the executor's emulated GIL (cx/gil.h) while it runs a
 *                   task; the task releases it around blocking I/O with cx_gil_io_begin/end and
 *                   yields it at cx_gil_checkpoint() after the switch interval.
 *   CX_MODE_FREE    no global lock.
 *
 * Typical use:
 *     struct cx_executor_options o; cx_executor_options_init(&o); o.threads = 8;
 *     cx_executor_new(&o, &ex, &ei);
 *     cx_executor_run(ex, tasks, n, on_progress, ud, &batch);   // submit + wait
 *     cx_batch_stats(batch, &st); res = cx_batch_results(batch);  // res[i] for tasks[i]
 *     cx_batch_free(batch); cx_executor_free(ex);
 * or asynchronously: cx_executor_submit, then cx_batch_next in a loop (completion order).
 *
 * From C++, name the stats types with `struct` (struct cx_batch_stats st;): the functions of the
 * same name hide them, as with POSIX stat.
 */
#ifndef CX_EXECUTOR_H
#define CX_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_executor;
struct cx_batch;
struct cx_task_ctx;
struct cx_task_handle;
struct cx_gil;

/* One per task. The executor zeroes it and sets `index`; the task fills value/tokens/cost (and
 * the error message through cx_task_set_error); the executor sets status, start_ns, end_ns. */
struct cx_task_result {
    int status;        /* 0 or the CX_E* the task returned; CX_ECANCELED if it never ran */
    char *error;       /* optional message from cx_task_set_error; freed by cx_batch_free */
    void *value;       /* the task's output: owned by the caller, never freed by the executor */
    uint64_t tokens;   /* set by the task */
    double cost;       /* set by the task (USD) */
    uint64_t start_ns; /* cx_now_ns() when the task first started running; 0 if it never ran */
    uint64_t end_ns;   /* cx_now_ns() when it completed (ran, failed or was cancelled) */
    size_t index;      /* its position in the submitted array */
};

/*
 * A task. Returns 0 on success or a negative CX_E* on failure (the failure is recorded in its
 * result and affects no other task). Special return: CX_EAGAIN after cx_task_suspend() (see
 * hybrid I/O below); CX_EAGAIN without a suspension is an ordinary failure.
 * ctx and res are borrowed: valid until the function returns. Runs on a worker thread.
 */
typedef int (*cx_task_fn)(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);

struct cx_task {
    cx_task_fn fn;  /* required */
    void *arg;      /* passed back unchanged; owned by the caller */
};

/* The seed's ExecutionStats. Latencies are end_ns - start_ns of the tasks that ran. */
struct cx_batch_stats {
    size_t total;          /* tasks submitted */
    size_t successful;     /* completed with status 0 */
    size_t failed;         /* completed with status < 0 (cancelled ones included) */
    size_t cancelled;      /* completed with CX_ECANCELED (also counted in failed) */
    double total_time_s;   /* submission to last completion (to now while still running) */
    double mean_latency_s; /* over tasks that ran; 0 when none did */
    double max_latency_s;
    uint64_t tokens;       /* sum over completed tasks */
    double cost;           /* sum over completed tasks */
};

struct cx_executor_options {
    int threads;                 /* worker threads, 1..1024; default 10 (ignored in serial) */
    enum cx_exec_mode mode;      /* default CX_MODE_FREE */
    uint64_t switch_interval_ns; /* GIL switch interval; default (and 0) 5 ms */
};

/* Fills in the defaults. Threads: any thread. */
CX_API void cx_executor_options_init(struct cx_executor_options *o);

/* "serial", "gil" or "free" ("unknown" otherwise). Threads: any thread. */
CX_API const char *cx_executor_mode_name(enum cx_exec_mode mode);

/*
 * Starts the worker threads. o may be NULL (defaults) and is borrowed. *out is returned: free
 * it with cx_executor_free. Returns 0; CX_EINVAL (threads out of range, unknown mode, out NULL;
 * ei names the field); CX_ENOMEM; CX_EAGAIN (the system refused a thread; none is left running).
 * Threads: any thread.
 */
CX_API int cx_executor_new(const struct cx_executor_options *o, struct cx_executor **out,
                           struct cx_errinfo *ei);

/*
 * Shuts the pool down: new submissions fail with CX_ECLOSED; queued tasks of live batches
 * complete with CX_ECANCELED; running tasks see cx_task_cancelled()==1 and are waited for, as
 * are suspended ones (whoever holds their handles must still resume them, or this waits
 * forever); then every thread is joined. Batches may be freed before or after, but not
 * concurrently with this call. Accepts NULL.
 * Threads: any thread except a worker of ex, and not one holding ex's GIL; not concurrently
 * with other calls on ex.
 */
CX_API void cx_executor_free(struct cx_executor *ex);

/* Pool size (1 in serial mode), the mode, and the GIL of a gil-mode executor (NULL otherwise;
 * the caller may hold it around its own CPU sections, e.g. merging results on its thread).
 * Threads: any thread. */
CX_API int cx_executor_threads(const struct cx_executor *ex);
CX_API enum cx_exec_mode cx_executor_mode(const struct cx_executor *ex);
CX_API struct cx_gil *cx_executor_gil(struct cx_executor *ex);

/* Pool-wide counters since creation, for tests and benchmarks. Threads: any thread. */
struct cx_executor_stats {
    uint64_t tasks_run;     /* task and continuation invocations */
    uint64_t steals;        /* items a worker took from another worker's deque */
    uint64_t parks;         /* times a worker went to sleep for lack of work */
};
CX_API void cx_executor_stats(struct cx_executor *ex, struct cx_executor_stats *out);

/*
 * Submits n tasks (the array is copied; args are not) and returns at once. Tasks are spread
 * round-robin over the workers' deques. *out is returned: free it with cx_batch_free.
 * n == 0 gives a batch that is already complete. Returns 0; CX_EINVAL (ex, out or a task's fn
 * is NULL), CX_ENOMEM or CX_ECLOSED (executor shutting down); on failure nothing is queued.
 * Threads: any thread; several batches may be in flight at once from different threads.
 */
CX_API int cx_executor_submit(struct cx_executor *ex, const struct cx_task *tasks, size_t n,
                              struct cx_batch **out);

/*
 * Returns the next completed result, in completion order (*res points into the batch; valid
 * until cx_batch_free). Returns 0; CX_ENOENT when every result has been returned;
 * CX_ETIMEDOUT when `deadline` (cx/clock.h; 0 = poll) passed first. While it blocks it releases
 * the calling thread's GIL, if any (cx_gil_io_begin).
 * Threads: one consumer thread at a time per batch (next and wait must not run concurrently).
 */
CX_API int cx_batch_next(struct cx_batch *b, uint64_t deadline, struct cx_task_result **res);

/*
 * Drains the results not yet returned by cx_batch_next, calling progress(done, total, ud) after
 * each one (done counts all results returned so far). progress runs on this thread only, so
 * never concurrently with itself; it may be NULL. Returns 0 when all results are in (then
 * cx_batch_results is complete), CX_ETIMEDOUT when `deadline` passed first (call again to go
 * on). Releases the calling thread's GIL while it blocks, like cx_batch_next.
 * Threads: one consumer thread at a time per batch.
 */
CX_API int cx_batch_wait(struct cx_batch *b, uint64_t deadline,
                         void (*progress)(size_t done, size_t total, void *ud), void *ud);

/*
 * Cancels the batch: its queued tasks complete with CX_ECANCELED without running; running and
 * suspended ones see cx_task_cancelled()==1 (they decide what to do; their continuations still
 * run). Idempotent. Threads: any thread.
 */
CX_API void cx_batch_cancel(struct cx_batch *b);

/* 1 once every task of the batch has completed (results may not all be consumed yet).
 * Threads: any thread. */
CX_API int cx_batch_done(const struct cx_batch *b);

/* Statistics over the tasks completed so far (all of them after cx_batch_wait returned 0).
 * Threads: any thread. */
CX_API void cx_batch_stats(const struct cx_batch *b, struct cx_batch_stats *out);

/* Number of tasks submitted. Threads: any thread. */
CX_API size_t cx_batch_size(const struct cx_batch *b);

/*
 * The n results in submission order: results[i] belongs to tasks[i]. Owned by the batch.
 * Complete only after cx_batch_wait returned 0 (or cx_batch_next returned CX_ENOENT); a result
 * returned by cx_batch_next is complete too.
 * Threads: the consumer thread.
 */
CX_API struct cx_task_result *cx_batch_results(struct cx_batch *b);

/*
 * Frees the batch, its results' error strings (not their values). If tasks are still queued or
 * running it cancels the batch and waits for them first. Accepts NULL.
 * Threads: any thread, once; not concurrently with other calls on b or with cx_executor_free.
 */
CX_API void cx_batch_free(struct cx_batch *b);

/*
 * Synchronous convenience: submit + cx_batch_wait(CX_DEADLINE_NONE). Returns 0 when the batch
 * ran (individual tasks may have failed: look at the stats or results), or submit's error (then
 * progress never ran and *out is untouched). *out is returned: free with cx_batch_free.
 * Threads: any thread except a worker of ex.
 */
CX_API int cx_executor_run(struct cx_executor *ex, const struct cx_task *tasks, size_t n,
                           void (*progress)(size_t done, size_t total, void *ud), void *ud,
                           struct cx_batch **out);

/* ---- inside a task (ctx is the one the task was called with) ---- */

/* 1 when the task's batch was cancelled or the executor is shutting down. Threads: any. */
CX_API int cx_task_cancelled(const struct cx_task_ctx *ctx);

/* Records a printf-style message in res->error (replacing an earlier one). If memory runs out
 * the message is dropped; the status still tells the failure. Threads: the task's thread. */
CX_API void cx_task_set_error(struct cx_task_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Index (0..threads-1) of the worker running the task. Threads: the task's thread. */
CX_API int cx_task_worker(const struct cx_task_ctx *ctx);

/* Position of the task in its submitted array. Threads: any. */
CX_API size_t cx_task_index(const struct cx_task_ctx *ctx);

/*
 * Hybrid I/O (seed 9.2): a task may hand its blocking I/O to another thread (a curl-multi loop)
 * and free its worker.
 *   1. In the task: h = cx_task_suspend(ctx); hand h (and what the I/O needs) to the I/O
 *      thread; return CX_EAGAIN. Returning anything else after suspending is a programming
 *      error (abort). Do not touch res after handing h over.
 *   2. Later, from ANY thread, exactly once: cx_task_resume(h, next, arg) queues the
 *      continuation next(ctx, arg, res) on the pool with the same result struct. It may
 *      suspend again. Resuming before the task has returned is fine (the continuation is
 *      queued once it has).
 *   3. The task completes when a function of it returns something other than CX_EAGAIN after
 *      suspending (or anything at all without suspending).
 * A suspended task is not cancelled by cx_batch_cancel: its continuation still runs and sees
 * cx_task_cancelled()==1. In serial mode no other task starts while one is suspended.
 * cx_task_resume returns 0, or CX_EINVAL (h or next NULL; nothing queued).
 * Threads: suspend on the task's thread; resume from any thread.
 */
CX_API struct cx_task_handle *cx_task_suspend(struct cx_task_ctx *ctx);
CX_API int cx_task_resume(struct cx_task_handle *h, cx_task_fn next, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CX_EXECUTOR_H */
