/*
 * test_mock_cli.c - the cx-mock command line (mock_main, in-process and in a forked child):
 * one exit status per failure kind as --help lists them, and the port file written once
 * listening and removed on exit (SIGTERM, and mock_server_stop for library users).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock/server.h"
#include "t_util.h"

static char dir[256];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cx_mock_cli_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* mock_main on a NULL-terminated argument list (argv[0] added). */
static int run(const char *a0, ...) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"cx-mock";
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return mock_main(argc, argv);
}

static void test_exit_statuses(void **state) {
    (void)state;
    char bad_cfg[300], port_s[16], pf[300];
    snprintf(bad_cfg, sizeof bad_cfg, "%s/bad.conf", dir);
    FILE *f = fopen(bad_cfg, "w");
    assert_non_null(f);
    fputs("latency = 5ms\nno_such_key = 1\n", f);
    fclose(f);
    assert_int_equal(run("--no-such-flag", "1", NULL), 2);
    assert_int_equal(run("--port", "x", NULL), 2);
    assert_int_equal(run("--latency", "soon", NULL), 2);
    assert_int_equal(run("--latency", NULL), 2);
    assert_int_equal(run("stray", NULL), 2);
    assert_int_equal(run("--config", "/nonexistent/cx-mock.conf", NULL), 3);
    assert_int_equal(run("--config", bad_cfg, NULL), 4);
    assert_int_equal(run("--host", "not-an-address", NULL), 4);
    /* The port in use. */
    struct mock_options o;
    struct mock_server *busy = NULL;
    char err[256];
    mock_options_init(&o);
    assert_int_equal(mock_server_start(&o, &busy, err, sizeof err), 0);
    snprintf(port_s, sizeof port_s, "%d", mock_server_port(busy));
    assert_int_equal(run("--port", port_s, NULL), 5);
    mock_server_stop(busy);
    snprintf(pf, sizeof pf, "%s/no/such/dir/port", dir);
    assert_int_equal(run("--port-file", pf, NULL), 6);
    assert_int_equal(run("--fault-script", "next x 429", NULL), 7);
    char bad_fx[300];
    snprintf(bad_fx, sizeof bad_fx, "%s/bad-fixtures.json", dir);
    f = fopen(bad_fx, "w");
    assert_non_null(f);
    fputs("[{\"reply\": {\"latency\": \"soon\"}}]", f);
    fclose(f);
    assert_int_equal(run("--fixtures", bad_fx, NULL), 8);
    assert_int_equal(run("--replay", "/nonexistent/cx-mock-recordings", NULL), 8);
    assert_int_equal(run("--record", dir, NULL), 4); /* no --upstream */
    assert_int_equal(run("--help", NULL), 0);
}

/* The library: the port file is there while the server runs and gone after stop; a failed
 * start says which kind of failure it was. */
static void test_port_file_library(void **state) {
    (void)state;
    char pf[300], err[256];
    snprintf(pf, sizeof pf, "%s/lib.port", dir);
    struct mock_options o;
    struct mock_server *s = NULL;
    mock_options_init(&o);
    o.port_file = pf;
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), 0);
    FILE *f = fopen(pf, "r");
    assert_non_null(f);
    int port = 0;
    assert_int_equal(fscanf(f, "%d", &port), 1);
    fclose(f);
    assert_int_equal(port, mock_server_port(s));
    mock_server_stop(s);
    assert_false(exists(pf));
    o.port_file = NULL;
    o.config_text = "nope = 1";
    assert_int_equal(mock_server_start(&o, &s, err, sizeof err), MOCK_EINVAL);
    assert_null(s);
}

/* The command line: SIGTERM ends it with status 0 and no port file left behind. */
static void test_port_file_removed_on_sigterm(void **state) {
    (void)state;
    char pf[300];
    snprintf(pf, sizeof pf, "%s/cli.port", dir);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = run("--port-file", pf, "--quiet", NULL);
        _exit(rc);
    }
    double end = now_s() + 10.0 * t_timeout_scale();
    while (!exists(pf) && now_s() < end) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_true(exists(pf));
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_false(exists(pf));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_statuses),
        cmocka_unit_test(test_port_file_library),
        cmocka_unit_test(test_port_file_removed_on_sigterm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
