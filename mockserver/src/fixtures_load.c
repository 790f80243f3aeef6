/*
 * fixtures_load.c - where fixture rules come from and which set is current: reading a fixture
 * file, or every *.json file of a directory (recordings) in name order with their rules
 * concatenated; installing a set as the server's current one and taking references on it; and
 * the server's start/stop hooks (the options, record mode). Parsing is fixtures.c's.
 *
 * A rule set is immutable once installed (only the rules' atomic call counters move). The
 * server's pointer to the current set is guarded by the state's mutex; a request takes a
 * reference under that mutex and drops it in its completion callback, and a reload installs a
 * fully built set under the mutex and drops the server's reference on the old one, which is
 * freed by whichever holder lets go last. A failed load installs nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixtures.h"

static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mock__err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct mock_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        mock__buf_add(&b, chunk, n);
    int bad = ferror(fp);
    fclose(fp);
    mock__buf_add(&b, "", 0);
    if (bad || b.oom) {
        mock__buf_free(&b);
        mock__err(err, errlen, "%s: cannot read", path);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

static int load_file(const char *path, struct mock_fixtures **out, char *err, size_t errlen)
{
    size_t len;
    char *t = slurp(path, &len, err, errlen);
    if (!t)
        return -1;
    int rc = mock__fx_parse(t, len, path, out, err, errlen);
    free(t);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends src's rules to dst (src emptied and freed); file names which file they came from. */
static int merge(struct mock_fixtures *dst, struct mock_fixtures *src, const char *file)
{
    struct mock_fx_rule *nr = realloc(dst->rules, (dst->n + src->n + 1) * sizeof *nr);
    if (!nr)
        return -1;
    dst->rules = nr;
    size_t *fo = realloc(dst->file_of, (dst->n + src->n + 1) * sizeof *fo);
    char **fl = fo ? realloc(dst->files, (dst->nfiles + 1) * sizeof *fl) : NULL;
    if (fo)
        dst->file_of = fo;
    if (!fl)
        return -1;
    dst->files = fl;
    if (!(dst->files[dst->nfiles] = strdup(file)))
        return -1;
    for (size_t i = 0; i < src->n; i++) {
        memcpy(&dst->rules[dst->n], &src->rules[i], sizeof src->rules[i]);
        dst->file_of[dst->n++] = dst->nfiles;
    }
    dst->nfiles++;
    dst->need_body |= src->need_body;
    src->n = 0;
    mock__fx_unref(src); /* its only reference */
    return 0;
}

int mock__fx_load_path(const char *path, int is_dir, struct mock_fixtures **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (!is_dir)
        return load_file(path, out, err, errlen);
    DIR *d = opendir(path);
    if (!d)
        return mock__err(err, errlen, "%s: cannot open directory: %s", path, strerror(errno));
    char **names = NULL;
    size_t nn = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") || de->d_name[0] == '.')
            continue;
        char **nb = realloc(names, (nn + 1) * sizeof *names);
        if (!nb || !(nb[nn] = strdup(de->d_name))) {
            names = nb ? nb : names;
            rc = mock__err(err, errlen, "out of memory");
            break;
        }
        names = nb;
        nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str);
    struct mock_fixtures *all = calloc(1, sizeof *all);
    if (!all && rc == 0)
        rc = mock__err(err, errlen, "out of memory");
    if (all) {
        atomic_init(&all->refs, 1);
        snprintf(all->source, sizeof all->source, "%s", path);
    }
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        struct mock_fixtures *one;
        if ((rc = load_file(full, &one, err, errlen)) < 0)
            break;
        if (merge(all, one, full) < 0) {
            mock__fx_unref(one);
            rc = mock__err(err, errlen, "out of memory");
        }
    }
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (rc < 0) {
        mock__fx_unref(all);
        return -1;
    }
    *out = all;
    return 0;
}

/* ---- the server's current set ---- */

void mock__fx_install(struct mock_fx_state *st, struct mock_fixtures *f)
{
    pthread_mutex_lock(&st->mu);
    struct mock_fixtures *old = st->cur;
    if (f)
        f->generation = ++st->generation;
    st->cur = f;
    atomic_store_explicit(&st->active, f || st->strict || st->rec, memory_order_release);
    pthread_mutex_unlock(&st->mu);
    mock__fx_unref(old);
}

struct mock_fixtures *mock__fx_acquire(struct mock_fx_state *st)
{
    pthread_mutex_lock(&st->mu);
    struct mock_fixtures *f = st->cur;
    if (f)
        mock__fx_ref(f);
    pthread_mutex_unlock(&st->mu);
    return f;
}

int mock__fx_start(struct mock_server *s, const struct mock_options *o, char *err,
                   size_t errlen)
{
    int n = (o->fixtures_path && *o->fixtures_path) + (o->replay_dir && *o->replay_dir) +
            (o->record_dir && *o->record_dir);
    if (n > 1)
        return mock__err(err, errlen, "fixtures, replay and record exclude each other"),
               MOCK_EINVAL;
    if ((o->record_dir && *o->record_dir) != (o->upstream && *o->upstream))
        return mock__err(err, errlen, "record needs both a directory and an upstream URL"),
               MOCK_EINVAL;
    struct mock_fx_state *st = calloc(1, sizeof *st);
    if (!st)
        return mock__err(err, errlen, "out of memory"), MOCK_ENOMEM;
    pthread_mutex_init(&st->mu, NULL);
    st->strict = o->strict;
    s->fx = st;
    const char *src = o->fixtures_path && *o->fixtures_path ? o->fixtures_path : o->replay_dir;
    if (src && *src) {
        struct stat sb;
        int is_dir = stat(src, &sb) == 0 && S_ISDIR(sb.st_mode);
        if (o->replay_dir && *o->replay_dir && !is_dir)
            return mock__err(err, errlen, "replay: %s is not a directory", src), MOCK_EFIXTURES;
        struct mock_fixtures *f;
        if (mock__fx_load_path(src, is_dir, &f, err, errlen) < 0)
            return MOCK_EFIXTURES;
        snprintf(st->source, sizeof st->source, "%s", src);
        st->source_is_dir = is_dir;
        mock__fx_install(st, f);
    }
    if (o->record_dir && *o->record_dir &&
        mock__rec_new(s, o->record_dir, o->upstream, &st->rec, err, errlen) < 0)
        return MOCK_EFIXTURES;
    atomic_store(&st->active, st->cur || st->strict || st->rec);
    return 0;
}

void mock__fx_stop(struct mock_server *s)
{
    if (s->fx && s->fx->rec)
        mock__rec_stop(s->fx->rec);
}

void mock__fx_free(struct mock_server *s)
{
    struct mock_fx_state *st = s->fx;
    if (!st)
        return;
    if (st->rec) {
        mock__rec_stop(st->rec);
        mock__rec_free(st->rec);
    }
    mock__fx_install(st, NULL);
    pthread_mutex_destroy(&st->mu);
    free(st);
    s->fx = NULL;
}
