/*
 * cx/config.h - the runtime's settings, and the ONE place environment variables are read.
 *
 * struct cx_config is a plain value: cx_config_init() fills in the defaults, cx_config_load_env()
 * overrides them from the CORTEX_* variables (and the few standard ones such as
 * ANTHROPIC_API_KEY, XDG_DATA_HOME, HOME), and the caller hands the fields it needs to the other
 * modules as their options. No other module calls getenv().
 *
 * Rules for every variable: unset or empty means "use the default"; numbers are parsed strictly
 * (the whole value must be a number in range, surrounding blanks allowed); a bad value fails the
 * whole load with CX_ECONFIG and a message naming the variable and its value, e.g.
 * "CORTEX_RATE_LIMIT_RPS='abc': not a number". API keys are never put in messages or logs.
 *
 *   variable                            field                       default
 *   CORTEX_RATE_LIMIT_RPS               rate_limit_rps              5.0      (>= 0, finite;
 *                                        0, inf, infinity, unlimited or off: no limit, stored 0)
 *   CORTEX_RATE_LIMIT_BURST             rate_limit_burst            rps - 1 when rps > 2, else 1
 *                                        (>= 1, finite, burst/rps <= 1e9 s): one token below a
 *                                        provider bucket of max(1, rps), see config.c
 *   CORTEX_TOKENS_PER_MINUTE            tokens_per_minute           0 = unlimited (0 or >= 1)
 *   CORTEX_THREAD_POOL_SIZE             thread_pool_size            10       (1..1024)
 *   CORTEX_DB_POOL_SIZE                 db_pool_size                5        (1..64)
 *   CORTEX_CACHE_MAX_ENTRIES            cache_max_entries           500      (1..INT_MAX)
 *   CORTEX_CACHE_SIMILARITY_THRESHOLD   cache_similarity_threshold  0.86     (0 < x <= 1)
 *   CORTEX_EXEC_MODE                    exec_mode                   free     (serial|gil|free)
 *   CORTEX_USE_FREE_THREADING           exec_mode                   1 = free, 0 = not free (gil)
 *   CORTEX_GIL_SWITCH_INTERVAL_MS       gil_switch_interval_ns      5 ms     (0 < ms <= 60000,
 *                                                                    fractions allowed)
 *   CORTEX_IO_DESIGN                    io_design                   auto     (thread|hybrid|auto)
 *   CORTEX_DATA_DIR                     data_dir                    $XDG_DATA_HOME/cortex if
 *                                        XDG_DATA_HOME is an absolute path, else
 *                                        $HOME/.local/share/cortex, else NULL
 *   CORTEX_BASE_URL                     base_url                    NULL
 *   CORTEX_ANTHROPIC_API_KEY, then ANTHROPIC_API_KEY    anthropic_api_key   NULL
 *   CORTEX_OPENAI_API_KEY, then OPENAI_API_KEY          openai_api_key      NULL
 *   CORTEX_KIMI_API_KEY, then KIMI_API_KEY              kimi_api_key        NULL
 *   CORTEX_OLLAMA_BASE_URL, then OLLAMA_HOST            ollama_base_url     NULL
 *   CORTEX_REQUEST_TIMEOUT_MS           request_timeout_ms          60000    (1..86400000)
 *   CORTEX_CONNECT_TIMEOUT_MS           connect_timeout_ms          10000    (1..3600000)
 *   CORTEX_MAX_RETRIES                  max_retries                 3        (0..100)
 *   CORTEX_REDIS_URL                    redis_url                   NULL = no fleet (forms in
 *                                        runtime/src/fleet.h: redis://[[user]:pw@]host[:port][/db],
 *                                        unix:///path?db=N; rediss:// is refused). Checked here;
 *                                        a secret, since it may hold a password: never quoted
 *                                        unredacted, wiped by cx_config_clear
 *   CORTEX_REDIS_PASSWORD               redis_password              NULL (a secret; wins over the
 *                                        URL's; refused without CORTEX_REDIS_URL)
 *   CORTEX_REDIS_PREFIX                 redis_prefix                NULL = "cortex" (1..64
 *                                        printable ASCII characters, no blanks): one per fleet
 *   CORTEX_FLEET_SIZE                   fleet_size                  1        (1..100000): while
 *                                        Redis is down each process limits itself to quota / N
 *   CORTEX_REDIS_OPTIONAL               redis_optional              0        (1: run without the
 *                                        fleet when Redis cannot be reached at start)
 *
 * Execution mode: CORTEX_EXEC_MODE names it; CORTEX_USE_FREE_THREADING is the seed's switch
 * (1/true/yes/on = free, 0/false/no/off = gil). When both are set they must agree: "1" agrees
 * only with "free"; "0" agrees with "gil" and "serial" (and then CORTEX_EXEC_MODE decides).
 * Disagreement is CX_ECONFIG naming both variables. The default is free: in C there is no
 * interpreter lock, the gil mode only emulates one for the comparison harness.
 */
#ifndef CX_CONFIG_H
#define CX_CONFIG_H

#include <stdint.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How blocking I/O is driven: a thread per in-flight request, a hybrid of worker threads and
 * one event loop (curl multi), or chosen by the runtime. */
enum cx_io_design { CX_IO_THREAD_LOCAL = 0, CX_IO_HYBRID = 1, CX_IO_AUTO = 2 };

/* All strings are owned by the struct (freed by cx_config_clear); other modules borrow them. */
struct cx_config {
    double rate_limit_rps;             /* requests per second for the shared limiter; 0: none */
    double rate_limit_burst;           /* the limiter's capacity */
    int rate_limit_rps_set;            /* 1: CORTEX_RATE_LIMIT_RPS was set (even to its default),
                                          so a caller's own default (the CLI's embedded mock:
                                          unlimited) gives way to it */
    double tokens_per_minute;          /* LLM tokens per minute; 0 = unlimited */
    int thread_pool_size;
    int db_pool_size;
    int cache_max_entries;
    double cache_similarity_threshold;
    enum cx_exec_mode exec_mode;
    uint64_t gil_switch_interval_ns;
    enum cx_io_design io_design;
    char *data_dir;                    /* NULL when no variable gave one */
    char *base_url;                    /* NULL = the provider's default */
    char *anthropic_api_key;           /* secrets: never logged; wiped by cx_config_clear */
    char *openai_api_key;
    char *kimi_api_key;
    char *ollama_base_url;
    int request_timeout_ms;
    int connect_timeout_ms;
    int max_retries;
    /* Fleet mode (appended; see the table above). */
    char *redis_url;                   /* secret (may hold a password): NULL = no fleet */
    char *redis_password;              /* secret */
    char *redis_prefix;                /* NULL = "cortex" */
    int fleet_size;
    int redis_optional;
};

/* Fills *c with the defaults (no environment, no allocation; strings NULL). Overwrites *c
 * without freeing what it held. Threads: any thread. */
CX_API void cx_config_init(struct cx_config *c);

/*
 * The testable form of cx_config_load_env: defaults, then each variable looked up through
 * get(name, ctx), which returns a string borrowed until cx_config_load returns, or NULL when
 * unset. *c is overwritten without being freed (cx_config_clear it first if it held strings).
 * On success *c holds the result (release with cx_config_clear). On failure *c is left exactly
 * as cx_config_init leaves it, nothing allocated.
 * Returns 0, CX_ECONFIG (ei names the variable and its value, never a key's value), CX_ENOMEM,
 * CX_EINVAL (c or get NULL).
 * Threads: any thread (get must be safe to call from it).
 */
CX_API int cx_config_load(struct cx_config *c, const char *(*get)(const char *name, void *ctx),
                          void *ctx, struct cx_errinfo *ei);

/* cx_config_load reading the process environment with getenv().
 * Threads: any thread, but not while another thread changes the environment. */
CX_API int cx_config_load_env(struct cx_config *c, struct cx_errinfo *ei);

/* Frees the strings (wiping the API keys first) and leaves *c as cx_config_init does.
 * NULL is fine. Threads: the owner of *c. */
CX_API void cx_config_clear(struct cx_config *c);

/* "serial", "gil", "free" ("unknown" otherwise). Threads: any thread. */
CX_API const char *cx_exec_mode_name(enum cx_exec_mode m);
/* Parses those names (case-insensitive). Returns 0, or CX_EINVAL leaving *out unchanged.
 * Threads: any thread. */
CX_API int cx_exec_mode_parse(const char *s, enum cx_exec_mode *out);

/* "thread", "hybrid", "auto" ("unknown" otherwise). Threads: any thread. */
CX_API const char *cx_io_design_name(enum cx_io_design d);
/* Parses those names (case-insensitive). Returns 0, or CX_EINVAL leaving *out unchanged.
 * Threads: any thread. */
CX_API int cx_io_design_parse(const char *s, enum cx_io_design *out);

#ifdef __cplusplus
}
#endif
#endif /* CX_CONFIG_H */
