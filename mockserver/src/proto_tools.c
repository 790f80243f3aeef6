/*
 * proto_tools.c - the tool-call replies of the three wires, in the shapes the official SDKs
 * accumulate: OpenAI chat's message.tool_calls (streamed as delta.tool_calls, the id, type and
 * function name first and then the arguments in pieces), Anthropic's tool_use content block
 * (streamed as content_block_start then input_json_delta pieces of partial_json) and the
 * Responses API's function_call output item (streamed as response.function_call_arguments.delta
 * events and .done). A reply makes one call or several (parallel calls: tool_calls[k], content
 * blocks k, output items k); the reply's text is the calls' arguments one after the other and
 * its pieces are what the stream sends, a frame that starts call k also carrying the events that
 * close call k-1 and open call k (so the frame count is what stream.c paces). Like proto.c it
 * only writes what it is told.
 */
#include <stdio.h>
#include <string.h>

#include "mock_internal.h"

/* The call whose pieces include piece i, and whether piece i is its first. */
static unsigned call_of(const struct mock_reply *r, size_t i, int *first)
{
    unsigned k = 0;
    while (k + 1 < r->ncalls && r->call_piece[k + 1] <= i)
        k++;
    *first = r->call_piece[k] == i;
    return k;
}

static void args_json(struct mock_buf *b, const struct mock_reply *r, unsigned k)
{
    mock__buf_json_str(b, r->text + r->call_off[k], r->call_off[k + 1] - r->call_off[k]);
}

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

/* Call k: whole (non-streaming), or its naming delta (index, id, type, name, no arguments). */
static void chat_call(struct mock_buf *b, const struct mock_reply *r, unsigned k, int whole)
{
    if (whole)
        mock__buf_str(b, "{");
    else
        mock__buf_fmt(b, "{\"index\":%u,", k);
    mock__buf_fmt(b, "\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", r->tool_id[k]);
    mock__buf_json_str(b, r->tool_name[k], strlen(r->tool_name[k]));
    mock__buf_str(b, ",\"arguments\":");
    if (whole)
        args_json(b, r, k);
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
    for (unsigned k = 0; k < r->ncalls; k++) {
        if (k)
            mock__buf_str(b, ",");
        chat_call(b, r, k, 1);
    }
    mock__buf_fmt(b, "],\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
                  "\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,\"total_tokens\":%u},"
                  "\"system_fingerprint\":\"fp_mock\"}", r->prompt_tokens, mock__reply_ctok(r),
                  r->prompt_tokens + mock__reply_ctok(r));
}

/* The chunk naming call k (the first also carries the role). */
static void chat_naming(struct mock_buf *b, const struct mock_reply *r, unsigned k)
{
    chat_chunk_start(b, r);
    mock__buf_str(b, k == 0 ? "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
                              "\"tool_calls\":["
                            : "{\"index\":0,\"delta\":{\"tool_calls\":[");
    chat_call(b, r, k, 0);
    mock__buf_str(b, k == 0 ? "],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}"
                            : "]},\"logprobs\":null,\"finish_reason\":null}");
    chat_chunk_end(b, r);
}

static void chat_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    const char *p;
    size_t n;
    int first;
    if (k == 0) {
        chat_naming(b, r, 0);
    } else if (k < 1 + (size_t)r->ntok) {
        unsigned c = call_of(r, k - 1, &first);
        if (first && c > 0)
            chat_naming(b, r, c);
        mock__proto_piece(r, k - 1, &p, &n);
        chat_chunk_start(b, r);
        mock__buf_fmt(b, "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%u,\"function\":"
                      "{\"arguments\":", c);
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
                      "\"total_tokens\":%u}}\n\n", r->prompt_tokens, mock__reply_ctok(r),
                      r->prompt_tokens + mock__reply_ctok(r));
    } else {
        mock__buf_str(b, "data: [DONE]\n\n");
    }
}

/* ---- Anthropic messages ---- */

static void tool_use_block(struct mock_buf *b, const struct mock_reply *r, unsigned k, int whole)
{
    mock__buf_fmt(b, "{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":", r->tool_id[k]);
    mock__buf_json_str(b, r->tool_name[k], strlen(r->tool_name[k]));
    mock__buf_str(b, ",\"input\":");
    if (whole) /* compact JSON already */
        mock__buf_add(b, r->text + r->call_off[k], r->call_off[k + 1] - r->call_off[k]);
    else
        mock__buf_str(b, "{}");
    mock__buf_str(b, "}");
}

static void messages_body(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", r->id);
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"content\":[");
    for (unsigned k = 0; k < r->ncalls; k++) {
        if (k)
            mock__buf_str(b, ",");
        tool_use_block(b, r, k, 1);
    }
    mock__buf_fmt(b, "],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":"
                  "{\"input_tokens\":%u,\"cache_creation_input_tokens\":0,"
                  "\"cache_read_input_tokens\":0,\"output_tokens\":%u}}", r->prompt_tokens,
                  mock__reply_ctok(r));
}

static void block_start(struct mock_buf *b, const struct mock_reply *r, unsigned k)
{
    mock__buf_fmt(b, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                  "\"index\":%u,\"content_block\":", k);
    tool_use_block(b, r, k, 0);
    mock__buf_str(b, "}\n\n");
}

static void block_stop(struct mock_buf *b, unsigned k)
{
    mock__buf_fmt(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                  "\"index\":%u}\n\n", k);
}

static void messages_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    const char *p;
    size_t n;
    int first;
    if (k == 0) {
        mock__buf_fmt(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                      "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":", r->id);
        mock__buf_json_str(b, r->model, strlen(r->model));
        mock__buf_fmt(b, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
                      "{\"input_tokens\":%u,\"cache_creation_input_tokens\":0,"
                      "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n",
                      r->prompt_tokens);
    } else if (k == 1) {
        block_start(b, r, 0);
    } else if (k == 2) {
        mock__buf_str(b, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    } else if (k < 3 + (size_t)r->ntok) {
        unsigned c = call_of(r, k - 3, &first);
        if (first && c > 0) {
            block_stop(b, c - 1);
            block_start(b, r, c);
        }
        mock__proto_piece(r, k - 3, &p, &n);
        mock__buf_fmt(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                      "\"index\":%u,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":", c);
        mock__buf_json_str(b, p, n);
        mock__buf_str(b, corrupt ? "\n\n" : "}}\n\n");
    } else if (k == 3 + (size_t)r->ntok) {
        block_stop(b, r->ncalls - 1);
    } else if (k == 4 + (size_t)r->ntok) {
        mock__buf_fmt(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                      "{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":"
                      "{\"output_tokens\":%u}}\n\n", mock__reply_ctok(r));
    } else {
        mock__buf_str(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
}

/* ---- Responses ---- */

static void fc_id(struct mock_buf *b, const struct mock_reply *r, unsigned k)
{
    const char *hex = strchr(r->id, '_');
    mock__buf_fmt(b, "\"fc_%s_%u\"", hex ? hex + 1 : r->id, k);
}

static void fc_item(struct mock_buf *b, const struct mock_reply *r, unsigned k, int done)
{
    mock__buf_str(b, "{\"id\":");
    fc_id(b, r, k);
    mock__buf_fmt(b, ",\"type\":\"function_call\",\"status\":\"%s\",\"arguments\":",
                  done ? "completed" : "in_progress");
    if (done)
        args_json(b, r, k);
    else
        mock__buf_str(b, "\"\"");
    mock__buf_fmt(b, ",\"call_id\":\"%s\",\"name\":", r->tool_id[k]);
    mock__buf_json_str(b, r->tool_name[k], strlen(r->tool_name[k]));
    mock__buf_str(b, "}");
}

static void fc_all(struct mock_buf *b, const struct mock_reply *r)
{
    for (unsigned k = 0; k < r->ncalls; k++) {
        if (k)
            mock__buf_str(b, ",");
        fc_item(b, r, k, 1);
    }
}

/* The sequence number of the first event of frame f: each call after the first adds three
 * events (arguments.done, output_item.done, output_item.added) to the frame that starts it. */
static size_t seq_of(const struct mock_reply *r, size_t f)
{
    size_t extra = 0;
    for (unsigned k = 1; k < r->ncalls; k++)
        if (3 + (size_t)r->call_piece[k] < f)
            extra += 3;
    return f + extra;
}

static void fc_added(struct mock_buf *b, const struct mock_reply *r, unsigned k, size_t seq)
{
    mock__proto_event_start(b, "response.output_item.added", seq);
    mock__buf_fmt(b, "\"output_index\":%u,\"item\":", k);
    fc_item(b, r, k, 0);
    mock__buf_str(b, "}\n\n");
}

/* arguments.done and output_item.done of call k. */
static void fc_finish(struct mock_buf *b, const struct mock_reply *r, unsigned k, size_t seq)
{
    mock__proto_event_start(b, "response.function_call_arguments.done", seq);
    mock__buf_str(b, "\"item_id\":");
    fc_id(b, r, k);
    mock__buf_fmt(b, ",\"output_index\":%u,\"name\":", k);
    mock__buf_json_str(b, r->tool_name[k], strlen(r->tool_name[k]));
    mock__buf_str(b, ",\"arguments\":");
    args_json(b, r, k);
    mock__buf_str(b, "}\n\n");
    mock__proto_event_start(b, "response.output_item.done", seq + 1);
    mock__buf_fmt(b, "\"output_index\":%u,\"item\":", k);
    fc_item(b, r, k, 1);
    mock__buf_str(b, "}\n\n");
}

static void responses_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    const char *p;
    size_t n, seq = seq_of(r, k);
    int first;
    if (k == 0 || k == 1) {
        mock__proto_event_start(b, k == 0 ? "response.created" : "response.in_progress", seq);
        mock__buf_str(b, "\"response\":");
        mock__proto_responses_obj(b, r, 0, fc_all);
        mock__buf_str(b, "}\n\n");
    } else if (k == 2) {
        fc_added(b, r, 0, seq);
    } else if (k < 3 + (size_t)r->ntok) {
        unsigned c = call_of(r, k - 3, &first);
        if (first && c > 0) {
            fc_finish(b, r, c - 1, seq);
            fc_added(b, r, c, seq + 2);
            seq += 3;
        }
        mock__proto_piece(r, k - 3, &p, &n);
        mock__proto_event_start(b, "response.function_call_arguments.delta", seq);
        mock__buf_str(b, "\"item_id\":");
        fc_id(b, r, c);
        mock__buf_fmt(b, ",\"output_index\":%u,\"delta\":", c);
        mock__buf_json_str(b, p, n);
        mock__buf_str(b, corrupt ? "\n\n" : "}\n\n");
    } else if (k == 3 + (size_t)r->ntok) {
        /* arguments.done of the last call; its output_item.done is the next frame */
        mock__proto_event_start(b, "response.function_call_arguments.done", seq);
        mock__buf_str(b, "\"item_id\":");
        fc_id(b, r, r->ncalls - 1);
        mock__buf_fmt(b, ",\"output_index\":%u,\"name\":", r->ncalls - 1);
        mock__buf_json_str(b, r->tool_name[r->ncalls - 1], strlen(r->tool_name[r->ncalls - 1]));
        mock__buf_str(b, ",\"arguments\":");
        args_json(b, r, r->ncalls - 1);
        mock__buf_str(b, "}\n\n");
    } else if (k == 4 + (size_t)r->ntok) {
        mock__proto_event_start(b, "response.output_item.done", seq);
        mock__buf_fmt(b, "\"output_index\":%u,\"item\":", r->ncalls - 1);
        fc_item(b, r, r->ncalls - 1, 1);
        mock__buf_str(b, "}\n\n");
    } else {
        mock__proto_event_start(b, "response.completed", seq);
        mock__buf_str(b, "\"response\":");
        mock__proto_responses_obj(b, r, 1, fc_all);
        mock__buf_str(b, "}\n\n");
    }
}

/* ---- dispatch ---- */

void mock__proto_tool_body(struct mock_buf *b, const struct mock_reply *r)
{
    if (r->wire == MOCK_WIRE_RESPONSES)
        mock__proto_responses_obj(b, r, 1, fc_all);
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
