/*
 * common.c - error strings, the allocation path and the small internal helpers declared in
 * cx_internal.h. Nothing here starts threads or keeps mutable state beyond the allocator,
 * which is set once before other threads use cx.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cx/clock.h"
#include "cx/common.h"
#include "cx_internal.h"

const char *cx_strerror(int err) {
    switch (err) {
#define CX__ERR_STR(name, val, msg) case CX_##name: return msg;
        CX_ERRNO_MAP(CX__ERR_STR)
#undef CX__ERR_STR
    case 0: return "success";
    default: return "unknown error";
    }
}

const char *cx_err_name(int err) {
    switch (err) {
#define CX__ERR_NAME(name, val, msg) case CX_##name: return "CX_" #name;
        CX_ERRNO_MAP(CX__ERR_NAME)
#undef CX__ERR_NAME
    case 0: return "CX_OK";
    default: return "CX_UNKNOWN";
    }
}

const char *cx_version(void) { return "0.1.0"; }

/* ---- allocation ---- */

static void *libc_malloc(size_t n, void *ctx) { (void)ctx; return malloc(n); }
static void *libc_realloc(void *p, size_t n, void *ctx) { (void)ctx; return realloc(p, n); }
static void libc_free(void *p, void *ctx) { (void)ctx; free(p); }

static struct cx_allocator g_alloc = {libc_malloc, libc_realloc, libc_free, NULL};

void cx_set_allocator(const struct cx_allocator *a) {
    if (a == NULL || a->malloc_fn == NULL || a->free_fn == NULL) {
        g_alloc = (struct cx_allocator){libc_malloc, libc_realloc, libc_free, NULL};
    } else {
        g_alloc = *a;
    }
    cx__json_hooks_init();
}

void *cx__malloc(size_t n) { return g_alloc.malloc_fn(n ? n : 1, g_alloc.ctx); }

void *cx__calloc(size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    void *p = cx__malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void *cx__realloc(void *p, size_t n) {
    if (p == NULL) return cx__malloc(n);
    if (g_alloc.realloc_fn) return g_alloc.realloc_fn(p, n ? n : 1, g_alloc.ctx);
    /* No realloc: the caller's allocator cannot tell us the old size, so such allocators must
     * provide realloc_fn to be used with code that grows buffers. */
    return NULL;
}

void cx__free(void *p) {
    if (p) g_alloc.free_fn(p, g_alloc.ctx);
}

void cx_free(void *p) { cx__free(p); }

char *cx__strndup(const char *s, size_t n) {
    if (s == NULL) return NULL;
    size_t len = strnlen(s, n);
    char *d = cx__malloc(len + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *cx__strdup(const char *s) { return s ? cx__strndup(s, SIZE_MAX) : NULL; }

static void *json_malloc(size_t n) { return cx__malloc(n); }
static void json_free(void *p) { cx__free(p); }
static pthread_once_t g_json_once = PTHREAD_ONCE_INIT;
static void json_hooks_once(void) {
    cJSON_Hooks h = {json_malloc, json_free};
    cJSON_InitHooks(&h);
}
void cx__json_hooks_init(void) { pthread_once(&g_json_once, json_hooks_once); }

/* ---- errors ---- */

int cx__verr(struct cx_errinfo *ei, int code, const char *fmt, va_list ap) {
    if (ei) {
        ei->code = code;
        ei->detail = 0;
        if (fmt) {
            vsnprintf(ei->msg, sizeof ei->msg, fmt, ap);
        } else {
            snprintf(ei->msg, sizeof ei->msg, "%s", cx_strerror(code));
        }
    }
    return code;
}

int cx__err(struct cx_errinfo *ei, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cx__verr(ei, code, fmt, ap);
    va_end(ap);
    return code;
}

int cx__err_detail(struct cx_errinfo *ei, int code, long detail, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cx__verr(ei, code, fmt, ap);
    va_end(ap);
    if (ei) ei->detail = detail;
    return code;
}

void cx__panic(const char *file, int line, const char *expr) {
    fprintf(stderr, "cx: invariant broken at %s:%d: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

/* ---- mutex and condition variable ---- */

int cx__mutex_init(struct cx__mutex *mu) {
    atomic_init(&mu->owner, 0);
    return pthread_mutex_init(&mu->m, NULL) == 0 ? 0 : CX_ENOMEM;
}

void cx__mutex_destroy(struct cx__mutex *mu) { pthread_mutex_destroy(&mu->m); }

void cx__mutex_lock(struct cx__mutex *mu) {
    int rc = pthread_mutex_lock(&mu->m);
    CX_ASSERT(rc == 0);
    atomic_store_explicit(&mu->owner, (unsigned long)pthread_self(), memory_order_relaxed);
}

void cx__mutex_unlock(struct cx__mutex *mu) {
    atomic_store_explicit(&mu->owner, 0, memory_order_relaxed);
    int rc = pthread_mutex_unlock(&mu->m);
    CX_ASSERT(rc == 0);
}

bool cx__mutex_held(struct cx__mutex *mu) {
    return atomic_load_explicit(&mu->owner, memory_order_relaxed) == (unsigned long)pthread_self();
}

int cx__cond_init(pthread_cond_t *c) {
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0) return CX_ENOMEM;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc == 0 ? 0 : CX_ENOMEM;
}

int cx__cond_wait(pthread_cond_t *c, struct cx__mutex *mu, uint64_t deadline) {
    CX_ASSERT_HELD(mu);
    int rc;
    atomic_store_explicit(&mu->owner, 0, memory_order_relaxed);
    if (deadline == CX_DEADLINE_NONE) {
        rc = pthread_cond_wait(c, &mu->m);
    } else {
        struct timespec ts = cx_deadline_to_timespec(deadline);
        rc = pthread_cond_timedwait(c, &mu->m, &ts);
    }
    atomic_store_explicit(&mu->owner, (unsigned long)pthread_self(), memory_order_relaxed);
    return rc == ETIMEDOUT ? CX_ETIMEDOUT : 0;
}

/* ---- capped buffer ---- */

void cx__buf_init(struct cx__buf *b, size_t max) {
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

void cx__buf_reset(struct cx__buf *b) {
    size_t max = b->max;
    cx__free(b->p);
    cx__buf_init(b, max);
}

int cx__buf_append(struct cx__buf *b, const void *data, size_t n) {
    if (n > b->max || b->len > b->max - n) {
        cx__buf_reset(b);
        return CX_ETOOBIG;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = cx__realloc(b->p, cap);
        if (p == NULL) {
            cx__buf_reset(b);
            return CX_ENOMEM;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int cx__buf_printf(struct cx__buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return CX_EINVAL;
    if ((size_t)n < sizeof small) return cx__buf_append(b, small, (size_t)n);
    char *big = cx__malloc((size_t)n + 1);
    if (big == NULL) {
        cx__buf_reset(b);
        return CX_ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = cx__buf_append(b, big, (size_t)n);
    cx__free(big);
    return rc;
}

char *cx__buf_take(struct cx__buf *b) {
    char *p = b->p;
    if (p == NULL) p = cx__strdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- hashing ---- */

uint64_t cx__fnv1a64(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* SHA-256 (FIPS 180-4), small and unoptimised: it hashes prompts, not bulk data. */
static const uint32_t k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *blk) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) +
                      k256[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void cx__sha256_hex(const void *data, size_t n, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t full = n / 64;
    for (size_t i = 0; i < full; i++) sha256_block(h, p + 64 * i);
    unsigned char tail[128] = {0};
    size_t rem = n % 64;
    memcpy(tail, p + 64 * full, rem);
    tail[rem] = 0x80;
    size_t tl = rem < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tl == 128) sha256_block(h, tail + 64);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) {
            unsigned char byte = (unsigned char)(h[i] >> (24 - 8 * j));
            out[8 * i + 2 * j] = hex[byte >> 4];
            out[8 * i + 2 * j + 1] = hex[byte & 15];
        }
    out[64] = '\0';
}
