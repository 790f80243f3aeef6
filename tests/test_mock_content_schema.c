/* test_mock_content_schema.c - values generated from JSON Schemas (structured output, tool
 * arguments): a table of schemas, each generated for many seeds and prompts and checked by the
 * validator; determinism; prompt-derived fields; the validator's own refusals; broken schemas. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../mockserver/src/content.h"
#include "t_util.h"

static const char *const schemas[] = {
    /* 0: the install plan a structured-output client asks for */
    "{\"type\":\"object\",\"properties\":{\"package\":{\"type\":\"string\"},\"commands\":"
    "{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},\"explanation\":"
    "{\"type\":\"string\"}},\"required\":[\"package\",\"commands\",\"explanation\"],"
    "\"additionalProperties\":false}",
    /* 1: OpenAI function parameters (the SDK docs' get_weather) */
    "{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\",\"description\":"
    "\"City and country e.g. Bogota, Colombia\"},\"unit\":{\"type\":\"string\",\"enum\":"
    "[\"celsius\",\"fahrenheit\"]}},\"required\":[\"location\",\"unit\"],"
    "\"additionalProperties\":false}",
    /* 2: Anthropic input_schema with a nested object and an array of objects */
    "{\"type\":\"object\",\"properties\":{\"packages\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"version\":{\"type\":"
    "[\"string\",\"null\"]}},\"required\":[\"name\"]}},\"options\":{\"type\":\"object\","
    "\"properties\":{\"assume_yes\":{\"type\":\"boolean\"},\"retries\":{\"type\":\"integer\","
    "\"minimum\":0,\"maximum\":5}}}},\"required\":[\"packages\"]}",
    /* 3: every scalar type */
    "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\"},\"n\":{\"type\":\"number\"},"
    "\"i\":{\"type\":\"integer\"},\"b\":{\"type\":\"boolean\"},\"z\":{\"type\":\"null\"}},"
    "\"required\":[\"s\",\"n\",\"i\",\"b\",\"z\"]}",
    /* 4: numeric bounds, exclusive bounds, multipleOf */
    "{\"type\":\"object\",\"properties\":{\"pct\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
    "\"odd\":{\"type\":\"integer\",\"exclusiveMinimum\":10,\"exclusiveMaximum\":12},\"step\":"
    "{\"type\":\"integer\",\"multipleOf\":7,\"minimum\":20,\"maximum\":60},\"neg\":{\"type\":"
    "\"number\",\"maximum\":-1000},\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535},"
    "\"tiny\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":0.001}}}",
    /* 5: string lengths, with multibyte characters counted as one */
    "{\"type\":\"object\",\"properties\":{\"short\":{\"type\":\"string\",\"maxLength\":3},"
    "\"long\":{\"type\":\"string\",\"minLength\":50},\"exact\":{\"type\":\"string\",\"minLength\":"
    "8,\"maxLength\":8},\"explanation\":{\"type\":\"string\",\"maxLength\":20}},"
    "\"required\":[\"short\",\"long\",\"exact\",\"explanation\"]}",
    /* 6: patterns the walker knows */
    "{\"type\":\"object\",\"properties\":{\"semver\":{\"type\":\"string\",\"pattern\":"
    "\"^\\\\d+\\\\.\\\\d+\\\\.\\\\d+$\"},\"id\":{\"type\":\"string\",\"pattern\":"
    "\"^[A-Z]{3}-[0-9]{4}$\"},\"slug\":{\"type\":\"string\",\"pattern\":\"^[a-z][a-z0-9-]{2,10}$\"},"
    "\"hex\":{\"type\":\"string\",\"pattern\":\"^0x[0-9a-f]+$\"},\"any\":{\"type\":\"string\","
    "\"pattern\":\"^v.?\\\\w*$\"},\"nodigit\":{\"type\":\"string\",\"pattern\":\"^[^0-9]{4}$\"},"
    "\"open\":{\"type\":\"string\",\"pattern\":\"^a{2,}b\\\\.c+$\"}},"
    "\"required\":[\"semver\",\"id\",\"slug\",\"hex\",\"any\",\"nodigit\",\"open\"]}",
    /* 7: $ref to $defs, used twice and nested */
    "{\"$defs\":{\"pkg\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"arch\":{\"$ref\":\"#/$defs/arch\"}},\"required\":[\"name\",\"arch\"],"
    "\"additionalProperties\":false},\"arch\":{\"enum\":[\"amd64\",\"arm64\",\"i386\"]}},"
    "\"type\":\"object\",\"properties\":{\"main\":{\"$ref\":\"#/$defs/pkg\"},\"deps\":{\"type\":"
    "\"array\",\"items\":{\"$ref\":\"#/$defs/pkg\"},\"maxItems\":2}},\"required\":[\"main\"]}",
    /* 8: $ref to draft-07 definitions */
    "{\"definitions\":{\"cmd\":{\"type\":\"string\",\"minLength\":1}},\"type\":\"object\","
    "\"properties\":{\"commands\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/cmd\"}}},"
    "\"required\":[\"commands\"]}",
    /* 9: anyOf and oneOf (first branch) */
    "{\"type\":\"object\",\"properties\":{\"target\":{\"anyOf\":[{\"type\":\"string\",\"format\":"
    "\"hostname\"},{\"type\":\"integer\"}]},\"mode\":{\"oneOf\":[{\"const\":\"fast\"},{\"const\":"
    "\"safe\"}]}},\"required\":[\"target\",\"mode\"]}",
    /* 10: const and enum of mixed types */
    "{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"install_plan\"},\"level\":{\"enum\":"
    "[1,2,3,null,\"max\"]},\"flag\":{\"const\":true}},\"required\":[\"kind\",\"level\",\"flag\"]}",
    /* 11: arrays: bounds, uniqueness, tuples */
    "{\"type\":\"object\",\"properties\":{\"three\":{\"type\":\"array\",\"minItems\":3,\"maxItems\":"
    "3,\"items\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},\"uniqueItems\":true},\"pair\":"
    "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"number\"}],\"items\":"
    "false},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",\"c\"]},\"uniqueItems\":"
    "true,\"minItems\":3}},\"required\":[\"three\",\"pair\",\"tags\"]}",
    /* 12: draft-07 tuple with additionalItems false */
    "{\"type\":\"array\",\"items\":[{\"type\":\"string\",\"format\":\"date\"},{\"type\":\"boolean\"}],"
    "\"additionalItems\":false,\"minItems\":2}",
    /* 13: formats */
    "{\"type\":\"object\",\"properties\":{\"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "\"mail\":{\"type\":\"string\",\"format\":\"email\"},\"site\":{\"type\":\"string\",\"format\":"
    "\"uri\"},\"uid\":{\"type\":\"string\",\"format\":\"uuid\",\"pattern\":"
    "\"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$\"},\"ip\":{\"type\":"
    "\"string\",\"format\":\"ipv4\"}},\"required\":[\"when\",\"mail\",\"site\",\"uid\",\"ip\"]}",
    /* 14: required member not listed in properties, typed by additionalProperties */
    "{\"type\":\"object\",\"required\":[\"query\",\"limit\"],\"additionalProperties\":{\"type\":"
    "\"string\"}}",
    /* 15: min/maxProperties */
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"},"
    "\"c\":{\"type\":\"string\"},\"d\":{\"type\":\"string\"}},\"required\":[\"c\"],"
    "\"maxProperties\":2,\"minProperties\":1}",
    /* 16: minProperties met with additional members */
    "{\"type\":\"object\",\"minProperties\":3,\"additionalProperties\":{\"type\":\"integer\","
    "\"minimum\":1,\"maximum\":3}}",
    /* 17: allOf */
    "{\"allOf\":[{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":"
    "[\"name\"]},{\"properties\":{\"size\":{\"type\":\"integer\",\"minimum\":100}},\"required\":"
    "[\"size\"]}]}",
    /* 18: boolean schemas and an untyped schema */
    "{\"type\":\"object\",\"properties\":{\"anything\":true,\"untyped\":{},\"inferred\":"
    "{\"minimum\":5,\"maximum\":6},\"list\":{\"items\":{\"type\":\"string\"}}},"
    "\"required\":[\"anything\",\"untyped\",\"inferred\",\"list\"]}",
    /* 19: a recursive tree through "#" */
    "{\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\"},\"children\":{\"type\":"
    "\"array\",\"items\":{\"$ref\":\"#\"}}},\"required\":[\"label\"]}",
    /* 20: OpenAI strict-mode function parameters (every field required, nullable optional) */
    "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},\"max_results\":{\"type\":"
    "[\"integer\",\"null\"]},\"filters\":{\"type\":\"object\",\"properties\":{\"os\":{\"type\":"
    "\"string\",\"enum\":[\"debian\",\"ubuntu\",\"fedora\"]},\"arch\":{\"type\":\"string\"}},"
    "\"required\":[\"os\",\"arch\"],\"additionalProperties\":false}},\"required\":[\"query\","
    "\"max_results\",\"filters\"],\"additionalProperties\":false}",
    /* 21: a top-level array of strings and a top-level scalar */
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"minItems\":4,"
    "\"uniqueItems\":true}",
    "{\"type\":\"integer\",\"minimum\":-5,\"maximum\":-5}",
    /* 23: the diagnosis shape the project's runtime reads */
    "{\"type\":\"object\",\"properties\":{\"cause\":{\"type\":\"string\",\"minLength\":10},"
    "\"commands\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,\"maxItems\":"
    "3},\"explanation\":{\"type\":\"string\"}},\"required\":[\"cause\",\"commands\","
    "\"explanation\"]}",
};

static const char *const prompts[] = {
    "Install the package nginx on Debian. Answer with a json block holding \"commands\".",
    "What's the weather like in Paris today, in fahrenheit?",
    "install redis=7* and git",
    "Diagnose error: No space left on device",
    "hello",
    "",
};

#define NS (sizeof schemas / sizeof schemas[0])
#define NP (sizeof prompts / sizeof prompts[0])

static cJSON *parse(const char *text) {
    cJSON *j = cJSON_Parse(text);
    if (j == NULL) fail_msg("test schema does not parse: %.80s", text);
    return j;
}

static cJSON *gen(const cJSON *schema, const char *prompt, uint64_t seed) {
    cJSON *v = NULL;
    char err[256];
    if (mock_schema_generate(schema, "sys", prompt, seed, &v, err, sizeof err) != 0)
        fail_msg("generate failed: %s", err);
    assert_non_null(v);
    return v;
}

static void test_schema_table(void **state) {
    (void)state;
    size_t pass = 0;
    assert_true(NS >= 20);
    for (size_t i = 0; i < NS; i++) {
        cJSON *s = parse(schemas[i]);
        int ok = 1, varied = 0;
        char *first = NULL;
        for (size_t p = 0; p < NP && ok; p++) {
            for (uint64_t seed = 0; seed < 16 && ok; seed++) {
                cJSON *v = gen(s, prompts[p], seed);
                char err[256];
                if (mock_schema_validate(s, v, err, sizeof err) != 0) {
                    char *t = cJSON_PrintUnformatted(v);
                    printf("SCHEMA %zu FAIL (prompt %zu, seed %llu): %s\n  value %s\n", i, p,
                           (unsigned long long)seed, err, t);
                    cJSON_free(t);
                    ok = 0;
                }
                /* Same inputs, same value. */
                cJSON *again = gen(s, prompts[p], seed);
                assert_true(cJSON_Compare(v, again, 1));
                char *t = cJSON_PrintUnformatted(v);
                if (first == NULL) first = t;
                else {
                    varied |= strcmp(first, t) != 0;
                    cJSON_free(t);
                }
                cJSON_Delete(again);
                cJSON_Delete(v);
            }
        }
        /* Seeds and prompts change the value unless the schema admits only one. */
        if (i != 22 && i != 10 && !varied) {
            printf("SCHEMA %zu: every seed and prompt gave %s\n", i, first);
            ok = 0;
        }
        cJSON_free(first);
        cJSON_Delete(s);
        pass += (size_t)ok;
    }
    printf("schema table: %zu/%zu schemas valid for %zu prompts x 16 seeds\n", pass, NS, NP);
    assert_int_equal(pass, NS);
}

static const char *str_at(const cJSON *v, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, key);
    assert_true(cJSON_IsString(s));
    return s->valuestring;
}

/* Fields named for what the prompt asked get it. */
static void test_prompt_fields(void **state) {
    (void)state;
    cJSON *s = parse(schemas[0]);
    cJSON *v = gen(s, prompts[0], 1);
    assert_string_equal(str_at(v, "package"), "nginx");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "commands");
    assert_string_equal(cJSON_GetArrayItem(c, 0)->valuestring, "sudo apt-get update");
    assert_string_equal(cJSON_GetArrayItem(c, 1)->valuestring, "sudo apt-get install -y nginx");
    /* The same plan as the text reply's json block. */
    cJSON *obj = NULL;
    assert_int_equal(mock_content_object("sys", prompts[0], 1, &obj), 0);
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(obj, "commands"), c, 1));
    assert_string_equal(str_at(obj, "explanation"), str_at(v, "explanation"));
    cJSON_Delete(obj);
    cJSON_Delete(v);
    cJSON_Delete(s);

    s = parse(schemas[1]);
    v = gen(s, prompts[1], 3);
    assert_string_equal(str_at(v, "location"), "Paris");
    assert_string_equal(str_at(v, "unit"), "fahrenheit");
    cJSON_Delete(v);
    cJSON_Delete(s);

    s = parse(schemas[2]);
    v = gen(s, prompts[2], 3);
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(v, "packages");
    assert_int_equal(cJSON_GetArraySize(pk), 2);
    assert_string_equal(str_at(cJSON_GetArrayItem(pk, 0), "name"), "redis");
    assert_string_equal(str_at(cJSON_GetArrayItem(pk, 1), "name"), "git");
    cJSON_Delete(v);
    cJSON_Delete(s);

    s = parse(schemas[20]);
    v = gen(s, "search for nginx modules on ubuntu", 0);
    assert_string_equal(str_at(v, "query"), "search for nginx modules on ubuntu");
    assert_string_equal(str_at(cJSON_GetObjectItemCaseSensitive(v, "filters"), "os"), "ubuntu");
    cJSON_Delete(v);
    cJSON_Delete(s);

    /* Without a schema (json_object): the reply's object, or {"answer"} for chat. */
    assert_int_equal(mock_content_object(NULL, "hello", 0, &obj), 0);
    assert_true(strlen(str_at(obj, "answer")) > 10);
    cJSON_Delete(obj);
    assert_int_equal(mock_content_object(NULL, "Hardware check: gpu", 0, &obj), 0);
    assert_string_equal(str_at(obj, "component"), "gpu");
    cJSON_Delete(obj);
}

/* The validator refuses what it must, naming the path. */
static void test_validator_refuses(void **state) {
    (void)state;
    static const struct {
        size_t schema;
        const char *value, *msg;
    } bad[] = {
        {0, "{\"package\":\"x\",\"commands\":[]}", "missing required property \"explanation\""},
        {0, "{\"package\":\"x\",\"commands\":[],\"explanation\":\"e\"}", "0 items, fewer than 1"},
        {0, "{\"package\":\"x\",\"commands\":[1],\"explanation\":\"e\"}",
         "$.commands[0]: expected type string, got integer"},
        {0, "{\"package\":\"x\",\"commands\":[\"a\"],\"explanation\":\"e\",\"y\":1}",
         "property \"y\" is not allowed"},
        {1, "{\"location\":\"x\",\"unit\":\"kelvin\"}", "$.unit: not one of the enum values"},
        {3, "{\"s\":\"\",\"n\":1,\"i\":1.5,\"b\":true,\"z\":null}", "$.i: expected type integer"},
        {4, "{\"pct\":1.5}", "$.pct: 1.5 is above the maximum 1"},
        {4, "{\"odd\":12}", "$.odd: 12 is not below the exclusive maximum 12"},
        {4, "{\"step\":22}", "$.step: 22 is not a multiple of 7"},
        {5, "{\"short\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"long\":\"x\",\"exact\":\"12345678\","
            "\"explanation\":\"\"}", "$.short: length 4 is above maxLength 3"},
        {6, "{\"semver\":\"1.2\",\"id\":\"ABC-1234\",\"slug\":\"abc\",\"hex\":\"0x1\",\"any\":\"v\","
            "\"nodigit\":\"abcd\",\"open\":\"aab.c\"}", "$.semver: \"1.2\" does not match pattern"},
        {6, "{\"semver\":\"1.2.3\",\"id\":\"ABC-1234\",\"slug\":\"abc\",\"hex\":\"0x1\",\"any\":"
            "\"v\",\"nodigit\":\"ab1d\",\"open\":\"aab.c\"}", "$.nodigit"},
        {6, "{\"semver\":\"1.2.3\",\"id\":\"ABC-1234\",\"slug\":\"abc\",\"hex\":\"0x1\",\"any\":"
            "\"v\",\"nodigit\":\"abcd\",\"open\":\"ab.c\"}", "$.open: \"ab.c\" does not match"},
        {7, "{\"main\":{\"name\":\"n\",\"arch\":\"sparc\"}}", "$.main.arch: not one of the enum"},
        {9, "{\"target\":true,\"mode\":\"fast\"}", "$.target: matches none of the 2 anyOf"},
        {9, "{\"target\":1,\"mode\":\"slow\"}", "$.mode: matches 0 of the oneOf schemas"},
        {10, "{\"kind\":\"other\",\"level\":1,\"flag\":true}", "$.kind: not the const value"},
        {11, "{\"three\":[1,1,2],\"pair\":[\"a\",1],\"tags\":[\"a\",\"b\",\"c\"]}",
         "$.three: items 0 and 1 are equal"},
        {11, "{\"three\":[1,2,3],\"pair\":[\"a\",1,2],\"tags\":[\"a\",\"b\",\"c\"]}",
         "$.pair[2]: no value is allowed here"},
        {15, "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}", "3 properties, more than 2"},
        {17, "{\"name\":\"n\",\"size\":5}", "$.size: 5 is below the minimum 100"},
        {19, "{\"label\":\"a\",\"children\":[{\"label\":\"b\",\"children\":[{}]}]}",
         "$.children[0].children[0]: missing required property \"label\""},
        {22, "-4", "$: -4 is above the maximum -5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *s = parse(schemas[bad[i].schema]);
        cJSON *v = parse(bad[i].value);
        char err[256] = "";
        assert_int_equal(mock_schema_validate(s, v, err, sizeof err), -1);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, bad[i].msg);
        cJSON_Delete(v);
        cJSON_Delete(s);
    }
}

/* Schemas that cannot be generated say why; the validator reports broken ones. */
static void test_broken_schemas(void **state) {
    (void)state;
    static const struct {
        const char *schema, *msg;
    } cases[] = {
        {"{\"$ref\":\"#/$defs/missing\"}", "$ref '#/$defs/missing' not found"},
        {"{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", "deeper than 32"},
        {"false", "admits no value"},
        {"{\"type\":\"date\"}", "unknown type \"date\""},
        {"{\"type\":\"integer\",\"minimum\":1,\"maximum\":2,\"multipleOf\":5}", "no multiple of 5"},
        {"{\"type\":\"array\",\"minItems\":3,\"items\":{\"enum\":[1,2]},\"uniqueItems\":true}",
         "distinct items"},
        {"{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}",
         "required \"x\" is not in properties"},
        {"{\"type\":\"array\",\"minItems\":1000}", "cannot make 1000..64 items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *s = parse(cases[i].schema), *v = (cJSON *)1;
        char err[256] = "";
        assert_int_equal(mock_schema_generate(s, NULL, "x", 0, &v, err, sizeof err), -1);
        assert_null(v);
        if (strstr(err, cases[i].msg) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].msg);
        cJSON_Delete(s);
    }
    cJSON *s = parse("{\"$ref\":\"#/nowhere\"}"), *v = parse("1");
    char err[128];
    assert_int_equal(mock_schema_validate(s, v, err, sizeof err), -1);
    assert_non_null(strstr(err, "not found"));
    cJSON_Delete(s);
    s = parse("{\"type\":\"string\",\"pattern\":\"(unclosed\"}");
    cJSON_Delete(v);
    v = parse("\"x\"");
    assert_int_equal(mock_schema_validate(s, v, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not supported"));
    /* Generation falls back to a fixed string for patterns it cannot walk. */
    cJSON *g = gen(s, "x", 0);
    assert_string_equal(g->valuestring, "sample");
    cJSON_Delete(g);
    cJSON_Delete(s);
    cJSON_Delete(v);
}

/* OpenAI response_format: text, json_object, json_schema, and the errors a bad one gets. */
static void test_response_format(void **state) {
    (void)state;
    char *out = NULL, err[256];
    cJSON *rf = parse("{\"type\":\"text\"}");
    assert_int_equal(mock_content_response_format(rf, NULL, "install nginx", 0, &out, err,
                                                  sizeof err), 0);
    assert_null(out);
    cJSON_Delete(rf);

    rf = parse("{\"type\":\"json_object\"}");
    assert_int_equal(mock_content_response_format(rf, NULL, "install nginx", 0, &out, err,
                                                  sizeof err), 1);
    cJSON *v = parse(out), *obj = NULL;
    assert_int_equal(mock_content_object(NULL, "install nginx", 0, &obj), 0);
    assert_true(cJSON_Compare(v, obj, 1));
    cJSON_Delete(obj);
    cJSON_Delete(v);
    cJSON_free(out);
    cJSON_Delete(rf);

    char text[4096];
    snprintf(text, sizeof text,
             "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"plan\",\"strict\":true,"
             "\"schema\":%s}}", schemas[0]);
    rf = parse(text);
    assert_int_equal(mock_content_response_format(rf, "sys", prompts[0], 4, &out, err, sizeof err),
                     1);
    v = parse(out);
    cJSON *s = parse(schemas[0]);
    assert_int_equal(mock_schema_validate(s, v, err, sizeof err), 0);
    assert_string_equal(str_at(v, "package"), "nginx");
    cJSON *direct = gen(s, prompts[0], 4);
    assert_true(cJSON_Compare(v, direct, 1));
    cJSON_Delete(direct);
    cJSON_Delete(s);
    cJSON_Delete(v);
    cJSON_free(out);
    cJSON_Delete(rf);

    static const struct {
        const char *rf, *msg;
    } bad[] = {
        {"[]", "response_format: expected an object"},
        {"{}", "response_format.type: missing"},
        {"{\"type\":\"xml\"}", "response_format.type: unknown \"xml\""},
        {"{\"type\":\"json_schema\"}", "response_format.json_schema: missing"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}", "json_schema.name: missing"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":3}}",
         "json_schema.schema: expected an object"},
        {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"$ref\":"
         "\"#/no\"}}}", "json_schema.schema: $ref '#/no' not found"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rf = parse(bad[i].rf);
        assert_int_equal(mock_content_response_format(rf, NULL, "x", 0, &out, err, sizeof err), -1);
        assert_null(out);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, bad[i].msg);
        cJSON_Delete(rf);
    }
}

/* cJSON allocations fail from the n-th on (0: never); counts what was attempted. */
static long fail_at, allocs;
static int hit;
static void *failing_malloc(size_t n) {
    if (fail_at > 0 && ++allocs >= fail_at) {
        hit = 1;
        return NULL;
    }
    return malloc(n);
}

/* One scenario under allocation failure: 0 on success, -1 on a reported failure. */
static int scenario(int which) {
    char err[256];
    cJSON *v = NULL;
    int rc;
    if (which < 4) {
        static const size_t pick[4] = {0, 7, 17, 20};
        cJSON_Hooks none = {NULL, NULL};
        long saved = fail_at;
        fail_at = 0; /* the schema itself is parsed without failures */
        cJSON_InitHooks(&none);
        cJSON *s = cJSON_Parse(schemas[pick[which]]);
        cJSON_Hooks h = {failing_malloc, free};
        cJSON_InitHooks(&h);
        fail_at = saved;
        assert_non_null(s);
        rc = mock_schema_generate(s, "sys", prompts[which % 3], 5, &v, err, sizeof err);
        fail_at = 0;
        cJSON_Delete(s);
        if (rc < 0) assert_null(v);
        cJSON_Delete(v);
        return rc;
    }
    rc = mock_content_object(NULL, which == 4 ? "install nginx and git" : "Diagnose error: x", 1,
                             &v);
    if (rc < 0) assert_null(v);
    cJSON_Delete(v);
    return rc;
}

/* Every cJSON allocation failing in turn: each run reports failure (no leak, no crash: ASan),
 * and the run past the last allocation succeeds. */
static void test_allocation_failures(void **state) {
    (void)state;
    cJSON_Hooks h = {failing_malloc, free};
    for (int which = 0; which < 6; which++) {
        long n;
        for (n = 1; n < 100000; n++) {
            fail_at = n;
            allocs = 0;
            hit = 0;
            cJSON_InitHooks(&h);
            int rc = scenario(which);
            int was_hit = hit;
            fail_at = 0;
            if (!was_hit) {
                assert_int_equal(rc, 0);
                break;
            }
            if (rc != -1) fail_msg("scenario %d: allocation %ld failed but rc %d", which, n, rc);
        }
        assert_true(n > 3 && n < 100000);
    }
    cJSON_InitHooks(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_table),
        cmocka_unit_test(test_prompt_fields),
        cmocka_unit_test(test_validator_refuses),
        cmocka_unit_test(test_broken_schemas),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
