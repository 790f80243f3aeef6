/*
 * test_router.c - the router against the mock: routing and forced providers, fallback, retries
 * honouring Retry-After (and pausing the shared limiter for every worker), the attempt log,
 * deadline expiry, 4xx not retried, single flight, the token bucket's correction, the endpoint
 * names of cache keys, both I/O designs (and cx_router_submit) giving identical results, the
 * one completion never running inside the submit call, no attempt sent inside another query's
 * Retry-After pause, keys absent from every message and from stderr.
 * (The cache and validator tests moved to test_pipeline.c: the router no longer caches or
 * validates.)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/config.h"
#include "cx/gil.h"
#include "cx/dbpool.h"
#include "cx/executor.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "cx/router.h"
#include "cx_internal.h"
#include "cx_testing.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

#define SECRET "sk-ant-router-SECRET-do-not-log-91c2"

static struct mock_server *g_mock;
static char g_base[128];

static int setup(void **state) {
    (void)state;
    g_mock = t_mock_start("retry_after = 40ms\nstall = 10s\n", 0.001, g_base, sizeof g_base);
    return g_mock != NULL ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    mock_server_stop(g_mock);
    return 0;
}

static uint64_t mock_api_requests(void) {
    struct mock_counts c;
    mock_server_counts(g_mock, &c);
    return c.api_requests;
}

/* The mock counts a request once it has finished sending it, which can be a moment after the
 * client has its answer: wait (bounded) until at least `want` are counted, return the count. */
static uint64_t mock_requests_at_least(uint64_t want) {
    uint64_t dl = t_deadline_ms(2000), n;
    while ((n = mock_api_requests()) < want && !cx_deadline_expired(dl)) cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
    return n;
}

static void opts_mock(struct cx_router_options *o) {
    cx_router_options_init(o);
    o->base_url = g_base;
    o->providers[CX_PROVIDER_CLAUDE].api_key = SECRET;
    o->backoff_base_ns = CX_NSEC_PER_MSEC;
    o->backoff_cap_ns = 20 * CX_NSEC_PER_MSEC;
    o->seed = 42;
}

static struct cx_router *router(const struct cx_router_options *o) {
    struct cx_router *r;
    struct cx_errinfo ei;
    int rc = cx_router_new(o, &r, &ei);
    if (rc) fprintf(stderr, "cx_router_new: %s\n", ei.msg);
    assert_int_equal(rc, 0);
    return r;
}

static void query(struct cx_llm_query *q, enum cx_task_type t, const char *prompt) {
    cx_llm_query_init(q);
    q->task = t;
    q->system = "You are a Linux package expert.";
    q->prompt = prompt;
    q->max_tokens = 512;
    q->deadline = t_deadline_ms(10000);
}

/* ---- cx_router_submit from executor tasks ---- */

/* Set around cx_router_submit: a completion that sees it ran inside the submit call. */
static _Thread_local int tls_in_submit;

struct sub {
    struct cx_router *r;
    struct cx_ioloop *loop;       /* to check where the completion runs */
    struct cx_llm_query q;
    struct cx_router_reply reply;
    int submit_rc;
    atomic_int completions;
    atomic_int in_submit;         /* completions that ran inside the submit call */
    atomic_int on_io;             /* completions that ran on the I/O thread */
};

static int sub_done(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)res;
    struct sub *s = arg;
    atomic_fetch_add(&s->completions, 1);
    if (tls_in_submit) atomic_fetch_add(&s->in_submit, 1);
    if (s->loop && cx_ioloop_on_thread(s->loop)) atomic_fetch_add(&s->on_io, 1);
    return s->reply.rc;
}

static int sub_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct sub *s = arg;
    struct cx_task_handle *h = cx_task_suspend(ctx);
    struct cx_errinfo ei;
    tls_in_submit = 1;
    s->submit_rc = cx_router_submit(s->r, &s->q, &s->reply, h, sub_done, s, &ei);
    tls_in_submit = 0;
    if (s->submit_rc < 0) {
        s->reply.rc = s->submit_rc;
        s->reply.ei = ei;
        assert_int_equal(cx_task_resume(h, sub_done, s), 0);
    }
    return CX_EAGAIN;
}

static void sub_init(struct sub *s, struct cx_router *r, struct cx_ioloop *loop, const struct cx_llm_query *q) {
    memset(s, 0, sizeof *s);
    s->r = r;
    s->loop = loop;
    s->q = *q;
    cx_router_reply_init(&s->reply);
}

/* Runs n submissions as tasks of one executor and waits for all of them. */
static void submit_all(struct sub *subs, int n, int threads) {
    struct cx_executor_options eo;
    cx_executor_options_init(&eo);
    eo.threads = threads;
    struct cx_executor *ex;
    assert_int_equal(cx_executor_new(&eo, &ex, NULL), 0);
    struct cx_task *tasks = calloc((size_t)n, sizeof *tasks);
    assert_non_null(tasks);
    for (int i = 0; i < n; i++) tasks[i] = (struct cx_task){sub_task, &subs[i]};
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, (size_t)n, NULL, NULL, &b), 0);
    cx_batch_free(b);
    cx_executor_free(ex);
    free(tasks);
    for (int i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&subs[i].completions), 1); /* exactly one completion */
        assert_int_equal(atomic_load(&subs[i].in_submit), 0);  /* never inside submit */
        assert_int_equal(atomic_load(&subs[i].on_io), 0);      /* on a worker */
    }
}

static void test_names_and_routes(void **state) {
    (void)state;
    assert_int_equal(cx_router_route(CX_TASK_USER_CHAT), CX_PROVIDER_CLAUDE);
    assert_int_equal(cx_router_route(CX_TASK_REQUIREMENT_PARSING), CX_PROVIDER_CLAUDE);
    for (int t = CX_TASK_SYSTEM_OPERATION; t < CX_TASK_COUNT; t++)
        assert_int_equal(cx_router_route((enum cx_task_type)t), CX_PROVIDER_KIMI_K2);
    assert_string_equal(cx_task_type_name(CX_TASK_TOOL_EXECUTION), "tool_execution");
    assert_string_equal(cx_provider_name(CX_PROVIDER_KIMI_K2), "kimi_k2");
    enum cx_provider p;
    assert_int_equal(cx_provider_parse("Anthropic", &p), 0);
    assert_int_equal(p, CX_PROVIDER_CLAUDE);
    assert_int_equal(cx_provider_parse("ollama", &p), 0);
    assert_int_equal(p, CX_PROVIDER_OLLAMA);
    assert_int_equal(cx_provider_parse("bogus", &p), CX_EINVAL);

    struct cx_router_options o;
    cx_router_options_init(&o);
    struct cx_router *r;
    struct cx_errinfo ei;
    assert_int_equal(cx_router_new(&o, &r, &ei), CX_ENOPROVIDER);
    o.providers[CX_PROVIDER_KIMI_K2].api_key = "k";
    o.max_attempts = 0;
    assert_int_equal(cx_router_new(&o, &r, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "max_attempts"));
    o.max_attempts = 3;
    o.io = CX_IO_HYBRID;
    assert_int_equal(cx_router_new(&o, &r, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "loop"));
}

static void test_routing(void **state) {
    (void)state;
    struct cx_router_options o;
    opts_mock(&o);
    struct cx_router *r = router(&o);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), 0);
    assert_int_equal(resp.provider, CX_PROVIDER_CLAUDE);
    assert_non_null(strstr(resp.content, "nginx"));
    assert_int_equal(resp.attempts, 1);
    assert_true(resp.prompt_tokens > 0 && resp.completion_tokens > 0);
    double want = (resp.prompt_tokens * 3.0 + resp.completion_tokens * 15.0) / 1e6;
    assert_true(resp.cost > want * 0.999 && resp.cost < want * 1.001);
    cx_llm_response_clear(&resp);

    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: redis");
    q.stream = 1;
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), 0);
    assert_int_equal(resp.provider, CX_PROVIDER_KIMI_K2);
    cx_llm_response_clear(&resp);

    query(&q, CX_TASK_USER_CHAT, "Install package: git");
    q.force = CX_PROVIDER_OPENAI;
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), 0);
    assert_int_equal(resp.provider, CX_PROVIDER_OPENAI);
    cx_llm_response_clear(&resp);

    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.providers[CX_PROVIDER_CLAUDE].requests, 1);
    assert_int_equal(st.providers[CX_PROVIDER_KIMI_K2].requests, 1);
    assert_int_equal(st.providers[CX_PROVIDER_OPENAI].requests, 1);
    assert_int_equal(st.providers[CX_PROVIDER_OLLAMA].requests, 0);
    assert_true(st.providers[CX_PROVIDER_CLAUDE].cost > 0);
    assert_int_equal(st.queries, 3);
    cx_router_free(r);

    /* Without the override only providers with keys are configured: chat falls to Kimi. */
    cx_router_options_init(&o);
    o.providers[CX_PROVIDER_KIMI_K2].api_key = "kimi-key";
    o.providers[CX_PROVIDER_KIMI_K2].base_url = g_base;
    r = router(&o);
    assert_false(cx_router_configured(r, CX_PROVIDER_CLAUDE));
    assert_false(cx_router_configured(r, CX_PROVIDER_OLLAMA));
    query(&q, CX_TASK_USER_CHAT, "Install package: htop");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), 0);
    assert_int_equal(resp.provider, CX_PROVIDER_KIMI_K2);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
}

static void test_retry_after(void **state) {
    (void)state;
    struct cx_limiter *lim;
    /* next to no refill: the balance afterwards counts the tokens taken */
    assert_int_equal(cx_limiter_new(0.001, 100, &lim, NULL), 0);
    struct cx_router_options o;
    opts_mock(&o);
    o.limiter = lim;
    o.fallback = 0;
    struct cx_router *r = router(&o);
    t_mock_script(g_mock, "next 2 429");
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_USER_CHAT, "Install package: postgresql");
    uint64_t t0 = cx_now_ns();
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    /* two Retry-After waits of 40 ms, although the backoff alone would be at most 1 + 2 ms */
    assert_true(cx_now_ns() - t0 >= 80 * CX_NSEC_PER_MSEC);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.provider, CX_PROVIDER_CLAUDE);
    cx_llm_response_clear(&resp);
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.rate_limit_pauses, 2);
    assert_int_equal(st.providers[CX_PROVIDER_CLAUDE].failures, 2);
    assert_int_equal(st.providers[CX_PROVIDER_CLAUDE].successes, 1);
    /* the limiter was acquired for every attempt, retries included */
    double left = cx_limiter_tokens(lim);
    assert_true(left > 96.9 && left < 97.1);
    cx_router_free(r);
    cx_limiter_free(lim);
}

/* A 429 seen by one worker pauses the shared limiter for another. */
struct bg {
    struct cx_router *r;
    const char *prompt;
    int rc;
};

static void *bg_main(void *p) {
    struct bg *b = p;
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_USER_CHAT, b->prompt);
    b->rc = cx_router_complete(b->r, &q, &resp, NULL);
    cx_llm_response_clear(&resp);
    return NULL;
}

static void test_pause_is_shared(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(mock_server_configure(g_mock, "retry_after = 300ms", err, sizeof err), 0);
    struct cx_limiter *lim;
    assert_int_equal(cx_limiter_new(1000, 1000, &lim, NULL), 0);
    struct cx_router_options o;
    opts_mock(&o);
    o.limiter = lim;
    struct cx_router *r = router(&o);
    t_mock_script(g_mock, "next 1 429");
    struct bg a = {r, "Install package: nodejs", -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_main, &a), 0);
    uint64_t dl = t_deadline_ms(5000);
    struct cx_router_stats st;
    for (;;) {
        cx_router_stats(r, &st);
        if (st.rate_limit_pauses > 0 || cx_deadline_expired(dl)) break;
        cx_sleep_ns(CX_NSEC_PER_MSEC / 2);
    }
    assert_int_equal(st.rate_limit_pauses, 1);
    uint64_t pause_end = cx_limiter_paused_until(lim);
    assert_true(pause_end > cx_now_ns());
    /* another worker, another query: its request must not go out before the pause ends */
    uint64_t before = mock_api_requests();
    struct bg b = {r, "Install package: curl", -1};
    bg_main(&b);
    assert_int_equal(b.rc, 0);
    assert_true(cx_now_ns() >= pause_end);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(mock_requests_at_least(before + 2) - before, 2); /* b's request and a's retry */
    cx_router_free(r);
    cx_limiter_free(lim);
    assert_int_equal(mock_server_configure(g_mock, "retry_after = 40ms", err, sizeof err), 0);
}

/* A second mock server (a genuinely different endpoint), started by the test that needs it. */
static struct mock_server *mock2(char *base, size_t len) {
    struct mock_server *m = t_mock_start(NULL, 0.001, base, len);
    assert_non_null(m);
    return m;
}

static uint64_t api_requests_of(struct mock_server *m) {
    struct mock_counts c;
    mock_server_counts(m, &c);
    return c.api_requests;
}

/* Claude on server A fails three times with 500; the query falls back to Kimi on server B. */
static void test_fallback(void **state) {
    (void)state;
    char base_b[128];
    struct mock_server *b = mock2(base_b, sizeof base_b);
    struct cx_router_options o;
    cx_router_options_init(&o);
    o.providers[CX_PROVIDER_CLAUDE].api_key = SECRET;
    o.providers[CX_PROVIDER_CLAUDE].base_url = g_base;
    o.providers[CX_PROVIDER_KIMI_K2].api_key = "kimi-key";
    o.providers[CX_PROVIDER_KIMI_K2].base_url = base_b;
    o.backoff_base_ns = CX_NSEC_PER_MSEC;
    o.backoff_cap_ns = 20 * CX_NSEC_PER_MSEC;
    struct cx_router *r = router(&o);
    t_mock_script(g_mock, "next 3 500");
    uint64_t a0 = mock_api_requests(), b0 = api_requests_of(b);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx fallback");
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.provider, CX_PROVIDER_KIMI_K2);
    assert_int_equal(resp.attempts, 4);
    assert_non_null(strstr(resp.content, "nginx"));
    cx_llm_response_clear(&resp);
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.fallbacks, 1);
    assert_int_equal(st.providers[CX_PROVIDER_CLAUDE].failures, 3);
    assert_int_equal(st.providers[CX_PROVIDER_KIMI_K2].successes, 1);
    assert_int_equal(mock_requests_at_least(a0 + 3) - a0, 3);
    uint64_t dl = t_deadline_ms(2000);
    while (api_requests_of(b) < b0 + 1 && !cx_deadline_expired(dl)) cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
    assert_int_equal(api_requests_of(b) - b0, 1);
    cx_router_free(r);
    mock_server_stop(b);

    /* With the base URL override every provider is the one server: no fallback to it under
     * another name, so a failing query is sent max_attempts times, not 4 x max_attempts. */
    opts_mock(&o);
    r = router(&o);
    t_mock_script(g_mock, "next 3 500");
    a0 = mock_api_requests();
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx same endpoint");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_ESERVER);
    assert_non_null(strstr(ei.msg, "3 attempts failed"));
    assert_null(strstr(ei.msg, "kimi_k2"));
    cx_router_stats(r, &st);
    assert_int_equal(st.fallbacks, 0);
    assert_int_equal(st.providers[CX_PROVIDER_CLAUDE].requests, 3);
    for (int p = 1; p < CX_PROVIDER_COUNT; p++) assert_int_equal(st.providers[p].requests, 0);
    assert_int_equal(mock_requests_at_least(a0 + 3) - a0, 3);
    /* the preferred provider's wire format is kept: a Kimi-routed query speaks OpenAI's */
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: nginx kimi format");
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.provider, CX_PROVIDER_KIMI_K2);
    cx_llm_response_clear(&resp);
    cx_router_free(r);

    /* fallback off: the error lists every attempt */
    opts_mock(&o);
    o.fallback = 0;
    r = router(&o);
    t_mock_script(g_mock, "next 1 429; next 1 503; next 1 reset");
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx fallback");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_ECONN);
    assert_int_equal(ei.code, CX_ECONN);
    assert_non_null(strstr(ei.msg, "3 attempts failed"));
    /* every provider is the override's server: the attempts name it and its format */
    char lab[300], want[400];
    snprintf(lab, sizeof lab, "%s (Anthropic API)", g_base);
    snprintf(want, sizeof want, "#1 %s 429 rate limited (retry after 0.04 s)", lab);
    assert_non_null(strstr(ei.msg, want));
    snprintf(want, sizeof want, "#2 %s 503 server error", lab);
    assert_non_null(strstr(ei.msg, want));
    snprintf(want, sizeof want, "#3 %s connection failed or reset", lab);
    assert_non_null(strstr(ei.msg, want));
    assert_null(resp.content);
    cx_router_free(r);
}

static void test_4xx_not_retried(void **state) {
    (void)state;
    struct mock_options mo;
    mock_options_init(&mo);
    mo.time_scale = 0.001;
    mo.required_key = "only-this-key";
    char base[128];
    struct mock_server *m = t_mock_start_opts(&mo, base, sizeof base);
    assert_non_null(m);
    struct cx_router_options o;
    opts_mock(&o);
    o.base_url = base;
    struct cx_router *r = router(&o);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "hello");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_EAUTH);
    assert_int_equal(ei.detail, 401);
    assert_null(strstr(ei.msg, SECRET));
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    /* one server (the override): asked once, not once per provider name */
    assert_int_equal(st.providers[CX_PROVIDER_CLAUDE].requests, 1);
    for (int p = 1; p < CX_PROVIDER_COUNT; p++) assert_int_equal(st.providers[p].requests, 0);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.fallbacks, 0);
    cx_router_free(r);
    mock_server_stop(m);
}

static void test_deadline(void **state) {
    (void)state;
    struct cx_router_options o;
    opts_mock(&o);
    o.fallback = 0;
    o.max_attempts = 10;
    o.attempt_timeout_ns = 60 * CX_NSEC_PER_MSEC;
    struct cx_router *r = router(&o);
    t_mock_script(g_mock, "next 10 stall");
    struct cx_llm_query q;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "Install package: stalled");
    uint64_t t0 = cx_now_ns();
    q.deadline = cx_deadline_after_ms(200);
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_ETIMEDOUT);
    uint64_t el = cx_now_ns() - t0;
    assert_true(el >= 190 * CX_NSEC_PER_MSEC);
    assert_true(el < (uint64_t)(t_timeout_scale() * 2000) * CX_NSEC_PER_MSEC);
    assert_non_null(strstr(ei.msg, "timed out"));
    assert_non_null(strstr(ei.msg, "deadline"));
    cx_router_free(r);
    t_mock_script(g_mock, "clear");
}

/* ---- single flight ---- */

struct sf_thr {
    struct cx_router *r;
    pthread_barrier_t *bar;
    struct cx_llm_response resp;
    int rc;
};

static void *sf_main(void *p) {
    struct sf_thr *t = p;
    struct cx_llm_query q;
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: docker single-flight");
    pthread_barrier_wait(t->bar);
    t->rc = cx_router_complete(t->r, &q, &t->resp, NULL);
    return NULL;
}

/* A limiter whose one token is spent: the next taker waits about 1/rate seconds, so a leader
 * is held in the router while identical queries join it. (Was: the router's validate hook held
 * the leader; the hook is gone.) */
static struct cx_limiter *slow_limiter(double rate) {
    struct cx_limiter *lim;
    assert_int_equal(cx_limiter_new(rate, 1, &lim, NULL), 0);
    assert_int_equal(cx_limiter_try_acquire(lim, 1), 0);
    return lim;
}

static void test_single_flight(void **state) {
    (void)state;
    enum { N = 6 };
    struct cx_limiter *lim = slow_limiter(5.0 / t_timeout_scale()); /* ~200 ms (scaled) */
    struct cx_router_options o;
    opts_mock(&o);
    o.limiter = lim;
    struct cx_router *r = router(&o);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    struct sf_thr t[N];
    pthread_t th[N];
    uint64_t before = mock_api_requests();
    for (int i = 0; i < N; i++) {
        t[i] = (struct sf_thr){r, &bar, {0}, -1};
        assert_int_equal(pthread_create(&th[i], NULL, sf_main, &t[i]), 0);
    }
    int shared = 0, leaders = 0;
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].rc, 0);
        assert_string_equal(t[i].resp.content, t[0].resp.content);
        if (t[i].resp.shared) {
            shared++;
            assert_true(t[i].resp.cost == 0);
        } else {
            leaders++;
            assert_true(t[i].resp.cost > 0);
        }
    }
    for (int i = 0; i < N; i++) cx_llm_response_clear(&t[i].resp);
    assert_int_equal(leaders, 1);
    assert_int_equal(shared, N - 1);
    assert_int_equal(mock_requests_at_least(before + 1) - before, 1);
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.shared, N - 1);
    assert_int_equal(st.providers[CX_PROVIDER_KIMI_K2].requests, 1);
    assert_int_equal(cx__router_sf_waiting(r), 0);
    pthread_barrier_destroy(&bar);
    cx_router_free(r);
    cx_limiter_free(lim);
}

/* A blocking follower gives up at its own deadline and leaves its leader's entry; the leader
 * still answers, and nothing is left parked. */
struct lead_thr {
    struct cx_router *r;
    int rc;
    int shared;
};

static void *lead_main(void *p) {
    struct lead_thr *t = p;
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: patient leader");
    t->rc = cx_router_complete(t->r, &q, &resp, NULL);
    t->shared = resp.shared;
    cx_llm_response_clear(&resp);
    return NULL;
}

static void test_follower_deadline(void **state) {
    (void)state;
    struct cx_limiter *lim = slow_limiter(2.0 / t_timeout_scale()); /* the leader waits ~500 ms */
    struct cx_router_options o;
    opts_mock(&o);
    o.limiter = lim;
    struct cx_router *r = router(&o);
    struct lead_thr lt = {r, -1, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, lead_main, &lt), 0);
    /* the leader has reserved its token (the balance went below 0): it leads in the table */
    uint64_t dl = t_deadline_ms(5000);
    while (cx_limiter_tokens(lim) > -0.5 && !cx_deadline_expired(dl)) cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
    assert_true(cx_limiter_tokens(lim) <= -0.5);
    struct cx_llm_query q;
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: patient leader");
    q.deadline = cx_deadline_after_ms(50);
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    uint64_t t0 = cx_now_ns();
    int rc = cx_router_complete(r, &q, &resp, &ei);
    assert_int_equal(rc, CX_ETIMEDOUT);
    assert_non_null(strstr(ei.msg, "identical query in flight"));
    assert_true(cx_now_ns() - t0 >= 45 * CX_NSEC_PER_MSEC); /* it waited until its deadline */
    assert_true(cx_now_ns() - t0 < (uint64_t)(t_timeout_scale() * 400) * CX_NSEC_PER_MSEC);
    assert_int_equal(cx__router_sf_waiting(r), 0);
    pthread_join(th, NULL);
    assert_int_equal(lt.rc, 0);
    assert_int_equal(lt.shared, 0);
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.shared, 0);
    cx_router_free(r);
    cx_limiter_free(lim);
}

/* The one completion of a submitted query runs on a worker, after the submitting task returned,
 * even when the outcome is known inside the submit call: a single-flight follower (submitted
 * while its leader waits) and a query that fails at once (its deadline already passed, or
 * cancelled). Checked by a thread-local flag set around cx_router_submit. */
static void test_completion_never_in_submit(void **state) {
    (void)state;
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct cx_limiter *lim = slow_limiter(5.0 / t_timeout_scale());
    struct cx_router_options o;
    opts_mock(&o);
    o.io = CX_IO_HYBRID;
    o.loop = loop;
    o.limiter = lim;
    struct cx_router *r = router(&o);
    enum { N = 6 };
    struct sub subs[N];
    struct cx_llm_query q;
    query(&q, CX_TASK_USER_CHAT, "Install package: follower");
    for (int i = 0; i < N - 2; i++) sub_init(&subs[i], r, loop, &q); /* one leader, followers */
    query(&q, CX_TASK_USER_CHAT, "Install package: too late");
    q.deadline = cx_now_ns() - 1;
    sub_init(&subs[N - 2], r, loop, &q);
    static cx_cancel_flag cancel;
    atomic_store(&cancel, 1);
    query(&q, CX_TASK_USER_CHAT, "Install package: cancelled");
    q.cancel = &cancel;
    sub_init(&subs[N - 1], r, loop, &q);
    submit_all(subs, N, 2);
    int shared = 0;
    for (int i = 0; i < N - 2; i++) {
        assert_int_equal(subs[i].submit_rc, 0);
        assert_int_equal(subs[i].reply.rc, 0);
        assert_non_null(strstr(subs[i].reply.resp.content, "follower"));
        shared += subs[i].reply.resp.shared;
        cx_llm_response_clear(&subs[i].reply.resp);
    }
    assert_int_equal(shared, N - 3);
    assert_int_equal(subs[N - 2].submit_rc, 0);
    assert_int_equal(subs[N - 2].reply.rc, CX_ETIMEDOUT);
    assert_int_equal(subs[N - 1].submit_rc, 0);
    assert_int_equal(subs[N - 1].reply.rc, CX_ECANCELED);
    cx_router_free(r);
    cx_ioloop_free(loop);
    cx_limiter_free(lim);
}

/* Issue 11: an attempt whose tokens were reserved before another query's 429 must still wait
 * out that 429's Retry-After pause. Eight queries reserve request slots 100 ms apart; the first
 * is answered 429 with a 300 ms Retry-After; until the pause ends the mock must see no request
 * but that first one. Both designs. (The hybrid design sent the reserved ones inside the pause.) */
struct pause_thr {
    struct cx_router *r;
    const char *prompt;
    int rc;
};

static void *pause_main(void *p) {
    struct pause_thr *t = p;
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_USER_CHAT, t->prompt);
    t->rc = cx_router_complete(t->r, &q, &resp, NULL);
    cx_llm_response_clear(&resp);
    return NULL;
}

struct pause_sub_run {
    struct sub *subs;
    int n;
};

static void *pause_submit_main(void *p) {
    struct pause_sub_run *ps = p;
    submit_all(ps->subs, ps->n, 2);
    return NULL;
}

static void test_no_send_inside_pause(void **state) {
    (void)state;
    /* A server of its own: no request of another test (a stall ending late) is counted here. */
    char base[128];
    struct mock_server *m = t_mock_start("retry_after = 300ms\n", 0.001, base, sizeof base);
    assert_non_null(m);
    enum { N = 8 };
    for (int design = 0; design < 2; design++) {
        struct cx_ioloop *loop = NULL;
        assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
        /* slots 100 ms apart, the first one too: every query has reserved before any is sent */
        struct cx_limiter *lim = slow_limiter(10);
        struct cx_router_options o;
        opts_mock(&o);
        o.base_url = base;
        o.limiter = lim;
        o.fallback = 0;
        o.single_flight = 0;
        if (design == 1) {
            o.io = CX_IO_HYBRID;
            o.loop = loop;
        }
        struct cx_router *r = router(&o);
        t_mock_script(m, "next 1 429");
        uint64_t n0 = api_requests_of(m);
        pthread_t th[N], sth;
        struct pause_thr t[N];
        struct sub subs[N];
        struct pause_sub_run ps = {subs, N};
        char prompts[N][64];
        for (int i = 0; i < N; i++) snprintf(prompts[i], sizeof prompts[i], "Install package: pause-%d-%d", design, i);
        if (design == 0) {
            for (int i = 0; i < N; i++) {
                t[i].r = r;
                t[i].prompt = prompts[i];
                assert_int_equal(pthread_create(&th[i], NULL, pause_main, &t[i]), 0);
            }
        } else {
            for (int i = 0; i < N; i++) {
                struct cx_llm_query q;
                query(&q, CX_TASK_USER_CHAT, prompts[i]);
                sub_init(&subs[i], r, loop, &q);
            }
            assert_int_equal(pthread_create(&sth, NULL, pause_submit_main, &ps), 0);
        }
        /* Wait for the 429's pause, then watch the mock until it ends. */
        uint64_t dl = t_deadline_ms(5000), pause_end = 0;
        struct cx_router_stats st;
        for (;;) {
            cx_router_stats(r, &st);
            if (st.rate_limit_pauses > 0 || cx_deadline_expired(dl)) break;
            cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
        }
        assert_int_equal(st.rate_limit_pauses, 1);
        pause_end = cx_limiter_paused_until(lim);
        assert_true(pause_end > cx_now_ns());
        uint64_t most = 0;
        while (cx_now_ns() + 5 * CX_NSEC_PER_MSEC < pause_end) {
            uint64_t n = api_requests_of(m) - n0;
            if (n > most) most = n;
            cx_sleep_ns(CX_NSEC_PER_MSEC / 2);
        }
        assert_true(most <= 1); /* the 429 itself, nothing inside its pause */
        if (design == 0) {
            for (int i = 0; i < N; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(t[i].rc, 0);
            }
        } else {
            pthread_join(sth, NULL);
            for (int i = 0; i < N; i++) {
                assert_int_equal(subs[i].reply.rc, 0);
                cx_llm_response_clear(&subs[i].reply.resp);
            }
        }
        /* (cx__router_paused_sends(r) counts the attempts held at SEND; not asserted: when a
         * slow start lets the reservations follow the 429, the limiter holds them instead) */
        uint64_t dl2 = t_deadline_ms(2000);
        while (api_requests_of(m) < n0 + N + 1 && !cx_deadline_expired(dl2)) cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
        assert_int_equal(api_requests_of(m) - n0, N + 1); /* + the retry */
        cx_router_free(r);
        cx_limiter_free(lim);
        cx_ioloop_free(loop);
    }
    mock_server_stop(m);
}

static void test_token_bucket(void **state) {
    (void)state;
    struct cx_router_options o;
    opts_mock(&o);
    o.tokens_per_minute = 600; /* 10 tokens/s, burst 600 */
    struct cx_router *r = router(&o);
    struct cx_limiter *tok = cx__router_token_limiter(r);
    assert_non_null(tok);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_USER_CHAT, "Install package: redis tokens");
    uint64_t t0 = cx_now_ns();
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    double el = cx_elapsed_s(t0, cx_now_ns());
    double used = (double)(resp.prompt_tokens + resp.completion_tokens);
    double left = cx_limiter_tokens(tok);
    /* charged the real usage, not the estimate (prompt/4 + 256 output tokens) */
    assert_true(left >= 600 - used - 0.5);
    assert_true(left <= 600 - used + 10 * el + 0.5);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
    /* a failed attempt refunds its estimate */
    o.fallback = 0;
    o.max_attempts = 1;
    r = router(&o);
    tok = cx__router_token_limiter(r);
    double before = cx_limiter_tokens(tok);
    t_mock_script(g_mock, "next 1 500");
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "Install package: refund");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_ESERVER);
    assert_true(cx_limiter_tokens(tok) >= before - 0.5);
    cx_router_free(r);
}

/* ---- the names cache keys use (the pipeline caches; test_pipeline.c checks the entries) ---- */

/* The endpoint names a server: an answer of the mock is never one of the real API. (Was
 * test_cache_key_names_endpoint, through the router's cache.) */
static void test_endpoint_names(void **state) {
    (void)state;
    struct cx_router_options o;
    opts_mock(&o);
    struct cx_router *r = router(&o);
    struct cx_llm_query q;
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx endpoint");
    enum cx_provider prov;
    const char *ep, *model;
    assert_int_equal(cx_router_endpoint(r, &q, &prov, &ep, &model, NULL), 0);
    char want[256];
    snprintf(want, sizeof want, "claude@%s", g_base);
    assert_int_equal(prov, CX_PROVIDER_CLAUDE);
    assert_string_equal(ep, want);
    assert_string_equal(model, "claude-sonnet-4-20250514");
    q.task = CX_TASK_SYSTEM_OPERATION;
    assert_int_equal(cx_router_endpoint(r, &q, &prov, &ep, &model, NULL), 0);
    assert_int_equal(prov, CX_PROVIDER_KIMI_K2);
    snprintf(want, sizeof want, "kimi_k2@%s", g_base);
    assert_string_equal(ep, want);
    cx_router_free(r);
    /* A named endpoint (a server whose port changes between runs) keeps one name across URLs. */
    o.cache_endpoint = "embedded-mock";
    r = router(&o);
    q.task = CX_TASK_USER_CHAT;
    assert_int_equal(cx_router_endpoint(r, &q, &prov, &ep, &model, NULL), 0);
    assert_string_equal(ep, "claude@embedded-mock");
    cx_router_free(r);
    /* A provider at its default URL is the plain name, as a router talking to the real API. */
    cx_router_options_init(&o);
    o.providers[CX_PROVIDER_CLAUDE].api_key = SECRET;
    r = router(&o);
    assert_int_equal(cx_router_provider_endpoint(r, CX_PROVIDER_CLAUDE, &ep, &model), 0);
    assert_string_equal(ep, "claude");
    assert_int_equal(cx_router_provider_endpoint(r, CX_PROVIDER_COUNT, &ep, &model), CX_EINVAL);
    q.force = CX_PROVIDER_OLLAMA; /* forced, but not configured: the fallback order decides */
    assert_int_equal(cx_router_endpoint(r, &q, &prov, &ep, &model, NULL), 0);
    assert_int_equal(prov, CX_PROVIDER_CLAUDE);
    cx_router_free(r);
}

/* ---- both designs ---- */

static void test_designs_identical(void **state) {
    (void)state;
    enum { N = 24 };
    static const char *pk[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "vim"};
    char prompts[N][64];
    struct cx_llm_query q[N];
    for (int i = 0; i < N; i++) {
        snprintf(prompts[i], sizeof prompts[i], "Install package: %s #%d", pk[i % 6], i);
        query(&q[i], (enum cx_task_type)(i % CX_TASK_COUNT), prompts[i]);
        q[i].stream = i % 3 == 0;
    }
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct cx_router_options o;
    opts_mock(&o);
    o.single_flight = 0;
    struct cx_router *tl = router(&o);
    o.io = CX_IO_HYBRID;
    o.loop = loop;
    struct cx_router *hy = router(&o);
    struct cx_llm_response ra[N], rb[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(cx_router_complete(tl, &q[i], &ra[i], NULL), 0);
        assert_int_equal(cx_router_complete(hy, &q[i], &rb[i], NULL), 0);
    }
    static struct sub subs[N];
    for (int i = 0; i < N; i++) sub_init(&subs[i], hy, loop, &q[i]);
    submit_all(subs, N, 3);
    for (int i = 0; i < N; i++) {
        struct cx_llm_response *rc_ = &subs[i].reply.resp;
        assert_int_equal(subs[i].reply.rc, 0);
        assert_string_equal(ra[i].content, rb[i].content);
        assert_string_equal(ra[i].content, rc_->content);
        assert_string_equal(ra[i].model, rb[i].model);
        assert_int_equal(ra[i].provider, rb[i].provider);
        assert_int_equal(ra[i].provider, rc_->provider);
        assert_int_equal(ra[i].prompt_tokens, rc_->prompt_tokens);
        assert_int_equal(ra[i].completion_tokens, rb[i].completion_tokens);
        assert_true(ra[i].cost == rc_->cost);
        cx_llm_response_clear(&ra[i]);
        cx_llm_response_clear(&rb[i]);
        cx_llm_response_clear(rc_);
    }
    cx_router_free(tl);
    cx_router_free(hy);
    cx_ioloop_free(loop);
}

/* Submitted: retries through timers, single flight through parked followers, one completion
 * each. */
static void test_async_retries_and_sf(void **state) {
    (void)state;
    enum { N = 8 };
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct cx_limiter *lim;
    assert_int_equal(cx_limiter_new(1000, 1000, &lim, NULL), 0);
    struct cx_router_options o;
    opts_mock(&o);
    o.io = CX_IO_HYBRID;
    o.loop = loop;
    o.limiter = lim;
    o.fallback = 0;
    struct cx_router *r = router(&o);
    t_mock_script(g_mock, "next 2 503");
    struct cx_llm_query q;
    query(&q, CX_TASK_USER_CHAT, "Install package: async same");
    static struct sub subs[N];
    for (int i = 0; i < N; i++) sub_init(&subs[i], r, loop, &q);
    uint64_t n0 = mock_api_requests();
    submit_all(subs, N, 4);
    int shared = 0;
    for (int i = 0; i < N; i++) {
        struct cx_llm_response *out = &subs[i].reply.resp;
        assert_int_equal(subs[i].reply.rc, 0);
        assert_string_equal(out->content, subs[0].reply.resp.content);
        shared += out->shared;
        if (!out->shared) assert_int_equal(out->attempts, 3);
    }
    for (int i = 0; i < N; i++) cx_llm_response_clear(&subs[i].reply.resp);
    /* all eight were submitted before the leader's three attempts could finish */
    assert_int_equal(shared, N - 1);
    assert_int_equal(mock_requests_at_least(n0 + 3) - n0, 3);
    cx_router_free(r);
    cx_ioloop_free(loop);
    cx_limiter_free(lim);
}

/* ---- the config mapping and Ollama's host:port form ---- */

static void test_config_and_ollama(void **state) {
    (void)state;
    struct cx_config cfg;
    cx_config_init(&cfg);
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", mock_server_port(g_mock)); /* OLLAMA_HOST style */
    cfg.ollama_base_url = host;
    cfg.max_retries = 2;
    cfg.tokens_per_minute = 0;
    struct cx_router_options o;
    cx_router_options_init(&o);
    cx_router_options_from_config(&o, &cfg);
    assert_int_equal(o.max_attempts, 3);
    struct cx_router *r = router(&o);
    assert_true(cx_router_configured(r, CX_PROVIDER_OLLAMA));
    assert_false(cx_router_configured(r, CX_PROVIDER_CLAUDE));
    struct cx_llm_query q;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "Install package: tmux");
    int rc = cx_router_complete(r, &q, &resp, &ei);
    if (rc) fprintf(stderr, "%s\n", ei.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(resp.provider, CX_PROVIDER_OLLAMA);
    assert_true(resp.cost == 0); /* Ollama is free */
    assert_true(resp.prompt_tokens > 0);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
}

/* ---- where completions run, and the CPU share ---- */

/* Submitted queries complete on executor workers (never the I/O thread, never inside submit),
 * retries included; the router measures its CPU share. (Was test_post_and_cpu_share and
 * test_async_on_executor, through the post and validate hooks, which are gone: the router's
 * one completion is the resume of the submitting task.) */
static void test_submit_on_executor(void **state) {
    (void)state;
    enum { N = 12 };
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct cx_router_options o;
    opts_mock(&o);
    o.io = CX_IO_HYBRID;
    o.loop = loop;
    o.fallback = 0;
    struct cx_router *r = router(&o);
    assert_true(cx_router_cpu_share(r) < 0); /* nothing measured yet */
    t_mock_script(g_mock, "next 3 503"); /* some queries retry */
    static struct sub subs[N];
    char prompts[N][64];
    for (int i = 0; i < N; i++) {
        struct cx_llm_query q;
        snprintf(prompts[i], sizeof prompts[i], "Install package: exec-%d", i);
        query(&q, CX_TASK_CONFIGURATION, prompts[i]);
        sub_init(&subs[i], r, loop, &q);
    }
    submit_all(subs, N, 3);
    for (int i = 0; i < N; i++) {
        assert_int_equal(subs[i].reply.rc, 0);
        assert_non_null(strstr(subs[i].reply.resp.content, prompts[i] + strlen("Install package: ")));
        cx_llm_response_clear(&subs[i].reply.resp);
    }
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.retries, 3);
    assert_int_equal(st.queries, N);
    double share = cx_router_cpu_share(r);
    assert_true(share > 0 && share <= 1);
    /* submit's own errors: the router never resumes the task then (the task does) */
    struct cx_llm_query bad;
    query(&bad, CX_TASK_USER_CHAT, "x");
    bad.max_tokens = 0;
    sub_init(&subs[0], r, loop, &bad);
    submit_all(subs, 1, 1);
    assert_int_equal(subs[0].submit_rc, CX_EINVAL);
    assert_int_equal(subs[0].reply.rc, CX_EINVAL);
    cx_router_free(r);
    cx_ioloop_free(loop);
}

/* ---- a failed leader's error is shared too ---- */

struct sff {
    struct cx_router *r;
    int rc;
    struct cx_errinfo ei;
};

static void *sff_main(void *p) {
    struct sff *t = p;
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: shared-failure");
    t->rc = cx_router_complete(t->r, &q, &resp, &t->ei);
    cx_llm_response_clear(&resp);
    return NULL;
}

static void test_single_flight_failure(void **state) {
    (void)state;
    enum { N = 4 };
    struct cx_router_options o;
    opts_mock(&o);
    o.fallback = 0;
    o.max_attempts = 1;
    o.attempt_timeout_ns = (uint64_t)(400 * t_timeout_scale()) * CX_NSEC_PER_MSEC;
    struct cx_router *r = router(&o);
    t_mock_script(g_mock, "next 1 stall"); /* holds the leader's only attempt until its timeout */
    uint64_t n0 = mock_api_requests();
    struct sff t[N];
    pthread_t th[N];
    t[0] = (struct sff){r, 1, {0}};
    assert_int_equal(pthread_create(&th[0], NULL, sff_main, &t[0]), 0);
    uint64_t dl = t_deadline_ms(5000); /* the leader has taken the stall: it is in flight */
    while (mock_server_scripted_pending(g_mock) != 0 && !cx_deadline_expired(dl)) cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
    for (int i = 1; i < N; i++) {
        t[i] = (struct sff){r, 1, {0}};
        assert_int_equal(pthread_create(&th[i], NULL, sff_main, &t[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    char want[300]; /* the override's server and format, not an internal provider name */
    snprintf(want, sizeof want, "#1 %s (OpenAI API) timed out", g_base);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].rc, CX_ETIMEDOUT);
        assert_non_null(strstr(t[i].ei.msg, want));
        assert_null(strstr(t[i].ei.msg, "kimi_k2"));
    }
    (void)n0; /* the server counts a stalled request only when its stall ends */
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.providers[CX_PROVIDER_KIMI_K2].requests, 1); /* sent once for all four */
    assert_int_equal(st.queries, N);
    assert_int_equal(cx__router_sf_waiting(r), 0);
    cx_router_free(r);
}

/* ---- allocation failures through a whole blocking query ---- */

static int torture_scenario(void *ctx) {
    (void)ctx;
    struct cx_router_options o;
    opts_mock(&o);
    o.tokens_per_minute = 100000;
    o.max_attempts = 1;
    o.fallback = 0;
    struct cx_router *r;
    int rc = cx_router_new(&o, &r, NULL);
    if (rc < 0) return rc;
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_USER_CHAT, "Install package: torture");
    q.stream = 1;
    rc = cx_router_complete(r, &q, &resp, NULL);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
    return rc;
}

static void test_torture(void **state) {
    (void)state;
    assert_true(t_torture(torture_scenario, NULL) > 10);
}

/* ---- keys never logged ---- */

static void test_keys_never_logged(void **state) {
    (void)state;
    char *dir = t_tmpdir("keys");
    char *errpath = t_path(dir, "stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errpath, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);

    char msgs[16][400];
    int nm = 0;
    struct cx_router_options o;
    opts_mock(&o);
    for (int p = 0; p < CX_PROVIDER_COUNT; p++) o.providers[p].api_key = SECRET;
    o.fallback = 0;
    o.max_attempts = 1;
    o.attempt_timeout_ns = 50 * CX_NSEC_PER_MSEC;
    struct cx_router *r = router(&o);
    const char *faults[] = {"429", "500", "529", "reset", "stall", "malformed", "cut", "disconnect"};
    for (int i = 0; i < 8; i++) {
        char s[64];
        snprintf(s, sizeof s, "next 1 %s", faults[i]);
        t_mock_script(g_mock, s);
        struct cx_llm_query q;
        struct cx_llm_response resp;
        struct cx_errinfo ei;
        query(&q, i % 2 ? CX_TASK_USER_CHAT : CX_TASK_CONFIGURATION, "Install package: secret-test");
        q.stream = i % 3 == 0;
        assert_true(cx_router_complete(r, &q, &resp, &ei) < 0);
        snprintf(msgs[nm++], sizeof msgs[0], "%s", ei.msg);
    }
    cx_router_free(r);
    /* 401s from a server that wants another key, and a refused connection */
    struct mock_options mo;
    mock_options_init(&mo);
    mo.required_key = "another";
    char base[128];
    struct mock_server *m = t_mock_start_opts(&mo, base, sizeof base);
    assert_non_null(m);
    o.base_url = base;
    o.fallback = 1;
    r = router(&o);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    query(&q, CX_TASK_USER_CHAT, "hello");
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_EAUTH);
    snprintf(msgs[nm++], sizeof msgs[0], "%s", ei.msg);
    cx_router_free(r);
    mock_server_stop(m);
    int refused_fd;
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", t_refused_port(&refused_fd));
    o.base_url = base;
    r = router(&o);
    assert_int_equal(cx_router_complete(r, &q, &resp, &ei), CX_ECONN);
    snprintf(msgs[nm++], sizeof msgs[0], "%s", ei.msg);
    cx_router_free(r);
    close(refused_fd);

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    for (int i = 0; i < nm; i++) {
        assert_true(msgs[i][0] != '\0');
        assert_null(strstr(msgs[i], SECRET));
        assert_null(strstr(msgs[i], "SECRET"));
    }
    FILE *f = fopen(errpath, "r");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_null(strstr(buf, "SECRET"));
    t_rmrf(dir);
    free(errpath);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_routes),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_pause_is_shared),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_4xx_not_retried),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_follower_deadline),
        cmocka_unit_test(test_completion_never_in_submit),
        cmocka_unit_test(test_no_send_inside_pause),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_endpoint_names),
        cmocka_unit_test(test_designs_identical),
        cmocka_unit_test(test_async_retries_and_sf),
        cmocka_unit_test(test_config_and_ollama),
        cmocka_unit_test(test_submit_on_executor),
        cmocka_unit_test(test_single_flight_failure),
        cmocka_unit_test(test_torture),
        cmocka_unit_test(test_keys_never_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
