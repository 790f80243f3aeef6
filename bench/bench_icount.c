/*
 * bench_icount.c - single-threaded, seeded workloads of the runtime's CPU paths, written to be
 * counted in instructions under callgrind (scripts/icount runs them), because instruction
 * counts are repeatable where wall time on a shared machine is not. Not a pass/fail test.
 *
 *   bench_icount WORKLOAD [--iters N] [--list]
 *
 * Each workload sets up outside the measured region, then zeroes callgrind's counters, runs its
 * step N times and dumps them (CALLGRIND_ZERO_STATS, CALLGRIND_DUMP_STATS_AT("measured")), so
 * that dump holds the cost of exactly N steps on every thread and scripts/icount divides it by
 * N. Outside valgrind
 * the requests do nothing and the program prints wall time per step, which is only a hint.
 *
 * Every workload checks its own result (a lookup that misses, a parse that fails, a task that
 * does not complete) and exits 1, so a count is never taken of work that silently did nothing.
 * The workloads with threads (cache put: the pool's writer; executor: one worker; router and
 * mock: curl and the mock's threads) do blocking hand-offs, never spins, so their counts move by
 * a fraction of a percent between runs; scripts/icount measures that spread and says it.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/executor.h"
#include "cx/limiter.h"
#include "cx/parse.h"
#include "cx/plan.h"
#include "cx/router.h"
#include "cx/validate.h"
#include "mock/server.h"

#define ENTRIES 500

static const char k_reply[] =
    "Here is how to install nginx on Debian or Ubuntu:\n\n```json\n"
    "{\"package\": \"nginx\", \"commands\": [\"sudo apt-get update\", "
    "\"sudo apt-get install -y nginx\", \"sudo systemctl enable --now nginx\", "
    "\"sudo ufw allow 'Nginx Full'\", \"systemctl is-active nginx\"], "
    "\"explanation\": \"The package index is updated first so apt sees the current version of "
    "nginx, which is then installed; enabling the unit starts it now and at boot.\"}\n```\n";

static const char k_plan[] =
    "[\"sudo apt-get update\", \"sudo apt-get install -y nginx=1.22.1-9\", "
    "\"sudo systemctl enable --now nginx\", \"sudo mkdir -p /etc/nginx/conf.d\", "
    "\"echo \\\"deb [arch=amd64 signed-by=/usr/share/keyrings/nginx.gpg] "
    "http://nginx.org/packages/debian bookworm nginx\\\" | sudo tee "
    "/etc/apt/sources.list.d/nginx.list > /dev/null\"]";

/* glibc's string functions take paths that depend on where a string lies (its alignment, how
 * near a page end), so a constant in .rodata or a buffer on the stack would count differently
 * in two builds or under another environment. Every input string is copied to the start of
 * its own page first; then base and head builds count the same instructions. */
static char *pinned(const char *s, size_t cap) {
    size_t n = strlen(s) + 1;
    if (cap < n) cap = n;
    char *p = aligned_alloc(4096, (cap + 4095) / 4096 * 4096);
    if (p == NULL) {
        fprintf(stderr, "bench_icount: out of memory\n");
        exit(1);
    }
    memcpy(p, s, n);
    return p;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bench_icount: %s: %s\n", what, why ? why : "failed");
    exit(1);
}

/* Zeroing and dumping act on every thread's counters (toggling collection would only reach the
 * calling thread and miss the pool's writer, curl's resolver and the mock's threads). */
static void begin(void) { CALLGRIND_ZERO_STATS; }
static void end(void) { CALLGRIND_DUMP_STATS_AT("measured"); }

/* ---- cache: a 500-entry cache on a temporary database ---- */

struct cache_fix {
    char dir[64], path[96];
    struct cx_pool *pool;
    struct cx_cache *cache;
};

static void prompt_of(char *out, size_t n, unsigned i) {
    snprintf(out, n, "Install package: tool-%u with its service enabled", i);
}

static char *g_plan, *g_prompt; /* pinned copies of k_plan and a prompt buffer */

static void pin_inputs(void) {
    if (g_plan == NULL) g_plan = pinned(k_plan, 0);
    if (g_prompt == NULL) g_prompt = pinned("", 256);
}

static void cache_open(struct cache_fix *f, int fill) {
    pin_inputs();
    snprintf(f->dir, sizeof f->dir, "/tmp/cx-icount-XXXXXX");
    if (mkdtemp(f->dir) == NULL) die("mkdtemp", NULL);
    snprintf(f->path, sizeof f->path, "%s/cache.db", f->dir);
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = f->path;
    struct cx_errinfo ei;
    if (cx_pool_new(&po, &f->pool, &ei) < 0) die("cx_pool_new", ei.msg);
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = ENTRIES;
    /* No time-driven work inside the count: the generation check (every 5 ms by default) and
     * the access-time flush (100 ms) would run as often as valgrind's slowness allows. */
    co.refresh_interval_ms = 1000000;
    co.flush_interval_ms = 1000000;
    if (cx_cache_new(f->pool, &co, &f->cache, &ei) < 0) die("cx_cache_new", ei.msg);
    for (unsigned i = 0; i < (unsigned)fill; i++) {
        prompt_of(g_prompt, 256, i);
        struct cx_cache_key k = {"openai", "gpt-4o", "system", g_prompt};
        if (cx_cache_put(f->cache, &k, g_plan, &ei) < 0) die("cx_cache_put", ei.msg);
    }
}

static void cache_close(struct cache_fix *f) {
    cx_cache_free(f->cache);
    cx_pool_free(f->pool);
    char p[128];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
}

static void w_cache_exact(long iters) {
    struct cache_fix f;
    cache_open(&f, ENTRIES);
    char *prompt = g_prompt;
    begin();
    for (long i = 0; i < iters; i++) {
        prompt_of(prompt, 256, (unsigned)(i * 7919 % ENTRIES));
        struct cx_cache_key k = {"openai", "gpt-4o", "system", prompt};
        char *json = NULL;
        int similar = -1;
        if (cx_cache_get(f.cache, &k, &json, &similar, NULL) != 0 || similar != 0)
            die("cache exact", "an exact lookup did not hit exactly");
        cx_free(json);
    }
    end();
    cache_close(&f);
}

/* A lookup that is not an exact key: the similarity path runs over the candidates (whether it
 * then hits depends on the matcher; the cost of deciding is what is counted). */
static void w_cache_similar(long iters) {
    struct cache_fix f;
    cache_open(&f, ENTRIES);
    char *prompt = g_prompt;
    long hits = 0;
    begin();
    for (long i = 0; i < iters; i++) {
        snprintf(prompt, 256, "please install package: tool-%u with its service enabled",
                 (unsigned)(i * 7919 % ENTRIES));
        struct cx_cache_key k = {"openai", "gpt-4o", "system", prompt};
        char *json = NULL;
        int rc = cx_cache_get(f.cache, &k, &json, NULL, NULL);
        if (rc != 0 && rc != CX_ENOENT) die("cache similar", cx_strerror(rc));
        hits += rc == 0;
        cx_free(json);
    }
    end();
    fprintf(stderr, "cache_similar: %ld of %ld similar lookups hit\n", hits, iters);
    cache_close(&f);
}

/* Blocking puts from one thread (one group per put): the write path, SQLite included. */
static void w_cache_put(long iters) {
    struct cache_fix f;
    cache_open(&f, ENTRIES);
    char *prompt = g_prompt;
    struct cx_errinfo ei;
    begin();
    for (long i = 0; i < iters; i++) {
        prompt_of(prompt, 256, (unsigned)(ENTRIES + i));
        struct cx_cache_key k = {"openai", "gpt-4o", "system", prompt};
        if (cx_cache_put(f.cache, &k, g_plan, &ei) < 0) die("cx_cache_put", ei.msg);
    }
    end();
    cache_close(&f);
}

/* ---- reply parsing, validation, merging ---- */

static void w_parse(long iters) {
    char *reply = pinned(k_reply, 0);
    begin();
    for (long i = 0; i < iters; i++) {
        cJSON *o = NULL;
        struct cx_errinfo ei;
        if (cx_parse_response(reply, 1, &o, &ei) < 0) die("cx_parse_response", ei.msg);
        cJSON_Delete(o);
    }
    end();
    free(reply);
}

static void w_validate(long iters) {
    pin_inputs();
    cJSON *a = cJSON_Parse(g_plan);
    if (a == NULL) die("validate", "bad plan JSON");
    begin();
    for (long i = 0; i < iters; i++) {
        struct cx_validation v;
        int rc = cx_validate_commands(a, &v);
        if (rc < 0) die("cx_validate_commands", cx_strerror(rc));
        if (v.n_rejected != 0) die("validate", "a benign plan was rejected");
        cx_validation_clear(&v);
    }
    end();
    cJSON_Delete(a);
}

static void w_merge(long iters) {
    enum { PLANS = 5 };
    cJSON *plans[PLANS];
    for (int p = 0; p < PLANS; p++) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "[\"sudo apt-get update\", \"sudo apt-get install -y pkg-%d\", "
                 "\"sudo systemctl enable --now pkg-%d\", \"pkg-%d --version\"]",
                 p, p, p);
        if ((plans[p] = cJSON_Parse(buf)) == NULL) die("merge", "bad plan JSON");
    }
    begin();
    for (long i = 0; i < iters; i++) {
        struct cx_plan out;
        struct cx_errinfo ei;
        if (cx_plan_merge((const cJSON *const *)plans, PLANS, &out, &ei) < 0)
            die("cx_plan_merge", ei.msg);
        if (out.n != 1 + 3 * PLANS) die("merge", "wrong number of merged commands");
        cx_plan_clear(&out);
    }
    end();
    for (int p = 0; p < PLANS; p++) cJSON_Delete(plans[p]);
}

/* ---- limiter and executor ---- */

static void w_limiter(long iters) {
    struct cx_limiter *l;
    struct cx_errinfo ei;
    if (cx_limiter_new(1e12, 1e6, &l, &ei) < 0) die("cx_limiter_new", ei.msg);
    begin();
    for (long i = 0; i < iters; i++)
        if (cx_limiter_acquire(l, 1) < 0) die("cx_limiter_acquire", NULL);
    end();
    cx_limiter_free(l);
}

static int empty_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)arg, (void)res;
    return 0;
}

/* Submit-to-completion of batches of 10 empty tasks on one free-threaded worker. */
static void w_executor(long iters) {
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.threads = 1;
    o.mode = CX_MODE_FREE;
    struct cx_executor *ex;
    struct cx_errinfo ei;
    if (cx_executor_new(&o, &ex, &ei) < 0) die("cx_executor_new", ei.msg);
    struct cx_task tasks[10];
    for (int i = 0; i < 10; i++) tasks[i] = (struct cx_task){empty_task, NULL};
    begin();
    for (long i = 0; i < iters; i++) {
        struct cx_batch *b;
        if (cx_executor_run(ex, tasks, 10, NULL, NULL, &b) < 0) die("cx_executor_run", NULL);
        struct cx_batch_stats st;
        cx_batch_stats(b, &st);
        if (st.successful != 10) die("executor", "a task did not complete");
        cx_batch_free(b);
    }
    end();
    cx_executor_free(ex);
}

/* ---- one router call, and the mock's handling of one request ---- */

static struct mock_server *mock_up(char *base, size_t n) {
    struct mock_options mo;
    mock_options_init(&mo);
    mo.latency_ms = 0;
    mo.threads = 1;
    struct mock_server *m;
    char err[256];
    if (mock_server_start(&mo, &m, err, sizeof err) < 0) die("mock_server_start", err);
    snprintf(base, n, "%s/v1", mock_server_url(m));
    return m;
}

static void w_router(long iters) {
    char base[128];
    struct mock_server *m = mock_up(base, sizeof base);
    struct cx_router_options o;
    cx_router_options_init(&o);
    o.base_url = base;
    o.single_flight = 0;
    struct cx_router *r;
    struct cx_errinfo ei;
    if (cx_router_new(&o, &r, &ei) < 0) die("cx_router_new", ei.msg);
    struct cx_llm_query q;
    cx_llm_query_init(&q);
    q.task = CX_TASK_SYSTEM_OPERATION;
    q.prompt = "Install package: nginx";
    q.max_tokens = 256;
    /* One warm-up call outside the count: the connection is set up once, as in a real run. */
    for (long i = -1; i < iters; i++) {
        if (i == 0) begin();
        struct cx_llm_response resp;
        cx_llm_response_init(&resp);
        if (cx_router_complete(r, &q, &resp, &ei) < 0) die("cx_router_complete", ei.msg);
        if (resp.content == NULL || resp.content[0] == '\0') die("router", "empty answer");
        cx_llm_response_clear(&resp);
    }
    end();
    cx_router_free(r);
    mock_server_stop(m);
}

/* The mock alone: one keep-alive connection, one pre-built chat request written and its reply
 * read to the end per step, by plain socket calls, so nearly all that is counted is the mock's
 * handling (libmicrohttpd, routing, the content generator, the request log); the router
 * workload counts both sides through curl. */
static const char k_chat_body[] =
    "{\"model\":\"gpt-4o\",\"max_tokens\":256,\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are a Linux package expert.\"},"
    "{\"role\":\"user\",\"content\":\"Install package: nginx\"}]}";

static size_t read_reply(int fd, char *buf, size_t cap) {
    size_t got = 0, need = 0;
    for (;;) {
        if (got + 1 >= cap) die("mock", "reply larger than the buffer");
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0) die("mock", "connection closed mid-reply");
        got += (size_t)r;
        buf[got] = '\0';
        if (need == 0) {
            char *eoh = strstr(buf, "\r\n\r\n");
            if (eoh == NULL) continue;
            char *cl = strstr(buf, "Content-Length: ");
            if (cl == NULL) cl = strstr(buf, "content-length: ");
            if (cl == NULL || cl > eoh) die("mock", "reply without Content-Length");
            need = (size_t)(eoh + 4 - buf) + strtoul(cl + 16, NULL, 10);
        }
        if (got >= need) return got;
    }
}

static void w_mock(long iters) {
    char base[128];
    struct mock_server *m = mock_up(base, sizeof base);
    const char *colon = strrchr(mock_server_url(m), ':');
    if (colon == NULL) die("mock", "no port in the server's URL");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("mock", "cannot connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      sizeof k_chat_body - 1);
    char *req = pinned(head, (size_t)hn + sizeof k_chat_body);
    memcpy(req + hn, k_chat_body, sizeof k_chat_body);
    size_t req_len = (size_t)hn + sizeof k_chat_body - 1;
    char *buf = pinned("", 65536);
    for (long i = -1; i < iters; i++) { /* one warm-up request outside the count */
        if (i == 0) begin();
        if (write(fd, req, req_len) != (ssize_t)req_len) die("mock", "short write");
        read_reply(fd, buf, 65536);
        if (strncmp(buf, "HTTP/1.1 200", 12) != 0) die("mock", "reply status is not 200");
    }
    end();
    close(fd);
    free(req);
    free(buf);
    mock_server_stop(m);
}

/* scripts/gate --selftest's known slowdown: the measured loop does `extra_per_1000` more steps
 * per 1,000 than it counts (1000: 2x; 50: 5 %), so the per-step cost it reports rises by
 * exactly that factor and the gate must flag it. 0 outside the self-test. */
static long g_extra_per_1000;

static long total_steps(long iters) { return iters + iters * g_extra_per_1000 / 1000; }

struct workload {
    const char *name;
    void (*run)(long iters);
    long iters; /* default */
    const char *what;
};

static const struct workload k_workloads[] = {
    {"cache_exact", w_cache_exact, 20000, "exact lookup in a 500-entry cache"},
    {"cache_similar", w_cache_similar, 2000, "non-exact lookup (similarity path), 500 entries"},
    {"cache_put", w_cache_put, 200, "blocking put from one thread, 500 entries, evicting"},
    {"parse", w_parse, 20000, "parse of an install reply (extract + cJSON + shape)"},
    {"validate", w_validate, 5000, "validation of a 5-command plan"},
    {"merge", w_merge, 20000, "merge of 5 four-command plans"},
    {"limiter", w_limiter, 200000, "uncontended limiter acquire"},
    {"executor", w_executor, 2000, "submit-to-completion of 10 empty tasks, 1 worker"},
    {"router", w_router, 100, "one router call against the in-process mock (both sides)"},
    {"mock", w_mock, 100, "the mock's handling of one chat request (raw socket client)"},
};
#define N_WORKLOADS (sizeof k_workloads / sizeof k_workloads[0])

static void usage(FILE *f) {
    fprintf(f, "usage: bench_icount WORKLOAD [--iters N] [--inject FACTOR] | --list\n"
               "  --inject F: do F times the steps it counts (scripts/gate --selftest)\n"
               "workloads:\n");
    for (size_t i = 0; i < N_WORKLOADS; i++)
        fprintf(f, "  %-14s %7ld  %s\n", k_workloads[i].name, k_workloads[i].iters,
                k_workloads[i].what);
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < N_WORKLOADS; i++)
            printf("%s %ld\n", k_workloads[i].name, k_workloads[i].iters);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[argc - 2], "--inject") == 0) {
        char *e;
        double f = strtod(argv[argc - 1], &e);
        if (*e != '\0' || !(f >= 1) || !(f <= 11)) {
            fprintf(stderr, "bench_icount: --inject wants a factor in [1, 11], got '%s'\n",
                    argv[argc - 1]);
            return 2;
        }
        g_extra_per_1000 = (long)((f - 1) * 1000 + 0.5);
        argc -= 2;
    }
    if (argc != 2 && argc != 4) {
        usage(stderr);
        return 2;
    }
    const struct workload *w = NULL;
    for (size_t i = 0; i < N_WORKLOADS; i++)
        if (strcmp(argv[1], k_workloads[i].name) == 0) w = &k_workloads[i];
    if (w == NULL) {
        fprintf(stderr, "bench_icount: unknown workload '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    long iters = w->iters;
    if (argc == 4) {
        char *e;
        iters = strtol(argv[3], &e, 10);
        if (strcmp(argv[2], "--iters") != 0 || *e != '\0' || e == argv[3] || iters < 1 ||
            iters > 100000000) {
            fprintf(stderr, "bench_icount: --iters wants an integer in [1, 1e8], got '%s'\n",
                    argv[3]);
            return 2;
        }
    }
    uint64_t t0 = cx_now_ns();
    w->run(total_steps(iters));
    double ns = (double)(cx_now_ns() - t0) / (double)iters;
    if (!RUNNING_ON_VALGRIND)
        fprintf(stderr, "%s: %ld steps, %.0f ns per step wall (setup included; a hint only)\n",
                w->name, iters, ns);
    return 0;
}
