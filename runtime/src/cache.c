/*
 * cache.c - the semantic LLM response cache over a cx_pool (contract in cx/cache.h).
 *
 * It keeps an in-memory index mirroring llm_cache_entries, answers lookups from it, and sends
 * every change through the pool's writer. It does not talk to LLMs, parse the cached JSON or
 * decide what to cache.
 *
 * DESIGN
 * Threads: no thread of its own. Callers' threads run lookups (and, at most once per
 * refresh_interval_ms, a generation check and maybe an index reload on a reader connection);
 * the pool's writer thread runs the cache's write callbacks and their done callbacks.
 * Index and generations: `c->idx` (under c->lock, a writer-preferring big-reader lock) mirrors the
 * database at generation idx->gen. Every cache write transaction (put, clear; from any process)
 * does generation = generation + 1 in llm_cache_meta, so generation G names one state of the
 * entries. Puts are grouped: a put (a heap-owned copy, struct put) joins the pending group
 * (c->phead, under c->pmu) and the first of a group queues one pool write for all of them (so
 * concurrent puts share one savepoint, one flush, one eviction and one generation); queueing
 * happens under pmu, so a put never joins a group whose write failed to queue. The group's done
 * callback (writer thread, after commit, in commit order) applies it to the index only when
 * idx->gen == the group's generation - 1, i.e. the index is exactly the state the group started
 * from; otherwise the index is left alone, c->min_gen is raised to the group's generation (every
 * lookup reloads first while the index is below it) and a blocking put reloads before it returns,
 * so own puts are visible on return (blocking) or once done ran (async). Then it signals each
 * blocking put's waiter, runs each async put's done and frees the puts; c->outstanding counts
 * the puts not yet completed, and cx_cache_free waits for it to reach 0. A reload reads
 * generation and rows in one read transaction and is swapped in only if its generation is newer
 * than the index's, so racing reloads and done callbacks cannot go back in time. Foreign commits
 * are found by the periodic generation check (the staleness bound).
 * Matching: with opt.entity_match the index keys similarity candidates by the prompts' exact
 * entities and compares residual vectors (cache_index.c, embed_match.c); the stored embedding
 * column stays cx_embed(prompt), so either matcher reads the other's files.
 * Lazy state: hits stamp entry->stamp (atomic, wall-clock ns, strictly increasing per thread) and
 * bump entry->pend_hits; counters are sharded atomics. A flush (a write callback) collects what
 * changed and writes last_accessed/hit_count/stats; on failure the collected deltas are put back.
 * Every put group flushes first, in the same transaction, so SQLite's LRU order
 * (last_accessed, id) is this process's before the eviction DELETE runs. Writer-thread-only
 * fields say so.
 * Statements: prepared once on the writer connection (writer thread only) and finalized by a
 * last write in cx_cache_free.
 * Shutdown: cx_cache_free waits for outstanding puts, then queues a final synchronous flush; the
 * pool completes writes in order, so when it returns no earlier async flush of this cache can
 * still run.
 * Files: this one (API, consistency, completions), cache_store.c (SQL, write callbacks),
 * cache_index.c (index and similarity scan), cache_brlock.c (the lock), cache_internal.h.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/embed.h"
#include "cache_internal.h"
#include "cx_internal.h"
#include "cx_testing.h"

static _Thread_local int tls_shard = -1;

static struct shard *my_shard(struct cx_cache *c) {
    if (tls_shard < 0)
        tls_shard = (int)(atomic_fetch_add_explicit(&c->shard_seq, 1, memory_order_relaxed) %
                          SHARDS);
    return &c->shards[tls_shard];
}

void cx__cache_sum_counters(struct cx_cache *c, uint64_t *exact, uint64_t *similar,
                            uint64_t *miss) {
    uint64_t e = 0, s = 0, m = 0;
    for (int i = 0; i < SHARDS; i++) {
        e += atomic_load_explicit(&c->shards[i].exact, memory_order_relaxed);
        s += atomic_load_explicit(&c->shards[i].similar, memory_order_relaxed);
        m += atomic_load_explicit(&c->shards[i].miss, memory_order_relaxed);
    }
    *exact = e;
    *similar = s;
    *miss = m;
}

static void touch(struct cx_cache *c, struct entry *e) {
    atomic_store_explicit(&e->stamp, cx__cache_now_stamp(), memory_order_relaxed);
    atomic_fetch_add_explicit(&e->pend_hits, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&c->dirty, memory_order_relaxed))
        atomic_store_explicit(&c->dirty, 1, memory_order_release);
}

/* ---- a write with a waiter: async write + completion, so done runs in commit order ---- */

static void op_signal(struct op *o) {
    cx__mutex_lock(&o->mu);
    o->finished = 1;
    pthread_cond_signal(&o->cv);
    cx__mutex_unlock(&o->mu);
}

static int op_init(struct op *o, struct cx_cache *c) {
    memset(o, 0, sizeof *o);
    o->c = c;
    if (cx__mutex_init(&o->mu) < 0) return CX_ENOMEM;
    if (cx__cond_init(&o->cv) < 0) {
        cx__mutex_destroy(&o->mu);
        return CX_ENOMEM;
    }
    return 0;
}

static void op_destroy(struct op *o) {
    pthread_cond_destroy(&o->cv);
    cx__mutex_destroy(&o->mu);
}

/* Queues fn with done and waits until done signalled. Returns the pool's rc for the write. */
static int op_run(struct op *o, cx_write_fn fn, void (*done)(int, void *), struct cx_errinfo *ei) {
    int rc = cx_pool_write_async(o->c->pool, fn, o, done, ei);
    if (rc < 0) return rc;
    cx__mutex_lock(&o->mu);
    while (!o->finished) cx__cond_wait(&o->cv, &o->mu, CX_DEADLINE_NONE);
    cx__mutex_unlock(&o->mu);
    if (o->rc < 0 && ei) *ei = o->ei;
    return o->rc;
}

/* Swaps x in if it is newer than the index (carrying over unflushed hits), or always when
 * `force`; frees the loser. */
static void install_index(struct cx_cache *c, struct index *x, int force) {
    cx__br_wrlock(&c->lock);
    struct index *old = c->idx;
    if (!force && old && old->gen != 0 && x->gen <= old->gen) {
        cx__br_wrunlock(&c->lock);
        cx__cache_index_free(x);
        return;
    }
    if (old) {
        for (size_t i = 0; i < x->n; i++) {
            struct entry *e = x->ents[i];
            struct entry *o = cx__cache_find_id(old, e->id);
            if (o == NULL) continue;
            uint64_t os = atomic_load_explicit(&o->stamp, memory_order_relaxed);
            if (os > atomic_load_explicit(&e->stamp, memory_order_relaxed))
                atomic_store_explicit(&e->stamp, os, memory_order_relaxed);
            atomic_store_explicit(&e->pend_hits,
                                  atomic_exchange_explicit(&o->pend_hits, 0, memory_order_relaxed),
                                  memory_order_relaxed);
        }
        atomic_store(&c->dirty, 1);
    }
    c->idx = x;
    cx__br_wrunlock(&c->lock);
    cx__cache_index_free(old);
}

static int reload(struct cx_cache *c, int force, struct cx_errinfo *ei) {
    struct index *x = NULL;
    int rc = cx__cache_load_index(c, &x, ei);
    if (rc < 0) return rc;
    install_index(c, x, force);
    return 0;
}

/* Reads the generation and reloads when it differs from the index's. */
static int refresh(struct cx_cache *c, struct cx_errinfo *ei) {
    /* The index's generation first: it is committed, so a database read after it that shows a
     * lower one can only come from a replaced file, never from a race with our own writes. */
    struct br_slot *rs = cx__br_rdlock(&c->lock);
    uint64_t have = c->idx->gen;
    cx__br_rdunlock(rs);
    sqlite3 *db = NULL;
    int rc = cx_pool_checkout(c->pool, CX_DEADLINE_NONE, &db, ei);
    if (rc < 0) return rc;
    sqlite3_stmt *st = NULL;
    uint64_t gen = 0;
    int s = sqlite3_prepare_v2(db, "SELECT generation FROM llm_cache_meta WHERE id = 1", -1, &st,
                               NULL);
    if (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        gen = (uint64_t)sqlite3_column_int64(st, 0);
        s = SQLITE_OK;
    }
    if (s != SQLITE_OK) rc = cx_pool_sqlite_error(db, s, "cache: reading the generation", ei);
    sqlite3_finalize(st);
    cx_pool_checkin(c->pool, db);
    if (rc < 0) return rc;
    if (have == gen) return 0;
    /* Generations only grow, and the index only takes committed ones; a database generation
     * below the index's means the file was replaced (deleted and recreated): take it as is. */
    return reload(c, gen < have, ei);
}

static void maybe_refresh(struct cx_cache *c, uint64_t now) {
    uint64_t next = atomic_load_explicit(&c->next_refresh, memory_order_relaxed);
    if (now < next && !atomic_load_explicit(&c->stale, memory_order_relaxed)) return;
    uint64_t want = now + (uint64_t)c->opt.refresh_interval_ms * CX_NSEC_PER_MSEC;
    if (!atomic_compare_exchange_strong(&c->next_refresh, &next, want)) return;
    atomic_store(&c->stale, 0);
    (void)refresh(c, NULL); /* on failure the lookup uses the index it has; retried next time */
}

/* Brings the index up to c->min_gen (an own commit the index could not take in place) before a
 * lookup, so an async put is visible once its done ran. min_gen is 0 almost always. */
static void ensure_gen(struct cx_cache *c) {
    uint64_t want = atomic_load_explicit(&c->min_gen, memory_order_acquire);
    if (want == 0) return;
    struct br_slot *rs = cx__br_rdlock(&c->lock);
    uint64_t have = c->idx->gen;
    cx__br_rdunlock(rs);
    if (have < want) {
        if (reload(c, 0, NULL) < 0) return; /* retried at the next lookup */
        rs = cx__br_rdlock(&c->lock);
        have = c->idx->gen;
        cx__br_rdunlock(rs);
    }
    /* Reached, or the database now shows an older generation (the file was replaced): either
     * way nothing more to wait for. */
    atomic_compare_exchange_strong(&c->min_gen, &want, 0);
}

/* ---- async flush ---- */

static void flush_done(int rc, void *arg) {
    struct op *o = arg;
    cx__cache_flush_finish(o->c, &o->fl, rc == 0);
    o->rc = rc;
    if (o->async) {
        struct cx_cache *c = o->c;
        op_destroy(o);
        cx__free(o);
        atomic_store(&c->flush_inflight, 0);
    } else {
        op_signal(o);
    }
}

static void maybe_flush(struct cx_cache *c, uint64_t now) {
    uint64_t next = atomic_load_explicit(&c->next_flush, memory_order_relaxed);
    if (now < next) return;
    uint64_t want = now + (uint64_t)c->opt.flush_interval_ms * CX_NSEC_PER_MSEC;
    if (!atomic_compare_exchange_strong(&c->next_flush, &next, want)) return;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&c->flush_inflight, &expect, 1)) return;
    struct op *o = cx__malloc(sizeof *o);
    if (o == NULL || op_init(o, c) < 0) {
        cx__free(o);
        atomic_store(&c->flush_inflight, 0);
        return;
    }
    o->async = 1;
    if (cx_pool_write_async(c->pool, cx__cache_flush_fn, o, flush_done, NULL) < 0) {
        op_destroy(o);
        cx__free(o);
        atomic_store(&c->flush_inflight, 0);
    }
}

/* ---- public API ---- */

void cx_cache_options_init(struct cx_cache_options *o) {
    if (o == NULL) return;
    memset(o, 0, sizeof *o);
    o->max_entries = 500;
    o->similarity_threshold = 0.86;
    o->refresh_interval_ms = 5;
    o->flush_interval_ms = 100;
    o->max_value_bytes = 1u << 20;
    o->entity_match = 0;
}

double cx_cache_similarity(const struct cx_cache_options *o, const char *a, const char *b) {
    struct cx_cache_options def;
    if (o == NULL) {
        cx_cache_options_init(&def);
        o = &def;
    }
    if (a == NULL || b == NULL) return -2.0;
    float va[CX_EMBED_DIM], vb[CX_EMBED_DIM];
    if (!o->entity_match) {
        cx_embed(a, va);
        cx_embed(b, vb);
        return cx_embed_cosine(va, vb);
    }
    size_t la = strlen(a), lb = strlen(b);
    char *ea = cx__malloc(CX_EMBED_ENTITIES_CAP(la)), *eb = cx__malloc(CX_EMBED_ENTITIES_CAP(lb));
    double score = -2.0;
    if (ea && eb) {
        cx_embed_analyze(a, la, ea, CX_EMBED_ENTITIES_CAP(la), va);
        cx_embed_analyze(b, lb, eb, CX_EMBED_ENTITIES_CAP(lb), vb);
        if (strcmp(ea, eb) == 0) {
            /* The same sum, in the same order, as the cache's scan. */
            float s = 0.0f;
            for (int d = 0; d < CX_EMBED_DIM; d++) s += va[d] * vb[d];
            score = s;
        }
    }
    cx__free(ea);
    cx__free(eb);
    return score;
}

/* Prefixes ei's message with the database path (a corrupt table is found here, not at open). */
static int name_db(struct cx_pool *pool, int rc, struct cx_errinfo *ei) {
    if (ei && rc != CX_ENOMEM) {
        char msg[sizeof ei->msg];
        snprintf(msg, sizeof msg, "%s", ei->msg);
        long detail = ei->detail;
        cx__err_detail(ei, rc, detail, "cache in database '%s': %s", cx_pool_path(pool), msg);
    }
    return rc;
}

int cx_cache_new(struct cx_pool *pool, const struct cx_cache_options *o, struct cx_cache **out,
                 struct cx_errinfo *ei) {
    if (pool == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_cache_new: %s is NULL", pool == NULL ? "pool" : "out");
    struct cx_cache_options def;
    if (o == NULL) {
        cx_cache_options_init(&def);
        o = &def;
    }
    if (o->max_entries < 1)
        return cx__err(ei, CX_EINVAL, "cx_cache_new: options.max_entries must be >= 1 (got 0)");
    if (!(o->similarity_threshold > 0.0))
        return cx__err(ei, CX_EINVAL,
                       "cx_cache_new: options.similarity_threshold must be > 0 (got %g)",
                       o->similarity_threshold);
    if (o->refresh_interval_ms < 0 || o->flush_interval_ms < 0)
        return cx__err(ei, CX_EINVAL, "cx_cache_new: options.%s must be >= 0 (got %d)",
                       o->refresh_interval_ms < 0 ? "refresh_interval_ms" : "flush_interval_ms",
                       o->refresh_interval_ms < 0 ? o->refresh_interval_ms
                                                  : o->flush_interval_ms);
    if (o->max_value_bytes < 1)
        return cx__err(ei, CX_EINVAL, "cx_cache_new: options.max_value_bytes must be >= 1");
    int rc = cx_pool_exec(pool, cx__cache_schema, ei);
    if (rc < 0) return name_db(pool, rc, ei);
    struct cx_cache *c = cx__calloc(1, sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_cache_new: out of memory");
    c->pool = pool;
    c->opt = *o;
    if (cx__br_init(&c->lock) < 0) {
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_cache_new: cannot create a lock");
    }
    if (cx__mutex_init(&c->pmu) < 0) {
        cx__br_destroy(&c->lock);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_cache_new: cannot create a lock");
    }
    if (cx__cond_init(&c->pcv) < 0) {
        cx__br_destroy(&c->lock);
        cx__mutex_destroy(&c->pmu);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_cache_new: cannot create a condition variable");
    }
    struct index *x = NULL;
    rc = cx__cache_load_index(c, &x, ei);
    if (rc < 0) {
        cx__br_destroy(&c->lock);
        pthread_cond_destroy(&c->pcv);
        cx__mutex_destroy(&c->pmu);
        cx__free(c);
        return name_db(pool, rc, ei);
    }
    c->idx = x;
    atomic_store(&c->next_refresh,
                 cx_now_ns() + (uint64_t)o->refresh_interval_ms * CX_NSEC_PER_MSEC);
    atomic_store(&c->next_flush, cx_now_ns() + (uint64_t)o->flush_interval_ms * CX_NSEC_PER_MSEC);
    *out = c;
    return 0;
}

void cx_cache_free(struct cx_cache *c) {
    if (c == NULL) return;
    /* Outstanding async puts first: their group writes are queued, so they complete. */
    cx__mutex_lock(&c->pmu);
    while (c->outstanding > 0) cx__cond_wait(&c->pcv, &c->pmu, CX_DEADLINE_NONE);
    cx__mutex_unlock(&c->pmu);
    struct op o;
    if (op_init(&o, c) == 0) {
        /* best effort: counters and access times */
        op_run(&o, cx__cache_flush_fn, flush_done, NULL);
        op_destroy(&o);
    }
    /* Statements belong to the writer connection: finalize them on the writer thread. This also
     * waits out any async flush queued before (the pool completes writes in order). If even this
     * cannot be queued (out of memory for the queue item), finalize here: the writer is then
     * idle for this cache, and statements are only touched by this cache's callbacks. */
    if (cx_pool_write(c->pool, cx__cache_finalize_fn, c, NULL) < 0)
        cx__cache_finalize_fn(NULL, c, NULL);
    cx__cache_index_free(c->idx);
    cx__br_destroy(&c->lock);
    pthread_cond_destroy(&c->pcv);
    cx__mutex_destroy(&c->pmu);
    cx__free(c);
}

static int check_key(const struct cx_cache_key *k, const char *fn, struct cx_errinfo *ei) {
    if (k == NULL) return cx__err(ei, CX_EINVAL, "%s: key is NULL", fn);
    const char *bad = k->provider == NULL || !k->provider[0] ? "key.provider"
                      : k->model == NULL || !k->model[0]     ? "key.model"
                      : k->system_prompt == NULL             ? "key.system_prompt"
                      : k->prompt == NULL || !k->prompt[0]   ? "key.prompt"
                                                             : NULL;
    if (bad) {
        const char *v = strcmp(bad, "key.provider") == 0 ? k->provider
                        : strcmp(bad, "key.model") == 0  ? k->model
                        : strcmp(bad, "key.prompt") == 0 ? k->prompt
                                                         : k->system_prompt;
        return cx__err(ei, CX_EINVAL, "%s: %s is %s", fn, bad, v == NULL ? "NULL" : "empty");
    }
    return 0;
}

int cx_cache_get(struct cx_cache *c, const struct cx_cache_key *k, char **commands_json,
                 int *similar, struct cx_errinfo *ei) {
    if (commands_json) *commands_json = NULL;
    if (similar) *similar = 0;
    if (c == NULL) return cx__err(ei, CX_EINVAL, "cx_cache_get: cache is NULL");
    if (commands_json == NULL) return cx__err(ei, CX_EINVAL, "cx_cache_get: commands_json is NULL");
    int rc = check_key(k, "cx_cache_get", ei);
    if (rc < 0) return rc;
    if (cx__slow_on) cx__slow_cache_lookup(); /* bench-only (slowdown.c) */
    uint64_t now = cx_now_ns();
    maybe_refresh(c, now);
    ensure_gen(c);
    maybe_flush(c, now);

    char sh[65];
    cx__cache_system_hash(k->system_prompt, sh);
    uint64_t gh = cx__cache_group_hash(k->provider, k->model, sh);
    uint64_t kh = cx__cache_key_hash(gh, k->prompt);
    struct shard *shd = my_shard(c);

    struct br_slot *rs = cx__br_rdlock(&c->lock);
    struct index *x = c->idx;
    int sim = 0;
    char ebuf[2048], *ents = NULL; /* prompts up to 252 bytes analyse without an allocation */
    struct entry *e = cx__cache_find_key(x, kh, k->provider, k->model, sh, k->prompt);
    if (e == NULL && c->opt.similarity_threshold <= 1.0) {
        float q[CX_EMBED_DIM];
        uint64_t cand = gh;
        if (x->entity) {
            /* Only entries with exactly the query's entities are candidates (issue 13). */
            size_t pl = strlen(k->prompt), cap = CX_EMBED_ENTITIES_CAP(pl);
            ents = cap <= sizeof ebuf ? ebuf : cx__malloc(cap);
            if (ents == NULL) {
                cx__br_rdunlock(rs);
                return cx__err(ei, CX_ENOMEM, "cx_cache_get: out of memory analysing the prompt");
            }
            (void)cx_embed_analyze(k->prompt, pl, ents, cap, q);
            cand = cx__cache_cand_hash(gh, ents);
        } else {
            cx_embed(k->prompt, q);
        }
        float best = 0.0f;
        e = cx__cache_scan_similar(x, cand, q, &best);
        if (e && !((double)best >= c->opt.similarity_threshold &&
                   strcmp(e->provider, k->provider) == 0 && strcmp(e->model, k->model) == 0 &&
                   strcmp(e->system_hash, sh) == 0 && (ents == NULL || strcmp(e->ents, ents) == 0)))
            e = NULL;
        if (ents != ebuf) cx__free(ents);
        sim = 1;
    }
    if (e == NULL) {
        cx__br_rdunlock(rs);
        atomic_fetch_add_explicit(&shd->miss, 1, memory_order_relaxed);
        return CX_ENOENT;
    }
    char *copy = cx__malloc(e->json_len + 1);
    if (copy == NULL) {
        cx__br_rdunlock(rs);
        return cx__err(ei, CX_ENOMEM, "cx_cache_get: out of memory copying a %zu-byte value",
                       e->json_len);
    }
    memcpy(copy, e->json, e->json_len + 1);
    touch(c, e);
    cx__br_rdunlock(rs);
    atomic_fetch_add_explicit(sim ? &shd->similar : &shd->exact, 1, memory_order_relaxed);
    *commands_json = copy;
    if (similar) *similar = sim;
    return 0;
}

/* Set on the writer thread while a put's done callback runs, to refuse puts from inside it. */
static _Thread_local int tls_in_put_done;

/* Applies a committed group to the index; 0 when it could not (then a reload is due).
 * Caller holds c->lock (write). */
static int group_apply(struct cx_cache *c, struct put *g, size_t count) {
    struct index *x = c->idx;
    if (x->gen == 0 || x->gen + 1 != g->gen || cx__cache_index_reserve(x, x->n + count) < 0)
        return 0;
    for (struct put *o = g->glist; o; o = o->gnext) {
        struct entry *old = cx__cache_find_id(x, o->e->id);
        if (old) cx__free(cx__cache_index_remove(x, old));
        cx__cache_index_add(x, o->e);
        o->e = NULL;
    }
    for (size_t i = 0; i < g->nevicted; i++) {
        struct entry *v = cx__cache_find_id(x, g->evicted[i]);
        if (v) cx__free(cx__cache_index_remove(x, v));
    }
    x->gen = g->gen;
    return 1;
}

/* Raises c->min_gen to at least gen. */
static void want_gen(struct cx_cache *c, uint64_t gen) {
    uint64_t cur = atomic_load(&c->min_gen);
    while (cur < gen && !atomic_compare_exchange_weak(&c->min_gen, &cur, gen)) {
    }
}

/* Writer thread, after the group's transaction committed (rc 0) or failed. Completes and frees
 * every put of the group, the carrier last; the last thing it touches of c is pmu. */
static void group_done(int rc, void *arg) {
    struct put *g = arg;
    struct cx_cache *c = g->c;
    if (g->glist == NULL) {
        /* The write failed before its callback ran (BEGIN failed): the group is still pending
         * and no other group write was queued meanwhile, so take it now to fail it. */
        cx__mutex_lock(&c->pmu);
        g->glist = c->phead;
        c->phead = c->ptail = NULL;
        c->group_queued = 0;
        cx__mutex_unlock(&c->pmu);
    } else {
        cx__cache_flush_finish(c, &g->fl, rc == 0);
    }
    size_t count = 0;
    for (struct put *o = g->glist; o; o = o->gnext) count++;
    int applied = 1;
    if (rc == 0) {
        cx__br_wrlock(&c->lock);
        applied = group_apply(c, g, count);
        cx__br_wrunlock(&c->lock);
        if (!applied) {
            /* Every lookup brings the index up to this generation first (see ensure_gen), so an
             * async put is visible once its done ran even when the index could not take it. */
            want_gen(c, g->gen);
            atomic_store(&c->stale, 1);
        }
    } else if (g->ei.code != rc) {
        cx__err(&g->ei, rc, "cx_cache_put: the write failed: %s", cx_strerror(rc));
    }
    struct put *o = g->glist;
    while (o) {
        struct put *next = o->gnext;
        if (o->w) {
            struct put_waiter *w = o->w;
            cx__mutex_lock(&w->mu);
            w->rc = rc;
            w->need_reload = !applied;
            if (rc < 0) w->ei = g->ei;
            w->finished = 1;
            pthread_cond_signal(&w->cv);
            cx__mutex_unlock(&w->mu); /* w may be gone from here on */
        }
        if (o->done) {
            tls_in_put_done = 1;
            o->done(rc, o->ud);
            tls_in_put_done = 0;
        }
        cx__free(o->e);
        if (o != g) cx__free(o);
        o = next;
    }
    cx__free(g->evicted);
    cx__free(g);
    cx__mutex_lock(&c->pmu);
    CX_ASSERT(c->outstanding >= count);
    c->outstanding -= count;
    if (c->outstanding == 0) pthread_cond_broadcast(&c->pcv);
    cx__mutex_unlock(&c->pmu);
}

/* Validates, copies and queues one put; done/ud or w receive its completion. */
static int put_submit(struct cx_cache *c, const struct cx_cache_key *k, const char *commands_json,
                      void (*done)(int, void *), void *ud, struct put_waiter *w, const char *fn,
                      struct cx_errinfo *ei) {
    if (c == NULL) return cx__err(ei, CX_EINVAL, "%s: cache is NULL", fn);
    if (tls_in_put_done)
        return cx__err(ei, CX_EINVAL,
                       "%s: called from inside a put's done callback (the pool's writer thread)",
                       fn);
    int rc = check_key(k, fn, ei);
    if (rc < 0) return rc;
    if (commands_json == NULL || commands_json[0] == '\0')
        return cx__err(ei, CX_EINVAL, "%s: commands_json is %s", fn,
                       commands_json == NULL ? "NULL" : "empty");
    size_t jl = strlen(commands_json);
    if (jl > c->opt.max_value_bytes)
        return cx__err(ei, CX_ETOOBIG, "%s: commands_json is %zu bytes (max %zu)", fn, jl,
                       c->opt.max_value_bytes);
    struct put *p = cx__calloc(1, sizeof *p);
    if (p == NULL) return cx__err(ei, CX_ENOMEM, "%s: out of memory", fn);
    p->c = c;
    p->done = done;
    p->ud = ud;
    p->w = w;
    cx__cache_system_hash(k->system_prompt, p->sys_hash);
    cx__sha256_hex(k->prompt, strlen(k->prompt), p->prompt_hash);
    p->e = cx__cache_entry_new(k->provider, k->model, p->sys_hash, k->prompt, commands_json, jl,
                               c->opt.entity_match);
    if (p->e == NULL) {
        cx__free(p);
        return cx__err(ei, CX_ENOMEM, "%s: out of memory", fn);
    }
    cx_embed(k->prompt, p->e->emb);

    /* Queueing the group write under pmu makes joining a group and queueing its write one step:
     * a put either joins a group whose write is queued or fails alone, before anyone joined. The
     * writer's cx__cache_group_fn takes pmu only inside the write, never while the pool holds its
     * lock. */
    cx__mutex_lock(&c->pmu);
    if (!c->group_queued) {
        rc = cx_pool_write_async(c->pool, cx__cache_group_fn, p, group_done, ei);
        if (rc < 0) {
            cx__mutex_unlock(&c->pmu);
            cx__free(p->e);
            cx__free(p);
            return rc;
        }
        c->group_queued = 1;
    }
    if (c->ptail) c->ptail->gnext = p;
    else c->phead = p;
    c->ptail = p;
    c->outstanding++;
    cx__mutex_unlock(&c->pmu);
    return 0;
}

int cx_cache_put_async(struct cx_cache *c, const struct cx_cache_key *k, const char *commands_json,
                       void (*done)(int rc, void *ud), void *ud, struct cx_errinfo *ei) {
    return put_submit(c, k, commands_json, done, ud, NULL, "cx_cache_put_async", ei);
}

int cx_cache_put(struct cx_cache *c, const struct cx_cache_key *k, const char *commands_json,
                 struct cx_errinfo *ei) {
    struct put_waiter w;
    memset(&w, 0, sizeof w);
    if (cx__mutex_init(&w.mu) < 0) return cx__err(ei, CX_ENOMEM, "cx_cache_put: out of memory");
    if (cx__cond_init(&w.cv) < 0) {
        cx__mutex_destroy(&w.mu);
        return cx__err(ei, CX_ENOMEM, "cx_cache_put: out of memory");
    }
    int rc = put_submit(c, k, commands_json, NULL, NULL, &w, "cx_cache_put", ei);
    if (rc == 0) {
        cx__mutex_lock(&w.mu);
        while (!w.finished) cx__cond_wait(&w.cv, &w.mu, CX_DEADLINE_NONE);
        cx__mutex_unlock(&w.mu);
        rc = w.rc;
        if (rc < 0 && ei) *ei = w.ei;
        if (rc == 0 && w.need_reload) {
            /* The index did not start from the state this put started from (another writer got
             * in between): load the committed state so the put is visible when we return. */
            if (reload(c, 0, NULL) < 0) atomic_store(&c->stale, 1);
        }
    }
    pthread_cond_destroy(&w.cv);
    cx__mutex_destroy(&w.mu);
    return rc;
}

static void clear_done(int rc, void *arg) {
    struct op *o = arg;
    struct cx_cache *c = o->c;
    cx__cache_flush_finish(c, &o->fl, rc == 0);
    o->rc = rc;
    if (rc == 0) {
        cx__br_wrlock(&c->lock);
        struct index *x = c->idx;
        if (x->gen != 0 && x->gen + 1 == o->gen) {
            while (x->n) cx__free(cx__cache_index_remove(x, x->ents[x->n - 1]));
            x->gen = o->gen;
        } else {
            o->need_reload = 1;
            atomic_store(&c->stale, 1);
        }
        cx__br_wrunlock(&c->lock);
    }
    op_signal(o);
}

int cx_cache_clear(struct cx_cache *c, struct cx_errinfo *ei) {
    if (c == NULL) return cx__err(ei, CX_EINVAL, "cx_cache_clear: cache is NULL");
    struct op o;
    if (op_init(&o, c) < 0) return cx__err(ei, CX_ENOMEM, "cx_cache_clear: out of memory");
    int rc = op_run(&o, cx__cache_clear_fn, clear_done, ei);
    if (rc == 0 && o.need_reload && reload(c, 0, NULL) < 0) atomic_store(&c->stale, 1);
    op_destroy(&o);
    return rc;
}

int cx_cache_stats(struct cx_cache *c, struct cx_cache_stats *out, struct cx_errinfo *ei) {
    if (c == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_cache_stats: %s is NULL", c == NULL ? "cache" : "out");
    memset(out, 0, sizeof *out);
    struct op o;
    if (op_init(&o, c) < 0) return cx__err(ei, CX_ENOMEM, "cx_cache_stats: out of memory");
    int rc = op_run(&o, cx__cache_flush_fn, flush_done, ei);
    op_destroy(&o);
    if (rc < 0) return rc;
    uint64_t e, s, m;
    cx__cache_sum_counters(c, &e, &s, &m);
    out->exact_hits = e;
    out->similar_hits = s;
    out->local_misses = m;
    sqlite3 *db = NULL;
    rc = cx_pool_checkout(c->pool, CX_DEADLINE_NONE, &db, ei);
    if (rc < 0) return rc;
    sqlite3_stmt *st = NULL;
    int q = sqlite3_prepare_v2(db,
                               "SELECT hits, misses, (SELECT count(*) FROM llm_cache_entries)"
                               " FROM llm_cache_stats WHERE id = 1",
                               -1, &st, NULL);
    if (q == SQLITE_OK && (q = sqlite3_step(st)) == SQLITE_ROW) {
        out->hits = (uint64_t)sqlite3_column_int64(st, 0);
        out->misses = (uint64_t)sqlite3_column_int64(st, 1);
        out->entries = (size_t)sqlite3_column_int64(st, 2);
        q = SQLITE_OK;
    } else if (q == SQLITE_DONE) {
        q = SQLITE_OK; /* no stats row: zeros */
    }
    if (q != SQLITE_OK) rc = cx_pool_sqlite_error(db, q, "cx_cache_stats", ei);
    sqlite3_finalize(st);
    cx_pool_checkin(c->pool, db);
    return rc;
}
