/* test_cache.c - the semantic cache: exact, similar and missed lookups, eviction order (also
 * after a reopen), counters, bad input, two caches on one file, threads, allocation failures. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/embed.h"
#include "cx_internal.h"
#include "t_util.h"

struct fx {
    struct cx_pool *pool;
    struct cx_cache *cache;
};

static void fx_open(struct fx *f, const char *name, size_t max_entries, int refresh_ms) {
    char *path = t_path(t_dir, name);
    f->pool = t_pool_open(path, 3);
    struct cx_errinfo ei;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = max_entries;
    co.refresh_interval_ms = refresh_ms;
    int rc = cx_cache_new(f->pool, &co, &f->cache, &ei);
    if (rc < 0) fprintf(stderr, "%s\n", ei.msg);
    assert_int_equal(rc, 0);
    free(path);
}

static void fx_close(struct fx *f) {
    cx_cache_free(f->cache);
    cx_pool_free(f->pool);
    f->cache = NULL;
    f->pool = NULL;
}

static struct cx_cache_key key(const char *prompt) {
    struct cx_cache_key k = {"openai", "gpt-4o", "You are a Linux package assistant.", prompt};
    return k;
}

static void put(struct cx_cache *c, const char *prompt, const char *json) {
    struct cx_cache_key k = key(prompt);
    struct cx_errinfo ei;
    int rc = cx_cache_put(c, &k, json, &ei);
    if (rc < 0) fprintf(stderr, "put: %s\n", ei.msg);
    assert_int_equal(rc, 0);
}

/* Returns 0 miss, 1 exact, 2 similar; checks the value when expected != NULL. */
static int get(struct cx_cache *c, const char *prompt, const char *expected) {
    struct cx_cache_key k = key(prompt);
    char *json = (char *)"junk";
    int similar = -1;
    struct cx_errinfo ei;
    int rc = cx_cache_get(c, &k, &json, &similar, &ei);
    if (rc == CX_ENOENT) {
        assert_null(json);
        return 0;
    }
    assert_int_equal(rc, 0);
    if (expected) assert_string_equal(json, expected);
    cx_free(json);
    return similar ? 2 : 1;
}

static const char *P_NGINX = "install nginx and configure it as a reverse proxy for my web app";
static const char *P_NGINX2 =
    "please install nginx and configure it as a reverse proxy for my web app";
static const char *P_PG = "set up a postgresql database server with streaming replication";

static void test_exact_similar_miss(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "basic.db", 500, 5);
    assert_int_equal(get(f.cache, P_NGINX, NULL), 0);
    put(f.cache, P_NGINX, "[\"apt-get install -y nginx\"]");
    assert_int_equal(get(f.cache, P_NGINX, "[\"apt-get install -y nginx\"]"), 1);
    assert_int_equal(get(f.cache, P_NGINX2, "[\"apt-get install -y nginx\"]"), 2);
    assert_int_equal(get(f.cache, P_PG, NULL), 0);
    /* Another provider, model or system prompt never matches, not even similarly. */
    struct cx_cache_key k = key(P_NGINX);
    k.model = "gpt-4o-mini";
    char *json = NULL;
    assert_int_equal(cx_cache_get(f.cache, &k, &json, NULL, NULL), CX_ENOENT);
    k = key(P_NGINX);
    k.system_prompt = "";
    assert_int_equal(cx_cache_get(f.cache, &k, &json, NULL, NULL), CX_ENOENT);
    k = key(P_NGINX);
    k.provider = "claude";
    assert_int_equal(cx_cache_get(f.cache, &k, &json, NULL, NULL), CX_ENOENT);
    /* Replacing keeps one row with the new value. */
    put(f.cache, P_NGINX, "[\"apt install nginx\"]");
    assert_int_equal(get(f.cache, P_NGINX, "[\"apt install nginx\"]"), 1);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.exact_hits, 2);
    assert_int_equal(st.similar_hits, 1);
    assert_int_equal(st.local_misses, 5);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 5);
    fx_close(&f);

    /* Persisted: entries and counters survive a reopen; counters keep adding up. */
    fx_open(&f, "basic.db", 500, 5);
    assert_int_equal(get(f.cache, P_NGINX, "[\"apt install nginx\"]"), 1);
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.misses, 5);
    assert_int_equal(st.exact_hits, 1);
    assert_int_equal(st.entries, 1);
    fx_close(&f);
}

static void test_threshold(void **state) {
    (void)state;
    char *path = t_path(t_dir, "thr.db");
    struct cx_pool *p = t_pool_open(path, 0);
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    assert_int_equal(co.max_entries, 500);
    assert_float_equal(co.similarity_threshold, 0.86, 1e-12);
    float a[CX_EMBED_DIM], b[CX_EMBED_DIM];
    cx_embed(P_NGINX, a);
    cx_embed(P_NGINX2, b);
    double cos = cx_embed_cosine(a, b);
    co.similarity_threshold = cos + 1e-4; /* just above: a miss */
    struct cx_cache *c;
    assert_int_equal(cx_cache_new(p, &co, &c, NULL), 0);
    put(c, P_NGINX, "[1]");
    assert_int_equal(get(c, P_NGINX2, NULL), 0);
    cx_cache_free(c);
    co.similarity_threshold = cos - 1e-4; /* just below: a similar hit */
    assert_int_equal(cx_cache_new(p, &co, &c, NULL), 0);
    assert_int_equal(get(c, P_NGINX2, "[1]"), 2);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
}

static void test_eviction_order(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "lru.db", 3, 5);
    put(f.cache, "alpha apple", "[\"a\"]");
    put(f.cache, "bravo banana", "[\"b\"]");
    put(f.cache, "charlie cherry", "[\"c\"]");
    assert_int_equal(get(f.cache, "alpha apple", "[\"a\"]"), 1); /* a is now the most recent */
    put(f.cache, "delta date", "[\"d\"]");                      /* evicts b, the LRU */
    assert_int_equal(get(f.cache, "bravo banana", NULL), 0);
    /* LRU order now: c, a, d. Touch c: a, d, c. */
    assert_int_equal(get(f.cache, "charlie cherry", "[\"c\"]"), 1);
    put(f.cache, "echo elderberry", "[\"e\"]"); /* evicts a */
    assert_int_equal(get(f.cache, "alpha apple", NULL), 0);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.entries, 3);
    fx_close(&f);

    /* The order survives a reopen: d, c, e. Touch d: c, e, d. */
    fx_open(&f, "lru.db", 3, 5);
    assert_int_equal(get(f.cache, "delta date", "[\"d\"]"), 1);
    put(f.cache, "foxtrot fig", "[\"f\"]"); /* evicts c */
    assert_int_equal(get(f.cache, "charlie cherry", NULL), 0);
    assert_int_equal(get(f.cache, "echo elderberry", "[\"e\"]"), 1);
    assert_int_equal(get(f.cache, "delta date", "[\"d\"]"), 1);
    assert_int_equal(get(f.cache, "foxtrot fig", "[\"f\"]"), 1);
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.entries, 3);
    /* hit_count was written back lazily: d was hit twice (one per session). */
    sqlite3 *db;
    assert_int_equal(cx_pool_checkout(f.pool, CX_DEADLINE_NONE, &db, NULL), 0);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT hit_count FROM llm_cache_entries WHERE "
                                            "prompt = 'delta date'", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    cx_pool_checkin(f.pool, db);
    assert_int_equal(cx_cache_clear(f.cache, NULL), 0);
    assert_int_equal(get(f.cache, "delta date", NULL), 0);
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.entries, 0);
    fx_close(&f);
}

/* A put that cannot get the write lock fails with CX_EBUSY and changes nothing. */
static void test_put_busy(void **state) {
    (void)state;
    char *path = t_path(t_dir, "busy.db");
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    po.busy_timeout_ms = 20;
    struct cx_pool *p;
    struct cx_cache *c;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(&po, &p, &ei), 0);
    assert_int_equal(cx_cache_new(p, NULL, &c, &ei), 0);
    put(c, "kept entry", "[\"kept\"]");
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct cx_cache_key k = key("new entry");
    assert_int_equal(cx_cache_put(c, &k, "[\"new\"]", &ei), CX_EBUSY);
    assert_int_equal(get(c, "new entry", NULL), 0);
    assert_int_equal(get(c, "kept entry", "[\"kept\"]"), 1);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    put(c, "new entry", "[\"new\"]");
    assert_int_equal(get(c, "new entry", "[\"new\"]"), 1);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(c, &st, NULL), 0);
    assert_int_equal(st.entries, 2);
    /* The hit counted while the lock was held was not lost by the failed put's flush. */
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
}

/* A database whose header is fine but whose cache table is damaged: CX_ECORRUPT naming the
 * path, from cx_cache_new (the pool itself opens). */
static void test_corrupt_table(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "dmg.db", 500, 5);
    char prompt[64];
    for (int i = 0; i < 60; i++) {
        snprintf(prompt, sizeof prompt, "damaged entry number %d", i);
        put(f.cache, prompt, "[\"some commands to fill pages with, long enough\"]");
    }
    sqlite3 *db;
    assert_int_equal(cx_pool_checkout(f.pool, CX_DEADLINE_NONE, &db, NULL), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_master WHERE name = "
                                            "'llm_cache_entries'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long root = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long page = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    cx_pool_checkin(f.pool, db);
    fx_close(&f); /* the last close checkpoints the WAL into the file */

    char *path = t_path(t_dir, "dmg.db");
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (root - 1) * page, SEEK_SET), 0);
    for (long i = 0; i < page; i++) fputc((int)((i * 131 + 7) & 0xff), fp);
    fclose(fp);

    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    struct cx_pool *p;
    struct cx_errinfo ei;
    assert_int_equal(cx_pool_new(&po, &p, &ei), 0);
    struct cx_cache *c = NULL;
    assert_int_equal(cx_cache_new(p, NULL, &c, &ei), CX_ECORRUPT);
    assert_null(c);
    assert_non_null(strstr(ei.msg, path));
    cx_pool_free(p);
    free(path);
}

static void test_bad_input(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "bad.db", 10, 5);
    struct cx_errinfo ei;
    char *json = NULL;
    struct cx_cache_key k = key("x");
    assert_int_equal(cx_cache_get(NULL, &k, &json, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_get(f.cache, NULL, &json, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_get(f.cache, &k, NULL, NULL, &ei), CX_EINVAL);
    k.prompt = "";
    assert_int_equal(cx_cache_get(f.cache, &k, &json, NULL, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "key.prompt is empty"));
    k = key("x");
    k.provider = NULL;
    assert_int_equal(cx_cache_put(f.cache, &k, "[]", &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "key.provider is NULL"));
    k = key("x");
    k.system_prompt = NULL;
    assert_int_equal(cx_cache_put(f.cache, &k, "[]", &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "key.system_prompt is NULL"));
    k = key("x");
    assert_int_equal(cx_cache_put(f.cache, &k, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_put(f.cache, &k, "", &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "commands_json is empty"));
    char *big = malloc((1u << 20) + 2);
    memset(big, 'x', (1u << 20) + 1);
    big[(1u << 20) + 1] = '\0';
    assert_int_equal(cx_cache_put(f.cache, &k, big, &ei), CX_ETOOBIG);
    free(big);
    assert_int_equal(cx_cache_put(NULL, &k, "[]", &ei), CX_EINVAL);
    assert_int_equal(cx_cache_stats(f.cache, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_clear(NULL, &ei), CX_EINVAL);
    /* Nothing above was written. */
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.entries, 0);
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = 0;
    struct cx_cache *c = NULL;
    assert_int_equal(cx_cache_new(f.pool, &co, &c, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "max_entries"));
    cx_cache_options_init(&co);
    co.similarity_threshold = 0;
    assert_int_equal(cx_cache_new(f.pool, &co, &c, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "similarity_threshold"));
    assert_int_equal(cx_cache_new(NULL, &co, &c, &ei), CX_EINVAL);
    assert_null(c);
    cx_cache_free(NULL);
    fx_close(&f);
}

/* Two pools and caches on one file, as two processes would have. */
static void test_two_caches_one_file(void **state) {
    (void)state;
    struct fx a, b;
    fx_open(&a, "shared.db", 4, 0); /* refresh interval 0: check the generation at every get */
    fx_open(&b, "shared.db", 4, 0);
    put(a.cache, "one uno", "[1]");
    assert_int_equal(get(b.cache, "one uno", "[1]"), 1);
    put(b.cache, "two dos", "[2]");
    assert_int_equal(get(a.cache, "two dos", "[2]"), 1);
    /* b replaces a's entry: a sees the new value. */
    put(b.cache, "one uno", "[11]");
    assert_int_equal(get(a.cache, "one uno", "[11]"), 1);
    /* a's put after b's writes still lands in a's index (reload path). */
    put(a.cache, "three tres", "[3]");
    assert_int_equal(get(a.cache, "three tres", "[3]"), 1);
    put(a.cache, "four cuatro", "[4]");
    /* Now 4 entries; a hit in b is flushed before b's eviction decision. */
    assert_int_equal(get(b.cache, "one uno", "[11]"), 1);
    put(b.cache, "five cinco", "[5]"); /* evicts the LRU: "two dos" */
    assert_int_equal(get(a.cache, "two dos", NULL), 0);
    assert_int_equal(get(a.cache, "one uno", "[11]"), 1);
    assert_int_equal(get(a.cache, "five cinco", "[5]"), 1);
    assert_int_equal(cx_cache_clear(b.cache, NULL), 0);
    assert_int_equal(get(a.cache, "five cinco", NULL), 0);
    fx_close(&a);
    fx_close(&b);
}

/* Two real processes writing the same file at once (POSIX locks between processes, not just
 * between connections of one process): eviction stays bounded and both see the same rows. */
static int proc_side(const char *path, const char *tag) {
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    po.busy_timeout_ms = 30000;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = 30;
    co.refresh_interval_ms = 0;
    struct cx_pool *p;
    struct cx_cache *c;
    struct cx_errinfo ei;
    if (cx_pool_new(&po, &p, &ei) < 0 || cx_cache_new(p, &co, &c, &ei) < 0) {
        fprintf(stderr, "%s: %s\n", tag, ei.msg);
        return 1;
    }
    int bad = 0;
    char prompt[64], val[64];
    for (int i = 0; i < 80; i++) {
        snprintf(prompt, sizeof prompt, "%s key%d", tag, i);
        snprintf(val, sizeof val, "[\"%s%d\"]", tag, i);
        struct cx_cache_key k = key(prompt);
        if (cx_cache_put(c, &k, val, &ei) < 0) {
            fprintf(stderr, "%s: put: %s\n", tag, ei.msg);
            bad = 1;
        }
        char *json = NULL;
        /* Just written by us: an exact hit with our value, unless the other process already
         * evicted it (then a miss, never a wrong value). */
        int rc = cx_cache_get(c, &k, &json, NULL, &ei);
        if ((rc == 0 && strcmp(json, val) != 0) || (rc != 0 && rc != CX_ENOENT)) bad = 1;
        cx_free(json);
    }
    cx_cache_free(c);
    cx_pool_free(p);
    return bad;
}

static void test_two_processes(void **state) {
    (void)state;
    char *path = t_path(t_dir, "procs.db");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int r = proc_side(path, "child");
        free(path); /* sanitizers check the child for leaks at _exit too */
        _exit(r);
    }
    int bad = proc_side(path, "parent");
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(bad, 0);
    /* A fresh cache sees exactly the table: at most 30 rows, each an exact hit. */
    struct fx f;
    fx_open(&f, "procs.db", 30, 0);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_true(st.entries <= 30 && st.entries > 0);
    size_t found = 0;
    char prompt[64], val[64];
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 80; i++) {
            const char *tag = w ? "child" : "parent";
            snprintf(prompt, sizeof prompt, "%s key%d", tag, i);
            snprintf(val, sizeof val, "[\"%s%d\"]", tag, i);
            struct cx_cache_key k = key(prompt);
            char *json = NULL;
            int sim = 0;
            if (cx_cache_get(f.cache, &k, &json, &sim, NULL) == 0 && !sim) {
                assert_string_equal(json, val);
                found++;
            }
            cx_free(json);
        }
    assert_int_equal(found, st.entries);
    fx_close(&f);
    free(path);
}

/* Concurrent puts (grouped into shared pool writes): each is visible to its thread as soon as
 * cx_cache_put returns, none is lost, replaced keys keep one row. */
#define CP_THREADS 8
#define CP_PUTS 40

struct cp {
    struct cx_cache *c;
    int tid;
    pthread_barrier_t *start;
    int bad;
};

static void *cp_thread(void *arg) {
    struct cp *a = arg;
    pthread_barrier_wait(a->start);
    char prompt[64], val[64];
    for (int i = 0; i < CP_PUTS; i++) {
        /* Every fourth put replaces a key of the shared set "common N". */
        if (i % 4 == 3) snprintf(prompt, sizeof prompt, "common %d", i);
        else snprintf(prompt, sizeof prompt, "thread%d item%d", a->tid, i);
        snprintf(val, sizeof val, "[\"t%d i%d\"]", a->tid, i);
        struct cx_cache_key k = key(prompt);
        if (cx_cache_put(a->c, &k, val, NULL) != 0) a->bad++;
        char *json = NULL;
        int sim = 1;
        int rc = cx_cache_get(a->c, &k, &json, &sim, NULL);
        /* A shared key may already carry another thread's newer value: then it names that
         * thread and the same item. */
        if (rc != 0 || sim) a->bad++;
        else if (i % 4 != 3 && strcmp(json, val) != 0) a->bad++;
        cx_free(json);
    }
    return NULL;
}

static void test_concurrent_puts(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "cput.db", 1000, 5);
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, CP_THREADS);
    struct cp args[CP_THREADS];
    pthread_t th[CP_THREADS];
    for (int t = 0; t < CP_THREADS; t++) {
        args[t] = (struct cp){f.cache, t, &b, 0};
        assert_int_equal(pthread_create(&th[t], NULL, cp_thread, &args[t]), 0);
    }
    for (int t = 0; t < CP_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].bad, 0);
    }
    pthread_barrier_destroy(&b);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    /* 30 own keys per thread plus the 10 shared ones. */
    assert_int_equal(st.entries, CP_THREADS * (CP_PUTS - CP_PUTS / 4) + CP_PUTS / 4);
    fx_close(&f);
}

/* ---- threads: readers always see either a miss or the right value ---- */

#define T_READERS 8
#define T_KEYS 64

struct mt {
    struct cx_cache *c;
    _Atomic int stop;
    _Atomic long bad, hits;
    pthread_barrier_t start;
};

static void *mt_reader(void *arg) {
    struct mt *m = arg;
    pthread_barrier_wait(&m->start);
    char prompt[64], want[64];
    long i = 0;
    while (!atomic_load(&m->stop)) {
        int k = (int)(i++ % T_KEYS);
        snprintf(prompt, sizeof prompt, "key%d token%d word%d", k, k, k);
        snprintf(want, sizeof want, "[\"v%d\"]", k);
        struct cx_cache_key ck = key(prompt);
        char *json = NULL;
        int sim = 0;
        int rc = cx_cache_get(m->c, &ck, &json, &sim, NULL);
        if (rc == 0) {
            if (sim || strcmp(json, want) != 0) atomic_fetch_add(&m->bad, 1);
            atomic_fetch_add(&m->hits, 1);
            cx_free(json);
        } else if (rc != CX_ENOENT) {
            atomic_fetch_add(&m->bad, 1);
        }
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "mt.db", 32, 1);
    static struct mt m;
    memset(&m, 0, sizeof m);
    m.c = f.cache;
    pthread_barrier_init(&m.start, NULL, T_READERS + 1);
    pthread_t th[T_READERS];
    for (int i = 0; i < T_READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mt_reader, &m), 0);
    pthread_barrier_wait(&m.start);
    char prompt[64], val[64];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < T_KEYS; k++) {
            snprintf(prompt, sizeof prompt, "key%d token%d word%d", k, k, k);
            snprintf(val, sizeof val, "[\"v%d\"]", k);
            put(f.cache, prompt, val);
            /* Own puts are visible as soon as put returns. */
            assert_int_equal(get(f.cache, prompt, val), 1);
        }
    atomic_store(&m.stop, 1);
    for (int i = 0; i < T_READERS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&m.start);
    assert_int_equal(atomic_load(&m.bad), 0);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(f.cache, &st, NULL), 0);
    assert_int_equal(st.entries, 32);
    assert_int_equal(st.hits + st.misses, st.exact_hits + st.similar_hits + st.local_misses);
    fx_close(&f);
}

/* ---- allocation failures: every failure is CX_ENOMEM (or recovered), no leak ---- */

static int cache_scenario(void *ctx) {
    struct fx *f = ctx;
    struct cx_cache *c = NULL;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = 2;
    int rc = cx_cache_new(f->pool, &co, &c, NULL);
    if (rc < 0) return rc;
    struct cx_cache_key k = key("torture one");
    rc = cx_cache_put(c, &k, "[1]", NULL);
    char *json = NULL;
    if (rc == 0) rc = cx_cache_get(c, &k, &json, NULL, NULL);
    cx_free(json);
    struct cx_cache_key k2 = key("torture two");
    struct cx_cache_key k3 = key("torture three");
    if (rc == 0) rc = cx_cache_put(c, &k2, "[2]", NULL);
    if (rc == 0) rc = cx_cache_put(c, &k3, "[3]", NULL);
    struct cx_cache_stats st;
    if (rc == 0) rc = cx_cache_stats(c, &st, NULL);
    cx_cache_free(c);
    return rc;
}

static void test_alloc_torture(void **state) {
    (void)state;
    struct fx f;
    fx_open(&f, "torture.db", 2, 5);
    cx_cache_free(f.cache);
    f.cache = NULL;
    assert_true(t_torture(cache_scenario, &f) > 5);
    cx_pool_free(f.pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_similar_miss),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_put_busy),
        cmocka_unit_test(test_corrupt_table),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_two_caches_one_file),
        cmocka_unit_test(test_two_processes),
        cmocka_unit_test(test_concurrent_puts),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_alloc_torture),
    };
    return cmocka_run_group_tests(tests, t_dir_setup, t_dir_teardown);
}
