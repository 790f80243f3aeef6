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
 * the puts not yet completed, and cx_cache_free waits for it to reach 0. A reload reads generation and rows in one read transaction and
 * is swapped in only if its generation is newer than the index's, so racing reloads and done
 * callbacks cannot go back in time. Foreign commits are found by the periodic generation
 * check (the staleness bound).
 * Lazy state: hits stamp entry->stamp (atomic, wall-clock ns, strictly increasing per thread) and
 * bump entry->pend_hits; counters are sharded atomics. A flush (a write callback) collects what
 * changed and writes last_accessed/hit_count/stats; on failure the collected deltas are put back.
 * Every put group flushes first, in the same transaction, so SQLite's LRU order
 * (last_accessed, id) is this process's before the eviction DELETE runs. Writer-thread-only
 * fields say so.
 * Statements: prepared once on the writer connection (writer thread only) and finalized by a
 * last write in cx_cache_free.
 * Shutdown: cx_cache_free waits for outstanding puts, then queues a final synchronous flush; the pool completes writes in order,
 * so when it returns no earlier async flush of this cache can still run.
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
    size_t row;                   /* column in the embedding matrix */
    _Atomic uint64_t stamp;       /* last access, ns since the epoch */
    _Atomic uint64_t flushed;     /* stamp last known to be in SQLite */
    _Atomic uint32_t pend_hits;   /* hits not yet added to hit_count */
    char system_hash[65];
    size_t json_len;
    char *provider, *model, *prompt, *json; /* point into this allocation */
    float emb[CX_EMBED_DIM];
};

struct index {
    uint64_t gen;            /* database generation this index mirrors; 0: unknown */
    size_t n, cap;
    struct entry **ents;     /* [cap] */
    uint64_t *ghash;         /* [cap], the entries' ghash, scanned next to the scores */
    float *mt;               /* [CX_EMBED_DIM * cap], dimension-major: mt[d * cap + row] */
    size_t nb;               /* buckets, a power of two */
    struct entry **kb, **ib; /* [nb] */
};

struct shard {
    _Atomic uint64_t exact, similar, miss;
    char pad[64 - 3 * sizeof(uint64_t)];
};

/*
 * A reader-scalable read-write lock ("big-reader" lock). Lookups must scale across cores, and a
 * pthread rwlock makes every reader write the same cache line. Here each reader increments its
 * own padded slot, then checks the writer flag; a writer takes `wmu`, raises the flag and waits
 * for every slot to drain. Both sides use sequentially consistent atomics, so at least one of a
 * racing reader and writer sees the other (Dekker). A reader that meets a raised flag backs out
 * and queues on `wmu` behind the writer, so writers are preferred and cannot starve. Critical
 * sections on either side are short and never block on I/O; the writer's wait yields the CPU.
 */
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

static _Atomic unsigned g_br_seq;
static _Thread_local int tls_br_slot = -1;

static int br_init(struct brlock *l) {
    for (int i = 0; i < BR_SLOTS; i++) atomic_init(&l->slot[i].n, 0);
    atomic_init(&l->writer, 0);
    return pthread_mutex_init(&l->wmu, NULL) == 0 ? 0 : CX_ENOMEM;
}

static void br_destroy(struct brlock *l) { pthread_mutex_destroy(&l->wmu); }

static struct br_slot *br_rdlock(struct brlock *l) {
    if (tls_br_slot < 0)
        tls_br_slot = (int)(atomic_fetch_add_explicit(&g_br_seq, 1, memory_order_relaxed) %
                            BR_SLOTS);
    struct br_slot *s = &l->slot[tls_br_slot];
    for (;;) {
        atomic_fetch_add(&s->n, 1);
        if (!atomic_load(&l->writer)) return s;
        atomic_fetch_sub(&s->n, 1);
        pthread_mutex_lock(&l->wmu); /* wait for the writer to finish */
        pthread_mutex_unlock(&l->wmu);
    }
}

static void br_rdunlock(struct br_slot *s) {
    atomic_fetch_sub_explicit(&s->n, 1, memory_order_release);
}

static void br_wrlock(struct brlock *l) {
    pthread_mutex_lock(&l->wmu);
    atomic_store(&l->writer, 1);
    for (int i = 0; i < BR_SLOTS; i++)
        while (atomic_load(&l->slot[i].n) != 0) sched_yield();
}

static void br_wrunlock(struct brlock *l) {
    atomic_store_explicit(&l->writer, 0, memory_order_release);
    pthread_mutex_unlock(&l->wmu);
}

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

/* ---- small helpers ---- */

static _Thread_local uint64_t tls_last_stamp;
static _Thread_local int tls_shard = -1;

/* Wall-clock ns, strictly increasing within a thread (ties between threads are harmless). */
static uint64_t now_stamp(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
    if (t <= tls_last_stamp) t = tls_last_stamp + 1;
    tls_last_stamp = t;
    return t;
}

static void stamp_text(uint64_t ns, char out[64]) {
    time_t s = (time_t)(ns / CX_NSEC_PER_SEC);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ns % CX_NSEC_PER_SEC));
}

static int digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9') return -1;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Parses "YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z]" (ours, or the seed's isoformat()); 0 if not. */
static uint64_t parse_stamp(const char *s) {
    if (s == NULL) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi, se;
    const char *p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != ' '))
        return 0;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &se))
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    if (t < 0) return 0;
    uint64_t frac = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 9) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                nd++;
            }
            p++;
        }
        while (nd++ < 9) frac *= 10;
    }
    return (uint64_t)t * CX_NSEC_PER_SEC + frac;
}

static uint64_t fnv_more(uint64_t h, const char *s, int with_nul) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    if (with_nul) h *= 1099511628211ULL; /* h ^= 0 is a no-op */
    return h;
}

static uint64_t group_hash(const char *provider, const char *model, const char *sys_hash) {
    uint64_t h = 1469598103934665603ULL;
    h = fnv_more(h, provider, 1);
    h = fnv_more(h, model, 1);
    return fnv_more(h, sys_hash, 1);
}

static uint64_t key_hash(uint64_t gh, const char *prompt) { return fnv_more(gh, prompt, 0); }

/* SHA-256 hex of the system prompt, memoised per thread: callers repeat the same one. */
static _Thread_local struct {
    size_t len;
    int valid;
    char hex[65];
    char text[SYS_MEMO_MAX];
} tls_sys;

static void system_hash(const char *sys, char out[65]) {
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

static struct shard *my_shard(struct cx_cache *c) {
    if (tls_shard < 0)
        tls_shard = (int)(atomic_fetch_add_explicit(&c->shard_seq, 1, memory_order_relaxed) %
                          SHARDS);
    return &c->shards[tls_shard];
}

static void sum_counters(struct cx_cache *c, uint64_t *exact, uint64_t *similar, uint64_t *miss) {
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

/* ---- entries and the index ---- */

static struct entry *entry_new(const char *provider, const char *model, const char *sys_hash,
                               const char *prompt, const char *json, size_t json_len) {
    size_t lp = strlen(provider) + 1, lm = strlen(model) + 1, lq = strlen(prompt) + 1;
    if (json_len > SIZE_MAX / 2) return NULL;
    struct entry *e = cx__malloc(sizeof *e + lp + lm + lq + json_len + 1);
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
    snprintf(e->system_hash, sizeof e->system_hash, "%s", sys_hash);
    e->ghash = group_hash(provider, model, sys_hash);
    e->khash = key_hash(e->ghash, prompt);
    return e;
}

static void index_free(struct index *x) {
    if (x == NULL) return;
    for (size_t i = 0; i < x->n; i++) cx__free(x->ents[i]);
    cx__free(x->ents);
    cx__free(x->ghash);
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

static struct index *index_new(size_t cap) {
    struct index *x = cx__calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    x->cap = cap < 16 ? 16 : cap;
    x->nb = pow2_at_least(x->cap * 2);
    x->ents = cx__calloc(x->cap, sizeof *x->ents);
    x->ghash = cx__calloc(x->cap, sizeof *x->ghash);
    x->mt = cx__calloc(x->cap * CX_EMBED_DIM, sizeof *x->mt);
    x->kb = cx__calloc(x->nb, sizeof *x->kb);
    x->ib = cx__calloc(x->nb, sizeof *x->ib);
    if (!x->ents || !x->ghash || !x->mt || !x->kb || !x->ib) {
        index_free(x);
        return NULL;
    }
    return x;
}

static size_t id_bucket(const struct index *x, int64_t id) {
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 20) & (x->nb - 1);
}

static struct entry *find_id(const struct index *x, int64_t id) {
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

static struct entry *find_key(const struct index *x, uint64_t kh, const char *provider,
                              const char *model, const char *sys_hash, const char *prompt) {
    for (struct entry *e = x->kb[kh & (x->nb - 1)]; e; e = e->knext)
        if (key_equal(e, kh, provider, model, sys_hash, prompt)) return e;
    return NULL;
}

/* Grows x to hold at least `need` rows; 0 or CX_ENOMEM (x unchanged). */
static int index_reserve(struct index *x, size_t need) {
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
    memcpy(gh, x->ghash, x->n * sizeof *gh);
    for (int d = 0; d < CX_EMBED_DIM; d++)
        memcpy(mt + (size_t)d * cap, x->mt + (size_t)d * x->cap, x->n * sizeof *mt);
    cx__free(x->ents);
    cx__free(x->ghash);
    cx__free(x->mt);
    cx__free(x->kb);
    cx__free(x->ib);
    x->ents = ents;
    x->ghash = gh;
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
static void index_add(struct index *x, struct entry *e) {
    CX_ASSERT(x->n < x->cap);
    size_t r = x->n++;
    e->row = r;
    x->ents[r] = e;
    x->ghash[r] = e->ghash;
    for (int d = 0; d < CX_EMBED_DIM; d++) x->mt[(size_t)d * x->cap + r] = e->emb[d];
    size_t kbk = e->khash & (x->nb - 1), ibk = id_bucket(x, e->id);
    e->knext = x->kb[kbk];
    x->kb[kbk] = e;
    e->inext = x->ib[ibk];
    x->ib[ibk] = e;
}

/* Unlinks e and moves the last row into its place; returns e (not freed). */
static struct entry *index_remove(struct index *x, struct entry *e) {
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
        x->ghash[r] = m->ghash;
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
 * at a time. Only rows of group gh compete. Caller holds c->lock (read).
 */
static struct entry *scan_similar(const struct index *x, uint64_t gh, const float *q,
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
        const uint64_t *g = x->ghash + base;
        for (size_t i = 0; i < len; i++)
            if (g[i] == gh && sc[i] > best) {
                best = sc[i];
                bi = base + i;
            }
    }
    if (bi == SIZE_MAX) return NULL;
    *best_out = best;
    return x->ents[bi];
}

static void touch(struct cx_cache *c, struct entry *e) {
    atomic_store_explicit(&e->stamp, now_stamp(), memory_order_relaxed);
    atomic_fetch_add_explicit(&e->pend_hits, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&c->dirty, memory_order_relaxed))
        atomic_store_explicit(&c->dirty, 1, memory_order_release);
}

/* ---- statements on the writer connection (writer thread only) ---- */

static int prep(sqlite3 *db, sqlite3_stmt **st, const char *sql, struct cx_errinfo *ei) {
    if (*st) return 0;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return cx_pool_sqlite_error(db, rc, "cache: cannot prepare a statement", ei);
    }
    return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, struct cx_errinfo *ei) {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return cx_pool_sqlite_error(db, rc, what, ei);
    return 0;
}

/* Increments the generation; *gen = the new value. */
static int bump_generation(struct cx_cache *c, sqlite3 *db, uint64_t *gen, struct cx_errinfo *ei) {
    int rc = prep(db, &c->st_bump,
                  "UPDATE llm_cache_meta SET generation = generation + 1 WHERE id = 1 "
                  "RETURNING generation",
                  ei);
    if (rc < 0) return rc;
    int s = sqlite3_step(c->st_bump);
    if (s == SQLITE_ROW) *gen = (uint64_t)sqlite3_column_int64(c->st_bump, 0);
    int s2 = s == SQLITE_ROW ? sqlite3_step(c->st_bump) : s;
    sqlite3_reset(c->st_bump);
    if (s != SQLITE_ROW || s2 != SQLITE_DONE)
        return cx_pool_sqlite_error(db, s != SQLITE_ROW ? s : s2, "cache: generation update", ei);
    return 0;
}

/* ---- flushing access times and counters ---- */

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

/* Collects what changed (writer thread) and writes it. What was collected stays in f, so that
 * flush_finish can mark it written or, when the transaction failed, put it back. */
static int flush_write(struct cx_cache *c, sqlite3 *db, struct flush *f, struct cx_errinfo *ei) {
    memset(f, 0, sizeof *f);
    uint64_t e, s, m;
    sum_counters(c, &e, &s, &m);
    f->dhits = e + s - c->collected_hits;
    f->dmisses = m - c->collected_misses;
    c->collected_hits += f->dhits;
    c->collected_misses += f->dmisses;
    if (atomic_exchange_explicit(&c->dirty, 0, memory_order_acquire)) {
        struct br_slot *rs = br_rdlock(&c->lock);
        struct index *x = c->idx;
        size_t cnt = 0;
        for (size_t i = 0; i < x->n; i++) {
            struct entry *en = x->ents[i];
            if (atomic_load_explicit(&en->stamp, memory_order_relaxed) !=
                    atomic_load_explicit(&en->flushed, memory_order_relaxed) ||
                atomic_load_explicit(&en->pend_hits, memory_order_relaxed) != 0)
                cnt++;
        }
        if (cnt) f->recs = cx__malloc(cnt * sizeof *f->recs);
        if (cnt && f->recs == NULL) {
            br_rdunlock(rs);
            atomic_store(&c->dirty, 1);
            return cx__err(ei, CX_ENOMEM, "cache: out of memory flushing access times");
        }
        for (size_t i = 0; i < x->n && f->n < cnt; i++) {
            struct entry *en = x->ents[i];
            uint64_t st = atomic_load_explicit(&en->stamp, memory_order_relaxed);
            if (st != atomic_load_explicit(&en->flushed, memory_order_relaxed) ||
                atomic_load_explicit(&en->pend_hits, memory_order_relaxed) != 0) {
                f->recs[f->n].id = en->id;
                f->recs[f->n].stamp = st;
                f->recs[f->n].hits = atomic_exchange_explicit(&en->pend_hits, 0,
                                                              memory_order_relaxed);
                f->n++;
            }
        }
        br_rdunlock(rs);
    }
    int rc = 0;
    if (f->n) {
        rc = prep(db, &c->st_touch,
                  "UPDATE llm_cache_entries SET last_accessed = ?1, hit_count = hit_count + ?2 "
                  "WHERE id = ?3",
                  ei);
        for (size_t i = 0; rc == 0 && i < f->n; i++) {
            char ts[64];
            stamp_text(f->recs[i].stamp, ts);
            sqlite3_bind_text(c->st_touch, 1, ts, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(c->st_touch, 2, f->recs[i].hits);
            sqlite3_bind_int64(c->st_touch, 3, f->recs[i].id);
            rc = step_done(db, c->st_touch, "cache: access-time update", ei);
        }
    }
    if (rc == 0 && (f->dhits || f->dmisses)) {
        rc = prep(db, &c->st_stats,
                  "UPDATE llm_cache_stats SET hits = hits + ?1, misses = misses + ?2 WHERE id = 1",
                  ei);
        if (rc == 0) {
            sqlite3_bind_int64(c->st_stats, 1, (sqlite3_int64)f->dhits);
            sqlite3_bind_int64(c->st_stats, 2, (sqlite3_int64)f->dmisses);
            rc = step_done(db, c->st_stats, "cache: counter update", ei);
        }
    }
    return rc;
}

/* After the flush's transaction committed (ok) or failed (!ok). Writer thread. */
static void flush_finish(struct cx_cache *c, struct flush *f, int ok) {
    if (!ok) {
        c->collected_hits -= f->dhits;
        c->collected_misses -= f->dmisses;
    }
    if (f->n) {
        struct br_slot *rs = br_rdlock(&c->lock);
        for (size_t i = 0; i < f->n; i++) {
            struct entry *en = find_id(c->idx, f->recs[i].id);
            if (en == NULL) continue;
            if (ok) {
                uint64_t cur = atomic_load_explicit(&en->flushed, memory_order_relaxed);
                /* Only the writer thread stores `flushed` while readers merely load it, so a
                 * plain compare-then-store cannot lose an update. */
                if (cur < f->recs[i].stamp)
                    atomic_store_explicit(&en->flushed, f->recs[i].stamp, memory_order_relaxed);
            } else {
                atomic_fetch_add_explicit(&en->pend_hits, f->recs[i].hits, memory_order_relaxed);
            }
        }
        br_rdunlock(rs);
        if (!ok) atomic_store(&c->dirty, 1);
    }
    cx__free(f->recs);
    f->recs = NULL;
    f->n = 0;
}

/* ---- a write with a waiter: async write + completion, so done runs in commit order ---- */

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

/* ---- reload ---- */

/* Reads the whole table and the generation in one read transaction into a new index. */
static int load_index(struct cx_cache *c, struct index **out, struct cx_errinfo *ei) {
    sqlite3 *db = NULL;
    int rc = cx_pool_checkout(c->pool, CX_DEADLINE_NONE, &db, ei);
    if (rc < 0) return rc;
    sqlite3_stmt *st = NULL;
    struct index *x = NULL;
    int s = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (s != SQLITE_OK) {
        rc = cx_pool_sqlite_error(db, s, "cache: begin reload", ei);
        goto out;
    }
    uint64_t gen = 0;
    s = sqlite3_prepare_v2(db, "SELECT generation FROM llm_cache_meta WHERE id = 1", -1, &st,
                           NULL);
    if (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        gen = (uint64_t)sqlite3_column_int64(st, 0);
        s = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (s != SQLITE_OK) {
        rc = cx_pool_sqlite_error(db, s, "cache: reading the generation", ei);
        goto out;
    }
    size_t n = 0;
    s = sqlite3_prepare_v2(db, "SELECT count(*) FROM llm_cache_entries", -1, &st, NULL);
    if (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        n = (size_t)sqlite3_column_int64(st, 0);
        s = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (s != SQLITE_OK) {
        rc = cx_pool_sqlite_error(db, s, "cache: counting entries", ei);
        goto out;
    }
    size_t want = n > c->opt.max_entries ? n : c->opt.max_entries;
    x = index_new(want + 1);
    if (x == NULL) {
        rc = cx__err(ei, CX_ENOMEM, "cache: out of memory loading the index");
        goto out;
    }
    x->gen = gen;
    s = sqlite3_prepare_v2(db,
                           "SELECT id, provider, model, system_hash, prompt, embedding, "
                           "commands_json, last_accessed FROM llm_cache_entries",
                           -1, &st, NULL);
    while (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *prov = (const char *)sqlite3_column_text(st, 1);
        const char *model = (const char *)sqlite3_column_text(st, 2);
        const char *sh = (const char *)sqlite3_column_text(st, 3);
        const char *prompt = (const char *)sqlite3_column_text(st, 4);
        const char *json = (const char *)sqlite3_column_text(st, 6);
        int json_len = sqlite3_column_bytes(st, 6);
        if (!prov || !model || !sh || !prompt || !json) {
            s = SQLITE_OK;
            continue; /* NOT NULL columns: cannot happen with our schema; skip the row */
        }
        struct entry *e = entry_new(prov, model, sh, prompt, json, (size_t)json_len);
        if (e == NULL || index_reserve(x, x->n + 1) < 0) {
            cx__free(e);
            rc = cx__err(ei, CX_ENOMEM, "cache: out of memory loading the index");
            goto out;
        }
        e->id = sqlite3_column_int64(st, 0);
        const void *blob = sqlite3_column_blob(st, 5);
        if (blob && sqlite3_column_bytes(st, 5) == (int)sizeof e->emb) {
            memcpy(e->emb, blob, sizeof e->emb); /* little-endian float32, as we store it */
        } else {
            cx_embed(prompt, e->emb); /* a row from another writer with another format */
        }
        uint64_t ts = parse_stamp((const char *)sqlite3_column_text(st, 7));
        atomic_init(&e->stamp, ts);
        atomic_init(&e->flushed, ts);
        atomic_init(&e->pend_hits, 0);
        index_add(x, e);
        s = SQLITE_OK;
    }
    if (s != SQLITE_DONE && s != SQLITE_OK) {
        rc = cx_pool_sqlite_error(db, s, "cache: reading entries", ei);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    cx_pool_checkin(c->pool, db);
    if (rc < 0) {
        index_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

/* Swaps x in if it is newer than the index (carrying over unflushed hits), or always when
 * `force`; frees the loser. */
static void install_index(struct cx_cache *c, struct index *x, int force) {
    br_wrlock(&c->lock);
    struct index *old = c->idx;
    if (!force && old && old->gen != 0 && x->gen <= old->gen) {
        br_wrunlock(&c->lock);
        index_free(x);
        return;
    }
    if (old) {
        for (size_t i = 0; i < x->n; i++) {
            struct entry *e = x->ents[i];
            struct entry *o = find_id(old, e->id);
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
    br_wrunlock(&c->lock);
    index_free(old);
}

static int reload(struct cx_cache *c, int force, struct cx_errinfo *ei) {
    struct index *x = NULL;
    int rc = load_index(c, &x, ei);
    if (rc < 0) return rc;
    install_index(c, x, force);
    return 0;
}

/* Reads the generation and reloads when it differs from the index's. */
static int refresh(struct cx_cache *c, struct cx_errinfo *ei) {
    /* The index's generation first: it is committed, so a database read after it that shows a
     * lower one can only come from a replaced file, never from a race with our own writes. */
    struct br_slot *rs = br_rdlock(&c->lock);
    uint64_t have = c->idx->gen;
    br_rdunlock(rs);
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
    struct br_slot *rs = br_rdlock(&c->lock);
    uint64_t have = c->idx->gen;
    br_rdunlock(rs);
    if (have < want) {
        if (reload(c, 0, NULL) < 0) return; /* retried at the next lookup */
        rs = br_rdlock(&c->lock);
        have = c->idx->gen;
        br_rdunlock(rs);
    }
    /* Reached, or the database now shows an older generation (the file was replaced): either
     * way nothing more to wait for. */
    atomic_compare_exchange_strong(&c->min_gen, &want, 0);
}

/* ---- async flush ---- */

static int flush_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct op *o = arg;
    return flush_write(o->c, db, &o->fl, ei);
}

static void flush_done(int rc, void *arg) {
    struct op *o = arg;
    flush_finish(o->c, &o->fl, rc == 0);
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
    if (cx_pool_write_async(c->pool, flush_fn, o, flush_done, NULL) < 0) {
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
}

static const char *const k_schema =
    "CREATE TABLE IF NOT EXISTS llm_cache_entries ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " provider TEXT NOT NULL, model TEXT NOT NULL, system_hash TEXT NOT NULL,"
    " prompt TEXT NOT NULL, prompt_hash TEXT NOT NULL, embedding BLOB NOT NULL,"
    " commands_json TEXT NOT NULL, created_at TEXT NOT NULL, last_accessed TEXT NOT NULL,"
    " hit_count INTEGER DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_llm_cache_key"
    " ON llm_cache_entries(provider, model, system_hash, prompt_hash);"
    "CREATE INDEX IF NOT EXISTS idx_llm_cache_lru ON llm_cache_entries(last_accessed, id);"
    "CREATE TABLE IF NOT EXISTS llm_cache_stats (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0);"
    "INSERT OR IGNORE INTO llm_cache_stats(id, hits, misses) VALUES (1, 0, 0);"
    "CREATE TABLE IF NOT EXISTS llm_cache_meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " generation INTEGER NOT NULL DEFAULT 1);"
    "INSERT OR IGNORE INTO llm_cache_meta(id, generation) VALUES (1, 1);";

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
    int rc = cx_pool_exec(pool, k_schema, ei);
    if (rc < 0) return name_db(pool, rc, ei);
    struct cx_cache *c = cx__calloc(1, sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_cache_new: out of memory");
    c->pool = pool;
    c->opt = *o;
    if (br_init(&c->lock) < 0) {
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_cache_new: cannot create a lock");
    }
    if (cx__mutex_init(&c->pmu) < 0) {
        br_destroy(&c->lock);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_cache_new: cannot create a lock");
    }
    if (cx__cond_init(&c->pcv) < 0) {
        br_destroy(&c->lock);
        cx__mutex_destroy(&c->pmu);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_cache_new: cannot create a condition variable");
    }
    struct index *x = NULL;
    rc = load_index(c, &x, ei);
    if (rc < 0) {
        br_destroy(&c->lock);
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

static int finalize_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)db;
    (void)ei;
    struct cx_cache *c = arg;
    sqlite3_stmt **sts[] = {&c->st_bump, &c->st_upsert, &c->st_count,
                            &c->st_evict, &c->st_touch, &c->st_stats,  &c->st_clear};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) {
        sqlite3_finalize(*sts[i]);
        *sts[i] = NULL;
    }
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
        op_run(&o, flush_fn, flush_done, NULL); /* best effort: counters and access times */
        op_destroy(&o);
    }
    /* Statements belong to the writer connection: finalize them on the writer thread. This also
     * waits out any async flush queued before (the pool completes writes in order). If even this
     * cannot be queued (out of memory for the queue item), finalize here: the writer is then
     * idle for this cache, and statements are only touched by this cache's callbacks. */
    if (cx_pool_write(c->pool, finalize_fn, c, NULL) < 0) finalize_fn(NULL, c, NULL);
    index_free(c->idx);
    br_destroy(&c->lock);
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
    uint64_t now = cx_now_ns();
    maybe_refresh(c, now);
    ensure_gen(c);
    maybe_flush(c, now);

    char sh[65];
    system_hash(k->system_prompt, sh);
    uint64_t gh = group_hash(k->provider, k->model, sh);
    uint64_t kh = key_hash(gh, k->prompt);
    struct shard *shd = my_shard(c);

    struct br_slot *rs = br_rdlock(&c->lock);
    struct index *x = c->idx;
    int sim = 0;
    struct entry *e = find_key(x, kh, k->provider, k->model, sh, k->prompt);
    if (e == NULL && c->opt.similarity_threshold <= 1.0) {
        float q[CX_EMBED_DIM];
        cx_embed(k->prompt, q);
        float best = 0.0f;
        e = scan_similar(x, gh, q, &best);
        if (e && !((double)best >= c->opt.similarity_threshold &&
                   strcmp(e->provider, k->provider) == 0 && strcmp(e->model, k->model) == 0 &&
                   strcmp(e->system_hash, sh) == 0))
            e = NULL;
        sim = 1;
    }
    if (e == NULL) {
        br_rdunlock(rs);
        atomic_fetch_add_explicit(&shd->miss, 1, memory_order_relaxed);
        return CX_ENOENT;
    }
    char *copy = cx__malloc(e->json_len + 1);
    if (copy == NULL) {
        br_rdunlock(rs);
        return cx__err(ei, CX_ENOMEM, "cx_cache_get: out of memory copying a %zu-byte value",
                       e->json_len);
    }
    memcpy(copy, e->json, e->json_len + 1);
    touch(c, e);
    br_rdunlock(rs);
    atomic_fetch_add_explicit(sim ? &shd->similar : &shd->exact, 1, memory_order_relaxed);
    *commands_json = copy;
    if (similar) *similar = sim;
    return 0;
}

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

/* Set on the writer thread while a put's done callback runs, to refuse puts from inside it. */
static _Thread_local int tls_in_put_done;

static int group_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct put *g = arg;
    struct cx_cache *c = g->c;
    cx__mutex_lock(&c->pmu);
    g->glist = c->phead;
    c->phead = c->ptail = NULL;
    c->group_queued = 0;
    cx__mutex_unlock(&c->pmu);
    CX_ASSERT(g->glist != NULL);
    int rc = flush_write(c, db, &g->fl, ei);
    if (rc < 0) goto fail;
    rc = prep(db, &c->st_upsert,
              "INSERT INTO llm_cache_entries(provider, model, system_hash, prompt, prompt_hash,"
              " embedding, commands_json, created_at, last_accessed, hit_count)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 0)"
              " ON CONFLICT(provider, model, system_hash, prompt_hash) DO UPDATE SET"
              " prompt = excluded.prompt, embedding = excluded.embedding,"
              " commands_json = excluded.commands_json, last_accessed = excluded.last_accessed"
              " RETURNING id",
              ei);
    if (rc < 0) goto fail;
    for (struct put *o = g->glist; o; o = o->gnext) {
        char ts[64];
        uint64_t stamp = now_stamp();
        stamp_text(stamp, ts);
        atomic_init(&o->e->stamp, stamp);
        atomic_init(&o->e->flushed, stamp);
        sqlite3_stmt *st = c->st_upsert;
        sqlite3_bind_text(st, 1, o->e->provider, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, o->e->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, o->sys_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, o->e->prompt, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, o->prompt_hash, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 6, o->e->emb, (int)sizeof o->e->emb, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, o->e->json, (int)o->e->json_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, ts, -1, SQLITE_TRANSIENT);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) o->e->id = sqlite3_column_int64(st, 0);
        int s2 = s == SQLITE_ROW ? sqlite3_step(st) : s;
        sqlite3_clear_bindings(st);
        sqlite3_reset(st);
        if (s != SQLITE_ROW || s2 != SQLITE_DONE) {
            rc = cx_pool_sqlite_error(db, s != SQLITE_ROW ? s : s2, "cache: insert", ei);
            goto fail;
        }
    }
    rc = prep(db, &c->st_count, "SELECT count(*) FROM llm_cache_entries", ei);
    if (rc < 0) goto fail;
    int64_t n = 0;
    int s = sqlite3_step(c->st_count);
    if (s == SQLITE_ROW) n = sqlite3_column_int64(c->st_count, 0);
    sqlite3_reset(c->st_count);
    if (s != SQLITE_ROW) {
        rc = cx_pool_sqlite_error(db, s, "cache: count", ei);
        goto fail;
    }
    if (n > (int64_t)c->opt.max_entries) {
        size_t extra = (size_t)(n - (int64_t)c->opt.max_entries);
        g->evicted = cx__malloc(extra * sizeof *g->evicted);
        if (g->evicted == NULL) {
            rc = cx__err(ei, CX_ENOMEM, "cache: out of memory evicting");
            goto fail;
        }
        rc = prep(db, &c->st_evict,
                  "DELETE FROM llm_cache_entries WHERE id IN (SELECT id FROM llm_cache_entries"
                  " ORDER BY last_accessed, id LIMIT ?1) RETURNING id",
                  ei);
        if (rc < 0) goto fail;
        sqlite3_bind_int64(c->st_evict, 1, (sqlite3_int64)extra);
        while ((s = sqlite3_step(c->st_evict)) == SQLITE_ROW) {
            if (g->nevicted < extra)
                g->evicted[g->nevicted++] = sqlite3_column_int64(c->st_evict, 0);
        }
        sqlite3_reset(c->st_evict);
        if (s != SQLITE_DONE) {
            rc = cx_pool_sqlite_error(db, s, "cache: eviction", ei);
            goto fail;
        }
    }
    rc = bump_generation(c, db, &g->gen, ei);
    if (rc == 0) return 0;
fail:
    if (ei) g->ei = *ei; /* done only gets the code: keep the message for the waiters */
    return rc;
}

/* Applies a committed group to the index; 0 when it could not (then a reload is due).
 * Caller holds c->lock (write). */
static int group_apply(struct cx_cache *c, struct put *g, size_t count) {
    struct index *x = c->idx;
    if (x->gen == 0 || x->gen + 1 != g->gen || index_reserve(x, x->n + count) < 0) return 0;
    for (struct put *o = g->glist; o; o = o->gnext) {
        struct entry *old = find_id(x, o->e->id);
        if (old) cx__free(index_remove(x, old));
        index_add(x, o->e);
        o->e = NULL;
    }
    for (size_t i = 0; i < g->nevicted; i++) {
        struct entry *v = find_id(x, g->evicted[i]);
        if (v) cx__free(index_remove(x, v));
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
        flush_finish(c, &g->fl, rc == 0);
    }
    size_t count = 0;
    for (struct put *o = g->glist; o; o = o->gnext) count++;
    int applied = 1;
    if (rc == 0) {
        br_wrlock(&c->lock);
        applied = group_apply(c, g, count);
        br_wrunlock(&c->lock);
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
    system_hash(k->system_prompt, p->sys_hash);
    cx__sha256_hex(k->prompt, strlen(k->prompt), p->prompt_hash);
    p->e = entry_new(k->provider, k->model, p->sys_hash, k->prompt, commands_json, jl);
    if (p->e == NULL) {
        cx__free(p);
        return cx__err(ei, CX_ENOMEM, "%s: out of memory", fn);
    }
    cx_embed(k->prompt, p->e->emb);

    /* Queueing the group write under pmu makes joining a group and queueing its write one step:
     * a put either joins a group whose write is queued or fails alone, before anyone joined. The
     * writer's group_fn takes pmu only inside the write, never while the pool holds its lock. */
    cx__mutex_lock(&c->pmu);
    if (!c->group_queued) {
        rc = cx_pool_write_async(c->pool, group_fn, p, group_done, ei);
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

static int clear_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct op *o = arg;
    struct cx_cache *c = o->c;
    int rc = flush_write(c, db, &o->fl, ei);
    if (rc < 0) return rc;
    rc = prep(db, &c->st_clear, "DELETE FROM llm_cache_entries", ei);
    if (rc < 0) return rc;
    rc = step_done(db, c->st_clear, "cache: clear", ei);
    if (rc < 0) return rc;
    return bump_generation(c, db, &o->gen, ei);
}

static void clear_done(int rc, void *arg) {
    struct op *o = arg;
    struct cx_cache *c = o->c;
    flush_finish(c, &o->fl, rc == 0);
    o->rc = rc;
    if (rc == 0) {
        br_wrlock(&c->lock);
        struct index *x = c->idx;
        if (x->gen != 0 && x->gen + 1 == o->gen) {
            while (x->n) cx__free(index_remove(x, x->ents[x->n - 1]));
            x->gen = o->gen;
        } else {
            o->need_reload = 1;
            atomic_store(&c->stale, 1);
        }
        br_wrunlock(&c->lock);
    }
    op_signal(o);
}

int cx_cache_clear(struct cx_cache *c, struct cx_errinfo *ei) {
    if (c == NULL) return cx__err(ei, CX_EINVAL, "cx_cache_clear: cache is NULL");
    struct op o;
    if (op_init(&o, c) < 0) return cx__err(ei, CX_ENOMEM, "cx_cache_clear: out of memory");
    int rc = op_run(&o, clear_fn, clear_done, ei);
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
    int rc = op_run(&o, flush_fn, flush_done, ei);
    op_destroy(&o);
    if (rc < 0) return rc;
    uint64_t e, s, m;
    sum_counters(c, &e, &s, &m);
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
