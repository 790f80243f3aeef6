/*
 * cx_internal.h - helpers shared by the runtime's modules and not part of the public API:
 * the allocation path, error-info filling, assertions, mutexes that know their owner in debug
 * builds, monotonic condition variables and a capped growable buffer.
 */
#ifndef CX_INTERNAL_H
#define CX_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"

/* ---- allocation: every byte the runtime owns comes through here (see cx_set_allocator) ---- */
void *cx__malloc(size_t n);
void *cx__calloc(size_t count, size_t size);      /* overflow-checked; zeroed */
void *cx__realloc(void *p, size_t n);             /* on failure p is left untouched */
void cx__free(void *p);                           /* accepts NULL */
char *cx__strdup(const char *s);                  /* NULL in, NULL out */
char *cx__strndup(const char *s, size_t n);
/* Makes sure cJSON allocates through cx__malloc/cx__free. Idempotent, thread-safe. */
void cx__json_hooks_init(void);

/* ---- errors ---- */
/* Fills ei (when not NULL) and returns code, so `return cx__err(ei, CX_EINVAL, "...")` works. */
int cx__err(struct cx_errinfo *ei, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cx__verr(struct cx_errinfo *ei, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Like cx__err but also records a foreign detail code. */
int cx__err_detail(struct cx_errinfo *ei, int code, long detail, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- invariants: abort() with file:line; only for broken invariants, never for bad input ---- */
void cx__panic(const char *file, int line, const char *expr) __attribute__((noreturn));
#define CX_ASSERT(e) ((e) ? (void)0 : cx__panic(__FILE__, __LINE__, #e))
#ifndef NDEBUG
#define CX_DASSERT(e) CX_ASSERT(e)
#else
#define CX_DASSERT(e) ((void)0)
#endif

/* ---- mutexes that remember their owner so "caller holds mu" can be asserted ---- */
struct cx__mutex {
    pthread_mutex_t m;
    _Atomic(unsigned long) owner; /* pthread_self() of the holder, 0 when free */
};
int cx__mutex_init(struct cx__mutex *mu);   /* 0 or CX_ENOMEM */
void cx__mutex_destroy(struct cx__mutex *mu);
void cx__mutex_lock(struct cx__mutex *mu);
void cx__mutex_unlock(struct cx__mutex *mu);
bool cx__mutex_held(struct cx__mutex *mu);  /* by the calling thread */
#define CX_ASSERT_HELD(mu) CX_DASSERT(cx__mutex_held(mu))

/* Condition variable on CLOCK_MONOTONIC, so deadlines from cx_now_ns() work. */
int cx__cond_init(pthread_cond_t *c);       /* 0 or CX_ENOMEM */
/* Waits on c with mu held until signalled or `deadline` (CX_DEADLINE_NONE: forever).
 * Returns 0 when woken, CX_ETIMEDOUT when the deadline passed. Spurious wake-ups return 0. */
int cx__cond_wait(pthread_cond_t *c, struct cx__mutex *mu, uint64_t deadline);

/* ---- capped growable buffer (curl's dynbuf): a failed append frees the buffer ---- */
struct cx__buf {
    char *p;      /* NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    size_t max;   /* hard size cap; appends beyond it fail with CX_ETOOBIG */
};
void cx__buf_init(struct cx__buf *b, size_t max);
int cx__buf_append(struct cx__buf *b, const void *data, size_t n); /* 0, CX_ENOMEM, CX_ETOOBIG */
int cx__buf_printf(struct cx__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *cx__buf_take(struct cx__buf *b);      /* returned: caller frees with cx__free */
void cx__buf_reset(struct cx__buf *b);      /* frees and re-inits with the same max */

/* ---- time ---- */
/* CPU time the calling thread has used, ns (0 if the clock cannot be read). One definition (gil.c)
 * for the CPU burner and the router's CPU-share measurement. */
uint64_t cx__thread_cpu_ns(void);

/* ---- hashing (FNV-1a 64, and a hex SHA-256 for the cache's stored hashes) ---- */
uint64_t cx__fnv1a64(const void *data, size_t n);
/* Writes 64 hex characters + NUL into out[65]. */
void cx__sha256_hex(const void *data, size_t n, char out[65]);

#endif /* CX_INTERNAL_H */
