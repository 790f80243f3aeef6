/*
 * fleet.c - the shared Redis connection of a fleet (contract in fleet.h): a pool of hiredis
 * contexts, connection set-up (auth, db, scripts), outage detection, reconnect with backoff,
 * EVALSHA with NOSCRIPT reload, and the once-per-transition notice.
 *
 * What it does not do: decide what to do when Redis is down (the limiter and the cache fall
 * back to their local tier), start threads (commands run on the caller's thread), or log.
 *
 * Locking: one mutex `mu` guards the slots' busy flags and idle contexts, the generation, the
 * backoff state and the notice counters. No Redis I/O happens under it: a thread marks a slot
 * busy, unlocks, talks to Redis on that slot's context alone, then locks again to give it back.
 */
#include "fleet.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "cx/clock.h"
#include "cx/gil.h"
#include "cx_internal.h"

#define PREFIX_MAX 64
#define REASON_MAX 384 /* as struct cx_errinfo.msg: a reason is one of those messages */

extern const char cx__script_reserve[], cx__script_adjust[], cx__script_pause[];
extern const char cx__script_cache_get[], cx__script_cache_put[], cx__script_flight[];
extern const char cx__script_release[];

const char *const cx__fleet_script_text[CX__SCRIPT_COUNT] = {
    cx__script_reserve,   cx__script_adjust, cx__script_pause,   cx__script_cache_get,
    cx__script_cache_put, cx__script_flight, cx__script_release, "return 1",
};

struct slot {
    redisContext *c;   /* guarded by mu while idle; the holder's own while busy */
    uint64_t gen;      /* the fleet generation c was connected in */
    int busy;          /* guarded by mu */
    long timeout_us;   /* the socket timeout last set on c */
};

struct cx__fleet {
    struct cx__redis_url url;
    char prefix[PREFIX_MAX + 1];
    int nslots;
    int connect_timeout_ms, command_timeout_ms;
    uint64_t backoff_min_ns, backoff_max_ns;
    struct slot *slots;
    struct cx__mutex mu;
    pthread_cond_t cond;            /* signalled when a slot is given back */
    uint64_t gen;                   /* guarded by mu: bumped each time the fleet goes down */
    int connecting;                 /* guarded by mu: a reconnect after an outage is under way */
    uint64_t next_attempt;          /* guarded by mu: no reconnect before this (while down) */
    uint64_t backoff_ns;            /* guarded by mu */
    char reason[REASON_MAX];        /* guarded by mu: why the fleet is down */
    uint64_t transitions;           /* guarded by mu: up<->down changes */
    uint64_t noticed;               /* guarded by mu: transitions already told */
    _Atomic int up;                 /* written under mu */
    _Atomic int have_sha;           /* set once, after sha is written under mu */
    char sha[CX__SCRIPT_COUNT][41]; /* written once under mu before have_sha; then read-only */
    _Atomic(uint64_t) n_commands, n_failures, n_outages, n_reconnects, n_connects, n_loads,
        n_corrupt;
};

void cx__fleet_options_init(struct cx__fleet_options *o) {
    if (o == NULL) return;
    memset(o, 0, sizeof *o);
    o->prefix = "cortex";
    o->pool_size = 4;
    o->connect_timeout_ms = 1000;
    o->command_timeout_ms = 1000;
    o->backoff_min_ms = 50;
    o->backoff_max_ms = 2000;
}

const char *cx__fleet_prefix(const struct cx__fleet *f) { return f->prefix; }

void cx__fleet_reply_free(struct redisReply *r) {
    if (r != NULL) freeReplyObject(r);
}

static struct timeval tv_of_ns(uint64_t ns) {
    if (ns < 1000) ns = 1000; /* 0 would mean "no timeout" to the socket */
    struct timeval tv = {.tv_sec = (time_t)(ns / CX_NSEC_PER_SEC),
                         .tv_usec = (suseconds_t)((ns % CX_NSEC_PER_SEC) / 1000)};
    return tv;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ---- state transitions (caller holds mu) ---- */

/* `attempt`: the failure was a connection attempt (which doubles the backoff while down), not
 * one more in-flight command on the dead server (which changes nothing once down). */
static void mark_down_locked(struct cx__fleet *f, const char *reason, int attempt) {
    CX_ASSERT_HELD(&f->mu);
    if (atomic_load(&f->up)) {
        atomic_store(&f->up, 0);
        atomic_fetch_add(&f->n_outages, 1);
        f->transitions++;
        f->gen++;
        f->backoff_ns = f->backoff_min_ns;
    } else if (attempt) {
        f->backoff_ns = min_u64(f->backoff_ns * 2, f->backoff_max_ns);
    } else {
        return;
    }
    f->next_attempt = cx_now_ns() + f->backoff_ns;
    snprintf(f->reason, sizeof f->reason, "%s", reason);
}

static void mark_up_locked(struct cx__fleet *f) {
    CX_ASSERT_HELD(&f->mu);
    if (!atomic_load(&f->up)) {
        atomic_store(&f->up, 1);
        atomic_fetch_add(&f->n_reconnects, 1);
        f->transitions++;
        f->backoff_ns = f->backoff_min_ns;
    }
}

/* ---- connection set-up ---- */

/* Sends one command on a context being set up; NULL reply means the connection broke. */
static redisReply *setup_cmd(redisContext *c, int argc, const char **argv) {
    return redisCommandArgv(c, argc, argv, NULL);
}

/* Translates a broken context into an error. */
static int io_error(struct cx__fleet *f, redisContext *c, int saved_errno, const char *what,
                    struct cx_errinfo *ei) {
    int timed_out = c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
    return cx__err(ei, timed_out ? CX_ETIMEDOUT : CX_ECONN, "Redis at %s (CORTEX_REDIS_URL): %s: %s",
                   f->url.redacted, what, timed_out ? "timed out" : c->errstr);
}

/* Copies a server's error text into a message, unless it contains the password. */
static const char *safe_text(const struct cx__fleet *f, const redisReply *r) {
    if (r == NULL || r->str == NULL) return "";
    if (f->url.password != NULL && f->url.password[0] != '\0' && strstr(r->str, f->url.password))
        return "(server message withheld: it quotes the password)";
    return r->str;
}

static int setup(struct cx__fleet *f, redisContext *c, struct cx_errinfo *ei) {
    redisReply *r;
    const char *argv[4];
    if (f->url.password != NULL) {
        int n = 0;
        argv[n++] = "AUTH";
        if (f->url.user != NULL) argv[n++] = f->url.user;
        argv[n++] = f->url.password;
        r = setup_cmd(c, n, argv);
        if (r == NULL) return io_error(f, c, errno, "AUTH", ei);
        if (r->type == REDIS_REPLY_ERROR) {
            int rc = cx__err(ei, CX_EAUTH, "Redis at %s refused the password (CORTEX_REDIS_PASSWORD "
                             "or the password in CORTEX_REDIS_URL): %s", f->url.redacted,
                             safe_text(f, r));
            freeReplyObject(r);
            return rc;
        }
        freeReplyObject(r);
    }
    argv[0] = "PING";
    r = setup_cmd(c, 1, argv);
    if (r == NULL) return io_error(f, c, errno, "PING", ei);
    if (r->type == REDIS_REPLY_ERROR) {
        int noauth = strncmp(r->str, "NOAUTH", 6) == 0;
        int rc = cx__err(ei, noauth ? CX_EAUTH : CX_EIO,
                         noauth ? "Redis at %s requires a password: set CORTEX_REDIS_PASSWORD or "
                                  "put it in CORTEX_REDIS_URL (%s)"
                                : "Redis at %s (CORTEX_REDIS_URL) answered PING with an error: %s",
                         f->url.redacted, safe_text(f, r));
        freeReplyObject(r);
        return rc;
    }
    freeReplyObject(r);
    if (f->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", f->url.db);
        argv[0] = "SELECT";
        argv[1] = db;
        r = setup_cmd(c, 2, argv);
        if (r == NULL) return io_error(f, c, errno, "SELECT", ei);
        if (r->type == REDIS_REPLY_ERROR) {
            int rc = cx__err(ei, CX_ECONFIG, "CORTEX_REDIS_URL='%s': database %d: %s",
                             f->url.redacted, f->url.db, safe_text(f, r));
            freeReplyObject(r);
            return rc;
        }
        freeReplyObject(r);
    }
    int have = atomic_load(&f->have_sha);
    char sha[CX__SCRIPT_COUNT][41];
    for (int i = 0; i < CX__SCRIPT_COUNT; i++) {
        argv[0] = "SCRIPT";
        argv[1] = "LOAD";
        argv[2] = cx__fleet_script_text[i];
        r = setup_cmd(c, 3, argv);
        if (r == NULL) return io_error(f, c, errno, "SCRIPT LOAD", ei);
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            int unknown = r->type == REDIS_REPLY_ERROR && strstr(r->str, "unknown command");
            int rc = cx__err(ei, unknown ? CX_ENOTSUP : CX_EIO,
                             unknown ? "Redis at %s (CORTEX_REDIS_URL) does not run Lua scripts "
                                       "(SCRIPT is disabled or renamed): fleet mode needs "
                                       "SCRIPT, EVAL and EVALSHA (%s)"
                                     : "Redis at %s (CORTEX_REDIS_URL) refused a fleet script: %s",
                             f->url.redacted, r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);
            return rc;
        }
        memcpy(sha[i], r->str, 40);
        sha[i][40] = '\0';
        freeReplyObject(r);
    }
    argv[0] = "EVALSHA";
    argv[1] = sha[CX__SCRIPT_PROBE];
    argv[2] = "0";
    r = setup_cmd(c, 3, argv);
    if (r == NULL) return io_error(f, c, errno, "EVALSHA", ei);
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        int rc = cx__err(ei, CX_ENOTSUP, "Redis at %s (CORTEX_REDIS_URL) does not run Lua scripts "
                         "(EVALSHA is disabled or renamed): fleet mode needs EVAL and EVALSHA (%s)",
                         f->url.redacted, r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        freeReplyObject(r);
        return rc;
    }
    freeReplyObject(r);
    if (!have) {
        cx__mutex_lock(&f->mu);
        if (!atomic_load(&f->have_sha)) {
            memcpy(f->sha, sha, sizeof sha);
            atomic_store(&f->have_sha, 1);
        }
        cx__mutex_unlock(&f->mu);
    }
    return 0;
}

/* Connects and sets up a context, giving up at the deadline. */
static int connect_ctx(struct cx__fleet *f, uint64_t deadline, redisContext **out,
                       struct cx_errinfo *ei) {
    uint64_t left = cx_deadline_remaining_ns(deadline);
    if (left == 0)
        return cx__err(ei, CX_ETIMEDOUT, "Redis at %s (CORTEX_REDIS_URL): no time left to connect",
                       f->url.redacted);
    uint64_t ct = (uint64_t)f->connect_timeout_ms * CX_NSEC_PER_MSEC;
    struct timeval tv = tv_of_ns(min_u64(left, ct));
    redisContext *c = f->url.is_unix ? redisConnectUnixWithTimeout(f->url.path, tv)
                                     : redisConnectWithTimeout(f->url.host, f->url.port, tv);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "out of memory connecting to Redis");
    if (c->err) {
        int rc = cx__err(ei, CX_ECONN, "cannot connect to Redis at %s (CORTEX_REDIS_URL): %s",
                         f->url.redacted, c->errstr);
        redisFree(c);
        return rc;
    }
    uint64_t cmd = (uint64_t)f->command_timeout_ms * CX_NSEC_PER_MSEC;
    redisSetTimeout(c, tv_of_ns(min_u64(cx_deadline_remaining_ns(deadline) + CX_NSEC_PER_MSEC,
                                        cmd)));
    int rc = setup(f, c, ei);
    if (rc < 0) {
        redisFree(c);
        return rc;
    }
    atomic_fetch_add(&f->n_connects, 1);
    *out = c;
    return 0;
}

/* ---- the pool ---- */

static int checkout(struct cx__fleet *f, uint64_t deadline, struct slot **out,
                    struct cx_errinfo *ei) {
    cx__mutex_lock(&f->mu);
    struct slot *s = NULL;
    for (;;) {
        for (int i = 0; i < f->nslots; i++) {
            struct slot *t = &f->slots[i];
            if (t->busy) continue;
            if (t->c != NULL && t->gen == f->gen) { s = t; break; }
            if (s == NULL) s = t;
        }
        if (s != NULL) break;
        if (cx__cond_wait(&f->cond, &f->mu, deadline) == CX_ETIMEDOUT) {
            cx__mutex_unlock(&f->mu);
            atomic_fetch_add(&f->n_failures, 1);
            return cx__err(ei, CX_ETIMEDOUT, "Redis at %s (CORTEX_REDIS_URL): every connection "
                           "was busy until the deadline", f->url.redacted);
        }
    }
    s->busy = 1;
    if (s->c != NULL && s->gen == f->gen) {
        cx__mutex_unlock(&f->mu);
        *out = s;
        return 0;
    }
    redisContext *old = s->c;
    s->c = NULL;
    int mine = 0;
    if (!atomic_load(&f->up)) {
        uint64_t now = cx_now_ns();
        if (f->connecting || now < f->next_attempt) {
            int rc = cx__err(ei, CX_ECONN, "Redis at %s (CORTEX_REDIS_URL) is unavailable "
                             "(next try in %llu ms): %s", f->url.redacted,
                             (unsigned long long)((f->next_attempt > now ? f->next_attempt - now : 0)
                                                  / CX_NSEC_PER_MSEC), f->reason);
            s->busy = 0;
            pthread_cond_signal(&f->cond);
            cx__mutex_unlock(&f->mu);
            if (old) redisFree(old);
            atomic_fetch_add(&f->n_failures, 1);
            return rc;
        }
        f->connecting = 1;
        mine = 1;
    }
    cx__mutex_unlock(&f->mu);
    if (old) redisFree(old);
    redisContext *c = NULL;
    struct cx_errinfo local;
    int rc = connect_ctx(f, deadline, &c, &local);
    cx__mutex_lock(&f->mu);
    if (mine) f->connecting = 0;
    if (rc < 0) {
        mark_down_locked(f, local.msg, 1);
        s->busy = 0;
        pthread_cond_signal(&f->cond);
        cx__mutex_unlock(&f->mu);
        atomic_fetch_add(&f->n_failures, 1);
        if (ei) *ei = local;
        return rc;
    }
    s->c = c;
    s->gen = f->gen;
    s->timeout_us = -1;
    mark_up_locked(f);
    cx__mutex_unlock(&f->mu);
    *out = s;
    return 0;
}

static void checkin(struct cx__fleet *f, struct slot *s, const char *broken) {
    redisContext *dead = NULL;
    cx__mutex_lock(&f->mu);
    if (broken != NULL) {
        dead = s->c;
        s->c = NULL;
        mark_down_locked(f, broken, 0);
    }
    s->busy = 0;
    pthread_cond_signal(&f->cond);
    cx__mutex_unlock(&f->mu);
    if (dead) redisFree(dead);
}

static int command(struct cx__fleet *f, uint64_t deadline, int argc, const char **argv,
                   const size_t *lens, struct redisReply **out, struct cx_errinfo *ei) {
    if (f == NULL || argv == NULL || argc < 1 || out == NULL)
        return cx__err(ei, CX_EINVAL, "cx__fleet_command: bad arguments");
    *out = NULL;
    struct slot *s = NULL;
    int rc = checkout(f, deadline, &s, ei);
    if (rc < 0) return rc;
    uint64_t left = cx_deadline_remaining_ns(deadline);
    if (left == 0) {
        checkin(f, s, NULL);
        atomic_fetch_add(&f->n_failures, 1);
        return cx__err(ei, CX_ETIMEDOUT, "Redis at %s (CORTEX_REDIS_URL): deadline passed before "
                       "the command was sent", f->url.redacted);
    }
    struct timeval tv = tv_of_ns(min_u64(left, (uint64_t)f->command_timeout_ms * CX_NSEC_PER_MSEC));
    long us = (long)tv.tv_sec * 1000000L + (long)tv.tv_usec;
    /* Only shrinking or growing by more than 10 % costs the two setsockopt calls. */
    if (s->timeout_us < 0 || us < s->timeout_us || us > s->timeout_us + s->timeout_us / 10) {
        redisSetTimeout(s->c, tv);
        s->timeout_us = us;
    }
    errno = 0;
    redisReply *r = redisCommandArgv(s->c, argc, argv, lens);
    if (r == NULL) {
        int saved = errno;
        struct cx_errinfo local;
        rc = io_error(f, s->c, saved, argv[0], &local);
        checkin(f, s, local.msg);
        atomic_fetch_add(&f->n_failures, 1);
        if (ei) *ei = local;
        return rc;
    }
    checkin(f, s, NULL);
    atomic_fetch_add(&f->n_commands, 1);
    *out = r;
    return 0;
}

/* Every round trip (and any connection attempt it makes) runs with the emulated GIL released, as
 * any other blocking I/O does: a caller in gil mode does not hold up the other threads while it
 * waits for Redis. */
int cx__fleet_command(struct cx__fleet *f, uint64_t deadline, int argc, const char **argv,
                      const size_t *lens, struct redisReply **out, struct cx_errinfo *ei) {
    cx_gil_io_begin();
    int rc = command(f, deadline, argc, argv, lens, out, ei);
    cx_gil_io_end();
    return rc;
}

int cx__fleet_eval(struct cx__fleet *f, enum cx__fleet_script sc, uint64_t deadline, int nkeys,
                   const char **keys, int nargs, const char **args, struct redisReply **out,
                   struct cx_errinfo *ei) {
    enum { MAXARG = 24 };
    if (f == NULL || out == NULL || (unsigned)sc >= CX__SCRIPT_COUNT || nkeys < 0 || nargs < 0 ||
        nkeys + nargs + 3 > MAXARG)
        return cx__err(ei, CX_EINVAL, "cx__fleet_eval: bad arguments");
    *out = NULL;
    const char *argv[MAXARG];
    char nk[12];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++) argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++) argv[3 + nkeys + i] = args[i];
    for (int attempt = 0;; attempt++) {
        if (!atomic_load(&f->have_sha)) {
            /* Never connected yet: connecting loads the scripts and sets the digests. */
            const char *ping[1] = {"PING"};
            redisReply *p;
            int rc = cx__fleet_command(f, deadline, 1, ping, NULL, &p, ei);
            if (rc < 0) return rc;
            freeReplyObject(p);
        }
        argv[1] = f->sha[sc];
        redisReply *r;
        int rc = cx__fleet_command(f, deadline, 3 + nkeys + nargs, argv, NULL, &r, ei);
        if (rc < 0) return rc;
        if (r->type != REDIS_REPLY_ERROR) {
            *out = r;
            return 0;
        }
        if (strncmp(r->str, "NOSCRIPT", 8) == 0 && attempt == 0) {
            freeReplyObject(r);
            const char *load[3] = {"SCRIPT", "LOAD", cx__fleet_script_text[sc]};
            rc = cx__fleet_command(f, deadline, 3, load, NULL, &r, ei);
            if (rc < 0) return rc;
            atomic_fetch_add(&f->n_loads, 1);
            int ok = r->type == REDIS_REPLY_STRING;
            freeReplyObject(r);
            if (!ok)
                return cx__err(ei, CX_EIO, "Redis at %s (CORTEX_REDIS_URL): reloading a fleet "
                               "script failed", f->url.redacted);
            continue;
        }
        if (strncmp(r->str, "CXCORRUPT ", 10) == 0) {
            rc = cx__err(ei, CX_ECORRUPT, "Redis (CORTEX_REDIS_URL): %s", r->str + 10);
            atomic_fetch_add(&f->n_corrupt, 1);
        } else {
            rc = cx__err(ei, CX_EIO, "Redis at %s (CORTEX_REDIS_URL): script failed: %s",
                         f->url.redacted, safe_text(f, r));
        }
        freeReplyObject(r);
        return rc;
    }
}

/* ---- open / free ---- */

static int check_prefix(const char *p, struct cx_errinfo *ei) {
    size_t n = strlen(p);
    if (n == 0 || n > PREFIX_MAX)
        return cx__err(ei, CX_ECONFIG, "CORTEX_REDIS_PREFIX='%.80s': must be 1 to %d characters",
                       p, PREFIX_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch >= 0x7f)
            return cx__err(ei, CX_ECONFIG, "CORTEX_REDIS_PREFIX='%.80s': blank, control or "
                           "non-ASCII character at position %zu", p, i + 1);
    }
    return 0;
}

int cx__fleet_open(const struct cx__fleet_options *o, struct cx__fleet **out,
                   struct cx_errinfo *ei) {
    if (o == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx__fleet_open: NULL argument");
    if (o->pool_size < 1 || o->pool_size > 256 || o->connect_timeout_ms < 1 ||
        o->command_timeout_ms < 1 || o->backoff_min_ms < 1 || o->backoff_max_ms < o->backoff_min_ms)
        return cx__err(ei, CX_ECONFIG, "fleet options: pool_size must be in 1..256, timeouts and "
                       "backoffs >= 1 ms with backoff_max_ms >= backoff_min_ms");
    const char *prefix = o->prefix != NULL ? o->prefix : "cortex";
    int rc = check_prefix(prefix, ei);
    if (rc < 0) return rc;
    struct cx__fleet *f = cx__calloc(1, sizeof *f);
    if (f == NULL) return cx__err(ei, CX_ENOMEM, "out of memory opening the fleet");
    rc = cx__redis_url_parse(o->url, "CORTEX_REDIS_URL", o->password, &f->url, ei);
    if (rc < 0) {
        cx__free(f);
        return rc;
    }
    snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
    f->nslots = o->pool_size;
    f->connect_timeout_ms = o->connect_timeout_ms;
    f->command_timeout_ms = o->command_timeout_ms;
    f->backoff_min_ns = (uint64_t)o->backoff_min_ms * CX_NSEC_PER_MSEC;
    f->backoff_max_ns = (uint64_t)o->backoff_max_ms * CX_NSEC_PER_MSEC;
    f->backoff_ns = f->backoff_min_ns;
    f->slots = cx__calloc((size_t)f->nslots, sizeof *f->slots);
    if (f->slots == NULL || cx__mutex_init(&f->mu) < 0) {
        cx__free(f->slots);
        cx__redis_url_clear(&f->url);
        cx__free(f);
        return cx__err(ei, CX_ENOMEM, "out of memory opening the fleet");
    }
    if (cx__cond_init(&f->cond) < 0) {
        cx__mutex_destroy(&f->mu);
        cx__free(f->slots);
        cx__redis_url_clear(&f->url);
        cx__free(f);
        return cx__err(ei, CX_ENOMEM, "out of memory opening the fleet");
    }
    /* Connect the first context now, so bad settings are reported at open. It counts as up
     * until proven otherwise; a failure below is the first outage. */
    atomic_store(&f->up, 1);
    redisContext *c = NULL;
    uint64_t deadline = cx_deadline_after_ms(o->connect_timeout_ms * 2 + o->command_timeout_ms * 4);
    struct cx_errinfo local;
    rc = connect_ctx(f, deadline, &c, &local);
    if (rc < 0) {
        if (ei) *ei = local;
        if (!o->optional || rc == CX_ENOMEM || rc == CX_ECONFIG) {
            cx__fleet_free(f);
            return rc;
        }
        cx__mutex_lock(&f->mu);
        mark_down_locked(f, local.msg, 1);
        cx__mutex_unlock(&f->mu);
    } else {
        f->slots[0].c = c;
        f->slots[0].gen = 0;
        f->slots[0].timeout_us = -1;
    }
    *out = f;
    return 0;
}

void cx__fleet_free(struct cx__fleet *f) {
    if (f == NULL) return;
    for (int i = 0; i < f->nslots; i++)
        if (f->slots[i].c) redisFree(f->slots[i].c);
    cx__free(f->slots);
    pthread_cond_destroy(&f->cond);
    cx__mutex_destroy(&f->mu);
    cx__redis_url_clear(&f->url);
    cx__free(f);
}

/* ---- health ---- */

int cx__fleet_up(struct cx__fleet *f) { return f != NULL && atomic_load(&f->up); }

void cx__fleet_note_corrupt(struct cx__fleet *f) { atomic_fetch_add(&f->n_corrupt, 1); }

void cx__fleet_stats(struct cx__fleet *f, struct cx__fleet_stats *o) {
    memset(o, 0, sizeof *o);
    if (f == NULL) return;
    o->up = atomic_load(&f->up);
    o->commands = atomic_load(&f->n_commands);
    o->failures = atomic_load(&f->n_failures);
    o->outages = atomic_load(&f->n_outages);
    o->reconnects = atomic_load(&f->n_reconnects);
    o->connects = atomic_load(&f->n_connects);
    o->script_loads = atomic_load(&f->n_loads);
    o->corrupt = atomic_load(&f->n_corrupt);
}

int cx__fleet_notice(struct cx__fleet *f, char *buf, size_t n) {
    if (f == NULL || buf == NULL || n == 0) return 0;
    cx__mutex_lock(&f->mu);
    int told = 0;
    if (f->transitions != f->noticed) {
        f->noticed = f->transitions;
        if (atomic_load(&f->up))
            snprintf(buf, n, "Redis at %s (CORTEX_REDIS_URL) is reachable again; fleet limits and "
                     "cache are shared again", f->url.redacted);
        else
            snprintf(buf, n, "Redis at %s (CORTEX_REDIS_URL) is unavailable (%s); falling back to "
                     "local limits and cache", f->url.redacted, f->reason);
        told = 1;
    }
    cx__mutex_unlock(&f->mu);
    return told;
}
