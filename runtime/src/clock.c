/*
 * clock.c - CLOCK_MONOTONIC readings and deadline arithmetic. Deadlines saturate rather than
 * wrap, so "no deadline" survives any addition.
 */
#include <errno.h>
#include <time.h>

#include "cx/clock.h"

uint64_t cx_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

double cx_elapsed_s(uint64_t start_ns, uint64_t end_ns) {
    return end_ns >= start_ns ? (double)(end_ns - start_ns) / 1e9 : 0.0;
}

uint64_t cx_deadline_after_ns(uint64_t ns) {
    if (ns == CX_DEADLINE_NONE) return CX_DEADLINE_NONE;
    uint64_t now = cx_now_ns();
    return ns > CX_DEADLINE_NONE - 1 - now ? CX_DEADLINE_NONE : now + ns;
}

uint64_t cx_deadline_after_ms(int64_t ms) {
    if (ms < 0) return CX_DEADLINE_NONE;
    if ((uint64_t)ms > (CX_DEADLINE_NONE - 1) / CX_NSEC_PER_MSEC) return CX_DEADLINE_NONE;
    return cx_deadline_after_ns((uint64_t)ms * CX_NSEC_PER_MSEC);
}

uint64_t cx_deadline_remaining_ns(uint64_t deadline) {
    if (deadline == CX_DEADLINE_NONE) return UINT64_MAX;
    uint64_t now = cx_now_ns();
    return deadline > now ? deadline - now : 0;
}

int cx_deadline_expired(uint64_t deadline) {
    return deadline != CX_DEADLINE_NONE && cx_now_ns() >= deadline;
}

uint64_t cx_deadline_min(uint64_t a, uint64_t b) { return a < b ? a : b; }

struct timespec cx_deadline_to_timespec(uint64_t deadline) {
    struct timespec ts;
    /* Far-future deadlines are clamped to a year from now so time_t cannot overflow. */
    uint64_t cap = cx_now_ns() + 365ULL * 24 * 3600 * CX_NSEC_PER_SEC;
    if (deadline > cap) deadline = cap;
    ts.tv_sec = (time_t)(deadline / CX_NSEC_PER_SEC);
    ts.tv_nsec = (long)(deadline % CX_NSEC_PER_SEC);
    return ts;
}

void cx_sleep_until(uint64_t deadline) {
    if (deadline == CX_DEADLINE_NONE) deadline = cx_now_ns() + 365ULL * 24 * 3600 * CX_NSEC_PER_SEC;
    struct timespec ts = {(time_t)(deadline / CX_NSEC_PER_SEC), (long)(deadline % CX_NSEC_PER_SEC)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

void cx_sleep_ns(uint64_t ns) { cx_sleep_until(cx_deadline_after_ns(ns)); }
