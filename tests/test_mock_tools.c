/*
 * test_mock_tools.c - tool calls over real HTTP on the three APIs that have them: OpenAI chat
 * (tools, tool_choice, tool_calls, role "tool" results), Anthropic messages (tool_use blocks,
 * tool_choice, tool_result turns, message threads) and the Responses API (function_call items,
 * function_call_output), one call or parallel calls. Asserts the wire shapes the SDKs parse,
 * that streamed arguments reassemble to the non-streaming ones, that arguments repeat for the
 * same request and seed and validate against the tool's schema, and the 400s a bad tools /
 * tool_choice / response_format / tool turn gets in each API's error shape. Structured output
 * is test_mock_structured.c's.
 */
#include "t_mock_tools.h"

#define WEATHER_SCHEMA                                                                            \
    "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"},\"unit\":"          \
    "{\"type\":\"string\",\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"location\","   \
    "\"unit\"]}"

static const char chat_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Current "
    "weather for a city\",\"parameters\":" WEATHER_SCHEMA "}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_package_info\",\"description\":\"Look "
    "up a Debian package\",\"parameters\":" PKG_SCHEMA "}}]";
static const char msg_tools[] =
    "[{\"name\":\"get_weather\",\"description\":\"Current weather for a city\",\"input_schema\":"
    WEATHER_SCHEMA "},{\"name\":\"get_package_info\",\"description\":\"Look up a Debian "
    "package\",\"input_schema\":" PKG_SCHEMA "}]";
static const char resp_tools[] =
    "[{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"Current weather for a "
    "city\",\"parameters\":" WEATHER_SCHEMA "},{\"type\":\"function\",\"name\":"
    "\"get_package_info\",\"description\":\"Look up a Debian package\",\"parameters\":"
    PKG_SCHEMA ",\"strict\":true}]";

/* ---- OpenAI chat ---- */

static char *chat_args(struct mock_server *s, const char *extra, char *id, size_t idcap) {
    struct t_resp r;
    cJSON *j = json_of(&r, postf(s, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":"
                                 "[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s%s}",
                                 pkg_q, chat_tools, extra), 200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "tool_calls");
    assert_true(cJSON_IsNull(t_jget(j, "choices.0.message.content")));
    assert_int_equal(cJSON_GetArraySize(t_jget(j, "choices.0.message.tool_calls")), 1);
    assert_string_equal(t_jstr(j, "choices.0.message.tool_calls.0.type"), "function");
    assert_string_equal(t_jstr(j, "choices.0.message.tool_calls.0.function.name"),
                        "get_package_info");
    const char *cid = t_jstr(j, "choices.0.message.tool_calls.0.id");
    assert_int_equal(strncmp(cid, "call_", 5), 0);
    if (id) snprintf(id, idcap, "%s", cid);
    char *args = strdup(t_jstr(j, "choices.0.message.tool_calls.0.function.arguments"));
    assert_true(t_jnum(j, "usage.completion_tokens") > 3);
    cJSON_Delete(j);
    return args;
}

static void test_chat_tool_call(void **state) {
    (void)state;
    char id[64], id2[64];
    char *args = chat_args(srv, "", id, sizeof id);
    cJSON *a = cJSON_Parse(args);
    assert_non_null(a);
    assert_valid(PKG_SCHEMA, a);
    /* The prompt's package lands in the "package" property. */
    assert_string_equal(t_jstr(a, "package"), "nginx");
    cJSON_Delete(a);
    /* Same request, same seed: same arguments and call id. */
    char *again = chat_args(srv, "", id2, sizeof id2);
    assert_string_equal(args, again);
    assert_string_equal(id, id2);
    free(again);
    /* Another seed may change the wording of free fields, never the shape or the package. */
    struct mock_server *s8 = t_mock_start(NULL, 8);
    char *other = chat_args(s8, "", id2, sizeof id2);
    assert_string_not_equal(id, id2);
    cJSON *o = cJSON_Parse(other);
    assert_valid(PKG_SCHEMA, o);
    assert_string_equal(t_jstr(o, "package"), "nginx");
    cJSON_Delete(o);
    free(other);
    mock_server_stop(s8);
    free(args);
}

static void test_chat_tool_stream(void **state) {
    (void)state;
    char *args = chat_args(srv, "", NULL, 0);
    struct t_resp r;
    struct t_sse sse;
    sse_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"%s\"}],\"tools\":%s}", pkg_q, chat_tools), &sse);
    char acc[4096] = "";
    int pieces = 0, named = 0;
    const char *finish = NULL;
    cJSON *last_usage = NULL;
    for (size_t i = 0; i < sse.n; i++) {
        if (strcmp(sse.ev[i].data, "[DONE]") == 0) {
            assert_int_equal(i, sse.n - 1);
            continue;
        }
        cJSON *c = cJSON_Parse(sse.ev[i].data);
        assert_non_null(c);
        const cJSON *tc = t_jget(c, "choices.0.delta.tool_calls.0");
        if (tc) {
            assert_int_equal((int)t_jnum(tc, "index"), 0);
            if (t_jget(tc, "id")) {
                /* The first chunk names the call: id, type, function.name, empty arguments. */
                assert_int_equal(pieces, 0);
                assert_string_equal(t_jstr(tc, "type"), "function");
                assert_string_equal(t_jstr(tc, "function.name"), "get_package_info");
                assert_string_equal(t_jstr(tc, "function.arguments"), "");
                named++;
            } else {
                strcat(acc, t_jstr(tc, "function.arguments"));
                pieces++;
            }
        }
        const cJSON *fr = t_jget(c, "choices.0.finish_reason");
        if (cJSON_IsString(fr)) finish = strcmp(fr->valuestring, "tool_calls") == 0 ? "ok" : "bad";
        if (cJSON_IsObject(t_jget(c, "usage"))) {
            cJSON_Delete(last_usage);
            last_usage = cJSON_Duplicate(t_jget(c, "usage"), 1);
        }
        cJSON_Delete(c);
    }
    assert_int_equal(named, 1);
    assert_true(pieces > 3); /* the arguments come in several pieces */
    assert_string_equal(acc, args);
    assert_non_null(finish);
    assert_string_equal(finish, "ok");
    assert_non_null(last_usage);
    assert_int_equal((int)t_jnum(last_usage, "completion_tokens"), pieces);
    cJSON_Delete(last_usage);
    t_sse_free(&sse);
    free(args);
}

static void test_chat_tool_choice(void **state) {
    (void)state;
    struct t_resp r;
    /* none: text even though a tool matches */
    cJSON *j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":"
                                 "[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s,"
                                 "\"tool_choice\":\"none\"}", pkg_q, chat_tools), 200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "stop");
    assert_true(strlen(t_jstr(j, "choices.0.message.content")) > 0);
    assert_null(t_jget(j, "choices.0.message.tool_calls"));
    cJSON_Delete(j);
    /* auto with nothing matching: text */
    j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":[{"
                          "\"role\":\"user\",\"content\":\"Tell me a joke\"}],\"tools\":%s}",
                          chat_tools), 200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "stop");
    cJSON_Delete(j);
    /* required: a call even so */
    j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":[{"
                          "\"role\":\"user\",\"content\":\"Tell me a joke\"}],\"tools\":%s,"
                          "\"tool_choice\":\"required\"}", chat_tools), 200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "tool_calls");
    cJSON_Delete(j);
    /* a named function: that one, with arguments valid for its schema */
    j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":[{"
                          "\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s,\"tool_choice\":"
                          "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}",
                          pkg_q, chat_tools), 200);
    assert_string_equal(t_jstr(j, "choices.0.message.tool_calls.0.function.name"), "get_weather");
    cJSON *a = cJSON_Parse(t_jstr(j, "choices.0.message.tool_calls.0.function.arguments"));
    assert_valid(WEATHER_SCHEMA, a);
    cJSON_Delete(a);
    cJSON_Delete(j);
}

static void test_chat_tool_result(void **state) {
    (void)state;
    struct t_resp r;
#define HIST \
        "[{\"role\":\"user\",\"content\":\"%s\"},{\"role\":\"assistant\",\"content\":null," \
        "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":" \
        "\"get_package_info\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":" \
        "\"call_1\",\"content\":\"nginx 1.24.0, depends on libc6\"}]"
    char msgs[1024];
    snprintf(msgs, sizeof msgs, HIST, pkg_q);
    cJSON *j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\""
                                 ":%s,\"tools\":%s}", msgs, chat_tools), 200);
    /* The model answers in text, reporting the tool's result. */
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "stop");
    const char *text = t_jstr(j, "choices.0.message.content");
    assert_non_null(strstr(text, "get_package_info"));
    assert_non_null(strstr(text, "nginx 1.24.0, depends on libc6"));
    cJSON_Delete(j);
    /* A forced tool_choice still calls again. */
    j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":%s,"
                          "\"tools\":%s,\"tool_choice\":\"required\"}", msgs, chat_tools), 200);
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "tool_calls");
    cJSON_Delete(j);
}

static void test_chat_errors(void **state) {
    (void)state;
    const char *u = "[{\"role\":\"user\",\"content\":\"hi json\"}]";
    expect_oa_400("/v1/chat/completions", "tools", "{\"model\":\"m\",\"messages\":%s,\"tools\":"
                  "{}}", u);
    expect_oa_400("/v1/chat/completions", "tools", "{\"model\":\"m\",\"messages\":%s,\"tools\":"
                  "[{\"type\":\"function\",\"function\":{\"description\":\"x\"}}]}", u);
    expect_oa_400("/v1/chat/completions", "tool_choice", "{\"model\":\"m\",\"messages\":%s,"
                  "\"tools\":%s,\"tool_choice\":\"sometimes\"}", u, chat_tools);
    expect_oa_400("/v1/chat/completions", "tool_choice", "{\"model\":\"m\",\"messages\":%s,"
                  "\"tools\":%s,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                  "\"nope\"}}}", u, chat_tools);
    expect_oa_400("/v1/chat/completions", "tool_choice", "{\"model\":\"m\",\"messages\":%s,"
                  "\"tool_choice\":\"auto\"}", u);
    expect_oa_400("/v1/chat/completions", "response_format", "{\"model\":\"m\",\"messages\":%s,"
                  "\"response_format\":{\"type\":\"xml\"}}", u);
    expect_oa_400("/v1/chat/completions", "response_format", "{\"model\":\"m\",\"messages\":%s,"
                  "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                  "{}}}}", u);
    expect_oa_400("/v1/chat/completions", "response_format", "{\"model\":\"m\",\"messages\":[{"
                  "\"role\":\"user\",\"content\":\"hi\"}],\"response_format\":{\"type\":"
                  "\"json_object\"}}");
    /* Tool turns: a tool message needs its id, and the id must answer a call before it. */
    expect_oa_400("/v1/chat/completions", "messages.[1].tool_call_id", "{\"model\":\"m\","
                  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\","
                  "\"content\":\"r\"}]}");
    expect_oa_400("/v1/chat/completions", "messages.[1].role", "{\"model\":\"m\",\"messages\":"
                  "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"tool_call_id\":"
                  "\"call_9\",\"content\":\"r\"}]}");
    expect_oa_400("/v1/chat/completions", "messages", "{\"model\":\"m\",\"messages\":[{\"role\":"
                  "\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
                  "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                  "\"{}\"}}]},{\"role\":\"user\",\"content\":\"y\"}]}");
    /* ... also when the history ends there */
    expect_oa_400("/v1/chat/completions", "messages", "{\"model\":\"m\",\"messages\":[{\"role\":"
                  "\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
                  "\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                  "\"{}\"}}]}]}");
}

/* ---- Anthropic messages ---- */

static void test_messages_tool_use(void **state) {
    (void)state;
    struct t_resp r;
    cJSON *j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":200,"
                                 "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
                                 "\"tools\":%s}", pkg_q, msg_tools), 200);
    assert_string_equal(t_jstr(j, "stop_reason"), "tool_use");
    assert_string_equal(t_jstr(j, "content.0.type"), "tool_use");
    assert_string_equal(t_jstr(j, "content.0.name"), "get_package_info");
    assert_int_equal(strncmp(t_jstr(j, "content.0.id"), "toolu_", 6), 0);
    const cJSON *input = t_jget(j, "content.0.input");
    assert_true(cJSON_IsObject(input));
    assert_valid(PKG_SCHEMA, input);
    assert_string_equal(t_jstr(input, "package"), "nginx");
    char *want = cJSON_PrintUnformatted(input);
    char id[64];
    snprintf(id, sizeof id, "%s", t_jstr(j, "content.0.id"));
    cJSON_Delete(j);

    /* Streamed: content_block_start names the tool_use, input_json_delta pieces rebuild it. */
    struct t_sse sse;
    sse_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":200,\"stream\":"
                     "true,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s}",
                     pkg_q, msg_tools), &sse);
    char acc[4096] = "";
    int pieces = 0, started = 0, stopped = 0;
    for (size_t i = 0; i < sse.n; i++) {
        cJSON *e = cJSON_Parse(sse.ev[i].data);
        assert_non_null(e);
        const char *ty = t_jstr(e, "type");
        if (strcmp(ty, "content_block_start") == 0) {
            assert_string_equal(t_jstr(e, "content_block.type"), "tool_use");
            assert_string_equal(t_jstr(e, "content_block.name"), "get_package_info");
            assert_string_equal(t_jstr(e, "content_block.id"), id);
            started++;
        } else if (strcmp(ty, "content_block_delta") == 0) {
            assert_string_equal(t_jstr(e, "delta.type"), "input_json_delta");
            strcat(acc, t_jstr(e, "delta.partial_json"));
            pieces++;
        } else if (strcmp(ty, "message_delta") == 0) {
            assert_string_equal(t_jstr(e, "delta.stop_reason"), "tool_use");
            assert_int_equal((int)t_jnum(e, "usage.output_tokens"), pieces);
            stopped++;
        }
        cJSON_Delete(e);
    }
    assert_int_equal(started, 1);
    assert_int_equal(stopped, 1);
    assert_true(pieces > 3);
    assert_string_equal(acc, want);
    t_sse_free(&sse);
    cJSON_free(want);

    /* tool_choice: none gives text, any calls, tool names one. */
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":200,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s,"
                          "\"tool_choice\":{\"type\":\"none\"}}", pkg_q, msg_tools), 200);
    assert_string_equal(t_jstr(j, "stop_reason"), "end_turn");
    assert_string_equal(t_jstr(j, "content.0.type"), "text");
    cJSON_Delete(j);
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":200,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a joke\"}],"
                          "\"tools\":%s,\"tool_choice\":{\"type\":\"any\"}}", msg_tools), 200);
    assert_string_equal(t_jstr(j, "stop_reason"), "tool_use");
    cJSON_Delete(j);
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":200,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s,"
                          "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_weather\"}}", pkg_q,
                          msg_tools), 200);
    assert_string_equal(t_jstr(j, "content.0.name"), "get_weather");
    assert_valid(WEATHER_SCHEMA, t_jget(j, "content.0.input"));
    cJSON_Delete(j);
}

static void test_messages_tool_result(void **state) {
    (void)state;
    struct t_resp r;
#define TURNS \
        "[{\"role\":\"user\",\"content\":\"%s\"},{\"role\":\"assistant\",\"content\":[{\"type\":" \
        "\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_package_info\",\"input\":{\"package\":" \
        "\"nginx\"}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":" \
        "\"%s\",\"content\":[{\"type\":\"text\",\"text\":\"nginx 1.24.0\"}]}]}]"
    char msgs[1024];
    snprintf(msgs, sizeof msgs, TURNS, pkg_q, "toolu_1");
    cJSON *j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":500,"
                                 "\"messages\":%s,\"tools\":%s}", msgs, msg_tools), 200);
    assert_string_equal(t_jstr(j, "stop_reason"), "end_turn");
    const char *text = t_jstr(j, "content.0.text");
    assert_non_null(strstr(text, "get_package_info tool returned: nginx 1.24.0"));
    assert_non_null(strstr(text, pkg_q)); /* it answers the question, not the tool_result turn */
    cJSON_Delete(j);
    snprintf(msgs, sizeof msgs, TURNS, pkg_q, "toolu_9");
    expect_an_400("unexpected `tool_use_id`", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":%s}",
                  msgs);
    expect_an_400("without `tool_result`", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
                  "{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":[{"
                  "\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}]},{"
                  "\"role\":\"user\",\"content\":\"y\"}]}");
    expect_an_400("tools[0]", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":"
                  "\"user\",\"content\":\"x\"}],\"tools\":[{\"description\":\"no name\"}]}");
    expect_an_400("tool_choice", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":"
                  "\"user\",\"content\":\"x\"}],\"tools\":%s,\"tool_choice\":{\"type\":\"tool\""
                  ",\"name\":\"nope\"}}", msg_tools);
}

static void test_messages_thread_and_tokens(void **state) {
    (void)state;
    struct t_resp r;
    /* The mock keeps no message threads: a continue is a lost thread (error.details.error_code,
     * which the SDK's thread replays on), a create is answered like any request. */
    cJSON *j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":50,"
                                 "\"thread\":{\"type\":\"continue\",\"previous_message_id\":"
                                 "\"msg_1\"},\"messages\":[{\"role\":\"user\",\"content\":"
                                 "\"hi\"}]}"), 400);
    assert_string_equal(t_jstr(j, "error.details.error_code"), "thread_not_found");
    cJSON_Delete(j);
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":50,"
                          "\"thread\":{\"type\":\"create\"},\"messages\":[{\"role\":\"user\","
                          "\"content\":\"hi\"}]}"), 200);
    assert_string_equal(t_jstr(j, "type"), "message");
    cJSON_Delete(j);
    /* Tool definitions count as input tokens; max_tokens does not cut a tool call. */
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":2,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", pkg_q),
                200);
    double plain = t_jnum(j, "usage.input_tokens");
    cJSON_Delete(j);
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":2,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s}",
                          pkg_q, msg_tools), 200);
    assert_true(t_jnum(j, "usage.input_tokens") > plain + 20);
    assert_string_equal(t_jstr(j, "stop_reason"), "tool_use");
    assert_valid(PKG_SCHEMA, t_jget(j, "content.0.input"));
    cJSON_Delete(j);
}

/* ---- Responses ---- */

static void test_responses_function_call(void **state) {
    (void)state;
    struct t_resp r;
    cJSON *j = json_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"input\":\"%s\","
                                 "\"tools\":%s}", pkg_q, resp_tools), 200);
    assert_string_equal(t_jstr(j, "status"), "completed");
    /* tools and tool_choice echo the request's */
    assert_string_equal(t_jstr(j, "tools.1.name"), "get_package_info");
    assert_string_equal(t_jstr(j, "tool_choice"), "auto");
    assert_int_equal(cJSON_GetArraySize(t_jget(j, "output")), 1);
    assert_string_equal(t_jstr(j, "output.0.type"), "function_call");
    assert_string_equal(t_jstr(j, "output.0.name"), "get_package_info");
    assert_int_equal(strncmp(t_jstr(j, "output.0.call_id"), "call_", 5), 0);
    assert_int_equal(strncmp(t_jstr(j, "output.0.id"), "fc_", 3), 0);
    char *args = strdup(t_jstr(j, "output.0.arguments"));
    char call_id[64];
    snprintf(call_id, sizeof call_id, "%s", t_jstr(j, "output.0.call_id"));
    cJSON *a = cJSON_Parse(args);
    assert_valid(PKG_SCHEMA, a);
    cJSON_Delete(a);
    cJSON_Delete(j);

    struct t_sse sse;
    sse_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"stream\":true,\"input\":"
                     "\"%s\",\"tools\":%s}", pkg_q, resp_tools), &sse);
    char acc[4096] = "";
    int deltas = 0, done = 0;
    for (size_t i = 0; i < sse.n; i++) {
        cJSON *e = cJSON_Parse(sse.ev[i].data);
        assert_non_null(e);
        assert_int_equal((int)t_jnum(e, "sequence_number"), (int)i);
        const char *ty = t_jstr(e, "type");
        assert_string_equal(ty, sse.ev[i].event);
        if (i == 2) {
            assert_string_equal(ty, "response.output_item.added");
            assert_string_equal(t_jstr(e, "item.type"), "function_call");
            assert_string_equal(t_jstr(e, "item.call_id"), call_id);
        }
        if (strcmp(ty, "response.function_call_arguments.delta") == 0) {
            strcat(acc, t_jstr(e, "delta"));
            deltas++;
        } else if (strcmp(ty, "response.function_call_arguments.done") == 0) {
            assert_string_equal(t_jstr(e, "arguments"), args);
            done++;
        }
        if (i + 1 == sse.n) {
            assert_string_equal(ty, "response.completed");
            assert_string_equal(t_jstr(e, "response.output.0.arguments"), args);
        }
        cJSON_Delete(e);
    }
    assert_true(deltas > 3);
    assert_int_equal(done, 1);
    assert_string_equal(acc, args);
    t_sse_free(&sse);

    /* The output of the call answered in a later turn. */
    j = json_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"tools\":%s,\"input\":["
                          "{\"role\":\"user\",\"content\":\"%s\"},{\"type\":\"function_call\","
                          "\"call_id\":\"%s\",\"name\":\"get_package_info\",\"arguments\":"
                          "\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"%s\","
                          "\"output\":\"nginx 1.24.0\"}]}", resp_tools, pkg_q, call_id, call_id),
                200);
    assert_string_equal(t_jstr(j, "output.0.type"), "message");
    assert_non_null(strstr(t_jstr(j, "output.0.content.0.text"), "nginx 1.24.0"));
    cJSON_Delete(j);
    expect_oa_400("/v1/responses", "input", "{\"model\":\"m\",\"input\":[{\"type\":"
                  "\"function_call_output\",\"call_id\":\"call_x\",\"output\":\"r\"}]}");
    expect_oa_400("/v1/responses", "input", "{\"model\":\"m\",\"input\":[{\"type\":"
                  "\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"}]}");
    /* Chained on a previous response (which held the call), the output alone is answered. */
    j = json_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"previous_response_id\":"
                          "\"resp_1\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":"
                          "\"call_x\",\"output\":\"nginx 1.24.0\"}]}"), 200);
    assert_non_null(strstr(t_jstr(j, "output.0.content.0.text"), "The tool returned: nginx 1.24.0"));
    cJSON_Delete(j);
    expect_oa_400("/v1/responses", "tools", "{\"model\":\"m\",\"input\":\"x\",\"tools\":"
                  "[{\"type\":\"function\"}]}");
    /* A hosted tool beside the functions is accepted and never called. */
    j = json_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"input\":\"%s\","
                          "\"tool_choice\":\"required\",\"tools\":[{\"type\":\"web_search\"},"
                          "{\"type\":\"function\",\"name\":\"get_package_info\",\"parameters\":"
                          PKG_SCHEMA "}]}", pkg_q), 200);
    assert_string_equal(t_jstr(j, "output.0.name"), "get_package_info");
    cJSON_Delete(j);
    expect_oa_400("/v1/responses", "tool_choice", "{\"model\":\"m\",\"input\":\"x\","
                  "\"tool_choice\":\"required\",\"tools\":[{\"type\":\"web_search\"}]}");
    free(args);
}

/* ---- parallel calls ---- */

static const char two_q[] = "What is the weather in Paris, and the package info for nginx?";

/* Arguments of the calls in one SSE body, by index (chat deltas, messages blocks, Responses
 * output items), and how many calls were named. */
static int sse_calls(const struct t_sse *sse, int api, char acc[][512]) {
    int named = 0;
    for (size_t i = 0; i < sse->n; i++) {
        if (strcmp(sse->ev[i].data, "[DONE]") == 0) continue;
        cJSON *e = cJSON_Parse(sse->ev[i].data);
        assert_non_null(e);
        if (api == 0) {
            const cJSON *tc = t_jget(e, "choices.0.delta.tool_calls.0");
            if (tc) {
                int k = (int)t_jnum(tc, "index");
                assert_true(k >= 0 && k < 4);
                if (t_jget(tc, "id")) {
                    assert_int_equal(k, named); /* named in order, before its arguments */
                    named++;
                } else {
                    assert_true(k < named);
                    strcat(acc[k], t_jstr(tc, "function.arguments"));
                }
            }
        } else if (api == 1) {
            const char *ty = t_jstr(e, "type");
            if (strcmp(ty, "content_block_start") == 0) {
                assert_int_equal((int)t_jnum(e, "index"), named);
                named++;
            } else if (strcmp(ty, "content_block_delta") == 0) {
                int k = (int)t_jnum(e, "index");
                assert_int_equal(k, named - 1); /* blocks do not interleave */
                strcat(acc[k], t_jstr(e, "delta.partial_json"));
            }
        } else {
            assert_int_equal((int)t_jnum(e, "sequence_number"), (int)i);
            const char *ty = t_jstr(e, "type");
            if (strcmp(ty, "response.output_item.added") == 0) {
                assert_int_equal((int)t_jnum(e, "output_index"), named);
                named++;
            } else if (strcmp(ty, "response.function_call_arguments.delta") == 0) {
                strcat(acc[(int)t_jnum(e, "output_index")], t_jstr(e, "delta"));
            }
        }
        cJSON_Delete(e);
    }
    return named;
}

static void test_parallel_calls(void **state) {
    (void)state;
    struct t_resp r;
    static const char *const path[3] = {"/v1/chat/completions", "/v1/messages", "/v1/responses"};
    static const char *const calls_at[3] = {"choices.0.message.tool_calls", "content", "output"};
    for (int api = 0; api < 3; api++) {
        const char *tools = api == 0 ? chat_tools : api == 1 ? msg_tools : resp_tools;
        char pre[64];
        snprintf(pre, sizeof pre, "%s", api == 1 ? "\"max_tokens\":100," : "");
        char input[160];
        snprintf(input, sizeof input, api == 2 ? "\"input\":\"%s\"" :
                 "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]", two_q);
        cJSON *j = json_of(&r, postf(srv, path[api], &r, "{\"model\":\"m\",%s%s,\"tools\":%s}", pre,
                                     input, tools), 200);
        const cJSON *calls = t_jget(j, calls_at[api]);
        assert_int_equal(cJSON_GetArraySize(calls), 2);
        char want[2][512];
        for (int k = 0; k < 2; k++) {
            const cJSON *c = cJSON_GetArrayItem(calls, k);
            const char *name = t_jstr(c, api == 0 ? "function.name" : "name");
            assert_string_equal(name, k == 0 ? "get_package_info" : "get_weather");
            cJSON *a = api == 1 ? cJSON_Duplicate(t_jget(c, "input"), 1)
                                : cJSON_Parse(t_jstr(c, api == 0 ? "function.arguments"
                                                                 : "arguments"));
            assert_valid(k == 0 ? PKG_SCHEMA : WEATHER_SCHEMA, a);
            assert_string_equal(t_jstr(a, k == 0 ? "package" : "location"),
                                k == 0 ? "nginx" : "Paris");
            char *txt = cJSON_PrintUnformatted(a);
            snprintf(want[k], sizeof want[k], "%s", txt);
            cJSON_free(txt);
            cJSON_Delete(a);
        }
        const char *id0 = t_jstr(calls, api == 2 ? "0.call_id" : "0.id");
        assert_string_not_equal(id0, t_jstr(calls, api == 2 ? "1.call_id" : "1.id"));
        cJSON_Delete(j);
        /* Streamed: both calls, in order, each reassembled. */
        struct t_sse sse;
        sse_of(&r, postf(srv, path[api], &r, "{\"model\":\"m\",\"stream\":true,%s%s,\"tools\":%s}",
                         pre, input, tools), &sse);
        char acc[4][512] = {"", "", "", ""};
        assert_int_equal(sse_calls(&sse, api, acc), 2);
        assert_string_equal(acc[0], want[0]);
        assert_string_equal(acc[1], want[1]);
        t_sse_free(&sse);
    }
    /* Turned off, one call. */
    cJSON *j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\","
                                 "\"parallel_tool_calls\":false,\"messages\":[{\"role\":\"user\","
                                 "\"content\":\"%s\"}],\"tools\":%s}", two_q, chat_tools), 200);
    assert_int_equal(cJSON_GetArraySize(t_jget(j, "choices.0.message.tool_calls")), 1);
    cJSON_Delete(j);
    j = json_of(&r, postf(srv, "/v1/messages", &r, "{\"model\":\"m\",\"max_tokens\":100,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s,"
                          "\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":true}}",
                          two_q, msg_tools), 200);
    assert_int_equal(cJSON_GetArraySize(t_jget(j, "content")), 1);
    cJSON_Delete(j);
    /* Both results answered in one text. */
    j = json_of(&r, postf(srv, "/v1/chat/completions", &r, "{\"model\":\"m\",\"messages\":["
                          "{\"role\":\"user\",\"content\":\"%s\"},{\"role\":\"assistant\","
                          "\"content\":null,\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\","
                          "\"function\":{\"name\":\"get_package_info\",\"arguments\":\"{}\"}},"
                          "{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":"
                          "\"get_weather\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\","
                          "\"tool_call_id\":\"a\",\"content\":\"nginx 1.24\"},{\"role\":\"tool\","
                          "\"tool_call_id\":\"b\",\"content\":\"18C\"}]}", two_q), 200);
    const char *text = t_jstr(j, "choices.0.message.content");
    assert_non_null(strstr(text, "get_package_info tool returned: nginx 1.24"));
    assert_non_null(strstr(text, "get_weather tool returned: 18C"));
    cJSON_Delete(j);
    j = json_of(&r, postf(srv, "/v1/responses", &r, "{\"model\":\"m\",\"input\":[{\"role\":"
                          "\"user\",\"content\":\"%s\"},{\"type\":\"function_call\",\"call_id\":"
                          "\"a\",\"name\":\"get_package_info\",\"arguments\":\"{}\"},{\"type\":"
                          "\"function_call\",\"call_id\":\"b\",\"name\":\"get_weather\","
                          "\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":"
                          "\"a\",\"output\":\"nginx 1.24\"},{\"type\":\"function_call_output\","
                          "\"call_id\":\"b\",\"output\":\"18C\"}]}", two_q), 200);
    text = t_jstr(j, "output.0.content.0.text");
    assert_non_null(strstr(text, "get_package_info tool returned: nginx 1.24"));
    assert_non_null(strstr(text, "get_weather tool returned: 18C"));
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_tool_call),
        cmocka_unit_test(test_chat_tool_stream),
        cmocka_unit_test(test_chat_tool_choice),
        cmocka_unit_test(test_chat_tool_result),
        cmocka_unit_test(test_chat_errors),
        cmocka_unit_test(test_messages_tool_use),
        cmocka_unit_test(test_messages_tool_result),
        cmocka_unit_test(test_messages_thread_and_tokens),
        cmocka_unit_test(test_responses_function_call),
        cmocka_unit_test(test_parallel_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
