/*
 * executor.c - the worker pool that runs batches of tasks: per-worker deques with work
 * stealing, a lock-free completion queue per batch, per-batch statistics, cancellation,
 * suspension for hybrid I/O, and the three execution modes. It does not know what a task does
 * (HTTP, parsing, caching live in the pipeline) and it does not read the environment (the
 * config module turns CORTEX_THREAD_POOL_SIZE into options.threads).
 *
 * DESIGN
 *
 * Threads. `nworkers` worker threads, started by cx_executor_new and joined by
 * cx_executor_free (one in serial mode). Callers' threads submit batches and consume results;
 * any thread (typically a curl-multi I/O thread) may resume a suspended task.
 *
 * Queues. Each worker owns a deque: an intrusive doubly linked list of task contexts behind one
 * mutex (uncontended in the common case; a Chase-Lev array deque would need allocation on push
 * and we want submission to allocate once, up front, per batch). Submission spreads a batch
 * round-robin over the deques, appending at the back under one lock per deque. A worker pops
 * the front of its own deque; when that is empty it steals the front item of another deque,
 * starting at a random victim (deque sizes are atomics so empty victims cost no lock).
 * Continuations of resumed tasks are pushed at the FRONT of a deque, so a task whose I/O
 * finished is finished before new tasks start (lower latency, fewer tasks in flight).
 * `pending` counts items in all deques (it may dip below zero for a moment, since it is
 * raised after the items are pushed).
 *
 * Parking. A worker that finds nothing takes idle_mu, increments `sleepers`, re-checks
 * `pending` and sleeps on idle_cond. Producers raise `pending` first and then read `sleepers`;
 * both are seq_cst so one of the two sees the other (no lost wake-up, no busy spin); a
 * producer that sees sleepers signals under idle_mu.
 *
 * Completion. When a task completes, its worker writes status and end time, marks the context
 * DONE (release), pushes it on the batch's completion queue (cqueue.c: Vyukov MPSC, lock-free
 * unless the consumer sleeps) and finally increments batch->released: that is its last access
 * to the batch, and cx_batch_free waits for released == n before freeing it. The consumer
 * (cx_batch_next / cx_batch_wait) pops in completion order; the progress callback runs on the
 * consumer's thread, so never concurrently with itself and never under our locks.
 *
 * Ordering. Within one deque, FIFO. Serial mode has one deque and one worker, so tasks run in
 * submission order (batches in the order they were submitted). Nothing else is promised.
 *
 * Suspension (hybrid I/O). A context has an atomic state: RUNNING -> SUSPENDING (the task
 * called cx_task_suspend) -> SUSPENDED (the worker saw it return CX_EAGAIN) -> QUEUED (resume
 * queued the continuation). If resume comes first (SUSPENDING -> RESUMED_EARLY), the worker
 * that sees the CAS fail runs the continuation itself. In serial mode `suspended` counts the
 * suspended task and the lone worker takes only continuations while it is non-zero, so a
 * suspended task's I/O never overlaps another task.
 *
 * Modes. GIL mode wraps each task invocation in cx_gil_acquire/release of the executor's GIL;
 * the task releases it around blocking I/O (cx_gil_io_begin/end). The worker's own queue
 * handling runs without the GIL.
 *
 * Cancellation and shutdown. cx_batch_cancel sets the batch's flag (running tasks poll it with
 * cx_task_cancelled), then unlinks the batch's queued tasks from every deque and completes them
 * with CX_ECANCELED on the calling thread; a worker that popped one just before does the same
 * instead of running it. Continuations are never removed: they run and see the flag.
 * cx_executor_free refuses new batches (shutting, checked under mu by submit), cancels every
 * live batch, waits on drain_cond until `outstanding` (tasks submitted and not complete,
 * suspended ones included) is 0, sets `stop`, wakes and joins every worker, then waits for
 * resumers still inside cx_task_resume (a brief window after their push) and detaches the
 * remaining batches (their ex becomes NULL) so they can be freed later.
 */
#include "cx/executor.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cqueue.h"
#include "cx/clock.h"
#include "cx/gil.h"
#include "cx_internal.h"
#include "cx_testing.h"

#define EXECUTOR_DEFAULT_THREADS 10
#define EXECUTOR_MAX_THREADS 1024

enum task_state {
    ST_QUEUED = 0,
    ST_RUNNING,
    ST_SUSPENDING,
    ST_SUSPENDED,
    ST_RESUMED_EARLY,
    ST_DONE
};

struct cx_task_ctx {
    struct cx__cq_node cq;             /* completion-queue link */
    struct cx_task_ctx *dq_prev;       /* guarded by the holding deque's mu */
    struct cx_task_ctx *dq_next;       /* guarded by the holding deque's mu */
    struct cx_batch *batch;            /* immutable */
    struct cx_task_result *res;        /* immutable: &batch->results[index] */
    cx_task_fn fn;                     /* the function to run next (task or continuation) */
    void *arg;
    cx_task_fn next_fn;                /* set by an early cx_task_resume */
    void *next_arg;
    _Atomic int state;                 /* enum task_state */
    int is_cont;                       /* the queued item is a continuation */
    int suspend_req;                   /* set by cx_task_suspend during the current run */
    int worker;                        /* index of the worker running it */
};

struct cx_batch {
    struct cx_executor *ex;       /* NULL once cx_executor_free detached it */
    struct cx_batch *prev, *next; /* guarded by ex->mu: the executor's live batches */
    size_t n;
    struct cx_task_ctx *tasks;
    struct cx_task_result *results;
    _Atomic int cancelled;
    _Atomic size_t completed;     /* tasks completed (pushed on cq) */
    _Atomic size_t released;      /* completions whose thread no longer touches the batch */
    size_t consumed;              /* consumer only: results handed out by next/wait */
    uint64_t submit_ns;
    struct cx__cqueue cq;
};

struct deque {
    struct cx__mutex mu;
    struct cx_task_ctx *head, *tail; /* guarded by mu */
    _Atomic long size;               /* written under mu; read lock-free to skip empty ones */
};

struct worker {
    struct cx_executor *ex;
    int index;
    pthread_t th;
    uint64_t rng;                    /* victim selection; this worker only */
    struct deque dq;
    _Atomic uint64_t tasks_run, steals, parks;
    char pad[64]; /* keeps neighbouring workers' hot fields off one cache line */
};

struct cx_executor {
    enum cx_exec_mode mode;
    int nworkers;
    struct worker *w;
    struct cx_gil *gil;               /* GIL mode only */
    _Atomic size_t rr;                /* round-robin cursor for submissions and resumes */
    _Atomic long pending;             /* items in all deques */
    _Atomic long pending_conts;       /* of which continuations */
    _Atomic int suspended;            /* serial mode: tasks suspended (0 or 1) */
    struct cx__mutex idle_mu;
    pthread_cond_t idle_cond;
    _Atomic int sleepers;             /* written under idle_mu */
    _Atomic int stop;
    struct cx__mutex mu;
    pthread_cond_t drain_cond;        /* outstanding reached 0 while shutting */
    struct cx_batch *batches;         /* guarded by mu */
    _Atomic int shutting;             /* set under mu */
    _Atomic long outstanding;         /* tasks submitted and not yet complete */
    _Atomic long resumers;            /* threads inside cx_task_resume */
};

/* ---- options ---- */

void cx_executor_options_init(struct cx_executor_options *o) {
    if (o == NULL) return;
    o->threads = EXECUTOR_DEFAULT_THREADS;
    o->mode = CX_MODE_FREE;
    o->switch_interval_ns = CX_GIL_DEFAULT_INTERVAL_NS;
}

const char *cx_executor_mode_name(enum cx_exec_mode mode) {
    switch (mode) {
    case CX_MODE_SERIAL: return "serial";
    case CX_MODE_GIL: return "gil";
    case CX_MODE_FREE: return "free";
    }
    return "unknown";
}

/* ---- deques (caller holds nothing; each takes the deque's mu) ---- */

static void dq_link_back(struct deque *d, struct cx_task_ctx *t) {
    CX_ASSERT_HELD(&d->mu);
    t->dq_next = NULL;
    t->dq_prev = d->tail;
    if (d->tail) d->tail->dq_next = t; else d->head = t;
    d->tail = t;
    atomic_fetch_add_explicit(&d->size, 1, memory_order_relaxed);
}

static void dq_unlink(struct deque *d, struct cx_task_ctx *t) {
    CX_ASSERT_HELD(&d->mu);
    if (t->dq_prev) t->dq_prev->dq_next = t->dq_next; else d->head = t->dq_next;
    if (t->dq_next) t->dq_next->dq_prev = t->dq_prev; else d->tail = t->dq_prev;
    t->dq_next = t->dq_prev = NULL;
    atomic_fetch_sub_explicit(&d->size, 1, memory_order_relaxed);
}

static void dq_push_front(struct deque *d, struct cx_task_ctx *t) {
    cx__mutex_lock(&d->mu);
    t->dq_prev = NULL;
    t->dq_next = d->head;
    if (d->head) d->head->dq_prev = t; else d->tail = t;
    d->head = t;
    atomic_fetch_add_explicit(&d->size, 1, memory_order_relaxed);
    cx__mutex_unlock(&d->mu);
}

/* Pops the front item; with only_cont, only if it is a continuation. */
static struct cx_task_ctx *dq_pop_front(struct deque *d, int only_cont) {
    if (atomic_load_explicit(&d->size, memory_order_relaxed) == 0) return NULL;
    cx__mutex_lock(&d->mu);
    struct cx_task_ctx *t = d->head;
    if (t != NULL && (!only_cont || t->is_cont)) dq_unlink(d, t); else t = NULL;
    cx__mutex_unlock(&d->mu);
    return t;
}

/* ---- waking workers ---- */

static void wake_workers(struct cx_executor *ex, size_t k) {
    int s = atomic_load(&ex->sleepers); /* seq_cst: after our raise of pending */
    if (s <= 0) return;
    cx__mutex_lock(&ex->idle_mu);
    if (k >= (size_t)atomic_load_explicit(&ex->sleepers, memory_order_relaxed))
        pthread_cond_broadcast(&ex->idle_cond);
    else
        for (size_t i = 0; i < k; i++) pthread_cond_signal(&ex->idle_cond);
    cx__mutex_unlock(&ex->idle_mu);
}

static int work_available(struct cx_executor *ex) {
    if (ex->mode == CX_MODE_SERIAL && atomic_load(&ex->suspended) > 0)
        return atomic_load(&ex->pending_conts) > 0;
    return atomic_load(&ex->pending) > 0;
}

/* ---- completion ---- */

/* Completes t with `status`. Touches the batch last when it increments released; ex is alive
 * because the caller is a worker (joined by free) or a thread that may not race with free. */
static void complete_task(struct cx_executor *ex, struct cx_task_ctx *t, int status) {
    struct cx_batch *b = t->batch;
    t->res->status = status;
    t->res->end_ns = cx_now_ns();
    atomic_store_explicit(&t->state, ST_DONE, memory_order_release);
    atomic_fetch_add(&b->completed, 1);
    cx__cqueue_push(&b->cq, &t->cq);
    atomic_fetch_add(&b->released, 1); /* last access to b */
    if (atomic_fetch_sub(&ex->outstanding, 1) == 1 && atomic_load(&ex->shutting)) {
        cx__mutex_lock(&ex->mu);
        pthread_cond_broadcast(&ex->drain_cond);
        cx__mutex_unlock(&ex->mu);
    }
}

/* ---- running ---- */

static struct cx_task_ctx *find_work(struct worker *w) {
    struct cx_executor *ex = w->ex;
    struct cx_task_ctx *t;
    if (ex->mode == CX_MODE_SERIAL) {
        t = dq_pop_front(&w->dq, atomic_load(&ex->suspended) > 0);
    } else {
        t = dq_pop_front(&w->dq, 0);
        if (t == NULL && ex->nworkers > 1) {
            w->rng ^= w->rng << 13;
            w->rng ^= w->rng >> 7;
            w->rng ^= w->rng << 17;
            int start = (int)(w->rng % (uint64_t)ex->nworkers);
            for (int i = 0; i < ex->nworkers && t == NULL; i++) {
                int v = (start + i) % ex->nworkers;
                if (v == w->index) continue;
                t = dq_pop_front(&ex->w[v].dq, 0);
                if (t != NULL) atomic_fetch_add_explicit(&w->steals, 1, memory_order_relaxed);
            }
        }
    }
    if (t != NULL) {
        atomic_fetch_sub(&ex->pending, 1);
        if (t->is_cont) {
            atomic_fetch_sub(&ex->pending_conts, 1);
            if (ex->mode == CX_MODE_SERIAL) atomic_fetch_sub(&ex->suspended, 1);
        }
    }
    return t;
}

static void run_item(struct worker *w, struct cx_task_ctx *t) {
    struct cx_executor *ex = w->ex;
    if (!t->is_cont) {
        if (atomic_load(&t->batch->cancelled)) {
            complete_task(ex, t, CX_ECANCELED);
            return;
        }
        t->res->start_ns = cx_now_ns();
    }
    t->is_cont = 0;
    for (;;) {
        t->worker = w->index;
        t->suspend_req = 0;
        atomic_store_explicit(&t->state, ST_RUNNING, memory_order_relaxed);
        if (ex->gil) cx_gil_acquire(ex->gil);
        int rc = t->fn(t, t->arg, t->res);
        if (ex->gil) cx_gil_release(ex->gil);
        atomic_fetch_add_explicit(&w->tasks_run, 1, memory_order_relaxed);
        if (!t->suspend_req) {
            complete_task(ex, t, rc);
            return;
        }
        /* A task that suspended must return CX_EAGAIN: someone else holds its handle. */
        CX_ASSERT(rc == CX_EAGAIN);
        if (ex->mode == CX_MODE_SERIAL) atomic_fetch_add(&ex->suspended, 1);
        int expected = ST_SUSPENDING;
        if (atomic_compare_exchange_strong(&t->state, &expected, ST_SUSPENDED)) return;
        /* Resumed before we got here: run the continuation now. */
        CX_ASSERT(expected == ST_RESUMED_EARLY);
        if (ex->mode == CX_MODE_SERIAL) atomic_fetch_sub(&ex->suspended, 1);
        t->fn = t->next_fn;
        t->arg = t->next_arg;
    }
}

/* The executor whose worker this thread is (NULL elsewhere): catches a worker calling
 * cx_executor_free or cx_executor_run on its own pool, which would wait for itself. */
static _Thread_local struct cx_executor *tls_worker_of;

static void *worker_main(void *p) {
    struct worker *w = p;
    struct cx_executor *ex = w->ex;
    tls_worker_of = ex;
    for (;;) {
        struct cx_task_ctx *t = find_work(w);
        if (t != NULL) {
            run_item(w, t);
            continue;
        }
        cx__mutex_lock(&ex->idle_mu);
        atomic_fetch_add(&ex->sleepers, 1);
        int parked = 0;
        while (!atomic_load(&ex->stop) && !work_available(ex)) {
            if (!parked) atomic_fetch_add_explicit(&w->parks, 1, memory_order_relaxed);
            parked = 1;
            (void)cx__cond_wait(&ex->idle_cond, &ex->idle_mu, CX_DEADLINE_NONE);
        }
        atomic_fetch_sub(&ex->sleepers, 1);
        int stop = atomic_load(&ex->stop) && !work_available(ex);
        cx__mutex_unlock(&ex->idle_mu);
        if (stop) break;
    }
    return NULL;
}

/* ---- executor lifetime ---- */

int cx_executor_new(const struct cx_executor_options *o, struct cx_executor **out,
                    struct cx_errinfo *ei) {
    struct cx_executor_options def;
    if (o == NULL) {
        cx_executor_options_init(&def);
        o = &def;
    }
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_executor_new: out is NULL");
    *out = NULL;
    if (o->mode != CX_MODE_SERIAL && o->mode != CX_MODE_GIL && o->mode != CX_MODE_FREE)
        return cx__err(ei, CX_EINVAL, "executor mode %d is not serial, gil or free", (int)o->mode);
    if (o->mode != CX_MODE_SERIAL && (o->threads < 1 || o->threads > EXECUTOR_MAX_THREADS))
        return cx__err(ei, CX_EINVAL, "executor threads = %d is out of range 1..%d", o->threads,
                       EXECUTOR_MAX_THREADS);
    struct cx_executor *ex = cx__calloc(1, sizeof(*ex));
    if (ex == NULL) return cx__err(ei, CX_ENOMEM, "executor: out of memory");
    ex->mode = o->mode;
    ex->nworkers = o->mode == CX_MODE_SERIAL ? 1 : o->threads;
    if (cx__slow_on && cx__slow.executor_one_worker) ex->nworkers = 1; /* bench-only */
    int rc = CX_ENOMEM;
    int inited = 0, started = 0;
    if (cx__mutex_init(&ex->mu) < 0) goto fail;
    inited = 1;
    if (cx__mutex_init(&ex->idle_mu) < 0) goto fail;
    inited = 2;
    if (cx__cond_init(&ex->idle_cond) < 0) goto fail;
    inited = 3;
    if (cx__cond_init(&ex->drain_cond) < 0) goto fail;
    inited = 4;
    if (o->mode == CX_MODE_GIL && cx_gil_new(o->switch_interval_ns, &ex->gil) < 0) goto fail;
    ex->w = cx__calloc((size_t)ex->nworkers, sizeof(struct worker));
    if (ex->w == NULL) goto fail;
    int dq_inited = 0;
    for (; dq_inited < ex->nworkers; dq_inited++) {
        struct worker *w = &ex->w[dq_inited];
        w->ex = ex;
        w->index = dq_inited;
        w->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(dq_inited + 1);
        if (cx__mutex_init(&w->dq.mu) < 0) break;
    }
    if (dq_inited < ex->nworkers) {
        for (int i = 0; i < dq_inited; i++) cx__mutex_destroy(&ex->w[i].dq.mu);
        cx__free(ex->w);
        ex->w = NULL;
        goto fail;
    }
    for (; started < ex->nworkers; started++) {
        int e = pthread_create(&ex->w[started].th, NULL, worker_main, &ex->w[started]);
        if (e != 0) {
            rc = cx__err(ei, CX_EAGAIN, "executor: cannot start worker thread %d of %d (errno %d)",
                         started, ex->nworkers, e);
            break;
        }
    }
    if (started < ex->nworkers) {
        atomic_store(&ex->stop, 1);
        cx__mutex_lock(&ex->idle_mu);
        pthread_cond_broadcast(&ex->idle_cond);
        cx__mutex_unlock(&ex->idle_mu);
        for (int i = 0; i < started; i++) pthread_join(ex->w[i].th, NULL);
        for (int i = 0; i < ex->nworkers; i++) cx__mutex_destroy(&ex->w[i].dq.mu);
        cx__free(ex->w);
        ex->w = NULL;
        goto fail_noerr;
    }
    *out = ex;
    return 0;
fail:
    rc = cx__err(ei, CX_ENOMEM, "executor: out of memory");
fail_noerr:
    cx_gil_free(ex->gil);
    if (inited >= 4) pthread_cond_destroy(&ex->drain_cond);
    if (inited >= 3) pthread_cond_destroy(&ex->idle_cond);
    if (inited >= 2) cx__mutex_destroy(&ex->idle_mu);
    if (inited >= 1) cx__mutex_destroy(&ex->mu);
    cx__free(ex);
    return rc;
}

void cx_executor_free(struct cx_executor *ex) {
    if (ex == NULL) return;
    CX_ASSERT(tls_worker_of != ex); /* a worker cannot join itself */
    cx__mutex_lock(&ex->mu);
    atomic_store(&ex->shutting, 1);
    cx__mutex_unlock(&ex->mu);
    /* The list cannot change now: submit refuses, batch_free may not run concurrently. */
    for (struct cx_batch *b = ex->batches; b != NULL; b = b->next) cx_batch_cancel(b);
    cx__mutex_lock(&ex->mu);
    while (atomic_load(&ex->outstanding) > 0)
        (void)cx__cond_wait(&ex->drain_cond, &ex->mu, CX_DEADLINE_NONE);
    cx__mutex_unlock(&ex->mu);

    cx__mutex_lock(&ex->idle_mu);
    atomic_store(&ex->stop, 1);
    pthread_cond_broadcast(&ex->idle_cond);
    cx__mutex_unlock(&ex->idle_mu);
    for (int i = 0; i < ex->nworkers; i++) pthread_join(ex->w[i].th, NULL);
    /* A resumer may still be between its push and its last touch of ex. */
    while (atomic_load(&ex->resumers) > 0) sched_yield();

    cx__mutex_lock(&ex->mu);
    for (struct cx_batch *b = ex->batches, *nx; b != NULL; b = nx) {
        nx = b->next;
        b->ex = NULL;
        b->prev = b->next = NULL;
    }
    ex->batches = NULL;
    cx__mutex_unlock(&ex->mu);

    for (int i = 0; i < ex->nworkers; i++) cx__mutex_destroy(&ex->w[i].dq.mu);
    cx__free(ex->w);
    cx_gil_free(ex->gil);
    pthread_cond_destroy(&ex->drain_cond);
    pthread_cond_destroy(&ex->idle_cond);
    cx__mutex_destroy(&ex->idle_mu);
    cx__mutex_destroy(&ex->mu);
    cx__free(ex);
}

int cx_executor_threads(const struct cx_executor *ex) { return ex ? ex->nworkers : 0; }
enum cx_exec_mode cx_executor_mode(const struct cx_executor *ex) {
    return ex ? ex->mode : CX_MODE_FREE;
}
struct cx_gil *cx_executor_gil(struct cx_executor *ex) { return ex ? ex->gil : NULL; }

void cx_executor_stats(struct cx_executor *ex, struct cx_executor_stats *out) {
    if (out == NULL) return;
    *out = (struct cx_executor_stats){0};
    if (ex == NULL) return;
    for (int i = 0; i < ex->nworkers; i++) {
        out->tasks_run += atomic_load_explicit(&ex->w[i].tasks_run, memory_order_relaxed);
        out->steals += atomic_load_explicit(&ex->w[i].steals, memory_order_relaxed);
        out->parks += atomic_load_explicit(&ex->w[i].parks, memory_order_relaxed);
    }
}

/* ---- batches ---- */

static void batch_destroy(struct cx_batch *b) {
    if (b->results != NULL)
        for (size_t i = 0; i < b->n; i++) cx__free(b->results[i].error);
    cx__free(b->results);
    cx__free(b->tasks);
    cx__free(b);
}

int cx_executor_submit(struct cx_executor *ex, const struct cx_task *tasks, size_t n,
                       struct cx_batch **out) {
    if (ex == NULL || out == NULL || (tasks == NULL && n > 0)) return CX_EINVAL;
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (tasks[i].fn == NULL) return CX_EINVAL;
    struct cx_batch *b = cx__calloc(1, sizeof(*b));
    if (b == NULL) return CX_ENOMEM;
    b->n = n;
    if (n > 0) {
        b->tasks = cx__calloc(n, sizeof(*b->tasks));
        b->results = cx__calloc(n, sizeof(*b->results));
        if (b->tasks == NULL || b->results == NULL) {
            batch_destroy(b);
            return CX_ENOMEM;
        }
    }
    if (cx__cqueue_init(&b->cq) < 0) {
        batch_destroy(b);
        return CX_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct cx_task_ctx *t = &b->tasks[i];
        t->batch = b;
        t->res = &b->results[i];
        t->fn = tasks[i].fn;
        t->arg = tasks[i].arg;
        t->worker = -1;
        atomic_init(&t->state, ST_QUEUED);
        b->results[i].index = i;
    }
    cx__mutex_lock(&ex->mu);
    if (atomic_load(&ex->shutting)) {
        cx__mutex_unlock(&ex->mu);
        cx__cqueue_destroy(&b->cq);
        batch_destroy(b);
        return CX_ECLOSED;
    }
    b->ex = ex;
    b->next = ex->batches;
    if (ex->batches) ex->batches->prev = b;
    ex->batches = b;
    atomic_fetch_add(&ex->outstanding, (long)n);
    cx__mutex_unlock(&ex->mu);

    b->submit_ns = cx_now_ns();
    if (n == 0) {
        *out = b;
        return 0;
    }
    int nw = ex->nworkers;
    size_t start = atomic_fetch_add_explicit(&ex->rr, n, memory_order_relaxed) % (size_t)nw;
    for (int j = 0; j < nw; j++) {
        /* Items i with (start + i) % nw == j go to deque j. */
        size_t first = ((size_t)j + (size_t)nw - start) % (size_t)nw;
        if (first >= n) continue;
        struct deque *d = &ex->w[j].dq;
        cx__mutex_lock(&d->mu);
        for (size_t i = first; i < n; i += (size_t)nw) dq_link_back(d, &b->tasks[i]);
        cx__mutex_unlock(&d->mu);
    }
    atomic_fetch_add(&ex->pending, (long)n);
    wake_workers(ex, n);
    *out = b;
    return 0;
}

int cx_batch_next(struct cx_batch *b, uint64_t deadline, struct cx_task_result **res) {
    if (b == NULL || res == NULL) return CX_EINVAL;
    if (b->consumed >= b->n) return CX_ENOENT;
    struct cx__cq_node *node = cx__cqueue_trypop(&b->cq);
    if (node == NULL) {
        cx_gil_io_begin(); /* blocking: let GIL holders run, like a Python wait */
        node = cx__cqueue_pop(&b->cq, deadline);
        cx_gil_io_end();
        if (node == NULL) return CX_ETIMEDOUT;
    }
    struct cx_task_ctx *t = (struct cx_task_ctx *)((char *)node - offsetof(struct cx_task_ctx, cq));
    b->consumed++;
    *res = t->res;
    return 0;
}

int cx_batch_wait(struct cx_batch *b, uint64_t deadline,
                  void (*progress)(size_t done, size_t total, void *ud), void *ud) {
    if (b == NULL) return CX_EINVAL;
    for (;;) {
        struct cx_task_result *r;
        int rc = cx_batch_next(b, deadline, &r);
        if (rc == CX_ENOENT) return 0;
        if (rc < 0) return rc;
        if (progress) progress(b->consumed, b->n, ud);
    }
}

void cx_batch_cancel(struct cx_batch *b) {
    if (b == NULL) return;
    if (atomic_exchange(&b->cancelled, 1)) return;
    struct cx_executor *ex = b->ex;
    if (ex == NULL) return;
    /* Unlink this batch's queued tasks (not continuations) from every deque, then complete
     * them outside the deque locks. The removed ones are chained through dq_next. */
    struct cx_task_ctx *removed = NULL;
    long count = 0;
    for (int j = 0; j < ex->nworkers; j++) {
        struct deque *d = &ex->w[j].dq;
        if (atomic_load_explicit(&d->size, memory_order_relaxed) == 0) continue;
        cx__mutex_lock(&d->mu);
        for (struct cx_task_ctx *t = d->head, *nx; t != NULL; t = nx) {
            nx = t->dq_next;
            if (t->batch != b || t->is_cont) continue;
            dq_unlink(d, t);
            t->dq_next = removed;
            removed = t;
            count++;
        }
        cx__mutex_unlock(&d->mu);
    }
    if (count > 0) atomic_fetch_sub(&ex->pending, count);
    while (removed != NULL) {
        struct cx_task_ctx *t = removed;
        removed = t->dq_next;
        t->dq_next = NULL;
        complete_task(ex, t, CX_ECANCELED);
    }
}

int cx_batch_done(const struct cx_batch *b) {
    return b == NULL || atomic_load(&((struct cx_batch *)b)->completed) >= b->n;
}

size_t cx_batch_size(const struct cx_batch *b) { return b ? b->n : 0; }

void cx_batch_stats(const struct cx_batch *b, struct cx_batch_stats *out) {
    if (out == NULL) return;
    *out = (struct cx_batch_stats){0};
    if (b == NULL) return;
    out->total = b->n;
    uint64_t last_end = 0, lat_sum = 0, lat_max = 0;
    size_t ran = 0, done = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct cx_task_ctx *t = &b->tasks[i];
        if (atomic_load_explicit(&t->state, memory_order_acquire) != ST_DONE) continue;
        const struct cx_task_result *r = t->res;
        done++;
        if (r->status == 0) out->successful++; else out->failed++;
        if (r->status == CX_ECANCELED) out->cancelled++;
        out->tokens += r->tokens;
        out->cost += r->cost;
        if (r->end_ns > last_end) last_end = r->end_ns;
        if (r->start_ns != 0) {
            uint64_t lat = r->end_ns - r->start_ns;
            lat_sum += lat;
            if (lat > lat_max) lat_max = lat;
            ran++;
        }
    }
    uint64_t end = done == b->n ? (b->n ? last_end : b->submit_ns) : cx_now_ns();
    out->total_time_s = cx_elapsed_s(b->submit_ns, end);
    out->mean_latency_s = ran ? (double)lat_sum / (double)ran / 1e9 : 0.0;
    out->max_latency_s = (double)lat_max / 1e9;
}

struct cx_task_result *cx_batch_results(struct cx_batch *b) { return b ? b->results : NULL; }

void cx_batch_free(struct cx_batch *b) {
    if (b == NULL) return;
    if (atomic_load(&b->completed) < b->n) cx_batch_cancel(b);
    /* Take every completion off the queue (waiting for running and suspended tasks), then
     * wait out the short window between a worker's push and its last touch of b. */
    cx_gil_io_begin();
    while (b->consumed < b->n) {
        struct cx__cq_node *node = cx__cqueue_pop(&b->cq, CX_DEADLINE_NONE);
        if (node != NULL) b->consumed++;
    }
    cx_gil_io_end();
    while (atomic_load(&b->released) < b->n) sched_yield();
    struct cx_executor *ex = b->ex;
    if (ex != NULL) {
        cx__mutex_lock(&ex->mu);
        if (b->prev) b->prev->next = b->next; else ex->batches = b->next;
        if (b->next) b->next->prev = b->prev;
        cx__mutex_unlock(&ex->mu);
    }
    cx__cqueue_destroy(&b->cq);
    batch_destroy(b);
}

int cx_executor_run(struct cx_executor *ex, const struct cx_task *tasks, size_t n,
                    void (*progress)(size_t done, size_t total, void *ud), void *ud,
                    struct cx_batch **out) {
    if (out == NULL) return CX_EINVAL;
    CX_ASSERT(ex == NULL || tls_worker_of != ex); /* would wait on its own pool */
    struct cx_batch *b;
    int rc = cx_executor_submit(ex, tasks, n, &b);
    if (rc < 0) return rc;
    rc = cx_batch_wait(b, CX_DEADLINE_NONE, progress, ud);
    CX_ASSERT(rc == 0); /* no deadline: only returns when all results are in */
    *out = b;
    return 0;
}

/* ---- inside a task ---- */

int cx_task_cancelled(const struct cx_task_ctx *ctx) {
    return ctx != NULL && atomic_load(&ctx->batch->cancelled) != 0;
}

void cx_task_set_error(struct cx_task_ctx *ctx, const char *fmt, ...) {
    if (ctx == NULL || fmt == NULL) return;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = NULL;
    if (len >= 0 && (msg = cx__malloc((size_t)len + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    cx__free(ctx->res->error);
    ctx->res->error = msg;
}

int cx_task_worker(const struct cx_task_ctx *ctx) { return ctx ? ctx->worker : -1; }

size_t cx_task_index(const struct cx_task_ctx *ctx) { return ctx ? ctx->res->index : 0; }

struct cx_task_handle *cx_task_suspend(struct cx_task_ctx *ctx) {
    CX_ASSERT(ctx != NULL && !ctx->suspend_req);
    CX_ASSERT(atomic_load(&ctx->state) == ST_RUNNING);
    ctx->suspend_req = 1;
    atomic_store_explicit(&ctx->state, ST_SUSPENDING, memory_order_release);
    return (struct cx_task_handle *)ctx;
}

int cx_task_resume(struct cx_task_handle *h, cx_task_fn next, void *arg) {
    if (h == NULL || next == NULL) return CX_EINVAL;
    struct cx_task_ctx *t = (struct cx_task_ctx *)h;
    /* The task is outstanding until its continuation completes, so ex is alive here. */
    struct cx_executor *ex = t->batch->ex;
    atomic_fetch_add(&ex->resumers, 1);
    t->next_fn = next;
    t->next_arg = arg;
    int expected = ST_SUSPENDING;
    if (atomic_compare_exchange_strong(&t->state, &expected, ST_RESUMED_EARLY)) {
        atomic_fetch_sub(&ex->resumers, 1); /* the worker will run it */
        return 0;
    }
    CX_ASSERT(expected == ST_SUSPENDED); /* resumed twice, or never suspended */
    t->fn = next;
    t->arg = arg;
    t->is_cont = 1;
    atomic_store_explicit(&t->state, ST_QUEUED, memory_order_relaxed);
    int j = ex->mode == CX_MODE_SERIAL
                ? 0
                : (int)(atomic_fetch_add_explicit(&ex->rr, 1, memory_order_relaxed) %
                        (size_t)ex->nworkers);
    dq_push_front(&ex->w[j].dq, t);
    atomic_fetch_add(&ex->pending_conts, 1);
    atomic_fetch_add(&ex->pending, 1);
    wake_workers(ex, 1);
    atomic_fetch_sub(&ex->resumers, 1); /* last access to ex */
    return 0;
}
