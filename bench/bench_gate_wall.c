/*
 * bench_gate_wall.c - one trial of the wall-clock figures scripts/gate compares base against
 * head: the costs that instruction counts cannot see (sleeps, lock waits, connections, thread
 * counts, scheduling). Each run prints one JSON object; the gate runs base and head
 * alternately, several trials each, and judges every figure with a statistical test over the
 * trials (bench/gate_stats.py). Not a pass/fail test.
 *
 *   bench_gate_wall [--only NAME,...] [--slow SLOWDOWN] [--list]
 *
 * Figures (better: lower or higher), each built to move when its own part of the runtime slows:
 *   cache_lookup_us     exact lookup in a 500-entry cache, one thread (lower)
 *   cache_scaling_2t    lookups per second on 2 threads over 1 thread (higher)
 *   limiter_acquire_us  uncontended limiter acquire (lower)
 *   validate_us         validation of a 5-command plan (lower)
 *   http_conns_per_req  new connections per request, 60 sequential requests through one client
 *                       (lower; a count, judged exactly)
 *   mock_req_per_s      sequential requests per second through the client to the mock (higher)
 *   gil_wait_p50_ms     median wait of a short GIL task among two CPU hogs (lower)
 *   gil_wait_p99_ms     its 99th percentile (the tail; lower)
 *   executor_speedup    32 tasks of 2 ms waiting each on 8 workers: serial time over wall
 *                       (higher)
 *
 * --slow turns on one of the benchmark-only slowdowns of cx_testing.h (scripts/gate
 * --selftest): cache_lock (a global mutex held 20 us per lookup), limiter (1 ms more per
 * acquire), validate10 (validation done 10 times), no_reuse (a new connection per request),
 * gil_never_yields, one_worker. Built against an older tree without them, --slow is refused.
 * Exit: 0 measured, 1 a measurement failed, 2 usage.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/executor.h"
#include "cx/gil.h"
#include "cx/http.h"
#include "cx/limiter.h"
#include "cx/validate.h"
#include "cx_testing.h"
#include "mock/server.h"

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_gate_wall: %s: %s\n", what, why ? why : "failed");
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- cache ---- */

#define ENTRIES 500
static const char k_plan[] =
    "[\"sudo apt-get update\", \"sudo apt-get install -y nginx=1.22.1-9\", "
    "\"sudo systemctl enable --now nginx\", \"sudo mkdir -p /etc/nginx/conf.d\", "
    "\"echo \\\"deb [arch=amd64 signed-by=/usr/share/keyrings/nginx.gpg] "
    "http://nginx.org/packages/debian bookworm nginx\\\" | sudo tee "
    "/etc/apt/sources.list.d/nginx.list > /dev/null\"]";

static struct {
    char dir[64], path[96];
    struct cx_pool *pool;
    struct cx_cache *cache;
} g_cache;

static void prompt_of(char *out, size_t n, unsigned i) {
    snprintf(out, n, "Install package: tool-%u with its service enabled", i);
}

static void cache_open(void) {
    snprintf(g_cache.dir, sizeof g_cache.dir, "/tmp/cx-gatewall-XXXXXX");
    if (mkdtemp(g_cache.dir) == NULL) die("mkdtemp", NULL);
    snprintf(g_cache.path, sizeof g_cache.path, "%s/cache.db", g_cache.dir);
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = g_cache.path;
    struct cx_errinfo ei;
    if (cx_pool_new(&po, &g_cache.pool, &ei) < 0) die("cx_pool_new", ei.msg);
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = ENTRIES;
    if (cx_cache_new(g_cache.pool, &co, &g_cache.cache, &ei) < 0) die("cx_cache_new", ei.msg);
    char p[256];
    for (unsigned i = 0; i < ENTRIES; i++) {
        prompt_of(p, sizeof p, i);
        struct cx_cache_key k = {"openai", "gpt-4o", "system", p};
        if (cx_cache_put(g_cache.cache, &k, k_plan, &ei) < 0) die("cx_cache_put", ei.msg);
    }
}

static void cache_close(void) {
    cx_cache_free(g_cache.cache);
    cx_pool_free(g_cache.pool);
    const char *sfx[] = {"", "-wal", "-shm"};
    char p[128];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", g_cache.path, sfx[i]);
        unlink(p);
    }
    rmdir(g_cache.dir);
}

struct lookers {
    long ops;
    unsigned seed;
    pthread_barrier_t *start;
    uint64_t t0, t1; /* each thread's own clock: the starter may be descheduled meanwhile */
};

static void *lookup_loop(void *arg) {
    struct lookers *l = arg;
    char p[256];
    if (l->start) pthread_barrier_wait(l->start);
    l->t0 = cx_now_ns();
    for (long i = 0; i < l->ops; i++) {
        prompt_of(p, sizeof p, (unsigned)((l->seed + (unsigned long)i * 7919) % ENTRIES));
        struct cx_cache_key k = {"openai", "gpt-4o", "system", p};
        char *json = NULL;
        int similar = -1;
        if (cx_cache_get(g_cache.cache, &k, &json, &similar, NULL) != 0 || similar != 0)
            die("cache", "an exact lookup did not hit exactly");
        cx_free(json);
    }
    l->t1 = cx_now_ns();
    return NULL;
}

/* Seconds for `threads` threads to do `ops` lookups each, started together. */
static double lookups(int threads, long ops) {
    pthread_t th[2];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, (unsigned)threads + 1);
    struct lookers l[2];
    for (int i = 0; i < threads; i++) {
        l[i] = (struct lookers){ops, (unsigned)i * 131, &b, 0, 0};
        if (pthread_create(&th[i], NULL, lookup_loop, &l[i]) != 0) die("pthread_create", NULL);
    }
    pthread_barrier_wait(&b);
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (l[i].t0 < t0) t0 = l[i].t0;
        if (l[i].t1 > t1) t1 = l[i].t1;
    }
    pthread_barrier_destroy(&b);
    return cx_elapsed_s(t0, t1);
}

/* Every figure is the best of REPS repetitions inside the trial: a repetition the scheduler
 * preempted (the machine is shared) is only ever slower, so the best one is what the code
 * costs; the gate's statistics then work on trials that already shed most of that noise. */
#define REPS 5

static double f_cache_lookup_us(void) {
    struct lookers l = {1000, 7, NULL, 0, 0};
    lookup_loop(&l); /* warm */
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        lookup_loop(&l);
        double us = cx_elapsed_s(l.t0, l.t1) * 1e6 / (double)l.ops;
        if (us < best) best = us;
    }
    return best;
}

static double f_cache_scaling_2t(void) {
    long ops = 4000;
    (void)lookups(2, ops / 4); /* warm both threads' paths first */
    double one = 1e30, two = 1e30;
    for (int r = 0; r < REPS; r++) {
        double a = lookups(1, ops), b = lookups(2, ops);
        if (a < one) one = a;
        if (b < two) two = b;
    }
    return (2.0 * (double)ops / two) / ((double)ops / one);
}

/* ---- limiter, validation ---- */

static double f_limiter_acquire_us(void) {
    struct cx_limiter *l;
    struct cx_errinfo ei;
    if (cx_limiter_new(1e12, 1e6, &l, &ei) < 0) die("cx_limiter_new", ei.msg);
    enum { N = 100 };
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = cx_now_ns();
        for (int i = 0; i < N; i++)
            if (cx_limiter_acquire(l, 1) < 0) die("cx_limiter_acquire", NULL);
        double us = cx_elapsed_s(t0, cx_now_ns()) * 1e6 / N;
        if (us < best) best = us;
    }
    cx_limiter_free(l);
    return best;
}

static double f_validate_us(void) {
    cJSON *a = cJSON_Parse(k_plan);
    if (a == NULL) die("validate", "bad plan JSON");
    enum { N = 60 };
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = cx_now_ns();
        for (int i = 0; i < N; i++) {
            struct cx_validation v;
            if (cx_validate_commands(a, &v) < 0 || v.n_rejected) die("validate", "plan rejected");
            cx_validation_clear(&v);
        }
        double us = cx_elapsed_s(t0, cx_now_ns()) * 1e6 / N;
        if (us < best) best = us;
    }
    cJSON_Delete(a);
    return best;
}

/* ---- HTTP client against the mock ---- */

static double g_conns_per_req = -1, g_req_per_s = -1;

static void http_run(void) {
    if (g_req_per_s >= 0) return;
    struct mock_options mo;
    mock_options_init(&mo);
    mo.latency_ms = 0;
    struct mock_server *m;
    char err[256];
    if (mock_server_start(&mo, &m, err, sizeof err) < 0) die("mock_server_start", err);
    char base[128];
    snprintf(base, sizeof base, "%s/v1", mock_server_url(m));
    struct cx_http_client *c;
    struct cx_errinfo ei;
    if (cx_http_client_new(NULL, &c, &ei) < 0) die("cx_http_client_new", ei.msg);
    enum { N = 20, BURSTS = 3 };
    uint64_t t0 = 0;
    g_req_per_s = 0;
    for (int i = -1; i < N * BURSTS; i++) { /* one warm-up request opens the connection */
        if (i % N == 0) {
            if (i > 0) {
                double rate = N / cx_elapsed_s(t0, cx_now_ns());
                if (rate > g_req_per_s) g_req_per_s = rate;
            }
            t0 = cx_now_ns();
        }
        struct cx_http_request req;
        cx_http_request_init(&req);
        req.api = CX_API_OPENAI;
        req.base_url = base;
        req.model = "gpt-4o";
        req.system = "You are a Linux package expert.";
        req.prompt = "Install package: nginx";
        req.max_tokens = 256;
        struct cx_http_result hr;
        cx_http_result_init(&hr);
        if (cx_http_client_complete(c, &req, &hr, &ei) < 0) die("http", ei.msg);
        cx_http_result_clear(&hr);
    }
    double rate = N / cx_elapsed_s(t0, cx_now_ns());
    if (rate > g_req_per_s) g_req_per_s = rate;
#ifdef CX_HTTP_CLIENT_STATS_CONNECTS
    struct cx_http_client_stats st;
    cx_http_client_stats(c, &st);
    /* The warm-up's connection is expected; every other one is a connection not reused. */
    g_conns_per_req = st.connects >= 1 ? (double)(st.connects - 1) / (N * BURSTS) : 0;
#endif
    cx_http_client_free(c);
    mock_server_stop(m);
}

static double f_http_conns_per_req(void) {
    http_run();
    return g_conns_per_req; /* -1: this tree cannot count them (not reported) */
}

static double f_mock_req_per_s(void) {
    http_run();
    return g_req_per_s;
}

/* ---- the emulated GIL: a short task among CPU hogs ---- */

static struct cx_gil *g_gil;
static _Atomic int g_stop;

static void *hog(void *arg) {
    (void)arg;
    while (!g_stop) {
        cx_gil_acquire(g_gil);
        cx_cpu_work_ns(20 * CX_NSEC_PER_MSEC); /* checkpoints as CPython's eval loop does */
        cx_gil_release(g_gil);
    }
    return NULL;
}

static double g_gil_p50 = -1, g_gil_p99 = -1;

static void gil_run(void) {
    if (g_gil_p50 >= 0) return;
    if (cx_gil_new(0, &g_gil) < 0) die("cx_gil_new", NULL);
    g_stop = 0;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, hog, NULL) != 0) die("pthread_create", NULL);
    enum { N = 20 };
    double w[N];
    cx_sleep_ns(10 * CX_NSEC_PER_MSEC);
    for (int i = 0; i < N; i++) {
        cx_sleep_ns(2 * CX_NSEC_PER_MSEC);
        uint64_t t0 = cx_now_ns();
        cx_gil_acquire(g_gil);
        w[i] = cx_elapsed_s(t0, cx_now_ns()) * 1e3;
        cx_gil_release(g_gil);
    }
    g_stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    cx_gil_free(g_gil);
    qsort(w, N, sizeof w[0], cmp_double);
    g_gil_p50 = w[N / 2];
    g_gil_p99 = w[(int)(0.99 * (N - 1) + 0.5)];
}

static double f_gil_wait_p50_ms(void) {
    gil_run();
    return g_gil_p50;
}

static double f_gil_wait_p99_ms(void) {
    gil_run();
    return g_gil_p99;
}

/* ---- executor: tasks that wait (I/O-like), many workers ---- */

static int wait_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)arg, (void)res;
    cx_sleep_ns(2 * CX_NSEC_PER_MSEC);
    return 0;
}

static double f_executor_speedup(void) {
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.threads = 8;
    o.mode = CX_MODE_FREE;
    struct cx_executor *ex;
    struct cx_errinfo ei;
    if (cx_executor_new(&o, &ex, &ei) < 0) die("cx_executor_new", ei.msg);
    enum { N = 32 };
    struct cx_task tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = (struct cx_task){wait_task, NULL};
    double best = 0;
    for (int r = 0; r < 3; r++) {
        struct cx_batch *b;
        uint64_t t0 = cx_now_ns();
        if (cx_executor_run(ex, tasks, N, NULL, NULL, &b) < 0) die("cx_executor_run", NULL);
        double s = cx_elapsed_s(t0, cx_now_ns());
        struct cx_batch_stats st;
        cx_batch_stats(b, &st);
        if (st.successful != N) die("executor", "a task did not complete");
        cx_batch_free(b);
        double sp = N * 2e-3 / s;
        if (sp > best) best = sp;
    }
    cx_executor_free(ex);
    return best;
}

/* ---- driver ---- */

struct figure {
    const char *name, *unit, *better, *kind;
    double (*run)(void);
    int cache;
};

static const struct figure k_figures[] = {
    {"cache_lookup_us", "us", "lower", "wall", f_cache_lookup_us, 1},
    {"cache_scaling_2t", "x", "higher", "wall", f_cache_scaling_2t, 1},
    {"limiter_acquire_us", "us", "lower", "wall", f_limiter_acquire_us, 0},
    {"validate_us", "us", "lower", "wall", f_validate_us, 0},
    {"http_conns_per_req", "conn", "lower", "count", f_http_conns_per_req, 0},
    {"mock_req_per_s", "req/s", "higher", "wall", f_mock_req_per_s, 0},
    {"gil_wait_p50_ms", "ms", "lower", "wall", f_gil_wait_p50_ms, 0},
    {"gil_wait_p99_ms", "ms", "lower", "wall", f_gil_wait_p99_ms, 0},
    {"executor_speedup", "x", "higher", "wall", f_executor_speedup, 0},
};
#define N_FIGURES (sizeof k_figures / sizeof k_figures[0])

static int set_slowdown(const char *name) {
#ifdef CX__HAVE_SLOWDOWNS
    struct cx__slowdowns s = {0};
    if (strcmp(name, "cache_lock") == 0) s.cache_lock_us = 20;
    else if (strcmp(name, "limiter") == 0) s.limiter_extra_us = 1000;
    else if (strcmp(name, "validate10") == 0) s.validate_times = 10;
    else if (strcmp(name, "no_reuse") == 0) s.no_conn_reuse = 1;
    else if (strcmp(name, "gil_never_yields") == 0) s.gil_never_yields = 1;
    else if (strcmp(name, "one_worker") == 0) s.executor_one_worker = 1;
    else return -1;
    cx__set_slowdowns(&s);
    return 0;
#else
    (void)name;
    return -2;
#endif
}

static int selected(const char *only, const char *name) {
    if (only == NULL) return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (size_t f = 0; f < N_FIGURES; f++)
                printf("%s %s %s %s\n", k_figures[f].name, k_figures[f].unit,
                       k_figures[f].better, k_figures[f].kind);
            return 0;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
            size_t known = 0;
            for (size_t f = 0; f < N_FIGURES; f++) known += selected(only, k_figures[f].name);
            if (known == 0) {
                fprintf(stderr, "bench_gate_wall: --only '%s' names no figure (see --list)\n",
                        only);
                return 2;
            }
        } else if (strcmp(argv[i], "--slow") == 0 && i + 1 < argc) {
            int rc = set_slowdown(argv[++i]);
            if (rc == -2) {
                fprintf(stderr, "bench_gate_wall: --slow: this tree has no slowdowns\n");
                return 2;
            }
            if (rc < 0) {
                fprintf(stderr, "bench_gate_wall: --slow '%s': not one of cache_lock, limiter, "
                                "validate10, no_reuse, gil_never_yields, one_worker\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: bench_gate_wall [--only NAME,...] [--slow SLOWDOWN] | --list\n");
            return 2;
        }
    }
    int need_cache = 0;
    for (size_t f = 0; f < N_FIGURES; f++)
        need_cache |= selected(only, k_figures[f].name) && k_figures[f].cache;
    if (need_cache) cache_open();
    printf("{\"figures\": {");
    const char *sep = "";
    for (size_t f = 0; f < N_FIGURES; f++) {
        const struct figure *fg = &k_figures[f];
        if (!selected(only, fg->name)) continue;
        double v = fg->run();
        if (v < 0) continue; /* not measurable on this tree */
        printf("%s\"%s\": {\"value\": %.6g, \"unit\": \"%s\", \"better\": \"%s\", "
               "\"kind\": \"%s\"}",
               sep, fg->name, v, fg->unit, fg->better, fg->kind);
        sep = ", ";
        fflush(stdout);
    }
    printf("}}\n");
    if (need_cache) cache_close();
    return 0;
}
