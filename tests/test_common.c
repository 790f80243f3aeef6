/* test_common.c - error table, allocation path, capped buffer, hashing and deadlines. */
#include <string.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "t_util.h"

static void test_error_table(void **state) {
    (void)state;
    assert_string_equal(cx_err_name(CX_ETIMEDOUT), "CX_ETIMEDOUT");
    assert_string_equal(cx_strerror(CX_ENOMEM), "out of memory");
    assert_string_equal(cx_err_name(12345), "CX_UNKNOWN");
    assert_string_equal(cx_strerror(0), "success");
    /* Every code is negative and distinct, and has its own name. */
    int codes[] = {
#define T_CODE(name, val, msg) CX_##name,
        CX_ERRNO_MAP(T_CODE)
#undef T_CODE
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(cx_err_name(codes[i]), "CX_UNKNOWN");
        for (size_t j = i + 1; j < n; j++) assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_errinfo(void **state) {
    (void)state;
    struct cx_errinfo ei;
    assert_int_equal(cx__err(&ei, CX_EINVAL, "bad rate %g", -1.0), CX_EINVAL);
    assert_int_equal(ei.code, CX_EINVAL);
    assert_string_equal(ei.msg, "bad rate -1");
    assert_int_equal(cx__err(NULL, CX_EIO, "ignored"), CX_EIO);
    assert_int_equal(cx__err_detail(&ei, CX_EHTTP, 503, "status %d", 503), CX_EHTTP);
    assert_int_equal(ei.detail, 503);
}

static void test_buf_cap(void **state) {
    (void)state;
    struct cx__buf b;
    cx__buf_init(&b, 8);
    assert_int_equal(cx__buf_append(&b, "abcd", 4), 0);
    assert_int_equal(cx__buf_printf(&b, "%d", 12), 0);
    assert_string_equal(b.p, "abcd12");
    /* Past the cap the append fails and the buffer is released, as curl's dynbuf does. */
    assert_int_equal(cx__buf_append(&b, "xyz", 3), CX_ETOOBIG);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    cx__buf_reset(&b);
}

static int buf_scenario(void *ctx) {
    (void)ctx;
    struct cx__buf b;
    cx__buf_init(&b, 0);
    for (int i = 0; i < 100; i++) {
        int rc = cx__buf_printf(&b, "line %d of a growing buffer\n", i);
        if (rc < 0) return rc; /* the buffer freed itself */
    }
    char *s = cx__buf_take(&b);
    if (s == NULL) return CX_ENOMEM;
    cx__free(s);
    return 0;
}

static void test_buf_torture(void **state) {
    (void)state;
    assert_true(t_torture(buf_scenario, NULL) > 1);
}

static void test_sha256(void **state) {
    (void)state;
    char hex[65];
    cx__sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cx__sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cx__sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_deadlines(void **state) {
    (void)state;
    assert_int_equal(cx_deadline_after_ns(CX_DEADLINE_NONE), CX_DEADLINE_NONE);
    assert_int_equal(cx_deadline_after_ms(-1), CX_DEADLINE_NONE);
    assert_false(cx_deadline_expired(CX_DEADLINE_NONE));
    assert_true(cx_deadline_expired(0));
    assert_int_equal(cx_deadline_remaining_ns(0), 0);
    uint64_t d = cx_deadline_after_ms(50);
    assert_true(cx_deadline_remaining_ns(d) <= 50 * CX_NSEC_PER_MSEC);
    assert_true(cx_deadline_remaining_ns(d) > 0);
    cx_sleep_until(d);
    assert_true(cx_deadline_expired(d));
    assert_int_equal(cx_deadline_min(3, 5), 3);
}

static void test_mutex_held(void **state) {
    (void)state;
    struct cx__mutex mu;
    assert_int_equal(cx__mutex_init(&mu), 0);
    assert_false(cx__mutex_held(&mu));
    cx__mutex_lock(&mu);
    assert_true(cx__mutex_held(&mu));
    pthread_cond_t c;
    assert_int_equal(cx__cond_init(&c), 0);
    assert_int_equal(cx__cond_wait(&c, &mu, cx_deadline_after_ms(5)), CX_ETIMEDOUT);
    assert_true(cx__mutex_held(&mu));
    cx__mutex_unlock(&mu);
    pthread_cond_destroy(&c);
    cx__mutex_destroy(&mu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table), cmocka_unit_test(test_errinfo),
        cmocka_unit_test(test_buf_cap),     cmocka_unit_test(test_buf_torture),
        cmocka_unit_test(test_sha256),      cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_mutex_held),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
