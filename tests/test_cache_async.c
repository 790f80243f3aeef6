/* test_cache_async.c - cx_cache_put_async: visible once done ran, done exactly once and never
 * inside the call, failures that never call done (bad input, closing pool, from inside a done),
 * a failed group, a stale index, many threads, freeing right after queueing, allocation
 * failures. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "t_util.h"

static struct cx_cache_key key(const char *prompt) {
    struct cx_cache_key k = {"openai", "gpt-4o", "You are a Linux package assistant.", prompt};
    return k;
}

static struct cx_cache *cache_new(struct cx_pool *p, size_t max_entries, int refresh_ms) {
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = max_entries;
    co.refresh_interval_ms = refresh_ms;
    struct cx_cache *c = NULL;
    struct cx_errinfo ei;
    int rc = cx_cache_new(p, &co, &c, &ei);
    if (rc < 0) fprintf(stderr, "cx_cache_new: %s\n", ei.msg);
    assert_int_equal(rc, 0);
    return c;
}

/* One async put's completion record: how often done ran, with which rc, on which thread. */
struct rec {
    _Atomic int calls;
    _Atomic int rc;
    pthread_t thread;
    struct t_latch *latch;
};

static void rec_done(int rc, void *ud) {
    struct rec *r = ud;
    r->thread = pthread_self();
    atomic_store(&r->rc, rc);
    atomic_fetch_add(&r->calls, 1);
    if (r->latch) t_latch_add(r->latch);
}

static void wait_latch(struct t_latch *l, int want) {
    assert_true(t_latch_wait(l, want, t_deadline_ms(10000)));
}

/* 0 miss, 1 exact hit with `want`, -1 anything else. */
static int lookup(struct cx_cache *c, const char *prompt, const char *want) {
    struct cx_cache_key k = key(prompt);
    char *json = NULL;
    int sim = 0;
    int rc = cx_cache_get(c, &k, &json, &sim, NULL);
    int r = rc == CX_ENOENT ? 0 : (rc == 0 && !sim && strcmp(json, want) == 0) ? 1 : -1;
    cx_free(json);
    return r;
}

static void test_async_visible_once(void **state) {
    (void)state;
    char *path = t_path(t_dir, "vis.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = cache_new(p, 500, 5);
    struct t_latch l;
    t_latch_init(&l);
    struct rec r = {.latch = &l};
    struct cx_cache_key k = key("install nginx");
    /* The key and value are copies: scribbling over ours after the call changes nothing. */
    char prompt[32], val[32];
    snprintf(prompt, sizeof prompt, "install nginx");
    snprintf(val, sizeof val, "[\"apt-get install nginx\"]");
    k.prompt = prompt;
    struct cx_errinfo ei;
    assert_int_equal(cx_cache_put_async(c, &k, val, rec_done, &r, &ei), 0);
    memset(prompt, 'x', sizeof prompt - 1);
    memset(val, 'y', sizeof val - 1);
    wait_latch(&l, 1);
    assert_int_equal(atomic_load(&r.rc), 0);
    assert_false(pthread_equal(r.thread, pthread_self())); /* the writer thread, not ours */
    assert_int_equal(lookup(c, "install nginx", "[\"apt-get install nginx\"]"), 1);
    /* A replacement through the async path, done NULL: visible after a blocking put behind it
     * (puts complete in order). */
    struct cx_cache_key k2 = key("install nginx");
    assert_int_equal(cx_cache_put_async(c, &k2, "[\"apt install nginx\"]", NULL, NULL, &ei), 0);
    struct cx_cache_key k3 = key("install curl");
    assert_int_equal(cx_cache_put(c, &k3, "[\"apt install curl\"]", &ei), 0);
    assert_int_equal(lookup(c, "install nginx", "[\"apt install nginx\"]"), 1);
    cx_cache_free(c);
    assert_int_equal(atomic_load(&r.calls), 1); /* exactly once, nothing ran it again */
    struct cx_cache_stats st;
    c = cache_new(p, 500, 5);
    assert_int_equal(cx_cache_stats(c, &st, NULL), 0);
    assert_int_equal(st.entries, 2);
    cx_cache_free(c);
    cx_pool_free(p);
    t_latch_destroy(&l);
    free(path);
}

/* Calls that fail return at once and never run done. */
static struct cx_cache *g_inner_cache;
static _Atomic int g_inner_rc = 1;
static void done_puts_again(int rc, void *ud) {
    struct rec *r = ud;
    (void)rc;
    struct cx_cache_key k = key("from inside done");
    struct rec *inner = r + 1; /* must never be called */
    atomic_store(&g_inner_rc, cx_cache_put_async(g_inner_cache, &k, "[1]", rec_done, inner, NULL));
    rec_done(rc, r);
}

static void test_async_failures_never_call_done(void **state) {
    (void)state;
    char *path = t_path(t_dir, "fail.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = cache_new(p, 500, 5);
    struct rec r = {0};
    struct cx_errinfo ei;
    struct cx_cache_key k = key("x");
    assert_int_equal(cx_cache_put_async(NULL, &k, "[1]", rec_done, &r, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_put_async(c, NULL, "[1]", rec_done, &r, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_put_async(c, &k, NULL, rec_done, &r, &ei), CX_EINVAL);
    assert_int_equal(cx_cache_put_async(c, &k, "", rec_done, &r, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "cx_cache_put_async: commands_json is empty"));
    k.model = "";
    assert_int_equal(cx_cache_put_async(c, &k, "[1]", rec_done, &r, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "key.model is empty"));
    k = key("x");
    char *big = malloc((1u << 20) + 2);
    memset(big, 'x', (1u << 20) + 1);
    big[(1u << 20) + 1] = '\0';
    assert_int_equal(cx_cache_put_async(c, &k, big, rec_done, &r, &ei), CX_ETOOBIG);
    free(big);

    /* A put from inside a done callback (the writer thread) is refused; the outer done runs. */
    struct t_latch l;
    t_latch_init(&l);
    struct rec pair[2] = {{.latch = &l}, {0}};
    g_inner_cache = c;
    struct cx_cache_key ko = key("outer");
    assert_int_equal(cx_cache_put_async(c, &ko, "[2]", done_puts_again, pair, &ei), 0);
    wait_latch(&l, 1);
    assert_int_equal(atomic_load(&g_inner_rc), CX_EINVAL);
    cx_cache_free(c);
    assert_int_equal(atomic_load(&pair[0].calls), 1);
    assert_int_equal(atomic_load(&pair[1].calls), 0);
    assert_int_equal(atomic_load(&r.calls), 0);
    t_latch_destroy(&l);
    cx_pool_free(p);
    free(path);
}

/* A closing pool: the put fails with CX_ECLOSED and done never runs. The pool is kept closing
 * (and alive) by a write that waits on a latch while another thread runs cx_pool_free. */
struct blocker {
    struct t_latch entered, release;
};

static int blocker_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)db;
    (void)ei;
    struct blocker *b = arg;
    t_latch_add(&b->entered);
    return t_latch_wait(&b->release, 1, t_deadline_ms(20000)) ? 0 : CX_ETIMEDOUT;
}

static int noop_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)db;
    (void)arg;
    (void)ei;
    return 0;
}

static void *closer(void *arg) {
    cx_pool_free(arg);
    return NULL;
}

static void test_async_closed_pool(void **state) {
    (void)state;
    char *path = t_path(t_dir, "closed.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = cache_new(p, 500, 5);
    struct blocker b;
    t_latch_init(&b.entered);
    t_latch_init(&b.release);
    assert_int_equal(cx_pool_write_async(p, blocker_fn, &b, NULL, NULL), 0);
    wait_latch(&b.entered, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer, p), 0);
    /* Wait until close has marked the pool closing (it then waits for the blocked write). */
    uint64_t deadline = t_deadline_ms(10000);
    int rc;
    while ((rc = cx_pool_write_async(p, noop_fn, NULL, NULL, NULL)) == 0 && cx_now_ns() < deadline)
        sched_yield();
    assert_int_equal(rc, CX_ECLOSED);
    struct rec r = {0};
    struct cx_cache_key k = key("too late");
    struct cx_errinfo ei;
    assert_int_equal(cx_cache_put_async(c, &k, "[1]", rec_done, &r, &ei), CX_ECLOSED);
    assert_int_equal(cx_cache_put(c, &k, "[1]", &ei), CX_ECLOSED);
    cx_cache_free(c); /* its final writes fail with CX_ECLOSED; it frees all the same */
    t_latch_add(&b.release);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&r.calls), 0);
    t_latch_destroy(&b.entered);
    t_latch_destroy(&b.release);
    free(path);
}

/* A group that fails (the write lock held elsewhere): done runs once with the group's error and
 * nothing is visible. */
static void test_async_group_fails(void **state) {
    (void)state;
    char *path = t_path(t_dir, "busy.db");
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    po.busy_timeout_ms = 20;
    struct cx_pool *p;
    assert_int_equal(cx_pool_new(&po, &p, NULL), 0);
    struct cx_cache *c = cache_new(p, 500, 5);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    struct t_latch l;
    t_latch_init(&l);
    struct rec r[3] = {{.latch = &l}, {.latch = &l}, {.latch = &l}};
    const char *prompts[3] = {"busy one", "busy two", "busy three"};
    for (int i = 0; i < 3; i++) {
        struct cx_cache_key k = key(prompts[i]);
        assert_int_equal(cx_cache_put_async(c, &k, "[1]", rec_done, &r[i], NULL), 0);
    }
    wait_latch(&l, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&r[i].rc), CX_EBUSY);
        assert_int_equal(lookup(c, prompts[i], "[1]"), 0);
    }
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    struct cx_cache_key k = key("busy one");
    assert_int_equal(cx_cache_put_async(c, &k, "[1]", rec_done, &r[0], NULL), 0);
    wait_latch(&l, 4);
    assert_int_equal(atomic_load(&r[0].rc), 0);
    assert_int_equal(lookup(c, "busy one", "[1]"), 1);
    cx_cache_free(c);
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&r[i].calls), i == 0 ? 2 : 1);
    cx_pool_free(p);
    t_latch_destroy(&l);
    free(path);
}

/* The index cannot take the group in place (another cache on the file wrote in between and no
 * periodic refresh ran): the put is still visible to another thread once done ran. */
struct getter {
    struct cx_cache *c;
    int result;
};

static void *get_thread(void *arg) {
    struct getter *g = arg;
    g->result = lookup(g->c, "after a foreign write", "[\"mine\"]");
    return NULL;
}

static void test_async_stale_index(void **state) {
    (void)state;
    char *path = t_path(t_dir, "stale.db");
    struct cx_pool *pa = t_pool_open(path, 2), *pb = t_pool_open(path, 2);
    struct cx_cache *a = cache_new(pa, 500, 3600 * 1000), *b = cache_new(pb, 500, 3600 * 1000);
    struct cx_cache_key kb = key("foreign");
    assert_int_equal(cx_cache_put(b, &kb, "[\"theirs\"]", NULL), 0);
    struct t_latch l;
    t_latch_init(&l);
    struct rec r = {.latch = &l};
    struct cx_cache_key ka = key("after a foreign write");
    assert_int_equal(cx_cache_put_async(a, &ka, "[\"mine\"]", rec_done, &r, NULL), 0);
    wait_latch(&l, 1);
    assert_int_equal(atomic_load(&r.rc), 0);
    struct getter g = {a, -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, get_thread, &g), 0);
    pthread_join(th, NULL);
    assert_int_equal(g.result, 1);
    /* The reload brought the foreign entry along. */
    assert_int_equal(lookup(a, "foreign", "[\"theirs\"]"), 1);
    cx_cache_free(a);
    cx_cache_free(b);
    cx_pool_free(pa);
    cx_pool_free(pb);
    t_latch_destroy(&l);
    free(path);
}

/* Many threads queue async and blocking puts at once; every done runs exactly once with 0; the
 * cache is freed without waiting for the last dones and every value is there afterwards. */
#define MT_THREADS 8
#define MT_PUTS 60

struct mt {
    struct cx_cache *c;
    int tid;
    pthread_barrier_t *start;
    struct rec recs[MT_PUTS];
    int bad;
};

static void *mt_thread(void *arg) {
    struct mt *m = arg;
    pthread_barrier_wait(m->start);
    char prompt[64], val[64];
    for (int i = 0; i < MT_PUTS; i++) {
        snprintf(prompt, sizeof prompt, "thread%d item%d", m->tid, i);
        snprintf(val, sizeof val, "[\"t%d i%d\"]", m->tid, i);
        struct cx_cache_key k = key(prompt);
        if (i % 5 == 4) {
            /* A blocking put among the async ones: visible at once, and so (ordered before it)
             * are this thread's earlier async puts. */
            if (cx_cache_put(m->c, &k, val, NULL) != 0) m->bad++;
            atomic_fetch_add(&m->recs[i].calls, 1);
            if (lookup(m->c, prompt, val) != 1) m->bad++;
            snprintf(prompt, sizeof prompt, "thread%d item%d", m->tid, i - 1);
            snprintf(val, sizeof val, "[\"t%d i%d\"]", m->tid, i - 1);
            if (lookup(m->c, prompt, val) != 1) m->bad++;
        } else if (cx_cache_put_async(m->c, &k, val, rec_done, &m->recs[i], NULL) != 0) {
            m->bad++;
        }
    }
    return NULL;
}

static void test_async_many_threads(void **state) {
    (void)state;
    char *path = t_path(t_dir, "mt.db");
    struct cx_pool *p = t_pool_open(path, 3);
    struct cx_cache *c = cache_new(p, 1000, 5);
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, MT_THREADS);
    static struct mt m[MT_THREADS];
    pthread_t th[MT_THREADS];
    for (int t = 0; t < MT_THREADS; t++) {
        memset(&m[t], 0, sizeof m[t]);
        m[t].c = c;
        m[t].tid = t;
        m[t].start = &b;
        assert_int_equal(pthread_create(&th[t], NULL, mt_thread, &m[t]), 0);
    }
    for (int t = 0; t < MT_THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&b);
    cx_cache_free(c); /* waits for the outstanding dones */
    for (int t = 0; t < MT_THREADS; t++) {
        assert_int_equal(m[t].bad, 0);
        for (int i = 0; i < MT_PUTS; i++) {
            assert_int_equal(atomic_load(&m[t].recs[i].calls), 1);
            assert_int_equal(atomic_load(&m[t].recs[i].rc), 0);
        }
    }
    c = cache_new(p, 1000, 5);
    char prompt[64], val[64];
    for (int t = 0; t < MT_THREADS; t++)
        for (int i = 0; i < MT_PUTS; i++) {
            snprintf(prompt, sizeof prompt, "thread%d item%d", t, i);
            snprintf(val, sizeof val, "[\"t%d i%d\"]", t, i);
            assert_int_equal(lookup(c, prompt, val), 1);
        }
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(c, &st, NULL), 0);
    assert_int_equal(st.entries, MT_THREADS * MT_PUTS);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
}

/* ---- allocation failures ---- */

struct tort {
    struct cx_pool *pool;
};

static int async_scenario(void *ctx) {
    struct tort *t = ctx;
    struct cx_cache *c = NULL;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = 2;
    int rc = cx_cache_new(t->pool, &co, &c, NULL);
    if (rc < 0) return rc;
    struct t_latch l;
    t_latch_init(&l);
    struct rec r[3] = {{.latch = &l}, {.latch = &l}, {.latch = &l}};
    struct cx_cache_key k1 = key("torture one"), k2 = key("torture two"),
                        k3 = key("torture three");
    rc = cx_cache_put_async(c, &k1, "[1]", rec_done, &r[0], NULL);
    int queued = rc == 0;
    if (rc == 0) {
        wait_latch(&l, 1);
        rc = atomic_load(&r[0].rc);
    }
    char *json = NULL;
    if (rc == 0) rc = cx_cache_get(c, &k1, &json, NULL, NULL);
    cx_free(json);
    /* Two more, and free right away: free waits for both dones. */
    if (rc == 0 && (rc = cx_cache_put_async(c, &k2, "[2]", rec_done, &r[1], NULL)) == 0) queued++;
    if (rc == 0 && (rc = cx_cache_put_async(c, &k3, "[3]", rec_done, &r[2], NULL)) == 0) queued++;
    cx_cache_free(c);
    int calls = 0;
    for (int i = 0; i < 3; i++) {
        calls += atomic_load(&r[i].calls);
        if (rc == 0 && atomic_load(&r[i].rc) < 0) rc = atomic_load(&r[i].rc);
    }
    t_latch_destroy(&l);
    if (calls != queued) fail_msg("%d puts queued but done ran %d times", queued, calls);
    return rc;
}

static void test_async_alloc_torture(void **state) {
    (void)state;
    char *path = t_path(t_dir, "torture.db");
    struct tort t = {t_pool_open(path, 2)};
    assert_true(t_torture(async_scenario, &t) > 5);
    cx_pool_free(t.pool);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_visible_once),
        cmocka_unit_test(test_async_failures_never_call_done),
        cmocka_unit_test(test_async_closed_pool),
        cmocka_unit_test(test_async_group_fails),
        cmocka_unit_test(test_async_stale_index),
        cmocka_unit_test(test_async_many_threads),
        cmocka_unit_test(test_async_alloc_torture),
    };
    return cmocka_run_group_tests(tests, t_dir_setup, t_dir_teardown);
}
