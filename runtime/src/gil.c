/*
 * gil.c - the emulated global interpreter lock behind the "gil" execution mode.
 *
 * What it does: one lock that CPU sections hold, released around blocking I/O, with CPython's
 * switch-interval protocol (Python/ceval_gil.c, FORCE_SWITCHING): a waiter waits one interval
 * on `cond`; if no switch happened meanwhile it sets drop_request; the holder notices at its
 * next checkpoint, drops the lock and waits on `switch_cond` until another thread has taken it
 * (so it cannot grab it straight back), then queues again. What it does not do: fairness
 * beyond that (CPython has none either), recursion, or deadlock detection.
 *
 * Each thread remembers in thread-local storage the GIL it holds, so deep code can release it
 * around I/O with cx_gil_io_begin/end without being passed the lock.
 *
 * Instrumentation: `in_section` is incremented after the lock is taken and decremented before
 * it is dropped; seeing it non-zero on entry means two CPU sections overlapped (a bug in this
 * file); tests assert `overlaps` stays 0.
 */
#include "cx/gil.h"

#include <time.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "cx_testing.h"

struct cx_gil {
    struct cx__mutex mu;
    pthread_cond_t cond;        /* signalled when the GIL is released */
    pthread_cond_t switch_cond; /* broadcast when it is taken (switch_number moved) */
    int locked;                 /* guarded by mu */
    int waiters;                /* guarded by mu */
    uint64_t switch_number;     /* guarded by mu: times the GIL was taken */
    _Atomic int drop_request;   /* written under mu; read lock-free by checkpoints */
    uint64_t interval_ns;       /* immutable */
    _Atomic int in_section;
    _Atomic uint64_t acquisitions, forced_switches, drop_requests, overlaps;
};

/* The GIL this thread acquired (kept while released for I/O), whether it holds it right now,
 * and the nesting depth of cx_gil_io_begin. */
static _Thread_local struct cx_gil *tls_gil;
static _Thread_local int tls_held;
static _Thread_local int tls_io_depth;

int cx_gil_new(uint64_t switch_interval_ns, struct cx_gil **out) {
    if (out == NULL) return CX_EINVAL;
    *out = NULL;
    struct cx_gil *g = cx__calloc(1, sizeof(*g));
    if (g == NULL) return CX_ENOMEM;
    if (cx__mutex_init(&g->mu) < 0) goto fail_mu;
    if (cx__cond_init(&g->cond) < 0) goto fail_cond;
    if (cx__cond_init(&g->switch_cond) < 0) goto fail_switch;
    g->interval_ns = switch_interval_ns ? switch_interval_ns : CX_GIL_DEFAULT_INTERVAL_NS;
    *out = g;
    return 0;
fail_switch:
    pthread_cond_destroy(&g->cond);
fail_cond:
    cx__mutex_destroy(&g->mu);
fail_mu:
    cx__free(g);
    return CX_ENOMEM;
}

void cx_gil_free(struct cx_gil *g) {
    if (g == NULL) return;
    CX_ASSERT(!g->locked && g->waiters == 0);
    pthread_cond_destroy(&g->switch_cond);
    pthread_cond_destroy(&g->cond);
    cx__mutex_destroy(&g->mu);
    cx__free(g);
}

static void take(struct cx_gil *g) {
    cx__mutex_lock(&g->mu);
    if (g->locked) {
        g->waiters++;
        while (g->locked) {
            uint64_t seen = g->switch_number;
            int rc = cx__cond_wait(&g->cond, &g->mu, cx_deadline_after_ns(g->interval_ns));
            /* A whole interval without any switch: ask the holder to drop it. */
            if (rc == CX_ETIMEDOUT && g->locked && g->switch_number == seen &&
                !atomic_load_explicit(&g->drop_request, memory_order_relaxed)) {
                atomic_store_explicit(&g->drop_request, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&g->drop_requests, 1, memory_order_relaxed);
            }
        }
        g->waiters--;
    }
    g->locked = 1;
    g->switch_number++;
    atomic_store_explicit(&g->drop_request, 0, memory_order_relaxed);
    pthread_cond_broadcast(&g->switch_cond);
    cx__mutex_unlock(&g->mu);
    if (atomic_fetch_add(&g->in_section, 1) != 0)
        atomic_fetch_add_explicit(&g->overlaps, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g->acquisitions, 1, memory_order_relaxed);
}

static void drop(struct cx_gil *g) {
    atomic_fetch_sub(&g->in_section, 1);
    cx__mutex_lock(&g->mu);
    CX_ASSERT(g->locked);
    g->locked = 0;
    pthread_cond_signal(&g->cond);
    /* Forced switching: a waiter asked for the GIL; do not return (and possibly take it back
     * at once) until some other thread has had it. drop_request is only ever set by a waiter
     * still waiting (taking the GIL clears it), so someone will take it. */
    if (atomic_load_explicit(&g->drop_request, memory_order_relaxed)) {
        uint64_t seen = g->switch_number;
        while (g->switch_number == seen && g->waiters > 0)
            (void)cx__cond_wait(&g->switch_cond, &g->mu, CX_DEADLINE_NONE);
    }
    cx__mutex_unlock(&g->mu);
}

void cx_gil_acquire(struct cx_gil *g) {
    CX_ASSERT(g != NULL);
    CX_ASSERT(tls_gil == NULL); /* not recursive; one GIL per thread */
    take(g);
    tls_gil = g;
    tls_held = 1;
    tls_io_depth = 0;
}

void cx_gil_release(struct cx_gil *g) {
    CX_ASSERT(g != NULL && tls_gil == g && tls_held && tls_io_depth == 0);
    tls_gil = NULL;
    tls_held = 0;
    drop(g);
}

void cx_gil_io_begin(void) {
    if (tls_gil == NULL) return;
    if (tls_io_depth++ == 0 && tls_held) {
        tls_held = 0;
        drop(tls_gil);
    }
}

void cx_gil_io_end(void) {
    if (tls_gil == NULL) return;
    CX_ASSERT(tls_io_depth > 0);
    if (--tls_io_depth == 0 && !tls_held) {
        take(tls_gil);
        tls_held = 1;
    }
}

void cx_gil_checkpoint(void) {
    struct cx_gil *g = tls_gil;
    if (g == NULL || !tls_held) return;
    if (!atomic_load_explicit(&g->drop_request, memory_order_relaxed)) return;
    if (cx__slow_on && cx__slow.gil_never_yields) return; /* bench-only (slowdown.c) */
    atomic_fetch_add_explicit(&g->forced_switches, 1, memory_order_relaxed);
    drop(g);
    take(g);
}

int cx_gil_held(void) { return tls_gil != NULL && tls_held; }

uint64_t cx__thread_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

void cx_cpu_work_ns(uint64_t ns) {
    uint64_t start = cx__thread_cpu_ns();
    uint64_t next_check = start + 50 * CX_NSEC_PER_USEC;
    /* The arithmetic stands for interpreter work; `sink` keeps it from being optimised out. */
    static _Atomic uint64_t sink;
    uint64_t x = (uint64_t)(uintptr_t)&x | 1;
    for (;;) {
        for (int i = 0; i < 4096; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t now = cx__thread_cpu_ns();
        if (now - start >= ns) break;
        if (now >= next_check) {
            cx_gil_checkpoint();
            next_check = now + 50 * CX_NSEC_PER_USEC;
        }
    }
    atomic_store_explicit(&sink, x, memory_order_relaxed);
}

void cx_gil_stats(struct cx_gil *g, struct cx_gil_stats *out) {
    if (out == NULL) return;
    *out = (struct cx_gil_stats){0};
    if (g == NULL) return;
    out->acquisitions = atomic_load(&g->acquisitions);
    out->forced_switches = atomic_load(&g->forced_switches);
    out->drop_requests = atomic_load(&g->drop_requests);
    out->overlaps = atomic_load(&g->overlaps);
}
