/*
 * test_executor_modes.c - the executor's three modes: serial order and non-overlap, no
 * overlapping CPU sections under the GIL, real parallelism in free mode, identical results in
 * every mode, and several batches in flight from different threads at once. Moved whole from
 * test_executor.c, which keeps the pool's own contract.
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



/* ---- modes ---- */

/* Serial: one at a time, in submission order, across two batches. */
struct serial_rec {
    _Atomic int inside, max_inside, next;
    int order[64];
};

struct serial_arg {
    struct serial_rec *s;
    int id;
};

static int serial_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx;
    struct serial_rec *s = ((struct serial_arg *)arg)->s;
    int id = ((struct serial_arg *)arg)->id;
    int now = atomic_fetch_add(&s->inside, 1) + 1;
    int m = atomic_load(&s->max_inside);
    while (now > m && !atomic_compare_exchange_weak(&s->max_inside, &m, now)) {
    }
    cx_cpu_work_ns(10 * CX_NSEC_PER_USEC);
    s->order[atomic_fetch_add(&s->next, 1)] = id;
    atomic_fetch_sub(&s->inside, 1);
    res->tokens = (uint64_t)id;
    return 0;
}

static void test_serial_order(void **state) {
    (void)state;
    struct serial_rec s = {0};
    struct serial_arg args[40];
    struct cx_task tasks[40];
    for (int i = 0; i < 40; i++) {
        args[i].s = &s;
        args[i].id = i;
        tasks[i] = (struct cx_task){serial_task, &args[i]};
    }
    struct cx_executor *ex = t_executor_make(CX_MODE_SERIAL, 8);
    struct cx_batch *b1, *b2;
    assert_int_equal(cx_executor_submit(ex, tasks, 20, &b1), 0);
    assert_int_equal(cx_executor_submit(ex, tasks + 20, 20, &b2), 0);
    assert_int_equal(cx_batch_wait(b2, t_deadline_ms(10000), NULL, NULL), 0);
    assert_int_equal(cx_batch_wait(b1, t_deadline_ms(10000), NULL, NULL), 0);
    assert_int_equal(atomic_load(&s.max_inside), 1);
    for (int i = 0; i < 40; i++) assert_int_equal(s.order[i], i);
    cx_batch_free(b1);
    cx_batch_free(b2);
    cx_executor_free(ex);
}

/* GIL: CPU sections of tasks never overlap (our own counter), I/O sections may. */
struct gil_rec {
    _Atomic int cpu_inside, cpu_max, violations;
    _Atomic int io_inside, io_max;
    struct t_latch io_meet; /* two tasks meet inside their I/O sections */
};

static void rec_max(_Atomic int *maxp, int now) {
    int m = atomic_load(maxp);
    while (now > m && !atomic_compare_exchange_weak(maxp, &m, now)) {
    }
}

static void cpu_piece(struct gil_rec *g) {
    int now = atomic_fetch_add(&g->cpu_inside, 1) + 1;
    if (now > 1) atomic_fetch_add(&g->violations, 1);
    rec_max(&g->cpu_max, now);
    /* Pure CPU without a checkpoint: the GIL cannot move during this piece. */
    volatile uint64_t x = 1;
    for (int i = 0; i < 20000; i++) x = x * 3 + 1;
    atomic_fetch_sub(&g->cpu_inside, 1);
}

static int gil_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct gil_rec *g = arg;
    if (!cx_gil_held()) return CX_EPERM; /* a gil-mode worker runs tasks holding the GIL */
    cpu_piece(g);
    cx_gil_checkpoint();
    cpu_piece(g);
    cx_gil_io_begin();
    int now = atomic_fetch_add(&g->io_inside, 1) + 1;
    rec_max(&g->io_max, now);
    if (cx_task_index(ctx) < 2) {
        /* Tasks 0 and 1 wait for each other inside I/O: only possible if I/O drops the GIL. */
        t_latch_add(&g->io_meet);
        if (!t_latch_wait(&g->io_meet, 2, t_deadline_ms(10000))) return CX_ETIMEDOUT;
    }
    atomic_fetch_sub(&g->io_inside, 1);
    cx_gil_io_end();
    cpu_piece(g);
    cx_cpu_work_ns(30 * CX_NSEC_PER_USEC);
    cpu_piece(g);
    res->tokens = 1;
    return 0;
}

static void test_gil_mode(void **state) {
    (void)state;
    enum { N = 300 };
    struct gil_rec g = {0};
    t_latch_init(&g.io_meet);
    struct cx_task tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = (struct cx_task){gil_task, &g};
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.mode = CX_MODE_GIL;
    o.threads = 6;
    o.switch_interval_ns = 200 * CX_NSEC_PER_USEC;
    struct cx_executor *ex;
    assert_int_equal(cx_executor_new(&o, &ex, NULL), 0);
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, N, NULL, NULL, &b), 0);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.successful, N);
    assert_int_equal(atomic_load(&g.violations), 0);
    assert_int_equal(atomic_load(&g.cpu_max), 1);
    assert_true(atomic_load(&g.io_max) >= 2);
    struct cx_gil_stats gs;
    cx_gil_stats(cx_executor_gil(ex), &gs);
    assert_int_equal(gs.overlaps, 0);
    assert_true(gs.acquisitions >= 2 * N);
    cx_batch_free(b);
    cx_executor_free(ex);
    t_latch_destroy(&g.io_meet);
}

/* Free mode: two CPU sections can overlap (they meet at a latch without any I/O bracket). */
static int meet_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)res;
    struct t_latch *l = arg;
    t_latch_add(l);
    return t_latch_wait(l, 2, t_deadline_ms(10000)) ? 0 : CX_ETIMEDOUT;
}

static void test_free_mode_parallel(void **state) {
    (void)state;
    struct t_latch l;
    t_latch_init(&l);
    struct cx_task tasks[2] = {{meet_task, &l}, {meet_task, &l}};
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 2);
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, 2, NULL, NULL, &b), 0);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    assert_int_equal(st.successful, 2);
    assert_null(cx_executor_gil(ex));
    cx_batch_free(b);
    cx_executor_free(ex);
    t_latch_destroy(&l);
}

/* A mode changes scheduling, never results. */
static int pure_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    uint64_t v = (uint64_t)(uintptr_t)arg;
    cx_gil_io_begin();
    cx_gil_io_end();
    cx_cpu_work_ns(5 * CX_NSEC_PER_USEC);
    res->tokens = v * v;
    res->cost = (double)v / 4;
    res->value = (void *)(uintptr_t)(v ^ 0x5a5a);
    if (v % 7 == 3) {
        cx_task_set_error(ctx, "bad input %llu", (unsigned long long)v);
        return CX_EPARSE;
    }
    return 0;
}

static void test_modes_same_results(void **state) {
    (void)state;
    enum { N = 64 };
    struct cx_task tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = (struct cx_task){pure_task, (void *)(uintptr_t)i};
    enum cx_exec_mode modes[3] = {CX_MODE_SERIAL, CX_MODE_GIL, CX_MODE_FREE};
    struct cx_task_result ref[N];
    for (int m = 0; m < 3; m++) {
        struct cx_executor *ex = t_executor_make(modes[m], 4);
        struct cx_batch *b;
        assert_int_equal(cx_executor_run(ex, tasks, N, NULL, NULL, &b), 0);
        struct cx_task_result *res = cx_batch_results(b);
        for (int i = 0; i < N; i++) {
            if (m == 0) {
                ref[i] = res[i];
                ref[i].error = res[i].error ? strdup(res[i].error) : NULL;
                continue;
            }
            assert_int_equal(res[i].status, ref[i].status);
            assert_int_equal(res[i].tokens, ref[i].tokens);
            assert_ptr_equal(res[i].value, ref[i].value);
            assert_true(res[i].cost == ref[i].cost);
            if (ref[i].error) assert_string_equal(res[i].error, ref[i].error);
            else assert_null(res[i].error);
        }
        cx_batch_free(b);
        cx_executor_free(ex);
    }
    for (int i = 0; i < N; i++) free(ref[i].error);
}

/* Several batches in flight from different threads at once. */
struct sub_arg {
    struct cx_executor *ex;
    int ok;
};

static int count_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx;
    res->tokens = (uint64_t)(uintptr_t)arg;
    return 0;
}

static void *submitter(void *p) {
    struct sub_arg *s = p;
    enum { N = 300 };
    struct cx_task tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = (struct cx_task){count_task, (void *)(uintptr_t)(i + 1)};
    s->ok = 1;
    for (int round = 0; round < 5; round++) {
        struct cx_batch *b;
        if (cx_executor_submit(s->ex, tasks, N, &b) != 0) { s->ok = 0; break; }
        if (cx_batch_wait(b, t_deadline_ms(20000), NULL, NULL) != 0) s->ok = 0;
        struct cx_batch_stats st;
        cx_batch_stats(b, &st);
        if (st.successful != N || st.tokens != (uint64_t)N * (N + 1) / 2) s->ok = 0;
        cx_batch_free(b);
    }
    return NULL;
}

static void test_concurrent_batches(void **state) {
    (void)state;
    struct cx_executor *ex = t_executor_make(CX_MODE_FREE, 3);
    enum { T = 4 };
    pthread_t th[T];
    struct sub_arg a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (struct sub_arg){ex, 0};
        assert_int_equal(pthread_create(&th[i], NULL, submitter, &a[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].ok, 1);
    }
    cx_executor_free(ex);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_order),
        cmocka_unit_test(test_gil_mode),
        cmocka_unit_test(test_free_mode_parallel),
        cmocka_unit_test(test_modes_same_results),
        cmocka_unit_test(test_concurrent_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
