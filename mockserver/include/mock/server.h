/*
 * mock/server.h - the configurable-latency mock LLM server (libmicrohttpd), as a library that
 * tests, stress programs, benchmarks and the CLI start in-process, and behind the `cx-mock`
 * executable.
 *
 * It speaks the OpenAI and Anthropic wire formats closely enough that the official SDKs work
 * against it with only their base URL changed. Replies are deterministic: the same request body
 * and seed give the same reply text, the same token counts and the same sampled latency.
 *
 * ROUTES
 *   POST /v1/chat/completions   OpenAI (also Kimi K2, Ollama, vLLM style clients). Non-streaming
 *                               and "stream": true (SSE "data: {chunk}" lines, a usage chunk when
 *                               "stream_options": {"include_usage": true}, then "data: [DONE]").
 *   POST /v1/messages           Anthropic. Non-streaming and "stream": true (event: message_start,
 *                               content_block_start, ping, content_block_delta..., content_block_stop,
 *                               message_delta (with usage), message_stop).
 *   POST /v1/messages/count_tokens  Anthropic token count ({"input_tokens": N}), no delay.
 *   POST /v1/embeddings         OpenAI embeddings: "input" a string, a list of strings, a token
 *                               list or a list of token lists; "dimensions" (default 1536, at
 *                               most 4096); "encoding_format" "float" (default) or "base64"
 *                               (little-endian float32, what the openai SDKs ask for). Each
 *                               text gets a unit vector drawn from the seed and the text's hash:
 *                               the same text, the same vector, in any request.
 *   POST /v1/completions        OpenAI legacy completions ("text_completion"): "prompt" a
 *                               string or list (the last one is answered), "max_tokens"
 *                               defaulting to 16 as in the real API; streaming like chat
 *                               ("data: {chunk}" ... "data: [DONE]", usage chunk on request).
 *   POST /v1/responses          OpenAI Responses API: "input" a string or a list of message
 *                               items ({"role", "content": string | [{"type": "input_text",
 *                               "text"}]}; other item types are skipped), "instructions",
 *                               "max_output_tokens" (past it: status "incomplete"). Streaming:
 *                               typed events response.created, response.in_progress,
 *                               response.output_item.added, response.content_part.added,
 *                               response.output_text.delta..., response.output_text.done,
 *                               response.content_part.done, response.output_item.done,
 *                               response.completed (or response.incomplete), each with its
 *                               sequence_number. The three routes take the global timing,
 *                               faults and the rate limit like chat (errors in OpenAI shape).
 *   GET  /v1/models/{id}        One model object.
 *   GET  /v1/models             OpenAI-style model list ({"object":"list","data":[...]}), which the
 *                               Anthropic SDK also accepts (it carries "type":"model" entries too).
 *   GET  /health                {"status":"ok"}.
 *   GET  /metrics               Prometheus text format (counters, gauges, histograms in seconds),
 *                               with mock_model_requests_total, mock_prompt_tokens_total and
 *                               mock_completion_tokens_total by {route, model} (at most 64
 *                               pairs; later ones count under model "_other").
 *   GET  /stats                 JSON statistics (shape below).
 *   GET  /admin/config          The current settings as JSON (keys as for POST /admin/config).
 *   POST /admin/config          Change settings while running: a JSON object whose keys are the
 *                               config keys below ({"latency": "150ms", "dist": "normal",
 *                               "stddev": "20ms", "fault.429": 0.1, "chat.ttft": "50ms"}); values
 *                               are strings or numbers. All-or-nothing: on any bad key or value
 *                               nothing changes and the answer is 400 naming the key.
 *   POST /admin/reset           Zero the statistics (and the per-body attempt counters that drive
 *                               probabilistic faults). Settings and scripted faults are kept.
 *   POST /admin/faults          Script faults: {"script": "next 3 429; next 1 ok; next 2 reset"}
 *                               or {"next": 3, "fault": "429"} (appends), {"clear": true}
 *                               (drops every scripted fault); "route": "chat" | "messages" |
 *                               "completions" | "responses" | "embeddings" and/or "model":
 *                               NAME aim the faults at those requests only (others pass them
 *                               by). Any other field is refused (400 naming it). GET
 *                               /admin/faults lists the queue ({"pending": N, "script":
 *                               [{"next","fault","route","model"}]}); DELETE clears it.
 *   GET  /admin/requests[?limit=N]  The request log, newest first: {"count", "total",
 *                               "dropped", "requests": [{"id", "time" (unix s), "method",
 *                               "path", "route", "headers" (credentials redacted: any header
 *                               named *key*, *token*, *auth*, *secret*, *password*, *cookie*
 *                               reads "[redacted]"), "body" (JSON when it parses, else a
 *                               string), "body_too_large", "model", "status" (0: closed
 *                               without one), "fault" (null or its name), "stream",
 *                               "duration_ms"}]}. The last `request_log` requests (default
 *                               100) on every route but /health, /metrics, /stats, /admin/.
 *   DELETE /admin/requests      Empties the log.
 *   GET  /admin/fixtures        The loaded fixture rules ({"source", "generation", "strict",
 *                               "recording", "rules": [{"index", "name", "route", "replies",
 *                               "calls", "file"}]}); PUT takes new rules as the body, DELETE
 *                               drops them, POST /admin/fixtures/reload re-reads the file (or
 *                               {"path": P}); a bad file answers 400 naming file, rule and field
 *                               and keeps the old rules. See mockserver/README.md "Fixtures".
 *   Unknown routes answer 404, known routes with the wrong method 405, both in the OpenAI error
 *   shape (or the Anthropic one under /v1/messages*). Bodies past max_body answer 413. Bad JSON
 *   or missing/mistyped fields answer 400 with each API's error object
 *   (OpenAI {"error":{"message","type":"invalid_request_error","param","code"}},
 *    Anthropic {"type":"error","error":{"type":"invalid_request_error","message"}}).
 *
 * AUTH
 *   Any key (or none) is accepted unless required_key is set; then OpenAI routes need
 *   "Authorization: Bearer <key>" and Anthropic routes need "x-api-key: <key>" (or the Bearer
 *   form; GET /v1/models takes either); otherwise 401 in each API's error shape (type "invalid_request_error"/code
 *   "invalid_api_key" for OpenAI, "authentication_error" for Anthropic). /health, /metrics,
 *   /stats and the /admin/ routes never need a key.
 *
 * CONFIG KEYS (the config file, mock_options.config_text, POST /admin/config and the long
 * command-line flags all use these; in a file: `key = value` lines, '#' starts a comment;
 * on the command line: --key VALUE, dots allowed, e.g. --chat.ttft 20ms)
 *   Durations are a number with an optional unit: "0", "150ms", "2s", "500us", "1.5s", "1m";
 *   a bare number means milliseconds. Probabilities are numbers in [0, 1].
 *   Timing (global; prefix "chat.", "messages." or "models." to override one route;
 *   GET /v1/models has no delay unless models.latency is set):
 *     latency D          base latency of a reply (non-streaming: time to the whole reply;
 *                        streaming: time to the first token when ttft is unset). Default 0.
 *     dist NAME          fixed | uniform | normal | lognormal (default fixed).
 *     latency_max D      uniform: the upper bound (latency is the lower bound).
 *     stddev D           normal: the standard deviation (latency is the mean).
 *     sigma F            lognormal: the shape (latency is the median). Default 0.5.
 *     ttft D             streaming: time to first token (same dist as latency; unset = latency).
 *     itl D              streaming: inter-token latency (fixed, scaled; default 0).
 *     itl_jitter F       streaming: each gap is itl * (1 +- itl_jitter), deterministic. Default 0.
 *   Samples are clamped to >= 0 and to at most 10 x the configured centre (and max_latency).
 *     max_latency D      hard cap on any sampled delay before scaling (default 600s).
 *   Global only:
 *     time_scale F       multiply every delay by F (0.01 turns 2s into 20ms). Default 1.
 *     seed N             seed of every deterministic choice. Default 0.
 *     max_running N      at most N API requests "running" at once (0 = no cap, the default);
 *                        the rest wait in a FIFO queue (time queued counts in the histograms).
 *     max_queue N        past N waiting, answer 503 (OpenAI) / 529 (Anthropic). 0 = unbounded.
 *     load_factor F      a request's latency is stretched by (1 + F * (running - 1)) where
 *                        running counts it and the others running when it starts. Default 0.
 *     rate_rps F         server-side rate limit (token bucket, requests/s; 0 = off) answering
 *     rate_burst N       429 with Retry-After when exceeded. Burst default = max(1, rate_rps).
 *     max_body N         bytes; larger request bodies get 413 (default 1048576).
 *     request_log N      requests GET /admin/requests keeps (default 100, at most 10000;
 *                        0 = off).
 *     pad_to N           pad every reply text to at least N bytes (0 = off).
 *     model NAME         model name echoed when the request has none (default "mock-1").
 *     required_key K     the one accepted API key (empty = any).
 *     stall D            how long a "stall" fault holds the request before closing the
 *                        connection (default 600s, NOT scaled).
 *     cut_after N        "cut" fault: close the stream after N content tokens (default 3).
 *     disconnect_after D "disconnect" fault: close after D (scaled, default 50ms).
 *     retry_after D      Retry-After of 429/503/529 faults (default 1s; header in whole
 *                        seconds rounded up, retry-after-ms exact). Not scaled.
 *     header_timeout D   slow clients: a connection still sending a request's headers this
 *                        long after it opened (or after its previous request ended: an idle
 *                        keep-alive connection counts as waiting for headers) is closed,
 *                        however steadily the bytes trickle in. Default 10s; 0 = off. Not
 *                        scaled. (connection_timeout_s only bounds silence.)
 *     body_timeout D     a request body not complete this long after its headers (a body
 *                        shorter than its Content-Length, or a trickle) closes the
 *                        connection. Default 10s; 0 = off. Not scaled.
 *   Fault probabilities (each 0..1; checked in the order listed, first hit wins):
 *     fault.429 fault.500 fault.502 fault.503 fault.529 fault.reset fault.stall
 *     fault.malformed fault.cut fault.disconnect fault.corrupt fault.duplicate
 *     fault.truncate fault.dangerous
 *
 * FAULT NAMES (probabilities above, scripts, mock_server_script_faults)
 *   ok          no fault (a scripted "ok" lets one request through untouched).
 *   429         rate limited: Retry-After, retry-after-ms and x-ratelimit-* (OpenAI) or
 *               anthropic-ratelimit-* (Anthropic) headers, each API's rate_limit_error body.
 *   500 502 503 server errors in each API's error shape ("api_error" for Anthropic).
 *   529         Anthropic "overloaded_error" (OpenAI routes get 503 instead).
 *   reset       headers and half the body, then the TCP connection is reset (SO_LINGER 0).
 *   stall       nothing is sent for `stall`; the client's timeout should fire first.
 *   malformed   200 with a body that is not valid JSON (streams: a non-JSON data line).
 *   cut         stream: end the stream after cut_after tokens with no final events
 *               (non-streaming: like reset).
 *   disconnect  non-streaming: close the connection after disconnect_after without a reply;
 *               streams: half the tokens flow, then the connection closes at disconnect_after
 *               (counted from the first token).
 *   corrupt     stream: one SSE frame carries broken JSON (non-streaming: like malformed).
 *   duplicate   stream: one content frame is sent twice (non-streaming: no effect).
 *   truncate    stream: the final event is cut short and the connection closed
 *               (non-streaming: the body is truncated, then the connection closed).
 *   dangerous   the install plan in the reply contains one dangerous command.
 *   Status faults (429, 5xx) and the rate limit answer at once, without latency. Faults apply
 *   to the API routes only (chat, messages, completions, responses, embeddings). Scripted
 *   faults run first, in order, one per API request; probabilistic ones are drawn per request
 *   from (seed, body hash, how many times this body was seen), so a run with the same seed
 *   and the same requests faults the same ones, and a retried identical body gets a fresh
 *   draw.
 *
 * STATS JSON (GET /stats, mock_server_stats_json); times in milliseconds:
 *   {"uptime_s": F, "requests": N, "in_flight": N, "in_flight_max": N, "running": N,
 *    "queued": N, "queued_max": N,
 *    "routes": {"chat": {"requests": N, "status": {"200": N, "429": N, ...}}, "messages": {..},
 *               "models": {..}, "health": {..}, "metrics": {..}, "stats": {..},
 *               "admin": {..}, "other": {..}},
 *    "faults": {"429": N, "reset": N, ...}            (only injected faults, by name)
 *    "rate_limited": N,                               (429s from the rate limit)
 *    "tokens": [{"route", "model", "requests", "prompt_tokens", "completion_tokens"}],
 *    "histograms": {"configured": H, "delivered": H, "error": H, "queued": H, "ttft": H,
 *                   "itl": H, "e2e": H, "timer_late": H, "resume": H}}
 *   where H = {"count": N, "mean": F, "min": F, "max": F, "p50": F, "p90": F, "p99": F,
 *              "p999": F}.
 *   configured: the scaled delay chosen for each reply (ttft for streams); delivered: the
 *   delay actually observed from the request's arrival to its first byte being queued to the
 *   socket (includes queueing); error: |delivered - configured - queued|; queued: time waiting
 *   for a max_running slot; ttft: arrival to first token (streams); itl: gap between tokens;
 *   e2e: arrival to the last byte handed to the socket; timer_late: how long after its
 *   deadline the timer resumed a suspended connection (delays and token gaps); resume: from
 *   that resume to the handler running again for the reply (a delayed reply's error is its
 *   timer_late plus its resume). Histograms are log-bucketed
 *   (about 0.4% relative resolution).
 *
 * THREADS
 *   libmicrohttpd runs an epoll thread pool (`threads`, default 2) and one timer thread wakes
 *   suspended connections; a delayed reply never holds a thread. All functions below are safe
 *   from any thread unless stated.
 */
#ifndef MOCK_SERVER_H
#define MOCK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mock_server;

/* Options for mock_server_start. Call mock_options_init first, then change what you need. */
struct mock_options {
    const char *host;         /* listen address: IPv4 or IPv6 literal, or "localhost";
                                 default "127.0.0.1" */
    int port;                 /* 0 = pick a free port (default) */
    const char *port_file;    /* when set, the chosen port is written here (tmp + rename) once
                                 listening, and removed by mock_server_stop; NULL = none */
    unsigned threads;         /* libmicrohttpd worker threads (epoll); default 2 */
    unsigned connection_limit; /* default 20000 (raised open-files soft limit permitting) */
    unsigned connection_timeout_s; /* idle keep-alive connections closed after this; default 60 */
    int quiet;                /* 0: log errors to stderr; 1: silent (default 1) */
    /* Config text with `key = value` lines (keys above), applied first; then the fields
       below override it when they are not at their "unset" values. May be NULL. Borrowed. */
    const char *config_text;
    uint64_t seed;            /* default 0 */
    double time_scale;        /* default 1.0; must be >= 0 */
    double latency_ms;        /* fixed base latency in ms; < 0 = unset (default -1) */
    const char *required_key; /* NULL or "" = any key (default) */
    size_t max_body;          /* 0 = default 1 MiB */
    /* Fixtures and record/replay (README "Fixtures"); at most one of the three paths. */
    const char *fixtures_path; /* a fixture file (or a directory of them); NULL = none */
    const char *replay_dir;    /* a directory of recorded exchanges to serve; NULL = none */
    const char *record_dir;    /* proxy every API request to upstream and record it here */
    const char *upstream;      /* with record_dir: the real API's origin, e.g.
                                  "https://api.openai.com" (the request path is appended) */
    int strict;                /* 1: an API request no fixture matches gets a 404 naming the
                                  closest rule, instead of generated content */
};

/* Fills o with the defaults above. Threads: any thread. */
void mock_options_init(struct mock_options *o);

/* Why mock_server_start failed (its negative results; cx-mock maps each to an exit status). */
enum mock_start_error {
    MOCK_EINVAL = -1,    /* a bad setting or option (config key or value, host, port) */
    MOCK_ELISTEN = -2,   /* cannot listen on host:port (in use, not permitted) */
    MOCK_EPORTFILE = -3, /* the port file cannot be written */
    MOCK_ENOMEM = -4,    /* out of memory */
    MOCK_ESYSTEM = -5,   /* a thread could not be started */
    MOCK_EFIXTURES = -6  /* the fixture file or directory is bad (or record cannot start) */
};

/* Starts a server. On success *out is a running server (listening, port file written) and the
 * result is 0; on failure the result is one of enum mock_start_error (< 0), *out is NULL and
 * err (when errlen > 0) holds a message naming what was wrong (a bad config key, the port in
 * use, ...). mock_server_stop removes the port file again.
 * o and its strings are borrowed (copied). Threads: any thread. */
int mock_server_start(const struct mock_options *o, struct mock_server **out, char *err,
                      size_t errlen);

/* The bound TCP port. Threads: any thread. */
int mock_server_port(const struct mock_server *s);

/* "http://HOST:PORT" (no trailing slash). Owned by the server; valid until mock_server_stop.
 * OpenAI SDKs take base_url = url + "/v1"; Anthropic SDKs take base_url = url.
 * Threads: any thread. */
const char *mock_server_url(const struct mock_server *s);

/* Applies settings while running, exactly as POST /admin/config does. text is either a JSON
 * object ({"latency": "100ms", ...}) or config-file text (`latency = 100ms` lines); detected by
 * a leading '{'. All-or-nothing. Returns 0, or -1 with err naming the bad key or value.
 * Threads: any thread. */
int mock_server_configure(struct mock_server *s, const char *text, char *err, size_t errlen);

/* Replaces the fixtures with those of path (a fixture file or a directory of them; NULL:
 * re-read the current source), as POST /admin/fixtures/reload does. All-or-nothing: on a bad
 * file the old fixtures stay and err names the file, the rule and the field. Requests already
 * matched keep the set they matched until they finish. Returns 0 or -1. Threads: any thread. */
int mock_server_load_fixtures(struct mock_server *s, const char *path, char *err,
                              size_t errlen);

/* The same from fixture JSON text (as PUT /admin/fixtures does); name labels errors.
 * Threads: any thread. */
int mock_server_set_fixtures(struct mock_server *s, const char *json, size_t len,
                             const char *name, char *err, size_t errlen);

/* Most scripted faults pending at once (the sum of the queue's counts); it fits an unsigned,
 * so mock_server_scripted_pending never wraps. */
#define MOCK_SCRIPT_MAX_PENDING 4294967295u

/* Appends scripted faults, same syntax as {"script": ...}: statements separated by ';' or
 * newlines, each "next N FAULT" or "clear", words separated by blanks; N is decimal digits
 * only (no sign), 1..1000000000. Example: "next 3 429; next 1 ok; next 1 reset".
 * All-or-nothing. Returns 0, or -1 with err naming the bad statement. A script that
 * would leave more than MOCK_SCRIPT_MAX_PENDING faults pending (counting what is already
 * queued, unless the script clears it) is refused. Threads: any thread. */
int mock_server_script_faults(struct mock_server *s, const char *script, char *err,
                              size_t errlen);

/* Like mock_server_script_faults, but the faults only hit requests on this route ("chat",
 * "messages", "completions", "responses", "embeddings"; NULL or "" = any) whose "model" is
 * this one (NULL or "" = any). A request takes the first queued fault aimed at it; faults aimed
 * elsewhere keep their place. -1 with err naming a bad route. Threads: any thread. */
int mock_server_script_faults_for(struct mock_server *s, const char *script, const char *route,
                                  const char *model, char *err, size_t errlen);

/* Number of scripted faults still waiting (at most MOCK_SCRIPT_MAX_PENDING).
 * Threads: any thread. */
unsigned mock_server_scripted_pending(const struct mock_server *s);

/* The stats JSON (shape above), returned: the caller frees it with free(). NULL on out of
 * memory. Threads: any thread. */
char *mock_server_stats_json(struct mock_server *s);

/* A few counters for tests without parsing JSON. Threads: any thread. */
struct mock_counts {
    uint64_t requests;        /* every request answered or closed, all routes */
    uint64_t api_requests;    /* chat, messages, completions, responses, embeddings */
    uint64_t faults;          /* injected faults (scripted or drawn), excluding "ok" */
    uint64_t rate_limited;    /* 429s from the server-side rate limit */
    unsigned in_flight;       /* requests received and not yet finished */
    unsigned in_flight_max;
    uint64_t status_2xx, status_4xx, status_5xx;
};
void mock_server_counts(struct mock_server *s, struct mock_counts *out);

/* Zeroes the statistics like POST /admin/reset. Threads: any thread. */
void mock_server_reset_stats(struct mock_server *s);

/* Stops listening, answers or closes every request in flight (suspended ones are resumed and
 * closed), joins every thread and frees everything. Accepts NULL.
 * Threads: any thread but not twice for one server, and not from inside a request. */
void mock_server_stop(struct mock_server *s);

/* 1 when the calling thread is one of a mock server's own threads (a libmicrohttpd worker or
 * the timer thread), 0 otherwise. The in-process server shares cJSON's global allocation hooks
 * with the code that embeds it; a test that fails or counts allocations uses this to leave the
 * server's allocations out. Threads: any thread. */
int mock_thread_is_server(void);

/* Runs the cx-mock command line (argv as given to main). Used by main.c so the flag parser can
 * be tested in-process. Returns the process exit status. Blocks until SIGINT/SIGTERM.
 * Threads: main thread (installs signal handling). */
int mock_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* MOCK_SERVER_H */
