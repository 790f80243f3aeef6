/*
 * test_cli_servers.c - `cx` against a server that checks keys, the way real APIs do: a mock
 * started with required_key, reached with --base-url in both wire formats, with and without
 * "/v1". Keys follow the wire format (OPENAI_API_KEY, CORTEX_OPENAI_API_KEY and KIMI_API_KEY
 * for the OpenAI format, ANTHROPIC_API_KEY for the Anthropic one, or --api-key-env NAME); the
 * format is the one --help promises (anthropic when the only key is an Anthropic one); errors
 * name the URL and the format, never an internal provider name; a bad URL is refused before
 * any query (exit 2), with no request reaching any server.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mock/server.h"
#include "t_cli.h"
#include "t_mock.h"

#define GOOD "sk-good-0123456789"

static struct mock_server *g_mock;
static char g_v1[256];   /* http://127.0.0.1:PORT/v1 */
static char g_host[256]; /* http://127.0.0.1:PORT */

static int group_setup(void **state)
{
    (void)state;
    struct mock_options o;
    mock_options_init(&o);
    o.required_key = GOOD;
    g_mock = t_mock_start_opts(&o, g_v1, sizeof g_v1);
    if (g_mock == NULL)
        return -1;
    snprintf(g_host, sizeof g_host, "%s", mock_server_url(g_mock));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mock_server_stop(g_mock);
    return 0;
}

/* Requests the mock saw on one route ("chat", "messages"). */
static long route_requests(const char *route)
{
    char *js = mock_server_stats_json(g_mock);
    assert_non_null(js);
    cJSON *o = cJSON_Parse(js);
    free(js);
    assert_non_null(o);
    cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "routes"), route);
    cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "requests");
    long v = cJSON_IsNumber(n) ? (long)n->valuedouble : 0;
    cJSON_Delete(o);
    return v;
}

/* One install through url; returns the exit code. Counts what the mock saw per route. */
static int install_via(struct fx *f, const char *url, long *chat, long *messages)
{
    long c0 = route_requests("chat"), m0 = route_requests("messages");
    int rc = run_cx(f, "--base-url", url, "--no-cache", "install", "nginx", NULL);
    *chat = route_requests("chat") - c0;
    *messages = route_requests("messages") - m0;
    return rc;
}

static void test_openai_format_keys(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"OPENAI_API_KEY", "CORTEX_OPENAI_API_KEY", "KIMI_API_KEY"};
    const char *urls[] = {g_v1, g_host};
    for (size_t i = 0; i < 3; i++) {
        for (size_t u = 0; u < 2; u++) {
            setenv(names[i], GOOD, 1);
            long chat, msgs;
            int rc = install_via(f, urls[u], &chat, &msgs);
            unsetenv(names[i]);
            if (rc != 0)
                fail_msg("%s with --base-url %s: exit %d: %s%s", names[i], urls[u], rc, f->out,
                         f->err);
            assert_int_equal(chat, 1); /* the OpenAI format, one request */
            assert_int_equal(msgs, 0);
            assert_non_null(strstr(f->out, "apt-get install -y nginx"));
        }
    }
}

/* An Anthropic key alone: the Anthropic format, as --help says, with or without /v1 (how the
 * Anthropic SDK and mockserver/README write the base); --api anthropic says it explicitly. */
static void test_anthropic_format_key(void **state)
{
    struct fx *f = *state;
    const char *urls[] = {g_v1, g_host};
    setenv("ANTHROPIC_API_KEY", GOOD, 1);
    for (size_t u = 0; u < 2; u++) {
        long chat, msgs;
        int rc = install_via(f, urls[u], &chat, &msgs);
        if (rc != 0)
            fail_msg("--base-url %s: exit %d: %s%s", urls[u], rc, f->out, f->err);
        assert_int_equal(msgs, 1);
        assert_int_equal(chat, 0);
        long m0 = route_requests("messages");
        rc = run_cx(f, "--api", "anthropic", "--base-url", urls[u], "--no-cache", "install",
                    "redis", NULL);
        assert_int_equal(rc, 0);
        assert_int_equal(route_requests("messages") - m0, 1);
    }
    /* With an OpenAI-format key as well, the format is ambiguous: OpenAI unless --api says. */
    setenv("OPENAI_API_KEY", GOOD, 1);
    long chat, msgs;
    assert_int_equal(install_via(f, g_host, &chat, &msgs), 0);
    assert_int_equal(chat, 1);
    assert_int_equal(msgs, 0);
    unsetenv("OPENAI_API_KEY");
    unsetenv("ANTHROPIC_API_KEY");
}

static void test_api_key_env(void **state)
{
    struct fx *f = *state;
    setenv("MY_GATEWAY_KEY", GOOD, 1);
    setenv("OPENAI_API_KEY", "sk-wrong", 1); /* the explicit one wins */
    long c0 = route_requests("chat");
    int rc = run_cx(f, "--api-key-env", "MY_GATEWAY_KEY", "--base-url", g_v1, "--no-cache",
                    "install", "nginx", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, f->err);
    assert_int_equal(route_requests("chat") - c0, 1);
    unsetenv("OPENAI_API_KEY");
    long m0 = route_requests("messages");
    rc = run_cx(f, "--api", "anthropic", "--api-key-env", "MY_GATEWAY_KEY", "--base-url", g_host,
                "--no-cache", "install", "nginx", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(route_requests("messages") - m0, 1);
    unsetenv("MY_GATEWAY_KEY");
    /* An unset variable is a usage error naming it, before anything is sent. */
    long r0 = route_requests("chat");
    rc = run_cx(f, "--api-key-env", "MY_GATEWAY_KEY", "--base-url", g_v1, "install", "nginx",
                NULL);
    assert_int_equal(rc, CX_EXIT_USAGE);
    assert_non_null(strstr(f->err, "--api-key-env MY_GATEWAY_KEY"));
    assert_int_equal(route_requests("chat"), r0);
    rc = run_cx(f, "--api-key-env=", "install", "nginx", NULL);
    assert_int_equal(rc, CX_EXIT_USAGE);
}

/* A refused key: the error names the URL and the wire format, not "kimi_k2" or "claude". */
static void test_refused_key_named_by_url(void **state)
{
    struct fx *f = *state;
    setenv("CORTEX_MAX_RETRIES", "0", 1);
    setenv("OPENAI_API_KEY", "sk-bad", 1);
    int rc = run_cx(f, "--base-url", g_v1, "--no-cache", "install", "nginx", NULL);
    unsetenv("OPENAI_API_KEY");
    assert_int_equal(rc, CX_EXIT_ERROR);
    char want[400];
    snprintf(want, sizeof want, "#1 %s (OpenAI API) 401 authentication failed", g_v1);
    if (strstr(f->out, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, f->out);
    assert_null(strstr(f->out, "kimi_k2"));
    setenv("ANTHROPIC_API_KEY", "sk-bad", 1);
    rc = run_cx(f, "--base-url", g_host, "--no-cache", "install", "nginx", "--json", NULL);
    unsetenv("ANTHROPIC_API_KEY");
    assert_int_equal(rc, CX_EXIT_ERROR);
    snprintf(want, sizeof want, "#1 %s (Anthropic API) 401 authentication failed", g_host);
    cJSON *o = parse_out(f);
    const char *err = get(cJSON_GetArrayItem(get(o, "failed"), 0), "error")->valuestring;
    if (strstr(err, want) == NULL)
        fail_msg("expected \"%s\" in: %s", want, err);
    assert_null(strstr(err, "claude"));
    cJSON_Delete(o);
    /* --api anthropic with only an OpenAI key: that key is not sent in the other format, and
     * cx says so before the 401. */
    setenv("OPENAI_API_KEY", GOOD, 1);
    rc = run_cx(f, "--api", "anthropic", "--base-url", g_host, "--no-cache", "install", "nginx",
                NULL);
    unsetenv("OPENAI_API_KEY");
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, "no Anthropic key is set (ANTHROPIC_API_KEY or --api-key-env"));
    assert_non_null(strstr(f->out, "(Anthropic API) 401"));
    unsetenv("CORTEX_MAX_RETRIES");
}

/* A base URL that cannot work is refused up front: exit 2 (3 s of retries before), one message
 * naming it; from CORTEX_BASE_URL it is a configuration error (exit 1) naming the variable. */
static void test_bad_url_refused_before_any_query(void **state)
{
    struct fx *f = *state;
    setenv("OPENAI_API_KEY", GOOD, 1);
    struct mock_counts before, after;
    mock_server_counts(g_mock, &before);
    const char *bad[] = {"notaurl", "ftp://x", "http://:80/v1", "http://h:99999"};
    const char *why[] = {"is not an http(s) URL", "scheme 'ftp' is not supported", "no host",
                         "out of range"};
    for (size_t i = 0; i < 4; i++) {
        int rc = run_cx(f, "--base-url", bad[i], "install", "nginx", NULL);
        assert_int_equal(rc, CX_EXIT_USAGE);
        assert_non_null(strstr(f->err, "--base-url"));
        if (strstr(f->err, why[i]) == NULL)
            fail_msg("'%s': expected \"%s\" in: %s", bad[i], why[i], f->err);
        assert_null(strstr(f->out, "query failed"));
    }
    setenv("CORTEX_BASE_URL", "ftp://x", 1);
    int rc = run_cx(f, "install", "nginx", "--json", NULL);
    unsetenv("CORTEX_BASE_URL");
    assert_int_equal(rc, CX_EXIT_ERROR);
    cJSON *o = parse_out(f);
    assert_non_null(strstr(get(o, "error")->valuestring, "CORTEX_BASE_URL"));
    cJSON_Delete(o);
    mock_server_counts(g_mock, &after);
    assert_int_equal(after.requests, before.requests);
    unsetenv("OPENAI_API_KEY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_openai_format_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anthropic_format_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_key_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_key_named_by_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url_refused_before_any_query, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
