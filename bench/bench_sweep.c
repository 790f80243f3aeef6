/*
 * bench_sweep.c - the main job: the seed's benchmark (section 6.1) run serially, with an emulated
 * GIL and free-threaded, side by side in one process against the embedded mock LLM server.
 *
 * Each query is the seed's "install one package" call: an HTTP request to the mock (fixed,
 * seeded latency L), then CPU work c standing for the Python-level parsing the seed measured
 * (cx_cpu_work_ns, which yields at the GIL's switch interval like CPython's eval loop), then the
 * real parse (cJSON) and command validation. With the seed's figures (2.5 s for one package with
 * the GIL: L = 1.65 s of network, c = 0.85 s of CPU) and a time scale (0.05 turns them into
 * 82.5 ms and 42.5 ms) the sweep reproduces the seed's tables in seconds.
 *
 * The model it checks against, for n queries on P usable cores (P = min(cores, threads)):
 *   serial: n (L + c)               every query waits for the one before it
 *   gil:    L + n c                 the waits overlap, the CPU sections take turns
 *   free:   L + max(1, n / P) c     the CPU sections share P cores (the kernel time-slices
 *                                   runnable threads, so three sections on two cores all end
 *                                   at 1.5 c, not at 2 c as whole turns would)
 * so the free-vs-GIL speedup is (L + n c) / (L + max(1, n/P) c). The seed's table
 * (1.0/1.3/1.7/2.3/2.8x at 1/3/5/10/20) is close to this model on about four cores; here P is
 * the machine's. Every figure printed is measured in this run; the model column is computed from the
 * configured L and c, never typed in.
 *
 * With --gate FILE the run also compares its ratios against a committed baseline and exits 1
 * when a speedup fell more than --tolerance below it or strayed more than --model-tolerance from
 * the model (scripts/gate).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/executor.h"
#include "cx/gil.h"
#include "cx/http.h"
#include "cx/parse.h"
#include "cx/validate.h"
#include "mock/server.h"

#define MAX_SIZES 16

struct sweep {
    /* parameters */
    int sizes[MAX_SIZES];
    int n_sizes;
    int trials;
    double latency_ms;  /* unscaled, the seed's seconds x 1000 */
    double cpu_ms;      /* unscaled */
    double scale;
    uint64_t seed;
    int modes[3];
    int n_modes;
    const char *json_path;
    const char *gate_path;
    double tolerance;
    double model_tolerance;
    int cores;
    /* run state */
    struct mock_server *mock;
    struct cx_http_client *client;
    char base_url[128];
    uint64_t cpu_ns; /* scaled c, 0 during warm-up */
};

struct query {
    struct sweep *s;
    char prompt[64];
};

static const char *k_system =
    "You are a Linux package expert. Reply with a JSON object in a ```json block with a "
    "\"commands\" array of shell commands and an \"explanation\".";

/* One query: the HTTP call (GIL released), the Python-level CPU cost, the real parse. */
static int run_query(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct query *q = arg;
    struct cx_http_request req;
    cx_http_request_init(&req);
    req.api = CX_API_OPENAI;
    req.base_url = q->s->base_url;
    req.model = "kimi-k2-instruct";
    req.system = k_system;
    req.prompt = q->prompt;
    req.max_tokens = 1024;
    struct cx_http_result hr;
    struct cx_errinfo ei;
    cx_http_result_init(&hr);
    int rc = cx_http_client_complete(q->s->client, &req, &hr, &ei);
    if (rc < 0) {
        cx_task_set_error(ctx, "%s: %s", q->prompt, ei.msg);
        return rc;
    }
    cx_cpu_work_ns(q->s->cpu_ns);
    cJSON *obj = NULL;
    rc = cx_parse_response(hr.content, 1, &obj, &ei);
    if (rc == 0) {
        struct cx_validation v;
        rc = cx_validate_commands(cJSON_GetObjectItemCaseSensitive(obj, "commands"), &v);
        if (rc < 0) cx_task_set_error(ctx, "%s: plan rejected", q->prompt);
        cx_validation_clear(&v);
        cJSON_Delete(obj);
    } else {
        cx_task_set_error(ctx, "%s: %s", q->prompt, ei.msg);
    }
    res->tokens = (uint64_t)(hr.prompt_tokens > 0 ? hr.prompt_tokens : 0) +
                  (uint64_t)(hr.completion_tokens > 0 ? hr.completion_tokens : 0);
    cx_http_result_clear(&hr);
    return rc;
}

/* Runs one batch of n queries on ex; returns wall seconds, or -1 on a failed query. */
static double run_batch(struct sweep *s, struct cx_executor *ex, int n) {
    struct query *qs = calloc((size_t)n, sizeof *qs);
    struct cx_task *tasks = calloc((size_t)n, sizeof *tasks);
    if (qs == NULL || tasks == NULL) {
        free(qs);
        free(tasks);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        qs[i].s = s;
        snprintf(qs[i].prompt, sizeof qs[i].prompt, "Install package: package_%d", i);
        tasks[i].fn = run_query;
        tasks[i].arg = &qs[i];
    }
    struct cx_batch *b = NULL;
    uint64_t t0 = cx_now_ns();
    int rc = cx_executor_run(ex, tasks, (size_t)n, NULL, NULL, &b);
    uint64_t t1 = cx_now_ns();
    double wall = -1;
    if (rc == 0) {
        struct cx_batch_stats st;
        cx_batch_stats(b, &st);
        if (st.failed == 0) {
            wall = cx_elapsed_s(t0, t1);
        } else {
            struct cx_task_result *r = cx_batch_results(b);
            for (size_t i = 0; i < (size_t)n; i++)
                if (r[i].status < 0)
                    fprintf(stderr, "bench_sweep: query %zu failed: %s (%s)\n", i,
                            r[i].error ? r[i].error : "", cx_err_name(r[i].status));
        }
    } else {
        fprintf(stderr, "bench_sweep: executor: %s\n", cx_strerror(rc));
    }
    cx_batch_free(b);
    free(qs);
    free(tasks);
    return wall;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double model_time(int mode, int n, int threads, int cores, double L, double c) {
    int p = threads < cores ? threads : cores;
    if (p < 1) p = 1;
    switch (mode) {
    case CX_MODE_SERIAL: return n * (L + c);
    case CX_MODE_GIL: return L + n * c;
    default: return L + (n > p ? (double)n / p : 1.0) * c;
    }
}

static int parse_list(const char *arg, int *out, int max) {
    int n = 0;
    const char *p = arg;
    while (*p && n < max) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 10000) return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n;
}

static int parse_double(const char *name, const char *v, double min, double *out) {
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

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_sweep [options]\n"
            "  --sizes LIST        batch sizes (default 1,3,5,10,20, the seed's)\n"
            "  --trials N          trials per cell, the median is reported (default 5)\n"
            "  --latency-ms MS     LLM latency before scaling (default 1650, the seed's)\n"
            "  --cpu-ms MS         CPU per answer before scaling (default 850, the seed's)\n"
            "  --time-scale F      multiplies both (default 0.05)\n"
            "  --modes LIST        serial,gil,free (default all three)\n"
            "  --seed N            mock server seed (default 1)\n"
            "  --json FILE         write the results as JSON\n"
            "  --gate FILE         compare speedups with a baseline JSON; exit 1 on regression\n"
            "  --tolerance F       allowed drop below the baseline's speedup (default 0.10)\n"
            "  --model-tolerance F allowed distance from the model (default 0.10)\n");
}

static int parse_args(struct sweep *s, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            fprintf(stderr, "bench_sweep: %s needs a value (or unknown option)\n", a);
            return -1;
        }
        i++;
        double d;
        if (strcmp(a, "--sizes") == 0) {
            s->n_sizes = parse_list(v, s->sizes, MAX_SIZES);
            if (s->n_sizes <= 0) {
                fprintf(stderr, "bench_sweep: --sizes '%s': want numbers 1..10000, commas\n", v);
                return -1;
            }
        } else if (strcmp(a, "--trials") == 0) {
            if (parse_double(a, v, 1, &d) < 0) return -1;
            s->trials = (int)d;
        } else if (strcmp(a, "--latency-ms") == 0) {
            if (parse_double(a, v, 0, &s->latency_ms) < 0) return -1;
        } else if (strcmp(a, "--cpu-ms") == 0) {
            if (parse_double(a, v, 0, &s->cpu_ms) < 0) return -1;
        } else if (strcmp(a, "--time-scale") == 0) {
            if (parse_double(a, v, 1e-4, &s->scale) < 0) return -1;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_double(a, v, 0, &d) < 0) return -1;
            s->seed = (uint64_t)d;
        } else if (strcmp(a, "--modes") == 0) {
            s->n_modes = 0;
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                int m = strcmp(t, "serial") == 0 ? CX_MODE_SERIAL
                        : strcmp(t, "gil") == 0  ? CX_MODE_GIL
                        : strcmp(t, "free") == 0 ? CX_MODE_FREE
                                                 : -1;
                if (m < 0 || s->n_modes == 3) {
                    fprintf(stderr, "bench_sweep: --modes: unknown mode '%s'\n", t);
                    return -1;
                }
                s->modes[s->n_modes++] = m;
            }
        } else if (strcmp(a, "--json") == 0) {
            s->json_path = v;
        } else if (strcmp(a, "--gate") == 0) {
            s->gate_path = v;
        } else if (strcmp(a, "--tolerance") == 0) {
            if (parse_double(a, v, 0, &s->tolerance) < 0) return -1;
        } else if (strcmp(a, "--model-tolerance") == 0) {
            if (parse_double(a, v, 0, &s->model_tolerance) < 0) return -1;
        } else {
            fprintf(stderr, "bench_sweep: unknown option %s\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* The 1-minute load average, so a reader can tell a busy machine from a slow program. */
static double load_average(void) {
    double la = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &la) != 1) la = -1;
        fclose(f);
    }
    return la;
}

static int usable_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    return 1;
}

/* Reads the baseline's speedups and compares; returns the number of regressions. */
static int gate(const struct sweep *s, const double *speedup, const double *model_speedup) {
    FILE *f = fopen(s->gate_path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_sweep: cannot read baseline '%s': %s\n", s->gate_path,
                strerror(errno));
        return 1;
    }
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    cJSON *root = cJSON_Parse(buf);
    cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    if (!cJSON_IsArray(rows)) {
        fprintf(stderr, "bench_sweep: baseline '%s' has no \"rows\" array\n", s->gate_path);
        cJSON_Delete(root);
        return 1;
    }
    int bad = 0;
    printf("\ngate against %s (tolerance %.0f%%, model tolerance %.0f%%):\n", s->gate_path,
           s->tolerance * 100, s->model_tolerance * 100);
    for (int i = 0; i < s->n_sizes; i++) {
        if (speedup[i] <= 0) continue;
        double base = -1;
        cJSON *row;
        cJSON_ArrayForEach(row, rows) {
            cJSON *n = cJSON_GetObjectItemCaseSensitive(row, "n");
            cJSON *sp = cJSON_GetObjectItemCaseSensitive(row, "speedup_free_vs_gil");
            if (cJSON_IsNumber(n) && n->valueint == s->sizes[i] && cJSON_IsNumber(sp))
                base = sp->valuedouble;
        }
        int ok = 1;
        if (base > 0 && speedup[i] < base * (1 - s->tolerance)) ok = 0;
        double dev = model_speedup[i] > 0 ? speedup[i] / model_speedup[i] - 1 : 0;
        if (fabs(dev) > s->model_tolerance) ok = 0;
        printf("  n=%-4d speedup %.2fx  baseline %s%.2fx  model %.2fx (%+.1f%%)  %s\n",
               s->sizes[i], speedup[i], base > 0 ? "" : "(none) ", base > 0 ? base : 0,
               model_speedup[i], dev * 100, ok ? "ok" : "REGRESSED");
        bad += !ok;
    }
    cJSON_Delete(root);
    return bad;
}

int main(int argc, char **argv) {
    struct sweep s = {
        .sizes = {1, 3, 5, 10, 20}, .n_sizes = 5, .trials = 5, .latency_ms = 1650,
        .cpu_ms = 850, .scale = 0.05, .seed = 1, .modes = {CX_MODE_SERIAL, CX_MODE_GIL, CX_MODE_FREE},
        .n_modes = 3, .tolerance = 0.10, .model_tolerance = 0.10,
    };
    if (parse_args(&s, argc, argv) < 0) return 2;
    s.cores = usable_cores();
    double L = s.latency_ms * s.scale / 1000.0, c = s.cpu_ms * s.scale / 1000.0;

    struct mock_options mo;
    mock_options_init(&mo);
    mo.seed = s.seed;
    mo.time_scale = s.scale;
    mo.latency_ms = s.latency_ms;
    char err[256];
    if (mock_server_start(&mo, &s.mock, err, sizeof err) < 0) {
        fprintf(stderr, "bench_sweep: cannot start the mock server: %s\n", err);
        return 1;
    }
    snprintf(s.base_url, sizeof s.base_url, "%s/v1", mock_server_url(s.mock));
    struct cx_errinfo ei;
    if (cx_http_client_new(NULL, &s.client, &ei) < 0) {
        fprintf(stderr, "bench_sweep: http client: %s\n", ei.msg);
        mock_server_stop(s.mock);
        return 1;
    }

    printf("cortex sweep: the seed's multi-package benchmark, serial vs GIL vs free-threaded\n");
    printf("  mock LLM at %s, latency L = %.1f ms, CPU per answer c = %.1f ms "
           "(%.0f ms / %.0f ms x time scale %g)\n",
           s.base_url, L * 1e3, c * 1e3, s.latency_ms, s.cpu_ms, s.scale);
    printf("  usable cores P = %d, threads = batch size, %d trials per cell (median), "
           "load average %.2f\n\n",
           s.cores, s.trials, load_average());
    printf("  %5s", "n");
    for (int m = 0; m < s.n_modes; m++) printf(" %9s_s", cx_executor_mode_name(s.modes[m]));
    printf(" %12s %8s %8s %12s\n", "free/gil", "model", "dev", "free/serial");

    double speedup[MAX_SIZES] = {0}, model_sp[MAX_SIZES] = {0};
    double times[MAX_SIZES][3] = {{0}};
    int failed = 0;
    for (int i = 0; i < s.n_sizes; i++) {
        int n = s.sizes[i];
        for (int m = 0; m < s.n_modes; m++) {
            struct cx_executor_options eo;
            cx_executor_options_init(&eo);
            eo.mode = s.modes[m];
            eo.threads = n;
            struct cx_executor *ex = NULL;
            if (cx_executor_new(&eo, &ex, &ei) < 0) {
                fprintf(stderr, "bench_sweep: executor: %s\n", ei.msg);
                failed = 1;
                break;
            }
            /* Warm-up: open the connections each worker's handle will reuse, without CPU. */
            s.cpu_ns = 0;
            run_batch(&s, ex, n);
            s.cpu_ns = (uint64_t)(c * 1e9);
            double t[64];
            int k = 0;
            for (int r = 0; r < s.trials && r < 64; r++) {
                double w = run_batch(&s, ex, n);
                if (w < 0) failed = 1;
                else t[k++] = w;
            }
            cx_executor_free(ex);
            if (k == 0) continue;
            qsort(t, (size_t)k, sizeof t[0], cmp_double);
            times[i][s.modes[m]] = t[k / 2];
        }
        double g = times[i][CX_MODE_GIL], f = times[i][CX_MODE_FREE], se = times[i][CX_MODE_SERIAL];
        speedup[i] = (g > 0 && f > 0) ? g / f : 0;
        model_sp[i] = model_time(CX_MODE_GIL, n, n, s.cores, L, c) /
                      model_time(CX_MODE_FREE, n, n, s.cores, L, c);
        printf("  %5d", n);
        for (int m = 0; m < s.n_modes; m++) printf(" %11.3f", times[i][s.modes[m]]);
        if (speedup[i] > 0)
            printf(" %11.2fx %7.2fx %+7.1f%%", speedup[i], model_sp[i],
                   (speedup[i] / model_sp[i] - 1) * 100);
        else
            printf(" %12s %8s %8s", "-", "-", "-");
        if (se > 0 && f > 0) printf(" %11.2fx", se / f);
        printf("\n");
        fflush(stdout);
    }

    printf("\n  load average after: %.2f (other work on the machine shows up in the free column "
           "first)\n",
           load_average());
    printf("\n  model seconds (serial n (L + c), gil L + n c, free L + max(1, n/P) c):\n");
    for (int i = 0; i < s.n_sizes; i++) {
        int n = s.sizes[i];
        printf("  %5d  serial %.3f  gil %.3f  free %.3f\n", n,
               model_time(CX_MODE_SERIAL, n, n, s.cores, L, c),
               model_time(CX_MODE_GIL, n, n, s.cores, L, c),
               model_time(CX_MODE_FREE, n, n, s.cores, L, c));
    }

    if (s.json_path) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "cores", s.cores);
        cJSON_AddNumberToObject(root, "latency_s", L);
        cJSON_AddNumberToObject(root, "cpu_s", c);
        cJSON_AddNumberToObject(root, "time_scale", s.scale);
        cJSON_AddNumberToObject(root, "trials", s.trials);
        cJSON *rows = cJSON_AddArrayToObject(root, "rows");
        for (int i = 0; i < s.n_sizes; i++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "n", s.sizes[i]);
            cJSON_AddNumberToObject(row, "serial_s", times[i][CX_MODE_SERIAL]);
            cJSON_AddNumberToObject(row, "gil_s", times[i][CX_MODE_GIL]);
            cJSON_AddNumberToObject(row, "free_s", times[i][CX_MODE_FREE]);
            cJSON_AddNumberToObject(row, "speedup_free_vs_gil", speedup[i]);
            cJSON_AddNumberToObject(row, "model_speedup", model_sp[i]);
            cJSON_AddItemToArray(rows, row);
        }
        char *text = cJSON_Print(root);
        FILE *f = text ? fopen(s.json_path, "w") : NULL;
        int werr = f == NULL || fputs(text, f) < 0;
        if (f && fclose(f) != 0) werr = 1;
        if (werr) {
            fprintf(stderr, "bench_sweep: cannot write '%s': %s\n", s.json_path, strerror(errno));
            failed = 1;
        }
        cJSON_free(text);
        cJSON_Delete(root);
    }

    int regressions = s.gate_path ? gate(&s, speedup, model_sp) : 0;
    cx_http_client_free(s.client);
    mock_server_stop(s.mock);
    if (failed) fprintf(stderr, "bench_sweep: some queries failed; see above\n");
    if (regressions) fprintf(stderr, "bench_sweep: %d ratio(s) regressed\n", regressions);
    return failed ? 1 : regressions ? 3 : 0;
}
