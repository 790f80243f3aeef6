/*
 * pipeline_fleet.c - the pipeline's fleet mode (CORTEX_REDIS_URL): opening the shared Redis
 * connection, the fleet rate limit the router reserves through, the shared exact cache tier
 * and fleet-wide single flight, and the poller thread that waits for other processes' leaders.
 * What it does not do: the Redis protocol, the scripts or the fallback arithmetic (fleet*.c),
 * the steps of a query (pipeline_query.c calls the functions here from its states).
 *
 * DESIGN (threads). One extra thread per pipeline with a fleet, the poller, started by
 * cx__pfleet_open and joined by cx__pfleet_free. A query whose fleet single flight finds another
 * process leading (QS_FLEET: CX__FLIGHT_WAIT) suspends its task (cx_task_suspend) and is put on
 * the poller's list (guarded by fleet_mu); its worker is free again at once, in both I/O
 * designs. The poller alone polls Redis for the waiting queries, each on its own backoff (2 ms
 * doubling to 100 ms, never past the leader's lease), and resumes each query exactly once
 * (cx_task_resume, so the continuation runs on a worker of that run's executor, never inside the
 * call that parked it): with the shared answer, as the new leader (the old one died: its lock
 * expired), or to ask upstream alone (Redis went away, or the query's deadline came). The list
 * is empty whenever no run is in progress, so shutdown only has to stop the thread. Redis round
 * trips the workers make themselves (one flight poll, one shared put per fresh answer) are
 * single commands bounded by op_timeout_ms, with the emulated GIL released (fleet.c).
 */
#include <string.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/executor.h"
#include "fleet.h"
#include "fleet_cache.h"
#include "fleet_ratelimit.h"
#include "pipeline_internal.h"

/* Opens the fleet from the configuration. With cfg->redis_url NULL nothing happens. */
int cx__pfleet_open(struct cx_pipeline *p, const struct cx_config *cfg, double rps, double burst,
                    int use_cache, struct cx_errinfo *ei)
{
    if (cfg->redis_url == NULL)
        return 0;
    struct cx__fleet_options fo;
    cx__fleet_options_init(&fo);
    fo.url = cfg->redis_url;
    fo.password = cfg->redis_password;
    if (cfg->redis_prefix != NULL)
        fo.prefix = cfg->redis_prefix;
    fo.optional = cfg->redis_optional;
    /* Reconnect attempts are cheap (a refused connection fails at once) and, after an outage,
     * the processes still in their backoff keep using quota / fleet_size locally while those
     * already back use the shared bucket: a short cap keeps that overlap short. */
    fo.backoff_max_ms = 250;
    int rc = cx__fleet_open(&fo, &p->fleet, ei);
    if (rc < 0)
        return rc;
    struct cx__ratelimit_options ro;
    cx__ratelimit_options_init(&ro);
    ro.provider = "llm"; /* one request bucket for the fleet, as the local limiter is one */
    ro.rps = rps;
    ro.burst = burst;
    ro.tpm = cfg->tokens_per_minute;
    ro.fleet_size = cfg->fleet_size > 0 ? cfg->fleet_size : 1;
    rc = cx__ratelimit_open(&ro, p->fleet, &p->frl, ei);
    if (rc < 0)
        return rc;
    if (use_cache) {
        struct cx__shared_cache_options co;
        cx__shared_cache_options_init(&co);
        if (cfg->cache_max_entries > 0)
            co.max_entries = cfg->cache_max_entries;
        if (cfg->request_timeout_ms > 0)
            co.lease_ms = cfg->request_timeout_ms; /* one upstream call (see fleet_cache.h) */
        rc = cx__shared_cache_open(p->fleet, &co, &p->shared, ei);
        if (rc < 0)
            return rc;
        if ((rc = cx__mutex_init(&p->fleet_mu)) < 0)
            return cx__err(ei, rc, "out of memory");
        p->fleet_mu_ok = 1;
        if ((rc = cx__cond_init(&p->fleet_cond)) < 0)
            return cx__err(ei, rc, "out of memory");
        p->fleet_cond_ok = 1;
        if (pthread_create(&p->poller, NULL, cx__pfleet_poller, p) != 0)
            return cx__err(ei, CX_ENOMEM, "cannot start the fleet poller thread");
        p->poller_started = 1;
    }
    return 0;
}

void cx__pfleet_free(struct cx_pipeline *p)
{
    if (p->poller_started) {
        cx__mutex_lock(&p->fleet_mu);
        p->poller_stop = 1;
        pthread_cond_signal(&p->fleet_cond);
        cx__mutex_unlock(&p->fleet_mu);
        pthread_join(p->poller, NULL);
    }
    if (p->fleet_cond_ok)
        pthread_cond_destroy(&p->fleet_cond);
    if (p->fleet_mu_ok)
        cx__mutex_destroy(&p->fleet_mu);
    cx__shared_cache_free(p->shared);
    cx__ratelimit_free(p->frl);
    cx__fleet_free(p->fleet);
}

/* The query's exact key under the router's name for its first candidate. */
static int first_key(struct query *qu, struct cx_cache_key *k, struct cx_errinfo *ei)
{
    const char *ep, *model;
    enum cx_provider prov;
    int rc = cx_router_endpoint(qu->run->p->router, &qu->q, &prov, &ep, &model, ei);
    if (rc < 0)
        return rc;
    k->provider = ep;
    k->model = model;
    k->system_prompt = qu->q.system ? qu->q.system : "";
    k->prompt = qu->q.prompt;
    qu->prov = prov;
    return 0;
}

/* Takes a shared answer into the query. */
static void take_hit(struct query *qu, char *value)
{
    qu->content = value;
    qu->item->from_cache = 1;
    qu->item->cache_tier = "fleet";
    qu->fleet_hit = 1;
    qu->t_cpu = cx_now_ns();
    atomic_fetch_add(&qu->run->p->n_fleet_hits, 1);
    qu->st = QS_PARSE;
}

/* What a poll's outcome does to the query (no lock held). Returns 1 when the query must wait
 * (another process leads), 0 when it moved on. */
static int apply(struct query *qu, int rc, enum cx__flight_role role, char *value,
                 const struct cx_errinfo *ei)
{
    struct cx_pipeline *p = qu->run->p;
    if (rc == CX_ECORRUPT || rc == CX_EPROTO) { /* a foreign value under our key: named */
        cx__query_fail(qu, rc, ei->msg);
        return 0;
    }
    if (rc < 0) { /* Redis cannot answer (or the deadline came): ask upstream alone */
        atomic_fetch_add(&p->n_fleet_alone, 1);
        qu->st = QS_SUBMIT;
        return 0;
    }
    switch (role) {
    case CX__FLIGHT_HIT:
        take_hit(qu, value);
        return 0;
    case CX__FLIGHT_LEADER:
        qu->fleet_leader = 1;
        qu->st = QS_SUBMIT;
        return 0;
    case CX__FLIGHT_WAIT:
        break;
    }
    return 1;
}

static int fleet_resumed(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);

/* QS_FLEET: the shared tier after a local miss. Returns CX_EAGAIN when the task suspended (the
 * poller resumes it). */
int cx__pfleet_lookup(struct cx_task_ctx *ctx, struct query *qu)
{
    struct cx_pipeline *p = qu->run->p;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    qu->st = QS_SUBMIT;
    struct cx_cache_key k;
    int rc = first_key(qu, &k, &ei);
    if (rc < 0)
        return cx__query_fail(qu, rc, ei.msg);
    enum cx__flight_role role = CX__FLIGHT_WAIT;
    char *value = NULL;
    long long left_ms = 0;
    rc = cx__shared_cache_flight_poll(p->shared, &k, qu->q.deadline, 1, &role, &qu->flight,
                                      &value, &left_ms, &ei);
    if (!apply(qu, rc, role, value, &ei))
        return 0;
    /* Another process leads: park with the poller, free the worker. */
    atomic_fetch_add(&p->n_fleet_waits, 1);
    qu->backoff_ns = 2 * CX_NSEC_PER_MSEC;
    qu->next_poll = cx_now_ns() + cx__shared_cache_next_poll_ns(&qu->backoff_ns, left_ms,
                                                                 qu->q.deadline);
    qu->h = cx_task_suspend(ctx);
    cx__mutex_lock(&p->fleet_mu);
    qu->fleet_next = p->waiting;
    p->waiting = qu;
    pthread_cond_signal(&p->fleet_cond);
    cx__mutex_unlock(&p->fleet_mu);
    return CX_EAGAIN;
}

/* One poll for a parked query, on the poller thread. Returns 1 while it keeps waiting. */
static int poll_one(struct query *qu)
{
    struct cx_pipeline *p = qu->run->p;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    struct cx_cache_key k;
    int rc = first_key(qu, &k, &ei);
    enum cx__flight_role role = CX__FLIGHT_WAIT;
    char *value = NULL;
    long long left_ms = 0;
    if (rc == 0)
        rc = cx__shared_cache_flight_poll(p->shared, &k, qu->q.deadline, 0, &role, &qu->flight,
                                          &value, &left_ms, &ei);
    else
        rc = CX_EINVAL;
    if (rc == 0 && role == CX__FLIGHT_WAIT && cx_deadline_expired(qu->q.deadline))
        rc = CX_ETIMEDOUT; /* go upstream alone: the router reports the deadline */
    if (!apply(qu, rc, role, value, &ei))
        return 0;
    qu->next_poll = cx_now_ns() + cx__shared_cache_next_poll_ns(&qu->backoff_ns, left_ms,
                                                                 qu->q.deadline);
    return 1;
}

void *cx__pfleet_poller(void *arg)
{
    struct cx_pipeline *p = arg;
    cx__mutex_lock(&p->fleet_mu);
    for (;;) {
        if (p->poller_stop && p->waiting == NULL)
            break;
        uint64_t now = cx_now_ns(), next = CX_DEADLINE_NONE;
        struct query *due = NULL;
        for (struct query **pp = &p->waiting; *pp != NULL;) {
            struct query *qu = *pp;
            if (qu->next_poll <= now) {
                *pp = qu->fleet_next;
                qu->fleet_next = due;
                due = qu;
            } else {
                if (qu->next_poll < next)
                    next = qu->next_poll;
                pp = &qu->fleet_next;
            }
        }
        if (due == NULL) {
            (void)cx__cond_wait(&p->fleet_cond, &p->fleet_mu, next);
            continue;
        }
        cx__mutex_unlock(&p->fleet_mu); /* no Redis I/O under the lock */
        struct query *again = NULL;
        while (due != NULL) {
            struct query *qu = due;
            due = qu->fleet_next;
            if (poll_one(qu)) {
                qu->fleet_next = again;
                again = qu;
            } else {
                int rc = cx_task_resume(qu->h, fleet_resumed, qu);
                CX_ASSERT(rc == 0);
            }
        }
        cx__mutex_lock(&p->fleet_mu);
        while (again != NULL) {
            struct query *qu = again;
            again = qu->fleet_next;
            qu->fleet_next = p->waiting;
            p->waiting = qu;
        }
    }
    cx__mutex_unlock(&p->fleet_mu);
    return NULL;
}

/* The poller's one resume of a parked query: a continuation of its task, on a worker. */
static int fleet_resumed(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res)
{
    (void)res;
    struct query *qu = arg;
    atomic_fetch_add(&qu->run->p->n_resumes, 1);
    return cx__query_step(ctx, qu);
}

/* QS_PUT's fleet part for a fresh, accepted answer: the shared tier (and the lock released when
 * this query led). Synchronous: one round trip on the worker, bounded by op_timeout_ms. */
void cx__pfleet_put(struct query *qu, const struct cx_cache_key *k)
{
    struct cx_pipeline *p = qu->run->p;
    if (p->shared == NULL)
        return;
    int rc;
    if (qu->fleet_leader) {
        rc = cx__shared_cache_finish(p->shared, k, &qu->flight, qu->content, NULL);
        qu->fleet_leader = 0;
    } else {
        rc = cx__shared_cache_put(p->shared, k, qu->content, NULL);
    }
    if (rc == 0)
        atomic_fetch_add(&p->n_fleet_puts, 1);
}

/* A leader whose query ends without a cacheable answer releases its lock, so a waiting process
 * takes over at once instead of at the lease's end. */
void cx__pfleet_abandon(struct query *qu)
{
    struct cx_pipeline *p = qu->run->p;
    if (!qu->fleet_leader || p->shared == NULL)
        return;
    qu->fleet_leader = 0;
    struct cx_cache_key k;
    if (first_key(qu, &k, NULL) == 0)
        (void)cx__shared_cache_finish(p->shared, &k, &qu->flight, NULL, NULL);
}

/* ---- the public view ---- */

struct cx__ratelimit *cx__pipeline_fleet_limit(struct cx_pipeline *p)
{
    return p ? p->frl : NULL;
}

void cx_pipeline_fleet_stats(struct cx_pipeline *p, struct cx_fleet_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (p == NULL || p->fleet == NULL)
        return;
    struct cx__fleet_stats fs;
    cx__fleet_stats(p->fleet, &fs);
    struct cx__shared_cache_stats cs;
    cx__shared_cache_stats(p->shared, &cs);
    out->configured = 1;
    out->up = fs.up;
    out->outages = fs.outages;
    out->reconnects = fs.reconnects;
    out->commands = fs.commands;
    out->corrupt = fs.corrupt;
    out->limiter_fallbacks = cx__ratelimit_fallbacks(p->frl);
    out->cache_hits = atomic_load(&p->n_fleet_hits);
    out->cache_puts = atomic_load(&p->n_fleet_puts);
    out->flights_led = cs.leaders;
    out->flights_waited = atomic_load(&p->n_fleet_waits);
    out->takeovers = cs.takeovers;
    out->alone = atomic_load(&p->n_fleet_alone);
}

int cx_pipeline_fleet_notice(struct cx_pipeline *p, char *buf, size_t n)
{
    if (p == NULL || p->fleet == NULL || buf == NULL || n == 0)
        return 0;
    return cx__fleet_notice(p->fleet, buf, n);
}
