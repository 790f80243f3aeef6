/*
 * content_tools.c - which tool a mock model calls, and with what arguments.
 *
 * Reads the request's tools array in either API's shape and its tool_choice, scores each tool by
 * the words of its name (3 points each) and description (1 point each) that the prompt contains,
 * and picks the best one (the first on a tie), or none when tool_choice allows it and nothing
 * matched. The arguments are mock_schema_generate's value for the tool's schema, seeded with the
 * request's seed and the tool's name, so they validate and repeat. content.h says how the
 * server turns the result into OpenAI tool_calls and Anthropic tool_use blocks.
 *
 * It also reads OpenAI's response_format and gives the structured-output content for it.
 *
 * It does not parse the HTTP request or the message history: the server hands it the tools,
 * tool_choice, response_format, system prompt and the last user message.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "content_internal.h"
#include "mock_internal.h"

static int terr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int terr(char *err, size_t errlen, const char *fmt, ...) {
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* response_format (chat, js nested under "json_schema") or text.format (Responses: flat), named
 * field in errors. */
static int structured(const cJSON *rf, int flat, const char *field, const char *system,
                      const char *prompt, uint64_t seed, char **out, char *err, size_t errlen) {
    *out = NULL;
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (!cJSON_IsObject(rf)) return terr(err, errlen, "%s: expected an object", field);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsString(type)) return terr(err, errlen, "%s.type: missing", field);
    const char *t = type->valuestring;
    const char *sub = flat ? "" : ".json_schema";
    const cJSON *schema = NULL;
    if (strcmp(t, "text") == 0) return 0;
    if (strcmp(t, "json_schema") == 0) {
        const cJSON *js = flat ? rf : cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (!cJSON_IsObject(js)) return terr(err, errlen, "%s.json_schema: missing", field);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
        if (!cJSON_IsString(name) || name->valuestring[0] == '\0')
            return terr(err, errlen, "%s%s.name: missing", field, sub);
        schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (schema != NULL && !cJSON_IsObject(schema))
            return terr(err, errlen, "%s%s.schema: expected an object", field, sub);
        if (flat && schema == NULL) return terr(err, errlen, "%s.schema: missing", field);
    } else if (strcmp(t, "json_object") != 0) {
        return terr(err, errlen, "%s.type: unknown \"%s\"", field, t);
    }
    cJSON *v = NULL;
    if (schema != NULL) {
        char gerr[200];
        if (mock_schema_generate(schema, system, prompt, seed, &v, gerr, sizeof gerr) < 0)
            return terr(err, errlen, "%s%s.schema: %s", field, sub, gerr);
    } else if (mock_content_object(system, prompt, seed, &v) < 0) {
        return terr(err, errlen, "out of memory");
    }
    *out = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    return *out ? 1 : terr(err, errlen, "out of memory");
}

int mock_content_response_format(const cJSON *rf, const char *system, const char *prompt,
                                 uint64_t seed, char **out, char *err, size_t errlen) {
    return structured(rf, 0, "response_format", system, prompt, seed, out, err, errlen);
}

int mock_content_text_format(const cJSON *format, const char *system, const char *prompt,
                             uint64_t seed, char **out, char *err, size_t errlen) {
    return structured(format, 1, "text.format", system, prompt, seed, out, err, errlen);
}

/* One tool of the request, in whichever shape it came. */
struct tool {
    const char *name, *description;
    const cJSON *schema; /* NULL: no parameters */
};

static int read_tool(const cJSON *t, int i, struct tool *out, char *err, size_t errlen) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
    const cJSON *src = cJSON_IsObject(fn) ? fn : t;
    int openai = cJSON_IsObject(fn) || (cJSON_IsString(type) && strcmp(type->valuestring,
                                                                       "function") == 0);
    if (!cJSON_IsObject(t)) return terr(err, errlen, "tools[%d]: expected an object", i);
    /* The Responses API's function tools are flat: {"type":"function","name","parameters"}. */
    int flat = openai && !cJSON_IsObject(fn) && cJSON_GetObjectItemCaseSensitive(t, "name");
    if (openai && !cJSON_IsObject(fn) && !flat)
        return terr(err, errlen, "tools[%d]: missing function object", i);
    if (flat) openai = 2;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(src, "name");
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0')
        return terr(err, errlen, "tools[%d]: missing %s", i, openai == 1 ? "function.name" : "name");
    if (strlen(name->valuestring) >= sizeof ((struct mock_tool_call *)0)->name)
        return terr(err, errlen, "tools[%d]: name longer than 127 bytes", i);
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(src, "description");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(src, openai ? "parameters"
                                                                       : "input_schema");
    if (schema != NULL && !cJSON_IsObject(schema) && !cJSON_IsBool(schema))
        return terr(err, errlen, "tools[%d]: %s must be an object", i,
                    openai == 1 ? "function.parameters" : openai ? "parameters" : "input_schema");
    out->name = name->valuestring;
    out->description = cJSON_IsString(desc) ? desc->valuestring : "";
    out->schema = schema;
    return 0;
}

/* A hosted tool the server runs itself (Responses {"type":"web_search"}, Anthropic
 * {"type":"web_search_20250305"}, ...): accepted as given, never called by the mock. */
static int builtin(const cJSON *t) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
    return cJSON_IsString(type) && strcmp(type->valuestring, "function") != 0 &&
           strcmp(type->valuestring, "custom") != 0;
}

static const char *const weak_words[] = {"get", "set", "the", "and", "for", "tool", "with", "from",
                                         "that", "this", "into", "your", "when", "use", "list",
                                         "return", "returns", "given", "current", NULL};

static int weak(const char *w, size_t n) {
    for (size_t i = 0; weak_words[i]; i++)
        if (strlen(weak_words[i]) == n && strncasecmp(weak_words[i], w, n) == 0) return 1;
    return 0;
}

/* Points for each word of text (split at non-letters and camelCase) found in the prompt. */
static int score_words(const char *text, const char *prompt, int points, size_t min_len) {
    int score = 0;
    for (const char *p = text; *p;) {
        while (*p && !isalpha((unsigned char)*p)) p++;
        const char *w = p;
        if (*p) p++;
        while (*p && isalpha((unsigned char)*p) && !(isupper((unsigned char)*p) &&
                                                      islower((unsigned char)p[-1])))
            p++;
        size_t n = (size_t)(p - w);
        if (n < min_len || weak(w, n)) continue;
        char word[64];
        if (n >= sizeof word) n = sizeof word - 1;
        memcpy(word, w, n);
        word[n] = '\0';
        if (mock__find_ci(prompt, word, 1) != NULL) score += points;
    }
    return score;
}

enum { CH_AUTO, CH_NONE, CH_REQUIRED, CH_NAMED };

static int read_choice(const cJSON *tc, int *mode, const char **name, char *err, size_t errlen) {
    *mode = CH_AUTO;
    *name = NULL;
    if (tc == NULL || cJSON_IsNull(tc)) return 0;
    const char *t = NULL;
    if (cJSON_IsString(tc)) t = tc->valuestring;
    else if (cJSON_IsObject(tc)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(tc, "type");
        if (!cJSON_IsString(ty)) return terr(err, errlen, "tool_choice: missing type");
        t = ty->valuestring;
        if (strcmp(t, "function") == 0 || strcmp(t, "tool") == 0) {
            /* Chat's {"type":"function","function":{"name"}}; Responses' and Anthropic's carry
             * the name at the top. */
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            int nested = strcmp(t, "function") == 0 && cJSON_IsObject(fn);
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(nested ? fn : tc, "name");
            if (!cJSON_IsString(n))
                return terr(err, errlen, "tool_choice: missing %s",
                            strcmp(t, "function") == 0 && !cJSON_GetObjectItemCaseSensitive(tc,
                                "name") ? "function.name" : "name");
            *mode = CH_NAMED;
            *name = n->valuestring;
            return 0;
        }
    } else {
        return terr(err, errlen, "tool_choice: expected a string or an object");
    }
    if (strcmp(t, "auto") == 0) *mode = CH_AUTO;
    else if (strcmp(t, "none") == 0) *mode = CH_NONE;
    else if (strcmp(t, "required") == 0 || strcmp(t, "any") == 0) *mode = CH_REQUIRED;
    else return terr(err, errlen, "tool_choice: unknown type \"%s\"", t);
    return 0;
}

/* The arguments of tool t (index i of the request) into *out. 0, or -1 with err filled. */
static int make_call(const struct tool *t, int i, const char *system, const char *prompt,
                     uint64_t seed, struct mock_tool_call *out, char *err, size_t errlen) {
    static const char empty_text[] = "{\"type\":\"object\"}";
    cJSON *empty = t->schema ? NULL : cJSON_Parse(empty_text);
    const cJSON *schema = t->schema ? t->schema : empty;
    if (schema == NULL) return terr(err, errlen, "out of memory");
    char gerr[200];
    uint64_t s = seed ^ mock__fnv1a64(t->name, strlen(t->name));
    int rc = mock_schema_generate(schema, system, prompt, s, &out->input, gerr, sizeof gerr);
    cJSON_Delete(empty);
    if (rc < 0) return terr(err, errlen, "tools[%d] (%s): %s", i, t->name, gerr);
    out->arguments = cJSON_PrintUnformatted(out->input);
    if (out->arguments == NULL) {
        mock_tool_call_free(out);
        return terr(err, errlen, "out of memory");
    }
    snprintf(out->name, sizeof out->name, "%s", t->name);
    return 0;
}

int mock_tool_choose_n(const cJSON *tools, const cJSON *tool_choice, int parallel,
                       const char *system, const char *prompt, uint64_t seed,
                       struct mock_tool_call *out, size_t max, char *err, size_t errlen) {
    int mode, n, callable = 0, picked = 0;
    const char *want;
    struct tool chosen[MOCK_TOOL_CALLS_MAX];
    int at[MOCK_TOOL_CALLS_MAX], score[MOCK_TOOL_CALLS_MAX];
    if (max > MOCK_TOOL_CALLS_MAX) max = MOCK_TOOL_CALLS_MAX;
    if (!parallel && max > 1) max = 1;
    for (size_t k = 0; k < max; k++) memset(&out[k], 0, sizeof out[k]);
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (prompt == NULL) prompt = "";
    if (tools != NULL && !cJSON_IsArray(tools))
        return terr(err, errlen, "tools: expected an array");
    if (read_choice(tool_choice, &mode, &want, err, errlen) < 0) return -1;
    if (max == 0) return 0;
    n = cJSON_GetArraySize(tools);
    /* Every tool is read, so a broken one is reported even when another would be chosen. The
     * best-scoring ones are kept in order (best first, the earlier tool on a tie). */
    for (int i = 0; i < n; i++) {
        struct tool t = {0};
        if (builtin(cJSON_GetArrayItem(tools, i))) continue;
        if (read_tool(cJSON_GetArrayItem(tools, i), i, &t, err, errlen) < 0) return -1;
        callable++;
        int sc;
        if (mode == CH_NAMED) {
            if (picked > 0 || strcmp(t.name, want) != 0) continue;
            sc = 0;
        } else {
            sc = score_words(t.name, prompt, 3, 3) + score_words(t.description, prompt, 1, 5);
        }
        int pos = picked;
        while (pos > 0 && score[pos - 1] < sc) pos--;
        if ((size_t)pos >= max) continue;
        if ((size_t)picked < max) picked++;
        for (int k = picked - 1; k > pos; k--)
            chosen[k] = chosen[k - 1], at[k] = at[k - 1], score[k] = score[k - 1];
        chosen[pos] = t, at[pos] = i, score[pos] = sc;
    }
    if (mode == CH_NAMED && picked == 0)
        return terr(err, errlen, "tool_choice: no tool named \"%s\"", want);
    if (mode == CH_REQUIRED && callable == 0)
        return terr(err, errlen, "tool_choice requires a tool but tools is empty%s",
                    n > 0 ? " of function tools (only hosted ones)" : "");
    if (mode == CH_NONE || callable == 0 || (mode == CH_AUTO && score[0] < 2)) return 0;
    /* The best is called; further ones only when the prompt names them (a name word: 3). */
    int calls = 1;
    while (calls < picked && score[calls] >= 3) calls++;
    for (int k = 0; k < calls; k++) {
        if (make_call(&chosen[k], at[k], system, prompt, seed, &out[k], err, errlen) < 0) {
            for (int q = 0; q < k; q++) mock_tool_call_free(&out[q]);
            return -1;
        }
    }
    return calls;
}

int mock_tool_choose(const cJSON *tools, const cJSON *tool_choice, const char *system,
                     const char *prompt, uint64_t seed, struct mock_tool_call *out, char *err,
                     size_t errlen) {
    int rc = mock_tool_choose_n(tools, tool_choice, 0, system, prompt, seed, out, 1, err, errlen);
    return rc > 0 ? 1 : rc;
}

void mock_tool_call_free(struct mock_tool_call *c) {
    if (c == NULL) return;
    cJSON_free(c->arguments);
    cJSON_Delete(c->input);
    memset(c, 0, sizeof *c);
}

void mock_tool_call_id(const char *prefix, uint64_t seed, const char *prompt, unsigned index,
                       char *buf, size_t cap) {
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char id[25];
    uint64_t h = mock__mix64(seed ^ mock__fnv1a64(prompt ? prompt : "", prompt ? strlen(prompt) : 0)
                             ^ ((uint64_t)index << 32));
    for (int i = 0; i < 24; i++) {
        if (i % 8 == 0) h = mock__mix64(h + (uint64_t)i);
        id[i] = digits[h % 62];
        h /= 62;
    }
    id[24] = '\0';
    if (cap > 0) snprintf(buf, cap, "%s%s", prefix ? prefix : "", id);
}
