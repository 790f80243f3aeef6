/*
 * s_util.h - what every stress program does the same way before and after its run: strict
 * --seed/--iters/--threads parsing with the one "stress_<name>: seed S iters N threads T" line
 * (so any failing run can be replayed from its log), the seeded generators they draw choices
 * from, starting and joining the worker threads, a private temporary database path, wait limits
 * that grow under sanitizers, the one fatal exit for a wait that ran out (a hang reported, not
 * waited on) and the one closing "threads T operations N" line scripts/reliability adds up.
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

/* How much longer waits may take in this build: $CX_TIMEOUT_SCALE when set (a positive number;
 * anything else is refused with a message and exit 2), else 4 under ThreadSanitizer, 2 under
 * AddressSanitizer, 1 otherwise (the factors the tsan and asan test presets set). Threads: any thread. */
double s_timeout_scale(void);
/* ms x s_timeout_scale(), for the deadlines of the waits that detect hangs. Threads: any. */
long s_scaled_ms(long ms);

/* Prints "stress_<name>: HANG: <message>" on stderr and exits 1 at once with _exit, without
 * running any cleanup: used when a wait for completions ran out, where freeing the batch or
 * joining the threads would hang in turn. Threads: any thread. */
void s_hang(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Starts one monitor thread: when *progress has not changed for limit_ms (scale it with
 * s_scaled_ms first), it calls describe(buf, n) for the program's counters and then s_hang with
 * them, so a lost wake-up anywhere (a batch free, a join, a pool teardown) is a report naming
 * what was outstanding instead of a silent hang. describe runs on the monitor thread and must
 * read only atomics. One monitor per program; s_watch_stop ends it (before freeing what
 * describe reads). Prints why and exits 1 if the thread cannot start. Threads: one caller. */
void s_watch_start(const char *name, _Atomic long *progress, long limit_ms,
                   void (*describe)(char *buf, size_t n));
void s_watch_stop(void);

/* The closing line: "stress_<name>: threads T operations N: ok" (or FAILED), flushed.
 * threads counts every thread the program started (workers of pools included), operations
 * every call into the component under test. scripts/reliability sums these lines. */
void s_report(const char *name, long threads, long long operations, int ok);

#endif
