/*
 * cli/commands.c - the cx commands: install, diagnose, hwcheck, cache stats|clear, history.
 *
 * Each command loads the configuration (the one place the environment is read), prepares the
 * data directory (setup.c), starts the embedded mock LLM server when no key and no base URL are
 * set, runs the pipeline (cx/pipeline.h) on the package list setup.c made of the arguments, and
 * prints the result: text for people, or exactly one JSON object on `out` under --json.
 * Progress goes to `err`, only when it is a terminal.
 * This file does no LLM, SQL or validation work of its own.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/config.h"
#include "cx/dbpool.h"
#include "cx/history.h"
#include "cx/pipeline.h"
#include "mock/server.h"

/* Largest file `cx diagnose` reads (the pipeline sends at most 4,000 bytes of it). */
#define MAX_DIAG_FILE (1024 * 1024)

/* Everything one invocation holds; released by ctx_clear. */
struct ctx {
    struct cx_cli_args a;
    FILE *out, *err;
    int err_tty;
    struct cx_config cfg;
    int cfg_loaded;
    char db_path[PATH_MAX];
    struct mock_server *mock;
    char base_url[512];
    struct cx_pipeline *p;
    uint64_t start_ns;
    int emitted;          /* the JSON object went out */
    char last_err[512];   /* the last message fail() printed, for the --json error object */
};

static void note(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct ctx *c, const char *fmt, ...)
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

static int fail(struct ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->last_err, sizeof c->last_err, fmt, ap);
    va_end(ap);
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

static int load_config(struct ctx *c)
{
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_config_load(&c->cfg, config_get, c, &ei) < 0)
        return fail(c, CX_EXIT_ERROR, "configuration%s: %s",
                    c->a.redis_url && strstr(ei.msg, "CORTEX_REDIS_URL") ? " (--redis)" : "",
                    ei.msg);
    c->cfg_loaded = 1;
    return 0;
}

static int prepare_data_dir(struct ctx *c)
{
    const char *dir = c->a.data_dir ? c->a.data_dir : c->cfg.data_dir;
    if (dir == NULL)
        return fail(c, CX_EXIT_ERROR,
                    "no data directory: set CORTEX_DATA_DIR, XDG_DATA_HOME or HOME, or pass "
                    "--data-dir");
    char msg[512];
    if (cx_cli_data_dir_prepare(dir, msg, sizeof msg) < 0)
        return fail(c, CX_EXIT_ERROR, "%s", msg);
    int n = snprintf(c->db_path, sizeof c->db_path, "%s/%s", dir, CX_DB_FILE);
    if (n < 0 || (size_t)n >= sizeof c->db_path)
        return fail(c, CX_EXIT_ERROR, "data directory path '%s' is too long", dir);
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
static int prepare_llm(struct ctx *c)
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
        return fail(c, CX_EXIT_ERROR, "cannot start the embedded mock LLM server: %s", err);
    snprintf(c->base_url, sizeof c->base_url, "%s/v1", mock_server_url(c->mock));
    note(c, "no API key set; using the embedded mock LLM server at %s", mock_server_url(c->mock));
    return 0;
}

/* Fleet mode: says once on stderr when Redis went down (and the limits and cache fell back to
 * this process) or came back. Not silenced by --quiet: limits changed. */
static void fleet_notice(struct ctx *c)
{
    char msg[512];
    if (c->p != NULL && cx_pipeline_fleet_notice(c->p, msg, sizeof msg))
        fprintf(c->err, "cx: %s\n", msg);
}

static int open_pipeline(struct ctx *c)
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
        return fail(c, CX_EXIT_ERROR, "%s", ei.msg[0] ? ei.msg : cx_strerror(rc));
    fleet_notice(c);
    return 0;
}

/* ---- output helpers ---- */

static void progress(size_t done, size_t total, void *ud)
{
    struct ctx *c = ud;
    fprintf(c->err, "\r[%zu/%zu] %.1f s", done, total, cx_elapsed_s(c->start_ns, cx_now_ns()));
    if (done == total)
        fputc('\n', c->err);
    fflush(c->err);
}

static void run_options(struct ctx *c, struct cx_run_options *ro)
{
    cx_run_options_init(ro);
    if (c->err_tty && !c->a.quiet && !c->a.json) {
        ro->progress = progress;
        ro->progress_ud = c;
    }
}

static void print_timings(struct ctx *c, const struct cx_timings *t, int install)
{
    if (install)
        fprintf(c->out,
                "timings: parse %.3f s, llm %.3f s, merge %.3f s, apt %.3f s, total %.3f s\n",
                t->parse_s, t->llm_s, t->merge_s, t->apt_s, t->total_s);
    else
        fprintf(c->out, "timings: inputs %.3f s, llm %.3f s, total %.3f s\n", t->parse_s,
                t->llm_s, t->total_s);
}

static cJSON *json_strv(char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a != NULL && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

static cJSON *json_timings(const struct cx_timings *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "parse_s", t->parse_s);
    cJSON_AddNumberToObject(o, "llm_s", t->llm_s);
    cJSON_AddNumberToObject(o, "merge_s", t->merge_s);
    cJSON_AddNumberToObject(o, "apt_s", t->apt_s);
    cJSON_AddNumberToObject(o, "total_s", t->total_s);
    return o;
}

static const char *item_status(const struct cx_item *it)
{
    return it->status == 0 ? "ok" : it->status == CX_EREJECTED ? "rejected" : "failed";
}

/* Prints the one JSON object; returns code, or CX_EXIT_ERROR when it could not be built. */
static int emit_json(struct ctx *c, cJSON *o, int code)
{
    if (o == NULL)
        return fail(c, CX_EXIT_ERROR, "out of memory building the JSON output");
    cJSON_AddNumberToObject(o, "exit_code", code);
    struct cx_fleet_stats fs;
    cx_pipeline_fleet_stats(c->p, &fs);
    if (fs.configured) { /* fleet mode: what the shared Redis tier did in this run */
        cJSON *f = cJSON_AddObjectToObject(o, "fleet");
        cJSON_AddBoolToObject(f, "redis_up", fs.up);
        cJSON_AddNumberToObject(f, "cache_hits", (double)fs.cache_hits);
        cJSON_AddNumberToObject(f, "cache_puts", (double)fs.cache_puts);
        cJSON_AddNumberToObject(f, "flights_waited", (double)fs.flights_waited);
        cJSON_AddNumberToObject(f, "takeovers", (double)fs.takeovers);
        cJSON_AddNumberToObject(f, "outages", (double)fs.outages);
        cJSON_AddNumberToObject(f, "limiter_fallbacks", (double)fs.limiter_fallbacks);
        cJSON_AddNumberToObject(f, "alone", (double)fs.alone);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s == NULL)
        return fail(c, CX_EXIT_ERROR, "out of memory building the JSON output");
    fputs(s, c->out);
    fputc('\n', c->out);
    cJSON_free(s);
    c->emitted = 1;
    return code;
}

/* ---- install ---- */

static int confirm_tty(const struct cx_plan *plan, void *ud)
{
    struct ctx *c = ud;
    if (c->a.yes)
        return 1;
    fprintf(c->err, "Run %zu commands? [y/N] ", plan->n);
    fflush(c->err);
    char line[32];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 0;
    return strcasecmp(line, "y\n") == 0 || strcasecmp(line, "yes\n") == 0 ||
           strcasecmp(line, "y") == 0;
}

static int install_exit_code(int rc)
{
    if (rc == 0)
        return CX_EXIT_OK;
    if (rc == CX_EREJECTED)
        return CX_EXIT_REFUSED;
    if (rc == CX_EFAILED)
        return CX_EXIT_PARTIAL;
    return CX_EXIT_ERROR;
}

static int install_json(struct ctx *c, const struct cx_install_report *r, int code)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return emit_json(c, NULL, code);
    cJSON_AddStringToObject(o, "request", r->request);
    cJSON *pk = cJSON_AddArrayToObject(o, "packages");
    cJSON *rej = cJSON_AddArrayToObject(o, "rejected");
    cJSON *fl = cJSON_AddArrayToObject(o, "failed");
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", it->subject);
        cJSON_AddStringToObject(e, "status", item_status(it));
        cJSON_AddBoolToObject(e, "from_cache", it->from_cache);
        if (it->cache_tier)
            cJSON_AddStringToObject(e, "cache_tier", it->cache_tier); /* local or fleet */
        cJSON_AddItemToObject(e, "commands", json_strv(it->commands, it->n_commands));
        if (it->text)
            cJSON_AddStringToObject(e, "explanation", it->text);
        if (it->error)
            cJSON_AddStringToObject(e, "error", it->error);
        cJSON_AddNumberToObject(e, "latency_s", it->latency_s);
        cJSON_AddItemToArray(pk, e);
        if (it->status == CX_EREJECTED) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "package", it->subject);
            cJSON_AddItemToObject(x, "reasons", json_strv(it->reasons, it->n_reasons));
            cJSON_AddItemToArray(rej, x);
        } else if (it->status < 0) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "package", it->subject);
            cJSON_AddStringToObject(x, "error", it->error ? it->error : "");
            cJSON_AddItemToArray(fl, x);
        }
    }
    cJSON *plan = cJSON_AddObjectToObject(o, "plan");
    cJSON_AddItemToObject(plan, "commands", json_strv(r->plan.commands, r->plan.n));
    cJSON_AddNumberToObject(o, "cache_hits", (double)r->cache_hits);
    cJSON_AddBoolToObject(o, "refused", r->refused);
    if (r->refused_reason)
        cJSON_AddStringToObject(o, "refused_reason", r->refused_reason);
    cJSON *apt = cJSON_AddObjectToObject(o, "apt");
    cJSON_AddStringToObject(apt, "mode", cx_apt_mode_name(r->apt_mode));
    cJSON_AddNumberToObject(apt, "ran", (double)r->ran);
    cJSON_AddNumberToObject(apt, "exit_status", r->exec_status);
    cJSON_AddItemToObject(o, "timings", json_timings(&r->timings));
    cJSON_AddStringToObject(o, "mode", cx_exec_mode_name(r->mode));
    cJSON_AddStringToObject(o, "io_design", cx_io_design_name(r->io));
    cJSON_AddNumberToObject(o, "threads", r->threads);
    if (r->history_id >= 0)
        cJSON_AddNumberToObject(o, "history_id", (double)r->history_id);
    else
        cJSON_AddNullToObject(o, "history_id");
    if (r->history_error)
        cJSON_AddStringToObject(o, "history_error", r->history_error);
    return emit_json(c, o, code);
}

static int install_text(struct ctx *c, const struct cx_install_report *r, int code)
{
    FILE *f = c->out;
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        if (it->status == CX_EREJECTED) {
            fprintf(f, "%s: plan REJECTED by the validator:\n", it->subject);
            for (size_t k = 0; k < it->n_reasons; k++)
                fprintf(f, "    %s\n", it->reasons[k]);
        } else if (it->status < 0) {
            fprintf(f, "%s: query failed: %s\n", it->subject, it->error ? it->error : "");
        }
    }
    fprintf(f, "Plan for %zu package%s (%zu from cache, %s, %s I/O, %d thread%s):\n",
            r->n_items, r->n_items == 1 ? "" : "s", r->cache_hits, cx_exec_mode_name(r->mode),
            cx_io_design_name(r->io), r->threads, r->threads == 1 ? "" : "s");
    for (size_t i = 0; i < r->plan.n; i++)
        fprintf(f, "  %2zu. %s\n", i + 1, r->plan.commands[i]);
    if (r->plan.n == 0)
        fprintf(f, "  (empty: no package got an answer)\n");
    if (r->refused)
        fprintf(f, "Refused: %s; nothing was run.\n", r->refused_reason);
    else if (r->apt_mode == CX_APT_DRY_RUN)
        fprintf(f, "Dry run: nothing was run (use --execute to run the plan).\n");
    else if (r->apt_mode == CX_APT_SIMULATE)
        fprintf(f, "Simulated apt: nothing was run.\n");
    else if (r->exec_status != 0)
        fprintf(f, "Command %zu failed with status %d; stopped.\n", r->ran, r->exec_status);
    else
        fprintf(f, "Ran %zu commands.\n", r->ran);
    if (r->history_id >= 0)
        fprintf(f, "Recorded as history entry %lld.\n", (long long)r->history_id);
    else if (r->history_error)
        fprintf(c->err, "cx: warning: the run was not recorded in the history: %s\n",
                r->history_error);
    print_timings(c, &r->timings, 1);
    return code;
}

static int cmd_install(struct ctx *c)
{
    if (c->a.execute && !c->a.yes && !isatty(STDIN_FILENO))
        return fail(c, CX_EXIT_REFUSED,
                    "--execute asks for confirmation on a terminal; stdin is not one (pass "
                    "--yes to run without asking)");
    /* One argument is one package; bad names are reported before anything starts. */
    const char **pk = NULL;
    size_t npk = 0;
    char msg[512];
    if (cx_cli_packages(c->a.pos, c->a.npos, &pk, &npk, msg, sizeof msg) < 0)
        return fail(c, CX_EXIT_USAGE, "%s", msg);
    int rc = prepare_data_dir(c);
    if (rc == 0)
        rc = prepare_llm(c);
    if (rc == 0)
        rc = open_pipeline(c);
    if (rc != 0) {
        free(pk);
        return rc;
    }
    struct cx_run_options ro;
    run_options(c, &ro);
    if (c->a.simulate) {
        ro.apt_mode = CX_APT_SIMULATE;
        ro.apt_sim_ns = c->a.simulate_ns;
    } else if (c->a.execute) {
        ro.apt_mode = CX_APT_EXECUTE;
        ro.confirm = confirm_tty;
        ro.confirm_ud = c;
        ro.execute = cx_cli_run_shell;
    }
    struct cx_install_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rc = cx_pipeline_install(c->p, pk, npk, &ro, &r, &ei);
    free(pk);
    if (r == NULL)
        return fail(c, rc == CX_EINVAL ? CX_EXIT_USAGE : CX_EXIT_ERROR, "install: %s",
                    ei.msg[0] ? ei.msg : cx_strerror(rc));
    int code = install_exit_code(rc);
    if (code == CX_EXIT_PARTIAL && r->failed == r->n_items)
        code = CX_EXIT_ERROR; /* nothing answered: an error, not a partial result */
    code = c->a.json ? install_json(c, r, code) : install_text(c, r, code);
    cx_install_report_free(r);
    return code;
}

/* ---- diagnose and hwcheck ---- */

static int fanout_json(struct ctx *c, const struct cx_fanout_report *r, const char *key,
                       int code)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return emit_json(c, NULL, code);
    cJSON *arr = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, key, it->subject);
        cJSON_AddStringToObject(e, "status", item_status(it));
        cJSON_AddBoolToObject(e, "from_cache", it->from_cache);
        if (it->cache_tier)
            cJSON_AddStringToObject(e, "cache_tier", it->cache_tier); /* local or fleet */
        if (it->details)
            cJSON_AddStringToObject(e, "details", it->details);
        if (it->text)
            cJSON_AddStringToObject(e, "cause", it->text);
        if (it->n_advice)
            cJSON_AddItemToObject(e, "recommendations", json_strv(it->advice, it->n_advice));
        cJSON_AddItemToObject(e, "commands", json_strv(it->commands, it->n_commands));
        if (it->error)
            cJSON_AddStringToObject(e, "error", it->error);
        if (it->n_reasons)
            cJSON_AddItemToObject(e, "reasons", json_strv(it->reasons, it->n_reasons));
        cJSON_AddNumberToObject(e, "latency_s", it->latency_s);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(o, "cache_hits", (double)r->cache_hits);
    cJSON_AddNumberToObject(o, "failed", (double)r->failed);
    cJSON_AddItemToObject(o, "timings", json_timings(&r->timings));
    cJSON_AddStringToObject(o, "mode", cx_exec_mode_name(r->mode));
    cJSON_AddStringToObject(o, "io_design", cx_io_design_name(r->io));
    cJSON_AddNumberToObject(o, "threads", r->threads);
    return emit_json(c, o, code);
}

static void fanout_text(struct ctx *c, const struct cx_fanout_report *r, int diag)
{
    FILE *f = c->out;
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        fprintf(f, "== %s%s ==\n", it->subject, it->from_cache ? " (cached)" : "");
        if (it->details && *it->details)
            fprintf(f, "found: %s\n", it->details);
        if (it->status == CX_EREJECTED) {
            fprintf(f, "answer REJECTED by the validator:\n");
            for (size_t k = 0; k < it->n_reasons; k++)
                fprintf(f, "    %s\n", it->reasons[k]);
            continue;
        }
        if (it->status < 0) {
            fprintf(f, "failed: %s\n", it->error ? it->error : "");
            continue;
        }
        if (diag && it->text)
            fprintf(f, "cause: %s\n", it->text);
        for (size_t k = 0; k < it->n_advice; k++)
            fprintf(f, "  - %s\n", it->advice[k]);
        if (it->n_commands)
            fprintf(f, "%s:\n", diag ? "fix" : "commands");
        for (size_t k = 0; k < it->n_commands; k++)
            fprintf(f, "    %s\n", it->commands[k]);
    }
    print_timings(c, &r->timings, 0);
}

/* Reads a whole file into a malloc'd string; names the path on failure. */
static int read_file(struct ctx *c, const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(c, CX_EXIT_ERROR, "cannot read '%s': %s", path, strerror(errno));
    char *buf = malloc(MAX_DIAG_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        return fail(c, CX_EXIT_ERROR, "out of memory");
    }
    size_t n = fread(buf, 1, MAX_DIAG_FILE, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fail(c, CX_EXIT_ERROR, "cannot read '%s': read error", path);
    }
    buf[n] = '\0';
    int binary = strlen(buf) != n;
    if (binary || strspn(buf, " \t\r\n") == n) {
        free(buf);
        return fail(c, CX_EXIT_ERROR, "'%s' %s", path,
                    binary ? "is not a text file" : "holds no error message (it is empty)");
    }
    *out = buf;
    return 0;
}

static int cmd_diagnose(struct ctx *c)
{
    int n = c->a.npos;
    char **texts = calloc((size_t)n, sizeof *texts);
    if (texts == NULL)
        return fail(c, CX_EXIT_ERROR, "out of memory");
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = read_file(c, c->a.pos[i], &texts[i]);
    if (rc == 0)
        rc = prepare_data_dir(c);
    if (rc == 0)
        rc = prepare_llm(c);
    if (rc == 0)
        rc = open_pipeline(c);
    if (rc == 0) {
        struct cx_run_options ro;
        run_options(c, &ro);
        struct cx_fanout_report *r = NULL;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int prc = cx_pipeline_diagnose(c->p, (const char *const *)texts,
                                       (const char *const *)c->a.pos, (size_t)n, &ro, &r, &ei);
        if (r == NULL) {
            rc = fail(c, CX_EXIT_ERROR, "diagnose: %s", ei.msg[0] ? ei.msg : cx_strerror(prc));
        } else {
            rc = prc == 0 ? CX_EXIT_OK : r->failed < r->n_items ? CX_EXIT_PARTIAL : CX_EXIT_ERROR;
            if (c->a.json)
                rc = fanout_json(c, r, "file", rc);
            else
                fanout_text(c, r, 1);
            cx_fanout_report_free(r);
        }
    }
    for (int i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    return rc;
}

static int cmd_hwcheck(struct ctx *c)
{
    int rc = prepare_data_dir(c);
    if (rc == 0)
        rc = prepare_llm(c);
    if (rc == 0)
        rc = open_pipeline(c);
    if (rc != 0)
        return rc;
    struct cx_run_options ro;
    run_options(c, &ro);
    struct cx_fanout_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int prc = cx_pipeline_hwcheck(c->p, c->a.data_dir ? c->a.data_dir : c->cfg.data_dir, &ro, &r,
                                  &ei);
    if (r == NULL)
        return fail(c, CX_EXIT_ERROR, "hwcheck: %s", ei.msg[0] ? ei.msg : cx_strerror(prc));
    rc = prc == 0 ? CX_EXIT_OK : r->failed < r->n_items ? CX_EXIT_PARTIAL : CX_EXIT_ERROR;
    if (c->a.json)
        rc = fanout_json(c, r, "component", rc);
    else
        fanout_text(c, r, 0);
    cx_fanout_report_free(r);
    return rc;
}

/* ---- cache and history: the database only, no LLM ---- */

static int open_db(struct ctx *c, struct cx_pool **pool, struct cx_cache **cache)
{
    int rc = prepare_data_dir(c);
    if (rc != 0)
        return rc;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = c->db_path;
    po.readers = c->cfg.db_pool_size > 0 ? c->cfg.db_pool_size : 1;
    if (cx_pool_new(&po, pool, &ei) < 0)
        return fail(c, CX_EXIT_ERROR, "%s", ei.msg);
    if (cache != NULL) {
        struct cx_cache_options co;
        cx_cache_options_init(&co);
        if (cx_cache_new(*pool, &co, cache, &ei) < 0) {
            cx_pool_free(*pool);
            *pool = NULL;
            return fail(c, CX_EXIT_ERROR, "cache in '%s': %s", c->db_path, ei.msg);
        }
    }
    return 0;
}

static int cmd_cache(struct ctx *c)
{
    struct cx_pool *pool = NULL;
    struct cx_cache *cache = NULL;
    int rc = open_db(c, &pool, &cache);
    if (rc != 0)
        return rc;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    struct cx_cache_stats st;
    if (cx_cache_stats(cache, &st, &ei) < 0) {
        rc = fail(c, CX_EXIT_ERROR, "cache stats: %s", ei.msg);
        goto out;
    }
    if (strcmp(c->a.pos[0], "clear") == 0) {
        if (cx_cache_clear(cache, &ei) < 0) {
            rc = fail(c, CX_EXIT_ERROR, "cache clear: %s", ei.msg);
            goto out;
        }
        if (c->a.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "cleared", (double)st.entries);
            cJSON_AddStringToObject(o, "database", c->db_path);
            rc = emit_json(c, o, CX_EXIT_OK);
        } else {
            fprintf(c->out, "Cleared %zu cached answer%s from %s.\n", st.entries,
                    st.entries == 1 ? "" : "s", c->db_path);
        }
        goto out;
    }
    uint64_t total = st.hits + st.misses;
    double rate = total ? (double)st.hits / (double)total : 0.0;
    if (c->a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "entries", (double)st.entries);
        cJSON_AddNumberToObject(o, "hits", (double)st.hits);
        cJSON_AddNumberToObject(o, "misses", (double)st.misses);
        cJSON_AddNumberToObject(o, "hit_rate", rate);
        cJSON_AddStringToObject(o, "database", c->db_path);
        rc = emit_json(c, o, CX_EXIT_OK);
    } else {
        fprintf(c->out, "database: %s\nentries:  %zu\nhits:     %llu\nmisses:   %llu\n"
                        "hit rate: %.1f%%\n",
                c->db_path, st.entries, (unsigned long long)st.hits,
                (unsigned long long)st.misses, rate * 100.0);
    }
out:
    cx_cache_free(cache);
    cx_pool_free(pool);
    return rc;
}

static const char *status_name(int st)
{
    return st == 0 ? "ok" : st == CX_EREJECTED ? "refused" : st == CX_EFAILED ? "partial"
                                                                            : cx_err_name(st);
}

/* A stored JSON text as a cJSON value (a string when it does not parse). */
static cJSON *json_or_string(const char *text)
{
    if (text == NULL)
        return cJSON_CreateNull();
    cJSON *v = cJSON_Parse(text);
    return v ? v : cJSON_CreateString(text);
}

static int history_list(struct ctx *c, struct cx_pool *pool)
{
    struct cx_history_entry *e = NULL;
    size_t n = 0;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_history_list(pool, (size_t)c->a.limit, &e, &n, &ei) < 0)
        return fail(c, CX_EXIT_ERROR, "history in '%s': %s", c->db_path, ei.msg);
    int rc = CX_EXIT_OK;
    if (c->a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *runs = cJSON_AddArrayToObject(o, "runs");
        for (size_t i = 0; i < n; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "id", (double)e[i].id);
            cJSON_AddStringToObject(r, "created_at", e[i].created_at ? e[i].created_at : "");
            cJSON_AddStringToObject(r, "request", e[i].request ? e[i].request : "");
            cJSON_AddItemToObject(r, "plan", json_or_string(e[i].plan_json));
            cJSON_AddItemToObject(r, "validation", json_or_string(e[i].validation_json));
            cJSON_AddStringToObject(r, "executed", e[i].executed ? e[i].executed : "");
            cJSON_AddStringToObject(r, "status", status_name(e[i].status));
            cJSON_AddNumberToObject(r, "commands_run", e[i].commands_run);
            struct cx_timings t = {e[i].parse_s, e[i].llm_s, e[i].merge_s, e[i].apt_s,
                                   e[i].total_s};
            cJSON_AddItemToObject(r, "timings", json_timings(&t));
            cJSON_AddItemToArray(runs, r);
        }
        cJSON_AddStringToObject(o, "database", c->db_path);
        rc = emit_json(c, o, CX_EXIT_OK);
    } else if (n == 0) {
        fprintf(c->out, "No install runs recorded in %s.\n", c->db_path);
    } else {
        fprintf(c->out, "%6s  %-24s  %-8s  %-9s  %4s  %8s  %s\n", "ID", "WHEN (UTC)", "STATUS",
                "EXECUTED", "RAN", "TOTAL", "REQUEST");
        for (size_t i = 0; i < n; i++)
            fprintf(c->out, "%6lld  %-24s  %-8s  %-9s  %4d  %7.3fs  %s\n", (long long)e[i].id,
                    e[i].created_at ? e[i].created_at : "", status_name(e[i].status),
                    e[i].executed ? e[i].executed : "", e[i].commands_run, e[i].total_s,
                    e[i].request ? e[i].request : "");
    }
    cx_history_entries_free(e, n);
    return rc;
}

static int cmd_history(struct ctx *c)
{
    struct cx_pool *pool = NULL;
    int rc = open_db(c, &pool, NULL);
    if (rc != 0)
        return rc;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_history_init(pool, &ei) < 0)
        rc = fail(c, CX_EXIT_ERROR, "history in '%s': %s", c->db_path, ei.msg);
    else
        rc = history_list(c, pool);
    cx_pool_free(pool);
    return rc;
}

/* ---- entry point ---- */

int cx_cli_main(int argc, char **argv, FILE *out, FILE *err)
{
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.out = out;
    c.err = err;
    c.err_tty = isatty(fileno(err));
    c.start_ns = cx_now_ns();
    char msg[256];
    int rc = cx_cli_parse_args(argc, argv, &c.a, msg, sizeof msg);
    if (rc != 0) {
        fprintf(err, "cx: %s\nTry 'cx --help'.\n", msg);
        if (c.a.json) {
            snprintf(c.last_err, sizeof c.last_err, "%s", msg);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "error", c.last_err);
            emit_json(&c, o, CX_EXIT_USAGE);
        }
        cx_cli_args_clear(&c.a);
        return CX_EXIT_USAGE;
    }
    const char *cmd = c.a.command;
    if (c.a.help || cmd == NULL || strcmp(cmd, "help") == 0) {
        cx_cli_usage(out);
        cx_cli_args_clear(&c.a);
        return CX_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0) {
        fprintf(out, "cx %s\n", cx_version());
        cx_cli_args_clear(&c.a);
        return CX_EXIT_OK;
    }
    rc = load_config(&c);
    if (rc == 0) {
        if (strcmp(cmd, "install") == 0)
            rc = cmd_install(&c);
        else if (strcmp(cmd, "diagnose") == 0)
            rc = cmd_diagnose(&c);
        else if (strcmp(cmd, "hwcheck") == 0)
            rc = cmd_hwcheck(&c);
        else if (strcmp(cmd, "cache") == 0)
            rc = cmd_cache(&c);
        else
            rc = cmd_history(&c);
    }
    /* Under --json a failure still prints one object, so scripts always get one. */
    if (c.a.json && !c.emitted && rc != CX_EXIT_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", c.last_err[0] ? c.last_err : "failed");
        rc = emit_json(&c, o, rc);
    }
    fleet_notice(&c);
    cx_pipeline_free(c.p);
    mock_server_stop(c.mock);
    if (c.cfg_loaded)
        cx_config_clear(&c.cfg);
    cx_cli_args_clear(&c.a);
    fflush(out);
    return rc;
}
