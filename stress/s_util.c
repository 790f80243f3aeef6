/* s_util.c - see s_util.h. Command-line parsing, temporary paths, wait scaling and the closing
 * line for the stress programs; nothing here touches the runtime. */
#include "s_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sanitizer builds keep their assertions (STYLE.md): the lock-held assertions (CX_ASSERT_HELD,
 * active unless NDEBUG) catch a removed lock in a way TSan alone may not. The tsan preset's
 * RelWithDebInfo flags therefore leave -DNDEBUG out; this stops a build that puts it back. */
#if defined(CX_SANITIZED) && defined(NDEBUG)
#error "sanitizer builds must keep assertions on: remove -DNDEBUG (see CMakePresets.json)"
#endif

double s_timeout_scale(void) {
    const char *e = getenv("CX_TIMEOUT_SCALE");
    if (e != NULL && *e != '\0') {
        char *end;
        errno = 0;
        double v = strtod(e, &end);
        if (errno != 0 || *end != '\0' || !(v > 0) || v > 1000) {
            fprintf(stderr, "stress: CX_TIMEOUT_SCALE '%s': want a positive number up to 1000\n", e);
            exit(2);
        }
        return v;
    }
#if defined(__SANITIZE_THREAD__)
    return 4;
#elif defined(__SANITIZE_ADDRESS__)
    return 2;
#else
    return 1;
#endif
}

long s_scaled_ms(long ms) { return (long)((double)ms * s_timeout_scale()); }

void s_hang(const char *name, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "stress_%s: HANG: %s\n", name, msg);
    fflush(stderr);
    _exit(1);
}

static struct {
    const char *name;
    _Atomic long *progress;
    long limit_ms;
    void (*describe)(char *buf, size_t n);
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop; /* guarded by mu */
    pthread_t th;
} g_watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *watch_main(void *p) {
    (void)p;
    long last = atomic_load(g_watch.progress);
    struct timespec since;
    clock_gettime(CLOCK_MONOTONIC, &since);
    pthread_mutex_lock(&g_watch.mu);
    while (!g_watch.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&g_watch.cond, &g_watch.mu, &ts);
        if (g_watch.stop) break;
        long now = atomic_load(g_watch.progress);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (now != last) {
            last = now;
            since = ts;
            continue;
        }
        long idle_ms = (long)(ts.tv_sec - since.tv_sec) * 1000 + (ts.tv_nsec - since.tv_nsec) / 1000000;
        if (idle_ms >= g_watch.limit_ms) {
            char what[400] = "";
            if (g_watch.describe != NULL) g_watch.describe(what, sizeof what);
            s_hang(g_watch.name, "no progress for %ld ms (progress counter stuck at %ld): %s",
                   idle_ms, now, what);
        }
    }
    pthread_mutex_unlock(&g_watch.mu);
    return NULL;
}

void s_watch_start(const char *name, _Atomic long *progress, long limit_ms,
                   void (*describe)(char *buf, size_t n)) {
    g_watch.name = name;
    g_watch.progress = progress;
    g_watch.limit_ms = limit_ms;
    g_watch.describe = describe;
    g_watch.stop = 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g_watch.cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&g_watch.th, NULL, watch_main, NULL);
    if (rc != 0) {
        fprintf(stderr, "stress_%s: cannot start the progress monitor: %s\n", name, strerror(rc));
        exit(1);
    }
}

void s_watch_stop(void) {
    pthread_mutex_lock(&g_watch.mu);
    g_watch.stop = 1;
    pthread_cond_signal(&g_watch.cond);
    pthread_mutex_unlock(&g_watch.mu);
    pthread_join(g_watch.th, NULL);
    pthread_cond_destroy(&g_watch.cond);
}

void s_report(const char *name, long threads, long long operations, int ok) {
    printf("stress_%s: threads %ld operations %lld: %s\n", name, threads, operations,
           ok ? "ok" : "FAILED");
    fflush(stdout);
}


static void usage_exit(const char *name, int threads_max, const char *flag, const char *value,
                       const char *why) {
    if (value != NULL)
        fprintf(stderr, "stress_%s: %s '%s': %s\n", name, flag, value, why);
    else
        fprintf(stderr, "stress_%s: %s: %s\n", name, flag, why);
    fprintf(stderr, "usage: stress_%s [--seed S] [--iters N]%s\n", name,
            threads_max > 0 ? " [--threads T]" : "");
    exit(2);
}

/* A whole decimal number in [lo, hi], nothing before or after it. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (*s < '0' || *s > '9') return -1; /* strtoull would take a sign or spaces */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return -1;
    *out = (uint64_t)v;
    return 0;
}

void s_args_parse(const char *name, int argc, char **argv, struct s_args *a, int threads_max) {
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        int is_seed = strcmp(flag, "--seed") == 0;
        int is_iters = strcmp(flag, "--iters") == 0;
        int is_threads = threads_max > 0 && strcmp(flag, "--threads") == 0;
        if (!is_seed && !is_iters && !is_threads) usage_exit(name, threads_max, flag, NULL, "unknown flag");
        if (i + 1 >= argc) usage_exit(name, threads_max, flag, NULL, "missing its value");
        const char *value = argv[++i];
        uint64_t v;
        if (is_seed) {
            if (parse_u64(value, 0, UINT64_MAX, &v) < 0)
                usage_exit(name, threads_max, flag, value, "want an unsigned decimal number");
            a->seed = v;
        } else if (is_iters) {
            if (parse_u64(value, 1, 1000000000, &v) < 0)
                usage_exit(name, threads_max, flag, value, "want a whole number from 1 to 1000000000");
            a->iters = (long)v;
        } else {
            if (parse_u64(value, 1, (uint64_t)threads_max, &v) < 0) {
                char why[64];
                snprintf(why, sizeof why, "want a whole number from 1 to %d", threads_max);
                usage_exit(name, threads_max, flag, value, why);
            }
            a->threads = (int)v;
        }
    }
    printf("stress_%s: seed %llu iters %ld threads %d\n", name, (unsigned long long)a->seed,
           a->iters, a->threads);
    fflush(stdout);
}

void s_run_threads(const char *name, int n, void *(*fn)(void *)) {
    pthread_t *th = calloc((size_t)n, sizeof *th);
    if (th == NULL) {
        fprintf(stderr, "stress_%s: out of memory for %d threads\n", name, n);
        exit(1);
    }
    for (long t = 0; t < n; t++) {
        int rc = pthread_create(&th[t], NULL, fn, (void *)t);
        if (rc != 0) {
            fprintf(stderr, "stress_%s: cannot start thread %ld: %s\n", name, t, strerror(rc));
            exit(1);
        }
    }
    for (int t = 0; t < n; t++) pthread_join(th[t], NULL);
    free(th);
}

void s_tmp_db(const char *name, const char *file, char *path, size_t n) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0') base = "/tmp";
    int len = snprintf(path, n, "%s/stress_%s-XXXXXX", base, name);
    if (len < 0 || (size_t)len + 1 + strlen(file) + 1 > n) {
        fprintf(stderr, "stress_%s: temporary path under '%s' too long\n", name, base);
        exit(1);
    }
    if (mkdtemp(path) == NULL) {
        fprintf(stderr, "stress_%s: mkdtemp '%s': %s\n", name, path, strerror(errno));
        exit(1);
    }
    snprintf(path + len, n - (size_t)len, "/%s", file);
}

void s_tmp_db_remove(const char *path) {
    static const char *const sides[] = {"", "-wal", "-shm", "-journal"};
    size_t n = strlen(path) + 16;
    char *p = malloc(n);
    if (p == NULL) return;
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        snprintf(p, n, "%s%s", path, sides[i]);
        unlink(p);
    }
    snprintf(p, n, "%s", path);
    char *slash = strrchr(p, '/');
    if (slash != NULL) {
        *slash = '\0';
        rmdir(p);
    }
    free(p);
}
