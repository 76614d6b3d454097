/* AVX-512 kernel declarations and register-block sizes. */
#ifndef FLAT_AVX512_KERNELS_H
#define FLAT_AVX512_KERNELS_H

#include <immintrin.h>
#include <stdint.h>

#include "../convert.h"
#include "../ukernel.h"
#include "exp.h"

/*
 * 32 zmm registers. qk holds a 12x32 block in 24 accumulators, plus two K
 * vectors and one Q broadcast (27 live, no spills). Per d step that is 24
 * FMAs for 2 K loads + 12 broadcasts, so the K stream (the operand that comes
 * from L2) costs one 64-byte line per 12 FMAs, half of what 6x64 would need;
 * 24 independent chains are 3x the 2 pipes x 4 cycles of FMA latency.
 * pv keeps 6 rows x 64 columns of O (24 accumulators, 4 V vectors, one P
 * broadcast); dv = 128 takes two column passes, since 3 x 128 would need 33
 * registers (it spilled and measured 25% slower). 6 divides 12, so a Q panel
 * splits into whole pv row groups.
 */
#define FLAT_AVX512_MR 12
#define FLAT_AVX512_NR 32
#define FLAT_AVX512_PV_MR 6
/* qk_rows fetches K rows this many keys ahead (16 KiB at d = 128): decode
 * streams K from DRAM, and rows strided by heads (BSHD) defeat the
 * hardware stream prefetcher. */
#define FLAT_AVX512_QK_ROWS_PREFETCH 32

void flat_pack_q__avx512(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp);
void flat_pack_k__avx512(int n, int d, const flat_kv_src *src, float *restrict kp);
void flat_qk_12x32__avx512(int d, int n_panels, const float *restrict qp,
                           const float *restrict kp, float *restrict s, int64_t ld_s);
float flat_row_max__avx512(int n, const float *s);
float flat_exp2_row__avx512(int n, int width, float *s, float m);
void flat_vexp2__avx512(int n, const float *x, float *y);
void flat_qk_rows__avx512(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s);
void flat_qk_rows_exact__avx512(int m, int d, int n, const float *restrict qp,
                                const flat_kv_src *src, float *restrict s, int64_t ld_s);
/* qk_rows' transposing block (qk.c): m <= 12 rows on a source already
 * scaled (flat_kv_scaled_avx512); _exact with one FMA chain per score at
 * 1-4 rows too (qk_rows_exact). */
void flat_qk_transposing__avx512(int m, int d, int n, const float *restrict qp,
                                 const flat_kv_src *k, float *restrict s, int64_t ld_s);
void flat_qk_transposing_exact__avx512(int m, int d, int n, const float *restrict qp,
                                       const flat_kv_src *k, float *restrict s, int64_t ld_s);
void flat_widen_rows__avx512(int n, int cols, const flat_kv_src *src, float *restrict y,
                          int64_t ld_y);
void flat_store_row__avx512(int n, const float *restrict x, float scale, flat_dtype t,
                            void *restrict y);
void flat_pv_6__avx512(int m, int n, int dv, const float *restrict p, int64_t ld_p,
                 const flat_kv_src *src, float *restrict o, int64_t ld_o,
                 const float *restrict alpha);

/*
 * 16 elements of a row of type t, from element c, widened to fp32 in
 * registers: f16 by vcvtph2ps (exact), bf16 by zero-extending to 32 bits and
 * shifting into the upper half (a bf16 is the top of an f32). Lanes outside
 * `mask` are 0 and their bytes are not read (masked loads suppress faults),
 * so tails never read past a row. t is a compile-time constant in every
 * caller: the switch folds away and the f32 path is the plain load it was.
 */
static inline __attribute__((always_inline)) __m512
flat_load16_avx512(const flat_dtype t, const void *row, int64_t c, __mmask16 mask)
{
    if (t == FLAT_F32)
        return _mm512_maskz_loadu_ps(mask, (const float *)row + c);
    const __m256i h = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)row + c);
    if (t == FLAT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The same, all 16 lanes. */
static inline __attribute__((always_inline)) __m512
flat_loadu16_avx512(const flat_dtype t, const void *row, int64_t c)
{
    if (t == FLAT_F32)
        return _mm512_loadu_ps((const float *)row + c);
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + c));
    if (t == FLAT_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* ---- quantized K/V (ukernel.h's flat_kv_src): codes widened in registers ---- */

/* 16 F8E4M3 bytes as code / 256, exact (S.1111.111 as +-480/256): each
 * byte sign-extended to 16 bits and shifted left by 7 lands as
 * S.S.EEEE.MMM.0000000; clearing bit 14 leaves the f16 S.0EEEE.MMM0000000,
 * whose bias is 15 to e4m3's 7, which vcvtph2ps widens exactly, subnormals
 * included. */
static inline __attribute__((always_inline)) __m512 flat_f8_bytes16_div256_avx512(__m128i b)
{
    return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7),
                                            _mm256_set1_epi16((short)0xbfff)));
}

/* Codes of elements c .. c+n-1 (n <= 16; lanes >= n are 0 and not read) of a
 * row of quantized type t, as exact fp32. I8: sign-extend. F8E4M3: its bits
 * moved into an f16 (S.EEEE.MMM -> S.0EEEE.MMM0000000, which vcvtph2ps widens
 * exactly, subnormals included) and multiplied by 2^8 to rebias 15 -> 7;
 * S.1111.111 becomes NaN. I4: each byte duplicated, then a per-lane shift
 * puts the even element's low nibble or the odd one's high nibble at the
 * top and an arithmetic shift brings it down sign-extended (c even). */
static inline __attribute__((always_inline)) __m512
flat_codes16_avx512(const flat_dtype t, const void *row, int64_t c, int n)
{
    if (t == FLAT_I4) {
        const __m128i b =
            n == 16 ? _mm_loadl_epi64((const __m128i *)((const uint8_t *)row + c / 2))
                    : _mm_maskz_loadu_epi8((__mmask16)((1u << ((n + 1) / 2)) - 1),
                                           (const uint8_t *)row + c / 2);
        const __m512i x = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
        const __m512i sh = _mm512_set_epi32(24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24,
                                            28, 24, 28);
        __m512i v = _mm512_srai_epi32(_mm512_sllv_epi32(x, sh), 28);
        if (n < 16)
            v = _mm512_maskz_mov_epi32(flat_tail_mask_avx512(n), v);
        return _mm512_cvtepi32_ps(v);
    }
    /* a full chunk is a plain load, which the widening instruction takes as
     * its memory operand */
    const __m128i b = n == 16 ? _mm_loadu_si128((const __m128i *)((const uint8_t *)row + c))
                              : _mm_maskz_loadu_epi8(flat_tail_mask_avx512(n),
                                                     (const uint8_t *)row + c);
    if (t == FLAT_I8)
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
    const __mmask16 nan = _mm_cmpeq_epi8_mask(_mm_or_si128(b, _mm_set1_epi8((char)0x80)),
                                              _mm_set1_epi8((char)0xff));
    const __m512 v = _mm512_mul_ps(flat_f8_bytes16_div256_avx512(b), _mm512_set1_ps(256.0f));
    return _mm512_mask_mov_ps(v, nan, _mm512_set1_ps(__builtin_nanf("")));
}

/* F8E4M3 codes c .. c+n-1 (n <= 16, lanes >= n are 0 and not read) as
 * code / 256, exact, with S.1111.111 read as +-480/256 rather than NaN: the
 * fast form, for decode loops that fold the 2^8 into a scale they multiply
 * anyway and record NaN codes apart (flat_f8_nan_track_avx512), which took
 * the conversion from 9 instructions per 16 codes to 4. */
static inline __attribute__((always_inline)) __m512
flat_f8_codes16_div256_avx512(const void *row, int64_t c, int n)
{
    const uint8_t *p = (const uint8_t *)row + c;
    return flat_f8_bytes16_div256_avx512(
        n == 16 ? _mm_loadu_si128((const __m128i *)p) : _mm_maskz_loadu_epi8(flat_tail_mask_avx512(n), p));
}

/* What a scale multiplying flat_f8_codes16_div256_avx512's codes carries
 * beyond itself (1 for other types). Exact, up to scales of 2^119, past
 * which (s * 256 overflows) such a product may read inf where code * s is
 * finite: the dequantized values are then near FLT_MAX anyway. */
#define FLAT_F8_UNIT(t) ((t) == FLAT_F8E4M3 ? 256.0f : 1.0f)

/* Int4 elements c .. c+31 of a row (c even; dims <= 32 of them valid, the
 * rest read as 0) as their even and odd elements, exact: a byte's low
 * nibble is the even element, its high nibble the odd one, so one sign
 * extension of 16 bytes, then a shift pair (even) or a shift (odd) gives
 * both, 3 instructions per 16 codes where flat_codes16_avx512's in-order
 * widening takes 5. Kernels pair them with Q or O stored the same way. */
static inline __attribute__((always_inline)) void
flat_i4_pairs32_avx512(const void *row, int64_t c, int dims, __m512 *even, __m512 *odd)
{
    const int8_t *p = (const int8_t *)row + c / 2;
    const __m128i b = dims >= 32 ? _mm_loadu_si128((const __m128i *)p)
                                 : _mm_maskz_loadu_epi8(flat_tail_mask_avx512((dims + 1) / 2), p);
    const __m512i x = _mm512_cvtepi8_epi32(b);
    *even = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(x, 28), 28));
    *odd = _mm512_cvtepi32_ps(_mm512_srai_epi32(x, 4));
}

/* A running record of NaN codes among F8E4M3 bytes: each byte with its sign
 * bit set, maxed bytewise into `seen` (start from zero), is 0xff somewhere
 * iff some byte was S.1111.111. `bytes` <= 64 are read from p. */
static inline __attribute__((always_inline)) __m512i
flat_f8_nan_track_avx512(__m512i seen, const void *p, int bytes)
{
    const __m512i x = bytes >= 64 ? _mm512_loadu_si512(p)
                                  : _mm512_maskz_loadu_epi8((1ull << bytes) - 1, p);
    return _mm512_max_epu8(seen, _mm512_or_si512(x, _mm512_set1_epi8((char)0x80)));
}

static inline int flat_f8_nan_seen_avx512(__m512i seen)
{
    return _mm512_cmpeq_epi8_mask(seen, _mm512_set1_epi8((char)0xff)) != 0;
}

/* Is byte c of an F8E4M3 row a NaN code (S.1111.111)? */
static inline int flat_f8_is_nan(const void *row, int64_t c)
{
    return (((const uint8_t *)row)[c] & 0x7f) == 0x7f;
}

/* Where the scales of columns c .. c+n-1 (c a multiple of 16, n <= 16) come
 * from, the same for every row: `count` consecutive scales of the row from
 * its `first` on, lane l taking scale rel[l] of them. Kernels prepare it
 * once per column chunk (flat_chunk_scales_avx512) and reuse it for every
 * row they read there, since the division by the group size costs more
 * than the row's conversion itself (it did: 3-4x slower quantized kernels).
 * The quotients are exact in fp32 below 2^24 columns. */
typedef struct {
    int64_t first;   /* c / group */
    __mmask16 count; /* mask of the scales to load */
    __m512i rel;     /* lane l: (c + l) / group - first */
} flat_chunk_scales;

static inline __attribute__((always_inline)) flat_chunk_scales
flat_chunk_scales_avx512(int64_t group, int64_t c, int n)
{
    flat_chunk_scales cs;
    cs.first = c / group;
    const __m512 cols = _mm512_add_ps(_mm512_set1_ps((float)c),
                                      _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
                                                    2, 1, 0));
    const __m512 q = _mm512_roundscale_ps(_mm512_div_ps(cols, _mm512_set1_ps((float)group)),
                                          _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    cs.rel = _mm512_sub_epi32(_mm512_cvttps_epi32(q), _mm512_set1_epi32((int)cs.first));
    cs.count = flat_tail_mask_avx512((int)((c + n - 1) / group - cs.first + 1));
    return cs;
}

/* One row's scales of a chunk (srow: the row's first scale), per lane. */
static inline __attribute__((always_inline)) __m512
flat_row_scales16_avx512(flat_dtype scale_t, const void *srow, const flat_chunk_scales *cs)
{
    const __m512 s =
        scale_t == FLAT_F16
            ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(cs->count, (const uint16_t *)srow + cs->first))
            : _mm512_maskz_loadu_ps(cs->count, (const float *)srow + cs->first);
    return _mm512_permutexvar_ps(cs->rel, s);
}

/* Columns c .. c+n-1 of a K/V row as fp32, for any K/V type: row = the row's
 * data, srow = its scales (quantized t: never NULL, see flat_kv_scaled_avx512)
 * of type scale_t, cs = the chunk's scale map. Lanes >= n are 0 and nothing
 * past them is read. The value is convert.h's flat_kv_load: the code times
 * the scale, one fp32 rounding (every scale mode below gives these bits). */
static inline __attribute__((always_inline)) __m512
flat_kv_chunk16_avx512(const flat_dtype t, flat_dtype scale_t, const void *row, const void *srow,
                       const flat_chunk_scales *cs, int64_t c, int n)
{
    if (!flat_dtype_quantized(t))
        return n == 16 ? flat_loadu16_avx512(t, row, c)
                       : flat_load16_avx512(t, row, c, flat_tail_mask_avx512(n));
    return _mm512_mul_ps(flat_codes16_avx512(t, row, c, n),
                         flat_row_scales16_avx512(scale_t, srow, cs));
}

/* A quantized source without scales (F8E4M3's NULL) as one with a scale of
 * 1 for every row and column (exact: code * 1), so the hot loops carry no
 * test for it: *tmp is filled and returned, else src itself. */
static const float flat_unit_scale_avx512 = 1.0f;
static inline const flat_kv_src *flat_kv_scaled_avx512(const flat_kv_src *src, flat_kv_src *tmp)
{
    if (!flat_dtype_quantized(src->t) || src->scale)
        return src;
    *tmp = *src;
    tmp->scale = &flat_unit_scale_avx512;
    tmp->scale_t = FLAT_F32;
    tmp->ld_scale = 0;
    tmp->group = INT32_MAX; /* every column in group 0 */
    return tmp;
}

/*
 * How the decode kernels reach a quantized source's scales, chosen once per
 * call (each is a compile-time case of the hot loops; all give the same
 * products, code * scale):
 *   COLS  ld_scale == 0 (per channel, per tensor, no scales): every row has
 *         the same scales, so each 16-column chunk's scale vector is made
 *         once per call and multiplies from memory;
 *   CHUNK group a multiple of 16 (per token, groups of 32 ...): a chunk lies
 *         in one group, so a row's scales are widened to one fp32 per chunk
 *         once per row and broadcast from memory into the multiply;
 *   LANES any other group: a per-lane map (flat_chunk_scales) per chunk,
 *         applied to every row.
 * The permutes and f16 widenings of a scale per row and chunk cost as much
 * as the code's own conversion (LANES everywhere ran 2x slower).
 */
enum { FLAT_SC_COLS, FLAT_SC_CHUNK, FLAT_SC_LANES };

static inline int flat_scale_mode_avx512(const flat_kv_src *s)
{
    return s->ld_scale == 0 ? FLAT_SC_COLS : s->group % 16 == 0 ? FLAT_SC_CHUNK : FLAT_SC_LANES;
}

/* CHUNK mode: the map that widens a row's scales to the chunks k0 .. k0+n-1
 * (chunk k in group 16k / group): the lane map of flat_chunk_scales_avx512
 * in units of chunks, so flat_row_scales16_avx512 applies it. */
static inline __attribute__((always_inline)) flat_chunk_scales
flat_chunk_group_map_avx512(int64_t group, int64_t k0, int n)
{
    return flat_chunk_scales_avx512(group / 16, k0, n);
}

/* f(t, sm, ...) with both compile-time constants: the K/V type and, for
 * quantized types, the scale mode (FLAT_SC_COLS for float types, unused). */
#define FLAT_KV_SWITCH_MODE_AVX512(src, f, ...)                                            \
    do {                                                                                   \
        const int sm_ = flat_scale_mode_avx512(src);                                       \
        switch ((src)->t) {                                                                \
        case FLAT_F16: f(FLAT_F16, FLAT_SC_COLS, __VA_ARGS__); break;                      \
        case FLAT_BF16: f(FLAT_BF16, FLAT_SC_COLS, __VA_ARGS__); break;                    \
        case FLAT_I8: FLAT_SC_SWITCH_AVX512_(FLAT_I8, sm_, f, __VA_ARGS__); break;         \
        case FLAT_F8E4M3: FLAT_SC_SWITCH_AVX512_(FLAT_F8E4M3, sm_, f, __VA_ARGS__); break; \
        case FLAT_I4: FLAT_SC_SWITCH_AVX512_(FLAT_I4, sm_, f, __VA_ARGS__); break;         \
        default: f(FLAT_F32, FLAT_SC_COLS, __VA_ARGS__); break;                            \
        }                                                                                  \
    } while (0)
#define FLAT_SC_SWITCH_AVX512_(t, sm, f, ...)                                              \
    do {                                                                                   \
        if ((sm) == FLAT_SC_COLS) f(t, FLAT_SC_COLS, __VA_ARGS__);                         \
        else if ((sm) == FLAT_SC_CHUNK) f(t, FLAT_SC_CHUNK, __VA_ARGS__);                  \
        else f(t, FLAT_SC_LANES, __VA_ARGS__);                                             \
    } while (0)

/* FLAT_KV_TYPE_FNS (convert.h) for f(t, sm, ...): one function
 * name_<T>_<SM>(params) per type and (quantized types) scale mode; a file
 * defines `#define name(T, SM, ...) name##_##T##_##SM(__VA_ARGS__)` and
 * passes `name` to FLAT_KV_SWITCH_MODE_AVX512. */
#define FLAT_KV_MODE_FN_AVX512_(name, T, SM, f, params, ...)                               \
    static __attribute__((noinline)) void name##_##T##_##SM params { f(T, SM, __VA_ARGS__); }
#define FLAT_KV_MODES_FN_AVX512_(name, T, f, params, ...)                                  \
    FLAT_KV_MODE_FN_AVX512_(name, T, FLAT_SC_COLS, f, params, __VA_ARGS__)                 \
    FLAT_KV_MODE_FN_AVX512_(name, T, FLAT_SC_CHUNK, f, params, __VA_ARGS__)                \
    FLAT_KV_MODE_FN_AVX512_(name, T, FLAT_SC_LANES, f, params, __VA_ARGS__)
#define FLAT_KV_MODE_FNS_AVX512(name, f, params, ...)                                      \
    FLAT_KV_MODE_FN_AVX512_(name, FLAT_F32, FLAT_SC_COLS, f, params, __VA_ARGS__)          \
    FLAT_KV_MODE_FN_AVX512_(name, FLAT_F16, FLAT_SC_COLS, f, params, __VA_ARGS__)          \
    FLAT_KV_MODE_FN_AVX512_(name, FLAT_BF16, FLAT_SC_COLS, f, params, __VA_ARGS__)         \
    FLAT_KV_MODES_FN_AVX512_(name, FLAT_I8, f, params, __VA_ARGS__)                        \
    FLAT_KV_MODES_FN_AVX512_(name, FLAT_F8E4M3, f, params, __VA_ARGS__)                    \
    FLAT_KV_MODES_FN_AVX512_(name, FLAT_I4, f, params, __VA_ARGS__)

/* The decode kernels' prefetch of K/V lines ahead: into L2 for float types,
 * whose decode is bound by memory: prefetches into L1 held its few miss
 * buffers, and one core read 55-63% of the read bandwidth (78-87% into L2,
 * flat-bench-quant decode_4k f32/bf16); into L1 for quantized types, whose
 * decode is bound by the codes' widening, and which lost 5-15% with L2. */
static inline __attribute__((always_inline)) void flat_prefetch_kv_avx512(const flat_dtype t,
                                                                          const void *p)
{
    if (flat_dtype_quantized(t))
        _mm_prefetch((const char *)p, _MM_HINT_T0);
    else
        _mm_prefetch((const char *)p, _MM_HINT_T1);
}

/* The line of the last element of row `row` (cols elements), where the
 * per-line prefetches from its first byte do not reach it when the rows
 * lie off lines (flat_rows_unaligned). */
static inline __attribute__((always_inline)) void
flat_prefetch_row_tail_avx512(const flat_dtype t, const void *row, int64_t cols)
{
    flat_prefetch_kv_avx512(t, (const char *)flat_elem_ptr(row, cols, t) - 1);
}

/* Row j's data and scales of a K/V source. */
static inline __attribute__((always_inline)) const void *flat_kv_row(const flat_kv_src *s,
                                                                     int64_t j, const flat_dtype t)
{
    return flat_elem_ptr(s->data, j * s->ld, t);
}

static inline __attribute__((always_inline)) const void *
flat_kv_scale_row(const flat_kv_src *s, int64_t j, const flat_dtype t)
{
    return flat_dtype_quantized(t) && s->scale ? flat_elem_ptr(s->scale, j * s->ld_scale, s->scale_t)
                                               : NULL;
}

/* The row a decode kernel prefetches while it reads row j of its n rows:
 * row j + ahead, of the call's rows or, past them, of the chain that
 * ks->next starts (the caller's next runs: ukernel.h); NULL when neither
 * holds it. *srow: that row's scales (NULL without). */
static inline __attribute__((always_inline)) const void *
flat_ahead_row_avx512(const flat_dtype t, const flat_kv_src *ks, int64_t j, int64_t n,
                      int64_t ahead, const void **srow)
{
    int64_t i = j + ahead;
    const flat_kv_src *r = ks;
    if (i >= n) {
        i -= n;
        r = flat_kv_ahead(ks, &i);
    }
    *srow = r ? flat_kv_scale_row(r, i, t) : NULL;
    return r ? flat_kv_row(r, i, t) : NULL;
}

/* The dot kernels' subgroup of kg keys from j (qk_rows of this table and
 * of avx512_bf16): row[u] and srow[u] of key j + u, those past j + nk - 1
 * pointing at row j again (rows past the call are never read: a kernel
 * skips those keys or computes them on that copy and drops the scores);
 * quantized scales of the call's rows `ahead` keys on (0: the rows
 * themselves) prefetched into L1. */
static inline __attribute__((always_inline)) void
flat_dot_rows_avx512(const flat_dtype t, const int kg, const flat_kv_src *ks, int64_t j, int nk,
                     int64_t ahead, const void **row, const void **srow)
{
#pragma GCC unroll 8
    for (int u = 0; u < kg; u++) {
        const int64_t r = u < nk ? j + u : j;
        row[u] = flat_kv_row(ks, r, t);
        srow[u] = flat_kv_scale_row(ks, r, t);
        if (flat_dtype_quantized(t) && u < nk)
            _mm_prefetch(flat_kv_scale_row(ks, r + ahead, t), _MM_HINT_T0);
    }
}

/* Near the end of a call of n keys, the rows `ahead` keys past keys j ..
 * j + nk - 1 that lie in the runs the caller hands the kernel next
 * (ks->next: a paged cache's next pages): every line of their elements
 * col0 .. col0 + cols - 1, and their scales, at once. Outside the kernels'
 * line loops (a pointer per key there cost 1 ns per key at one row in L2),
 * a few rows at a time: bursts of up to 64 lines read shuffled 8 KiB pages
 * as fast as one prefetch per line did, a whole page at a time a fifth
 * slower (a probe on Zen 5). */
static __attribute__((noinline, unused)) void
flat_prefetch_chain_rows_avx512(const flat_kv_src *ks, int64_t j, int nk, int64_t n,
                                int64_t ahead, int64_t col0, int64_t cols)
{
    const flat_dtype t = ks->t;
    const int64_t bytes = flat_dtype_bytes(t, cols);
    for (int u = 0; u < nk; u++) {
        const void *ps, *p = flat_ahead_row_avx512(t, ks, j + u, n, ahead, &ps);
        if (!p)
            continue;
        p = flat_elem_ptr(p, col0, t);
        const uintptr_t a0 = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + bytes;
        for (uintptr_t a = a0; a < end; a += 64)
            flat_prefetch_kv_avx512(t, (const void *)a);
        if (ps)
            _mm_prefetch((const char *)ps, _MM_HINT_T0);
    }
}

static inline __attribute__((always_inline)) void
flat_prefetch_chain_avx512(const flat_kv_src *ks, int64_t j, int nk, int64_t n, int64_t ahead,
                           int64_t col0, int64_t cols)
{
    if (__builtin_expect(ks->next != NULL, 0) && j + nk - 1 + ahead >= n)
        flat_prefetch_chain_rows_avx512(ks, j, nk, n, ahead, col0, cols);
}

/* Rows of ks->along (ukernel.h: the rows a later call reads) as a kernel
 * that reads rows j0 .. j0 + keys - 1 line by line asks for them: line li
 * of each of those rows into L2, so the partner rows stream beside its own
 * at the same pace (one line per row per chunk it reads). */
typedef struct {
    const char *row0; /* row j0 of `along` (NULL: no partner) */
    int64_t ld;       /* bytes between rows */
    int lines;        /* 64-byte lines per row */
} flat_along_avx512;

static inline __attribute__((always_inline)) flat_along_avx512
flat_along_rows_avx512(const flat_kv_src *ks, int64_t j0)
{
    const flat_kv_src *a = ks->along;
    if (!a)
        return (flat_along_avx512){NULL, 0, 0};
    return (flat_along_avx512){(const char *)flat_elem_ptr(a->data, j0 * a->ld, a->t),
                               (int64_t)flat_dtype_bytes(a->t, a->ld),
                               (int)((flat_dtype_bytes(a->t, ks->along_cols) + 63) / 64)};
}

static inline __attribute__((always_inline)) void
flat_prefetch_along_avx512(const flat_along_avx512 *a, int li, int keys)
{
    if (li >= a->lines)
        return;
    const char *p = a->row0 + 64 * (int64_t)li;
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        if (j < keys)
            _mm_prefetch(p + j * a->ld, _MM_HINT_T1);
}

/*
 * 16x16 transpose in registers (pack_k, pack_q and qk_rows): r[i] holds row i
 * on entry and column i on return. Stage 1 transposes the 4x4 blocks inside
 * each 128-bit lane; stages 2-3 move 128-bit lanes so that column 4L+k
 * gathers lane L of the four row quads. 64 shuffles for 256 floats.
 */
static inline __attribute__((always_inline)) void flat_transpose16_avx512(__m512 r[16])
{
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
        t[k + 4] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
        t[k + 8] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        t[k + 12] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
        r[k + 4] = _mm512_shuffle_f32x4(t[k + 4], t[k + 12], 0x88);
        r[k + 12] = _mm512_shuffle_f32x4(t[k + 4], t[k + 12], 0xdd);
    }
}

/* Lane p of the result = the sum of the lanes of v[p], p < 16: the decode
 * kernels' reduction tree (45 shuffles and adds for 16 sums). */
static inline __attribute__((always_inline)) __m512 flat_add16_avx512(const int ints, __m512 a, __m512 b)
{
    return ints ? _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)))
                : _mm512_add_ps(a, b);
}

/* The tree on int32 lanes when `ints` (their bits carried in __m512: the
 * shuffles move bits, only the adds differ), fp32 otherwise. */
static inline __attribute__((always_inline)) __m512 flat_reduce16_any_avx512(const int ints,
                                                                           const __m512 v[16])
{
    __m512 t[8], u[4];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) /* lane L: v[2p] 0+2, v[2p+1] 0+2, v[2p] 1+3, v[2p+1] 1+3 */
        t[p] = flat_add16_avx512(ints, _mm512_unpacklo_ps(v[2 * p], v[2 * p + 1]),
                                 _mm512_unpackhi_ps(v[2 * p], v[2 * p + 1]));
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) /* lane L: the sums of v[4p .. 4p+3] over its 4 floats */
        u[p] = flat_add16_avx512(ints, _mm512_shuffle_ps(t[2 * p], t[2 * p + 1], 0x44),
                                 _mm512_shuffle_ps(t[2 * p], t[2 * p + 1], 0xee));
    const __m512 w0 = flat_add16_avx512(ints, _mm512_shuffle_f32x4(u[0], u[1], 0x44),
                                        _mm512_shuffle_f32x4(u[0], u[1], 0xee));
    const __m512 w1 = flat_add16_avx512(ints, _mm512_shuffle_f32x4(u[2], u[3], 0x44),
                                        _mm512_shuffle_f32x4(u[2], u[3], 0xee));
    return flat_add16_avx512(ints, _mm512_shuffle_f32x4(w0, w1, 0x88), _mm512_shuffle_f32x4(w0, w1, 0xdd));
}

static inline __attribute__((always_inline)) __m512 flat_reduce16_avx512(const __m512 v[16])
{
    return flat_reduce16_any_avx512(0, v);
}

/* Scores of a dot-product block from its reduced sums (lane i*kb + j: row
 * i, key j, kb = 16 / mb): row i < m's first `keys` lanes to s + i*ld_s. */
static inline __attribute__((always_inline)) void
flat_store_pair_sums_avx512(__m512 sums, const int mb, int m, int keys, float *s, int64_t ld_s)
{
    const __mmask16 km = flat_tail_mask_avx512(keys);
#pragma GCC unroll 8
    for (int i = 0; i < mb; i++) {
        if (i >= m)
            break;
        const __m512i lanes = _mm512_add_epi32(
            _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
            _mm512_set1_epi32(i * (16 / mb)));
        _mm512_mask_storeu_ps(s + i * ld_s, km, i == 0 ? sums : _mm512_permutexvar_ps(lanes, sums));
    }
}

float flat_score_rules__avx512(int n, float *s, const flat_rules_row *r);

/* quantize.c (ukernel.h's quantize_row and first_nonfinite) */
void flat_quantize_row__avx512(int64_t n, const void *x, flat_dtype xt, int64_t group, flat_dtype t,
                           void *restrict codes, void *scale, flat_dtype scale_t, int given);
int64_t flat_first_nonfinite__avx512(int64_t n, const void *x, flat_dtype xt);

#endif
