/*
 * stress_pipeline.c - many concurrent install runs on one data directory.
 *
 * One in-process mock server; RUNNERS threads. Runners 0..SHARED-1 share one pipeline (one
 * pool, cache and router); the others each open their own pipeline on the same database file,
 * as separate processes would. Each iteration installs 1-4 packages drawn from a small list
 * (the seed's five and a hundred generic ones, so answers are shared through the cache and
 * through single flight, and misses keep happening), with a random I/O design per private
 * pipeline, the execution mode per runner, some private pipelines without a cache, some with
 * the similarity cache (tool-21 and tool-50 embed alike: an install must still get its own
 * package's plan), and now and then a scripted "dangerous" fault.
 *
 * Invariants checked (exit 1 after printing the first broken one):
 *   - every run returns 0 or CX_EREJECTED (a dangerous answer), with a report;
 *   - a refused run has a rejected package, ran nothing and its plan holds no dangerous command;
 *     an accepted run's plan starts with one apt-get update and installs every package asked
 *     (a tool-N exactly: "sudo apt-get install -y tool-N");
 *   - every run got a history id, all ids are distinct, and the history table holds exactly one
 *     row per run when everything is closed.
 *
 * Usage: stress_pipeline [--seed S] [--iters N]   (N = total install runs)
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/pipeline.h"
#include "mock/server.h"
#include "s_util.h"

/* The table cx/history.h writes. */
#define CX_HISTORY_TABLE "installation_history"

#define RUNNERS 6
#define SHARED 3

static _Atomic int g_failed;

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "stress_pipeline: invariant broken at line %d: ", __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n");                                                              \
            atomic_store(&g_failed, 1);                                                         \
        }                                                                                       \
    } while (0)

static const char *const k_pkgs[] = {"nginx", "redis", "postgresql", "docker", "nodejs",
                                     "htop", "git", "curl"};
#define NFIXED (sizeof k_pkgs / sizeof k_pkgs[0])
/* Plus generic names tool-0 .. tool-(NTOOLS-1), so runs keep missing the cache for a while. */
#define NTOOLS 96
#define NPKGS (NFIXED + NTOOLS)
static char g_tools[NTOOLS][16];

struct shared {
    struct mock_server *mock;
    char url[256];
    char db[4096];
    struct cx_pipeline *common;
    _Atomic long next_iter;
    long iters;
    uint64_t seed;
    pthread_mutex_t ids_mu;
    int64_t *ids; /* guarded by ids_mu */
    long nids;    /* guarded by ids_mu */
    _Atomic long refused, faults;
};

struct runner {
    struct shared *sh;
    int index;
    uint64_t rng;
};

static struct cx_pipeline *open_pipeline(struct shared *sh, enum cx_io_design io,
                                         enum cx_exec_mode mode, int use_cache, int similar)
{
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.use_cache = use_cache;
    o.similar_cache = similar;
    o.base_url = sh->url;
    o.db_path = sh->db;
    o.have_io = 1;
    o.io = io;
    o.have_mode = 1;
    o.mode = mode;
    o.rate_limit_rps = 1e6;
    o.max_attempts = 1;
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_pipeline_new(&o, &p, &ei) < 0) {
        fprintf(stderr, "stress_pipeline: cx_pipeline_new: %s\n", ei.msg);
        return NULL;
    }
    return p;
}

static int plan_has(const struct cx_plan *pl, const char *needle)
{
    for (size_t i = 0; i < pl->n; i++)
        if (strstr(pl->commands[i], needle) != NULL)
            return 1;
    return 0;
}

/* Does the plan install pkg? A generic tool exactly (tool-2 is not tool-21). */
static int plan_installs(const struct cx_plan *pl, const char *pkg)
{
    if (strncmp(pkg, "tool-", 5) != 0)
        return plan_has(pl, pkg);
    char want[64];
    snprintf(want, sizeof want, "sudo apt-get install -y %s", pkg);
    for (size_t i = 0; i < pl->n; i++)
        if (strcmp(pl->commands[i], want) == 0)
            return 1;
    return 0;
}

static void check_report(struct shared *sh, int rc, const struct cx_install_report *r,
                         const char *request, const char *const *pk, size_t npk)
{
    CHECK(r != NULL, "no report for '%s' (rc %s)", request, cx_err_name(rc));
    if (r == NULL)
        return;
    CHECK(rc == 0 || rc == CX_EREJECTED, "'%s': rc %s", request, cx_err_name(rc));
    CHECK(r->history_id >= 0, "'%s': not recorded: %s", request,
          r->history_error ? r->history_error : "?");
    CHECK(r->failed == 0, "'%s': %zu queries failed", request, r->failed);
    CHECK(r->ran == 0, "'%s': something ran", request);
    if (rc == CX_EREJECTED) {
        atomic_fetch_add(&sh->refused, 1);
        CHECK(r->refused && r->rejected >= 1, "'%s': refused without a rejection", request);
        CHECK(!plan_has(&r->plan, "example.invalid") && !plan_has(&r->plan, "rm -rf /"),
              "'%s': dangerous command in the merged plan", request);
    } else {
        CHECK(!r->refused && r->rejected == 0, "'%s': accepted with a rejection", request);
        CHECK(r->plan.n > 0 && strstr(r->plan.commands[0], "update") != NULL,
              "'%s': the plan does not start with the update", request);
        for (size_t i = 0; i < npk; i++) {
            CHECK(plan_installs(&r->plan, pk[i]), "'%s': nothing installs %s", request, pk[i]);
            if (!plan_installs(&r->plan, pk[i]))
                for (size_t k = 0; k < r->plan.n; k++)
                    fprintf(stderr, "    plan[%zu] %s\n", k, r->plan.commands[k]);
        }
    }
    pthread_mutex_lock(&sh->ids_mu);
    sh->ids[sh->nids++] = r->history_id;
    pthread_mutex_unlock(&sh->ids_mu);
}

static void *runner_main(void *arg)
{
    struct runner *rn = arg;
    struct shared *sh = rn->sh;
    enum cx_exec_mode mode = (enum cx_exec_mode)(rn->index % 3);
    struct cx_pipeline *own = NULL;
    if (rn->index >= SHARED) {
        own = open_pipeline(sh, s_xorshift64(&rn->rng) % 2 ? CX_IO_HYBRID : CX_IO_THREAD_LOCAL,
                            mode, rn->index % 2, rn->index % 2 && s_xorshift64(&rn->rng) % 2);
        CHECK(own != NULL, "runner %d could not open its pipeline", rn->index);
        if (own == NULL)
            return NULL;
    }
    struct cx_pipeline *p = own ? own : sh->common;
    for (;;) {
        long it = atomic_fetch_add(&sh->next_iter, 1);
        if (it >= sh->iters || atomic_load(&g_failed))
            break;
        size_t npk = 1 + s_xorshift64(&rn->rng) % 4;
        const char *pk[4];
        char request[256] = "install";
        for (size_t i = 0; i < npk; i++) {
            size_t k = s_xorshift64(&rn->rng) % NPKGS;
            pk[i] = k < NFIXED ? k_pkgs[k] : g_tools[k - NFIXED];
            int dup = 0;
            for (size_t j = 0; j < i; j++)
                dup |= strcmp(pk[j], pk[i]) == 0;
            if (dup) {
                npk = i;
                break;
            }
            strcat(request, " ");
            strcat(request, pk[i]);
        }
        if (s_xorshift64(&rn->rng) % 16 == 0) {
            char err[128];
            if (mock_server_script_faults(sh->mock, "next 1 dangerous", err, sizeof err) == 0)
                atomic_fetch_add(&sh->faults, 1);
        }
        struct cx_run_options ro;
        cx_run_options_init(&ro);
        ro.deadline = cx_deadline_after_ms(60000);
        struct cx_install_report *r = NULL;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = cx_pipeline_install(p, pk, npk, &ro, &r, &ei);
        if (r == NULL)
            fprintf(stderr, "stress_pipeline: '%s': %s\n", request, ei.msg);
        check_report(sh, rc, r, request, pk, npk);
        cx_install_report_free(r);
    }
    cx_pipeline_free(own);
    return NULL;
}

static long count_rows(const char *db)
{
    sqlite3 *h = NULL;
    long n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM " CX_HISTORY_TABLE, -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct s_args a = {(uint64_t)cx_now_ns(), 200, RUNNERS};
    s_args_parse("pipeline", argc, argv, &a, 0);
    uint64_t seed = a.seed;
    long iters = a.iters;

    struct shared sh;
    memset(&sh, 0, sizeof sh);
    sh.iters = iters;
    sh.seed = seed;
    pthread_mutex_init(&sh.ids_mu, NULL);
    sh.ids = calloc((size_t)iters, sizeof *sh.ids);
    if (sh.ids == NULL) {
        perror("stress_pipeline: set-up");
        return 1;
    }
    s_tmp_db("pipeline", CX_DB_FILE, sh.db, sizeof sh.db);

    struct mock_options mo;
    mock_options_init(&mo);
    mo.seed = seed;
    mo.latency_ms = 2;
    char err[256];
    if (mock_server_start(&mo, &sh.mock, err, sizeof err) < 0) {
        fprintf(stderr, "stress_pipeline: mock: %s\n", err);
        return 1;
    }
    snprintf(sh.url, sizeof sh.url, "%s/v1", mock_server_url(sh.mock));
    for (int i = 0; i < NTOOLS; i++)
        snprintf(g_tools[i], sizeof g_tools[i], "tool-%d", i);
    sh.common = open_pipeline(&sh, CX_IO_AUTO, CX_MODE_FREE, 1, 0);
    if (sh.common == NULL)
        return 1;

    pthread_t th[RUNNERS];
    struct runner rn[RUNNERS];
    for (int i = 0; i < RUNNERS; i++) {
        rn[i].sh = &sh;
        rn[i].index = i;
        rn[i].rng = seed * 2654435761u + (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
        if (pthread_create(&th[i], NULL, runner_main, &rn[i]) != 0) {
            fprintf(stderr, "stress_pipeline: pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < RUNNERS; i++)
        pthread_join(th[i], NULL);
    cx_pipeline_free(sh.common);
    mock_server_stop(sh.mock);

    if (!atomic_load(&g_failed)) {
        CHECK(sh.nids == iters, "%ld runs reported, %ld expected", sh.nids, iters);
        qsort(sh.ids, (size_t)sh.nids, sizeof *sh.ids, cmp_i64);
        for (long i = 1; i < sh.nids; i++)
            CHECK(sh.ids[i] != sh.ids[i - 1], "history id %lld given twice",
                  (long long)sh.ids[i]);
        long rows = count_rows(sh.db);
        CHECK(rows == iters, "history holds %ld rows, %ld runs were made", rows, iters);
    }
    printf("stress_pipeline: %ld runs, %ld refused (%ld dangerous faults scripted)%s\n", iters,
           atomic_load(&sh.refused), atomic_load(&sh.faults),
           atomic_load(&g_failed) ? ", FAILED" : ", ok");
    s_tmp_db_remove(sh.db);
    free(sh.ids);
    pthread_mutex_destroy(&sh.ids_mu);
    return atomic_load(&g_failed) ? 1 : 0;
}
