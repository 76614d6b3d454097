#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* Q and K packing into the dim-major panels of kernels/ukernel.h. */
#include <arm_neon.h>
#include <assert.h>
#include <stddef.h>

#include "../ukernel.h"
#include "kernels.h"

/* The low (high) 64-bit halves of a and b: lanes (a0 a1 b0 b1), (a2 a3 b2 b3). */
static inline float32x4_t lo64(float32x4_t a, float32x4_t b)
{
    float64x2_t a64 = vreinterpretq_f64_f32(a), b64 = vreinterpretq_f64_f32(b);
    return vreinterpretq_f32_f64(vtrn1q_f64(a64, b64));
}

static inline float32x4_t hi64(float32x4_t a, float32x4_t b)
{
    float64x2_t a64 = vreinterpretq_f64_f32(a), b64 = vreinterpretq_f64_f32(b);
    return vreinterpretq_f32_f64(vtrn2q_f64(a64, b64));
}

/* 4 x 4 transpose: out[t] = (r0[t], r1[t], r2[t], r3[t]). 32-bit transposes
 * pair up neighbouring rows, 64-bit ones then pair up the pairs. */
static inline void transpose4(float32x4_t r[4])
{
    float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
    float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
    r[0] = lo64(t0, t2);
    r[1] = lo64(t1, t3);
    r[2] = hi64(t0, t2);
    r[3] = hi64(t1, t3);
}

/*
 * Writes `count` (<= 4) source rows, scaled, into columns 0..3 of a
 * dim-major panel of width `w`: dst[c*w + i] = scale * src[i][c] (rows of
 * type t, widened in the loads). Whole
 * groups of 4 rows go 4 dims at a time through a transpose; a partial group
 * and the last d % 4 dims go element by element, so no row is read past d
 * and columns count..3 are written as 0.
 */
static inline __attribute__((always_inline)) void
pack_group(const flat_dtype t, int count, int d, const void *const src[4], float scale, int w,
           float *restrict dst)
{
    int c = 0;
    if (count == 4) {
        for (; c + 4 <= d; c += 4) {
            float32x4_t r[4];
            for (int i = 0; i < 4; i++)
                r[i] = vmulq_n_f32(flat_load4_neon(t, src[i], c), scale);
            transpose4(r);
            for (int t = 0; t < 4; t++)
                vst1q_f32(dst + (int64_t)(c + t) * w, r[t]);
        }
    }
    for (; c < d; c++)
        for (int i = 0; i < 4; i++)
            dst[(int64_t)c * w + i] = i < count ? scale * flat_load_elem(src[i], c, t) : 0.0f;
}

/* How many of the 4 rows starting at `first` exist among `total`. */
static inline int group_count(int total, int first)
{
    int left = total - first;
    return left < 0 ? 0 : left > 4 ? 4 : left;
}

static inline __attribute__((always_inline)) void
pack_q(const flat_dtype t, int m, int d, const void *const *rows, float scale, float *restrict qp)
{
    assert(m >= 1 && d >= 1 && rows && qp);
    for (int p = 0; p < m; p += FLAT_NEON_MR) {
        for (int g = 0; g < FLAT_NEON_MR; g += 4) {
            int count = group_count(m, p + g);
            const void *src[4];
            for (int i = 0; i < 4; i++)
                src[i] = i < count ? rows[p + g + i] : NULL;
            pack_group(t, count, d, src, scale, FLAT_NEON_MR, qp + g);
        }
        qp += (int64_t)d * FLAT_NEON_MR;
    }
}

void flat_pack_q_8__neon(int m, int d, const void *const *rows, flat_dtype t, float scale,
                         float *restrict qp)
{
    switch (t) {
    case FLAT_F16: pack_q(FLAT_F16, m, d, rows, scale, qp); break;
    case FLAT_BF16: pack_q(FLAT_BF16, m, d, rows, scale, qp); break;
    default: pack_q(FLAT_F32, m, d, rows, scale, qp); break;
    }
}

static inline __attribute__((always_inline)) void
pack_k(const flat_dtype t, int n, int d, const void *k, int64_t ld_k, float *restrict kp)
{
    assert(n >= 1 && d >= 1 && k && kp);
    for (int p = 0; p < n; p += FLAT_NEON_NR) {
        for (int g = 0; g < FLAT_NEON_NR; g += 4) {
            int count = group_count(n, p + g);
            const void *src[4];
            for (int j = 0; j < 4; j++)
                src[j] = j < count ? flat_elem_ptr(k, (int64_t)(p + g + j) * ld_k, t) : NULL;
            /* Keys are copied, not scaled; scale 1 is exact. */
            pack_group(t, count, d, src, 1.0f, FLAT_NEON_NR, kp + g);
        }
        kp += (int64_t)d * FLAT_NEON_NR;
    }
}

void flat_pack_k_12__neon(int n, int d, const flat_kv_src *src, float *restrict kp)
{
    const void *k = src->data;
    const int64_t ld_k = src->ld;
    const flat_dtype t = src->t;
    switch (t) {
    case FLAT_F16: pack_k(FLAT_F16, n, d, k, ld_k, kp); break;
    case FLAT_BF16: pack_k(FLAT_BF16, n, d, k, ld_k, kp); break;
    default: pack_k(FLAT_F32, n, d, k, ld_k, kp); break;
    }
}
