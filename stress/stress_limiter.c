/*
 * stress_limiter.c - hundreds of threads on one limiter, mixing try_acquire, acquire,
 * acquire_until, reserve, adjust and (one thread) pause_until.
 *
 * DESIGN. Two phases, each on a fresh limiter, each with --threads threads (default 200)
 * started behind a barrier and running --iters operations chosen by their own seeded
 * generators (seed + thread index), so a failing seed replays the same choices (not the same
 * interleaving).
 *  - "tight": takes of every kind, no adjustments, no pauses. Before releasing the threads,
 *    main empties the bucket at t0, so from then on the admitted count may never exceed
 *    burst + rate * (now - t0), and under contention it runs right at that bound, so a limiter
 *    that hands out extra tokens is caught (not every run: the check must land within
 *    1/rate of the excess grant).
 *  - "mixed": adds refunds (which raise the bound by what they give back), charges and pauses
 *    from thread 0 (which only make it looser), and checks that no operation that started
 *    after a pause_until(P) returned was granted before P.
 * Shared state: the limiter, atomic counters in steps of the phase's unit (admitted, refunded,
 * charged) and, per thread, a log of grants; thread 0 also logs its pauses. A grant is counted
 * after it happens and a refund before it is applied, so the bound can only be loose, never
 * wrong. The balance must never exceed burst. Exits 1 on a broken invariant (printing it), 0 otherwise.
 * Shutdown: every thread finishes its iterations and is joined.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/limiter.h"
#include "s_util.h"

struct phase {
    const char *name;
    double rate, burst;
    double unit;  /* tokens per step: an operation takes 1..4 steps */
    int mixed;    /* refunds, charges and pauses allowed */
};

struct grant {
    uint64_t start, end; /* the operation's start and the moment it returned granted */
};

struct pause_rec {
    uint64_t returned, until;
};

struct worker {
    int index;
    uint64_t seed;
    long iters;
    struct grant *log;
    long nlog;
    struct pause_rec *pauses;
    long npauses;
    long ops; /* operations done */
};

static struct cx_limiter *g_lim;
static const struct phase *g_phase;
static uint64_t g_t0;
static pthread_barrier_t g_go;
/* Counters in steps (exact integers; tokens = steps * unit). */
static atomic_llong g_admitted; /* steps granted */
static atomic_llong g_refunded; /* steps refunded with adjust */
static atomic_llong g_charged;  /* steps charged with adjust (reported) */
static atomic_int g_broken;
static _Atomic long g_progress; /* operations / 64 (the hang monitor's clock) */
static _Atomic(double) g_min_slack; /* the closest any check came to the bound, in tokens */

static void broken(const char *what, double a, double b) {
    if (atomic_exchange(&g_broken, 1) == 0)
        fprintf(stderr, "stress_limiter: INVARIANT BROKEN: %s (%.6f > %.6f)\n", what, a, b);
}

static void granted(struct worker *w, uint64_t start, long steps) {
    long long adm = atomic_fetch_add(&g_admitted, steps) + steps;
    long long ref = atomic_load(&g_refunded);
    uint64_t now = cx_now_ns();
    double u = g_phase->unit;
    double allowed = g_phase->burst + g_phase->rate * (double)(now - g_t0) / 1e9 + (double)ref * u;
    double slack = allowed - (double)adm * u, prev = atomic_load(&g_min_slack);
    while (slack < prev && !atomic_compare_exchange_weak(&g_min_slack, &prev, slack)) {
    }
    if ((double)adm * u > allowed + 1e-6)
        broken("admitted > burst + rate*elapsed + refunds", (double)adm * u, allowed);
    w->log[w->nlog].start = start;
    w->log[w->nlog].end = now;
    w->nlog++;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    uint64_t rng = w->seed;
    pthread_barrier_wait(&g_go);
    for (long i = 0; i < w->iters && !atomic_load(&g_broken); i++) {
        uint64_t r = s_splitmix64(&rng);
        long steps = 1 + (long)((r >> 8) % 4); /* steps */
        double n = (double)steps * g_phase->unit;
        unsigned op = (unsigned)(r % 100);
        uint64_t start = cx_now_ns();
        if (!g_phase->mixed && op >= 92) op = (unsigned)((r >> 40) % 92); /* takes only */
        if (w->index == 0 && op < 3 && g_phase->mixed) {
            uint64_t until = start + 200 * CX_NSEC_PER_USEC + (r >> 20) % (800 * CX_NSEC_PER_USEC);
            cx_limiter_pause_until(g_lim, until);
            w->pauses[w->npauses].returned = cx_now_ns();
            w->pauses[w->npauses].until = until;
            w->npauses++;
        } else if (op < 40) {
            if (cx_limiter_try_acquire(g_lim, n) == 0) granted(w, start, steps);
        } else if (op < 65) {
            if (cx_limiter_acquire(g_lim, n) != 0) broken("acquire failed", 1, 0);
            granted(w, start, steps);
        } else if (op < 85) {
            uint64_t dl = start + (r >> 24) % (2 * CX_NSEC_PER_MSEC);
            int rc = cx_limiter_acquire_until(g_lim, n, dl);
            if (rc == 0)
                granted(w, start, steps);
            else if (rc != CX_ETIMEDOUT)
                broken("acquire_until: unexpected code", rc, 0);
        } else if (op < 92) {
            uint64_t wait;
            if (cx_limiter_reserve(g_lim, n, &wait) != 0) broken("reserve failed", 1, 0);
            /* Due at (the call's clock reading) + wait, which is at most now + wait. */
            cx_sleep_until(cx_deadline_after_ns(wait));
            granted(w, start, steps);
        } else if (op < 96) {
            atomic_fetch_add(&g_refunded, steps); /* count before applying */
            cx_limiter_adjust(g_lim, -n);
        } else {
            cx_limiter_adjust(g_lim, n);
            atomic_fetch_add(&g_charged, steps);
        }
        if (++w->ops % 64 == 0) atomic_fetch_add(&g_progress, 1);
        double tok = cx_limiter_tokens(g_lim);
        if (tok > g_phase->burst + 1e-9) broken("balance above burst", tok, g_phase->burst);
    }
    return NULL;
}

static long long g_total_ops; /* over both phases, for the closing line */

static int run_phase(const struct phase *ph, uint64_t seed, long iters, int threads) {
    g_phase = ph;
    atomic_store(&g_admitted, 0);
    atomic_store(&g_refunded, 0);
    atomic_store(&g_charged, 0);
    atomic_store(&g_min_slack, 1e300);
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    if (ws == NULL || th == NULL) return -1;
    pthread_barrier_init(&g_go, NULL, (unsigned)threads + 1);
    struct cx_errinfo ei;
    if (cx_limiter_new(ph->rate, ph->burst, &g_lim, &ei) < 0) {
        fprintf(stderr, "stress_limiter: %s\n", ei.msg);
        return -1;
    }
    for (int i = 0; i < threads; i++) {
        ws[i].index = i;
        ws[i].seed = seed + (uint64_t)i * 0x100000001b3ULL;
        ws[i].iters = iters;
        ws[i].log = calloc((size_t)iters, sizeof *ws[i].log);
        ws[i].pauses = i == 0 ? calloc((size_t)iters, sizeof *ws[i].pauses) : NULL;
        if (ws[i].log == NULL || (i == 0 && ws[i].pauses == NULL)) return -1;
        if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "stress_limiter: cannot start thread %d\n", i);
            return -1;
        }
    }
    /* Empty the bucket: from t0 on, admissions follow the refill alone. */
    g_t0 = cx_now_ns();
    if (cx_limiter_try_acquire(g_lim, ph->burst) != 0) broken("first take of a full bucket", 1, 0);
    atomic_store(&g_admitted, llround(ph->burst / ph->unit));
    pthread_barrier_wait(&g_go);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    uint64_t t_end = cx_now_ns();

    /* Invariant 2: no grant before the end of a pause that was in force when it started. */
    long checked = 0;
    for (long p = 0; p < ws[0].npauses && !atomic_load(&g_broken); p++) {
        const struct pause_rec *pr = &ws[0].pauses[p];
        for (int i = 0; i < threads; i++) {
            for (long k = 0; k < ws[i].nlog; k++) {
                const struct grant *g = &ws[i].log[k];
                if (g->start >= pr->returned && g->start < pr->until) {
                    checked++;
                    if (g->end < pr->until) {
                        broken("granted inside a pause (ns before its end)",
                               (double)(pr->until - g->end), 0);
                        break;
                    }
                }
            }
        }
    }
    double admitted = (double)atomic_load(&g_admitted) * ph->unit;
    double refunded = (double)atomic_load(&g_refunded) * ph->unit;
    double charged = (double)atomic_load(&g_charged) * ph->unit;
    double elapsed = (double)(t_end - g_t0) / 1e9;
    double allowed = ph->burst + ph->rate * elapsed + refunded;
    if (admitted > allowed + 1e-6) broken("final admitted > allowed", admitted, allowed);
    printf("stress_limiter: %s: %.1f tokens granted in %.3f s (allowed %.1f: burst %.0f + rate %.0f/s "
           "+ refunds %.1f; charged %.1f), closest check %.3f tokens under, %ld pauses, %ld grants checked against them: %s\n",
           ph->name, admitted, elapsed, allowed, ph->burst, ph->rate, refunded, charged, atomic_load(&g_min_slack), ws[0].npauses, checked,
           atomic_load(&g_broken) ? "FAILED" : "ok");
    for (int i = 0; i < threads; i++) {
        g_total_ops += ws[i].ops;
        free(ws[i].log);
        free(ws[i].pauses);
    }
    free(ws);
    free(th);
    cx_limiter_free(g_lim);
    g_lim = NULL;
    pthread_barrier_destroy(&g_go);
    return 0;
}

static void describe(char *buf, size_t n) {
    snprintf(buf, n, "about %ld operations done (in steps of 64 per thread)", 64 * atomic_load(&g_progress));
}

int main(int argc, char **argv) {
    struct s_args a = {cx_now_ns(), 2000, 200};
    s_args_parse("limiter", argc, argv, &a, 4096);
    uint64_t seed = a.seed;
    long iters = a.iters;
    int threads = a.threads;

    /* tight: at most ~0.2 tokens refill between a grant and its check, so one extra token
     * shows; mixed: a high rate and small burst so pauses and charges bite. */
    static const struct phase phases[] = {{"tight", 20000, 200, 0.125, 0},
                                          {"mixed", 200000, 100, 0.5, 1}};
    s_watch_start("limiter", &g_progress, s_scaled_ms(60000), describe);
    for (size_t i = 0; i < 2 && !atomic_load(&g_broken); i++)
        if (run_phase(&phases[i], seed + i, iters, threads) < 0) return 2;
    s_watch_stop();
    /* threads: each phase starts its own, plus the monitor */
    s_report("limiter", 2L * threads + 1, g_total_ops, !atomic_load(&g_broken));
    return atomic_load(&g_broken) ? 1 : 0;
}
