/*
 * test_router_flight.c - concurrent queries through the router against the mock: single flight
 * (identical queries share one upstream call; a follower gives up at its own deadline; a failed
 * leader's error is shared too), and cx_router_submit: the one completion never running inside
 * the submit call nor on the I/O thread, no attempt sent inside another query's Retry-After
 * pause, both I/O designs giving identical results, retries through timers. One query at a time
 * (routes, retries, fallback, limits) is test_router_retry.c.
 */
#include "t_router.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_follower_deadline),
        cmocka_unit_test(test_completion_never_in_submit),
        cmocka_unit_test(test_no_send_inside_pause),
        cmocka_unit_test(test_designs_identical),
        cmocka_unit_test(test_async_retries_and_sf),
        cmocka_unit_test(test_submit_on_executor),
        cmocka_unit_test(test_single_flight_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
