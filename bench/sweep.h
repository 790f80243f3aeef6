/*
 * sweep.h - what the files of bench_sweep share (nothing else includes it):
 *   bench_sweep.c  the command line and the order of the steps;
 *   sweep_run.c    the pipelines (one per column), calibration, one cell, the timeline;
 *   sweep_model.c  the model each cell is compared with (closed forms and the asyncio schedule);
 *   sweep_out.c    the stdout tables, JSON, CSV, the Markdown report and the gnuplot chart;
 *   sweep_gate.c   the comparison with a baseline JSON (--gate, --base).
 */
#ifndef CX_BENCH_SWEEP_H
#define CX_BENCH_SWEEP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cx/config.h"
#include "cx/http.h"
#include "cx/pipeline.h"

#define MAX_SIZES 16
#define MAX_TRIALS 64

/* The columns of the sweep. serial, gil and free use the thread-local design with one worker
 * per query (the seed's ParallelLLMExecutor(max_workers=n)); asyncio is the seed's shipped
 * design (gil, at most 5 at once, 5 requests/s); hybrid and auto are the other two I/O designs,
 * free-threaded. */
enum col { COL_SERIAL, COL_GIL, COL_FREE, COL_ASYNCIO, COL_HYBRID, COL_AUTO, N_COLS };

/* Time samples of one cell's HTTP transfers (the timing hook), seconds. */
struct samples {
    double *v;
    size_t n, cap;
};

struct cell {
    int ran;                    /* 1 when measured */
    int trials;                 /* trials measured */
    double wall[MAX_TRIALS];    /* per trial: the fan-out (report timings.llm_s), seconds */
    double total[MAX_TRIALS];   /* per trial: the whole install call */
    double mean, sd, min, max, median;
    double model;               /* predicted seconds */
    unsigned inflight_max;      /* most requests in flight the mock saw (0: not known) */
    double ttft_p50, lat_p50, lat_p99; /* HTTP: to the first body byte (TTFT when streamed)
                                          / to the end, seconds; -1: none */
    double throughput;          /* queries per second over the trials */
    int io;                     /* design the runs used (enum cx_io_design) */
    int threads;                /* worker threads the runs used */
};

/* One phase of the seed profile: what the seed says it costs, what the runtime's own work
 * measured, what the bench tops up with CPU work (all seconds, after the time scale). */
struct phase {
    const char *name;
    double target_s, own_s, topup_s;
};

/* The 5-package timeline of one mode (sections 2.2 and 3.2). */
struct timeline {
    int ran;
    double parse_s, llm_s, merge_s, apt_s, total_s; /* measured, medians */
    double model_total_s;
    double seed_total_s;        /* the seed's figure for the mode, scaled */
};

struct sweep {
    /* parameters */
    int sizes[MAX_SIZES];
    int n_sizes;
    int trials;
    double latency_ms;          /* unscaled, the seed's seconds x 1000 */
    double cpu_ms;              /* unscaled */
    double scale;
    uint64_t seed;
    int cols[N_COLS];           /* 1: run this column */
    int serial_max;             /* serial cells only up to this n */
    int big_n;                  /* > 0: one more row, the hybrid column only */
    int timeline;               /* 1: run the 5-package timeline */
    const char *json_path;
    const char *gate_path;
    const char *base_path;      /* baseline for the report's base-vs-head (default: gate's) */
    const char *out_dir;        /* results folder: report.md, sweep.json, sweep.csv, chart */
    const char *db_dir;         /* where the pipelines' SQLite files go (default: a temp dir) */
    const char *commit;
    const char *cmdline;        /* owned */
    double tolerance, model_tolerance, cv_limit;
    int quiet;                  /* 1: no progress on stderr */
    int stream;                 /* 1: streamed answers (SSE): TTFT is the first event's */
    /* another server (section 3) */
    const char *base_url_opt;   /* NULL: the embedded mock */
    int api;                    /* CX_API_OPENAI or CX_API_ANTHROPIC */
    const char *model;          /* NULL: the provider's default ("kimi-k2-instruct" for mock) */
    /* machine */
    int cores;
    char cpu_model[128];
    double load_before[3], load_after[3];
    /* run state */
    struct mock_server *mock;
    char base_url[256];
    struct cx_config cfg;       /* keys from the environment */
    char tmpdir[256];
    struct cx_pipeline *pipes[N_COLS];
    double L, c;                /* scaled latency and CPU per answer, seconds */
    double own_cpu_s;           /* the pipeline's own CPU per answer, measured */
    struct phase phases[4];     /* parse, llm (per answer CPU), merge, apt */
    uint64_t batch_no;          /* makes every package name new: every query misses the cache */
    /* samples of the current batch (timing hook) */
    pthread_mutex_t smu;
    struct samples ttft, lat;
    /* results */
    struct cell cells[MAX_SIZES + 1][N_COLS]; /* the last row: big_n */
    struct timeline tl[2];                    /* gil, free */
    double speedup[MAX_SIZES + 1];            /* free vs gil, median of per-trial ratios */
    double speedup_cv[MAX_SIZES + 1];         /* coefficient of variation of the ratios */
    double model_speedup[MAX_SIZES + 1];
    int gate_bad;
};

/* Column names ("serial", "gil", "free", "asyncio", "hybrid", "auto"). */
const char *sweep_col_name(int col);
/* 1 when row i (0..n_sizes, n_sizes being the big row) of column col is measured. */
int sweep_cell_wanted(const struct sweep *s, int row, int col);
int sweep_row_n(const struct sweep *s, int row);
int sweep_rows(const struct sweep *s);

/* sweep_run.c */
int sweep_setup(struct sweep *s);
void sweep_teardown(struct sweep *s);
int sweep_calibrate(struct sweep *s);
int sweep_run_cells(struct sweep *s);
int sweep_run_timeline(struct sweep *s);
void sweep_progress(const struct sweep *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* sweep_model.c */
/* Predicted seconds of column col for n queries on P cores, with latency L and CPU c per
 * answer; threads and io are what the run used (auto picks them). */
double sweep_model(int col, int n, int threads, int io, int cores, double L, double c,
                   double scale);
/* The asyncio schedule: at most `conc` queries at once, a token bucket (rate rps, burst),
 * CPU serialized; returns the makespan. */
double sweep_model_asyncio(int n, int conc, double rps, double burst, double L, double c);
void sweep_stats(const double *v, int n, double *mean, double *sd, double *min, double *max,
                 double *median);
double sweep_percentile(double *v, size_t n, double p); /* sorts v */

/* sweep_out.c */
void sweep_print_tables(struct sweep *s, FILE *f);
int sweep_write_json(const struct sweep *s, const char *path);
int sweep_write_outputs(struct sweep *s);

/* sweep_gate.c */
/* Compares with s->gate_path; prints and returns the number of regressions. */
int sweep_gate(struct sweep *s);
/* The baseline's free-vs-GIL speedup at n, or -1. */
double sweep_base_speedup(const char *path, int n);

#endif /* CX_BENCH_SWEEP_H */
