/*
 * stress_executor.c - hundreds of threads through the executor at once.
 *
 * Three shared pools (serial: 1 worker, gil: 64 workers, free: 192 workers) plus a private
 * 2-6 worker pool per submitter thread that is torn down and rebuilt, sometimes while a batch
 * is still live. SUBMITTERS threads run the iterations: each builds a batch of random tasks
 * (succeed, fail with a message, suspend 1-2 times through a shared I/O thread, resume itself
 * before returning, burn CPU around an I/O bracket, poll for cancellation), submits it to a
 * random pool and then waits, consumes a few and cancels, or frees it at once.
 *
 * Invariants checked (exit 1 after printing the broken one):
 *   - every result comes back exactly once through cx_batch_next / cx_batch_wait, and a result
 *     is checked the moment cx_batch_next returns it, before anything else touches the batch:
 *     a completion queue that publishes a result before its fields are written (a weakened
 *     release/acquire pair) shows as a wrong status or end time, and under TSan as a race,
 *     instead of being hidden behind the synchronisation of a stats call made first;
 *   - a task that started ran exactly once; a task cancelled before it started never ran;
 *   - a task that ran has the status its kind dictates (cancellation aside), its error text and
 *     its token count (one per continuation);
 *   - each batch's statistics equal what its results showed: total, successful, failed,
 *     cancelled and tokens counted one by one;
 *   - each pool's tasks_run equals the task and continuation invocations the tasks counted
 *     themselves (checked when the pool is idle);
 *   - gil pool: no two CPU pieces overlap (our own counter) and the GIL saw 0 overlaps;
 *   - serial pool: never more than one task in flight, suspended ones included.
 * Hangs are reports, not waits: each result must arrive within 20 s (x s_timeout_scale), each
 * drain within 60 s, and a monitor thread fails the run when no iteration, batch free or pool
 * teardown has finished for 30 s, printing the counters (a lost update on the executor's
 * pending count strands queued tasks with every worker asleep: this is how it shows).
 *
 * DESIGN. Threads: SUBMITTERS submitters, one I/O thread (resumes suspended tasks), one
 * progress monitor (s_util), the pools' workers. Shared: the pools, per-pool counters (atomics),
 * the I/O thread's queue (io_mu). Shutdown: submitters are joined, their private pools freed,
 * the shared pools freed, then the I/O thread is stopped and joined.
 *
 * Usage: stress_executor [--seed S] [--iters N] [--threads SUBMITTERS (default 8, at most 256)]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/executor.h"
#include "cx/gil.h"
#include "s_util.h"

#define SUBMITTERS 8
#define MAX_BATCH 48

enum kind { K_OK, K_FAIL, K_SUSPEND, K_SELF, K_CPU, K_POLL, K_COUNT };
enum pool { P_SERIAL, P_GIL, P_FREE, P_PRIVATE, P_COUNT };

static _Atomic int g_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "stress_executor: invariant broken at line %d: ", __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
            atomic_store(&g_failed, 1);                                           \
        }                                                                         \
    } while (0)

/* Per-pool counters the tasks update. */
struct pool_rec {
    _Atomic long invocations; /* task and continuation calls, to compare with tasks_run */
    _Atomic int cpu_inside;   /* gil pool: tasks inside a pure-CPU piece */
    _Atomic int cpu_max;
    _Atomic int inflight;     /* serial pool: tasks started and not complete */
    _Atomic int inflight_max;
};

struct req {
    enum kind kind;
    int rounds_left;
    int rounds;
    int pool;
    int started;
    _Atomic int runs; /* first invocations */
    struct pool_rec *rec;
    struct req *io_next;
    struct cx_task_handle *h;
};

/* ---- the shared I/O thread (stands for the curl-multi loop) ---- */
static pthread_mutex_t io_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t io_cond = PTHREAD_COND_INITIALIZER;
static struct req *io_head, *io_tail; /* guarded by io_mu */
static int io_stop;                   /* guarded by io_mu */

static int task_fn(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);
static int cont_fn(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res);

static void io_push(struct req *r) {
    pthread_mutex_lock(&io_mu);
    r->io_next = NULL;
    if (io_tail) io_tail->io_next = r; else io_head = r;
    io_tail = r;
    pthread_cond_signal(&io_cond);
    pthread_mutex_unlock(&io_mu);
}

static void *io_main(void *p) {
    (void)p;
    pthread_mutex_lock(&io_mu);
    for (;;) {
        while (io_head == NULL && !io_stop) pthread_cond_wait(&io_cond, &io_mu);
        if (io_head == NULL) break;
        struct req *r = io_head;
        io_head = r->io_next;
        if (io_head == NULL) io_tail = NULL;
        pthread_mutex_unlock(&io_mu);
        struct cx_task_handle *h = r->h;
        CHECK(cx_task_resume(h, cont_fn, r) == 0, "resume failed");
        pthread_mutex_lock(&io_mu);
    }
    pthread_mutex_unlock(&io_mu);
    return NULL;
}

static void rec_max(_Atomic int *m, int now) {
    int v = atomic_load(m);
    while (now > v && !atomic_compare_exchange_weak(m, &v, now)) {
    }
}

static void cpu_piece(struct pool_rec *rec) {
    int now = atomic_fetch_add(&rec->cpu_inside, 1) + 1;
    rec_max(&rec->cpu_max, now);
    volatile uint64_t x = 1;
    for (int i = 0; i < 500; i++) x = x * 3 + 1;
    atomic_fetch_sub(&rec->cpu_inside, 1);
}

static int finish(struct req *r, int rc) {
    if (r->pool == P_SERIAL) atomic_fetch_sub(&r->rec->inflight, 1);
    return rc;
}

static int suspend_once(struct cx_task_ctx *ctx, struct req *r) {
    r->rounds_left--;
    r->h = cx_task_suspend(ctx);
    if (r->kind == K_SELF) {
        CHECK(cx_task_resume(r->h, cont_fn, r) == 0, "self resume failed");
    } else {
        io_push(r);
    }
    return CX_EAGAIN;
}

static int cont_fn(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct req *r = arg;
    atomic_fetch_add(&r->rec->invocations, 1);
    res->tokens++;
    if (r->rounds_left > 0) return suspend_once(ctx, r);
    return finish(r, 0);
}

static int task_fn(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct req *r = arg;
    atomic_fetch_add(&r->rec->invocations, 1);
    CHECK(atomic_fetch_add(&r->runs, 1) == 0, "task ran twice");
    if (r->pool == P_SERIAL) {
        int now = atomic_fetch_add(&r->rec->inflight, 1) + 1;
        rec_max(&r->rec->inflight_max, now);
    }
    if (r->pool == P_GIL) CHECK(cx_gil_held(), "gil worker without the GIL");
    cpu_piece(r->rec);
    switch (r->kind) {
    case K_OK:
        res->value = r;
        return finish(r, 0);
    case K_FAIL:
        cx_task_set_error(ctx, "kind fail %d", r->rounds);
        return finish(r, CX_EIO);
    case K_SUSPEND:
    case K_SELF:
        return suspend_once(ctx, r);
    case K_CPU:
        /* Now and then a section longer than the gil pool's 200 us interval: forced switches. */
        cx_cpu_work_ns((r->rounds % 8 == 0 ? 400 : 15) * CX_NSEC_PER_USEC);
        cx_gil_io_begin();
        cx_gil_io_end();
        cpu_piece(r->rec);
        return finish(r, 0);
    case K_POLL:
        return finish(r, cx_task_cancelled(ctx) ? CX_ECANCELED : 0);
    default:
        return finish(r, CX_EINVAL);
    }
}

/* ---- submitters ---- */

struct shared {
    struct cx_executor *pools[3];
    struct pool_rec recs[P_COUNT];
    uint64_t seed;
    long iters;
    _Atomic long next_iter;
    _Atomic long batches, tasks, cancelled_batches, executor_rebuilds;
    _Atomic long progress;       /* iterations and teardowns finished (the monitor's clock) */
    _Atomic long private_threads; /* workers of every private pool ever started */
};

static struct shared *g_sh; /* for the monitor's description */

struct submitter {
    struct shared *sh;
    int id;
    uint64_t rng;
    struct cx_executor *priv;
    struct pool_rec priv_rec;
};

static struct cx_executor *new_private(uint64_t *rng, struct shared *sh) {
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.threads = 2 + (int)(s_xorshift64(rng) % 5);
    o.mode = s_xorshift64(rng) % 2 ? CX_MODE_FREE : CX_MODE_GIL;
    o.switch_interval_ns = 100 * CX_NSEC_PER_USEC;
    struct cx_executor *ex = NULL;
    struct cx_errinfo ei;
    int rc = cx_executor_new(&o, &ex, &ei);
    CHECK(rc == 0, "cx_executor_new: %s", ei.msg);
    if (rc == 0) atomic_fetch_add(&sh->private_threads, o.threads);
    return ex;
}

/* What a batch's results showed, counted one by one as they came back. */
struct tally {
    unsigned char seen[MAX_BATCH];
    size_t got, ok, failed, cancelled;
    uint64_t tokens;
};

static const char *const k_pool_names[P_COUNT] = {"serial", "gil", "free", "private"};

/* Checks one result against the task it belongs to; x must be complete (returned by
 * cx_batch_next, or any result after cx_batch_wait returned 0). */
static void take_result(struct tally *t, const struct cx_task_result *x, struct req *reqs, size_t n) {
    if (x->index >= n) {
        CHECK(0, "result index %zu in a batch of %zu", x->index, n);
        return;
    }
    CHECK(!t->seen[x->index], "result %zu returned twice", x->index);
    t->seen[x->index] = 1;
    t->got++;
    struct req *r = &reqs[x->index];
    CHECK(x->end_ns != 0, "result %zu returned before its end time was written", x->index);
    CHECK(x->start_ns == 0 || x->end_ns >= x->start_ns, "result %zu ends before it starts", x->index);
    t->tokens += x->tokens;
    if (x->status == 0) t->ok++;
    else t->failed++;
    if (x->status == CX_ECANCELED) t->cancelled++;
    if (x->start_ns == 0) {
        CHECK(x->status == CX_ECANCELED, "never started but status %d", x->status);
        CHECK(atomic_load(&r->runs) == 0, "cancelled task ran");
        return;
    }
    CHECK(atomic_load(&r->runs) == 1, "task ran %d times", atomic_load(&r->runs));
    switch (r->kind) {
    case K_OK:
        CHECK(x->status == 0 && x->value == r, "ok task status %d", x->status);
        break;
    case K_FAIL: {
        char want[32];
        snprintf(want, sizeof want, "kind fail %d", r->rounds);
        CHECK(x->status == CX_EIO, "fail task status %d", x->status);
        CHECK(x->error == NULL || strcmp(x->error, want) == 0, "error text '%s'", x->error);
        break;
    }
    case K_SUSPEND:
    case K_SELF:
        CHECK(x->status == 0, "suspend task status %d", x->status);
        CHECK(x->tokens == (uint64_t)r->rounds, "continuations %llu != %d",
              (unsigned long long)x->tokens, r->rounds);
        break;
    case K_POLL:
        CHECK(x->status == 0 || x->status == CX_ECANCELED, "poll status %d", x->status);
        break;
    default:
        CHECK(x->status == 0, "cpu task status %d", x->status);
    }
}

/* The next result, checked at once; CX_ENOENT when all are back. A result that does not come
 * within the limit is a hang: reported with what the batch had returned, then exit. */
static int next_checked(struct cx_batch *b, struct tally *t, struct req *reqs, size_t n, int pool) {
    struct cx_task_result *x;
    int rc = cx_batch_next(b, cx_deadline_after_ms(s_scaled_ms(20000)), &x);
    if (rc == CX_ETIMEDOUT) {
        long ran = 0;
        for (size_t i = 0; i < n; i++) ran += atomic_load(&reqs[i].runs);
        s_hang("executor", "%s pool: batch of %zu tasks returned %zu results, then none for %ld ms "
               "(%ld of its tasks had started)", k_pool_names[pool], n, t->got, s_scaled_ms(20000), ran);
    }
    if (rc == 0) take_result(t, x, reqs, n);
    return rc;
}

struct drain {
    size_t expect; /* the next `done` progress must report */
    int bad;
};

static void on_progress(size_t done, size_t total, void *ud) {
    struct drain *d = ud;
    if (done != d->expect || done > total) d->bad = 1;
    d->expect++;
}

/* Drains what cx_batch_next has not returned with cx_batch_wait, then checks every result that
 * came back that way, the progress calls, and the batch's stats against the tally. */
static void drain_and_check(struct cx_batch *b, struct tally *t, struct req *reqs, size_t n, int pool) {
    struct drain d = {t->got + 1, 0};
    size_t before = t->got;
    int rc = cx_batch_wait(b, cx_deadline_after_ms(s_scaled_ms(60000)), on_progress, &d);
    if (rc == CX_ETIMEDOUT)
        s_hang("executor", "%s pool: batch of %zu tasks not drained within %ld ms (%zu returned "
               "by next, %zu more reported by progress)", k_pool_names[pool], n,
               s_scaled_ms(60000), before, d.expect - 1 - before);
    CHECK(rc == 0, "wait: %s", cx_strerror(rc));
    CHECK(!d.bad && d.expect - 1 == n, "progress reported %zu of %zu, out of order: %d",
          d.expect - 1, n, d.bad);
    struct cx_task_result *x;
    CHECK(cx_batch_next(b, 0, &x) == CX_ENOENT, "more results than tasks");
    struct cx_task_result *res = cx_batch_results(b);
    for (size_t i = 0; i < n; i++)
        if (!t->seen[i]) take_result(t, &res[i], reqs, n);
    for (size_t i = 0; i < n; i++) CHECK(res[i].index == i, "index %zu at %zu", res[i].index, i);
    CHECK(t->got == n, "%zu results came back for %zu tasks", t->got, n);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    CHECK(st.total == n, "stats total %zu != %zu", st.total, n);
    CHECK(st.successful == t->ok && st.failed == t->failed && st.cancelled == t->cancelled,
          "stats say %zu ok %zu failed %zu cancelled, the results %zu / %zu / %zu", st.successful,
          st.failed, st.cancelled, t->ok, t->failed, t->cancelled);
    CHECK(st.tokens == t->tokens, "stats tokens %llu, results %llu", (unsigned long long)st.tokens,
          (unsigned long long)t->tokens);
}

/* Every invocation the pool's tasks counted is one in its tasks_run, once the pool is idle. */
static void check_invocations(struct cx_executor *ex, struct pool_rec *rec, const char *what) {
    struct cx_executor_stats es;
    cx_executor_stats(ex, &es);
    CHECK(es.tasks_run == (uint64_t)atomic_load(&rec->invocations),
          "%s pool: tasks_run %llu, the tasks counted %ld invocations", what,
          (unsigned long long)es.tasks_run, atomic_load(&rec->invocations));
}

static void one_iteration(struct submitter *s) {
    struct shared *sh = s->sh;
    uint64_t *rng = &s->rng;
    int pool = (int)(s_xorshift64(rng) % P_COUNT);
    struct cx_executor *ex = pool == P_PRIVATE ? s->priv : sh->pools[pool];
    struct pool_rec *rec = pool == P_PRIVATE ? &s->priv_rec : &sh->recs[pool];
    size_t n = (size_t)(s_xorshift64(rng) % MAX_BATCH);
    struct req reqs[MAX_BATCH];
    struct cx_task tasks[MAX_BATCH];
    memset(reqs, 0, sizeof reqs);
    for (size_t i = 0; i < n; i++) {
        reqs[i].kind = (enum kind)(s_xorshift64(rng) % K_COUNT);
        reqs[i].rounds = reqs[i].kind == K_SUSPEND ? 1 + (int)(s_xorshift64(rng) % 2)
                         : reqs[i].kind == K_SELF  ? 1
                                                   : (int)(s_xorshift64(rng) % 100);
        reqs[i].rounds_left = reqs[i].rounds;
        reqs[i].pool = pool;
        reqs[i].rec = rec;
        tasks[i] = (struct cx_task){task_fn, &reqs[i]};
    }
    struct cx_batch *b;
    int rc = cx_executor_submit(ex, tasks, n, &b);
    CHECK(rc == 0, "submit: %s", cx_strerror(rc));
    if (rc != 0) return;
    atomic_fetch_add(&sh->batches, 1);
    atomic_fetch_add(&sh->tasks, (long)n);
    struct tally t;
    memset(&t, 0, sizeof t);
    int action = (int)(s_xorshift64(rng) % 10);
    if (action < 6) {
        /* Consume everything, half by next and half by wait. */
        while (t.got < n / 2 && next_checked(b, &t, reqs, n, pool) == 0) {
        }
        drain_and_check(b, &t, reqs, n, pool);
        cx_batch_free(b);
    } else if (action < 8) {
        /* Take a few, cancel, take the rest, all by next. */
        size_t take = n ? (size_t)(s_xorshift64(rng) % n) : 0;
        while (t.got < take && next_checked(b, &t, reqs, n, pool) == 0) {
        }
        cx_batch_cancel(b);
        atomic_fetch_add(&sh->cancelled_batches, 1);
        while (next_checked(b, &t, reqs, n, pool) == 0) {
        }
        CHECK(t.got == n, "got %zu results of %zu", t.got, n);
        drain_and_check(b, &t, reqs, n, pool);
        cx_batch_free(b);
    } else if (action < 9 || pool != P_PRIVATE) {
        /* Free at once: cancels and waits (a hang here is the monitor's to report). Only the
         * run counts can be checked afterwards: nothing may run after free. */
        cx_batch_free(b);
        for (size_t i = 0; i < n; i++) CHECK(atomic_load(&reqs[i].runs) <= 1, "ran twice");
    } else {
        /* Tear the private executor down under a live batch, then drain the batch. */
        cx_executor_free(s->priv);
        CHECK(cx_batch_done(b), "batch not done after executor free");
        drain_and_check(b, &t, reqs, n, pool);
        cx_batch_free(b);
        atomic_store(&s->priv_rec.invocations, 0);
        s->priv = new_private(rng, sh);
        atomic_fetch_add(&sh->executor_rebuilds, 1);
    }
    atomic_fetch_add(&sh->progress, 1);
}

static void *submitter_main(void *p) {
    struct submitter *s = p;
    while (!atomic_load(&g_failed)) {
        long it = atomic_fetch_add(&s->sh->next_iter, 1);
        if (it >= s->sh->iters) break;
        one_iteration(s);
    }
    return NULL;
}

static void describe(char *buf, size_t n) {
    struct shared *sh = g_sh;
    long inv = 0;
    for (int i = 0; i < P_COUNT - 1; i++) inv += atomic_load(&sh->recs[i].invocations);
    snprintf(buf, n, "%ld iterations of %ld started, %ld batches and %ld tasks submitted, "
             "%ld task invocations on the shared pools", atomic_load(&sh->next_iter), sh->iters,
             atomic_load(&sh->batches), atomic_load(&sh->tasks), inv);
}

int main(int argc, char **argv) {
    struct shared *sh = calloc(1, sizeof(*sh));
    struct s_args a = {(uint64_t)cx_now_ns(), 500, SUBMITTERS};
    s_args_parse("executor", argc, argv, &a, 256);
    if (sh == NULL) return 2;
    g_sh = sh;
    sh->seed = a.seed;
    sh->iters = a.iters;
    int nsub = a.threads;

    struct cx_executor_options o;
    cx_executor_options_init(&o);
    const enum cx_exec_mode modes[3] = {CX_MODE_SERIAL, CX_MODE_GIL, CX_MODE_FREE};
    const int threads[3] = {1, 64, 192};
    for (int i = 0; i < 3; i++) {
        o.mode = modes[i];
        o.threads = threads[i];
        o.switch_interval_ns = 200 * CX_NSEC_PER_USEC;
        struct cx_errinfo ei;
        if (cx_executor_new(&o, &sh->pools[i], &ei) != 0) {
            fprintf(stderr, "stress_executor: cannot create pool: %s\n", ei.msg);
            return 2;
        }
    }
    s_watch_start("executor", &sh->progress, s_scaled_ms(30000), describe);
    pthread_t io;
    if (pthread_create(&io, NULL, io_main, NULL) != 0) {
        fprintf(stderr, "stress_executor: cannot start the I/O thread\n");
        return 2;
    }

    struct submitter *subs = calloc((size_t)nsub, sizeof *subs);
    pthread_t *th = calloc((size_t)nsub, sizeof *th);
    if (subs == NULL || th == NULL) return 2;
    uint64_t t0 = cx_now_ns();
    for (int i = 0; i < nsub; i++) {
        subs[i] = (struct submitter){.sh = sh, .id = i};
        subs[i].rng = (sh->seed + 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0xBF58476D1CE4E5B9ULL;
        if (subs[i].rng == 0) subs[i].rng = 1;
        subs[i].priv = new_private(&subs[i].rng, sh);
        if (pthread_create(&th[i], NULL, submitter_main, &subs[i]) != 0) {
            fprintf(stderr, "stress_executor: cannot start submitter %d\n", i);
            return 2;
        }
    }
    for (int i = 0; i < nsub; i++) {
        pthread_join(th[i], NULL);
        if (subs[i].priv != NULL) check_invocations(subs[i].priv, &subs[i].priv_rec, "private");
        cx_executor_free(subs[i].priv);
        atomic_fetch_add(&sh->progress, 1);
    }
    struct cx_gil_stats gs;
    cx_gil_stats(cx_executor_gil(sh->pools[P_GIL]), &gs);
    CHECK(gs.overlaps == 0, "GIL overlaps %llu", (unsigned long long)gs.overlaps);
    CHECK(atomic_load(&sh->recs[P_GIL].cpu_max) <= 1, "gil pool: %d CPU pieces overlapped",
          atomic_load(&sh->recs[P_GIL].cpu_max));
    CHECK(atomic_load(&sh->recs[P_SERIAL].inflight_max) <= 1, "serial pool: %d in flight",
          atomic_load(&sh->recs[P_SERIAL].inflight_max));
    CHECK(atomic_load(&sh->recs[P_SERIAL].cpu_max) <= 1, "serial pool: overlap");
    for (int i = 0; i < 3; i++) check_invocations(sh->pools[i], &sh->recs[i], k_pool_names[i]);
    struct cx_executor_stats es;
    cx_executor_stats(sh->pools[P_FREE], &es);
    for (int i = 0; i < 3; i++) {
        cx_executor_free(sh->pools[i]);
        atomic_fetch_add(&sh->progress, 1);
    }
    pthread_mutex_lock(&io_mu);
    io_stop = 1;
    pthread_cond_signal(&io_cond);
    pthread_mutex_unlock(&io_mu);
    pthread_join(io, NULL);
    s_watch_stop();
    printf("stress_executor: %ld batches, %ld tasks, %ld cancelled batches, %ld rebuilds, "
           "free-pool steals %llu, gil forced switches %llu, %.2f s: %s\n",
           atomic_load(&sh->batches), atomic_load(&sh->tasks),
           atomic_load(&sh->cancelled_batches), atomic_load(&sh->executor_rebuilds),
           (unsigned long long)es.steals, (unsigned long long)gs.forced_switches,
           cx_elapsed_s(t0, cx_now_ns()), atomic_load(&g_failed) ? "FAILED" : "ok");
    /* threads: the shared pools, the private pools ever started, submitters, I/O, monitor */
    s_report("executor", 1 + 64 + 192 + atomic_load(&sh->private_threads) + nsub + 2,
             atomic_load(&sh->tasks), !atomic_load(&g_failed));
    int failed = atomic_load(&g_failed);
    free(subs);
    free(th);
    free(sh);
    return failed ? 1 : 0;
}
