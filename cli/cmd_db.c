/*
 * cli/cmd_db.c - `cx cache stats|clear` and `cx history`: the database only, no LLM.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_internal.h"
#include "cx/cache.h"
#include "cx/dbpool.h"
#include "cx/history.h"

/* ---- cache and history: the database only, no LLM ---- */

/* Copies src to dst (0, or -1 with errno set). */
static int copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (in == NULL)
        return -1;
    FILE *out = fopen(dst, "wb");
    if (out == NULL) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0)
        bad = fwrite(buf, 1, n, out) != n;
    bad |= ferror(in);
    fclose(in);
    bad |= fclose(out) != 0;
    return bad ? -1 : 0;
}

/* A data directory cx cannot write: SQLite cannot open a WAL database there (its -shm index
 * must be created), and neither can the cache's schema check, so the reading commands work on
 * a private copy (with its -wal, which holds the latest commits) in $TMPDIR, removed at exit.
 * Sets *path to the copy. */
static int read_only_copy(struct ctx *c, char *path, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(c->ro_dir, sizeof c->ro_dir, "%s/cx-readonly-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(c->ro_dir) == NULL) {
        int e = errno;
        c->ro_dir[0] = '\0';
        return cx__cli_fail(c, CX_EXIT_ERROR, "data directory of '%s' is not writable, and no "
                            "private copy could be made to read it: %s", c->db_path, strerror(e));
    }
    char wal[PATH_MAX + 8], to[PATH_MAX + 48];
    snprintf(path, n, "%s/%s", c->ro_dir, CX_DB_FILE);
    snprintf(wal, sizeof wal, "%s-wal", c->db_path);
    snprintf(to, sizeof to, "%s-wal", path);
    if (copy_file(c->db_path, path) < 0 || (access(wal, F_OK) == 0 && copy_file(wal, to) < 0))
        return cx__cli_fail(c, CX_EXIT_ERROR, "cannot read '%s': %s", c->db_path,
                            strerror(errno));
    cx__cli_note(c, "the data directory is read-only; reading '%s' as it is", c->db_path);
    return 0;
}

/* Removes the private copy, if one was made. */
void cx__cli_read_only_done(struct ctx *c)
{
    if (c->ro_dir[0] == '\0')
        return;
    const char *names[] = {CX_DB_FILE, CX_DB_FILE "-wal", CX_DB_FILE "-shm"};
    char p[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", c->ro_dir, names[i]);
        (void)unlink(p);
    }
    (void)rmdir(c->ro_dir);
    c->ro_dir[0] = '\0';
}

/* Opens the database, and the cache or the history's table in it; a corrupt file is set aside
 * (cx__cli_db_set_aside) and a fresh one opened, so `cache clear` and `history` work again. */
static int open_db(struct ctx *c, struct cx_pool **pool, struct cx_cache **cache)
{
    int rc = cx__cli_data_dir(c);
    if (rc != 0)
        return rc;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s", c->db_path);
    if (c->db_read_only && (rc = read_only_copy(c, path, sizeof path)) != 0)
        return rc;
    for (int attempt = 0;; attempt++) {
        struct cx_errinfo ei;
        memset(&ei, 0, sizeof ei);
        struct cx_pool_options po;
        cx_pool_options_init(&po);
        po.path = path;
        po.readers = c->cfg.db_pool_size > 0 ? c->cfg.db_pool_size : 1;
        const char *what = "";
        rc = cx_pool_new(&po, pool, &ei);
        if (rc == 0 && cache != NULL) {
            struct cx_cache_options co;
            cx_cache_options_init(&co);
            what = "cache in ";
            rc = cx_cache_new(*pool, &co, cache, &ei);
        } else if (rc == 0) {
            what = "history in ";
            rc = cx_history_init(*pool, &ei);
        }
        if (rc == 0)
            return 0;
        cx_pool_free(*pool);
        *pool = NULL;
        char msg[sizeof ei.msg + PATH_MAX + 16];
        if (*what)
            snprintf(msg, sizeof msg, "%s'%s': %s", what, c->db_path, ei.msg);
        else
            snprintf(msg, sizeof msg, "%s", ei.msg);
        if (rc != CX_ECORRUPT || attempt > 0 || c->db_read_only)
            return cx__cli_fail(c, CX_EXIT_ERROR, "%s", msg);
        if (cx__cli_db_set_aside(c, msg) < 0)
            return CX_EXIT_ERROR;
    }
}

int cx__cli_cache(struct ctx *c)
{
    c->read_only_ok = strcmp(c->a.pos[0], "stats") == 0;
    struct cx_pool *pool = NULL;
    struct cx_cache *cache = NULL;
    int rc = open_db(c, &pool, &cache);
    if (rc != 0)
        return rc;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    struct cx_cache_stats st;
    if (cx_cache_stats(cache, &st, &ei) < 0) {
        rc = cx__cli_fail(c, CX_EXIT_ERROR, "cache stats: %s", ei.msg);
        goto out;
    }
    if (strcmp(c->a.pos[0], "clear") == 0) {
        if (cx_cache_clear(cache, &ei) < 0) {
            rc = cx__cli_fail(c, CX_EXIT_ERROR, "cache clear: %s", ei.msg);
            goto out;
        }
        if (c->a.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "cleared", (double)st.entries);
            cJSON_AddStringToObject(o, "database", c->db_path);
            rc = cx__cli_emit_json(c, o, CX_EXIT_OK);
        } else {
            fprintf(c->out, "Cleared %zu cached answer%s from %s.\n", st.entries,
                    st.entries == 1 ? "" : "s", c->db_path);
        }
        goto out;
    }
    uint64_t total = st.hits + st.misses;
    double rate = total ? (double)st.hits / (double)total : 0.0;
    if (c->a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "entries", (double)st.entries);
        cJSON_AddNumberToObject(o, "hits", (double)st.hits);
        cJSON_AddNumberToObject(o, "misses", (double)st.misses);
        cJSON_AddNumberToObject(o, "hit_rate", rate);
        cJSON_AddStringToObject(o, "database", c->db_path);
        rc = cx__cli_emit_json(c, o, CX_EXIT_OK);
    } else {
        fprintf(c->out, "database: %s\nentries:  %zu\nhits:     %llu\nmisses:   %llu\n"
                        "hit rate: %.1f%%\n",
                c->db_path, st.entries, (unsigned long long)st.hits,
                (unsigned long long)st.misses, rate * 100.0);
    }
out:
    cx_cache_free(cache);
    cx_pool_free(pool);
    return rc;
}

static const char *status_name(int st)
{
    return st == 0 ? "ok" : st == CX_EREJECTED ? "refused" : st == CX_EFAILED ? "partial"
                                                                            : "failed";
}

/* A stored JSON text as a cJSON value (a string when it does not parse). */
static cJSON *json_or_string(const char *text)
{
    if (text == NULL)
        return cJSON_CreateNull();
    cJSON *v = cJSON_Parse(text);
    return v ? v : cJSON_CreateString(text);
}

static int history_list(struct ctx *c, struct cx_pool *pool)
{
    struct cx_history_entry *e = NULL;
    size_t n = 0;
    struct cx_errinfo ei;
    memset(&ei, 0, sizeof ei);
    if (cx_history_list(pool, (size_t)c->a.limit, &e, &n, &ei) < 0)
        return cx__cli_fail(c, CX_EXIT_ERROR, "history in '%s': %s", c->db_path, ei.msg);
    int rc = CX_EXIT_OK;
    if (c->a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *runs = cJSON_AddArrayToObject(o, "runs");
        for (size_t i = 0; i < n; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "id", (double)e[i].id);
            cJSON_AddStringToObject(r, "created_at", e[i].created_at ? e[i].created_at : "");
            cJSON_AddStringToObject(r, "request", e[i].request ? e[i].request : "");
            cJSON_AddItemToObject(r, "plan", json_or_string(e[i].plan_json));
            cJSON_AddItemToObject(r, "validation", json_or_string(e[i].validation_json));
            cJSON_AddStringToObject(r, "executed", e[i].executed ? e[i].executed : "");
            cJSON_AddStringToObject(r, "status", status_name(e[i].status));
            cJSON_AddNumberToObject(r, "commands_run", e[i].commands_run);
            struct cx_timings t = {e[i].parse_s, e[i].llm_s, e[i].merge_s, e[i].apt_s,
                                   e[i].total_s, 0};
            cJSON_AddItemToObject(r, "timings", cx__cli_json_timings(&t));
            cJSON_AddItemToArray(runs, r);
        }
        cJSON_AddStringToObject(o, "database", c->db_path);
        rc = cx__cli_emit_json(c, o, CX_EXIT_OK);
    } else if (n == 0) {
        fprintf(c->out, "No install runs recorded in %s.\n", c->db_path);
    } else {
        fprintf(c->out, "%6s  %-24s  %-8s  %-9s  %4s  %8s  %s\n", "ID", "WHEN (UTC)", "STATUS",
                "EXECUTED", "RAN", "TOTAL", "REQUEST");
        for (size_t i = 0; i < n; i++)
            fprintf(c->out, "%6lld  %-24s  %-8s  %-9s  %4d  %7.3fs  %s\n", (long long)e[i].id,
                    e[i].created_at ? e[i].created_at : "", status_name(e[i].status),
                    e[i].executed ? e[i].executed : "", e[i].commands_run, e[i].total_s,
                    e[i].request ? e[i].request : "");
    }
    cx_history_entries_free(e, n);
    return rc;
}

int cx__cli_history(struct ctx *c)
{
    c->read_only_ok = 1;
    struct cx_pool *pool = NULL;
    int rc = open_db(c, &pool, NULL);
    if (rc != 0)
        return rc;
    rc = history_list(c, pool);
    cx_pool_free(pool);
    return rc;
}
