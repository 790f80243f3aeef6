/* test_parse.c - extracting the JSON block from LLM replies, parsing it, shape errors with
 * their messages, and allocation torture. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cx/parse.h"
#include "cx_internal.h"
#include "t_util.h"

static void expect_slice(const char *content, const char *want) {
    size_t off = 99, n = 99;
    int rc = cx_parse_extract_json(content, strlen(content), &off, &n);
    if (want == NULL) {
        assert_int_equal(rc, CX_ENOENT);
        return;
    }
    if (rc != 0) fail_msg("no JSON found in: %s", content);
    if (strlen(want) != n || memcmp(content + off, want, n) != 0)
        fail_msg("in %s\n  got  '%.*s'\n  want '%s'", content, (int)n, content + off, want);
}

static void test_extract(void **state) {
    (void)state;
    /* The contract's shape. */
    expect_slice("Here is the plan:\n```json\n{\"commands\": [\"a\"]}\n```\nDone.",
                 "{\"commands\": [\"a\"]}");
    /* ```json wins over an earlier plain block holding braces. */
    expect_slice("```\n{\"x\":1}\n```\n```json\n{\"y\":2}\n```", "{\"y\":2}");
    /* JSON in upper case, indented fence, tildes, CRLF line ends. */
    expect_slice("  ```JSON\r\n{\"a\":1}\r\n  ```\r\n", "{\"a\":1}");
    expect_slice("~~~json\n{\"a\":1}\n~~~", "{\"a\":1}");
    /* A plain block that holds braces, after one that does not. */
    expect_slice("```bash\nls\n```\n```\n{\"a\":[1]}\n```", "{\"a\":[1]}");
    /* Unterminated fence runs to the end; a glued closing fence is cut off. */
    expect_slice("```json\n{\"a\":1}", "{\"a\":1}");
    expect_slice("```json\n{\"a\":1}```", "{\"a\":1}");
    expect_slice("```json {\"a\":1}```\nthen text", "{\"a\":1}");
    /* A JSON string may hold ``` mid-line without closing the block. */
    expect_slice("```json\n{\"e\":\"use ```x``` here\"}\n```", "{\"e\":\"use ```x``` here\"}");
    /* No fence: the outermost balanced braces, skipping braces inside strings, preferring an
     * object-looking candidate. */
    expect_slice("Sure! {\"a\": {\"b\": \"}\"}} hope that helps", "{\"a\": {\"b\": \"}\"}}");
    expect_slice("use ${HOME} then {\"a\":1}", "{\"a\":1}");
    expect_slice("a {b} c", "{b}");
    /* Cut-off object: handed over so the parse error can say where. */
    expect_slice("text {\"a\": [1, 2", "{\"a\": [1, 2");
    expect_slice("no json here", NULL);
    expect_slice("", NULL);
    expect_slice("```json\n\n```", NULL);
    size_t off, n;
    assert_int_equal(cx_parse_extract_json(NULL, 3, &off, &n), CX_EINVAL);
    assert_int_equal(cx_parse_extract_json("x", 1, NULL, &n), CX_EINVAL);
    assert_int_equal(cx_parse_extract_json(NULL, 0, &off, &n), CX_ENOENT);
    /* Not NUL-terminated input is never read past len. */
    char raw[8] = {'{', '"', 'a', '"', ':', '1', '}', 'X'};
    assert_int_equal(cx_parse_extract_json(raw, 7, &off, &n), 0);
    assert_int_equal(n, 7);
}

static void test_parse_ok(void **state) {
    (void)state;
    cJSON *o = NULL;
    struct cx_errinfo ei;
    const char *reply = "Plan:\n```json\n{\"package\": \"nginx\", \"commands\": [\"sudo apt-get "
                        "update\", \"sudo apt-get install -y nginx\"], \"explanation\": \"x\"}\n```";
    assert_int_equal(cx_parse_response(reply, 1, &o, &ei), 0);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "commands");
    assert_int_equal(cJSON_GetArraySize(c), 2);
    assert_string_equal(cJSON_GetArrayItem(c, 1)->valuestring, "sudo apt-get install -y nginx");
    cJSON_Delete(o);
    /* Without require_commands, any object will do. */
    o = NULL;
    assert_int_equal(cx_parse_response("{\"component\": \"cpu\"}", 0, &o, &ei), 0);
    cJSON_Delete(o);
    /* An empty commands array is a valid plan. */
    o = NULL;
    assert_int_equal(cx_parse_response("```json\n{\"commands\": []}\n```", 1, &o, &ei), 0);
    cJSON_Delete(o);
}

static void expect_err(const char *content, int req, int code, const char *msg) {
    cJSON *o = (cJSON *)&o; /* must be left untouched */
    cJSON *const sentinel = o;
    struct cx_errinfo ei;
    int rc = cx_parse_response(content, req, &o, &ei);
    if (rc != code) fail_msg("'%s': got %s (%s), want %s", content, cx_err_name(rc), ei.msg, cx_err_name(code));
    assert_ptr_equal(o, sentinel);
    if (strcmp(ei.msg, msg) != 0) fail_msg("'%s': message '%s', want '%s'", content, ei.msg, msg);
}

static void test_parse_errors(void **state) {
    (void)state;
    expect_err("just chat, no JSON", 1, CX_EPARSE, "no JSON block in response");
    /* Offsets count from the start of the whole reply. */
    expect_err("```json\n{\"a\": tru}\n```", 0, CX_EPARSE, "invalid JSON at offset 14");
    expect_err("{\"a\": 1,}", 0, CX_EPARSE, "invalid JSON at offset 8");
    expect_err("```json\n{\"a\":1} trailing\n```", 0, CX_EPARSE, "invalid JSON at offset 16");
    expect_err("x {\"a\": [1, 2", 0, CX_EPARSE, "invalid JSON at offset 13");
    expect_err("```json\n{\"a\": \"\\ud800\"}\n```", 0, CX_EPARSE, "invalid JSON at offset 15");
    expect_err("```json\n[1, 2]\n```", 0, CX_EPROTO, "response is not a JSON object");
    expect_err("```json\n\"str\"\n```", 0, CX_EPROTO, "response is not a JSON object");
    expect_err("{\"explanation\": \"x\"}", 1, CX_EPROTO, "\"commands\" missing");
    expect_err("{\"commands\": \"ls\"}", 1, CX_EPROTO, "\"commands\" is not an array");
    expect_err("{\"commands\": [\"a\", \"b\", \"c\", 4]}", 1, CX_EPROTO, "commands[3] is not a string");
    expect_err("{\"commands\": [null]}", 1, CX_EPROTO, "commands[0] is not a string");
    cJSON *o;
    struct cx_errinfo ei;
    assert_int_equal(cx_parse_response(NULL, 0, &o, &ei), CX_EINVAL);
    assert_int_equal(cx_parse_response("{}", 0, NULL, &ei), CX_EINVAL);
    /* Deep nesting beyond cJSON's limit is a parse error, not a crash or CX_ENOMEM. */
    char deep[2 * 1100 + 16];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = '"';
    deep[k++] = 'a';
    deep[k++] = '"';
    deep[k++] = ':';
    for (int i = 0; i < 1100; i++) deep[k++] = '[';
    for (int i = 0; i < 1100; i++) deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    assert_int_equal(cx_parse_response(deep, 0, &o, &ei), CX_EPARSE);
}

/* Every truncation of a valid reply gives a clean result. */
static void test_truncations(void **state) {
    (void)state;
    const char *reply = "Plan:\n```json\n{\"commands\": [\"sudo apt-get update\", \"x\\u00e9\\\"\"], "
                        "\"n\": -1.5e3, \"t\": true, \"z\": null}\n```\n";
    size_t len = strlen(reply);
    for (size_t k = 0; k <= len; k++) {
        cJSON *o = NULL;
        struct cx_errinfo ei;
        int rc = cx_parse_response_n(reply, k, 1, &o, &ei);
        assert_true(rc == 0 || rc == CX_EPARSE || rc == CX_EPROTO);
        if (rc == 0) cJSON_Delete(o);
        else assert_null(o);
    }
}

static int parse_scenario(void *ctx) {
    const char *reply = ctx;
    cJSON *o = NULL;
    struct cx_errinfo ei;
    int rc = cx_parse_response(reply, 1, &o, &ei);
    if (rc < 0) return rc;
    cJSON_Delete(o);
    return 0;
}

static void test_parse_torture(void **state) {
    (void)state;
    char reply[] = "ok\n```json\n{\"package\": \"nginx\", \"commands\": [\"sudo apt-get update\", "
                   "\"sudo apt-get install -y nginx\"], \"meta\": {\"n\": [1, 2.5, \"x\"]}}\n```";
    long n = t_torture(parse_scenario, reply);
    assert_true(n > 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_parse_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
