/*
 * t_mock_tools.h - what the tool and structured-output tests share (test_mock_tools.c,
 * test_mock_structured.c): each includer's own server srv (seed 7, started by setup), the
 * package schema and question, POSTing a printf-formatted body, the reply as JSON or SSE, the
 * check that a value validates against a schema, and the 400s in OpenAI's and Anthropic's error
 * shapes.
 */
#ifndef T_MOCK_TOOLS_H
#define T_MOCK_TOOLS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../mockserver/src/content.h"
#include "t_mock_http.h"

static struct mock_server *srv;

static inline int setup(void **state) {
    if (t_mock_group_setup(state) != 0) return -1;
    srv = t_mock_start(NULL, 7);
    return 0;
}

static inline int teardown(void **state) {
    mock_server_stop(srv);
    return t_mock_group_teardown(state);
}

#define PKG_SCHEMA                                                                                \
    "{\"type\":\"object\",\"properties\":{\"package\":{\"type\":\"string\"},\"include_deps\":"  \
    "{\"type\":\"boolean\"},\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":20}},"     \
    "\"required\":[\"package\",\"include_deps\",\"limit\"],\"additionalProperties\":false}"

static const char pkg_q[] = "What is the package info for nginx?";

/* POSTs body (printf-formatted) to path; the messages route gets its version header. */
static inline long postf(struct mock_server *s, const char *path, struct t_resp *r,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline long postf(struct mock_server *s, const char *path, struct t_resp *r,
                         const char *fmt, ...) {
    char *body = malloc(16384);
    assert_non_null(body);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, 16384, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < 16384);
    long st = t_http(mock_server_url(s), path, "POST", body,
                     strstr(path, "messages") ? t_msg_hdrs() : NULL, 0, r);
    free(body);
    return st;
}

static inline cJSON *json_of(struct t_resp *r, long st, long want) {
    if (st != want) fail_msg("status %ld (want %ld): %.400s", st, want, r->body.p);
    cJSON *j = t_json(r);
    t_resp_free(r);
    return j;
}

/* The schema a tool's arguments must satisfy, and the check. */
static inline void assert_valid(const char *schema_text, const cJSON *value) {
    cJSON *schema = cJSON_Parse(schema_text);
    char err[200] = "";
    assert_non_null(schema);
    if (mock_schema_validate(schema, value, err, sizeof err) != 0) {
        char *v = cJSON_PrintUnformatted(value);
        fail_msg("%s does not validate: %s", v, err);
    }
    cJSON_Delete(schema);
}

/* The concatenated data of one SSE body's events, read by fn. */
static inline void sse_of(struct t_resp *r, long st, struct t_sse *sse) {
    if (st != 200) fail_msg("status %ld: %.300s", st, r->body.p);
    t_sse_parse(r->body.p, r->body.len, sse);
    t_resp_free(r);
}

/* The OpenAI error's param (and that the message says something). */
static inline void expect_oa_400(const char *path, const char *param, const char *fmt, ...) {
    char body[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    struct t_resp r;
    long st = t_http(mock_server_url(srv), path, "POST", body, NULL, 0, &r);
    cJSON *j = json_of(&r, st, 400);
    assert_string_equal(t_jstr(j, "error.type"), "invalid_request_error");
    if (strcmp(t_jstr(j, "error.param"), param) != 0)
        fail_msg("param %s (want %s): %s", t_jstr(j, "error.param"), param,
                 t_jstr(j, "error.message"));
    assert_true(strlen(t_jstr(j, "error.message")) > 10);
    cJSON_Delete(j);
}

static inline void expect_an_400(const char *want, const char *fmt, ...) {
    char body[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    struct t_resp r;
    long st = t_http(mock_server_url(srv), "/v1/messages", "POST", body, t_msg_hdrs(), 0, &r);
    cJSON *j = json_of(&r, st, 400);
    assert_string_equal(t_jstr(j, "type"), "error");
    assert_string_equal(t_jstr(j, "error.type"), "invalid_request_error");
    if (!strstr(t_jstr(j, "error.message"), want))
        fail_msg("message %s lacks %s", t_jstr(j, "error.message"), want);
    cJSON_Delete(j);
}

#endif
