/*
 * limiter.c - the token-bucket rate limiter (contract in cx/limiter.h).
 *
 * What it does: decides, under one short mutex, when each taker may go, and lets blocking
 * takers sleep until then with no lock held. What it does not do: queue threads on a condition
 * variable, wake sleepers early, or know anything about HTTP (the router turns a Retry-After
 * into cx_limiter_pause_until).
 *
 * Representation (GCRA, the "generic cell rate algorithm"). With T = 1e9 / rate nanoseconds per
 * token and tolerance = burst * T, the whole bucket is one number, `tat`, the time at which the
 * bucket would be full again:
 *     balance(t) = burst - max(0, tat - t) / T
 * Taking n tokens at time `now` sets tat = max(tat, now) + n*T and grants at
 * max(now, tat - tolerance), the instant the balance climbs back to zero. This is exactly
 * x/time/rate's token arithmetic, but the state is a time, not a balance refilled by
 * elapsed*rate on every call, so there is no per-call accumulation and no drift. Times are
 * doubles in nanoseconds relative to the limiter's creation, so they stay small (about 2 ns of
 * resolution after four months) and fractional n and non-integer T need no rounding. Integer
 * nanosecond GCRA would be exact only when 1e9/rate is an integer; rounding T to whole
 * nanoseconds would bias a high rate by up to 1/T.
 *
 * Pauses stop the clock: pause_until(P) at `now` moves tat later by D = P - max(now, end of the
 * current pause), adds D to `shift`, and bumps `pause_gen`. Takers that ask during a pause
 * compute with now = P. A sleeper remembers the generation and shift it saw; when it wakes it
 * reads the generation (one atomic load, no lock) and, only if it changed, takes the lock and
 * moves its grant time later by the shift that happened meanwhile, but never before the end of
 * the pause, then sleeps again. So a pause reaches every waiter without waking anybody early.
 */
#include "cx/limiter.h"

#include <math.h>
#include <stdatomic.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "cx_testing.h"

/* Relative times are kept below this so that tat + n*T stays finite and converts to a uint64
 * deadline (CX_DEADLINE_NONE) instead of overflowing: a pause "forever" lands here. */
#define TAT_MAX 1.8e19
/* The largest full-refill time accepted at creation (~31.7 years). */
#define TOLERANCE_MAX 1e18

struct cx_limiter {
    double rate;           /* tokens per second, as given */
    double burst;          /* capacity, as given */
    double max_n;          /* burst, or NaN when a bench-only slowdown is on (see bad_n) */
    double interval;       /* T: nanoseconds per token */
    double tolerance;      /* burst * T: how far tat may run ahead of now */
    uint64_t origin;       /* cx_now_ns() at creation; relative times count from here */
    struct cx__mutex mu;
    double tat;            /* guarded by mu: time (relative) at which the bucket is full */
    double pause_end;      /* guarded by mu: relative end of the latest pause, 0 if none */
    uint64_t pause_end_abs; /* guarded by mu: the same as a cx deadline, 0 if none */
    double shift;          /* guarded by mu: total nanoseconds pauses have stopped the clock */
    _Atomic(uint64_t) pause_gen; /* written under mu: bumped by every pause that extends */
};

int cx_limiter_new(double rate, double burst, struct cx_limiter **out, struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_limiter_new: out is NULL");
    if (!(rate > 0) || !isfinite(rate))
        return cx__err(ei, CX_EINVAL, "limiter rate must be > 0 and finite, got %g", rate);
    if (!(burst >= 1) || !isfinite(burst))
        return cx__err(ei, CX_EINVAL, "limiter burst must be >= 1 and finite, got %g", burst);
    double interval = 1e9 / rate;
    double tolerance = burst * interval;
    if (!isfinite(interval) || !(tolerance <= TOLERANCE_MAX))
        return cx__err(ei, CX_EINVAL,
                       "limiter rate %g too small for burst %g: a full refill would take %g s",
                       rate, burst, tolerance / 1e9);
    struct cx_limiter *l = cx__calloc(1, sizeof *l);
    if (l == NULL) return cx__err(ei, CX_ENOMEM, "cx_limiter_new: out of memory");
    if (cx__mutex_init(&l->mu) < 0) {
        cx__free(l);
        return cx__err(ei, CX_ENOMEM, "cx_limiter_new: cannot create mutex");
    }
    l->rate = rate;
    l->burst = burst;
    l->max_n = cx__slow_on && cx__slow.limiter_extra_us ? NAN : burst;
    l->interval = interval;
    l->tolerance = tolerance;
    l->origin = cx_now_ns();
    l->tat = 0;            /* full at creation: tat <= now */
    l->pause_end = 0;
    l->pause_end_abs = 0;
    l->shift = 0;
    atomic_init(&l->pause_gen, 0);
    *out = l;
    return 0;
}

void cx_limiter_free(struct cx_limiter *l) {
    if (l == NULL) return;
    cx__mutex_destroy(&l->mu);
    cx__free(l);
}

double cx_limiter_rate(const struct cx_limiter *l) { return l ? l->rate : 0; }
double cx_limiter_burst(const struct cx_limiter *l) { return l ? l->burst : 0; }

/* The check every acquire makes. max_n is NaN under the bench-only limiter slowdown
 * (slowdown.c), so every call takes the rare branch, where out_of_range tells a real error
 * from the slowdown: the common path costs nothing more for it. */
static int bad_n(const struct cx_limiter *l, double n) { return !(n >= 0) || !(n <= l->max_n); }
static int out_of_range(const struct cx_limiter *l, double n) {
    return !(n >= 0) || !(n <= l->burst);
}

/* Relative time of an absolute reading (clock readings never precede origin). */
static double rel_of(const struct cx_limiter *l, uint64_t abs) {
    return abs > l->origin ? (double)(abs - l->origin) : 0.0;
}

/* Absolute deadline of a relative time, rounded up so nobody is granted early; saturates at
 * CX_DEADLINE_NONE. */
static uint64_t abs_of(const struct cx_limiter *l, double rel) {
    if (!(rel < TAT_MAX)) return CX_DEADLINE_NONE;
    if (rel <= 0) return l->origin;
    uint64_t u = (uint64_t)ceil(rel);
    if (u >= CX_DEADLINE_NONE - l->origin) return CX_DEADLINE_NONE;
    return l->origin + u;
}

static double clamp_tat(double t) { return t < TAT_MAX ? t : TAT_MAX; }

/* The "now" takers compute with: the end of the pause while one holds. Caller holds mu. */
static double effective_now(struct cx_limiter *l, double now) {
    CX_ASSERT_HELD(&l->mu);
    return now > l->pause_end ? now : l->pause_end;
}

/* Computes, without committing, the tat after taking n at `now` and the grant time (both
 * relative). Caller holds mu. */
static void plan_locked(struct cx_limiter *l, double n, double now, double *new_tat,
                        double *grant) {
    CX_ASSERT_HELD(&l->mu);
    double eff = effective_now(l, now);
    double base = l->tat > eff ? l->tat : eff;
    double t = clamp_tat(base + n * l->interval);
    double g = t - l->tolerance;
    *new_tat = t;
    *grant = g > eff ? g : eff;
}

/* Applies a charge (delta > 0) or refund (delta < 0) at `now`. Caller holds mu. */
static void adjust_locked(struct cx_limiter *l, double delta, double now) {
    CX_ASSERT_HELD(&l->mu);
    double eff = effective_now(l, now);
    double base = l->tat > eff ? l->tat : eff;
    double t = base + delta * l->interval;
    if (t < eff) t = eff; /* the balance never exceeds burst */
    l->tat = clamp_tat(t);
}

int cx_limiter_try_acquire(struct cx_limiter *l, double n) {
    if (l == NULL || (bad_n(l, n) && out_of_range(l, n))) return CX_EINVAL;
    cx__mutex_lock(&l->mu);
    double now = rel_of(l, cx_now_ns());
    double new_tat, grant;
    plan_locked(l, n, now, &new_tat, &grant);
    int rc = CX_EAGAIN;
    if (grant <= now) {
        l->tat = new_tat;
        rc = 0;
    }
    cx__mutex_unlock(&l->mu);
    return rc;
}

int cx_limiter_reserve(struct cx_limiter *l, double n, uint64_t *wait_ns) {
    if (l == NULL || wait_ns == NULL || (bad_n(l, n) && out_of_range(l, n))) return CX_EINVAL;
    cx__mutex_lock(&l->mu);
    uint64_t now_abs = cx_now_ns();
    double new_tat, grant;
    plan_locked(l, n, rel_of(l, now_abs), &new_tat, &grant);
    l->tat = new_tat;
    cx__mutex_unlock(&l->mu);
    uint64_t g = abs_of(l, grant);
    *wait_ns = g == CX_DEADLINE_NONE ? UINT64_MAX : (g > now_abs ? g - now_abs : 0);
    return 0;
}

int cx_limiter_acquire_until(struct cx_limiter *l, double n, uint64_t deadline) {
    if (l == NULL) return CX_EINVAL;
    if (bad_n(l, n)) {
        if (out_of_range(l, n)) return CX_EINVAL;
        cx__slow_limiter_acquire(); /* bench-only (slowdown.c) */
    }
    cx__mutex_lock(&l->mu);
    uint64_t now_abs = cx_now_ns();
    double now = rel_of(l, now_abs);
    double new_tat, grant;
    plan_locked(l, n, now, &new_tat, &grant);
    if (grant <= now) { /* granted now: the common case takes no second look */
        l->tat = new_tat;
        cx__mutex_unlock(&l->mu);
        return 0;
    }
    uint64_t grant_abs = abs_of(l, grant);
    if (grant_abs > deadline) {
        cx__mutex_unlock(&l->mu);
        return CX_ETIMEDOUT;
    }
    l->tat = new_tat;
    uint64_t seen_gen = atomic_load(&l->pause_gen);
    double seen_shift = l->shift;
    cx__mutex_unlock(&l->mu);

    for (;;) {
        while (cx_now_ns() < grant_abs) cx_sleep_until(grant_abs);
        if (atomic_load(&l->pause_gen) == seen_gen) return 0;
        /* A pause began while we slept: move our grant as it moved everybody's. */
        cx__mutex_lock(&l->mu);
        grant += l->shift - seen_shift;
        if (grant < l->pause_end) grant = l->pause_end;
        seen_shift = l->shift;
        seen_gen = atomic_load(&l->pause_gen);
        grant_abs = abs_of(l, grant);
        if (grant_abs > deadline) {
            adjust_locked(l, -n, rel_of(l, cx_now_ns()));
            cx__mutex_unlock(&l->mu);
            return CX_ETIMEDOUT;
        }
        cx__mutex_unlock(&l->mu);
    }
}

int cx_limiter_acquire(struct cx_limiter *l, double n) {
    return cx_limiter_acquire_until(l, n, CX_DEADLINE_NONE);
}

int cx_limiter_adjust(struct cx_limiter *l, double delta) {
    if (l == NULL || !isfinite(delta)) return CX_EINVAL;
    cx__mutex_lock(&l->mu);
    adjust_locked(l, delta, rel_of(l, cx_now_ns()));
    cx__mutex_unlock(&l->mu);
    return 0;
}

void cx_limiter_pause_until(struct cx_limiter *l, uint64_t deadline) {
    if (l == NULL || deadline <= l->origin) return;
    double end = deadline == CX_DEADLINE_NONE ? TAT_MAX : (double)(deadline - l->origin);
    if (end > TAT_MAX) end = TAT_MAX;
    cx__mutex_lock(&l->mu);
    double cur = effective_now(l, rel_of(l, cx_now_ns()));
    if (end > cur) {
        double d = end - cur;
        double base = l->tat > cur ? l->tat : cur;
        l->tat = clamp_tat(base + d);
        l->pause_end = end;
        l->pause_end_abs = deadline;
        l->shift += d;
        atomic_fetch_add(&l->pause_gen, 1);
    }
    cx__mutex_unlock(&l->mu);
}

uint64_t cx_limiter_paused_until(struct cx_limiter *l) {
    if (l == NULL) return 0;
    cx__mutex_lock(&l->mu);
    uint64_t end = l->pause_end_abs;
    cx__mutex_unlock(&l->mu);
    return end > cx_now_ns() ? end : 0;
}

double cx_limiter_tokens(struct cx_limiter *l) {
    if (l == NULL) return 0;
    cx__mutex_lock(&l->mu);
    double eff = effective_now(l, rel_of(l, cx_now_ns()));
    double ahead = l->tat > eff ? l->tat - eff : 0;
    double tokens = l->burst - ahead / l->interval;
    cx__mutex_unlock(&l->mu);
    return tokens;
}
