/*
 * http_sse.c - Server-Sent Events framing for streamed answers: splits a body into events
 * ("data:" lines joined, a blank line dispatches, "\r\n" or "\n" line ends) and hands each event's
 * data to the wire format's event parser.
 *
 * What it does not do: understand any event's JSON (http_openai.c, http_anthropic.c).
 */
#include "cx/http.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "http_internal.h"

/* Dispatches one SSE event's data. */
static int sse_event(enum cx_api api, struct cx__http_parse_ctx *p, const char *data, size_t n) {
    if (n == 0 || p->done || p->err) return 0;
    if (api == CX_API_OPENAI && n == 6 && memcmp(data, "[DONE]", 6) == 0) {
        p->done = 1;
        return 0;
    }
    cJSON *root = cJSON_ParseWithLength(data, n);
    if (root == NULL) return cx__http_json_fail_code(n);
    int rc = api == CX_API_OPENAI ? cx__http_openai_chunk(p, root) : cx__http_anthropic_event(p, root);
    cJSON_Delete(root);
    return rc;
}

int cx__http_parse_sse(enum cx_api api, const char *body, size_t len, struct cx__http_parse_ctx *p) {
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
