/*
 * validate_simple.c - checks one simple command: shells and interpreters, downloads, the rule
 * of its name.
 *
 * After the wrappers are skipped (validate_indirect.c), it refuses weakening settings in any
 * word (validate_code.c), records what later commands need (variables, the directory of a cd,
 * files downloaded, decoded or written), calls functions and aliases defined earlier, applies
 * the rule table of validate_rules.c, and works out what code a shell, interpreter, eval,
 * su -c, env -S or trap runs, checking it recursively. It also tells a substitution's caller
 * whether the code is a read-only query. It does not tokenize (validate_lex.c) or classify
 * paths (validate_path.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

/* ---- command classes ---- */

static bool prefix_digits(const char *name, const char *p) {
    size_t l = strlen(p);
    if (strncmp(name, p, l) != 0) return false;
    for (name += l; *name; name++)
        if (!((*name >= '0' && *name <= '9') || *name == '.')) return false;
    return true;
}

bool cx__vd_is_shell(const char *n) {
    static const char *const shells[] = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "csh",
                                         "tcsh", "fish", "ash", "rbash", "yash", NULL};
    return in_list(n, shells);
}

bool cx__vd_is_interp(const char *n) {
    static const char *const other[] = {"node", "nodejs", "tclsh", "wish", "Rscript", "pwsh",
                                        "deno", "bun", "osascript", NULL};
    return prefix_digits(n, "python") || prefix_digits(n, "pypy") || prefix_digits(n, "perl") ||
           prefix_digits(n, "ruby") || prefix_digits(n, "php") || prefix_digits(n, "lua") ||
           in_list(n, other);
}

bool cx__vd_is_downloader(const char *n) {
    static const char *const dl[] = {"curl", "wget", "fetch", "aria2c", "http", "https",
                                     "lwp-request", "lwp-download", "axel", "wget2", NULL};
    return in_list(n, dl);
}


/* Programs whose output is shell settings meant for eval: ssh-agent -s, brew shellenv, ... */
bool cx__vd_is_env_printer(const char *name, struct word *const *a, size_t n) {
    static const struct {
        const char *name, *arg;
    } p[] = {{"ssh-agent", "-s"}, {"ssh-agent", "-c"}, {"brew", "shellenv"}, {"pyenv", "init"},
             {"rbenv", "init"}, {"nodenv", "init"}, {"direnv", "hook"}, {"dircolors", NULL},
             {"opam", "env"}, {"zoxide", "init"}, {"fnm", "env"}, {"keychain", "--eval"}};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        if (!streq(name, p[i].name)) continue;
        if (!p[i].arg) return true;
        if (n >= 2 && streq(a[1]->val, p[i].arg)) return true;
    }
    return false;
}

/* Read-only queries allowed inside a substitution. */
bool cx__vd_is_query(const char *name, struct word *const *a, size_t n) {
    static const char *const any_args[] = {
        "uname", "lsb_release", "dpkg-architecture", "dpkg-query", "arch", "nproc", "whoami",
        "id", "pwd", "which", "type", "echo", "printf", "getconf", "logname", "basename",
        "dirname", "cat", "head", "tail", "cut", "tr", "sort", "uniq", "wc", "grep", "egrep",
        "fgrep", "realpath", "readlink", "systemd-detect-virt", "lscpu", "free", "df", "ls",
        "stat", "test", "[", "true", "false", "expr", "seq", "jq", "nvidia-smi", "apt-cache",
        "getent", "lsblk", "tty", "locale", "nl", "lsof", "ss", "netstat", "pgrep", "pidof",
        "ps", "hostnamectl", "mktemp", "xdg-user-dir", "sha256sum", "md5sum", NULL};
    if (in_list(name, any_args)) return true;
    if (streq(name, "systemctl")) {
        static const char *const q[] = {"is-active", "is-enabled", "is-failed", "show", "status",
                                        "cat", "list-units", "list-unit-files", "--version",
                                        NULL};
        for (size_t i = 1; i < n; i++)
            if (a[i]->val[0] != '-') return in_list(a[i]->val, q);
        return false;
    }
    if (streq(name, "npm") || streq(name, "go") || streq(name, "brew") || streq(name, "git") ||
        streq(name, "python3") || streq(name, "python") || streq(name, "node")) {
        /* Version and location queries only: "npm root -g", "go env GOPATH", "brew --prefix",
         * "git rev-parse --show-toplevel", "python3 --version". */
        static const char *const q[] = {"root", "prefix", "bin", "env", "--prefix", "--version",
                                        "-v", "-V", "version", "rev-parse", NULL};
        return n >= 2 && in_list(a[1]->val, q);
    }
    if (streq(name, "date")) {
        for (size_t i = 1; i < n; i++)
            if (streq(a[i]->val, "-s") || starts(a[i]->val, "--set")) return false;
        return true;
    }
    if (streq(name, "hostname")) {
        for (size_t i = 1; i < n; i++)
            if (a[i]->val[0] != '-' || streq(a[i]->val, "-F") || starts(a[i]->val, "--file") ||
                streq(a[i]->val, "-b") || streq(a[i]->val, "--boot"))
                return false;
        return true;
    }
    if (streq(name, "dpkg")) {
        static const char *const q[] = {"--print-architecture", "--print-foreign-architectures",
                                        "-l", "--list", "-s", "--status", "-L", "--listfiles",
                                        "-S", "--search", "--get-selections", "--version", NULL};
        return n >= 2 && in_list(a[1]->val, q);
    }
    if (streq(name, "command")) {
        for (size_t i = 1; i < n; i++)
            if (streq(a[i]->val, "-v") || streq(a[i]->val, "-V")) return true;
        return false;
    }
    if (streq(name, ".") || streq(name, "source")) {
        static const char *const f[] = {"/etc/os-release", "/usr/lib/os-release",
                                        "/etc/lsb-release", NULL};
        return n == 2 && in_list(a[1]->val, f);
    }
    if (streq(name, "curl")) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (starts(s, "--output") || starts(s, "--remote-name") || streq(s, "--upload-file") ||
                (short_opt(s) && strpbrk(s + 1, "oOT")))
                return false;
        }
        return true;
    }
    if (streq(name, "wget")) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (streq(s, "--output-document=-") || streq(s, "-O-") || streq(s, "-qO-") ||
                (short_opt(s) && s[strlen(s) - 1] == 'O' && i + 1 < n && streq(a[i + 1]->val, "-")))
                return true;
        }
        return false;
    }
    return false;
}

/* Remembers a downloaded file's base name (ring of MAX_DL_FILES). */
static void remember_file(struct vctx *v, const char *val, bool decoded) {
    const char *b = base_name(val);
    size_t l = strcspn(b, "?#");
    if (l == 0 || l >= sizeof v->dl_files[0] || streq(b, "-")) return;
    for (size_t i = 0; i < l; i++)
        if (b[i] == MK_DYN || b[i] == MK_HOME) return;
    size_t have = v->ndl < MAX_DL_FILES ? v->ndl : MAX_DL_FILES;
    for (size_t i = 0; i < have; i++) /* a command checked twice (see finish) adds it once */
        if (strlen(v->dl_files[i]) == l && memcmp(v->dl_files[i], b, l) == 0) return;
    char *slot = v->dl_files[v->ndl % MAX_DL_FILES];
    memcpy(slot, b, l);
    slot[l] = '\0';
    unsigned bit = 1u << (v->ndl % MAX_DL_FILES);
    v->dl_decoded = decoded ? (v->dl_decoded | bit) : (v->dl_decoded & ~bit);
    v->dl_written &= ~bit;
    v->ndl++;
}

static void remember_download(struct vctx *v, const char *val) { remember_file(v, val, false); }

/* "downloaded" or "decoded": how a file that was_downloaded came to be. */
static const char *saved_how(const struct vctx *v, const char *val) {
    const char *b = base_name(val);
    size_t n = v->ndl < MAX_DL_FILES ? v->ndl : MAX_DL_FILES;
    for (size_t i = 0; i < n; i++)
        if (streq(v->dl_files[i], b))
            return (v->dl_written >> i) & 1u   ? "written"
                   : (v->dl_decoded >> i) & 1u ? "decoded"
                                                : "downloaded";
    return "downloaded";
}

/* Commands that turn encoded text into something that may be a script. */
static bool is_decoder(const char *name, struct word *const *a, size_t n) {
    static const char *const always[] = {"uudecode", "gunzip", "zcat", "bunzip2", "unxz",
                                         "rev", "tr", NULL};
    if (in_list(name, always)) return true;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        bool d = streq(s, "-d") || streq(s, "--decode") || streq(s, "-D") ||
                 (short_opt(s) && strchr(s + 1, 'd'));
        if ((streq(name, "base64") || streq(name, "base32") || streq(name, "basenc") ||
             streq(name, "openssl") || streq(name, "gzip") || streq(name, "bzip2") ||
             streq(name, "xz")) && d)
            return true;
        if (streq(name, "xxd") && (streq(s, "-r") || (short_opt(s) && strchr(s + 1, 'r'))))
            return true;
    }
    return false;
}

static bool was_downloaded(const struct vctx *v, const char *val) {
    const char *b = base_name(val);
    if (!*b) return false;
    size_t n = v->ndl < MAX_DL_FILES ? v->ndl : MAX_DL_FILES;
    for (size_t i = 0; i < n; i++)
        if (streq(v->dl_files[i], b)) return true;
    return false;
}

static void record_downloads(struct vctx *v, struct word *const *a, size_t n,
                             const struct level *L) {
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (strstr(s, "://")) {
            remember_download(v, s);
        } else if ((starts(s, "--output=") || starts(s, "--output-document="))) {
            remember_download(v, strchr(s, '=') + 1);
        } else if ((streq(s, "--output") || streq(s, "--output-document")) && i + 1 < n) {
            remember_download(v, a[i + 1]->val);
        } else if (short_opt(s)) {
            const char *o = strpbrk(s + 1, "oO");
            if (o && o[1]) remember_download(v, o + 1);
            else if (o && i + 1 < n) remember_download(v, a[i + 1]->val);
        }
    }
    for (size_t i = 0; i < L->nr; i++)
        if (L->r[i].kind == R_OUT) remember_download(v, L->r[i].t.val);
}

/* ---- rules for one simple command ---- */

bool cx__vd_is_assignment(const struct word *w) {
    if (w->raw_len == 0 || !is_name_start(w->raw[0])) return false;
    size_t i = 1;
    while (i < w->raw_len && is_name_char(w->raw[i])) i++;
    if (i < w->raw_len && w->raw[i] == '+') i++;
    return i < w->raw_len && w->raw[i] == '=';
}

bool cx__vd_is_reserved(const struct word *w) {
    static const char *const r[] = {"{", "}", "!", "if", "then", "else", "elif", "fi", "do",
                                    "done", "while", "until", "case", "esac", "time", "coproc",
                                    NULL};
    return !(w->flags & W_QUOTED) && in_list(w->val, r);
}

/* Skips options of a wrapper: `with_arg` lists options that take a separate argument. */
size_t cx__vd_skip_opts(struct word *w, size_t k, size_t n, const char *const *with_arg) {
    while (k < n) {
        const char *a = w[k].val;
        if (streq(a, "--")) return k + 1;
        if (a[0] != '-' || !a[1]) return k;
        k += (with_arg && in_list(a, with_arg) && k + 1 < n) ? 2 : 1;
    }
    return k;
}

/* Checks text given to a shell as code (sh -c, eval, here-string, env -S). */
int cx__vd_check_code(struct vctx *v, const char *s, size_t len, int depth) {
    if (depth + 1 >= MAX_DEPTH) return cx__vd_reject(v, "nests shell code too deeply to be checked");
    return cx__vd_check_text(v, s, len, depth + 1, NULL);
}

/* eval joins its arguments with spaces and runs them. */
static int check_eval(struct vctx *v, struct word *const *a, size_t n, int depth) {
    char buf[CX_VALIDATE_MAX_CMD + 1];
    size_t o = 0;
    for (size_t i = 1; i < n; i++) {
        if (a[i]->flags & W_DL) return cx__vd_reject(v, "runs a download with eval");
        size_t l = a[i]->val_len;
        if (o + l + 1 > CX_VALIDATE_MAX_CMD) return cx__vd_reject(v, "is too long to check");
        if (o) buf[o++] = ' ';
        memcpy(buf + o, a[i]->val, l);
        o += l;
    }
    buf[o] = '\0';
    /* eval "$(ssh-agent -s)": the output of a settings printer is what it is for. */
    bool printers = n == 2 && (a[1]->flags & W_ENVP) && !(a[1]->flags & (W_VAR | W_PROC)) &&
                    a[1]->val_len == 1 && a[1]->val[0] == MK_DYN;
    if (printers) return 0;
    if (memchr(buf, MK_DYN, o))
        return cx__vd_reject(v, "runs text from a variable or substitution with eval, which cannot be checked");
    return cx__vd_check_code(v, buf, o, depth);
}

/* Checks one reading of the (expanded) simple command in L against every rule; L is left as
 * it is, apart from the state it records in v (variables, directory, downloads). */
int cx__vd_check_simple(struct vctx *v, struct level *L, int depth, struct inner *info,
                        struct simple_out *out) {
    struct word *w = L->w;
    size_t n = L->nw, k = 0;
    bool su_shell = false;
    struct wrap wr;
    memset(&wr, 0, sizeof wr);
    int wrc;

    /* Settings that weaken the system are refused in any word (validate_code.c), and so are
     * assignments that switch the shell history off. */
    for (size_t i = 0; i < n; i++) {
        if (cx__vd_check_content(v, w[i].val, w[i].val_len)) return 1;
        if (cx__vd_is_assignment(&w[i]) && cx__vd_check_history_var(v, w[i].val)) return 1;
    }
    for (size_t i = 0; i < L->nr; i++)
        if (cx__vd_check_content(v, L->r[i].t.val, L->r[i].t.val_len)) return 1;

    k = cx__vd_skip_wrappers(v, w, n, depth, &wr, &wrc);
    if (wrc) return 1;
    bool sudo_shell = wr.sudo_shell;

    struct word *a[MAX_WORDS];
    size_t argc = 0;
    for (size_t i = k; i < n; i++) a[argc++] = &w[i];
    const char *name = argc ? base_name(a[0]->val) : "";
    if (argc == 0 && sudo_shell) name = "sh";
    /* xargs: the arguments it reads are part of the command it runs. */
    struct word xw[16];
    char xbuf[1024];
    size_t nx;
    if (cx__vd_xargs_input(v, L, &wr, a, argc, xw, 16, xbuf, sizeof xbuf, &nx)) return 1;
    for (size_t i = 0; i < nx && argc < MAX_WORDS; i++) a[argc++] = &xw[i];
    L->echo_ok = false;
    if (streq(name, "echo") || streq(name, "printf")) {
        /* What it writes, for a reader of the pipe that runs it (at, batch). */
        size_t o = 0;
        bool ok = true;
        for (size_t i = 1; i < argc && ok; i++) {
            const char *s = a[i]->val;
            if (i == 1 && streq(name, "echo") && (streq(s, "-e") || streq(s, "-n"))) continue;
            size_t l = strlen(s);
            /* Escapes and printf formats change the text: then it is not known. */
            if (memchr(s, MK_DYN, l) || memchr(s, MK_HOME, l) || strchr(s, '\\') ||
                (streq(name, "printf") && strchr(s, '%')) || o + l + 2 >= sizeof L->echo_text)
                ok = false;
            else {
                if (o) L->echo_text[o++] = ' ';
                memcpy(L->echo_text + o, s, l);
                o += l;
            }
        }
        L->echo_text[o] = '\0';
        L->echo_ok = ok;
    }

    /* A call of a function or alias defined earlier runs its body with these arguments. */
    if (argc && cx__vd_call_function(v, name, a, argc, depth)) return 1;
    if (streq(name, "alias")) {
        for (size_t i = 1; i < argc; i++) {
            const char *eq = strchr(a[i]->val, '=');
            if (!eq || eq == a[i]->val) continue;
            if (cx__vd_check_code(v, eq + 1, strlen(eq + 1), depth)) return 1;
            char body[600];
            int bl = snprintf(body, sizeof body, "%s \"$@\"", eq + 1);
            cx__vd_define_function(v, a[i]->val, (size_t)(eq - a[i]->val), body,
                                   bl > 0 ? (size_t)bl : 0);
        }
    }
    if (streq(name, "find") && cx__vd_check_find_exec(v, a, argc, depth)) return 1;
    if (streq(name, "chpasswd") && L->in_pipe && L->pipe_text_ok && strstr(L->pipe_text, "root:"))
        return cx__vd_reject(v, "sets the root password (chpasswd)");
    if ((streq(name, "at") || streq(name, "batch")) && cx__vd_check_at(v, L, name, a, argc, depth))
        return 1;

    /* Remember assignments that stand alone ("x=/; rm -rf $x"), exported or declared ones,
     * and a for loop's variable (the most dangerous of its words), so later words expand. */
    if (argc == 0 || in_list(name, (const char *const[]){"export", "declare", "typeset", "local",
                                                         "readonly", NULL})) {
        for (size_t i = 0; i < n; i++) {
            if (!cx__vd_is_assignment(&w[i])) continue;
            const char *eq = strchr(w[i].val, '=');
            size_t nl = 0;
            while (nl < w[i].raw_len && is_name_char(w[i].raw[nl])) nl++;
            if (eq && nl) cx__vd_set_var(v, w[i].raw, nl, eq + 1);
        }
    }
    if (n >= 3 && streq(w[0].val, "for") && !(w[0].flags & W_QUOTED) && streq(w[2].val, "in")) {
        const char *pick = n > 3 ? w[3].val : "";
        for (size_t i = 3; i < n; i++) {
            char disp[256], rb[600];
            if (cx__vd_classify(cx__vd_resolve(v, w[i].val, rb, sizeof rb), disp, sizeof disp) != PC_NONE) {
                pick = w[i].val;
                break;
            }
        }
        if (strspn(w[1].val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
            w[1].val_len)
            cx__vd_set_var(v, w[1].val, w[1].val_len, pick);
    }
    if (streq(name, "cd") || streq(name, "pushd")) {
        const char *ops[2];
        size_t m = cx__vd_operands(a, argc, ops, 2);
        const char *dir = m ? ops[0] : (const char[]){MK_HOME, 0};
        char rb[600];
        dir = cx__vd_resolve(v, dir, rb, sizeof rb);
        size_t dl = strlen(dir);
        if (strchr(dir, MK_DYN) || streq(dir, "-") || (dir[0] != '/' && dir[0] != MK_HOME) ||
            dl >= sizeof v->cwd) {
            v->cwd[0] = '\0';
        } else {
            memcpy(v->cwd, dir, dl + 1);
        }
    }
    if (streq(name, "trap") && argc >= 3 && a[1]->val[0] != '-' &&
        cx__vd_check_code(v, a[1]->val, a[1]->val_len, depth))
        return 1;

    /* su [-] [user] -c CMD: the command is code; without -c it is a shell on stdin. */
    if (streq(name, "su")) {
        bool has_c = false;
        for (size_t i = 1; i < argc; i++) {
            const char *s = a[i]->val;
            if ((streq(s, "-c") || streq(s, "--command")) && i + 1 < argc) {
                if (cx__vd_check_code(v, a[i + 1]->val, a[i + 1]->val_len, depth)) return 1;
                has_c = true;
            } else if (starts(s, "--command=")) {
                const char *c = strchr(s, '=') + 1;
                if (cx__vd_check_code(v, c, strlen(c), depth)) return 1;
                has_c = true;
            }
        }
        if (!has_c) su_shell = true;
    }

    /* A substitution in command position runs its output. */
    if (argc && (a[0]->flags & W_DL)) return cx__vd_reject(v, "runs a download as a command");

    /* Redirections. */
    for (size_t i = 0; i < L->nr; i++) {
        if (L->r[i].kind == R_OUT && cx__vd_check_write(v, argc ? name : "redirection", L->r[i].t.val))
            return 1;
    }

    /* Where a download is saved must be as safe as any other write. */
    if (cx__vd_is_downloader(name)) {
        for (size_t i = 1; i < argc; i++) {
            const char *s = a[i]->val, *file = NULL;
            if (starts(s, "--output=") || starts(s, "--output-document=")) file = strchr(s, '=') + 1;
            else if ((streq(s, "--output") || streq(s, "--output-document")) && i + 1 < argc)
                file = a[i + 1]->val;
            else if (short_opt(s) && s[strlen(s) - 1] == (streq(name, "wget") ? 'O' : 'o') &&
                     i + 1 < argc)
                file = a[i + 1]->val;
            if (file && cx__vd_check_write(v, name, file)) return 1;
        }
    }

    /* The rule of the command's name, from the table in validate_rules.c. */
    const struct cx__vd_rule *rule = argc ? cx__vd_rule_find(name) : NULL;
    if (rule && rule->check(v, name, a, argc, depth)) return 1;

    /* Shells and interpreters: what code do they run? */
    bool shell = cx__vd_is_shell(name) || sudo_shell || su_shell;
    bool interp = cx__vd_is_interp(name);
    bool shell_like = shell || interp || streq(name, "eval") || streq(name, "source") ||
                      streq(name, ".");
    if (shell_like) {
        for (size_t i = 1; i < argc; i++)
            if (a[i]->flags & W_DL)
                return cx__vd_reject(v, "pipes a download into a shell (%s runs a downloaded script)", name);
        for (size_t i = 0; i < L->nr; i++)
            if ((L->r[i].kind == R_IN || L->r[i].kind == R_HERESTR) && (L->r[i].t.flags & W_DL))
                return cx__vd_reject(v, "pipes a download into a shell (%s reads a download)", name);
    }
    bool reads_stdin = false;
    if (streq(name, "eval")) {
        if (check_eval(v, a, argc, depth)) return 1;
    } else if (streq(name, "source") || streq(name, ".")) {
        if (argc >= 2 && was_downloaded(v, a[1]->val))
            return cx__vd_reject(v, "runs a script %s earlier ('%s')", saved_how(v, a[1]->val), a[1]->val);
        if (argc >= 2 && (streq(a[1]->val, "/dev/stdin") || streq(a[1]->val, "-"))) reads_stdin = true;
    } else if (shell && !sudo_shell && !su_shell) {
        bool has_c = false, has_s = false;
        size_t i = 1;
        for (; i < argc; i++) {
            const char *s = a[i]->val;
            if (streq(s, "--")) { i++; break; }
            if ((s[0] != '-' && s[0] != '+') || !s[1]) break;
            if (streq(s, "-o") || streq(s, "+o") || streq(s, "-O") || streq(s, "+O") ||
                streq(s, "--rcfile") || streq(s, "--init-file")) {
                i++;
                continue;
            }
            if (s[0] == '-' && s[1] != '-' && strchr(s + 1, 'c')) has_c = true;
            if (s[0] == '-' && s[1] != '-' && strchr(s + 1, 's')) has_s = true;
        }
        if (has_c) {
            if (i < argc && a[i]->val_len && strspn(a[i]->val, "\x01\x02") == a[i]->val_len)
                return cx__vd_reject(v, "runs shell code from a variable or substitution (%s -c), "
                                        "which cannot be checked", name);
            if (i < argc && cx__vd_check_code(v, a[i]->val, a[i]->val_len, depth)) return 1;
            if (i >= argc) reads_stdin = true; /* "xargs sh -c": the code comes from input */
        } else if (i < argc && !has_s && !streq(a[i]->val, "-")) {
            if (was_downloaded(v, a[i]->val))
                return cx__vd_reject(v, "runs a script %s earlier ('%s')", saved_how(v, a[i]->val), a[i]->val);
        } else {
            reads_stdin = true;
        }
    } else if (sudo_shell || su_shell) {
        reads_stdin = true;
    } else if (interp) {
        bool code = false;
        size_t i = 1;
        for (; i < argc; i++) {
            const char *s = a[i]->val;
            if (s[0] != '-' || !s[1]) break;
            /* The code option ends its cluster: python -c, perl -e/-E/-le, ruby -e, node -e/-p,
             * php -r, lua -e. python -m runs a module: what follows is its arguments. */
            char last = s[strlen(s) - 1];
            bool py = starts(name, "python") || starts(name, "pypy");
            if (py && s[1] == 'm') break;
            bool is_code = s[1] == '-' ? (starts(s, "--eval") || starts(s, "--print"))
                                       : (strchr("ceE", last) != NULL ||
                                          (last == 'r' && starts(name, "php")) ||
                                          (last == 'p' && starts(name, "node")));
            if (!is_code) continue;
            code = true;
            const char *c = NULL;
            if (strchr(s, '=')) c = strchr(s, '=') + 1;
            else if (i + 1 < argc) c = a[++i]->val;
            if (c && cx__vd_check_script(v, name, c, strlen(c), depth)) return 1;
        }
        if (!code && i < argc && !streq(a[i]->val, "-") && was_downloaded(v, a[i]->val))
            return cx__vd_reject(v, "runs a script %s earlier ('%s')", saved_how(v, a[i]->val), a[i]->val);
        if (!code && (i >= argc || streq(a[i]->val, "-"))) reads_stdin = true;
    }
    if (interp && reads_stdin) {
        for (size_t r = 0; r < L->nr; r++)
            if (L->r[r].kind == R_HERESTR &&
                cx__vd_check_script(v, name, L->r[r].t.val, L->r[r].t.val_len, depth))
                return 1;
    }
    if (streq(name, "awk") || streq(name, "gawk") || streq(name, "mawk") || streq(name, "nawk")) {
        for (size_t i = 1; i < argc; i++) {
            const char *s = a[i]->val;
            if (streq(s, "-f") || starts(s, "--file")) break; /* a program file: not seen */
            if (streq(s, "-e") || streq(s, "--source")) {
                if (i + 1 < argc && cx__vd_check_script(v, "awk", a[i + 1]->val, a[i + 1]->val_len, depth))
                    return 1;
                i++;
                continue;
            }
            if (streq(s, "-F") || streq(s, "-v") || streq(s, "-W")) {
                i++;
                continue;
            }
            if (s[0] == '-' && s[1]) continue;
            if (cx__vd_check_script(v, "awk", s, a[i]->val_len, depth)) return 1;
            break;
        }
    }
    if ((shell || streq(name, "source") || streq(name, ".")) && reads_stdin) {
        /* What a shell reads on stdin: a here-string is code, and so is a file saved earlier. */
        for (size_t r = 0; r < L->nr; r++) {
            if (L->r[r].kind == R_HERESTR &&
                cx__vd_check_code(v, L->r[r].t.val, L->r[r].t.val_len, depth))
                return 1;
            if (L->r[r].kind == R_IN && was_downloaded(v, L->r[r].t.val))
                return cx__vd_reject(v, "runs a script %s earlier ('%s')", saved_how(v, L->r[r].t.val), L->r[r].t.val);
        }
    }
    /* A root shell that reads the terminal runs whatever is typed: nothing can be checked. */
    if (((sudo_shell && argc == 0) || su_shell || (wr.under_sudo && cx__vd_is_shell(name))) &&
        reads_stdin && !L->in_pipe) {
        bool input = false;
        for (size_t r = 0; r < L->nr; r++)
            if (L->r[r].kind == R_HERESTR || L->r[r].kind == R_IN) input = true;
        for (size_t h = 0; h < L->nhd; h++)
            if (L->hd[h].owner == L->ncmd) input = true;
        if (!input)
            return cx__vd_reject(v, "opens an interactive root shell (%s), whose commands cannot be "
                                    "checked", su_shell ? "su" : argc ? name : "sudo -s");
    }
        /* A command whose name is computed cannot be checked by name: refuse it where it would
     * act on the root, a home or a system directory. */
    if (argc && a[0]->val[0] == MK_DYN) {
        for (size_t i = 1; i < argc; i++) {
            char disp[256], what[256], rb[600];
            enum pclass c = cx__vd_classify(cx__vd_resolve(v, a[i]->val, rb, sizeof rb), disp, sizeof disp);
            if (c == PC_NONE || c == PC_VARROOT) continue;
            cx__vd_describe(c, disp, what, sizeof what);
            return cx__vd_reject(v, "runs a command whose name is computed at run time on %s", what);
        }
    }
    if (argc && strchr(a[0]->val, '/') && was_downloaded(v, a[0]->val))
        return cx__vd_reject(v, "runs a program %s earlier ('%s')", saved_how(v, a[0]->val), a[0]->val);
    if (reads_stdin && L->in_pipe) {
        if (L->pipe_dl) return cx__vd_reject(v, "pipes a download into a shell (%s)", name);
        if (shell || sudo_shell || su_shell)
            return cx__vd_reject(v, "pipes text into a shell (%s), so what it runs cannot be checked", name);
    }

    /* What a substitution's code does. */
    bool dl = cx__vd_is_downloader(name);
    if (info) {
        bool envp = argc && cx__vd_is_env_printer(name, a, argc);
        bool query = argc == 0 || envp || cx__vd_is_query(name, a, argc);
        if (envp) info->envp = true;
        else if (argc) info->other = true;
        for (size_t i = 0; i < L->nr && query; i++) {
            if (L->r[i].kind != R_OUT) continue;
            char np[64];
            if (!(cx__vd_norm_path(L->r[i].t.val, np, sizeof np) && streq(np, "/dev/null"))) query = false;
        }
        if (!query && !info->unsafe) {
            info->unsafe = true;
            cx__vd_show(info->name, sizeof info->name, argc ? a[0]->val : "?");
        }
        if (dl) info->dl = true;
    }
    if (dl) record_downloads(v, a, argc, L);
    bool dec = argc && is_decoder(name, a, argc);
    if ((dec || L->pipe_dec) && !shell) {
        for (size_t i = 0; i < L->nr; i++)
            if (L->r[i].kind == R_OUT) remember_file(v, L->r[i].t.val, true);
        if (streq(name, "tee"))
            for (size_t i = 1; i < argc; i++)
                if (a[i]->val[0] != '-') remember_file(v, a[i]->val, true);
    }
    out->dec = dec;
    /* A script written here by echo, printf or cat is run by a later command: known text
     * written to a script or shell start-up file is checked as code now; other text makes
     * the file one that may not be run later in the same script. */
    if (!dec && !L->pipe_dec && (streq(name, "echo") || streq(name, "printf") || streq(name, "cat"))) {
        for (size_t i = 0; i < L->nr; i++) {
            if (L->r[i].kind != R_OUT) continue;
            if (L->echo_ok && !streq(name, "cat")) {
                const char *b = base_name(L->r[i].t.val);
                size_t bl = strlen(b);
                bool script = (bl > 3 && streq(b + bl - 3, ".sh")) || strstr(b, "rc") ||
                              strstr(b, "profile") || strstr(L->r[i].t.val, "profile.d");
                if (script && cx__vd_check_code(v, L->echo_text, strlen(L->echo_text), depth))
                    return 1;
                continue;
            }
            size_t before = v->ndl;
            remember_file(v, L->r[i].t.val, true);
            if (v->ndl != before) v->dl_written |= 1u << (before % MAX_DL_FILES);
        }
    }

    out->cmd_at = argc ? k : n;
    out->to_shell = shell || interp || streq(name, "at") || streq(name, "batch");
    out->lang[0] = '\0';
    if (interp && !shell) snprintf(out->lang, sizeof out->lang, "%s", name);
    out->dl = dl;
    return 0;
}
