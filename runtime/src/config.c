/*
 * config.c - settings from the environment (contract and the table of variables in
 * cx/config.h).
 *
 * What it does: the only getenv() in the runtime; strict parsing of numbers and names with
 * messages that name the variable and its value; ownership of the strings it copies. What it
 * does not do: apply the settings (the caller passes fields to cx_limiter_new, the executor and
 * so on), read files, or log anything (so an API key cannot leak through it).
 *
 * A load builds a private struct and copies it into the caller's only when every variable
 * parsed, so a failure leaves the caller's struct at the defaults with nothing allocated.
 */
#include "cx/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cx/clock.h"
#include "cx_internal.h"
#include "fleet.h"

/* Longest part of a bad value quoted back in a message. */
#define QUOTE_MAX 64

void cx_config_init(struct cx_config *c) {
    if (c == NULL) return;
    memset(c, 0, sizeof *c);
    c->rate_limit_rps = 5.0;
    c->rate_limit_burst = 4.0; /* rps - 1: see load_all */
    c->tokens_per_minute = 0;
    c->thread_pool_size = 10;
    c->db_pool_size = 5;
    c->cache_max_entries = 500;
    c->cache_similarity_threshold = 0.86;
    c->exec_mode = CX_MODE_FREE;
    c->gil_switch_interval_ns = 5 * CX_NSEC_PER_MSEC;
    c->io_design = CX_IO_AUTO;
    c->data_dir = NULL;
    c->base_url = NULL;
    c->anthropic_api_key = NULL;
    c->openai_api_key = NULL;
    c->kimi_api_key = NULL;
    c->ollama_base_url = NULL;
    c->request_timeout_ms = 60000;
    c->connect_timeout_ms = 10000;
    c->max_retries = 3;
    c->redis_url = NULL;
    c->redis_password = NULL;
    c->redis_prefix = NULL;
    c->fleet_size = 1;
    c->redis_optional = 0;
}

static void free_secret(char *s) {
    if (s == NULL) return;
    explicit_bzero(s, strlen(s));
    cx__free(s);
}

void cx_config_clear(struct cx_config *c) {
    if (c == NULL) return;
    cx__free(c->data_dir);
    cx__free(c->base_url);
    free_secret(c->anthropic_api_key);
    free_secret(c->openai_api_key);
    free_secret(c->kimi_api_key);
    cx__free(c->ollama_base_url);
    free_secret(c->redis_url);
    free_secret(c->redis_password);
    cx__free(c->redis_prefix);
    cx_config_init(c);
}

static const char *const exec_mode_names[] = {"serial", "gil", "free"};
static const char *const io_design_names[] = {"thread", "hybrid", "auto"};

const char *cx_exec_mode_name(enum cx_exec_mode m) {
    return (unsigned)m < 3 ? exec_mode_names[m] : "unknown";
}

const char *cx_io_design_name(enum cx_io_design d) {
    return (unsigned)d < 3 ? io_design_names[d] : "unknown";
}

int cx_exec_mode_parse(const char *s, enum cx_exec_mode *out) {
    if (s == NULL || out == NULL) return CX_EINVAL;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, exec_mode_names[i]) == 0) {
            *out = (enum cx_exec_mode)i;
            return 0;
        }
    }
    return CX_EINVAL;
}

int cx_io_design_parse(const char *s, enum cx_io_design *out) {
    if (s == NULL || out == NULL) return CX_EINVAL;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, io_design_names[i]) == 0) {
            *out = (enum cx_io_design)i;
            return 0;
        }
    }
    return CX_EINVAL;
}

/* ---- one load in progress ---- */

struct loader {
    const char *(*get)(const char *name, void *ctx);
    void *ctx;
    struct cx_errinfo *ei;
    char val[256]; /* the current value with surrounding blanks removed */
};

/* Looks `name` up; 1 with the trimmed value in ld->val, 0 when unset or blank, CX_ECONFIG when
 * too long to be a number or a name (only those use this; strings use get_string). */
static int lookup(struct loader *ld, const char *name) {
    const char *raw = ld->get(name, ld->ctx);
    if (raw == NULL) return 0;
    while (*raw && isspace((unsigned char)*raw)) raw++;
    size_t n = strlen(raw);
    while (n > 0 && isspace((unsigned char)raw[n - 1])) n--;
    if (n == 0) return 0;
    if (n >= sizeof ld->val)
        return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s...': value too long (%zu characters)", name,
                       QUOTE_MAX, raw, n);
    memcpy(ld->val, raw, n);
    ld->val[n] = '\0';
    return 1;
}

/* Reads a number; 1 when set (*out written), 0 when unset, < 0 on error. Bounds: lo < x when
 * lo_open, else lo <= x; x <= hi. */
static int get_double(struct loader *ld, const char *name, double lo, int lo_open, double hi,
                      double *out) {
    int rc = lookup(ld, name);
    if (rc <= 0) return rc;
    const char *v = ld->val;
    errno = 0;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end != '\0')
        return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': not a number", name, QUOTE_MAX, v);
    if (!isfinite(x) || (errno == ERANGE && fabs(x) > 1))
        return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': not a finite number", name, QUOTE_MAX, v);
    if ((lo_open ? !(x > lo) : !(x >= lo)) || !(x <= hi)) {
        if (isinf(hi))
            return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': must be %s %g", name, QUOTE_MAX, v,
                           lo_open ? ">" : ">=", lo);
        return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': must be in %s%g, %g]", name, QUOTE_MAX, v,
                       lo_open ? "(" : "[", lo, hi);
    }
    *out = x;
    return 1;
}

/* Reads a request rate: a number > 0, or 0 / "inf" / "infinity" / "unlimited" / "off" for no
 * limit (stored as 0). 1 when set, 0 when unset, < 0 on error. */
static int get_rate(struct loader *ld, const char *name, double *out) {
    int rc = lookup(ld, name);
    if (rc <= 0) return rc;
    static const char *const unlimited[] = {"inf", "infinity", "unlimited", "off"};
    for (size_t i = 0; i < sizeof unlimited / sizeof unlimited[0]; i++) {
        if (strcasecmp(ld->val, unlimited[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return get_double(ld, name, 0, 0, INFINITY, out);
}

/* Reads a decimal integer in [lo, hi]; 1 when set, 0 when unset, < 0 on error. */
static int get_int(struct loader *ld, const char *name, long lo, long hi, int *out) {
    int rc = lookup(ld, name);
    if (rc <= 0) return rc;
    const char *v = ld->val;
    errno = 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0')
        return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': not an integer", name, QUOTE_MAX, v);
    if (errno == ERANGE || x < lo || x > hi)
        return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': must be in [%ld, %ld]", name, QUOTE_MAX,
                       v, lo, hi);
    *out = (int)x;
    return 1;
}

/* Copies a string variable (trimmed) into *out; 1 when set, 0 when unset, CX_ENOMEM. */
static int get_string(struct loader *ld, const char *name, char **out) {
    const char *raw = ld->get(name, ld->ctx);
    if (raw == NULL) return 0;
    while (*raw && isspace((unsigned char)*raw)) raw++;
    size_t n = strlen(raw);
    while (n > 0 && isspace((unsigned char)raw[n - 1])) n--;
    if (n == 0) return 0;
    char *s = cx__strndup(raw, n);
    if (s == NULL) return cx__err(ld->ei, CX_ENOMEM, "out of memory copying %s", name);
    *out = s;
    return 1;
}

/* The first of two variables that is set (the CORTEX_ one wins). */
static int get_string2(struct loader *ld, const char *name1, const char *name2, char **out) {
    int rc = get_string(ld, name1, out);
    if (rc != 0) return rc;
    return get_string(ld, name2, out);
}

/* Sets *out to 1 for 1/true/yes/on, 0 for 0/false/no/off; returns 1 when set, 0 when unset,
 * < 0 on a bad value. */
static int get_bool(struct loader *ld, const char *name, int *out) {
    int rc = lookup(ld, name);
    if (rc <= 0) return rc;
    const char *v = ld->val;
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 1; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return 1; }
    }
    return cx__err(ld->ei, CX_ECONFIG, "%s='%.*s': expected 1 or 0 (true/false, yes/no, on/off)",
                   name, QUOTE_MAX, v);
}

/* Joins a directory and a relative tail into a new string. */
static int join_dir(struct loader *ld, const char *dir, const char *tail, char **out) {
    size_t a = strlen(dir);
    while (a > 1 && dir[a - 1] == '/') a--;
    size_t b = strlen(tail);
    char *s = cx__malloc(a + 1 + b + 1);
    if (s == NULL) return cx__err(ld->ei, CX_ENOMEM, "out of memory building the data directory");
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, tail, b + 1);
    *out = s;
    return 0;
}

static int load_data_dir(struct loader *ld, struct cx_config *c) {
    int rc = get_string(ld, "CORTEX_DATA_DIR", &c->data_dir);
    if (rc != 0) return rc;
    const char *xdg = ld->get("XDG_DATA_HOME", ld->ctx);
    if (xdg != NULL && xdg[0] == '/') return join_dir(ld, xdg, "cortex", &c->data_dir);
    const char *home = ld->get("HOME", ld->ctx);
    if (home != NULL && home[0] != '\0')
        return join_dir(ld, home, ".local/share/cortex", &c->data_dir);
    return 0;
}

static int load_exec_mode(struct loader *ld, struct cx_config *c) {
    enum cx_exec_mode mode = CX_MODE_FREE;
    int have_mode = 0;
    int rc = lookup(ld, "CORTEX_EXEC_MODE");
    if (rc < 0) return rc;
    if (rc == 1) {
        const char *v = ld->val;
        if (cx_exec_mode_parse(v, &mode) < 0)
            return cx__err(ld->ei, CX_ECONFIG,
                           "CORTEX_EXEC_MODE='%.*s': expected serial, gil or free", QUOTE_MAX, v);
        have_mode = 1;
    }
    int free_threading = 0;
    rc = get_bool(ld, "CORTEX_USE_FREE_THREADING", &free_threading);
    if (rc < 0) return rc;
    if (rc == 1) {
        if (!have_mode) {
            mode = free_threading ? CX_MODE_FREE : CX_MODE_GIL;
        } else if ((mode == CX_MODE_FREE) != (free_threading == 1)) {
            return cx__err(ld->ei, CX_ECONFIG,
                           "CORTEX_EXEC_MODE='%s' and CORTEX_USE_FREE_THREADING='%.*s' disagree",
                           cx_exec_mode_name(mode), QUOTE_MAX, ld->val);
        }
    }
    c->exec_mode = mode;
    return 0;
}

/* Fleet mode: the numbers, then the strings, each checked as the fleet will use it. */
static int load_fleet(struct loader *ld, struct cx_config *c) {
    int rc;
    if ((rc = get_int(ld, "CORTEX_FLEET_SIZE", 1, 100000, &c->fleet_size)) < 0) return rc;
    if ((rc = get_bool(ld, "CORTEX_REDIS_OPTIONAL", &c->redis_optional)) < 0) return rc;
    if ((rc = get_string(ld, "CORTEX_REDIS_URL", &c->redis_url)) < 0) return rc;
    if ((rc = get_string(ld, "CORTEX_REDIS_PASSWORD", &c->redis_password)) < 0) return rc;
    if ((rc = get_string(ld, "CORTEX_REDIS_PREFIX", &c->redis_prefix)) < 0) return rc;
    if (c->redis_password != NULL && c->redis_url == NULL)
        return cx__err(ld->ei, CX_ECONFIG, "CORTEX_REDIS_PASSWORD is set but CORTEX_REDIS_URL is "
                       "not: set the URL of the fleet's Redis, or unset the password");
    if (c->redis_url != NULL) {
        /* The parser quotes the URL with its password masked, never as given. */
        struct cx__redis_url u;
        rc = cx__redis_url_parse(c->redis_url, "CORTEX_REDIS_URL", NULL, &u, ld->ei);
        cx__redis_url_clear(&u);
        if (rc < 0 && rc != CX_ENOMEM) { /* rediss:// (CX_ENOTSUP) is a configuration error too */
            if (ld->ei != NULL) ld->ei->code = CX_ECONFIG;
            return CX_ECONFIG;
        }
        if (rc < 0) return rc;
    }
    if (c->redis_prefix != NULL) {
        const char *p = c->redis_prefix;
        size_t n = strlen(p);
        if (n > 64)
            return cx__err(ld->ei, CX_ECONFIG, "CORTEX_REDIS_PREFIX='%.*s...': at most 64 "
                           "characters (got %zu)", QUOTE_MAX, p, n);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
                return cx__err(ld->ei, CX_ECONFIG, "CORTEX_REDIS_PREFIX='%.*s': blank, control or "
                               "non-ASCII character at position %zu", QUOTE_MAX, p, i + 1);
    }
    return 0;
}

static int load_all(struct loader *ld, struct cx_config *c) {
    int rc;
    if ((rc = get_rate(ld, "CORTEX_RATE_LIMIT_RPS", &c->rate_limit_rps)) < 0) return rc;
    c->rate_limit_rps_set = rc == 1;
    /* One token of headroom below the provider's own bucket (which, like ours and the mock's,
     * holds max(1, rps)): the server meters arrivals, we meter grants, and a request that
     * leaves a few ms late after its grant makes the next one arrive early. With zero slack a
     * server limiting at our very rate trips on that jitter (once per 50 requests at 5/s,
     * measured); with one token it absorbs up to 1/rps of jitter and the sustained rate is
     * unchanged. */
    c->rate_limit_burst = c->rate_limit_rps > 2 ? c->rate_limit_rps - 1 : 1;
    if ((rc = get_double(ld, "CORTEX_RATE_LIMIT_BURST", 1, 0, INFINITY, &c->rate_limit_burst)) < 0)
        return rc;
    /* cx_limiter_new refuses a bucket whose full refill takes more than ~31 years. */
    if (c->rate_limit_rps > 0 && c->rate_limit_burst / c->rate_limit_rps > 1e9)
        return cx__err(ld->ei, CX_ECONFIG,
                       "CORTEX_RATE_LIMIT_RPS=%g with CORTEX_RATE_LIMIT_BURST=%g: a full refill "
                       "would take %g s (at most 1e9 s)",
                       c->rate_limit_rps, c->rate_limit_burst,
                       c->rate_limit_burst / c->rate_limit_rps);
    if ((rc = get_double(ld, "CORTEX_TOKENS_PER_MINUTE", 0, 0, INFINITY,
                         &c->tokens_per_minute)) < 0)
        return rc;
    /* The token limiter's burst is one minute of tokens, and a bucket holds at least one. */
    if (c->tokens_per_minute > 0 && c->tokens_per_minute < 1)
        return cx__err(ld->ei, CX_ECONFIG, "CORTEX_TOKENS_PER_MINUTE='%.*s': must be 0 (unlimited) "
                       "or >= 1", QUOTE_MAX, ld->val);
    if ((rc = get_int(ld, "CORTEX_THREAD_POOL_SIZE", 1, 1024, &c->thread_pool_size)) < 0) return rc;
    if ((rc = get_int(ld, "CORTEX_DB_POOL_SIZE", 1, 64, &c->db_pool_size)) < 0) return rc;
    if ((rc = get_int(ld, "CORTEX_CACHE_MAX_ENTRIES", 1, INT_MAX, &c->cache_max_entries)) < 0)
        return rc;
    if ((rc = get_double(ld, "CORTEX_CACHE_SIMILARITY_THRESHOLD", 0, 1, 1,
                         &c->cache_similarity_threshold)) < 0)
        return rc;
    if ((rc = load_exec_mode(ld, c)) < 0) return rc;
    double ms = 0;
    if ((rc = get_double(ld, "CORTEX_GIL_SWITCH_INTERVAL_MS", 0, 1, 60000, &ms)) < 0) return rc;
    if (rc == 1) {
        c->gil_switch_interval_ns = (uint64_t)llround(ms * 1e6);
        if (c->gil_switch_interval_ns == 0) c->gil_switch_interval_ns = 1;
    }
    if ((rc = lookup(ld, "CORTEX_IO_DESIGN")) < 0) return rc;
    if (rc == 1 && cx_io_design_parse(ld->val, &c->io_design) < 0)
        return cx__err(ld->ei, CX_ECONFIG, "CORTEX_IO_DESIGN='%.*s': expected thread, hybrid or auto",
                       QUOTE_MAX, ld->val);
    if ((rc = get_int(ld, "CORTEX_REQUEST_TIMEOUT_MS", 1, 86400000, &c->request_timeout_ms)) < 0)
        return rc;
    if ((rc = get_int(ld, "CORTEX_CONNECT_TIMEOUT_MS", 1, 3600000, &c->connect_timeout_ms)) < 0)
        return rc;
    if ((rc = get_int(ld, "CORTEX_MAX_RETRIES", 0, 100, &c->max_retries)) < 0) return rc;
    /* Strings last, so a parse error above never has anything to free. */
    if ((rc = load_data_dir(ld, c)) < 0) return rc;
    if ((rc = get_string(ld, "CORTEX_BASE_URL", &c->base_url)) < 0) return rc;
    if ((rc = get_string2(ld, "CORTEX_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY",
                          &c->anthropic_api_key)) < 0)
        return rc;
    if ((rc = get_string2(ld, "CORTEX_OPENAI_API_KEY", "OPENAI_API_KEY", &c->openai_api_key)) < 0)
        return rc;
    if ((rc = get_string2(ld, "CORTEX_KIMI_API_KEY", "KIMI_API_KEY", &c->kimi_api_key)) < 0)
        return rc;
    if ((rc = get_string2(ld, "CORTEX_OLLAMA_BASE_URL", "OLLAMA_HOST", &c->ollama_base_url)) < 0)
        return rc;
    if ((rc = load_fleet(ld, c)) < 0) return rc;
    return 0;
}

int cx_config_load(struct cx_config *c, const char *(*get)(const char *name, void *ctx),
                   void *ctx, struct cx_errinfo *ei) {
    if (c == NULL || get == NULL)
        return cx__err(ei, CX_EINVAL, "cx_config_load: %s is NULL", c == NULL ? "c" : "get");
    struct loader ld = {.get = get, .ctx = ctx, .ei = ei};
    struct cx_config tmp;
    cx_config_init(&tmp);
    int rc = load_all(&ld, &tmp);
    explicit_bzero(ld.val, sizeof ld.val);
    if (rc < 0) {
        cx_config_clear(&tmp);
        cx_config_init(c);
        return rc;
    }
    *c = tmp;
    return 0;
}

static const char *env_get(const char *name, void *ctx) {
    (void)ctx;
    return getenv(name);
}

int cx_config_load_env(struct cx_config *c, struct cx_errinfo *ei) {
    return cx_config_load(c, env_get, NULL, ei);
}
