/*
 * content_internal.h - helpers shared by the content files (content.c, content_prompt.c,
 * content_schema.c, content_validate.c, content_tools.c) and not meant for the server: the
 * word search, the legacy package-name sanitizer, the install-plan builder and the small
 * deterministic hashes. The server uses content.h only.
 */
#ifndef MOCK_CONTENT_INTERNAL_H
#define MOCK_CONTENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "content.h"

#define MOCK_PLAN_MAX_CMDS 8 /* commands per table entry */

/* Copies tmpl into dst (cap bytes) with each "%s" replaced by arg (content.c). */
void mock__fill(char *dst, size_t cap, const char *tmpl, const char *arg);
/* obj[key] = val / an array of n strings; 0 or -1 when out of memory (content.c). */
int mock__add_str(cJSON *obj, const char *key, const char *val);
int mock__add_str_array(cJSON *obj, const char *key, const char *const *vals, size_t n);
/* A malloc'd copy of at most max_bytes of s, invalid UTF-8 and control bytes replaced by '?'
 * (newline and tab by ' '), never cutting a sequence, trailing spaces trimmed; NULL when out of
 * memory (content.c). */
char *mock__clean_copy(const char *s, size_t max_bytes);

/* Case-insensitive search for needle in hay; with at_word, only at a word start. Borrowed
 * pointers; returns a pointer into hay or NULL. Threads: any thread. */
const char *mock__find_ci(const char *hay, const char *needle, int at_word);

/* The first whitespace-delimited word at p as a package name for the project's own prompt shapes
 * ("Install package: X"): surrounding quotes and trailing punctuation removed, every byte that
 * is not [A-Za-z0-9.+_-] dropped, at most MOCK_PKG_NAME_MAX bytes, "unknown-package" when
 * nothing is left. Threads: any thread. */
void mock__package_name(const char *p, char name[MOCK_PKG_NAME_MAX + 1]);

/* The package a prompt names without asking to install it ("info about nginx", "the package
 * libfoo", "`mytool`"): the first known package name, else the word after "package", else the
 * first quoted name. 1 with *out filled, or 0 (content_prompt.c). Threads: any thread. */
int mock__prompt_mention(const char *prompt, struct mock_pkg_ref *out);

/* The install plan object {"package", ["packages"], ["version"], "commands", "explanation"} for
 * the packages of pr (pr->n_pkgs > 0), exactly what the fenced block of a text reply holds.
 * r picks the wording; dangerous swaps the last command for a dangerous one. Returns a new tree
 * (cJSON_Delete) or NULL when out of memory. The sentence the text reply puts before the block
 * goes into intro_buf (intro_cap bytes) unless it is NULL. Threads: any thread. */
cJSON *mock__plan_object(const struct mock_prompt *pr, uint64_t r, int dangerous, char *intro_buf,
                         size_t intro_cap);

/* The wording selector of mock_content_generate for (seed, prompt). Threads: any thread. */
uint64_t mock__content_r(uint64_t seed, const char *prompt);

/* The reply mock_content_generate would make for pr as a JSON object (a plan, a diagnosis,
 * hardware advice, or {"answer"} for chat), without the fence. NULL when out of memory. */
cJSON *mock__content_object(const struct mock_prompt *pr, const char *prompt, uint64_t r);

/* The schema a local "$ref" ("#", "#/$defs/x", any JSON pointer) names in root, or NULL
 * (content_schema.c). */
const cJSON *mock__schema_ref(const cJSON *root, const char *ref);

#endif
