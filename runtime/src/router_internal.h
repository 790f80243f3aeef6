/*
 * router_internal.h - what the router's files share and nothing else includes: the router
 * object, one call's state, the single-flight table and the functions each file offers the
 * others (router_providers.c, router_sf.c, router_call.c, router.c).
 */
#ifndef CX_ROUTER_INTERNAL_H
#define CX_ROUTER_INTERNAL_H

#include "cx/router.h"

#include <pthread.h>
#include <stdatomic.h>

#include "cx/http.h"
#include "cx_internal.h"

/* ---- the router ---- */

struct prov {
    int configured;
    enum cx_api api;
    char *key, *base_url, *model;
    char *cache_name; /* the cache key's provider field: "name", or "name@endpoint" */
    double pin, pout;
    atomic_uint_fast64_t requests, successes, failures, in_tok, out_tok, nano_usd;
};

struct sf_waiter {
    cx_router_done_fn done;
    void *ud;
    uint64_t start_ns;
    struct sf_waiter *next;
};

struct sf_entry {
    uint64_t hash;
    char *key;
    size_t key_len;
    int done;                   /* guarded by sf_mu */
    int refs;                   /* guarded by sf_mu: the leader + blocking followers */
    struct sf_waiter *waiters;  /* guarded by sf_mu: async followers */
    pthread_cond_t cond;
    /* the leader's outcome, written before done is set (under sf_mu), read-only after */
    int rc;
    struct cx_errinfo ei;
    struct cx_llm_response resp;
    struct sf_entry *next;      /* guarded by sf_mu */
};

#define SF_BUCKETS 256

struct cx_router {
    struct prov p[CX_PROVIDER_COUNT];
    int fallback;
    struct cx_cache *cache;
    struct cx_limiter *limiter;
    struct cx_limiter *tok; /* owned */
    int exp_out;
    int max_attempts;
    uint64_t base_ns, cap_ns;
    atomic_uint_fast64_t rng;
    long connect_ms;
    uint64_t attempt_ns;
    int single_flight;
    int hybrid;
    struct cx_ioloop *loop;
    cx_router_validate_fn validate;
    void *validate_ud;
    cx_router_similar_fn accept_similar;
    void *accept_similar_ud;
    cx_router_post_fn post;
    void *post_ctx;
    struct cx_http_client *client;
    struct cx__mutex sf_mu;
    struct sf_entry *sf[SF_BUCKETS]; /* guarded by sf_mu */
    atomic_uint_fast64_t paused_until;
    struct cx__mutex share_mu;
    double ewma_cpu_ns, ewma_wall_ns; /* guarded by share_mu; < 0 until the first sample */
    atomic_uint_fast64_t queries, cache_hits, shared, retries, fallbacks, pauses;
};

/* ---- one call ---- */

enum { ACT_OK, ACT_FAIL, ACT_RETRY };

struct call {
    struct cx_router *r;
    struct cx_llm_query q;
    char *own[3]; /* async: copies of system, prompt, extra_header */
    int cand[CX_PROVIDER_COUNT];
    int ncand, ci, attempt, nattempts;
    int last_rc;
    long last_status;
    struct cx__buf log;
    uint64_t start_ns;
    double tok_charged;
    int req_taken;
    struct cx_http_xfer *x;
    struct sf_entry *sf; /* when leader */
    cx_router_done_fn done;
    void *ud;
    /* blocking wait for a hybrid transfer */
    struct cx__mutex wmu;
    pthread_cond_t wcond;
    int wdone; /* guarded by wmu */
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    int rc;
};

/* router_providers.c */
void cx__router_note_share(struct cx_router *r, uint64_t cpu_ns, uint64_t wall_ns);
uint64_t cx__router_backoff_ns(struct cx_router *r, int i);

/* router_sf.c */
void cx__sf_entry_free(struct sf_entry *e);
int cx__sf_join(struct call *c, struct sf_waiter *w, struct sf_entry **entry);
void cx__sf_publish(struct call *c, int rc);
int cx__sf_wait(struct call *c, struct sf_entry *e, struct cx_llm_response *out, struct cx_errinfo *ei);

/* router_call.c */
int cx__call_check(const struct cx_llm_query *q, struct cx_errinfo *ei);
int cx__call_candidates(struct call *c, struct cx_errinfo *ei);
void cx__call_init(struct call *c, struct cx_router *r, const struct cx_llm_query *q);
void cx__call_release(struct call *c);
int cx__call_cache_get(struct call *c);
int cx__call_run_blocking(struct call *c);
void cx__call_async_acquire(struct call *c);

#endif /* CX_ROUTER_INTERNAL_H */
