/*
 * test_bench_hooks.c - the benchmark-only hooks bench_sweep relies on (cx_testing.h) and the
 * sweep's model (bench/sweep_model.c):
 *   - the HTTP timing hook fires once per transfer, in both I/O designs, streamed or not, with
 *     0 <= first body byte <= end; it stops when cleared;
 *   - the stream knob makes the pipeline's queries stream (the mock counts streamed requests)
 *     and the answers still parse, validate and merge;
 *   - cpu_step_ns counts at least the CPU top-up of every answered query;
 *   - the model's closed forms and the asyncio schedule on cases worked by hand.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/pipeline.h"
#include "cx_testing.h"
#include "mock/server.h"
#include "sweep.h"
#include "t_mock.h"
#include "t_util.h"

struct timings {
    pthread_mutex_t mu;
    int calls, bad;
};

static void on_timing(double first_s, double total_s, void *ud)
{
    struct timings *t = ud;
    pthread_mutex_lock(&t->mu);
    t->calls++;
    if (!(first_s >= 0 && total_s >= first_s))
        t->bad++;
    pthread_mutex_unlock(&t->mu);
}

static void run_design(enum cx_io_design io, int stream)
{
    char url[256];
    struct mock_options mo;
    mock_options_init(&mo);
    mo.latency_ms = 5;
    struct mock_server *m = t_mock_start_opts(&mo, url, sizeof url);
    assert_non_null(m);
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.base_url = url;
    o.provider = CX_PROVIDER_OPENAI;
    o.have_io = 1;
    o.io = io;
    o.have_mode = 1;
    o.mode = CX_MODE_FREE;
    o.rate_limit_rps = 100000;
    o.max_attempts = 1;
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    assert_int_equal(cx_pipeline_new(&o, &p, &ei), 0);
    struct cx__bench_work w = {.cpu_work_ns = 2000000, .stream = stream};
    cx__pipeline_set_bench_work(p, &w);

    struct timings t = {.calls = 0, .bad = 0};
    pthread_mutex_init(&t.mu, NULL);
    cx__http_set_timing_hook(on_timing, &t);
    const char *pkgs[] = {"nginx", "redis", "postgresql", "docker"};
    struct cx_install_report *r = NULL;
    int rc = cx_pipeline_install(p, pkgs, 4, NULL, &r, &ei);
    cx__http_set_timing_hook(NULL, NULL);
    if (rc != 0)
        fail_msg("install (%s, stream %d): %s", cx_io_design_name(io), stream, ei.msg);
    assert_int_equal(r->failed, 0);
    assert_true(r->plan.n >= 5); /* apt-get update + one install per package at least */
    assert_int_equal(t.calls, 4);
    assert_int_equal(t.bad, 0);

    struct cx__pipeline_counts c;
    cx__pipeline_counts(p, &c);
    assert_true(c.cpu_step_ns >= 4 * w.cpu_work_ns);

    /* the mock's ttft histogram counts streamed replies only */
    char *stats = mock_server_stats_json(m);
    assert_non_null(stats);
    cJSON *js = cJSON_Parse(stats);
    free(stats);
    assert_non_null(js);
    cJSON *h = cJSON_GetObjectItemCaseSensitive(js, "histograms");
    cJSON *cnt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, "ttft"),
                                                 "count");
    assert_true(cJSON_IsNumber(cnt));
    assert_int_equal((int)cnt->valuedouble, stream ? 4 : 0);
    cJSON_Delete(js);

    /* cleared: no more calls */
    cx_install_report_free(r);
    r = NULL;
    const char *again[] = {"curl"};
    assert_int_equal(cx_pipeline_install(p, again, 1, NULL, &r, &ei), 0);
    assert_int_equal(t.calls, 4);
    cx_install_report_free(r);
    pthread_mutex_destroy(&t.mu);
    cx_pipeline_free(p);
    mock_server_stop(m);
}

static void test_timing_hook_thread_local(void **state)
{
    (void)state;
    run_design(CX_IO_THREAD_LOCAL, 0);
    run_design(CX_IO_THREAD_LOCAL, 1);
}

static void test_timing_hook_hybrid(void **state)
{
    (void)state;
    run_design(CX_IO_HYBRID, 0);
    run_design(CX_IO_HYBRID, 1);
}

static void test_model_closed_forms(void **state)
{
    (void)state;
    const double L = 1.0, c = 0.5;
    assert_true(fabs(sweep_model(COL_SERIAL, 4, 1, 0, 2, L, c, 1) - 6.0) < 1e-9);
    assert_true(fabs(sweep_model(COL_GIL, 4, 4, 0, 2, L, c, 1) - 3.0) < 1e-9);
    assert_true(fabs(sweep_model(COL_FREE, 4, 4, 0, 2, L, c, 1) - 2.0) < 1e-9);
    assert_true(fabs(sweep_model(COL_FREE, 1, 1, 0, 2, L, c, 1) - 1.5) < 1e-9);
    /* hybrid on 2 workers, 8 cores: the CPU pool bounds it */
    assert_true(fabs(sweep_model(COL_HYBRID, 8, 2, CX_IO_HYBRID, 8, L, c, 1) - 3.0) < 1e-9);
    /* thread-local with 3 workers for 7 queries on 2 cores: waves of 3, 3, 1 */
    double waves = 3 * L + (1.5 + 1.5 + 1.0) * c;
    assert_true(fabs(sweep_model(COL_AUTO, 7, 3, CX_IO_THREAD_LOCAL, 2, L, c, 1) - waves) < 1e-9);
}

static void test_model_asyncio(void **state)
{
    (void)state;
    /* no limits in the way: the waits overlap, the CPU is serial */
    assert_true(fabs(sweep_model_asyncio(3, 5, 0, 5, 1.0, 0.5) - 2.5) < 1e-9);
    /* concurrency 5, no CPU: two rounds of the latency */
    assert_true(fabs(sweep_model_asyncio(10, 5, 0, 5, 1.0, 0) - 2.0) < 1e-9);
    /* the bucket alone: burst 5, 5/s, no latency or CPU: the 10th token at 1 s */
    assert_true(fabs(sweep_model_asyncio(10, 100, 5, 5, 0, 0) - 1.0) < 1e-9);
    /* slot reuse waits for the CPU: 2 slots, L = 1, c = 1, 3 queries:
     * q0 [0,1] io, cpu [1,2]; q1 io [0,1], cpu [2,3]; q2 takes q0's slot at 2: io [2,3], cpu
     * [3,4] */
    assert_true(fabs(sweep_model_asyncio(3, 2, 0, 5, 1.0, 1.0) - 4.0) < 1e-9);
    /* the sweep's column uses 5 at once and 5 requests/s on the scaled clock */
    assert_true(fabs(sweep_model(COL_ASYNCIO, 3, 3, 0, 2, 1.0, 0.5, 1) - 2.5) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timing_hook_thread_local),
        cmocka_unit_test(test_timing_hook_hybrid),
        cmocka_unit_test(test_model_closed_forms),
        cmocka_unit_test(test_model_asyncio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
