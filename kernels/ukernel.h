/*
 * The micro-kernel contract every ISA implements (scalar, avx2, avx512, neon,
 * avx512_bf16, amx_bf16).
 *
 * The runtime (runtime/) drives both dataflows through these functions only;
 * it knows the register block (mr, nr, pv_mr) and the packing layouts below,
 * nothing else of a kernel's insides.
 *
 * Two ways to reach K: the GEMM-shaped path packs it into panels once per
 * (batch, kv head) and qk reuses them for every query block (prefill); the
 * decode path's qk_rows reads K rows where they lie, for the few query rows
 * that share them (decode, speculative verification). pv reads V rows in place
 * on both paths.
 *
 * Common rules for every kernel:
 *   - fp32 accumulation and fp32 scratch (panels, scores, O; the panels of a
 *     table that computes in bf16 hold bf16 pairs, below). Operands that
 *     come from the caller's tensors (Q rows, K, V, out) have an element type
 *     `t` and are `void *`; kernels convert them on the fly (never a
 *     converted copy in memory), switching on t once, outside their loops.
 *     Q and out are FLAT_F32, FLAT_F16 or FLAT_BF16. K and V come as a
 *     flat_kv_src (below), which may also be quantized (FLAT_I8,
 *     FLAT_F8E4M3, FLAT_I4 with their scales): a kernel turns each element
 *     into the fp32 value kernels/convert.h's flat_kv_load gives, in
 *     registers, and computes on that as on any fp32 operand. A table lists
 *     the types it implements in `dtypes`; calling a kernel with another type
 *     is a precondition violation. Conversions are exact (f16/bf16/f8/codes
 *     -> f32), one fp32 rounding for code * scale, or round to nearest even
 *     (f32 -> f16/bf16), bit for bit as kernels/convert.h.
 *   - Strides and sizes are in elements (of type t where t applies; an I4
 *     element is half a byte).
 *   - Pointers marked restrict do not alias. No kernel reads or writes outside
 *     the extents stated here (no over-reads: sanitizers stay quiet), and no
 *     alignment is guaranteed beyond that of float.
 *   - Scores are in base-2 units: pack_q folds scale * log2(e) into Q, so the
 *     softmax uses exp2 and the runtime converts lse back with ln 2.
 *   - exp2 of an argument below -126 is exactly 0 (never a denormal), so P V
 *     never runs on denormal operands.
 *
 * Packing layouts (both zero-padded, so qk always runs whole register blocks):
 *
 *   Q panel (pack_q): mr rows of Q, dim-major           K panel (pack_k): nr keys, dim-major
 *        qp[p][d][i] = scale * Q[p*mr + i][d]               kp[p][d][j] = K[p*nr + j][d]
 *        d = 0 | q0 q1 ... q(mr-1) |                        d = 0 | k0 k1 ... k(nr-1) |
 *        d = 1 | q0 q1 ... q(mr-1) |                        d = 1 | k0 k1 ... k(nr-1) |
 *        ...                                                ...
 *   a panel holds d*mr floats; rows past m are 0.      a panel holds d*nr floats; keys past n are 0.
 *
 * A table whose `compute` is FLAT_BF16 forms the qk products from bf16 pairs
 * of dims instead (vdpbf16ps and the like): its panels keep the sizes and
 * places above (panel p at p*d*mr and p*d*nr floats, which the runtime
 * computes), and fill the first ceil(d/2)*mr (*nr) 32-bit words of each with
 *        qp[p][c2][i] = bf16(scale*Q[p*mr+i][2*c2]) | bf16(scale*Q[..][2*c2+1]) << 16
 *        kp[p][c2][j] = bf16(K[p*nr+j][2*c2])       | bf16(K[..][2*c2+1]) << 16
 * (round to nearest even; a dim past d is 0, so an odd d pads with zeros);
 * the rest of each panel is not written. (With nr = 16, a K panel's pairs
 * are exactly an AMX B tile, 16 rows of 64 bytes; amx_bf16 reads it so.) qk and qk_rows of such a table read
 * these layouts, and its pv rounds P and V to bf16 where it multiplies them
 * that way (accumulating in fp32 still). No other part of the runtime reads
 * the panels.
 */
#ifndef FLAT_UKERNEL_H
#define FLAT_UKERNEL_H

#include <stdint.h>

#include "flat.h"

/* CPU feature bits a table requires (runtime/cpu.c fills a host mask). */
enum {
    FLAT_CPU_AVX2 = 1u << 0,
    FLAT_CPU_FMA = 1u << 1,
    FLAT_CPU_F16C = 1u << 2,
    FLAT_CPU_AVX512F = 1u << 3,
    FLAT_CPU_AVX512BW = 1u << 4,
    FLAT_CPU_AVX512VL = 1u << 5,
    FLAT_CPU_AVX512DQ = 1u << 6,
    FLAT_CPU_NEON = 1u << 7,
    FLAT_CPU_AVX512BF16 = 1u << 8,
    /* AMX: CPUID 7 EDX bits 24 and 22, a palette in leaf 0x1D, XCR0 bits
     * 17-18 and (Linux) the process's permission for tile data, all checked */
    FLAT_CPU_AMX_TILE = 1u << 9,
    FLAT_CPU_AMX_BF16 = 1u << 10,
    FLAT_CPU_AVX512VNNI = 1u << 11, /* CPUID 7 ECX bit 11 */
};

/* dtypes masks */
#define FLAT_DTYPE_BIT(t) (1u << (t))
#define FLAT_DTYPES_FLOAT (FLAT_DTYPE_BIT(FLAT_F32) | FLAT_DTYPE_BIT(FLAT_F16) | FLAT_DTYPE_BIT(FLAT_BF16))
/* K/V only (a quantized type is never a q or out type) */
#define FLAT_DTYPES_QUANT (FLAT_DTYPE_BIT(FLAT_I8) | FLAT_DTYPE_BIT(FLAT_F8E4M3) | FLAT_DTYPE_BIT(FLAT_I4))
#define FLAT_DTYPES_ALL (FLAT_DTYPES_FLOAT | FLAT_DTYPES_QUANT)

/*
 * pack_q: qp = panels of `m` query rows, each row scaled by `scale`.
 *   rows[r] points at Q row r (d contiguous elements of type t), r < m, m >= 1.
 *   Writes ceil(m / mr) panels of d*mr floats; rows m.. of the last panel are 0.
 */
typedef void (*flat_pack_q_fn)(int m, int d, const void *const *rows, flat_dtype t, float scale,
                               float *restrict qp);

/*
 * Rows of K or V as the kernels reach them (the BLIS "matrix object" of this
 * contract): row j, column c is element j*ld + c of `data`, of type t; for a
 * quantized t its value is
 *       code(j, c) * scale[j*ld_scale + c / group]      (one fp32 rounding)
 * with the scales of type scale_t. The groups of one row are contiguous in
 * the scale tensor (the caller's scale view has dim contiguous); ld_scale 0
 * broadcasts one row of scales to every row (per channel, per page, per
 * tensor). A column offset c0 that a kernel applies is its own business:
 * `data` and `scale` always point at column 0 of row 0, so c / group is
 * exact.
 *
 *   t          element                                   scale
 *   F32/F16/BF16  the value (scale fields unused)        -
 *   I8         int8 code -127..127 (-128 reads as -128)  required
 *   F8E4M3     OCP e4m3fn byte (S.EEEE.MMM, bias 7,      NULL: 1
 *              no inf, S.1111.111 NaN)
 *   I4         two's-complement nibble -8..7, element    required
 *              e in byte e/2, even e in the low nibble;
 *              ld even
 *
 * Preconditions: group >= 1 divides every column count a kernel is given
 * (d, dv) for a quantized t; scale_t is FLAT_F32 or FLAT_F16. The runtime
 * (runtime/keys.c) builds these and offsets them by whole rows only
 * (flat_kv_src_rows in kernels/convert.h).
 */
typedef struct flat_kv_src {
    const void *data;   /* row 0, column 0 */
    int64_t ld;         /* elements between rows (I4: even) */
    flat_dtype t;       /* element type */
    flat_dtype scale_t; /* FLAT_F32 or FLAT_F16 (quantized t only) */
    const void *scale;  /* row 0's first scale; NULL: scale 1 */
    int64_t ld_scale;   /* scale elements between rows; 0 broadcasts */
    int64_t group;      /* columns per scale (quantized t only) */
    /* The rows the caller hands the kernel next, for prefetching only
     * (NULL: none known): the run `next`, of which next_n rows count, then
     * next->next, and so on. A kernel of a table with prefetch_next may
     * prefetch rows of this chain past its own last row, spread over its
     * keys as it prefetches its own rows (never reading them); any other
     * kernel ignores it. A paged cache's next pages, which no hardware
     * prefetcher predicts: asked for all at once before each call, a
     * page's lines queued behind the miss buffers and stalled the core
     * (runtime/keys.c). */
    const struct flat_kv_src *next;
    int64_t next_n;
    /* Rows a later call reads, to fetch alongside (NULL: none): while a
     * kernel reads row j of this source it may prefetch row j of `along`
     * (its first along_cols columns) into L2, spread over its own reads.
     * The decode path with more rows than the dot kernels take hands
     * qk_rows the key block's V rows and pv the next block's K rows
     * (runtime/keys.c, runtime/dataflow.c), so each phase streams one
     * matrix while it computes from the other. Rows 0 .. n-1 of `along`
     * exist whenever this call's n rows do; prefetch only, never read. A
     * kernel may ignore it (avx512 qk_rows' transposing block and pv's
     * 6-row blocks, avx512_bf16 qk_rows' transposing block take it). */
    const struct flat_kv_src *along;
    int64_t along_cols;
} flat_kv_src;

/*
 * pack_k: kp = panels of `n` keys, k's values widened (dequantized) to fp32
 *   (or, for a bf16-compute table, rounded to bf16 pairs).
 *   Key j is row j of k (d columns), j < n, n >= 1. Writes ceil(n / nr)
 *   panels of d*nr floats; keys n.. of the last panel are 0.
 */
typedef void (*flat_pack_k_fn)(int n, int d, const flat_kv_src *k, float *restrict kp);

/*
 * qk: S[i][p*nr + j] = sum_d qp[d][i] * kp[p][d][j]
 *   for one Q panel (i < mr) against `n_panels` consecutive K panels
 *   (j < nr, p < n_panels). Row i of S starts at s + i*ld_s, and
 *   ld_s >= n_panels*nr. Writes exactly mr x n_panels*nr floats.
 */
typedef void (*flat_qk_fn)(int d, int n_panels, const float *restrict qp,
                           const float *restrict kp, float *restrict s, int64_t ld_s);

/*
 * qk_rows: S[i][j] = sum_c qp[c*mr + i] * K[j][c]   for i < m, j < n
 *   The decode path's qk: one Q panel (pack_q's layout, rows >= m ignored)
 *   against n keys read where they lie, key j = row j of k (d columns; codes
 *   and scales converted in registers, never a dequantized copy). No packing
 *   and no padding: each K byte crosses the memory bus once per call,
 *   whatever the number of query rows sharing it.
 *   1 <= m <= mr, d >= 1, n >= 0. Writes exactly m x n floats, row i at
 *   s + i*ld_s (ld_s >= n); reads no key at or past n. Accuracy as qk (an
 *   fp32 dot product of d terms, any summation order; for a quantized K
 *   the scale may multiply Q or a group's partial sum instead of each code,
 *   one more rounding per term: tests/test_quant_kernels bounds it), with
 *   one exception:
 *   called with m == mr (the whole panel), each S[i][j] is computed with the
 *   same operations in the same order as qk computes it, so the two paths
 *   give the same bits (FLAT_FLAG_BATCH_INVARIANT relies on it where a table
 *   has no qk_rows_exact: tiling.h;
 *   tests/test_invariance checks it through the API on every table).
 */
typedef void (*flat_qk_rows_fn)(int m, int d, int n, const float *restrict qp,
                                const flat_kv_src *k, float *restrict s, int64_t ld_s);

/*
 * qk_rows_exact (may be NULL): qk_rows whose every S[i][j] is computed with
 *   qk's operations in qk's order for any m, not only m == mr: what the
 *   batch-invariant decode path needs for 1-4 rows per kv head, where
 *   qk_rows with m == mr would compute (and discard) a whole panel. A table
 *   without it gets qk_rows at m == mr (runtime/keys.c).
 */

/*
 * row_max: max of s[0..n). Returns -inf when n == 0. NaN inputs may or may
 * not propagate into the result; exp2_row then yields NaN for that row
 * either way, which is all the runtime relies on.
 */
typedef float (*flat_row_max_fn)(int n, const float *s);

/*
 * exp2_row: s[j] = exp2(s[j] - m) for j < n, s[j] = 0 for n <= j < width;
 *   returns the sum of the first n results. Preconditions: n <= width,
 *   m >= every s[j] (j < n) and m finite whenever n > 0.
 *   Accuracy: each exp2 within 2 ulp of the exact value (results below 2^-126
 *   flush to exactly 0).
 */
typedef float (*flat_exp2_row_fn)(int n, int width, float *s, float m);

/*
 * pv: O[i][c] = a_i * O[i][c] + sum_{j<n} P[i][j] * V[j][c]   for i < m, c < dv,
 *   where a_i = alpha[i], or, if alpha == NULL, O is not read (as if a_i = 0).
 *   P row i at p + i*ld_p, V row j = row j of v (dv columns, converted in
 *   registers), O row i at o + i*ld_o (fp32). m >= 1 (any; the kernel blocks rows by pv_mr
 *   itself), n >= 0, dv >= 1. V is read only for j < n, so masked keys (even
 *   NaN) never reach O.
 *   Order: each O element is a_i * O (or 0) followed by the keys in order,
 *   j = 0, 1, ..., one FMA (or multiply-add) each. Splitting a call at any
 *   key (the second part with a = 1) therefore gives bitwise the same O:
 *   paged and contiguous K/V, whose calls split at different keys, agree bit
 *   for bit. (A table with compute = FLAT_BF16 multiplies keys in pairs, so
 *   for it the order, and bitwise equality under splits, is per key pair;
 *   calls of m <= 2 rows use fp32 products and the per-key order, which the
 *   batch-invariant mode uses: runtime/dataflow.c, pv_rows.)
 *   v->data and v->scale do not alias o.
 */
typedef void (*flat_pv_fn)(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                           const flat_kv_src *v, float *restrict o, int64_t ld_o,
                           const float *restrict alpha);

/*
 * widen_rows: y[j*ld_y + c] = V[j][c] for j < n, c < cols, as fp32: rows of
 *   a K/V source, each element the value pv multiplies (float types widened
 *   exactly; quantized types fl32(code * scale), as flat_kv_load). For a
 *   table with compute == FLAT_F32, pv over y (FLAT_F32 rows, ld_y apart)
 *   therefore gives the bits of pv over the source. The GEMM-shaped path
 *   widens a quantized V chunk once for all its row groups, where each pv
 *   call would convert every code again (runtime/dataflow.c).
 *   n >= 0, cols >= 1, ld_y >= cols; reads rows j < n only, columns c < cols.
 */
typedef void (*flat_widen_rows_fn)(int n, int cols, const flat_kv_src *src, float *restrict y,
                                   int64_t ld_y);

/*
 * store_row: y[c] = scale * x[c] for c < n, rounded once to type t (round to
 *   nearest even; f32: the product as computed). x fp32 (a normalised or
 *   merged output row), y the caller's row. n >= 1.
 */
typedef void (*flat_store_row_fn)(int n, const float *restrict x, float scale, flat_dtype t,
                                  void *restrict y);

/* What score_rules does to one row's scores of keys j0 .. j0+n-1. */
typedef struct {
    float cap;         /* softcap in base-2 units (softcap * log2 e); 0: none */
    float slope;       /* ALiBi: -slope_h * log2 e per key of distance; 0: none */
    float dist;        /* p - j0: key c of the call is at distance |dist - c| */
    const void *mask;  /* the additive mask at key j0 (natural-log units), or NULL */
    flat_dtype mask_t; /* its elements: FLAT_F32 (0), FLAT_F16 or FLAT_BF16 */
} flat_rules_row;

/*
 * score_rules: for c < n, in base-2 logits (pack_q's units):
 *     s[c] = cap * tanh(s[c] / cap)          when cap > 0
 *     s[c] += slope * |dist - c|              when slope != 0
 *     s[c] += log2(e) * mask[c]               when mask (-inf masks the key)
 *   with mask[c] widened exactly from mask_t to f32 in registers (so a 16-bit
 *   mask gives the bits of the f32 mask of the same values, at half the
 *   bytes; the kernels read no mask element at or past n).
 *   The softcap's tanh: within 2 ulp of tanh for |x| < 0.625 (a Cephes
 *   polynomial), else 1 - 2 / (exp(2|x|) + 1) with the table's exp2; the
 *   absolute error of cap * tanh stays below 2 ulp of cap (tests measure it
 *   against the double tanh and SLEEF's Sleef_tanhf_u10). NaN stays NaN.
 *   Returns the max of the n results, as row_max would (-inf for n == 0):
 *   the rules and the row max are one pass over the scores.
 */
typedef float (*flat_score_rules_fn)(int n, float *s, const flat_rules_row *r);

/* For score_rules: returns loop(n, s, r, cap?, slope?, mask) with the flags
 * as constants (mask: 0 none, 1 f32, 2 f16, 3 bf16), so a table's
 * always_inline loop is compiled once per combination of rules and tests
 * none of them per vector. */
#define FLAT_RULES_MASK_KIND(r)                                                             \
    ((r)->mask ? 1 + ((r)->mask_t == FLAT_F16) + 2 * ((r)->mask_t == FLAT_BF16) : 0)
#define FLAT_RULES_DISPATCH(loop, n, s, r)                                                  \
    switch (((r)->cap > 0) | ((r)->slope != 0) << 1 | FLAT_RULES_MASK_KIND(r) << 2) {      \
    case 0: return loop(n, s, r, 0, 0, 0);                                                  \
    case 1: return loop(n, s, r, 1, 0, 0);                                                  \
    case 2: return loop(n, s, r, 0, 1, 0);                                                  \
    case 3: return loop(n, s, r, 1, 1, 0);                                                  \
    case 4: return loop(n, s, r, 0, 0, 1);                                                  \
    case 5: return loop(n, s, r, 1, 0, 1);                                                  \
    case 6: return loop(n, s, r, 0, 1, 1);                                                  \
    case 7: return loop(n, s, r, 1, 1, 1);                                                  \
    case 8: return loop(n, s, r, 0, 0, 2);                                                  \
    case 9: return loop(n, s, r, 1, 0, 2);                                                  \
    case 10: return loop(n, s, r, 0, 1, 2);                                                 \
    case 11: return loop(n, s, r, 1, 1, 2);                                                 \
    case 12: return loop(n, s, r, 0, 0, 3);                                                 \
    case 13: return loop(n, s, r, 1, 0, 3);                                                 \
    case 14: return loop(n, s, r, 0, 1, 3);                                                 \
    default: return loop(n, s, r, 1, 1, 3);                                                 \
    }

/* vexp2: y[j] = exp2(x[j]) for j < n, with exp2_row's accuracy and flushing.
 * Exposed so tests measure the exp against SLEEF and the double reference. */
typedef void (*flat_vexp2_fn)(int n, const float *x, float *y);

/*
 * quantize_row: one row of flat_quantize (include/flat.h): n values x of
 *   type xt (FLAT_F32, FLAT_F16 or FLAT_BF16, all finite: the runtime checks
 *   with first_nonfinite before anything is written) into codes of quantized
 *   type t, one scale per `group` consecutive values.
 *     given == 0: group g's scale is amax_g / 127 (I8), / 448 (F8E4M3) or
 *       / 7 (I4), amax_g its largest |x|, divided in fp32, rounded once to
 *       scale_t (FLAT_F16: to nearest, at most 65504) and written to
 *       scale[g] (n / group scales of type scale_t, contiguous).
 *     given != 0: scale[g] is read (finite, >= 0) and nothing is written.
 *   Each code is the fp32 quotient x / s, s the scale as stored (s == 0:
 *   0), saturated to [-127, 127] (I8, never -128), [-8, 7] (I4) or
 *   [-448, 448] (F8E4M3), then rounded to nearest even (F8E4M3: to the
 *   nearest e4m3 value, ties to the even code, the sign kept on zeros).
 *   n >= 1, group >= 1 divides n; I4: n even, element e in byte e / 2, the
 *   even element in the low nibble. Writes exactly flat_dtype_bytes(t, n)
 *   bytes of codes. codes overlaps neither x nor scale.
 *   Every table gives the bits of kernels/encode.h's flat_quantize_row_ref
 *   (tests/test_quantize.c compares them, and runs the exhaustive codec
 *   tests through the call on each table).
 */
typedef void (*flat_quantize_row_fn)(int64_t n, const void *x, flat_dtype xt, int64_t group,
                                     flat_dtype t, void *restrict codes, void *scale,
                                     flat_dtype scale_t, int given);

/* first_nonfinite: the index of the first inf or NaN among the n >= 0
 * elements of x (type FLAT_F32, FLAT_F16 or FLAT_BF16); n if there is none. */
typedef int64_t (*flat_first_nonfinite_fn)(int64_t n, const void *x, flat_dtype xt);

/* One ISA's kernels and the constants they imply, selected whole. */
typedef struct flat_ukernels {
    flat_isa isa;
    const char *name;  /* "scalar", "avx2", ... (flat_isa_name) */
    uint32_t required; /* FLAT_CPU_* bits the host must have */
    uint32_t dtypes;   /* element types its kernels take: bit 1 << flat_dtype */
    flat_dtype compute; /* what qk and pv multiply: FLAT_F32 (fp32 operands, the
                           packing layouts drawn above; 0, the default) or
                           FLAT_BF16 (operands rounded to bf16, bf16-pair panels)
                           or FLAT_I8 (fp32 panels and kernels as FLAT_F32, but
                           qk_rows on FLAT_I8 / FLAT_I4 K and pv on FLAT_I8 V
                           round Q and P to 8-bit integers: avx512_vnni; its pv
                           is not split-invariant) */
    int mr;            /* query rows of a qk register block (Q panel height) */
    int nr;            /* keys of a qk register block (K panel width) */
    int pv_mr;         /* rows of a pv register block; the runtime groups
                          rows with unequal masks by this */
    int prefetch_next; /* 1: qk_rows, qk_rows_exact and pv prefetch the rows
                          of flat_kv_src.next's chain; 0: the runtime asks for
                          each next run itself before the call */
    int qk_min_panels; /* K panels per qk call below which the call's fixed cost
                          shows (amx_bf16 configures tiles and moves Q into
                          them per call); 0: none, a call may take one panel */
    flat_pack_q_fn pack_q;
    flat_pack_k_fn pack_k;
    flat_qk_fn qk;
    flat_qk_rows_fn qk_rows;
    flat_qk_rows_fn qk_rows_exact;
    flat_row_max_fn row_max;
    flat_exp2_row_fn exp2_row;
    flat_pv_fn pv;
    flat_widen_rows_fn widen_rows; /* 0.3: quantized V for the GEMM-shaped path */
    flat_store_row_fn store_row;
    flat_score_rules_fn score_rules;
    flat_vexp2_fn vexp2;
    flat_quantize_row_fn quantize_row;       /* flat_quantize (0.3) */
    flat_first_nonfinite_fn first_nonfinite; /* its input check */
} flat_ukernels;

/* The tables compiled into this build (FLAT_HAVE_<ISA> set by CMake). */
extern const flat_ukernels flat_ukernels_scalar;
#if defined(FLAT_HAVE_AVX2)
extern const flat_ukernels flat_ukernels_avx2;
#endif
#if defined(FLAT_HAVE_AVX512)
extern const flat_ukernels flat_ukernels_avx512;
#endif
#if defined(FLAT_HAVE_NEON)
extern const flat_ukernels flat_ukernels_neon;
#endif
#if defined(FLAT_HAVE_AVX512_BF16)
extern const flat_ukernels flat_ukernels_avx512_bf16;
#endif
#if defined(FLAT_HAVE_AMX_BF16)
extern const flat_ukernels flat_ukernels_amx_bf16;
#endif
#if defined(FLAT_HAVE_AVX512_VNNI)
extern const flat_ukernels flat_ukernels_avx512_vnni;
#endif

#endif /* FLAT_UKERNEL_H */
