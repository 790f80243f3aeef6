/*
 * router_internal.h - what the router's files share and nothing else includes: the router
 * object, one call's state machine, the single-flight table and the functions each file offers
 * the others:
 *   router_providers.c  routing, configuration, endpoint naming, statistics, backoff jitter;
 *   router_sf.c         single flight (identical queries in flight share one answer);
 *   router_call.c       the call state machine (enum call_state, call_step) and its driver;
 *   router.c            the public entry points (submit, complete) and the test hooks.
 */
#ifndef CX_ROUTER_INTERNAL_H
#define CX_ROUTER_INTERNAL_H

#include "cx/router.h"

#include <pthread.h>
#include <stdatomic.h>

#include "cx/executor.h"
#include "cx/http.h"
#include "cx_internal.h"
#include "fleet_ratelimit.h"

struct prov {
    int configured;
    enum cx_api api;
    char *key, *base_url, *model;
    char *cache_name; /* the cache key's provider field: "name", or "name@endpoint" */
    char *label;      /* what errors call it: the provider's name, or with the router-wide
                         base_url override "<URL> (OpenAI API)" / "(Anthropic API)", since the
                         user chose a server and a wire format, not one of our names */
    double pin, pout;
    atomic_uint_fast64_t requests, successes, failures, in_tok, out_tok, nano_usd;
};

struct call;

/* One query in flight, keyed by task type + system + prompt. */
struct sf_entry {
    uint64_t hash;
    char *key;
    size_t key_len;
    struct call *followers;     /* guarded by sf_mu: parked identical calls */
    struct sf_entry *next;      /* guarded by sf_mu */
};

#define SF_BUCKETS 256

struct cx_router {
    struct prov p[CX_PROVIDER_COUNT];
    int fallback;
    struct cx_limiter *limiter;
    struct cx_limiter *tok; /* owned */
    /* What every call reserves through (fleet_ratelimit.h): own_rl, the local implementation
     * over limiter and tok, unless cx__router_use_ratelimit gave a fleet one (borrowed). Set
     * before the first call, read-only afterwards. */
    struct cx__ratelimit *rl;
    struct cx__ratelimit *own_rl;
    int exp_out;
    int max_attempts;
    uint64_t base_ns, cap_ns;
    atomic_uint_fast64_t rng;
    long connect_ms;
    uint64_t attempt_ns;
    int single_flight;
    int hybrid;
    struct cx_ioloop *loop;
    struct cx_http_client *client;
    struct cx__mutex sf_mu;
    struct sf_entry *sf[SF_BUCKETS]; /* guarded by sf_mu */
    atomic_uint_fast64_t paused_until; /* the router-wide Retry-After pause (cx_now_ns time) */
    struct cx__mutex share_mu;
    double ewma_cpu_ns, ewma_wall_ns; /* guarded by share_mu; < 0 until the first sample */
    atomic_uint_fast64_t queries, shared, retries, fallbacks, pauses, paused_sends;
};

/* ---- one call: the state machine of router_call.c ---- */

/* Where a call is. call_step moves it forward until it must wait for something. */
enum call_state {
    CS_START,     /* accepted: join single flight (lead or follow) */
    CS_ACQUIRE,   /* reserve a request token and the token estimate */
    CS_SEND,      /* tokens held: wait out the shared Retry-After pause, then make the transfer */
    CS_TRANSFER,  /* the transfer is moving (I/O loop or the calling thread's curl handle) */
    CS_ANSWERED,  /* the transfer ended: decode, account, then done / retry / fall back */
    CS_BACKOFF,   /* waiting before the next attempt */
    CS_FOLLOW,    /* parked behind an identical in-flight call (its leader completes it) */
    CS_DONE       /* rc, resp / ei final: deliver */
};

/* What call_step asks its driver to do. */
enum call_act {
    ACT_WAIT,     /* wait until c->wake_at, then step again */
    ACT_XFER,     /* move c->x, set CS_ANSWERED, then step again */
    ACT_PARKED,   /* nothing: someone else (the single-flight leader) completes the call */
    ACT_DONE,     /* deliver the outcome */
    ACT_STEP      /* inside call_step only: go on stepping */
};

struct call {
    struct cx_router *r;
    struct cx_llm_query q;
    char *own[3];        /* copies of system, prompt, extra_header (submit) */
    int cand[CX_PROVIDER_COUNT];
    int ncand, ci, attempt, nattempts;
    long last_status;
    struct cx__buf log;
    uint64_t start_ns;
    enum call_state st;
    uint64_t wake_at;    /* ACT_WAIT: when to step again */
    int inline_io;       /* 1: the calling thread waits and transfers itself (the thread-local
                            design's private driver); 0: the I/O loop does (timers, multi) */
    double tok_charged;
    int req_taken;
    uint64_t limit_wait_ns;     /* waited for the request limiter, all attempts */
    struct cx_http_xfer *x;
    struct sf_entry *sf;          /* when leader */
    struct sf_entry *follow;      /* when follower (valid while !detached) */
    struct call *next_follower;   /* guarded by sf_mu */
    int detached;                 /* guarded by sf_mu: the leader took it off its list */
    /* the outcome */
    int rc;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    /* delivery: a task to resume (submit) or a thread to wake (complete) */
    struct cx_router_reply *reply;
    struct cx_task_handle *h;
    cx_task_fn next;
    void *next_arg;
    int blocking;
    struct cx__mutex wmu;
    pthread_cond_t wcond;
    int wdone;                    /* guarded by wmu */
};

/* router_providers.c */
void cx__router_note_share(struct cx_router *r, uint64_t cpu_ns, uint64_t wall_ns);
uint64_t cx__router_backoff_ns(struct cx_router *r, int i);
/* Fills cand[] (the preferred provider first, then fallbacks on other endpoints); returns the
 * count, or CX_ENOPROVIDER with ei filled. */
int cx__router_candidates(const struct cx_router *r, const struct cx_llm_query *q,
                          int cand[CX_PROVIDER_COUNT], struct cx_errinfo *ei);
int cx__router_query_check(const struct cx_llm_query *q, struct cx_errinfo *ei);

/* router_sf.c: returns 1 when c leads (c->sf set), 0 when it was parked as a follower
 * (c->st == CS_FOLLOW; its leader completes it), or CX_ENOMEM. */
int cx__sf_join(struct call *c);
/* The leader ends: its followers get copies of its outcome and are delivered. */
void cx__sf_publish(struct call *c);
/* A blocking follower whose deadline passed: 1 when it left the entry (it fails on its own), 0
 * when its leader is already delivering to it. */
int cx__sf_leave(struct call *c);
int cx__resp_copy(struct cx_llm_response *dst, const struct cx_llm_response *src);

/* router_call.c */
void cx__call_init(struct call *c, struct cx_router *r, const struct cx_llm_query *q);
void cx__call_release(struct call *c);
/* Fails the call with code: c->st = CS_DONE, c->rc, c->ei (with the attempt log). */
int cx__call_fail(struct call *c, int code, const char *why);
/* Runs the state machine until it waits on the loop, parks, or ends (then delivers). */
void cx__call_drive(struct call *c);
/* Delivers the outcome to the call's target (wakes the blocking caller or resumes the task). */
void cx__call_deliver(struct call *c);

#endif /* CX_ROUTER_INTERNAL_H */
