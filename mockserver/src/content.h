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

#ifdef __cplusplus
}
#endif

#endif
