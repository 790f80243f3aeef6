/*
 * validate_lex.c - the validator's shell lexer: reads text the way bash would.
 *
 * A hand-written tokenizer follows the POSIX/bash lexical rules that matter for safety: quotes
 * ('...', "...", $'...' with its escapes decoded), backslashes, line continuations, comments,
 * operators (; & && || | |& newline ( )), redirections (n>, >>, &>, >|, <, <<, <<-, <<<, n>&m),
 * here-documents, and expansions ($NAME, ${...}, $(...), `...`, $((...)), <(...), >(...), ~).
 * Words are expanded as bash would (known variables substituted and split, {a,b} braces) and
 * each simple command is handed to check_simple (validate_simple.c) as soon as it ends.
 * Command and process substitutions are checked recursively as code that must be a read-only
 * query. It does not decide what is dangerous: the rules live in validate_simple.c,
 * validate_rules.c and validate_path.c.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate_internal.h"

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

/* ---- scanning nested constructs ---- */

/*
 * One scanner for every nested construct, so that what a substitution or a parameter expansion
 * spans is decided by the same quoting rules everywhere (two copies that disagreed would let
 * text be read as data by one and run as code by the other). From s[i] just after the opening
 * "$(", "<(", ">(", the second "(" of "$((", or "${", it returns the index of the matching
 * close (')' or '}'), or len when there is none. Backslash escapes, '...' (bash honours them
 * inside ${...} even within double quotes), "..." with the expansions inside it, `...`,
 * comments inside $(...), and nested $(...) and ${...} are skipped whole; open/close pairs of
 * the kind being matched nest.
 */
static size_t skip_backtick(const char *s, size_t len, size_t i);
static size_t skip_dquote(const char *s, size_t len, size_t i);

static size_t match_close(const char *s, size_t len, size_t i, char open, char close) {
    int depth = 1;
    while (i < len) {
        char c = s[i];
        if (c == '\\') {
            i += 2;
        } else if (c == '\'') {
            const char *q = memchr(s + i + 1, '\'', len - i - 1);
            if (!q) return len;
            i = (size_t)(q - s) + 1;
        } else if (c == '"') {
            i = skip_dquote(s, len, i + 1);
        } else if (c == '`') {
            i = skip_backtick(s, len, i + 1);
        } else if (c == '$' && i + 1 < len && (s[i + 1] == '(' || s[i + 1] == '{')) {
            i = match_close(s, len, i + 2, s[i + 1], s[i + 1] == '(' ? ')' : '}');
            if (i < len) i++;
        } else if (c == '#' && open == '(' && (i == 0 || strchr(" \t\n;&|(", s[i - 1]))) {
            /* A comment inside $(...) ends at the line's end; its quotes are no quotes. */
            while (i < len && s[i] != '\n') i++;
        } else {
            if (c == open) depth++;
            else if (c == close && --depth == 0) return i;
            i++;
        }
    }
    return len;
}

/* From s[i] just after an opening '`', the index of the closing one, or len. */
static size_t backtick_end(const char *s, size_t len, size_t i) {
    while (i < len && s[i] != '`') i += (s[i] == '\\') ? 2 : 1;
    return i < len ? i : len;
}

/* From s[i] just after an opening '`', the index just after the closing one, or len. */
static size_t skip_backtick(const char *s, size_t len, size_t i) {
    i = backtick_end(s, len, i);
    return i < len ? i + 1 : len;
}

/* From s[i] just after an opening '"', the index just after the closing one, or len. */
static size_t skip_dquote(const char *s, size_t len, size_t i) {
    while (i < len && s[i] != '"') {
        if (s[i] == '\\') {
            i += 2;
        } else if (s[i] == '`') {
            i = skip_backtick(s, len, i + 1);
        } else if (s[i] == '$' && i + 1 < len && (s[i + 1] == '(' || s[i + 1] == '{')) {
            i = match_close(s, len, i + 2, s[i + 1], s[i + 1] == '(' ? ')' : '}');
            if (i < len) i++;
        } else {
            i++;
        }
    }
    return i < len ? i + 1 : len;
}

static size_t match_paren(const char *s, size_t len, size_t i) {
    return match_close(s, len, i, '(', ')');
}

/* Checks the code of a substitution; a substitution must be a read-only query. */
static int check_subst(struct vctx *v, const char *s, size_t len, int depth, const char *kind,
                       unsigned *flags) {
    struct inner in;
    memset(&in, 0, sizeof in);
    if (depth + 1 >= MAX_DEPTH)
        return cx__vd_reject(v, "nests command substitutions too deeply to be checked");
    if (cx__vd_check_text(v, s, len, depth + 1, &in)) return 1;
    if (in.unsafe)
        return cx__vd_reject(v, "runs '%s' in a %s, which is not a read-only query", in.name, kind);
    *flags |= W_SUBST;
    if (in.dl) *flags |= W_DL;
    if (in.envp && !in.other) *flags |= W_ENVP;
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
        if (e >= len) return cx__vd_reject(v, "has an unterminated $(( arithmetic expansion");
        if (memchr(s + j + 2, '`', e - j - 2) || strstr_n(s + j + 2, e - j - 2, "$("))
            return cx__vd_reject(v, "hides a command substitution inside an arithmetic expansion");
        *i = (e + 1 < len && s[e + 1] == ')') ? e + 2 : e + 1;
        w->flags |= W_VAR;
        return put(L, MK_DYN) ? 0 : cx__vd_reject(v, "is too long to check");
    }
    if (j < len && s[j] == '(') {
        size_t e = match_paren(s, len, j + 1);
        if (e >= len) return cx__vd_reject(v, "has an unterminated $( command substitution");
        if (check_subst(v, s + j + 1, e - j - 1, depth, "command substitution", &w->flags))
            return 1;
        *i = e + 1;
        return put(L, MK_DYN) ? 0 : cx__vd_reject(v, "is too long to check");
    }
    if (j < len && s[j] == '{') {
        size_t e = match_close(s, len, j + 1, '{', '}');
        if (e >= len) return cx__vd_reject(v, "has an unterminated ${ expansion");
        const char *in = s + j + 1;
        size_t n = e - j - 1;
        char mk = MK_DYN;
        size_t nl = 0;
        while (nl < n && is_name_char(in[nl])) nl++;
        const char *known = nl == n ? cx__vd_lookup_var(v, in, n) : NULL;
        if (known) {
            *i = e + 1;
            w->flags |= W_VAR;
            if (!dq && strpbrk(known, " \t\n")) w->flags |= W_SPLIT;
            return put_str(L, known) ? 0 : cx__vd_reject(v, "is too long to check");
        }
        if (!dq && nl == 3 && n == 3 && memcmp(in, "IFS", 3) == 0)
            return cx__vd_reject(v, "expands $IFS unquoted, which hides where words begin and end");
        /* ${HOME}, and ${HOME%...} and the like: somewhere at or above a home directory. */
        if (nl == 4 && memcmp(in, "HOME", 4) == 0) mk = MK_HOME;
        else if (memchr(in, '`', n) || strstr_n(in, n, "$(") || strstr_n(in, n, "<(")) {
            /* ${x:-$(cmd)}: check the whole inside as code; the substitution must be safe. */
            if (check_subst(v, in, n, depth, "parameter expansion", &w->flags)) return 1;
        }
        w->flags |= W_VAR;
        *i = e + 1;
        return put(L, mk) ? 0 : cx__vd_reject(v, "is too long to check");
    }
    if (j < len && is_name_start(s[j])) {
        size_t e = j;
        while (e < len && is_name_char(s[e])) e++;
        char mk = (e - j == 4 && memcmp(s + j, "HOME", 4) == 0) ? MK_HOME : MK_DYN;
        const char *known = cx__vd_lookup_var(v, s + j, e - j);
        w->flags |= W_VAR;
        *i = e;
        if (known) {
            if (!dq && strpbrk(known, " \t\n")) w->flags |= W_SPLIT;
            return put_str(L, known) ? 0 : cx__vd_reject(v, "is too long to check");
        }
        if (!dq && e - j == 3 && memcmp(s + j, "IFS", 3) == 0)
            return cx__vd_reject(v, "expands $IFS unquoted, which hides where words begin and end");
        return put(L, mk) ? 0 : cx__vd_reject(v, "is too long to check");
    }
    if (j < len && strchr("0123456789@*#?-$!", s[j])) {
        w->flags |= W_VAR;
        *i = j + 1;
        /* Inside a function call the positional parameters are known (validate_indirect.c);
         * "$@" is split into words even when quoted, as bash keeps each argument a word. */
        const char *known = strchr("0123456789@*", s[j]) ? cx__vd_lookup_var(v, s + j, 1) : NULL;
        if (known) {
            if ((!dq || s[j] == '@') && strpbrk(known, " \t\n")) w->flags |= W_SPLIT;
            return put_str(L, known) ? 0 : cx__vd_reject(v, "is too long to check");
        }
        return put(L, MK_DYN) ? 0 : cx__vd_reject(v, "is too long to check");
    }
    *i = j; /* a lone '$' is literal */
    return put(L, '$') ? 0 : cx__vd_reject(v, "is too long to check");
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
                if (!nd && !stop && !put(L, '\\')) return cx__vd_reject(v, "is too long to check");
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
            if (!put(L, (char)c)) return cx__vd_reject(v, "is too long to check");
        }
    }
    if (k >= len) return cx__vd_reject(v, "has an unterminated $' quote, so it cannot be checked");
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
            if (e >= len) return cx__vd_reject(v, "has an unterminated process substitution");
            w->flags |= W_PROC;
            if (check_subst(v, s + k + 2, e - k - 2, depth, "process substitution", &w->flags))
                return 1;
            if (!put(L, MK_DYN)) return cx__vd_reject(v, "is too long to check");
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
            if (k + 1 < len && !put(L, s[k + 1])) return cx__vd_reject(v, "is too long to check");
            k += 2;
        } else if (c == '\'') {
            const char *q = memchr(s + k + 1, '\'', len - k - 1);
            if (!q) return cx__vd_reject(v, "has an unterminated quote, so it cannot be checked");
            w->flags |= W_QUOTED;
            for (const char *p = s + k + 1; p < q; p++)
                if (!put(L, *p == MK_DYN || *p == MK_HOME ? '?' : *p))
                    return cx__vd_reject(v, "is too long to check");
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
                if (k >= len) return cx__vd_reject(v, "has an unterminated quote, so it cannot be checked");
                char d = s[k];
                if (d == '"') {
                    k++;
                    break;
                }
                if (d == '\\' && k + 1 < len && strchr("$`\"\\\n", s[k + 1])) {
                    if (s[k + 1] != '\n' && !put(L, s[k + 1])) return cx__vd_reject(v, "is too long to check");
                    k += 2;
                } else if (d == '$') {
                    if (parse_dollar(v, L, s, len, &k, depth, true, w)) return 1;
                } else if (d == '`') {
                    size_t e = backtick_end(s, len, k + 1);
                    if (e >= len) return cx__vd_reject(v, "has an unterminated backtick substitution");
                    if (check_backtick(v, s + k + 1, e - k - 1, depth, &w->flags)) return 1;
                    if (!put(L, MK_DYN)) return cx__vd_reject(v, "is too long to check");
                    k = e + 1;
                } else {
                    if (!put(L, d == MK_DYN || d == MK_HOME ? '?' : d)) return cx__vd_reject(v, "is too long to check");
                    k++;
                }
            }
        } else if (c == '$') {
            if (parse_dollar(v, L, s, len, &k, depth, false, w)) return 1;
        } else if (c == '`') {
            size_t e = backtick_end(s, len, k + 1);
            if (e >= len) return cx__vd_reject(v, "has an unterminated backtick substitution");
            if (check_backtick(v, s + k + 1, e - k - 1, depth, &w->flags)) return 1;
            if (!put(L, MK_DYN)) return cx__vd_reject(v, "is too long to check");
            k = e + 1;
        } else if (c == '~' && (first || (k > *i && (s[k - 1] == '=' || s[k - 1] == ':')))) {
            /* Tilde expansion: ~, ~/..., ~user, ~user/... all name a home directory. */
            size_t e = k + 1;
            while (e < len && (is_name_char(s[e]) || s[e] == '-' || s[e] == '.')) e++;
            if (e >= len || s[e] == '/' || is_blank(s[e]) || is_meta(s[e]) || s[e] == ':') {
                if (!put(L, MK_HOME)) return cx__vd_reject(v, "is too long to check");
                k = e;
            } else {
                if (!put(L, '~')) return cx__vd_reject(v, "is too long to check");
                k++;
            }
        } else {
            if (c == '{') w->flags |= W_BRACE;
            if (!put(L, c == MK_DYN || c == MK_HOME ? '?' : c)) return cx__vd_reject(v, "is too long to check");
            k++;
        }
        first = false;
    }
    w->raw_len = k - *i;
    w->val_len = L->used - start_used;
    if (!put(L, '\0')) return cx__vd_reject(v, "is too long to check");
    *i = k;
    return 0;
}

/* Replaces word i by the m words in parts (arena strings). */
static int replace_word(struct vctx *v, struct level *L, size_t i, char **parts, size_t m) {
    if (L->nw - 1 + m > MAX_WORDS) return cx__vd_reject(v, "has too many words to check");
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
        if (++guard > 4 * MAX_WORDS) return cx__vd_reject(v, "has too many words to check");
        if (w->val_len == 0 && !(w->flags & W_QUOTED)) {
            /* An unquoted expansion of an empty value ("X=; $X rm -rf /") is no word at all:
             * bash drops it, and the next word becomes the command. */
            if (replace_word(v, L, i, parts, 0)) return 1;
            i--;
            continue;
        }
        if ((w->flags & W_SPLIT) && cx__vd_is_assignment(w)) w->flags &= ~W_SPLIT; /* no splitting */
        if (w->flags & W_SPLIT) {
            const char *p = w->val;
            while (*p) {
                while (*p == ' ' || *p == '\t' || *p == '\n') p++;
                if (!*p) break;
                const char *st = p;
                while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
                if (m == MAX_WORDS) return cx__vd_reject(v, "has too many words to check");
                parts[m++] = L->arena + L->used;
                for (const char *q = st; q < p; q++)
                    if (!put(L, *q)) return cx__vd_reject(v, "is too long to check");
                if (!put(L, '\0')) return cx__vd_reject(v, "is too long to check");
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
                if (m == MAX_WORDS) return cx__vd_reject(v, "has too many words to check");
                parts[m++] = L->arena + L->used;
                for (const char *q = val; q < ob; q++)
                    if (!put(L, *q)) return cx__vd_reject(v, "is too long to check");
                for (const char *q = alt; q < p; q++)
                    if (!put(L, *q)) return cx__vd_reject(v, "is too long to check");
                if (!put_str(L, cb + 1) || !put(L, '\0')) return cx__vd_reject(v, "is too long to check");
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

int cx__vd_check_simple(struct vctx *v, struct level *L, int depth, struct inner *info,
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
    bool to_shell = false, dl = false, dec = false;
    char lang[16] = "";
    for (;;) {
        struct simple_out o;
        if (cx__vd_check_simple(v, L, depth, info, &o)) return 1;
        to_shell |= o.to_shell;
        if (o.lang[0]) memcpy(lang, o.lang, sizeof lang);
        dl |= o.dl;
        dec |= o.dec;
        if (o.cmd_at >= L->nw || !may_vanish(&L->w[o.cmd_at])) break;
        memmove(&L->w[o.cmd_at], &L->w[o.cmd_at + 1], (L->nw - o.cmd_at - 1) * sizeof L->w[0]);
        L->nw--;
    }

    /* Here-documents of this command go to a shell when the command is one. */
    for (size_t i = 0; i < L->nhd; i++)
        if (L->hd[i].owner == L->ncmd) {
            L->hd[i].to_shell = to_shell;
            memcpy(L->hd[i].lang, lang, sizeof lang);
        }

    bool next_dl = sep == SEP_PIPE && (L->pipe_dl || dl);
    bool next_dec = sep == SEP_PIPE && (L->pipe_dec || dec);
    L->in_pipe = sep == SEP_PIPE;
    L->pipe_dl = next_dl;
    L->pipe_dec = next_dec;
    /* What an echo or printf writes into the pipe, for a reader that runs it (at). */
    L->pipe_text_ok = sep == SEP_PIPE && L->echo_ok;
    if (L->pipe_text_ok) memcpy(L->pipe_text, L->echo_text, sizeof L->pipe_text);
    L->echo_ok = false;
    L->ncmd++;
    L->nw = 0;
    L->nr = 0;
    L->used = 0;
    return 0;
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
            if (e >= len) return cx__vd_reject(v, "has an unterminated $( in a here-document");
            if (s[i + 2] != '(' &&
                check_subst(v, s + i + 2, e - i - 2, depth, "command substitution", &flags))
                return 1;
            i = e;
        } else if (s[i] == '`') {
            size_t e = backtick_end(s, len, i + 1);
            if (e >= len) return cx__vd_reject(v, "has an unterminated backtick in a here-document");
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
        if (cx__vd_check_content(v, s + start, body_end - start)) return 1;
        if (hd->lang[0]) {
            if (cx__vd_check_script(v, hd->lang, s + start, body_end - start, depth)) return 1;
        } else if (hd->to_shell) {
            if (cx__vd_check_code(v, s + start, body_end - start, depth)) return 1;
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
        return cx__vd_reject(v, "has a redirection without a target");
    struct word t;
    if (parse_word(v, L, s, len, &k, depth, &t)) return 1;
    *i = k;
    if (heredoc) {
        if (L->nhd >= MAX_HEREDOCS) return cx__vd_reject(v, "has too many here-documents to check");
        struct heredoc *hd = &L->hd[L->nhd++];
        snprintf(hd->delim, sizeof hd->delim, "%s", t.val);
        hd->quoted = (t.flags & W_QUOTED) != 0;
        hd->strip_tabs = strip;
        hd->to_shell = false;
        hd->lang[0] = '\0';
        hd->owner = L->ncmd;
        return 0;
    }
    if (kind == R_DUP) {
        /* n>&m and n>&- duplicate descriptors; ">& file" writes to the file. */
        bool digits = t.val_len > 0 && strspn(t.val, "0123456789-") == t.val_len;
        if (!digits) kind = R_OUT;
        else return 0;
    }
    if (L->nr >= MAX_REDIRS) return cx__vd_reject(v, "has too many redirections to check");
    L->r[L->nr].kind = kind;
    L->r[L->nr].t = t;
    L->nr++;
    return 0;
}

/*
 * "name() { body }", "name() ( body )" and "function name { body }": remembers the body for
 * the calls (validate_indirect.c). s[b] is the first character after "name()" or
 * "function name"; returns the index where the body starts, so that the body is also read
 * as ordinary commands.
 */
static size_t note_function(struct vctx *v, const char *name, size_t nl, const char *s,
                            size_t len, size_t b) {
    size_t p = b;
    while (p < len && (is_blank(s[p]) || s[p] == '\n')) p++;
    if (p + 1 < len && s[p] == '(' && s[p + 1] == ')') { /* function name() { ... } */
        p += 2;
        while (p < len && (is_blank(s[p]) || s[p] == '\n')) p++;
    }
    if (p >= len || (s[p] != '{' && s[p] != '(')) return b;
    size_t e = match_close(s, len, p + 1, s[p], s[p] == '{' ? '}' : ')');
    if (e >= len) return b;
    cx__vd_define_function(v, name, nl, s + p + 1, e - p - 1);
    return p;
}

int cx__vd_check_text(struct vctx *v, const char *s, size_t len, int depth, struct inner *info) {
    struct level L;
    L.nw = L.nr = L.nhd = L.ncmd = L.used = 0;
    L.in_pipe = L.pipe_dl = L.pipe_dec = L.pipe_text_ok = L.echo_ok = false;
    if (cx__vd_fork_bomb(s, len))
        return cx__vd_reject(v, "defines a fork bomb (a function that keeps starting copies of itself)");
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
        if (c == '(' && L.nw == 1 && !(L.w[0].flags & W_QUOTED) && L.nr == 0) {
            size_t q = i + 1;
            while (q < len && is_blank(s[q])) q++;
            if (q < len && s[q] == ')') { /* name() ...: a function definition */
                char nm[32];
                size_t nl = L.w[0].val_len < sizeof nm ? L.w[0].val_len : 0;
                memcpy(nm, L.w[0].val, nl);
                L.nw = 0; /* the name is not a command */
                L.used = 0;
                note_function(v, nm, nl, s, len, q + 1);
                i = q + 1;
                continue;
            }
        }
        if (c == '(' && L.nw >= 1 && !(i > 0 && (s[i - 1] == '<' || s[i - 1] == '>'))) {
            /* After words, '(' is only an array ("a=(1 2)"), "for ((", "case x in (pat)" and
             * the like; anything else is a syntax error to bash or an extended glob, and a
             * function definition the shell would refuse ("$X f() { ...; }") must not be read
             * as something else. */
            const struct word *last = &L.w[L.nw - 1];
            bool ok = (last->val_len && last->val[last->val_len - 1] == '=') ||
                      cx__vd_is_reserved(last) ||
                      (!(last->flags & W_QUOTED) &&
                       (streq(last->val, "in") || streq(last->val, "select") || streq(last->val, "for")));
            if (!ok)
                return cx__vd_reject(v, "has '(' after a word, which the shell refuses as a syntax "
                                        "error or reads as an extended glob that cannot be checked");
        }
        if (L.nw == 0 && L.nr == 0 && i + 9 <= len && memcmp(s + i, "function", 8) == 0 &&
            is_blank(s[i + 8])) {
            size_t p = i + 9;
            while (p < len && is_blank(s[p])) p++;
            size_t nb = p;
            while (p < len && !is_blank(s[p]) && !is_meta(s[p]) && !strchr("{}'\"$`\\", s[p])) p++;
            if (p > nb) {
                i = note_function(v, s + nb, p - nb, s, len, p);
                if (i == p && (p >= len || s[p] != '(')) i = p;
                continue;
            }
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
        if (L.nw >= MAX_WORDS) return cx__vd_reject(v, "has too many words to check");
        if (parse_word(v, &L, s, len, &i, depth, &L.w[L.nw])) return 1;
        L.nw++;
    }
}
