/* test_mock_content.c - the mock server's reply generator: each workload's shape, determinism,
 * seeds that change wording but never commands, padding, dangerous plans, tokens and splitting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../mockserver/src/content.h"
#include "cx/parse.h"
#include "cx/validate.h"
#include "t_util.h"

/* Generates a reply and parses the single ```json block; asserts the fence shape. */
static cJSON *gen_json(const char *prompt, uint64_t seed, size_t pad, int dangerous,
                       struct mock_content *mc) {
    assert_int_equal(mock_content_generate("sys", prompt, seed, pad, dangerous, mc), 0);
    assert_non_null(mc->text);
    const char *open = strstr(mc->text, "```json\n");
    assert_non_null(open);
    assert_null(strstr(open + 1, "```json")); /* exactly one block */
    const char *body = open + strlen("```json\n");
    const char *close = strstr(body, "\n```");
    assert_non_null(close);
    cJSON *obj = cJSON_ParseWithLength(body, (size_t)(close - body));
    assert_non_null(obj);
    assert_true(cJSON_IsObject(obj));
    return obj;
}

static size_t cmd_count(const cJSON *obj) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "commands");
    assert_true(cJSON_IsArray(c));
    return (size_t)cJSON_GetArraySize(c);
}

static const char *cmd_at(const cJSON *obj, size_t i) {
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(obj, "commands"), (int)i);
    assert_true(cJSON_IsString(c));
    return c->valuestring;
}

static int has_cmd(const cJSON *obj, const char *cmd) {
    for (size_t i = 0; i < cmd_count(obj); i++)
        if (strcmp(cmd_at(obj, i), cmd) == 0) return 1;
    return 0;
}

static const char *str_of(const cJSON *obj, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsString(s));
    return s->valuestring;
}

/* Every command list as one string, to compare plans across seeds. */
static char *cmds_joined(const cJSON *obj) {
    cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "commands");
    char *s = cJSON_PrintUnformatted(c);
    assert_non_null(s);
    return s;
}

static void test_builtin_plans(void **state) {
    (void)state;
    static const struct {
        const char *prompt, *package, *install, *extra;
    } cases[] = {
        {"Install package: nginx", "nginx", "sudo apt-get install -y nginx",
         "sudo systemctl enable --now nginx"},
        {"Analyze package redis", "redis", "sudo apt-get install -y redis-server",
         "sudo systemctl enable --now redis-server"},
        {"please install PostgreSQL.", "postgresql",
         "sudo apt-get install -y postgresql postgresql-contrib",
         "sudo systemctl enable --now postgresql"},
        {"INSTALL PACKAGE: docker.io", "docker", "sudo apt-get install -y docker.io",
         "sudo systemctl enable --now docker"},
        {"install node", "nodejs", "sudo apt-get install -y nodejs npm", "npm --version"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mock_content mc;
        cJSON *obj = gen_json(cases[i].prompt, 1, 0, 0, &mc);
        assert_string_equal(str_of(obj, "package"), cases[i].package);
        assert_string_equal(cmd_at(obj, 0), "sudo apt-get update");
        assert_true(has_cmd(obj, cases[i].install));
        assert_true(has_cmd(obj, cases[i].extra));
        assert_true(strlen(str_of(obj, "explanation")) > 40);
        assert_true(cmd_count(obj) >= 4);
        cJSON_Delete(obj);
        mock_content_free(&mc);
        assert_null(mc.text);
    }
}

/* The reply to prompt (seed 7) names the package want. */
static void expect_package(const char *prompt, const char *want) {
    struct mock_content mc;
    cJSON *obj = gen_json(prompt, 7, 0, 0, &mc);
    assert_string_equal(str_of(obj, "package"), want);
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

static void test_generic_plan_and_sanitizing(void **state) {
    (void)state;
    struct mock_content mc;
    cJSON *obj = gen_json("Install package: htop", 7, 0, 0, &mc);
    assert_string_equal(str_of(obj, "package"), "htop");
    assert_int_equal(cmd_count(obj), 2);
    assert_string_equal(cmd_at(obj, 0), "sudo apt-get update");
    assert_string_equal(cmd_at(obj, 1), "sudo apt-get install -y htop");
    assert_non_null(strstr(str_of(obj, "explanation"), "htop"));
    cJSON_Delete(obj);
    mock_content_free(&mc);

    /* Valid characters are echoed as given, including + . _ - */
    expect_package("install libstdc++6_x.y-z", "libstdc++6_x.y-z");

    /* Shell metacharacters never reach a command. */
    obj = gen_json("Install package: $(reboot);rm|x`y`", 7, 0, 0, &mc);
    assert_string_equal(str_of(obj, "package"), "rebootrmxy");
    assert_string_equal(cmd_at(obj, 1), "sudo apt-get install -y rebootrmxy");
    cJSON_Delete(obj);
    mock_content_free(&mc);

    /* Nothing valid left: a placeholder name. */
    expect_package("Install package: $$$", "unknown-package");

    /* Names are capped at 64 characters. */
    char prompt[200] = "Install package: ";
    size_t pl = strlen(prompt);
    memset(prompt + pl, 'a', 100);
    prompt[pl + 100] = '\0';
    obj = gen_json(prompt, 7, 0, 0, &mc);
    assert_int_equal(strlen(str_of(obj, "package")), 64);
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

static void test_determinism_and_seed(void **state) {
    (void)state;
    const char *prompts[] = {"Install package: nginx", "Install package: htop",
                             "Diagnose error: E: Unable to locate package foo",
                             "Hardware check: gpu RTX 4090", "hello there"};
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        struct mock_content a, b;
        assert_int_equal(mock_content_generate("s", prompts[p], 42, 0, 0, &a), 0);
        assert_int_equal(mock_content_generate("s", prompts[p], 42, 0, 0, &b), 0);
        assert_string_equal(a.text, b.text);
        assert_int_equal(a.completion_tokens, b.completion_tokens);
        assert_int_equal(a.prompt_tokens, b.prompt_tokens);
        mock_content_free(&a);
        mock_content_free(&b);
    }
    /* Across seeds: the wording varies, the commands do not. */
    const char *pk[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "htop"};
    for (size_t k = 0; k < sizeof pk / sizeof pk[0]; k++) {
        char prompt[64];
        snprintf(prompt, sizeof prompt, "Install package: %s", pk[k]);
        struct mock_content m0;
        cJSON *o0 = gen_json(prompt, 0, 0, 0, &m0);
        char *c0 = cmds_joined(o0);
        int text_differs = 0;
        for (uint64_t seed = 1; seed < 40; seed++) {
            struct mock_content m;
            cJSON *o = gen_json(prompt, seed, 0, 0, &m);
            char *c = cmds_joined(o);
            assert_string_equal(c, c0);
            if (strcmp(m.text, m0.text) != 0) text_differs = 1;
            cJSON_free(c);
            cJSON_Delete(o);
            mock_content_free(&m);
        }
        assert_true(text_differs);
        cJSON_free(c0);
        cJSON_Delete(o0);
        mock_content_free(&m0);
    }
}

static void test_padding(void **state) {
    (void)state;
    const char *prompts[] = {"Install package: nginx", "Install package: htop",
                             "Diagnose error: No space left on device", "Hardware check: disk sda",
                             "Hardware check: toaster"};
    size_t sizes[] = {1, 600, 4096, 100000};
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        struct mock_content base;
        cJSON *ob = gen_json(prompts[p], 3, 0, 0, &base);
        char *cb = cmds_joined(ob);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            struct mock_content mc;
            cJSON *o = gen_json(prompts[p], 3, sizes[s], 0, &mc);
            size_t len = strlen(mc.text);
            assert_true(len >= sizes[s]);
            if (sizes[s] > strlen(base.text)) assert_int_equal(len, sizes[s]); /* exact */
            else assert_int_equal(len, strlen(base.text));
            char *c = cmds_joined(o);
            assert_string_equal(c, cb); /* padding never touches commands */
            assert_int_equal(mc.completion_tokens, mock_count_tokens(mc.text, len));
            cJSON_free(c);
            cJSON_Delete(o);
            mock_content_free(&mc);
        }
        cJSON_free(cb);
        cJSON_Delete(ob);
        mock_content_free(&base);
    }
    /* Plain chat pads too, and stays without a JSON block. */
    struct mock_content mc;
    assert_int_equal(mock_content_generate(NULL, "how are you?", 1, 5000, 0, &mc), 0);
    assert_int_equal(strlen(mc.text), 5000);
    assert_null(strstr(mc.text, "```"));
    mock_content_free(&mc);
}

static void test_dangerous(void **state) {
    (void)state;
    const char *pk[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "htop"};
    int seen_curl = 0, seen_rm = 0;
    for (size_t k = 0; k < sizeof pk / sizeof pk[0]; k++) {
        for (uint64_t seed = 0; seed < 8; seed++) {
            char prompt[64];
            snprintf(prompt, sizeof prompt, "Install package: %s", pk[k]);
            struct mock_content safe, bad;
            cJSON *os = gen_json(prompt, seed, 0, 0, &safe);
            cJSON *ob = gen_json(prompt, seed, 0, 1, &bad);
            assert_int_equal(cmd_count(os), cmd_count(ob));
            size_t changed = 0;
            for (size_t i = 0; i < cmd_count(os); i++) {
                assert_false(strstr(cmd_at(os, i), "| sh") || strstr(cmd_at(os, i), "rm -rf /"));
                if (strcmp(cmd_at(os, i), cmd_at(ob, i)) != 0) {
                    changed++;
                    if (strstr(cmd_at(ob, i), "| sh")) seen_curl = 1;
                    if (strcmp(cmd_at(ob, i), "sudo rm -rf /") == 0) seen_rm = 1;
                }
            }
            assert_int_equal(changed, 1);
            cJSON_Delete(os);
            cJSON_Delete(ob);
            mock_content_free(&safe);
            mock_content_free(&bad);
        }
    }
    assert_true(seen_curl && seen_rm);
    /* Other workloads ignore the flag. */
    struct mock_content a, b;
    assert_int_equal(mock_content_generate("", "Hardware check: cpu", 1, 0, 0, &a), 0);
    assert_int_equal(mock_content_generate("", "Hardware check: cpu", 1, 0, 1, &b), 0);
    assert_string_equal(a.text, b.text);
    mock_content_free(&a);
    mock_content_free(&b);
}

static void test_diagnosis(void **state) {
    (void)state;
    static const struct {
        const char *err, *cmd;
    } cases[] = {
        {"write /var/log/x: No space left on device", "sudo apt-get clean"},
        {"open /etc/shadow: Permission denied", "id"},
        {"curl: (6) Could not resolve host: example.com", "resolvectl status"},
        {"E: dpkg was interrupted, you must manually run 'sudo dpkg --configure -a'",
         "sudo dpkg --configure -a"},
        {"E: Unable to locate package foobar", "apt-cache search --names-only foobar"},
        {"listen tcp :80: bind: address already in use", "sudo ss -ltnp"},
        {"Segmentation fault (core dumped) in package nginx",
         "sudo apt-get install --reinstall -y nginx"},
        {"E: Could not get lock /var/lib/dpkg/lock-frontend", "sudo systemctl stop unattended-upgrades"},
        {"something odd happened", "sudo journalctl -xe --no-pager -n 50"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char prompt[256];
        snprintf(prompt, sizeof prompt, "Diagnose error: %s", cases[i].err);
        struct mock_content mc;
        cJSON *obj = gen_json(prompt, 5, 0, 0, &mc);
        assert_string_equal(str_of(obj, "error"), cases[i].err);
        assert_true(strlen(str_of(obj, "cause")) > 10);
        assert_true(strlen(str_of(obj, "explanation")) > 10);
        if (!has_cmd(obj, cases[i].cmd)) fail_msg("%s: missing %s", cases[i].err, cases[i].cmd);
        cJSON_Delete(obj);
        mock_content_free(&mc);
    }
    /* Escaping: quotes, backslashes, newlines and invalid UTF-8 come back as valid JSON, the
     * error cut to 80 bytes without splitting a character. */
    char prompt[300] = "Diagnose error: say \"hi\" \\ then\nline2 \xff\xfe caf\xc3\xa9 ";
    size_t pl = strlen(prompt);
    for (int i = 0; i < 40; i++, pl += 2) memcpy(prompt + pl, "\xc3\xa9", 3);
    struct mock_content mc;
    cJSON *obj = gen_json(prompt, 5, 0, 0, &mc);
    const char *e = str_of(obj, "error");
    assert_true(strncmp(e, "say \"hi\" \\ then line2 ?? caf\xc3\xa9", 30) == 0);
    assert_true(strlen(e) <= 80 && strlen(e) >= 79);
    assert_int_not_equal((unsigned char)e[strlen(e) - 1], 0xc3); /* no cut sequence */
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

static void test_hardware(void **state) {
    (void)state;
    static const struct {
        const char *prompt, *component, *cmd;
    } cases[] = {
        {"Hardware check: cpu 8 cores", "cpu", "lscpu"},
        {"hardware check: Memory 16GB", "memory", "free -h"},
        {"Hardware check: ram", "memory", "free -h"},
        {"Hardware check: disk /dev/sda 90% full", "disk", "df -h"},
        {"Hardware check: GPU RTX 3090", "gpu", "nvidia-smi"},
        {"Hardware check: toaster", "unknown", "lshw -short"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mock_content mc;
        cJSON *obj = gen_json(cases[i].prompt, 9, 0, 0, &mc);
        assert_string_equal(str_of(obj, "component"), cases[i].component);
        assert_true(has_cmd(obj, cases[i].cmd));
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "recommendations");
        assert_true(cJSON_IsArray(r) && cJSON_GetArraySize(r) >= 2);
        cJSON_Delete(obj);
        mock_content_free(&mc);
    }
}

static void test_chat(void **state) {
    (void)state;
    struct mock_content mc;
    assert_int_equal(mock_content_generate("You are helpful.", "What is the weather like?", 1, 0,
                                           1, &mc), 0);
    assert_null(strstr(mc.text, "```"));
    assert_non_null(strstr(mc.text, "What is the weather like?"));
    assert_int_equal(mc.prompt_tokens, mock_count_tokens("You are helpful.", 16) +
                                           mock_count_tokens("What is the weather like?", 25));
    mock_content_free(&mc);
    assert_int_equal(mock_content_generate(NULL, NULL, 0, 0, 0, &mc), 0);
    assert_true(strlen(mc.text) > 10);
    assert_int_equal(mc.prompt_tokens, 0);
    mock_content_free(&mc);
    mock_content_free(NULL);
}

static void check_split(const char *text) {
    size_t len = strlen(text);
    size_t n = mock_content_split(text, len, NULL, 0);
    assert_int_equal(n, mock_count_tokens(text, len));
    size_t *st = calloc(n + 1, sizeof *st);
    assert_non_null(st);
    assert_int_equal(mock_content_split(text, len, st, n + 1), n);
    if (n > 0) assert_int_equal(st[0], 0);
    for (size_t i = 0; i < n; i++) {
        size_t end = i + 1 < n ? st[i + 1] : len;
        assert_true(end > st[i]);
        /* No piece starts inside a UTF-8 sequence, and none is only whitespace unless alone. */
        assert_int_not_equal((unsigned char)text[st[i]] & 0xC0, 0x80);
    }
    free(st);
}

static void test_tokens_and_split(void **state) {
    (void)state;
    size_t st[8];
    const char *t = "Hello, world!";
    assert_int_equal(mock_content_split(t, strlen(t), st, 8), 4);
    assert_int_equal(st[0], 0);
    assert_int_equal(st[1], 5);  /* "," */
    assert_int_equal(st[2], 6);  /* " world" */
    assert_int_equal(st[3], 12); /* "!" */
    assert_int_equal(mock_count_tokens("", 0), 0);
    assert_int_equal(mock_count_tokens(NULL, 0), 0);
    assert_int_equal(mock_count_tokens("   ", 3), 1);
    assert_int_equal(mock_count_tokens("  a  \n", 6), 1);
    /* Long words are cut every 8 bytes; multibyte characters are never cut. */
    assert_int_equal(mock_count_tokens("abcdefghijklmnopq", 17), 3);
    const char *u = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"; /* 5 x e-acute, 10 bytes */
    assert_int_equal(mock_content_split(u, 10, st, 8), 2);
    assert_int_equal(st[1], 8);
    /* Truncation: the last filled piece runs to the end. */
    assert_int_equal(mock_content_split(t, strlen(t), st, 2), 2);
    assert_int_equal(st[1], 5);

    check_split("a");
    check_split("  leading and trailing  ");
    check_split("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac x");
    const char *prompts[] = {"Install package: nginx", "Diagnose error: segfault",
                             "Hardware check: cpu", "hi"};
    for (size_t i = 0; i < 4; i++) {
        struct mock_content mc;
        assert_int_equal(mock_content_generate("", prompts[i], 11, 3000, 1, &mc), 0);
        check_split(mc.text);
        assert_int_equal(mc.completion_tokens, mock_content_split(mc.text, strlen(mc.text), NULL, 0));
        /* Roughly 4 bytes per token, like real tokenizers on English text. */
        size_t len = strlen(mc.text);
        assert_true(mc.completion_tokens > len / 10 && mc.completion_tokens < len / 2);
        mock_content_free(&mc);
    }
}

/* The contract from the other side: the runtime's parser reads every reply the mock makes, its
 * validator accepts every ordinary command, and refuses every plan made with the dangerous flag. */
static void test_runtime_accepts_replies(void **state) {
    (void)state;
    const char *prompts[] = {
        "Install package: nginx", "Install package: redis", "Install package: postgresql",
        "Install package: docker", "Install package: nodejs", "Analyze package htop",
        "install libssl-dev", "Install package: $(evil)",
        "Diagnose error: No space left on device", "Diagnose error: Permission denied",
        "Diagnose error: Could not resolve host: x", "Diagnose error: dpkg was interrupted",
        "Diagnose error: Could not get lock /var/lib/dpkg/lock",
        "Diagnose error: E: Unable to locate package foo", "Diagnose error: address already in use",
        "Diagnose error: Segmentation fault in package nginx", "Diagnose error: connection refused",
        "Diagnose error: something else", "Hardware check: cpu", "Hardware check: memory",
        "Hardware check: disk", "Hardware check: gpu", "Hardware check: toaster"};
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        for (uint64_t seed = 0; seed < 4; seed++) {
            for (int dangerous = 0; dangerous <= 1; dangerous++) {
                struct mock_content mc;
                assert_int_equal(mock_content_generate("", prompts[p], seed, seed * 700,
                                                       dangerous, &mc), 0);
                cJSON *obj = NULL;
                struct cx_errinfo ei;
                int rc = cx_parse_response(mc.text, 1, &obj, &ei);
                if (rc != 0) fail_msg("%s: runtime parse: %s", prompts[p], ei.msg);
                struct cx_validation v;
                rc = cx_validate_commands(cJSON_GetObjectItemCaseSensitive(obj, "commands"), &v);
                int install = strstr(prompts[p], "nstall") || strstr(prompts[p], "Analyze");
                if (dangerous && install) {
                    assert_int_equal(rc, CX_EREJECTED);
                    assert_int_equal(v.n_rejected, 1);
                } else if (rc != 0) {
                    fail_msg("%s: validator refused %s", prompts[p], v.reasons[0]);
                }
                cx_validation_clear(&v);
                cJSON_Delete(obj);
                mock_content_free(&mc);
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_plans),  cmocka_unit_test(test_generic_plan_and_sanitizing),
        cmocka_unit_test(test_determinism_and_seed), cmocka_unit_test(test_padding),
        cmocka_unit_test(test_dangerous),      cmocka_unit_test(test_diagnosis),
        cmocka_unit_test(test_hardware),       cmocka_unit_test(test_chat),
        cmocka_unit_test(test_tokens_and_split), cmocka_unit_test(test_runtime_accepts_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
