/*
 * server.c - the mock LLM server on libmicrohttpd: routing, auth, request parsing and
 * validation for the OpenAI and Anthropic APIs, admission (max_running queue, rate limit),
 * fault injection, delayed and streamed replies, the admin endpoints, start and stop. Reply
 * text comes from content.c, wire encoding from proto.c, settings from settings.c, statistics
 * from stats.c; this file decides what happens to each request and when.
 *
 * DESIGN
 * - Threads: libmicrohttpd runs `threads` epoll workers (MHD_USE_EPOLL_INTERNAL_THREAD with a
 *   thread pool); every callback below runs on one of them. One timer thread (timer.c) resumes
 *   suspended connections. No thread ever sleeps for a request.
 * - A delayed request: the access handler computes its deadline, calls MHD_suspend_connection
 *   and only then gives the timer the deadline (so the resume can never come before the
 *   suspend); the timer calls MHD_resume_connection, MHD calls the handler again, which answers.
 *   A stream's content reader does the same between tokens: when the next frame is not due it
 *   suspends, arms the timer and returns 0.
 * - max_running: srv->running counts API requests holding a slot (always counted, it also feeds
 *   load_factor); past max_running a request suspends and waits in a FIFO (srv->q_head). The
 *   completion callback of a slot holder hands its slot to the queue's head and resumes it.
 *   MHD functions are never called while holding srv->mu (MHD's own locks are taken inside
 *   them and around the completion callback, which takes srv->mu).
 * - Shutdown: mock_server_stop sets `stopping` under mu, resumes every queued request, flushes
 *   and joins the timer (resuming every suspended connection), then MHD_stop_daemon. A resumed
 *   request that sees `stopping` closes its connection (handler returns MHD_NO, readers return
 *   END_WITH_ERROR); a request that suspends after the flush finds the timer closed (or
 *   `stopping` set under mu) and resumes itself. MHD then runs the completion callback of every
 *   connection, which frees each request: nothing leaks and no connection stays suspended.
 * - Determinism: a request's latency, fault draw and reply text are functions of the seed and
 *   the FNV-1a hash of its body (plus, for faults, how often that body was seen), never of a
 *   shared random generator.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "content.h"
#include "mock_internal.h"

#define ATTEMPT_SLOTS 65536u
#define RLX memory_order_relaxed

struct script_item {
    unsigned count;
    int fault;
};

struct req;

struct mock_server {
    struct MHD_Daemon *d;
    struct mock_timer *timer;
    char url[96];
    int port;
    pthread_mutex_t mu;
    struct mock_settings set;              /* guarded by mu */
    struct script_item *script;            /* guarded by mu */
    size_t script_n, script_cap;           /* guarded by mu */
    unsigned running, queued;              /* guarded by mu */
    struct req *q_head, *q_tail;           /* guarded by mu */
    double rl_tokens;                      /* guarded by mu */
    uint64_t rl_last;                      /* guarded by mu */
    int stopping_mu;                       /* guarded by mu */
    _Atomic int stopping;
    _Atomic size_t max_body;
    _Atomic unsigned running_pub, queued_pub;
    _Atomic uint64_t seq;
    _Atomic uint32_t *attempts;            /* ATTEMPT_SLOTS counters, by body hash */
    struct mock_stats stats;
};

enum { ST_NEW, ST_BODY, ST_WAIT_SLOT, ST_DELAY, ST_CLOSE, ST_ANSWERED };

struct req {
    struct mock_server *srv;
    struct MHD_Connection *conn;
    int route, api, state, is_api, fault, has_slot, stream, include_usage, rst;
    unsigned status;
    uint64_t t_arrive, t_admit, configured_ns, hash;
    struct mock_buf body;
    int too_big;
    struct mock_settings set;   /* snapshot for API requests */
    struct mock_timing timing;
    double scale;
    long long max_tokens;
    char *model, *system, *prompt;
    unsigned prompt_tokens;
    unsigned running_at_admit;
    /* reply */
    struct mock_content content;
    size_t *starts;
    struct mock_reply reply;
    /* non-streaming partial body (reset/cut/truncate faults) */
    char *pbody;
    size_t plen, pcut;
    /* stream state (touched only by the content reader) */
    size_t frame, nframes, head, foff;
    struct mock_buf fb;
    uint64_t next_due, stream_t0, disc_at, last_tok;
    int end_now;
    struct req *qnext;          /* guarded by srv->mu while queued */
};

/* ------------------------------------------------------------------------------------------ */
/* responses                                                                                   */

static void add_common_headers(struct req *r, struct MHD_Response *resp)
{
    if (r->is_api) {
        char id[40];
        snprintf(id, sizeof id, "req_mock_%016llx",
                 (unsigned long long)(r->hash ^ atomic_fetch_add_explicit(&r->srv->seq, 1, RLX)));
        MHD_add_response_header(resp, r->api == MOCK_API_ANTHROPIC ? "request-id" : "x-request-id",
                                id);
    }
}

_Thread_local int mock__server_thread;

int mock_thread_is_server(void) { return mock__server_thread; }

static enum MHD_Result mock__queue(struct req *r, unsigned status, struct MHD_Response *resp,
                             const char *ctype)
{
    if (!resp)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    add_common_headers(r, resp);
    r->status = status;
    r->state = ST_ANSWERED;
    enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* body is taken (freed by MHD, or here when the response cannot be made). */
static enum MHD_Result mock__send_body(struct req *r, unsigned status, const char *ctype, char *body,
                                 size_t len)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    return mock__queue(r, status, resp, ctype);
}

static enum MHD_Result mock__send_static(struct req *r, unsigned status, const char *ctype,
                                   const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    return mock__queue(r, status, resp, ctype);
}

static void add_retry_headers(struct req *r, struct MHD_Response *resp, double retry_ms,
                              int ratelimit)
{
    char v[64];
    snprintf(v, sizeof v, "%.0f", ceil(retry_ms / 1000.0));
    MHD_add_response_header(resp, "retry-after", v);
    snprintf(v, sizeof v, "%.0f", ceil(retry_ms));
    MHD_add_response_header(resp, "retry-after-ms", v);
    if (!ratelimit)
        return;
    unsigned limit = r->set.rate_rps > 0 ? (unsigned)ceil(r->set.rate_rps * 60) : 60;
    char lim[32];
    snprintf(lim, sizeof lim, "%u", limit);
    if (r->api == MOCK_API_OPENAI) {
        char reset[32];
        snprintf(reset, sizeof reset, "%.3fs", retry_ms / 1000.0);
        MHD_add_response_header(resp, "x-ratelimit-limit-requests", lim);
        MHD_add_response_header(resp, "x-ratelimit-remaining-requests", "0");
        MHD_add_response_header(resp, "x-ratelimit-reset-requests", reset);
        MHD_add_response_header(resp, "x-ratelimit-limit-tokens", "1000000");
        MHD_add_response_header(resp, "x-ratelimit-remaining-tokens", "0");
        MHD_add_response_header(resp, "x-ratelimit-reset-tokens", reset);
    } else {
        char reset[40];
        time_t t = time(NULL) + (time_t)ceil(retry_ms / 1000.0);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(reset, sizeof reset, "%Y-%m-%dT%H:%M:%SZ", &tm);
        MHD_add_response_header(resp, "anthropic-ratelimit-requests-limit", lim);
        MHD_add_response_header(resp, "anthropic-ratelimit-requests-remaining", "0");
        MHD_add_response_header(resp, "anthropic-ratelimit-requests-reset", reset);
        MHD_add_response_header(resp, "anthropic-ratelimit-tokens-limit", "1000000");
        MHD_add_response_header(resp, "anthropic-ratelimit-tokens-remaining", "0");
        MHD_add_response_header(resp, "anthropic-ratelimit-tokens-reset", reset);
    }
}

/* An error in the route's API shape. retry_ms >= 0 adds Retry-After (and rate-limit headers
 * for 429). */
static enum MHD_Result mock__send_error(struct req *r, unsigned status, const char *type,
                                  const char *message, const char *param, const char *code,
                                  double retry_ms)
{
    size_t len;
    char *body = mock__proto_error(r->api, type, message, param, code, &len);
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (retry_ms >= 0)
        add_retry_headers(r, resp, retry_ms, status == 429);
    if (r->api == MOCK_API_ANTHROPIC && status == 529)
        MHD_add_response_header(resp, "x-should-retry", "true");
    return mock__queue(r, status, resp, "application/json");
}

static enum MHD_Result mock__bad_request(struct req *r, const char *msg, const char *param,
                                   const char *code)
{
    return mock__send_error(r, 400, "invalid_request_error", msg, param, code, -1);
}

/* ------------------------------------------------------------------------------------------ */
/* timers and suspension                                                                       */

static void resume_cb(void *arg)
{
    struct req *r = arg;
    MHD_resume_connection(r->conn);
}

/* Suspends r's connection until deadline; the handler runs again in `state`. */
static enum MHD_Result mock__suspend_until(struct req *r, uint64_t deadline, int state)
{
    r->state = state;
    MHD_suspend_connection(r->conn);
    if (mock__timer_add(r->srv->timer, deadline, resume_cb, r) < 0)
        MHD_resume_connection(r->conn); /* stopping or out of memory: go on at once */
    return MHD_YES;
}

static void mock__set_linger0(struct req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        struct linger lg = {1, 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
}

/* Ends the connection from inside a content reader, just before it returns
 * MHD_CONTENT_READER_END_WITH_ERROR. MHD 0.9.75 then marks the connection closed but, in epoll
 * mode, only releases the socket on its next event; so we make one: rst sends a TCP reset now
 * (connect(AF_UNSPEC) disconnects a Linux TCP socket with RST), otherwise shutdown() sends FIN
 * and makes the socket readable. Either way the client sees the body end early. */
static void end_socket(struct req *r, int rst)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    if (rst) {
        struct linger lg = {1, 0};
        struct sockaddr sa;
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        memset(&sa, 0, sizeof sa);
        sa.sa_family = AF_UNSPEC;
        if (connect(ci->connect_fd, &sa, sizeof sa) == 0)
            return;
    }
    shutdown(ci->connect_fd, SHUT_RDWR);
}

/* ------------------------------------------------------------------------------------------ */
/* replies                                                                                     */

static uint64_t mock__scaled_ns(const struct req *r, double ms)
{
    double ns = ms * r->scale * 1e6;
    if (!(ns > 0))
        return 0;
    if (ns > 1e15)
        ns = 1e15;
    return (uint64_t)ns;
}

static uint64_t itl_gap_ns(const struct req *r, unsigned i)
{
    double ms = r->timing.itl_ms;
    if (r->timing.itl_jitter > 0)
        ms *= 1 + r->timing.itl_jitter * (2 * mock__unit(r->set.seed ^ r->hash ^
                                                          (0x1f3d5b79ull * (i + 1))) - 1);
    return mock__scaled_ns(r, ms);
}

static ssize_t partial_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    mock__server_thread = 1;
    struct req *r = cls;
    if (pos < r->pcut) {
        size_t n = r->pcut - (size_t)pos;
        if (n > max)
            n = max;
        memcpy(buf, r->pbody + pos, n);
        return (ssize_t)n;
    }
    end_socket(r, r->rst);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void malformed_frame(struct req *r)
{
    if (r->api == MOCK_API_ANTHROPIC)
        mock__buf_str(&r->fb, "event: content_block_delta\ndata: {this is not json\n\n");
    else
        mock__buf_str(&r->fb, "data: {this is not json\n\n");
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    mock__server_thread = 1;
    struct req *r = cls;
    struct mock_server *s = r->srv;
    (void)pos;
    if (atomic_load(&s->stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t w = 0;
    uint64_t now = mock__now_ns();
    for (;;) {
        if (r->foff < r->fb.len) {
            size_t n = r->fb.len - r->foff;
            if (n > max - w)
                n = max - w;
            memcpy(buf + w, r->fb.p + r->foff, n);
            w += n;
            r->foff += n;
            if (w == max)
                return (ssize_t)w;
            continue;
        }
        if (r->end_now) {
            if (w)
                return (ssize_t)w;
            end_socket(r, r->rst);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (r->frame >= r->nframes)
            return w ? (ssize_t)w : MHD_CONTENT_READER_END_OF_STREAM;
        if (r->fault == MOCK_FAULT_DISCONNECT && now >= r->disc_at) {
            r->end_now = 1;
            continue;
        }
        size_t k = r->frame;
        unsigned ntok = r->reply.ntok, mid = ntok / 2;
        r->fb.len = 0;
        r->foff = 0;
        if (k >= r->head && k < r->head + ntok) {
            unsigned i = (unsigned)(k - r->head);
            if ((r->fault == MOCK_FAULT_CUT && i >= r->set.cut_after) ||
                (r->fault == MOCK_FAULT_RESET && i >= mid)) {
                r->end_now = 1;
                r->rst = r->fault == MOCK_FAULT_RESET;
                continue;
            }
            uint64_t due = r->next_due;
            if (r->fault == MOCK_FAULT_DISCONNECT && i >= mid)
                due = r->disc_at; /* hold the second half until the disconnect */
            if (due > now) {
                if (w)
                    return (ssize_t)w;
                uint64_t wake = due;
                if (r->fault == MOCK_FAULT_DISCONNECT && r->disc_at < wake)
                    wake = r->disc_at;
                MHD_suspend_connection(r->conn);
                if (mock__timer_add(s->timer, wake, resume_cb, r) < 0)
                    MHD_resume_connection(r->conn);
                return 0;
            }
            if (i == 0)
                mock__hist_add_ns(&s->stats.h[MOCK_H_TTFT], now - r->t_arrive);
            else
                mock__hist_add_ns(&s->stats.h[MOCK_H_ITL], now - r->last_tok);
            r->last_tok = now;
            r->next_due += itl_gap_ns(r, i + 1);
            if (r->fault == MOCK_FAULT_MALFORMED && i == mid) {
                malformed_frame(r);
            } else {
                mock__proto_frame(&r->fb, &r->reply, k, r->fault == MOCK_FAULT_CORRUPT && i == mid);
                if (r->fault == MOCK_FAULT_DUPLICATE && i == mid)
                    mock__proto_frame(&r->fb, &r->reply, k, 0);
            }
        } else {
            mock__proto_frame(&r->fb, &r->reply, k, 0);
            if (r->fault == MOCK_FAULT_TRUNCATE && k + 1 == r->nframes) {
                r->fb.len /= 2;
                r->end_now = 1;
            }
        }
        r->frame++;
        if (r->fb.oom)
            return w ? (ssize_t)w : MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void make_id(struct req *r)
{
    uint64_t n = atomic_fetch_add_explicit(&r->srv->seq, 1, RLX);
    uint64_t v = mock__mix64(r->hash ^ (n * 0x9e3779b97f4a7c15ull));
    if (r->api == MOCK_API_OPENAI)
        snprintf(r->reply.id, sizeof r->reply.id, "chatcmpl-mock%016llx", (unsigned long long)v);
    else
        snprintf(r->reply.id, sizeof r->reply.id, "msg_mock%016llx", (unsigned long long)v);
}

/* Generates the reply (text, pieces, and the whole body when not streaming) before the delay,
 * so the moment it is due costs only the send: a burst of replies due together then drains as
 * fast as the burst of requests that caused it arrived. 0, or -1 when out of memory. */
static int prepare(struct req *r)
{
    if (mock_content_generate(r->system, r->prompt, r->set.seed, r->set.pad_to,
                              r->fault == MOCK_FAULT_DANGEROUS, &r->content) < 0)
        return -1;
    free(r->system);
    free(r->prompt);
    r->system = r->prompt = NULL;
    const char *text = r->content.text ? r->content.text : "";
    size_t len = strlen(text);
    /* content.h: completion_tokens is exactly the number of pieces mock_content_split makes. */
    size_t n = r->content.completion_tokens;
    r->starts = malloc((n ? n : 1) * sizeof *r->starts);
    if (!r->starts)
        return -1;
    n = mock_content_split(text, len, r->starts, n);
    struct mock_reply *rp = &r->reply;
    rp->api = r->api;
    make_id(r);
    rp->model = r->model ? r->model : r->set.model;
    rp->text = text;
    rp->text_len = len;
    rp->starts = r->starts;
    rp->ntok = (unsigned)n;
    if (r->max_tokens > 0 && (long long)n > r->max_tokens) {
        rp->ntok = (unsigned)r->max_tokens;
        rp->text_len = r->starts[rp->ntok];
        rp->hit_max_tokens = 1;
    }
    rp->prompt_tokens = r->prompt_tokens;
    rp->include_usage = r->include_usage;
    rp->created = (long long)time(NULL);
    if (r->stream)
        return 0;
    r->pbody = mock__proto_body(rp, &r->plen);
    return r->pbody ? 0 : -1;
}

static enum MHD_Result oom_reply(struct req *r)
{
    return mock__send_error(r, 500, r->api == MOCK_API_OPENAI ? "server_error" : "api_error",
                      "mock server out of memory", NULL, NULL, -1);
}

/* The reply is due: queue it (whole or as a stream). prepare() has run. */
static enum MHD_Result mock__answer(struct req *r)
{
    struct mock_server *s = r->srv;
    uint64_t now = mock__now_ns();
    uint64_t delivered = now - r->t_arrive, queued = r->t_admit - r->t_arrive;
    mock__hist_add_ns(&s->stats.h[MOCK_H_DELIVERED], delivered);
    int64_t err = (int64_t)delivered - (int64_t)queued - (int64_t)r->configured_ns;
    mock__hist_add_ns(&s->stats.h[MOCK_H_ERROR], (uint64_t)(err < 0 ? -err : err));

    if (r->stream) {
        r->head = mock__proto_head_frames(&r->reply);
        r->nframes = mock__proto_frame_count(&r->reply);
        r->stream_t0 = now;
        r->next_due = now;
        r->disc_at = now + mock__scaled_ns(r, r->set.disconnect_ms);
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, r, NULL);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        return mock__queue(r, 200, resp, "text/event-stream; charset=utf-8");
    }
    char *body = r->pbody;
    size_t blen = r->plen;
    switch (r->fault) {
    case MOCK_FAULT_RESET:
    case MOCK_FAULT_CUT:
    case MOCK_FAULT_TRUNCATE: {
        r->pcut = blen / 2; /* r->pbody stays ours: partial_reader reads it */
        r->rst = r->fault != MOCK_FAULT_TRUNCATE;
        struct MHD_Response *resp =
            MHD_create_response_from_callback(blen, 4096, partial_reader, r, NULL);
        if (!resp)
            return MHD_NO;
        return mock__queue(r, 200, resp, "application/json");
    }
    case MOCK_FAULT_MALFORMED:
    case MOCK_FAULT_CORRUPT:
        blen = blen / 2; /* a JSON document cut in half is never valid */
        /* fall through */
    default:
        r->pbody = NULL; /* handed to MHD */
        return mock__send_body(r, 200, "application/json", body, blen);
    }
}

/* Admitted: sample the delay and wait for it (or answer now). */
static enum MHD_Result mock__start_delay(struct req *r)
{
    struct mock_server *s = r->srv;
    r->t_admit = mock__now_ns();
    mock__hist_add_ns(&s->stats.h[MOCK_H_QUEUED], r->t_admit - r->t_arrive);
    double centre = r->timing.latency_ms;
    if (r->stream && r->timing.ttft_ms >= 0)
        centre = r->timing.ttft_ms;
    double ms = mock__sample_ms(&r->timing, centre, r->set.max_latency_ms,
                                r->set.seed ^ r->hash ^ 0xa5a5a5a5ull);
    double stretch = 1.0;
    if (r->set.load_factor > 0 && r->running_at_admit > 1)
        stretch += r->set.load_factor * (double)(r->running_at_admit - 1);
    r->scale = r->set.time_scale * stretch;
    r->configured_ns = mock__scaled_ns(r, ms);
    mock__hist_add_ns(&s->stats.h[MOCK_H_CONFIGURED], r->configured_ns);
    if (prepare(r) < 0)
        return oom_reply(r);
    if (r->configured_ns < 20000)
        return mock__answer(r);
    return mock__suspend_until(r, r->t_admit + r->configured_ns, ST_DELAY);
}

/* ------------------------------------------------------------------------------------------ */
/* request parsing                                                                             */

struct perr {
    const char *msg, *param, *code;
    char buf[200];
};

static const char *json_type(const cJSON *j)
{
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsObject(j))
        return "an object";
    return "null";
}

/* Appends the text of a content value (string, null, or array of text parts). -1: bad type. */
static int content_text(const cJSON *c, struct mock_buf *out)
{
    if (!c || cJSON_IsNull(c))
        return 0;
    if (cJSON_IsString(c)) {
        mock__buf_str(out, c->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(c))
        return -1;
    for (const cJSON *p = c->child; p; p = p->next) {
        if (!cJSON_IsObject(p))
            return -1;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(t)) {
            if (out->len)
                mock__buf_str(out, "\n");
            mock__buf_str(out, t->valuestring);
        }
    }
    return 0;
}

static char *mock__buf_take(struct mock_buf *b)
{
    if (b->oom) {
        mock__buf_free(b);
        return NULL;
    }
    if (!b->p) {
        char *e = malloc(1);
        if (e)
            *e = 0;
        return e;
    }
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* Parses and validates r->body for r->api. 0, -1 (bad request: e filled) or -2 (OOM). */
static int mock__parse_api(struct req *r, struct perr *e)
{
    int oa = r->api == MOCK_API_OPENAI;
    memset(e, 0, sizeof *e);
    cJSON *j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        e->msg = oa ? "We could not parse the JSON body of your request. (HINT: This likely means "
                      "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                      "payload, but what was sent was not valid JSON.)"
                    : "There was an error parsing the body: the request body is not a valid JSON "
                      "object";
        return -1;
    }
    int rc = -1;
    struct mock_buf sys = {0}, prompt = {0};
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(j, "stream");
    const cJSON *maxt = cJSON_GetObjectItemCaseSensitive(j, oa ? "max_completion_tokens"
                                                               : "max_tokens");
    if (oa && !maxt)
        maxt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    if (!model) {
        e->msg = oa ? "you must provide a model parameter" : "model: Field required";
        goto out;
    }
    if (!cJSON_IsString(model)) {
        snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'model': expected a string, but "
                 "got %s instead." : "model: Input should be a valid string (got %s)",
                 json_type(model));
        e->msg = e->buf;
        e->param = "model";
        e->code = "invalid_type";
        goto out;
    }
    if (!msgs) {
        e->msg = oa ? "Missing required parameter: 'messages'." : "messages: Field required";
        e->param = "messages";
        e->code = "missing_required_parameter";
        goto out;
    }
    if (!cJSON_IsArray(msgs)) {
        snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'messages': expected an array of "
                 "objects, but got %s instead." : "messages: Input should be a valid list (got %s)",
                 json_type(msgs));
        e->msg = e->buf;
        e->param = "messages";
        e->code = "invalid_type";
        goto out;
    }
    if (!msgs->child && oa) {
        e->msg = "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                 "got an empty array instead.";
        e->param = "messages";
        e->code = "empty_array";
        goto out;
    }
    if (!oa && !maxt) {
        e->msg = "max_tokens: Field required";
        e->param = "max_tokens";
        goto out;
    }
    if (maxt && !cJSON_IsNull(maxt)) {
        if (!cJSON_IsNumber(maxt) || maxt->valuedouble != floor(maxt->valuedouble) ||
            maxt->valuedouble < 1) {
            snprintf(e->buf, sizeof e->buf, oa ? "Invalid value for '%s': expected a positive "
                     "integer." : "%s: Input should be a valid positive integer",
                     maxt->string);
            e->msg = e->buf;
            e->param = maxt->string;
            e->code = "invalid_type";
            goto out;
        }
        r->max_tokens = maxt->valuedouble > 1e9 ? 1000000000LL : (long long)maxt->valuedouble;
    }
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'stream': expected a boolean, "
                     "but got %s instead." : "stream: Input should be a valid boolean (got %s)",
                     json_type(stream));
            e->msg = e->buf;
            e->param = "stream";
            e->code = "invalid_type";
            goto out;
        }
        r->stream = cJSON_IsTrue(stream);
    }
    if (oa && r->stream) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
        if (so && !cJSON_IsNull(so)) {
            if (!cJSON_IsObject(so)) {
                e->msg = "Invalid type for 'stream_options': expected an object.";
                e->param = "stream_options";
                e->code = "invalid_type";
                goto out;
            }
            r->include_usage =
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
        }
    }
    if (!oa) {
        const cJSON *sy = cJSON_GetObjectItemCaseSensitive(j, "system");
        if (sy && content_text(sy, &sys) < 0) {
            e->msg = "system: Input should be a valid string or a list of text blocks";
            e->param = "system";
            goto out;
        }
    }
    unsigned tokens = 0, idx = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, idx++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(e->buf, sizeof e->buf, oa ? "Missing required parameter: 'messages[%u].role'."
                     : "messages.%u.role: Field required", idx);
            e->msg = e->buf;
            e->param = "messages";
            e->code = "missing_required_parameter";
            goto out;
        }
        const char *rs = role->valuestring;
        int ok = oa ? (!strcmp(rs, "system") || !strcmp(rs, "developer") || !strcmp(rs, "user") ||
                       !strcmp(rs, "assistant") || !strcmp(rs, "tool") || !strcmp(rs, "function"))
                    : (!strcmp(rs, "user") || !strcmp(rs, "assistant"));
        if (!ok) {
            if (oa)
                snprintf(e->buf, sizeof e->buf, "Invalid value: '%.40s'. Supported values are: "
                         "'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                         rs);
            else
                snprintf(e->buf, sizeof e->buf, "messages.%u.role: Input should be 'user' or "
                         "'assistant'", idx);
            e->msg = e->buf;
            e->param = "messages";
            e->code = "invalid_value";
            goto out;
        }
        if (!oa && !content) {
            snprintf(e->buf, sizeof e->buf, "messages.%u.content: Field required", idx);
            e->msg = e->buf;
            goto out;
        }
        struct mock_buf t = {0};
        if (content_text(content, &t) < 0) {
            mock__buf_free(&t);
            snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'messages[%u].content': "
                     "expected a string or an array of content parts." :
                     "messages.%u.content: Input should be a valid string or list of blocks", idx);
            e->msg = e->buf;
            e->param = "messages";
            e->code = "invalid_type";
            goto out;
        }
        tokens += mock_count_tokens(t.p, t.len);
        if (oa && (!strcmp(rs, "system") || !strcmp(rs, "developer"))) {
            if (sys.len)
                mock__buf_str(&sys, "\n");
            mock__buf_add(&sys, t.p ? t.p : "", t.len);
        } else if (!strcmp(rs, "user")) {
            prompt.len = 0;
            mock__buf_add(&prompt, t.p ? t.p : "", t.len);
        }
        mock__buf_free(&t);
    }
    if (!oa)
        tokens += mock_count_tokens(sys.p, sys.len);
    r->prompt_tokens = tokens ? tokens : 1;
    r->model = strdup(model->valuestring);
    r->system = mock__buf_take(&sys);
    r->prompt = mock__buf_take(&prompt);
    rc = (r->model && r->system && r->prompt) ? 0 : -2;
out:
    mock__buf_free(&sys);
    mock__buf_free(&prompt);
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* API requests                                                                                */

static int pick_fault(struct req *r)
{
    struct mock_server *s = r->srv;
    int fault = -1;
    pthread_mutex_lock(&s->mu);
    if (s->script_n) {
        fault = s->script[0].fault;
        if (--s->script[0].count == 0) {
            memmove(s->script, s->script + 1, (s->script_n - 1) * sizeof *s->script);
            s->script_n--;
        }
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

static void mock__publish_counts(struct mock_server *s)
{
    atomic_store_explicit(&s->running_pub, s->running, RLX);
    atomic_store_explicit(&s->queued_pub, s->queued, RLX);
    unsigned m = atomic_load_explicit(&s->stats.queued_max, RLX);
    if (s->queued > m)
        atomic_store_explicit(&s->stats.queued_max, s->queued, RLX);
}

static const char *mock__auth_key(struct req *r)
{
    const char *a = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (a && !strncasecmp(a, "Bearer ", 7))
        return a + 7;
    if (r->api == MOCK_API_ANTHROPIC || r->route == MOCK_ROUTE_MODELS)
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "x-api-key");
    return NULL;
}

static enum MHD_Result mock__api_request(struct req *r)
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
    mock__buf_free(&r->body);

    double wait = rate_check(r);
    if (wait > 0) {
        atomic_fetch_add_explicit(&s->stats.rate_limited, 1, RLX);
        return mock__send_error(r, 429, oa ? "requests" : "rate_limit_error",
                          oa ? "Rate limit reached for requests (mock server rate_rps)."
                             : "Number of requests has exceeded your rate limit (mock server "
                               "rate_rps).", NULL, oa ? "rate_limit_exceeded" : NULL, wait);
    }
    r->fault = pick_fault(r);
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

/* ------------------------------------------------------------------------------------------ */
/* other routes                                                                                */

#define MODELS_JSON \
    "{\"object\":\"list\",\"data\":[%s],\"has_more\":false,\"first_id\":\"%s\",\"last_id\":\"%s\"}"

static void model_obj(struct mock_buf *b, const char *id)
{
    mock__buf_str(b, "{\"id\":");
    mock__buf_json_str(b, id, strlen(id));
    mock__buf_str(b, ",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"mock\","
                     "\"type\":\"model\",\"display_name\":");
    mock__buf_json_str(b, id, strlen(id));
    mock__buf_str(b, ",\"created_at\":\"2024-01-01T00:00:00Z\"}");
}

static enum MHD_Result mock__models_reply(struct req *r, const char *url)
{
    struct mock_buf b = {0};
    char model[128];
    pthread_mutex_lock(&r->srv->mu);
    snprintf(model, sizeof model, "%s", r->srv->set.model);
    pthread_mutex_unlock(&r->srv->mu);
    if (strlen(url) > strlen("/v1/models/")) {
        model_obj(&b, url + strlen("/v1/models/"));
    } else {
        struct mock_buf m = {0};
        model_obj(&m, model);
        mock__buf_fmt(&b, MODELS_JSON, m.p ? m.p : "", model, model);
        mock__buf_free(&m);
    }
    if (b.oom) {
        mock__buf_free(&b);
        return MHD_NO;
    }
    return mock__send_body(r, 200, "application/json", b.p, b.len);
}

static char *mock__json_obj_err(const char *msg)
{
    struct mock_buf b = {0};
    mock__buf_str(&b, "{\"error\":{\"message\":");
    mock__buf_json_str(&b, msg, strlen(msg));
    mock__buf_str(&b, ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    return mock__buf_take(&b);
}

static enum MHD_Result admin_faults(struct req *r, const char *method)
{
    struct mock_server *s = r->srv;
    char err[256] = "";
    if (!strcmp(method, "DELETE")) {
        if (mock_server_script_faults(s, "clear", err, sizeof err) < 0)
            return MHD_NO;
    } else if (!strcmp(method, "POST")) {
        cJSON *j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
        int rc = -1;
        if (!j || !cJSON_IsObject(j)) {
            snprintf(err, sizeof err, "body: expected a JSON object with \"script\", "
                     "\"next\"+\"fault\" or \"clear\"");
        } else {
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "script");
            const cJSON *nx = cJSON_GetObjectItemCaseSensitive(j, "next");
            const cJSON *fa = cJSON_GetObjectItemCaseSensitive(j, "fault");
            const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "clear");
            rc = 0;
            if (cJSON_IsTrue(cl))
                rc = mock_server_script_faults(s, "clear", err, sizeof err);
            if (rc == 0 && cJSON_IsString(sc))
                rc = mock_server_script_faults(s, sc->valuestring, err, sizeof err);
            else if (rc == 0 && sc)
                rc = mock__err(err, sizeof err, "script: expected a string");
            if (rc == 0 && (nx || fa)) {
                char st[96];
                if (!cJSON_IsNumber(nx) || !cJSON_IsString(fa))
                    rc = mock__err(err, sizeof err, "next must be a number and fault a string");
                else {
                    snprintf(st, sizeof st, "next %.0f %.40s", nx->valuedouble, fa->valuestring);
                    rc = mock_server_script_faults(s, st, err, sizeof err);
                }
            }
            if (rc == 0 && !sc && !nx && !fa && !cJSON_IsTrue(cl))
                rc = mock__err(err, sizeof err, "body: expected \"script\", \"next\"+\"fault\" "
                               "or \"clear\"");
        }
        cJSON_Delete(j);
        if (rc < 0) {
            char *p = mock__json_obj_err(err);
            return mock__send_body(r, 400, "application/json", p, p ? strlen(p) : 0);
        }
    } else if (strcmp(method, "GET")) {
        return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL, -1);
    }
    struct mock_buf b = {0};
    pthread_mutex_lock(&s->mu);
    unsigned pending = 0;
    for (size_t i = 0; i < s->script_n; i++)
        pending += s->script[i].count;
    mock__buf_fmt(&b, "{\"ok\":true,\"pending\":%u,\"script\":[", pending);
    for (size_t i = 0; i < s->script_n; i++)
        mock__buf_fmt(&b, "%s{\"next\":%u,\"fault\":\"%s\"}", i ? "," : "", s->script[i].count,
                      mock__fault_names[s->script[i].fault]);
    pthread_mutex_unlock(&s->mu);
    mock__buf_str(&b, "]}");
    char *p = mock__buf_take(&b);
    return mock__send_body(r, 200, "application/json", p, p ? strlen(p) : 0);
}

static enum MHD_Result mock__send_json_str(struct req *r, unsigned status, char *p)
{
    return mock__send_body(r, status, "application/json", p, p ? strlen(p) : 0);
}

static enum MHD_Result mock__admin_request(struct req *r, const char *url, const char *method)
{
    struct mock_server *s = r->srv;
    if (!strcmp(url, "/admin/config")) {
        if (!strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
            char err[256];
            mock__buf_add(&r->body, "", 0); /* NUL-terminated even when empty */
            if (r->body.oom)
                return MHD_NO;
            if (mock_server_configure(s, r->body.p ? r->body.p : "", err, sizeof err) < 0)
                return mock__send_json_str(r, 400, mock__json_obj_err(err));
        } else if (strcmp(method, "GET")) {
            return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL,
                              -1);
        }
        pthread_mutex_lock(&s->mu);
        char *p = mock__settings_json(&s->set);
        pthread_mutex_unlock(&s->mu);
        return mock__send_json_str(r, 200, p);
    }
    if (!strcmp(url, "/admin/reset")) {
        if (strcmp(method, "POST"))
            return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL,
                              -1);
        mock_server_reset_stats(s);
        return mock__send_static(r, 200, "application/json", "{\"ok\":true}");
    }
    if (!strcmp(url, "/admin/faults"))
        return admin_faults(r, method);
    char m[200];
    snprintf(m, sizeof m, "Invalid URL (%s %.120s)", method, url);
    return mock__send_error(r, 404, "invalid_request_error", m, NULL, NULL, -1);
}

static enum MHD_Result mock__count_tokens(struct req *r)
{
    struct perr pe;
    r->is_api = 1;
    if (!MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "anthropic-version"))
        return mock__bad_request(r, "anthropic-version: header is required", NULL, NULL);
    /* count_tokens does not require max_tokens: pretend one was given. */
    r->api = MOCK_API_ANTHROPIC;
    cJSON *j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
    if (cJSON_IsObject(j) && !cJSON_GetObjectItemCaseSensitive(j, "max_tokens")) {
        cJSON_AddNumberToObject(j, "max_tokens", 1);
        char *p = cJSON_PrintUnformatted(j);
        if (p) {
            mock__buf_free(&r->body);
            mock__buf_str(&r->body, p);
            cJSON_free(p);
        }
    }
    cJSON_Delete(j);
    int rc = mock__parse_api(r, &pe);
    if (rc == -1)
        return mock__bad_request(r, pe.msg, pe.param, pe.code);
    if (rc < 0)
        return MHD_NO;
    struct mock_buf b = {0};
    mock__buf_fmt(&b, "{\"input_tokens\":%u}", r->prompt_tokens);
    return mock__send_json_str(r, 200, mock__buf_take(&b));
}

static int route_of(const char *url)
{
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions"))
        return MOCK_ROUTE_CHAT;
    if (!strcmp(url, "/v1/messages") || !strncmp(url, "/v1/messages/", 13))
        return MOCK_ROUTE_MESSAGES;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11))
        return MOCK_ROUTE_MODELS;
    if (!strcmp(url, "/health") || !strcmp(url, "/healthz"))
        return MOCK_ROUTE_HEALTH;
    if (!strcmp(url, "/metrics"))
        return MOCK_ROUTE_METRICS;
    if (!strcmp(url, "/stats"))
        return MOCK_ROUTE_STATS;
    if (!strncmp(url, "/admin/", 7))
        return MOCK_ROUTE_ADMIN;
    return MOCK_ROUTE_OTHER;
}

static enum MHD_Result method_not_allowed(struct req *r, const char *method, const char *url)
{
    char m[200];
    snprintf(m, sizeof m, "Method %s is not allowed for %.120s", method, url);
    return mock__send_error(r, 405, "invalid_request_error", m, NULL, "method_not_allowed", -1);
}

static enum MHD_Result dispatch(struct req *r, const char *url, const char *method)
{
    struct mock_server *s = r->srv;
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int post = !strcmp(method, "POST");
    switch (r->route) {
    case MOCK_ROUTE_CHAT:
        return post ? mock__api_request(r) : method_not_allowed(r, method, url);
    case MOCK_ROUTE_MESSAGES:
        if (!strcmp(url, "/v1/messages/count_tokens"))
            return post ? mock__count_tokens(r) : method_not_allowed(r, method, url);
        if (strcmp(url, "/v1/messages"))
            break;
        return post ? mock__api_request(r) : method_not_allowed(r, method, url);
    case MOCK_ROUTE_MODELS:
        if (!get)
            return method_not_allowed(r, method, url);
        {
            struct mock_timing t;
            char key[sizeof s->set.required_key];
            pthread_mutex_lock(&s->mu);
            snprintf(key, sizeof key, "%s", s->set.required_key);
            int has = (s->set.route[MOCK_ROUTE_MODELS].set & 2) != 0; /* models.latency set */
            double scale = s->set.time_scale;
            mock__settings_timing(&s->set, MOCK_ROUTE_MODELS, &t);
            pthread_mutex_unlock(&s->mu);
            const char *k = mock__auth_key(r);
            if (key[0] && (!k || strcmp(k, key)))
                return mock__send_error(r, 401, "invalid_request_error", "Incorrect API key provided.",
                                  NULL, "invalid_api_key", -1);
            if (has && r->state != ST_DELAY) {
                double ms = mock__sample_ms(&t, t.latency_ms, 600000, mock__fnv1a64(url, strlen(url)));
                uint64_t ns = (uint64_t)(ms * scale * 1e6);
                if (ns > 20000)
                    return mock__suspend_until(r, mock__now_ns() + ns, ST_DELAY);
            }
        }
        return mock__models_reply(r, url);
    case MOCK_ROUTE_HEALTH:
        return get ? mock__send_static(r, 200, "application/json", "{\"status\":\"ok\"}")
                   : method_not_allowed(r, method, url);
    case MOCK_ROUTE_METRICS:
        if (!get)
            return method_not_allowed(r, method, url);
        {
            char *p = mock__stats_prometheus(&s->stats, atomic_load(&s->running_pub),
                                             atomic_load(&s->queued_pub));
            return mock__send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", p,
                             p ? strlen(p) : 0);
        }
    case MOCK_ROUTE_STATS:
        return get ? mock__send_json_str(r, 200, mock_server_stats_json(s))
                   : method_not_allowed(r, method, url);
    case MOCK_ROUTE_ADMIN:
        return mock__admin_request(r, url, method);
    default:
        break;
    }
    char m[200];
    snprintf(m, sizeof m, "Invalid URL (%s %.120s)", method, url);
    if (r->api == MOCK_API_ANTHROPIC)
        return mock__send_error(r, 404, "not_found_error", m, NULL, NULL, -1);
    return mock__send_error(r, 404, "invalid_request_error", m, NULL, NULL, -1);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    mock__server_thread = 1;
    struct mock_server *s = cls;
    struct req *r = *con_cls;
    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = c;
        r->t_arrive = mock__now_ns();
        r->route = route_of(url);
        r->api = !strncmp(url, "/v1/messages", 12) ? MOCK_API_ANTHROPIC : MOCK_API_OPENAI;
        *con_cls = r;
        mock__stats_in_flight_inc(&s->stats);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        /* Answer on the next call even without a body: a response queued on the first call
           counts as an early reply and MHD 0.9.75 then closes the keep-alive connection. */
        if (cl && strtoull(cl, NULL, 10) > atomic_load(&s->max_body)) {
            r->too_big = 1;
            if (r->route == MOCK_ROUTE_CHAT || r->route == MOCK_ROUTE_MESSAGES)
                return dispatch(r, url, method);
            return mock__send_error(r, 413, "invalid_request_error", "Request body too large", NULL,
                              NULL, -1);
        }
        r->state = ST_BODY;
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->state == ST_BODY && !r->too_big) {
            if (r->body.len + *upload_size > atomic_load(&s->max_body)) {
                r->too_big = 1;
                mock__buf_free(&r->body);
            } else {
                mock__buf_add(&r->body, upload_data, *upload_size);
                if (r->body.oom)
                    return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    switch (r->state) {
    case ST_NEW:
    case ST_BODY:
        return dispatch(r, url, method);
    case ST_WAIT_SLOT:
        if (atomic_load(&s->stopping) || !r->has_slot)
            return MHD_NO;
        return mock__start_delay(r);
    case ST_DELAY:
        if (atomic_load(&s->stopping))
            return MHD_NO;
        if (r->route == MOCK_ROUTE_MODELS)
            return mock__models_reply(r, url);
        return mock__answer(r);
    case ST_CLOSE:
        mock__set_linger0(r);
        return MHD_NO;
    default:
        return MHD_YES;
    }
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    mock__server_thread = 1;
    struct mock_server *s = cls;
    struct req *r = *con_cls;
    (void)c;
    if (!r)
        return;
    *con_cls = NULL;
    uint64_t now = mock__now_ns();
    unsigned status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0;
    mock__stats_status(&s->stats, r->route, status);
    if (r->is_api && r->status == 200 && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        mock__hist_add_ns(&s->stats.h[MOCK_H_E2E], now - r->t_arrive);
    if (r->has_slot) {
        struct req *next = NULL;
        pthread_mutex_lock(&s->mu);
        s->running--;
        if (s->q_head && !s->stopping_mu) {
            next = s->q_head;
            s->q_head = next->qnext;
            if (!s->q_head)
                s->q_tail = NULL;
            s->queued--;
            s->running++;
            next->has_slot = 1;
            next->running_at_admit = s->running;
        }
        mock__publish_counts(s);
        pthread_mutex_unlock(&s->mu);
        if (next)
            MHD_resume_connection(next->conn);
    }
    atomic_fetch_sub_explicit(&s->stats.in_flight, 1, RLX);
    mock__buf_free(&r->body);
    mock__buf_free(&r->fb);
    mock_content_free(&r->content);
    free(r->starts);
    free(r->pbody);
    free(r->model);
    free(r->system);
    free(r->prompt);
    free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* public API                                                                                  */

void mock_options_init(struct mock_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->threads = 2;
    o->connection_limit = 20000;
    o->connection_timeout_s = 60;
    o->quiet = 1;
    o->time_scale = 1.0;
    o->latency_ms = -1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int write_port_file(const char *path, int port, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return mock__err(err, errlen, "port_file: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return mock__err(err, errlen, "port_file: cannot create %s: %s", tmp, strerror(errno));
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mock__err(err, errlen, "port_file: cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int mock_server_start(const struct mock_options *o, struct mock_server **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    struct mock_options def;
    if (!o) {
        mock_options_init(&def);
        o = &def;
    }
    struct mock_server *s = calloc(1, sizeof *s);
    if (!s)
        return mock__err(err, errlen, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    mock__settings_init(&s->set);
    mock__stats_init(&s->stats);
    s->attempts = calloc(ATTEMPT_SLOTS, sizeof *s->attempts);
    if (!s->attempts) {
        mock__err(err, errlen, "out of memory");
        goto fail;
    }
    if (o->config_text && mock__settings_apply_text(&s->set, o->config_text, err, errlen) < 0)
        goto fail;
    if (o->seed)
        s->set.seed = o->seed;
    if (o->time_scale != 1.0) {
        if (!(o->time_scale >= 0)) {
            mock__err(err, errlen, "time_scale: %g is negative", o->time_scale);
            goto fail;
        }
        s->set.time_scale = o->time_scale;
    }
    if (o->latency_ms >= 0)
        s->set.global.latency_ms = o->latency_ms;
    if (o->required_key && *o->required_key)
        snprintf(s->set.required_key, sizeof s->set.required_key, "%s", o->required_key);
    if (o->max_body)
        s->set.max_body = o->max_body;
    atomic_store(&s->max_body, s->set.max_body);

    struct sockaddr_in sa;
    struct sockaddr_in6 sa6;
    struct sockaddr *addr = (struct sockaddr *)&sa;
    unsigned ipv6 = 0;
    memset(&sa, 0, sizeof sa);
    memset(&sa6, 0, sizeof sa6);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)(o->port > 0 ? o->port : 0));
    const char *host = o->host && *o->host ? o->host : "127.0.0.1";
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = sa.sin_port;
        if (inet_pton(AF_INET6, host, &sa6.sin6_addr) != 1) {
            mock__err(err, errlen, "host: '%s' is not an IPv4 or IPv6 address", host);
            goto fail;
        }
        addr = (struct sockaddr *)&sa6;
        ipv6 = MHD_USE_IPv6;
    }
    if (o->port < 0 || o->port > 65535) {
        mock__err(err, errlen, "port: %d is out of range", o->port);
        goto fail;
    }
    if (mock__timer_new(&s->timer) < 0) {
        mock__err(err, errlen, "cannot start the timer thread");
        goto fail;
    }
    raise_nofile();
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | ipv6 | (o->quiet ? 0 : MHD_USE_ERROR_LOG);
    unsigned threads = o->threads ? o->threads : 2;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
                            MHD_OPTION_CONNECTION_LIMIT,
                            o->connection_limit ? o->connection_limit : 20000,
                            MHD_OPTION_CONNECTION_TIMEOUT,
                            o->connection_timeout_s ? o->connection_timeout_s : 60,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
                            /* Per-connection pool (headers, read and write buffers), which
                               MHD zeroes on reuse, so it is all resident. MHD's default of
                               32 KiB is 320 MB at 10,000 connections; request bodies are handed
                               to us in pieces, so 8 KiB (headers up to ~4 KiB) is enough. */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)8192,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        mock__err(err, errlen, "cannot listen on %s:%d (in use or not permitted)", host, o->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    snprintf(s->url, sizeof s->url, ipv6 ? "http://[%s]:%d" : "http://%s:%d", host, s->port);
    if (o->port_file && write_port_file(o->port_file, s->port, err, errlen) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (s->d) {
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    if (s->timer) {
        mock__timer_flush_and_close(s->timer);
        mock__timer_free(s->timer);
    }
    free(s->attempts);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return -1;
}

int mock_server_port(const struct mock_server *s)
{
    return s->port;
}

const char *mock_server_url(const struct mock_server *s)
{
    return s->url;
}

int mock_server_configure(struct mock_server *s, const char *text, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    struct mock_settings n = s->set;
    int rc = mock__settings_apply_text(&n, text, err, errlen);
    if (rc == 0) {
        s->set = n;
        atomic_store(&s->max_body, n.max_body);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Splits st in place into blank-separated words (at most max, into w); returns how many, or
 * max + 1 when there are more. */
static size_t split_words(char *st, char **w, size_t max)
{
    size_t n = 0;
    for (char *p = st;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return n;
        if (n == max)
            return max + 1;
        w[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = 0;
    }
}

/* The N of "next N FAULT": decimal digits only (no sign, no blanks, nothing after), 1..1e9.
 * Returns it, or 0 when d is not such a number. */
static unsigned parse_script_count(const char *d)
{
    unsigned long v = 0;
    if (!*d)
        return 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return 0;
        v = v * 10 + (unsigned long)(*d - '0');
        if (v > 1000000000ul)
            return 0;
    }
    return (unsigned)v;
}

int mock_server_script_faults(struct mock_server *s, const char *script, char *err,
                              size_t errlen)
{
    if (!script)
        return mock__err(err, errlen, "script: NULL");
    char *copy = strdup(script);
    if (!copy)
        return mock__err(err, errlen, "out of memory");
    struct script_item items[64];
    size_t n = 0;
    int clear = 0, rc = 0;
    char *save = NULL;
    for (char *st = strtok_r(copy, ";\n", &save); st; st = strtok_r(NULL, ";\n", &save)) {
        /* The statement as written, for messages (splitting writes NULs into st). */
        const char *orig = script + (st - copy);
        while (*orig == ' ' || *orig == '\t')
            orig++;
        int shown = (int)strcspn(orig, ";\n");
        if (shown > 60)
            shown = 60;
        char *w[3];
        size_t nw = split_words(st, w, 3);
        if (nw == 0)
            continue;
        if (nw == 1 && !strcmp(w[0], "clear")) {
            clear = 1;
            n = 0;
            continue;
        }
        unsigned cnt = nw == 3 && !strcmp(w[0], "next") ? parse_script_count(w[1]) : 0;
        if (cnt == 0) {
            rc = mock__err(err, errlen, "script: expected 'next N FAULT' (N = 1..1000000000) "
                           "or 'clear', got '%.*s'", shown, orig);
            break;
        }
        int f = mock__fault_from_name(w[2]);
        if (f < 0) {
            rc = mock__err(err, errlen, "script: unknown fault '%.40s' in '%.*s' (ok, 429, 500, "
                           "502, 503, 529, reset, stall, malformed, cut, disconnect, corrupt, "
                           "duplicate, truncate, dangerous)", w[2], shown, orig);
            break;
        }
        if (n == sizeof items / sizeof items[0]) {
            rc = mock__err(err, errlen, "script: more than %zu statements in one call",
                           sizeof items / sizeof items[0]);
            break;
        }
        items[n].count = cnt;
        items[n].fault = f;
        n++;
    }
    free(copy);
    if (rc < 0)
        return -1;
    uint64_t add = 0; /* at most 64 x 1e9: no overflow */
    for (size_t i = 0; i < n; i++)
        add += items[i].count;
    pthread_mutex_lock(&s->mu);
    uint64_t have = 0;
    for (size_t i = 0; !clear && i < s->script_n; i++)
        have += s->script[i].count;
    if (have + add > MOCK_SCRIPT_MAX_PENDING) {
        pthread_mutex_unlock(&s->mu);
        return mock__err(err, errlen, "script: %llu faults would be pending, more than %u",
                         (unsigned long long)(have + add), MOCK_SCRIPT_MAX_PENDING);
    }
    if (clear)
        s->script_n = 0;
    if (n == 0) { /* nothing to append; s->script may still be NULL (no NULL + 0, memcpy) */
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    if (s->script_n + n > s->script_cap) {
        size_t cap = s->script_cap ? s->script_cap : 16;
        while (cap < s->script_n + n)
            cap *= 2;
        struct script_item *p = realloc(s->script, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->mu);
            return mock__err(err, errlen, "out of memory");
        }
        s->script = p;
        s->script_cap = cap;
    }
    memcpy(s->script + s->script_n, items, n * sizeof *items);
    s->script_n += n;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

unsigned mock_server_scripted_pending(const struct mock_server *s)
{
    struct mock_server *m = (struct mock_server *)s;
    pthread_mutex_lock(&m->mu);
    uint64_t n = 0; /* <= MOCK_SCRIPT_MAX_PENDING (mock_server_script_faults checks) */
    for (size_t i = 0; i < m->script_n; i++)
        n += m->script[i].count;
    pthread_mutex_unlock(&m->mu);
    return (unsigned)n;
}

char *mock_server_stats_json(struct mock_server *s)
{
    return mock__stats_json(&s->stats, atomic_load(&s->running_pub), atomic_load(&s->queued_pub));
}

void mock_server_counts(struct mock_server *s, struct mock_counts *out)
{
    mock__stats_counts(&s->stats, out);
}

void mock_server_reset_stats(struct mock_server *s)
{
    mock__stats_reset(&s->stats);
    for (size_t i = 0; i < ATTEMPT_SLOTS; i++)
        atomic_store_explicit(&s->attempts[i], 0, RLX);
}

void mock_server_stop(struct mock_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping_mu = 1;
    atomic_store(&s->stopping, 1);
    struct req *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->queued = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        struct req *next = q->qnext;
        MHD_resume_connection(q->conn);
        q = next;
    }
    mock__timer_flush_and_close(s->timer);
    MHD_stop_daemon(s->d);
    mock__timer_free(s->timer); /* only now: until MHD_stop_daemon, workers may still call
                                   mock__timer_add (which fails, the timer being closed) */
    free(s->script);
    free(s->attempts);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
