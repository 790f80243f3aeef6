/*
 * content.h - deterministic reply text for the mock LLM server (internal to cx_mock).
 *
 * The shape of every reply is fixed by /work/helpers/CONTENT_CONTRACT.md (mirrored in the README):
 * install plans, error diagnoses and hardware advice are short markdown with exactly one
 * ```json fenced object; anything else gets a plain chat answer. The same (prompt, seed) always
 * gives the same bytes; the seed only changes wording, never the commands of a plan.
 */
#ifndef MOCK_CONTENT_H
#define MOCK_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A generated reply. text is NUL-terminated and owned by the struct (mock_content_free). */
struct mock_content {
    char *text;
    unsigned prompt_tokens, completion_tokens;
};

/*
 * Fills *out with the deterministic reply for (system, last user message, seed).
 * system and prompt are borrowed and may be NULL (treated as empty). pad_to: pad the reply to at
 * least this many bytes (0 = none); the padding goes inside the explanation (or the plain answer)
 * so the JSON stays valid. dangerous: replace one command of an install plan by a dangerous one
 * (no effect on other workloads). prompt_tokens counts system + prompt; completion_tokens counts
 * text with the same rule as mock_content_split, so a stream of pieces has exactly
 * completion_tokens chunks. Returns 0, or -1 when out of memory (*out is then zeroed).
 * Threads: any thread (no shared state).
 */
int mock_content_generate(const char *system, const char *prompt, uint64_t seed, size_t pad_to,
                          int dangerous, struct mock_content *out);

/* Frees what mock_content_generate put in c and zeroes it; accepts NULL. Threads: any thread. */
void mock_content_free(struct mock_content *c);

/*
 * Approximate token count of text[0..len): the number of pieces mock_content_split would make.
 * A piece is optional leading whitespace followed by either a run of up to 8 word bytes (ASCII
 * letters, digits, '_', or a whole UTF-8 sequence) or one punctuation byte; whitespace at the
 * very end joins the last piece. Deterministic; text may be NULL when len is 0.
 * Threads: any thread.
 */
unsigned mock_count_tokens(const char *text, size_t len);

/*
 * Splits text[0..len) into stream pieces. Fills up to max start offsets into starts and returns
 * how many it filled (piece i spans starts[i]..starts[i+1], the last one to len). When the text
 * has more than max pieces, the last filled piece runs to the end. Pieces never split a UTF-8
 * sequence. starts == NULL (or max == 0) only counts: returns the total number of pieces.
 * Threads: any thread.
 */
size_t mock_content_split(const char *text, size_t len, size_t *starts, size_t max);

/* ---------------------------------------------------------------------------------------------
 * Prompt understanding.
 *
 * The project's own prompt shapes come first and keep their exact replies: "Diagnose error: T",
 * "Hardware check: C ...", "Install package: X" and "Analyze package X" (one name, sanitized to
 * [A-Za-z0-9.+_-]). Anything else is read as natural language: an install verb ("install",
 * "set up", "setup", "deploy", "provision"; weaker: "need", "want", "add") starts a list of
 * package names that runs until a clause ends ('.', '?', '!', ';', or a word such as "on",
 * "for", "with", "and configure"). Articles, "the package(s)", polite words, quotes
 * ('x', "x", `x`), commas and "and"/"or"/"plus" are skipped; `name=1.22*` and "name version
 * 1.22" pin a version. After a weak verb only names that look technical (known packages, quoted,
 * with a digit or one of . + _ - or a version) count, so "I need help" plans nothing. Stop words
 * are never packages.
 */
#define MOCK_PKG_NAME_MAX 64
#define MOCK_PKG_VERSION_MAX 32
#define MOCK_PROMPT_MAX_PKGS 16

enum mock_intent {
    MOCK_INTENT_CHAT,
    MOCK_INTENT_INSTALL,
    MOCK_INTENT_DIAGNOSE,
    MOCK_INTENT_HARDWARE
};

struct mock_pkg_ref {
    char name[MOCK_PKG_NAME_MAX + 1];       /* lower case for natural prompts */
    char version[MOCK_PKG_VERSION_MAX + 1]; /* "" when none was asked for */
};

/* What a prompt asks for. */
struct mock_prompt {
    int intent;                 /* enum mock_intent; INSTALL always has n_pkgs > 0 */
    const char *arg;            /* DIAGNOSE/HARDWARE: the text after the key (points into prompt) */
    int install_asked;          /* an install verb was seen, even if no package name followed */
    int wants_json;             /* the system prompt or the prompt mentions JSON */
    size_t n_pkgs;
    struct mock_pkg_ref pkgs[MOCK_PROMPT_MAX_PKGS]; /* in prompt order, no duplicates */
};

/*
 * Fills *out from (system, prompt); both borrowed, NULL = empty. Deterministic, allocates
 * nothing, cannot fail. out->arg points into prompt. Threads: any thread.
 */
void mock_prompt_parse(const char *system, const char *prompt, struct mock_prompt *out);

/*
 * Text replies for the cases above (mock_content_generate): one package gives the plan it always
 * gave; several give one plan ("package" = the first, "packages" = all, commands of each after
 * one "apt-get update"); a pinned version adds "version" and pins the install command. Unknown
 * intent (no package, a question, chit-chat) gets the chat answer, or, when the request mentions
 * JSON, the same answer in a ```json block {"commands": [], "explanation": ...} so a client that
 * parses the block still finds the fields it asked for.
 */

/*
 * Structured output without a schema (OpenAI response_format {"type":"json_object"}): the object
 * the text reply's fenced block would hold (plan, diagnosis, hardware advice), or {"answer": T}
 * for chat. *out gets a new tree (cJSON_Delete; cJSON_PrintUnformatted it for the "content"
 * string). Returns 0, or -1 when out of memory (*out NULL). Threads: any thread.
 */
int mock_content_object(const char *system, const char *prompt, uint64_t seed, cJSON **out);

/* ---------------------------------------------------------------------------------------------
 * JSON Schema: values for structured output and tool arguments, and a validator.
 *
 * Supported keywords (generation and validation): boolean schemas, type (one or a list; the first
 * non-null one is generated), enum, const, properties, required, additionalProperties (false or
 * a schema), minProperties/maxProperties, items (a schema, or a list = tuple), prefixItems,
 * additionalItems (after a tuple), minItems/maxItems, uniqueItems, minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum (numbers, or draft-04 booleans), multipleOf,
 * minLength/maxLength (code points), pattern, format (date-time, date, time, email, uri, uuid,
 * ipv4, hostname: generated, not validated), anyOf/oneOf (generation takes the first branch, so
 * a oneOf whose branches overlap may not validate), allOf (generation merges every branch into
 * the parent: properties united, required concatenated), not (validation only), $ref to "#",
 * "#/$defs/..." and "#/definitions/..." (JSON pointers, ~0 ~1 escapes; siblings of a $ref are
 * ignored by generation). Not supported: patternProperties, contains, if/then/else,
 * dependentRequired/dependentSchemas, propertyNames, remote $refs. Patterns are generated for
 * the simple subset ^ $ literals . [a-z] [^x] \d \w \s \. and the quantifiers ? * + {n} {n,}
 * {n,m}; anything else (groups, alternation) falls back to the fixed string "sample". The
 * validator matches patterns with POSIX extended regexes after translating \d \w \s.
 * Generated arrays have 1-3 items unless bounds, a tuple or the prompt (packages, commands) say
 * otherwise, at most 64; every listed property is filled, optional ones included (below depth 8,
 * for recursive schemas, only required ones), never additional ones unless minProperties asks.
 *
 * Strings follow the property name: "package"/"name"/"pkg" gets the first package understood
 * from the prompt, "packages" (array) all of them, "commands" (array) the install plan's
 * commands ("command" the install command), "explanation"/"description"/"reason"/"summary" the
 * plan's explanation, "query"/"prompt"/"question" the prompt itself, "location"/"city" a
 * capitalised place after "in" in the prompt, an enum value named in the prompt is preferred.
 * Everything else is seeded: the same (schema, system, prompt, seed) always gives the same value.
 */

/*
 * Generates a value valid against schema (borrowed; a cJSON tree of the schema, $refs resolved
 * against it as the root). system/prompt borrowed, may be NULL. *out gets a new tree
 * (cJSON_Delete). Returns 0, or -1 with err naming the problem ("$ref '#/$defs/x' not found",
 * "schema nesting deeper than 32", "out of memory"); *out is then NULL. err may be NULL.
 * Threads: any thread.
 */
int mock_schema_generate(const cJSON *schema, const char *system, const char *prompt,
                         uint64_t seed, cJSON **out, char *err, size_t errlen);

/*
 * Checks value (borrowed) against schema (borrowed, the root for $refs). Returns 0 when valid,
 * -1 when not, with err holding the JSON path of the first failure and why
 * ("$.packages[1]: expected type string", "$: missing required property \"commands\"");
 * an unsupported or broken schema (bad $ref, a pattern POSIX cannot compile) is also -1, naming
 * the keyword. Threads: any thread.
 */
int mock_schema_validate(const cJSON *schema, const cJSON *value, char *err, size_t errlen);

/*
 * The reply content for an OpenAI request's response_format (borrowed, the member as sent):
 *   {"type":"text"}                      -> 0, *out NULL: answer with mock_content_generate.
 *   {"type":"json_object"}               -> 1, *out = mock_content_object's object as JSON text.
 *   {"type":"json_schema","json_schema":{"name":N,"schema":S,"strict":B}}
 *                                        -> 1, *out = mock_schema_generate(S) as JSON text (no
 *                                           schema: like json_object).
 * *out is compact JSON (cJSON_free) for choices[0].message.content; stream it in the pieces of
 * mock_content_split like any text, and count completion tokens with mock_count_tokens on it.
 * Returns -1 with err naming the field ("response_format.type: unknown \"xml\"",
 * "response_format.json_schema.name: missing", a schema error) for the server's 400.
 * Threads: any thread.
 */
int mock_content_response_format(const cJSON *response_format, const char *system,
                                 const char *prompt, uint64_t seed, char **out, char *err,
                                 size_t errlen);

/*
 * The same for the Responses API's text.format, whose json_schema form is flat:
 * {"type":"json_schema","name":N,"schema":S,"strict":B} (schema required there). Errors name
 * "text.format..." ("text.format.name: missing"). Threads: any thread.
 */
int mock_content_text_format(const cJSON *format, const char *system, const char *prompt,
                             uint64_t seed, char **out, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------------
 * Tool calls.
 *
 * tools is the request's array in any API's shape: OpenAI chat {"type":"function","function":
 * {"name","description","parameters"}}, Responses {"type":"function","name","description",
 * "parameters"} or Anthropic {"name","description","input_schema"} (a mix is accepted); a tool
 * whose type is neither "function" nor "custom" is a hosted one (web_search, bash_20250124...)
 * and is never called. tool_choice (borrowed, may be NULL = auto):
 *   OpenAI:    "auto" | "none" | "required" | {"type":"function","function":{"name":N}}
 *   Anthropic: {"type":"auto"} | {"type":"any"} | {"type":"none"} | {"type":"tool","name":N}
 * auto calls the tool whose name or description words best match the prompt and calls none when
 * nothing matches; required/any call the best match (the first tool on a tie or no match); a
 * named tool is always called. The arguments come from mock_schema_generate on the tool's
 * parameters / input_schema (missing = an empty object), so they validate against it.
 *
 * How the server answers with them:
 *   OpenAI non-streaming: choices[0].message = {"role":"assistant","content":null,"tool_calls":
 *     [{"id": mock_tool_call_id("call_", ...), "type":"function","function":{"name": c.name,
 *     "arguments": c.arguments}}]}, finish_reason "tool_calls".
 *   OpenAI streaming: a first delta {"role":"assistant","tool_calls":[{"index":0,"id":...,
 *     "type":"function","function":{"name":...,"arguments":""}}]}, then one delta per piece of
 *     mock_content_split(c.arguments) as {"tool_calls":[{"index":0,"function":{"arguments":
 *     PIECE}}]}, then finish_reason "tool_calls". Pieces never split a UTF-8 sequence; JSON
 *     escapes inside a string may be split, which is what real servers do too.
 *   Anthropic non-streaming: content = [{"type":"tool_use","id": mock_tool_call_id("toolu_",
 *     ...),"name": c.name,"input": c.input}], stop_reason "tool_use".
 *   Anthropic streaming: content_block_start {"type":"tool_use","id","name","input":{}}, then
 *     content_block_delta {"type":"input_json_delta","partial_json": PIECE} per piece of
 *     c.arguments, content_block_stop, message_delta stop_reason "tool_use".
 *   Usage: completion/output tokens = mock_count_tokens(c.arguments).
 * After a turn that carries a tool result (OpenAI role "tool", Anthropic "tool_result" blocks)
 * the model should answer in text: pass tool_choice "none" (or skip this call) for that turn.
 * Several calls in one reply (mock_tool_choose_n) are written call after call: tool_calls[k] /
 * content block k / output item k, each streamed whole (named, then its argument pieces) before
 * the next (proto_tools.c).
 */
struct mock_tool_call {
    char name[128];  /* the tool's name */
    char *arguments; /* compact JSON text of the arguments (malloc'd; mock_tool_call_free) */
    cJSON *input;    /* the same arguments as a tree (mock_tool_call_free) */
};

/*
 * Chooses the tool to call. tools, tool_choice, system, prompt borrowed. Returns 1 with *out
 * filled when a tool is called, 0 when the reply should be text (*out zeroed), -1 with err naming
 * what is wrong ("tools[1]: missing function.name", "tool_choice: no tool named \"x\"",
 * "tool_choice: unknown type \"y\"", "out of memory"): the server answers 400 with it.
 * Deterministic for (tools, tool_choice, system, prompt, seed). Threads: any thread.
 */
int mock_tool_choose(const cJSON *tools, const cJSON *tool_choice, const char *system,
                     const char *prompt, uint64_t seed, struct mock_tool_call *out, char *err,
                     size_t errlen);

/*
 * Parallel tool calls: up to max (at most MOCK_TOOL_CALLS_MAX) calls into out[0..max), best match
 * first. The best tool is called as mock_tool_choose would; with parallel (OpenAI
 * parallel_tool_calls, not Anthropic disable_parallel_tool_use) each further tool whose name
 * words the prompt also contains (3 points or more: "the weather in Paris and the package info
 * of nginx") is called too, in score order. A named tool_choice calls that one alone. Returns the
 * number of calls (0: reply in text) or -1 with err as above; on -1 nothing is left to free.
 * Threads: any thread.
 */
#define MOCK_TOOL_CALLS_MAX 4
int mock_tool_choose_n(const cJSON *tools, const cJSON *tool_choice, int parallel,
                       const char *system, const char *prompt, uint64_t seed,
                       struct mock_tool_call *out, size_t max, char *err, size_t errlen);

/* Frees what mock_tool_choose put in c and zeroes it; accepts NULL. Threads: any thread. */
void mock_tool_call_free(struct mock_tool_call *c);

/*
 * Writes a deterministic call id: prefix ("call_" for OpenAI, "toolu_" for Anthropic) followed by
 * 24 characters from (seed, prompt, index). buf gets at most cap bytes, NUL-terminated; 32 bytes
 * always suffice for those prefixes. Threads: any thread.
 */
void mock_tool_call_id(const char *prefix, uint64_t seed, const char *prompt, unsigned index,
                       char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
