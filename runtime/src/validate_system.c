/*
 * validate_system.c - per-command rules for the system around the files: services and
 * firewalls that defend the machine, accounts, signals to init, scheduled jobs, network tools
 * that hand out a shell, and shell history.
 *
 * Each checker has the signature of the rule table in validate_rules.c and sees the words of one
 * simple command with its wrappers removed. Ordinary administration passes: starting,
 * restarting and enabling services, stopping or masking services that defend nothing, adding
 * firewall rules, creating system users, killing a process by its PID. What is refused is
 * switching a defence off (ssh, the firewall, AppArmor/SELinux, audit, logging), damaging
 * accounts, signalling PID 1, installing jobs that run later without being checked, and
 * giving a network peer a shell. It does not look at files' contents (validate_code.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

/* Services whose loss leaves the machine undefended, unreachable or unaudited. */
static const char *const defences[] = {
    "ssh", "sshd", "ssh.socket", "ufw", "firewalld", "apparmor", "auditd", "fail2ban",
    "systemd-journald", "rsyslog", "nftables", "netfilter-persistent", "iptables", "ip6tables",
    "syslog", "syslog-ng", NULL};

static bool is_defence(const char *unit) {
    char u[64];
    snprintf(u, sizeof u, "%s", unit);
    size_t l = strlen(u);
    if (l > 8 && streq(u + l - 8, ".service")) u[l - 8] = '\0';
    return in_list(u, defences);
}

/* systemctl stop|disable|mask|kill of a defence; service NAME stop; update-rc.d; chkconfig. */
int cx__vd_check_services(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth) {
    (void)depth;
    static const char *const off[] = {"stop", "disable", "mask", "kill", "stop-all", "off",
                                      "remove", "freeze", NULL};
    const char *ops[MAX_WORDS];
    size_t m = cx__vd_operands(a, n, ops, MAX_WORDS);
    if (m == 0) return 0;
    if (streq(name, "systemctl")) {
        if (!in_list(ops[0], off)) return 0;
        for (size_t i = 1; i < m; i++)
            if (is_defence(ops[i]))
                return cx__vd_reject(v, "switches off %s (systemctl %s), a service that defends or "
                                        "reaches the machine", ops[i], ops[0]);
        return 0;
    }
    /* service NAME stop, update-rc.d NAME disable|remove, chkconfig NAME off */
    if (m >= 2 && is_defence(ops[0]) && in_list(ops[1], off))
        return cx__vd_reject(v, "switches off %s (%s %s), a service that defends or reaches the "
                                "machine", ops[0], name, ops[1]);
    return 0;
}

/* iptables -F / -P CHAIN ACCEPT, nft flush ruleset, ufw disable|reset, setenforce 0,
 * aa-teardown. */
int cx__vd_check_firewall(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth) {
    (void)depth;
    if (starts(name, "iptables") || starts(name, "ip6tables")) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (streq(s, "-F") || streq(s, "--flush") || (short_opt(s) && strchr(s + 1, 'F')))
                return cx__vd_reject(v, "flushes the firewall rules (%s -F)", name);
            if ((streq(s, "-P") || streq(s, "--policy")) && i + 2 < n &&
                streq(a[i + 2]->val, "ACCEPT"))
                return cx__vd_reject(v, "opens the firewall's default policy (%s -P %s ACCEPT)",
                                     name, a[i + 1]->val);
        }
        return 0;
    }
    if (streq(name, "nft")) {
        for (size_t i = 1; i + 1 < n; i++)
            if ((streq(a[i]->val, "flush") || streq(a[i]->val, "delete")) &&
                (streq(a[i + 1]->val, "ruleset") || streq(a[i + 1]->val, "table")))
                return cx__vd_reject(v, "removes the firewall rules (nft %s %s)", a[i]->val,
                                     a[i + 1]->val);
        return 0;
    }
    if (streq(name, "ufw")) {
        const char *ops[MAX_WORDS];
        size_t m = cx__vd_operands(a, n, ops, MAX_WORDS);
        if (m && (streq(ops[0], "disable") || streq(ops[0], "reset")))
            return cx__vd_reject(v, "switches the firewall off (ufw %s)", ops[0]);
        return 0;
    }
    if (streq(name, "setenforce")) {
        if (n >= 2 && (streq(a[1]->val, "0") || streq(a[1]->val, "Permissive") ||
                       streq(a[1]->val, "permissive")))
            return cx__vd_reject(v, "switches SELinux enforcement off (setenforce 0)");
        return 0;
    }
    if (streq(name, "aa-teardown") || streq(name, "aa-complain") || streq(name, "aa-disable"))
        return cx__vd_reject(v, "switches AppArmor protection off (%s)", name);
    return 0;
}

static bool is_root_user(const char *u) { return streq(u, "root") || streq(u, "0"); }

/* userdel/deluser -r or of root, usermod/useradd giving UID 0 or locking root, passwd -d,
 * usermod -p '', chage -E of root, groupdel of an admin group, chpasswd of root. */
int cx__vd_check_accounts(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth) {
    (void)depth;
    const char *ops[MAX_WORDS];
    size_t m = cx__vd_operands(a, n, ops, MAX_WORDS);
    const char *user = m ? ops[m - 1] : "";
    if (streq(name, "userdel") || streq(name, "deluser")) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (streq(s, "-r") || streq(s, "--remove") || streq(s, "--remove-home") ||
                streq(s, "--remove-all-files") || (short_opt(s) && strchr(s + 1, 'r')))
                return cx__vd_reject(v, "deletes an account with its files (%s %s)", name, s);
        }
        if (is_root_user(user)) return cx__vd_reject(v, "deletes the root account (%s)", name);
        return 0;
    }
    if (streq(name, "groupdel") || streq(name, "delgroup")) {
        static const char *const admin[] = {"sudo", "wheel", "root", "adm", "admin", NULL};
        if (in_list(user, admin))
            return cx__vd_reject(v, "deletes the administrators' group %s (%s)", user, name);
        return 0;
    }
    if (streq(name, "passwd")) {
        for (size_t i = 1; i < n; i++)
            if (streq(a[i]->val, "-d") || streq(a[i]->val, "--delete"))
                return cx__vd_reject(v, "deletes an account's password (passwd -d)");
        return 0;
    }
    if (streq(name, "chage")) {
        if (is_root_user(user))
            for (size_t i = 1; i < n; i++)
                if (streq(a[i]->val, "-E") || starts(a[i]->val, "--expiredate"))
                    return cx__vd_reject(v, "expires the root account (chage -E)");
        return 0;
    }
    if (streq(name, "usermod") || streq(name, "useradd") || streq(name, "adduser")) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val, *next = i + 1 < n ? a[i + 1]->val : NULL;
            if (streq(s, "-o") || streq(s, "--non-unique"))
                return cx__vd_reject(v, "gives an account another's user ID (%s -o)", name);
            if ((streq(s, "-u") || streq(s, "--uid")) && next && streq(next, "0"))
                return cx__vd_reject(v, "gives an account user ID 0, a second root (%s -u 0)", name);
            if (streq(name, "usermod") && (streq(s, "-p") || streq(s, "--password")) && next &&
                next[0] == '\0')
                return cx__vd_reject(v, "sets an empty password (usermod -p '')");
            if (streq(name, "usermod") && is_root_user(user) &&
                (streq(s, "-L") || streq(s, "--lock") || streq(s, "-e") ||
                 starts(s, "--expiredate") ||
                 ((streq(s, "-s") || streq(s, "--shell")) && next &&
                  (strstr(next, "nologin") || strstr(next, "false")))))
                return cx__vd_reject(v, "locks the root account out (usermod %s root)", s);
        }
        return 0;
    }
    return 0;
}

/* kill of PID 1 or -1, killall5, pkill/killall of init, systemd or sshd. */
int cx__vd_check_kill(struct vctx *v, const char *name, struct word *const *a, size_t n,
                      int depth) {
    (void)depth;
    if (streq(name, "killall5")) return cx__vd_reject(v, "kills every process (killall5)");
    if (streq(name, "kill")) {
        bool dd = false;
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (!dd && streq(s, "--")) {
                dd = true;
                continue;
            }
            if (!dd && (streq(s, "-s") || streq(s, "-n") || streq(s, "--signal"))) {
                i++;
                continue;
            }
            if (streq(s, "-1") && (dd || i == n - 1) && n >= 3)
                return cx__vd_reject(v, "kills every process the user can signal (kill -1)");
            if (!dd && s[0] == '-') continue;
            if (streq(s, "1"))
                return cx__vd_reject(v, "signals PID 1, the init process (kill 1), which stops "
                                        "the machine");
        }
        return 0;
    }
    static const char *const vital[] = {"init", "systemd", "sshd", "ssh", "systemd-journald",
                                        "dbus-daemon", NULL};
    const char *ops[MAX_WORDS];
    size_t m = cx__vd_operands(a, n, ops, MAX_WORDS);
    for (size_t i = 0; i < m; i++)
        if (in_list(ops[i], vital))
            return cx__vd_reject(v, "kills %s (%s), which the machine or its remote access needs",
                                 ops[i], name);
    return 0;
}

/* crontab installs or removes jobs: only listing passes. */
int cx__vd_check_crontab(struct vctx *v, const char *name, struct word *const *a, size_t n,
                         int depth) {
    (void)name, (void)depth;
    for (size_t i = 1; i < n; i++)
        if (streq(a[i]->val, "-l")) return 0;
    return cx__vd_reject(v, "changes a crontab, which runs commands later that cannot be checked");
}

/* nc -e/-c, ncat --exec/--sh-exec, socat EXEC:/SYSTEM: hand a shell to the network. */
int cx__vd_check_nettools(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth) {
    (void)depth;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (streq(name, "socat")) {
            char low[16];
            size_t k = 0;
            for (; s[k] && k + 1 < sizeof low; k++)
                low[k] = (char)((s[k] >= 'A' && s[k] <= 'Z') ? s[k] + 32 : s[k]);
            low[k] = '\0';
            if (starts(low, "exec:") || starts(low, "system:"))
                return cx__vd_reject(v, "connects a program to the network (socat %.*s), a remote "
                                        "shell", 5, s);
            continue;
        }
        if (streq(s, "--exec") || streq(s, "--sh-exec") || streq(s, "--lua-exec") ||
            starts(s, "--exec=") || starts(s, "--sh-exec=") ||
            (short_opt(s) && strpbrk(s + 1, "ec")))
            return cx__vd_reject(v, "gives a network peer a program to run (%s %s), a remote shell",
                                 name, s);
    }
    return 0;
}

/* history -c / -w / -d: erasing what was run. */
int cx__vd_check_history(struct vctx *v, const char *name, struct word *const *a, size_t n,
                         int depth) {
    (void)depth;
    for (size_t i = 1; i < n; i++) {
        const char *s = a[i]->val;
        if (streq(name, "history") && short_opt(s) && strpbrk(s + 1, "cdwa"))
            return cx__vd_reject(v, "erases the shell history (history %s)", s);
        if (streq(name, "set") && streq(s, "+o") && i + 1 < n && streq(a[i + 1]->val, "history"))
            return cx__vd_reject(v, "turns the shell history off (set +o history)");
        if (streq(name, "unset") && (starts(s, "HIST")))
            return cx__vd_reject(v, "turns the shell history off (unset %s)", s);
    }
    return 0;
}

/* An assignment that hides what runs: HISTFILE=..., HISTSIZE=0, HISTFILESIZE=0. */
int cx__vd_check_history_var(struct vctx *v, const char *assign) {
    if (starts(assign, "HISTFILE=") || streq(assign, "HISTSIZE=0") ||
        streq(assign, "HISTFILESIZE=0"))
        return cx__vd_reject(v, "turns the shell history off (%s)", assign);
    return 0;
}
