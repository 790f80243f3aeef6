/*
 * cache_brlock.c - the cache index's reader-scalable read-write lock (structs in
 * cache_internal.h). It knows nothing of the index it protects.
 *
 * A reader-scalable read-write lock ("big-reader" lock). Lookups must scale across cores, and a
 * pthread rwlock makes every reader write the same cache line. Here each reader increments its
 * own padded slot, then checks the writer flag; a writer takes `wmu`, raises the flag and waits
 * for every slot to drain. Both sides use sequentially consistent atomics, so at least one of a
 * racing reader and writer sees the other (Dekker). A reader that meets a raised flag backs out
 * and queues on `wmu` behind the writer, so writers are preferred and cannot starve. Critical
 * sections on either side are short and never block on I/O; the writer's wait yields the CPU.
 */
#include <pthread.h>
#include <sched.h>

#include "cache_internal.h"

static _Atomic unsigned g_br_seq;
static _Thread_local int tls_br_slot = -1;

int cx__br_init(struct brlock *l) {
    for (int i = 0; i < BR_SLOTS; i++) atomic_init(&l->slot[i].n, 0);
    atomic_init(&l->writer, 0);
    return pthread_mutex_init(&l->wmu, NULL) == 0 ? 0 : CX_ENOMEM;
}

void cx__br_destroy(struct brlock *l) { pthread_mutex_destroy(&l->wmu); }

struct br_slot *cx__br_rdlock(struct brlock *l) {
    if (tls_br_slot < 0)
        tls_br_slot = (int)(atomic_fetch_add_explicit(&g_br_seq, 1, memory_order_relaxed) %
                            BR_SLOTS);
    struct br_slot *s = &l->slot[tls_br_slot];
    for (;;) {
        atomic_fetch_add(&s->n, 1);
        if (!atomic_load(&l->writer)) return s;
        atomic_fetch_sub(&s->n, 1);
        pthread_mutex_lock(&l->wmu); /* wait for the writer to finish */
        pthread_mutex_unlock(&l->wmu);
    }
}

void cx__br_rdunlock(struct br_slot *s) {
    atomic_fetch_sub_explicit(&s->n, 1, memory_order_release);
}

void cx__br_wrlock(struct brlock *l) {
    pthread_mutex_lock(&l->wmu);
    atomic_store(&l->writer, 1);
    for (int i = 0; i < BR_SLOTS; i++)
        while (atomic_load(&l->slot[i].n) != 0) sched_yield();
}

void cx__br_wrunlock(struct brlock *l) {
    atomic_store_explicit(&l->writer, 0, memory_order_release);
    pthread_mutex_unlock(&l->wmu);
}
