/*
 * pipeline_query.c - one query of a run (one package, one error message, one hardware
 * component) as a state machine: enum qstate (pipeline_internal.h) and one step function,
 * query_step, run by the query's executor task. The router only answers; everything the
 * pipeline decides about an answer happens here, in order.
 * What it does not do: choose the design or run the executor (pipeline_run.c), merge plans or
 * run anything (pipeline.c), talk HTTP (the router).
 *
 * DESIGN: the life of a query (every state runs on an executor worker, holding the emulated
 * GIL in gil mode; the only waits are marked, and each releases the GIL):
 *   QS_LOOKUP    cx_cache_get under the router's name for the query's first candidate
 *                (cx_router_endpoint). An exact hit goes to QS_PARSE. A similarity hit for an
 *                install is parsed here and used only if its "package" field or one of its
 *                commands names the requested package (prompts that differ in one token embed
 *                close together); it then skips to QS_VALIDATE, else it is a miss. A miss goes
 *                to QS_FLEET in fleet mode, else to QS_SUBMIT.
 *   QS_FLEET     (pipeline_fleet.c) the shared tier and fleet single flight: a hit goes to
 *                QS_PARSE; leading (or Redis down) goes to QS_SUBMIT; another process leading
 *                parks the task on the poller thread (suspended, no worker held).
 *   QS_SUBMIT    thread-local design: cx_router_complete blocks this worker (WAIT: sleeps and
 *                curl, GIL released by the router). Hybrid design: cx_task_suspend, then
 *                cx_router_submit, and the task returns CX_EAGAIN: the worker is free, the I/O
 *                thread moves the bytes, and the router resumes the task once, on a worker, with
 *                its reply (the one suspend/resume cycle of a query).
 *   QS_ANSWERED  the reply: a typed error ends the query; else the raw content is taken.
 *   QS_PARSE     cx_parse_response, once per answer (bench work is charged here).
 *   QS_VALIDATE  cx_validate_commands: a rejection ends the query with the reasons (and nothing
 *                is cached).
 *   QS_PUT       a fresh, accepted answer is queued for the cache writer (asynchronous: the
 *                run waits for the commit at its end, on the caller's thread, without a GIL)
 *                and, in fleet mode, written to Redis (one round trip, GIL released; a leader's
 *                lock is released with it). A shared hit is copied into the local cache.
 *   QS_FILL      the item's commands and text.
 * Per query: at most one suspend/resume cycle and exactly one parse, in both designs (a refused
 * similar hit adds one parse for the LLM's answer).
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/parse.h"
#include "cx/validate.h"
#include "pipeline_internal.h"

/* Set around cx_router_submit on the submitting thread: a completion that finds it set ran
 * inside the submit call (counted in completions_in_submit, which must stay 0). */
static _Thread_local int tls_in_submit;

static void strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        cx__free(v[i]);
    cx__free(v);
}

void cx__item_clear(struct cx_item *it)
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
    cJSON_ArrayForEach (e, arr) {
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

int cx__query_fail(struct query *qu, int rc, const char *msg)
{
    struct cx_item *it = qu->item;
    it->status = rc;
    cx__free(it->error);
    it->error = cx__strdup(msg && msg[0] ? msg : cx_strerror(rc));
    cJSON_Delete(qu->obj); /* a failed query's answer is never merged */
    qu->obj = NULL;
    qu->st = QS_DONE;
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

/* A similar install hit is about the requested package: its "package" field, or one of its
 * commands, names it. */
static int plan_names_package(const cJSON *obj, const char *pkg)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "package");
    if (cJSON_IsString(name) && strcasecmp(name->valuestring, pkg) == 0)
        return 1;
    const cJSON *c;
    cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive(obj, "commands")) {
        if (cJSON_IsString(c) && names_package(c->valuestring, pkg))
            return 1;
    }
    return 0;
}

/* Parses qu->content into qu->obj, counting it. */
static int parse_content(struct query *qu, struct cx_errinfo *ei)
{
    struct cx_pipeline *p = qu->run->p;
    atomic_fetch_add(&p->n_parses, 1);
    if (!cx_gil_held() && p->mode == CX_MODE_GIL)
        atomic_fetch_add(&p->n_cpu_no_gil, 1);
    return cx_parse_response(qu->content, 1, &qu->obj, ei);
}

static int step_lookup(struct query *qu)
{
    struct run *run = qu->run;
    struct cx_pipeline *p = run->p;
    /* After a local miss: the fleet's shared tier when there is one, else the LLM. */
    enum qstate miss = p->shared != NULL && qu->q.prompt[0] != '\0' ? QS_FLEET : QS_SUBMIT;
    if (p->cache == NULL || qu->q.prompt[0] == '\0') {
        qu->st = miss;
        return 0;
    }
    const char *ep, *model;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_router_endpoint(p->router, &qu->q, &qu->prov, &ep, &model, &ei);
    if (rc < 0)
        return cx__query_fail(qu, rc, ei.msg);
    struct cx_cache_key k = {ep, model, qu->q.system ? qu->q.system : "", qu->q.prompt};
    char *json = NULL;
    int similar = 0;
    rc = cx_cache_get(p->cache, &k, &json, &similar, NULL);
    if (rc == CX_ENOMEM)
        return cx__query_fail(qu, rc, "out of memory");
    if (rc < 0) { /* a miss (or a lookup error: the LLM is asked) */
        qu->st = miss;
        return 0;
    }
    qu->content = json; /* returned by the cache: cx_free == cx__free */
    qu->item->from_cache = 1;
    qu->item->cache_tier = "local";
    qu->t_cpu = cx_now_ns();
    if (!similar || run->kind != Q_INSTALL) {
        qu->st = QS_PARSE;
        return 0;
    }
    /* A similar install hit: parse it here (the query's one parse when it is used). */
    if (parse_content(qu, NULL) == 0 && plan_names_package(qu->obj, qu->item->subject)) {
        qu->st = QS_VALIDATE;
        return 0;
    }
    cJSON_Delete(qu->obj);
    qu->obj = NULL;
    cx__free(qu->content);
    qu->content = NULL;
    qu->item->from_cache = 0;
    qu->item->cache_tier = NULL;
    qu->st = miss;
    return 0;
}

static int task_resumed(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);

/* Returns CX_EAGAIN when the task suspended. */
static int step_submit(struct cx_task_ctx *ctx, struct query *qu)
{
    struct cx_pipeline *p = qu->run->p;
    atomic_fetch_add(&p->n_submits, 1);
    qu->st = QS_ANSWERED;
    qu->t_submit = cx_now_ns();
    if (qu->run->io != CX_IO_HYBRID) {
        cx_router_reply_init(&qu->reply);
        qu->reply.rc = cx_router_complete(p->router, &qu->q, &qu->reply.resp, &qu->reply.ei);
        return 0;
    }
    qu->h = cx_task_suspend(ctx);
    atomic_fetch_add(&p->n_suspends, 1);
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    tls_in_submit = 1;
    int rc = cx_router_submit(p->router, &qu->q, &qu->reply, qu->h, task_resumed, qu, &ei);
    tls_in_submit = 0;
    if (rc < 0) { /* the router will not resume us: resume ourselves with the failure */
        cx_router_reply_init(&qu->reply);
        qu->reply.rc = rc;
        qu->reply.ei = ei;
        int r = cx_task_resume(qu->h, task_resumed, qu);
        CX_ASSERT(r == 0);
    }
    return CX_EAGAIN;
}

static int step_answered(struct query *qu)
{
    struct cx_router_reply *rp = &qu->reply;
    if (rp->rc < 0)
        return cx__query_fail(qu, rp->rc, rp->ei.msg);
    qu->content = rp->resp.content; /* taken */
    rp->resp.content = NULL;
    qu->prov = rp->resp.provider;
    qu->limiter_wait_s = rp->resp.limiter_wait_s;
    cx_llm_response_clear(&rp->resp);
    qu->t_cpu = cx_now_ns();
    qu->st = QS_PARSE;
    return 0;
}

static int step_parse(struct query *qu)
{
    if (qu->run->bench.cpu_work_ns > 0)
        cx_cpu_work_ns(qu->run->bench.cpu_work_ns);
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = parse_content(qu, &ei);
    if (rc < 0)
        return cx__query_fail(qu, rc, ei.msg);
    qu->st = QS_VALIDATE;
    return 0;
}

static int step_validate(struct query *qu)
{
    struct cx_pipeline *p = qu->run->p;
    struct cx_item *it = qu->item;
    atomic_fetch_add(&p->n_validations, 1);
    if (!cx_gil_held() && p->mode == CX_MODE_GIL)
        atomic_fetch_add(&p->n_cpu_no_gil, 1);
    struct cx_validation v;
    memset(&v, 0, sizeof v);
    int rc = cx_validate_commands(cJSON_GetObjectItemCaseSensitive(qu->obj, "commands"), &v);
    if (rc == CX_EREJECTED) {
        struct cx__buf b;
        cx__buf_init(&b, 4096);
        (void)cx__buf_printf(&b, "%s answer refused by the validator: ",
                             it->from_cache ? "the cached" : cx_provider_name(qu->prov));
        it->reasons = cx__calloc(v.n_rejected ? v.n_rejected : 1, sizeof *it->reasons);
        for (size_t i = 0; it->reasons != NULL && i < v.n_rejected; i++) {
            (void)cx__buf_printf(&b, "%s%s", i ? "\n" : "", v.reasons[i]);
            it->reasons[i] = v.reasons[i];
            v.reasons[i] = NULL;
            it->n_reasons++;
        }
        cx_validation_clear(&v);
        rc = cx__query_fail(qu, CX_EREJECTED, b.p ? b.p : "a command was rejected");
        cx__buf_reset(&b);
        return rc;
    }
    cx_validation_clear(&v);
    if (rc < 0)
        return cx__query_fail(qu, rc, "validating the answer");
    qu->st = QS_PUT;
    return 0;
}

static void put_done(int rc, void *ud)
{
    (void)rc; /* a failed write loses only speed */
    struct run *run = ud;
    cx__mutex_lock(&run->put_mu);
    if (--run->puts_pending == 0)
        pthread_cond_broadcast(&run->put_cond);
    cx__mutex_unlock(&run->put_mu);
}

/* The cache write, handed to the cache's writer: queued, not waited for. */
static int put_async(struct cx_cache *c, const struct cx_cache_key *k, const char *json,
                     struct run *run)
{
    cx__mutex_lock(&run->put_mu);
    run->puts_pending++;
    cx__mutex_unlock(&run->put_mu);
    int rc = cx_cache_put_async(c, k, json, put_done, run, NULL);
    if (rc < 0)
        put_done(rc, run); /* done never runs for a refused put */
    return rc;
}

/* Writes through both tiers: a fresh answer goes to the local cache and the fleet's shared
 * tier; a shared hit is copied into the local cache (read-through); a local hit goes nowhere. */
static int step_put(struct query *qu)
{
    struct cx_pipeline *p = qu->run->p;
    qu->st = QS_FILL;
    if ((qu->item->from_cache && !qu->fleet_hit) || qu->q.prompt[0] == '\0' ||
        qu->content[0] == '\0')
        return 0;
    const char *ep, *model;
    if (cx_router_provider_endpoint(p->router, qu->prov, &ep, &model) < 0)
        return 0;
    struct cx_cache_key k = {ep, model, qu->q.system ? qu->q.system : "", qu->q.prompt};
    if (p->cache != NULL && put_async(p->cache, &k, qu->content, qu->run) == 0)
        atomic_fetch_add(&p->n_puts, 1);
    if (!qu->fleet_hit)
        cx__pfleet_put(qu, &k);
    return 0;
}

static int step_fill(struct query *qu)
{
    struct cx_item *it = qu->item;
    const cJSON *obj = qu->obj;
    int oom = 0;
    it->commands =
        strv_from_json(cJSON_GetObjectItemCaseSensitive(obj, "commands"), &it->n_commands, &oom);
    switch (qu->run->kind) {
    case Q_INSTALL:
        it->text = json_str(obj, "explanation", &oom);
        break;
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
    if (oom)
        return cx__query_fail(qu, CX_ENOMEM, "out of memory");
    qu->cpu_ns = cx_now_ns() - qu->t_cpu;
    qu->st = QS_DONE;
    return 0;
}

/* The step function: runs the query from its current state until it is done (returns the
 * item's status) or suspended (CX_EAGAIN). */
int cx__query_step(struct cx_task_ctx *ctx, struct query *qu)
{
    for (;;) {
        int rc = 0;
        switch (qu->st) {
        case QS_LOOKUP:
            rc = step_lookup(qu);
            break;
        case QS_FLEET:
            if (cx__pfleet_lookup(ctx, qu) == CX_EAGAIN)
                return CX_EAGAIN;
            break;
        case QS_SUBMIT:
            if (step_submit(ctx, qu) == CX_EAGAIN)
                return CX_EAGAIN;
            break;
        case QS_ANSWERED:
            rc = step_answered(qu);
            break;
        case QS_PARSE:
            rc = step_parse(qu);
            break;
        case QS_VALIDATE:
            rc = step_validate(qu);
            break;
        case QS_PUT:
            rc = step_put(qu);
            break;
        case QS_FILL:
            rc = step_fill(qu);
            break;
        case QS_DONE:
            if (qu->fleet_leader) /* led the fleet's flight but put nothing: let go */
                cx__pfleet_abandon(qu);
            return qu->item->status;
        }
        (void)rc; /* a failing step has moved the query to QS_DONE */
    }
}

int cx__query_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)res;
    struct query *qu = arg;
    atomic_fetch_add(&qu->run->p->n_queries, 1);
    qu->st = QS_LOOKUP;
    return cx__query_step(ctx, qu);
}

/* The router's one completion of a hybrid query: a continuation of its task, on a worker. */
static int task_resumed(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)res;
    struct query *qu = arg;
    struct cx_pipeline *p = qu->run->p;
    atomic_fetch_add(&p->n_resumes, 1);
    if (tls_in_submit)
        atomic_fetch_add(&p->n_in_submit, 1);
    return cx__query_step(ctx, qu);
}

int cx__query_skip(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)ctx;
    (void)res;
    struct query *qu = arg;
    return qu->item->status;
}
