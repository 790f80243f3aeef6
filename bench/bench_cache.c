/*
 * bench_cache.c - semantic cache throughput: exact and similarity lookups per second at N
 * entries on 1 and 2 threads (run side by side in one process, ratio printed), and puts per
 * second through the group-committing writer on 1 and several threads.
 *
 * Usage: bench_cache [--entries 500] [--seconds 1.0] [--rounds 3] [--writers 8] [--dir /tmp]
 *                    [--entity-match 0|1]
 * --entity-match 1 measures the entity-aware matcher (cx_cache_options.entity_match).
 * Lookups are measured in `rounds` alternating rounds of 1 thread then 2 threads (each `seconds`
 * long); the medians are printed with their ratio, so a burst of load from other processes
 * during one round does not decide it. Every figure printed is measured in this run; the
 * machine may be shared (the load average is printed before and after), so compare ratios
 * measured together rather than absolute numbers across runs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"

static const char *k_words[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "python",
                                "mysql", "apache", "git", "curl", "vim", "htop", "golang",
                                "rust", "java", "kafka", "zookeeper", "mongodb", "php", "ruby"};
#define NWORDS (sizeof k_words / sizeof k_words[0])

static const char *k_system = "You are a Linux system administration assistant. Reply with a "
                              "JSON array of shell commands only.";

static void prompt_for(int i, char *buf, size_t n) {
    snprintf(buf, n, "install %s and %s then configure %s service number %d on ubuntu server",
             k_words[i % NWORDS], k_words[(i / NWORDS) % NWORDS], k_words[(i * 7) % NWORDS], i);
}

/* Exact misses that are similar to prompt i (one extra word). */
static void similar_for(int i, char *buf, size_t n) {
    snprintf(buf, n, "please install %s and %s then configure %s service number %d on ubuntu "
             "server", k_words[i % NWORDS], k_words[(i / NWORDS) % NWORDS],
             k_words[(i * 7) % NWORDS], i);
}

struct job {
    struct cx_cache *cache;
    int entries;
    int mode; /* 0 exact, 1 similar, 2 put */
    int tid;
    double seconds;
    pthread_barrier_t *start;
    long ops, errors;
    double cpu; /* seconds of CPU this thread used while measuring */
};

static void *run_job(void *arg) {
    struct job *j = arg;
    char prompt[256];
    struct cx_cache_key k = {"openai", "gpt-4o", k_system, prompt};
    pthread_barrier_wait(j->start);
    uint64_t t0 = cx_now_ns();
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    uint64_t end = t0 + (uint64_t)(j->seconds * 1e9);
    long ops = 0, errors = 0;
    int i = j->tid * 7919;
    while (1) {
        if ((ops & 63) == 0 && cx_now_ns() >= end) break;
        if (j->mode == 2) {
            snprintf(prompt, sizeof prompt, "write %d from thread %d installing %s", i, j->tid,
                     k_words[i % NWORDS]);
            if (cx_cache_put(j->cache, &k, "[\"apt-get install -y pkg\"]", NULL) < 0) errors++;
            if (cx_now_ns() >= end) {
                ops++;
                break;
            }
        } else {
            int e = i % j->entries;
            if (j->mode == 0) prompt_for(e, prompt, sizeof prompt);
            else similar_for(e, prompt, sizeof prompt);
            char *json = NULL;
            int similar = 0;
            int rc = cx_cache_get(j->cache, &k, &json, &similar, NULL);
            if (rc != 0 || similar != (j->mode == 1)) errors++;
            cx_free(json);
        }
        ops++;
        i++;
    }
    j->seconds = cx_elapsed_s(t0, cx_now_ns());
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    j->cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    j->ops = ops;
    j->errors = errors;
    return NULL;
}

/* Runs `threads` jobs of `mode` together; returns total ops/s; *errors gets the error count,
 * *total (may be NULL) the operations done and *per_cpu (may be NULL) operations per second of
 * CPU time the threads got (how well they scale where they had a core to themselves). */
static double measure(struct cx_cache *c, int entries, int mode, int threads, double seconds,
                      long *errors, long *total, double *per_cpu) {
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, (unsigned)threads);
    struct job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){c, entries, mode, t, seconds, &b, 0, 0, 0};
        pthread_create(&th[t], NULL, run_job, &jobs[t]);
    }
    double rate = 0, cpu = 0;
    long ops = 0;
    *errors = 0;
    if (total) *total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        rate += (double)jobs[t].ops / jobs[t].seconds;
        cpu += jobs[t].cpu;
        ops += jobs[t].ops;
        *errors += jobs[t].errors;
        if (total) *total += jobs[t].ops;
    }
    if (per_cpu) *per_cpu = cpu > 0 ? (double)ops / cpu : 0;
    pthread_barrier_destroy(&b);
    free(jobs);
    free(th);
    return rate;
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The 1-minute load average, read now: how busy the (shared) machine was. */
static void print_load(const char *label) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[64] = "";
    if (f) {
        if (fgets(buf, sizeof buf, f) == NULL) buf[0] = '\0';
        fclose(f);
    }
    char *sp = strchr(buf, ' ');
    if (sp) *sp = '\0';
    printf("%s: %s\n", label, buf[0] ? buf : "unknown");
}

int main(int argc, char **argv) {
    int entries = 500, writers = 8, rounds = 3, entity = 0;
    double seconds = 1.0;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--entries") == 0) entries = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0) seconds = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--writers") == 0) writers = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0) rounds = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
        else if (strcmp(argv[i], "--entity-match") == 0)
            entity = (int)strtol(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--entries N] [--seconds S] [--rounds R] [--writers N] "
                    "[--dir D] [--entity-match 0|1]\n",
                    argv[0]);
            return 2;
        }
    }
    if (entries < 1 || seconds <= 0 || writers < 1 || rounds < 1 || rounds > 15) {
        fprintf(stderr, "bench_cache: bad arguments\n");
        return 2;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/bench_cache_%d.db", dir, (int)getpid());
    struct cx_pool_options po;
    cx_pool_options_init(&po);
    po.path = path;
    struct cx_pool *pool;
    struct cx_errinfo ei;
    if (cx_pool_new(&po, &pool, &ei) < 0) {
        fprintf(stderr, "bench_cache: %s\n", ei.msg);
        return 1;
    }
    struct cx_cache_options co;
    cx_cache_options_init(&co);
    co.max_entries = (size_t)entries;
    co.entity_match = entity != 0;
    struct cx_cache *cache;
    if (cx_cache_new(pool, &co, &cache, &ei) < 0) {
        fprintf(stderr, "bench_cache: %s\n", ei.msg);
        return 1;
    }
    char prompt[256];
    struct cx_cache_key k = {"openai", "gpt-4o", k_system, prompt};
    for (int i = 0; i < entries; i++) {
        prompt_for(i, prompt, sizeof prompt);
        if (cx_cache_put(cache, &k, "[\"sudo apt-get update\", \"sudo apt-get install -y pkg\"]",
                         &ei) < 0) {
            fprintf(stderr, "bench_cache: fill: %s\n", ei.msg);
            return 1;
        }
    }
    printf("bench_cache: %d entries, %.2f s per measurement, %ld CPUs online, matcher %s, db %s\n",
           entries, seconds, sysconf(_SC_NPROCESSORS_ONLN), entity ? "entity" : "embedding",
           path);
    long e1, e2;
    static const char *names[] = {"exact lookups", "similarity lookups"};
    int bad = 0;
    print_load("load average before");
    for (int mode = 0; mode < 2; mode++) {
        double r1[15], r2[15], p1[15], p2[15];
        long errs = 0;
        for (int r = 0; r < rounds; r++) {
            r1[r] = measure(cache, entries, mode, 1, seconds, &e1, NULL, &p1[r]);
            r2[r] = measure(cache, entries, mode, 2, seconds, &e2, NULL, &p2[r]);
            errs += e1 + e2;
        }
        double m1 = median(r1, rounds), m2 = median(r2, rounds);
        printf("%-20s 1 thread: %12.0f/s   2 threads: %12.0f/s   ratio 2/1: %.2fx   (medians of "
               "%d rounds)%s\n",
               names[mode], m1, m2, m2 / m1, rounds, errs ? "   (UNEXPECTED RESULTS)" : "");
        /* Per CPU-second the two threads should each do what one does: a ratio below 2 with
         * this near 1.0 means the second core was busy with other processes, not contention. */
        printf("%-20s per CPU-second: 1 thread %.0f, 2 threads %.0f each (%.2f of one)\n", "",
               median(p1, rounds), median(p2, rounds), median(p2, rounds) / median(p1, rounds));
        if (errs) bad = 1;
    }
    /* Writes: distinct new keys, so every put inserts and (past max_entries) evicts. Concurrent
     * puts share transactions (group commit), so throughput grows with the number of writers. */
    int wthreads[3] = {1, writers, writers * 4};
    for (int w = 0; w < 3; w++) {
        struct cx_pool_stats before, after;
        cx_pool_stats(pool, &before);
        long done = 0;
        double r = measure(cache, entries, 2, wthreads[w], seconds, &e1, &done, NULL);
        cx_pool_stats(pool, &after);
        uint64_t tx = after.transactions - before.transactions;
        printf("puts %3d thread%s      %12.0f/s   (%.1f puts per transaction)%s\n", wthreads[w],
               wthreads[w] == 1 ? " " : "s", r, tx ? (double)done / (double)tx : 0.0,
               e1 ? "   (ERRORS)" : "");
        if (e1) bad = 1;
    }
    print_load("load average after");
    struct cx_cache_stats st;
    if (cx_cache_stats(cache, &st, &ei) == 0)
        printf("cache: %zu entries, %llu hits, %llu misses\n", st.entries,
               (unsigned long long)st.hits, (unsigned long long)st.misses);
    cx_cache_free(cache);
    cx_pool_free(pool);
    char side[600];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return bad;
}
