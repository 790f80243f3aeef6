/*
 * cx/validate.h - refusing dangerous shell commands before anything runs them.
 *
 * A command is split into simple commands at ; & && || | ( ) and newlines (quotes respected),
 * each simple command into words the way bash would see them (quotes removed, $'...' decoded,
 * {a,b} braces expanded, variables assigned earlier in the same command substituted and split,
 * a directory set by an earlier cd applied to relative paths), leading sudo/env/nohup/nice/
 * timeout/flock/runuser/systemd-run/... wrappers and VAR=value assignments skipped, and each is
 * checked against the rules. An unquoted expansion that is empty, or may be (an unknown or
 * unset variable, a substitution, "$@"), is no word at all to bash: in command position
 * ("$X rm -rf /") the next word is checked as the command too. Text that runs as code is
 * checked the same way, recursively (nesting is bounded): $(...) and `...`, <(...),
 * "sh -c" / "su -c" / "eval" / "env -S" / "trap" strings, here-strings and here-documents given
 * to a shell, the body of a shell function or alias where it is called (with the call's
 * arguments as $1.. and $@), what xargs runs (with a here-string's words, or an argument that
 * may be "/" when the input cannot be seen), what at/batch read (a here-string, a
 * here-document, echo/printf text piped in), find -exec commands, and a shell command in one
 * string literal given to system()/exec/backticks/qx/os.system/execSync in python -c, perl -e,
 * ruby -e, node -e, php -r, lua -e or awk code (also on their stdin). Rejected, with a reason
 * naming the rule:
 *   - rm -r (any spelling: -rf, -fr, -r -f, -R, --recursive) on "/", the root glob ("/" followed
 *     by "*"), "~", "$HOME", a home under /home, /home itself, the top-level system directories
 *     (/etc, /usr, /var, /boot, ...) and a few below them (/usr/lib, /var/lib, /var/lib/dpkg...),
 *     also when reached through "..", "//", a variable that may be empty ("$DIR/") or a command
 *     substitution; find -delete / -exec rm there; mv or rsync --delete of them;
 *   - mkfs, mkfs.*, mke2fs, wipefs, blkdiscard; mkswap, shred on a device; fdisk/sfdisk/parted/
 *     gdisk writes (listing with -l is fine); dd of=/dev/<disk>; any write (redirection, tee,
 *     cp, a download's -o) onto a disk, partition or memory device;
 *   - fork bombs (a function that calls itself into a pipe or the background, ":(){ :|:& };:");
 *   - a download reaching a shell or interpreter: piped (curl ... | sh, wget -qO- ... | sudo
 *     bash), through <(...), $(...), a here-string or eval, or saved and then run in the same
 *     command line (wget .../i.sh && bash i.sh); the same for a file written by a decoder
 *     (base64 -d, xxd -r, ...) or by echo/printf/cat; text of any other origin piped into a
 *     shell; shell code that is only a variable or substitution (sh -c "$X", eval "$X");
 *   - interpreter code that runs programs other than through one checked literal, deletes or
 *     writes files, forks, opens sockets or evaluates computed code (validate_code.c's lists);
 *   - chmod -R / chown -R on the protected directories above (chmod 777 / too); a setuid shell;
 *   - writes to /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow, /etc/sudoers(.d) and
 *     /proc/sysrq-trigger (redirection, tee, cp/mv/ln/install/dd, sed -i, truncate, chmod,
 *     rm, visudo -f, a download's -o); writes, moves or deletes of crontabs and /etc/cron.*,
 *     any authorized_keys, /etc/ld.so.preload, /etc/rc.local, /etc/pam.d, the package database
 *     under /var/lib/dpkg (not its lock files), login and audit logs, shell history files;
 *   - weakening settings in any word or here-document: apt's --allow-unauthenticated,
 *     --force-yes, [trusted=yes], [allow-insecure=yes], AllowUnauthenticated,
 *     AllowInsecureRepositories; --nogpgcheck, --no-gpg-checks, gpgcheck=0; dpkg --force-all,
 *     --force-remove-essential, --allow-remove-essential; PermitRootLogin yes,
 *     PermitEmptyPasswords yes, pam_permit.so, SELINUX=disabled; /dev/tcp and /dev/udp;
 *   - removing essential packages (libc6, systemd, dpkg, apt, bash, sudo, grub-pc...);
 *   - switching defences off: systemctl/service/update-rc.d/chkconfig stop|disable|mask of
 *     ssh, sshd, ufw, firewalld, apparmor, auditd, fail2ban, journald, rsyslog...; iptables -F,
 *     iptables -P CHAIN ACCEPT, nft flush ruleset, ufw disable|reset, setenforce 0, aa-teardown;
 *   - account damage: userdel/deluser -r or of root, a second UID 0 (-o, -u 0), locking or
 *     expiring root, groupdel of sudo/wheel, passwd -d, usermod -p '', chpasswd of root;
 *   - kill of PID 1 or -1, killall5, pkill/killall of init, systemd or sshd;
 *   - crontab other than -l; at/batch with input that cannot be checked or -f;
 *   - remote shells: nc/ncat/netcat -e/-c/--exec/--sh-exec, socat EXEC:/SYSTEM:;
 *   - interactive root shells: sudo -s/-i without a command, su without -c, sudo bash;
 *   - history tampering: history -c/-w, unset HISTFILE, HISTFILE=..., HISTSIZE=0,
 *     set +o history;
 *   - a command substitution that is not a read-only query (uname -r, lsb_release -cs, dpkg
 *     --print-architecture, . /etc/os-release, curl to stdout... are fine; so is eval of a
 *     settings printer such as ssh-agent -s or brew shellenv): "nginx$(reboot)";
 *   - unquoted $IFS, and a computed command name acting on a protected directory;
 *   - shell metacharacters in a package name given to apt/apt-get/aptitude/dpkg/snap/dnf/yum/
 *     zypper/apk/brew ("nginx;reboot" even when quoted).
 * Ordinary apt-get, apt, systemctl enable/start/restart, stopping or masking other services,
 * ufw allow, iptables -A, sed -i on configuration files, usermod -aG, rm -rf of a build
 * directory, python -c/node -e code that only computes and prints, and "curl ... | gpg
 * --dearmor -o file" (a download into a file, not a shell) are accepted. The validator errs on
 * the side of refusing: a command it cannot tokenize (unbalanced quotes), with too many words or
 * nested too deeply is rejected. It cannot know what a script file or program that was not
 * written or downloaded in the same command does, nor what a trusted program does through its
 * own configuration files.
 */
#ifndef CX_VALIDATE_H
#define CX_VALIDATE_H

#include <stddef.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON; /* <cjson/cJSON.h> */

/* Longest command the validator examines; longer ones are rejected ("command too long"). */
#define CX_VALIDATE_MAX_CMD 8192

/*
 * Checks one command. cmd: borrowed, NUL-terminated. reason: buffer of reason_len bytes (may be
 * NULL/0) that receives, when rejected, a sentence naming the rule, e.g. "rm -rf on the root
 * directory", "pipes a download into a shell".
 * Returns 0 (accepted), CX_EREJECTED, CX_EINVAL (NULL cmd). Allocates nothing.
 * Threads: any thread.
 */
CX_API int cx_validate_command(const char *cmd, char *reason, size_t reason_len);

/* The outcome of validating a list of commands. */
struct cx_validation {
    size_t n_rejected; /* entries in reasons */
    char **reasons;    /* owned; each "commands[2] 'rm -rf /': rm -rf on the root directory" */
};

/*
 * Validates every element of a cJSON array of strings (a non-string element is rejected with
 * "commands[i] is not a string"). The commands are checked in order as one script: a file
 * downloaded, a variable assigned or a directory entered by an earlier command counts for the
 * later ones (["wget https://x/i.sh", "bash i.sh"] is refused). out: filled (zeroed first); release with cx_validation_clear
 * whatever the result (on CX_ENOMEM/CX_EINVAL it is left empty).
 * Long commands are shortened to 60 characters plus "..." inside the quotes of a reason.
 * Returns 0 (all accepted), CX_EREJECTED (n_rejected > 0), CX_EINVAL (NULL or not an array),
 * CX_ENOMEM.
 * Threads: any thread.
 */
CX_API int cx_validate_commands(const struct cJSON *commands_array, struct cx_validation *out);

/* Frees the reasons and zeroes v. Accepts NULL. Threads: the thread owning v. */
CX_API void cx_validation_clear(struct cx_validation *v);

/*
 * Checks a Debian/npm/pip-style package name: 1..128 characters from [A-Za-z0-9.+_:=~@/-],
 * not starting with '-'. reason as above ("package name contains shell metacharacter ';'").
 * Returns 0, CX_EREJECTED, CX_EINVAL (NULL name).
 * Threads: any thread.
 */
CX_API int cx_validate_package_name(const char *name, char *reason, size_t reason_len);

#ifdef __cplusplus
}
#endif
#endif /* CX_VALIDATE_H */
