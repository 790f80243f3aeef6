/*
 * cx/cache.h - the semantic LLM response cache, stored in SQLite through a cx_pool.
 *
 * A lookup key is (provider, model, system prompt, prompt). cx_cache_get tries, in order:
 *   1. an exact match on (provider, model, SHA-256 of the system prompt, SHA-256 of the prompt);
 *   2. a similarity match: among entries with the same provider, model and system prompt, the
 *      one whose prompt embedding (cx/embed.h, 128 dimensions) has the highest cosine with the
 *      query's, if that cosine is >= similarity_threshold (default 0.86). With entity_match
 *      (issue 13) only entries whose prompt has exactly the query's entities are candidates
 *      (cx_embed_analyze: actions, negation, package names, versions, numbers, paths,
 *      distributions, any word it does not know), and the cosine is that of their residual
 *      vectors (the remaining content words), so "Install package: tool-21" never matches
 *      "tool-50" and "how do I install nginx" matches "install nginx please". Measured on
 *      tests/data/cache_pairs.tsv by bench_cache_quality;
 *   otherwise a miss. Hits and misses are counted. Inserting beyond max_entries (default 500)
 *   evicts the least recently used entries (by last access; ties by insertion order).
 *
 * Storage: the seed's schema. llm_cache_entries(id, provider, model, system_hash, prompt,
 * prompt_hash, embedding BLOB of 128 little-endian float32, commands_json, created_at,
 * last_accessed, hit_count) with a unique index on (provider, model, system_hash, prompt_hash)
 * and an index on (last_accessed, id); llm_cache_stats(id=1, hits, misses); and
 * llm_cache_meta(id=1, generation), a counter every cache write transaction (put, eviction,
 * clear, from any process) increments. Timestamps are UTC ISO-8601 with nanoseconds
 * ("2026-01-02T03:04:05.123456789Z"), so last_accessed orders by text.
 *
 * In memory: every entry (keys, prompt, commands_json, embedding) is mirrored in an index under a
 * read-write lock: exact lookups are a hash-map probe and similarity lookups a scan of a
 * contiguous float matrix; neither touches SQLite. Puts (blocking or async) go through the pool's
 * writer (group commit) and update the index after their commit, in commit order.
 * Access times and hit counts of hits are kept in memory and written back lazily, batched in one
 * write, at most every flush_interval_ms and always before an eviction decision of this cache,
 * so eviction order in SQLite equals this process's in-memory LRU order and survives a reopen.
 * Hit/miss counters are per-thread-sharded atomics, added to llm_cache_stats by the same flush.
 *
 * Consistency across processes (or several caches on one file): a lookup reads the generation
 * at most once every refresh_interval_ms (default 5 ms; one reader-connection query) and reloads
 * the index from SQLite when another writer changed it. STALENESS BOUND: a put or eviction
 * committed by another process is seen by this cache's lookups within refresh_interval_ms plus
 * one index reload (about a millisecond at 500 entries) of its commit; this process's own puts
 * are seen by every thread as soon as cx_cache_put returns. Access times of hits in another
 * process reach SQLite within that process's flush_interval_ms, so an eviction here may evict an
 * entry hit there within that window.
 *
 * Typical use:
 *     cx_cache_options_init(&co); cx_cache_new(pool, &co, &cache, &ei);
 *     struct cx_cache_key k = {"openai", "gpt-4o", system_prompt, prompt};
 *     if (cx_cache_get(cache, &k, &json, &similar, &ei) == 0) { use(json); cx_free(json); }
 *     else { json = ask_llm(); cx_cache_put(cache, &k, json, &ei); }
 *     cx_cache_free(cache);   // before cx_pool_free
 */
#ifndef CX_CACHE_H
#define CX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_pool;
struct cx_cache;

struct cx_cache_options {
    size_t max_entries;          /* >= 1 (default 500) */
    double similarity_threshold; /* in (0, 1]; > 1 disables similarity matches (default 0.86) */
    int refresh_interval_ms;     /* >= 0: how stale the index may get w.r.t. others' writes (5) */
    int flush_interval_ms;       /* >= 0: how long access times/counters stay in memory (100) */
    size_t max_value_bytes;      /* largest commands_json accepted by put (default 1 MiB) */
    int entity_match;            /* 1: entity-aware similarity (below); 0 (default): the seed's
                                    whole-prompt embedding */
};

/* Fills o with the defaults above. Threads: any thread. */
CX_API void cx_cache_options_init(struct cx_cache_options *o);

/* A lookup/insert key. All four strings are borrowed, NUL-terminated and non-NULL; provider,
 * model and prompt must be non-empty, system_prompt may be "". */
struct cx_cache_key {
    const char *provider;
    const char *model;
    const char *system_prompt;
    const char *prompt;
};

/*
 * Creates the schema if missing (through the pool's writer) and loads the index.
 * pool: borrowed; must outlive the cache. o: borrowed, NULL for defaults. out: returned, release
 * with cx_cache_free.
 * Errors: CX_EINVAL (NULL pool/out, max_entries 0, threshold <= 0 or NaN, negative intervals:
 * the message names the field); the pool's errors (CX_ECORRUPT, CX_EPERM, CX_EBUSY, CX_EDB...);
 * CX_ENOMEM. Threads: any thread.
 */
CX_API int cx_cache_new(struct cx_pool *pool, const struct cx_cache_options *o,
                        struct cx_cache **out, struct cx_errinfo *ei);

/* Waits for outstanding cx_cache_put_async puts (their done callbacks included), writes back
 * pending access times and counters (best effort), then frees the cache. Accepts NULL.
 * Threads: no other thread may use the cache during or after the call; not from the
 * pool's writer thread. */
CX_API void cx_cache_free(struct cx_cache *c);

/*
 * Looks k up (exact, then similar). On a hit returns 0, *commands_json = a copy of the stored
 * value (returned: free with cx_free) and *similar = 0 for an exact hit, 1 for a similarity hit
 * (similar may be NULL). On a miss returns CX_ENOENT and sets *commands_json = NULL.
 * Errors: CX_EINVAL (NULL/empty arguments, naming which), CX_ENOMEM; an error while refreshing
 * the index from SQLite is not reported here (the lookup uses the index it has and the refresh is
 * retried at the next interval).
 * Threads: any thread.
 */
CX_API int cx_cache_get(struct cx_cache *c, const struct cx_cache_key *k, char **commands_json,
                        int *similar, struct cx_errinfo *ei);

/*
 * Inserts or replaces the entry for k (same 4-tuple: the value, prompt embedding and access time
 * are replaced, the id kept), evicting least recently used entries beyond max_entries, and waits
 * for the commit. Visible to every thread's cx_cache_get when this returns. commands_json:
 * borrowed, non-empty.
 * Puts from several threads at once are grouped into one pool write (one savepoint, one
 * eviction, one generation step); such a group commits or fails as a whole, and every put of a
 * failed group returns the group's error.
 * Errors: CX_EINVAL (NULL/empty arguments), CX_ETOOBIG (commands_json over max_value_bytes),
 * CX_ENOMEM, the pool's write errors (CX_EBUSY, CX_EIO, CX_EDB, CX_ECLOSED). On failure nothing
 * was written and the index is unchanged.
 * Threads: any thread except the pool's writer thread.
 */
CX_API int cx_cache_put(struct cx_cache *c, const struct cx_cache_key *k, const char *commands_json,
                        struct cx_errinfo *ei);

/*
 * Like cx_cache_put without the wait: copies k and commands_json, queues the put in the writer's
 * next group (the same grouping, eviction, generation step and index update in commit order as
 * cx_cache_put) and returns at once. done (may be NULL) runs exactly once on the pool's writer
 * thread after the group committed (rc 0) or failed (the group's error: CX_EBUSY, CX_EIO, CX_EDB,
 * CX_ENOMEM...), never inside this call; the entry is visible to this process's cx_cache_get once
 * done has run with rc 0. done must not block on the pool or the cache (no cx_cache_put, no
 * cx_cache_free, no cx_pool_write); a put of any kind from inside it fails with CX_EINVAL.
 * k, commands_json: borrowed (copied). ud: borrowed until done runs; passed to done.
 * If this call fails (CX_EINVAL: NULL/empty arguments or called from a done callback;
 * CX_ETOOBIG; CX_ENOMEM; CX_ECLOSED: the pool is closing) done never runs and nothing was queued.
 * cx_cache_free waits for every outstanding async put (its done included) before it frees.
 * Threads: any thread except the pool's writer thread.
 */
CX_API int cx_cache_put_async(struct cx_cache *c, const struct cx_cache_key *k,
                              const char *commands_json, void (*done)(int rc, void *ud), void *ud,
                              struct cx_errinfo *ei);

/* The score cx_cache_get compares with o->similarity_threshold when prompt b is looked up in a
 * cache that holds only prompt a under the same provider, model and system prompt (o: borrowed,
 * NULL for the defaults; only entity_match matters). -2 when b can never match a (their entities
 * differ, or a NULL prompt, or no memory). Threads: any thread. */
CX_API double cx_cache_similarity(const struct cx_cache_options *o, const char *a, const char *b);

struct cx_cache_stats {
    uint64_t hits;         /* llm_cache_stats.hits: all processes, all time */
    uint64_t misses;       /* llm_cache_stats.misses: all processes, all time */
    uint64_t exact_hits;   /* this cache object's exact hits since cx_cache_new */
    uint64_t similar_hits; /* this cache object's similarity hits since cx_cache_new */
    uint64_t local_misses; /* this cache object's misses since cx_cache_new */
    size_t entries;        /* rows in llm_cache_entries now */
};

/* Flushes this cache's pending counters (one write), then reads the totals. Errors: CX_EINVAL,
 * the pool's errors. Threads: any thread except the pool's writer thread. */
CX_API int cx_cache_stats(struct cx_cache *c, struct cx_cache_stats *out, struct cx_errinfo *ei);

/* Deletes every entry (from SQLite and the index); the hit/miss totals are kept.
 * Errors: CX_EINVAL, the pool's write errors. Threads: any thread except the writer thread. */
CX_API int cx_cache_clear(struct cx_cache *c, struct cx_errinfo *ei);

#ifdef __cplusplus
}
#endif
#endif /* CX_CACHE_H */
