/*
 * cx/hw.h - hardware checks read from /proc, /sys and statvfs (the seed's "concurrent hardware
 * checks for different components").
 *
 * Each probe reads a few small files and fills a plain struct; cx_hw_check_all runs the four
 * probes at once on their own threads. Every probe also has an `_at` form taking a root
 * directory that stands in for "/" (tests feed fake /proc and /sys trees; NULL or "" is "/").
 * cx_hw_describe turns a result into the one-line prompt the hardware-advice workload expects:
 * "Hardware check: <cpu|memory|disk|gpu> <details>".
 */
#ifndef CX_HW_H
#define CX_HW_H

#include <stddef.h>
#include <stdint.h>

#include "cx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cx_hw_cpu {
    char model[128];        /* "model name" of the first processor, "unknown" when absent */
    int cores_logical;      /* "processor" entries (online logical CPUs) */
    double mhz;             /* "cpu MHz" of the first processor, else cpufreq max, else 0 */
    char flags_summary[64]; /* notable flags present, e.g. "avx512f avx2 aes vmx" */
};

struct cx_hw_mem {
    uint64_t total_kb, available_kb; /* MemTotal, MemAvailable (or Free+Buffers+Cached) */
    uint64_t swap_total_kb, swap_free_kb;
};

struct cx_hw_disk {
    char path[64]; /* the path checked (truncated) */
    uint64_t total_bytes, free_bytes; /* free: available to unprivileged users */
};

#define CX_HW_MAX_GPUS 4
struct cx_hw_gpu {
    int count;                        /* GPUs found (may exceed CX_HW_MAX_GPUS); 0 when none */
    char names[CX_HW_MAX_GPUS][128];  /* the first CX_HW_MAX_GPUS names */
};

/*
 * CPU from <root>/proc/cpuinfo (and <root>/sys/devices/system/cpu/cpu0/cpufreq for the
 * frequency when cpuinfo has none). o: filled on success, zeroed first.
 * Errors: CX_EINVAL (NULL o), CX_ENOENT / CX_EPERM / CX_EIO "cannot read '<path>': <why>",
 * CX_EPARSE "no processor entries in '<path>'".
 * Threads: any thread.
 */
CX_API int cx_hw_cpu(struct cx_hw_cpu *o, struct cx_errinfo *ei);
CX_API int cx_hw_cpu_at(const char *root, struct cx_hw_cpu *o, struct cx_errinfo *ei);

/*
 * Memory from <root>/proc/meminfo. Errors: CX_EINVAL, CX_ENOENT/CX_EPERM/CX_EIO as above,
 * CX_EPARSE "no MemTotal in '<path>'". Threads: any thread.
 */
CX_API int cx_hw_mem(struct cx_hw_mem *o, struct cx_errinfo *ei);
CX_API int cx_hw_mem_at(const char *root, struct cx_hw_mem *o, struct cx_errinfo *ei);

/*
 * Disk space of the filesystem holding path (statvfs). path: borrowed.
 * Errors: CX_EINVAL (NULL), CX_ENOENT/CX_EPERM/CX_EIO "cannot stat filesystem of '<path>': ...".
 * Threads: any thread.
 */
CX_API int cx_hw_disk(const char *path, struct cx_hw_disk *o, struct cx_errinfo *ei);

/*
 * GPUs from <root>/proc/driver/nvidia/gpus/<bus>/information ("Model:" lines) when present,
 * else from <root>/sys/class/drm/card<N>/device/{vendor,device} ("NVIDIA GPU [10de:2330]").
 * No GPU (or no such directories) is success with count 0.
 * Errors: CX_EINVAL (NULL o). Threads: any thread.
 */
CX_API int cx_hw_gpu(struct cx_hw_gpu *o, struct cx_errinfo *ei);
CX_API int cx_hw_gpu_at(const char *root, struct cx_hw_gpu *o, struct cx_errinfo *ei);

/* All four checks, each with its own result code (0 or a negative CX_E*). */
struct cx_hw_report {
    struct cx_hw_cpu cpu;
    struct cx_hw_mem mem;
    struct cx_hw_disk disk;
    struct cx_hw_gpu gpu;
    int cpu_rc, mem_rc, disk_rc, gpu_rc;
};

/*
 * Runs the four probes concurrently, one thread each (inline if a thread cannot be started),
 * and waits for all of them. root as above; disk_path: the path whose filesystem is checked
 * (NULL: "/" under root). out: filled (zeroed first).
 * Returns 0 when at least one probe succeeded, else the CPU probe's error; CX_EINVAL for NULL out.
 * Threads: any thread.
 */
CX_API int cx_hw_check_all(const char *root, const char *disk_path, struct cx_hw_report *out);

enum cx_hw_component { CX_HW_CPU = 0, CX_HW_MEMORY = 1, CX_HW_DISK = 2, CX_HW_GPU = 3 };

/* "cpu", "memory", "disk", "gpu" (NULL for anything else). Threads: any thread. */
CX_API const char *cx_hw_component_name(enum cx_hw_component c);

/*
 * The one-line prompt for component c from r, e.g.
 * "Hardware check: cpu Intel(R) Xeon(R) Gold 6338, 16 cores, 2000 MHz, flags avx512f avx2 aes"
 * "Hardware check: memory 15.6 GiB total, 9.2 GiB available (41% used), swap 2.0 GiB"
 * "Hardware check: disk / 457.1 GiB total, 12.3 GiB free (97% used)"
 * "Hardware check: gpu 1 GPU: NVIDIA H100 80GB HBM3" / "Hardware check: gpu none detected"
 * The component's rc in r must be 0. r: borrowed.
 * Returned: free with cx_free; NULL on CX_ENOMEM, NULL r or unknown c.
 * Threads: any thread.
 */
CX_API char *cx_hw_describe(enum cx_hw_component c, const struct cx_hw_report *r);

#ifdef __cplusplus
}
#endif
#endif /* CX_HW_H */
