/*
 * router.c - the router's public entry points: cx_router_submit (a task hands a query over and
 * is resumed with the answer) and cx_router_complete (submit plus wait on the same call state
 * machine), and the test hooks of cx_testing.h. See cx/router.h for the contract and
 * router_call.c for the state machine.
 *
 * What it does not do: routing and configuration (router_providers.c), single flight
 * (router_sf.c), any step of a call (router_call.c), caching or validating answers (the
 * pipeline does both, around the router).
 *
 * DESIGN (threads and locks): the router starts no thread. Its shared state is the single-flight
 * table (sf_mu), the jitter PRNG (an atomic counter fed through splitmix64, so a seed gives the
 * same set of delays whatever the interleaving), the router-wide Retry-After pause (an atomic
 * deadline) and the statistics (atomics). A call's steps run on one thread at a time: the
 * submitting thread until the first wait or transfer, then the I/O thread (loop-driven calls),
 * or the calling thread throughout (inline calls). No lock is held while calling curl, the
 * limiters, the executor or the I/O loop. A call ends in exactly one delivery: a blocking caller
 * is woken through the call's own condition variable; a submitted call's reply is written and its
 * task resumed (cx_task_resume), which the executor runs on a worker only after the submitting
 * task returned, so a completion never runs inside the submit call (single-flight followers and
 * immediate failures included).
 */
#include <string.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/ioloop.h"
#include "cx_testing.h"
#include "router_internal.h"

void cx_router_reply_init(struct cx_router_reply *rp) {
    memset(rp, 0, sizeof *rp);
    cx_llm_response_init(&rp->resp);
}

/* A new call for q, or CX_E* with ei filled. */
static int call_new(struct cx_router *r, const struct cx_llm_query *q, int copy, struct call **out,
                    struct cx_errinfo *ei) {
    int rc = cx__router_query_check(q, ei);
    if (rc < 0) return rc;
    struct call *c = cx__malloc(sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "out of memory");
    cx__call_init(c, r, q);
    if (copy) { /* the caller's strings need not outlive the submit call */
        const char *src[3] = {q->system, q->prompt, q->extra_header};
        for (int i = 0; i < 3; i++) {
            if (src[i] != NULL && (c->own[i] = cx__strdup(src[i])) == NULL) {
                cx__call_release(c);
                cx__free(c);
                return cx__err(ei, CX_ENOMEM, "out of memory");
            }
        }
        c->q.system = c->own[0];
        c->q.prompt = c->own[1];
        c->q.extra_header = c->own[2];
    }
    rc = cx__router_candidates(r, &c->q, c->cand, ei);
    if (rc < 0) {
        cx__call_release(c);
        cx__free(c);
        return rc;
    }
    c->ncand = rc;
    *out = c;
    return 0;
}

int cx_router_submit(struct cx_router *r, const struct cx_llm_query *q, struct cx_router_reply *reply,
                     struct cx_task_handle *h, cx_task_fn next, void *arg, struct cx_errinfo *ei) {
    if (r == NULL || reply == NULL || h == NULL || next == NULL)
        return cx__err(ei, CX_EINVAL, "cx_router_submit: router/reply/handle/next is NULL");
    if (r->loop == NULL) return cx__err(ei, CX_EINVAL, "cx_router_submit: the router has no I/O loop");
    struct call *c = NULL;
    int rc = call_new(r, q, 1, &c, ei);
    if (rc < 0) return rc;
    cx_router_reply_init(reply);
    c->reply = reply;
    c->h = h;
    c->next = next;
    c->next_arg = arg;
    c->inline_io = 0;
    atomic_fetch_add(&r->queries, 1);
    cx__call_drive(c); /* until its first wait or transfer; c may be gone when this returns */
    return 0;
}

int cx_router_complete(struct cx_router *r, const struct cx_llm_query *q, struct cx_llm_response *out,
                       struct cx_errinfo *ei) {
    if (r == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete: router/out is NULL");
    cx_llm_response_init(out);
    if (r->hybrid && cx_ioloop_on_thread(r->loop))
        return cx__err(ei, CX_EINVAL, "cx_router_complete: called on the I/O thread (use cx_router_submit)");
    struct call *c = NULL;
    int rc = call_new(r, q, 0, &c, ei);
    if (rc < 0) return rc;
    if ((rc = cx__mutex_init(&c->wmu)) < 0) goto oom;
    if ((rc = cx__cond_init(&c->wcond)) < 0) {
        cx__mutex_destroy(&c->wmu);
        goto oom;
    }
    c->blocking = 1;
    c->inline_io = !r->hybrid; /* thread-local: this thread is the call's private driver */
    atomic_fetch_add(&r->queries, 1);
    cx__call_drive(c);
    /* Wait for the delivery: at once for an inline call (it is done or parked by now), from the
     * I/O thread for a loop-driven one, from the leader for a follower. A follower gives up at
     * its own deadline; a leader's machine honours the deadline itself. */
    int follower = c->follow != NULL; /* written by this thread in cx__sf_join */
    uint64_t dl = follower ? c->q.deadline : CX_DEADLINE_NONE;
    cx_gil_io_begin();
    cx__mutex_lock(&c->wmu);
    while (!c->wdone) {
        if (cx__cond_wait(&c->wcond, &c->wmu, dl) == CX_ETIMEDOUT && !c->wdone) {
            cx__mutex_unlock(&c->wmu);
            if (cx__sf_leave(c)) {
                c->rc = cx__err(&c->ei, CX_ETIMEDOUT, "deadline passed waiting for an identical query in flight");
                cx__mutex_lock(&c->wmu);
                break;
            }
            dl = CX_DEADLINE_NONE; /* the leader is delivering right now */
            cx__mutex_lock(&c->wmu);
        }
    }
    cx__mutex_unlock(&c->wmu);
    cx_gil_io_end();
    rc = c->rc;
    if (rc == 0) {
        *out = c->resp;
        cx_llm_response_init(&c->resp);
    } else if (ei) {
        *ei = c->ei;
    }
    cx__mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->wcond);
    cx__call_release(c);
    cx__free(c);
    return rc;
oom:
    cx__call_release(c);
    cx__free(c);
    return cx__err(ei, CX_ENOMEM, "cx_router_complete: out of memory");
}

/* ---- test hooks (cx_testing.h) ---- */

size_t cx__router_sf_waiting(struct cx_router *r) {
    size_t n = 0;
    cx__mutex_lock(&r->sf_mu);
    for (int b = 0; b < SF_BUCKETS; b++)
        for (struct sf_entry *e = r->sf[b]; e; e = e->next)
            for (struct call *f = e->followers; f; f = f->next_follower) n++;
    cx__mutex_unlock(&r->sf_mu);
    return n;
}

struct cx_limiter *cx__router_token_limiter(struct cx_router *r) { return r->tok; }

void cx__router_use_ratelimit(struct cx_router *r, struct cx__ratelimit *rl) {
    r->rl = rl != NULL ? rl : r->own_rl;
}

uint64_t cx__router_paused_sends(struct cx_router *r) { return atomic_load(&r->paused_sends); }
