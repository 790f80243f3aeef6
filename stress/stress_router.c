/*
 * stress_router.c - many threads through one router, both I/O designs, against a mock that
 * injects 429s (with Retry-After), 5xx, 529s, resets, malformed and cut bodies at random.
 *
 * Invariants checked (exit 1 when one breaks):
 *   - every query ends exactly once (blocking calls return, each submitted task is resumed
 *     once, on a worker, never inside its submit call);
 *   - an answer is the answer to its own prompt (the package name is in it);
 *   - failures carry only the codes the faults can cause, and say what happened;
 *   - the per-provider request counters add up to what the two servers saw, and each request
 *     is either a success or a failure;
 * Two mock servers (Claude and OpenAI on one, Kimi and Ollama on the other) make fallback go
 * to a genuinely different endpoint; providers on the endpoint already tried are skipped.
 *   - single flight leaves no waiter behind, the I/O loop nothing in flight.
 * Usage: stress_router [--seed S] [--iters N] [--threads T]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/executor.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "cx/router.h"
#include "mock/server.h"
#include "cx_testing.h"
#include "s_util.h"

static const char *k_pkgs[] = {"nginx", "redis", "postgresql", "docker", "nodejs",
                               "htop",  "curl",  "git",        "vim",    "tmux"};
#define NPKG (sizeof k_pkgs / sizeof k_pkgs[0])

static atomic_int g_bad;
static _Atomic long g_progress; /* queries ended (the hang monitor's clock) */

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "stress_router: invariant broken at line %d: ", __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, "\n");                                                       \
            atomic_store(&g_bad, 1);                                                     \
        }                                                                                \
    } while (0)

static int expected_failure(int rc) {
    return rc == CX_ERATELIMIT || rc == CX_ESERVER || rc == CX_EOVERLOADED || rc == CX_ECONN ||
           rc == CX_EPARSE || rc == CX_ETIMEDOUT;
}

static void make_query(struct cx_llm_query *q, uint64_t *rng, char *prompt, size_t n, int *pkg) {
    cx_llm_query_init(q);
    *pkg = (int)(s_splitmix64(rng) % NPKG);
    /* half the prompts repeat (single flight), half are unique (many transfers in flight) */
    if (s_splitmix64(rng) % 2)
        snprintf(prompt, n, "Install package: %s", k_pkgs[*pkg]);
    else
        snprintf(prompt, n, "Install package: %s-%llu", k_pkgs[*pkg], (unsigned long long)(s_splitmix64(rng) % 100000));
    q->task = (enum cx_task_type)(s_splitmix64(rng) % CX_TASK_COUNT);
    q->system = "You are a Linux package expert.";
    q->prompt = prompt;
    q->max_tokens = 512;
    q->stream = s_splitmix64(rng) % 2;
    q->deadline = cx_deadline_after_ms(30000);
}

static void check_result(int rc, const struct cx_llm_response *resp, const struct cx_errinfo *ei, int pkg) {
    if (rc == 0) {
        CHECK(resp->content && strstr(resp->content, k_pkgs[pkg]), "answer for %s does not name it",
              k_pkgs[pkg]);
        CHECK(resp->provider >= 0 && resp->provider < CX_PROVIDER_COUNT, "bad provider %d", resp->provider);
    } else {
        CHECK(expected_failure(rc), "unexpected error %s: %s", cx_err_name(rc), ei ? ei->msg : "");
        CHECK(ei && ei->msg[0], "failure %s without a message", cx_err_name(rc));
    }
}

/* ---- blocking workers ---- */

struct worker {
    struct cx_router *r;
    uint64_t seed;
    int n;
    int ok, failed;
};

static void *worker_main(void *p) {
    struct worker *w = p;
    uint64_t rng = w->seed;
    for (int i = 0; i < w->n; i++) {
        struct cx_llm_query q;
        char prompt[64];
        int pkg;
        make_query(&q, &rng, prompt, sizeof prompt, &pkg);
        struct cx_llm_response resp;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_router_complete(w->r, &q, &resp, &ei);
        check_result(rc, &resp, &ei, pkg);
        if (rc == 0) w->ok++;
        else w->failed++;
        atomic_fetch_add(&g_progress, 1);
        cx_llm_response_clear(&resp);
    }
    return NULL;
}

/* ---- submissions (executor tasks that suspend; the router resumes each once) ---- */

static _Thread_local int tls_in_submit;

struct one {
    struct cx_router *r;
    struct cx_llm_query q;
    char prompt[64];
    int pkg;
    struct cx_router_reply reply;
    atomic_int calls;
};

static int one_done(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)res;
    struct one *o = arg;
    int c = atomic_fetch_add(&o->calls, 1);
    CHECK(c == 0, "completion ran %d times", c + 1);
    CHECK(!tls_in_submit, "completion ran inside its submit call");
    check_result(o->reply.rc, &o->reply.resp, &o->reply.ei, o->pkg);
    atomic_fetch_add(&g_progress, 1);
    cx_llm_response_clear(&o->reply.resp);
    return o->reply.rc;
}

static int one_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct one *o = arg;
    struct cx_task_handle *h = cx_task_suspend(ctx);
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    tls_in_submit = 1;
    int rc = cx_router_submit(o->r, &o->q, &o->reply, h, one_done, o, &ei);
    tls_in_submit = 0;
    if (rc < 0) {
        CHECK(0, "submit failed: %s", ei.msg);
        o->reply.rc = CX_EPARSE; /* an expected code: one_done only counts it */
        o->reply.ei = ei;
        if (!o->reply.ei.msg[0]) snprintf(o->reply.ei.msg, sizeof o->reply.ei.msg, "submit failed");
        cx_task_resume(h, one_done, o);
    }
    return CX_EAGAIN;
}

static void describe(char *buf, size_t n) {
    snprintf(buf, n, "%ld queries ended", atomic_load(&g_progress));
}

int main(int argc, char **argv) {
    struct s_args a = {1, 200, 8};
    s_args_parse("router", argc, argv, &a, 256);
    uint64_t seed = a.seed;
    int iters = (int)a.iters;
    int threads = a.threads;

    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "seed = %llu\nlatency = 2ms\ndist = uniform\nlatency_max = 4ms\nretry_after = 3ms\n"
             "fault.429 = 0.05\nfault.500 = 0.02\nfault.503 = 0.02\nfault.529 = 0.02\n"
             "fault.reset = 0.02\nfault.malformed = 0.02\nfault.cut = 0.02\n",
             (unsigned long long)seed);
    struct mock_options mo;
    mock_options_init(&mo);
    mo.config_text = cfg;
    struct mock_server *m, *m2;
    char err[256];
    if (mock_server_start(&mo, &m, err, sizeof err) != 0) {
        fprintf(stderr, "stress_router: mock: %s\n", err);
        return 2;
    }
    char cfg2[600];
    snprintf(cfg2, sizeof cfg2, "%s" "seed = %llu\n", cfg, (unsigned long long)(seed + 1));
    mo.config_text = cfg2;
    if (mock_server_start(&mo, &m2, err, sizeof err) != 0) {
        fprintf(stderr, "stress_router: mock 2: %s\n", err);
        return 2;
    }
    char base[128], base2[128];
    snprintf(base, sizeof base, "%s/v1", mock_server_url(m));
    snprintf(base2, sizeof base2, "%s/v1", mock_server_url(m2));

    struct cx_ioloop *loop;
    struct cx_limiter *lim;
    if (cx_ioloop_new(NULL, &loop, NULL) < 0 || cx_limiter_new(1e6, 1e6, &lim, NULL) < 0) return 2;
    struct cx_router_options o;
    cx_router_options_init(&o);
    for (int p = 0; p < CX_PROVIDER_COUNT; p++) {
        o.providers[p].api_key = "stress-key";
        o.providers[p].base_url = p == CX_PROVIDER_CLAUDE || p == CX_PROVIDER_OPENAI ? base : base2;
    }
    o.limiter = lim;
    o.tokens_per_minute = 1e9;
    o.max_attempts = 4;
    o.backoff_base_ns = CX_NSEC_PER_MSEC;
    o.backoff_cap_ns = 4 * CX_NSEC_PER_MSEC;
    o.seed = seed;
    o.loop = loop;
    o.io = CX_IO_THREAD_LOCAL;
    struct cx_router *tl, *hy;
    struct cx_errinfo ei;
    if (cx_router_new(&o, &tl, &ei) < 0) {
        fprintf(stderr, "stress_router: %s\n", ei.msg);
        return 2;
    }
    o.io = CX_IO_HYBRID;
    if (cx_router_new(&o, &hy, &ei) < 0) {
        fprintf(stderr, "stress_router: %s\n", ei.msg);
        return 2;
    }

    s_watch_start("router", &g_progress, s_scaled_ms(60000), describe);
    /* phase 1: blocking calls, thread-local and hybrid routers at once */
    uint64_t t0 = cx_now_ns();
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    for (int i = 0; i < threads; i++) {
        ws[i] = (struct worker){i % 2 ? hy : tl, seed * 1000 + (uint64_t)i, iters / threads + 1, 0, 0};
        if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) return 2;
    }
    int ok = 0, failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        ok += ws[i].ok;
        failed += ws[i].failed;
    }
    double blocking_s = cx_elapsed_s(t0, cx_now_ns());

    /* phase 2: every query submitted at once through the one I/O thread, from executor tasks */
    struct one *ones = calloc((size_t)iters, sizeof *ones);
    struct cx_task *tasks = calloc((size_t)iters, sizeof *tasks);
    uint64_t rng = seed ^ 0xabcdef;
    int submitted = iters;
    for (int i = 0; i < iters; i++) {
        ones[i].r = hy;
        make_query(&ones[i].q, &rng, ones[i].prompt, sizeof ones[i].prompt, &ones[i].pkg);
        atomic_init(&ones[i].calls, 0);
        tasks[i] = (struct cx_task){one_task, &ones[i]};
    }
    struct cx_executor_options eo;
    cx_executor_options_init(&eo);
    eo.threads = threads;
    struct cx_executor *ex;
    if (cx_executor_new(&eo, &ex, &ei) < 0) return 2;
    t0 = cx_now_ns();
    struct cx_batch *batch;
    if (cx_executor_run(ex, tasks, (size_t)iters, NULL, NULL, &batch) < 0) return 2;
    double async_s = cx_elapsed_s(t0, cx_now_ns());
    struct cx_batch_stats bst;
    cx_batch_stats(batch, &bst);
    int adone = 0, aok = (int)bst.successful, afailed = (int)bst.failed;
    for (int i = 0; i < iters; i++) adone += atomic_load(&ones[i].calls);
    cx_batch_free(batch);
    cx_executor_free(ex);
    free(tasks);
    CHECK(adone == submitted, "%d of %d submitted queries ended", adone, submitted);

    /* counters */
    struct cx_router_stats st[2];
    cx_router_stats(tl, &st[0]);
    cx_router_stats(hy, &st[1]);
    uint64_t requests = 0;
    for (int k = 0; k < 2; k++) {
        for (int p = 0; p < CX_PROVIDER_COUNT; p++) {
            struct cx_provider_stats *s = &st[k].providers[p];
            CHECK(s->requests == s->successes + s->failures, "provider %d: %llu requests != %llu + %llu", p,
                  (unsigned long long)s->requests, (unsigned long long)s->successes,
                  (unsigned long long)s->failures);
            requests += s->requests;
        }
    }
    CHECK(st[0].queries + st[1].queries == (uint64_t)(ok + failed + submitted), "query count");
    struct mock_counts mc, mc2;
    uint64_t wdl = cx_deadline_after_ms(5000);
    do {
        mock_server_counts(m, &mc);
        mock_server_counts(m2, &mc2);
        if (mc.api_requests + mc2.api_requests >= requests) break;
        cx_sleep_ns(CX_NSEC_PER_MSEC);
    } while (!cx_deadline_expired(wdl));
    CHECK(mc.api_requests + mc2.api_requests == requests, "servers saw %llu requests, routers sent %llu",
          (unsigned long long)(mc.api_requests + mc2.api_requests), (unsigned long long)requests);
    CHECK(cx__router_sf_waiting(tl) == 0 && cx__router_sf_waiting(hy) == 0, "single-flight waiters left");
    struct cx_ioloop_stats ls;
    cx_ioloop_stats(loop, &ls);
    CHECK(ls.in_flight == 0 && ls.submitted == ls.completed, "I/O loop: %llu in flight, %llu/%llu",
          (unsigned long long)ls.in_flight, (unsigned long long)ls.completed, (unsigned long long)ls.submitted);

    printf("stress_router: blocking %d ok %d failed in %.3f s; async %d ok %d failed in %.3f s "
           "(max in flight %llu); %llu HTTP requests, %llu retries, %llu fallbacks, %llu shared, "
           "%llu Retry-After pauses\n",
           ok, failed, blocking_s, aok, afailed, async_s, (unsigned long long)ls.max_in_flight,
           (unsigned long long)requests, (unsigned long long)(st[0].retries + st[1].retries),
           (unsigned long long)(st[0].fallbacks + st[1].fallbacks),
           (unsigned long long)(st[0].shared + st[1].shared),
           (unsigned long long)(st[0].rate_limit_pauses + st[1].rate_limit_pauses));

    cx_router_free(tl);
    cx_router_free(hy);
    cx_ioloop_free(loop);
    cx_limiter_free(lim);
    mock_server_stop(m);
    mock_server_stop(m2);
    free(ones);
    free(th);
    free(ws);
    s_watch_stop();
    /* threads: the blocking callers, the I/O loop, two mocks' two workers and timer each, the monitor */
    s_report("router", threads + 1 + 6 + 1, (long long)ok + failed + submitted, !atomic_load(&g_bad));
    if (atomic_load(&g_bad)) {
        printf("stress_router: FAILED (seed %llu)\n", (unsigned long long)seed);
        return 1;
    }
    printf("stress_router: ok\n");
    return 0;
}
