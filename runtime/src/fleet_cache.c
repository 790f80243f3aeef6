/*
 * fleet_cache.c - the shared exact cache tier and fleet-wide single flight (contract in
 * fleet_cache.h): four Lua scripts and the follower's polling loop.
 *
 * What it does not do: similarity matches (they stay in each process's local tier), writing to
 * the SQLite cache (the caller's read-through/write-through does), or pub/sub (followers poll,
 * which costs one small script call per backoff step and needs no second connection).
 */
#include "fleet_cache.h"

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx_internal.h"
#include "fleet.h"

#define HEADER "cx1\n"
#define HEADER_LEN 4
#define KEY_MAX 160

/* kind(key) -> the key's type name; corrupt(key, why) -> the CXCORRUPT error reply; get(key) ->
 * true, value-or-nil, or false, why; nowus() -> Redis's clock in µs (LRU scores: two commands
 * never share a microsecond, so the order of access is strict). */
#define LUA_CACHE_PRELUDE                                                                        \
    "local function corrupt(key, why)\n"                                                         \
    "  return redis.error_reply('CXCORRUPT key ' .. key .. ' ' .. why ..\n"                      \
    "    ' (not written by cx: delete it, or use another CORTEX_REDIS_PREFIX)')\n"               \
    "end\n"                                                                                      \
    "local function kind(key) return redis.call('TYPE', key).ok end\n"                           \
    "local function get(key)\n"                                                                  \
    "  local v = redis.pcall('GET', key)\n"                                                      \
    "  if type(v) == 'table' and v.err then return false, 'is a ' .. kind(key) end\n"            \
    "  if not v then return true, nil end\n"                                                     \
    "  if string.sub(v, 1, 4) ~= 'cx1\\n' then\n"                                                \
    "    return false, 'does not hold a cx cache entry' end\n"                                   \
    "  return true, v\n"                                                                         \
    "end\n"                                                                                      \
    "local function zset_ok(key) local k = kind(key) return k == 'none' or k == 'zset' end\n"    \
    "local function nowus()\n"                                                                   \
    "  local t = redis.call('TIME')\n"                                                           \
    "  return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                       \
    "end\n"                                                                                      \
    "local function us(x) return string.format('%.17g', x) end\n"

/* KEYS: value, lru. ARGV: digest. Returns the value (with header) or nil. */
const char cx__script_cache_get[] = LUA_CACHE_PRELUDE
    "if not zset_ok(KEYS[2]) then return corrupt(KEYS[2], 'is a ' .. kind(KEYS[2])) end\n"
    "local ok, v = get(KEYS[1]) if not ok then return corrupt(KEYS[1], v) end\n"
    "if not v then redis.call('ZREM', KEYS[2], ARGV[1]) return false end\n"
    "redis.call('ZADD', KEYS[2], 'XX', us(nowus()), ARGV[1])\n"
    "return v\n";

/* KEYS: value, lru. ARGV: digest, value, ttl ms, max entries, value-key prefix.
 * Returns the number of values evicted. */
const char cx__script_cache_put[] = LUA_CACHE_PRELUDE
    "if not zset_ok(KEYS[2]) then return corrupt(KEYS[2], 'is a ' .. kind(KEYS[2])) end\n"
    "local k = kind(KEYS[1])\n"
    "if k ~= 'none' and k ~= 'string' then return corrupt(KEYS[1], 'is a ' .. k) end\n"
    "local t = nowus()\n"
    "local ttl = tonumber(ARGV[3])\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)\n"
    "redis.call('ZADD', KEYS[2], us(t), ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. us(t - ttl * 1000))\n"
    "local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])\n"
    "if n <= 0 then return 0 end\n"
    "local old = redis.call('ZRANGE', KEYS[2], 0, n - 1)\n"
    "for _, m in ipairs(old) do\n"
    "  redis.call('DEL', ARGV[5] .. m)\n"
    "  redis.call('ZREM', KEYS[2], m)\n"
    "end\n"
    "return n\n";

/* KEYS: value, lock, lru. ARGV: token, lease ms, digest.
 * Returns {1, value} (answered), {2} (lock taken: lead), {0, lease ms left} (someone leads). */
const char cx__script_flight[] = LUA_CACHE_PRELUDE
    "if not zset_ok(KEYS[3]) then return corrupt(KEYS[3], 'is a ' .. kind(KEYS[3])) end\n"
    "local ok, v = get(KEYS[1]) if not ok then return corrupt(KEYS[1], v) end\n"
    "if v then redis.call('ZADD', KEYS[3], 'XX', us(nowus()), ARGV[3]) return {1, v} end\n"
    "local lk = kind(KEYS[2])\n"
    "if lk ~= 'none' and lk ~= 'string' then return corrupt(KEYS[2], 'is a ' .. lk) end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end\n"
    "local left = redis.call('PTTL', KEYS[2])\n"
    "if left == -1 then return corrupt(KEYS[2], 'has no expiry') end\n"
    "if left < 0 then left = 0 end\n"
    "return {0, left}\n";

/* KEYS: lock. ARGV: token. Returns 1 when the lock was ours and is gone. */
const char cx__script_release[] =
    "local v = redis.pcall('GET', KEYS[1])\n"
    "if type(v) == 'string' and v == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n";

struct cx__shared_cache {
    struct cx__fleet *fleet; /* borrowed */
    struct cx__shared_cache_options o;
    char key_lru[KEY_MAX];
    char value_prefix[KEY_MAX]; /* "<prefix>:c:" */
    char lock_prefix[KEY_MAX];  /* "<prefix>:l:" */
    char ttl[24], max[24], lease[24];
    _Atomic(uint64_t) hits, misses, puts, evictions, leaders, waited, takeovers, outages;
};

void cx__shared_cache_options_init(struct cx__shared_cache_options *o) {
    if (o == NULL) return;
    o->max_entries = 10000;
    o->ttl_ms = 86400000L;
    o->max_value_bytes = 1 << 20;
    o->op_timeout_ms = 250;
    o->lease_ms = 60000;
}

int cx__shared_cache_open(struct cx__fleet *fleet, const struct cx__shared_cache_options *o,
                          struct cx__shared_cache **out, struct cx_errinfo *ei) {
    struct cx__shared_cache_options def;
    cx__shared_cache_options_init(&def);
    if (o == NULL) o = &def;
    if (fleet == NULL || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx__shared_cache_open: NULL argument");
    if (o->max_entries < 1 || o->ttl_ms < 1 || o->max_value_bytes < 1 || o->op_timeout_ms < 1 ||
        o->lease_ms < 1)
        return cx__err(ei, CX_EINVAL, "shared cache: max_entries, ttl_ms, max_value_bytes, "
                       "op_timeout_ms and lease_ms must all be >= 1");
    struct cx__shared_cache *c = cx__calloc(1, sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "out of memory opening the shared cache");
    c->fleet = fleet;
    c->o = *o;
    const char *px = cx__fleet_prefix(fleet);
    snprintf(c->key_lru, sizeof c->key_lru, "%s:c:lru", px);
    snprintf(c->value_prefix, sizeof c->value_prefix, "%s:c:", px);
    snprintf(c->lock_prefix, sizeof c->lock_prefix, "%s:l:", px);
    snprintf(c->ttl, sizeof c->ttl, "%ld", o->ttl_ms);
    snprintf(c->max, sizeof c->max, "%ld", o->max_entries);
    snprintf(c->lease, sizeof c->lease, "%ld", o->lease_ms);
    *out = c;
    return 0;
}

void cx__shared_cache_free(struct cx__shared_cache *c) { cx__free(c); }

static int check_key(const struct cx_cache_key *k, struct cx_errinfo *ei) {
    if (k == NULL) return cx__err(ei, CX_EINVAL, "shared cache: key is NULL");
    if (k->provider == NULL || k->provider[0] == '\0')
        return cx__err(ei, CX_EINVAL, "shared cache: provider is NULL or empty");
    if (k->model == NULL || k->model[0] == '\0')
        return cx__err(ei, CX_EINVAL, "shared cache: model is NULL or empty");
    if (k->system_prompt == NULL)
        return cx__err(ei, CX_EINVAL, "shared cache: system_prompt is NULL");
    if (k->prompt == NULL || k->prompt[0] == '\0')
        return cx__err(ei, CX_EINVAL, "shared cache: prompt is NULL or empty");
    return 0;
}

/* d = SHA-256(provider \0 model \0 SHA-256(system) \0 SHA-256(prompt)), as hex. */
static int digest(const struct cx_cache_key *k, char out[65], struct cx_errinfo *ei) {
    char sh[65], ph[65];
    cx__sha256_hex(k->system_prompt, strlen(k->system_prompt), sh);
    cx__sha256_hex(k->prompt, strlen(k->prompt), ph);
    struct cx__buf b;
    cx__buf_init(&b, 1 << 16);
    if (cx__buf_append(&b, k->provider, strlen(k->provider) + 1) < 0 ||
        cx__buf_append(&b, k->model, strlen(k->model) + 1) < 0 ||
        cx__buf_append(&b, sh, 65) < 0 || cx__buf_append(&b, ph, 64) < 0)
        return cx__err(ei, CX_ENOMEM, "shared cache: out of memory hashing the key");
    cx__sha256_hex(b.p, b.len, out);
    cx__buf_reset(&b);
    return 0;
}

static uint64_t op_deadline(struct cx__shared_cache *c, uint64_t deadline) {
    return cx_deadline_min(deadline,
                           cx_deadline_after_ns((uint64_t)c->o.op_timeout_ms * CX_NSEC_PER_MSEC));
}

static int outage(struct cx__shared_cache *c, int rc) {
    if (rc == CX_ECONN || rc == CX_ETIMEDOUT) atomic_fetch_add(&c->outages, 1);
    return rc;
}

/* Copies a "cx1\n..." string reply without its header. */
static int take_value(const redisReply *r, char **value, struct cx_errinfo *ei) {
    if (r->type != REDIS_REPLY_STRING || r->len < HEADER_LEN)
        return cx__err(ei, CX_EPROTO, "shared cache: unexpected reply shape");
    *value = cx__strndup(r->str + HEADER_LEN, r->len - HEADER_LEN);
    if (*value == NULL) return cx__err(ei, CX_ENOMEM, "shared cache: out of memory");
    return 0;
}

int cx__shared_cache_get(struct cx__shared_cache *c, const struct cx_cache_key *k, char **value,
                         struct cx_errinfo *ei) {
    if (c == NULL || value == NULL) return cx__err(ei, CX_EINVAL, "shared cache: NULL argument");
    *value = NULL;
    int rc = check_key(k, ei);
    if (rc < 0) return rc;
    char d[65], key[KEY_MAX + 65];
    if ((rc = digest(k, d, ei)) < 0) return rc;
    snprintf(key, sizeof key, "%s%s", c->value_prefix, d);
    const char *keys[2] = {key, c->key_lru};
    const char *args[1] = {d};
    redisReply *r;
    rc = cx__fleet_eval(c->fleet, CX__SCRIPT_CACHE_GET, op_deadline(c, CX_DEADLINE_NONE), 2, keys,
                        1, args, &r, ei);
    if (rc < 0) return outage(c, rc);
    if (r->type == REDIS_REPLY_NIL) {
        cx__fleet_reply_free(r);
        atomic_fetch_add(&c->misses, 1);
        return CX_ENOENT;
    }
    rc = take_value(r, value, ei);
    cx__fleet_reply_free(r);
    if (rc == 0) atomic_fetch_add(&c->hits, 1);
    return rc;
}

int cx__shared_cache_put(struct cx__shared_cache *c, const struct cx_cache_key *k,
                         const char *value, struct cx_errinfo *ei) {
    if (c == NULL || value == NULL || value[0] == '\0')
        return cx__err(ei, CX_EINVAL, "shared cache: value is NULL or empty");
    int rc = check_key(k, ei);
    if (rc < 0) return rc;
    size_t n = strlen(value);
    if (n > c->o.max_value_bytes)
        return cx__err(ei, CX_ETOOBIG, "shared cache: value of %zu bytes is over the limit of "
                       "%zu", n, c->o.max_value_bytes);
    char d[65], key[KEY_MAX + 65];
    if ((rc = digest(k, d, ei)) < 0) return rc;
    snprintf(key, sizeof key, "%s%s", c->value_prefix, d);
    char *v = cx__malloc(HEADER_LEN + n + 1);
    if (v == NULL) return cx__err(ei, CX_ENOMEM, "shared cache: out of memory");
    memcpy(v, HEADER, HEADER_LEN);
    memcpy(v + HEADER_LEN, value, n + 1);
    const char *keys[2] = {key, c->key_lru};
    const char *args[5] = {d, v, c->ttl, c->max, c->value_prefix};
    redisReply *r;
    rc = cx__fleet_eval(c->fleet, CX__SCRIPT_CACHE_PUT, op_deadline(c, CX_DEADLINE_NONE), 2, keys,
                        5, args, &r, ei);
    cx__free(v);
    if (rc < 0) return outage(c, rc);
    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        atomic_fetch_add(&c->evictions, (uint64_t)r->integer);
    cx__fleet_reply_free(r);
    atomic_fetch_add(&c->puts, 1);
    return 0;
}

static void new_token(char out[33]) {
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* No entropy: pid, time and address still make it unique per flight. */
        uint64_t a = cx_now_ns() ^ ((uint64_t)getpid() << 32), b = (uint64_t)(uintptr_t)out;
        memcpy(raw, &a, 8);
        memcpy(raw + 8, &b, 8);
    }
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

int cx__shared_cache_flight_poll(struct cx__shared_cache *c, const struct cx_cache_key *k,
                                 uint64_t deadline, int first, enum cx__flight_role *role,
                                 struct cx__flight *fl, char **value, long long *left_ms,
                                 struct cx_errinfo *ei) {
    if (c == NULL || role == NULL || fl == NULL || value == NULL)
        return cx__err(ei, CX_EINVAL, "shared cache: NULL argument");
    *value = NULL;
    if (left_ms) *left_ms = 0;
    int rc = check_key(k, ei);
    if (rc < 0) return rc;
    if (first) {
        if ((rc = digest(k, fl->digest, ei)) < 0) return rc;
        new_token(fl->token);
    }
    char vkey[KEY_MAX + 65], lkey[KEY_MAX + 65];
    snprintf(vkey, sizeof vkey, "%s%s", c->value_prefix, fl->digest);
    snprintf(lkey, sizeof lkey, "%s%s", c->lock_prefix, fl->digest);
    const char *keys[3] = {vkey, lkey, c->key_lru};
    const char *args[3] = {fl->token, c->lease, fl->digest};
    redisReply *r;
    rc = cx__fleet_eval(c->fleet, CX__SCRIPT_FLIGHT, op_deadline(c, deadline), 3, keys, 3, args,
                        &r, ei);
    if (rc < 0) return outage(c, rc);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        cx__fleet_reply_free(r);
        return cx__err(ei, CX_EPROTO, "shared cache: unexpected reply shape from the flight "
                       "script");
    }
    long long what = r->element[0]->integer;
    if (what == 1 && r->elements == 2) {
        rc = take_value(r->element[1], value, ei);
        cx__fleet_reply_free(r);
        if (rc < 0) return rc;
        atomic_fetch_add(&c->hits, 1);
        if (!first) atomic_fetch_add(&c->waited, 1);
        *role = CX__FLIGHT_HIT;
        return 0;
    }
    if (what == 2) {
        cx__fleet_reply_free(r);
        atomic_fetch_add(&c->leaders, 1);
        if (!first) atomic_fetch_add(&c->takeovers, 1);
        *role = CX__FLIGHT_LEADER;
        return 0;
    }
    long long left = r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER
                         ? r->element[1]->integer : 0;
    cx__fleet_reply_free(r);
    if (left_ms) *left_ms = left < 0 ? 0 : left;
    *role = CX__FLIGHT_WAIT;
    return 0;
}

uint64_t cx__shared_cache_next_poll_ns(uint64_t *backoff, long long left_ms, uint64_t deadline) {
    uint64_t nap = *backoff;
    uint64_t lease_left = (uint64_t)(left_ms < 0 ? 0 : left_ms) * CX_NSEC_PER_MSEC +
                          CX_NSEC_PER_MSEC;
    uint64_t remaining = cx_deadline_remaining_ns(deadline);
    if (nap > lease_left) nap = lease_left;
    if (nap > remaining) nap = remaining;
    *backoff = *backoff * 2 > 100 * CX_NSEC_PER_MSEC ? 100 * CX_NSEC_PER_MSEC : *backoff * 2;
    return nap;
}

int cx__shared_cache_flight(struct cx__shared_cache *c, const struct cx_cache_key *k,
                            uint64_t deadline, enum cx__flight_role *role,
                            struct cx__flight *fl, char **value, struct cx_errinfo *ei) {
    uint64_t backoff = 2 * CX_NSEC_PER_MSEC;
    for (int polls = 0;; polls++) {
        long long left_ms = 0;
        int rc = cx__shared_cache_flight_poll(c, k, deadline, polls == 0, role, fl, value,
                                              &left_ms, ei);
        if (rc < 0 || *role != CX__FLIGHT_WAIT) return rc;
        if (cx_deadline_remaining_ns(deadline) == 0)
            return cx__err(ei, CX_ETIMEDOUT, "shared cache: deadline passed while another "
                           "process was asking upstream for the same query");
        /* Sleep the backoff, but no longer than the lease left (+1 ms) or the deadline. */
        uint64_t nap = cx__shared_cache_next_poll_ns(&backoff, left_ms, deadline);
        cx_gil_io_begin(); /* a wait: the emulated GIL is released meanwhile */
        cx_sleep_ns(nap);
        cx_gil_io_end();
    }
}

int cx__shared_cache_finish(struct cx__shared_cache *c, const struct cx_cache_key *k,
                            const struct cx__flight *fl, const char *value,
                            struct cx_errinfo *ei) {
    if (c == NULL || fl == NULL) return cx__err(ei, CX_EINVAL, "shared cache: NULL argument");
    int rc = 0;
    if (value != NULL) rc = cx__shared_cache_put(c, k, value, ei);
    char lkey[KEY_MAX + 65];
    snprintf(lkey, sizeof lkey, "%s%s", c->lock_prefix, fl->digest);
    const char *keys[1] = {lkey};
    const char *args[1] = {fl->token};
    redisReply *r;
    int rc2 = cx__fleet_eval(c->fleet, CX__SCRIPT_RELEASE, op_deadline(c, CX_DEADLINE_NONE), 1,
                             keys, 1, args, &r, rc < 0 ? NULL : ei);
    if (rc2 == 0) cx__fleet_reply_free(r);
    else outage(c, rc2);
    return rc < 0 ? rc : rc2;
}

void cx__shared_cache_stats(struct cx__shared_cache *c, struct cx__shared_cache_stats *o) {
    memset(o, 0, sizeof *o);
    if (c == NULL) return;
    o->hits = atomic_load(&c->hits);
    o->misses = atomic_load(&c->misses);
    o->puts = atomic_load(&c->puts);
    o->evictions = atomic_load(&c->evictions);
    o->leaders = atomic_load(&c->leaders);
    o->waited = atomic_load(&c->waited);
    o->takeovers = atomic_load(&c->takeovers);
    o->outages = atomic_load(&c->outages);
}
