/*
 * fuzz_http.c - fuzzes the response side of the HTTP client (cx/http.h): cx_http_parse for both
 * APIs, streaming (SSE) and not, under a range of statuses, and cx_http_parse_retry_after. A
 * server's bytes are untrusted: a proxy, a misbehaving provider or the mock's faults send them.
 *
 * Input: byte 0 picks the API (bit 0), streaming (bit 1) and the status (bits 2-5, table
 * below); the rest is the body. Its first line also goes to cx_http_parse_retry_after.
 * Checks, besides "no crash":
 *   - the status maps as http.h documents: 429 CX_ERATELIMIT, 529 or an "overloaded" error type
 *     CX_EOVERLOADED, other 5xx CX_ESERVER, 401/403 CX_EAUTH, other non-2xx CX_EHTTP, with the
 *     status in ei->detail; a 2xx gives 0 or a code from that list or CX_EPARSE, never
 *     CX_ENOMEM (nothing fails allocation here);
 *   - success gives owned content (no longer than the body), the status and retry_after_s -1;
 *     failure owns nothing (content and model NULL) and fills ei;
 *   - an SSE body parses the same with "\r\n" line ends as with "\n";
 *   - retry-after is -1 or a finite number >= 0; results are repeatable;
 *   - the first line as a base URL (cx_http_base_url_normalize for the input's API,
 *     cx_http_url_redact): normalizing gives 0 or CX_EINVAL with a message, an http(s) URL that
 *     normalizes to itself again; redacting gives printable text that redacts to itself, and
 *     neither the redacted text nor an error message holds the URL's password.
 *
 * Known bugs (reproducers in fuzz/crashes/, reported to the owners; see fuzz_known_bug in
 * fuzz_util.h for CX_FUZZ_KNOWN_BUGS): none open. (http-1, a usage count of 1e40 cast to
 * int64_t, is fixed: such counts read as not reported; its reproducer is in fuzz/corpus/http/.)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cx/http.h"
#include "fuzz_util.h"

static const long statuses[16] = {200, 200, 200, 201, 429, 529, 500, 503,
                                  401, 403, 404, 400, 302, 100, 599, 299};

static int expected_for_status(long st) {
    if (st == 429) return CX_ERATELIMIT;
    if (st == 529) return CX_EOVERLOADED;
    if (st >= 500) return CX_ESERVER;
    if (st == 401 || st == 403) return CX_EAUTH;
    return CX_EHTTP;
}

static int same_result(const struct cx_http_result *a, const struct cx_http_result *b) {
    if ((a->content == NULL) != (b->content == NULL)) return 0;
    if (a->content && strcmp(a->content, b->content) != 0) return 0;
    if ((a->model == NULL) != (b->model == NULL)) return 0;
    if (a->model && strcmp(a->model, b->model) != 0) return 0;
    return a->status == b->status && a->prompt_tokens == b->prompt_tokens &&
           a->completion_tokens == b->completion_tokens;
}

static void check_retry_after(const char *line) {
    for (int is_ms = 0; is_ms <= 1; is_ms++) {
        double r = cx_http_parse_retry_after(line, is_ms);
        FUZZ_CHECK(r == -1 || (r >= 0 && isfinite(r)), "retry-after '%s' (ms %d) gave %g", line,
                   is_ms, r);
        double r2 = cx_http_parse_retry_after(line, is_ms);
        /* An HTTP date is counted from now, which may tick by a second in between. */
        FUZZ_CHECK(r2 == r || (!is_ms && r >= 0 && r2 >= 0 && fabs(r2 - r) <= 1.0),
                   "retry-after not repeatable: %g then %g", r, r2);
    }
}

/* The password of a "scheme://user:password@host" line when it is at least 4 bytes long and
 * appears nowhere else in the line (so finding it in an output means it leaked), else NULL.
 * Malloc'd. */
static char *url_password(const char *line) {
    const char *sep = strstr(line, "://");
    if (sep == NULL || (size_t)(sep - line) > strcspn(line, "/?#")) return NULL;
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    const char *at = NULL, *colon = NULL;
    for (size_t i = 0; i < alen; i++) {
        if (a[i] == '@') at = a + i;
        if (a[i] == ':' && colon == NULL) colon = a + i;
    }
    if (at == NULL || colon == NULL || colon > at || at - colon - 1 < 4) return NULL;
    char *pw = fuzz_strndup(colon + 1, (size_t)(at - colon - 1));
    const char *first = strstr(line, pw);
    if (first != colon + 1 || strstr(colon + 2, pw) != NULL) {
        free(pw);
        return NULL;
    }
    return pw;
}

static void check_url(enum cx_api api, const char *line) {
    char *pw = url_password(line);
    char red[1024];
    int rc = cx_http_url_redact(line, red, sizeof red);
    FUZZ_CHECK(rc == 0 || rc == CX_ETOOBIG, "redact gave %d", rc);
    for (const char *c = red; *c; c++)
        FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f, "redacted URL holds byte 0x%02x", *c);
    FUZZ_CHECK(pw == NULL || strstr(red, pw) == NULL, "redacted '%s' shows the password", red);
    if (rc == 0) {
        char red2[1024];
        FUZZ_CHECK(cx_http_url_redact(red, red2, sizeof red2) == 0 && strcmp(red, red2) == 0,
                   "redact not idempotent: '%s' -> '%s'", red, red2);
    }
    char *norm = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rc = cx_http_base_url_normalize(api, line, &norm, &ei);
    FUZZ_CHECK(rc == 0 || rc == CX_EINVAL, "normalize gave %d (%s)", rc, cx_err_name(rc));
    if (rc == 0) {
        FUZZ_CHECK(strncmp(norm, "http://", 7) == 0 || strncmp(norm, "https://", 8) == 0,
                   "normalized '%s' is not http(s)", norm);
        char *again = NULL;
        FUZZ_CHECK(cx_http_base_url_normalize(api, norm, &again, NULL) == 0 && strcmp(again, norm) == 0,
                   "normalize not idempotent: '%s' -> '%s'", norm, again ? again : "(error)");
        cx_free(again);
        cx_free(norm);
    } else {
        FUZZ_CHECK(norm == NULL && ei.code == rc && ei.msg[0] && fuzz_terminated(ei.msg, sizeof ei.msg),
                   "normalize failed without a message");
        FUZZ_CHECK(pw == NULL || strstr(ei.msg, pw) == NULL, "error '%s' shows the password", ei.msg);
    }
    free(pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    enum cx_api api = (data[0] & 1) ? CX_API_ANTHROPIC : CX_API_OPENAI;
    int stream = (data[0] >> 1) & 1;
    long status = statuses[(data[0] >> 2) & 15];
    size_t len = size - 1;
    char *body = malloc(len ? len : 1); /* exact size: reads past the end are caught */
    if (body == NULL) abort();
    memcpy(body, data + 1, len);

    struct cx_http_result res;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_http_parse(api, stream, status, len ? body : NULL, len, &res, &ei);
    if (status < 200 || status > 299) {
        int want = expected_for_status(status);
        FUZZ_CHECK(rc == want || rc == CX_EOVERLOADED, "status %ld gave %d (%s), expected %d",
                   status, rc, cx_err_name(rc), want);
        FUZZ_CHECK(ei.detail == status, "detail %ld for status %ld", ei.detail, status);
    } else {
        FUZZ_CHECK(rc == 0 || rc == CX_EPARSE || rc == CX_ERATELIMIT || rc == CX_EOVERLOADED ||
                       rc == CX_ESERVER || rc == CX_EAUTH || rc == CX_EHTTP,
                   "2xx body gave %d (%s): %s", rc, cx_err_name(rc), ei.msg);
    }
    if (rc == 0) {
        FUZZ_CHECK(res.content != NULL, "success without content");
        FUZZ_CHECK(res.status == status, "status %ld, sent %ld", res.status, status);
        FUZZ_CHECK(res.retry_after_s == -1, "retry_after %g on success", res.retry_after_s);
        FUZZ_CHECK(strlen(res.content) <= len, "content longer than the body");
    } else {
        FUZZ_CHECK(res.content == NULL && res.model == NULL, "failure %d owns strings", rc);
        FUZZ_CHECK(ei.code == rc && ei.msg[0] && fuzz_terminated(ei.msg, sizeof ei.msg),
                   "errinfo not filled for %d", rc);
    }

    /* Repeatable. */
    struct cx_http_result again;
    int rc2 = cx_http_parse(api, stream, status, len ? body : NULL, len, &again, NULL);
    FUZZ_CHECK(rc2 == rc && (rc != 0 || same_result(&res, &again)), "second parse differs");
    cx_http_result_clear(&again);

    /* SSE: "\r\n" line ends mean the same as "\n". */
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\v' ||
                       body[i] == '\f'))
        i++;
    int looks_json = i < len && body[i] == '{';
    if (stream && !looks_json && status == 200 && memchr(body, '\r', len) == NULL && len < 65536) {
        size_t nl = 0;
        for (size_t k = 0; k < len; k++) nl += body[k] == '\n';
        char *crlf = malloc(len + nl + 1);
        if (crlf == NULL) abort();
        size_t m = 0;
        for (size_t k = 0; k < len; k++) {
            if (body[k] == '\n') crlf[m++] = '\r';
            crlf[m++] = body[k];
        }
        struct cx_http_result r3;
        int rc3 = cx_http_parse(api, stream, status, crlf, m, &r3, NULL);
        FUZZ_CHECK(rc3 == rc && (rc != 0 || same_result(&res, &r3)),
                   "CRLF body gave %d, LF body %d", rc3, rc);
        cx_http_result_clear(&r3);
        free(crlf);
    }
    cx_http_result_clear(&res);

    /* The first line as a header value. */
    size_t ll = 0;
    while (ll < len && ll < 256 && body[ll] != '\n' && body[ll] != '\0') ll++;
    char *line = fuzz_strndup(body, ll);
    check_retry_after(line);
    check_url(api, line);
    free(line);
    free(body);
    return 0;
}
