/*
 * cli/output.c - what the commands print in common: progress on a terminal, timings, the JSON
 * helpers and the one JSON object a --json run prints on stdout.
 * What it does not do: decide what a command prints (cmd_*.c).
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
#include "cx/clock.h"
#include "cx/limiter.h"
#include "cx/pipeline.h"

/* ---- output helpers ---- */

/* Once per run, on the terminal: when queries queue for the request limiter's tokens (its
 * balance is negative), the limiter and not the server is what the run waits on; say so, and
 * how to turn it off, instead of a counter creeping along in silence. */
static void limiter_note(struct ctx *c)
{
    struct cx_limiter *l = cx_pipeline_limiter(c->p);
    if (c->limiter_noted || l == NULL || cx_limiter_tokens(l) >= 0)
        return;
    c->limiter_noted = 1;
    fprintf(c->err, "\rcx: waiting on the request rate limiter: %g requests/s "
                    "(CORTEX_RATE_LIMIT_RPS; 0 or inf turns it off)\n",
            cx_limiter_rate(l));
}

static void progress(size_t done, size_t total, void *ud)
{
    struct ctx *c = ud;
    if (done < total)
        limiter_note(c);
    fprintf(c->err, "\r[%zu/%zu] %.1f s", done, total, cx_elapsed_s(c->start_ns, cx_now_ns()));
    if (done == total)
        fputc('\n', c->err);
    fflush(c->err);
}

void cx__cli_run_options(struct ctx *c, struct cx_run_options *ro)
{
    cx_run_options_init(ro);
    if (c->err_tty && !c->a.quiet && !c->a.json) {
        ro->progress = progress;
        ro->progress_ud = c;
    }
}

void cx__cli_print_timings(struct ctx *c, const struct cx_timings *t, int install)
{
    if (install)
        fprintf(c->out,
                "timings: parse %.3f s, llm %.3f s, merge %.3f s, apt %.3f s, total %.3f s\n",
                t->parse_s, t->llm_s, t->merge_s, t->apt_s, t->total_s);
    else
        fprintf(c->out, "timings: inputs %.3f s, llm %.3f s, total %.3f s\n", t->parse_s,
                t->llm_s, t->total_s);
    if (t->limiter_wait_s > 0)
        fprintf(c->out, "  of it %.3f s waiting on the request rate limiter (CORTEX_RATE_LIMIT_RPS)\n",
                t->limiter_wait_s);
}

cJSON *cx__cli_json_strv(char *const *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a != NULL && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

cJSON *cx__cli_json_timings(const struct cx_timings *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "parse_s", t->parse_s);
    cJSON_AddNumberToObject(o, "llm_s", t->llm_s);
    cJSON_AddNumberToObject(o, "merge_s", t->merge_s);
    cJSON_AddNumberToObject(o, "apt_s", t->apt_s);
    cJSON_AddNumberToObject(o, "total_s", t->total_s);
    cJSON_AddNumberToObject(o, "limiter_wait_s", t->limiter_wait_s);
    return o;
}

const char *cx__cli_item_status(const struct cx_item *it)
{
    return it->status == 0 ? "ok" : it->status == CX_EREJECTED ? "rejected" : "failed";
}

/* Prints the one JSON object; returns code, or CX_EXIT_ERROR when it could not be built. */
int cx__cli_emit_json(struct ctx *c, cJSON *o, int code)
{
    if (o == NULL)
        return cx__cli_fail(c, CX_EXIT_ERROR, "out of memory building the JSON output");
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
        return cx__cli_fail(c, CX_EXIT_ERROR, "out of memory building the JSON output");
    fputs(s, c->out);
    fputc('\n', c->out);
    cJSON_free(s);
    c->emitted = 1;
    return code;
}

