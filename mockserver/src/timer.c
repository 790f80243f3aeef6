/*
 * timer.c - the mock server's one timer thread: a min-heap of (deadline, callback) entries
 * under a mutex, slept on with a monotonic condition variable. The server puts a suspended
 * connection here and the callback resumes it; nothing else runs on this thread.
 *
 * DESIGN
 * - Threads: callers (libmicrohttpd's worker threads, the stop path) add entries; the timer
 *   thread pops every due entry, releases the lock and runs the callbacks in deadline order
 *   (ties in insertion order), so a callback may add entries again without deadlock.
 * - Coalescing: after taking a batch the timer waits COALESCE_NS before taking the next, so
 *   under load due entries are resumed in batches (one wakeup of this thread per batch, and a
 *   libmicrohttpd worker sees several resumed connections in one pass of its event loop, one
 *   eventfd wakeup and one scan of its suspended list for them all) instead of one at a time.
 *   It adds at most COALESCE_NS to a deadline, and nothing when the timer was idle.
 * - Shutdown: mock__timer_flush_and_close marks the timer closed (later adds fail, and the
 *   caller runs its callback itself), joins the thread (waiting for a batch in progress), then
 *   runs every pending callback on the calling thread. The struct stays valid (adds keep
 *   failing) until mock__timer_free, which the server calls only after MHD_stop_daemon, when
 *   no worker can call mock__timer_add any more. A callback never runs twice: it is removed
 *   from the heap under the lock before it runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "mock_internal.h"

/* Under load the timer takes its due entries in batches at least this far apart (ns), so a
 * run of deadlines 0.1 ms apart (10,000 requests/s) is resumed 5 at a time: one wakeup of the
 * timer and of the worker for the batch instead of one each per entry. An entry fires at most
 * this much later than it would have; when the timer has been idle for COALESCE_NS it fires on
 * time. */
#define COALESCE_NS 500000u

struct entry {
    uint64_t deadline, seq;
    mock_timer_fn fn;
    void *arg;
};

struct mock_timer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry *heap; /* guarded by mu */
    size_t n, cap;      /* guarded by mu */
    uint64_t seq;       /* guarded by mu */
    int closed, quit;   /* guarded by mu */
    int joined;         /* guarded by mu: the thread has been (or is being) joined */
    pthread_t th;
};

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

static struct entry pop(struct mock_timer *t)
{
    struct entry e = t->heap[0];
    t->heap[0] = t->heap[--t->n];
    sift_down(t->heap, t->n, 0);
    return e;
}

static void *timer_main(void *arg)
{
    mock__server_thread = 1;
    struct mock_timer *t = arg;
    struct entry batch[256];
    uint64_t last = 0; /* when the last whole batch was taken (0: none yet) */
    pthread_mutex_lock(&t->mu);
    while (!t->quit) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        uint64_t now = mock__now_ns();
        uint64_t d = t->heap[0].deadline;
        if (last && d < last + COALESCE_NS)
            d = last + COALESCE_NS; /* busy: at most one batch per COALESCE_NS */
        if (d > now) {
            struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        size_t k = 0;
        while (k < sizeof batch / sizeof batch[0] && t->n && t->heap[0].deadline <= now)
            batch[k++] = pop(t);
        if (k < sizeof batch / sizeof batch[0])
            last = now;
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < k; i++)
            batch[i].fn(batch[i].arg);
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
    pthread_mutex_lock(&t->mu);
    if (t->closed) {
        pthread_mutex_unlock(&t->mu);
        return -1;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        struct entry *h = realloc(t->heap, cap * sizeof *h);
        if (!h) {
            pthread_mutex_unlock(&t->mu);
            return -1;
        }
        t->heap = h;
        t->cap = cap;
    }
    struct entry e = {deadline_ns, t->seq++, fn, arg};
    t->heap[t->n] = e;
    sift_up(t->heap, t->n);
    t->n++;
    int wake = t->heap[0].seq == e.seq;
    pthread_mutex_unlock(&t->mu);
    if (wake)
        pthread_cond_signal(&t->cv);
    return 0;
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
        /* The thread may be running a batch; joining waits for it, so once this returns no
           callback is running anywhere. */
        pthread_cond_signal(&t->cv);
        pthread_join(t->th, NULL);
    }
    pthread_mutex_lock(&t->mu);
    while (t->n) {
        struct entry e = pop(t);
        pthread_mutex_unlock(&t->mu);
        e.fn(e.arg);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

size_t mock__timer_pending(struct mock_timer *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void mock__timer_free(struct mock_timer *t)
{
    if (!t)
        return;
    mock__timer_flush_and_close(t); /* no-op when already done */
    free(t->heap);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
