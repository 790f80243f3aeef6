/*
 * cache_store.c - the cache's SQL side: the schema, loading the index from a reader connection,
 * the group write of puts, the clear, flushing access times and counters, and the statements
 * prepared on the writer connection.
 *
 * Every write callback here runs on the pool's writer thread; what happens after a commit
 * (index updates, waking callers) is in cache.c.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cache_internal.h"
#include "cx/clock.h"
#include "cx/dbpool.h"

static _Thread_local uint64_t tls_last_stamp;

/* Wall-clock ns, strictly increasing within a thread (ties between threads are harmless). */
uint64_t cx__cache_now_stamp(void) {
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

/* Collects what changed (writer thread) and writes it. What was collected stays in f, so that
 * cx__cache_flush_finish can mark it written or, when the transaction failed, put it back. */
static int flush_write(struct cx_cache *c, sqlite3 *db, struct flush *f, struct cx_errinfo *ei) {
    memset(f, 0, sizeof *f);
    uint64_t e, s, m;
    cx__cache_sum_counters(c, &e, &s, &m);
    f->dhits = e + s - c->collected_hits;
    f->dmisses = m - c->collected_misses;
    c->collected_hits += f->dhits;
    c->collected_misses += f->dmisses;
    if (atomic_exchange_explicit(&c->dirty, 0, memory_order_acquire)) {
        struct br_slot *rs = cx__br_rdlock(&c->lock);
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
            cx__br_rdunlock(rs);
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
        cx__br_rdunlock(rs);
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
void cx__cache_flush_finish(struct cx_cache *c, struct flush *f, int ok) {
    if (!ok) {
        c->collected_hits -= f->dhits;
        c->collected_misses -= f->dmisses;
    }
    if (f->n) {
        struct br_slot *rs = cx__br_rdlock(&c->lock);
        for (size_t i = 0; i < f->n; i++) {
            struct entry *en = cx__cache_find_id(c->idx, f->recs[i].id);
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
        cx__br_rdunlock(rs);
        if (!ok) atomic_store(&c->dirty, 1);
    }
    cx__free(f->recs);
    f->recs = NULL;
    f->n = 0;
}

/* ---- reload ---- */

/* Reads the whole table and the generation in one read transaction into a new index. */
int cx__cache_load_index(struct cx_cache *c, struct index **out, struct cx_errinfo *ei) {
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
    x = cx__cache_index_new(want + 1, c->opt.entity_match);
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
        struct entry *e = cx__cache_entry_new(prov, model, sh, prompt, json, (size_t)json_len,
                                              c->opt.entity_match);
        if (e == NULL || cx__cache_index_reserve(x, x->n + 1) < 0) {
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
        cx__cache_index_add(x, e);
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
        cx__cache_index_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int cx__cache_flush_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct op *o = arg;
    return flush_write(o->c, db, &o->fl, ei);
}

const char *const cx__cache_schema =
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

int cx__cache_finalize_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
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

int cx__cache_group_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
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
        uint64_t stamp = cx__cache_now_stamp();
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

int cx__cache_clear_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
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
