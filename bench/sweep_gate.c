/*
 * sweep_gate.c - the sweep against a baseline JSON (a committed bench/baseline.json or an earlier
 * run's sweep.json; both have "rows" of {"n", "speedup_free_vs_gil"}): --gate exits 3 when a
 * free-vs-GIL speedup fell more than --tolerance below the baseline's or strayed more than
 * --model-tolerance from the model (scripts/gate); the report's base-vs-head table reads the
 * same rows.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep.h"

/* The file's JSON, or NULL (printed). */
static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_sweep: cannot read baseline '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (len < cap - 1)
            break;
        char *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf == NULL)
        return NULL;
    buf[len] = '\0';
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (root == NULL || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "rows"))) {
        fprintf(stderr, "bench_sweep: baseline '%s' has no \"rows\" array\n", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static double row_speedup(const cJSON *root, int n)
{
    const cJSON *row;
    cJSON_ArrayForEach (row, cJSON_GetObjectItemCaseSensitive(root, "rows")) {
        const cJSON *rn = cJSON_GetObjectItemCaseSensitive(row, "n");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(row, "speedup_free_vs_gil");
        if (cJSON_IsNumber(rn) && rn->valueint == n && cJSON_IsNumber(sp) && sp->valuedouble > 0)
            return sp->valuedouble;
    }
    return -1;
}

double sweep_base_speedup(const char *path, int n)
{
    cJSON *root = read_json(path);
    if (root == NULL)
        return -1;
    double v = row_speedup(root, n);
    cJSON_Delete(root);
    return v;
}

int sweep_gate(struct sweep *s)
{
    cJSON *root = read_json(s->gate_path);
    if (root == NULL)
        return 1;
    int bad = 0;
    printf("\ngate against %s (tolerance %.0f%%, model tolerance %.0f%%):\n", s->gate_path,
           s->tolerance * 100, s->model_tolerance * 100);
    for (int i = 0; i < s->n_sizes; i++) {
        if (s->speedup[i] <= 0)
            continue;
        double base = row_speedup(root, s->sizes[i]);
        int ok = 1;
        if (base > 0 && s->speedup[i] < base * (1 - s->tolerance))
            ok = 0;
        double dev = s->model_speedup[i] > 0 ? s->speedup[i] / s->model_speedup[i] - 1 : 0;
        if (fabs(dev) > s->model_tolerance)
            ok = 0;
        printf("  n=%-4d speedup %.2fx  baseline %s%.2fx  model %.2fx (%+.1f%%)  %s\n",
               s->sizes[i], s->speedup[i], base > 0 ? "" : "(none) ", base > 0 ? base : 0,
               s->model_speedup[i], dev * 100, ok ? "ok" : "REGRESSED");
        bad += !ok;
    }
    cJSON_Delete(root);
    s->gate_bad = bad;
    return bad;
}
