/*
 * cli/cli_internal.h - what the cx command's files share and nothing else includes: the state
 * of one invocation (struct ctx) and the set-up and output helpers every command uses.
 *   session.c      messages, configuration, data directory, LLM endpoint, pipeline;
 *   output.c       progress, timings, JSON helpers, the one --json object;
 *   cmd_install.c, cmd_fanout.c (diagnose, hwcheck), cmd_db.c (cache, history): the commands;
 *   commands.c     cx_cli_main: parse, dispatch, release.
 */
#ifndef CX_CLI_INTERNAL_H
#define CX_CLI_INTERNAL_H

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "cx/config.h"
#include "cx/pipeline.h"

struct mock_server;

/* Everything one invocation holds; released at the end of cx_cli_main. */
struct ctx {
    struct cx_cli_args a;
    FILE *out, *err;
    int err_tty;
    struct cx_config cfg;
    int cfg_loaded;
    char db_path[PATH_MAX];
    int read_only_ok;     /* the command only reads the database (history, cache stats) */
    int db_read_only;     /* ... and the data directory cannot be written: read a copy */
    char ro_dir[PATH_MAX];/* that copy's private directory, removed at the end ("" if none) */
    struct mock_server *mock;
    char base_url[512];
    enum cx_provider format;  /* with a base URL: CX_PROVIDER_CLAUDE (Anthropic format) or OPENAI */
    const char *key;          /* --api-key-env's value (borrowed from the environment), or NULL */
    struct cx_pipeline *p;
    uint64_t start_ns;
    int emitted;          /* the JSON object went out */
    int limiter_noted;    /* the terminal was told the run waits on the rate limiter */
    char last_err[512];   /* the last message cx__cli_fail printed, for the --json error object */
};

/* ---- session.c ---- */

/* A note on stderr ("cx: ..."), unless --quiet. */
void cx__cli_note(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "cx: MSG" on stderr, keeps it for the --json error object and returns code. */
int cx__cli_fail(struct ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Each returns 0 or a CX_EXIT_* code after printing why. */
int cx__cli_load_config(struct ctx *c);
/* Fleet mode: prints the pipeline's pending fleet notice (Redis lost or back), if any. */
void cx__cli_fleet_notice(struct ctx *c);
int cx__cli_data_dir(struct ctx *c);
int cx__cli_llm(struct ctx *c);
int cx__cli_pipeline(struct ctx *c);
/* Moves a corrupt c->db_path aside (cortex.db.corrupt-DATE) and says so; 0, or -1 after
 * printing why it could not. */
int cx__cli_db_set_aside(struct ctx *c, const char *why);

/* ---- output.c ---- */

void cx__cli_run_options(struct ctx *c, struct cx_run_options *ro);
void cx__cli_print_timings(struct ctx *c, const struct cx_timings *t, int install);
cJSON *cx__cli_json_strv(char *const *v, size_t n);
cJSON *cx__cli_json_timings(const struct cx_timings *t);
const char *cx__cli_item_status(const struct cx_item *it);
/* Prints the one JSON object (taken) with "exit_code"; returns code, or CX_EXIT_ERROR when it
 * could not be built. */
int cx__cli_emit_json(struct ctx *c, cJSON *o, int code);

/* ---- the commands: each returns a CX_EXIT_* code ---- */

int cx__cli_install(struct ctx *c);
int cx__cli_diagnose(struct ctx *c);
int cx__cli_hwcheck(struct ctx *c);
int cx__cli_cache(struct ctx *c);
int cx__cli_history(struct ctx *c);
/* Removes the private copy a read-only data directory made cmd_db.c read (if any). */
void cx__cli_read_only_done(struct ctx *c);

#endif /* CX_CLI_INTERNAL_H */
