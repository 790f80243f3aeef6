/*
 * validate_indirect.c - commands that run other commands: wrappers (sudo, env, nice, flock,
 * systemd-run, ...), xargs, at and batch, find -exec, and shell functions and aliases.
 *
 * Wrappers are skipped so that the command they run is checked by name. xargs gives its
 * command arguments read from input: a here-string's words are appended, and input that cannot
 * be seen becomes one argument that may be "/" (a path starting with an unknown value), so
 * "echo / | xargs rm -rf" is refused while "xargs rm -f" of files is not. at and batch run
 * what they read later: a here-string or the text of an echo/printf piped in is checked as
 * shell code, anything else is refused. find -exec's command is checked with "{}" replaced by
 * the directories searched. A function or alias definition is remembered (name and body), and
 * a call to it checks the body with the call's arguments as $1..$9, $@ and $*: the body of
 * "f(){ rm -rf "$1"; }; f /" is checked as "rm -rf /". Recursion is bounded by MAX_DEPTH.
 * It does not decide what is dangerous: every expansion ends in cx__vd_check_code or the rules.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

size_t cx__vd_skip_wrappers(struct vctx *v, struct word *w, size_t n, int depth,
                            struct wrap *out, int *rc) {
    static const char *const sudo_arg[] = {"-u", "-g", "-C", "-D", "-p", "-h", "-r", "-t", "-T",
                                           "-U", "--user", "--group", "--prompt", "--chdir",
                                           "--host", "--role", "--type", "--other-user", NULL};
    static const char *const env_arg[] = {"-u", "--unset", "-C", "--chdir", NULL};
    static const char *const nice_arg[] = {"-n", "--adjustment", "-c", "--class", "-p", "-P",
                                           "-u", "--classdata", NULL};
    static const char *const time_arg[] = {"-f", "--format", "-o", "--output", NULL};
    static const char *const timeout_arg[] = {"-s", "--signal", "-k", "--kill-after", NULL};
    static const char *const stdbuf_arg[] = {"-i", "-o", "-e", NULL};
    static const char *const xargs_arg[] = {"-I", "-n", "-P", "-d", "-L", "-s", "-E", "-a",
                                            "--max-args", "--max-procs", "--delimiter",
                                            "--arg-file", NULL};
    static const char *const watch_arg[] = {"-n", "--interval", NULL};
    static const char *const exec_arg[] = {"-a", NULL};
    static const char *const flock_arg[] = {"-w", "--timeout", "-E", "--conflict-exit-code",
                                            NULL};
    static const char *const runuser_arg[] = {"-u", "--user", "-g", "--group", "-G",
                                              "--supp-group", "-s", "--shell", NULL};
    static const char *const sysrun_arg[] = {"-u", "--unit", "-p", "--property", "-E",
                                             "--setenv", "--slice", "--description", "-M",
                                             "--machine", "--uid", "--gid", "-H", "--host",
                                             "--working-directory", NULL};
    static const char *const pkexec_arg[] = {"--user", NULL};
    static const char *const nsenter_arg[] = {"-t", "--target", NULL};
    static const char *const plain[] = {"nohup", "setsid", "unbuffer", "chronic", "torsocks",
                                        "proxychains", "proxychains4", "builtin", "busybox",
                                        "catchsegv", "strace", "ltrace", "unshare", "fakeroot",
                                        "sg", NULL};
    size_t k = 0;
    *rc = 0;
    for (int guard = 0; guard < 32; guard++) {
        while (k < n && (cx__vd_is_assignment(&w[k]) || cx__vd_is_reserved(&w[k]))) k++;
        if (k >= n) break;
        const char *nm = base_name(w[k].val);
        size_t k0 = k;
        if (streq(nm, "sudo") || streq(nm, "doas") || streq(nm, "pkexec")) {
            out->under_sudo = true;
            k++;
            while (k < n) {
                const char *s = w[k].val;
                if (streq(s, "--")) { k++; break; }
                if (s[0] != '-' || !s[1]) break;
                if (streq(s, "-s") || streq(s, "-i") || streq(s, "--shell") || streq(s, "--login") ||
                    (short_opt(s) && strpbrk(s + 1, "si") && !strpbrk(s + 1, "ugCDphrtTU")))
                    out->sudo_shell = true;
                k += ((in_list(s, sudo_arg) || in_list(s, pkexec_arg)) && k + 1 < n) ? 2 : 1;
            }
        } else if (streq(nm, "env")) {
            k++;
            while (k < n) {
                const char *s = w[k].val;
                if (streq(s, "-S") || streq(s, "--split-string")) {
                    if (k + 1 < n && cx__vd_check_code(v, w[k + 1].val, w[k + 1].val_len, depth)) {
                        *rc = 1;
                        return n;
                    }
                    return n;
                }
                if (starts(s, "-S") || starts(s, "--split-string=")) {
                    const char *c = s[1] == 'S' ? s + 2 : strchr(s, '=') + 1;
                    *rc = cx__vd_check_code(v, c, strlen(c), depth);
                    return n;
                }
                if (s[0] == '-' && s[1]) k += (in_list(s, env_arg) && k + 1 < n) ? 2 : 1;
                else if (cx__vd_is_assignment(&w[k])) k++;
                else break;
            }
        } else if (streq(nm, "nice") || streq(nm, "ionice")) {
            k = cx__vd_skip_opts(w, k + 1, n, nice_arg);
        } else if (streq(nm, "time")) {
            k = cx__vd_skip_opts(w, k + 1, n, time_arg);
        } else if (streq(nm, "timeout")) {
            k = cx__vd_skip_opts(w, k + 1, n, timeout_arg);
            if (k < n) k++; /* the duration */
        } else if (streq(nm, "stdbuf")) {
            k = cx__vd_skip_opts(w, k + 1, n, stdbuf_arg);
        } else if (streq(nm, "xargs")) {
            out->xargs = true;
            for (size_t i = k + 1; i < n && w[i].val[0] == '-'; i++)
                if (starts(w[i].val, "-I") || starts(w[i].val, "-i") ||
                    starts(w[i].val, "--replace"))
                    out->xargs_replace = true;
            k = cx__vd_skip_opts(w, k + 1, n, xargs_arg);
        } else if (streq(nm, "watch")) {
            k = cx__vd_skip_opts(w, k + 1, n, watch_arg);
        } else if (streq(nm, "exec")) {
            k = cx__vd_skip_opts(w, k + 1, n, exec_arg);
        } else if (streq(nm, "command")) {
            bool query = false;
            for (size_t i = k + 1; i < n && w[i].val[0] == '-'; i++)
                if (strpbrk(w[i].val, "vV")) query = true;
            if (query) break;
            k = cx__vd_skip_opts(w, k + 1, n, NULL);
        } else if (streq(nm, "chroot") || streq(nm, "flock") || streq(nm, "chrt")) {
            k = cx__vd_skip_opts(w, k + 1, n, flock_arg);
            if (k < n) k++; /* the new root, the lock file, the priority */
        } else if (streq(nm, "taskset")) {
            k = cx__vd_skip_opts(w, k + 1, n, NULL);
            if (k < n) k++; /* the mask or CPU list */
        } else if (streq(nm, "runuser")) {
            k = cx__vd_skip_opts(w, k + 1, n, runuser_arg);
        } else if (streq(nm, "systemd-run")) {
            k = cx__vd_skip_opts(w, k + 1, n, sysrun_arg);
        } else if (streq(nm, "nsenter")) {
            k = cx__vd_skip_opts(w, k + 1, n, nsenter_arg);
        } else if (in_list(nm, plain)) {
            k++;
        } else {
            break;
        }
        if (k == k0) break;
    }
    return k;
}

int cx__vd_xargs_input(struct vctx *v, const struct level *L, const struct wrap *wr,
                       struct word *const *a, size_t argc, struct word *extra, size_t cap,
                       char *buf, size_t bcap, size_t *nextra) {
    *nextra = 0;
    if (!wr->xargs || argc == 0) return 0;
    if (wr->xargs_replace && cx__vd_is_shell(base_name(a[0]->val)))
        return cx__vd_reject(v, "xargs substitutes its input into shell code, which cannot be "
                                "checked");
    /* A shell run by xargs reads its code or arguments from input: the shell rules decide. */
    if (cx__vd_is_shell(base_name(a[0]->val)) || cx__vd_is_interp(base_name(a[0]->val))) return 0;
    size_t o = 0;
    for (size_t r = 0; r < L->nr; r++) {
        if (L->r[r].kind != R_HERESTR) continue;
        const char *p = L->r[r].t.val;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == '\n') p++;
            if (!*p) break;
            const char *st = p;
            while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
            size_t l = (size_t)(p - st);
            if (*nextra == cap || o + l + 1 > bcap)
                return cx__vd_reject(v, "gives xargs more input than can be checked");
            memcpy(buf + o, st, l);
            buf[o + l] = '\0';
            memset(&extra[*nextra], 0, sizeof extra[0]);
            extra[*nextra].val = buf + o;
            extra[*nextra].val_len = l;
            extra[*nextra].raw = st;
            extra[*nextra].raw_len = l;
            (*nextra)++;
            o += l + 1;
        }
        return 0;
    }
    /* Unseen input: one argument that may be any path, "/" included. */
    if (bcap < 3 || cap == 0) return 0;
    buf[0] = MK_DYN;
    buf[1] = '/';
    buf[2] = '\0';
    memset(&extra[0], 0, sizeof extra[0]);
    extra[0].val = buf;
    extra[0].val_len = 2;
    extra[0].raw = "$INPUT/";
    extra[0].raw_len = 7;
    extra[0].flags = W_VAR;
    *nextra = 1;
    return 0;
}

int cx__vd_check_at(struct vctx *v, const struct level *L, const char *name,
                    struct word *const *a, size_t argc, int depth) {
    for (size_t i = 1; i < argc; i++) {
        const char *s = a[i]->val;
        if (streq(s, "-l") || streq(s, "-d") || streq(s, "-r") || streq(s, "-c") ||
            streq(s, "--list"))
            return 0; /* lists or removes jobs */
        if (streq(s, "-f") || starts(s, "-f"))
            return cx__vd_reject(v, "schedules a script with %s -f, which cannot be checked", name);
    }
    for (size_t r = 0; r < L->nr; r++)
        if (L->r[r].kind == R_HERESTR)
            return cx__vd_check_code(v, L->r[r].t.val, L->r[r].t.val_len, depth);
    if (L->in_pipe && L->pipe_text_ok)
        return cx__vd_check_code(v, L->pipe_text, strlen(L->pipe_text), depth);
    for (size_t h = 0; h < L->nhd; h++)
        if (L->hd[h].owner == L->ncmd) return 0; /* the here-document is checked as code */
    return cx__vd_reject(v, "schedules commands with %s that cannot be checked", name);
}

int cx__vd_check_find_exec(struct vctx *v, struct word *const *a, size_t n, int depth) {
    const char *root = ".";
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (s[0] == '-' || s[0] == '(' || s[0] == '!') break;
        root = s;
        break;
    }
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (!(streq(s, "-exec") || streq(s, "-execdir") || streq(s, "-ok") || streq(s, "-okdir")))
            continue;
        char buf[2048];
        size_t o = 0;
        size_t j = i + 1;
        for (; j < n && !streq(a[j]->val, ";") && !streq(a[j]->val, "+"); j++) {
            const char *wv = streq(a[j]->val, "{}") ? root : a[j]->val;
            if (strchr(wv, '\''))
                return cx__vd_reject(v, "runs a find -exec command that cannot be checked");
            size_t l = strlen(wv);
            if (o + l + 4 >= sizeof buf)
                return cx__vd_reject(v, "runs a find -exec command too long to check");
            buf[o++] = '\'';
            memcpy(buf + o, wv, l);
            o += l;
            buf[o++] = '\'';
            buf[o++] = ' ';
        }
        buf[o] = '\0';
        if (o && cx__vd_check_code(v, buf, o, depth)) return 1;
        i = j;
    }
    return 0;
}

/* Variables assigned earlier in the command line, and a call's positional parameters. */
const char *cx__vd_lookup_var(const struct vctx *v, const char *name, size_t n) {
    for (size_t i = 0; i < v->nvars; i++)
        if (strlen(v->vars[i].name) == n && memcmp(v->vars[i].name, name, n) == 0)
            return v->vars[i].val;
    return NULL;
}

/* Records name=value; a value too long to keep makes the variable unknown again. */
void cx__vd_set_var(struct vctx *v, const char *name, size_t n, const char *val) {
    size_t i = 0;
    while (i < v->nvars && !(strlen(v->vars[i].name) == n && memcmp(v->vars[i].name, name, n) == 0))
        i++;
    bool fits = n < sizeof v->vars[0].name && strlen(val) < sizeof v->vars[0].val;
    if (i == v->nvars) {
        if (!fits) return;
        if (v->nvars == MAX_VARS) i = 0; /* forget the oldest */
        else v->nvars++;
    }
    if (!fits) {
        v->vars[i] = v->vars[--v->nvars];
        return;
    }
    memcpy(v->vars[i].name, name, n);
    v->vars[i].name[n] = '\0';
    snprintf(v->vars[i].val, sizeof v->vars[i].val, "%s", val);
}

void cx__vd_define_function(struct vctx *v, const char *name, size_t nl, const char *body,
                            size_t bl) {
    if (nl == 0 || nl >= sizeof v->funcs[0].name) return;
    size_t i = 0;
    while (i < v->nfuncs && !(strlen(v->funcs[i].name) == nl &&
                              memcmp(v->funcs[i].name, name, nl) == 0))
        i++;
    if (i == v->nfuncs) {
        if (v->nfuncs == MAX_FUNCS) i = 0; /* forget the oldest */
        else v->nfuncs++;
    }
    memcpy(v->funcs[i].name, name, nl);
    v->funcs[i].name[nl] = '\0';
    v->funcs[i].too_long = bl >= sizeof v->funcs[0].body;
    if (v->funcs[i].too_long) bl = 0;
    memcpy(v->funcs[i].body, body, bl);
    v->funcs[i].body[bl] = '\0';
}

int cx__vd_call_function(struct vctx *v, const char *name, struct word *const *a, size_t argc,
                         int depth) {
    size_t f = 0;
    while (f < v->nfuncs && !streq(v->funcs[f].name, name)) f++;
    if (f == v->nfuncs) return 0;
    if (v->funcs[f].too_long)
        return cx__vd_reject(v, "calls the function %s, whose body is too long to check", name);
    if (depth + 1 >= MAX_DEPTH)
        return cx__vd_reject(v, "nests function calls too deeply to be checked");
    /* The positional parameters of the call, restored afterwards. */
    size_t saved_n = v->nvars;
    char saved[sizeof v->vars];
    memcpy(saved, v->vars, sizeof v->vars);
    char all[256];
    size_t o = 0;
    all[0] = '\0';
    for (size_t i = 1; i < argc; i++) {
        if (i <= 9) {
            char nm[2] = {(char)('0' + i), 0};
            cx__vd_set_var(v, nm, 1, a[i]->val);
        }
        size_t l = strlen(a[i]->val);
        if (o + l + 2 < sizeof all) {
            if (o) all[o++] = ' ';
            memcpy(all + o, a[i]->val, l + 1);
            o += l;
        }
    }
    cx__vd_set_var(v, "@", 1, all);
    cx__vd_set_var(v, "*", 1, all);
    char body[sizeof v->funcs[0].body];
    memcpy(body, v->funcs[f].body, sizeof body);
    int rc = cx__vd_check_code(v, body, strlen(body), depth);
    memcpy(v->vars, saved, sizeof v->vars);
    v->nvars = saved_n;
    return rc;
}
