/*
 * stress_cache.c - hundreds of threads on two caches over one file (two pools, as two
 * processes would have): lookups, puts with eviction churn, clears and stats at once.
 *
 * Usage: stress_cache [--seed S] [--iters N] [--threads T]
 *   T threads (default 200) each run N/10 operations (at least 1) on a random one of the two
 *   caches, chosen by a PRNG seeded with S and the thread number. Exits non-zero when an
 *   invariant breaks:
 *   - an exact hit returns a value written for exactly that key;
 *   - a similarity hit returns a value written for a key of the same group whose prompt has a
 *     cosine >= the threshold with the query;
 *   - no call fails except with a miss;
 *   - at the end the table holds at most max_entries rows, every row is an exact hit in both
 *     caches (after their staleness bound) with the stored value, and the hit/miss totals equal
 *     the sum of both caches' own counters.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/embed.h"
#include "s_util.h"

#define MAX_ENTRIES 40
#define NKEYS 120

static const char *k_words[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "python",
                                "mysql", "apache", "git", "curl", "vim", "htop"};
#define NWORDS (sizeof k_words / sizeof k_words[0])

struct shared {
    struct cx_pool *pool[2];
    struct cx_cache *cache[2];
    _Atomic long failures, exact, similar, misses, puts;
    pthread_barrier_t start;
    int ops;
    uint64_t seed;
};

static struct shared g;

static void fail(const char *what, const char *msg) {
    fprintf(stderr, "stress_cache: %s: %s\n", what, msg);
    atomic_fetch_add(&g.failures, 1);
}

/* Key i: two systems prompts (groups), prompts of a few words; the "please" variant of a key
 * is an exact miss but similar to it. */
static void make_prompt(int i, int variant, char *buf, size_t n) {
    snprintf(buf, n, "%sinstall %s %s and %s key%d", variant ? "please " : "",
             k_words[i % NWORDS], k_words[(i / 3) % NWORDS], k_words[(i / 7) % NWORDS], i);
}
static const char *system_of(int i) { return i % 2 ? "system B" : "system A"; }

/* Values name their key: "<prompt>|<system>|<writer tag>". */
static int value_matches(const char *json, const char *prompt, const char *system) {
    size_t lp = strlen(prompt), ls = strlen(system);
    return strncmp(json, prompt, lp) == 0 && json[lp] == '|' &&
           strncmp(json + lp + 1, system, ls) == 0 && json[lp + 1 + ls] == '|';
}

static void check_similar(const char *json, const char *query, const char *system) {
    const char *bar = strchr(json, '|');
    if (bar == NULL) {
        fail("similar hit", "value without a key");
        return;
    }
    char stored[256];
    size_t n = (size_t)(bar - json) < sizeof stored - 1 ? (size_t)(bar - json) : sizeof stored - 1;
    memcpy(stored, json, n);
    stored[n] = '\0';
    if (!value_matches(json, stored, system)) {
        fail("similar hit", "value of another group");
        return;
    }
    float a[CX_EMBED_DIM], b[CX_EMBED_DIM];
    cx_embed(query, a);
    cx_embed(stored, b);
    if (cx_embed_cosine(a, b) < 0.86f - 1e-4f) fail("similar hit", "below the threshold");
}

static void *worker(void *arg) {
    long tid = (long)arg;
    uint64_t s = g.seed * 2654435761UL + (unsigned long)tid * 40503UL + 1;
    char prompt[256], value[400];
    pthread_barrier_wait(&g.start);
    for (int i = 0; i < g.ops; i++) {
        int ci = (int)(s_xorshift64(&s) % 2);
        struct cx_cache *c = g.cache[ci];
        int key = (int)(s_xorshift64(&s) % NKEYS);
        uint64_t op = s_xorshift64(&s) % 100;
        struct cx_errinfo ei;
        const char *system = system_of(key);
        if (op < 65) {
            int variant = (int)(s_xorshift64(&s) % 3 == 0);
            make_prompt(key, variant, prompt, sizeof prompt);
            struct cx_cache_key k = {"openai", "gpt-4o", system, prompt};
            char *json = NULL;
            int similar = 0;
            int rc = cx_cache_get(c, &k, &json, &similar, &ei);
            if (rc == 0) {
                if (similar) {
                    atomic_fetch_add(&g.similar, 1);
                    check_similar(json, prompt, system);
                } else {
                    atomic_fetch_add(&g.exact, 1);
                    if (!value_matches(json, prompt, system)) fail("exact hit", "wrong value");
                }
                cx_free(json);
            } else if (rc == CX_ENOENT) {
                atomic_fetch_add(&g.misses, 1);
            } else {
                fail("get", ei.msg);
            }
        } else if (op < 97) {
            make_prompt(key, 0, prompt, sizeof prompt);
            snprintf(value, sizeof value, "%s|%s|t%ld.%d", prompt, system, tid, i);
            struct cx_cache_key k = {"openai", "gpt-4o", system, prompt};
            if (cx_cache_put(c, &k, value, &ei) < 0) fail("put", ei.msg);
            else atomic_fetch_add(&g.puts, 1);
        } else if (op < 99) {
            struct cx_cache_stats st;
            if (cx_cache_stats(c, &st, &ei) < 0) fail("stats", ei.msg);
        } else {
            if (cx_cache_clear(c, &ei) < 0) fail("clear", ei.msg);
        }
    }
    return NULL;
}

/* After the run: both caches agree with the table. */
static int final_check(void) {
    int bad = 0;
    sqlite3 *db;
    struct cx_errinfo ei;
    if (cx_pool_checkout(g.pool[0], CX_DEADLINE_NONE, &db, &ei) < 0) {
        fprintf(stderr, "stress_cache: %s\n", ei.msg);
        return 1;
    }
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT prompt, commands_json, system_hash FROM llm_cache_entries", -1,
                       &st, NULL);
    long rows = 0;
    char (*prompts)[256] = calloc(NKEYS * 2, 256);
    char (*values)[400] = calloc(NKEYS * 2, 400);
    while (sqlite3_step(st) == SQLITE_ROW && rows < NKEYS * 2) {
        snprintf(prompts[rows], 256, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(values[rows], 400, "%s", (const char *)sqlite3_column_text(st, 1));
        rows++;
    }
    sqlite3_finalize(st);
    cx_pool_checkin(g.pool[0], db);
    if (rows > MAX_ENTRIES) {
        fprintf(stderr, "stress_cache: %ld rows, max_entries %d\n", rows, MAX_ENTRIES);
        bad = 1;
    }
    /* Wait out the staleness bound (refresh interval 1 ms), then every row must be an exact
     * hit with its value in both caches. */
    cx_sleep_ns(20 * CX_NSEC_PER_MSEC);
    for (long r = 0; r < rows; r++) {
        const char *bar = strchr(values[r], '|');
        const char *system = bar && strncmp(bar + 1, "system B", 8) == 0 ? "system B" : "system A";
        for (int ci = 0; ci < 2; ci++) {
            struct cx_cache_key k = {"openai", "gpt-4o", system, prompts[r]};
            char *json = NULL;
            int similar = 0;
            int rc = cx_cache_get(g.cache[ci], &k, &json, &similar, &ei);
            if (rc != 0 || similar || strcmp(json, values[r]) != 0) {
                fprintf(stderr, "stress_cache: cache %d disagrees with the table on '%s' (rc %d)\n",
                        ci, prompts[r], rc);
                bad = 1;
            }
            cx_free(json);
        }
    }
    free(prompts);
    free(values);
    struct cx_cache_stats s0, s1;
    if (cx_cache_stats(g.cache[0], &s0, &ei) < 0 || cx_cache_stats(g.cache[1], &s1, &ei) < 0) {
        fprintf(stderr, "stress_cache: stats: %s\n", ei.msg);
        return 1;
    }
    uint64_t local = s0.exact_hits + s0.similar_hits + s0.local_misses + s1.exact_hits +
                     s1.similar_hits + s1.local_misses;
    if (s1.hits + s1.misses != local) {
        fprintf(stderr, "stress_cache: totals %llu+%llu != the caches' own counters %llu\n",
                (unsigned long long)s1.hits, (unsigned long long)s1.misses,
                (unsigned long long)local);
        bad = 1;
    }
    return bad;
}

int main(int argc, char **argv) {
    struct s_args a = {(uint64_t)cx_now_ns(), 200, 200};
    s_args_parse("cache", argc, argv, &a, 4096);
    int threads = a.threads;
    g.seed = a.seed;
    g.ops = (int)(a.iters / 10 > 0 ? a.iters / 10 : 1);

    char path[4096];
    s_tmp_db("cache", "stress.db", path, sizeof path);
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    po.readers = 4;
    po.checkout_timeout_ms = -1;
    po.busy_timeout_ms = 60000;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = MAX_ENTRIES;
    co.refresh_interval_ms = 1;
    co.flush_interval_ms = 2;
    struct cx_errinfo ei;
    for (int i = 0; i < 2; i++) {
        if (cx_pool_new(&po, &g.pool[i], &ei) < 0 ||
            cx_cache_new(g.pool[i], &co, &g.cache[i], &ei) < 0) {
            fprintf(stderr, "stress_cache: open: %s\n", ei.msg);
            return 1;
        }
    }
    pthread_barrier_init(&g.start, NULL, (unsigned)threads);
    s_run_threads("cache", threads, worker);
    pthread_barrier_destroy(&g.start);
    int bad = final_check() || atomic_load(&g.failures) != 0;
    printf("stress_cache: %ld exact hits, %ld similar hits, %ld misses, %ld puts, "
           "%ld failures: %s\n",
           atomic_load(&g.exact), atomic_load(&g.similar), atomic_load(&g.misses),
           atomic_load(&g.puts), atomic_load(&g.failures), bad ? "FAIL" : "ok");
    for (int i = 0; i < 2; i++) {
        cx_cache_free(g.cache[i]);
        cx_pool_free(g.pool[i]);
    }
    s_tmp_db_remove(path);
    return bad;
}
