/*
 * request_more.c - parses the OpenAI routes besides chat: legacy completions (model, prompt,
 * max_tokens defaulting to 16 as the real API does, stream), the Responses API (model, input
 * as a string or a list of message items, instructions, max_output_tokens, stream) and
 * embeddings (model, input as a string, a list of strings or token lists, dimensions,
 * encoding_format), with errors worded like the real API's. Embeddings are answered here
 * whole: each input gets a unit vector drawn from the seed and the FNV-1a hash of its text, so
 * the same text always gets the same vector and different texts almost orthogonal ones. Reply
 * text for the other two comes from content.c later, like chat.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

#define EMBED_DIMS_DEFAULT 1536 /* text-embedding-3-small's */
#define EMBED_DIMS_MAX 4096

static int missing(struct perr *e, const char *name)
{
    snprintf(e->buf, sizeof e->buf, "Missing required parameter: '%s'.", name);
    snprintf(e->pbuf, sizeof e->pbuf, "%s", name);
    e->msg = e->buf;
    e->param = e->pbuf;
    e->code = "missing_required_parameter";
    return -1;
}

static int bad_type(struct perr *e, const char *name, const char *want, const cJSON *got)
{
    snprintf(e->buf, sizeof e->buf, "Invalid type for '%s': expected %s, but got %s instead.",
             name, want, mock__json_type(got));
    snprintf(e->pbuf, sizeof e->pbuf, "%s", name);
    e->msg = e->buf;
    e->param = e->pbuf;
    e->code = "invalid_type";
    return -1;
}

/* A string, or an array of strings or of integers (token ids), or an array of such integer
 * arrays (embeddings only: nested). Calls fn for each text (token arrays give "" and their
 * length as the token count). 0, or -1 with e filled. */
typedef void (*text_fn)(void *ud, const char *text, size_t len, unsigned tokens);

static int is_token_list(const cJSON *a)
{
    if (!cJSON_IsArray(a) || !a->child)
        return 0;
    for (const cJSON *t = a->child; t; t = t->next)
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0)
            return 0;
    return 1;
}

static int each_text(const cJSON *v, const char *name, int nested, text_fn fn, void *ud,
                     struct perr *e)
{
    const char *want = nested ? "a string, an array of strings or an array of token arrays"
                              : "a string or an array of strings";
    if (cJSON_IsString(v)) {
        fn(ud, v->valuestring, strlen(v->valuestring), 0);
        return 0;
    }
    if (!cJSON_IsArray(v))
        return bad_type(e, name, want, v);
    if (!v->child) {
        snprintf(e->buf, sizeof e->buf, "Invalid '%s': empty array. Expected an array with "
                 "minimum length 1, but got an empty array instead.", name);
        snprintf(e->pbuf, sizeof e->pbuf, "%s", name);
        e->msg = e->buf;
        e->param = e->pbuf;
        e->code = "empty_array";
        return -1;
    }
    if (is_token_list(v)) {
        fn(ud, "", 0, (unsigned)cJSON_GetArraySize(v));
        return 0;
    }
    for (const cJSON *it = v->child; it; it = it->next) {
        if (cJSON_IsString(it))
            fn(ud, it->valuestring, strlen(it->valuestring), 0);
        else if (nested && is_token_list(it))
            fn(ud, "", 0, (unsigned)cJSON_GetArraySize(it));
        else
            return bad_type(e, name, want, it);
    }
    return 0;
}

/* ---- legacy completions ---- */

struct last_text {
    struct mock_buf text;
    unsigned tokens;
};

static void keep_last(void *ud, const char *text, size_t len, unsigned tokens)
{
    struct last_text *l = ud;
    l->text.len = 0;
    mock__buf_add(&l->text, text, len);
    l->tokens += tokens ? tokens : mock_count_tokens(text, len);
}

static int parse_completions(struct req *r, const cJSON *j, struct perr *e)
{
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *maxt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    if (!prompt)
        return missing(e, "prompt");
    struct last_text l = {{0}, 0};
    if (each_text(prompt, "prompt", 0, keep_last, &l, e) < 0) {
        mock__buf_free(&l.text);
        return -1;
    }
    r->max_tokens = 16; /* the real API's default */
    if (maxt && !cJSON_IsNull(maxt) && mock__count_param(maxt, 1, e, &r->max_tokens) < 0) {
        mock__buf_free(&l.text);
        return -1;
    }
    r->prompt_tokens = l.tokens ? l.tokens : 1;
    r->prompt = mock__buf_take(&l.text);
    r->system = mock__buf_take(&(struct mock_buf){0});
    return r->prompt && r->system ? 0 : -2;
}

/* ---- Responses API ---- */

static int parse_responses(struct req *r, const cJSON *j, struct perr *e)
{
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "instructions");
    const cJSON *maxt = cJSON_GetObjectItemCaseSensitive(j, "max_output_tokens");
    if (!input)
        return missing(e, "input");
    if (ins && !cJSON_IsNull(ins) && !cJSON_IsString(ins))
        return bad_type(e, "instructions", "a string", ins);
    if (maxt && !cJSON_IsNull(maxt) && mock__count_param(maxt, 1, e, &r->max_tokens) < 0)
        return -1;
    struct mock_buf sys = {0}, prompt = {0};
    unsigned tokens = 0, idx = 0;
    int rc = -1;
    if (cJSON_IsString(ins)) {
        mock__buf_str(&sys, ins->valuestring);
        r->instructions = strdup(ins->valuestring);
        if (!r->instructions)
            goto oom;
    }
    if (cJSON_IsString(input)) {
        mock__buf_str(&prompt, input->valuestring);
        tokens += mock_count_tokens(input->valuestring, strlen(input->valuestring));
    } else if (!cJSON_IsArray(input)) {
        bad_type(e, "input", "a string or an array of input items", input);
        goto out;
    }
    for (const cJSON *it = cJSON_IsArray(input) ? input->child : NULL; it; it = it->next, idx++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        if (!cJSON_IsObject(it)) {
            snprintf(e->buf, sizeof e->buf, "Invalid type for 'input[%u]': expected an input "
                     "item object, but got %s instead.", idx, mock__json_type(it));
            e->msg = e->buf;
            e->param = "input";
            e->code = "invalid_type";
            goto out;
        }
        if (!role && cJSON_IsString(type) && strcmp(type->valuestring, "message"))
            continue; /* function_call_output, item_reference, ...: no text to answer */
        const char *rs = cJSON_GetStringValue(role);
        if (!rs || (strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "system") &&
                    strcmp(rs, "developer"))) {
            snprintf(e->buf, sizeof e->buf, "Invalid value for 'input[%u].role': expected one "
                     "of 'user', 'assistant', 'system' or 'developer'.", idx);
            e->msg = e->buf;
            e->param = "input";
            e->code = "invalid_value";
            goto out;
        }
        struct mock_buf t = {0};
        if (mock__content_text(cJSON_GetObjectItemCaseSensitive(it, "content"), &t) < 0) {
            mock__buf_free(&t);
            snprintf(e->buf, sizeof e->buf, "Invalid type for 'input[%u].content': expected a "
                     "string or an array of content parts.", idx);
            e->msg = e->buf;
            e->param = "input";
            e->code = "invalid_type";
            goto out;
        }
        tokens += mock_count_tokens(t.p, t.len);
        mock__take_turn(rs, 1, &t, &sys, &prompt);
    }
    if (cJSON_IsString(ins))
        tokens += mock_count_tokens(ins->valuestring, strlen(ins->valuestring));
    r->prompt_tokens = tokens ? tokens : 1;
    r->system = mock__buf_take(&sys);
    r->prompt = mock__buf_take(&prompt);
    rc = r->system && r->prompt ? 0 : -2;
    if (rc == 0)
        rc = mock__parse_tools(r, j, e);
    goto out;
oom:
    rc = -2;
out:
    mock__buf_free(&sys);
    mock__buf_free(&prompt);
    return rc;
}

/* ---- embeddings ---- */

struct embed_ctx {
    struct mock_buf *b;
    uint64_t seed;
    unsigned dims, index, tokens;
    int b64;
    float *v;
};

static void b64_append(struct mock_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char out[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                       i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        mock__buf_add(b, out, 4);
    }
}

static void embed_one(void *ud, const char *text, size_t len, unsigned tokens)
{
    struct embed_ctx *c = ud;
    uint64_t h = mock__fnv1a64(text, len) ^ mock__mix64(c->seed ^ 0x656d6265646d6f63ull);
    if (!len) /* a token list: its length stands in for its text */
        h ^= mock__mix64(tokens);
    double norm = 0;
    for (unsigned i = 0; i < c->dims; i++) {
        double x = mock__normal(h + (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull);
        c->v[i] = (float)x;
        norm += x * x;
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    mock__buf_fmt(c->b, "%s{\"object\":\"embedding\",\"index\":%u,\"embedding\":",
                  c->index ? "," : "", c->index);
    for (unsigned i = 0; i < c->dims; i++)
        c->v[i] = (float)(c->v[i] / norm);
    if (c->b64) {
        /* float32 little-endian, as the real API's base64 encoding */
        unsigned char *raw = (unsigned char *)c->v;
        uint32_t one = 1;
        if (*(unsigned char *)&one != 1) {
            for (unsigned i = 0; i < c->dims; i++) {
                unsigned char *q = raw + 4 * i, t0 = q[0], t1 = q[1];
                q[0] = q[3];
                q[1] = q[2];
                q[2] = t1;
                q[3] = t0;
            }
        }
        mock__buf_str(c->b, "\"");
        b64_append(c->b, raw, (size_t)c->dims * 4);
        mock__buf_str(c->b, "\"");
    } else {
        mock__buf_str(c->b, "[");
        for (unsigned i = 0; i < c->dims; i++)
            mock__buf_fmt(c->b, i ? ",%.9g" : "%.9g", (double)c->v[i]); /* round-trips a float */
        mock__buf_str(c->b, "]");
    }
    mock__buf_str(c->b, "}");
    c->index++;
    c->tokens += tokens ? tokens : mock_count_tokens(text, len);
}

static int parse_embeddings(struct req *r, const cJSON *j, struct perr *e)
{
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(j, "dimensions");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "encoding_format");
    if (!input)
        return missing(e, "input");
    struct embed_ctx c = {0};
    c.dims = EMBED_DIMS_DEFAULT;
    if (dims && !cJSON_IsNull(dims)) {
        long long d;
        if (mock__count_param(dims, 1, e, &d) < 0)
            return -1;
        if (d > EMBED_DIMS_MAX) {
            snprintf(e->buf, sizeof e->buf, "Invalid 'dimensions': integer above maximum value. "
                     "Expected a value <= %d, but got %lld instead.", EMBED_DIMS_MAX, d);
            e->msg = e->buf;
            e->param = "dimensions";
            e->code = "integer_above_max_value";
            return -1;
        }
        c.dims = (unsigned)d;
    }
    if (fmt && !cJSON_IsNull(fmt)) {
        const char *f = cJSON_GetStringValue(fmt);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64"))) {
            e->msg = "Invalid value for 'encoding_format': expected 'float' or 'base64'.";
            e->param = "encoding_format";
            e->code = "invalid_value";
            return -1;
        }
        c.b64 = !strcmp(f, "base64");
    }
    struct mock_buf b = {0};
    c.b = &b;
    c.seed = r->set.seed;
    c.v = malloc(c.dims * sizeof *c.v);
    if (!c.v)
        return -2;
    mock__buf_str(&b, "{\"object\":\"list\",\"data\":[");
    int rc = each_text(input, "input", 1, embed_one, &c, e);
    free(c.v);
    if (rc < 0) {
        mock__buf_free(&b);
        return -1;
    }
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "model"));
    mock__buf_str(&b, "],\"model\":");
    mock__buf_json_str(&b, model, strlen(model));
    mock__buf_fmt(&b, ",\"usage\":{\"prompt_tokens\":%u,\"total_tokens\":%u}}", c.tokens,
                  c.tokens);
    r->prompt_tokens = c.tokens;
    r->plen = b.len;
    r->pbody = mock__buf_take(&b);
    return r->pbody ? 0 : -2;
}

int mock__parse_more(struct req *r, const cJSON *j, struct perr *e)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (mock__check_model(model, 1, e) < 0)
        return -1;
    int rc;
    if (r->route == MOCK_ROUTE_EMBEDDINGS) {
        rc = parse_embeddings(r, j, e);
    } else {
        if (mock__check_stream(j, 1, r, e) < 0)
            return -1;
        rc = r->route == MOCK_ROUTE_COMPLETIONS ? parse_completions(r, j, e)
                                                 : parse_responses(r, j, e);
    }
    if (rc < 0)
        return rc;
    r->model = strdup(model->valuestring);
    return r->model ? 0 : -2;
}
