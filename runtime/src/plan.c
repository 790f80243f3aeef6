/*
 * plan.c - merging per-package install plans into one ordered, de-duplicated command list.
 *
 * One package-index update goes first (the first one seen, in its own spelling), then every
 * other command in plan order, exact duplicates (after trimming) dropped. Duplicate detection
 * is a linear scan: plans hold tens of commands, and a scan keeps the allocation count (and so
 * the torture test) small. This module does not validate commands (validate.c does).
 */
#include "cx/plan.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "cx_internal.h"

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void trim(const char *s, size_t *a, size_t *n) {
    size_t b = 0, e = strlen(s);
    while (b < e && ws(s[b])) b++;
    while (e > b && ws(s[e - 1])) e--;
    *a = b;
    *n = e - b;
}

/* Next whitespace-separated token of s from *i into tok (truncated); false at the end. */
static bool next_tok(const char *s, size_t *i, char *tok, size_t cap) {
    while (s[*i] && ws(s[*i])) (*i)++;
    if (!s[*i]) return false;
    size_t o = 0;
    while (s[*i] && !ws(s[*i])) {
        if (o + 1 < cap) tok[o++] = s[*i];
        (*i)++;
    }
    tok[o] = '\0';
    return true;
}

int cx_plan_is_update(const char *cmd) {
    if (cmd == NULL) return 0;
    char tok[64];
    size_t i = 0;
    int stage = 0; /* 0: before apt, 1: after apt, 2: after "update" */
    while (next_tok(cmd, &i, tok, sizeof tok)) {
        const char *b = strrchr(tok, '/');
        b = b ? b + 1 : tok;
        if (stage == 0) {
            if (strcmp(b, "sudo") == 0 || tok[0] == '-' || strchr(tok, '=')) continue;
            if (strcmp(b, "apt-get") == 0 || strcmp(b, "apt") == 0) {
                stage = 1;
                continue;
            }
            return 0;
        }
        if (tok[0] == '-') continue;
        if (stage == 1 && strcmp(tok, "update") == 0) {
            stage = 2;
            continue;
        }
        return 0;
    }
    return stage == 2;
}

void cx_plan_clear(struct cx_plan *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) cx__free(p->commands[i]);
    cx__free(p->commands);
    p->commands = NULL;
    p->n = 0;
}

static bool seen(const struct cx_plan *p, size_t from, const char *s, size_t n) {
    for (size_t i = from; i < p->n; i++)
        if (strlen(p->commands[i]) == n && memcmp(p->commands[i], s, n) == 0) return true;
    return false;
}

int cx_plan_merge(const cJSON *const *commands_arrays, size_t n_plans, struct cx_plan *out,
                  struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_plan_merge: out is NULL");
    out->commands = NULL;
    out->n = 0;
    if (commands_arrays == NULL && n_plans > 0)
        return cx__err(ei, CX_EINVAL, "cx_plan_merge: commands_arrays is NULL with n_plans %zu",
                       n_plans);
    /* Check the shape first, so a bad plan fails before anything is allocated, and count. */
    size_t total = 0;
    const char *update = NULL;
    for (size_t p = 0; p < n_plans; p++) {
        const cJSON *arr = commands_arrays[p];
        if (arr == NULL) continue;
        if (!cJSON_IsArray(arr)) return cx__err(ei, CX_EPROTO, "plan %zu is not an array", p);
        size_t c = 0;
        for (const cJSON *it = arr->child; it; it = it->next, c++) {
            if (!cJSON_IsString(it) || it->valuestring == NULL)
                return cx__err(ei, CX_EPROTO, "plan %zu command %zu is not a string", p, c);
            if (update == NULL && cx_plan_is_update(it->valuestring)) update = it->valuestring;
            total++;
        }
    }
    if (total == 0) return 0;
    struct cx_plan r = {cx__calloc(total, sizeof(char *)), 0};
    if (r.commands == NULL) return cx__err(ei, CX_ENOMEM, "out of memory merging %zu commands", total);
    size_t a, n;
    if (update) {
        trim(update, &a, &n);
        if ((r.commands[r.n] = cx__strndup(update + a, n)) == NULL) goto nomem;
        r.n++;
    }
    for (size_t p = 0; p < n_plans; p++) {
        if (commands_arrays[p] == NULL) continue;
        for (const cJSON *it = commands_arrays[p]->child; it; it = it->next) {
            const char *s = it->valuestring;
            trim(s, &a, &n);
            if (n == 0 || cx_plan_is_update(s) || seen(&r, update ? 1 : 0, s + a, n)) continue;
            if ((r.commands[r.n] = cx__strndup(s + a, n)) == NULL) goto nomem;
            r.n++;
        }
    }
    *out = r;
    return 0;
nomem:
    cx_plan_clear(&r);
    return cx__err(ei, CX_ENOMEM, "out of memory merging %zu commands", total);
}

char *cx_plan_to_json(const struct cx_plan *p) {
    if (p == NULL) return NULL;
    cx__json_hooks_init();
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) return NULL;
    for (size_t i = 0; i < p->n; i++) {
        cJSON *s = cJSON_CreateString(p->commands[i]);
        if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    char *out = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return out;
}
