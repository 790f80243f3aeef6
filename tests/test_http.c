/*
 * test_http.c - the HTTP clients: request bodies for both APIs, parsing of plain and SSE answers,
 * error mapping (every fault the mock can inject), Retry-After, deadlines, cancellation, the
 * thread-local handles, keys absent from every message, allocation failures.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cx/clock.h"
#include "cx/http.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

#define SECRET "sk-cx-test-DO-NOT-LOG-7f3a9c"

static struct mock_server *g_mock;
static char g_base[128];

static int setup(void **state) {
    (void)state;
    g_mock = t_mock_start("retry_after = 50ms\nstall = 5s\n", 0.001, g_base, sizeof g_base);
    return g_mock != NULL ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    mock_server_stop(g_mock);
    return 0;
}

static void req_for(struct cx_http_request *r, enum cx_api api, int stream, const char *prompt) {
    cx_http_request_init(r);
    r->api = api;
    r->base_url = g_base;
    r->api_key = SECRET;
    r->model = api == CX_API_ANTHROPIC ? "claude-sonnet-4-20250514" : "kimi-k2-instruct";
    r->system = "You are a Linux package expert.";
    r->prompt = prompt;
    r->stream = stream;
    r->max_tokens = 512;
    r->deadline = t_deadline_ms(5000);
}

/* ---- offline: building ---- */

static void test_body_openai(void **state) {
    (void)state;
    struct cx_http_request r;
    req_for(&r, CX_API_OPENAI, 1, "Install package: nginx");
    r.base_url = "http://h:1/v1/";
    struct cx_http_xfer *x;
    assert_int_equal(cx_http_xfer_new(&r, &x, NULL), 0);
    assert_string_equal(cx_http_xfer_url(x), "http://h:1/v1/chat/completions");
    cJSON *j = cJSON_Parse(cx_http_xfer_body(x));
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "kimi-k2-instruct");
    cJSON *m = cJSON_GetObjectItem(j, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "system");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content")->valuestring,
                        "Install package: nginx");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"), "include_usage")));
    assert_int_equal(cJSON_GetObjectItem(j, "max_tokens")->valueint, 512);
    /* the key is never in the body */
    assert_null(strstr(cx_http_xfer_body(x), SECRET));
    cJSON_Delete(j);
    cx_http_xfer_free(x);
}

static void test_body_anthropic(void **state) {
    (void)state;
    struct cx_http_request r;
    req_for(&r, CX_API_ANTHROPIC, 0, "hello");
    struct cx_http_xfer *x;
    assert_int_equal(cx_http_xfer_new(&r, &x, NULL), 0);
    assert_non_null(strstr(cx_http_xfer_url(x), "/v1/messages"));
    cJSON *j = cJSON_Parse(cx_http_xfer_body(x));
    assert_string_equal(cJSON_GetObjectItem(j, "system")->valuestring, "You are a Linux package expert.");
    cJSON *m = cJSON_GetObjectItem(j, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "user");
    assert_null(cJSON_GetObjectItem(j, "stream"));
    cJSON_Delete(j);
    cx_http_xfer_free(x);
}

static void test_bad_requests(void **state) {
    (void)state;
    struct cx_http_request r;
    struct cx_http_xfer *x = NULL;
    struct cx_errinfo ei;
    req_for(&r, CX_API_OPENAI, 0, "p");
    r.base_url = NULL;
    assert_int_equal(cx_http_xfer_new(&r, &x, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "base_url"));
    req_for(&r, CX_API_OPENAI, 0, "p");
    r.model = "";
    assert_int_equal(cx_http_xfer_new(&r, &x, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "model"));
    req_for(&r, CX_API_OPENAI, 0, "p");
    r.max_tokens = 0;
    assert_int_equal(cx_http_xfer_new(&r, &x, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "max_tokens"));
    req_for(&r, CX_API_OPENAI, 0, "p");
    r.temperature = 7;
    assert_int_equal(cx_http_xfer_new(&r, &x, &ei), CX_EINVAL);
    assert_null(x);
}

/* ---- offline: parsing ---- */

static void test_parse_plain(void **state) {
    (void)state;
    struct cx_http_result res;
    const char *oa = "{\"model\":\"gpt-4o\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}],"
                     "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}";
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 200, oa, strlen(oa), &res, NULL), 0);
    assert_string_equal(res.content, "hi");
    assert_string_equal(res.model, "gpt-4o");
    assert_int_equal(res.prompt_tokens, 7);
    assert_int_equal(res.completion_tokens, 3);
    cx_http_result_clear(&res);
    const char *an = "{\"type\":\"message\",\"model\":\"claude\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                     "{\"type\":\"tool_use\",\"text\":\"X\"},{\"type\":\"text\",\"text\":\"b\"}],"
                     "\"usage\":{\"input_tokens\":11,\"output_tokens\":2}}";
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 0, 200, an, strlen(an), &res, NULL), 0);
    assert_string_equal(res.content, "ab");
    assert_int_equal(res.prompt_tokens, 11);
    assert_int_equal(res.completion_tokens, 2);
    cx_http_result_clear(&res);
    struct cx_errinfo ei;
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 200, "{\"choices\":", 11, &res, &ei), CX_EPARSE);
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 0, 200, "{\"x\":1}", 7, &res, &ei), CX_EPARSE);
    assert_null(res.content);
}

/* http-1 (fuzz/corpus/http/http-1): a usage count is the server's, untrusted. One that is
 * not a whole number in [0, 2^53] counts as not reported (-1); the answer still parses. Before
 * the fix 1e40 was cast to int64_t (undefined; INT64_MIN on x86) and 7.5 became 7. */
static void test_parse_usage_out_of_range(void **state) {
    (void)state;
    static const struct {
        const char *num;
        long long want;
    } cases[] = {{"1e40", -1},         {"-1e40", -1},   {"1e400", -1} /* inf in cJSON */,
                 {"-3", -1},           {"7.5", -1},     {"9.3e18", -1},
                 {"9223372036854775807", -1},           {"18446744073709551616", -1},
                 {"1e16", -1},         {"0", 0},        {"12", 12},
                 {"1e3", 1000},        {"9007199254740992", 9007199254740992LL}};
    char body[512];
    struct cx_http_result res;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *n = cases[i].num;
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"hi\"}}],"
                 "\"usage\":{\"prompt_tokens\":%s,\"completion_tokens\":%s}}", n, n);
        assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 200, body, strlen(body), &res, NULL), 0);
        if (res.prompt_tokens != cases[i].want || res.completion_tokens != cases[i].want)
            fail_msg("openai usage %s gave %lld/%lld, want %lld", n, (long long)res.prompt_tokens,
                     (long long)res.completion_tokens, cases[i].want);
        cx_http_result_clear(&res);
        snprintf(body, sizeof body,
                 "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}],"
                 "\"usage\":{\"input_tokens\":%s,\"output_tokens\":%s}}", n, n);
        assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 0, 200, body, strlen(body), &res, NULL), 0);
        if (res.prompt_tokens != cases[i].want || res.completion_tokens != cases[i].want)
            fail_msg("anthropic usage %s gave %lld/%lld", n, (long long)res.prompt_tokens,
                     (long long)res.completion_tokens);
        cx_http_result_clear(&res);
        /* Streams: a bad count in a later event leaves the earlier good one standing. */
        snprintf(body, sizeof body,
                 "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":3}}\n\n"
                 "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%s,\"completion_tokens\":%s}}\n\n"
                 "data: [DONE]\n\n", n, n);
        assert_int_equal(cx_http_parse(CX_API_OPENAI, 1, 200, body, strlen(body), &res, NULL), 0);
        assert_int_equal(res.prompt_tokens, cases[i].want >= 0 ? cases[i].want : 3);
        assert_int_equal(res.completion_tokens, cases[i].want);
        cx_http_result_clear(&res);
        snprintf(body, sizeof body,
                 "data: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":"
                 "{\"input_tokens\":%s,\"output_tokens\":1}}}\n\n"
                 "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":%s}}\n\n"
                 "data: {\"type\":\"message_stop\"}\n\n", n, n);
        assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 1, 200, body, strlen(body), &res, NULL), 0);
        assert_int_equal(res.prompt_tokens, cases[i].want);
        assert_int_equal(res.completion_tokens, cases[i].want >= 0 ? cases[i].want : 1);
        cx_http_result_clear(&res);
    }
}

static void test_parse_sse(void **state) {
    (void)state;
    struct cx_http_result res;
    const char *oa = "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
                     "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
                     ": keep-alive comment\n\n"
                     "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
                     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
                     "data: [DONE]\n\n";
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 1, 200, oa, strlen(oa), &res, NULL), 0);
    assert_string_equal(res.content, "Hello");
    assert_string_equal(res.model, "m");
    assert_int_equal(res.prompt_tokens, 5);
    assert_int_equal(res.completion_tokens, 2);
    cx_http_result_clear(&res);

    const char *an = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\","
                     "\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
                     "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
                     "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
                     "event: ping\ndata: {\"type\":\"ping\"}\n\n"
                     "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                     "\"delta\":{\"type\":\"text_delta\",\"text\":\"ok \"}}\n\n"
                     "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                     "\"delta\":{\"type\":\"text_delta\",\"text\":\"done\"}}\n\n"
                     "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n"
                     "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 1, 200, an, strlen(an), &res, NULL), 0);
    assert_string_equal(res.content, "ok done");
    assert_int_equal(res.prompt_tokens, 9);
    assert_int_equal(res.completion_tokens, 4);
    cx_http_result_clear(&res);

    /* a stream cut before its end event is not a complete answer */
    struct cx_errinfo ei;
    size_t cut = strstr(an, "event: message_delta") - an;
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 1, 200, an, cut, &res, &ei), CX_EPARSE);
    assert_non_null(strstr(ei.msg, "message_stop"));
    cut = strstr(oa, "data: [DONE]") - oa;
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 1, 200, oa, cut, &res, &ei), CX_EPARSE);
    /* an error event inside a 200 stream */
    const char *err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                      "\"message\":\"Overloaded\"}}\n\n";
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 1, 200, err, strlen(err), &res, &ei), CX_EOVERLOADED);
    assert_non_null(strstr(ei.msg, "Overloaded"));
    /* a broken frame */
    const char *bad = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {broken\n\ndata: [DONE]\n\n";
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 1, 200, bad, strlen(bad), &res, &ei), CX_EPARSE);
}

static void test_parse_errors(void **state) {
    (void)state;
    struct cx_http_result res;
    struct cx_errinfo ei;
    const char *oa = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}";
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 429, oa, strlen(oa), &res, &ei), CX_ERATELIMIT);
    assert_int_equal(ei.detail, 429);
    assert_non_null(strstr(ei.msg, "Rate limit reached"));
    const char *an = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}";
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 0, 529, an, strlen(an), &res, &ei), CX_EOVERLOADED);
    assert_int_equal(cx_http_parse(CX_API_ANTHROPIC, 0, 500, "", 0, &res, &ei), CX_ESERVER);
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 503, "oops", 4, &res, &ei), CX_ESERVER);
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 401, "{\"error\":\"bad key\"}", 19, &res, &ei), CX_EAUTH);
    assert_non_null(strstr(ei.msg, "bad key"));
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 403, "", 0, &res, &ei), CX_EAUTH);
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 400, "", 0, &res, &ei), CX_EHTTP);
    assert_int_equal(ei.detail, 400);
    assert_int_equal(cx_http_parse(CX_API_OPENAI, 0, 404, "", 0, &res, &ei), CX_EHTTP);
}

static void test_retry_after(void **state) {
    (void)state;
    assert_true(cx_http_parse_retry_after("2", 0) == 2.0);
    assert_true(cx_http_parse_retry_after(" 1.5 ", 0) == 1.5);
    assert_true(cx_http_parse_retry_after("250", 1) == 0.25);
    assert_true(cx_http_parse_retry_after("abc", 0) < 0);
    assert_true(cx_http_parse_retry_after("-1", 0) < 0);
    assert_true(cx_http_parse_retry_after("", 0) < 0);
    assert_true(cx_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0) == 0); /* past date */
    assert_true(cx_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1) < 0);
    /* Far-future values are capped at a day, numbers and dates alike, so callers can turn
     * them into nanoseconds without overflowing a uint64_t. */
    assert_true(cx_http_parse_retry_after("1e30", 0) == 86400.0);
    assert_true(cx_http_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0) == 86400.0);
}

/* ---- against the mock ---- */

static struct cx_http_client *client(void) {
    struct cx_http_client *c;
    assert_int_equal(cx_http_client_new(NULL, &c, NULL), 0);
    return c;
}

static void test_mock_both_apis(void **state) {
    (void)state;
    struct cx_http_client *c = client();
    char *text[2][2] = {{0}};
    for (int api = 0; api < 2; api++) {
        for (int stream = 0; stream < 2; stream++) {
            struct cx_http_request r;
            req_for(&r, (enum cx_api)api, stream, "Install package: nginx");
            struct cx_http_result res;
            struct cx_errinfo ei;
            int rc = cx_http_client_complete(c, &r, &res, &ei);
            if (rc != 0) fprintf(stderr, "api %d stream %d: %s\n", api, stream, ei.msg);
            assert_int_equal(rc, 0);
            assert_int_equal(res.status, 200);
            assert_non_null(strstr(res.content, "```json"));
            assert_non_null(strstr(res.content, "nginx"));
            assert_true(res.prompt_tokens > 0);
            assert_true(res.completion_tokens > 0);
            assert_non_null(res.model);
            text[api][stream] = strdup(res.content);
            cx_http_result_clear(&res);
        }
        /* streaming assembles the same text the plain answer carries */
        assert_string_equal(text[api][0], text[api][1]);
    }
    for (int i = 0; i < 2; i++) free(text[i][0]), free(text[i][1]);
    struct cx_http_client_stats st;
    cx_http_client_stats(c, &st);
    assert_int_equal(st.handles_created, 1);
    assert_int_equal(st.transfers, 4);
    /* One thread's handle keeps its connection: four transfers, one connect (the gate's
     * connection-reuse figure counts on this). */
    assert_int_equal(st.connects, 1);
    cx_http_client_free(c);
}

struct fault_case {
    const char *fault;
    enum cx_api api;
    int stream;
    int want;
};

static void test_mock_faults(void **state) {
    (void)state;
    static const struct fault_case cases[] = {
        {"429", CX_API_OPENAI, 0, CX_ERATELIMIT},     {"429", CX_API_ANTHROPIC, 1, CX_ERATELIMIT},
        {"500", CX_API_OPENAI, 0, CX_ESERVER},        {"502", CX_API_ANTHROPIC, 0, CX_ESERVER},
        {"503", CX_API_OPENAI, 1, CX_ESERVER},        {"529", CX_API_ANTHROPIC, 0, CX_EOVERLOADED},
        {"reset", CX_API_OPENAI, 0, CX_ECONN},        {"reset", CX_API_ANTHROPIC, 1, CX_ECONN},
        {"malformed", CX_API_OPENAI, 0, CX_EPARSE},   {"malformed", CX_API_ANTHROPIC, 1, CX_EPARSE},
        {"corrupt", CX_API_OPENAI, 1, CX_EPARSE},     {"cut", CX_API_ANTHROPIC, 1, 0 /* ECONN or EPARSE */},
        {"truncate", CX_API_OPENAI, 1, 0},            {"disconnect", CX_API_OPENAI, 0, CX_ECONN},
    };
    struct cx_http_client *c = client();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char s[64];
        snprintf(s, sizeof s, "next 1 %s", cases[i].fault);
        t_mock_script(g_mock, s);
        struct cx_http_request r;
        req_for(&r, cases[i].api, cases[i].stream, "Install package: redis");
        struct cx_http_result res;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_http_client_complete(c, &r, &res, &ei);
        if (cases[i].want != 0) {
            if (rc != cases[i].want)
                fprintf(stderr, "fault %s: got %s (%s)\n", cases[i].fault, cx_err_name(rc), ei.msg);
            assert_int_equal(rc, cases[i].want);
        } else {
            assert_true(rc == CX_ECONN || rc == CX_EPARSE);
        }
        assert_int_equal(ei.code, rc);
        assert_true(ei.msg[0] != '\0');
        assert_null(strstr(ei.msg, SECRET));
        if (rc == CX_ERATELIMIT) {
            assert_int_equal(ei.detail, 429);
            assert_true(res.retry_after_s > 0.04 && res.retry_after_s < 0.06); /* retry-after-ms: 50 */
        }
        if (rc == CX_ESERVER) assert_true(ei.detail >= 500);
        cx_http_result_clear(&res);
    }
    /* the handle survives every fault: a clean request works */
    struct cx_http_request r;
    req_for(&r, CX_API_OPENAI, 0, "Install package: redis");
    struct cx_http_result res;
    assert_int_equal(cx_http_client_complete(c, &r, &res, NULL), 0);
    assert_non_null(strstr(res.content, "redis"));
    cx_http_result_clear(&res);
    cx_http_client_free(c);
}

static void test_mock_auth_and_keys(void **state) {
    (void)state;
    struct mock_options o;
    mock_options_init(&o);
    o.time_scale = 0.001;
    o.required_key = "the-right-key";
    char base[128];
    struct mock_server *m = t_mock_start_opts(&o, base, sizeof base);
    assert_non_null(m);
    struct cx_http_client *c = client();
    for (int api = 0; api < 2; api++) {
        struct cx_http_request r;
        req_for(&r, (enum cx_api)api, api, "hello");
        r.base_url = base;
        struct cx_http_result res;
        struct cx_errinfo ei;
        assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_EAUTH);
        assert_int_equal(ei.detail, 401);
        assert_null(strstr(ei.msg, SECRET));
        r.api_key = "the-right-key";
        assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), 0);
        cx_http_result_clear(&res);
    }
    cx_http_client_free(c);
    mock_server_stop(m);
}

static void test_connect_refused(void **state) {
    (void)state;
    struct cx_http_client *c = client();
    struct cx_http_request r;
    req_for(&r, CX_API_OPENAI, 0, "hello");
    int fd;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", t_refused_port(&fd));
    r.base_url = url; /* bound, never listening: the connection is refused */
    struct cx_http_result res;
    struct cx_errinfo ei;
    assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_ECONN);
    assert_null(strstr(ei.msg, SECRET));
    close(fd);
    cx_http_client_free(c);
}

static void test_deadline(void **state) {
    (void)state;
    struct cx_http_client *c = client();
    t_mock_script(g_mock, "next 1 stall");
    struct cx_http_request r;
    req_for(&r, CX_API_ANTHROPIC, 0, "hello");
    r.deadline = cx_deadline_after_ms(150);
    struct cx_http_result res;
    struct cx_errinfo ei;
    uint64_t t0 = cx_now_ns();
    assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_ETIMEDOUT);
    assert_true(cx_now_ns() - t0 >= 140 * CX_NSEC_PER_MSEC);
    assert_non_null(strstr(ei.msg, "timed out"));
    /* a deadline already past never sends */
    struct mock_counts before, after;
    mock_server_counts(g_mock, &before);
    r.deadline = cx_now_ns() - 1;
    assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_ETIMEDOUT);
    mock_server_counts(g_mock, &after);
    assert_int_equal(after.api_requests, before.api_requests);
    /* a cancel flag already set never sends either */
    atomic_int cancel = 1;
    r.deadline = CX_DEADLINE_NONE;
    r.cancel = &cancel;
    assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_ECANCELED);
    cx_http_client_free(c);
}

/* Cancelling a blocked transfer from another thread (the blocking design sees the flag at curl's
 * next progress call, within about a second). */
struct canceller {
    atomic_int *flag;
};

static void *cancel_main(void *p) {
    struct canceller *c = p;
    uint64_t dl = t_deadline_ms(5000);
    struct mock_counts mc;
    for (;;) { /* wait until the server holds the request */
        mock_server_counts(g_mock, &mc);
        /* the request took the scripted stall: the server holds it now */
        if (mock_server_scripted_pending(g_mock) == 0 || cx_deadline_expired(dl)) break;
        cx_sleep_ns(CX_NSEC_PER_MSEC);
    }
    atomic_store(c->flag, 1);
    return NULL;
}

static void test_cancel_in_flight(void **state) {
    (void)state;
    struct cx_http_client *c = client();
    t_mock_script(g_mock, "next 1 stall");
    atomic_int flag = 0;
    struct canceller cc = {&flag};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_main, &cc), 0);
    struct cx_http_request r;
    req_for(&r, CX_API_OPENAI, 1, "hello");
    r.deadline = t_deadline_ms(8000);
    r.cancel = &flag;
    struct cx_http_result res;
    struct cx_errinfo ei;
    assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_ECANCELED);
    assert_non_null(strstr(ei.msg, "canceled"));
    pthread_join(t, NULL);
    cx_http_client_free(c);
}

static void test_body_cap(void **state) {
    (void)state;
    struct cx_http_client *c = client();
    struct cx_http_request r;
    req_for(&r, CX_API_OPENAI, 0, "Install package: nginx");
    r.max_body = 64;
    struct cx_http_result res;
    struct cx_errinfo ei;
    assert_int_equal(cx_http_client_complete(c, &r, &res, &ei), CX_ETOOBIG);
    assert_non_null(strstr(ei.msg, "64"));
    cx_http_client_free(c);
}

/* Each thread gets its own handle; all share the caches. */
struct thr_arg {
    struct cx_http_client *c;
    int fails;
};

static void *thr_main(void *p) {
    struct thr_arg *a = p;
    for (int i = 0; i < 10; i++) {
        struct cx_http_request r;
        req_for(&r, i % 2 ? CX_API_ANTHROPIC : CX_API_OPENAI, i % 3 == 0, "Install package: docker");
        struct cx_http_result res;
        if (cx_http_client_complete(a->c, &r, &res, NULL) != 0 || strstr(res.content, "docker") == NULL)
            a->fails++;
        cx_http_result_clear(&res);
    }
    return NULL;
}

static void test_thread_local(void **state) {
    (void)state;
    struct cx_http_client *c = client();
    enum { N = 6 };
    pthread_t t[N];
    struct thr_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct thr_arg){c, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thr_main, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].fails, 0);
    }
    struct cx_http_client_stats st;
    cx_http_client_stats(c, &st);
    assert_int_equal(st.handles_created, N);
    assert_int_equal(st.transfers, N * 10);
    cx_http_client_free(c);
    /* a client freed while threads that used it still live: their handles go with the client */
    c = client();
    struct thr_arg one = {c, 0};
    thr_main(&one);
    assert_int_equal(one.fails, 0);
    cx_http_client_free(c);
}

/* Allocation torture over building and parsing (no I/O). */
static int scenario(void *ctx) {
    (void)ctx;
    struct cx_http_request r;
    req_for(&r, CX_API_OPENAI, 1, "Install package: nginx");
    r.base_url = "http://h:1/v1";
    struct cx_http_xfer *x;
    int rc = cx_http_xfer_new(&r, &x, NULL);
    if (rc < 0) return rc;
    cx_http_xfer_free(x);
    const char *sse = "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
                      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
                      "data: [DONE]\n\n";
    struct cx_http_result res;
    rc = cx_http_parse(CX_API_OPENAI, 1, 200, sse, strlen(sse), &res, NULL);
    if (rc < 0) return rc;
    cx_http_result_clear(&res);
    const char *an = "{\"model\":\"c\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}],\"usage\":{}}";
    rc = cx_http_parse(CX_API_ANTHROPIC, 0, 200, an, strlen(an), &res, NULL);
    if (rc < 0) return rc;
    cx_http_result_clear(&res);
    return 0;
}

static void test_torture(void **state) {
    (void)state;
    assert_true(t_torture(scenario, NULL) > 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_openai),   cmocka_unit_test(test_body_anthropic),
        cmocka_unit_test(test_bad_requests),  cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_sse),     cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_retry_after),   cmocka_unit_test(test_mock_both_apis),
        cmocka_unit_test(test_mock_faults),   cmocka_unit_test(test_mock_auth_and_keys),
        cmocka_unit_test(test_connect_refused), cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel_in_flight), cmocka_unit_test(test_body_cap),      cmocka_unit_test(test_thread_local),
        cmocka_unit_test(test_torture),           cmocka_unit_test(test_parse_usage_out_of_range),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
