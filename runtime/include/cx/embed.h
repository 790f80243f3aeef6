/*
 * cx/embed.h - the hashed-token text embedding the semantic cache compares prompts with.
 *
 * A prompt becomes a CX_EMBED_DIM-dimensional float vector: the text is split into tokens
 * (maximal runs of ASCII letters and digits, lowercased; every other byte separates tokens),
 * each token's FNV-1a 64-bit hash picks a bucket (hash mod CX_EMBED_DIM) and a sign (bit 63),
 * the signed counts are summed per bucket and the vector is L2-normalised. Text without tokens
 * gives the zero vector, whose cosine with anything is 0. Deterministic across processes and
 * machines (the vectors are stored in SQLite and compared with those of other processes).
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

#ifdef __cplusplus
}
#endif
#endif /* CX_EMBED_H */
