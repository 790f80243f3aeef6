/*
 * admin.c - the routes that are not completions: /v1/models, /v1/messages/count_tokens, and the
 * admin API (/admin/config, /admin/reset, /admin/faults) that test suites use to steer the
 * server. The settings and fault-script parsers themselves are settings.c's and script.c's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "server_internal.h"

#define MODELS_JSON \
    "{\"object\":\"list\",\"data\":[%s],\"has_more\":false,\"first_id\":\"%s\",\"last_id\":\"%s\"}"

static void model_obj(struct mock_buf *b, const char *id)
{
    mock__buf_str(b, "{\"id\":");
    mock__buf_json_str(b, id, strlen(id));
    mock__buf_str(b, ",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"mock\","
                     "\"type\":\"model\",\"display_name\":");
    mock__buf_json_str(b, id, strlen(id));
    mock__buf_str(b, ",\"created_at\":\"2024-01-01T00:00:00Z\"}");
}

enum MHD_Result mock__models_reply(struct req *r, const char *url)
{
    struct mock_buf b = {0};
    char model[128];
    pthread_mutex_lock(&r->srv->mu);
    snprintf(model, sizeof model, "%s", r->srv->set.model);
    pthread_mutex_unlock(&r->srv->mu);
    if (strlen(url) > strlen("/v1/models/")) {
        model_obj(&b, url + strlen("/v1/models/"));
    } else {
        struct mock_buf m = {0};
        model_obj(&m, model);
        mock__buf_fmt(&b, MODELS_JSON, m.p ? m.p : "", model, model);
        mock__buf_free(&m);
    }
    if (b.oom) {
        mock__buf_free(&b);
        return MHD_NO;
    }
    return mock__send_body(r, 200, "application/json", b.p, b.len);
}

/* Checks the fields of a POST /admin/faults body; 0, or -1 with err naming the first problem
 * (an unknown field, a route or model that is not a string). */
static int faults_fields(const cJSON *j, char *err, size_t errlen)
{
    static const char *const known[] = {"script", "next", "fault", "clear", "route", "model"};
    for (const cJSON *it = j->child; it; it = it->next) {
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(it->string, known[k]))
            k++;
        if (k == sizeof known / sizeof known[0])
            return mock__err(err, errlen, "unknown field '%.60s' (script, next, fault, clear, "
                             "route, model)", it->string);
        if (k >= 4 && !cJSON_IsString(it) && !cJSON_IsNull(it))
            return mock__err(err, errlen, "%s: expected a string", known[k]);
    }
    return 0;
}

static enum MHD_Result admin_faults(struct req *r, const char *method)
{
    struct mock_server *s = r->srv;
    char err[256] = "";
    if (!strcmp(method, "DELETE")) {
        if (mock_server_script_faults(s, "clear", err, sizeof err) < 0)
            return MHD_NO;
    } else if (!strcmp(method, "POST")) {
        cJSON *j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
        int rc = -1;
        if (!j || !cJSON_IsObject(j)) {
            snprintf(err, sizeof err, "body: expected a JSON object with \"script\", "
                     "\"next\"+\"fault\" or \"clear\"");
        } else if (faults_fields(j, err, sizeof err) == 0) {
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "script");
            const cJSON *nx = cJSON_GetObjectItemCaseSensitive(j, "next");
            const cJSON *fa = cJSON_GetObjectItemCaseSensitive(j, "fault");
            const cJSON *cl = cJSON_GetObjectItemCaseSensitive(j, "clear");
            const char *route = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "route"));
            const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "model"));
            rc = 0;
            if (cJSON_IsTrue(cl))
                rc = mock_server_script_faults(s, "clear", err, sizeof err);
            if (rc == 0 && cJSON_IsString(sc))
                rc = mock_server_script_faults_for(s, sc->valuestring, route, model, err,
                                                   sizeof err);
            else if (rc == 0 && sc)
                rc = mock__err(err, sizeof err, "script: expected a string");
            if (rc == 0 && (nx || fa)) {
                char st[96];
                if (!cJSON_IsNumber(nx) || !cJSON_IsString(fa))
                    rc = mock__err(err, sizeof err, "next must be a number and fault a string");
                else {
                    snprintf(st, sizeof st, "next %.0f %.40s", nx->valuedouble, fa->valuestring);
                    rc = mock_server_script_faults_for(s, st, route, model, err, sizeof err);
                }
            }
            if (rc == 0 && !sc && !nx && !fa && !cJSON_IsTrue(cl))
                rc = mock__err(err, sizeof err, "body: expected \"script\", \"next\"+\"fault\" "
                               "or \"clear\"");
        }
        cJSON_Delete(j);
        if (rc < 0) {
            char *p = mock__json_obj_err(err);
            return mock__send_body(r, 400, "application/json", p, p ? strlen(p) : 0);
        }
    } else if (strcmp(method, "GET")) {
        return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL, -1);
    }
    struct mock_buf b = {0};
    pthread_mutex_lock(&s->mu);
    uint64_t pending = 0;
    for (size_t i = 0; i < s->script_n; i++)
        pending += s->script[i].count;
    mock__buf_fmt(&b, "{\"ok\":true,\"pending\":%llu,\"script\":[", (unsigned long long)pending);
    for (size_t i = 0; i < s->script_n; i++) {
        const struct script_item *it = &s->script[i];
        mock__buf_fmt(&b, "%s{\"next\":%u,\"fault\":\"%s\",\"route\":", i ? "," : "", it->count,
                      mock__fault_names[it->fault]);
        if (it->route >= 0)
            mock__buf_fmt(&b, "\"%s\"", mock__route_names[it->route]);
        else
            mock__buf_str(&b, "null");
        mock__buf_str(&b, ",\"model\":");
        if (it->model[0])
            mock__buf_json_str(&b, it->model, strlen(it->model));
        else
            mock__buf_str(&b, "null");
        mock__buf_str(&b, "}");
    }
    pthread_mutex_unlock(&s->mu);
    mock__buf_str(&b, "]}");
    char *p = mock__buf_take(&b);
    return mock__send_body(r, 200, "application/json", p, p ? strlen(p) : 0);
}

/* GET /admin/requests[?limit=N] (newest first), DELETE clears. */
static enum MHD_Result admin_requests(struct req *r, const char *method)
{
    if (!strcmp(method, "DELETE")) {
        mock__log_clear(&r->srv->log);
        return mock__send_static(r, 200, "application/json", "{\"ok\":true}");
    }
    if (strcmp(method, "GET"))
        return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL,
                                -1);
    size_t limit = MOCK_LOG_MAX;
    const char *ls = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (ls) {
        uint64_t u;
        if (mock__parse_u64(ls, &u) < 0)
            return mock__send_json_str(r, 400, mock__json_obj_err("limit: expected a "
                                                                  "non-negative integer"));
        if (u < limit)
            limit = (size_t)u;
    }
    return mock__send_json_str(r, 200, mock__log_json(&r->srv->log, limit));
}

enum MHD_Result mock__admin_request(struct req *r, const char *url, const char *method)
{
    struct mock_server *s = r->srv;
    if (!strcmp(url, "/admin/config")) {
        if (!strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
            char err[256];
            mock__buf_add(&r->body, "", 0); /* NUL-terminated even when empty */
            if (r->body.oom)
                return MHD_NO;
            if (mock_server_configure(s, r->body.p ? r->body.p : "", err, sizeof err) < 0)
                return mock__send_json_str(r, 400, mock__json_obj_err(err));
        } else if (strcmp(method, "GET")) {
            return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL,
                              -1);
        }
        pthread_mutex_lock(&s->mu);
        char *p = mock__settings_json(&s->set);
        pthread_mutex_unlock(&s->mu);
        return mock__send_json_str(r, 200, p);
    }
    if (!strcmp(url, "/admin/reset")) {
        if (strcmp(method, "POST"))
            return mock__send_error(r, 405, "invalid_request_error", "Method not allowed", NULL, NULL,
                              -1);
        mock_server_reset_stats(s);
        return mock__send_static(r, 200, "application/json", "{\"ok\":true}");
    }
    if (!strcmp(url, "/admin/faults"))
        return admin_faults(r, method);
    if (!strcmp(url, "/admin/requests"))
        return admin_requests(r, method);
    if (!strcmp(url, "/admin/fixtures") || !strncmp(url, "/admin/fixtures/", 16))
        return mock__fx_admin(r, url, method);
    char m[200];
    snprintf(m, sizeof m, "Invalid URL (%s %.120s)", method, url);
    return mock__send_error(r, 404, "invalid_request_error", m, NULL, NULL, -1);
}

enum MHD_Result mock__count_tokens(struct req *r)
{
    struct perr pe;
    r->is_api = 1;
    if (!MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "anthropic-version"))
        return mock__bad_request(r, "anthropic-version: header is required", NULL, NULL);
    /* count_tokens does not require max_tokens: pretend one was given. */
    r->api = MOCK_API_ANTHROPIC;
    cJSON *j = cJSON_ParseWithLength(r->body.p ? r->body.p : "", r->body.len);
    if (cJSON_IsObject(j) && !cJSON_GetObjectItemCaseSensitive(j, "max_tokens")) {
        cJSON_AddNumberToObject(j, "max_tokens", 1);
        char *p = cJSON_PrintUnformatted(j);
        if (p) {
            mock__buf_free(&r->body);
            mock__buf_str(&r->body, p);
            cJSON_free(p);
        }
    }
    cJSON_Delete(j);
    int rc = mock__parse_api(r, &pe);
    if (rc == -1)
        return mock__bad_request(r, pe.msg, pe.param, pe.code);
    if (rc < 0)
        return MHD_NO;
    struct mock_buf b = {0};
    mock__buf_fmt(&b, "{\"input_tokens\":%u}", r->prompt_tokens);
    return mock__send_json_str(r, 200, mock__buf_take(&b));
}
