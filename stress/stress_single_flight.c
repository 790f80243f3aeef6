/*
 * stress_single_flight.c - identical queries released at the same instant, over and over, so
 * the router's single-flight table is read and written by many threads at once.
 *
 * The router stress sends identical queries too, but from threads that drift apart, so two of
 * them rarely look the table up in the same microsecond: a lookup done without sf_mu went
 * unseen there. Here T threads (--threads, default 32) wait on one barrier with the main
 * thread and are released together, each asking one of D distinct queries (D from 1 to 4,
 * chosen per round from the seed; every round uses fresh prompts, so nothing is in flight from
 * the round before). The in-process mock answers after a latency (200 ms x s_timeout_scale)
 * that dwarfs the time it takes to release the barrier, so every thread of a round joins while
 * its query's leader is still waiting for the mock.
 *
 * Checked after each round (exit 1 after printing the broken invariant):
 *   - every call succeeded (the mock injects no faults) with the answer to its own prompt, and
 *     every thread that asked the same query got the same answer, byte for byte;
 *   - per query, exactly one thread led (shared == 0, one attempt) and the rest shared; only a
 *     thread that started more than half a latency after the query's first thread may have
 *     led a second flight legitimately (the machine stalled it): such rounds are counted as
 *     "late" and reported, and at least one round must be fully aligned;
 *   - the mock saw exactly as many API requests as there were leaders, the router's
 *     provider request counters the same, its shared counter the rest, its query counter T.
 * A control round with single_flight off must see T requests for T threads: the mock's count
 * is a check that can fail. A monitor thread turns a hang (a follower never woken) into a
 * report naming the round.
 *
 * DESIGN. Threads: T callers (persistent, each with its own curl handle), the main thread
 * (releases rounds and checks them between two barriers), the s_util monitor, the mock's
 * threads. Shared: the router, the per-thread result slots (written by their caller before
 * the second barrier, read by main after it). Shutdown: main sets `stop` and releases the
 * barrier once more; callers return and are joined.
 *
 * Usage: stress_single_flight [--seed S] [--iters ROUNDS] [--threads T]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/limiter.h"
#include "cx/router.h"
#include "mock/server.h"
#include "s_util.h"

#define MAX_DISTINCT 4
#define LATENCY_MS 200

static const char *const k_pkgs[MAX_DISTINCT] = {"nginx", "redis", "postgresql", "docker"};

struct slot {
    int rc;
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    uint64_t t_start, t_end;
};

static struct {
    struct cx_router *router;
    pthread_barrier_t go, done;
    int threads;
    uint64_t seed;
    long round;         /* written by main before `go`, read by callers after it */
    int distinct;       /* likewise */
    int stop;           /* likewise */
    struct slot *slots; /* slot i: caller i's, read by main after `done` */
    _Atomic long progress;
    _Atomic long calls;
} g;

static atomic_int g_bad;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "stress_single_flight: invariant broken at line %d, round %ld: ", \
                    __LINE__, g.round);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
            atomic_store(&g_bad, 1);                                                          \
        }                                                                                     \
    } while (0)

static void prompt_of(long round, int q, char *buf, size_t n) {
    snprintf(buf, n, "Install package: %s (round %ld of seed %llu)", k_pkgs[q], round,
             (unsigned long long)g.seed);
}

static void *caller_main(void *arg) {
    int i = (int)(long)arg;
    for (;;) {
        pthread_barrier_wait(&g.go);
        if (g.stop) break;
        int q = i % g.distinct;
        char prompt[128];
        prompt_of(g.round, q, prompt, sizeof prompt);
        struct cx_llm_query qu;
        cx_llm_query_init(&qu);
        qu.task = CX_TASK_DEPENDENCY_RESOLUTION;
        qu.system = "You are a Linux package expert.";
        qu.prompt = prompt;
        qu.max_tokens = 256;
        qu.deadline = cx_deadline_after_ms(s_scaled_ms(30000));
        struct slot *s = &g.slots[i];
        cx_llm_response_init(&s->resp);
        memset(&s->ei, 0, sizeof s->ei);
        s->t_start = cx_now_ns();
        s->rc = cx_router_complete(g.router, &qu, &s->resp, &s->ei);
        s->t_end = cx_now_ns();
        atomic_fetch_add(&g.calls, 1);
        pthread_barrier_wait(&g.done);
    }
    return NULL;
}

static uint64_t router_requests(const struct cx_router_stats *st) {
    uint64_t n = 0;
    for (int p = 0; p < CX_PROVIDER_COUNT; p++) n += st->providers[p].requests;
    return n;
}

/* The mock counts a request when it has finished with it, a moment after the client has the
 * answer: wait (bounded) until it has counted `want`, then return what it counted. */
static uint64_t mock_api_requests(struct mock_server *m, uint64_t want) {
    struct mock_counts mc;
    uint64_t dl = cx_deadline_after_ms(s_scaled_ms(2000));
    for (;;) {
        mock_server_counts(m, &mc);
        if (mc.api_requests >= want || cx_deadline_expired(dl)) return mc.api_requests;
        cx_sleep_ns(CX_NSEC_PER_MSEC);
    }
}

/* Runs one round with `distinct` queries; returns 1 when it was aligned (no late thread). */
static int run_round(struct mock_server *m, int distinct, int single_flight, long *late_rounds) {
    int T = g.threads;
    struct cx_router_stats before, after;
    cx_router_stats(g.router, &before);
    struct mock_counts mc0;
    mock_server_counts(m, &mc0);
    g.distinct = distinct;
    pthread_barrier_wait(&g.go); /* release every caller at once */
    pthread_barrier_wait(&g.done);
    cx_router_stats(g.router, &after);

    uint64_t latency_ns = (uint64_t)s_scaled_ms(LATENCY_MS) * CX_NSEC_PER_MSEC;
    int leaders = 0, late = 0;
    for (int q = 0; q < distinct; q++) {
        const char *answer = NULL;
        uint64_t first_start = UINT64_MAX;
        for (int i = q; i < T; i += distinct)
            if (g.slots[i].t_start < first_start) first_start = g.slots[i].t_start;
        int lead_q = 0, late_q = 0;
        for (int i = q; i < T; i += distinct) {
            struct slot *s = &g.slots[i];
            CHECK(s->rc == 0, "thread %d (query %d): %s: %s", i, q, cx_err_name(s->rc), s->ei.msg);
            if (s->rc != 0) continue;
            CHECK(s->resp.content != NULL && strstr(s->resp.content, k_pkgs[q]) != NULL,
                  "thread %d: the answer does not name %s", i, k_pkgs[q]);
            if (answer == NULL) answer = s->resp.content;
            CHECK(s->resp.content != NULL && strcmp(s->resp.content, answer) == 0,
                  "thread %d got another answer than its query's other threads", i);
            if (!s->resp.shared) {
                lead_q++;
                CHECK(s->resp.attempts == 1, "leader %d made %d attempts", i, s->resp.attempts);
            }
            if (s->t_start > first_start + latency_ns / 2) late_q++;
        }
        int want = single_flight ? 1 : (T - q + distinct - 1) / distinct;
        if (lead_q > want && lead_q - want <= late_q) {
            late = 1; /* a stalled thread led a second flight after the first had ended */
        } else {
            CHECK(lead_q == want, "query %d (%d threads, %d started late): %d leaders, want %d",
                  q, (T - q + distinct - 1) / distinct, late_q, lead_q, want);
        }
        leaders += lead_q;
    }
    uint64_t seen = mock_api_requests(m, mc0.api_requests + (uint64_t)leaders) - mc0.api_requests;
    CHECK(seen == (uint64_t)leaders, "the mock saw %llu requests for %d leaders",
          (unsigned long long)seen, leaders);
    CHECK(router_requests(&after) - router_requests(&before) == (uint64_t)leaders,
          "the router counted %llu requests for %d leaders",
          (unsigned long long)(router_requests(&after) - router_requests(&before)), leaders);
    CHECK(after.shared - before.shared == (uint64_t)(T - leaders),
          "router stats: %llu shared, want %d", (unsigned long long)(after.shared - before.shared),
          T - leaders);
    CHECK(after.queries - before.queries == (uint64_t)T, "router stats: %llu queries for %d calls",
          (unsigned long long)(after.queries - before.queries), T);
    for (int i = 0; i < T; i++) cx_llm_response_clear(&g.slots[i].resp);
    if (late) (*late_rounds)++;
    atomic_fetch_add(&g.progress, 1);
    return !late;
}

static void describe(char *buf, size_t n) {
    snprintf(buf, n, "round %ld with %d distinct queries, %ld calls returned so far", g.round,
             g.distinct, atomic_load(&g.calls));
}

static struct cx_router *new_router(const char *base, struct cx_limiter *lim, int single_flight) {
    struct cx_router_options o;
    cx_router_options_init(&o);
    for (int p = 0; p < CX_PROVIDER_COUNT; p++) o.providers[p].api_key = "stress-key";
    o.base_url = base;
    o.limiter = lim;
    o.single_flight = single_flight;
    o.max_attempts = 1;
    struct cx_router *r = NULL;
    struct cx_errinfo ei;
    if (cx_router_new(&o, &r, &ei) < 0) {
        fprintf(stderr, "stress_single_flight: cx_router_new: %s\n", ei.msg);
        exit(2);
    }
    return r;
}

int main(int argc, char **argv) {
    struct s_args a = {1, 20, 32};
    s_args_parse("single_flight", argc, argv, &a, 1024);
    g.seed = a.seed;
    g.threads = a.threads;

    char cfg[256];
    snprintf(cfg, sizeof cfg, "seed = %llu\nlatency = %ldms\n", (unsigned long long)a.seed,
             s_scaled_ms(LATENCY_MS));
    struct mock_options mo;
    mock_options_init(&mo);
    mo.config_text = cfg;
    struct mock_server *m;
    char err[256];
    if (mock_server_start(&mo, &m, err, sizeof err) != 0) {
        fprintf(stderr, "stress_single_flight: mock: %s\n", err);
        return 2;
    }
    char base[160];
    snprintf(base, sizeof base, "%s/v1", mock_server_url(m));
    struct cx_limiter *lim;
    struct cx_errinfo ei;
    if (cx_limiter_new(1e6, 1e6, &lim, &ei) < 0) {
        fprintf(stderr, "stress_single_flight: limiter: %s\n", ei.msg);
        return 2;
    }
    g.slots = calloc((size_t)g.threads, sizeof *g.slots);
    pthread_t *th = calloc((size_t)g.threads, sizeof *th);
    if (g.slots == NULL || th == NULL) return 2;
    pthread_barrier_init(&g.go, NULL, (unsigned)g.threads + 1);
    pthread_barrier_init(&g.done, NULL, (unsigned)g.threads + 1);
    for (long i = 0; i < g.threads; i++) {
        if (pthread_create(&th[i], NULL, caller_main, (void *)i) != 0) {
            fprintf(stderr, "stress_single_flight: cannot start caller %ld\n", i);
            return 2;
        }
    }
    s_watch_start("single_flight", &g.progress, s_scaled_ms(60000), describe);

    /* Control: without single flight every thread's request reaches the mock. */
    uint64_t t0 = cx_now_ns();
    long late_rounds = 0, aligned = 0;
    g.router = new_router(base, lim, 0);
    g.round = 0;
    run_round(m, 1 + (int)(a.seed % MAX_DISTINCT), 0, &late_rounds);
    cx_router_free(g.router);

    g.router = new_router(base, lim, 1);
    uint64_t rng = a.seed;
    for (long r = 1; r <= a.iters && !atomic_load(&g_bad); r++) {
        g.round = r;
        int distinct = 1 + (int)(s_splitmix64(&rng) % MAX_DISTINCT);
        if (distinct > g.threads) distinct = g.threads;
        aligned += run_round(m, distinct, 1, &late_rounds);
    }
    CHECK(atomic_load(&g_bad) || aligned > 0, "no round was aligned: the threads never arrived "
          "together, so single flight was not tested (%ld late rounds)", late_rounds);
    g.stop = 1;
    pthread_barrier_wait(&g.go);
    for (int i = 0; i < g.threads; i++) pthread_join(th[i], NULL);
    s_watch_stop();
    struct cx_router_stats st;
    cx_router_stats(g.router, &st);
    struct mock_counts mc;
    mock_server_counts(m, &mc);
    printf("stress_single_flight: %ld rounds of %d threads (%ld aligned, %ld late), %llu shared "
           "answers, %llu mock requests, %.2f s\n", a.iters, g.threads, aligned, late_rounds,
           (unsigned long long)st.shared, (unsigned long long)mc.api_requests,
           cx_elapsed_s(t0, cx_now_ns()));
    /* threads: callers, the monitor, the mock's two workers and its timer thread */
    s_report("single_flight", g.threads + 1 + 3, atomic_load(&g.calls), !atomic_load(&g_bad));
    cx_router_free(g.router);
    cx_limiter_free(lim);
    mock_server_stop(m);
    pthread_barrier_destroy(&g.go);
    pthread_barrier_destroy(&g.done);
    free(g.slots);
    free(th);
    return atomic_load(&g_bad) ? 1 : 0;
}
