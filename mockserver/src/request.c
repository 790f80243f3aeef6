/*
 * request.c - parses and validates the body of a chat completion (OpenAI) or messages
 * (Anthropic) request: model, messages, max_tokens, stream and stream_options, the system text
 * and the last user prompt, with errors worded as the real APIs word them, and the checks the
 * other routes' parsers (request_more.c) share. It neither sends replies nor touches the
 * server's shared state.
 */

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

const char *mock__json_type(const cJSON *j)
{
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsObject(j))
        return "an object";
    return "null";
}

/* Appends the text of a content value (string, null, or array of text parts). -1: bad type. */
int mock__content_text(const cJSON *c, struct mock_buf *out)
{
    if (!c || cJSON_IsNull(c))
        return 0;
    if (cJSON_IsString(c)) {
        mock__buf_str(out, c->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(c))
        return -1;
    for (const cJSON *p = c->child; p; p = p->next) {
        if (!cJSON_IsObject(p))
            return -1;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(t)) {
            if (out->len)
                mock__buf_str(out, "\n");
            mock__buf_str(out, t->valuestring);
        }
    }
    return 0;
}

char *mock__buf_take(struct mock_buf *b)
{
    if (b->oom) {
        mock__buf_free(b);
        return NULL;
    }
    if (!b->p) {
        char *e = malloc(1);
        if (e)
            *e = 0;
        return e;
    }
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* A token count such as max_tokens: an integer in 1..INT_MAX, as both APIs require. 0 with
 * *out set, or -1 with e filled (its text copied: v's JSON is freed before e is read). */
int mock__count_param(const cJSON *v, int oa, struct perr *e, long long *out)
{
    snprintf(e->pbuf, sizeof e->pbuf, "%s", v->string ? v->string : "max_tokens");
    const char *name = e->pbuf;
    double d = v->valuedouble;
    e->msg = e->buf;
    e->param = e->pbuf;
    if (!cJSON_IsNumber(v) || d != floor(d) || isnan(d)) {
        /* JSON has no NaN, but floor(inf) == inf: infinities are "above/below", not here. */
        if (oa)
            snprintf(e->buf, sizeof e->buf, "Invalid type for '%s': expected an integer, but "
                     "got %s instead.", name, cJSON_IsNumber(v) ? "a decimal number"
                                                                 : mock__json_type(v));
        else
            snprintf(e->buf, sizeof e->buf, "%s: Input should be a valid integer", name);
        e->code = "invalid_type";
        return -1;
    }
    if (d < 1) {
        if (oa)
            snprintf(e->buf, sizeof e->buf, "Invalid '%s': integer below minimum value. "
                     "Expected a value >= 1, but got %.17g instead.", name, d);
        else
            snprintf(e->buf, sizeof e->buf, "%s: Input should be greater than or equal to 1",
                     name);
        e->code = "integer_below_min_value";
        return -1;
    }
    if (d > INT_MAX) {
        if (oa)
            snprintf(e->buf, sizeof e->buf, "Invalid '%s': integer above maximum value. "
                     "Expected a value <= %d, but got %.17g instead.", name, INT_MAX, d);
        else
            snprintf(e->buf, sizeof e->buf, "%s: Input should be less than or equal to %d",
                     name, INT_MAX);
        e->code = "integer_above_max_value";
        return -1;
    }
    *out = (long long)d;
    memset(e, 0, sizeof *e);
    return 0;
}

int mock__check_model(const cJSON *model, int oa, struct perr *e)
{
    if (!model) {
        e->msg = oa ? "you must provide a model parameter" : "model: Field required";
        return -1;
    }
    if (!cJSON_IsString(model)) {
        snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'model': expected a string, but "
                 "got %s instead." : "model: Input should be a valid string (got %s)",
                 mock__json_type(model));
        e->msg = e->buf;
        e->param = "model";
        e->code = "invalid_type";
        return -1;
    }
    return 0;
}

void mock__take_turn(const char *role, int system_roles, struct mock_buf *t,
                     struct mock_buf *sys, struct mock_buf *prompt)
{
    if (system_roles && (!strcmp(role, "system") || !strcmp(role, "developer"))) {
        if (sys->len)
            mock__buf_str(sys, "\n");
        mock__buf_add(sys, t->p ? t->p : "", t->len);
    } else if (!strcmp(role, "user")) {
        prompt->len = 0;
        mock__buf_add(prompt, t->p ? t->p : "", t->len);
    }
    mock__buf_free(t);
}

int mock__check_stream(const cJSON *j, int oa, struct req *r, struct perr *e)
{
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(j, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'stream': expected a boolean, "
                     "but got %s instead." : "stream: Input should be a valid boolean (got %s)",
                     mock__json_type(stream));
            e->msg = e->buf;
            e->param = "stream";
            e->code = "invalid_type";
            return -1;
        }
        r->stream = cJSON_IsTrue(stream);
    }
    if (oa && r->stream) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
        if (so && !cJSON_IsNull(so)) {
            if (!cJSON_IsObject(so)) {
                e->msg = "Invalid type for 'stream_options': expected an object.";
                e->param = "stream_options";
                e->code = "invalid_type";
                return -1;
            }
            r->include_usage =
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
        }
    }
    return 0;
}

/* Parses and validates r->body for r->api. 0, -1 (bad request: e filled) or -2 (OOM). */
int mock__parse_api(struct req *r, struct perr *e)
{
    int oa = r->api == MOCK_API_OPENAI;
    memset(e, 0, sizeof *e);
    cJSON *j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        e->msg = oa ? "We could not parse the JSON body of your request. (HINT: This likely means "
                      "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                      "payload, but what was sent was not valid JSON.)"
                    : "There was an error parsing the body: the request body is not a valid JSON "
                      "object";
        return -1;
    }
    if (r->route == MOCK_ROUTE_COMPLETIONS || r->route == MOCK_ROUTE_RESPONSES ||
        r->route == MOCK_ROUTE_EMBEDDINGS) {
        int more = mock__parse_more(r, j, e);
        cJSON_Delete(j);
        return more;
    }
    int rc = -1;
    struct mock_buf sys = {0}, prompt = {0};
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *maxt = cJSON_GetObjectItemCaseSensitive(j, oa ? "max_completion_tokens"
                                                               : "max_tokens");
    if (oa && !maxt)
        maxt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    if (mock__check_model(model, oa, e) < 0)
        goto out;
    if (!msgs) {
        e->msg = oa ? "Missing required parameter: 'messages'." : "messages: Field required";
        e->param = "messages";
        e->code = "missing_required_parameter";
        goto out;
    }
    if (!cJSON_IsArray(msgs)) {
        snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'messages': expected an array of "
                 "objects, but got %s instead." : "messages: Input should be a valid list (got %s)",
                 mock__json_type(msgs));
        e->msg = e->buf;
        e->param = "messages";
        e->code = "invalid_type";
        goto out;
    }
    if (!msgs->child && oa) {
        e->msg = "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                 "got an empty array instead.";
        e->param = "messages";
        e->code = "empty_array";
        goto out;
    }
    if (!oa && !maxt) {
        e->msg = "max_tokens: Field required";
        e->param = "max_tokens";
        goto out;
    }
    if (maxt && !cJSON_IsNull(maxt) && mock__count_param(maxt, oa, e, &r->max_tokens) < 0)
        goto out;
    if (mock__check_stream(j, oa, r, e) < 0)
        goto out;
    if (!oa) {
        const cJSON *sy = cJSON_GetObjectItemCaseSensitive(j, "system");
        if (sy && mock__content_text(sy, &sys) < 0) {
            e->msg = "system: Input should be a valid string or a list of text blocks";
            e->param = "system";
            goto out;
        }
    }
    unsigned tokens = 0, idx = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, idx++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(e->buf, sizeof e->buf, oa ? "Missing required parameter: 'messages[%u].role'."
                     : "messages.%u.role: Field required", idx);
            e->msg = e->buf;
            e->param = "messages";
            e->code = "missing_required_parameter";
            goto out;
        }
        const char *rs = role->valuestring;
        int ok = oa ? (!strcmp(rs, "system") || !strcmp(rs, "developer") || !strcmp(rs, "user") ||
                       !strcmp(rs, "assistant") || !strcmp(rs, "tool") || !strcmp(rs, "function"))
                    : (!strcmp(rs, "user") || !strcmp(rs, "assistant"));
        if (!ok) {
            if (oa)
                snprintf(e->buf, sizeof e->buf, "Invalid value: '%.40s'. Supported values are: "
                         "'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                         rs);
            else
                snprintf(e->buf, sizeof e->buf, "messages.%u.role: Input should be 'user' or "
                         "'assistant'", idx);
            e->msg = e->buf;
            e->param = "messages";
            e->code = "invalid_value";
            goto out;
        }
        if (!oa && !content) {
            snprintf(e->buf, sizeof e->buf, "messages.%u.content: Field required", idx);
            e->msg = e->buf;
            goto out;
        }
        struct mock_buf t = {0};
        if (mock__content_text(content, &t) < 0) {
            mock__buf_free(&t);
            snprintf(e->buf, sizeof e->buf, oa ? "Invalid type for 'messages[%u].content': "
                     "expected a string or an array of content parts." :
                     "messages.%u.content: Input should be a valid string or list of blocks", idx);
            e->msg = e->buf;
            e->param = "messages";
            e->code = "invalid_type";
            goto out;
        }
        tokens += mock_count_tokens(t.p, t.len);
        mock__take_turn(rs, oa, &t, &sys, &prompt);
    }
    if (!oa)
        tokens += mock_count_tokens(sys.p, sys.len);
    r->prompt_tokens = tokens ? tokens : 1;
    r->model = strdup(model->valuestring);
    r->system = mock__buf_take(&sys);
    r->prompt = mock__buf_take(&prompt);
    rc = (r->model && r->system && r->prompt) ? 0 : -2;
    if (rc == 0)
        rc = mock__parse_tools(r, j, e);
out:
    mock__buf_free(&sys);
    mock__buf_free(&prompt);
    cJSON_Delete(j);
    return rc;
}
