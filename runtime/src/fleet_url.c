/*
 * fleet_url.c - parses a Redis URL (forms in fleet.h) into host/port or socket path, db, user
 * and password.
 *
 * What it does: strict parsing with one message per mistake, naming the setting and quoting the
 * URL with its password replaced by "***"; percent-decoding of user, password and path. What it
 * does not do: resolve host names or connect (fleet.c does), or accept TLS (rediss://).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cx_internal.h"
#include "fleet.h"

#define URL_MAX 4096

void cx__redis_url_clear(struct cx__redis_url *u) {
    if (u == NULL) return;
    cx__free(u->host);
    cx__free(u->path);
    cx__free(u->user);
    if (u->password != NULL) {
        explicit_bzero(u->password, strlen(u->password));
        cx__free(u->password);
    }
    cx__free(u->redacted);
    memset(u, 0, sizeof *u);
}

/* The URL with the password (userinfo after ':' and any password= query value) as "***". */
static char *redact(const char *url) {
    struct cx__buf b;
    cx__buf_init(&b, URL_MAX * 2);
    const char *scheme_end = strstr(url, "://");
    const char *auth = scheme_end ? scheme_end + 3 : url;
    const char *slash = strchr(auth, '/');
    const char *at = NULL;
    for (const char *p = auth; *p && (slash == NULL || p < slash); p++)
        if (*p == '@') at = p; /* the last '@' before the path ends the userinfo */
    const char *p = url;
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (colon != NULL) {
            if (cx__buf_append(&b, url, (size_t)(colon + 1 - url)) < 0 ||
                cx__buf_append(&b, "***", 3) < 0)
                return NULL;
            p = at;
        }
    }
    const char *q = strchr(p, '?');
    if (q == NULL) {
        if (cx__buf_append(&b, p, strlen(p) + 1) < 0) return NULL;
        return cx__buf_take(&b);
    }
    if (cx__buf_append(&b, p, (size_t)(q - p)) < 0) return NULL;
    /* Query: copy each parameter, masking the value of password=. */
    const char *s = q;
    while (*s) {
        const char *e = strchr(s + 1, '&');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len >= 10 && strncasecmp(s + 1, "password=", 9) == 0) {
            if (cx__buf_append(&b, s, 10) < 0 || cx__buf_append(&b, "***", 3) < 0) return NULL;
        } else if (cx__buf_append(&b, s, len) < 0) {
            return NULL;
        }
        s += len;
    }
    if (cx__buf_append(&b, "", 1) < 0) return NULL;
    return cx__buf_take(&b);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape (*bad = 1) or no memory. */
static char *decode(const char *s, size_t n, int *bad) {
    char *out = cx__malloc(n + 1);
    if (out == NULL) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int c = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            int h = (a < 0 || c < 0) ? -1 : a * 16 + c;
            if (h <= 0) { /* a bad escape, or %00 which would cut the string */
                explicit_bzero(out, n + 1);
                cx__free(out);
                *bad = 1;
                return NULL;
            }
            out[j++] = (char)h;
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

struct parse {
    const char *setting;
    struct cx__redis_url *u;
    struct cx_errinfo *ei;
};

#define BAD(ps, ...) bad_url(ps, __VA_ARGS__)
__attribute__((format(printf, 2, 3))) static int bad_url(struct parse *ps, const char *fmt, ...) {
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cx__err(ps->ei, CX_ECONFIG, "%s='%.300s': %s", ps->setting,
                   ps->u->redacted ? ps->u->redacted : "?", why);
}

static int set_decoded(struct parse *ps, const char *s, size_t n, char **dst, const char *what) {
    int bad = 0;
    char *v = decode(s, n, &bad);
    if (v == NULL) {
        if (bad) return BAD(ps, "bad percent-escape in the %s", what);
        return cx__err(ps->ei, CX_ENOMEM, "out of memory parsing %s", ps->setting);
    }
    if (*dst != NULL) {
        explicit_bzero(*dst, strlen(*dst));
        cx__free(*dst);
    }
    *dst = v;
    return 0;
}

/* Parses a decimal in [lo, hi] from s[0..n). */
static int parse_num(const char *s, size_t n, long lo, long hi, int *out) {
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* userinfo: [user][:password] */
static int parse_userinfo(struct parse *ps, const char *s, size_t n) {
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;
    int rc;
    if (ulen > 0 && (rc = set_decoded(ps, s, ulen, &ps->u->user, "user name")) < 0) return rc;
    if (colon == NULL) {
        /* "redis://secret@host" is redis-py's shorthand for a password without a user. */
        if (ps->u->user != NULL) {
            ps->u->password = ps->u->user;
            ps->u->user = NULL;
        }
        return 0;
    }
    size_t plen = n - ulen - 1;
    if (plen > 0 && (rc = set_decoded(ps, colon + 1, plen, &ps->u->password, "password")) < 0)
        return rc;
    return 0;
}

/* The query string (without '?'): db=N and password=... */
static int parse_query(struct parse *ps, const char *q) {
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        if (eq == NULL) return BAD(ps, "query parameter without '=' (expected db=N)");
        size_t klen = (size_t)(eq - q), vlen = len - klen - 1;
        int rc;
        if (klen == 2 && strncasecmp(q, "db", 2) == 0) {
            if (parse_num(eq + 1, vlen, 0, INT_MAX, &ps->u->db) < 0)
                return BAD(ps, "db must be a number >= 0");
        } else if (klen == 8 && strncasecmp(q, "password", 8) == 0) {
            if ((rc = set_decoded(ps, eq + 1, vlen, &ps->u->password, "password")) < 0) return rc;
        } else {
            return BAD(ps, "unknown query parameter '%.*s' (expected db or password)",
                       (int)(klen > 32 ? 32 : klen), q);
        }
        q += len;
        if (*q == '&') q++;
    }
    return 0;
}

/* redis://[userinfo@]host[:port][/db][?query] after the scheme. */
static int parse_tcp(struct parse *ps, const char *s) {
    const char *end = s + strcspn(s, "/?");
    const char *at = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '@') at = p;
    int rc;
    if (at != NULL) {
        if ((rc = parse_userinfo(ps, s, (size_t)(at - s))) < 0) return rc;
        s = at + 1;
    }
    const char *hs = s, *he;
    const char *portp = NULL;
    if (*s == '[') {
        he = memchr(s, ']', (size_t)(end - s));
        if (he == NULL) return BAD(ps, "IPv6 host without a closing ']'");
        hs = s + 1;
        if (he + 1 < end) {
            if (he[1] != ':') return BAD(ps, "unexpected text after the IPv6 host");
            portp = he + 2;
        }
    } else {
        he = memchr(s, ':', (size_t)(end - s));
        if (he != NULL) portp = he + 1;
        else he = end;
    }
    if (he == hs) return BAD(ps, "no host (expected redis://host:port/db)");
    for (const char *p = hs; p < he; p++)
        if (isspace((unsigned char)*p) || *p == '@' || *p == '[' || *p == ']')
            return BAD(ps, "bad character in the host");
    ps->u->host = cx__strndup(hs, (size_t)(he - hs));
    if (ps->u->host == NULL) return cx__err(ps->ei, CX_ENOMEM, "out of memory");
    ps->u->port = 6379;
    if (portp != NULL && parse_num(portp, (size_t)(end - portp), 1, 65535, &ps->u->port) < 0)
        return BAD(ps, "port must be a number in 1..65535");
    s = end;
    if (*s == '/') {
        s++;
        size_t n = strcspn(s, "?");
        if (n > 0 && parse_num(s, n, 0, INT_MAX, &ps->u->db) < 0)
            return BAD(ps, "the path must be a database number (redis://host:port/N)");
        s += n;
    }
    if (*s == '?') return parse_query(ps, s + 1);
    return 0;
}

/* unix:///path[?query], unix://[userinfo@]/path[?query], after the scheme. */
static int parse_unix(struct parse *ps, const char *s) {
    int rc;
    if (*s != '/') {
        const char *at = strchr(s, '@');
        if (at == NULL || at[1] != '/')
            return BAD(ps, "a unix socket URL needs an absolute path (unix:///path/to/sock)");
        if ((rc = parse_userinfo(ps, s, (size_t)(at - s))) < 0) return rc;
        s = at + 1;
    }
    size_t n = strcspn(s, "?");
    if (n < 2) return BAD(ps, "no socket path (expected unix:///path/to/sock)");
    if ((rc = set_decoded(ps, s, n, &ps->u->path, "socket path")) < 0) return rc;
    s += n;
    if (*s == '?') return parse_query(ps, s + 1);
    return 0;
}

int cx__redis_url_parse(const char *url, const char *setting, const char *password,
                        struct cx__redis_url *out, struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx__redis_url_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (setting == NULL) setting = "Redis URL";
    if (url == NULL || url[0] == '\0')
        return cx__err(ei, CX_ECONFIG, "%s is empty (expected redis://host:port/db)", setting);
    size_t len = strlen(url);
    if (len > URL_MAX)
        return cx__err(ei, CX_ECONFIG, "%s is too long (%zu characters, at most %d)", setting, len,
                       URL_MAX);
    struct parse ps = {.setting = setting, .u = out, .ei = ei};
    out->redacted = redact(url);
    if (out->redacted == NULL) return cx__err(ei, CX_ENOMEM, "out of memory parsing %s", setting);
    int rc = 0;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            rc = BAD(&ps, "blank or control character in the URL");
            goto done;
        }
    if (strncasecmp(url, "redis://", 8) == 0) {
        rc = parse_tcp(&ps, url + 8);
    } else if (strncasecmp(url, "unix://", 7) == 0) {
        out->is_unix = 1;
        rc = parse_unix(&ps, url + 7);
    } else if (strncasecmp(url, "redis+unix://", 13) == 0) {
        out->is_unix = 1;
        rc = parse_unix(&ps, url + 13);
    } else if (strncasecmp(url, "rediss://", 9) == 0) {
        rc = cx__err(ei, CX_ENOTSUP, "%s='%.300s': TLS (rediss://) is not supported by this build "
                     "(hiredis without TLS); use redis:// on a trusted network or a unix socket",
                     setting, out->redacted);
    } else {
        rc = BAD(&ps, "unknown scheme (expected redis://, unix:// or redis+unix://)");
    }
    if (rc == 0 && password != NULL && password[0] != '\0') {
        if (out->password != NULL) {
            explicit_bzero(out->password, strlen(out->password));
            cx__free(out->password);
        }
        out->password = cx__strdup(password);
        if (out->password == NULL) rc = cx__err(ei, CX_ENOMEM, "out of memory parsing %s", setting);
    }
done:
    if (rc < 0) cx__redis_url_clear(out);
    return rc;
}
