/*
 * cx/parse.h - turning an LLM reply into a JSON object.
 *
 * Replies are markdown with one fenced ```json block holding an object (see the helpers'
 * CONTENT_CONTRACT). Models are not always that tidy, so extraction falls back step by step:
 *   1. the first fenced block whose info string is "json" (case-insensitive);
 *   2. else the first fenced block (any or no info string) whose body, trimmed, starts with '{';
 *   3. else the outermost balanced {...} in the text (braces inside JSON strings are skipped).
 * An unterminated fence runs to the end of the text.
 *
 * The parsed value must be an object; for system operations (install plans, fix commands,
 * hardware advice) it must also carry "commands": an array of strings (it may be empty).
 */
#ifndef CX_PARSE_H
#define CX_PARSE_H

#include <stddef.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON; /* <cjson/cJSON.h>; declared here so this header compiles on its own */

/*
 * Finds the JSON text inside content[0..len) following the order above. On success *off and *n
 * give the slice (trimmed of surrounding whitespace) within content; nothing is allocated.
 * content: borrowed, need not be NUL-terminated.
 * Returns 0, CX_ENOENT (no candidate JSON text), CX_EINVAL (NULL content with len > 0, NULL
 * off or n).
 * Threads: any thread.
 */
CX_API int cx_parse_extract_json(const char *content, size_t len, size_t *off, size_t *n);

/*
 * Extracts and parses the JSON object in content (NUL-terminated).
 * require_commands: non-zero to require a "commands" array whose every element is a string.
 * out: returned, free with cJSON_Delete; set only on success (untouched on failure).
 * Errors (ei->msg in quotes):
 *   CX_EINVAL  NULL content or out;
 *   CX_EPARSE  "no JSON block in response", "invalid JSON at offset N" (N: byte offset within
 *              content where cJSON stopped);
 *   CX_EPROTO  "response is not a JSON object", "\"commands\" missing",
 *              "\"commands\" is not an array", "commands[3] is not a string";
 *   CX_ETOOBIG content longer than CX_PARSE_MAX_BYTES;
 *   CX_ENOMEM.
 * Threads: any thread.
 */
#define CX_PARSE_MAX_BYTES ((size_t)16 * 1024 * 1024)
CX_API int cx_parse_response(const char *content, int require_commands, struct cJSON **out,
                             struct cx_errinfo *ei);

/*
 * Like cx_parse_response for a content of known length (need not be NUL-terminated).
 * Threads: any thread.
 */
CX_API int cx_parse_response_n(const char *content, size_t len, int require_commands,
                               struct cJSON **out, struct cx_errinfo *ei);

#ifdef __cplusplus
}
#endif
#endif /* CX_PARSE_H */
