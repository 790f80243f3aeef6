/*
 * fleet_ratelimit.c - the two rate-limit implementations behind struct cx__ratelimit (contract
 * in fleet_ratelimit.h): local, two cx_limiters; fleet, three Lua scripts on Redis with a local
 * fallback at quota / fleet_size.
 *
 * What it does not do: decide the token estimate, parse Retry-After (the router does), or
 * retry a reservation against Redis (one attempt per call, then the fallback).
 *
 * GCRA in the scripts is the same arithmetic as limiter.c, in microseconds of Redis's TIME:
 * a bucket is one number, tat; taking n at `eff` (now, or the end of a pause in force) sets
 * tat = max(tat, eff) + n*T and grants at max(eff, tat - burst*T). A refund moves tat back but
 * never before eff (the bucket never holds more than burst). Keys expire one second after their
 * tat, when the bucket is full again and its absence means the same thing.
 */
#include "fleet_ratelimit.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/limiter.h"
#include "cx_internal.h"
#include "fleet.h"

#define PROVIDER_MAX 64
#define RTT_BUCKETS 2000

/* ---- the scripts ---- */

/* num(key): true, value (nil when absent) or false, why. corrupt(key, why): the error reply
 * fleet.c turns into CX_ECORRUPT. now(): Redis's clock in µs. */
#define LUA_PRELUDE                                                                              \
    "local function num(key)\n"                                                                  \
    "  local v = redis.pcall('GET', key)\n"                                                      \
    "  if type(v) == 'table' and v.err then\n"                                                   \
    "    return false, 'holds a ' .. redis.call('TYPE', key).ok .. ', not a string' end\n"       \
    "  if not v then return true, nil end\n"                                                     \
    "  local x = tonumber(v)\n"                                                                  \
    "  if x == nil or x ~= x or x == math.huge or x == -math.huge then\n"                        \
    "    return false, 'holds ' .. string.format('%q', string.sub(v, 1, 24)) ..\n"              \
    "      ', not a number' end\n"                                                               \
    "  return true, x\n"                                                                         \
    "end\n"                                                                                      \
    "local function corrupt(key, why)\n"                                                         \
    "  return redis.error_reply('CXCORRUPT key ' .. key .. ' ' .. why ..\n"                      \
    "    ' (not written by cx: delete it, or use another CORTEX_REDIS_PREFIX)')\n"               \
    "end\n"                                                                                      \
    "local function now()\n"                                                                     \
    "  local t = redis.call('TIME')\n"                                                           \
    "  return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                       \
    "end\n"                                                                                      \
    "local function store(key, tat, t)\n"                                                        \
    "  if tat <= t then redis.call('DEL', key) return end\n"                                     \
    "  redis.call('SET', key, string.format('%.17g', tat), 'PX',\n"                              \
    "    math.floor((tat - t) / 1000) + 1000)\n"                                                 \
    "end\n"

/* KEYS: req, tok, pause. ARGV: req T, req burst*T, tok T (0: none), tok burst*T, tokens,
 * max wait (-1: none). Returns {1, wait µs} (taken) or {0, wait µs} (too long: nothing taken). */
const char cx__script_reserve[] = LUA_PRELUDE
    "local t = now()\n"
    "local ok, p = num(KEYS[3]) if not ok then return corrupt(KEYS[3], p) end\n"
    "local eff = t if p and p > eff then eff = p end\n"
    "local ri, rt = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local ti, tt, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local maxw = tonumber(ARGV[6])\n"
    "local ok1, rtat = num(KEYS[1]) if not ok1 then return corrupt(KEYS[1], rtat) end\n"
    "local base = eff if rtat and rtat > base then base = rtat end\n"
    "local rnew = base + ri\n"
    "local grant = rnew - rt if grant < eff then grant = eff end\n"
    "local tnew = nil\n"
    "if ti > 0 then\n"
    "  local ok2, ttat = num(KEYS[2]) if not ok2 then return corrupt(KEYS[2], ttat) end\n"
    "  local b2 = eff if ttat and ttat > b2 then b2 = ttat end\n"
    "  tnew = b2 + n * ti\n"
    "  local g2 = tnew - tt if g2 > grant then grant = g2 end\n"
    "end\n"
    "local wait = math.ceil(grant - t)\n"
    "if maxw >= 0 and wait > maxw then return {0, wait} end\n"
    "store(KEYS[1], rnew, t)\n"
    "if tnew then store(KEYS[2], tnew, t) end\n"
    "return {1, wait}\n";

/* KEYS: req, tok, pause. ARGV: req T, requests, tok T (0: none), tokens. Returns 1. */
const char cx__script_adjust[] = LUA_PRELUDE
    "local t = now()\n"
    "local ok, p = num(KEYS[3]) if not ok then return corrupt(KEYS[3], p) end\n"
    "local eff = t if p and p > eff then eff = p end\n"
    "for i = 1, 2 do\n"
    "  local T, d = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])\n"
    "  if T > 0 and d ~= 0 then\n"
    "    local ok1, tat = num(KEYS[i]) if not ok1 then return corrupt(KEYS[i], tat) end\n"
    "    local base = eff if tat and tat > base then base = tat end\n"
    "    local nt = base + d * T if nt < eff then nt = eff end\n"
    "    store(KEYS[i], nt, t)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* KEYS: pause, req, tok. ARGV: length µs (0: only ask). Returns the µs left of the pause in
 * force afterwards (0: none). Bucket keys holding something foreign are left alone here (the
 * next reserve reports them); a foreign pause key is reported. */
const char cx__script_pause[] = LUA_PRELUDE
    "local t = now()\n"
    "local ok, p = num(KEYS[1]) if not ok then return corrupt(KEYS[1], p) end\n"
    "local cur = t if p and p > cur then cur = p end\n"
    "local e = t + tonumber(ARGV[1])\n"
    "if e > cur then\n"
    "  local d = e - cur\n"
    "  for i = 2, 3 do\n"
    "    local ok1, tat = num(KEYS[i])\n"
    "    if ok1 and tat then\n"
    "      local base = cur if tat > base then base = tat end\n"
    "      store(KEYS[i], base + d, t)\n"
    "    end\n"
    "  end\n"
    "  redis.call('SET', KEYS[1], string.format('%.17g', e), 'PX', math.ceil((e - t) / 1000))\n"
    "  cur = e\n"
    "end\n"
    "return math.ceil(cur - t)\n";

/* ---- local ---- */

struct local_rl {
    struct cx__ratelimit base;
    struct cx_limiter *req; /* NULL: no request limit (a wrapped router without a limiter) */
    struct cx_limiter *tok; /* NULL when tpm is 0 */
    int borrowed;           /* 1: req and tok belong to the caller of cx__ratelimit_wrap */
};

static int local_reserve(struct cx__ratelimit *rl, double tokens, uint64_t max_wait_ns,
                         uint64_t *wait_ns, struct cx_errinfo *ei) {
    struct local_rl *l = (struct local_rl *)rl;
    if (wait_ns == NULL || !(tokens >= 0) || !isfinite(tokens))
        return cx__err(ei, CX_EINVAL, "rate limit: tokens must be >= 0 and finite, got %g", tokens);
    uint64_t w1 = 0, w2 = 0;
    double extra = 0, take = tokens;
    if (l->tok != NULL && take > cx_limiter_burst(l->tok)) {
        /* Above one bucket: take a full bucket now and charge the rest as debt. */
        extra = take - cx_limiter_burst(l->tok);
        take = cx_limiter_burst(l->tok);
    }
    if (l->req != NULL) cx_limiter_reserve(l->req, 1, &w1);
    if (l->tok != NULL) {
        cx_limiter_reserve(l->tok, take, &w2);
        if (extra > 0) cx_limiter_adjust(l->tok, extra);
    }
    uint64_t w = w1 > w2 ? w1 : w2;
    *wait_ns = w;
    if (w > max_wait_ns) {
        if (l->req != NULL) cx_limiter_adjust(l->req, -1);
        if (l->tok != NULL) cx_limiter_adjust(l->tok, -tokens);
        return CX_ETIMEDOUT;
    }
    return 0;
}

static int local_adjust(struct cx__ratelimit *rl, double requests, double tokens,
                        struct cx_errinfo *ei) {
    struct local_rl *l = (struct local_rl *)rl;
    if (!isfinite(requests) || !isfinite(tokens))
        return cx__err(ei, CX_EINVAL, "rate limit: adjust needs finite numbers");
    if (requests != 0 && l->req != NULL) cx_limiter_adjust(l->req, requests);
    if (tokens != 0 && l->tok != NULL) cx_limiter_adjust(l->tok, tokens);
    return 0;
}

static int local_pause(struct cx__ratelimit *rl, uint64_t deadline, struct cx_errinfo *ei) {
    (void)ei;
    struct local_rl *l = (struct local_rl *)rl;
    if (l->req != NULL) cx_limiter_pause_until(l->req, deadline);
    if (l->tok != NULL) cx_limiter_pause_until(l->tok, deadline);
    return 0;
}

static uint64_t local_paused_until(struct cx__ratelimit *rl) {
    struct local_rl *l = (struct local_rl *)rl;
    return cx_limiter_paused_until(l->req != NULL ? l->req : l->tok);
}

static void local_free(struct cx__ratelimit *rl) {
    struct local_rl *l = (struct local_rl *)rl;
    if (!l->borrowed) {
        cx_limiter_free(l->req);
        cx_limiter_free(l->tok);
    }
    cx__free(l);
}

static const struct cx__ratelimit_ops local_ops = {local_reserve, local_adjust, local_pause,
                                                   local_paused_until, local_free};

static int local_new(double rps, double burst, double tpm, struct local_rl **out,
                     struct cx_errinfo *ei) {
    struct local_rl *l = cx__calloc(1, sizeof *l);
    if (l == NULL) return cx__err(ei, CX_ENOMEM, "out of memory creating a rate limit");
    l->base.ops = &local_ops;
    l->base.kind = "local";
    int rc = cx_limiter_new(rps, burst < 1 ? 1 : burst, &l->req, ei);
    if (rc == 0 && tpm > 0) rc = cx_limiter_new(tpm / 60.0, tpm < 1 ? 1 : tpm, &l->tok, ei);
    if (rc < 0) {
        local_free(&l->base);
        return rc;
    }
    *out = l;
    return 0;
}

int cx__ratelimit_wrap(struct cx_limiter *req, struct cx_limiter *tok, struct cx__ratelimit **out,
                       struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx__ratelimit_wrap: NULL argument");
    struct local_rl *l = cx__calloc(1, sizeof *l);
    if (l == NULL) return cx__err(ei, CX_ENOMEM, "out of memory creating a rate limit");
    l->base.ops = &local_ops;
    l->base.kind = "local";
    l->req = req;
    l->tok = tok;
    l->borrowed = 1;
    *out = &l->base;
    return 0;
}

/* ---- fleet ---- */

struct fleet_rl {
    struct cx__ratelimit base;
    struct cx__fleet *fleet;           /* borrowed */
    struct local_rl *fallback;         /* quota / fleet_size */
    char key_req[PROVIDER_MAX + 96], key_tok[PROVIDER_MAX + 96], key_pause[PROVIDER_MAX + 96];
    char req_T[32], req_tol[32], tok_T[32], tok_tol[32]; /* µs, formatted once */
    double tpm;
    uint64_t op_timeout_ns;
    _Atomic(uint64_t) fallbacks;
    /* Hand-over between the tiers (see "Switching tiers" above fleet_reserve). */
    double local_rps;                  /* the fallback's request rate */
    double local_burst;                /* the fallback's burst: this process's share */
    _Atomic(uint64_t) redis_horizon;   /* latest grant (monotonic) Redis gave this process */
    _Atomic(uint64_t) local_horizon;   /* latest grant the fallback gave */
    _Atomic int on_fallback;           /* 1 from the first fallback until Redis answers again */
    /* Round-trip times of the reserve script (cx__ratelimit_rtt): 1 µs buckets below 1 ms, then
     * 1 ms buckets up to 1 s (the last bucket holds everything slower). */
    _Atomic(uint64_t) rtt[RTT_BUCKETS];
};

static void raise_to(_Atomic(uint64_t) *a, uint64_t v) {
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* An outage (as opposed to an answer, even an error one): served by the fallback. */
static int is_outage(int rc) { return rc == CX_ECONN || rc == CX_ETIMEDOUT; }

static int reply_ints(const redisReply *r, long long *a, long long *b) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    *a = r->element[0]->integer;
    *b = r->element[1]->integer;
    return 0;
}

/*
 * Switching tiers. Reservations are granted ahead of time (a busy fleet's queue runs about
 * threads / rate seconds ahead), so a switch would admit two queues at once: the one already
 * granted by the tier being left, and a fresh one from the other. To keep the sum near the
 * quota, each process hands over its own debt:
 *   - to the fallback, at the first call Redis cannot answer: if this process had been taking
 *     from Redis, the fallback starts empty (a busy fleet's bucket is empty) and paused until
 *     the latest grant Redis gave it; a process that never reached Redis starts with its share
 *     of the burst (burst / fleet_size), as a fresh local limiter would;
 *   - back to Redis, at the first call it answers again: the requests the fallback has granted
 *     into the future ((local horizon - now) * local rate) are charged to the shared bucket,
 *     and its share of the burst (burst / fleet_size) with them, since a restarted Redis has
 *     forgotten the buckets and would otherwise grant a whole burst the provider does not have.
 * Each process hands over only what it granted, so the charges add up across the fleet.
 */
static void enter_fallback(struct fleet_rl *f) {
    if (atomic_exchange(&f->on_fallback, 1)) return;
    uint64_t horizon = atomic_load(&f->redis_horizon);
    if (horizon == 0) return; /* never took from Redis */
    struct local_rl *l = f->fallback;
    cx_limiter_adjust(l->req, cx_limiter_burst(l->req));
    if (l->tok != NULL) cx_limiter_adjust(l->tok, cx_limiter_burst(l->tok));
    if (horizon > cx_now_ns()) local_pause(&l->base, horizon, NULL);
}

static int fleet_adjust(struct cx__ratelimit *rl, double requests, double tokens,
                        struct cx_errinfo *ei);

static void leave_fallback(struct fleet_rl *f) {
    if (!atomic_exchange(&f->on_fallback, 0)) return;
    uint64_t now = cx_now_ns(), horizon = atomic_load(&f->local_horizon);
    double debt = horizon > now ? (double)(horizon - now) / 1e9 * f->local_rps : 0;
    /* Plus this process's share of the burst: a restarted Redis has forgotten the buckets and
     * would hand the fleet a full burst at once, while the provider's bucket was kept busy
     * by the fallbacks (bench_fleet saw those as 429s). Over the fleet the shares add up to one
     * burst, so the shared bucket restarts about empty, as the provider's is. */
    debt += f->local_burst;
    if (debt > 0) fleet_adjust(&f->base, debt, 0, NULL);
}

static int fleet_reserve(struct cx__ratelimit *rl, double tokens, uint64_t max_wait_ns,
                         uint64_t *wait_ns, struct cx_errinfo *ei) {
    struct fleet_rl *f = (struct fleet_rl *)rl;
    if (wait_ns == NULL || !(tokens >= 0) || !isfinite(tokens) || (f->tpm > 0 && tokens > f->tpm))
        return cx__err(ei, CX_EINVAL, "rate limit: tokens must be >= 0, finite and at most the "
                       "tokens per minute (%g), got %g", f->tpm, tokens);
    char n[32], maxw[32];
    snprintf(n, sizeof n, "%.17g", tokens);
    if (max_wait_ns == UINT64_MAX) snprintf(maxw, sizeof maxw, "-1");
    else snprintf(maxw, sizeof maxw, "%llu", (unsigned long long)(max_wait_ns / 1000));
    const char *keys[3] = {f->key_req, f->key_tok, f->key_pause};
    const char *args[6] = {f->req_T, f->req_tol, f->tok_T, f->tok_tol, n, maxw};
    redisReply *r;
    struct cx_errinfo local;
    uint64_t t0 = cx_now_ns();
    int rc = cx__fleet_eval(f->fleet, CX__SCRIPT_RESERVE, cx_deadline_after_ns(f->op_timeout_ns),
                            3, keys, 6, args, &r, &local);
    if (rc == 0) {
        uint64_t us = (cx_now_ns() - t0) / 1000;
        size_t b = us < 1000 ? (size_t)us : 1000 + (size_t)(us / 1000);
        atomic_fetch_add(&f->rtt[b < RTT_BUCKETS ? b : RTT_BUCKETS - 1], 1);
    }
    if (is_outage(rc)) {
        atomic_fetch_add(&f->fallbacks, 1);
        enter_fallback(f);
        rc = local_reserve(&f->fallback->base, tokens, max_wait_ns, wait_ns, ei);
        if (rc == 0) raise_to(&f->local_horizon, cx_now_ns() + *wait_ns);
        return rc;
    }
    if (rc < 0) {
        if (ei) *ei = local;
        return rc;
    }
    leave_fallback(f);
    long long taken, wait_us;
    if (reply_ints(r, &taken, &wait_us) < 0) {
        cx__fleet_reply_free(r);
        return cx__err(ei, CX_EPROTO, "Redis (CORTEX_REDIS_URL): the reserve script answered "
                       "with an unexpected shape");
    }
    cx__fleet_reply_free(r);
    *wait_ns = wait_us <= 0 ? 0 : (uint64_t)wait_us * 1000;
    if (taken) raise_to(&f->redis_horizon, cx_now_ns() + *wait_ns);
    return taken ? 0 : CX_ETIMEDOUT;
}

static int fleet_adjust(struct cx__ratelimit *rl, double requests, double tokens,
                        struct cx_errinfo *ei) {
    struct fleet_rl *f = (struct fleet_rl *)rl;
    if (!isfinite(requests) || !isfinite(tokens))
        return cx__err(ei, CX_EINVAL, "rate limit: adjust needs finite numbers");
    if (requests == 0 && (tokens == 0 || f->tpm == 0)) return 0;
    char dr[32], dt[32];
    snprintf(dr, sizeof dr, "%.17g", requests);
    snprintf(dt, sizeof dt, "%.17g", tokens);
    const char *keys[3] = {f->key_req, f->key_tok, f->key_pause};
    const char *args[4] = {f->req_T, dr, f->tok_T, dt};
    redisReply *r;
    struct cx_errinfo local;
    int rc = cx__fleet_eval(f->fleet, CX__SCRIPT_ADJUST, cx_deadline_after_ns(f->op_timeout_ns), 3,
                            keys, 4, args, &r, &local);
    if (is_outage(rc)) {
        atomic_fetch_add(&f->fallbacks, 1);
        return local_adjust(&f->fallback->base, requests, tokens, ei);
    }
    if (rc < 0) {
        if (ei) *ei = local;
        return rc;
    }
    cx__fleet_reply_free(r);
    return 0;
}

/* Runs the pause script with a length in µs (0: only ask); *left_us = the pause left. */
static int fleet_pause_script(struct fleet_rl *f, uint64_t len_us, long long *left_us,
                              struct cx_errinfo *ei) {
    char len[32];
    snprintf(len, sizeof len, "%llu", (unsigned long long)len_us);
    const char *keys[3] = {f->key_pause, f->key_req, f->key_tok};
    const char *args[1] = {len};
    redisReply *r;
    int rc = cx__fleet_eval(f->fleet, CX__SCRIPT_PAUSE, cx_deadline_after_ns(f->op_timeout_ns), 3,
                            keys, 1, args, &r, ei);
    if (rc < 0) return rc;
    if (r->type != REDIS_REPLY_INTEGER) {
        cx__fleet_reply_free(r);
        return cx__err(ei, CX_EPROTO, "Redis (CORTEX_REDIS_URL): the pause script answered with "
                       "an unexpected shape");
    }
    *left_us = r->integer;
    cx__fleet_reply_free(r);
    return 0;
}

static int fleet_pause(struct cx__ratelimit *rl, uint64_t deadline, struct cx_errinfo *ei) {
    struct fleet_rl *f = (struct fleet_rl *)rl;
    /* The local part first, so the pause holds here whatever Redis says. */
    local_pause(&f->fallback->base, deadline, NULL);
    uint64_t left = cx_deadline_remaining_ns(deadline);
    if (left == 0) return 0;
    if (left > 366ULL * 86400 * CX_NSEC_PER_SEC) left = 366ULL * 86400 * CX_NSEC_PER_SEC;
    long long rem;
    struct cx_errinfo local;
    int rc = fleet_pause_script(f, (left + 999) / 1000, &rem, &local);
    if (is_outage(rc)) {
        atomic_fetch_add(&f->fallbacks, 1);
        return 0;
    }
    if (rc < 0 && ei) *ei = local;
    return rc < 0 ? rc : 0;
}

static uint64_t fleet_paused_until(struct cx__ratelimit *rl) {
    struct fleet_rl *f = (struct fleet_rl *)rl;
    uint64_t now = cx_now_ns();
    long long rem = 0;
    uint64_t shared = 0;
    if (fleet_pause_script(f, 0, &rem, NULL) == 0 && rem > 0) shared = now + (uint64_t)rem * 1000;
    uint64_t mine = local_paused_until(&f->fallback->base);
    return shared > mine ? shared : mine;
}

static void fleet_free(struct cx__ratelimit *rl) {
    struct fleet_rl *f = (struct fleet_rl *)rl;
    if (f->fallback) local_free(&f->fallback->base);
    cx__free(f);
}

static const struct cx__ratelimit_ops fleet_ops = {fleet_reserve, fleet_adjust, fleet_pause,
                                                   fleet_paused_until, fleet_free};

/* ---- open ---- */

void cx__ratelimit_options_init(struct cx__ratelimit_options *o) {
    if (o == NULL) return;
    memset(o, 0, sizeof *o);
    o->provider = "default";
    o->rps = 5;
    o->burst = 5;
    o->tpm = 0;
    o->fleet_size = 1;
    o->op_timeout_ms = 250;
}

static int check_options(const struct cx__ratelimit_options *o, struct cx_errinfo *ei) {
    if (o->provider == NULL || o->provider[0] == '\0' || strlen(o->provider) > PROVIDER_MAX)
        return cx__err(ei, CX_EINVAL, "rate limit: provider name must be 1..%d characters",
                       PROVIDER_MAX);
    for (const char *p = o->provider; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return cx__err(ei, CX_EINVAL, "rate limit: provider name '%.64s' has a blank or "
                           "non-printable character", o->provider);
    if (!(o->rps > 0) || !isfinite(o->rps))
        return cx__err(ei, CX_ECONFIG, "rate limit: rps must be > 0 and finite, got %g", o->rps);
    if (!(o->burst >= 1) || !isfinite(o->burst))
        return cx__err(ei, CX_ECONFIG, "rate limit: burst must be >= 1 and finite, got %g",
                       o->burst);
    if (!(o->tpm == 0 || (o->tpm >= 1 && isfinite(o->tpm))))
        return cx__err(ei, CX_ECONFIG, "rate limit: tokens per minute must be 0 or >= 1, got %g",
                       o->tpm);
    if (o->fleet_size < 1)
        return cx__err(ei, CX_ECONFIG, "CORTEX_FLEET_SIZE must be >= 1, got %d", o->fleet_size);
    if (o->op_timeout_ms < 1)
        return cx__err(ei, CX_ECONFIG, "rate limit: op_timeout_ms must be >= 1, got %d",
                       o->op_timeout_ms);
    return 0;
}

int cx__ratelimit_open(const struct cx__ratelimit_options *o, struct cx__fleet *fleet,
                       struct cx__ratelimit **out, struct cx_errinfo *ei) {
    if (o == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx__ratelimit_open: NULL argument");
    int rc = check_options(o, ei);
    if (rc < 0) return rc;
    if (fleet == NULL) {
        struct local_rl *l;
        rc = local_new(o->rps, o->burst, o->tpm, &l, ei);
        if (rc == 0) *out = &l->base;
        return rc;
    }
    struct fleet_rl *f = cx__calloc(1, sizeof *f);
    if (f == NULL) return cx__err(ei, CX_ENOMEM, "out of memory creating a rate limit");
    f->base.ops = &fleet_ops;
    f->base.kind = "fleet";
    f->fleet = fleet;
    f->tpm = o->tpm;
    f->op_timeout_ns = (uint64_t)o->op_timeout_ms * CX_NSEC_PER_MSEC;
    atomic_init(&f->fallbacks, 0);
    atomic_init(&f->redis_horizon, 0);
    atomic_init(&f->local_horizon, 0);
    atomic_init(&f->on_fallback, 0);
    f->local_rps = o->rps / (double)o->fleet_size;
    f->local_burst = o->burst / (double)o->fleet_size;
    double n = (double)o->fleet_size;
    rc = local_new(o->rps / n, o->burst / n, o->tpm / n, &f->fallback, ei);
    if (rc < 0) {
        cx__free(f);
        return rc;
    }
    const char *px = cx__fleet_prefix(fleet);
    snprintf(f->key_req, sizeof f->key_req, "%s:rl:%s:req", px, o->provider);
    snprintf(f->key_tok, sizeof f->key_tok, "%s:rl:%s:tok", px, o->provider);
    snprintf(f->key_pause, sizeof f->key_pause, "%s:rl:%s:pause", px, o->provider);
    double rT = 1e6 / o->rps;
    snprintf(f->req_T, sizeof f->req_T, "%.17g", rT);
    snprintf(f->req_tol, sizeof f->req_tol, "%.17g", rT * o->burst);
    double tT = o->tpm > 0 ? 60e6 / o->tpm : 0;
    snprintf(f->tok_T, sizeof f->tok_T, "%.17g", tT);
    snprintf(f->tok_tol, sizeof f->tok_tol, "%.17g", tT * o->tpm);
    *out = &f->base;
    return 0;
}

int cx__ratelimit_acquire(struct cx__ratelimit *rl, double tokens, uint64_t deadline,
                          struct cx_errinfo *ei) {
    uint64_t wait = 0;
    int rc = cx__ratelimit_reserve(rl, tokens, cx_deadline_remaining_ns(deadline), &wait, ei);
    if (rc == CX_ETIMEDOUT)
        return cx__err(ei, CX_ETIMEDOUT, "rate limit: the grant would come %.3f s from now, "
                       "after the deadline", (double)wait / 1e9);
    if (rc < 0) return rc;
    if (wait > 0) { /* the emulated GIL is released while we sleep, as for any wait */
        cx_gil_io_begin();
        cx_sleep_ns(wait);
        cx_gil_io_end();
    }
    return 0;
}

void cx__ratelimit_rtt(struct cx__ratelimit *rl, uint64_t *n, double *p50_us, double *p99_us) {
    *n = 0;
    *p50_us = *p99_us = 0;
    if (rl == NULL || rl->ops != &fleet_ops) return;
    struct fleet_rl *f = (struct fleet_rl *)rl;
    uint64_t total = 0, c[RTT_BUCKETS];
    for (size_t i = 0; i < RTT_BUCKETS; i++) total += c[i] = atomic_load(&f->rtt[i]);
    *n = total;
    uint64_t run = 0;
    int have50 = 0;
    for (size_t i = 0; i < RTT_BUCKETS && total > 0; i++) {
        run += c[i];
        double us = i < 1000 ? (double)i : (double)(i - 1000) * 1000.0;
        if (!have50 && run * 2 >= total) {
            *p50_us = us;
            have50 = 1;
        }
        if (run * 100 >= total * 99) {
            *p99_us = us;
            break;
        }
    }
}

uint64_t cx__ratelimit_fallbacks(struct cx__ratelimit *rl) {
    if (rl == NULL || rl->ops != &fleet_ops) return 0;
    return atomic_load(&((struct fleet_rl *)rl)->fallbacks);
}
