/*
 * cx/clock.h - the monotonic clock and deadlines.
 *
 * Every timeout in cx is a deadline: an absolute point on CLOCK_MONOTONIC in nanoseconds.
 * CX_DEADLINE_NONE means "wait forever"; 0 (any value in the past) means "do not wait".
 */
#ifndef CX_CLOCK_H
#define CX_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CX_NSEC_PER_SEC 1000000000ULL
#define CX_NSEC_PER_MSEC 1000000ULL
#define CX_NSEC_PER_USEC 1000ULL
#define CX_DEADLINE_NONE UINT64_MAX

/* Nanoseconds on CLOCK_MONOTONIC. Threads: any thread. */
CX_API uint64_t cx_now_ns(void);
/* Seconds (as a double) between two cx_now_ns() readings. Threads: any thread. */
CX_API double cx_elapsed_s(uint64_t start_ns, uint64_t end_ns);
/* A deadline `ns` from now; CX_DEADLINE_NONE stays NONE (saturates instead of wrapping).
 * Threads: any thread. */
CX_API uint64_t cx_deadline_after_ns(uint64_t ns);
/* A deadline `ms` milliseconds from now; a negative ms means no deadline. Threads: any thread. */
CX_API uint64_t cx_deadline_after_ms(int64_t ms);
/* Nanoseconds left until `deadline`, 0 when it has passed, UINT64_MAX for NONE.
 * Threads: any thread. */
CX_API uint64_t cx_deadline_remaining_ns(uint64_t deadline);
/* 1 when `deadline` has passed. Threads: any thread. */
CX_API int cx_deadline_expired(uint64_t deadline);
/* The earlier of two deadlines. Threads: any thread. */
CX_API uint64_t cx_deadline_min(uint64_t a, uint64_t b);
/* Converts a monotonic deadline to a timespec for pthread_cond_timedwait on a condition
 * variable whose clock is CLOCK_MONOTONIC. Threads: any thread. */
CX_API struct timespec cx_deadline_to_timespec(uint64_t deadline);
/* Sleeps until `deadline` (returns at once when it has passed). Restarts on EINTR.
 * Threads: any thread. */
CX_API void cx_sleep_until(uint64_t deadline);
/* Sleeps `ns` nanoseconds. Threads: any thread. */
CX_API void cx_sleep_ns(uint64_t ns);

#ifdef __cplusplus
}
#endif
#endif /* CX_CLOCK_H */
