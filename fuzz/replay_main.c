/*
 * replay_main.c - a main() for the fuzz targets without libFuzzer: runs every regular file of
 * the directories (or the files) named on the command line through LLVMFuzzerTestOneInput,
 * in name order, after one empty input. Each input is copied into a buffer of exactly its size
 * so a sanitizer sees any read past the end. This is how the committed corpora run as ordinary
 * unit tests (CTest fuzz_replay_<target>) in every build, gcc included.
 * Exit status: 0 when every input ran (an invariant failure aborts), 1 when an argument could
 * not be read or held no input at all.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* Reads path whole into a buffer of exactly its size (NULL for an empty file). -1 on error. */
static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open '%s'\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) abort();
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (buf == NULL) abort();
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        fprintf(stderr, "replay: cannot read '%s'\n", path);
        return -1;
    }
    unsigned char *exact = n ? malloc(n) : NULL;
    if (n && exact == NULL) abort();
    if (n) memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int only_files(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    int status = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            fprintf(stderr, "replay: no such file or directory '%s'\n", argv[a]);
            status = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[a]) < 0) status = 1;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[a], &names, only_files, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: cannot list '%s'\n", argv[a]);
            status = 1;
            continue;
        }
        int ran = 0;
        for (int i = 0; i < n; i++) {
            size_t len = strlen(argv[a]) + strlen(names[i]->d_name) + 2;
            char *path = malloc(len);
            if (path == NULL) abort();
            snprintf(path, len, "%s/%s", argv[a], names[i]->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path) < 0) status = 1;
                else ran++;
            }
            free(path);
            free(names[i]);
        }
        free(names);
        printf("replay: %d inputs from %s\n", ran, argv[a]);
        if (ran == 0) {
            fprintf(stderr, "replay: '%s' holds no input\n", argv[a]);
            status = 1;
        }
    }
    return status;
}
