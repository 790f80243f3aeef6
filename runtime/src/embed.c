/*
 * embed.c - the hashed-token text embedding (see cx/embed.h for the exact recipe).
 *
 * It only turns text into a normalised vector and compares two vectors; it keeps no state,
 * allocates nothing and knows nothing of the cache that stores the vectors.
 */
#include <math.h>
#include <string.h>

#include "cx/embed.h"
#include "cx_internal.h"

static int is_alnum_ascii(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

size_t cx_embed_n(const char *text, size_t len, float out[CX_EMBED_DIM]) {
    memset(out, 0, sizeof(float) * CX_EMBED_DIM);
    if (text == NULL) return 0;
    const unsigned char *s = (const unsigned char *)text;
    size_t tokens = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && !is_alnum_ascii(s[i])) i++;
        if (i >= len) break;
        /* FNV-1a 64 over the lowercased token, computed inline (same as cx__fnv1a64 on the
         * lowercased bytes) so no copy of the token is needed. */
        uint64_t h = 1469598103934665603ULL;
        while (i < len && is_alnum_ascii(s[i])) {
            unsigned char ch = s[i++];
            if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
            h ^= ch;
            h *= 1099511628211ULL;
        }
        out[h % CX_EMBED_DIM] += (h >> 63) ? -1.0f : 1.0f;
        tokens++;
    }
    double sum = 0.0;
    for (int d = 0; d < CX_EMBED_DIM; d++) sum += (double)out[d] * out[d];
    if (sum > 0.0) {
        float inv = (float)(1.0 / sqrt(sum));
        for (int d = 0; d < CX_EMBED_DIM; d++) out[d] *= inv;
    }
    return tokens;
}

size_t cx_embed(const char *text, float out[CX_EMBED_DIM]) {
    return cx_embed_n(text, text ? strlen(text) : 0, out);
}

float cx_embed_cosine(const float *a, const float *b) {
    if (a == NULL || b == NULL) return 0.0f;
    double dot = 0.0, na = 0.0, nb = 0.0;
    for (int d = 0; d < CX_EMBED_DIM; d++) {
        dot += (double)a[d] * b[d];
        na += (double)a[d] * a[d];
        nb += (double)b[d] * b[d];
    }
    if (na <= 0.0 || nb <= 0.0) return 0.0f;
    return (float)(dot / (sqrt(na) * sqrt(nb)));
}
