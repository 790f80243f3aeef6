/*
 * cli/commands.c - the cx entry point: parses the command line, loads the configuration and
 * dispatches to the command (cmd_install.c, cmd_fanout.c, cmd_db.c); under --json a failure
 * still prints one JSON object. Then it releases what the invocation held.
 * This file does no LLM, SQL or validation work of its own.
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
#include "cx/pipeline.h"
#include "mock/server.h"

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
            cx__cli_emit_json(&c, o, CX_EXIT_USAGE);
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
    rc = cx__cli_load_config(&c);
    if (rc == 0) {
        if (strcmp(cmd, "install") == 0)
            rc = cx__cli_install(&c);
        else if (strcmp(cmd, "diagnose") == 0)
            rc = cx__cli_diagnose(&c);
        else if (strcmp(cmd, "hwcheck") == 0)
            rc = cx__cli_hwcheck(&c);
        else if (strcmp(cmd, "cache") == 0)
            rc = cx__cli_cache(&c);
        else
            rc = cx__cli_history(&c);
    }
    /* Under --json a failure still prints one object, so scripts always get one. */
    if (c.a.json && !c.emitted && rc != CX_EXIT_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", c.last_err[0] ? c.last_err : "failed");
        rc = cx__cli_emit_json(&c, o, rc);
    }
    cx__cli_fleet_notice(&c);
    cx__cli_read_only_done(&c);
    cx_pipeline_free(c.p);
    mock_server_stop(c.mock);
    if (c.cfg_loaded)
        cx_config_clear(&c.cfg);
    cx_cli_args_clear(&c.a);
    fflush(out);
    return rc;
}

