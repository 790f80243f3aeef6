/*
 * fuzz_mock_http.c - fuzzes the mock server's request handling through its real HTTP parsing:
 * the input is written as raw bytes to a loopback TCP connection to an in-process server
 * (started on the first input, stopped at exit), the write side is shut, and whatever comes
 * back is read until the server closes or a deadline passes. So libmicrohttpd parses the
 * request line, headers, chunked or sized bodies and pipelined requests, and every route,
 * parser and error path of the mock runs on what it made of them (the admin routes included:
 * an input may change settings or script faults, which are put back after each input).
 *
 * Checks, besides "no crash" (ASan/UBSan in the fuzz preset and the asan build):
 *   - whatever the server sends is a sequence of HTTP/1.x responses: each starts with a status
 *     line "HTTP/1.x NNN " (100..599), up to the first of libmicrohttpd's own error pages;
 *   - every 400 with a Content-Length and Content-Type application/json (the mock's own
 *     400s; libmicrohttpd answers a request it cannot parse as HTTP with its built-in HTML
 *     page, as any server does) carries a JSON error object whose message is a string and
 *     whose param, when present, is a string or null (the max_tokens use-after-free put freed
 *     heap bytes there);
 *   - the server still answers GET /health on a fresh connection after the input.
 * Not checked: reply content (test_mock_server does), timing. FUZZ_MOCK_HTTP_SHOW=1 prints
 * each input's size and the start of its answer (to see what a corpus reaches).
 *
 * Known bugs: none open.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "mock/server.h"

/* Quick settings: no latency and short slow-client limits, so an input costs milliseconds.
 * An input that sets a latency or a stall is cut by READ_MS. */
#define BASE_CONFIG "latency = 0\nheader_timeout = 300ms\nbody_timeout = 300ms\nstall = 200ms\n"
#define READ_MS 1500

static struct mock_server *srv;
static char base_json[4096]; /* GET /admin/config at start, to put settings back */

static void stop_server(void) {
    mock_server_stop(srv);
    srv = NULL;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)mock_server_port(srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
               strerror(errno));
    return fd;
}

/* Writes data (all of it, unless the server closes first), shuts the write side, and reads the
 * answer into a malloc'd buffer until EOF or READ_MS. */
static char *exchange(const uint8_t *data, size_t size, size_t *outlen) {
    int fd = dial();
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap + 1);
    FUZZ_CHECK(buf != NULL, "no memory");
    double end = now_ms() + READ_MS;
    for (;;) {
        int left = (int)(end - now_ms());
        if (left <= 0) break;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            FUZZ_CHECK(buf != NULL, "no memory");
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *outlen = len;
    return buf;
}

/* The value of header `name` within the header block [h, end), copied into v. */
static int header(const char *h, const char *end, const char *name, char *v, size_t cap) {
    size_t nl = strlen(name);
    for (const char *l = h; l < end;) {
        const char *e = memchr(l, '\n', (size_t)(end - l));
        if (e == NULL) e = end;
        if ((size_t)(e - l) > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *s = l + nl + 1;
            while (s < e && (*s == ' ' || *s == '\t')) s++;
            size_t n = (size_t)(e - s);
            while (n && (s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
            if (n >= cap) n = cap - 1;
            memcpy(v, s, n);
            v[n] = '\0';
            return 1;
        }
        l = e + 1;
    }
    return 0;
}

/* Walks the responses in buf; stops at the first one whose length it cannot know. */
static void check_responses(const char *buf, size_t len) {
    size_t off = 0;
    while (off < len) {
        const char *p = buf + off;
        size_t left = len - off;
        FUZZ_CHECK(left >= 13 && (memcmp(p, "HTTP/1.1 ", 9) == 0 || memcmp(p, "HTTP/1.0 ", 9) == 0),
                   "not a status line at byte %zu: '%.40s'", off, p);
        int st = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        FUZZ_CHECK(st >= 100 && st <= 599 && p[12] == ' ', "bad status line '%.20s'", p);
        const char *he = strstr(p, "\r\n\r\n");
        if (he == NULL) return; /* headers cut by the read deadline */
        char v[64];
        if (!header(p, he, "Content-Length", v, sizeof v)) return; /* chunked or to EOF */
        size_t blen = strtoul(v, NULL, 10);
        const char *body = he + 4;
        if ((size_t)(buf + len - body) < blen) return; /* cut by a fault or the deadline */
        char ct[64] = "";
        /* No Content-Type: one of libmicrohttpd's built-in error pages, after which it closes
           the connection; 0.9.75 sends the head of some twice (an empty Content-Length value:
           corpus http_double_head), so nothing after one is framed reliably. */
        if (!header(p, he, "Content-Type", ct, sizeof ct)) return;
        if (st == 400 && strncmp(ct, "application/json", 16) == 0) {
            char *b = fuzz_strndup(body, blen);
            cJSON *j = cJSON_Parse(b);
            FUZZ_CHECK(cJSON_IsObject(j), "400 body is not a JSON object: %.200s", b);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            FUZZ_CHECK(cJSON_IsObject(e), "400 without an error object: %.200s", b);
            FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")),
                       "400 error without a message: %.200s", b);
            const cJSON *param = cJSON_GetObjectItemCaseSensitive(e, "param");
            FUZZ_CHECK(param == NULL || cJSON_IsString(param) || cJSON_IsNull(param),
                       "400 param neither a string nor null: %.200s", b);
            cJSON_Delete(j);
            free(b);
        }
        off = (size_t)(body - buf) + blen;
    }
}

static void start_server(void) {
    struct mock_options o;
    char err[256] = "";
    mock_options_init(&o);
    o.quiet = 1;
    o.config_text = BASE_CONFIG;
    FUZZ_CHECK(mock_server_start(&o, &srv, err, sizeof err) == 0, "start: %s", err);
    static const char get[] = "GET /admin/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    size_t n;
    char *r = exchange((const uint8_t *)get, sizeof get - 1, &n);
    const char *b = strstr(r, "\r\n\r\n");
    FUZZ_CHECK(b != NULL && strncmp(r, "HTTP/1.1 200", 12) == 0, "GET /admin/config: %.80s", r);
    snprintf(base_json, sizeof base_json, "%s", b + 4);
    free(r);
    atexit(stop_server);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (srv == NULL) start_server();
    size_t n;
    char *r = exchange(data, size, &n);
    check_responses(r, n);
    if (getenv("FUZZ_MOCK_HTTP_SHOW")) fprintf(stderr, "[%zu in, %zu out] %.60s\n", size, n, r);
    free(r);
    /* Put back what the input may have changed through the admin routes. */
    char err[256];
    FUZZ_CHECK(mock_server_configure(srv, base_json, err, sizeof err) == 0, "restore: %s", err);
    FUZZ_CHECK(mock_server_script_faults(srv, "clear", err, sizeof err) == 0, "clear: %s", err);
    static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    r = exchange((const uint8_t *)health, sizeof health - 1, &n);
    FUZZ_CHECK(strncmp(r, "HTTP/1.1 200", 12) == 0, "server stopped answering: '%.80s'", r);
    free(r);
    return 0;
}
