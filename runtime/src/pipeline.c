/*
 * pipeline.c - the seed's end-to-end use case (install N packages; diagnose N errors; check the
 * hardware), built from the other modules: executor (fan-out), router (LLM + cache + limiter),
 * parse/validate (answers), plan (merge), history (one row per install run), hw (probes).
 *
 * DESIGN
 * Threads: the caller's thread parses the request, runs the fan-out on an executor created for
 * the run (its size and the I/O design chosen per run), merges, runs the apt step and records the
 * history row. Executor workers run one task per query. In the thread-local design the task
 * blocks in cx_router_complete; in the hybrid design it suspends, the router's I/O loop thread
 * moves the bytes and hands the CPU step (the router's parse + validate hook + cache write) back
 * through the query's `post` hook, which resumes the task with that step on a worker (under
 * the GIL in gil mode); the router's done callback then resumes it once more to fill the item.
 * The validate hook keeps the parsed answer in the query, so nothing is parsed twice.
 * Each query owns one `struct query` and writes only its own report item, so queries
 * share nothing but the router (thread-safe) and the pipeline's measured CPU share (guarded by
 * mu). The batch's completion hands every query's writes to the caller (cx_batch_wait).
 * Shutdown: each run joins its executor before returning; cx_pipeline_free frees the router
 * before the loop, the cache and the pool it borrows.
 * This file does not talk HTTP, SQL (beyond what history/cache do) or print anything.
 */
#include "cx/pipeline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/dbpool.h"
#include "cx/executor.h"
#include "cx/gil.h"
#include "cx/history.h"
#include "cx/hw.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "cx/parse.h"
#include "cx/router.h"
#include "cx/validate.h"
#include "cx_internal.h"

extern char **environ;

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

struct cx_pipeline {
    struct cx_pool *pool;     /* NULL without db_path */
    struct cx_cache *cache;   /* NULL without db_path or with use_cache 0 */
    struct cx_limiter *limiter;
    struct cx_ioloop *loop;
    struct cx_router *router;
    enum cx_provider force;
    enum cx_exec_mode mode;
    uint64_t switch_ns;
    int threads;              /* 0: chosen per run */
    int max_threads;          /* cap for chosen sizes */
    enum cx_io_design io;
    int history;              /* 1 when the history table is ready */
    struct cx__mutex mu;
    double cpu_share;         /* guarded by mu: measured on the last run, < 0 before any */
    /* test instrumentation (cx__pipeline_counts): answers parsed, validate-hook calls, and
     * those of them that ran without holding a GIL */
    atomic_uint_fast64_t parses, hook_calls, hook_no_gil;
};

enum qkind { Q_INSTALL, Q_DIAGNOSE, Q_HW };

struct run;

struct query {
    struct run *run;
    struct cx_item *item;
    char *prompt;                 /* owned */
    struct cx_llm_query q;
    struct cx_llm_response resp;  /* owned (cleared at the end of the run) */
    int rc;                       /* the router's result (hybrid: set by the callback) */
    struct cx_errinfo ei;
    cJSON *obj;                   /* the parsed answer, owned until the run ends; set by the
                                     router's validate hook (checked = 1) or the similarity
                                     check (checked = 0) when they parsed it, so an answer is
                                     parsed once */
    int checked;                  /* obj has passed the validator */
    struct cx_task_handle *h;
    void (*post_fn)(void *);      /* hybrid: the router's CPU step, run on a worker (query_post) */
    void *post_arg;
    uint64_t cpu_ns;              /* wall time of the CPU step (parse, validate, cpu work) */
    int skip;                     /* 1: no query (a failed hardware probe); item->status is set */
};

struct run {
    struct cx_pipeline *p;
    enum qkind kind;
    const struct cx_run_options *ro;
    struct query *qs;
    size_t n;
    enum cx_io_design io;         /* resolved */
    int threads;
    size_t cache_hits, failed, rejected;
};

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
    o->mode = CX_MODE_FREE;
    o->io = CX_IO_AUTO;
}

void cx_run_options_init(struct cx_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->apt_mode = CX_APT_DRY_RUN;
    o->deadline = CX_DEADLINE_NONE;
}

static void strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cx__free(v[i]);
    cx__free(v);
}

static void item_clear(struct cx_item *it)
{
    cx__free(it->subject);
    cx__free(it->error);
    strv_free(it->reasons, it->n_reasons);
    strv_free(it->commands, it->n_commands);
    cx__free(it->text);
    strv_free(it->advice, it->n_advice);
    cx__free(it->details);
    memset(it, 0, sizeof *it);
}

void cx_install_report_free(struct cx_install_report *r)
{
    if (r == NULL)
        return;
    cx__free(r->request);
    for (size_t i = 0; i < r->n_items; i++)
        item_clear(&r->items[i]);
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
        item_clear(&r->items[i]);
    cx__free(r->items);
    cx__free(r);
}

struct cx_cache *cx_pipeline_cache(struct cx_pipeline *p) { return p ? p->cache : NULL; }
struct cx_pool *cx_pipeline_pool(struct cx_pipeline *p) { return p ? p->pool : NULL; }

/* ---- the data directory ---- */

int cx_data_dir_prepare(const char *dir, struct cx_errinfo *ei)
{
    if (dir == NULL || dir[0] == '\0')
        return cx__err(ei, CX_EINVAL, "data directory: empty path");
    size_t len = strlen(dir);
    if (len >= PATH_MAX)
        return cx__err(ei, CX_ETOOBIG, "data directory path is too long (%zu bytes)", len);
    char path[PATH_MAX];
    memcpy(path, dir, len + 1);
    /* mkdir -p: create each missing component in turn. */
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            int e = errno;
            path[i] = saved;
            return cx__err(ei, e == EACCES || e == EROFS || e == EPERM ? CX_EPERM : CX_EIO,
                           "cannot create data directory '%s': %s", dir, strerror(e));
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) < 0)
        return cx__err(ei, CX_EIO, "data directory '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cx__err(ei, CX_EINVAL, "data directory '%s' is not a directory", dir);
    if (access(dir, W_OK | X_OK) < 0)
        return cx__err(ei, CX_EPERM, "data directory '%s' is not writable: %s", dir,
                       strerror(errno));
    return 0;
}

/* ---- parsing the request ---- */

int cx_pipeline_parse_request(const char *request, char ***pkgs, size_t *n,
                              struct cx_errinfo *ei)
{
    if (request == NULL || pkgs == NULL || n == NULL)
        return cx__err(ei, CX_EINVAL, "cx_pipeline_parse_request: NULL argument");
    size_t len = strlen(request);
    if (len > CX_PIPELINE_MAX_REQUEST)
        return cx__err(ei, CX_ETOOBIG, "request is too long (%zu bytes, at most %d)", len,
                       CX_PIPELINE_MAX_REQUEST);
    /* One block: up to len/2+1 pointers, then a copy of the request cut into words. */
    size_t maxw = len / 2 + 1;
    char **v = cx__malloc(maxw * sizeof *v + len + 1);
    if (v == NULL)
        return cx__err(ei, CX_ENOMEM, "out of memory");
    char *s = (char *)(v + maxw);
    memcpy(s, request, len + 1);
    size_t cnt = 0;
    int first = 1;
    char *save = NULL;
    for (char *w = strtok_r(s, " \t\r\n,", &save); w != NULL;
         w = strtok_r(NULL, " \t\r\n,", &save)) {
        if (first && strcasecmp(w, "install") == 0) {
            first = 0;
            continue;
        }
        first = 0;
        if (strcasecmp(w, "and") == 0)
            continue;
        char reason[160];
        if (cx_validate_package_name(w, reason, sizeof reason) < 0) {
            int rc = cx__err(ei, CX_EINVAL, "package '%.80s': %s", w, reason);
            cx__free(v);
            return rc;
        }
        int dup = 0;
        for (size_t k = 0; k < cnt && !dup; k++)
            dup = strcmp(v[k], w) == 0;
        if (dup)
            continue;
        if (cnt >= CX_PIPELINE_MAX_PACKAGES) {
            cx__free(v);
            return cx__err(ei, CX_ETOOBIG, "too many packages in request (at most %d)",
                           CX_PIPELINE_MAX_PACKAGES);
        }
        v[cnt++] = w;
    }
    if (cnt == 0) {
        cx__free(v);
        return cx__err(ei, CX_EINVAL, "no package named in request '%.80s'", request);
    }
    *pkgs = v;
    *n = cnt;
    return 0;
}

/* ---- the router's validate hook: an answer is cached only if it parses and validates ---- */

/* Parses an answer, counting it (test instrumentation). */
static int parse_answer(struct cx_pipeline *p, const char *content, cJSON **obj,
                        struct cx_errinfo *ei)
{
    atomic_fetch_add(&p->parses, 1);
    return cx_parse_response(content, 1, obj, ei);
}

/* Runs where the router's CPU step runs: with the thread-local design in the query's task,
 * with the hybrid design in the task's continuation on a worker (query_post), so under the
 * emulated GIL in gil mode. An accepted answer's parsed object is handed to the query
 * (q->user) so query_finish does not parse it again. Joins the validator's reasons with '\n'
 * (split again by reasons_from_msg). */
static int validate_hook(const struct cx_llm_query *q, const char *content, void *ud,
                         struct cx_errinfo *ei)
{
    struct cx_pipeline *p = ud;
    struct query *qu = q->user;
    atomic_fetch_add(&p->hook_calls, 1);
    if (!cx_gil_held())
        atomic_fetch_add(&p->hook_no_gil, 1);
    cJSON *obj = NULL;
    int rc = parse_answer(p, content, &obj, ei);
    if (rc < 0)
        return rc;
    struct cx_validation v;
    rc = cx_validate_commands(cJSON_GetObjectItemCaseSensitive(obj, "commands"), &v);
    if (rc == CX_EREJECTED) {
        struct cx__buf b;
        cx__buf_init(&b, 4096); /* cx__err truncates to the errinfo's size */
        for (size_t i = 0; i < v.n_rejected; i++)
            if (cx__buf_printf(&b, "%s%s", i ? "\n" : "", v.reasons[i]) < 0)
                break;
        cx__err(ei, CX_EREJECTED, "%s", b.p ? b.p : "a command was rejected");
        cx__buf_reset(&b);
    } else if (rc < 0) {
        cx__err(ei, rc, "validating the answer: %s", cx_strerror(rc));
    }
    cx_validation_clear(&v);
    if (rc == 0 && qu != NULL && qu->obj == NULL) {
        qu->obj = obj;
        qu->checked = 1;
    } else {
        cJSON_Delete(obj);
    }
    return rc;
}

/* Whole-word search: does `s` mention package `pkg` ("nginx" in "apt-get install -y nginx=1.2",
 * not "tool-2" in "tool-21")? */
static int names_package(const char *s, const char *pkg)
{
    size_t l = strlen(pkg);
    if (l == 0)
        return 0;
    for (const char *m = strstr(s, pkg); m != NULL; m = strstr(m + 1, pkg)) {
        char before = m == s ? ' ' : m[-1], after = m[l];
        int wb = !(isalnum((unsigned char)before) || strchr(".+_-", before) != NULL);
        int wa = after == '\0' || !(isalnum((unsigned char)after) || strchr(".+_-", after) != NULL);
        if (wb && wa)
            return 1;
    }
    return 0;
}

/* The router's check of a SIMILARITY cache hit. Prompts that differ in one token embed close
 * together ("Install package: tool-21" and "tool-50"), so for an install a similar hit is used
 * only if the cached plan is about the requested package: its "package" field, or one of its
 * commands, names it. Anything else is a miss and the LLM is asked. Runs on the query's task. */
static int similar_hook(const struct cx_llm_query *q, const char *content, void *ud)
{
    struct cx_pipeline *p = ud;
    struct query *qu = q->user;
    if (qu == NULL || qu->run->kind != Q_INSTALL)
        return 0;
    const char *pkg = qu->item->subject;
    cJSON *obj = NULL;
    if (parse_answer(p, content, &obj, NULL) < 0)
        return CX_ENOENT;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "package");
    int ok = cJSON_IsString(name) && strcasecmp(name->valuestring, pkg) == 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(obj, "commands"))
    {
        if (!ok && cJSON_IsString(c))
            ok = names_package(c->valuestring, pkg);
    }
    if (ok && qu->obj == NULL) {
        qu->obj = obj; /* not yet validated here: query_finish validates it */
        qu->checked = 0;
    } else {
        cJSON_Delete(obj);
    }
    return ok ? 0 : CX_ENOENT;
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
    enum cx_provider force = CX_PROVIDER_AUTO;
    if (o->api != NULL) {
        if (strcasecmp(o->api, "anthropic") == 0)
            force = CX_PROVIDER_CLAUDE;
        else if (strcasecmp(o->api, "openai") == 0)
            force = CX_PROVIDER_OPENAI;
        else
            return cx__err(ei, CX_EINVAL, "api '%s': expected openai or anthropic", o->api);
    }
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
    rc = cx_limiter_new(rps, burst, &p->limiter, ei);
    if (rc < 0)
        goto fail;
    if (o->db_path != NULL) {
        struct cx_pool_options po;
        cx_pool_options_init(&po);
        po.path = o->db_path;
        po.readers = cfg->db_pool_size > 0 ? cfg->db_pool_size : 5;
        rc = cx_pool_open(&po, &p->pool, ei);
        if (rc < 0)
            goto fail;
        if (o->use_cache) {
            struct cx_cache_options co;
            cx_cache_options_init(&co);
            if (cfg->cache_max_entries > 0)
                co.max_entries = (size_t)cfg->cache_max_entries;
            if (o->similar_cache && cfg->cache_similarity_threshold > 0)
                co.similarity_threshold = cfg->cache_similarity_threshold;
            else
                co.similarity_threshold = 2.0; /* > 1: exact hits only (see pipeline.h) */
            rc = cx_cache_new(p->pool, &co, &p->cache, ei);
            if (rc < 0)
                goto fail;
        }
        rc = cx_history_init(p->pool, ei);
        if (rc < 0)
            goto fail;
        p->history = 1;
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
    ropt.cache = p->cache;
    ropt.limiter = p->limiter;
    ropt.io = CX_IO_THREAD_LOCAL; /* cx_router_complete blocks; the async form uses the loop */
    ropt.loop = p->loop;
    ropt.validate = validate_hook;
    ropt.validate_ud = p;
    ropt.accept_similar = similar_hook;
    ropt.accept_similar_ud = p;
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
    cx_ioloop_free(p->loop);
    cx_cache_free(p->cache);
    cx_pool_close(p->pool);
    cx_limiter_free(p->limiter);
    cx__mutex_destroy(&p->mu);
    cx__free(p);
}

/* ---- one query: the CPU step shared by both I/O designs ---- */

static char **strv_from_json(const cJSON *arr, size_t *n, int *oom)
{
    *n = 0;
    if (!cJSON_IsArray(arr))
        return NULL;
    int cnt = cJSON_GetArraySize(arr);
    if (cnt <= 0)
        return NULL;
    char **v = cx__calloc((size_t)cnt, sizeof *v);
    if (v == NULL) {
        *oom = 1;
        return NULL;
    }
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e))
            continue;
        v[k] = cx__strdup(e->valuestring);
        if (v[k] == NULL) {
            *oom = 1;
            strv_free(v, k);
            return NULL;
        }
        k++;
    }
    *n = k;
    return v;
}

static char *json_str(const cJSON *obj, const char *key, int *oom)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(s))
        return NULL;
    char *r = cx__strdup(s->valuestring);
    if (r == NULL)
        *oom = 1;
    return r;
}

/* Splits a validator message (reasons joined by '\n', possibly after the router's
 * "... refused by the validator: " prefix) into the item's reasons. */
static void reasons_from_msg(struct cx_item *it, const char *msg)
{
    const char *mark = strstr(msg, "refused by the validator: ");
    if (mark != NULL)
        msg = mark + strlen("refused by the validator: ");
    size_t cnt = 1;
    for (const char *c = msg; *c; c++)
        cnt += *c == '\n';
    it->reasons = cx__calloc(cnt, sizeof *it->reasons);
    if (it->reasons == NULL)
        return;
    const char *s = msg;
    for (size_t i = 0; i < cnt; i++) {
        const char *e = strchr(s, '\n');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        it->reasons[i] = cx__strndup(s, l);
        if (it->reasons[i] == NULL)
            break;
        it->n_reasons++;
        s = e ? e + 1 : s + l;
    }
}

static int query_fail(struct query *qu, int rc, const char *msg)
{
    struct cx_item *it = qu->item;
    it->status = rc;
    cx__free(it->error);
    it->error = cx__strdup(msg && msg[0] ? msg : cx_strerror(rc));
    if (rc == CX_EREJECTED && it->n_reasons == 0 && msg != NULL)
        reasons_from_msg(it, msg);
    return rc;
}

/* Parses and validates the router's answer into the item. Returns the task's status. */
static int query_finish(struct query *qu, int rc)
{
    struct run *run = qu->run;
    struct cx_item *it = qu->item;
    /* What the router's hooks parsed, if they did (see struct query). */
    cJSON *obj = qu->obj;
    int checked = qu->checked;
    qu->obj = NULL;
    if (rc < 0) {
        cJSON_Delete(obj);
        return query_fail(qu, rc, qu->ei.msg);
    }
    uint64_t t0 = cx_now_ns();
    it->from_cache = qu->resp.from_cache;
    if (run->ro->cpu_work_ns > 0)
        cx_cpu_work_ns(run->ro->cpu_work_ns);
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (obj == NULL) {
        /* A cache hit or an answer shared by an identical query: not parsed yet. */
        checked = 0;
        rc = parse_answer(run->p, qu->resp.content, &obj, &ei);
        if (rc < 0)
            return query_fail(qu, rc, ei.msg);
    }
    cJSON *cmds = cJSON_GetObjectItemCaseSensitive(obj, "commands");
    struct cx_validation v;
    memset(&v, 0, sizeof v);
    rc = checked ? 0 : cx_validate_commands(cmds, &v);
    if (rc == CX_EREJECTED) {
        /* Only reachable for answers the hook did not see (a cache written elsewhere). */
        it->reasons = cx__calloc(v.n_rejected, sizeof *it->reasons);
        for (size_t i = 0; it->reasons != NULL && i < v.n_rejected; i++) {
            it->reasons[i] = v.reasons[i];
            v.reasons[i] = NULL;
            it->n_reasons++;
        }
        cx_validation_clear(&v);
        cJSON_Delete(obj);
        return query_fail(qu, CX_EREJECTED, it->n_reasons ? it->reasons[0] : NULL);
    }
    cx_validation_clear(&v);
    if (rc < 0) {
        cJSON_Delete(obj);
        return query_fail(qu, rc, "validating the answer");
    }
    int oom = 0;
    it->commands = strv_from_json(cmds, &it->n_commands, &oom);
    switch (run->kind) {
    case Q_INSTALL: it->text = json_str(obj, "explanation", &oom); break;
    case Q_DIAGNOSE:
        it->text = json_str(obj, "cause", &oom);
        if (it->text == NULL && !oom)
            it->text = json_str(obj, "explanation", &oom);
        break;
    case Q_HW:
        it->advice = strv_from_json(cJSON_GetObjectItemCaseSensitive(obj, "recommendations"),
                                    &it->n_advice, &oom);
        break;
    }
    if (oom) {
        cJSON_Delete(obj);
        return query_fail(qu, CX_ENOMEM, "out of memory");
    }
    qu->obj = obj;
    qu->cpu_ns = cx_now_ns() - t0;
    return 0;
}

/* Thread-local design: block on the router, then the CPU step, on this worker. */
static int task_sync(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)ctx;
    (void)res;
    struct query *qu = arg;
    int rc = cx_router_complete(qu->run->p->router, &qu->q, &qu->resp, &qu->ei);
    return query_finish(qu, rc);
}

/* A query that is not sent (its input failed): completes with the item's status. */
static int task_skip(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)ctx;
    (void)res;
    struct query *qu = arg;
    return qu->item->status;
}

/* Hybrid design: the continuation, on a worker, after the router called back. */
static int task_cont(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)ctx;
    (void)res;
    struct query *qu = arg;
    return query_finish(qu, qu->rc);
}

/* The router's callback (I/O thread, a post thread, or the task itself on a cache hit). */
static void on_router_done(int rc, struct cx_llm_response *resp, const struct cx_errinfo *ei,
                           void *ud)
{
    struct query *qu = ud;
    qu->rc = rc;
    if (resp != NULL) {
        qu->resp = *resp; /* taken: the strings are ours now */
        cx_llm_response_init(resp);
    }
    if (ei != NULL && rc < 0)
        qu->ei = *ei;
    int r = cx_task_resume(qu->h, task_cont, qu);
    CX_ASSERT(r == 0);
}

/* Hybrid design: the router's CPU step (parse + validate + cache write, then the done callback)
 * as a continuation of the query's task, on a worker (under the GIL in gil mode) instead of
 * the I/O thread. The continuation takes a fresh handle before it runs fn, so a retry's next
 * post or on_router_done always finds a valid one (the pattern of cx/router.h). */
static int task_post(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)res;
    struct query *qu = arg;
    qu->h = cx_task_suspend(ctx);
    qu->post_fn(qu->post_arg);
    return CX_EAGAIN;
}

static int query_post(void (*fn)(void *arg), void *arg, void *ctx)
{
    struct query *qu = ctx;
    qu->post_fn = fn;
    qu->post_arg = arg;
    return cx_task_resume(qu->h, task_post, qu);
}

static int task_hybrid(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)res;
    struct query *qu = arg;
    qu->q.post = query_post;
    qu->q.post_ctx = qu;
    qu->h = cx_task_suspend(ctx);
    int rc = cx_router_complete_async(qu->run->p->router, &qu->q, on_router_done, qu, &qu->ei);
    if (rc < 0) {
        /* The callback will never run: resume ourselves with the failure. */
        qu->rc = rc;
        int r = cx_task_resume(qu->h, task_cont, qu);
        CX_ASSERT(r == 0);
    }
    return CX_EAGAIN;
}

/* ---- the fan-out ---- */

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

/* Runs run->n queries (prompts and items set up by the caller) and fills their items. */
static int fanout(struct run *run, struct cx_errinfo *ei)
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
        tasks[i].fn = run->qs[i].skip ? task_skip
                      : run->io == CX_IO_HYBRID ? task_hybrid
                                                : task_sync;
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
            query_fail(qu, CX_ECANCELED, "the query was cancelled");
        if (res[i].end_ns > res[i].start_ns && res[i].start_ns > 0)
            it->latency_s = cx_elapsed_s(res[i].start_ns, res[i].end_ns);
        if (it->status == 0) {
            cpu += qu->cpu_ns;
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
    if (wall > 0) {
        cx__mutex_lock(&p->mu);
        p->cpu_share = (double)cpu / (double)wall;
        cx__mutex_unlock(&p->mu);
    }
    return 0;
}

static int run_setup(struct run *run, struct cx_pipeline *p, enum qkind kind,
                     const struct cx_run_options *ro, size_t n, struct cx_item *items)
{
    memset(run, 0, sizeof *run);
    run->p = p;
    run->kind = kind;
    run->ro = ro;
    run->n = n;
    run->qs = cx__calloc(n ? n : 1, sizeof *run->qs);
    if (run->qs == NULL)
        return CX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct query *qu = &run->qs[i];
        qu->run = run;
        qu->item = &items[i];
        cx_llm_query_init(&qu->q);
        cx_llm_response_init(&qu->resp);
        qu->q.force = p->force;
        qu->q.deadline = ro->deadline;
        qu->q.extra_header = ro->extra_header;
        qu->q.max_tokens = 1024;
        qu->q.temperature = 0.2;
        qu->q.user = qu; /* the router hands it to validate_hook / similar_hook */
    }
    return 0;
}

static void run_clear(struct run *run)
{
    for (size_t i = 0; run->qs != NULL && i < run->n; i++) {
        cx__free(run->qs[i].prompt);
        cx_llm_response_clear(&run->qs[i].resp);
        cJSON_Delete(run->qs[i].obj);
    }
    cx__free(run->qs);
    run->qs = NULL;
}

/* ---- the apt step ---- */

/* Runs cmd with /bin/sh -c; the child's stdout goes to our stderr so a --json stdout stays one
 * JSON object. Returns the exit status (0 ok), or -1 when it could not start. */
static int run_shell(const char *cmd)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int st = 0;
    cx_gil_io_begin();
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    cx_gil_io_end();
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

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
        if (ro->confirm == NULL || ro->confirm(&r->plan, ro->confirm_ud) != 1) {
            r->refused = 1;
            r->refused_reason = "execution was not confirmed";
            return CX_EREJECTED;
        }
        for (size_t i = 0; i < r->plan.n; i++) {
            int st = run_shell(r->plan.commands[i]);
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
    e.status = status;
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

int cx_pipeline_install(struct cx_pipeline *p, const char *request,
                        const struct cx_run_options *ro_in, struct cx_install_report **out,
                        struct cx_errinfo *ei)
{
    if (p == NULL || request == NULL || out == NULL)
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
    char **pkgs = NULL;
    size_t n = 0;
    int rc = cx_pipeline_parse_request(request, &pkgs, &n, ei);
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
    r->request = cx__strdup(request);
    r->items = cx__calloc(n, sizeof *r->items);
    if (r->request == NULL || r->items == NULL)
        goto oom;
    r->n_items = n;
    if (run_setup(&run, p, Q_INSTALL, ro, n, r->items) < 0)
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
    cx__free(pkgs);
    pkgs = NULL;
    if (ro->parse_work_ns > 0)
        cx_cpu_work_ns(ro->parse_work_ns);
    uint64_t t1 = cx_now_ns();
    r->timings.parse_s = cx_elapsed_s(t0, t1);

    rc = fanout(&run, ei);
    if (rc < 0)
        goto fail;
    r->io = run.io;
    r->threads = run.threads;
    r->cache_hits = run.cache_hits;
    r->failed = run.failed;
    r->rejected = run.rejected;
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
    if (ro->merge_work_ns > 0)
        cx_cpu_work_ns(ro->merge_work_ns);
    if (rc < 0)
        goto fail;
    run_clear(&run);
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
    cx__free(pkgs);
    run_clear(&run);
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
    int rc = fanout(run, ei);
    run_clear(run);
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
    if (run_setup(&run, p, Q_DIAGNOSE, ro, n, r->items) < 0) {
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
            run_clear(&run);
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
    if (fanout_report_new(n, &r) < 0 || run_setup(&run, p, Q_HW, ro, n, r->items) < 0) {
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
    run_clear(&run);
    cx_fanout_report_free(r);
    cx__free(hw);
    return cx__err(ei, CX_ENOMEM, "out of memory");
}

/* ---- test hooks (not in the public header; tests declare them) ---- */

/* Answers parsed, validate-hook calls, and validate-hook calls made without holding a GIL. */
void cx__pipeline_counts(struct cx_pipeline *p, uint64_t *parses, uint64_t *hook_calls,
                         uint64_t *hook_no_gil);
void cx__pipeline_counts(struct cx_pipeline *p, uint64_t *parses, uint64_t *hook_calls,
                         uint64_t *hook_no_gil)
{
    *parses = atomic_load(&p->parses);
    *hook_calls = atomic_load(&p->hook_calls);
    *hook_no_gil = atomic_load(&p->hook_no_gil);
}
