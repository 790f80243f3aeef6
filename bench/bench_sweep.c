/*
 * bench_sweep.c - the main job: the seed's benchmark (section 6.1) through the real path of
 * `cx install` (cx_pipeline_install: cache, router, both rate buckets, HTTP, parse, validate,
 * merge, history), serially, with an emulated GIL and free-threaded, next to the seed's shipped
 * asyncio design and the three I/O designs, against the embedded mock LLM server or any
 * OpenAI- or Anthropic-compatible server (--base-url).
 *
 * Each query is the seed's "install one package": the server's latency L, then the CPU the seed
 * measured for an answer, c: the pipeline's own parse, validation and cache write, topped up with
 * calibrated CPU work (cx_cpu_work_ns, which yields at the GIL's switch interval like CPython's
 * eval loop) to c. With the seed's figures (2.5 s for one package: L = 1.65 s, c = 0.85 s) and
 * a time scale (0.05 turns them into 82.5 ms and 42.5 ms) the sweep reproduces the seed's
 * tables in minutes. The model each cell is compared with is in sweep_model.c; every figure is
 * measured in this run or computed from L, c and the core count, never typed in (the seed's own
 * figures are printed beside ours, labelled as the seed's).
 *
 * Files: bench_sweep.c (command line, order of the steps), sweep_run.c (measurements),
 * sweep_model.c, sweep_out.c (tables, JSON, CSV, Markdown, chart), sweep_gate.c (--gate).
 * bench/README.md documents the options, the results folder and the JSON schema.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "sweep.h"

static const char *k_col_names[N_COLS] = {"serial", "gil", "free", "asyncio", "hybrid", "auto"};

const char *sweep_col_name(int col) { return col >= 0 && col < N_COLS ? k_col_names[col] : "?"; }

int sweep_rows(const struct sweep *s) { return s->n_sizes + (s->big_n > 0); }

int sweep_row_n(const struct sweep *s, int row)
{
    return row < s->n_sizes ? s->sizes[row] : s->big_n;
}

int sweep_cell_wanted(const struct sweep *s, int row, int col)
{
    if (row == s->n_sizes)
        return col == COL_HYBRID && s->big_n > 0;
    if (!s->cols[col])
        return 0;
    return col != COL_SERIAL || s->sizes[row] <= s->serial_max;
}

static int parse_list(const char *arg, int *out, int max)
{
    int n = 0;
    const char *p = arg;
    while (*p && n < max) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > CX_PIPELINE_MAX_PACKAGES)
            return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return *p ? -1 : n;
}

static int parse_double(const char *name, const char *v, double min, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || d < min) {
        fprintf(stderr, "bench_sweep: %s '%s': not a number >= %g\n", name, v, min);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_int(const char *name, const char *v, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long l = strtol(v, &end, 10);
    if (end == v || *end || errno || l < min || l > max) {
        fprintf(stderr, "bench_sweep: %s '%s': want a whole number %d..%d\n", name, v, min, max);
        return -1;
    }
    *out = (int)l;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_sweep [options]\n"
            "  --sizes LIST        batch sizes (default 1,3,5,10,20,50,100; at most %d)\n"
            "  --trials N          trials per cell (default 5; the CV is over them)\n"
            "  --latency-ms MS     LLM latency before scaling (default 1650, the seed's)\n"
            "  --cpu-ms MS         CPU per answer before scaling (default 850, the seed's)\n"
            "  --time-scale F      multiplies both and the seed's phase costs (default 0.05)\n"
            "  --modes LIST        columns: serial,gil,free,asyncio,hybrid,auto (default all)\n"
            "  --serial-max N      serial cells only up to n = N (default 20; serial is n (L+c))\n"
            "  --big N             one more row with the hybrid column only (e.g. 1000; default "
            "off)\n"
            "  --no-timeline       skip the 5-package timeline (sections 2.2, 3.2)\n"
            "  --seed N            mock server and router seed (default 1)\n"
            "  --base-url URL      another server (vLLM, a gateway, a real API) instead of the\n"
            "                      embedded mock; keys from OPENAI_API_KEY / ANTHROPIC_API_KEY\n"
            "                      (or CORTEX_*); its latency replaces L in the model\n"
            "  --api openai|anthropic  wire format for --base-url (default openai)\n"
            "  --model NAME        model to ask for (default: the provider's)\n"
            "  --stream            ask for streamed answers (SSE), so TTFT is the first event's\n"
            "                      (without it the first body byte comes with the whole answer)\n"
            "  --json FILE         write the results as JSON (schema: bench/README.md)\n"
            "  --out DIR           results folder: report.md, sweep.json, sweep.csv, speedup.png\n"
            "  --base FILE         an earlier sweep.json (or bench/baseline.json) for the report's\n"
            "                      base-vs-head columns (default: --gate's file)\n"
            "  --commit TEXT       the commit to name in the outputs (scripts/bench passes it)\n"
            "  --db-dir DIR        where the pipelines' SQLite files go (default: a temp dir)\n"
            "  --gate FILE         compare speedups with a baseline JSON; exit 3 on regression\n"
            "  --tolerance F       allowed drop below the baseline's speedup (default 0.10)\n"
            "  --model-tolerance F allowed distance from the model (default 0.10)\n"
            "  --cv-limit F        CV a speedup may show before its verdict says noisy (0.03)\n"
            "  --quiet             no progress lines on stderr\n",
            MAX_SIZES);
}

static int parse_cols(struct sweep *s, const char *v)
{
    memset(s->cols, 0, sizeof s->cols);
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v);
    int any = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int m = -1;
        for (int k = 0; k < N_COLS; k++)
            if (strcmp(t, k_col_names[k]) == 0)
                m = k;
        if (m < 0) {
            fprintf(stderr, "bench_sweep: --modes: unknown column '%s' (serial, gil, free, "
                            "asyncio, hybrid, auto)\n",
                    t);
            return -1;
        }
        s->cols[m] = 1;
        any = 1;
    }
    if (!any) {
        fprintf(stderr, "bench_sweep: --modes: empty list\n");
        return -1;
    }
    return 0;
}

static int parse_args(struct sweep *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--no-timeline") == 0) {
            s->timeline = 0;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            s->quiet = 1;
            continue;
        }
        if (strcmp(a, "--stream") == 0) {
            s->stream = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "bench_sweep: %s needs a value (or unknown option)\n", a);
            return -1;
        }
        i++;
        double d;
        if (strcmp(a, "--sizes") == 0) {
            s->n_sizes = parse_list(v, s->sizes, MAX_SIZES);
            if (s->n_sizes <= 0) {
                fprintf(stderr, "bench_sweep: --sizes '%s': want at most %d numbers 1..%d, "
                                "commas\n",
                        v, MAX_SIZES, CX_PIPELINE_MAX_PACKAGES);
                return -1;
            }
        } else if (strcmp(a, "--trials") == 0) {
            if (parse_int(a, v, 1, MAX_TRIALS, &s->trials) < 0)
                return -1;
        } else if (strcmp(a, "--latency-ms") == 0) {
            if (parse_double(a, v, 0, &s->latency_ms) < 0)
                return -1;
        } else if (strcmp(a, "--cpu-ms") == 0) {
            if (parse_double(a, v, 0, &s->cpu_ms) < 0)
                return -1;
        } else if (strcmp(a, "--time-scale") == 0) {
            if (parse_double(a, v, 1e-4, &s->scale) < 0)
                return -1;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_double(a, v, 0, &d) < 0)
                return -1;
            s->seed = (uint64_t)d;
        } else if (strcmp(a, "--modes") == 0) {
            if (parse_cols(s, v) < 0)
                return -1;
        } else if (strcmp(a, "--serial-max") == 0) {
            if (parse_int(a, v, 0, CX_PIPELINE_MAX_PACKAGES, &s->serial_max) < 0)
                return -1;
        } else if (strcmp(a, "--big") == 0) {
            if (parse_int(a, v, 0, CX_PIPELINE_MAX_PACKAGES, &s->big_n) < 0)
                return -1;
        } else if (strcmp(a, "--base-url") == 0) {
            s->base_url_opt = v;
        } else if (strcmp(a, "--api") == 0) {
            if (strcmp(v, "openai") == 0)
                s->api = CX_API_OPENAI;
            else if (strcmp(v, "anthropic") == 0)
                s->api = CX_API_ANTHROPIC;
            else {
                fprintf(stderr, "bench_sweep: --api '%s': expected openai or anthropic\n", v);
                return -1;
            }
        } else if (strcmp(a, "--model") == 0) {
            s->model = v;
        } else if (strcmp(a, "--json") == 0) {
            s->json_path = v;
        } else if (strcmp(a, "--out") == 0) {
            s->out_dir = v;
        } else if (strcmp(a, "--base") == 0) {
            s->base_path = v;
        } else if (strcmp(a, "--commit") == 0) {
            s->commit = v;
        } else if (strcmp(a, "--db-dir") == 0) {
            s->db_dir = v;
        } else if (strcmp(a, "--gate") == 0) {
            s->gate_path = v;
        } else if (strcmp(a, "--tolerance") == 0) {
            if (parse_double(a, v, 0, &s->tolerance) < 0)
                return -1;
        } else if (strcmp(a, "--model-tolerance") == 0) {
            if (parse_double(a, v, 0, &s->model_tolerance) < 0)
                return -1;
        } else if (strcmp(a, "--cv-limit") == 0) {
            if (parse_double(a, v, 0, &s->cv_limit) < 0)
                return -1;
        } else {
            fprintf(stderr, "bench_sweep: unknown option %s\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* The command line as one string, arguments with blanks quoted. Returned: free(). */
static char *join_args(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 3;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (int i = 0; i < argc; i++) {
        int q = strpbrk(argv[i], " \t") != NULL;
        strcat(out, i ? " " : "");
        strcat(out, q ? "'" : "");
        strcat(out, argv[i]);
        strcat(out, q ? "'" : "");
    }
    return out;
}

static void load_average(double out[3])
{
    out[0] = out[1] = out[2] = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3)
            out[0] = out[1] = out[2] = -1;
        fclose(f);
    }
}

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *p = strchr(line, ':');
        if (p == NULL)
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        snprintf(buf, n, "%s", p);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

static int usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return 1;
}

int main(int argc, char **argv)
{
    static struct sweep s = {
        .sizes = {1, 3, 5, 10, 20, 50, 100}, .n_sizes = 7, .trials = 5, .latency_ms = 1650,
        .cpu_ms = 850, .scale = 0.05, .seed = 1, .cols = {1, 1, 1, 1, 1, 1},
        .serial_max = 20, .timeline = 1, .tolerance = 0.10, .model_tolerance = 0.10,
        .cv_limit = 0.03, .api = CX_API_OPENAI,
    };
    if (parse_args(&s, argc, argv) < 0)
        return 2;
    s.cmdline = join_args(argc, argv);
    s.cores = usable_cores();
    cpu_model(s.cpu_model, sizeof s.cpu_model);
    load_average(s.load_before);
    s.L = s.latency_ms * s.scale / 1000.0;
    s.c = s.cpu_ms * s.scale / 1000.0;
    if (s.model == NULL && s.base_url_opt == NULL)
        s.model = "kimi-k2-instruct";

    int failed = 0;
    uint64_t t0 = cx_now_ns();
    if (sweep_setup(&s) < 0 || sweep_calibrate(&s) < 0) {
        sweep_teardown(&s);
        free((char *)s.cmdline);
        return 1;
    }
    printf("cortex sweep: the seed's multi-package benchmark through cx_pipeline_install\n");
    printf("  server: %s (%s API)\n", s.mock ? "the embedded mock" : s.base_url,
           s.api == CX_API_ANTHROPIC ? "anthropic" : "openai");
    printf("  L = %.1f ms latency, c = %.1f ms CPU per answer (%.0f ms / %.0f ms x time scale "
           "%g), of which %.3f ms the pipeline's own work\n",
           s.L * 1e3, s.c * 1e3, s.latency_ms, s.cpu_ms, s.scale, s.own_cpu_s * 1e3);
    printf("  usable cores P = %d (%s), %d trials per cell, load average %.2f before\n",
           s.cores, s.cpu_model, s.trials, s.load_before[0]);
    fflush(stdout);

    if (sweep_run_cells(&s) < 0)
        failed = 1;
    if (s.timeline && sweep_run_timeline(&s) < 0)
        failed = 1;
    load_average(s.load_after);
    sweep_print_tables(&s, stdout);
    printf("\n  load average after: %.2f (other work on the machine shows up in the free column "
           "first); the sweep took %.0f s\n",
           s.load_after[0], cx_elapsed_s(t0, cx_now_ns()));

    int regressions = s.gate_path ? sweep_gate(&s) : 0;
    if (s.json_path && sweep_write_json(&s, s.json_path) < 0)
        failed = 1;
    if (s.out_dir) {
        if (sweep_write_outputs(&s) < 0)
            failed = 1;
        else
            printf("\n  results: %s\n", s.out_dir);
    }
    sweep_teardown(&s);
    free((char *)s.cmdline);
    fflush(stdout);
    if (failed)
        fprintf(stderr, "bench_sweep: some steps failed; see above\n");
    if (regressions)
        fprintf(stderr, "bench_sweep: %d ratio(s) regressed\n", regressions);
    return failed ? 1 : regressions ? 3 : 0;
}
