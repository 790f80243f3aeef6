/*
 * util.c - small helpers of the mock server: the monotonic clock, FNV-1a hashing, the
 * splitmix64-based deterministic randomness (every random choice is a pure function of a seed
 * and a request's hash, never a shared generator), number and duration parsing, and a growable
 * buffer with JSON string escaping. Nothing here keeps state.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock_internal.h"

uint64_t mock__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mock__fnv1a64(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t mock__mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double mock__unit(uint64_t x)
{
    return (double)(mock__mix64(x) >> 11) * (1.0 / 9007199254740992.0);
}

double mock__normal(uint64_t x)
{
    double u1 = mock__unit(x ^ 0x5851f42d4c957f2dull);
    double u2 = mock__unit(x ^ 0x14057b7ef767814full);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

int mock__err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int mock__parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int mock__parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end || end == s)
        return -1;
    *out = v;
    return 0;
}

int mock__parse_duration(const char *s, double *ms)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    double mul;
    if (!*end || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "us"))
        mul = 0.001;
    else if (!strcmp(end, "ns"))
        mul = 1e-6;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        mul = 60000;
    else
        return -1;
    *ms = v * mul;
    return 0;
}

static int buf_reserve(struct mock_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void mock__buf_add(struct mock_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void mock__buf_str(struct mock_buf *b, const char *s)
{
    mock__buf_add(b, s, strlen(s));
}

void mock__buf_fmt(struct mock_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    /* Try the room we have first: most calls fit, and then vsnprintf runs once. */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < room) {
        b->len += (size_t)n;
        return;
    }
    if (buf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mock__buf_json_str(struct mock_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 3) / 6) {
        b->oom = 1;
        return;
    }
    if (buf_reserve(b, 6 * n + 2) < 0) /* worst case: every byte as \u00XX */
        return;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    *o = 0;
    b->len = (size_t)(o - b->p);
}

void mock__buf_free(struct mock_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
