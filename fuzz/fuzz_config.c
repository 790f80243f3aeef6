/*
 * fuzz_config.c - fuzzes cx_config_load (cx/config.h) with a getter that answers from the
 * input, the way the process environment would (an environment is not always ours to trust:
 * a CI system, a container, a wrapper script set it).
 *
 * Input: "NAME=VALUE" lines (the last line for a name wins; a line without '=' is ignored).
 * Checks, besides "no crash":
 *   - the result is 0 or CX_ECONFIG, never CX_ENOMEM (nothing fails allocation here);
 *   - on success every field is inside the range config.h documents, the strings are the
 *     trimmed values of the documented variables (CORTEX_ one first) and data_dir follows the
 *     CORTEX_DATA_DIR / XDG_DATA_HOME / HOME rule;
 *   - on failure *c is exactly as cx_config_init leaves it, and the message names a variable
 *     and never depends on an API key (the same input without the keys gives the same one);
 *   - a second load of the same input gives the same result.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cx/config.h"
#include "fuzz_util.h"

#define MAX_VARS 64

struct env {
    const char *name[MAX_VARS];
    const char *value[MAX_VARS];
    size_t n;
};

static const char *get(const char *name, void *ctx) {
    const struct env *e = ctx;
    for (size_t i = e->n; i-- > 0;)
        if (strcmp(e->name[i], name) == 0) return e->value[i];
    return NULL;
}

static int is_blank(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* The trimmed value of a variable as a new string, NULL when unset or blank. */
static char *trimmed(const struct env *e, const char *name) {
    const char *v = get(name, (void *)e);
    if (v == NULL) return NULL;
    while (*v && is_blank((unsigned char)*v)) v++;
    size_t n = strlen(v);
    while (n > 0 && is_blank((unsigned char)v[n - 1])) n--;
    return n ? fuzz_strndup(v, n) : NULL;
}

static char *first_of(const struct env *e, const char *a, const char *b) {
    char *s = trimmed(e, a);
    return s ? s : trimmed(e, b);
}

static int same_str(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_string(const char *field, const char *got, char *want) {
    FUZZ_CHECK(same_str(got, want), "%s is '%s', expected '%s'", field, got ? got : "(null)",
               want ? want : "(null)");
    free(want);
}

static void check_default(const struct cx_config *c) {
    struct cx_config d;
    cx_config_init(&d);
    FUZZ_CHECK(c->rate_limit_rps == d.rate_limit_rps && c->rate_limit_burst == d.rate_limit_burst &&
                   c->tokens_per_minute == d.tokens_per_minute &&
                   c->thread_pool_size == d.thread_pool_size && c->db_pool_size == d.db_pool_size &&
                   c->cache_max_entries == d.cache_max_entries &&
                   c->cache_similarity_threshold == d.cache_similarity_threshold &&
                   c->exec_mode == d.exec_mode &&
                   c->gil_switch_interval_ns == d.gil_switch_interval_ns &&
                   c->io_design == d.io_design && c->request_timeout_ms == d.request_timeout_ms &&
                   c->connect_timeout_ms == d.connect_timeout_ms && c->max_retries == d.max_retries,
               "a failed load changed a number");
    FUZZ_CHECK(!c->data_dir && !c->base_url && !c->anthropic_api_key && !c->openai_api_key &&
                   !c->kimi_api_key && !c->ollama_base_url,
               "a failed load left a string");
}

static void check_ranges(const struct cx_config *c) {
    /* rps 0 means no limit (CORTEX_RATE_LIMIT_RPS=0 or inf). */
    FUZZ_CHECK(isfinite(c->rate_limit_rps) && c->rate_limit_rps >= 0, "rps %g", c->rate_limit_rps);
    FUZZ_CHECK(isfinite(c->rate_limit_burst) && c->rate_limit_burst >= 1 &&
                   (c->rate_limit_rps == 0 || c->rate_limit_burst / c->rate_limit_rps <= 1e9),
               "burst %g (rps %g)", c->rate_limit_burst, c->rate_limit_rps);
    FUZZ_CHECK(isfinite(c->tokens_per_minute) &&
                   (c->tokens_per_minute == 0 || c->tokens_per_minute >= 1),
               "tokens_per_minute %g", c->tokens_per_minute);
    FUZZ_CHECK(c->thread_pool_size >= 1 && c->thread_pool_size <= 1024, "pool %d",
               c->thread_pool_size);
    FUZZ_CHECK(c->db_pool_size >= 1 && c->db_pool_size <= 64, "db pool %d", c->db_pool_size);
    FUZZ_CHECK(c->cache_max_entries >= 1, "cache entries %d", c->cache_max_entries);
    FUZZ_CHECK(c->cache_similarity_threshold > 0 && c->cache_similarity_threshold <= 1,
               "threshold %g", c->cache_similarity_threshold);
    FUZZ_CHECK(c->exec_mode == CX_MODE_SERIAL || c->exec_mode == CX_MODE_GIL ||
                   c->exec_mode == CX_MODE_FREE,
               "exec mode %d", (int)c->exec_mode);
    FUZZ_CHECK(c->gil_switch_interval_ns > 0 && c->gil_switch_interval_ns <= 60000ull * 1000000ull,
               "gil interval %llu ns", (unsigned long long)c->gil_switch_interval_ns);
    FUZZ_CHECK(c->io_design == CX_IO_THREAD_LOCAL || c->io_design == CX_IO_HYBRID ||
                   c->io_design == CX_IO_AUTO,
               "io design %d", (int)c->io_design);
    FUZZ_CHECK(c->request_timeout_ms >= 1 && c->request_timeout_ms <= 86400000, "request timeout %d",
               c->request_timeout_ms);
    FUZZ_CHECK(c->connect_timeout_ms >= 1 && c->connect_timeout_ms <= 3600000, "connect timeout %d",
               c->connect_timeout_ms);
    FUZZ_CHECK(c->max_retries >= 0 && c->max_retries <= 100, "retries %d", c->max_retries);
}

static void check_strings(const struct cx_config *c, const struct env *e) {
    char *dd = trimmed(e, "CORTEX_DATA_DIR");
    if (dd == NULL) {
        const char *xdg = get("XDG_DATA_HOME", (void *)e);
        const char *home = get("HOME", (void *)e);
        const char *base = NULL, *tail = NULL;
        if (xdg && xdg[0] == '/') base = xdg, tail = "/cortex";
        else if (home && home[0]) base = home, tail = "/.local/share/cortex";
        if (base) {
            size_t bl = strlen(base);
            while (bl > 1 && base[bl - 1] == '/') bl--;
            dd = malloc(bl + strlen(tail) + 1);
            if (dd == NULL) abort();
            memcpy(dd, base, bl);
            strcpy(dd + bl, tail);
        }
    }
    check_string("data_dir", c->data_dir, dd);
    check_string("base_url", c->base_url, trimmed(e, "CORTEX_BASE_URL"));
    check_string("anthropic_api_key", c->anthropic_api_key,
                 first_of(e, "CORTEX_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"));
    check_string("openai_api_key", c->openai_api_key,
                 first_of(e, "CORTEX_OPENAI_API_KEY", "OPENAI_API_KEY"));
    check_string("kimi_api_key", c->kimi_api_key, first_of(e, "CORTEX_KIMI_API_KEY", "KIMI_API_KEY"));
    check_string("ollama_base_url", c->ollama_base_url,
                 first_of(e, "CORTEX_OLLAMA_BASE_URL", "OLLAMA_HOST"));
}

static const char *const key_vars[] = {"CORTEX_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY",
                                       "CORTEX_OPENAI_API_KEY", "OPENAI_API_KEY",
                                       "CORTEX_KIMI_API_KEY", "KIMI_API_KEY"};

/* API keys never reach a message: the same input without the key variables (which only the
 * key fields read) must fail with the very same message. */
static void check_no_key(int rc, const char *msg, const struct env *e) {
    struct env nokeys = {.n = 0};
    for (size_t i = 0; i < e->n; i++) {
        int is_key = 0;
        for (size_t k = 0; k < sizeof key_vars / sizeof key_vars[0]; k++)
            is_key |= strcmp(e->name[i], key_vars[k]) == 0;
        if (is_key) continue;
        nokeys.name[nokeys.n] = e->name[i];
        nokeys.value[nokeys.n] = e->value[i];
        nokeys.n++;
    }
    struct cx_config c;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc2 = cx_config_load(&c, get, &nokeys, &ei);
    FUZZ_CHECK(rc2 == rc && strcmp(ei.msg, msg) == 0,
               "the message depends on the API keys: '%s' with them, '%s' (%d) without", msg,
               ei.msg, rc2);
    if (rc2 == 0) cx_config_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *text = fuzz_strndup(data, size);
    struct env e = {.n = 0};
    for (char *line = text, *next; line && e.n < MAX_VARS; line = next) {
        next = NULL;
        char *nl = memchr(line, '\n', (size_t)(text + size - line));
        if (nl) {
            *nl = '\0';
            next = nl + 1;
        }
        char *eq = strchr(line, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        e.name[e.n] = line;
        e.value[e.n] = eq + 1;
        e.n++;
    }

    struct cx_config c;
    memset(&c, 0xA5, sizeof c); /* overwritten without being read, config.h says */
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_config_load(&c, get, &e, &ei);
    FUZZ_CHECK(rc == 0 || rc == CX_ECONFIG, "cx_config_load returned %d (%s): %s", rc,
               cx_err_name(rc), ei.msg);
    if (rc == 0) {
        check_ranges(&c);
        check_strings(&c, &e);
    } else {
        check_default(&c);
        FUZZ_CHECK(ei.code == rc && ei.msg[0] && fuzz_terminated(ei.msg, sizeof ei.msg),
                   "errinfo not filled");
        FUZZ_CHECK(strstr(ei.msg, "CORTEX_") != NULL, "message names no variable: '%s'", ei.msg);
        check_no_key(rc, ei.msg, &e);
    }

    struct cx_config c2;
    int rc2 = cx_config_load(&c2, get, &e, NULL);
    FUZZ_CHECK(rc2 == rc, "second load gave %d, first %d", rc2, rc);
    if (rc == 0) {
        FUZZ_CHECK(c2.rate_limit_rps == c.rate_limit_rps && c2.exec_mode == c.exec_mode &&
                       c2.gil_switch_interval_ns == c.gil_switch_interval_ns &&
                       same_str(c2.data_dir, c.data_dir) && same_str(c2.base_url, c.base_url),
                   "second load differs");
        cx_config_clear(&c2);
    }
    cx_config_clear(&c);
    check_default(&c);
    free(text);
    return 0;
}
