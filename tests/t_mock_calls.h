/*
 * t_mock_calls.h - the tool calls of one mock reply as a client sees them, on the three wires
 * (OpenAI chat tool_calls, Anthropic tool_use blocks, Responses function_call items), from a
 * whole reply or reassembled from a stream the way the SDKs accumulate it; shared by the
 * fixture and record/replay tests.
 */
#ifndef T_MOCK_CALLS_H
#define T_MOCK_CALLS_H

#include "t_mock_http.h"

/* What one reply calls: names, ids and arguments (streamed: the pieces joined), the finish
 * reason and the completion tokens its usage reports. */
struct t_calls {
    int n;
    char name[4][64], id[4][64], args[4][512], finish[32];
    double ctok;
};

static inline void t_calls_add(struct t_calls *c, int k, const char *name, const char *id)
{
    assert_int_equal(k, c->n); /* named in order, each once */
    assert_true(k < 4);
    snprintf(c->name[k], sizeof c->name[k], "%s", name);
    snprintf(c->id[k], sizeof c->id[k], "%s", id);
    c->n++;
}

static inline void t_calls_args(struct t_calls *c, int k, const char *piece)
{
    assert_true(k >= 0 && k < c->n);
    strncat(c->args[k], piece, sizeof c->args[k] - strlen(c->args[k]) - 1);
}

/* From a whole reply; api 0: chat, 1: messages, 2: Responses. c is filled from zero. */
static inline void t_calls_of_body(int api, cJSON *j, struct t_calls *c)
{
    memset(c, 0, sizeof *c);
    c->ctok = -1;
    static const char *const at[3] = {"choices.0.message.tool_calls", "content", "output"};
    int k = 0;
    const cJSON *items = t_jget(j, at[api]);
    for (const cJSON *it = items ? items->child : NULL; it; it = it->next) {
        const char *type = t_jget(it, "type") ? t_jstr(it, "type") : "";
        if (api && strcmp(type, api == 1 ? "tool_use" : "function_call"))
            continue; /* a text block or message item */
        t_calls_add(c, k, t_jstr(it, api == 0 ? "function.name" : "name"),
                 t_jstr(it, api == 2 ? "call_id" : "id"));
        if (api == 1) {
            char *in = cJSON_PrintUnformatted(t_jget(it, "input"));
            t_calls_args(c, k, in);
            cJSON_free(in);
        } else {
            t_calls_args(c, k, t_jstr(it, api == 0 ? "function.arguments" : "arguments"));
        }
        k++;
    }
    snprintf(c->finish, sizeof c->finish, "%s",
             t_jstr(j, api == 0 ? "choices.0.finish_reason" : api == 1 ? "stop_reason" : "status"));
    c->ctok = t_jnum(j, api == 0 ? "usage.completion_tokens" : "usage.output_tokens");
}

/* From a stream's events (t_sse_parse); the same c as t_calls_of_body. */
static inline void t_calls_of_stream(int api, const struct t_sse *sse, struct t_calls *c)
{
    memset(c, 0, sizeof *c);
    c->ctok = -1;
    for (size_t i = 0; i < sse->n; i++) {
        if (!strcmp(sse->ev[i].data, "[DONE]"))
            continue;
        cJSON *e = cJSON_Parse(sse->ev[i].data);
        assert_non_null(e);
        const char *ty = api ? t_jstr(e, "type") : "";
        const cJSON *tc = api == 0 ? t_jget(e, "choices.0.delta.tool_calls.0") : NULL;
        const cJSON *fr = api == 0 ? t_jget(e, "choices.0.finish_reason") : NULL;
        if (tc && t_jget(tc, "id"))
            t_calls_add(c, (int)t_jnum(tc, "index"), t_jstr(tc, "function.name"), t_jstr(tc, "id"));
        else if (tc)
            t_calls_args(c, (int)t_jnum(tc, "index"), t_jstr(tc, "function.arguments"));
        if (cJSON_IsString(fr))
            snprintf(c->finish, sizeof c->finish, "%s", fr->valuestring);
        if (api == 0 && cJSON_IsObject(t_jget(e, "usage")))
            c->ctok = t_jnum(e, "usage.completion_tokens");
        if (api == 1 && !strcmp(ty, "content_block_start")) {
            assert_string_equal(t_jstr(e, "content_block.type"), "tool_use");
            t_calls_add(c, (int)t_jnum(e, "index"), t_jstr(e, "content_block.name"),
                     t_jstr(e, "content_block.id"));
        } else if (api == 1 && !strcmp(ty, "content_block_delta")) {
            t_calls_args(c, (int)t_jnum(e, "index"), t_jstr(e, "delta.partial_json"));
        } else if (api == 1 && !strcmp(ty, "message_delta")) {
            snprintf(c->finish, sizeof c->finish, "%s", t_jstr(e, "delta.stop_reason"));
            c->ctok = t_jnum(e, "usage.output_tokens");
        } else if (api == 2 && !strcmp(ty, "response.output_item.added")) {
            t_calls_add(c, (int)t_jnum(e, "output_index"), t_jstr(e, "item.name"),
                     t_jstr(e, "item.call_id"));
        } else if (api == 2 && !strcmp(ty, "response.function_call_arguments.delta")) {
            t_calls_args(c, (int)t_jnum(e, "output_index"), t_jstr(e, "delta"));
        } else if (api == 2 && !strcmp(ty, "response.completed")) {
            snprintf(c->finish, sizeof c->finish, "%s", t_jstr(e, "response.status"));
            c->ctok = t_jnum(e, "response.usage.output_tokens");
        }
        cJSON_Delete(e);
    }
}
#endif
