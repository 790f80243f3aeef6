/*
 * test_fleet_wired.c - fleet mode through the real path (pipeline -> router -> mock), with a
 * real redis-server: two pipelines with their own Redis connections and their own SQLite files
 * stand for two cx processes (one test forks a real second process). Covers: the router's
 * limit shared through Redis (a reservation by one is seen by the other), a 429's Retry-After
 * pausing the other "process", a cross-process cache hit counted as a hit of the "fleet" tier,
 * fleet-wide single flight (one upstream call for two identical queries), a dead leader's lock
 * expiring and a follower taking over, Redis killed and restarted mid-run (every query ends
 * exactly once), the errors at open (refused, wrong password, no Lua; CORTEX_REDIS_OPTIONAL),
 * and a foreign value under our keys (an error naming the key).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/config.h"
#include "cx/pipeline.h"
#include "mock/server.h"
#include "t_mock.h"
#include "t_redis.h"
#include "t_util.h"

/* A configuration from name=value pairs (NULL-terminated), the only source cx_config_load sees. */
struct env {
    const char *kv[32];
};

static const char *env_get(const char *name, void *ud)
{
    const struct env *e = ud;
    for (int i = 0; e->kv[i] != NULL; i += 2)
        if (strcmp(e->kv[i], name) == 0)
            return e->kv[i + 1];
    return NULL;
}

struct popts {
    const char *mock_url;
    const char *redis_url;  /* NULL: no fleet */
    const char *db;         /* NULL: no local cache */
    const char *prefix;     /* CORTEX_REDIS_PREFIX */
    const char *optional;   /* CORTEX_REDIS_OPTIONAL */
    const char *password;
    const char *request_timeout_ms;
    double rps;
    enum cx_io_design io;
    int max_attempts;
};

static void popts_init(struct popts *o, const char *mock_url, const char *redis_url,
                       const char *db)
{
    memset(o, 0, sizeof *o);
    o->mock_url = mock_url;
    o->redis_url = redis_url;
    o->db = db;
    o->prefix = "wired";
    o->rps = 100000;
    o->io = CX_IO_THREAD_LOCAL;
    o->max_attempts = 1;
}

static int open_pipeline(const struct popts *po, struct cx_pipeline **out, struct cx_errinfo *ei)
{
    struct env e;
    memset(&e, 0, sizeof e);
    int n = 0;
    if (po->redis_url) {
        e.kv[n++] = "CORTEX_REDIS_URL";
        e.kv[n++] = po->redis_url;
        e.kv[n++] = "CORTEX_REDIS_PREFIX";
        e.kv[n++] = po->prefix;
    }
    if (po->optional) {
        e.kv[n++] = "CORTEX_REDIS_OPTIONAL";
        e.kv[n++] = po->optional;
    }
    if (po->password) {
        e.kv[n++] = "CORTEX_REDIS_PASSWORD";
        e.kv[n++] = po->password;
    }
    if (po->request_timeout_ms) {
        e.kv[n++] = "CORTEX_REQUEST_TIMEOUT_MS";
        e.kv[n++] = po->request_timeout_ms;
    }
    e.kv[n++] = "CORTEX_FLEET_SIZE";
    e.kv[n++] = "2";
    struct cx_config cfg;
    int rc = cx_config_load(&cfg, env_get, &e, ei);
    if (rc < 0)
        return rc;
    struct cx_pipeline_options o;
    cx_pipeline_options_init(&o);
    o.config = &cfg;
    o.base_url = po->mock_url;
    o.cache_endpoint = "wired-mock"; /* every "process" names the server alike */
    o.db_path = po->db;
    o.have_io = 1;
    o.io = po->io;
    o.rate_limit_rps = po->rps;
    o.max_attempts = po->max_attempts;
    rc = cx_pipeline_new(&o, out, ei);
    cx_config_clear(&cfg);
    return rc;
}

static struct cx_pipeline *open_ok(const struct popts *po)
{
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = open_pipeline(po, &p, &ei);
    if (rc < 0)
        fail_msg("cx_pipeline_new: %s (%s)", ei.msg, cx_err_name(rc));
    return p;
}

static int install1(struct cx_pipeline *p, const char *pkg, uint64_t deadline,
                    struct cx_install_report **out)
{
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    ro.deadline = deadline;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    const char *pkgs[1] = {pkg};
    int rc = cx_pipeline_install(p, pkgs, 1, &ro, out, &ei);
    if (*out == NULL)
        fail_msg("install %s: %s (%s)", pkg, ei.msg, cx_err_name(rc));
    return rc;
}

static uint64_t api_requests(struct mock_server *m)
{
    struct mock_counts c;
    mock_server_counts(m, &c);
    return c.api_requests;
}

struct fx {
    struct t_redis rs;
    struct mock_server *mock;
    char url[256];
    char *dir;
    char *db_a, *db_b;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    t_redis_start(&f->rs, NULL);
    f->mock = t_mock_start(NULL, 1.0, f->url, sizeof f->url);
    assert_non_null(f->mock);
    char err[128];
    assert_int_equal(mock_server_configure(f->mock, "latency = 0ms", err, sizeof err), 0);
    f->dir = t_tmpdir("wired");
    f->db_a = t_path(f->dir, "a.db");
    f->db_b = t_path(f->dir, "b.db");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mock_server_stop(f->mock);
    t_redis_stop(&f->rs);
    t_rmrf(f->dir);
    free(f->dir);
    free(f->db_a);
    free(f->db_b);
    free(f);
    return 0;
}

/* One process's reservation is seen by the other: with a fleet quota of one request per two
 * seconds (burst 1), A takes the only token, so B's query, which must be sent within one
 * second, fails at once with the rate limiter's deadline error. With local limiters (no Redis)
 * each has its own token and B is answered: the "limit x N" failure the fleet removes. */
static void test_limit_shared(void **state)
{
    struct fx *f = *state;
    for (int fleet = 0; fleet < 2; fleet++) {
        struct popts po;
        popts_init(&po, f->url, fleet ? f->rs.url : NULL, NULL);
        po.prefix = "wired-limit";
        po.rps = 0.5;
        struct cx_pipeline *a = open_ok(&po), *b = open_ok(&po);
        struct cx_install_report *r = NULL;
        assert_int_equal(install1(a, "limit-a", CX_DEADLINE_NONE, &r), 0);
        cx_install_report_free(r);
        int rc = install1(b, "limit-b", cx_deadline_after_ms(1000), &r);
        if (fleet) {
            assert_int_not_equal(rc, 0);
            assert_int_equal(r->items[0].status, CX_ETIMEDOUT);
            assert_non_null(strstr(r->items[0].error, "rate limiter"));
        } else {
            assert_int_equal(rc, 0);
        }
        cx_install_report_free(r);
        struct cx_fleet_stats fs;
        cx_pipeline_fleet_stats(b, &fs);
        assert_int_equal(fs.configured, fleet);
        cx_pipeline_free(a);
        cx_pipeline_free(b);
    }
}

/* A 429 with Retry-After: 3 answered to A pauses the fleet: B's query, due within one second,
 * cannot be sent and fails with the limiter's deadline error although B saw no 429 itself. */
static void test_pause_shared(void **state)
{
    struct fx *f = *state;
    char err[128];
    assert_int_equal(mock_server_configure(f->mock, "retry_after = 3s", err, sizeof err), 0);
    struct popts po;
    popts_init(&po, f->url, f->rs.url, NULL);
    po.prefix = "wired-pause";
    struct cx_pipeline *a = open_ok(&po), *b = open_ok(&po);
    t_mock_script(f->mock, "next 1 429");
    struct cx_install_report *r = NULL;
    (void)install1(a, "pause-a", CX_DEADLINE_NONE, &r);
    assert_int_equal(r->items[0].status, CX_ERATELIMIT);
    cx_install_report_free(r);
    uint64_t before = api_requests(f->mock);
    int rc = install1(b, "pause-b", cx_deadline_after_ms(1000), &r);
    assert_int_not_equal(rc, 0);
    assert_int_equal(r->items[0].status, CX_ETIMEDOUT);
    assert_non_null(strstr(r->items[0].error, "rate limiter"));
    cx_install_report_free(r);
    assert_int_equal(api_requests(f->mock), before); /* nothing was sent inside the pause */
    cx_pipeline_free(a);
    cx_pipeline_free(b);
    assert_int_equal(mock_server_configure(f->mock, "retry_after = 1s", err, sizeof err), 0);
}

/* A's answer is B's cache hit: counted as a hit of the fleet tier, no upstream call; B's next
 * run finds it in its own SQLite file (read-through). */
static void test_cross_process_hit(void **state)
{
    struct fx *f = *state;
    struct popts pa, pb;
    popts_init(&pa, f->url, f->rs.url, f->db_a);
    popts_init(&pb, f->url, f->rs.url, f->db_b);
    pa.prefix = pb.prefix = "wired-hit";
    struct cx_pipeline *a = open_ok(&pa), *b = open_ok(&pb);
    struct cx_install_report *r = NULL;
    assert_int_equal(install1(a, "nginx", CX_DEADLINE_NONE, &r), 0);
    assert_int_equal(r->items[0].from_cache, 0);
    cx_install_report_free(r);
    uint64_t before = api_requests(f->mock);
    assert_int_equal(install1(b, "nginx", CX_DEADLINE_NONE, &r), 0);
    assert_int_equal(r->items[0].from_cache, 1);
    assert_string_equal(r->items[0].cache_tier, "fleet");
    assert_int_equal(r->cache_hits, 1);
    assert_true(r->items[0].n_commands > 0);
    cx_install_report_free(r);
    assert_int_equal(api_requests(f->mock), before);
    struct cx_fleet_stats fs;
    cx_pipeline_fleet_stats(b, &fs);
    assert_int_equal(fs.cache_hits, 1);
    assert_true(fs.up);
    cx_pipeline_fleet_stats(a, &fs);
    assert_int_equal(fs.cache_puts, 1);
    assert_int_equal(install1(b, "nginx", CX_DEADLINE_NONE, &r), 0);
    assert_string_equal(r->items[0].cache_tier, "local");
    cx_install_report_free(r);
    cx_pipeline_free(a);
    cx_pipeline_free(b);
}

/* 1 when some key matches pattern (the test's own view of Redis). */
static int have_key(const struct t_redis *rs, const char *pattern)
{
    redisReply *rep = t_redis_cmd(rs, "KEYS %s", pattern);
    int n = rep->type == REDIS_REPLY_ARRAY ? (int)rep->elements : 0;
    freeReplyObject(rep);
    return n > 0;
}

static void wait_key(const struct t_redis *rs, const char *pattern)
{
    uint64_t dl = t_deadline_ms(10000);
    while (!have_key(rs, pattern)) {
        if (cx_deadline_expired(dl))
            fail_msg("no key %s appeared", pattern);
        cx_sleep_ns(2 * CX_NSEC_PER_MSEC);
    }
}

struct runner {
    struct cx_pipeline *p;
    const char *pkg;
    struct cx_install_report *r;
    int rc;
};

static void *run_install(void *arg)
{
    struct runner *u = arg;
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    const char *pkgs[1] = {u->pkg};
    u->rc = cx_pipeline_install(u->p, pkgs, 1, &ro, &u->r, NULL);
    return NULL;
}

/* Two processes ask the same question while the first is still waiting for the LLM (the mock
 * takes 1 s): one upstream call; the second is answered from the shared tier after waiting for
 * the first's lock, with its task parked on the poller thread (hybrid: no worker held). */
static void test_fleet_single_flight(void **state)
{
    struct fx *f = *state;
    char err[128];
    assert_int_equal(mock_server_configure(f->mock, "latency = 1000ms", err, sizeof err), 0);
    struct popts pa, pb;
    popts_init(&pa, f->url, f->rs.url, f->db_a);
    popts_init(&pb, f->url, f->rs.url, f->db_b);
    pa.prefix = pb.prefix = "wired-sf";
    pb.io = CX_IO_HYBRID;
    struct cx_pipeline *a = open_ok(&pa), *b = open_ok(&pb);
    uint64_t before = api_requests(f->mock);
    struct runner ua = {a, "postgresql", NULL, 0}, ub = {b, "postgresql", NULL, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_install, &ua), 0);
    wait_key(&f->rs, "wired-sf:l:*"); /* A leads */
    assert_int_equal(pthread_create(&tb, NULL, run_install, &ub), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(ua.rc, 0);
    assert_int_equal(ub.rc, 0);
    assert_int_equal(ua.r->items[0].from_cache, 0);
    assert_int_equal(ub.r->items[0].from_cache, 1);
    assert_string_equal(ub.r->items[0].cache_tier, "fleet");
    assert_int_equal(ub.r->items[0].n_commands, ua.r->items[0].n_commands);
    assert_int_equal(api_requests(f->mock) - before, 1);
    struct cx_fleet_stats fs;
    cx_pipeline_fleet_stats(b, &fs);
    assert_int_equal(fs.flights_waited, 1);
    assert_int_equal(fs.cache_hits, 1);
    cx_pipeline_fleet_stats(a, &fs);
    assert_int_equal(fs.flights_led, 1);
    assert_false(have_key(&f->rs, "wired-sf:l:*")); /* the leader let go */
    cx_install_report_free(ua.r);
    cx_install_report_free(ub.r);
    cx_pipeline_free(a);
    cx_pipeline_free(b);
    assert_int_equal(mock_server_configure(f->mock, "latency = 0ms", err, sizeof err), 0);
}

/* A real second process leads and is killed (SIGKILL) while its upstream call is in flight: its
 * lock stays until the lease (CORTEX_REQUEST_TIMEOUT_MS, 1.5 s) expires, then this process,
 * which was waiting, takes over, asks upstream itself and is answered. */
static void test_dead_leader_takeover(void **state)
{
    struct fx *f = *state;
    /* A fresh process (fork + exec of this test with --leader-child): no threads inherited. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_fleet_wired", "--leader-child", f->rs.url, (char *)NULL);
        _exit(127);
    }
    wait_key(&f->rs, "wired-dead:l:*");
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st));
    assert_true(have_key(&f->rs, "wired-dead:l:*")); /* the dead leader's lock is still there */
    struct popts po;
    popts_init(&po, f->url, f->rs.url, NULL);
    po.prefix = "wired-dead";
    po.request_timeout_ms = "1500";
    po.io = CX_IO_HYBRID;
    struct cx_pipeline *p = open_ok(&po);
    struct cx_install_report *r = NULL;
    assert_int_equal(install1(p, "docker", CX_DEADLINE_NONE, &r), 0);
    assert_int_equal(r->items[0].from_cache, 0);
    cx_install_report_free(r);
    struct cx_fleet_stats fs;
    cx_pipeline_fleet_stats(p, &fs);
    assert_int_equal(fs.flights_waited, 1);
    assert_int_equal(fs.takeovers, 1);
    cx_pipeline_free(p);
}

struct outage_run {
    struct cx_pipeline *p;
    const char **pkgs;
    size_t n;
    struct cx_install_report *r;
    int rc;
};

static void *run_many(void *arg)
{
    struct outage_run *u = arg;
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    u->rc = cx_pipeline_install(u->p, u->pkgs, u->n, &ro, &u->r, NULL);
    return NULL;
}

static void wait_requests(struct mock_server *m, uint64_t n)
{
    uint64_t dl = t_deadline_ms(20000);
    while (api_requests(m) < n) {
        if (cx_deadline_expired(dl))
            fail_msg("the mock saw %llu of %llu requests", (unsigned long long)api_requests(m),
                     (unsigned long long)n);
        cx_sleep_ns(CX_NSEC_PER_MSEC);
    }
}

/* Redis is killed mid-run and restarted: every query of the run ends exactly once (each item
 * answered, each package asked upstream once), the fleet says it went down and came back, and
 * the limits fell back to the local share meanwhile. Both I/O designs. */
static void test_outage_mid_run(void **state)
{
    struct fx *f = *state;
    char err[128];
    assert_int_equal(mock_server_configure(f->mock, "latency = 20ms", err, sizeof err), 0);
    enum { N = 48 };
    static char names[N][24];
    const char *pkgs[N];
    for (int design = 0; design < 2; design++) {
        for (int i = 0; i < N; i++) {
            snprintf(names[i], sizeof names[i], "outage-%d-%d", design, i);
            pkgs[i] = names[i];
        }
        struct popts po;
        popts_init(&po, f->url, f->rs.url, f->db_a);
        po.prefix = "wired-outage";
        po.rps = 400;
        po.io = design ? CX_IO_HYBRID : CX_IO_THREAD_LOCAL;
        struct cx_pipeline *p = open_ok(&po);
        uint64_t before = api_requests(f->mock);
        struct outage_run u = {p, pkgs, N, NULL, 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, run_many, &u), 0);
        wait_requests(f->mock, before + 8);
        t_redis_kill(&f->rs);
        /* Wait until the fleet noticed (the next answer's shared put fails at the latest). In
         * the thread-local design at most 8 + threads queries had started, so the rest meet the
         * dead server: wait until one of them was served locally too (the hybrid design has
         * made every reservation by now). Then bring Redis back while the run goes on. */
        uint64_t dl = t_deadline_ms(20000);
        for (;;) {
            struct cx_fleet_stats now;
            cx_pipeline_fleet_stats(p, &now);
            if (now.outages >= 1 && (design == 1 || now.limiter_fallbacks + now.alone >= 1))
                break;
            if (cx_deadline_expired(dl))
                fail_msg("design %d: no query met the outage (outages %llu, commands %llu, "
                         "waited %llu, mock requests %llu)", design,
                         (unsigned long long)now.outages, (unsigned long long)now.commands,
                         (unsigned long long)now.flights_waited,
                         (unsigned long long)(api_requests(f->mock) - before));
            cx_sleep_ns(CX_NSEC_PER_MSEC);
        }
        t_redis_restart(&f->rs);
        pthread_join(t, NULL);
        assert_int_equal(u.rc, 0);
        assert_int_equal(u.r->n_items, N);
        for (int i = 0; i < N; i++)
            assert_int_equal(u.r->items[i].status, 0);
        assert_int_equal(api_requests(f->mock) - before, N);
        cx_install_report_free(u.r);
        struct cx_fleet_stats fs;
        cx_pipeline_fleet_stats(p, &fs);
        assert_true(fs.outages >= 1);
        if (design == 0)
            assert_true(fs.limiter_fallbacks + fs.alone >= 1);
        /* One notice (the latest state: down, or up again if it reconnected within the run). */
        char msg[512];
        assert_int_equal(cx_pipeline_fleet_notice(p, msg, sizeof msg), 1);
        int told_again = strstr(msg, "again") != NULL;
        /* Later queries find Redis again (after the reconnect backoff, at most 2 s). */
        dl = t_deadline_ms(15000);
        for (int k = 0; !fs.up || fs.reconnects == 0; k++) {
            if (cx_deadline_expired(dl))
                fail_msg("the fleet did not reconnect");
            char pkg[32];
            snprintf(pkg, sizeof pkg, "again-%d-%d", design, k);
            struct cx_install_report *r = NULL;
            assert_int_equal(install1(p, pkg, CX_DEADLINE_NONE, &r), 0);
            cx_install_report_free(r);
            cx_pipeline_fleet_stats(p, &fs);
            if (!fs.up)
                cx_sleep_ns(50 * CX_NSEC_PER_MSEC);
        }
        if (!told_again) {
            assert_int_equal(cx_pipeline_fleet_notice(p, msg, sizeof msg), 1);
            assert_non_null(strstr(msg, "again"));
        }
        cx_pipeline_free(p);
    }
    assert_int_equal(mock_server_configure(f->mock, "latency = 0ms", err, sizeof err), 0);
}

/* Bad Redis settings at open: each a clear error naming the setting, unless optional. */
static void test_open_errors(void **state)
{
    struct fx *f = *state;
    struct cx_pipeline *p = NULL;
    struct cx_errinfo ei;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", t_redis_free_port());
    struct popts po;
    popts_init(&po, f->url, url, NULL);
    memset(&ei, 0, sizeof ei);
    assert_int_equal(open_pipeline(&po, &p, &ei), CX_ECONN);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL"));
    assert_null(p);

    /* Optional: runs on local limits and says why. */
    po.optional = "1";
    p = open_ok(&po);
    struct cx_install_report *r = NULL;
    assert_int_equal(install1(p, "curl", CX_DEADLINE_NONE, &r), 0);
    cx_install_report_free(r);
    struct cx_fleet_stats fs;
    cx_pipeline_fleet_stats(p, &fs);
    assert_int_equal(fs.configured, 1);
    assert_int_equal(fs.up, 0);
    assert_true(fs.limiter_fallbacks >= 1);
    char msg[512];
    assert_int_equal(cx_pipeline_fleet_notice(p, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "falling back"));
    assert_int_equal(cx_pipeline_fleet_notice(p, msg, sizeof msg), 0); /* once */
    cx_pipeline_free(p);
    p = NULL;

    struct t_redis auth;
    t_redis_start(&auth, "requirepass s3cret\n");
    popts_init(&po, f->url, auth.url, NULL);
    po.password = "wrong";
    memset(&ei, 0, sizeof ei);
    assert_int_equal(open_pipeline(&po, &p, &ei), CX_EAUTH);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_PASSWORD"));
    assert_null(strstr(ei.msg, "wrong"));
    po.password = "s3cret";
    p = open_ok(&po);
    cx_pipeline_free(p);
    p = NULL;
    t_redis_stop(&auth);

    struct t_redis nolua;
    t_redis_start(&nolua, "rename-command EVAL \"\"\nrename-command EVALSHA \"\"\n");
    popts_init(&po, f->url, nolua.url, NULL);
    memset(&ei, 0, sizeof ei);
    assert_int_equal(open_pipeline(&po, &p, &ei), CX_ENOTSUP);
    assert_non_null(strstr(ei.msg, "CORTEX_REDIS_URL"));
    t_redis_stop(&nolua);
}

/* Something foreign under our keys: the query fails with an error naming the key; no crash. */
static void test_corrupt_keys(void **state)
{
    struct fx *f = *state;
    struct popts po;
    popts_init(&po, f->url, f->rs.url, NULL);
    po.prefix = "wired-bad";
    struct cx_pipeline *p = open_ok(&po);
    t_redis_do(&f->rs, "SET wired-bad:rl:llm:req garbage");
    struct cx_install_report *r = NULL;
    assert_int_not_equal(install1(p, "zsh", CX_DEADLINE_NONE, &r), 0);
    assert_int_equal(r->items[0].status, CX_ECORRUPT);
    assert_non_null(strstr(r->items[0].error, "wired-bad:rl:llm:req"));
    cx_install_report_free(r);
    t_redis_do(&f->rs, "DEL wired-bad:rl:llm:req");
    t_redis_do(&f->rs, "SET wired-bad:c:lru notazset");
    assert_int_not_equal(install1(p, "zsh", CX_DEADLINE_NONE, &r), 0);
    assert_int_equal(r->items[0].status, CX_ECORRUPT);
    assert_non_null(strstr(r->items[0].error, "wired-bad:c:lru"));
    cx_install_report_free(r);
    t_redis_do(&f->rs, "DEL wired-bad:c:lru");
    assert_int_equal(install1(p, "zsh", CX_DEADLINE_NONE, &r), 0);
    cx_install_report_free(r);
    cx_pipeline_free(p);
}

/* The second process of test_dead_leader_takeover: leads the flight for "docker" against a mock
 * that never answers in time, until the test kills it. */
static int leader_child(const char *redis_url)
{
    char url[256];
    struct mock_server *slow = t_mock_start("latency = 60s\n", 1.0, url, sizeof url);
    if (slow == NULL)
        return 3;
    struct popts po;
    popts_init(&po, url, redis_url, NULL);
    po.prefix = "wired-dead";
    po.request_timeout_ms = "1500";
    struct cx_pipeline *p = NULL;
    if (open_pipeline(&po, &p, NULL) < 0)
        return 4;
    struct cx_install_report *r = NULL;
    struct cx_run_options ro;
    cx_run_options_init(&ro);
    const char *pkgs[1] = {"docker"};
    (void)cx_pipeline_install(p, pkgs, 1, &ro, &r, NULL);
    return 5; /* not reached: killed while it waits */
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--leader-child") == 0)
        return leader_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_shared),
        cmocka_unit_test(test_pause_shared),
        cmocka_unit_test(test_cross_process_hit),
        cmocka_unit_test(test_fleet_single_flight),
        cmocka_unit_test(test_dead_leader_takeover),
        cmocka_unit_test(test_outage_mid_run),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_corrupt_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
