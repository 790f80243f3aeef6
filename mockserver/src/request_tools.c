/*
 * request_tools.c - the tool and structured-output side of a request on all three APIs: reads
 * tools and tool_choice (chat, messages, Responses), response_format (chat), text.format
 * (Responses) and output_config.format (messages), checks the tool turns of the history the way
 * the real APIs do (every OpenAI "tool" message answers a tool_calls id of the assistant message
 * before it, every Anthropic tool_result block a tool_use block of the previous message, every
 * Responses function_call_output an earlier function_call, and no call is left unanswered), and
 * decides what the reply is: a tool call (content_tools.c picks the tool and its arguments), a
 * JSON document (content_schema.c), or text; after a tool result the text starts by reporting
 * what the tool returned and then answers the question the tool was called for.
 *
 * It neither writes replies (proto_tools.c does) nor parses the rest of the body (request.c,
 * request_more.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content_internal.h"
#include "server_internal.h"

#define MAX_CALLS 64   /* tool calls one assistant turn may make that we track */

_Static_assert(MOCK_TOOL_CALLS_MAX == MOCK_REPLY_CALLS_MAX, "one limit for parallel calls");
#define RESULT_MAX 300 /* bytes of a tool result quoted in the answer */

static int bad(struct perr *e, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(struct perr *e, const char *param, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf, sizeof e->buf, fmt, ap);
    va_end(ap);
    snprintf(e->pbuf, sizeof e->pbuf, "%s", param ? param : "");
    e->msg = e->buf;
    e->param = param ? e->pbuf : NULL;
    e->code = code;
    return -1;
}

/* The tool calls of one assistant turn and which of them were answered. */
struct calls {
    const char *id[MAX_CALLS], *name[MAX_CALLS];
    int answered[MAX_CALLS];
    int n;
};

static int calls_find(const struct calls *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->id[i], id))
            return i;
    return -1;
}

static const char *calls_unanswered(const struct calls *c)
{
    for (int i = 0; i < c->n; i++)
        if (!c->answered[i])
            return c->id[i];
    return NULL;
}

/* Adds "The NAME tool returned: TEXT." to the answer's prefix. */
static void say_result(struct mock_buf *pre, const char *name, const char *text, int failed)
{
    char *clean = mock__clean_copy(text ? text : "", RESULT_MAX);
    mock__buf_fmt(pre, "%sThe %s%stool %s: %s%s", pre->len ? " " : "", name ? name : "",
                  name ? " " : "",
                  failed ? "failed" : "returned", clean && clean[0] ? clean : "(nothing)",
                  text && strlen(text) > RESULT_MAX ? "..." : "");
    mock__buf_str(pre, ".");
    free(clean);
}

/* OpenAI chat history: assistant tool_calls, then one "tool" message per call. */
static int chat_history(const cJSON *msgs, struct mock_buf *pre, struct perr *e)
{
    struct calls c = {0};
    unsigned idx = 0;
    int last_tool = 0;
    char p[48];
    for (const cJSON *m = msgs->child; m; m = m->next, idx++) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        int is_tool = role && !strcmp(role, "tool");
        if (!is_tool && c.n && calls_unanswered(&c))
            return bad(e, "messages", "invalid_value", "An assistant message with 'tool_calls' "
                       "must be followed by tool messages responding to each 'tool_call_id'. "
                       "The following tool_call_ids did not have response messages: %.60s",
                       calls_unanswered(&c));
        if (!is_tool) {
            c.n = 0;
            pre->len = 0;
            last_tool = 0;
        }
        if (role && !strcmp(role, "assistant")) {
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            if (!tc || cJSON_IsNull(tc))
                continue;
            snprintf(p, sizeof p, "messages.[%u].tool_calls", idx);
            if (!cJSON_IsArray(tc))
                return bad(e, p, "invalid_type", "Invalid type for '%s': expected an array, but "
                           "got %s instead.", p, mock__json_type(tc));
            unsigned k = 0;
            for (const cJSON *t = tc->child; t; t = t->next, k++) {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id"));
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn,
                                                                                         "name"));
                const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
                if (!id || !name || !cJSON_IsString(args))
                    return bad(e, p, "missing_required_parameter", "Missing required parameter: "
                               "'messages[%u].tool_calls[%u].%s'.", idx, k, !id ? "id" : !name ?
                               "function.name" : "function.arguments");
                if (c.n < MAX_CALLS) {
                    c.id[c.n] = id;
                    c.name[c.n] = name;
                    c.answered[c.n++] = 0;
                }
            }
            continue;
        }
        if (!is_tool)
            continue;
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m,
                                                                               "tool_call_id"));
        snprintf(p, sizeof p, "messages.[%u].tool_call_id", idx);
        if (!id)
            return bad(e, p, "missing_required_parameter", "Missing parameter 'tool_call_id': "
                       "messages with role 'tool' must have a 'tool_call_id'.");
        int i = calls_find(&c, id);
        if (i < 0) {
            snprintf(p, sizeof p, "messages.[%u].role", idx);
            return bad(e, p, NULL, "Invalid parameter: messages with role 'tool' must be a "
                       "response to a preceeding message with 'tool_calls'.");
        }
        c.answered[i] = 1;
        struct mock_buf t = {0};
        mock__content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &t);
        mock__buf_add(&t, "", 1);
        say_result(pre, c.name[i], t.oom ? "" : t.p, 0);
        mock__buf_free(&t);
        last_tool = 1;
    }
    if (c.n && calls_unanswered(&c))
        return bad(e, "messages", "invalid_value", "An assistant message with 'tool_calls' must "
                   "be followed by tool messages responding to each 'tool_call_id'. The "
                   "following tool_call_ids did not have response messages: %.60s",
                   calls_unanswered(&c));
    if (!last_tool)
        pre->len = 0;
    return 0;
}

/* Anthropic history: tool_use blocks in an assistant turn, tool_result blocks in the next. The
 * answered question is the last user turn with text besides its tool results. */
static int messages_history(const cJSON *msgs, struct mock_buf *pre, struct mock_buf *question,
                            struct perr *e)
{
    struct calls c = {0};
    unsigned idx = 0;
    int last_result = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, idx++) {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        int user = role && !strcmp(role, "user");
        struct calls prev = c;
        c.n = 0;
        pre->len = 0;
        last_result = 0;
        unsigned k = 0;
        for (const cJSON *b = cJSON_IsArray(content) ? content->child : NULL; b; b = b->next, k++) {
            const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "type"));
            if (!type)
                continue;
            if (!user && !strcmp(type, "tool_use")) {
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "id"));
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b,
                                                                                         "name"));
                if (!id || !name || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b, "input")))
                    return bad(e, NULL, NULL, "messages.%u.content.%u.tool_use.%s: Field required",
                               idx, k, !id ? "id" : !name ? "name" : "input");
                if (c.n < MAX_CALLS) {
                    c.id[c.n] = id;
                    c.name[c.n] = name;
                    c.answered[c.n++] = 0;
                }
            } else if (user && !strcmp(type, "tool_result")) {
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b,
                                                                                "tool_use_id"));
                if (!id)
                    return bad(e, NULL, NULL, "messages.%u.content.%u.tool_result.tool_use_id: "
                               "Field required", idx, k);
                int i = calls_find(&prev, id);
                if (i < 0)
                    return bad(e, NULL, NULL, "messages.%u.content.%u: unexpected `tool_use_id` "
                               "found in `tool_result` blocks: %.60s. Each `tool_result` block "
                               "must have a corresponding `tool_use` block in the previous "
                               "message.", idx, k, id);
                prev.answered[i] = 1;
                struct mock_buf t = {0};
                if (mock__content_text(cJSON_GetObjectItemCaseSensitive(b, "content"), &t) < 0) {
                    mock__buf_free(&t);
                    return bad(e, NULL, NULL, "messages.%u.content.%u.tool_result.content: Input "
                               "should be a valid string or list of blocks", idx, k);
                }
                mock__buf_add(&t, "", 1);
                say_result(pre, prev.name[i], t.oom ? "" : t.p,
                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "is_error")));
                mock__buf_free(&t);
                last_result = 1;
            }
        }
        if (prev.n && calls_unanswered(&prev))
            return bad(e, NULL, NULL, "messages.%u: `tool_use` ids were found without "
                       "`tool_result` blocks immediately after: %.60s. Each `tool_use` block must "
                       "have a corresponding `tool_result` block in the next message.", idx,
                       calls_unanswered(&prev));
        if (user) {
            struct mock_buf t = {0};
            mock__content_text(content, &t);
            if (t.len) {
                question->len = 0;
                mock__buf_add(question, t.p, t.len);
            }
            mock__buf_free(&t);
        }
    }
    if (c.n)
        return bad(e, NULL, NULL, "messages.%u: the last message's `tool_use` blocks have no "
                   "`tool_result`: the conversation must end with a user turn", idx - 1);
    if (!last_result)
        pre->len = 0;
    return 0;
}

/* Responses input items: function_call, then function_call_output with the same call_id. */
/* With previous_response_id the calls were in an earlier response, which the mock does not keep:
 * an output is then taken without its call (and reported without the tool's name). */
static int responses_history(const cJSON *input, int chained, struct mock_buf *pre,
                             struct perr *e)
{
    struct calls c = {0};
    unsigned idx = 0;
    int prev_output = 0; /* the item before was a function_call_output */
    for (const cJSON *it = cJSON_IsArray(input) ? input->child : NULL; it; it = it->next, idx++) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "type"));
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "call_id"));
        char p[48];
        int output = 0;
        if (type && !strcmp(type, "function_call")) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "name"));
            const char *miss = !id ? "call_id" : !name ? "name" :
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "arguments")) ? "arguments"
                                                                                  : NULL;
            snprintf(p, sizeof p, "input[%u].%s", idx, miss ? miss : "");
            if (miss)
                return bad(e, p, "missing_required_parameter", "Missing required parameter: "
                           "'%s'.", p);
            if (c.n < MAX_CALLS) {
                c.id[c.n] = id;
                c.name[c.n] = name;
                c.answered[c.n++] = 0;
            }
        } else if (type && !strcmp(type, "function_call_output")) {
            snprintf(p, sizeof p, "input[%u].call_id", idx);
            if (!id)
                return bad(e, p, "missing_required_parameter", "Missing required parameter: "
                           "'%s'.", p);
            int i = calls_find(&c, id);
            if (i < 0 && !chained)
                return bad(e, "input", NULL, "No tool call found for function call output with "
                           "call_id %.60s.", id);
            if (i >= 0)
                c.answered[i] = 1;
            struct mock_buf t = {0};
            mock__content_text(cJSON_GetObjectItemCaseSensitive(it, "output"), &t);
            mock__buf_add(&t, "", 1);
            say_result(pre, i >= 0 ? c.name[i] : NULL, t.oom ? "" : t.p, 0);
            mock__buf_free(&t);
            output = 1;
        }
        /* The prefix reports the run of outputs that ends the input (calls may sit between). */
        if (!output && !(type && !strcmp(type, "function_call")))
            pre->len = 0;
        prev_output = output || (prev_output && type && !strcmp(type, "function_call"));
    }
    if (calls_unanswered(&c))
        return bad(e, "input", NULL, "No tool output found for function call %.60s.",
                   calls_unanswered(&c));
    if (!prev_output)
        pre->len = 0;
    return 0;
}

/* "json" appears in the system text or some message (OpenAI's rule for json_object). */
static int mentions_json(const struct req *r, const cJSON *msgs)
{
    if (mock__find_ci(r->system, "json", 0))
        return 1;
    for (const cJSON *m = cJSON_IsArray(msgs) ? msgs->child : NULL; m; m = m->next) {
        struct mock_buf t = {0};
        mock__content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &t);
        mock__buf_add(&t, "", 1);
        int yes = !t.oom && mock__find_ci(t.p, "json", 0);
        mock__buf_free(&t);
        if (yes)
            return 1;
    }
    return cJSON_IsString(msgs) && mock__find_ci(msgs->valuestring, "json", 0);
}

static int is_auto(const cJSON *tc)
{
    if (!tc || cJSON_IsNull(tc))
        return 1;
    const char *t = cJSON_IsString(tc) ? tc->valuestring
                                        : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tc,
                                                                                        "type"));
    return t && !strcmp(t, "auto");
}

static int choose(struct req *r, const cJSON *j, int after_result, struct perr *e)
{
    int oa = r->api == MOCK_API_OPENAI;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "tool_choice");
    if (!tools || cJSON_IsNull(tools)) {
        if (oa && tc && !cJSON_IsNull(tc))
            return bad(e, "tool_choice", "invalid_value", "Invalid value for 'tool_choice': "
                       "'tool_choice' is only allowed when 'tools' are specified.");
        return 0;
    }
    char *text = cJSON_PrintUnformatted(tools); /* tool definitions count as prompt tokens */
    if (!text)
        return -2;
    r->prompt_tokens += mock_count_tokens(text, strlen(text));
    cJSON_free(text);
    cJSON none = {0};
    none.type = cJSON_String;
    none.valuestring = (char *)"none";
    /* After a tool result the model answers, unless the request forces another call. */
    const cJSON *choice = after_result && is_auto(tc) ? &none : tc;
    /* Parallel calls unless parallel_tool_calls is false (OpenAI) or tool_choice has
     * disable_parallel_tool_use (Anthropic). */
    int parallel = oa ? !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "parallel_tool_calls"))
                      : !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tc,
                                                                 "disable_parallel_tool_use"));
    char err[200];
    int rc = mock_tool_choose_n(tools, choice, parallel, r->system, r->prompt, r->set.seed,
                                r->turn.call, MOCK_TOOL_CALLS_MAX, err, sizeof err);
    if (rc < 0) {
        if (!strcmp(err, "out of memory"))
            return -2;
        const char *field = !strncmp(err, "tool_choice", 11) ? "tool_choice" : "tools";
        return oa ? bad(e, field, "invalid_value", "Invalid '%s': %s", field, err)
                  : bad(e, NULL, NULL, "%s", err);
    }
    r->turn.ncalls = (unsigned)rc;
    for (unsigned k = 0; k < r->turn.ncalls; k++)
        mock_tool_call_id(oa ? "call_" : "toolu_", r->set.seed, r->prompt, k, r->turn.call_id[k],
                          sizeof r->turn.call_id[k]);
    return 0;
}

/* Anthropic structured output: output_config.format (or the beta's output_format), always
 * {"type":"json_schema","schema":S}; the text block is then a document valid against S. */
static int anthropic_format(struct req *r, const cJSON *j, struct perr *e)
{
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(j, "output_config");
    const char *field = "output_config.format";
    const cJSON *fmt = NULL;
    if (oc && !cJSON_IsNull(oc)) {
        if (!cJSON_IsObject(oc))
            return bad(e, NULL, NULL, "output_config: Input should be a valid dictionary");
        fmt = cJSON_GetObjectItemCaseSensitive(oc, "format");
    }
    if (!fmt || cJSON_IsNull(fmt)) {
        fmt = cJSON_GetObjectItemCaseSensitive(j, "output_format");
        field = "output_format";
    }
    if (!fmt || cJSON_IsNull(fmt))
        return 0;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fmt, "type"));
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(fmt, "schema");
    if (!cJSON_IsObject(fmt))
        return bad(e, NULL, NULL, "%s: Input should be a valid dictionary", field);
    if (!type || strcmp(type, "json_schema"))
        return bad(e, NULL, NULL, "%s.type: Input should be 'json_schema'", field);
    if (!cJSON_IsObject(schema))
        return bad(e, NULL, NULL, "%s.schema: Field required (a JSON schema object)", field);
    cJSON *v = NULL;
    char err[200];
    if (mock_schema_generate(schema, r->system, r->prompt, r->set.seed, &v, err, sizeof err) < 0)
        return !strcmp(err, "out of memory") ? -2 : bad(e, NULL, NULL, "%s.schema: %s", field,
                                                        err);
    r->turn.json = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    return r->turn.json ? 0 : -2;
}

static int structured(struct req *r, const cJSON *j, struct perr *e)
{
    int responses = r->route == MOCK_ROUTE_RESPONSES;
    if (r->api == MOCK_API_ANTHROPIC)
        return anthropic_format(r, j, e);
    const cJSON *fmt;
    if (responses) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!text || cJSON_IsNull(text))
            return 0;
        if (!cJSON_IsObject(text))
            return bad(e, "text", "invalid_type", "Invalid type for 'text': expected an object, "
                       "but got %s instead.", mock__json_type(text));
        fmt = cJSON_GetObjectItemCaseSensitive(text, "format");
    } else {
        fmt = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    }
    if (!fmt || cJSON_IsNull(fmt))
        return 0;
    const char *field = responses ? "text.format" : "response_format";
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fmt, "type"));
    if (type && !strcmp(type, "json_object") &&
        !mentions_json(r, cJSON_GetObjectItemCaseSensitive(j, responses ? "input" : "messages")))
        return bad(e, field, "invalid_value", "'%s' must contain the word 'json' in some form, to "
                   "use '%s' of type 'json_object'.", responses ? "input" : "messages", field);
    char err[200];
    int rc = (responses ? mock_content_text_format : mock_content_response_format)(
        fmt, r->system, r->prompt, r->set.seed, &r->turn.json, err, sizeof err);
    if (rc < 0)
        return !strcmp(err, "out of memory") ? -2 : bad(e, field, "invalid_value", "Invalid "
                                                        "'%s': %s", field, err);
    return 0;
}

/* Anthropic's message threads (the SDK's BetaMessageThread, which its toolRunner uses): the
 * server would hold the history and a "continue" request send only the new turns. The mock keeps
 * no state, so a continue is answered as a lost thread, and the SDK replays the whole history
 * under {"type":"create"}, which is answered like any request. */
static int thread(const cJSON *j, struct perr *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "thread");
    if (!t || cJSON_IsNull(t))
        return 0;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "type"));
    if (!type || (strcmp(type, "create") && strcmp(type, "continue")))
        return bad(e, NULL, NULL, "thread.type: Input should be 'create' or 'continue'");
    if (!strcmp(type, "continue"))
        return bad(e, NULL, "thread_not_found", "thread: no thread holds previous_message_id "
                   "%.60s (cx-mock keeps no threads: send the whole history)",
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t,
                                                                 "previous_message_id")));
    return 0;
}

int mock__parse_tools(struct req *r, const cJSON *j, struct perr *e)
{
    struct mock_buf pre = {0}, question = {0};
    int rc;
    if (r->api == MOCK_API_ANTHROPIC && thread(j, e) < 0)
        return -1;
    if (r->route == MOCK_ROUTE_RESPONSES)
        rc = responses_history(cJSON_GetObjectItemCaseSensitive(j, "input"),
                               cJSON_IsString(cJSON_GetObjectItemCaseSensitive(
                                   j, "previous_response_id")), &pre, e);
    else if (r->api == MOCK_API_OPENAI)
        rc = chat_history(cJSON_GetObjectItemCaseSensitive(j, "messages"), &pre, e);
    else
        rc = messages_history(cJSON_GetObjectItemCaseSensitive(j, "messages"), &pre, &question,
                              e);
    if (rc == 0 && (pre.oom || question.oom))
        rc = -2;
    if (rc == 0 && question.len) { /* Anthropic: the question, not the tool_result turn */
        char *q = mock__buf_take(&question);
        if (!q) {
            rc = -2;
        } else {
            free(r->prompt);
            r->prompt = q;
        }
    }
    int after = rc == 0 && pre.len > 0;
    if (rc == 0)
        rc = choose(r, j, after, e);
    if (rc == 0 && !r->turn.ncalls)
        rc = structured(r, j, e);
    if (rc == 0 && after && !r->turn.ncalls && !r->turn.json) {
        r->turn.prefix = mock__buf_take(&pre);
        if (!r->turn.prefix)
            rc = -2;
    }
    if (rc == 0 && r->route == MOCK_ROUTE_RESPONSES) {
        static const char *const keys[3] = {"text", "tool_choice", "tools"};
        for (int i = 0; i < 3 && rc == 0; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
            if (v && !cJSON_IsNull(v) && !(r->turn.echo[i] = cJSON_PrintUnformatted(v)))
                rc = -2;
        }
    }
    mock__buf_free(&pre);
    mock__buf_free(&question);
    if (rc < 0)
        mock__turn_free(&r->turn);
    return rc;
}

static int set_text(struct req *r, const char *text, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        return -1;
    memcpy(p, text, len);
    p[len] = '\0';
    free(r->content.text);
    r->content.text = p;
    r->content.completion_tokens = mock_count_tokens(p, len);
    return 1;
}

int mock__turn_content(struct req *r)
{
    struct mock_turn *t = &r->turn;
    if (t->ncalls) {
        struct mock_buf b = {0};
        for (unsigned k = 0; k < t->ncalls; k++)
            mock__buf_str(&b, t->call[k].arguments);
        int rc = b.oom ? -1 : set_text(r, b.p ? b.p : "", b.len);
        mock__buf_free(&b);
        if (rc > 0) /* counted call by call, as mock__turn_split cuts them */
            r->content.completion_tokens = (unsigned)mock__turn_split(r, NULL, 0, NULL);
        return rc;
    }
    if (t->json)
        return set_text(r, t->json, strlen(t->json));
    if (!t->prefix)
        return 0;
    struct mock_prompt pr;
    mock_prompt_parse(r->system, r->prompt, &pr);
    if (pr.intent == MOCK_INTENT_CHAT && !pr.wants_json) {
        /* A plain question: what the tool said is the answer. */
        struct mock_buf b = {0};
        char *q = mock__clean_copy(r->prompt ? r->prompt : "", 200);
        mock__buf_str(&b, t->prefix);
        if (q && q[0])
            mock__buf_fmt(&b, " That answers your question: \"%s\"", q);
        free(q);
        int rc = b.oom ? -1 : set_text(r, b.p, b.len);
        mock__buf_free(&b);
        return rc;
    }
    if (mock_content_generate(r->system, r->prompt, r->set.seed, r->set.pad_to,
                              r->fault == MOCK_FAULT_DANGEROUS, &r->content) < 0)
        return -1;
    struct mock_buf b = {0};
    mock__buf_str(&b, t->prefix);
    mock__buf_str(&b, "\n\n");
    mock__buf_str(&b, r->content.text ? r->content.text : "");
    int rc = b.oom ? -1 : set_text(r, b.p, b.len);
    mock__buf_free(&b);
    return rc;
}

size_t mock__turn_split(const struct req *r, size_t *starts, size_t max, struct mock_reply *rp)
{
    size_t off = 0, n = 0;
    for (unsigned k = 0; k < r->turn.ncalls; k++) {
        const char *a = r->turn.call[k].arguments;
        size_t len = strlen(a);
        size_t room = starts && n < max ? max - n : 0;
        size_t got = mock_content_split(a, len, starts ? starts + n : NULL, room);
        if (starts)
            for (size_t i = 0; i < got; i++)
                starts[n + i] += off;
        if (rp) {
            rp->call_off[k] = off;
            rp->call_piece[k] = (unsigned)n;
            rp->tool_name[k] = r->turn.call[k].name;
            rp->tool_id[k] = r->turn.call_id[k];
        }
        n += got;
        off += len;
    }
    if (rp) {
        rp->ncalls = r->turn.ncalls;
        rp->call_off[r->turn.ncalls] = off;
        rp->call_piece[r->turn.ncalls] = (unsigned)n;
    }
    return n;
}

void mock__turn_free(struct mock_turn *t)
{
    for (unsigned k = 0; k < MOCK_TOOL_CALLS_MAX; k++)
        mock_tool_call_free(&t->call[k]);
    cJSON_free(t->json);
    free(t->prefix);
    for (int i = 0; i < 3; i++)
        cJSON_free(t->echo[i]);
    memset(t, 0, sizeof *t);
}
