/*
 * cli/cmd_install.c - `cx install PKG...`: the package list (one argument, one package), the
 * pipeline's install run, the confirmation --execute asks for, and the report as text or JSON.
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
        return cx__cli_emit_json(c, NULL, code);
    cJSON_AddStringToObject(o, "request", r->request);
    cJSON *pk = cJSON_AddArrayToObject(o, "packages");
    cJSON *rej = cJSON_AddArrayToObject(o, "rejected");
    cJSON *fl = cJSON_AddArrayToObject(o, "failed");
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", it->subject);
        cJSON_AddStringToObject(e, "status", cx__cli_item_status(it));
        cJSON_AddBoolToObject(e, "from_cache", it->from_cache);
        if (it->cache_tier)
            cJSON_AddStringToObject(e, "cache_tier", it->cache_tier); /* local or fleet */
        cJSON_AddItemToObject(e, "commands", cx__cli_json_strv(it->commands, it->n_commands));
        if (it->text)
            cJSON_AddStringToObject(e, "explanation", it->text);
        if (it->error)
            cJSON_AddStringToObject(e, "error", it->error);
        cJSON_AddNumberToObject(e, "latency_s", it->latency_s);
        cJSON_AddItemToArray(pk, e);
        if (it->status == CX_EREJECTED) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "package", it->subject);
            cJSON_AddItemToObject(x, "reasons", cx__cli_json_strv(it->reasons, it->n_reasons));
            cJSON_AddItemToArray(rej, x);
        } else if (it->status < 0) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "package", it->subject);
            cJSON_AddStringToObject(x, "error", it->error ? it->error : "");
            cJSON_AddItemToArray(fl, x);
        }
    }
    cJSON *plan = cJSON_AddObjectToObject(o, "plan");
    cJSON_AddItemToObject(plan, "commands", cx__cli_json_strv(r->plan.commands, r->plan.n));
    cJSON_AddNumberToObject(o, "cache_hits", (double)r->cache_hits);
    cJSON_AddBoolToObject(o, "refused", r->refused);
    if (r->refused_reason)
        cJSON_AddStringToObject(o, "refused_reason", r->refused_reason);
    cJSON *apt = cJSON_AddObjectToObject(o, "apt");
    cJSON_AddStringToObject(apt, "mode", cx_apt_mode_name(r->apt_mode));
    cJSON_AddNumberToObject(apt, "ran", (double)r->ran);
    cJSON_AddNumberToObject(apt, "exit_status", r->exec_status);
    cJSON_AddItemToObject(o, "timings", cx__cli_json_timings(&r->timings));
    cJSON_AddStringToObject(o, "mode", cx_exec_mode_name(r->mode));
    cJSON_AddStringToObject(o, "io_design", cx_io_design_name(r->io));
    cJSON_AddNumberToObject(o, "threads", r->threads);
    if (r->history_id >= 0)
        cJSON_AddNumberToObject(o, "history_id", (double)r->history_id);
    else
        cJSON_AddNullToObject(o, "history_id");
    if (r->history_error)
        cJSON_AddStringToObject(o, "history_error", r->history_error);
    return cx__cli_emit_json(c, o, code);
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
        fprintf(f, r->rejected == 0 ? "  (empty: no package got an answer)\n"
                   : r->failed == 0 ? "  (empty: the validator rejected the plan%s)\n"
                                    : "  (empty: the validator rejected the plan%s; the other "
                                      "queries failed)\n",
                r->rejected == 1 ? "" : "s");
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
    else if (r->history_error) { /* a warning, shown even under --quiet */
        fflush(f); /* after the lines above, never inside one when both streams share a pipe */
        fprintf(c->err, "cx: warning: the run was not recorded in the history: %s\n",
                r->history_error);
    }
    cx__cli_print_timings(c, &r->timings, 1);
    return code;
}

int cx__cli_install(struct ctx *c)
{
    if (c->a.execute && !c->a.yes && !isatty(STDIN_FILENO))
        return cx__cli_fail(c, CX_EXIT_REFUSED,
                    "--execute asks for confirmation on a terminal; stdin is not one (pass "
                    "--yes to run without asking)");
    /* One argument is one package; bad names are reported before anything starts. */
    const char **pk = NULL;
    size_t npk = 0;
    char msg[512];
    if (cx_cli_packages(c->a.pos, c->a.npos, &pk, &npk, msg, sizeof msg) < 0)
        return cx__cli_fail(c, CX_EXIT_USAGE, "%s", msg);
    int rc = cx__cli_data_dir(c);
    if (rc == 0)
        rc = cx__cli_llm(c);
    if (rc == 0)
        rc = cx__cli_pipeline(c);
    if (rc != 0) {
        free(pk);
        return rc;
    }
    struct cx_run_options ro;
    cx__cli_run_options(c, &ro);
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
        return cx__cli_fail(c, rc == CX_EINVAL ? CX_EXIT_USAGE : CX_EXIT_ERROR, "install: %s",
                    ei.msg[0] ? ei.msg : cx_strerror(rc));
    int code = install_exit_code(rc);
    if (code == CX_EXIT_PARTIAL && r->failed == r->n_items)
        code = CX_EXIT_ERROR; /* nothing answered: an error, not a partial result */
    code = c->a.json ? install_json(c, r, code) : install_text(c, r, code);
    cx_install_report_free(r);
    return code;
}

