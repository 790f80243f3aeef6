/*
 * http_internal.h - what the http_*.c files share with each other and with ioloop.c: the
 * transfer's layout, the calls that put a transfer on a curl easy handle and record how it ended,
 * and the answer parser's context and helpers that the wire-format files use. Not part of the
 * public API.
 *
 * The files: http_xfer.c (transfer set-up and end, Retry-After, curl error mapping),
 * http_answer.c (status and error bodies, cx_http_parse), http_sse.c (SSE framing),
 * http_openai.c and http_anthropic.c (the two wire formats), http_url.c (base URL validation,
 * normalization and redaction), http_client.c (the thread-local blocking client).
 */
#ifndef CX_HTTP_INTERNAL_H
#define CX_HTTP_INTERNAL_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdatomic.h>

#include "cx/http.h"
#include "cx_internal.h"

/* Why a transfer stopped early (set by the progress callback or by the I/O loop). */
enum {
    CX__ABORT_NONE = 0,
    CX__ABORT_CANCEL = 1,   /* the request's cancel flag or cx_ioloop_cancel */
    CX__ABORT_DEADLINE = 2, /* the deadline had passed before the transfer could start */
    CX__ABORT_CLOSED = 3    /* the I/O loop shut down with the transfer in it */
};

struct cx_http_xfer {
    enum cx_api api;
    int stream;
    char *url;                  /* owned: may carry user:password@, wiped on free */
    char *url_shown;            /* owned: url redacted (cx_http_url_redact), for every message */
    const char *cred_ref;       /* points into url: its userinfo secret, for redaction; or NULL */
    size_t cred_len;
    char *body;                 /* owned: JSON request body */
    size_t body_len;
    struct curl_slist *headers; /* owned; the key lives here only, wiped on free */
    const char *key_ref;        /* points into headers: the key, for redaction; NULL if none */
    size_t key_len;
    uint64_t deadline;
    long connect_timeout_ms;
    const cx_cancel_flag *cancel; /* borrowed from the request */

    /* the raw answer, written by curl's callbacks on whichever thread moves the bytes */
    struct cx__buf resp;
    long status;
    double retry_after_s;
    int write_err;              /* CX_ETOOBIG / CX_ENOMEM from the write callback */
    int curl_rc;                /* CURLcode of the transfer */
    int abort_reason;           /* CX__ABORT_* */
    int performed;              /* 1 once the bytes moved (or the attempt ended) */
    long connects;              /* new connections the transfer opened (CURLINFO_NUM_CONNECTS) */
    uint64_t started_ns;
    uint64_t first_body_ns;     /* when the first body byte arrived (0: none yet) */
    char errbuf[CURL_ERROR_SIZE];

    /* used by ioloop.c only (I/O thread, or under the loop's mutex while queued) */
    CURL *easy;
    struct cx_http_xfer *next, *prev;
    void (*done)(struct cx_http_xfer *x, void *ud);
    void *ud;
    atomic_int cancel_req;
};

/* Resets `easy` and sets every option for x (URL, body, headers, timeouts from the deadline,
 * callbacks writing into x). Clears x's previous raw answer. Returns 0 or CX_ENOMEM / CX_EIO.
 * Caller owns both. */
int cx__http_xfer_attach(struct cx_http_xfer *x, CURL *easy);
/* Records the end of a transfer: the CURLcode and the HTTP status from easy. */
void cx__http_xfer_ended(struct cx_http_xfer *x, CURL *easy, CURLcode rc);
/* Marks x as ended without moving bytes (abort_reason says why). */
void cx__http_xfer_abort(struct cx_http_xfer *x, int reason);
/* curl_global_init through pthread_once; 0 or CX_EIO. */
int cx__http_global_init(void);

/* ---- answer parsing, shared by http_answer.c, http_sse.c and the wire-format files ---- */

struct cx__http_parse_ctx {
    struct cx__buf text;
    char *model;
    int64_t in_tok, out_tok;
    int done;       /* [DONE] / message_stop seen */
    int err;        /* an error event */
    char errmsg[256];
    const char *key;
    size_t key_len;
};

/* o[name] when it is a string, else NULL (borrowed from o). */
const char *cx__http_jstr(const cJSON *o, const char *name);
/* A usage count o[name] the server sent, or -1 (absent or not a whole number in 0..2^53). */
int64_t cx__http_jint(const cJSON *o, const char *name);
/* Replaces every occurrence of key[0..kl) in the NUL-terminated s[cap] with "[redacted]". */
void cx__http_redact(char *s, size_t cap, const char *key, size_t kl);
/* Keeps the first model name seen; 0 or CX_ENOMEM. */
int cx__http_set_model(struct cx__http_parse_ctx *p, const char *m);
/* Records an error object (an error event, or an error body with a 2xx status) in p. Returns 0. */
int cx__http_stream_error(struct cx__http_parse_ctx *p, const cJSON *root);
/* After cJSON failed on len bytes: CX_ENOMEM if memory ran out, else CX_EPARSE. */
int cx__http_json_fail_code(size_t len);
/* Appends {"role": role, "content": content} to the array msgs (both APIs' message shape).
 * 0 or CX_ENOMEM (msgs may then hold a partial message; the caller deletes the whole tree). */
int cx__http_add_message(cJSON *msgs, const char *role, const char *content);
/* The JSON request body for req (returned: free with cJSON_free), or NULL when out of memory. */
char *cx__http_openai_body(const struct cx_http_request *req);
char *cx__http_anthropic_body(const struct cx_http_request *req);
/* A plain (non-streamed) answer's text and usage into p; 0, CX_EPARSE or CX_ENOMEM. */
int cx__http_openai_plain(struct cx__http_parse_ctx *p, const cJSON *root);
int cx__http_anthropic_plain(struct cx__http_parse_ctx *p, const cJSON *root);
/* One OpenAI stream chunk / one Anthropic stream event into p; 0, CX_EPARSE or CX_ENOMEM. */
int cx__http_openai_chunk(struct cx__http_parse_ctx *p, const cJSON *root);
int cx__http_anthropic_event(struct cx__http_parse_ctx *p, const cJSON *root);
/* An SSE body into p through the API's event parser. */
int cx__http_parse_sse(enum cx_api api, const char *body, size_t len, struct cx__http_parse_ctx *p);
/* Redacts x's key and URL credentials from s[cap] (x NULL: nothing to redact). */
void cx__http_redact_secrets(char *s, size_t cap, const struct cx_http_xfer *x);
/* A status + body into *out (success) or ei (failure). x (NULL for cx_http_parse) names the URL
 * in messages and gives the secrets to redact from them. */
int cx__http_parse_body(enum cx_api api, int stream, long status, const char *body, size_t len,
                        const struct cx_http_xfer *x, struct cx_http_result *out,
                        struct cx_errinfo *ei);

/* ---- URLs (http_url.c) ---- */

/* The URL a transfer posts to: base normalized (cx_http_base_url_normalize) with the API's
 * endpoint inserted before any query. *out returned: free with cx__free. 0, CX_EINVAL (naming the
 * redacted URL) or CX_ENOMEM. */
int cx__http_endpoint_url(enum cx_api api, const char *base, char **out, struct cx_errinfo *ei);
/* cx_http_url_redact into a fresh string (returned: free with cx__free), NULL when out of memory. */
char *cx__http_url_redact_dup(const char *url);
/* The secret in url's userinfo (the password, or the user name when there is no password) as
 * [*ref, *ref + *len) inside url; *ref NULL when there is none or it is shorter than 4 bytes
 * (redacting a 1-3 byte string from a message would garble it for no gain). */
void cx__http_url_secret(const char *url, const char **ref, size_t *len);

#endif /* CX_HTTP_INTERNAL_H */
