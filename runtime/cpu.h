/* What the host offers: feature bits and cache sizes, detected once. */
#ifndef FLAT_CPU_H
#define FLAT_CPU_H

#include <stdint.h>

typedef struct {
    uint32_t features; /* FLAT_CPU_* bits (kernels/ukernel.h), OS state checked */
    int64_t l1d_bytes; /* per core */
    int64_t l2_bytes;  /* per core */
    int64_t l3_bytes;  /* whole package */
    int amd;           /* CPUID vendor "AuthenticAMD" (the precision rule, dispatch.c) */
} flat_cpu_info;

/* Detected on first use (thread-safe), read-only afterwards. */
const flat_cpu_info *flat_cpu(void);

/* Why the AMX bits are not set (CPUID, palette, XCR0 or the OS's
 * permission), for messages; "" when they are. */
const char *flat_cpu_amx_why(void);

/* "avx2,fma,f16c,..." for messages; writes at most n bytes. */
void flat_cpu_feature_names(uint32_t features, char *buf, int n);

#endif
