/*
 * cqueue_bench.c - the mutex-based comparison queue and the completion-queue benchmark driver
 * (contract in cqueue_bench.h), moved out of libcx: only bench/micro_executor.cc uses them.
 */
#include "cqueue_bench.h"

#include <pthread.h>

#include "cqueue.h"
#include "cx/clock.h"
#include "cx_internal.h"

struct cx__lqueue {
    struct cx__mutex mu;
    pthread_cond_t cond;
    struct cx__cq_node *first, *last; /* guarded by mu */
    int waiting;                      /* guarded by mu */
};

/* ---- the mutex-based queue ---- */

static int cx__lqueue_init(struct cx__lqueue *q) {
    q->first = q->last = NULL;
    q->waiting = 0;
    if (cx__mutex_init(&q->mu) < 0) return CX_ENOMEM;
    if (cx__cond_init(&q->cond) < 0) {
        cx__mutex_destroy(&q->mu);
        return CX_ENOMEM;
    }
    return 0;
}

static void cx__lqueue_destroy(struct cx__lqueue *q) {
    pthread_cond_destroy(&q->cond);
    cx__mutex_destroy(&q->mu);
}

static void cx__lqueue_push(struct cx__lqueue *q, struct cx__cq_node *n) {
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    cx__mutex_lock(&q->mu);
    if (q->last != NULL)
        atomic_store_explicit(&q->last->next, n, memory_order_relaxed);
    else
        q->first = n;
    q->last = n;
    if (q->waiting) pthread_cond_signal(&q->cond);
    cx__mutex_unlock(&q->mu);
}

static struct cx__cq_node *cx__lqueue_pop(struct cx__lqueue *q, uint64_t deadline) {
    cx__mutex_lock(&q->mu);
    while (q->first == NULL) {
        q->waiting++;
        int rc = cx__cond_wait(&q->cond, &q->mu, deadline);
        q->waiting--;
        if (rc == CX_ETIMEDOUT && q->first == NULL) {
            cx__mutex_unlock(&q->mu);
            return NULL;
        }
    }
    struct cx__cq_node *n = q->first;
    q->first = atomic_load_explicit(&n->next, memory_order_relaxed);
    if (q->first == NULL) q->last = NULL;
    cx__mutex_unlock(&q->mu);
    return n;
}

/* ---- benchmark driver ---- */

/* A benchmark node: which producer pushed it and its place in that producer's sequence, so
 * the consumer checks FIFO order per producer while it measures. */
struct bench_node {
    struct cx__cq_node node; /* first: a popped node is its bench_node */
    int producer;
    uint64_t seq;
};

struct bench_prod {
    void *q;
    int use_lock;
    struct bench_node *nodes;
    uint64_t count;
    pthread_t th;
};

static void *bench_producer(void *p) {
    struct bench_prod *bp = p;
    for (uint64_t i = 0; i < bp->count; i++) {
        if (bp->use_lock)
            cx__lqueue_push(bp->q, &bp->nodes[i].node);
        else
            cx__cqueue_push(bp->q, &bp->nodes[i].node);
    }
    return NULL;
}

uint64_t cx__cqueue_bench(int producers, uint64_t per_producer, int use_lock) {
    if (producers < 1) return 0;
    struct cx__cqueue cq;
    struct cx__lqueue lq;
    void *q = use_lock ? (void *)&lq : (void *)&cq;
    if ((use_lock ? cx__lqueue_init(&lq) : cx__cqueue_init(&cq)) < 0) return 0;
    struct bench_prod *bp = cx__calloc((size_t)producers, sizeof(*bp));
    struct bench_node *nodes = cx__calloc((size_t)(producers * per_producer), sizeof(*nodes));
    uint64_t *next_seq = cx__calloc((size_t)producers, sizeof(*next_seq));
    uint64_t elapsed = 0;
    int started = 0, in_order = 1;
    if (bp == NULL || nodes == NULL || next_seq == NULL) goto out;
    for (int p = 0; p < producers; p++)
        for (uint64_t i = 0; i < per_producer; i++)
            nodes[(uint64_t)p * per_producer + i] = (struct bench_node){.producer = p, .seq = i};
    uint64_t t0 = cx_now_ns();
    for (; started < producers; started++) {
        bp[started] = (struct bench_prod){q, use_lock, nodes + (uint64_t)started * per_producer,
                                          per_producer, 0};
        if (pthread_create(&bp[started].th, NULL, bench_producer, &bp[started]) != 0) break;
    }
    uint64_t want = (uint64_t)started * per_producer;
    for (uint64_t got = 0; got < want; got++) {
        struct cx__cq_node *n = use_lock ? cx__lqueue_pop(&lq, CX_DEADLINE_NONE)
                                         : cx__cqueue_pop(&cq, CX_DEADLINE_NONE);
        CX_ASSERT(n != NULL);
        const struct bench_node *bn = (const struct bench_node *)n;
        if (bn->seq != next_seq[bn->producer]) in_order = 0;
        next_seq[bn->producer] = bn->seq + 1;
    }
    elapsed = cx_now_ns() - t0;
    for (int i = 0; i < started; i++) pthread_join(bp[i].th, NULL);
    if (started < producers || !in_order) elapsed = 0;
out:
    cx__free(next_seq);
    cx__free(nodes);
    cx__free(bp);
    if (use_lock)
        cx__lqueue_destroy(&lq);
    else
        cx__cqueue_destroy(&cq);
    return elapsed;
}
