/* What the host offers: feature bits and cache sizes, detected once. */
#ifndef FLAT_CPU_H
#define FLAT_CPU_H

#include <stdint.h>

/* Sane ranges and defaults of the cache sizes (bytes). A reported size
 * outside its range is taken as a misreport and replaced by the default, so
 * no claim can make a plan's tiles or workspace larger than these allow. */
#define FLAT_CPU_L1D_MIN ((int64_t)8 << 10)
#define FLAT_CPU_L1D_MAX ((int64_t)256 << 10)
#define FLAT_CPU_L1D_DEFAULT ((int64_t)32 << 10)
#define FLAT_CPU_L2_MIN ((int64_t)128 << 10)
#define FLAT_CPU_L2_MAX ((int64_t)2 << 20)
#define FLAT_CPU_L2_DEFAULT ((int64_t)512 << 10)
#define FLAT_CPU_L3_MIN ((int64_t)1 << 20)
#define FLAT_CPU_L3_MAX ((int64_t)256 << 20)
#define FLAT_CPU_L3_DEFAULT ((int64_t)8 << 20)

typedef struct {
    uint32_t features; /* FLAT_CPU_* bits (kernels/ukernel.h), OS state checked */
    int64_t l1d_bytes; /* per core */
    int64_t l2_bytes;  /* per core */
    int64_t l3_bytes;  /* whole package */
    int amd;           /* CPUID vendor "AuthenticAMD" (the precision rule, dispatch.c) */
} flat_cpu_info;
/* Each size is FLAT_CACHE_SIZES's (env "L1D,L2,L3", e.g. "48K,2M,508M"; 0 =
 * unknown) when set and well formed, else sysfs's, else sysconf's; then,
 * outside FLAT_CPU_*_MIN..MAX, the FLAT_CPU_*_DEFAULT. */

/* Detected on first use (thread-safe), read-only afterwards. */
const flat_cpu_info *flat_cpu(void);

/* Test hook: redoes the cache sizes as if FLAT_CACHE_SIZES were `spec`
 * (NULL: as detected at start). Not thread-safe: only for a test's main
 * thread with no call in flight. Returns -1 (nothing changed) when spec is
 * not three sizes. */
int flat_cpu_set_caches_for_test(const char *spec);
/* Why the AMX bits are not set (CPUID, palette, XCR0 or the OS's
 * permission), for messages; "" when they are. */
const char *flat_cpu_amx_why(void);

/* "avx2,fma,f16c,..." for messages; writes at most n bytes. */
void flat_cpu_feature_names(uint32_t features, char *buf, int n);

/* Logical CPUs the calling thread may run on (its affinity mask, so taskset
 * and cgroup cpusets count), >= 1; read on each call. */
int flat_cpu_count(void);

#endif
