/*
 * stream.c - a request's life after admission: sampling its delay, suspending and resuming its
 * connection through the timer thread, generating the reply before it is due, and sending it
 * whole, cut short (reset/cut/truncate faults) or as an SSE stream paced token by token (with
 * the malformed/corrupt/duplicate/disconnect faults applied mid-stream). It does not parse
 * requests nor choose faults (admission.c does).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "fixtures.h"
#include "server_internal.h"

static void resume_cb(void *arg)
{
    struct req *r = arg;
    r->t_fire = mock__now_ns(); /* never before r->due: the timer pops only due entries */
    mock__hist_add_ns(&r->srv->stats.h[MOCK_H_TIMER_LATE], r->t_fire - r->due);
    MHD_resume_connection(r->conn);
}

/* Suspends r's connection until deadline; the handler runs again in `state`. */
enum MHD_Result mock__suspend_until(struct req *r, uint64_t deadline, int state)
{
    r->state = state;
    r->due = deadline;
    MHD_suspend_connection(r->conn);
    if (mock__timer_add(r->srv->timer, deadline, resume_cb, r) < 0)
        MHD_resume_connection(r->conn); /* stopping or out of memory: go on at once */
    return MHD_YES;
}

void mock__set_linger0(struct req *r)
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

uint64_t mock__scaled_ns(const struct req *r, double ms)
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
    static const char *const prefix[MOCK_ROUTE_COUNT] = {
        [MOCK_ROUTE_CHAT] = "chatcmpl-mock", [MOCK_ROUTE_MESSAGES] = "msg_mock",
        [MOCK_ROUTE_COMPLETIONS] = "cmpl-mock", [MOCK_ROUTE_RESPONSES] = "resp_mock",
        [MOCK_ROUTE_EMBEDDINGS] = "embd-mock"};
    const char *p = prefix[r->route] ? prefix[r->route] : "chatcmpl-mock";
    snprintf(r->reply.id, sizeof r->reply.id, "%s%016llx", p, (unsigned long long)v);
}

static int wire_of(int route)
{
    switch (route) {
    case MOCK_ROUTE_MESSAGES:
        return MOCK_WIRE_MESSAGES;
    case MOCK_ROUTE_COMPLETIONS:
        return MOCK_WIRE_COMPLETIONS;
    case MOCK_ROUTE_RESPONSES:
        return MOCK_WIRE_RESPONSES;
    default:
        return MOCK_WIRE_CHAT;
    }
}

/* Generates the reply (text, pieces, and the whole body when not streaming) before the delay,
 * so the moment it is due costs only the send: a burst of replies due together then drains as
 * fast as the burst of requests that caused it arrived. 0, or -1 when out of memory. */
static int prepare(struct req *r)
{
    if (r->route == MOCK_ROUTE_EMBEDDINGS) { /* answered whole at parse time */
        make_id(r);
        return 0;
    }
    int fx = mock__fx_text(r); /* fixtures: their text or tool calls, or a recorded answer */
    if (fx < 0)
        return -1;
    if (fx == 2)
        return 0;
    int turn = 0;
    if (fx == 1)
        r->turn.ncalls = 0; /* a fixture's text replaces any tool call the turn asked for */
    else /* a tool call (the fixture's when fx == 3), structured output, a tool result */
        turn = mock__turn_content(r);
    if (turn < 0 || (!fx && turn == 0 &&
                     mock_content_generate(r->system, r->prompt, r->set.seed, r->set.pad_to,
                                           r->fault == MOCK_FAULT_DANGEROUS, &r->content) < 0))
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
    n = r->turn.ncalls ? mock__turn_split(r, r->starts, n, &r->reply)
                       : mock_content_split(text, len, r->starts, n);
    struct mock_reply *rp = &r->reply;
    rp->api = r->api;
    rp->wire = wire_of(r->route);
    rp->max_tokens = r->max_tokens;
    rp->instructions = r->instructions;
    rp->echo_text = r->turn.echo[0];
    rp->echo_tool_choice = r->turn.echo[1];
    rp->echo_tools = r->turn.echo[2];
    make_id(r);
    rp->model = r->model ? r->model : r->set.model;
    rp->text = text;
    rp->text_len = len;
    rp->starts = r->starts;
    rp->ntok = (unsigned)n;
    if (r->turn.ncalls) {
        /* tool calls are sent whole: max_tokens does not cut them (mock__turn_split set them) */
    } else if (r->max_tokens > 0 && (long long)n > r->max_tokens) {
        rp->ntok = (unsigned)r->max_tokens;
        rp->text_len = r->starts[rp->ntok];
        rp->hit_max_tokens = 1;
    }
    rp->prompt_tokens = r->prompt_tokens;
    rp->include_usage = r->include_usage;
    rp->created = (long long)time(NULL);
    mock__fx_usage(r);
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
enum MHD_Result mock__answer(struct req *r)
{
    struct mock_server *s = r->srv;
    uint64_t now = mock__now_ns();
    if (r->t_fire) /* resumed by the timer: how long the worker took to run us again */
        mock__hist_add_ns(&s->stats.h[MOCK_H_RESUME], now - r->t_fire);
    uint64_t delivered = now - r->t_arrive, queued = r->t_admit - r->t_arrive;
    mock__hist_add_ns(&s->stats.h[MOCK_H_DELIVERED], delivered);
    int64_t err = (int64_t)delivered - (int64_t)queued - (int64_t)r->configured_ns;
    mock__hist_add_ns(&s->stats.h[MOCK_H_ERROR], (uint64_t)(err < 0 ? -err : err));
    if (mock__fx_own_answer(r))
        return mock__fx_answer(r);

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
enum MHD_Result mock__start_delay(struct req *r)
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
