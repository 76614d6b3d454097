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
 * CPU detection result, computed once, the fork mark below and, without
 * OpenMP, its thread pool.
 *
 * Threads: flat_attention, flat_attention_paged and flat_plan_execute run
 * their tasks on the calling thread plus worker threads, which come from
 *   - OpenMP (libgomp with GCC) in the default build (-DFLAT_OPENMP=ON);
 *   - flat's own pool in a build with -DFLAT_OPENMP=OFF, which links no
 *     OpenMP runtime (only libc's pthreads): threads created on first use,
 *     as many as the largest call has asked for less one (the caller works
 *     too), kept for later calls, each spinning some tens of microseconds
 *     after a call and then sleeping on a condition variable; concurrent
 *     callers each take idle threads and start more when none is idle. Their
 *     signals are blocked. The task interface (flat_plan_run_task) runs on
 *     the engine's threads in both builds. The API and results are the same.
 * A call with one worker (num_threads = 1, or a plan with one task) runs on
 * the calling thread alone and touches neither OpenMP nor the pool.
 *
 * Stack: a call (or flat_plan_run_task) takes up to about 40 KiB of the
 * stack of each thread it runs on; workspaces are on the heap. The deepest
 * frames are kernels' (gcc -fstack-usage, 0.3: 27-31 KiB in avx512's
 * quantized Q.K^T and avx512_vnni's P.V; the runtime's are under 2 KiB). A
 * thread of 42 KiB (glibc, x86-64) ran every table, K/V type and precision
 * at decode, spec-decode and prefill shapes; 40 KiB did not. Give threads
 * that run flat at least 64 KiB (or the platform's PTHREAD_STACK_MIN where
 * larger: 128 KiB on AArch64 Linux). tests/test_stack.c holds it.
 *
 * fork(): with OpenMP, the thread pool does not survive fork() (GCC bug
 * 60035): a child entering OpenMP after its parent ran threaded calls would
 * hang. So in a child forked after its parent ran a call on more than one
 * thread (and in every descendant of such a child), each call runs on the
 * calling thread alone, whatever num_threads says, to the same accuracy;
 * FLAT_VERBOSE=1 says so. Other processes keep their threads, children
 * forked before any threaded call included. A call with num_threads = 1
 * never enters OpenMP, so it is safe in any child, even when the host ran
 * OpenMP regions of its own before forking: flat cannot see that pool, so
 * such a child should pass num_threads = 1. Without OpenMP
 * (-DFLAT_OPENMP=OFF), a pthread_atfork child handler makes the child forget
 * the parent's pool threads (which it does not have), and its first threaded
 * call starts its own: every process keeps its threads, and no host pool
 * matters.
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
    FLAT_ISA_AMX_BF16 = 6, /* (0.3) x86-64 AMX-BF16 (Sapphire Rapids and later): Q.K^T and
                            P.V on tdpbf16ps tiles, the softmax between them on AVX-512
                            (AVX512_BF16 needed too). Rounds as FLAT_ISA_AVX512_BF16 and
                            has its bound: rows within 1e-2, lse within 5e-3 for logits of
                            O(1). Needs CPUID AMX-TILE and AMX-BF16, a tile palette, the
                            OS's tile state (XCR0) and, on Linux, the process's permission
                            (arch_prctl ARCH_REQ_XCOMP_PERM, asked once); where any is
                            missing, asking for it is FLAT_ERROR_UNSUPPORTED naming it.
                            Tile state is configured and released inside each kernel
                            call, so no thread keeps any. Takes every K/V type (quantized
                            rows dequantized, then rounded to bf16 for the tiles). */
    FLAT_ISA_AVX512_VNNI = 7 /* (0.3) x86-64 AVX-512 with AVX512_VNNI (Ice Lake, Zen 4 and
                            later): int8 products on FLAT_I8 K/V (vpdpbusd). On an I8
                            cache the decode path's Q.K^T rounds each query row's Q to
                            int8 (one scale per row and call) and every P.V rounds
                            P * (V group scale) to u8 (one scale per row, group and
                            chunk of 128 keys); codes are multiplied as they lie,
                            int32 sums. On an I4 cache likewise: the decode Q.K^T
                            and every P.V on the nibbles (split in registers). Bound:
                            see FLAT_PRECISION_INT8. Every other
                            K/V type, prefill's Q.K^T, and the layouts its integer
                            kernels decline (kernels/avx512_vnni/kernels.h: V groups
                            not a multiple of 32, K groups not a multiple of 16, head
                            dims over 1024) run the AVX-512 table's fp32 kernels, with
                            its bits. Not batch-invariant: FLAT_FLAG_BATCH_INVARIANT
                            with int8 products on an I8 or I4 cache is
                            FLAT_ERROR_UNSUPPORTED.
                            AUTO never takes it; FLAT_PRECISION_INT8 or opt.isa does. */
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
    FLAT_PRECISION_BF16 = 2, /* bf16 products whatever the types (Q, K, V rounded): the
                                fastest table with them (amx_bf16, else avx512_bf16);
                                FLAT_ERROR_UNSUPPORTED with a message where none runs */
    FLAT_PRECISION_INT8 = 3  /* (0.3) int8 products on FLAT_I8 and FLAT_I4 K/V caches:
                                the avx512_vnni table (FLAT_ISA_AVX512_VNNI says what it
                                rounds); FLAT_ERROR_UNSUPPORTED where the CPU or build
                                lacks AVX512_VNNI. Other K/V types: FLAT_PRECISION_FP32.
                                Bound (tests/test_quant*.c): on top of the cache's own
                                quantization, out rows within 2e-2 relative L2 of the
                                double reference on the dequantized cache, for logits
                                of O(1) (measured 1.0e-2 worst); each logit is off by at
                                most (max|q| / 254) sum|k| (Q's int8 step), each P.V
                                term by half a u8 step of its chunk's largest p * s_v.
                                Not with FLAT_FLAG_BATCH_INVARIANT (UNSUPPORTED). */
} flat_precision;

typedef enum {
    FLAT_DATAFLOW_AUTO = 0, /* the planner picks: DECODE for few query rows per kv
                               head (at most 32: GQA group x queries), else FLAT
                               when its rows fit L2, else FLASH; per sequence in a
                               ragged call (flat_paged_kv.q_offsets) */
    FLAT_DATAFLOW_FLAT,     /* exact softmax over whole logit rows */
    FLAT_DATAFLOW_FLASH,    /* online softmax over key blocks */
    FLAT_DATAFLOW_DECODE    /* (0.2) online softmax over key blocks, K and V read in
                               place: all query rows of a kv head (its GQA group x
                               q.seq) in one task, so each K/V byte is read once */
} flat_dataflow;

/* ------------------------------------------------------------------------
 * Quantized K/V (0.3)
 *
 * With k.dtype (and v.dtype, the same) FLAT_I8, FLAT_F8E4M3 or FLAT_I4,
 * element (b, h, s, d) of K is
 *       code(b, h, s, d) * k_scale[b, h, s, d / k_group]
 * computed as one fp32 product (round to nearest even); V likewise with
 * v_scale and v_group. The kernels compute on exactly these values (codes
 * and scales are converted in registers as K and V are read; no dequantized
 * copy is made), so the accuracy bounds of flat_attention hold against a
 * reference on the dequantized K and V. A scale tensor is viewed like K (or
 * V) with dim replaced by dim / group: its batch, heads and seq equal K's
 * (paged: batch = kv.pages, heads = kv.heads, seq = kv.page_size, indexed
 * [page, head, token in page, group] like the pools), its groups contiguous
 * (stride 1), and strides of 0 broadcast, so one mechanism covers
 *   per-token groups   group 32, scale [B, H, S, D/32] (llama.cpp q8_0-like)
 *   per token          group = dim, scale [B, H, S, 1]
 *   per channel        group 1, stride_seq 0 (KIVI / ORT per-channel keys)
 *   per page           paged, stride_token 0 (one scale row per page)
 *   per tensor         group = dim, every stride 0 (vLLM's k_scale)
 * The caller owns the struct and the scale memory; flat reads them during
 * the call (a plan copies the struct and binds the scale pointers like the
 * tensors'). Scales must not overlap out or lse. Scales may be any finite
 * value (0 included); inf or NaN scales give inf or NaN products, as a K/V
 * element of that value would.
 * ------------------------------------------------------------------------ */
typedef struct {
    /* Scales of K and V: dtype FLAT_F32 or FLAT_F16, shape as above, strides
     * in elements and >= 0, data non-NULL. */
    flat_tensor k_scale, v_scale;
    /* Dim elements per scale: >= 1 and dividing k.dim (v.dim). */
    int32_t k_group, v_group;
    /* Must be zero. */
    uint64_t reserved[2];
} flat_kv_quant;

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
    /* Threads to use; 0 means the default: OpenMP's (omp_get_max_threads:
     * OMP_NUM_THREADS, else the CPUs), or without OpenMP the CPUs this thread
     * may run on (its affinity mask). Must be >= 0. More than those CPUs is
     * clamped to them (0.3; a worker per CPU is all that runs at once, and
     * each needs a scratch area), and a call never uses more threads than it
     * has tasks (see flat_plan_workers). With OpenMP, in a child forked after
     * threaded calls, calls use one thread (see fork() above). */
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
    /* Optional additive mask viewed as [B, Hq, q_len, kv_len] (its batch,
     * heads, seq and dim; dim contiguous; a stride of 0 broadcasts); -inf
     * entries mask. Its dtype is FLAT_F32, or (0.3) FLAT_F16 or FLAT_BF16
     * (llama.cpp's f16 mask as it is): a 16-bit mask's values are widened
     * exactly, so the results are bitwise those of an fp32 mask holding the
     * same values. Added after softcap and ALiBi. Read tile by tile, never
     * copied; it must not overlap out or lse. The only rule that reads an N^2
     * tensor. */
    const flat_tensor *mask;
    /* ---- 0.3 ---- */
    /* Scales of a quantized K/V cache (see flat_kv_quant), read only, owned by
     * the caller, read during the call. Required when k.dtype is FLAT_I8 or
     * FLAT_I4; optional for FLAT_F8E4M3 (NULL: every scale is 1); must be
     * NULL for an unquantized K/V. Takes 0.2's reserved[0]. */
    const flat_kv_quant *kv_quant;
    /* FLAT_FLAG_* bits (below); 0: none. Unknown bits are rejected
     * (FLAT_ERROR_INVALID_ARGUMENT). Takes 0.2's reserved[1]. */
    uint64_t flags;
    /* Must be zero: a later option takes this word (0.2's reserved[2]). */
    uint64_t reserved[1];
} flat_options;

/* flat_options.flags (0.3). */
/* One-phase plans: keys are never split (split-KV off), so the plan has no
 * phase-1 tasks and every task writes its rows of out and lse itself. An
 * engine that runs a plan's tasks inside one operation of its graph, with no
 * barrier between tasks, sets it (see "Plans" below). The cost: a call with
 * fewer query blocks than threads (a small decode batch on many threads)
 * leaves threads idle instead of splitting each block's keys. Results are
 * those of a plan made without the flag whenever that plan does not split. */
#define FLAT_FLAG_ONE_PHASE 2u

/*
 * FLAT_FLAG_BATCH_INVARIANT: the bits of a query row's output and lse depend
 * only on that row's q, the keys and values it sees (and its mask row, ALiBi
 * distance, sink), the options and the kernel table: not on the other rows or
 * sequences of the call, its q_len (a decode step or a row of a prefill
 * chunk: a causal row at the same position sees the same keys), the thread
 * count, the page size, the split-KV count or the task schedule (plans run on
 * caller threads in any order included). Serving the same prompt twice then
 * gives the same tokens whatever else is batched.
 *
 * How: one reduction order per row, whatever the call.
 *   - Online softmax (FLASH) over key blocks on a fixed grid: block i holds
 *     keys [i*Bk, (i+1)*Bk) counted from key 0, Bk a constant of the table and
 *     head dims (nr-multiple near 2^17 / (D + Dv), within 256..1024 keys). A
 *     row's running max, sum and rescales follow its own visible keys on that
 *     grid; opt.dataflow FLAT (exact softmax over whole rows) is not used.
 *   - The scores: the GEMM path's qk and the decode path's qk_rows compute a
 *     score with the same operations in the same order when qk_rows gets a
 *     whole register block of rows (kernels/ukernel.h), so the planner keeps
 *     its decode/prefill choice (DECODE and FLASH give the same bits).
 *   - Split-KV at a fixed key count: the keys are cut into ranges of 8 Bk
 *     keys from key 0, and a row that sees more than one range merges the
 *     ranges' partial results in range order (by lse weights, merge.c), on
 *     any thread count: as split-KV tasks when the call has too few tasks
 *     for its threads, else one range after another inside its task, with
 *     the same bits; the threads and tasks never change a row's cuts.
 *   - P.V adds each row's keys in ascending order, one key at a time, so page
 *     boundaries and the rows grouped with it do not change the sum; on
 *     FLAT_ISA_AVX512_BF16 (whose P.V rounds to bf16 in calls of 3 or more
 *     rows) P.V then runs on 2 rows at a time, in fp32 products: its results
 *     under the flag are more accurate than without, and slower.
 * Cost: flat-bench-invariance measures it per shape of the shared set (1 and
 * 2 threads; benchmarks/RESULTS.md); from a few percent on prefill to more on
 * decode (whole-panel qk_rows) and on the long rows that cross split ranges,
 * so the flag is opt-in: without it results are those of 0.2, bit for bit.
 */
#define FLAT_FLAG_BATCH_INVARIANT 1u

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
 * within the same accuracy bound (bitwise without a window when every
 * sequence is of one kind, below; a window's skipped key blocks follow the
 * query blocks, which the ragged rows place differently). Two kinds (0.3):
 * under FLAT_DATAFLOW_AUTO a sequence of at most 32 query rows per kv head
 * (q.heads / heads x its queries: a decode, a speculative verification)
 * takes the decode path and a longer one (a prefill chunk) the GEMM-shaped
 * path, each kind planned as a call of only its sequences would be, so a
 * mixed step costs what its parts cost apart, and each row is bitwise that
 * of the ragged call of just the sequences of its kind (same options and
 * thread count) unless the two calls differ in splitting keys (split-KV
 * counts the whole call's tasks; with FLAT_FLAG_BATCH_INVARIANT it changes
 * no bits). Rows of q that no sequence owns are neither read nor written
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
                                  batch and every sequence has q.seq queries, whatever
                                  its seq_lens[b] (0 included: an empty slot), as
                                  flat_attention's kv_lens: a row that sees no key
                                  gets a zero row and lse = -inf. */
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
 * options and the kernel table, and it is immutable once made (until
 * flat_plan_repoint points it at other tensors), so any number
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
 * flat_attention is a plan made, executed (OpenMP or flat's pool, see Threads
 * at the top) and destroyed.
 *
 * One phase (0.3): a plan made with FLAT_FLAG_ONE_PHASE in opt->flags never
 * splits keys, so it has no phase-1 tasks (flat_plan_tasks(plan, 1) == 0)
 * and needs no barrier: an engine runs its phase-0 tasks inside a single op
 * of its graph, on its own threads, in any order. Without the flag, whether
 * a plan splits (and has phase 1) is the planner's choice: it splits when
 * the query blocks are fewer than 4 per worker and the keys are long.
 *
 * Workers: a plan gets at most min(num_threads, CPUs) workers (see
 * num_threads) and never more than it has tasks; flat_plan_workers says how
 * many. An engine with more threads than that gives the rest nothing to do
 * in this plan (worker ids must stay below flat_plan_workers).
 *
 * Task order and cost, for an engine that schedules statically: phase-0
 * task i's estimated cost (the visible query-key pairs it computes times
 * (dim + v_dim), plus packing its keys) does not grow with i: tasks come
 * heaviest first, so taking them in index order as threads come free is
 * longest-processing-time-first, within a few percent of the best balance.
 * Assigning task i to thread i % n (round robin) balances almost as well;
 * contiguous ranges of indices per thread do not (causal and ragged calls
 * have a few heavy tasks at the front). There are about 8 tasks per worker
 * when the call has that many query blocks (a decode call may have only one
 * per (sequence, kv head)); the splits of one block are adjacent and cost the
 * same. Phase-1 tasks (merges) each read the split rows of one block, a small
 * fraction of the phase-0 work; any order or assignment does.
 * ------------------------------------------------------------------------ */
typedef struct flat_plan flat_plan; /* opaque */

/* Validates like flat_attention and makes the plan; *plan is NULL on error.
 * opt->num_threads is the number of workers the plan is sized for (0: the
 * default; clamped to the CPUs and the tasks: see flat_plan_workers).
 * FLAT_ERROR_OUT_OF_MEMORY if the plan object cannot be allocated. */
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
/* Workers the plan is sized for (worker ids run 0 .. workers-1): at most
 * opt->num_threads (or the default), the CPUs this thread may run on, and
 * the plan's phase-0 tasks, so possibly fewer than num_threads asked. */
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
/* Runs every task of both phases on flat_plan_workers threads: OpenMP's, or
 * without OpenMP flat's pool (see Threads at the top); the caller is one.
 * workspace NULL: allocated for this call (FLAT_ERROR_OUT_OF_MEMORY if that
 * fails, nothing written). */
FLAT_API flat_status flat_plan_execute(const flat_plan *plan, void *workspace);
/* Re-points a plan at new tensors (0.3): the arguments of a flat_plan_create
 * call for the same problem, validated as that call would validate them.
 * What may change: the data pointers of q, k, v and out, opt->lse,
 * opt->mask->data and a quantized cache's opt->kv_quant->k_scale.data and
 * v_scale.data, and the values of opt->sinks and opt->alibi_slopes (the
 * plan copies them again). Everything else must equal what the plan was made
 * with: every shape, stride and dtype, opt->kv_lens's values (the tiling
 * follows them), the presence of each optional array, and every other
 * option field (isa, dataflow and num_threads as given, not as resolved).
 * Anything else is FLAT_ERROR_INVALID_ARGUMENT naming the first difference,
 * and the plan is unchanged. Cost: the validation (O(batch + heads)), no
 * allocation. It changes the plan: no task of it may be running, and no
 * other thread may use it, during the call. */
FLAT_API flat_status flat_plan_repoint(flat_plan *plan, const flat_tensor *q,
                                       const flat_tensor *k, const flat_tensor *v,
                                       const flat_tensor *out, const flat_options *opt);
/* The same for a plan of flat_plan_create_paged. What may change: kv->k and
 * kv->v (the pools; kv->pages too), the block table's pointer and entries
 * (validated against kv->pages), q, out, opt->lse, opt->mask->data, the
 * scale pools' data pointers (opt->kv_quant), and the sinks' and slopes'
 * values. kv->seq_lens and kv->q_offsets must hold the
 * plan's values (the tiling follows them), and the strides, page size,
 * block_table_stride, dtypes and options must be the plan's. */
FLAT_API flat_status flat_plan_repoint_paged(flat_plan *plan, const flat_tensor *q,
                                             const flat_paged_kv *kv, const flat_tensor *out,
                                             const flat_options *opt);
/* An upper bound of flat_plan_workspace_size (0.3), from the shapes alone,
 * before any tensor exists, so an engine can reserve the workspace when it
 * builds its graph: every plan (flat or paged, ragged or not) made in this
 * process with options `opt` (the same isa, dataflow, num_threads and flags;
 * the score rules do not matter: they take no workspace) whose call has at
 * most `batch` sequences, each of at most `q_len` query rows and `kv_len`
 * visible keys (kv_lens, seq_lens), with q_heads / kv_heads heads and head
 * dims dim / v_dim, needs at most this many bytes. 0, with flat_last_error
 * set, when an argument is out of range (batch, heads or dims < 1, q_len or
 * kv_len < 0, q_heads not a multiple of kv_heads, opt invalid). Not tight:
 * it takes the largest tile any dataflow may choose for these sizes, and for
 * a plan that may split keys, room for 8 split ranges per worker (measured
 * 1.0x-5x a real plan's size). */
FLAT_API size_t flat_plan_workspace_bound(int64_t batch, int64_t q_heads, int64_t kv_heads,
                                          int64_t q_len, int64_t kv_len, int64_t dim,
                                          int64_t v_dim, const flat_options *opt);
/* The planner's choice and its reason (what FLAT_VERBOSE=1 prints); valid
 * while the plan lives. */
FLAT_API const char *flat_plan_describe(const flat_plan *plan);

/* ------------------------------------------------------------------------
 * Writing a quantized cache (0.3)
 * ------------------------------------------------------------------------ */
#define FLAT_QUANTIZE_GIVEN_SCALES 1u /* use the caller's scales instead of computing them */

/*
 * Quantizes rows: src [B, H, S, D] of FLAT_F32, FLAT_F16 or FLAT_BF16 into dst
 * (the same shape, FLAT_I8, FLAT_F8E4M3 or FLAT_I4; I4: D and dst's strides
 * even), with one scale per `group` dim elements in `scale` ([B, H, S, D /
 * group], FLAT_F32 or FLAT_F16, groups contiguous), the layout flat_kv_quant
 * reads. What an engine calls when it appends a token, a page or a prefill
 * chunk to the cache.
 *   flags 0: each group's scale is amax / 127 (I8), amax / 448 (F8E4M3) or
 *     amax / 7 (I4), amax the group's largest |x|, computed in fp32 and
 *     rounded once to the scale type, and written to `scale` (whose strides must then not make
 *     two groups share an element: no 0 strides over an extent > 1); an
 *     all-zero group gets scale 0 and codes 0.
 *   FLAT_QUANTIZE_GIVEN_SCALES: `scale` is read, not written (strides of 0
 *     broadcast: calibrated per-channel or per-tensor scales); a scale of 0
 *     gives codes 0.
 * Each code is the fp32 quotient x / scale rounded to nearest even (F8E4M3:
 * to the nearest e4m3 value, ties to even) and saturated to the type's
 * range (I8 -127..127, never -128; I4 -8..7; F8E4M3 +-448, never NaN), so a
 * dequantized element is within half a code step of x, or the range end.
 * NaN and inf inputs are refused: FLAT_ERROR_INVALID_ARGUMENT naming the
 * first such element (nothing is written then; the check is one pass over
 * src before any write). src, dst and scale must not overlap (except that a
 * given scale may overlap src). Thread safety as every call; single-threaded.
 * It runs on the kernel table an AUTO attention call would (FLAT_ISA
 * included; every table writes the same bits), at several GB/s of source
 * (benchmarks/quantize.c, flat-bench-quantize, measures it).
 */
FLAT_API flat_status flat_quantize(const flat_tensor *src, const flat_tensor *dst,
                                   const flat_tensor *scale, int32_t group, uint32_t flags);

/* Best ISA of this CPU and build, ignoring FLAT_ISA. */
FLAT_API flat_isa flat_isa_detect(void);

/* "auto", "scalar", "avx2", "avx512", "neon", "avx512_bf16", "amx_bf16" (0.3),
 * "avx512_vnni" (0.3); "unknown" for other values. */
FLAT_API const char *flat_isa_name(flat_isa isa);

#ifdef __cplusplus
}
#endif

#endif /* FLAT_H */
