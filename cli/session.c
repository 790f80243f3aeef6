/*
 * cli/session.c - what every cx command sets up before it works: messages on stderr (notes and
 * the failure message the --json error object repeats), the configuration (the one place the
 * environment is read), the data directory, the LLM endpoint (the embedded mock LLM server when
 * no key and no base URL are set) and the pipeline.
 * What it does not do: run a command or print its results (cmd_*.c, output.c).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_internal.h"
#include "cx/config.h"
#include "cx/clock.h"
#include "cx/http.h"
#include "cx/pipeline.h"
#include "mock/server.h"

void cx__cli_note(struct ctx *c, const char *fmt, ...)
{
    if (c->a.quiet)
        return;
    /* One write of a whole line, after what stdout holds so far: when both streams go to one
     * pipe the note lands between lines of the output, never inside one. */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(c->out);
    fprintf(c->err, "cx: %s\n", line);
    fflush(c->err);
}

int cx__cli_fail(struct ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_err, sizeof c->last_err, fmt, ap);
    va_end(ap);
    fflush(c->out);
    fprintf(c->err, "cx: %s\n", c->last_err);
    return code;
}

/* ---- set-up: configuration, data directory, the LLM endpoint ---- */

/* The environment, with --redis standing in for CORTEX_REDIS_URL. */
static const char *config_get(const char *name, void *ud)
{
    const struct ctx *c = ud;
    if (c->a.redis_url != NULL && strcmp(name, "CORTEX_REDIS_URL") == 0)
        return c->a.redis_url;
    return getenv(name);
}

int cx__cli_load_config(struct ctx *c)
{
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_config_load(&c->cfg, config_get, c, &ei) < 0) {
        /* A bad --redis value is a bad command line (exit 2), as a bad --base-url is. */
        int from_arg = c->a.redis_url && strstr(ei.msg, "CORTEX_REDIS_URL") != NULL;
        return cx__cli_fail(c, from_arg ? CX_EXIT_USAGE : CX_EXIT_ERROR, "configuration%s: %s",
                            from_arg ? " (--redis)" : "", ei.msg);
    }
    c->cfg_loaded = 1;
    return 0;
}

int cx__cli_data_dir(struct ctx *c)
{
    const char *dir = c->a.data_dir ? c->a.data_dir : c->cfg.data_dir;
    if (dir == NULL)
        return cx__cli_fail(c, CX_EXIT_ERROR,
                    "no data directory: set CORTEX_DATA_DIR, XDG_DATA_HOME or HOME, or pass "
                    "--data-dir");
    char msg[512];
    int prc = cx_cli_data_dir_prepare(dir, msg, sizeof msg);
    int n = snprintf(c->db_path, sizeof c->db_path, "%s/%s", dir, CX_DB_FILE);
    if (n < 0 || (size_t)n >= sizeof c->db_path)
        return cx__cli_fail(c, CX_EXIT_ERROR, "data directory path '%s' is too long", dir);
    /* A command that only reads (history, cache stats) still works in a directory it cannot
     * write, as long as there is a database to read: cmd_db.c reads a private copy. */
    if (prc == CX_EPERM && c->read_only_ok && access(c->db_path, R_OK) == 0) {
        c->db_read_only = 1;
        return 0;
    }
    if (prc < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "%s", msg);
    return 0;
}

static int have_key(const struct cx_config *cfg)
{
    return (cfg->anthropic_api_key && *cfg->anthropic_api_key) ||
           (cfg->openai_api_key && *cfg->openai_api_key) ||
           (cfg->kimi_api_key && *cfg->kimi_api_key) ||
           (cfg->ollama_base_url && *cfg->ollama_base_url);
}

/* A damaged database keeps every command from working, so do what SQLite users do by hand:
 * keep the file aside for inspection (with its -wal, whose pages belong to it), start afresh,
 * and say where both are. */
int cx__cli_db_set_aside(struct ctx *c, const char *why)
{
    char stamp[32], aside[PATH_MAX + 64], from[PATH_MAX + 8], to[PATH_MAX + 72];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    /* Never over an earlier one: a second damaged file within the same second gets "-2". */
    snprintf(aside, sizeof aside, "%s.corrupt-%s", c->db_path, stamp);
    for (int k = 2; access(aside, F_OK) == 0 && k < 1000; k++)
        snprintf(aside, sizeof aside, "%s.corrupt-%s-%d", c->db_path, stamp, k);
    if (rename(c->db_path, aside) < 0) {
        cx__cli_fail(c, CX_EXIT_ERROR, "%s; moving it aside to '%s' failed: %s", why, aside,
                     strerror(errno));
        return -1;
    }
    snprintf(from, sizeof from, "%s-wal", c->db_path);
    snprintf(to, sizeof to, "%s-wal", aside);
    (void)rename(from, to);
    snprintf(from, sizeof from, "%s-shm", c->db_path);
    (void)unlink(from); /* the shared-memory index is rebuilt from the files */
    fflush(c->out);
    fprintf(c->err, "cx: %s\ncx: kept the damaged file as '%s' and started a fresh database at "
                    "'%s' (the cache and the history start empty)\n", why, aside, c->db_path);
    return 0;
}

static int nonempty(const char *s) { return s != NULL && *s != '\0'; }

/* The wire format spoken to a base URL: --api, else Anthropic when the only key given is an
 * Anthropic one, else OpenAI (what keyless local servers speak). Keys then follow the format
 * (cx__cli_pipeline), so a run never sends one format's key in the other's. */
static enum cx_provider base_url_format(const struct ctx *c)
{
    if (c->a.api != CX_PROVIDER_AUTO)
        return c->a.api;
    int openai_key = c->a.api_key_env != NULL || nonempty(c->cfg.openai_api_key) ||
                     nonempty(c->cfg.kimi_api_key);
    return nonempty(c->cfg.anthropic_api_key) && !openai_key ? CX_PROVIDER_CLAUDE
                                                             : CX_PROVIDER_OPENAI;
}

/* Picks the endpoint: a base URL (checked here, before any query is sent, so a typo costs no
 * retries), the providers of the keys set, or, with neither, the embedded mock server. */
int cx__cli_llm(struct ctx *c)
{
    const char *url = c->a.base_url ? c->a.base_url : c->cfg.base_url;
    if (c->a.api_key_env != NULL) {
        const char *k = getenv(c->a.api_key_env); /* named on the command line: not config's */
        if (!nonempty(k))
            return cx__cli_fail(c, CX_EXIT_USAGE, "--api-key-env %s: the variable is not set or empty",
                                c->a.api_key_env);
        c->key = k;
    }
    if (url != NULL) {
        c->format = base_url_format(c);
        enum cx_api api = c->format == CX_PROVIDER_CLAUDE ? CX_API_ANTHROPIC : CX_API_OPENAI;
        char *norm = NULL;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        if (cx_http_base_url_normalize(api, url, &norm, &ei) < 0)
            return cx__cli_fail(c, c->a.base_url ? CX_EXIT_USAGE : CX_EXIT_ERROR, "%s%s",
                                c->a.base_url ? "--base-url: " : "configuration: CORTEX_BASE_URL: ",
                                ei.msg);
        cx_free(norm);
        snprintf(c->base_url, sizeof c->base_url, "%s", url);
        /* A key of the other format is never sent; say so rather than let a 401 puzzle. */
        int have = c->key != NULL || (api == CX_API_ANTHROPIC
                                          ? nonempty(c->cfg.anthropic_api_key)
                                          : nonempty(c->cfg.openai_api_key) ||
                                                nonempty(c->cfg.kimi_api_key));
        int other = api == CX_API_ANTHROPIC
                        ? nonempty(c->cfg.openai_api_key) || nonempty(c->cfg.kimi_api_key)
                        : nonempty(c->cfg.anthropic_api_key);
        if (!have && other) {
            char shown[256]; /* a URL may carry a password: never print it */
            cx_http_url_redact(url, shown, sizeof shown);
            cx__cli_note(c, "no %s key is set (%s or --api-key-env NAME): sending none to %s",
                         api == CX_API_ANTHROPIC ? "Anthropic" : "OpenAI-format",
                         api == CX_API_ANTHROPIC ? "ANTHROPIC_API_KEY"
                                                 : "OPENAI_API_KEY, KIMI_API_KEY",
                         shown);
        }
        return 0;
    }
    if (c->key != NULL || have_key(&c->cfg))
        return 0;
    struct mock_options mo;
    mock_options_init(&mo);
    mo.port = 0;
    mo.quiet = 1;
    if (c->a.mock_latency_ms >= 0)
        mo.latency_ms = c->a.mock_latency_ms;
    if (c->a.time_scale >= 0)
        mo.time_scale = c->a.time_scale;
    char err[256] = "";
    if (mock_server_start(&mo, &c->mock, err, sizeof err) < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "cannot start the embedded mock LLM server: %s", err);
    snprintf(c->base_url, sizeof c->base_url, "%s/v1", mock_server_url(c->mock));
    c->format = CX_PROVIDER_OPENAI;
    cx__cli_note(c, "no API key set; using the embedded mock LLM server at %s", mock_server_url(c->mock));
    return 0;
}

int cx__cli_pipeline(struct ctx *c)
{
    struct cx_pipeline_options po;
    cx_pipeline_options_init(&po);
    po.config = &c->cfg;
    po.base_url = c->base_url[0] ? c->base_url : NULL;
    po.provider = po.base_url ? c->format : c->a.api;
    /* --api-key-env's key is the key of the format in use; the configuration is only borrowed
     * by cx_pipeline_new, so it is lent for that call and given back. */
    char *saved_openai = c->cfg.openai_api_key, *saved_anthropic = c->cfg.anthropic_api_key;
    if (c->key != NULL) {
        if (po.provider == CX_PROVIDER_CLAUDE)
            c->cfg.anthropic_api_key = (char *)c->key;
        else
            c->cfg.openai_api_key = (char *)c->key;
    }
    /* Nobody's quota is at stake on the embedded mock: no limiter, unless the user set
     * CORTEX_RATE_LIMIT_RPS (to see how a limited run behaves). */
    double saved_rps = c->cfg.rate_limit_rps;
    if (c->mock != NULL && !c->cfg.rate_limit_rps_set)
        c->cfg.rate_limit_rps = 0;
    po.model = c->a.model;
    /* Cache keys name the server (cx/router.h), so the embedded mock's answers are never
     * served to a run against a real API. Its URL has a new port on every run: name it, so
     * one run's answers are still found by the next. */
    if (c->mock != NULL)
        po.cache_endpoint = "cx-embedded-mock";
    po.db_path = c->a.no_cache && c->a.no_history ? NULL : c->db_path;
    po.use_cache = !c->a.no_cache;
    po.no_history = c->a.no_history;
    po.similar_cache = c->a.similar_cache;
    if (c->a.have_mode) {
        po.have_mode = 1;
        po.mode = c->a.mode;
    }
    if (c->a.have_io) {
        po.have_io = 1;
        po.io = c->a.io;
    }
    po.threads = c->a.threads;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_pipeline_new(&po, &c->p, &ei);
    if (rc == CX_ECORRUPT && po.db_path != NULL && cx__cli_db_set_aside(c, ei.msg) == 0) {
        memset(&ei, 0, sizeof ei);
        rc = cx_pipeline_new(&po, &c->p, &ei);
    }
    c->cfg.openai_api_key = saved_openai;
    c->cfg.anthropic_api_key = saved_anthropic;
    c->cfg.rate_limit_rps = saved_rps;
    if (rc < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "%s%s", ei.msg[0] ? ei.msg : cx_strerror(rc),
                            c->a.redis_url && strstr(ei.msg, "CORTEX_REDIS") ? " (from --redis)"
                                                                             : "");
    cx__cli_fleet_notice(c);
    return 0;
}

/* Fleet mode: says once on stderr when Redis went down (and the limits and cache fell back to
 * this process) or came back. Not silenced by --quiet: limits changed. */
void cx__cli_fleet_notice(struct ctx *c)
{
    char msg[512];
    if (c->p == NULL || !cx_pipeline_fleet_notice(c->p, msg, sizeof msg))
        return;
    fflush(c->out); /* a whole line after what stdout holds, as cx__cli_note does */
    fprintf(c->err, "cx: %s\n", msg);
    fflush(c->err);
}

