/*
 * cx/http.h - one LLM call over HTTP (libcurl): the Anthropic Messages API and the OpenAI-compatible
 * Chat Completions API (OpenAI, Kimi K2, Ollama, any base URL), streaming (SSE) and not.
 *
 * A call has three steps, so the two I/O designs can share everything but the waiting:
 *   1. cx_http_xfer_new: build the JSON body and headers from a cx_http_request (CPU);
 *   2. move the bytes: cx_http_client_perform (thread-local design: the calling thread blocks on
 *      its own curl easy handle) or cx_ioloop_submit (hybrid design, cx/ioloop.h: one I/O thread
 *      drives every transfer through a curl multi handle);
 *   3. cx_http_xfer_finish: map the status / curl result to a CX_E* code, parse the body or the
 *      SSE event stream into a cx_http_result (CPU).
 * Both designs run steps 1 and 3 through the same code, so they give identical results.
 *
 * Base URLs. The official SDKs disagree: the OpenAI SDK's base carries the version and it
 * appends "/chat/completions" ("https://api.openai.com/v1"), the Anthropic SDK's base has none
 * and it appends "/v1/messages" ("https://api.anthropic.com"). Here one convention serves both,
 * so either spelling works with either wire format: a base is normalized (cx_http_base_url_
 * normalize, which cx_http_xfer_new applies to every request) to the *versioned* base, the URL
 * the client appends "/chat/completions" (OpenAI) or "/messages" (Anthropic) to:
 *   - the scheme and host are lowercased, trailing '/' removed, the port written in decimal;
 *   - an endpoint the client appends itself is dropped (a pasted ".../v1/chat/completions" or
 *     ".../v1/messages" works);
 *   - a base whose path ends in "/v1" is kept as it is, so "http://HOST/v1" behaves exactly as
 *     it always has;
 *   - OpenAI format: a base with no path gets "/v1" ("http://HOST" -> "http://HOST/v1"); any
 *     other path is kept, as the OpenAI SDK keeps it ("/api/openai/v1", "/v1beta/openai");
 *   - Anthropic format: a base not ending in "/v1" gets it, as the Anthropic SDK appends it
 *     ("http://HOST" -> "http://HOST/v1", "https://gw.example/anthropic" -> ".../anthropic/v1");
 *   - a query ("?api-version=1") is kept and stays after the endpoint; a fragment is refused.
 * Only http and https are accepted, with a host, a port in 1..65535 and no spaces, control
 * characters or non-ASCII bytes; anything else is CX_EINVAL before any I/O, with a message
 * naming the URL redacted ("base URL 'ftp://x': scheme 'ftp' is not supported (use http or
 * https)").
 *
 * URL credentials: a base may carry "user:password@" (sent by curl as HTTP Basic auth). Every
 * URL this module puts in a message goes through cx_http_url_redact first, and the password is
 * redacted from curl's and the server's text too. Callers that store or print a base URL (cache
 * keys, logs, errors) must do the same.
 *
 * Keys: taken as options (the config module reads the environment), sent only in the
 * Authorization / x-api-key header, never copied into an error message or a log line, and wiped
 * from the header list when a transfer is freed. A server error message that happens to echo the
 * key is redacted before it reaches a cx_errinfo.
 *
 * Errors (the HTTP status, when there is one, is in ei->detail; the API's own error message in
 * ei->msg): 429 CX_ERATELIMIT (retry_after_s from retry-after-ms / Retry-After), 529 or an
 * "overloaded_error" CX_EOVERLOADED, other 5xx CX_ESERVER, 401/403 CX_EAUTH, other 4xx CX_EHTTP,
 * connect failures and resets CX_ECONN, timeouts CX_ETIMEDOUT, cancellation CX_ECANCELED, a body
 * that is not the API's shape CX_EPARSE.
 */
#ifndef CX_HTTP_H
#define CX_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"

/* A cancel flag: C11 atomic_int, and the same object seen from C++ (std::atomic<int> has the same
 * size, alignment and representation, which is what C++23's <stdatomic.h> relies on too). */
#ifdef __cplusplus
#include <atomic>
typedef std::atomic<int> cx_cancel_flag;
#else
#include <stdatomic.h>
typedef atomic_int cx_cancel_flag;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Which wire format a provider speaks. */
enum cx_api {
    CX_API_OPENAI = 0,    /* POST {versioned base}/chat/completions, "Authorization: Bearer KEY" */
    CX_API_ANTHROPIC = 1  /* POST {versioned base}/messages, "x-api-key: KEY", anthropic-version */
};

/* Default cap on a response body (bytes). */
#define CX_HTTP_DEFAULT_MAX_BODY (8u * 1024u * 1024u)

/*
 * One request. Every pointer is borrowed for the duration of cx_http_xfer_new (the transfer copies
 * what it needs), except `cancel`, which must stay valid until the transfer is finished.
 */
struct cx_http_request {
    enum cx_api api;
    const char *base_url;     /* required, e.g. "http://127.0.0.1:8080/v1" or "http://127.0.0.1:8080"
                                 (normalized as "Base URLs" above says) */
    const char *api_key;      /* NULL or "" for servers without auth (Ollama, the mock) */
    const char *model;        /* required */
    const char *system;       /* system prompt, NULL for none */
    const char *prompt;       /* the user message, required */
    int max_tokens;           /* > 0; default 4096 */
    double temperature;       /* default 0.7 */
    int stream;               /* 1: ask for SSE and assemble the events */
    uint64_t deadline;        /* absolute cx_now_ns() deadline for the whole transfer, or
                                 CX_DEADLINE_NONE */
    long connect_timeout_ms;  /* 0: 10,000 */
    size_t max_body;          /* response cap in bytes, 0: CX_HTTP_DEFAULT_MAX_BODY */
    const char *extra_header; /* one extra "Name: value" header (tests drive the mock's faults
                                 with it), NULL for none */
    const cx_cancel_flag *cancel; /* optional: when it becomes non-zero the transfer stops with
                                 CX_ECANCELED (seen within ~1 s in the blocking design; at once
                                 in the hybrid design through cx_ioloop_cancel) */
};

/* Fills defaults (max_tokens 4096, temperature 0.7, no deadline, everything else 0/NULL).
 * Threads: any thread. */
CX_API void cx_http_request_init(struct cx_http_request *req);

/* A parsed answer. Owned strings are freed by cx_http_result_clear. */
struct cx_http_result {
    char *content;            /* owned: the assistant's text (all text blocks / deltas joined) */
    char *model;              /* owned: the model the server reports, NULL when absent */
    long status;              /* HTTP status (200) */
    int64_t prompt_tokens;    /* usage as reported; -1 when the server did not report it or
                                 reported a count that is not a whole number in 0..2^53 */
    int64_t completion_tokens;
    double retry_after_s;     /* only on failure: seconds from Retry-After, -1 when absent */
};

/* Zeroes a result (usage -1, retry_after -1). Threads: any thread. */
CX_API void cx_http_result_init(struct cx_http_result *res);
/* Frees what a result owns and re-inits it. Accepts NULL. Threads: any thread. */
CX_API void cx_http_result_clear(struct cx_http_result *res);

/* ---- transfers: one prepared request plus its raw answer ---- */

struct cx_http_xfer;

/*
 * Builds a transfer from req: the JSON body (system prompt placement differs per API; streaming
 * OpenAI requests ask for usage with stream_options), the headers and the URL (the base
 * normalized, see "Base URLs"). *out is returned: free it with cx_http_xfer_free. The curl easy
 * handle is attached later by whoever moves the bytes.
 * Returns 0, CX_EINVAL (a required field missing or a bad base URL, naming it) or CX_ENOMEM.
 * Threads: any thread.
 */
CX_API int cx_http_xfer_new(const struct cx_http_request *req, struct cx_http_xfer **out,
                            struct cx_errinfo *ei);

/* Frees a transfer that is not in flight; wipes the key from its headers. Accepts NULL.
 * Threads: the thread that owns it. */
CX_API void cx_http_xfer_free(struct cx_http_xfer *x);

/*
 * Turns the raw answer of a performed transfer into a result: maps curl failures and HTTP status
 * codes to CX_E* (see the top of this file) and parses the body (JSON, or SSE when the request
 * streamed). On success fills *out (which the caller clears). On failure fills ei and sets
 * out->retry_after_s / out->status where known (nothing else in *out is owned then).
 * May be called once per perform.
 * Threads: any thread, one at a time per transfer (this is the CPU step of the hybrid design).
 */
CX_API int cx_http_xfer_finish(struct cx_http_xfer *x, struct cx_http_result *out,
                               struct cx_errinfo *ei);

/* The request body (NUL-terminated JSON) the transfer will send, for tests and debugging.
 * Borrowed: valid until the transfer is freed. Threads: owner. */
CX_API const char *cx_http_xfer_body(const struct cx_http_xfer *x);
/* The URL the transfer will post to, credentials included (print it through
 * cx_http_url_redact). Borrowed like the body. Threads: owner. */
CX_API const char *cx_http_xfer_url(const struct cx_http_xfer *x);

/*
 * Parses a complete response body without any I/O (tests, the fuzzer, replay): `stream` selects
 * SSE. status is the HTTP status the body came with (non-2xx gives the mapped error with the
 * API's message). Fills *out on success. Returns 0 or a CX_E* as cx_http_xfer_finish does.
 * Threads: any thread.
 */
CX_API int cx_http_parse(enum cx_api api, int stream, long status, const char *body, size_t len,
                         struct cx_http_result *out, struct cx_errinfo *ei);

/*
 * Parses a Retry-After style header value: "retry-after-ms: 250" (is_ms=1) or "Retry-After: 1.5"
 * / an HTTP date (is_ms=0). Returns seconds (>= 0, capped at 86,400 so a caller can convert to
 * nanoseconds without overflow) or -1 when the value is not understood.
 * Threads: any thread.
 */
CX_API double cx_http_parse_retry_after(const char *value, int is_ms);

/* ---- URLs ---- */

/*
 * Writes url into out[outlen] without its credentials: the userinfo ("user:password@") is
 * removed, and the value of every query or fragment parameter named like a credential (key,
 * api_key, api-key, apikey, x-api-key, token, access_token, refresh_token, id_token, auth,
 * auth_token, password, passwd, pass, secret, client_secret, signature, sig; any case) becomes
 * REDACTED. Control characters are written percent-encoded, so the result is safe to print. Works
 * on any string, URL or not ("user:pw@host:11434" loses "user:pw@" too). Use it for every URL that
 * is stored (cache keys) or printed (errors, logs).
 * url and out are borrowed. Returns 0; CX_ETOOBIG when out was too small (out then holds a
 * NUL-terminated prefix of the redacted text, never any of the removed secrets); CX_EINVAL when url
 * or out is NULL or outlen is 0 (out, if any, is "").
 * Threads: any thread.
 */
CX_API int cx_http_url_redact(const char *url, char *out, size_t outlen);

/*
 * Validates a base URL and normalizes it for the wire format api, as "Base URLs" at the top of
 * this file says (the same step cx_http_xfer_new applies; normalizing twice changes nothing).
 * url is borrowed; *out is returned (free it with cx_free; it keeps the URL's credentials, so
 * redact it before storing or printing it). Returns 0, CX_EINVAL with ei->msg naming the URL
 * redacted and what is wrong ("base URL 'notaurl' is not an http(s) URL (expected
 * http://HOST[:PORT][/PATH])", "base URL 'http://h:0/v1': port 0 is out of range (1..65535)"),
 * or CX_ENOMEM. On failure *out is NULL.
 * Threads: any thread.
 */
CX_API int cx_http_base_url_normalize(enum cx_api api, const char *url, char **out,
                                      struct cx_errinfo *ei);

/* ---- the thread-local client (the seed's ThreadLocalClients, section 4.1) ---- */

struct cx_http_client_options {
    long max_connections;     /* connection cache size per thread handle; 0: 64 */
    int share_connections;    /* 1 (default): DNS, connection and TLS-session caches shared
                                 between the threads' handles through one curl share object */
};
/* Threads: any thread. */
CX_API void cx_http_client_options_init(struct cx_http_client_options *o);

struct cx_http_client;

/*
 * A client whose every calling thread gets its own curl easy handle (created on first use, kept
 * for that thread, cleaned at thread exit or at cx_http_client_free), with caches shared through
 * a curl share object guarded by one mutex per lock data. opts may be NULL (defaults).
 * Returns 0, CX_ENOMEM or CX_EIO (curl could not initialise).
 * Threads: any thread.
 */
CX_API int cx_http_client_new(const struct cx_http_client_options *opts,
                              struct cx_http_client **out, struct cx_errinfo *ei);

/*
 * Frees the client and every thread's handle. No thread may be inside a call on it, and threads
 * that used it must either have exited or never use it again. Accepts NULL.
 * Threads: any thread, once.
 */
CX_API void cx_http_client_free(struct cx_http_client *c);

/*
 * Performs x on the calling thread's easy handle, blocking until the answer is in, the deadline
 * passes or the request's cancel flag is set. The emulated GIL is released around the wait
 * (cx_gil_io_begin / cx_gil_io_end). Returns 0 when the bytes moved (then call
 * cx_http_xfer_finish, which also reports transport errors), or CX_ENOMEM.
 * Threads: any thread; one transfer per thread at a time.
 */
CX_API int cx_http_client_perform(struct cx_http_client *c, struct cx_http_xfer *x,
                                  struct cx_errinfo *ei);

/*
 * Convenience: xfer_new + perform + finish + free. Returns 0 with *out filled, or a CX_E*.
 * Threads: any thread.
 */
CX_API int cx_http_client_complete(struct cx_http_client *c, const struct cx_http_request *req,
                                   struct cx_http_result *out, struct cx_errinfo *ei);

/* Counters: easy handles created (one per thread that used the client), transfers performed
 * and the new connections they opened (a transfer that reused a kept-alive connection opened
 * none; bench_gate_wall's connection-reuse figure). Threads: any thread. */
#define CX_HTTP_CLIENT_STATS_CONNECTS 1 /* the connects field exists (older trees lack it) */
struct cx_http_client_stats {
    uint64_t handles_created;
    uint64_t transfers;
    uint64_t connects;
};
CX_API void cx_http_client_stats(struct cx_http_client *c, struct cx_http_client_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CX_HTTP_H */
