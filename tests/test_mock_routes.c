/*
 * test_mock_routes.c - the OpenAI routes clients call besides chat, over real HTTP:
 * /v1/embeddings (deterministic unit vectors, float and base64), /v1/completions (legacy,
 * streaming and not, max_tokens defaulting to 16) and /v1/responses (the Responses API,
 * streaming as typed events and not), their 400s, and faults aimed at them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "t_mock_http.h"

static struct mock_server *srv;

static int setup(void **state) {
    if (t_mock_group_setup(state) != 0) return -1;
    srv = t_mock_start(NULL, 7);
    return 0;
}

static int teardown(void **state) {
    mock_server_stop(srv);
    return t_mock_group_teardown(state);
}

static long post(const char *path, const char *body, struct t_resp *r) {
    return t_http(mock_server_url(srv), path, "POST", body, NULL, 0, r);
}

static cJSON *post_json(const char *path, const char *body, long want) {
    struct t_resp r;
    long st = post(path, body, &r);
    if (st != want) fail_msg("%s %s: %ld (want %ld): %s", path, body, st, want, r.body.p);
    cJSON *j = t_json(&r);
    t_resp_free(&r);
    return j;
}

/* The OpenAI error's param and code, checked. */
static void expect_400(const char *path, const char *body, const char *param, const char *code) {
    cJSON *j = post_json(path, body, 400);
    assert_string_equal(t_jstr(j, "error.type"), "invalid_request_error");
    assert_string_equal(t_jstr(j, "error.param"), param);
    assert_string_equal(t_jstr(j, "error.code"), code);
    cJSON_Delete(j);
}

static void vec(const cJSON *j, int i, double *out, int n) {
    char path[64];
    snprintf(path, sizeof path, "data.%d.embedding", i);
    const cJSON *a = t_jget(j, path);
    assert_int_equal(cJSON_GetArraySize(a), n);
    for (int k = 0; k < n; k++) out[k] = cJSON_GetArrayItem(a, k)->valuedouble;
}

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static void test_embeddings(void **state) {
    (void)state;
    double a[8], b[8], c[8], d[8];
    cJSON *j = post_json("/v1/embeddings",
                         "{\"model\":\"emb\",\"input\":[\"hello\",\"world\",\"hello\"],"
                         "\"dimensions\":8}", 200);
    assert_string_equal(t_jstr(j, "object"), "list");
    assert_string_equal(t_jstr(j, "model"), "emb");
    assert_int_equal(cJSON_GetArraySize(t_jget(j, "data")), 3);
    assert_string_equal(t_jstr(j, "data.1.object"), "embedding");
    assert_int_equal((int)t_jnum(j, "data.2.index"), 2);
    assert_true(t_jnum(j, "usage.prompt_tokens") >= 3);
    assert_true(t_jnum(j, "usage.total_tokens") == t_jnum(j, "usage.prompt_tokens"));
    vec(j, 0, a, 8);
    vec(j, 1, b, 8);
    vec(j, 2, c, 8);
    cJSON_Delete(j);
    double na = 0, dot = 0;
    for (int k = 0; k < 8; k++) {
        na += a[k] * a[k];
        dot += a[k] * b[k];
        assert_true(a[k] == c[k]); /* same text, same vector */
    }
    assert_true(fabs(na - 1) < 1e-5);  /* unit length */
    assert_true(fabs(dot) < 0.999);     /* a different text points elsewhere */
    /* The same text in another request (a single string) gets the same vector; base64 is the
       same floats as little-endian float32. */
    j = post_json("/v1/embeddings", "{\"model\":\"emb\",\"input\":\"hello\",\"dimensions\":8}",
                  200);
    vec(j, 0, d, 8);
    cJSON_Delete(j);
    for (int k = 0; k < 8; k++) assert_true(d[k] == a[k]);
    j = post_json("/v1/embeddings", "{\"model\":\"emb\",\"input\":\"hello\",\"dimensions\":8,"
                  "\"encoding_format\":\"base64\"}", 200);
    const char *s = t_jstr(j, "data.0.embedding");
    unsigned char raw[32];
    size_t n = 0;
    for (size_t i = 0; s[i] && s[i + 1] && s[i + 2] && s[i + 3]; i += 4) {
        int v0 = b64val(s[i]), v1 = b64val(s[i + 1]), v2 = b64val(s[i + 2]),
            v3 = b64val(s[i + 3]);
        raw[n++] = (unsigned char)(v0 << 2 | v1 >> 4);
        if (s[i + 2] != '=') raw[n++] = (unsigned char)(v1 << 4 | v2 >> 2);
        if (s[i + 3] != '=') raw[n++] = (unsigned char)(v2 << 6 | v3);
    }
    assert_int_equal(n, 32);
    for (int k = 0; k < 8; k++) {
        uint32_t u = (uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 |
                     (uint32_t)raw[4 * k + 2] << 16 | (uint32_t)raw[4 * k + 3] << 24;
        float f;
        memcpy(&f, &u, 4);
        assert_true(f == (float)a[k]); /* the decimal text is the same float */
    }
    cJSON_Delete(j);
    /* Default size and token-array inputs. */
    j = post_json("/v1/embeddings", "{\"model\":\"emb\",\"input\":[[1,2,3],[4]]}", 200);
    assert_int_equal(cJSON_GetArraySize(t_jget(j, "data.0.embedding")), 1536);
    assert_int_equal((int)t_jnum(j, "usage.prompt_tokens"), 4);
    cJSON_Delete(j);
    expect_400("/v1/embeddings", "{\"model\":\"emb\"}", "input", "missing_required_parameter");
    expect_400("/v1/embeddings", "{\"model\":\"emb\",\"input\":[]}", "input", "empty_array");
    expect_400("/v1/embeddings", "{\"model\":\"emb\",\"input\":[7,\"x\"]}", "input",
               "invalid_type");
    expect_400("/v1/embeddings", "{\"model\":\"emb\",\"input\":\"x\",\"dimensions\":0}",
               "dimensions", "integer_below_min_value");
    expect_400("/v1/embeddings", "{\"model\":\"emb\",\"input\":\"x\",\"dimensions\":99999}",
               "dimensions", "integer_above_max_value");
    expect_400("/v1/embeddings", "{\"model\":\"emb\",\"input\":\"x\",\"encoding_format\":\"hex\"}",
               "encoding_format", "invalid_value");
    assert_int_equal(t_http_status(mock_server_url(srv), "/v1/embeddings", "GET", NULL, NULL),
                     405);
}

static void test_completions(void **state) {
    (void)state;
    /* max_tokens defaults to 16, as in the real API: a long plan is cut at 16 tokens. */
    cJSON *j = post_json("/v1/completions", "{\"model\":\"c1\",\"prompt\":\"install nginx\"}", 200);
    assert_string_equal(t_jstr(j, "object"), "text_completion");
    assert_true(strncmp(t_jstr(j, "id"), "cmpl-", 5) == 0);
    assert_string_equal(t_jstr(j, "model"), "c1");
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "length");
    assert_int_equal((int)t_jnum(j, "usage.completion_tokens"), 16);
    cJSON_Delete(j);
    j = post_json("/v1/completions", "{\"model\":\"c1\",\"prompt\":[\"a\",\"install nginx\"],"
                  "\"max_tokens\":4000}", 200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "stop");
    char *whole = strdup(t_jstr(j, "choices.0.text"));
    assert_non_null(strstr(whole, "nginx")); /* the last prompt of the list was answered */
    double ntok = t_jnum(j, "usage.completion_tokens");
    cJSON_Delete(j);
    /* Streamed: the pieces join to the same text, then a finish chunk, usage, [DONE]. */
    struct t_resp r;
    assert_int_equal(post("/v1/completions", "{\"model\":\"c1\",\"prompt\":[\"a\",\"install "
                          "nginx\"],\"max_tokens\":4000,\"stream\":true,\"stream_options\":"
                          "{\"include_usage\":true}}", &r), 200);
    struct t_sse sse;
    t_sse_parse(r.body.p, r.body.len, &sse);
    assert_true(sse.n >= 4);
    assert_string_equal(sse.ev[sse.n - 1].data, "[DONE]");
    struct {
        char p[8192];
        size_t n;
    } acc = {{0}, 0};
    for (size_t i = 0; i + 3 < sse.n; i++) {
        cJSON *c = cJSON_Parse(sse.ev[i].data);
        assert_non_null(c);
        assert_true(cJSON_IsNull(t_jget(c, "choices.0.finish_reason")));
        const char *t = t_jstr(c, "choices.0.text");
        assert_true(acc.n + strlen(t) < sizeof acc.p);
        memcpy(acc.p + acc.n, t, strlen(t));
        acc.n += strlen(t);
        cJSON_Delete(c);
    }
    assert_string_equal(acc.p, whole);
    cJSON *fin = cJSON_Parse(sse.ev[sse.n - 3].data), *use = cJSON_Parse(sse.ev[sse.n - 2].data);
    assert_string_equal(t_jstr(fin, "choices.0.finish_reason"), "stop");
    assert_int_equal(cJSON_GetArraySize(t_jget(use, "choices")), 0);
    assert_true(t_jnum(use, "usage.completion_tokens") == ntok);
    cJSON_Delete(fin);
    cJSON_Delete(use);
    t_sse_free(&sse);
    t_resp_free(&r);
    free(whole);
    expect_400("/v1/completions", "{\"model\":\"c1\"}", "prompt", "missing_required_parameter");
    expect_400("/v1/completions", "{\"model\":\"c1\",\"prompt\":{}}", "prompt", "invalid_type");
    expect_400("/v1/completions", "{\"model\":\"c1\",\"prompt\":\"x\",\"max_tokens\":1e999}",
               "max_tokens", "integer_above_max_value");
    j = post_json("/v1/completions", "{\"prompt\":\"x\"}", 400);
    assert_non_null(strstr(t_jstr(j, "error.message"), "model"));
    cJSON_Delete(j);
    expect_400("/v1/completions", "{\"model\":5,\"prompt\":\"x\"}", "model", "invalid_type");
}

static void test_responses(void **state) {
    (void)state;
    const char *body = "{\"model\":\"r1\",\"instructions\":\"Answer briefly.\",\"input\":"
                       "[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":"
                       "\"install nginx\"}]}]}";
    cJSON *j = post_json("/v1/responses", body, 200);
    assert_string_equal(t_jstr(j, "object"), "response");
    assert_true(strncmp(t_jstr(j, "id"), "resp_", 5) == 0);
    assert_string_equal(t_jstr(j, "status"), "completed");
    assert_string_equal(t_jstr(j, "instructions"), "Answer briefly.");
    assert_string_equal(t_jstr(j, "output.0.type"), "message");
    assert_string_equal(t_jstr(j, "output.0.role"), "assistant");
    assert_string_equal(t_jstr(j, "output.0.content.0.type"), "output_text");
    char *text = strdup(t_jstr(j, "output.0.content.0.text"));
    assert_non_null(strstr(text, "nginx"));
    double out = t_jnum(j, "usage.output_tokens");
    assert_true(t_jnum(j, "usage.total_tokens") == t_jnum(j, "usage.input_tokens") + out);
    cJSON_Delete(j);

    /* Streamed: created, in_progress, item added, part added, deltas, text done, part done,
       item done, completed; sequence numbers count up from 0; the deltas join to the text. */
    char sbody[512];
    snprintf(sbody, sizeof sbody, "%.*s,\"stream\":true}", (int)strlen(body) - 1, body);
    struct t_resp r;
    assert_int_equal(post("/v1/responses", sbody, &r), 200);
    struct t_sse sse;
    t_sse_parse(r.body.p, r.body.len, &sse);
    static const char *const head[] = {"response.created", "response.in_progress",
                                       "response.output_item.added",
                                       "response.content_part.added"};
    static const char *const tail[] = {"response.output_text.done", "response.content_part.done",
                                       "response.output_item.done", "response.completed"};
    assert_true(sse.n == 8 + (size_t)out);
    char *acc = calloc(1, strlen(text) + 1);
    for (size_t i = 0; i < sse.n; i++) {
        cJSON *e = cJSON_Parse(sse.ev[i].data);
        assert_non_null(e);
        const char *want = i < 4 ? head[i] : i >= sse.n - 4 ? tail[i - (sse.n - 4)]
                                                            : "response.output_text.delta";
        assert_string_equal(sse.ev[i].event, want);
        assert_string_equal(t_jstr(e, "type"), want);
        assert_int_equal((int)t_jnum(e, "sequence_number"), (int)i);
        if (!strcmp(want, "response.output_text.delta")) {
            assert_true(strlen(acc) + strlen(t_jstr(e, "delta")) <= strlen(text));
            strcat(acc, t_jstr(e, "delta"));
        }
        if (!strcmp(want, "response.output_text.done"))
            assert_string_equal(t_jstr(e, "text"), text);
        if (!strcmp(want, "response.completed")) {
            assert_string_equal(t_jstr(e, "response.status"), "completed");
            assert_string_equal(t_jstr(e, "response.output.0.content.0.text"), text);
        }
        cJSON_Delete(e);
    }
    assert_string_equal(acc, text);
    free(acc);
    t_sse_free(&sse);
    t_resp_free(&r);
    free(text);

    /* max_output_tokens cuts it: status incomplete with its reason. */
    j = post_json("/v1/responses", "{\"model\":\"r1\",\"input\":\"install nginx\","
                  "\"max_output_tokens\":5}", 200);
    assert_string_equal(t_jstr(j, "status"), "incomplete");
    assert_string_equal(t_jstr(j, "incomplete_details.reason"), "max_output_tokens");
    assert_int_equal((int)t_jnum(j, "usage.output_tokens"), 5);
    cJSON_Delete(j);
    expect_400("/v1/responses", "{\"model\":\"r1\"}", "input", "missing_required_parameter");
    expect_400("/v1/responses", "{\"model\":\"r1\",\"input\":[{\"role\":\"wizard\","
               "\"content\":\"x\"}]}", "input", "invalid_value");
    expect_400("/v1/responses", "{\"model\":\"r1\",\"input\":\"x\",\"max_output_tokens\":-5}",
               "max_output_tokens", "integer_below_min_value");
    expect_400("/v1/responses", "{\"model\":\"r1\",\"input\":\"x\",\"instructions\":3}",
               "instructions", "invalid_type");
}

/* Faults and the request log reach the new routes: a 429 aimed at responses only. */
static void test_faults_on_new_routes(void **state) {
    (void)state;
    char err[256];
    assert_int_equal(mock_server_script_faults_for(srv, "next 1 429", "responses", NULL, err,
                                                   sizeof err), 0);
    struct t_resp r;
    assert_int_equal(post("/v1/completions", "{\"model\":\"c\",\"prompt\":\"x\"}", &r), 200);
    t_resp_free(&r);
    assert_int_equal(post("/v1/responses", "{\"model\":\"c\",\"input\":\"x\"}", &r), 429);
    char v[32];
    assert_true(t_header(&r, "retry-after", v, sizeof v));
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "error.code"), "rate_limit_exceeded");
    cJSON_Delete(j);
    t_resp_free(&r);
    assert_int_equal(mock_server_script_faults_for(srv, "next 1 500", "embeddings", NULL, err,
                                                   sizeof err), 0);
    assert_int_equal(post("/v1/embeddings", "{\"model\":\"e\",\"input\":\"x\"}", &r), 500);
    t_resp_free(&r);
    assert_int_equal(mock_server_scripted_pending(srv), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_completions),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_faults_on_new_routes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
