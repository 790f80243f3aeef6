/*
 * validate.c - a shell-command validator that refuses dangerous commands with a reason.
 *
 * How it works. A hand-written tokenizer follows the POSIX/bash lexical rules that matter for
 * safety: quotes ('...', "...", $'...' with its escapes decoded), backslashes, line
 * continuations, comments, operators (; & && || | |& newline ( )), redirections (n>, >>, &>,
 * >|, <, <<, <<-, <<<, n>&m), here-documents, and expansions ($NAME, ${...}, $(...), `...`,
 * $((...)), <(...), >(...), ~). Each simple command is checked as soon as it ends, against its
 * words with quotes removed; wrappers (sudo, env, nohup, nice, timeout, xargs, command, ...) and
 * leading VAR=value assignments are skipped first. Text that the shell would run as code is
 * checked recursively: command and process substitutions, "sh -c" / "su -c" / "eval" /
 * "env -S" strings, here-strings and here-documents fed to a shell.
 *
 * Expansions whose value we cannot know are written into a word's value as a marker byte:
 * MK_HOME for ~, ~user, $HOME and ${HOME}; MK_DYN for any other variable or substitution.
 * Path rules treat MK_DYN like a glob ("/home/$USER" may be any home directory), and a path
 * that starts with a variable is also checked as if the variable were empty ("$DIR/" is "/").
 * Likewise a command word made only of unquoted expansions that may be empty ("$X rm -rf /")
 * is checked both as the command name and as no word at all (see finish); an unquoted word
 * known to expand to nothing is dropped, as bash drops it.
 *
 * Substitutions must be read-only queries (uname -r, lsb_release -cs, dpkg
 * --print-architecture, ". /etc/os-release && echo $VERSION_CODENAME", curl of a URL...): a
 * substitution running anything else ("nginx$(reboot)") is refused, and a download may not
 * reach a shell by pipe, substitution, process substitution, here-string or a file saved
 * earlier in the same command line.
 *
 * What it does not do: it does not emulate the shell (no variable tracking beyond HOME, no
 * alias or function expansion, no PATH lookup), does not check the code given to python -c or
 * perl -e, and it cannot stop a trusted command from doing harm through its own configuration.
 * It refuses rather than guesses: unterminated quotes, too many words, and nesting deeper than
 * MAX_DEPTH are rejected. Nothing is allocated: each nesting level uses a bounded stack frame.
 */
#include "cx/validate.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cx_internal.h"

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
    size_t owner;    /* index of the simple command it belongs to on this level */
};

/* What a nested check reports about the text it checked. */
struct inner {
    bool unsafe;   /* runs something that is not a read-only query */
    bool dl;       /* downloads */
    char name[48]; /* first command that is not a read-only query */
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
    char arena[CX_VALIDATE_MAX_CMD + 64];
    size_t used;
};

/* State shared by every level of one validation. */
#define MAX_VARS 8

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
};

static int check_text(struct vctx *v, const char *s, size_t len, int depth, struct inner *info);

__attribute__((format(printf, 2, 3))) static int reject(struct vctx *v, const char *fmt, ...) {
    if (v->reason && v->reason_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->reason, v->reason_len, fmt, ap);
        va_end(ap);
    }
    return 1;
}

/* ---- small string helpers ---- */

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static bool is_meta(char c) {
    return c == ';' || c == '&' || c == '|' || c == '(' || c == ')' || c == '<' || c == '>' ||
           c == '\n';
}
static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
static bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }
static bool starts(const char *a, const char *p) { return strncmp(a, p, strlen(p)) == 0; }

static bool in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (streq(s, *list)) return true;
    return false;
}

static bool strstr_n(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, pat, m) == 0) return true;
    return false;
}

static int hexdigit(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

static const char *base_name(const char *p) {
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

/* Copies s for a reason, replacing markers with readable text. */
static void show(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 1 < cap; s++) {
        const char *rep = NULL;
        if (*s == MK_DYN) rep = "$VAR";
        else if (*s == MK_HOME) rep = "~";
        if (rep) {
            size_t l = strlen(rep);
            if (o + l + 1 >= cap) break;
            memcpy(out + o, rep, l);
            o += l;
        } else {
            out[o++] = (unsigned char)*s < 32 ? ' ' : *s;
        }
    }
    out[o] = '\0';
}

/* ---- arena ---- */

static bool put(struct level *L, char c) {
    if (L->used + 1 >= sizeof L->arena) return false;
    L->arena[L->used++] = c;
    return true;
}

static bool put_str(struct level *L, const char *s) {
    for (; *s; s++)
        if (!put(L, *s)) return false;
    return true;
}

static const char *lookup_var(const struct vctx *v, const char *name, size_t n) {
    for (size_t i = 0; i < v->nvars; i++)
        if (strlen(v->vars[i].name) == n && memcmp(v->vars[i].name, name, n) == 0)
            return v->vars[i].val;
    return NULL;
}

/* Records name=value; a value too long to keep makes the variable unknown again. */
static void set_var(struct vctx *v, const char *name, size_t n, const char *val) {
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

/* ---- scanning nested constructs ---- */

/* From s[i] just after "$(" or "<(" (or "(" of "$(("), returns the index of the matching ')'
 * or len when it is missing. Quotes, escapes, backticks and nested parentheses are respected. */
static size_t match_paren(const char *s, size_t len, size_t i) {
    int depth = 1;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (c == '\'') {
            const char *q = memchr(s + i + 1, '\'', len - i - 1);
            if (!q) return len;
            i = (size_t)(q - s) + 1;
            continue;
        }
        if (c == '"') {
            i++;
            while (i < len && s[i] != '"') {
                if (s[i] == '\\') i++;
                else if (s[i] == '$' && i + 1 < len && s[i + 1] == '(') {
                    i = match_paren(s, len, i + 2);
                    if (i >= len) return len;
                }
                i++;
            }
            if (i >= len) return len;
            i++;
            continue;
        }
        if (c == '`') {
            i++;
            while (i < len && s[i] != '`') {
                if (s[i] == '\\') i++;
                i++;
            }
            if (i >= len) return len;
            i++;
            continue;
        }
        if (c == '(') depth++;
        else if (c == ')' && --depth == 0) return i;
        i++;
    }
    return len;
}

/* From s[i] just after "${", the index of the matching '}' or len. */
static size_t match_brace(const char *s, size_t len, size_t i) {
    int depth = 1;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (c == '\'') {
            const char *q = memchr(s + i + 1, '\'', len - i - 1);
            if (!q) return len;
            i = (size_t)(q - s) + 1;
            continue;
        }
        if (c == '$' && i + 1 < len && s[i + 1] == '(') {
            i = match_paren(s, len, i + 2);
            if (i >= len) return len;
            i++;
            continue;
        }
        if (c == '{') depth++;
        else if (c == '}' && --depth == 0) return i;
        i++;
    }
    return len;
}

/* Checks the code of a substitution; a substitution must be a read-only query. */
static int check_subst(struct vctx *v, const char *s, size_t len, int depth, const char *kind,
                       unsigned *flags) {
    struct inner in;
    memset(&in, 0, sizeof in);
    if (depth + 1 >= MAX_DEPTH)
        return reject(v, "nests command substitutions too deeply to be checked");
    if (check_text(v, s, len, depth + 1, &in)) return 1;
    if (in.unsafe)
        return reject(v, "runs '%s' in a %s, which is not a read-only query", in.name, kind);
    *flags |= W_SUBST;
    if (in.dl) *flags |= W_DL;
    return 0;
}

/* Backtick bodies need their \` \\ \$ escapes removed before they are checked as code. */
static int check_backtick(struct vctx *v, const char *s, size_t len, int depth, unsigned *flags) {
    char buf[CX_VALIDATE_MAX_CMD + 1];
    size_t o = 0;
    for (size_t i = 0; i < len && o < CX_VALIDATE_MAX_CMD; i++) {
        if (s[i] == '\\' && i + 1 < len && (s[i + 1] == '`' || s[i + 1] == '\\' || s[i + 1] == '$'))
            i++;
        buf[o++] = s[i];
    }
    buf[o] = '\0';
    return check_subst(v, buf, o, depth, "command substitution", flags);
}

/* Handles a '$' at s[*i] (inside double quotes when dq). */
static int parse_dollar(struct vctx *v, struct level *L, const char *s, size_t len, size_t *i,
                        int depth, bool dq, struct word *w) {
    size_t j = *i + 1;
    if (j < len && s[j] == '(' && j + 1 < len && s[j + 1] == '(') {
        /* Arithmetic: its value is a number, but it may hide a substitution. */
        size_t e = match_paren(s, len, j + 1);
        if (e >= len) return reject(v, "has an unterminated $(( arithmetic expansion");
        if (memchr(s + j + 2, '`', e - j - 2) || strstr_n(s + j + 2, e - j - 2, "$("))
            return reject(v, "hides a command substitution inside an arithmetic expansion");
        *i = (e + 1 < len && s[e + 1] == ')') ? e + 2 : e + 1;
        w->flags |= W_VAR;
        return put(L, MK_DYN) ? 0 : reject(v, "is too long to check");
    }
    if (j < len && s[j] == '(') {
        size_t e = match_paren(s, len, j + 1);
        if (e >= len) return reject(v, "has an unterminated $( command substitution");
        if (check_subst(v, s + j + 1, e - j - 1, depth, "command substitution", &w->flags))
            return 1;
        *i = e + 1;
        return put(L, MK_DYN) ? 0 : reject(v, "is too long to check");
    }
    if (j < len && s[j] == '{') {
        size_t e = match_brace(s, len, j + 1);
        if (e >= len) return reject(v, "has an unterminated ${ expansion");
        const char *in = s + j + 1;
        size_t n = e - j - 1;
        char mk = MK_DYN;
        size_t nl = 0;
        while (nl < n && is_name_char(in[nl])) nl++;
        const char *known = nl == n ? lookup_var(v, in, n) : NULL;
        if (known) {
            *i = e + 1;
            w->flags |= W_VAR;
            if (!dq && strpbrk(known, " \t\n")) w->flags |= W_SPLIT;
            return put_str(L, known) ? 0 : reject(v, "is too long to check");
        }
        if (!dq && nl == 3 && n == 3 && memcmp(in, "IFS", 3) == 0)
            return reject(v, "expands $IFS unquoted, which hides where words begin and end");
        /* ${HOME}, and ${HOME%...} and the like: somewhere at or above a home directory. */
        if (nl == 4 && memcmp(in, "HOME", 4) == 0) mk = MK_HOME;
        else if (memchr(in, '`', n) || strstr_n(in, n, "$(") || strstr_n(in, n, "<(")) {
            /* ${x:-$(cmd)}: check the whole inside as code; the substitution must be safe. */
            if (check_subst(v, in, n, depth, "parameter expansion", &w->flags)) return 1;
        }
        w->flags |= W_VAR;
        *i = e + 1;
        return put(L, mk) ? 0 : reject(v, "is too long to check");
    }
    if (j < len && is_name_start(s[j])) {
        size_t e = j;
        while (e < len && is_name_char(s[e])) e++;
        char mk = (e - j == 4 && memcmp(s + j, "HOME", 4) == 0) ? MK_HOME : MK_DYN;
        const char *known = lookup_var(v, s + j, e - j);
        w->flags |= W_VAR;
        *i = e;
        if (known) {
            if (!dq && strpbrk(known, " \t\n")) w->flags |= W_SPLIT;
            return put_str(L, known) ? 0 : reject(v, "is too long to check");
        }
        if (!dq && e - j == 3 && memcmp(s + j, "IFS", 3) == 0)
            return reject(v, "expands $IFS unquoted, which hides where words begin and end");
        return put(L, mk) ? 0 : reject(v, "is too long to check");
    }
    if (j < len && strchr("0123456789@*#?-$!", s[j])) {
        w->flags |= W_VAR;
        *i = j + 1;
        return put(L, MK_DYN) ? 0 : reject(v, "is too long to check");
    }
    *i = j; /* a lone '$' is literal */
    return put(L, '$') ? 0 : reject(v, "is too long to check");
}

/* Decodes $'...' starting at s[*i] == '\'' (after the '$'). */
static int parse_ansi(struct vctx *v, struct level *L, const char *s, size_t len, size_t *i) {
    size_t k = *i + 1;
    bool stop = false; /* a decoded NUL ends the word's value in bash */
    while (k < len && s[k] != '\'') {
        int c = (unsigned char)s[k];
        if (c == '\\' && k + 1 < len) {
            char e = s[k + 1];
            k += 2;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'a': c = 7; break;
            case 'b': c = 8; break;
            case 'e': case 'E': c = 27; break;
            case 'f': c = 12; break;
            case 'v': c = 11; break;
            case 'c':
                c = k < len ? (s[k++] & 0x1f) : 0;
                break;
            case 'x': {
                int val = 0, nd = 0;
                while (nd < 2 && k < len && hexdigit(s[k]) >= 0) val = val * 16 + hexdigit(s[k++]), nd++;
                c = nd ? val : 'x';
                if (!nd && !stop && !put(L, '\\')) return reject(v, "is too long to check");
                break;
            }
            case 'u': case 'U': {
                int nd = 0;
                while (nd < (e == 'u' ? 4 : 8) && k < len && hexdigit(s[k]) >= 0) k++, nd++;
                c = '?'; /* a non-ASCII character: never a path separator or metacharacter */
                break;
            }
            default:
                if (e >= '0' && e <= '7') {
                    int val = e - '0', nd = 1;
                    while (nd < 3 && k < len && s[k] >= '0' && s[k] <= '7') val = val * 8 + (s[k++] - '0'), nd++;
                    c = val & 0xff;
                } else {
                    c = (unsigned char)e; /* \\ \' \" \? and unknown escapes */
                }
            }
        } else {
            k++;
        }
        if (c == 0) stop = true;
        if (!stop) {
            /* A decoded byte that equals a marker would be misread; bash would not produce
             * anything special for it, so map it to a harmless printable byte. */
            if (c == MK_DYN || c == MK_HOME) c = '?';
            if (!put(L, (char)c)) return reject(v, "is too long to check");
        }
    }
    if (k >= len) return reject(v, "has an unterminated $' quote, so it cannot be checked");
    *i = k + 1;
    return 0;
}

/* Parses one word starting at s[*i] (not blank, not an operator except "<(" / ">("). */
static int parse_word(struct vctx *v, struct level *L, const char *s, size_t len, size_t *i,
                      int depth, struct word *w) {
    size_t k = *i;
    memset(w, 0, sizeof *w);
    w->raw = s + k;
    w->val = L->arena + L->used;
    size_t start_used = L->used;
    bool first = true;
    while (k < len) {
        char c = s[k];
        if ((c == '<' || c == '>') && k + 1 < len && s[k + 1] == '(' && first) {
            size_t e = match_paren(s, len, k + 2);
            if (e >= len) return reject(v, "has an unterminated process substitution");
            w->flags |= W_PROC;
            if (check_subst(v, s + k + 2, e - k - 2, depth, "process substitution", &w->flags))
                return 1;
            if (!put(L, MK_DYN)) return reject(v, "is too long to check");
            k = e + 1;
            first = false;
            continue;
        }
        if (is_blank(c) || is_meta(c)) break;
        if (c == '\\') {
            if (k + 1 < len && s[k + 1] == '\n') {
                k += 2;
                continue;
            }
            w->flags |= W_QUOTED;
            if (k + 1 < len && !put(L, s[k + 1])) return reject(v, "is too long to check");
            k += 2;
        } else if (c == '\'') {
            const char *q = memchr(s + k + 1, '\'', len - k - 1);
            if (!q) return reject(v, "has an unterminated quote, so it cannot be checked");
            w->flags |= W_QUOTED;
            for (const char *p = s + k + 1; p < q; p++)
                if (!put(L, *p == MK_DYN || *p == MK_HOME ? '?' : *p))
                    return reject(v, "is too long to check");
            k = (size_t)(q - s) + 1;
        } else if (c == '$' && k + 1 < len && s[k + 1] == '\'') {
            w->flags |= W_QUOTED;
            k++;
            if (parse_ansi(v, L, s, len, &k)) return 1;
        } else if (c == '"' || (c == '$' && k + 1 < len && s[k + 1] == '"')) {
            if (c == '$') k++;
            w->flags |= W_QUOTED;
            k++;
            for (;;) {
                if (k >= len) return reject(v, "has an unterminated quote, so it cannot be checked");
                char d = s[k];
                if (d == '"') {
                    k++;
                    break;
                }
                if (d == '\\' && k + 1 < len && strchr("$`\"\\\n", s[k + 1])) {
                    if (s[k + 1] != '\n' && !put(L, s[k + 1])) return reject(v, "is too long to check");
                    k += 2;
                } else if (d == '$') {
                    if (parse_dollar(v, L, s, len, &k, depth, true, w)) return 1;
                } else if (d == '`') {
                    size_t e = k + 1;
                    while (e < len && s[e] != '`') e += (s[e] == '\\') ? 2 : 1;
                    if (e >= len) return reject(v, "has an unterminated backtick substitution");
                    if (check_backtick(v, s + k + 1, e - k - 1, depth, &w->flags)) return 1;
                    if (!put(L, MK_DYN)) return reject(v, "is too long to check");
                    k = e + 1;
                } else {
                    if (!put(L, d == MK_DYN || d == MK_HOME ? '?' : d)) return reject(v, "is too long to check");
                    k++;
                }
            }
        } else if (c == '$') {
            if (parse_dollar(v, L, s, len, &k, depth, false, w)) return 1;
        } else if (c == '`') {
            size_t e = k + 1;
            while (e < len && s[e] != '`') e += (s[e] == '\\') ? 2 : 1;
            if (e >= len) return reject(v, "has an unterminated backtick substitution");
            if (check_backtick(v, s + k + 1, e - k - 1, depth, &w->flags)) return 1;
            if (!put(L, MK_DYN)) return reject(v, "is too long to check");
            k = e + 1;
        } else if (c == '~' && (first || (k > *i && (s[k - 1] == '=' || s[k - 1] == ':')))) {
            /* Tilde expansion: ~, ~/..., ~user, ~user/... all name a home directory. */
            size_t e = k + 1;
            while (e < len && (is_name_char(s[e]) || s[e] == '-' || s[e] == '.')) e++;
            if (e >= len || s[e] == '/' || is_blank(s[e]) || is_meta(s[e]) || s[e] == ':') {
                if (!put(L, MK_HOME)) return reject(v, "is too long to check");
                k = e;
            } else {
                if (!put(L, '~')) return reject(v, "is too long to check");
                k++;
            }
        } else {
            if (c == '{') w->flags |= W_BRACE;
            if (!put(L, c == MK_DYN || c == MK_HOME ? '?' : c)) return reject(v, "is too long to check");
            k++;
        }
        first = false;
    }
    w->raw_len = k - *i;
    w->val_len = L->used - start_used;
    if (!put(L, '\0')) return reject(v, "is too long to check");
    *i = k;
    return 0;
}

/* ---- paths ---- */

enum pclass { PC_NONE, PC_ROOT, PC_ROOT_GLOB, PC_HOME, PC_HOMES, PC_SYSDIR, PC_VARROOT };

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
static enum pclass classify(const char *val, char *disp, size_t cap) {
    struct comp c[MAX_COMPS];
    disp[0] = '\0';
    if (val[0] == MK_DYN) {
        const char *rest = val;
        while (*rest == MK_DYN) rest++;
        if (*rest != '/') return PC_NONE;
        return classify(rest, disp, cap) != PC_NONE ? PC_VARROOT : PC_NONE;
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
static const char *resolve(const struct vctx *v, const char *val, char *buf, size_t cap) {
    if (!v->cwd[0] || val[0] == '/' || val[0] == MK_HOME || val[0] == MK_DYN) return val;
    snprintf(buf, cap, "%s/%s", v->cwd, val);
    return buf;
}

static bool has_glob(const char *val) {
    for (; *val; val++)
        if (strchr("*?[{", *val) || *val == MK_DYN) return true;
    return false;
}

/* The normalized absolute path, or false when val is not a plain absolute path. */
static bool norm_path(const char *val, char *out, size_t cap) {
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
static bool sensitive(const char *val, char *np, size_t cap) {
    if (!norm_path(val, np, cap)) return false;
    return in_list(np, sensitive_files) || starts(np, "/etc/sudoers.d/");
}

/* True when val names a device that holds data (a disk, partition, memory). */
static bool block_device(const char *val, char *np, size_t cap) {
    static const char *const harmless[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                           "/dev/urandom", "/dev/tty", "/dev/stdin",
                                           "/dev/stdout", "/dev/stderr", "/dev/console", NULL};
    if (!norm_path(val, np, cap) || !starts(np, "/dev/")) return false;
    if (in_list(np, harmless)) return false;
    return !(starts(np, "/dev/fd/") || starts(np, "/dev/pts/") || starts(np, "/dev/shm/") ||
             starts(np, "/dev/tcp/") || starts(np, "/dev/udp/") || starts(np, "/dev/null"));
}

static void describe(enum pclass c, const char *disp, char *out, size_t cap) {
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
static int check_write(struct vctx *v, const char *cmd, const char *val) {
    char np[256];
    if (sensitive(val, np, sizeof np)) {
        if (streq(np, "/proc/sysrq-trigger"))
            return reject(v, "writes to /proc/sysrq-trigger, which can crash or reboot the machine");
        return reject(v, "writes to %s (%s), which holds the system's accounts or sudo rights", np,
                      cmd);
    }
    if (block_device(val, np, sizeof np)) {
        if (streq(cmd, "dd")) return reject(v, "dd onto a block device (%s)", np);
        return reject(v, "writes directly onto the block device %s (%s)", np, cmd);
    }
    return 0;
}

/* ---- command classes ---- */

static bool prefix_digits(const char *name, const char *p) {
    size_t l = strlen(p);
    if (strncmp(name, p, l) != 0) return false;
    for (name += l; *name; name++)
        if (!((*name >= '0' && *name <= '9') || *name == '.')) return false;
    return true;
}

static bool is_shell(const char *n) {
    static const char *const shells[] = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "csh",
                                         "tcsh", "fish", "ash", "rbash", "yash", NULL};
    return in_list(n, shells);
}

static bool is_interp(const char *n) {
    static const char *const other[] = {"node", "nodejs", "tclsh", "wish", "Rscript", "pwsh",
                                        "deno", "bun", "osascript", NULL};
    return prefix_digits(n, "python") || prefix_digits(n, "pypy") || prefix_digits(n, "perl") ||
           prefix_digits(n, "ruby") || prefix_digits(n, "php") || prefix_digits(n, "lua") ||
           in_list(n, other);
}

static bool is_downloader(const char *n) {
    static const char *const dl[] = {"curl", "wget", "fetch", "aria2c", "http", "https",
                                     "lwp-request", "lwp-download", "axel", "wget2", NULL};
    return in_list(n, dl);
}

static bool short_opt(const char *a) { return a[0] == '-' && a[1] && a[1] != '-'; }

/* Read-only queries allowed inside a substitution. */
static bool is_query(const char *name, struct word *const *a, size_t n) {
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
static void remember_download(struct vctx *v, const char *val) {
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
    v->ndl++;
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

static bool is_assignment(const struct word *w) {
    if (w->raw_len == 0 || !is_name_start(w->raw[0])) return false;
    size_t i = 1;
    while (i < w->raw_len && is_name_char(w->raw[i])) i++;
    if (i < w->raw_len && w->raw[i] == '+') i++;
    return i < w->raw_len && w->raw[i] == '=';
}

static bool is_reserved(const struct word *w) {
    static const char *const r[] = {"{", "}", "!", "if", "then", "else", "elif", "fi", "do",
                                    "done", "while", "until", "case", "esac", "time", "coproc",
                                    NULL};
    return !(w->flags & W_QUOTED) && in_list(w->val, r);
}

/* Skips options of a wrapper: `with_arg` lists options that take a separate argument. */
static size_t skip_opts(struct word *w, size_t k, size_t n, const char *const *with_arg) {
    while (k < n) {
        const char *a = w[k].val;
        if (streq(a, "--")) return k + 1;
        if (a[0] != '-' || !a[1]) return k;
        k += (with_arg && in_list(a, with_arg) && k + 1 < n) ? 2 : 1;
    }
    return k;
}

static int check_rm(struct vctx *v, struct word *const *a, size_t n) {
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
            return reject(v, "%s on a path computed by a command substitution, which cannot be "
                             "checked", how);
        s = resolve(v, s, rb, sizeof rb);
        if (sensitive(s, np, sizeof np))
            return reject(v, "deletes %s, which holds the system's accounts or sudo rights", np);
        enum pclass c = classify(s, disp, sizeof disp);
        if (c == PC_NONE || (!rec && !has_glob(s) && c != PC_VARROOT)) continue;
        if (!rec && c == PC_VARROOT) continue;
        describe(c, disp, what, sizeof what);
        return reject(v, "%s on %s", how, what);
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

static int check_chperm(struct vctx *v, const char *name, struct word *const *a, size_t n) {
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
        s = resolve(v, s, rb, sizeof rb);
        if (setuid && (is_shell(base_name(s)) || is_interp(base_name(s))))
            return reject(v, "makes the shell or interpreter %s setuid, a root backdoor", s);
        if (sensitive(s, np, sizeof np))
            return reject(v, "changes the %s of %s, which holds the system's accounts or sudo rights",
                          chmod ? "permissions" : "owner", np);
        enum pclass c = classify(s, disp, sizeof disp);
        if (c == PC_NONE) continue;
        if (!rec && (c == PC_HOME || (c == PC_SYSDIR && !has_glob(s)) || c == PC_VARROOT)) continue;
        /* Giving a home directory to its user ("chown -R $USER: ~") is an ordinary repair. */
        if (c == PC_HOME && !chmod) continue;
        describe(c, disp, what, sizeof what);
        return reject(v, "%s%s on %s", name, rec ? " -R" : "", what);
    }
    return 0;
}

/* Operands of a command (options and "--" removed), into ops; returns how many. */
static size_t operands(struct word *const *a, size_t n, const char **ops, size_t cap) {
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

static int check_disk_tools(struct vctx *v, const char *name, struct word *const *a, size_t n) {
    static const char *const fmt[] = {"mke2fs", "mkdosfs", "mkntfs", "mkexfatfs", "mkfs", NULL};
    static const char *const part[] = {"fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted",
                                       NULL};
    char np[256];
    if (starts(name, "mkfs") || in_list(name, fmt))
        return reject(v, "formats a filesystem (%s), destroying the data on it", name);
    if (streq(name, "wipefs") || streq(name, "blkdiscard"))
        return reject(v, "erases a disk's contents or signatures (%s)", name);
    if (streq(name, "mkswap")) {
        for (size_t i = 1; i < n; i++)
            if (block_device(a[i]->val, np, sizeof np))
                return reject(v, "formats the device %s as swap (mkswap), destroying its data", np);
    }
    if (in_list(name, part)) {
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (streq(s, "-l") || streq(s, "--list") || streq(s, "print") || streq(s, "-s") ||
                streq(s, "--version") || streq(s, "-V") || streq(s, "--help") || streq(s, "-h") ||
                streq(s, "-p") || streq(s, "--print"))
                return 0;
        }
        return reject(v, "repartitions a disk (%s)", name);
    }
    if (streq(name, "shred")) {
        for (size_t i = 1; i < n; i++)
            if (block_device(a[i]->val, np, sizeof np))
                return reject(v, "overwrites the block device %s (shred)", np);
    }
    return 0;
}

static int check_writers(struct vctx *v, const char *name, struct word *const *a, size_t n) {
    const char *ops[MAX_WORDS];
    size_t m = operands(a, n, ops, MAX_WORDS);
    int rc = 0;
    if (streq(name, "dd")) {
        for (size_t i = 1; i < n && !rc; i++)
            if (starts(a[i]->val, "of=")) rc = check_write(v, "dd", a[i]->val + 3);
        return rc;
    }
    if (streq(name, "tee") || streq(name, "truncate") || streq(name, "shred") ||
        streq(name, "unlink") || streq(name, "chattr") || streq(name, "setfacl")) {
        for (size_t i = 0; i < m && !rc; i++) rc = check_write(v, name, ops[i]);
        return rc;
    }
    if (streq(name, "sed") || streq(name, "perl")) {
        bool inplace = false;
        for (size_t i = 1; i < n; i++) {
            const char *s = a[i]->val;
            if (starts(s, "--in-place") || (short_opt(s) && strchr(s + 1, 'i'))) inplace = true;
        }
        for (size_t i = 0; inplace && i < m && !rc; i++) rc = check_write(v, name, ops[i]);
        return rc;
    }
    if (streq(name, "cp") || streq(name, "mv") || streq(name, "install") || streq(name, "ln") ||
        streq(name, "rsync") || streq(name, "scp")) {
        for (size_t i = 1; i < n && !rc; i++) {
            const char *s = a[i]->val;
            if (starts(s, "--target-directory=")) rc = check_write(v, name, strchr(s, '=') + 1);
            else if (streq(s, "-t") && i + 1 < n) rc = check_write(v, name, a[i + 1]->val);
        }
        if (!rc && m >= 2) rc = check_write(v, name, ops[m - 1]);
        if (!rc && streq(name, "rsync") && m >= 2) {
            bool del = false;
            for (size_t i = 1; i < n; i++) del |= starts(a[i]->val, "--delete");
            char disp[256], what[256], rb[600];
            enum pclass c = classify(resolve(v, ops[m - 1], rb, sizeof rb), disp, sizeof disp);
            if (del && c != PC_NONE) {
                describe(c, disp, what, sizeof what);
                return reject(v, "rsync --delete onto %s", what);
            }
        }
        if (!rc && streq(name, "mv")) {
            for (size_t i = 0; i + 1 < m; i++) {
                char disp[256], what[256], rb[600], np[256];
                const char *src = resolve(v, ops[i], rb, sizeof rb);
                if (sensitive(src, np, sizeof np))
                    return reject(v, "moves %s away, which holds the system's accounts or sudo rights", np);
                enum pclass c = classify(src, disp, sizeof disp);
                if (c == PC_NONE) continue;
                describe(c, disp, what, sizeof what);
                return reject(v, "mv of %s", what);
            }
        }
        return rc;
    }
    return 0;
}

static int check_find(struct vctx *v, struct word *const *a, size_t n) {
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
        enum pclass c = classify(resolve(v, a[i]->val, rb, sizeof rb), disp, sizeof disp);
        if (c == PC_NONE) continue;
        describe(c, disp, what, sizeof what);
        return reject(v, "find deleting files on %s", what);
    }
    return 0;
}

static int check_packages(struct vctx *v, const char *name, struct word *const *a, size_t n) {
    static const char *const mgrs[] = {"apt", "apt-get", "aptitude", "dnf", "yum", "zypper",
                                       "apk", "snap", "brew", "dpkg", NULL};
    static const char *const subs[] = {"install", "reinstall", "remove", "purge", "build-dep",
                                       "source", "download", "add", "del", "in", "rm",
                                       "autoremove", "upgrade", "full-upgrade", "-i",
                                       "--install", "-r", "--remove", "-P", "--purge", NULL};
    static const char *const with_arg[] = {"-o", "-t", "-c", "-a", "--option", "--target-release",
                                           "--config-file", "--host-architecture", "--channel",
                                           "--root", "--admindir", "--instdir", NULL};
    if (!in_list(name, mgrs)) return 0;
    bool active = false, dd = false;
    for (size_t i = 1; i < n; i++) {
        struct word *w = a[i];
        const char *s = w->val;
        if (!dd && streq(s, "--")) {
            dd = true;
            continue;
        }
        if (!active && in_list(s, subs)) {
            active = true;
            continue;
        }
        if (!dd && s[0] == '-' && s[1]) {
            if (in_list(s, with_arg)) i++;
            continue;
        }
        if (!active) continue;
        if (w->flags & W_DL)
            return reject(v, "takes a package name from a download ('%.*s')", (int)(w->raw_len > 60 ? 60 : w->raw_len), w->raw);
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
            return reject(v, "shell metacharacter '%c' in package name '%.*s'",
                          (unsigned char)c < 32 ? '?' : c,
                          (int)(w->raw_len > 60 ? 60 : w->raw_len), w->raw);
        }
    }
    return 0;
}

/* Checks text given to a shell as code (sh -c, eval, here-string, env -S). */
static int check_code(struct vctx *v, const char *s, size_t len, int depth) {
    if (depth + 1 >= MAX_DEPTH) return reject(v, "nests shell code too deeply to be checked");
    return check_text(v, s, len, depth + 1, NULL);
}

/* eval joins its arguments with spaces and runs them. */
static int check_eval(struct vctx *v, struct word *const *a, size_t n, int depth) {
    char buf[CX_VALIDATE_MAX_CMD + 1];
    size_t o = 0;
    for (size_t i = 1; i < n; i++) {
        if (a[i]->flags & W_DL) return reject(v, "runs a download with eval");
        size_t l = a[i]->val_len;
        if (o + l + 1 > CX_VALIDATE_MAX_CMD) return reject(v, "is too long to check");
        if (o) buf[o++] = ' ';
        memcpy(buf + o, a[i]->val, l);
        o += l;
    }
    buf[o] = '\0';
    if (memchr(buf, MK_DYN, o))
        return reject(v, "runs text from a variable or substitution with eval, which cannot be checked");
    return check_code(v, buf, o, depth);
}

/* Replaces word i by the m words in parts (arena strings). */
static int replace_word(struct vctx *v, struct level *L, size_t i, char **parts, size_t m) {
    if (L->nw - 1 + m > MAX_WORDS) return reject(v, "has too many words to check");
    struct word tmpl = L->w[i];
    memmove(&L->w[i + m], &L->w[i + 1], (L->nw - i - 1) * sizeof L->w[0]);
    for (size_t k = 0; k < m; k++) {
        L->w[i + k] = tmpl;
        L->w[i + k].val = parts[k];
        L->w[i + k].val_len = strlen(parts[k]);
    }
    L->nw = L->nw - 1 + m;
    return 0;
}

/* Bash splits unquoted expansions of values holding blanks, and expands {a,b,c}: do the same
 * so that "{rm,-rf,/}" and "x='rm -rf /'; $x" are checked as the words that run. */
static int expand_words(struct vctx *v, struct level *L) {
    for (size_t i = 0, guard = 0; i < L->nw; i++) {
        struct word *w = &L->w[i];
        char *parts[MAX_WORDS];
        size_t m = 0;
        if (++guard > 4 * MAX_WORDS) return reject(v, "has too many words to check");
        if (w->val_len == 0 && !(w->flags & W_QUOTED)) {
            /* An unquoted expansion of an empty value ("X=; $X rm -rf /") is no word at all:
             * bash drops it, and the next word becomes the command. */
            if (replace_word(v, L, i, parts, 0)) return 1;
            i--;
            continue;
        }
        if ((w->flags & W_SPLIT) && is_assignment(w)) w->flags &= ~W_SPLIT; /* no splitting */
        if (w->flags & W_SPLIT) {
            const char *p = w->val;
            while (*p) {
                while (*p == ' ' || *p == '\t' || *p == '\n') p++;
                if (!*p) break;
                const char *st = p;
                while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
                if (m == MAX_WORDS) return reject(v, "has too many words to check");
                parts[m++] = L->arena + L->used;
                for (const char *q = st; q < p; q++)
                    if (!put(L, *q)) return reject(v, "is too long to check");
                if (!put(L, '\0')) return reject(v, "is too long to check");
            }
            w->flags &= ~W_SPLIT;
            /* Only blanks: no word at all, unless a quoted part keeps an empty one. */
            if (m == 0 && (w->flags & W_QUOTED)) parts[m++] = L->arena + L->used, put(L, '\0');
            if (replace_word(v, L, i, parts, m)) return 1;
            i--; /* look at the first part again (it may hold braces) */
            continue;
        }
        if (!(w->flags & W_BRACE)) continue;
        w->flags &= ~W_BRACE;
        /* The first {...} holding a comma at its own level. */
        const char *val = w->val, *ob = NULL, *cb = NULL;
        for (const char *p = val; *p && !cb; p++) {
            if (*p != '{') continue;
            int depth = 0;
            bool comma = false;
            const char *q = p;
            for (; *q; q++) {
                if (*q == '{') depth++;
                else if (*q == '}' && --depth == 0) break;
                else if (*q == ',' && depth == 1) comma = true;
            }
            if (*q && comma) {
                ob = p;
                cb = q;
            }
        }
        if (!cb) continue;
        const char *alt = ob + 1;
        int depth = 0;
        for (const char *p = ob + 1; p <= cb; p++) {
            if (*p == '{') depth++;
            else if (*p == '}' && depth > 0) depth--;
            else if ((*p == ',' && depth == 0) || p == cb) {
                if (m == MAX_WORDS) return reject(v, "has too many words to check");
                parts[m++] = L->arena + L->used;
                for (const char *q = val; q < ob; q++)
                    if (!put(L, *q)) return reject(v, "is too long to check");
                for (const char *q = alt; q < p; q++)
                    if (!put(L, *q)) return reject(v, "is too long to check");
                if (!put_str(L, cb + 1) || !put(L, '\0')) return reject(v, "is too long to check");
                alt = p + 1;
            }
        }
        unsigned keep = w->flags;
        if (replace_word(v, L, i, parts, m)) return 1;
        for (size_t k = 0; k < m; k++) L->w[i + k].flags = keep | W_BRACE; /* more groups? */
        i--;
    }
    return 0;
}

enum sep { SEP_END, SEP_LIST, SEP_PIPE };

/*
 * 1 when word w may expand to no word at all, so that the word after it may be the command
 * the shell runs: an unquoted expansion whose value is unknown ($FOO, ${FOO}, $X$Y, $(cmd),
 * $HOME, which may be unset) and nothing else, or "$@" / "${@}" / "${name[@]}" alone (no
 * arguments, an empty array). Unquoted expansions known to be empty were already dropped by
 * expand_words; a quoted empty string ("$X" with X empty) stays a word, as in the shell.
 */
static bool may_vanish(const struct word *w) {
    if (w->val_len == 0) return false;
    for (size_t i = 0; i < w->val_len; i++)
        if (w->val[i] != MK_DYN && w->val[i] != MK_HOME) return false;
    if (!(w->flags & W_QUOTED)) return true;
    const char *r = w->raw;
    size_t n = w->raw_len;
    if ((n == 4 && memcmp(r, "\"$@\"", 4) == 0) || (n == 6 && memcmp(r, "\"${@}\"", 6) == 0))
        return true;
    if (n < 8 || memcmp(r, "\"${", 3) != 0 || memcmp(r + n - 5, "[@]}\"", 5) != 0) return false;
    for (size_t i = 3; i < n - 5; i++)
        if (!is_name_char(r[i])) return false;
    return true;
}

/* What check_simple found, for finish. */
struct simple_out {
    size_t cmd_at; /* index in L->w of the command word; L->nw when there is none */
    bool to_shell; /* the command is a shell or interpreter (here-documents are code) */
    bool dl;       /* the command downloads */
};

static int check_simple(struct vctx *v, struct level *L, int depth, struct inner *info,
                        struct simple_out *out);

/*
 * Checks the simple command collected in L, then resets L for the next one. Words that may
 * expand to nothing in command position ("$FOO rm -rf /": FOO may be empty or unset, and bash
 * then runs "rm -rf /") are checked both ways: as the command name, and dropped so that the
 * next word is the command; each further such word is dropped in turn. The command is
 * rejected when any reading is.
 */
static int finish(struct vctx *v, struct level *L, enum sep sep, int depth, struct inner *info) {
    if (L->nw == 0 && L->nr == 0) return 0; /* "( ... )" and empty lines keep the pipeline state */
    if (expand_words(v, L)) return 1;
    bool to_shell = false, dl = false;
    for (;;) {
        struct simple_out o;
        if (check_simple(v, L, depth, info, &o)) return 1;
        to_shell |= o.to_shell;
        dl |= o.dl;
        if (o.cmd_at >= L->nw || !may_vanish(&L->w[o.cmd_at])) break;
        memmove(&L->w[o.cmd_at], &L->w[o.cmd_at + 1], (L->nw - o.cmd_at - 1) * sizeof L->w[0]);
        L->nw--;
    }

    /* Here-documents of this command go to a shell when the command is one. */
    for (size_t i = 0; i < L->nhd; i++)
        if (L->hd[i].owner == L->ncmd) L->hd[i].to_shell = to_shell;

    bool next_dl = sep == SEP_PIPE && (L->pipe_dl || dl);
    L->in_pipe = sep == SEP_PIPE;
    L->pipe_dl = next_dl;
    L->ncmd++;
    L->nw = 0;
    L->nr = 0;
    L->used = 0;
    return 0;
}

/* Checks one reading of the (expanded) simple command in L against every rule; L is left as
 * it is, apart from the state it records in v (variables, directory, downloads). */
static int check_simple(struct vctx *v, struct level *L, int depth, struct inner *info,
                        struct simple_out *out) {
    struct word *w = L->w;
    size_t n = L->nw, k = 0;
    bool sudo_shell = false, su_shell = false;
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
    static const char *const plain[] = {"nohup", "setsid", "unbuffer", "chronic", "torsocks",
                                        "proxychains", "proxychains4", "builtin", "busybox",
                                        "catchsegv", "strace", "ltrace", NULL};

    for (int guard = 0; guard < 32; guard++) {
        while (k < n && (is_assignment(&w[k]) || is_reserved(&w[k]))) k++;
        if (k >= n) break;
        const char *nm = base_name(w[k].val);
        size_t k0 = k;
        if (streq(nm, "sudo") || streq(nm, "doas")) {
            k++;
            while (k < n) {
                const char *s = w[k].val;
                if (streq(s, "--")) { k++; break; }
                if (s[0] != '-' || !s[1]) break;
                if (streq(s, "-s") || streq(s, "-i") || streq(s, "--shell") || streq(s, "--login"))
                    sudo_shell = true;
                k += (in_list(s, sudo_arg) && k + 1 < n) ? 2 : 1;
            }
        } else if (streq(nm, "env")) {
            k++;
            while (k < n) {
                const char *s = w[k].val;
                if (streq(s, "-S") || streq(s, "--split-string")) {
                    if (k + 1 < n && check_code(v, w[k + 1].val, w[k + 1].val_len, depth)) return 1;
                    k = n;
                    break;
                }
                if (starts(s, "-S") || starts(s, "--split-string=")) {
                    const char *c = s[1] == 'S' ? s + 2 : strchr(s, '=') + 1;
                    if (check_code(v, c, strlen(c), depth)) return 1;
                    k = n;
                    break;
                }
                if (s[0] == '-' && s[1]) k += (in_list(s, env_arg) && k + 1 < n) ? 2 : 1;
                else if (is_assignment(&w[k])) k++;
                else break;
            }
        } else if (streq(nm, "nice") || streq(nm, "ionice")) {
            k = skip_opts(w, k + 1, n, nice_arg);
        } else if (streq(nm, "time")) {
            k = skip_opts(w, k + 1, n, time_arg);
        } else if (streq(nm, "timeout")) {
            k = skip_opts(w, k + 1, n, timeout_arg);
            if (k < n) k++; /* the duration */
        } else if (streq(nm, "stdbuf")) {
            k = skip_opts(w, k + 1, n, stdbuf_arg);
        } else if (streq(nm, "xargs")) {
            k = skip_opts(w, k + 1, n, xargs_arg);
        } else if (streq(nm, "watch")) {
            k = skip_opts(w, k + 1, n, watch_arg);
        } else if (streq(nm, "exec")) {
            k = skip_opts(w, k + 1, n, exec_arg);
        } else if (streq(nm, "command")) {
            bool query = false;
            for (size_t i = k + 1; i < n && w[i].val[0] == '-'; i++)
                if (strpbrk(w[i].val, "vV")) query = true;
            if (query) break;
            k = skip_opts(w, k + 1, n, NULL);
        } else if (streq(nm, "chroot")) {
            k = skip_opts(w, k + 1, n, NULL);
            if (k < n) k++; /* the new root */
        } else if (in_list(nm, plain)) {
            k++;
        } else {
            break;
        }
        if (k == k0) break;
    }

    struct word *a[MAX_WORDS];
    size_t argc = 0;
    for (size_t i = k; i < n; i++) a[argc++] = &w[i];
    const char *name = argc ? base_name(a[0]->val) : "";
    if (argc == 0 && sudo_shell) name = "sh";

    /* Remember assignments that stand alone ("x=/; rm -rf $x"), exported or declared ones,
     * and a for loop's variable (the most dangerous of its words), so later words expand. */
    if (argc == 0 || in_list(name, (const char *const[]){"export", "declare", "typeset", "local",
                                                         "readonly", NULL})) {
        for (size_t i = 0; i < n; i++) {
            if (!is_assignment(&w[i])) continue;
            const char *eq = strchr(w[i].val, '=');
            size_t nl = 0;
            while (nl < w[i].raw_len && is_name_char(w[i].raw[nl])) nl++;
            if (eq && nl) set_var(v, w[i].raw, nl, eq + 1);
        }
    }
    if (n >= 3 && streq(w[0].val, "for") && !(w[0].flags & W_QUOTED) && streq(w[2].val, "in")) {
        const char *pick = n > 3 ? w[3].val : "";
        for (size_t i = 3; i < n; i++) {
            char disp[256], rb[600];
            if (classify(resolve(v, w[i].val, rb, sizeof rb), disp, sizeof disp) != PC_NONE) {
                pick = w[i].val;
                break;
            }
        }
        if (strspn(w[1].val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") ==
            w[1].val_len)
            set_var(v, w[1].val, w[1].val_len, pick);
    }
    if (streq(name, "cd") || streq(name, "pushd")) {
        const char *ops[2];
        size_t m = operands(a, argc, ops, 2);
        const char *dir = m ? ops[0] : (const char[]){MK_HOME, 0};
        char rb[600];
        dir = resolve(v, dir, rb, sizeof rb);
        size_t dl = strlen(dir);
        if (strchr(dir, MK_DYN) || streq(dir, "-") || (dir[0] != '/' && dir[0] != MK_HOME) ||
            dl >= sizeof v->cwd) {
            v->cwd[0] = '\0';
        } else {
            memcpy(v->cwd, dir, dl + 1);
        }
    }
    if (streq(name, "trap") && argc >= 3 && a[1]->val[0] != '-' &&
        check_code(v, a[1]->val, a[1]->val_len, depth))
        return 1;

    /* su [-] [user] -c CMD: the command is code; without -c it is a shell on stdin. */
    if (streq(name, "su")) {
        bool has_c = false;
        for (size_t i = 1; i < argc; i++) {
            const char *s = a[i]->val;
            if ((streq(s, "-c") || streq(s, "--command")) && i + 1 < argc) {
                if (check_code(v, a[i + 1]->val, a[i + 1]->val_len, depth)) return 1;
                has_c = true;
            } else if (starts(s, "--command=")) {
                const char *c = strchr(s, '=') + 1;
                if (check_code(v, c, strlen(c), depth)) return 1;
                has_c = true;
            }
        }
        if (!has_c) su_shell = true;
    }

    /* A substitution in command position runs its output. */
    if (argc && (a[0]->flags & W_DL)) return reject(v, "runs a download as a command");

    /* Redirections. */
    for (size_t i = 0; i < L->nr; i++) {
        if (L->r[i].kind == R_OUT && check_write(v, argc ? name : "redirection", L->r[i].t.val))
            return 1;
    }

    /* Where a download is saved must be as safe as any other write. */
    if (is_downloader(name)) {
        for (size_t i = 1; i < argc; i++) {
            const char *s = a[i]->val, *file = NULL;
            if (starts(s, "--output=") || starts(s, "--output-document=")) file = strchr(s, '=') + 1;
            else if ((streq(s, "--output") || streq(s, "--output-document")) && i + 1 < argc)
                file = a[i + 1]->val;
            else if (short_opt(s) && s[strlen(s) - 1] == (streq(name, "wget") ? 'O' : 'o') &&
                     i + 1 < argc)
                file = a[i + 1]->val;
            if (file && check_write(v, name, file)) return 1;
        }
    }

    /* Rules by command. */
    if (streq(name, "rm") && check_rm(v, a, argc)) return 1;
    if ((streq(name, "chmod") || streq(name, "chown") || streq(name, "chgrp")) &&
        check_chperm(v, name, a, argc))
        return 1;
    if (argc && check_disk_tools(v, name, a, argc)) return 1;
    if (argc && check_writers(v, name, a, argc)) return 1;
    if (streq(name, "find") && check_find(v, a, argc)) return 1;
    if (argc && check_packages(v, name, a, argc)) return 1;
    if (streq(name, "kill") && argc >= 3 && streq(a[argc - 1]->val, "-1"))
        return reject(v, "kills every process the user can signal (kill -1)");

    /* Shells and interpreters: what code do they run? */
    bool shell = is_shell(name) || sudo_shell || su_shell;
    bool interp = is_interp(name);
    bool shell_like = shell || interp || streq(name, "eval") || streq(name, "source") ||
                      streq(name, ".");
    if (shell_like) {
        for (size_t i = 1; i < argc; i++)
            if (a[i]->flags & W_DL)
                return reject(v, "pipes a download into a shell (%s runs a downloaded script)", name);
        for (size_t i = 0; i < L->nr; i++)
            if ((L->r[i].kind == R_IN || L->r[i].kind == R_HERESTR) && (L->r[i].t.flags & W_DL))
                return reject(v, "pipes a download into a shell (%s reads a download)", name);
    }
    bool reads_stdin = false;
    if (streq(name, "eval")) {
        if (check_eval(v, a, argc, depth)) return 1;
    } else if (streq(name, "source") || streq(name, ".")) {
        if (argc >= 2 && was_downloaded(v, a[1]->val))
            return reject(v, "runs a script downloaded earlier ('%s')", a[1]->val);
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
            if (i < argc && check_code(v, a[i]->val, a[i]->val_len, depth)) return 1;
            if (i >= argc) reads_stdin = true; /* "xargs sh -c": the code comes from input */
        } else if (i < argc && !has_s && !streq(a[i]->val, "-")) {
            if (was_downloaded(v, a[i]->val))
                return reject(v, "runs a script downloaded earlier ('%s')",
                              a[i]->val);
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
            if (strpbrk(s + 1, "cem") || starts(s, "--eval")) code = true;
        }
        if (!code && i < argc && !streq(a[i]->val, "-") && was_downloaded(v, a[i]->val))
            return reject(v, "runs a script downloaded earlier ('%s')", a[i]->val);
        if (!code && (i >= argc || streq(a[i]->val, "-"))) reads_stdin = true;
    }
    if (shell && reads_stdin) {
        /* What a shell reads on stdin: a here-string is code, and so is a file saved earlier. */
        for (size_t r = 0; r < L->nr; r++) {
            if (L->r[r].kind == R_HERESTR &&
                check_code(v, L->r[r].t.val, L->r[r].t.val_len, depth))
                return 1;
            if (L->r[r].kind == R_IN && was_downloaded(v, L->r[r].t.val))
                return reject(v, "runs a script downloaded earlier ('%s')",
                              L->r[r].t.val);
        }
    }
    /* A command whose name is computed cannot be checked by name: refuse it where it would
     * act on the root, a home or a system directory. */
    if (argc && a[0]->val[0] == MK_DYN) {
        for (size_t i = 1; i < argc; i++) {
            char disp[256], what[256], rb[600];
            enum pclass c = classify(resolve(v, a[i]->val, rb, sizeof rb), disp, sizeof disp);
            if (c == PC_NONE || c == PC_VARROOT) continue;
            describe(c, disp, what, sizeof what);
            return reject(v, "runs a command whose name is computed at run time on %s", what);
        }
    }
    if (streq(name, "passwd") || streq(name, "chpasswd") || streq(name, "usermod")) {
        for (size_t i = 1; i < argc; i++) {
            const char *s = a[i]->val;
            if (streq(name, "passwd") && (streq(s, "-d") || streq(s, "--delete")))
                return reject(v, "deletes an account's password (passwd -d)");
            if (streq(name, "usermod") && (streq(s, "-p") || streq(s, "--password")) &&
                i + 1 < argc && a[i + 1]->val[0] == '\0')
                return reject(v, "sets an empty password (usermod -p '')");
        }
    }
    if (argc && strchr(a[0]->val, '/') && was_downloaded(v, a[0]->val))
        return reject(v, "runs a program downloaded earlier ('%s')", a[0]->val);
    if (reads_stdin && L->in_pipe) {
        if (L->pipe_dl) return reject(v, "pipes a download into a shell (%s)", name);
        if (shell || sudo_shell || su_shell)
            return reject(v, "pipes text into a shell (%s), so what it runs cannot be checked", name);
    }

    /* What a substitution's code does. */
    bool dl = is_downloader(name);
    if (info) {
        bool query = argc == 0 || is_query(name, a, argc);
        for (size_t i = 0; i < L->nr && query; i++) {
            if (L->r[i].kind != R_OUT) continue;
            char np[64];
            if (!(norm_path(L->r[i].t.val, np, sizeof np) && streq(np, "/dev/null"))) query = false;
        }
        if (!query && !info->unsafe) {
            info->unsafe = true;
            show(info->name, sizeof info->name, argc ? a[0]->val : "?");
        }
        if (dl) info->dl = true;
    }
    if (dl) record_downloads(v, a, argc, L);

    out->cmd_at = argc ? k : n;
    out->to_shell = shell || interp;
    out->dl = dl;
    return 0;
}

/* ---- fork bombs ---- */

static bool tok_char(char c) { return !is_blank(c) && !strchr(";&|(){}<>\n'\"", c); }

/* A function whose body calls itself through a pipe or in the background. */
static bool fork_bomb(const char *s, size_t len) {
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

/* ---- the tokenizer loop ---- */

/* Checks an unexpanded-delimiter here-document body for substitutions. */
static int check_heredoc_body(struct vctx *v, const char *s, size_t len, int depth) {
    unsigned flags = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '(') {
            size_t e = match_paren(s, len, i + 2);
            if (e >= len) return reject(v, "has an unterminated $( in a here-document");
            if (s[i + 2] != '(' &&
                check_subst(v, s + i + 2, e - i - 2, depth, "command substitution", &flags))
                return 1;
            i = e;
        } else if (s[i] == '`') {
            size_t e = i + 1;
            while (e < len && s[e] != '`') e += (s[e] == '\\') ? 2 : 1;
            if (e >= len) return reject(v, "has an unterminated backtick in a here-document");
            if (check_backtick(v, s + i + 1, e - i - 1, depth, &flags)) return 1;
            i = e;
        }
    }
    return 0;
}

/* Consumes the here-document bodies pending on L, starting at s[*i] (just after a newline). */
static int take_heredocs(struct vctx *v, struct level *L, const char *s, size_t len, size_t *i,
                         int depth) {
    for (size_t h = 0; h < L->nhd; h++) {
        struct heredoc *hd = &L->hd[h];
        size_t start = *i, p = *i, body_end = len, next = len;
        size_t dl = strlen(hd->delim);
        while (p < len) {
            size_t le = p;
            while (le < len && s[le] != '\n') le++;
            size_t q = p;
            if (hd->strip_tabs)
                while (q < le && s[q] == '\t') q++;
            size_t lend = le;
            if (lend > q && s[lend - 1] == '\r') lend--;
            if (lend - q == dl && memcmp(s + q, hd->delim, dl) == 0) {
                body_end = p;
                next = le < len ? le + 1 : len;
                break;
            }
            p = le < len ? le + 1 : len;
        }
        if (hd->to_shell) {
            if (check_code(v, s + start, body_end - start, depth)) return 1;
        } else if (!hd->quoted) {
            if (check_heredoc_body(v, s + start, body_end - start, depth)) return 1;
        }
        *i = next;
    }
    L->nhd = 0;
    return 0;
}

static int parse_redir(struct vctx *v, struct level *L, const char *s, size_t len, size_t *i,
                       int depth) {
    size_t k = *i;
    while (k < len && s[k] >= '0' && s[k] <= '9') k++;
    enum redir_kind kind;
    bool heredoc = false, strip = false;
    if (s[k] == '&' && k + 1 < len && s[k + 1] == '>') { /* &> and &>> */
        kind = R_OUT;
        k += (k + 2 < len && s[k + 2] == '>') ? 3 : 2;
    } else if (s[k] == '>') {
        kind = R_OUT;
        k++;
        if (k < len && (s[k] == '>' || s[k] == '|')) k++;
        else if (k < len && s[k] == '&') { kind = R_DUP; k++; }
    } else { /* '<' */
        kind = R_IN;
        k++;
        if (k + 1 < len && s[k] == '<' && s[k + 1] == '<') { kind = R_HERESTR; k += 2; }
        else if (k < len && s[k] == '<') {
            heredoc = true;
            k++;
            if (k < len && s[k] == '-') { strip = true; k++; }
        } else if (k < len && s[k] == '&') { kind = R_DUP; k++; }
        else if (k < len && s[k] == '>') { kind = R_OUT; k++; }
    }
    while (k < len && is_blank(s[k])) k++;
    if (k >= len || (is_meta(s[k]) && !((s[k] == '<' || s[k] == '>') && k + 1 < len && s[k + 1] == '(')))
        return reject(v, "has a redirection without a target");
    struct word t;
    if (parse_word(v, L, s, len, &k, depth, &t)) return 1;
    *i = k;
    if (heredoc) {
        if (L->nhd >= MAX_HEREDOCS) return reject(v, "has too many here-documents to check");
        struct heredoc *hd = &L->hd[L->nhd++];
        snprintf(hd->delim, sizeof hd->delim, "%s", t.val);
        hd->quoted = (t.flags & W_QUOTED) != 0;
        hd->strip_tabs = strip;
        hd->to_shell = false;
        hd->owner = L->ncmd;
        return 0;
    }
    if (kind == R_DUP) {
        /* n>&m and n>&- duplicate descriptors; ">& file" writes to the file. */
        bool digits = t.val_len > 0 && strspn(t.val, "0123456789-") == t.val_len;
        if (!digits) kind = R_OUT;
        else return 0;
    }
    if (L->nr >= MAX_REDIRS) return reject(v, "has too many redirections to check");
    L->r[L->nr].kind = kind;
    L->r[L->nr].t = t;
    L->nr++;
    return 0;
}

static int check_text(struct vctx *v, const char *s, size_t len, int depth, struct inner *info) {
    struct level L;
    L.nw = L.nr = L.nhd = L.ncmd = L.used = 0;
    L.in_pipe = L.pipe_dl = false;
    if (fork_bomb(s, len))
        return reject(v, "defines a fork bomb (a function that keeps starting copies of itself)");
    size_t i = 0;
    for (;;) {
        while (i < len && (is_blank(s[i]) || (s[i] == '\\' && i + 1 < len && s[i + 1] == '\n')))
            i += is_blank(s[i]) ? 1 : 2;
        if (i >= len) return finish(v, &L, SEP_END, depth, info);
        char c = s[i];
        if (c == '#') {
            while (i < len && s[i] != '\n') i++;
            continue;
        }
        if (c == '\n') {
            if (finish(v, &L, SEP_LIST, depth, info)) return 1;
            i++;
            if (L.nhd && take_heredocs(v, &L, s, len, &i, depth)) return 1;
            continue;
        }
        if (c == ';' || c == ')' || (c == '(' && !(i > 0 && (s[i - 1] == '<' || s[i - 1] == '>')))) {
            if (finish(v, &L, SEP_LIST, depth, info)) return 1;
            i++;
            continue;
        }
        if (c == '&') {
            if (i + 1 < len && s[i + 1] == '>') {
                if (parse_redir(v, &L, s, len, &i, depth)) return 1;
                continue;
            }
            if (finish(v, &L, SEP_LIST, depth, info)) return 1;
            i += (i + 1 < len && s[i + 1] == '&') ? 2 : 1;
            continue;
        }
        if (c == '|') {
            bool pipe = !(i + 1 < len && s[i + 1] == '|');
            if (finish(v, &L, pipe ? SEP_PIPE : SEP_LIST, depth, info)) return 1;
            i += (i + 1 < len && (s[i + 1] == '|' || s[i + 1] == '&')) ? 2 : 1;
            continue;
        }
        size_t d = i;
        while (d < len && s[d] >= '0' && s[d] <= '9') d++;
        if ((c == '<' || c == '>' || (d > i && d < len && (s[d] == '<' || s[d] == '>'))) &&
            !((c == '<' || c == '>') && i + 1 < len && s[i + 1] == '(')) {
            if (parse_redir(v, &L, s, len, &i, depth)) return 1;
            continue;
        }
        if (L.nw >= MAX_WORDS) return reject(v, "has too many words to check");
        if (parse_word(v, &L, s, len, &i, depth, &L.w[L.nw])) return 1;
        L.nw++;
    }
}

/* ---- public API ---- */

/* Checks one command with the state (downloads, variables, directory) left in v by earlier
 * commands of the same script. */
static int validate_one(struct vctx *v, const char *cmd, char *reason, size_t reason_len) {
    if (reason && reason_len) reason[0] = '\0';
    v->reason = reason;
    v->reason_len = reason_len;
    size_t len = strlen(cmd);
    if (len > CX_VALIDATE_MAX_CMD) {
        reject(v, "command is longer than %d bytes, too long to check", CX_VALIDATE_MAX_CMD);
        return CX_EREJECTED;
    }
    for (size_t i = 0; i < len; i++) {
        if (cmd[i] == MK_DYN || cmd[i] == MK_HOME) {
            reject(v, "contains control characters");
            return CX_EREJECTED;
        }
    }
    return check_text(v, cmd, len, 0, NULL) ? CX_EREJECTED : 0;
}

int cx_validate_command(const char *cmd, char *reason, size_t reason_len) {
    if (reason && reason_len) reason[0] = '\0';
    if (cmd == NULL) return CX_EINVAL;
    struct vctx v;
    memset(&v, 0, sizeof v);
    return validate_one(&v, cmd, reason, reason_len);
}

int cx_validate_package_name(const char *name, char *reason, size_t reason_len) {
    struct vctx v;
    memset(&v, 0, sizeof v);
    v.reason = reason;
    v.reason_len = reason_len;
    if (reason && reason_len) reason[0] = '\0';
    if (name == NULL) return CX_EINVAL;
    size_t n = strlen(name);
    if (n == 0) return reject(&v, "package name is empty"), CX_EREJECTED;
    if (n > 128) return reject(&v, "package name is longer than 128 characters"), CX_EREJECTED;
    if (name[0] == '-')
        return reject(&v, "package name '%.60s' starts with '-' and would be read as an option", name),
               CX_EREJECTED;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr(".+_:=~@/-", c))
            continue;
        char shown[64];
        show(shown, sizeof shown, name);
        if (c < 32 || c >= 127)
            reject(&v, "package name '%s' contains the control or non-ASCII byte 0x%02x", shown, c);
        else
            reject(&v, "shell metacharacter '%c' in package name '%s'", c, shown);
        return CX_EREJECTED;
    }
    return 0;
}

void cx_validation_clear(struct cx_validation *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n_rejected; i++) cx__free(v->reasons[i]);
    cx__free(v->reasons);
    v->reasons = NULL;
    v->n_rejected = 0;
}

/* Appends one reason; on failure v is left as it was. */
static int add_reason(struct cx_validation *v, size_t idx, const char *cmd, const char *why) {
    char shown[80];
    size_t n = cmd ? strlen(cmd) : 0, o = 0;
    bool cut = n > 60;
    if (cut) {
        n = 60;
        while (n > 0 && ((unsigned char)cmd[n] & 0xC0) == 0x80) n--; /* keep UTF-8 whole */
    }
    for (size_t i = 0; i < n; i++) shown[o++] = (unsigned char)cmd[i] < 32 ? ' ' : cmd[i];
    if (cut) { memcpy(shown + o, "...", 3); o += 3; }
    shown[o] = '\0';
    struct cx__buf b;
    cx__buf_init(&b, 4096);
    int rc = cmd ? cx__buf_printf(&b, "commands[%zu] '%s': %s", idx, shown, why)
                 : cx__buf_printf(&b, "commands[%zu] is not a string", idx);
    if (rc < 0) return CX_ENOMEM;
    char **nr = cx__realloc(v->reasons, (v->n_rejected + 1) * sizeof *nr);
    if (!nr) {
        cx__buf_reset(&b);
        return CX_ENOMEM;
    }
    v->reasons = nr;
    v->reasons[v->n_rejected++] = cx__buf_take(&b);
    return 0;
}

int cx_validate_commands(const cJSON *commands_array, struct cx_validation *out) {
    if (out == NULL) return CX_EINVAL;
    out->n_rejected = 0;
    out->reasons = NULL;
    if (!cJSON_IsArray(commands_array)) return CX_EINVAL;
    size_t idx = 0;
    char why[256];
    /* The plan runs as one script: what an earlier command downloads, assigns or enters counts
     * for the later ones. */
    struct vctx vc;
    memset(&vc, 0, sizeof vc);
    for (const cJSON *it = commands_array->child; it; it = it->next, idx++) {
        int rc = 0;
        if (!cJSON_IsString(it) || it->valuestring == NULL) {
            rc = add_reason(out, idx, NULL, NULL);
        } else if (validate_one(&vc, it->valuestring, why, sizeof why) == CX_EREJECTED) {
            rc = add_reason(out, idx, it->valuestring, why);
        }
        if (rc < 0) {
            cx_validation_clear(out);
            return rc;
        }
    }
    return out->n_rejected ? CX_EREJECTED : 0;
}
