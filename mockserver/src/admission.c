/*
 * admission.c - what happens to an API request once its body is in: the API key check, the
 * request's settings snapshot, the rate limiter (token bucket), the fault draw (scripted queue
 * first, then the seeded probabilities) and the immediate faults (status codes, stall,
 * disconnect), then a running slot or a place in the FIFO queue (max_running, max_queue). The
 * delay and the reply itself are stream.c's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fixtures.h"
#include "server_internal.h"

static int pick_fault(struct req *r)
{
    struct mock_server *s = r->srv;
    int fault = -1;
    pthread_mutex_lock(&s->mu);
    /* The first scripted entry aimed at this request (any, or its route and/or model); the
       entries aimed elsewhere keep their places. */
    for (size_t i = 0; i < s->script_n; i++) {
        struct script_item *it = &s->script[i];
        if ((it->route >= 0 && it->route != r->route) ||
            (it->model[0] && (!r->model || strcmp(it->model, r->model))))
            continue;
        fault = it->fault;
        if (--it->count == 0) {
            memmove(it, it + 1, (s->script_n - i - 1) * sizeof *s->script);
            s->script_n--;
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
    if (fault < 0) {
        fault = MOCK_FAULT_NONE;
        double sum = 0;
        for (int f = 1; f < MOCK_FAULT_COUNT; f++)
            sum += r->set.fault_prob[f];
        if (sum > 0) {
            uint32_t n = atomic_fetch_add_explicit(&s->attempts[r->hash & (ATTEMPT_SLOTS - 1)], 1,
                                                   RLX);
            double u = mock__unit(r->set.seed ^ mock__mix64(r->hash) ^
                                  ((uint64_t)(n + 1) * 0x2545f4914f6cdd1dull));
            double acc = 0;
            for (int f = 1; f < MOCK_FAULT_COUNT; f++) {
                acc += r->set.fault_prob[f];
                if (u < acc) {
                    fault = f;
                    break;
                }
            }
        }
    }
    if (fault != MOCK_FAULT_NONE)
        atomic_fetch_add_explicit(&s->stats.faults[fault], 1, RLX);
    return fault;
}

/* Token bucket; returns 0 when admitted, else the ms until a token is available. */
static double rate_check(struct req *r)
{
    struct mock_server *s = r->srv;
    double rps = r->set.rate_rps;
    if (rps <= 0)
        return 0;
    double burst = r->set.rate_burst > 0 ? r->set.rate_burst : (rps > 1 ? rps : 1);
    double wait = 0;
    uint64_t now = mock__now_ns();
    pthread_mutex_lock(&s->mu);
    if (s->rl_last == 0) {
        s->rl_tokens = burst;
    } else {
        s->rl_tokens += (double)(now - s->rl_last) / 1e9 * rps;
        if (s->rl_tokens > burst)
            s->rl_tokens = burst;
    }
    s->rl_last = now;
    if (s->rl_tokens >= 1)
        s->rl_tokens -= 1;
    else
        wait = (1 - s->rl_tokens) / rps * 1000.0;
    pthread_mutex_unlock(&s->mu);
    return wait;
}

void mock__publish_counts(struct mock_server *s)
{
    atomic_store_explicit(&s->running_pub, s->running, RLX);
    atomic_store_explicit(&s->queued_pub, s->queued, RLX);
    unsigned m = atomic_load_explicit(&s->stats.queued_max, RLX);
    if (s->queued > m)
        atomic_store_explicit(&s->stats.queued_max, s->queued, RLX);
}

const char *mock__auth_key(struct req *r)
{
    const char *a = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (a && !strncasecmp(a, "Bearer ", 7))
        return a + 7;
    if (r->api == MOCK_API_ANTHROPIC || r->route == MOCK_ROUTE_MODELS)
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-api-key");
    return NULL;
}

enum MHD_Result mock__api_request(struct req *r)
{
    struct mock_server *s = r->srv;
    int oa = r->api == MOCK_API_OPENAI;
    r->is_api = 1;
    pthread_mutex_lock(&s->mu);
    r->set = s->set;
    pthread_mutex_unlock(&s->mu);
    mock__settings_timing(&r->set, r->route, &r->timing);
    if (r->set.required_key[0]) {
        const char *k = mock__auth_key(r);
        if (!k || strcmp(k, r->set.required_key)) {
            if (oa)
                return mock__send_error(r, 401, "invalid_request_error", k ?
                                  "Incorrect API key provided. You can find your API key at "
                                  "https://platform.openai.com/account/api-keys." :
                                  "You didn't provide an API key. You need to provide your API "
                                  "key in an Authorization header using Bearer auth (i.e. "
                                  "Authorization: Bearer YOUR_KEY).", NULL,
                                  k ? "invalid_api_key" : NULL, -1);
            return mock__send_error(r, 401, "authentication_error",
                              k ? "invalid x-api-key" : "x-api-key header is required", NULL,
                              NULL, -1);
        }
    }
    if (!oa && !MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "anthropic-version"))
        return mock__bad_request(r, "anthropic-version: header is required", NULL, NULL);
    if (r->too_big) {
        char m[160];
        snprintf(m, sizeof m, "Request body too large: the limit is %zu bytes.", r->set.max_body);
        return mock__send_error(r, 413, oa ? "invalid_request_error" : "request_too_large", m, NULL,
                          oa ? "request_too_large" : NULL, -1);
    }
    struct perr pe;
    int rc = mock__parse_api(r, &pe);
    if (rc == -1)
        return mock__bad_request(r, pe.msg, pe.param, pe.code);
    if (rc < 0)
        return mock__send_error(r, 500, oa ? "server_error" : "api_error", "mock server out of memory",
                          NULL, NULL, -1);
    r->hash = mock__fnv1a64(r->body.p, r->body.len) ^ ((uint64_t)r->route << 56);
    enum MHD_Result fx_res; /* fixtures: answered (error, strict miss) or proxied (record) */
    if (mock__fx_route(r, &fx_res))
        return fx_res;
    mock__buf_free(&r->body);

    double wait = rate_check(r);
    if (wait > 0) {
        atomic_fetch_add_explicit(&s->stats.rate_limited, 1, RLX);
        return mock__send_error(r, 429, oa ? "requests" : "rate_limit_error",
                          oa ? "Rate limit reached for requests (mock server rate_rps)."
                             : "Number of requests has exceeded your rate limit (mock server "
                               "rate_rps).", NULL, oa ? "rate_limit_exceeded" : NULL, wait);
    }
    r->fault = r->fxr && r->fxr->fault >= 0 ? r->fxr->fault : pick_fault(r);
    switch (r->fault) {
    case MOCK_FAULT_429:
        return mock__send_error(r, 429, oa ? "requests" : "rate_limit_error",
                          oa ? "Rate limit reached for requests (injected fault)."
                             : "Number of requests has exceeded your rate limit (injected fault).",
                          NULL, oa ? "rate_limit_exceeded" : NULL, r->set.retry_after_ms);
    case MOCK_FAULT_500:
        return mock__send_error(r, 500, oa ? "server_error" : "api_error",
                          "The server had an error while processing your request (injected "
                          "fault).", NULL, NULL, -1);
    case MOCK_FAULT_502:
        return mock__send_error(r, 502, oa ? "server_error" : "api_error",
                          "Bad gateway (injected fault).", NULL, NULL, -1);
    case MOCK_FAULT_503:
        return mock__send_error(r, 503, oa ? "server_error" : "api_error",
                          "The engine is currently overloaded, please try again later (injected "
                          "fault).", NULL, NULL, r->set.retry_after_ms);
    case MOCK_FAULT_529:
        if (oa)
            return mock__send_error(r, 503, "server_error", "The engine is currently overloaded, "
                              "please try again later (injected fault).", NULL, NULL,
                              r->set.retry_after_ms);
        return mock__send_error(r, 529, "overloaded_error", "Overloaded (injected fault)", NULL, NULL,
                          r->set.retry_after_ms);
    case MOCK_FAULT_STALL:
        return mock__suspend_until(r, mock__now_ns() + (uint64_t)(r->set.stall_ms * 1e6), ST_CLOSE);
    case MOCK_FAULT_DISCONNECT:
        if (!r->stream) {
            r->scale = r->set.time_scale;
            return mock__suspend_until(r, mock__now_ns() + mock__scaled_ns(r, r->set.disconnect_ms),
                                 ST_CLOSE);
        }
        break;
    default:
        break;
    }

    /* Admission: a running slot, or the queue. */
    pthread_mutex_lock(&s->mu);
    unsigned maxr = r->set.max_running;
    if (maxr == 0 || s->running < maxr) {
        s->running++;
        r->has_slot = 1;
        r->running_at_admit = s->running;
        mock__publish_counts(s);
        pthread_mutex_unlock(&s->mu);
        return mock__start_delay(r);
    }
    if (r->set.max_queue && s->queued >= r->set.max_queue) {
        pthread_mutex_unlock(&s->mu);
        if (oa)
            return mock__send_error(r, 503, "server_error", "The server is overloaded (mock max_queue "
                              "reached).", NULL, NULL, r->set.retry_after_ms);
        return mock__send_error(r, 529, "overloaded_error", "Overloaded (mock max_queue reached)", NULL,
                          NULL, r->set.retry_after_ms);
    }
    pthread_mutex_unlock(&s->mu);
    r->state = ST_WAIT_SLOT;
    MHD_suspend_connection(r->conn);
    int resume_now = 0;
    pthread_mutex_lock(&s->mu);
    if (s->stopping_mu) {
        resume_now = 1;
    } else if (s->running < r->set.max_running) {
        s->running++;
        r->has_slot = 1;
        r->running_at_admit = s->running;
        resume_now = 1;
    } else {
        r->qnext = NULL;
        if (s->q_tail)
            s->q_tail->qnext = r;
        else
            s->q_head = r;
        s->q_tail = r;
        s->queued++;
    }
    mock__publish_counts(s);
    pthread_mutex_unlock(&s->mu);
    if (resume_now)
        MHD_resume_connection(r->conn);
    return MHD_YES;
}
