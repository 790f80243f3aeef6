/*
 * cqueue_bench.h - the completion-queue benchmark (bench/micro_executor.cc) and the queue it
 * compares the executor's lock-free one with: cx__lqueue, the plain mutex + condition variable
 * queue, kept so the choice of the lock-free queue is measured, not assumed. Not part of libcx.
 */
#ifndef CX_CQUEUE_BENCH_H
#define CX_CQUEUE_BENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * For bench/micro_executor.cc (C++ cannot include cqueue.h's C11 atomics): `producers`
 * threads each push `per_producer` nodes while this thread pops them all; returns the elapsed
 * nanoseconds, or 0 when a thread or allocation failed or a producer's nodes came out of the
 * order it pushed them (each queue is checked while it is measured). use_lock picks cx__lqueue.
 */
uint64_t cx__cqueue_bench(int producers, uint64_t per_producer, int use_lock);

#ifdef __cplusplus
}
#endif
#endif /* CX_CQUEUE_BENCH_H */
