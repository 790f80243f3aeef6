/*
 * cache_index.c - the cache's in-memory index: entries, the key and id hash chains, the
 * embedding matrix and the similarity scan, plus the key hashes that address them.
 * With entity matching (index->entity) every entry also carries its prompt's entities and
 * residual vector (cx_embed_analyze): the matrix holds the residual vectors and a row competes
 * in a scan only if its candidate hash (group hash mixed with the entities' hash) is the
 * query's; the caller checks the winner's entity string exactly.
 *
 * It does no locking of its own (callers hold the cache's big-reader lock as each function
 * says), no SQL and no I/O.
 */
#include <stdio.h>
#include <string.h>

#include "cache_internal.h"

static uint64_t fnv_more(uint64_t h, const char *s, int with_nul) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    if (with_nul) h *= 1099511628211ULL; /* h ^= 0 is a no-op */
    return h;
}

uint64_t cx__cache_group_hash(const char *provider, const char *model, const char *sys_hash) {
    uint64_t h = 1469598103934665603ULL;
    h = fnv_more(h, provider, 1);
    h = fnv_more(h, model, 1);
    return fnv_more(h, sys_hash, 1);
}

uint64_t cx__cache_key_hash(uint64_t gh, const char *prompt) { return fnv_more(gh, prompt, 0); }

/* SHA-256 hex of the system prompt, memoised per thread: callers repeat the same one. */
static _Thread_local struct {
    size_t len;
    int valid;
    char hex[65];
    char text[SYS_MEMO_MAX];
} tls_sys;

void cx__cache_system_hash(const char *sys, char out[65]) {
    size_t len = strlen(sys);
    if (len < SYS_MEMO_MAX) {
        if (tls_sys.valid && tls_sys.len == len && memcmp(tls_sys.text, sys, len) == 0) {
            memcpy(out, tls_sys.hex, 65);
            return;
        }
        cx__sha256_hex(sys, len, out);
        memcpy(tls_sys.text, sys, len);
        memcpy(tls_sys.hex, out, 65);
        tls_sys.len = len;
        tls_sys.valid = 1;
        return;
    }
    cx__sha256_hex(sys, len, out);
}

/* ---- entries and the index ---- */

/* The candidate hash of a group's entries with entities ents. */
uint64_t cx__cache_cand_hash(uint64_t gh, const char *ents) {
    return (gh ^ cx__fnv1a64(ents, strlen(ents))) * 0x9E3779B97F4A7C15ULL;
}

/* A new entry (id 0, stamps 0) holding copies of its strings; entity: also analyses the prompt
 * (entities, residual vector, candidate hash). emb is the caller's to fill. NULL: no memory. */
struct entry *cx__cache_entry_new(const char *provider, const char *model, const char *sys_hash,
                                  const char *prompt, const char *json, size_t json_len,
                                  int entity) {
    size_t lp = strlen(provider) + 1, lm = strlen(model) + 1, lq = strlen(prompt) + 1;
    if (json_len > SIZE_MAX / 4 || lq > SIZE_MAX / 4) return NULL;
    size_t le = entity ? CX_EMBED_ENTITIES_CAP(lq) : 1;
    struct entry *e = cx__malloc(sizeof *e + lp + lm + lq + json_len + 1 + le);
    if (e == NULL) return NULL;
    memset(e, 0, sizeof *e);
    char *s = (char *)(e + 1);
    e->provider = memcpy(s, provider, lp);
    s += lp;
    e->model = memcpy(s, model, lm);
    s += lm;
    e->prompt = memcpy(s, prompt, lq);
    s += lq;
    e->json = memcpy(s, json, json_len);
    e->json[json_len] = '\0';
    e->json_len = json_len;
    s += json_len + 1;
    e->ents = s;
    e->ents[0] = '\0';
    snprintf(e->system_hash, sizeof e->system_hash, "%s", sys_hash);
    e->ghash = cx__cache_group_hash(provider, model, sys_hash);
    e->khash = cx__cache_key_hash(e->ghash, prompt);
    e->cand = e->ghash;
    if (entity) {
        (void)cx_embed_analyze(prompt, lq - 1, e->ents, le, e->rv); /* le always suffices */
        e->cand = cx__cache_cand_hash(e->ghash, e->ents);
    }
    return e;
}

void cx__cache_index_free(struct index *x) {
    if (x == NULL) return;
    for (size_t i = 0; i < x->n; i++) cx__free(x->ents[i]);
    cx__free(x->ents);
    cx__free(x->cand);
    cx__free(x->mt);
    cx__free(x->kb);
    cx__free(x->ib);
    cx__free(x);
}

static size_t pow2_at_least(size_t n) {
    size_t b = 64;
    while (b < n) b *= 2;
    return b;
}

struct index *cx__cache_index_new(size_t cap, int entity) {
    struct index *x = cx__calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    x->cap = cap < 16 ? 16 : cap;
    x->nb = pow2_at_least(x->cap * 2);
    x->ents = cx__calloc(x->cap, sizeof *x->ents);
    x->entity = entity;
    x->cand = cx__calloc(x->cap, sizeof *x->cand);
    x->mt = cx__calloc(x->cap * CX_EMBED_DIM, sizeof *x->mt);
    x->kb = cx__calloc(x->nb, sizeof *x->kb);
    x->ib = cx__calloc(x->nb, sizeof *x->ib);
    if (!x->ents || !x->cand || !x->mt || !x->kb || !x->ib) {
        cx__cache_index_free(x);
        return NULL;
    }
    return x;
}

static size_t id_bucket(const struct index *x, int64_t id) {
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 20) & (x->nb - 1);
}

struct entry *cx__cache_find_id(const struct index *x, int64_t id) {
    for (struct entry *e = x->ib[id_bucket(x, id)]; e; e = e->inext)
        if (e->id == id) return e;
    return NULL;
}

static int key_equal(const struct entry *e, uint64_t kh, const char *provider, const char *model,
                     const char *sys_hash, const char *prompt) {
    return e->khash == kh && strcmp(e->prompt, prompt) == 0 &&
           strcmp(e->system_hash, sys_hash) == 0 && strcmp(e->model, model) == 0 &&
           strcmp(e->provider, provider) == 0;
}

struct entry *cx__cache_find_key(const struct index *x, uint64_t kh, const char *provider,
                                 const char *model, const char *sys_hash, const char *prompt) {
    for (struct entry *e = x->kb[kh & (x->nb - 1)]; e; e = e->knext)
        if (key_equal(e, kh, provider, model, sys_hash, prompt)) return e;
    return NULL;
}

/* Grows x to hold at least `need` rows; 0 or CX_ENOMEM (x unchanged). */
int cx__cache_index_reserve(struct index *x, size_t need) {
    if (need <= x->cap) return 0;
    size_t cap = x->cap * 2;
    while (cap < need) cap *= 2;
    size_t nb = pow2_at_least(cap * 2);
    struct entry **ents = cx__calloc(cap, sizeof *ents);
    uint64_t *gh = cx__calloc(cap, sizeof *gh);
    float *mt = cx__calloc(cap * CX_EMBED_DIM, sizeof *mt);
    struct entry **kb = cx__calloc(nb, sizeof *kb), **ib = cx__calloc(nb, sizeof *ib);
    if (!ents || !gh || !mt || !kb || !ib) {
        cx__free(ents);
        cx__free(gh);
        cx__free(mt);
        cx__free(kb);
        cx__free(ib);
        return CX_ENOMEM;
    }
    memcpy(ents, x->ents, x->n * sizeof *ents);
    memcpy(gh, x->cand, x->n * sizeof *gh);
    for (int d = 0; d < CX_EMBED_DIM; d++)
        memcpy(mt + (size_t)d * cap, x->mt + (size_t)d * x->cap, x->n * sizeof *mt);
    cx__free(x->ents);
    cx__free(x->cand);
    cx__free(x->mt);
    cx__free(x->kb);
    cx__free(x->ib);
    x->ents = ents;
    x->cand = gh;
    x->mt = mt;
    x->kb = kb;
    x->ib = ib;
    x->cap = cap;
    x->nb = nb;
    for (size_t i = 0; i < x->n; i++) {
        struct entry *e = x->ents[i];
        size_t kbk = e->khash & (nb - 1), ibk = id_bucket(x, e->id);
        e->knext = kb[kbk];
        kb[kbk] = e;
        e->inext = ib[ibk];
        ib[ibk] = e;
    }
    return 0;
}

/* Adds e (its id set) as a new row; the caller reserved room. */
void cx__cache_index_add(struct index *x, struct entry *e) {
    CX_ASSERT(x->n < x->cap);
    size_t r = x->n++;
    e->row = r;
    x->ents[r] = e;
    x->cand[r] = e->cand;
    const float *v = x->entity ? e->rv : e->emb;
    for (int d = 0; d < CX_EMBED_DIM; d++) x->mt[(size_t)d * x->cap + r] = v[d];
    size_t kbk = e->khash & (x->nb - 1), ibk = id_bucket(x, e->id);
    e->knext = x->kb[kbk];
    x->kb[kbk] = e;
    e->inext = x->ib[ibk];
    x->ib[ibk] = e;
}

/* Unlinks e and moves the last row into its place; returns e (not freed). */
struct entry *cx__cache_index_remove(struct index *x, struct entry *e) {
    struct entry **pp = &x->kb[e->khash & (x->nb - 1)];
    while (*pp != e) pp = &(*pp)->knext;
    *pp = e->knext;
    pp = &x->ib[id_bucket(x, e->id)];
    while (*pp != e) pp = &(*pp)->inext;
    *pp = e->inext;
    size_t r = e->row, last = --x->n;
    if (r != last) {
        struct entry *m = x->ents[last];
        x->ents[r] = m;
        x->cand[r] = m->cand;
        m->row = r;
        for (int d = 0; d < CX_EMBED_DIM; d++)
            x->mt[(size_t)d * x->cap + r] = x->mt[(size_t)d * x->cap + last];
    }
    x->ents[last] = NULL;
    return e;
}

/*
 * The similarity scan: the query vector is sparse (one bucket per distinct token), so scores are
 * accumulated a dimension at a time over contiguous matrix rows (vectorisable), a chunk of rows
 * at a time. Only rows whose candidate hash is `cand` compete. Caller holds c->lock (read).
 */
struct entry *cx__cache_scan_similar(const struct index *x, uint64_t cand, const float *q,
                                     float *best_out) {
    int nz[CX_EMBED_DIM];
    float qv[CX_EMBED_DIM];
    int m = 0;
    for (int d = 0; d < CX_EMBED_DIM; d++)
        if (q[d] != 0.0f) {
            nz[m] = d;
            qv[m] = q[d];
            m++;
        }
    if (m == 0 || x->n == 0) return NULL;
    float sc[SCAN_CHUNK];
    float best = -2.0f;
    size_t bi = SIZE_MAX;
    for (size_t base = 0; base < x->n; base += SCAN_CHUNK) {
        size_t len = x->n - base < SCAN_CHUNK ? x->n - base : SCAN_CHUNK;
        const float *restrict col = x->mt + (size_t)nz[0] * x->cap + base;
        float w = qv[0];
        for (size_t i = 0; i < len; i++) sc[i] = w * col[i];
        for (int j = 1; j < m; j++) {
            col = x->mt + (size_t)nz[j] * x->cap + base;
            w = qv[j];
            for (size_t i = 0; i < len; i++) sc[i] += w * col[i];
        }
        const uint64_t *g = x->cand + base;
        for (size_t i = 0; i < len; i++)
            if (g[i] == cand && sc[i] > best) {
                best = sc[i];
                bi = base + i;
            }
    }
    if (bi == SIZE_MAX) return NULL;
    *best_out = best;
    return x->ents[bi];
}
