/* t_util.c - see t_util.h. */
#include "t_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cx/clock.h"
#include "cx/dbpool.h"

double t_timeout_scale(void) {
    const char *s = getenv("CX_TEST_TIMEOUT_SCALE");
    if (s && *s) {
        double v = strtod(s, NULL);
        if (v > 0) return v;
    }
#ifdef CX_SANITIZED
    return 10.0;
#else
    return 1.0;
#endif
}

uint64_t t_deadline_ms(int64_t ms) {
    return cx_deadline_after_ms((int64_t)((double)ms * t_timeout_scale()));
}

char *t_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0') base = "/tmp";
    size_t n = strlen(base) + strlen(tag) + 32;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/cxt-%s-XXXXXX", base, tag);
    assert_non_null(mkdtemp(p));
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void t_rmrf(const char *path) {
    if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *t_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *t_dir;

int t_dir_setup(void **state) {
    (void)state;
    t_dir = t_tmpdir(program_invocation_short_name);
    return t_dir ? 0 : -1;
}

int t_dir_teardown(void **state) {
    (void)state;
    t_rmrf(t_dir);
    free(t_dir);
    t_dir = NULL;
    return 0;
}

struct cx_pool *t_pool_open(const char *path, int readers) {
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    if (readers > 0) o.readers = readers;
    struct cx_pool *p = NULL;
    struct cx_errinfo ei;
    int rc = cx_pool_new(&o, &p, &ei);
    if (rc != 0) fail_msg("cx_pool_new(%s): %s: %s", path, cx_err_name(rc), ei.msg);
    return p;
}

/* ---- counting allocator ----
 * Installed before main (constructor) and never removed, so every block the runtime hands out
 * in a test process carries our 16-byte header, whichever phase allocated or frees it (an
 * in-process mock server may free after a torture run a block it allocated during one).
 * While counting (t_alloc_install .. t_alloc_uninstall) allocations by the test's own threads
 * are counted and may fail; allocations on a mock server's threads (mock_thread_is_server,
 * which shares cJSON's global hooks with the runtime) are neither counted nor failed. */

static atomic_long g_count, g_live, g_fail_at;
static atomic_int g_counting;
#define T_MAGIC 0x7a11c0deUL      /* counted while live */
#define T_MAGIC_FREE 0x7a11f4eeUL /* not counted */

int mock_thread_is_server(void) __attribute__((weak));

static int counted_thread(void) {
    return atomic_load(&g_counting) && !(mock_thread_is_server && mock_thread_is_server());
}

/* 1 when this allocation attempt must fail. */
static int attempt_fails(void) {
    long i = atomic_fetch_add(&g_count, 1) + 1;
    long f = atomic_load(&g_fail_at);
    return f > 0 && i >= f;
}

static unsigned long *header_of(void *p, const char *who) {
    unsigned long *h = (unsigned long *)((char *)p - 16);
    if (h[0] != T_MAGIC && h[0] != T_MAGIC_FREE) {
        fprintf(stderr, "%s: block not from the test allocator\n", who);
        abort();
    }
    return h;
}

static void *t_malloc(size_t n, void *ctx) {
    (void)ctx;
    int counted = counted_thread();
    if (counted && attempt_fails()) return NULL;
    unsigned long *h = malloc(n + 16);
    if (h == NULL) return NULL;
    h[0] = counted ? T_MAGIC : T_MAGIC_FREE;
    if (counted) atomic_fetch_add(&g_live, 1);
    return (char *)h + 16;
}

static void t_free(void *p, void *ctx) {
    (void)ctx;
    if (p == NULL) return;
    unsigned long *h = header_of(p, "t_free");
    if (h[0] == T_MAGIC) atomic_fetch_sub(&g_live, 1);
    h[0] = 0;
    free(h);
}

static void *t_realloc(void *p, size_t n, void *ctx) {
    if (p == NULL) return t_malloc(n, ctx);
    unsigned long *h = header_of(p, "t_realloc");
    if (counted_thread() && attempt_fails()) return NULL;
    unsigned long *nh = realloc(h, n + 16);
    if (nh == NULL) return NULL;
    return (char *)nh + 16;
}

static const struct cx_allocator t_allocator = {t_malloc, t_realloc, t_free, NULL};

__attribute__((constructor)) static void t_alloc_setup(void) { cx_set_allocator(&t_allocator); }

void t_alloc_install(long fail_at) {
    atomic_store(&g_count, 0);
    atomic_store(&g_live, 0);
    atomic_store(&g_fail_at, fail_at);
    atomic_store(&g_counting, 1);
}

void t_alloc_uninstall(void) {
    atomic_store(&g_counting, 0);
    atomic_store(&g_fail_at, 0);
}
long t_alloc_count(void) { return atomic_load(&g_count); }
long t_alloc_live(void) { return atomic_load(&g_live); }

long t_torture(int (*scenario)(void *ctx), void *ctx) {
    t_alloc_install(0);
    int rc = scenario(ctx);
    long n = t_alloc_count();
    long live = t_alloc_live();
    t_alloc_uninstall();
    assert_int_equal(rc, 0);
    assert_int_equal(live, 0);
    for (long i = 1; i <= n; i++) {
        t_alloc_install(i);
        rc = scenario(ctx);
        live = t_alloc_live();
        t_alloc_uninstall();
        if (rc != 0 && rc != CX_ENOMEM) {
            fail_msg("torture: failing allocation %ld of %ld gave %s, want CX_ENOMEM", i, n,
                     cx_err_name(rc));
        }
        if (live != 0) fail_msg("torture: failing allocation %ld of %ld leaked %ld blocks", i, n, live);
    }
    return n;
}

void t_latch_init(struct t_latch *l) {
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &a);
    pthread_condattr_destroy(&a);
    l->count = 0;
}

void t_latch_destroy(struct t_latch *l) {
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
}

void t_latch_add(struct t_latch *l) {
    pthread_mutex_lock(&l->mu);
    l->count++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
}

int t_latch_wait(struct t_latch *l, int want, uint64_t deadline) {
    struct timespec ts = cx_deadline_to_timespec(deadline);
    pthread_mutex_lock(&l->mu);
    while (l->count < want) {
        if (deadline == CX_DEADLINE_NONE)
            pthread_cond_wait(&l->cond, &l->mu);
        else if (pthread_cond_timedwait(&l->cond, &l->mu, &ts) != 0 && l->count < want)
            break;
    }
    int ok = l->count >= want;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

int t_refused_port(int *fd) {
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}
