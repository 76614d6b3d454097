/* Host features (CPUID + XGETBV on x86, always NEON on AArch64) and cache
 * sizes (sysfs, then sysconf, then defaults), detected once. Built without
 * ISA flags: it must run on every CPU to find out what that CPU can do. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "ukernel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0 read by hand: _xgetbv() would need -mxsave on this file. */
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
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
    /* AVX512_BF16 is in subleaf 1 (EAX bit 5), present when subleaf 0's EAX
     * (the highest subleaf) says so. */
    if (a >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if (zmm_ok && ((a >> 5) & 1)) f |= FLAT_CPU_AVX512BF16;
    }
    return f;
}
#elif defined(__aarch64__)
static uint32_t detect_features(void) { return FLAT_CPU_NEON; } /* mandatory in AArch64 */
#else
static uint32_t detect_features(void) { return 0; }
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

static int64_t cache_bytes(int level, int sysconf_name, int64_t fallback)
{
    int64_t v = sysfs_cache_bytes(level, 1);
    if (v <= 0 && sysconf_name >= 0)
        v = sysconf(sysconf_name);
    return v > 0 ? v : fallback;
}

static flat_cpu_info info;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect(void)
{
    info.features = detect_features();
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    info.l1d_bytes = cache_bytes(1, _SC_LEVEL1_DCACHE_SIZE, 32 << 10);
    info.l2_bytes = cache_bytes(2, _SC_LEVEL2_CACHE_SIZE, 512 << 10);
    info.l3_bytes = cache_bytes(3, _SC_LEVEL3_CACHE_SIZE, 8 << 20);
#else
    info.l1d_bytes = cache_bytes(1, -1, 32 << 10);
    info.l2_bytes = cache_bytes(2, -1, 512 << 10);
    info.l3_bytes = cache_bytes(3, -1, 8 << 20);
#endif
}

const flat_cpu_info *flat_cpu(void)
{
    pthread_once(&once, detect);
    return &info;
}

void flat_cpu_feature_names(uint32_t features, char *buf, int n)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        {FLAT_CPU_AVX2, "avx2"},         {FLAT_CPU_FMA, "fma"},
        {FLAT_CPU_F16C, "f16c"},         {FLAT_CPU_AVX512F, "avx512f"},
        {FLAT_CPU_AVX512BW, "avx512bw"}, {FLAT_CPU_AVX512VL, "avx512vl"},
        {FLAT_CPU_AVX512DQ, "avx512dq"}, {FLAT_CPU_NEON, "neon"},
        {FLAT_CPU_AVX512BF16, "avx512_bf16"},
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
