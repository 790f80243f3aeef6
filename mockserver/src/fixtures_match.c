/*
 * fixtures_match.c - what the fixtures do to one API request: the first rule (in file order)
 * whose matchers all hold gives the reply, the rule's call counter picks the reply of a
 * sequence, and the reply's latency, retry-after, fault, error, text or tool calls and usage
 * are applied at the request's hooks (admission, prepare, answer). An unmatched request goes
 * on to generated content, or in strict mode gets a 404 in its route's error shape naming the
 * closest rule.
 * Also the redaction of secrets that recordings and the body matcher share. Loading is
 * fixtures.c's; sending recorded answers replay.c's.
 *
 * Matchers: route (exact), model (exact, or model_regex), system and user (substring of the
 * request's system text and of its last user turn, or *_regex: POSIX extended), turns (the
 * number of messages / input items, exact), body (the whole request body, compared as JSON
 * after redaction: the replay matcher). The closest rule of a strict miss is the one with the
 * most matchers holding, ties going to the one with the fewest failing, then to the first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fixtures.h"

/* ---- redaction ---- */

static int tok_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

/* Whether p[0..n) holds a digit: real keys do, the words of a reply text ("Bearer tokens")
 * usually do not. */
static int has_digit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= '0' && p[i] <= '9')
            return 1;
    return 0;
}

/* The length of a key-looking token at p (a known credential prefix followed by at least 16
 * token characters, a digit among them; or "Bearer " and 16 such), or 0. */
static size_t keyish(const char *p, size_t n)
{
    static const char *const prefixes[] = {"sk-", "sk_", "rk_", "pk_", "AKIA", "ghp_", "gho_",
                                           "github_pat_", "xoxb-", "xoxp-", "AIza", "hf_",
                                           "Bearer "};
    for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++) {
        size_t pl = strlen(prefixes[k]);
        if (n < pl || memcmp(p, prefixes[k], pl))
            continue;
        size_t e = pl;
        while (e < n && (tok_char(p[e]) || (p[e] == '.' && pl == 7)))
            e++;
        if (e - pl >= 16 && has_digit(p + pl, e - pl))
            return e;
    }
    return 0;
}

char *mock__fx_redact(const char *p, size_t n, const char *key, size_t *outlen)
{
    struct mock_buf b = {0};
    size_t kl = key ? strlen(key) : 0;
    if (kl < 4)
        kl = 0; /* a one-letter test key would redact half the text */
    size_t i = 0, lit = 0; /* p[lit..i) is copied as it is */
    while (i < n) {
        size_t m = 0;
        if (kl && n - i >= kl && !memcmp(p + i, key, kl))
            m = kl;
        else if (i == 0 || !tok_char(p[i - 1]))
            m = keyish(p + i, n - i);
        if (!m) {
            i++;
            continue;
        }
        mock__buf_add(&b, p + lit, i - lit);
        mock__buf_str(&b, "[redacted]");
        i += m;
        lit = i;
    }
    mock__buf_add(&b, p + lit, n - lit);
    mock__buf_add(&b, "", 0);
    if (b.oom) {
        mock__buf_free(&b);
        return NULL;
    }
    *outlen = b.len;
    return b.p;
}

static int secret_name(const char *name)
{
    static const char *const words[] = {"key", "token", "secret", "password", "auth", "cookie"};
    for (size_t w = 0; name && w < sizeof words / sizeof words[0]; w++) {
        size_t k = strlen(words[w]);
        for (const char *q = name; *q; q++)
            if (!strncasecmp(q, words[w], k))
                return 1;
    }
    return 0;
}

static void redact_item(cJSON *it, const char *key)
{
    if (cJSON_IsString(it) && it->valuestring) {
        size_t len;
        char *red = secret_name(it->string)
                        ? strdup("[redacted]")
                        : mock__fx_redact(it->valuestring, strlen(it->valuestring), key, &len);
        if (red && strcmp(red, it->valuestring))
            cJSON_SetValuestring(it, red);
        free(red);
    }
    for (cJSON *c = it->child; c; c = c->next)
        redact_item(c, key);
}

void mock__fx_redact_json(cJSON *j, const char *key)
{
    if (j)
        redact_item(j, key);
}

/* ---- matching ---- */

static int text_ok(const struct mock_fx_text *t, const char *s)
{
    if (!s)
        s = "";
    if (t->is_re)
        return regexec(&t->re, s, 0, NULL, 0) == 0;
    return strstr(s, t->text) != NULL;
}

static int turns_of(int route, const cJSON *body)
{
    if (!cJSON_IsObject(body))
        return -1;
    const char *k = route == MOCK_ROUTE_RESPONSES ? "input" : "messages";
    if (route == MOCK_ROUTE_COMPLETIONS || route == MOCK_ROUTE_EMBEDDINGS)
        return 1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, k);
    if (cJSON_IsString(a))
        return 1;
    return cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
}

struct verdict {
    unsigned ok, bad;
    char why[200];   /* the matchers that failed, with what they wanted */
};

static void miss(struct verdict *v, const char *what, const char *wanted)
{
    v->bad++;
    size_t l = strlen(v->why);
    snprintf(v->why + l, sizeof v->why - l, "%s%s%s%.40s%s", l ? ", " : "", what,
             wanted ? " (wanted \"" : "", wanted ? wanted : "", wanted ? "\")" : "");
}

static void judge(const struct mock_fx_rule *ru, const struct req *r, int turns,
                  const cJSON *body, struct verdict *v)
{
    memset(v, 0, sizeof *v);
    if (ru->route >= 0) {
        if (ru->route == r->route)
            v->ok++;
        else
            miss(v, "route", mock__route_names[ru->route]);
    }
    if (ru->model.set) {
        const char *m = r->model ? r->model : "";
        if (ru->model.is_re ? text_ok(&ru->model, m) : !strcmp(m, ru->model.text))
            v->ok++;
        else
            miss(v, "model", ru->model.text);
    }
    if (ru->system.set) {
        if (text_ok(&ru->system, r->system))
            v->ok++;
        else
            miss(v, "system", ru->system.text);
    }
    if (ru->user.set) {
        if (text_ok(&ru->user, r->prompt))
            v->ok++;
        else
            miss(v, "user", ru->user.text);
    }
    if (ru->turns >= 0) {
        char t[16];
        snprintf(t, sizeof t, "%d", ru->turns);
        if (ru->turns == turns)
            v->ok++;
        else
            miss(v, "turns", t);
    }
    if (ru->body) {
        if (body && cJSON_Compare(ru->body, body, 1))
            v->ok++;
        else
            miss(v, "body", NULL);
    }
}

static enum MHD_Result strict_miss(struct req *r, const struct mock_fixtures *f,
                                   const cJSON *body, int turns)
{
    char m[1024];
    size_t best = (size_t)-1;
    struct verdict bv = {0, 0, ""}, v;
    for (size_t i = 0; f && i < f->n; i++) {
        judge(&f->rules[i], r, turns, body, &v);
        if (best == (size_t)-1 || v.ok > bv.ok || (v.ok == bv.ok && v.bad < bv.bad)) {
            best = i;
            bv = v;
        }
    }
    if (best == (size_t)-1) {
        snprintf(m, sizeof m, "No fixture matches this request (strict mode): no fixtures are "
                 "loaded.");
    } else {
        const struct mock_fx_rule *ru = &f->rules[best];
        const char *file = f->files ? f->files[f->file_of[best]] : f->source;
        snprintf(m, sizeof m, "No fixture matches this request (strict mode). Closest: "
                 "rules[%zu]%s%s%s in %s, %u matcher%s held, failed: %s.",
                 best, ru->name[0] ? " \"" : "", ru->name,
                 ru->name[0] ? "\"" : "", file, bv.ok, bv.ok == 1 ? "" : "s",
                 bv.why[0] ? bv.why : "none");
    }
    if (r->api == MOCK_API_ANTHROPIC)
        return mock__send_error(r, 404, "not_found_error", m, NULL, NULL, -1);
    return mock__send_error(r, 404, "invalid_request_error", m, NULL, "fixture_not_found", -1);
}

/* Applies a matched reply's timing and retry-after to r's snapshot. */
static void apply_timing(struct req *r, const struct mock_fx_reply *p)
{
    struct mock_timing *t = &r->timing;
    if (p->raw) {
        t->dist = MOCK_DIST_FIXED;
        t->latency_ms = t->ttft_ms = p->raw->latency_ms;
        t->itl_ms = 0;
        return;
    }
    if (p->latency_ms >= 0 || p->ttft_ms >= 0 || p->itl_ms >= 0)
        t->dist = MOCK_DIST_FIXED;
    if (p->latency_ms >= 0) {
        t->latency_ms = p->latency_ms;
        t->ttft_ms = p->latency_ms;
    }
    if (p->ttft_ms >= 0)
        t->ttft_ms = p->ttft_ms;
    if (p->itl_ms >= 0) {
        t->itl_ms = p->itl_ms;
        t->itl_jitter = 0;
    }
    if (p->retry_after_ms >= 0)
        r->set.retry_after_ms = p->retry_after_ms;
}

int mock__fx_route(struct req *r, enum MHD_Result *res)
{
    struct mock_fx_state *st = r->srv->fx;
    if (!st || !atomic_load_explicit(&st->active, memory_order_acquire))
        return 0;
    if (st->rec) {
        *res = mock__rec_begin(st->rec, r);
        return 1;
    }
    struct mock_fixtures *f = mock__fx_acquire(st);
    if (!f && !st->strict)
        return 0;
    cJSON *body = NULL;
    int turns = -1;
    if (f && f->need_body) {
        body = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
        turns = turns_of(r->route, body);
        if (body)
            mock__fx_redact_json(body, NULL);
    }
    const struct mock_fx_rule *hit = NULL;
    struct verdict v;
    for (size_t i = 0; f && i < f->n && !hit; i++) {
        judge(&f->rules[i], r, turns, body, &v);
        if (v.bad == 0)
            hit = &f->rules[i];
    }
    if (!hit) {
        int strict = st->strict;
        if (strict)
            *res = strict_miss(r, f, body, turns);
        cJSON_Delete(body);
        mock__fx_unref(f);
        return strict;
    }
    cJSON_Delete(body);
    struct mock_fx_rule *ru = (struct mock_fx_rule *)hit; /* only its atomic counter moves */
    uint64_t n = atomic_fetch_add_explicit(&ru->calls, 1, memory_order_relaxed);
    size_t k = ru->after == MOCK_FX_CYCLE ? (size_t)(n % ru->nreplies)
                                          : (n < ru->nreplies ? (size_t)n : ru->nreplies - 1);
    const struct mock_fx_reply *p = &ru->replies[k];
    r->fx = f; /* the reference is dropped in the completion callback */
    r->fxr = p;
    if (p->tool_calls && r->route == MOCK_ROUTE_COMPLETIONS) {
        char m[300];
        snprintf(m, sizeof m, "Fixture rules[%zu]%s%s%s replies with tool_calls, which "
                 "/v1/completions has no shape for (give the rule \"match\": {\"route\": ...}).",
                 (size_t)(hit - f->rules), ru->name[0] ? " \"" : "", ru->name,
                 ru->name[0] ? "\"" : "");
        *res = mock__send_error(r, 400, "invalid_request_error", m, NULL, "fixture_unsupported",
                                -1);
        return 1;
    }
    apply_timing(r, p);
    if (p->fault > 0)
        atomic_fetch_add_explicit(&r->srv->stats.faults[p->fault], 1, RLX);
    if (p->err_status) {
        double retry = p->retry_after_ms;
        if (retry < 0 && (p->err_status == 429 || p->err_status == 503 || p->err_status == 529))
            retry = r->set.retry_after_ms;
        *res = mock__send_error(r, p->err_status, p->err_type, p->err_message, NULL,
                                p->err_code, retry);
        return 1;
    }
    return 0;
}

/* The fixture's tool calls into r->turn, replacing what the request's tools chose: name,
 * arguments (compact JSON; {} when not given), and the fixture's id or one made as for a
 * generated call. 0 or -1 (out of memory; r->turn then holds no calls). */
static int fx_calls(struct req *r, const cJSON *calls)
{
    struct mock_turn *t = &r->turn;
    for (unsigned k = 0; k < MOCK_TOOL_CALLS_MAX; k++)
        mock_tool_call_free(&t->call[k]);
    t->ncalls = 0;
    unsigned k = 0;
    for (const cJSON *c = calls->child; c && k < MOCK_TOOL_CALLS_MAX; c = c->next, k++) {
        struct mock_tool_call *tc = &t->call[k];
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "arguments");
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
        snprintf(tc->name, sizeof tc->name, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name")));
        tc->input = a ? cJSON_Duplicate(a, 1) : cJSON_CreateObject();
        tc->arguments = tc->input ? cJSON_PrintUnformatted(tc->input) : NULL;
        if (!tc->arguments) {
            for (unsigned q = 0; q <= k; q++)
                mock_tool_call_free(&t->call[q]);
            return -1;
        }
        if (id)
            snprintf(t->call_id[k], sizeof t->call_id[k], "%s", id);
        else
            mock_tool_call_id(r->api == MOCK_API_OPENAI ? "call_" : "toolu_", r->set.seed,
                              r->prompt, k, t->call_id[k], sizeof t->call_id[k]);
    }
    t->ncalls = k;
    return 0;
}

int mock__fx_text(struct req *r)
{
    const struct mock_fx_reply *p = r->fxr;
    if (!p)
        return 0;
    if (p->raw || p->err_status)
        return 2;
    if (p->tool_calls)
        return fx_calls(r, p->tool_calls) < 0 ? -1 : 3;
    if (!p->text)
        return 0;
    size_t len = strlen(p->text);
    r->content.text = strdup(p->text);
    if (!r->content.text)
        return -1;
    r->content.prompt_tokens = r->prompt_tokens;
    r->content.completion_tokens = mock_count_tokens(p->text, len);
    return 1;
}

void mock__fx_usage(struct req *r)
{
    const struct mock_fx_reply *p = r->fxr;
    if (!p)
        return;
    if (p->prompt_tokens >= 0)
        r->reply.prompt_tokens = (unsigned)p->prompt_tokens;
    if (p->completion_tokens >= 0) {
        r->reply.completion_set = 1;
        r->reply.completion_tokens = (unsigned)p->completion_tokens;
    }
}

int mock__fx_own_answer(const struct req *r)
{
    return r->fxr && (r->fxr->raw || r->fxr->err_status);
}

void mock__fx_req_done(struct req *r)
{
    mock__fx_unref(r->fx);
    r->fx = NULL;
    r->fxr = NULL;
    if (r->fx_own) {
        mock__fx_reply_clear(r->fx_own);
        free(r->fx_own);
        r->fx_own = NULL;
    }
}
