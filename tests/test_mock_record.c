/*
 * test_mock_record.c - record then replay, end to end over HTTP: a second in-process mock
 * stands in for the real API (it requires a key), a recording mock proxies to it and writes one
 * fixture file per exchange, and a replaying mock serves those files. Checked: the client's
 * answers pass through unchanged (non-streaming and streaming, OpenAI and Anthropic, an
 * upstream error too), the key reaches the upstream but is in no file, streams are recorded
 * frame by frame with their gaps and replayed frame for frame no faster than recorded, an
 * unrecorded body is a strict miss, an unreachable upstream is a 502 in the API's shape, and
 * tool-call answers (chat, messages, Responses; streamed and not) replay with the same calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "t_mock_calls.h"
#include "t_mock_http.h"

#define UP_TTFT 30.0 /* ms, as in the upstream's config below */
#define UP_ITL 3.0
#define KEY "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"

static struct mock_server *start(const struct mock_options *o)
{
    struct mock_server *s = NULL;
    char err[512] = "";
    if (mock_server_start(o, &s, err, sizeof err) != 0) fail_msg("mock_server_start: %s", err);
    return s;
}

/* Every file of dir concatenated (the test's files are small). */
static char *dir_text(const char *dir, int *nfiles)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct t_mem all = {0};
    struct dirent *de;
    *nfiles = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = t_path(dir, de->d_name);
        FILE *f = fopen(p, "r");
        assert_non_null(f);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            t_mem_write(buf, 1, n, &all);
        fclose(f);
        free(p);
        (*nfiles)++;
    }
    closedir(d);
    return all.p ? all.p : strdup("");
}

#define PROMPT_KEY "sk-proj-ABCdef1234567890XYZ"

/* s with every PROMPT_KEY replaced by "[redacted]" (what the recorded files say). */
static char *redacted(const char *s)
{
    struct t_mem m = {0};
    const char *q;
    while ((q = strstr(s, PROMPT_KEY))) {
        t_mem_write((char *)s, 1, (size_t)(q - s), &m);
        t_mem_write("[redacted]", 1, 10, &m);
        s = q + strlen(PROMPT_KEY);
    }
    t_mem_write((char *)s, 1, strlen(s), &m);
    return m.p;
}

struct exchange {
    const char *path, *body;
    int anthropic;
    long status;
    char *answer; /* the text that matters: content, or the error body */
    struct t_sse sse;
};

/* The content of a reply (non-streaming JSON, or the stream's data lines joined). */
static char *answer_of(const struct t_resp *r, int anthropic, int stream, struct t_sse *sse)
{
    if (stream) {
        t_sse_parse(r->body.p, r->body.len, sse);
        struct t_mem m = {0};
        for (size_t i = 0; i < sse->n; i++) {
            cJSON *c = cJSON_Parse(sse->ev[i].data);
            const cJSON *d = anthropic ? t_jget(c, "delta.text")
                                       : t_jget(c, "choices.0.delta.content");
            if (cJSON_IsString(d))
                t_mem_write(d->valuestring, 1, strlen(d->valuestring), &m);
            cJSON_Delete(c);
        }
        return m.p ? m.p : strdup("");
    }
    if (r->status != 200)
        return strdup(r->body.p ? r->body.p : "");
    cJSON *j = t_json(r);
    char *t = strdup(t_jstr(j, anthropic ? "content.0.text" : "choices.0.message.content"));
    cJSON_Delete(j);
    return t;
}

static void call(struct mock_server *s, struct exchange *x, const char *key, struct t_resp *r)
{
    char auth[128];
    const char *hdrs[3] = {NULL, NULL, NULL};
    if (x->anthropic) {
        hdrs[0] = "anthropic-version: 2023-06-01";
        if (key) {
            snprintf(auth, sizeof auth, "x-api-key: %s", key);
            hdrs[1] = auth;
        }
    } else if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hdrs[0] = auth;
    }
    x->status = t_http(mock_server_url(s), x->path, "POST", x->body, hdrs, 0, r);
}

static void test_record_then_replay(void **state)
{
    (void)state;
    char *dir = t_tmpdir("rec");
    struct mock_options o;
    /* The upstream: wants the key, paces its streams (UP_TTFT to the first token, UP_ITL
       apart). */
    mock_options_init(&o);
    o.config_text = "latency = 30ms\nitl = 3ms\n";
    o.required_key = KEY;
    struct mock_server *up = start(&o);
    mock_options_init(&o);
    o.record_dir = dir;
    o.upstream = mock_server_url(up);
    struct mock_server *rec = start(&o);

    char *chat = t_chat_body("gpt-rec", "install nginx", 0, 0);
    char *chat_s = t_chat_body("gpt-rec", "hello there", 1, 1);
    char *msg_s = t_messages_body("claude-rec", "install redis and nginx", 1);
    /* A key-looking string in a prompt is redacted on disk; replay still matches the body
       (the incoming one is redacted the same way before comparing). */
    char *msg = t_messages_body("claude-rec", "what is a mock? " PROMPT_KEY, 0);
    struct exchange xs[] = {
        {"/v1/chat/completions", chat, 0, 0, NULL, {0}},
        {"/v1/chat/completions", chat_s, 0, 0, NULL, {0}},
        {"/v1/messages", msg_s, 1, 0, NULL, {0}},
        {"/v1/messages", msg, 1, 0, NULL, {0}},
    };
    size_t nx = sizeof xs / sizeof xs[0];
    for (size_t i = 0; i < nx; i++) {
        struct t_resp r, d;
        call(rec, &xs[i], KEY, &r);
        assert_int_equal(xs[i].status, 200);
        int stream = strstr(xs[i].body, "\"stream\":true") != NULL;
        xs[i].answer = answer_of(&r, xs[i].anthropic, stream, &xs[i].sse);
        assert_true(strlen(xs[i].answer) > 10);
        /* The same request straight to the upstream answers the same (deterministic). */
        struct exchange direct = xs[i];
        struct t_sse dsse;
        call(up, &direct, KEY, &d);
        char *dt = answer_of(&d, direct.anthropic, stream, &dsse);
        assert_string_equal(dt, xs[i].answer);
        if (stream) {
            assert_int_equal(dsse.n, xs[i].sse.n);
            t_sse_free(&dsse);
        }
        free(dt);
        t_resp_free(&r);
        t_resp_free(&d);
    }
    /* An upstream error passes through and is recorded too. */
    char *chat_w = t_chat_body("gpt-rec", "who are you", 0, 0);
    struct exchange wrong = {"/v1/chat/completions", chat_w, 0, 0, NULL, {0}};
    struct t_resp r;
    call(rec, &wrong, "sk-wrong-0000000000000000000000", &r);
    assert_int_equal(wrong.status, 401);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "error.code"), "invalid_api_key");
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(rec);

    /* One file per exchange; neither key is on disk, the headers say where they were. */
    int nfiles;
    char *all = dir_text(dir, &nfiles);
    assert_int_equal(nfiles, (int)nx + 1);
    assert_null(strstr(all, KEY));
    assert_null(strstr(all, "9f8e7d6c5b4a39281706f5e4d3c2b1a0"));
    assert_null(strstr(all, "sk-wrong"));
    assert_null(strstr(all, PROMPT_KEY));
    assert_non_null(strstr(all, "what is a mock? [redacted]"));
    assert_non_null(strstr(all, "\"Authorization\":\t\"[redacted]\""));
    assert_non_null(strstr(all, "\"x-api-key\":\t\"[redacted]\""));
    free(all);

    /* The chat stream's file: frame by frame, paced as the upstream sent it. Each frame is
       received no earlier than sent, so the recorded time to the last frame is at least the
       upstream's schedule: UP_TTFT + UP_ITL per token after the first. */
    char *f2 = t_path(dir, "000002-chat.json");
    FILE *fp = fopen(f2, "r");
    assert_non_null(fp);
    struct t_mem ft = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        t_mem_write(buf, 1, n, &ft);
    fclose(fp);
    j = cJSON_Parse(ft.p);
    assert_non_null(j);
    const cJSON *rr = t_jget(j, "rules.0.reply.recorded");
    const cJSON *frames = t_jget(rr, "frames");
    assert_int_equal(cJSON_GetArraySize(frames), (int)xs[1].sse.n);
    double total = t_jnum(rr, "latency_ms");
    for (const cJSON *fr = frames->child; fr; fr = fr->next)
        total += t_jnum(fr, "delay_ms");
    size_t ntok = xs[1].sse.n - 4; /* role chunk, finish chunk, usage chunk, [DONE] */
    if (total < UP_TTFT + UP_ITL * (double)(ntok - 1) - 1)
        fail_msg("recorded %.1f ms for %zu tokens", total, ntok);
    assert_string_equal(t_jstr(j, "rules.0.match.model"), "gpt-rec");
    cJSON_Delete(j);
    free(ft.p);
    free(f2);

    /* Replay, strict: no key needed, the same answers, streams frame for frame. */
    mock_server_stop(up);
    mock_options_init(&o);
    o.replay_dir = dir;
    o.strict = 1;
    struct mock_server *rp = start(&o);
    for (size_t i = 0; i < nx; i++) {
        struct exchange x = xs[i];
        struct t_sse sse;
        call(rp, &x, NULL, &r);
        assert_int_equal(x.status, 200);
        int stream = strstr(x.body, "\"stream\":true") != NULL;
        char *t = answer_of(&r, x.anthropic, stream, &sse);
        char *want = redacted(xs[i].answer); /* the upstream echoes the prompt */
        assert_string_equal(t, want);
        free(want);
        if (stream) {
            assert_int_equal(sse.n, xs[i].sse.n);
            for (size_t k = 0; k < sse.n; k++)
                assert_string_equal(sse.ev[k].data, xs[i].sse.ev[k].data);
            if (i == 1 && r.secs * 1000 < total - 2) /* paced by the recorded timings */
                fail_msg("replayed in %.1f ms, recorded %.1f ms", r.secs * 1000, total);
            t_sse_free(&sse);
        }
        free(t);
        t_resp_free(&r);
    }
    call(rp, &wrong, NULL, &r); /* the recorded 401 */
    assert_int_equal(wrong.status, 401);
    t_resp_free(&r);
    struct exchange other = {"/v1/chat/completions", "{\"model\":\"gpt-rec\",\"messages\":"
                             "[{\"role\":\"user\",\"content\":\"never recorded\"}]}", 0, 0, NULL,
                             {0}};
    call(rp, &other, NULL, &r);
    assert_int_equal(other.status, 404);
    j = t_json(&r);
    const char *m = t_jstr(j, "error.message");
    if (!strstr(m, "Closest: rules[0] \"000001-chat-gpt-rec\"") || !strstr(m, "failed: body"))
        fail_msg("strict message: %s", m);
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(rp);

    for (size_t i = 0; i < nx; i++) {
        free(xs[i].answer);
        t_sse_free(&xs[i].sse);
    }
    cJSON_free(chat);
    cJSON_free(chat_w);
    cJSON_free(chat_s);
    cJSON_free(msg_s);
    cJSON_free(msg);
    t_rmrf(dir);
    free(dir);
}

static void test_upstream_down(void **state)
{
    (void)state;
    char *dir = t_tmpdir("rec");
    int fd;
    int port = t_refused_port(&fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    struct mock_options o;
    mock_options_init(&o);
    o.record_dir = dir;
    o.upstream = url;
    struct mock_server *rec = start(&o);
    char *b = t_messages_body("claude", "hi", 0);
    struct t_resp r;
    assert_int_equal(t_http(mock_server_url(rec), "/v1/messages", "POST", b, t_msg_hdrs(), 0, &r),
                     502);
    cJSON_free(b);
    cJSON *j = t_json(&r);
    assert_string_equal(t_jstr(j, "type"), "error");
    assert_string_equal(t_jstr(j, "error.type"), "api_error");
    assert_non_null(strstr(t_jstr(j, "error.message"), url));
    cJSON_Delete(j);
    t_resp_free(&r);
    mock_server_stop(rec);
    int nfiles;
    free(dir_text(dir, &nfiles));
    assert_int_equal(nfiles, 0); /* nothing was exchanged */
    close(fd);
    t_rmrf(dir);
    free(dir);

    /* Bad record options. */
    mock_options_init(&o);
    o.record_dir = "/nonexistent/dir";
    o.upstream = url;
    struct mock_server *s = NULL;
    char err[512];
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), MOCK_EFIXTURES);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    o.record_dir = "/tmp";
    o.upstream = NULL;
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), MOCK_EINVAL);
    assert_non_null(strstr(err, "upstream"));
}

struct slow_call {
    struct mock_server *rec;
    long status;
};

static void *slow_client(void *arg)
{
    struct slow_call *c = arg;
    char *b = t_chat_body("m", "slow one", 0, 0);
    struct t_resp r;
    c->status = t_http(mock_server_url(c->rec), "/v1/chat/completions", "POST", b, NULL, 0, &r);
    cJSON_free(b);
    t_resp_free(&r);
    return NULL;
}

/* Stopping a recording server while its upstream transfer hangs: the transfer is ended, the
 * request closed, nothing leaks (ASan) and nothing is written. */
static void test_stop_mid_transfer(void **state)
{
    (void)state;
    char *dir = t_tmpdir("rec");
    struct mock_options o;
    mock_options_init(&o);
    o.config_text = "latency = 60s\n";
    struct mock_server *up = start(&o);
    mock_options_init(&o);
    o.record_dir = dir;
    o.upstream = mock_server_url(up);
    struct mock_server *rec = start(&o);
    struct slow_call c = {rec, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_client, &c), 0);
    double end = t_now_s() + 10 * t_timeout_scale();
    struct mock_counts mc;
    for (mock_server_counts(up, &mc); mc.in_flight == 0; mock_server_counts(up, &mc)) {
        if (t_now_s() > end) fail_msg("the request never reached the upstream");
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    mock_server_stop(rec);
    pthread_join(th, NULL);
    assert_true(c.status == 0 || c.status == 502);
    mock_server_stop(up);
    int nfiles;
    free(dir_text(dir, &nfiles));
    assert_int_equal(nfiles, 0);
    t_rmrf(dir);
    free(dir);
}

#define CONC 8

struct conc_call {
    struct mock_server *rec;
    int i;
    long status;
};

static void *conc_client(void *arg)
{
    struct conc_call *c = arg;
    char prompt[64];
    snprintf(prompt, sizeof prompt, "install package-%d", c->i);
    char *b = t_chat_body("m", prompt, c->i % 2, 0);
    char auth[80];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", KEY);
    const char *hdrs[] = {auth, NULL};
    struct t_resp r;
    c->status = t_http(mock_server_url(c->rec), "/v1/chat/completions", "POST", b, hdrs, 0, &r);
    cJSON_free(b);
    t_resp_free(&r);
    return NULL;
}

/* More requests at once than proxy threads: all answered, one file each, none overwritten. */
static void test_record_concurrent(void **state)
{
    (void)state;
    char *dir = t_tmpdir("rec");
    struct mock_options o;
    mock_options_init(&o);
    o.config_text = "latency = 20ms\nitl = 1ms\n";
    struct mock_server *up = start(&o);
    mock_options_init(&o);
    o.record_dir = dir;
    o.upstream = mock_server_url(up);
    struct mock_server *rec = start(&o);
    struct conc_call cs[CONC];
    pthread_t th[CONC];
    for (int i = 0; i < CONC; i++) {
        cs[i] = (struct conc_call){rec, i, -1};
        assert_int_equal(pthread_create(&th[i], NULL, conc_client, &cs[i]), 0);
    }
    for (int i = 0; i < CONC; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(cs[i].status, 200);
    }
    mock_server_stop(rec);
    mock_server_stop(up);
    int nfiles;
    char *all = dir_text(dir, &nfiles);
    assert_int_equal(nfiles, CONC);
    for (int i = 0; i < CONC; i++) {
        char want[64];
        snprintf(want, sizeof want, "install package-%d\"", i);
        assert_non_null(strstr(all, want));
    }
    assert_null(strstr(all, KEY));
    free(all);
    t_rmrf(dir);
    free(dir);
}

/* ---- tool calls ---- */

#define TOOL_SCHEMA(p) "{\"type\":\"object\",\"properties\":{\"" p "\":{\"type\":\"string\"}}," \
                       "\"required\":[\"" p "\"]}"
static const char *const rec_tools[3] = {
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
    TOOL_SCHEMA("location") "}},{\"type\":\"function\",\"function\":{\"name\":"
    "\"get_package_info\",\"parameters\":" TOOL_SCHEMA("package") "}}]",
    "[{\"name\":\"get_weather\",\"input_schema\":" TOOL_SCHEMA("location") "},"
    "{\"name\":\"get_package_info\",\"input_schema\":" TOOL_SCHEMA("package") "}]",
    "[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":" TOOL_SCHEMA("location")
    "},{\"type\":\"function\",\"name\":\"get_package_info\",\"parameters\":"
    TOOL_SCHEMA("package") "}]"};

/* A tool-call request (two calls: both tools are named) on api 0 chat, 1 messages, 2 Responses,
 * with the key; returns the response (t_resp_free) with its calls parsed into c. */
static struct t_resp tool_call(struct mock_server *s, int api, int stream, struct t_calls *c)
{
    static const char *const path[3] = {"/v1/chat/completions", "/v1/messages", "/v1/responses"};
    static const char q[] = "What is the weather in Paris, and the package info for nginx?";
    char body[2048];
    if (api == 2)
        snprintf(body, sizeof body, "{\"model\":\"m\",\"stream\":%s,\"input\":\"%s\","
                 "\"tools\":%s}", stream ? "true" : "false", q, rec_tools[api]);
    else
        snprintf(body, sizeof body, "{\"model\":\"m\",\"max_tokens\":300,\"stream\":%s,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"tools\":%s}",
                 stream ? "true" : "false", q, rec_tools[api]);
    char auth[96];
    snprintf(auth, sizeof auth, api == 1 ? "x-api-key: %s" : "Authorization: Bearer %s", KEY);
    const char *hdrs[3] = {auth, api == 1 ? "anthropic-version: 2023-06-01" : NULL, NULL};
    struct t_resp r;
    long st = t_http(mock_server_url(s), path[api], "POST", body, hdrs, 0, &r);
    if (st != 200) fail_msg("%s: %ld %.300s", path[api], st, r.body.p);
    if (stream) {
        struct t_sse sse;
        t_sse_parse(r.body.p, r.body.len, &sse);
        t_calls_of_stream(api, &sse, c);
        t_sse_free(&sse);
    } else {
        cJSON *j = t_json(&r);
        t_calls_of_body(api, j, c);
        cJSON_Delete(j);
    }
    return r;
}

/* A streamed tool-call answer recorded from an upstream cx-mock replays with the same calls:
 * the frames are stored and sent verbatim, so what the client reassembles is the same. */
static void test_record_tool_calls(void **state)
{
    (void)state;
    char *dir = t_tmpdir("rec");
    struct mock_options o;
    mock_options_init(&o);
    o.config_text = "latency = 5ms\nitl = 1ms\n";
    o.required_key = KEY;
    struct mock_server *up = start(&o);
    mock_options_init(&o);
    o.record_dir = dir;
    o.upstream = mock_server_url(up);
    struct mock_server *rec = start(&o);
    struct t_calls want[3], got;
    struct t_resp recorded[3][2];
    for (int api = 0; api < 3; api++) {
        struct t_resp direct = tool_call(up, api, 0, &want[api]);
        t_resp_free(&direct);
        assert_int_equal(want[api].n, 2); /* the upstream's own, non-streaming */
        for (int stream = 0; stream < 2; stream++) {
            recorded[api][stream] = tool_call(rec, api, stream, &got);
            assert_int_equal(got.n, 2);
            for (int k = 0; k < 2; k++) {
                assert_string_equal(got.name[k], want[api].name[k]);
                assert_string_equal(got.args[k], want[api].args[k]);
                assert_string_equal(got.id[k], want[api].id[k]);
            }
        }
    }
    mock_server_stop(rec);
    mock_server_stop(up);
    int nfiles;
    char *all = dir_text(dir, &nfiles);
    assert_int_equal(nfiles, 6);
    assert_null(strstr(all, KEY));
    free(all);

    mock_options_init(&o);
    o.replay_dir = dir;
    o.strict = 1;
    struct mock_server *rp = start(&o);
    for (int api = 0; api < 3; api++)
        for (int stream = 0; stream < 2; stream++) {
            struct t_resp r = tool_call(rp, api, stream, &got);
            /* byte for byte what the recording client got, so the same calls */
            assert_int_equal(r.body.len, recorded[api][stream].body.len);
            assert_memory_equal(r.body.p, recorded[api][stream].body.p, r.body.len);
            assert_int_equal(got.n, 2);
            for (int k = 0; k < 2; k++) {
                assert_string_equal(got.name[k], want[api].name[k]);
                assert_string_equal(got.args[k], want[api].args[k]);
                assert_string_equal(got.id[k], want[api].id[k]);
            }
            assert_string_equal(got.finish, api == 0 ? "tool_calls" : api == 1 ? "tool_use"
                                                                             : "completed");
            t_resp_free(&r);
            t_resp_free(&recorded[api][stream]);
        }
    mock_server_stop(rp);
    t_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_then_replay),
        cmocka_unit_test(test_upstream_down),
        cmocka_unit_test(test_stop_mid_transfer),
        cmocka_unit_test(test_record_concurrent),
        cmocka_unit_test(test_record_tool_calls),
    };
    return cmocka_run_group_tests(tests, t_mock_group_setup, t_mock_group_teardown);
}
