/* test_mock_content_prompt.c - the mock's prompt understanding: a table of natural phrasings with
 * the package list each must give (and the plan the reply then carries), prompts that must plan
 * nothing (questions, chit-chat, stop words), the project's own prompt shapes, determinism. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../mockserver/src/content.h"
#include "t_util.h"

/* want: the expected packages, space separated, each optionally "name=version"; "" = none. */
static const struct {
    const char *prompt, *want;
} phrasings[] = {
    {"Install the package nginx on Debian. Answer with a json block holding \"commands\".",
     "nginx"},
    {"install nginx", "nginx"},
    {"Install nginx.", "nginx"},
    {"Please install nginx!", "nginx"},
    {"Could you please install nginx for me?", "nginx"},
    {"Would you kindly install the nginx package, thanks", "nginx"},
    {"How do I install nginx?", "nginx"},
    {"how can i install htop on ubuntu 22.04?", "htop"},
    {"I need nginx on Debian", "nginx"},
    {"I need python3.11", "python3.11"},
    {"We want redis on the box", "redis"},
    {"set up nginx", "nginx"},
    {"Set up a redis server for caching", "redis"},
    {"Can you setup postgresql?", "postgresql"},
    {"deploy docker.io please", "docker.io"},
    {"install the packages nginx, redis and git", "nginx redis git"},
    {"Install packages nginx, redis, and git.", "nginx redis git"},
    {"install nginx and redis", "nginx redis"},
    {"install nginx, redis, git", "nginx redis git"},
    {"install nginx redis postgresql docker nodejs", "nginx redis postgresql docker nodejs"},
    {"install nginx & curl", "nginx curl"},
    {"install nginx or apache2", "nginx apache2"},
    {"install 'nginx'", "nginx"},
    {"install \"nginx\"", "nginx"},
    {"install `nginx`", "nginx"},
    {"Please install `jq` and 'tree'.", "jq tree"},
    {"install nginx=1.22*", "nginx=1.22*"},
    {"install `nginx=1.22.1-1`", "nginx=1.22.1-1"},
    {"install nginx version 1.22", "nginx=1.22"},
    {"install the latest version of nginx", "nginx"},
    {"install NGINX", "nginx"},
    {"INSTALL PostgreSQL.", "postgresql"},
    {"apt-get install -y nginx", "nginx"},
    {"sudo apt install htop curl", "htop curl"},
    {"please install nginx and configure it as a reverse proxy for my web app", "nginx"},
    {"Install nginx. Then tell me how to open port 80.", "nginx"},
    {"Hi! Could you install libssl-dev and build-essential on my machine?",
     "libssl-dev build-essential"},
    {"install libstdc++6", "libstdc++6"},
    {"first install git, then set up tmux", "git tmux"},
    {"I'd like you to install openssh-server", "openssh-server"},
    {"add ffmpeg to the server", "ffmpeg"},
    {"install 3 packages: nginx, redis and git", "nginx redis git"},
    {"Install: vim", "vim"},
    {"install nginx (the web server)", "nginx"},
    {"install nginx; answer in json", "nginx"},
    {"Install the package nginx on Debian and reply with JSON only.", "nginx"},
    {"install node.js", "node.js"},
    {"Set up the following packages: git, curl, wget", "git curl wget"},
    {"install nginx nginx", "nginx"},
    {"Can you install the nginx web server and the redis cache?", "nginx redis"},
    {"install vim-nox or emacs-nox, whichever is smaller", "vim-nox emacs-nox"},
    {"need to set up a mail server with postfix", "postfix"},
    {"Installing nginx fails with 404, why?", "nginx"},
    {"install nginx with ssl", "nginx"},
    {"set up a LAMP stack with apache2, mariadb and php", "apache2 mariadb php"},
    {"I want to install docker", "docker"},
    /* No package: a question, chit-chat, stop words only, negation, garbage. */
    {"hello there", ""},
    {"What is the weather like?", ""},
    {"How are you today?", ""},
    {"I need help", ""},
    {"I want to know about Linux", ""},
    {"what is nginx?", ""},
    {"Install the package", ""},
    {"install the", ""},
    {"please install something for me", ""},
    {"install it", ""},
    {"don't install nginx", ""},
    {"install $(reboot)", ""},
    {"Tell me a joke", ""},
    {"Can you help me set up my server?", ""},
    {"", ""},
};

static void expect_pkgs(const struct mock_prompt *pr, const char *want, const char *prompt,
                        int *ok) {
    char got[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < pr->n_pkgs; i++) {
        o += (size_t)snprintf(got + o, sizeof got - o, "%s%s%s%s", i ? " " : "",
                              pr->pkgs[i].name, pr->pkgs[i].version[0] ? "=" : "",
                              pr->pkgs[i].version);
    }
    if (strcmp(got, want) != 0) {
        printf("PHRASING FAIL: \"%s\": got [%s], want [%s]\n", prompt, got, want);
        *ok = 0;
    }
}

/* The fenced block of a reply, or NULL when it has none. */
static cJSON *block_of(const char *text) {
    const char *open = strstr(text, "```json\n");
    if (open == NULL) return NULL;
    const char *body = open + strlen("```json\n");
    const char *close = strstr(body, "\n```");
    assert_non_null(close);
    cJSON *obj = cJSON_ParseWithLength(body, (size_t)(close - body));
    assert_non_null(obj);
    return obj;
}

/* The reply plans exactly the packages of pr (canonical names may differ: node.js -> nodejs). */
static void check_reply(const char *prompt, const struct mock_prompt *pr) {
    struct mock_content mc;
    assert_int_equal(mock_content_generate("", prompt, 3, 0, 0, &mc), 0);
    cJSON *obj = block_of(mc.text);
    if (pr->n_pkgs == 0) {
        /* Generic answer: plain text, or a block with no commands when JSON was asked for. */
        if (obj != NULL) {
            assert_true(pr->wants_json);
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "commands");
            assert_true(cJSON_IsArray(c) && cJSON_GetArraySize(c) == 0);
            assert_null(cJSON_GetObjectItemCaseSensitive(obj, "package"));
        }
    } else {
        assert_non_null(obj);
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(obj, "package");
        assert_true(cJSON_IsString(pk));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "commands");
        assert_true(cJSON_IsArray(c) && cJSON_GetArraySize(c) >= 2);
        /* Several packages are listed under "packages"; a pinned version reaches a command. */
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "packages");
        size_t want_n = pr->n_pkgs;
        if (want_n > 1) {
            assert_true(cJSON_IsArray(list));
        } else {
            assert_null(list);
        }
        char *all = cJSON_PrintUnformatted(c);
        assert_non_null(all);
        assert_non_null(strstr(all, "sudo apt-get install -y "));
        for (size_t i = 0; i < pr->n_pkgs; i++) {
            if (pr->pkgs[i].version[0]) assert_non_null(strstr(all, pr->pkgs[i].version));
        }
        cJSON_free(all);
    }
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

static void test_phrasing_table(void **state) {
    (void)state;
    size_t n = sizeof phrasings / sizeof phrasings[0], pass = 0, with_pkgs = 0;
    for (size_t i = 0; i < n; i++) {
        struct mock_prompt pr;
        int ok = 1;
        mock_prompt_parse(NULL, phrasings[i].prompt, &pr);
        expect_pkgs(&pr, phrasings[i].want, phrasings[i].prompt, &ok);
        if (phrasings[i].want[0]) {
            with_pkgs++;
            if (pr.intent != MOCK_INTENT_INSTALL) ok = 0;
        } else if (pr.intent != MOCK_INTENT_CHAT) {
            ok = 0;
        }
        if (ok) check_reply(phrasings[i].prompt, &pr);
        pass += (size_t)ok;
    }
    printf("phrasing table: %zu/%zu pass (%zu with packages, %zu without)\n", pass, n, with_pkgs,
           n - with_pkgs);
    assert_true(n >= 40);
    assert_int_equal(pass, n);
}

/* The issue's example: the plan is for nginx, in a json block with "commands". */
static void test_issue_example(void **state) {
    (void)state;
    struct mock_content mc;
    const char *p =
        "Install the package nginx on Debian. Answer with a json block holding \"commands\".";
    assert_int_equal(mock_content_generate(NULL, p, 0, 0, 0, &mc), 0);
    cJSON *obj = block_of(mc.text);
    assert_non_null(obj);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(obj, "package")->valuestring, "nginx");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "commands");
    assert_string_equal(cJSON_GetArrayItem(c, 1)->valuestring, "sudo apt-get install -y nginx");
    assert_null(strstr(mc.text, "install -y the"));
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

/* Several packages: one update, each builtin's own commands, unknown names on one line, pins. */
static void test_multi_plan(void **state) {
    (void)state;
    struct mock_content mc;
    assert_int_equal(mock_content_generate("", "install nginx, htop, redis=7* and git", 1, 0, 0,
                                           &mc), 0);
    cJSON *obj = block_of(mc.text);
    assert_non_null(obj);
    char *cmds = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(obj, "commands"));
    assert_string_equal(cmds,
                        "[\"sudo apt-get update\",\"sudo apt-get install -y nginx\","
                        "\"sudo systemctl enable --now nginx\",\"sudo nginx -t\","
                        "\"systemctl is-active nginx\",\"sudo apt-get install -y htop git\","
                        "\"sudo apt-get install -y 'redis-server=7*'\","
                        "\"sudo sed -i 's/^supervised no/supervised systemd/' "
                        "/etc/redis/redis.conf\",\"sudo systemctl enable --now redis-server\","
                        "\"sudo systemctl restart redis-server\",\"redis-cli ping\"]");
    char *pk = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(obj, "packages"));
    assert_string_equal(pk, "[\"nginx\",\"htop\",\"redis=7*\",\"git\"]");
    assert_non_null(strstr(mc.text, "nginx, htop, redis and git"));
    cJSON_free(cmds);
    cJSON_free(pk);
    cJSON_Delete(obj);
    mock_content_free(&mc);

    /* Aliases of one package plan it once; a single pinned package gets "version". */
    assert_int_equal(mock_content_generate("", "install node and nodejs", 1, 0, 0, &mc), 0);
    obj = block_of(mc.text);
    assert_null(cJSON_GetObjectItemCaseSensitive(obj, "packages"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(obj, "package")->valuestring, "nodejs");
    cJSON_Delete(obj);
    mock_content_free(&mc);
    assert_int_equal(mock_content_generate("", "install htop=3.2.2-2", 1, 0, 1, &mc), 0);
    obj = block_of(mc.text);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(obj, "version")->valuestring, "3.2.2-2");
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

/* Unknown intent never plans a stop word; JSON requests get an empty command list. */
static void test_unknown_intent(void **state) {
    (void)state;
    struct mock_content mc;
    assert_int_equal(mock_content_generate("", "Install the package. Reply in JSON.", 2, 0, 0,
                                           &mc), 0);
    cJSON *obj = block_of(mc.text);
    assert_non_null(obj);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(obj, "commands")), 0);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(obj, "explanation")->valuestring,
                           "Which package"));
    cJSON_Delete(obj);
    mock_content_free(&mc);
    assert_int_equal(mock_content_generate("", "install the", 2, 700, 0, &mc), 0);
    assert_null(strstr(mc.text, "```"));
    assert_non_null(strstr(mc.text, "Which package"));
    assert_int_equal(strlen(mc.text), 700);
    mock_content_free(&mc);
    /* The system prompt can ask for JSON too; padding keeps the block valid. */
    assert_int_equal(mock_content_generate("Always answer with a JSON object.", "hello", 2, 2000,
                                           0, &mc), 0);
    obj = block_of(mc.text);
    assert_non_null(obj);
    assert_int_equal(strlen(mc.text), 2000);
    cJSON_Delete(obj);
    mock_content_free(&mc);
}

/* The project's own shapes are read exactly as before (tests/test_mock_content.c checks the
 * replies); here only the parse. */
static void test_project_shapes(void **state) {
    (void)state;
    struct mock_prompt pr;
    mock_prompt_parse("sys", "Install package: tool-21", &pr);
    assert_int_equal(pr.intent, MOCK_INTENT_INSTALL);
    assert_int_equal(pr.n_pkgs, 1);
    assert_string_equal(pr.pkgs[0].name, "tool-21");
    mock_prompt_parse(NULL, "Install package: $(reboot);rm|x`y`", &pr);
    assert_string_equal(pr.pkgs[0].name, "rebootrmxy");
    mock_prompt_parse(NULL, "Diagnose error: E: Unable to locate package foo; install it", &pr);
    assert_int_equal(pr.intent, MOCK_INTENT_DIAGNOSE);
    assert_string_equal(pr.arg, " E: Unable to locate package foo; install it");
    mock_prompt_parse(NULL, "Hardware check: gpu 1 GPU: install drivers", &pr);
    assert_int_equal(pr.intent, MOCK_INTENT_HARDWARE);
    assert_int_equal(pr.n_pkgs, 0);
    mock_prompt_parse(
        "You are a Linux package expert. Reply with a JSON object in a ```json block with a "
        "\"commands\" array of shell commands and an \"explanation\".",
        "Analyze package redis", &pr);
    assert_int_equal(pr.intent, MOCK_INTENT_INSTALL);
    assert_true(pr.wants_json);
    assert_string_equal(pr.pkgs[0].name, "redis");
    /* Long and many: names over the cap are skipped, lists stop at the cap. */
    char big[4096] = "install";
    for (int i = 0; i < 40; i++) snprintf(big + strlen(big), sizeof big - strlen(big), " pkg%d", i);
    snprintf(big + strlen(big), sizeof big - strlen(big), " %0100d", 7);
    mock_prompt_parse(NULL, big, &pr);
    assert_int_equal(pr.n_pkgs, MOCK_PROMPT_MAX_PKGS);
    assert_string_equal(pr.pkgs[15].name, "pkg15");
}

static void test_deterministic(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof phrasings / sizeof phrasings[0]; i++) {
        for (uint64_t seed = 0; seed < 3; seed++) {
            struct mock_content a, b;
            assert_int_equal(mock_content_generate("s", phrasings[i].prompt, seed, 0, 0, &a), 0);
            assert_int_equal(mock_content_generate("s", phrasings[i].prompt, seed, 0, 0, &b), 0);
            assert_string_equal(a.text, b.text);
            mock_content_free(&a);
            mock_content_free(&b);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phrasing_table), cmocka_unit_test(test_issue_example),
        cmocka_unit_test(test_multi_plan),     cmocka_unit_test(test_unknown_intent),
        cmocka_unit_test(test_project_shapes), cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
