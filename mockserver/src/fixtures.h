/*
 * fixtures.h - canned replies for the mock server (internal to cx_mock): fixture rules loaded
 * from a JSON file or a directory of recordings, matched in order against each API request, and
 * the record mode that proxies requests to a real API and stores each exchange as a fixture
 * file. fixtures.c parses the rule sets (reference counted), fixtures_load.c reads files and
 * directories and swaps the current set atomically on reload, fixtures_match.c matches a
 * request and applies the reply, fixtures_admin.c serves /admin/fixtures, replay.c sends
 * recorded answers, record.c proxies and records.
 *
 * Threads: the request hooks run on libmicrohttpd workers with no lock held; record.c's workers
 * run the upstream transfers (see its DESIGN).
 */
#ifndef MOCK_FIXTURES_H
#define MOCK_FIXTURES_H

#include <regex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "server_internal.h"

/* A text matcher: a substring (case-sensitive) or a POSIX extended regex. */
struct mock_fx_text {
    int set;                  /* 0: matches anything */
    int is_re;
    char *text;               /* the substring or the pattern as written */
    regex_t re;               /* compiled when is_re */
};

/* One frame of a recorded stream: the SSE event as received (ending in a blank line) and the
 * time since the previous frame. */
struct mock_fx_frame {
    double delay_ms;
    char *data;
    size_t len;
};

/* An upstream answer as recorded: sent back verbatim, paced by its recorded timings. */
struct mock_fx_raw {
    unsigned status;
    char content_type[128];
    double latency_ms;        /* request sent -> first body byte (non-streaming: whole body) */
    char *body;               /* non-streaming body; NULL when frames are set */
    size_t body_len;
    struct mock_fx_frame *frames;
    size_t nframes;
};

/* What one fixture reply says; unset fields leave the generated reply's value. */
struct mock_fx_reply {
    char *text;               /* reply text (NULL: generated content) */
    long long prompt_tokens, completion_tokens; /* usage; < 0 unset */
    double latency_ms, ttft_ms, itl_ms;         /* < 0 unset */
    int fault;                /* enum mock_fault, -1: none (scripted/drawn faults still apply) */
    double retry_after_ms;    /* < 0: the retry_after setting */
    unsigned err_status;      /* an API error answered at once; 0 none */
    char *err_type, *err_message, *err_code;
    cJSON *tool_calls;        /* [{"name", "arguments", "id"}] (checked), sent as the reply's
                                 tool calls; NULL: none */
    struct mock_fx_raw *raw;  /* a recorded answer; NULL for a written fixture */
};

enum { MOCK_FX_REPEAT_LAST, MOCK_FX_CYCLE };

struct mock_fx_rule {
    char name[96];
    int route;                /* enum mock_route; -1 any API route */
    struct mock_fx_text model, system, user;
    int turns;                /* number of messages / input items; -1 any */
    cJSON *body;              /* replay: the recorded request body (redacted); NULL any */
    struct mock_fx_reply *replies;
    size_t nreplies;
    int after;                /* MOCK_FX_REPEAT_LAST or MOCK_FX_CYCLE */
    _Atomic uint64_t calls;   /* matching calls so far (the sequence position) */
};

/* One loaded rule set. Immutable after loading except the rules' call counters; a request
 * holds a reference from its match until its completion callback. */
struct mock_fixtures {
    _Atomic unsigned refs;
    char source[512];         /* the file or directory it came from ("(admin)" for a PUT) */
    uint64_t generation;
    int need_body;            /* some rule matches on turns or the body: parse it */
    struct mock_fx_rule *rules;
    size_t n;
    char **files;             /* rule i came from files[file_of[i]] (directories) */
    size_t *file_of;
    size_t nfiles;
};

/* The server's fixture state (mock_server.fx). */
struct mock_rec;
struct mock_fx_state {
    pthread_mutex_t mu;
    struct mock_fixtures *cur;     /* guarded by mu; NULL: none loaded */
    char source[512];              /* guarded by mu: what reload re-reads; "" none */
    int source_is_dir;             /* guarded by mu */
    uint64_t generation;           /* guarded by mu */
    int strict;                    /* unmatched API requests get a 404 (fixed at start) */
    struct mock_rec *rec;          /* record mode's proxy; NULL when off (fixed at start) */
    _Atomic int active;            /* a set is loaded, or strict, or record: without it the
                                      request hook returns at once, taking no lock */
};

/* ---- parsing (fixtures.c) and loading (fixtures_load.c) ---- */
/* Parses fixture JSON text. name names it in errors ("FILE: rules[2].reply.latency: ...").
 * 0 with *out (refs 1), or -1 with err filled. */
int mock__fx_parse(const char *text, size_t len, const char *name, struct mock_fixtures **out,
                   char *err, size_t errlen);
/* A file, or every *.json file of a directory in name order (rules concatenated). */
int mock__fx_load_path(const char *path, int is_dir, struct mock_fixtures **out, char *err,
                       size_t errlen);
void mock__fx_ref(struct mock_fixtures *f);
void mock__fx_unref(struct mock_fixtures *f);   /* frees at zero; accepts NULL */
void mock__fx_reply_clear(struct mock_fx_reply *p);
/* Installs f (taken) as the current set, releasing the old one; NULL clears. */
void mock__fx_install(struct mock_fx_state *st, struct mock_fixtures *f);
/* The current set with a reference taken, or NULL. */
struct mock_fixtures *mock__fx_acquire(struct mock_fx_state *st);
/* Server start and stop: options -> state; 0 or a MOCK_E* code with err filled. */
int mock__fx_start(struct mock_server *s, const struct mock_options *o, char *err, size_t errlen);
void mock__fx_stop(struct mock_server *s);      /* before the timer flush: ends record mode */
void mock__fx_free(struct mock_server *s);      /* after MHD_stop_daemon */

/* ---- request hooks (fixtures_match.c) ---- */
/* After the body is parsed (admission.c): match r against the fixtures, record or miss.
 * Returns 1 when r has been answered or handed to the record proxy (*res is the handler's
 * result), 0 to go on (r->fxr set when a fixture matched). */
int mock__fx_route(struct req *r, enum MHD_Result *res);
/* prepare() (stream.c): 2 = a recorded or error answer (nothing to generate), 1 = r->content
 * filled from the fixture's text, 3 = r->turn.call[] filled from the fixture's tool_calls (they
 * replace any call the request's tools led to; mock__turn_content makes the text), 0 =
 * generate, -1 = out of memory. */
int mock__fx_text(struct req *r);
/* prepare(): the fixture's usage into r->reply. */
void mock__fx_usage(struct req *r);
/* mock__answer (stream.c): 1 when the reply is the fixture's own (replay.c sends it). */
int mock__fx_own_answer(const struct req *r);
/* The completion callback: drops r's references. */
void mock__fx_req_done(struct req *r);
/* Fills a mock_fx_text from a JSON string value; regex: compile it. 0 or -1 (err). */
int mock__fx_text_set(struct mock_fx_text *t, const char *s, int regex, char *err,
                      size_t errlen);
void mock__fx_text_free(struct mock_fx_text *t);
/* Key-looking strings and the given key replaced by "[redacted]": a malloc'd copy (*outlen
 * set) or NULL when out of memory. key may be NULL. */
char *mock__fx_redact(const char *p, size_t n, const char *key, size_t *outlen);
/* The same over every string of a JSON tree, in place. */
void mock__fx_redact_json(cJSON *j, const char *key);

/* ---- replay.c ---- */
/* Sends r->fxr's recorded answer or error (after its delay). */
enum MHD_Result mock__fx_answer(struct req *r);

/* ---- admin (fixtures_admin.c) ---- */
enum MHD_Result mock__fx_admin(struct req *r, const char *url, const char *method);

/* ---- record.c ---- */
int mock__rec_new(struct mock_server *s, const char *dir, const char *upstream,
                  struct mock_rec **out, char *err, size_t errlen);
/* Ends every transfer, answers their requests and joins the workers. */
void mock__rec_stop(struct mock_rec *rc);
void mock__rec_free(struct mock_rec *rc);
/* Suspends r and queues its upstream exchange; the handler's result. */
enum MHD_Result mock__rec_begin(struct mock_rec *rc, struct req *r);

#endif
