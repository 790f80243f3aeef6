/*
 * content_validate.c - a small JSON Schema validator for the subset content.h lists, so the mock
 * (and its tests) can prove that generated structured output and tool arguments are valid.
 *
 * A recursive check of one value against one schema, carrying the JSON path ("$.a[2].b") for the
 * first failure it reports. anyOf/oneOf/not run their branches quietly and report only the
 * combined result. Patterns go through POSIX extended regexes after \d \w \s (and their upper
 * case forms) are translated to bracket classes, which covers the patterns tool schemas use in
 * practice. Annotations (title, description, default, examples, format) are not checked; neither
 * are keywords outside the subset (patternProperties, contains, if/then/else, dependencies).
 *
 * It does not generate values (content_schema.c). Allocation: only regcomp's and a translated
 * pattern buffer, freed before returning.
 */
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content_internal.h"

#define MAX_DEPTH 64
#define PATH_CAP 512

struct vctx {
    const cJSON *root;
    char *err;
    size_t errlen;
    int quiet; /* inside anyOf/oneOf/not: no messages */
};

static int vfail(struct vctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int vfail(struct vctx *c, const char *path, const char *fmt, ...) {
    if (!c->quiet && c->err != NULL && c->errlen > 0) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "%s: %s", path, msg);
    }
    return -1;
}

static int check(struct vctx *c, const cJSON *s, const cJSON *v, char *path, int depth);

/* Appends ".key" or "[i]" to path for a child check, and restores it afterwards. */
static int check_child(struct vctx *c, const cJSON *s, const cJSON *v, char *path, int depth,
                       const char *key, int index) {
    size_t pl = strlen(path);
    if (key != NULL) snprintf(path + pl, PATH_CAP - pl, ".%s", key);
    else snprintf(path + pl, PATH_CAP - pl, "[%d]", index);
    int rc = check(c, s, v, path, depth + 1);
    path[pl] = '\0';
    return rc;
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return v->valuedouble == floor(v->valuedouble) ? "integer" : "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "array";
    return "object";
}

static int has_type(const cJSON *v, const char *t) {
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble);
    if (strcmp(t, "number") == 0) return cJSON_IsNumber(v);
    if (strcmp(t, "integer") != 0 && cJSON_IsNumber(v)) return 0; /* not "number": mismatch */
    return strcmp(type_name(v), t) == 0;
}

/* ECMA-style escapes to POSIX ERE. Returns a malloc'd pattern or NULL (out of memory). */
static char *to_posix(const char *pat) {
    size_t cap = strlen(pat) * 16 + 1, o = 0;
    char *out = malloc(cap);
    int in_class = 0;
    if (out == NULL) return NULL;
    for (const char *p = pat; *p; p++) {
        const char *rep = NULL;
        char one[3] = {0};
        if (*p == '\\' && p[1]) {
            char e = *++p;
            if (in_class) {
                rep = e == 'd' ? "0-9" : e == 'w' ? "A-Za-z0-9_" : e == 's' ? "[:space:]" : NULL;
                if (rep == NULL) one[0] = e, rep = one;
            } else {
                rep = e == 'd' ? "[0-9]" : e == 'w' ? "[A-Za-z0-9_]" : e == 's' ? "[[:space:]]"
                    : e == 'D' ? "[^0-9]" : e == 'W' ? "[^A-Za-z0-9_]" : e == 'S' ? "[^[:space:]]"
                    : NULL;
                if (rep == NULL && strchr(".[]()*+?{}|^$\\", e)) one[0] = '\\', one[1] = e;
                else if (rep == NULL) one[0] = e;
                if (rep == NULL) rep = one;
            }
        } else {
            if (*p == '[' && !in_class) in_class = 1;
            else if (*p == ']' && in_class && p[-1] != '[' && !(p[-1] == '^' && p[-2] == '['))
                in_class = 0;
            one[0] = *p;
            rep = one;
        }
        size_t rl = strlen(rep);
        memcpy(out + o, rep, rl);
        o += rl;
    }
    out[o] = '\0';
    return out;
}

static int check_pattern(struct vctx *c, const char *pat, const char *str, const char *path) {
    char *px = to_posix(pat);
    regex_t re;
    if (px == NULL) return vfail(c, path, "out of memory");
    int rc = regcomp(&re, px, REG_EXTENDED | REG_NOSUB);
    free(px);
    if (rc != 0) return vfail(c, path, "pattern \"%s\" is not supported", pat);
    rc = regexec(&re, str, 0, NULL, 0);
    regfree(&re);
    return rc == 0 ? 0 : vfail(c, path, "\"%.60s\" does not match pattern \"%s\"", str, pat);
}

static size_t cp_count(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The number s[key], or NAN when it is absent or not a number. */
static double num(const cJSON *s, const char *key) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(s, key);
    return cJSON_IsNumber(k) ? k->valuedouble : NAN;
}

static int check_number(struct vctx *c, const cJSON *s, double x, const char *path) {
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minimum"),
                *mx = cJSON_GetObjectItemCaseSensitive(s, "maximum");
    const cJSON *emn = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum"),
                *emx = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    if (cJSON_IsNumber(mn) && (x < mn->valuedouble || (cJSON_IsTrue(emn) && x == mn->valuedouble)))
        return vfail(c, path, "%g is below the minimum %g", x, mn->valuedouble);
    if (cJSON_IsNumber(mx) && (x > mx->valuedouble || (cJSON_IsTrue(emx) && x == mx->valuedouble)))
        return vfail(c, path, "%g is above the maximum %g", x, mx->valuedouble);
    if (cJSON_IsNumber(emn) && x <= emn->valuedouble)
        return vfail(c, path, "%g is not above the exclusive minimum %g", x, emn->valuedouble);
    if (cJSON_IsNumber(emx) && x >= emx->valuedouble)
        return vfail(c, path, "%g is not below the exclusive maximum %g", x, emx->valuedouble);
    double m = num(s, "multipleOf");
    if (m > 0 && fabs(x / m - round(x / m)) > 1e-9 * fmax(1.0, fabs(x / m)))
        return vfail(c, path, "%g is not a multiple of %g", x, m);
    return 0;
}

static int check_object(struct vctx *c, const cJSON *s, const cJSON *v, char *path, int depth) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    const cJSON *k, *m;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(s, "required")) {
        if (cJSON_IsString(k) && !cJSON_GetObjectItemCaseSensitive(v, k->valuestring))
            return vfail(c, path, "missing required property \"%s\"", k->valuestring);
    }
    cJSON_ArrayForEach(m, v) {
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, m->string);
        if (ps != NULL) {
            if (check_child(c, ps, m, path, depth, m->string, 0) < 0) return -1;
        } else if (cJSON_IsFalse(addl)) {
            return vfail(c, path, "property \"%s\" is not allowed", m->string);
        } else if (cJSON_IsObject(addl)) {
            if (check_child(c, addl, m, path, depth, m->string, 0) < 0) return -1;
        }
    }
    int n = cJSON_GetArraySize(v);
    double lo = num(s, "minProperties"), hi = num(s, "maxProperties");
    if (n < lo) return vfail(c, path, "%d properties, fewer than %g", n, lo);
    if (n > hi) return vfail(c, path, "%d properties, more than %g", n, hi);
    return 0;
}

static int check_array(struct vctx *c, const cJSON *s, const cJSON *v, char *path, int depth) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    if (cJSON_IsArray(items)) {
        prefix = items;
        items = cJSON_GetObjectItemCaseSensitive(s, "additionalItems");
    }
    int n = cJSON_GetArraySize(v), npre = cJSON_GetArraySize(prefix);
    double lo = num(s, "minItems"), hi = num(s, "maxItems");
    if (n < lo) return vfail(c, path, "%d items, fewer than %g", n, lo);
    if (n > hi) return vfail(c, path, "%d items, more than %g", n, hi);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        const cJSON *sch = i < npre ? cJSON_GetArrayItem(prefix, i) : items;
        if (sch != NULL && check_child(c, sch, e, path, depth, NULL, i) < 0) return -1;
        i++;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "uniqueItems"))) {
        int a = 0;
        for (const cJSON *x = v->child; x; x = x->next, a++) {
            int b = a + 1;
            for (const cJSON *y = x->next; y; y = y->next, b++)
                if (cJSON_Compare(x, y, 1))
                    return vfail(c, path, "items %d and %d are equal", a, b);
        }
    }
    return 0;
}

/* anyOf (want = -1: at least one), oneOf (want = 1: exactly one), allOf (want = -2: all). */
static int check_branches(struct vctx *c, const cJSON *list, const cJSON *v, char *path,
                          int depth, int want) {
    int ok = 0, n = 0, quiet = c->quiet;
    const cJSON *b;
    if (want != -2) c->quiet = 1;
    cJSON_ArrayForEach(b, list) {
        n++;
        if (check(c, b, v, path, depth + 1) == 0) ok++;
        else if (want == -2) return -1;
    }
    c->quiet = quiet;
    if (want == -1 && ok == 0) return vfail(c, path, "matches none of the %d anyOf schemas", n);
    if (want == 1 && ok != 1) return vfail(c, path, "matches %d of the oneOf schemas, not 1", ok);
    return 0;
}

static int check(struct vctx *c, const cJSON *s, const cJSON *v, char *path, int depth) {
    const cJSON *k;
    if (depth > MAX_DEPTH) return vfail(c, path, "schema nesting deeper than %d", MAX_DEPTH);
    if (cJSON_IsTrue(s)) return 0;
    if (cJSON_IsFalse(s)) return vfail(c, path, "no value is allowed here (schema false)");
    if (!cJSON_IsObject(s)) return vfail(c, path, "schema is not an object or boolean");
    if (cJSON_IsString(k = cJSON_GetObjectItemCaseSensitive(s, "$ref"))) {
        const cJSON *t = mock__schema_ref(c->root, k->valuestring);
        if (t == NULL) return vfail(c, path, "$ref '%s' not found", k->valuestring);
        if (check(c, t, v, path, depth + 1) < 0) return -1;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "type")) != NULL) {
        int ok = 0;
        const cJSON *t;
        if (cJSON_IsString(k)) ok = has_type(v, k->valuestring);
        else cJSON_ArrayForEach(t, k) ok |= cJSON_IsString(t) && has_type(v, t->valuestring);
        if (!ok) {
            char *want = cJSON_IsString(k) ? NULL : cJSON_PrintUnformatted(k);
            int rc = vfail(c, path, "expected type %s, got %s",
                           want ? want : k->valuestring ? k->valuestring : "?", type_name(v));
            cJSON_free(want);
            return rc;
        }
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "const")) != NULL && !cJSON_Compare(k, v, 1))
        return vfail(c, path, "not the const value");
    if (cJSON_IsArray(k = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
        int ok = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, k) ok |= cJSON_Compare(e, v, 1);
        if (!ok) return vfail(c, path, "not one of the enum values");
    }
    if (cJSON_IsString(v)) {
        size_t n = cp_count(v->valuestring);
        double lo = num(s, "minLength"), hi = num(s, "maxLength");
        if ((double)n < lo) return vfail(c, path, "length %zu is below minLength %g", n, lo);
        if ((double)n > hi) return vfail(c, path, "length %zu is above maxLength %g", n, hi);
        if (cJSON_IsString(k = cJSON_GetObjectItemCaseSensitive(s, "pattern")) &&
            check_pattern(c, k->valuestring, v->valuestring, path) < 0)
            return -1;
    } else if (cJSON_IsNumber(v)) {
        if (check_number(c, s, v->valuedouble, path) < 0) return -1;
    } else if (cJSON_IsObject(v)) {
        if (check_object(c, s, v, path, depth) < 0) return -1;
    } else if (cJSON_IsArray(v)) {
        if (check_array(c, s, v, path, depth) < 0) return -1;
    }
    if (cJSON_IsArray(k = cJSON_GetObjectItemCaseSensitive(s, "allOf")) &&
        check_branches(c, k, v, path, depth, -2) < 0)
        return -1;
    if (cJSON_IsArray(k = cJSON_GetObjectItemCaseSensitive(s, "anyOf")) &&
        check_branches(c, k, v, path, depth, -1) < 0)
        return -1;
    if (cJSON_IsArray(k = cJSON_GetObjectItemCaseSensitive(s, "oneOf")) &&
        check_branches(c, k, v, path, depth, 1) < 0)
        return -1;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "not")) != NULL) {
        int quiet = c->quiet;
        c->quiet = 1;
        int rc = check(c, k, v, path, depth + 1);
        c->quiet = quiet;
        if (rc == 0) return vfail(c, path, "matches the schema under \"not\"");
    }
    return 0;
}

int mock_schema_validate(const cJSON *schema, const cJSON *value, char *err, size_t errlen) {
    struct vctx c = {schema, err, errlen, 0};
    char path[PATH_CAP] = "$";
    if (err != NULL && errlen > 0) err[0] = '\0';
    if (schema == NULL || value == NULL) return vfail(&c, path, "no schema or no value");
    return check(&c, schema, value, path, 0);
}
