/*
 * http_anthropic.c - the Anthropic Messages wire format: one streamed event's fields.
 *
 * What it does not do: SSE framing (http_sse.c), error bodies and status codes (http_answer.c).
 */
#include "cx/http.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "http_internal.h"

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
