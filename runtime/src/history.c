/*
 * history.c - the installation_history table: schema, inserts through the pool's writer and
 * newest-first listing through a pooled reader.
 *
 * This module only stores and reads rows; it does not decide what to record (the pipeline
 * does) and never updates or deletes rows.
 */
#include "cx/history.h"

#include <string.h>

#include "cx/clock.h"
#include "cx_internal.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS installation_history ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
    " request TEXT NOT NULL,"
    " plan_json TEXT,"
    " validation_json TEXT,"
    " executed TEXT NOT NULL CHECK (executed IN ('dry-run', 'simulated', 'real', 'refused')),"
    " parse_s REAL NOT NULL DEFAULT 0, llm_s REAL NOT NULL DEFAULT 0,"
    " merge_s REAL NOT NULL DEFAULT 0, apt_s REAL NOT NULL DEFAULT 0,"
    " total_s REAL NOT NULL DEFAULT 0,"
    " status INTEGER NOT NULL DEFAULT 0,"
    " commands_run INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS installation_history_created"
    " ON installation_history(created_at);";

/* Does installation_history have a column named `name`? 1, 0, or a negative CX_E*. */
static int has_column(sqlite3 *db, const char *name, struct cx_errinfo *ei) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('installation_history') WHERE name = ?1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return cx_pool_sqlite_error(db, rc, "reading the history table's columns", ei);
    rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int out = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0
                                   : cx_pool_sqlite_error(db, rc, "reading the history table's columns", ei);
    sqlite3_finalize(st);
    return out;
}

/* Creates the schema, and adds the columns a table made by an older version lacks. One write
 * (one transaction holding SQLite's write lock), so two processes cannot both add a column. */
static int schema_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    (void)arg;
    int rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return cx_pool_sqlite_error(db, rc, "creating the installation_history table", ei);
    int has = has_column(db, "commands_run", ei);
    if (has < 0) return has;
    if (!has) {
        rc = sqlite3_exec(db, "ALTER TABLE installation_history ADD COLUMN commands_run INTEGER NOT NULL DEFAULT 0",
                          NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return cx_pool_sqlite_error(db, rc, "adding the commands_run column to installation_history", ei);
    }
    return 0;
}

int cx_history_init(struct cx_pool *pool, struct cx_errinfo *ei) {
    if (pool == NULL) return cx__err(ei, CX_EINVAL, "cx_history_init: pool is NULL");
    return cx_pool_write(pool, schema_fn, NULL, ei);
}

struct insert {
    const struct cx_history_entry *e;
    int64_t id;
};

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static int insert_fn(sqlite3 *db, void *arg, struct cx_errinfo *ei) {
    struct insert *in = arg;
    const struct cx_history_entry *e = in->e;
    sqlite3_stmt *st = NULL;
    const char *sql =
        e->created_at
            ? "INSERT INTO installation_history (request, plan_json, validation_json, executed,"
              " parse_s, llm_s, merge_s, apt_s, total_s, status, commands_run, created_at)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            : "INSERT INTO installation_history (request, plan_json, validation_json, executed,"
              " parse_s, llm_s, merge_s, apt_s, total_s, status, commands_run)"
              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return cx_pool_sqlite_error(db, rc, "preparing the history insert", ei);
    rc = sqlite3_bind_text(st, 1, e->request, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = bind_text_or_null(st, 2, e->plan_json);
    if (rc == SQLITE_OK) rc = bind_text_or_null(st, 3, e->validation_json);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, e->executed, -1, SQLITE_TRANSIENT);
    const double d[5] = {e->parse_s, e->llm_s, e->merge_s, e->apt_s, e->total_s};
    for (int i = 0; i < 5 && rc == SQLITE_OK; i++) rc = sqlite3_bind_double(st, 5 + i, d[i]);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 10, e->status);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 11, e->commands_run);
    if (rc == SQLITE_OK && e->created_at) rc = sqlite3_bind_text(st, 12, e->created_at, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int out = 0;
    if (rc != SQLITE_DONE) out = cx_pool_sqlite_error(db, rc, "inserting a history row", ei);
    else in->id = sqlite3_last_insert_rowid(db);
    sqlite3_finalize(st);
    return out;
}

int cx_history_record(struct cx_pool *pool, const struct cx_history_entry *e, int64_t *id_out,
                      struct cx_errinfo *ei) {
    if (pool == NULL || e == NULL || e->request == NULL)
        return cx__err(ei, CX_EINVAL, "cx_history_record: %s is NULL",
                       pool == NULL ? "pool" : e == NULL ? "e" : "e->request");
    static const char *const modes[] = {"dry-run", "simulated", "real", "refused"};
    int ok = 0;
    for (size_t i = 0; e->executed && i < 4; i++) ok |= strcmp(e->executed, modes[i]) == 0;
    if (!ok)
        return cx__err(ei, CX_EINVAL,
                       "executed must be dry-run, simulated, real or refused, got '%.40s'",
                       e->executed ? e->executed : "(null)");
    struct insert in = {e, 0};
    int rc = cx_pool_write(pool, insert_fn, &in, ei);
    if (rc < 0) return rc;
    if (id_out) *id_out = in.id;
    return 0;
}

void cx_history_entries_free(struct cx_history_entry *e, size_t n) {
    if (!e) return;
    for (size_t i = 0; i < n; i++) {
        cx__free(e[i].created_at);
        cx__free(e[i].request);
        cx__free(e[i].plan_json);
        cx__free(e[i].validation_json);
        cx__free(e[i].executed);
    }
    cx__free(e);
}

/* Copies a text column; a NULL column stays NULL. Returns false on allocation failure. */
static int col_dup(sqlite3_stmt *st, int i, char **out) {
    const unsigned char *t = sqlite3_column_text(st, i);
    if (t == NULL) {
        *out = NULL;
        return sqlite3_errcode(sqlite3_db_handle(st)) != SQLITE_NOMEM;
    }
    *out = cx__strndup((const char *)t, (size_t)sqlite3_column_bytes(st, i));
    return *out != NULL;
}

int cx_history_list(struct cx_pool *pool, size_t limit, struct cx_history_entry **out, size_t *n,
                    struct cx_errinfo *ei) {
    if (out) *out = NULL;
    if (n) *n = 0;
    if (pool == NULL || out == NULL || n == NULL)
        return cx__err(ei, CX_EINVAL, "cx_history_list: %s is NULL",
                       pool == NULL ? "pool" : out == NULL ? "out" : "n");
    sqlite3 *db = NULL;
    int rc = cx_pool_checkout(pool, CX_DEADLINE_NONE, &db, ei);
    if (rc < 0) return rc;
    sqlite3_stmt *st = NULL;
    struct cx_history_entry *v = NULL;
    size_t cnt = 0, cap = 0;
    int src = sqlite3_prepare_v2(db,
                                 "SELECT id, created_at, request, plan_json, validation_json,"
                                 " executed, parse_s, llm_s, merge_s, apt_s, total_s, status,"
                                 " commands_run FROM installation_history ORDER BY id DESC LIMIT ?1",
                                 -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = cx_pool_sqlite_error(db, src, "reading the installation history", ei);
        goto done;
    }
    sqlite3_bind_int64(st, 1, limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct cx_history_entry *nv = cx__realloc(v, ncap * sizeof *nv);
            if (nv == NULL) goto nomem;
            v = nv;
            cap = ncap;
        }
        struct cx_history_entry *e = &v[cnt];
        memset(e, 0, sizeof *e);
        cnt++;
        e->id = sqlite3_column_int64(st, 0);
        if (!col_dup(st, 1, &e->created_at) || !col_dup(st, 2, &e->request) ||
            !col_dup(st, 3, &e->plan_json) || !col_dup(st, 4, &e->validation_json) ||
            !col_dup(st, 5, &e->executed))
            goto nomem;
        e->parse_s = sqlite3_column_double(st, 6);
        e->llm_s = sqlite3_column_double(st, 7);
        e->merge_s = sqlite3_column_double(st, 8);
        e->apt_s = sqlite3_column_double(st, 9);
        e->total_s = sqlite3_column_double(st, 10);
        e->status = sqlite3_column_int(st, 11);
        e->commands_run = sqlite3_column_int(st, 12);
    }
    if (src != SQLITE_DONE) {
        rc = cx_pool_sqlite_error(db, src, "reading the installation history", ei);
        goto done;
    }
    rc = 0;
    goto done;
nomem:
    rc = cx__err(ei, CX_ENOMEM, "out of memory reading %zu history rows", cnt);
done:
    sqlite3_finalize(st);
    cx_pool_checkin(pool, db);
    if (rc < 0) {
        cx_history_entries_free(v, cnt);
        return rc;
    }
    if (cnt == 0) {
        cx__free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    return 0;
}
