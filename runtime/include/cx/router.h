/*
 * cx/router.h - the LLM router (Cortex's llm_router, made thread-safe as in the seed's section 4.1):
 * task type -> provider, a forced provider, fallback to the next configured provider, retries with
 * backoff, rate limits that hold under concurrency, single flight, the endpoint names for cache
 * keys, and per-provider statistics kept with atomics. One submitted query gives exactly one raw
 * answer or typed error, through one completion (see "Two entry points" below).
 *
 * Providers and defaults (base URLs include the API version, see cx/http.h):
 *   CX_PROVIDER_CLAUDE   Anthropic Messages, https://api.anthropic.com/v1, "claude-sonnet-4-20250514",
 *                        $3 / $15 per 1M input / output tokens
 *   CX_PROVIDER_KIMI_K2  OpenAI-compatible, https://api.moonshot.ai/v1, "kimi-k2-instruct", $1 / $5
 *   CX_PROVIDER_OPENAI   OpenAI, https://api.openai.com/v1, "gpt-4o", $2.50 / $10
 *   CX_PROVIDER_OLLAMA   OpenAI-compatible, http://localhost:11434/v1, "llama3.2", free
 * Routing: USER_CHAT and REQUIREMENT_PARSING -> CLAUDE; every other task type -> KIMI_K2. A
 * provider is "configured" when it has a key, or (Ollama) an explicit base URL or `enabled`, or
 * when the router-wide base_url override is set (then every provider talks to that one server,
 * e.g. the mock: "http://127.0.0.1:PORT/v1"). If the preferred provider is not configured, or
 * fails after its attempts (or with a non-retryable error such as 401), the next configured
 * provider in the order CLAUDE, KIMI_K2, OPENAI, OLLAMA (cyclic, after the preferred one) is
 * tried, unless fallback is off. Fallback only goes to a different endpoint: a provider whose
 * base URL equals an earlier candidate's is skipped, so with the base_url override a query is
 * sent to that one server at most max_attempts times, in the preferred provider's wire format
 * (trying the same server again under another provider's name would only repeat the failure).
 * With the override the key follows the wire format: an OpenAI-format provider without a key
 * of its own sends OPENAI's key, else KIMI_K2's (a caller that knows which format its server
 * speaks forces CLAUDE or OPENAI, as the `cx` command does). Errors then name the server and
 * the format ("#1 http://host/v1 (OpenAI API) 401 authentication failed"), not a provider the
 * caller never chose.
 *
 * Cache keys (the router does not cache; its caller does, under these names): an answer belongs
 * to the server that gave it, so cx_router_endpoint names the endpoint as well as the provider:
 * "claude" for a provider at its default base URL, "claude@<base URL>" for one pointed elsewhere
 * (the override, a per-provider base_url), or "claude@<cache_endpoint>" when the caller names
 * the override's server (a server whose URL changes between runs, such as an embedded mock on an
 * ephemeral port). So answers of a mock are never served to a later run against the real API
 * with the same model. Look up under the query's first candidate (cx_router_endpoint), write
 * under the provider that answered (cx_router_provider_endpoint with resp.provider).
 *
 * One query, in order (router_call.c is the state machine):
 *   1. single flight: an identical query (task type + system + prompt) already in flight is not
 *      sent again; this one is parked and completed with a copy of that answer (shared = 1, no
 *      cost) or of its error. A blocking follower gives up at its own deadline (CX_ETIMEDOUT,
 *      "deadline passed waiting for an identical query in flight"); a submitted one waits for
 *      its leader, whose own deadline and attempts bound the wait;
 *   2. attempts: before each, one token from the shared request limiter and an estimated token
 *      charge from the router's tokens-per-minute bucket (corrected to the answer's real usage
 *      afterwards, refunded when the attempt produced none); right before each attempt is sent,
 *      the router-wide Retry-After pause is checked again, so a reservation made before another
 *      query's 429 still waits the pause out; a 429 with Retry-After pauses both limiters and
 *      the router for every query; 429, 5xx, 529, timeouts, resets and malformed/truncated bodies
 *      are retried with exponential backoff and full jitter (never sooner than Retry-After),
 *      within max_attempts per provider and the query's deadline; other 4xx are not retried;
 *   3. the raw answer (the content string, the wire format decoded) or a typed error is
 *      delivered exactly once. The router never looks inside the content: parsing, validating
 *      and caching it are the caller's (cx/pipeline.h).
 * When every attempt failed, the error message lists each one, e.g.
 * "3 attempts failed: #1 claude 429 rate limited (retry after 0.05 s); #2 claude 503 server
 * error; #3 kimi_k2 timed out"; ei->code is the last attempt's code (CX_ETIMEDOUT when the
 * deadline ended it) and ei->detail its HTTP status.
 *
 * Two entry points, one state machine (curl's "an easy handle is a private multi"):
 *   cx_router_submit   an executor task hands the query over and suspends; the router resumes
 *                      it (cx_task_resume) with the reply filled in, so the completion always
 *                      runs on a worker of that task's executor and never inside the submit
 *                      call -- an immediate failure or a single-flight follower is no
 *                      exception. Waits are I/O-loop timers and transfers go through the loop,
 *                      so no thread waits; needs options.loop.
 *   cx_router_complete submit plus wait: with CX_IO_HYBRID the loop drives the call and this
 *                      thread sleeps (emulated GIL released) until it is delivered; with
 *                      CX_IO_THREAD_LOCAL this thread drives the same state machine itself,
 *                      sleeping through the waits and moving the bytes on its own curl handle.
 * Both give identical results. API keys are never logged, never put in an error message.
 */
#ifndef CX_ROUTER_H
#define CX_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"
#include "cx/config.h"
#include "cx/executor.h"
#include "cx/http.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_limiter;
struct cx_ioloop;

/* The seed's TaskType. */
enum cx_task_type {
    CX_TASK_USER_CHAT = 0,
    CX_TASK_REQUIREMENT_PARSING,
    CX_TASK_SYSTEM_OPERATION,
    CX_TASK_ERROR_DEBUGGING,
    CX_TASK_CODE_GENERATION,
    CX_TASK_DEPENDENCY_RESOLUTION,
    CX_TASK_CONFIGURATION,
    CX_TASK_TOOL_EXECUTION,
    CX_TASK_COUNT
};

/* The seed's LLMProvider. */
enum cx_provider {
    CX_PROVIDER_AUTO = -1, /* in a query: route by task type */
    CX_PROVIDER_CLAUDE = 0,
    CX_PROVIDER_KIMI_K2,
    CX_PROVIDER_OPENAI,
    CX_PROVIDER_OLLAMA,
    CX_PROVIDER_COUNT
};

/* "user_chat", "requirement_parsing", ... ("unknown" otherwise). Threads: any thread. */
CX_API const char *cx_task_type_name(enum cx_task_type t);
/* "claude", "kimi_k2", "openai", "ollama" ("auto" for CX_PROVIDER_AUTO, "unknown" otherwise).
 * Threads: any thread. */
CX_API const char *cx_provider_name(enum cx_provider p);
/* Parses those names (case-insensitive; "kimi" and "anthropic" accepted too). Returns 0 or
 * CX_EINVAL leaving *out unchanged. Threads: any thread. */
CX_API int cx_provider_parse(const char *s, enum cx_provider *out);
/* The provider a task type routes to (CLAUDE or KIMI_K2). Threads: any thread. */
CX_API enum cx_provider cx_router_route(enum cx_task_type t);

/* Per-provider settings. Strings are borrowed by cx_router_new (copied). */
struct cx_provider_config {
    const char *api_key;      /* NULL: not configured (except Ollama / a base URL override) */
    const char *base_url;     /* NULL: the default above (or the router-wide override) */
    const char *model;        /* NULL: the default above */
    double usd_per_mtok_in;   /* < 0: the default above */
    double usd_per_mtok_out;
    int enabled;              /* Ollama: 1 makes it configured without a base URL */
};

struct cx_router_options {
    struct cx_provider_config providers[CX_PROVIDER_COUNT];
    const char *base_url;         /* override for every provider (the mock), NULL: none */
    const char *cache_endpoint;   /* with base_url: the name cx_router_endpoint gives that server
                                     instead of its URL (see the top of the file), NULL: the URL */
    int fallback;                 /* 1 (default): try the next configured provider */
    struct cx_limiter *limiter;   /* borrowed shared request bucket, NULL: none */
    double tokens_per_minute;     /* > 0: the router's own token bucket (rate tpm/60, burst tpm) */
    int expected_output_tokens;   /* output part of the pre-call estimate (default 256, capped
                                     by the query's max_tokens) */
    int max_attempts;             /* per provider, 1..1000 (default 3) */
    uint64_t backoff_base_ns;     /* default 500 ms: attempt i waits rand[0, min(cap, base*2^i)] */
    uint64_t backoff_cap_ns;      /* default 30 s */
    uint64_t seed;                /* jitter PRNG seed (deterministic tests); default 1 */
    long connect_timeout_ms;      /* default 10,000 */
    uint64_t attempt_timeout_ns;  /* one attempt's limit (also bounded by the deadline); 60 s */
    int single_flight;            /* 1 (default): share identical in-flight queries */
    enum cx_io_design io;         /* THREAD_LOCAL (default) or HYBRID; AUTO acts as HYBRID when
                                     a loop is given, else THREAD_LOCAL */
    struct cx_ioloop *loop;       /* borrowed, required for HYBRID and cx_router_submit */
};

/* Fills defaults (no provider configured). Threads: any thread. */
CX_API void cx_router_options_init(struct cx_router_options *o);

/*
 * Fills o->providers[] and o->base_url from a loaded configuration (keys, base URLs), borrowing
 * c's strings: c must outlive cx_router_new. Threads: any thread.
 */
CX_API void cx_router_options_from_config(struct cx_router_options *o, const struct cx_config *c);

/* One query. Strings are borrowed for the duration of the call (cx_router_submit copies them). */
struct cx_llm_query {
    enum cx_task_type task;
    enum cx_provider force;       /* CX_PROVIDER_AUTO (default): route by task */
    const char *system;           /* NULL: none */
    const char *prompt;           /* required */
    int max_tokens;               /* default 4096 */
    double temperature;           /* default 0.7 */
    int stream;                   /* ask for SSE */
    uint64_t deadline;            /* absolute (cx/clock.h), CX_DEADLINE_NONE: none */
    const cx_cancel_flag *cancel; /* optional; must outlive the call. Set it (and, for hybrid,
                                     call cx_ioloop_kick) to stop with CX_ECANCELED */
    const char *extra_header;     /* one extra HTTP header, NULL: none (tests) */
};
/* Threads: any thread. */
CX_API void cx_llm_query_init(struct cx_llm_query *q);

/* The answer. Owned strings are freed by cx_llm_response_clear. */
struct cx_llm_response {
    char *content;                /* owned */
    char *model;                  /* owned: as reported by the server (or the configured one) */
    enum cx_provider provider;    /* who answered */
    int64_t prompt_tokens;        /* what this call billed: 0 for shared answers */
    int64_t completion_tokens;
    double cost;                  /* USD billed by this call */
    int shared;                   /* answered by an identical in-flight query (single flight) */
    int attempts;                 /* HTTP attempts this call made */
    double latency_s;             /* wall time of the call */
    double limiter_wait_s;        /* of it, waited for the shared request limiter's tokens */
};
/* Threads: any thread. */
CX_API void cx_llm_response_init(struct cx_llm_response *r);
CX_API void cx_llm_response_clear(struct cx_llm_response *r);

struct cx_router;

/*
 * Creates a router. o is borrowed (strings copied). Returns 0, CX_EINVAL (bad option, named),
 * CX_ENOPROVIDER (no provider configured), CX_ENOMEM, CX_EIO (curl).
 * Threads: any thread.
 */
CX_API int cx_router_new(const struct cx_router_options *o, struct cx_router **out,
                         struct cx_errinfo *ei);

/* Frees the router (wiping its copies of the keys). No call may be in flight on it; free it
 * before the loop and the limiter it borrows. Accepts NULL. Threads: any thread. */
CX_API void cx_router_free(struct cx_router *r);

/* 1 when provider p is configured. Threads: any thread. */
CX_API int cx_router_configured(const struct cx_router *r, enum cx_provider p);

/*
 * Answers q, blocking (releasing the emulated GIL around every wait): submit plus wait on the
 * same state machine as cx_router_submit (see the top of the file). On success fills *out (the
 * caller clears it). Returns 0 or a CX_E*: CX_EINVAL, CX_ENOPROVIDER, CX_ECANCELED, CX_ETIMEDOUT
 * (deadline), or the last attempt's error (see the top of the file).
 * Threads: any thread, many at once; not the I/O thread.
 */
CX_API int cx_router_complete(struct cx_router *r, const struct cx_llm_query *q,
                              struct cx_llm_response *out, struct cx_errinfo *ei);

/* The outcome of a submitted query, written by the router before it resumes the task. */
struct cx_router_reply {
    int rc;                       /* 0, or the CX_E* cx_router_complete would return */
    struct cx_llm_response resp;  /* rc == 0: the answer (owned: the caller clears it) */
    struct cx_errinfo ei;         /* rc < 0: what went wrong */
};
/* Threads: any thread. */
CX_API void cx_router_reply_init(struct cx_router_reply *rp);

/*
 * Answers q without blocking a thread. Call it from an executor task right after
 * h = cx_task_suspend(ctx), then return CX_EAGAIN from the task. When the query has ended the
 * router fills *reply and calls cx_task_resume(h, next, arg) exactly once: `next` runs on a
 * worker of h's executor with the reply complete, never inside this call (the executor queues a
 * continuation until its task has returned). q's strings are copied. reply is borrowed until
 * `next` runs.
 * Returns 0 (then the router resumes h), or CX_EINVAL (no loop, bad query, NULL argument),
 * CX_ENOPROVIDER or CX_ENOMEM, and then the router never touches h, reply or arg: the caller
 * resumes its task itself.
 * Threads: any thread, including the I/O thread.
 */
CX_API int cx_router_submit(struct cx_router *r, const struct cx_llm_query *q,
                            struct cx_router_reply *reply, struct cx_task_handle *h,
                            cx_task_fn next, void *arg, struct cx_errinfo *ei);

/*
 * The cache-key names of q's first candidate (the provider it is sent to first): *prov, and the
 * key's provider field *endpoint ("claude", "claude@<url>" or "claude@<cache_endpoint>", see the
 * top of the file) and *model, both borrowed until cx_router_free. Returns 0, CX_EINVAL (bad
 * query or NULL argument), CX_ENOPROVIDER. Threads: any thread.
 */
CX_API int cx_router_endpoint(const struct cx_router *r, const struct cx_llm_query *q,
                              enum cx_provider *prov, const char **endpoint, const char **model,
                              struct cx_errinfo *ei);
/* The same names for provider p (e.g. the one that answered). Returns 0 or CX_EINVAL.
 * Threads: any thread. */
CX_API int cx_router_provider_endpoint(const struct cx_router *r, enum cx_provider p,
                                       const char **endpoint, const char **model);

struct cx_provider_stats {
    uint64_t requests;            /* HTTP attempts sent */
    uint64_t successes;
    uint64_t failures;            /* attempts that failed */
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    double cost;                  /* USD */
};
struct cx_router_stats {
    struct cx_provider_stats providers[CX_PROVIDER_COUNT];
    uint64_t queries;             /* cx_router_complete / cx_router_submit calls accepted */
    uint64_t shared;              /* answered by single flight */
    uint64_t retries;             /* attempts after the first on one provider */
    uint64_t fallbacks;           /* switches to another provider */
    uint64_t rate_limit_pauses;   /* Retry-After pauses applied to the limiters */
};
/* A snapshot; counters are read one by one. Threads: any thread. */
CX_API void cx_router_stats(struct cx_router *r, struct cx_router_stats *out);

/*
 * The measured CPU share of recent answered queries, for cx_io_choose (cx/ioloop.h): a moving
 * average (newest weighs 1/8) of the thread CPU time spent turning an answer into a result
 * (decoding the wire format and accounting, on whichever thread ran that step) over the query's
 * wall time. -1 before the
 * first answer. Threads: any thread.
 */
CX_API double cx_router_cpu_share(struct cx_router *r);

#ifdef __cplusplus
}
#endif
#endif /* CX_ROUTER_H */
