/*
 * stats.c - the mock server's statistics: relaxed atomic counters (requests by route and status,
 * injected faults, in flight now and at most) and log-bucket histograms of microseconds (32
 * sub-buckets per power of two, about 3% resolution, no locks), exported as the /stats JSON and
 * the /metrics Prometheus text. Resetting zeroes counters while requests may still be counted;
 * a count that races with a reset lands on either side of it, which is fine for statistics.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_internal.h"

const char *const mock__hist_names[MOCK_H_COUNT] = {
    "configured", "delivered", "error", "queued", "ttft", "itl", "e2e", "timer_late", "resume"};

static const unsigned status_codes[MOCK_STATUS_SLOTS] = {
    0, 200, 400, 401, 403, 404, 405, 408, 413, 422, 429, 500, 502, 503, 504, 529};

static const double prom_bounds_s[MOCK_PROM_BOUNDS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

#define RLX memory_order_relaxed

static void hist_zero(struct mock_hist *h)
{
    for (size_t i = 0; i < MOCK_HIST_BUCKETS; i++)
        atomic_store_explicit(&h->b[i], 0, RLX);
    for (size_t i = 0; i <= MOCK_PROM_BOUNDS; i++)
        atomic_store_explicit(&h->prom[i], 0, RLX);
    atomic_store_explicit(&h->count, 0, RLX);
    atomic_store_explicit(&h->sum_us, 0, RLX);
    atomic_store_explicit(&h->min_us, UINT64_MAX, RLX);
    atomic_store_explicit(&h->max_us, 0, RLX);
}

void mock__stats_reset(struct mock_stats *st)
{
    st->start_ns = mock__now_ns();
    for (int r = 0; r < MOCK_ROUTE_COUNT; r++) {
        atomic_store_explicit(&st->route_requests[r], 0, RLX);
        for (int i = 0; i < MOCK_STATUS_SLOTS; i++)
            atomic_store_explicit(&st->route_status[r][i], 0, RLX);
    }
    for (int f = 0; f < MOCK_FAULT_COUNT; f++)
        atomic_store_explicit(&st->faults[f], 0, RLX);
    atomic_store_explicit(&st->rate_limited, 0, RLX);
    atomic_store_explicit(&st->in_flight_max, atomic_load_explicit(&st->in_flight, RLX), RLX);
    atomic_store_explicit(&st->queued_max, 0, RLX);
    pthread_mutex_lock(&st->tok_mu);
    memset(st->tok, 0, sizeof st->tok);
    st->tok_n = 0;
    pthread_mutex_unlock(&st->tok_mu);
    for (int i = 0; i < MOCK_H_COUNT; i++)
        hist_zero(&st->h[i]);
}

void mock__stats_init(struct mock_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->tok_mu, NULL);
    mock__stats_reset(st);
}

void mock__stats_destroy(struct mock_stats *st)
{
    pthread_mutex_destroy(&st->tok_mu);
}

void mock__stats_tokens(struct mock_stats *st, int route, const char *model, unsigned prompt,
                        unsigned completion)
{
    if (!model)
        model = "";
    pthread_mutex_lock(&st->tok_mu);
    struct mock_tokrow *t = NULL;
    for (unsigned i = 0; i < st->tok_n && !t; i++)
        if (st->tok[i].route == route && !strcmp(st->tok[i].model, model))
            t = &st->tok[i];
    if (!t && st->tok_n < MOCK_TOK_ROWS && strlen(model) < sizeof t->model) {
        t = &st->tok[st->tok_n++];
        t->route = route;
        snprintf(t->model, sizeof t->model, "%s", model);
    }
    if (!t) {
        t = &st->tok[MOCK_TOK_ROWS];
        t->route = -1;
        snprintf(t->model, sizeof t->model, "_other");
    }
    t->requests++;
    t->prompt += prompt;
    t->completion += completion;
    pthread_mutex_unlock(&st->tok_mu);
}

/* Appends a Prometheus label value (escaping \\, " and newlines). */
static void prom_label(struct mock_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            mock__buf_fmt(b, "\\%c", *v);
        else if (*v == '\n')
            mock__buf_str(b, "\\n");
        else
            mock__buf_add(b, v, 1);
    }
}

static void prom_tokens(struct mock_buf *b, struct mock_stats *st)
{
    static const char *const names[3] = {"mock_model_requests_total", "mock_prompt_tokens_total",
                                         "mock_completion_tokens_total"};
    static const char *const help[3] = {"Answered API requests", "Prompt (input) tokens",
                                        "Completion (output) tokens"};
    pthread_mutex_lock(&st->tok_mu);
    for (int k = 0; k < 3; k++) {
        mock__buf_fmt(b, "# HELP %s %s, by route and model.\n# TYPE %s counter\n", names[k],
                      help[k], names[k]);
        for (unsigned i = 0; i <= MOCK_TOK_ROWS; i++) {
            const struct mock_tokrow *t = &st->tok[i];
            if (i == MOCK_TOK_ROWS ? t->requests == 0 : i >= st->tok_n)
                continue;
            uint64_t v = k == 0 ? t->requests : k == 1 ? t->prompt : t->completion;
            mock__buf_fmt(b, "%s{route=\"%s\",model=\"", names[k],
                          t->route >= 0 ? mock__route_names[t->route] : "_other");
            prom_label(b, t->model);
            mock__buf_fmt(b, "\"} %llu\n", (unsigned long long)v);
        }
    }
    pthread_mutex_unlock(&st->tok_mu);
}

static void json_tokens(struct mock_buf *b, struct mock_stats *st)
{
    mock__buf_str(b, ",\"tokens\":[");
    pthread_mutex_lock(&st->tok_mu);
    int first = 1;
    for (unsigned i = 0; i <= MOCK_TOK_ROWS; i++) {
        const struct mock_tokrow *t = &st->tok[i];
        if (i == MOCK_TOK_ROWS ? t->requests == 0 : i >= st->tok_n)
            continue;
        mock__buf_fmt(b, "%s{\"route\":\"%s\",\"model\":", first ? "" : ",",
                      t->route >= 0 ? mock__route_names[t->route] : "_other");
        mock__buf_json_str(b, t->model, strlen(t->model));
        mock__buf_fmt(b, ",\"requests\":%llu,\"prompt_tokens\":%llu,\"completion_tokens\":%llu}",
                      (unsigned long long)t->requests, (unsigned long long)t->prompt,
                      (unsigned long long)t->completion);
        first = 0;
    }
    pthread_mutex_unlock(&st->tok_mu);
    mock__buf_str(b, "]");
}

static size_t bucket_of(uint64_t v)
{
    if (v < MOCK_HIST_SUB)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v);
    if (e > 40)
        return MOCK_HIST_BUCKETS - 1;
    int sh = e - MOCK_HIST_SUB_BITS;
    return MOCK_HIST_SUB + (size_t)sh * MOCK_HIST_SUB + (size_t)((v >> sh) & (MOCK_HIST_SUB - 1));
}

static double bucket_mid_us(size_t i)
{
    if (i < MOCK_HIST_SUB)
        return (double)i;
    size_t row = (i - MOCK_HIST_SUB) / MOCK_HIST_SUB, sub = (i - MOCK_HIST_SUB) % MOCK_HIST_SUB;
    double width = ldexp(1.0, (int)row);
    return (double)(MOCK_HIST_SUB + sub) * width + width / 2;
}

void mock__hist_add_ns(struct mock_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    atomic_fetch_add_explicit(&h->b[bucket_of(us)], 1, RLX);
    size_t p = 0;
    while (p < MOCK_PROM_BOUNDS && (double)ns > prom_bounds_s[p] * 1e9)
        p++;
    atomic_fetch_add_explicit(&h->prom[p], 1, RLX);
    atomic_fetch_add_explicit(&h->count, 1, RLX);
    atomic_fetch_add_explicit(&h->sum_us, us, RLX);
    uint64_t m = atomic_load_explicit(&h->min_us, RLX);
    while (us < m && !atomic_compare_exchange_weak_explicit(&h->min_us, &m, us, RLX, RLX))
        ;
    m = atomic_load_explicit(&h->max_us, RLX);
    while (us > m && !atomic_compare_exchange_weak_explicit(&h->max_us, &m, us, RLX, RLX))
        ;
}

void mock__stats_status(struct mock_stats *st, int route, unsigned status)
{
    int slot = 0;
    for (int i = 1; i < MOCK_STATUS_SLOTS; i++)
        if (status_codes[i] == status)
            slot = i;
    atomic_fetch_add_explicit(&st->route_requests[route], 1, RLX);
    atomic_fetch_add_explicit(&st->route_status[route][slot], 1, RLX);
}

void mock__stats_in_flight_inc(struct mock_stats *st)
{
    unsigned n = atomic_fetch_add_explicit(&st->in_flight, 1, RLX) + 1;
    unsigned m = atomic_load_explicit(&st->in_flight_max, RLX);
    while (n > m && !atomic_compare_exchange_weak_explicit(&st->in_flight_max, &m, n, RLX, RLX))
        ;
}

/* Snapshot of a histogram: percentiles in ms. */
struct hsnap {
    uint64_t count;
    double mean, min, max, p50, p90, p99, p999, sum_s;
};

static double pct(const uint64_t *b, uint64_t count, double q)
{
    if (!count)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)count);
    if (rank < 1)
        rank = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < MOCK_HIST_BUCKETS; i++) {
        acc += b[i];
        if (acc >= rank)
            return bucket_mid_us(i) / 1000.0;
    }
    return bucket_mid_us(MOCK_HIST_BUCKETS - 1) / 1000.0;
}

static void snap(struct mock_hist *h, struct hsnap *s)
{
    uint64_t *b = malloc(MOCK_HIST_BUCKETS * sizeof *b);
    memset(s, 0, sizeof *s);
    if (!b)
        return;
    uint64_t total = 0;
    for (size_t i = 0; i < MOCK_HIST_BUCKETS; i++) {
        b[i] = atomic_load_explicit(&h->b[i], RLX);
        total += b[i];
    }
    s->count = total;
    if (!total) {
        free(b);
        return;
    }
    uint64_t sum = atomic_load_explicit(&h->sum_us, RLX);
    uint64_t mn = atomic_load_explicit(&h->min_us, RLX), mx = atomic_load_explicit(&h->max_us, RLX);
    s->sum_s = (double)sum / 1e6;
    s->mean = (double)sum / (double)total / 1000.0;
    s->min = mn == UINT64_MAX ? 0 : (double)mn / 1000.0;
    s->max = (double)mx / 1000.0;
    s->p50 = pct(b, total, 0.50);
    s->p90 = pct(b, total, 0.90);
    s->p99 = pct(b, total, 0.99);
    s->p999 = pct(b, total, 0.999);
    free(b);
    /* Bucket midpoints can step outside the observed range; keep them inside. */
    double *ps[] = {&s->p50, &s->p90, &s->p99, &s->p999};
    for (int i = 0; i < 4; i++) {
        if (*ps[i] < s->min)
            *ps[i] = s->min;
        if (*ps[i] > s->max)
            *ps[i] = s->max;
    }
}

char *mock__stats_json(struct mock_stats *st, unsigned running, unsigned queued)
{
    struct mock_buf b = {0};
    uint64_t total = 0;
    for (int r = 0; r < MOCK_ROUTE_COUNT; r++)
        total += atomic_load_explicit(&st->route_requests[r], RLX);
    mock__buf_fmt(&b, "{\"uptime_s\":%.3f,\"requests\":%llu,\"in_flight\":%u,"
                  "\"in_flight_max\":%u,\"running\":%u,\"queued\":%u,\"queued_max\":%u,"
                  "\"routes\":{",
                  (double)(mock__now_ns() - st->start_ns) / 1e9, (unsigned long long)total,
                  atomic_load_explicit(&st->in_flight, RLX),
                  atomic_load_explicit(&st->in_flight_max, RLX), running, queued,
                  atomic_load_explicit(&st->queued_max, RLX));
    for (int r = 0; r < MOCK_ROUTE_COUNT; r++) {
        mock__buf_fmt(&b, "%s\"%s\":{\"requests\":%llu,\"status\":{", r ? "," : "",
                      mock__route_names[r],
                      (unsigned long long)atomic_load_explicit(&st->route_requests[r], RLX));
        int first = 1;
        for (int i = 0; i < MOCK_STATUS_SLOTS; i++) {
            uint64_t n = atomic_load_explicit(&st->route_status[r][i], RLX);
            if (!n)
                continue;
            if (i == 0)
                mock__buf_fmt(&b, "%s\"other\":%llu", first ? "" : ",", (unsigned long long)n);
            else
                mock__buf_fmt(&b, "%s\"%u\":%llu", first ? "" : ",", status_codes[i],
                              (unsigned long long)n);
            first = 0;
        }
        mock__buf_str(&b, "}}");
    }
    mock__buf_str(&b, "},\"faults\":{");
    int first = 1;
    for (int f = 1; f < MOCK_FAULT_COUNT; f++) {
        uint64_t n = atomic_load_explicit(&st->faults[f], RLX);
        if (!n)
            continue;
        mock__buf_fmt(&b, "%s\"%s\":%llu", first ? "" : ",", mock__fault_names[f],
                      (unsigned long long)n);
        first = 0;
    }
    mock__buf_fmt(&b, "},\"rate_limited\":%llu",
                  (unsigned long long)atomic_load_explicit(&st->rate_limited, RLX));
    json_tokens(&b, st);
    mock__buf_str(&b, ",\"histograms\":{");
    for (int i = 0; i < MOCK_H_COUNT; i++) {
        struct hsnap s;
        snap(&st->h[i], &s);
        mock__buf_fmt(&b, "%s\"%s\":{\"count\":%llu,\"mean\":%.3f,\"min\":%.3f,\"max\":%.3f,"
                      "\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f}",
                      i ? "," : "", mock__hist_names[i], (unsigned long long)s.count, s.mean,
                      s.min, s.max, s.p50, s.p90, s.p99, s.p999);
    }
    mock__buf_str(&b, "}}");
    if (b.oom) {
        mock__buf_free(&b);
        return NULL;
    }
    return b.p;
}

char *mock__stats_prometheus(struct mock_stats *st, unsigned running, unsigned queued)
{
    struct mock_buf b = {0};
    mock__buf_str(&b, "# HELP mock_requests_total Requests answered or closed, by route and "
                      "status.\n# TYPE mock_requests_total counter\n");
    for (int r = 0; r < MOCK_ROUTE_COUNT; r++)
        for (int i = 0; i < MOCK_STATUS_SLOTS; i++) {
            uint64_t n = atomic_load_explicit(&st->route_status[r][i], RLX);
            if (!n)
                continue;
            if (i == 0)
                mock__buf_fmt(&b, "mock_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                              mock__route_names[r], (unsigned long long)n);
            else
                mock__buf_fmt(&b, "mock_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                              mock__route_names[r], status_codes[i], (unsigned long long)n);
        }
    mock__buf_str(&b, "# HELP mock_faults_total Injected faults by name.\n"
                      "# TYPE mock_faults_total counter\n");
    for (int f = 1; f < MOCK_FAULT_COUNT; f++)
        mock__buf_fmt(&b, "mock_faults_total{fault=\"%s\"} %llu\n", mock__fault_names[f],
                      (unsigned long long)atomic_load_explicit(&st->faults[f], RLX));
    mock__buf_fmt(&b, "# HELP mock_rate_limited_total 429s from the server-side rate limit.\n"
                  "# TYPE mock_rate_limited_total counter\nmock_rate_limited_total %llu\n",
                  (unsigned long long)atomic_load_explicit(&st->rate_limited, RLX));
    mock__buf_fmt(&b, "# HELP mock_in_flight Requests received and not finished.\n"
                  "# TYPE mock_in_flight gauge\nmock_in_flight %u\n"
                  "# HELP mock_in_flight_max Most requests ever in flight at once.\n"
                  "# TYPE mock_in_flight_max gauge\nmock_in_flight_max %u\n"
                  "# HELP mock_running API requests holding a max_running slot.\n"
                  "# TYPE mock_running gauge\nmock_running %u\n"
                  "# HELP mock_queued API requests waiting for a slot.\n"
                  "# TYPE mock_queued gauge\nmock_queued %u\n",
                  atomic_load_explicit(&st->in_flight, RLX),
                  atomic_load_explicit(&st->in_flight_max, RLX), running, queued);
    prom_tokens(&b, st);
    for (int i = 0; i < MOCK_H_COUNT; i++) {
        const char *n = mock__hist_names[i];
        struct mock_hist *h = &st->h[i];
        mock__buf_fmt(&b, "# HELP mock_%s_seconds %s latency.\n# TYPE mock_%s_seconds histogram\n",
                      n, n, n);
        uint64_t acc = 0;
        for (int p = 0; p < MOCK_PROM_BOUNDS; p++) {
            acc += atomic_load_explicit(&h->prom[p], RLX);
            mock__buf_fmt(&b, "mock_%s_seconds_bucket{le=\"%g\"} %llu\n", n, prom_bounds_s[p],
                          (unsigned long long)acc);
        }
        acc += atomic_load_explicit(&h->prom[MOCK_PROM_BOUNDS], RLX);
        mock__buf_fmt(&b, "mock_%s_seconds_bucket{le=\"+Inf\"} %llu\n", n, (unsigned long long)acc);
        mock__buf_fmt(&b, "mock_%s_seconds_sum %.6f\nmock_%s_seconds_count %llu\n", n,
                      (double)atomic_load_explicit(&h->sum_us, RLX) / 1e6, n,
                      (unsigned long long)acc);
    }
    if (b.oom) {
        mock__buf_free(&b);
        return NULL;
    }
    return b.p;
}

void mock__stats_counts(struct mock_stats *st, struct mock_counts *out)
{
    memset(out, 0, sizeof *out);
    for (int r = 0; r < MOCK_ROUTE_COUNT; r++) {
        uint64_t n = atomic_load_explicit(&st->route_requests[r], RLX);
        out->requests += n;
        if (mock__route_is_api(r))
            out->api_requests += n;
        for (int i = 1; i < MOCK_STATUS_SLOTS; i++) {
            uint64_t c = atomic_load_explicit(&st->route_status[r][i], RLX);
            if (status_codes[i] < 300)
                out->status_2xx += c;
            else if (status_codes[i] < 500)
                out->status_4xx += c;
            else
                out->status_5xx += c;
        }
    }
    for (int f = 1; f < MOCK_FAULT_COUNT; f++)
        out->faults += atomic_load_explicit(&st->faults[f], RLX);
    out->rate_limited = atomic_load_explicit(&st->rate_limited, RLX);
    out->in_flight = atomic_load_explicit(&st->in_flight, RLX);
    out->in_flight_max = atomic_load_explicit(&st->in_flight_max, RLX);
}
