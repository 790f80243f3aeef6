/*
 * validate_rules.c - per-command rules of the validator: rm, chmod/chown/chgrp, disk tools,
 * commands that write files (dd, tee, cp, mv, sed -i, ...), find, package managers, and fork
 * bombs.
 *
 * Each checker sees the words of one simple command with wrappers (sudo, env, ...) already
 * removed and returns nonzero after setting the reason. Shells, interpreters and wrappers are
 * handled in validate_simple.c; path classes in validate_path.c.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

static int check_rm(struct vctx *v, const char *name, struct word *const *a, size_t n, int depth) {
    (void)name, (void)depth;
    bool rec = false, force = false, dd = false;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (!dd && streq(s, "--")) {
            dd = true;
        } else if (!dd && s[0] == '-' && s[1] == '-') {
            if (starts(s, "--recursive")) rec = true;
            if (starts(s, "--force")) force = true;
        } else if (!dd && short_opt(s)) {
            if (strpbrk(s + 1, "rR")) rec = true;
            if (strchr(s + 1, 'f')) force = true;
        }
    }
    const char *how = rec ? (force ? "rm -rf" : "rm -r") : "rm";
    dd = false;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (!dd && streq(s, "--")) {
            dd = true;
            continue;
        }
        if (!dd && s[0] == '-' && s[1]) continue;
        char np[256], disp[256], what[256], rb[600];
        if (rec && (a[i]->flags & W_SUBST) && s[0] == MK_DYN && strspn(s, "/*\x01") == strlen(s))
            return cx__vd_reject(v, "%s on a path computed by a command substitution, which cannot be "
                             "checked", how);
        s = cx__vd_resolve(v, s, rb, sizeof rb);
        if (cx__vd_sensitive(s, np, sizeof np))
            return cx__vd_reject(v, "deletes %s, which holds the system's accounts or sudo rights", np);
        const char *prot = cx__vd_protected(s);
        if (prot) return cx__vd_reject(v, "deletes %s", prot);
        enum pclass c = cx__vd_classify(s, disp, sizeof disp);
        if (c == PC_NONE || (!rec && !cx__vd_has_glob(s) && c != PC_VARROOT)) continue;
        if (!rec && c == PC_VARROOT) continue;
        cx__vd_describe(c, disp, what, sizeof what);
        return cx__vd_reject(v, "%s on %s", how, what);
    }
    return 0;
}

/* chmod modes look like options when they start with '-' ("chmod -x file"). */
static bool chmod_mode_opt(const char *s) {
    return short_opt(s) && strspn(s + 1, "rwxXstugoa+-=,") == strlen(s + 1);
}

/* True when a chmod mode sets the set-user-ID bit: 4755, 04755, u+s, +s, a=rwxs. */
static bool sets_setuid(const char *s) {
    size_t l = strlen(s), op = strcspn(s, "+=");
    if ((l == 4 || l == 5) && strspn(s, "01234567") == l) return ((s[l - 4] - '0') & 4) != 0;
    if (op >= l || !strchr(s + op, 's')) return false;
    const char *who = strpbrk(s, "ua");
    return op == 0 || (who != NULL && who < s + op);
}

static int check_chperm(struct vctx *v, const char *name, struct word *const *a, size_t n,
                        int depth) {
    (void)depth;
    bool chmod = streq(name, "chmod"), rec = false, ref = false, dd = false;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (streq(s, "--")) break;
        if (starts(s, "--recursive")) rec = true;
        if (starts(s, "--reference")) ref = true;
        if (short_opt(s) && !(chmod && chmod_mode_opt(s)) && strchr(s + 1, 'R')) rec = true;
    }
    /* The first operand is the mode (chmod) or the owner (chown, chgrp) unless --reference. */
    bool have_first = ref, setuid = false;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (!dd && streq(s, "--")) {
            dd = true;
            continue;
        }
        if (!dd && s[0] == '-' && s[1] && !(chmod && !have_first && chmod_mode_opt(s))) continue;
        if (!have_first) {
            have_first = true;
            setuid = chmod && sets_setuid(s);
            continue;
        }
        char np[256], disp[256], what[256], rb[600];
        s = cx__vd_resolve(v, s, rb, sizeof rb);
        if (setuid && (cx__vd_is_shell(base_name(s)) || cx__vd_is_interp(base_name(s))))
            return cx__vd_reject(v, "makes the shell or interpreter %s setuid, a root backdoor", s);
        if (cx__vd_sensitive(s, np, sizeof np))
            return cx__vd_reject(v, "changes the %s of %s, which holds the system's accounts or sudo rights",
                          chmod ? "permissions" : "owner", np);
        enum pclass c = cx__vd_classify(s, disp, sizeof disp);
        if (c == PC_NONE) continue;
        if (!rec && (c == PC_HOME || (c == PC_SYSDIR && !cx__vd_has_glob(s)) || c == PC_VARROOT)) continue;
        /* Giving a home directory to its user ("chown -R $USER: ~") is an ordinary repair. */
        if (c == PC_HOME && !chmod) continue;
        cx__vd_describe(c, disp, what, sizeof what);
        return cx__vd_reject(v, "%s%s on %s", name, rec ? " -R" : "", what);
    }
    return 0;
}

/* Operands of a command (options and "--" removed), into ops; returns how many. */
size_t cx__vd_operands(struct word *const *a, size_t n, const char **ops, size_t cap) {
    size_t m = 0;
    bool dd = false;
    for (size_t i = 1; i < n && m < cap; i++) {
        const char *s = a[i]->val;
        if (!dd && streq(s, "--")) {
            dd = true;
            continue;
        }
        if (!dd && s[0] == '-' && s[1]) continue;
        ops[m++] = s;
    }
    return m;
}

static int check_disk_tools(struct vctx *v, const char *name, struct word *const *a, size_t n,
                            int depth) {
    (void)depth;
    static const char *const fmt[] = {"mke2fs", "mkdosfs", "mkntfs", "mkexfatfs", "mkfs", NULL};
    static const char *const part[] = {"fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted",
                                       NULL};
    char np[256];
    if (starts(name, "mkfs") || in_list(name, fmt))
        return cx__vd_reject(v, "formats a filesystem (%s), destroying the data on it", name);
    if (streq(name, "wipefs") || streq(name, "blkdiscard"))
        return cx__vd_reject(v, "erases a disk's contents or signatures (%s)", name);
    if (streq(name, "mkswap")) {
        for (size_t i = 1; i < n; i++)
            if (cx__vd_block_device(a[i]->val, np, sizeof np))
                return cx__vd_reject(v, "formats the device %s as swap (mkswap), destroying its data", np);
    }
    if (in_list(name, part)) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (streq(s, "-l") || streq(s, "--list") || streq(s, "print") ||
                (streq(s, "-s") && !streq(name, "parted")) ||
                streq(s, "--version") || streq(s, "-V") || streq(s, "--help") || streq(s, "-h") ||
                streq(s, "-p") || streq(s, "--print"))
                return 0;
        }
        return cx__vd_reject(v, "repartitions a disk (%s)", name);
    }
    if (streq(name, "shred")) {
        for (size_t i = 1; i < n; i++)
            if (cx__vd_block_device(a[i]->val, np, sizeof np))
                return cx__vd_reject(v, "overwrites the block device %s (shred)", np);
    }
    return 0;
}

static int check_writers(struct vctx *v, const char *name, struct word *const *a, size_t n,
                         int depth) {
    (void)depth;
    const char *ops[MAX_WORDS];
    size_t m = cx__vd_operands(a, n, ops, MAX_WORDS);
    int rc = 0;
    if (streq(name, "dd")) {
        for (size_t i = 1; i < n && !rc; i++)
            if (starts(a[i]->val, "of=")) rc = cx__vd_check_write(v, "dd", a[i]->val + 3);
        return rc;
    }
    if (streq(name, "tee") || streq(name, "truncate") || streq(name, "shred") ||
        streq(name, "unlink") || streq(name, "chattr") || streq(name, "setfacl")) {
        for (size_t i = 0; i < m && !rc; i++) rc = cx__vd_check_write(v, name, ops[i]);
        return rc;
    }
    if (streq(name, "sed") || streq(name, "perl")) {
        bool inplace = false;
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (starts(s, "--in-place") || (short_opt(s) && strchr(s + 1, 'i'))) inplace = true;
        }
        for (size_t i = 0; inplace && i < m && !rc; i++) rc = cx__vd_check_write(v, name, ops[i]);
        return rc;
    }
    if (streq(name, "cp") || streq(name, "mv") || streq(name, "install") || streq(name, "ln") ||
        streq(name, "rsync") || streq(name, "scp")) {
        for (size_t i = 1; i < n && !rc; i++) {
            const char *s = a[i]->val;
            if (starts(s, "--target-directory=")) rc = cx__vd_check_write(v, name, strchr(s, '=') + 1);
            else if (streq(s, "-t") && i + 1 < n) rc = cx__vd_check_write(v, name, a[i + 1]->val);
        }
        if (!rc && m >= 2) rc = cx__vd_check_write(v, name, ops[m - 1]);
        if (!rc && streq(name, "rsync") && m >= 2) {
            bool del = false;
            for (size_t i = 1; i < n; i++) del |= starts(a[i]->val, "--delete");
            char disp[256], what[256], rb[600];
            enum pclass c = cx__vd_classify(cx__vd_resolve(v, ops[m - 1], rb, sizeof rb), disp, sizeof disp);
            if (del && c != PC_NONE) {
                cx__vd_describe(c, disp, what, sizeof what);
                return cx__vd_reject(v, "rsync --delete onto %s", what);
            }
        }
        if (!rc && streq(name, "mv")) {
            for (size_t i = 0; i + 1 < m; i++) {
                char disp[256], what[256], rb[600], np[256];
                const char *src = cx__vd_resolve(v, ops[i], rb, sizeof rb);
                if (cx__vd_sensitive(src, np, sizeof np))
                    return cx__vd_reject(v, "moves %s away, which holds the system's accounts or sudo rights", np);
                const char *prot = cx__vd_protected(src);
                if (prot) return cx__vd_reject(v, "moves away %s", prot);
                enum pclass c = cx__vd_classify(src, disp, sizeof disp);
                if (c == PC_NONE) continue;
                cx__vd_describe(c, disp, what, sizeof what);
                return cx__vd_reject(v, "mv of %s", what);
            }
        }
        return rc;
    }
    return 0;
}

static int check_find(struct vctx *v, const char *name, struct word *const *a, size_t n, int depth) {
    (void)name, (void)depth;
    bool del = false;
    size_t first_expr = n;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (first_expr == n && (s[0] == '-' || s[0] == '(' || s[0] == '!')) first_expr = i;
        if (streq(s, "-delete")) del = true;
        if ((streq(s, "-exec") || streq(s, "-execdir") || streq(s, "-ok")) && i + 1 < n) {
            const char *b = base_name(a[i + 1]->val);
            if (streq(b, "rm") || streq(b, "shred")) del = true;
        }
    }
    if (!del) return 0;
    for (size_t i = 1; i < first_expr; i++) {
        char disp[256], what[256];
        char rb[600];
        enum pclass c = cx__vd_classify(cx__vd_resolve(v, a[i]->val, rb, sizeof rb), disp, sizeof disp);
        if (c == PC_NONE) continue;
        cx__vd_describe(c, disp, what, sizeof what);
        return cx__vd_reject(v, "find deleting files on %s", what);
    }
    return 0;
}

static int check_packages(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth) {
    (void)depth;
    static const char *const subs[] = {"install", "reinstall", "remove", "purge", "build-dep",
                                       "source", "download", "add", "del", "in", "rm",
                                       "autoremove", "upgrade", "full-upgrade", "-i",
                                       "--install", "-r", "--remove", "-P", "--purge", NULL};
    static const char *const with_arg[] = {"-o", "-t", "-c", "-a", "--option", "--target-release",
                                           "--config-file", "--host-architecture", "--channel",
                                           "--root", "--admindir", "--instdir", NULL};
    /* Packages whose removal leaves a system that cannot boot, log in or manage packages. */
    static const char *const removing[] = {"remove", "purge", "autoremove", "rm", "del", "erase",
                                           "-r", "--remove", "-P", "--purge", NULL};
    static const char *const essential[] = {
        "libc6", "libc-bin", "coreutils", "bash", "dash", "systemd", "systemd-sysv", "init",
        "dpkg", "apt", "base-files", "base-passwd", "login", "passwd", "util-linux", "sudo",
        "perl-base", "libpam-modules", "libpam-runtime", "sed", "grep", "tar", "gzip",
        "findutils", "mount", "debianutils", "diffutils", "hostname", "ncurses-base",
        "grub-pc", "grub-efi-amd64", "grub-common", "linux-image-generic", "glibc", "rpm",
        "yum", "dnf", "zypper", "apk-tools", "busybox", NULL};
    bool active = false, dd = false, rm = false;
    for (size_t i = 1; i < n; i++) {
        struct word *w = a[i];
        const char *s = w->val;
        if (!dd && streq(s, "--")) {
            dd = true;
            continue;
        }
        if (!active && in_list(s, subs)) {
            active = true;
            rm = in_list(s, removing);
            continue;
        }
        if (rm && !(s[0] == '-' && s[1])) {
            char pkg[64];
            snprintf(pkg, sizeof pkg, "%s", s);
            pkg[strcspn(pkg, ":=")] = '\0';
            if (in_list(pkg, essential))
                return cx__vd_reject(v, "removes %s, a package the system needs to boot, log in "
                                        "or manage packages (%s)", pkg, name);
        }
        if (!dd && s[0] == '-' && s[1]) {
            if (in_list(s, with_arg)) i++;
            continue;
        }
        if (!active) continue;
        if (w->flags & W_DL)
            return cx__vd_reject(v, "takes a package name from a download ('%.*s')", (int)(w->raw_len > 60 ? 60 : w->raw_len), w->raw);
        /* Local package files may be globbed ("dpkg -i" on a directory of .deb files). */
        size_t sl = strlen(s);
        bool file = streq(name, "dpkg") || (sl > 4 && streq(s + sl - 4, ".deb")) ||
                    (sl > 4 && streq(s + sl - 4, ".rpm"));
        for (const char *p = s; *p; p++) {
            char c = *p;
            if (c == MK_DYN || c == MK_HOME) continue;
            if (file && strchr("*?[]", c)) continue;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                strchr(".+_:=~@/-", c))
                continue;
            return cx__vd_reject(v, "shell metacharacter '%c' in package name '%.*s'",
                          (unsigned char)c < 32 ? '?' : c,
                          (int)(w->raw_len > 60 ? 60 : w->raw_len), w->raw);
        }
    }
    return 0;
}


/* ---- fork bombs ---- */

static bool tok_char(char c) { return !is_blank(c) && !strchr(";&|(){}<>\n'\"", c); }

/* A function whose body calls itself through a pipe or in the background. */
bool cx__vd_fork_bomb(const char *s, size_t len) {
    if (strstr_n(s, len, "fork while fork") || strstr_n(s, len, "fork() while") ||
        (strstr_n(s, len, "os.fork()") && strstr_n(s, len, "while")))
        return true;
    for (size_t i = 0; i < len; i++) {
        size_t nb, ne, body;
        if (s[i] == '(') {
            size_t j = i + 1;
            while (j < len && is_blank(s[j])) j++;
            if (j >= len || s[j] != ')') continue;
            ne = i;
            while (ne > 0 && is_blank(s[ne - 1])) ne--;
            nb = ne;
            while (nb > 0 && tok_char(s[nb - 1])) nb--;
            body = j + 1;
        } else if (i + 9 <= len && memcmp(s + i, "function", 8) == 0 && is_blank(s[i + 8]) &&
                   (i == 0 || !tok_char(s[i - 1]))) {
            nb = i + 9;
            while (nb < len && is_blank(s[nb])) nb++;
            ne = nb;
            while (ne < len && tok_char(s[ne])) ne++;
            body = ne;
        } else {
            continue;
        }
        if (nb == ne) continue;
        while (body < len && (is_blank(s[body]) || s[body] == '\n' || s[body] == '(' ||
                              s[body] == ')'))
            body++;
        if (body >= len || s[body] != '{') continue;
        int depth = 0;
        size_t e = body;
        for (; e < len; e++) {
            if (s[e] == '{') depth++;
            else if (s[e] == '}' && --depth == 0) break;
        }
        bool self = false, par = false;
        for (size_t p = body + 1; p < e; p++) {
            if (s[p] == '&' || s[p] == '|') par = true;
            if (p + (ne - nb) <= e && memcmp(s + p, s + nb, ne - nb) == 0 &&
                !tok_char(s[p - 1]) && (p + (ne - nb) >= len || !tok_char(s[p + (ne - nb)])))
                self = true;
        }
        if (self && par) return true;
    }
    return false;
}

/* visudo -f FILE writes a sudoers file. */
static int check_visudo(struct vctx *v, const char *name, struct word *const *a, size_t n,
                        int depth) {
    (void)depth;
    for (size_t i = 1; i + 1 < n; i++)
        if (streq(a[i]->val, "-f") || streq(a[i]->val, "--file"))
            return cx__vd_check_write(v, name, a[i + 1]->val);
    return 0;
}

/* shred is both a disk tool (on a device) and a writer (on a file). */
static int check_shred(struct vctx *v, const char *name, struct word *const *a, size_t n,
                       int depth) {
    return check_disk_tools(v, name, a, n, depth) || check_writers(v, name, a, n, depth);
}

/*
 * The rule table: one checker per command name (a name ending in '*' matches as a prefix:
 * "mkfs*" is mkfs, mkfs.ext4, ...). check_simple looks the command up here after removing its
 * wrappers; a command that is not listed has no rule of its own (the rules on redirections,
 * downloads, shells and file contents still apply). The checkers live in this file and in
 * validate_system.c.
 */
static const struct cx__vd_rule rules[] = {
    {"rm", check_rm},
    {"chmod", check_chperm},
    {"chown", check_chperm},
    {"chgrp", check_chperm},
    {"mkfs*", check_disk_tools},
    {"mke2fs", check_disk_tools},
    {"mkdosfs", check_disk_tools},
    {"mkntfs", check_disk_tools},
    {"mkexfatfs", check_disk_tools},
    {"wipefs", check_disk_tools},
    {"blkdiscard", check_disk_tools},
    {"mkswap", check_disk_tools},
    {"fdisk", check_disk_tools},
    {"sfdisk", check_disk_tools},
    {"cfdisk", check_disk_tools},
    {"gdisk", check_disk_tools},
    {"sgdisk", check_disk_tools},
    {"parted", check_disk_tools},
    {"shred", check_shred},
    {"dd", check_writers},
    {"tee", check_writers},
    {"truncate", check_writers},
    {"unlink", check_writers},
    {"chattr", check_writers},
    {"setfacl", check_writers},
    {"sed", check_writers},
    {"perl", check_writers},
    {"cp", check_writers},
    {"mv", check_writers},
    {"install", check_writers},
    {"ln", check_writers},
    {"rsync", check_writers},
    {"scp", check_writers},
    {"visudo", check_visudo},
    {"find", check_find},
    {"apt", check_packages},
    {"apt-get", check_packages},
    {"aptitude", check_packages},
    {"dnf", check_packages},
    {"yum", check_packages},
    {"zypper", check_packages},
    {"apk", check_packages},
    {"snap", check_packages},
    {"brew", check_packages},
    {"dpkg", check_packages},
    {"systemctl", cx__vd_check_services},
    {"service", cx__vd_check_services},
    {"update-rc.d", cx__vd_check_services},
    {"chkconfig", cx__vd_check_services},
    {"iptables*", cx__vd_check_firewall},
    {"ip6tables*", cx__vd_check_firewall},
    {"nft", cx__vd_check_firewall},
    {"ufw", cx__vd_check_firewall},
    {"setenforce", cx__vd_check_firewall},
    {"aa-teardown", cx__vd_check_firewall},
    {"aa-complain", cx__vd_check_firewall},
    {"aa-disable", cx__vd_check_firewall},
    {"userdel", cx__vd_check_accounts},
    {"deluser", cx__vd_check_accounts},
    {"groupdel", cx__vd_check_accounts},
    {"delgroup", cx__vd_check_accounts},
    {"passwd", cx__vd_check_accounts},
    {"chage", cx__vd_check_accounts},
    {"usermod", cx__vd_check_accounts},
    {"useradd", cx__vd_check_accounts},
    {"adduser", cx__vd_check_accounts},
    {"kill", cx__vd_check_kill},
    {"killall", cx__vd_check_kill},
    {"killall5", cx__vd_check_kill},
    {"pkill", cx__vd_check_kill},
    {"crontab", cx__vd_check_crontab},
    {"nc", cx__vd_check_nettools},
    {"ncat", cx__vd_check_nettools},
    {"netcat", cx__vd_check_nettools},
    {"nc.traditional", cx__vd_check_nettools},
    {"nc.openbsd", cx__vd_check_nettools},
    {"socat", cx__vd_check_nettools},
    {"history", cx__vd_check_history},
    {"set", cx__vd_check_history},
    {"unset", cx__vd_check_history},
};

const struct cx__vd_rule *cx__vd_rule_find(const char *name) {
    if (!name[0]) return NULL;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const char *r = rules[i].name;
        if (r[0] != name[0]) continue;
        size_t l = strlen(r);
        if (r[l - 1] == '*' ? strncmp(name, r, l - 1) == 0 : strcmp(name, r) == 0)
            return &rules[i];
    }
    return NULL;
}
