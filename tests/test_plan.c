/* test_plan.c - merging per-package plans: one update first, order kept, duplicates removed,
 * shape errors, JSON output, allocation torture. */
#include <cjson/cJSON.h>
#include <string.h>

#include "cx/plan.h"
#include "cx_internal.h"
#include "t_util.h"

static cJSON *arr(const char *json) {
    cx__json_hooks_init();
    cJSON *a = cJSON_Parse(json);
    assert_non_null(a);
    return a;
}

static void test_is_update(void **state) {
    (void)state;
    static const char *const yes[] = {"sudo apt-get update", "apt-get update", "apt update",
                                      "sudo apt update -y", "sudo apt-get -qq update",
                                      "  sudo  /usr/bin/apt-get   update  ",
                                      "sudo DEBIAN_FRONTEND=noninteractive apt-get update", NULL};
    static const char *const no[] = {"sudo apt-get upgrade", "sudo apt-get update && sudo apt-get install -y x",
                                     "apt-get install update", "yum update", "sudo apt-get",
                                     "update", "", "sudo apt-get update nginx", NULL};
    for (const char *const *s = yes; *s; s++)
        if (!cx_plan_is_update(*s)) fail_msg("not seen as an update: '%s'", *s);
    for (const char *const *s = no; *s; s++)
        if (cx_plan_is_update(*s)) fail_msg("wrongly seen as an update: '%s'", *s);
    assert_false(cx_plan_is_update(NULL));
}

static void test_merge(void **state) {
    (void)state;
    cJSON *a = arr("[\"sudo apt-get update\", \"sudo apt-get install -y nginx\", "
                   "\"sudo systemctl enable --now nginx\"]");
    cJSON *b = arr("[\"apt update\", \"sudo apt-get install -y redis-server\", "
                   "\" sudo systemctl enable --now nginx \", \"\", \"   \"]");
    cJSON *c = arr("[\"sudo apt-get install -y redis-server\", \"sudo apt-get update\", "
                   "\"sudo ufw allow 6379\"]");
    const cJSON *plans[] = {a, NULL, b, c};
    struct cx_plan p;
    struct cx_errinfo ei;
    assert_int_equal(cx_plan_merge(plans, 4, &p, &ei), 0);
    static const char *const want[] = {"sudo apt-get update", "sudo apt-get install -y nginx",
                                       "sudo systemctl enable --now nginx",
                                       "sudo apt-get install -y redis-server",
                                       "sudo ufw allow 6379"};
    assert_int_equal(p.n, 5);
    for (size_t i = 0; i < 5; i++) assert_string_equal(p.commands[i], want[i]);
    char *json = cx_plan_to_json(&p);
    assert_string_equal(json, "[\"sudo apt-get update\",\"sudo apt-get install -y nginx\","
                              "\"sudo systemctl enable --now nginx\",\"sudo apt-get install -y "
                              "redis-server\",\"sudo ufw allow 6379\"]");
    cx_free(json);
    cx_plan_clear(&p);
    assert_null(p.commands);
    assert_int_equal(p.n, 0);
    cx_plan_clear(&p);
    cx_plan_clear(NULL);

    /* The update comes first even when the first plan has none; its spelling is kept. */
    const cJSON *plans2[] = {c, a};
    assert_int_equal(cx_plan_merge(plans2, 2, &p, NULL), 0);
    assert_string_equal(p.commands[0], "sudo apt-get update");
    assert_string_equal(p.commands[1], "sudo apt-get install -y redis-server");
    assert_int_equal(p.n, 5);
    cx_plan_clear(&p);

    /* No update anywhere: none is invented. */
    cJSON *d = arr("[\"echo hi\", \"echo hi\"]");
    const cJSON *plans3[] = {d};
    assert_int_equal(cx_plan_merge(plans3, 1, &p, NULL), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.commands[0], "echo hi");
    cx_plan_clear(&p);

    /* Nothing at all. */
    assert_int_equal(cx_plan_merge(NULL, 0, &p, NULL), 0);
    assert_int_equal(p.n, 0);
    json = cx_plan_to_json(&p);
    assert_string_equal(json, "[]");
    cx_free(json);
    assert_null(cx_plan_to_json(NULL));
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    cJSON_Delete(d);
}

static void test_merge_errors(void **state) {
    (void)state;
    cJSON *good = arr("[\"sudo apt-get update\"]");
    cJSON *obj = arr("{\"commands\": []}");
    cJSON *num = arr("[\"ok\", 3]");
    struct cx_plan p = {(char **)1, 7};
    struct cx_errinfo ei;
    const cJSON *bad1[] = {good, obj};
    assert_int_equal(cx_plan_merge(bad1, 2, &p, &ei), CX_EPROTO);
    assert_string_equal(ei.msg, "plan 1 is not an array");
    assert_null(p.commands);
    assert_int_equal(p.n, 0);
    const cJSON *bad2[] = {num};
    assert_int_equal(cx_plan_merge(bad2, 1, &p, &ei), CX_EPROTO);
    assert_string_equal(ei.msg, "plan 0 command 1 is not a string");
    assert_int_equal(cx_plan_merge(NULL, 2, &p, &ei), CX_EINVAL);
    assert_int_equal(cx_plan_merge(bad1, 1, NULL, &ei), CX_EINVAL);
    cJSON_Delete(good);
    cJSON_Delete(obj);
    cJSON_Delete(num);
}

static cJSON *g_plans[3];

static int merge_scenario(void *ctx) {
    (void)ctx;
    struct cx_plan p;
    int rc = cx_plan_merge((const cJSON *const *)g_plans, 3, &p, NULL);
    if (rc < 0) return rc;
    char *json = cx_plan_to_json(&p);
    cx_plan_clear(&p);
    if (json == NULL) return CX_ENOMEM;
    rc = strstr(json, "redis") ? 0 : CX_EINVAL;
    cx_free(json);
    return rc;
}

static void test_merge_torture(void **state) {
    (void)state;
    g_plans[0] = arr("[\"sudo apt-get update\", \"sudo apt-get install -y nginx\"]");
    g_plans[1] = arr("[\"sudo apt update\", \"sudo apt-get install -y redis-server\"]");
    g_plans[2] = arr("[\"sudo apt-get install -y nginx\", \"sudo systemctl restart nginx\"]");
    long n = t_torture(merge_scenario, NULL);
    assert_true(n >= 5);
    for (int i = 0; i < 3; i++) cJSON_Delete(g_plans[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_update),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_errors),
        cmocka_unit_test(test_merge_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
