/* test_mock_content_tools.c - choosing the tool a mock model calls: both APIs' tools and
 * tool_choice shapes, matching by the prompt, arguments that validate against the tool's
 * schema and repeat, call ids, and the errors a bad request gets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../mockserver/src/content.h"
#include "t_util.h"

static const char openai_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Get the "
    "current weather for a location\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"location\":{\"type\":\"string\"},\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\","
    "\"fahrenheit\"]}},\"required\":[\"location\",\"unit\"],\"additionalProperties\":false},"
    "\"strict\":true}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"install_packages\",\"description\":"
    "\"Install Debian packages with apt\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"packages\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},"
    "\"assume_yes\":{\"type\":\"boolean\"}},\"required\":[\"packages\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"ping\"}}]";

static const char anthropic_tools[] =
    "[{\"name\":\"get_weather\",\"description\":\"Get the current weather in a given location\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\","
    "\"description\":\"The city and state\"},\"unit\":{\"type\":\"string\",\"enum\":"
    "[\"celsius\",\"fahrenheit\"]}},\"required\":[\"location\"]}},"
    "{\"name\":\"run_command\",\"description\":\"Run a shell command on the server\","
    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\"},"
    "\"timeout_s\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":600}},\"required\":"
    "[\"command\",\"timeout_s\"]}}]";

static cJSON *parse(const char *t) {
    cJSON *j = cJSON_Parse(t);
    assert_non_null(j);
    return j;
}

/* The schema of the tool named name in either shape. */
static const cJSON *schema_of(const cJSON *tools, const char *name) {
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *src = fn ? fn : t;
        if (strcmp(cJSON_GetObjectItemCaseSensitive(src, "name")->valuestring, name) == 0)
            return cJSON_GetObjectItemCaseSensitive(src, fn ? "parameters" : "input_schema");
    }
    fail_msg("no tool %s", name);
    return NULL;
}

/* Calls mock_tool_choose; when a tool is called, checks its arguments against its schema and
 * that the text and tree agree. Returns the rc; *name gets the tool (or ""). */
static int choose(const char *tools_text, const char *choice_text, const char *prompt,
                  uint64_t seed, char name[128], cJSON **args) {
    cJSON *tools = parse(tools_text);
    cJSON *choice = choice_text ? parse(choice_text) : NULL;
    struct mock_tool_call c;
    char err[256] = "";
    int rc = mock_tool_choose(tools, choice, "sys", prompt, seed, &c, err, sizeof err);
    name[0] = '\0';
    if (args) *args = NULL;
    if (rc < 0) fail_msg("choose failed: %s", err);
    if (rc == 1) {
        snprintf(name, 128, "%s", c.name);
        const cJSON *s = schema_of(tools, c.name);
        cJSON *from_text = parse(c.arguments);
        assert_true(cJSON_Compare(from_text, c.input, 1));
        if (s != NULL && mock_schema_validate(s, c.input, err, sizeof err) != 0)
            fail_msg("%s arguments %s invalid: %s", c.name, c.arguments, err);
        if (args) *args = from_text;
        else cJSON_Delete(from_text);
    } else {
        assert_null(c.arguments);
        assert_null(c.input);
    }
    mock_tool_call_free(&c);
    assert_null(c.arguments);
    cJSON_Delete(tools);
    cJSON_Delete(choice);
    return rc;
}

static void test_choice_modes(void **state) {
    (void)state;
    static const struct {
        const char *tools, *choice, *prompt, *want; /* want "" = text reply */
    } cases[] = {
        /* auto: the best match, or none */
        {openai_tools, NULL, "What's the weather in Paris?", "get_weather"},
        {openai_tools, "\"auto\"", "Please install nginx and git", "install_packages"},
        {openai_tools, "\"auto\"", "Tell me a joke", ""},
        {openai_tools, NULL, "ping the server", "ping"},
        {anthropic_tools, "{\"type\":\"auto\"}", "run the command uptime", "run_command"},
        {anthropic_tools, NULL, "weather in Boston, in celsius", "get_weather"},
        {anthropic_tools, NULL, "hello", ""},
        /* none */
        {openai_tools, "\"none\"", "What's the weather in Paris?", ""},
        {anthropic_tools, "{\"type\":\"none\"}", "weather in Boston", ""},
        /* required / any: a call even when nothing matches (first tool on no match) */
        {openai_tools, "\"required\"", "Tell me a joke", "get_weather"},
        {openai_tools, "\"required\"", "install htop", "install_packages"},
        {anthropic_tools, "{\"type\":\"any\"}", "hello", "get_weather"},
        {anthropic_tools, "{\"type\":\"any\",\"disable_parallel_tool_use\":true}",
         "run a shell command", "run_command"},
        /* named */
        {openai_tools, "{\"type\":\"function\",\"function\":{\"name\":\"ping\"}}",
         "What's the weather in Paris?", "ping"},
        {anthropic_tools, "{\"type\":\"tool\",\"name\":\"run_command\"}", "weather in Boston",
         "run_command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[128];
        int rc = choose(cases[i].tools, cases[i].choice, cases[i].prompt, 7, name, NULL);
        if (strcmp(name, cases[i].want) != 0)
            fail_msg("case %zu (%s): called \"%s\", want \"%s\"", i, cases[i].prompt, name,
                     cases[i].want);
        assert_int_equal(rc, cases[i].want[0] ? 1 : 0);
    }
}

static void test_arguments_follow_prompt(void **state) {
    (void)state;
    char name[128];
    cJSON *a;
    choose(openai_tools, NULL, "What's the weather in Paris, in fahrenheit?", 1, name, &a);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a, "location")->valuestring, "Paris");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a, "unit")->valuestring, "fahrenheit");
    cJSON_Delete(a);
    choose(openai_tools, NULL, "install the packages nginx, redis and git", 1, name, &a);
    char *p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(a, "packages"));
    assert_string_equal(p, "[\"nginx\",\"redis\",\"git\"]");
    cJSON_free(p);
    cJSON_Delete(a);
    choose(anthropic_tools, "{\"type\":\"tool\",\"name\":\"run_command\"}", "install htop", 1,
           name, &a);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a, "command")->valuestring,
                        "sudo apt-get install -y htop");
    cJSON_Delete(a);
    /* A tool without parameters gets an empty object. */
    choose(openai_tools, "{\"type\":\"function\",\"function\":{\"name\":\"ping\"}}", "x", 1, name,
           &a);
    assert_true(cJSON_IsObject(a) && a->child == NULL);
    cJSON_Delete(a);
}

static void test_deterministic_and_ids(void **state) {
    (void)state;
    const char *prompts[] = {"weather in Rome", "install curl", "run the command ls"};
    int differs = 0;
    for (size_t p = 0; p < 3; p++) {
        for (uint64_t seed = 0; seed < 8; seed++) {
            char n1[128], n2[128];
            cJSON *a1, *a2, *a3;
            const char *tools = p == 2 ? anthropic_tools : openai_tools;
            choose(tools, "\"required\"", prompts[p], seed, n1, &a1);
            choose(tools, "\"required\"", prompts[p], seed, n2, &a2);
            assert_string_equal(n1, n2);
            assert_true(cJSON_Compare(a1, a2, 1));
            choose(tools, "\"required\"", prompts[p], seed + 100, n2, &a3);
            differs |= !cJSON_Compare(a1, a3, 1);
            cJSON_Delete(a1);
            cJSON_Delete(a2);
            cJSON_Delete(a3);
        }
    }
    assert_true(differs); /* seeds change what is not fixed by the prompt */
    char id1[32], id2[32], id3[32];
    mock_tool_call_id("call_", 1, "p", 0, id1, sizeof id1);
    mock_tool_call_id("call_", 1, "p", 0, id2, sizeof id2);
    mock_tool_call_id("call_", 1, "p", 1, id3, sizeof id3);
    assert_string_equal(id1, id2);
    assert_string_not_equal(id1, id3);
    assert_int_equal(strlen(id1), 5 + 24);
    assert_int_equal(strncmp(id1, "call_", 5), 0);
    mock_tool_call_id("toolu_", 1, NULL, 0, id1, sizeof id1);
    assert_int_equal(strlen(id1), 6 + 24);
    mock_tool_call_id("toolu_", 1, NULL, 0, id2, 7);
    assert_string_equal(id2, "toolu_"); /* cut, terminated */
    for (const char *c = id1 + 6; *c; c++)
        assert_non_null(strchr("0123456789abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ", *c));
}

static void test_bad_requests(void **state) {
    (void)state;
    static const struct {
        const char *tools, *choice, *msg;
    } cases[] = {
        {"{}", NULL, "tools: expected an array"},
        {"[1]", NULL, "tools[0]: expected an object"},
        {"[{\"type\":\"function\"}]", NULL, "tools[0]: missing function object"},
        {"[{\"type\":\"function\",\"function\":{\"description\":\"d\"}}]", NULL,
         "tools[0]: missing function.name"},
        {"[{\"name\":\"a\",\"input_schema\":{}},{\"description\":\"no name\"}]", NULL,
         "tools[1]: missing name"},
        {"[{\"name\":\"a\",\"input_schema\":[]}]", NULL,
         "tools[0]: input_schema must be an object"},
        {"[{\"name\":\"a\"}]", "\"sometimes\"", "tool_choice: unknown type \"sometimes\""},
        {"[{\"name\":\"a\"}]", "{\"type\":\"tool\",\"name\":\"b\"}", "no tool named \"b\""},
        {"[{\"name\":\"a\"}]", "{\"type\":\"function\"}", "tool_choice: missing function.name"},
        {"[{\"name\":\"a\"}]", "{\"name\":\"a\"}", "tool_choice: missing type"},
        {"[{\"name\":\"a\"}]", "3", "tool_choice: expected a string or an object"},
        {"[]", "\"required\"", "tools is empty"},
        {"[{\"name\":\"a\",\"input_schema\":{\"$ref\":\"#/x\"}}]", "{\"type\":\"any\"}",
         "tools[0] (a): $ref '#/x' not found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *tools = parse(cases[i].tools);
        cJSON *choice = cases[i].choice ? parse(cases[i].choice) : NULL;
        struct mock_tool_call c;
        char err[256] = "";
        assert_int_equal(mock_tool_choose(tools, choice, NULL, "a", 0, &c, err, sizeof err), -1);
        if (strstr(err, cases[i].msg) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].msg);
        assert_null(c.arguments);
        cJSON_Delete(tools);
        cJSON_Delete(choice);
    }
    /* No tools at all: a text reply. */
    struct mock_tool_call c;
    assert_int_equal(mock_tool_choose(NULL, NULL, NULL, "weather", 0, &c, NULL, 0), 0);
    mock_tool_call_free(NULL);
}

/* The arguments stream in pieces that rebuild them exactly (what the server sends as
 * tool_calls[].function.arguments deltas or input_json_delta partial_json). */
static void test_argument_pieces(void **state) {
    (void)state;
    cJSON *tools = parse(openai_tools);
    struct mock_tool_call c;
    assert_int_equal(mock_tool_choose(tools, NULL, NULL, "install nginx, redis and git", 3, &c,
                                      NULL, 0), 1);
    size_t len = strlen(c.arguments), n = mock_content_split(c.arguments, len, NULL, 0);
    assert_true(n > 5);
    assert_int_equal(n, mock_count_tokens(c.arguments, len));
    size_t *st = calloc(n, sizeof *st);
    assert_non_null(st);
    assert_int_equal(mock_content_split(c.arguments, len, st, n), n);
    char *rebuilt = calloc(len + 1, 1);
    assert_non_null(rebuilt);
    for (size_t i = 0; i < n; i++) {
        size_t end = i + 1 < n ? st[i + 1] : len;
        strncat(rebuilt, c.arguments + st[i], end - st[i]);
    }
    assert_string_equal(rebuilt, c.arguments);
    free(rebuilt);
    free(st);
    mock_tool_call_free(&c);
    cJSON_Delete(tools);
}

/* Parallel calls: the tools the prompt names, best first; off, capped, or named: one. */
static void test_parallel_choice(void **state) {
    (void)state;
    cJSON *tools = parse(openai_tools);
    struct mock_tool_call c[MOCK_TOOL_CALLS_MAX];
    const char *q = "Install the packages nginx and git, then get the weather in Paris";
    assert_int_equal(mock_tool_choose_n(tools, NULL, 1, NULL, q, 7, c, MOCK_TOOL_CALLS_MAX, NULL,
                                        0), 2);
    assert_string_equal(c[0].name, "install_packages");
    assert_string_equal(c[1].name, "get_weather");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c[1].input, "location")->valuestring,
                        "Paris");
    mock_tool_call_free(&c[0]);
    mock_tool_call_free(&c[1]);
    assert_int_equal(mock_tool_choose_n(tools, NULL, 0, NULL, q, 7, c, MOCK_TOOL_CALLS_MAX, NULL,
                                        0), 1); /* parallel off */
    mock_tool_call_free(&c[0]);
    assert_int_equal(mock_tool_choose_n(tools, NULL, 1, NULL, q, 7, c, 1, NULL, 0), 1); /* max */
    assert_string_equal(c[0].name, "install_packages");
    mock_tool_call_free(&c[0]);
    cJSON *named = parse("{\"type\":\"function\",\"function\":{\"name\":\"ping\"}}");
    assert_int_equal(mock_tool_choose_n(tools, named, 1, NULL, q, 7, c, MOCK_TOOL_CALLS_MAX, NULL,
                                        0), 1);
    assert_string_equal(c[0].name, "ping");
    mock_tool_call_free(&c[0]);
    /* A prompt naming one tool's description words only: still one call. */
    assert_int_equal(mock_tool_choose_n(tools, NULL, 1, NULL, "What's the weather in Paris?", 7,
                                        c, MOCK_TOOL_CALLS_MAX, NULL, 0), 1);
    mock_tool_call_free(&c[0]);
    cJSON_Delete(named);
    cJSON_Delete(tools);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choice_modes),
        cmocka_unit_test(test_arguments_follow_prompt),
        cmocka_unit_test(test_deterministic_and_ids),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_argument_pieces),
        cmocka_unit_test(test_parallel_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
