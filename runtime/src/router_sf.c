/*
 * router_sf.c - single flight: an identical query (task type + system + prompt) already in
 * flight is not sent again; followers wait for the leader's answer and share it.
 * What it does not do: send or retry (router_call.c).
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

/* ---- single flight ---- */

static char *make_key(const struct cx_llm_query *q, size_t *len) {
    struct cx__buf b;
    cx__buf_init(&b, 0);
    int rc = cx__buf_printf(&b, "%d", (int)q->task);
    if (rc == 0) rc = cx__buf_append(&b, "", 1);
    if (rc == 0 && q->system) rc = cx__buf_append(&b, q->system, strlen(q->system));
    if (rc == 0) rc = cx__buf_append(&b, "", 1);
    if (rc == 0) rc = cx__buf_append(&b, q->prompt, strlen(q->prompt));
    if (rc < 0) return NULL;
    *len = b.len;
    return cx__buf_take(&b);
}

void cx__sf_entry_free(struct sf_entry *e) {
    cx__free(e->key);
    cx_llm_response_clear(&e->resp);
    pthread_cond_destroy(&e->cond);
    cx__free(e);
}

/* Finds the in-flight entry for c's query, or makes c its leader. Returns 1 when c leads
 * (c->sf set), 0 when it follows (*entry set, refs taken for a blocking follower; for an async
 * follower the waiter is queued instead), or CX_ENOMEM. */
int cx__sf_join(struct call *c, struct sf_waiter *w, struct sf_entry **entry) {
    struct cx_router *r = c->r;
    size_t kl;
    char *key = make_key(&c->q, &kl);
    if (key == NULL) return CX_ENOMEM;
    uint64_t h = cx__fnv1a64(key, kl);
    struct sf_entry **bucket = &r->sf[h % SF_BUCKETS];
    cx__mutex_lock(&r->sf_mu);
    for (struct sf_entry *e = *bucket; e; e = e->next) {
        if (e->hash == h && e->key_len == kl && memcmp(e->key, key, kl) == 0) {
            if (w) {
                w->next = e->waiters;
                e->waiters = w;
            } else {
                e->refs++;
            }
            cx__mutex_unlock(&r->sf_mu);
            cx__free(key);
            *entry = e;
            return 0;
        }
    }
    struct sf_entry *e = cx__calloc(1, sizeof *e);
    if (e == NULL || cx__cond_init(&e->cond) < 0) {
        cx__mutex_unlock(&r->sf_mu);
        cx__free(e);
        cx__free(key);
        return CX_ENOMEM;
    }
    e->hash = h;
    e->key = key;
    e->key_len = kl;
    e->refs = 1;
    cx_llm_response_init(&e->resp);
    e->next = *bucket;
    *bucket = e;
    cx__mutex_unlock(&r->sf_mu);
    c->sf = e;
    return 1;
}

static int resp_copy(struct cx_llm_response *dst, const struct cx_llm_response *src) {
    *dst = *src;
    dst->content = cx__strdup(src->content);
    dst->model = cx__strdup(src->model);
    if ((src->content && !dst->content) || (src->model && !dst->model)) {
        cx__free(dst->content);
        cx__free(dst->model);
        cx_llm_response_init(dst);
        return CX_ENOMEM;
    }
    return 0;
}

/* The leader publishes its outcome: the entry leaves the table, blocking followers wake, async
 * followers' callbacks run (on this thread, no lock held). */
void cx__sf_publish(struct call *c, int rc) {
    struct cx_router *r = c->r;
    struct sf_entry *e = c->sf;
    if (e == NULL) return;
    c->sf = NULL;
    /* Copy the outcome before taking the lock: followers only read it after `done`. */
    e->rc = rc;
    e->ei = c->ei;
    if (rc == 0 && resp_copy(&e->resp, &c->resp) < 0) {
        e->rc = CX_ENOMEM;
        cx__err(&e->ei, CX_ENOMEM, "out of memory sharing an in-flight answer");
    }
    cx__mutex_lock(&r->sf_mu);
    struct sf_entry **pp = &r->sf[e->hash % SF_BUCKETS];
    while (*pp && *pp != e) pp = &(*pp)->next;
    if (*pp) *pp = e->next;
    e->done = 1;
    struct sf_waiter *w = e->waiters;
    e->waiters = NULL;
    pthread_cond_broadcast(&e->cond);
    int last = --e->refs == 0;
    cx__mutex_unlock(&r->sf_mu);
    while (w) {
        struct sf_waiter *n = w->next;
        struct cx_llm_response resp;
        struct cx_errinfo ei = e->ei;
        int wrc = e->rc;
        if (wrc == 0 && resp_copy(&resp, &e->resp) < 0) {
            wrc = cx__err(&ei, CX_ENOMEM, "out of memory sharing an in-flight answer");
        }
        if (wrc == 0) {
            resp.shared = 1;
            resp.prompt_tokens = resp.completion_tokens = 0;
            resp.cost = 0;
            resp.attempts = 0;
            resp.latency_s = cx_elapsed_s(w->start_ns, cx_now_ns());
            atomic_fetch_add(&r->shared, 1);
            w->done(0, &resp, NULL, w->ud); /* the callee takes resp's strings */
        } else {
            w->done(wrc, NULL, &ei, w->ud);
        }
        cx__free(w);
        w = n;
    }
    if (last) cx__sf_entry_free(e);
}

/* A blocking follower waits for the leader. */
int cx__sf_wait(struct call *c, struct sf_entry *e, struct cx_llm_response *out, struct cx_errinfo *ei) {
    struct cx_router *r = c->r;
    int rc = 0;
    cx_gil_io_begin();
    cx__mutex_lock(&r->sf_mu);
    while (!e->done && rc == 0) rc = cx__cond_wait(&e->cond, &r->sf_mu, c->q.deadline);
    int done = e->done;
    cx__mutex_unlock(&r->sf_mu);
    cx_gil_io_end();
    if (!done) {
        rc = cx__err(ei, CX_ETIMEDOUT, "deadline passed waiting for an identical query in flight");
    } else if (e->rc < 0) {
        if (ei) *ei = e->ei;
        rc = e->rc;
    } else {
        rc = resp_copy(out, &e->resp);
        if (rc < 0) {
            cx__err(ei, rc, "out of memory sharing an in-flight answer");
        } else {
            out->shared = 1;
            out->prompt_tokens = out->completion_tokens = 0;
            out->cost = 0;
            out->attempts = 0;
            out->latency_s = cx_elapsed_s(c->start_ns, cx_now_ns());
            atomic_fetch_add(&r->shared, 1);
        }
    }
    cx__mutex_lock(&r->sf_mu);
    int last = --e->refs == 0;
    cx__mutex_unlock(&r->sf_mu);
    if (last) cx__sf_entry_free(e);
    return rc;
}
