/*
 * replay.c - sends a fixture's own answer once it is due: an API error from the fixture, or an
 * upstream answer as recorded (status, content type, body), a recorded stream frame by frame
 * with the recorded gaps between frames (times time_scale, like every other delay). A paced
 * stream suspends its connection between frames and lets the timer thread resume it, as the
 * generated streams do (stream.c), so no thread waits. The delay before the first byte is the
 * request's ordinary delay (fixtures_match.c sets it to the recorded latency).
 */
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

static void resume_cb(void *arg)
{
    struct req *r = arg;
    MHD_resume_connection(r->conn);
}

static ssize_t raw_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    mock__server_thread = 1;
    struct req *r = cls;
    const struct mock_fx_raw *raw = r->fxr->raw;
    (void)pos;
    if (atomic_load(&r->srv->stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t w = 0;
    for (;;) {
        if (r->frame >= raw->nframes)
            return w ? (ssize_t)w : MHD_CONTENT_READER_END_OF_STREAM;
        const struct mock_fx_frame *fm = &raw->frames[r->frame];
        if (r->foff == 0) {
            uint64_t now = mock__now_ns();
            if (r->next_due > now) {
                if (w)
                    return (ssize_t)w;
                MHD_suspend_connection(r->conn);
                if (mock__timer_add(r->srv->timer, r->next_due, resume_cb, r) < 0)
                    MHD_resume_connection(r->conn);
                return 0;
            }
        }
        size_t n = fm->len - r->foff;
        if (n > max - w)
            n = max - w;
        memcpy(buf + w, fm->data + r->foff, n);
        w += n;
        r->foff += n;
        if (r->foff == fm->len) {
            r->frame++;
            r->foff = 0;
            if (r->frame < raw->nframes)
                r->next_due += mock__scaled_ns(r, raw->frames[r->frame].delay_ms);
        }
        if (w == max)
            return (ssize_t)w;
    }
}

enum MHD_Result mock__fx_answer(struct req *r)
{
    const struct mock_fx_reply *p = r->fxr;
    if (p->err_status)
        return mock__send_error(r, p->err_status, p->err_type, p->err_message, NULL,
                                p->err_code, p->retry_after_ms);
    const struct mock_fx_raw *raw = p->raw;
    if (!raw->frames) {
        char *copy = malloc(raw->body_len + 1);
        if (!copy)
            return MHD_NO;
        memcpy(copy, raw->body, raw->body_len);
        return mock__send_body(r, raw->status, raw->content_type, copy, raw->body_len);
    }
    r->frame = 0;
    r->foff = 0;
    r->next_due = mock__now_ns();
    if (raw->nframes)
        r->next_due += mock__scaled_ns(r, raw->frames[0].delay_ms);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, raw_reader, r, NULL);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return mock__queue(r, raw->status, resp, raw->content_type);
}
