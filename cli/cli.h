/*
 * cli/cli.h - the `cx` command's pieces, shared by cli/main.c and the integration tests.
 *
 * cx_cli_main() is the whole command: main.c only forwards argv and the standard streams, so
 * tests drive every command in-process against the embedded mock server and read what it
 * printed from temporary files.
 */
#ifndef CX_CLI_H
#define CX_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "cx/common.h"
#include "cx/config.h"
#include "cx/router.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes (documented in `cx --help`). */
enum {
    CX_EXIT_OK = 0,        /* everything worked */
    CX_EXIT_ERROR = 1,     /* an error (bad configuration, data directory, server, ...) */
    CX_EXIT_USAGE = 2,     /* bad command line */
    CX_EXIT_REFUSED = 3,   /* the plan was refused: a command was rejected by the validator,
                              or --execute was not confirmed */
    CX_EXIT_PARTIAL = 4    /* some (not all) queries failed; the rest is still printed */
};

/*
 * Runs the cx command line. argv[0] is the program name. out receives the results (and the one
 * JSON object under --json); err receives diagnostics and, when err is a terminal, progress.
 * Confirmation for --execute is read from stdin, only when stdin is a terminal.
 * Returns one of the CX_EXIT_* codes.
 * Threads: one call at a time per process (it reads the environment).
 */
int cx_cli_main(int argc, char **argv, FILE *out, FILE *err);

/* The parsed command line. Pointers borrow from argv (pos is allocated: cx_cli_args_clear). */
struct cx_cli_args {
    const char *command;       /* install, diagnose, hwcheck, cache, history, help, version */
    char **pos;                /* positional arguments after the command */
    int npos;
    int json;                  /* --json */
    int help;                  /* -h / --help */
    int quiet;                 /* -q / --quiet: no progress, no notes on stderr */
    int have_mode;             /* --mode serial|gil|free */
    enum cx_exec_mode mode;
    int threads;               /* --threads N, 0 = from the configuration */
    int have_io;               /* --io thread|hybrid|auto */
    enum cx_io_design io;
    const char *base_url;      /* --base-url URL */
    const char *redis_url;     /* --redis URL (overrides CORTEX_REDIS_URL): fleet mode */
    enum cx_provider api;      /* --api openai|anthropic (CX_PROVIDER_AUTO: not given) */
    const char *api_key_env;   /* --api-key-env NAME: the key is in $NAME */
    const char *model;         /* --model NAME */
    const char *data_dir;      /* --data-dir DIR (overrides CORTEX_DATA_DIR) */
    double mock_latency_ms;    /* --mock-latency D, < 0 = unset */
    double time_scale;         /* --time-scale F, < 0 = unset */
    int simulate;              /* --simulate D: simulated apt step of duration D */
    uint64_t simulate_ns;
    int execute;               /* --execute: really run the plan (asks first) */
    int yes;                   /* -y / --yes: do not ask */
    int no_cache;              /* --no-cache */
    int similar_cache;         /* 1 (default): also similarity cache hits; --no-similar-cache: 0 */
    int limit;                 /* history --limit N (default 20) */
    int no_history;            /* --no-history: record nothing */
};

/*
 * Parses argv into *a. Returns 0, or CX_EXIT_USAGE with a message naming the bad argument in
 * msg. *a must be cleared with cx_cli_args_clear either way.
 * Threads: any thread.
 */
int cx_cli_parse_args(int argc, char **argv, struct cx_cli_args *a, char *msg, size_t msglen);
void cx_cli_args_clear(struct cx_cli_args *a);

/*
 * Parses a duration: a number with an optional unit ns, us, ms, s, m; a bare number means
 * milliseconds (the mock server's convention). Returns 0 with *ns set, or -1.
 * Threads: any thread.
 */
int cx_cli_parse_duration(const char *s, uint64_t *ns);

/* Writes the --help text. Threads: any thread. */
void cx_cli_usage(FILE *f);

/*
 * The install arguments as a package list: ONE ARGUMENT IS ONE PACKAGE (a leading "install" and
 * the word "and" are skipped, duplicates dropped, the first kept). Each must pass
 * cx_validate_package_name; the error quotes the argument whole ("package 'nginx redis': ...",
 * with a hint to pass separate arguments when its words are names). A name with upper case is
 * refused, never lower-cased ("package 'NGINX': Debian package names are lower case (did you
 * mean 'nginx'?)").
 * *pkgs is returned (free() it; the strings are args'). Returns 0, CX_EINVAL, CX_ETOOBIG or
 * CX_ENOMEM with msg set. Threads: any thread.
 */
int cx_cli_packages(char *const *args, int nargs, const char ***pkgs, size_t *n, char *msg,
                    size_t msglen);

/*
 * Makes sure `dir` exists (mkdir -p, mode 0700 for what it creates) and is a writable directory.
 * Errors name the path in msg: CX_EPERM ("cannot create data directory '/x/y': Permission
 * denied", "data directory '/x' is not writable"), CX_EINVAL (NULL/empty, or "'/x' is not a
 * directory"), CX_ETOOBIG (path too long), CX_EIO. Threads: any thread.
 */
int cx_cli_data_dir_prepare(const char *dir, char *msg, size_t msglen);

/* The pipeline's execute hook (run_options.execute): runs cmd with /bin/sh -c, the child's
 * stdout going to our stderr so a --json stdout stays one JSON object. Returns the exit status
 * (0 ok; 128 + signal), or -1 when it could not start. Threads: any thread. */
int cx_cli_run_shell(const char *cmd, void *ud);

#ifdef __cplusplus
}
#endif
#endif /* CX_CLI_H */
