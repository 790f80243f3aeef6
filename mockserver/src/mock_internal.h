/*
 * mock_internal.h - pieces shared by the mock server's files and not part of its public API:
 * settings (parsed from config text, flags and admin JSON), deterministic randomness, fault
 * names, statistics with log-bucket histograms, the timer thread and the protocol encoders.
 */
#ifndef MOCK_INTERNAL_H
#define MOCK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mock/server.h"

/* ---- small helpers (util.c) ---- */
uint64_t mock__now_ns(void);                     /* CLOCK_MONOTONIC */
uint64_t mock__fnv1a64(const void *p, size_t n);
uint64_t mock__mix64(uint64_t x);                /* splitmix64 finaliser */
double mock__unit(uint64_t x);                   /* mix64(x) as a double in [0, 1) */
double mock__normal(uint64_t x);                 /* standard normal (Box-Muller) from x */
/* snprintf into err (when errlen > 0); returns -1 so `return mock__err(...)` works. */
int mock__err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parses a duration ("150ms", "2s", "500us", "1m", bare number = ms) into ms. 0 or -1. */
int mock__parse_duration(const char *s, double *ms);
int mock__parse_double(const char *s, double *out);
int mock__parse_u64(const char *s, uint64_t *out);

/* A growable byte buffer (plain malloc; the mock is not part of the runtime's allocator). */
struct mock_buf {
    char *p;
    size_t len, cap;
    int oom;                                     /* sticky: an append failed */
};
void mock__buf_add(struct mock_buf *b, const void *p, size_t n);
void mock__buf_str(struct mock_buf *b, const char *s);
void mock__buf_fmt(struct mock_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mock__buf_json_str(struct mock_buf *b, const char *s, size_t n); /* "escaped" */
void mock__buf_free(struct mock_buf *b);

/* ---- settings (settings.c) ---- */
enum mock_dist { MOCK_DIST_FIXED, MOCK_DIST_UNIFORM, MOCK_DIST_NORMAL, MOCK_DIST_LOGNORMAL };

enum mock_route {
    MOCK_ROUTE_CHAT, MOCK_ROUTE_MESSAGES, MOCK_ROUTE_MODELS, MOCK_ROUTE_HEALTH,
    MOCK_ROUTE_METRICS, MOCK_ROUTE_STATS, MOCK_ROUTE_ADMIN, MOCK_ROUTE_EMBEDDINGS,
    MOCK_ROUTE_COMPLETIONS, MOCK_ROUTE_RESPONSES, MOCK_ROUTE_OTHER, MOCK_ROUTE_COUNT
};
/* The routes that generate replies (and take faults, latency and the rate limit). */
static inline int mock__route_is_api(int route)
{
    return route == MOCK_ROUTE_CHAT || route == MOCK_ROUTE_MESSAGES ||
           route == MOCK_ROUTE_EMBEDDINGS || route == MOCK_ROUTE_COMPLETIONS ||
           route == MOCK_ROUTE_RESPONSES;
}
/* The route's index by name, or -1. */
int mock__route_from_name(const char *name);
#define MOCK_TIMED_ROUTES 3 /* chat, messages, models have per-route timing */
extern const char *const mock__route_names[MOCK_ROUTE_COUNT];

enum mock_fault {
    MOCK_FAULT_NONE, MOCK_FAULT_429, MOCK_FAULT_500, MOCK_FAULT_502, MOCK_FAULT_503,
    MOCK_FAULT_529, MOCK_FAULT_RESET, MOCK_FAULT_STALL, MOCK_FAULT_MALFORMED, MOCK_FAULT_CUT,
    MOCK_FAULT_DISCONNECT, MOCK_FAULT_CORRUPT, MOCK_FAULT_DUPLICATE, MOCK_FAULT_TRUNCATE,
    MOCK_FAULT_DANGEROUS, MOCK_FAULT_COUNT
};
extern const char *const mock__fault_names[MOCK_FAULT_COUNT]; /* "ok", "429", ... */
int mock__fault_from_name(const char *name);                   /* -1 when unknown */

/* Timing of one route; the *_set flags say which fields override the global timing. */
struct mock_timing {
    int dist;                 /* enum mock_dist */
    double latency_ms, latency_max_ms, stddev_ms, sigma;
    double ttft_ms;           /* < 0: unset (use latency) */
    double itl_ms, itl_jitter;
    unsigned set;             /* bit per field (TIMING_* in settings.c); global: all set */
};

struct mock_settings {
    struct mock_timing global, route[MOCK_TIMED_ROUTES];
    double max_latency_ms, time_scale;
    uint64_t seed;
    unsigned max_running, max_queue;
    double load_factor, rate_rps, rate_burst;
    size_t max_body, pad_to;
    char model[128];
    char required_key[256];
    double stall_ms, disconnect_ms, retry_after_ms;
    double header_timeout_ms, body_timeout_ms; /* slow clients; 0 = off */
    unsigned request_log;     /* entries GET /admin/requests keeps; 0 = off */
    unsigned cut_after;
    double fault_prob[MOCK_FAULT_COUNT];
};

void mock__settings_init(struct mock_settings *s);
/* Sets one key (see server.h). 0, or -1 with err naming the key/value; s unchanged then. */
int mock__settings_set(struct mock_settings *s, const char *key, const char *value, char *err,
                       size_t errlen);
/* Applies `key = value` lines or a JSON object (leading '{'), all-or-nothing. */
int mock__settings_apply_text(struct mock_settings *s, const char *text, char *err, size_t errlen);
/* The settings as a JSON object (keys as accepted by mock__settings_set). malloc'd or NULL. */
char *mock__settings_json(const struct mock_settings *s);
/* The effective timing of a route (route < MOCK_TIMED_ROUTES, else the global one). */
void mock__settings_timing(const struct mock_settings *s, int route, struct mock_timing *out);
/* One sampled delay in ms before scaling: dist around `centre`, from the seed x. */
double mock__sample_ms(const struct mock_timing *t, double centre_ms, double max_ms, uint64_t x);

/* ---- statistics (stats.c) ---- */
#define MOCK_HIST_SUB_BITS 8 /* 256 sub-buckets per power of two: 0.4% resolution */
#define MOCK_HIST_SUB (1u << MOCK_HIST_SUB_BITS)
#define MOCK_HIST_BUCKETS ((42 - MOCK_HIST_SUB_BITS) * MOCK_HIST_SUB) /* up to 2^41 us */
#define MOCK_PROM_BOUNDS 16
struct mock_hist {
    _Atomic uint64_t b[MOCK_HIST_BUCKETS];
    _Atomic uint64_t prom[MOCK_PROM_BOUNDS + 1];
    _Atomic uint64_t count, sum_us, min_us, max_us;
};
enum mock_hist_id { MOCK_H_CONFIGURED, MOCK_H_DELIVERED, MOCK_H_ERROR, MOCK_H_QUEUED,
                    MOCK_H_TTFT, MOCK_H_ITL, MOCK_H_E2E, MOCK_H_TIMER_LATE, MOCK_H_RESUME,
                    MOCK_H_COUNT };
extern const char *const mock__hist_names[MOCK_H_COUNT];

#define MOCK_STATUS_SLOTS 16
/* Token counts of one (route, model) pair; past MOCK_TOK_ROWS pairs the rest share a row whose
 * model is "_other" (a client can send any model name: the label set stays bounded). */
#define MOCK_TOK_ROWS 64
struct mock_tokrow {
    int route;
    char model[64];
    uint64_t requests, prompt, completion;
};
struct mock_stats {
    _Atomic uint64_t start_ns;
    _Atomic uint64_t route_requests[MOCK_ROUTE_COUNT];
    _Atomic uint64_t route_status[MOCK_ROUTE_COUNT][MOCK_STATUS_SLOTS];
    _Atomic uint64_t faults[MOCK_FAULT_COUNT];
    _Atomic uint64_t rate_limited;
    _Atomic unsigned in_flight, in_flight_max, queued_max;
    struct mock_hist h[MOCK_H_COUNT];
    pthread_mutex_t tok_mu;
    struct mock_tokrow tok[MOCK_TOK_ROWS + 1]; /* guarded by tok_mu; the last is "_other" */
    unsigned tok_n;                            /* guarded by tok_mu */
};
void mock__stats_init(struct mock_stats *st);
void mock__stats_destroy(struct mock_stats *st);
/* Counts one answered API request's tokens under (route, model). */
void mock__stats_tokens(struct mock_stats *st, int route, const char *model, unsigned prompt,
                        unsigned completion);
void mock__stats_reset(struct mock_stats *st);
void mock__hist_add_ns(struct mock_hist *h, uint64_t ns);
void mock__stats_status(struct mock_stats *st, int route, unsigned status);
void mock__stats_in_flight_inc(struct mock_stats *st);
/* JSON / Prometheus text; running and queued are passed in (they live in the server). */
char *mock__stats_json(struct mock_stats *st, unsigned running, unsigned queued);
char *mock__stats_prometheus(struct mock_stats *st, unsigned running, unsigned queued);
void mock__stats_counts(struct mock_stats *st, struct mock_counts *out);

/* ---- timer (timer.c): resumes suspended connections when due ---- */
struct mock_timer;
typedef void (*mock_timer_fn)(void *arg);
int mock__timer_new(struct mock_timer **out);
/* Runs fn(arg) at deadline_ns (monotonic), on the timer thread or, when it is busy, on the
 * adding thread inside a later mock__timer_run_due. 0, or -1 (out of memory, or the timer is
 * stopping: the caller then runs fn itself). */
int mock__timer_add(struct mock_timer *t, uint64_t deadline_ns, mock_timer_fn fn, void *arg);
/* Runs the due entries this thread added (a worker's own connections), here and now; cheap
 * when none is due. Called from libmicrohttpd callbacks, never with a server lock held. */
void mock__timer_run_due(struct mock_timer *t);
/* Stop path: from now on mock__timer_add fails; joins the thread, then runs every pending
 * entry on the caller. Idempotent. */
void mock__timer_flush_and_close(struct mock_timer *t);
/* Frees the timer (closing it first if needed). Only when nobody can call _add any more. */
void mock__timer_free(struct mock_timer *t);
size_t mock__timer_pending(struct mock_timer *t);

/* ---- wire formats (proto.c; the legacy completions and Responses APIs in proto_more.c) ---- */
enum mock_api { MOCK_API_OPENAI, MOCK_API_ANTHROPIC }; /* error shapes and headers */
/* Reply shapes: chat.completion, Anthropic message, text_completion, response. */
enum mock_wire { MOCK_WIRE_CHAT, MOCK_WIRE_MESSAGES, MOCK_WIRE_COMPLETIONS, MOCK_WIRE_RESPONSES };

#define MOCK_REPLY_CALLS_MAX 4 /* parallel tool calls in one reply (content.h's MOCK_TOOL_CALLS_MAX) */

/* What one reply says; every pointer is borrowed. */
struct mock_reply {
    int api;                  /* enum mock_api */
    int wire;                 /* enum mock_wire */
    char id[40];              /* "chatcmpl-..." or "msg_..." */
    const char *model;
    const char *text;         /* the reply text, already cut to ntok pieces */
    size_t text_len;
    const size_t *starts;     /* piece offsets into text (ntok of them) */
    unsigned ntok;            /* pieces = completion tokens */
    unsigned prompt_tokens;
    int hit_max_tokens;       /* finish "length" / stop "max_tokens" */
    int include_usage;        /* OpenAI stream_options.include_usage */
    long long created;        /* unix seconds */
    long long max_tokens;     /* as asked (responses echo max_output_tokens); 0 = not given */
    const char *instructions; /* responses: echoed; NULL = none */
    int completion_set;       /* fixtures: usage reports completion_tokens, not ntok */
    unsigned completion_tokens;
    /* Tool calls instead of text (proto_tools.c): text is then the calls' arguments (compact
     * JSON) one after the other, call k's at text[call_off[k]..call_off[k+1]) streamed as pieces
     * call_piece[k]..call_piece[k+1]-1. ncalls 0 = a text reply. */
    unsigned ncalls;
    const char *tool_name[MOCK_REPLY_CALLS_MAX];
    const char *tool_id[MOCK_REPLY_CALLS_MAX]; /* "call_..." (OpenAI) or "toolu_..." */
    size_t call_off[MOCK_REPLY_CALLS_MAX + 1];
    unsigned call_piece[MOCK_REPLY_CALLS_MAX + 1];
    /* responses: the request's text, tool_choice and tools as compact JSON; NULL = defaults */
    const char *echo_text, *echo_tool_choice, *echo_tools;
};
/* The completion tokens a reply's usage reports. */
static inline unsigned mock__reply_ctok(const struct mock_reply *r)
{
    return r->completion_set ? r->completion_tokens : r->ntok;
}

/* Non-streaming body (malloc'd, *len set) or NULL on out of memory. */
char *mock__proto_body(const struct mock_reply *r, size_t *len);
/* An error body in the API's shape. type: OpenAI "type"/Anthropic error.type; param and code
 * may be NULL (OpenAI only; an Anthropic code "thread_..." goes into error.details.error_code,
 * as message threads expect). malloc'd or NULL. */
char *mock__proto_error(int api, const char *type, const char *message, const char *param,
                        const char *code, size_t *len);
/* Streams: the frames are head frames, one per piece, then tail frames. */
size_t mock__proto_frame_count(const struct mock_reply *r);
size_t mock__proto_head_frames(const struct mock_reply *r);
/* Appends frame k (SSE text, ending in a blank line). corrupt: break its JSON. */
void mock__proto_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt);
/* The same for the legacy completions and Responses wires (proto_more.c; proto.c dispatches). */
void mock__proto_completions_body(struct mock_buf *b, const struct mock_reply *r);
void mock__proto_completions_frame(struct mock_buf *b, const struct mock_reply *r, size_t k,
                                   int corrupt);
void mock__proto_responses_body(struct mock_buf *b, const struct mock_reply *r);
void mock__proto_responses_frame(struct mock_buf *b, const struct mock_reply *r, size_t k,
                                 int corrupt);
/* The tool-call forms of all three wires (proto_tools.c); proto.c dispatches there when
 * r->ncalls > 0. */
void mock__proto_tool_body(struct mock_buf *b, const struct mock_reply *r);
size_t mock__proto_tool_head_frames(const struct mock_reply *r);
size_t mock__proto_tool_frame_count(const struct mock_reply *r);
void mock__proto_tool_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt);
/* Pieces of the Responses wire shared with proto_tools.c: the response object (output_item: the
 * finished output item's writer, called when done) and an event's opening. */
void mock__proto_responses_obj(struct mock_buf *b, const struct mock_reply *r, int done,
                               void (*output_item)(struct mock_buf *, const struct mock_reply *));
void mock__proto_event_start(struct mock_buf *b, const char *type, size_t k);
/* Piece i of the reply text. */
void mock__proto_piece(const struct mock_reply *r, size_t i, const char **p, size_t *n);

/* Set to 1 on every thread that runs server code (libmicrohttpd's workers, the timer thread):
 * see mock_thread_is_server in mock/server.h. */
extern _Thread_local int mock__server_thread;

#endif
