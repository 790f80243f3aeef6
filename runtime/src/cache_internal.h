/*
 * cache_internal.h - what the files of the semantic cache share (not a public header).
 *
 * The cache is four files: cache_brlock.c (the big-reader lock), cache_index.c (entries, the
 * in-memory index and the similarity scan), cache_store.c (the SQL side: schema, loading, the
 * group write, flushing access times) and cache.c (the public API, consistency and completion).
 * This header holds their structs and the cx__ functions they call across files; the contract
 * is cx/cache.h and the design essay is at the top of cache.c.
 */
#ifndef CX_CACHE_INTERNAL_H
#define CX_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "cx/cache.h"
#include "cx/embed.h"
#include "cx_internal.h"

#define SHARDS 16
#define SCAN_CHUNK 256
#define SYS_MEMO_MAX 2048

struct entry {
    struct entry *knext;          /* key-hash chain */
    struct entry *inext;          /* id chain */
    int64_t id;
    uint64_t khash;               /* fnv(provider \0 model \0 system_hash \0 prompt) */
    uint64_t ghash;               /* fnv(provider \0 model \0 system_hash) */
    uint64_t cand;                /* similarity candidates share it: ghash, mixed with the
                                     entities' hash when the index matches entities */
    size_t row;                   /* column in the embedding matrix */
    _Atomic uint64_t stamp;       /* last access, ns since the epoch */
    _Atomic uint64_t flushed;     /* stamp last known to be in SQLite */
    _Atomic uint32_t pend_hits;   /* hits not yet added to hit_count */
    char system_hash[65];
    size_t json_len;
    char *provider, *model, *prompt, *json; /* point into this allocation */
    char *ents;                   /* the prompt's entities (cx_embed_analyze), "" if unused */
    float emb[CX_EMBED_DIM];      /* the stored embedding column: cx_embed(prompt) */
    float rv[CX_EMBED_DIM];       /* the residual vector, when the index matches entities */
};

struct index {
    uint64_t gen;            /* database generation this index mirrors; 0: unknown */
    size_t n, cap;
    struct entry **ents;     /* [cap] */
    int entity;              /* 1: entity-aware matching (rv, cand), 0: the seed's (emb) */
    uint64_t *cand;          /* [cap], the entries' cand, scanned next to the scores */
    float *mt;               /* [CX_EMBED_DIM * cap], dimension-major: mt[d * cap + row]; each
                                row the entry's rv (entity) or emb */
    size_t nb;               /* buckets, a power of two */
    struct entry **kb, **ib; /* [nb] */
};

struct shard {
    _Atomic uint64_t exact, similar, miss;
    char pad[64 - 3 * sizeof(uint64_t)];
};

#define BR_SLOTS 64
struct br_slot {
    _Atomic long n;
    char pad[64 - sizeof(long)];
};
struct brlock {
    struct br_slot slot[BR_SLOTS];
    _Atomic int writer;
    pthread_mutex_t wmu;
};

struct cx_cache {
    struct cx_pool *pool;
    struct cx_cache_options opt;
    struct brlock lock;
    struct index *idx;             /* guarded by lock */
    _Atomic uint64_t next_refresh; /* cx_now_ns() of the next generation check */
    _Atomic int stale;             /* 1: check the generation at the next lookup */
    _Atomic uint64_t next_flush;
    _Atomic int dirty;             /* entries have unflushed stamps/hits */
    _Atomic int flush_inflight;
    _Atomic unsigned shard_seq;
    struct cx__mutex pmu;
    pthread_cond_t pcv;            /* signalled (under pmu) when outstanding drops to 0 */
    struct put *phead, *ptail;     /* guarded by pmu: puts waiting for a group write */
    int group_queued;              /* guarded by pmu: a group write is queued, not yet started */
    size_t outstanding;            /* guarded by pmu: puts queued whose done has not finished */
    _Atomic uint64_t min_gen;      /* 0, or a committed own generation the index must reach */
    struct shard shards[SHARDS];
    /* writer thread only: */
    uint64_t collected_hits, collected_misses;
    sqlite3_stmt *st_bump, *st_upsert, *st_count, *st_evict, *st_touch, *st_stats,
        *st_clear;
};

struct flush_rec {
    int64_t id;
    uint64_t stamp;
    uint32_t hits;
};

struct flush {
    struct flush_rec *recs;
    size_t n;
    uint64_t dhits, dmisses;
};

struct op {
    struct cx_cache *c;
    int rc;
    int finished;          /* guarded by mu */
    struct cx__mutex mu;
    pthread_cond_t cv;
    struct cx_errinfo ei;
    struct flush fl;
    int need_reload;       /* set by done: the index could not take the change */
    uint64_t gen;
    int async;             /* async flush: done frees the op */
};

/*
 * Puts are grouped: a put appends itself to c's pending list and, if no group write is queued,
 * queues one (it becomes that group's carrier). When the writer runs the group write it takes
 * every put pending at that moment and applies them in one savepoint: one flush, the upserts,
 * one count, one eviction, one generation bump. A group fails or succeeds as a whole (failures
 * inside a transaction are I/O-level, so they would hit every put anyway). Per-write savepoints
 * were the largest cost of a put under load; this shares one among all concurrent puts.
 * Every put is a heap-owned copy (struct put) that the group's done callback completes and frees,
 * so the caller need not wait: cx_cache_put is cx_cache_put_async plus a wait on a stack waiter.
 */
struct put_waiter {
    struct cx__mutex mu;
    pthread_cond_t cv;
    int finished;          /* guarded by mu */
    int rc, need_reload;   /* written before finished is set */
    struct cx_errinfo ei;
};

struct put {
    struct cx_cache *c;
    struct put *gnext;     /* next put of the same group */
    char sys_hash[65], prompt_hash[65];
    struct entry *e;       /* owns copies of provider, model, prompt, json; taken by the index */
    void (*done)(int rc, void *ud);
    void *ud;
    struct put_waiter *w;  /* a blocking put's waiter (on its caller's stack), else NULL */
    /* the group's carrier (the put that queued the group write): */
    struct put *glist;     /* the group, taken by the write callback */
    struct flush fl;
    int64_t *evicted;
    size_t nevicted;
    uint64_t gen;
    struct cx_errinfo ei;
};

/* cache_brlock.c */
int cx__br_init(struct brlock *l);
void cx__br_destroy(struct brlock *l);
struct br_slot *cx__br_rdlock(struct brlock *l);
void cx__br_rdunlock(struct br_slot *s);
void cx__br_wrlock(struct brlock *l);
void cx__br_wrunlock(struct brlock *l);

/* cache_index.c */
uint64_t cx__cache_group_hash(const char *provider, const char *model, const char *sys_hash);
uint64_t cx__cache_key_hash(uint64_t gh, const char *prompt);
void cx__cache_system_hash(const char *sys, char out[65]);
struct entry *cx__cache_entry_new(const char *provider, const char *model, const char *sys_hash,
                                  const char *prompt, const char *json, size_t json_len,
                                  int entity);
uint64_t cx__cache_cand_hash(uint64_t gh, const char *ents);
void cx__cache_index_free(struct index *x);
struct index *cx__cache_index_new(size_t cap, int entity);
struct entry *cx__cache_find_id(const struct index *x, int64_t id);
struct entry *cx__cache_find_key(const struct index *x, uint64_t kh, const char *provider,
                                 const char *model, const char *sys_hash, const char *prompt);
int cx__cache_index_reserve(struct index *x, size_t need);
void cx__cache_index_add(struct index *x, struct entry *e);
struct entry *cx__cache_index_remove(struct index *x, struct entry *e);
struct entry *cx__cache_scan_similar(const struct index *x, uint64_t cand, const float *q,
                                     float *best_out);

/* cache_store.c (the write callbacks run on the pool's writer thread) */
extern const char *const cx__cache_schema;
uint64_t cx__cache_now_stamp(void);
void cx__cache_flush_finish(struct cx_cache *c, struct flush *f, int ok);
int cx__cache_load_index(struct cx_cache *c, struct index **out, struct cx_errinfo *ei);
int cx__cache_flush_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei);
int cx__cache_finalize_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei);
int cx__cache_group_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei);
int cx__cache_clear_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei);

/* cache.c */
void cx__cache_sum_counters(struct cx_cache *c, uint64_t *exact, uint64_t *similar,
                            uint64_t *miss);

#endif /* CX_CACHE_INTERNAL_H */
