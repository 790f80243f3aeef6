/*
 * test_config.c - settings: defaults, every variable, every bad value's message, the data
 * directory fallbacks, the two execution-mode variables, the process environment, torture.
 *
 * Most tests drive cx_config_load with a fake environment (a NULL-terminated name/value list),
 * so they never touch the real one; one test uses setenv for cx_config_load_env.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/config.h"
#include "cx/limiter.h"
#include "t_util.h"

/* A fake environment: pairs of name, value, ended by a NULL name. */
static const char *fake_get(const char *name, void *ctx) {
    const char *const *env = ctx;
    for (; env[0] != NULL; env += 2)
        if (strcmp(env[0], name) == 0) return env[1];
    return NULL;
}

static void assert_defaults(const struct cx_config *c) {
    assert_true(c->rate_limit_rps == 5.0);
    assert_true(c->rate_limit_burst == 4.0); /* one token below the provider's max(1, rps) */
    assert_true(c->tokens_per_minute == 0.0);
    assert_int_equal(c->thread_pool_size, 10);
    assert_int_equal(c->db_pool_size, 5);
    assert_int_equal(c->cache_max_entries, 500);
    assert_true(c->cache_similarity_threshold == 0.86);
    assert_int_equal(c->exec_mode, CX_MODE_FREE);
    assert_int_equal(c->gil_switch_interval_ns, 5 * CX_NSEC_PER_MSEC);
    assert_int_equal(c->io_design, CX_IO_AUTO);
    assert_null(c->data_dir);
    assert_null(c->base_url);
    assert_null(c->anthropic_api_key);
    assert_null(c->openai_api_key);
    assert_null(c->kimi_api_key);
    assert_null(c->ollama_base_url);
    assert_int_equal(c->request_timeout_ms, 60000);
    assert_int_equal(c->connect_timeout_ms, 10000);
    assert_int_equal(c->max_retries, 3);
}

static void test_defaults(void **state) {
    (void)state;
    struct cx_config c;
    memset(&c, 0xab, sizeof c);
    cx_config_init(&c);
    assert_defaults(&c);
    /* An empty environment gives the same. */
    const char *env[] = {NULL};
    memset(&c, 0xab, sizeof c);
    assert_int_equal(cx_config_load(&c, fake_get, (void *)env, NULL), 0);
    assert_defaults(&c);
    cx_config_clear(&c);
    assert_defaults(&c);
    cx_config_clear(NULL);
    cx_config_init(NULL);
    /* Blank values count as unset. */
    const char *blank[] = {"CORTEX_RATE_LIMIT_RPS", "", "CORTEX_THREAD_POOL_SIZE", "  ",
                           "CORTEX_BASE_URL", " \t", "ANTHROPIC_API_KEY", "", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)blank, NULL), 0);
    assert_defaults(&c);
    cx_config_clear(&c);
    /* NULL arguments. */
    struct cx_errinfo ei;
    assert_int_equal(cx_config_load(NULL, fake_get, (void *)env, &ei), CX_EINVAL);
    assert_int_equal(cx_config_load(&c, NULL, NULL, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "get"));
}

static void test_every_variable(void **state) {
    (void)state;
    const char *env[] = {
        "CORTEX_RATE_LIMIT_RPS", "12.5",
        "CORTEX_RATE_LIMIT_BURST", "30",
        "CORTEX_TOKENS_PER_MINUTE", "90000",
        "CORTEX_THREAD_POOL_SIZE", " 64 ",
        "CORTEX_DB_POOL_SIZE", "8",
        "CORTEX_CACHE_MAX_ENTRIES", "12345",
        "CORTEX_CACHE_SIMILARITY_THRESHOLD", "1",
        "CORTEX_EXEC_MODE", "GIL",
        "CORTEX_GIL_SWITCH_INTERVAL_MS", "0.5",
        "CORTEX_IO_DESIGN", "hybrid",
        "CORTEX_DATA_DIR", "/var/lib/cortex",
        "CORTEX_BASE_URL", "http://127.0.0.1:8080/v1",
        "CORTEX_ANTHROPIC_API_KEY", "sk-ant-secret",
        "CORTEX_OPENAI_API_KEY", "sk-openai-secret",
        "CORTEX_KIMI_API_KEY", "kimi-secret",
        "CORTEX_OLLAMA_BASE_URL", "http://localhost:11434",
        "CORTEX_REQUEST_TIMEOUT_MS", "1500",
        "CORTEX_CONNECT_TIMEOUT_MS", "250",
        "CORTEX_MAX_RETRIES", "0",
        NULL};
    struct cx_config c;
    assert_int_equal(cx_config_load(&c, fake_get, (void *)env, NULL), 0);
    assert_true(c.rate_limit_rps == 12.5);
    assert_true(c.rate_limit_burst == 30.0);
    assert_true(c.tokens_per_minute == 90000.0);
    assert_int_equal(c.thread_pool_size, 64);
    assert_int_equal(c.db_pool_size, 8);
    assert_int_equal(c.cache_max_entries, 12345);
    assert_true(c.cache_similarity_threshold == 1.0);
    assert_int_equal(c.exec_mode, CX_MODE_GIL);
    assert_int_equal(c.gil_switch_interval_ns, 500 * CX_NSEC_PER_USEC);
    assert_int_equal(c.io_design, CX_IO_HYBRID);
    assert_string_equal(c.data_dir, "/var/lib/cortex");
    assert_string_equal(c.base_url, "http://127.0.0.1:8080/v1");
    assert_string_equal(c.anthropic_api_key, "sk-ant-secret");
    assert_string_equal(c.openai_api_key, "sk-openai-secret");
    assert_string_equal(c.kimi_api_key, "kimi-secret");
    assert_string_equal(c.ollama_base_url, "http://localhost:11434");
    assert_int_equal(c.request_timeout_ms, 1500);
    assert_int_equal(c.connect_timeout_ms, 250);
    assert_int_equal(c.max_retries, 0);
    cx_config_clear(&c);
    assert_defaults(&c);
}

/* Whatever config accepts, the limiters built from it accept too (the router builds the token
 * limiter as rate tpm/60, burst tpm). */
static void assert_limiters_accept(const struct cx_config *c) {
    struct cx_limiter *l = NULL;
    struct cx_errinfo ei;
    if (cx_limiter_new(c->rate_limit_rps, c->rate_limit_burst, &l, &ei) < 0)
        fail_msg("config accepted rps %g burst %g but the limiter refuses: %s", c->rate_limit_rps,
                 c->rate_limit_burst, ei.msg);
    cx_limiter_free(l);
    if (c->tokens_per_minute > 0) {
        assert_int_equal(cx_limiter_new(c->tokens_per_minute / 60, c->tokens_per_minute, &l, &ei), 0);
        cx_limiter_free(l);
    }
}

static void test_burst_follows_rps(void **state) {
    (void)state;
    struct cx_config c;
    cx_config_init(&c);
    assert_limiters_accept(&c);
    const char *edges[][4] = {
        {"CORTEX_RATE_LIMIT_RPS", "1e-9", "CORTEX_TOKENS_PER_MINUTE", "1"},
        {"CORTEX_RATE_LIMIT_RPS", "1e12", "CORTEX_TOKENS_PER_MINUTE", "1e12"},
        {"CORTEX_RATE_LIMIT_RPS", "0.001", "CORTEX_RATE_LIMIT_BURST", "1e6"},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *env[] = {edges[i][0], edges[i][1], edges[i][2], edges[i][3], NULL};
        assert_int_equal(cx_config_load(&c, fake_get, (void *)env, NULL), 0);
        assert_limiters_accept(&c);
    }
    const char *too_slow[] = {"CORTEX_RATE_LIMIT_RPS", "0.001", "CORTEX_RATE_LIMIT_BURST", "1e7",
                              NULL};
    struct cx_errinfo ei;
    assert_int_equal(cx_config_load(&c, fake_get, (void *)too_slow, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_RATE_LIMIT_BURST"));
    const char *fast[] = {"CORTEX_RATE_LIMIT_RPS", "20", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)fast, NULL), 0);
    assert_true(c.rate_limit_burst == 19.0);
    assert_int_equal(c.rate_limit_rps_set, 1); /* set, so it applies even on the CLI's mock */
    const char *none[] = {NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)none, NULL), 0);
    assert_int_equal(c.rate_limit_rps_set, 0);
    const char *dflt[] = {"CORTEX_RATE_LIMIT_RPS", "5", NULL}; /* the default, said explicitly */
    assert_int_equal(cx_config_load(&c, fake_get, (void *)dflt, NULL), 0);
    assert_int_equal(c.rate_limit_rps_set, 1);
    const char *two[] = {"CORTEX_RATE_LIMIT_RPS", "2", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)two, NULL), 0);
    assert_true(c.rate_limit_burst == 1.0);
    const char *slow[] = {"CORTEX_RATE_LIMIT_RPS", "0.25", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)slow, NULL), 0);
    assert_true(c.rate_limit_rps == 0.25);
    assert_true(c.rate_limit_burst == 1.0); /* never below one token */
    const char *both[] = {"CORTEX_RATE_LIMIT_RPS", "20", "CORTEX_RATE_LIMIT_BURST", "2.5", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)both, NULL), 0);
    assert_true(c.rate_limit_burst == 2.5);
}

/* 0, inf and the words for it turn the request limiter off (stored as rate 0), with no burst
 * check against a zero rate. */
static void test_rate_unlimited(void **state) {
    (void)state;
    static const char *const words[] = {"0", "inf", "INF", "infinity", "unlimited", " off ", "0.0"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        struct cx_config c;
        cx_config_init(&c);
        const char *env[] = {"CORTEX_RATE_LIMIT_RPS", words[i], "CORTEX_RATE_LIMIT_BURST", "3", NULL};
        struct cx_errinfo ei;
        if (cx_config_load(&c, fake_get, (void *)env, &ei) != 0)
            fail_msg("CORTEX_RATE_LIMIT_RPS='%s' refused: %s", words[i], ei.msg);
        assert_true(c.rate_limit_rps == 0.0);
        cx_config_clear(&c);
    }
}

struct bad_case {
    const char *name, *value, *why;
};

static void test_bad_values(void **state) {
    (void)state;
    static const struct bad_case cases[] = {
        {"CORTEX_RATE_LIMIT_RPS", "abc", "not a number"},
        {"CORTEX_RATE_LIMIT_RPS", "-3", "must be >= 0"},
        {"CORTEX_RATE_LIMIT_RPS", "nan", "finite"},
        {"CORTEX_RATE_LIMIT_RPS", "-inf", "finite"},
        {"CORTEX_RATE_LIMIT_RPS", "1e999", "finite"},
        {"CORTEX_RATE_LIMIT_RPS", "5x", "not a number"},
        {"CORTEX_RATE_LIMIT_RPS", "5 5", "not a number"},
        {"CORTEX_RATE_LIMIT_BURST", "0.5", "must be >="},
        {"CORTEX_TOKENS_PER_MINUTE", "-1", "must be >="},
        {"CORTEX_TOKENS_PER_MINUTE", "0.5", "must be 0 (unlimited) or >= 1"},
        {"CORTEX_RATE_LIMIT_RPS", "1e-12", "a full refill"},
        {"CORTEX_THREAD_POOL_SIZE", "0", "[1, 1024]"},
        {"CORTEX_THREAD_POOL_SIZE", "1025", "[1, 1024]"},
        {"CORTEX_THREAD_POOL_SIZE", "4.5", "not an integer"},
        {"CORTEX_THREAD_POOL_SIZE", "99999999999999999999999", "[1, 1024]"},
        {"CORTEX_THREAD_POOL_SIZE", "0x10", "not an integer"},
        {"CORTEX_DB_POOL_SIZE", "65", "[1, 64]"},
        {"CORTEX_CACHE_MAX_ENTRIES", "0", "must be in"},
        {"CORTEX_CACHE_MAX_ENTRIES", "3000000000", "must be in"},
        {"CORTEX_CACHE_SIMILARITY_THRESHOLD", "0", "(0, 1]"},
        {"CORTEX_CACHE_SIMILARITY_THRESHOLD", "1.01", "(0, 1]"},
        {"CORTEX_EXEC_MODE", "parallel", "serial, gil or free"},
        {"CORTEX_USE_FREE_THREADING", "2", "expected 1 or 0"},
        {"CORTEX_GIL_SWITCH_INTERVAL_MS", "0", "(0, 60000]"},
        {"CORTEX_GIL_SWITCH_INTERVAL_MS", "60001", "(0, 60000]"},
        {"CORTEX_IO_DESIGN", "epoll", "thread, hybrid or auto"},
        {"CORTEX_REQUEST_TIMEOUT_MS", "0", "must be in"},
        {"CORTEX_CONNECT_TIMEOUT_MS", "-5", "must be in"},
        {"CORTEX_MAX_RETRIES", "101", "[0, 100]"},
        {"CORTEX_MAX_RETRIES", "three", "not an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* Strings and keys are set too: a failed load must free them and never quote a key. */
        const char *env[] = {cases[i].name, cases[i].value,
                             "ANTHROPIC_API_KEY", "sk-ant-must-not-leak",
                             "CORTEX_BASE_URL", "http://x",
                             "HOME", "/home/u",
                             NULL};
        struct cx_config c;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_config_load(&c, fake_get, (void *)env, &ei);
        if (rc != CX_ECONFIG || strstr(ei.msg, cases[i].name) == NULL ||
            strstr(ei.msg, cases[i].value) == NULL || strstr(ei.msg, cases[i].why) == NULL)
            fail_msg("%s='%s': rc %d, message \"%s\" (wanted CX_ECONFIG and \"%s\")",
                     cases[i].name, cases[i].value, rc, ei.msg, cases[i].why);
        assert_int_equal(ei.code, CX_ECONFIG);
        assert_null(strstr(ei.msg, "sk-ant"));
        assert_defaults(&c); /* nothing half-loaded, nothing allocated */
    }
    /* The documented example message, exactly. */
    const char *env[] = {"CORTEX_RATE_LIMIT_RPS", "abc", NULL};
    struct cx_config c;
    struct cx_errinfo ei;
    assert_int_equal(cx_config_load(&c, fake_get, (void *)env, &ei), CX_ECONFIG);
    assert_string_equal(ei.msg, "CORTEX_RATE_LIMIT_RPS='abc': not a number");
    /* A value too long to be a number is refused, quoted only in part. */
    char longv[400];
    memset(longv, '7', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    const char *env2[] = {"CORTEX_MAX_RETRIES", longv, NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)env2, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_MAX_RETRIES"));
    assert_non_null(strstr(ei.msg, "too long"));
    assert_true(strlen(ei.msg) < 200);
    assert_defaults(&c);
}

static void test_data_dir(void **state) {
    (void)state;
    struct cx_config c;
    const char *explicit_dir[] = {"CORTEX_DATA_DIR", "/data", "XDG_DATA_HOME", "/xdg",
                                  "HOME", "/home/u", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)explicit_dir, NULL), 0);
    assert_string_equal(c.data_dir, "/data");
    cx_config_clear(&c);
    const char *xdg[] = {"XDG_DATA_HOME", "/xdg/", "HOME", "/home/u", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)xdg, NULL), 0);
    assert_string_equal(c.data_dir, "/xdg/cortex");
    cx_config_clear(&c);
    /* The XDG spec ignores a relative XDG_DATA_HOME. */
    const char *rel[] = {"XDG_DATA_HOME", "relative/dir", "HOME", "/home/u", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)rel, NULL), 0);
    assert_string_equal(c.data_dir, "/home/u/.local/share/cortex");
    cx_config_clear(&c);
    const char *home[] = {"HOME", "/home/u/", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)home, NULL), 0);
    assert_string_equal(c.data_dir, "/home/u/.local/share/cortex");
    cx_config_clear(&c);
    const char *none[] = {"HOME", "", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)none, NULL), 0);
    assert_null(c.data_dir);
}

static void test_keys_and_urls(void **state) {
    (void)state;
    struct cx_config c;
    const char *both[] = {"CORTEX_ANTHROPIC_API_KEY", "cortex-ant", "ANTHROPIC_API_KEY", "plain-ant",
                          "OPENAI_API_KEY", "plain-openai", "CORTEX_KIMI_API_KEY", "",
                          "KIMI_API_KEY", " plain-kimi\n", "OLLAMA_HOST", "http://ollama:11434",
                          NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)both, NULL), 0);
    assert_string_equal(c.anthropic_api_key, "cortex-ant"); /* the CORTEX_ one wins */
    assert_string_equal(c.openai_api_key, "plain-openai");
    assert_string_equal(c.kimi_api_key, "plain-kimi");      /* empty CORTEX_ falls through */
    assert_string_equal(c.ollama_base_url, "http://ollama:11434");
    cx_config_clear(&c);
    const char *ollama[] = {"CORTEX_OLLAMA_BASE_URL", "http://a", "OLLAMA_HOST", "http://b", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)ollama, NULL), 0);
    assert_string_equal(c.ollama_base_url, "http://a");
    cx_config_clear(&c);
}

struct mode_case {
    const char *exec_mode, *use_ft; /* NULL = unset */
    int rc;
    enum cx_exec_mode want;
};

static void test_exec_mode_variables(void **state) {
    (void)state;
    static const struct mode_case cases[] = {
        {NULL, NULL, 0, CX_MODE_FREE},
        {NULL, "1", 0, CX_MODE_FREE},
        {NULL, "0", 0, CX_MODE_GIL},
        {NULL, "true", 0, CX_MODE_FREE},
        {NULL, "OFF", 0, CX_MODE_GIL},
        {"serial", NULL, 0, CX_MODE_SERIAL},
        {"free", "1", 0, CX_MODE_FREE},
        {"gil", "0", 0, CX_MODE_GIL},
        {"serial", "0", 0, CX_MODE_SERIAL},
        {"serial", "1", CX_ECONFIG, CX_MODE_FREE},
        {"gil", "yes", CX_ECONFIG, CX_MODE_FREE},
        {"free", "0", CX_ECONFIG, CX_MODE_FREE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[5] = {NULL};
        int k = 0;
        if (cases[i].exec_mode) { env[k++] = "CORTEX_EXEC_MODE"; env[k++] = cases[i].exec_mode; }
        if (cases[i].use_ft) { env[k++] = "CORTEX_USE_FREE_THREADING"; env[k++] = cases[i].use_ft; }
        struct cx_config c;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_config_load(&c, fake_get, (void *)env, &ei);
        if (rc != cases[i].rc || c.exec_mode != cases[i].want)
            fail_msg("case %zu (%s, %s): rc %d mode %d, wanted rc %d mode %d", i,
                     cases[i].exec_mode ? cases[i].exec_mode : "-",
                     cases[i].use_ft ? cases[i].use_ft : "-", rc, c.exec_mode, cases[i].rc,
                     cases[i].want);
        if (rc < 0) {
            assert_non_null(strstr(ei.msg, "CORTEX_EXEC_MODE"));
            assert_non_null(strstr(ei.msg, "CORTEX_USE_FREE_THREADING"));
            assert_non_null(strstr(ei.msg, "disagree"));
        }
        cx_config_clear(&c);
    }
}

static void test_names(void **state) {
    (void)state;
    for (int m = CX_MODE_SERIAL; m <= CX_MODE_FREE; m++) {
        enum cx_exec_mode out = (enum cx_exec_mode)-1;
        assert_int_equal(cx_exec_mode_parse(cx_exec_mode_name((enum cx_exec_mode)m), &out), 0);
        assert_int_equal(out, m);
    }
    for (int d = CX_IO_THREAD_LOCAL; d <= CX_IO_AUTO; d++) {
        enum cx_io_design out = (enum cx_io_design)-1;
        assert_int_equal(cx_io_design_parse(cx_io_design_name((enum cx_io_design)d), &out), 0);
        assert_int_equal(out, d);
    }
    assert_string_equal(cx_exec_mode_name(CX_MODE_GIL), "gil");
    assert_string_equal(cx_io_design_name(CX_IO_THREAD_LOCAL), "thread");
    assert_string_equal(cx_exec_mode_name((enum cx_exec_mode)7), "unknown");
    assert_string_equal(cx_io_design_name((enum cx_io_design)-1), "unknown");
    enum cx_exec_mode m = CX_MODE_GIL;
    assert_int_equal(cx_exec_mode_parse("Free", &m), 0);
    assert_int_equal(m, CX_MODE_FREE);
    assert_int_equal(cx_exec_mode_parse("freeish", &m), CX_EINVAL);
    assert_int_equal(cx_exec_mode_parse("", &m), CX_EINVAL);
    assert_int_equal(cx_exec_mode_parse(NULL, &m), CX_EINVAL);
    assert_int_equal(m, CX_MODE_FREE); /* unchanged by failures */
    enum cx_io_design d = CX_IO_AUTO;
    assert_int_equal(cx_io_design_parse("HYBRID", &d), 0);
    assert_int_equal(d, CX_IO_HYBRID);
    assert_int_equal(cx_io_design_parse("threads", &d), CX_EINVAL);
    assert_int_equal(d, CX_IO_HYBRID);
}

/* The one test that uses the real environment (this process is single-threaded here). */
static void test_load_env(void **state) {
    (void)state;
    assert_int_equal(setenv("CORTEX_THREAD_POOL_SIZE", "3", 1), 0);
    assert_int_equal(setenv("CORTEX_DATA_DIR", "/tmp/cx-config-test", 1), 0);
    struct cx_config c;
    assert_int_equal(cx_config_load_env(&c, NULL), 0);
    assert_int_equal(c.thread_pool_size, 3);
    assert_string_equal(c.data_dir, "/tmp/cx-config-test");
    cx_config_clear(&c);
    assert_int_equal(setenv("CORTEX_THREAD_POOL_SIZE", "many", 1), 0);
    struct cx_errinfo ei;
    assert_int_equal(cx_config_load_env(&c, &ei), CX_ECONFIG);
    assert_string_equal(ei.msg, "CORTEX_THREAD_POOL_SIZE='many': not an integer");
    assert_defaults(&c);
    unsetenv("CORTEX_THREAD_POOL_SIZE");
    unsetenv("CORTEX_DATA_DIR");
}

static const char *const torture_env[] = {
    "CORTEX_RATE_LIMIT_RPS", "7", "XDG_DATA_HOME", "/xdg", "CORTEX_BASE_URL", "http://b",
    "ANTHROPIC_API_KEY", "k1", "CORTEX_OPENAI_API_KEY", "k2", "KIMI_API_KEY", "k3",
    "OLLAMA_HOST", "http://o", NULL};

static int load_scenario(void *ctx) {
    (void)ctx;
    struct cx_config c;
    struct cx_errinfo ei;
    int rc = cx_config_load(&c, fake_get, (void *)torture_env, &ei);
    if (rc < 0) {
        assert_int_equal(ei.code, rc);
        assert_defaults(&c); /* a failed load leaves defaults and nothing allocated */
        return rc;
    }
    assert_string_equal(c.data_dir, "/xdg/cortex");
    assert_string_equal(c.ollama_base_url, "http://o");
    cx_config_clear(&c);
    return 0;
}

static void test_torture(void **state) {
    (void)state;
    /* Six strings: six allocations, each one a failure point. */
    assert_int_equal(t_torture(load_scenario, NULL), 6);
}

/* ---- fleet mode (appended with the fleet module) ---- */

static void test_fleet_variables(void **state) {
    (void)state;
    struct cx_config c;
    const char *none[] = {NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)none, NULL), 0);
    assert_null(c.redis_url); /* no URL: no fleet, behaviour as before */
    assert_null(c.redis_password);
    assert_null(c.redis_prefix);
    assert_int_equal(c.fleet_size, 1);
    assert_int_equal(c.redis_optional, 0);
    cx_config_clear(&c);
    const char *all[] = {"CORTEX_REDIS_URL", " redis://:pw-in-url@10.0.0.5:6380/2 ",
                         "CORTEX_REDIS_PASSWORD", "pw-from-env",
                         "CORTEX_REDIS_PREFIX", "ci-fleet",
                         "CORTEX_FLEET_SIZE", "8",
                         "CORTEX_REDIS_OPTIONAL", "yes", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)all, NULL), 0);
    assert_string_equal(c.redis_url, "redis://:pw-in-url@10.0.0.5:6380/2");
    assert_string_equal(c.redis_password, "pw-from-env");
    assert_string_equal(c.redis_prefix, "ci-fleet");
    assert_int_equal(c.fleet_size, 8);
    assert_int_equal(c.redis_optional, 1);
    cx_config_clear(&c);
    assert_null(c.redis_url);
    assert_int_equal(c.fleet_size, 1);
    const char *unix_url[] = {"CORTEX_REDIS_URL", "unix:///run/redis.sock?db=1", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)unix_url, NULL), 0);
    assert_string_equal(c.redis_url, "unix:///run/redis.sock?db=1");
    cx_config_clear(&c);
}

static void test_fleet_bad_values(void **state) {
    (void)state;
    static const struct bad_case cases[] = {
        {"CORTEX_FLEET_SIZE", "0", "[1, 100000]"},
        {"CORTEX_FLEET_SIZE", "two", "not an integer"},
        {"CORTEX_REDIS_OPTIONAL", "maybe", "expected 1 or 0"},
        {"CORTEX_REDIS_URL", "http://cache:6379", "unknown scheme"},
        {"CORTEX_REDIS_URL", "redis://cache:99999", "port"},
        {"CORTEX_REDIS_URL", "rediss://cache:6380", "TLS"},
        {"CORTEX_REDIS_PREFIX", "two words", "blank"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {cases[i].name, cases[i].value, "CORTEX_BASE_URL", "http://x", NULL};
        struct cx_config c;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_config_load(&c, fake_get, (void *)env, &ei);
        if (rc != CX_ECONFIG || strstr(ei.msg, cases[i].name) == NULL ||
            strstr(ei.msg, cases[i].value) == NULL || strstr(ei.msg, cases[i].why) == NULL)
            fail_msg("%s='%s': rc %d, message \"%s\" (wanted CX_ECONFIG and \"%s\")",
                     cases[i].name, cases[i].value, rc, ei.msg, cases[i].why);
        assert_int_equal(ei.code, CX_ECONFIG);
        assert_defaults(&c);
        assert_null(c.redis_url);
    }
    /* A bad URL's message masks its password; a password alone is refused without quoting it. */
    const char *pw[] = {"CORTEX_REDIS_URL", "redis://:hunter2@cache:notaport/0", NULL};
    struct cx_config c;
    struct cx_errinfo ei;
    assert_int_equal(cx_config_load(&c, fake_get, (void *)pw, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL='redis://:***@cache:notaport/0'"));
    assert_null(strstr(ei.msg, "hunter2"));
    const char *alone[] = {"CORTEX_REDIS_PASSWORD", "hunter2", NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)alone, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_PASSWORD"));
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL"));
    assert_null(strstr(ei.msg, "hunter2"));
    char longp[80];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const char *lp[] = {"CORTEX_REDIS_PREFIX", longp, NULL};
    assert_int_equal(cx_config_load(&c, fake_get, (void *)lp, &ei), CX_ECONFIG);
    assert_non_null(strstr(ei.msg, "at most 64"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_variable),
        cmocka_unit_test(test_burst_follows_rps),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_rate_unlimited),
        cmocka_unit_test(test_data_dir),
        cmocka_unit_test(test_keys_and_urls),
        cmocka_unit_test(test_exec_mode_variables),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_load_env),
        cmocka_unit_test(test_torture),
        cmocka_unit_test(test_fleet_variables),
        cmocka_unit_test(test_fleet_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
