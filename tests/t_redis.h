/*
 * t_redis.h - starts a real redis-server for the fleet tests (no mock of Redis): a fresh
 * directory from mkdtemp holding its config, log and unix socket, TCP on a free loopback port,
 * no persistence. t_redis_start waits until it answers PING; t_redis_kill sends SIGKILL (a crash
 * mid-run) and keeps the directory so t_redis_restart brings the same server address back;
 * t_redis_stop ends it and removes the directory.
 *
 * Header-only (static functions) because tests/CMakeLists.txt globs only test_*.c: include it
 * from the test files that need it. Needs redis-server on PATH (scripts/deps installs it).
 */
#ifndef T_REDIS_H
#define T_REDIS_H

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cx/clock.h"
#include "t_util.h"

struct t_redis {
    pid_t pid;
    char *dir;           /* malloc'd by t_tmpdir */
    int port;
    char sock[256];      /* unix socket path */
    char conf[256];
    char url[320];       /* redis://127.0.0.1:port */
    char unix_url[320];  /* unix://<sock> */
};

/* A loopback port that was free a moment ago (the kernel's pick for port 0). */
static inline int t_redis_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* 1 when the server at r answers PING (any reply, even NOAUTH) on its unix socket. */
static inline int t_redis_answers(const struct t_redis *r) {
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    if (c == NULL) return 0;
    int ok = 0;
    if (!c->err) {
        redisReply *rep = redisCommand(c, "PING");
        if (rep != NULL) {
            ok = rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_ERROR;
            /* LOADING means not ready yet. */
            if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "LOADING", 7) == 0) ok = 0;
            freeReplyObject(rep);
        }
    }
    redisFree(c);
    return ok;
}

static inline int t_redis_spawn(struct t_redis *r) {
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        execlp("redis-server", "redis-server", r->conf, (char *)NULL);
        _exit(127);
    }
    uint64_t deadline = t_deadline_ms(5000);
    while (!cx_deadline_expired(deadline)) {
        if (t_redis_answers(r)) return 1;
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) { /* exited: port taken, or no binary */
            r->pid = -1;
            return 0;
        }
        cx_sleep_ns(5 * CX_NSEC_PER_MSEC);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
    return 0;
}

/* Starts a server; `extra` (may be NULL) is appended to its config, e.g. "requirepass x\n". */
static inline void t_redis_start(struct t_redis *r, const char *extra) {
    memset(r, 0, sizeof *r);
    r->dir = t_tmpdir("redis");
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    snprintf(r->conf, sizeof r->conf, "%s/redis.conf", r->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = t_redis_free_port();
        FILE *f = fopen(r->conf, "w");
        assert_non_null(f);
        fprintf(f, "port %d\nbind 127.0.0.1\nunixsocket %s\nunixsocketperm 700\n"
                   "daemonize no\nsave \"\"\nappendonly no\ndir %s\nlogfile %s/redis.log\n"
                   "databases 4\n%s",
                r->port, r->sock, r->dir, r->dir, extra ? extra : "");
        fclose(f);
        if (t_redis_spawn(r)) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d", r->port);
            snprintf(r->unix_url, sizeof r->unix_url, "unix://%s", r->sock);
            return;
        }
    }
    fail_msg("redis-server did not start (is it installed? see %s/redis.log)", r->dir);
}

/* SIGKILL: the server dies mid-run; the directory and config stay for t_redis_restart. */
static inline void t_redis_kill(struct t_redis *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = -1;
    unlink(r->sock);
}

/* Starts the same server (port, socket, config) again, empty. */
static inline void t_redis_restart(struct t_redis *r) {
    for (int attempt = 0; attempt < 20; attempt++) {
        if (t_redis_spawn(r)) return;
        cx_sleep_ns(50 * CX_NSEC_PER_MSEC);
    }
    fail_msg("redis-server did not restart on port %d (see %s/redis.log)", r->port, r->dir);
}

static inline void t_redis_stop(struct t_redis *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = -1;
    if (r->dir) {
        t_rmrf(r->dir);
        free(r->dir);
        r->dir = NULL;
    }
}

/* Runs a command on the server with a plain hiredis connection (the test's own view of the
 * data, independent of the code under test). The reply is the caller's to free. */
static inline redisReply *t_redis_cmd(const struct t_redis *r, const char *fmt, ...) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    redisFree(c);
    return rep;
}

/* Runs a command and expects it to succeed (any non-error reply). */
static inline void t_redis_do(const struct t_redis *r, const char *fmt, ...) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", rep->str);
    freeReplyObject(rep);
    redisFree(c);
}

#endif /* T_REDIS_H */
