/*
 * parse.c - finding and parsing the JSON object in an LLM reply.
 *
 * Extraction is a scan over the text that allocates nothing (fenced ```json block, else a fenced
 * block holding {...}, else the outermost balanced {...}); parsing is cJSON's. cJSON returns NULL
 * both for a syntax error and for a failed allocation, so when it fails we run a small
 * allocation-free JSON syntax checker that mirrors cJSON's rules: if the text is valid, the
 * failure was memory (CX_ENOMEM), otherwise the checker's offset names the first bad byte.
 * This module does not validate commands (validate.c) or merge plans (plan.c).
 *
 * Threads: cJSON keeps the position of the last error in a process-wide variable that every
 * parse resets; we never read it (cJSON_GetErrorPtr), taking positions from our checker
 * instead, so concurrent parses on several threads are safe for us.
 */
#include "cx/parse.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cx_internal.h"

/* ---- extraction ---- */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static void trim(const char *s, size_t *a, size_t *b) {
    while (*a < *b && is_ws(s[*a])) (*a)++;
    while (*b > *a && is_ws(s[*b - 1])) (*b)--;
}

static bool ieq4(const char *a, const char *b) {
    for (int k = 0; k < 4; k++) {
        char c = a[k];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != b[k]) return false;
    }
    return true;
}

static size_t line_end(const char *s, size_t len, size_t i) {
    while (i < len && s[i] != '\n') i++;
    return i;
}

/* If a fence ("```" or "~~~", at most 3 spaces of indent) opens at line start i, returns the
 * offset just past the fence characters, else 0. *ch gets the fence character. */
static size_t fence_at(const char *s, size_t len, size_t i, char *ch) {
    size_t j = i, k;
    while (j < len && j - i < 3 && s[j] == ' ') j++;
    if (j + 3 > len || (s[j] != '`' && s[j] != '~')) return 0;
    for (k = 0; k < 3; k++)
        if (s[j + k] != s[j]) return 0;
    *ch = s[j];
    j += 3;
    while (j < len && s[j] == *ch) j++;
    return j;
}

struct fence {
    size_t body_a, body_b; /* body, trimmed */
    bool is_json;          /* info string's first word is "json" */
};

/* Finds the next fenced block starting at a line beginning at or after *pos. */
static bool next_fence(const char *s, size_t len, size_t *pos, struct fence *f) {
    size_t i = *pos;
    while (i < len) {
        char ch = 0;
        size_t after = fence_at(s, len, i, &ch);
        size_t eol = line_end(s, len, i);
        if (after) {
            size_t ia = after, ib = eol;
            trim(s, &ia, &ib);
            size_t w = ia;
            while (w < ib && !is_ws(s[w]) && s[w] != '{') w++;
            f->is_json = (w - ia == 4) && ieq4(s + ia, "json");
            size_t body, close = len, next = len, j = eol < len ? eol + 1 : len;
            size_t w2 = w;
            while (w2 < ib && is_ws(s[w2])) w2++;
            if (w2 < ib && s[w2] == '{' && (f->is_json || w == ia)) {
                w = w2;
                /* "```json {...}```" on one line: the body starts on the fence line and the
                 * closing fence may follow on the same line. */
                body = w;
                for (size_t k = ib; k >= body + 3; k--) {
                    if (s[k - 1] == ch && s[k - 2] == ch && s[k - 3] == ch) {
                        close = k - 3;
                        next = j;
                        j = len;
                        break;
                    }
                }
            } else {
                body = j;
            }
            while (j < len) {
                char c2 = 0;
                size_t le = line_end(s, len, j);
                if (fence_at(s, len, j, &c2) && c2 == ch) {
                    close = j;
                    next = le < len ? le + 1 : len;
                    break;
                }
                j = le < len ? le + 1 : len;
            }
            size_t a = body, b = close;
            trim(s, &a, &b);
            /* A closing fence glued to the last line ("}```"). */
            while (b >= a + 3 && s[b - 1] == ch && s[b - 2] == ch && s[b - 3] == ch) {
                b -= 3;
                while (b > a && s[b - 1] == ch) b--;
                trim(s, &a, &b);
            }
            f->body_a = a;
            f->body_b = b;
            *pos = next;
            return true;
        }
        i = eol < len ? eol + 1 : len;
    }
    *pos = len;
    return false;
}

/* Finds the end (exclusive) of the balanced {...} starting at s[a] == '{', skipping braces in
 * JSON strings; 0 when it does not close. */
static size_t balanced_end(const char *s, size_t len, size_t a) {
    size_t depth = 0;
    bool in_str = false;
    for (size_t i = a; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{') {
            depth++;
        } else if (c == '}') {
            if (--depth == 0) return i + 1;
        }
    }
    return 0;
}

/* A candidate looks like a JSON object when '{' is followed by '"' or '}'. */
static bool looks_like_object(const char *s, size_t a, size_t b) {
    size_t i = a + 1;
    while (i < b && is_ws(s[i])) i++;
    return i < b && (s[i] == '"' || s[i] == '}');
}

int cx_parse_extract_json(const char *content, size_t len, size_t *off, size_t *n) {
    if ((content == NULL && len > 0) || off == NULL || n == NULL) return CX_EINVAL;
    if (len == 0) return CX_ENOENT;
    const char *s = content;
    struct fence f;
    size_t pos = 0;
    bool have_brace_fence = false;
    size_t bf_a = 0, bf_b = 0;
    while (next_fence(s, len, &pos, &f)) {
        if (f.is_json && f.body_b > f.body_a) {
            *off = f.body_a;
            *n = f.body_b - f.body_a;
            return 0;
        }
        if (!have_brace_fence && f.body_b > f.body_a && s[f.body_a] == '{') {
            have_brace_fence = true;
            bf_a = f.body_a;
            bf_b = f.body_b;
        }
    }
    if (have_brace_fence) {
        *off = bf_a;
        *n = bf_b - bf_a;
        return 0;
    }
    /* Outermost balanced braces: prefer the first one that looks like an object. */
    size_t first_a = 0, first_b = 0, unclosed = len;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '{') continue;
        size_t e = balanced_end(s, len, i);
        if (e == 0) {
            if (unclosed == len) unclosed = i;
            continue;
        }
        if (looks_like_object(s, i, e)) {
            *off = i;
            *n = e - i;
            return 0;
        }
        if (first_b == 0) {
            first_a = i;
            first_b = e;
        }
        i = e - 1; /* skip this top-level candidate's inside */
    }
    if (first_b) {
        *off = first_a;
        *n = first_b - first_a;
        return 0;
    }
    if (unclosed < len) { /* an object cut short: hand it over so the parse error names where */
        size_t a = unclosed, b = len;
        trim(s, &a, &b);
        *off = a;
        *n = b - a;
        return 0;
    }
    return CX_ENOENT;
}

/* ---- allocation-free syntax check mirroring cJSON 1.7's parser ---- */

struct chk {
    const char *s;
    size_t len, i;
};

static void chk_ws(struct chk *c) {
    while (c->i < c->len && (unsigned char)c->s[c->i] <= 32) c->i++;
}

static int hexval(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

static bool chk_hex4(struct chk *c, size_t at, unsigned *out) {
    if (at + 4 > c->len) return false;
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(c->s[at + k]);
        if (h < 0) return false;
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return true;
}

static bool chk_string(struct chk *c) {
    c->i++; /* opening quote */
    while (c->i < c->len) {
        char ch = c->s[c->i];
        if (ch == '"') {
            c->i++;
            return true;
        }
        if (ch != '\\') {
            c->i++;
            continue;
        }
        if (c->i + 1 >= c->len) return false;
        char e = c->s[c->i + 1];
        switch (e) {
        case 'b': case 'f': case 'n': case 'r': case 't': case '"': case '\\': case '/':
            c->i += 2;
            break;
        case 'u': {
            unsigned u;
            if (!chk_hex4(c, c->i + 2, &u)) return false;
            if (u >= 0xDC00 && u <= 0xDFFF) return false;
            if (u >= 0xD800 && u <= 0xDBFF) {
                unsigned lo;
                if (c->i + 12 > c->len || c->s[c->i + 6] != '\\' || c->s[c->i + 7] != 'u' ||
                    !chk_hex4(c, c->i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                c->i += 12;
            } else {
                c->i += 6;
            }
            break;
        }
        default:
            return false;
        }
    }
    return false;
}

static bool chk_number(struct chk *c) {
    /* cJSON copies at most 63 number characters and hands them to strtod. */
    char buf[64];
    size_t k = 0;
    while (c->i + k < c->len && k < sizeof buf - 1) {
        char ch = c->s[c->i + k];
        if (!((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == 'e' || ch == 'E' ||
              ch == '.'))
            break;
        buf[k] = ch;
        k++;
    }
    buf[k] = '\0';
    char *end = NULL;
    (void)strtod(buf, &end);
    if (end == buf) return false;
    c->i += (size_t)(end - buf);
    return true;
}

static bool chk_value(struct chk *c, int depth) {
    if (c->i >= c->len) return false;
    const char *p = c->s + c->i;
    size_t left = c->len - c->i;
    if (left >= 4 && memcmp(p, "null", 4) == 0) { c->i += 4; return true; }
    if (left >= 5 && memcmp(p, "false", 5) == 0) { c->i += 5; return true; }
    if (left >= 4 && memcmp(p, "true", 4) == 0) { c->i += 4; return true; }
    if (*p == '"') return chk_string(c);
    if (*p == '-' || (*p >= '0' && *p <= '9')) return chk_number(c);
    if (*p != '[' && *p != '{') return false;
    if (depth >= CJSON_NESTING_LIMIT) return false;
    char close = *p == '[' ? ']' : '}';
    bool obj = *p == '{';
    c->i++;
    chk_ws(c);
    if (c->i < c->len && c->s[c->i] == close) {
        c->i++;
        return true;
    }
    for (;;) {
        chk_ws(c);
        if (obj) {
            if (c->i >= c->len || c->s[c->i] != '"' || !chk_string(c)) return false;
            chk_ws(c);
            if (c->i >= c->len || c->s[c->i] != ':') return false;
            c->i++;
            chk_ws(c);
        }
        if (!chk_value(c, depth + 1)) return false;
        chk_ws(c);
        if (c->i >= c->len) return false;
        if (c->s[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->s[c->i] == close) {
            c->i++;
            return true;
        }
        return false;
    }
}

/* Returns the offset of the first bad byte in s[0..len), or len + 1 when the text is a valid
 * JSON value followed only by whitespace. */
static size_t json_error_offset(const char *s, size_t len) {
    struct chk c = {s, len, 0};
    chk_ws(&c);
    if (!chk_value(&c, 0)) return c.i;
    chk_ws(&c);
    return c.i < len ? c.i : len + 1;
}

/* ---- parsing ---- */

int cx_parse_response_n(const char *content, size_t len, int require_commands, cJSON **out,
                        struct cx_errinfo *ei) {
    if ((content == NULL && len > 0) || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_parse_response: %s is NULL",
                       out == NULL ? "out" : "content");
    if (len > CX_PARSE_MAX_BYTES)
        return cx__err(ei, CX_ETOOBIG, "response of %zu bytes exceeds the %zu-byte limit", len,
                       CX_PARSE_MAX_BYTES);
    cx__json_hooks_init();
    size_t off = 0, n = 0;
    if (cx_parse_extract_json(content, len, &off, &n) < 0)
        return cx__err(ei, CX_EPARSE, "no JSON block in response");

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(content + off, n, &end, 0);
    if (root != NULL) {
        /* cJSON stops after the first value: anything but whitespace after it is an error. */
        size_t used = end ? (size_t)(end - (content + off)) : n;
        while (used < n && is_ws(content[off + used])) used++;
        if (used < n) {
            cJSON_Delete(root);
            return cx__err(ei, CX_EPARSE, "invalid JSON at offset %zu", off + used);
        }
    } else {
        size_t bad = json_error_offset(content + off, n);
        if (bad > n) return cx__err(ei, CX_ENOMEM, "out of memory parsing a %zu-byte JSON block", n);
        return cx__err(ei, CX_EPARSE, "invalid JSON at offset %zu", off + bad);
    }

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cx__err(ei, CX_EPROTO, "response is not a JSON object");
    }
    if (require_commands) {
        const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
        int rc = 0;
        if (cmds == NULL) {
            rc = cx__err(ei, CX_EPROTO, "\"commands\" missing");
        } else if (!cJSON_IsArray(cmds)) {
            rc = cx__err(ei, CX_EPROTO, "\"commands\" is not an array");
        } else {
            size_t i = 0;
            for (const cJSON *it = cmds->child; it; it = it->next, i++) {
                if (!cJSON_IsString(it) || it->valuestring == NULL) {
                    rc = cx__err(ei, CX_EPROTO, "commands[%zu] is not a string", i);
                    break;
                }
            }
        }
        if (rc < 0) {
            cJSON_Delete(root);
            return rc;
        }
    }
    *out = root;
    return 0;
}

int cx_parse_response(const char *content, int require_commands, cJSON **out,
                      struct cx_errinfo *ei) {
    if (content == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_parse_response: %s is NULL",
                       out == NULL ? "out" : "content");
    return cx_parse_response_n(content, strlen(content), require_commands, out, ei);
}
