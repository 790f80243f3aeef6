/*
 * proto.c - the OpenAI and Anthropic wire formats of the mock server: non-streaming reply
 * bodies, error objects, and the SSE frames of a stream (built one at a time, so a slow stream
 * holds its reply text and piece offsets, never its whole encoded body). It does not decide
 * anything (status, faults, timing): server.c does, and tells this file what to write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_internal.h"

static char *finish(struct mock_buf *b, size_t *len)
{
    if (b->oom) {
        mock__buf_free(b);
        return NULL;
    }
    if (len)
        *len = b->len;
    return b->p;
}

char *mock__proto_body(const struct mock_reply *r, size_t *len)
{
    struct mock_buf b = {0};
    if (r->ncalls) {
        mock__proto_tool_body(&b, r);
    } else if (r->wire == MOCK_WIRE_COMPLETIONS) {
        mock__proto_completions_body(&b, r);
    } else if (r->wire == MOCK_WIRE_RESPONSES) {
        mock__proto_responses_body(&b, r);
    } else if (r->api == MOCK_API_OPENAI) {
        mock__buf_fmt(&b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,"
                      "\"model\":", r->id, r->created);
        mock__buf_json_str(&b, r->model, strlen(r->model));
        mock__buf_str(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                          "\"content\":");
        mock__buf_json_str(&b, r->text, r->text_len);
        mock__buf_fmt(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],"
                      "\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,"
                      "\"total_tokens\":%u},\"system_fingerprint\":\"fp_mock\"}",
                      r->hit_max_tokens ? "length" : "stop", r->prompt_tokens, mock__reply_ctok(r),
                      r->prompt_tokens + mock__reply_ctok(r));
    } else {
        mock__buf_fmt(&b, "{\"id\":\"%s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":",
                      r->id);
        mock__buf_json_str(&b, r->model, strlen(r->model));
        mock__buf_str(&b, ",\"content\":[{\"type\":\"text\",\"text\":");
        mock__buf_json_str(&b, r->text, r->text_len);
        mock__buf_fmt(&b, "}],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":"
                      "{\"input_tokens\":%u,\"cache_creation_input_tokens\":0,"
                      "\"cache_read_input_tokens\":0,\"output_tokens\":%u}}",
                      r->hit_max_tokens ? "max_tokens" : "end_turn", r->prompt_tokens,
                      mock__reply_ctok(r));
    }
    return finish(&b, len);
}

char *mock__proto_error(int api, const char *type, const char *message, const char *param,
                        const char *code, size_t *len)
{
    struct mock_buf b = {0};
    if (api == MOCK_API_OPENAI) {
        mock__buf_str(&b, "{\"error\":{\"message\":");
        mock__buf_json_str(&b, message, strlen(message));
        mock__buf_str(&b, ",\"type\":");
        mock__buf_json_str(&b, type, strlen(type));
        mock__buf_str(&b, ",\"param\":");
        if (param)
            mock__buf_json_str(&b, param, strlen(param));
        else
            mock__buf_str(&b, "null");
        mock__buf_str(&b, ",\"code\":");
        if (code)
            mock__buf_json_str(&b, code, strlen(code));
        else
            mock__buf_str(&b, "null");
        mock__buf_str(&b, "}}");
    } else {
        mock__buf_str(&b, "{\"type\":\"error\",\"error\":{\"type\":");
        mock__buf_json_str(&b, type, strlen(type));
        mock__buf_str(&b, ",\"message\":");
        mock__buf_json_str(&b, message, strlen(message));
        if (code && !strncmp(code, "thread_", 7)) { /* message threads read details.error_code */
            mock__buf_str(&b, ",\"details\":{\"error_code\":");
            mock__buf_json_str(&b, code, strlen(code));
            mock__buf_str(&b, "}");
        }
        mock__buf_str(&b, "}}");
    }
    return finish(&b, len);
}

size_t mock__proto_head_frames(const struct mock_reply *r)
{
    if (r->ncalls)
        return mock__proto_tool_head_frames(r);
    switch (r->wire) {
    case MOCK_WIRE_COMPLETIONS:
        return 0;
    case MOCK_WIRE_RESPONSES:
        return 4; /* created, in_progress, output_item.added, content_part.added */
    case MOCK_WIRE_MESSAGES:
        return 3;
    default:
        return 1;
    }
}

size_t mock__proto_frame_count(const struct mock_reply *r)
{
    size_t tail;
    if (r->ncalls)
        return mock__proto_tool_frame_count(r);
    switch (r->wire) {
    case MOCK_WIRE_RESPONSES:
        tail = 4; /* output_text.done, content_part.done, output_item.done, completed */
        break;
    case MOCK_WIRE_MESSAGES:
        tail = 3;
        break;
    default: /* chat and completions: the finish chunk, [usage chunk,] [DONE] */
        tail = (size_t)(2 + (r->include_usage ? 1 : 0));
    }
    return mock__proto_head_frames(r) + r->ntok + tail;
}

static void openai_chunk_start(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_fmt(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                  "\"model\":", r->id, r->created);
    mock__buf_json_str(b, r->model, strlen(r->model));
    mock__buf_str(b, ",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
}

static void openai_chunk_end(struct mock_buf *b, const struct mock_reply *r)
{
    mock__buf_str(b, r->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n");
}

void mock__proto_piece(const struct mock_reply *r, size_t i, const char **p, size_t *n)
{
    size_t s = r->starts[i];
    size_t e = i + 1 < r->ntok ? r->starts[i + 1] : r->text_len;
    *p = r->text + s;
    *n = e - s;
}

void mock__proto_frame(struct mock_buf *b, const struct mock_reply *r, size_t k, int corrupt)
{
    if (r->ncalls) {
        mock__proto_tool_frame(b, r, k, corrupt);
        return;
    }
    if (r->wire == MOCK_WIRE_COMPLETIONS) {
        mock__proto_completions_frame(b, r, k, corrupt);
        return;
    }
    if (r->wire == MOCK_WIRE_RESPONSES) {
        mock__proto_responses_frame(b, r, k, corrupt);
        return;
    }
    size_t head = mock__proto_head_frames(r);
    const char *p;
    size_t n;
    if (r->api == MOCK_API_OPENAI) {
        if (k == 0) {
            openai_chunk_start(b, r);
            mock__buf_str(b, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
                             "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}");
            openai_chunk_end(b, r);
        } else if (k < head + r->ntok) {
            mock__proto_piece(r, k - head, &p, &n);
            openai_chunk_start(b, r);
            mock__buf_str(b, "{\"index\":0,\"delta\":{\"content\":");
            mock__buf_json_str(b, p, n);
            if (corrupt) {
                mock__buf_str(b, "\n\n"); /* the JSON stops here: unterminated object */
                return;
            }
            mock__buf_str(b, "},\"logprobs\":null,\"finish_reason\":null}");
            openai_chunk_end(b, r);
        } else if (k == head + r->ntok) {
            openai_chunk_start(b, r);
            mock__buf_fmt(b, "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}",
                          r->hit_max_tokens ? "length" : "stop");
            openai_chunk_end(b, r);
        } else if (r->include_usage && k == head + r->ntok + 1) {
            openai_chunk_start(b, r);
            mock__buf_fmt(b, "],\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u,"
                          "\"total_tokens\":%u}}\n\n",
                          r->prompt_tokens, mock__reply_ctok(r), r->prompt_tokens + mock__reply_ctok(r));
        } else {
            mock__buf_str(b, "data: [DONE]\n\n");
        }
        return;
    }
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
                         "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    } else if (k == 2) {
        mock__buf_str(b, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    } else if (k < head + r->ntok) {
        mock__proto_piece(r, k - head, &p, &n);
        mock__buf_str(b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                         "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":");
        mock__buf_json_str(b, p, n);
        mock__buf_str(b, corrupt ? "\n\n" : "}}\n\n");
    } else if (k == head + r->ntok) {
        mock__buf_str(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                         "\"index\":0}\n\n");
    } else if (k == head + r->ntok + 1) {
        mock__buf_fmt(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                      "{\"stop_reason\":\"%s\",\"stop_sequence\":null},\"usage\":"
                      "{\"output_tokens\":%u}}\n\n",
                      r->hit_max_tokens ? "max_tokens" : "end_turn", mock__reply_ctok(r));
    } else {
        mock__buf_str(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
}
