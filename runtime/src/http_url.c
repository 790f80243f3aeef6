/*
 * http_url.c - base URLs: validating and normalizing the base a caller configures (so
 * "http://HOST" and "http://HOST/v1" both work for both wire formats), and redacting the
 * credentials a URL may carry (userinfo, key-like query parameters) before it is stored or
 * printed. The convention is documented in cx/http.h ("Base URLs").
 *
 * What it does not do: resolve, connect or percent-decode anything; curl parses the final URL
 * again when the transfer starts. The checks here are the ones that turn a typo into a clear
 * error before any query is sent: a scheme curl would otherwise guess or refuse, a missing host,
 * a bad port, spaces and control characters.
 */
#include "cx/http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

/* ---- redaction ---- */

/* Query (and fragment) parameters whose value is a credential. Compared case-insensitively. */
static const char *const k_secret_params[] = {
    "key",       "api_key",      "api-key",  "apikey",        "x-api-key", "token",
    "access_token", "refresh_token", "id_token", "auth",       "auth_token", "password",
    "passwd",    "pass",         "secret",   "client_secret", "signature", "sig",
};

static int secret_param(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof k_secret_params / sizeof k_secret_params[0]; i++)
        if (strlen(k_secret_params[i]) == n && strncasecmp(name, k_secret_params[i], n) == 0) return 1;
    return 0;
}

/* The authority of url: [*as, *ae). With no "scheme://" the authority starts at the beginning
 * (a bare "user:pw@host:port" as OLLAMA_HOST is often written). */
static void authority_span(const char *url, size_t *as, size_t *ae) {
    size_t n = strlen(url);
    size_t s = strcspn(url, "/?#");
    const char *sep = strstr(url, "://");
    size_t a = sep != NULL && (size_t)(sep - url) <= s ? (size_t)(sep - url) + 3 : 0;
    *as = a;
    *ae = a + strcspn(url + a, "/?#");
    if (*ae > n) *ae = n;
}

/* Bounded writer: NUL-terminated output; once something did not fit nothing more is written, so
 * a cut result is a prefix of the whole. */
struct out {
    char *p;
    size_t cap, len;
    int cut;
};

static void put(struct out *o, const char *s, size_t n) {
    for (size_t i = 0; i < n && !o->cut; i++) {
        unsigned char c = (unsigned char)s[i];
        char enc[4];
        size_t el = 1;
        enc[0] = (char)c;
        if (c < 0x20 || c == 0x7f) { /* never print a raw control character */
            snprintf(enc, sizeof enc, "%%%02X", c);
            el = 3;
        }
        if (o->len + el >= o->cap) {
            o->cut = 1;
            return;
        }
        memcpy(o->p + o->len, enc, el);
        o->len += el;
        o->p[o->len] = '\0';
    }
}

int cx_http_url_redact(const char *url, char *out, size_t outlen) {
    if (out == NULL || outlen == 0) return CX_EINVAL;
    out[0] = '\0';
    if (url == NULL) return CX_EINVAL;
    struct out o = {out, outlen, 0, 0};
    size_t as, ae;
    authority_span(url, &as, &ae);
    const char *at = NULL;
    for (size_t i = as; i < ae; i++)
        if (url[i] == '@') at = url + i;
    put(&o, url, as);
    const char *host = at ? at + 1 : url + as;
    size_t q = ae + strcspn(url + ae, "?#");
    put(&o, host, (size_t)(url + q - host));
    /* Parameters after '?' or '#': name=value pairs split on '&' (and ';', which some servers
     * accept too); a secret's value becomes REDACTED, everything else is kept. */
    const char *s = url + q;
    while (*s) {
        size_t sep = 1;
        put(&o, s, sep); /* '?', '#', '&' or ';' */
        s += sep;
        size_t plen = strcspn(s, "&;#");
        const char *eq = memchr(s, '=', plen);
        if (eq != NULL && secret_param(s, (size_t)(eq - s))) {
            put(&o, s, (size_t)(eq - s) + 1);
            put(&o, "REDACTED", 8);
        } else {
            put(&o, s, plen);
        }
        s += plen;
    }
    return o.cut ? CX_ETOOBIG : 0;
}

/* ---- validation and normalization ---- */

struct parts {
    const char *scheme, *user, *host, *port, *path, *query;
    size_t scheme_len, user_len, host_len, port_len, path_len, query_len;
    int has_user, has_port, has_query;
    long portnum;
};

static int host_char(unsigned char c) {
    return isalnum(c) || strchr("-._~%!$&'()*+,;=", c) != NULL;
}

/* Splits and checks url; on failure writes the reason (without the URL) into why[n]. */
static int split(const char *url, struct parts *p, char *why, size_t n) {
    memset(p, 0, sizeof *p);
    for (size_t i = 0; url[i]; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c == ' ') {
            snprintf(why, n, "contains a space at byte %zu (percent-encode it as %%20)", i);
            return CX_EINVAL;
        }
        if (c < 0x20 || c == 0x7f) {
            snprintf(why, n, "contains a control character (0x%02x) at byte %zu", c, i);
            return CX_EINVAL;
        }
        if (c >= 0x80) {
            snprintf(why, n, "contains a non-ASCII byte (0x%02x) at byte %zu (percent-encode it)", c, i);
            return CX_EINVAL;
        }
    }
    const char *sep = strstr(url, "://");
    size_t sl = sep ? (size_t)(sep - url) : 0;
    int scheme_ok = sep != NULL && sl > 0 && isalpha((unsigned char)url[0]);
    for (size_t i = 0; scheme_ok && i < sl; i++)
        scheme_ok = isalnum((unsigned char)url[i]) || strchr("+-.", url[i]) != NULL;
    if (!scheme_ok) {
        snprintf(why, n, "is not an http(s) URL (expected http://HOST[:PORT][/PATH])");
        return 1; /* the caller words this one differently */
    }
    p->scheme = url;
    p->scheme_len = sl;
    if (!((sl == 4 && strncasecmp(url, "http", 4) == 0) || (sl == 5 && strncasecmp(url, "https", 5) == 0))) {
        snprintf(why, n, "scheme '%.*s' is not supported (use http or https)", (int)(sl < 32 ? sl : 32), url);
        return CX_EINVAL;
    }
    size_t as, ae;
    authority_span(url, &as, &ae);
    const char *a = url + as, *aend = url + ae;
    for (const char *c = a; c < aend; c++)
        if (*c == '@') p->user = a, p->user_len = (size_t)(c - a), p->has_user = 1;
    const char *h = p->has_user ? a + p->user_len + 1 : a; /* the '@' lies before aend */
    size_t hl = h < aend ? (size_t)(aend - h) : 0;
    const char *hend;
    if (hl > 0 && *h == '[') { /* an IPv6 literal */
        const char *rb = memchr(h, ']', hl);
        if (rb == NULL) {
            snprintf(why, n, "has an IPv6 host without its closing ']'");
            return CX_EINVAL;
        }
        for (const char *c = h + 1; c < rb; c++) {
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.' && *c != '%') {
                snprintf(why, n, "IPv6 host '%.*s' has a character URLs do not allow ('%c')",
                         (int)(rb + 1 - h), h, *c);
                return CX_EINVAL;
            }
        }
        hend = rb + 1;
        if (hend < aend && *hend != ':') {
            snprintf(why, n, "has '%c' after the IPv6 host (expected ':PORT' or '/PATH')", *hend);
            return CX_EINVAL;
        }
    } else {
        hend = memchr(h, ':', hl);
        if (hend == NULL) hend = aend;
        for (const char *c = h; c < hend; c++) {
            if (!host_char((unsigned char)*c)) {
                snprintf(why, n, "host '%.*s' has a character URLs do not allow ('%c')",
                         (int)(hend - h), h, *c);
                return CX_EINVAL;
            }
        }
    }
    p->host = h;
    p->host_len = (size_t)(hend - h);
    if (p->host_len == 0 || (p->host_len == 2 && h[0] == '[')) {
        snprintf(why, n, "has no host");
        return CX_EINVAL;
    }
    if (hend < aend) { /* ':' then the port */
        p->has_port = 1;
        p->port = hend + 1;
        p->port_len = (size_t)(aend - p->port);
        if (p->port_len == 0) {
            snprintf(why, n, "has an empty port after ':'");
            return CX_EINVAL;
        }
        long v = 0;
        for (size_t i = 0; i < p->port_len; i++) {
            if (!isdigit((unsigned char)p->port[i])) {
                snprintf(why, n, "port '%.*s' is not a number", (int)p->port_len, p->port);
                return CX_EINVAL;
            }
            if (v <= 65535) v = v * 10 + (p->port[i] - '0');
        }
        if (v < 1 || v > 65535) {
            snprintf(why, n, "port %.*s is out of range (1..65535)", (int)p->port_len, p->port);
            return CX_EINVAL;
        }
        p->portnum = v;
    }
    const char *rest = aend;
    if (strchr(rest, '#') != NULL) {
        snprintf(why, n, "has a fragment ('#...'), which a base URL cannot carry");
        return CX_EINVAL;
    }
    p->path = rest;
    p->path_len = strcspn(rest, "?");
    if (rest[p->path_len] == '?') {
        p->has_query = 1;
        p->query = rest + p->path_len + 1;
        p->query_len = strlen(p->query);
    }
    return 0;
}

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t sl = strlen(suffix);
    return n >= sl && memcmp(s + n - sl, suffix, sl) == 0;
}

/* The endpoint the client appends to a normalized base. */
static const char *endpoint(enum cx_api api) {
    return api == CX_API_ANTHROPIC ? "/messages" : "/chat/completions";
}

int cx_http_base_url_normalize(enum cx_api api, const char *url, char **out, struct cx_errinfo *ei) {
    if (out == NULL) return cx__err(ei, CX_EINVAL, "cx_http_base_url_normalize: out is NULL");
    *out = NULL;
    if (api != CX_API_OPENAI && api != CX_API_ANTHROPIC)
        return cx__err(ei, CX_EINVAL, "cx_http_base_url_normalize: api is %d (unknown)", (int)api);
    if (url == NULL || url[0] == '\0') return cx__err(ei, CX_EINVAL, "base URL is empty");
    char shown[200], why[160];
    struct parts p;
    int rc = split(url, &p, why, sizeof why);
    if (rc != 0) {
        cx_http_url_redact(url, shown, sizeof shown);
        return cx__err(ei, CX_EINVAL, "base URL '%s'%s%s", shown, rc == 1 ? " " : ": ", why);
    }
    /* The path: no trailing '/', no endpoint the client appends itself (a pasted full URL). */
    size_t pl = p.path_len;
    const char *ep = endpoint(api);
    for (;;) {
        while (pl > 0 && p.path[pl - 1] == '/') pl--;
        if (!ends_with(p.path, pl, ep)) break;
        pl -= strlen(ep);
    }
    /* The version: the OpenAI SDK appends the endpoint to its base as is, and its bases carry the
     * version ("/v1", "/api/openai/v1", "/v1beta/openai"), so only a base with no path at all
     * gets "/v1". The Anthropic SDK's base has no version and it appends "/v1/messages", so a
     * base that does not already end in "/v1" gets it. */
    int add_v1 = !ends_with(p.path, pl, "/v1") && (api == CX_API_ANTHROPIC || pl == 0);

    struct cx__buf b;
    cx__buf_init(&b, strlen(url) + 64);
    for (size_t i = 0; rc == 0 && i < p.scheme_len; i++) {
        char c = (char)tolower((unsigned char)p.scheme[i]);
        rc = cx__buf_append(&b, &c, 1);
    }
    if (rc == 0) rc = cx__buf_append(&b, "://", 3);
    if (rc == 0 && p.has_user) rc = cx__buf_append(&b, p.user, p.user_len + 1); /* with '@' */
    for (size_t i = 0; rc == 0 && i < p.host_len; i++) {
        char c = (char)tolower((unsigned char)p.host[i]);
        rc = cx__buf_append(&b, &c, 1);
    }
    if (rc == 0 && p.has_port) rc = cx__buf_printf(&b, ":%ld", p.portnum);
    if (rc == 0) rc = cx__buf_append(&b, p.path, pl);
    if (rc == 0 && add_v1) rc = cx__buf_append(&b, "/v1", 3);
    if (rc == 0 && p.has_query) rc = cx__buf_append(&b, p.query - 1, p.query_len + 1); /* with '?' */
    char *s = rc == 0 ? cx__buf_take(&b) : NULL;
    if (s == NULL) {
        cx__buf_reset(&b);
        return cx__err(ei, CX_ENOMEM, "cx_http_base_url_normalize: out of memory");
    }
    *out = s;
    return 0;
}

int cx__http_endpoint_url(enum cx_api api, const char *base, char **out, struct cx_errinfo *ei) {
    char *norm;
    int rc = cx_http_base_url_normalize(api, base, &norm, ei);
    if (rc < 0) return rc;
    const char *ep = endpoint(api);
    size_t ql = strcspn(norm, "?");
    struct cx__buf b;
    cx__buf_init(&b, strlen(norm) + strlen(ep) + 1);
    rc = cx__buf_append(&b, norm, ql);
    if (rc == 0) rc = cx__buf_append(&b, ep, strlen(ep));
    if (rc == 0 && norm[ql]) rc = cx__buf_append(&b, norm + ql, strlen(norm + ql));
    cx__free(norm);
    *out = rc == 0 ? cx__buf_take(&b) : NULL;
    if (*out == NULL) {
        cx__buf_reset(&b);
        return cx__err(ei, CX_ENOMEM, "cx_http_xfer_new: out of memory building the URL");
    }
    return 0;
}

char *cx__http_url_redact_dup(const char *url) {
    size_t cap = strlen(url) + 64;
    for (;;) {
        char *s = cx__malloc(cap);
        if (s == NULL) return NULL;
        int rc = cx_http_url_redact(url, s, cap);
        if (rc == 0) return s;
        cx__free(s);
        if (rc != CX_ETOOBIG || cap > ((size_t)-1) / 4) return NULL;
        cap *= 4; /* control bytes grow 3x, short secret values by 8 bytes each */
    }
}

void cx__http_url_secret(const char *url, const char **ref, size_t *len) {
    *ref = NULL;
    *len = 0;
    size_t as, ae;
    authority_span(url, &as, &ae);
    const char *at = NULL;
    for (size_t i = as; i < ae; i++)
        if (url[i] == '@') at = url + i;
    if (at == NULL) return;
    const char *u = url + as;
    const char *colon = memchr(u, ':', (size_t)(at - u));
    const char *s = colon ? colon + 1 : u;
    if (at - s < 4) return;
    *ref = s;
    *len = (size_t)(at - s);
}
