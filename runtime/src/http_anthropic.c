/*
 * http_anthropic.c - the Anthropic Messages wire format: the request body, a plain answer's
 * fields and one streamed event's fields.
 *
 * What it does not do: SSE framing (http_sse.c), error bodies and status codes (http_answer.c).
 */
#include "cx/http.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "http_internal.h"

/* max_tokens is required and the system prompt is a top-level field, not a message. */
char *cx__http_anthropic_body(const struct cx_http_request *req) {
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) return NULL;
    cJSON *msgs = NULL;
    int ok = cJSON_AddStringToObject(root, "model", req->model) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens) != NULL;
    if (ok && req->system && req->system[0])
        ok = cJSON_AddStringToObject(root, "system", req->system) != NULL;
    if (ok) ok = (msgs = cJSON_AddArrayToObject(root, "messages")) != NULL;
    if (ok) ok = cx__http_add_message(msgs, "user", req->prompt) == 0;
    if (ok) ok = cJSON_AddNumberToObject(root, "temperature", req->temperature) != NULL;
    if (ok && req->stream) ok = cJSON_AddBoolToObject(root, "stream", 1) != NULL;
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

/* Every "text" content block, joined. */
int cx__http_anthropic_plain(struct cx__http_parse_ctx *p, const cJSON *root) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!cJSON_IsArray(content)) return CX_EPARSE;
    const cJSON *b;
    int rc;
    cJSON_ArrayForEach(b, content) {
        const char *bt = cx__http_jstr(b, "type");
        const char *t = cx__http_jstr(b, "text");
        if (bt && strcmp(bt, "text") == 0 && t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0)
            return rc;
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    p->in_tok = cx__http_jint(u, "input_tokens");
    p->out_tok = cx__http_jint(u, "output_tokens");
    return 0;
}

int cx__http_anthropic_event(struct cx__http_parse_ctx *p, const cJSON *root) {
    const char *type = cx__http_jstr(root, "type");
    int rc = 0;
    if (type == NULL) return CX_EPARSE;
    if (strcmp(type, "message_start") == 0) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
        if ((rc = cx__http_set_model(p, cx__http_jstr(m, "model"))) < 0) return rc;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "usage");
        if (cx__http_jint(u, "input_tokens") >= 0) p->in_tok = cx__http_jint(u, "input_tokens");
        if (cx__http_jint(u, "output_tokens") >= 0) p->out_tok = cx__http_jint(u, "output_tokens");
    } else if (strcmp(type, "content_block_start") == 0) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "content_block");
        const char *t = cx__http_jstr(b, "text");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    } else if (strcmp(type, "content_block_delta") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "delta");
        const char *t = cx__http_jstr(d, "text");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    } else if (strcmp(type, "message_delta") == 0) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
        if (cx__http_jint(u, "output_tokens") >= 0) p->out_tok = cx__http_jint(u, "output_tokens");
        if (cx__http_jint(u, "input_tokens") >= 0) p->in_tok = cx__http_jint(u, "input_tokens");
    } else if (strcmp(type, "message_stop") == 0) {
        p->done = 1;
    } else if (strcmp(type, "error") == 0) {
        return cx__http_stream_error(p, root);
    }
    return 0;
}

/* cJSON answers NULL both for bad JSON and for a failed allocation. Tell them apart: if a block
 * larger than anything the parser asks for cannot be had either, memory ran out. */
