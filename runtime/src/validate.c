/*
 * validate.c - the validator's API: cx_validate_command, cx_validate_commands,
 * cx_validate_package_name, and the reason helpers every part uses.
 *
 * The validator refuses dangerous shell commands with a reason. Its parts: validate_lex.c
 * reads the text as bash would; validate_simple.c checks each simple command (shells,
 * interpreters, downloads); validate_indirect.c follows what runs other commands (wrappers,
 * xargs, at, find -exec, functions); validate_rules.c holds the rule table with the file and
 * disk rules, validate_system.c the rules for services, accounts and the network;
 * validate_code.c reads settings and interpreter code; validate_path.c classifies paths. Nothing is allocated except the reasons of cx_validate_commands: each nesting
 * level uses a bounded stack frame.
 *
 * What it does not do: it does not emulate the shell (variables, functions and aliases are
 * tracked only as far as validate_lex.c and validate_indirect.c record them; no PATH lookup), and it cannot stop a trusted command from
 * doing harm through its own configuration. It refuses rather than guesses: unterminated
 * quotes, too many words, and nesting deeper than MAX_DEPTH are rejected.
 */
#include "cx/validate.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cx_internal.h"
#include "cx_testing.h"
#include "validate_internal.h"

int cx__vd_reject(struct vctx *v, const char *fmt, ...) {
    if (v->reason && v->reason_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->reason, v->reason_len, fmt, ap);
        va_end(ap);
    }
    return 1;
}

/* Copies s for a reason, replacing markers with readable text. */
void cx__vd_show(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 1 < cap; s++) {
        const char *rep = NULL;
        if (*s == MK_DYN) rep = "$VAR";
        else if (*s == MK_HOME) rep = "~";
        if (rep) {
            size_t l = strlen(rep);
            if (o + l + 1 >= cap) break;
            memcpy(out + o, rep, l);
            o += l;
        } else {
            out[o++] = (unsigned char)*s < 32 ? ' ' : *s;
        }
    }
    out[o] = '\0';
}

/* ---- public API ---- */

/* Checks one command with the state (downloads, variables, directory) left in v by earlier
 * commands of the same script. */
static int validate_one(struct vctx *v, const char *cmd, char *reason, size_t reason_len) {
    if (reason && reason_len) reason[0] = '\0';
    v->reason = reason;
    v->reason_len = reason_len;
    size_t len = strlen(cmd);
    if (len > CX_VALIDATE_MAX_CMD) {
        cx__vd_reject(v, "command is longer than %d bytes, too long to check", CX_VALIDATE_MAX_CMD);
        return CX_EREJECTED;
    }
    for (size_t i = 0; i < len; i++) {
        if (cmd[i] == MK_DYN || cmd[i] == MK_HOME) {
            cx__vd_reject(v, "contains control characters");
            return CX_EREJECTED;
        }
    }
    return cx__vd_check_text(v, cmd, len, 0, NULL) ? CX_EREJECTED : 0;
}

int cx_validate_command(const char *cmd, char *reason, size_t reason_len) {
    if (reason && reason_len) reason[0] = '\0';
    if (cmd == NULL) return CX_EINVAL;
    struct vctx v;
    memset(&v, 0, sizeof v);
    return validate_one(&v, cmd, reason, reason_len);
}

int cx_validate_package_name(const char *name, char *reason, size_t reason_len) {
    struct vctx v;
    memset(&v, 0, sizeof v);
    v.reason = reason;
    v.reason_len = reason_len;
    if (reason && reason_len) reason[0] = '\0';
    if (name == NULL) return CX_EINVAL;
    size_t n = strlen(name);
    if (n == 0) return cx__vd_reject(&v, "package name is empty"), CX_EREJECTED;
    if (n > 128) return cx__vd_reject(&v, "package name is longer than 128 characters"), CX_EREJECTED;
    if (name[0] == '-')
        return cx__vd_reject(&v, "package name '%.60s' starts with '-' and would be read as an option", name),
               CX_EREJECTED;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr(".+_:=~@/-", c))
            continue;
        char shown[64];
        cx__vd_show(shown, sizeof shown, name);
        if (c < 32 || c >= 127)
            cx__vd_reject(&v, "package name '%s' contains the control or non-ASCII byte 0x%02x", shown, c);
        else
            cx__vd_reject(&v, "shell metacharacter '%c' in package name '%s'", c, shown);
        return CX_EREJECTED;
    }
    return 0;
}

void cx_validation_clear(struct cx_validation *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n_rejected; i++) cx__free(v->reasons[i]);
    cx__free(v->reasons);
    v->reasons = NULL;
    v->n_rejected = 0;
}

/* Appends one reason; on failure v is left as it was. */
static int add_reason(struct cx_validation *v, size_t idx, const char *cmd, const char *why) {
    char shown[80];
    size_t n = cmd ? strlen(cmd) : 0, o = 0;
    bool cut = n > 60;
    if (cut) {
        n = 60;
        while (n > 0 && ((unsigned char)cmd[n] & 0xC0) == 0x80) n--; /* keep UTF-8 whole */
    }
    for (size_t i = 0; i < n; i++) shown[o++] = (unsigned char)cmd[i] < 32 ? ' ' : cmd[i];
    if (cut) { memcpy(shown + o, "...", 3); o += 3; }
    shown[o] = '\0';
    struct cx__buf b;
    cx__buf_init(&b, 4096);
    int rc = cmd ? cx__buf_printf(&b, "commands[%zu] '%s': %s", idx, shown, why)
                 : cx__buf_printf(&b, "commands[%zu] is not a string", idx);
    if (rc < 0) return CX_ENOMEM;
    char **nr = cx__realloc(v->reasons, (v->n_rejected + 1) * sizeof *nr);
    if (!nr) {
        cx__buf_reset(&b);
        return CX_ENOMEM;
    }
    v->reasons = nr;
    v->reasons[v->n_rejected++] = cx__buf_take(&b);
    return 0;
}

static int validate_all(const cJSON *commands_array, struct cx_validation *out) {
    if (out == NULL) return CX_EINVAL;
    out->n_rejected = 0;
    out->reasons = NULL;
    if (!cJSON_IsArray(commands_array)) return CX_EINVAL;
    size_t idx = 0;
    char why[256];
    /* The plan runs as one script: what an earlier command downloads, assigns or enters counts
     * for the later ones. */
    struct vctx vc;
    memset(&vc, 0, sizeof vc);
    for (const cJSON *it = commands_array->child; it; it = it->next, idx++) {
        int rc = 0;
        if (!cJSON_IsString(it) || it->valuestring == NULL) {
            rc = add_reason(out, idx, NULL, NULL);
        } else if (validate_one(&vc, it->valuestring, why, sizeof why) == CX_EREJECTED) {
            rc = add_reason(out, idx, it->valuestring, why);
        }
        if (rc < 0) {
            cx_validation_clear(out);
            return rc;
        }
    }
    return out->n_rejected ? CX_EREJECTED : 0;
}

int cx_validate_commands(const cJSON *commands_array, struct cx_validation *out) {
    if (cx__slow_on) /* bench-only: validation done validate_times times (slowdown.c) */
        for (unsigned i = 1; i < cx__slow.validate_times; i++) {
            struct cx_validation extra;
            if (validate_all(commands_array, &extra) >= 0) cx_validation_clear(&extra);
        }
    return validate_all(commands_array, out);
}
