/*
 * watch.c - the slow-client watchdog: bounds how long a connection may spend sending a
 * request's headers (header_timeout) and its body (body_timeout). libmicrohttpd's own
 * connection timeout only bounds idle time and restarts with every byte, so a client sending
 * one header byte every 200 ms, or a body shorter than its Content-Length, would otherwise
 * hold a connection (and its memory) for ever. It does not answer requests nor time replies.
 *
 * DESIGN
 * - One struct mock_watch per connection, made in MHD's connection-started notification (the
 *   connection's socket context) and shared by that connection and the timer thread (timer.c),
 *   with a reference each. Its mutex guards the phase, when the phase began, and `closed`.
 * - Phases: WATCH_HEADERS from the connection's start, and again from the end of each request
 *   (an idle keep-alive connection waits for headers too, so it is closed after header_timeout,
 *   like Node's keepAliveTimeout); WATCH_BODY from the first access-handler call (headers
 *   complete) until the body is in; WATCH_BUSY while the request is answered (delays, streams
 *   and stall faults are never cut by the watchdog).
 * - One live timer entry per connection fires at the end of the current phase's allowance (or,
 *   while busy, once per allowance) and re-arms itself; a phase past its limit gets
 *   shutdown(SHUT_RDWR) on the socket, which libmicrohttpd sees as the peer closing. A phase
 *   whose allowance ends before the live entry arms an earlier one; the later entry is then
 *   stale (its deadline is no longer `armed`) and only drops its reference when it fires.
 *   Each entry holds a reference; the connection holds one until its closed notification.
 * - The fd is shut down only under the watch's mutex with `closed` unset: MHD's
 *   connection-closed notification sets `closed` under the same mutex before MHD closes the fd,
 *   so a recycled fd number is never touched.
 * - Shutdown: mock__timer_flush_and_close runs pending entries early on the stopping thread;
 *   they find the limit not reached, fail to re-arm (the timer is closed) and drop their
 *   reference; MHD_stop_daemon's closed notifications drop the rest.
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "server_internal.h"

struct mock_watch {
    pthread_mutex_t mu;
    struct mock_server *srv;
    int fd;
    int phase;         /* guarded by mu */
    uint64_t since;    /* guarded by mu: when the phase began (monotonic ns) */
    uint64_t armed;    /* guarded by mu: deadline of the one live timer entry (0: none) */
    int closed;        /* guarded by mu: MHD closed the connection */
    int refs;          /* guarded by mu: the connection's and one per timer entry */
};

/* One timer entry. Entries cannot be cancelled, so one made stale by an earlier one (a phase
 * with a shorter allowance began) only drops its reference when it fires. */
struct tick {
    struct mock_watch *w;
    uint64_t at;
};

/* Drops a reference and unlocks; frees w with the last one. Caller holds w->mu. */
static void unref_locked(struct mock_watch *w)
{
    int left = --w->refs;
    pthread_mutex_unlock(&w->mu);
    if (left == 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

/* The allowance of a phase in ns; 0 = unlimited. */
static uint64_t limit_ns(const struct mock_watch *w, int phase)
{
    if (phase == WATCH_HEADERS)
        return atomic_load_explicit(&w->srv->header_timeout_ns, RLX);
    if (phase == WATCH_BODY)
        return atomic_load_explicit(&w->srv->body_timeout_ns, RLX);
    return 0;
}

/* When to look next: at the end of this phase's allowance, or (busy, or no limit) after the
 * longer of the two allowances (at least 1 s), when a new phase may have begun. Caller holds
 * w->mu. */
static uint64_t next_look(const struct mock_watch *w, uint64_t now)
{
    uint64_t lim = limit_ns(w, w->phase);
    if (lim)
        return w->since + lim;
    uint64_t h = limit_ns(w, WATCH_HEADERS), b = limit_ns(w, WATCH_BODY);
    uint64_t gap = h > b ? h : b;
    return now + (gap > 1000000000ull ? gap : 1000000000ull);
}

static void tick_cb(void *arg);

/* Arms a timer entry at `at` and makes it the live one. Caller holds w->mu. */
static void arm(struct mock_watch *w, uint64_t at)
{
    struct tick *t = malloc(sizeof *t);
    if (!t)
        return; /* out of memory: the live entry (if any) still looks later */
    t->w = w;
    t->at = at;
    w->refs++;
    if (mock__timer_add(w->srv->timer, at, tick_cb, t) < 0) {
        w->refs--; /* stopping: no more watching */
        free(t);
        return;
    }
    w->armed = at;
}

static void tick_cb(void *arg)
{
    mock__server_thread = 1;
    struct tick *t = arg;
    struct mock_watch *w = t->w;
    uint64_t at = t->at;
    free(t);
    pthread_mutex_lock(&w->mu);
    if (w->closed || at != w->armed) { /* closed, or a stale entry */
        unref_locked(w);
        return;
    }
    w->armed = 0;
    uint64_t now = mock__now_ns(), lim = limit_ns(w, w->phase);
    if (lim && now - w->since >= lim) {
        shutdown(w->fd, SHUT_RDWR);
        unref_locked(w);
        return;
    }
    arm(w, next_look(w, now));
    unref_locked(w);
}

void mock__watch_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code)
{
    mock__server_thread = 1;
    struct mock_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct mock_watch *w = calloc(1, sizeof *w);
        *socket_context = NULL;
        if (!w || !ci) {
            free(w); /* unwatched: only MHD's idle timeout applies */
            return;
        }
        pthread_mutex_init(&w->mu, NULL);
        w->srv = s;
        w->fd = ci->connect_fd;
        w->phase = WATCH_HEADERS;
        w->since = mock__now_ns();
        w->refs = 1;
        *socket_context = w;
        pthread_mutex_lock(&w->mu);
        arm(w, next_look(w, w->since));
        pthread_mutex_unlock(&w->mu);
        return;
    }
    struct mock_watch *w = *socket_context;
    if (!w)
        return;
    *socket_context = NULL;
    pthread_mutex_lock(&w->mu);
    w->closed = 1;
    unref_locked(w);
}

void mock__watch_phase(struct MHD_Connection *c, int phase)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct mock_watch *w = ci ? ci->socket_context : NULL;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->phase != phase && !w->closed) {
        w->phase = phase;
        w->since = mock__now_ns();
        uint64_t lim = limit_ns(w, phase);
        if (lim && (w->armed == 0 || w->since + lim < w->armed))
            arm(w, w->since + lim); /* the live entry looks too late: this one takes over */
    }
    pthread_mutex_unlock(&w->mu);
}
