/*
 * timer.c - the mock server's timer: min-heaps of (deadline, callback) entries under one mutex,
 * one heap (lane) per libmicrohttpd worker thread, and one timer thread slept on a monotonic
 * condition variable. The server puts a suspended connection here and the callback resumes it.
 *
 * DESIGN
 * - Lanes: an entry goes to the lane of the thread that adds it (a worker's lane is its own:
 *   threads take lane numbers in turn, modulo LANES) or, when added from inside a callback, to
 *   the lane that callback came from. A worker adds entries only for its own connections (the
 *   access handler and content readers run on the connection's worker), so a lane holds the
 *   deadlines of one worker's connections.
 * - Who runs callbacks: the timer thread pops due entries from every lane, releases the lock
 *   and runs them in deadline order (ties in insertion order), so a callback may add entries
 *   again without deadlock. A busy worker also runs its own lane's due entries whenever the
 *   server calls mock__timer_run_due from one of its callbacks: the resumed connections are
 *   then its own, handled in the next pass of its event loop, with no wakeup of the timer
 *   thread nor of the worker. An entry is popped under the lock by exactly one of them.
 * - Coalescing: after taking a batch the timer thread waits COALESCE_NS before taking the
 *   next, so under load due entries are resumed in batches (one wakeup of this thread per
 *   batch, and a libmicrohttpd worker sees several resumed connections in one pass of its event
 *   loop, one eventfd wakeup and one scan of its suspended list for them all) instead of one at
 *   a time. It adds at most COALESCE_NS to a deadline, and nothing when the timer was idle; a
 *   worker running its own lane is not delayed by it.
 * - Shutdown: mock__timer_flush_and_close marks the timer closed (later adds fail, and the
 *   caller runs its callback itself; workers stop taking entries), joins the thread (waiting
 *   for a batch in progress), then runs every pending callback on the calling thread. The
 *   struct stays valid (adds keep failing) until mock__timer_free, which the server calls only
 *   after MHD_stop_daemon, when no worker can call mock__timer_add or mock__timer_run_due any
 *   more. A callback never runs twice: it is removed from its heap under the lock before it
 *   runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "mock_internal.h"

/* Under load the timer thread takes its due entries in batches at least this far apart (ns),
 * so a run of deadlines 0.1 ms apart (10,000 requests/s) is resumed 5 at a time: one wakeup of
 * the timer and of the worker for the batch instead of one each per entry. An entry fires at
 * most this much later than it would have; when the timer has been idle for COALESCE_NS it
 * fires on time. */
#define COALESCE_NS 500000u
#define LANES 16u      /* more workers than this share lanes (still correct) */
#define WORKER_BATCH 64u

struct entry {
    uint64_t deadline, seq;
    mock_timer_fn fn;
    void *arg;
};

struct lane {
    struct entry *heap;     /* guarded by mu */
    size_t n, cap;          /* guarded by mu */
    _Atomic uint64_t head;  /* written under mu: heap[0].deadline, UINT64_MAX when empty */
};

struct mock_timer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct lane lane[LANES];
    uint64_t seq;        /* guarded by mu */
    uint64_t sleep_until; /* guarded by mu: what the thread sleeps for (UINT64_MAX: no entry) */
    int closed, quit;    /* guarded by mu */
    int joined;          /* guarded by mu: the thread has been (or is being) joined */
    pthread_t th;
};

static _Atomic unsigned next_lane;
static _Thread_local unsigned my_lane;         /* lane + 1; 0 = not yet chosen */
static _Thread_local unsigned running_lane;    /* lane + 1 of the callback running; 0 = none */

/* The lane this thread's adds go to. */
static unsigned lane_here(void)
{
    if (running_lane)
        return running_lane - 1;
    if (!my_lane)
        my_lane = 1 + atomic_fetch_add_explicit(&next_lane, 1, memory_order_relaxed) % LANES;
    return my_lane - 1;
}

static int before(const struct entry *a, const struct entry *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void sift_up(struct entry *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&h[i], &h[p]))
            break;
        struct entry t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void sift_down(struct entry *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[l], &h[m]))
            m = l;
        if (r < n && before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        struct entry t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Caller holds mu. */
static void set_head(struct lane *l)
{
    atomic_store_explicit(&l->head, l->n ? l->heap[0].deadline : UINT64_MAX,
                          memory_order_relaxed);
}

/* Caller holds mu; l->n > 0. */
static struct entry pop(struct lane *l)
{
    struct entry e = l->heap[0];
    l->heap[0] = l->heap[--l->n];
    sift_down(l->heap, l->n, 0);
    set_head(l);
    return e;
}

/* The lane whose first entry comes first, or NULL when every lane is empty. Caller holds mu. */
static struct lane *first_lane(struct mock_timer *t)
{
    struct lane *best = NULL;
    for (unsigned i = 0; i < LANES; i++) {
        struct lane *l = &t->lane[i];
        if (l->n && (!best || before(&l->heap[0], &best->heap[0])))
            best = l;
    }
    return best;
}

struct due {
    struct entry e;
    unsigned lane;
};

static void *timer_main(void *arg)
{
    mock__server_thread = 1;
    struct mock_timer *t = arg;
    struct due batch[256];
    uint64_t last = 0; /* when the last whole batch was taken (0: none yet) */
    pthread_mutex_lock(&t->mu);
    while (!t->quit) {
        struct lane *l = first_lane(t);
        if (!l) {
            t->sleep_until = UINT64_MAX;
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        uint64_t now = mock__now_ns();
        uint64_t d = l->heap[0].deadline;
        if (last && d < last + COALESCE_NS)
            d = last + COALESCE_NS; /* busy: at most one batch per COALESCE_NS */
        if (d > now) {
            t->sleep_until = d;
            struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        t->sleep_until = 0; /* awake: adds need not signal */
        size_t k = 0;
        while (k < sizeof batch / sizeof batch[0] && (l = first_lane(t)) &&
               l->heap[0].deadline <= now) {
            batch[k].lane = (unsigned)(l - t->lane);
            batch[k++].e = pop(l);
        }
        if (k < sizeof batch / sizeof batch[0])
            last = now;
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < k; i++) {
            running_lane = batch[i].lane + 1;
            batch[i].e.fn(batch[i].e.arg);
        }
        running_lane = 0;
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int mock__timer_new(struct mock_timer **out)
{
    *out = NULL;
    struct mock_timer *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    for (unsigned i = 0; i < LANES; i++)
        atomic_init(&t->lane[i].head, UINT64_MAX);
    t->sleep_until = UINT64_MAX;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->th, NULL, timer_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int mock__timer_add(struct mock_timer *t, uint64_t deadline_ns, mock_timer_fn fn, void *arg)
{
    struct lane *l = &t->lane[lane_here()];
    pthread_mutex_lock(&t->mu);
    if (t->closed) {
        pthread_mutex_unlock(&t->mu);
        return -1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct entry *h = realloc(l->heap, cap * sizeof *h);
        if (!h) {
            pthread_mutex_unlock(&t->mu);
            return -1;
        }
        l->heap = h;
        l->cap = cap;
    }
    struct entry e = {deadline_ns, t->seq++, fn, arg};
    l->heap[l->n] = e;
    sift_up(l->heap, l->n);
    l->n++;
    set_head(l);
    /* Signal only when the thread sleeps past this deadline (it re-reads every lane when it
       wakes, and does not sleep while it is taking a batch). */
    int wake = deadline_ns < t->sleep_until;
    if (wake)
        t->sleep_until = deadline_ns;
    pthread_mutex_unlock(&t->mu);
    if (wake)
        pthread_cond_signal(&t->cv);
    return 0;
}

void mock__timer_run_due(struct mock_timer *t)
{
    unsigned li = lane_here();
    struct lane *l = &t->lane[li];
    uint64_t head = atomic_load_explicit(&l->head, memory_order_relaxed);
    if (head == UINT64_MAX)
        return;
    uint64_t now = mock__now_ns();
    if (head > now)
        return;
    struct entry batch[WORKER_BATCH];
    size_t k = 0;
    pthread_mutex_lock(&t->mu);
    while (!t->closed && k < WORKER_BATCH && l->n && l->heap[0].deadline <= now)
        batch[k++] = pop(l);
    pthread_mutex_unlock(&t->mu);
    unsigned was = running_lane;
    running_lane = li + 1;
    for (size_t i = 0; i < k; i++)
        batch[i].fn(batch[i].arg);
    running_lane = was;
}

void mock__timer_flush_and_close(struct mock_timer *t)
{
    pthread_mutex_lock(&t->mu);
    t->closed = 1;
    t->quit = 1;
    int join = !t->joined;
    t->joined = 1;
    pthread_mutex_unlock(&t->mu);
    if (join) {
        /* The thread may be running a batch; joining waits for it. A worker may still be
           running entries it took before `closed` was set; it finishes them before
           MHD_stop_daemon returns. */
        pthread_cond_signal(&t->cv);
        pthread_join(t->th, NULL);
    }
    pthread_mutex_lock(&t->mu);
    struct lane *l;
    while ((l = first_lane(t))) {
        struct entry e = pop(l);
        pthread_mutex_unlock(&t->mu);
        e.fn(e.arg);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

size_t mock__timer_pending(struct mock_timer *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = 0;
    for (unsigned i = 0; i < LANES; i++)
        n += t->lane[i].n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void mock__timer_free(struct mock_timer *t)
{
    if (!t)
        return;
    mock__timer_flush_and_close(t); /* no-op when already done */
    for (unsigned i = 0; i < LANES; i++)
        free(t->lane[i].heap);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
