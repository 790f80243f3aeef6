/*
 * router_sf.c - single flight: an identical query (task type + system + prompt) already in
 * flight is not sent again. The first call leads; later identical calls are parked on the
 * leader's entry (state CS_FOLLOW) and the leader, when it ends, gives each a copy of its
 * outcome (shared = 1, no cost) and delivers it through that call's own target, so a follower
 * completes where every call completes (a resumed task, or its blocking caller) and never
 * inside the call that submitted it.
 * What it does not do: send, retry or decide anything (router_call.c).
 *
 * Locking: sf_mu guards the table, each entry's follower list and each follower's `detached`
 * flag. An entry lives until its leader has taken it out of the table and detached every
 * follower, all under sf_mu, so a follower that still sees detached == 0 under sf_mu may touch
 * its entry. Outcomes are copied and delivered with no lock held.
 */
#include <string.h>

#include "cx/clock.h"
#include "router_internal.h"

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

int cx__sf_join(struct call *c) {
    struct cx_router *r = c->r;
    size_t kl;
    char *key = make_key(&c->q, &kl);
    if (key == NULL) return CX_ENOMEM;
    uint64_t h = cx__fnv1a64(key, kl);
    struct sf_entry *e = cx__calloc(1, sizeof *e); /* before the lock: no allocation under it */
    struct sf_entry **bucket = &r->sf[h % SF_BUCKETS];
    cx__mutex_lock(&r->sf_mu);
    for (struct sf_entry *x = *bucket; x; x = x->next) {
        if (x->hash == h && x->key_len == kl && memcmp(x->key, key, kl) == 0) {
            c->st = CS_FOLLOW;
            c->follow = x;
            c->detached = 0;
            c->next_follower = x->followers;
            x->followers = c;
            cx__mutex_unlock(&r->sf_mu);
            cx__free(key);
            cx__free(e);
            return 0;
        }
    }
    if (e == NULL) {
        cx__mutex_unlock(&r->sf_mu);
        cx__free(key);
        return CX_ENOMEM;
    }
    e->hash = h;
    e->key = key;
    e->key_len = kl;
    e->next = *bucket;
    *bucket = e;
    cx__mutex_unlock(&r->sf_mu);
    c->sf = e;
    return 1;
}

int cx__resp_copy(struct cx_llm_response *dst, const struct cx_llm_response *src) {
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

void cx__sf_publish(struct call *c) {
    struct cx_router *r = c->r;
    struct sf_entry *e = c->sf;
    if (e == NULL) return;
    c->sf = NULL;
    cx__mutex_lock(&r->sf_mu);
    struct sf_entry **pp = &r->sf[e->hash % SF_BUCKETS];
    while (*pp && *pp != e) pp = &(*pp)->next;
    if (*pp) *pp = e->next;
    struct call *f = e->followers;
    e->followers = NULL;
    for (struct call *x = f; x; x = x->next_follower) x->detached = 1;
    cx__mutex_unlock(&r->sf_mu);
    cx__free(e->key);
    cx__free(e);
    while (f) {
        struct call *n = f->next_follower; /* read before delivery: f may be freed by it */
        f->rc = c->rc;
        f->ei = c->ei;
        if (c->rc == 0 && cx__resp_copy(&f->resp, &c->resp) < 0)
            f->rc = cx__err(&f->ei, CX_ENOMEM, "out of memory sharing an in-flight answer");
        if (f->rc == 0) {
            f->resp.shared = 1;
            f->resp.prompt_tokens = f->resp.completion_tokens = 0;
            f->resp.cost = 0;
            f->resp.attempts = 0;
            f->resp.latency_s = cx_elapsed_s(f->start_ns, cx_now_ns());
            atomic_fetch_add(&r->shared, 1);
        }
        f->st = CS_DONE;
        cx__call_deliver(f);
        f = n;
    }
}

int cx__sf_leave(struct call *c) {
    struct cx_router *r = c->r;
    int left = 0;
    cx__mutex_lock(&r->sf_mu);
    if (!c->detached) {
        struct call **pp = &c->follow->followers;
        while (*pp && *pp != c) pp = &(*pp)->next_follower;
        CX_ASSERT(*pp == c);
        *pp = c->next_follower;
        c->detached = 1;
        left = 1;
    }
    cx__mutex_unlock(&r->sf_mu);
    return left;
}
