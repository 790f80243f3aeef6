/*
 * test_mock_structured.c - structured output over real HTTP on the three APIs: OpenAI chat's
 * response_format (json_schema, streamed too, and json_object), Anthropic's output_config.format
 * (and the beta's output_format) and the Responses API's text.format. Asserts that the reply's
 * text is a JSON document valid against the schema, with the prompt's package in it, and the
 * 400s a bad format gets in each API's error shape.
 */
#include "t_mock_tools.h"

/* ---- OpenAI chat ---- */

static void test_chat_response_format(void **state) {
    (void)state;
    static const char schema[] =
        "{\"type\":\"object\",\"properties\":{\"package\":{\"type\":\"string\"},\"commands\":"
        "{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},\"risk\":{\"type\":"
        "\"string\",\"enum\":[\"low\",\"high\"]}},\"required\":[\"package\",\"commands\","
        "\"risk\"],\"additionalProperties\":false}";
    struct t_resp r;
    cJSON *j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":"
                                 "[{\"role\":\"user\",\"content\":\"Install redis\"}],"
                                 "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                                 "{\"name\":\"plan\",\"strict\":true,\"schema\":%s}}}", schema),
                       200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "stop");
    cJSON *c = cJSON_Parse(t_jstr(j, "choices.0.message.content"));
    assert_non_null(c);
    assert_valid(schema, c);
    assert_string_equal(t_jstr(c, "package"), "redis");
    cJSON_Delete(c);
    cJSON_Delete(j);
    /* Streamed, the pieces join to a document that validates too. */
    struct t_sse sse;
    sse_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"stream\":true,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"Install redis\"}],"
                     "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                     "\"plan\",\"schema\":%s}}}", schema), &sse);
    char acc[8192] = "";
    for (size_t i = 0; i + 1 < sse.n; i++) {
        cJSON *k = cJSON_Parse(sse.ev[i].data);
        const cJSON *d = t_jget(k, "choices.0.delta.content");
        if (cJSON_IsString(d)) strcat(acc, d->valuestring);
        cJSON_Delete(k);
    }
    c = cJSON_Parse(acc);
    assert_non_null(c);
    assert_valid(schema, c);
    cJSON_Delete(c);
    t_sse_free(&sse);
    /* json_object: some JSON object */
    j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":[{"
                          "\"role\":\"system\",\"content\":\"Answer in JSON.\"},{\"role\":"
                          "\"user\",\"content\":\"Install redis\"}],\"response_format\":{"
                          "\"type\":\"json_object\"}}"), 200);
    c = cJSON_Parse(t_jstr(j, "choices.0.message.content"));
    assert_true(cJSON_IsObject(c));
    cJSON_Delete(c);
    cJSON_Delete(j);
}

/* ---- Anthropic messages ---- */

static void test_messages_output_format(void **state) {
    (void)state;
    struct t_resp r;
    /* output_config.format (and the beta's output_format): the text block is the document. */
    for (int beta = 0; beta < 2; beta++) {
        cJSON *j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":"
                                     "900,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
                                     "%s{\"type\":\"json_schema\",\"schema\":%s}%s}", pkg_q,
                                     beta ? "\"output_format\":" : "\"output_config\":{\"format\":",
                                     PKG_SCHEMA, beta ? "" : "}"), 200);
        assert_string_equal(t_jstr(j, "stop_reason"), "end_turn");
        cJSON *c = cJSON_Parse(t_jstr(j, "content.0.text"));
        assert_non_null(c);
        assert_valid(PKG_SCHEMA, c);
        assert_string_equal(t_jstr(c, "package"), "nginx");
        cJSON_Delete(c);
        cJSON_Delete(j);
    }
    expect_an_400("output_config.format.schema", "{\"model\":\"m\",\"max_tokens\":5,"
                  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"output_config\":"
                  "{\"format\":{\"type\":\"json_schema\"}}}");
    expect_an_400("output_format.type", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{"
                  "\"role\":\"user\",\"content\":\"x\"}],\"output_format\":{\"type\":\"xml\"}}");
}

/* ---- Responses ---- */

static void test_responses_text_format(void **state) {
    (void)state;
    struct t_resp r;
    cJSON *j = json_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"input\":\"Install "
                                 "redis\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":"
                                 "\"pkg\",\"strict\":true,\"schema\":%s}}}", PKG_SCHEMA), 200);
    assert_string_equal(t_jstr(j, "text.format.name"), "pkg");
    cJSON *c = cJSON_Parse(t_jstr(j, "output.0.content.0.text"));
    assert_non_null(c);
    assert_valid(PKG_SCHEMA, c);
    assert_string_equal(t_jstr(c, "package"), "redis");
    cJSON_Delete(c);
    cJSON_Delete(j);
    expect_oa_400("/v1/responses", "text.format", "{\"model\":\"m\",\"input\":\"x\",\"text\":"
                  "{\"format\":{\"type\":\"json_schema\",\"schema\":{}}}}");
    expect_oa_400("/v1/responses", "text", "{\"model\":\"m\",\"input\":\"x\",\"text\":1}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_response_format),
        cmocka_unit_test(test_messages_output_format),
        cmocka_unit_test(test_responses_text_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
