/*
 * http_xfer.c - one transfer's set-up and end: the URL (the base normalized by http_url.c),
 * headers and body of a cx_http_request, the curl easy options and callbacks, Retry-After, and
 * how a transfer ended (curl code, HTTP status) mapped to a CX_E*, with every URL in a message
 * redacted.
 *
 * What it does not do: the wire formats' bodies and answers (http_openai.c, http_anthropic.c,
 * http_sse.c, http_answer.c), waiting for the bytes (http_client.c blocks on a thread's handle,
 * ioloop.c drives a multi handle), retries and routing (router.c).
 *
 * Keys: the key is copied only into the transfer's header list ("Authorization: Bearer ..." /
 * "x-api-key: ..."), which is wiped before it is freed. No message built here contains it; a server
 * message that echoes it is redacted.
 */
#include "cx/http.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cx/clock.h"
#include "cx_testing.h"
#include "http_internal.h"

/* ---- global init ---- */

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static int g_curl_rc;

static void curl_once(void) {
    g_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : CX_EIO;
}

int cx__http_global_init(void) {
    cx__json_hooks_init();
    pthread_once(&g_curl_once, curl_once);
    return g_curl_rc;
}

/* ---- small value types ---- */

void cx_http_request_init(struct cx_http_request *req) {
    memset(req, 0, sizeof *req);
    req->api = CX_API_OPENAI;
    req->max_tokens = 4096;
    req->temperature = 0.7;
    req->deadline = CX_DEADLINE_NONE;
}

void cx_http_result_init(struct cx_http_result *res) {
    memset(res, 0, sizeof *res);
    res->prompt_tokens = -1;
    res->completion_tokens = -1;
    res->retry_after_s = -1;
}

void cx_http_result_clear(struct cx_http_result *res) {
    if (res == NULL) return;
    cx__free(res->content);
    cx__free(res->model);
    cx_http_result_init(res);
}

/* Wipes memory the compiler may not elide (the key in a header). */
static void wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--) *v++ = 0;
}


/* ---- building a request ---- */

static int add_header(struct curl_slist **list, const char *line) {
    struct curl_slist *n = curl_slist_append(*list, line);
    if (n == NULL) return CX_ENOMEM;
    *list = n;
    return 0;
}

static void free_headers(struct cx_http_xfer *x) {
    for (struct curl_slist *h = x->headers; h; h = h->next) {
        if (h->data) wipe(h->data, strlen(h->data));
    }
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    x->key_ref = NULL;
    x->key_len = 0;
}

/* Appends "prefix KEY" as a header and remembers where the key sits for redaction. */
static int add_key_header(struct cx_http_xfer *x, const char *prefix, const char *key) {
    size_t pl = strlen(prefix), kl = strlen(key);
    char *line = cx__malloc(pl + kl + 1);
    if (line == NULL) return CX_ENOMEM;
    memcpy(line, prefix, pl);
    memcpy(line + pl, key, kl + 1);
    int rc = add_header(&x->headers, line);
    wipe(line, pl + kl);
    cx__free(line);
    if (rc < 0) return rc;
    struct curl_slist *last = x->headers;
    while (last->next) last = last->next;
    x->key_ref = last->data + pl;
    x->key_len = kl;
    return 0;
}

int cx__http_add_message(cJSON *msgs, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (m == NULL) return CX_ENOMEM;
    if (!cJSON_AddItemToArray(msgs, m)) {
        cJSON_Delete(m);
        return CX_ENOMEM;
    }
    /* m belongs to msgs now: a failure below leaves a partial message the caller deletes */
    if (!cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content))
        return CX_ENOMEM;
    return 0;
}

int cx_http_xfer_new(const struct cx_http_request *req, struct cx_http_xfer **out,
                     struct cx_errinfo *ei) {
    if (out == NULL || req == NULL) return cx__err(ei, CX_EINVAL, "cx_http_xfer_new: req/out is NULL");
    *out = NULL;
    if (req->base_url == NULL || req->base_url[0] == '\0')
        return cx__err(ei, CX_EINVAL, "cx_http_request.base_url is empty");
    if (req->model == NULL || req->model[0] == '\0')
        return cx__err(ei, CX_EINVAL, "cx_http_request.model is empty");
    if (req->prompt == NULL) return cx__err(ei, CX_EINVAL, "cx_http_request.prompt is NULL");
    if (req->max_tokens <= 0)
        return cx__err(ei, CX_EINVAL, "cx_http_request.max_tokens is %d (must be > 0)", req->max_tokens);
    if (req->api != CX_API_OPENAI && req->api != CX_API_ANTHROPIC)
        return cx__err(ei, CX_EINVAL, "cx_http_request.api is %d (unknown)", (int)req->api);
    if (!(req->temperature >= 0 && req->temperature <= 2))
        return cx__err(ei, CX_EINVAL, "cx_http_request.temperature is %g (must be 0..2)",
                       req->temperature);
    int rc = cx__http_global_init();
    if (rc < 0) return cx__err(ei, rc, "curl_global_init failed");

    struct cx_http_xfer *x = cx__calloc(1, sizeof *x);
    if (x == NULL) return cx__err(ei, CX_ENOMEM, "cx_http_xfer_new: out of memory");
    x->api = req->api;
    x->stream = req->stream != 0;
    x->deadline = req->deadline;
    x->connect_timeout_ms = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000;
    x->cancel = req->cancel;
    x->retry_after_s = -1;
    atomic_init(&x->cancel_req, 0);
    cx__buf_init(&x->resp, req->max_body ? req->max_body : CX_HTTP_DEFAULT_MAX_BODY);

    /* The base is validated and normalized here (cx/http.h, "Base URLs"), so a bad one fails
     * before any I/O, naming the URL without its credentials. */
    rc = cx__http_endpoint_url(req->api, req->base_url, &x->url, ei);
    if (rc < 0) {
        cx_http_xfer_free(x);
        return rc;
    }
    x->url_shown = cx__http_url_redact_dup(x->url);
    cx__http_url_secret(x->url, &x->cred_ref, &x->cred_len);
    x->body = req->api == CX_API_ANTHROPIC ? cx__http_anthropic_body(req) : cx__http_openai_body(req);
    if (x->url_shown == NULL || x->body == NULL) {
        cx_http_xfer_free(x);
        return cx__err(ei, CX_ENOMEM, "cx_http_xfer_new: out of memory building the body");
    }
    x->body_len = strlen(x->body);

    rc = add_header(&x->headers, "Content-Type: application/json");
    if (rc == 0) rc = add_header(&x->headers, "Expect:");
    if (rc == 0 && req->stream) rc = add_header(&x->headers, "Accept: text/event-stream");
    if (rc == 0 && req->api == CX_API_ANTHROPIC)
        rc = add_header(&x->headers, "anthropic-version: 2023-06-01");
    if (rc == 0 && req->extra_header && req->extra_header[0])
        rc = add_header(&x->headers, req->extra_header);
    if (rc == 0 && req->api_key && req->api_key[0]) {
        rc = add_key_header(x, req->api == CX_API_ANTHROPIC ? "x-api-key: " : "Authorization: Bearer ",
                            req->api_key);
    }
    if (rc < 0) {
        cx_http_xfer_free(x);
        return cx__err(ei, CX_ENOMEM, "cx_http_xfer_new: out of memory building headers");
    }
    *out = x;
    return 0;
}

void cx_http_xfer_free(struct cx_http_xfer *x) {
    if (x == NULL) return;
    free_headers(x);
    if (x->url) wipe(x->url, strlen(x->url)); /* it may carry user:password@ */
    cx__free(x->url);
    cx__free(x->url_shown);
    if (x->body) cJSON_free(x->body);
    cx__buf_reset(&x->resp);
    cx__free(x);
}

const char *cx_http_xfer_body(const struct cx_http_xfer *x) { return x ? x->body : NULL; }
const char *cx_http_xfer_url(const struct cx_http_xfer *x) { return x ? x->url : NULL; }

/* ---- curl callbacks (run on whichever thread moves the bytes) ---- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
    struct cx_http_xfer *x = ud;
    size_t n = size * nmemb;
    if (x->first_body_ns == 0 && n > 0) x->first_body_ns = cx_now_ns();
    int rc = cx__buf_append(&x->resp, data, n);
    if (rc < 0) {
        x->write_err = rc;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

static int header_is(const char *line, size_t n, const char *name, const char **value, size_t *vlen) {
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return 0;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return 1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
    struct cx_http_xfer *x = ud;
    size_t n = size * nmemb;
    const char *v;
    size_t vl;
    char tmp[128];
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        x->retry_after_s = -1; /* a new response (after 100 Continue or a redirect) */
        return n;
    }
    int ms = header_is(data, n, "retry-after-ms", &v, &vl);
    if (ms || header_is(data, n, "retry-after", &v, &vl)) {
        if (vl >= sizeof tmp) vl = sizeof tmp - 1;
        memcpy(tmp, v, vl);
        tmp[vl] = '\0';
        double s = cx_http_parse_retry_after(tmp, ms);
        /* retry-after-ms is the more precise of the two when both are present */
        if (s >= 0 && (ms || x->retry_after_s < 0)) x->retry_after_s = s;
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct cx_http_xfer *x = ud;
    if ((x->cancel && atomic_load(x->cancel)) || atomic_load(&x->cancel_req)) {
        x->abort_reason = CX__ABORT_CANCEL;
        return 1;
    }
    return 0;
}

int cx__http_xfer_attach(struct cx_http_xfer *x, CURL *easy) {
    cx__buf_reset(&x->resp);
    x->status = 0;
    x->retry_after_s = -1;
    x->write_err = 0;
    x->curl_rc = CURLE_OK;
    x->abort_reason = CX__ABORT_NONE;
    x->performed = 0;
    x->connects = 0;
    x->errbuf[0] = '\0';
    x->started_ns = cx_now_ns();
    x->first_body_ns = 0;

    curl_easy_reset(easy);
    long total_ms = 0; /* 0: no limit */
    if (x->deadline != CX_DEADLINE_NONE) {
        uint64_t left = cx_deadline_remaining_ns(x->deadline);
        total_ms = (long)((left + CX_NSEC_PER_MSEC - 1) / CX_NSEC_PER_MSEC);
        if (total_ms < 1) total_ms = 1;
    }
    long conn_ms = x->connect_timeout_ms;
    if (total_ms > 0 && conn_ms > total_ms) conn_ms = total_ms;
    CURLcode c = CURLE_OK;
#define SET(opt, val) \
    if (c == CURLE_OK) c = curl_easy_setopt(easy, opt, val)
    SET(CURLOPT_URL, x->url);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, x->body);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    SET(CURLOPT_HTTPHEADER, x->headers);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, total_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, conn_ms);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_VERBOSE, 0L); /* never: verbose output would print the key header */
    SET(CURLOPT_PRIVATE, (void *)x);
    if (cx__slow_on && cx__slow.no_conn_reuse) { /* bench-only (slowdown.c) */
        SET(CURLOPT_FRESH_CONNECT, 1L);
        SET(CURLOPT_FORBID_REUSE, 1L);
    }
#undef SET
    if (c == CURLE_OUT_OF_MEMORY) return CX_ENOMEM;
    return c == CURLE_OK ? 0 : CX_EIO;
}

/* The benchmark's timing hook (cx_testing.h): set while no transfer is in flight. */
static _Atomic(cx__http_timing_fn) timing_fn;
static void *_Atomic timing_ud;

void cx__http_set_timing_hook(cx__http_timing_fn fn, void *ud) {
    atomic_store(&timing_ud, ud);
    atomic_store(&timing_fn, fn);
}

void cx__http_xfer_ended(struct cx_http_xfer *x, CURL *easy, CURLcode rc) {
    long st = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK) x->status = st;
    cx__http_timing_fn fn = atomic_load(&timing_fn);
    if (fn != NULL) {
        uint64_t now = cx_now_ns();
        double first = x->first_body_ns > x->started_ns && x->started_ns > 0
                           ? cx_elapsed_s(x->started_ns, x->first_body_ns)
                           : -1;
        fn(first, x->started_ns > 0 ? cx_elapsed_s(x->started_ns, now) : -1,
           atomic_load(&timing_ud));
    }
    long nc = 0;
    x->connects = curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nc) == CURLE_OK ? nc : 0;
    x->curl_rc = (int)rc;
    x->performed = 1;
}

void cx__http_xfer_abort(struct cx_http_xfer *x, int reason) {
    x->abort_reason = reason;
    x->curl_rc = CURLE_ABORTED_BY_CALLBACK;
    x->status = 0;
    x->performed = 1;
}


/* ---- Retry-After ---- */

double cx_http_parse_retry_after(const char *value, int is_ms) {
    if (value == NULL) return -1;
    while (*value == ' ' || *value == '\t') value++;
    if (*value == '\0') return -1;
    if (isdigit((unsigned char)*value) || *value == '.') {
        errno = 0;
        char *end;
        double d = strtod(value, &end);
        while (*end == ' ' || *end == '\r' || *end == '\n') end++;
        if (errno != 0 || *end != '\0' || !(d >= 0) || !isfinite(d)) return -1;
        if (d > 86400.0 * (is_ms ? 1000 : 1)) d = 86400.0 * (is_ms ? 1000 : 1);
        return is_ms ? d / 1000.0 : d;
    }
    if (is_ms) return -1;
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t)-1) return -1;
    double s = difftime(when, time(NULL));
    if (s > 86400.0) s = 86400.0; /* the same one-day cap as numbers: callers convert to ns */
    return s > 0 ? s : 0;
}


static int curl_code_map(int c) {
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT: return CX_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY: return CX_ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return CX_EINVAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY: return CX_ECONN;
    default: return CX_EIO;
    }
}

int cx_http_xfer_finish(struct cx_http_xfer *x, struct cx_http_result *out, struct cx_errinfo *ei) {
    if (x == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx_http_xfer_finish: x/out is NULL");
    cx_http_result_init(out);
    if (!x->performed) return cx__err(ei, CX_EINVAL, "cx_http_xfer_finish: the transfer was not performed");
    out->status = x->status;
    out->retry_after_s = x->retry_after_s;
    const char *api = x->api == CX_API_ANTHROPIC ? "anthropic" : "openai";
    double el = cx_elapsed_s(x->started_ns, cx_now_ns());
    const char *url = x->url_shown;
    if (x->abort_reason == CX__ABORT_CANCEL)
        return cx__err(ei, CX_ECANCELED, "%s request to %s canceled after %.3f s", api, url, el);
    if (x->abort_reason == CX__ABORT_CLOSED)
        return cx__err(ei, CX_ECANCELED, "%s request to %s canceled: the I/O loop shut down", api, url);
    if (x->abort_reason == CX__ABORT_DEADLINE)
        return cx__err(ei, CX_ETIMEDOUT, "%s request to %s timed out: the deadline passed before it was sent",
                       api, url);
    if (x->curl_rc != CURLE_OK) {
        if (x->curl_rc == CURLE_WRITE_ERROR && x->write_err == CX_ETOOBIG)
            return cx__err_detail(ei, CX_ETOOBIG, x->status, "%s answer from %s larger than the %zu-byte cap",
                                  api, url, x->resp.max);
        if (x->curl_rc == CURLE_WRITE_ERROR && x->write_err == CX_ENOMEM)
            return cx__err(ei, CX_ENOMEM, "%s answer: out of memory while receiving", api);
        int code = curl_code_map(x->curl_rc);
        char buf[512];
        /* curl's error buffer names the host and the cause; it never contains headers. The URL
         * shown is the redacted one; the secrets are redacted from curl's text too. */
        snprintf(buf, sizeof buf, "%s request to %s %s after %.3f s: %s", api, url,
                 code == CX_ETIMEDOUT ? "timed out" : "failed", el,
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror((CURLcode)x->curl_rc));
        cx__http_redact_secrets(buf, sizeof buf, x);
        return cx__err_detail(ei, code, x->curl_rc, "%s", buf);
    }
    return cx__http_parse_body(x->api, x->stream, x->status, x->resp.p ? x->resp.p : "", x->resp.len, x,
                               out, ei);
}
