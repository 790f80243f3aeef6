/*
 * t_cli.h - what the `cx` tests share: run cx_cli_main in-process with its output captured
 * (run_cx), a fixture with a private data directory and no API key in the environment, and
 * readers for the one JSON object --json prints. Header-only (static inline): each test_cli*.c
 * is its own executable.
 */
#ifndef T_CLI_H
#define T_CLI_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "t_util.h"

struct fx {
    char *dir;
    char *out, *err; /* what the last run printed (malloc'd) */
};

static inline char *slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* Runs cx with the given arguments (NULL-terminated) and returns the exit code. */
static inline int run_cx(struct fx *f, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "cx";
    va_list ap;
    va_start(ap, f);
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *)) {
        assert_true(argc < 63);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    int rc = cx_cli_main(argc, argv, out, err);
    free(f->out);
    free(f->err);
    f->out = slurp(out);
    f->err = slurp(err);
    return rc;
}

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = t_tmpdir("cli");
    setenv("CORTEX_DATA_DIR", f->dir, 1);
    const char *keys[] = {"ANTHROPIC_API_KEY", "CORTEX_ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                          "CORTEX_OPENAI_API_KEY", "KIMI_API_KEY", "CORTEX_KIMI_API_KEY",
                          "OLLAMA_HOST", "CORTEX_OLLAMA_BASE_URL", "CORTEX_BASE_URL",
                          "CORTEX_IO_DESIGN", "CORTEX_EXEC_MODE", "CORTEX_USE_FREE_THREADING"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        unsetenv(keys[i]);
    setenv("CORTEX_RATE_LIMIT_RPS", "10000", 1);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    t_rmrf(f->dir);
    unsetenv("CORTEX_DATA_DIR");
    free(f->dir);
    free(f->out);
    free(f->err);
    free(f);
    return 0;
}

static inline cJSON *parse_out(struct fx *f)
{
    /* Exactly one JSON object, one line. */
    size_t n = strlen(f->out);
    assert_true(n > 2);
    assert_int_equal(f->out[n - 1], '\n');
    assert_null(strchr(f->out, '\n') == f->out + n - 1 ? NULL : "more than one line");
    cJSON *o = cJSON_Parse(f->out);
    if (o == NULL)
        fail_msg("stdout is not JSON: %s", f->out);
    assert_true(cJSON_IsObject(o));
    return o;
}

static inline cJSON *get(const cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (v == NULL)
        fail_msg("JSON output lacks \"%s\"", k);
    return v;
}

static inline char *write_file(struct fx *f, const char *name, const char *text)
{
    char *p = t_path(f->dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return p;
}

#endif /* T_CLI_H */
