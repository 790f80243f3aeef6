/* test_validate_corpus.c - the validator against its corpus: tests/data/validate/reject.txt
 * (dangerous commands, each must be rejected) and accept.txt (commands of ordinary install plans,
 * each must be accepted), grouped by "# category NAME" lines. It prints how many lines of each
 * category were accepted and rejected, and fails naming every misclassified line with the
 * validator's reason. The files are found next to this source file (__FILE__), so the test needs
 * no build-system definition. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/validate.h"
#include "t_util.h"

#define MAX_CATS 48
#define MIN_REJECT 300
#define MIN_ACCEPT 200

struct cat {
    char name[48];
    int accepted, rejected;
};

struct tally {
    struct cat cats[MAX_CATS];
    int ncats, lines, wrong;
};

/* The directory of this source file, with a trailing '/', into dir. */
static void source_dir(char *dir, size_t cap) {
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    size_t n = slash ? (size_t)(slash - f) + 1 : 0;
    if (n >= cap) n = 0;
    memcpy(dir, f, n);
    dir[n] = '\0';
}

static struct cat *category(struct tally *t, const char *name) {
    for (int i = 0; i < t->ncats; i++)
        if (strcmp(t->cats[i].name, name) == 0) return &t->cats[i];
    assert_true(t->ncats < MAX_CATS);
    struct cat *c = &t->cats[t->ncats++];
    snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof c->name - 1, name);
    c->accepted = c->rejected = 0;
    return c;
}

/* Runs every command of file through cx_validate_command; want_reject says which answer is
 * right. Misclassified lines are printed as they are found and counted in t->wrong. */
static void run_file(const char *file, bool want_reject, struct tally *t) {
    char path[4096], line[CX_VALIDATE_MAX_CMD + 2], why[256];
    source_dir(path, sizeof path);
    strncat(path, "data/validate/", sizeof path - strlen(path) - 1);
    strncat(path, file, sizeof path - strlen(path) - 1);
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open the corpus file %s", path);
    memset(t, 0, sizeof *t);
    struct cat *cur = category(t, "(none)");
    int lineno = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] != '\n' && !feof(fp))
            fail_msg("%s:%d: line longer than %d bytes", file, lineno, CX_VALIDATE_MAX_CMD);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if (line[0] == '#') {
            if (strncmp(line, "# category ", 11) == 0) cur = category(t, line + 11);
            continue;
        }
        t->lines++;
        int rc = cx_validate_command(line, why, sizeof why);
        assert_true(rc == 0 || rc == CX_EREJECTED);
        if (rc == CX_EREJECTED) cur->rejected++;
        else cur->accepted++;
        if ((rc == CX_EREJECTED) != want_reject) {
            t->wrong++;
            if (want_reject)
                printf("WRONGLY ACCEPTED %s:%d [%s]: %s\n", file, lineno, cur->name, line);
            else
                printf("WRONGLY REJECTED %s:%d [%s]: %s\n    reason: %s\n", file, lineno,
                       cur->name, line, why);
        }
    }
    fclose(fp);
}

static void report(const char *file, const struct tally *t) {
    int acc = 0, rej = 0;
    printf("%s: %d commands\n  %-24s %8s %8s\n", file, t->lines, "category", "accepted",
           "rejected");
    for (int i = 0; i < t->ncats; i++) {
        const struct cat *c = &t->cats[i];
        if (c->accepted + c->rejected == 0) continue;
        printf("  %-24s %8d %8d\n", c->name, c->accepted, c->rejected);
        acc += c->accepted;
        rej += c->rejected;
    }
    printf("  %-24s %8d %8d\n", "total", acc, rej);
    fflush(stdout);
}

static void test_reject_corpus(void **state) {
    (void)state;
    struct tally t;
    run_file("reject.txt", true, &t);
    report("reject.txt", &t);
    if (t.lines < MIN_REJECT) fail_msg("reject.txt has %d commands, fewer than %d", t.lines, MIN_REJECT);
    if (t.wrong) fail_msg("%d dangerous commands of reject.txt were accepted (listed above)", t.wrong);
}

static void test_accept_corpus(void **state) {
    (void)state;
    struct tally t;
    run_file("accept.txt", false, &t);
    report("accept.txt", &t);
    if (t.lines < MIN_ACCEPT) fail_msg("accept.txt has %d commands, fewer than %d", t.lines, MIN_ACCEPT);
    if (t.wrong) fail_msg("%d benign commands of accept.txt were rejected (listed above)", t.wrong);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reject_corpus),
        cmocka_unit_test(test_accept_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
