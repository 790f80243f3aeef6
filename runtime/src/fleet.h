/*
 * fleet.h - internal: the connection to the Redis server a fleet of cx processes shares, and the
 * parsing of its URL. The limiter backend (fleet_ratelimit.h) and the shared cache with its
 * fleet-wide single flight (fleet_cache.h) run their commands through this.
 *
 * Internal: the pipeline opens it from the configuration (pipeline_fleet.c) and hands the fleet
 * limit to the router (cx__router_use_ratelimit); users see it through cx_pipeline_fleet_stats
 * and cx_pipeline_fleet_notice (cx/pipeline.h).
 *
 * URL forms (CORTEX_REDIS_URL):
 *     redis://[[user]:password@]host[:port][/db]   port 6379 and db 0 by default; host may be
 *                                                  an IPv6 literal in brackets
 *     unix:///path/to/redis.sock[?db=N]            also redis+unix:// and unix://[:pw@]/path
 *     rediss://...                                 refused: this build has no TLS for Redis
 * user and password may be percent-encoded. A password from CORTEX_REDIS_PASSWORD (the
 * `password` option) wins over one in the URL. Passwords never appear in a message: every
 * message quotes the URL with the password replaced by "***".
 *
 * Connection. A small pool of hiredis contexts (options.pool_size, default 4), each used by one
 * thread at a time: a command checks a context out, runs with a socket timeout no longer than
 * its deadline (and command_timeout_ms), and checks it back in. A context that saw an I/O error
 * is dropped; the first such error marks the fleet "down", bumps a generation so the other idle
 * contexts (dead too, most likely) are reconnected rather than reused, and schedules the next
 * connection attempt after a backoff that doubles from backoff_min_ms to backoff_max_ms. While
 * down and inside the backoff, every command fails at once with CX_ECONN, so callers fall back
 * to their local tier without waiting; only one thread at a time tries to reconnect. A new
 * connection authenticates, selects the database and loads every script (SCRIPT LOAD), so a
 * restarted server has them again before the first EVALSHA; NOSCRIPT (a SCRIPT FLUSH) reloads
 * and retries once.
 *
 * Telling the user. Each transition (up to down, down to up) is counted and can be collected
 * once with cx__fleet_notice(), so a caller prints "Redis is down, using local limits" once per
 * outage instead of once per call.
 *
 * Threads: every function here may be called from any thread, except _free (once, after every
 * other call returned). hiredis's own allocations do not go through cx__malloc (hiredis 0.14 has
 * no allocator hook and aborts on out-of-memory).
 */
#ifndef CX_FLEET_H
#define CX_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"

/* ---- the URL ---- */

struct cx__redis_url {
    int is_unix;      /* 1: path is a socket path; 0: host and port */
    char *host;       /* TCP host (brackets of an IPv6 literal removed), NULL for unix */
    int port;         /* TCP port (1..65535), 0 for unix */
    char *path;       /* socket path, NULL for TCP */
    int db;           /* database number (0..INT_MAX; the server says if it has that many) */
    char *user;       /* ACL user, NULL when none */
    char *password;   /* secret: NULL when none; wiped by cx__redis_url_clear */
    char *redacted;   /* the URL as given with the password replaced by "***" (for messages) */
};

/*
 * Parses url (borrowed). `setting` (borrowed) names where the URL came from for messages, e.g.
 * "CORTEX_REDIS_URL". password (borrowed, NULL or "" for none) overrides the URL's. On success
 * *out owns its strings (release with cx__redis_url_clear); on failure *out is zeroed.
 * Returns 0, CX_ECONFIG (malformed: the message names the setting and the redacted URL),
 * CX_ENOTSUP (rediss://), CX_ENOMEM, CX_EINVAL (NULL arguments).
 * Threads: any thread.
 */
int cx__redis_url_parse(const char *url, const char *setting, const char *password,
                        struct cx__redis_url *out, struct cx_errinfo *ei);
/* Frees and zeroes *u (the password wiped first). NULL is fine. */
void cx__redis_url_clear(struct cx__redis_url *u);

/* ---- the connection ---- */

struct cx__fleet_options {
    const char *url;            /* borrowed: required */
    const char *password;       /* borrowed: NULL = the URL's (CORTEX_REDIS_PASSWORD) */
    const char *prefix;         /* borrowed: key prefix of this fleet (default "cortex") */
    int optional;               /* 1: open succeeds with Redis unreachable (starts down) */
    int pool_size;              /* contexts (1..256, default 4) */
    int connect_timeout_ms;     /* per connection attempt (default 1000) */
    int command_timeout_ms;     /* socket timeout of one command (default 1000) */
    int backoff_min_ms;         /* first reconnect delay (default 50) */
    int backoff_max_ms;         /* reconnect delay cap (default 2000) */
};

/* Fills o with the defaults (url NULL). Threads: any thread. */
void cx__fleet_options_init(struct cx__fleet_options *o);

struct cx__fleet;

/*
 * Parses the URL and connects one context (authenticating, selecting the db, loading the
 * scripts, checking that scripting works). o: borrowed. out: returned, free with cx__fleet_free.
 * Errors (ei names the setting: CORTEX_REDIS_URL or CORTEX_REDIS_PASSWORD): the URL's errors;
 * CX_ECONFIG (bad option, unknown database); and, unless o->optional, CX_ECONN (refused,
 * unreachable, timed out), CX_EAUTH (password refused or required), CX_ENOTSUP (scripting
 * disabled). With o->optional those last three open a fleet that starts down (the reason is
 * in ei and in the first notice) and reconnects with backoff.
 * Threads: any thread.
 */
int cx__fleet_open(const struct cx__fleet_options *o, struct cx__fleet **out,
                   struct cx_errinfo *ei);
/* Closes every context and frees f (NULL is fine). Threads: once, with no call in progress. */
void cx__fleet_free(struct cx__fleet *f);

/* The key prefix (borrowed from f, with no trailing ':'). */
const char *cx__fleet_prefix(const struct cx__fleet *f);

/* A reply: hiredis's redisReply, opaque to users of this header except through these. */
struct redisReply;
void cx__fleet_reply_free(struct redisReply *r);

/*
 * Runs one command (argv/lens borrowed; lens NULL means strlen) and returns its reply in *out
 * (returned: cx__fleet_reply_free), which may be an error reply (the caller interprets it).
 * Gives up at `deadline` (never waits for a context or the server beyond it).
 * Returns 0, CX_ECONN (down, or the connection broke: f goes down), CX_ETIMEDOUT (no context
 * free, or the server did not answer in time: f goes down), CX_ENOMEM.
 * Threads: any thread.
 */
int cx__fleet_command(struct cx__fleet *f, uint64_t deadline, int argc, const char **argv,
                      const size_t *lens, struct redisReply **out, struct cx_errinfo *ei);

/* The scripts every connection loads (fleet_ratelimit.c and fleet_cache.c hold their text). */
enum cx__fleet_script {
    CX__SCRIPT_RESERVE = 0, /* GCRA request + token buckets and the pause check */
    CX__SCRIPT_ADJUST,      /* usage correction of the token bucket */
    CX__SCRIPT_PAUSE,       /* a fleet-wide pause */
    CX__SCRIPT_CACHE_GET,   /* value + LRU touch */
    CX__SCRIPT_CACHE_PUT,   /* value with TTL + LRU + trim */
    CX__SCRIPT_FLIGHT,      /* value, else take the lock, else the lock's remaining lease */
    CX__SCRIPT_RELEASE,     /* drop the lock if it is still ours */
    CX__SCRIPT_PROBE,       /* "return 1": does the server run scripts at all? */
    CX__SCRIPT_COUNT
};
extern const char *const cx__fleet_script_text[CX__SCRIPT_COUNT];

/*
 * EVALSHA of script `s` with nkeys keys then the args (all borrowed, NUL-terminated), reloading
 * the script on NOSCRIPT and retrying once. An error reply whose text starts with "CXCORRUPT "
 * (our scripts' way of saying a key holds something foreign) becomes CX_ECORRUPT with a message
 * naming the key; any other error reply becomes CX_EIO with the server's text. On 0, *out is a
 * non-error reply. Other returns as cx__fleet_command.
 * Threads: any thread.
 */
int cx__fleet_eval(struct cx__fleet *f, enum cx__fleet_script s, uint64_t deadline, int nkeys,
                   const char **keys, int nargs, const char **args, struct redisReply **out,
                   struct cx_errinfo *ei);

/* 1 while the last command (or connection attempt) succeeded. Threads: any thread. */
int cx__fleet_up(struct cx__fleet *f);

struct cx__fleet_stats {
    int up;                 /* as cx__fleet_up */
    uint64_t commands;      /* commands that got a reply */
    uint64_t failures;      /* commands refused or broken by the connection (CX_ECONN/ETIMEDOUT) */
    uint64_t outages;       /* transitions up -> down (a start that failed counts as one) */
    uint64_t reconnects;    /* transitions down -> up */
    uint64_t connects;      /* successful connection set-ups */
    uint64_t script_loads;  /* NOSCRIPT reloads */
    uint64_t corrupt;       /* CX_ECORRUPT replies (a foreign value under our keys) */
};
void cx__fleet_stats(struct cx__fleet *f, struct cx__fleet_stats *out);

/*
 * Counts a corrupt-key error (the scripts' callers report it through here so stats see it).
 */
void cx__fleet_note_corrupt(struct cx__fleet *f);

/*
 * Once per transition: when f went down or came back since the last call, writes a one-line
 * message ("Redis at redis://:***@h:1/0 (CORTEX_REDIS_URL) is unreachable (Connection refused);
 * falling back to local limits and cache" / "... is reachable again") into buf and returns 1;
 * otherwise returns 0 and leaves buf alone. Several transitions between two calls give the
 * latest state. Threads: any thread (one of several racing callers gets each message).
 */
int cx__fleet_notice(struct cx__fleet *f, char *buf, size_t n);

#endif /* CX_FLEET_H */
