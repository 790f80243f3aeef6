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
#include <unistd.h>

#include "cli_internal.h"
#include "cx/config.h"
#include "cx/clock.h"
#include "cx/pipeline.h"
#include "mock/server.h"

void cx__cli_note(struct ctx *c, const char *fmt, ...)
{
    if (c->a.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("cx: ", c->err);
    vfprintf(c->err, fmt, ap);
    fputc('\n', c->err);
    va_end(ap);
}

int cx__cli_fail(struct ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_err, sizeof c->last_err, fmt, ap);
    va_end(ap);
    fprintf(c->err, "cx: %s\n", c->last_err);
    return code;
}

/* ---- set-up: configuration, data directory, the LLM endpoint ---- */

int cx__cli_load_config(struct ctx *c)
{
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_config_load_env(&c->cfg, &ei) < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "configuration: %s", ei.msg);
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
    if (cx_cli_data_dir_prepare(dir, msg, sizeof msg) < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "%s", msg);
    int n = snprintf(c->db_path, sizeof c->db_path, "%s/%s", dir, CX_DB_FILE);
    if (n < 0 || (size_t)n >= sizeof c->db_path)
        return cx__cli_fail(c, CX_EXIT_ERROR, "data directory path '%s' is too long", dir);
    return 0;
}

static int have_key(const struct cx_config *cfg)
{
    return (cfg->anthropic_api_key && *cfg->anthropic_api_key) ||
           (cfg->openai_api_key && *cfg->openai_api_key) ||
           (cfg->kimi_api_key && *cfg->kimi_api_key) ||
           (cfg->ollama_base_url && *cfg->ollama_base_url);
}

/* With no key and no base URL, starts the embedded mock server and points at it. */
int cx__cli_llm(struct ctx *c)
{
    const char *url = c->a.base_url ? c->a.base_url : c->cfg.base_url;
    if (url != NULL || have_key(&c->cfg)) {
        if (url != NULL)
            snprintf(c->base_url, sizeof c->base_url, "%s", url);
        return 0;
    }
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
    cx__cli_note(c, "no API key set; using the embedded mock LLM server at %s", mock_server_url(c->mock));
    return 0;
}

int cx__cli_pipeline(struct ctx *c)
{
    struct cx_pipeline_options po;
    cx_pipeline_options_init(&po);
    po.config = &c->cfg;
    po.base_url = c->base_url[0] ? c->base_url : NULL;
    po.provider = c->a.api;
    po.model = c->a.model;
    /* Cache keys name the server (cx/router.h), so the embedded mock's answers are never
     * served to a run against a real API. Its URL has a new port on every run: name it, so
     * one run's answers are still found by the next. */
    if (c->mock != NULL)
        po.cache_endpoint = "cx-embedded-mock";
    po.db_path = c->db_path;
    po.use_cache = !c->a.no_cache;
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
    if (rc < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "%s", ei.msg[0] ? ei.msg : cx_strerror(rc));
    return 0;
}

