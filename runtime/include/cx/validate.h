/*
 * cx/validate.h - refusing dangerous shell commands before anything runs them.
 *
 * A command is split into simple commands at ; & && || | and newlines (quotes respected), each
 * simple command into words (quotes removed, leading sudo/env/nohup/... wrappers skipped), and
 * each is checked against rules. Rejected, with a reason naming the rule:
 *   - rm with -r and -f (any spelling: -rf, -fr, -r -f, --recursive --force) on "/", the root
 *     glob ("/" followed by "*"), "~", "$HOME", "/home" and the other top-level system directories;
 *   - mkfs, mkfs.*, mke2fs, mkswap, wipefs, fdisk/sfdisk/parted writes onto /dev devices;
 *   - dd with of=/dev/<disk>; redirections (>, >>, tee) onto /dev/sd*, /dev/nvme*, ...;
 *   - fork bombs (a function that calls itself into a pipe in the background, ":(){ :|:& };:");
 *   - a download piped into a shell or interpreter (curl|wget ... | sh|bash|python...), or
 *     fed to one through process substitution (bash <(curl ...)) or sh -c "$(curl ...)";
 *   - chmod -R on / or another top-level system directory (777 or otherwise), chown -R there;
 *   - writes to /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow, /etc/sudoers (redirection,
 *     tee, cp/mv/dd onto them, sed -i on them);
 *   - command substitution ($(...) or backticks) anywhere except inside single quotes;
 *   - shell metacharacters in a package name given to apt/apt-get/dpkg/snap/pip/npm install.
 * Ordinary apt-get, apt, systemctl, ufw, sed -i on configuration files, usermod, rm -rf of a
 * build directory, and "curl ... | gpg --dearmor -o file" (a download into a file, not a shell)
 * are accepted. The validator errs on the side of refusing: a command it cannot tokenize
 * (unbalanced quotes) is rejected.
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
 * "commands[i] is not a string"). out: filled (zeroed first); release with cx_validation_clear
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
