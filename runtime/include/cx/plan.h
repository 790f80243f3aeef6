/*
 * cx/plan.h - merging per-package install plans into one (the seed's "merge plans" step).
 *
 * Each package's reply carries a "commands" array. The merged plan runs one package-index
 * update first (the first update command seen, in its original spelling: "sudo apt-get update",
 * "apt update", "sudo apt update -y" ... all count as one), then every other command in the
 * order of the plans and within each plan, with exact duplicates (after trimming surrounding
 * whitespace) removed, first occurrence kept. Empty or whitespace-only commands are dropped.
 * Merging does not validate: run cx_validate_commands on the inputs or on the result.
 */
#ifndef CX_PLAN_H
#define CX_PLAN_H

#include <stddef.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON; /* <cjson/cJSON.h> */

struct cx_plan {
    char **commands; /* owned, n NUL-terminated strings */
    size_t n;
};

/*
 * Merges n_plans "commands" arrays. commands_arrays: borrowed; an element may be NULL (a failed
 * package, skipped). out: filled on success (release with cx_plan_clear); zeroed on failure.
 * Errors: CX_EINVAL (NULL out, NULL commands_arrays with n_plans > 0), CX_EPROTO ("plan 2 is
 * not an array", "plan 2 command 3 is not a string"), CX_ENOMEM.
 * Threads: any thread.
 */
CX_API int cx_plan_merge(const struct cJSON *const *commands_arrays, size_t n_plans,
                         struct cx_plan *out, struct cx_errinfo *ei);

/* Frees the commands and zeroes p. Accepts NULL. Threads: the thread owning p. */
CX_API void cx_plan_clear(struct cx_plan *p);

/*
 * The plan as a compact JSON array of strings, e.g. ["sudo apt-get update","..."].
 * Returned: free with cx_free; NULL on CX_ENOMEM or NULL p.
 * Threads: any thread.
 */
CX_API char *cx_plan_to_json(const struct cx_plan *p);

/*
 * True (1) when cmd is a package-index update: optional sudo, then apt-get or apt, then
 * "update", then only options (e.g. -y, -qq). Threads: any thread.
 */
CX_API int cx_plan_is_update(const char *cmd);

#ifdef __cplusplus
}
#endif
#endif /* CX_PLAN_H */
