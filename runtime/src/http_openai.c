/*
 * http_openai.c - the OpenAI Chat Completions wire format (OpenAI, Kimi K2, Ollama, vLLM): one
 * request body, a plain answer's fields and one streamed chunk's fields.
 *
 * What it does not do: SSE framing (http_sse.c), error bodies and status codes (http_answer.c).
 */
#include "cx/http.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "http_internal.h"

/* The system prompt is the first message; streaming asks for a usage chunk (stream_options). */
char *cx__http_openai_body(const struct cx_http_request *req) {
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) return NULL;
    cJSON *msgs = NULL;
    int ok = cJSON_AddStringToObject(root, "model", req->model) != NULL;
    if (ok) ok = (msgs = cJSON_AddArrayToObject(root, "messages")) != NULL;
    if (ok && req->system && req->system[0]) ok = cx__http_add_message(msgs, "system", req->system) == 0;
    if (ok) ok = cx__http_add_message(msgs, "user", req->prompt) == 0;
    if (ok) ok = cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(root, "temperature", req->temperature) != NULL;
    if (ok && req->stream) {
        ok = cJSON_AddBoolToObject(root, "stream", 1) != NULL;
        cJSON *so = ok ? cJSON_AddObjectToObject(root, "stream_options") : NULL;
        ok = so != NULL && cJSON_AddBoolToObject(so, "include_usage", 1) != NULL;
    }
    char *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return out;
}

int cx__http_openai_plain(struct cx__http_parse_ctx *p, const cJSON *root) {
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    if (!cJSON_IsObject(msg)) return CX_EPARSE;
    const char *t = cx__http_jstr(msg, "content");
    int rc;
    if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    p->in_tok = cx__http_jint(u, "prompt_tokens");
    p->out_tok = cx__http_jint(u, "completion_tokens");
    return 0;
}

int cx__http_openai_chunk(struct cx__http_parse_ctx *p, const cJSON *root) {
    if (cJSON_GetObjectItemCaseSensitive(root, "error")) return cx__http_stream_error(p, root);
    int rc = cx__http_set_model(p, cx__http_jstr(root, "model"));
    if (rc < 0) return rc;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    if (c0) {
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
        const char *t = cx__http_jstr(delta, "content");
        if (t && (rc = cx__buf_append(&p->text, t, strlen(t))) < 0) return rc;
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (cJSON_IsObject(usage)) {
        if (cx__http_jint(usage, "prompt_tokens") >= 0) p->in_tok = cx__http_jint(usage, "prompt_tokens");
        if (cx__http_jint(usage, "completion_tokens") >= 0) p->out_tok = cx__http_jint(usage, "completion_tokens");
    }
    return 0;
}
