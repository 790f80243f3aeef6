/*
 * test_executor.c - the worker pool: every task runs exactly once under stealing, failures are
 * reported with their error and affect no other task, completion order, the progress callback,
 * statistics, cancellation, shutdown with live batches, suspension/resumption (hybrid I/O), the
 * completion queues and allocation failure. The three modes are in test_executor_modes.c.
 *
 * Tasks synchronise with the test through latches with deadlines; nothing sleeps to wait for
 * something to happen.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_executor.h"
#include "t_util.h"

#include "cx/clock.h"
#include "cx/executor.h"
#include "cx/gil.h"
#include "cqueue.h" /* internal: the completion queues themselves */


/* ---- options and construction ---- */

static void test_options(void **state) {
    (void)state;
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    assert_int_equal(o.threads, 10);
    assert_int_equal(o.mode, CX_MODE_FREE);
    assert_int_equal(o.switch_interval_ns, 5 * CX_NSEC_PER_MSEC);
    assert_string_equal(cx_executor_mode_name(CX_MODE_GIL), "gil");
    assert_string_equal(cx_executor_mode_name(CX_MODE_SERIAL), "serial");
    assert_string_equal(cx_executor_mode_name(CX_MODE_FREE), "free");

    struct cx_executor *ex = NULL;
    struct cx_errinfo ei = {0};
    o.threads = 0;
    assert_int_equal(cx_executor_new(&o, &ex, &ei), CX_EINVAL);
    assert_null(ex);
    assert_non_null(strstr(ei.msg, "threads"));
    o.threads = 100000;
    assert_int_equal(cx_executor_new(&o, &ex, &ei), CX_EINVAL);
    o.threads = 2;
    o.mode = (enum cx_exec_mode)7;
    assert_int_equal(cx_executor_new(&o, &ex, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "mode"));
    assert_int_equal(cx_executor_new(&o, NULL, &ei), CX_EINVAL);

    /* Serial ignores threads (one worker); GIL mode owns a GIL; free has none. */
    o.threads = 0;
    o.mode = CX_MODE_SERIAL;
    assert_int_equal(cx_executor_new(&o, &ex, NULL), 0);
    assert_int_equal(cx_executor_threads(ex), 1);
    assert_int_equal(cx_executor_mode(ex), CX_MODE_SERIAL);
    assert_null(cx_executor_gil(ex));
    cx_executor_free(ex);
    ex = t_executor_make(CX_MODE_GIL, 3);
    assert_int_equal(cx_executor_threads(ex), 3);
    assert_non_null(cx_executor_gil(ex));
    cx_executor_free(ex);
    assert_int_equal(cx_executor_new(NULL, &ex, NULL), 0); /* defaults */
    assert_int_equal(cx_executor_threads(ex), 10);
    cx_executor_free(ex);
    cx_executor_free(NULL);
    cx_batch_free(NULL);
}

static int noop_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)arg, (void)res;
    return 0;
}

static void test_submit_errors(void **state) {
    (void)state;
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 2);
    struct cx_batch *b = NULL;
    struct cx_task t[2] = {{noop_task, NULL}, {NULL, NULL}};
    assert_int_equal(cx_executor_submit(ex, t, 2, &b), CX_EINVAL);
    assert_null(b);
    assert_int_equal(cx_executor_submit(ex, NULL, 1, &b), CX_EINVAL);
    assert_int_equal(cx_executor_submit(NULL, t, 1, &b), CX_EINVAL);
    assert_int_equal(cx_executor_submit(ex, t, 1, NULL), CX_EINVAL);
    /* An empty batch is complete at once; progress is never called. */
    int calls = 0;
    assert_int_equal(cx_executor_submit(ex, NULL, 0, &b), 0);
    assert_true(cx_batch_done(b));
    struct cx_task_result *r;
    assert_int_equal(cx_batch_next(b, 0, &r), CX_ENOENT);
    assert_int_equal(cx_batch_wait(b, 0, NULL, &calls), 0);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.total, 0);
    cx_batch_free(b);
    cx_executor_free(ex);
}

/* ---- every task exactly once, under stealing ---- */

struct once {
    int n;
    _Atomic int *runs;
    _Atomic int others_done;
    _Atomic int blocker_timed_out;
    struct t_latch others;
};

struct once_arg {
    struct once *o;
    int i;
};

static int once_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct once_arg *a = arg;
    struct once *o = a->o;
    atomic_fetch_add(&o->runs[a->i], 1);
    res->value = arg;
    res->tokens = 1;
    if (a->i == 0) {
        /* Block this worker until every other task ran: the tasks queued behind us on our
         * deque can only run if someone steals them. */
        if (!t_latch_wait(&o->others, o->n - 1, t_deadline_ms(10000)))
            atomic_store(&o->blocker_timed_out, 1);
    } else {
        t_latch_add(&o->others);
    }
    /* No cmocka asserts on worker threads: report through the status instead. */
    if (cx_task_worker(ctx) < 0 || cx_task_worker(ctx) >= 4) return CX_ERANGE;
    if (cx_task_index(ctx) != (size_t)a->i) return CX_ERANGE;
    return 0;
}

static void test_exactly_once_with_stealing(void **state) {
    (void)state;
    enum { N = 2000 };
    struct once o = {.n = N};
    o.runs = calloc(N, sizeof(*o.runs));
    t_latch_init(&o.others);
    struct once_arg *args = calloc(N, sizeof(*args));
    struct cx_task *tasks = calloc(N, sizeof(*tasks));
    for (int i = 0; i < N; i++) {
        args[i] = (struct once_arg){&o, i};
        tasks[i] = (struct cx_task){once_task, &args[i]};
    }
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 4);
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, N, NULL, NULL, &b), 0);
    assert_int_equal(atomic_load(&o.blocker_timed_out), 0);
    for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&o.runs[i]), 1);
    struct cx_task_result *res = cx_batch_results(b);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].index, (size_t)i);
        assert_ptr_equal(res[i].value, &args[i]);
        assert_int_equal(res[i].status, 0);
        assert_true(res[i].start_ns > 0 && res[i].end_ns >= res[i].start_ns);
    }
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.total, N);
    assert_int_equal(st.successful, N);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.tokens, N);
    struct cx_executor_stats es;
    cx_executor_stats(ex, &es);
    assert_int_equal(es.tasks_run, N);
    assert_true(es.steals >= 1); /* see once_task */
    cx_batch_free(b);
    cx_executor_free(ex);
    t_latch_destroy(&o.others);
    free(o.runs);
    free(args);
    free(tasks);
}

/* ---- failures are reported and isolated ---- */

static int maybe_fail(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    size_t i = (size_t)(uintptr_t)arg;
    res->tokens = 10;
    res->cost = 0.5;
    if (i % 3 == 1) {
        cx_task_set_error(ctx, "first message %zu", i);
        cx_task_set_error(ctx, "query %zu failed: upstream said no", i); /* replaces */
        return CX_EIO;
    }
    res->value = (void *)(uintptr_t)(i * 7);
    return 0;
}

static void test_failures_isolated(void **state) {
    (void)state;
    enum { N = 30 };
    struct cx_task tasks[N];
    for (size_t i = 0; i < N; i++) tasks[i] = (struct cx_task){maybe_fail, (void *)(uintptr_t)i};
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 3);
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, N, NULL, NULL, &b), 0);
    struct cx_task_result *res = cx_batch_results(b);
    size_t failed = 0;
    for (size_t i = 0; i < N; i++) {
        if (i % 3 == 1) {
            failed++;
            assert_int_equal(res[i].status, CX_EIO);
            char want[64];
            snprintf(want, sizeof want, "query %zu failed: upstream said no", i);
            assert_non_null(res[i].error);
            assert_string_equal(res[i].error, want);
        } else {
            assert_int_equal(res[i].status, 0);
            assert_null(res[i].error);
            assert_int_equal((uintptr_t)res[i].value, i * 7);
        }
    }
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.failed, failed);
    assert_int_equal(st.successful, N - failed);
    assert_int_equal(st.cancelled, 0);
    assert_int_equal(st.tokens, 10 * N);
    assert_true(st.cost > 0.5 * N - 1e-9 && st.cost < 0.5 * N + 1e-9);
    assert_true(st.max_latency_s >= st.mean_latency_s);
    assert_true(st.total_time_s >= st.max_latency_s);
    cx_batch_free(b);
    cx_executor_free(ex);
}

/* ---- completion order and the progress callback ---- */

struct order {
    struct t_latch main_saw_fast;
};

static int slow_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)res;
    struct order *o = arg;
    return t_latch_wait(&o->main_saw_fast, 1, t_deadline_ms(10000)) ? 0 : CX_ETIMEDOUT;
}

static void test_completion_order(void **state) {
    (void)state;
    struct order o;
    t_latch_init(&o.main_saw_fast);
    struct cx_task tasks[2] = {{slow_task, &o}, {noop_task, NULL}};
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 2);
    struct cx_batch *b;
    assert_int_equal(cx_executor_submit(ex, tasks, 2, &b), 0);
    struct cx_task_result *r;
    assert_int_equal(cx_batch_next(b, t_deadline_ms(10000), &r), 0);
    assert_int_equal(r->index, 1); /* the fast one first: completion order */
    assert_int_equal(cx_batch_next(b, 0, &r), CX_ETIMEDOUT); /* slow one still blocked */
    assert_false(cx_batch_done(b));
    t_latch_add(&o.main_saw_fast);
    assert_int_equal(cx_batch_next(b, t_deadline_ms(10000), &r), 0);
    assert_int_equal(r->index, 0);
    assert_int_equal(r->status, 0);
    assert_int_equal(cx_batch_next(b, t_deadline_ms(10000), &r), CX_ENOENT);
    assert_true(cx_batch_done(b));
    cx_batch_free(b);
    cx_executor_free(ex);
    t_latch_destroy(&o.main_saw_fast);
}

struct prog {
    pthread_t caller;
    size_t calls, last_done, total;
    _Atomic int inside;
    int bad;
};

static void on_progress(size_t done, size_t total, void *ud) {
    struct prog *p = ud;
    if (atomic_fetch_add(&p->inside, 1) != 0) p->bad++; /* concurrent with itself */
    if (!pthread_equal(pthread_self(), p->caller)) p->bad++;
    if (done != p->last_done + 1) p->bad++;
    p->last_done = done;
    p->total = total;
    p->calls++;
    atomic_fetch_sub(&p->inside, 1);
}

static int tiny_work(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)arg;
    cx_cpu_work_ns(20 * CX_NSEC_PER_USEC);
    res->tokens = 3;
    return 0;
}

static void test_progress(void **state) {
    (void)state;
    enum { N = 200 };
    struct cx_task tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = (struct cx_task){tiny_work, NULL};
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 4);
    struct prog p = {.caller = pthread_self()};
    struct cx_batch *b;
    assert_int_equal(cx_executor_submit(ex, tasks, N, &b), 0);
    /* Mix next and wait: wait's count includes what next returned. */
    struct cx_task_result *r;
    assert_int_equal(cx_batch_next(b, t_deadline_ms(10000), &r), 0);
    p.last_done = 1;
    assert_int_equal(cx_batch_wait(b, t_deadline_ms(20000), on_progress, &p), 0);
    assert_int_equal(p.bad, 0);
    assert_int_equal(p.calls, N - 1);
    assert_int_equal(p.last_done, N);
    assert_int_equal(p.total, N);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.tokens, 3 * N);
    cx_batch_free(b);
    cx_executor_free(ex);
}

/* ---- cancellation ---- */

struct gate {
    struct t_latch started, go;
    _Atomic int saw_cancel;
};

static int gated_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct gate *g = arg;
    t_latch_add(&g->started);
    if (!t_latch_wait(&g->go, 1, t_deadline_ms(10000))) return CX_ETIMEDOUT;
    if (cx_task_cancelled(ctx)) {
        atomic_store(&g->saw_cancel, 1);
        return CX_ECANCELED;
    }
    return 0;
}

static void test_cancel(void **state) {
    (void)state;
    enum { N = 10 };
    struct gate g = {0};
    t_latch_init(&g.started);
    t_latch_init(&g.go);
    struct cx_task tasks[N];
    tasks[0] = (struct cx_task){gated_task, &g};
    for (int i = 1; i < N; i++) tasks[i] = (struct cx_task){noop_task, NULL};
    struct cx_executor *ex = t_executor_make(CX_MODE_SERIAL, 1); /* task 0 blocks the only worker */
    struct cx_batch *b;
    assert_int_equal(cx_executor_submit(ex, tasks, N, &b), 0);
    assert_true(t_latch_wait(&g.started, 1, t_deadline_ms(10000)));
    cx_batch_cancel(b);
    cx_batch_cancel(b); /* idempotent */
    /* The queued ones complete at once, without running, while task 0 still runs. */
    for (int i = 1; i < N; i++) {
        struct cx_task_result *r;
        assert_int_equal(cx_batch_next(b, t_deadline_ms(10000), &r), 0);
        assert_int_not_equal(r->index, 0);
        assert_int_equal(r->status, CX_ECANCELED);
        assert_int_equal(r->start_ns, 0);
    }
    assert_false(cx_batch_done(b));
    t_latch_add(&g.go);
    assert_int_equal(cx_batch_wait(b, t_deadline_ms(10000), NULL, NULL), 0);
    assert_int_equal(atomic_load(&g.saw_cancel), 1);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.cancelled, N);
    assert_int_equal(st.failed, N);
    assert_int_equal(st.successful, 0);
    cx_batch_free(b);
    /* The executor still works after a cancelled batch. */
    assert_int_equal(cx_executor_run(ex, &tasks[1], 3, NULL, NULL, &b), 0);
    cx_batch_stats(b, &st);
    assert_int_equal(st.successful, 3);
    cx_batch_free(b);
    cx_executor_free(ex);
    t_latch_destroy(&g.started);
    t_latch_destroy(&g.go);
}

/* cx_batch_free on a running batch cancels it and waits; cx_executor_free with a live batch
 * cancels the queued tasks, waits for the running one, and leaves a batch that can still be
 * drained and freed afterwards. */
static int wait_cancel_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct gate *g = arg;
    t_latch_add(&g->started);
    uint64_t deadline = t_deadline_ms(10000);
    while (!cx_task_cancelled(ctx)) {
        if (cx_deadline_expired(deadline)) return CX_ETIMEDOUT;
        cx_sleep_ns(100 * CX_NSEC_PER_USEC); /* a long-running task that polls its flag */
    }
    atomic_store(&g->saw_cancel, 1);
    return CX_ECANCELED;
}

static void test_free_while_running(void **state) {
    (void)state;
    enum { N = 50 };
    struct cx_task tasks[N];
    struct gate g = {0};
    t_latch_init(&g.started);
    t_latch_init(&g.go);
    tasks[0] = (struct cx_task){wait_cancel_task, &g};
    for (int i = 1; i < N; i++) tasks[i] = (struct cx_task){noop_task, NULL};

    struct cx_executor *ex = t_executor_make(CX_MODE_SERIAL, 1);
    struct cx_batch *b;
    assert_int_equal(cx_executor_submit(ex, tasks, N, &b), 0);
    assert_true(t_latch_wait(&g.started, 1, t_deadline_ms(10000)));
    cx_batch_free(b); /* cancels, waits for task 0 */
    assert_int_equal(atomic_load(&g.saw_cancel), 1);

    atomic_store(&g.saw_cancel, 0);
    assert_int_equal(cx_executor_submit(ex, tasks, N, &b), 0);
    assert_true(t_latch_wait(&g.started, 2, t_deadline_ms(10000)));
    cx_executor_free(ex);
    assert_int_equal(atomic_load(&g.saw_cancel), 1);
    assert_true(cx_batch_done(b));
    assert_int_equal(cx_batch_wait(b, 0, NULL, NULL), 0);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.cancelled, N);
    cx_batch_free(b);
    t_latch_destroy(&g.started);
    t_latch_destroy(&g.go);
}

/* ---- suspension (hybrid I/O) ---- */

/* A stand-in for the curl-multi I/O thread: takes (handle, request) pairs and resumes them. */
struct io_item {
    struct cx_task_handle *h;
    void *arg;
};

struct io_loop {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct io_item q[8192]; /* guarded by mu */
    int head, tail;         /* guarded by mu */
    int stop;               /* guarded by mu */
    pthread_t th;
    _Atomic int resumed;
};

struct io_req {
    struct io_loop *loop;
    int rounds_left; /* suspensions still to do */
    int self_resume; /* resume from inside the task, before it returns (the early path) */
    int started;
    _Atomic int *inflight;
    _Atomic int *max_inflight;
    int *start_order;
    _Atomic int *next_start;
    int index;
};

static void io_submit(struct io_loop *l, struct cx_task_handle *h, void *arg) {
    pthread_mutex_lock(&l->mu);
    l->q[l->tail++ % 8192] = (struct io_item){h, arg};
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->mu);
}

static int io_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);

static int io_cont(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct io_req *r = arg;
    res->tokens++;
    if (r->rounds_left > 0) return io_task(ctx, arg, res); /* suspend again */
    res->value = arg;
    if (r->inflight) atomic_fetch_sub(r->inflight, 1);
    return 0;
}

static int io_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct io_req *r = arg;
    if (!r->started) {
        r->started = 1;
        if (r->inflight) {
            int now = atomic_fetch_add(r->inflight, 1) + 1;
            int m = atomic_load(r->max_inflight);
            while (now > m && !atomic_compare_exchange_weak(r->max_inflight, &m, now)) {
            }
            r->start_order[atomic_fetch_add(r->next_start, 1)] = r->index;
        }
    }
    r->rounds_left--;
    struct cx_task_handle *h = cx_task_suspend(ctx);
    if (r->self_resume) {
        if (cx_task_resume(h, io_cont, r) != 0) abort();
    } else {
        io_submit(r->loop, h, r);
    }
    return CX_EAGAIN;
}

static void *io_loop_main(void *p) {
    struct io_loop *l = p;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->head == l->tail && !l->stop) pthread_cond_wait(&l->cond, &l->mu);
        if (l->head == l->tail) break;
        struct io_item it = l->q[l->head++ % 8192];
        pthread_mutex_unlock(&l->mu);
        atomic_fetch_add(&l->resumed, 1);
        if (cx_task_resume(it.h, io_cont, it.arg) != 0) abort();
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void io_loop_start(struct io_loop *l) {
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    assert_int_equal(pthread_create(&l->th, NULL, io_loop_main, l), 0);
}

static void io_loop_stop(struct io_loop *l) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->th, NULL);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
}

static void run_suspending(enum cx_exec_mode mode, int threads, int n) {
    struct io_loop loop;
    io_loop_start(&loop);
    struct io_req *reqs = calloc((size_t)n, sizeof(*reqs));
    struct cx_task *tasks = calloc((size_t)n, sizeof(*tasks));
    int *order = calloc((size_t)n, sizeof(int));
    _Atomic int inflight = 0, max_inflight = 0, next_start = 0;
    int want_resumes = 0;
    for (int i = 0; i < n; i++) {
        reqs[i] = (struct io_req){.loop = &loop, .rounds_left = 1 + i % 3,
                                  .self_resume = (i % 5 == 4), .index = i,
                                  .inflight = &inflight, .max_inflight = &max_inflight,
                                  .start_order = order, .next_start = &next_start};
        if (!reqs[i].self_resume) want_resumes += reqs[i].rounds_left;
        tasks[i] = (struct cx_task){io_task, &reqs[i]};
    }
    struct cx_executor *ex = t_executor_make(mode, threads);
    struct cx_batch *b;
    assert_int_equal(cx_executor_submit(ex, tasks, (size_t)n, &b), 0);
    assert_int_equal(cx_batch_wait(b, t_deadline_ms(30000), NULL, NULL), 0);
    struct cx_task_result *res = cx_batch_results(b);
    for (int i = 0; i < n; i++) {
        assert_int_equal(res[i].status, 0);
        assert_ptr_equal(res[i].value, &reqs[i]);
        assert_int_equal(res[i].tokens, (uint64_t)(1 + i % 3)); /* one per continuation */
    }
    assert_int_equal(atomic_load(&loop.resumed), want_resumes);
    if (mode == CX_MODE_SERIAL) {
        /* Serial: a suspended task's I/O never overlaps another task, in submission order. */
        assert_int_equal(atomic_load(&max_inflight), 1);
        for (int i = 0; i < n; i++) assert_int_equal(order[i], i);
    }
    cx_batch_free(b);
    cx_executor_free(ex);
    io_loop_stop(&loop);
    free(reqs);
    free(tasks);
    free(order);
}

static void test_suspend_free(void **state) {
    (void)state;
    run_suspending(CX_MODE_FREE, 4, 500);
}

static void test_suspend_gil(void **state) {
    (void)state;
    run_suspending(CX_MODE_GIL, 3, 200);
}

static void test_suspend_serial(void **state) {
    (void)state;
    run_suspending(CX_MODE_SERIAL, 1, 60);
}

/* A suspended task of a cancelled batch still runs its continuation and sees the flag. */
struct susp_cancel {
    struct t_latch suspended;
    struct cx_task_handle *h;
    _Atomic int saw_cancel;
};

static int sc_cont(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct susp_cancel *s = arg;
    atomic_store(&s->saw_cancel, cx_task_cancelled(ctx));
    return 0;
}

static int sc_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct susp_cancel *s = arg;
    s->h = cx_task_suspend(ctx);
    t_latch_add(&s->suspended);
    return CX_EAGAIN;
}

static void test_suspended_then_cancelled(void **state) {
    (void)state;
    struct susp_cancel s = {0};
    t_latch_init(&s.suspended);
    struct cx_task t[3] = {{sc_task, &s}, {noop_task, NULL}, {noop_task, NULL}};
    struct cx_executor *ex = t_executor_make(CX_MODE_SERIAL, 1);
    struct cx_batch *b;
    assert_int_equal(cx_executor_submit(ex, t, 3, &b), 0);
    assert_true(t_latch_wait(&s.suspended, 1, t_deadline_ms(10000)));
    cx_batch_cancel(b);
    /* In serial mode tasks 1 and 2 cannot have started while task 0 is suspended. */
    for (int i = 0; i < 2; i++) {
        struct cx_task_result *r;
        assert_int_equal(cx_batch_next(b, t_deadline_ms(10000), &r), 0);
        assert_int_equal(r->status, CX_ECANCELED);
    }
    assert_false(cx_batch_done(b));
    assert_int_equal(cx_task_resume(NULL, sc_cont, &s), CX_EINVAL);
    assert_int_equal(cx_task_resume(s.h, NULL, &s), CX_EINVAL);
    assert_int_equal(cx_task_resume(s.h, sc_cont, &s), 0);
    assert_int_equal(cx_batch_wait(b, t_deadline_ms(10000), NULL, NULL), 0);
    assert_int_equal(atomic_load(&s.saw_cancel), 1);
    assert_int_equal(cx_batch_results(b)[0].status, 0);
    cx_batch_free(b);
    cx_executor_free(ex);
    t_latch_destroy(&s.suspended);
}

/* ---- the completion queues on their own ---- */

struct cq_item {
    struct cx__cq_node node;
    int producer, seq;
};

struct cq_prod {
    struct cx__cqueue *q;
    struct cq_item *items;
    int count;
};

static void *cq_producer(void *p) {
    struct cq_prod *pp = p;
    for (int i = 0; i < pp->count; i++) cx__cqueue_push(pp->q, &pp->items[i].node);
    return NULL;
}

/* The mutex-based queue the lock-free one is compared with moved to bench/cqueue_bench.c with
 * its benchmark, which checks the same per-producer order while it measures. */
static void test_completion_queues(void **state) {
    (void)state;
    enum { P = 4, PER = 20000 };
    struct cx__cqueue cq;
    assert_int_equal(cx__cqueue_init(&cq), 0);
    /* Empty: a poll and a short deadline both come back empty-handed. */
    assert_null(cx__cqueue_pop(&cq, 0));
    assert_null(cx__cqueue_pop(&cq, cx_deadline_after_ns(CX_NSEC_PER_MSEC)));
    struct cq_item *items = calloc(P * PER, sizeof(*items));
    struct cq_prod prods[P];
    pthread_t th[P];
    for (int p = 0; p < P; p++) {
        for (int i = 0; i < PER; i++) items[p * PER + i] = (struct cq_item){.producer = p, .seq = i};
        prods[p] = (struct cq_prod){&cq, items + p * PER, PER};
        assert_int_equal(pthread_create(&th[p], NULL, cq_producer, &prods[p]), 0);
    }
    int next_seq[P] = {0};
    for (int got = 0; got < P * PER; got++) {
        struct cx__cq_node *n = cx__cqueue_pop(&cq, t_deadline_ms(10000));
        assert_non_null(n);
        struct cq_item *it = (struct cq_item *)n;
        /* Each producer's nodes come out once each, in the order it pushed them. */
        assert_int_equal(it->seq, next_seq[it->producer]);
        next_seq[it->producer]++;
    }
    for (int p = 0; p < P; p++) pthread_join(th[p], NULL);
    assert_null(cx__cqueue_pop(&cq, 0));
    cx__cqueue_destroy(&cq);
    free(items);
}

/* ---- allocation torture ---- */

static int torture_scenario(void *ctx) {
    (void)ctx;
    struct cx_executor *ex;
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.threads = 2;
    o.mode = CX_MODE_GIL;
    int rc = cx_executor_new(&o, &ex, NULL);
    if (rc < 0) return rc;
    struct cx_task tasks[4];
    for (int i = 0; i < 4; i++) tasks[i] = (struct cx_task){maybe_fail, (void *)(uintptr_t)i};
    struct cx_batch *b;
    rc = cx_executor_run(ex, tasks, 4, NULL, NULL, &b);
    if (rc == 0) {
        /* Task 1 fails by design; its message is optional (dropped when memory runs out). */
        struct cx_task_result *res = cx_batch_results(b);
        if (res[1].status != CX_EIO || res[0].status != 0) rc = CX_EINVAL;
        cx_batch_free(b);
    }
    cx_executor_free(ex);
    return rc;
}

static void test_alloc_torture(void **state) {
    (void)state;
    assert_true(t_torture(torture_scenario, NULL) >= 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_submit_errors),
        cmocka_unit_test(test_exactly_once_with_stealing),
        cmocka_unit_test(test_failures_isolated),
        cmocka_unit_test(test_completion_order),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_free_while_running),
        cmocka_unit_test(test_suspend_free),
        cmocka_unit_test(test_suspend_gil),
        cmocka_unit_test(test_suspend_serial),
        cmocka_unit_test(test_suspended_then_cancelled),
        cmocka_unit_test(test_completion_queues),
        cmocka_unit_test(test_alloc_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
