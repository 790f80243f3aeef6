/*
 * test_mock_fixtures.c - the mock server's fixtures over real HTTP: rules matched in order, each
 * matcher (route, model, model_regex, system, user, user_regex, turns), replies in every API's
 * wire shape (streaming and not) with their usage and latency, tool calls from a fixture on
 * chat, messages and Responses (streamed arguments reassembled; a fixture's text replaces a
 * call), faults and API errors from a fixture, sequences (the last reply repeats, or they
 * cycle), strict misses answered 404 in the route's error shape naming the closest rule, bad
 * files refused naming file, rule and field (the old fixtures kept), the admin routes, and
 * reloads racing concurrent requests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "t_mock_calls.h"
#include "t_mock_http.h"

static struct mock_server *start_fx(const char *path, int strict, const char *config)
{
    struct mock_options o;
    struct mock_server *s = NULL;
    char err[512] = "";
    mock_options_init(&o);
    o.fixtures_path = path;
    o.strict = strict;
    o.config_text = config;
    if (mock_server_start(&o, &s, err, sizeof err) != 0) fail_msg("mock_server_start: %s", err);
    return s;
}

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *p = t_path(dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* The text of a chat reply (non-streaming); the caller frees it. */
static char *chat_text(struct mock_server *s, const char *model, const char *sys,
                       const char *user, long *status)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", model);
    cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
    if (sys) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", sys);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", user);
    cJSON_AddItemToArray(msgs, m);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    struct t_resp r;
    *status = t_http(mock_server_url(s), "/v1/chat/completions", "POST", body, NULL, 0, &r);
    cJSON_free(body);
    char *out = NULL;
    if (*status == 200) {
        cJSON *j = t_json(&r);
        out = strdup(t_jstr(j, "choices.0.message.content"));
        cJSON_Delete(j);
    } else {
        out = strdup(r.body.p ? r.body.p : "");
    }
    t_resp_free(&r);
    return out;
}

static void expect_text(struct mock_server *s, const char *model, const char *sys,
                        const char *user, const char *want)
{
    long st;
    char *t = chat_text(s, model, sys, user, &st);
    if (st != 200 || strcmp(t, want))
        fail_msg("model %s user \"%s\": got %ld \"%.200s\", wanted \"%s\"", model, user, st, t,
                 want);
    free(t);
}

/* No fixture matched: generated content (longer than any fixture text here). */
static void expect_generated(struct mock_server *s, const char *model, const char *user)
{
    long st;
    char *t = chat_text(s, model, NULL, user, &st);
    assert_int_equal(st, 200);
    assert_true(strlen(t) > 20);
    free(t);
}

static const char *const RULES =
    "{\"rules\": [\n"
    " {\"name\": \"first\", \"match\": {\"user\": \"order\"}, \"reply\": {\"text\": \"one\"}},\n"
    " {\"name\": \"second\", \"match\": {\"user\": \"order\"}, \"reply\": {\"text\": \"two\"}},\n"
    " {\"name\": \"msgs-only\", \"match\": {\"route\": \"messages\", \"user\": \"route\"},\n"
    "  \"reply\": {\"text\": \"messages route\"}},\n"
    " {\"name\": \"chat-path\", \"match\": {\"route\": \"/v1/chat/completions\", \"user\": \"route\"},\n"
    "  \"reply\": {\"text\": \"chat route\"}},\n"
    " {\"match\": {\"model\": \"exact-1\"}, \"reply\": {\"text\": \"model exact\"}},\n"
    " {\"match\": {\"model_regex\": \"^gpt-[0-9]+o?$\"}, \"reply\": {\"text\": \"model regex\"}},\n"
    " {\"match\": {\"system\": \"pirate\"}, \"reply\": {\"text\": \"arr\"}},\n"
    " {\"match\": {\"user_regex\": \"^weather in [A-Z][a-z]+\\\\?$\"},\n"
    "  \"reply\": {\"text\": \"sunny\"}},\n"
    " {\"match\": {\"turns\": 3, \"user\": \"turns\"}, \"reply\": {\"text\": \"three turns\"}},\n"
    " {\"match\": {\"user\": \"turns\"}, \"reply\": {\"text\": \"not three\"}},\n"
    " {\"name\": \"seq\", \"match\": {\"user\": \"sequence\"},\n"
    "  \"replies\": [{\"text\": \"s1\"}, {\"text\": \"s2\"}, {\"text\": \"s3\"}]},\n"
    " {\"name\": \"cyc\", \"match\": {\"user\": \"cycle\"}, \"after\": \"cycle\",\n"
    "  \"replies\": [{\"text\": \"c1\"}, {\"text\": \"c2\"}]}\n"
    "]}\n";

static void test_order_and_matchers(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    char *path = write_tmp(dir, "rules.json", RULES);
    struct mock_server *s = start_fx(path, 0, NULL);
    expect_text(s, "m", NULL, "rule order", "one");     /* the first of two matching rules */
    expect_text(s, "m", NULL, "route", "chat route");   /* msgs-only skipped: other route */
    expect_text(s, "exact-1", NULL, "x", "model exact");
    expect_text(s, "gpt-4o", NULL, "x", "model regex");
    expect_generated(s, "gpt-4o-mini", "x");            /* neither model rule */
    expect_text(s, "m", "You are a pirate.", "x", "arr");
    expect_text(s, "m", NULL, "weather in Paris?", "sunny");
    expect_generated(s, "m", "the weather in Paris?");  /* the regex is anchored */
    expect_text(s, "m", NULL, "turns", "not three");    /* one turn */
    expect_text(s, "m", "sys", "turns", "not three");   /* two turns */

    /* Three turns: system, assistant, user. */
    const char *three = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"a\"},"
                        "{\"role\":\"assistant\",\"content\":\"b\"},"
                        "{\"role\":\"user\",\"content\":\"turns\"}]}";
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), "/v1/chat/completions", "POST", three, NULL, 0,
                            &r), 200);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "choices.0.message.content"), "three turns");
    cJSON_Delete(j);
    t_resp_free(&r);

    /* The messages route, Anthropic shape. */
    char *mb = t_messages_body("claude", "route", 0);
    assert_int_equal(t_http(mock_server_url(s), "/v1/messages", "POST", mb, t_msg_hdrs(), 0, &r),
                     200);
    cJSON_free(mb);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "content.0.text"), "messages route");
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(s);
    free(path);
    t_rmrf(dir);
    free(dir);
}

static void test_sequences(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    char *path = write_tmp(dir, "rules.json", RULES);
    struct mock_server *s = start_fx(path, 0, NULL);
    expect_text(s, "m", NULL, "sequence", "s1");
    expect_text(s, "m", NULL, "sequence", "s2");
    expect_text(s, "m", NULL, "sequence", "s3");
    expect_text(s, "m", NULL, "sequence", "s3"); /* the last one repeats */
    expect_text(s, "m", NULL, "cycle", "c1");
    expect_text(s, "m", NULL, "cycle", "c2");
    expect_text(s, "m", NULL, "cycle", "c1");    /* "after": "cycle" starts over */
    expect_generated(s, "gpt-4o-mini", "unmatched");
    /* A reload starts every sequence again. */
    char err[512];
    assert_int_equal(mock_server_load_fixtures(s, NULL, err, sizeof err), 0);
    expect_text(s, "m", NULL, "sequence", "s1");
    /* The admin listing counts calls per rule. */
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures", "GET", NULL, NULL, 0, &r), 200);
    cJSON *j = t_json(&r);
    assert_int_equal((int)t_jnum(j, "generation"), 2);
    assert_string_equal(t_jstr(j, "rules.10.name"), "seq");
    assert_int_equal((int)t_jnum(j, "rules.10.calls"), 1);
    assert_int_equal((int)t_jnum(j, "rules.10.replies"), 3);
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(s);
    free(path);
    t_rmrf(dir);
    free(dir);
}

static const char *const SHAPES =
    "{\"rules\": [\n"
    " {\"match\": {\"user\": \"usage\"}, \"reply\": {\"text\": \"Fixed words here.\",\n"
    "   \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 22}}},\n"
    " {\"match\": {\"user\": \"slow\"}, \"reply\": {\"text\": \"late\", \"latency\": \"2s\"}},\n"
    " {\"match\": {\"user\": \"busy\"}, \"reply\": {\"fault\": \"503\", \"retry_after\": \"7s\"}},\n"
    " {\"match\": {\"user\": \"drop\"}, \"reply\": {\"fault\": \"reset\"}},\n"
    " {\"match\": {\"user\": \"teapot\"}, \"reply\": {\"error\": {\"status\": 422,\n"
    "   \"type\": \"unprocessable\", \"message\": \"nope\", \"code\": \"bad_thing\"}}},\n"
    " {\"match\": {}, \"reply\": {\"text\": \"Hello from the fixture.\"}}\n"
    "]}\n";

static void test_wire_shapes(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    char *path = write_tmp(dir, "shapes.json", SHAPES);
    struct mock_server *s = start_fx(path, 0, "time_scale = 0.01\n");
    const char *url = mock_server_url(s);
    struct t_resp r;
    cJSON *j;

    /* usage overrides the counts, the text stays. */
    char *b = t_chat_body("m", "usage", 0, 0);
    assert_int_equal(t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r), 200);
    cJSON_free(b);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "choices.0.message.content"), "Fixed words here.");
    assert_int_equal((int)t_jnum(j, "usage.prompt_tokens"), 11);
    assert_int_equal((int)t_jnum(j, "usage.completion_tokens"), 22);
    assert_int_equal((int)t_jnum(j, "usage.total_tokens"), 33);
    cJSON_Delete(j);
    t_resp_free(&r);

    /* Streams: chat (pieces joined give the text, usage chunk), messages, responses. */
    b = t_chat_body("m", "anything", 1, 1);
    assert_int_equal(t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r), 200);
    cJSON_free(b);
    struct t_sse sse;
    t_sse_parse(r.body.p, r.body.len, &sse);
    char joined[256] = "";
    for (size_t i = 0; i + 1 < sse.n; i++) {
        cJSON *c = cJSON_Parse(sse.ev[i].data);
        assert_non_null(c);
        const cJSON *d = t_jget(c, "choices.0.delta.content");
        if (cJSON_IsString(d))
            strncat(joined, d->valuestring, sizeof joined - strlen(joined) - 1);
        cJSON_Delete(c);
    }
    assert_string_equal(joined, "Hello from the fixture.");
    assert_string_equal(sse.ev[sse.n - 1].data, "[DONE]");
    t_sse_free(&sse);
    t_resp_free(&r);

    b = t_messages_body("claude", "anything", 1);
    assert_int_equal(t_http(url, "/v1/messages", "POST", b, t_msg_hdrs(), 0, &r), 200);
    cJSON_free(b);
    t_sse_parse(r.body.p, r.body.len, &sse);
    joined[0] = 0;
    for (size_t i = 0; i < sse.n; i++)
        if (!strcmp(sse.ev[i].event, "content_block_delta")) {
            cJSON *c = cJSON_Parse(sse.ev[i].data);
            strncat(joined, t_jstr(c, "delta.text"), sizeof joined - strlen(joined) - 1);
            cJSON_Delete(c);
        }
    assert_string_equal(joined, "Hello from the fixture.");
    assert_string_equal(sse.ev[sse.n - 1].event, "message_stop");
    t_sse_free(&sse);
    t_resp_free(&r);

    assert_int_equal(t_http(url, "/v1/responses", "POST",
                            "{\"model\":\"m\",\"input\":\"anything\"}", NULL, 0, &r), 200);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "output.0.content.0.text"), "Hello from the fixture.");
    cJSON_Delete(j);
    t_resp_free(&r);
    assert_int_equal(t_http(url, "/v1/completions", "POST",
                            "{\"model\":\"m\",\"prompt\":\"anything\"}", NULL, 0, &r), 200);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "choices.0.text"), "Hello from the fixture.");
    cJSON_Delete(j);
    t_resp_free(&r);

    /* Latency: the configured delay is the fixture's, scaled like every delay (2s * 0.01). */
    mock_server_reset_stats(s);
    b = t_chat_body("m", "slow", 0, 0);
    assert_int_equal(t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r), 200);
    cJSON_free(b);
    t_resp_free(&r);
    j = t_mock_stats(s);
    double cfg = t_jnum(j, "histograms.configured.max");
    if (cfg < 19.8 || cfg > 20.2) fail_msg("configured delay %.3f ms, wanted 20", cfg);
    cJSON_Delete(j);

    /* A status fault with the fixture's Retry-After; a connection fault; an API error. */
    b = t_chat_body("m", "busy", 0, 0);
    assert_int_equal(t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r), 503);
    cJSON_free(b);
    char h[32];
    assert_true(t_header(&r, "retry-after", h, sizeof h));
    assert_string_equal(h, "7");
    t_resp_free(&r);
    b = t_chat_body("m", "drop", 0, 0);
    t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r);
    cJSON_free(b);
    assert_int_not_equal(r.cc, CURLE_OK); /* half a body, then a reset */
    t_resp_free(&r);
    b = t_chat_body("m", "teapot", 0, 0);
    assert_int_equal(t_http(url, "/v1/chat/completions", "POST", b, NULL, 0, &r), 422);
    cJSON_free(b);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "error.type"), "unprocessable");
    assert_string_equal(t_jstr(j, "error.message"), "nope");
    assert_string_equal(t_jstr(j, "error.code"), "bad_thing");
    cJSON_Delete(j);
    t_resp_free(&r);
    b = t_messages_body("claude", "teapot", 0);
    assert_int_equal(t_http(url, "/v1/messages", "POST", b, t_msg_hdrs(), 0, &r), 422);
    cJSON_free(b);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "type"), "error");
    assert_string_equal(t_jstr(j, "error.type"), "unprocessable");
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(s);
    free(path);
    t_rmrf(dir);
    free(dir);
}

/* ---- tool calls ---- */

static const char *const TOOLS =
    "{\"rules\": [\n"
    " {\"name\": \"two-calls\", \"match\": {\"user\": \"weather and package\"},\n"
    "  \"reply\": {\"tool_calls\": [\n"
    "    {\"name\": \"get_weather\", \"id\": \"call_fixture1\",\n"
    "     \"arguments\": {\"location\": \"Paris\", \"unit\": \"celsius\",\n"
    "                   \"note\": \"a \\\"quoted\\\" word\"}},\n"
    "    {\"name\": \"get_package_info\",\n"
    "     \"arguments\": {\"package\": \"nginx\", \"include_deps\": true, \"limit\": 3,\n"
    "                   \"tags\": [\"web\", \"proxy\"]}}],\n"
    "   \"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 7}}},\n"
    " {\"name\": \"text-wins\", \"match\": {\"model\": \"text-wins\"},\n"
    "  \"reply\": {\"text\": \"No tool today.\"}},\n"
    " {\"name\": \"override\", \"match\": {\"model\": \"override\"},\n"
    "  \"reply\": {\"tool_calls\": [{\"name\": \"get_weather\"}]}}\n"
    "]}\n";

static void tool_reply(struct mock_server *s, int api, int stream, const char *model,
                       const char *user, const char *tools, struct t_calls *c)
{
    static const char *const path[3] = {"/v1/chat/completions", "/v1/messages", "/v1/responses"};
    char body[2048];
    if (api == 2)
        snprintf(body, sizeof body, "{\"model\":\"%s\",\"stream\":%s,\"input\":\"%s\"%s%s}",
                 model, stream ? "true" : "false", user, tools ? ",\"tools\":" : "",
                 tools ? tools : "");
    else
        snprintf(body, sizeof body, "{\"model\":\"%s\",\"max_tokens\":300,\"stream\":%s%s,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]%s%s}", model,
                 stream ? "true" : "false", stream && api == 0 ? ",\"stream_options\":"
                 "{\"include_usage\":true}" : "", user, tools ? ",\"tools\":" : "",
                 tools ? tools : "");
    struct t_resp r;
    long st = t_http(mock_server_url(s), path[api], "POST", body, api == 1 ? t_msg_hdrs() : NULL,
                     0, &r);
    if (st != 200) fail_msg("%s: %ld %.300s", path[api], st, r.body.p);
    if (stream) {
        struct t_sse sse;
        t_sse_parse(r.body.p, r.body.len, &sse);
        t_calls_of_stream(api, &sse, c);
        t_sse_free(&sse);
    } else {
        cJSON *j = t_json(&r);
        t_calls_of_body(api, j, c);
        cJSON_Delete(j);
    }
    t_resp_free(&r);
}

static void test_tool_call_replies(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    char *path = write_tmp(dir, "tools.json", TOOLS);
    struct mock_server *s = start_fx(path, 0, "time_scale = 0.01\n");
    /* The fixture's arguments as compact JSON: what every route must send. */
    cJSON *fx = cJSON_Parse(TOOLS);
    char *want[2];
    for (int k = 0; k < 2; k++)
        want[k] = cJSON_PrintUnformatted(t_jget(fx, k ? "rules.0.reply.tool_calls.1.arguments"
                                                      : "rules.0.reply.tool_calls.0.arguments"));
    cJSON_Delete(fx);
    static const char *const finish[3] = {"tool_calls", "tool_use", "completed"};
    for (int api = 0; api < 3; api++) {
        char id1[64] = "";
        for (int stream = 0; stream < 2; stream++) {
            struct t_calls c;
            tool_reply(s, api, stream, "m", "weather and package", NULL, &c);
            if (c.n != 2) fail_msg("api %d stream %d: %d calls", api, stream, c.n);
            assert_string_equal(c.name[0], "get_weather");
            assert_string_equal(c.name[1], "get_package_info");
            assert_string_equal(c.args[0], want[0]);
            assert_string_equal(c.args[1], want[1]);
            assert_string_equal(c.id[0], "call_fixture1"); /* the fixture's id, verbatim */
            /* no id given: one made as for a generated call, the same streamed or not */
            assert_int_equal(strncmp(c.id[1], api == 1 ? "toolu_" : "call_", api == 1 ? 6 : 5),
                             0);
            if (stream)
                assert_string_equal(c.id[1], id1);
            snprintf(id1, sizeof id1, "%s", c.id[1]);
            assert_string_equal(c.finish, finish[api]);
            assert_int_equal((int)c.ctok, 7); /* the fixture's usage */
        }
    }
    /* A fixture's tool calls replace the call the request's tools lead to; its text replaces
     * any call (without the fixture the same request calls get_package_info). */
    static const char pkg_tools[] =
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_package_info\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"package\":{\"type\":\"string\"}},\"required\":"
        "[\"package\"]}}}]";
    const char *q = "What is the package info for nginx?";
    for (int stream = 0; stream < 2; stream++) {
        struct t_calls c;
        tool_reply(s, 0, stream, "m", q, pkg_tools, &c);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.name[0], "get_package_info");
        tool_reply(s, 0, stream, "override", q, pkg_tools, &c);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.name[0], "get_weather");
        assert_string_equal(c.args[0], "{}"); /* no arguments given */
        assert_string_equal(c.finish, "tool_calls");
        tool_reply(s, 0, stream, "text-wins", q, pkg_tools, &c);
        assert_int_equal(c.n, 0);
        assert_string_equal(c.finish, "stop");
    }
    long st;
    char *t = chat_text(s, "text-wins", NULL, q, &st);
    assert_string_equal(t, "No tool today.");
    free(t);
    /* The legacy completions API has no tool calls: a clear 400 naming the rule. */
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), "/v1/completions", "POST",
                            "{\"model\":\"m\",\"prompt\":\"weather and package\"}", NULL, 0, &r),
                     400);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "error.code"), "fixture_unsupported");
    assert_non_null(strstr(t_jstr(j, "error.message"), "rules[0] \"two-calls\""));
    cJSON_Delete(j);
    t_resp_free(&r);
    for (int k = 0; k < 2; k++)
        cJSON_free(want[k]);
    mock_server_stop(s);
    free(path);
    t_rmrf(dir);
    free(dir);
}

static void test_strict_miss(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    char *path = write_tmp(dir, "rules.json", RULES);
    struct mock_server *s = start_fx(path, 1, NULL);
    struct t_resp r;
    /* Closest: "msgs-only" holds its route and fails only user (1 held beats 0). */
    char *b = t_messages_body("claude", "no such prompt", 0);
    assert_int_equal(t_http(mock_server_url(s), "/v1/messages", "POST", b, t_msg_hdrs(), 0, &r),
                     404);
    cJSON_free(b);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "type"), "error");
    assert_string_equal(t_jstr(j, "error.type"), "not_found_error");
    const char *m = t_jstr(j, "error.message");
    if (!strstr(m, "rules[2] \"msgs-only\"") || !strstr(m, "rules.json") ||
        !strstr(m, "failed: user (wanted \"route\")"))
        fail_msg("strict message: %s", m);
    cJSON_Delete(j);
    t_resp_free(&r);
    /* OpenAI shape: "chat-path" holds its route (1 held, 1 failed); "msgs-only" fails both. */
    b = t_chat_body("exact-2", "zzz", 0, 0);
    assert_int_equal(t_http(mock_server_url(s), "/v1/chat/completions", "POST", b, NULL, 0, &r),
                     404);
    cJSON_free(b);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "error.code"), "fixture_not_found");
    m = t_jstr(j, "error.message");
    if (!strstr(m, "Closest: rules[3] \"chat-path\"") || !strstr(m, "1 matcher held"))
        fail_msg("strict message: %s", m);
    cJSON_Delete(j);
    t_resp_free(&r);
    expect_text(s, "m", NULL, "rule order", "one"); /* a match still answers */
    mock_server_stop(s);
    free(path);
    t_rmrf(dir);
    free(dir);
}

static void expect_bad(const char *dir, const char *text, const char *const *want)
{
    char *path = write_tmp(dir, "bad.json", text);
    struct mock_options o;
    struct mock_server *s = NULL;
    char err[512] = "";
    mock_options_init(&o);
    o.fixtures_path = path;
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), MOCK_EFIXTURES);
    assert_null(s);
    assert_non_null(strstr(err, path));
    for (size_t i = 0; want[i]; i++)
        if (!strstr(err, want[i])) fail_msg("error \"%s\" lacks \"%s\"", err, want[i]);
    free(path);
}

static void test_bad_files(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    expect_bad(dir, "{\"rules\": [", (const char *const[]){"not valid JSON", NULL});
    expect_bad(dir, "{\"rulez\": []}", (const char *const[]){"unknown top-level field 'rulez'",
                                                             NULL});
    expect_bad(dir, "[{\"reply\": {\"text\": \"a\"}}, {\"reply\": {\"latency\": \"12x\"}}]",
               (const char *const[]){"rules[1].reply.latency", "12x", NULL});
    expect_bad(dir, "[{\"reply\": {\"txt\": \"a\"}}]",
               (const char *const[]){"rules[0].reply.txt: unknown field", NULL});
    expect_bad(dir, "[{\"match\": {\"user_regex\": \"(\"}, \"reply\": {}}]",
               (const char *const[]){"rules[0].match.user_regex", "bad regex", NULL});
    expect_bad(dir, "[{\"match\": {\"route\": \"/v2/chat\"}, \"reply\": {}}]",
               (const char *const[]){"rules[0].match.route", "unknown route /v2/chat", NULL});
    expect_bad(dir, "[{\"match\": {}}]", (const char *const[]){"rules[0].reply", NULL});
    expect_bad(dir, "[{\"replies\": [{}, {\"fault\": \"boom\"}]}]",
               (const char *const[]){"rules[0].replies[1].fault", "unknown fault 'boom'", NULL});
    expect_bad(dir, "[{\"reply\": {\"error\": {\"status\": 200}}}]",
               (const char *const[]){"rules[0].reply.error.status", NULL});
    expect_bad(dir, "[{\"reply\": {}, \"after\": \"loop\"}]",
               (const char *const[]){"rules[0].after", NULL});
    expect_bad(dir, "[{\"match\": {\"route\": \"embeddings\"}, \"reply\": {\"text\": \"x\"}}]",
               (const char *const[]){"rules[0].reply.text", NULL});
    expect_bad(dir, "[{\"reply\": {\"text\": \"x\", \"tool_calls\": [{\"name\": \"f\"}]}}]",
               (const char *const[]){"rules[0].reply", "cannot be combined with text", NULL});
    expect_bad(dir, "[{\"reply\": {\"tool_calls\": [{\"name\": \"f\"}, {\"name\": \"g\"}, "
               "{\"name\": \"h\"}, {\"name\": \"i\"}, {\"name\": \"j\"}]}}]",
               (const char *const[]){"rules[0].reply.tool_calls", "at most 4", NULL});
    expect_bad(dir, "[{\"reply\": {\"tool_calls\": [{\"name\": \"f\", \"id\": \"a\\\"b\"}]}}]",
               (const char *const[]){"rules[0].reply.tool_calls[0].id", NULL});
    expect_bad(dir, "[{\"reply\": {\"tool_calls\": [{\"name\": \"f\", \"arguments\": [1]}]}}]",
               (const char *const[]){"rules[0].reply.tool_calls[0].arguments", NULL});
    expect_bad(dir, "[{\"match\": {\"route\": \"completions\"}, \"reply\": {\"tool_calls\": "
               "[{\"name\": \"f\"}]}}]",
               (const char *const[]){"rules[0].reply.tool_calls", "no tool calls", NULL});

    /* A failed reload keeps the old fixtures (API and admin route). */
    char *good = write_tmp(dir, "good.json", RULES);
    struct mock_server *s = start_fx(good, 0, NULL);
    char *bad = write_tmp(dir, "bad.json", "[{\"reply\": {\"latency\": -1}}]");
    char err[512];
    assert_int_equal(mock_server_load_fixtures(s, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "rules[0].reply.latency"));
    expect_text(s, "m", NULL, "order", "one");
    char body[600];
    snprintf(body, sizeof body, "{\"path\": \"%s\"}", bad);
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures/reload", "POST", body, NULL, 0,
                            &r), 400);
    cJSON *j = t_json(&r);
    assert_non_null(strstr(t_jstr(j, "error.message"), "rules[0].reply.latency"));
    cJSON_Delete(j);
    t_resp_free(&r);
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures", "PUT", "[{\"reply\": 3}]", NULL,
                            0, &r), 400);
    t_resp_free(&r);
    expect_text(s, "m", NULL, "order", "one");
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures", "GET", NULL, NULL, 0, &r), 200);
    j = t_json(&r);
    assert_int_equal((int)t_jnum(j, "generation"), 1);
    assert_string_equal(t_jstr(j, "source"), good);
    cJSON_Delete(j);
    t_resp_free(&r);
    /* PUT replaces; DELETE empties (generated content again). */
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures", "PUT",
                            "[{\"reply\": {\"text\": \"put\"}}]", NULL, 0, &r), 200);
    t_resp_free(&r);
    expect_text(s, "m", NULL, "order", "put");
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures", "DELETE", NULL, NULL, 0, &r),
                     200);
    t_resp_free(&r);
    expect_generated(s, "m", "order");
    /* POST /admin/fixtures/reload with no body re-reads the last file loaded. */
    assert_int_equal(t_http(mock_server_url(s), "/admin/fixtures/reload", "POST", NULL, NULL, 0,
                            &r), 200);
    t_resp_free(&r);
    expect_text(s, "m", NULL, "order", "one");
    mock_server_stop(s);
    free(good);
    free(bad);
    t_rmrf(dir);
    free(dir);
}

/* ---- reloads racing requests ---- */

#define RACE_THREADS 4
#define RACE_REQS 40

struct race {
    struct mock_server *s;
    _Atomic int bad, done;
};

static void *race_client(void *arg)
{
    struct race *rc = arg;
    for (int i = 0; i < RACE_REQS; i++) {
        char *b = t_chat_body("m", "race", i % 2, 0);
        struct t_resp r;
        long st = t_http(mock_server_url(rc->s), "/v1/chat/completions", "POST", b, NULL, 0, &r);
        cJSON_free(b);
        int ok = st == 200 && r.body.p &&
                 ((strstr(r.body.p, "alpha") && !strstr(r.body.p, "omega")) ||
                  (strstr(r.body.p, "omega") && !strstr(r.body.p, "alpha")));
        if (!ok)
            atomic_fetch_add(&rc->bad, 1);
        t_resp_free(&r);
    }
    atomic_fetch_add(&rc->done, 1);
    return NULL;
}

static void test_reload_under_load(void **state)
{
    (void)state;
    char *dir = t_tmpdir("fx");
    const char *a = "[{\"match\": {\"user\": \"race\"}, \"replies\": [{\"text\": \"alpha one\"},"
                    "{\"text\": \"alpha two\", \"itl\": \"1ms\"}], \"after\": \"cycle\"}]";
    const char *o = "[{\"match\": {\"user_regex\": \"^ra.e$\"}, \"reply\": {\"text\": "
                    "\"omega, the last\", \"latency\": \"1ms\"}}]";
    char *pa = write_tmp(dir, "a.json", a);
    struct mock_server *s = start_fx(pa, 1, NULL);
    struct race rc = {s, 0, 0};
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_client, &rc), 0);
    char err[512];
    int reloads = 0;
    while (atomic_load(&rc.done) < RACE_THREADS) {
        if (reloads % 2)
            assert_int_equal(mock_server_load_fixtures(s, pa, err, sizeof err), 0);
        else
            assert_int_equal(mock_server_set_fixtures(s, o, strlen(o), "omega", err, sizeof err),
                             0);
        reloads++;
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&rc.bad), 0);
    assert_true(reloads > 1);
    struct mock_counts mc;
    t_mock_counts(s, &mc);
    assert_int_equal(mc.status_2xx, RACE_THREADS * RACE_REQS);
    mock_server_stop(s);
    free(pa);
    t_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_matchers),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_wire_shapes),
        cmocka_unit_test(test_tool_call_replies),
        cmocka_unit_test(test_strict_miss),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_reload_under_load),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
