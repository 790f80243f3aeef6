/*
 * test_cli_habits.c - `cx` used the way people and scripts really use it: arguments quoted
 * whole (one argument, one package; refused names quoted whole, nothing lower-cased for you),
 * large batches on the embedded mock (no rate limiter unless CORTEX_RATE_LIMIT_RPS is set; the
 * limiter's share of a run in --json and a one-time note on a terminal), a corrupt cortex.db
 * (set aside, a fresh one started, both paths said), --no-cache --no-history with no database
 * at all, a read-only data directory, and the small ones: history says "failed" when every
 * query failed, an empty plan after a rejection says so, diagnose of a directory, hwcheck of
 * the data directory's filesystem, notes never inside stdout lines.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"
#include "cx/pipeline.h"
#include "mock/server.h"
#include "t_cli.h"
#include "t_mock.h"

/* ---- arguments ---- */

static void test_arguments_whole(void **state)
{
    struct fx *f = *state;
    struct {
        const char *arg, *quoted, *why;
    } cases[] = {
        {"nginx redis", "package 'nginx redis'", "one argument is one package"},
        {"nginx; rm -rf /", "package 'nginx; rm -rf /'", "';'"},
        {"", "package ''", "empty"},
        {"NGINX", "package 'NGINX'", "did you mean 'nginx'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run_cx(f, "install", "docker", cases[i].arg, NULL);
        assert_int_equal(rc, CX_EXIT_USAGE);
        if (strstr(f->err, cases[i].quoted) == NULL || strstr(f->err, cases[i].why) == NULL)
            fail_msg("'%s': expected %s and \"%s\" in: %s", cases[i].arg, cases[i].quoted,
                     cases[i].why, f->err);
        assert_null(strstr(f->err, "embedded mock")); /* refused before anything started */
        assert_string_equal(f->out, "");
    }
    /* --json: the refusal is the one object, quoting the name whole. */
    int rc = run_cx(f, "--json", "install", "nginx; rm -rf /", NULL);
    assert_int_equal(rc, CX_EXIT_USAGE);
    cJSON *o = parse_out(f);
    assert_non_null(strstr(get(o, "error")->valuestring, "'nginx; rm -rf /'"));
    cJSON_Delete(o);
    /* A lower-case name passes untouched, and an upper-case one is never lower-cased. */
    rc = run_cx(f, "--json", "install", "nginx", NULL);
    assert_int_equal(rc, 0);
    o = parse_out(f);
    assert_string_equal(get(cJSON_GetArrayItem(get(o, "packages"), 0), "name")->valuestring,
                        "nginx");
    cJSON_Delete(o);
}

/* ---- the rate limiter ---- */

static char **pkg_args(int n)
{
    char **v = calloc((size_t)n + 1, sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        v[i] = malloc(16);
        assert_non_null(v[i]);
        snprintf(v[i], 16, "pkg%d", i);
    }
    return v;
}

static void free_args(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Runs cx --json --no-cache --no-history install pkg0..pkg(n-1); returns timings.limiter_wait_s. */
static double batch_limiter_wait(struct fx *f, int n, FILE *err_tty, char **tty_out)
{
    char **pk = pkg_args(n);
    char *argv[1100];
    int argc = 0;
    argv[argc++] = "cx";
    if (err_tty == NULL)
        argv[argc++] = "--json";
    argv[argc++] = "--no-cache";
    argv[argc++] = "--no-history";
    argv[argc++] = "install";
    for (int i = 0; i < n; i++)
        argv[argc++] = pk[i];
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = err_tty ? err_tty : tmpfile();
    assert_non_null(out);
    int rc = cx_cli_main(argc, argv, out, err);
    free_args(pk, n);
    free(f->out);
    f->out = slurp(out);
    if (err_tty == NULL) {
        free(f->err);
        f->err = slurp(err);
    }
    if (rc != 0)
        fail_msg("exit %d: %s", rc, f->err);
    (void)tty_out;
    if (err_tty != NULL)
        return -1;
    cJSON *o = parse_out(f);
    double w = get(get(o, "timings"), "limiter_wait_s")->valuedouble;
    cJSON_Delete(o);
    return w;
}

/* The embedded mock runs with no limiter by default; an explicit CORTEX_RATE_LIMIT_RPS still
 * applies, and --json says how long the run waited on it; 0 and inf turn it off. */
static void test_limiter_on_the_mock(void **state)
{
    struct fx *f = *state;
    unsetenv("CORTEX_RATE_LIMIT_RPS");
    assert_true(batch_limiter_wait(f, 200, NULL, NULL) == 0.0);
    /* 30 queries at 20/s with a burst of 19: 11 must wait for tokens. */
    setenv("CORTEX_RATE_LIMIT_RPS", "20", 1);
    double w = batch_limiter_wait(f, 30, NULL, NULL);
    assert_true(w > 0.0);
    const char *off[] = {"0", "inf", "off"};
    for (size_t i = 0; i < 3; i++) {
        setenv("CORTEX_RATE_LIMIT_RPS", off[i], 1);
        assert_true(batch_limiter_wait(f, 30, NULL, NULL) == 0.0);
    }
}

/* CORTEX_RATE_LIMIT_RPS=0: the pipeline creates no limiter at all (it used to fail to start:
 * "limiter rate must be > 0"), and answers. */
static void test_pipeline_without_limiter(void **state)
{
    (void)state;
    char url[256];
    struct mock_server *s = t_mock_start(NULL, 0, url, sizeof url);
    assert_non_null(s);
    struct cx_config cfg;
    cx_config_init(&cfg);
    cfg.rate_limit_rps = 0;
    struct cx_pipeline_options po;
    cx_pipeline_options_init(&po);
    po.config = &cfg;
    po.base_url = url;
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_pipeline_new(&po, &p, &ei) < 0)
        fail_msg("cx_pipeline_new: %s", ei.msg);
    assert_null(cx_pipeline_limiter(p));
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    const char *pk[] = {"nginx", "redis"};
    struct cx_install_report *r = NULL;
    assert_int_equal(cx_pipeline_install(p, pk, 2, &ro, &r, &ei), 0);
    assert_true(r->timings.limiter_wait_s == 0.0);
    cx_install_report_free(r);
    cx_pipeline_free(p);
    /* With a limiter it is there to be asked. */
    cfg.rate_limit_rps = 5;
    assert_int_equal(cx_pipeline_new(&po, &p, &ei), 0);
    assert_non_null(cx_pipeline_limiter(p));
    cx_pipeline_free(p);
    cx_config_clear(&cfg);
    mock_server_stop(s);
}

/* On a terminal, a run the limiter holds back says so once, on stderr. */
static void test_limiter_note_on_terminal(void **state)
{
    struct fx *f = *state;
    for (int limited = 1; limited >= 0; limited--) {
        setenv("CORTEX_RATE_LIMIT_RPS", limited ? "20" : "0", 1);
        int m = posix_openpt(O_RDWR | O_NOCTTY);
        if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
            skip(); /* no pseudo-terminals here */
        int sfd = open(ptsname(m), O_WRONLY | O_NOCTTY);
        assert_true(sfd >= 0);
        FILE *tty = fdopen(sfd, "w");
        assert_non_null(tty);
        fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
        (void)batch_limiter_wait(f, 40, tty, NULL);
        fclose(tty);
        static char buf[65536];
        size_t got = 0;
        for (;;) {
            ssize_t k = read(m, buf + got, sizeof buf - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        buf[got] = '\0';
        close(m);
        const char *note = "waiting on the request rate limiter: 20 requests/s";
        char *at = strstr(buf, note);
        if (limited) {
            if (at == NULL)
                fail_msg("no limiter note on the terminal: %s", buf);
            assert_null(strstr(at + 1, "waiting on the request rate limiter")); /* once */
            assert_non_null(strstr(buf, "CORTEX_RATE_LIMIT_RPS"));
            assert_non_null(strstr(f->out, "waiting on the request rate limiter (CORTEX_RATE"));
        } else {
            assert_null(strstr(buf, "rate limiter"));
            assert_null(strstr(f->out, "rate limiter"));
        }
    }
}

/* ---- the database ---- */

static void put_garbage(const char *path)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 8192; i++)
        fputc((i * 131 + 7) & 0xff, fp);
    fclose(fp);
}

/* Names in dir starting with prefix. */
static int count_prefixed(const char *dir, const char *prefix, char *first, size_t n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            if (k++ == 0 && first)
                snprintf(first, n, "%s", e->d_name);
        }
    }
    closedir(d);
    return k;
}

static void test_corrupt_db_set_aside(void **state)
{
    struct fx *f = *state;
    char *db = t_path(f->dir, CX_DB_FILE);
    const char *const cmds[][4] = {{"cache", "clear", NULL, NULL},
                                   {"cache", "stats", NULL, NULL},
                                   {"history", NULL, NULL, NULL},
                                   {"install", "--no-cache", "nginx", NULL}};
    for (size_t i = 0; i < 4; i++) {
        put_garbage(db);
        int rc = run_cx(f, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3], NULL);
        if (rc != 0)
            fail_msg("cx %s %s on a corrupt database: exit %d: %s", cmds[i][0],
                     cmds[i][1] ? cmds[i][1] : "", rc, f->err);
        assert_non_null(strstr(f->err, "is corrupt or not a database"));
        assert_non_null(strstr(f->err, "kept the damaged file as '"));
        assert_non_null(strstr(f->err, db));
        assert_non_null(strstr(f->err, ".corrupt-"));
        /* every damaged file is kept, none overwritten by the next */
        assert_int_equal(count_prefixed(f->dir, CX_DB_FILE ".corrupt-", NULL, 0), (int)i + 1);
    }
    /* The kept file is the damaged one, byte for byte; the fresh database works. */
    char name[256];
    assert_int_equal(count_prefixed(f->dir, CX_DB_FILE ".corrupt-", name, sizeof name), 4);
    char *kept = t_path(f->dir, name);
    FILE *fp = fopen(kept, "rb");
    assert_non_null(fp);
    assert_int_equal(fgetc(fp), 7);
    assert_int_equal(fgetc(fp), (131 + 7) & 0xff);
    fclose(fp);
    free(kept);
    assert_int_equal(run_cx(f, "history", "--json", NULL), 0);
    cJSON *o = parse_out(f);
    assert_int_equal(cJSON_GetArraySize(get(o, "runs")), 1); /* the install above */
    cJSON_Delete(o);
    free(db);
}

/* --no-cache --no-history: no database is opened at all, so a corrupt one is left alone. */
static void test_no_database(void **state)
{
    struct fx *f = *state;
    char *db = t_path(f->dir, CX_DB_FILE);
    put_garbage(db);
    int rc = run_cx(f, "--no-cache", "--no-history", "install", "nginx", "--json", NULL);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, f->err);
    cJSON *o = parse_out(f);
    assert_true(cJSON_IsNull(get(o, "history_id")));
    cJSON_Delete(o);
    assert_null(strstr(f->err, "corrupt"));
    assert_int_equal(count_prefixed(f->dir, CX_DB_FILE ".corrupt-", NULL, 0), 0);
    /* --no-history alone: the cache is used, nothing is recorded. */
    unlink(db);
    assert_int_equal(run_cx(f, "--no-history", "install", "nginx", NULL), 0);
    assert_int_equal(run_cx(f, "--no-history", "install", "nginx", "--json", NULL), 0);
    o = parse_out(f);
    assert_int_equal(get(o, "cache_hits")->valueint, 1);
    cJSON_Delete(o);
    assert_int_equal(run_cx(f, "history", "--json", NULL), 0);
    o = parse_out(f);
    assert_int_equal(cJSON_GetArraySize(get(o, "runs")), 0);
    cJSON_Delete(o);
    free(db);
}

/* The reading commands in a data directory cx cannot write. Root writes anywhere, so as root
 * the check runs in a child that gives up root for "nobody". */
static int read_only_checks(struct fx *f, char *why, size_t n)
{
    int rc = run_cx(f, "history", "--json", NULL);
    if (rc != 0)
        return snprintf(why, n, "history: exit %d: %s", rc, f->err), -1;
    cJSON *o = cJSON_Parse(f->out);
    cJSON *runs = cJSON_GetObjectItemCaseSensitive(o, "runs");
    int nr = cJSON_GetArraySize(runs);
    cJSON_Delete(o);
    if (nr != 1)
        return snprintf(why, n, "history: %d runs, expected 1: %s", nr, f->out), -1;
    rc = run_cx(f, "cache", "stats", NULL);
    if (rc != 0 || strstr(f->out, "entries:  2") == NULL)
        return snprintf(why, n, "cache stats: exit %d: %s%s", rc, f->out, f->err), -1;
    rc = run_cx(f, "cache", "clear", NULL);
    if (rc != CX_EXIT_ERROR || strstr(f->err, "not writable") == NULL)
        return snprintf(why, n, "cache clear: exit %d: %s", rc, f->err), -1;
    return 0;
}

static void test_read_only_data_dir(void **state)
{
    struct fx *f = *state;
    char *data = t_path(f->dir, "ro");
    setenv("CORTEX_DATA_DIR", data, 1);
    assert_int_equal(run_cx(f, "install", "nginx", "redis", NULL), 0);
    char why[1024] = "";
    int ok;
    if (geteuid() == 0) {
        assert_int_equal(chown(data, 65534, 65534), 0);
        char *db = t_path(data, CX_DB_FILE);
        assert_int_equal(chown(db, 65534, 65534), 0);
        free(db);
        assert_int_equal(chmod(data, 0555), 0);
        assert_int_equal(chmod(f->dir, 0711), 0); /* nobody may pass through to it */
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            int r = setgid(65534) == 0 && setuid(65534) == 0 ? read_only_checks(f, why, sizeof why)
                                                            : (snprintf(why, sizeof why,
                                                                        "setuid: %s",
                                                                        strerror(errno)),
                                                               -1);
            ssize_t w = write(pfd[1], why, strlen(why));
            (void)w;
            _exit(r == 0 ? 0 : 1);
        }
        close(pfd[1]);
        ssize_t k = read(pfd[0], why, sizeof why - 1);
        why[k > 0 ? k : 0] = '\0';
        close(pfd[0]);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    } else {
        assert_int_equal(chmod(data, 0555), 0);
        ok = read_only_checks(f, why, sizeof why) == 0;
    }
    chmod(data, 0700);
    setenv("CORTEX_DATA_DIR", f->dir, 1);
    if (!ok)
        fail_msg("%s", why);
    free(data);
}

/* ---- the small ones ---- */

static void test_history_says_failed(void **state)
{
    struct fx *f = *state;
    char url[256];
    struct mock_server *s = t_mock_start_opts(NULL, url, sizeof url);
    assert_non_null(s);
    setenv("CORTEX_MAX_RETRIES", "0", 1);
    t_mock_script(s, "next 2 500");
    int rc = run_cx(f, "--base-url", url, "--no-cache", "install", "nginx", "redis", NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    t_mock_script(s, "next 1 500");
    rc = run_cx(f, "--base-url", url, "--no-cache", "--mode", "serial", "install", "nginx",
                "redis", NULL);
    assert_int_equal(rc, CX_EXIT_PARTIAL);
    unsetenv("CORTEX_MAX_RETRIES");
    assert_int_equal(run_cx(f, "history", "--json", NULL), 0);
    cJSON *o = parse_out(f);
    cJSON *runs = get(o, "runs"); /* newest first */
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    assert_string_equal(get(cJSON_GetArrayItem(runs, 0), "status")->valuestring, "partial");
    assert_string_equal(get(cJSON_GetArrayItem(runs, 1), "status")->valuestring, "failed");
    cJSON_Delete(o);
    assert_int_equal(run_cx(f, "history", NULL), 0);
    assert_non_null(strstr(f->out, "failed"));
    mock_server_stop(s);
}

static void test_empty_plan_after_rejection(void **state)
{
    struct fx *f = *state;
    char url[256];
    struct mock_server *s = t_mock_start_opts(NULL, url, sizeof url);
    assert_non_null(s);
    t_mock_script(s, "next 1 dangerous");
    int rc = run_cx(f, "--base-url", url, "--no-cache", "install", "docker", NULL);
    assert_int_equal(rc, CX_EXIT_REFUSED);
    assert_null(strstr(f->out, "no package got an answer"));
    assert_non_null(strstr(f->out, "(empty: the validator rejected the plan)"));
    mock_server_stop(s);
}

static void test_diagnose_directory(void **state)
{
    struct fx *f = *state;
    int rc = run_cx(f, "diagnose", f->dir, NULL);
    assert_int_equal(rc, CX_EXIT_ERROR);
    assert_non_null(strstr(f->err, "is a directory"));
    assert_non_null(strstr(f->err, f->dir));
    assert_null(strstr(f->err, "read error"));
}

static void test_hwcheck_data_dir_filesystem(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run_cx(f, "hwcheck", "--json", NULL), 0);
    cJSON *o = parse_out(f);
    cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, get(o, "items"))
    {
        if (strcmp(get(e, "component")->valuestring, "disk") == 0) {
            seen = 1;
            const char *d = get(e, "details")->valuestring;
            if (strncmp(d, f->dir, strlen(f->dir)) != 0)
                fail_msg("disk details '%s' do not name the data directory %s", d, f->dir);
        }
    }
    assert_true(seen);
    cJSON_Delete(o);
}

/* stdout and stderr into one file (2>&1 | ...), stdout fully buffered as it is on a pipe: every
 * note starts a line of its own and whole output lines are never split by one. */
static void test_notes_between_lines(void **state)
{
    struct fx *f = *state;
    (void)f;
    unsetenv("CORTEX_RATE_LIMIT_RPS");
    FILE *both = tmpfile();
    assert_non_null(both);
    int fd = fileno(both);
    FILE *out = fdopen(dup(fd), "w"), *err = fdopen(dup(fd), "w");
    assert_non_null(out);
    assert_non_null(err);
    setvbuf(out, NULL, _IOFBF, 512); /* small, so it flushes mid-line during the output */
    setvbuf(err, NULL, _IONBF, 0);
    /* A note after the output started: the history row is refused (a trigger stands for a
     * full disk), and cx warns once the plan is printed. */
    assert_int_equal(run_cx(f, "history", NULL), 0); /* creates the schema */
    char *db = t_path(f->dir, CX_DB_FILE);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TRIGGER no_rows BEFORE INSERT ON "
                                     "installation_history BEGIN SELECT RAISE(ABORT, "
                                     "'the disk is full'); END;", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    free(db);
    char **pk = pkg_args(60);
    char *argv[70] = {"cx", "--no-cache", "install"};
    for (int i = 0; i < 60; i++)
        argv[3 + i] = pk[i];
    int rc = cx_cli_main(63, argv, out, err);
    free_args(pk, 60);
    fclose(out);
    fclose(err);
    assert_int_equal(rc, 0);
    char *s = slurp(both);
    int notes = 0;
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *cx = strstr(line, "cx: ");
        if (cx != NULL && cx < line + len) {
            if (cx != line)
                fail_msg("a note inside an output line: %.*s", (int)len, line);
            notes++;
        }
        line += len + (nl != NULL);
    }
    assert_true(notes >= 2); /* the embedded mock, the history warning */
    char *plan = strstr(s, "Plan for 60 packages"), *warn = strstr(s, "the disk is full");
    assert_non_null(plan);
    assert_non_null(warn);
    assert_true(warn > plan); /* in the order it was said */
    free(s);
}

/* --help documents every exit code this file and test_cli_servers.c see, as README does. */
static void test_help_exit_codes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run_cx(f, "--help", NULL), 0);
    const char *lines[] = {"  0  success", "  1  error (configuration such as a bad CORTEX_BASE_URL",
                           "  2  usage error (bad command line: an option, a package name, a "
                           "--base-url",
                           "  3  plan refused", "  4  some queries failed"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (strstr(f->out, lines[i]) == NULL)
            fail_msg("--help lacks \"%s\"", lines[i]);
    assert_non_null(strstr(f->out, "--api-key-env NAME"));
    assert_non_null(strstr(f->out, "--no-history"));
    assert_non_null(strstr(f->out, "CORTEX_RATE_LIMIT_RPS"));
    assert_non_null(strstr(f->out, "cortex.db.corrupt-DATE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_arguments_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limiter_on_the_mock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_without_limiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limiter_note_on_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_db_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_says_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_plan_after_rejection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diagnose_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hwcheck_data_dir_filesystem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notes_between_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_exit_codes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
