/*
 * server.c - the mock LLM server on libmicrohttpd: start and stop, the access handler that
 * collects a request's body and routes it, the completion callback that frees it and hands its
 * running slot on, and the small public calls (configure, stats, counts). What happens to each
 * request is in the files named for it: reply helpers (reply.c), delays and streams
 * (stream.c), body parsing (request.c), admission and faults (admission.c), the models and admin
 * routes (admin.c), the fault-script parser (script.c); they share server_internal.h. Reply text
 * comes from content.c, wire encoding from proto.c, settings from settings.c, statistics from
 * stats.c. *
 * DESIGN
 * - Threads: libmicrohttpd runs `threads` epoll workers (MHD_USE_EPOLL_INTERNAL_THREAD with a
 *   thread pool); every callback below runs on one of them. One timer thread (timer.c) resumes
 *   suspended connections; a busy worker resumes its own due connections itself at the start
 *   of its callbacks (mock__timer_run_due), so under load a reply falls due without waking the
 *   timer thread or the worker. No thread ever sleeps for a request.
 * - A delayed request: the access handler computes its deadline, calls MHD_suspend_connection
 *   and only then gives the timer the deadline (so the resume can never come before the
 *   suspend); the timer calls MHD_resume_connection, MHD calls the handler again, which answers.
 *   A stream's content reader does the same between tokens: when the next frame is not due it
 *   suspends, arms the timer and returns 0.
 * - max_running: srv->running counts API requests holding a slot (always counted, it also feeds
 *   load_factor); past max_running a request suspends and waits in a FIFO (srv->q_head). The
 *   completion callback of a slot holder hands its slot to the queue's head and resumes it.
 *   MHD functions are never called while holding srv->mu (MHD's own locks are taken inside
 *   them and around the completion callback, which takes srv->mu).
 * - Shutdown: mock_server_stop sets `stopping` under mu, resumes every queued request, flushes
 *   and joins the timer (resuming every suspended connection), then MHD_stop_daemon. A resumed
 *   request that sees `stopping` closes its connection (handler returns MHD_NO, readers return
 *   END_WITH_ERROR); a request that suspends after the flush finds the timer closed (or
 *   `stopping` set under mu) and resumes itself. MHD then runs the completion callback of every
 *   connection, which frees each request: nothing leaks and no connection stays suspended.
 * - Determinism: a request's latency, fault draw and reply text are functions of the seed and
 *   the FNV-1a hash of its body (plus, for faults, how often that body was seen), never of a
 *   shared random generator.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "server_internal.h"

_Thread_local int mock__server_thread;

int mock_thread_is_server(void) { return mock__server_thread; }

static int route_of(const char *url)
{
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions"))
        return MOCK_ROUTE_CHAT;
    if (!strcmp(url, "/v1/messages") || !strncmp(url, "/v1/messages/", 13))
        return MOCK_ROUTE_MESSAGES;
    if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11))
        return MOCK_ROUTE_MODELS;
    if (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/embeddings"))
        return MOCK_ROUTE_EMBEDDINGS;
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions"))
        return MOCK_ROUTE_COMPLETIONS;
    if (!strcmp(url, "/v1/responses") || !strcmp(url, "/responses"))
        return MOCK_ROUTE_RESPONSES;
    if (!strcmp(url, "/health") || !strcmp(url, "/healthz"))
        return MOCK_ROUTE_HEALTH;
    if (!strcmp(url, "/metrics"))
        return MOCK_ROUTE_METRICS;
    if (!strcmp(url, "/stats"))
        return MOCK_ROUTE_STATS;
    if (!strncmp(url, "/admin/", 7))
        return MOCK_ROUTE_ADMIN;
    return MOCK_ROUTE_OTHER;
}

static enum MHD_Result method_not_allowed(struct req *r, const char *method, const char *url)
{
    char m[200];
    snprintf(m, sizeof m, "Method %s is not allowed for %.120s", method, url);
    return mock__send_error(r, 405, "invalid_request_error", m, NULL, "method_not_allowed", -1);
}

static enum MHD_Result dispatch(struct req *r, const char *url, const char *method)
{
    struct mock_server *s = r->srv;
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int post = !strcmp(method, "POST");
    switch (r->route) {
    case MOCK_ROUTE_CHAT:
    case MOCK_ROUTE_EMBEDDINGS:
    case MOCK_ROUTE_COMPLETIONS:
    case MOCK_ROUTE_RESPONSES:
        return post ? mock__api_request(r) : method_not_allowed(r, method, url);
    case MOCK_ROUTE_MESSAGES:
        if (!strcmp(url, "/v1/messages/count_tokens"))
            return post ? mock__count_tokens(r) : method_not_allowed(r, method, url);
        if (strcmp(url, "/v1/messages"))
            break;
        return post ? mock__api_request(r) : method_not_allowed(r, method, url);
    case MOCK_ROUTE_MODELS:
        if (!get)
            return method_not_allowed(r, method, url);
        {
            struct mock_timing t;
            char key[sizeof s->set.required_key];
            pthread_mutex_lock(&s->mu);
            snprintf(key, sizeof key, "%s", s->set.required_key);
            int has = (s->set.route[MOCK_ROUTE_MODELS].set & 2) != 0; /* models.latency set */
            double scale = s->set.time_scale;
            mock__settings_timing(&s->set, MOCK_ROUTE_MODELS, &t);
            pthread_mutex_unlock(&s->mu);
            const char *k = mock__auth_key(r);
            if (key[0] && (!k || strcmp(k, key)))
                return mock__send_error(r, 401, "invalid_request_error", "Incorrect API key provided.",
                                  NULL, "invalid_api_key", -1);
            if (has && r->state != ST_DELAY) {
                double ms = mock__sample_ms(&t, t.latency_ms, 600000, mock__fnv1a64(url, strlen(url)));
                uint64_t ns = (uint64_t)(ms * scale * 1e6);
                if (ns > 20000)
                    return mock__suspend_until(r, mock__now_ns() + ns, ST_DELAY);
            }
        }
        return mock__models_reply(r, url);
    case MOCK_ROUTE_HEALTH:
        return get ? mock__send_static(r, 200, "application/json", "{\"status\":\"ok\"}")
                   : method_not_allowed(r, method, url);
    case MOCK_ROUTE_METRICS:
        if (!get)
            return method_not_allowed(r, method, url);
        {
            char *p = mock__stats_prometheus(&s->stats, atomic_load(&s->running_pub),
                                             atomic_load(&s->queued_pub));
            return mock__send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", p,
                             p ? strlen(p) : 0);
        }
    case MOCK_ROUTE_STATS:
        return get ? mock__send_json_str(r, 200, mock_server_stats_json(s))
                   : method_not_allowed(r, method, url);
    case MOCK_ROUTE_ADMIN:
        return mock__admin_request(r, url, method);
    default:
        break;
    }
    char m[200];
    snprintf(m, sizeof m, "Invalid URL (%s %.120s)", method, url);
    if (r->api == MOCK_API_ANTHROPIC)
        return mock__send_error(r, 404, "not_found_error", m, NULL, NULL, -1);
    return mock__send_error(r, 404, "invalid_request_error", m, NULL, NULL, -1);
}

/* The routes the request log records: what a client under test calls, not the test's own
 * polling of /health, /metrics, /stats and /admin/. */
static int logged(int route)
{
    return route != MOCK_ROUTE_HEALTH && route != MOCK_ROUTE_METRICS &&
           route != MOCK_ROUTE_STATS && route != MOCK_ROUTE_ADMIN;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    mock__server_thread = 1;
    struct mock_server *s = cls;
    struct req *r = *con_cls;
    (void)version;
    mock__timer_run_due(s->timer); /* this worker's due resumes, without waking anyone */
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = c;
        r->t_arrive = mock__now_ns();
        r->route = route_of(url);
        r->api = !strncmp(url, "/v1/messages", 12) ? MOCK_API_ANTHROPIC : MOCK_API_OPENAI;
        *con_cls = r;
        mock__stats_in_flight_inc(&s->stats);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        /* Answer on the next call even without a body: a response queued on the first call
           counts as an early reply and MHD 0.9.75 then closes the keep-alive connection. */
        if (cl && strtoull(cl, NULL, 10) > atomic_load(&s->max_body)) {
            r->too_big = 1;
            mock__watch_phase(c, WATCH_BUSY);
            if (logged(r->route))
                mock__log_begin(r, method, url);
            if (mock__route_is_api(r->route))
                return dispatch(r, url, method);
            return mock__send_error(r, 413, "invalid_request_error", "Request body too large", NULL,
                              NULL, -1);
        }
        r->state = ST_BODY;
        mock__watch_phase(c, WATCH_BODY);
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->state == ST_BODY && !r->too_big) {
            if (r->body.len + *upload_size > atomic_load(&s->max_body)) {
                r->too_big = 1;
                mock__buf_free(&r->body);
            } else {
                mock__buf_add(&r->body, upload_data, *upload_size);
                if (r->body.oom)
                    return MHD_NO;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    switch (r->state) {
    case ST_NEW:
    case ST_BODY:
        mock__watch_phase(c, WATCH_BUSY);
        if (logged(r->route))
            mock__log_begin(r, method, url);
        return dispatch(r, url, method);
    case ST_WAIT_SLOT:
        if (atomic_load(&s->stopping) || !r->has_slot)
            return MHD_NO;
        return mock__start_delay(r);
    case ST_DELAY:
        if (atomic_load(&s->stopping))
            return MHD_NO;
        if (r->route == MOCK_ROUTE_MODELS)
            return mock__models_reply(r, url);
        return mock__answer(r);
    case ST_CLOSE:
        mock__set_linger0(r);
        return MHD_NO;
    default:
        return MHD_YES;
    }
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    mock__server_thread = 1;
    struct mock_server *s = cls;
    struct req *r = *con_cls;
    mock__timer_run_due(s->timer);
    mock__watch_phase(c, WATCH_HEADERS); /* keep-alive: the next request's headers */
    if (!r)
        return;
    *con_cls = NULL;
    uint64_t now = mock__now_ns();
    unsigned status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0;
    mock__stats_status(&s->stats, r->route, status);
    if (r->is_api && r->status == 200 && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        mock__hist_add_ns(&s->stats.h[MOCK_H_E2E], now - r->t_arrive);
        if (r->reply.id[0]) /* a reply was generated (not count_tokens) */
            mock__stats_tokens(&s->stats, r->route, r->model ? r->model : r->set.model,
                               r->prompt_tokens, r->reply.ntok);
    }
    if (r->has_slot) {
        struct req *next = NULL;
        pthread_mutex_lock(&s->mu);
        s->running--;
        if (s->q_head && !s->stopping_mu) {
            next = s->q_head;
            s->q_head = next->qnext;
            if (!s->q_head)
                s->q_tail = NULL;
            s->queued--;
            s->running++;
            next->has_slot = 1;
            next->running_at_admit = s->running;
        }
        mock__publish_counts(s);
        pthread_mutex_unlock(&s->mu);
        if (next)
            MHD_resume_connection(next->conn);
    }
    mock__log_end(r, status, now);
    mock__fx_req_done(r);
    atomic_fetch_sub_explicit(&s->stats.in_flight, 1, RLX);
    mock__buf_free(&r->logb);
    mock__buf_free(&r->body);
    mock__buf_free(&r->fb);
    mock_content_free(&r->content);
    free(r->starts);
    free(r->pbody);
    free(r->model);
    free(r->system);
    free(r->prompt);
    free(r->instructions);
    mock__turn_free(&r->turn);
    free(r);
}

/* ------------------------------------------------------------------------------------------ */
/* public API                                                                                  */

void mock_options_init(struct mock_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->threads = 2;
    o->connection_limit = 20000;
    o->connection_timeout_s = 60;
    o->quiet = 1;
    o->time_scale = 1.0;
    o->latency_ms = -1;
}

static uint64_t ms_to_ns(double ms)
{
    return ms > 0 ? (ms < 1e12 ? (uint64_t)(ms * 1e6) : (uint64_t)1e18) : 0;
}

/* The settings the threads read without the lock. Caller holds mu (or owns s, at start). */
static void publish_settings(struct mock_server *s)
{
    atomic_store(&s->max_body, s->set.max_body);
    atomic_store(&s->header_timeout_ns, ms_to_ns(s->set.header_timeout_ms));
    atomic_store(&s->body_timeout_ns, ms_to_ns(s->set.body_timeout_ms));
    atomic_store(&s->log_cap, (size_t)s->set.request_log);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int write_port_file(const char *path, int port, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return mock__err(err, errlen, "port_file: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return mock__err(err, errlen, "port_file: cannot create %s: %s", tmp, strerror(errno));
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mock__err(err, errlen, "port_file: cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int mock_server_start(const struct mock_options *o, struct mock_server **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    struct mock_options def;
    if (!o) {
        mock_options_init(&def);
        o = &def;
    }
    struct mock_server *s = calloc(1, sizeof *s);
    if (!s) {
        mock__err(err, errlen, "out of memory");
        return MOCK_ENOMEM;
    }
    int rc = MOCK_EINVAL;
    pthread_mutex_init(&s->mu, NULL);
    mock__settings_init(&s->set);
    mock__stats_init(&s->stats);
    s->attempts = calloc(ATTEMPT_SLOTS, sizeof *s->attempts);
    if (!s->attempts || mock__log_init(&s->log) < 0) {
        mock__err(err, errlen, "out of memory");
        rc = MOCK_ENOMEM;
        goto fail;
    }
    if (o->config_text && mock__settings_apply_text(&s->set, o->config_text, err, errlen) < 0)
        goto fail;
    if (o->seed)
        s->set.seed = o->seed;
    if (o->time_scale != 1.0) {
        if (!(o->time_scale >= 0)) {
            mock__err(err, errlen, "time_scale: %g is negative", o->time_scale);
            goto fail;
        }
        s->set.time_scale = o->time_scale;
    }
    if (o->latency_ms >= 0)
        s->set.global.latency_ms = o->latency_ms;
    if (o->required_key && *o->required_key)
        snprintf(s->set.required_key, sizeof s->set.required_key, "%s", o->required_key);
    if (o->max_body)
        s->set.max_body = o->max_body;
    publish_settings(s);
    if ((rc = mock__fx_start(s, o, err, errlen)) < 0)
        goto fail;
    rc = MOCK_EINVAL;

    struct sockaddr_in sa;
    struct sockaddr_in6 sa6;
    struct sockaddr *addr = (struct sockaddr *)&sa;
    unsigned ipv6 = 0;
    memset(&sa, 0, sizeof sa);
    memset(&sa6, 0, sizeof sa6);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)(o->port > 0 ? o->port : 0));
    const char *host = o->host && *o->host ? o->host : "127.0.0.1";
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = sa.sin_port;
        if (inet_pton(AF_INET6, host, &sa6.sin6_addr) != 1) {
            mock__err(err, errlen, "host: '%s' is not an IPv4 or IPv6 address", host);
            goto fail;
        }
        addr = (struct sockaddr *)&sa6;
        ipv6 = MHD_USE_IPv6;
    }
    if (o->port < 0 || o->port > 65535) {
        mock__err(err, errlen, "port: %d is out of range", o->port);
        goto fail;
    }
    if (mock__timer_new(&s->timer) < 0) {
        mock__err(err, errlen, "cannot start the timer thread");
        rc = MOCK_ESYSTEM;
        goto fail;
    }
    raise_nofile();
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | ipv6 | (o->quiet ? 0 : MHD_USE_ERROR_LOG);
    unsigned threads = o->threads ? o->threads : 2;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0,
                            MHD_OPTION_CONNECTION_LIMIT,
                            o->connection_limit ? o->connection_limit : 20000,
                            MHD_OPTION_CONNECTION_TIMEOUT,
                            o->connection_timeout_s ? o->connection_timeout_s : 60,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
                            /* Per-connection pool (headers, read and write buffers), which
                               MHD zeroes on reuse, so it is all resident. MHD's default of
                               32 KiB is 320 MB at 10,000 connections; request bodies are handed
                               to us in pieces, so 8 KiB (headers up to ~4 KiB) is enough. */
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)8192,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, mock__watch_notify, s,
                            MHD_OPTION_END);
    if (!s->d) {
        mock__err(err, errlen, "cannot listen on %s:%d (in use or not permitted)", host, o->port);
        rc = MOCK_ELISTEN;
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    snprintf(s->url, sizeof s->url, ipv6 ? "http://[%s]:%d" : "http://%s:%d", host, s->port);
    if (o->port_file) {
        if (write_port_file(o->port_file, s->port, err, errlen) < 0) {
            rc = MOCK_EPORTFILE;
            goto fail;
        }
        s->port_file = strdup(o->port_file);
        if (!s->port_file) {
            unlink(o->port_file);
            mock__err(err, errlen, "out of memory");
            rc = MOCK_ENOMEM;
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    if (s->d) {
        int was_server = mock__server_thread;
        MHD_stop_daemon(s->d);
        mock__server_thread = was_server;
        s->d = NULL;
    }
    if (s->timer) {
        mock__timer_flush_and_close(s->timer);
        mock__timer_free(s->timer);
    }
    mock__fx_free(s);
    free(s->attempts);
    mock__log_free(&s->log);
    mock__stats_destroy(&s->stats);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}

int mock_server_port(const struct mock_server *s)
{
    return s->port;
}

const char *mock_server_url(const struct mock_server *s)
{
    return s->url;
}

int mock_server_configure(struct mock_server *s, const char *text, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    struct mock_settings n = s->set;
    int rc = mock__settings_apply_text(&n, text, err, errlen);
    if (rc == 0) {
        s->set = n;
        publish_settings(s);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}


char *mock_server_stats_json(struct mock_server *s)
{
    return mock__stats_json(&s->stats, atomic_load(&s->running_pub), atomic_load(&s->queued_pub));
}

void mock_server_counts(struct mock_server *s, struct mock_counts *out)
{
    mock__stats_counts(&s->stats, out);
}

void mock_server_reset_stats(struct mock_server *s)
{
    mock__stats_reset(&s->stats);
    for (size_t i = 0; i < ATTEMPT_SLOTS; i++)
        atomic_store_explicit(&s->attempts[i], 0, RLX);
}

void mock_server_stop(struct mock_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping_mu = 1;
    atomic_store(&s->stopping, 1);
    struct req *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->queued = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        struct req *next = q->qnext;
        MHD_resume_connection(q->conn);
        q = next;
    }
    /* The timer's flush and MHD's stop run timer callbacks, closed-connection notifications and
     * completion callbacks on this, the caller's, thread; they mark their thread as the
     * server's, and the caller's thread must not stay marked (the tests' torture allocator
     * counts only non-server threads). */
    int was_server = mock__server_thread;
    mock__fx_stop(s); /* record mode: ends the upstream transfers, resuming their requests */
    mock__timer_flush_and_close(s->timer);
    MHD_stop_daemon(s->d);
    mock__server_thread = was_server;
    mock__timer_free(s->timer); /* only now: until MHD_stop_daemon, workers may still call
                                   mock__timer_add (which fails, the timer being closed) */
    if (s->port_file) /* written by us at start: a stale one would point at a dead port */
        unlink(s->port_file);
    free(s->port_file);
    mock__fx_free(s);
    free(s->script);
    free(s->attempts);
    mock__log_free(&s->log);
    mock__stats_destroy(&s->stats);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
