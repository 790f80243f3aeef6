/*
 * test_router.c - the router against the mock: routing and forced providers, fallback, retries
 * honouring Retry-After (and pausing the shared limiter for every worker), the attempt log,
 * deadline expiry, 4xx not retried, single flight, the token bucket's correction, the cache and the
 * validator, both I/O designs (and the async form) giving identical results, keys absent from
 * every message and from stderr.
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
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

#define SECRET "sk-ant-router-SECRET-do-not-log-91c2"

size_t cx__router_sf_waiting(struct cx_router *r);
struct cx_limiter *cx__router_token_limiter(struct cx_router *r);

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
    assert_non_null(strstr(ei.msg, "#1 claude 429 rate limited (retry after 0.04 s)"));
    assert_non_null(strstr(ei.msg, "#2 claude 503 server error"));
    assert_non_null(strstr(ei.msg, "#3 claude connection failed or reset"));
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

struct sf_ctx {
    struct cx_router *r;
    atomic_int validations;
    int want_waiting;
};

static int sf_validate(const struct cx_llm_query *q, const char *content, void *ud, struct cx_errinfo *ei) {
    (void)q, (void)content, (void)ei;
    struct sf_ctx *s = ud;
    atomic_fetch_add(&s->validations, 1);
    /* the leader holds its answer until every follower has joined */
    uint64_t dl = t_deadline_ms(5000);
    while (cx__router_sf_waiting(s->r) < (size_t)s->want_waiting && !cx_deadline_expired(dl))
        cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
    return 0;
}

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

static void test_single_flight(void **state) {
    (void)state;
    enum { N = 6 };
    struct sf_ctx s;
    atomic_init(&s.validations, 0);
    s.want_waiting = N - 1;
    struct cx_router_options o;
    opts_mock(&o);
    o.validate = sf_validate;
    o.validate_ud = &s;
    s.r = router(&o);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    struct sf_thr t[N];
    pthread_t th[N];
    uint64_t before = mock_api_requests();
    for (int i = 0; i < N; i++) {
        t[i] = (struct sf_thr){s.r, &bar, {0}, -1};
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
    assert_int_equal(atomic_load(&s.validations), 1);
    struct cx_router_stats st;
    cx_router_stats(s.r, &st);
    assert_int_equal(st.shared, N - 1);
    assert_int_equal(st.providers[CX_PROVIDER_KIMI_K2].requests, 1);
    assert_int_equal(cx__router_sf_waiting(s.r), 0);
    pthread_barrier_destroy(&bar);
    cx_router_free(s.r);
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

/* ---- cache + validator ---- */

static int reject_rm(const struct cx_llm_query *q, const char *content, void *ud, struct cx_errinfo *ei) {
    (void)ud, (void)content;
    if (strstr(q->prompt, "reject")) return cx__err(ei, CX_EREJECTED, "test validator refused it");
    return 0;
}

static void test_cache_and_validator(void **state) {
    (void)state;
    char *dir = t_tmpdir("router");
    char *path = t_path(dir, "cache.db");
    struct cx_pool *pool = t_pool_open(path, 0);
    struct cx_errinfo ei;
    struct cx_cache *cache;
    assert_int_equal(cx_cache_new(pool, NULL, &cache, &ei), 0);
    struct cx_router_options o;
    opts_mock(&o);
    o.cache = cache;
    o.validate = reject_rm;
    struct cx_router *r = router(&o);
    struct cx_llm_query q;
    struct cx_llm_response a, b;
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx cached");
    uint64_t n0 = mock_api_requests();
    assert_int_equal(cx_router_complete(r, &q, &a, NULL), 0);
    assert_int_equal(a.from_cache, 0);
    assert_int_equal(cx_router_complete(r, &q, &b, NULL), 0);
    assert_int_equal(b.from_cache, 1);
    assert_string_equal(a.content, b.content);
    assert_int_equal(b.provider, CX_PROVIDER_CLAUDE);
    assert_true(b.cost == 0);
    assert_int_equal(mock_requests_at_least(n0 + 1) - n0, 1);
    cx_llm_response_clear(&a);
    cx_llm_response_clear(&b);
    /* refused answers are not cached */
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx reject");
    assert_int_equal(cx_router_complete(r, &q, &a, &ei), CX_EREJECTED);
    assert_non_null(strstr(ei.msg, "test validator refused it"));
    assert_int_equal(cx_router_complete(r, &q, &a, &ei), CX_EREJECTED);
    assert_int_equal(mock_requests_at_least(n0 + 3) - n0, 3);
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.cache_hits, 1);
    cx_router_free(r);
    cx_cache_free(cache);
    cx_pool_close(pool);
    t_rmrf(dir);
    free(path);
    free(dir);
}

/* A cache in a fresh directory. */
struct tcache {
    char *dir, *path;
    struct cx_pool *pool;
    struct cx_cache *cache;
};

static void tcache_open(struct tcache *t, double threshold) {
    t->dir = t_tmpdir("router-cache");
    t->path = t_path(t->dir, "cache.db");
    t->pool = t_pool_open(t->path, 0);
    struct cx_errinfo ei;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    if (threshold > 0) co.similarity_threshold = threshold;
    assert_int_equal(cx_cache_new(t->pool, &co, &t->cache, &ei), 0);
}

static void tcache_close(struct tcache *t) {
    cx_cache_free(t->cache);
    cx_pool_close(t->pool);
    t_rmrf(t->dir);
    free(t->path);
    free(t->dir);
}

static int cache_has(struct cx_cache *c, const char *provider, const char *model, const char *prompt) {
    struct cx_cache_key k = {provider, model, "You are a Linux package expert.", prompt};
    char *json = NULL;
    int sim = 0;
    int rc = cx_cache_get(c, &k, &json, &sim, NULL);
    cx_free(json);
    return rc == 0 && !sim;
}

/* The cache key names the server: an answer of the mock is never one of the real API. */
static void test_cache_key_names_endpoint(void **state) {
    (void)state;
    struct tcache t;
    tcache_open(&t, 2.0); /* exact hits only */
    struct cx_router_options o;
    opts_mock(&o);
    o.cache = t.cache;
    struct cx_router *r = router(&o);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    const char *prompt = "Install package: nginx endpoint";
    query(&q, CX_TASK_USER_CHAT, prompt);
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.from_cache, 0);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
    char want[256];
    snprintf(want, sizeof want, "claude@%s", g_base);
    assert_true(cache_has(t.cache, want, "claude-sonnet-4-20250514", prompt));
    /* what a router talking to the real Anthropic API (same provider, same model) looks up */
    assert_false(cache_has(t.cache, "claude", "claude-sonnet-4-20250514", prompt));

    /* Another server with the same provider and model does not get the first one's answer. */
    char base_b[128];
    struct mock_server *b = mock2(base_b, sizeof base_b);
    o.base_url = base_b;
    r = router(&o);
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.from_cache, 0);
    cx_llm_response_clear(&resp);
    cx_router_free(r);

    /* A named endpoint (a server whose port changes between runs) keeps one key across URLs. */
    o.base_url = g_base;
    o.cache_endpoint = "embedded-mock";
    r = router(&o);
    query(&q, CX_TASK_USER_CHAT, "Install package: nginx named endpoint");
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.from_cache, 0);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
    assert_true(cache_has(t.cache, "claude@embedded-mock", "claude-sonnet-4-20250514",
                          "Install package: nginx named endpoint"));
    o.base_url = base_b;
    r = router(&o);
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.from_cache, 1);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
    mock_server_stop(b);
    tcache_close(&t);
}

/* One query is one cache lookup: N distinct queries on an empty cache count exactly N misses,
 * with one server for every provider (the override) and with two genuinely different ones. */
static void test_cache_one_lookup_per_query(void **state) {
    (void)state;
    enum { N = 5 };
    char base_b[128];
    struct mock_server *b = mock2(base_b, sizeof base_b);
    for (int variant = 0; variant < 2; variant++) {
        struct tcache t;
        tcache_open(&t, 0);
        struct cx_router_options o;
        opts_mock(&o);
        if (variant == 1) {
            o.base_url = NULL;
            o.providers[CX_PROVIDER_CLAUDE].base_url = g_base;
            o.providers[CX_PROVIDER_KIMI_K2].api_key = "kimi-key";
            o.providers[CX_PROVIDER_KIMI_K2].base_url = base_b;
        }
        o.cache = t.cache;
        struct cx_router *r = router(&o);
        for (int i = 0; i < N; i++) {
            char prompt[64];
            snprintf(prompt, sizeof prompt, "Explain %d unrelated topic %s", i, i % 2 ? "alpha" : "omega");
            struct cx_llm_query q;
            struct cx_llm_response resp;
            query(&q, i % 2 ? CX_TASK_USER_CHAT : CX_TASK_SYSTEM_OPERATION, prompt);
            q.system = i % 2 ? "sys-a" : "sys-b";
            assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
            assert_int_equal(resp.from_cache, 0);
            cx_llm_response_clear(&resp);
        }
        struct cx_cache_stats cs;
        assert_int_equal(cx_cache_stats(t.cache, &cs, NULL), 0);
        assert_int_equal(cs.local_misses, N);
        assert_int_equal(cs.exact_hits + cs.similar_hits, 0);
        assert_int_equal(cs.misses, N);
        cx_router_free(r);
        tcache_close(&t);
    }
    mock_server_stop(b);
}

/* accept_similar: a similarity hit is used only if the hook accepts it; q->user reaches it. */
static atomic_int g_similar_calls;
static atomic_int g_similar_accept_all;

static int similar_names_package(const struct cx_llm_query *q, const char *content, void *ud) {
    (void)ud;
    atomic_fetch_add(&g_similar_calls, 1);
    const char *pkg = q->user; /* the caller's pointer, passed through the router untouched */
    return atomic_load(&g_similar_accept_all) || (pkg && strstr(content, pkg)) ? 0 : CX_ENOENT;
}

static void test_similar_hits_checked(void **state) {
    (void)state;
    struct tcache t;
    tcache_open(&t, 0.5); /* loose: one-token differences are similar */
    struct cx_router_options o;
    opts_mock(&o);
    o.cache = t.cache;
    o.accept_similar = similar_names_package;
    struct cx_router *r = router(&o);
    struct cx_llm_query q;
    struct cx_llm_response resp;
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: tool-50");
    q.user = "tool-50";
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.from_cache, 0);
    cx_llm_response_clear(&resp);
    atomic_store(&g_similar_calls, 0);
    /* similar to tool-50's prompt, but the hook sees tool-50's plan: a miss, the LLM answers */
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: tool-21");
    q.user = "tool-21";
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(atomic_load(&g_similar_calls), 1);
    assert_int_equal(resp.from_cache, 0);
    assert_non_null(strstr(resp.content, "tool-21"));
    assert_null(strstr(resp.content, "tool-50"));
    cx_llm_response_clear(&resp);
    struct cx_cache_stats cs;
    assert_int_equal(cx_cache_stats(t.cache, &cs, NULL), 0);
    assert_int_equal(cs.similar_hits, 1); /* the cache did find tool-50's entry similar */
    /* a similar hit the hook accepts is used, and says it was similar */
    atomic_store(&g_similar_accept_all, 1);
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: tool-21 please");
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    atomic_store(&g_similar_accept_all, 0);
    assert_int_equal(resp.from_cache, 1);
    assert_int_equal(resp.cache_similar, 1);
    cx_llm_response_clear(&resp);
    /* exact hits are not the hook's business */
    atomic_store(&g_similar_calls, 0);
    query(&q, CX_TASK_SYSTEM_OPERATION, "Install package: tool-50");
    q.user = NULL;
    assert_int_equal(cx_router_complete(r, &q, &resp, NULL), 0);
    assert_int_equal(resp.from_cache, 1);
    assert_int_equal(resp.cache_similar, 0);
    assert_int_equal(atomic_load(&g_similar_calls), 0);
    cx_llm_response_clear(&resp);
    cx_router_free(r);
    tcache_close(&t);
}

/* ---- both designs ---- */

struct adone {
    struct cx__mutex mu;
    pthread_cond_t cond;
    int n; /* guarded by mu */
    struct cx_llm_response *out;
    int *rc;
};

struct aone {
    struct adone *d;
    int i;
};

static void async_cb(int rc, struct cx_llm_response *resp, const struct cx_errinfo *ei, void *ud) {
    (void)ei;
    struct aone *a = ud;
    a->d->rc[a->i] = rc;
    if (rc == 0) {
        a->d->out[a->i] = *resp; /* take the strings */
    }
    cx__mutex_lock(&a->d->mu);
    a->d->n++;
    pthread_cond_broadcast(&a->d->cond);
    cx__mutex_unlock(&a->d->mu);
}

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
    struct cx_llm_response ra[N], rb[N], rc_[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(cx_router_complete(tl, &q[i], &ra[i], NULL), 0);
        assert_int_equal(cx_router_complete(hy, &q[i], &rb[i], NULL), 0);
    }
    struct adone d;
    assert_int_equal(cx__mutex_init(&d.mu), 0);
    assert_int_equal(cx__cond_init(&d.cond), 0);
    d.n = 0;
    d.out = rc_;
    d.rc = rcs;
    struct aone ones[N];
    for (int i = 0; i < N; i++) {
        ones[i] = (struct aone){&d, i};
        assert_int_equal(cx_router_complete_async(hy, &q[i], async_cb, &ones[i], NULL), 0);
    }
    uint64_t dl = t_deadline_ms(10000);
    cx__mutex_lock(&d.mu);
    while (d.n < N && cx__cond_wait(&d.cond, &d.mu, dl) == 0) {
    }
    cx__mutex_unlock(&d.mu);
    assert_int_equal(d.n, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs[i], 0);
        assert_string_equal(ra[i].content, rb[i].content);
        assert_string_equal(ra[i].content, rc_[i].content);
        assert_string_equal(ra[i].model, rb[i].model);
        assert_int_equal(ra[i].provider, rb[i].provider);
        assert_int_equal(ra[i].provider, rc_[i].provider);
        assert_int_equal(ra[i].prompt_tokens, rc_[i].prompt_tokens);
        assert_int_equal(ra[i].completion_tokens, rb[i].completion_tokens);
        assert_true(ra[i].cost == rc_[i].cost);
        cx_llm_response_clear(&ra[i]);
        cx_llm_response_clear(&rb[i]);
        cx_llm_response_clear(&rc_[i]);
    }
    cx_router_free(tl);
    cx_router_free(hy);
    cx_ioloop_free(loop);
    cx__mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cond);
}

/* Async: retries through timers, single flight through the callback list, failures reported. */
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
    struct cx_llm_response out[N];
    int rcs[N];
    struct adone d;
    assert_int_equal(cx__mutex_init(&d.mu), 0);
    assert_int_equal(cx__cond_init(&d.cond), 0);
    d.n = 0;
    d.out = out;
    d.rc = rcs;
    struct aone ones[N];
    uint64_t n0 = mock_api_requests();
    for (int i = 0; i < N; i++) {
        ones[i] = (struct aone){&d, i};
        assert_int_equal(cx_router_complete_async(r, &q, async_cb, &ones[i], NULL), 0);
    }
    uint64_t dl = t_deadline_ms(10000);
    cx__mutex_lock(&d.mu);
    while (d.n < N && cx__cond_wait(&d.cond, &d.mu, dl) == 0) {
    }
    cx__mutex_unlock(&d.mu);
    assert_int_equal(d.n, N);
    int shared = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs[i], 0);
        assert_string_equal(out[i].content, out[0].content);
        shared += out[i].shared;
        if (!out[i].shared) assert_int_equal(out[i].attempts, 3);
    }
    for (int i = 0; i < N; i++) cx_llm_response_clear(&out[i]);
    /* all eight were submitted before the leader's three attempts could finish */
    assert_int_equal(shared, N - 1);
    assert_int_equal(mock_requests_at_least(n0 + 3) - n0, 3);
    cx_router_free(r);
    cx_ioloop_free(loop);
    cx_limiter_free(lim);
    cx__mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cond);
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

/* ---- where the CPU step runs in the hybrid design ---- */

struct where {
    struct cx_ioloop *loop;
    atomic_int on_io, off_io;
};

static int where_validate(const struct cx_llm_query *q, const char *content, void *ud, struct cx_errinfo *ei) {
    (void)q, (void)content, (void)ei;
    struct where *w = ud;
    if (cx_ioloop_on_thread(w->loop)) atomic_fetch_add(&w->on_io, 1);
    else atomic_fetch_add(&w->off_io, 1);
    cx_cpu_work_ns(200 * CX_NSEC_PER_USEC); /* stands for parsing + validating a plan */
    return 0;
}

struct post_job {
    void (*fn)(void *);
    void *arg;
};

static void *post_thread(void *p) {
    struct post_job j = *(struct post_job *)p;
    free(p);
    j.fn(j.arg);
    return NULL;
}

static atomic_int g_posts;
static pthread_t g_post_threads[16]; /* joined by the test, so none outlives it */

static int test_post(void (*fn)(void *), void *arg, void *ctx) {
    (void)ctx;
    struct post_job *j = malloc(sizeof *j);
    if (j == NULL) return -1;
    j->fn = fn;
    j->arg = arg;
    int slot = atomic_fetch_add(&g_posts, 1); /* before the thread can run the query to its end */
    if (slot >= 16 || pthread_create(&g_post_threads[slot], NULL, post_thread, j) != 0) {
        free(j);
        return -1; /* the router then runs fn on the I/O thread; the test notices */
    }
    return 0;
}

static void test_post_and_cpu_share(void **state) {
    (void)state;
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct where w = {loop, 0, 0};
    struct cx_router_options o;
    opts_mock(&o);
    o.io = CX_IO_HYBRID;
    o.loop = loop;
    o.validate = where_validate;
    o.validate_ud = &w;
    o.single_flight = 0;
    struct cx_router *r = router(&o);
    assert_true(cx_router_cpu_share(r) < 0); /* nothing measured yet */
    enum { N = 4 };
    struct cx_llm_response out[N];
    int rcs[N];
    struct adone d;
    assert_int_equal(cx__mutex_init(&d.mu), 0);
    assert_int_equal(cx__cond_init(&d.cond), 0);
    d.n = 0;
    d.out = out;
    d.rc = rcs;
    struct aone ones[N];
    char prompts[N][64];
    for (int i = 0; i < N; i++) {
        struct cx_llm_query q;
        snprintf(prompts[i], sizeof prompts[i], "Install package: where-%d", i);
        query(&q, CX_TASK_CONFIGURATION, prompts[i]);
        if (i >= N / 2) q.post = test_post; /* the second half runs its CPU step off the I/O thread */
        ones[i] = (struct aone){&d, i};
        assert_int_equal(cx_router_complete_async(r, &q, async_cb, &ones[i], NULL), 0);
    }
    uint64_t dl = t_deadline_ms(10000);
    cx__mutex_lock(&d.mu);
    while (d.n < N && cx__cond_wait(&d.cond, &d.mu, dl) == 0) {
    }
    cx__mutex_unlock(&d.mu);
    assert_int_equal(d.n, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rcs[i], 0);
        cx_llm_response_clear(&out[i]);
    }
    assert_int_equal(atomic_load(&w.on_io), N / 2);
    assert_int_equal(atomic_load(&w.off_io), N / 2);
    assert_int_equal(atomic_load(&g_posts), N / 2);
    for (int i = 0; i < N / 2; i++) pthread_join(g_post_threads[i], NULL);
    double share = cx_router_cpu_share(r);
    assert_true(share > 0 && share <= 1);
    cx_router_free(r);
    cx_ioloop_free(loop);
    cx__mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cond);
}

/* ---- the async form's CPU step on executor tasks (the pattern documented in router.h) ---- */

struct exq {
    struct cx_router *r;
    struct cx_task_handle *h;
    void (*fn)(void *);
    void *arg;
    char prompt[64];
    int rc;
    struct cx_llm_response resp;
};

static int exq_finish(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)res;
    struct exq *e = arg;
    return e->rc;
}

static int exq_run_post(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct exq *e = arg;
    e->h = cx_task_suspend(ctx); /* first: fn may end the query or schedule a retry */
    e->fn(e->arg);
    return CX_EAGAIN;
}

static int exq_post(void (*fn)(void *), void *arg, void *ctx) {
    struct exq *e = ctx;
    e->fn = fn;
    e->arg = arg;
    return cx_task_resume(e->h, exq_run_post, e);
}

static void exq_done(int rc, struct cx_llm_response *resp, const struct cx_errinfo *ei, void *ud) {
    (void)ei;
    struct exq *e = ud;
    e->rc = rc;
    if (resp) e->resp = *resp;
    int r = cx_task_resume(e->h, exq_finish, e);
    assert_int_equal(r, 0);
}

static int exq_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct exq *e = arg;
    struct cx_llm_query q;
    query(&q, CX_TASK_CONFIGURATION, e->prompt);
    q.post = exq_post;
    q.post_ctx = e;
    e->h = cx_task_suspend(ctx);
    int rc = cx_router_complete_async(e->r, &q, exq_done, e, NULL);
    if (rc < 0) {
        e->rc = rc;
        cx_task_resume(e->h, exq_finish, e);
    }
    return CX_EAGAIN;
}

static void test_async_on_executor(void **state) {
    (void)state;
    enum { N = 12 };
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct where w = {loop, 0, 0};
    struct cx_router_options o;
    opts_mock(&o);
    o.io = CX_IO_HYBRID;
    o.loop = loop;
    o.validate = where_validate;
    o.validate_ud = &w;
    o.fallback = 0;
    struct cx_router *r = router(&o);
    struct cx_executor_options eo;
    cx_executor_options_init(&eo);
    eo.threads = 3;
    struct cx_executor *ex;
    assert_int_equal(cx_executor_new(&eo, &ex, NULL), 0);
    t_mock_script(g_mock, "next 3 503"); /* some queries retry: their later CPU steps come through post again */
    static struct exq qs[N];
    struct cx_task tasks[N];
    for (int i = 0; i < N; i++) {
        memset(&qs[i], 0, sizeof qs[i]);
        qs[i].r = r;
        snprintf(qs[i].prompt, sizeof qs[i].prompt, "Install package: exec-%d", i);
        tasks[i] = (struct cx_task){exq_task, &qs[i]};
    }
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, N, NULL, NULL, &b), 0);
    struct cx_batch_stats bs;
    cx_batch_stats(b, &bs);
    assert_int_equal(bs.successful, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(qs[i].rc, 0);
        assert_non_null(strstr(qs[i].resp.content, qs[i].prompt + strlen("Install package: ")));
        cx_llm_response_clear(&qs[i].resp);
    }
    assert_int_equal(atomic_load(&w.on_io), 0); /* every CPU step ran on a worker */
    assert_int_equal(atomic_load(&w.off_io), N);
    struct cx_router_stats st;
    cx_router_stats(r, &st);
    assert_int_equal(st.retries, 3);
    cx_batch_free(b);
    cx_executor_free(ex);
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
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].rc, CX_ETIMEDOUT);
        assert_non_null(strstr(t[i].ei.msg, "#1 kimi_k2 timed out"));
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
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_cache_and_validator),
        cmocka_unit_test(test_cache_key_names_endpoint),
        cmocka_unit_test(test_cache_one_lookup_per_query),
        cmocka_unit_test(test_similar_hits_checked),
        cmocka_unit_test(test_designs_identical),
        cmocka_unit_test(test_async_retries_and_sf),
        cmocka_unit_test(test_config_and_ollama),
        cmocka_unit_test(test_post_and_cpu_share),
        cmocka_unit_test(test_async_on_executor),
        cmocka_unit_test(test_single_flight_failure),
        cmocka_unit_test(test_torture),
        cmocka_unit_test(test_keys_never_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
