/*
 * test_gil.c - the emulated GIL: mutual exclusion of CPU sections (checked with a counter of
 * our own, independent of the GIL's), release around I/O, forced switching after the switch
 * interval, and the no-op behaviour on threads that hold no GIL.
 *
 * Every wait has a deadline (t_deadline_ms); nothing depends on timing except that a deadline
 * is long enough for work that takes microseconds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "t_util.h"

#include "cx/clock.h"
#include "cx/gil.h"

static void test_new_free(void **state) {
    (void)state;
    struct cx_gil *g = NULL;
    assert_int_equal(cx_gil_new(0, NULL), CX_EINVAL);
    assert_int_equal(cx_gil_new(0, &g), 0);
    assert_non_null(g);
    assert_int_equal(cx_gil_held(), 0);
    cx_gil_acquire(g);
    assert_int_equal(cx_gil_held(), 1);
    cx_gil_io_begin();
    assert_int_equal(cx_gil_held(), 0);
    cx_gil_io_begin(); /* nested: still released */
    cx_gil_io_end();
    assert_int_equal(cx_gil_held(), 0);
    cx_gil_io_end();
    assert_int_equal(cx_gil_held(), 1);
    cx_gil_checkpoint(); /* nobody waits: no switch */
    cx_gil_release(g);
    assert_int_equal(cx_gil_held(), 0);
    struct cx_gil_stats st;
    cx_gil_stats(g, &st);
    assert_int_equal(st.acquisitions, 2); /* acquire + re-take after I/O */
    assert_int_equal(st.forced_switches, 0);
    assert_int_equal(st.overlaps, 0);
    cx_gil_free(g);
    cx_gil_free(NULL);
}

static void test_noop_without_gil(void **state) {
    (void)state;
    /* Free and serial modes: blocking code brackets itself anyway; nothing must happen. */
    cx_gil_io_begin();
    cx_gil_io_end();
    cx_gil_checkpoint();
    assert_int_equal(cx_gil_held(), 0);
    uint64_t t0 = cx_now_ns();
    cx_cpu_work_ns(200 * CX_NSEC_PER_USEC);
    assert_true(cx_now_ns() - t0 >= 200 * CX_NSEC_PER_USEC); /* CPU time <= wall time */
}

/* ---- mutual exclusion under many threads ---- */

struct excl {
    struct cx_gil *g;
    _Atomic int inside;    /* our own in-section counter */
    _Atomic int max_inside;
    _Atomic int violations;
    int rounds;
};

static void enter(struct excl *e) {
    int now = atomic_fetch_add(&e->inside, 1) + 1;
    if (now > 1) atomic_fetch_add(&e->violations, 1);
    int m = atomic_load(&e->max_inside);
    while (now > m && !atomic_compare_exchange_weak(&e->max_inside, &m, now)) {
    }
}

static void leave(struct excl *e) { atomic_fetch_sub(&e->inside, 1); }

/* CPU work with no checkpoint inside: a forced switch may only happen between two of these,
 * so a section counted by enter/leave around one is a span during which the GIL is held. */
static void plain_cpu_ns(uint64_t ns) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    uint64_t start = (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec, now;
    volatile uint64_t x = 1;
    do {
        for (int i = 0; i < 64; i++) x = x * 3 + 1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        now = (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
    } while (now - start < ns);
}

/* A CPU section of `chunks` pieces with a checkpoint (possible forced switch) between them. */
static void section(struct excl *e, int chunks) {
    for (int i = 0; i < chunks; i++) {
        enter(e);
        plain_cpu_ns(20 * CX_NSEC_PER_USEC);
        leave(e);
        cx_gil_checkpoint();
    }
}

static void *excl_thread(void *p) {
    struct excl *e = p;
    for (int r = 0; r < e->rounds; r++) {
        cx_gil_acquire(e->g);
        section(e, 4);
        cx_gil_io_begin(); /* "I/O": others may run CPU sections now */
        cx_gil_io_end();
        section(e, 4);
        cx_cpu_work_ns(30 * CX_NSEC_PER_USEC); /* the library's own burner, checkpoints inside */
        cx_gil_release(e->g);
    }
    return NULL;
}

static void test_cpu_sections_never_overlap(void **state) {
    (void)state;
    struct excl e = {.rounds = 30};
    /* A short interval makes forced switches (drop, hand over, re-take) happen often. */
    assert_int_equal(cx_gil_new(100 * CX_NSEC_PER_USEC, &e.g), 0);
    enum { N = 8 };
    pthread_t th[N];
    for (int i = 0; i < N; i++) assert_int_equal(pthread_create(&th[i], NULL, excl_thread, &e), 0);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&e.violations), 0);
    assert_int_equal(atomic_load(&e.max_inside), 1);
    struct cx_gil_stats st;
    cx_gil_stats(e.g, &st);
    assert_int_equal(st.overlaps, 0);
    assert_true(st.acquisitions >= (uint64_t)N * e.rounds * 2);
    cx_gil_free(e.g);
}

/* ---- I/O releases the GIL ---- */

struct io_pair {
    struct cx_gil *g;
    struct t_latch holder_in_io, other_got_it, other_done;
};

static void *io_other(void *p) {
    struct io_pair *x = p;
    t_latch_wait(&x->holder_in_io, 1, CX_DEADLINE_NONE);
    cx_gil_acquire(x->g); /* must not block for long: the holder is in I/O */
    t_latch_add(&x->other_got_it);
    cx_gil_release(x->g);
    t_latch_add(&x->other_done);
    return NULL;
}

static void test_io_releases(void **state) {
    (void)state;
    struct io_pair x;
    t_latch_init(&x.holder_in_io);
    t_latch_init(&x.other_got_it);
    t_latch_init(&x.other_done);
    assert_int_equal(cx_gil_new(0, &x.g), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, io_other, &x), 0);
    cx_gil_acquire(x.g);
    cx_gil_io_begin();
    t_latch_add(&x.holder_in_io);
    /* While we are "in I/O" the other thread takes and drops the GIL. */
    assert_true(t_latch_wait(&x.other_got_it, 1, t_deadline_ms(5000)));
    assert_true(t_latch_wait(&x.other_done, 1, t_deadline_ms(5000)));
    cx_gil_io_end();
    assert_int_equal(cx_gil_held(), 1);
    cx_gil_release(x.g);
    pthread_join(th, NULL);
    cx_gil_free(x.g);
    t_latch_destroy(&x.holder_in_io);
    t_latch_destroy(&x.other_got_it);
    t_latch_destroy(&x.other_done);
}

/* ---- forced switching ---- */

struct sw {
    struct cx_gil *g;
    struct t_latch holder_has_it;
    _Atomic int waiter_got_it;
};

static void *sw_waiter(void *p) {
    struct sw *s = p;
    t_latch_wait(&s->holder_has_it, 1, CX_DEADLINE_NONE);
    cx_gil_acquire(s->g); /* the holder never releases voluntarily */
    atomic_store(&s->waiter_got_it, 1);
    cx_cpu_work_ns(2 * CX_NSEC_PER_MSEC);
    cx_gil_release(s->g);
    return NULL;
}

static void test_long_section_yields(void **state) {
    (void)state;
    struct sw s = {0};
    t_latch_init(&s.holder_has_it);
    assert_int_equal(cx_gil_new(1 * CX_NSEC_PER_MSEC, &s.g), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sw_waiter, &s), 0);
    cx_gil_acquire(s.g);
    t_latch_add(&s.holder_has_it);
    /* One long CPU section, cut into 1 ms pieces only to look at the flag; the GIL is never
     * released here except by cx_gil_checkpoint's forced switch. */
    uint64_t deadline = t_deadline_ms(10000);
    while (!atomic_load(&s.waiter_got_it) && !cx_deadline_expired(deadline))
        cx_cpu_work_ns(1 * CX_NSEC_PER_MSEC);
    assert_true(atomic_load(&s.waiter_got_it));
    cx_gil_release(s.g);
    pthread_join(th, NULL);
    struct cx_gil_stats st;
    cx_gil_stats(s.g, &st);
    assert_true(st.forced_switches >= 1);
    assert_true(st.drop_requests >= 1);
    assert_int_equal(st.overlaps, 0);
    cx_gil_free(s.g);
    t_latch_destroy(&s.holder_has_it);
}

/* Two threads both burning 50 ms with a 1 ms interval: both finish, sections never overlap. */
struct burn {
    struct cx_gil *g;
    struct excl *e;
};

static void *burn_thread(void *p) {
    struct burn *b = p;
    cx_gil_acquire(b->g);
    section(b->e, 50 * 1000 / 20); /* 50 ms in 20 us pieces */
    cx_gil_release(b->g);
    return NULL;
}

static void test_two_burners(void **state) {
    (void)state;
    struct excl e = {0};
    struct burn b;
    assert_int_equal(cx_gil_new(1 * CX_NSEC_PER_MSEC, &b.g), 0);
    b.e = &e;
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, burn_thread, &b), 0);
    assert_int_equal(pthread_create(&t2, NULL, burn_thread, &b), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_int_equal(atomic_load(&e.violations), 0);
    struct cx_gil_stats st;
    cx_gil_stats(b.g, &st);
    assert_int_equal(st.overlaps, 0);
    cx_gil_free(b.g);
}

static int torture_new(void *ctx) {
    (void)ctx;
    struct cx_gil *g;
    int rc = cx_gil_new(0, &g);
    if (rc < 0) return rc;
    cx_gil_free(g);
    return 0;
}

static void test_alloc_torture(void **state) {
    (void)state;
    assert_true(t_torture(torture_new, NULL) >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_noop_without_gil),
        cmocka_unit_test(test_cpu_sections_never_overlap),
        cmocka_unit_test(test_io_releases),
        cmocka_unit_test(test_long_section_yields),
        cmocka_unit_test(test_two_burners),
        cmocka_unit_test(test_alloc_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
