/*
 * settings.c - the mock server's settings: one table of keys shared by the config file, the
 * command line, mock_options.config_text and POST /admin/config, parsing of `key = value` text
 * and JSON objects (all-or-nothing: a copy is changed and only committed when every key is
 * good), the settings as JSON, and latency sampling. It does not lock: the server keeps the
 * current settings under its own mutex and hands copies around.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mock_internal.h"

const char *const mock__route_names[MOCK_ROUTE_COUNT] = {
    "chat", "messages", "models", "health", "metrics", "stats", "admin", "embeddings",
    "completions", "responses", "other"};

int mock__route_from_name(const char *name)
{
    for (int i = 0; i < MOCK_ROUTE_COUNT; i++)
        if (!strcmp(name, mock__route_names[i]))
            return i;
    return -1;
}

const char *const mock__fault_names[MOCK_FAULT_COUNT] = {
    "ok", "429", "500", "502", "503", "529", "reset", "stall", "malformed", "cut",
    "disconnect", "corrupt", "duplicate", "truncate", "dangerous"};

static const char *const dist_names[] = {"fixed", "uniform", "normal", "lognormal"};

enum {
    T_DIST = 1, T_LAT = 2, T_LATMAX = 4, T_STDDEV = 8, T_SIGMA = 16, T_TTFT = 32, T_ITL = 64,
    T_ITLJ = 128
};

int mock__fault_from_name(const char *name)
{
    for (int i = 0; i < MOCK_FAULT_COUNT; i++)
        if (!strcmp(name, mock__fault_names[i]))
            return i;
    if (!strcmp(name, "none"))
        return MOCK_FAULT_NONE;
    return -1;
}

void mock__settings_init(struct mock_settings *s)
{
    memset(s, 0, sizeof *s);
    s->global.dist = MOCK_DIST_FIXED;
    s->global.sigma = 0.5;
    s->global.ttft_ms = -1;
    s->global.set = 0xff;
    for (int r = 0; r < MOCK_TIMED_ROUTES; r++) {
        s->route[r] = s->global;
        s->route[r].set = 0;
    }
    s->max_latency_ms = 600000;
    s->time_scale = 1.0;
    s->rate_burst = 0;
    s->max_body = 1u << 20;
    snprintf(s->model, sizeof s->model, "%s", "mock-1");
    s->stall_ms = 600000;
    s->disconnect_ms = 50;
    s->retry_after_ms = 1000;
    s->cut_after = 3;
    s->header_timeout_ms = 10000;
    s->body_timeout_ms = 10000;
    s->request_log = 100;
}

static int set_timing(struct mock_timing *t, const char *k, const char *v, char *err,
                      size_t errlen, const char *full)
{
    double d;
    if (!strcmp(k, "dist")) {
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, dist_names[i])) {
                t->dist = i;
                t->set |= T_DIST;
                return 0;
            }
        return mock__err(err, errlen, "%s: unknown distribution '%s' (fixed, uniform, normal, "
                         "lognormal)", full, v);
    }
    if (!strcmp(k, "sigma") || !strcmp(k, "itl_jitter")) {
        if (mock__parse_double(v, &d) < 0 || d < 0 || (!strcmp(k, "itl_jitter") && d > 1))
            return mock__err(err, errlen, "%s: '%s' is not a number in range", full, v);
        if (k[0] == 's') {
            t->sigma = d;
            t->set |= T_SIGMA;
        } else {
            t->itl_jitter = d;
            t->set |= T_ITLJ;
        }
        return 0;
    }
    static const struct { const char *name; size_t off; unsigned bit; } durs[] = {
        {"latency", offsetof(struct mock_timing, latency_ms), T_LAT},
        {"latency_max", offsetof(struct mock_timing, latency_max_ms), T_LATMAX},
        {"stddev", offsetof(struct mock_timing, stddev_ms), T_STDDEV},
        {"ttft", offsetof(struct mock_timing, ttft_ms), T_TTFT},
        {"itl", offsetof(struct mock_timing, itl_ms), T_ITL},
    };
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        if (strcmp(k, durs[i].name))
            continue;
        if (mock__parse_duration(v, &d) < 0)
            return mock__err(err, errlen, "%s: '%s' is not a duration (e.g. 0, 150ms, 2s)",
                             full, v);
        *(double *)((char *)t + durs[i].off) = d;
        t->set |= durs[i].bit;
        return 0;
    }
    return 1; /* not a timing key */
}

int mock__settings_set(struct mock_settings *s, const char *key, const char *value, char *err,
                       size_t errlen)
{
    char k[64];
    if (!key || !value)
        return mock__err(err, errlen, "missing key or value");
    if (strlen(key) >= sizeof k)
        return mock__err(err, errlen, "unknown key '%.60s...'", key);
    /* Flags use dashes, the file uses underscores: accept both. */
    for (size_t i = 0;; i++) {
        k[i] = key[i] == '-' ? '_' : key[i];
        if (!key[i])
            break;
    }
    while (*value == ' ' || *value == '\t')
        value++;
    struct mock_settings n = *s;
    double d;
    uint64_t u;
    int rc;
    const char *dot = strchr(k, '.');
    if (dot && strncmp(k, "fault.", 6)) {
        int r;
        for (r = 0; r < MOCK_TIMED_ROUTES; r++)
            if ((size_t)(dot - k) == strlen(mock__route_names[r]) &&
                !strncmp(k, mock__route_names[r], (size_t)(dot - k)))
                break;
        if (r == MOCK_TIMED_ROUTES)
            return mock__err(err, errlen, "unknown key '%s' (route prefixes: chat., messages., "
                             "models.)", key);
        rc = set_timing(&n.route[r], dot + 1, value, err, errlen, key);
        if (rc > 0)
            return mock__err(err, errlen, "unknown key '%s' (a route takes latency, dist, "
                             "latency_max, stddev, sigma, ttft, itl, itl_jitter)", key);
        if (rc < 0)
            return -1;
        *s = n;
        return 0;
    }
    rc = set_timing(&n.global, k, value, err, errlen, key);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        *s = n;
        return 0;
    }
    if (!strncmp(k, "fault.", 6)) {
        int f = mock__fault_from_name(k + 6);
        if (f <= 0)
            return mock__err(err, errlen, "unknown fault in key '%s'", key);
        if (mock__parse_double(value, &d) < 0 || d < 0 || d > 1)
            return mock__err(err, errlen, "%s: '%s' is not a probability in [0, 1]", key, value);
        n.fault_prob[f] = d;
        double sum = 0;
        for (int i = 1; i < MOCK_FAULT_COUNT; i++)
            sum += n.fault_prob[i];
        if (sum > 1 + 1e-9)
            return mock__err(err, errlen, "%s: fault probabilities would sum to %g (> 1)", key,
                             sum);
    } else if (!strcmp(k, "max_latency") || !strcmp(k, "stall") ||
               !strcmp(k, "disconnect_after") || !strcmp(k, "retry_after") ||
               !strcmp(k, "header_timeout") || !strcmp(k, "body_timeout")) {
        if (mock__parse_duration(value, &d) < 0)
            return mock__err(err, errlen, "%s: '%s' is not a duration", key, value);
        if (k[0] == 'h')
            n.header_timeout_ms = d;
        else if (k[0] == 'b')
            n.body_timeout_ms = d;
        else if (k[0] == 'm')
            n.max_latency_ms = d;
        else if (k[0] == 's')
            n.stall_ms = d;
        else if (k[0] == 'd')
            n.disconnect_ms = d;
        else
            n.retry_after_ms = d;
    } else if (!strcmp(k, "time_scale") || !strcmp(k, "load_factor") || !strcmp(k, "rate_rps") ||
               !strcmp(k, "rate_burst")) {
        if (mock__parse_double(value, &d) < 0 || d < 0)
            return mock__err(err, errlen, "%s: '%s' is not a non-negative number", key, value);
        if (!strcmp(k, "time_scale"))
            n.time_scale = d;
        else if (!strcmp(k, "load_factor"))
            n.load_factor = d;
        else if (!strcmp(k, "rate_rps"))
            n.rate_rps = d;
        else
            n.rate_burst = d;
    } else if (!strcmp(k, "seed") || !strcmp(k, "max_running") || !strcmp(k, "max_queue") ||
               !strcmp(k, "max_body") || !strcmp(k, "pad_to") || !strcmp(k, "cut_after") ||
               !strcmp(k, "request_log")) {
        if (mock__parse_u64(value, &u) < 0)
            return mock__err(err, errlen, "%s: '%s' is not a non-negative integer", key, value);
        if (!strcmp(k, "request_log") && u > 10000)
            return mock__err(err, errlen, "request_log: %s is more than 10000", value);
        if (strcmp(k, "seed") && u > 0xffffffffu && strcmp(k, "max_body"))
            return mock__err(err, errlen, "%s: %s is too large", key, value);
        if (!strcmp(k, "seed"))
            n.seed = u;
        else if (!strcmp(k, "max_running"))
            n.max_running = (unsigned)u;
        else if (!strcmp(k, "max_queue"))
            n.max_queue = (unsigned)u;
        else if (!strcmp(k, "max_body"))
            n.max_body = u ? (size_t)u : (1u << 20);
        else if (!strcmp(k, "pad_to"))
            n.pad_to = (size_t)u;
        else if (!strcmp(k, "request_log"))
            n.request_log = (unsigned)u;
        else
            n.cut_after = (unsigned)u;
    } else if (!strcmp(k, "model")) {
        if (!*value || strlen(value) >= sizeof n.model)
            return mock__err(err, errlen, "model: empty or longer than %zu bytes",
                             sizeof n.model - 1);
        snprintf(n.model, sizeof n.model, "%s", value);
    } else if (!strcmp(k, "required_key")) {
        if (strlen(value) >= sizeof n.required_key)
            return mock__err(err, errlen, "required_key: longer than %zu bytes",
                             sizeof n.required_key - 1);
        snprintf(n.required_key, sizeof n.required_key, "%s", value);
    } else {
        return mock__err(err, errlen, "unknown key '%s'", key);
    }
    *s = n;
    return 0;
}

static char *trim(char *a)
{
    while (isspace((unsigned char)*a))
        a++;
    size_t n = strlen(a);
    while (n && isspace((unsigned char)a[n - 1]))
        a[--n] = 0;
    return a;
}

int mock__settings_apply_text(struct mock_settings *s, const char *text, char *err, size_t errlen)
{
    if (!text)
        return 0;
    struct mock_settings n = *s;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '{') {
        cJSON *j = cJSON_Parse(p);
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return mock__err(err, errlen, "settings: not a valid JSON object");
        }
        for (cJSON *it = j->child; it; it = it->next) {
            char num[64];
            const char *v;
            if (cJSON_IsString(it)) {
                v = it->valuestring;
            } else if (cJSON_IsNumber(it)) {
                double d = it->valuedouble;
                if (d == floor(d) && fabs(d) < 1e18)
                    snprintf(num, sizeof num, "%.0f", d);
                else
                    snprintf(num, sizeof num, "%.17g", d);
                v = num;
            } else if (cJSON_IsBool(it)) {
                v = cJSON_IsTrue(it) ? "1" : "0";
            } else {
                /* it->string lives in j: write the message before deleting j. */
                mock__err(err, errlen, "%s: value must be a string or a number",
                          it->string ? it->string : "?");
                cJSON_Delete(j);
                return -1;
            }
            if (mock__settings_set(&n, it->string, v, err, errlen) < 0) {
                cJSON_Delete(j);
                return -1;
            }
        }
        cJSON_Delete(j);
        *s = n;
        return 0;
    }
    char *copy = strdup(text);
    if (!copy)
        return mock__err(err, errlen, "out of memory");
    int line = 0;
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        char *h = strchr(l, '#');
        if (h)
            *h = 0;
        char *t = trim(l);
        if (!*t)
            continue;
        char *eq = strchr(t, '=');
        if (!eq) { /* t points into copy: write the message before freeing it */
            mock__err(err, errlen, "line %d: expected 'key = value', got '%.60s'", line, t);
            free(copy);
            return -1;
        }
        *eq = 0;
        char *k = trim(t), *v = trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && ((v[0] == '"' && v[vl - 1] == '"') || (v[0] == '\'' && v[vl - 1] == '\''))) {
            v[vl - 1] = 0;
            v++;
        }
        char e2[200];
        if (mock__settings_set(&n, k, v, e2, sizeof e2) < 0) {
            free(copy);
            return mock__err(err, errlen, "line %d: %s", line, e2);
        }
    }
    free(copy);
    *s = n;
    return 0;
}

static void json_timing(struct mock_buf *b, const char *prefix, const struct mock_timing *t,
                        int only_set)
{
    if (!only_set || (t->set & T_DIST))
        mock__buf_fmt(b, "\"%sdist\":\"%s\",", prefix, dist_names[t->dist]);
    if (!only_set || (t->set & T_LAT))
        mock__buf_fmt(b, "\"%slatency\":\"%gms\",", prefix, t->latency_ms);
    if (!only_set || (t->set & T_LATMAX))
        mock__buf_fmt(b, "\"%slatency_max\":\"%gms\",", prefix, t->latency_max_ms);
    if (!only_set || (t->set & T_STDDEV))
        mock__buf_fmt(b, "\"%sstddev\":\"%gms\",", prefix, t->stddev_ms);
    if (!only_set || (t->set & T_SIGMA))
        mock__buf_fmt(b, "\"%ssigma\":%g,", prefix, t->sigma);
    if ((!only_set || (t->set & T_TTFT)) && t->ttft_ms >= 0)
        mock__buf_fmt(b, "\"%sttft\":\"%gms\",", prefix, t->ttft_ms);
    if (!only_set || (t->set & T_ITL))
        mock__buf_fmt(b, "\"%sitl\":\"%gms\",", prefix, t->itl_ms);
    if (!only_set || (t->set & T_ITLJ))
        mock__buf_fmt(b, "\"%sitl_jitter\":%g,", prefix, t->itl_jitter);
}

char *mock__settings_json(const struct mock_settings *s)
{
    struct mock_buf b = {0};
    mock__buf_str(&b, "{");
    json_timing(&b, "", &s->global, 0);
    for (int r = 0; r < MOCK_TIMED_ROUTES; r++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "%s.", mock__route_names[r]);
        json_timing(&b, prefix, &s->route[r], 1);
    }
    mock__buf_fmt(&b, "\"max_latency\":\"%gms\",\"time_scale\":%g,\"seed\":%llu,"
                  "\"max_running\":%u,\"max_queue\":%u,\"load_factor\":%g,\"rate_rps\":%g,"
                  "\"rate_burst\":%g,\"max_body\":%zu,\"pad_to\":%zu,",
                  s->max_latency_ms, s->time_scale, (unsigned long long)s->seed, s->max_running,
                  s->max_queue, s->load_factor, s->rate_rps, s->rate_burst, s->max_body,
                  s->pad_to);
    mock__buf_str(&b, "\"model\":");
    mock__buf_json_str(&b, s->model, strlen(s->model));
    mock__buf_fmt(&b, ",\"required_key\":\"%s\",", s->required_key[0] ? "(set)" : "");
    mock__buf_fmt(&b, "\"stall\":\"%gms\",\"cut_after\":%u,\"disconnect_after\":\"%gms\","
                  "\"retry_after\":\"%gms\",\"header_timeout\":\"%gms\","
                  "\"body_timeout\":\"%gms\",\"request_log\":%u",
                  s->stall_ms, s->cut_after, s->disconnect_ms, s->retry_after_ms,
                  s->header_timeout_ms, s->body_timeout_ms, s->request_log);
    for (int f = 1; f < MOCK_FAULT_COUNT; f++)
        mock__buf_fmt(&b, ",\"fault.%s\":%g", mock__fault_names[f], s->fault_prob[f]);
    mock__buf_str(&b, "}");
    if (b.oom) {
        mock__buf_free(&b);
        return NULL;
    }
    return b.p;
}

void mock__settings_timing(const struct mock_settings *s, int route, struct mock_timing *out)
{
    *out = s->global;
    if (route < 0 || route >= MOCK_TIMED_ROUTES)
        return;
    const struct mock_timing *r = &s->route[route];
    if (r->set & T_DIST)
        out->dist = r->dist;
    if (r->set & T_LAT)
        out->latency_ms = r->latency_ms;
    if (r->set & T_LATMAX)
        out->latency_max_ms = r->latency_max_ms;
    if (r->set & T_STDDEV)
        out->stddev_ms = r->stddev_ms;
    if (r->set & T_SIGMA)
        out->sigma = r->sigma;
    if (r->set & T_TTFT)
        out->ttft_ms = r->ttft_ms;
    if (r->set & T_ITL)
        out->itl_ms = r->itl_ms;
    if (r->set & T_ITLJ)
        out->itl_jitter = r->itl_jitter;
}

double mock__sample_ms(const struct mock_timing *t, double centre, double max_ms, uint64_t x)
{
    double v = centre, cap = max_ms;
    switch (t->dist) {
    case MOCK_DIST_UNIFORM:
        if (t->latency_max_ms > t->latency_ms)
            v = centre + mock__unit(x) * (t->latency_max_ms - t->latency_ms);
        break;
    case MOCK_DIST_NORMAL:
        v = centre + t->stddev_ms * mock__normal(x);
        if (centre > 0 && cap > 10 * centre)
            cap = 10 * centre;
        break;
    case MOCK_DIST_LOGNORMAL:
        v = centre * exp(t->sigma * mock__normal(x));
        if (centre > 0 && cap > 10 * centre)
            cap = 10 * centre;
        break;
    default:
        break;
    }
    if (!(v > 0))
        v = 0;
    if (v > cap)
        v = cap;
    return v;
}
