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
};
/* A snapshot (counters read one by one). Threads: any thread. */
void cx__pipeline_counts(struct cx_pipeline *p, struct cx__pipeline_counts *out);

/* Benchmark-only CPU work the pipeline burns (cx_cpu_work_ns, yielding the emulated GIL like
 * CPython's eval loop) to stand for Python's costs in the seed's phases. All 0 by default. */
struct cx__bench_work {
    uint64_t cpu_work_ns;    /* per answer, in the query's parse step (on the worker) */
    uint64_t parse_work_ns;  /* per run, before the fan-out (the seed's "Parse Input") */
    uint64_t merge_work_ns;  /* per run, while merging (the seed's "Merge Plans") */
};
/* Sets (w != NULL) or clears (NULL) p's benchmark work for the runs that start afterwards.
 * Threads: any thread, not while a run is in progress on p. */
void cx__pipeline_set_bench_work(struct cx_pipeline *p, const struct cx__bench_work *w);

/* Fleet mode: the pipeline's fleet rate limit (NULL without CORTEX_REDIS_URL), borrowed, for
 * bench_fleet's round-trip figures (cx__ratelimit_rtt). Threads: any thread. */
struct cx__ratelimit;
struct cx__ratelimit *cx__pipeline_fleet_limit(struct cx_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* CX_TESTING_H */
