/*
 * test_pipeline.c - the end-to-end install pipeline (and diagnose / hwcheck) against the
 * in-process mock LLM server: the seed's five packages, one apt-get update, cache hits on the
 * second run, a dangerous plan refused (and not cached), partial failures, history rows, the
 * per-query state machine's counters (one parse, at most one suspend/resume, no completion
 * inside a submit), the cache-key names, and identical results from both I/O designs and all
 * three execution modes. (The package-list and data-directory tests moved to test_cli.c with
 * the code.)
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/config.h"
#include "cx/history.h"
#include "cx/pipeline.h"
#include "cx/router.h"
#include "cli.h"
#include "cx_testing.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_util.h"

#define SEED_REQUEST "install nginx redis postgresql docker nodejs"

/* The tests write requests the way a user types them; the library takes the package list. */
static int install(struct cx_pipeline *p, const char *request, const struct cx_run_options *ro,
                   struct cx_install_report **out, struct cx_errinfo *ei)
{
    char *copy = strdup(request);
    assert_non_null(copy);
    const char *pkgs[64];
    size_t n = 0;
    char *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
        if (strcmp(w, "install") != 0 && n < 64)
            pkgs[n++] = w;
    int rc = cx_pipeline_install(p, pkgs, n, ro, out, ei);
    free(copy);
    return rc;
}

struct fx {
    struct mock_server *mock;
    char url[256];
    char *dir;
    char *db;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    struct mock_options mo;
    mock_options_init(&mo);
    mo.latency_ms = 20;
    mo.time_scale = 0.1; /* 2 ms per reply: the replies still overlap, the test stays quick */
    f->mock = t_mock_start_opts(&mo, f->url, sizeof f->url);
    assert_non_null(f->mock);
    f->dir = t_tmpdir("pipeline");
    f->db = t_path(f->dir, CX_DB_FILE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mock_server_stop(f->mock);
    t_rmrf(f->dir);
    free(f->dir);
    free(f->db);
    free(f);
    return 0;
}

static struct cx_pipeline *open_p(struct fx *f, const char *db, enum cx_io_design io,
                                  enum cx_exec_mode mode)
{
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.base_url = f->url;
    o.db_path = db;
    o.have_io = 1;
    o.io = io;
    o.have_mode = 1;
    o.mode = mode;
    o.rate_limit_rps = 100000;
    o.max_attempts = 1;
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_pipeline_new(&o, &p, &ei);
    if (rc < 0)
        fail_msg("cx_pipeline_new: %s (%s)", ei.msg, cx_err_name(rc));
    return p;
}

static size_t find_cmd(const struct cx_plan *pl, const char *cmd)
{
    for (size_t i = 0; i < pl->n; i++)
        if (strcmp(pl->commands[i], cmd) == 0)
            return i;
    return (size_t)-1;
}

static void progress_count(size_t done, size_t total, void *ud)
{
    size_t *calls = ud;
    assert_true(done >= 1 && done <= total);
    assert_int_equal(done, calls[0] + 1); /* in order, never concurrently */
    calls[0] = done;
    calls[1] = total;
}

/* The seed's case: five answers merged into one plan with one apt-get update, in order. */
static void test_install_seed_case(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_AUTO, CX_MODE_FREE);
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    size_t calls[2] = {0, 0};
    ro.progress = progress_count;
    ro.progress_ud = calls;
    struct cx_install_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = install(p, SEED_REQUEST, &ro, &r, &ei);
    if (rc != 0)
        fail_msg("install: %s", ei.msg);
    assert_non_null(r);
    assert_int_equal(calls[0], 5);
    assert_int_equal(calls[1], 5);
    assert_int_equal(r->n_items, 5);
    const char *names[] = {"nginx", "redis", "postgresql", "docker", "nodejs"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(r->items[i].subject, names[i]);
        assert_int_equal(r->items[i].status, 0);
        assert_false(r->items[i].from_cache);
        assert_true(r->items[i].n_commands >= 2);
    }
    assert_int_equal(r->cache_hits, 0);
    assert_int_equal(r->failed, 0);
    assert_int_equal(r->rejected, 0);
    assert_false(r->refused);
    /* One update, first; no duplicates; the packages' installs in request order. */
    assert_true(r->plan.n >= 6);
    assert_string_equal(r->plan.commands[0], "sudo apt-get update");
    for (size_t i = 0; i < r->plan.n; i++) {
        if (i > 0)
            assert_false(cx_plan_is_update(r->plan.commands[i]));
        for (size_t j = i + 1; j < r->plan.n; j++)
            assert_string_not_equal(r->plan.commands[i], r->plan.commands[j]);
    }
    size_t a = find_cmd(&r->plan, "sudo apt-get install -y nginx");
    size_t b = find_cmd(&r->plan, "sudo apt-get install -y redis-server");
    size_t c = find_cmd(&r->plan, "sudo apt-get install -y postgresql postgresql-contrib");
    assert_true(a != (size_t)-1 && b != (size_t)-1 && c != (size_t)-1);
    assert_true(a < b && b < c);
    /* Every package's own commands appear in the merged plan. */
    for (size_t i = 0; i < 5; i++)
        for (size_t k = 0; k < r->items[i].n_commands; k++)
            assert_true(find_cmd(&r->plan, r->items[i].commands[k]) != (size_t)-1 ||
                        cx_plan_is_update(r->items[i].commands[k]));
    assert_true(r->timings.llm_s > 0);
    assert_true(r->timings.total_s >= r->timings.llm_s);
    assert_int_equal(r->apt_mode, CX_APT_DRY_RUN);
    assert_int_equal(r->ran, 0);
    assert_true(r->io == CX_IO_THREAD_LOCAL || r->io == CX_IO_HYBRID);
    /* The run is in the history: request, plan, verdict, what ran, timings. */
    assert_true(r->history_id >= 0);
    assert_null(r->history_error);
    struct cx_history_entry *h = NULL;
    size_t nh = 0;
    assert_int_equal(cx_history_list(cx_pipeline_pool(p), 0, &h, &nh, &ei), 0);
    assert_int_equal(nh, 1);
    assert_int_equal(h[0].id, r->history_id);
    assert_string_equal(h[0].request, SEED_REQUEST);
    assert_string_equal(h[0].executed, "dry-run");
    assert_int_equal(h[0].status, 0);
    assert_non_null(strstr(h[0].plan_json, "sudo apt-get install -y redis-server"));
    assert_string_equal(h[0].validation_json, "[]");
    assert_true(h[0].llm_s > 0 && h[0].total_s >= h[0].llm_s);
    cx_history_entries_free(h, nh);
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

/* A second run answers every package from the cache, with the same plan; reopening the
 * database (a new process) keeps the entries. */
static void test_cache_hit_second_run(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_THREAD_LOCAL, CX_MODE_FREE);
    struct cx_install_report *r1 = NULL, *r2 = NULL, *r3 = NULL;
    assert_int_equal(install(p, SEED_REQUEST, NULL, &r1, NULL), 0);
    assert_int_equal(r1->cache_hits, 0);
    struct mock_counts mc0, mc1;
    mock_server_counts(f->mock, &mc0);
    assert_int_equal(install(p, SEED_REQUEST, NULL, &r2, NULL), 0);
    mock_server_counts(f->mock, &mc1);
    assert_int_equal(r2->cache_hits, 5);
    assert_int_equal(mc1.api_requests, mc0.api_requests); /* nothing was sent */
    for (size_t i = 0; i < 5; i++)
        assert_true(r2->items[i].from_cache);
    assert_int_equal(r1->plan.n, r2->plan.n);
    for (size_t i = 0; i < r1->plan.n; i++)
        assert_string_equal(r1->plan.commands[i], r2->plan.commands[i]);
    cx_pipeline_free(p);
    p = open_p(f, f->db, CX_IO_HYBRID, CX_MODE_FREE);
    assert_int_equal(install(p, "install redis nginx", NULL, &r3, NULL), 0);
    assert_int_equal(r3->cache_hits, 2);
    assert_string_equal(r3->items[0].subject, "redis");
    assert_non_null(r3->items[0].commands);
    cx_install_report_free(r1);
    cx_install_report_free(r2);
    cx_install_report_free(r3);
    cx_pipeline_free(p);
}

/* Two prompts one token apart ("tool-50", "tool-21": their embeddings are close enough for the
 * semantic cache) must not share an answer: the default cache is exact-only. */
static void test_no_wrong_package_from_cache(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_THREAD_LOCAL, CX_MODE_FREE);
    struct cx_install_report *r = NULL;
    assert_int_equal(install(p, "install tool-50", NULL, &r, NULL), 0);
    cx_install_report_free(r);
    assert_int_equal(install(p, "install tool-21", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 0);
    assert_true(find_cmd(&r->plan, "sudo apt-get install -y tool-21") != (size_t)-1);
    assert_true(find_cmd(&r->plan, "sudo apt-get install -y tool-50") == (size_t)-1);
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

/* With similarity hits (the default) an install never gets another package's plan: the
 * entity-aware matcher never offers tool-50's plan for tool-21 (the seed's embedding gave them
 * cosine 1.0), and had it done so the plan-name check would have refused it. */
static void test_similar_cache_keeps_package(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.base_url = f->url;
    o.db_path = f->db;
    assert_int_equal(o.similar_cache, 1); /* the default, at the configuration's threshold */
    o.rate_limit_rps = 100000;
    o.max_attempts = 1;
    struct cx_pipeline *p = NULL;
    assert_int_equal(cx_pipeline_new(&o, &p, NULL), 0);
    struct cx_install_report *r = NULL;
    assert_int_equal(install(p, "install tool-50", NULL, &r, NULL), 0);
    cx_install_report_free(r);
    assert_int_equal(install(p, "install tool-21", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 0);
    assert_int_equal(r->items[0].from_cache, 0);
    assert_true(find_cmd(&r->plan, "sudo apt-get install -y tool-21") != (size_t)-1);
    assert_true(find_cmd(&r->plan, "sudo apt-get install -y tool-50") == (size_t)-1);
    cx_install_report_free(r);
    struct cx_cache_stats cs;
    assert_int_equal(cx_cache_stats(cx_pipeline_cache(p), &cs, NULL), 0);
    assert_int_equal(cs.similar_hits, 0); /* the cache did not even offer tool-50's plan */
    /* Diagnose queries use similar hits as they are, and another error message never hits. */
    const char *e1[] = {"E: Unable to locate package foo-1"};
    const char *e2[] = {"E: Unable to locate package foo-2"};
    const char *e3[] = {"please help: e: unable to locate package foo-1"};
    struct cx_fanout_report *d = NULL;
    assert_int_equal(cx_pipeline_diagnose(p, e1, NULL, 1, NULL, &d, NULL), 0);
    cx_fanout_report_free(d);
    assert_int_equal(cx_pipeline_diagnose(p, e2, NULL, 1, NULL, &d, NULL), 0);
    assert_int_equal(d->cache_hits, 0);
    cx_fanout_report_free(d);
    assert_int_equal(cx_pipeline_diagnose(p, e3, NULL, 1, NULL, &d, NULL), 0);
    assert_int_equal(d->cache_hits, 1);
    cx_fanout_report_free(d);
    assert_int_equal(cx_cache_stats(cx_pipeline_cache(p), &cs, NULL), 0);
    assert_int_equal(cs.similar_hits, 1);
    cx_pipeline_free(p);
    /* similar_cache 0: exact hits only, the same paraphrase misses. */
    o.similar_cache = 0;
    assert_int_equal(cx_pipeline_new(&o, &p, NULL), 0);
    assert_int_equal(cx_pipeline_diagnose(p, e1, NULL, 1, NULL, &d, NULL), 0);
    assert_int_equal(d->cache_hits, 1); /* e1's own answer, cached above: an exact hit */
    cx_fanout_report_free(d);
    const char *e4[] = {"please help: E: Unable to locate package foo-1"};
    assert_int_equal(cx_pipeline_diagnose(p, e4, NULL, 1, NULL, &d, NULL), 0);
    assert_int_equal(d->cache_hits, 0);
    cx_fanout_report_free(d);
    cx_pipeline_free(p);
}

/* Each answer is parsed and validated once, on a worker holding the GIL (gil mode), in both
 * designs; the hybrid path costs each query at most one suspend/resume cycle, and the router's
 * completion never runs inside the submit call. A cache hit is parsed and validated by its task
 * and never reaches the router. (Was: counted the router's validate-hook calls; the hook is
 * gone, the pipeline's state machine validates every answer itself.) */
static void test_cpu_step_under_gil(void **state)
{
    struct fx *f = *state;
    const enum cx_io_design designs[2] = {CX_IO_HYBRID, CX_IO_THREAD_LOCAL};
    for (int d = 0; d < 2; d++) {
        int hy = designs[d] == CX_IO_HYBRID;
        struct cx_pipeline *p = open_p(f, f->db, designs[d], CX_MODE_GIL);
        struct cx_install_report *r = NULL;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        char req[128];
        snprintf(req, sizeof req, "install gil-a%d gil-b%d gil-c%d gil-d%d gil-e%d", d, d, d, d, d);
        int rc = install(p, req, NULL, &r, &ei);
        if (rc != 0)
            fail_msg("install: %s", ei.msg);
        assert_int_equal(r->io, designs[d]);
        assert_int_equal(r->cache_hits, 0);
        assert_int_equal(r->plan.n, 6); /* one update + five installs: the answers were used */
        cx_install_report_free(r);
        struct cx__pipeline_counts c;
        cx__pipeline_counts(p, &c);
        assert_int_equal(c.queries, 5);
        assert_int_equal(c.submits, 5);
        assert_int_equal(c.parses, 5);      /* exactly one parse per query */
        assert_int_equal(c.validations, 5);
        assert_int_equal(c.cpu_no_gil, 0);
        assert_int_equal(c.suspends, hy ? 5 : 0); /* at most one cycle per query */
        assert_int_equal(c.resumes, hy ? 5 : 0);
        assert_int_equal(c.completions_in_submit, 0);
        assert_int_equal(c.cache_puts, 5);
        /* cache hits: parsed and validated once by the task, never submitted */
        assert_int_equal(install(p, req, NULL, &r, NULL), 0);
        assert_int_equal(r->cache_hits, 5);
        assert_int_equal(r->plan.n, 6);
        cx_install_report_free(r);
        cx__pipeline_counts(p, &c);
        assert_int_equal(c.queries, 10);
        assert_int_equal(c.submits, 5);
        assert_int_equal(c.parses, 10);
        assert_int_equal(c.validations, 10);
        assert_int_equal(c.cpu_no_gil, 0);
        assert_int_equal(c.suspends, hy ? 5 : 0);
        assert_int_equal(c.cache_puts, 5);
        cx_pipeline_free(p);
    }
}

/* Confirms a plan only if every command goes through `sudo` (the test's fake one). */
static int confirm_if_fake_sudo(const struct cx_plan *plan, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < plan->n; i++)
        if (strncmp(plan->commands[i], "sudo ", 5) != 0)
            return 0;
    return 1;
}

/* --execute that stops at a failing command: the history row says how far it got. `sudo` is a
 * script in a directory put first on PATH: it logs its arguments and fails for fakepkg-a, so
 * nothing real is ever run. */
static void test_execute_records_commands_run(void **state)
{
    struct fx *f = *state;
    char *bin = t_path(f->dir, "bin");
    assert_int_equal(mkdir(bin, 0700), 0);
    char *sudo = t_path(bin, "sudo");
    FILE *fp = fopen(sudo, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\necho \"$*\" >> \"%s/calls.log\"\n"
                "case \"$*\" in *fakepkg-a*) exit 3;; esac\nexit 0\n", bin);
    fclose(fp);
    assert_int_equal(chmod(sudo, 0700), 0);
    const char *old = getenv("PATH");
    char *saved = strdup(old ? old : "/usr/bin:/bin");
    char path[1024];
    snprintf(path, sizeof path, "%s:%s", bin, saved);
    setenv("PATH", path, 1);

    struct cx_pipeline *p = open_p(f, f->db, CX_IO_THREAD_LOCAL, CX_MODE_FREE);
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    ro.apt_mode = CX_APT_EXECUTE;
    ro.confirm = confirm_if_fake_sudo;
    ro.execute = cx_cli_run_shell;
    struct cx_install_report *r = NULL;
    int rc = install(p, "install fakepkg-a fakepkg-b", &ro, &r, NULL);
    setenv("PATH", saved, 1);
    free(saved);
    assert_int_equal(rc, CX_EIO);
    assert_int_equal(r->plan.n, 3); /* update, install a, install b */
    assert_int_equal(r->ran, 2);    /* stopped at install a */
    assert_int_equal(r->exec_status, 3);
    int64_t id = r->history_id;
    cx_install_report_free(r);
    struct cx_history_entry *h = NULL;
    size_t nh = 0;
    assert_int_equal(cx_history_list(cx_pipeline_pool(p), 1, &h, &nh, NULL), 0);
    assert_int_equal(nh, 1);
    assert_int_equal(h[0].id, id);
    assert_string_equal(h[0].executed, "real");
    assert_int_equal(h[0].status, CX_EIO);
    assert_int_equal(h[0].commands_run, 2);
    cx_history_entries_free(h, nh);
    /* a dry run ran nothing */
    assert_int_equal(install(p, "install fakepkg-c", NULL, &r, NULL), 0);
    cx_install_report_free(r);
    assert_int_equal(cx_history_list(cx_pipeline_pool(p), 1, &h, &nh, NULL), 0);
    assert_int_equal(h[0].commands_run, 0);
    cx_history_entries_free(h, nh);
    cx_pipeline_free(p);
    free(sudo);
    free(bin);
}

/* The mock's dangerous fault: the plan is refused with the validator's reasons, nothing runs,
 * and the dangerous answer is not cached (the next run asks again and succeeds). */
static void test_dangerous_plan_refused(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_THREAD_LOCAL, CX_MODE_FREE);
    t_mock_script(f->mock, "next 1 dangerous");
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    ro.apt_mode = CX_APT_SIMULATE;
    ro.apt_sim_ns = 1000000;
    struct cx_install_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    assert_int_equal(install(p, "install nginx", &ro, &r, &ei), CX_EREJECTED);
    assert_non_null(r);
    assert_true(r->refused);
    assert_int_equal(r->rejected, 1);
    assert_int_equal(r->items[0].status, CX_EREJECTED);
    assert_true(r->items[0].n_reasons >= 1);
    assert_non_null(strstr(r->items[0].reasons[0], "commands["));
    assert_int_equal(r->ran, 0);
    assert_int_equal(r->plan.n, 0); /* a rejected answer is never merged */
    assert_true(r->timings.apt_s == 0.0); /* the simulated apt never started */
    struct cx_history_entry *h = NULL;
    size_t nh = 0;
    assert_int_equal(cx_history_list(cx_pipeline_pool(p), 1, &h, &nh, &ei), 0);
    assert_int_equal(nh, 1);
    assert_int_equal(h[0].id, r->history_id);
    assert_string_equal(h[0].executed, "refused");
    assert_int_equal(h[0].status, CX_EREJECTED);
    assert_non_null(strstr(h[0].validation_json, "nginx: commands["));
    cx_history_entries_free(h, nh);
    cx_install_report_free(r);
    /* Not cached: asked again, now without the fault. */
    assert_int_equal(install(p, "install nginx", NULL, &r, &ei), 0);
    assert_int_equal(r->cache_hits, 0);
    assert_false(r->refused);
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

/* Some queries fail (the mock answers 500; one attempt, and with a base URL every provider is
 * that one server, so the router does not fall back to it again: one failure ends the query):
 * the rest are merged. */
static void test_partial_failure(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, NULL, CX_IO_THREAD_LOCAL, CX_MODE_SERIAL);
    t_mock_script(f->mock, "next 1 500");
    struct cx_install_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    /* Serial: the first package gets the fault. */
    assert_int_equal(install(p, "install nginx redis", NULL, &r, &ei), CX_EFAILED);
    assert_int_equal(mock_server_scripted_pending(f->mock), 0);
    assert_int_equal(r->failed, 1);
    assert_int_equal(r->items[0].status < 0, 1);
    assert_non_null(r->items[0].error);
    assert_int_equal(r->items[1].status, 0);
    assert_true(find_cmd(&r->plan, "sudo apt-get install -y redis-server") != (size_t)-1);
    assert_true(find_cmd(&r->plan, "sudo apt-get install -y nginx") == (size_t)-1);
    assert_int_equal(r->history_id, -1); /* no database: nothing recorded */
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

static void plans_equal(const struct cx_install_report *a, const struct cx_install_report *b)
{
    assert_int_equal(a->plan.n, b->plan.n);
    for (size_t i = 0; i < a->plan.n; i++)
        assert_string_equal(a->plan.commands[i], b->plan.commands[i]);
    assert_int_equal(a->n_items, b->n_items);
    for (size_t i = 0; i < a->n_items; i++) {
        assert_int_equal(a->items[i].status, b->items[i].status);
        assert_int_equal(a->items[i].n_commands, b->items[i].n_commands);
        for (size_t k = 0; k < a->items[i].n_commands; k++)
            assert_string_equal(a->items[i].commands[k], b->items[i].commands[k]);
    }
}

/* Both I/O designs and all three execution modes give the same results. */
static void test_designs_and_modes_identical(void **state)
{
    struct fx *f = *state;
    struct cx_install_report *ref = NULL;
    struct {
        enum cx_io_design io;
        enum cx_exec_mode mode;
    } combos[] = {{CX_IO_THREAD_LOCAL, CX_MODE_FREE}, {CX_IO_HYBRID, CX_MODE_FREE},
                  {CX_IO_THREAD_LOCAL, CX_MODE_GIL},  {CX_IO_HYBRID, CX_MODE_GIL},
                  {CX_IO_THREAD_LOCAL, CX_MODE_SERIAL}, {CX_IO_HYBRID, CX_MODE_SERIAL}};
    for (size_t k = 0; k < sizeof combos / sizeof combos[0]; k++) {
        /* No database: every run really asks the server. */
        struct cx_pipeline *p = open_p(f, NULL, combos[k].io, combos[k].mode);
        struct cx_run_options ro;
        cx_run_options_init(&ro);
        struct cx__bench_work bw = {.cpu_work_ns = 200000};
        cx__pipeline_set_bench_work(p, &bw);
        struct cx_install_report *r = NULL;
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        int rc = install(p, SEED_REQUEST, &ro, &r, &ei);
        if (rc != 0)
            fail_msg("combo %zu: %s", k, ei.msg);
        assert_int_equal(r->io, combos[k].io);
        assert_int_equal(r->mode, combos[k].mode);
        assert_int_equal(r->cache_hits, 0);
        if (ref == NULL)
            ref = r;
        else {
            plans_equal(ref, r);
            cx_install_report_free(r);
        }
        cx_pipeline_free(p);
    }
    cx_install_report_free(ref);
}

/* `auto` follows cx_io_choose: a small batch gets thread-local I/O with a thread per query, a
 * large one the hybrid design with a few CPU workers; both give every package its plan. */
static void test_auto_design(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, NULL, CX_IO_AUTO, CX_MODE_FREE);
    struct cx_install_report *r = NULL;
    assert_int_equal(install(p, SEED_REQUEST, NULL, &r, NULL), 0);
    assert_int_equal(r->io, CX_IO_THREAD_LOCAL);
    assert_int_equal(r->threads, 5);
    cx_install_report_free(r);
    char req[2048] = "install";
    for (int i = 0; i < 40; i++) {
        char w[32];
        snprintf(w, sizeof w, " pkg%d", i);
        strcat(req, w);
    }
    assert_int_equal(install(p, req, NULL, &r, NULL), 0);
    assert_int_equal(r->n_items, 40);
    assert_int_equal(r->io, CX_IO_HYBRID);
    assert_true(r->threads >= 1 && r->threads < 40);
    for (int i = 0; i < 40; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "sudo apt-get install -y pkg%d", i);
        assert_true(find_cmd(&r->plan, cmd) != (size_t)-1);
    }
    assert_int_equal(r->plan.n, 41); /* one update + 40 installs */
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

/* Bad input names what was wrong and records nothing. */
static void test_bad_request(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_THREAD_LOCAL, CX_MODE_FREE);
    struct cx_install_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    assert_int_equal(install(p, "install nginx ngi;nx", NULL, &r, &ei), CX_EINVAL);
    assert_null(r);
    assert_non_null(strstr(ei.msg, "ngi;nx"));
    assert_int_equal(install(p, "install", NULL, &r, &ei), CX_EINVAL);
    assert_non_null(strstr(ei.msg, "no package"));
    /* One list entry is one package: a blank inside is a bad name, quoted whole. */
    const char *two_in_one[] = {"nginx redis"};
    assert_int_equal(cx_pipeline_install(p, two_in_one, 1, NULL, &r, &ei), CX_EINVAL);
    assert_null(r);
    assert_non_null(strstr(ei.msg, "'nginx redis'"));
    cx_pipeline_free(p);
}

/* The simulated apt step takes its configured time; a refused --execute runs nothing. */
static int say_no(const struct cx_plan *plan, void *ud)
{
    (void)plan;
    int *asked = ud;
    (*asked)++;
    return 0;
}

static void test_apt_modes(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_THREAD_LOCAL, CX_MODE_FREE);
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    ro.apt_mode = CX_APT_SIMULATE;
    ro.apt_sim_ns = 30 * CX_NSEC_PER_MSEC;
    struct cx__bench_work bw = {.parse_work_ns = 5 * CX_NSEC_PER_MSEC,
                                .merge_work_ns = 7 * CX_NSEC_PER_MSEC};
    cx__pipeline_set_bench_work(p, &bw);
    struct cx_install_report *r = NULL;
    assert_int_equal(install(p, "install nginx", &ro, &r, NULL), 0);
    assert_true(r->timings.apt_s >= 0.030);
    assert_true(r->timings.parse_s >= 0.005);
    assert_true(r->timings.merge_s >= 0.007);
    assert_true(r->timings.total_s >= 0.042);
    assert_int_equal(r->apt_mode, CX_APT_SIMULATE);
    cx_install_report_free(r);

    int asked = 0;
    cx__pipeline_set_bench_work(p, NULL);
    ro.apt_mode = CX_APT_EXECUTE;
    ro.confirm = say_no;
    ro.confirm_ud = &asked;
    ro.execute = cx_cli_run_shell;
    assert_int_equal(install(p, "install nginx", &ro, &r, NULL), CX_EREJECTED);
    assert_int_equal(asked, 1);
    assert_true(r->refused);
    assert_int_equal(r->ran, 0);
    cx_install_report_free(r);
    /* Without a confirm callback execution is refused too. */
    ro.confirm = NULL;
    assert_int_equal(install(p, "install nginx", &ro, &r, NULL), CX_EREJECTED);
    assert_int_equal(r->ran, 0);
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

static void test_diagnose_and_hwcheck(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = open_p(f, f->db, CX_IO_HYBRID, CX_MODE_FREE);
    const char *errs[] = {"write /var/log/x: No space left on device",
                          "E: Unable to locate package foobarbaz",
                          "curl: (6) Could not resolve host: example.invalid"};
    const char *labels[] = {"a.log", "b.log", NULL};
    struct cx_fanout_report *r = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = cx_pipeline_diagnose(p, errs, labels, 3, NULL, &r, &ei);
    if (rc != 0)
        fail_msg("diagnose: %s", ei.msg);
    assert_int_equal(r->n_items, 3);
    assert_string_equal(r->items[0].subject, "a.log");
    assert_string_equal(r->items[2].subject, "error 3");
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r->items[i].status, 0);
        assert_non_null(r->items[i].text);
    }
    /* Different errors get different diagnoses. */
    assert_string_not_equal(r->items[0].text, r->items[1].text);
    cx_fanout_report_free(r);

    rc = cx_pipeline_hwcheck(p, f->dir, NULL, &r, &ei);
    if (rc != 0)
        fail_msg("hwcheck: %s", ei.msg);
    assert_int_equal(r->n_items, 4);
    const char *comp[] = {"cpu", "memory", "disk", "gpu"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(r->items[i].subject, comp[i]);
        assert_int_equal(r->items[i].status, 0);
        assert_non_null(r->items[i].details);
    }
    cx_fanout_report_free(r);
    cx_pipeline_free(p);
}

static struct cx_pipeline *open_named(struct fx *f, const char *url, const char *endpoint)
{
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.base_url = url;
    o.cache_endpoint = endpoint;
    o.db_path = f->db;
    o.rate_limit_rps = 100000;
    o.max_attempts = 1;
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    if (cx_pipeline_new(&o, &p, &ei) < 0)
        fail_msg("cx_pipeline_new: %s", ei.msg);
    return p;
}

/* The pipeline's cache, keyed by the router's endpoint names (moved from test_router.c with
 * the cache): one lookup per query (N distinct queries on an empty cache are N misses), an
 * answer of one server is not served for another with the same provider and model, and a named
 * endpoint keeps its key across URLs. */
static void test_cache_keys_name_the_server(void **state)
{
    struct fx *f = *state;
    char url2[256];
    struct mock_server *b = t_mock_start(NULL, 0.001, url2, sizeof url2);
    assert_non_null(b);
    struct cx_pipeline *p = open_named(f, f->url, NULL);
    struct cx_install_report *r = NULL;
    assert_int_equal(install(p, "install ka kb kc kd", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 0);
    cx_install_report_free(r);
    struct cx_cache_stats cs;
    assert_int_equal(cx_cache_stats(cx_pipeline_cache(p), &cs, NULL), 0);
    assert_int_equal(cs.local_misses, 4); /* one lookup per query */
    assert_int_equal(cs.exact_hits + cs.similar_hits, 0);
    assert_int_equal(cs.entries, 4);
    assert_int_equal(install(p, "install ka", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 1);
    cx_install_report_free(r);
    cx_pipeline_free(p);
    /* another server, same provider and model: not its answer */
    p = open_named(f, url2, NULL);
    assert_int_equal(install(p, "install ka", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 0);
    cx_install_report_free(r);
    cx_pipeline_free(p);
    /* a named endpoint: one key whatever its URL */
    p = open_named(f, f->url, "embedded-mock");
    assert_int_equal(install(p, "install named-a", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 0);
    cx_install_report_free(r);
    cx_pipeline_free(p);
    p = open_named(f, url2, "embedded-mock");
    assert_int_equal(install(p, "install named-a", NULL, &r, NULL), 0);
    assert_int_equal(r->cache_hits, 1);
    cx_install_report_free(r);
    cx_pipeline_free(p);
    mock_server_stop(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_install_seed_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hit_second_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_wrong_package_from_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dangerous_plan_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_similar_cache_keeps_package, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_step_under_gil, setup, teardown),
        cmocka_unit_test_setup_teardown(test_execute_records_commands_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_designs_and_modes_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_design, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apt_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diagnose_and_hwcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_keys_name_the_server, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
