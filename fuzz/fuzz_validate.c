/*
 * fuzz_validate.c - fuzzes the command validator (cx/validate.h): cx_validate_command,
 * cx_validate_commands and cx_validate_package_name, which see commands written by a model.
 *
 * Input: up to 16 commands separated by NUL bytes. For each command it checks what validate.h
 * documents, not just "no crash":
 *   - results are 0 or CX_EREJECTED, repeatable, and independent of the reason buffer's size;
 *     the reason is NUL-terminated inside its buffer (exact-size buffers, so ASan sees overruns)
 *     and names a rule when there is room;
 *   - in an accepted command, each command substitution ($(...) or `...`, outside single quotes,
 *     not escaped) that the shell would run is accepted on its own (only read-only queries
 *     such as $(uname -r) may pass);
 *   - a rejected command stays rejected behind "true; " and "true && " (every simple command is
 *     checked);
 *   - "rm -rf /" after the command on a new line is rejected, and after "; " too when the
 *     command has no '#' (unless the command holds a backslash or a here-document, which can
 *     swallow the line break);
 *   - cx_validate_package_name accepts exactly 1..128 characters of [A-Za-z0-9.+_:=~@/-] not
 *     starting with '-';
 *   - a rejected command stays rejected behind "Z9=; $Z9 " and "$CX_FUZZ_UNSET " (an empty or
 *     unset unquoted expansion is no word at all, so the shell runs the same command) when it
 *     starts with a plain command word;
 *   - cx_validate_commands (one script: downloads, assignments and cd carry over, so it may
 *     reject more) rejects every element cx_validate_command rejects when no element may set a
 *     variable or the directory, reasons in element order, each starting "commands[i] '"; and
 *     the list ["Z9=", "$Z9 CMD"] is rejected when CMD is;
 *
 * Known bugs (reproducers in fuzz/crashes/, reported to the owners; see fuzz_known_bug in
 * fuzz_util.h for CX_FUZZ_KNOWN_BUGS): none open. (validate-1 and validate-2, an empty variable
 * in front of a command hiding it, are fixed; so is validate-3, a function definition behind an
 * empty expansion read as a command and a list; their reproducers are in
 * fuzz/corpus/validate/.)
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cx/validate.h"
#include "cx_internal.h" /* cx__json_hooks_init: cJSON allocates like the runtime */
#include "fuzz_util.h"

#define MAX_CMDS 16


/* Runs cx_validate_command with an exact-size reason buffer of reason_len bytes. */
static int validate(const char *cmd, size_t reason_len, char *copy_out, size_t copy_len) {
    char *reason = reason_len ? malloc(reason_len) : NULL;
    if (reason_len && reason == NULL) abort();
    if (reason) memset(reason, 'X', reason_len);
    int rc = cx_validate_command(cmd, reason, reason_len);
    FUZZ_CHECK(rc == 0 || rc == CX_EREJECTED, "cx_validate_command returned %d", rc);
    if (rc == CX_EREJECTED && reason) {
        FUZZ_CHECK(fuzz_terminated(reason, reason_len), "reason not terminated in %zu bytes",
                   reason_len);
        if (reason_len >= 2) FUZZ_CHECK(reason[0] != '\0', "empty reason");
        if (copy_out) snprintf(copy_out, copy_len, "%s", reason);
    }
    free(reason);
    return rc;
}

/*
 * Calls fn(body) for each command substitution ($(...) or `...`) outside single quotes whose
 * body is unambiguous: it holds none of ' " \\ ( ) $ ` (so where it ends is plain to see); the
 * scan stops at the first substitution that is not.
 * Escaped '$' and '`' (backslash) start nothing, and comments run nothing, as in the shell.
 */
static void each_simple_substitution(const char *s, void (*fn)(const char *body, const char *cmd)) {
    enum { NORMAL, SINGLE, DOUBLE } st = NORMAL;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (st == SINGLE) {
            if (c == '\'') st = NORMAL;
            continue;
        }
        if (c == '\\') {
            if (s[i + 1] == '\0') break;
            i++;
            continue;
        }
        if (st == NORMAL && c == '#' && (i == 0 || strchr(" \t\n;&|()<>", s[i - 1]))) {
            while (s[i + 1] && s[i + 1] != '\n') i++; /* a comment runs nothing */
            continue;
        }
        size_t a = 0;
        char close = 0;
        if (c == '`') a = i + 1, close = '`';
        else if (c == '$' && s[i + 1] == '(' && s[i + 2] != '(') a = i + 2, close = ')';
        if (close) {
            size_t e = a;
            while (s[e] && s[e] != close && !strchr("'\"\\()$`", s[e])) e++;
            if (s[e] == close) {
                char *body = malloc(e - a + 1);
                if (body == NULL) abort();
                memcpy(body, s + a, e - a);
                body[e - a] = '\0';
                fn(body, s);
                free(body);
                i = e;
                continue;
            }
            return; /* where this one ends is not plain: the rest cannot be read reliably */
        }
        if (st == NORMAL && c == '\'') st = SINGLE;
        else if (c == '"') st = st == DOUBLE ? NORMAL : DOUBLE;
    }
}

/* A substitution the shell would run in an accepted command must pass on its own. */
static void body_must_pass(const char *body, const char *cmd) {
    char reason[256] = "";
    int rc = cx_validate_command(body, reason, sizeof reason);
    FUZZ_CHECK(rc == 0, "accepted '%s' whose substitution '%s' is rejected alone (%s)", cmd, body,
               reason);
}

static int package_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 128 || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c != '\0' && strchr(".+_:=~@/-", c) != NULL);
        if (!ok) return 0;
    }
    return 1;
}

static char *concat(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s == NULL) abort();
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/* 1 when cmd starts with a plain command word: [a-z/.], no '=' (an assignment stops being one
 * after an expansion) and not a reserved word, so "$EMPTY cmd" runs exactly cmd. */
static int plain_first_word(const char *cmd) {
    static const char *const reserved[] = {"if", "then", "else", "elif", "fi", "do", "done",
                                           "case", "esac", "while", "until", "for", "in",
                                           "function", "select", "time", "coproc"};
    if (!((cmd[0] >= 'a' && cmd[0] <= 'z') || cmd[0] == '/' || cmd[0] == '.')) return 0;
    size_t n = strcspn(cmd, " \t\n;&|()<>");
    if (memchr(cmd, '=', n)) return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == n && strncmp(cmd, reserved[i], n) == 0) return 0;
    return 1;
}

/* 1 when a command may set a variable or the directory that later elements of a list see
 * (validate.c follows both across elements, and a known value may make a later command
 * harmless: "X=echo" then "$X rm -rf /"). Errs on the side of "may". */
static int may_set_state(const char *s) {
    static const char *const words[] = {"=", "cd", "pushd", "popd", "read", "for", "let",
                                        "declare", "typeset", "export", "local", "getopts",
                                        "mapfile", "readarray", "printf", "select", "source", ".",
                                        "eval", "alias"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(s, words[i])) return 1;
    return 0;
}

static int check_command(const char *cmd) {
    char reason[512] = "";
    int rc = validate(cmd, sizeof reason, reason, sizeof reason);
    static const size_t sizes[] = {0, 1, 2, 17};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        FUZZ_CHECK(validate(cmd, sizes[k], NULL, 0) == rc, "result depends on reason size %zu",
                   sizes[k]);
    if (rc == 0) {
        if (strstr(cmd, "<<") == NULL) /* a quoted here-document's body runs nothing */
            each_simple_substitution(cmd, body_must_pass);
    } else {
        FUZZ_CHECK(reason[0] != '\0', "rejected without a reason: '%s'", cmd);
        char *a = concat("true; ", cmd, "");
        char *b = concat("true && ", cmd, "");
        FUZZ_CHECK(validate(a, 0, NULL, 0) == CX_EREJECTED,
                   "'%s' rejected (%s) but accepted after 'true; '", cmd, reason);
        FUZZ_CHECK(validate(b, 0, NULL, 0) == CX_EREJECTED,
                   "'%s' rejected (%s) but accepted after 'true && '", cmd, reason);
        free(a);
        free(b);
        if (plain_first_word(cmd)) {
            char *e = concat("Z9=; $Z9 ", cmd, "");
            FUZZ_CHECK(validate(e, 0, NULL, 0) == CX_EREJECTED,
                       "'%s' rejected (%s) but '%s' accepted ($Z9 is empty: it expands to no "
                       "word, so the shell runs the same command)", cmd, reason, e);
            free(e);
            char *u = concat("$CX_FUZZ_UNSET ", cmd, "");
            FUZZ_CHECK(validate(u, 0, NULL, 0) == CX_EREJECTED,
                       "'%s' rejected (%s) but '%s' accepted (an unset variable in command "
                       "position is no word: the shell runs the same command)", cmd, reason, u);
            free(u);
        }
    }
    if (strchr(cmd, '\\') == NULL && strstr(cmd, "<<") == NULL) {
        char *a = concat(cmd, "\n", "rm -rf /");
        FUZZ_CHECK(validate(a, 0, NULL, 0) == CX_EREJECTED, "accepted '%s' + newline + 'rm -rf /'",
                   cmd);
        free(a);
        if (strchr(cmd, '#') == NULL) {
            char *b = concat(cmd, "; ", "rm -rf /");
            FUZZ_CHECK(validate(b, 0, NULL, 0) == CX_EREJECTED, "accepted '%s' + '; rm -rf /'", cmd);
            free(b);
        }
    }

    char pr[64];
    int prc = cx_validate_package_name(cmd, pr, sizeof pr);
    FUZZ_CHECK(prc == 0 || prc == CX_EREJECTED, "cx_validate_package_name returned %d", prc);
    FUZZ_CHECK((prc == 0) == package_name_ok(cmd), "package name '%s' %s", cmd,
               prc == 0 ? "accepted against the documented rule" : "refused against the documented rule");
    if (prc < 0) FUZZ_CHECK(fuzz_terminated(pr, sizeof pr) && pr[0], "package reason empty");
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 3 * CX_VALIDATE_MAX_CMD) return 0; /* longer ones are refused by length alone */
    cx__json_hooks_init();
    char *all = fuzz_strndup(data, size);
    const char *cmds[MAX_CMDS];
    int rcs[MAX_CMDS];
    size_t n = 0;
    for (size_t i = 0; i <= size && n < MAX_CMDS;) {
        cmds[n] = all + i;
        rcs[n] = check_command(cmds[n]);
        n++;
        i += strlen(all + i) + 1;
    }

    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) abort();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(cmds[i]));
    FUZZ_CHECK((size_t)cJSON_GetArraySize(arr) == n, "cJSON array incomplete");
    struct cx_validation v;
    int rc = cx_validate_commands(arr, &v);
    /* Every element rejected alone is rejected in the list; the list may reject more, since
     * validate.c follows a download across elements ("curl -o /tmp/x URL", then "sh /tmp/x"). */
    size_t expect = 0;
    int skip_list = 0;
    for (size_t i = 0; i < n; i++) {
        expect += rcs[i] < 0;
        skip_list |= may_set_state(cmds[i]);
    }
    FUZZ_CHECK(rc == (v.n_rejected ? CX_EREJECTED : 0), "cx_validate_commands gave %d with %zu "
               "rejected", rc, v.n_rejected);
    FUZZ_CHECK(skip_list || (v.n_rejected >= expect && v.n_rejected <= n), "n_rejected %zu, %zu "
               "rejected alone, %zu commands", v.n_rejected, expect, n);
    size_t r = 0;
    long last = -1;
    for (size_t k = 0; k < v.n_rejected; k++) {
        size_t idx = (size_t)-1;
        FUZZ_CHECK(v.reasons[k] && sscanf(v.reasons[k], "commands[%zu] '", &idx) == 1 && idx < n &&
                       (long)idx > last,
                   "reason %zu is '%s'", k, v.reasons[k] ? v.reasons[k] : "(null)");
        for (; r < idx && !skip_list; r++)
            FUZZ_CHECK(rcs[r] == 0, "commands[%zu] rejected alone but not in the list", r);
        r = idx + 1;
        last = (long)idx;
    }
    if (skip_list) r = n;
    for (; r < n; r++) FUZZ_CHECK(rcs[r] == 0, "commands[%zu] rejected alone but not in the list", r);
    cx_validation_clear(&v);
    FUZZ_CHECK(v.n_rejected == 0 && v.reasons == NULL, "cx_validation_clear left data");
    cJSON_Delete(arr);

    /* An element that assigns an empty value to a variable the next element puts in front of
     * a rejected command: the shell runs that command, so the list must be rejected. */
    for (size_t i = 0; i < n; i++) {
        if (rcs[i] == 0 || !plain_first_word(cmds[i])) continue;
        cJSON *pair = cJSON_CreateArray();
        char *e = concat("$Z9 ", cmds[i], "");
        if (pair == NULL) abort();
        cJSON_AddItemToArray(pair, cJSON_CreateString("Z9="));
        cJSON_AddItemToArray(pair, cJSON_CreateString(e));
        struct cx_validation pv;
        int prc = cx_validate_commands(pair, &pv);
        FUZZ_CHECK(prc == CX_EREJECTED, "'%s' rejected alone, but the list [\"Z9=\", \"%s\"] "
                   "is accepted", cmds[i], e);
        cx_validation_clear(&pv);
        cJSON_Delete(pair);
        free(e);
    }
    free(all);
    return 0;
}
