/*
 * cqueue.h - completion queues (internal): many producers (the workers), one consumer (the
 * thread waiting for a batch's results).
 *
 * cx__cqueue is Dmitry Vyukov's intrusive MPSC queue (one atomic exchange per push, no lock)
 * with a wake-up for a blocked consumer: the consumer announces itself in `waiting` under `mu`
 * before it sleeps, and a producer takes `mu` only when it sees that flag, so the common path
 * (consumer busy or polling) never touches a lock.
 *
 * The plain mutex + condition variable queue it is measured against lives in
 * bench/cqueue_bench.c, with the benchmark driver.
 *
 * Nodes are embedded in the caller's structures; the queues never allocate after init.
 */
#ifndef CX_CQUEUE_H
#define CX_CQUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cx_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx__cq_node {
    _Atomic(struct cx__cq_node *) next;
};

struct cx__cqueue {
    _Atomic(struct cx__cq_node *) head; /* producers exchange here */
    char pad[64 - sizeof(void *)];      /* keep producers' and consumer's lines apart */
    struct cx__cq_node *tail;           /* consumer only */
    struct cx__cq_node stub;
    _Atomic int waiting;                /* 1 while the consumer sleeps or is about to */
    struct cx__mutex mu;                /* only for the sleep/wake hand-off */
    pthread_cond_t cond;
};

/* 0 or CX_ENOMEM. */
int cx__cqueue_init(struct cx__cqueue *q);
void cx__cqueue_destroy(struct cx__cqueue *q);
/* Any thread. Lock-free unless the consumer is asleep (then one lock to wake it). */
void cx__cqueue_push(struct cx__cqueue *q, struct cx__cq_node *n);
/* Consumer only: the oldest node, or NULL when empty (or a producer is half-way through a
 * push; a blocking pop then gets it as soon as that push finishes). */
struct cx__cq_node *cx__cqueue_trypop(struct cx__cqueue *q);
/* Consumer only: waits until a node arrives or `deadline` passes (then NULL). */
struct cx__cq_node *cx__cqueue_pop(struct cx__cqueue *q, uint64_t deadline);

#ifdef __cplusplus
}
#endif
#endif /* CX_CQUEUE_H */
