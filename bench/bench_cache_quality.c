/*
 * bench_cache_quality.c - how trustworthy similarity hits are: precision and recall of the
 * semantic cache on the labelled corpus tests/data/cache_pairs.tsv (issue 13).
 *
 * Both matchers are measured in one run on the same corpus: the seed's whole-prompt embedding
 * ("embedding", entity_match 0) and the entity-aware one ("entity", entity_match 1).
 * For every pair the cached prompt is put into an empty cache and the query prompt looked up
 * through the real cache (cx_cache_put / cx_cache_get at the threshold given, default the
 * cache's), so the figures at that threshold are the cache's own. A similarity hit on a "hit"
 * pair is a true positive, on a "miss" pair a false positive. The precision/recall curve across
 * thresholds comes from the score the matcher compares with the threshold
 * (cx_cache_similarity), computed for every pair once; at the measured threshold the score and
 * the cache must agree (checked, printed).
 *
 * The lookup rate of both matchers (one thread, 500 entries made from the corpus's cached
 * prompts, its query prompts looked up) is measured in alternating rounds of the same run.
 *
 * Usage: bench_cache_quality [--corpus FILE] [--threshold T] [--csv FILE] [--png FILE]
 *                            [--rate-seconds S]
 *   --csv   the curves, one line per threshold 0.50..1.00 (default bench_cache_quality.csv)
 *   --png   a plot of the curves, drawn with gnuplot when it is on PATH
 *           (default bench_cache_quality.png)
 *   --rate-seconds  length of one lookup-rate round (default 0.3; 0: no rate measured)
 * Exit status 0 unless the corpus cannot be read or the cache fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"

#ifndef CX_CORPUS_DIR
#define CX_CORPUS_DIR "tests/data"
#endif

#define MATCHERS 2
static const char *const k_matcher[MATCHERS] = {"embedding", "entity"};

struct pair {
    char *category;
    int hit; /* expected */
    char *a, *b;
    double score[MATCHERS];
    int got[MATCHERS]; /* the cache's answer at the threshold: 1 similarity hit */
};

/* Reads the corpus; returns the number of pairs or -1 (message printed). */
static int load(const char *path, struct pair **out) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 512, n = 0;
    struct pair *v = calloc(cap, sizeof *v);
    char line[4096];
    int lineno = 0;
    while (v && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *field[4];
        int nf = 0;
        for (char *p = line; nf < 4; nf++) {
            field[nf] = p;
            char *tab = strchr(p, '\t');
            if (tab == NULL) {
                nf++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        if (nf != 4 || (strcmp(field[1], "hit") != 0 && strcmp(field[1], "miss") != 0)) {
            fprintf(stderr, "%s:%d: want category<TAB>hit|miss<TAB>prompt<TAB>prompt\n", path,
                    lineno);
            fclose(f);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            struct pair *nv = realloc(v, cap * sizeof *v);
            if (nv == NULL) break;
            v = nv;
        }
        v[n].category = strdup(field[0]);
        v[n].hit = strcmp(field[1], "hit") == 0;
        v[n].a = strdup(field[2]);
        v[n].b = strdup(field[3]);
        n++;
    }
    fclose(f);
    *out = v;
    return v ? (int)n : -1;
}

struct counts {
    int tp, fp, fn, tn;
};

static void tally(struct counts *c, int expect_hit, int got_hit) {
    if (expect_hit) got_hit ? c->tp++ : c->fn++;
    else got_hit ? c->fp++ : c->tn++;
}

static double precision(const struct counts *c) {
    return c->tp + c->fp ? (double)c->tp / (c->tp + c->fp) : 1.0;
}
static double recall(const struct counts *c) {
    return c->tp + c->fn ? (double)c->tp / (c->tp + c->fn) : 1.0;
}

/* Runs every pair through a real cache with options co; fills score[m] and got[m]. */
static int measure(struct pair *pairs, int n, const struct cx_cache_options *co, int m) {
    char path[512];
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/bench_cache_quality_%d_%d.db", dir, (int)getpid(), m);
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    struct cx_pool *pool;
    struct cx_cache *cache;
    struct cx_errinfo ei;
    if (cx_pool_new(&po, &pool, &ei) < 0 || cx_cache_new(pool, co, &cache, &ei) < 0) {
        fprintf(stderr, "bench_cache_quality: %s\n", ei.msg);
        return 1;
    }
    const char *sys = "You are a Linux package assistant.";
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct pair *p = &pairs[i];
        struct cx_cache_key ka = {"openai", "gpt-4o", sys, p->a};
        struct cx_cache_key kb = {"openai", "gpt-4o", sys, p->b};
        char *json = NULL;
        int similar = 0;
        rc = cx_cache_put(cache, &ka, "[\"cached answer\"]", &ei);
        if (rc == 0) {
            rc = cx_cache_get(cache, &kb, &json, &similar, &ei);
            p->got[m] = rc == 0 && similar;
            if (rc == CX_ENOENT) rc = 0;
            cx_free(json);
        }
        if (rc == 0) rc = cx_cache_clear(cache, &ei);
        if (rc < 0) fprintf(stderr, "bench_cache_quality: %s\n", ei.msg);
        p->score[m] = cx_cache_similarity(co, p->a, p->b);
    }
    cx_cache_free(cache);
    cx_pool_free(pool);
    char side[600];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return rc < 0;
}

/* Prints matcher m's figures at the threshold, from the cache itself. */
static void report(const struct pair *pairs, int n, const struct cx_cache_options *co, int m,
                   const char *corpus) {
    struct counts all = {0};
    int nhit = 0, disagree = 0;
    for (int i = 0; i < n; i++) {
        tally(&all, pairs[i].hit, pairs[i].got[m]);
        nhit += pairs[i].hit;
        if ((pairs[i].score[m] >= co->similarity_threshold) != pairs[i].got[m]) disagree++;
    }
    printf("== matcher %s: %s, %d pairs (%d must hit, %d must miss), threshold %.3f\n",
           k_matcher[m], corpus, n, nhit, n - nhit, co->similarity_threshold);
    printf("%-16s %5s %6s %9s\n", "category", "pairs", "expect", "hits");
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i; j++)
            if (strcmp(pairs[j].category, pairs[i].category) == 0) first = 0;
        if (!first) continue;
        int cnt = 0, hits = 0;
        for (int j = i; j < n; j++)
            if (strcmp(pairs[j].category, pairs[i].category) == 0) {
                cnt++;
                hits += pairs[j].got[m];
            }
        printf("%-16s %5d %6s %5d (%5.1f %%)\n", pairs[i].category, cnt,
               pairs[i].hit ? "hit" : "miss", hits, 100.0 * hits / cnt);
    }
    printf("%s at threshold %.3f: precision %.2f %% (%d true, %d false similarity hits), "
           "paraphrase recall %.2f %% (%d of %d)\n",
           k_matcher[m], co->similarity_threshold, 100 * precision(&all), all.tp, all.fp,
           100 * recall(&all), all.tp, all.tp + all.fn);
    printf("score and cache disagree on %d pairs at the threshold\n", disagree);
    for (int i = 0; i < n; i++)
        if (!pairs[i].hit && pairs[i].got[m])
            printf("  false hit (%s, score %.3f): '%s' ~ '%s'\n", pairs[i].category,
                   pairs[i].score[m], pairs[i].a, pairs[i].b);
    if (getenv("CX_QUALITY_MISSES"))
        for (int i = 0; i < n; i++)
            if (pairs[i].hit && !pairs[i].got[m])
                printf("  missed paraphrase (%s, score %.3f): '%s' ~ '%s'\n", pairs[i].category,
                       pairs[i].score[m], pairs[i].a, pairs[i].b);
}

/* ---- lookup rate ---- */

#define RATE_ENTRIES 500
#define RATE_ROUNDS 5

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Opens a cache for matcher m holding RATE_ENTRIES prompts made from the corpus's cached
 * prompts (a host suffix past the corpus's size keeps them distinct). */
static struct cx_cache *rate_cache(const struct pair *pairs, int n, struct cx_cache_options co,
                                   int m, struct cx_pool **pool, char *path, size_t pn) {
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, pn, "%s/bench_cache_quality_rate_%d_%d.db", dir, (int)getpid(), m);
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    struct cx_cache *cache;
    struct cx_errinfo ei;
    co.entity_match = m;
    co.max_entries = RATE_ENTRIES;
    if (cx_pool_new(&po, pool, &ei) < 0 || cx_cache_new(*pool, &co, &cache, &ei) < 0) {
        fprintf(stderr, "bench_cache_quality: %s\n", ei.msg);
        return NULL;
    }
    char prompt[4200];
    for (int i = 0; i < RATE_ENTRIES; i++) {
        if (i < n) snprintf(prompt, sizeof prompt, "%s", pairs[i % n].a);
        else snprintf(prompt, sizeof prompt, "%s on host-%d", pairs[i % n].a, i / n);
        struct cx_cache_key k = {"openai", "gpt-4o", "You are a Linux package assistant.", prompt};
        if (cx_cache_put(cache, &k, "[\"cached answer\"]", &ei) < 0) {
            fprintf(stderr, "bench_cache_quality: %s\n", ei.msg);
            cx_cache_free(cache);
            return NULL;
        }
    }
    return cache;
}

/* One round: looks up the corpus's query prompts (exact misses: similarity scans) for `seconds`
 * on this thread; returns lookups per wall second and per CPU second. */
static void rate_round(struct cx_cache *cache, const struct pair *pairs, int n, double seconds,
                       double *wall, double *cpu) {
    char prompt[4200];
    long ops = 0;
    double c0 = thread_cpu_s();
    uint64_t t0 = cx_now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0;; i++) {
        int e = i % RATE_ENTRIES;
        if (e < n) snprintf(prompt, sizeof prompt, "%s", pairs[e % n].b);
        else snprintf(prompt, sizeof prompt, "%s on host-%d", pairs[e % n].b, e / n);
        struct cx_cache_key k = {"openai", "gpt-4o", "You are a Linux package assistant.", prompt};
        char *json = NULL;
        int similar = 0;
        (void)cx_cache_get(cache, &k, &json, &similar, NULL);
        cx_free(json);
        ops++;
        if ((ops & 255) == 0 && cx_now_ns() >= end) break;
    }
    double w = cx_elapsed_s(t0, cx_now_ns()), c = thread_cpu_s() - c0;
    *wall = ops / w;
    *cpu = c > 0 ? ops / c : 0;
}

/* Both matchers' lookup rates at RATE_ENTRIES entries on one thread, in alternating rounds of
 * the same run (medians printed), so a burst of load from other processes does not decide. */
static int measure_rate(const struct pair *pairs, int n, const struct cx_cache_options *co,
                        double seconds) {
    struct cx_pool *pool[MATCHERS];
    struct cx_cache *cache[MATCHERS];
    char path[MATCHERS][512];
    for (int m = 0; m < MATCHERS; m++) {
        cache[m] = rate_cache(pairs, n, *co, m, &pool[m], path[m], sizeof path[m]);
        if (cache[m] == NULL) return 1;
    }
    double wall[MATCHERS][RATE_ROUNDS], cpu[MATCHERS][RATE_ROUNDS];
    for (int r = 0; r < RATE_ROUNDS; r++)
        for (int m = 0; m < MATCHERS; m++)
            rate_round(cache[m], pairs, n, seconds, &wall[m][r], &cpu[m][r]);
    double mw[MATCHERS], mc[MATCHERS];
    for (int m = 0; m < MATCHERS; m++) {
        qsort(wall[m], RATE_ROUNDS, sizeof(double), cmp_double);
        qsort(cpu[m], RATE_ROUNDS, sizeof(double), cmp_double);
        mw[m] = wall[m][RATE_ROUNDS / 2];
        mc[m] = cpu[m][RATE_ROUNDS / 2];
        printf("lookups %-9s 1 thread, %d entries: %9.0f/s, %9.0f per CPU-second (medians of %d "
               "alternating rounds of %.2f s)\n",
               k_matcher[m], RATE_ENTRIES, mw[m], mc[m], RATE_ROUNDS, seconds);
        cx_cache_free(cache[m]);
        cx_pool_free(pool[m]);
        char side[600];
        unlink(path[m]);
        snprintf(side, sizeof side, "%s-wal", path[m]);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path[m]);
        unlink(side);
    }
    printf("lookups entity/embedding: %.2fx per wall second, %.2fx per CPU-second\n",
           mw[1] / mw[0], mc[1] / mc[0]);
    return 0;
}

int main(int argc, char **argv) {
    const char *corpus = CX_CORPUS_DIR "/cache_pairs.tsv";
    const char *csv = "bench_cache_quality.csv", *png = "bench_cache_quality.png";
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    double rate_s = 0.3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--corpus") == 0) corpus = argv[i + 1];
        else if (strcmp(argv[i], "--threshold") == 0)
            co.similarity_threshold = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--csv") == 0) csv = argv[i + 1];
        else if (strcmp(argv[i], "--png") == 0) png = argv[i + 1];
        else if (strcmp(argv[i], "--rate-seconds") == 0) rate_s = strtod(argv[i + 1], NULL);
        else {
            fprintf(stderr, "usage: %s [--corpus FILE] [--threshold T] [--csv FILE] [--png FILE] "
                    "[--rate-seconds S]\n",
                    argv[0]);
            return 2;
        }
    }
    struct pair *pairs = NULL;
    int n = load(corpus, &pairs);
    if (n <= 0) return 1;

    int rc = 0;
    double best_t[MATCHERS], best_r[MATCHERS];
    for (int m = 0; m < MATCHERS && rc == 0; m++) {
        co.entity_match = m;
        rc = measure(pairs, n, &co, m);
        if (rc == 0) report(pairs, n, &co, m, corpus);
    }
    if (rc) return 1;
    if (rate_s > 0 && measure_rate(pairs, n, &co, rate_s)) return 1;

    /* The curves, from the scores. */
    FILE *out = fopen(csv, "w");
    if (out == NULL) {
        perror(csv);
        return 1;
    }
    fprintf(out, "threshold");
    for (int m = 0; m < MATCHERS; m++)
        fprintf(out, ",%s_tp,%s_fp,%s_fn,%s_tn,%s_precision,%s_recall", k_matcher[m],
                k_matcher[m], k_matcher[m], k_matcher[m], k_matcher[m], k_matcher[m]);
    fprintf(out, "\n");
    for (int m = 0; m < MATCHERS; m++) best_t[m] = -1, best_r[m] = 0;
    for (int s = 50; s <= 100; s++) {
        double t = s / 100.0;
        fprintf(out, "%.2f", t);
        for (int m = 0; m < MATCHERS; m++) {
            struct counts c = {0};
            for (int i = 0; i < n; i++) tally(&c, pairs[i].hit, pairs[i].score[m] >= t - 1e-9);
            fprintf(out, ",%d,%d,%d,%d,%.4f,%.4f", c.tp, c.fp, c.fn, c.tn, precision(&c),
                    recall(&c));
            if (precision(&c) >= 0.995 && best_t[m] < 0) {
                best_t[m] = t;
                best_r[m] = recall(&c);
            }
        }
        fprintf(out, "\n");
    }
    fclose(out);
    printf("curves written to %s\n", csv);
    for (int m = 0; m < MATCHERS; m++) {
        if (best_t[m] >= 0)
            printf("%-9s lowest threshold with precision >= 99.5 %%: %.2f (recall %.1f %%)\n",
                   k_matcher[m], best_t[m], 100 * best_r[m]);
        else
            printf("%-9s no threshold up to 1.00 reaches precision 99.5 %%\n", k_matcher[m]);
    }
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        FILE *g = popen("gnuplot", "w");
        if (g) {
            fprintf(g,
                    "set terminal png size 900,540\nset output '%s'\nset datafile separator ','\n"
                    "set key bottom left\nset xlabel 'similarity threshold'\n"
                    "set ylabel 'fraction'\nset yrange [0:1.05]\nset grid\n"
                    "plot '%s' using 1:6 with lines lw 2 dt 2 title 'embedding precision', "
                    "'' using 1:7 with lines lw 2 dt 2 title 'embedding recall', "
                    "'' using 1:12 with lines lw 2 title 'entity precision', "
                    "'' using 1:13 with lines lw 2 title 'entity recall'\n",
                    png, csv);
            if (pclose(g) == 0) printf("plot written to %s\n", png);
        }
    }
    for (int i = 0; i < n; i++) {
        free(pairs[i].category);
        free(pairs[i].a);
        free(pairs[i].b);
    }
    free(pairs);
    return 0;
}
