/*
 * router.c - the LLM router: routing, fallback, retries with backoff, the two rate limits, the
 * response cache, single flight and per-provider statistics (see cx/router.h for the contract).
 *
 * What it does not do: move bytes or parse answers (http.c / ioloop.c), read the environment
 * (config), decide what a valid answer is (the caller's validate callback).
 *
 * One query is a `struct call`, driven through the same three steps by both entry points:
 *   acquire  -- limiter token, token-bucket estimate, router-wide Retry-After pause;
 *   transfer -- cx_http_client_perform (thread-local) or cx_ioloop_submit (hybrid);
 *   after    -- parse, account, validate + cache write, or decide: retry / fall back / fail.
 * cx_router_complete runs them in a loop on the calling thread and sleeps between them (GIL
 * released); cx_router_complete_async chains them through I/O-loop timers and completion
 * callbacks (and options.post for the CPU step), so no thread waits.
 *
 * DESIGN (threads and locks): the router starts no thread. Its shared state is the single-flight
 * table (sf_mu), the jitter PRNG (an atomic counter fed through splitmix64, so a seed gives the same
 * set of delays whatever the interleaving), the router-wide pause (an atomic deadline) and the
 * statistics (atomics). No lock is held while calling user code (validate, post, done callbacks),
 * the cache, the limiters or curl. Single-flight followers wait on the entry's condition variable
 * (blocking) or are queued on its callback list (async); the leader publishes its answer under
 * sf_mu after the cache write, so a later identical query sees either the entry or the cache.
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/http.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "router_internal.h"


int cx_router_complete(struct cx_router *r, const struct cx_llm_query *q, struct cx_llm_response *out,
                       struct cx_errinfo *ei) {
    if (r == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete: router/out is NULL");
    cx_llm_response_init(out);
    int rc = cx__call_check(q, ei);
    if (rc < 0) return rc;
    if (r->hybrid && cx_ioloop_on_thread(r->loop))
        return cx__err(ei, CX_EINVAL, "cx_router_complete: called on the I/O thread (use the async form)");
    struct call *c = cx__malloc(sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_router_complete: out of memory");
    cx__call_init(c, r, q);
    if ((rc = cx__mutex_init(&c->wmu)) < 0 || (rc = cx__cond_init(&c->wcond)) < 0) {
        if (rc == 0) cx__mutex_destroy(&c->wmu);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_router_complete: out of memory");
    }
    rc = cx__call_candidates(c, ei);
    if (rc < 0) goto out;
    atomic_fetch_add(&r->queries, 1);
    rc = cx__call_cache_get(c);
    if (rc == 0) {
        *out = c->resp;
        cx_llm_response_init(&c->resp);
        goto out;
    }
    if (rc == CX_ENOMEM) {
        rc = cx__err(ei, rc, "cx_router_complete: out of memory");
        goto out;
    }
    if (r->single_flight) {
        struct sf_entry *e = NULL;
        rc = cx__sf_join(c, NULL, &e);
        if (rc < 0) {
            rc = cx__err(ei, rc, "cx_router_complete: out of memory");
            goto out;
        }
        if (rc == 0) {
            rc = cx__sf_wait(c, e, out, ei);
            goto out;
        }
    }
    rc = cx__call_run_blocking(c);
    cx__sf_publish(c, rc);
    if (rc == 0) {
        *out = c->resp;
        cx_llm_response_init(&c->resp);
    } else if (ei) {
        *ei = c->ei;
    }
out:
    cx__mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->wcond);
    cx__call_release(c);
    cx__free(c);
    return rc;
}

static int dup_opt(char **dst, const char *src) {
    *dst = NULL;
    if (src == NULL) return 0;
    *dst = cx__strdup(src);
    return *dst ? 0 : CX_ENOMEM;
}

int cx_router_complete_async(struct cx_router *r, const struct cx_llm_query *q, cx_router_done_fn done,
                             void *ud, struct cx_errinfo *ei) {
    if (r == NULL || done == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete_async: router/done is NULL");
    if (r->loop == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete_async: the router has no I/O loop");
    int rc = cx__call_check(q, ei);
    if (rc < 0) return rc;
    struct call *c = cx__malloc(sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_router_complete_async: out of memory");
    cx__call_init(c, r, q);
    c->done = done;
    c->ud = ud;
    if (dup_opt(&c->own[0], q->system) < 0 || dup_opt(&c->own[1], q->prompt) < 0 ||
        dup_opt(&c->own[2], q->extra_header) < 0) {
        cx__call_release(c);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_router_complete_async: out of memory");
    }
    c->q.system = c->own[0];
    c->q.prompt = c->own[1];
    c->q.extra_header = c->own[2];
    rc = cx__call_candidates(c, ei);
    if (rc < 0) {
        cx__call_release(c);
        cx__free(c);
        return rc;
    }
    atomic_fetch_add(&r->queries, 1);
    rc = cx__call_cache_get(c);
    if (rc == 0) {
        done(0, &c->resp, NULL, ud);
        cx_llm_response_init(&c->resp); /* the callee took the strings */
        cx__call_release(c);
        cx__free(c);
        return 0;
    }
    if (rc == CX_ENOMEM) {
        cx__call_release(c);
        cx__free(c);
        return cx__err(ei, rc, "cx_router_complete_async: out of memory");
    }
    if (r->single_flight) {
        struct sf_waiter *w = cx__malloc(sizeof *w);
        struct sf_entry *e = NULL;
        if (w) { /* filled before it is published: the leader may call it at once */
            w->done = done;
            w->ud = ud;
            w->start_ns = c->start_ns;
        }
        rc = w ? cx__sf_join(c, w, &e) : CX_ENOMEM;
        if (rc < 0) {
            cx__free(w);
            cx__call_release(c);
            cx__free(c);
            return cx__err(ei, rc, "cx_router_complete_async: out of memory");
        }
        if (rc == 0) { /* queued behind the leader, which will call done */
            cx__call_release(c);
            cx__free(c);
            return 0;
        }
        cx__free(w);
    }
    cx__call_async_acquire(c);
    return 0;
}

/* ---- test hooks (not in the public header; tests declare them) ---- */

/* Queries waiting on an in-flight identical query right now (blocking and async). */
size_t cx__router_sf_waiting(struct cx_router *r);
size_t cx__router_sf_waiting(struct cx_router *r) {
    size_t n = 0;
    cx__mutex_lock(&r->sf_mu);
    for (int b = 0; b < SF_BUCKETS; b++) {
        for (struct sf_entry *e = r->sf[b]; e; e = e->next) {
            n += (size_t)(e->refs - 1);
            for (struct sf_waiter *w = e->waiters; w; w = w->next) n++;
        }
    }
    cx__mutex_unlock(&r->sf_mu);
    return n;
}

/* The router's own tokens-per-minute bucket (NULL when off). */
struct cx_limiter *cx__router_token_limiter(struct cx_router *r);
struct cx_limiter *cx__router_token_limiter(struct cx_router *r) { return r->tok; }
