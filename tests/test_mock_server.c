/* test_mock_server.c - the mock LLM server through a real libcurl client: every route, both
 * APIs' streaming framing, usage consistent with the text, determinism across requests and
 * restarts, auth, bad input (400/404/405/413) and the admin/stats/metrics endpoints. Faults,
 * timing and concurrency live in test_mock_faults.c and test_mock_timing.c. */
#include "t_mock_http.h"

#include "../mockserver/src/content.h"

static const char *const OPENAI_PROMPT = "Install package: nginx";

/* Non-streaming OpenAI reply: shape and usage; returns the content (malloc'd). */
static char *check_chat_reply(const struct t_resp *r, const char *model) {
    assert_int_equal(r->cc, CURLE_OK);
    assert_int_equal(r->status, 200);
    char ct[128];
    assert_true(t_header(r, "content-type", ct, sizeof ct));
    assert_non_null(strstr(ct, "application/json"));
    cJSON *j = t_json(r);
    assert_string_equal(t_jstr(j, "object"), "chat.completion");
    assert_true(strncmp(t_jstr(j, "id"), "chatcmpl-", 9) == 0);
    assert_true(t_jnum(j, "created") > 1.6e9);
    assert_string_equal(t_jstr(j, "model"), model);
    assert_int_equal((int)t_jnum(j, "choices.0.index"), 0);
    assert_string_equal(t_jstr(j, "choices.0.message.role"), "assistant");
    assert_string_equal(t_jstr(j, "choices.0.finish_reason"), "stop");
    const char *content = t_jstr(j, "choices.0.message.content");
    unsigned ct_tokens = mock_count_tokens(content, strlen(content));
    assert_int_equal((unsigned)t_jnum(j, "usage.completion_tokens"), ct_tokens);
    assert_true(t_jnum(j, "usage.prompt_tokens") > 0);
    assert_int_equal((unsigned)t_jnum(j, "usage.total_tokens"),
                     (unsigned)t_jnum(j, "usage.prompt_tokens") + ct_tokens);
    char *out = strdup(content);
    cJSON_Delete(j);
    return out;
}

/* The content of a non-streaming chat reply (model "m") to prompt, checked (malloc'd). */
static char *chat_reply(struct mock_server *s, const char *prompt) {
    struct t_resp r;
    t_mock_call(s, 0, prompt, 0, 0, &r);
    char *content = check_chat_reply(&r, "m");
    t_resp_free(&r);
    return content;
}

/* The commands array of the ```json block in text, printed compactly (cJSON_free). */
static char *fenced_commands(const char *text) {
    const char *o = strstr(text, "```json\n");
    assert_non_null(o);
    o += 8;
    const char *c = strstr(o, "\n```");
    assert_non_null(c);
    cJSON *j = cJSON_ParseWithLength(o, (size_t)(c - o));
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "commands"));
    cJSON_Delete(j);
    assert_non_null(s);
    return s;
}

static void test_chat_completions(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 1);
    const char *url = mock_server_url(s);
    struct t_resp r;
    char *body = t_chat_body("gpt-4o-mini", OPENAI_PROMPT, 0, 0);
    t_http(url, "/v1/chat/completions", "POST", body, NULL, 0, &r);
    char *content = check_chat_reply(&r, "gpt-4o-mini");
    assert_non_null(strstr(content, "sudo apt-get install -y nginx"));
    t_resp_free(&r);
    cJSON_free(body);
    free(content);

    /* Plain chat: no JSON block. */
    content = chat_reply(s, "hello there");
    assert_null(strstr(content, "```"));
    free(content);

    /* As the real API: a request without a model is refused, naming the parameter. */
    t_http(url, "/v1/chat/completions", "POST",
           "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}", NULL, 0, &r);
    assert_int_equal(r.status, 400);
    cJSON *err = t_json(&r);
    assert_string_equal(t_jstr(err, "error.type"), "invalid_request_error");
    assert_non_null(strstr(t_jstr(err, "error.message"), "model"));
    cJSON_Delete(err);
    t_resp_free(&r);

    /* Content given as an array of parts (newer OpenAI clients) is understood too. */
    t_http(url, "/v1/chat/completions", "POST",
           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
           "\"text\":\"Install package: redis\"}]}]}",
           NULL, 0, &r);
    content = check_chat_reply(&r, "m");
    assert_non_null(strstr(content, "redis-server"));
    t_resp_free(&r);
    free(content);
    mock_server_stop(s);
}

/* Parses an OpenAI stream; returns the concatenated content; *pieces = frames with content. */
/* Appends piece to the malloc'd string *text. */
static void append(char **text, const char *piece) {
    size_t a = strlen(*text), b = strlen(piece);
    char *t = realloc(*text, a + b + 1);
    assert_non_null(t);
    memcpy(t + a, piece, b + 1);
    *text = t;
}

static char *check_chat_stream(const struct t_resp *r, int include_usage, unsigned *pieces,
                               unsigned *usage_completion) {
    assert_int_equal(r->cc, CURLE_OK);
    assert_int_equal(r->status, 200);
    char ct[128];
    assert_true(t_header(r, "content-type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/event-stream"));
    struct t_sse sse;
    t_sse_parse(r->body.p, r->body.len, &sse);
    assert_true(sse.clean_end);
    assert_true(sse.n >= 3);
    assert_string_equal(sse.ev[sse.n - 1].data, "[DONE]");
    char *text = calloc(1, 1);
    char id[128] = "";
    int saw_role = 0, saw_finish = 0, saw_usage = 0;
    *pieces = 0;
    *usage_completion = 0;
    for (size_t i = 0; i + 1 < sse.n; i++) {
        cJSON *c = cJSON_Parse(sse.ev[i].data);
        if (c == NULL) fail_msg("frame %zu is not JSON: %s", i, sse.ev[i].data);
        assert_string_equal(t_jstr(c, "object"), "chat.completion.chunk");
        if (i == 0) snprintf(id, sizeof id, "%s", t_jstr(c, "id"));
        assert_string_equal(t_jstr(c, "id"), id); /* one id for the whole stream */
        cJSON *choices = t_jget(c, "choices");
        assert_true(cJSON_IsArray(choices));
        if (cJSON_GetArraySize(choices) == 0) {
            /* The usage chunk: last before [DONE], only with include_usage. */
            assert_true(include_usage);
            assert_int_equal(i, sse.n - 2);
            *usage_completion = (unsigned)t_jnum(c, "usage.completion_tokens");
            assert_int_equal((unsigned)t_jnum(c, "usage.total_tokens"),
                             (unsigned)t_jnum(c, "usage.prompt_tokens") + *usage_completion);
            saw_usage = 1;
        } else {
            assert_false(saw_finish); /* nothing but usage after the finish chunk */
            cJSON *role = t_jget(c, "choices.0.delta.role");
            if (cJSON_IsString(role)) {
                assert_string_equal(role->valuestring, "assistant");
                saw_role = 1;
            }
            cJSON *piece = t_jget(c, "choices.0.delta.content");
            if (cJSON_IsString(piece) && piece->valuestring[0] != '\0') {
                assert_true(saw_role);
                append(&text, piece->valuestring);
                (*pieces)++;
            }
            cJSON *fin = t_jget(c, "choices.0.finish_reason");
            if (cJSON_IsString(fin)) {
                assert_string_equal(fin->valuestring, "stop");
                saw_finish = 1;
            }
        }
        cJSON_Delete(c);
    }
    assert_true(saw_role && saw_finish);
    assert_int_equal(saw_usage, include_usage);
    t_sse_free(&sse);
    return text;
}

static void test_chat_stream(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 1);
    const char *url = mock_server_url(s);
    for (int usage = 0; usage <= 1; usage++) {
        struct t_resp r;
        unsigned pieces, uc;
        char *body = t_chat_body("gpt-4o", OPENAI_PROMPT, 1, usage);
        t_http(url, "/v1/chat/completions", "POST", body, NULL, 0, &r);
        char *text = check_chat_stream(&r, usage, &pieces, &uc);
        assert_non_null(strstr(text, "sudo apt-get install -y nginx"));
        assert_int_equal(pieces, mock_count_tokens(text, strlen(text)));
        if (usage) assert_int_equal(uc, pieces);
        /* The streamed text is the reply a non-streaming request gets. */
        cJSON_free(body);
        body = t_chat_body("gpt-4o", OPENAI_PROMPT, 0, 0);
        struct t_resp r2;
        t_http(url, "/v1/chat/completions", "POST", body, NULL, 0, &r2);
        char *plain = check_chat_reply(&r2, "gpt-4o");
        char *c1 = fenced_commands(text), *c2 = fenced_commands(plain);
        assert_string_equal(c1, c2);
        cJSON_free(c1);
        cJSON_free(c2);
        free(plain);
        free(text);
        cJSON_free(body);
        t_resp_free(&r);
        t_resp_free(&r2);
    }
    mock_server_stop(s);
}

static char *check_messages_reply(const struct t_resp *r, const char *model) {
    assert_int_equal(r->cc, CURLE_OK);
    assert_int_equal(r->status, 200);
    cJSON *j = t_json(r);
    assert_string_equal(t_jstr(j, "type"), "message");
    assert_true(strncmp(t_jstr(j, "id"), "msg_", 4) == 0);
    assert_string_equal(t_jstr(j, "role"), "assistant");
    assert_string_equal(t_jstr(j, "model"), model);
    assert_string_equal(t_jstr(j, "stop_reason"), "end_turn");
    assert_string_equal(t_jstr(j, "content.0.type"), "text");
    const char *text = t_jstr(j, "content.0.text");
    assert_int_equal((unsigned)t_jnum(j, "usage.output_tokens"), mock_count_tokens(text, strlen(text)));
    assert_true(t_jnum(j, "usage.input_tokens") > 0);
    char *out = strdup(text);
    cJSON_Delete(j);
    return out;
}

static void test_messages(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 1);
    const char *url = mock_server_url(s);
    struct t_resp r;
    char *body = t_messages_body("claude-3-5-haiku-latest", "Diagnose error: No space left on device", 0);
    t_http(url, "/v1/messages", "POST", body, t_msg_hdrs(), 0, &r);
    char *text = check_messages_reply(&r, "claude-3-5-haiku-latest");
    assert_non_null(strstr(text, "\"cause\""));
    assert_non_null(strstr(text, "df -h"));
    free(text);
    t_resp_free(&r);
    /* As the real API: the anthropic-version header is required. */
    t_http(url, "/v1/messages", "POST", body, NULL, 0, &r);
    assert_int_equal(r.status, 400);
    cJSON *err = t_json(&r);
    assert_string_equal(t_jstr(err, "type"), "error");
    assert_string_equal(t_jstr(err, "error.type"), "invalid_request_error");
    assert_non_null(strstr(t_jstr(err, "error.message"), "anthropic-version"));
    cJSON_Delete(err);
    t_resp_free(&r);
    cJSON_free(body);
    mock_server_stop(s);
}

static void test_messages_stream(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 2);
    const char *url = mock_server_url(s);
    struct t_resp r;
    char *body = t_messages_body("claude-x", "Hardware check: gpu RTX 4090", 1);
    t_http(url, "/v1/messages", "POST", body, t_msg_hdrs(), 0, &r);
    cJSON_free(body);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    char ct[128];
    assert_true(t_header(&r, "content-type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/event-stream"));
    struct t_sse sse;
    t_sse_parse(r.body.p, r.body.len, &sse);
    assert_true(sse.clean_end);
    /* Expected order with pings allowed anywhere after message_start. */
    static const char *const order[] = {"message_start", "content_block_start",
                                        "content_block_delta", "content_block_stop",
                                        "message_delta", "message_stop"};
    size_t stage = 0, deltas = 0, pings = 0;
    char *text = calloc(1, 1);
    unsigned input_tokens = 0, output_tokens = 0;
    for (size_t i = 0; i < sse.n; i++) {
        const char *ev = sse.ev[i].event;
        cJSON *d = cJSON_Parse(sse.ev[i].data);
        if (d == NULL) fail_msg("event %s: data is not JSON: %s", ev, sse.ev[i].data);
        assert_string_equal(t_jstr(d, "type"), ev); /* event name == data.type */
        if (strcmp(ev, "ping") == 0) {
            assert_true(stage >= 1);
            pings++;
            cJSON_Delete(d);
            continue;
        }
        while (stage < 6 && strcmp(order[stage], ev) != 0) {
            /* Moving forward is allowed only past a stage that happened (deltas may repeat). */
            stage++;
        }
        if (stage == 6) fail_msg("event %s out of order at frame %zu", ev, i);
        if (stage == 0) {
            assert_int_equal(i, 0);
            assert_true(strncmp(t_jstr(d, "message.id"), "msg_", 4) == 0);
            assert_string_equal(t_jstr(d, "message.role"), "assistant");
            assert_string_equal(t_jstr(d, "message.model"), "claude-x");
            assert_true(cJSON_IsArray(t_jget(d, "message.content")));
            input_tokens = (unsigned)t_jnum(d, "message.usage.input_tokens");
        } else if (stage == 1) {
            assert_int_equal((int)t_jnum(d, "index"), 0);
            assert_string_equal(t_jstr(d, "content_block.type"), "text");
        } else if (stage == 2) {
            assert_string_equal(t_jstr(d, "delta.type"), "text_delta");
            append(&text, t_jstr(d, "delta.text"));
            deltas++;
        } else if (stage == 4) {
            assert_string_equal(t_jstr(d, "delta.stop_reason"), "end_turn");
            output_tokens = (unsigned)t_jnum(d, "usage.output_tokens");
        } else if (stage == 5) {
            assert_int_equal(i, sse.n - 1);
        }
        if (stage != 2) stage++; /* each non-delta event once */
        cJSON_Delete(d);
    }
    assert_int_equal(stage, 6);
    assert_true(pings >= 1);
    assert_true(input_tokens > 0);
    assert_int_equal(output_tokens, deltas);
    assert_int_equal(deltas, mock_count_tokens(text, strlen(text)));
    assert_non_null(strstr(text, "nvidia-smi"));
    free(text);
    t_sse_free(&sse);
    t_resp_free(&r);
    mock_server_stop(s);
}

static void test_max_tokens(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 1);
    const char *url = mock_server_url(s);
    struct t_resp r;
    char *full = chat_reply(s, "Install package: postgresql");
    /* The cut reply is the first 7 pieces of the full one, finish_reason "length". */
    size_t starts[8];
    assert_int_equal(mock_content_split(full, strlen(full), starts, 8), 8);
    for (int api = 0; api < 2; api++) {
        for (int stream = 0; stream < 2; stream++) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "model", "m");
            cJSON_AddNumberToObject(b, api == 0 ? "max_completion_tokens" : "max_tokens", 7);
            if (stream) cJSON_AddTrueToObject(b, "stream");
            cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", "Install package: postgresql");
            cJSON_AddItemToArray(msgs, m);
            if (api == 0) {
                cJSON *sys = cJSON_CreateObject();
                cJSON_AddStringToObject(sys, "role", "system");
                cJSON_AddStringToObject(sys, "content", "You are a Linux package expert.");
                cJSON_InsertItemInArray(msgs, 0, sys);
            } else {
                cJSON_AddStringToObject(b, "system", "You are a Linux package expert.");
            }
            char *txt = cJSON_PrintUnformatted(b);
            cJSON_Delete(b);
            assert_int_equal(t_http(url, api == 0 ? "/v1/chat/completions" : "/v1/messages",
                                    "POST", txt, api == 0 ? NULL : t_msg_hdrs(), 0, &r), 200);
            cJSON_free(txt);
            if (!stream) {
                cJSON *j = t_json(&r);
                const char *got = api == 0 ? t_jstr(j, "choices.0.message.content")
                                           : t_jstr(j, "content.0.text");
                assert_int_equal(strlen(got), starts[7]);
                assert_memory_equal(got, full, starts[7]);
                assert_string_equal(api == 0 ? t_jstr(j, "choices.0.finish_reason")
                                             : t_jstr(j, "stop_reason"),
                                    api == 0 ? "length" : "max_tokens");
                assert_int_equal((int)t_jnum(j, api == 0 ? "usage.completion_tokens"
                                                         : "usage.output_tokens"), 7);
                cJSON_Delete(j);
            } else {
                assert_non_null(strstr(r.body.p, api == 0 ? "\"finish_reason\":\"length\""
                                                          : "\"stop_reason\":\"max_tokens\""));
            }
            t_resp_free(&r);
        }
    }
    free(full);
    mock_server_stop(s);
}

static void test_models_health_metrics_stats(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 1);
    const char *url = mock_server_url(s);
    struct t_resp r;
    assert_int_equal(t_http(url, "/v1/models", "GET", NULL, NULL, 0, &r), 200);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "object"), "list");
    assert_true(cJSON_GetArraySize(t_jget(j, "data")) >= 1);
    assert_true(strlen(t_jstr(j, "data.0.id")) > 0);
    cJSON_Delete(j);
    t_resp_free(&r);

    assert_int_equal(t_http(url, "/health", "GET", NULL, NULL, 0, &r), 200);
    j = t_json(&r);
    assert_string_equal(t_jstr(j, "status"), "ok");
    cJSON_Delete(j);
    t_resp_free(&r);

    /* One API request so the counters have something to show. */
    char *body = t_chat_body("m", "hi", 0, 0);
    assert_int_equal(t_http(url, "/v1/chat/completions", "POST", body, NULL, 0, &r), 200);
    cJSON_free(body);
    t_resp_free(&r);

    t_mock_settle(s);
    assert_int_equal(t_http(url, "/metrics", "GET", NULL, NULL, 0, &r), 200);
    char ct[128];
    assert_true(t_header(&r, "content-type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/plain"));
    assert_non_null(strstr(r.body.p, "# TYPE "));
    assert_non_null(strstr(r.body.p, "_bucket{"));
    assert_non_null(strstr(r.body.p, "le=\"+Inf\""));
    t_resp_free(&r);

    t_mock_settle(s);
    assert_int_equal(t_http(url, "/stats", "GET", NULL, NULL, 0, &r), 200);
    j = t_json(&r);
    assert_true(t_jnum(j, "requests") >= 4);
    assert_int_equal((int)t_jnum(j, "routes.chat.requests"), 1);
    assert_int_equal((int)t_jnum(j, "routes.chat.status.200"), 1);
    assert_int_equal((int)t_jnum(j, "routes.models.requests"), 1);
    assert_int_equal((int)t_jnum(j, "histograms.delivered.count"), 1);
    assert_true(t_jnum(j, "in_flight_max") >= 1);
    for (const char *h = "configured\0delivered\0error\0queued\0ttft\0itl\0e2e\0timer_late\0"
                         "resume\0";
         *h; h += strlen(h) + 1) {
        char path[64];
        snprintf(path, sizeof path, "histograms.%s.p99", h);
        assert_non_null(t_jget(j, path));
    }
    cJSON_Delete(j);
    t_resp_free(&r);

    /* The library call returns the same shape. */
    j = t_mock_stats(s);
    assert_int_equal((int)t_jnum(j, "routes.chat.requests"), 1);
    cJSON_Delete(j);
    struct mock_counts mc;
    mock_server_counts(s, &mc);
    assert_int_equal(mc.api_requests, 1);
    assert_true(mc.status_2xx >= 4);
    mock_server_stop(s);
}

static void check_openai_error(const struct t_resp *r, long status, const char *type) {
    assert_int_equal(r->cc, CURLE_OK);
    assert_int_equal(r->status, status);
    cJSON *j = t_json(r);
    assert_true(cJSON_IsObject(t_jget(j, "error")));
    assert_true(strlen(t_jstr(j, "error.message")) > 0);
    if (type != NULL) assert_string_equal(t_jstr(j, "error.type"), type);
    cJSON_Delete(j);
}

static void check_anthropic_error(const struct t_resp *r, long status, const char *type) {
    assert_int_equal(r->cc, CURLE_OK);
    assert_int_equal(r->status, status);
    cJSON *j = t_json(r);
    assert_string_equal(t_jstr(j, "type"), "error");
    assert_true(strlen(t_jstr(j, "error.message")) > 0);
    if (type != NULL) assert_string_equal(t_jstr(j, "error.type"), type);
    cJSON_Delete(j);
}

static void test_auth(void **state) {
    (void)state;
    struct mock_options o;
    struct mock_server *s = NULL;
    char err[256];
    mock_options_init(&o);
    o.quiet = 1;
    o.required_key = "sk-test-123";
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), 0);
    const char *url = mock_server_url(s);
    struct t_resp r;
    char *chat = t_chat_body("m", "hi", 0, 0), *msg = t_messages_body("m", "hi", 0);

    t_http(url, "/v1/chat/completions", "POST", chat, NULL, 0, &r);
    check_openai_error(&r, 401, "invalid_request_error");
    t_resp_free(&r);
    const char *wrong[] = {"Authorization: Bearer sk-wrong", NULL};
    t_http(url, "/v1/chat/completions", "POST", chat, wrong, 0, &r);
    check_openai_error(&r, 401, "invalid_request_error");
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "error.code"), "invalid_api_key");
    cJSON_Delete(j);
    t_resp_free(&r);
    const char *good[] = {"Authorization: Bearer sk-test-123", NULL};
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", chat, good), 200);

    t_http(url, "/v1/messages", "POST", msg, t_msg_hdrs(), 0, &r);
    check_anthropic_error(&r, 401, "authentication_error");
    t_resp_free(&r);
    const char *xkey[] = {"x-api-key: sk-test-123", "anthropic-version: 2023-06-01", NULL};
    assert_int_equal(t_http_status(url, "/v1/messages", "POST", msg, xkey), 200);
    const char *bearer[] = {"Authorization: Bearer sk-test-123", "anthropic-version: 2023-06-01",
                            NULL};
    assert_int_equal(t_http_status(url, "/v1/messages", "POST", msg, bearer), 200);

    /* Operational routes never need the key. */
    assert_int_equal(t_http_status(url, "/health", "GET", NULL, NULL), 200);
    assert_int_equal(t_http_status(url, "/stats", "GET", NULL, NULL), 200);
    cJSON_free(chat);
    cJSON_free(msg);
    mock_server_stop(s);
}

static void test_bad_input(void **state) {
    (void)state;
    struct mock_options o;
    struct mock_server *s = NULL;
    char err[256];
    mock_options_init(&o);
    o.quiet = 1;
    o.max_body = 4096;
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), 0);
    const char *url = mock_server_url(s);
    struct t_resp r;

    t_http(url, "/v1/chat/completions", "POST", "{\"messages\": [", NULL, 0, &r);
    check_openai_error(&r, 400, "invalid_request_error");
    t_resp_free(&r);
    t_http(url, "/v1/messages", "POST", "not json at all", t_msg_hdrs(), 0, &r);
    check_anthropic_error(&r, 400, "invalid_request_error");
    t_resp_free(&r);
    /* Valid JSON with the wrong shape: messages missing or not an array. */
    t_http(url, "/v1/chat/completions", "POST", "{\"model\":\"m\"}", NULL, 0, &r);
    check_openai_error(&r, 400, "invalid_request_error");
    t_resp_free(&r);
    t_http(url, "/v1/messages", "POST", "{\"model\":\"m\",\"max_tokens\":5,\"messages\":7}",
           t_msg_hdrs(), 0, &r);
    check_anthropic_error(&r, 400, "invalid_request_error");
    t_resp_free(&r);

    t_http(url, "/v1/nothing-here", "GET", NULL, NULL, 0, &r);
    check_openai_error(&r, 404, NULL);
    t_resp_free(&r);
    t_http(url, "/v1/chat/completions", "GET", NULL, NULL, 0, &r);
    check_openai_error(&r, 405, NULL);
    t_resp_free(&r);
    t_http(url, "/v1/messages", "GET", NULL, NULL, 0, &r);
    check_anthropic_error(&r, 405, NULL);
    t_resp_free(&r);
    assert_int_equal(t_http_status(url, "/health", "DELETE", NULL, NULL), 405);

    /* Over max_body: 413, and the server keeps serving. */
    size_t big = 10000;
    char *body = malloc(big + 64);
    assert_non_null(body);
    int n = snprintf(body, 64, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    memset(body + n, 'x', big);
    strcpy(body + n + big, "\"}]}");
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", body, NULL), 413);
    free(body);
    char *ok = t_chat_body("m", "hi", 0, 0);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", ok, NULL), 200);
    cJSON_free(ok);

    struct mock_counts mc;
    t_mock_counts(s, &mc);
    assert_true(mc.status_4xx >= 8);
    mock_server_stop(s);
}

static void test_determinism(void **state) {
    (void)state;
    const char *prompts[] = {"Install package: docker", "Diagnose error: segfault in package x",
                             "Hardware check: memory 8GB", "tell me a joke"};
    char *first[4];
    struct mock_server *s = t_mock_start(NULL, 77);
    for (int i = 0; i < 4; i++) {
        first[i] = chat_reply(s, prompts[i]);
        /* Again on the same server: the same text. */
        char *again = chat_reply(s, prompts[i]);
        assert_string_equal(again, first[i]);
        free(again);
    }
    mock_server_stop(s);

    /* A restarted server with the same seed repeats itself; another seed keeps the commands. */
    for (uint64_t seed = 77; seed <= 78; seed++) {
        s = t_mock_start(NULL, seed);
        for (int i = 0; i < 4; i++) {
            char *text = chat_reply(s, prompts[i]);
            if (seed == 77) assert_string_equal(text, first[i]);
            if (i < 3) {
                char *a = fenced_commands(text), *b = fenced_commands(first[i]);
                assert_string_equal(a, b);
                cJSON_free(a);
                cJSON_free(b);
            }
            free(text);
        }
        mock_server_stop(s);
    }
    for (int i = 0; i < 4; i++) free(first[i]);
}

/* GET /admin/config as JSON (asserts 200). Free with cJSON_Delete. */
static cJSON *admin_config(const char *url) {
    struct t_resp r;
    assert_int_equal(t_http(url, "/admin/config", "GET", NULL, NULL, 0, &r), 200);
    cJSON *j = t_json(&r);
    t_resp_free(&r);
    return j;
}

/* Asserts GET /admin/config is the same as before (same != 0) or differs from it (same == 0). */
static void expect_config(const char *url, const cJSON *before, int same) {
    cJSON *now = admin_config(url);
    if (same) assert_true(cJSON_Compare(before, now, 1));
    else assert_false(cJSON_Compare(before, now, 1));
    cJSON_Delete(now);
}

/* Asserts POST /admin/config with body is refused (400) by a reply that contains word and, when
 * not NULL, also. */
static void expect_config_refused(const char *url, const char *body, const char *word,
                                  const char *also) {
    struct t_resp r;
    t_http(url, "/admin/config", "POST", body, NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body.p, word));
    if (also != NULL) assert_non_null(strstr(r.body.p, also));
    t_resp_free(&r);
}

static void test_admin(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 3);
    const char *url = mock_server_url(s);
    struct t_resp r;
    cJSON *before = admin_config(url);
    assert_non_null(t_jget(before, "time_scale"));
    assert_non_null(t_jget(before, "seed"));

    /* All-or-nothing: a bad value names its key and changes nothing. */
    expect_config_refused(url, "{\"seed\": 99, \"latency\": \"soon\"}", "latency", NULL);
    expect_config_refused(url, "{\"no_such_key\": 1}", "no_such_key", NULL);
    expect_config(url, before, 1);

    /* A good change shows in GET and in behaviour (pad_to makes replies big). */
    assert_int_equal(t_http_status(url, "/admin/config", "POST",
                                   "{\"seed\": 99, \"pad_to\": 5000}", NULL), 200);
    expect_config(url, before, 0);
    char *text = chat_reply(s, "Install package: nginx");
    assert_true(strlen(text) >= 5000);
    free(text);
    char *body = t_chat_body("m", "Install package: nginx", 0, 0);
    /* The library call accepts config-file text too. */
    char err[256];
    assert_int_equal(mock_server_configure(s, "pad_to = 0\n# comment\n", err, sizeof err), 0);
    assert_int_equal(mock_server_configure(s, "pad_to = lots", err, sizeof err), -1);
    assert_non_null(strstr(err, "pad_to"));

    /* Scripted faults through the admin API. */
    assert_int_equal(t_http(url, "/admin/faults", "POST", "{\"script\": \"next 2 500; next 1 ok\"}",
                            NULL, 0, &r), 200);
    t_resp_free(&r);
    assert_int_equal(mock_server_scripted_pending(s), 3);
    assert_int_equal(t_http(url, "/admin/faults", "GET", NULL, NULL, 0, &r), 200);
    assert_non_null(strstr(r.body.p, "500"));
    t_resp_free(&r);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", body, NULL), 500);
    assert_int_equal(t_http_status(url, "/admin/faults", "POST",
                                   "{\"next\": 1, \"fault\": \"502\"}", NULL), 200);
    assert_int_equal(mock_server_scripted_pending(s), 3);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", body, NULL), 500);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", body, NULL), 200);
    assert_int_equal(t_http_status(url, "/v1/chat/completions", "POST", body, NULL), 502);
    assert_int_equal(mock_server_scripted_pending(s), 0);
    assert_int_equal(t_http_status(url, "/admin/faults", "POST",
                                   "{\"script\": \"next 0 500\"}", NULL), 400);
    assert_int_equal(t_http_status(url, "/admin/faults", "POST",
                                   "{\"script\": \"next 2 explode\"}", NULL), 400);
    assert_int_equal(t_http_status(url, "/admin/faults", "POST",
                                   "{\"script\": \"next 5 503\"}", NULL), 200);
    assert_int_equal(t_http_status(url, "/admin/faults", "POST", "{\"clear\": true}", NULL), 200);
    assert_int_equal(mock_server_scripted_pending(s), 0);

    /* Reset zeroes the statistics. */
    struct mock_counts mc;
    t_mock_counts(s, &mc);
    assert_true(mc.api_requests >= 4);
    assert_true(mc.faults >= 3);
    assert_int_equal(t_http_status(url, "/admin/reset", "POST", "{}", NULL), 200);
    mock_server_counts(s, &mc);
    assert_int_equal(mc.api_requests, 0);
    assert_int_equal(mc.faults, 0);
    cJSON_free(body);
    cJSON_Delete(before);
    mock_server_stop(s);
}

static void test_start_errors(void **state) {
    (void)state;
    struct mock_options o;
    struct mock_server *s = (struct mock_server *)&o; /* must be set to NULL on failure */
    char err[256] = "";
    mock_options_init(&o);
    o.quiet = 1;
    o.config_text = "latency = 10ms\nbogus_key = 1\n";
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "bogus_key"));
    /* The port in use. */
    struct mock_server *a = t_mock_start(NULL, 0);
    mock_options_init(&o);
    o.quiet = 1;
    o.port = mock_server_port(a);
    err[0] = '\0';
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), MOCK_ELISTEN);
    assert_null(s);
    assert_true(strlen(err) > 0);
    mock_server_stop(a);
    mock_server_stop(NULL);
}

/* Regression (fuzz/corpus/mock_config/mock_config-2): a JSON setting whose value is not a
 * string, number or bool was named in the error from the already-deleted JSON tree (ASan
 * heap-use-after-free). It is refused naming its key, and nothing changes. */
static void test_settings_json_odd_value(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 3);
    const char *url = mock_server_url(s);
    cJSON *before = admin_config(url);
    const char *bad[] = {"{\"latency\": [1]}", "{\"seed\": 5, \"stddev\": {\"a\": 1}}",
                         "{\"pad_to\": null}"};
    const char *key[] = {"latency", "stddev", "pad_to"};
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(err, 0, sizeof err);
        assert_int_equal(mock_server_configure(s, bad[i], err, sizeof err), -1);
        if (strstr(err, key[i]) == NULL) fail_msg("'%s': message '%s' does not name %s", bad[i],
                                                  err, key[i]);
        expect_config_refused(url, bad[i], key[i], NULL);
    }
    expect_config(url, before, 1);
    cJSON_Delete(before);
    mock_server_stop(s);
}

/* Regression (fuzz/corpus/mock_config/mock_config-3): a settings line without '=' was quoted in
 * the error from the freed copy of the text (ASan heap-use-after-free), also from the network
 * through POST /admin/config. It is refused quoting the line and its number; nothing changes. */
static void test_settings_line_without_eq(void **state) {
    (void)state;
    struct mock_server *s = t_mock_start(NULL, 3);
    const char *url = mock_server_url(s);
    cJSON *before = admin_config(url);
    expect_config_refused(url, "latency 10ms", "line 1", "latency 10ms");
    char err[256];
    assert_int_equal(mock_server_configure(s, "seed = 5\n# note\n  latency 10ms  \n", err,
                                           sizeof err), -1);
    if (strstr(err, "line 3") == NULL || strstr(err, "'latency 10ms'") == NULL)
        fail_msg("message '%s' does not quote line 3", err);
    expect_config(url, before, 1);
    cJSON_Delete(before);
    mock_server_stop(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_completions),
        cmocka_unit_test(test_chat_stream),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_messages_stream),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_models_health_metrics_stats),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_settings_json_odd_value),
        cmocka_unit_test(test_settings_line_without_eq),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
