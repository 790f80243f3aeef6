/*
 * test_limiter.c - the token bucket: admission counts over a window (one thread and 32),
 * blocking order and timing, acquire_until, reserve, adjust, pauses, bad input, torture.
 *
 * Timing assertions are lower bounds or bounds derived from clock readings taken around the
 * calls (the limiter's origin lies between the readings before and after cx_limiter_new), so a
 * loaded machine cannot break them; no test asserts that something happened "quickly".
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/limiter.h"
#include "t_util.h"

#define NS 1e9

/* A limiter plus the clock readings that bracket its origin. */
struct bracket {
    struct cx_limiter *l;
    uint64_t before, after;
};

static void make(struct bracket *b, double rate, double burst) {
    b->before = cx_now_ns();
    assert_int_equal(cx_limiter_new(rate, burst, &b->l, NULL), 0);
    b->after = cx_now_ns();
}

/* Waits (yielding, bounded by a scaled deadline) until the balance drops below `below`: how a
 * test knows a waiter thread has made its reservation. */
static void wait_tokens_below(struct cx_limiter *l, double below) {
    uint64_t dl = t_deadline_ms(5000);
    while (cx_limiter_tokens(l) >= below) {
        assert_false(cx_deadline_expired(dl));
        sched_yield();
    }
}

/* ---- bad input ---- */

static void test_bad_input(void **state) {
    (void)state;
    struct cx_limiter *l = (struct cx_limiter *)0x1;
    struct cx_errinfo ei;
    const double bad_rates[] = {0, -1, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++) {
        memset(&ei, 0, sizeof ei);
        assert_int_equal(cx_limiter_new(bad_rates[i], 5, &l, &ei), CX_EINVAL);
        assert_int_equal(ei.code, CX_EINVAL);
        assert_non_null(strstr(ei.msg, "rate"));
        assert_ptr_equal(l, (struct cx_limiter *)0x1); /* out untouched */
    }
    const double bad_bursts[] = {0, 0.5, -3, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_bursts / sizeof bad_bursts[0]; i++) {
        memset(&ei, 0, sizeof ei);
        assert_int_equal(cx_limiter_new(5, bad_bursts[i], &l, &ei), CX_EINVAL);
        assert_non_null(strstr(ei.msg, "burst"));
    }
    assert_int_equal(cx_limiter_new(5, 0.5, &l, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "0.5")); /* names the value */
    assert_int_equal(cx_limiter_new(NAN, 1, &l, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "nan"));
    /* A rate so small that a full refill overflows the arithmetic. */
    assert_int_equal(cx_limiter_new(1e-300, 1, &l, &ei), CX_EINVAL);
    assert_int_equal(cx_limiter_new(1e-9, 1e6, &l, &ei), CX_EINVAL);
    assert_int_equal(cx_limiter_new(5, 5, NULL, &ei), CX_EINVAL);

    assert_int_equal(cx_limiter_new(5, 3, &l, NULL), 0);
    const double bad_n[] = {3.5, -1, NAN, INFINITY, -0.001};
    uint64_t w = 77;
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        assert_int_equal(cx_limiter_acquire(l, bad_n[i]), CX_EINVAL);
        assert_int_equal(cx_limiter_acquire_until(l, bad_n[i], 0), CX_EINVAL);
        assert_int_equal(cx_limiter_try_acquire(l, bad_n[i]), CX_EINVAL);
        assert_int_equal(cx_limiter_reserve(l, bad_n[i], &w), CX_EINVAL);
    }
    assert_int_equal(w, 77);
    assert_int_equal(cx_limiter_reserve(l, 1, NULL), CX_EINVAL);
    assert_int_equal(cx_limiter_adjust(l, NAN), CX_EINVAL);
    assert_int_equal(cx_limiter_adjust(l, INFINITY), CX_EINVAL);
    /* None of that took anything: the bucket is still full. */
    assert_true(cx_limiter_tokens(l) == 3.0);
    assert_true(cx_limiter_rate(l) == 5.0);
    assert_true(cx_limiter_burst(l) == 3.0);
    /* n == 0 on a full bucket is granted and takes nothing; n == burst is fine. */
    assert_int_equal(cx_limiter_try_acquire(l, 0), 0);
    assert_int_equal(cx_limiter_reserve(l, 0, &w), 0);
    assert_int_equal(w, 0);
    assert_true(cx_limiter_tokens(l) == 3.0);
    assert_int_equal(cx_limiter_try_acquire(l, 3), 0);
    cx_limiter_free(l);

    /* NULL limiter. */
    assert_int_equal(cx_limiter_acquire(NULL, 1), CX_EINVAL);
    assert_int_equal(cx_limiter_acquire_until(NULL, 1, 0), CX_EINVAL);
    assert_int_equal(cx_limiter_try_acquire(NULL, 1), CX_EINVAL);
    assert_int_equal(cx_limiter_reserve(NULL, 1, &w), CX_EINVAL);
    assert_int_equal(cx_limiter_adjust(NULL, 1), CX_EINVAL);
    cx_limiter_pause_until(NULL, CX_DEADLINE_NONE);
    assert_int_equal(cx_limiter_paused_until(NULL), 0);
    cx_limiter_free(NULL);
}

/* ---- admissions over a window ---- */

/* The bucket is full from creation until the first take (refill beyond burst is lost), so the
 * window starts at the first take, t_first, which lies between b->after and first_end (the end
 * of the first attempt, which succeeded). From then on, admitted(t) + balance(t) =
 * burst + rate * (t - t_first) exactly, as long as the bucket never sat full again (the bursts
 * below make that need a stall of ~200 ms). So the count is checked twice: exactly through that
 * identity, and "within one" from the hammering itself: a try that failed at time f proves the
 * balance was below one token then, so the admissions by f were within one of what the bucket
 * allowed by f (a stalled thread may leave more behind later, so f is the last failure, not the
 * last attempt). */
static void check_window(const struct bracket *b, uint64_t first_end, double rate, double burst,
                         long admitted, double tokens, uint64_t t_tok_before,
                         uint64_t t_tok_after, uint64_t last_fail_start) {
    double lo = burst + rate * (double)(t_tok_before - first_end) / NS;
    double hi = burst + rate * (double)(t_tok_after - b->after) / NS;
    /* try_acquire never takes into debt: the balance it leaves is never negative. */
    if (!(tokens >= -1e-9)) fail_msg("try_acquire left the balance at %.6f", tokens);
    double sum = (double)admitted + tokens;
    if (!(sum >= lo - 1e-6 && sum <= hi + 1e-6))
        fail_msg("admitted %ld + balance %.6f = %.6f outside [%.6f, %.6f]", admitted, tokens, sum,
                 lo, hi);
    /* Never more than the bucket allowed by the end, never less than one short of what it
     * allowed by the start of the last failed attempt. */
    if (last_fail_start == 0) fail_msg("no attempt failed: the hammering never emptied the bucket");
    double allowed_end = hi;
    double allowed_last = burst + rate * (double)(last_fail_start - first_end) / NS;
    if (!((double)admitted <= allowed_end + 1e-6 && (double)admitted >= floor(allowed_last) - 1))
        fail_msg("admitted %ld, expected within 1 of [%.3f, %.3f]", admitted, allowed_last,
                 allowed_end);
}

static void test_window_single_thread(void **state) {
    (void)state;
    const double rate = 1000, burst = 200;
    struct bracket b;
    make(&b, rate, burst);
    /* The window ends half-way between two tokens, where an off-by-one shows in the balance. */
    uint64_t end = b.after + 200 * CX_NSEC_PER_MSEC + (uint64_t)(0.5 * NS / rate);
    long admitted = 0;
    uint64_t start, first_end = 0, last_fail = 0;
    do {
        start = cx_now_ns();
        if (cx_limiter_try_acquire(b.l, 1) == 0)
            admitted++;
        else
            last_fail = start;
        if (first_end == 0) first_end = cx_now_ns();
    } while (start < end);
    uint64_t t1 = cx_now_ns();
    double tokens = cx_limiter_tokens(b.l);
    uint64_t t2 = cx_now_ns();
    check_window(&b, first_end, rate, burst, admitted, tokens, t1, t2, last_fail);
    cx_limiter_free(b.l);
}

struct hammer {
    struct cx_limiter *l;
    pthread_barrier_t *go;
    uint64_t end;
    atomic_long admitted;
    _Atomic(uint64_t) last_fail;  /* the latest start of any failed attempt */
    _Atomic(uint64_t) first_end;  /* the earliest end of any first attempt */
};

static void store_max(_Atomic(uint64_t) *a, uint64_t v) {
    uint64_t prev = atomic_load(a);
    while (prev < v && !atomic_compare_exchange_weak(a, &prev, v)) {
    }
}

static void store_min(_Atomic(uint64_t) *a, uint64_t v) {
    uint64_t prev = atomic_load(a);
    while (prev > v && !atomic_compare_exchange_weak(a, &prev, v)) {
    }
}

static void *hammer_main(void *arg) {
    struct hammer *h = arg;
    pthread_barrier_wait(h->go);
    long mine = 0;
    uint64_t s = cx_now_ns(), last_fail = 0;
    if (cx_limiter_try_acquire(h->l, 1) == 0) mine++;
    store_min(&h->first_end, cx_now_ns());
    while (s < h->end) {
        s = cx_now_ns();
        if (cx_limiter_try_acquire(h->l, 1) == 0)
            mine++;
        else
            last_fail = s;
    }
    atomic_fetch_add(&h->admitted, mine);
    store_max(&h->last_fail, last_fail);
    return NULL;
}

static void test_window_32_threads(void **state) {
    (void)state;
    enum { N = 32 };
    const double rate = 2000, burst = 400;
    pthread_t th[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N + 1);
    struct hammer h = {.go = &go};
    atomic_init(&h.admitted, 0);
    atomic_init(&h.last_fail, 0);
    atomic_init(&h.first_end, UINT64_MAX);
    for (int i = 0; i < N; i++) assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h), 0);
    struct bracket b;
    make(&b, rate, burst);
    h.l = b.l;
    h.end = b.after + 200 * CX_NSEC_PER_MSEC + (uint64_t)(0.5 * NS / rate);
    pthread_barrier_wait(&go);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    uint64_t t1 = cx_now_ns();
    double tokens = cx_limiter_tokens(b.l);
    uint64_t t2 = cx_now_ns();
    check_window(&b, atomic_load(&h.first_end), rate, burst, atomic_load(&h.admitted), tokens,
                 t1, t2, atomic_load(&h.last_fail));
    pthread_barrier_destroy(&go);
    cx_limiter_free(b.l);
}

/* ---- blocking acquire ---- */

static void test_acquire_lower_bounds(void **state) {
    (void)state;
    const double rate = 100; /* one token every 10 ms */
    struct bracket b;
    make(&b, rate, 2);
    assert_int_equal(cx_limiter_acquire(b.l, 1), 0);
    assert_int_equal(cx_limiter_acquire(b.l, 1), 0);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), CX_EAGAIN);
    /* The k-th token past the burst cannot arrive before origin + k/rate. */
    for (int k = 1; k <= 3; k++) {
        assert_int_equal(cx_limiter_acquire(b.l, 1), 0);
        uint64_t now = cx_now_ns();
        assert_true(now >= b.before + (uint64_t)(k * NS / rate));
    }
    /* Half tokens: 1.5 more tokens take 15 ms. */
    assert_int_equal(cx_limiter_acquire(b.l, 1.5), 0);
    assert_true(cx_now_ns() >= b.before + (uint64_t)(4.5 * NS / rate));
    cx_limiter_free(b.l);
}

struct blocker {
    struct cx_limiter *l;
    pthread_barrier_t *go;
    int count;
    atomic_int granted;
    _Atomic(uint64_t) last_return;
};

static void *blocker_main(void *arg) {
    struct blocker *bl = arg;
    pthread_barrier_wait(bl->go);
    for (int i = 0; i < bl->count; i++) {
        if (cx_limiter_acquire(bl->l, 1) == 0) atomic_fetch_add(&bl->granted, 1);
        uint64_t now = cx_now_ns(), prev = atomic_load(&bl->last_return);
        while (prev < now && !atomic_compare_exchange_weak(&bl->last_return, &prev, now)) {
        }
    }
    return NULL;
}

static void test_acquire_many_threads(void **state) {
    (void)state;
    enum { N = 8, EACH = 5 };
    const double rate = 200, burst = 5;
    pthread_t th[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N + 1);
    struct blocker bl = {.go = &go, .count = EACH};
    atomic_init(&bl.granted, 0);
    atomic_init(&bl.last_return, 0);
    struct bracket b;
    make(&b, rate, burst);
    bl.l = b.l;
    for (int i = 0; i < N; i++) assert_int_equal(pthread_create(&th[i], NULL, blocker_main, &bl), 0);
    pthread_barrier_wait(&go);
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&bl.granted), N * EACH);
    /* 40 tokens with 5 up front: the last cannot come before origin + 35/rate. */
    assert_true(atomic_load(&bl.last_return) >= b.before + (uint64_t)((N * EACH - burst) * NS / rate));
    /* Everything granted was owed: the balance is at most what refilled since the last grant. */
    assert_true(cx_limiter_tokens(b.l) <= burst);
    pthread_barrier_destroy(&go);
    cx_limiter_free(b.l);
}

/* ---- reserve, acquire_until ---- */

static void test_reserve_waits(void **state) {
    (void)state;
    const double rate = 10; /* T = 100 ms */
    const double T = NS / rate;
    struct bracket b;
    make(&b, rate, 1);
    uint64_t w;
    uint64_t f0 = cx_now_ns();
    assert_int_equal(cx_limiter_reserve(b.l, 1, &w), 0);
    uint64_t f1 = cx_now_ns();
    assert_int_equal(w, 0);
    /* Each further reservation queues one interval (or a fraction) behind the last: wait =
     * first + k*T - now, where the first take happened between f0 and f1. */
    const double k_after[] = {1, 2, 2.5, 3.5};
    const double n[] = {1, 1, 0.5, 1};
    for (int i = 0; i < 4; i++) {
        uint64_t c0 = cx_now_ns();
        assert_int_equal(cx_limiter_reserve(b.l, n[i], &w), 0);
        uint64_t c1 = cx_now_ns();
        double lo = (double)f0 + k_after[i] * T - (double)c1;
        double hi = (double)f1 + k_after[i] * T - (double)c0 + 1;
        if (!((double)w >= lo && (double)w <= hi))
            fail_msg("reservation %d waits %llu ns, expected in [%.0f, %.0f]", i,
                     (unsigned long long)w, lo, hi);
    }
    /* Tokens are owed: the balance is negative, and even n == 0 must wait its turn. */
    assert_true(cx_limiter_tokens(b.l) < -2.0);
    assert_int_equal(cx_limiter_try_acquire(b.l, 0), CX_EAGAIN);
    assert_int_equal(cx_limiter_acquire_until(b.l, 0, 0), CX_ETIMEDOUT);
    /* A cancelled reservation gives its tokens back. */
    double before = cx_limiter_tokens(b.l);
    assert_int_equal(cx_limiter_adjust(b.l, -1), 0);
    assert_true(cx_limiter_tokens(b.l) >= before + 1 - 1e-9);
    cx_limiter_free(b.l);
}

static void test_acquire_until(void **state) {
    (void)state;
    const double rate = 1; /* T = 1 s */
    struct bracket b;
    make(&b, rate, 1);
    uint64_t f0 = cx_now_ns();
    assert_int_equal(cx_limiter_acquire_until(b.l, 1, 0), 0); /* past deadline, token there */
    uint64_t f1 = cx_now_ns();
    /* The next token comes 1 s after the first take; a deadline half-way fails at once, taking
     * nothing. */
    uint64_t dl = f0 + CX_NSEC_PER_SEC / 2;
    assert_int_equal(cx_limiter_acquire_until(b.l, 1, dl), CX_ETIMEDOUT);
    assert_int_equal(cx_limiter_acquire_until(b.l, 1, 0), CX_ETIMEDOUT);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), CX_EAGAIN);
    uint64_t c0 = cx_now_ns(), w;
    assert_int_equal(cx_limiter_reserve(b.l, 1, &w), 0);
    /* Had the timed-out calls taken a token, this would wait ~2 s. */
    assert_true(w <= f1 + CX_NSEC_PER_SEC - c0 + 1);
    cx_limiter_free(b.l);

    /* A deadline far enough away succeeds, not before the token is due. */
    make(&b, 100, 1);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), 0);
    assert_int_equal(cx_limiter_acquire_until(b.l, 1, t_deadline_ms(10000)), 0);
    assert_true(cx_now_ns() >= b.before + 10 * CX_NSEC_PER_MSEC);
    cx_limiter_free(b.l);
}

/* ---- adjust ---- */

static void test_adjust(void **state) {
    (void)state;
    struct bracket b;
    make(&b, 1, 10);
    assert_true(cx_limiter_tokens(b.l) == 10.0);
    /* Charge 15 after the fact: the balance goes to -5 (plus what refilled since). */
    assert_int_equal(cx_limiter_adjust(b.l, 15), 0);
    double t = cx_limiter_tokens(b.l);
    uint64_t t_read = cx_now_ns();
    assert_true(t >= -5.0 - 1e-9);
    assert_true(t <= -5.0 + (double)(t_read - b.before) / NS + 1e-9);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), CX_EAGAIN);
    assert_int_equal(cx_limiter_acquire_until(b.l, 1, cx_deadline_after_ms(100)), CX_ETIMEDOUT);
    /* A later taker waits for the debt: 6 tokens at 1/s. */
    uint64_t w;
    assert_int_equal(cx_limiter_reserve(b.l, 1, &w), 0);
    uint64_t c1 = cx_now_ns();
    assert_true((double)w >= (double)b.before + 6.0 * NS - (double)c1);
    /* Refunds never lift the balance above burst. */
    assert_int_equal(cx_limiter_adjust(b.l, -1000), 0);
    assert_true(cx_limiter_tokens(b.l) == 10.0);
    uint64_t full_at = cx_now_ns();
    assert_int_equal(cx_limiter_try_acquire(b.l, 10), 0);
    /* The lost part of the refund is really lost: an 11th token needs a second of refill. */
    int rc = cx_limiter_try_acquire(b.l, 1);
    assert_true(rc == CX_EAGAIN || cx_now_ns() - full_at >= CX_NSEC_PER_SEC);
    assert_int_equal(cx_limiter_adjust(b.l, -3), 0);
    t = cx_limiter_tokens(b.l);
    assert_true(t >= 3.0 - 1e-9 - (rc == 0) && t <= 10.0);
    assert_int_equal(cx_limiter_try_acquire(b.l, 3), 0);
    cx_limiter_free(b.l);
}

/* ---- pauses ---- */

static void test_pause_basic(void **state) {
    (void)state;
    struct bracket b;
    make(&b, 1000, 5);
    uint64_t p = cx_deadline_after_ms(150);
    cx_limiter_pause_until(b.l, p);
    uint64_t t0 = cx_now_ns();
    int rc = cx_limiter_try_acquire(b.l, 1);
    double tok = cx_limiter_tokens(b.l);
    uint64_t t1 = cx_now_ns();
    (void)t0;
    assert_true(rc == CX_EAGAIN || t1 >= p);
    if (t1 < p) {
        assert_int_equal(rc, CX_EAGAIN); /* tokens there, but paused */
        assert_true(tok == 5.0);          /* frozen at the balance the pause found */
        assert_int_equal(cx_limiter_paused_until(b.l), p);
        assert_int_equal(cx_limiter_acquire_until(b.l, 1, p - 1), CX_ETIMEDOUT);
    }
    /* Shorter pauses change nothing; longer ones extend. */
    cx_limiter_pause_until(b.l, p - 50 * CX_NSEC_PER_MSEC);
    cx_limiter_pause_until(b.l, 0);
    if (cx_now_ns() < p) assert_int_equal(cx_limiter_paused_until(b.l), p);
    uint64_t p2 = p + 50 * CX_NSEC_PER_MSEC;
    cx_limiter_pause_until(b.l, p2);
    /* A reservation during the pause waits for its end. */
    uint64_t w;
    assert_int_equal(cx_limiter_reserve(b.l, 1, &w), 0);
    uint64_t c1 = cx_now_ns();
    assert_true(c1 + w >= p2);
    /* No acquire returns before the end of the pause. */
    assert_int_equal(cx_limiter_acquire(b.l, 1), 0);
    assert_true(cx_now_ns() >= p2);
    cx_limiter_free(b.l);

    /* A pause forever: nothing is granted, deadlines fail at once. */
    make(&b, 1000, 5);
    cx_limiter_pause_until(b.l, CX_DEADLINE_NONE);
    assert_int_equal(cx_limiter_paused_until(b.l), CX_DEADLINE_NONE);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), CX_EAGAIN);
    assert_int_equal(cx_limiter_acquire_until(b.l, 1, t_deadline_ms(1000)), CX_ETIMEDOUT);
    assert_int_equal(cx_limiter_reserve(b.l, 1, &w), 0);
    assert_int_equal(w, UINT64_MAX);
    cx_limiter_free(b.l);
}

struct waiter {
    struct cx_limiter *l;
    uint64_t deadline;
    int rc;
    uint64_t returned;
};

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    w->rc = cx_limiter_acquire_until(w->l, 1, w->deadline);
    w->returned = cx_now_ns();
    return NULL;
}

static void test_pause_reaches_sleepers(void **state) {
    (void)state;
    const double rate = 5; /* T = 200 ms */
    struct bracket b;
    make(&b, rate, 1);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), 0);
    struct waiter w = {.l = b.l, .deadline = CX_DEADLINE_NONE};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    wait_tokens_below(b.l, -0.5); /* the waiter reserved: due at origin + 200 ms */
    uint64_t p = cx_now_ns() + 300 * CX_NSEC_PER_MSEC;
    cx_limiter_pause_until(b.l, p);
    uint64_t after_pause = cx_now_ns();
    /* The main thread queues behind the waiter: its token is one interval after. */
    assert_int_equal(cx_limiter_acquire(b.l, 1), 0);
    uint64_t main_ret = cx_now_ns();
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    if (after_pause < b.before + (uint64_t)(NS / rate)) {
        /* The pause was done before the waiter's grant: it moved the grant past p. */
        assert_true(w.returned >= p);
        assert_true(main_ret >= p + (uint64_t)(NS / rate) - 1);
    }
    assert_true(main_ret >= p);
    cx_limiter_free(b.l);
}

static void test_pause_times_out_waiter_and_refunds(void **state) {
    (void)state;
    const double rate = 2; /* T = 500 ms */
    struct bracket b;
    make(&b, rate, 1);
    assert_int_equal(cx_limiter_try_acquire(b.l, 1), 0);
    struct waiter w = {.l = b.l, .deadline = b.before + 800 * CX_NSEC_PER_MSEC};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    wait_tokens_below(b.l, -0.5); /* reserved: due at origin + 500 ms, inside its deadline */
    cx_limiter_pause_until(b.l, cx_now_ns() + 2 * CX_NSEC_PER_SEC);
    uint64_t after_pause = cx_now_ns();
    pthread_join(th, NULL);
    if (w.rc == 0) {
        /* Only possible when the pause ended after the grant (a stalled machine). */
        assert_true(after_pause >= b.before + (uint64_t)(NS / rate));
    } else {
        assert_int_equal(w.rc, CX_ETIMEDOUT);
        /* Its token came back: frozen balance = (pause time - origin) * rate, in [0, 1). */
        double t = cx_limiter_tokens(b.l);
        assert_true(t >= -1e-9 && t < 1.0);
    }
    cx_limiter_free(b.l);
}

/* ---- allocation torture ---- */

static int new_scenario(void *ctx) {
    (void)ctx;
    struct cx_limiter *l = NULL;
    struct cx_errinfo ei;
    int rc = cx_limiter_new(5, 5, &l, &ei);
    if (rc < 0) {
        assert_null(l);
        assert_int_equal(ei.code, rc);
        return rc;
    }
    rc = cx_limiter_try_acquire(l, 1);
    cx_limiter_free(l);
    return rc;
}

static void test_torture(void **state) {
    (void)state;
    assert_true(t_torture(new_scenario, NULL) >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_window_single_thread),
        cmocka_unit_test(test_window_32_threads),
        cmocka_unit_test(test_acquire_lower_bounds),
        cmocka_unit_test(test_acquire_many_threads),
        cmocka_unit_test(test_reserve_waits),
        cmocka_unit_test(test_acquire_until),
        cmocka_unit_test(test_adjust),
        cmocka_unit_test(test_pause_basic),
        cmocka_unit_test(test_pause_reaches_sleepers),
        cmocka_unit_test(test_pause_times_out_waiter_and_refunds),
        cmocka_unit_test(test_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
