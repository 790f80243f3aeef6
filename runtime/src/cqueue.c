/*
 * cqueue.c - the executor's completion queue: a lock-free intrusive MPSC queue (Vyukov) with
 * a consumer wake-up (the mutex-based queue it is measured against is in bench/).
 * It does not know about tasks or batches; nodes are embedded by the caller.
 *
 * Wake-up protocol (no lost wake-ups): the consumer, holding mu, stores waiting=1 and then
 * re-checks the queue; a producer publishes its node (seq_cst store of prev->next) and then
 * loads waiting. In the single total order of seq_cst operations one of the two sees the
 * other: either the consumer's re-check finds the node, or the producer sees waiting==1 and
 * signals under mu, which it can only take once the consumer is inside pthread_cond_wait.
 */
#include "cqueue.h"

#include <sched.h>
#include <stdlib.h>

#include "cx/clock.h"

int cx__cqueue_init(struct cx__cqueue *q) {
    atomic_store(&q->stub.next, NULL);
    atomic_store(&q->head, &q->stub);
    q->tail = &q->stub;
    atomic_store(&q->waiting, 0);
    if (cx__mutex_init(&q->mu) < 0) return CX_ENOMEM;
    if (cx__cond_init(&q->cond) < 0) {
        cx__mutex_destroy(&q->mu);
        return CX_ENOMEM;
    }
    return 0;
}

void cx__cqueue_destroy(struct cx__cqueue *q) {
    pthread_cond_destroy(&q->cond);
    cx__mutex_destroy(&q->mu);
}

/* Links n at the head; returns nothing. Used for the stub too (by the consumer). */
static void link_node(struct cx__cqueue *q, struct cx__cq_node *n) {
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    struct cx__cq_node *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    /* seq_cst: ordered before the load of `waiting` in cx__cqueue_push (see the top). */
    atomic_store_explicit(&prev->next, n, memory_order_seq_cst);
}

void cx__cqueue_push(struct cx__cqueue *q, struct cx__cq_node *n) {
    link_node(q, n);
    if (atomic_load_explicit(&q->waiting, memory_order_seq_cst)) {
        cx__mutex_lock(&q->mu);
        pthread_cond_signal(&q->cond);
        cx__mutex_unlock(&q->mu);
    }
}

/* *busy is set when the queue is not empty but its oldest node is not linked yet. */
static struct cx__cq_node *pop_inner(struct cx__cqueue *q, int *busy) {
    *busy = 0;
    struct cx__cq_node *tail = q->tail;
    struct cx__cq_node *next = atomic_load_explicit(&tail->next, memory_order_seq_cst);
    if (tail == &q->stub) {
        if (next == NULL) return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_seq_cst);
    }
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    struct cx__cq_node *head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail != head) { /* a producer is between its exchange and its link */
        *busy = 1;
        return NULL;
    }
    link_node(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_seq_cst);
    if (next != NULL) {
        q->tail = next;
        return tail;
    }
    *busy = 1; /* someone pushed after the stub */
    return NULL;
}

struct cx__cq_node *cx__cqueue_trypop(struct cx__cqueue *q) {
    int busy;
    return pop_inner(q, &busy);
}

struct cx__cq_node *cx__cqueue_pop(struct cx__cqueue *q, uint64_t deadline) {
    int spins = 0;
    for (;;) {
        int busy;
        struct cx__cq_node *n = pop_inner(q, &busy);
        if (n != NULL) return n;
        /* A producer preempted half-way through its push: yield to it a few times rather
         * than sleep, which would make every other producer take mu to wake us. */
        if (busy && spins++ < 64) {
            sched_yield();
            continue;
        }
        spins = 0;
        int rc = 0;
        cx__mutex_lock(&q->mu);
        atomic_store_explicit(&q->waiting, 1, memory_order_seq_cst);
        n = cx__cqueue_trypop(q);
        if (n == NULL) rc = cx__cond_wait(&q->cond, &q->mu, deadline);
        atomic_store_explicit(&q->waiting, 0, memory_order_relaxed);
        cx__mutex_unlock(&q->mu);
        if (n != NULL) return n;
        if (rc == CX_ETIMEDOUT) return cx__cqueue_trypop(q);
    }
}
