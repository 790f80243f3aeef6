/* test_mock_timing.c - the mock server's clock: delivered latency never below the configured one
 * and not far above it (bounds scaled under sanitizers), time_scale, streaming ttft/itl,
 * distributions, concurrency through curl multi (the in-flight maximum), the max_running queue,
 * and a clean stop with requests (delayed, streaming, stalled) still in flight. */
#include <math.h>

#include "t_mock_http.h"

/* Generous upper slack for one reply, in seconds: scheduling on a shared 2-core machine (and
 * ctest -j running other suites beside this one). */
static double slack_s(void) { return 0.250 * t_timeout_scale(); }

struct multi_req {
    CURL *e;
    struct t_resp r;
    struct curl_slist *hl;
    char *body;
    int done;
};
static void multi_add(CURLM *m, struct multi_req *q, const char *url, const char *path,
                      const char *body);
static int multi_drive(CURLM *m, double wait_s, struct mock_server *s, unsigned want_in_flight);
static void multi_finish(CURLM *m, struct multi_req *q, size_t n);
static void multi_chat_all(CURLM *m, struct multi_req *q, size_t n, const char *url,
                           const char *body);

/* Seconds one non-streaming request on the chat (api 0) or messages (api 1) route took. */
static double timed_call(struct mock_server *s, int api, const char *prompt) {
    struct t_resp r;
    double t0 = t_now_s();
    assert_int_equal(t_mock_call(s, api, prompt, 0, 0, &r), 200);
    double dt = t_now_s() - t0;
    assert_int_equal(r.cc, CURLE_OK);
    t_resp_free(&r);
    return dt;
}

static void test_fixed_latency(void **state) {
    (void)state;
    /* 4 s scaled by 0.05 is 200 ms. */
    struct mock_server *s = t_mock_start("latency = 4s\ntime_scale = 0.05", 1);
    for (int i = 0; i < 5; i++) {
        double dt = timed_call(s, 0, i % 2 ? "Install package: nginx" : "hi");
        if (dt < 0.200 || dt > 0.200 + slack_s()) fail_msg("delivered %.4f s for 0.200 s", dt);
    }
    cJSON *j = t_mock_stats(s);
    assert_int_equal((int)t_jnum(j, "histograms.configured.count"), 5);
    double conf = t_jnum(j, "histograms.configured.p50");
    assert_true(conf > 193.0 && conf < 207.0); /* log buckets: ~3% resolution */
    assert_true(t_jnum(j, "histograms.delivered.min") >= 193.0);
    assert_true(t_jnum(j, "histograms.error.p99") < 1000.0 * slack_s());
    /* The error splits into the timer firing late and the worker running the handler after the
       resume: per request error = timer_late + resume, so their means add up (within the
       microsecond each value is truncated to and the JSON's rounding to 0.001 ms). */
    assert_int_equal((int)t_jnum(j, "histograms.timer_late.count"), 5);
    assert_int_equal((int)t_jnum(j, "histograms.resume.count"), 5);
    double split = t_jnum(j, "histograms.timer_late.mean") + t_jnum(j, "histograms.resume.mean");
    double err_mean = t_jnum(j, "histograms.error.mean");
    if (fabs(err_mean - split) > 0.004)
        fail_msg("error mean %.4f ms, timer_late + resume means %.4f ms", err_mean, split);
    cJSON_Delete(j);

    /* Per-route override: the messages route is slower, chat keeps the global latency. */
    t_mock_configure(s, "latency = 2s\nmessages.latency = 6s");
    double dt = timed_call(s, 1, "hi");
    assert_true(dt >= 0.300 && dt < 0.300 + slack_s());
    dt = timed_call(s, 0, "hi");
    assert_true(dt >= 0.100 && dt < 0.100 + slack_s());

    /* Zero latency is fast. */
    t_mock_configure(s, "latency = 0\nmessages.latency = 0");
    dt = timed_call(s, 0, "hi");
    assert_true(dt < slack_s());
    mock_server_stop(s);
}

static void test_uniform_latency(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start("dist = uniform\nlatency = 20ms\nlatency_max = 120ms", 5);
    double lo = 1e9, hi = 0;
    for (int i = 0; i < 8; i++) {
        char prompt[32];
        snprintf(prompt, sizeof prompt, "question %d", i);
        double dt = timed_call(s, 0, prompt);
        assert_true(dt >= 0.020 && dt <= 0.120 + slack_s());
        if (dt < lo) lo = dt;
        if (dt > hi) hi = dt;
    }
    assert_true(hi - lo > 0.010); /* really spread, not fixed */
    /* The sampled latencies are deterministic: the configured histogram of a second server
     * with the same seed and requests matches exactly. */
    cJSON *a = t_mock_stats(s);
    mock_server_stop(s);
    s = t_mock_start("dist = uniform\nlatency = 20ms\nlatency_max = 120ms", 5);
    for (int i = 0; i < 8; i++) {
        char prompt[32];
        snprintf(prompt, sizeof prompt, "question %d", i);
        timed_call(s, 0, prompt);
    }
    cJSON *b = t_mock_stats(s);
    assert_true(cJSON_Compare(t_jget(a, "histograms.configured"), t_jget(b, "histograms.configured"), 1));
    cJSON_Delete(a);
    cJSON_Delete(b);
    mock_server_stop(s);
}

static void test_normal_and_load_factor(void **state) {
    (void)state;
    /* normal: mean 100 ms, stddev 30 ms (time_scale 0.5 halves both). */
    struct mock_server *s = t_mock_start("dist = normal\nlatency = 100ms\nstddev = 30ms\n"
                                         "time_scale = 0.5", 9);
    for (int i = 0; i < 12; i++) {
        char prompt[32];
        snprintf(prompt, sizeof prompt, "normal %d", i);
        timed_call(s, 0, prompt);
    }
    cJSON *j = t_mock_stats(s);
    double mean = t_jnum(j, "histograms.configured.mean");
    double lo = t_jnum(j, "histograms.configured.min"), hi = t_jnum(j, "histograms.configured.max");
    assert_true(mean > 35.0 && mean < 65.0);
    assert_true(hi - lo > 5.0);
    assert_true(t_jnum(j, "histograms.delivered.min") >= lo * 0.97);
    cJSON_Delete(j);
    mock_server_stop(s);

    /* load_factor 1: a request that starts while k others run takes (1 + k) x latency, so of
     * four sent together the last one takes about four times as long. */
    double lat = 0.100 * t_timeout_scale();
    char cfg[96];
    snprintf(cfg, sizeof cfg, "latency = %.0fms\nload_factor = 1", lat * 1000);
    s = t_mock_start(cfg, 1);
    CURLM *m = curl_multi_init();
    struct multi_req q[4];
    memset(q, 0, sizeof q);
    char *chat = t_chat_body("m", "hi", 0, 0);
    multi_chat_all(m, q, 4, mock_server_url(s), chat);
    double longest = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(q[i].r.status, 200);
        if (q[i].r.secs > longest) longest = q[i].r.secs;
        t_resp_free(&q[i].r);
    }
    assert_true(longest >= 2.9 * lat);
    j = t_mock_stats(s);
    assert_true(t_jnum(j, "histograms.configured.max") >= 2900.0 * lat);
    cJSON_Delete(j);
    curl_multi_cleanup(m);
    cJSON_free(chat);
    mock_server_stop(s);
}

static void test_stream_timing(void **state) {
    (void)state;
    /* ttft 80 ms, then 4 ms between tokens. */
    struct mock_server *s = t_mock_start("ttft = 80ms\nitl = 4ms", 1);
    struct t_resp r;
    char *body = t_chat_body("m", "Install package: docker", 1, 1);
    double t0 = t_now_s();
    assert_int_equal(t_http(mock_server_url(s), "/v1/chat/completions", "POST", body, NULL, 0, &r),
                     200);
    double dt = t_now_s() - t0;
    cJSON_free(body);
    /* Tokens from the usage chunk (second to last frame). */
    struct t_sse sse;
    t_sse_parse(r.body.p, r.body.len, &sse);
    assert_true(sse.n >= 3);
    cJSON *u = cJSON_Parse(sse.ev[sse.n - 2].data);
    assert_non_null(u);
    unsigned tokens = (unsigned)t_jnum(u, "usage.completion_tokens");
    cJSON_Delete(u);
    t_sse_free(&sse);
    t_resp_free(&r);
    assert_true(tokens > 20);
    double want = 0.080 + (tokens - 1) * 0.004;
    if (dt < want || dt > want + 2 * slack_s()) fail_msg("stream took %.4f s, want %.4f", dt, want);
    cJSON *j = t_mock_stats(s);
    double ttft = t_jnum(j, "histograms.ttft.p50"), itl = t_jnum(j, "histograms.itl.p50");
    assert_true(ttft >= 77.0 && ttft < 80.0 + 1000.0 * slack_s());
    assert_true(itl >= 3.8 && itl < 4.0 + 1000.0 * slack_s());
    assert_true(t_jnum(j, "histograms.itl.count") >= tokens - 1);
    cJSON_Delete(j);
    mock_server_stop(s);
}

/* ---- curl multi (declared above) ---- */

static void multi_add(CURLM *m, struct multi_req *q, const char *url, const char *path,
                      const char *body) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", url, path);
    q->body = strdup(body);
    q->e = t_easy(full, "POST", q->body, strstr(path, "messages") ? t_msg_hdrs() : NULL,
                  (long)(30000 * t_timeout_scale()), &q->r, &q->hl);
    curl_easy_setopt(q->e, CURLOPT_PRIVATE, q);
    assert_int_equal(curl_multi_add_handle(m, q->e), CURLM_OK);
}

/* Drives m for up to wait_s, returning early when every transfer is done or, with s != NULL,
 * when the server reports want_in_flight requests in flight. Returns the number still running. */
static int multi_drive(CURLM *m, double wait_s, struct mock_server *s, unsigned want_in_flight) {
    int running = 1;
    double end = t_now_s() + wait_s;
    while (t_now_s() < end) {
        assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) continue;
            struct multi_req *q;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            q->r.cc = msg->data.result;
            q->done = 1;
        }
        if (running == 0) break;
        if (s != NULL) {
            struct mock_counts mc;
            mock_server_counts(s, &mc);
            if (mc.in_flight >= want_in_flight) break;
        }
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    return running;
}

static void multi_finish(CURLM *m, struct multi_req *q, size_t n) {
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, q[i].e);
        t_easy_done(q[i].e, &q[i].r, q[i].hl);
        free(q[i].body);
    }
}

/* Sends n copies of body to the chat route at once and runs them all to the end (30 s scaled);
 * the responses are left in q[i].r for the caller to check and free. */
static void multi_chat_all(CURLM *m, struct multi_req *q, size_t n, const char *url,
                           const char *body) {
    for (size_t i = 0; i < n; i++) multi_add(m, &q[i], url, "/v1/chat/completions", body);
    assert_int_equal(multi_drive(m, 30 * t_timeout_scale(), NULL, 0), 0);
    multi_finish(m, q, n);
}

#define NCONC 48

static void test_concurrency(void **state) {
    (void)state;
    /* NCONC requests at once with 700 ms latency: all in flight together, done in about one
     * latency, not NCONC of them. */
    double lat = 0.700 * t_timeout_scale();
    char cfg[64];
    snprintf(cfg, sizeof cfg, "latency = %.0fms", lat * 1000);
    struct mock_server *s = t_mock_start(cfg, 1);
    CURLM *m = curl_multi_init();
    assert_non_null(m);
    static struct multi_req q[NCONC];
    memset(q, 0, sizeof q);
    char *chat = t_chat_body("m", "Install package: nginx", 0, 0);
    char *stream = t_chat_body("m", "Install package: redis", 1, 1);
    char *msg = t_messages_body("m", "hi", 0);
    double t0 = t_now_s();
    for (int i = 0; i < NCONC; i++) {
        if (i % 3 == 2) multi_add(m, &q[i], mock_server_url(s), "/v1/messages", msg);
        else multi_add(m, &q[i], mock_server_url(s), "/v1/chat/completions", i % 3 ? stream : chat);
    }
    assert_int_equal(multi_drive(m, 30 * t_timeout_scale(), NULL, 0), 0);
    double wall = t_now_s() - t0;
    multi_finish(m, q, NCONC);
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(q[i].r.cc, CURLE_OK);
        assert_int_equal(q[i].r.status, 200);
        assert_true(q[i].r.secs >= lat - 0.001);
        t_resp_free(&q[i].r);
    }
    assert_true(wall >= lat);
    assert_true(wall < 2 * lat + slack_s());
    struct mock_counts mc;
    t_mock_counts(s, &mc);
    assert_int_equal(mc.in_flight_max, NCONC);
    assert_int_equal(mc.in_flight, 0);
    assert_int_equal(mc.api_requests, NCONC);
    cJSON *j = t_mock_stats(s);
    assert_int_equal((int)t_jnum(j, "in_flight_max"), NCONC);
    assert_true(t_jnum(j, "histograms.error.p99") < 1000.0 * slack_s());
    cJSON_Delete(j);
    curl_multi_cleanup(m);
    cJSON_free(chat);
    cJSON_free(stream);
    cJSON_free(msg);
    mock_server_stop(s);
}

static void test_max_running(void **state) {
    (void)state;
    /* 2 running at a time, 100 ms each, 6 requests: three waves; then a bounded queue. */
    struct mock_server *s = t_mock_start("latency = 100ms\nmax_running = 2", 1);
    CURLM *m = curl_multi_init();
    struct multi_req q[6];
    memset(q, 0, sizeof q);
    char *chat = t_chat_body("m", "hi", 0, 0);
    double t0 = t_now_s();
    multi_chat_all(m, q, 6, mock_server_url(s), chat);
    double wall = t_now_s() - t0;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(q[i].r.status, 200);
        t_resp_free(&q[i].r);
    }
    assert_true(wall >= 0.300);
    cJSON *j = t_mock_stats(s);
    assert_true(t_jnum(j, "queued_max") >= 2);
    assert_true(t_jnum(j, "histograms.queued.max") >= 90.0);
    cJSON_Delete(j);

    /* One running, one waiting: the rest are refused (503 OpenAI, 529 Anthropic). The latency
     * is long enough that all six arrive while the first still runs. */
    char cfg[96];
    snprintf(cfg, sizeof cfg, "max_running = 1\nmax_queue = 1\nlatency = %.0fms",
             500 * t_timeout_scale());
    t_mock_configure(s, cfg);
    char *msg = t_messages_body("m", "hi", 0);
    for (int i = 0; i < 6; i++)
        multi_add(m, &q[i], mock_server_url(s), i < 3 ? "/v1/chat/completions" : "/v1/messages",
                  i < 3 ? chat : msg);
    assert_int_equal(multi_drive(m, 30 * t_timeout_scale(), NULL, 0), 0);
    multi_finish(m, q, 6);
    int ok = 0, refused = 0;
    for (int i = 0; i < 6; i++) {
        if (q[i].r.status == 200) ok++;
        else if (q[i].r.status == (i < 3 ? 503 : 529)) refused++;
        else fail_msg("request %d: status %ld", i, q[i].r.status);
        t_resp_free(&q[i].r);
    }
    assert_true(ok >= 2);
    assert_true(refused >= 1);
    curl_multi_cleanup(m);
    cJSON_free(chat);
    cJSON_free(msg);
    mock_server_stop(s);
}

#define NSTOP 24

static void test_stop_in_flight(void **state) {
    (void)state;
    /* Requests delayed 20 s, streams with 1 s between tokens, and a stalled one: stopping the
     * server must answer or close all of them at once, not wait for their delays. */
    struct mock_server *s = t_mock_start("latency = 20s\nchat.ttft = 10ms\nchat.itl = 1s", 1);
    t_mock_script(s, "next 1 stall");
    CURLM *m = curl_multi_init();
    static struct multi_req q[NSTOP];
    memset(q, 0, sizeof q);
    char *stream = t_chat_body("m", "Install package: nginx", 1, 0);
    char *msg = t_messages_body("m", "hi", 0);
    for (int i = 0; i < NSTOP; i++)
        multi_add(m, &q[i], mock_server_url(s), i % 2 ? "/v1/messages" : "/v1/chat/completions",
                  i % 2 ? msg : stream);
    assert_true(multi_drive(m, 10 * t_timeout_scale(), s, NSTOP) > 0);
    struct mock_counts mc;
    mock_server_counts(s, &mc);
    assert_int_equal(mc.in_flight, NSTOP);
    assert_int_equal(mc.in_flight_max, NSTOP);

    double t0 = t_now_s();
    mock_server_stop(s);
    double stop_s = t_now_s() - t0;
    if (stop_s > 2.0 * t_timeout_scale()) fail_msg("stop took %.2f s", stop_s);

    /* Every client sees its transfer end promptly (error or a short answer), none hangs. */
    t0 = t_now_s();
    assert_int_equal(multi_drive(m, 5 * t_timeout_scale(), NULL, 0), 0);
    assert_true(t_now_s() - t0 < 5 * t_timeout_scale());
    multi_finish(m, q, NSTOP);
    for (int i = 0; i < NSTOP; i++) {
        assert_true(q[i].done);
        t_resp_free(&q[i].r);
    }
    curl_multi_cleanup(m);
    cJSON_free(stream);
    cJSON_free(msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_latency),  cmocka_unit_test(test_uniform_latency),
        cmocka_unit_test(test_normal_and_load_factor),
        cmocka_unit_test(test_stream_timing),  cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_max_running),    cmocka_unit_test(test_stop_in_flight),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
