#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* S = Q K^T for the decode path: one Q panel against K rows where they lie. */
#include <arm_neon.h>
#include <assert.h>

#include "../ukernel.h"
#include "kernels.h"

#define MR FLAT_NEON_MR

/* r[i] = row i on entry, column i on return (4x4 floats). */
static inline void transpose4(float32x4_t r[4])
{
    float32x4_t a = vtrn1q_f32(r[0], r[1]), b = vtrn2q_f32(r[0], r[1]);
    float32x4_t c = vtrn1q_f32(r[2], r[3]), e = vtrn2q_f32(r[2], r[3]);
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(c)));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(b), vreinterpretq_f64_f32(e)));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(a), vreinterpretq_f64_f32(c)));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(b), vreinterpretq_f64_f32(e)));
}

/*
 * m_blk rows (compile-time, >= m) against `keys` <= 4 keys: each 4-dim chunk
 * of the 4 K rows is transposed in registers, so lane j of r[c] is
 * K[j][c0 + c], and one FMA by Q lane adds a dim to row i's 4 scores. Rows
 * m..m_blk-1 run on the panel's zero padding and are not stored.
 */
static inline __attribute__((always_inline)) void
block4(const flat_dtype t, const int m_blk, int m, int keys, int d, const float *restrict qp,
       const void *k, int64_t ld_k, float *restrict s, int64_t ld_s)
{
    float32x4_t acc[MR];
#pragma GCC unroll 8
    for (int i = 0; i < m_blk; i++)
        acc[i] = vdupq_n_f32(0.0f);
    for (int c0 = 0; c0 < d; c0 += 4) {
        const int dims = d - c0 < 4 ? d - c0 : 4;
        float32x4_t r[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            r[j] = j < keys ? flat_load4_part_neon(t, k, j * ld_k + c0, dims) : vdupq_n_f32(0.0f);
        transpose4(r);
        for (int c = 0; c < dims; c++) {
            const float *qc = qp + (int64_t)(c0 + c) * MR;
            float32x4_t q0 = vld1q_f32(qc), q1 = vld1q_f32(qc + 4);
#pragma GCC unroll 8
            for (int i = 0; i < m_blk; i++)
                acc[i] = vfmaq_f32(acc[i], r[c], vdupq_n_f32(i < 4 ? q0[i] : q1[i - 4]));
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < m_blk; i++) {
        if (i >= m)
            break;
        if (keys == 4) {
            vst1q_f32(s + i * ld_s, acc[i]);
        } else {
            float t[4];
            vst1q_f32(t, acc[i]);
            for (int j = 0; j < keys; j++)
                s[i * ld_s + j] = t[j];
        }
    }
}

static inline __attribute__((always_inline)) void
rows_blocked(const flat_dtype t, const int m_blk, int m, int d, int n, const float *restrict qp,
             const void *k, int64_t ld_k, float *restrict s, int64_t ld_s)
{
    for (int j = 0; j < n; j += 4)
        block4(t, m_blk, m, n - j < 4 ? n - j : 4, d, qp, flat_elem_ptr(k, (int64_t)j * ld_k, t),
               ld_k, s + j, ld_s);
}

static inline __attribute__((always_inline)) void
qk_rows(const flat_dtype t, int m, int d, int n, const float *restrict qp, const void *k,
        int64_t ld_k, float *restrict s, int64_t ld_s)
{
    assert(m >= 1 && m <= MR && d >= 1 && n >= 0);
    assert(n == 0 || (k != NULL && ld_s >= n));
    if (m == 1)
        rows_blocked(t, 1, m, d, n, qp, k, ld_k, s, ld_s);
    else if (m == 2)
        rows_blocked(t, 2, m, d, n, qp, k, ld_k, s, ld_s);
    else if (m <= 4)
        rows_blocked(t, 4, m, d, n, qp, k, ld_k, s, ld_s);
    else
        rows_blocked(t, 8, m, d, n, qp, k, ld_k, s, ld_s);
}

void flat_qk_rows__neon(int m, int d, int n, const float *restrict qp, const flat_kv_src *src,
                 float *restrict s, int64_t ld_s)
{
    const void *k = src->data;
    const int64_t ld_k = src->ld;
    const flat_dtype t = src->t;
    switch (t) {
    case FLAT_F16: qk_rows(FLAT_F16, m, d, n, qp, k, ld_k, s, ld_s); break;
    case FLAT_BF16: qk_rows(FLAT_BF16, m, d, n, qp, k, ld_k, s, ld_s); break;
    default: qk_rows(FLAT_F32, m, d, n, qp, k, ld_k, s, ld_s); break;
    }
}
