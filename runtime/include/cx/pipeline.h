/*
 * cx/pipeline.h - the seed's end-to-end use case: "install nginx redis postgresql docker nodejs".
 *
 *   a package list -> one LLM query per package, in parallel (executor + router) -> parse and
 *   validate each answer -> merge the plans (cx/plan.h: one apt-get update, order kept,
 *   duplicates removed) -> the apt step (dry run by default; a simulated apt of configurable
 *   duration for deterministic benchmarks; real execution only when asked for and confirmed)
 *   -> one row in the installation history (request, plan, validation, what ran, timings).
 *
 * A plan in which the validator rejected any command is refused as a whole: nothing runs, the
 * report lists the validator's reasons per package. Rejected answers are never cached.
 *
 * The library takes a package list and options; turning a command line or an English sentence
 * into that list, preparing the data directory and actually spawning commands are the caller's
 * (the `cx` command, cli/). For CX_APT_EXECUTE the caller gives the command runner
 * (run_options.execute); the library only decides whether and in what order it is called.
 *
 * The seed's two other fan-outs run through the same machinery: diagnosing several error
 * messages at once, and hardware checks (CPU, memory, disk, GPU probed concurrently, then one
 * query per component).
 *
 * THE LIFE OF A QUERY (one package of `cx install nginx`; runtime/src/pipeline_query.c holds
 * the state machine, runtime/src/router_call.c the router's):
 *   caller thread   cx_pipeline_install: prompts, then an executor for the run, one task per
 *                   query (cx_executor_run: submit + wait, GIL released while it waits).
 *   worker          LOOKUP    cx_cache_get under the router's endpoint name for the query
 *                             (cx_router_endpoint); a hit skips to PARSE (a similarity hit for
 *                             an install must name the requested package, else it is a miss).
 *   worker          FLEET     (fleet mode, after a local miss) the shared Redis tier and fleet
 *                             single flight: another process's answer is a hit (cache_tier
 *                             "fleet"); if another process is asking, the task suspends and the
 *                             pipeline's poller thread resumes it with the answer (or as the
 *                             new leader when that process died); else this query leads.
 *   worker          SUBMIT    thread-local design: cx_router_complete; this worker drives the
 *                             router's call itself and BLOCKS in its waits and its curl
 *                             transfer (GIL released). Hybrid design: cx_task_suspend +
 *                             cx_router_submit, the task returns and the worker is free.
 *   I/O thread      (hybrid)  the router's call: limiter reservation, the shared Retry-After
 *                             pause checked right before each send, the transfer in the curl
 *                             multi handle, retries / backoff / fallback as loop timers, single
 *                             flight; then ONE cx_task_resume with the raw answer or a typed
 *                             error (never inside the submit call).
 *   worker          ANSWERED -> PARSE (once) -> VALIDATE -> PUT (queued for the cache writer,
 *                             never waited for here; in fleet mode also one Redis write, which
 *                             ends this query's flight) -> FILL the report item.
 *   caller thread   after the batch: waits (GIL released) for the run's cache writes to
 *                   commit, merges the plans, the apt step, the history row.
 * Per query: at most one suspend/resume cycle and one parse; in gil mode every parse and
 * validation holds the emulated GIL in both designs (the router's wire decoding of a hybrid
 * answer runs on the I/O thread, outside it, like an event loop's), so the GIL-vs-free
 * comparison stays fair. CX_IO_AUTO picks a design per run (cx_io_choose) from the batch size
 * and the CPU share measured on earlier runs.
 *
 * The response cache also answers similar prompts unless similar_cache is 0 (see the option).
 * Cache keys name the server (cx/router.h), so answers of a mock are never served for a real
 * API.
 *
 * Typical use:
 *     struct cx_pipeline_options o; cx_pipeline_options_init(&o);
 *     o.config = &cfg; o.db_path = "/home/me/.local/share/cortex/cortex.db";
 *     cx_pipeline_new(&o, &p, &ei);
 *     struct cx_run_options ro; cx_run_options_init(&ro);
 *     const char *pkgs[] = {"nginx", "redis"};
 *     rc = cx_pipeline_install(p, pkgs, 2, &ro, &rep, &ei);
 *     ... rep->plan.commands, rep->rejected ...; cx_install_report_free(rep);
 *     cx_pipeline_free(p);
 */
#ifndef CX_PIPELINE_H
#define CX_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"
#include "cx/config.h"
#include "cx/plan.h"
#include "cx/router.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most packages (error messages) per run. */
#define CX_PIPELINE_MAX_PACKAGES 1024

/* What the apt step does with a merged plan. */
enum cx_apt_mode {
    CX_APT_DRY_RUN = 0,  /* print the plan, run nothing (the default) */
    CX_APT_SIMULATE = 1, /* pretend: sleep apt_sim_ns (released GIL), run nothing */
    CX_APT_EXECUTE = 2   /* run each command through run_options.execute, in order, stop at the
                            first failure; only after run_options.confirm said yes */
};
/* "dry-run", "simulate", "execute" ("unknown" otherwise). Threads: any thread. */
CX_API const char *cx_apt_mode_name(enum cx_apt_mode m);

struct cx_pipeline_options {
    const struct cx_config *config; /* borrowed for cx_pipeline_new only: keys, base URLs, rate
                                       limits, pool sizes, timeouts, the cache threshold. NULL:
                                       cx_config_init defaults (no provider: set base_url) */
    const char *base_url;      /* overrides config->base_url (e.g. the mock's URL + "/v1") */
    enum cx_provider provider; /* CX_PROVIDER_AUTO (default): route by task type; a provider
                                  forces it for every query (with base_url: CLAUDE speaks the
                                  Anthropic wire format to it, OPENAI the OpenAI one) */
    const char *model;         /* NULL: the provider's default */
    const char *db_path;       /* SQLite file holding the cache and the history; NULL: neither
                                  (nothing is cached, nothing recorded) */
    int use_cache;             /* 1 (default): cache answers in db_path */
    int similar_cache;         /* 1 (default): also similarity hits at
                                  config->cache_similarity_threshold, with the entity-aware
                                  matcher (cx_cache_options.entity_match: package names,
                                  versions, actions, negation, numbers, paths and the words of
                                  an error message must be identical; measured precision 100 %
                                  on 686 labelled pairs, see bench_cache_quality). 0: exact hits
                                  only. An install query still uses a similar hit only if the
                                  cached plan's "package" field or one of its commands names
                                  the requested package (as a whole word); otherwise it is a
                                  miss and the LLM is asked. Diagnose and hwcheck queries use
                                  similar hits as they are */
    const char *cache_endpoint;/* names the base URL's server in cache keys instead of its URL,
                                  for a server whose URL changes between runs (the CLI's
                                  embedded mock, on an ephemeral port); NULL: the URL */
    int no_history;            /* 1: record no history row (the cache may still be used) */
    enum cx_exec_mode mode;    /* default: config->exec_mode (free) */
    int have_mode;             /* 1: use `mode`, 0: take it from config */
    int threads;               /* worker threads; 0 (default): chosen per run (cx_io_choose),
                                  capped by config->thread_pool_size */
    enum cx_io_design io;      /* default: config->io_design (auto) */
    int have_io;               /* 1: use `io`, 0: take it from config */
    double rate_limit_rps;     /* > 0 overrides config->rate_limit_rps (benchmarks: large) */
    int max_attempts;          /* per provider; 0: the router's default (3) */
    uint64_t backoff_base_ns;  /* 0: the router's default */
    uint64_t seed;             /* router jitter seed; 0: the router's default */
};
/* Fills defaults. Threads: any thread. */
CX_API void cx_pipeline_options_init(struct cx_pipeline_options *o);

/* Per-run settings. */
struct cx_run_options {
    enum cx_apt_mode apt_mode; /* default CX_APT_DRY_RUN */
    uint64_t apt_sim_ns;       /* CX_APT_SIMULATE: how long the pretend apt takes */
    /* Called on the calling thread after each query completes (never concurrently). */
    void (*progress)(size_t done, size_t total, void *ud);
    void *progress_ud;
    /* CX_APT_EXECUTE only: asked once with the merged plan; return 1 to run it. NULL: refuse. */
    int (*confirm)(const struct cx_plan *plan, void *ud);
    void *confirm_ud;
    /* CX_APT_EXECUTE only: runs one command (borrowed) and returns its exit status (0: success,
     * > 0: failed, < 0: could not start). Called on the calling thread, in plan order, after
     * confirm said yes. NULL: execution is refused. */
    int (*execute)(const char *command, void *ud);
    void *execute_ud;
    uint64_t deadline;         /* for every query (cx/clock.h); default CX_DEADLINE_NONE */
    const char *extra_header;  /* one extra HTTP header on every query (tests); NULL: none */
};
/* Threads: any thread. */
CX_API void cx_run_options_init(struct cx_run_options *o);

/* Per-phase wall times of one run, seconds. */
struct cx_timings {
    double parse_s;  /* preparing the queries (and the bench-only parse work) */
    double llm_s;    /* the fan-out: first query submitted to last answer validated */
    double merge_s;  /* merging the plans */
    double apt_s;    /* the apt step (0 for a dry run or a refused plan) */
    double total_s;
    double limiter_wait_s; /* of llm_s, the wall time during which at least one answered query
                              was waiting for the shared request limiter (CORTEX_RATE_LIMIT_RPS):
                              how much of the run the limiter, not the server, accounts for;
                              0 without a limiter */
};

/* One query's outcome (one package, one error message or one hardware component). */
struct cx_item {
    char *subject;       /* the package, the file's label, or the component */
    int status;          /* 0; CX_EREJECTED (validator); or the query's error */
    char *error;         /* message when status < 0 (for CX_EREJECTED: the reasons joined) */
    char **reasons;      /* CX_EREJECTED: the validator's reasons, one per rejected command */
    size_t n_reasons;
    int from_cache;      /* answered from the response cache */
    char **commands;     /* the answer's commands (install plan, fix, advice) */
    size_t n_commands;
    char *text;          /* explanation (install), cause (diagnose); NULL when absent */
    char **advice;       /* hwcheck: the recommendations */
    size_t n_advice;
    char *details;       /* hwcheck: what the probe found ("8 cores, ..."); NULL otherwise */
    double latency_s;    /* the query's wall time */
    const char *cache_tier; /* from_cache: "local" (this machine's SQLite cache) or "fleet" (the
                               shared Redis tier: another process's answer); NULL otherwise */
};

struct cx_install_report {
    char *request;             /* "install nginx redis": the packages, for people and the history */
    struct cx_item *items;     /* one per package, in request order */
    size_t n_items;
    struct cx_plan plan;       /* the merged plan (empty when every query failed) */
    size_t cache_hits;         /* packages answered from the cache */
    size_t failed;             /* queries that failed (not counting rejected ones) */
    size_t rejected;           /* packages whose plan the validator rejected */
    int refused;               /* 1: nothing ran because a command was rejected, or --execute
                                  was not confirmed (see refused_reason) */
    const char *refused_reason;/* static text, NULL when not refused */
    enum cx_apt_mode apt_mode;
    size_t ran;                /* commands executed (CX_APT_EXECUTE) */
    int exec_status;           /* exit status of the first failing command, 0 otherwise */
    enum cx_exec_mode mode;    /* what the run used */
    enum cx_io_design io;      /* the resolved design (never AUTO) */
    int threads;               /* worker threads used */
    struct cx_timings timings;
    int64_t history_id;        /* the history row, -1 when not recorded */
    char *history_error;       /* why recording failed (the run's result stands), else NULL */
};
/* Frees a report. Accepts NULL. Threads: any thread. */
CX_API void cx_install_report_free(struct cx_install_report *r);

/* diagnose and hwcheck. */
struct cx_fanout_report {
    struct cx_item *items;
    size_t n_items;
    size_t cache_hits;
    size_t failed;             /* including rejected ones */
    enum cx_exec_mode mode;
    enum cx_io_design io;
    int threads;
    struct cx_timings timings; /* parse_s: reading inputs / probing hardware; merge_s, apt_s 0 */
};
/* Frees a report. Accepts NULL. Threads: any thread. */
CX_API void cx_fanout_report_free(struct cx_fanout_report *r);

struct cx_pipeline;
struct cx_cache;
struct cx_pool;

/*
 * Opens the database (when db_path is set; its directory must exist),
 * the cache, the rate limiter, the I/O loop and the router. Nothing is sent yet.
 * o: borrowed. *out: returned, free with cx_pipeline_free.
 * Errors: CX_EINVAL (bad option, named), CX_ENOPROVIDER (no key, no base URL), the pool's errors
 * naming the database path (CX_EPERM, CX_ECORRUPT...), CX_ENOMEM, CX_EIO; with
 * config->redis_url (fleet mode) and config->redis_optional 0: CX_ECONN (refused, unreachable),
 * CX_EAUTH (password refused or required), CX_ENOTSUP (the server runs no Lua scripts),
 * CX_ECONFIG (no such database), each message naming CORTEX_REDIS_URL or CORTEX_REDIS_PASSWORD.
 * With redis_optional 1 those start the fleet down (local limits at quota / fleet_size and the
 * local cache) and it reconnects with backoff; cx_pipeline_fleet_notice says so.
 * Threads: any thread.
 */
CX_API int cx_pipeline_new(const struct cx_pipeline_options *o, struct cx_pipeline **out,
                           struct cx_errinfo *ei);

/* Frees everything. No run may be in progress. Accepts NULL. Threads: any thread, once. */
CX_API void cx_pipeline_free(struct cx_pipeline *p);

/*
 * Runs the install pipeline for the n packages pkgs[] (borrowed; one query each, in this order).
 * Each name must pass cx_validate_package_name (CX_EINVAL naming it whole: "package 'nginx
 * redis': package name contains a blank"); n must be 1..CX_PIPELINE_MAX_PACKAGES (CX_EINVAL,
 * CX_ETOOBIG). On return 0, CX_EREJECTED (plan refused: a command
 * was rejected, or execution not confirmed), CX_EFAILED (some queries failed; the plan merges
 * the others and a dry run / simulation still happens; execution is refused) or CX_EIO (an
 * executed command failed), *out holds the report (free with cx_install_report_free) and the
 * run is recorded in the history. Other errors (CX_EINVAL bad request, CX_ENOMEM, CX_ECLOSED)
 * leave *out NULL and record nothing.
 * Threads: any thread; several runs may share one pipeline concurrently.
 */
CX_API int cx_pipeline_install(struct cx_pipeline *p, const char *const *pkgs, size_t n,
                               const struct cx_run_options *ro, struct cx_install_report **out,
                               struct cx_errinfo *ei);

/*
 * Diagnoses n error messages at once (one query each, "Diagnose error: <text>"). labels[i] names
 * item i (a file name; NULL: "error i+1"). Returns 0 or CX_EFAILED (some failed) with *out set,
 * else an error with *out NULL. Threads: any thread.
 */
CX_API int cx_pipeline_diagnose(struct cx_pipeline *p, const char *const *errors,
                                const char *const *labels, size_t n,
                                const struct cx_run_options *ro, struct cx_fanout_report **out,
                                struct cx_errinfo *ei);

/*
 * Probes CPU, memory, disk (of `disk_path`, NULL: "/") and GPU concurrently, then asks one query
 * per component ("Hardware check: <component> <details>"). Returns as cx_pipeline_diagnose.
 * Threads: any thread.
 */
CX_API int cx_pipeline_hwcheck(struct cx_pipeline *p, const char *disk_path,
                               const struct cx_run_options *ro, struct cx_fanout_report **out,
                               struct cx_errinfo *ei);

/* The pipeline's cache and pool (NULL without a database / without caching): for `cx cache`
 * and `cx history`. Borrowed: valid until cx_pipeline_free. Threads: any thread. */
CX_API struct cx_cache *cx_pipeline_cache(struct cx_pipeline *p);
CX_API struct cx_pool *cx_pipeline_pool(struct cx_pipeline *p);
/* The shared request limiter (NULL when CORTEX_RATE_LIMIT_RPS is 0: no limit), for a caller
 * that tells its user when a run waits on it (cx_limiter_tokens < 0: requests queue for
 * tokens). Borrowed: valid until cx_pipeline_free. Threads: any thread. */
CX_API struct cx_limiter *cx_pipeline_limiter(struct cx_pipeline *p);

/* Fleet mode (CORTEX_REDIS_URL): what the shared Redis tier did for this pipeline so far. */
struct cx_fleet_stats {
    int configured;              /* 0: no fleet (every other field 0) */
    int up;                      /* Redis answered the last command */
    uint64_t outages;            /* up -> down transitions (a start that failed counts) */
    uint64_t reconnects;         /* down -> up transitions */
    uint64_t commands;           /* Redis commands answered */
    uint64_t corrupt;            /* replies naming a foreign value under one of our keys */
    uint64_t limiter_fallbacks;  /* rate-limit calls served locally at quota / CORTEX_FLEET_SIZE */
    uint64_t cache_hits;         /* queries answered by the shared tier (another process's answer) */
    uint64_t cache_puts;         /* answers written to the shared tier */
    uint64_t flights_led;        /* queries that took the fleet-wide single-flight lock */
    uint64_t flights_waited;     /* queries that waited for another process's identical query */
    uint64_t takeovers;          /* waits that ended by leading (the other leader died or gave up) */
    uint64_t alone;              /* queries that asked upstream alone because Redis was down */
};
/* A snapshot (zeroed without a fleet). Threads: any thread. */
CX_API void cx_pipeline_fleet_stats(struct cx_pipeline *p, struct cx_fleet_stats *out);

/*
 * Once per change of the fleet's state (Redis went down, or came back), writes a one-line
 * message into buf (n bytes) and returns 1, e.g. "Redis at redis://:***@h:6379/0
 * (CORTEX_REDIS_URL) is unreachable (Connection refused); falling back to local limits and
 * cache"; returns 0 when nothing changed since the last call (or without a fleet). The library
 * never prints: the caller (the `cx` command) shows it. Threads: any thread.
 */
CX_API int cx_pipeline_fleet_notice(struct cx_pipeline *p, char *buf, size_t n);

/* The database file name the `cx` command keeps in its data directory (db_path's usual name). */
#define CX_DB_FILE "cortex.db"

#ifdef __cplusplus
}
#endif
#endif /* CX_PIPELINE_H */
