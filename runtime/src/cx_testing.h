/*
 * cx_testing.h - the one internal testing header: hooks and counters that tests, stress
 * programs and benchmarks use to look inside the runtime or to give it benchmark-only work.
 * Nothing here is public API (the installed headers under runtime/include/cx/ never mention
 * it) and the `cx` command does not use it. Include it instead of copying prototypes.
 */
#ifndef CX_TESTING_H
#define CX_TESTING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cx_router;
struct cx_limiter;
struct cx_pipeline;

/* ---- router (router.c) ---- */

/* Calls parked right now behind an identical in-flight call (single-flight followers, blocking
 * and submitted). Threads: any thread. */
size_t cx__router_sf_waiting(struct cx_router *r);
/* The router's own tokens-per-minute bucket (NULL when off). Borrowed. Threads: any thread. */
struct cx_limiter *cx__router_token_limiter(struct cx_router *r);
/* Times an attempt, tokens in hand, was held back right before sending by the router-wide
 * Retry-After pause. Threads: any thread. */
uint64_t cx__router_paused_sends(struct cx_router *r);

/* ---- pipeline (pipeline*.c) ---- */

/* Per-pipeline counters since cx_pipeline_new. */
struct cx__pipeline_counts {
    uint64_t queries;        /* per-query state machines started (skipped probes excluded) */
    uint64_t parses;         /* answers parsed (cx_parse_response) */
    uint64_t validations;    /* answers validated (cx_validate_commands) */
    uint64_t cpu_no_gil;     /* parse + validate steps run without holding a GIL (gil mode: 0) */
    uint64_t suspends;       /* cx_task_suspend calls by query tasks (hybrid design) */
    uint64_t resumes;        /* continuations of query tasks that ran */
    uint64_t submits;        /* queries handed to the router (cache misses) */
    uint64_t cache_puts;     /* asynchronous cache writes queued */
    uint64_t completions_in_submit; /* router completions that ran inside the submit call (0) */
    uint64_t cpu_step_ns;    /* wall time of the answered queries' CPU steps (parse, validate,
                                put, fill, the bench work included), summed over queries */
};
/* A snapshot (counters read one by one). Threads: any thread. */
void cx__pipeline_counts(struct cx_pipeline *p, struct cx__pipeline_counts *out);

/* Benchmark-only CPU work the pipeline burns (cx_cpu_work_ns, yielding the emulated GIL like
 * CPython's eval loop) to stand for Python's costs in the seed's phases. All 0 by default. */
struct cx__bench_work {
    uint64_t cpu_work_ns;    /* per answer, in the query's parse step (on the worker) */
    uint64_t parse_work_ns;  /* per run, before the fan-out (the seed's "Parse Input") */
    uint64_t merge_work_ns;  /* per run, while merging (the seed's "Merge Plans") */
    int stream;              /* 1: the run's queries ask for a streamed answer (SSE) */
};
/* Sets (w != NULL) or clears (NULL) p's benchmark work for the runs that start afterwards.
 * Threads: any thread, not while a run is in progress on p. */
void cx__pipeline_set_bench_work(struct cx_pipeline *p, const struct cx__bench_work *w);

/* ---- HTTP (http_xfer.c) ---- */

/* Called once per performed transfer (both I/O designs, every attempt) with the time from its
 * start to the first body byte (a stream's first event: the time to first token; without
 * streaming the whole answer) and to its end, seconds (-1: no body came). Runs on the
 * thread that moved the bytes (a worker or the I/O thread), several at once: fn must be
 * thread-safe and quick. */
typedef void (*cx__http_timing_fn)(double first_s, double total_s, void *ud);
/* Sets (fn != NULL) or clears the process-wide timing hook. Threads: any thread, while no
 * transfer is in flight. */
void cx__http_set_timing_hook(cx__http_timing_fn fn, void *ud);

/* ---- benchmark-only slowdowns (slowdown.c) ---- */

/* Known regressions that scripts/gate --selftest switches on, each where a real one would sit,
 * to prove the gate flags it on the figure it moves. All 0 (off) by default; off, each hot path
 * pays one load and a predicted branch on cx__slow_on (scripts/icount checks the counts). */
#define CX__HAVE_SLOWDOWNS 1 /* bench_gate_wall builds without them against older trees */
struct cx__slowdowns {
    unsigned cache_lock_us;    /* every cx_cache_get holds one global mutex this long first */
    unsigned limiter_extra_us; /* every limiter acquire sleeps this long first */
    unsigned validate_times;   /* cx_validate_commands validates this many times (0, 1: once) */
    int no_conn_reuse;         /* every HTTP transfer opens a fresh connection and closes it */
    int gil_never_yields;      /* the emulated GIL's holder ignores drop requests */
    int executor_one_worker;   /* executors start one worker whatever `threads` says */
};
/* Sets (s != NULL) or clears (NULL) the slowdowns. Threads: only while no other thread uses
 * the runtime (at start-up, before the objects it slows are made). */
void cx__set_slowdowns(const struct cx__slowdowns *s);
extern int cx__slow_on;                /* any slowdown set; read by the hot paths */
extern struct cx__slowdowns cx__slow;  /* the settings; read only when cx__slow_on */
void cx__slow_cache_lookup(void);      /* cache.c calls it when cx__slow_on */
void cx__slow_limiter_acquire(void);   /* limiter.c calls it when cx__slow_on */

/* Fleet mode: the pipeline's fleet rate limit (NULL without CORTEX_REDIS_URL), borrowed, for
 * bench_fleet's round-trip figures (cx__ratelimit_rtt). Threads: any thread. */
struct cx__ratelimit;
struct cx__ratelimit *cx__pipeline_fleet_limit(struct cx_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* CX_TESTING_H */
