/*
 * fuzz_mock_config.c - fuzzes the mock server's two text parsers through its public header
 * (mock/server.h): mock_server_configure (JSON or `key = value` settings, what POST
 * /admin/config takes from the network) and mock_server_script_faults (what POST /admin/faults
 * takes). Both need a running server: one is started on the first input (port 0, loopback) and
 * stopped at exit.
 *
 * Input: byte 0 bit 0 picks the parser (0 settings, 1 fault script); the rest, up to its first
 * NUL, is the text. Checks, besides "no crash":
 *   - results are 0 or -1; on -1 the message is non-empty and NUL-terminated, also in a buffer
 *     of 8 bytes (exact size, so an overrun is seen);
 *   - settings are all-or-nothing: after -1, GET /admin/config shows the settings unchanged;
 *     after 0, applying the settings the server first reported (GET /admin/config at start)
 *     succeeds and brings every one of them back (per-route overrides set since stay);
 *   - fault scripts are all-or-nothing: after -1 nothing is pending; after 0 the pending count
 *     is the sum of the accepted "next N" counts (counted here in 64 bits); "clear" empties it.
 *
 * Known bugs (reproducers in fuzz/crashes/, reported to the owners; see fuzz_known_bug in
 * fuzz_util.h for CX_FUZZ_KNOWN_BUGS). Drop each workaround once its bug is fixed: none open
 * (mock_config-1..5 are fixed; their reproducers are in fuzz/corpus/mock_config/).
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "mock/server.h"

static struct mock_server *srv;
static CURL *http;
static char config_url[128];
static char *base_text; /* the settings GET /admin/config reported at start */
static cJSON *base_json;
static cJSON *cur_json;  /* the settings now (route overrides, once set, cannot be unset) */

struct body {
    char *p;
    size_t n;
};

static size_t on_data(char *ptr, size_t sz, size_t nm, void *ud) {
    struct body *b = ud;
    size_t n = sz * nm;
    char *p = realloc(b->p, b->n + n + 1);
    if (p == NULL) return 0;
    memcpy(p + b->n, ptr, n);
    b->p = p;
    b->n += n;
    p[b->n] = '\0';
    return n;
}

/* GET /admin/config as text (malloc'd). Aborts when the server does not answer 200. */
static char *get_config(void) {
    struct body b = {NULL, 0};
    curl_easy_setopt(http, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(http);
    long st = 0;
    curl_easy_getinfo(http, CURLINFO_RESPONSE_CODE, &st);
    FUZZ_CHECK(cc == CURLE_OK && st == 200 && b.p != NULL, "GET %s: curl %d, status %ld",
               config_url, (int)cc, st);
    return b.p;
}

static cJSON *get_config_json(void) {
    char *t = get_config();
    cJSON *j = cJSON_Parse(t);
    FUZZ_CHECK(cJSON_IsObject(j), "GET /admin/config is not a JSON object: %s", t);
    free(t);
    return j;
}

static void stop_server(void) {
    curl_easy_cleanup(http);
    mock_server_stop(srv);
    cJSON_Delete(base_json);
    cJSON_Delete(cur_json);
    free(base_text);
    http = NULL;
    srv = NULL;
}

static void start_server(void) {
    struct mock_options o;
    mock_options_init(&o);
    o.threads = 1;
    char err[256];
    if (mock_server_start(&o, &srv, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_mock_config: cannot start the mock: %s\n", err);
        abort();
    }
    snprintf(config_url, sizeof config_url, "%s/admin/config", mock_server_url(srv));
    http = curl_easy_init();
    if (http == NULL) abort();
    curl_easy_setopt(http, CURLOPT_URL, config_url);
    curl_easy_setopt(http, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(http, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(http, CURLOPT_WRITEFUNCTION, on_data);
    base_text = get_config();
    base_json = cJSON_Parse(base_text);
    FUZZ_CHECK(cJSON_IsObject(base_json), "initial settings not JSON: %s", base_text);
    cur_json = cJSON_Duplicate(base_json, 1);
    atexit(stop_server);
}

static void check_err(int rc, const char *err, size_t n, const char *what) {
    FUZZ_CHECK(rc == 0 || rc == -1, "%s returned %d", what, rc);
    if (rc < 0) FUZZ_CHECK(fuzz_terminated(err, n) && (n < 2 || err[0]), "%s: bad message", what);
}

/* 1 when every key of sub is in obj with an equal value. */
static int has_all(const cJSON *obj, const cJSON *sub) {
    for (const cJSON *it = sub->child; it; it = it->next) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, it->string);
        if (o == NULL || !cJSON_Compare(o, it, 1)) return 0;
    }
    return 1;
}

static void fuzz_settings(const char *text) {
    char err[256];
    int rc = mock_server_configure(srv, text, err, sizeof err);
    check_err(rc, err, sizeof err, "mock_server_configure");
    if (rc < 0) {
        cJSON *now = get_config_json();
        FUZZ_CHECK(cJSON_Compare(now, cur_json, 1), "refused settings ('%s') changed %s", err,
                   "the server's settings");
        cJSON_Delete(now);
        char *small = malloc(8);
        if (small == NULL) abort();
        rc = mock_server_configure(srv, text, small, 8);
        FUZZ_CHECK(rc == -1, "second try gave %d", rc);
        check_err(rc, small, 8, "mock_server_configure (8-byte message)");
        free(small);
        return;
    }
    /* Back to the first settings; per-route overrides (chat.latency, ...) stay, as documented:
     * nothing unsets one. */
    rc = mock_server_configure(srv, base_text, err, sizeof err);
    FUZZ_CHECK(rc == 0, "the server's own GET /admin/config refused: %s", err);
    cJSON *back = get_config_json();
    FUZZ_CHECK(has_all(back, base_json), "re-applying the first settings after '%s' did not "
               "restore them", text);
    cJSON_Delete(cur_json);
    cur_json = back;
}

static int is_fault(const char *w) {
    static const char *const names[] = {"ok", "429", "500", "502", "503", "529", "reset", "stall",
                                        "malformed", "cut", "disconnect", "corrupt", "duplicate",
                                        "truncate", "dangerous", "none"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(w, names[i]) == 0) return 1;
    return 0;
}

/* What a successful script leaves pending, in 64 bits; -1 for a statement that is not
 * "next N FAULT" (N a decimal number 1..1e9, FAULT a name) or "clear". `cleared` is set when
 * a clear statement was seen. Like the server, N may run straight into FAULT ("next 2reset"):
 * sloppy but harmless, so not flagged. A sign on N is not a decimal number 1..1e9. */
static int64_t script_total(const char *script, int *cleared) {
    char *copy = fuzz_strndup(script, strlen(script));
    int64_t total = 0;
    *cleared = 0;
    char *save = NULL;
    for (char *st = strtok_r(copy, ";\n", &save); st; st = strtok_r(NULL, ";\n", &save)) {
        char *words[4];
        int nw = 0;
        char *save2 = NULL;
        for (char *w = strtok_r(st, " \t\r\v\f", &save2); w;
             w = strtok_r(NULL, " \t\r\v\f", &save2)) {
            if (nw == 4) break;
            words[nw++] = w;
        }
        if (nw == 0) continue;
        if (nw == 1 && strcmp(words[0], "clear") == 0) {
            total = 0;
            *cleared = 1;
            continue;
        }
        if (nw < 2 || strcmp(words[0], "next") != 0) {
            total = -1;
            break;
        }
        const char *d = words[1];
        if (*d == '+') d++;
        const char *e = d;
        while (isdigit((unsigned char)*e)) e++;
        const char *fault = *e ? e : (nw == 3 ? words[2] : NULL);
        int shape_ok = e > d && fault != NULL && nw == (*e ? 2 : 3);
        unsigned long long cnt = shape_ok ? strtoull(d, NULL, 10) : 0;
        if (!shape_ok || !is_fault(fault) || cnt < 1 || cnt > 1000000000ull) {
            total = -1;
            break;
        }
        total += (int64_t)cnt;
    }
    free(copy);
    return total;
}

static void fuzz_script(const char *text) {
    char err[256];
    FUZZ_CHECK(mock_server_scripted_pending(srv) == 0, "faults left pending by the last input");
    int rc = mock_server_script_faults(srv, text, err, sizeof err);
    check_err(rc, err, sizeof err, "mock_server_script_faults");
    unsigned pending = mock_server_scripted_pending(srv);
    if (rc < 0) {
        FUZZ_CHECK(pending == 0, "refused script ('%s') left %u pending", err, pending);
        char *small = malloc(8);
        if (small == NULL) abort();
        rc = mock_server_script_faults(srv, text, small, 8);
        check_err(rc, small, 8, "mock_server_script_faults (8-byte message)");
        free(small);
    } else {
        int cleared;
        int64_t want = script_total(text, &cleared);
        FUZZ_CHECK(want >= 0, "accepted a script that is not 'next N FAULT'/'clear' statements: '%s'",
                   text);
        FUZZ_CHECK((int64_t)pending == want, "script '%s': %u pending, expected %lld", text, pending,
                   (long long)want);
    }
    rc = mock_server_script_faults(srv, "clear", err, sizeof err);
    FUZZ_CHECK(rc == 0 && mock_server_scripted_pending(srv) == 0, "clear did not clear");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (srv == NULL) start_server();
    if (size == 0 || size > 65536) return 0;
    char *text = fuzz_strndup(data + 1, size - 1);
    if (data[0] & 1) fuzz_script(text);
    else fuzz_settings(text);
    free(text);
    return 0;
}
