/*
 * pipeline_run.c - one run of the pipeline: picks the I/O design and the pool size for the
 * batch (cx_io_choose, from the CPU share measured on earlier runs), starts an executor for
 * the run, runs one task per query (pipeline_query.c), collects the outcomes and waits for the
 * run's asynchronous cache writes before it returns.
 * What it does not do: any step of a query (pipeline_query.c), build prompts or reports
 * (pipeline.c).
 *
 * DESIGN (threads): the caller's thread sets the run up, runs the batch (cx_executor_run:
 * submit + wait, releasing any GIL while it blocks), then waits on put_cond for the cache
 * writer's done callbacks (the cache's writer thread decrements puts_pending under put_mu).
 * Workers run the queries' tasks; each query writes only its own item and struct query, and
 * the batch's completion hands those writes to the caller. The executor is joined before the
 * run returns.
 */
#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/ioloop.h"
#include "pipeline_internal.h"

static int online_cores(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : (c > 1024 ? 1024 : (int)c);
}

/* Picks the design and the pool size for a batch of n. */
static void choose(struct cx_pipeline *p, size_t n, enum cx_io_design *io, int *threads)
{
    cx__mutex_lock(&p->mu);
    double share = p->cpu_share;
    cx__mutex_unlock(&p->mu);
    enum cx_io_design d = CX_IO_THREAD_LOCAL;
    int t = 1;
    if (cx_io_choose(n ? n : 1, share, online_cores(), &d, &t) < 0) {
        d = CX_IO_THREAD_LOCAL;
        t = (int)(n < 10 ? (n ? n : 1) : 10);
    }
    if (p->io != CX_IO_AUTO) {
        d = p->io;
        size_t want = d == CX_IO_THREAD_LOCAL ? n : (size_t)online_cores();
        if (want > n)
            want = n;
        t = (int)(want < 1 ? 1 : (want > 1024 ? 1024 : want));
    }
    if (t > p->max_threads)
        t = p->max_threads;
    if (p->threads > 0)
        t = p->threads;
    if (p->mode == CX_MODE_SERIAL)
        t = 1; /* the executor runs one worker in serial mode */
    *io = d;
    *threads = t < 1 ? 1 : t;
}

/* Waits (no GIL held) until every cache write the run queued has committed or failed. */
static void wait_puts(struct run *run)
{
    cx_gil_io_begin();
    cx__mutex_lock(&run->put_mu);
    while (run->puts_pending > 0)
        cx__cond_wait(&run->put_cond, &run->put_mu, CX_DEADLINE_NONE);
    cx__mutex_unlock(&run->put_mu);
    cx_gil_io_end();
}

int cx__run_fanout(struct run *run, struct cx_errinfo *ei)
{
    struct cx_pipeline *p = run->p;
    choose(p, run->n, &run->io, &run->threads);
    if (run->n == 0)
        return 0;
    struct cx_executor_options eo;
    cx_executor_options_init(&eo);
    eo.threads = run->threads;
    eo.mode = p->mode;
    if (p->switch_ns > 0)
        eo.switch_interval_ns = p->switch_ns;
    struct cx_executor *ex = NULL;
    int rc = cx_executor_new(&eo, &ex, ei);
    if (rc < 0)
        return rc;
    struct cx_task *tasks = cx__calloc(run->n, sizeof *tasks);
    if (tasks == NULL) {
        cx_executor_free(ex);
        return cx__err(ei, CX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < run->n; i++) {
        tasks[i].fn = run->qs[i].skip ? cx__query_skip : cx__query_task;
        tasks[i].arg = &run->qs[i];
    }
    struct cx_batch *b = NULL;
    rc = cx_executor_run(ex, tasks, run->n, run->ro->progress, run->ro->progress_ud, &b);
    cx__free(tasks);
    if (rc < 0) {
        cx_executor_free(ex);
        return cx__err(ei, rc, "starting the queries: %s", cx_strerror(rc));
    }
    struct cx_task_result *res = cx_batch_results(b);
    uint64_t cpu = 0, wall = 0;
    for (size_t i = 0; i < run->n; i++) {
        struct query *qu = &run->qs[i];
        struct cx_item *it = qu->item;
        if (res[i].status == CX_ECANCELED && it->status == 0)
            cx__query_fail(qu, CX_ECANCELED, "the query was cancelled");
        if (res[i].end_ns > res[i].start_ns && res[i].start_ns > 0)
            it->latency_s = cx_elapsed_s(res[i].start_ns, res[i].end_ns);
        if (it->status == 0) {
            cpu += qu->cpu_ns;
            atomic_fetch_add(&p->n_cpu_step_ns, qu->cpu_ns);
            wall += res[i].end_ns - res[i].start_ns;
        }
        if (it->from_cache && it->status == 0)
            run->cache_hits++;
        if (it->status == CX_EREJECTED)
            run->rejected++;
        else if (it->status < 0)
            run->failed++;
    }
    cx_batch_free(b);
    cx_executor_free(ex);
    wait_puts(run);
    if (wall > 0) {
        cx__mutex_lock(&p->mu);
        p->cpu_share = (double)cpu / (double)wall;
        cx__mutex_unlock(&p->mu);
    }
    return 0;
}

int cx__run_setup(struct run *run, struct cx_pipeline *p, enum qkind kind,
                  const struct cx_run_options *ro, size_t n, struct cx_item *items)
{
    memset(run, 0, sizeof *run);
    run->p = p;
    run->kind = kind;
    run->ro = ro;
    run->bench = p->bench;
    run->n = n;
    if (cx__mutex_init(&run->put_mu) < 0)
        return CX_ENOMEM;
    if (cx__cond_init(&run->put_cond) < 0) {
        cx__mutex_destroy(&run->put_mu);
        return CX_ENOMEM;
    }
    run->put_sync_ok = 1;
    run->qs = cx__calloc(n ? n : 1, sizeof *run->qs);
    if (run->qs == NULL)
        return CX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct query *qu = &run->qs[i];
        qu->run = run;
        qu->item = &items[i];
        cx_llm_query_init(&qu->q);
        cx_router_reply_init(&qu->reply);
        qu->q.force = p->force;
        qu->q.deadline = ro->deadline;
        qu->q.extra_header = ro->extra_header;
        qu->q.max_tokens = 1024;
        qu->q.temperature = 0.2;
        qu->q.stream = run->bench.stream;
    }
    return 0;
}

void cx__run_clear(struct run *run)
{
    for (size_t i = 0; run->qs != NULL && i < run->n; i++) {
        cx__free(run->qs[i].prompt);
        cx__free(run->qs[i].content);
        cx_llm_response_clear(&run->qs[i].reply.resp);
        cJSON_Delete(run->qs[i].obj);
    }
    cx__free(run->qs);
    run->qs = NULL;
    if (run->put_sync_ok) {
        cx__mutex_destroy(&run->put_mu);
        pthread_cond_destroy(&run->put_cond);
        run->put_sync_ok = 0;
    }
}
