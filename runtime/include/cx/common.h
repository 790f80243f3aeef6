/*
 * cx/common.h - what every cx module shares: the export macro, the error codes, the optional
 * error-info out-parameter and the allocator hook.
 *
 * Conventions (see shared/STYLE.md): functions return int, 0 on success and a negative CX_E*
 * on failure, so `if (rc < 0)` is the only check a caller needs.
 */
#ifndef CX_COMMON_H
#define CX_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CX_BUILDING) && !defined(CX_STATIC)
#define CX_API __attribute__((visibility("default")))
#else
#define CX_API
#endif

/*
 * The one table of error codes. XX(name, value, message). The enum, cx_strerror() and
 * cx_err_name() are generated from it so they cannot drift apart.
 */
#define CX_ERRNO_MAP(XX)                                                          \
    XX(EINVAL, -1, "invalid argument")                                           \
    XX(ENOMEM, -2, "out of memory")                                              \
    XX(ETIMEDOUT, -3, "timed out")                                               \
    XX(ECANCELED, -4, "operation canceled")                                      \
    XX(EBUSY, -5, "resource busy")                                               \
    XX(EAGAIN, -6, "resource temporarily unavailable")                           \
    XX(ECLOSED, -7, "object is shut down")                                       \
    XX(ENOENT, -8, "not found")                                                  \
    XX(EEXIST, -9, "already exists")                                             \
    XX(EIO, -10, "I/O error")                                                    \
    XX(EPERM, -11, "permission denied")                                          \
    XX(ERANGE, -12, "value out of range")                                        \
    XX(ENOTSUP, -13, "operation not supported")                                  \
    XX(ECONFIG, -14, "invalid configuration")                                    \
    XX(EDB, -15, "database error")                                               \
    XX(ECORRUPT, -16, "database file is corrupt or not a database")              \
    XX(ECONN, -17, "connection failed or reset")                                 \
    XX(EHTTP, -18, "HTTP error status")                                          \
    XX(ERATELIMIT, -19, "rate limited by the server (429)")                      \
    XX(EOVERLOADED, -20, "server overloaded")                                    \
    XX(ESERVER, -21, "server error (5xx)")                                       \
    XX(EAUTH, -22, "authentication failed")                                      \
    XX(EPARSE, -23, "malformed response")                                        \
    XX(EPROTO, -24, "response does not have the required shape")                 \
    XX(EREJECTED, -25, "command rejected by the validator")                      \
    XX(ETOOBIG, -26, "input too large")                                          \
    XX(ENOPROVIDER, -27, "no provider configured")                               \
    XX(EFAILED, -28, "task failed")

enum cx_errno {
#define CX__ERR_ENUM(name, val, msg) CX_##name = (val),
    CX_ERRNO_MAP(CX__ERR_ENUM)
#undef CX__ERR_ENUM
    CX_OK = 0
};

/*
 * Execution modes: they change scheduling only, never results.
 *   CX_MODE_SERIAL: one task at a time (the "before" column of every table);
 *   CX_MODE_GIL:    an emulated global interpreter lock held for every CPU section and released
 *                   around blocking I/O, with a switch interval (CPython's 5 ms);
 *   CX_MODE_FREE:   no global lock ("free-threaded").
 */
enum cx_exec_mode { CX_MODE_SERIAL = 0, CX_MODE_GIL = 1, CX_MODE_FREE = 2 };

/* Message for a CX_E* code ("unknown error" for anything else). Threads: any thread. */
CX_API const char *cx_strerror(int err);
/* Name of a CX_E* code, e.g. "CX_ETIMEDOUT" ("CX_UNKNOWN" otherwise). Threads: any thread. */
CX_API const char *cx_err_name(int err);

/*
 * Optional detail for a failure: functions that take `struct cx_errinfo *ei` fill it when it is
 * not NULL and they fail. `detail` holds the foreign code where there is one (HTTP status,
 * SQLite extended result code, CURLcode); `msg` names what was wrong ("cannot open database
 * '/x/y.db': unable to open database file").
 */
struct cx_errinfo {
    int code;       /* the CX_E* returned */
    long detail;    /* foreign code, 0 when none */
    char msg[384];  /* NUL-terminated, truncated if longer */
};

/*
 * Allocator hook. Every allocation the runtime makes (and cJSON's, through its hooks) goes
 * through these. ctx is passed back unchanged. realloc may be NULL: then malloc+copy+free is
 * used. Pass NULL to restore the C library's allocator.
 * Threads: call only while no other thread is inside cx (at start-up or in a test).
 */
struct cx_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
};
CX_API void cx_set_allocator(const struct cx_allocator *a);
/* Frees memory that a cx function returned to the caller ("returned: free with cx_free"),
 * through the allocator above. Accepts NULL. Threads: any thread. */
CX_API void cx_free(void *p);

/* Library version string, e.g. "0.1.0". Threads: any thread. */
CX_API const char *cx_version(void);

#ifdef __cplusplus
}
#endif
#endif /* CX_COMMON_H */
