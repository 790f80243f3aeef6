/*
 * http.c - building and parsing LLM API calls (Anthropic Messages, OpenAI Chat Completions, both
 * plain JSON and SSE streams) and the thread-local blocking client.
 *
 * What it does: turns a cx_http_request into a URL + headers + JSON body; sets a curl easy handle
 * up for it; maps how the transfer ended (curl code, HTTP status, Retry-After) to a CX_E*; parses
 * the body into text + usage. The thread-local client gives every calling thread its own easy
 * handle (a pthread key per client) with DNS, connection and TLS-session caches shared through
 * one CURLSH guarded by a mutex per lock data.
 *
 * What it does not do: retries, rate limiting, routing, caching (router.c), the curl multi loop
 * (ioloop.c), reading keys from the environment (the config module).
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
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cx/clock.h"
#include "cx/gil.h"
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

static char *build_body(const struct cx_http_request *req) {
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) return NULL;
    cJSON *msgs = NULL, *m = NULL;
    int ok = cJSON_AddStringToObject(root, "model", req->model) != NULL;
    if (ok && req->api == CX_API_ANTHROPIC) {
        ok = cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens) != NULL;
        if (ok && req->system && req->system[0])
            ok = cJSON_AddStringToObject(root, "system", req->system) != NULL;
    }
    if (ok) ok = (msgs = cJSON_AddArrayToObject(root, "messages")) != NULL;
    if (ok && req->api == CX_API_OPENAI && req->system && req->system[0]) {
        ok = (m = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(msgs, m);
        if (!ok) cJSON_Delete(m);
        ok = ok && cJSON_AddStringToObject(m, "role", "system") &&
             cJSON_AddStringToObject(m, "content", req->system);
    }
    if (ok) {
        m = cJSON_CreateObject();
        ok = m != NULL && cJSON_AddItemToArray(msgs, m);
        if (!ok) cJSON_Delete(m);
        ok = ok && cJSON_AddStringToObject(m, "role", "user") &&
             cJSON_AddStringToObject(m, "content", req->prompt);
    }
    if (ok && req->api == CX_API_OPENAI)
        ok = cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(root, "temperature", req->temperature) != NULL;
    if (ok && req->stream) {
        ok = cJSON_AddBoolToObject(root, "stream", 1) != NULL;
        if (ok && req->api == CX_API_OPENAI) {
            cJSON *so = cJSON_AddObjectToObject(root, "stream_options");
            ok = so != NULL && cJSON_AddBoolToObject(so, "include_usage", 1) != NULL;
        }
    }
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
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

    struct cx__buf url;
    cx__buf_init(&url, 8192);
    size_t bl = strlen(req->base_url);
    while (bl > 0 && req->base_url[bl - 1] == '/') bl--;
    rc = cx__buf_append(&url, req->base_url, bl);
    if (rc == 0)
        rc = cx__buf_printf(&url, "%s", req->api == CX_API_ANTHROPIC ? "/messages" : "/chat/completions");
    if (rc < 0) {
        cx_http_xfer_free(x);
        return cx__err(ei, rc, "cx_http_xfer_new: cannot build the URL (%s)", cx_strerror(rc));
    }
    x->url = cx__buf_take(&url);
    x->body = build_body(req);
    if (x->url == NULL || x->body == NULL) {
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
    cx__free(x->url);
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
    x->errbuf[0] = '\0';
    x->started_ns = cx_now_ns();

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
#undef SET
    if (c == CURLE_OUT_OF_MEMORY) return CX_ENOMEM;
    return c == CURLE_OK ? 0 : CX_EIO;
}

void cx__http_xfer_ended(struct cx_http_xfer *x, CURL *easy, CURLcode rc) {
    long st = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &st) == CURLE_OK) x->status = st;
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

/* ---- parsing answers ---- */

static const char *jstr(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * A usage count the server sent, or -1 (not reported). The value is untrusted: a count that is
 * not a whole number in [0, 2^53] (negative, fractional, NaN, 1e40 or infinite, which cJSON
 * gives for 1e400) counts as not reported rather than failing an otherwise good answer, and it
 * is range-checked before the cast (converting a double outside int64_t's range is undefined).
 * 2^53 is the largest bound below which every integer is exact in a double.
 */
static int64_t jint(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1; /* NaN fails too */
    return (int64_t)d;
}

/* Replaces every occurrence of the key in s with "[redacted]" (in place, s is a fixed buffer). */
static void redact(char *s, size_t cap, const char *key, size_t kl) {
    if (key == NULL || kl == 0) return;
    const char *rep = "[redacted]";
    size_t rl = strlen(rep);
    char *p;
    while ((p = strstr(s, key)) != NULL) {
        size_t tail = strlen(p + kl);
        if (rl <= kl) {
            memcpy(p, rep, rl);
            memmove(p + rl, p + kl, tail + 1);
        } else {
            size_t off = (size_t)(p - s);
            size_t room = cap - 1 - off;
            size_t tl = tail;
            if (rl + tl > room) tl = room > rl ? room - rl : 0;
            memmove(p + (rl < room ? rl : room), p + kl, tl);
            memcpy(p, rep, rl < room ? rl : room);
            p[(rl < room ? rl : room) + tl] = '\0';
        }
    }
}

/* Maps an HTTP status to a CX_E* code. */
static int status_code(long st) {
    if (st == 429) return CX_ERATELIMIT;
    if (st == 529) return CX_EOVERLOADED;
    if (st >= 500) return CX_ESERVER;
    if (st == 401 || st == 403) return CX_EAUTH;
    return CX_EHTTP;
}

static const char *status_words(int code) {
    switch (code) {
    case CX_ERATELIMIT: return "rate limited";
    case CX_EOVERLOADED: return "overloaded";
    case CX_ESERVER: return "server error";
    case CX_EAUTH: return "authentication failed";
    default: return "HTTP error";
    }
}

/* Maps an API error type ("overloaded_error", "rate_limit_error", ...) found inside a 200 stream. */
static int error_type_code(const char *type) {
    if (type == NULL) return CX_ESERVER;
    if (strstr(type, "overloaded")) return CX_EOVERLOADED;
    if (strstr(type, "rate_limit")) return CX_ERATELIMIT;
    if (strstr(type, "authentication") || strstr(type, "permission")) return CX_EAUTH;
    if (strstr(type, "invalid_request") || strstr(type, "not_found")) return CX_EHTTP;
    return CX_ESERVER;
}

/* Finds the API's error message and type in an error body ({"error":{...}}, {"type":"error",
 * "error":{...}} or {"error":"text"}). Borrowed pointers into root. */
static void error_fields(const cJSON *root, const char **msg, const char **type) {
    *msg = *type = NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(e)) {
        *msg = e->valuestring;
    } else if (cJSON_IsObject(e)) {
        *msg = jstr(e, "message");
        *type = jstr(e, "type");
        if (*type == NULL) *type = jstr(e, "code");
    }
    if (*msg == NULL) *msg = jstr(root, "message");
}

struct parse_ctx {
    struct cx__buf text;
    char *model;
    int64_t in_tok, out_tok;
    int done;       /* [DONE] / message_stop seen */
    int err;        /* an error event */
    char errmsg[256];
    const char *key;
    size_t key_len;
};

static int set_model(struct parse_ctx *p, const char *m) {
    if (m == NULL || p->model != NULL) return 0;
    p->model = cx__strdup(m);
    return p->model ? 0 : CX_ENOMEM;
}

static int note_stream_error(struct parse_ctx *p, const cJSON *root) {
    const char *msg, *type;
    error_fields(root, &msg, &type);
    p->err = error_type_code(type);
    snprintf(p->errmsg, sizeof p->errmsg, "error event in stream: %s%s%s", type ? type : "error",
             msg ? ": " : "", msg ? msg : "");
    return 0;
}

static int openai_chunk(struct parse_ctx *p, const cJSON *root) {
    if (cJSON_GetObjectItemCaseSensitive(root, "error")) return note_stream_error(p, root);
    int rc = set_model(p, jstr(root, "model"));
    if (rc < 0) return rc;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    if (c0) {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
        const char *t = jstr(delta, "content");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        if (jint(usage, "prompt_tokens") >= 0) p->in_tok = jint(usage, "prompt_tokens");
        if (jint(usage, "completion_tokens") >= 0) p->out_tok = jint(usage, "completion_tokens");
    }
    return 0;
}

static int anthropic_event(struct parse_ctx *p, const cJSON *root) {
    const char *type = jstr(root, "type");
    int rc = 0;
    if (type == NULL) return CX_EPARSE;
    if (strcmp(type, "message_start") == 0) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
        if ((rc = set_model(p, jstr(m, "model"))) < 0) return rc;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "usage");
        if (jint(u, "input_tokens") >= 0) p->in_tok = jint(u, "input_tokens");
        if (jint(u, "output_tokens") >= 0) p->out_tok = jint(u, "output_tokens");
    } else if (strcmp(type, "content_block_start") == 0) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "content_block");
        const char *t = jstr(b, "text");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    } else if (strcmp(type, "content_block_delta") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
        const char *t = jstr(d, "text");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    } else if (strcmp(type, "message_delta") == 0) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
        if (jint(u, "output_tokens") >= 0) p->out_tok = jint(u, "output_tokens");
        if (jint(u, "input_tokens") >= 0) p->in_tok = jint(u, "input_tokens");
    } else if (strcmp(type, "message_stop") == 0) {
        p->done = 1;
    } else if (strcmp(type, "error") == 0) {
        return note_stream_error(p, root);
    }
    return 0;
}

/* cJSON answers NULL both for bad JSON and for a failed allocation. Tell them apart: if a block
 * larger than anything the parser asks for cannot be had either, memory ran out. */
static int json_fail_code(size_t len) {
    void *probe = cx__malloc(len + 256);
    if (probe == NULL) return CX_ENOMEM;
    cx__free(probe);
    return CX_EPARSE;
}

/* Dispatches one SSE event's data. */
static int sse_event(enum cx_api api, struct parse_ctx *p, const char *data, size_t n) {
    if (n == 0 || p->done || p->err) return 0;
    if (api == CX_API_OPENAI && n == 6 && memcmp(data, "[DONE]", 6) == 0) {
        p->done = 1;
        return 0;
    }
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (root == NULL) return json_fail_code(n);
    int rc = api == CX_API_OPENAI ? openai_chunk(p, root) : anthropic_event(p, root);
    cJSON_Delete(root);
    return rc;
}

static int parse_sse(enum cx_api api, const char *body, size_t len, struct parse_ctx *p) {
    struct cx__buf data;
    cx__buf_init(&data, len + 1);
    const char *s = body, *end = body + len;
    int rc = 0;
    while (s < end && rc == 0) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (le > s && le[-1] == '\r') le--;
        size_t ll = (size_t)(le - s);
        if (ll == 0) { /* blank line: dispatch */
            rc = sse_event(api, p, data.p ? data.p : "", data.len);
            data.len = 0;
        } else if (ll >= 5 && memcmp(s, "data:", 5) == 0) {
            const char *v = s + 5;
            if (v < le && *v == ' ') v++;
            if (data.len > 0) rc = cx__buf_append(&data, "\n", 1);
            if (rc == 0) rc = cx__buf_append(&data, v, (size_t)(le - v));
        } /* "event:", "id:", "retry:" and ":comments" carry nothing we need */
        s = next;
    }
    if (rc == 0 && data.len > 0) rc = sse_event(api, p, data.p, data.len);
    cx__buf_reset(&data);
    return rc;
}

static int parse_plain(enum cx_api api, const char *body, size_t len, struct parse_ctx *p) {
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root == NULL) return json_fail_code(len);
    int rc = 0;
    if (cJSON_GetObjectItemCaseSensitive(root, "error") ||
        (jstr(root, "type") && strcmp(jstr(root, "type"), "error") == 0)) {
        note_stream_error(p, root);
        cJSON_Delete(root);
        return 0;
    }
    if ((rc = set_model(p, jstr(root, "model"))) < 0) goto out;
    if (api == CX_API_OPENAI) {
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
        const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
        if (!cJSON_IsObject(msg)) {
            rc = CX_EPARSE;
            goto out;
        }
        const char *t = jstr(msg, "content");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) goto out;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
        p->in_tok = jint(u, "prompt_tokens");
        p->out_tok = jint(u, "completion_tokens");
    } else {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
        if (!cJSON_IsArray(content)) {
            rc = CX_EPARSE;
            goto out;
        }
        const cJSON *b;
        cJSON_ArrayForEach(b, content) {
            const char *bt = jstr(b, "type");
            const char *t = jstr(b, "text");
            if (bt && strcmp(bt, "text") == 0 && t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0)
                goto out;
        }
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
        p->in_tok = jint(u, "input_tokens");
        p->out_tok = jint(u, "output_tokens");
    }
    p->done = 1;
out:
    cJSON_Delete(root);
    return rc;
}

static int parse_body(enum cx_api api, int stream, long status, const char *body, size_t len,
                      const char *key, size_t key_len, struct cx_http_result *out,
                      struct cx_errinfo *ei) {
    const char *apiname = api == CX_API_ANTHROPIC ? "anthropic" : "openai";
    if (status < 200 || status > 299) {
        int code = status_code(status);
        const char *msg = NULL, *type = NULL;
        cJSON *root = len ? cJSON_ParseWithLength(body, len) : NULL;
        if (root) error_fields(root, &msg, &type);
        if (type && strstr(type, "overloaded")) code = CX_EOVERLOADED;
        char buf[320];
        snprintf(buf, sizeof buf, "HTTP %ld %s from the %s API%s%s", status, status_words(code),
                 apiname, msg ? ": " : "", msg ? msg : "");
        cJSON_Delete(root);
        redact(buf, sizeof buf, key, key_len);
        return cx__err_detail(ei, code, status, "%s", buf);
    }
    struct parse_ctx p;
    memset(&p, 0, sizeof p);
    cx__buf_init(&p.text, len + 1);
    p.in_tok = p.out_tok = -1;
    int rc;
    /* A server may answer a stream request with plain JSON (or the reverse): look at the body. */
    const char *s = body;
    while (s < body + len && isspace((unsigned char)*s)) s++;
    int looks_json = s < body + len && *s == '{';
    if (stream && !looks_json)
        rc = parse_sse(api, body, len, &p);
    else
        rc = parse_plain(api, body, len, &p);
    if (rc == 0 && p.err) {
        redact(p.errmsg, sizeof p.errmsg, key, key_len);
        rc = cx__err_detail(ei, p.err, status, "%s API: %s", apiname, p.errmsg);
    } else if (rc == CX_EPARSE) {
        rc = cx__err_detail(ei, rc, status, "malformed %s %s body (%zu bytes)", apiname,
                            stream && !looks_json ? "SSE" : "JSON", len);
    } else if (rc == 0 && !p.done) {
        rc = cx__err_detail(ei, CX_EPARSE, status, "%s stream ended before its end event (%s)", apiname,
                            api == CX_API_OPENAI ? "data: [DONE]" : "message_stop");
    } else if (rc < 0) {
        rc = cx__err(ei, rc, "parsing the %s answer: %s", apiname, cx_strerror(rc));
    }
    if (rc < 0) {
        cx__buf_reset(&p.text);
        cx__free(p.model);
        return rc;
    }
    out->content = cx__buf_take(&p.text);
    if (out->content == NULL) {
        cx__free(p.model);
        return cx__err(ei, CX_ENOMEM, "parsing the %s answer: out of memory", apiname);
    }
    out->model = p.model;
    out->status = status;
    out->prompt_tokens = p.in_tok;
    out->completion_tokens = p.out_tok;
    out->retry_after_s = -1;
    return 0;
}

int cx_http_parse(enum cx_api api, int stream, long status, const char *body, size_t len,
                  struct cx_http_result *out, struct cx_errinfo *ei) {
    if (out == NULL || (body == NULL && len > 0)) return cx__err(ei, CX_EINVAL, "cx_http_parse: out/body is NULL");
    cx__json_hooks_init();
    cx_http_result_init(out);
    return parse_body(api, stream, status, body ? body : "", len, NULL, 0, out, ei);
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
    if (x->abort_reason == CX__ABORT_CANCEL)
        return cx__err(ei, CX_ECANCELED, "%s request canceled after %.3f s", api, el);
    if (x->abort_reason == CX__ABORT_CLOSED)
        return cx__err(ei, CX_ECANCELED, "%s request canceled: the I/O loop shut down", api);
    if (x->abort_reason == CX__ABORT_DEADLINE)
        return cx__err(ei, CX_ETIMEDOUT, "%s request timed out: the deadline passed before it was sent", api);
    if (x->curl_rc != CURLE_OK) {
        if (x->curl_rc == CURLE_WRITE_ERROR && x->write_err == CX_ETOOBIG)
            return cx__err_detail(ei, CX_ETOOBIG, x->status, "%s answer larger than the %zu-byte cap", api,
                                  x->resp.max);
        if (x->curl_rc == CURLE_WRITE_ERROR && x->write_err == CX_ENOMEM)
            return cx__err(ei, CX_ENOMEM, "%s answer: out of memory while receiving", api);
        int code = curl_code_map(x->curl_rc);
        char buf[300];
        /* curl's error buffer names the host and the cause; it never contains headers. */
        snprintf(buf, sizeof buf, "%s request %s after %.3f s: %s", api,
                 code == CX_ETIMEDOUT ? "timed out" : "failed", el,
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror((CURLcode)x->curl_rc));
        redact(buf, sizeof buf, x->key_ref, x->key_len);
        return cx__err_detail(ei, code, x->curl_rc, "%s", buf);
    }
    return parse_body(x->api, x->stream, x->status, x->resp.p ? x->resp.p : "", x->resp.len, x->key_ref,
                      x->key_len, out, ei);
}

/* ---- the thread-local client ---- */

struct tl_slot {
    CURL *easy;
    struct cx_http_client *c;
    struct tl_slot *prev, *next; /* guarded by c->mu */
};

struct cx_http_client {
    pthread_key_t key;
    CURLSH *share; /* NULL when sharing is off */
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    struct cx__mutex mu;
    struct tl_slot *slots; /* guarded by mu */
    long maxconn;
    atomic_uint_fast64_t handles;
    atomic_uint_fast64_t transfers;
};

void cx_http_client_options_init(struct cx_http_client_options *o) {
    memset(o, 0, sizeof *o);
    o->max_connections = 64;
    o->share_connections = 1;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *ud) {
    (void)h, (void)acc;
    struct cx_http_client *c = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud) {
    (void)h;
    struct cx_http_client *c = ud;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) pthread_mutex_unlock(&c->share_mu[data]);
}

/* pthread key destructor: the thread exits, its handle goes with it. */
static void slot_destroy(void *p) {
    struct tl_slot *s = p;
    struct cx_http_client *c = s->c;
    cx__mutex_lock(&c->mu);
    if (s->prev) s->prev->next = s->next;
    else c->slots = s->next;
    if (s->next) s->next->prev = s->prev;
    cx__mutex_unlock(&c->mu);
    curl_easy_cleanup(s->easy);
    cx__free(s);
}

int cx_http_client_new(const struct cx_http_client_options *opts, struct cx_http_client **out,
                       struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_http_client_new: out is NULL");
    *out = NULL;
    struct cx_http_client_options def;
    if (opts == NULL) {
        cx_http_client_options_init(&def);
        opts = &def;
    }
    int rc = cx__http_global_init();
    if (rc < 0) return cx__err(ei, rc, "curl_global_init failed");
    struct cx_http_client *c = cx__calloc(1, sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_http_client_new: out of memory");
    c->maxconn = opts->max_connections > 0 ? opts->max_connections : 64;
    int nmu = 0;
    for (; nmu < CURL_LOCK_DATA_LAST; nmu++)
        if (pthread_mutex_init(&c->share_mu[nmu], NULL) != 0) break;
    int have_key = 0, have_mu = 0;
    if (nmu < CURL_LOCK_DATA_LAST) goto nomem;
    if (cx__mutex_init(&c->mu) < 0) goto nomem;
    have_mu = 1;
    if (pthread_key_create(&c->key, slot_destroy) != 0) {
        rc = cx__err(ei, CX_ENOMEM, "cx_http_client_new: pthread_key_create failed (too many clients?)");
        goto fail;
    }
    have_key = 1;
    if (opts->share_connections) {
        c->share = curl_share_init();
        if (c->share == NULL) goto nomem;
        CURLSHcode s = curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        if (s == CURLSHE_OK) s = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        if (s != CURLSHE_OK) {
            rc = cx__err(ei, s == CURLSHE_NOMEM ? CX_ENOMEM : CX_EIO, "curl_share_setopt failed: %s",
                         curl_share_strerror(s));
            goto fail;
        }
    }
    atomic_init(&c->handles, 0);
    atomic_init(&c->transfers, 0);
    *out = c;
    return 0;
nomem:
    rc = cx__err(ei, CX_ENOMEM, "cx_http_client_new: out of memory");
fail:
    if (c->share) curl_share_cleanup(c->share);
    if (have_key) pthread_key_delete(c->key);
    if (have_mu) cx__mutex_destroy(&c->mu);
    for (int i = 0; i < nmu; i++) pthread_mutex_destroy(&c->share_mu[i]);
    cx__free(c);
    return rc;
}

void cx_http_client_free(struct cx_http_client *c) {
    if (c == NULL) return;
    /* After the key is deleted no exiting thread runs slot_destroy for this client, so the list
     * below is ours alone. */
    pthread_key_delete(c->key);
    cx__mutex_lock(&c->mu);
    struct tl_slot *s = c->slots;
    c->slots = NULL;
    cx__mutex_unlock(&c->mu);
    while (s) {
        struct tl_slot *n = s->next;
        curl_easy_cleanup(s->easy);
        cx__free(s);
        s = n;
    }
    if (c->share) curl_share_cleanup(c->share);
    cx__mutex_destroy(&c->mu);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) pthread_mutex_destroy(&c->share_mu[i]);
    cx__free(c);
}

/* The calling thread's handle for c, created on first use. */
static struct tl_slot *thread_slot(struct cx_http_client *c) {
    struct tl_slot *s = pthread_getspecific(c->key);
    if (s) return s;
    s = cx__calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->easy = curl_easy_init();
    if (s->easy == NULL) {
        cx__free(s);
        return NULL;
    }
    s->c = c;
    if (pthread_setspecific(c->key, s) != 0) {
        curl_easy_cleanup(s->easy);
        cx__free(s);
        return NULL;
    }
    cx__mutex_lock(&c->mu);
    s->next = c->slots;
    if (c->slots) c->slots->prev = s;
    c->slots = s;
    cx__mutex_unlock(&c->mu);
    atomic_fetch_add(&c->handles, 1);
    return s;
}

int cx_http_client_perform(struct cx_http_client *c, struct cx_http_xfer *x, struct cx_errinfo *ei) {
    if (c == NULL || x == NULL) return cx__err(ei, CX_EINVAL, "cx_http_client_perform: c/x is NULL");
    if (x->deadline != CX_DEADLINE_NONE && cx_deadline_expired(x->deadline)) {
        x->started_ns = cx_now_ns();
        cx__http_xfer_abort(x, CX__ABORT_DEADLINE);
        return 0;
    }
    if (x->cancel && atomic_load(x->cancel)) {
        x->started_ns = cx_now_ns();
        cx__http_xfer_abort(x, CX__ABORT_CANCEL);
        return 0;
    }
    struct tl_slot *s = thread_slot(c);
    if (s == NULL) return cx__err(ei, CX_ENOMEM, "cx_http_client_perform: cannot create this thread's handle");
    int rc = cx__http_xfer_attach(x, s->easy);
    CURLcode cc = CURLE_OK;
    if (rc == 0 && c->share) cc = curl_easy_setopt(s->easy, CURLOPT_SHARE, c->share);
    if (rc == 0 && cc == CURLE_OK) cc = curl_easy_setopt(s->easy, CURLOPT_MAXCONNECTS, c->maxconn);
    if (rc == 0 && cc != CURLE_OK) rc = cc == CURLE_OUT_OF_MEMORY ? CX_ENOMEM : CX_EIO;
    if (rc < 0) return cx__err(ei, rc, "cx_http_client_perform: cannot set up the curl handle");
    cx_gil_io_begin();
    cc = curl_easy_perform(s->easy);
    cx_gil_io_end();
    cx__http_xfer_ended(x, s->easy, cc);
    /* Drop the pointers into x so the idle handle does not refer to freed memory. */
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, NULL);
    atomic_fetch_add(&c->transfers, 1);
    return 0;
}

int cx_http_client_complete(struct cx_http_client *c, const struct cx_http_request *req,
                            struct cx_http_result *out, struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_http_client_complete: out is NULL");
    cx_http_result_init(out);
    struct cx_http_xfer *x;
    int rc = cx_http_xfer_new(req, &x, ei);
    if (rc < 0) return rc;
    rc = cx_http_client_perform(c, x, ei);
    if (rc == 0) rc = cx_http_xfer_finish(x, out, ei);
    cx_http_xfer_free(x);
    return rc;
}

void cx_http_client_stats(struct cx_http_client *c, struct cx_http_client_stats *out) {
    memset(out, 0, sizeof *out);
    if (c == NULL) return;
    out->handles_created = atomic_load(&c->handles);
    out->transfers = atomic_load(&c->transfers);
}
