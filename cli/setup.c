/*
 * cli/setup.c - what the `cx` command does around the library: turning the install arguments
 * into a package list (one argument, one package), preparing the data directory, and running a
 * plan's commands with /bin/sh (posix_spawn, the child's stdout sent to our stderr). The
 * library (cx/pipeline.h) takes the list, decides what runs and in what order, and calls
 * cx_cli_run_shell for each command.
 * What it does not do: print results (commands.c) or parse options (args.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cx/pipeline.h"
#include "cx/validate.h"

extern char **environ;

/* Formats msg and returns code (the library's cx__err, for the CLI's own messages). */
static int cli_err(char *msg, size_t msglen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cli_err(char *msg, size_t msglen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (msg != NULL && msglen > 0)
        vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- the package list ---- */

/* 1 when every blank-separated word of s would be a valid name on its own: the arguments of
 * "cx install 'nginx redis'" joined by a script, which deserve a hint, not only a refusal. */
static int words_are_names(const char *s)
{
    char word[256], reason[160];
    while (*s) {
        size_t n = strcspn(s, " \t");
        if (n > 0) {
            if (n >= sizeof word)
                return 0;
            memcpy(word, s, n);
            word[n] = '\0';
            if (cx_validate_package_name(word, reason, sizeof reason) < 0)
                return 0;
        }
        s += n;
        s += strspn(s, " \t");
    }
    return 1;
}

int cx_cli_packages(char *const *args, int nargs, const char ***pkgs, size_t *n, char *msg,
                    size_t msglen)
{
    *pkgs = NULL;
    *n = 0;
    const char **v = malloc((size_t)(nargs > 0 ? nargs : 1) * sizeof *v);
    if (v == NULL)
        return cli_err(msg, msglen, CX_ENOMEM, "out of memory");
    size_t cnt = 0;
    for (int i = 0; i < nargs; i++) {
        const char *w = args[i];
        /* The English of "cx install install nginx and redis": a leading "install" and the
         * word "and" are not packages. Nothing else is split or dropped: one argument is one
         * package, so 'nginx redis' is a (bad) name, not two. */
        if ((i == 0 && strcasecmp(w, "install") == 0) || strcasecmp(w, "and") == 0)
            continue;
        char reason[160];
        if (*w != '\0' && strspn(w, " \t") == 0 && strpbrk(w, " \t") != NULL &&
            words_are_names(w)) {
            free(v);
            return cli_err(msg, msglen, CX_EINVAL,
                           "package '%.80s': one argument is one package and names have no "
                           "spaces; for several packages pass separate arguments (cx install "
                           "nginx redis)", w);
        }
        int upper = 0;
        char lower[96];
        for (const char *s = w; *s && !upper; s++)
            upper = *s >= 'A' && *s <= 'Z';
        if (upper) {
            size_t k = 0;
            for (; w[k] && k + 1 < sizeof lower; k++)
                lower[k] = (char)(w[k] >= 'A' && w[k] <= 'Z' ? w[k] - 'A' + 'a' : w[k]);
            lower[k] = '\0';
            if (cx_validate_package_name(lower, reason, sizeof reason) < 0)
                upper = 0; /* wrong for another reason too: let the validator name it */
        }
        if (upper) {
            free(v);
            return cli_err(msg, msglen, CX_EINVAL,
                           "package '%.80s': Debian package names are lower case (did you mean "
                           "'%.80s'?); nothing is lower-cased for you", w, lower);
        }
        if (cx_validate_package_name(w, reason, sizeof reason) < 0) {
            free(v);
            return cli_err(msg, msglen, CX_EINVAL, "package '%.80s': %s", w, reason);
        }
        int dup = 0;
        for (size_t k = 0; k < cnt && !dup; k++)
            dup = strcmp(v[k], w) == 0;
        if (dup)
            continue;
        if (cnt >= CX_PIPELINE_MAX_PACKAGES) {
            free(v);
            return cli_err(msg, msglen, CX_ETOOBIG, "too many packages (at most %d)",
                           CX_PIPELINE_MAX_PACKAGES);
        }
        v[cnt++] = w;
    }
    if (cnt == 0) {
        free(v);
        return cli_err(msg, msglen, CX_EINVAL, "no package named");
    }
    *pkgs = v;
    *n = cnt;
    return 0;
}

/* ---- the data directory ---- */

int cx_cli_data_dir_prepare(const char *dir, char *msg, size_t msglen)
{
    if (dir == NULL || dir[0] == '\0')
        return cli_err(msg, msglen, CX_EINVAL, "data directory: empty path");
    size_t len = strlen(dir);
    if (len >= PATH_MAX)
        return cli_err(msg, msglen, CX_ETOOBIG, "data directory path is too long (%zu bytes)", len);
    char path[PATH_MAX];
    memcpy(path, dir, len + 1);
    /* mkdir -p: create each missing component in turn. */
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            int e = errno;
            path[i] = saved;
            return cli_err(msg, msglen, e == EACCES || e == EROFS || e == EPERM ? CX_EPERM : CX_EIO,
                           "cannot create data directory '%s': %s", dir, strerror(e));
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) < 0)
        return cli_err(msg, msglen, CX_EIO, "data directory '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_err(msg, msglen, CX_EINVAL, "data directory '%s' is not a directory", dir);
    if (access(dir, W_OK | X_OK) < 0)
        return cli_err(msg, msglen, CX_EPERM, "data directory '%s' is not writable: %s", dir,
                       strerror(errno));
    return 0;
}


/* ---- running the plan ---- */

/* Runs cmd with /bin/sh -c; the child's stdout goes to our stderr so a --json stdout stays one
 * JSON object. Returns the exit status (0 ok), or -1 when it could not start. */
int cx_cli_run_shell(const char *cmd, void *ud)
{
    (void)ud;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

