/*
 * test_mock_admin.c - what a test suite asserts on, over real HTTP: the request log
 * (GET/DELETE /admin/requests: newest first, bounded, secrets redacted, the fault applied),
 * faults aimed at one route or model (/admin/faults "route"/"model"), unknown fields refused
 * by /admin/faults and /admin/config with a 400 naming them, and token counters by route and
 * model in /metrics and /stats.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "t_mock_http.h"

/* GET /admin/requests (after the server finished every request); cJSON_Delete it. */
static cJSON *requests_log(struct mock_server *s, const char *query) {
    t_mock_settle(s);
    char path[64];
    snprintf(path, sizeof path, "/admin/requests%s", query ? query : "");
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), path, "GET", NULL, NULL, 0, &r), 200);
    cJSON *j = t_json(&r);
    assert_non_null(j);
    t_resp_free(&r);
    return j;
}

static long post_faults(struct mock_server *s, const char *body, struct t_resp *r) {
    return t_http(mock_server_url(s), "/admin/faults", "POST", body, NULL, 0, r);
}

static void test_request_log(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 0);
    const char *url = mock_server_url(s);
    static const char *const hdrs[] = {"Authorization: Bearer sk-very-secret-1",
                                       "x-api-key: sk-very-secret-2",
                                       "X-Session-Token: sk-very-secret-3",
                                       "X-Trace: trace-42", NULL};
    char *chat = t_chat_body("m-log", "install nginx", 0, 0);
    /* The log is filed from the completion callback, which may run after the client has its
       answer and sent the next request: settle after each so the order below is the order
       they were sent in. */
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", chat, hdrs), 200);
    t_mock_settle(s);
    assert_int_equal(t_http_status(url, "/health", "GET", NULL, NULL), 200); /* not logged */
    t_mock_script(s, "next 1 429");
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", chat, NULL), 429);
    t_mock_settle(s);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", "{bad", NULL), 400);

    cJSON *j = requests_log(s, NULL);
    char *text = cJSON_PrintUnformatted(j);
    assert_null(strstr(text, "very-secret"));
    cJSON_free(text);
    assert_int_equal((int)t_jnum(j, "count"), 3);
    const cJSON *reqs = t_jget(j, "requests");
    /* Newest first: the bad body, the 429, the first chat. */
    const cJSON *e0 = cJSON_GetArrayItem(reqs, 0), *e1 = cJSON_GetArrayItem(reqs, 1),
                *e2 = cJSON_GetArrayItem(reqs, 2);
    assert_int_equal((int)t_jnum(e0, "status"), 400);
    assert_true(cJSON_IsString(t_jget(e0, "body"))); /* not JSON: kept as text */
    assert_string_equal(t_jstr(e0, "body"), "{bad");
    assert_true(cJSON_IsNull(t_jget(e0, "model")));
    assert_int_equal((int)t_jnum(e1, "status"), 429);
    assert_string_equal(t_jstr(e1, "fault"), "429");
    assert_int_equal((int)t_jnum(e2, "status"), 200);
    assert_true(cJSON_IsNull(t_jget(e2, "fault")));
    assert_true(t_jnum(e0, "id") > t_jnum(e1, "id") && t_jnum(e1, "id") > t_jnum(e2, "id"));
    assert_string_equal(t_jstr(e2, "route"), "chat");
    assert_string_equal(t_jstr(e2, "method"), "POST");
    assert_string_equal(t_jstr(e2, "path"), "/v1/chat/completions");
    assert_string_equal(t_jstr(e2, "model"), "m-log");
    assert_string_equal(t_jstr(e2, "body.model"), "m-log");
    assert_string_equal(t_jstr(e2, "headers.X-Trace"), "trace-42");
    assert_string_equal(t_jstr(e2, "headers.Authorization"), "[redacted]");
    assert_string_equal(t_jstr(e2, "headers.x-api-key"), "[redacted]");
    assert_string_equal(t_jstr(e2, "headers.X-Session-Token"), "[redacted]");
    /* Bodies are rendered when the log is first read and kept so: a second read is the same. */
    text = cJSON_PrintUnformatted(j);
    cJSON *again = requests_log(s, NULL);
    char *text2 = cJSON_PrintUnformatted(again);
    assert_string_equal(text2, text);
    cJSON_free(text2);
    cJSON_free(text);
    cJSON_Delete(again);
    cJSON_Delete(j);

    j = requests_log(s, "?limit=1");
    assert_int_equal((int)t_jnum(j, "count"), 1);
    assert_int_equal((int)t_jnum(j, "total"), 3);
    cJSON_Delete(j);

    /* Bounded: request_log = 2 keeps the two newest. */
    t_mock_configure(s, "request_log = 2");
    for (int i = 0; i < 3; i++)
        assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", chat, NULL), 200);
    j = requests_log(s, NULL);
    assert_int_equal((int)t_jnum(j, "count"), 2);
    assert_true(t_jnum(j, "dropped") >= 3);
    cJSON_Delete(j);

    struct t_resp r;
    assert_int_equal(t_http(url, "/admin/requests", "DELETE", NULL, NULL, 0, &r), 200);
    t_resp_free(&r);
    j = requests_log(s, NULL);
    assert_int_equal((int)t_jnum(j, "count"), 0);
    cJSON_Delete(j);
    assert_int_equal(t_http_status(url, "/admin/requests?limit=x", "GET", NULL, NULL), 400);
    t_mock_configure(s, "request_log = 0"); /* off */
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", chat, NULL), 200);
    j = requests_log(s, NULL);
    assert_int_equal((int)t_jnum(j, "count"), 0);
    cJSON_Delete(j);
    cJSON_free(chat);
    mock_server_stop(s);
}

static void test_fault_targeting(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 0);
    const char *url = mock_server_url(s);
    struct t_resp r;
    assert_int_equal(post_faults(s, "{\"next\":1,\"fault\":\"500\",\"route\":\"messages\"}", &r),
                     200);
    t_resp_free(&r);
    assert_int_equal(post_faults(s, "{\"script\":\"next 2 429\",\"model\":\"special\"}", &r),
                     200);
    cJSON *j = t_json(&r);
    assert_int_equal((int)t_jnum(j, "pending"), 3);
    const cJSON *sc = t_jget(j, "script");
    assert_string_equal(t_jstr(cJSON_GetArrayItem(sc, 0), "route"), "messages");
    assert_true(cJSON_IsNull(t_jget(cJSON_GetArrayItem(sc, 0), "model")));
    assert_string_equal(t_jstr(cJSON_GetArrayItem(sc, 1), "model"), "special");
    cJSON_Delete(j);
    t_resp_free(&r);

    /* Chat with another model passes both; the targeted ones hit. */
    char *chat = t_chat_body("m", "hi", 0, 0), *special = t_chat_body("special", "hi", 0, 0);
    char *msgs = t_messages_body("m", "hi", 0);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", chat, NULL), 200);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", special, NULL), 429);
    assert_int_equal(t_http_status(url, "/v1/messages", "POST", msgs, t_msg_hdrs()), 500);
    assert_int_equal(t_http_status(url, "/v1/messages", "POST", msgs, t_msg_hdrs()), 200);
    assert_int_equal(mock_server_scripted_pending(s), 1);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", special, NULL), 429);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", special, NULL), 200);
    assert_int_equal(mock_server_scripted_pending(s), 0);

    /* Refused whole: an unknown field (the old server ignored "route" and hit every route),
       a route that takes no faults, a model that is not a string. */
    static const char *const bad[][2] = {
        {"{\"next\":1,\"fault\":\"500\",\"rout\":\"chat\"}", "rout"},
        {"{\"next\":1,\"fault\":\"500\",\"route\":\"health\"}", "route"},
        {"{\"next\":1,\"fault\":\"500\",\"model\":7}", "model"},
        {"{\"script\":\"next 1 500\",\"extra\":true}", "extra"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(post_faults(s, bad[i][0], &r), 400);
        j = t_json(&r);
        const char *msg = t_jstr(j, "error.message");
        if (msg == NULL || strstr(msg, bad[i][1]) == NULL)
            fail_msg("%s: message does not name '%s': %s", bad[i][0], bad[i][1], r.body.p);
        cJSON_Delete(j);
        t_resp_free(&r);
    }
    assert_int_equal(mock_server_scripted_pending(s), 0);
    cJSON_free(chat);
    cJSON_free(special);
    cJSON_free(msgs);
    mock_server_stop(s);
}

static void test_config_unknown_field(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 0);
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), "/admin/config", "POST",
                            "{\"latency\":\"5ms\",\"latenzy\":\"1s\"}", NULL, 0, &r), 400);
    assert_non_null(strstr(r.body.p, "latenzy"));
    t_resp_free(&r);
    assert_int_equal(t_http(mock_server_url(s), "/admin/config", "GET", NULL, NULL, 0, &r), 200);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "latency"), "0ms"); /* all-or-nothing */
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(s);
}

/* The value of one sample line "name{labels} V" in Prometheus text, or -1. */
static double prom_value(const char *text, const char *series) {
    const char *p = strstr(text, series);
    if (p == NULL) return -1;
    return strtod(p + strlen(series), NULL);
}

static void test_token_metrics(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 0);
    const char *url = mock_server_url(s);
    double prompt = 0, completion = 0;
    const char *prompts[] = {"install nginx", "why does apt fail"};
    for (int i = 0; i < 2; i++) {
        char *b = t_chat_body("m-tok", prompts[i], 0, 0);
        struct t_resp r;
        assert_int_equal(t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r), 200);
        cJSON *j = t_json(&r);
        prompt += t_jnum(j, "usage.prompt_tokens");
        completion += t_jnum(j, "usage.completion_tokens");
        cJSON_Delete(j);
        t_resp_free(&r);
        cJSON_free(b);
    }
    char *mb = t_messages_body("claude-\"q\"", "hi", 0);
    struct t_resp r;
    assert_int_equal(t_http(url, "/v1/messages", "POST", mb, t_msg_hdrs(), 0, &r), 200);
    cJSON *mj = t_json(&r);
    double mout = t_jnum(mj, "usage.output_tokens");
    cJSON_Delete(mj);
    t_resp_free(&r);
    cJSON_free(mb);
    t_mock_settle(s);
    assert_int_equal(t_http(url, "/metrics", "GET", NULL, NULL, 0, &r), 200);
    assert_true(prompt > 0 && completion > 0);
    assert_true(prom_value(r.body.p, "mock_prompt_tokens_total{route=\"chat\",model=\"m-tok\"} ") ==
                prompt);
    assert_true(prom_value(r.body.p,
                           "mock_completion_tokens_total{route=\"chat\",model=\"m-tok\"} ") ==
                completion);
    assert_true(prom_value(r.body.p, "mock_model_requests_total{route=\"chat\",model=\"m-tok\"} ") ==
                2);
    /* The label value is escaped. */
    assert_true(prom_value(r.body.p, "mock_completion_tokens_total{route=\"messages\","
                                     "model=\"claude-\\\"q\\\"\"} ") == mout);
    t_resp_free(&r);
    cJSON *st = t_mock_stats(s);
    const cJSON *row = cJSON_GetArrayItem(t_jget(st, "tokens"), 0);
    assert_string_equal(t_jstr(row, "model"), "m-tok");
    assert_true(t_jnum(row, "prompt_tokens") == prompt);
    cJSON_Delete(st);
    /* Reset zeroes them. */
    mock_server_reset_stats(s);
    assert_int_equal(t_http(url, "/metrics", "GET", NULL, NULL, 0, &r), 200);
    assert_null(strstr(r.body.p, "model=\"m-tok\""));
    t_resp_free(&r);
    mock_server_stop(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_log),
        cmocka_unit_test(test_fault_targeting),
        cmocka_unit_test(test_config_unknown_field),
        cmocka_unit_test(test_token_metrics),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
