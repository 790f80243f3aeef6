/*
 * pipeline.c - the seed's end-to-end use case (install N packages; diagnose N errors; check the
 * hardware), built from the other modules: executor (fan-out), router (LLM answers), cache,
 * parse/validate, plan (merge), history (one row per install run), hw (probes). This file holds
 * the public API: options, construction, the prompts and reports of the three runs, the apt step
 * and the history row. One query's steps are pipeline_query.c; a run's fan-out is
 * pipeline_run.c.
 * What it does not do: talk HTTP, parse English, prepare directories, spawn processes (the
 * caller's execute hook runs commands), or print anything.
 *
 * DESIGN (threads): the caller's thread builds the prompts, runs the fan-out (pipeline_run.c:
 * an executor created for the run, one task per query), merges, runs the apt step (the
 * confirm and execute hooks run on this thread) and records the history row. Several runs
 * may share one pipeline concurrently: they share the router, the cache and the limiter (all
 * thread-safe) and the measured CPU share (guarded by mu). Shutdown: each run joins its
 * executor and waits for its cache writes before returning; cx_pipeline_free frees the router
 * before the loop, the cache and the pool it borrows.
 */
#include "cx/pipeline.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/gil.h"
#include "cx/history.h"
#include "cx/hw.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "fleet_ratelimit.h"
#include "cx/plan.h"
#include "cx/validate.h"
#include "pipeline_internal.h"

#define INSTALL_SYSTEM                                                                          \
    "You are a Linux package expert. Reply with a JSON object in a ```json block with a "     \
    "\"commands\" array of shell commands and an \"explanation\"."
#define DIAGNOSE_SYSTEM                                                                         \
    "You are a Linux troubleshooting expert. Reply with a JSON object in a ```json block with " \
    "a \"cause\", a \"commands\" array of shell commands that fix the error and an "           \
    "\"explanation\"."
#define HW_SYSTEM                                                                               \
    "You are a Linux hardware and performance expert. Reply with a JSON object in a ```json "  \
    "block with a \"recommendations\" array of strings and a \"commands\" array of shell "     \
    "commands."

/* Longest error text sent in one diagnose query. */
#define MAX_ERROR_TEXT 4000

/* ---- small helpers ---- */

const char *cx_apt_mode_name(enum cx_apt_mode m)
{
    switch (m) {
    case CX_APT_DRY_RUN: return "dry-run";
    case CX_APT_SIMULATE: return "simulate";
    case CX_APT_EXECUTE: return "execute";
    }
    return "unknown";
}

void cx_pipeline_options_init(struct cx_pipeline_options *o)
{
    memset(o, 0, sizeof *o);
    o->use_cache = 1;
    o->similar_cache = 1;
    o->mode = CX_MODE_FREE;
    o->io = CX_IO_AUTO;
}

void cx_run_options_init(struct cx_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->apt_mode = CX_APT_DRY_RUN;
    o->deadline = CX_DEADLINE_NONE;
}

void cx_install_report_free(struct cx_install_report *r)
{
    if (r == NULL)
        return;
    cx__free(r->request);
    for (size_t i = 0; i < r->n_items; i++)
        cx__item_clear(&r->items[i]);
    cx__free(r->items);
    cx_plan_clear(&r->plan);
    cx__free(r->history_error);
    cx__free(r);
}

void cx_fanout_report_free(struct cx_fanout_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_items; i++)
        cx__item_clear(&r->items[i]);
    cx__free(r->items);
    cx__free(r);
}

struct cx_cache *cx_pipeline_cache(struct cx_pipeline *p) { return p ? p->cache : NULL; }
struct cx_pool *cx_pipeline_pool(struct cx_pipeline *p) { return p ? p->pool : NULL; }
struct cx_limiter *cx_pipeline_limiter(struct cx_pipeline *p) { return p ? p->limiter : NULL; }

/* cx_timings.limiter_wait_s: the wall time during which at least one of the run's queries was
 * waiting for the request limiter, the union of the intervals [submitted, submitted + wait].
 * (A longest single wait understates a limited run: ten workers each waiting 1 s in turn keep
 * the run waiting 2 s and more; a sum overstates it by the concurrency.) */
struct span {
    uint64_t a, b;
};

static int span_cmp(const void *x, const void *y)
{
    const struct span *s = x, *t = y;
    return s->a < t->a ? -1 : s->a > t->a;
}

static double run_limiter_wait(const struct run *run)
{
    struct span *v = cx__malloc((run->n ? run->n : 1) * sizeof *v);
    if (v == NULL)
        return 0; /* a timing, not a result: leave it out rather than fail the run */
    size_t n = 0;
    for (size_t i = 0; i < run->n; i++) {
        const struct query *qu = &run->qs[i];
        if (qu->limiter_wait_s > 0 && qu->t_submit > 0) {
            v[n].a = qu->t_submit;
            v[n].b = qu->t_submit + (uint64_t)(qu->limiter_wait_s * 1e9);
            n++;
        }
    }
    qsort(v, n, sizeof *v, span_cmp);
    uint64_t total = 0, a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || v[i].a > b) {
            total += b - a;
            a = v[i].a;
            b = v[i].b;
        } else if (v[i].b > b) {
            b = v[i].b;
        }
    }
    total += b - a;
    cx__free(v);
    return (double)total / 1e9;
}

/* ---- construction ---- */

int cx_pipeline_new(const struct cx_pipeline_options *o, struct cx_pipeline **out,
                    struct cx_errinfo *ei)
{
    if (o == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pipeline_new: NULL argument");
    cx__json_hooks_init();
    struct cx_config defaults;
    const struct cx_config *cfg = o->config;
    if (cfg == NULL) {
        cx_config_init(&defaults);
        cfg = &defaults;
    }
    if (o->threads < 0 || o->threads > 1024)
        return cx__err(ei, CX_EINVAL, "threads must be 0..1024, got %d", o->threads);
    enum cx_provider force = o->provider;
    if (force != CX_PROVIDER_AUTO && ((int)force < 0 || force >= CX_PROVIDER_COUNT))
        return cx__err(ei, CX_EINVAL, "provider %d is not a provider", (int)force);
    struct cx_pipeline *p = cx__calloc(1, sizeof *p);
    if (p == NULL)
        return cx__err(ei, CX_ENOMEM, "out of memory");
    int rc = cx__mutex_init(&p->mu);
    if (rc < 0) {
        cx__free(p);
        return cx__err(ei, rc, "out of memory");
    }
    p->cpu_share = -1;
    p->force = force;
    p->mode = o->have_mode ? o->mode : cfg->exec_mode;
    p->switch_ns = cfg->gil_switch_interval_ns;
    p->threads = o->threads;
    p->max_threads = cfg->thread_pool_size > 0 ? cfg->thread_pool_size : 10;
    p->io = o->have_io ? o->io : cfg->io_design;

    double rps = o->rate_limit_rps > 0 ? o->rate_limit_rps : cfg->rate_limit_rps;
    double burst = o->rate_limit_rps > 0 ? (rps > 1 ? rps : 1) : cfg->rate_limit_burst;
    if (burst < 1)
        burst = 1;
    if (rps > 0) { /* 0: no limit (CORTEX_RATE_LIMIT_RPS=0/inf/off), so no limiter at all */
        rc = cx_limiter_new(rps, burst, &p->limiter, ei);
        if (rc < 0)
            goto fail;
    }
    if (o->db_path != NULL) {
        struct cx_pool_options po;
        cx_pool_options_init(&po);
        po.path = o->db_path;
        po.readers = cfg->db_pool_size > 0 ? cfg->db_pool_size : 5;
        rc = cx_pool_new(&po, &p->pool, ei);
        if (rc < 0)
            goto fail;
        if (o->use_cache) {
            struct cx_cache_options co;
            cx_cache_options_init(&co);
            if (cfg->cache_max_entries > 0)
                co.max_entries = (size_t)cfg->cache_max_entries;
            if (o->similar_cache && cfg->cache_similarity_threshold > 0) {
                co.similarity_threshold = cfg->cache_similarity_threshold;
                co.entity_match = 1; /* the matcher whose precision was measured (issue 13) */
            } else
                co.similarity_threshold = 2.0; /* > 1: exact hits only (see pipeline.h) */
            rc = cx_cache_new(p->pool, &co, &p->cache, ei);
            if (rc < 0)
                goto fail;
        }
        if (!o->no_history) {
            rc = cx_history_init(p->pool, ei);
            if (rc < 0)
                goto fail;
            p->history = 1;
        }
    }
    rc = cx_ioloop_new(NULL, &p->loop, ei);
    if (rc < 0)
        goto fail;

    struct cx_router_options ropt;
    cx_router_options_init(&ropt);
    cx_router_options_from_config(&ropt, cfg);
    if (o->base_url != NULL)
        ropt.base_url = o->base_url;
    if (o->model != NULL)
        for (int i = 0; i < CX_PROVIDER_COUNT; i++)
            ropt.providers[i].model = o->model;
    ropt.limiter = p->limiter;
    ropt.io = CX_IO_THREAD_LOCAL; /* cx_router_complete drives inline; cx_router_submit the loop */
    ropt.loop = p->loop;
    if (o->cache_endpoint != NULL)
        ropt.cache_endpoint = o->cache_endpoint;
    if (o->max_attempts > 0)
        ropt.max_attempts = o->max_attempts;
    if (ropt.max_attempts < 1)
        ropt.max_attempts = 1;
    if (o->backoff_base_ns > 0)
        ropt.backoff_base_ns = o->backoff_base_ns;
    if (o->seed != 0)
        ropt.seed = o->seed;
    rc = cx_router_new(&ropt, &p->router, ei);
    if (rc < 0)
        goto fail;
    rc = cx__pfleet_open(p, cfg, rps, burst, o->use_cache, ei);
    if (rc < 0)
        goto fail;
    if (p->frl != NULL)
        cx__router_use_ratelimit(p->router, p->frl);
    *out = p;
    return 0;
fail:
    cx_pipeline_free(p);
    return rc;
}

void cx_pipeline_free(struct cx_pipeline *p)
{
    if (p == NULL)
        return;
    cx_router_free(p->router);
    cx__pfleet_free(p);
    cx_ioloop_free(p->loop);
    cx_cache_free(p->cache);
    cx_pool_free(p->pool);
    cx_limiter_free(p->limiter);
    cx__mutex_destroy(&p->mu);
    cx__free(p);
}

/* ---- the apt step ---- */

static int apt_step(struct cx_install_report *r, const struct cx_run_options *ro)
{
    r->apt_mode = ro->apt_mode;
    if (r->rejected > 0) {
        r->refused = 1;
        r->refused_reason = "the validator rejected a command";
        return CX_EREJECTED;
    }
    switch (ro->apt_mode) {
    case CX_APT_DRY_RUN: break;
    case CX_APT_SIMULATE:
        cx_gil_io_begin();
        cx_sleep_ns(ro->apt_sim_ns);
        cx_gil_io_end();
        break;
    case CX_APT_EXECUTE:
        if (r->failed > 0) {
            r->refused = 1;
            r->refused_reason = "some queries failed; not executing a partial plan";
            return CX_EFAILED;
        }
        if (ro->execute == NULL) {
            r->refused = 1;
            r->refused_reason = "no command runner was given (run_options.execute)";
            return CX_EREJECTED;
        }
        if (ro->confirm == NULL || ro->confirm(&r->plan, ro->confirm_ud) != 1) {
            r->refused = 1;
            r->refused_reason = "execution was not confirmed";
            return CX_EREJECTED;
        }
        for (size_t i = 0; i < r->plan.n; i++) {
            cx_gil_io_begin(); /* the command may take minutes: no GIL held meanwhile */
            int st = ro->execute(r->plan.commands[i], ro->execute_ud);
            cx_gil_io_end();
            r->ran++;
            if (st != 0) {
                r->exec_status = st;
                return CX_EIO;
            }
        }
        break;
    }
    return r->failed > 0 ? CX_EFAILED : 0;
}

/* ---- the history row ---- */

/* The validator's reasons of every rejected package as a JSON array of "pkg: reason". */
static char *reasons_json(const struct cx_install_report *r)
{
    cJSON *a = cJSON_CreateArray();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < r->n_items; i++) {
        const struct cx_item *it = &r->items[i];
        for (size_t k = 0; it->status == CX_EREJECTED && k < it->n_reasons; k++) {
            struct cx__buf b;
            cx__buf_init(&b, 0);
            if (cx__buf_printf(&b, "%s: %s", it->subject, it->reasons[k]) < 0) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON *s = cJSON_CreateString(b.p);
            cx__buf_reset(&b);
            if (s == NULL) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, s);
        }
    }
    char *out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return out;
}

static int history_record(struct cx_pool *pool, struct cx_install_report *r, int status,
                          struct cx_errinfo *ei)
{
    struct cx_history_entry e;
    memset(&e, 0, sizeof e);
    e.request = r->request;
    e.plan_json = cx_plan_to_json(&r->plan);
    e.validation_json = reasons_json(r);
    if (e.plan_json == NULL || e.validation_json == NULL) {
        cx_free(e.plan_json);
        cJSON_free(e.validation_json);
        return cx__err(ei, CX_ENOMEM, "out of memory");
    }
    e.executed = r->refused                        ? "refused"
                 : r->apt_mode == CX_APT_SIMULATE ? "simulated"
                 : r->apt_mode == CX_APT_EXECUTE  ? "real"
                                                  : "dry-run";
    e.parse_s = r->timings.parse_s;
    e.llm_s = r->timings.llm_s;
    e.merge_s = r->timings.merge_s;
    e.apt_s = r->timings.apt_s;
    e.total_s = r->timings.total_s;
    /* "some queries failed" is a partial run; when every one failed nothing was answered, and
     * the row says so with the first query's error rather than calling it partial. */
    e.status = status == CX_EFAILED && r->n_items > 0 && r->failed == r->n_items &&
                       r->items[0].status < 0
                   ? r->items[0].status
                   : status;
    e.commands_run = r->ran > INT_MAX ? INT_MAX : (int)r->ran; /* how far --execute got */
    int64_t id = -1;
    int rc = cx_history_record(pool, &e, &id, ei);
    cx_free(e.plan_json);
    cJSON_free(e.validation_json);
    if (rc < 0)
        return rc;
    r->history_id = id;
    return 0;
}

/* ---- install ---- */

/* "install a b c": the request text of the report and the history row. */
static char *request_text(const char *const *pkgs, size_t n)
{
    struct cx__buf b;
    cx__buf_init(&b, 0);
    int rc = cx__buf_append(&b, "install", 7);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cx__buf_printf(&b, " %s", pkgs[i]);
    return rc == 0 ? cx__buf_take(&b) : NULL;
}

/* Each name must pass cx_validate_package_name; the error quotes the name whole. */
static int check_packages(const char *const *pkgs, size_t n, struct cx_errinfo *ei)
{
    if (n == 0)
        return cx__err(ei, CX_EINVAL, "no package named");
    if (n > CX_PIPELINE_MAX_PACKAGES)
        return cx__err(ei, CX_ETOOBIG, "too many packages (%zu, at most %d)", n,
                       CX_PIPELINE_MAX_PACKAGES);
    for (size_t i = 0; i < n; i++) {
        if (pkgs[i] == NULL)
            return cx__err(ei, CX_EINVAL, "package %zu is NULL", i + 1);
        char reason[160];
        if (cx_validate_package_name(pkgs[i], reason, sizeof reason) < 0)
            return cx__err(ei, CX_EINVAL, "package '%.80s': %s", pkgs[i], reason);
    }
    return 0;
}

int cx_pipeline_install(struct cx_pipeline *p, const char *const *pkgs, size_t n,
                        const struct cx_run_options *ro_in, struct cx_install_report **out,
                        struct cx_errinfo *ei)
{
    if (p == NULL || (pkgs == NULL && n > 0) || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pipeline_install: NULL argument");
    *out = NULL;
    struct cx_run_options rodef;
    const struct cx_run_options *ro = ro_in;
    if (ro == NULL) {
        cx_run_options_init(&rodef);
        ro = &rodef;
    }
    if (ro->apt_mode != CX_APT_DRY_RUN && ro->apt_mode != CX_APT_SIMULATE &&
        ro->apt_mode != CX_APT_EXECUTE)
        return cx__err(ei, CX_EINVAL, "apt_mode %d is not a mode", (int)ro->apt_mode);
    uint64_t t0 = cx_now_ns();
    int rc = check_packages(pkgs, n, ei);
    if (rc < 0)
        return rc;
    struct cx_install_report *r = cx__calloc(1, sizeof *r);
    struct run run;
    memset(&run, 0, sizeof run);
    if (r == NULL)
        goto oom;
    r->history_id = -1;
    r->mode = p->mode;
    r->apt_mode = ro->apt_mode;
    r->request = request_text(pkgs, n);
    r->items = cx__calloc(n, sizeof *r->items);
    if (r->request == NULL || r->items == NULL)
        goto oom;
    r->n_items = n;
    if (cx__run_setup(&run, p, Q_INSTALL, ro, n, r->items) < 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        struct query *qu = &run.qs[i];
        r->items[i].subject = cx__strdup(pkgs[i]);
        struct cx__buf b;
        cx__buf_init(&b, 4096);
        if (r->items[i].subject == NULL || cx__buf_printf(&b, "Install package: %s", pkgs[i]) < 0)
            goto oom;
        qu->prompt = cx__buf_take(&b);
        qu->q.task = CX_TASK_SYSTEM_OPERATION;
        qu->q.system = INSTALL_SYSTEM;
        qu->q.prompt = qu->prompt;
    }
    if (run.bench.parse_work_ns > 0)
        cx_cpu_work_ns(run.bench.parse_work_ns);
    uint64_t t1 = cx_now_ns();
    r->timings.parse_s = cx_elapsed_s(t0, t1);

    rc = cx__run_fanout(&run, ei);
    if (rc < 0)
        goto fail;
    r->io = run.io;
    r->threads = run.threads;
    r->cache_hits = run.cache_hits;
    r->failed = run.failed;
    r->rejected = run.rejected;
    r->timings.limiter_wait_s = run_limiter_wait(&run);
    uint64_t t2 = cx_now_ns();
    r->timings.llm_s = cx_elapsed_s(t1, t2);

    /* Merge the accepted plans, in request order. */
    const cJSON **arrays = cx__calloc(n, sizeof *arrays);
    if (arrays == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++)
        arrays[i] = run.qs[i].obj ? cJSON_GetObjectItemCaseSensitive(run.qs[i].obj, "commands")
                                  : NULL;
    rc = cx_plan_merge((const cJSON *const *)arrays, n, &r->plan, ei);
    cx__free(arrays);
    if (run.bench.merge_work_ns > 0)
        cx_cpu_work_ns(run.bench.merge_work_ns);
    if (rc < 0)
        goto fail;
    cx__run_clear(&run);
    uint64_t t3 = cx_now_ns();
    r->timings.merge_s = cx_elapsed_s(t2, t3);

    int result = apt_step(r, ro);
    uint64_t t4 = cx_now_ns();
    r->timings.apt_s = r->refused ? 0 : cx_elapsed_s(t3, t4);
    r->timings.total_s = cx_elapsed_s(t0, t4);

    if (p->history) {
        struct cx_errinfo hei;
        memset(&hei, 0, sizeof hei);
        if (history_record(p->pool, r, result, &hei) < 0) {
            r->history_error = cx__strdup(hei.msg[0] ? hei.msg : cx_strerror(hei.code));
            r->history_id = -1;
        }
    }
    *out = r;
    if (result < 0)
        cx__err(ei, result, "%s",
                result == CX_EREJECTED ? (r->refused_reason ? r->refused_reason : "refused")
                : result == CX_EFAILED ? "some queries failed"
                                       : "a command failed");
    return result;
oom:
    rc = cx__err(ei, CX_ENOMEM, "out of memory");
fail:
    cx__run_clear(&run);
    cx_install_report_free(r);
    return rc;
}

/* ---- diagnose and hwcheck ---- */

static int fanout_report_new(size_t n, struct cx_fanout_report **out)
{
    struct cx_fanout_report *r = cx__calloc(1, sizeof *r);
    if (r == NULL)
        return CX_ENOMEM;
    r->items = cx__calloc(n ? n : 1, sizeof *r->items);
    if (r->items == NULL) {
        cx__free(r);
        return CX_ENOMEM;
    }
    r->n_items = n;
    *out = r;
    return 0;
}

static int fanout_finish(struct cx_pipeline *p, struct run *run, struct cx_fanout_report *r,
                         uint64_t t0, uint64_t t1, struct cx_fanout_report **out,
                         struct cx_errinfo *ei)
{
    int rc = cx__run_fanout(run, ei);
    double lw = rc < 0 ? 0 : run_limiter_wait(run);
    cx__run_clear(run);
    if (rc < 0) {
        cx_fanout_report_free(r);
        return rc;
    }
    uint64_t t2 = cx_now_ns();
    r->mode = p->mode;
    r->io = run->io;
    r->threads = run->threads;
    r->cache_hits = run->cache_hits;
    r->failed = run->failed + run->rejected;
    r->timings.parse_s = cx_elapsed_s(t0, t1);
    r->timings.llm_s = cx_elapsed_s(t1, t2);
    r->timings.total_s = cx_elapsed_s(t0, t2);
    r->timings.limiter_wait_s = lw;
    *out = r;
    if (r->failed > 0)
        return cx__err(ei, CX_EFAILED, "%zu of %zu queries failed", r->failed, r->n_items);
    return 0;
}

int cx_pipeline_diagnose(struct cx_pipeline *p, const char *const *errors,
                         const char *const *labels, size_t n, const struct cx_run_options *ro_in,
                         struct cx_fanout_report **out, struct cx_errinfo *ei)
{
    if (p == NULL || out == NULL || (errors == NULL && n > 0))
        return cx__err(ei, CX_EINVAL, "cx_pipeline_diagnose: NULL argument");
    *out = NULL;
    if (n == 0)
        return cx__err(ei, CX_EINVAL, "no error message to diagnose");
    if (n > CX_PIPELINE_MAX_PACKAGES)
        return cx__err(ei, CX_ETOOBIG, "too many error messages (%zu, at most %d)", n,
                       CX_PIPELINE_MAX_PACKAGES);
    for (size_t i = 0; i < n; i++)
        if (errors[i] == NULL)
            return cx__err(ei, CX_EINVAL, "error message %zu is NULL", i + 1);
    struct cx_run_options rodef;
    const struct cx_run_options *ro = ro_in;
    if (ro == NULL) {
        cx_run_options_init(&rodef);
        ro = &rodef;
    }
    uint64_t t0 = cx_now_ns();
    struct cx_fanout_report *r = NULL;
    if (fanout_report_new(n, &r) < 0)
        return cx__err(ei, CX_ENOMEM, "out of memory");
    struct run run;
    if (cx__run_setup(&run, p, Q_DIAGNOSE, ro, n, r->items) < 0) {
        cx_fanout_report_free(r);
        return cx__err(ei, CX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct query *qu = &run.qs[i];
        struct cx__buf b;
        cx__buf_init(&b, MAX_ERROR_TEXT + 64);
        /* Trim surrounding blanks; cut very long messages. */
        const char *s = errors[i];
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        size_t l = strlen(s);
        while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' ||
                         s[l - 1] == '\r'))
            l--;
        if (l > MAX_ERROR_TEXT)
            l = MAX_ERROR_TEXT;
        if (labels != NULL && labels[i] != NULL)
            r->items[i].subject = cx__strdup(labels[i]);
        else {
            char lab[32];
            snprintf(lab, sizeof lab, "error %zu", i + 1);
            r->items[i].subject = cx__strdup(lab);
        }
        if (r->items[i].subject == NULL ||
            cx__buf_printf(&b, "Diagnose error: %.*s", (int)l, s) < 0) {
            cx__run_clear(&run);
            cx_fanout_report_free(r);
            return cx__err(ei, CX_ENOMEM, "out of memory");
        }
        qu->prompt = cx__buf_take(&b);
        qu->q.task = CX_TASK_ERROR_DEBUGGING;
        qu->q.system = DIAGNOSE_SYSTEM;
        qu->q.prompt = qu->prompt;
    }
    return fanout_finish(p, &run, r, t0, cx_now_ns(), out, ei);
}

int cx_pipeline_hwcheck(struct cx_pipeline *p, const char *disk_path,
                        const struct cx_run_options *ro_in, struct cx_fanout_report **out,
                        struct cx_errinfo *ei)
{
    if (p == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pipeline_hwcheck: NULL argument");
    *out = NULL;
    struct cx_run_options rodef;
    const struct cx_run_options *ro = ro_in;
    if (ro == NULL) {
        cx_run_options_init(&rodef);
        ro = &rodef;
    }
    uint64_t t0 = cx_now_ns();
    /* Probe the four components concurrently, then one query per component that answered. */
    struct cx_hw_report *hw = cx__calloc(1, sizeof *hw);
    if (hw == NULL)
        return cx__err(ei, CX_ENOMEM, "out of memory");
    int rc = cx_hw_check_all(NULL, disk_path, hw);
    if (rc < 0) {
        cx__free(hw);
        return cx__err(ei, rc, "hardware probes failed: %s", cx_strerror(rc));
    }
    const size_t n = 4;
    const int rcs[4] = {hw->cpu_rc, hw->mem_rc, hw->disk_rc, hw->gpu_rc};
    struct cx_fanout_report *r = NULL;
    struct run run;
    if (fanout_report_new(n, &r) < 0 || cx__run_setup(&run, p, Q_HW, ro, n, r->items) < 0) {
        cx_fanout_report_free(r);
        cx__free(hw);
        return cx__err(ei, CX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct query *qu = &run.qs[i];
        struct cx_item *it = &r->items[i];
        enum cx_hw_component c = (enum cx_hw_component)i;
        it->subject = cx__strdup(cx_hw_component_name(c));
        if (it->subject == NULL)
            goto oom;
        if (rcs[i] < 0) {
            qu->skip = 1;
            it->status = rcs[i];
            it->error = cx__strdup(rcs[i] == CX_ENOMEM ? "out of memory"
                                                       : "the probe could not read the hardware");
            continue;
        }
        /* "Hardware check: cpu <details>": the prompt; the details alone go in the report. */
        qu->prompt = cx_hw_describe(c, hw);
        if (qu->prompt == NULL)
            goto oom;
        const char *d = qu->prompt;
        size_t pre = strlen("Hardware check: ") + strlen(it->subject);
        d = strlen(d) > pre ? d + pre : "";
        while (*d == ' ')
            d++;
        it->details = cx__strdup(d);
        if (it->details == NULL)
            goto oom;
        qu->q.task = CX_TASK_CONFIGURATION;
        qu->q.system = HW_SYSTEM;
        qu->q.prompt = qu->prompt;
    }
    cx__free(hw);
    return fanout_finish(p, &run, r, t0, cx_now_ns(), out, ei);
oom:
    cx__run_clear(&run);
    cx_fanout_report_free(r);
    cx__free(hw);
    return cx__err(ei, CX_ENOMEM, "out of memory");
}

/* ---- test and benchmark hooks (cx_testing.h) ---- */

void cx__pipeline_counts(struct cx_pipeline *p, struct cx__pipeline_counts *out)
{
    out->queries = atomic_load(&p->n_queries);
    out->parses = atomic_load(&p->n_parses);
    out->validations = atomic_load(&p->n_validations);
    out->cpu_no_gil = atomic_load(&p->n_cpu_no_gil);
    out->suspends = atomic_load(&p->n_suspends);
    out->resumes = atomic_load(&p->n_resumes);
    out->submits = atomic_load(&p->n_submits);
    out->cache_puts = atomic_load(&p->n_puts);
    out->completions_in_submit = atomic_load(&p->n_in_submit);
    out->cpu_step_ns = atomic_load(&p->n_cpu_step_ns);
}

void cx__pipeline_set_bench_work(struct cx_pipeline *p, const struct cx__bench_work *w)
{
    if (w != NULL)
        p->bench = *w;
    else
        memset(&p->bench, 0, sizeof p->bench);
}
