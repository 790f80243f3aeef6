/*
 * fleet_cache.h - internal: the exact tier of the LLM response cache shared by a fleet in Redis,
 * and fleet-wide single flight on top of it.
 *
 * Entries are keyed like the SQLite cache's exact tier (cx/cache.h): provider, model, SHA-256 of
 * the system prompt, SHA-256 of the prompt. Their digest d = SHA-256(provider \0 model \0
 * system_hash \0 prompt_hash) names the keys:
 *     <prefix>:c:<d>     the value ("cx1\n" then commands_json), with a TTL (ttl_ms)
 *     <prefix>:c:lru     a sorted set of digests by last access (Redis TIME, µs)
 *     <prefix>:l:<d>     the single-flight lock: a random token, with a lease (lease_ms)
 * A put trims the set to max_entries, deleting the least recently used values, and drops
 * members older than the TTL, in the same script. A value without the "cx1\n" header, or a key
 * of the wrong type, is CX_ECORRUPT naming the key: never a crash, never served as an answer.
 * (The trim deletes value keys it computes from the set, which is fine on one Redis server but
 * not on a Redis Cluster; this module does not support Cluster.)
 *
 * Single flight across processes: cx__shared_cache_flight returns the shared answer when there
 * is one, else tries to take the lock (SET NX PX in the same script): the one that takes it is
 * the leader, asks upstream and ends with cx__shared_cache_finish (which puts the answer, then
 * releases the lock if it is still its own). The others poll the same script with a backoff
 * doubling from 2 ms to 100 ms (never beyond their deadline) until the answer appears. A leader
 * that dies or gives up releases by expiry or by finish(NULL): the next follower to poll takes
 * the lock and leads in its place. The lease must cover one upstream call (the caller's request
 * timeout); a leader slower than its lease lets a second leader start, costing one extra call.
 *
 * Outage: every call gives up within op_timeout_ms (or the caller's deadline) with CX_ECONN or
 * CX_ETIMEDOUT; the caller then uses its local tier and asks upstream itself.
 *
 * Threads: every function may be called from any thread; _free once, after the others.
 */
#ifndef CX_FLEET_CACHE_H
#define CX_FLEET_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cx/cache.h"
#include "cx/common.h"

struct cx__fleet;
struct cx__shared_cache;

struct cx__shared_cache_options {
    long max_entries;        /* >= 1 (default 10000) */
    long ttl_ms;             /* >= 1 (default one day) */
    size_t max_value_bytes;  /* largest commands_json put (default 1 MiB) */
    int op_timeout_ms;       /* >= 1: one call's budget for Redis (default 250) */
    long lease_ms;           /* >= 1: single-flight lease (default 60000) */
};

void cx__shared_cache_options_init(struct cx__shared_cache_options *o);

/* fleet: borrowed, must outlive the cache. o: borrowed, NULL for defaults. out: returned,
 * release with cx__shared_cache_free. Errors: CX_EINVAL naming the bad option, CX_ENOMEM. */
int cx__shared_cache_open(struct cx__fleet *fleet, const struct cx__shared_cache_options *o,
                          struct cx__shared_cache **out, struct cx_errinfo *ei);
void cx__shared_cache_free(struct cx__shared_cache *c);

/* On a hit returns 0 and *value (returned: cx__free) and refreshes the entry's LRU place.
 * CX_ENOENT on a miss (*value NULL); CX_ECONN/CX_ETIMEDOUT when Redis cannot answer;
 * CX_ECORRUPT (ei names the key); CX_EINVAL (bad key, naming the field); CX_ENOMEM. */
int cx__shared_cache_get(struct cx__shared_cache *c, const struct cx_cache_key *k, char **value,
                         struct cx_errinfo *ei);

/* Stores value (borrowed, non-empty, <= max_value_bytes) for k with the TTL, trimming the set.
 * Errors: CX_EINVAL, CX_ETOOBIG, CX_ECONN/CX_ETIMEDOUT, CX_ECORRUPT, CX_ENOMEM. */
int cx__shared_cache_put(struct cx__shared_cache *c, const struct cx_cache_key *k,
                         const char *value, struct cx_errinfo *ei);

enum cx__flight_role { CX__FLIGHT_WAIT = 0, CX__FLIGHT_HIT = 1, CX__FLIGHT_LEADER = 2 };

/* A flight in progress: filled by cx__shared_cache_flight for a leader. */
struct cx__flight {
    char digest[65];
    char token[33];
};

/*
 * Single flight for k until `deadline`. On 0, *role says: CX__FLIGHT_HIT, *value is the shared
 * answer (returned: cx__free), maybe after waiting for another process's leader; or
 * CX__FLIGHT_LEADER, *value NULL, the caller must ask upstream and then call
 * cx__shared_cache_finish(c, fl, answer or NULL). Errors: CX_ETIMEDOUT (the deadline passed
 * while another process led), CX_ECONN (Redis cannot answer: go upstream alone), CX_ECORRUPT,
 * CX_EINVAL, CX_ENOMEM.
 */
int cx__shared_cache_flight(struct cx__shared_cache *c, const struct cx_cache_key *k,
                            uint64_t deadline, enum cx__flight_role *role,
                            struct cx__flight *fl, char **value, struct cx_errinfo *ei);

/*
 * One poll of the flight script, never sleeping: what cx__shared_cache_flight repeats, for a
 * caller that waits by its own means (the pipeline's fleet poller thread). first = 1 on the first
 * poll of a flight (fills fl's digest and token); 0 on later polls with the same fl. On 0, *role
 * is HIT (*value returned), LEADER, or CX__FLIGHT_WAIT: another process leads, with *left_ms
 * (may be NULL) of its lease left. Errors as cx__shared_cache_flight, but never CX_ETIMEDOUT for
 * waiting (only when Redis did not answer by min(deadline, op_timeout_ms)).
 */
int cx__shared_cache_flight_poll(struct cx__shared_cache *c, const struct cx_cache_key *k,
                                 uint64_t deadline, int first, enum cx__flight_role *role,
                                 struct cx__flight *fl, char **value, long long *left_ms,
                                 struct cx_errinfo *ei);

/* How long to wait before the next poll: *backoff (doubling from 2 ms to 100 ms, updated), but
 * no longer than the lease left plus 1 ms or the time to the deadline. */
uint64_t cx__shared_cache_next_poll_ns(uint64_t *backoff, long long left_ms, uint64_t deadline);

/* Ends a leader's flight: puts value (NULL: the call failed, put nothing) and releases the lock
 * if it is still this flight's. Returns 0 or put's errors (the lock is released anyway when
 * Redis answers; otherwise it expires). */
int cx__shared_cache_finish(struct cx__shared_cache *c, const struct cx_cache_key *k,
                            const struct cx__flight *fl, const char *value,
                            struct cx_errinfo *ei);

struct cx__shared_cache_stats {
    uint64_t hits;       /* get/flight answered from Redis */
    uint64_t misses;     /* get found nothing */
    uint64_t puts;       /* entries written */
    uint64_t evictions;  /* values deleted by the trim */
    uint64_t leaders;    /* flights this process led */
    uint64_t waited;     /* flights answered after waiting for another leader */
    uint64_t takeovers;  /* flights led after waiting (the previous leader died or gave up) */
    uint64_t outages;    /* calls that failed because Redis could not answer */
};
void cx__shared_cache_stats(struct cx__shared_cache *c, struct cx__shared_cache_stats *out);

#endif /* CX_FLEET_CACHE_H */
