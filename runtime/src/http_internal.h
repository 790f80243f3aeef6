/*
 * http_internal.h - what http.c shares with ioloop.c: the transfer's layout and the two calls that
 * put a transfer on a curl easy handle and record how it ended. Not part of the public API.
 */
#ifndef CX_HTTP_INTERNAL_H
#define CX_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <stdatomic.h>

#include "cx/http.h"
#include "cx_internal.h"

/* Why a transfer stopped early (set by the progress callback or by the I/O loop). */
enum {
    CX__ABORT_NONE = 0,
    CX__ABORT_CANCEL = 1,   /* the request's cancel flag or cx_ioloop_cancel */
    CX__ABORT_DEADLINE = 2, /* the deadline had passed before the transfer could start */
    CX__ABORT_CLOSED = 3    /* the I/O loop shut down with the transfer in it */
};

struct cx_http_xfer {
    enum cx_api api;
    int stream;
    char *url;                  /* owned */
    char *body;                 /* owned: JSON request body */
    size_t body_len;
    struct curl_slist *headers; /* owned; the key lives here only, wiped on free */
    const char *key_ref;        /* points into headers: the key, for redaction; NULL if none */
    size_t key_len;
    uint64_t deadline;
    long connect_timeout_ms;
    const cx_cancel_flag *cancel; /* borrowed from the request */

    /* the raw answer, written by curl's callbacks on whichever thread moves the bytes */
    struct cx__buf resp;
    long status;
    double retry_after_s;
    int write_err;              /* CX_ETOOBIG / CX_ENOMEM from the write callback */
    int curl_rc;                /* CURLcode of the transfer */
    int abort_reason;           /* CX__ABORT_* */
    int performed;              /* 1 once the bytes moved (or the attempt ended) */
    uint64_t started_ns;
    char errbuf[CURL_ERROR_SIZE];

    /* used by ioloop.c only (I/O thread, or under the loop's mutex while queued) */
    CURL *easy;
    struct cx_http_xfer *next, *prev;
    void (*done)(struct cx_http_xfer *x, void *ud);
    void *ud;
    atomic_int cancel_req;
};

/* Resets `easy` and sets every option for x (URL, body, headers, timeouts from the deadline,
 * callbacks writing into x). Clears x's previous raw answer. Returns 0 or CX_ENOMEM / CX_EIO.
 * Caller owns both. */
int cx__http_xfer_attach(struct cx_http_xfer *x, CURL *easy);
/* Records the end of a transfer: the CURLcode and the HTTP status from easy. */
void cx__http_xfer_ended(struct cx_http_xfer *x, CURL *easy, CURLcode rc);
/* Marks x as ended without moving bytes (abort_reason says why). */
void cx__http_xfer_abort(struct cx_http_xfer *x, int reason);
/* curl_global_init through pthread_once; 0 or CX_EIO. */
int cx__http_global_init(void);

#endif /* CX_HTTP_INTERNAL_H */
