/*
 * test_mock_errors.c - the mock server's error paths over real HTTP: 400s whose fields must
 * survive the request's JSON being freed (the max_tokens use-after-free), numbers out of range
 * (non-integers, negatives, past INT_MAX, 1e999) answered 400 as the real APIs answer them,
 * and clients too slow to finish their headers or their body (slowloris, a body shorter than
 * its Content-Length), which the server must close within its configured timeouts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t_mock_http.h"

/* A chat (api 0) or messages (api 1) body with the given raw JSON text as max_tokens. */
static char *body_with_max(int api, const char *field, const char *raw) {
    char *b = malloc(512);
    assert_non_null(b);
    snprintf(b, 512, "{\"model\":\"m\",\"%s\":%s,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"x\"}]}", field, raw);
    (void)api;
    return b;
}

/* The request that read freed memory: the 400's param named a field of the freed JSON. The
 * answer must name max_tokens in param (OpenAI) and in the message (both APIs). */
static void test_max_tokens_error_names_field(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 0);
    const char *url = mock_server_url(s);
    static const char *const fields[] = {"max_tokens", "max_completion_tokens"};
    for (int api = 0; api < 2; api++) {
        for (int f = 0; f < (api == 0 ? 2 : 1); f++) {
            char *b = body_with_max(api, fields[f], "-5");
            struct t_resp r;
            long st = t_http(url, api == 0 ? "/v1/chat/completions" : "/v1/messages", "POST", b,
                             api == 0 ? NULL : t_msg_hdrs(), 0, &r);
            assert_int_equal(st, 400);
            cJSON *j = t_json(&r);
            assert_non_null(j);
            const char *msg = t_jstr(j, "error.message");
            assert_non_null(msg);
            if (strstr(msg, fields[f]) == NULL) fail_msg("message does not name %s: %s", fields[f], msg);
            if (api == 0) {
                const char *param = t_jstr(j, "error.param");
                assert_non_null(param);
                assert_string_equal(param, fields[f]);
            }
            cJSON_Delete(j);
            t_resp_free(&r);
            free(b);
        }
    }
    mock_server_stop(s);
}

/* Out-of-range and mistyped max_tokens: 400 with the OpenAI code the real API gives, the
 * field named; the largest int is accepted. */
static void test_max_tokens_range(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 0);
    const char *url = mock_server_url(s);
    static const struct {
        const char *raw;
        long status;
        const char *code; /* OpenAI error.code; NULL: not checked */
    } cases[] = {
        {"1e999", 400, "integer_above_max_value"},
        {"-1e999", 400, "integer_below_min_value"},
        {"2147483648", 400, "integer_above_max_value"},
        {"99999999999999999999", 400, "integer_above_max_value"},
        {"1.5", 400, "invalid_type"},
        {"0", 400, "integer_below_min_value"},
        {"-5", 400, "integer_below_min_value"},
        {"\"7\"", 400, "invalid_type"},
        {"true", 400, "invalid_type"},
        {"[1]", 400, "invalid_type"},
        {"2147483647", 200, NULL},
        {"1e3", 200, NULL},
        {"7", 200, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int api = 0; api < 2; api++) {
            char *b = body_with_max(api, "max_tokens", cases[i].raw);
            struct t_resp r;
            long st = t_http(url, api == 0 ? "/v1/chat/completions" : "/v1/messages", "POST", b,
                             api == 0 ? NULL : t_msg_hdrs(), 0, &r);
            if (st != cases[i].status)
                fail_msg("max_tokens %s (api %d): status %ld, want %ld: %s", cases[i].raw, api,
                         st, cases[i].status, r.body.p ? r.body.p : "");
            if (st == 400) {
                cJSON *j = t_json(&r);
                assert_non_null(j);
                const char *msg = t_jstr(j, "error.message");
                assert_non_null(msg);
                assert_non_null(strstr(msg, "max_tokens"));
                if (api == 0) {
                    assert_string_equal(t_jstr(j, "error.param"), "max_tokens");
                    const char *code = t_jstr(j, "error.code");
                    if (code == NULL || strcmp(code, cases[i].code) != 0)
                        fail_msg("max_tokens %s: code %s, want %s", cases[i].raw,
                                 code ? code : "(null)", cases[i].code);
                } else {
                    assert_string_equal(t_jstr(j, "error.type"), "invalid_request_error");
                }
                cJSON_Delete(j);
            }
            t_resp_free(&r);
            free(b);
        }
    }
    mock_server_stop(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_tokens_error_names_field),
        cmocka_unit_test(test_max_tokens_range),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
