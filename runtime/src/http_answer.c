/*
 * http_answer.c - turning a status and a response body into a cx_http_result or a CX_E*: the
 * status mapping, the APIs' error bodies, redaction of the key from messages, the JSON helpers
 * the wire parsers share, and cx_http_parse.
 *
 * What it does not do: I/O, or knowing either API's answer shape beyond the error object (those
 * live in http_openai.c and http_anthropic.c; SSE framing in http_sse.c).
 */
#include "cx/http.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http_internal.h"

/* ---- parsing answers ---- */

const char *cx__http_jstr(const cJSON *o, const char *name) {
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
int64_t cx__http_jint(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1; /* NaN fails too */
    return (int64_t)d;
}

/* Replaces every occurrence of the key in s with "[redacted]" (in place, s is a fixed buffer). */
void cx__http_redact(char *s, size_t cap, const char *key, size_t kl) {
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
        *msg = cx__http_jstr(e, "message");
        *type = cx__http_jstr(e, "type");
        if (*type == NULL) *type = cx__http_jstr(e, "code");
    }
    if (*msg == NULL) *msg = cx__http_jstr(root, "message");
}


int cx__http_set_model(struct cx__http_parse_ctx *p, const char *m) {
    if (m == NULL || p->model != NULL) return 0;
    p->model = cx__strdup(m);
    return p->model ? 0 : CX_ENOMEM;
}

int cx__http_stream_error(struct cx__http_parse_ctx *p, const cJSON *root) {
    const char *msg, *type;
    error_fields(root, &msg, &type);
    p->err = error_type_code(type);
    snprintf(p->errmsg, sizeof p->errmsg, "error event in stream: %s%s%s", type ? type : "error",
             msg ? ": " : "", msg ? msg : "");
    return 0;
}


int cx__http_json_fail_code(size_t len) {
    void *probe = cx__malloc(len + 256);
    if (probe == NULL) return CX_ENOMEM;
    cx__free(probe);
    return CX_EPARSE;
}


static int parse_plain(enum cx_api api, const char *body, size_t len, struct cx__http_parse_ctx *p) {
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root == NULL) return cx__http_json_fail_code(len);
    int rc = 0;
    if (cJSON_GetObjectItemCaseSensitive(root, "error") ||
        (cx__http_jstr(root, "type") && strcmp(cx__http_jstr(root, "type"), "error") == 0)) {
        cx__http_stream_error(p, root);
        cJSON_Delete(root);
        return 0;
    }
    if ((rc = cx__http_set_model(p, cx__http_jstr(root, "model"))) < 0) goto out;
    rc = api == CX_API_OPENAI ? cx__http_openai_plain(p, root) : cx__http_anthropic_plain(p, root);
    if (rc < 0) goto out;
    p->done = 1;
out:
    cJSON_Delete(root);
    return rc;
}

void cx__http_redact_secrets(char *s, size_t cap, const struct cx_http_xfer *x) {
    if (x == NULL) return;
    cx__http_redact(s, cap, x->key_ref, x->key_len);
    cx__http_redact(s, cap, x->cred_ref, x->cred_len);
}

int cx__http_parse_body(enum cx_api api, int stream, long status, const char *body, size_t len,
                        const struct cx_http_xfer *x, struct cx_http_result *out,
                        struct cx_errinfo *ei) {
    const char *apiname = api == CX_API_ANTHROPIC ? "anthropic" : "openai";
    if (status < 200 || status > 299) {
        int code = status_code(status);
        const char *msg = NULL, *type = NULL;
        cJSON *root = len ? cJSON_ParseWithLength(body, len) : NULL;
        if (root) error_fields(root, &msg, &type);
        if (type && strstr(type, "overloaded")) code = CX_EOVERLOADED;
        char buf[512];
        snprintf(buf, sizeof buf, "HTTP %ld %s from the %s API%s%s%s%s", status, status_words(code),
                 apiname, x ? " at " : "", x ? x->url_shown : "", msg ? ": " : "", msg ? msg : "");
        cJSON_Delete(root);
        cx__http_redact_secrets(buf, sizeof buf, x);
        return cx__err_detail(ei, code, status, "%s", buf);
    }
    struct cx__http_parse_ctx p;
    memset(&p, 0, sizeof p);
    cx__buf_init(&p.text, len + 1);
    p.in_tok = p.out_tok = -1;
    int rc;
    /* A server may answer a stream request with plain JSON (or the reverse): look at the body. */
    const char *s = body;
    while (s < body + len && isspace((unsigned char)*s)) s++;
    int looks_json = s < body + len && *s == '{';
    if (stream && !looks_json)
        rc = cx__http_parse_sse(api, body, len, &p);
    else
        rc = parse_plain(api, body, len, &p);
    if (rc == 0 && p.err) {
        cx__http_redact_secrets(p.errmsg, sizeof p.errmsg, x);
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
    return cx__http_parse_body(api, stream, status, body ? body : "", len, NULL, out, ei);
}
