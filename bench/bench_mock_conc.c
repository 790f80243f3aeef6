/*
 * bench_mock_conc.c - concurrency benchmark for the mock LLM server: opens N keep-alive TCP
 * connections to a running cx-mock, sends one request on every connection at once, and measures
 * each response's latency against the configured one. Prints p50/p90/p99/max of the latency and
 * of its error (observed - configured), the server's own error histogram from /stats, and the
 * server process's peak RSS (VmHWM) and thread count from /proc/PID/status.
 *
 * It is a plain single-threaded epoll client over raw sockets (no libcurl) so that the client's
 * own overhead per request is a few microseconds and 10,000 connections fit in a few MB. Each
 * request is timed from just before its write to the read of its last body byte, so the spread
 * of the sending loop does not count as server error; answers are drained between batches of
 * sends so a send loop longer than the latency does not delay reading them.
 *
 * It does not start or configure the server: bench/mock_load.sh does that (latency, limits).
 *
 *   bench_mock_conc --port P [--host 127.0.0.1] --conns N --latency-ms L [--pid PID]
 *                   [--path /v1/chat/completions] [--timeout-s 60]
 *
 * With --stall-probe S it sends nothing: for S seconds it sleeps 1 ms at a time and prints how
 * far each sleep overran (p50/p99/p99.9/max and counts over 5, 20 and 50 ms). Run beside a load
 * test, it shows what the machine itself does to any thread's wakeup: a stall it sees delays
 * the server's timer and workers as much, whatever the server does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

enum { ST_CONNECTING, ST_CONNECTED, ST_SENT, ST_DONE, ST_FAILED };

struct conn {
    int fd;
    int state;
    int status;      /* HTTP status */
    int chunked;     /* Transfer-Encoding: chunked (ends with 0\r\n\r\n) */
    long body_need;  /* Content-Length, -1 unknown */
    long body_got;
    size_t hlen;     /* bytes of the header block gathered so far */
    char head[2048]; /* the header block (then the chunked tail) */
    char tail[8];    /* last bytes of a chunked body */
    double t_send, t_done;
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Reads a field (e.g. "VmHWM:") from /proc/PID/status; -1 when absent. */
static long proc_field(long pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f == NULL) return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, strlen(field)) == 0) v = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    return v;
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Blocking GET of path; returns the malloc'd body or NULL. */
static char *http_get(const char *host, int port, const char *path) {
    int fd = connect_to(host, port);
    if (fd < 0) return NULL;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf != NULL && (r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap) {
            char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    close(fd);
    if (buf == NULL) return NULL;
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (body == NULL) {
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* Number after "key": inside the object that follows "name": in a JSON text (no full parser:
 * the stats shape is fixed and flat enough). */
static double json_hist_field(const char *js, const char *name, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = js ? strstr(js, pat) : NULL;
    if (p == NULL) return -1;
    const char *end = strchr(p, '}');
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = strstr(p, pat);
    if (k == NULL || (end != NULL && k > end)) return -1;
    return strtod(k + strlen(pat), NULL);
}

/* Feeds received bytes into c; returns 1 when the response is complete. */
static int feed(struct conn *c, const char *p, size_t n) {
    if (c->status == 0) {
        size_t take = n < sizeof c->head - 1 - c->hlen ? n : sizeof c->head - 1 - c->hlen;
        memcpy(c->head + c->hlen, p, take);
        c->hlen += take;
        c->head[c->hlen] = '\0';
        char *e = strstr(c->head, "\r\n\r\n");
        if (e == NULL) {
            if (c->hlen == sizeof c->head - 1) c->state = ST_FAILED;
            return 0;
        }
        size_t hdr = (size_t)(e - c->head) + 4;
        c->status = atoi(c->head + 9);
        c->body_need = -1;
        for (char *l = c->head; l < e; l = strstr(l, "\r\n") + 2) {
            if (strncasecmp(l, "Content-Length:", 15) == 0) c->body_need = atol(l + 15);
            if (strncasecmp(l, "Transfer-Encoding:", 18) == 0 && strstr(l, "chunked") != NULL &&
                strstr(l, "chunked") < strstr(l, "\r\n"))
                c->chunked = 1;
        }
        /* The part of this read after the header block is body. */
        size_t before = c->hlen - take; /* header bytes from earlier reads */
        size_t body_off = hdr > before ? hdr - before : 0;
        p += body_off;
        n -= body_off;
    }
    c->body_got += (long)n;
    if (c->chunked) {
        /* Keep the last 5 bytes to spot the terminating "0\r\n\r\n". */
        char t[16];
        size_t tl = strlen(c->tail);
        size_t k = n < 5 ? n : 5;
        memcpy(t, c->tail, tl);
        memcpy(t + tl, p + n - k, k);
        t[tl + k] = '\0';
        size_t all = strlen(t);
        memcpy(c->tail, t + (all > 5 ? all - 5 : 0), (all > 5 ? 5 : all) + 1);
        return strcmp(c->tail, "0\r\n\r\n") == 0;
    }
    return c->body_need >= 0 && c->body_got >= c->body_need;
}

/* --stall-probe: 1 ms sleeps for secs seconds; prints the oversleep distribution. */
static int stall_probe(double secs) {
    size_t cap = (size_t)(secs * 1000) + 16, n = 0;
    double *late = malloc(cap * sizeof *late);
    if (late == NULL) {
        fprintf(stderr, "stall probe: out of memory\n");
        return 1;
    }
    double t0 = now_ms(), end = t0 + secs * 1e3;
    long over5 = 0, over20 = 0, over50 = 0;
    while (n < cap && now_ms() < end) {
        double a = now_ms();
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
        double l = now_ms() - a - 1.0;
        late[n++] = l;
        over5 += l > 5;
        over20 += l > 20;
        over50 += l > 50;
    }
    qsort(late, n, sizeof *late, cmp_double);
    printf("stall probe: %zu sleeps of 1 ms over %.1f s, oversleep ms p50 %.2f p99 %.2f "
           "p99.9 %.2f max %.1f; over 5 ms %ld, over 20 ms %ld, over 50 ms %ld\n",
           n, secs, pct(late, n, 0.50), pct(late, n, 0.99), pct(late, n, 0.999),
           n ? late[n - 1] : 0.0, over5, over20, over50);
    free(late);
    return 0;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *path = "/v1/chat/completions";
    int port = 0;
    long conns = 1000, pid = 0;
    double latency_ms = 0, timeout_s = 60, probe_s = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) host = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0) port = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--conns") == 0) conns = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--latency-ms") == 0) latency_ms = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--pid") == 0) pid = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--path") == 0) path = argv[i + 1];
        else if (strcmp(argv[i], "--timeout-s") == 0) timeout_s = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--stall-probe") == 0) probe_s = strtod(argv[i + 1], NULL);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (probe_s > 0)
        return stall_probe(probe_s);
    if (port <= 0 || conns <= 0) {
        fprintf(stderr, "usage: %s --port P --conns N --latency-ms L [--pid PID] [--host H] "
                        "[--path P] [--timeout-s S] | --stall-probe S\n", argv[0]);
        return 2;
    }
    /* 10,000 connections need more descriptors than the usual soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)conns + 16 > rl.rlim_cur) {
        fprintf(stderr, "open-files limit %ld is too low for %ld connections\n",
                (long)rl.rlim_cur, conns);
        return 2;
    }

    struct conn *c = calloc((size_t)conns, sizeof *c);
    double *lat = calloc((size_t)conns, sizeof *lat);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (c == NULL || lat == NULL || ep < 0) {
        perror("setup");
        return 1;
    }
    char req[1024];
    const char *body =
        "{\"model\":\"mock-1\",\"messages\":[{\"role\":\"user\",\"content\":\"Install package: "
        "nginx\"}]}";
    int reqlen = snprintf(req, sizeof req,
                          "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n%s",
                          path, host, port, strlen(body), body);

    /* Phase 1: connect in batches so the listen backlog never overflows (a dropped SYN costs a
     * 1 s retransmission, which is client noise, not server latency). */
    double t_conn0 = now_ms();
    struct epoll_event evs[1024];
    long connected = 0;
    for (long base = 0; base < conns; base += 256) {
        long end = base + 256 < conns ? base + 256 : conns;
        for (long i = base; i < end; i++) {
            c[i].fd = connect_to(host, port);
            if (c[i].fd < 0) {
                perror("connect");
                return 1;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
        }
        while (connected < end) {
            int k = epoll_wait(ep, evs, 1024, 5000);
            if (k <= 0) {
                fprintf(stderr, "connect timed out at %ld of %ld\n", connected, conns);
                return 1;
            }
            for (int j = 0; j < k; j++) {
                struct conn *cc = &c[evs[j].data.u64];
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(cc->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0 || (evs[j].events & (EPOLLERR | EPOLLHUP))) {
                    fprintf(stderr, "connect failed: %s\n", strerror(err));
                    return 1;
                }
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = evs[j].data.u64};
                epoll_ctl(ep, EPOLL_CTL_MOD, cc->fd, &ev);
                cc->state = ST_CONNECTED;
                connected++;
            }
        }
    }
    double t_connected = now_ms();
    /* Let the server accept everything in its backlog before the clock starts. */
    usleep(300000);

    /* Phase 2+3: send every request as fast as possible and read the answers. Between batches
     * of sends the ready answers are drained, so when the send loop takes longer than the
     * latency (10,000 requests at 100 ms) an early answer is not left waiting in the client. */
    long done = 0, failed = 0, next = 0;
    char buf[65536];
    double t_send0 = now_ms(), t_send1 = t_send0;
    double deadline = t_send0 + latency_ms + timeout_s * 1000;
    while ((next < conns || done + failed < conns) && now_ms() < deadline) {
        for (long b = 0; b < 64 && next < conns; b++, next++) {
            /* Timed from before the write: on loopback write() can return well after the server
             * has the bytes (the receiver's work runs inside it), so the clock starts here. */
            c[next].t_send = now_ms();
            ssize_t w = write(c[next].fd, req, (size_t)reqlen);
            if (w != reqlen) {
                c[next].state = ST_FAILED;
                failed++;
                continue;
            }
            c[next].state = ST_SENT;
        }
        if (next == conns && t_send1 == t_send0) t_send1 = now_ms();
        int k = epoll_wait(ep, evs, 1024, next < conns ? 0 : 100);
        for (int j = 0; j < k; j++) {
            struct conn *cc = &c[evs[j].data.u64];
            if (cc->state != ST_SENT) continue;
            for (;;) {
                ssize_t r = read(cc->fd, buf, sizeof buf);
                if (r > 0) {
                    if (feed(cc, buf, (size_t)r)) {
                        cc->t_done = now_ms();
                        cc->state = ST_DONE;
                        done++;
                        break;
                    }
                    if (cc->state == ST_FAILED) {
                        failed++;
                        break;
                    }
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                cc->state = ST_FAILED; /* closed or error before the end */
                failed++;
                break;
            }
        }
    }
    long ok = 0, non200 = 0;
    size_t nl = 0;
    for (long i = 0; i < conns; i++) {
        if (c[i].state != ST_DONE) continue;
        if (c[i].status != 200) {
            non200++;
            continue;
        }
        ok++;
        lat[nl++] = c[i].t_done - c[i].t_send;
    }
    qsort(lat, nl, sizeof *lat, cmp_double);
    double *errv = calloc(nl ? nl : 1, sizeof *errv);
    for (size_t i = 0; i < nl; i++) errv[i] = lat[i] - latency_ms;

    /* When the answers came, relative to the first send: a burst at the end (answer spread much
     * smaller than the send spread) means the server held replies back and released them
     * together; answers spread like the sends mean each was timed on its own. */
    double first_done = 0, last_done = 0;
    for (long i = 0; i < conns; i++) {
        if (c[i].state != ST_DONE) continue;
        if (first_done == 0 || c[i].t_done < first_done) first_done = c[i].t_done;
        if (c[i].t_done > last_done) last_done = c[i].t_done;
    }
    printf("conns %ld  configured %.1f ms  connect %.0f ms  send spread %.1f ms  answers from "
           "%.1f to %.1f ms after the first send\n",
           conns, latency_ms, t_connected - t_conn0, t_send1 - t_send0,
           first_done > 0 ? first_done - t_send0 : 0.0, last_done > 0 ? last_done - t_send0 : 0.0);
    printf("answered 200: %ld  other status: %ld  failed/unfinished: %ld\n", ok, non200,
           conns - ok - non200);
    printf("client latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", pct(lat, nl, 0.5),
           pct(lat, nl, 0.9), pct(lat, nl, 0.99), nl ? lat[nl - 1] : 0.0);
    printf("client error ms (observed - configured): p50 %.2f  p99 %.2f  max %.2f  min %.2f\n",
           pct(errv, nl, 0.5), pct(errv, nl, 0.99), nl ? errv[nl - 1] : 0.0, nl ? errv[0] : 0.0);
    char *stats = http_get(host, port, "/stats");
    if (stats != NULL) {
        printf("server error ms (/stats): p50 %.2f  p99 %.2f  max %.2f  | delivered p50 %.2f  "
               "p99 %.2f  in_flight_max %.0f\n",
               json_hist_field(stats, "error", "p50"), json_hist_field(stats, "error", "p99"),
               json_hist_field(stats, "error", "max"), json_hist_field(stats, "delivered", "p50"),
               json_hist_field(stats, "delivered", "p99"),
               strstr(stats, "\"in_flight_max\":")
                   ? strtod(strstr(stats, "\"in_flight_max\":") + 16, NULL)
                   : -1.0);
        free(stats);
    }
    if (pid > 0)
        printf("server VmHWM %ld kB  VmRSS %ld kB  threads %ld\n", proc_field(pid, "VmHWM:"),
               proc_field(pid, "VmRSS:"), proc_field(pid, "Threads:"));
    /* Machine-readable line for the script. */
    printf("RESULT conns=%ld latency_ms=%.0f ok=%ld p50_err_ms=%.3f p99_err_ms=%.3f "
           "max_err_ms=%.3f hwm_kb=%ld threads=%ld\n",
           conns, latency_ms, ok, pct(errv, nl, 0.5), pct(errv, nl, 0.99),
           nl ? errv[nl - 1] : 0.0, pid > 0 ? proc_field(pid, "VmHWM:") : -1,
           pid > 0 ? proc_field(pid, "Threads:") : -1);
    for (long i = 0; i < conns; i++) close(c[i].fd);
    close(ep);
    free(errv);
    free(lat);
    free(c);
    return ok == conns ? 0 : 1;
}
