/*
 * slowdown.c - benchmark-only slowdowns (cx_testing.h) that scripts/gate --selftest switches on
 * to prove the gate flags a known regression on the figure it really moves: a global mutex
 * held 20 us around every cache lookup, 1 ms more per limiter acquire, validation done ten
 * times, no connection reuse, an emulated GIL that never yields, one executor worker.
 *
 * All off by default. The hot paths test one plain int (cx__slow_on) before anything else,
 * so with the slowdowns off they cost a load and a predicted branch; the per-slowdown settings
 * are read only when it is set. This is the runtime's one piece of mutable global state
 * beyond once-initialised defaults, and the price is that it is set before the objects it
 * slows are used and never while other threads run the runtime (bench_gate_wall sets it at
 * start-up from its command line). Neither the tests nor the `cx` command touch it.
 */
#include <string.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "cx_testing.h"

int cx__slow_on;
struct cx__slowdowns cx__slow;

static pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;

void cx__set_slowdowns(const struct cx__slowdowns *s) {
    static const struct cx__slowdowns off;
    cx__slow = s ? *s : off;
    cx__slow_on = memcmp(&cx__slow, &off, sizeof off) != 0;
}

void cx__slow_cache_lookup(void) {
    if (cx__slow.cache_lock_us == 0) return;
    /* Holding a lock while sleeping is exactly the bug this stands for. */
    pthread_mutex_lock(&g_cache_mu);
    cx_sleep_ns((uint64_t)cx__slow.cache_lock_us * CX_NSEC_PER_USEC);
    pthread_mutex_unlock(&g_cache_mu);
}

void cx__slow_limiter_acquire(void) {
    if (cx__slow.limiter_extra_us)
        cx_sleep_ns((uint64_t)cx__slow.limiter_extra_us * CX_NSEC_PER_USEC);
}
