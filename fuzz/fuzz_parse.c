/*
 * fuzz_parse.c - fuzzes reply parsing (cx/parse.h): cx_parse_extract_json, cx_parse_response_n
 * and cx_parse_response, on model replies, which are untrusted text.
 *
 * Input: byte 0 bit 0 = require_commands; the rest is the reply. Besides "no crash" it checks:
 *   - an extracted slice lies inside the text and is trimmed (no whitespace at either end);
 *   - a parse that returns 0 gives an object (with "commands", an array of strings, when
 *     required), equal to what cJSON makes of the extracted slice; a failure leaves out alone;
 *   - only the documented codes come back, and never CX_ENOMEM (nothing fails allocation here,
 *     so CX_ENOMEM would mean the syntax checker and cJSON disagree on what is valid JSON);
 *   - "no JSON block" exactly when extraction finds nothing; "invalid JSON at offset N" only
 *     when cJSON also refuses the slice, with N inside the text;
 *   - the NUL-terminated entry point agrees with the length-taking one; results are repeatable.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cx/parse.h"
#include "fuzz_util.h"

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* cJSON's own verdict on a slice: 1 when it parses with only whitespace after the value. */
static int cjson_accepts(const char *s, size_t n, cJSON **out) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (j == NULL) return 0;
    size_t used = end ? (size_t)(end - s) : n;
    while (used < n && is_ws(s[used])) used++;
    if (used < n) {
        cJSON_Delete(j);
        return 0;
    }
    if (out) *out = j;
    else cJSON_Delete(j);
    return 1;
}

/* Structural equality that also holds for duplicate keys (cJSON_Compare matches a key to the
 * first member of that name only): both printed, compared as text. */
static int same_json(const cJSON *a, const cJSON *b) {
    char *pa = cJSON_PrintUnformatted(a), *pb = cJSON_PrintUnformatted(b);
    FUZZ_CHECK(pa && pb, "cJSON_PrintUnformatted failed");
    int same = strcmp(pa, pb) == 0;
    cJSON_free(pa);
    cJSON_free(pb);
    return same;
}

static void check_one(const char *text, size_t len, int req) {
    size_t off = 7, n = 7;
    int xr = cx_parse_extract_json(text, len, &off, &n);
    FUZZ_CHECK(xr == 0 || xr == CX_ENOENT, "extract returned %d", xr);
    if (xr == 0) {
        FUZZ_CHECK(off <= len && n <= len - off, "slice [%zu,+%zu) outside %zu bytes", off, n, len);
        if (n > 0)
            FUZZ_CHECK(!is_ws(text[off]) && !is_ws(text[off + n - 1]),
                       "slice [%zu,+%zu) not trimmed", off, n);
        size_t off2, n2;
        FUZZ_CHECK(cx_parse_extract_json(text, len, &off2, &n2) == 0 && off2 == off && n2 == n,
                   "extraction not repeatable");
    }

    cJSON *sentinel = (cJSON *)(uintptr_t)0x1;
    cJSON *out = sentinel;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_parse_response_n(text, len, req, &out, &ei);
    FUZZ_CHECK(rc == 0 || rc == CX_EPARSE || rc == CX_EPROTO || rc == CX_ETOOBIG,
               "cx_parse_response_n returned %d (%s): %s", rc, cx_err_name(rc), ei.msg);
    if (rc < 0) {
        FUZZ_CHECK(out == sentinel, "out written on failure %d", rc);
        FUZZ_CHECK(ei.code == rc && ei.msg[0] != '\0' && fuzz_terminated(ei.msg, sizeof ei.msg),
                   "errinfo not filled for %d (code %d)", rc, ei.code);
    }
    if (xr == CX_ENOENT)
        FUZZ_CHECK(rc == CX_EPARSE && strcmp(ei.msg, "no JSON block in response") == 0,
                   "nothing extracted but rc %d '%s'", rc, ei.msg);
    if (rc == CX_EPARSE && xr == 0) {
        size_t at = (size_t)-1;
        FUZZ_CHECK(sscanf(ei.msg, "invalid JSON at offset %zu", &at) == 1,
                   "unexpected parse message '%s'", ei.msg);
        FUZZ_CHECK(at <= len && at >= off, "offset %zu outside slice at %zu (len %zu)", at, off, len);
        FUZZ_CHECK(!cjson_accepts(text + off, n, NULL), "'%s' but cJSON accepts the slice", ei.msg);
    }
    if (rc == CX_EPROTO || rc == 0) {
        cJSON *ref = NULL;
        FUZZ_CHECK(xr == 0 && cjson_accepts(text + off, n, &ref),
                   "rc %d but cJSON refuses the slice", rc);
        if (rc == 0) {
            FUZZ_CHECK(out != NULL && out != sentinel && cJSON_IsObject(out), "rc 0 without an object");
            FUZZ_CHECK(same_json(out, ref), "parsed object differs from the slice's");
        } else {
            int is_obj = cJSON_IsObject(ref);
            FUZZ_CHECK(req || !is_obj, "object refused although commands are not required: %s",
                       ei.msg);
        }
        cJSON_Delete(ref);
    }
    if (rc == 0 && req) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(out, "commands");
        FUZZ_CHECK(cJSON_IsArray(c), "accepted without a commands array");
        const cJSON *it;
        cJSON_ArrayForEach(it, c) FUZZ_CHECK(cJSON_IsString(it), "non-string command accepted");
    }

    /* Repeatable, and the NUL-terminated form agrees when the text holds no NUL. */
    cJSON *out2 = NULL;
    int rc2 = cx_parse_response_n(text, len, req, &out2, NULL);
    FUZZ_CHECK(rc2 == rc, "second parse gave %d, first %d", rc2, rc);
    if (memchr(text, '\0', len) == NULL) {
        cJSON *out3 = NULL;
        char *z = fuzz_strndup(text, len);
        int rc3 = cx_parse_response(z, req, &out3, NULL);
        free(z);
        FUZZ_CHECK(rc3 == rc, "cx_parse_response gave %d, _n gave %d", rc3, rc);
        if (rc == 0) FUZZ_CHECK(same_json(out, out3), "the two entry points differ");
        cJSON_Delete(out3);
    }
    if (rc == 0) FUZZ_CHECK(same_json(out, out2), "second parse differs");
    cJSON_Delete(out2);
    if (rc == 0) cJSON_Delete(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        size_t off, n;
        FUZZ_CHECK(cx_parse_extract_json("", 0, &off, &n) == CX_ENOENT, "empty text extracted");
        return 0;
    }
    int req = data[0] & 1;
    /* An exact-size copy (not NUL-terminated) so a read past the end is caught. */
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    if (text == NULL) abort();
    memcpy(text, data + 1, len);
    check_one(text, len, req);
    free(text);
    return 0;
}
