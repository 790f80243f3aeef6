/*
 * cx/limiter.h - a thread-safe token-bucket rate limiter (the model of golang.org/x/time/rate).
 *
 * The bucket holds at most `burst` tokens and starts full; one token is added every 1/rate
 * seconds (rate tokens per second). Callers take n tokens per action: one per request for a
 * requests-per-second limiter, an estimated token count for a tokens-per-minute limiter
 * (rate = tpm / 60, burst = tpm), corrected afterwards with cx_limiter_adjust().
 *
 * Reservation model. Taking tokens never fails for lack of tokens: the taker subtracts n from
 * the balance at once, and if the balance went negative it learns how long to wait until the
 * refill brings it back to zero. So the balance may be negative, and later takers queue behind
 * the debt: each one's grant time is decided when it asks, which gives first-come, first-served
 * order by the time of the reservation (FIFO-ish: threads that ask at the same instant race
 * for the lock). A full bucket does not fill further, so idle time earns nothing beyond burst.
 * Over any window that starts with the bucket full (at creation, say), the grants never exceed
 * burst + rate * elapsed + refunds (cx_limiter_adjust with delta < 0); a charge (delta > 0)
 * counts like a grant against later takers. Takers that keep the bucket busy get exactly that
 * to within one token (tested). A pause takes its length out of `elapsed`.
 *
 * Pauses. cx_limiter_pause_until(l, P) (a server's Retry-After) stops the limiter's clock from
 * now until P: no token is granted before P, tokens do not accrue during the pause, and every
 * grant not yet made (waiters asleep inside cx_limiter_acquire / _acquire_until, and every
 * later caller) moves later by the length of the pause, and to no earlier than P, keeping its
 * order and spacing, so the waiters do not all rush out at P. (A cx_limiter_reserve caller
 * sleeps on its own and is not reached.) Pauses do not shorten: a pause ending before the
 * current one is ignored; one ending later extends it.
 *
 * Numbers: rate and burst are doubles and n may be fractional. Internally the limiter keeps
 * one "theoretical arrival time" (GCRA: the time at which the bucket would be full again) in
 * nanoseconds relative to its creation, and each operation moves it by n/rate seconds, so no
 * refill is accumulated step by step and nothing drifts.
 *
 * Deadlines are absolute CLOCK_MONOTONIC nanoseconds (cx/clock.h); CX_DEADLINE_NONE = never.
 */
#ifndef CX_LIMITER_H
#define CX_LIMITER_H

#include <stdint.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_limiter;

/*
 * Creates a limiter with `rate` tokens per second (> 0, finite) and a capacity of `burst`
 * tokens (>= 1, finite); it starts full. Also fails with CX_EINVAL when burst/rate is so large
 * the arithmetic would overflow (a full refill longer than ~30 years).
 * out: returned, free with cx_limiter_free(); left untouched on failure.
 * Returns 0, CX_EINVAL (ei names the bad value, e.g. "rate must be > 0 and finite, got nan"),
 * CX_ENOMEM.
 * Threads: any thread.
 */
CX_API int cx_limiter_new(double rate, double burst, struct cx_limiter **out,
                          struct cx_errinfo *ei);

/* Frees l (NULL is fine). No thread may be inside any call on l.
 * Threads: any thread, once every other user of l is done. */
CX_API void cx_limiter_free(struct cx_limiter *l);

/*
 * Takes n tokens, sleeping (without holding any lock) until they are granted, including past
 * any pause. n must be >= 0, finite and <= burst, else CX_EINVAL and nothing is taken (a
 * caller with an estimate above burst takes burst and charges the rest with
 * cx_limiter_adjust). n == 0 takes nothing but still waits its turn: until the balance is >= 0
 * and no pause holds. There is no cancellation: use cx_limiter_acquire_until to bound the wait.
 * Returns 0 once granted.
 * Threads: any thread; blocks.
 */
CX_API int cx_limiter_acquire(struct cx_limiter *l, double n);

/*
 * Like cx_limiter_acquire, but gives up at `deadline`. If the grant time known at the call is
 * after the deadline, returns CX_ETIMEDOUT at once and takes nothing. If a pause arriving while
 * it waits moves the grant past the deadline, it returns CX_ETIMEDOUT no later than the deadline
 * and gives its n tokens back (as cx_limiter_adjust(l, -n) would). A deadline in the past means
 * "only if it can be granted now" (same as cx_limiter_try_acquire).
 * Returns 0, CX_ETIMEDOUT, CX_EINVAL (bad n).
 * Threads: any thread; blocks until at most the deadline.
 */
CX_API int cx_limiter_acquire_until(struct cx_limiter *l, double n, uint64_t deadline);

/*
 * Takes n tokens only if they can be granted right now (balance >= n and no pause); never
 * waits. Returns 0, CX_EAGAIN (nothing taken), CX_EINVAL (bad n).
 * Threads: any thread; never blocks beyond the limiter's short internal lock.
 */
CX_API int cx_limiter_try_acquire(struct cx_limiter *l, double n);

/*
 * Takes n tokens now and writes to *wait_ns how long the caller must wait before acting on them
 * (0 when they are available now). Never sleeps: the caller waits by its own means. The wait
 * includes any pause in force at the call; a pause that begins later does not reach this
 * reservation (use cx_limiter_acquire for that). To cancel, give the tokens back with
 * cx_limiter_adjust(l, -n). Returns 0 or CX_EINVAL (bad n, or wait_ns NULL; nothing taken).
 * Threads: any thread; never blocks beyond the limiter's short internal lock.
 */
CX_API int cx_limiter_reserve(struct cx_limiter *l, double n, uint64_t *wait_ns);

/*
 * Corrects the balance after the fact: delta > 0 charges more tokens (the balance may go
 * negative, delaying later takers), delta < 0 refunds tokens (the balance never rises above
 * burst; a refund beyond that is lost, as idle refill would be). Reservations already made keep
 * their grant times. Returns 0, or CX_EINVAL when delta is NaN or infinite (nothing changes).
 * Threads: any thread; never blocks beyond the limiter's short internal lock.
 */
CX_API int cx_limiter_adjust(struct cx_limiter *l, double delta);

/*
 * Pauses the limiter until `deadline` (see "Pauses" above): every waiter and every later caller
 * gets no token before it. A deadline at or before the end of the current pause (or in the
 * past) changes nothing. CX_DEADLINE_NONE pauses forever (there is no un-pause).
 * Threads: any thread; never blocks beyond the limiter's short internal lock.
 */
CX_API void cx_limiter_pause_until(struct cx_limiter *l, uint64_t deadline);

/* The deadline the current pause ends at, or 0 when the limiter is not paused.
 * Threads: any thread. */
CX_API uint64_t cx_limiter_paused_until(struct cx_limiter *l);

/* A snapshot of the balance now: at most burst, negative while takers owe tokens. During a
 * pause it is the balance the pause froze. Threads: any thread. */
CX_API double cx_limiter_tokens(struct cx_limiter *l);

/* The rate and burst the limiter was created with. Threads: any thread. */
CX_API double cx_limiter_rate(const struct cx_limiter *l);
CX_API double cx_limiter_burst(const struct cx_limiter *l);

#ifdef __cplusplus
}
#endif
#endif /* CX_LIMITER_H */
