/*
 * sweep_out.c - what the sweep shows: the tables on stdout (ours, then the seed's own format),
 * and the results folder (--out DIR): sweep.json (schema in bench/README.md), sweep.csv (one
 * line per cell), report.md (to paste into a pull-request comment: tables, a verdict per
 * figure, base vs head) and speedup.png (gnuplot: speedup against N with the model and the
 * seed's figures; skipped with a note when gnuplot is not installed).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sweep.h"

/* The seed's table (section 6.1): its SPEEDUP line, free vs GIL at 1, 3, 5, 10, 20. Quoted from
 * the design, shown beside ours as the seed's claim, never as a measurement. */
static const int k_seed_n[] = {1, 3, 5, 10, 20};
static const double k_seed_speedup[] = {1.0, 1.3, 1.7, 2.3, 2.8};
static const double k_seed_gil_s[] = {2.50, 3.80, 5.20, 9.50, 18.20};
static const double k_seed_free_s[] = {2.45, 2.80, 3.10, 4.20, 6.50};

static double seed_speedup(int n)
{
    for (size_t i = 0; i < sizeof k_seed_n / sizeof k_seed_n[0]; i++)
        if (k_seed_n[i] == n)
            return k_seed_speedup[i];
    return -1;
}

/* The seed's average for n packages in mode col (gil or free), or -1. */
static double seed_seconds(int n, int col)
{
    for (size_t i = 0; i < sizeof k_seed_n / sizeof k_seed_n[0]; i++)
        if (k_seed_n[i] == n)
            return col == COL_GIL ? k_seed_gil_s[i] : k_seed_free_s[i];
    return -1;
}

static const char *io_name(int io) { return cx_io_design_name((enum cx_io_design)io); }

/* The most requests in flight the mock saw, as text ("-" for another server: not known). */
static const char *inflight(const struct sweep *s, const struct cell *c)
{
    static char buf[8][16];
    static int k;
    if (s->mock == NULL)
        return "-";
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%u", c->inflight_max);
    return b;
}

/* ---- verdicts ---- */

/* The verdict on row i's free-vs-GIL speedup: against the model, the baseline, the CV. */
static const char *verdict(const struct sweep *s, int row, double base)
{
    double sp = s->speedup[row], m = s->model_speedup[row];
    if (sp <= 0)
        return "not measured";
    if (base > 0 && sp < base * (1 - s->tolerance))
        return "REGRESSED vs base";
    if (m > 0 && fabs(sp / m - 1) > s->model_tolerance)
        return "OFF MODEL";
    if (s->speedup_cv[row] > s->cv_limit)
        return "holds (noisy)";
    return "holds";
}

/* ---- stdout ---- */

static void print_seed_format(const struct sweep *s, FILE *f, int col)
{
    fprintf(f, "\n  the seed's format (section 6.1), %s, seconds of this run divided by the time "
               "scale:\n",
            sweep_col_name(col));
    fprintf(f, "  GIL Status: %s\n", col == COL_GIL ? "ENABLED (emulated)" : "DISABLED");
    for (int row = 0; row < s->n_sizes; row++) {
        const struct cell *ce = &s->cells[row][col];
        if (!ce->ran)
            continue;
        double k = 1 / s->scale;
        fprintf(f, "  Benchmarking %d packages\n", s->sizes[row]);
        for (int t = 0; t < ce->trials; t++)
            fprintf(f, "  Trial %d/%d: %.2fs (%d/%d succeeded)\n", t + 1, ce->trials,
                    ce->wall[t] * k, s->sizes[row], s->sizes[row]);
        fprintf(f, "  Results for %d packages:\n", s->sizes[row]);
        fprintf(f, "    Average: %.2fs ± %.2fs\n", ce->mean * k, ce->sd * k);
        fprintf(f, "    Min: %.2fs\n", ce->min * k);
        fprintf(f, "    Max: %.2fs\n", ce->max * k);
        double seed = seed_seconds(s->sizes[row], col);
        if (seed > 0)
            fprintf(f, "    (the seed's average: %.2fs)\n", seed);
    }
}

void sweep_print_tables(struct sweep *s, FILE *f)
{
    fprintf(f, "\n  free vs gil (ratio of the means), the model for P = %d, and the run-to-run "
               "coefficient of variation of the per-trial ratio:\n",
            s->cores);
    fprintf(f, "  %5s %9s %9s %9s %9s %8s %8s %7s %6s %11s\n", "n", "serial_s", "gil_s",
            "free_s", "free/gil", "model", "dev", "cv", "seed", "free/serial");
    for (int row = 0; row < s->n_sizes; row++) {
        const struct cell *c = s->cells[row];
        fprintf(f, "  %5d", s->sizes[row]);
        for (int col = COL_SERIAL; col <= COL_FREE; col++) {
            if (c[col].ran)
                fprintf(f, " %9.3f", c[col].mean);
            else
                fprintf(f, " %9s", "-");
        }
        if (s->speedup[row] > 0)
            fprintf(f, " %8.2fx %7.2fx %+7.1f%% %6.1f%%", s->speedup[row], s->model_speedup[row],
                    (s->speedup[row] / s->model_speedup[row] - 1) * 100, s->speedup_cv[row] * 100);
        else
            fprintf(f, " %9s %8s %8s %7s", "-", "-", "-", "-");
        double sd = seed_speedup(s->sizes[row]);
        if (sd > 0)
            fprintf(f, " %5.1fx", sd);
        else
            fprintf(f, " %6s", "-");
        if (c[COL_SERIAL].ran && c[COL_FREE].ran && c[COL_FREE].mean > 0)
            fprintf(f, " %10.2fx", c[COL_SERIAL].mean / c[COL_FREE].mean);
        fprintf(f, "\n");
    }
    double worst = 0;
    for (int row = 0; row < s->n_sizes; row++)
        worst = s->speedup_cv[row] > worst ? s->speedup_cv[row] : worst;
    fprintf(f, "  largest CV of a speedup: %.1f%% over %d trials (goal <= %.0f%% on a quiet "
               "machine)\n",
            worst * 100, s->trials, s->cv_limit * 100);

    fprintf(f, "\n  every cell: mean ± stdev [min, max] over the trials, the model, measured / "
               "model, the most requests in flight at the server, time to the first body byte "
               "(TTFT when streamed, p50), latency p50 / p99, queries/s:\n");
    for (int row = 0; row < sweep_rows(s); row++) {
        for (int col = 0; col < N_COLS; col++) {
            const struct cell *ce = &s->cells[row][col];
            if (!ce->ran)
                continue;
            fprintf(f,
                    "  n=%-5d %-8s %8.3f ± %.3f [%.3f, %.3f]  model %8.3f  x%.3f  "
                    "in flight %4s  ttft %6.1f ms  p50 %6.1f  p99 %6.1f ms  %7.1f q/s  "
                    "(%s, %d threads)\n",
                    sweep_row_n(s, row), sweep_col_name(col), ce->mean, ce->sd, ce->min, ce->max,
                    ce->model, ce->model > 0 ? ce->mean / ce->model : 0, inflight(s, ce),
                    ce->ttft_p50 * 1e3, ce->lat_p50 * 1e3, ce->lat_p99 * 1e3, ce->throughput,
                    io_name(ce->io), ce->threads);
        }
    }

    if (s->cols[COL_GIL])
        print_seed_format(s, f, COL_GIL);
    if (s->cols[COL_FREE])
        print_seed_format(s, f, COL_FREE);
    int any = 0;
    for (int row = 0; row < s->n_sizes; row++)
        any |= s->speedup[row] > 0;
    if (any) {
        fprintf(f, "\n  SPEEDUP:");
        int first = 1;
        for (int row = 0; row < s->n_sizes; row++) {
            if (s->speedup[row] <= 0)
                continue;
            fprintf(f, "%s %.1fx", first ? "" : " →", s->speedup[row]);
            first = 0;
        }
        fprintf(f, "   (n =");
        for (int row = 0; row < s->n_sizes; row++)
            if (s->speedup[row] > 0)
                fprintf(f, " %d", s->sizes[row]);
        fprintf(f, "; the seed's: 1.0x → 1.3x → 1.7x → 2.3x → 2.8x at 1 3 5 10 20)\n");
    }

    fprintf(f, "\n  the seed profile per phase: the seed's cost x time scale = the runtime's own "
               "work + CPU top-up (ms):\n");
    for (int i = 0; i < 4; i++)
        fprintf(f, "    %-15s %9.2f = %8.3f own + %9.3f top-up (%.1f%% own)\n", s->phases[i].name,
                s->phases[i].target_s * 1e3, s->phases[i].own_s * 1e3, s->phases[i].topup_s * 1e3,
                s->phases[i].target_s > 0 ? 100 * s->phases[i].own_s / s->phases[i].target_s : 0);
    for (int m = 0; m < 2; m++) {
        const struct timeline *t = &s->tl[m];
        if (!t->ran)
            continue;
        if (m == 0 || !s->tl[0].ran)
            fprintf(f, "\n  5-package timeline (sections 2.2 and 3.2), seconds / time scale: "
                       "parse, LLM, merge, apt, total; model; the seed's\n");
        double k = 1 / s->scale;
        fprintf(f, "    %-5s %6.2f %6.2f %6.2f %6.2f = %6.2f s   model %6.2f s   seed %5.1f s\n",
                m == 0 ? "gil" : "free", t->parse_s * k, t->llm_s * k, t->merge_s * k,
                t->apt_s * k, t->total_s * k, t->model_total_s * k, t->seed_total_s * k);
    }
    if (s->tl[0].ran && s->tl[1].ran && s->tl[1].total_s > 0)
        fprintf(f, "    overall %.2fx (model %.2fx; the seed's 18 s / 10 s = 1.8x)\n",
                s->tl[0].total_s / s->tl[1].total_s, s->tl[0].model_total_s / s->tl[1].model_total_s);
}

/* ---- JSON ---- */

static cJSON *num_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static cJSON *cell_json(const struct sweep *s, int row, int col)
{
    const struct cell *ce = &s->cells[row][col];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "trials", ce->trials);
    cJSON_AddNumberToObject(o, "mean_s", ce->mean);
    cJSON_AddNumberToObject(o, "stdev_s", ce->sd);
    cJSON_AddNumberToObject(o, "min_s", ce->min);
    cJSON_AddNumberToObject(o, "max_s", ce->max);
    cJSON_AddNumberToObject(o, "median_s", ce->median);
    cJSON_AddNumberToObject(o, "model_s", ce->model);
    cJSON_AddNumberToObject(o, "ratio_to_model", ce->model > 0 ? ce->mean / ce->model : 0);
    cJSON_AddNumberToObject(o, "inflight_max", ce->inflight_max);
    cJSON_AddNumberToObject(o, "ttft_p50_s", ce->ttft_p50);
    cJSON_AddNumberToObject(o, "latency_p50_s", ce->lat_p50);
    cJSON_AddNumberToObject(o, "latency_p99_s", ce->lat_p99);
    cJSON_AddNumberToObject(o, "throughput_qps", ce->throughput);
    cJSON_AddStringToObject(o, "io", io_name(ce->io));
    cJSON_AddNumberToObject(o, "threads", ce->threads);
    cJSON_AddItemToObject(o, "samples_s", num_array(ce->wall, ce->trials));
    cJSON_AddItemToObject(o, "total_samples_s", num_array(ce->total, ce->trials));
    return o;
}

int sweep_write_json(const struct sweep *s, const char *path)
{
    cJSON *root = cJSON_CreateObject();
    /* the fields of the first version, kept for readers of it (scripts/gate) */
    cJSON_AddNumberToObject(root, "cores", s->cores);
    cJSON_AddNumberToObject(root, "latency_s", s->L);
    cJSON_AddNumberToObject(root, "cpu_s", s->c);
    cJSON_AddNumberToObject(root, "time_scale", s->scale);
    cJSON_AddNumberToObject(root, "trials", s->trials);
    cJSON_AddNumberToObject(root, "schema", 2);
    cJSON_AddStringToObject(root, "commit", s->commit ? s->commit : "unknown");
    cJSON_AddStringToObject(root, "command_line", s->cmdline ? s->cmdline : "");
    cJSON *mach = cJSON_AddObjectToObject(root, "machine");
    cJSON_AddNumberToObject(mach, "cores", s->cores);
    cJSON_AddStringToObject(mach, "cpu_model", s->cpu_model);
    cJSON_AddItemToObject(mach, "load_before", num_array(s->load_before, 3));
    cJSON_AddItemToObject(mach, "load_after", num_array(s->load_after, 3));
    cJSON *srv = cJSON_AddObjectToObject(root, "server");
    cJSON_AddBoolToObject(srv, "embedded_mock", s->mock != NULL);
    cJSON_AddStringToObject(srv, "base_url", s->mock ? "embedded mock" : s->base_url);
    cJSON_AddStringToObject(srv, "api", s->api == CX_API_ANTHROPIC ? "anthropic" : "openai");
    cJSON_AddStringToObject(srv, "model", s->model ? s->model : "default");
    cJSON_AddBoolToObject(srv, "stream", s->stream);
    cJSON *prof = cJSON_AddObjectToObject(root, "profile");
    cJSON_AddNumberToObject(prof, "own_cpu_per_answer_s", s->own_cpu_s);
    cJSON *ph = cJSON_AddArrayToObject(prof, "phases");
    for (int i = 0; i < 4; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "phase", s->phases[i].name);
        cJSON_AddNumberToObject(p, "target_s", s->phases[i].target_s);
        cJSON_AddNumberToObject(p, "own_s", s->phases[i].own_s);
        cJSON_AddNumberToObject(p, "topup_s", s->phases[i].topup_s);
        cJSON_AddItemToArray(ph, p);
    }
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    for (int row = 0; row < sweep_rows(s); row++) {
        const struct cell *c = s->cells[row];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "n", sweep_row_n(s, row));
        cJSON_AddNumberToObject(r, "serial_s", c[COL_SERIAL].ran ? c[COL_SERIAL].mean : 0);
        cJSON_AddNumberToObject(r, "gil_s", c[COL_GIL].ran ? c[COL_GIL].mean : 0);
        cJSON_AddNumberToObject(r, "free_s", c[COL_FREE].ran ? c[COL_FREE].mean : 0);
        cJSON_AddNumberToObject(r, "speedup_free_vs_gil", s->speedup[row]);
        cJSON_AddNumberToObject(r, "model_speedup", s->model_speedup[row]);
        cJSON_AddNumberToObject(r, "speedup_cv", s->speedup_cv[row]);
        double sd = seed_speedup(sweep_row_n(s, row));
        if (sd > 0)
            cJSON_AddNumberToObject(r, "seed_speedup", sd);
        cJSON *cells = cJSON_AddObjectToObject(r, "cells");
        for (int col = 0; col < N_COLS; col++)
            if (c[col].ran)
                cJSON_AddItemToObject(cells, sweep_col_name(col), cell_json(s, row, col));
        cJSON_AddItemToArray(rows, r);
    }
    cJSON *tl = cJSON_AddArrayToObject(root, "timeline");
    for (int m = 0; m < 2; m++) {
        const struct timeline *t = &s->tl[m];
        if (!t->ran)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "mode", m == 0 ? "gil" : "free");
        cJSON_AddNumberToObject(o, "parse_s", t->parse_s);
        cJSON_AddNumberToObject(o, "llm_s", t->llm_s);
        cJSON_AddNumberToObject(o, "merge_s", t->merge_s);
        cJSON_AddNumberToObject(o, "apt_s", t->apt_s);
        cJSON_AddNumberToObject(o, "total_s", t->total_s);
        cJSON_AddNumberToObject(o, "model_total_s", t->model_total_s);
        cJSON_AddNumberToObject(o, "seed_total_s", t->seed_total_s);
        cJSON_AddItemToArray(tl, o);
    }
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    int bad = f == NULL || fputs(text, f) < 0;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "bench_sweep: cannot write '%s': %s\n", path, strerror(errno));
    cJSON_free(text);
    cJSON_Delete(root);
    return bad ? -1 : 0;
}

/* ---- the results folder ---- */

static FILE *open_in(const struct sweep *s, const char *name, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", s->out_dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "bench_sweep: cannot write '%s': %s\n", path, strerror(errno));
    return f;
}

static int close_checked(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "bench_sweep: cannot write '%s'\n", path);
        return -1;
    }
    return 0;
}

static int write_csv(const struct sweep *s)
{
    char path[1024];
    FILE *f = open_in(s, "sweep.csv", path, sizeof path);
    if (f == NULL)
        return -1;
    fprintf(f, "n,column,trials,mean_s,stdev_s,min_s,max_s,median_s,model_s,ratio_to_model,"
               "inflight_max,ttft_p50_s,latency_p50_s,latency_p99_s,throughput_qps,io,threads\n");
    for (int row = 0; row < sweep_rows(s); row++)
        for (int col = 0; col < N_COLS; col++) {
            const struct cell *c = &s->cells[row][col];
            if (!c->ran)
                continue;
            fprintf(f, "%d,%s,%d,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.4f,%u,%.6f,%.6f,%.6f,%.2f,%s,%d\n",
                    sweep_row_n(s, row), sweep_col_name(col), c->trials, c->mean, c->sd, c->min,
                    c->max, c->median, c->model, c->model > 0 ? c->mean / c->model : 0,
                    c->inflight_max, c->ttft_p50, c->lat_p50, c->lat_p99, c->throughput,
                    io_name(c->io), c->threads);
        }
    return close_checked(f, path);
}

static void md_cell(FILE *f, const struct cell *c)
{
    if (c->ran)
        fprintf(f, " %.3f ± %.3f (model %.3f) |", c->mean, c->sd, c->model);
    else
        fprintf(f, " - |");
}

static int write_report(const struct sweep *s)
{
    char path[1024];
    FILE *f = open_in(s, "report.md", path, sizeof path);
    if (f == NULL)
        return -1;
    const char *base = s->base_path ? s->base_path : s->gate_path;
    fprintf(f, "### cortex sweep at `%s`\n\n", s->commit ? s->commit : "unknown");
    fprintf(f, "Every query ran through `cx_pipeline_install` (cache, router, both rate buckets, "
               "HTTP, parse, validate, merge, history) against %s. ",
            s->mock ? "the embedded mock server" : "the server given");
    if (s->stream)
        fprintf(f, "Answers were streamed (TTFT is the first event's). ");
    fprintf(f, "L = %.1f ms latency and c = %.1f ms CPU per answer (the seed's 1.65 s and 0.85 s "
               "x time scale %g); %d trials per cell.\n\n",
            s->L * 1e3, s->c * 1e3, s->scale, s->trials);
    fprintf(f, "Machine: %d usable cores, %s; load average %.2f before, %.2f after.  \n",
            s->cores, s->cpu_model, s->load_before[0], s->load_after[0]);
    fprintf(f, "Command: `%s`\n\n", s->cmdline ? s->cmdline : "");

    fprintf(f, "#### Free-threaded vs GIL speedup\n\n");
    fprintf(f, "| n | head | model | head / model | seed | base | head / base | CV | verdict |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|\n");
    for (int row = 0; row < s->n_sizes; row++) {
        int n = s->sizes[row];
        double b = base ? sweep_base_speedup(base, n) : -1;
        double sd = seed_speedup(n);
        fprintf(f, "| %d | %.2fx | %.2fx | %+.1f%% |", n, s->speedup[row], s->model_speedup[row],
                s->model_speedup[row] > 0 ? (s->speedup[row] / s->model_speedup[row] - 1) * 100
                                          : 0);
        if (sd > 0)
            fprintf(f, " %.1fx |", sd);
        else
            fprintf(f, " - |");
        if (b > 0)
            fprintf(f, " %.2fx | %+.1f%% |", b, (s->speedup[row] / b - 1) * 100);
        else
            fprintf(f, " - | - |");
        fprintf(f, " %.1f%% | %s |\n", s->speedup_cv[row] * 100, verdict(s, row, b));
    }
    fprintf(f, "\nVerdicts: *holds* when the speedup is within %.0f%% of the model and no more "
               "than %.0f%% below the base (%s); *noisy* when the run-to-run CV passes %.0f%%.\n\n",
            s->model_tolerance * 100, s->tolerance * 100, base ? base : "none given",
            s->cv_limit * 100);

    fprintf(f, "#### Seconds per batch (mean ± stdev over the trials, model)\n\n| n |");
    for (int col = 0; col < N_COLS; col++)
        if (s->cols[col] || (col == COL_HYBRID && s->big_n > 0))
            fprintf(f, " %s |", sweep_col_name(col));
    fprintf(f, "\n|---|");
    for (int col = 0; col < N_COLS; col++)
        if (s->cols[col] || (col == COL_HYBRID && s->big_n > 0))
            fprintf(f, "---|");
    fprintf(f, "\n");
    for (int row = 0; row < sweep_rows(s); row++) {
        fprintf(f, "| %d |", sweep_row_n(s, row));
        for (int col = 0; col < N_COLS; col++)
            if (s->cols[col] || (col == COL_HYBRID && s->big_n > 0))
                md_cell(f, &s->cells[row][col]);
        fprintf(f, "\n");
    }
    fprintf(f, "\nserial, gil and free: thread-local design, one worker per query. asyncio: the "
               "seed's shipped design (gil, at most 5 at once, 5 requests/s). hybrid: one I/O "
               "thread, a CPU pool of min(n, cores). auto: what `cx install` chooses.\n\n");

    fprintf(f, "#### Per cell: server side and client latency\n\n");
    fprintf(f, "| n | column | in flight (max) | TTFT p50 ms | p50 ms | p99 ms | queries/s | "
               "design, threads |\n|---|---|---|---|---|---|---|---|\n");
    for (int row = 0; row < sweep_rows(s); row++)
        for (int col = 0; col < N_COLS; col++) {
            const struct cell *c = &s->cells[row][col];
            if (c->ran)
                fprintf(f, "| %d | %s | %s | %.1f | %.1f | %.1f | %.1f | %s, %d |\n",
                        sweep_row_n(s, row), sweep_col_name(col), inflight(s, c),
                        c->ttft_p50 * 1e3, c->lat_p50 * 1e3, c->lat_p99 * 1e3, c->throughput,
                        io_name(c->io), c->threads);
        }

    fprintf(f, "\n#### The seed profile: own work and top-up per phase (ms)\n\n");
    fprintf(f, "| phase | seed x scale | runtime's own | CPU top-up |\n|---|---|---|---|\n");
    for (int i = 0; i < 4; i++)
        fprintf(f, "| %s | %.2f | %.3f | %.3f |\n", s->phases[i].name,
                s->phases[i].target_s * 1e3, s->phases[i].own_s * 1e3, s->phases[i].topup_s * 1e3);
    if (s->tl[0].ran || s->tl[1].ran) {
        fprintf(f, "\n#### 5-package timeline (seconds / time scale, the seed's units)\n\n");
        fprintf(f, "| mode | parse | LLM | merge | apt | total | model | seed | verdict |\n"
                   "|---|---|---|---|---|---|---|---|---|\n");
        for (int m = 0; m < 2; m++) {
            const struct timeline *t = &s->tl[m];
            if (!t->ran)
                continue;
            double k = 1 / s->scale, dev = t->total_s / t->model_total_s - 1;
            fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %s |\n",
                    m == 0 ? "gil" : "free", t->parse_s * k, t->llm_s * k, t->merge_s * k,
                    t->apt_s * k, t->total_s * k, t->model_total_s * k, t->seed_total_s * k,
                    fabs(dev) <= s->model_tolerance ? "holds" : "OFF MODEL");
        }
    }
    fprintf(f, "\n![speedup against N](speedup.png)\n");
    return close_checked(f, path);
}

/* speedup.dat and speedup.gp, then gnuplot when it is installed. */
static int write_chart(const struct sweep *s)
{
    char dat[1024], gp[1024], png[1024];
    FILE *f = open_in(s, "speedup.dat", dat, sizeof dat);
    if (f == NULL)
        return -1;
    fprintf(f, "# n free_vs_gil model seed free_vs_asyncio model_vs_asyncio\n");
    for (int row = 0; row < s->n_sizes; row++) {
        const struct cell *c = s->cells[row];
        double sd = seed_speedup(s->sizes[row]);
        fprintf(f, "%d ", s->sizes[row]);
        if (s->speedup[row] > 0)
            fprintf(f, "%.4f %.4f ", s->speedup[row], s->model_speedup[row]);
        else
            fprintf(f, "NaN NaN ");
        if (sd > 0)
            fprintf(f, "%.2f ", sd);
        else
            fprintf(f, "NaN ");
        if (c[COL_ASYNCIO].ran && c[COL_FREE].ran)
            fprintf(f, "%.4f %.4f\n", c[COL_ASYNCIO].mean / c[COL_FREE].mean,
                    c[COL_ASYNCIO].model / c[COL_FREE].model);
        else
            fprintf(f, "NaN NaN\n");
    }
    if (close_checked(f, dat) < 0)
        return -1;
    if (strchr(s->out_dir, '\'') != NULL) {
        fprintf(stderr, "bench_sweep: no chart: the folder name has a quote\n");
        return 0;
    }
    f = open_in(s, "speedup.gp", gp, sizeof gp);
    if (f == NULL)
        return -1;
    snprintf(png, sizeof png, "%s/speedup.png", s->out_dir);
    int have_async = 0, have_gil = 0;
    for (int row = 0; row < s->n_sizes; row++) {
        have_gil |= s->speedup[row] > 0;
        have_async |= s->cells[row][COL_ASYNCIO].ran && s->cells[row][COL_FREE].ran;
    }
    fprintf(f,
            "set terminal pngcairo size 960,600 font 'sans,11'\n"
            "set output '%s'\n"
            "set datafile missing 'NaN'\n"
            "set title 'cortex sweep at %s: speedup against N (P = %d cores, time scale %g)'\n"
            "set logscale x\nset xrange [0.8:*]\nset yrange [0:*]\n"
            "set xlabel 'queries in one install (N)'\nset ylabel 'speedup (x)'\n"
            "set key top left\nset grid\n"
            "plot '%s' using 1:4 with points pt 9 ps 1.6 title \"the seed's table (section "
            "6.1)\"",
            png, s->commit ? s->commit : "unknown", s->cores, s->scale, dat);
    if (have_gil)
        fprintf(f, ", \\\n     '' using 1:2 with linespoints lw 2 pt 7 title 'free vs gil, "
                   "measured', \\\n     '' using 1:3 with lines dt 2 lw 2 title 'free vs gil, "
                   "model'");
    if (have_async)
        fprintf(f, ", \\\n     '' using 1:5 with linespoints lw 2 pt 5 title 'free vs "
                   "asyncio, measured', \\\n     '' using 1:6 with lines dt 3 lw 2 title "
                   "'free vs asyncio, model'");
    fprintf(f, "\n");
    if (close_checked(f, gp) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execlp("gnuplot", "gnuplot", gp, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        fprintf(stderr, "bench_sweep: gnuplot is not installed (scripts/deps installs "
                        "gnuplot-nox): no speedup.png\n");
        return 0;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_sweep: gnuplot failed on '%s'\n", gp);
        return -1;
    }
    return 0;
}

int sweep_write_outputs(struct sweep *s)
{
    if (mkdir(s->out_dir, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "bench_sweep: cannot make '%s': %s\n", s->out_dir, strerror(errno));
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/sweep.json", s->out_dir);
    int bad = sweep_write_json(s, path) < 0;
    bad |= write_csv(s) < 0;
    bad |= write_report(s) < 0;
    bad |= write_chart(s) < 0;
    return bad ? -1 : 0;
}
