/*
 * fixtures.c - parsing the mock server's fixture rules: fixture JSON (cJSON) into rules with
 * their matchers and replies, with errors that name the file, the rule index and the field,
 * and the reference counts of a rule set. Reading files and directories and the server's
 * current set are fixtures_load.c's; matching requests is fixtures_match.c's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

/* A field name ("reply.recorded.frames[3].data") into a buffer; a name too long for it is cut,
 * which only shortens an error message. */
static void field(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void field(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}
#define FIELD(buf, ...) field(buf, sizeof buf, __VA_ARGS__)

/* ---- text matchers and small parsing helpers ---- */

int mock__fx_text_set(struct mock_fx_text *t, const char *s, int regex, char *err,
                      size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->text = strdup(s);
    if (!t->text)
        return mock__err(err, errlen, "out of memory");
    if (regex) {
        int rc = regcomp(&t->re, s, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char m[160];
            regerror(rc, &t->re, m, sizeof m);
            free(t->text);
            t->text = NULL;
            return mock__err(err, errlen, "bad regex '%.80s': %s", s, m);
        }
        t->is_re = 1;
    }
    t->set = 1;
    return 0;
}

void mock__fx_text_free(struct mock_fx_text *t)
{
    if (t->is_re)
        regfree(&t->re);
    free(t->text);
    memset(t, 0, sizeof *t);
}

/* The error prefix "NAME: rules[I]." and the field. */
struct ctx {
    const char *name;
    size_t rule;
    char *err;
    size_t errlen;
};

static int fail(const struct ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const struct ctx *c, const char *field, const char *fmt, ...)
{
    char m[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return mock__err(c->err, c->errlen, "%s: rules[%zu].%s: %s", c->name, c->rule, field, m);
}

static int dur(const struct ctx *c, const cJSON *v, const char *field, double *ms)
{
    if (cJSON_IsNumber(v) && v->valuedouble >= 0) {
        *ms = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && mock__parse_duration(v->valuestring, ms) == 0)
        return 0;
    return fail(c, field, "%s is not a duration (a number of ms, or \"150ms\", \"2s\")",
                cJSON_IsString(v) ? v->valuestring : mock__json_type(v));
}

static int count(const struct ctx *c, const cJSON *v, const char *field, long long max,
                 long long *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
        v->valuedouble != (double)(long long)v->valuedouble) {
        char lim[32];
        snprintf(lim, sizeof lim, "%lld", max);
        return fail(c, field, "expected an integer in 0..%s", lim);
    }
    *out = (long long)v->valuedouble;
    return 0;
}

static char *dup_str(const struct ctx *c, const cJSON *v, const char *field, int *rc)
{
    *rc = 0;
    if (!cJSON_IsString(v)) {
        *rc = fail(c, field, "expected a string, got %s", mock__json_type(v));
        return NULL;
    }
    char *p = strdup(v->valuestring);
    if (!p)
        *rc = mock__err(c->err, c->errlen, "out of memory");
    return p;
}

/* Fails on any member of obj not in the NULL-terminated list known. */
static int only(const struct ctx *c, const cJSON *obj, const char *where,
                const char *const *known)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        size_t k = 0;
        while (known[k] && strcmp(it->string, known[k]))
            k++;
        if (!known[k]) {
            char f[128];
            FIELD(f, "%s%s%.60s", where, *where ? "." : "", it->string);
            return fail(c, f, "unknown field");
        }
    }
    return 0;
}

static int route_of_name(const char *s)
{
    static const struct {
        const char *path;
        int route;
    } paths[] = {{"/v1/chat/completions", MOCK_ROUTE_CHAT},
                 {"/v1/messages", MOCK_ROUTE_MESSAGES},
                 {"/v1/responses", MOCK_ROUTE_RESPONSES},
                 {"/v1/completions", MOCK_ROUTE_COMPLETIONS},
                 {"/v1/embeddings", MOCK_ROUTE_EMBEDDINGS}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (!strcmp(s, paths[i].path) || !strcmp(s, paths[i].path + 3))
            return paths[i].route;
    int r = mock__route_from_name(s);
    return r >= 0 && mock__route_is_api(r) ? r : -1;
}

/* ---- replies ---- */

void mock__fx_reply_clear(struct mock_fx_reply *p)
{
    free(p->text);
    free(p->err_type);
    free(p->err_message);
    free(p->err_code);
    cJSON_Delete(p->tool_calls);
    if (p->raw) {
        free(p->raw->body);
        for (size_t i = 0; i < p->raw->nframes; i++)
            free(p->raw->frames[i].data);
        free(p->raw->frames);
        free(p->raw);
    }
    memset(p, 0, sizeof *p);
}

static int parse_recorded(const struct ctx *c, const cJSON *j, const char *where,
                          struct mock_fx_reply *p)
{
    static const char *const known[] = {"status", "content_type", "latency_ms", "body",
                                        "frames", "headers", NULL};
    char f[96];
    if (!cJSON_IsObject(j))
        return fail(c, where, "expected an object");
    if (only(c, j, where, known) < 0)
        return -1;
    struct mock_fx_raw *raw = calloc(1, sizeof *raw);
    if (!raw)
        return mock__err(c->err, c->errlen, "out of memory");
    p->raw = raw;
    long long st = 200;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "status");
    FIELD(f, "%s.status", where);
    if (v && count(c, v, f, 599, &st) < 0)
        return -1;
    if (st < 100)
        return fail(c, f, "expected an HTTP status (100..599)");
    raw->status = (unsigned)st;
    v = cJSON_GetObjectItemCaseSensitive(j, "content_type");
    snprintf(raw->content_type, sizeof raw->content_type, "%s",
             cJSON_IsString(v) ? v->valuestring : "application/json");
    v = cJSON_GetObjectItemCaseSensitive(j, "latency_ms");
    FIELD(f, "%s.latency_ms", where);
    if (v && dur(c, v, f, &raw->latency_ms) < 0)
        return -1;
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
    const cJSON *frames = cJSON_GetObjectItemCaseSensitive(j, "frames");
    if (!body == !frames) {
        FIELD(f, "%s", where);
        return fail(c, f, "needs exactly one of \"body\" and \"frames\"");
    }
    if (body) {
        int rc;
        FIELD(f, "%s.body", where);
        raw->body = dup_str(c, body, f, &rc);
        if (!raw->body)
            return -1;
        raw->body_len = strlen(raw->body);
        return 0;
    }
    FIELD(f, "%s.frames", where);
    if (!cJSON_IsArray(frames))
        return fail(c, f, "expected an array");
    size_t n = (size_t)cJSON_GetArraySize(frames);
    raw->frames = calloc(n ? n : 1, sizeof *raw->frames);
    if (!raw->frames)
        return mock__err(c->err, c->errlen, "out of memory");
    size_t i = 0;
    for (const cJSON *fr = frames->child; fr; fr = fr->next, i++) {
        static const char *const fk[] = {"delay_ms", "data", NULL};
        FIELD(f, "%s.frames[%zu]", where, i);
        if (!cJSON_IsObject(fr))
            return fail(c, f, "expected an object");
        if (only(c, fr, f, fk) < 0)
            return -1;
        struct mock_fx_frame *fm = &raw->frames[i];
        raw->nframes = i + 1;
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(fr, "delay_ms");
        FIELD(f, "%s.frames[%zu].delay_ms", where, i);
        if (d && dur(c, d, f, &fm->delay_ms) < 0)
            return -1;
        int rc;
        FIELD(f, "%s.frames[%zu].data", where, i);
        fm->data = dup_str(c, cJSON_GetObjectItemCaseSensitive(fr, "data"), f, &rc);
        if (!fm->data)
            return -1;
        fm->len = strlen(fm->data);
    }
    return 0;
}

/* A call id goes into the wire's JSON as it is: letters, digits, '_' and '-' only. */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof ((struct mock_turn *)0)->call_id[0])
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static int parse_tool_calls(const struct ctx *c, const cJSON *v, const char *where, int route,
                            struct mock_fx_reply *p)
{
    char f[96];
    if (route == MOCK_ROUTE_EMBEDDINGS || route == MOCK_ROUTE_COMPLETIONS)
        return fail(c, where, "a %s reply has no tool calls", mock__route_names[route]);
    if (!cJSON_IsArray(v) || !v->child)
        return fail(c, where, "expected a non-empty array of {\"name\", \"arguments\"}");
    if (cJSON_GetArraySize(v) > MOCK_TOOL_CALLS_MAX)
        return fail(c, where, "at most %d tool calls in one reply", MOCK_TOOL_CALLS_MAX);
    size_t i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        static const char *const tk[] = {"name", "arguments", "id", NULL};
        FIELD(f, "%s[%zu]", where, i);
        if (!cJSON_IsObject(t))
            return fail(c, f, "expected an object");
        if (only(c, t, f, tk) < 0)
            return -1;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
        FIELD(f, "%s[%zu].name", where, i);
        if (!cJSON_IsString(name))
            return fail(c, f, "expected a string");
        if (!name->valuestring[0] ||
            strlen(name->valuestring) >= sizeof ((struct mock_tool_call *)0)->name)
            return fail(c, f, "expected 1 to %zu bytes",
                        sizeof ((struct mock_tool_call *)0)->name - 1);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(t, "arguments");
        if (a && !cJSON_IsObject(a)) {
            FIELD(f, "%s[%zu].arguments", where, i);
            return fail(c, f, "expected an object");
        }
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
        if (id && !(cJSON_IsString(id) && id_ok(id->valuestring))) {
            FIELD(f, "%s[%zu].id", where, i);
            return fail(c, f, "expected 1 to %zu letters, digits, '_' or '-'",
                        sizeof ((struct mock_turn *)0)->call_id[0] - 1);
        }
    }
    p->tool_calls = cJSON_Duplicate(v, 1);
    return p->tool_calls ? 0 : mock__err(c->err, c->errlen, "out of memory");
}

static int parse_error(const struct ctx *c, const cJSON *e, const char *where,
                       struct mock_fx_reply *p)
{
    static const char *const known[] = {"status", "type", "message", "code", NULL};
    char f[96];
    int rc;
    if (!cJSON_IsObject(e))
        return fail(c, where, "expected an object {\"status\", \"type\", \"message\"}");
    if (only(c, e, where, known) < 0)
        return -1;
    long long st = 0; /* set by count(); initialised for -O2 -Wmaybe-uninitialized */
    FIELD(f, "%s.status", where);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "status");
    if (!v)
        return fail(c, f, "missing");
    if (count(c, v, f, 599, &st) < 0 || st < 400)
        return fail(c, f, "expected an error status (400..599)");
    p->err_status = (unsigned)st;
    v = cJSON_GetObjectItemCaseSensitive(e, "type");
    FIELD(f, "%s.type", where);
    p->err_type = v ? dup_str(c, v, f, &rc)
                    : strdup(st == 429 ? "rate_limit_error" : st >= 500 ? "api_error"
                                                                       : "invalid_request_error");
    if (!p->err_type)
        return v ? -1 : mock__err(c->err, c->errlen, "out of memory");
    v = cJSON_GetObjectItemCaseSensitive(e, "message");
    FIELD(f, "%s.message", where);
    p->err_message = v ? dup_str(c, v, f, &rc) : strdup("error (fixture)");
    if (!p->err_message)
        return v ? -1 : mock__err(c->err, c->errlen, "out of memory");
    v = cJSON_GetObjectItemCaseSensitive(e, "code");
    FIELD(f, "%s.code", where);
    if (v && !(p->err_code = dup_str(c, v, f, &rc)))
        return -1;
    return 0;
}

static int parse_reply(const struct ctx *c, const cJSON *j, const char *where, int route,
                       struct mock_fx_reply *p)
{
    static const char *const known[] = {"text", "usage", "latency", "ttft", "itl", "fault",
                                        "retry_after", "error", "tool_calls", "recorded", NULL};
    char f[96];
    int rc;
    p->prompt_tokens = p->completion_tokens = -1;
    p->latency_ms = p->ttft_ms = p->itl_ms = p->retry_after_ms = -1;
    p->fault = -1;
    if (!cJSON_IsObject(j))
        return fail(c, where, "expected an object");
    if (only(c, j, where, known) < 0)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "text");
    if (v) {
        FIELD(f, "%s.text", where);
        if (route == MOCK_ROUTE_EMBEDDINGS)
            return fail(c, f, "an embeddings reply has no text");
        if (!(p->text = dup_str(c, v, f, &rc)))
            return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "usage"))) {
        static const char *const uk[] = {"prompt_tokens", "completion_tokens", "input_tokens",
                                         "output_tokens", NULL};
        FIELD(f, "%s.usage", where);
        if (!cJSON_IsObject(v))
            return fail(c, f, "expected an object");
        if (only(c, v, f, uk) < 0)
            return -1;
        for (int k = 0; uk[k]; k++) {
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, uk[k]);
            FIELD(f, "%s.usage.%s", where, uk[k]);
            if (u && count(c, u, f, 1000000000, k % 2 ? &p->completion_tokens
                                                       : &p->prompt_tokens) < 0)
                return -1;
        }
    }
    static const char *const dk[] = {"latency", "ttft", "itl", "retry_after"};
    double *dv[] = {&p->latency_ms, &p->ttft_ms, &p->itl_ms, &p->retry_after_ms};
    for (int k = 0; k < 4; k++) {
        FIELD(f, "%s.%s", where, dk[k]);
        if ((v = cJSON_GetObjectItemCaseSensitive(j, dk[k])) && dur(c, v, f, dv[k]) < 0)
            return -1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "fault"))) {
        FIELD(f, "%s.fault", where);
        if (!cJSON_IsString(v))
            return fail(c, f, "expected a fault name");
        if ((p->fault = mock__fault_from_name(v->valuestring)) < 0)
            return fail(c, f, "unknown fault '%s' (429, 500, 502, 503, 529, reset, stall, "
                        "malformed, cut, disconnect, corrupt, duplicate, truncate, dangerous)",
                        v->valuestring);
    }
    FIELD(f, "%s.error", where);
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "error")) && parse_error(c, v, f, p) < 0)
        return -1;
    FIELD(f, "%s.tool_calls", where);
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "tool_calls")) &&
        parse_tool_calls(c, v, f, route, p) < 0)
        return -1;
    FIELD(f, "%s.recorded", where);
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "recorded")) && parse_recorded(c, v, f, p) < 0)
        return -1;
    if (p->err_status && (p->fault > 0 || p->raw || p->text || p->tool_calls)) {
        FIELD(f, "%s", where);
        return fail(c, f, "\"error\" cannot be combined with text, tool_calls, fault or "
                    "recorded");
    }
    /* The tool-call writers send calls or text, not both (proto_tools.c). */
    if (p->tool_calls && (p->text || p->raw)) {
        FIELD(f, "%s", where);
        return fail(c, f, "\"tool_calls\" cannot be combined with %s (a reply is text or "
                    "tool calls)", p->text ? "text" : "recorded");
    }
    return 0;
}

/* ---- rules ---- */

static void rule_clear(struct mock_fx_rule *r)
{
    mock__fx_text_free(&r->model);
    mock__fx_text_free(&r->system);
    mock__fx_text_free(&r->user);
    cJSON_Delete(r->body);
    for (size_t i = 0; i < r->nreplies; i++)
        mock__fx_reply_clear(&r->replies[i]);
    free(r->replies);
    memset(r, 0, sizeof *r);
}

static int parse_text_matcher(const struct ctx *c, const cJSON *m, const char *key,
                              struct mock_fx_text *t)
{
    char rk[32], f[64], e[200];
    FIELD(rk, "%s_regex", key);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, key);
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(m, rk);
    if (s && re) {
        FIELD(f, "match.%s", key);
        return fail(c, f, "give a substring or a regex, not both");
    }
    const cJSON *v = s ? s : re;
    if (!v)
        return 0;
    FIELD(f, "match.%s", s ? key : rk);
    if (!cJSON_IsString(v))
        return fail(c, f, "expected a string, got %s", mock__json_type(v));
    if (mock__fx_text_set(t, v->valuestring, re != NULL, e, sizeof e) < 0)
        return fail(c, f, "%s", e);
    return 0;
}

static int parse_rule(const struct ctx *c, const cJSON *j, struct mock_fx_rule *r,
                      int *need_body)
{
    static const char *const known[] = {"name", "match", "reply", "replies", "after",
                                        "request", NULL};
    static const char *const mk[] = {"route", "model", "model_regex", "system",
                                     "system_regex", "user", "user_regex", "turns", "body",
                                     NULL};
    r->route = -1;
    r->turns = -1;
    if (!cJSON_IsObject(j))
        return mock__err(c->err, c->errlen, "%s: rules[%zu]: expected an object, got %s",
                         c->name, c->rule, mock__json_type(j));
    if (only(c, j, "", known) < 0)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (v && !cJSON_IsString(v))
        return fail(c, "name", "expected a string");
    snprintf(r->name, sizeof r->name, "%s", v ? v->valuestring : "");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "match");
    if (m && !cJSON_IsObject(m))
        return fail(c, "match", "expected an object");
    if (m) {
        if (only(c, m, "match", mk) < 0)
            return -1;
        if ((v = cJSON_GetObjectItemCaseSensitive(m, "route"))) {
            if (!cJSON_IsString(v) || (r->route = route_of_name(v->valuestring)) < 0)
                return fail(c, "match.route", "unknown route %s (chat, messages, responses, "
                            "completions, embeddings, or their /v1/... paths)",
                            cJSON_IsString(v) ? v->valuestring : mock__json_type(v));
        }
        if (parse_text_matcher(c, m, "model", &r->model) < 0 ||
            parse_text_matcher(c, m, "system", &r->system) < 0 ||
            parse_text_matcher(c, m, "user", &r->user) < 0)
            return -1;
        if ((v = cJSON_GetObjectItemCaseSensitive(m, "turns"))) {
            long long t = 0; /* set by count(); see above */
            if (count(c, v, "match.turns", 100000, &t) < 0)
                return -1;
            r->turns = (int)t;
            *need_body = 1;
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(m, "body"))) {
            if (!cJSON_IsObject(v))
                return fail(c, "match.body", "expected the request body as an object");
            if (!(r->body = cJSON_Duplicate(v, 1)))
                return mock__err(c->err, c->errlen, "out of memory");
            *need_body = 1;
        }
    }
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(j, "reply");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "replies");
    if (!one == !seq)
        return fail(c, "reply", "a rule needs exactly one of \"reply\" and \"replies\"");
    if (seq && (!cJSON_IsArray(seq) || !seq->child))
        return fail(c, "replies", "expected a non-empty array of replies");
    size_t n = one ? 1 : (size_t)cJSON_GetArraySize(seq);
    r->replies = calloc(n, sizeof *r->replies);
    if (!r->replies)
        return mock__err(c->err, c->errlen, "out of memory");
    size_t i = 0;
    for (const cJSON *it = one ? one : seq->child; it && i < n; it = it->next, i++) {
        char where[32];
        if (one)
            FIELD(where, "reply");
        else
            FIELD(where, "replies[%zu]", i);
        r->nreplies = i + 1;
        if (parse_reply(c, it, where, r->route, &r->replies[i]) < 0)
            return -1;
    }
    r->after = MOCK_FX_REPEAT_LAST;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "after"))) {
        const char *a = cJSON_GetStringValue(v);
        if (a && !strcmp(a, "cycle"))
            r->after = MOCK_FX_CYCLE;
        else if (!a || strcmp(a, "repeat"))
            return fail(c, "after", "expected \"repeat\" (the last reply repeats) or \"cycle\"");
    }
    return 0;
}

static void fx_free(struct mock_fixtures *f)
{
    for (size_t i = 0; i < f->n; i++)
        rule_clear(&f->rules[i]);
    free(f->rules);
    for (size_t i = 0; i < f->nfiles; i++)
        free(f->files[i]);
    free(f->files);
    free(f->file_of);
    free(f);
}

void mock__fx_ref(struct mock_fixtures *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void mock__fx_unref(struct mock_fixtures *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        fx_free(f);
}

int mock__fx_parse(const char *text, size_t len, const char *name, struct mock_fixtures **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        return mock__err(err, errlen, "%s: not valid JSON (near byte %zu)", name, off);
    }
    const cJSON *rules = j;
    if (cJSON_IsObject(j)) {
        for (const cJSON *it = j->child; it; it = it->next)
            if (strcmp(it->string, "rules") && strcmp(it->string, "recorded")) {
                mock__err(err, errlen, "%s: unknown top-level field '%.60s' (rules, recorded)",
                          name, it->string);
                cJSON_Delete(j);
                return -1;
            }
        rules = cJSON_GetObjectItemCaseSensitive(j, "rules");
    }
    if (!cJSON_IsArray(rules)) {
        mock__err(err, errlen, "%s: expected {\"rules\": [...]} or an array of rules", name);
        cJSON_Delete(j);
        return -1;
    }
    struct mock_fixtures *f = calloc(1, sizeof *f);
    size_t n = (size_t)cJSON_GetArraySize(rules);
    if (f)
        f->rules = calloc(n ? n : 1, sizeof *f->rules);
    if (!f || !f->rules) {
        free(f);
        cJSON_Delete(j);
        return mock__err(err, errlen, "out of memory");
    }
    atomic_init(&f->refs, 1);
    snprintf(f->source, sizeof f->source, "%s", name);
    struct ctx c = {name, 0, err, errlen};
    int rc = 0;
    for (const cJSON *it = rules->child; it; it = it->next, c.rule++) {
        f->n = c.rule + 1;
        if ((rc = parse_rule(&c, it, &f->rules[c.rule], &f->need_body)) < 0)
            break;
    }
    cJSON_Delete(j);
    if (rc < 0) {
        fx_free(f);
        return -1;
    }
    *out = f;
    return 0;
}
