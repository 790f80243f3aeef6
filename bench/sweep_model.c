/*
 * sweep_model.c - the seconds each cell of the sweep should take, from L (latency per call), c
 * (CPU per answer) and P (usable cores). Nothing here is measured or typed in: every figure
 * the sweep prints next to a measurement comes from these formulas.
 *
 *   serial   n (L + c)                      one query after the other
 *   gil      L + n c                        the waits overlap, the CPU sections take turns
 *   free     L + max(1, n / P) c            the CPU sections share P cores (the kernel
 *                                           time-slices runnable threads)
 *   hybrid   L + max(1, n / min(P, t)) c    every call in flight at once, t CPU workers
 *   thread-local with t < n workers (auto may pick it): ceil(n / t) waves, each
 *            L + max(1, k / P) c for its k queries
 *   asyncio  the seed's shipped design, simulated: at most 5 queries at once, a token bucket
 *            of 5 requests/s (burst 5; both on the scaled clock), one CPU for every answer
 */
#include <math.h>
#include <stdlib.h>

#include "sweep.h"

static double share(int k, int p) { return k > p ? (double)k / p : 1.0; }

double sweep_model_asyncio(int n, int conc, double rps, double burst, double L, double c)
{
    if (n <= 0)
        return 0;
    if (conc < 1)
        conc = 1;
    /* Slots free at slot_t[]; queries take the earliest free slot in order, then the k-th
     * token (the bucket starts full), then wait L, then the one CPU in arrival order (the
     * arrivals are in order because slots and tokens are handed out in order). */
    double *slot_t = calloc((size_t)conc, sizeof *slot_t);
    if (slot_t == NULL)
        return -1;
    double cpu_free = 0, end = 0;
    int b = burst < 1 ? 1 : (int)burst;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < conc; k++)
            if (slot_t[k] < slot_t[best])
                best = k;
        double start = slot_t[best];
        if (rps > 0 && i >= b) {
            double tok = (double)(i - b + 1) / rps;
            if (tok > start)
                start = tok;
        }
        double io_end = start + L;
        double cpu_start = io_end > cpu_free ? io_end : cpu_free;
        cpu_free = cpu_start + c;
        slot_t[best] = cpu_free;
        if (cpu_free > end)
            end = cpu_free;
    }
    free(slot_t);
    return end;
}

double sweep_model(int col, int n, int threads, int io, int cores, double L, double c,
                   double scale)
{
    int p = cores < 1 ? 1 : cores;
    int t = threads < 1 ? 1 : threads;
    switch (col) {
    case COL_SERIAL: return n * (L + c);
    case COL_GIL: return L + n * c;
    case COL_FREE: return L + share(n, p < n ? p : n) * c;
    case COL_ASYNCIO: return sweep_model_asyncio(n, 5, 5.0 / scale, 5, L, c);
    default: break;
    }
    /* hybrid, or whatever auto chose */
    if (io == CX_IO_HYBRID || t >= n) {
        int w = io == CX_IO_HYBRID ? (t < p ? t : p) : p;
        return L + share(n, w) * c;
    }
    double sum = 0;
    for (int left = n; left > 0; left -= t) {
        int k = left < t ? left : t;
        sum += L + share(k, p) * c;
    }
    return sum;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sweep_stats(const double *v, int n, double *mean, double *sd, double *min, double *max,
                 double *median)
{
    *mean = *sd = *min = *max = *median = 0;
    if (n <= 0)
        return;
    double sum = 0, lo = v[0], hi = v[0];
    double tmp[MAX_TRIALS];
    for (int i = 0; i < n; i++) {
        sum += v[i];
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
        tmp[i] = v[i];
    }
    double m = sum / n, sq = 0;
    for (int i = 0; i < n; i++)
        sq += (v[i] - m) * (v[i] - m);
    qsort(tmp, (size_t)n, sizeof tmp[0], cmp_double);
    *mean = m;
    *sd = n > 1 ? sqrt(sq / (n - 1)) : 0; /* the sample deviation, as statistics.stdev */
    *min = lo;
    *max = hi;
    *median = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

double sweep_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    qsort(v, n, sizeof v[0], cmp_double);
    double r = p * (double)(n - 1); /* linear between closest ranks */
    size_t lo = (size_t)r;
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (r - (double)lo) * (v[lo + 1] - v[lo]);
}
