/*
 * validate_internal.h - what the validator's files share (not installed; see cx/validate.h).
 *
 * The word, redirection and nesting-level structures the lexer fills in, the state one
 * validation carries across commands, small string helpers, and the functions each file
 * provides to the others. Those carry the cx__vd_ prefix ("validator"), as functions shared
 * between our files but not public do; the comments elsewhere name them without it.
 */
#ifndef CX_VALIDATE_INTERNAL_H
#define CX_VALIDATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "cx/validate.h"

#define MAX_WORDS 128
#define MAX_REDIRS 16
#define MAX_HEREDOCS 4
#define MAX_DEPTH 4
#define MAX_DL_FILES 4

enum { MK_DYN = 1, MK_HOME = 2 };

/* Word flags. */
#define W_QUOTED 0x01u /* some part was quoted or escaped */
#define W_SUBST 0x02u  /* contains a command or process substitution */
#define W_DL 0x04u     /* one of its substitutions downloads */
#define W_VAR 0x08u    /* contains a variable expansion */
#define W_PROC 0x10u   /* contains a process substitution <(...) or >(...) */
#define W_BRACE 0x20u  /* an unquoted '{': may be a brace expansion {a,b} */
#define W_ENVP 0x80u  /* a substitution of a settings printer only: eval may run it */
#define W_SPLIT 0x40u  /* an unquoted expansion of a known value with blanks: split into words */

struct word {
    const char *raw; /* the word as written */
    size_t raw_len;
    char *val; /* quotes removed, expansions as markers; in the level's arena */
    size_t val_len;
    unsigned flags;
};

enum redir_kind { R_OUT, R_IN, R_DUP, R_HERESTR };

struct redir {
    enum redir_kind kind;
    struct word t;
};

struct heredoc {
    char delim[128];
    bool quoted;     /* delimiter quoted: the body is not expanded */
    bool strip_tabs; /* <<- */
    bool to_shell;   /* the command reading it is a shell */
    char lang[16];   /* or an interpreter (python3, perl...): the body is its code */
    size_t owner;    /* index of the simple command it belongs to on this level */
};

/* What a nested check reports about the text it checked. */
struct inner {
    bool unsafe;   /* runs something that is not a read-only query */
    bool dl;       /* downloads */
    char name[48]; /* first command that is not a read-only query */
    bool envp;     /* runs a program that prints shell settings (ssh-agent -s, brew shellenv) */
    bool other;    /* runs anything else */
};

/* One nesting level: the simple command being built. */
struct level {
    struct word w[MAX_WORDS];
    size_t nw;
    struct redir r[MAX_REDIRS];
    size_t nr;
    struct heredoc hd[MAX_HEREDOCS];
    size_t nhd;
    size_t ncmd;  /* simple commands finished on this level */
    bool in_pipe; /* the command being built reads a pipe */
    bool pipe_dl; /* an earlier stage of its pipeline downloads */
    bool pipe_dec; /* an earlier stage of its pipeline decodes (base64 -d, xxd -r, ...) */
    bool pipe_text_ok;  /* pipe_text is what the earlier stage (echo, printf) writes */
    char pipe_text[512];
    bool echo_ok; /* echo_text: the output of the command just checked, when known */
    char echo_text[512];
    char arena[CX_VALIDATE_MAX_CMD + 64];
    size_t used;
};

/* State shared by every level of one validation. */
#define MAX_VARS 16
#define MAX_FUNCS 4

struct vctx {
    char *reason;
    size_t reason_len;
    char dl_files[MAX_DL_FILES][128]; /* basenames of files downloaded earlier */
    size_t ndl;
    /* Variables assigned earlier in the command line ("x=/; rm -rf $x"), values with markers. */
    struct {
        char name[32];
        char val[256];
    } vars[MAX_VARS];
    size_t nvars;
    char cwd[256]; /* directory set by an earlier cd, with markers; "" when unknown */
    unsigned dl_decoded; /* bit i: dl_files[i] was decoded (base64 -d ...), not downloaded */
    unsigned dl_written; /* bit i: dl_files[i] was written by echo, printf or cat */
    /* Functions and aliases defined earlier: a call checks the body (validate_indirect.c). */
    struct {
        char name[32];
        char body[1024];
        bool too_long;
    } funcs[MAX_FUNCS];
    size_t nfuncs;
};

/* What the wrappers in front of a command said (cx__vd_skip_wrappers). */
struct wrap {
    bool sudo_shell;    /* sudo -s / -i: a root shell */
    bool under_sudo;    /* runs as another user (sudo, doas, pkexec) */
    bool xargs;         /* xargs adds arguments read from input */
    bool xargs_replace; /* xargs -I: the input replaces a string in the command */
};

/* What check_simple found, for finish. */
struct simple_out {
    size_t cmd_at; /* index in L->w of the command word; L->nw when there is none */
    bool to_shell; /* the command is a shell or interpreter (here-documents are code) */
    bool dl;       /* the command downloads */
    bool dec;      /* the command decodes encoded text */
    char lang[16]; /* the interpreter reading stdin as code, or "" */
};

enum pclass { PC_NONE, PC_ROOT, PC_ROOT_GLOB, PC_HOME, PC_HOMES, PC_SYSDIR, PC_VARROOT };

/* Small string helpers. */
static inline bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static inline bool is_meta(char c) {
    return c == ';' || c == '&' || c == '|' || c == '(' || c == ')' || c == '<' || c == '>' ||
           c == '\n';
}
static inline bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static inline bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
static inline bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }
static inline bool starts(const char *a, const char *p) { return strncmp(a, p, strlen(p)) == 0; }

static inline bool in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (streq(s, *list)) return true;
    return false;
}

static inline bool strstr_n(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, pat, m) == 0) return true;
    return false;
}

static inline int hexdigit(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

static inline const char *base_name(const char *p) {
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

static inline bool short_opt(const char *a) { return a[0] == '-' && a[1] && a[1] != '-'; }

/* validate.c */
__attribute__((format(printf, 2, 3))) int cx__vd_reject(struct vctx *v, const char *fmt, ...);
void cx__vd_show(char *out, size_t cap, const char *s);

/* validate_lex.c */
int cx__vd_check_text(struct vctx *v, const char *s, size_t len, int depth, struct inner *info);

/* validate_path.c */
enum pclass cx__vd_classify(const char *val, char *disp, size_t cap);
const char *cx__vd_resolve(const struct vctx *v, const char *val, char *buf, size_t cap);
bool cx__vd_has_glob(const char *val);
bool cx__vd_norm_path(const char *val, char *out, size_t cap);
bool cx__vd_sensitive(const char *val, char *np, size_t cap);
const char *cx__vd_protected(const char *val);
bool cx__vd_block_device(const char *val, char *np, size_t cap);
void cx__vd_describe(enum pclass c, const char *disp, char *out, size_t cap);
int cx__vd_check_write(struct vctx *v, const char *cmd, const char *val);

/* validate_rules.c: the rule table, one checker per command name (see cx__vd_rule_find). */
typedef int (*cx__vd_rule_fn)(struct vctx *v, const char *name, struct word *const *a, size_t n,
                              int depth);
struct cx__vd_rule {
    const char *name; /* a command's base name; a trailing '*' matches a prefix */
    cx__vd_rule_fn check;
};
const struct cx__vd_rule *cx__vd_rule_find(const char *name);
size_t cx__vd_operands(struct word *const *a, size_t n, const char **ops, size_t cap);
bool cx__vd_fork_bomb(const char *s, size_t len);

/* validate_system.c: checkers of the rule table for services, firewalls, accounts, signals,
 * crontab, network tools and history. */
int cx__vd_check_services(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth);
int cx__vd_check_firewall(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth);
int cx__vd_check_accounts(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth);
int cx__vd_check_kill(struct vctx *v, const char *name, struct word *const *a, size_t n,
                      int depth);
int cx__vd_check_crontab(struct vctx *v, const char *name, struct word *const *a, size_t n,
                         int depth);
int cx__vd_check_nettools(struct vctx *v, const char *name, struct word *const *a, size_t n,
                          int depth);
int cx__vd_check_history(struct vctx *v, const char *name, struct word *const *a, size_t n,
                         int depth);
int cx__vd_check_history_var(struct vctx *v, const char *assign);

/* validate_code.c */
int cx__vd_check_content(struct vctx *v, const char *s, size_t n);
int cx__vd_check_script(struct vctx *v, const char *lang, const char *code, size_t n, int depth);

/* validate_indirect.c. cx__vd_skip_wrappers returns the index of the command word (n when the
 * words were all consumed) and sets *rc to 1 when a wrapper's own code was rejected. */
size_t cx__vd_skip_wrappers(struct vctx *v, struct word *w, size_t n, int depth,
                            struct wrap *out, int *rc);
int cx__vd_xargs_input(struct vctx *v, const struct level *L, const struct wrap *wr,
                       struct word *const *a, size_t argc, struct word *extra, size_t cap,
                       char *buf, size_t bcap, size_t *nextra);
int cx__vd_check_at(struct vctx *v, const struct level *L, const char *name,
                    struct word *const *a, size_t argc, int depth);
int cx__vd_check_find_exec(struct vctx *v, struct word *const *a, size_t n, int depth);
const char *cx__vd_lookup_var(const struct vctx *v, const char *name, size_t n);
void cx__vd_set_var(struct vctx *v, const char *name, size_t n, const char *val);
void cx__vd_define_function(struct vctx *v, const char *name, size_t nl, const char *body,
                            size_t bl);
int cx__vd_call_function(struct vctx *v, const char *name, struct word *const *a, size_t argc,
                         int depth);

/* validate_simple.c */
bool cx__vd_is_shell(const char *n);
bool cx__vd_is_interp(const char *n);
bool cx__vd_is_downloader(const char *n);
bool cx__vd_is_env_printer(const char *name, struct word *const *a, size_t n);
bool cx__vd_is_query(const char *name, struct word *const *a, size_t n);
bool cx__vd_is_assignment(const struct word *w);
bool cx__vd_is_reserved(const struct word *w);
size_t cx__vd_skip_opts(struct word *w, size_t k, size_t n, const char *const *with_arg);
int cx__vd_check_code(struct vctx *v, const char *s, size_t len, int depth);
int cx__vd_check_simple(struct vctx *v, struct level *L, int depth, struct inner *info,
                 struct simple_out *out);

#endif /* CX_VALIDATE_INTERNAL_H */
