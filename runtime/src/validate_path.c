/*
 * validate_path.c - path classification for the validator's rules.
 *
 * Normalizes a word's value (with its expansion markers) into components, resolving "." and
 * "..", and classifies it: the root, everything under it, a home directory, all homes, a
 * protected system directory, or a path whose leading variable may be empty. Also names the
 * files whose modification is refused (account and sudo databases, /proc/sysrq-trigger) and the
 * devices that hold data. It knows nothing of commands: check_write is the one rule here, the
 * check for any file a command writes to.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

/* ---- paths ---- */


struct comp {
    const char *p;
    size_t n;
    bool glob;
};
#define MAX_COMPS 64

static bool comp_eq(const struct comp *c, const char *s) {
    return c->n == strlen(s) && memcmp(c->p, s, c->n) == 0;
}

/* Splits an absolute path (or one starting with ~) into components with "." and ".."
 * resolved. Returns the count, or -1 when the path is relative or too deep. */
static int split_path(const char *val, struct comp *c) {
    static const char home[] = "home", user[] = {MK_HOME, 0};
    const char *p = val;
    int k = 0;
    if (*p == MK_HOME) {
        c[k++] = (struct comp){home, 4, false};
        c[k++] = (struct comp){user, 1, false};
        p++;
        if (*p && *p != '/') return -1;
    } else if (*p != '/') {
        return -1;
    }
    while (*p) {
        while (*p == '/') p++;
        const char *st = p;
        while (*p && *p != '/') p++;
        size_t n = (size_t)(p - st);
        if (n == 0 || (n == 1 && st[0] == '.')) continue;
        if (n == 2 && st[0] == '.' && st[1] == '.') {
            if (k > 0) k--;
            continue;
        }
        if (k >= MAX_COMPS) return -1;
        bool g = false;
        for (size_t i = 0; i < n; i++)
            if (strchr("*?[{", st[i]) || st[i] == MK_DYN) g = true;
        c[k++] = (struct comp){st, n, g};
    }
    return k;
}

static const char *const sys_top[] = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64",
                                      "libx32", "opt", "proc", "sbin", "srv", "sys", "usr",
                                      "var", "snap", "run", "mnt", "media", NULL};
static const char *const sys_second[] = {"usr/bin", "usr/sbin", "usr/lib", "usr/lib32",
                                         "usr/lib64", "usr/libexec", "usr/include", "usr/share",
                                         "usr/local", "var/lib", NULL};
/* Deeper directories whose loss breaks package management or destroys databases. */
static const char *const sys_third[] = {"var/lib/dpkg", "var/lib/apt", "var/lib/mysql",
                                        "var/lib/postgresql", NULL};

static enum pclass exact_class(const struct comp *c, int k) {
    if (k == 0) return PC_ROOT;
    if (k == 1) {
        if (comp_eq(&c[0], "home")) return PC_HOMES;
        if (comp_eq(&c[0], "root")) return PC_HOME;
        for (const char *const *s = sys_top; *s; s++)
            if (comp_eq(&c[0], *s)) return PC_SYSDIR;
        return PC_NONE;
    }
    if (k == 2) {
        if (comp_eq(&c[0], "home")) return PC_HOME;
        for (const char *const *s = sys_second; *s; s++) {
            const char *sl = strchr(*s, '/');
            size_t l0 = (size_t)(sl - *s);
            if (c[0].n == l0 && memcmp(c[0].p, *s, l0) == 0 && comp_eq(&c[1], sl + 1))
                return PC_SYSDIR;
        }
    }
    if (k == 3) {
        char joined[256];
        int l = snprintf(joined, sizeof joined, "%.*s/%.*s/%.*s", (int)c[0].n, c[0].p,
                         (int)c[1].n, c[1].p, (int)c[2].n, c[2].p);
        if (l > 0 && (size_t)l < sizeof joined && in_list(joined, sys_third)) return PC_SYSDIR;
    }
    return PC_NONE;
}

static void join_comps(const struct comp *c, int k, bool glob, char *out, size_t cap) {
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < k && o + 2 < cap; i++) {
        out[o++] = '/';
        for (size_t j = 0; j < c[i].n && o + 2 < cap; j++) out[o++] = c[i].p[j];
    }
    if (k == 0 && o + 1 < cap) out[o++] = '/';
    if (glob && o + 3 < cap) {
        if (o > 1 || out[0] != '/') out[o++] = '/';
        out[o++] = '*';
    }
    out[o] = '\0';
}

/* Classifies a path for the destructive-command rules; disp gets the directory shown in the
 * reason for PC_SYSDIR. */
enum pclass cx__vd_classify(const char *val, char *disp, size_t cap) {
    struct comp c[MAX_COMPS];
    disp[0] = '\0';
    if (val[0] == MK_DYN) {
        const char *rest = val;
        while (*rest == MK_DYN) rest++;
        if (*rest != '/') return PC_NONE;
        return cx__vd_classify(rest, disp, cap) != PC_NONE ? PC_VARROOT : PC_NONE;
    }
    int k = split_path(val, c);
    if (k < 0) return PC_NONE;
    for (int p = 0; p < k; p++) {
        if (!c[p].glob) continue;
        enum pclass pre = exact_class(c, p);
        if (pre == PC_NONE) return PC_NONE;
        /* /home/$USER: one user's home, not all of them. */
        if (pre == PC_HOMES && p == 1 && k == 2 && c[1].n == 1 && c[1].p[0] == MK_DYN)
            return PC_HOME;
        if (p == 0) return PC_ROOT_GLOB;
        join_comps(c, p, true, disp, cap);
        return pre;
    }
    enum pclass cl = exact_class(c, k);
    if (cl == PC_SYSDIR) join_comps(c, k, false, disp, cap);
    return cl;
}

/* A relative path joined to the directory of an earlier cd, when that is known. */
const char *cx__vd_resolve(const struct vctx *v, const char *val, char *buf, size_t cap) {
    if (!v->cwd[0] || val[0] == '/' || val[0] == MK_HOME || val[0] == MK_DYN) return val;
    snprintf(buf, cap, "%s/%s", v->cwd, val);
    return buf;
}

bool cx__vd_has_glob(const char *val) {
    for (; *val; val++)
        if (strchr("*?[{", *val) || *val == MK_DYN) return true;
    return false;
}

/* The normalized absolute path, or false when val is not a plain absolute path. */
bool cx__vd_norm_path(const char *val, char *out, size_t cap) {
    struct comp c[MAX_COMPS];
    if (val[0] != '/') return false;
    int k = split_path(val, c);
    if (k < 0) return false;
    join_comps(c, k, false, out, cap);
    return true;
}

static const char *const sensitive_files[] = {
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
    "/etc/passwd-", "/etc/shadow-", "/etc/group-", "/etc/gshadow-", "/proc/sysrq-trigger", NULL};

/* True when val names an account or sudo database file (or /proc/sysrq-trigger). */
bool cx__vd_sensitive(const char *val, char *np, size_t cap) {
    if (!cx__vd_norm_path(val, np, cap)) return false;
    return in_list(np, sensitive_files) || starts(np, "/etc/sudoers.d/") ||
           streq(np, "/etc/sudoers.d");
}

/*
 * Files whose change plants something that runs later or elsewhere (persistence), breaks the
 * package database, or erases the record of what ran. Returns a description for the reason,
 * or NULL. Matched on the normalized path, and on the base name for files that may live in any
 * home ("~/.ssh/authorized_keys", "~/.bash_history").
 */
const char *cx__vd_protected(const char *val) {
    static const char *const hist[] = {".bash_history", ".zsh_history", ".history",
                                       ".sh_history", ".python_history", NULL};
    static const char *const logs[] = {"/var/log/auth.log", "/var/log/secure", "/var/log/wtmp",
                                       "/var/log/btmp", "/var/log/lastlog", "/var/log/faillog",
                                       NULL};
    static const char *const cron_dirs[] = {"/etc/cron.d/", "/etc/cron.hourly/",
                                            "/etc/cron.daily/", "/etc/cron.weekly/",
                                            "/etc/cron.monthly/", "/var/spool/cron/", NULL};
    const char *b = base_name(val);
    if (streq(b, "authorized_keys") || streq(b, "authorized_keys2"))
        return "an SSH authorized_keys file, which lets a key log in";
    if (in_list(b, hist)) return "the shell history";
    char np[256];
    if (!cx__vd_norm_path(val, np, sizeof np)) return NULL;
    if (streq(np, "/etc/crontab") || streq(np, "/etc/anacrontab") || streq(np, "/var/spool/cron"))
        return "a crontab, which runs commands later";
    for (const char *const *d = cron_dirs; *d; d++)
        if (starts(np, *d) || (strncmp(np, *d, strlen(*d) - 1) == 0 && !np[strlen(*d) - 1]))
            return "a crontab, which runs commands later";
    if (streq(np, "/etc/ld.so.preload")) return "/etc/ld.so.preload, which loads code into every program";
    if (streq(np, "/etc/rc.local")) return "/etc/rc.local, which runs at every boot";
    if (starts(np, "/etc/pam.d/")) return "the PAM configuration, which decides who may log in";
    if (starts(np, "/var/lib/dpkg/") && !starts(np, "/var/lib/dpkg/lock"))
        return "the package database under /var/lib/dpkg";
    if (in_list(np, logs) || starts(np, "/var/log/audit"))
        return "a login or audit log, the record of who did what";
    return NULL;
}

/* True when val names a device that holds data (a disk, partition, memory). */
bool cx__vd_block_device(const char *val, char *np, size_t cap) {
    static const char *const harmless[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                           "/dev/urandom", "/dev/tty", "/dev/stdin",
                                           "/dev/stdout", "/dev/stderr", "/dev/console", NULL};
    if (!cx__vd_norm_path(val, np, cap) || !starts(np, "/dev/")) return false;
    if (in_list(np, harmless)) return false;
    return !(starts(np, "/dev/fd/") || starts(np, "/dev/pts/") || starts(np, "/dev/shm/") ||
             starts(np, "/dev/tcp/") || starts(np, "/dev/udp/") || starts(np, "/dev/null"));
}

void cx__vd_describe(enum pclass c, const char *disp, char *out, size_t cap) {
    switch (c) {
    case PC_ROOT: snprintf(out, cap, "the root directory"); break;
    case PC_ROOT_GLOB: snprintf(out, cap, "everything under the root directory"); break;
    case PC_HOME: snprintf(out, cap, "the home directory"); break;
    case PC_HOMES: snprintf(out, cap, "the home directories under /home"); break;
    case PC_SYSDIR: snprintf(out, cap, "the system directory %s", disp); break;
    case PC_VARROOT:
        snprintf(out, cap, "a path starting with a variable, which is the root directory or a "
                           "system directory when the variable is empty");
        break;
    default: snprintf(out, cap, "a path"); break;
    }
}

/* Checks a file that a command writes to. what: "writes to", "dd onto", ... */
int cx__vd_check_write(struct vctx *v, const char *cmd, const char *val) {
    char np[256];
    if (cx__vd_sensitive(val, np, sizeof np)) {
        if (streq(np, "/proc/sysrq-trigger"))
            return cx__vd_reject(v, "writes to /proc/sysrq-trigger, which can crash or reboot the machine");
        return cx__vd_reject(v, "writes to %s (%s), which holds the system's accounts or sudo rights", np,
                      cmd);
    }
    const char *prot = cx__vd_protected(val);
    if (prot) return cx__vd_reject(v, "writes to %s (%s)", prot, cmd);
    if (cx__vd_block_device(val, np, sizeof np)) {
        if (streq(cmd, "dd")) return cx__vd_reject(v, "dd onto a block device (%s)", np);
        return cx__vd_reject(v, "writes directly onto the block device %s (%s)", np, cmd);
    }
    return 0;
}
