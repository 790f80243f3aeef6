/*
 * http_client.c - the thread-local blocking client (the seed's ThreadLocalClients, section 4.1):
 * every calling thread gets its own curl easy handle (a pthread key per client), with DNS,
 * connection and TLS-session caches shared through one CURLSH guarded by a mutex per lock data.
 *
 * What it does not do: build or parse transfers (http_xfer.c and the wire files), the curl multi
 * loop (ioloop.c), retries, rate limiting, routing or caching (router.c).
 */
#include "cx/http.h"

#include <pthread.h>
#include <string.h>

#include <curl/curl.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx_testing.h"
#include "http_internal.h"

/* ---- the thread-local client ---- */

struct tl_slot {
    CURL *easy;
    struct cx_http_client *c;
    struct tl_slot *prev, *next; /* guarded by c->mu */
};

struct cx_http_client {
    pthread_key_t key;
    CURLSH *share; /* NULL when sharing is off */
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    struct cx__mutex mu;
    struct tl_slot *slots; /* guarded by mu */
    long maxconn;
    atomic_uint_fast64_t handles;
    atomic_uint_fast64_t transfers;
    atomic_uint_fast64_t connects;
};

void cx_http_client_options_init(struct cx_http_client_options *o) {
    memset(o, 0, sizeof *o);
    o->max_connections = 64;
    o->share_connections = 1;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *ud) {
    (void)h, (void)acc;
    struct cx_http_client *c = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud) {
    (void)h;
    struct cx_http_client *c = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_unlock(&c->share_mu[data]);
}

/* pthread key destructor: the thread exits, its handle goes with it. */
static void slot_destroy(void *p) {
    struct tl_slot *s = p;
    struct cx_http_client *c = s->c;
    cx__mutex_lock(&c->mu);
    if (s->prev) s->prev->next = s->next;
    else c->slots = s->next;
    if (s->next) s->next->prev = s->prev;
    cx__mutex_unlock(&c->mu);
    curl_easy_cleanup(s->easy);
    cx__free(s);
}

int cx_http_client_new(const struct cx_http_client_options *opts, struct cx_http_client **out,
                       struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_http_client_new: out is NULL");
    *out = NULL;
    struct cx_http_client_options def;
    if (opts == NULL) {
        cx_http_client_options_init(&def);
        opts = &def;
    }
    int rc = cx__http_global_init();
    if (rc < 0) return cx__err(ei, rc, "curl_global_init failed");
    struct cx_http_client *c = cx__calloc(1, sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_http_client_new: out of memory");
    c->maxconn = opts->max_connections > 0 ? opts->max_connections : 64;
    int nmu = 0;
    for (; nmu < CURL_LOCK_DATA_LAST; nmu++)
        if (pthread_mutex_init(&c->share_mu[nmu], NULL) != 0) break;
    int have_key = 0, have_mu = 0;
    if (nmu < CURL_LOCK_DATA_LAST) goto nomem;
    if (cx__mutex_init(&c->mu) < 0) goto nomem;
    have_mu = 1;
    if (pthread_key_create(&c->key, slot_destroy) != 0) {
        rc = cx__err(ei, CX_ENOMEM, "cx_http_client_new: pthread_key_create failed (too many clients?)");
        goto fail;
    }
    have_key = 1;
    if (opts->share_connections) {
        c->share = curl_share_init();
        if (c->share == NULL) goto nomem;
        CURLSHcode s = curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        if (s != CURLSHE_OK) {
            rc = cx__err(ei, s == CURLSHE_NOMEM ? CX_ENOMEM : CX_EIO, "curl_share_setopt failed: %s",
                         curl_share_strerror(s));
            goto fail;
        }
    }
    atomic_init(&c->handles, 0);
    atomic_init(&c->transfers, 0);
    atomic_init(&c->connects, 0);
    *out = c;
    return 0;
nomem:
    rc = cx__err(ei, CX_ENOMEM, "cx_http_client_new: out of memory");
fail:
    if (c->share) curl_share_cleanup(c->share);
    if (have_key) pthread_key_delete(c->key);
    if (have_mu) cx__mutex_destroy(&c->mu);
    for (int i = 0; i < nmu; i++) pthread_mutex_destroy(&c->share_mu[i]);
    cx__free(c);
    return rc;
}

void cx_http_client_free(struct cx_http_client *c) {
    if (c == NULL) return;
    /* After the key is deleted no exiting thread runs slot_destroy for this client, so the list
     * below is ours alone. */
    pthread_key_delete(c->key);
    cx__mutex_lock(&c->mu);
    struct tl_slot *s = c->slots;
    c->slots = NULL;
    cx__mutex_unlock(&c->mu);
    while (s) {
        struct tl_slot *n = s->next;
        curl_easy_cleanup(s->easy);
        cx__free(s);
        s = n;
    }
    if (c->share) curl_share_cleanup(c->share);
    cx__mutex_destroy(&c->mu);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&c->share_mu[i]);
    cx__free(c);
}

/* The calling thread's handle for c, created on first use. */
static struct tl_slot *thread_slot(struct cx_http_client *c) {
    struct tl_slot *s = pthread_getspecific(c->key);
    if (s) return s;
    s = cx__calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->easy = curl_easy_init();
    if (s->easy == NULL) {
        cx__free(s);
        return NULL;
    }
    s->c = c;
    if (pthread_setspecific(c->key, s) != 0) {
        curl_easy_cleanup(s->easy);
        cx__free(s);
        return NULL;
    }
    cx__mutex_lock(&c->mu);
    s->next = c->slots;
    if (c->slots) c->slots->prev = s;
    c->slots = s;
    cx__mutex_unlock(&c->mu);
    atomic_fetch_add(&c->handles, 1);
    return s;
}

int cx_http_client_perform(struct cx_http_client *c, struct cx_http_xfer *x, struct cx_errinfo *ei) {
    if (c == NULL || x == NULL) return cx__err(ei, CX_EINVAL, "cx_http_client_perform: c/x is NULL");
    if (x->deadline != CX_DEADLINE_NONE && cx_deadline_expired(x->deadline)) {
        x->started_ns = cx_now_ns();
        cx__http_xfer_abort(x, CX__ABORT_DEADLINE);
        return 0;
    }
    if (x->cancel && atomic_load(x->cancel)) {
        x->started_ns = cx_now_ns();
        cx__http_xfer_abort(x, CX__ABORT_CANCEL);
        return 0;
    }
    struct tl_slot *s = thread_slot(c);
    if (s == NULL) return cx__err(ei, CX_ENOMEM, "cx_http_client_perform: cannot create this thread's handle");
    int rc = cx__http_xfer_attach(x, s->easy);
    CURLcode cc = CURLE_OK;
    if (rc == 0 && c->share) cc = curl_easy_setopt(s->easy, CURLOPT_SHARE, c->share);
    if (rc == 0 && cc == CURLE_OK) cc = curl_easy_setopt(s->easy, CURLOPT_MAXCONNECTS, c->maxconn);
    if (rc == 0 && cc != CURLE_OK) rc = cc == CURLE_OUT_OF_MEMORY ? CX_ENOMEM : CX_EIO;
    if (rc < 0) return cx__err(ei, rc, "cx_http_client_perform: cannot set up the curl handle");
    cx_gil_io_begin();
    cc = curl_easy_perform(s->easy);
    cx_gil_io_end();
    cx__http_xfer_ended(x, s->easy, cc);
    /* Drop the pointers into x so the idle handle does not refer to freed memory. */
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, NULL);
    atomic_fetch_add(&c->transfers, 1);
    atomic_fetch_add(&c->connects, (uint_fast64_t)(x->connects > 0 ? x->connects : 0));
    return 0;
}

int cx_http_client_complete(struct cx_http_client *c, const struct cx_http_request *req,
                            struct cx_http_result *out, struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_http_client_complete: out is NULL");
    cx_http_result_init(out);
    struct cx_http_xfer *x;
    int rc = cx_http_xfer_new(req, &x, ei);
    if (rc < 0) return rc;
    rc = cx_http_client_perform(c, x, ei);
    if (rc == 0) rc = cx_http_xfer_finish(x, out, ei);
    cx_http_xfer_free(x);
    return rc;
}

void cx_http_client_stats(struct cx_http_client *c, struct cx_http_client_stats *out) {
    memset(out, 0, sizeof *out);
    if (c == NULL) return;
    out->handles_created = atomic_load(&c->handles);
    out->transfers = atomic_load(&c->transfers);
    out->connects = atomic_load(&c->connects);
}
