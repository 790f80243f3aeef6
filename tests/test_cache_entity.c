/* test_cache_entity.c - the cache with entity-aware matching (entity_match = 1): what must hit
 * and miss, the threshold on residual vectors, reloads and files written by the seed's matcher,
 * long prompts, allocation failures, and the precision/recall floor on the labelled corpus
 * tests/data/cache_pairs.tsv (issue 13; deterministic, so a unit test and not a benchmark). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/cache.h"
#include "cx/dbpool.h"
#include "t_util.h"

static const char *k_sys = "You are a Linux package assistant.";

static struct cx_cache *open_cache(struct cx_pool *p, int entity, double threshold) {
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.entity_match = entity;
    co.refresh_interval_ms = 0; /* two caches on one file see each other's writes at once */
    if (threshold > 0) co.similarity_threshold = threshold;
    struct cx_cache *c = NULL;
    struct cx_errinfo ei;
    int rc = cx_cache_new(p, &co, &c, &ei);
    if (rc < 0) fprintf(stderr, "cx_cache_new: %s\n", ei.msg);
    assert_int_equal(rc, 0);
    return c;
}

static void put(struct cx_cache *c, const char *prompt, const char *json) {
    struct cx_cache_key k = {"openai", "gpt-4o", k_sys, prompt};
    assert_int_equal(cx_cache_put(c, &k, json, NULL), 0);
}

/* 0 miss, 1 exact, 2 similar; checks the value when want != NULL. */
static int get(struct cx_cache *c, const char *prompt, const char *want) {
    struct cx_cache_key k = {"openai", "gpt-4o", k_sys, prompt};
    char *json = NULL;
    int sim = -1;
    int rc = cx_cache_get(c, &k, &json, &sim, NULL);
    if (rc == CX_ENOENT) return 0;
    assert_int_equal(rc, 0);
    if (want) assert_string_equal(json, want);
    cx_free(json);
    return sim ? 2 : 1;
}

static void test_entity_hits_and_misses(void **state) {
    (void)state;
    char *path = t_path(t_dir, "basic.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = open_cache(p, 1, 0);
    put(c, "Install package: tool-50", "[\"apt-get install -y tool-50\"]");
    put(c, "Diagnose error: E: Unable to locate package foo-1", "[\"foo-1 answer\"]");
    /* The case: another package is never a candidate, at any threshold. */
    assert_int_equal(get(c, "Install package: tool-21", NULL), 0);
    assert_int_equal(get(c, "Remove package: tool-50", NULL), 0);
    assert_int_equal(get(c, "Install package: tool-50 on fedora", NULL), 0);
    assert_int_equal(get(c, "how do I install tool-50?", "[\"apt-get install -y tool-50\"]"), 2);
    assert_int_equal(get(c, "set up tool-50 please", "[\"apt-get install -y tool-50\"]"), 2);
    assert_int_equal(get(c, "Diagnose error: E: Unable to locate package foo-2", NULL), 0);
    assert_int_equal(get(c, "what does this error mean: E: Unable to locate package foo-1",
                         "[\"foo-1 answer\"]"),
                     2);
    /* Another system prompt or model still never matches. */
    struct cx_cache_key k = {"openai", "gpt-4o-mini", k_sys, "how do I install tool-50?"};
    char *json = NULL;
    assert_int_equal(cx_cache_get(c, &k, &json, NULL, NULL), CX_ENOENT);
    k.model = "gpt-4o";
    k.system_prompt = "";
    assert_int_equal(cx_cache_get(c, &k, &json, NULL, NULL), CX_ENOENT);
    struct cx_cache_stats st;
    assert_int_equal(cx_cache_stats(c, &st, NULL), 0);
    assert_int_equal(st.similar_hits, 3);
    assert_int_equal(st.local_misses, 6);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
}

/* The threshold applies to the residual vectors' cosine, the score cx_cache_similarity gives. */
static void test_entity_threshold(void **state) {
    (void)state;
    const char *a = "install nginx as a reverse proxy";
    const char *b = "install nginx as a secure reverse proxy";
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.entity_match = 1;
    double s = cx_cache_similarity(&co, a, b);
    assert_true(s > 0.8 && s < 0.9);
    assert_true(cx_cache_similarity(&co, a, "install apache2 as a reverse proxy") == -2.0);
    assert_true(cx_cache_similarity(&co, NULL, b) == -2.0);
    co.entity_match = 0; /* the seed's matcher scores the whole prompts */
    assert_true(cx_cache_similarity(&co, "Install package: tool-21", "Install package: tool-50") >
                0.99);
    char *path = t_path(t_dir, "thr.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = open_cache(p, 1, s + 1e-4); /* just above: a miss */
    put(c, a, "[1]");
    assert_int_equal(get(c, b, NULL), 0);
    cx_cache_free(c);
    c = open_cache(p, 1, s - 1e-4); /* just below: a similar hit (the index reloads entries) */
    assert_int_equal(get(c, b, "[1]"), 2);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
}

/* The file format is the seed's: entries written by a cache with the old matcher are matched by
 * entities after a reload, and the other way round the old matcher still works on them. */
static void test_entity_same_file_format(void **state) {
    (void)state;
    char *path = t_path(t_dir, "compat.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *old = open_cache(p, 0, 0);
    put(old, "install nginx and configure it as a reverse proxy", "[\"nginx\"]");
    put(old, "Install package: tool-50", "[\"tool-50\"]");
    assert_int_equal(get(old, "Install package: tool-21", "[\"tool-50\"]"), 2); /* the bug */
    struct cx_cache *ent = open_cache(p, 1, 0);
    assert_int_equal(get(ent, "Install package: tool-21", NULL), 0);
    assert_int_equal(get(ent, "please install nginx and configure it as a reverse proxy",
                         "[\"nginx\"]"),
                     2);
    put(ent, "how do I remove vim", "[\"vim\"]");
    assert_int_equal(get(old, "how do I remove vim", "[\"vim\"]"), 1);
    cx_cache_free(ent);
    cx_cache_free(old);
    cx_pool_free(p);
    /* Reopened: the residual vectors are rebuilt from the stored prompts. */
    p = t_pool_open(path, 2);
    ent = open_cache(p, 1, 0);
    assert_int_equal(get(ent, "remove vim please", "[\"vim\"]"), 2);
    cx_cache_free(ent);
    cx_pool_free(p);
    free(path);
}

/* A prompt whose entities do not fit the lookup's stack buffer takes the heap. */
static void test_entity_long_prompt(void **state) {
    (void)state;
    char *path = t_path(t_dir, "long.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = open_cache(p, 1, 0);
    size_t n = 3000;
    char *a = malloc(n + 32), *b = malloc(n + 64);
    size_t o = 0;
    for (int i = 0; o + 16 < n; i++) o += (size_t)snprintf(a + o, n + 32 - o, "pkg%d ", i);
    snprintf(b, n + 64, "please install %s", a);
    memmove(a + 8, a, o + 1);
    memcpy(a, "install ", 8);
    put(c, a, "[\"long\"]");
    assert_int_equal(get(c, b, "[\"long\"]"), 2);
    b[strlen(b) - 2] = 'x'; /* the last package differs */
    assert_int_equal(get(c, b, NULL), 0);
    free(a);
    free(b);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
}

static int entity_scenario(void *ctx) {
    struct cx_pool *p = ctx;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.entity_match = 1;
    co.max_entries = 2;
    struct cx_cache *c = NULL;
    int rc = cx_cache_new(p, &co, &c, NULL);
    if (rc < 0) return rc;
    char longp[1400];
    size_t o = 0;
    for (int i = 0; o + 12 < sizeof longp; i++)
        o += (size_t)snprintf(longp + o, sizeof longp - o, "lib%d ", i);
    struct cx_cache_key k1 = {"openai", "gpt-4o", k_sys, "Install package: nginx"};
    struct cx_cache_key k2 = {"openai", "gpt-4o", k_sys, "how do I install nginx"};
    struct cx_cache_key k3 = {"openai", "gpt-4o", k_sys, longp};
    rc = cx_cache_put(c, &k1, "[1]", NULL);
    char *json = NULL;
    int sim = 0;
    if (rc == 0) rc = cx_cache_get(c, &k2, &json, &sim, NULL);
    cx_free(json);
    json = NULL;
    if (rc == 0 && !sim) rc = CX_EIO; /* must be a similar hit */
    if (rc == 0) rc = cx_cache_put(c, &k3, "[3]", NULL);
    /* An exact miss with a long prompt: its entities are analysed into a heap buffer. */
    char longq[1500];
    snprintf(longq, sizeof longq, "please %s", longp);
    k3.prompt = longq;
    if (rc == 0) rc = cx_cache_get(c, &k3, &json, &sim, NULL);
    cx_free(json);
    if (rc == 0 && !sim) rc = CX_EIO;
    cx_cache_free(c);
    return rc;
}

static void test_entity_alloc_torture(void **state) {
    (void)state;
    char *path = t_path(t_dir, "torture.db");
    struct cx_pool *p = t_pool_open(path, 2);
    assert_true(t_torture(entity_scenario, p) > 5);
    cx_pool_free(p);
    free(path);
}

/* ---- the corpus floor ---- */

struct score {
    int tp, fp, fn, pairs;
};

/* Runs every pair of data/<name> through a real cache (put the first prompt into an empty
 * cache, look the second up): a similarity hit on a "hit" pair is a true positive. */
static struct score run_corpus(const char *name, int entity) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    char file[1200];
    snprintf(file, sizeof file, "%s/data/%s", dir, name);
    FILE *f = fopen(file, "r");
    if (f == NULL) fail_msg("cannot open the corpus %s", file);
    char *path = t_path(t_dir, entity ? "corpus_e.db" : "corpus_s.db");
    struct cx_pool *p = t_pool_open(path, 2);
    struct cx_cache *c = open_cache(p, entity, 0);
    struct score s = {0};
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *cat = line, *exp = strchr(cat, '\t'), *a = exp ? strchr(exp + 1, '\t') : NULL;
        char *b = a ? strchr(a + 1, '\t') : NULL;
        if (b == NULL) fail_msg("%s: bad line '%s'", file, line);
        *exp++ = *a++ = *b++ = '\0';
        put(c, a, "[\"cached\"]");
        int hit = get(c, b, "[\"cached\"]") == 2;
        int want = strcmp(exp, "hit") == 0;
        if (want && hit) s.tp++;
        else if (want) s.fn++;
        else if (hit) s.fp++;
        s.pairs++;
        assert_int_equal(cx_cache_clear(c, NULL), 0);
    }
    fclose(f);
    cx_cache_free(c);
    cx_pool_free(p);
    free(path);
    return s;
}

static double precision(struct score s) { return s.tp + s.fp ? (double)s.tp / (s.tp + s.fp) : 1; }
static double recall(struct score s) { return s.tp + s.fn ? (double)s.tp / (s.tp + s.fn) : 1; }

static void test_corpus_floor(void **state) {
    (void)state;
    struct score e = run_corpus("cache_pairs.tsv", 1);
    printf("entity matcher on cache_pairs.tsv: %d pairs, precision %.4f, recall %.4f\n", e.pairs,
           precision(e), recall(e));
    assert_true(e.pairs >= 300);
    assert_true(precision(e) >= 0.995); /* the goal of issue 13 */
    assert_true(recall(e) >= 0.70);
    /* The floor can fail: the seed's matcher, on the same corpus, does not reach it. */
    struct score s = run_corpus("cache_pairs.tsv", 0);
    printf("embedding matcher on cache_pairs.tsv: precision %.4f, recall %.4f\n", precision(s),
           recall(s));
    assert_true(precision(s) < 0.995);
    /* The held-out corpora (never used for tuning): the goal's precision, and recall no worse
     * than measured when the rules of embed_match.c last changed (cache_pairs_holdout.tsv 44 of
     * 50, cache_pairs_holdout2.tsv 66 of 75), so a change that loses ground is noticed. */
    struct score h = run_corpus("cache_pairs_holdout.tsv", 1);
    printf("entity matcher on cache_pairs_holdout.tsv: %d pairs, precision %.4f, recall %.4f\n",
           h.pairs, precision(h), recall(h));
    assert_true(precision(h) >= 0.995);
    assert_true(recall(h) >= 44.0 / 50.0 - 1e-9);
    struct score h2 = run_corpus("cache_pairs_holdout2.tsv", 1);
    printf("entity matcher on cache_pairs_holdout2.tsv: %d pairs, precision %.4f, recall %.4f\n",
           h2.pairs, precision(h2), recall(h2));
    assert_true(h2.pairs >= 150);
    assert_true(precision(h2) >= 0.995);
    assert_true(recall(h2) >= 66.0 / 75.0 - 1e-9);
}

/* The rules that keep meaning apart where the words barely differ (cx_cache_similarity gives
 * -2 when the entities differ, so no threshold can make the pair a hit). */
static void test_entity_rules(void **state) {
    (void)state;
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.entity_match = 1;
    static const char *const differ[][2] = {
        /* a prevention: "from being" / "from" + an action's -ing form is a negation */
        {"keep the kernel updated", "keep the kernel from being updated"},
        {"start docker at boot", "keep docker from starting at boot"},
        /* alternatives and quantifiers */
        {"install nginx and apache2", "install nginx or apache2"},
        {"E: Unable to fetch some archives", "E: Unable to fetch all archives"},
        /* direction */
        {"copy /etc/a.conf to /etc/b.conf", "copy /etc/b.conf to /etc/a.conf"},
        {"migrate from python3.11 to python3.12", "migrate from python3.12 to python3.11"},
        /* a question about a state is not a request */
        {"is nginx installed", "install nginx"},
        /* in an error message (past "word: ") every word but the wrappers counts */
        {"Diagnose error: no space left on device", "Diagnose error: no space left for device"},
        {"Diagnose error: cannot open the log file", "Diagnose error: cannot open the data file"},
        {"Diagnose error: the disk is full", "Diagnose error: the disk is not full"},
        /* ... and in the same order */
        {"Diagnose error: libfoo1 depends on libbar2 but libbar2 is not installed",
         "Diagnose error: libbar2 depends on libfoo1 but libfoo1 is not installed"},
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        double sc = cx_cache_similarity(&co, differ[i][0], differ[i][1]);
        if (sc != -2.0) fail_msg("'%s' ~ '%s' scored %g", differ[i][0], differ[i][1], sc);
    }
    static const char *const same[][2] = {
        {"stop docker from starting at boot", "at boot, please stop docker from starting"},
        {"Diagnose error: E: Could not get lock /var/lib/dpkg/lock",
         "how do I fix: E: Could not get lock /var/lib/dpkg/lock"},
        {"Diagnose error: Permission denied (publickey)",
         "Diagnose error: please help, Permission denied (publickey)"},
        {"Diagnose error: E: Could not get lock /var/lib/dpkg/lock",
         "Diagnose error: why do I get E: could not get lock /var/lib/dpkg/lock?"},
        {"how to install curl", "install curl"},
        {"upgrade nginx to 1.24", "to 1.24 upgrade nginx"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        double sc = cx_cache_similarity(&co, same[i][0], same[i][1]);
        if (!(sc >= co.similarity_threshold))
            fail_msg("'%s' ~ '%s' scored %g", same[i][0], same[i][1], sc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entity_hits_and_misses),
        cmocka_unit_test(test_entity_threshold),
        cmocka_unit_test(test_entity_same_file_format),
        cmocka_unit_test(test_entity_long_prompt),
        cmocka_unit_test(test_entity_alloc_torture),
        cmocka_unit_test(test_corpus_floor),
        cmocka_unit_test(test_entity_rules),
    };
    return cmocka_run_group_tests(tests, t_dir_setup, t_dir_teardown);
}
