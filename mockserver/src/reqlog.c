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
 * while holding the server's mutex. The body is kept as received and parsed only when the log
 * is read (then kept rendered), so logging costs the request path a copy, not a JSON parse and
 * print (about a fifth of the server's CPU per request under load).
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
    for (size_t i = 0; i < n; i++) {
        /* Every word starts with a lower-case letter: test that byte before calling out. */
        int c = name[i] | 0x20;
        for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
            size_t k = strlen(words[w]);
            if (c == words[w][0] && i + k <= n && !strncasecmp(name + i, words[w], k))
                return 1;
        }
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
    /* Integer formatting: %.3f of a double costs thousands of instructions a request. */
    unsigned long long ms = (unsigned long long)ts.tv_sec * 1000 +
                            ((unsigned long long)ts.tv_nsec + 500000) / 1000000;
    mock__buf_fmt(b, "\"time\":%llu.%03llu,\"method\":", ms / 1000, ms % 1000);
    mock__buf_json_str(b, method, strlen(method));
    mock__buf_str(b, ",\"path\":");
    mock__buf_json_str(b, url, strlen(url));
    mock__buf_fmt(b, ",\"route\":\"%s\",\"headers\":{", mock__route_names[r->route]);
    struct hdr_ctx h = {b, 1};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, add_header, &h);
    mock__buf_str(b, "},\"body\":");
    r->logb_body = b->len; /* the raw body, rendered by render_body when the log is read */
    r->logb_body_len = r->body.len;
    if (r->body.len)
        mock__buf_add(b, r->body.p, r->body.len);
    else
        mock__buf_str(b, "null");
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
    unsigned long long us = (now - r->t_arrive + 500) / 1000;
    mock__buf_fmt(b, ",\"stream\":%s,\"duration_ms\":%llu.%03llu}", r->stream ? "true" : "false",
                  us / 1000, us % 1000);
    if (b->oom) {
        mock__buf_free(b);
        return;
    }
    size_t cap = atomic_load_explicit(&s->log_cap, RLX);
    pthread_mutex_lock(&l->mu);
    uint64_t id = ++l->seq;
    char head[48];
    int hn = snprintf(head, sizeof head, "{\"id\":%llu,", (unsigned long long)id);
    struct mock_log_ent *e = malloc(sizeof *e + (size_t)hn + b->len + 1);
    if (e) {
        e->len = (size_t)hn + b->len;
        e->body_off = (size_t)hn + r->logb_body;
        e->body_len = r->logb_body_len;
        e->body_raw = e->body_len > 0;
        memcpy(e->text, head, (size_t)hn);
        memcpy(e->text + hn, b->p, b->len);
        e->text[e->len] = 0;
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

/* Appends a request body as the log shows it: a JSON body embedded as JSON (tests read its
 * fields), anything else as a string. */
static void render_body(struct mock_buf *b, const char *p, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(p, n);
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    if (t)
        mock__buf_str(b, t);
    else
        mock__buf_json_str(b, p, n);
    cJSON_free(t);
    cJSON_Delete(j);
}

/* e with its raw body rendered, as a fresh entry; NULL when out of memory. */
static struct mock_log_ent *render_entry(const struct mock_log_ent *e)
{
    struct mock_buf nb = {0};
    render_body(&nb, e->text + e->body_off, e->body_len);
    size_t tail = e->len - e->body_off - e->body_len;
    struct mock_log_ent *d = nb.oom ? NULL : malloc(sizeof *d + e->body_off + nb.len + tail + 1);
    if (d) {
        d->len = e->body_off + nb.len + tail;
        d->body_off = e->body_off;
        d->body_len = nb.len;
        d->body_raw = 0;
        memcpy(d->text, e->text, e->body_off);
        memcpy(d->text + e->body_off, nb.p, nb.len);
        memcpy(d->text + e->body_off + nb.len, e->text + e->body_off + e->body_len, tail);
        d->text[d->len] = 0;
    }
    mock__buf_free(&nb);
    return d;
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
        struct mock_log_ent *e = l->ring[k];
        if (e->body_raw) {
            struct mock_log_ent *done = render_entry(e);
            if (done) { /* keep it rendered: the next read costs a copy */
                free(e);
                l->ring[k] = e = done;
            }
        }
        if (e->body_raw) { /* out of memory: render into the reply only */
            mock__buf_add(&b, e->text, e->body_off);
            render_body(&b, e->text + e->body_off, e->body_len);
            mock__buf_str(&b, e->text + e->body_off + e->body_len);
        } else {
            mock__buf_add(&b, e->text, e->len);
        }
    }
    pthread_mutex_unlock(&l->mu);
    mock__buf_str(&b, "]}");
    return mock__buf_take(&b);
}
