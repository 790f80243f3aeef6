/*
 * sweep_run.c - the sweep's measurements, every query through the path `cx install` takes:
 * cx_pipeline_install (prompts, executor, cache lookup, router with its request and token
 * buckets, HTTP in the column's design, parse, validate, asynchronous cache write, merge, the
 * apt step, the history row) against the embedded mock server or the server given.
 *
 * One pipeline per column, each with its own SQLite file (cache and history) in a temporary
 * directory. Every batch names new packages (the batch number is in the name), so every query
 * misses the cache, goes to the server and is written back, as a first install would.
 *
 * The seed profile: the seed's costs per phase (parse input, the CPU of each answer, merge, apt)
 * are reached by the runtime's own work, measured first (calibration, free mode, one package),
 * topped up with real CPU work (cx_cpu_work_ns through the pipeline's bench hooks, which yields
 * the emulated GIL like CPython's eval loop; the apt top-up runs in the execute hook, where the
 * pipeline holds no GIL, like an external process). Nothing sleeps but the mock's latency.
 *
 * DESIGN (threads): the main thread runs every batch (cx_pipeline_install blocks); the HTTP
 * timing hook runs on workers and the I/O thread and appends to the batch's samples under smu.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx_testing.h"
#include "mock/server.h"
#include "sweep.h"

void sweep_progress(const struct sweep *s, const char *fmt, ...)
{
    if (s->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("[sweep] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int push(struct samples *sm, double v)
{
    if (sm->n == sm->cap) {
        size_t cap = sm->cap ? sm->cap * 2 : 256;
        double *nv = realloc(sm->v, cap * sizeof *nv);
        if (nv == NULL)
            return -1;
        sm->v = nv;
        sm->cap = cap;
    }
    sm->v[sm->n++] = v;
    return 0;
}

static void on_timing(double first_s, double total_s, void *ud)
{
    struct sweep *s = ud;
    pthread_mutex_lock(&s->smu);
    if (first_s >= 0)
        (void)push(&s->ttft, first_s);
    if (total_s >= 0)
        (void)push(&s->lat, total_s);
    pthread_mutex_unlock(&s->smu);
}

/* The column's pipeline options. cfg is filled here and must outlive cx_pipeline_new. */
static void column_options(struct sweep *s, int col, struct cx_config *cfg,
                           struct cx_pipeline_options *o, char *db, size_t dbn)
{
    *cfg = s->cfg; /* borrows its strings */
    cfg->thread_pool_size = 1024;   /* thread-local: one worker per query, as the seed's */
    cfg->rate_limit_rps = 1e6;      /* both buckets on the path, neither in the way */
    cfg->rate_limit_burst = 1e6;
    cfg->tokens_per_minute = 1e9;
    cx_pipeline_options_init(o);
    o->have_mode = 1;
    o->have_io = 1;
    o->io = CX_IO_THREAD_LOCAL;
    switch (col) {
    case COL_SERIAL: o->mode = CX_MODE_SERIAL; break;
    case COL_GIL: o->mode = CX_MODE_GIL; break;
    case COL_FREE: o->mode = CX_MODE_FREE; break;
    case COL_ASYNCIO: /* the seed's shipped executor: gil, 5 at once, 5 requests/s */
        o->mode = CX_MODE_GIL;
        cfg->thread_pool_size = 5;
        cfg->rate_limit_rps = 5.0 / s->scale;
        cfg->rate_limit_burst = 5;
        break;
    case COL_HYBRID:
        o->mode = CX_MODE_FREE;
        o->io = CX_IO_HYBRID;
        break;
    case COL_AUTO: /* what `cx install` does: the design and pool size it chooses */
        o->mode = CX_MODE_FREE;
        o->io = CX_IO_AUTO;
        cfg->thread_pool_size = s->cfg.thread_pool_size;
        break;
    }
    o->config = cfg;
    o->base_url = s->base_url;
    o->provider = s->api == CX_API_ANTHROPIC ? CX_PROVIDER_CLAUDE : CX_PROVIDER_OPENAI;
    o->model = s->model;
    if (s->mock != NULL)
        o->cache_endpoint = "bench-sweep-mock";
    snprintf(db, dbn, "%s/%s.db", s->db_dir ? s->db_dir : s->tmpdir, sweep_col_name(col));
    o->db_path = db;
    o->seed = s->seed ? s->seed : 1;
}

int sweep_setup(struct sweep *s)
{
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    cx_config_init(&s->cfg);
    if (cx_config_load_env(&s->cfg, &ei) < 0) {
        fprintf(stderr, "bench_sweep: %s\n", ei.msg);
        return -1;
    }
    pthread_mutex_init(&s->smu, NULL);
    if (s->base_url_opt == NULL) {
        struct mock_options mo;
        mock_options_init(&mo);
        mo.seed = s->seed;
        mo.time_scale = s->scale;
        mo.latency_ms = s->latency_ms;
        mo.threads = 4;
        char err[256];
        if (mock_server_start(&mo, &s->mock, err, sizeof err) < 0) {
            fprintf(stderr, "bench_sweep: cannot start the mock server: %s\n", err);
            return -1;
        }
        snprintf(s->base_url, sizeof s->base_url, "%s/v1", mock_server_url(s->mock));
    } else {
        snprintf(s->base_url, sizeof s->base_url, "%s", s->base_url_opt);
    }
    if (s->db_dir == NULL) {
        const char *t = getenv("TMPDIR");
        snprintf(s->tmpdir, sizeof s->tmpdir, "%s/cx-sweep-XXXXXX", t && *t ? t : "/tmp");
        if (mkdtemp(s->tmpdir) == NULL) {
            fprintf(stderr, "bench_sweep: cannot make a directory '%s': %s\n", s->tmpdir,
                    strerror(errno));
            s->tmpdir[0] = '\0';
            return -1;
        }
    }
    for (int col = 0; col < N_COLS; col++) {
        if (!s->cols[col] && !(col == COL_HYBRID && s->big_n > 0))
            continue;
        struct cx_config cfg;
        struct cx_pipeline_options o;
        char db[512];
        column_options(s, col, &cfg, &o, db, sizeof db);
        if (cx_pipeline_new(&o, &s->pipes[col], &ei) < 0) {
            fprintf(stderr, "bench_sweep: pipeline for %s: %s\n", sweep_col_name(col), ei.msg);
            return -1;
        }
    }
    cx__http_set_timing_hook(on_timing, s);
    return 0;
}

void sweep_teardown(struct sweep *s)
{
    cx__http_set_timing_hook(NULL, NULL);
    for (int col = 0; col < N_COLS; col++) {
        cx_pipeline_free(s->pipes[col]);
        s->pipes[col] = NULL;
    }
    if (s->tmpdir[0]) {
        char p[512];
        for (int col = 0; col < N_COLS; col++) {
            static const char *suffix[] = {"", "-wal", "-shm"};
            for (int k = 0; k < 3; k++) {
                snprintf(p, sizeof p, "%s/%s.db%s", s->tmpdir, sweep_col_name(col), suffix[k]);
                (void)unlink(p);
            }
        }
        (void)rmdir(s->tmpdir);
    }
    if (s->mock)
        mock_server_stop(s->mock);
    s->mock = NULL;
    free(s->ttft.v);
    free(s->lat.v);
    pthread_mutex_destroy(&s->smu);
    cx_config_clear(&s->cfg);
}

/* ---- one batch ---- */

struct apt_work {
    uint64_t total_ns; /* burnt by the first command: the phase costs the same whatever the
                          plan's length */
    int calls;
};

static int confirm_yes(const struct cx_plan *plan, void *ud)
{
    (void)plan;
    (void)ud;
    return 1;
}

/* The apt step's stand-in: CPU work per command, outside any GIL (the pipeline releases it
 * around the runner, as for a real apt process). */
static int apt_run(const char *command, void *ud)
{
    (void)command;
    struct apt_work *w = ud;
    if (w->calls++ == 0 && w->total_ns > 0)
        cx_cpu_work_ns(w->total_ns);
    return 0;
}

/* Runs one install of n new packages on column col's pipeline. apt: NULL for a dry run.
 * Returns 0 with *rep set (free it), or -1 (printed). */
static int run_batch(struct sweep *s, int col, int n, struct apt_work *apt,
                     struct cx_install_report **rep)
{
    const char **pkgs = calloc((size_t)n, sizeof *pkgs);
    char *names = calloc((size_t)n, 48);
    if (pkgs == NULL || names == NULL) {
        free(pkgs);
        free(names);
        fprintf(stderr, "bench_sweep: out of memory\n");
        return -1;
    }
    s->batch_no++;
    for (int i = 0; i < n; i++) {
        snprintf(names + (size_t)i * 48, 48, "package-%llu-%d", (unsigned long long)s->batch_no,
                 i);
        pkgs[i] = names + (size_t)i * 48;
    }
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    if (apt != NULL) {
        ro.apt_mode = CX_APT_EXECUTE;
        ro.confirm = confirm_yes;
        ro.execute = apt_run;
        ro.execute_ud = apt;
    }
    if (s->mock)
        mock_server_reset_stats(s->mock);
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_pipeline_install(s->pipes[col], pkgs, (size_t)n, &ro, rep, &ei);
    free(pkgs);
    free(names);
    if (rc < 0) {
        fprintf(stderr, "bench_sweep: %s, %d packages: %s\n", sweep_col_name(col), n,
                ei.msg[0] ? ei.msg : cx_strerror(rc));
        for (size_t i = 0; *rep && i < (*rep)->n_items; i++)
            if ((*rep)->items[i].status < 0) {
                fprintf(stderr, "  %s: %s\n", (*rep)->items[i].subject,
                        (*rep)->items[i].error ? (*rep)->items[i].error : "");
                break;
            }
        cx_install_report_free(*rep);
        *rep = NULL;
        return -1;
    }
    return 0;
}

static void samples_reset(struct sweep *s)
{
    pthread_mutex_lock(&s->smu);
    s->ttft.n = 0;
    s->lat.n = 0;
    pthread_mutex_unlock(&s->smu);
}

static void set_work(struct sweep *s, int col, uint64_t parse_ns, uint64_t cpu_ns,
                     uint64_t merge_ns)
{
    struct cx__bench_work w = {.cpu_work_ns = cpu_ns, .parse_work_ns = parse_ns,
                               .merge_work_ns = merge_ns, .stream = s->stream};
    cx__pipeline_set_bench_work(s->pipes[col], &w);
}

static uint64_t topup_ns(double target_s, double own_s)
{
    double t = target_s - own_s;
    return t > 0 ? (uint64_t)(t * 1e9) : 0;
}

/* ---- calibration ---- */

static double median_of(double *v, int n)
{
    double mean, sd, lo, hi, med;
    sweep_stats(v, n, &mean, &sd, &lo, &hi, &med);
    return med;
}

int sweep_calibrate(struct sweep *s)
{
    int col = s->pipes[COL_FREE] ? COL_FREE : -1;
    for (int k = 0; col < 0 && k < N_COLS; k++)
        if (s->pipes[k])
            col = k;
    if (col < 0)
        return -1;
    sweep_progress(s, "calibrating the runtime's own work per phase (%s pipeline, 1 package)",
                   sweep_col_name(col));
    set_work(s, col, 0, 0, 0);
    struct apt_work apt = {0, 0};
    double parse[7], merge[7], aptv[7], cpu[7], http[7];
    const int runs = 7;
    for (int r = -2; r < runs; r++) { /* two warm-ups: connections, statements */
        struct cx__pipeline_counts c0, c1;
        cx__pipeline_counts(s->pipes[col], &c0);
        samples_reset(s);
        struct cx_install_report *rep = NULL;
        if (run_batch(s, col, 1, &apt, &rep) < 0)
            return -1;
        cx__pipeline_counts(s->pipes[col], &c1);
        if (r >= 0) {
            parse[r] = rep->timings.parse_s;
            merge[r] = rep->timings.merge_s;
            aptv[r] = rep->timings.apt_s;
            cpu[r] = (double)(c1.cpu_step_ns - c0.cpu_step_ns) / 1e9;
            pthread_mutex_lock(&s->smu);
            http[r] = s->lat.n ? s->lat.v[s->lat.n - 1] : 0;
            pthread_mutex_unlock(&s->smu);
        }
        cx_install_report_free(rep);
    }
    s->own_cpu_s = median_of(cpu, runs);
    if (s->mock == NULL) /* another server: its latency is what it is; the model uses it */
        s->L = median_of(http, runs);
    s->phases[0] = (struct phase){"parse input", 2.0 * s->scale, median_of(parse, runs), 0};
    s->phases[1] = (struct phase){"CPU per answer", s->c, s->own_cpu_s, 0};
    s->phases[2] = (struct phase){"merge plans", 2.0 * s->scale, median_of(merge, runs), 0};
    s->phases[3] = (struct phase){"apt", 4.0 * s->scale, median_of(aptv, runs), 0};
    for (int i = 0; i < 4; i++) {
        double t = s->phases[i].target_s - s->phases[i].own_s;
        s->phases[i].topup_s = t > 0 ? t : 0;
    }
    return 0;
}

/* ---- the cells ---- */

static void take_samples(struct sweep *s, struct samples *ttft, struct samples *lat)
{
    pthread_mutex_lock(&s->smu);
    for (size_t i = 0; i < s->ttft.n; i++)
        (void)push(ttft, s->ttft.v[i]);
    for (size_t i = 0; i < s->lat.n; i++)
        (void)push(lat, s->lat.v[i]);
    pthread_mutex_unlock(&s->smu);
}

int sweep_run_cells(struct sweep *s)
{
    uint64_t cpu_top = topup_ns(s->c, s->own_cpu_s);
    int failed = 0;
    for (int row = 0; row < sweep_rows(s); row++) {
        int n = sweep_row_n(s, row);
        struct samples ttft[N_COLS], lat[N_COLS];
        memset(ttft, 0, sizeof ttft);
        memset(lat, 0, sizeof lat);
        /* Warm-up per column: the workers' first connections and the statements. With the
         * trials' CPU per answer: the auto design sizes its pool from the CPU share the runs
         * before measured, and a warm-up without it taught the first trial one worker. */
        for (int col = 0; col < N_COLS; col++) {
            if (!sweep_cell_wanted(s, row, col))
                continue;
            set_work(s, col, 0, cpu_top, 0);
            struct cx_install_report *rep = NULL;
            if (run_batch(s, col, n, NULL, &rep) < 0) {
                failed = 1;
                continue;
            }
            cx_install_report_free(rep);
        }
        /* Trials outer, columns inner: a trial is one run of every column, so a change in the
         * machine's load hits all columns of that trial alike. */
        for (int t = 0; t < s->trials; t++) {
            sweep_progress(s, "n=%d trial %d/%d", n, t + 1, s->trials);
            for (int col = 0; col < N_COLS; col++) {
                if (!sweep_cell_wanted(s, row, col))
                    continue;
                struct cell *ce = &s->cells[row][col];
                samples_reset(s);
                struct cx_install_report *rep = NULL;
                if (run_batch(s, col, n, NULL, &rep) < 0) {
                    failed = 1;
                    continue;
                }
                ce->wall[ce->trials] = rep->timings.llm_s;
                ce->total[ce->trials] = rep->timings.total_s;
                ce->trials++;
                ce->io = (int)rep->io;
                ce->threads = rep->threads;
                cx_install_report_free(rep);
                if (s->mock) {
                    struct mock_counts mc;
                    mock_server_counts(s->mock, &mc);
                    if (mc.in_flight_max > ce->inflight_max)
                        ce->inflight_max = mc.in_flight_max;
                }
                take_samples(s, &ttft[col], &lat[col]);
            }
        }
        for (int col = 0; col < N_COLS; col++) {
            struct cell *ce = &s->cells[row][col];
            if (ce->trials > 0) {
                ce->ran = 1;
                sweep_stats(ce->wall, ce->trials, &ce->mean, &ce->sd, &ce->min, &ce->max,
                            &ce->median);
                ce->model = sweep_model(col, n, ce->threads, ce->io, s->cores, s->L, s->c,
                                        s->scale);
                double sum = 0;
                for (int t = 0; t < ce->trials; t++)
                    sum += ce->wall[t];
                ce->throughput = sum > 0 ? (double)n * ce->trials / sum : 0;
                ce->ttft_p50 = sweep_percentile(ttft[col].v, ttft[col].n, 0.50);
                ce->lat_p50 = sweep_percentile(lat[col].v, lat[col].n, 0.50);
                ce->lat_p99 = sweep_percentile(lat[col].v, lat[col].n, 0.99);
            }
            free(ttft[col].v);
            free(lat[col].v);
        }
        /* free vs gil: the ratio of the means (the seed compares averages) and the spread of
         * the per-trial ratios (trial t of gil against trial t of free, run back to back). */
        struct cell *g = &s->cells[row][COL_GIL], *f = &s->cells[row][COL_FREE];
        if (g->ran && f->ran && f->mean > 0) {
            s->speedup[row] = g->mean / f->mean;
            s->model_speedup[row] = g->model / f->model;
            int k = g->trials < f->trials ? g->trials : f->trials;
            double r[MAX_TRIALS], mean, sd, lo, hi, med;
            for (int t = 0; t < k; t++)
                r[t] = f->wall[t] > 0 ? g->wall[t] / f->wall[t] : 0;
            sweep_stats(r, k, &mean, &sd, &lo, &hi, &med);
            s->speedup_cv[row] = mean > 0 ? sd / mean : 0;
        }
    }
    return failed ? -1 : 0;
}

/* ---- the 5-package timeline (sections 2.2 and 3.2) ---- */

int sweep_run_timeline(struct sweep *s)
{
    const int n = 5, cols[2] = {COL_GIL, COL_FREE};
    /* "LLM 2 s a call": the call split between latency and CPU as in the sweep's profile. */
    double call_ms = 2000, lat_ms = call_ms * s->latency_ms / (s->latency_ms + s->cpu_ms);
    double Lt = s->mock ? lat_ms * s->scale / 1000 : s->L;
    double ct = (call_ms - lat_ms) * s->scale / 1000;
    char err[256], conf[64];
    if (s->mock) {
        snprintf(conf, sizeof conf, "latency = %.3fms", lat_ms);
        if (mock_server_configure(s->mock, conf, err, sizeof err) < 0) {
            fprintf(stderr, "bench_sweep: mock: %s\n", err);
            return -1;
        }
    }
    int failed = 0;
    for (int m = 0; m < 2; m++) {
        int col = cols[m];
        struct timeline *tl = &s->tl[m];
        if (s->pipes[col] == NULL)
            continue;
        sweep_progress(s, "timeline: 5 packages, %s", sweep_col_name(col));
        set_work(s, col, topup_ns(s->phases[0].target_s, s->phases[0].own_s),
                 topup_ns(ct, s->own_cpu_s), topup_ns(s->phases[2].target_s, s->phases[2].own_s));
        double pv[MAX_TRIALS], lv[MAX_TRIALS], mv[MAX_TRIALS], av[MAX_TRIALS], tv[MAX_TRIALS];
        int k = 0;
        for (int t = 0; t < s->trials; t++) {
            struct cx_install_report *rep = NULL;
            struct apt_work apt = {topup_ns(s->phases[3].target_s, s->phases[3].own_s), 0};
            if (run_batch(s, col, n, &apt, &rep) < 0) {
                failed = 1;
                continue;
            }
            pv[k] = rep->timings.parse_s;
            lv[k] = rep->timings.llm_s;
            mv[k] = rep->timings.merge_s;
            av[k] = rep->timings.apt_s;
            tv[k] = rep->timings.total_s;
            k++;
            cx_install_report_free(rep);
        }
        set_work(s, col, 0, topup_ns(s->c, s->own_cpu_s), 0);
        if (k == 0)
            continue;
        tl->ran = 1;
        tl->parse_s = median_of(pv, k);
        tl->llm_s = median_of(lv, k);
        tl->merge_s = median_of(mv, k);
        tl->apt_s = median_of(av, k);
        tl->total_s = median_of(tv, k);
        double llm = sweep_model(col, n, n, CX_IO_THREAD_LOCAL, s->cores, Lt, ct, s->scale);
        tl->model_total_s = s->phases[0].target_s + llm + s->phases[2].target_s +
                            s->phases[3].target_s;
        tl->seed_total_s = (col == COL_GIL ? 18.0 : 10.0) * s->scale;
    }
    if (s->mock) {
        snprintf(conf, sizeof conf, "latency = %.3fms", s->latency_ms);
        if (mock_server_configure(s->mock, conf, err, sizeof err) < 0)
            failed = 1;
    }
    return failed ? -1 : 0;
}
