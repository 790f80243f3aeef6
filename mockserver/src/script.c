/*
 * script.c - the fault script: parses "next N FAULT; clear" statements (strictly, all or
 * nothing, capped at MOCK_SCRIPT_MAX_PENDING pending faults) into the server's queue, which
 * admission.c pops one request at a time. It does not apply faults.
 */

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_internal.h"

/* Splits st in place into blank-separated words (at most max, into w); returns how many, or
 * max + 1 when there are more. */
static size_t split_words(char *st, char **w, size_t max)
{
    size_t n = 0;
    for (char *p = st;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return n;
        if (n == max)
            return max + 1;
        w[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = 0;
    }
}

/* The N of "next N FAULT": decimal digits only (no sign, no blanks, nothing after), 1..1e9.
 * Returns it, or 0 when d is not such a number. */
static unsigned parse_script_count(const char *d)
{
    unsigned long v = 0;
    if (!*d)
        return 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return 0;
        v = v * 10 + (unsigned long)(*d - '0');
        if (v > 1000000000ul)
            return 0;
    }
    return (unsigned)v;
}

int mock_server_script_faults(struct mock_server *s, const char *script, char *err,
                              size_t errlen)
{
    return mock_server_script_faults_for(s, script, NULL, NULL, err, errlen);
}

int mock_server_script_faults_for(struct mock_server *s, const char *script, const char *route,
                                  const char *model, char *err, size_t errlen)
{
    if (!script)
        return mock__err(err, errlen, "script: NULL");
    int rt = -1;
    if (route && *route) {
        rt = mock__route_from_name(route);
        if (rt < 0 || !mock__route_is_api(rt))
            return mock__err(err, errlen, "route: '%.40s' is not a route that takes faults "
                             "(chat, messages, completions, responses, embeddings)", route);
    }
    if (model && strlen(model) >= sizeof ((struct script_item *)0)->model)
        return mock__err(err, errlen, "model: longer than %zu bytes",
                         sizeof ((struct script_item *)0)->model - 1);
    char *copy = strdup(script);
    if (!copy)
        return mock__err(err, errlen, "out of memory");
    struct script_item items[64];
    size_t n = 0;
    int clear = 0, rc = 0;
    char *save = NULL;
    for (char *st = strtok_r(copy, ";\n", &save); st; st = strtok_r(NULL, ";\n", &save)) {
        /* The statement as written, for messages (splitting writes NULs into st). */
        const char *orig = script + (st - copy);
        while (*orig == ' ' || *orig == '\t')
            orig++;
        int shown = (int)strcspn(orig, ";\n");
        if (shown > 60)
            shown = 60;
        char *w[3];
        size_t nw = split_words(st, w, 3);
        if (nw == 0)
            continue;
        if (nw == 1 && !strcmp(w[0], "clear")) {
            clear = 1;
            n = 0;
            continue;
        }
        unsigned cnt = nw == 3 && !strcmp(w[0], "next") ? parse_script_count(w[1]) : 0;
        if (cnt == 0) {
            rc = mock__err(err, errlen, "script: expected 'next N FAULT' (N = 1..1000000000) "
                           "or 'clear', got '%.*s'", shown, orig);
            break;
        }
        int f = mock__fault_from_name(w[2]);
        if (f < 0) {
            rc = mock__err(err, errlen, "script: unknown fault '%.40s' in '%.*s' (ok, 429, 500, "
                           "502, 503, 529, reset, stall, malformed, cut, disconnect, corrupt, "
                           "duplicate, truncate, dangerous)", w[2], shown, orig);
            break;
        }
        if (n == sizeof items / sizeof items[0]) {
            rc = mock__err(err, errlen, "script: more than %zu statements in one call",
                           sizeof items / sizeof items[0]);
            break;
        }
        items[n].count = cnt;
        items[n].fault = f;
        items[n].route = rt;
        snprintf(items[n].model, sizeof items[n].model, "%s", model ? model : "");
        n++;
    }
    free(copy);
    if (rc < 0)
        return -1;
    uint64_t add = 0; /* at most 64 x 1e9: no overflow */
    for (size_t i = 0; i < n; i++)
        add += items[i].count;
    pthread_mutex_lock(&s->mu);
    uint64_t have = 0;
    for (size_t i = 0; !clear && i < s->script_n; i++)
        have += s->script[i].count;
    if (have + add > MOCK_SCRIPT_MAX_PENDING) {
        pthread_mutex_unlock(&s->mu);
        return mock__err(err, errlen, "script: %llu faults would be pending, more than %u",
                         (unsigned long long)(have + add), MOCK_SCRIPT_MAX_PENDING);
    }
    if (clear)
        s->script_n = 0;
    if (n == 0) { /* nothing to append; s->script may still be NULL (no NULL + 0, memcpy) */
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    if (s->script_n + n > s->script_cap) {
        size_t cap = s->script_cap ? s->script_cap : 16;
        while (cap < s->script_n + n)
            cap *= 2;
        struct script_item *p = realloc(s->script, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->mu);
            return mock__err(err, errlen, "out of memory");
        }
        s->script = p;
        s->script_cap = cap;
    }
    memcpy(s->script + s->script_n, items, n * sizeof *items);
    s->script_n += n;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

unsigned mock_server_scripted_pending(const struct mock_server *s)
{
    struct mock_server *m = (struct mock_server *)s;
    pthread_mutex_lock(&m->mu);
    uint64_t n = 0; /* <= MOCK_SCRIPT_MAX_PENDING (mock_server_script_faults checks) */
    for (size_t i = 0; i < m->script_n; i++)
        n += m->script[i].count;
    pthread_mutex_unlock(&m->mu);
    return (unsigned)n;
}
