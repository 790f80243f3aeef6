/*
 * cx/gil.h - an emulated global interpreter lock, for the harness's "gil" execution mode.
 *
 * C has no GIL; the seed's "Python with GIL" column is reproduced by making every CPU section
 * hold one global lock. It behaves like CPython's (Python/ceval_gil.c, 3.2+ "new GIL"):
 *   - a thread holds the GIL while it runs CPU code and releases it around blocking I/O
 *     (cx_gil_io_begin / cx_gil_io_end);
 *   - a waiter waits at most one switch interval (default 5 ms, sys.getswitchinterval()); if no
 *     switch happened meanwhile it sets a drop request;
 *   - the holder sees the request at its next checkpoint (CPython's eval breaker), releases the
 *     GIL and waits until another thread has taken it ("forced switching"), then queues for it
 *     again. That is what keeps one long CPU section from starving everyone else.
 *
 * Thread-local state: each thread remembers which GIL it holds (at most one), so code deep in a
 * call stack (the HTTP client, the limiter, the DB pool) can release it around I/O without being
 * handed the lock: cx_gil_io_begin() is a no-op on threads that hold no GIL (free mode, serial
 * mode, the caller's own threads).
 *
 * The GIL is not recursive: a thread that holds it must not acquire it again.
 */
#ifndef CX_GIL_H
#define CX_GIL_H

#include <stdint.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CPython's default switch interval, 5 ms. */
#define CX_GIL_DEFAULT_INTERVAL_NS 5000000ULL

struct cx_gil;

/*
 * Creates a GIL. switch_interval_ns: how long a waiter waits before asking the holder to drop
 * it; 0 means CX_GIL_DEFAULT_INTERVAL_NS. *out is returned: free it with cx_gil_free.
 * Returns 0, CX_EINVAL (out is NULL) or CX_ENOMEM.
 * Threads: any thread.
 */
CX_API int cx_gil_new(uint64_t switch_interval_ns, struct cx_gil **out);

/* Frees a GIL nobody holds or waits for. Accepts NULL. Threads: any thread, once. */
CX_API void cx_gil_free(struct cx_gil *g);

/*
 * Takes the GIL for the calling thread (blocks; no deadline, like CPython's take_gil) and
 * records it as this thread's GIL. The thread must not already hold a GIL.
 * Threads: any thread.
 */
CX_API void cx_gil_acquire(struct cx_gil *g);

/*
 * Releases the GIL the calling thread holds (it must hold g). If another thread asked for a
 * switch, waits until some thread has taken it (forced switching) before returning.
 * Threads: the holder.
 */
CX_API void cx_gil_release(struct cx_gil *g);

/*
 * Brackets blocking code (an HTTP call, a sleep standing for I/O, a wait on the DB pool or the
 * limiter): io_begin releases the GIL this thread holds, io_end takes it back. Pairs nest (only
 * the outermost pair releases and re-takes). Both are no-ops on a thread that holds no GIL.
 * Threads: any thread (acts on the calling thread's own GIL only).
 */
CX_API void cx_gil_io_begin(void);
CX_API void cx_gil_io_end(void);

/*
 * A point inside a long CPU section where the holder may be preempted: if a waiter has asked
 * for a switch (it waited at least one switch interval), releases the GIL, waits until another
 * thread took it, and re-acquires it. Cheap when nobody waits (one relaxed atomic load).
 * No-op on a thread that holds no GIL or is inside cx_gil_io_begin/end.
 * Threads: any thread.
 */
CX_API void cx_gil_checkpoint(void);

/*
 * Burns `ns` nanoseconds of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID, so time spent
 * descheduled does not count), calling cx_gil_checkpoint() about every 50 us. Stands for the
 * Python-level CPU cost (parsing, validation) in tests and benchmarks.
 * Threads: any thread.
 */
CX_API void cx_cpu_work_ns(uint64_t ns);

/* 1 when the calling thread currently holds a GIL (not released for I/O), else 0.
 * Threads: any thread. */
CX_API int cx_gil_held(void);

/*
 * Instrumentation. acquisitions: times the GIL was taken (including re-takes after I/O and
 * after forced switches); forced_switches: times a holder dropped it at a checkpoint because a
 * waiter asked; drop_requests: times a waiter, after a whole interval without a switch, asked
 * the holder to drop it; overlaps: times a thread entered its CPU section while another was inside its
 * own, as seen by an in-section counter independent of the lock itself (must stay 0).
 * Threads: any thread (a snapshot; counters are read one by one).
 */
struct cx_gil_stats {
    uint64_t acquisitions;
    uint64_t forced_switches;
    uint64_t drop_requests;
    uint64_t overlaps;
};
CX_API void cx_gil_stats(struct cx_gil *g, struct cx_gil_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CX_GIL_H */
