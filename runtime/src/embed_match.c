/*
 * embed_match.c - the entity-aware view of a prompt that the semantic cache matches on
 * (cx_embed_analyze in cx/embed.h; issue 13).
 *
 * A prompt is split into tokens and every token gets one of three roles:
 *   - filler: words that never change the answer (articles, pronouns, politeness, question
 *     words, "package", "software", "please"): dropped;
 *   - content: common English words that may vary between paraphrases (web, proxy, server,
 *     user, boot...): compared by similarity, in the residual vector;
 *   - entity: everything the answer depends on and that must be identical: actions (install,
 *     remove, upgrade, purge, enable, disable, start, stop... after mapping synonyms such as
 *     "set up" -> install, "get rid of" -> remove, "turn off" -> disable), negation (not, no,
 *     never, without, don't... all become "not"), number words, and every token that is not a
 *     known English word or that has a digit or a character such as - . / : + = @ inside:
 *     package names, versions, numbers, paths, distributions, hosts, error identifiers.
 * Some fillers carry meaning, and the rules keep it: "from being" / "from getting" / "from" and
 * an action's -ing form is a negation ("keep the kernel from being updated"); "to", "from",
 * "into", "onto" mark the next entity with its direction ("to:/etc/b.conf"); an auxiliary
 * ("is", "has"...) with an action's -ed form adds the entity "(state)" ("is nginx installed?"
 * asks about a state, "install nginx" asks for an action); "or", "all", "some" (and synonyms)
 * are entities. Past a word followed by ": " ("Diagnose error: ...", "E: ...",
 * "Install package: ...") the text is an error message or a name: every word there except
 * the wrappers (articles, pronouns, politeness, question and help words) is an entity, so two
 * diagnose prompts match only when their messages have the same words.
 * Unknown words are entities on purpose: what the matcher does not understand must match
 * exactly, so it can only lose hits, never make wrong ones. Tokens are lowercased (except
 * tokens with a '/', which are paths) and English words are looked up also without an
 * inflection (-s, -es, -ed, -ing) and with one typo corrected (a letter missing, doubled
 * or two neighbours swapped, against words of five letters or more; only swaps for shorter
 * ones) when exactly one known word is that close.
 * The entities become a sorted, duplicate-free, space-separated string (the cache keys its
 * similarity candidates by it exactly); the content words become a signed hashed bag of words
 * with a constant bias component in dimension 0, L2-normalised, so two prompts with the same
 * entities and no content words have cosine 1, and one content word more or less lowers it.
 *
 * The word lists are built into hash tables once (pthread_once); after that everything is
 * read-only and allocation-free. It knows nothing of the cache, SQL or the stored embedding.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cx/embed.h"
#include "cx_internal.h"

/* ---- the word lists ---- */

enum { K_FILLER = 1, K_CONTENT, K_ENTITY, K_WRAP };

/* Wrappers: dropped everywhere, also inside an error message (below). */
static const char k_wrappers[] =
    "a an the this that these those it its it's itself my me mine myself our ours your yours "
    "you i i'm i'd i'll i've we us they them their he she his her him "
    "please pls plz kindly thanks thank thx cheers hi hello hey ok okay "
    "how what why do does did can could would "
    "help diagnose diagnosis fix fixes fixing solve resolve troubleshoot explain debug mean "
    "means meaning error errors issue problem message package packages pkg "
    "get gets got getting see seeing keep keeps";

/* Fillers: dropped outside an error message, entities inside one. */
static const char k_fillers[] =
    "will shall should may might must done doing be is are was "
    "were been being am have has had having "
    "how what which who whom whose why when where whether "
    "to for of on in at by from with into onto over about as so and but also then than too "
    "just only really very both "
    "there way best right correct proper properly simply easily exactly "
    "want wants wanted need needs needed like love wish mind try "
    "command commands terminal "
    "wrong happening happen happens say says "
    "package packages pkg software program programs tool tools utility utilities app apps "
    "application applications stuff thing things machine computer box pc laptop desktop system "
    "now quickly completely fully entirely again today soon already "
    "latest newest recent current version versions";

static const char k_content[] =
    "web server servers client proxy reverse secure securely production development dev test "
    "testing local locally remote service services daemon default new old stable official repo "
    "repository source binary file files data database user users root port firewall network "
    "boot startup login password account key support make shell mode name named status "
    "automatic automatically manual manually recommended hidden shared global globally "
    "everything config-files settings setting directory folder home run running "
    "image container cluster node backup logs log size owner document";

/* Synonyms of entity words: "canonical word word ...;", the canonical form first. */
static const char k_synonyms[] =
    "install install installation setup deploy add;"
    "remove remove uninstall delete erase;"
    "purge purge;"
    "upgrade upgrade update;"
    "downgrade downgrade;"
    "reinstall reinstall;"
    "enable enable activate;"
    "disable disable deactivate;"
    "start start launch;"
    "stop stop halt shutdown;"
    "restart restart reboot;"
    "reload reload;"
    "configure configure configuration reconfigure;"
    "not not no never without don't dont doesn't doesnt didn't didnt can't cant cannot won't wont "
    "isn't isnt aren't arent wasn't shouldn't shouldnt none nor neither;"
    /* Quantifiers and alternatives change what a command acts on ("some" vs "all" archives,
     * "nginx or apache2" vs "nginx and apache2"). */
    "all all every each entire whole;some some any several few;or or either;"
    /* Number words are entities in their own right, never typos of anything. */
    "zero zero;one one;two two;three three;four four;five five;six six;seven seven;eight eight;"
    "nine nine;ten ten;eleven eleven;twelve twelve;twenty twenty;thirty thirty;forty forty;"
    "fifty fifty;hundred hundred;thousand thousand;first first;second second;third third;"
    "half half;double double;single single;";

/* Phrases: "canonical word word ...;" (two to three words). */
static const char k_phrases[] =
    "install set up;remove get rid of;enable turn on;disable turn off;enable switch on;"
    "disable switch off;start bring up;start start up;stop shut down;backup back up;";

#define LEX_MAX 640
#define WORD_MAX 24
#define LEX_SLOTS 2048   /* power of two, > 2 * LEX_MAX */
#define DEL_SLOTS 16384  /* power of two, > 2 * deletions of every word */
#define PHRASE_MAX 16

struct lex {
    char w[WORD_MAX];
    unsigned char len, kind;
    short canon; /* index of the canonical word */
};

struct phrase {
    short canon;
    unsigned char n;
    char w[3][WORD_MAX];
};

static struct {
    struct lex lex[LEX_MAX];
    int nlex;
    unsigned short slot[LEX_SLOTS];     /* index + 1 into lex, 0: empty */
    struct {
        unsigned short word; /* index + 1, 0: empty */
        unsigned char pos;   /* the deleted position */
    } del[DEL_SLOTS];
    struct phrase phrases[PHRASE_MAX];
    int nphrases;
} g;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static uint64_t hash_bytes(const char *s, size_t n) { return cx__fnv1a64(s, n); }

/* Hash of s without its byte at pos. */
static uint64_t hash_without(const char *s, size_t n, size_t pos) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        if (i == pos) continue;
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int lookup(const char *w, size_t n) {
    if (n == 0 || n >= WORD_MAX) return -1;
    for (size_t s = hash_bytes(w, n) & (LEX_SLOTS - 1);; s = (s + 1) & (LEX_SLOTS - 1)) {
        unsigned short v = g.slot[s];
        if (v == 0) return -1;
        const struct lex *l = &g.lex[v - 1];
        if (l->len == n && memcmp(l->w, w, n) == 0) return v - 1;
    }
}

static int add_word(const char *w, size_t n, int kind, int canon) {
    if (n == 0 || n >= WORD_MAX) return -1;
    int have = lookup(w, n);
    if (have >= 0) return have; /* the first list that names a word decides its role */
    if (g.nlex >= LEX_MAX) abort(); /* the built-in lists outgrew LEX_MAX: a build error */
    int i = g.nlex++;
    struct lex *l = &g.lex[i];
    memcpy(l->w, w, n);
    l->w[n] = '\0';
    l->len = (unsigned char)n;
    l->kind = (unsigned char)kind;
    l->canon = (short)(canon < 0 ? i : canon);
    size_t s = hash_bytes(w, n) & (LEX_SLOTS - 1);
    while (g.slot[s]) s = (s + 1) & (LEX_SLOTS - 1);
    g.slot[s] = (unsigned short)(i + 1);
    return i;
}

/* Calls fn for every space-separated word of list[0..n). */
static void each_word(const char *list, size_t n, void (*fn)(const char *, size_t, void *),
                      void *arg) {
    size_t i = 0;
    while (i < n) {
        while (i < n && list[i] == ' ') i++;
        size_t b = i;
        while (i < n && list[i] != ' ') i++;
        if (i > b) fn(list + b, i - b, arg);
    }
}

static void add_filler(const char *w, size_t n, void *arg) {
    (void)arg;
    add_word(w, n, K_FILLER, -1);
}
static void add_wrapper(const char *w, size_t n, void *arg) {
    (void)arg;
    add_word(w, n, K_WRAP, -1);
}
static void add_content(const char *w, size_t n, void *arg) {
    (void)arg;
    add_word(w, n, K_CONTENT, -1);
}

struct syn_ctx {
    int canon;
};
static void add_synonym(const char *w, size_t n, void *arg) {
    struct syn_ctx *c = arg;
    int i = add_word(w, n, K_ENTITY, c->canon);
    if (c->canon < 0) c->canon = i;
}

struct phrase_ctx {
    struct phrase *p;
    int first;
};
static void add_phrase_word(const char *w, size_t n, void *arg) {
    struct phrase_ctx *c = arg;
    if (c->first) {
        c->p->canon = (short)lookup(w, n);
        c->first = 0;
    } else if (c->p->n < 3 && n < WORD_MAX) {
        memcpy(c->p->w[c->p->n], w, n);
        c->p->w[c->p->n][n] = '\0';
        c->p->n++;
    }
}

static void build(void) {
    /* Entities first: "no" or "second" must stay entities even if a list below repeats them. */
    for (const char *p = k_synonyms; *p;) {
        const char *e = strchr(p, ';');
        struct syn_ctx c = {-1};
        each_word(p, (size_t)(e - p), add_synonym, &c);
        p = e + 1;
    }
    each_word(k_wrappers, sizeof k_wrappers - 1, add_wrapper, NULL);
    each_word(k_fillers, sizeof k_fillers - 1, add_filler, NULL);
    each_word(k_content, sizeof k_content - 1, add_content, NULL);
    for (const char *p = k_phrases; *p && g.nphrases < PHRASE_MAX;) {
        const char *e = strchr(p, ';');
        struct phrase_ctx c = {&g.phrases[g.nphrases], 1};
        each_word(p, (size_t)(e - p), add_phrase_word, &c);
        if (c.p->canon >= 0 && c.p->n >= 2) g.nphrases++;
        p = e + 1;
    }
    /* Deletion neighbours of the words a typo may be corrected to (five letters or more). */
    for (int i = 0; i < g.nlex; i++) {
        const struct lex *l = &g.lex[i];
        if (l->len < 5 || strchr(l->w, '\'') || strchr(l->w, '-')) continue;
        for (size_t pos = 0; pos < l->len; pos++) {
            size_t s = hash_without(l->w, l->len, pos) & (DEL_SLOTS - 1);
            while (g.del[s].word) s = (s + 1) & (DEL_SLOTS - 1);
            g.del[s].word = (unsigned short)(i + 1);
            g.del[s].pos = (unsigned char)pos;
        }
    }
}

/* ---- typos and inflections ---- */

/* Records candidate word i; returns 0 to go on, -1 when two different words matched. */
static int candidate(int *found, int i) {
    if (*found >= 0 && g.lex[*found].canon != g.lex[i].canon) return -1;
    *found = i;
    return 0;
}

/* The single known word one typo away from w (see the top of the file), or -1. */
static int correct(const char *w, size_t n) {
    if (n < 4 || n + 1 >= WORD_MAX) return -1;
    int found = -1;
    char t[WORD_MAX];
    /* Two neighbours swapped. */
    for (size_t i = 0; i + 1 < n; i++) {
        if (w[i] == w[i + 1]) continue;
        memcpy(t, w, n);
        t[i] = w[i + 1];
        t[i + 1] = w[i];
        int k = lookup(t, n);
        if (k >= 0 && g.lex[k].kind != 0 && candidate(&found, k) < 0) return -1;
    }
    /* A letter doubled or inserted: w without one letter is a word of five letters or more. */
    if (n >= 6)
        for (size_t pos = 0; pos < n; pos++) {
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (i != pos) t[m++] = w[i];
            int k = lookup(t, m);
            if (k >= 0 && candidate(&found, k) < 0) return -1;
        }
    /* A letter missing: w is a word of five letters or more without one of its letters. */
    for (size_t s = hash_bytes(w, n) & (DEL_SLOTS - 1); g.del[s].word;
         s = (s + 1) & (DEL_SLOTS - 1)) {
        int k = g.del[s].word - 1;
        const struct lex *l = &g.lex[k];
        size_t pos = g.del[s].pos;
        if (l->len == n + 1 && memcmp(l->w, w, pos) == 0 &&
            memcmp(l->w + pos + 1, w + pos, n - pos) == 0 && candidate(&found, k) < 0)
            return -1;
    }
    return found;
}

/* The known word w is (also without an inflection, or with one typo), or -1. */
static int classify_word(const char *w, size_t n) {
    int k = lookup(w, n);
    if (k >= 0) return k;
    char t[WORD_MAX];
    if (n >= WORD_MAX) return -1;
    static const char *const suffixes[] = {"ing", "ed", "es", "s"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i]);
        if (n <= sl + 2 || memcmp(w + n - sl, suffixes[i], sl) != 0) continue;
        size_t m = n - sl;
        if ((k = lookup(w, m)) >= 0) return k;
        size_t j = 0; /* enabl(ing) -> enable, us(ed) -> use */
        for (; j < m && j + 1 < WORD_MAX; j++) t[j] = w[j];
        t[j] = 'e';
        if ((k = lookup(t, m + 1)) >= 0) return k;
        if (m >= 2 && w[m - 1] == w[m - 2] && (k = lookup(w, m - 1)) >= 0) return k; /* stopped */
    }
    return correct(w, n);
}

/* ---- tokens ---- */

static int is_alnum(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
/* Characters kept inside a token (between alphanumerics): versions, paths, hosts, options. */
static int is_inner(unsigned char c) { return c && strchr("-._+/:@=~%'", c) != NULL; }
static int is_lead(unsigned char c) { return c && strchr("/~.-", c) != NULL; }

struct tok {
    size_t off, len;
};

#define TOK_MAX 512

/* Splits text into tokens; returns how many (at most TOK_MAX; *more = 1 if there were more). */
static size_t tokenize(const char *s, size_t n, struct tok *t, int *more) {
    size_t nt = 0, i = 0;
    *more = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c) && !is_lead(c)) {
            i++;
            continue;
        }
        size_t b = i;
        while (i < n && (is_alnum((unsigned char)s[i]) || is_inner((unsigned char)s[i]) ||
                         (i == b && is_lead((unsigned char)s[i]))))
            i++;
        size_t e = i;
        while (e > b && strchr(".:'-", s[e - 1]) && !(e - b == 1 && s[b] == '/')) e--;
        int alnum = 0;
        for (size_t k = b; k < e && !alnum; k++) alnum = is_alnum((unsigned char)s[k]);
        if (!alnum) continue;
        if (nt == TOK_MAX) {
            *more = 1;
            break;
        }
        t[nt].off = b;
        t[nt].len = e - b;
        nt++;
    }
    return nt;
}

/* One word of an entity: points into text (raw) or the word lists. */
struct part {
    const char *s;
    size_t len;
    int lower;       /* lowercase s while writing */
    const char *pre; /* NULL, or the direction it is written after: "to:", "from:" */
};

/* An entity for the output: one word, or (in an error message) two neighbours, written a>b. */
struct item {
    struct part a, b; /* b.s NULL: one word */
};

static int lowered_equal(const char *a, size_t n, const char *w) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)w[i]) return 0;
    }
    return w[n] == '\0';
}

static int cmp_part(const struct part *a, const struct part *b) {
    if (a->s == NULL || b->s == NULL) return (a->s != NULL) - (b->s != NULL);
    if (a->pre != b->pre) {
        if (a->pre == NULL || b->pre == NULL) return a->pre == NULL ? -1 : 1;
        int d = strcmp(a->pre, b->pre);
        if (d) return d;
    }
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a->s[i], y = (unsigned char)b->s[i];
        if (a->lower && x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (b->lower && y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return x < y ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len;
}

static int cmp_item(const void *pa, const void *pb) {
    const struct item *a = pa, *b = pb;
    int d = cmp_part(&a->a, &b->a);
    return d ? d : cmp_part(&a->b, &b->b);
}

/* Bytes part p takes in the output. */
static size_t part_len(const struct part *p) {
    return p->s ? (p->pre ? strlen(p->pre) : 0) + p->len : 0;
}

static size_t write_part(char *out, const struct part *p) {
    size_t o = 0;
    if (p->pre) {
        memcpy(out, p->pre, strlen(p->pre));
        o = strlen(p->pre);
    }
    for (size_t k = 0; k < p->len; k++) {
        char c = p->s[k];
        out[o++] = (char)(p->lower && c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    return o;
}

/* Adds the entity word w; in an error message (strict) also the pair of it and the message's
 * previous word (*prev: its index in it, -1 for none), so the message's word order counts. */
static void emit(struct item *it, size_t *ni, struct part w, int strict, long *prev) {
    size_t at = (*ni)++;
    it[at] = (struct item){w, {NULL, 0, 0, NULL}};
    if (!strict) return;
    if (*prev >= 0) it[(*ni)++] = (struct item){it[*prev].a, w};
    *prev = (long)at;
}

static void add_content_vec(float *v, const char *w, size_t n) {
    uint64_t h = hash_bytes(w, n);
    v[1 + h % (CX_EMBED_DIM - 1)] += (h >> 63) ? -1.0f : 1.0f;
}

static const char *const k_actions[] = {"install", "remove",  "purge",   "upgrade",  "downgrade",
                                        "reinstall", "enable", "disable", "start",    "stop",
                                        "restart",  "reload",  "configure"};

static int is_action(const struct lex *l) {
    for (size_t i = 0; i < sizeof k_actions / sizeof k_actions[0]; i++)
        if (strcmp(l->w, k_actions[i]) == 0) return 1;
    return 0;
}

/* Lowercases the word token t of text into low (WORD_MAX bytes); 0 when it is no word. */
static int lower_word(const char *text, const struct tok *t, char *low) {
    if (t->len >= WORD_MAX) return 0;
    for (size_t k = 0; k < t->len; k++) {
        unsigned char c = (unsigned char)text[t->off + k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '\'')) return 0;
        low[k] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    low[t->len] = '\0';
    return 1;
}

/* "from being", "from getting" or "from" and an action's -ing form: a prevention ("keep the
 * kernel from being updated", "stop docker from starting"), so a negation. */
static int from_prevents(const char *text, const struct tok *next) {
    char low[WORD_MAX];
    if (!lower_word(text, next, low)) return 0;
    size_t n = next->len;
    if (strcmp(low, "being") == 0 || strcmp(low, "getting") == 0) return 1;
    if (n < 5 || strcmp(low + n - 3, "ing") != 0) return 0;
    int k = classify_word(low, n);
    return k >= 0 && g.lex[k].kind == K_ENTITY && is_action(&g.lex[g.lex[k].canon]);
}

static int is_aux(const char *w) {
    static const char *const aux[] = {"is", "are", "was", "were", "been", "being",
                                      "am", "has", "have", "had"};
    for (size_t i = 0; i < sizeof aux / sizeof aux[0]; i++)
        if (strcmp(w, aux[i]) == 0) return 1;
    return 0;
}

size_t cx_embed_analyze(const char *text, size_t len, char *entities, size_t cap,
                        float residual[CX_EMBED_DIM]) {
    pthread_once(&g_once, build);
    memset(residual, 0, sizeof(float) * CX_EMBED_DIM);
    residual[0] = 1.0f;
    if (text == NULL) len = 0;
    struct tok t[TOK_MAX];
    struct item it[2 * TOK_MAX + 1];
    int more = 0;
    size_t nt = len ? tokenize(text, len, t, &more) : 0, ni = 0;
    char low[WORD_MAX];
    /* strict: from a word followed by ": " on ("Diagnose error: ...", "E: ..."), the rest is an
     * error message (or a package name): every word but the wrappers is an entity, and so is
     * every pair of neighbours, so two messages match only with the same words (content words
     * and fillers included) in the same order. prev: the message's last word in it. dir: a pending
     * "to"/"from" for the next entity. aux, done_form: "is"/"has"... and an action's -ed
     * form outside a message: a question about a state ("is nginx installed?"), not a
     * request ("install nginx"). */
    int strict = 0, aux = 0, done_form = 0;
    long prev = -1;
    const char *dir = NULL;
    for (size_t i = 0; i < nt; i++) {
        const char *s = text + t[i].off;
        size_t n = t[i].len;
        size_t end = t[i].off + n;
        int opens = end < len && text[end] == ':' &&
                    (end + 1 == len || text[end + 1] == ' ' || text[end + 1] == '\t');
        if (opens) strict = 1;
        if (!lower_word(text, &t[i], low)) { /* digits, punctuation inside, or too long */
            emit(it, &ni, (struct part){s, n, memchr(s, '/', n) == NULL, dir}, strict, &prev);
            dir = NULL;
            continue;
        }
        int ph = -1;
        for (int p = 0; p < g.nphrases && ph < 0; p++) {
            const struct phrase *f = &g.phrases[p];
            if (i + f->n > nt || strcmp(low, f->w[0]) != 0) continue;
            int ok = 1;
            for (int k = 1; k < f->n && ok; k++)
                ok = t[i + k].len < WORD_MAX &&
                     lowered_equal(text + t[i + k].off, t[i + k].len, f->w[k]);
            if (ok) ph = p;
        }
        int k;
        if (ph >= 0) {
            k = g.phrases[ph].canon;
            i += g.phrases[ph].n - 1;
            end = t[i].off + t[i].len;
            if (end < len && text[end] == ':' &&
                (end + 1 == len || text[end + 1] == ' ' || text[end + 1] == '\t'))
                strict = 1;
        } else {
            k = classify_word(low, n);
        }
        if (k < 0) {
            emit(it, &ni, (struct part){s, n, 1, dir}, strict, &prev);
            dir = NULL;
            continue;
        }
        const struct lex *l = &g.lex[g.lex[k].canon];
        int kind = g.lex[k].kind;
        if (kind == K_FILLER && (strcmp(l->w, "to") == 0 || strcmp(l->w, "into") == 0 ||
                                 strcmp(l->w, "onto") == 0 || strcmp(l->w, "from") == 0)) {
            if (l->w[0] == 'f' && i + 1 < nt && from_prevents(text, &t[i + 1])) {
                emit(it, &ni, (struct part){"not", 3, 0, NULL}, strict, &prev);
                dir = NULL;
            } else {
                dir = l->w[0] == 'f' ? "from:" : "to:";
            }
        } else if (kind == K_ENTITY) {
            emit(it, &ni, (struct part){l->w, l->len, 0, NULL}, strict, &prev);
            dir = NULL;
            if (!strict && ph < 0 && n > 2 && strcmp(low + n - 2, "ed") == 0 && is_action(l))
                done_form = 1;
        } else if (kind == K_CONTENT || (kind == K_FILLER && strict)) {
            if (strict) emit(it, &ni, (struct part){l->w, l->len, 0, NULL}, strict, &prev);
            else add_content_vec(residual, l->w, l->len);
            dir = NULL;
        } else if (kind == K_FILLER && is_aux(l->w)) {
            aux = 1;
        }
    }
    if (aux && done_form) emit(it, &ni, (struct part){"(state)", 7, 0, NULL}, 0, &prev);
    /* Sorted and unique, so word order and repetition do not matter outside an error message;
     * past TOK_MAX tokens the rest of the text is one entity as written (stricter, never
     * looser). */
    qsort(it, ni, sizeof it[0], cmp_item);
    size_t o = 0;
    for (size_t i = 0; i < ni; i++) {
        if (i > 0 && cmp_item(&it[i - 1], &it[i]) == 0) continue;
        if (o + part_len(&it[i].a) + part_len(&it[i].b) + 3 > cap) return (size_t)-1;
        if (o) entities[o++] = ' ';
        o += write_part(entities + o, &it[i].a);
        if (it[i].b.s) {
            entities[o++] = '>';
            o += write_part(entities + o, &it[i].b);
        }
    }
    if (more && nt > 0) {
        size_t from = t[nt - 1].off + t[nt - 1].len, rest = len - from;
        if (o + rest + 2 > cap) return (size_t)-1;
        entities[o++] = ' ';
        memcpy(entities + o, text + from, rest);
        o += rest;
    }
    if (cap) entities[o] = '\0';
    double sum = 0.0;
    for (int d = 0; d < CX_EMBED_DIM; d++) sum += (double)residual[d] * residual[d];
    float inv = (float)(1.0 / sqrt(sum));
    for (int d = 0; d < CX_EMBED_DIM; d++) residual[d] *= inv;
    return o;
}
