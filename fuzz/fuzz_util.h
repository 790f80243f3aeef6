/*
 * fuzz_util.h - small helpers shared by the fuzz targets: an invariant check that aborts with a
 * message (libFuzzer then saves the input as a crash), and NUL-terminated copies of inputs.
 * Each target is one file with LLVMFuzzerTestOneInput; fuzz/replay_main.c or libFuzzer drives it.
 */
#ifndef CX_FUZZ_UTIL_H
#define CX_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every target defines this; the replay driver and libFuzzer call it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant that must hold for every input: print what broke and abort. */
#define FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n  ", __FILE__, __LINE__, \
                    #cond);                                                                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/*
 * Known bugs: each target lists the bugs it found that their owners have not fixed yet, with a
 * reproducer fuzz/crashes/<target>-<n>, and steers around them when CX_FUZZ_KNOWN_BUGS is "1"
 * (all of them; the replay tests and scripts/fuzz set it) or names them ("validate-1,http-1"),
 * so fuzzing goes on to find new ones. Unset or "0": every check runs.
 */
static inline int fuzz_known_bug(const char *id) {
    const char *v = getenv("CX_FUZZ_KNOWN_BUGS");
    if (v == NULL || v[0] == '\0' || strcmp(v, "0") == 0) return 0;
    if (strcmp(v, "1") == 0) return 1;
    size_t n = strlen(id);
    for (const char *p = strstr(v, id); p; p = strstr(p + 1, id))
        if ((p == v || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}

/* A malloc'd copy of data[0..n) with a NUL appended (the copy stops at nothing: embedded NULs
 * stay, so strlen() of the result is the prefix up to the first NUL). Aborts on no memory. */
static inline char *fuzz_strndup(const void *data, size_t n) {
    char *s = malloc(n + 1);
    if (s == NULL) abort();
    if (n) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* 1 when s[0..n) (n may be 0) is NUL-terminated within n bytes. */
static inline int fuzz_terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

#endif /* CX_FUZZ_UTIL_H */
