/*
 * pipeline_internal.h - what the pipeline's files share and nothing else includes:
 *   pipeline.c        the public API: options, construction, install / diagnose / hwcheck, the
 *                     apt step and the history row;
 *   pipeline_query.c  one query as a state machine (enum qstate, one step function);
 *   pipeline_run.c    a run: the executor per run, the I/O design and pool size, the fan-out,
 *                     waiting for the run's cache writes;
 *   pipeline_fleet.c  fleet mode: the Redis connection, the fleet rate limit, the shared cache
 *                     tier, fleet-wide single flight and its poller thread.
 */
#ifndef CX_PIPELINE_INTERNAL_H
#define CX_PIPELINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cx/executor.h"
#include "cx/pipeline.h"
#include "cx/router.h"
#include "cx_internal.h"
#include "cx_testing.h"
#include "fleet_cache.h"

struct cJSON;

struct cx_pipeline {
    struct cx_pool *pool;     /* NULL without db_path */
    struct cx_cache *cache;   /* NULL without db_path or with use_cache 0 */
    struct cx_limiter *limiter;
    struct cx_ioloop *loop;
    struct cx_router *router;
    enum cx_provider force;
    enum cx_exec_mode mode;
    uint64_t switch_ns;
    int threads;              /* 0: chosen per run */
    int max_threads;          /* cap for chosen sizes */
    enum cx_io_design io;
    int history;              /* 1 when the history table is ready */
    struct cx__bench_work bench; /* cx__pipeline_set_bench_work; read by runs only */
    struct cx__mutex mu;
    double cpu_share;         /* guarded by mu: measured on the last run, < 0 before any */
    /* fleet mode (pipeline_fleet.c): all NULL / 0 without CORTEX_REDIS_URL */
    struct cx__fleet *fleet;
    struct cx__ratelimit *frl;       /* the router reserves through it */
    struct cx__shared_cache *shared; /* NULL with use_cache 0 */
    struct cx__mutex fleet_mu;
    pthread_cond_t fleet_cond;
    int fleet_mu_ok, fleet_cond_ok, poller_started;
    pthread_t poller;
    struct query *waiting;           /* guarded by fleet_mu: parked on another process's leader */
    int poller_stop;                 /* guarded by fleet_mu */
    atomic_uint_fast64_t n_fleet_hits, n_fleet_puts, n_fleet_waits, n_fleet_alone;
    /* cx__pipeline_counts */
    atomic_uint_fast64_t n_queries, n_parses, n_validations, n_cpu_no_gil, n_suspends, n_resumes,
        n_submits, n_puts, n_in_submit, n_cpu_step_ns;
};

enum qkind { Q_INSTALL, Q_DIAGNOSE, Q_HW };

/* Where a query is (pipeline_query.c has the walk-through). */
enum qstate {
    QS_LOOKUP,    /* look the prompt up in the cache (a similar install hit is checked here) */
    QS_FLEET,     /* a local miss: the fleet's shared tier and single flight (fleet mode only) */
    QS_SUBMIT,    /* hand it to the router: block (thread-local) or suspend (hybrid) */
    QS_ANSWERED,  /* the router's one reply is in: take the raw answer, or fail */
    QS_PARSE,     /* parse the answer, once */
    QS_VALIDATE,  /* validate its commands */
    QS_PUT,       /* queue the cache write (asynchronous: nothing waits for the commit here) */
    QS_FILL,      /* copy the answer's fields into the report item */
    QS_DONE
};

struct run;

struct query {
    struct run *run;
    struct cx_item *item;
    char *prompt;                 /* owned */
    struct cx_llm_query q;
    enum qstate st;
    char *content;                /* the raw answer (owned): the cache's or the router's */
    enum cx_provider prov;        /* who answered (a cache hit: whose key it was found under) */
    struct cx_router_reply reply; /* the router's outcome (hybrid: written before the resume) */
    struct cJSON *obj;            /* the parsed answer: parsed once, owned until the run ends */
    struct cx_task_handle *h;
    uint64_t t_cpu;               /* when the CPU steps began */
    uint64_t cpu_ns;              /* wall time of the CPU steps (parse, validate, fill) */
    double limiter_wait_s;        /* the router's answer: time waited for the request limiter */
    uint64_t t_submit;            /* when it was handed to the router (its wait starts then) */
    int skip;                     /* 1: no query (a failed hardware probe); item->status is set */
    /* fleet mode */
    struct cx__flight flight;     /* this query's flight (digest, lock token) */
    int fleet_leader;             /* 1: holds the fleet lock until its answer is put */
    int fleet_hit;                /* 1: answered from the shared tier */
    uint64_t backoff_ns, next_poll; /* parked: the poller's schedule for it */
    struct query *fleet_next;     /* guarded by fleet_mu while parked */
};

struct run {
    struct cx_pipeline *p;
    enum qkind kind;
    const struct cx_run_options *ro;
    struct cx__bench_work bench;  /* copied from the pipeline when the run starts */
    struct query *qs;
    size_t n;
    enum cx_io_design io;         /* resolved */
    int threads;
    size_t cache_hits, failed, rejected;
    /* asynchronous cache writes still to commit: the run waits for them before it returns, so
     * the next run finds them */
    struct cx__mutex put_mu;
    pthread_cond_t put_cond;
    int puts_pending;             /* guarded by put_mu */
    int put_sync_ok;              /* put_mu and put_cond were initialised */
};

/* pipeline_query.c */
/* The first step of a query's task (an executor task function). */
int cx__query_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);
/* A query that is not sent (its input failed): completes with the item's status. */
int cx__query_skip(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);
/* Records a failure in the query's item; returns rc. */
int cx__query_fail(struct query *qu, int rc, const char *msg);
void cx__item_clear(struct cx_item *it);
/* Runs the query from its current state until it is done or suspended (CX_EAGAIN). */
int cx__query_step(struct cx_task_ctx *ctx, struct query *qu);

/* pipeline_fleet.c */
struct cx__fleet;
struct cx__ratelimit;
int cx__pfleet_open(struct cx_pipeline *p, const struct cx_config *cfg, double rps, double burst,
                    int use_cache, struct cx_errinfo *ei);
void cx__pfleet_free(struct cx_pipeline *p);
int cx__pfleet_lookup(struct cx_task_ctx *ctx, struct query *qu);
void cx__pfleet_put(struct query *qu, const struct cx_cache_key *k);
void cx__pfleet_abandon(struct query *qu);
void *cx__pfleet_poller(void *arg);

/* pipeline_run.c */
int cx__run_setup(struct run *run, struct cx_pipeline *p, enum qkind kind,
                  const struct cx_run_options *ro, size_t n, struct cx_item *items);
void cx__run_clear(struct run *run);
/* Runs run->n queries (prompts and items set up by the caller), fills their items, and waits
 * for the run's cache writes to commit (no GIL held). */
int cx__run_fanout(struct run *run, struct cx_errinfo *ei);

#endif /* CX_PIPELINE_INTERNAL_H */
