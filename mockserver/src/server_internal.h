/*
 * server_internal.h - what the parts of the mock server's request handling share: the server
 * and per-request structures, the request states, and the functions each part offers the
 * others (reply helpers in reply.c, delays and streams in stream.c, body parsing in request.c,
 * admission and faults in admission.c, the models and admin routes in admin.c, the fault-script
 * parser in script.c, dispatch and lifecycle in server.c). Not part of the public API
 * (mock/server.h) and not used outside mockserver/src.
 *
 * Threads: every function here runs on a libmicrohttpd worker inside a request callback, with
 * no lock held, unless its comment says otherwise.
 */
#ifndef MOCK_SERVER_INTERNAL_H
#define MOCK_SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "content.h"
#include "mock_internal.h"

#define ATTEMPT_SLOTS 65536u
#define RLX memory_order_relaxed

struct script_item {
    unsigned count;
    int fault;
    int route;          /* enum mock_route it applies to; -1 = any API route */
    char model[64];     /* the request's model it applies to; "" = any */
};

struct req;
struct mock_fixtures;
struct mock_fx_reply;
struct mock_fx_state;

/* What a turn answers instead of generated text (request_tools.c); all zero = plain text. */
struct mock_turn {
    struct mock_tool_call call[MOCK_TOOL_CALLS_MAX]; /* ncalls > 0: the reply calls these */
    unsigned ncalls;
    char call_id[MOCK_TOOL_CALLS_MAX][40];         /* "call_..." (OpenAI) or "toolu_..." */
    char *json;                 /* structured output: the reply's text (cJSON_free) */
    char *prefix;               /* after a tool result: said before the answer (free) */
    char *echo[3];              /* responses: text, tool_choice, tools as sent (cJSON_free) */
};

#define MOCK_LOG_MAX 10000 /* most entries request_log may keep */
/* One logged request: its JSON object in text, except that while body_raw is set the bytes at
 * [body_off, body_off + body_len) are the body as received, rendered (embedded as JSON, or as a
 * string) only when GET /admin/requests reads the entry, so the request path never parses it. */
struct mock_log_ent {
    size_t len, body_off, body_len;
    int body_raw;
    char text[];               /* len bytes and a NUL */
};
struct mock_log {
    pthread_mutex_t mu;
    struct mock_log_ent **ring; /* guarded by mu: MOCK_LOG_MAX slots, n used from head */
    size_t head, n;            /* guarded by mu */
    uint64_t seq, dropped;     /* guarded by mu */
};

struct mock_server {
    struct MHD_Daemon *d;
    struct mock_timer *timer;
    char url[96];
    int port;
    char *port_file;                       /* removed by mock_server_stop; NULL = none */
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
    _Atomic uint64_t header_timeout_ns, body_timeout_ns; /* copies of set's, for watch.c */
    _Atomic size_t log_cap;                /* copy of set.request_log */
    struct mock_log log;
    _Atomic unsigned running_pub, queued_pub;
    _Atomic uint64_t seq;
    _Atomic uint32_t *attempts;            /* ATTEMPT_SLOTS counters, by body hash */
    struct mock_stats stats;
    struct mock_fx_state *fx;              /* fixtures and record mode (fixtures.h) */
};

enum { ST_NEW, ST_BODY, ST_WAIT_SLOT, ST_DELAY, ST_CLOSE, ST_ANSWERED };

struct req {
    struct mock_server *srv;
    struct MHD_Connection *conn;
    int route, api, state, is_api, fault, has_slot, stream, include_usage, rst;
    unsigned status;
    uint64_t t_arrive, t_admit, configured_ns, hash;
    uint64_t due, t_fire;       /* the pending resume's deadline; when the timer ran it */
    struct mock_buf body;
    int too_big;
    struct mock_settings set;   /* snapshot for API requests */
    struct mock_timing timing;
    double scale;
    long long max_tokens;
    char *model, *system, *prompt;
    char *instructions;         /* responses: echoed back */
    struct mock_turn turn;      /* tools and structured output (request_tools.c) */
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
    struct mock_buf logb;       /* the request log entry being built (reqlog.c) */
    size_t logb_body, logb_body_len; /* where in logb the raw body lies (reqlog.c) */
    /* fixtures (fixtures.h): the set fxr points into is held by fx until completion */
    struct mock_fixtures *fx;
    const struct mock_fx_reply *fxr; /* the reply to give; NULL: generated */
    struct mock_fx_reply *fx_own;    /* record mode: the upstream's answer (owned) */
};

/* Why a request body was refused. Every pointer is a string literal or points into the perr
 * itself (buf, pbuf): mock__parse_api frees the request's JSON before it returns, so nothing
 * here may point into it. */
struct perr {
    const char *msg, *param, *code;
    char buf[200];
    char pbuf[48];  /* a field name copied out of the JSON, for param */
};


/* ---- reply helpers (reply.c). Each queues the response and sets r->status; MHD_NO when the
 * response could not be made (MHD then closes the connection). ---- */
enum MHD_Result mock__queue(struct req *r, unsigned status, struct MHD_Response *resp,
                            const char *ctype);
/* body is taken (freed by MHD, or here when the response cannot be made). */
enum MHD_Result mock__send_body(struct req *r, unsigned status, const char *ctype, char *body,
                                size_t len);
enum MHD_Result mock__send_static(struct req *r, unsigned status, const char *ctype,
                                  const char *body);
/* An error in the route's API shape. retry_ms >= 0 adds Retry-After (and rate-limit headers
 * for 429). */
enum MHD_Result mock__send_error(struct req *r, unsigned status, const char *type,
                                 const char *message, const char *param, const char *code,
                                 double retry_ms);
enum MHD_Result mock__bad_request(struct req *r, const char *msg, const char *param,
                                  const char *code);
/* p (JSON text) is taken. */
enum MHD_Result mock__send_json_str(struct req *r, unsigned status, char *p);
/* {"error":{...}} for admin routes; malloc'd or NULL. */
char *mock__json_obj_err(const char *msg);

/* ---- delays and streams (stream.c) ---- */
/* Suspends r's connection until deadline; the handler runs again in `state`. */
enum MHD_Result mock__suspend_until(struct req *r, uint64_t deadline, int state);
void mock__set_linger0(struct req *r);
uint64_t mock__scaled_ns(const struct req *r, double ms);
/* The reply is due: queue it (whole or as a stream). */
enum MHD_Result mock__answer(struct req *r);
/* Admitted: sample the delay and wait for it (or answer now). */
enum MHD_Result mock__start_delay(struct req *r);

/* ---- request parsing (request.c) ---- */
/* The buffer's bytes as a malloc'd string ("" when empty); NULL (and b freed) after an OOM. */
char *mock__buf_take(struct mock_buf *b);
/* Parses and validates r->body for r->route. 0, -1 (bad request: e filled) or -2 (OOM). */
int mock__parse_api(struct req *r, struct perr *e);
/* "a string", "a number", ... for messages. */
const char *mock__json_type(const cJSON *j);
/* Appends the text of a content value (string, null, or array of parts with "text"). -1: bad
 * type. */
int mock__content_text(const cJSON *c, struct mock_buf *out);
/* A token count (max_tokens ...): an integer in 1..INT_MAX. 0 with *out set, or -1, e filled. */
int mock__count_param(const cJSON *v, int oa, struct perr *e, long long *out);
/* "model" present and a string; 0 or -1 with e filled. */
int mock__check_model(const cJSON *model, int oa, struct perr *e);
/* "stream" (a boolean) and, for OpenAI, stream_options.include_usage into r. 0 or -1. */
/* Files one turn's text t (taken: freed here) by its role: system and developer turns (only
 * when system_roles) append to sys, a user turn replaces prompt (the last one is answered),
 * others are dropped. Shared by the chat/messages and Responses request parsers. */
void mock__take_turn(const char *role, int system_roles, struct mock_buf *t,
                     struct mock_buf *sys, struct mock_buf *prompt);
int mock__check_stream(const cJSON *j, int oa, struct req *r, struct perr *e);
/* The completions, responses and embeddings bodies (request_more.c): fills r like
 * mock__parse_api (embeddings: the whole reply into r->pbody). j is borrowed. */
int mock__parse_more(struct req *r, const cJSON *j, struct perr *e);

/* ---- tools and structured output (request_tools.c) ---- */
/* Reads tools, tool_choice and the structured-output format (chat response_format, Responses
 * text.format, messages output_config.format or output_format) and the tool
 * results at the end of the history (OpenAI "tool" messages, Anthropic tool_result blocks,
 * Responses function_call_output items), checks them, and decides r->turn. Runs after r->system
 * and r->prompt are set (it may replace r->prompt by the question a tool result answers). j is
 * the request body, borrowed. 0, -1 (bad request: e filled) or -2 (out of memory). */
int mock__parse_tools(struct req *r, const cJSON *j, struct perr *e);
/* Fills r->content for a turn that is not plain generated text (a tool call's arguments,
 * structured output, a tool result's prefix before the generated answer): 1 when it did, 0 for a
 * plain turn (nothing done), -1 when out of memory. */
int mock__turn_content(struct req *r);
/* Splits a tool-call turn's text (mock__turn_content's) into stream pieces call by call, so no
 * piece spans two calls: fills starts (max entries) and the reply's call_off/call_piece. Returns
 * the number of pieces. */
size_t mock__turn_split(const struct req *r, size_t *starts, size_t max, struct mock_reply *rp);
/* Frees r->turn; accepts a zeroed one. */
void mock__turn_free(struct mock_turn *t);

/* ---- admission and faults (admission.c) ---- */
/* Caller holds srv->mu. */
void mock__publish_counts(struct mock_server *s);
const char *mock__auth_key(struct req *r);
enum MHD_Result mock__api_request(struct req *r);

/* ---- slow-client watchdog (watch.c) ---- */
enum { WATCH_HEADERS, WATCH_BODY, WATCH_BUSY };
/* MHD_OPTION_NOTIFY_CONNECTION callback (cls: the server): starts and ends a connection's
 * watch. Threads: MHD's threads. */
void mock__watch_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code);
/* The connection enters a phase (WATCH_*); its allowance starts now. */
void mock__watch_phase(struct MHD_Connection *c, int phase);

/* ---- request log (reqlog.c) ---- */
int mock__log_init(struct mock_log *l);     /* 0 or -1 (out of memory) */
void mock__log_free(struct mock_log *l);
void mock__log_clear(struct mock_log *l);
/* Begins r's entry (headers and body are complete); nothing when the log is off. */
void mock__log_begin(struct req *r, const char *method, const char *url);
/* Finishes r's entry with its status and pushes it (from the completion callback). */
void mock__log_end(struct req *r, unsigned status, uint64_t now);
/* {"count","total","dropped","requests":[newest first, at most limit]}; malloc'd or NULL. */
char *mock__log_json(struct mock_log *l, size_t limit);

/* ---- models and admin routes (admin.c) ---- */
enum MHD_Result mock__models_reply(struct req *r, const char *url);
enum MHD_Result mock__admin_request(struct req *r, const char *url, const char *method);
enum MHD_Result mock__count_tokens(struct req *r);

#endif
