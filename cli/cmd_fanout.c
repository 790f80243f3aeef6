/*
 * cli/cmd_fanout.c - `cx diagnose FILE...` and `cx hwcheck`: the pipeline's two other fan-outs
 * (one query per error message, one per hardware component) and their reports.
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
#include "cx/pipeline.h"

/* Largest file `cx diagnose` reads (the pipeline sends at most 4,000 bytes of it). */
#define MAX_DIAG_FILE (1024 * 1024)

/* ---- diagnose and hwcheck ---- */

static int fanout_json(struct ctx *c, const struct cx_fanout_report *r, const char *key,
                       int code)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return cx__cli_emit_json(c, NULL, code);
    cJSON *arr = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, key, it->subject);
        cJSON_AddStringToObject(e, "status", cx__cli_item_status(it));
        cJSON_AddBoolToObject(e, "from_cache", it->from_cache);
        if (it->cache_tier)
            cJSON_AddStringToObject(e, "cache_tier", it->cache_tier); /* local or fleet */
        if (it->details)
            cJSON_AddStringToObject(e, "details", it->details);
        if (it->text)
            cJSON_AddStringToObject(e, "cause", it->text);
        if (it->n_advice)
            cJSON_AddItemToObject(e, "recommendations", cx__cli_json_strv(it->advice, it->n_advice));
        cJSON_AddItemToObject(e, "commands", cx__cli_json_strv(it->commands, it->n_commands));
        if (it->error)
            cJSON_AddStringToObject(e, "error", it->error);
        if (it->n_reasons)
            cJSON_AddItemToObject(e, "reasons", cx__cli_json_strv(it->reasons, it->n_reasons));
        cJSON_AddNumberToObject(e, "latency_s", it->latency_s);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(o, "cache_hits", (double)r->cache_hits);
    cJSON_AddNumberToObject(o, "failed", (double)r->failed);
    cJSON_AddItemToObject(o, "timings", cx__cli_json_timings(&r->timings));
    cJSON_AddStringToObject(o, "mode", cx_exec_mode_name(r->mode));
    cJSON_AddStringToObject(o, "io_design", cx_io_design_name(r->io));
    cJSON_AddNumberToObject(o, "threads", r->threads);
    return cx__cli_emit_json(c, o, code);
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
    cx__cli_print_timings(c, &r->timings, 0);
}

/* Reads a whole file into a malloc'd string; names the path on failure. */
static int read_file(struct ctx *c, const char *path, char **out)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return cx__cli_fail(c, CX_EXIT_ERROR, "cannot read '%s': it is a directory (name the file "
                                              "holding the error message)", path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cx__cli_fail(c, CX_EXIT_ERROR, "cannot read '%s': %s", path, strerror(errno));
    char *buf = malloc(MAX_DIAG_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        return cx__cli_fail(c, CX_EXIT_ERROR, "out of memory");
    }
    size_t n = fread(buf, 1, MAX_DIAG_FILE, f);
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return cx__cli_fail(c, CX_EXIT_ERROR, "cannot read '%s': %s", path, strerror(e));
    }
    buf[n] = '\0';
    int binary = strlen(buf) != n;
    if (binary || strspn(buf, " \t\r\n") == n) {
        free(buf);
        return cx__cli_fail(c, CX_EXIT_ERROR, "'%s' %s", path,
                    binary ? "is not a text file" : "holds no error message (it is empty)");
    }
    *out = buf;
    return 0;
}

int cx__cli_diagnose(struct ctx *c)
{
    int n = c->a.npos;
    char **texts = calloc((size_t)n, sizeof *texts);
    if (texts == NULL)
        return cx__cli_fail(c, CX_EXIT_ERROR, "out of memory");
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = read_file(c, c->a.pos[i], &texts[i]);
    if (rc == 0)
        rc = cx__cli_data_dir(c);
    if (rc == 0)
        rc = cx__cli_llm(c);
    if (rc == 0)
        rc = cx__cli_pipeline(c);
    if (rc == 0) {
        struct cx_run_options ro;
        cx__cli_run_options(c, &ro);
        struct cx_fanout_report *r = NULL;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int prc = cx_pipeline_diagnose(c->p, (const char *const *)texts,
                                       (const char *const *)c->a.pos, (size_t)n, &ro, &r, &ei);
        if (r == NULL) {
            rc = cx__cli_fail(c, CX_EXIT_ERROR, "diagnose: %s", ei.msg[0] ? ei.msg : cx_strerror(prc));
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

int cx__cli_hwcheck(struct ctx *c)
{
    int rc = cx__cli_data_dir(c);
    if (rc == 0)
        rc = cx__cli_llm(c);
    if (rc == 0)
        rc = cx__cli_pipeline(c);
    if (rc != 0)
        return rc;
    struct cx_run_options ro;
    cx__cli_run_options(c, &ro);
    struct cx_fanout_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int prc = cx_pipeline_hwcheck(c->p, c->a.data_dir ? c->a.data_dir : c->cfg.data_dir, &ro, &r,
                                  &ei);
    if (r == NULL)
        return cx__cli_fail(c, CX_EXIT_ERROR, "hwcheck: %s", ei.msg[0] ? ei.msg : cx_strerror(prc));
    rc = prc == 0 ? CX_EXIT_OK : r->failed < r->n_items ? CX_EXIT_PARTIAL : CX_EXIT_ERROR;
    if (c->a.json)
        rc = fanout_json(c, r, "component", rc);
    else
        fanout_text(c, r, 0);
    cx_fanout_report_free(r);
    return rc;
}

