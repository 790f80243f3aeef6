/*
 * proto_tools.c - the tool-call replies of the three wires, in the shapes the official SDKs
 * accumulate: OpenAI chat's message.tool_calls (streamed as delta.tool_calls, the id, type and
 * function name first and then the arguments in pieces), Anthropic's tool_use content block
 * (streamed as content_block_start then input_json_delta pieces of partial_json) and the
 * Responses API's function_call output item (streamed as response.function_call_arguments.delta
 * events and .done). One call per reply; the reply's text is the arguments' compact JSON and its
 * pieces are what the stream sends. Like proto.c it only writes what it is told.
 */
#include <stdio.h>
#include <string.h>

#include "mock_internal.h"

/* ---- OpenAI chat ---- */

static void chat_chunk_start(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                  "\"model\":", r->id, r->created);
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
}

static void chat_chunk_end(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_str(b, r->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n");
}

static void chat_call(struct mock_buf *b, const struct mock_reply *r, int with_args)
{
    mock__buf_fmt(b, "{%s\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":",
                  with_args ? "" : "\"index\":0,", r->tool_id);
    mock__buf_json_str(b, r->tool_name, strlen(r->tool_name));
    mock__buf_str(b, ",\"arguments\":");
    if (with_args)
        mock__buf_json_str(b, r->text, r->text_len);
    else
        mock__buf_str(b, "\"\"");
    mock__buf_str(b, "}}");
}

static void chat_body(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
                  r->id, r->created);
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                     "\"content\":null,\"tool_calls\":[");
    chat_call(b, r, 1);
    mock__buf_fmt(b, "],\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
                  "\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,\"total_tokens\":%u},"
                  "\"system_fingerprint\":\"fp_mock\"}", r->prompt_tokens, r->ntok,
                  r->prompt_tokens + r->ntok);
}

static void chat_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    const char *p;
    size_t n;
    if (k == 0) {
        chat_chunk_start(b, r);
        mock__buf_str(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
                         "\"tool_calls\":[");
        chat_call(b, r, 0);
        mock__buf_str(b, "],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
        chat_chunk_end(b, r);
    } else if (k < 1 + (size_t)r->ntok) {
        mock__proto_piece(r, k - 1, &p, &n);
        chat_chunk_start(b, r);
        mock__buf_str(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
                         "{\"arguments\":");
        mock__buf_json_str(b, p, n);
        if (corrupt) {
            mock__buf_str(b, "\n\n");
            return;
        }
        mock__buf_str(b, "}}]},\"logprobs\":null,\"finish_reason\":null}");
        chat_chunk_end(b, r);
    } else if (k == 1 + (size_t)r->ntok) {
        chat_chunk_start(b, r);
        mock__buf_str(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,"
                         "\"finish_reason\":\"tool_calls\"}");
        chat_chunk_end(b, r);
    } else if (r->include_usage && k == 2 + (size_t)r->ntok) {
        chat_chunk_start(b, r);
        mock__buf_fmt(b, "],\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,"
                      "\"total_tokens\":%u}}\n\n", r->prompt_tokens, r->ntok,
                      r->prompt_tokens + r->ntok);
    } else {
        mock__buf_str(b, "data: [DONE]\n\n");
    }
}

/* ---- Anthropic messages ---- */

static void tool_use_block(struct mock_buf *b, const struct mock_reply *r, int with_input)
{
    mock__buf_fmt(b, "{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":", r->tool_id);
    mock__buf_json_str(b, r->tool_name, strlen(r->tool_name));
    mock__buf_str(b, ",\"input\":");
    if (with_input)
        mock__buf_add(b, r->text, r->text_len); /* compact JSON already */
    else
        mock__buf_str(b, "{}");
    mock__buf_str(b, "}");
}

static void messages_body(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", r->id);
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"content\":[");
    tool_use_block(b, r, 1);
    mock__buf_fmt(b, "],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":"
                  "{\"input_tokens\":%u,\"cache_creation_input_tokens\":0,"
                  "\"cache_read_input_tokens\":0,\"output_tokens\":%u}}", r->prompt_tokens,
                  r->ntok);
}

static void messages_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    const char *p;
    size_t n;
    if (k == 0) {
        mock__buf_fmt(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                      "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", r->id);
        mock__buf_json_str(b, r->model, strlen(r->model));
        mock__buf_fmt(b, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
                      "{\"input_tokens\":%u,\"cache_creation_input_tokens\":0,"
                      "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n",
                      r->prompt_tokens);
    } else if (k == 1) {
        mock__buf_str(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                         "\"index\":0,\"content_block\":");
        tool_use_block(b, r, 0);
        mock__buf_str(b, "}\n\n");
    } else if (k == 2) {
        mock__buf_str(b, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    } else if (k < 3 + (size_t)r->ntok) {
        mock__proto_piece(r, k - 3, &p, &n);
        mock__buf_str(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                         "\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":");
        mock__buf_json_str(b, p, n);
        mock__buf_str(b, corrupt ? "\n\n" : "}}\n\n");
    } else if (k == 3 + (size_t)r->ntok) {
        mock__buf_str(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                         "\"index\":0}\n\n");
    } else if (k == 4 + (size_t)r->ntok) {
        mock__buf_fmt(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                      "{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":"
                      "{\"output_tokens\":%u}}\n\n", r->ntok);
    } else {
        mock__buf_str(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
}

/* ---- Responses ---- */

static void fc_id(struct mock_buf *b, const struct mock_reply *r)
{
    const char *hex = strchr(r->id, '_');
    mock__buf_fmt(b, "\"fc_%s\"", hex ? hex + 1 : r->id);
}

static void fc_item(struct mock_buf *b, const struct mock_reply *r, int done)
{
    mock__buf_str(b, "{\"id\":");
    fc_id(b, r);
    mock__buf_fmt(b, ",\"type\":\"function_call\",\"status\":\"%s\",\"arguments\":",
                  done ? "completed" : "in_progress");
    if (done)
        mock__buf_json_str(b, r->text, r->text_len);
    else
        mock__buf_str(b, "\"\"");
    mock__buf_fmt(b, ",\"call_id\":\"%s\",\"name\":", r->tool_id);
    mock__buf_json_str(b, r->tool_name, strlen(r->tool_name));
    mock__buf_str(b, "}");
}

static void fc_done(struct mock_buf *b, const struct mock_reply *r)
{
    fc_item(b, r, 1);
}

static void responses_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    const char *p;
    size_t n;
    if (k == 0 || k == 1) {
        mock__proto_event_start(b, k == 0 ? "response.created" : "response.in_progress", k);
        mock__buf_str(b, "\"response\":");
        mock__proto_responses_obj(b, r, 0, fc_done);
        mock__buf_str(b, "}\n\n");
    } else if (k == 2) {
        mock__proto_event_start(b, "response.output_item.added", k);
        mock__buf_str(b, "\"output_index\":0,\"item\":");
        fc_item(b, r, 0);
        mock__buf_str(b, "}\n\n");
    } else if (k < 3 + (size_t)r->ntok) {
        mock__proto_piece(r, k - 3, &p, &n);
        mock__proto_event_start(b, "response.function_call_arguments.delta", k);
        mock__buf_str(b, "\"item_id\":");
        fc_id(b, r);
        mock__buf_str(b, ",\"output_index\":0,\"delta\":");
        mock__buf_json_str(b, p, n);
        mock__buf_str(b, corrupt ? "\n\n" : "}\n\n");
    } else if (k == 3 + (size_t)r->ntok) {
        mock__proto_event_start(b, "response.function_call_arguments.done", k);
        mock__buf_str(b, "\"item_id\":");
        fc_id(b, r);
        mock__buf_str(b, ",\"output_index\":0,\"name\":");
        mock__buf_json_str(b, r->tool_name, strlen(r->tool_name));
        mock__buf_str(b, ",\"arguments\":");
        mock__buf_json_str(b, r->text, r->text_len);
        mock__buf_str(b, "}\n\n");
    } else if (k == 4 + (size_t)r->ntok) {
        mock__proto_event_start(b, "response.output_item.done", k);
        mock__buf_str(b, "\"output_index\":0,\"item\":");
        fc_item(b, r, 1);
        mock__buf_str(b, "}\n\n");
    } else {
        mock__proto_event_start(b, "response.completed", k);
        mock__buf_str(b, "\"response\":");
        mock__proto_responses_obj(b, r, 1, fc_done);
        mock__buf_str(b, "}\n\n");
    }
}

/* ---- dispatch ---- */

void mock__proto_tool_body(struct mock_buf *b, const struct mock_reply *r)
{
    if (r->wire == MOCK_WIRE_RESPONSES)
        mock__proto_responses_obj(b, r, 1, fc_done);
    else if (r->api == MOCK_API_ANTHROPIC)
        messages_body(b, r);
    else
        chat_body(b, r);
}

size_t mock__proto_tool_head_frames(const struct mock_reply *r)
{
    /* Responses: created, in_progress, output_item.added; messages: message_start,
     * content_block_start, ping; chat: the chunk naming the call. */
    return r->wire == MOCK_WIRE_RESPONSES || r->api == MOCK_API_ANTHROPIC ? 3 : 1;
}

size_t mock__proto_tool_frame_count(const struct mock_reply *r)
{
    size_t tail = r->wire == MOCK_WIRE_RESPONSES || r->api == MOCK_API_ANTHROPIC
                      ? 3 /* arguments.done, output_item.done, completed; block_stop, delta, stop */
                      : (size_t)(2 + (r->include_usage ? 1 : 0));
    return mock__proto_tool_head_frames(r) + r->ntok + tail;
}

void mock__proto_tool_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    if (r->wire == MOCK_WIRE_RESPONSES)
        responses_frame(b, r, k, corrupt);
    else if (r->api == MOCK_API_ANTHROPIC)
        messages_frame(b, r, k, corrupt);
    else
        chat_frame(b, r, k, corrupt);
}
