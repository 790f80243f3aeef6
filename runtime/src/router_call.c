/*
 * router_call.c - one call: candidates, the cache lookup and write, the attempt log, making a
 * transfer, deciding after it (retry / fall back / fail), and the two drivers (blocking and
 * async). What it does not do: single flight (router_sf.c), provider set-up (router_providers.c).
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

/* CPU time of the calling thread, for the CPU-share measurement. */
static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}



int cx__call_check(const struct cx_llm_query *q, struct cx_errinfo *ei) {
    if (q == NULL) return cx__err(ei, CX_EINVAL, "query is NULL");
    if (q->prompt == NULL) return cx__err(ei, CX_EINVAL, "cx_llm_query.prompt is NULL");
    if ((int)q->task < 0 || q->task >= CX_TASK_COUNT)
        return cx__err(ei, CX_EINVAL, "cx_llm_query.task is %d (unknown task type)", (int)q->task);
    if (q->force != CX_PROVIDER_AUTO && ((int)q->force < 0 || q->force >= CX_PROVIDER_COUNT))
        return cx__err(ei, CX_EINVAL, "cx_llm_query.force is %d (unknown provider)", (int)q->force);
    if (q->max_tokens <= 0)
        return cx__err(ei, CX_EINVAL, "cx_llm_query.max_tokens is %d (must be > 0)", q->max_tokens);
    return 0;
}

/* Fills the candidate list: the preferred provider, then the others in order. A provider whose
 * base URL is an earlier candidate's (the router-wide override makes every provider one server)
 * is left out: falling back to it would only send the same request to the same server again. */
int cx__call_candidates(struct call *c, struct cx_errinfo *ei) {
    struct cx_router *r = c->r;
    int pref = c->q.force != CX_PROVIDER_AUTO ? (int)c->q.force : (int)cx_router_route(c->q.task);
    c->ncand = 0;
    for (int k = 0; k < CX_PROVIDER_COUNT; k++) {
        int p = (pref + k) % CX_PROVIDER_COUNT;
        if (!r->p[p].configured) continue;
        int same = 0;
        for (int j = 0; j < c->ncand && !same; j++) same = strcmp(r->p[c->cand[j]].base_url, r->p[p].base_url) == 0;
        if (same) continue;
        c->cand[c->ncand++] = p;
        if (!r->fallback) break;
    }
    if (c->ncand == 0)
        return cx__err(ei, CX_ENOPROVIDER, "no configured provider for task %s (preferred %s)",
                       cx_task_type_name(c->q.task), cx_provider_name((enum cx_provider)pref));
    return 0;
}

void cx__call_init(struct call *c, struct cx_router *r, const struct cx_llm_query *q) {
    memset(c, 0, sizeof *c);
    c->r = r;
    c->q = *q;
    c->start_ns = cx_now_ns();
    cx__buf_init(&c->log, 4096);
    cx_llm_response_init(&c->resp);
}

void cx__call_release(struct call *c) {
    cx__buf_reset(&c->log);
    cx_http_xfer_free(c->x);
    c->x = NULL;
    for (int i = 0; i < 3; i++) cx__free(c->own[i]);
    cx_llm_response_clear(&c->resp);
}

/* One cache lookup, under the first candidate's key: the cache counts every lookup, so one
 * query must be one hit or one miss (see router.h). 0 with c->resp filled on a hit. */
int cx__call_cache_get(struct call *c) {
    struct cx_router *r = c->r;
    if (r->cache == NULL || c->q.prompt[0] == '\0') return CX_ENOENT;
    int prov = c->cand[0];
    struct prov *p = &r->p[prov];
    struct cx_cache_key k = {p->cache_name, p->model, c->q.system ? c->q.system : "", c->q.prompt};
    char *json = NULL;
    int similar = 0;
    int rc = cx_cache_get(r->cache, &k, &json, &similar, NULL);
    if (rc == CX_ENOMEM) return CX_ENOMEM;
    if (rc < 0) return CX_ENOENT;
    /* json is returned by the cache, freed with cx_free == cx__free */
    if (similar && r->accept_similar && r->accept_similar(&c->q, json, r->accept_similar_ud) < 0) {
        cx__free(json);
        return CX_ENOENT;
    }
    c->resp.content = json;
    c->resp.model = cx__strdup(p->model);
    if (c->resp.model == NULL) {
        cx_llm_response_clear(&c->resp);
        return CX_ENOMEM;
    }
    c->resp.provider = (enum cx_provider)prov;
    c->resp.from_cache = 1;
    c->resp.cache_similar = similar;
    c->resp.latency_s = cx_elapsed_s(c->start_ns, cx_now_ns());
    atomic_fetch_add(&r->cache_hits, 1);
    return 0;
}

static void call_cache_put(struct call *c, int prov) {
    struct cx_router *r = c->r;
    if (r->cache == NULL || c->q.prompt[0] == '\0' || c->resp.content == NULL || c->resp.content[0] == '\0')
        return;
    struct cx_cache_key k = {r->p[prov].cache_name, r->p[prov].model, c->q.system ? c->q.system : "",
                             c->q.prompt};
    (void)cx_cache_put(r->cache, &k, c->resp.content, NULL); /* a failed write loses only speed */
}

/* Tokens the call is charged before the answer is known. */
static double token_estimate(struct call *c) {
    size_t bytes = strlen(c->q.prompt) + (c->q.system ? strlen(c->q.system) : 0);
    double out = c->r->exp_out < c->q.max_tokens ? c->r->exp_out : c->q.max_tokens;
    double est = (double)((bytes + 3) / 4) + out;
    double burst = cx_limiter_burst(c->r->tok);
    return est > burst ? burst : est;
}

static void log_attempt(struct call *c, int prov, int rc, long status, double retry_after) {
    const char *what;
    switch (rc) {
    case CX_ERATELIMIT: what = "rate limited"; break;
    case CX_EOVERLOADED: what = "overloaded"; break;
    case CX_ESERVER: what = "server error"; break;
    case CX_EAUTH: what = "authentication failed"; break;
    case CX_EHTTP: what = "HTTP error"; break;
    case CX_ETIMEDOUT: what = "timed out"; break;
    case CX_ECONN: what = "connection failed or reset"; break;
    case CX_EPARSE: what = "malformed response"; break;
    default: what = cx_strerror(rc); break;
    }
    if (c->log.len > 0) (void)cx__buf_append(&c->log, "; ", 2);
    if (status > 0 && status != 200)
        (void)cx__buf_printf(&c->log, "#%d %s %ld %s", c->nattempts, cx_provider_name((enum cx_provider)prov),
                             status, what);
    else
        (void)cx__buf_printf(&c->log, "#%d %s %s", c->nattempts, cx_provider_name((enum cx_provider)prov), what);
    if (retry_after >= 0) (void)cx__buf_printf(&c->log, " (retry after %.3g s)", retry_after);
}

/* Ends the call with a summary of every attempt. */
static int call_fail(struct call *c, int code, const char *why) {
    if (c->nattempts == 0) {
        return cx__err_detail(&c->ei, code, c->last_status, "%s", why ? why : cx_strerror(code));
    }
    return cx__err_detail(&c->ei, code, c->last_status, "%d attempt%s failed%s%s%s: %s", c->nattempts,
                          c->nattempts == 1 ? "" : "s", why ? " (" : "", why ? why : "", why ? ")" : "",
                          c->log.p ? c->log.p : "");
}

/* The deadline of the next attempt's transfer. */
static uint64_t attempt_deadline(struct call *c) {
    return cx_deadline_min(c->q.deadline, cx_deadline_after_ns(c->r->attempt_ns));
}

static int call_make_xfer(struct call *c) {
    struct cx_router *r = c->r;
    int prov = c->cand[c->ci];
    struct prov *p = &r->p[prov];
    struct cx_http_request req;
    cx_http_request_init(&req);
    req.api = p->api;
    req.base_url = p->base_url;
    req.api_key = p->key;
    req.model = p->model;
    req.system = c->q.system;
    req.prompt = c->q.prompt;
    req.max_tokens = c->q.max_tokens;
    req.temperature = c->q.temperature;
    req.stream = c->q.stream;
    req.deadline = attempt_deadline(c);
    req.connect_timeout_ms = r->connect_ms;
    req.cancel = c->q.cancel;
    req.extra_header = c->q.extra_header;
    cx_http_xfer_free(c->x);
    c->x = NULL;
    struct cx_errinfo ei;
    int rc = cx_http_xfer_new(&req, &c->x, &ei);
    if (rc < 0) return cx__err(&c->ei, rc, "%s", ei.msg);
    c->nattempts++;
    atomic_fetch_add(&p->requests, 1);
    return 0;
}

/* After a transfer: parse, account, and decide. On ACT_RETRY *wait_ns says how long to wait
 * before acquiring for the next attempt. On ACT_OK c->resp is filled; on ACT_FAIL c->ei / c->rc. */
static int call_after(struct call *c, uint64_t *wait_ns) {
    struct cx_router *r = c->r;
    int prov = c->cand[c->ci];
    struct prov *p = &r->p[prov];
    struct cx_http_result hr;
    struct cx_errinfo aei;
    memset(&aei, 0, sizeof aei);
    uint64_t cpu0 = thread_cpu_ns();
    int rc = cx_http_xfer_finish(c->x, &hr, &aei);
    cx_http_xfer_free(c->x);
    c->x = NULL;
    c->last_rc = rc;
    c->last_status = hr.status;
    *wait_ns = 0;

    if (rc == 0) {
        int64_t in = hr.prompt_tokens > 0 ? hr.prompt_tokens : 0;
        int64_t out = hr.completion_tokens > 0 ? hr.completion_tokens : 0;
        if (r->tok && (hr.prompt_tokens >= 0 || hr.completion_tokens >= 0))
            (void)cx_limiter_adjust(r->tok, (double)(in + out) - c->tok_charged);
        c->tok_charged = 0;
        double cost = ((double)in * p->pin + (double)out * p->pout) / 1e6;
        atomic_fetch_add(&p->successes, 1);
        atomic_fetch_add(&p->in_tok, (uint64_t)in);
        atomic_fetch_add(&p->out_tok, (uint64_t)out);
        atomic_fetch_add(&p->nano_usd, (uint64_t)llround(cost * 1e9));
        c->resp.content = hr.content;
        c->resp.model = hr.model ? hr.model : cx__strdup(p->model);
        hr.content = hr.model = NULL;
        if (c->resp.model == NULL) {
            cx_llm_response_clear(&c->resp);
            c->rc = cx__err(&c->ei, CX_ENOMEM, "out of memory");
            return ACT_FAIL;
        }
        c->resp.provider = (enum cx_provider)prov;
        c->resp.prompt_tokens = in;
        c->resp.completion_tokens = out;
        c->resp.cost = cost;
        c->resp.attempts = c->nattempts;
        if (r->validate) {
            struct cx_errinfo vei;
            memset(&vei, 0, sizeof vei);
            int vrc = r->validate(&c->q, c->resp.content, r->validate_ud, &vei);
            if (vrc < 0) {
                cx_llm_response_clear(&c->resp);
                c->rc = cx__err(&c->ei, vrc, "%s answer refused by the validator: %s",
                                cx_provider_name((enum cx_provider)prov), vei.msg[0] ? vei.msg : cx_strerror(vrc));
                return ACT_FAIL;
            }
        }
        call_cache_put(c, prov);
        uint64_t now = cx_now_ns();
        c->resp.latency_s = cx_elapsed_s(c->start_ns, now);
        cx__router_note_share(r, thread_cpu_ns() - cpu0, now - c->start_ns);
        return ACT_OK;
    }

    atomic_fetch_add(&p->failures, 1);
    if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
    c->tok_charged = 0;
    double ra = hr.retry_after_s;
    log_attempt(c, prov, rc, hr.status, (rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER) ? ra : -1);
    if (rc == CX_ECANCELED || rc == CX_ENOMEM || rc == CX_EINVAL || rc == CX_ETOOBIG) {
        c->rc = call_fail(c, rc, NULL);
        return ACT_FAIL;
    }
    if (rc == CX_ETIMEDOUT && cx_deadline_expired(c->q.deadline)) {
        c->rc = call_fail(c, CX_ETIMEDOUT, "deadline passed");
        return ACT_FAIL;
    }
    if (ra >= 0 && (rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER)) {
        uint64_t until = cx_deadline_after_ns((uint64_t)(ra * 1e9));
        if (r->limiter) cx_limiter_pause_until(r->limiter, until);
        if (r->tok) cx_limiter_pause_until(r->tok, until);
        uint64_t cur = atomic_load(&r->paused_until);
        while (cur < until && !atomic_compare_exchange_weak(&r->paused_until, &cur, until)) {
        }
        atomic_fetch_add(&r->pauses, 1);
    }
    int retryable = rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER || rc == CX_ETIMEDOUT ||
                    rc == CX_ECONN || rc == CX_EPARSE || rc == CX_EIO;
    c->attempt++;
    uint64_t wait = 0;
    if (retryable && c->attempt < r->max_attempts) {
        wait = cx__router_backoff_ns(r, c->attempt - 1);
        if (ra >= 0 && (uint64_t)(ra * 1e9) > wait) wait = (uint64_t)(ra * 1e9);
        atomic_fetch_add(&r->retries, 1);
    } else if (r->fallback && c->ci + 1 < c->ncand) {
        c->ci++;
        c->attempt = 0;
        atomic_fetch_add(&r->fallbacks, 1);
    } else {
        c->rc = call_fail(c, rc, NULL);
        return ACT_FAIL;
    }
    if (c->q.deadline != CX_DEADLINE_NONE && cx_now_ns() + wait >= c->q.deadline) {
        c->rc = call_fail(c, CX_ETIMEDOUT, "the deadline would pass before the next attempt");
        return ACT_FAIL;
    }
    *wait_ns = wait;
    return ACT_RETRY;
}

/* ---- the blocking driver ---- */

static void hybrid_done(struct cx_http_xfer *x, void *ud) {
    (void)x;
    struct call *c = ud;
    cx__mutex_lock(&c->wmu);
    c->wdone = 1;
    pthread_cond_broadcast(&c->wcond);
    cx__mutex_unlock(&c->wmu);
}

/* Waits for the router-wide pause and the limiters; 0 or an error in c->ei. */
static int acquire_blocking(struct call *c) {
    struct cx_router *r = c->r;
    uint64_t pause = atomic_load(&r->paused_until);
    if (r->limiter == NULL && pause > cx_now_ns()) {
        if (pause >= c->q.deadline) return c->rc = call_fail(c, CX_ETIMEDOUT, "the deadline would pass during a Retry-After pause");
        cx_gil_io_begin();
        cx_sleep_until(pause);
        cx_gil_io_end();
    }
    if (r->limiter) {
        cx_gil_io_begin();
        int rc = cx_limiter_acquire_until(r->limiter, 1, c->q.deadline);
        cx_gil_io_end();
        if (rc < 0) return c->rc = call_fail(c, CX_ETIMEDOUT, "deadline passed waiting for the request limiter");
    }
    if (r->tok) {
        double est = token_estimate(c);
        cx_gil_io_begin();
        int rc = cx_limiter_acquire_until(r->tok, est, c->q.deadline);
        cx_gil_io_end();
        if (rc < 0) {
            if (r->limiter) (void)cx_limiter_adjust(r->limiter, -1);
            return c->rc = call_fail(c, CX_ETIMEDOUT, "deadline passed waiting for the token limiter");
        }
        c->tok_charged = est;
    }
    return 0;
}

int cx__call_run_blocking(struct call *c) {
    struct cx_router *r = c->r;
    for (;;) {
        if (c->q.cancel && atomic_load(c->q.cancel)) return c->rc = call_fail(c, CX_ECANCELED, "canceled");
        int rc = acquire_blocking(c);
        if (rc < 0) return rc;
        rc = call_make_xfer(c);
        if (rc < 0) {
            if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
            return c->rc = rc;
        }
        if (r->hybrid) {
            c->wdone = 0;
            rc = cx_ioloop_submit(r->loop, c->x, hybrid_done, c, &c->ei);
            if (rc < 0) {
                if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
                return c->rc = rc;
            }
            cx_gil_io_begin();
            cx__mutex_lock(&c->wmu);
            while (!c->wdone) cx__cond_wait(&c->wcond, &c->wmu, CX_DEADLINE_NONE);
            cx__mutex_unlock(&c->wmu);
            cx_gil_io_end();
        } else {
            rc = cx_http_client_perform(r->client, c->x, &c->ei);
            if (rc < 0) return c->rc = rc;
        }
        uint64_t wait;
        int act = call_after(c, &wait);
        if (act == ACT_OK) return c->rc = 0;
        if (act == ACT_FAIL) return c->rc;
        if (wait > 0) {
            cx_gil_io_begin();
            cx_sleep_ns(wait);
            cx_gil_io_end();
        }
    }
}

/* ---- the async driver ---- */

static void retry_timer(void *ud, int canceled);

static void async_finish(struct call *c, int rc) {
    cx__sf_publish(c, rc);
    if (rc == 0) {
        c->done(0, &c->resp, NULL, c->ud);
        cx_llm_response_init(&c->resp); /* the callee took the strings */
    } else {
        c->done(rc, NULL, &c->ei, c->ud);
    }
    cx__call_release(c);
    cx__free(c);
}

static void async_after(void *arg) {
    struct call *c = arg;
    uint64_t wait;
    int act = call_after(c, &wait);
    if (act == ACT_OK) {
        async_finish(c, 0);
    } else if (act == ACT_FAIL) {
        async_finish(c, c->rc);
    } else if (wait > 0) {
        /* re-acquire once the backoff is over */
        if (cx_ioloop_timer(c->r->loop, cx_deadline_after_ns(wait), retry_timer, c, &c->ei) < 0)
            async_finish(c, c->rc = call_fail(c, CX_ECLOSED, "the I/O loop shut down"));
    } else {
        cx__call_async_acquire(c);
    }
}

static void retry_timer(void *ud, int canceled) {
    struct call *c = ud;
    if (canceled) {
        async_finish(c, c->rc = call_fail(c, CX_ECANCELED, "the I/O loop shut down"));
        return;
    }
    cx__call_async_acquire(c);
}

static void async_xfer_done(struct cx_http_xfer *x, void *ud) {
    (void)x;
    struct call *c = ud;
    cx_router_post_fn post = c->q.post ? c->q.post : c->r->post;
    void *ctx = c->q.post ? c->q.post_ctx : c->r->post_ctx;
    if (post && post(async_after, c, ctx) == 0) return;
    async_after(c);
}

static void async_send(void *ud, int canceled) {
    struct call *c = ud;
    struct cx_router *r = c->r;
    if (canceled) {
        if (r->limiter && c->req_taken) (void)cx_limiter_adjust(r->limiter, -1);
        if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = call_fail(c, CX_ECANCELED, "the I/O loop shut down"));
        return;
    }
    c->req_taken = 0;
    int rc = call_make_xfer(c);
    if (rc < 0) {
        if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = rc);
        return;
    }
    rc = cx_ioloop_submit(r->loop, c->x, async_xfer_done, c, &c->ei);
    if (rc < 0) {
        if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = rc);
    }
}

/* Reserves the limiters' tokens and sends when they are due (an I/O-loop timer waits). */
void cx__call_async_acquire(struct call *c) {
    struct cx_router *r = c->r;
    if (c->q.cancel && atomic_load(c->q.cancel)) {
        async_finish(c, c->rc = call_fail(c, CX_ECANCELED, "canceled"));
        return;
    }
    uint64_t now = cx_now_ns(), wait = 0, w;
    uint64_t pause = atomic_load(&r->paused_until);
    if (r->limiter == NULL && pause > now) wait = pause - now;
    if (r->limiter) {
        (void)cx_limiter_reserve(r->limiter, 1, &w);
        c->req_taken = 1;
        if (w > wait) wait = w;
    }
    if (r->tok) {
        double est = token_estimate(c);
        (void)cx_limiter_reserve(r->tok, est, &w);
        c->tok_charged = est;
        if (w > wait) wait = w;
    }
    if (c->q.deadline != CX_DEADLINE_NONE && now + wait >= c->q.deadline) {
        if (r->limiter) (void)cx_limiter_adjust(r->limiter, -1);
        if (r->tok) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        c->tok_charged = 0;
        async_finish(c, c->rc = call_fail(c, CX_ETIMEDOUT, "the deadline would pass waiting for the rate limiter"));
        return;
    }
    if (wait == 0) {
        async_send(c, 0);
        return;
    }
    if (cx_ioloop_timer(r->loop, now + wait, async_send, c, &c->ei) < 0) {
        if (r->limiter) (void)cx_limiter_adjust(r->limiter, -1);
        if (r->tok) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = call_fail(c, CX_ECLOSED, "the I/O loop shut down"));
    }
}
