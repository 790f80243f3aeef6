/*
 * record.c - record mode: each API request is proxied to a real API (libcurl) with the
 * client's own key passed through in its header, and the exchange is stored in the record
 * directory as a fixture file (one rule matching route, model and the whole request body;
 * its reply the upstream's status, content type and body, or a stream's SSE frames with the
 * gaps between them), with secrets redacted: credential headers read "[redacted]", and the
 * client's key and any key-looking string (sk-..., Bearer ...) are replaced wherever they
 * appear. The key itself lives only in memory, for the transfer; the client gets the upstream's
 * answer unredacted. `--replay DIR` serves the files (fixtures.c loads them, replay.c sends
 * them), redacted as they are.
 *
 * DESIGN
 * - Threads: libmicrohttpd's epoll workers must never block on an upstream, so a request to
 *   proxy is suspended (MHD_suspend_connection) and queued to REC_WORKERS proxy threads of
 *   our own, each running one blocking curl_easy_perform at a time. A worker stores the answer
 *   on the request (r->fx_own), sets its state to ST_DELAY and resumes the connection; MHD
 *   then calls the handler again, which sends the answer (replay.c) at once. So at most
 *   REC_WORKERS transfers run together; later requests wait in the FIFO queue.
 * - The client gets its answer once the upstream's is complete (a stream is buffered, then
 *   sent frame by frame without the recorded gaps): recording measures the upstream, it does
 *   not pass its pacing on.
 * - Queue: jobs in a FIFO guarded by mu, workers wait on cv. A request is suspended before it
 *   is queued, so the worker's resume can never come before the suspend.
 * - Shutdown: mock__rec_stop sets `stopping` (no new jobs: a late request is answered 503) and
 *   `abort` (curl's progress callback ends running transfers), wakes the workers, which finish
 *   every queued job with an error answer and resume it, and joins them; the server's stop
 *   then closes those connections as it does for its own suspended ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fixtures.h"

#define REC_WORKERS 4

struct rec_job {
    struct rec_job *next;
    struct req *r;
    char url[1024];
    struct curl_slist *hdrs;     /* forwarded to the upstream (holds the key) */
    cJSON *rec_headers;          /* the request headers as written to disk (redacted) */
    char *body;
    size_t body_len;
    char key[512];               /* the client's key: only to redact it */
    int route;
};

struct mock_rec {
    struct mock_server *srv;
    char dir[1024], upstream[512];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rec_job *head, *tail; /* guarded by mu */
    int stopping;                /* guarded by mu */
    int joined;                  /* guarded by mu */
    _Atomic int abort;
    pthread_t th[REC_WORKERS];
    unsigned nth;
    unsigned seq;                /* guarded by mu: the next file number */
};

static const char *route_path(int route)
{
    switch (route) {
    case MOCK_ROUTE_MESSAGES:
        return "/v1/messages";
    case MOCK_ROUTE_EMBEDDINGS:
        return "/v1/embeddings";
    case MOCK_ROUTE_COMPLETIONS:
        return "/v1/completions";
    case MOCK_ROUTE_RESPONSES:
        return "/v1/responses";
    default:
        return "/v1/chat/completions";
    }
}

static int secret_header(const char *name)
{
    static const char *const words[] = {"key", "token", "auth", "secret", "password", "cookie"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
        for (const char *q = name; *q; q++)
            if (!strncasecmp(q, words[w], strlen(words[w])))
                return 1;
    return 0;
}

/* Hop-by-hop and framing headers curl sets itself; Accept-Encoding so the upstream answers in
 * plain text we can record. */
static int dropped_header(const char *name)
{
    static const char *const names[] = {"host", "content-length", "connection", "keep-alive",
                                        "transfer-encoding", "expect", "accept-encoding", "te",
                                        "upgrade", "proxy-connection"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i]))
            return 1;
    return 0;
}

static enum MHD_Result take_header(void *cls, enum MHD_ValueKind kind, const char *k,
                                   const char *v)
{
    struct rec_job *j = cls;
    (void)kind;
    if (!k || !v || dropped_header(k))
        return MHD_YES;
    char line[2048];
    snprintf(line, sizeof line, "%s: %s", k, v);
    struct curl_slist *n = curl_slist_append(j->hdrs, line);
    if (n)
        j->hdrs = n;
    if (!strcasecmp(k, "authorization") && !strncasecmp(v, "Bearer ", 7))
        snprintf(j->key, sizeof j->key, "%s", v + 7);
    else if (!strcasecmp(k, "x-api-key"))
        snprintf(j->key, sizeof j->key, "%s", v);
    cJSON_AddStringToObject(j->rec_headers, k, secret_header(k) ? "[redacted]" : v);
    return MHD_YES;
}

static void job_free(struct rec_job *j)
{
    curl_slist_free_all(j->hdrs);
    cJSON_Delete(j->rec_headers);
    free(j->body);
    memset(j->key, 0, sizeof j->key);
    free(j);
}

/* ---- one transfer ---- */

struct capture {
    struct mock_rec *rc;
    uint64_t t0, t_first, t_last;
    int sse;                     /* Content-Type: text/event-stream */
    struct mock_buf body;        /* non-streaming body */
    struct mock_buf pend;        /* SSE bytes not yet a whole frame */
    struct mock_fx_frame *frames;
    size_t nframes, cap;
    int oom;
};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct capture *c = ud;
    size_t len = size * n;
    if (len > 13 && !strncasecmp(p, "content-type:", 13)) {
        const char *v = p + 13;
        c->sse = strstr(v, "text/event-stream") != NULL;
    }
    return len;
}

static void push_frame(struct capture *c, const char *p, size_t n, uint64_t now)
{
    if (c->nframes == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 64;
        struct mock_fx_frame *nf = realloc(c->frames, nc * sizeof *nf);
        if (!nf) {
            c->oom = 1;
            return;
        }
        c->frames = nf;
        c->cap = nc;
    }
    struct mock_fx_frame *f = &c->frames[c->nframes];
    f->data = malloc(n + 1);
    if (!f->data) {
        c->oom = 1;
        return;
    }
    memcpy(f->data, p, n);
    f->data[n] = 0;
    f->len = n;
    f->delay_ms = c->nframes ? (double)(now - c->t_last) / 1e6 : 0;
    if (!c->nframes)
        c->t_first = now;
    c->t_last = now;
    c->nframes++;
}

/* The end of the first whole SSE frame in p[0..n) (after its blank line), or 0. */
static size_t frame_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\n' && p[i + 1] == '\n')
            return i + 2;
        if (i + 3 < n && p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return i + 4;
    }
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct capture *c = ud;
    size_t len = size * n;
    uint64_t now = mock__now_ns();
    if (!c->t_first && !c->sse)
        c->t_first = now;
    if (!c->sse) {
        mock__buf_add(&c->body, p, len);
        return c->body.oom ? 0 : len;
    }
    mock__buf_add(&c->pend, p, len);
    size_t e;
    while (!c->pend.oom && (e = frame_end(c->pend.p, c->pend.len)) > 0) {
        push_frame(c, c->pend.p, e, now);
        memmove(c->pend.p, c->pend.p + e, c->pend.len - e);
        c->pend.len -= e;
    }
    return c->pend.oom || c->oom ? 0 : len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    struct capture *c = ud;
    (void)a, (void)b, (void)c2, (void)d;
    return atomic_load(&c->rc->abort) ? 1 : 0;
}

static struct mock_fx_reply *error_reply(int api, unsigned status, const char *msg)
{
    struct mock_fx_reply *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->fault = -1;
    p->retry_after_ms = -1;
    p->err_status = status;
    p->err_type = strdup(api == MOCK_API_ANTHROPIC ? "api_error" : "server_error");
    p->err_message = strdup(msg);
    if (!p->err_type || !p->err_message) {
        mock__fx_reply_clear(p);
        free(p);
        return NULL;
    }
    return p;
}

/* obj[name] = p[0..n) with secrets redacted (what goes to disk; the client got p itself). */
static void add_redacted(cJSON *obj, const char *name, const char *p, size_t n, const char *key)
{
    size_t rl;
    char *red = mock__fx_redact(p ? p : "", p ? n : 0, key, &rl);
    if (red)
        cJSON_AddStringToObject(obj, name, red);
    free(red);
}

/* The exchange as a fixture file's JSON (redacted), or NULL when out of memory. */
static char *fixture_json(struct mock_rec *rc, struct rec_job *j, const struct req *r,
                          const struct mock_fx_raw *raw, double total_ms, unsigned n)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "recorded");
    char stamp[32], name[96];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(meta, "upstream", rc->upstream);
    cJSON_AddStringToObject(meta, "time", stamp);
    cJSON_AddNumberToObject(meta, "duration_ms", total_ms);
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "rules"), rule);
    snprintf(name, sizeof name, "%06u-%s-%.40s", n, mock__route_names[j->route],
             r->model ? r->model : "");
    cJSON_AddStringToObject(rule, "name", name);
    cJSON *m = cJSON_AddObjectToObject(rule, "match");
    cJSON_AddStringToObject(m, "route", mock__route_names[j->route]);
    if (r->model)
        cJSON_AddStringToObject(m, "model", r->model);
    cJSON *body = cJSON_ParseWithLength(j->body, j->body_len);
    mock__fx_redact_json(body, j->key);
    if (body)
        cJSON_AddItemToObject(m, "body", body);
    cJSON *rq = cJSON_AddObjectToObject(rule, "request");
    cJSON_AddStringToObject(rq, "path", route_path(j->route));
    cJSON_AddItemToObject(rq, "headers", j->rec_headers);
    j->rec_headers = NULL;
    cJSON *rec = cJSON_AddObjectToObject(cJSON_AddObjectToObject(rule, "reply"), "recorded");
    cJSON_AddNumberToObject(rec, "status", raw->status);
    cJSON_AddStringToObject(rec, "content_type", raw->content_type);
    cJSON_AddNumberToObject(rec, "latency_ms", raw->latency_ms);
    if (raw->frames) {
        cJSON *fa = cJSON_AddArrayToObject(rec, "frames");
        for (size_t i = 0; fa && i < raw->nframes; i++) {
            cJSON *fo = cJSON_CreateObject();
            cJSON_AddItemToArray(fa, fo);
            cJSON_AddNumberToObject(fo, "delay_ms", raw->frames[i].delay_ms);
            add_redacted(fo, "data", raw->frames[i].data, raw->frames[i].len, j->key);
        }
    } else {
        add_redacted(rec, "body", raw->body, raw->body_len, j->key);
    }
    char *p = cJSON_Print(root);
    cJSON_Delete(root);
    char *out = p ? strdup(p) : NULL;
    cJSON_free(p);
    return out;
}

/* Writes text as DIR/NNNNNN-ROUTE.json, never over an existing file (tmp + link). */
static void write_file(struct mock_rec *rc, struct rec_job *j, const struct req *r,
                       const struct mock_fx_raw *raw, double total_ms)
{
    pthread_mutex_lock(&rc->mu);
    unsigned n = rc->seq++;
    pthread_mutex_unlock(&rc->mu);
    char tmp[1200], final[1200];
    snprintf(tmp, sizeof tmp, "%s/.rec-%ld-%u.tmp", rc->dir, (long)getpid(), n);
    char *text = fixture_json(rc, j, r, raw, total_ms, n);
    if (!text)
        return;
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0;
    ok = (f && fclose(f) == 0) && ok;
    free(text);
    for (unsigned k = 0; ok && k < 1000000; k++, n++) {
        snprintf(final, sizeof final, "%s/%06u-%s.json", rc->dir, n, mock__route_names[j->route]);
        if (link(tmp, final) == 0 || errno != EEXIST)
            break;
    }
    unlink(tmp);
}

static void run_job(struct mock_rec *rc, struct rec_job *j)
{
    struct req *r = j->r;
    struct capture c = {0};
    c.rc = rc;
    c.t0 = mock__now_ns();
    struct mock_fx_reply *p = NULL;
    CURL *e = atomic_load(&rc->abort) ? NULL : curl_easy_init();
    CURLcode cc = CURLE_FAILED_INIT;
    long status = 0;
    if (e) {
        curl_easy_setopt(e, CURLOPT_URL, j->url);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, &c);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &c);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, &c);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 600000L);
        cc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    }
    uint64_t t_end = mock__now_ns();
    if (cc != CURLE_OK || status < 100 || c.oom) {
        char m[1400];
        snprintf(m, sizeof m, "record: upstream %s: %s", j->url,
                 atomic_load(&rc->abort) ? "the server is stopping"
                 : c.oom                 ? "out of memory"
                                         : curl_easy_strerror(cc));
        p = error_reply(r->api, 502, m);
    } else if ((p = calloc(1, sizeof *p)) && (p->raw = calloc(1, sizeof *p->raw))) {
        struct mock_fx_raw *raw = p->raw;
        p->fault = -1;
        raw->status = (unsigned)status;
        char *ct = NULL;
        curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(raw->content_type, sizeof raw->content_type, "%s",
                 ct ? ct : "application/json");
        if (c.sse) {
            if (c.pend.len) /* a last frame without its blank line */
                push_frame(&c, c.pend.p, c.pend.len, t_end);
            raw->frames = c.frames ? c.frames : calloc(1, sizeof *raw->frames);
            raw->nframes = c.nframes;
            c.frames = NULL;
            c.nframes = 0;
            raw->latency_ms = c.t_first ? (double)(c.t_first - c.t0) / 1e6 : 0;
        } else {
            mock__buf_add(&c.body, "", 0);
            raw->body_len = c.body.len;
            raw->body = c.body.oom ? NULL : c.body.p;
            c.body.p = NULL;
            raw->latency_ms = (double)(t_end - c.t0) / 1e6;
        }
        if ((c.sse && !raw->frames) || (!c.sse && !raw->body)) {
            mock__fx_reply_clear(p);
            free(p);
            p = error_reply(r->api, 500, "record: out of memory");
        } else {
            write_file(rc, j, r, raw, (double)(t_end - c.t0) / 1e6);
        }
    } else if (p) {
        free(p);
        p = error_reply(r->api, 500, "record: out of memory");
    }
    if (e)
        curl_easy_cleanup(e);
    for (size_t i = 0; i < c.nframes; i++)
        free(c.frames[i].data);
    free(c.frames);
    mock__buf_free(&c.body);
    mock__buf_free(&c.pend);
    /* Hand the answer to the request, then let MHD run its handler again (ST_DELAY ->
       mock__answer -> replay.c). No answer at all (out of memory) closes the connection. */
    r->fx_own = p;
    r->fxr = p;
    r->t_admit = r->t_arrive;
    r->configured_ns = t_end - r->t_arrive;
    r->state = p ? ST_DELAY : ST_CLOSE;
    job_free(j);
    MHD_resume_connection(r->conn);
}

static void *worker(void *arg)
{
    struct mock_rec *rc = arg;
    mock__server_thread = 1;
    for (;;) {
        pthread_mutex_lock(&rc->mu);
        while (!rc->head && !rc->stopping)
            pthread_cond_wait(&rc->cv, &rc->mu);
        struct rec_job *j = rc->head;
        if (j) {
            rc->head = j->next;
            if (!rc->head)
                rc->tail = NULL;
        }
        pthread_mutex_unlock(&rc->mu);
        if (!j)
            return NULL;
        run_job(rc, j);
    }
}

enum MHD_Result mock__rec_begin(struct mock_rec *rc, struct req *r)
{
    struct rec_job *j = calloc(1, sizeof *j);
    if (j)
        j->rec_headers = cJSON_CreateObject();
    if (!j || !j->rec_headers) {
        free(j);
        return mock__send_error(r, 500, r->api == MOCK_API_OPENAI ? "server_error" : "api_error",
                                "mock server out of memory", NULL, NULL, -1);
    }
    j->r = r;
    j->route = r->route;
    snprintf(j->url, sizeof j->url, "%s%s", rc->upstream, route_path(r->route));
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, take_header, j);
    j->body = mock__buf_take(&r->body);
    j->body_len = j->body ? strlen(j->body) : 0;
    r->state = ST_DELAY;
    MHD_suspend_connection(r->conn);
    pthread_mutex_lock(&rc->mu);
    int stopping = rc->stopping;
    if (!stopping) {
        if (rc->tail)
            rc->tail->next = j;
        else
            rc->head = j;
        rc->tail = j;
        pthread_cond_signal(&rc->cv);
    }
    pthread_mutex_unlock(&rc->mu);
    if (stopping) {
        job_free(j);
        r->state = ST_CLOSE;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

int mock__rec_new(struct mock_server *s, const char *dir, const char *upstream,
                  struct mock_rec **out, char *err, size_t errlen)
{
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return mock__err(err, errlen, "record: %s is not a directory", dir);
    if (access(dir, W_OK) != 0)
        return mock__err(err, errlen, "record: %s is not writable: %s", dir, strerror(errno));
    if (strncmp(upstream, "http://", 7) && strncmp(upstream, "https://", 8))
        return mock__err(err, errlen, "upstream: '%s' is not an http:// or https:// URL",
                         upstream);
    if (strlen(dir) >= 900 || strlen(upstream) >= 500)
        return mock__err(err, errlen, "record: directory or upstream URL too long");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return mock__err(err, errlen, "record: libcurl cannot start");
    struct mock_rec *rc = calloc(1, sizeof *rc);
    if (!rc) {
        curl_global_cleanup();
        return mock__err(err, errlen, "out of memory");
    }
    rc->srv = s;
    rc->seq = 1;
    snprintf(rc->dir, sizeof rc->dir, "%s", dir);
    snprintf(rc->upstream, sizeof rc->upstream, "%s", upstream);
    size_t ul = strlen(rc->upstream);
    while (ul && rc->upstream[ul - 1] == '/')
        rc->upstream[--ul] = 0;
    if (ul >= 3 && !strcmp(rc->upstream + ul - 3, "/v1")) /* a base URL: the path has /v1 */
        rc->upstream[ul - 3] = 0;
    pthread_mutex_init(&rc->mu, NULL);
    pthread_cond_init(&rc->cv, NULL);
    for (; rc->nth < REC_WORKERS; rc->nth++)
        if (pthread_create(&rc->th[rc->nth], NULL, worker, rc) != 0)
            break;
    *out = rc;
    if (!rc->nth) {
        mock__rec_free(rc);
        *out = NULL;
        return mock__err(err, errlen, "record: cannot start the proxy threads");
    }
    return 0;
}

void mock__rec_stop(struct mock_rec *rc)
{
    pthread_mutex_lock(&rc->mu);
    int joined = rc->joined;
    rc->stopping = 1;
    rc->joined = 1;
    atomic_store(&rc->abort, 1);
    pthread_cond_broadcast(&rc->cv);
    pthread_mutex_unlock(&rc->mu);
    if (joined)
        return;
    for (unsigned i = 0; i < rc->nth; i++)
        pthread_join(rc->th[i], NULL);
}

void mock__rec_free(struct mock_rec *rc)
{
    if (!rc)
        return;
    mock__rec_stop(rc);
    pthread_cond_destroy(&rc->cv);
    pthread_mutex_destroy(&rc->mu);
    free(rc);
    curl_global_cleanup();
}
