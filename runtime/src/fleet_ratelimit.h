/*
 * fleet_ratelimit.h - internal: the provider rate limit behind one small interface, with two
 * implementations chosen at open: local (two cx_limiters in this process) and fleet (GCRA in
 * Redis, shared by every process with the same prefix and provider).
 *
 * One reservation takes one request from the request bucket (rps, burst) and `tokens` from the
 * tokens-per-minute bucket (rate tpm/60 per second, burst tpm; absent when tpm is 0), and says
 * how long to wait before acting on them: the later of the two buckets' grant times and the end
 * of any pause in force (the reserve model of cx/limiter.h: the taker goes into debt at once and
 * later takers queue behind it). adjust() corrects usage after the answer (charges or refunds
 * tokens, or gives a cancelled reservation back). pause_until() is the Retry-After of a 429.
 *
 * The fleet implementation runs the whole decision in one Lua script (EVALSHA) on Redis's clock
 * (TIME), so host clocks do not matter and two processes cannot both take the last token. Its
 * state per provider is three keys, each with an expiry so an idle fleet leaves nothing behind:
 *     <prefix>:rl:<provider>:req    the request bucket's theoretical arrival time (µs, Redis TIME)
 *     <prefix>:rl:<provider>:tok    the token bucket's
 *     <prefix>:rl:<provider>:pause  the end of the fleet-wide pause (µs), expiring at that end
 * Every process of a fleet must be configured with the same quota: the script applies the
 * caller's rates to the shared state. A pause moves both buckets later by its length (as the
 * local limiter does), so the queue keeps its spacing instead of rushing out when it ends.
 *
 * Outage: when Redis cannot answer within op_timeout_ms (down, killed, restarting), the fleet
 * implementation serves the call from a local limiter at quota / fleet_size, and counts it in
 * `fallbacks`; the fleet's notice (cx__fleet_notice) says so once per outage. Pauses are applied
 * to that local limiter too, so a pause in force is kept through an outage. At each switch a
 * process hands its own debt to the other tier (its grants still in the future, and on the way
 * back its share of the burst: see "Switching tiers" in fleet_ratelimit.c), so the two queues
 * are not admitted at once. A foreign or corrupt
 * value under one of the keys is CX_ECORRUPT naming the key (nothing is taken); it is not papered
 * over by the fallback, since Redis itself is fine and the operator must fix the key.
 *
 * Threads: every operation may be called from any thread at once; free once, after the others.
 */
#ifndef CX_FLEET_RATELIMIT_H
#define CX_FLEET_RATELIMIT_H

#include <stdint.h>

#include "cx/common.h"

struct cx__fleet;
struct cx__ratelimit;

struct cx__ratelimit_ops {
    /* Takes 1 request and `tokens` (>= 0, <= tpm when tpm > 0) and sets *wait_ns. If the wait
     * would exceed max_wait_ns (UINT64_MAX: no limit), takes nothing and returns CX_ETIMEDOUT
     * (still setting *wait_ns). Returns 0, CX_ETIMEDOUT, CX_EINVAL, CX_ECORRUPT, CX_EPROTO. */
    int (*reserve)(struct cx__ratelimit *rl, double tokens, uint64_t max_wait_ns,
                   uint64_t *wait_ns, struct cx_errinfo *ei);
    /* Charges (> 0) or refunds (< 0) requests and tokens. Returns 0, CX_EINVAL, CX_ECORRUPT. */
    int (*adjust)(struct cx__ratelimit *rl, double requests, double tokens,
                  struct cx_errinfo *ei);
    /* Pauses until the CLOCK_MONOTONIC `deadline` (every process of a fleet). Returns 0,
     * CX_ECORRUPT (the pause key holds something foreign; the local part still paused). */
    int (*pause_until)(struct cx__ratelimit *rl, uint64_t deadline, struct cx_errinfo *ei);
    /* The monotonic end of the pause in force, 0 when none. */
    uint64_t (*paused_until)(struct cx__ratelimit *rl);
    void (*free)(struct cx__ratelimit *rl);
};

struct cx__ratelimit {
    const struct cx__ratelimit_ops *ops;
    const char *kind; /* "local" or "fleet" */
};

struct cx__ratelimit_options {
    const char *provider; /* borrowed: names the keys (1..64 printable characters, no blanks) */
    double rps;           /* > 0: the fleet's requests per second */
    double burst;         /* >= 1 */
    double tpm;           /* 0 = no token bucket, else >= 1 */
    int fleet_size;       /* >= 1: the local fallback runs at quota / fleet_size */
    int op_timeout_ms;    /* >= 1: how long one call may wait for Redis (default 250) */
};

/* Defaults: provider "default", rps 5, burst 5, tpm 0, fleet_size 1, op_timeout_ms 250. */
void cx__ratelimit_options_init(struct cx__ratelimit_options *o);

/*
 * fleet NULL: the local implementation at the full quota. fleet non-NULL (borrowed, must
 * outlive rl): the fleet implementation, with its local fallback at quota / fleet_size.
 * out: returned, release with cx__ratelimit_free. Errors: CX_EINVAL/CX_ECONFIG naming the bad
 * option, CX_ENOMEM. Threads: any thread.
 */
int cx__ratelimit_open(const struct cx__ratelimit_options *o, struct cx__fleet *fleet,
                       struct cx__ratelimit **out, struct cx_errinfo *ei);

/*
 * The local implementation over limiters the caller keeps: req, the request bucket, and tok, the
 * tokens-per-minute bucket (both borrowed, must outlive rl; either may be NULL for no such
 * limit): the router's own limits when no fleet is configured. Errors: CX_EINVAL, CX_ENOMEM.
 * Threads: any thread.
 */
struct cx_limiter;
int cx__ratelimit_wrap(struct cx_limiter *req, struct cx_limiter *tok, struct cx__ratelimit **out,
                       struct cx_errinfo *ei);

static inline int cx__ratelimit_reserve(struct cx__ratelimit *rl, double tokens,
                                        uint64_t max_wait_ns, uint64_t *wait_ns,
                                        struct cx_errinfo *ei) {
    return rl->ops->reserve(rl, tokens, max_wait_ns, wait_ns, ei);
}
static inline int cx__ratelimit_adjust(struct cx__ratelimit *rl, double requests, double tokens,
                                       struct cx_errinfo *ei) {
    return rl->ops->adjust(rl, requests, tokens, ei);
}
static inline int cx__ratelimit_pause_until(struct cx__ratelimit *rl, uint64_t deadline,
                                            struct cx_errinfo *ei) {
    return rl->ops->pause_until(rl, deadline, ei);
}
static inline uint64_t cx__ratelimit_paused_until(struct cx__ratelimit *rl) {
    return rl->ops->paused_until(rl);
}
static inline void cx__ratelimit_free(struct cx__ratelimit *rl) {
    if (rl != NULL) rl->ops->free(rl);
}

/*
 * Reserves and sleeps out the wait, giving up (nothing taken) when the grant would come after
 * `deadline`. Returns 0 once the reservation may be acted on, CX_ETIMEDOUT, or reserve's errors.
 * Threads: any thread; blocks until at most the deadline.
 */
int cx__ratelimit_acquire(struct cx__ratelimit *rl, double tokens, uint64_t deadline,
                          struct cx_errinfo *ei);

/*
 * Makes router r reserve through rl (borrowed: must outlive r; NULL: back to the router's own
 * local limits). The pipeline hands its fleet limit over here right after cx_router_new.
 * Threads: before the router's first call only (router.c).
 */
struct cx_router;
void cx__router_use_ratelimit(struct cx_router *r, struct cx__ratelimit *rl);

/* The fleet implementation's reserve round trips (answered ones): how many, and their median
 * and 99th percentile in µs (1 µs resolution below 1 ms, 1 ms above). Zeros for local.
 * Threads: any thread. */
void cx__ratelimit_rtt(struct cx__ratelimit *rl, uint64_t *n, double *p50_us, double *p99_us);

/* Calls served by the local fallback because Redis could not answer (0 for local). */
uint64_t cx__ratelimit_fallbacks(struct cx__ratelimit *rl);

#endif /* CX_FLEET_RATELIMIT_H */
