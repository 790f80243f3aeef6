/*
 * t_util.h - helpers shared by the CMocka tests: deadlines scaled under sanitizers, temporary
 * directories, a latch for threads to meet the test at, and the counting/failing allocator
 * behind the allocation-torture runs.
 */
#ifndef T_UTIL_H
#define T_UTIL_H

#include <pthread.h>
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

/* A CMocka group setup/teardown pair for files that keep every test's files in one directory:
 * t_dir_setup makes t_dir (a t_tmpdir named after the program), t_dir_teardown removes it with
 * everything below and frees it. */
extern char *t_dir;
int t_dir_setup(void **state);
int t_dir_teardown(void **state);

/* Opens a cx_pool on path with default options but `readers` (<= 0: the default); fails the
 * test, naming the path and the reason, if that does not return 0. Close with cx_pool_free. */
struct cx_pool;
struct cx_pool *t_pool_open(const char *path, int readers);

/* A latch: a counter threads bump and others wait on until it reaches a value, with a deadline.
 * Plain pthread primitives (CLOCK_MONOTONIC condvar), so it is usable from any thread the
 * runtime starts without touching the runtime's own locks. */
struct t_latch {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int count; /* guarded by mu */
};
void t_latch_init(struct t_latch *l);
void t_latch_destroy(struct t_latch *l);
/* count++ and wake every waiter. Threads: any thread. */
void t_latch_add(struct t_latch *l);
/* 1 when count reached `want` before the cx deadline (CX_DEADLINE_NONE: waits for ever), else 0.
 * Threads: any thread. */
int t_latch_wait(struct t_latch *l, int want, uint64_t deadline);

/* A loopback TCP port on which connections are refused for as long as *fd stays open: a socket
 * bound to 127.0.0.1:0 that never listens (safer than assuming a fixed port is free). The
 * caller closes *fd. */
int t_refused_port(int *fd);

/* ---- allocation torture ----
 * t_alloc_install(fail_at): from now on allocations made by the runtime on the test's threads
 * are counted; the fail_at-th (1-based) and every one after it fail (0: never fail).
 * t_alloc_uninstall(): stop counting and failing. t_alloc_count(): allocations attempted since
 * install. t_alloc_live(): blocks allocated since install and not yet freed. Allocations on an
 * in-process mock server's threads are never counted or failed (see mock_thread_is_server). */
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
