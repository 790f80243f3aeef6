/*
 * http_openai.c - the OpenAI Chat Completions wire format (OpenAI, Kimi K2, Ollama, vLLM): one
 * streamed chunk's fields.
 *
 * What it does not do: SSE framing (http_sse.c), error bodies and status codes (http_answer.c).
 */
#include "cx/http.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "http_internal.h"

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
