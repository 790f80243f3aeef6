/*
 * crash_writer.c - the two halves of the kill -9 durability test (scripts/reliability).
 *
 *   crash_writer write --db PATH --acks FILE --writer ID [--threads T] [--seed S]
 *     Opens PATH through the runtime's pool (cx_pool, WAL, one group-committing writer) and
 *     writes rows (writer ID, seq, payload) from T threads (default 4), half with
 *     cx_pool_write, half with cx_pool_write_async, until it is killed. A write is recorded in
 *     FILE ("ID SEQ", one write(2) per line, O_APPEND) only after the pool reported it
 *     committed: that line is the acknowledgement a caller would act on. A write that fails is
 *     recorded as "ERR ID SEQ NAME message" (a CX_EBUSY there is an SQLITE_BUSY reaching a
 *     caller) and the writer goes on. It is meant to die by SIGKILL at any moment, opening,
 *     recovering the WAL, in the middle of a transaction or of an ack.
 *   crash_writer check --db PATH FILE...
 *     Opens PATH through the pool and exits 0 only when PRAGMA integrity_check says "ok",
 *     every acknowledged (ID, SEQ) of every FILE is in the table (none lost), no line is an
 *     ERR and every line parses. Prints one line with the counts.
 *
 * What it does not do: simulate power loss (synchronous=NORMAL promises survival of a process
 * crash, not of the machine), or start or kill processes (the script does).
 *
 * DESIGN. write: T writer threads (blocking writes wait for their commit; async ones are acked
 * from the pool's writer thread in its done callback) share the pool and the ack descriptor;
 * each write(2) of an ack line is one call, so lines never interleave. There is no shutdown:
 * SIGKILL is the only way out.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cx/clock.h"
#include "cx/dbpool.h"
#include "s_util.h"

static struct {
    struct cx_pool *pool;
    int acks_fd;
    long writer;
    _Atomic long next_seq;
    _Atomic long in_flight_async;
    uint64_t seed;
} g;

struct row {
    long seq;
    char payload[160];
};

static void usage(const char *why) {
    fprintf(stderr, "crash_writer: %s\n"
            "usage: crash_writer write --db PATH --acks FILE --writer ID [--threads T] [--seed S]\n"
            "       crash_writer check --db PATH FILE...\n", why);
    exit(2);
}

static long parse_long(const char *flag, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "crash_writer: %s '%s': want a whole number from %ld to %ld\n", flag, v, lo, hi);
        exit(2);
    }
    return x;
}

static void ack_line(const char *line) {
    size_t n = strlen(line);
    if (write(g.acks_fd, line, n) != (ssize_t)n) {
        fprintf(stderr, "crash_writer: cannot write an ack: %s\n", strerror(errno));
        _exit(3);
    }
}

static void record(int rc, long seq, const struct cx_errinfo *ei) {
    char line[400];
    if (rc == 0)
        snprintf(line, sizeof line, "%ld %ld\n", g.writer, seq);
    else
        snprintf(line, sizeof line, "ERR %ld %ld %s %s\n", g.writer, seq, cx_err_name(rc),
                 ei != NULL ? ei->msg : "");
    ack_line(line);
}

static int insert_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct row *r = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "INSERT INTO acked(writer, seq, payload) VALUES (?1, ?2, ?3)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return cx_pool_sqlite_error(db, rc, "prepare", ei);
    sqlite3_bind_int64(st, 1, g.writer);
    sqlite3_bind_int64(st, 2, r->seq);
    sqlite3_bind_text(st, 3, r->payload, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cx_pool_sqlite_error(db, rc, "insert", ei);
    return 0;
}

static void async_done(int rc, void *arg) {
    struct row *r = arg;
    struct cx_errinfo ei = {0};
    if (rc < 0) snprintf(ei.msg, sizeof ei.msg, "async write failed");
    record(rc, r->seq, &ei);
    free(r);
    atomic_fetch_sub(&g.in_flight_async, 1);
}

static void *writer_main(void *arg) {
    uint64_t rng = g.seed + (uint64_t)(long)arg * 0x9E3779B97F4A7C15ULL + 1;
    for (;;) {
        struct row *r = malloc(sizeof *r);
        if (r == NULL) _exit(3);
        r->seq = atomic_fetch_add(&g.next_seq, 1);
        uint64_t x = s_splitmix64(&rng);
        int len = 20 + (int)(x % 130);
        for (int i = 0; i < len; i++) r->payload[i] = (char)('a' + (s_splitmix64(&rng) % 26));
        r->payload[len] = '\0';
        struct cx_errinfo ei = {0};
        if ((x & (1u << 20)) != 0 && atomic_load(&g.in_flight_async) < 64) {
            atomic_fetch_add(&g.in_flight_async, 1);
            int rc = cx_pool_write_async(g.pool, insert_fn, r, async_done, &ei);
            if (rc < 0) {
                record(rc, r->seq, &ei);
                free(r);
                atomic_fetch_sub(&g.in_flight_async, 1);
            }
        } else {
            int rc = cx_pool_write(g.pool, insert_fn, r, &ei);
            record(rc, r->seq, &ei);
            free(r);
        }
    }
    return NULL;
}

static struct cx_pool *open_pool(const char *path) {
    struct cx_pool_options o;
    cx_pool_options_init(&o);
    o.path = path;
    o.readers = 1;
    o.busy_timeout_ms = (int)s_scaled_ms(30000); /* several writer processes share the lock */
    struct cx_pool *p;
    struct cx_errinfo ei = {0};
    if (cx_pool_new(&o, &p, &ei) < 0) {
        fprintf(stderr, "crash_writer: open %s: %s\n", path, ei.msg);
        return NULL;
    }
    if (cx_pool_exec(p, "CREATE TABLE IF NOT EXISTS acked(writer INTEGER NOT NULL, seq INTEGER "
                     "NOT NULL, payload TEXT NOT NULL, PRIMARY KEY(writer, seq))", &ei) < 0) {
        fprintf(stderr, "crash_writer: schema: %s: %s\n", cx_err_name(ei.code), ei.msg);
        return NULL;
    }
    return p;
}

static int do_write(int argc, char **argv) {
    const char *db = NULL, *acks = NULL;
    long threads = 4;
    g.writer = -1;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) usage("a flag without its value");
        if (!strcmp(argv[i], "--db")) db = argv[i + 1];
        else if (!strcmp(argv[i], "--acks")) acks = argv[i + 1];
        else if (!strcmp(argv[i], "--writer")) g.writer = parse_long("--writer", argv[i + 1], 0, 1L << 40);
        else if (!strcmp(argv[i], "--threads")) threads = parse_long("--threads", argv[i + 1], 1, 256);
        else if (!strcmp(argv[i], "--seed")) g.seed = (uint64_t)parse_long("--seed", argv[i + 1], 0, 1L << 62);
        else usage("unknown flag");
    }
    if (db == NULL || acks == NULL || g.writer < 0) usage("write needs --db, --acks and --writer");
    g.acks_fd = open(acks, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g.acks_fd < 0) {
        fprintf(stderr, "crash_writer: %s: %s\n", acks, strerror(errno));
        return 2;
    }
    /* An open or schema failure is a failure a caller would see: record it for the checker. */
    g.pool = open_pool(db);
    if (g.pool == NULL) {
        ack_line("ERR open failed (see the writer's stderr)\n");
        return 1;
    }
    pthread_t th;
    for (long t = 0; t < threads; t++) {
        if (pthread_create(&th, NULL, writer_main, (void *)t) != 0) {
            fprintf(stderr, "crash_writer: cannot start thread %ld\n", t);
            return 2;
        }
    }
    for (;;) pause(); /* until SIGKILL */
}

static int do_check(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[2], "--db") != 0) usage("check needs --db PATH and ack files");
    struct cx_pool *p = open_pool(argv[3]);
    if (p == NULL) return 1;
    sqlite3 *db;
    struct cx_errinfo ei = {0};
    if (cx_pool_checkout(p, CX_DEADLINE_NONE, &db, &ei) < 0) {
        fprintf(stderr, "crash_writer: checkout: %s\n", ei.msg);
        return 1;
    }
    int bad = 0;
    sqlite3_stmt *st;
    char integrity[200] = "(no answer)";
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(integrity, sizeof integrity, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    if (strcmp(integrity, "ok") != 0) bad = 1;
    long rows = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM acked", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) rows = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    long acks = 0, lost = 0, errs = 0, busy = 0, garbled = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM acked WHERE writer = ?1 AND seq = ?2", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "crash_writer: prepare: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    for (int f = 4; f < argc; f++) {
        FILE *fp = fopen(argv[f], "r");
        if (fp == NULL) {
            fprintf(stderr, "crash_writer: %s: %s\n", argv[f], strerror(errno));
            bad = 1;
            continue;
        }
        char line[512];
        while (fgets(line, sizeof line, fp) != NULL) {
            long w, s;
            char tail;
            if (!strncmp(line, "ERR ", 4)) {
                errs++;
                if (strstr(line, "EBUSY") != NULL) busy++;
                if (errs <= 5) fprintf(stderr, "crash_writer: %s: a caller saw: %s", argv[f], line);
                continue;
            }
            if (sscanf(line, "%ld %ld%c", &w, &s, &tail) != 3 || tail != '\n') {
                garbled++;
                continue;
            }
            acks++;
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, w);
            sqlite3_bind_int64(st, 2, s);
            if (sqlite3_step(st) != SQLITE_ROW) {
                if (++lost <= 5) fprintf(stderr, "crash_writer: acknowledged write %ld/%ld is not in the table\n", w, s);
            }
        }
        fclose(fp);
    }
    sqlite3_finalize(st);
    cx_pool_checkin(p, db);
    cx_pool_free(p);
    if (lost || errs || garbled || rows < acks) bad = 1;
    printf("crash_writer: check: integrity_check %s, %ld rows, %ld acknowledged writes, %ld lost, "
           "%ld errors reported to callers (%ld SQLITE_BUSY), %ld unreadable ack lines: %s\n",
           integrity, rows, acks, lost, errs, busy, garbled, bad ? "FAILED" : "ok");
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 2) usage("want a mode: write or check");
    if (!strcmp(argv[1], "write")) return do_write(argc, argv);
    if (!strcmp(argv[1], "check")) return do_check(argc, argv);
    usage("unknown mode");
    return 2;
}
