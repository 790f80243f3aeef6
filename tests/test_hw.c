/* test_hw.c - hardware probes over fake /proc and /sys trees, the real machine, the concurrent
 * check and the prompt lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cx/hw.h"
#include "cx_internal.h"
#include "t_util.h"

static void write_file(const char *root, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    /* mkdir -p of the parent */
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char cpuinfo[] =
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n"
    "cpu MHz\t\t: 2000.123\nflags\t\t: fpu vme sse4_2 avx avx2 aes avx512f hypervisor\n\n"
    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\ncpu MHz\t\t: 1800.0\n"
    "flags\t\t: fpu\n\nprocessor\t: 2\n\nprocessor\t: 3\n";

static void test_cpu(void **state) {
    (void)state;
    char *root = t_tmpdir("hw");
    write_file(root, "proc/cpuinfo", cpuinfo);
    struct cx_hw_cpu c;
    struct cx_errinfo ei;
    assert_int_equal(cx_hw_cpu_at(root, &c, &ei), 0);
    assert_string_equal(c.model, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
    assert_int_equal(c.cores_logical, 4);
    assert_true(c.mhz > 2000.1 && c.mhz < 2000.2);
    assert_string_equal(c.flags_summary, "avx512f avx2 avx sse4_2 aes hypervisor");

    /* ARM-style cpuinfo: no model name or MHz; the frequency comes from cpufreq (kHz). */
    write_file(root, "proc/cpuinfo", "processor\t: 0\nFeatures\t: fp asimd evtstrm\n\nprocessor\t: 1\n");
    write_file(root, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "2400000\n");
    assert_int_equal(cx_hw_cpu_at(root, &c, &ei), 0);
    assert_string_equal(c.model, "unknown");
    assert_int_equal(c.cores_logical, 2);
    assert_true(c.mhz > 2399.9 && c.mhz < 2400.1);
    assert_string_equal(c.flags_summary, "asimd");

    write_file(root, "proc/cpuinfo", "garbage without processors\n");
    assert_int_equal(cx_hw_cpu_at(root, &c, &ei), CX_EPARSE);
    assert_non_null(strstr(ei.msg, "no processor entries in '"));
    t_rmrf(root);
    assert_int_equal(cx_hw_cpu_at(root, &c, &ei), CX_ENOENT);
    assert_non_null(strstr(ei.msg, "/proc/cpuinfo"));
    assert_int_equal(cx_hw_cpu_at(root, NULL, &ei), CX_EINVAL);
    free(root);
}

static void test_mem(void **state) {
    (void)state;
    char *root = t_tmpdir("hw");
    write_file(root, "proc/meminfo",
               "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    9000000 kB\n"
               "Buffers:          200000 kB\nCached:          3000000 kB\nSwapTotal:       2097148 kB\n"
               "SwapFree:        2000000 kB\n");
    struct cx_hw_mem m;
    struct cx_errinfo ei;
    assert_int_equal(cx_hw_mem_at(root, &m, &ei), 0);
    assert_int_equal(m.total_kb, 16000000);
    assert_int_equal(m.available_kb, 9000000);
    assert_int_equal(m.swap_total_kb, 2097148);
    assert_int_equal(m.swap_free_kb, 2000000);
    /* Old kernels: no MemAvailable. */
    write_file(root, "proc/meminfo", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n");
    assert_int_equal(cx_hw_mem_at(root, &m, &ei), 0);
    assert_int_equal(m.available_kb, 400);
    write_file(root, "proc/meminfo", "SwapTotal: 0 kB\n");
    assert_int_equal(cx_hw_mem_at(root, &m, &ei), CX_EPARSE);
    assert_non_null(strstr(ei.msg, "no MemTotal"));
    t_rmrf(root);
    free(root);
}

static void test_gpu(void **state) {
    (void)state;
    char *root = t_tmpdir("hw");
    struct cx_hw_gpu g;
    struct cx_errinfo ei;
    /* Nothing there: no GPU, not an error. */
    assert_int_equal(cx_hw_gpu_at(root, &g, &ei), 0);
    assert_int_equal(g.count, 0);
    /* DRM cards; connectors and render nodes are not GPUs. */
    write_file(root, "sys/class/drm/card0/device/vendor", "0x1234\n");
    write_file(root, "sys/class/drm/card0/device/device", "0x1111\n");
    write_file(root, "sys/class/drm/card0-Virtual-1/status", "connected\n");
    write_file(root, "sys/class/drm/renderD128/dev", "226:128\n");
    write_file(root, "sys/class/drm/card1/device/vendor", "0x10de\n");
    write_file(root, "sys/class/drm/card1/device/device", "0x2330\n");
    assert_int_equal(cx_hw_gpu_at(root, &g, &ei), 0);
    assert_int_equal(g.count, 2);
    assert_string_equal(g.names[0], "QEMU GPU [1234:1111]");
    assert_string_equal(g.names[1], "NVIDIA GPU [10de:2330]");
    /* The NVIDIA driver's own list wins and gives model names; more than 4 are counted. */
    for (int i = 0; i < 6; i++) {
        char rel[128], text[128];
        snprintf(rel, sizeof rel, "proc/driver/nvidia/gpus/0000:0%d:00.0/information", i);
        snprintf(text, sizeof text, "Model: \t\t NVIDIA H100 80GB HBM3 #%d\nIRQ:   42\n", i);
        write_file(root, rel, text);
    }
    assert_int_equal(cx_hw_gpu_at(root, &g, &ei), 0);
    assert_int_equal(g.count, 6);
    assert_string_equal(g.names[0], "NVIDIA H100 80GB HBM3 #0");
    assert_string_equal(g.names[3], "NVIDIA H100 80GB HBM3 #3");
    assert_int_equal(cx_hw_gpu_at(root, NULL, &ei), CX_EINVAL);
    t_rmrf(root);
    free(root);
}

static void test_disk(void **state) {
    (void)state;
    char *root = t_tmpdir("hw");
    struct cx_hw_disk d;
    struct cx_errinfo ei;
    assert_int_equal(cx_hw_disk(root, &d, &ei), 0);
    assert_true(d.total_bytes > 0);
    assert_true(d.free_bytes <= d.total_bytes);
    assert_int_equal(strncmp(d.path, root, sizeof d.path - 1), 0);
    char *missing = t_path(root, "no/such/dir");
    assert_int_equal(cx_hw_disk(missing, &d, &ei), CX_ENOENT);
    assert_non_null(strstr(ei.msg, "no/such/dir"));
    assert_int_equal(cx_hw_disk(NULL, &d, &ei), CX_EINVAL);
    free(missing);
    t_rmrf(root);
    free(root);
}

static void test_real_machine(void **state) {
    (void)state;
    /* The machine running the tests has a /proc; its numbers must at least be sane. */
    struct cx_hw_report r;
    assert_int_equal(cx_hw_check_all(NULL, "/", &r), 0);
    assert_int_equal(r.cpu_rc, 0);
    assert_true(r.cpu.cores_logical >= 1);
    assert_int_equal(r.mem_rc, 0);
    assert_true(r.mem.total_kb > 0 && r.mem.available_kb <= r.mem.total_kb);
    assert_int_equal(r.disk_rc, 0);
    assert_true(r.disk.total_bytes > 0);
    assert_int_equal(r.gpu_rc, 0);
    for (int c = CX_HW_CPU; c <= CX_HW_GPU; c++) {
        char *s = cx_hw_describe((enum cx_hw_component)c, &r);
        assert_non_null(s);
        char want[64];
        snprintf(want, sizeof want, "Hardware check: %s ", cx_hw_component_name((enum cx_hw_component)c));
        assert_int_equal(strncmp(s, want, strlen(want)), 0);
        cx_free(s);
    }
}

static void test_check_all_and_describe(void **state) {
    (void)state;
    char *root = t_tmpdir("hw");
    write_file(root, "proc/cpuinfo", cpuinfo);
    write_file(root, "proc/meminfo", "MemTotal: 16777216 kB\nMemAvailable: 4194304 kB\nSwapTotal: 2097152 kB\n");
    write_file(root, "proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: NVIDIA H100\n");
    struct cx_hw_report r;
    assert_int_equal(cx_hw_check_all(root, NULL, &r), 0);
    assert_int_equal(r.cpu_rc + r.mem_rc + r.disk_rc + r.gpu_rc, 0);
    char *s = cx_hw_describe(CX_HW_CPU, &r);
    assert_string_equal(s, "Hardware check: cpu Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz, 4 cores, "
                           "2000 MHz, flags avx512f avx2 avx sse4_2 aes hypervisor");
    cx_free(s);
    s = cx_hw_describe(CX_HW_MEMORY, &r);
    assert_string_equal(s, "Hardware check: memory 16.0 GiB total, 4.0 GiB available (75% used), swap 2.0 GiB");
    cx_free(s);
    s = cx_hw_describe(CX_HW_GPU, &r);
    assert_string_equal(s, "Hardware check: gpu 1 GPU: NVIDIA H100");
    cx_free(s);
    r.disk.total_bytes = 100ull << 30;
    r.disk.free_bytes = 25ull << 30;
    snprintf(r.disk.path, sizeof r.disk.path, "/");
    s = cx_hw_describe(CX_HW_DISK, &r);
    assert_string_equal(s, "Hardware check: disk / 100.0 GiB total, 25.0 GiB free (75% used)");
    cx_free(s);
    r.gpu.count = 0;
    s = cx_hw_describe(CX_HW_GPU, &r);
    assert_string_equal(s, "Hardware check: gpu none detected");
    cx_free(s);
    assert_null(cx_hw_describe((enum cx_hw_component)9, &r));
    assert_null(cx_hw_describe(CX_HW_CPU, NULL));
    assert_null(cx_hw_component_name((enum cx_hw_component)9));

    /* Some probes failing: the others still report; all failing gives the CPU error. */
    t_rmrf(root);
    assert_int_equal(cx_hw_check_all(root, "/", &r), 0);
    assert_int_equal(r.cpu_rc, CX_ENOENT);
    assert_int_equal(r.mem_rc, CX_ENOENT);
    assert_int_equal(r.disk_rc, 0);
    assert_int_equal(cx_hw_check_all(NULL, NULL, NULL), CX_EINVAL);
    free(root);
}

static struct cx_hw_report g_rep;

static int describe_scenario(void *ctx) {
    (void)ctx;
    for (int c = CX_HW_CPU; c <= CX_HW_GPU; c++) {
        char *s = cx_hw_describe((enum cx_hw_component)c, &g_rep);
        if (s == NULL) return CX_ENOMEM;
        cx_free(s);
    }
    return 0;
}

static void test_describe_torture(void **state) {
    (void)state;
    memset(&g_rep, 0, sizeof g_rep);
    snprintf(g_rep.cpu.model, sizeof g_rep.cpu.model, "x");
    g_rep.gpu.count = 2;
    assert_true(t_torture(describe_scenario, NULL) >= 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_mem),
        cmocka_unit_test(test_gpu),
        cmocka_unit_test(test_disk),
        cmocka_unit_test(test_real_machine),
        cmocka_unit_test(test_check_all_and_describe),
        cmocka_unit_test(test_describe_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
