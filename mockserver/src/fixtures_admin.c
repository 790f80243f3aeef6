/*
 * fixtures_admin.c - steering the fixtures while the server runs: GET /admin/fixtures (what is
 * loaded, each rule's call count), POST /admin/fixtures/reload (re-read the file or directory,
 * or {"path": P} to switch to another), PUT /admin/fixtures (the body is the new fixture JSON),
 * DELETE /admin/fixtures (none), and the public mock_server_load_fixtures /
 * mock_server_set_fixtures behind them. A failed load changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"

int mock_server_load_fixtures(struct mock_server *s, const char *path, char *err,
                              size_t errlen)
{
    struct mock_fx_state *st = s->fx;
    char src[512];
    if (st->rec)
        return mock__err(err, errlen, "fixtures: the server is recording");
    pthread_mutex_lock(&st->mu);
    snprintf(src, sizeof src, "%s", path && *path ? path : st->source);
    pthread_mutex_unlock(&st->mu);
    if (!src[0])
        return mock__err(err, errlen, "fixtures: no file to reload (none was given)");
    struct stat sb;
    int is_dir = stat(src, &sb) == 0 && S_ISDIR(sb.st_mode);
    struct mock_fixtures *f;
    if (mock__fx_load_path(src, is_dir, &f, err, errlen) < 0)
        return -1;
    pthread_mutex_lock(&st->mu);
    snprintf(st->source, sizeof st->source, "%s", src);
    st->source_is_dir = is_dir;
    pthread_mutex_unlock(&st->mu);
    mock__fx_install(st, f);
    return 0;
}

int mock_server_set_fixtures(struct mock_server *s, const char *json, size_t len,
                             const char *name, char *err, size_t errlen)
{
    struct mock_fx_state *st = s->fx;
    if (st->rec)
        return mock__err(err, errlen, "fixtures: the server is recording");
    struct mock_fixtures *f;
    if (mock__fx_parse(json, len, name && *name ? name : "(fixtures)", &f, err, errlen) < 0)
        return -1;
    mock__fx_install(st, f);
    return 0;
}

static enum MHD_Result listing(struct req *r)
{
    struct mock_fx_state *st = r->srv->fx;
    struct mock_fixtures *f = mock__fx_acquire(st);
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&st->mu);
    cJSON_AddStringToObject(j, "source", f ? f->source : st->source);
    pthread_mutex_unlock(&st->mu);
    cJSON_AddNumberToObject(j, "generation", f ? (double)f->generation : 0);
    cJSON_AddBoolToObject(j, "strict", st->strict);
    cJSON_AddBoolToObject(j, "recording", st->rec != NULL);
    cJSON *rules = cJSON_AddArrayToObject(j, "rules");
    for (size_t i = 0; f && rules && i < f->n; i++) {
        const struct mock_fx_rule *ru = &f->rules[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(rules, o);
        cJSON_AddNumberToObject(o, "index", (double)i);
        cJSON_AddStringToObject(o, "name", ru->name);
        if (ru->route >= 0)
            cJSON_AddStringToObject(o, "route", mock__route_names[ru->route]);
        else
            cJSON_AddNullToObject(o, "route");
        cJSON_AddNumberToObject(o, "replies", (double)ru->nreplies);
        cJSON_AddNumberToObject(o, "calls", (double)atomic_load(&ru->calls));
        if (f->files)
            cJSON_AddStringToObject(o, "file", f->files[f->file_of[i]]);
    }
    mock__fx_unref(f);
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    char *body = p ? strdup(p) : NULL; /* MHD frees with free(), cJSON with its hook */
    cJSON_free(p);
    return mock__send_json_str(r, 200, body);
}

static enum MHD_Result refused(struct req *r, const char *err)
{
    return mock__send_json_str(r, 400, mock__json_obj_err(err));
}

enum MHD_Result mock__fx_admin(struct req *r, const char *url, const char *method)
{
    struct mock_server *s = r->srv;
    char err[512];
    int reload = !strcmp(url, "/admin/fixtures/reload");
    if (!reload && strcmp(url, "/admin/fixtures")) {
        snprintf(err, sizeof err, "Invalid URL (%s %.120s)", method, url);
        return mock__send_error(r, 404, "invalid_request_error", err, NULL, NULL, -1);
    }
    if (reload) {
        if (strcmp(method, "POST"))
            return mock__send_error(r, 405, "invalid_request_error", "Method not allowed",
                                    NULL, NULL, -1);
        const char *path = NULL;
        cJSON *j = NULL;
        if (r->body.len) {
            j = cJSON_ParseWithLength(r->body.p, r->body.len);
            const cJSON *pv = cJSON_GetObjectItemCaseSensitive(j, "path");
            if (!cJSON_IsObject(j) || (pv && !cJSON_IsString(pv)) ||
                (j->child && (!pv || j->child->next))) {
                cJSON_Delete(j);
                return refused(r, "body: expected nothing or {\"path\": \"FILE\"}");
            }
            path = cJSON_GetStringValue(pv);
        }
        int rc = mock_server_load_fixtures(s, path, err, sizeof err);
        cJSON_Delete(j);
        if (rc < 0)
            return refused(r, err);
        return listing(r);
    }
    if (!strcmp(method, "GET"))
        return listing(r);
    if (!strcmp(method, "PUT") || !strcmp(method, "POST")) {
        if (mock_server_set_fixtures(s, r->body.p ? r->body.p : "", r->body.len, "(admin PUT)",
                                     err, sizeof err) < 0)
            return refused(r, err);
        return listing(r);
    }
    if (!strcmp(method, "DELETE")) {
        if (s->fx->rec)
            return refused(r, "fixtures: the server is recording");
        mock__fx_install(s->fx, NULL);
        return listing(r);
    }
    return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL,
                            -1);
}
