/*
 * reply.c - how the mock server's answers are queued: common headers (request ids), whole
 * bodies, API-shaped errors with Retry-After and rate-limit headers, and the admin routes' error
 * objects. It decides nothing about which answer a request gets (admission.c, admin.c, server.c
 * do) nor when (stream.c).
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server_internal.h"

static void add_common_headers(struct req *r, struct MHD_Response *resp)
{
    if (r->is_api) {
        char id[40];
        snprintf(id, sizeof id, "req_mock_%016llx",
                 (unsigned long long)(r->hash ^ atomic_fetch_add_explicit(&r->srv->seq, 1, RLX)));
        MHD_add_response_header(resp, r->api == MOCK_API_ANTHROPIC ? "request-id" : "x-request-id",
                                id);
    }
}

enum MHD_Result mock__queue(struct req *r, unsigned status, struct MHD_Response *resp,
                             const char *ctype)
{
    if (!resp)
        return MHD_NO;
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    add_common_headers(r, resp);
    r->status = status;
    r->state = ST_ANSWERED;
    enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* body is taken (freed by MHD, or here when the response cannot be made). */
enum MHD_Result mock__send_body(struct req *r, unsigned status, const char *ctype, char *body,
                                 size_t len)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    return mock__queue(r, status, resp, ctype);
}

enum MHD_Result mock__send_static(struct req *r, unsigned status, const char *ctype,
                                   const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    return mock__queue(r, status, resp, ctype);
}

static void add_retry_headers(struct req *r, struct MHD_Response *resp, double retry_ms,
                              int ratelimit)
{
    char v[64];
    snprintf(v, sizeof v, "%.0f", ceil(retry_ms / 1000.0));
    MHD_add_response_header(resp, "retry-after", v);
    snprintf(v, sizeof v, "%.0f", ceil(retry_ms));
    MHD_add_response_header(resp, "retry-after-ms", v);
    if (!ratelimit)
        return;
    unsigned limit = r->set.rate_rps > 0 ? (unsigned)ceil(r->set.rate_rps * 60) : 60;
    char lim[32];
    snprintf(lim, sizeof lim, "%u", limit);
    if (r->api == MOCK_API_OPENAI) {
        char reset[32];
        snprintf(reset, sizeof reset, "%.3fs", retry_ms / 1000.0);
        MHD_add_response_header(resp, "x-ratelimit-limit-requests", lim);
        MHD_add_response_header(resp, "x-ratelimit-remaining-requests", "0");
        MHD_add_response_header(resp, "x-ratelimit-reset-requests", reset);
        MHD_add_response_header(resp, "x-ratelimit-limit-tokens", "1000000");
        MHD_add_response_header(resp, "x-ratelimit-remaining-tokens", "0");
        MHD_add_response_header(resp, "x-ratelimit-reset-tokens", reset);
    } else {
        char reset[40];
        time_t t = time(NULL) + (time_t)ceil(retry_ms / 1000.0);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(reset, sizeof reset, "%Y-%m-%dT%H:%M:%SZ", &tm);
        MHD_add_response_header(resp, "anthropic-ratelimit-requests-limit", lim);
        MHD_add_response_header(resp, "anthropic-ratelimit-requests-remaining", "0");
        MHD_add_response_header(resp, "anthropic-ratelimit-requests-reset", reset);
        MHD_add_response_header(resp, "anthropic-ratelimit-tokens-limit", "1000000");
        MHD_add_response_header(resp, "anthropic-ratelimit-tokens-remaining", "0");
        MHD_add_response_header(resp, "anthropic-ratelimit-tokens-reset", reset);
    }
}

/* An error in the route's API shape. retry_ms >= 0 adds Retry-After (and rate-limit headers
 * for 429). */
enum MHD_Result mock__send_error(struct req *r, unsigned status, const char *type,
                                  const char *message, const char *param, const char *code,
                                  double retry_ms)
{
    size_t len;
    char *body = mock__proto_error(r->api, type, message, param, code, &len);
    if (!body)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (retry_ms >= 0)
        add_retry_headers(r, resp, retry_ms, status == 429);
    if (r->api == MOCK_API_ANTHROPIC && status == 529)
        MHD_add_response_header(resp, "x-should-retry", "true");
    return mock__queue(r, status, resp, "application/json");
}

enum MHD_Result mock__bad_request(struct req *r, const char *msg, const char *param,
                                   const char *code)
{
    return mock__send_error(r, 400, "invalid_request_error", msg, param, code, -1);
}

enum MHD_Result mock__send_json_str(struct req *r, unsigned status, char *p)
{
    return mock__send_body(r, status, "application/json", p, p ? strlen(p) : 0);
}

char *mock__json_obj_err(const char *msg)
{
    struct mock_buf b = {0};
    mock__buf_str(&b, "{\"error\":{\"message\":");
    mock__buf_json_str(&b, msg, strlen(msg));
    mock__buf_str(&b, ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    return mock__buf_take(&b);
}
