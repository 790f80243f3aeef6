/*
 * test_fleet_limit.c - the rate limit behind struct cx__ratelimit: local and fleet (Redis)
 * implementations, against a real redis-server (tests/t_redis.h).
 *
 * Every bound is the limiter's contract on its own clock (Redis TIME for the fleet kind,
 * CLOCK_MONOTONIC for the local one), with the time the test's own steps took measured and
 * allowed for: the tests check what the algorithm guarantees, never that the machine keeps up.
 * Waits are computed, not slept, wherever possible, so slow rates cost nothing. How fast
 * things run is bench/bench_fleet.c's business.
 * Two fleet objects stand for two processes: they share nothing but the server.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "fleet.h"
#include "fleet_ratelimit.h"
#include "t_redis.h"
#include "t_util.h"

static struct t_redis rs;

static int group_setup(void **state) {
    (void)state;
    t_redis_start(&rs, NULL);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    t_redis_stop(&rs);
    return 0;
}

/* Each test starts from an empty server. */
static int flush(void **state) {
    (void)state;
    if (rs.pid <= 0) t_redis_restart(&rs);
    t_redis_do(&rs, "FLUSHALL");
    return 0;
}

static struct cx__fleet *fleet_open(const char *url, int optional) {
    struct cx__fleet_options o;
    cx__fleet_options_init(&o);
    o.url = url;
    o.prefix = "cxt";
    o.optional = optional;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 200;
    o.connect_timeout_ms = 300;
    struct cx__fleet *f = NULL;
    struct cx_errinfo ei = {0};
    if (cx__fleet_open(&o, &f, &ei) != 0) fail_msg("open: %s", ei.msg);
    return f;
}

static struct cx__ratelimit *rl_open(struct cx__fleet *f, double rps, double burst, double tpm,
                                     int fleet_size) {
    struct cx__ratelimit_options o;
    cx__ratelimit_options_init(&o);
    o.provider = "p";
    o.rps = rps;
    o.burst = burst;
    o.tpm = tpm;
    o.fleet_size = fleet_size;
    struct cx__ratelimit *rl = NULL;
    struct cx_errinfo ei = {0};
    if (cx__ratelimit_open(&o, f, &rl, &ei) != 0) fail_msg("ratelimit: %s", ei.msg);
    return rl;
}

/* The limiter's own clock in ns: Redis TIME for the fleet kind (its scripts run on it),
 * CLOCK_MONOTONIC for the local one. Bracketing calls with it bounds when they were decided. */
static uint64_t redis_now_ns(void) {
    redisReply *r = t_redis_cmd(&rs, "TIME");
    assert_true(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    uint64_t us = strtoull(r->element[0]->str, NULL, 10) * 1000000ULL +
                  strtoull(r->element[1]->str, NULL, 10);
    freeReplyObject(r);
    return us * 1000;
}

static uint64_t rl_clock(const struct cx__ratelimit *rl) {
    return strcmp(rl->kind, "fleet") == 0 ? redis_now_ns() : cx_now_ns();
}

#define US 1000 /* the scripts round waits up to whole µs: one µs of slack per bound */

/*
 * GCRA's contract, which holds however the caller is scheduled: from a fresh bucket (burst b,
 * T ns per request), the m-th reservation taken (refusals take nothing) waits
 *     (m - b) * T - elapsed  <=  wait  <=  max(0, (m - b) * T)
 * where elapsed is the limiter-clock time from the first reservation to this one.
 */
static void expect_mth(uint64_t w, long m, double b, double T, uint64_t elapsed) {
    double ideal = ((double)m - b) * T;
    if ((double)w > (ideal > 0 ? ideal : 0) + US || (double)w + (double)elapsed + US < ideal)
        fail_msg("reservation %ld (burst %g, %.0f ns each) waited %llu ns, %llu ns after the "
                 "first: want %.0f ns minus at most the time passed", m, b, T,
                 (unsigned long long)w, (unsigned long long)elapsed, ideal);
}

/* How many reservations with max_wait 0 succeed in a row (the bucket's balance, in requests);
 * *refused_wait: the wait that turned the next one down. */
static int drain_now(struct cx__ratelimit *rl, double tokens, uint64_t *refused_wait) {
    int n = 0;
    uint64_t w;
    while (n < 10000 && cx__ratelimit_reserve(rl, tokens, 0, &w, NULL) == 0) n++;
    if (refused_wait) *refused_wait = w;
    return n;
}

/* Burst 3 at 1 request per 10 s (waits are computed, never slept, so a slow rate is free):
 * the first three go at once, then each costs 10 s more; a refusal takes nothing. */
static void check_debt(struct cx__ratelimit *rl) {
    const double T = 10.0 * CX_NSEC_PER_SEC, b = 3;
    uint64_t t0 = rl_clock(rl), wr = 0, w = 0;
    int n = drain_now(rl, 0, &wr);
    uint64_t t1 = rl_clock(rl);
    assert_true(n >= 3 && n <= 3 + (double)(t1 - t0) / T); /* 3 unless 10 s passed */
    expect_mth(wr, n + 1, b, T, t1 - t0); /* what the refused one would have waited */
    assert_true(wr > 0);
    assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &w, NULL), 0);
    expect_mth(w, n + 1, b, T, rl_clock(rl) - t0);
    /* Too long a wait for max_wait: nothing taken (the next one sees the same queue). */
    uint64_t w2 = 0;
    assert_int_equal(cx__ratelimit_reserve(rl, 0, 10 * CX_NSEC_PER_MSEC, &w2, NULL),
                     CX_ETIMEDOUT);
    expect_mth(w2, n + 2, b, T, rl_clock(rl) - t0);
    assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &w2, NULL), 0);
    expect_mth(w2, n + 2, b, T, rl_clock(rl) - t0);
}

static void test_choice_and_local(void **state) {
    (void)state;
    struct cx__ratelimit *rl = rl_open(NULL, 0.1, 3, 0, 1);
    assert_string_equal(rl->kind, "local");
    check_debt(rl);
    assert_int_equal(cx__ratelimit_fallbacks(rl), 0);
    cx__ratelimit_free(rl);

    struct cx__fleet *f = fleet_open(rs.url, 0);
    rl = rl_open(f, 0.1, 3, 0, 1);
    assert_string_equal(rl->kind, "fleet");
    check_debt(rl);
    assert_int_equal(cx__ratelimit_fallbacks(rl), 0);
    cx__ratelimit_free(rl);

    /* Bad options name themselves. */
    struct cx__ratelimit_options o;
    cx__ratelimit_options_init(&o);
    struct cx_errinfo ei;
    o.fleet_size = 0;
    assert_int_equal(cx__ratelimit_open(&o, f, &rl, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_FLEET_SIZE"));
    cx__ratelimit_options_init(&o);
    o.provider = "two words";
    assert_int_equal(cx__ratelimit_open(&o, f, &rl, &ei), CX_EINVAL);
    cx__ratelimit_options_init(&o);
    o.rps = NAN;
    assert_int_equal(cx__ratelimit_open(&o, f, &rl, &ei), CX_ECONFIG);
    cx__fleet_free(f);
}

/* ---- many threads, two "processes", one quota ---- */

/*
 * Each thread reserves, sleeps out the wait (acts on the grant), and repeats until `stop`; every
 * grant is slept out, so by the time the threads are joined each was due. Two bounds follow
 * from the algorithm alone, not from how fast the threads run:
 *   - the grants are at most burst + (elapsed on the limiter's clock) / T (the quota);
 *   - no taker waits longer than the queue in front of it: each thread holds at most one grant
 *     not yet due, so a wait is at most threads * T (the limiter does not over-throttle).
 */
struct rate_arg {
    struct cx__ratelimit *rl;
    double tokens;
    uint64_t stop; /* monotonic: no reservation starts after this */
    atomic_long *granted;
    atomic_long *errors;
    uint64_t worst_wait;
};

static void *rate_thread(void *p) {
    struct rate_arg *a = p;
    while (cx_now_ns() < a->stop) {
        uint64_t w = 0;
        int rc = cx__ratelimit_reserve(a->rl, a->tokens, UINT64_MAX, &w, NULL);
        if (rc != 0) {
            atomic_fetch_add(a->errors, 1);
            continue;
        }
        if (w > a->worst_wait) a->worst_wait = w;
        cx_sleep_ns(w);
        atomic_fetch_add(a->granted, 1);
    }
    return NULL;
}

/* Runs `threads` threads on each of the rls for `secs`; returns the grants, all due by now. */
static long run_rate(struct cx__ratelimit **rls, int nrl, int threads, double tokens, double secs,
                     long *errors, uint64_t *worst_wait) {
    atomic_long granted = 0, errs = 0;
    pthread_t th[64];
    struct rate_arg a[64];
    uint64_t stop = cx_now_ns() + (uint64_t)(secs * 1e9);
    int n = 0;
    for (int r = 0; r < nrl; r++)
        for (int i = 0; i < threads; i++, n++) {
            a[n] = (struct rate_arg){rls[r], tokens, stop, &granted, &errs, 0};
            assert_int_equal(pthread_create(&th[n], NULL, rate_thread, &a[n]), 0);
        }
    *worst_wait = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (a[i].worst_wait > *worst_wait) *worst_wait = a[i].worst_wait;
    }
    *errors = errs;
    return granted;
}

static void test_shared_quota(void **state) {
    (void)state;
    /* Two contexts (processes) x 6 threads against 150 requests/s, burst 10. */
    struct cx__fleet *f1 = fleet_open(rs.url, 0), *f2 = fleet_open(rs.unix_url, 0);
    struct cx__ratelimit *rls[2] = {rl_open(f1, 150, 10, 0, 2), rl_open(f2, 150, 10, 0, 2)};
    const double T = 1e9 / 150;
    long errors;
    uint64_t worst;
    uint64_t t0 = redis_now_ns();
    long got = run_rate(rls, 2, 6, 0, 2.0, &errors, &worst);
    double secs = (double)(redis_now_ns() - t0) / 1e9, quota = 10 + 150 * secs;
    printf("    fleet requests: %ld granted and due in %.2f s (Redis clock) at 150/s + burst 10: "
           "%.3f of quota; longest wait %.1f ms\n", got, secs, got / quota, (double)worst / 1e6);
    assert_int_equal(errors, 0);
    assert_int_equal(cx__ratelimit_fallbacks(rls[0]) + cx__ratelimit_fallbacks(rls[1]), 0);
    assert_true(got > 0);
    assert_true(got <= quota + 1);                   /* GCRA never grants above the quota */
    assert_true((double)worst <= 12 * T + 1e6);      /* ...nor queues a taker behind more than
                                                      * the other 11 threads' grants */
    cx__ratelimit_free(rls[0]);
    cx__ratelimit_free(rls[1]);

    /* The two processes share one bucket: what one takes at once, the other cannot. */
    t_redis_do(&rs, "FLUSHALL");
    rls[0] = rl_open(f1, 150, 10, 0, 2);
    rls[1] = rl_open(f2, 150, 10, 0, 2);
    t0 = redis_now_ns();
    int both = drain_now(rls[0], 0, NULL) + drain_now(rls[1], 0, NULL);
    uint64_t el = redis_now_ns() - t0;
    assert_true(both >= 10 && both <= 10 + (double)el / T);
    cx__ratelimit_free(rls[0]);
    cx__ratelimit_free(rls[1]);

    /* The per-process local limiters of the same fleet each grant the whole burst: twice the
     * quota, the failure the Redis backend exists for. */
    rls[0] = rl_open(NULL, 150, 10, 0, 1);
    rls[1] = rl_open(NULL, 150, 10, 0, 1);
    both = drain_now(rls[0], 0, NULL) + drain_now(rls[1], 0, NULL);
    assert_true(both >= 20);
    cx__ratelimit_free(rls[0]);
    cx__ratelimit_free(rls[1]);
    cx__fleet_free(f1);
    cx__fleet_free(f2);
}

static void test_tokens_per_minute(void **state) {
    (void)state;
    /* 60000 tokens/min = 1 token per ms; requests are plentiful (1000/s), so tokens decide.
     * Drain the minute's burst first, then 20-token reservations share 50/s across both
     * processes. */
    struct cx__fleet *f1 = fleet_open(rs.url, 0), *f2 = fleet_open(rs.url, 0);
    struct cx__ratelimit *rls[2] = {rl_open(f1, 1000, 1000, 60000, 1),
                                    rl_open(f2, 1000, 1000, 60000, 1)};
    uint64_t w;
    uint64_t t0 = redis_now_ns();
    assert_int_equal(cx__ratelimit_reserve(rls[0], 60000, UINT64_MAX, &w, NULL), 0);
    assert_int_equal(w, 0); /* a full bucket's worth from a full bucket */
    /* Now the bucket is empty for both: 30000 more tokens are 30 s away. */
    assert_int_equal(cx__ratelimit_reserve(rls[1], 30000, 10 * CX_NSEC_PER_MSEC, &w, NULL),
                     CX_ETIMEDOUT);
    uint64_t el = redis_now_ns() - t0;
    assert_true(w <= 30 * CX_NSEC_PER_SEC + US && w + el + US >= 30 * CX_NSEC_PER_SEC);
    long errors;
    uint64_t worst;
    long got = run_rate(rls, 2, 4, 20, 2.0, &errors, &worst);
    double secs = (double)(redis_now_ns() - t0) / 1e9, quota = 1000 * secs / 20;
    printf("    fleet tokens: %ld x 20 tokens granted and due in %.2f s at 1000 tokens/s: %.3f; "
           "longest wait %.1f ms\n", got, secs, got / quota, (double)worst / 1e6);
    assert_int_equal(errors, 0);
    assert_true(got > 0);
    assert_true(got <= quota + 1); /* the burst went to the 60000 */
    assert_true((double)worst <= 8 * 20 * 1e6 + 1e6);
    /* Over the limit of one reservation: refused, naming the limit. */
    struct cx_errinfo ei;
    assert_int_equal(cx__ratelimit_reserve(rls[0], 60001, UINT64_MAX, &w, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "tokens per minute"));
    cx__ratelimit_free(rls[0]);
    cx__ratelimit_free(rls[1]);
    cx__fleet_free(f1);
    cx__fleet_free(f2);
}

static void test_adjust(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url, 0);
    /* 1 request per 10 s, burst 1; 10 tokens/s (100 ms each), burst 600. */
    struct cx__ratelimit *rl = rl_open(f, 0.1, 1, 600, 1);
    uint64_t w;
    uint64_t t0 = redis_now_ns();
    assert_int_equal(cx__ratelimit_reserve(rl, 600, 0, &w, NULL), 0);
    /* The request bucket is empty (burst 1) and so is the token bucket. */
    assert_int_equal(cx__ratelimit_reserve(rl, 0, 0, &w, NULL), CX_ETIMEDOUT);
    assert_int_equal(cx__ratelimit_adjust(rl, -1, 0, NULL), 0); /* cancel the request */
    assert_int_equal(cx__ratelimit_reserve(rl, 0, 0, &w, NULL), 0);
    assert_int_equal(cx__ratelimit_adjust(rl, -1, 0, NULL), 0);
    /* The answer used 300 tokens, not 600: refund 300, and 300 are there at once. */
    assert_int_equal(cx__ratelimit_adjust(rl, 0, -300, NULL), 0);
    assert_int_equal(cx__ratelimit_reserve(rl, 290, 0, &w, NULL), 0);
    assert_int_equal(cx__ratelimit_adjust(rl, -1, 0, NULL), 0);
    /* Then it used 200 more than estimated: a charge delays the next taker. The token bucket
     * has taken 600 - 300 + 290 + 200 + 1 = 791 tokens since t0, 191 beyond its burst: the
     * grant is 19.1 s after the first reservation. */
    assert_int_equal(cx__ratelimit_adjust(rl, 0, 200, NULL), 0);
    assert_int_equal(cx__ratelimit_reserve(rl, 1, 0, &w, NULL), CX_ETIMEDOUT);
    uint64_t el = redis_now_ns() - t0;
    const uint64_t due = 19100 * CX_NSEC_PER_MSEC;
    assert_true(w <= due + US && w + el + US >= due);
    cx__ratelimit_free(rl);
    cx__fleet_free(f);
}

/* The pause key's end, µs of Redis's clock, as ns. */
static uint64_t pause_end_ns(void) {
    redisReply *r = t_redis_cmd(&rs, "GET cxt:rl:p:pause");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    uint64_t e = (uint64_t)(strtod(r->str, NULL) * 1000);
    freeReplyObject(r);
    return e;
}

static void test_shared_pause(void **state) {
    (void)state;
    struct cx__fleet *f1 = fleet_open(rs.url, 0), *f2 = fleet_open(rs.unix_url, 0);
    struct cx__ratelimit *a = rl_open(f1, 100, 100, 0, 2), *b = rl_open(f2, 100, 100, 0, 2);
    uint64_t w;
    assert_int_equal(cx__ratelimit_reserve(b, 0, 0, &w, NULL), 0);
    assert_int_equal(cx__ratelimit_paused_until(b), 0);
    /* Process a sees a 429 with Retry-After: 30 s (long enough that no stall outlives it). */
    uint64_t l0 = cx_now_ns(), r0 = redis_now_ns();
    uint64_t until = l0 + 30 * CX_NSEC_PER_SEC;
    assert_int_equal(cx__ratelimit_pause_until(a, until, NULL), 0);
    uint64_t l1 = cx_now_ns(), r1 = redis_now_ns();
    /* The shared end is until translated to Redis's clock, within the call's round trip. */
    uint64_t e = pause_end_ns();
    assert_true(e >= r0 + (until - l1) && e <= r1 + (until - l0) + US);
    /* Process b, which saw nothing, waits it out: paused_until is e back on this host's clock. */
    uint64_t lb = cx_now_ns(), rb = redis_now_ns();
    uint64_t pb = cx__ratelimit_paused_until(b);
    uint64_t la = cx_now_ns(), ra = redis_now_ns();
    assert_true(pb + ra >= lb + e && pb <= la + (e - rb) + US);
    rb = redis_now_ns();
    assert_int_equal(cx__ratelimit_reserve(b, 0, 10 * CX_NSEC_PER_MSEC, &w, NULL), CX_ETIMEDOUT);
    ra = redis_now_ns();
    assert_true(w + ra >= e && w <= e - rb + US);
    rb = redis_now_ns();
    assert_int_equal(cx__ratelimit_reserve(b, 0, UINT64_MAX, &w, NULL), 0);
    ra = redis_now_ns();
    assert_true(w + ra >= e && w <= e - rb + US);
    /* A shorter pause does not shorten it: the shared end stays, a's own end stays. */
    assert_int_equal(cx__ratelimit_pause_until(b, cx_now_ns() + 10 * CX_NSEC_PER_MSEC, NULL), 0);
    assert_int_equal(pause_end_ns(), e);
    assert_true(cx__ratelimit_paused_until(a) >= until);
    /* The pause key expires with the pause. Redis keeps expiries in ms from the script's start
     * (after r0, at or before the TIME giving e): so between r0 + the pause's length - 1 ms and
     * e + 1 ms. PTTL counts from its own start (in [rb, ra], truncated to the ms). */
    rb = redis_now_ns();
    redisReply *r = t_redis_cmd(&rs, "PTTL cxt:rl:p:pause");
    ra = redis_now_ns();
    assert_true(r->integer > 0 && r->integer <= 30000);
    uint64_t expires_lo = rb + (uint64_t)(r->integer - 1) * CX_NSEC_PER_MSEC;
    uint64_t expires_hi = ra + (uint64_t)r->integer * CX_NSEC_PER_MSEC;
    uint64_t earliest = r0 + (until - l1) - CX_NSEC_PER_MSEC, latest = e + CX_NSEC_PER_MSEC;
    if (expires_hi < earliest || expires_lo > latest)
        fail_msg("the pause key expires in [%llu, %llu] µs (Redis clock), want it in [%llu, %llu]",
                 (unsigned long long)(expires_lo / 1000), (unsigned long long)(expires_hi / 1000),
                 (unsigned long long)(earliest / 1000), (unsigned long long)(latest / 1000));
    freeReplyObject(r);
    cx__ratelimit_free(a);
    cx__ratelimit_free(b);

    /* Once a pause is over, by both clocks, it is gone: from the key and from paused_until. */
    t_redis_do(&rs, "FLUSHALL");
    a = rl_open(f1, 100, 100, 0, 2);
    until = cx_now_ns() + 100 * CX_NSEC_PER_MSEC;
    assert_int_equal(cx__ratelimit_pause_until(a, until, NULL), 0);
    e = pause_end_ns();
    cx_sleep_until(until);
    while (redis_now_ns() <= e + CX_NSEC_PER_MSEC) cx_sleep_ns(5 * CX_NSEC_PER_MSEC);
    assert_int_equal(cx__ratelimit_paused_until(a), 0);
    r = t_redis_cmd(&rs, "EXISTS cxt:rl:p:pause");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    cx__ratelimit_free(a);
    cx__fleet_free(f1);
    cx__fleet_free(f2);
}

static void test_noscript_reload(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url, 0);
    struct cx__ratelimit *rl = rl_open(f, 100, 5, 0, 1);
    uint64_t w;
    assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &w, NULL), 0);
    t_redis_do(&rs, "SCRIPT FLUSH");
    assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &w, NULL), 0);
    assert_int_equal(cx__ratelimit_adjust(rl, -1, 0, NULL), 0);
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_int_equal(st.script_loads, 2); /* reserve's, then adjust's */
    assert_int_equal(cx__ratelimit_fallbacks(rl), 0);
    cx__ratelimit_free(rl);
    cx__fleet_free(f);
}

static void expect_corrupt(int rc, const struct cx_errinfo *ei, const char *key, const char *what) {
    if (rc != CX_ECORRUPT) fail_msg("rc %d (%s), want CX_ECORRUPT", rc, ei->msg);
    if (!strstr(ei->msg, key) || !strstr(ei->msg, what)) fail_msg("'%s' lacks %s/%s", ei->msg, key, what);
}

static void test_corrupt_keys(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url, 0);
    struct cx__ratelimit *rl = rl_open(f, 100, 5, 6000, 1);
    uint64_t w;
    struct cx_errinfo ei;
    t_redis_do(&rs, "SET cxt:rl:p:req garbage");
    expect_corrupt(cx__ratelimit_reserve(rl, 1, UINT64_MAX, &w, &ei), &ei, "cxt:rl:p:req",
                   "not a number");
    expect_corrupt(cx__ratelimit_adjust(rl, -1, 0, &ei), &ei, "cxt:rl:p:req", "not a number");
    t_redis_do(&rs, "SET cxt:rl:p:req nan");
    expect_corrupt(cx__ratelimit_reserve(rl, 1, UINT64_MAX, &w, &ei), &ei, "cxt:rl:p:req",
                   "not a number");
    t_redis_do(&rs, "DEL cxt:rl:p:req");
    t_redis_do(&rs, "RPUSH cxt:rl:p:tok a b");
    expect_corrupt(cx__ratelimit_reserve(rl, 1, UINT64_MAX, &w, &ei), &ei, "cxt:rl:p:tok", "list");
    /* Nothing was taken from the request bucket by the refused reservations. */
    redisReply *r = t_redis_cmd(&rs, "EXISTS cxt:rl:p:req");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    t_redis_do(&rs, "DEL cxt:rl:p:tok");
    t_redis_do(&rs, "HSET cxt:rl:p:pause x 1");
    expect_corrupt(cx__ratelimit_reserve(rl, 1, UINT64_MAX, &w, &ei), &ei, "cxt:rl:p:pause",
                   "hash");
    /* A pause with a foreign pause key still pauses this process (its local part). */
    uint64_t until = cx_now_ns() + 300 * CX_NSEC_PER_MSEC;
    expect_corrupt(cx__ratelimit_pause_until(rl, until, &ei), &ei, "cxt:rl:p:pause", "hash");
    t_redis_do(&rs, "DEL cxt:rl:p:pause");
    assert_int_equal(cx__ratelimit_reserve(rl, 1, UINT64_MAX, &w, &ei), 0);
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_int_equal(st.corrupt, 6);
    assert_true(st.up); /* a foreign key is not an outage */
    cx__ratelimit_free(rl);
    cx__fleet_free(f);
}

static void test_down_at_start_uses_share(void **state) {
    (void)state;
    t_redis_kill(&rs);
    struct cx__fleet *f = fleet_open(rs.url, 1);
    assert_false(cx__fleet_up(f));
    /* Quota 2/s, burst 20, fleet of 4: this process may take 5 now, then 1 per 2 s. */
    struct cx__ratelimit *rl = rl_open(f, 2, 20, 0, 4);
    const double T = 2.0 * CX_NSEC_PER_SEC;
    uint64_t t0 = cx_now_ns(), w;
    int n = drain_now(rl, 0, NULL);
    assert_true(n >= 5 && n <= 5 + (double)(cx_now_ns() - t0) / T);
    assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &w, NULL), 0);
    expect_mth(w, n + 1, 5, T, cx_now_ns() - t0);
    assert_true(cx__ratelimit_fallbacks(rl) >= (uint64_t)n + 2);
    char msg[512];
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 1);
    assert_int_equal(cx__fleet_notice(f, msg, sizeof msg), 0);
    cx__ratelimit_free(rl);
    cx__fleet_free(f);
    t_redis_restart(&rs);
}

/* One reservation bracketed by this host's clock: the grant (monotonic) is in [lo, hi]. */
struct grant {
    uint64_t w, lo, hi;
};

static struct grant reserve_at(struct cx__ratelimit *rl) {
    struct grant g;
    uint64_t before = cx_now_ns();
    assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &g.w, NULL), 0);
    g.lo = before + g.w;
    g.hi = cx_now_ns() + g.w;
    return g;
}

/* Switching tiers hands the debt over instead of admitting two queues at once. The rates are
 * slow (the waits are computed, never slept) so every bound below holds however long the
 * steps take; each is exact up to the time the steps took. */
static void test_handover(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url, 0);
    struct cx__ratelimit *rl = rl_open(f, 1, 1, 0, 2); /* 1/s; fallback: 1 per 2 s */
    const double T = 1.0 * CX_NSEC_PER_SEC, Tfb = 2.0 * CX_NSEC_PER_SEC;
    uint64_t r0 = redis_now_ns();
    struct grant g;
    for (int i = 0; i < 5; i++) /* Redis grants this process up to 4 s into the future */
        g = reserve_at(rl);
    expect_mth(g.w, 5, 1, T, redis_now_ns() - r0);
    uint64_t redis_horizon = g.lo; /* the fallback may not grant before Redis's last grant */
    assert_int_equal(cx__ratelimit_fallbacks(rl), 0);
    t_redis_kill(&rs);
    /* The fallback neither starts full nor before Redis's queue for this process has drained. */
    struct grant first = reserve_at(rl);
    assert_int_equal(cx__ratelimit_fallbacks(rl), 1);
    assert_true((double)first.hi >= (double)redis_horizon + Tfb); /* empty: one Tfb more */
    for (int i = 0; i < 10; i++) /* the fallback's own queue: 10 more at 1 per 2 s */
        g = reserve_at(rl);
    assert_true((double)(g.hi - first.lo) >= 10 * Tfb);
    uint64_t horizon_lo = g.lo, horizon_hi = g.hi; /* the fallback's last grant */
    t_redis_restart(&rs); /* empty: the shared bucket forgot everything */
    uint64_t deadline = t_deadline_ms(5000);
    const char *ping[1] = {"PING"};
    while (!cx__fleet_up(f) && !cx_deadline_expired(deadline)) {
        struct redisReply *r;
        if (cx__fleet_command(f, t_deadline_ms(500), 1, ping, NULL, &r, NULL) == 0)
            cx__fleet_reply_free(r);
        else
            cx_sleep_ns(10 * CX_NSEC_PER_MSEC);
    }
    assert_true(cx__fleet_up(f));
    uint64_t fb = cx__ratelimit_fallbacks(rl);
    /* The first answer from Redis (a fresh bucket: no wait) charges the fallback's outstanding
     * grants to the fleet: (local horizon - now) / Tfb requests, and its burst share... */
    r0 = redis_now_ns();
    uint64_t l0 = cx_now_ns();
    g = reserve_at(rl);
    assert_int_equal(g.w, 0);
    uint64_t l1 = cx_now_ns();
    double debt_lo = horizon_lo > l1 ? (double)(horizon_lo - l1) / Tfb : 0;
    double debt_hi = (double)(horizon_hi - l0) / Tfb;
    assert_true(debt_lo >= 5); /* 12 requests outstanding at the kill; a restart within 10 s */
    /* ...plus this process's share of the burst (burst 1 / fleet size 2), since the restarted
     * bucket would otherwise start full. */
    debt_lo += 0.5;
    debt_hi += 0.5;
    /* ...so the next taker queues behind them rather than being let through at once. */
    g = reserve_at(rl);
    assert_int_equal(cx__ratelimit_fallbacks(rl), fb);
    assert_true((double)g.w + (double)(redis_now_ns() - r0) + US >= (1 + debt_lo) * T);
    assert_true((double)g.w <= (1 + debt_hi) * T + US);
    cx__ratelimit_free(rl);
    cx__fleet_free(f);
}

/* ---- kill -9 mid-run ---- */

/*
 * The killer moves through phases on what the threads have done, not on a schedule, so every
 * phase sees calls however slowly the machine runs: up (kill after PHASE_CALLS calls), down
 * (restart after PHASE_CALLS calls that started and ended with Redis dead), back (stop after
 * PHASE_CALLS calls started after the restart).
 */
enum { MID_T = 6, PHASE_CALLS = 3 * MID_T };
enum { UP, DOWN, BACK, DONE };

static _Atomic int phase;
static atomic_long phase_calls[3];

static void *killer(void *p) {
    (void)p;
    while (atomic_load(&phase_calls[UP]) < PHASE_CALLS) cx_sleep_ns(CX_NSEC_PER_MSEC);
    t_redis_kill(&rs);
    atomic_store(&phase, DOWN);
    while (atomic_load(&phase_calls[DOWN]) < PHASE_CALLS) cx_sleep_ns(CX_NSEC_PER_MSEC);
    atomic_store(&phase, BACK); /* before the restart: a BACK call may find it down or up */
    t_redis_restart(&rs);
    while (atomic_load(&phase_calls[BACK]) < PHASE_CALLS) cx_sleep_ns(CX_NSEC_PER_MSEC);
    atomic_store(&phase, DONE);
    return NULL;
}

struct mid_arg {
    struct cx__ratelimit *rl;
    long calls, errors;
    uint64_t worst_ns; /* longest reserve call */
};

static void *mid_thread(void *p) {
    struct mid_arg *a = p;
    int ph;
    while ((ph = atomic_load(&phase)) != DONE) {
        uint64_t t0 = cx_now_ns(), w;
        int rc = cx__ratelimit_reserve(a->rl, 1, UINT64_MAX, &w, NULL);
        uint64_t took = cx_now_ns() - t0;
        if (took > a->worst_ns) a->worst_ns = took;
        a->calls++;
        if (rc != 0) a->errors++;
        if (atomic_load(&phase) == ph) atomic_fetch_add(&phase_calls[ph], 1);
        if (rc == 0 && w > 0) cx_sleep_ns(w < 50 * CX_NSEC_PER_MSEC ? w : 50 * CX_NSEC_PER_MSEC);
    }
    return NULL;
}

static void test_kill_mid_run(void **state) {
    (void)state;
    struct cx__fleet *f = fleet_open(rs.url, 0);
    struct cx__ratelimit *rl = rl_open(f, 200, 20, 60000, 2);
    atomic_store(&phase, UP);
    for (int i = 0; i < 3; i++) atomic_store(&phase_calls[i], 0);
    struct mid_arg a[MID_T];
    pthread_t th[MID_T], kt;
    assert_int_equal(pthread_create(&kt, NULL, killer, NULL), 0);
    for (int i = 0; i < MID_T; i++) {
        a[i] = (struct mid_arg){.rl = rl};
        assert_int_equal(pthread_create(&th[i], NULL, mid_thread, &a[i]), 0);
    }
    char msg[512];
    int notices = 0;
    for (int i = 0; i < MID_T; i++) pthread_join(th[i], NULL);
    pthread_join(kt, NULL);
    long calls = 0, errors = 0;
    uint64_t worst = 0;
    for (int i = 0; i < MID_T; i++) {
        calls += a[i].calls;
        errors += a[i].errors;
        if (a[i].worst_ns > worst) worst = a[i].worst_ns;
    }
    /* Every call returned, none failed (the fallback served the outage), none hung. */
    assert_int_equal(errors, 0);
    assert_true(calls >= 3 * PHASE_CALLS);
    assert_true((double)worst < 1e9 * t_timeout_scale()); /* op timeout 250 ms, plus slack */
    uint64_t fb = cx__ratelimit_fallbacks(rl);
    assert_true(fb >= PHASE_CALLS); /* every call made while Redis was dead */
    /* After the restart, Redis serves again: a few more reservations, no new fallbacks. */
    uint64_t deadline = t_deadline_ms(5000);
    while (!cx__fleet_up(f) && !cx_deadline_expired(deadline)) {
        uint64_t w;
        cx__ratelimit_reserve(rl, 0, 0, &w, NULL);
        cx_sleep_ns(10 * CX_NSEC_PER_MSEC);
    }
    assert_true(cx__fleet_up(f));
    fb = cx__ratelimit_fallbacks(rl);
    for (int i = 0; i < 10; i++) {
        uint64_t w;
        assert_int_equal(cx__ratelimit_reserve(rl, 0, UINT64_MAX, &w, NULL), 0);
    }
    assert_int_equal(cx__ratelimit_fallbacks(rl), fb);
    /* One notice for the outage; the recovery's is the latest state if both came first. */
    while (cx__fleet_notice(f, msg, sizeof msg)) notices++;
    assert_true(notices == 1 && strstr(msg, "reachable again"));
    struct cx__fleet_stats st;
    cx__fleet_stats(f, &st);
    assert_int_equal(st.outages, 1);
    assert_int_equal(st.reconnects, 1);
    printf("    kill -9 mid-run: %ld calls, %llu served locally, longest call %.1f ms\n", calls,
           (unsigned long long)fb, (double)worst / 1e6);
    cx__ratelimit_free(rl);
    cx__fleet_free(f);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_choice_and_local, flush),
        cmocka_unit_test_setup(test_shared_quota, flush),
        cmocka_unit_test_setup(test_tokens_per_minute, flush),
        cmocka_unit_test_setup(test_adjust, flush),
        cmocka_unit_test_setup(test_shared_pause, flush),
        cmocka_unit_test_setup(test_noscript_reload, flush),
        cmocka_unit_test_setup(test_corrupt_keys, flush),
        cmocka_unit_test_setup(test_down_at_start_uses_share, flush),
        cmocka_unit_test_setup(test_handover, flush),
        cmocka_unit_test_setup(test_kill_mid_run, flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
