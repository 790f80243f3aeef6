/* test_embed.c - the hashed-token embedding (tokenisation, normalisation, stability, cosine)
 * and cx_embed_analyze, the entity-aware view the cache matches on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/embed.h"
#include "cx_internal.h"
#include "t_util.h"

static const char *P_NGINX = "install nginx and configure it as a reverse proxy for my web app";
static const char *P_NGINX2 =
    "please install nginx and configure it as a reverse proxy for my web app";
static const char *P_PG = "set up a postgresql database server with streaming replication";

static void test_embed(void **state) {
    (void)state;
    float a[CX_EMBED_DIM], b[CX_EMBED_DIM], z[CX_EMBED_DIM];
    assert_int_equal(cx_embed("Install NGINX, now!", a), 3);
    assert_int_equal(cx_embed("install nginx now", b), 3);
    assert_float_equal(cx_embed_cosine(a, b), 1.0f, 1e-5);
    double norm = 0;
    for (int i = 0; i < CX_EMBED_DIM; i++) norm += (double)a[i] * a[i];
    assert_float_equal(norm, 1.0, 1e-5);
    assert_int_equal(cx_embed("", z), 0);
    assert_int_equal(cx_embed(NULL, z), 0);
    assert_float_equal(cx_embed_cosine(a, z), 0.0f, 0);
    cx_embed(P_NGINX, a);
    cx_embed(P_NGINX2, b);
    assert_true(cx_embed_cosine(a, b) > 0.9f);
    cx_embed(P_PG, b);
    assert_true(cx_embed_cosine(a, b) < 0.5f);
    /* Stable across runs and machines: a fixed token lands in a fixed bucket. */
    cx_embed("nginx", a);
    uint64_t h = cx__fnv1a64("nginx", 5);
    assert_float_equal(a[h % CX_EMBED_DIM], (h >> 63) ? -1.0f : 1.0f, 0);
}

static void test_embed_n_and_separators(void **state) {
    (void)state;
    float a[CX_EMBED_DIM], b[CX_EMBED_DIM];
    /* Only the first len bytes count; any non-alphanumeric byte separates tokens. */
    assert_int_equal(cx_embed_n("nginx redis", 5, a), 1);
    assert_int_equal(cx_embed("nginx", b), 1);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(cx_embed("apt-get\tinstall\xc3\xa9nginx", a), 4);
    assert_int_equal(cx_embed("!!! ... ---", a), 0);
    for (int i = 0; i < CX_EMBED_DIM; i++) assert_true(a[i] == 0.0f);
    /* Repeated tokens weigh more but the vector stays unit length. */
    cx_embed("nginx nginx nginx redis", a);
    double norm = 0;
    for (int i = 0; i < CX_EMBED_DIM; i++) norm += (double)a[i] * a[i];
    assert_float_equal(norm, 1.0, 1e-5);
    assert_float_equal(cx_embed_cosine(NULL, a), 0.0f, 0);
}


/* Entities of text (static buffer); the residual goes to v when v != NULL. */
static const char *ents(const char *text, float *v) {
    static char buf[4096];
    float tmp[CX_EMBED_DIM];
    size_t n = cx_embed_analyze(text, text ? strlen(text) : 0, buf, sizeof buf, v ? v : tmp);
    assert_true(n != (size_t)-1);
    assert_int_equal(n, strlen(buf));
    return buf;
}

static double dot(const float *a, const float *b) {
    double s = 0;
    for (int d = 0; d < CX_EMBED_DIM; d++) s += (double)a[d] * b[d];
    return s;
}

static void test_analyze_paraphrases(void **state) {
    (void)state;
    /* Word order, case, fillers, the pipeline's shape, inflections, synonyms and single typos
     * in known words all give the same entities. */
    static const char *const same[] = {
        "Install package: nginx", "how do I install nginx?", "nginx install please",
        "Could you please INSTALL the nginx package for me, thanks", "installing nginx",
        "set up nginx", "setup nginx", "instal nginx", "isntall nginx", "pleaes install nginx",
        "installl nginx", "deploy nginx"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        assert_string_equal(ents(same[i], NULL), "install nginx");
    assert_string_equal(ents("get rid of vim", NULL), "remove vim");
    assert_string_equal(ents("uninstall vim", NULL), "remove vim");
    assert_string_equal(ents("turn off ufw", NULL), "disable ufw");
    assert_string_equal(ents("update git", NULL), "git upgrade");
    assert_string_equal(ents("stpo mysql", NULL), "mysql stop"); /* a swap in a short word */
    /* Repetition does not count; sorting is by bytes. */
    assert_string_equal(ents("install curl and nginx and curl", NULL), "curl install nginx");
}

static void test_analyze_entities(void **state) {
    (void)state;
    /* What the answer depends on stays, and stays apart. */
    assert_string_equal(ents("Install package: tool-21", NULL), "install tool-21");
    assert_string_equal(ents("don't start nginx", NULL), "nginx not start");
    assert_string_equal(ents("do not start nginx", NULL), "nginx not start");
    assert_string_equal(ents("install nginx without ssl", NULL), "install nginx not ssl");
    assert_string_equal(ents("install python 3.11 on Ubuntu 22.04", NULL),
                        "22.04 3.11 install python ubuntu");
    /* Number words are never read as typos ("three" is a swap away from "there"). */
    assert_string_equal(ents("create three users", NULL), "create three");
    /* Paths keep their case; trailing sentence punctuation and quotes go. */
    assert_string_equal(ents("edit /etc/App.conf.", NULL), "/etc/App.conf edit");
    assert_string_equal(ents("No module named 'NumPy'", NULL), "module not numpy");
    /* Unknown words stay as written; a package name one substitution away from a known word
     * (htop/stop) is not a typo the matcher corrects. */
    assert_string_equal(ents("install fooo", NULL), "fooo install");
    assert_string_equal(ents("install htop", NULL), "htop install");
    assert_string_not_equal(ents("install atop", NULL), "htop install");
    /* Nothing in, nothing out; NULL is "". */
    float v[CX_EMBED_DIM];
    assert_string_equal(ents("", v), "");
    assert_float_equal(v[0], 1.0f, 1e-6);
    assert_string_equal(ents(NULL, v), "");
    assert_string_equal(ents("please, for me?", NULL), "");
}

static void test_analyze_residual(void **state) {
    (void)state;
    float a[CX_EMBED_DIM], b[CX_EMBED_DIM];
    /* No content words on either side: cosine 1. */
    ents("install nginx", a);
    ents("how do I install nginx please", b);
    assert_float_equal(dot(a, b), 1.0, 1e-6);
    /* One content word more or less lowers it: bias only vs bias + one word = 1/sqrt(2). */
    ents("install nginx on the server", b);
    assert_float_equal(dot(a, b), 1.0 / sqrt(2.0), 1e-5);
    /* Two shared content words and one more: 3 / sqrt(3 * 4). */
    ents("install nginx as a reverse proxy", a);
    ents("install nginx as a secure reverse proxy", b);
    assert_float_equal(dot(a, b), 3.0 / sqrt(12.0), 1e-5);
    assert_float_equal(dot(a, a), 1.0, 1e-5);
}

static void test_analyze_limits(void **state) {
    (void)state;
    char small[8];
    float v[CX_EMBED_DIM];
    const char *t = "install nginx and postgresql";
    assert_true(cx_embed_analyze(t, strlen(t), small, sizeof small, v) == (size_t)-1);
    char big[CX_EMBED_ENTITIES_CAP(64)];
    /* Only len bytes count. */
    assert_int_equal(cx_embed_analyze(t, 13, big, sizeof big, v), strlen("install nginx"));
    assert_string_equal(big, "install nginx");
    /* Past 512 tokens the rest is kept as written: texts differing only there still differ,
     * and the worst case fits CX_EMBED_ENTITIES_CAP. */
    size_t n = 600 * 4;
    char *x = malloc(n + 8), *y = malloc(n + 8);
    for (size_t i = 0; i < n; i += 4) memcpy(x + i, "ab1 ", 4);
    memcpy(y, x, n);
    memcpy(x + n, "zz", 3);
    memcpy(y + n, "yy", 3);
    size_t cap = CX_EMBED_ENTITIES_CAP(n + 2);
    char *ex = malloc(cap), *ey = malloc(cap);
    assert_true(cx_embed_analyze(x, n + 2, ex, cap, v) != (size_t)-1);
    assert_true(cx_embed_analyze(y, n + 2, ey, cap, v) != (size_t)-1);
    assert_string_not_equal(ex, ey);
    /* The longest synonym expansion ("add" -> "install") fits too. */
    for (size_t i = 0; i < n; i += 4) memcpy(x + i, "add ", 4);
    x[n] = '\0';
    assert_true(cx_embed_analyze(x, n, ex, CX_EMBED_ENTITIES_CAP(n), v) != (size_t)-1);
    /* In an error message every word and every pair of neighbours is written: still fits. */
    size_t m = (size_t)snprintf(x, n, "E: ");
    for (int i = 0; m + 16 < n; i++) m += (size_t)snprintf(x + m, n - m, "add %d from %d ", i, i);
    size_t got = cx_embed_analyze(x, m, ex, CX_EMBED_ENTITIES_CAP(m), v);
    assert_true(got != (size_t)-1);
    assert_true(got > 2 * m); /* the pairs are there */
    free(x);
    free(y);
    free(ex);
    free(ey);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_embed_n_and_separators),
        cmocka_unit_test(test_analyze_paraphrases),
        cmocka_unit_test(test_analyze_entities),
        cmocka_unit_test(test_analyze_residual),
        cmocka_unit_test(test_analyze_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
