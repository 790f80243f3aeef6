/*
 * hw.c - hardware probes over /proc, /sys and statvfs, and their one-line descriptions.
 *
 * Each probe reads small text files line by line with stdio and fills a fixed-size struct, so
 * nothing is allocated except by cx_hw_describe. The probes take a root directory standing in
 * for "/", which is how the tests feed them fake trees. This module does not ask the LLM for
 * advice (the pipeline does, with the text from cx_hw_describe) and does not cache results.
 *
 * DESIGN (threads). cx_hw_check_all starts one short-lived thread per probe (CPU, memory, disk,
 * GPU); each writes only its own fields of the report, so there is no shared state and no lock,
 * and the caller joins all four before reading the report. If a thread cannot be started the
 * probe runs on the caller's thread instead. There is no cancellation: every probe is a few
 * file reads.
 */
#include "cx/hw.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cx_internal.h"

static const char *root_of(const char *root) { return (root && *root) ? root : ""; }

static int errno_code(int e) {
    switch (e) {
    case ENOENT: case ENOTDIR: return CX_ENOENT;
    case EACCES: case EPERM: return CX_EPERM;
    case ENOMEM: return CX_ENOMEM;
    default: return CX_EIO;
    }
}

static FILE *open_at(const char *root, const char *rel, char *path, size_t cap, int *err) {
    snprintf(path, cap, "%s%s", root_of(root), rel);
    FILE *f = fopen(path, "re");
    *err = f ? 0 : errno;
    return f;
}

/* Splits "key<TAB>: value" into trimmed key and value; false when there is no ':'. */
static int split_kv(char *line, char **key, char **val) {
    char *c = strchr(line, ':');
    if (!c) return 0;
    *c = '\0';
    char *k = line, *v = c + 1, *e = c;
    while (e > k && isspace((unsigned char)e[-1])) *--e = '\0';
    while (isspace((unsigned char)*v)) v++;
    e = v + strlen(v);
    while (e > v && isspace((unsigned char)e[-1])) *--e = '\0';
    *key = k;
    *val = v;
    return 1;
}

/* Copies src into dst[cap], truncating. */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = 0;
    while (n + 1 < cap && src[n]) n++;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int has_flag(const char *flags, const char *f) {
    size_t n = strlen(f);
    for (const char *p = flags; (p = strstr(p, f)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

int cx_hw_cpu_at(const char *root, struct cx_hw_cpu *o, struct cx_errinfo *ei) {
    if (o == NULL) return cx__err(ei, CX_EINVAL, "cx_hw_cpu: o is NULL");
    memset(o, 0, sizeof *o);
    char path[512], line[4096];
    int err;
    FILE *f = open_at(root, "/proc/cpuinfo", path, sizeof path, &err);
    if (!f) return cx__err(ei, errno_code(err), "cannot read '%s': %s", path, strerror(err));
    int procs = 0, have_model = 0, have_flags = 0;
    while (fgets(line, sizeof line, f)) {
        char *k, *v;
        if (!split_kv(line, &k, &v)) continue;
        if (strcmp(k, "processor") == 0 && isdigit((unsigned char)v[0])) {
            procs++;
        } else if (!have_model && (strcmp(k, "model name") == 0 || strcmp(k, "Model") == 0 ||
                                   strcmp(k, "Hardware") == 0 || strcmp(k, "cpu model") == 0)) {
            copy_str(o->model, sizeof o->model, v);
            have_model = *v != '\0';
        } else if (o->mhz == 0 && strcmp(k, "cpu MHz") == 0) {
            o->mhz = strtod(v, NULL);
        } else if (!have_flags && (strcmp(k, "flags") == 0 || strcmp(k, "Features") == 0)) {
            static const char *const notable[] = {"avx512f", "avx2", "avx", "sse4_2", "aes",
                                                  "vmx", "svm", "hypervisor", "asimd", "sve",
                                                  NULL};
            size_t used = 0;
            for (const char *const *n = notable; *n; n++) {
                if (!has_flag(v, *n)) continue;
                size_t l = strlen(*n);
                if (used + l + 2 > sizeof o->flags_summary) break;
                if (used) o->flags_summary[used++] = ' ';
                memcpy(o->flags_summary + used, *n, l + 1);
                used += l;
            }
            have_flags = 1;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) return cx__err(ei, CX_EIO, "cannot read '%s': read error", path);
    if (procs == 0) return cx__err(ei, CX_EPARSE, "no processor entries in '%s'", path);
    o->cores_logical = procs;
    if (!have_model) copy_str(o->model, sizeof o->model, "unknown");
    if (o->mhz == 0) {
        f = open_at(root, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", path,
                    sizeof path, &err);
        if (f) {
            if (fgets(line, sizeof line, f)) o->mhz = strtod(line, NULL) / 1000.0; /* kHz */
            fclose(f);
        }
    }
    return 0;
}

int cx_hw_cpu(struct cx_hw_cpu *o, struct cx_errinfo *ei) { return cx_hw_cpu_at(NULL, o, ei); }

int cx_hw_mem_at(const char *root, struct cx_hw_mem *o, struct cx_errinfo *ei) {
    if (o == NULL) return cx__err(ei, CX_EINVAL, "cx_hw_mem: o is NULL");
    memset(o, 0, sizeof *o);
    char path[512], line[512];
    int err;
    FILE *f = open_at(root, "/proc/meminfo", path, sizeof path, &err);
    if (!f) return cx__err(ei, errno_code(err), "cannot read '%s': %s", path, strerror(err));
    uint64_t free_kb = 0, buffers = 0, cached = 0;
    int have_total = 0, have_avail = 0;
    while (fgets(line, sizeof line, f)) {
        char *k, *v;
        if (!split_kv(line, &k, &v)) continue;
        uint64_t n = strtoull(v, NULL, 10);
        if (strcmp(k, "MemTotal") == 0) o->total_kb = n, have_total = 1;
        else if (strcmp(k, "MemAvailable") == 0) o->available_kb = n, have_avail = 1;
        else if (strcmp(k, "MemFree") == 0) free_kb = n;
        else if (strcmp(k, "Buffers") == 0) buffers = n;
        else if (strcmp(k, "Cached") == 0) cached = n;
        else if (strcmp(k, "SwapTotal") == 0) o->swap_total_kb = n;
        else if (strcmp(k, "SwapFree") == 0) o->swap_free_kb = n;
    }
    fclose(f);
    if (!have_total) return cx__err(ei, CX_EPARSE, "no MemTotal in '%s'", path);
    if (!have_avail) o->available_kb = free_kb + buffers + cached; /* kernels before 3.14 */
    if (o->available_kb > o->total_kb) o->available_kb = o->total_kb;
    return 0;
}

int cx_hw_mem(struct cx_hw_mem *o, struct cx_errinfo *ei) { return cx_hw_mem_at(NULL, o, ei); }

int cx_hw_disk(const char *path, struct cx_hw_disk *o, struct cx_errinfo *ei) {
    if (path == NULL || o == NULL)
        return cx__err(ei, CX_EINVAL, "cx_hw_disk: %s is NULL", path ? "o" : "path");
    memset(o, 0, sizeof *o);
    struct statvfs st;
    if (statvfs(path, &st) != 0) {
        int e = errno;
        return cx__err(ei, errno_code(e), "cannot stat filesystem of '%s': %s", path, strerror(e));
    }
    copy_str(o->path, sizeof o->path, path);
    uint64_t fr = st.f_frsize ? st.f_frsize : st.f_bsize;
    o->total_bytes = (uint64_t)st.f_blocks * fr;
    o->free_bytes = (uint64_t)st.f_bavail * fr;
    return 0;
}

static const char *vendor_name(unsigned v) {
    switch (v) {
    case 0x10de: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x1af4: return "virtio";
    case 0x1234: return "QEMU";
    case 0x15ad: return "VMware";
    case 0x1a03: return "ASPEED";
    case 0x102b: return "Matrox";
    default: return "unknown vendor";
    }
}

static void add_gpu(struct cx_hw_gpu *o, const char *name) {
    if (o->count < CX_HW_MAX_GPUS) copy_str(o->names[o->count], sizeof o->names[0], name);
    o->count++;
}

static unsigned read_hex(const char *root, const char *rel, int *ok) {
    char path[512], line[64];
    int err;
    FILE *f = open_at(root, rel, path, sizeof path, &err);
    *ok = 0;
    if (!f) return 0;
    unsigned v = 0;
    if (fgets(line, sizeof line, f)) {
        v = (unsigned)strtoul(line, NULL, 16);
        *ok = 1;
    }
    fclose(f);
    return v;
}

/* Sorted scan so the order of GPUs is stable. */
static int cmp_names(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

int cx_hw_gpu_at(const char *root, struct cx_hw_gpu *o, struct cx_errinfo *ei) {
    if (o == NULL) return cx__err(ei, CX_EINVAL, "cx_hw_gpu: o is NULL");
    memset(o, 0, sizeof *o);
    char path[512], line[512], ents[64][64];
    size_t ne = 0;
    struct dirent *de;

    snprintf(path, sizeof path, "%s/proc/driver/nvidia/gpus", root_of(root));
    DIR *d = opendir(path);
    if (d) {
        while ((de = readdir(d)) != NULL && ne < 64)
            if (de->d_name[0] != '.') copy_str(ents[ne++], sizeof ents[0], de->d_name);
        closedir(d);
        qsort(ents, ne, sizeof ents[0], cmp_names);
        for (size_t i = 0; i < ne; i++) {
            char rel[256];
            int err;
            snprintf(rel, sizeof rel, "/proc/driver/nvidia/gpus/%.63s/information", ents[i]);
            FILE *f = open_at(root, rel, path, sizeof path, &err);
            if (!f) continue;
            char model[128] = "NVIDIA GPU";
            while (fgets(line, sizeof line, f)) {
                char *k, *v;
                if (split_kv(line, &k, &v) && strcmp(k, "Model") == 0 && *v) {
                    copy_str(model, sizeof model, v);
                    break;
                }
            }
            fclose(f);
            add_gpu(o, model);
        }
        if (o->count > 0) return 0;
    }

    ne = 0;
    snprintf(path, sizeof path, "%s/sys/class/drm", root_of(root));
    d = opendir(path);
    if (!d) return 0;
    while ((de = readdir(d)) != NULL && ne < 64) {
        /* card0, card1...: skip connectors such as card0-HDMI-A-1 and render nodes. */
        const char *n = de->d_name;
        if (strncmp(n, "card", 4) != 0 || !n[4] || strspn(n + 4, "0123456789") != strlen(n + 4))
            continue;
        copy_str(ents[ne++], sizeof ents[0], n);
    }
    closedir(d);
    qsort(ents, ne, sizeof ents[0], cmp_names);
    for (size_t i = 0; i < ne; i++) {
        char rel[256], name[128];
        int okv, okd;
        snprintf(rel, sizeof rel, "/sys/class/drm/%.63s/device/vendor", ents[i]);
        unsigned vendor = read_hex(root, rel, &okv);
        snprintf(rel, sizeof rel, "/sys/class/drm/%.63s/device/device", ents[i]);
        unsigned device = read_hex(root, rel, &okd);
        if (!okv) continue;
        snprintf(name, sizeof name, "%s GPU [%04x:%04x]", vendor_name(vendor), vendor,
                 okd ? device : 0u);
        add_gpu(o, name);
    }
    return 0;
}

int cx_hw_gpu(struct cx_hw_gpu *o, struct cx_errinfo *ei) { return cx_hw_gpu_at(NULL, o, ei); }

/* ---- all at once ---- */

struct probe {
    const char *root;
    const char *disk_path;
    struct cx_hw_report *r;
    int which;
};

static void *probe_main(void *arg) {
    struct probe *p = arg;
    switch (p->which) {
    case CX_HW_CPU: p->r->cpu_rc = cx_hw_cpu_at(p->root, &p->r->cpu, NULL); break;
    case CX_HW_MEMORY: p->r->mem_rc = cx_hw_mem_at(p->root, &p->r->mem, NULL); break;
    case CX_HW_DISK: p->r->disk_rc = cx_hw_disk(p->disk_path, &p->r->disk, NULL); break;
    default: p->r->gpu_rc = cx_hw_gpu_at(p->root, &p->r->gpu, NULL); break;
    }
    return NULL;
}

int cx_hw_check_all(const char *root, const char *disk_path, struct cx_hw_report *out) {
    if (out == NULL) return CX_EINVAL;
    memset(out, 0, sizeof *out);
    char dpath[512];
    if (disk_path == NULL) {
        snprintf(dpath, sizeof dpath, "%s/", root_of(root));
        disk_path = dpath;
    }
    struct probe p[4];
    pthread_t th[4];
    int started[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct probe){root, disk_path, out, i};
        started[i] = pthread_create(&th[i], NULL, probe_main, &p[i]) == 0;
        if (!started[i]) probe_main(&p[i]);
    }
    for (int i = 0; i < 4; i++)
        if (started[i]) pthread_join(th[i], NULL);
    if (out->cpu_rc == 0 || out->mem_rc == 0 || out->disk_rc == 0 || out->gpu_rc == 0) return 0;
    return out->cpu_rc;
}

/* ---- descriptions ---- */

const char *cx_hw_component_name(enum cx_hw_component c) {
    switch (c) {
    case CX_HW_CPU: return "cpu";
    case CX_HW_MEMORY: return "memory";
    case CX_HW_DISK: return "disk";
    case CX_HW_GPU: return "gpu";
    default: return NULL;
    }
}

static double gib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

static int pct_used(uint64_t total, uint64_t free_) {
    if (total == 0) return 0;
    return (int)(((double)(total - (free_ > total ? total : free_)) * 100.0) / (double)total + 0.5);
}

char *cx_hw_describe(enum cx_hw_component c, const struct cx_hw_report *r) {
    if (r == NULL || cx_hw_component_name(c) == NULL) return NULL;
    struct cx__buf b;
    cx__buf_init(&b, 4096);
    int rc;
    switch (c) {
    case CX_HW_CPU:
        rc = cx__buf_printf(&b, "Hardware check: cpu %s, %d cores, %.0f MHz, flags %s",
                            r->cpu.model, r->cpu.cores_logical, r->cpu.mhz,
                            r->cpu.flags_summary[0] ? r->cpu.flags_summary : "none notable");
        break;
    case CX_HW_MEMORY:
        rc = cx__buf_printf(&b,
                            "Hardware check: memory %.1f GiB total, %.1f GiB available (%d%% "
                            "used), swap %.1f GiB",
                            gib(r->mem.total_kb * 1024), gib(r->mem.available_kb * 1024),
                            pct_used(r->mem.total_kb, r->mem.available_kb),
                            gib(r->mem.swap_total_kb * 1024));
        break;
    case CX_HW_DISK:
        rc = cx__buf_printf(&b, "Hardware check: disk %s %.1f GiB total, %.1f GiB free (%d%% used)",
                            r->disk.path, gib(r->disk.total_bytes), gib(r->disk.free_bytes),
                            pct_used(r->disk.total_bytes, r->disk.free_bytes));
        break;
    default:
        if (r->gpu.count == 0) {
            rc = cx__buf_printf(&b, "Hardware check: gpu none detected");
            break;
        }
        rc = cx__buf_printf(&b, "Hardware check: gpu %d GPU%s:", r->gpu.count,
                            r->gpu.count == 1 ? "" : "s");
        for (int i = 0; rc == 0 && i < r->gpu.count && i < CX_HW_MAX_GPUS; i++)
            rc = cx__buf_printf(&b, "%s %s", i ? ";" : "", r->gpu.names[i]);
        break;
    }
    if (rc < 0) return NULL; /* the buffer freed itself */
    return cx__buf_take(&b);
}
