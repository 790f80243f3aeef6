/*
 * cx/embed.h - the hashed-token text embedding the semantic cache compares prompts with.
 *
 * A prompt becomes a CX_EMBED_DIM-dimensional float vector: the text is split into tokens
 * (maximal runs of ASCII letters and digits, lowercased; every other byte separates tokens),
 * each token's FNV-1a 64-bit hash picks a bucket (hash mod CX_EMBED_DIM) and a sign (bit 63),
 * the signed counts are summed per bucket and the vector is L2-normalised. Text without tokens
 * gives the zero vector, whose cosine with anything is 0. Deterministic across processes and
 * machines (the vectors are stored in SQLite and compared with those of other processes).
 *
 * cx_embed_analyze is the entity-aware view the cache matches on instead (issue 13): the
 * entities a reply depends on (actions after synonyms, negation, package names, versions,
 * numbers, paths, distributions: every token that is not a known English word) as one
 * canonical string that must be identical, and a residual vector of the remaining content
 * words for similarity. See runtime/src/embed_match.c for the word lists and rules.
 */
#ifndef CX_EMBED_H
#define CX_EMBED_H

#include <stddef.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CX_EMBED_DIM 128

/* Embeds text (NUL-terminated; NULL is treated as ""). out: written, CX_EMBED_DIM floats.
 * Returns the number of tokens seen. Threads: any thread. */
CX_API size_t cx_embed(const char *text, float out[CX_EMBED_DIM]);

/* Like cx_embed for the first len bytes of text (which need not be NUL-terminated).
 * Threads: any thread. */
CX_API size_t cx_embed_n(const char *text, size_t len, float out[CX_EMBED_DIM]);

/* Cosine similarity of two CX_EMBED_DIM vectors; 0 when either is the zero vector.
 * For vectors from cx_embed this is their dot product. Threads: any thread. */
CX_API float cx_embed_cosine(const float *a, const float *b);

/* Bytes of `entities` that cx_embed_analyze needs at most for a text of len bytes. */
#define CX_EMBED_ENTITIES_CAP(len) (8 * (size_t)(len) + 32)

/*
 * Analyses the first len bytes of text (NULL: ""). Writes the entities - sorted, without
 * duplicates, separated by one space, NUL-terminated - to entities (cap bytes; cap >=
 * CX_EMBED_ENTITIES_CAP(len) always suffices) and the residual vector to residual (written,
 * CX_EMBED_DIM floats, unit length; dimension 0 is a constant bias, so prompts without content
 * words have cosine 1 with each other). Returns the length of the entity string, or (size_t)-1
 * when cap was too small (entities then holds no complete string).
 * Word order, case, repetition, fillers ("please", "how do I", "package"), inflections, the
 * synonyms listed in embed_match.c and single typos in known words do not change the result,
 * except past a word followed by ": " (an error message), where every word but articles,
 * pronouns, politeness and question words counts, in order (see embed_match.c).
 * Threads: any thread.
 */
CX_API size_t cx_embed_analyze(const char *text, size_t len, char *entities, size_t cap,
                               float residual[CX_EMBED_DIM]);

#ifdef __cplusplus
}
#endif
#endif /* CX_EMBED_H */
