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
 * Invariants checked (exit 1 on the first broken one, after printing it):
 *   - every result comes back exactly once through cx_batch_next / cx_batch_wait;
 *   - a task that started ran exactly once; a task cancelled before it started never ran;
 *   - a task that ran has the status its kind dictates (cancellation aside), its error text and
 *     its token count (one per continuation);
 *   - statistics add up (successful + failed == total; tokens match);
 *   - gil pool: no two CPU pieces overlap (our own counter) and the GIL saw 0 overlaps;
 *   - serial pool: never more than one task in flight, suspended ones included.
 *
 * Usage: stress_executor [--seed S] [--iters N]
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
    res->tokens++;
    if (r->rounds_left > 0) return suspend_once(ctx, r);
    return finish(r, 0);
}

static int task_fn(struct cx_task_ctx *ctx, void *arg, struct cx_task_result *res) {
    struct req *r = arg;
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
};

struct submitter {
    struct shared *sh;
    int id;
    uint64_t rng;
    struct cx_executor *priv;
    struct pool_rec priv_rec;
};

static struct cx_executor *new_private(uint64_t *rng) {
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.threads = 2 + (int)(s_xorshift64(rng) % 5);
    o.mode = s_xorshift64(rng) % 2 ? CX_MODE_FREE : CX_MODE_GIL;
    o.switch_interval_ns = 100 * CX_NSEC_PER_USEC;
    struct cx_executor *ex = NULL;
    struct cx_errinfo ei;
    int rc = cx_executor_new(&o, &ex, &ei);
    CHECK(rc == 0, "cx_executor_new: %s", ei.msg);
    return ex;
}

static void check_batch(struct cx_batch *b, struct req *reqs, size_t n, int drained) {
    struct cx_task_result *res = cx_batch_results(b);
    struct cx_batch_stats st;
    cx_batch_stats(b, &st);
    CHECK(st.total == n, "stats total %zu != %zu", st.total, n);
    CHECK(st.successful + st.failed == n, "successful + failed != total");
    uint64_t tokens = 0;
    for (size_t i = 0; i < n; i++) {
        struct req *r = &reqs[i];
        const struct cx_task_result *x = &res[i];
        tokens += x->tokens;
        CHECK(x->index == i, "index %zu at %zu", x->index, i);
        if (x->start_ns == 0) {
            CHECK(x->status == CX_ECANCELED, "never started but status %d", x->status);
            CHECK(atomic_load(&r->runs) == 0, "cancelled task ran");
            continue;
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
    if (drained) CHECK(st.tokens == tokens, "stats tokens mismatch");
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
    int action = (int)(s_xorshift64(rng) % 10);
    if (action < 6) {
        /* Consume everything, half by next and half by wait. */
        size_t got = 0;
        struct cx_task_result *r;
        while (got < n / 2 && cx_batch_next(b, cx_deadline_after_ms(60000), &r) == 0) got++;
        rc = cx_batch_wait(b, cx_deadline_after_ms(60000), NULL, NULL);
        CHECK(rc == 0, "wait: %s", cx_strerror(rc));
        CHECK(cx_batch_next(b, 0, &r) == CX_ENOENT, "more results than tasks");
        check_batch(b, reqs, n, 1);
        cx_batch_free(b);
    } else if (action < 8) {
        /* Take a few, cancel, take the rest. */
        struct cx_task_result *r;
        size_t got = 0;
        size_t take = n ? (size_t)(s_xorshift64(rng) % n) : 0;
        while (got < take && cx_batch_next(b, cx_deadline_after_ms(60000), &r) == 0) got++;
        cx_batch_cancel(b);
        atomic_fetch_add(&sh->cancelled_batches, 1);
        while (cx_batch_next(b, cx_deadline_after_ms(60000), &r) == 0) got++;
        CHECK(got == n, "got %zu results of %zu", got, n);
        check_batch(b, reqs, n, 1);
        cx_batch_free(b);
    } else if (action < 9 || pool != P_PRIVATE) {
        /* Free at once: cancels and waits. Results are still readable until the free, so
         * only the run counts can be checked afterwards: nothing may run after free. */
        cx_batch_free(b);
        for (size_t i = 0; i < n; i++) CHECK(atomic_load(&reqs[i].runs) <= 1, "ran twice");
    } else {
        /* Tear the private executor down under a live batch, then drain the batch. */
        cx_executor_free(s->priv);
        CHECK(cx_batch_done(b), "batch not done after executor free");
        rc = cx_batch_wait(b, 0, NULL, NULL);
        CHECK(rc == 0, "wait after executor free: %s", cx_strerror(rc));
        check_batch(b, reqs, n, 1);
        cx_batch_free(b);
        s->priv = new_private(rng);
        atomic_fetch_add(&sh->executor_rebuilds, 1);
    }
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

int main(int argc, char **argv) {
    struct shared *sh = calloc(1, sizeof(*sh));
    struct s_args a = {(uint64_t)cx_now_ns(), 500, SUBMITTERS};
    s_args_parse("executor", argc, argv, &a, 0);
    sh->seed = a.seed;
    sh->iters = a.iters;

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
            return 1;
        }
    }
    pthread_t io;
    pthread_create(&io, NULL, io_main, NULL);

    struct submitter subs[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    uint64_t t0 = cx_now_ns();
    for (int i = 0; i < SUBMITTERS; i++) {
        subs[i] = (struct submitter){.sh = sh, .id = i};
        subs[i].rng = (sh->seed + 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0xBF58476D1CE4E5B9ULL;
        if (subs[i].rng == 0) subs[i].rng = 1;
        subs[i].priv = new_private(&subs[i].rng);
        pthread_create(&th[i], NULL, submitter_main, &subs[i]);
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(th[i], NULL);
        cx_executor_free(subs[i].priv);
    }
    struct cx_gil_stats gs;
    cx_gil_stats(cx_executor_gil(sh->pools[P_GIL]), &gs);
    CHECK(gs.overlaps == 0, "GIL overlaps %llu", (unsigned long long)gs.overlaps);
    CHECK(atomic_load(&sh->recs[P_GIL].cpu_max) <= 1, "gil pool: %d CPU pieces overlapped",
          atomic_load(&sh->recs[P_GIL].cpu_max));
    CHECK(atomic_load(&sh->recs[P_SERIAL].inflight_max) <= 1, "serial pool: %d in flight",
          atomic_load(&sh->recs[P_SERIAL].inflight_max));
    CHECK(atomic_load(&sh->recs[P_SERIAL].cpu_max) <= 1, "serial pool: overlap");
    struct cx_executor_stats es;
    cx_executor_stats(sh->pools[P_FREE], &es);
    for (int i = 0; i < 3; i++) cx_executor_free(sh->pools[i]);
    pthread_mutex_lock(&io_mu);
    io_stop = 1;
    pthread_cond_signal(&io_cond);
    pthread_mutex_unlock(&io_mu);
    pthread_join(io, NULL);
    printf("stress_executor: %ld batches, %ld tasks, %ld cancelled batches, %ld rebuilds, "
           "free-pool steals %llu, gil forced switches %llu, %.2f s: %s\n",
           atomic_load(&sh->batches), atomic_load(&sh->tasks),
           atomic_load(&sh->cancelled_batches), atomic_load(&sh->executor_rebuilds),
           (unsigned long long)es.steals, (unsigned long long)gs.forced_switches,
           cx_elapsed_s(t0, cx_now_ns()), atomic_load(&g_failed) ? "FAILED" : "ok");
    free(sh);
    return atomic_load(&g_failed) ? 1 : 0;
}
