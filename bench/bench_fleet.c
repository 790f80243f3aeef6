/*
 * bench_fleet.c - the fleet limiter measured: P processes (fork) x T threads reserving from one
 * provider quota for S seconds, once through Redis (the fleet backend) and once with a local
 * limiter per process (what each process does without a fleet: "limit x N"), side by side.
 *
 * Usage: bench_fleet [--procs 8] [--threads 32] [--rps 200] [--burst 20] [--seconds 10]
 *                    [--url redis://...]   (default: starts its own redis-server on a unix
 *                                           socket in a temporary directory)
 *                    [--outage]            (also a run with redis-server killed at 1/3 of the
 *                                           time and restarted at 2/3)
 * Prints, per run: requests admitted in the window, admitted over the quota (burst + rps * S),
 * reserve calls that failed, calls served by the local fallback, and the reserve call's latency
 * (p50/p99: for the fleet, one EVALSHA round trip). Every figure comes from this run; the
 * machine may be shared, so the load average is printed before and after.
 *
 * Not a test: nothing here passes or fails. It does not talk to a provider or the mock server
 * (the limiter is measured alone; wiring into the router is issue 9's next step).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx/clock.h"
#include "fleet.h"
#include "fleet_ratelimit.h"

#define MAX_LAT 200000

static int g_procs = 8, g_threads = 32;
static double g_rps = 200, g_burst = 20, g_secs = 10;
static const char *g_url;
static char g_dir[256], g_sock[300], g_own_url[320];
static pid_t g_redis = -1;

/* ---- our own redis-server ---- */

static int redis_answers(void) {
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(g_sock, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static int redis_start(void) {
    g_redis = fork();
    if (g_redis < 0) return -1;
    if (g_redis == 0) {
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", g_sock, "--save", "",
               "--appendonly", "no", "--dir", g_dir, "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    uint64_t deadline = cx_deadline_after_ms(5000);
    while (!cx_deadline_expired(deadline)) {
        if (redis_answers()) return 0;
        cx_sleep_ns(5 * CX_NSEC_PER_MSEC);
    }
    return -1;
}

static void redis_kill(void) {
    if (g_redis > 0) {
        kill(g_redis, SIGKILL);
        waitpid(g_redis, NULL, 0);
    }
    g_redis = -1;
    unlink(g_sock);
}

/* ---- one worker process ---- */

struct shared {              /* per process, across its threads */
    struct cx__ratelimit *rl;
    uint64_t start, end;
    atomic_long admitted, errors;
    atomic_long nlat;
    uint32_t lat_us[MAX_LAT];
};

static void *worker(void *p) {
    struct shared *s = p;
    cx_sleep_until(s->start);
    while (cx_now_ns() < s->end) {
        uint64_t t0 = cx_now_ns(), w = 0;
        int rc = cx__ratelimit_reserve(s->rl, 0, UINT64_MAX, &w, NULL);
        uint64_t t1 = cx_now_ns();
        long i = atomic_fetch_add(&s->nlat, 1);
        if (i < MAX_LAT) s->lat_us[i] = (uint32_t)((t1 - t0) / 1000);
        if (rc != 0) {
            atomic_fetch_add(&s->errors, 1);
            cx_sleep_ns(CX_NSEC_PER_MSEC);
            continue;
        }
        if (t1 + w > s->end) break; /* granted after the window: not admitted in it */
        cx_sleep_ns(w);
        atomic_fetch_add(&s->admitted, 1);
    }
    return NULL;
}

struct result {
    long admitted, errors, nlat;
    unsigned long long fallbacks;
};

/* Runs in the child: opens its limiter, runs T threads, writes its result and latencies. */
static int child(int fd, int fleet, const char *prefix, uint64_t start, uint64_t end) {
    struct cx__fleet *f = NULL;
    struct cx_errinfo ei = {0};
    if (fleet) {
        struct cx__fleet_options fo;
        cx__fleet_options_init(&fo);
        fo.url = g_url;
        fo.prefix = prefix;
        fo.pool_size = 8;
        fo.optional = 1;
        fo.backoff_min_ms = 20;
        fo.backoff_max_ms = 500;
        if (cx__fleet_open(&fo, &f, &ei) < 0) {
            fprintf(stderr, "bench_fleet: %s\n", ei.msg);
            return 1;
        }
    }
    struct cx__ratelimit_options ro;
    cx__ratelimit_options_init(&ro);
    ro.provider = "bench";
    ro.rps = g_rps;
    ro.burst = g_burst;
    ro.fleet_size = g_procs;
    static struct shared s;
    if (cx__ratelimit_open(&ro, f, &s.rl, &ei) < 0) {
        fprintf(stderr, "bench_fleet: %s\n", ei.msg);
        return 1;
    }
    s.start = start;
    s.end = end;
    pthread_t th[1024];
    for (int i = 0; i < g_threads; i++) pthread_create(&th[i], NULL, worker, &s);
    for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
    struct result r = {atomic_load(&s.admitted), atomic_load(&s.errors), atomic_load(&s.nlat),
                       (unsigned long long)cx__ratelimit_fallbacks(s.rl)};
    if (r.nlat > MAX_LAT) r.nlat = MAX_LAT;
    if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) return 1;
    size_t bytes = (size_t)r.nlat * sizeof(uint32_t), off = 0;
    while (off < bytes) {
        ssize_t n = write(fd, (char *)s.lat_us + off, bytes - off);
        if (n <= 0) return 1;
        off += (size_t)n;
    }
    cx__ratelimit_free(s.rl);
    cx__fleet_free(f);
    return 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* One run of P processes; returns admitted (or -1). */
static long run(const char *label, int fleet, const char *prefix, int outage) {
    uint64_t start = cx_now_ns() + 500 * CX_NSEC_PER_MSEC;
    uint64_t end = start + (uint64_t)(g_secs * 1e9);
    int fds[1024];
    pid_t pids[1024];
    for (int p = 0; p < g_procs; p++) {
        int pfd[2];
        if (pipe(pfd) < 0) return -1;
        pids[p] = fork();
        if (pids[p] == 0) {
            close(pfd[0]);
            _exit(child(pfd[1], fleet, prefix, start, end));
        }
        close(pfd[1]);
        fds[p] = pfd[0];
    }
    if (outage) {
        cx_sleep_until(start + (end - start) / 3);
        redis_kill();
        fprintf(stderr, "  (redis-server killed at %.1f s)\n", g_secs / 3);
        cx_sleep_until(start + 2 * (end - start) / 3);
        if (redis_start() < 0) fprintf(stderr, "bench_fleet: redis-server did not restart\n");
        else fprintf(stderr, "  (redis-server restarted at %.1f s)\n", 2 * g_secs / 3);
    }
    long admitted = 0, errors = 0, nlat = 0;
    unsigned long long fallbacks = 0;
    uint32_t *lat = malloc((size_t)g_procs * MAX_LAT * sizeof *lat);
    for (int p = 0; p < g_procs; p++) {
        struct result r;
        if (read(fds[p], &r, sizeof r) != (ssize_t)sizeof r) {
            fprintf(stderr, "bench_fleet: process %d reported nothing\n", p);
            continue;
        }
        size_t bytes = (size_t)r.nlat * sizeof *lat, off = 0;
        while (off < bytes) {
            ssize_t n = read(fds[p], (char *)(lat + nlat) + off, bytes - off);
            if (n <= 0) break;
            off += (size_t)n;
        }
        nlat += (long)(off / sizeof *lat);
        admitted += r.admitted;
        errors += r.errors;
        fallbacks += r.fallbacks;
        close(fds[p]);
    }
    for (int p = 0; p < g_procs; p++) waitpid(pids[p], NULL, 0);
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_u32);
    double quota = g_burst + g_rps * g_secs;
    printf("%-34s admitted %7ld  over quota %.4f  errors %ld  local fallbacks %llu  "
           "reserve p50 %u us p99 %u us (%ld calls)\n",
           label, admitted, admitted / quota, errors, fallbacks,
           nlat ? lat[nlat / 2] : 0, nlat ? lat[(long)(nlat * 0.99)] : 0, nlat);
    free(lat);
    return admitted;
}

static void loadavg(const char *when) {
    double l[3];
    if (getloadavg(l, 3) == 3) printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

int main(int argc, char **argv) {
    int outage = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--outage")) { outage = 1; continue; }
        if (v == NULL) { fprintf(stderr, "bench_fleet: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--procs")) g_procs = atoi(v);
        else if (!strcmp(a, "--threads")) g_threads = atoi(v);
        else if (!strcmp(a, "--rps")) g_rps = atof(v);
        else if (!strcmp(a, "--burst")) g_burst = atof(v);
        else if (!strcmp(a, "--seconds")) g_secs = atof(v);
        else if (!strcmp(a, "--url")) g_url = v;
        else { fprintf(stderr, "bench_fleet: unknown option %s\n", a); return 2; }
    }
    if (g_procs < 1 || g_procs > 1024 || g_threads < 1 || g_threads > 1024 || !(g_rps > 0) ||
        !(g_burst >= 1) || !(g_secs > 0)) {
        fprintf(stderr, "bench_fleet: --procs and --threads in 1..1024, --rps > 0, --burst >= 1, "
                        "--seconds > 0\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (g_url == NULL) {
        snprintf(g_dir, sizeof g_dir, "%s/cx-bench-fleet-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(g_dir) == NULL) { perror("mkdtemp"); return 1; }
        snprintf(g_sock, sizeof g_sock, "%s/redis.sock", g_dir);
        snprintf(g_own_url, sizeof g_own_url, "unix://%s", g_sock);
        g_url = g_own_url;
        if (redis_start() < 0) {
            fprintf(stderr, "bench_fleet: cannot start redis-server (scripts/deps installs it)\n");
            return 1;
        }
    } else if (outage) {
        fprintf(stderr, "bench_fleet: --outage needs the bench's own redis-server (no --url)\n");
        return 2;
    }
    printf("bench_fleet: %d processes x %d threads, quota %g requests/s (burst %g), %g s, "
           "quota for the window %.0f\n", g_procs, g_threads, g_rps, g_burst, g_secs,
           g_burst + g_rps * g_secs);
    loadavg("before");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bench%d", (int)getpid());
    run("fleet (Redis GCRA, one quota)", 1, prefix, 0);
    run("local limiter per process", 0, prefix, 0);
    if (outage) {
        snprintf(prefix, sizeof prefix, "bench%do", (int)getpid());
        run("fleet, Redis killed + restarted", 1, prefix, 1);
    }
    loadavg("after");
    if (g_redis > 0) {
        kill(g_redis, SIGTERM);
        waitpid(g_redis, NULL, 0);
        unlink(g_sock);
        char log[400];
        snprintf(log, sizeof log, "%s/redis.log", g_dir);
        unlink(log);
        rmdir(g_dir);
    }
    return 0;
}
