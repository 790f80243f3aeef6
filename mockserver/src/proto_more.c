/*
 * proto_more.c - two more OpenAI wire formats of the mock server: the legacy completions API
 * (POST /v1/completions: "text_completion" objects, streamed as chunks then "data: [DONE]")
 * and the Responses API (POST /v1/responses: a "response" object with one output message,
 * streamed as typed events response.created ... response.completed, each with its
 * sequence_number, in the order the official openai SDK's stream helper accumulates). Like
 * proto.c it only writes what it is told; proto.c dispatches here by reply->wire.
 */
#include <stdio.h>
#include <string.h>

#include "mock_internal.h"

/* ---- legacy completions ---- */

static void completion_start(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,\"model\":",
                  r->id, r->created);
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
}

static void usage_obj(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,"
                  "\"total_tokens\":%u}", r->prompt_tokens, mock__reply_ctok(r),
                  r->prompt_tokens + mock__reply_ctok(r));
}

void mock__proto_completions_body(struct mock_buf *b, const struct mock_reply *r)
{
    completion_start(b, r);
    mock__buf_str(b, "{\"text\":");
    mock__buf_json_str(b, r->text, r->text_len);
    mock__buf_fmt(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}],",
                  r->hit_max_tokens ? "length" : "stop");
    usage_obj(b, r);
    mock__buf_str(b, "}");
}

void mock__proto_completions_frame(struct mock_buf *b, const struct mock_reply *r, size_t k,
                                   int corrupt)
{
    const char *p;
    size_t n;
    if (k < r->ntok) {
        mock__proto_piece(r, k, &p, &n);
        mock__buf_str(b, "data: ");
        completion_start(b, r);
        mock__buf_str(b, "{\"text\":");
        mock__buf_json_str(b, p, n);
        if (corrupt) {
            mock__buf_str(b, "\n\n");
            return;
        }
        mock__buf_str(b, ",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    } else if (k == r->ntok) {
        mock__buf_str(b, "data: ");
        completion_start(b, r);
        mock__buf_fmt(b, "{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"%s\"}]}"
                      "\n\n", r->hit_max_tokens ? "length" : "stop");
    } else if (r->include_usage && k == r->ntok + 1) {
        mock__buf_str(b, "data: ");
        completion_start(b, r);
        mock__buf_str(b, "],");
        usage_obj(b, r);
        mock__buf_str(b, "}\n\n");
    } else {
        mock__buf_str(b, "data: [DONE]\n\n");
    }
}

/* ---- Responses API ---- */

/* The output message's id: "msg_" and the response id's hex. */
static void item_id(struct mock_buf *b, const struct mock_reply *r)
{
    const char *hex = strchr(r->id, '_');
    mock__buf_fmt(b, "\"msg_%s\"", hex ? hex + 1 : r->id);
}

static void output_text_part(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_str(b, "{\"type\":\"output_text\",\"text\":");
    mock__buf_json_str(b, r->text, r->text_len);
    mock__buf_str(b, ",\"annotations\":[],\"logprobs\":[]}");
}

/* The output message; done: completed with its text, else in progress and empty. */
static void message_item(struct mock_buf *b, const struct mock_reply *r, int done)
{
    mock__buf_str(b, "{\"id\":");
    item_id(b, r);
    mock__buf_fmt(b, ",\"type\":\"message\",\"status\":\"%s\",\"role\":\"assistant\","
                  "\"content\":[", done ? (r->hit_max_tokens ? "incomplete" : "completed")
                                        : "in_progress");
    if (done)
        output_text_part(b, r);
    mock__buf_str(b, "]}");
}

static void message_done(struct mock_buf *b, const struct mock_reply *r)
{
    message_item(b, r, 1);
}

/* The response object; done: final (output, usage), else as first created. */
void mock__proto_responses_obj(struct mock_buf *b, const struct mock_reply *r, int done,
                               void (*output_item)(struct mock_buf *, const struct mock_reply *))
{
    const char *status = !done ? "in_progress" : r->hit_max_tokens ? "incomplete" : "completed";
    mock__buf_fmt(b, "{\"id\":\"%s\",\"object\":\"response\",\"created_at\":%lld,"
                  "\"status\":\"%s\",\"background\":false,\"error\":null,"
                  "\"incomplete_details\":", r->id, r->created, status);
    mock__buf_str(b, done && r->hit_max_tokens ? "{\"reason\":\"max_output_tokens\"}" : "null");
    mock__buf_str(b, ",\"instructions\":");
    if (r->instructions)
        mock__buf_json_str(b, r->instructions, strlen(r->instructions));
    else
        mock__buf_str(b, "null");
    if (r->max_tokens > 0)
        mock__buf_fmt(b, ",\"max_output_tokens\":%lld", r->max_tokens);
    else
        mock__buf_str(b, ",\"max_output_tokens\":null");
    mock__buf_str(b, ",\"model\":");
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"output\":[");
    if (done)
        output_item(b, r);
    mock__buf_str(b, "],\"parallel_tool_calls\":true,\"previous_response_id\":null,"
                     "\"reasoning\":{\"effort\":null,\"summary\":null},\"service_tier\":"
                     "\"default\",\"store\":true,\"temperature\":1.0,\"text\":");
    /* text, tool_choice and tools echo the request's, as the real API does. */
    mock__buf_str(b, r->echo_text ? r->echo_text : "{\"format\":{\"type\":\"text\"}}");
    mock__buf_str(b, ",\"tool_choice\":");
    mock__buf_str(b, r->echo_tool_choice ? r->echo_tool_choice : "\"auto\"");
    mock__buf_str(b, ",\"tools\":");
    mock__buf_str(b, r->echo_tools ? r->echo_tools : "[]");
    mock__buf_str(b, ",\"top_p\":1.0,\"truncation\":\"disabled\",\"usage\":");
    if (done)
        mock__buf_fmt(b, "{\"input_tokens\":%u,\"input_tokens_details\":{\"cached_tokens\":0},"
                      "\"output_tokens\":%u,\"output_tokens_details\":{\"reasoning_tokens\":0},"
                      "\"total_tokens\":%u}", r->prompt_tokens, mock__reply_ctok(r),
                      r->prompt_tokens + mock__reply_ctok(r));
    else
        mock__buf_str(b, "null");
    mock__buf_str(b, ",\"user\":null,\"metadata\":{}}");
}

void mock__proto_responses_body(struct mock_buf *b, const struct mock_reply *r)
{
    mock__proto_responses_obj(b, r, 1, message_done);
}

/* "event: T\ndata: {"type":"T","sequence_number":k," -- the caller writes the rest. */
void mock__proto_event_start(struct mock_buf *b, const char *type, size_t k)
{
    mock__buf_fmt(b, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%zu,", type, type, k);
}

static void item_ref(struct mock_buf *b, const struct mock_reply *r, int content)
{
    mock__buf_str(b, "\"item_id\":");
    item_id(b, r);
    mock__buf_str(b, content ? ",\"output_index\":0,\"content_index\":0" : ",\"output_index\":0");
}

void mock__proto_responses_frame(struct mock_buf *b, const struct mock_reply *r, size_t k,
                                 int corrupt)
{
    size_t head = 4;
    const char *p;
    size_t n;
    if (k == 0 || k == 1) {
        mock__proto_event_start(b, k == 0 ? "response.created" : "response.in_progress", k);
        mock__buf_str(b, "\"response\":");
        mock__proto_responses_obj(b, r, 0, message_done);
        mock__buf_str(b, "}\n\n");
    } else if (k == 2) {
        mock__proto_event_start(b, "response.output_item.added", k);
        mock__buf_str(b, "\"output_index\":0,\"item\":");
        message_item(b, r, 0);
        mock__buf_str(b, "}\n\n");
    } else if (k == 3) {
        mock__proto_event_start(b, "response.content_part.added", k);
        item_ref(b, r, 1);
        mock__buf_str(b, ",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[],"
                         "\"logprobs\":[]}}\n\n");
    } else if (k < head + r->ntok) {
        mock__proto_piece(r, k - head, &p, &n);
        mock__proto_event_start(b, "response.output_text.delta", k);
        item_ref(b, r, 1);
        mock__buf_str(b, ",\"delta\":");
        mock__buf_json_str(b, p, n);
        mock__buf_str(b, corrupt ? "\n\n" : ",\"logprobs\":[]}\n\n");
    } else if (k == head + r->ntok) {
        mock__proto_event_start(b, "response.output_text.done", k);
        item_ref(b, r, 1);
        mock__buf_str(b, ",\"text\":");
        mock__buf_json_str(b, r->text, r->text_len);
        mock__buf_str(b, ",\"logprobs\":[]}\n\n");
    } else if (k == head + r->ntok + 1) {
        mock__proto_event_start(b, "response.content_part.done", k);
        item_ref(b, r, 1);
        mock__buf_str(b, ",\"part\":");
        output_text_part(b, r);
        mock__buf_str(b, "}\n\n");
    } else if (k == head + r->ntok + 2) {
        mock__proto_event_start(b, "response.output_item.done", k);
        mock__buf_str(b, "\"output_index\":0,\"item\":");
        message_item(b, r, 1);
        mock__buf_str(b, "}\n\n");
    } else {
        mock__proto_event_start(b, r->hit_max_tokens ? "response.incomplete" : "response.completed", k);
        mock__buf_str(b, "\"response\":");
        mock__proto_responses_obj(b, r, 1, message_done);
        mock__buf_str(b, "}\n\n");
    }
}
