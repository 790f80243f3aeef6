/*
 * t_util.h - helpers shared by the CMocka tests: deadlines scaled under sanitizers, temporary
 * directories, and the counting/failing allocator behind the allocation-torture runs.
 */
#ifndef T_UTIL_H
#define T_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cx/common.h"

/* Multiplier for every wait in a test: CX_TEST_TIMEOUT_SCALE, else 10 under sanitizers, else 1. */
double t_timeout_scale(void);
/* A cx deadline `ms` (scaled) from now. */
uint64_t t_deadline_ms(int64_t ms);

/* Creates a fresh directory under $TMPDIR (or /tmp); returns its path (static per call site
 * is not assumed: the caller frees with free()). t_rmrf removes it and everything below. */
char *t_tmpdir(const char *tag);
void t_rmrf(const char *path);
/* Joins dir and name into a malloc'd path. */
char *t_path(const char *dir, const char *name);

/* A loopback TCP port on which connections are refused for as long as *fd stays open: a socket
 * bound to 127.0.0.1:0 that never listens (safer than assuming a fixed port is free). The
 * caller closes *fd. */
int t_refused_port(int *fd);

/* ---- allocation torture ----
 * t_alloc_install(fail_at): from now on the runtime allocates through a counting allocator;
 * the fail_at-th allocation (1-based) and every one after it fail (0: never fail).
 * t_alloc_uninstall(): back to libc. t_alloc_count(): allocations attempted since install.
 * t_alloc_live(): blocks allocated and not yet freed since install. */
void t_alloc_install(long fail_at);
void t_alloc_uninstall(void);
long t_alloc_count(void);
long t_alloc_live(void);

/* Runs scenario(ctx) once counting allocations (it must return 0), then for i = 1..N reruns it
 * with allocation i failing; every rerun must return CX_ENOMEM (or 0 if the failed allocation
 * was optional and the scenario recovered) and leave no live allocation. The scenario must free
 * everything it made before returning. Returns N. */
long t_torture(int (*scenario)(void *ctx), void *ctx);

#endif
