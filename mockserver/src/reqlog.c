/*
 * reqlog.c - the request log behind GET/DELETE /admin/requests: the last `request_log`
 * requests (default 100, at most MOCK_LOG_MAX) on the routes a client under test calls (every
 * route but /health, /metrics, /stats and /admin/), each with its method, path, route, model,
 * headers (secrets redacted), body, status, the fault applied and its duration, so a test can
 * check what its client sent. It records; it decides nothing about the requests.
 *
 * A request's entry is begun at dispatch (headers and body are complete then, and the body is
 * freed soon after) into the request's own buffer, and finished and pushed into a ring under
 * the log's mutex by the completion callback, when the status is known. Nothing here is called
 * while holding the server's mutex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server_internal.h"

int mock__log_init(struct mock_log *l)
{
    memset(l, 0, sizeof *l);
    l->ring = calloc(MOCK_LOG_MAX, sizeof *l->ring);
    if (!l->ring)
        return -1;
    pthread_mutex_init(&l->mu, NULL);
    return 0;
}

void mock__log_clear(struct mock_log *l)
{
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++) {
        free(l->ring[(l->head + i) % MOCK_LOG_MAX]);
        l->ring[(l->head + i) % MOCK_LOG_MAX] = NULL;
    }
    l->head = l->n = 0;
    l->dropped = 0;
    pthread_mutex_unlock(&l->mu);
}

void mock__log_free(struct mock_log *l)
{
    if (!l->ring)
        return;
    mock__log_clear(l);
    free(l->ring);
    l->ring = NULL;
    pthread_mutex_destroy(&l->mu);
}

/* A header whose value is a credential: Authorization, x-api-key, and any name holding "key",
 * "token", "auth", "secret", "password" or "cookie". */
static int secret_header(const char *name)
{
    static const char *const words[] = {"key", "token", "auth", "secret", "password", "cookie"};
    size_t n = strlen(name);
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t k = strlen(words[w]);
        for (size_t i = 0; i + k <= n; i++)
            if (!strncasecmp(name + i, words[w], k))
                return 1;
    }
    return 0;
}

struct hdr_ctx {
    struct mock_buf *b;
    int first;
};

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct hdr_ctx *h = cls;
    (void)kind;
    if (!key)
        return MHD_YES;
    mock__buf_str(h->b, h->first ? "" : ",");
    h->first = 0;
    mock__buf_json_str(h->b, key, strlen(key));
    mock__buf_str(h->b, ":");
    if (secret_header(key))
        mock__buf_str(h->b, "\"[redacted]\"");
    else if (value)
        mock__buf_json_str(h->b, value, strlen(value));
    else
        mock__buf_str(h->b, "null");
    return MHD_YES;
}

void mock__log_begin(struct req *r, const char *method, const char *url)
{
    struct mock_server *s = r->srv;
    if (atomic_load_explicit(&s->log_cap, RLX) == 0)
        return;
    struct mock_buf *b = &r->logb;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mock__buf_fmt(b, "\"time\":%.3f,\"method\":", (double)ts.tv_sec + ts.tv_nsec / 1e9);
    mock__buf_json_str(b, method, strlen(method));
    mock__buf_str(b, ",\"path\":");
    mock__buf_json_str(b, url, strlen(url));
    mock__buf_fmt(b, ",\"route\":\"%s\",\"headers\":{", mock__route_names[r->route]);
    struct hdr_ctx h = {b, 1};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header, &h);
    mock__buf_str(b, "},\"body\":");
    /* A JSON body is embedded as JSON (tests read its fields); anything else as a string. */
    cJSON *j = r->body.len ? cJSON_ParseWithLength(r->body.p, r->body.len) : NULL;
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    if (p)
        mock__buf_str(b, p);
    else if (r->body.len)
        mock__buf_json_str(b, r->body.p, r->body.len);
    else
        mock__buf_str(b, "null");
    cJSON_free(p);
    cJSON_Delete(j);
    mock__buf_fmt(b, ",\"body_too_large\":%s", r->too_big ? "true" : "false");
}

void mock__log_end(struct req *r, unsigned status, uint64_t now)
{
    struct mock_server *s = r->srv;
    struct mock_log *l = &s->log;
    struct mock_buf *b = &r->logb;
    if (!b->p)
        return;
    mock__buf_str(b, ",\"model\":");
    if (r->model)
        mock__buf_json_str(b, r->model, strlen(r->model));
    else
        mock__buf_str(b, "null");
    mock__buf_fmt(b, ",\"status\":%u,\"fault\":", status);
    if (r->fault > 0 && r->fault < MOCK_FAULT_COUNT)
        mock__buf_fmt(b, "\"%s\"", mock__fault_names[r->fault]);
    else
        mock__buf_str(b, "null");
    mock__buf_fmt(b, ",\"stream\":%s,\"duration_ms\":%.3f}", r->stream ? "true" : "false",
                  (double)(now - r->t_arrive) / 1e6);
    if (b->oom) {
        mock__buf_free(b);
        return;
    }
    size_t cap = atomic_load_explicit(&s->log_cap, RLX);
    pthread_mutex_lock(&l->mu);
    uint64_t id = ++l->seq;
    char head[48];
    int hn = snprintf(head, sizeof head, "{\"id\":%llu,", (unsigned long long)id);
    char *e = malloc((size_t)hn + b->len + 1);
    if (e) {
        memcpy(e, head, (size_t)hn);
        memcpy(e + hn, b->p, b->len);
        e[(size_t)hn + b->len] = 0;
        while (l->n && l->n >= cap) { /* drop the oldest (cap may have shrunk) */
            free(l->ring[l->head]);
            l->ring[l->head] = NULL;
            l->head = (l->head + 1) % MOCK_LOG_MAX;
            l->n--;
            l->dropped++;
        }
        if (cap) {
            l->ring[(l->head + l->n) % MOCK_LOG_MAX] = e;
            l->n++;
        } else {
            free(e);
        }
    }
    pthread_mutex_unlock(&l->mu);
    mock__buf_free(b);
}

char *mock__log_json(struct mock_log *l, size_t limit)
{
    struct mock_buf b = {0};
    pthread_mutex_lock(&l->mu);
    size_t n = l->n < limit ? l->n : limit;
    mock__buf_fmt(&b, "{\"count\":%zu,\"total\":%zu,\"dropped\":%llu,\"requests\":[", n, l->n,
                  (unsigned long long)l->dropped);
    for (size_t i = 0; i < n; i++) { /* newest first */
        size_t k = (l->head + l->n - 1 - i) % MOCK_LOG_MAX;
        mock__buf_str(&b, i ? "," : "");
        mock__buf_str(&b, l->ring[k]);
    }
    pthread_mutex_unlock(&l->mu);
    mock__buf_str(&b, "]}");
    return mock__buf_take(&b);
}
