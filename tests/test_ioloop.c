/*
 * test_ioloop.c - the hybrid I/O loop: many transfers in flight on one thread giving the same
 * answers as the thread-local client, timers, deadlines, cancellation (flag + kick), shutdown with
 * work in flight, and the `auto` design choice.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/http.h"
#include "cx/ioloop.h"
#include "cx_internal.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

static struct mock_server *g_mock;
static char g_base[128];

static int setup(void **state) {
    (void)state;
    g_mock = t_mock_start("latency = 2s\nstall = 10s\n", 0.001, g_base, sizeof g_base); /* 2 ms after scaling */
    return g_mock != NULL ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    mock_server_stop(g_mock);
    return 0;
}

/* Completion bookkeeping shared by the callbacks (they run on the I/O thread). */
struct waitset {
    struct cx__mutex mu;
    pthread_cond_t cond;
    int done; /* guarded by mu */
};

static void ws_init(struct waitset *w) {
    assert_int_equal(cx__mutex_init(&w->mu), 0);
    assert_int_equal(cx__cond_init(&w->cond), 0);
    w->done = 0;
}

static void ws_destroy(struct waitset *w) {
    cx__mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
}

static void ws_signal(struct waitset *w) {
    cx__mutex_lock(&w->mu);
    w->done++;
    pthread_cond_broadcast(&w->cond);
    cx__mutex_unlock(&w->mu);
}

static void ws_wait(struct waitset *w, int n, int64_t ms) {
    uint64_t dl = t_deadline_ms(ms);
    cx__mutex_lock(&w->mu);
    while (w->done < n && cx__cond_wait(&w->cond, &w->mu, dl) == 0) {
    }
    int got = w->done;
    cx__mutex_unlock(&w->mu);
    assert_int_equal(got, n);
}

struct job {
    struct waitset *ws;
    struct cx_http_xfer *x;
    int on_loop_thread;
    struct cx_ioloop *loop;
};

static void on_done(struct cx_http_xfer *x, void *ud) {
    struct job *j = ud;
    assert_ptr_equal(x, j->x);
    j->on_loop_thread = cx_ioloop_on_thread(j->loop);
    ws_signal(j->ws);
}

static const char *k_pkgs[] = {"nginx", "redis", "postgresql", "docker", "nodejs", "htop", "curl", "git"};

static void request(struct cx_http_request *r, int i, char *prompt, size_t n) {
    cx_http_request_init(r);
    r->api = i % 2 ? CX_API_ANTHROPIC : CX_API_OPENAI;
    r->base_url = g_base;
    r->model = i % 2 ? "claude-sonnet-4-20250514" : "kimi-k2-instruct";
    snprintf(prompt, n, "Install package: %s", k_pkgs[i % 8]);
    r->prompt = prompt;
    r->stream = (i / 2) % 2;
    r->deadline = t_deadline_ms(10000);
}

/* 200 transfers at once through the loop equal the same requests made one by one through the
 * thread-local client, field by field. */
static void test_many_in_flight_same_results(void **state) {
    (void)state;
    enum { N = 200 };
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct cx_http_client *cl;
    assert_int_equal(cx_http_client_new(NULL, &cl, NULL), 0);
    struct waitset ws;
    ws_init(&ws);
    static struct job jobs[N];
    char prompts[N][64];
    for (int i = 0; i < N; i++) {
        struct cx_http_request r;
        request(&r, i, prompts[i], sizeof prompts[i]);
        jobs[i] = (struct job){&ws, NULL, 0, loop};
        assert_int_equal(cx_http_xfer_new(&r, &jobs[i].x, NULL), 0);
    }
    for (int i = 0; i < N; i++) assert_int_equal(cx_ioloop_submit(loop, jobs[i].x, on_done, &jobs[i], NULL), 0);
    ws_wait(&ws, N, 20000);
    for (int i = 0; i < N; i++) {
        assert_true(jobs[i].on_loop_thread);
        struct cx_http_result a, b;
        struct cx_errinfo ei;
        int rc = cx_http_xfer_finish(jobs[i].x, &a, &ei);
        if (rc) fprintf(stderr, "transfer %d: %s\n", i, ei.msg);
        assert_int_equal(rc, 0);
        struct cx_http_request r;
        request(&r, i, prompts[i], sizeof prompts[i]);
        assert_int_equal(cx_http_client_complete(cl, &r, &b, NULL), 0);
        assert_string_equal(a.content, b.content);
        assert_string_equal(a.model, b.model);
        assert_int_equal(a.prompt_tokens, b.prompt_tokens);
        assert_int_equal(a.completion_tokens, b.completion_tokens);
        assert_non_null(strstr(a.content, k_pkgs[i % 8]));
        cx_http_result_clear(&a);
        cx_http_result_clear(&b);
        cx_http_xfer_free(jobs[i].x);
    }
    struct cx_ioloop_stats st;
    cx_ioloop_stats(loop, &st);
    assert_int_equal(st.submitted, N);
    assert_int_equal(st.completed, N);
    assert_int_equal(st.in_flight, 0);
    assert_true(st.max_in_flight > 1);        /* they overlapped */
    assert_true(st.handles_created <= N);     /* handles are reused, never more than in flight */
    ws_destroy(&ws);
    cx_http_client_free(cl);
    cx_ioloop_free(loop);
}

/* Faults map the same way through the loop. */
static void test_faults_and_deadline(void **state) {
    (void)state;
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct waitset ws;
    ws_init(&ws);
    const char *faults[] = {"429", "503", "reset", "malformed"};
    const int want[] = {CX_ERATELIMIT, CX_ESERVER, CX_ECONN, CX_EPARSE};
    for (int i = 0; i < 4; i++) {
        char s[64];
        snprintf(s, sizeof s, "next 1 %s", faults[i]);
        t_mock_script(g_mock, s);
        struct cx_http_request r;
        char p[64];
        request(&r, 0, p, sizeof p);
        struct job j = {&ws, NULL, 0, loop};
        assert_int_equal(cx_http_xfer_new(&r, &j.x, NULL), 0);
        assert_int_equal(cx_ioloop_submit(loop, j.x, on_done, &j, NULL), 0);
        ws_wait(&ws, i + 1, 5000);
        struct cx_http_result res;
        struct cx_errinfo ei;
        assert_int_equal(cx_http_xfer_finish(j.x, &res, &ei), want[i]);
        cx_http_xfer_free(j.x);
    }
    /* a stalled reply ends at the deadline */
    t_mock_script(g_mock, "next 1 stall");
    struct cx_http_request r;
    char p[64];
    request(&r, 1, p, sizeof p);
    r.deadline = cx_deadline_after_ms(100);
    struct job j = {&ws, NULL, 0, loop};
    assert_int_equal(cx_http_xfer_new(&r, &j.x, NULL), 0);
    uint64_t t0 = cx_now_ns();
    assert_int_equal(cx_ioloop_submit(loop, j.x, on_done, &j, NULL), 0);
    ws_wait(&ws, 5, 5000);
    assert_true(cx_now_ns() - t0 >= 90 * CX_NSEC_PER_MSEC);
    struct cx_http_result res;
    assert_int_equal(cx_http_xfer_finish(j.x, &res, NULL), CX_ETIMEDOUT);
    cx_http_xfer_free(j.x);
    ws_destroy(&ws);
    cx_ioloop_free(loop);
}

/* A cancel flag plus a kick ends a stalled transfer at once. */
static void test_cancel(void **state) {
    (void)state;
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct waitset ws;
    ws_init(&ws);
    t_mock_script(g_mock, "next 1 stall");
    atomic_int cancel = 0;
    struct cx_http_request r;
    char p[64];
    request(&r, 0, p, sizeof p);
    r.cancel = &cancel;
    struct job j = {&ws, NULL, 0, loop};
    assert_int_equal(cx_http_xfer_new(&r, &j.x, NULL), 0);
    assert_int_equal(cx_ioloop_submit(loop, j.x, on_done, &j, NULL), 0);
    /* wait until the server holds it, so the cancel hits a live transfer */
    uint64_t dl = t_deadline_ms(5000);
    struct mock_counts mc;
    for (;;) {
        mock_server_counts(g_mock, &mc);
        /* the request took the scripted stall: the server holds it now */
        if (mock_server_scripted_pending(g_mock) == 0 || cx_deadline_expired(dl)) break;
        cx_sleep_ns(CX_NSEC_PER_MSEC);
    }
    assert_int_equal(mock_server_scripted_pending(g_mock), 0);
    atomic_store(&cancel, 1);
    cx_ioloop_kick(loop);
    ws_wait(&ws, 1, 5000);
    struct cx_http_result res;
    assert_int_equal(cx_http_xfer_finish(j.x, &res, NULL), CX_ECANCELED);
    cx_http_xfer_free(j.x);
    ws_destroy(&ws);
    cx_ioloop_free(loop);
}

struct tjob {
    struct waitset *ws;
    int order;
    int canceled;
    atomic_int *seq;
};

static void on_timer(void *ud, int canceled) {
    struct tjob *t = ud;
    t->canceled = canceled;
    t->order = atomic_fetch_add(t->seq, 1);
    ws_signal(t->ws);
}

/* Timers run in time order; at shutdown pending timers and transfers are cancelled. */
static void test_timers_and_shutdown(void **state) {
    (void)state;
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct waitset ws;
    ws_init(&ws);
    atomic_int seq = 0;
    struct tjob t[4];
    uint64_t now = cx_now_ns();
    uint64_t when[4] = {now + 30 * CX_NSEC_PER_MSEC, now + 10 * CX_NSEC_PER_MSEC, now,
                        now + 3600 * CX_NSEC_PER_SEC};
    for (int i = 0; i < 4; i++) {
        t[i] = (struct tjob){&ws, -1, -1, &seq};
        assert_int_equal(cx_ioloop_timer(loop, when[i], on_timer, &t[i], NULL), 0);
    }
    ws_wait(&ws, 3, 5000);
    assert_int_equal(t[2].order, 0);
    assert_int_equal(t[1].order, 1);
    assert_int_equal(t[0].order, 2);
    assert_true(cx_now_ns() >= when[0]);
    /* a transfer stuck in flight and the hour-long timer at shutdown */
    t_mock_script(g_mock, "next 1 stall");
    struct cx_http_request r;
    char p[64];
    request(&r, 1, p, sizeof p);
    struct job j = {&ws, NULL, 0, loop};
    assert_int_equal(cx_http_xfer_new(&r, &j.x, NULL), 0);
    assert_int_equal(cx_ioloop_submit(loop, j.x, on_done, &j, NULL), 0);
    cx_ioloop_free(loop); /* returns only after both callbacks ran */
    assert_int_equal(t[3].canceled, 1);
    struct cx_http_result res;
    assert_int_equal(cx_http_xfer_finish(j.x, &res, NULL), CX_ECANCELED);
    cx_http_xfer_free(j.x);
    ws_destroy(&ws);
}

static void test_io_choose(void **state) {
    (void)state;
    enum cx_io_design d;
    int t;
    assert_int_equal(cx_io_choose(5, 0.1, 4, &d, &t), 0);
    assert_int_equal(d, CX_IO_THREAD_LOCAL);
    assert_int_equal(t, 5);
    assert_int_equal(cx_io_choose(0, 0.1, 4, &d, &t), 0);
    assert_int_equal(t, 1);
    assert_int_equal(cx_io_choose(100, 0.02, 4, &d, &t), 0);
    assert_int_equal(d, CX_IO_HYBRID);
    assert_int_equal(t, 2); /* ceil(100 * 0.02) */
    assert_int_equal(cx_io_choose(100, 0.3, 4, &d, &t), 0);
    assert_int_equal(d, CX_IO_HYBRID);
    assert_int_equal(t, 4);
    assert_int_equal(cx_io_choose(100, 0.8, 4, &d, &t), 0);
    assert_int_equal(d, CX_IO_THREAD_LOCAL);
    assert_int_equal(t, 5); /* ceil(4 / 0.8) */
    assert_int_equal(cx_io_choose(1000, 0.8, 16, &d, &t), 0);
    assert_int_equal(d, CX_IO_HYBRID);
    assert_int_equal(t, 16);
    assert_int_equal(cx_io_choose(100, -1, 4, &d, &t), 0); /* unmeasured: 0.1 */
    assert_int_equal(d, CX_IO_HYBRID);
    assert_int_equal(t, 4);
    assert_int_equal(cx_io_choose(100, 0.1, 0, &d, &t), CX_EINVAL);
    assert_int_equal(cx_io_choose(100, 0.1, 4, NULL, &t), CX_EINVAL);
}

static void test_submit_errors(void **state) {
    (void)state;
    struct cx_ioloop *loop;
    assert_int_equal(cx_ioloop_new(NULL, &loop, NULL), 0);
    struct cx_errinfo ei;
    assert_int_equal(cx_ioloop_submit(loop, NULL, on_done, NULL, &ei), CX_EINVAL);
    assert_int_equal(cx_ioloop_timer(loop, 0, NULL, NULL, &ei), CX_EINVAL);
    assert_false(cx_ioloop_on_thread(loop));
    cx_ioloop_free(loop);
    cx_ioloop_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_in_flight_same_results),
        cmocka_unit_test(test_faults_and_deadline),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_timers_and_shutdown),
        cmocka_unit_test(test_io_choose),
        cmocka_unit_test(test_submit_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
