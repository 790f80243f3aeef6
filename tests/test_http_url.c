/*
 * test_http_url.c - base URLs (cx/http.h, "Base URLs"): a table of valid and invalid bases for
 * both wire formats with their normalized form or error text; normalizing twice changes nothing;
 * redaction of userinfo and key-like parameters; and, against the in-process mock with a
 * required key, that "http://127.0.0.1:PORT" and "http://127.0.0.1:PORT/v1" reach the right
 * route for both formats, and that a failing request's error never shows the URL's password.
 */
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

#define O CX_API_OPENAI
#define A CX_API_ANTHROPIC

/* One row: the input, and either the normalized base (err NULL) or a text the error must hold. */
struct row {
    enum cx_api api;
    const char *in;
    const char *want;
    const char *err;
};

static const struct row k_rows[] = {
    /* the two spellings, both formats */
    {O, "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1", NULL},
    {O, "http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1", NULL},
    {O, "http://127.0.0.1:8080", "http://127.0.0.1:8080/v1", NULL},
    {O, "http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1", NULL},
    {A, "http://127.0.0.1:8080", "http://127.0.0.1:8080/v1", NULL},
    {A, "http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1", NULL},
    {A, "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1", NULL},
    {A, "http://127.0.0.1:8080/v1//", "http://127.0.0.1:8080/v1", NULL},
    /* the providers' defaults, unchanged */
    {O, "https://api.openai.com/v1", "https://api.openai.com/v1", NULL},
    {O, "https://api.moonshot.ai/v1", "https://api.moonshot.ai/v1", NULL},
    {O, "http://localhost:11434/v1", "http://localhost:11434/v1", NULL},
    {A, "https://api.anthropic.com", "https://api.anthropic.com/v1", NULL},
    {A, "https://api.anthropic.com/v1", "https://api.anthropic.com/v1", NULL},
    /* other paths: OpenAI keeps them as its SDK does, Anthropic appends /v1 as its SDK does */
    {O, "https://host/api/openai/v1", "https://host/api/openai/v1", NULL},
    {O, "https://generativelanguage.googleapis.com/v1beta/openai/",
     "https://generativelanguage.googleapis.com/v1beta/openai", NULL},
    {O, "https://gw.example/acct/gw/openai", "https://gw.example/acct/gw/openai", NULL},
    {A, "https://gw.example/acct/gw/anthropic", "https://gw.example/acct/gw/anthropic/v1", NULL},
    {A, "https://proxy.example/anthropic/v1/", "https://proxy.example/anthropic/v1", NULL},
    /* a pasted endpoint loses it */
    {O, "http://h/v1/chat/completions", "http://h/v1", NULL},
    {O, "http://h/v1/chat/completions/", "http://h/v1", NULL},
    {A, "http://h/v1/messages", "http://h/v1", NULL},
    {A, "http://h/messages", "http://h/v1", NULL},
    /* case, port, IPv6, query, credentials kept for the request */
    {O, "HTTP://API.Example.COM/v1", "http://api.example.com/v1", NULL},
    {A, "HTTPS://Example.com:0443", "https://example.com:443/v1", NULL},
    {O, "http://[::1]:8080", "http://[::1]:8080/v1", NULL},
    {A, "http://[::1]", "http://[::1]/v1", NULL},
    {O, "https://h.example/v1?api-version=2024-06-01", "https://h.example/v1?api-version=2024-06-01", NULL},
    {A, "https://h.example?x=1", "https://h.example/v1?x=1", NULL},
    {O, "http://user:pw@h:1/v1", "http://user:pw@h:1/v1", NULL},
    {O, "http://h:65535", "http://h:65535/v1", NULL},
    {A, "http://h:1/Path%20x", "http://h:1/Path%20x/v1", NULL},
    /* invalid, both formats */
    {O, "notaurl", NULL, "base URL 'notaurl' is not an http(s) URL"},
    {A, "notaurl", NULL, "base URL 'notaurl' is not an http(s) URL"},
    {O, "ftp://x", NULL, "base URL 'ftp://x': scheme 'ftp' is not supported (use http or https)"},
    {A, "ftp://x", NULL, "base URL 'ftp://x': scheme 'ftp' is not supported (use http or https)"},
    {O, "localhost:8080/v1", NULL, "base URL 'localhost:8080/v1' is not an http(s) URL"},
    {A, "file:///etc/passwd", NULL, "scheme 'file' is not supported"},
    {O, "://h/v1", NULL, "is not an http(s) URL"},
    {O, "1http://h", NULL, "is not an http(s) URL"},
    {O, "http:///v1", NULL, "base URL 'http:///v1': has no host"},
    {A, "http://", NULL, "has no host"},
    {O, "http://user:pw@/v1", NULL, "base URL 'http:///v1': has no host"},
    {O, "http://h:0/v1", NULL, "port 0 is out of range (1..65535)"},
    {A, "http://h:65536", NULL, "port 65536 is out of range (1..65535)"},
    {O, "http://h:99999999999999999999/v1", NULL, "is out of range (1..65535)"},
    {O, "http://h:abc/v1", NULL, "port 'abc' is not a number"},
    {A, "http://h:/v1", NULL, "has an empty port after ':'"},
    {O, "http://h ost/v1", NULL, "contains a space at byte 8"},
    {O, " http://h/v1", NULL, "contains a space at byte 0"},
    {A, "http://h/v1\n", NULL, "contains a control character (0x0a) at byte 11"},
    {O, "http://h\t/v1", NULL, "contains a control character (0x09)"},
    {O, "http://h\xc3\xa9/v1", NULL, "contains a non-ASCII byte (0xc3) at byte 8"},
    {O, "http://h^x/v1", NULL, "host 'h^x' has a character URLs do not allow ('^')"},
    {A, "http://[::1/v1", NULL, "IPv6 host without its closing ']'"},
    {O, "http://[::g]/v1", NULL, "IPv6 host '[::g]' has a character URLs do not allow ('g')"},
    {O, "http://[::1]x/v1", NULL, "after the IPv6 host"},
    {A, "http://h/v1#frag", NULL, "has a fragment"},
    {O, "", NULL, "base URL is empty"},
    /* errors name the URL without its credentials */
    {O, "ftp://user:SECRET@x/v1", NULL, "base URL 'ftp://x/v1': scheme 'ftp'"},
    {A, "http://user:SECRET@h:0/v1?api_key=SECRET2", NULL,
     "base URL 'http://h:0/v1?api_key=REDACTED': port 0 is out of range"},
};

static void test_normalize_table(void **state) {
    (void)state;
    size_t n = sizeof k_rows / sizeof k_rows[0];
    assert_true(n >= 25);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &k_rows[i];
        char *out = (char *)"unset";
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_http_base_url_normalize(r->api, r->in, &out, &ei);
        const char *fmt = r->api == A ? "anthropic" : "openai";
        if (r->err == NULL) {
            if (rc != 0 || strcmp(out, r->want) != 0) {
                printf("row %zu (%s '%s'): rc %d, got '%s', want '%s' (%s)\n", i, fmt, r->in, rc,
                       rc == 0 ? out : "-", r->want, rc == 0 ? "" : ei.msg);
                bad++;
            } else {
                /* normalizing twice changes nothing */
                char *again = NULL;
                if (cx_http_base_url_normalize(r->api, out, &again, NULL) != 0 || strcmp(again, out) != 0) {
                    printf("row %zu: not idempotent: '%s' -> '%s'\n", i, out, again ? again : "(error)");
                    bad++;
                }
                cx_free(again);
            }
            if (rc == 0) cx_free(out);
        } else {
            if (rc != CX_EINVAL || out != NULL || ei.code != CX_EINVAL || strstr(ei.msg, r->err) == NULL ||
                strstr(ei.msg, "SECRET") != NULL) {
                printf("row %zu (%s '%s'): rc %d, msg '%s', want CX_EINVAL with '%s'\n", i, fmt, r->in,
                       rc, ei.msg, r->err);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
}

static void test_normalize_args(void **state) {
    (void)state;
    struct cx_errinfo ei;
    char *out = (char *)"unset";
    assert_int_equal(cx_http_base_url_normalize(O, NULL, &out, &ei), CX_EINVAL);
    assert_null(out);
    assert_int_equal(cx_http_base_url_normalize((enum cx_api)7, "http://h", &out, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "api is 7"));
    assert_int_equal(cx_http_base_url_normalize(O, "http://h", NULL, &ei), CX_EINVAL);
}

struct rrow {
    const char *in, *want;
};

static void test_redact(void **state) {
    (void)state;
    static const struct rrow rows[] = {
        {"http://user:SECRET@h:1/v1", "http://h:1/v1"},
        {"https://SECRET@h/v1", "https://h/v1"},
        {"http://u:p@ss:w0rd@h/v1", "http://h/v1"}, /* the last '@' of the authority ends it */
        {"http://h/v1/a@b", "http://h/v1/a@b"},      /* an '@' in the path is not userinfo */
        {"http://h/v1", "http://h/v1"},
        {"notaurl", "notaurl"},
        {"user:SECRET@ollama:11434", "ollama:11434"},
        {"http://h/v1?key=SECRET", "http://h/v1?key=REDACTED"},
        {"http://h/v1?a=1&API_KEY=SECRET&b=2", "http://h/v1?a=1&API_KEY=REDACTED&b=2"},
        {"http://h/v1?access_token=SECRET;token=SECRET", "http://h/v1?access_token=REDACTED;token=REDACTED"},
        {"http://h/cb#access_token=SECRET&state=x", "http://h/cb#access_token=REDACTED&state=x"},
        {"http://h/v1?keyboard=us&monkey=1", "http://h/v1?keyboard=us&monkey=1"},
        {"http://h/v1?key", "http://h/v1?key"},
        {"http://h/v\n1", "http://h/v%0A1"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[128];
        assert_int_equal(cx_http_url_redact(rows[i].in, out, sizeof out), 0);
        if (strcmp(out, rows[i].want) != 0) printf("redact '%s' gave '%s'\n", rows[i].in, out);
        assert_string_equal(out, rows[i].want);
    }
    /* too small: a NUL-terminated prefix of the redacted form, no secret */
    char small[12];
    assert_int_equal(cx_http_url_redact("http://user:SECRET@host.example/v1", small, sizeof small), CX_ETOOBIG);
    assert_string_equal(small, "http://host");
    assert_int_equal(cx_http_url_redact("http://h/v1?key=SECRETSECRET", small, sizeof small), CX_ETOOBIG);
    assert_null(strstr(small, "SECRET"));
    assert_int_equal(cx_http_url_redact(NULL, small, sizeof small), CX_EINVAL);
    assert_string_equal(small, "");
    assert_int_equal(cx_http_url_redact("x", NULL, 4), CX_EINVAL);
    assert_int_equal(cx_http_url_redact("x", small, 0), CX_EINVAL);
}

/* The transfer's URL: the normalized base, the endpoint, then the query. */
static void test_xfer_url(void **state) {
    (void)state;
    static const struct {
        enum cx_api api;
        const char *base, *url;
    } rows[] = {
        {O, "http://h:1", "http://h:1/v1/chat/completions"},
        {O, "http://h:1/v1/", "http://h:1/v1/chat/completions"},
        {A, "http://h:1", "http://h:1/v1/messages"},
        {A, "http://h:1/v1", "http://h:1/v1/messages"},
        {O, "https://h/v1?api-version=3", "https://h/v1/chat/completions?api-version=3"},
        {A, "https://h/anthropic?x=1", "https://h/anthropic/v1/messages?x=1"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cx_http_request r;
        cx_http_request_init(&r);
        r.api = rows[i].api;
        r.base_url = rows[i].base;
        r.model = "m";
        r.prompt = "p";
        struct cx_http_xfer *x;
        assert_int_equal(cx_http_xfer_new(&r, &x, NULL), 0);
        assert_string_equal(cx_http_xfer_url(x), rows[i].url);
        cx_http_xfer_free(x);
    }
    /* a bad base fails before any I/O, naming the URL redacted */
    struct cx_http_request r;
    cx_http_request_init(&r);
    r.base_url = "ftp://u:SECRET@x";
    r.model = "m";
    r.prompt = "p";
    struct cx_http_xfer *x = (struct cx_http_xfer *)&r;
    struct cx_errinfo ei;
    assert_int_equal(cx_http_xfer_new(&r, &x, &ei), CX_EINVAL);
    assert_null(x);
    assert_string_equal(ei.msg, "base URL 'ftp://x': scheme 'ftp' is not supported (use http or https)");
}

/* ---- against the mock ---- */

#define KEY "sk-url-test-key-1234"

static const char *endpoint_of(enum cx_api api) { return api == A ? "messages" : "chat/completions"; }
static const char *format_of(enum cx_api api) { return api == A ? "anthropic" : "openai"; }

/* One small request to url in format api (key may be NULL); returns its code, ei filled. */
static int call(struct cx_http_client *c, enum cx_api api, const char *url, const char *key,
                struct cx_errinfo *ei) {
    struct cx_http_request r;
    cx_http_request_init(&r);
    r.api = api;
    r.base_url = url;
    r.api_key = key;
    r.model = "m";
    r.prompt = "p";
    r.deadline = t_deadline_ms(5000);
    struct cx_http_result res;
    memset(ei, 0, sizeof *ei);
    int rc = cx_http_client_complete(c, &r, &res, ei);
    cx_http_result_clear(&res);
    return rc;
}

/* msg holds want (printing both when not). */
static void expect_in(const char *msg, const char *want) {
    if (strstr(msg, want) == NULL) printf("msg: %s\nwant: %s\n", msg, want);
    assert_non_null(strstr(msg, want));
}

/* routes.<name>.requests from the mock's stats. */
static long route_requests(struct mock_server *m, const char *route) {
    char *js = mock_server_stats_json(m);
    assert_non_null(js);
    cJSON *j = cJSON_Parse(js);
    free(js);
    assert_non_null(j);
    const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "routes"), route), "requests");
    long v = cJSON_IsNumber(r) ? (long)r->valuedouble : 0;
    cJSON_Delete(j);
    return v;
}

/* The mock counts a request when its reply has gone out, which may be just after the client has
 * the whole answer: wait (with a deadline) until the route's count reaches want, then return it. */
static long route_reaches(struct mock_server *m, const char *route, long want) {
    uint64_t dl = t_deadline_ms(5000);
    long v;
    while ((v = route_requests(m, route)) < want && !cx_deadline_expired(dl)) cx_sleep_ns(CX_NSEC_PER_MSEC);
    return v;
}

/* A mock that accepts KEY only (each format's header). */
static struct mock_server *keyed_mock(void) {
    struct mock_options o;
    mock_options_init(&o);
    o.time_scale = 0.001;
    o.required_key = KEY;
    char base[128];
    struct mock_server *m = t_mock_start_opts(&o, base, sizeof base);
    assert_non_null(m);
    return m;
}

static void test_mock_both_spellings(void **state) {
    (void)state;
    struct mock_server *m = keyed_mock();
    const char *root = mock_server_url(m); /* "http://127.0.0.1:PORT", no /v1 */
    struct cx_http_client *c;
    assert_int_equal(cx_http_client_new(NULL, &c, NULL), 0);
    long want_chat = 0, want_messages = 0;
    for (int api = 0; api < 2; api++) {
        for (int spelling = 0; spelling < 4; spelling++) {
            char url[160];
            snprintf(url, sizeof url, "%s%s", root,
                     spelling == 0 ? "" : spelling == 1 ? "/" : spelling == 2 ? "/v1" : "/v1/");
            for (int stream = 0; stream < 2; stream++) {
                struct cx_http_request r;
                cx_http_request_init(&r);
                r.api = (enum cx_api)api;
                r.base_url = url;
                r.api_key = KEY;
                r.model = api == A ? "claude-sonnet-4-20250514" : "kimi-k2-instruct";
                r.prompt = "Install package: nginx";
                r.stream = stream;
                r.max_tokens = 64;
                r.deadline = t_deadline_ms(5000);
                struct cx_http_result res;
                struct cx_errinfo ei;
                memset(&ei, 0, sizeof ei);
                int rc = cx_http_client_complete(c, &r, &res, &ei);
                if (rc != 0) printf("%s '%s' stream %d: %s\n", format_of(r.api), url, stream, ei.msg);
                assert_int_equal(rc, 0);
                assert_int_equal(res.status, 200);
                assert_non_null(res.content);
                assert_true(strlen(res.content) > 0);
                assert_true(res.prompt_tokens > 0);
                cx_http_result_clear(&res);
                if (api == A) want_messages++;
                else want_chat++;
                assert_int_equal(route_reaches(m, "chat", want_chat), want_chat);
                assert_int_equal(route_reaches(m, "messages", want_messages), want_messages);
                assert_int_equal(route_requests(m, "other"), 0);
            }
        }
    }
    /* the key is checked on both spellings: without it each format gets its 401 */
    for (int api = 0; api < 2; api++) {
        struct cx_errinfo ei;
        assert_int_equal(call(c, (enum cx_api)api, root, "sk-wrong-key", &ei), CX_EAUTH);
        assert_int_equal(ei.detail, 401);
        /* the message names the wire format and the URL posted to */
        char want[200];
        snprintf(want, sizeof want, "from the %s API at %s/v1/%s", format_of((enum cx_api)api), root,
                 endpoint_of((enum cx_api)api));
        expect_in(ei.msg, want);
        assert_null(strstr(ei.msg, "sk-wrong-key"));
    }
    cx_http_client_free(c);
    mock_server_stop(m);
}

/* A password in the URL never reaches a message: not from a refused connection, not from an
 * HTTP error, whichever spelling. */
static void test_url_credentials_not_shown(void **state) {
    (void)state;
    struct cx_http_client *c;
    assert_int_equal(cx_http_client_new(NULL, &c, NULL), 0);
    int fd;
    int port = t_refused_port(&fd);
    char url[160];
    snprintf(url, sizeof url, "http://user:SECRET-PW-42@127.0.0.1:%d/v1", port);
    for (int api = 0; api < 2; api++) {
        struct cx_errinfo ei;
        assert_int_equal(call(c, (enum cx_api)api, url, NULL, &ei), CX_ECONN);
        assert_null(strstr(ei.msg, "SECRET"));
        char want[160];
        snprintf(want, sizeof want, "%s request to http://127.0.0.1:%d/v1/%s failed", format_of((enum cx_api)api),
                 port, endpoint_of((enum cx_api)api));
        expect_in(ei.msg, want);
    }
    close(fd);

    /* an HTTP error from a server reached with credentials in its URL */
    struct mock_server *m = keyed_mock();
    snprintf(url, sizeof url, "http://user:SECRET-PW-42@127.0.0.1:%d?token=SECRET-TOKEN", mock_server_port(m));
    for (int api = 0; api < 2; api++) {
        struct cx_errinfo ei;
        assert_int_equal(call(c, (enum cx_api)api, url, NULL, &ei), CX_EAUTH);
        assert_null(strstr(ei.msg, "SECRET"));
        expect_in(ei.msg, "?token=REDACTED");
    }
    mock_server_stop(m);
    cx_http_client_free(c);
}

/* Allocation torture: normalizing, and a transfer whose URL needs normalizing and redacting. */
static int scenario(void *ctx) {
    (void)ctx;
    char *out;
    int rc = cx_http_base_url_normalize(A, "HTTPS://u:pw@Example.com:0443/x?key=1", &out, NULL);
    if (rc < 0) return rc;
    cx_free(out);
    struct cx_http_request r;
    cx_http_request_init(&r);
    r.api = O;
    r.base_url = "http://user:SECRET@h:1?api_key=abc";
    r.model = "m";
    r.prompt = "p";
    struct cx_http_xfer *x;
    rc = cx_http_xfer_new(&r, &x, NULL);
    if (rc < 0) return rc;
    cx_http_xfer_free(x);
    return 0;
}

static void test_torture(void **state) {
    (void)state;
    assert_true(t_torture(scenario, NULL) >= 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),  cmocka_unit_test(test_normalize_args),
        cmocka_unit_test(test_redact),           cmocka_unit_test(test_xfer_url),
        cmocka_unit_test(test_mock_both_spellings), cmocka_unit_test(test_url_credentials_not_shown),
        cmocka_unit_test(test_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
