/*
 * router_providers.c - the router's providers: names and defaults, options, routing and the
 * candidate list (fallback order), building and freeing the router, the endpoint names cache
 * keys use, statistics, the CPU-share average and the backoff jitter.
 * What it does not do: send anything (router_call.c), share answers (router_sf.c), or cache
 * (the caller does, under the names cx_router_endpoint gives).
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "cx/clock.h"
#include "cx/http.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "http_internal.h"
#include "router_internal.h"

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

static int nonempty(const char *s) { return s != NULL && s[0] != '\0'; }

/* "http://host:port/v1 (OpenAI API)": the server and the format, credentials redacted. */
static char *override_label(const char *url, enum cx_api api) {
    char *shown = url ? cx__http_url_redact_dup(url) : NULL;
    if (shown == NULL) return NULL;
    struct cx__buf b;
    cx__buf_init(&b, 8192);
    int rc = cx__buf_printf(&b, "%s (%s API)", shown, api == CX_API_ANTHROPIC ? "Anthropic" : "OpenAI");
    cx__free(shown);
    return rc == 0 ? cx__buf_take(&b) : NULL;
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
    int override = o->base_url && o->base_url[0];
    const char *openai_key = nonempty(o->providers[CX_PROVIDER_OPENAI].api_key)
                                 ? o->providers[CX_PROVIDER_OPENAI].api_key
                             : nonempty(o->providers[CX_PROVIDER_KIMI_K2].api_key)
                                 ? o->providers[CX_PROVIDER_KIMI_K2].api_key
                                 : NULL;
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
        /* With the override every provider is the one server the caller chose, so the key
         * follows the wire format: an OpenAI-format provider without a key of its own uses the
         * OpenAI key, else the Kimi one (both are keys of that format). */
        const char *key = has_key ? pc->api_key : NULL;
        if (key == NULL && override && k_prov[i].api == CX_API_OPENAI)
            key = openai_key;
        has_key = key != NULL;
        p->key = has_key ? cx__strdup(key) : NULL;
        if (p->base_url != NULL)
            p->cache_name = cache_name(k_prov[i].name, p->base_url, k_prov[i].base_url,
                                       o->base_url && o->base_url[0] ? o->cache_endpoint : NULL);
        p->label = override ? override_label(p->base_url, p->api) : cx__strdup(k_prov[i].name);
        p->pin = pc->usd_per_mtok_in >= 0 ? pc->usd_per_mtok_in : k_prov[i].in;
        p->pout = pc->usd_per_mtok_out >= 0 ? pc->usd_per_mtok_out : k_prov[i].out;
        if (p->base_url == NULL || p->model == NULL || p->cache_name == NULL || p->label == NULL ||
            (has_key && p->key == NULL)) {
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
    if (o->tokens_per_minute > 0) {
        rc = cx_limiter_new(o->tokens_per_minute / 60.0, o->tokens_per_minute, &r->tok, ei);
        if (rc < 0) goto fail;
    }
    rc = cx__ratelimit_wrap(r->limiter, r->tok, &r->own_rl, ei);
    if (rc < 0) goto fail;
    r->rl = r->own_rl;
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
        cx__free(r->p[i].label);
    }
    cx__ratelimit_free(r->own_rl);
    cx_limiter_free(r->tok);
    cx_http_client_free(r->client);
    cx__mutex_destroy(&r->sf_mu);
    cx__mutex_destroy(&r->share_mu);
    cx__free(r);
}


/* Folds one answered query into the moving averages (weight 1/8 for the newest). */
void cx__router_note_share(struct cx_router *r, uint64_t cpu_ns, uint64_t wall_ns) {
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
uint64_t cx__router_backoff_ns(struct cx_router *r, int i) {
    uint64_t b = r->base_ns;
    for (int k = 0; k < i && b < r->cap_ns; k++) b = b > r->cap_ns / 2 ? r->cap_ns : b * 2;
    if (b > r->cap_ns) b = r->cap_ns;
    if (b == 0) return 0;
    return (uint64_t)((double)(rng_next(r) >> 11) / 9007199254740992.0 * (double)b);
}

int cx__router_query_check(const struct cx_llm_query *q, struct cx_errinfo *ei) {
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

/* The preferred provider, then the others in order. A provider whose base URL is an earlier
 * candidate's (the router-wide override makes every provider one server) is left out: falling
 * back to it would only send the same request to the same server again. */
int cx__router_candidates(const struct cx_router *r, const struct cx_llm_query *q,
                          int cand[CX_PROVIDER_COUNT], struct cx_errinfo *ei) {
    int pref = q->force != CX_PROVIDER_AUTO ? (int)q->force : (int)cx_router_route(q->task);
    int n = 0;
    for (int k = 0; k < CX_PROVIDER_COUNT; k++) {
        int p = (pref + k) % CX_PROVIDER_COUNT;
        if (!r->p[p].configured) continue;
        int same = 0;
        for (int j = 0; j < n && !same; j++) same = strcmp(r->p[cand[j]].base_url, r->p[p].base_url) == 0;
        if (same) continue;
        cand[n++] = p;
        if (!r->fallback) break;
    }
    if (n == 0)
        return cx__err(ei, CX_ENOPROVIDER, "no configured provider for task %s (preferred %s)",
                       cx_task_type_name(q->task), cx_provider_name((enum cx_provider)pref));
    return n;
}

int cx_router_provider_endpoint(const struct cx_router *r, enum cx_provider p, const char **endpoint,
                                const char **model) {
    if (r == NULL || (int)p < 0 || p >= CX_PROVIDER_COUNT || endpoint == NULL || model == NULL)
        return CX_EINVAL;
    *endpoint = r->p[p].cache_name;
    *model = r->p[p].model;
    return 0;
}

int cx_router_endpoint(const struct cx_router *r, const struct cx_llm_query *q, enum cx_provider *prov,
                       const char **endpoint, const char **model, struct cx_errinfo *ei) {
    if (r == NULL || prov == NULL || endpoint == NULL || model == NULL)
        return cx__err(ei, CX_EINVAL, "cx_router_endpoint: NULL argument");
    int rc = cx__router_query_check(q, ei);
    if (rc < 0) return rc;
    int cand[CX_PROVIDER_COUNT];
    rc = cx__router_candidates(r, q, cand, ei);
    if (rc < 0) return rc;
    *prov = (enum cx_provider)cand[0];
    return cx_router_provider_endpoint(r, *prov, endpoint, model);
}
