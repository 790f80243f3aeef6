/*
 * t_mock_http.h - helpers for the mock server's integration tests: start an in-process server,
 * make requests through a real libcurl client, read headers, parse JSON bodies and SSE streams.
 * Header-only (static inline) so each test_mock_*.c executable takes what it uses.
 */
#ifndef T_MOCK_HTTP_H
#define T_MOCK_HTTP_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "mock/server.h"
#include "t_util.h"

/* A byte buffer the curl callbacks append to (NUL-terminated). */
struct t_mem {
    char *p;
    size_t len;
};

static inline size_t t_mem_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct t_mem *m = ud;
    size_t n = size * nmemb;
    char *p = realloc(m->p, m->len + n + 1);
    if (p == NULL) return 0;
    memcpy(p + m->len, ptr, n);
    m->p = p;
    m->len += n;
    m->p[m->len] = '\0';
    return n;
}

/* One HTTP exchange: status (0 when none arrived), curl's result, raw header lines and body. */
struct t_resp {
    long status;
    CURLcode cc;
    struct t_mem head, body;
    double secs; /* total time measured by curl */
};

static inline void t_resp_free(struct t_resp *r) {
    free(r->head.p);
    free(r->body.p);
    memset(r, 0, sizeof *r);
}

static inline double t_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prepares an easy handle for method url with body and extra header lines (NULL-terminated
 * array, may be NULL); timeout_ms 0 means 10 s scaled. *hl receives the header list to free. */
static inline CURL *t_easy(const char *url, const char *method, const char *body,
                           const char *const *hdrs, long timeout_ms, struct t_resp *r,
                           struct curl_slist **hl) {
    CURL *e = curl_easy_init();
    assert_non_null(e);
    memset(r, 0, sizeof *r);
    *hl = NULL;
    if (body != NULL) *hl = curl_slist_append(*hl, "Content-Type: application/json");
    for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i++) *hl = curl_slist_append(*hl, hdrs[i]);
    /* curl would send "Expect: 100-continue" for large bodies; real SDKs do not. */
    *hl = curl_slist_append(*hl, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, t_mem_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, t_mem_write);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &r->head);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     timeout_ms > 0 ? timeout_ms : (long)(10000 * t_timeout_scale()));
    return e;
}

static inline void t_easy_done(CURL *e, struct t_resp *r, struct curl_slist *hl) {
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &r->secs);
    curl_easy_cleanup(e);
    curl_slist_free_all(hl);
}

/* Performs one request to base + path. Returns r->status. */
static inline long t_http(const char *base, const char *path, const char *method,
                          const char *body, const char *const *hdrs, long timeout_ms,
                          struct t_resp *r) {
    char url[512];
    struct curl_slist *hl;
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *e = t_easy(url, method, body, hdrs, timeout_ms, r, &hl);
    r->cc = curl_easy_perform(e);
    t_easy_done(e, r, hl);
    return r->status;
}

/* Value of header `name` in the LAST header block (after any 100 Continue), copied into buf;
 * 1 when found. */
static inline int t_header(const struct t_resp *r, const char *name, char *buf, size_t cap) {
    const char *h = r->head.p;
    size_t nl = strlen(name);
    int found = 0;
    if (h == NULL) return 0;
    for (const char *line = h; *line;) {
        const char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        if (ll > 5 && strncmp(line, "HTTP/", 5) == 0) found = 0; /* a new block starts */
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') v++;
            size_t vl = ll - (size_t)(v - line);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) vl--;
            if (vl >= cap) vl = cap - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            found = 1;
        }
        if (end == NULL) break;
        line = end + 1;
    }
    return found;
}

/* Parses the body as JSON (asserts it is). Free with cJSON_Delete. */
static inline cJSON *t_json(const struct t_resp *r) {
    assert_non_null(r->body.p);
    cJSON *j = cJSON_ParseWithLength(r->body.p, r->body.len);
    if (j == NULL) fail_msg("body is not JSON: %.300s", r->body.p);
    return j;
}

/* obj.a.b... by a dotted path of member names and array indices ("choices.0.message"). */
static inline cJSON *t_jget(const cJSON *obj, const char *path) {
    char key[128];
    const cJSON *cur = obj;
    while (cur != NULL && *path) {
        size_t kl = strcspn(path, ".");
        if (kl >= sizeof key) return NULL;
        memcpy(key, path, kl);
        key[kl] = '\0';
        if (cJSON_IsArray(cur) && isdigit((unsigned char)key[0]))
            cur = cJSON_GetArrayItem(cur, atoi(key));
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        path += kl;
        if (*path == '.') path++;
    }
    return (cJSON *)cur;
}

static inline const char *t_jstr(const cJSON *obj, const char *path) {
    const cJSON *s = t_jget(obj, path);
    if (!cJSON_IsString(s)) fail_msg("%s is not a string", path);
    return s->valuestring;
}

static inline double t_jnum(const cJSON *obj, const char *path) {
    const cJSON *s = t_jget(obj, path);
    if (!cJSON_IsNumber(s)) fail_msg("%s is not a number", path);
    return s->valuedouble;
}

/* ---- Server-sent events ---- */
struct t_sse_event {
    char event[64]; /* "" when the frame had no event: line */
    char *data;     /* data lines joined with '\n' ("" when none) */
};

struct t_sse {
    struct t_sse_event *ev;
    size_t n;
    int clean_end; /* the body ended with a blank line after the last frame */
};

static inline void t_sse_free(struct t_sse *s) {
    for (size_t i = 0; i < s->n; i++) free(s->ev[i].data);
    free(s->ev);
    memset(s, 0, sizeof *s);
}

/* Splits an SSE body into frames (separated by blank lines; "\r\n" accepted). Comment lines
 * (":...") are skipped. A trailing frame without its blank line is still returned. */
static inline void t_sse_parse(const char *body, size_t len, struct t_sse *out) {
    memset(out, 0, sizeof *out);
    struct t_sse_event cur = {{0}, NULL};
    int have = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && body[e] != '\n') e++;
        size_t ll = e - i;
        if (ll > 0 && body[i + ll - 1] == '\r') ll--;
        const char *line = body + i;
        if (ll == 0) {
            if (have) {
                out->ev = realloc(out->ev, (out->n + 1) * sizeof *out->ev);
                assert_non_null(out->ev);
                if (cur.data == NULL) cur.data = calloc(1, 1);
                out->ev[out->n++] = cur;
                memset(&cur, 0, sizeof cur);
                have = 0;
            }
        } else if (line[0] == ':') {
            /* comment */
        } else if (ll >= 6 && strncmp(line, "event:", 6) == 0) {
            size_t off = 6 + (ll > 6 && line[6] == ' ');
            size_t vl = ll - off < sizeof cur.event - 1 ? ll - off : sizeof cur.event - 1;
            memcpy(cur.event, line + off, vl);
            cur.event[vl] = '\0';
            have = 1;
        } else if (ll >= 5 && strncmp(line, "data:", 5) == 0) {
            size_t off = 5 + (ll > 5 && line[5] == ' ');
            size_t old = cur.data ? strlen(cur.data) : 0;
            cur.data = realloc(cur.data, old + (ll - off) + 2);
            assert_non_null(cur.data);
            if (old > 0) cur.data[old++] = '\n';
            memcpy(cur.data + old, line + off, ll - off);
            cur.data[old + ll - off] = '\0';
            have = 1;
        }
        i = e + 1;
    }
    out->clean_end = !have;
    if (have) {
        out->ev = realloc(out->ev, (out->n + 1) * sizeof *out->ev);
        assert_non_null(out->ev);
        if (cur.data == NULL) cur.data = calloc(1, 1);
        out->ev[out->n++] = cur;
    }
}

/* ---- Server lifetime ---- */

/* Starts a quiet in-process server on an ephemeral port with the given config text (may be
 * NULL) and seed; fails the test with the server's message otherwise. */
static inline struct mock_server *t_mock_start(const char *config_text, uint64_t seed) {
    struct mock_options o;
    struct mock_server *s = NULL;
    char err[256] = "";
    mock_options_init(&o);
    o.port = 0;
    o.quiet = 1;
    o.seed = seed;
    o.config_text = config_text;
    if (mock_server_start(&o, &s, err, sizeof err) != 0) fail_msg("mock_server_start: %s", err);
    assert_non_null(s);
    assert_true(mock_server_port(s) > 0);
    return s;
}

/* Waits (scaled deadline) until the server has finished every request. A client has its whole
 * response before the server's completion callback runs, so counters read right after a
 * request may not include it yet; read them after this. */
static inline void t_mock_settle(struct mock_server *s) {
    double end = t_now_s() + 5.0 * t_timeout_scale();
    struct mock_counts mc;
    for (;;) {
        mock_server_counts(s, &mc);
        if (mc.in_flight == 0) return;
        if (t_now_s() > end) fail_msg("%u requests still in flight on the server", mc.in_flight);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Fails the test unless the server takes this configuration text (mock_server_configure). */
static inline void t_mock_configure(struct mock_server *s, const char *text) {
    char err[256];
    if (mock_server_configure(s, text, err, sizeof err) != 0) fail_msg("configure: %s", err);
}

/* Fails the test unless the server takes this fault script (mock_server_script_faults). */
static inline void t_mock_script(struct mock_server *s, const char *text) {
    char err[256];
    if (mock_server_script_faults(s, text, err, sizeof err) != 0) fail_msg("script: %s", err);
}

/* The server's counters once every request has finished (t_mock_settle first). */
static inline void t_mock_counts(struct mock_server *s, struct mock_counts *mc) {
    t_mock_settle(s);
    mock_server_counts(s, mc);
}

/* The server's statistics as JSON once every request has finished. Free with cJSON_Delete. */
static inline cJSON *t_mock_stats(struct mock_server *s) {
    t_mock_settle(s);
    char *js = mock_server_stats_json(s);
    assert_non_null(js);
    cJSON *j = cJSON_Parse(js);
    free(js);
    assert_non_null(j);
    return j;
}

/* The header lines the messages route needs besides the body's Content-Type. */
static inline const char *const *t_msg_hdrs(void) {
    static const char *const h[] = {"anthropic-version: 2023-06-01", NULL};
    return h;
}

/* Performs one request and frees the response; returns its status (0 when none arrived). */
static inline long t_http_status(const char *base, const char *path, const char *method,
                                 const char *body, const char *const *hdrs) {
    struct t_resp r;
    long st = t_http(base, path, method, body, hdrs, 0, &r);
    t_resp_free(&r);
    return st;
}

/* CMocka group setup/teardown for the suites that use curl. */
static inline int t_mock_group_setup(void **state) {
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static inline int t_mock_group_teardown(void **state) {
    (void)state;
    curl_global_cleanup();
    return 0;
}

/* Request bodies. */
static inline char *t_chat_body(const char *model, const char *prompt, int stream,
                                int include_usage) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model);
    cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", "You are a Linux package expert.");
    cJSON_AddItemToArray(msgs, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", prompt);
    cJSON_AddItemToArray(msgs, m);
    if (stream) cJSON_AddTrueToObject(b, "stream");
    if (include_usage) {
        cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
        cJSON_AddTrueToObject(so, "include_usage");
    }
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    assert_non_null(s);
    return s; /* cJSON_free */
}

static inline char *t_messages_body(const char *model, const char *prompt, int stream) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model);
    cJSON_AddNumberToObject(b, "max_tokens", 1024);
    cJSON_AddStringToObject(b, "system", "You are a Linux package expert.");
    cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", prompt);
    cJSON_AddItemToArray(msgs, m);
    if (stream) cJSON_AddTrueToObject(b, "stream");
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    assert_non_null(s);
    return s;
}

/* One request with model "m" and this prompt on the chat (api 0) or messages (api 1) route;
 * a chat stream asks for the usage chunk. Returns r->status. */
static inline long t_mock_call(struct mock_server *s, int api, const char *prompt, int stream,
                               long timeout_ms, struct t_resp *r) {
    char *body = api == 0 ? t_chat_body("m", prompt, stream, stream)
                          : t_messages_body("m", prompt, stream);
    long st = t_http(mock_server_url(s), api == 0 ? "/v1/chat/completions" : "/v1/messages",
                     "POST", body, api == 0 ? NULL : t_msg_hdrs(), timeout_ms, r);
    cJSON_free(body);
    return st;
}

#endif
