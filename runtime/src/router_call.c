/*
 * router_call.c - one call as a state machine: enum call_state (router_internal.h) and one step
 * function, call_step, which moves a call from state to state until it must wait (a rate-limit
 * slot, the shared Retry-After pause, a backoff), move bytes, park behind an identical call, or
 * end. One driver, cx__call_drive, runs the steps and carries out what they ask for, in one of
 * two ways chosen per call (curl's "an easy handle is a private multi"):
 *   - on the I/O loop (the hybrid design; every cx_router_submit, and cx_router_complete on a
 *     hybrid router): waits are loop timers and transfers go into the loop's multi handle, so no
 *     thread waits; the steps after a timer or a transfer run on the I/O thread;
 *   - inline (cx_router_complete on a thread-local router): the calling thread sleeps through
 *     the waits (emulated GIL released) and moves the bytes on its own curl handle.
 * Either way a call ends in exactly one delivery (cx__call_deliver): the blocking caller is
 * woken, or the submitting task is resumed with cx_task_resume, so the completion runs on a
 * worker of that task's executor, never inside the submit call.
 *
 * What it does not do: routing and provider set-up (router_providers.c), sharing answers
 * (router_sf.c), decide what a good answer is or cache it (the caller: cx/pipeline.h).
 *
 * The life of one call:
 *   START -> (single flight) FOLLOW ........................................ -> DONE
 *         -> ACQUIRE -> SEND -> TRANSFER -> ANSWERED -> DONE
 *                ^                              |
 *                +---- BACKOFF <---- retry / fall back
 * ACQUIRE reserves one request token and the token estimate (never sleeping: the wait comes
 * back as a time), and fails at once if the deadline would pass first. SEND re-checks the
 * router-wide Retry-After pause right before every attempt, so a reservation made before
 * another call's 429 still waits the pause out (issue 11: the hybrid design used to send
 * inside it). ANSWERED decodes the wire format (cx_http_xfer_finish), corrects the token
 * charge, records a Retry-After pause, and picks: done, another attempt (BACKOFF with full
 * jitter, never sooner than Retry-After), the next provider, or failure with the attempt log.
 *
 * Limits go through one interface, r->rl (fleet_ratelimit.h): the local cx_limiters, or in fleet
 * mode the GCRA buckets in Redis. A fleet reservation is one Redis round trip (bounded by its
 * op timeout, the emulated GIL released) made where ACQUIRE runs: on the submitting thread, or on
 * the I/O thread for a retry after a backoff timer. A Retry-After pause goes to the whole fleet
 * through the same interface; other processes meet it at their next reservation (their waits
 * move later), while this router's own SEND check also holds what it had already reserved.
 */
#include <math.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "router_internal.h"

enum { AFTER_OK, AFTER_FAIL, AFTER_RETRY };

void cx__call_init(struct call *c, struct cx_router *r, const struct cx_llm_query *q) {
    memset(c, 0, sizeof *c);
    c->r = r;
    c->q = *q;
    c->start_ns = cx_now_ns();
    c->st = CS_START;
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

/* Tokens the call is charged before the answer is known. */
static double token_estimate(struct call *c) {
    size_t bytes = strlen(c->q.prompt) + (c->q.system ? strlen(c->q.system) : 0);
    double out = c->r->exp_out < c->q.max_tokens ? c->r->exp_out : c->q.max_tokens;
    double est = (double)((bytes + 3) / 4) + out;
    double burst = cx_limiter_burst(c->r->tok); /* the tokens per minute (0 without a bucket) */
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
        (void)cx__buf_printf(&c->log, "#%d %s %ld %s", c->nattempts, c->r->p[prov].label, status, what);
    else
        (void)cx__buf_printf(&c->log, "#%d %s %s", c->nattempts, c->r->p[prov].label, what);
    if (retry_after >= 0) (void)cx__buf_printf(&c->log, " (retry after %.3g s)", retry_after);
}

/* Ends the call with a summary of every attempt (see router_internal.h). */
int cx__call_fail(struct call *c, int code, const char *why) {
    c->st = CS_DONE;
    c->rc = code;
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


/* Gives back what an attempt that will not be sent holds. */
static void refund(struct call *c) {
    struct cx_router *r = c->r;
    if (c->req_taken || c->tok_charged > 0)
        (void)cx__ratelimit_adjust(r->rl, c->req_taken ? -1 : 0, -c->tok_charged, NULL);
    c->req_taken = 0;
    c->tok_charged = 0;
}

static int canceled(const struct call *c) { return c->q.cancel && atomic_load(c->q.cancel); }

/* After a transfer: decode, account, and decide. On AFTER_RETRY *wait_ns says how long to wait
 * before acquiring for the next attempt. On AFTER_OK c->resp is filled; on AFTER_FAIL the call
 * is done with its error. */
static int call_after(struct call *c, uint64_t *wait_ns) {
    struct cx_router *r = c->r;
    int prov = c->cand[c->ci];
    struct prov *p = &r->p[prov];
    struct cx_http_result hr;
    struct cx_errinfo aei;
    memset(&aei, 0, sizeof aei);
    uint64_t cpu0 = cx__thread_cpu_ns();
    int rc = cx_http_xfer_finish(c->x, &hr, &aei);
    cx_http_xfer_free(c->x);
    c->x = NULL;
    c->last_status = hr.status;
    *wait_ns = 0;

    if (rc == 0) {
        int64_t in = hr.prompt_tokens > 0 ? hr.prompt_tokens : 0;
        int64_t out = hr.completion_tokens > 0 ? hr.completion_tokens : 0;
        if (r->tok && (hr.prompt_tokens >= 0 || hr.completion_tokens >= 0))
            (void)cx__ratelimit_adjust(r->rl, 0, (double)(in + out) - c->tok_charged, NULL);
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
            (void)cx__call_fail(c, CX_ENOMEM, "out of memory");
            return AFTER_FAIL;
        }
        c->resp.provider = (enum cx_provider)prov;
        c->resp.prompt_tokens = in;
        c->resp.completion_tokens = out;
        c->resp.cost = cost;
        c->resp.attempts = c->nattempts;
        uint64_t now = cx_now_ns();
        c->resp.latency_s = cx_elapsed_s(c->start_ns, now);
        c->resp.limiter_wait_s = (double)c->limit_wait_ns / 1e9;
        cx__router_note_share(r, cx__thread_cpu_ns() - cpu0, now - c->start_ns);
        return AFTER_OK;
    }

    atomic_fetch_add(&p->failures, 1);
    if (r->tok && c->tok_charged > 0) (void)cx__ratelimit_adjust(r->rl, 0, -c->tok_charged, NULL);
    c->tok_charged = 0;
    double ra = hr.retry_after_s;
    log_attempt(c, prov, rc, hr.status, (rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER) ? ra : -1);
    if (rc == CX_ECANCELED || rc == CX_ENOMEM || rc == CX_EINVAL || rc == CX_ETOOBIG) {
        (void)cx__call_fail(c, rc, NULL);
        return AFTER_FAIL;
    }
    if (rc == CX_ETIMEDOUT && cx_deadline_expired(c->q.deadline)) {
        (void)cx__call_fail(c, CX_ETIMEDOUT, "deadline passed");
        return AFTER_FAIL;
    }
    if (ra >= 0 && (rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER)) {
        uint64_t until = cx_deadline_after_ns((uint64_t)(ra * 1e9));
        (void)cx__ratelimit_pause_until(r->rl, until, NULL); /* the whole fleet, with one */
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
        (void)cx__call_fail(c, rc, NULL);
        return AFTER_FAIL;
    }
    if (c->q.deadline != CX_DEADLINE_NONE && cx_now_ns() + wait >= c->q.deadline) {
        (void)cx__call_fail(c, CX_ETIMEDOUT, "the deadline would pass before the next attempt");
        return AFTER_FAIL;
    }
    *wait_ns = wait;
    return AFTER_RETRY;
}


/* Reserves the next attempt's tokens. Never sleeps: the wait is returned through c->wake_at. */
static enum call_act step_acquire(struct call *c) {
    struct cx_router *r = c->r;
    if (canceled(c)) return cx__call_fail(c, CX_ECANCELED, "canceled"), ACT_DONE;
    uint64_t wait = 0;
    double est = r->tok ? token_estimate(c) : 0;
    struct cx_errinfo ei;
    int rc = cx__ratelimit_reserve(r->rl, est, UINT64_MAX, &wait, &ei);
    if (rc < 0) /* a fleet limit whose keys hold something foreign: the message names the key */
        return cx__call_fail(c, rc, ei.msg), ACT_DONE;
    c->req_taken = 1;
    c->tok_charged = est;
    c->limit_wait_ns += wait; /* cx --json's limiter_wait_s */
    uint64_t now = cx_now_ns();
    if (c->q.deadline != CX_DEADLINE_NONE && now + wait >= c->q.deadline) {
        refund(c);
        cx__call_fail(c, CX_ETIMEDOUT, "the deadline would pass waiting for the rate limiter");
        return ACT_DONE;
    }
    c->st = CS_SEND;
    if (wait == 0) return ACT_STEP;
    c->wake_at = now + wait;
    return ACT_WAIT;
}

/* Right before an attempt is sent: the shared pause holds every attempt, whenever its tokens
 * were reserved. Then the transfer is made. */
static enum call_act step_send(struct call *c) {
    struct cx_router *r = c->r;
    if (canceled(c)) {
        refund(c);
        return cx__call_fail(c, CX_ECANCELED, "canceled"), ACT_DONE;
    }
    uint64_t now = cx_now_ns(), pause = atomic_load(&r->paused_until);
    if (pause > now) {
        if (c->q.deadline != CX_DEADLINE_NONE && pause >= c->q.deadline) {
            refund(c);
            cx__call_fail(c, CX_ETIMEDOUT, "the deadline would pass during a Retry-After pause");
            return ACT_DONE;
        }
        atomic_fetch_add(&r->paused_sends, 1);
        c->wake_at = pause;
        return ACT_WAIT;
    }
    int rc = call_make_xfer(c);
    if (rc < 0) {
        refund(c);
        c->st = CS_DONE;
        c->rc = rc;
        return ACT_DONE;
    }
    c->req_taken = 0; /* the request token is spent on this attempt */
    c->st = CS_TRANSFER;
    return ACT_XFER;
}

static enum call_act step_answered(struct call *c) {
    uint64_t wait;
    int act = call_after(c, &wait);
    if (act == AFTER_OK) {
        c->st = CS_DONE;
        c->rc = 0;
        return ACT_DONE;
    }
    if (act == AFTER_FAIL) return ACT_DONE;
    if (wait == 0) {
        c->st = CS_ACQUIRE;
        return ACT_STEP;
    }
    c->st = CS_BACKOFF;
    c->wake_at = cx_now_ns() + wait;
    return ACT_WAIT;
}

/* The step function: moves c until its driver has something to do. */
static enum call_act call_step(struct call *c) {
    struct cx_router *r = c->r;
    for (;;) {
        enum call_act a;
        switch (c->st) {
        case CS_START:
            if (canceled(c)) return cx__call_fail(c, CX_ECANCELED, "canceled"), ACT_DONE;
            if (r->single_flight) {
                int rc = cx__sf_join(c);
                if (rc < 0) return cx__call_fail(c, CX_ENOMEM, "out of memory"), ACT_DONE;
                if (rc == 0) return ACT_PARKED;
            }
            c->st = CS_ACQUIRE;
            continue;
        case CS_ACQUIRE:
            a = step_acquire(c);
            if (a == ACT_STEP) continue; /* no wait: on to CS_SEND */
            return a;
        case CS_SEND:
            return step_send(c);
        case CS_TRANSFER:
            CX_ASSERT(!"call_step in CS_TRANSFER: the driver moves the bytes");
            return ACT_DONE;
        case CS_ANSWERED:
            a = step_answered(c);
            if (a == ACT_STEP) continue; /* retry at once: on to CS_ACQUIRE */
            return a;
        case CS_BACKOFF:
            c->st = CS_ACQUIRE;
            continue;
        case CS_FOLLOW:
            return ACT_PARKED;
        case CS_DONE:
            return ACT_DONE;
        }
    }
}

/* ---- the driver ---- */

static void on_timer(void *ud, int canceled_by_loop) {
    struct call *c = ud;
    if (canceled_by_loop) {
        refund(c);
        cx__call_fail(c, CX_ECANCELED, "the I/O loop shut down");
    }
    cx__call_drive(c);
}

static void on_xfer(struct cx_http_xfer *x, void *ud) {
    (void)x;
    struct call *c = ud;
    c->st = CS_ANSWERED;
    cx__call_drive(c);
}

void cx__call_drive(struct call *c) {
    struct cx_router *r = c->r;
    for (;;) {
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        switch (call_step(c)) {
        case ACT_STEP: /* call_step never returns it */
        case ACT_PARKED:
            return;
        case ACT_DONE:
            cx__sf_publish(c); /* a leader first completes its followers */
            cx__call_deliver(c);
            return;
        case ACT_WAIT:
            if (c->inline_io) {
                cx_gil_io_begin();
                cx_sleep_until(c->wake_at);
                cx_gil_io_end();
                continue;
            }
            if (cx_ioloop_timer(r->loop, c->wake_at, on_timer, c, &ei) == 0) return; /* c is the loop's */
            refund(c);
            cx__call_fail(c, CX_ECLOSED, "the I/O loop shut down");
            continue;
        case ACT_XFER:
            if (c->inline_io) {
                int rc = cx_http_client_perform(r->client, c->x, &ei);
                if (rc < 0) {
                    refund(c);
                    c->st = CS_DONE;
                    c->rc = cx__err(&c->ei, rc, "%s", ei.msg);
                } else {
                    c->st = CS_ANSWERED;
                }
                continue;
            }
            if (cx_ioloop_submit(r->loop, c->x, on_xfer, c, &ei) == 0) return; /* c is the loop's */
            refund(c);
            c->st = CS_DONE;
            c->rc = cx__err(&c->ei, ei.code < 0 ? ei.code : CX_ECLOSED, "%s", ei.msg);
            continue;
        }
    }
}

void cx__call_deliver(struct call *c) {
    if (c->blocking) {
        cx__mutex_lock(&c->wmu);
        c->wdone = 1;
        pthread_cond_broadcast(&c->wcond);
        cx__mutex_unlock(&c->wmu); /* the waiter owns c from here on */
        return;
    }
    struct cx_router_reply *rp = c->reply;
    rp->rc = c->rc;
    if (c->rc == 0) {
        rp->resp = c->resp;
        cx_llm_response_init(&c->resp); /* the reply took the strings */
    } else {
        rp->ei = c->ei;
    }
    struct cx_task_handle *h = c->h;
    cx_task_fn next = c->next;
    void *arg = c->next_arg;
    cx__call_release(c);
    cx__free(c);
    int rc = cx_task_resume(h, next, arg); /* queued: runs on a worker once the task returned */
    CX_ASSERT(rc == 0);
}
