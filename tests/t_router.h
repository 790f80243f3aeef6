/*
 * t_router.h - what the router tests share: the mock they all query (started by the group
 * setup), a router on it with a fake key (SECRET, which no message may contain), a query, a
 * second mock server, a limiter whose token is spent, and cx_router_submit run from executor
 * tasks (each submission completing exactly once, on a worker, never inside the submit call).
 * Header-only (static inline): test_router_retry.c and test_router_flight.c are each their own
 * executable.
 */
#ifndef T_ROUTER_H
#define T_ROUTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/config.h"
#include "cx/gil.h"
#include "cx/dbpool.h"
#include "cx/executor.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "cx/router.h"
#include "cx_internal.h"
#include "cx_testing.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

#define SECRET "sk-ant-router-SECRET-do-not-log-91c2"

static struct mock_server *g_mock;
static char g_base[128];

static inline int setup(void **state) {
    (void)state;
    g_mock = t_mock_start("retry_after = 40ms\nstall = 10s\n", 0.001, g_base, sizeof g_base);
    return g_mock != NULL ? 0 : -1;
}

static inline int teardown(void **state) {
    (void)state;
    mock_server_stop(g_mock);
    return 0;
}

static inline uint64_t mock_api_requests(void) {
    struct mock_counts c;
    mock_server_counts(g_mock, &c);
    return c.api_requests;
}

/* The mock counts a request once it has finished sending it, which can be a moment after the
 * client has its answer: wait (bounded) until at least `want` are counted, return the count. */
static inline uint64_t mock_requests_at_least(uint64_t want) {
    uint64_t dl = t_deadline_ms(2000), n;
    while ((n = mock_api_requests()) < want && !cx_deadline_expired(dl)) cx_sleep_ns(CX_NSEC_PER_MSEC / 4);
    return n;
}

static inline void opts_mock(struct cx_router_options *o) {
    cx_router_options_init(o);
    o->base_url = g_base;
    o->providers[CX_PROVIDER_CLAUDE].api_key = SECRET;
    o->backoff_base_ns = CX_NSEC_PER_MSEC;
    o->backoff_cap_ns = 20 * CX_NSEC_PER_MSEC;
    o->seed = 42;
}

static inline struct cx_router *router(const struct cx_router_options *o) {
    struct cx_router *r;
    struct cx_errinfo ei;
    int rc = cx_router_new(o, &r, &ei);
    if (rc) fprintf(stderr, "cx_router_new: %s\n", ei.msg);
    assert_int_equal(rc, 0);
    return r;
}

static inline void query(struct cx_llm_query *q, enum cx_task_type t, const char *prompt) {
    cx_llm_query_init(q);
    q->task = t;
    q->system = "You are a Linux package expert.";
    q->prompt = prompt;
    q->max_tokens = 512;
    q->deadline = t_deadline_ms(10000);
}

/* ---- cx_router_submit from executor tasks ---- */

/* Set around cx_router_submit: a completion that sees it ran inside the submit call. */
static _Thread_local int tls_in_submit;

struct sub {
    struct cx_router *r;
    struct cx_ioloop *loop;       /* to check where the completion runs */
    struct cx_llm_query q;
    struct cx_router_reply reply;
    int submit_rc;
    atomic_int completions;
    atomic_int in_submit;         /* completions that ran inside the submit call */
    atomic_int on_io;             /* completions that ran on the I/O thread */
};

static inline int sub_done(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)ctx, (void)res;
    struct sub *s = arg;
    atomic_fetch_add(&s->completions, 1);
    if (tls_in_submit) atomic_fetch_add(&s->in_submit, 1);
    if (s->loop && cx_ioloop_on_thread(s->loop)) atomic_fetch_add(&s->on_io, 1);
    return s->reply.rc;
}

static inline int sub_task(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    (void)res;
    struct sub *s = arg;
    struct cx_task_handle *h = cx_task_suspend(ctx);
    struct cx_errinfo ei;
    tls_in_submit = 1;
    s->submit_rc = cx_router_submit(s->r, &s->q, &s->reply, h, sub_done, s, &ei);
    tls_in_submit = 0;
    if (s->submit_rc < 0) {
        s->reply.rc = s->submit_rc;
        s->reply.ei = ei;
        assert_int_equal(cx_task_resume(h, sub_done, s), 0);
    }
    return CX_EAGAIN;
}

static inline void sub_init(struct sub *s, struct cx_router *r, struct cx_ioloop *loop, const struct cx_llm_query *q) {
    memset(s, 0, sizeof *s);
    s->r = r;
    s->loop = loop;
    s->q = *q;
    cx_router_reply_init(&s->reply);
}

/* Runs n submissions as tasks of one executor and waits for all of them. */
static inline void submit_all(struct sub *subs, int n, int threads) {
    struct cx_executor_options eo;
    cx_executor_options_init(&eo);
    eo.threads = threads;
    struct cx_executor *ex;
    assert_int_equal(cx_executor_new(&eo, &ex, NULL), 0);
    struct cx_task *tasks = calloc((size_t)n, sizeof *tasks);
    assert_non_null(tasks);
    for (int i = 0; i < n; i++) tasks[i] = (struct cx_task){sub_task, &subs[i]};
    struct cx_batch *b;
    assert_int_equal(cx_executor_run(ex, tasks, (size_t)n, NULL, NULL, &b), 0);
    cx_batch_free(b);
    cx_executor_free(ex);
    free(tasks);
    for (int i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&subs[i].completions), 1); /* exactly one completion */
        assert_int_equal(atomic_load(&subs[i].in_submit), 0);  /* never inside submit */
        assert_int_equal(atomic_load(&subs[i].on_io), 0);      /* on a worker */
    }
}

/* A second mock server (a genuinely different endpoint), started by the test that needs it. */
static inline struct mock_server *mock2(char *base, size_t len) {
    struct mock_server *m = t_mock_start(NULL, 0.001, base, len);
    assert_non_null(m);
    return m;
}

static inline uint64_t api_requests_of(struct mock_server *m) {
    struct mock_counts c;
    mock_server_counts(m, &c);
    return c.api_requests;
}

/* A limiter whose one token is spent: the next taker waits about 1/rate seconds, so a leader
 * is held in the router while identical queries join it. (Was: the router's validate hook held
 * the leader; the hook is gone.) */
static inline struct cx_limiter *slow_limiter(double rate) {
    struct cx_limiter *lim;
    assert_int_equal(cx_limiter_new(rate, 1, &lim, NULL), 0);
    assert_int_equal(cx_limiter_try_acquire(lim, 1), 0);
    return lim;
}

#endif /* T_ROUTER_H */
