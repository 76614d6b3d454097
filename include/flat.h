/*
 * flat: fused attention kernels for CPUs.
 *
 * Computes O = softmax(scale * Q K^T + mask) V for multi-head, grouped-query
 * and multi-query attention without materialising the q_len x kv_len score
 * matrix: scores live in registers and cache-sized tiles only.
 *
 * Two dataflows share the same micro-kernels:
 *   FLAT  - a block of query rows computes its whole logit rows into an
 *           L2-sized buffer, takes the exact softmax of each row, then P V.
 *   FLASH - online softmax over key blocks with rescaling of the partial
 *           output; the buffer does not depend on kv_len.
 *
 * Thread safety: every function here may be called from any number of
 * threads at once. The library keeps no mutable global state besides the
 * CPU detection result, computed once, and the fork mark below.
 *
 * fork(): threads come from OpenMP (libgomp with GCC), whose thread pool does
 * not survive fork() (GCC bug 60035): a child entering OpenMP after its
 * parent ran threaded calls would hang. So in a child forked after its
 * parent ran a call on more than one thread (and in every descendant of such
 * a child), each call runs on the calling thread alone, whatever num_threads
 * says, to the same accuracy; FLAT_VERBOSE=1 says so. Other processes keep
 * their threads, children forked before any threaded call included. A call
 * with num_threads = 1 never enters OpenMP, so it is safe in any child, even
 * when the host ran OpenMP regions of its own before forking: flat cannot see
 * that pool, so such a child should pass num_threads = 1.
 *
 * ABI: flat_options is passed by pointer and keeps its size; new options take
 * words of its `reserved` array (which callers must zero), so a program built
 * against an older header keeps working. Any change of struct layout bumps the
 * SONAME (the major version).
 */
#ifndef FLAT_H
#define FLAT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FLAT_API
#else
#define FLAT_API __attribute__((visibility("default")))
#endif

#define FLAT_VERSION_MAJOR 0
#define FLAT_VERSION_MINOR 1
#define FLAT_VERSION_PATCH 0
#define FLAT_VERSION_STRING "0.1.0"

/* Result of every fallible call. */
typedef enum {
    FLAT_OK = 0,
    FLAT_ERROR_INVALID_ARGUMENT = 1, /* the call's arguments break a rule below */
    FLAT_ERROR_UNSUPPORTED = 2,      /* valid, but this build or CPU cannot run it */
    FLAT_ERROR_OUT_OF_MEMORY = 3     /* workspace allocation failed */
} flat_status;

/* Static English name of a status ("FLAT_OK", ...); never NULL. */
FLAT_API const char *flat_status_string(flat_status s);

/* The calling thread's message for its last failed call, naming the first
 * offending argument and its value, e.g. "k.dim (80) != q.dim (64)".
 * Empty string if this thread has had no failure. The pointer stays valid
 * until this thread's next flat_* call. */
FLAT_API const char *flat_last_error(void);

/* Run-time library version, "MAJOR.MINOR.PATCH". */
FLAT_API const char *flat_version(void);

/* Element type of a tensor. This release computes FLAT_F32 only; F16 and
 * BF16 are recognised and rejected with FLAT_ERROR_UNSUPPORTED. */
typedef enum { FLAT_F32 = 0, FLAT_F16 = 1, FLAT_BF16 = 2 } flat_dtype;

/* A 4-D strided view [batch, heads, seq, dim]. The caller owns `data`; flat
 * never frees or keeps it past the call. Strides are in elements (not bytes)
 * and must be >= 0; `dim` is always contiguous (stride 1). Input views may
 * overlap each other (even alias); `out` may overlap none of them. */
typedef struct {
    void *data;
    flat_dtype dtype;
    int64_t batch, heads, seq, dim;
    int64_t stride_batch, stride_head, stride_seq;
} flat_tensor;

/* Contiguous [B, H, S, D] view. */
FLAT_API flat_tensor flat_tensor_bhsd(void *data, flat_dtype t, int64_t b, int64_t h,
                                      int64_t s, int64_t d);
/* Contiguous [B, S, H, D] view (the layout most engines keep), still indexed
 * as [batch, heads, seq, dim]. */
FLAT_API flat_tensor flat_tensor_bshd(void *data, flat_dtype t, int64_t b, int64_t s,
                                      int64_t h, int64_t d);

/* Instruction sets a kernel table is written for. */
typedef enum {
    FLAT_ISA_AUTO = 0, /* the best the CPU and build run; env FLAT_ISA overrides */
    FLAT_ISA_SCALAR,   /* portable C; runs everywhere */
    FLAT_ISA_AVX2,     /* x86-64 AVX2 + FMA */
    FLAT_ISA_AVX512,   /* x86-64 AVX-512 F/BW/VL/DQ */
    FLAT_ISA_NEON,     /* AArch64 Advanced SIMD */
    FLAT_ISA_AVX512_BF16 /* x86-64 AVX-512 with AVX512_BF16: Q.K^T and P.V on vdpbf16ps
                            (bf16 products, fp32 sums). It rounds Q, K, P and V to bf16,
                            so the fp32 accuracy below does not apply: rows within 1e-2
                            and lse within 5e-3 for logits of O(1) (measured 4e-3 and
                            2.3e-3); each logit's error grows as 2^-8 scale sum|q k|.
                            Never chosen by AUTO; opt.isa or FLAT_ISA selects it. */
} flat_isa;

typedef enum {
    FLAT_DATAFLOW_AUTO = 0, /* the planner picks: DECODE for few query rows per kv
                               head, else FLAT when its rows fit L2, else FLASH */
    FLAT_DATAFLOW_FLAT,     /* exact softmax over whole logit rows */
    FLAT_DATAFLOW_FLASH,    /* online softmax over key blocks */
    FLAT_DATAFLOW_DECODE    /* (0.2) online softmax over key blocks, K and V read in
                               place: all query rows of a kv head (its GQA group x
                               q.seq) in one task, so each K/V byte is read once */
} flat_dataflow;

/* Per-call options. A zero-initialised struct means all defaults. */
typedef struct {
    /* Logit scale; 0 means 1/sqrt(q.dim). Must be finite. */
    float scale;
    /* Non-zero: causal mask, bottom-right aligned (the KV-cache convention):
     * query i sees key j iff j <= i + (kv_len - q_len). */
    int causal;
    /* Optional [batch] array, read only: keys j >= kv_lens[b] are invisible
     * to batch b, and causal alignment uses kv_lens[b] as kv_len. Each value
     * must lie in [0, k.seq]. NULL: every key is visible. */
    const int32_t *kv_lens;
    /* Optional output [batch, q.heads, q.seq], contiguous, caller-owned:
     * natural log of the sum of exp of the scaled, masked logits of each
     * query row; -inf for a row that sees no key. Must not overlap any
     * tensor. NULL: not computed. */
    float *lse;
    /* Threads to use; 0 means the OpenMP default. Must be >= 0. In a child
     * forked after threaded calls, calls use one thread (see fork() above). */
    int num_threads;
    /* Dataflow; AUTO lets the planner decide (FLAT_VERBOSE=1 prints why). */
    flat_dataflow dataflow;
    /* Kernel table; AUTO picks the best the CPU runs, or the env FLAT_ISA
     * (scalar, avx2, avx512, neon, avx512_bf16) when set. Asking for an ISA the CPU or
     * the build lacks returns FLAT_ERROR_UNSUPPORTED. */
    flat_isa isa;
    /* Must be zero: later options take these words. */
    uint64_t reserved[8];
} flat_options;

/*
 * out = softmax(scale * q k^T + mask) v, per batch and query head.
 *
 * Shapes: q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv],
 * out [B, Hq, Nq, Dv], with Hq % Hkv == 0, and Nq, Nk, D, Dv < 2^31;
 * query head h reads kv head
 * h / (Hq / Hkv) (GQA; MQA when Hkv == 1). All four share one dtype.
 * A query row that sees no key gets a zero output row (and lse = -inf).
 *
 * Errors: every argument is checked before anything is written; on any
 * error `out` and `opt->lse` are untouched and flat_last_error() names the
 * argument. opt == NULL means defaults.
 *
 * Accuracy (fp32): each output row's relative 2-norm error against a
 * double-precision reference is below 1e-5 for every ISA and dataflow.
 */
FLAT_API flat_status flat_attention(const flat_tensor *q, const flat_tensor *k,
                                    const flat_tensor *v, const flat_tensor *out,
                                    const flat_options *opt);

/* Best ISA of this CPU and build, ignoring FLAT_ISA. */
FLAT_API flat_isa flat_isa_detect(void);

/* "auto", "scalar", "avx2", "avx512", "neon", "avx512_bf16"; "unknown" for other values. */
FLAT_API const char *flat_isa_name(flat_isa isa);

#ifdef __cplusplus
}
#endif

#endif /* FLAT_H */
