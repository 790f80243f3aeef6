/*
 * s_util.h - what every stress program does the same way before and after its run: strict
 * --seed/--iters/--threads parsing with the one "stress_<name>: seed S iters N threads T" line
 * (so any failing run can be replayed from its log), the seeded generators they draw choices
 * from, starting and joining the worker threads, and a private temporary database path.
 */
#ifndef S_UTIL_H
#define S_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct s_args {
    uint64_t seed; /* --seed S: any unsigned 64-bit decimal */
    long iters;    /* --iters N: 1 or more */
    int threads;   /* --threads T: 1 .. threads_max */
};

/* Parses argv into *a, which holds the program's defaults on entry. threads_max 0 means the
 * program runs a fixed number of threads (a->threads, still printed) and refuses --threads.
 * An unknown flag, a flag without its value, or a value that is not a whole decimal number in
 * range prints the flag and the value (and the usage) on stderr and exits 2. On success prints
 * "stress_<name>: seed S iters N threads T" on stdout and flushes it. */
void s_args_parse(const char *name, int argc, char **argv, struct s_args *a, int threads_max);

/* xorshift64 (13, 7, 17): cheap per-thread choices from a seeded state, which must not be 0.
 * Threads: each state belongs to one thread. */
static inline uint64_t s_xorshift64(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* splitmix64: well-mixed output from any state (0 and consecutive seeds included).
 * Threads: each state belongs to one thread. */
static inline uint64_t s_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Runs fn((void *)(long)i) on n new threads, i = 0 .. n-1, and joins them all; prints which
 * thread could not be started and exits 1 if pthread_create fails. Threads: one caller. */
void s_run_threads(const char *name, int n, void *(*fn)(void *));

/* Makes a fresh directory $TMPDIR/stress_<name>-XXXXXX (TMPDIR unset or empty: /tmp) and writes
 * "<that dir>/<file>" into path[n]; prints why and exits 1 if it cannot. */
void s_tmp_db(const char *name, const char *file, char *path, size_t n);
/* Removes a database s_tmp_db named, its -wal, -shm and -journal files, and its directory. */
void s_tmp_db_remove(const char *path);

#endif
