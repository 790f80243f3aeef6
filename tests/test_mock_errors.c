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

/* ---- slow clients ---- */

/* A loopback TCP connection to the server (blocking). */
static int raw_connect(struct mock_server *s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)mock_server_port(s));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* 1 when the server has closed fd (EOF or reset), waiting up to ms; reads and drops any reply
 * bytes first. */
static int closed_within(int fd, int ms) {
    double end = t_now_s() + ms / 1000.0;
    for (;;) {
        int left = (int)((end - t_now_s()) * 1000);
        if (left <= 0) return 0;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        char buf[512];
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got <= 0) return 1;
    }
}

/* Slowloris: one header byte every 200 ms. With header_timeout 600ms the server closes the
 * connection after about 600 ms, not when the client stops (it never does here), and keeps
 * serving others. Before the fix MHD's idle timeout (60 s) restarted with every byte. */
static void test_slow_headers_closed(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start("header_timeout = 600ms", 0);
    int fd = raw_connect(s);
    const char *head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    assert_int_equal(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    double t0 = t_now_s();
    double limit = 5.0 * t_timeout_scale();
    int closed = 0;
    while (t_now_s() - t0 < limit) {
        if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) { closed = 1; break; }
        if (closed_within(fd, 200)) { closed = 1; break; }
    }
    double took = t_now_s() - t0;
    close(fd);
    if (!closed) fail_msg("a header trickled 1 byte/200 ms stayed open %.1f s", took);
    if (took < 0.5) fail_msg("closed after %.3f s, before header_timeout (600 ms)", took);
    char *ok = t_chat_body("m", "hi", 0, 0);
    assert_int_equal(t_http_status(mock_server_url(s), "/v1/chat/completions", "POST", ok, NULL),
                     200);
    cJSON_free(ok);
    mock_server_stop(s);
}

/* A body shorter than its Content-Length: closed after body_timeout, counted from the end of
 * the headers, however slowly the rest trickles. */
static void test_short_body_closed(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start("body_timeout = 600ms", 0);
    for (int trickle = 0; trickle < 2; trickle++) {
        int fd = raw_connect(s);
        const char *req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                          "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\"";
        assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        double t0 = t_now_s();
        int closed = 0;
        while (t_now_s() - t0 < 5.0 * t_timeout_scale()) {
            if (trickle && send(fd, " ", 1, MSG_NOSIGNAL) != 1) { closed = 1; break; }
            if (closed_within(fd, 200)) { closed = 1; break; }
        }
        double took = t_now_s() - t0;
        close(fd);
        if (!closed) fail_msg("a short body (trickle %d) held the connection %.1f s", trickle, took);
        if (took < 0.5) fail_msg("closed after %.3f s, before body_timeout (600 ms)", took);
    }
    mock_server_stop(s);
}

/* Slow but within the limits: a request sent in three pieces 100 ms apart (timeouts 1.5 s) is
 * answered, and both timeouts are settings that GET /admin/config reports. */
static void test_slow_within_limit_answered(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start("header_timeout = 1500ms\nbody_timeout = 1500ms", 0);
    int fd = raw_connect(s);
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    char req[512];
    snprintf(req, sizeof req, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: "
             "close\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    size_t n = strlen(req);
    for (size_t i = 0; i < n; i += n / 3 + 1) {
        size_t k = n - i < n / 3 + 1 ? n - i : n / 3 + 1;
        assert_int_equal(send(fd, req + i, k, MSG_NOSIGNAL), (ssize_t)k);
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    char buf[4096];
    size_t got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        assert_true(poll(&p, 1, (int)(5000 * t_timeout_scale())) == 1);
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        if (got == sizeof buf - 1) break;
    }
    buf[got] = 0;
    close(fd);
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) fail_msg("slow request not answered: %.80s", buf);
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(s), "/admin/config", "GET", NULL, NULL, 0, &r), 200);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "header_timeout"), "1500ms");
    assert_string_equal(t_jstr(j, "body_timeout"), "1500ms");
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_tokens_error_names_field),
        cmocka_unit_test(test_max_tokens_range),
        cmocka_unit_test(test_slow_headers_closed),
        cmocka_unit_test(test_short_body_closed),
        cmocka_unit_test(test_slow_within_limit_answered),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
