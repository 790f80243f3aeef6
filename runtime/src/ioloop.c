/*
 * ioloop.c - the hybrid I/O design: one thread, one curl multi handle, every in-flight request.
 *
 * What it does: moves the bytes of transfers prepared by http.c, runs completion callbacks and
 * timers on its thread, reuses easy handles and connections. What it does not do: build or parse
 * requests (http.c, on the caller's or the CPU pool's threads), retry, rate-limit (router.c).
 *
 * DESIGN
 *   Threads: the creator's thread(s), which submit; one I/O thread, started by cx_ioloop_new and
 *   joined by cx_ioloop_free.
 *   Queues: `queue` (transfers submitted, FIFO) and `new_timers`, both guarded by `mu`. Submitters
 *   append under mu and write to an eventfd the loop's epoll set watches. The I/O thread
 *   swaps both lists out under mu and works on them without it: transfers go into the multi
 *   handle and onto `live` (I/O thread only), timers into the sorted `timers` list (I/O thread
 *   only).
 *   Ordering: transfers start in submission order; completions come in whatever order the
 *   server answers. Timers run in `when` order, after the transfers queued before them started.
 *   Callbacks: completion callbacks and timers run on the I/O thread with no lock held; they may
 *   submit more work (it is queued for the next turn of the loop).
 *   Events: curl's multi_socket API. curl tells us which sockets to watch (socket callback ->
 *   epoll_ctl) and when it next needs a timeout call (timer callback); the loop waits in
 *   epoll_wait and hands each ready socket to curl_multi_socket_action, so one wake-up costs
 *   O(ready sockets), not O(transfers in flight) as curl_multi_perform/poll would with 1,000.
 *   Cancellation: a transfer's cancel flag is seen by curl's progress callback while curl works
 *   on it, and at once after cx_ioloop_kick (a scan of `live`).
 *   Shutdown: cx_ioloop_free sets `stopping` under mu and wakes the loop; the loop ends every
 *   queued and live transfer with CX_ECANCELED (callback runs), runs every timer with canceled=1,
 *   and exits; new submissions fail with CX_ECLOSED from the moment `stopping` is set.
 */
#include "cx/ioloop.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cx/clock.h"
#include "http_internal.h"

struct timer {
    uint64_t when;
    cx_ioloop_timer_fn fn;
    void *ud;
    struct timer *next;
};

struct cx_ioloop {
    CURLM *multi;
    int epfd;     /* epoll set: curl's sockets + wakefd */
    int wakefd;   /* eventfd written by submitters, kick and shutdown */
    pthread_t thread;
    struct cx__mutex mu;
    struct cx_http_xfer *q_head, *q_tail; /* guarded by mu */
    struct timer *new_timers;             /* guarded by mu */
    int stopping;                         /* guarded by mu */
    atomic_int kicked;
    atomic_ulong tid; /* the I/O thread's pthread_self(), for cx_ioloop_on_thread */

    /* I/O thread only */
    uint64_t curl_due; /* when curl wants curl_multi_socket_action(TIMEOUT); UINT64_MAX: never */
    struct cx_http_xfer *live;
    struct timer *timers; /* sorted by when */
    CURL **idle;
    size_t n_idle, cap_idle;

    atomic_uint_fast64_t submitted, completed, in_flight, max_in_flight, handles, timers_run;
};

void cx_ioloop_options_init(struct cx_ioloop_options *o) {
    memset(o, 0, sizeof *o);
    o->max_connections = 2048;
}

/* ---- I/O thread helpers ---- */

static void complete(struct cx_ioloop *l, struct cx_http_xfer *x) {
    cx_ioloop_done_fn done = x->done;
    void *ud = x->ud;
    x->done = NULL;
    x->next = x->prev = NULL;
    atomic_fetch_add(&l->completed, 1);
    done(x, ud); /* x belongs to the callback from here on */
}

static void live_unlink(struct cx_ioloop *l, struct cx_http_xfer *x) {
    if (x->prev) x->prev->next = x->next;
    else l->live = x->next;
    if (x->next) x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

static void release_easy(struct cx_ioloop *l, CURL *easy) {
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
    if (l->n_idle == l->cap_idle) {
        size_t cap = l->cap_idle ? l->cap_idle * 2 : 64;
        CURL **p = cap <= 4096 ? cx__realloc(l->idle, cap * sizeof *p) : NULL;
        if (p == NULL) {
            curl_easy_cleanup(easy);
            return;
        }
        l->idle = p;
        l->cap_idle = cap;
    }
    l->idle[l->n_idle++] = easy;
}

/* Puts x into the multi handle, or ends it at once when that is impossible. */
static void start(struct cx_ioloop *l, struct cx_http_xfer *x) {
    x->started_ns = cx_now_ns();
    if (x->deadline != CX_DEADLINE_NONE && cx_deadline_expired(x->deadline)) {
        cx__http_xfer_abort(x, CX__ABORT_DEADLINE);
        complete(l, x);
        return;
    }
    if ((x->cancel && atomic_load(x->cancel)) || atomic_load(&x->cancel_req)) {
        cx__http_xfer_abort(x, CX__ABORT_CANCEL);
        complete(l, x);
        return;
    }
    CURL *easy = l->n_idle ? l->idle[--l->n_idle] : NULL;
    if (easy == NULL) {
        easy = curl_easy_init();
        if (easy) atomic_fetch_add(&l->handles, 1);
    }
    int rc = easy ? cx__http_xfer_attach(x, easy) : CX_ENOMEM;
    if (rc == 0 && curl_multi_add_handle(l->multi, easy) != CURLM_OK) rc = CX_ENOMEM;
    if (rc < 0) {
        if (easy) release_easy(l, easy);
        x->performed = 1;
        x->curl_rc = CURLE_OUT_OF_MEMORY;
        x->abort_reason = CX__ABORT_NONE;
        complete(l, x);
        return;
    }
    x->easy = easy;
    x->prev = NULL;
    x->next = l->live;
    if (l->live) l->live->prev = x;
    l->live = x;
    uint64_t n = atomic_fetch_add(&l->in_flight, 1) + 1;
    uint64_t m = atomic_load(&l->max_in_flight);
    while (n > m && !atomic_compare_exchange_weak(&l->max_in_flight, &m, n)) {
    }
}

/* Takes x out of the multi handle and runs its callback. */
static void end_live(struct cx_ioloop *l, struct cx_http_xfer *x, CURLcode rc, int abort_reason) {
    CURL *easy = x->easy;
    curl_multi_remove_handle(l->multi, easy);
    live_unlink(l, x);
    if (abort_reason != CX__ABORT_NONE) {
        cx__http_xfer_abort(x, abort_reason);
    } else {
        cx__http_xfer_ended(x, easy, rc);
    }
    x->easy = NULL;
    release_easy(l, easy);
    atomic_fetch_sub(&l->in_flight, 1);
    complete(l, x);
}

static void insert_timer(struct cx_ioloop *l, struct timer *t) {
    struct timer **pp = &l->timers;
    while (*pp && (*pp)->when <= t->when) pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
}

/* curl: watch (or stop watching) socket s. socketp marks sockets already in the epoll set. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)easy;
    struct cx_ioloop *l = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(l->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    ev.data.fd = s;
    if (socketp) {
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
            epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev);
    } else {
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
            epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(l->multi, s, (void *)l);
    }
    return 0;
}

/* curl: call curl_multi_socket_action(TIMEOUT) in timeout_ms (-1: no timer). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    struct cx_ioloop *l = userp;
    l->curl_due = timeout_ms < 0 ? UINT64_MAX : cx_now_ns() + (uint64_t)timeout_ms * CX_NSEC_PER_MSEC;
    return 0;
}

static void wake(struct cx_ioloop *l) {
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(l->wakefd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, the loop is woken anyway */
}

/* Ends every transfer curl reports as done. */
static void drain_done(struct cx_ioloop *l) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        void *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
        struct cx_http_xfer *x = priv;
        CURLcode rc = msg->data.result;
        end_live(l, x, rc, CX__ABORT_NONE);
    }
}

static void *loop_main(void *arg) {
    struct cx_ioloop *l = arg;
    atomic_store(&l->tid, (unsigned long)pthread_self());
    uint64_t last_scan = cx_now_ns();
    for (;;) {
        cx__mutex_lock(&l->mu);
        struct cx_http_xfer *q = l->q_head;
        l->q_head = l->q_tail = NULL;
        struct timer *nt = l->new_timers;
        l->new_timers = NULL;
        int stopping = l->stopping;
        cx__mutex_unlock(&l->mu);

        while (nt) {
            struct timer *n = nt->next;
            insert_timer(l, nt);
            nt = n;
        }
        while (q) {
            struct cx_http_xfer *n = q->next;
            if (stopping) {
                q->started_ns = cx_now_ns();
                cx__http_xfer_abort(q, CX__ABORT_CLOSED);
                complete(l, q);
            } else {
                start(l, q);
            }
            q = n;
        }
        if (stopping) break;

        uint64_t now = cx_now_ns();
        while (l->timers && l->timers->when <= now) {
            struct timer *t = l->timers;
            l->timers = t->next;
            atomic_fetch_add(&l->timers_run, 1);
            t->fn(t->ud, 0);
            cx__free(t);
        }
        /* cancel flags: at once after a kick, else once a second (curl only runs a transfer's
         * progress callback while something happens on it, and a stalled one is silent) */
        int kicked = atomic_exchange(&l->kicked, 0);
        if (kicked || now - last_scan >= CX_NSEC_PER_SEC) {
            last_scan = now;
            struct cx_http_xfer *x = l->live;
            while (x) {
                struct cx_http_xfer *n = x->next;
                if ((x->cancel && atomic_load(x->cancel)) || atomic_load(&x->cancel_req))
                    end_live(l, x, CURLE_ABORTED_BY_CALLBACK, CX__ABORT_CANCEL);
                x = n;
            }
        }

        /* curl's own timeouts (and the first step of transfers just added) */
        int running = 0;
        if (l->curl_due != UINT64_MAX && cx_now_ns() >= l->curl_due) {
            l->curl_due = UINT64_MAX;
            curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        drain_done(l);

        /* Sleep until a socket is ready, curl's timer or ours is due, or we are woken. */
        uint64_t due = l->curl_due;
        if (l->timers && l->timers->when < due) due = l->timers->when;
        int wait_ms = 1000;
        if (due != UINT64_MAX) {
            uint64_t left_ns = cx_deadline_remaining_ns(due);
            uint64_t ms = (left_ns + CX_NSEC_PER_MSEC - 1) / CX_NSEC_PER_MSEC;
            if (ms < (uint64_t)wait_ms) wait_ms = (int)ms;
        }
        if (atomic_load(&l->kicked)) wait_ms = 0;
        struct epoll_event evs[256];
        int n = epoll_wait(l->epfd, evs, 256, wait_ms);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l->wakefd) {
                uint64_t v;
                ssize_t rd = read(l->wakefd, &v, sizeof v);
                (void)rd;
                continue;
            }
            int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                       (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(l->multi, fd, mask, &running);
        }
        drain_done(l);
    }

    /* Shutdown: end everything still held. */
    while (l->live) end_live(l, l->live, CURLE_ABORTED_BY_CALLBACK, CX__ABORT_CLOSED);
    for (;;) {
        cx__mutex_lock(&l->mu);
        struct timer *nt = l->new_timers;
        l->new_timers = NULL;
        struct cx_http_xfer *q = l->q_head;
        l->q_head = l->q_tail = NULL;
        cx__mutex_unlock(&l->mu);
        while (nt) {
            struct timer *n = nt->next;
            insert_timer(l, nt);
            nt = n;
        }
        while (q) { /* cannot happen (submit refuses once stopping), kept for safety */
            struct cx_http_xfer *n = q->next;
            cx__http_xfer_abort(q, CX__ABORT_CLOSED);
            complete(l, q);
            q = n;
        }
        if (l->timers == NULL) break;
        while (l->timers) {
            struct timer *t = l->timers;
            l->timers = t->next;
            atomic_fetch_add(&l->timers_run, 1);
            t->fn(t->ud, 1);
            cx__free(t);
        }
    }
    return NULL;
}

/* ---- public API ---- */

int cx_ioloop_new(const struct cx_ioloop_options *opts, struct cx_ioloop **out, struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_ioloop_new: out is NULL");
    *out = NULL;
    struct cx_ioloop_options def;
    if (opts == NULL) {
        cx_ioloop_options_init(&def);
        opts = &def;
    }
    int rc = cx__http_global_init();
    if (rc < 0) return cx__err(ei, rc, "curl_global_init failed");
    struct cx_ioloop *l = cx__calloc(1, sizeof *l);
    if (l == NULL) return cx__err(ei, CX_ENOMEM, "cx_ioloop_new: out of memory");
    if (cx__mutex_init(&l->mu) < 0) {
        cx__free(l);
        return cx__err(ei, CX_ENOMEM, "cx_ioloop_new: out of memory");
    }
    l->epfd = l->wakefd = -1;
    l->curl_due = UINT64_MAX;
    l->multi = curl_multi_init();
    if (l->multi == NULL) {
        rc = cx__err(ei, CX_ENOMEM, "cx_ioloop_new: curl_multi_init failed");
        goto fail;
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->wakefd < 0) {
        rc = cx__err(ei, CX_EIO, "cx_ioloop_new: cannot create the epoll set / eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event wev;
    memset(&wev, 0, sizeof wev);
    wev.events = EPOLLIN;
    wev.data.fd = l->wakefd;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &wev) != 0) {
        rc = cx__err(ei, CX_EIO, "cx_ioloop_new: epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    long maxc = opts->max_connections > 0 ? opts->max_connections : 2048;
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, maxc);
    curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    atomic_init(&l->kicked, 0);
    atomic_init(&l->tid, 0);
    int e = pthread_create(&l->thread, NULL, loop_main, l);
    if (e != 0) {
        rc = cx__err(ei, CX_EAGAIN, "cx_ioloop_new: cannot start the I/O thread (pthread_create: %s)",
                     strerror(e));
        goto fail;
    }
    *out = l;
    return 0;
fail:
    if (l->multi) curl_multi_cleanup(l->multi);
    if (l->epfd >= 0) close(l->epfd);
    if (l->wakefd >= 0) close(l->wakefd);
    cx__mutex_destroy(&l->mu);
    cx__free(l);
    return rc;
}

void cx_ioloop_free(struct cx_ioloop *l) {
    if (l == NULL) return;
    CX_ASSERT(!cx_ioloop_on_thread(l));
    cx__mutex_lock(&l->mu);
    l->stopping = 1;
    cx__mutex_unlock(&l->mu);
    wake(l);
    pthread_join(l->thread, NULL);
    for (size_t i = 0; i < l->n_idle; i++) curl_easy_cleanup(l->idle[i]);
    cx__free(l->idle);
    curl_multi_cleanup(l->multi);
    close(l->epfd);
    close(l->wakefd);
    cx__mutex_destroy(&l->mu);
    cx__free(l);
}

int cx_ioloop_submit(struct cx_ioloop *l, struct cx_http_xfer *x, cx_ioloop_done_fn done, void *ud,
                     struct cx_errinfo *ei) {
    if (l == NULL || x == NULL || done == NULL)
        return cx__err(ei, CX_EINVAL, "cx_ioloop_submit: loop, transfer and callback are required");
    x->done = done;
    x->ud = ud;
    x->next = x->prev = NULL;
    x->performed = 0;
    atomic_store(&x->cancel_req, 0);
    cx__mutex_lock(&l->mu);
    if (l->stopping) {
        cx__mutex_unlock(&l->mu);
        x->done = NULL;
        return cx__err(ei, CX_ECLOSED, "cx_ioloop_submit: the I/O loop is shutting down");
    }
    if (l->q_tail) l->q_tail->next = x;
    else l->q_head = x;
    l->q_tail = x;
    cx__mutex_unlock(&l->mu);
    atomic_fetch_add(&l->submitted, 1);
    wake(l);
    return 0;
}

void cx_ioloop_kick(struct cx_ioloop *l) {
    if (l == NULL) return;
    atomic_store(&l->kicked, 1);
    wake(l);
}

int cx_ioloop_timer(struct cx_ioloop *l, uint64_t when, cx_ioloop_timer_fn fn, void *ud,
                    struct cx_errinfo *ei) {
    if (l == NULL || fn == NULL) return cx__err(ei, CX_EINVAL, "cx_ioloop_timer: loop and fn are required");
    struct timer *t = cx__malloc(sizeof *t);
    if (t == NULL) return cx__err(ei, CX_ENOMEM, "cx_ioloop_timer: out of memory");
    t->when = when;
    t->fn = fn;
    t->ud = ud;
    cx__mutex_lock(&l->mu);
    if (l->stopping) {
        cx__mutex_unlock(&l->mu);
        cx__free(t);
        return cx__err(ei, CX_ECLOSED, "cx_ioloop_timer: the I/O loop is shutting down");
    }
    t->next = l->new_timers;
    l->new_timers = t;
    cx__mutex_unlock(&l->mu);
    wake(l);
    return 0;
}

int cx_ioloop_on_thread(const struct cx_ioloop *l) {
    return l && atomic_load(&((struct cx_ioloop *)l)->tid) == (unsigned long)pthread_self();
}

void cx_ioloop_stats(struct cx_ioloop *l, struct cx_ioloop_stats *out) {
    memset(out, 0, sizeof *out);
    if (l == NULL) return;
    out->submitted = atomic_load(&l->submitted);
    out->completed = atomic_load(&l->completed);
    out->in_flight = atomic_load(&l->in_flight);
    out->max_in_flight = atomic_load(&l->max_in_flight);
    out->handles_created = atomic_load(&l->handles);
    out->timers = atomic_load(&l->timers_run);
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(l->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
        out->cpu_ns = (uint64_t)ts.tv_sec * CX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

int cx_io_choose(size_t batch, double cpu_share, int cores, enum cx_io_design *design, int *threads) {
    if (design == NULL || threads == NULL || cores < 1) return CX_EINVAL;
    if (!(cpu_share >= 0)) cpu_share = 0.1; /* negative or NaN: nothing measured yet */
    if (cpu_share > 1) cpu_share = 1;
    size_t t;
    if (batch <= 32) {
        *design = CX_IO_THREAD_LOCAL;
        t = batch;
    } else if (batch > 256) {
        *design = CX_IO_HYBRID;
        t = (size_t)cores;
    } else if (cpu_share < 0.5) {
        *design = CX_IO_HYBRID;
        double need = ceil((double)batch * cpu_share);
        t = need < 1 ? 1 : (size_t)need;
        if (t > (size_t)cores) t = (size_t)cores;
    } else {
        *design = CX_IO_THREAD_LOCAL;
        t = (size_t)ceil((double)cores / cpu_share);
        if (t > batch) t = batch;
    }
    if (t < 1) t = 1;
    if (t > 1024) t = 1024;
    *threads = (int)t;
    return 0;
}
