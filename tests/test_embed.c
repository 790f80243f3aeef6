/* test_embed.c - the hashed-token embedding: tokenisation, normalisation, stability, cosine. */
#include <math.h>
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_embed_n_and_separators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
