/*
 * bench_fleet.c - fleet mode measured through the real path: P worker processes (fork) x T
 * threads, each thread asking cx_pipeline_install for one package at a time (pipeline ->
 * router -> HTTP) against ONE cx-mock server whose server-side rate limit equals the fleet quota
 * (rate_rps = --rps, its burst the mock's default max(1, rps)); the processes' limits come from
 * the configuration as cx would read it (CORTEX_RATE_LIMIT_RPS = quota, the default burst one
 * token below the provider's, CORTEX_FLEET_SIZE = P). Each process has its own SQLite cache;
 * packages are drawn at random from a universe of --unique names, so repeats happen within and
 * across processes.
 *
 * Three runs, side by side:
 *   fleet     CORTEX_REDIS_URL set: one quota in Redis, the shared cache tier, fleet single flight
 *   local     no Redis: each process limits itself to the full quota ("limit x N")
 *   outage    fleet, with redis-server SIGKILLed at 1/3 of the window and restarted at 2/3
 * Printed per run: the admitted rate (the mock's 2xx per second in the window after the first
 * second) over the quota, the mock's 429s, upstream calls / queries, the cache hits by tier, the
 * reserve round trip p50 / p99 (median / max over the processes), the limiter's local fallbacks;
 * for the outage run also the queries lost (asked but never ended: goal 0) and the admitted rate
 * during the outage over the quota (the overshoot). Every query is max_attempts 1, so a 429 is a
 * failed query, counted, not retried.
 *
 * Usage: bench_fleet [--procs 8] [--threads 32] [--rps 40] [--seconds 20] [--latency-ms 20]
 *                    [--unique N (default 4 * rps * seconds)] [--quick] [--no-outage]
 *   --quick: 4 processes x 8 threads, 20 requests/s, 8 s (a loaded machine's smoke run).
 * Starts its own redis-server (unix socket, temporary directory) and its own mock (a forked
 * process). Not a test: nothing passes or fails; the machine may be shared, so the load average
 * is printed before and after.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/config.h"
#include "cx/pipeline.h"
#include "cx_testing.h"
#include "fleet_ratelimit.h"
#include "mock/server.h"

static int g_procs = 8, g_threads = 32, g_latency_ms = 20;
static double g_rps = 40, g_secs = 20;
static long g_unique;
static char g_dir[256], g_sock[300], g_url[320], g_mock_url[128];
static pid_t g_redis = -1, g_mock = -1;
static int g_mock_cmd = -1, g_mock_ans = -1;

/* ---- our own redis-server ---- */

static int redis_answers(void)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(g_sock, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static int redis_start(void)
{
    g_redis = fork();
    if (g_redis < 0)
        return -1;
    if (g_redis == 0) {
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", g_sock, "--save", "",
               "--appendonly", "no", "--dir", g_dir, "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    uint64_t deadline = cx_deadline_after_ms(5000);
    while (!cx_deadline_expired(deadline)) {
        if (redis_answers())
            return 0;
        cx_sleep_ns(5 * CX_NSEC_PER_MSEC);
    }
    return -1;
}

static void redis_kill(void)
{
    if (g_redis > 0) {
        kill(g_redis, SIGKILL);
        waitpid(g_redis, NULL, 0);
    }
    g_redis = -1;
    unlink(g_sock);
}

/* ---- the mock, in its own process: 'c' asks for its counts, 'q' stops it ---- */

static int mock_start(void)
{
    int cmd[2], ans[2];
    if (pipe(cmd) < 0 || pipe(ans) < 0)
        return -1;
    for (int i = 0; i < 2; i++) /* not into redis-server, which is exec'd later */
        if (fcntl(cmd[i], F_SETFD, FD_CLOEXEC) < 0 || fcntl(ans[i], F_SETFD, FD_CLOEXEC) < 0)
            return -1;
    g_mock = fork();
    if (g_mock < 0)
        return -1;
    if (g_mock == 0) {
        close(cmd[1]);
        close(ans[0]);
        char cfg[256], err[256];
        snprintf(cfg, sizeof cfg, "rate_rps = %g\nlatency = %dms\n", g_rps, g_latency_ms);
        struct mock_options mo;
        mock_options_init(&mo);
        mo.config_text = cfg;
        mo.threads = 2;
        struct mock_server *m = NULL;
        if (mock_server_start(&mo, &m, err, sizeof err) < 0) {
            fprintf(stderr, "bench_fleet: mock: %s\n", err);
            _exit(1);
        }
        int port = mock_server_port(m);
        if (write(ans[1], &port, sizeof port) != (ssize_t)sizeof port)
            _exit(1);
        char c;
        while (read(cmd[0], &c, 1) == 1 && c == 'c') {
            struct mock_counts mc;
            mock_server_counts(m, &mc);
            if (write(ans[1], &mc, sizeof mc) != (ssize_t)sizeof mc)
                break;
        }
        mock_server_stop(m);
        _exit(0);
    }
    close(cmd[0]);
    close(ans[1]);
    g_mock_cmd = cmd[1];
    g_mock_ans = ans[0];
    int port = 0;
    if (read(g_mock_ans, &port, sizeof port) != (ssize_t)sizeof port)
        return -1;
    snprintf(g_mock_url, sizeof g_mock_url, "http://127.0.0.1:%d/v1", port);
    return 0;
}

static struct mock_counts mock_counts_now(void)
{
    struct mock_counts mc;
    memset(&mc, 0, sizeof mc);
    if (write(g_mock_cmd, "c", 1) != 1 || read(g_mock_ans, &mc, sizeof mc) != (ssize_t)sizeof mc)
        fprintf(stderr, "bench_fleet: the mock did not answer\n");
    return mc;
}

/* ---- one worker process ---- */

struct env {
    const char *kv[24];
};

static const char *env_get(const char *name, void *ud)
{
    const struct env *e = ud;
    for (int i = 0; e->kv[i] != NULL; i += 2)
        if (strcmp(e->kv[i], name) == 0)
            return e->kv[i + 1];
    return NULL;
}

struct result {
    uint64_t queries, ended, ok, failed, rate_limited, local_hits, fleet_hits;
    uint64_t waited, fallbacks, alone, rtt_n;
    double rtt_p50, rtt_p99;
};

struct proc {
    struct cx_pipeline *p;
    uint64_t start, end;
    unsigned seed;
    atomic_uint_fast64_t queries, ended, ok, failed, rate_limited, local_hits, fleet_hits;
};

static void *worker(void *arg)
{
    struct proc *s = arg;
    unsigned seed = s->seed ^ (unsigned)(uintptr_t)&seed;
    cx_sleep_until(s->start);
    while (cx_now_ns() < s->end) {
        char name[32];
        snprintf(name, sizeof name, "pkg-%ld", (long)(rand_r(&seed) % g_unique));
        const char *pkgs[1] = {name};
        struct cx_run_options ro;
        cx_run_options_init(&ro);
        struct cx_install_report *r = NULL;
        atomic_fetch_add(&s->queries, 1);
        (void)cx_pipeline_install(s->p, pkgs, 1, &ro, &r, NULL);
        atomic_fetch_add(&s->ended, 1);
        if (r == NULL) {
            atomic_fetch_add(&s->failed, 1);
            continue;
        }
        const struct cx_item *it = &r->items[0];
        if (it->status == 0) {
            atomic_fetch_add(&s->ok, 1);
            if (it->cache_tier && strcmp(it->cache_tier, "fleet") == 0)
                atomic_fetch_add(&s->fleet_hits, 1);
            else if (it->from_cache)
                atomic_fetch_add(&s->local_hits, 1);
        } else {
            atomic_fetch_add(&s->failed, 1);
            if (it->status == CX_ERATELIMIT)
                atomic_fetch_add(&s->rate_limited, 1);
        }
        cx_install_report_free(r);
    }
    return NULL;
}

static int child(int fd, int idx, int fleet, const char *prefix, uint64_t start, uint64_t end)
{
    char rps[32], size[16], db[320];
    snprintf(rps, sizeof rps, "%g", g_rps);
    snprintf(size, sizeof size, "%d", g_procs);
    snprintf(db, sizeof db, "%s/proc-%s-%d.db", g_dir, prefix, idx);
    struct env e = {{"CORTEX_RATE_LIMIT_RPS", rps, "CORTEX_FLEET_SIZE", size,
                     "CORTEX_REDIS_OPTIONAL", "1", "CORTEX_REDIS_PREFIX", prefix}};
    if (fleet) {
        e.kv[8] = "CORTEX_REDIS_URL";
        e.kv[9] = g_url;
    }
    struct cx_config cfg;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_config_load(&cfg, env_get, &e, &ei) < 0) {
        fprintf(stderr, "bench_fleet: %s\n", ei.msg);
        return 1;
    }
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.config = &cfg;
    o.base_url = g_mock_url;
    o.cache_endpoint = "bench-mock";
    o.db_path = db;
    o.have_io = 1;
    o.io = CX_IO_THREAD_LOCAL;
    o.max_attempts = 1;
    static struct proc s;
    if (cx_pipeline_new(&o, &s.p, &ei) < 0) {
        fprintf(stderr, "bench_fleet: %s\n", ei.msg);
        return 1;
    }
    s.start = start;
    s.end = end;
    s.seed = (unsigned)(idx * 7919 + 17);
    pthread_t th[1024];
    for (int i = 0; i < g_threads; i++)
        pthread_create(&th[i], NULL, worker, &s);
    for (int i = 0; i < g_threads; i++)
        pthread_join(th[i], NULL);
    struct cx_fleet_stats fs;
    cx_pipeline_fleet_stats(s.p, &fs);
    struct result r = {atomic_load(&s.queries), atomic_load(&s.ended), atomic_load(&s.ok),
                       atomic_load(&s.failed), atomic_load(&s.rate_limited),
                       atomic_load(&s.local_hits), atomic_load(&s.fleet_hits),
                       fs.flights_waited, fs.limiter_fallbacks, fs.alone, 0, 0, 0};
    cx__ratelimit_rtt(cx__pipeline_fleet_limit(s.p), &r.rtt_n, &r.rtt_p50, &r.rtt_p99);
    int rc = write(fd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1;
    cx_pipeline_free(s.p);
    cx_config_clear(&cfg);
    return rc;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run of P processes. */
static void run(const char *label, int fleet, const char *prefix, int outage)
{
    struct mock_counts c0 = mock_counts_now();
    uint64_t start = cx_now_ns() + 1000 * CX_NSEC_PER_MSEC;
    uint64_t end = start + (uint64_t)(g_secs * 1e9);
    int fds[1024];
    pid_t pids[1024];
    for (int p = 0; p < g_procs; p++) {
        int pfd[2];
        if (pipe(pfd) < 0)
            return;
        pids[p] = fork();
        if (pids[p] == 0) {
            close(pfd[0]);
            _exit(child(pfd[1], p, fleet, prefix, start, end));
        }
        close(pfd[1]);
        fds[p] = pfd[0];
    }
    uint64_t from = start + CX_NSEC_PER_SEC; /* after the initial burst */
    cx_sleep_until(from);
    struct mock_counts c1 = mock_counts_now(), k1 = c1, k2 = c1;
    uint64_t tk1 = 0, tk2 = 0;
    if (outage) {
        cx_sleep_until(start + (end - start) / 3);
        redis_kill();
        tk1 = cx_now_ns();
        k1 = mock_counts_now();
        cx_sleep_until(start + 2 * (end - start) / 3);
        k2 = mock_counts_now();
        tk2 = cx_now_ns();
        if (redis_start() < 0)
            fprintf(stderr, "bench_fleet: redis-server did not restart\n");
    }
    cx_sleep_until(end);
    struct mock_counts c2 = mock_counts_now();
    uint64_t t2 = cx_now_ns();
    struct result tot;
    memset(&tot, 0, sizeof tot);
    double p50[1024], p99 = 0;
    int np50 = 0, reported = 0;
    uint64_t wait_until = end + 120 * CX_NSEC_PER_SEC;
    for (int p = 0; p < g_procs; p++) {
        struct pollfd pf = {fds[p], POLLIN, 0};
        uint64_t left = cx_deadline_remaining_ns(wait_until);
        struct result r;
        if (poll(&pf, 1, (int)(left / CX_NSEC_PER_MSEC)) != 1 ||
            read(fds[p], &r, sizeof r) != (ssize_t)sizeof r) {
            fprintf(stderr, "bench_fleet: process %d reported nothing (counted as lost)\n", p);
            kill(pids[p], SIGKILL);
            close(fds[p]);
            continue;
        }
        reported++;
        tot.queries += r.queries;
        tot.ended += r.ended;
        tot.ok += r.ok;
        tot.failed += r.failed;
        tot.rate_limited += r.rate_limited;
        tot.local_hits += r.local_hits;
        tot.fleet_hits += r.fleet_hits;
        tot.waited += r.waited;
        tot.fallbacks += r.fallbacks;
        tot.alone += r.alone;
        tot.rtt_n += r.rtt_n;
        if (r.rtt_n > 0) {
            p50[np50++] = r.rtt_p50;
            if (r.rtt_p99 > p99)
                p99 = r.rtt_p99;
        }
        close(fds[p]);
    }
    for (int p = 0; p < g_procs; p++)
        waitpid(pids[p], NULL, 0);
    struct mock_counts c3 = mock_counts_now();
    qsort(p50, (size_t)np50, sizeof *p50, cmp_d);
    double win = (double)(t2 - from) / 1e9;
    double rate = (double)(c2.status_2xx - c1.status_2xx) / win;
    uint64_t upstream = c3.api_requests - c0.api_requests;
    printf("%s\n", label);
    printf("  admitted rate / quota        %.4f  (%.2f of %g requests/s over %.1f s)\n",
           rate / g_rps, rate, g_rps, win);
    printf("  429s from the mock           %llu  (queries failed by 429: %llu)\n",
           (unsigned long long)(c3.rate_limited - c0.rate_limited),
           (unsigned long long)tot.rate_limited);
    printf("  upstream calls / queries     %llu / %llu = %.3f  (hits: local %llu, fleet %llu; "
           "waited on another process %llu)\n",
           (unsigned long long)upstream, (unsigned long long)tot.queries,
           tot.queries ? (double)upstream / (double)tot.queries : 0,
           (unsigned long long)tot.local_hits, (unsigned long long)tot.fleet_hits,
           (unsigned long long)tot.waited);
    printf("  queries ok / failed / lost   %llu / %llu / %llu  (%d of %d processes reported)\n",
           (unsigned long long)tot.ok, (unsigned long long)tot.failed,
           (unsigned long long)(tot.queries - tot.ended), reported, g_procs);
    if (fleet)
        printf("  Redis reserve round trip     p50 %.0f us, p99 %.0f us  (%llu calls; p50 median "
               "and p99 max over processes); local fallbacks %llu, asked alone %llu\n",
               np50 ? p50[np50 / 2] : 0, p99, (unsigned long long)tot.rtt_n,
               (unsigned long long)tot.fallbacks, (unsigned long long)tot.alone);
    if (outage) {
        double ow = (double)(tk2 - tk1) / 1e9;
        double orate = (double)(k2.status_2xx - k1.status_2xx) / ow;
        printf("  during the outage (%.1f s)    admitted rate / quota %.4f, 429s %llu\n", ow,
               orate / g_rps, (unsigned long long)(k2.rate_limited - k1.rate_limited));
    }
    fflush(stdout);
}

static void loadavg(const char *when)
{
    double l[3];
    if (getloadavg(l, 3) == 3)
        printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

int main(int argc, char **argv)
{
    int outage = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-outage")) {
            outage = 0;
            continue;
        }
        if (!strcmp(a, "--quick")) {
            g_procs = 4;
            g_threads = 8;
            g_rps = 20;
            g_secs = 8;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "bench_fleet: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--procs"))
            g_procs = atoi(v);
        else if (!strcmp(a, "--threads"))
            g_threads = atoi(v);
        else if (!strcmp(a, "--rps"))
            g_rps = atof(v);
        else if (!strcmp(a, "--seconds"))
            g_secs = atof(v);
        else if (!strcmp(a, "--latency-ms"))
            g_latency_ms = atoi(v);
        else if (!strcmp(a, "--unique"))
            g_unique = atol(v);
        else {
            fprintf(stderr, "bench_fleet: unknown option %s\n", a);
            return 2;
        }
    }
    if (g_procs < 1 || g_procs > 1024 || g_threads < 1 || g_threads > 1024 || !(g_rps >= 1) ||
        !(g_secs >= 3) || g_latency_ms < 0 || g_unique < 0) {
        fprintf(stderr, "bench_fleet: --procs and --threads in 1..1024, --rps >= 1, --seconds "
                        ">= 3, --latency-ms >= 0, --unique >= 1\n");
        return 2;
    }
    if (g_unique == 0)
        g_unique = (long)(4 * g_rps * g_secs);
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_dir, sizeof g_dir, "%s/cx-bench-fleet-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_sock, sizeof g_sock, "%s/redis.sock", g_dir);
    snprintf(g_url, sizeof g_url, "unix://%s", g_sock);
    if (redis_start() < 0) {
        fprintf(stderr, "bench_fleet: cannot start redis-server (scripts/deps installs it)\n");
        return 1;
    }
    if (mock_start() < 0) {
        fprintf(stderr, "bench_fleet: cannot start the mock server\n");
        return 1;
    }
    printf("bench_fleet: %d processes x %d threads through cx_pipeline_install, quota %g "
           "requests/s (the mock's rate limit too), %g s, mock latency %d ms, %ld package "
           "names\n", g_procs, g_threads, g_rps, g_secs, g_latency_ms, g_unique);
    loadavg("before");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "bf%df", (int)getpid());
    run("fleet (CORTEX_REDIS_URL: one quota, shared cache, fleet single flight)", 1, prefix, 0);
    snprintf(prefix, sizeof prefix, "bf%dl", (int)getpid());
    run("local limiter per process (no Redis: limit x N)", 0, prefix, 0);
    if (outage) {
        snprintf(prefix, sizeof prefix, "bf%do", (int)getpid());
        run("fleet, redis-server killed at 1/3 and restarted at 2/3", 1, prefix, 1);
    }
    loadavg("after");
    fflush(stdout);
    /* 'q', not only EOF: redis-server, (re)started after the mock, holds a copy of the pipe's
     * write end, so closing ours alone never ended the mock's read loop. */
    if (write(g_mock_cmd, "q", 1) != 1)
        fprintf(stderr, "bench_fleet: could not tell the mock to stop\n");
    close(g_mock_cmd);
    waitpid(g_mock, NULL, 0);
    if (g_redis > 0) {
        kill(g_redis, SIGTERM);
        waitpid(g_redis, NULL, 0);
    }
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fleet: could not remove %s\n", g_dir);
    return 0;
}
