/*
 * validate_code.c - what the validator reads inside text that is not shell: settings that
 * weaken the system wherever they are written, and the code given to interpreters.
 *
 * Settings: apt's signature checks switched off (--allow-unauthenticated, --force-yes,
 * [trusted=yes], AllowUnauthenticated and AllowInsecureRepositories in apt.conf), the same
 * for dnf/yum/zypper, root or empty-password SSH logins, pam_permit, SELinux disabled. They are
 * refused in any word of any command and in here-documents, whatever writes them: a
 * sources.list line is as dangerous echoed into tee as typed into an editor.
 *
 * Interpreter code (python -c, perl -e, ruby -e, node -e, php -r, lua -e, awk programs): a
 * call that runs a shell command with one string literal (system("..."), os.system('...'),
 * `...`, qx(...), execSync("...")) has the literal checked as shell code, recursively; any
 * other way to run programs, delete or write files, open sockets, fork, or evaluate computed
 * code is refused, because what it does cannot be known without running it. Code that only
 * computes and prints passes. This is a list of names, not a parser: it errs on refusing.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

/* Case-insensitive search of pat (lower case) in s[0..n). */
static const char *find_ci(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m) {
            char c = s[i + k];
            if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (c != pat[k]) break;
            k++;
        }
        if (k == m) return s + i;
    }
    return NULL;
}

static const char k_devnet[] =
    "opens a network connection through /dev/tcp or /dev/udp, the usual way of a reverse shell";

int cx__vd_check_content(struct vctx *v, const char *s, size_t n) {
#define M(p, why) {p, sizeof p - 1, why}
    static const struct {
        const char *pat;
        size_t len;
        const char *why;
    } marks[] = {
        M("allow-unauthenticated", "turns off apt's signature checks (--allow-unauthenticated)"),
        M("allowunauthenticated", "turns off apt's signature checks (AllowUnauthenticated)"),
        M("--force-yes", "turns off apt's safety checks (--force-yes)"),
        M("allow-insecure-repositories", "lets apt use unsigned repositories"),
        M("allowinsecurerepositories", "lets apt use unsigned repositories"),
        M("allowdowngradetoinsecurerepositories", "lets apt use unsigned repositories"),
        M("trusted=yes", "marks an apt repository as trusted without a signature ([trusted=yes])"),
        M("trusted=true", "marks an apt repository as trusted without a signature"),
        M("trusted=1", "marks an apt repository as trusted without a signature"),
        M("allow-insecure=yes", "lets apt use an unsigned repository ([allow-insecure=yes])"),
        M("allow-weak=yes", "lets apt accept weak repository signatures ([allow-weak=yes])"),
        M("allow-downgrade-to-insecure=yes", "lets apt use an unsigned repository"),
        M("trusted: yes", "marks an apt repository as trusted without a signature (Trusted: yes)"),
        M("--nogpgcheck", "turns off package signature checks (--nogpgcheck)"),
        M("--no-gpg-checks", "turns off package signature checks (--no-gpg-checks)"),
        M("gpgcheck=0", "turns off package signature checks (gpgcheck=0)"),
        M("--allow-remove-essential", "lets apt remove packages the system needs"),
        M("--force-remove-essential", "lets dpkg remove packages the system needs"),
        M("--force-all", "turns off every dpkg safety check (--force-all)"),
        M("permitrootlogin yes", "allows root to log in over SSH"),
        M("permitemptypasswords yes", "allows SSH logins without a password"),
        M("pam_permit.so", "lets anyone log in through PAM (pam_permit)"),
        M("selinux=disabled", "turns SELinux off"),
        M("selinux=permissive", "turns SELinux enforcement off"),
        M("/dev/tcp/", k_devnet),
        M("/dev/udp/", k_devnet),
    };
#undef M
    enum { N_MARKS = sizeof marks / sizeof marks[0], MIN_LEN = 9 /* "trusted=1", "/dev/tcp/" */ };
    /* One pass over the text, not one per pattern: this runs on every word of every command,
     * and most positions start no pattern. When several match, the first in the table names
     * the reason, as a scan pattern by pattern would. */
    static const char first[] = "a-tgps/"; /* the patterns' first characters */
#ifndef NDEBUG
    for (size_t p = 0; p < N_MARKS; p++)
        assert(strchr(first, marks[p].pat[0]) != NULL && marks[p].len >= MIN_LEN);
#endif
    if (n < MIN_LEN) return 0;
    size_t best = N_MARKS;
    for (size_t i = 0; i + MIN_LEN <= n; i++) {
        char c0 = s[i];
        if (c0 >= 'A' && c0 <= 'Z') c0 = (char)(c0 + 32);
        size_t f = 0;
        while (f < sizeof first - 1 && first[f] != c0) f++;
        if (f == sizeof first - 1) continue;
        for (size_t p = 0; p < best; p++) {
            size_t m = marks[p].len;
            if (marks[p].pat[0] != c0 || i + m > n) continue;
            size_t k = 1;
            while (k < m) {
                char c = s[i + k];
                if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
                if (c != marks[p].pat[k]) break;
                k++;
            }
            if (k == m) best = p;
        }
    }
    return best < N_MARKS ? cx__vd_reject(v, "%s", marks[best].why) : 0;
}

/* Calls that run a shell command; the argument is checked when it is one string literal. */
static const char *const shell_calls[] = {
    "os.system(", "os.popen(", "system(", "popen(", "shell_exec(", "passthru(", "os.execute(",
    "io.popen(", "execsync(", "exec(", "spawnsync(", "qx(", "qx{", "%x(", "%x{", "exec ", "system ", NULL};

/* Anything else that acts on the system and cannot be checked. */
static const char *const danger[] = {
    "subprocess", "spawn", "execl", "execv", "execfile", "child_process", "fork", "kill",
    "remove", "unlink", "rmtree", "rmdir", "rm_rf", "rm_r", "rmsync", "shutil", "chmod", "chown",
    "rename", "truncate", "write", "file_put_contents", "fopen", "fputs", "fileutils",
    "appendfile", "socket", "fsockopen", "connect", "/inet/", "pty", "eval", "__import__",
    "importlib", "getattr", "compile(", "marshal", "pickle", "ctypes", "b64decode", "base64",
    "decode(", "setuid", "symlink", "open(\"/", "open('/", "open(f,", ">/", "> /", "|&",
    "getline", "print >", "printf >", "| \"", "|\"", "os.exec", "proc_open", "pcntl",
    "syscall", "dlopen", "require(\"fs", "require('fs", "require(\"net", "require('net",
    "require(\"http", "require('http", "deno.run", "bun.spawn", "process.binding", NULL};

/* Reads a string literal at s[i] ('...' or "..."), unescaping \x for the quote and backslash,
 * into out; returns the index after it, or 0 when there is none or it does not fit. */
static size_t literal(const char *s, size_t n, size_t i, char *out, size_t cap, size_t *olen) {
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i >= n || (s[i] != '\'' && s[i] != '"')) return 0;
    char q = s[i++];
    size_t o = 0;
    for (; i < n && s[i] != q; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            c = s[++i];
            if (c == 'n') c = '\n';
        }
        if (o + 1 >= cap) return 0;
        out[o++] = c;
    }
    if (i >= n) return 0;
    out[o] = '\0';
    *olen = o;
    return i + 1;
}

/* The text between a delimiter at s[i] and its closing one: `...`, qx(...), qx{...}. */
static size_t delimited(const char *s, size_t n, size_t i, char close, char *out, size_t cap,
                        size_t *olen) {
    size_t o = 0;
    for (; i < n && s[i] != close; i++) {
        if (o + 1 >= cap) return 0;
        out[o++] = s[i];
    }
    if (i >= n) return 0;
    out[o] = '\0';
    *olen = o;
    return i + 1;
}

int cx__vd_check_script(struct vctx *v, const char *lang, const char *code, size_t n, int depth) {
    char lit[1024];
    size_t ll;
    /* Shell commands run from the code: check each literal one as shell code. */
    for (size_t i = 0; i < n; i++) {
        if (code[i] == '`' && !streq(lang, "awk") && !streq(lang, "node")) {
            size_t e = delimited(code, n, i + 1, '`', lit, sizeof lit, &ll);
            if (!e) return cx__vd_reject(v, "runs code in %s whose shell command cannot be read", lang);
            if (cx__vd_check_code(v, lit, ll, depth)) return 1;
            i = e - 1;
            continue;
        }
        for (const char *const *c = shell_calls; *c; c++) {
            size_t cl = strlen(*c);
            if (i + cl > n || !find_ci(code + i, cl, *c)) continue;
            if (streq(*c, "exec(") && starts(lang, "python"))
                return cx__vd_reject(v, "runs computed python code with exec(), which cannot be "
                                        "checked");
            if (i > 0 && (code[i - 1] == '_' || (code[i - 1] >= 'a' && code[i - 1] <= 'z') ||
                          (code[i - 1] >= 'A' && code[i - 1] <= 'Z')))
                continue; /* part of a longer name: checked by the danger list */
            size_t e;
            if ((*c)[cl - 1] == '{') e = delimited(code, n, i + cl, '}', lit, sizeof lit, &ll);
            else if (streq(*c, "qx(") || streq(*c, "%x(")) e = delimited(code, n, i + cl, ')', lit, sizeof lit, &ll);
            else e = literal(code, n, i + cl, lit, sizeof lit, &ll);
            if (!e)
                return cx__vd_reject(v, "runs a command from %s code (%.*s...) that cannot be "
                                        "checked", lang, (int)cl - 1, *c);
            if (cx__vd_check_code(v, lit, ll, depth)) return 1;
            i = e - 1;
            break;
        }
    }
    /* Everything else that acts on the system. */
    char low[CX_VALIDATE_MAX_CMD + 1];
    size_t m = n < CX_VALIDATE_MAX_CMD ? n : CX_VALIDATE_MAX_CMD;
    for (size_t i = 0; i < m; i++)
        low[i] = (char)((code[i] >= 'A' && code[i] <= 'Z') ? code[i] + 32 : code[i]);
    /* Drop what the first loop already checked, so "system('ls')" passes. */
    for (const char *const *c = shell_calls; *c; c++) {
        size_t cl = strlen(*c);
        for (char *p = low; (p = strstr(p, *c)) != NULL; p += cl) memset(p, ' ', cl);
    }
    low[m] = '\0';
    for (const char *const *d = danger; *d; d++) {
        if (strstr(low, *d))
            return cx__vd_reject(v, "runs %s code that uses '%s', which cannot be checked", lang, *d);
    }
    return 0;
}
