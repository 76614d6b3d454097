/* Host features (CPUID + XGETBV on x86, always NEON on AArch64) and cache
 * sizes (FLAT_CACHE_SIZES, else sysfs, then sysconf; a size outside its sane
 * range gets the default), detected once. Built without
 * ISA flags: it must run on every CPU to find out what that CPU can do. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT; syscall() */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "ukernel.h"

/* Why AMX is not usable here ("" when it is, or on other architectures). */
static char amx_why[160];

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

/* XCR0 read by hand: _xgetbv() would need -mxsave on this file. */
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/*
 * AMX: CPUID 7.0 EDX bits 24 (AMX-TILE) and 22 (AMX-BF16); leaf 0x1D must
 * report a palette (misconfigured VMs advertise AMX with none, and every
 * tile instruction then faults); XCR0 bits 17-18 (the OS saves XTILECFG and
 * XTILEDATA); on Linux the process must ask for the tile data state once
 * (arch_prctl ARCH_REQ_XCOMP_PERM, 18) before the first tile instruction,
 * which otherwise raises SIGILL. The permission is per process and
 * inherited across fork. Returns the two bits, or 0 with amx_why saying
 * what is missing.
 */
static uint32_t detect_amx(unsigned edx7, uint64_t xcr0)
{
    const int tile = (edx7 >> 24) & 1, bf16 = (edx7 >> 22) & 1;
    if (!tile || !bf16) {
        snprintf(amx_why, sizeof amx_why, "CPUID lacks %s%s%s", tile ? "" : "amx_tile",
                 !tile && !bf16 ? "," : "", bf16 ? "" : "amx_bf16");
        return 0;
    }
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 0x1d) {
        snprintf(amx_why, sizeof amx_why, "amx_tile: CPUID has no tile leaf 0x1D");
        return 0;
    }
    __cpuid_count(0x1d, 0, a, b, c, d);
    if (a < 1) { /* EAX: the highest palette */
        snprintf(amx_why, sizeof amx_why, "amx_tile: CPUID leaf 0x1D reports no palette");
        return 0;
    }
    if (((xcr0 >> 17) & 3) != 3) {
        snprintf(amx_why, sizeof amx_why, "amx_tile: the OS does not enable tile state (XCR0 bits 17-18)");
        return 0;
    }
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    uint64_t perm = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0 ||
        syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm) != 0 ||
        !((perm >> XFEATURE_XTILEDATA) & 1)) {
        snprintf(amx_why, sizeof amx_why,
                 "amx_tile: Linux refused the tile data permission (arch_prctl "
                 "ARCH_REQ_XCOMP_PERM; a kernel before 5.16, or a sigaltstack too small)");
        return 0;
    }
#endif
    return FLAT_CPU_AMX_TILE | FLAT_CPU_AMX_BF16;
}

static uint32_t detect_features(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    /* The OS must save the vector state, or the instructions fault even
     * though CPUID lists them: YMM needs XCR0 bits 1-2, ZMM also 5-7. */
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    int ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
    uint32_t f = 0;
    if (ymm_ok && fma) f |= FLAT_CPU_FMA;
    if (ymm_ok && f16c) f |= FLAT_CPU_F16C;
    if (__get_cpuid_max(0, NULL) < 7)
        return f;
    __cpuid_count(7, 0, a, b, c, d);
    if (ymm_ok && ((b >> 5) & 1)) f |= FLAT_CPU_AVX2;
    if (zmm_ok && ((b >> 16) & 1)) f |= FLAT_CPU_AVX512F;
    if (zmm_ok && ((b >> 17) & 1)) f |= FLAT_CPU_AVX512DQ;
    if (zmm_ok && ((b >> 30) & 1)) f |= FLAT_CPU_AVX512BW;
    if (zmm_ok && ((b >> 31) & 1)) f |= FLAT_CPU_AVX512VL;
    if (zmm_ok && ((c >> 11) & 1)) f |= FLAT_CPU_AVX512VNNI;
    f |= detect_amx(d, xcr0);
    /* AVX512_BF16 is in subleaf 1 (EAX bit 5), present when subleaf 0's EAX
     * (the highest subleaf) says so. */
    if (a >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if (zmm_ok && ((a >> 5) & 1)) f |= FLAT_CPU_AVX512BF16;
    }
    return f;
}
static int detect_amd(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return 0;
    return b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* "Auth" "enti" "cAMD" */
}
#elif defined(__aarch64__)
static int detect_amd(void) { return 0; }
static uint32_t detect_features(void) /* NEON: mandatory in AArch64 */
{
    snprintf(amx_why, sizeof amx_why, "amx_tile: not an x86-64 CPU");
    return FLAT_CPU_NEON;
}
#else
static int detect_amd(void) { return 0; }
static uint32_t detect_features(void)
{
    snprintf(amx_why, sizeof amx_why, "amx_tile: not an x86-64 CPU");
    return 0;
}
#endif

/* sysfs cache size of the given level and type ("Data"/"Unified"), or 0. */
static int64_t sysfs_cache_bytes(int level, int want_data)
{
    for (int idx = 0; idx < 8; idx++) {
        char path[96], buf[32];
        int lvl = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
        FILE *f = fopen(path, "r");
        if (!f)
            return 0;
        if (fscanf(f, "%d", &lvl) != 1) lvl = 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", idx);
        if (!(f = fopen(path, "r")))
            continue;
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
        int is_inst = strncmp(buf, "Instruction", 11) == 0;
        if (lvl != level || is_inst || (want_data && strncmp(buf, "Data", 4) != 0 &&
                                        strncmp(buf, "Unified", 7) != 0))
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        if (!(f = fopen(path, "r")))
            continue;
        long v = 0;
        char unit = 'K';
        int got = fscanf(f, "%ld%c", &v, &unit);
        fclose(f);
        if (got < 1 || v <= 0)
            continue;
        return unit == 'M' ? v << 20 : unit == 'G' ? v << 30 : unit == 'K' ? v << 10 : v;
    }
    return 0;
}

/* What the host claims, before the sanity range below: sysfs, then sysconf
 * (CPUID under glibc), else 0 (unknown). */
static int64_t reported_cache_bytes(int level, int sysconf_name)
{
    int64_t v = sysfs_cache_bytes(level, 1);
    if (v <= 0 && sysconf_name >= 0)
        v = sysconf(sysconf_name);
    return v > 0 ? v : 0;
}

/* "48K,2M,508M" (L1d, L2, L3; K/M/G suffixes, 0 = unknown) into v[3]:
 * FLAT_CACHE_SIZES replaces what sysfs and CPUID report, so a test (or a
 * user whose VM misreports) can see what the planner makes of any claim.
 * Returns 0 when the text is not three sizes. */
static int parse_cache_sizes(const char *text, int64_t v[3])
{
    const char *p = text;
    for (int i = 0; i < 3; i++) {
        char *end;
        long long n = strtoll(p, &end, 10);
        if (end == p || n < 0)
            return 0;
        int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
                    : *end == 'G' || *end == 'g'                                 ? 30
                                                                                 : 0;
        end += shift != 0;
        if (n > ((long long)1 << 40) >> shift || *end != (i < 2 ? ',' : '\0'))
            return 0;
        v[i] = (int64_t)n << shift;
        p = end + 1;
    }
    return 1;
}

/* A size outside [lo, hi] is a misreport (a hypervisor passing the host's
 * whole L3 through CPUID, a per-package figure read as per core): it would
 * size buffers and tiles from nothing real, so the default stands in. The
 * ranges hold every CPU this library targets (L2 per core: 256 KiB on
 * Skylake client to 2 MiB on Sapphire Rapids and Raptor Cove). */
static int64_t sane(int64_t v, int64_t lo, int64_t hi, int64_t fallback)
{
    return v >= lo && v <= hi ? v : fallback;
}

static flat_cpu_info info;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect_caches(int64_t reported[3])
{
    const char *env = getenv("FLAT_CACHE_SIZES");
    if (env && *env && parse_cache_sizes(env, reported))
        return;
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    reported[0] = reported_cache_bytes(1, _SC_LEVEL1_DCACHE_SIZE);
    reported[1] = reported_cache_bytes(2, _SC_LEVEL2_CACHE_SIZE);
    reported[2] = reported_cache_bytes(3, _SC_LEVEL3_CACHE_SIZE);
#else
    for (int level = 1; level <= 3; level++)
        reported[level - 1] = reported_cache_bytes(level, -1);
#endif
}

static void set_caches(const int64_t reported[3])
{
    info.l1d_bytes = sane(reported[0], FLAT_CPU_L1D_MIN, FLAT_CPU_L1D_MAX, FLAT_CPU_L1D_DEFAULT);
    info.l2_bytes = sane(reported[1], FLAT_CPU_L2_MIN, FLAT_CPU_L2_MAX, FLAT_CPU_L2_DEFAULT);
    info.l3_bytes = sane(reported[2], FLAT_CPU_L3_MIN, FLAT_CPU_L3_MAX, FLAT_CPU_L3_DEFAULT);
}

static void detect(void)
{
    int64_t reported[3];
    info.features = detect_features();
    info.amd = detect_amd();
    detect_caches(reported);
    set_caches(reported);
}

int flat_cpu_set_caches_for_test(const char *spec)
{
    int64_t reported[3];
    flat_cpu();
    if (spec && !parse_cache_sizes(spec, reported))
        return -1;
    if (!spec)
        detect_caches(reported);
    set_caches(reported);
    return 0;
}

const flat_cpu_info *flat_cpu(void)
{
    pthread_once(&once, detect);
    return &info;
}

const char *flat_cpu_amx_why(void)
{
    pthread_once(&once, detect);
    return amx_why;
}

void flat_cpu_feature_names(uint32_t features, char *buf, int n)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        {FLAT_CPU_AVX2, "avx2"},         {FLAT_CPU_FMA, "fma"},
        {FLAT_CPU_F16C, "f16c"},         {FLAT_CPU_AVX512F, "avx512f"},
        {FLAT_CPU_AVX512BW, "avx512bw"}, {FLAT_CPU_AVX512VL, "avx512vl"},
        {FLAT_CPU_AVX512DQ, "avx512dq"}, {FLAT_CPU_NEON, "neon"},
        {FLAT_CPU_AVX512BF16, "avx512_bf16"}, {FLAT_CPU_AMX_TILE, "amx_tile"},
        {FLAT_CPU_AMX_BF16, "amx_bf16"}, {FLAT_CPU_AVX512VNNI, "avx512_vnni"},
    };
    int used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0] && used < n; i++)
        if (features & names[i].bit)
            used += snprintf(buf + used, n - used, "%s%s", used ? "," : "", names[i].name);
    if (used == 0 && n > 0)
        snprintf(buf, n, "none");
}

int flat_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
