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

#include <stddef.h>
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
#define FLAT_VERSION_MINOR 2
#define FLAT_VERSION_PATCH 0
#define FLAT_VERSION_STRING "0.2.0"

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

/* Element type of a tensor (0.2: all three on every kernel table). q and out
 * share one type, k and v another (or the same); any pairing is allowed.
 * Sums are fp32 (see FLAT_ISA_AVX512_BF16 for the one table that rounds
 * operands); a 16-bit out is rounded once, to nearest even.
 * 0.3 adds quantized types for K and V only (q and out stay F32/F16/BF16),
 * each element dequantizing to code * scale (see flat_kv_quant). */
typedef enum {
    FLAT_F32 = 0,
    FLAT_F16 = 1,
    FLAT_BF16 = 2,
    FLAT_I8 = 3,     /* symmetric int8 codes -127..127 (K/V only; -128 reads as -128) */
    FLAT_F8E4M3 = 4, /* OCP fp8 e4m3fn: bias 7, max 448, no inf, S.1111.111 NaN (K/V only) */
    FLAT_I4 = 5      /* signed nibbles -8..7, two per byte, even element in the low
                        nibble; dim and element strides even (K/V only) */
} flat_dtype;

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
    FLAT_ISA_AVX512_BF16, /* x86-64 AVX-512 with AVX512_BF16: Q.K^T and P.V on vdpbf16ps
                            (bf16 products, fp32 sums). It rounds Q, K, P and V to bf16,
                            so the fp32 accuracy below does not apply: rows within 1e-2
                            and lse within 5e-3 for logits of O(1) (measured 4e-3 and
                            2.3e-3); each logit's error grows as 2^-8 scale sum|q k|.
                            AUTO takes it only under flat_precision's rule (below). */
    FLAT_ISA_AMX_BF16 = 6 /* (0.3) x86-64 AMX-BF16 (Sapphire Rapids and later): Q.K^T and
                            P.V on tdpbf16ps tiles, the softmax between them on AVX-512
                            (AVX512_BF16 needed too). Rounds as FLAT_ISA_AVX512_BF16 and
                            has its bound: rows within 1e-2, lse within 5e-3 for logits of
                            O(1). Needs CPUID AMX-TILE and AMX-BF16, a tile palette, the
                            OS's tile state (XCR0) and, on Linux, the process's permission
                            (arch_prctl ARCH_REQ_XCOMP_PERM, asked once); where any is
                            missing, asking for it is FLAT_ERROR_UNSUPPORTED naming it.
                            Tile state is configured and released inside each kernel
                            call, so no thread keeps any. */
} flat_isa;

/* (0.3) Which products a call uses (flat_options.precision). */
typedef enum {
    FLAT_PRECISION_AUTO = 0, /* fp32 products, except when q, k and v are all bf16 (then
                                rounding P to bf16 is the only extra rounding): bf16
                                products on the fastest table this CPU has for them:
                                amx_bf16 where the CPU has AMX, else avx512_bf16 where that
                                beats the fp32 table (measured: on AMD Zen 4/5 it is
                                1.6-1.75x avx512; on Intel cores vdpbf16ps issues on one
                                port and it is slower than avx512, so not there), else fp32
                                products. Such calls have the bf16 tables' bound. */
    FLAT_PRECISION_FP32 = 1, /* fp32 products always (0.2's behaviour and bound) */
    FLAT_PRECISION_BF16 = 2  /* bf16 products whatever the types (Q, K, V rounded): the
                                fastest table with them (amx_bf16, else avx512_bf16);
                                FLAT_ERROR_UNSUPPORTED with a message where none runs */
} flat_precision;

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
     * (scalar, avx2, avx512, neon, avx512_bf16, amx_bf16) when set. Asking for an ISA the
     * CPU or the build lacks returns FLAT_ERROR_UNSUPPORTED. AUTO's choice between
     * fp32- and bf16-product tables follows `precision` (below). */
    flat_isa isa;
    /* ---- 0.2: score rules (zero = off). They take words that were reserved
     * in 0.1, so a program built against 0.1 (zeros there) gets none. Let
     * p = i + (kv_len_b - q_len_b) be query row i's aligned position and
     * s = scale * q.k its scaled logit for key j. ---- */
    /* Sliding window, FlashAttention's inclusive (left, right): key j is
     * visible only if j >= p - window_left (when window_left > 0) and
     * j <= p + window_right (when window_right > 0); both must be >= 0. Keys
     * outside are skipped, not computed. A model whose config says "sliding
     * window W" (W keys including the diagonal, as in Mistral, Gemma and
     * gpt-oss) passes window_left = W - 1 with causal = 1. */
    int32_t window_left, window_right;
    /* When > 0: s := softcap * tanh(s / softcap), before masking (Gemma 2,
     * Grok). Must be finite and >= 0. */
    float softcap;
    /* (0.3) flat_precision: which products the call uses when isa is AUTO
     * (an explicit isa wins: its table's products). 0 = FLAT_PRECISION_AUTO.
     * FLAT_VERBOSE=1 and flat_plan_describe say which table was chosen and
     * why. This word was `reserved32` (must be zero) in 0.1 and 0.2. */
    int32_t precision;
    /* Optional [q.heads], finite: a per-head logit sink_h (natural-log units,
     * no scale or softcap) that joins every row's softmax as exp(sink_h) and
     * contributes no value (gpt-oss). It takes part in the row's max, so a
     * large sink never overflows; lse includes it; a row that sees no key
     * gives a zero output row and lse = sink_h. Read during the call (a plan
     * copies it). */
    const float *sinks;
    /* Optional [q.heads], finite: adds -slope_h * |p - j| to s (ALiBi).
     * Read during the call (a plan copies it). */
    const float *alibi_slopes;
    /* Optional additive fp32 mask viewed as [B, Hq, q_len, kv_len] (its
     * batch, heads, seq and dim; dim contiguous; a stride of 0 broadcasts);
     * -inf entries mask. Added after softcap and ALiBi. Read tile by tile,
     * never copied; it must not overlap out or lse. The only rule that reads
     * an N^2 tensor. */
    const flat_tensor *mask;
    /* Must be zero: later options take these words. */
    uint64_t reserved[3];
} flat_options;

/*
 * out = softmax(scale * q k^T + mask) v, per batch and query head.
 *
 * Shapes: q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv],
 * out [B, Hq, Nq, Dv], with Hq % Hkv == 0, and Nq, Nk, D, Dv < 2^31;
 * query head h reads kv head
 * h / (Hq / Hkv) (GQA; MQA when Hkv == 1). out.dtype == q.dtype and
 * v.dtype == k.dtype (see flat_dtype).
 * A query row that sees no key gets a zero output row (and lse = -inf).
 *
 * Errors: every argument is checked before anything is written; on any
 * error `out` and `opt->lse` are untouched and flat_last_error() names the
 * argument. opt == NULL means defaults.
 *
 * Accuracy: against a double-precision reference on the same (rounded)
 * inputs, each fp32 output row's relative 2-norm error is below 1e-5 for
 * every ISA, dataflow and K/V type when the scaled logits stay within 8 in
 * magnitude (1e-5 * L/8 when they reach L); f16 out rows within 1e-3, bf16
 * out rows within 8e-3. FLAT_ISA_AVX512_BF16 and FLAT_ISA_AMX_BF16 have their own
 * bound (above), which is what an all-bf16 call under FLAT_PRECISION_AUTO gets where
 * the CPU has such a table (flat_precision).
 */
FLAT_API flat_status flat_attention(const flat_tensor *q, const flat_tensor *k,
                                    const flat_tensor *v, const flat_tensor *out,
                                    const flat_options *opt);

/* ------------------------------------------------------------------------
 * Paged KV cache and ragged batches (0.2)
 *
 * The engine keeps K and V in pools of pages of `page_size` tokens; sequence
 * b's i-th page of tokens is pool page block_table[b * block_table_stride + i].
 * Both pool layouts engines use map through the strides (in elements; dim is
 * contiguous):
 *   vLLM   [pages, page_size, heads, dim]: stride_page = page_size*heads*dim,
 *          stride_token = heads*dim, stride_head = dim
 *   HND    [pages, heads, page_size, dim]: stride_page = heads*page_size*dim,
 *          stride_token = dim, stride_head = page_size*dim
 * A sequence's queries are its last tokens: causal alignment is bottom-right
 * against seq_lens[b], so one call serves a continuous-batching step mixing
 * prefill chunks and single-token decodes. Without q_offsets, results are
 * bitwise those of flat_attention on the same data laid out contiguously
 * (same options, ISA and thread count; not on FLAT_ISA_AVX512_BF16, whose key
 * pairs follow page boundaries: within its bound). With q_offsets they are
 * within the same accuracy bound (bitwise without a window; a window's
 * skipped key blocks follow the query blocks, which the ragged rows place
 * differently). Rows of q that no sequence owns are neither read nor written
 * (their out rows and lse stay as they were). The caller owns every array;
 * flat reads them during the call (a plan copies what it needs when it is
 * made). Pages past a sequence's seq_lens[b] tokens are never read, and their
 * block-table entries may hold anything (e.g. -1).
 * ------------------------------------------------------------------------ */
typedef struct {
    flat_dtype dtype;          /* of both pools: FLAT_F32, FLAT_F16 or FLAT_BF16 */
    const void *k, *v;         /* the page pools */
    int64_t pages;             /* pages in each pool (block-table entries must be < pages) */
    int64_t page_size;         /* tokens per page, >= 1 (any size: 1, 7, 16, 256 ...) */
    int64_t heads;             /* kv heads; q.heads must be a multiple */
    int64_t dim, v_dim;        /* head dims of K (= q.dim) and V (= out.dim) */
    int64_t k_stride_page, k_stride_token, k_stride_head; /* elements, >= 0 */
    int64_t v_stride_page, v_stride_token, v_stride_head;
    int64_t batch;             /* sequences in this call, >= 1 */
    const int32_t *seq_lens;   /* [batch]: tokens of each sequence in the cache, in
                                  [0, block_table_stride * page_size] */
    const int32_t *block_table; /* [batch][block_table_stride]: pool page of each of a
                                   sequence's pages, in [0, pages) where read */
    int64_t block_table_stride; /* entries per sequence, >= 1 */
    const int32_t *q_offsets;  /* optional [batch + 1]: sequence b's queries are rows
                                  q_offsets[b] .. q_offsets[b+1]-1 of q (q.batch 1),
                                  non-decreasing, q_offsets[batch] <= q.seq; each
                                  count <= seq_lens[b] (0 allowed). NULL: q.batch ==
                                  batch and every sequence has q.seq queries. */
} flat_paged_kv;

/*
 * Attention over a paged KV cache: q [B or 1, Hq, Nq, D], out the same shape
 * with Dv columns, K/V from the pools. opt as for flat_attention except that
 * opt->kv_lens must be NULL (seq_lens is the visible length); lse is
 * [q.batch, Hq, q.seq] contiguous, one value per q row. Every index is
 * validated first (page numbers, seq_lens, q_offsets, counts); on any error
 * out and lse are untouched.
 */
FLAT_API flat_status flat_attention_paged(const flat_tensor *q, const flat_paged_kv *kv,
                                          const flat_tensor *out, const flat_options *opt);

/* ------------------------------------------------------------------------
 * Plans, workspaces and the engine's threads (0.2)
 *
 * A plan is one call, validated and scheduled once: it binds the tensors
 * (their pointers; the data under them may change between executions), the
 * options and the kernel table, and it is immutable once made, so any number
 * of threads may use it at once (each execution with its own workspace).
 * Making a plan allocates only the plan object; executing it with a caller
 * workspace allocates nothing.
 *
 * The work is two phases of tasks. Phase 0 computes attention; phase 1 merges
 * split-KV partial results (0 tasks when the plan does not split keys).
 * Tasks of a phase may run in any order and concurrently, on workers numbered
 * [0, flat_plan_workers), one task at a time per worker; phase 1 starts after
 * every phase-0 task has returned (the caller's barrier). No task waits for
 * another, so an engine may run them on any number of its own threads. For a
 * fixed plan the result is bitwise the same however the tasks are scheduled.
 * flat_attention is a plan made, executed with OpenMP and destroyed.
 * ------------------------------------------------------------------------ */
typedef struct flat_plan flat_plan; /* opaque */

/* Validates like flat_attention and makes the plan; *plan is NULL on error.
 * opt->num_threads is the number of workers the plan is sized for (0: the
 * OpenMP default). FLAT_ERROR_OUT_OF_MEMORY if the plan object cannot be
 * allocated. */
FLAT_API flat_status flat_plan_create(const flat_tensor *q, const flat_tensor *k,
                                      const flat_tensor *v, const flat_tensor *out,
                                      const flat_options *opt, flat_plan **plan);
/* The same for flat_attention_paged. */
FLAT_API flat_status flat_plan_create_paged(const flat_tensor *q, const flat_paged_kv *kv,
                                            const flat_tensor *out, const flat_options *opt,
                                            flat_plan **plan);
/* Frees the plan (NULL is a no-op). No task of it may be running. */
FLAT_API void flat_plan_destroy(flat_plan *plan);
/* Bytes of workspace one execution needs, for all workers together; the
 * workspace must be 64-byte aligned. The content need not be initialised and
 * is garbage afterwards. */
FLAT_API size_t flat_plan_workspace_size(const flat_plan *plan);
/* Workers the plan is sized for (worker ids run 0 .. workers-1). */
FLAT_API int flat_plan_workers(const flat_plan *plan);
/* Tasks of a phase: 0 attention, 1 split-KV merge (0 tasks if none); -1 for
 * another phase or a NULL plan. */
FLAT_API int64_t flat_plan_tasks(const flat_plan *plan, int phase);
/* Runs task `task` of `phase` as worker `worker` in `workspace` (of
 * flat_plan_workspace_size bytes, shared by all workers of this execution).
 * FLAT_ERROR_INVALID_ARGUMENT for an out-of-range phase, task or worker, or a
 * NULL or misaligned workspace; nothing is written then. */
FLAT_API flat_status flat_plan_run_task(const flat_plan *plan, int phase, int64_t task,
                                        int worker, void *workspace);
/* Runs every task of both phases with OpenMP (flat_plan_workers threads).
 * workspace NULL: allocated for this call (FLAT_ERROR_OUT_OF_MEMORY if that
 * fails, nothing written). */
FLAT_API flat_status flat_plan_execute(const flat_plan *plan, void *workspace);
/* The planner's choice and its reason (what FLAT_VERBOSE=1 prints); valid
 * while the plan lives. */
FLAT_API const char *flat_plan_describe(const flat_plan *plan);

/* Best ISA of this CPU and build, ignoring FLAT_ISA. */
FLAT_API flat_isa flat_isa_detect(void);

/* "auto", "scalar", "avx2", "avx512", "neon", "avx512_bf16"; "unknown" for other values. */
FLAT_API const char *flat_isa_name(flat_isa isa);

#ifdef __cplusplus
}
#endif

#endif /* FLAT_H */
