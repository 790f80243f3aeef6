/*
 * router.c - the LLM router: routing, fallback, retries with backoff, the two rate limits, the
 * response cache, single flight and per-provider statistics (see cx/router.h for the contract).
 *
 * What it does not do: move bytes or parse answers (http.c / ioloop.c), read the environment
 * (config), decide what a valid answer is (the caller's validate callback).
 *
 * One query is a `struct call`, driven through the same three steps by both entry points:
 *   acquire  -- limiter token, token-bucket estimate, router-wide Retry-After pause;
 *   transfer -- cx_http_client_perform (thread-local) or cx_ioloop_submit (hybrid);
 *   after    -- parse, account, validate + cache write, or decide: retry / fall back / fail.
 * cx_router_complete runs them in a loop on the calling thread and sleeps between them (GIL
 * released); cx_router_complete_async chains them through I/O-loop timers and completion
 * callbacks (and options.post for the CPU step), so no thread waits.
 *
 * DESIGN (threads and locks): the router starts no thread. Its shared state is the single-flight
 * table (sf_mu), the jitter PRNG (an atomic counter fed through splitmix64, so a seed gives the same
 * set of delays whatever the interleaving), the router-wide pause (an atomic deadline) and the
 * statistics (atomics). No lock is held while calling user code (validate, post, done callbacks),
 * the cache, the limiters or curl. Single-flight followers wait on the entry's condition variable
 * (blocking) or are queued on its callback list (async); the leader publishes its answer under
 * sf_mu after the cache write, so a later identical query sees either the entry or the cache.
 */
#include "cx/router.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/gil.h"
#include "cx/http.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "cx_internal.h"

/* ---- names and defaults ---- */

static const char *const k_task_names[CX_TASK_COUNT] = {
    "user_chat",     "requirement_parsing",   "system_operation", "error_debugging",
    "code_generation", "dependency_resolution", "configuration",    "tool_execution"};

struct prov_default {
    const char *name;
    enum cx_api api;
    const char *base_url;
    const char *model;
    double in, out;
};
static const struct prov_default k_prov[CX_PROVIDER_COUNT] = {
    {"claude", CX_API_ANTHROPIC, "https://api.anthropic.com/v1", "claude-sonnet-4-20250514", 3.0, 15.0},
    {"kimi_k2", CX_API_OPENAI, "https://api.moonshot.ai/v1", "kimi-k2-instruct", 1.0, 5.0},
    {"openai", CX_API_OPENAI, "https://api.openai.com/v1", "gpt-4o", 2.5, 10.0},
    {"ollama", CX_API_OPENAI, "http://localhost:11434/v1", "llama3.2", 0.0, 0.0},
};

const char *cx_task_type_name(enum cx_task_type t) {
    return (int)t >= 0 && t < CX_TASK_COUNT ? k_task_names[t] : "unknown";
}

const char *cx_provider_name(enum cx_provider p) {
    if (p == CX_PROVIDER_AUTO) return "auto";
    return (int)p >= 0 && p < CX_PROVIDER_COUNT ? k_prov[p].name : "unknown";
}

int cx_provider_parse(const char *s, enum cx_provider *out) {
    if (s == NULL || out == NULL) return CX_EINVAL;
    for (int i = 0; i < CX_PROVIDER_COUNT; i++)
        if (strcasecmp(s, k_prov[i].name) == 0) return *out = (enum cx_provider)i, 0;
    if (strcasecmp(s, "anthropic") == 0) return *out = CX_PROVIDER_CLAUDE, 0;
    if (strcasecmp(s, "kimi") == 0 || strcasecmp(s, "kimi-k2") == 0) return *out = CX_PROVIDER_KIMI_K2, 0;
    if (strcasecmp(s, "auto") == 0) return *out = CX_PROVIDER_AUTO, 0;
    return CX_EINVAL;
}

enum cx_provider cx_router_route(enum cx_task_type t) {
    return t == CX_TASK_USER_CHAT || t == CX_TASK_REQUIREMENT_PARSING ? CX_PROVIDER_CLAUDE
                                                                      : CX_PROVIDER_KIMI_K2;
}

void cx_router_options_init(struct cx_router_options *o) {
    memset(o, 0, sizeof *o);
    for (int i = 0; i < CX_PROVIDER_COUNT; i++) {
        o->providers[i].usd_per_mtok_in = -1;
        o->providers[i].usd_per_mtok_out = -1;
    }
    o->fallback = 1;
    o->expected_output_tokens = 256;
    o->max_attempts = 3;
    o->backoff_base_ns = 500 * CX_NSEC_PER_MSEC;
    o->backoff_cap_ns = 30 * CX_NSEC_PER_SEC;
    o->seed = 1;
    o->connect_timeout_ms = 10000;
    o->attempt_timeout_ns = 60 * CX_NSEC_PER_SEC;
    o->single_flight = 1;
    o->io = CX_IO_THREAD_LOCAL;
}

void cx_router_options_from_config(struct cx_router_options *o, const struct cx_config *c) {
    if (o == NULL || c == NULL) return;
    o->providers[CX_PROVIDER_CLAUDE].api_key = c->anthropic_api_key;
    o->providers[CX_PROVIDER_KIMI_K2].api_key = c->kimi_api_key;
    o->providers[CX_PROVIDER_OPENAI].api_key = c->openai_api_key;
    o->providers[CX_PROVIDER_OLLAMA].base_url = c->ollama_base_url;
    o->base_url = c->base_url;
    o->tokens_per_minute = c->tokens_per_minute;
    o->max_attempts = c->max_retries + 1;
    o->connect_timeout_ms = c->connect_timeout_ms;
    o->attempt_timeout_ns = (uint64_t)c->request_timeout_ms * CX_NSEC_PER_MSEC;
    o->io = c->io_design;
}

void cx_llm_query_init(struct cx_llm_query *q) {
    memset(q, 0, sizeof *q);
    q->force = CX_PROVIDER_AUTO;
    q->max_tokens = 4096;
    q->temperature = 0.7;
    q->deadline = CX_DEADLINE_NONE;
}

void cx_llm_response_init(struct cx_llm_response *r) {
    memset(r, 0, sizeof *r);
    r->provider = CX_PROVIDER_AUTO;
}

void cx_llm_response_clear(struct cx_llm_response *r) {
    if (r == NULL) return;
    cx__free(r->content);
    cx__free(r->model);
    cx_llm_response_init(r);
}

/* ---- the router ---- */

struct prov {
    int configured;
    enum cx_api api;
    char *key, *base_url, *model;
    char *cache_name; /* the cache key's provider field: "name", or "name@endpoint" */
    double pin, pout;
    atomic_uint_fast64_t requests, successes, failures, in_tok, out_tok, nano_usd;
};

struct sf_waiter {
    cx_router_done_fn done;
    void *ud;
    uint64_t start_ns;
    struct sf_waiter *next;
};

struct sf_entry {
    uint64_t hash;
    char *key;
    size_t key_len;
    int done;                   /* guarded by sf_mu */
    int refs;                   /* guarded by sf_mu: the leader + blocking followers */
    struct sf_waiter *waiters;  /* guarded by sf_mu: async followers */
    pthread_cond_t cond;
    /* the leader's outcome, written before done is set (under sf_mu), read-only after */
    int rc;
    struct cx_errinfo ei;
    struct cx_llm_response resp;
    struct sf_entry *next;      /* guarded by sf_mu */
};

#define SF_BUCKETS 256

struct cx_router {
    struct prov p[CX_PROVIDER_COUNT];
    int fallback;
    struct cx_cache *cache;
    struct cx_limiter *limiter;
    struct cx_limiter *tok; /* owned */
    int exp_out;
    int max_attempts;
    uint64_t base_ns, cap_ns;
    atomic_uint_fast64_t rng;
    long connect_ms;
    uint64_t attempt_ns;
    int single_flight;
    int hybrid;
    struct cx_ioloop *loop;
    cx_router_validate_fn validate;
    void *validate_ud;
    cx_router_similar_fn accept_similar;
    void *accept_similar_ud;
    cx_router_post_fn post;
    void *post_ctx;
    struct cx_http_client *client;
    struct cx__mutex sf_mu;
    struct sf_entry *sf[SF_BUCKETS]; /* guarded by sf_mu */
    atomic_uint_fast64_t paused_until;
    struct cx__mutex share_mu;
    double ewma_cpu_ns, ewma_wall_ns; /* guarded by share_mu; < 0 until the first sample */
    atomic_uint_fast64_t queries, cache_hits, shared, retries, fallbacks, pauses;
};

static void wipe_free(char *s) {
    if (s == NULL) return;
    volatile char *v = s;
    while (*v) *v++ = 0;
    cx__free(s);
}

/* Ollama's OLLAMA_HOST is often "host:port": add the scheme and the /v1 path it needs. */
static char *ollama_url(const char *u) {
    struct cx__buf b;
    cx__buf_init(&b, 4096);
    int rc = 0;
    if (strstr(u, "://") == NULL) rc = cx__buf_append(&b, "http://", 7);
    if (rc == 0) rc = cx__buf_append(&b, u, strlen(u));
    const char *path = strstr(b.p ? b.p : "", "://");
    path = path ? strchr(path + 3, '/') : NULL;
    if (rc == 0 && (path == NULL || strcmp(path, "/") == 0)) {
        if (path) b.len--, b.p[b.len] = '\0';
        rc = cx__buf_append(&b, "/v1", 3);
    }
    return rc == 0 ? cx__buf_take(&b) : NULL;
}

/* The provider field of the provider's cache keys. Answers depend on the server, not only on the
 * provider and model: a provider at its default URL is "claude", one pointed elsewhere is
 * "claude@<url>" (or "claude@<endpoint>" when the caller names the override's server, whose URL
 * may change between runs), so answers of a mock are never served for the real API. */
static char *cache_name(const char *name, const char *url, const char *default_url, const char *endpoint) {
    const char *ep = endpoint && endpoint[0] ? endpoint : strcmp(url, default_url) != 0 ? url : NULL;
    if (ep == NULL) return cx__strdup(name);
    struct cx__buf b;
    cx__buf_init(&b, 4096);
    return cx__buf_printf(&b, "%s@%s", name, ep) == 0 ? cx__buf_take(&b) : NULL;
}

int cx_router_new(const struct cx_router_options *o, struct cx_router **out, struct cx_errinfo *ei) {
    if (o == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx_router_new: options/out is NULL");
    *out = NULL;
    if (o->max_attempts < 1 || o->max_attempts > 1000)
        return cx__err(ei, CX_EINVAL, "cx_router_options.max_attempts is %d (must be 1..1000)", o->max_attempts);
    if (!(o->tokens_per_minute >= 0) || isinf(o->tokens_per_minute))
        return cx__err(ei, CX_EINVAL, "cx_router_options.tokens_per_minute is %g (must be >= 0)",
                       o->tokens_per_minute);
    if (o->backoff_cap_ns < o->backoff_base_ns)
        return cx__err(ei, CX_EINVAL, "cx_router_options.backoff_cap_ns (%llu) is below backoff_base_ns (%llu)",
                       (unsigned long long)o->backoff_cap_ns, (unsigned long long)o->backoff_base_ns);
    if (o->io != CX_IO_THREAD_LOCAL && o->io != CX_IO_HYBRID && o->io != CX_IO_AUTO)
        return cx__err(ei, CX_EINVAL, "cx_router_options.io is %d (unknown)", (int)o->io);
    if (o->io == CX_IO_HYBRID && o->loop == NULL)
        return cx__err(ei, CX_EINVAL, "cx_router_options.io is hybrid but loop is NULL");
    if (o->expected_output_tokens < 0)
        return cx__err(ei, CX_EINVAL, "cx_router_options.expected_output_tokens is %d (must be >= 0)",
                       o->expected_output_tokens);

    struct cx_router *r = cx__calloc(1, sizeof *r);
    if (r == NULL) return cx__err(ei, CX_ENOMEM, "cx_router_new: out of memory");
    int rc = cx__mutex_init(&r->sf_mu);
    if (rc == 0 && (rc = cx__mutex_init(&r->share_mu)) < 0) cx__mutex_destroy(&r->sf_mu);
    if (rc < 0) {
        cx__free(r);
        return cx__err(ei, CX_ENOMEM, "cx_router_new: out of memory");
    }
    r->ewma_cpu_ns = r->ewma_wall_ns = -1;
    int any = 0;
    for (int i = 0; i < CX_PROVIDER_COUNT; i++) {
        const struct cx_provider_config *pc = &o->providers[i];
        struct prov *p = &r->p[i];
        p->api = k_prov[i].api;
        int has_key = pc->api_key && pc->api_key[0];
        int has_url = pc->base_url && pc->base_url[0];
        p->configured = has_key || (o->base_url && o->base_url[0]) ||
                        (i == CX_PROVIDER_OLLAMA && (has_url || pc->enabled));
        const char *url = o->base_url && o->base_url[0] ? o->base_url : has_url ? pc->base_url
                                                                                : k_prov[i].base_url;
        p->base_url = i == CX_PROVIDER_OLLAMA && !(o->base_url && o->base_url[0]) ? ollama_url(url)
                                                                                 : cx__strdup(url);
        p->model = cx__strdup(pc->model && pc->model[0] ? pc->model : k_prov[i].model);
        p->key = has_key ? cx__strdup(pc->api_key) : NULL;
        if (p->base_url != NULL)
            p->cache_name = cache_name(k_prov[i].name, p->base_url, k_prov[i].base_url,
                                       o->base_url && o->base_url[0] ? o->cache_endpoint : NULL);
        p->pin = pc->usd_per_mtok_in >= 0 ? pc->usd_per_mtok_in : k_prov[i].in;
        p->pout = pc->usd_per_mtok_out >= 0 ? pc->usd_per_mtok_out : k_prov[i].out;
        if (p->base_url == NULL || p->model == NULL || p->cache_name == NULL || (has_key && p->key == NULL)) {
            rc = cx__err(ei, CX_ENOMEM, "cx_router_new: out of memory");
            goto fail;
        }
        any |= p->configured;
    }
    if (!any) {
        rc = cx__err(ei, CX_ENOPROVIDER,
                     "no LLM provider configured: set an API key (ANTHROPIC_API_KEY, KIMI_API_KEY, "
                     "OPENAI_API_KEY), an Ollama base URL, or a base_url override");
        goto fail;
    }
    r->fallback = o->fallback;
    r->cache = o->cache;
    r->limiter = o->limiter;
    r->exp_out = o->expected_output_tokens;
    r->max_attempts = o->max_attempts;
    r->base_ns = o->backoff_base_ns;
    r->cap_ns = o->backoff_cap_ns;
    atomic_init(&r->rng, o->seed);
    r->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    r->attempt_ns = o->attempt_timeout_ns > 0 ? o->attempt_timeout_ns : 60 * CX_NSEC_PER_SEC;
    r->single_flight = o->single_flight;
    r->loop = o->loop;
    r->hybrid = o->io == CX_IO_HYBRID || (o->io == CX_IO_AUTO && o->loop != NULL);
    r->validate = o->validate;
    r->validate_ud = o->validate_ud;
    r->accept_similar = o->accept_similar;
    r->accept_similar_ud = o->accept_similar_ud;
    r->post = o->post;
    r->post_ctx = o->post_ctx;
    if (o->tokens_per_minute > 0) {
        rc = cx_limiter_new(o->tokens_per_minute / 60.0, o->tokens_per_minute, &r->tok, ei);
        if (rc < 0) goto fail;
    }
    rc = cx_http_client_new(NULL, &r->client, ei);
    if (rc < 0) goto fail;
    *out = r;
    return 0;
fail:
    cx_router_free(r);
    return rc;
}

void cx_router_free(struct cx_router *r) {
    if (r == NULL) return;
    for (int i = 0; i < CX_PROVIDER_COUNT; i++) {
        wipe_free(r->p[i].key);
        cx__free(r->p[i].base_url);
        cx__free(r->p[i].model);
        cx__free(r->p[i].cache_name);
    }
    cx_limiter_free(r->tok);
    cx_http_client_free(r->client);
    cx__mutex_destroy(&r->sf_mu);
    cx__mutex_destroy(&r->share_mu);
    cx__free(r);
}

/* CPU time of the calling thread, for the CPU-share measurement. */
static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Folds one answered query into the moving averages (weight 1/8 for the newest). */
static void note_share(struct cx_router *r, uint64_t cpu_ns, uint64_t wall_ns) {
    cx__mutex_lock(&r->share_mu);
    if (r->ewma_wall_ns < 0) {
        r->ewma_cpu_ns = (double)cpu_ns;
        r->ewma_wall_ns = (double)wall_ns;
    } else {
        r->ewma_cpu_ns += ((double)cpu_ns - r->ewma_cpu_ns) / 8;
        r->ewma_wall_ns += ((double)wall_ns - r->ewma_wall_ns) / 8;
    }
    cx__mutex_unlock(&r->share_mu);
}

double cx_router_cpu_share(struct cx_router *r) {
    if (r == NULL) return -1;
    cx__mutex_lock(&r->share_mu);
    double cpu = r->ewma_cpu_ns, wall = r->ewma_wall_ns;
    cx__mutex_unlock(&r->share_mu);
    if (wall <= 0) return -1;
    double s = cpu / wall;
    return s > 1 ? 1 : s;
}

int cx_router_configured(const struct cx_router *r, enum cx_provider p) {
    return r && (int)p >= 0 && p < CX_PROVIDER_COUNT && r->p[p].configured;
}

void cx_router_stats(struct cx_router *r, struct cx_router_stats *out) {
    memset(out, 0, sizeof *out);
    if (r == NULL) return;
    for (int i = 0; i < CX_PROVIDER_COUNT; i++) {
        struct prov *p = &r->p[i];
        struct cx_provider_stats *s = &out->providers[i];
        s->requests = atomic_load(&p->requests);
        s->successes = atomic_load(&p->successes);
        s->failures = atomic_load(&p->failures);
        s->prompt_tokens = atomic_load(&p->in_tok);
        s->completion_tokens = atomic_load(&p->out_tok);
        s->cost = (double)atomic_load(&p->nano_usd) / 1e9;
    }
    out->queries = atomic_load(&r->queries);
    out->cache_hits = atomic_load(&r->cache_hits);
    out->shared = atomic_load(&r->shared);
    out->retries = atomic_load(&r->retries);
    out->fallbacks = atomic_load(&r->fallbacks);
    out->rate_limit_pauses = atomic_load(&r->pauses);
}

/* splitmix64 over an atomic counter: lock-free and reproducible for a seed. */
static uint64_t rng_next(struct cx_router *r) {
    uint64_t z = atomic_fetch_add(&r->rng, 0x9E3779B97F4A7C15ULL) + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Full jitter: uniform in [0, min(cap, base * 2^i)]. */
static uint64_t backoff_ns(struct cx_router *r, int i) {
    uint64_t b = r->base_ns;
    for (int k = 0; k < i && b < r->cap_ns; k++) b = b > r->cap_ns / 2 ? r->cap_ns : b * 2;
    if (b > r->cap_ns) b = r->cap_ns;
    if (b == 0) return 0;
    return (uint64_t)((double)(rng_next(r) >> 11) / 9007199254740992.0 * (double)b);
}

/* ---- one call ---- */

enum { ACT_OK, ACT_FAIL, ACT_RETRY };

struct call {
    struct cx_router *r;
    struct cx_llm_query q;
    char *own[3]; /* async: copies of system, prompt, extra_header */
    int cand[CX_PROVIDER_COUNT];
    int ncand, ci, attempt, nattempts;
    int last_rc;
    long last_status;
    struct cx__buf log;
    uint64_t start_ns;
    double tok_charged;
    int req_taken;
    struct cx_http_xfer *x;
    struct sf_entry *sf; /* when leader */
    cx_router_done_fn done;
    void *ud;
    /* blocking wait for a hybrid transfer */
    struct cx__mutex wmu;
    pthread_cond_t wcond;
    int wdone; /* guarded by wmu */
    struct cx_llm_response resp;
    struct cx_errinfo ei;
    int rc;
};

static int query_check(const struct cx_llm_query *q, struct cx_errinfo *ei) {
    if (q == NULL) return cx__err(ei, CX_EINVAL, "query is NULL");
    if (q->prompt == NULL) return cx__err(ei, CX_EINVAL, "cx_llm_query.prompt is NULL");
    if ((int)q->task < 0 || q->task >= CX_TASK_COUNT)
        return cx__err(ei, CX_EINVAL, "cx_llm_query.task is %d (unknown task type)", (int)q->task);
    if (q->force != CX_PROVIDER_AUTO && ((int)q->force < 0 || q->force >= CX_PROVIDER_COUNT))
        return cx__err(ei, CX_EINVAL, "cx_llm_query.force is %d (unknown provider)", (int)q->force);
    if (q->max_tokens <= 0)
        return cx__err(ei, CX_EINVAL, "cx_llm_query.max_tokens is %d (must be > 0)", q->max_tokens);
    return 0;
}

/* Fills the candidate list: the preferred provider, then the others in order. A provider whose
 * base URL is an earlier candidate's (the router-wide override makes every provider one server)
 * is left out: falling back to it would only send the same request to the same server again. */
static int call_candidates(struct call *c, struct cx_errinfo *ei) {
    struct cx_router *r = c->r;
    int pref = c->q.force != CX_PROVIDER_AUTO ? (int)c->q.force : (int)cx_router_route(c->q.task);
    c->ncand = 0;
    for (int k = 0; k < CX_PROVIDER_COUNT; k++) {
        int p = (pref + k) % CX_PROVIDER_COUNT;
        if (!r->p[p].configured) continue;
        int same = 0;
        for (int j = 0; j < c->ncand && !same; j++) same = strcmp(r->p[c->cand[j]].base_url, r->p[p].base_url) == 0;
        if (same) continue;
        c->cand[c->ncand++] = p;
        if (!r->fallback) break;
    }
    if (c->ncand == 0)
        return cx__err(ei, CX_ENOPROVIDER, "no configured provider for task %s (preferred %s)",
                       cx_task_type_name(c->q.task), cx_provider_name((enum cx_provider)pref));
    return 0;
}

static void call_init(struct call *c, struct cx_router *r, const struct cx_llm_query *q) {
    memset(c, 0, sizeof *c);
    c->r = r;
    c->q = *q;
    c->start_ns = cx_now_ns();
    cx__buf_init(&c->log, 4096);
    cx_llm_response_init(&c->resp);
}

static void call_release(struct call *c) {
    cx__buf_reset(&c->log);
    cx_http_xfer_free(c->x);
    c->x = NULL;
    for (int i = 0; i < 3; i++) cx__free(c->own[i]);
    cx_llm_response_clear(&c->resp);
}

/* One cache lookup, under the first candidate's key: the cache counts every lookup, so one
 * query must be one hit or one miss (see router.h). 0 with c->resp filled on a hit. */
static int call_cache_get(struct call *c) {
    struct cx_router *r = c->r;
    if (r->cache == NULL || c->q.prompt[0] == '\0') return CX_ENOENT;
    int prov = c->cand[0];
    struct prov *p = &r->p[prov];
    struct cx_cache_key k = {p->cache_name, p->model, c->q.system ? c->q.system : "", c->q.prompt};
    char *json = NULL;
    int similar = 0;
    int rc = cx_cache_get(r->cache, &k, &json, &similar, NULL);
    if (rc == CX_ENOMEM) return CX_ENOMEM;
    if (rc < 0) return CX_ENOENT;
    /* json is returned by the cache, freed with cx_free == cx__free */
    if (similar && r->accept_similar && r->accept_similar(&c->q, json, r->accept_similar_ud) < 0) {
        cx__free(json);
        return CX_ENOENT;
    }
    c->resp.content = json;
    c->resp.model = cx__strdup(p->model);
    if (c->resp.model == NULL) {
        cx_llm_response_clear(&c->resp);
        return CX_ENOMEM;
    }
    c->resp.provider = (enum cx_provider)prov;
    c->resp.from_cache = 1;
    c->resp.cache_similar = similar;
    c->resp.latency_s = cx_elapsed_s(c->start_ns, cx_now_ns());
    atomic_fetch_add(&r->cache_hits, 1);
    return 0;
}

static void call_cache_put(struct call *c, int prov) {
    struct cx_router *r = c->r;
    if (r->cache == NULL || c->q.prompt[0] == '\0' || c->resp.content == NULL || c->resp.content[0] == '\0')
        return;
    struct cx_cache_key k = {r->p[prov].cache_name, r->p[prov].model, c->q.system ? c->q.system : "",
                             c->q.prompt};
    (void)cx_cache_put(r->cache, &k, c->resp.content, NULL); /* a failed write loses only speed */
}

/* Tokens the call is charged before the answer is known. */
static double token_estimate(struct call *c) {
    size_t bytes = strlen(c->q.prompt) + (c->q.system ? strlen(c->q.system) : 0);
    double out = c->r->exp_out < c->q.max_tokens ? c->r->exp_out : c->q.max_tokens;
    double est = (double)((bytes + 3) / 4) + out;
    double burst = cx_limiter_burst(c->r->tok);
    return est > burst ? burst : est;
}

static void log_attempt(struct call *c, int prov, int rc, long status, double retry_after) {
    const char *what;
    switch (rc) {
    case CX_ERATELIMIT: what = "rate limited"; break;
    case CX_EOVERLOADED: what = "overloaded"; break;
    case CX_ESERVER: what = "server error"; break;
    case CX_EAUTH: what = "authentication failed"; break;
    case CX_EHTTP: what = "HTTP error"; break;
    case CX_ETIMEDOUT: what = "timed out"; break;
    case CX_ECONN: what = "connection failed or reset"; break;
    case CX_EPARSE: what = "malformed response"; break;
    default: what = cx_strerror(rc); break;
    }
    if (c->log.len > 0) (void)cx__buf_append(&c->log, "; ", 2);
    if (status > 0 && status != 200)
        (void)cx__buf_printf(&c->log, "#%d %s %ld %s", c->nattempts, cx_provider_name((enum cx_provider)prov),
                             status, what);
    else
        (void)cx__buf_printf(&c->log, "#%d %s %s", c->nattempts, cx_provider_name((enum cx_provider)prov), what);
    if (retry_after >= 0) (void)cx__buf_printf(&c->log, " (retry after %.3g s)", retry_after);
}

/* Ends the call with a summary of every attempt. */
static int call_fail(struct call *c, int code, const char *why) {
    if (c->nattempts == 0) {
        return cx__err_detail(&c->ei, code, c->last_status, "%s", why ? why : cx_strerror(code));
    }
    return cx__err_detail(&c->ei, code, c->last_status, "%d attempt%s failed%s%s%s: %s", c->nattempts,
                          c->nattempts == 1 ? "" : "s", why ? " (" : "", why ? why : "", why ? ")" : "",
                          c->log.p ? c->log.p : "");
}

/* The deadline of the next attempt's transfer. */
static uint64_t attempt_deadline(struct call *c) {
    return cx_deadline_min(c->q.deadline, cx_deadline_after_ns(c->r->attempt_ns));
}

static int call_make_xfer(struct call *c) {
    struct cx_router *r = c->r;
    int prov = c->cand[c->ci];
    struct prov *p = &r->p[prov];
    struct cx_http_request req;
    cx_http_request_init(&req);
    req.api = p->api;
    req.base_url = p->base_url;
    req.api_key = p->key;
    req.model = p->model;
    req.system = c->q.system;
    req.prompt = c->q.prompt;
    req.max_tokens = c->q.max_tokens;
    req.temperature = c->q.temperature;
    req.stream = c->q.stream;
    req.deadline = attempt_deadline(c);
    req.connect_timeout_ms = r->connect_ms;
    req.cancel = c->q.cancel;
    req.extra_header = c->q.extra_header;
    cx_http_xfer_free(c->x);
    c->x = NULL;
    struct cx_errinfo ei;
    int rc = cx_http_xfer_new(&req, &c->x, &ei);
    if (rc < 0) return cx__err(&c->ei, rc, "%s", ei.msg);
    c->nattempts++;
    atomic_fetch_add(&p->requests, 1);
    return 0;
}

/* After a transfer: parse, account, and decide. On ACT_RETRY *wait_ns says how long to wait
 * before acquiring for the next attempt. On ACT_OK c->resp is filled; on ACT_FAIL c->ei / c->rc. */
static int call_after(struct call *c, uint64_t *wait_ns) {
    struct cx_router *r = c->r;
    int prov = c->cand[c->ci];
    struct prov *p = &r->p[prov];
    struct cx_http_result hr;
    struct cx_errinfo aei;
    memset(&aei, 0, sizeof aei);
    uint64_t cpu0 = thread_cpu_ns();
    int rc = cx_http_xfer_finish(c->x, &hr, &aei);
    cx_http_xfer_free(c->x);
    c->x = NULL;
    c->last_rc = rc;
    c->last_status = hr.status;
    *wait_ns = 0;

    if (rc == 0) {
        int64_t in = hr.prompt_tokens > 0 ? hr.prompt_tokens : 0;
        int64_t out = hr.completion_tokens > 0 ? hr.completion_tokens : 0;
        if (r->tok && (hr.prompt_tokens >= 0 || hr.completion_tokens >= 0))
            (void)cx_limiter_adjust(r->tok, (double)(in + out) - c->tok_charged);
        c->tok_charged = 0;
        double cost = ((double)in * p->pin + (double)out * p->pout) / 1e6;
        atomic_fetch_add(&p->successes, 1);
        atomic_fetch_add(&p->in_tok, (uint64_t)in);
        atomic_fetch_add(&p->out_tok, (uint64_t)out);
        atomic_fetch_add(&p->nano_usd, (uint64_t)llround(cost * 1e9));
        c->resp.content = hr.content;
        c->resp.model = hr.model ? hr.model : cx__strdup(p->model);
        hr.content = hr.model = NULL;
        if (c->resp.model == NULL) {
            cx_llm_response_clear(&c->resp);
            c->rc = cx__err(&c->ei, CX_ENOMEM, "out of memory");
            return ACT_FAIL;
        }
        c->resp.provider = (enum cx_provider)prov;
        c->resp.prompt_tokens = in;
        c->resp.completion_tokens = out;
        c->resp.cost = cost;
        c->resp.attempts = c->nattempts;
        if (r->validate) {
            struct cx_errinfo vei;
            memset(&vei, 0, sizeof vei);
            int vrc = r->validate(&c->q, c->resp.content, r->validate_ud, &vei);
            if (vrc < 0) {
                cx_llm_response_clear(&c->resp);
                c->rc = cx__err(&c->ei, vrc, "%s answer refused by the validator: %s",
                                cx_provider_name((enum cx_provider)prov), vei.msg[0] ? vei.msg : cx_strerror(vrc));
                return ACT_FAIL;
            }
        }
        call_cache_put(c, prov);
        uint64_t now = cx_now_ns();
        c->resp.latency_s = cx_elapsed_s(c->start_ns, now);
        note_share(r, thread_cpu_ns() - cpu0, now - c->start_ns);
        return ACT_OK;
    }

    atomic_fetch_add(&p->failures, 1);
    if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
    c->tok_charged = 0;
    double ra = hr.retry_after_s;
    log_attempt(c, prov, rc, hr.status, (rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER) ? ra : -1);
    if (rc == CX_ECANCELED || rc == CX_ENOMEM || rc == CX_EINVAL || rc == CX_ETOOBIG) {
        c->rc = call_fail(c, rc, NULL);
        return ACT_FAIL;
    }
    if (rc == CX_ETIMEDOUT && cx_deadline_expired(c->q.deadline)) {
        c->rc = call_fail(c, CX_ETIMEDOUT, "deadline passed");
        return ACT_FAIL;
    }
    if (ra >= 0 && (rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER)) {
        uint64_t until = cx_deadline_after_ns((uint64_t)(ra * 1e9));
        if (r->limiter) cx_limiter_pause_until(r->limiter, until);
        if (r->tok) cx_limiter_pause_until(r->tok, until);
        uint64_t cur = atomic_load(&r->paused_until);
        while (cur < until && !atomic_compare_exchange_weak(&r->paused_until, &cur, until)) {
        }
        atomic_fetch_add(&r->pauses, 1);
    }
    int retryable = rc == CX_ERATELIMIT || rc == CX_EOVERLOADED || rc == CX_ESERVER || rc == CX_ETIMEDOUT ||
                    rc == CX_ECONN || rc == CX_EPARSE || rc == CX_EIO;
    c->attempt++;
    uint64_t wait = 0;
    if (retryable && c->attempt < r->max_attempts) {
        wait = backoff_ns(r, c->attempt - 1);
        if (ra >= 0 && (uint64_t)(ra * 1e9) > wait) wait = (uint64_t)(ra * 1e9);
        atomic_fetch_add(&r->retries, 1);
    } else if (r->fallback && c->ci + 1 < c->ncand) {
        c->ci++;
        c->attempt = 0;
        atomic_fetch_add(&r->fallbacks, 1);
    } else {
        c->rc = call_fail(c, rc, NULL);
        return ACT_FAIL;
    }
    if (c->q.deadline != CX_DEADLINE_NONE && cx_now_ns() + wait >= c->q.deadline) {
        c->rc = call_fail(c, CX_ETIMEDOUT, "the deadline would pass before the next attempt");
        return ACT_FAIL;
    }
    *wait_ns = wait;
    return ACT_RETRY;
}

/* ---- single flight ---- */

static char *make_key(const struct cx_llm_query *q, size_t *len) {
    struct cx__buf b;
    cx__buf_init(&b, 0);
    int rc = cx__buf_printf(&b, "%d", (int)q->task);
    if (rc == 0) rc = cx__buf_append(&b, "", 1);
    if (rc == 0 && q->system) rc = cx__buf_append(&b, q->system, strlen(q->system));
    if (rc == 0) rc = cx__buf_append(&b, "", 1);
    if (rc == 0) rc = cx__buf_append(&b, q->prompt, strlen(q->prompt));
    if (rc < 0) return NULL;
    *len = b.len;
    return cx__buf_take(&b);
}

static void sf_entry_free(struct sf_entry *e) {
    cx__free(e->key);
    cx_llm_response_clear(&e->resp);
    pthread_cond_destroy(&e->cond);
    cx__free(e);
}

/* Finds the in-flight entry for c's query, or makes c its leader. Returns 1 when c leads
 * (c->sf set), 0 when it follows (*entry set, refs taken for a blocking follower; for an async
 * follower the waiter is queued instead), or CX_ENOMEM. */
static int sf_join(struct call *c, struct sf_waiter *w, struct sf_entry **entry) {
    struct cx_router *r = c->r;
    size_t kl;
    char *key = make_key(&c->q, &kl);
    if (key == NULL) return CX_ENOMEM;
    uint64_t h = cx__fnv1a64(key, kl);
    struct sf_entry **bucket = &r->sf[h % SF_BUCKETS];
    cx__mutex_lock(&r->sf_mu);
    for (struct sf_entry *e = *bucket; e; e = e->next) {
        if (e->hash == h && e->key_len == kl && memcmp(e->key, key, kl) == 0) {
            if (w) {
                w->next = e->waiters;
                e->waiters = w;
            } else {
                e->refs++;
            }
            cx__mutex_unlock(&r->sf_mu);
            cx__free(key);
            *entry = e;
            return 0;
        }
    }
    struct sf_entry *e = cx__calloc(1, sizeof *e);
    if (e == NULL || cx__cond_init(&e->cond) < 0) {
        cx__mutex_unlock(&r->sf_mu);
        cx__free(e);
        cx__free(key);
        return CX_ENOMEM;
    }
    e->hash = h;
    e->key = key;
    e->key_len = kl;
    e->refs = 1;
    cx_llm_response_init(&e->resp);
    e->next = *bucket;
    *bucket = e;
    cx__mutex_unlock(&r->sf_mu);
    c->sf = e;
    return 1;
}

static int resp_copy(struct cx_llm_response *dst, const struct cx_llm_response *src) {
    *dst = *src;
    dst->content = cx__strdup(src->content);
    dst->model = cx__strdup(src->model);
    if ((src->content && !dst->content) || (src->model && !dst->model)) {
        cx__free(dst->content);
        cx__free(dst->model);
        cx_llm_response_init(dst);
        return CX_ENOMEM;
    }
    return 0;
}

/* The leader publishes its outcome: the entry leaves the table, blocking followers wake, async
 * followers' callbacks run (on this thread, no lock held). */
static void sf_publish(struct call *c, int rc) {
    struct cx_router *r = c->r;
    struct sf_entry *e = c->sf;
    if (e == NULL) return;
    c->sf = NULL;
    /* Copy the outcome before taking the lock: followers only read it after `done`. */
    e->rc = rc;
    e->ei = c->ei;
    if (rc == 0 && resp_copy(&e->resp, &c->resp) < 0) {
        e->rc = CX_ENOMEM;
        cx__err(&e->ei, CX_ENOMEM, "out of memory sharing an in-flight answer");
    }
    cx__mutex_lock(&r->sf_mu);
    struct sf_entry **pp = &r->sf[e->hash % SF_BUCKETS];
    while (*pp && *pp != e) pp = &(*pp)->next;
    if (*pp) *pp = e->next;
    e->done = 1;
    struct sf_waiter *w = e->waiters;
    e->waiters = NULL;
    pthread_cond_broadcast(&e->cond);
    int last = --e->refs == 0;
    cx__mutex_unlock(&r->sf_mu);
    while (w) {
        struct sf_waiter *n = w->next;
        struct cx_llm_response resp;
        struct cx_errinfo ei = e->ei;
        int wrc = e->rc;
        if (wrc == 0 && resp_copy(&resp, &e->resp) < 0) {
            wrc = cx__err(&ei, CX_ENOMEM, "out of memory sharing an in-flight answer");
        }
        if (wrc == 0) {
            resp.shared = 1;
            resp.prompt_tokens = resp.completion_tokens = 0;
            resp.cost = 0;
            resp.attempts = 0;
            resp.latency_s = cx_elapsed_s(w->start_ns, cx_now_ns());
            atomic_fetch_add(&r->shared, 1);
            w->done(0, &resp, NULL, w->ud); /* the callee takes resp's strings */
        } else {
            w->done(wrc, NULL, &ei, w->ud);
        }
        cx__free(w);
        w = n;
    }
    if (last) sf_entry_free(e);
}

/* A blocking follower waits for the leader. */
static int sf_wait(struct call *c, struct sf_entry *e, struct cx_llm_response *out, struct cx_errinfo *ei) {
    struct cx_router *r = c->r;
    int rc = 0;
    cx_gil_io_begin();
    cx__mutex_lock(&r->sf_mu);
    while (!e->done && rc == 0) rc = cx__cond_wait(&e->cond, &r->sf_mu, c->q.deadline);
    int done = e->done;
    cx__mutex_unlock(&r->sf_mu);
    cx_gil_io_end();
    if (!done) {
        rc = cx__err(ei, CX_ETIMEDOUT, "deadline passed waiting for an identical query in flight");
    } else if (e->rc < 0) {
        if (ei) *ei = e->ei;
        rc = e->rc;
    } else {
        rc = resp_copy(out, &e->resp);
        if (rc < 0) {
            cx__err(ei, rc, "out of memory sharing an in-flight answer");
        } else {
            out->shared = 1;
            out->prompt_tokens = out->completion_tokens = 0;
            out->cost = 0;
            out->attempts = 0;
            out->latency_s = cx_elapsed_s(c->start_ns, cx_now_ns());
            atomic_fetch_add(&r->shared, 1);
        }
    }
    cx__mutex_lock(&r->sf_mu);
    int last = --e->refs == 0;
    cx__mutex_unlock(&r->sf_mu);
    if (last) sf_entry_free(e);
    return rc;
}

/* ---- the blocking driver ---- */

static void hybrid_done(struct cx_http_xfer *x, void *ud) {
    (void)x;
    struct call *c = ud;
    cx__mutex_lock(&c->wmu);
    c->wdone = 1;
    pthread_cond_broadcast(&c->wcond);
    cx__mutex_unlock(&c->wmu);
}

/* Waits for the router-wide pause and the limiters; 0 or an error in c->ei. */
static int acquire_blocking(struct call *c) {
    struct cx_router *r = c->r;
    uint64_t pause = atomic_load(&r->paused_until);
    if (r->limiter == NULL && pause > cx_now_ns()) {
        if (pause >= c->q.deadline) return c->rc = call_fail(c, CX_ETIMEDOUT, "the deadline would pass during a Retry-After pause");
        cx_gil_io_begin();
        cx_sleep_until(pause);
        cx_gil_io_end();
    }
    if (r->limiter) {
        cx_gil_io_begin();
        int rc = cx_limiter_acquire_until(r->limiter, 1, c->q.deadline);
        cx_gil_io_end();
        if (rc < 0) return c->rc = call_fail(c, CX_ETIMEDOUT, "deadline passed waiting for the request limiter");
    }
    if (r->tok) {
        double est = token_estimate(c);
        cx_gil_io_begin();
        int rc = cx_limiter_acquire_until(r->tok, est, c->q.deadline);
        cx_gil_io_end();
        if (rc < 0) {
            if (r->limiter) (void)cx_limiter_adjust(r->limiter, -1);
            return c->rc = call_fail(c, CX_ETIMEDOUT, "deadline passed waiting for the token limiter");
        }
        c->tok_charged = est;
    }
    return 0;
}

static int run_blocking(struct call *c) {
    struct cx_router *r = c->r;
    for (;;) {
        if (c->q.cancel && atomic_load(c->q.cancel)) return c->rc = call_fail(c, CX_ECANCELED, "canceled");
        int rc = acquire_blocking(c);
        if (rc < 0) return rc;
        rc = call_make_xfer(c);
        if (rc < 0) {
            if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
            return c->rc = rc;
        }
        if (r->hybrid) {
            c->wdone = 0;
            rc = cx_ioloop_submit(r->loop, c->x, hybrid_done, c, &c->ei);
            if (rc < 0) {
                if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
                return c->rc = rc;
            }
            cx_gil_io_begin();
            cx__mutex_lock(&c->wmu);
            while (!c->wdone) cx__cond_wait(&c->wcond, &c->wmu, CX_DEADLINE_NONE);
            cx__mutex_unlock(&c->wmu);
            cx_gil_io_end();
        } else {
            rc = cx_http_client_perform(r->client, c->x, &c->ei);
            if (rc < 0) return c->rc = rc;
        }
        uint64_t wait;
        int act = call_after(c, &wait);
        if (act == ACT_OK) return c->rc = 0;
        if (act == ACT_FAIL) return c->rc;
        if (wait > 0) {
            cx_gil_io_begin();
            cx_sleep_ns(wait);
            cx_gil_io_end();
        }
    }
}

int cx_router_complete(struct cx_router *r, const struct cx_llm_query *q, struct cx_llm_response *out,
                       struct cx_errinfo *ei) {
    if (r == NULL || out == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete: router/out is NULL");
    cx_llm_response_init(out);
    int rc = query_check(q, ei);
    if (rc < 0) return rc;
    if (r->hybrid && cx_ioloop_on_thread(r->loop))
        return cx__err(ei, CX_EINVAL, "cx_router_complete: called on the I/O thread (use the async form)");
    struct call *c = cx__malloc(sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_router_complete: out of memory");
    call_init(c, r, q);
    if ((rc = cx__mutex_init(&c->wmu)) < 0 || (rc = cx__cond_init(&c->wcond)) < 0) {
        if (rc == 0) cx__mutex_destroy(&c->wmu);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_router_complete: out of memory");
    }
    rc = call_candidates(c, ei);
    if (rc < 0) goto out;
    atomic_fetch_add(&r->queries, 1);
    rc = call_cache_get(c);
    if (rc == 0) {
        *out = c->resp;
        cx_llm_response_init(&c->resp);
        goto out;
    }
    if (rc == CX_ENOMEM) {
        rc = cx__err(ei, rc, "cx_router_complete: out of memory");
        goto out;
    }
    if (r->single_flight) {
        struct sf_entry *e = NULL;
        rc = sf_join(c, NULL, &e);
        if (rc < 0) {
            rc = cx__err(ei, rc, "cx_router_complete: out of memory");
            goto out;
        }
        if (rc == 0) {
            rc = sf_wait(c, e, out, ei);
            goto out;
        }
    }
    rc = run_blocking(c);
    sf_publish(c, rc);
    if (rc == 0) {
        *out = c->resp;
        cx_llm_response_init(&c->resp);
    } else if (ei) {
        *ei = c->ei;
    }
out:
    cx__mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->wcond);
    call_release(c);
    cx__free(c);
    return rc;
}

/* ---- the async driver ---- */

static void async_acquire(struct call *c);
static void retry_timer(void *ud, int canceled);

static void async_finish(struct call *c, int rc) {
    sf_publish(c, rc);
    if (rc == 0) {
        c->done(0, &c->resp, NULL, c->ud);
        cx_llm_response_init(&c->resp); /* the callee took the strings */
    } else {
        c->done(rc, NULL, &c->ei, c->ud);
    }
    call_release(c);
    cx__free(c);
}

static void async_after(void *arg) {
    struct call *c = arg;
    uint64_t wait;
    int act = call_after(c, &wait);
    if (act == ACT_OK) {
        async_finish(c, 0);
    } else if (act == ACT_FAIL) {
        async_finish(c, c->rc);
    } else if (wait > 0) {
        /* re-acquire once the backoff is over */
        if (cx_ioloop_timer(c->r->loop, cx_deadline_after_ns(wait), retry_timer, c, &c->ei) < 0)
            async_finish(c, c->rc = call_fail(c, CX_ECLOSED, "the I/O loop shut down"));
    } else {
        async_acquire(c);
    }
}

static void retry_timer(void *ud, int canceled) {
    struct call *c = ud;
    if (canceled) {
        async_finish(c, c->rc = call_fail(c, CX_ECANCELED, "the I/O loop shut down"));
        return;
    }
    async_acquire(c);
}

static void async_xfer_done(struct cx_http_xfer *x, void *ud) {
    (void)x;
    struct call *c = ud;
    cx_router_post_fn post = c->q.post ? c->q.post : c->r->post;
    void *ctx = c->q.post ? c->q.post_ctx : c->r->post_ctx;
    if (post && post(async_after, c, ctx) == 0) return;
    async_after(c);
}

static void async_send(void *ud, int canceled) {
    struct call *c = ud;
    struct cx_router *r = c->r;
    if (canceled) {
        if (r->limiter && c->req_taken) (void)cx_limiter_adjust(r->limiter, -1);
        if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = call_fail(c, CX_ECANCELED, "the I/O loop shut down"));
        return;
    }
    c->req_taken = 0;
    int rc = call_make_xfer(c);
    if (rc < 0) {
        if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = rc);
        return;
    }
    rc = cx_ioloop_submit(r->loop, c->x, async_xfer_done, c, &c->ei);
    if (rc < 0) {
        if (r->tok && c->tok_charged > 0) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = rc);
    }
}

/* Reserves the limiters' tokens and sends when they are due (an I/O-loop timer waits). */
static void async_acquire(struct call *c) {
    struct cx_router *r = c->r;
    if (c->q.cancel && atomic_load(c->q.cancel)) {
        async_finish(c, c->rc = call_fail(c, CX_ECANCELED, "canceled"));
        return;
    }
    uint64_t now = cx_now_ns(), wait = 0, w;
    uint64_t pause = atomic_load(&r->paused_until);
    if (r->limiter == NULL && pause > now) wait = pause - now;
    if (r->limiter) {
        (void)cx_limiter_reserve(r->limiter, 1, &w);
        c->req_taken = 1;
        if (w > wait) wait = w;
    }
    if (r->tok) {
        double est = token_estimate(c);
        (void)cx_limiter_reserve(r->tok, est, &w);
        c->tok_charged = est;
        if (w > wait) wait = w;
    }
    if (c->q.deadline != CX_DEADLINE_NONE && now + wait >= c->q.deadline) {
        if (r->limiter) (void)cx_limiter_adjust(r->limiter, -1);
        if (r->tok) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        c->tok_charged = 0;
        async_finish(c, c->rc = call_fail(c, CX_ETIMEDOUT, "the deadline would pass waiting for the rate limiter"));
        return;
    }
    if (wait == 0) {
        async_send(c, 0);
        return;
    }
    if (cx_ioloop_timer(r->loop, now + wait, async_send, c, &c->ei) < 0) {
        if (r->limiter) (void)cx_limiter_adjust(r->limiter, -1);
        if (r->tok) (void)cx_limiter_adjust(r->tok, -c->tok_charged);
        async_finish(c, c->rc = call_fail(c, CX_ECLOSED, "the I/O loop shut down"));
    }
}

static int dup_opt(char **dst, const char *src) {
    *dst = NULL;
    if (src == NULL) return 0;
    *dst = cx__strdup(src);
    return *dst ? 0 : CX_ENOMEM;
}

int cx_router_complete_async(struct cx_router *r, const struct cx_llm_query *q, cx_router_done_fn done,
                             void *ud, struct cx_errinfo *ei) {
    if (r == NULL || done == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete_async: router/done is NULL");
    if (r->loop == NULL) return cx__err(ei, CX_EINVAL, "cx_router_complete_async: the router has no I/O loop");
    int rc = query_check(q, ei);
    if (rc < 0) return rc;
    struct call *c = cx__malloc(sizeof *c);
    if (c == NULL) return cx__err(ei, CX_ENOMEM, "cx_router_complete_async: out of memory");
    call_init(c, r, q);
    c->done = done;
    c->ud = ud;
    if (dup_opt(&c->own[0], q->system) < 0 || dup_opt(&c->own[1], q->prompt) < 0 ||
        dup_opt(&c->own[2], q->extra_header) < 0) {
        call_release(c);
        cx__free(c);
        return cx__err(ei, CX_ENOMEM, "cx_router_complete_async: out of memory");
    }
    c->q.system = c->own[0];
    c->q.prompt = c->own[1];
    c->q.extra_header = c->own[2];
    rc = call_candidates(c, ei);
    if (rc < 0) {
        call_release(c);
        cx__free(c);
        return rc;
    }
    atomic_fetch_add(&r->queries, 1);
    rc = call_cache_get(c);
    if (rc == 0) {
        done(0, &c->resp, NULL, ud);
        cx_llm_response_init(&c->resp); /* the callee took the strings */
        call_release(c);
        cx__free(c);
        return 0;
    }
    if (rc == CX_ENOMEM) {
        call_release(c);
        cx__free(c);
        return cx__err(ei, rc, "cx_router_complete_async: out of memory");
    }
    if (r->single_flight) {
        struct sf_waiter *w = cx__malloc(sizeof *w);
        struct sf_entry *e = NULL;
        if (w) { /* filled before it is published: the leader may call it at once */
            w->done = done;
            w->ud = ud;
            w->start_ns = c->start_ns;
        }
        rc = w ? sf_join(c, w, &e) : CX_ENOMEM;
        if (rc < 0) {
            cx__free(w);
            call_release(c);
            cx__free(c);
            return cx__err(ei, rc, "cx_router_complete_async: out of memory");
        }
        if (rc == 0) { /* queued behind the leader, which will call done */
            call_release(c);
            cx__free(c);
            return 0;
        }
        cx__free(w);
    }
    async_acquire(c);
    return 0;
}

/* ---- test hooks (not in the public header; tests declare them) ---- */

/* Queries waiting on an in-flight identical query right now (blocking and async). */
size_t cx__router_sf_waiting(struct cx_router *r);
size_t cx__router_sf_waiting(struct cx_router *r) {
    size_t n = 0;
    cx__mutex_lock(&r->sf_mu);
    for (int b = 0; b < SF_BUCKETS; b++) {
        for (struct sf_entry *e = r->sf[b]; e; e = e->next) {
            n += (size_t)(e->refs - 1);
            for (struct sf_waiter *w = e->waiters; w; w = w->next) n++;
        }
    }
    cx__mutex_unlock(&r->sf_mu);
    return n;
}

/* The router's own tokens-per-minute bucket (NULL when off). */
struct cx_limiter *cx__router_token_limiter(struct cx_router *r);
struct cx_limiter *cx__router_token_limiter(struct cx_router *r) { return r->tok; }
