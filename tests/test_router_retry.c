/*
 * test_router_retry.c - one query at a time through the router against the mock: routing and
 * forced providers, retries honouring Retry-After (and pausing the shared limiter for every
 * worker), fallback to another provider on another server, the attempt log, deadline expiry,
 * 4xx not retried, the token bucket's correction, the endpoint names of cache keys, the
 * configuration mapping and Ollama's host:port form, allocation failures through a whole query,
 * keys absent from every message and from stderr. Single flight and cx_router_submit are in
 * test_router_flight.c; the cache and validator tests in test_pipeline.c (the router no longer
 * caches or validates).
 */
#include <fcntl.h>

#include "t_router.h"

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
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_endpoint_names),
        cmocka_unit_test(test_config_and_ollama),
        cmocka_unit_test(test_torture),
        cmocka_unit_test(test_keys_never_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
