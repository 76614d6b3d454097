/*
 * End to end: what quantizing the cache costs, on synthetic K/V with the
 * outlier key channels real models have (KIVI, KVQuant): K ~ N(0, 1) with 4
 * of 128 channels 8x larger and offset by 4, V ~ N(0, 1) plus a per-channel
 * mean ~ N(0, 1) (real heads' outputs are not means of pure noise), Q ~
 * N(0, 1); 1024 keys, 4 query rows per head, 8 query heads on 2 kv heads.
 * Env AMP, OFF and VMEAN change the outliers' scale and offset and the
 * values' mean spread, to measure harsher data (the bounds then need not
 * hold: int8 g32 reached 1.6e-2 at AMP=20 OFF=8, 3.6e-2 with VMEAN=0, where
 * V's own rounding, amax/127/sqrt(12) ~ 0.5% of a pure-noise value, is
 * already at the target). The cache is written
 * with flat_quantize, as an engine would, and the output compared with the
 * fp32 cache's output (relative L2 over the whole output, and the worst row):
 *   int8, per-token groups of 32, f16 scales        <= 5e-3 (the target;
 *                                                    measured 4.75e-3)
 *   fp8 e4m3, per-token groups of 32, f16 scales     printed
 *   int4, per-channel keys (group 1, seq stride 0, calibrated amax / 7 over
 *   the tokens), per-token groups of 32 for values  <= INT4_BOUND (measured)
 *   int4, per-token groups of 32 for both            printed (the outliers
 *   share groups with ordinary channels: worse, as the literature says)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "flat.h"
#include "testutil.h"

#define HQ 8
#define HKV 2
#define NQ 4
#define NK 1024
#define D 128
/* Measured 4.45e-2 (whole output) on this data set, every table alike (the
 * kernels are exact on the dequantized values); the bound leaves ~1.35x. */
#define INT4_BOUND 6e-2

static float normal(tu_rng *r)
{
    float u = tu_uniform(r, 1e-7f, 1.0f), v = tu_uniform(r, 0.0f, 1.0f);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static float q_[HQ * NQ * D], k_[HKV * NK * D], v_[HKV * NK * D], ref_[HQ * NQ * D],
    out_[HQ * NQ * D];
static int8_t kc_[HKV * NK * D], vc_[HKV * NK * D];
static uint16_t ks_[HKV * NK * D], vs_[HKV * NK * D];
static float kch_[HKV * D];

static float amp_ = 8.0f, off_ = 4.0f, vmean_ = 1.0f;

static void make_data(void)
{
    tu_rng r = {2026};
    for (int i = 0; i < HQ * NQ * D; i++)
        q_[i] = normal(&r);
    for (int i = 0; i < HKV * NK * D; i++) {
        int c = i % D;
        int outlier = c == 5 || c == 37 || c == 64 || c == 101;
        k_[i] = outlier ? amp_ * normal(&r) + off_ : normal(&r);
        v_[i] = normal(&r);
    }
    /* values carry a per-channel mean (the structure real V has: a head's
     * output is not a mean of pure noise) */
    float mu[HKV * D];
    for (int i = 0; i < HKV * D; i++)
        mu[i] = vmean_ * normal(&r);
    for (int h = 0; h < HKV; h++)
        for (int j = 0; j < NK; j++)
            for (int c = 0; c < D; c++)
                v_[(h * NK + j) * D + c] += mu[h * D + c];
}

/* Relative L2 of out_ against ref_ (whole output) and the worst row. */
static double rel_l2(double *worst_row)
{
    double e = 0, n = 0;
    *worst_row = 0;
    for (int r = 0; r < HQ * NQ; r++) {
        double er = 0, nr = 0;
        for (int c = 0; c < D; c++) {
            double d = (double)out_[r * D + c] - ref_[r * D + c];
            er += d * d, nr += (double)ref_[r * D + c] * ref_[r * D + c];
        }
        e += er, n += nr;
        *worst_row = fmax(*worst_row, sqrt(er / nr));
    }
    return sqrt(e / n);
}

/* Quantizes src ([1, HKV, NK, D] f32) into codes and f16 scales of `group`. */
static void quantize(const float *src, flat_dtype t, int group, void *codes, uint16_t *scales,
                     flat_tensor *ct, flat_tensor *st)
{
    flat_tensor s = flat_tensor_bhsd((void *)src, FLAT_F32, 1, HKV, NK, D);
    *ct = flat_tensor_bhsd(codes, t, 1, HKV, NK, D);
    *st = flat_tensor_bhsd(scales, FLAT_F16, 1, HKV, NK, D / group);
    assert_int_equal(flat_quantize(&s, ct, st, group, 0), FLAT_OK);
}

static double run(flat_dtype t, int k_per_channel, double *worst_row, flat_isa isa)
{
    flat_tensor q = flat_tensor_bhsd(q_, FLAT_F32, 1, HQ, NQ, D);
    flat_tensor o = flat_tensor_bhsd(out_, FLAT_F32, 1, HQ, NQ, D);
    flat_kv_quant kq = {0};
    flat_tensor kt, vt;
    if (k_per_channel) { /* calibrated per-channel scales: amax over the tokens / 7 */
        for (int h = 0; h < HKV; h++)
            for (int c = 0; c < D; c++) {
                float m = 0;
                for (int j = 0; j < NK; j++)
                    m = fmaxf(m, fabsf(k_[(h * NK + j) * D + c]));
                kch_[h * D + c] = m / 7.0f;
            }
        flat_tensor s = flat_tensor_bhsd(k_, FLAT_F32, 1, HKV, NK, D);
        kt = flat_tensor_bhsd(kc_, t, 1, HKV, NK, D);
        kq.k_scale = flat_tensor_bhsd(kch_, FLAT_F32, 1, HKV, NK, D);
        kq.k_scale.stride_seq = 0, kq.k_scale.stride_head = D, kq.k_scale.stride_batch = 0;
        assert_int_equal(flat_quantize(&s, &kt, &kq.k_scale, 1, FLAT_QUANTIZE_GIVEN_SCALES),
                         FLAT_OK);
        kq.k_group = 1;
    } else {
        quantize(k_, t, 32, kc_, ks_, &kt, &kq.k_scale);
        kq.k_group = 32;
    }
    quantize(v_, t, 32, vc_, vs_, &vt, &kq.v_scale);
    kq.v_group = 32;
    flat_options opt = {0};
    opt.kv_quant = &kq;
    opt.isa = isa;
    assert_int_equal(flat_attention(&q, &kt, &vt, &o, &opt), FLAT_OK);
    return rel_l2(worst_row);
}

static void test_outlier_channels(void **state)
{
    (void)state;
    const char *a = getenv("AMP"), *o = getenv("OFF");
    if (a) amp_ = (float)atof(a);
    if (o) off_ = (float)atof(o);
    if (getenv("VMEAN")) vmean_ = (float)atof(getenv("VMEAN"));
    make_data();
    const flat_ukernels *tables[8];
    int n = tu_runnable_tables("test_quant_accuracy", tables, 8);
    for (int i = 0; i < n; i++) {
        const flat_isa isa = tables[i]->isa;
        flat_tensor q = flat_tensor_bhsd(q_, FLAT_F32, 1, HQ, NQ, D);
        flat_tensor k = flat_tensor_bhsd(k_, FLAT_F32, 1, HKV, NK, D);
        flat_tensor v = flat_tensor_bhsd(v_, FLAT_F32, 1, HKV, NK, D);
        flat_tensor r = flat_tensor_bhsd(ref_, FLAT_F32, 1, HQ, NQ, D);
        flat_options opt = {0};
        opt.isa = isa;
        assert_int_equal(flat_attention(&q, &k, &v, &r, &opt), FLAT_OK);
        double w8, w8f, w4c, w4g;
        double e8 = run(FLAT_I8, 0, &w8, isa);
        double e8f = run(FLAT_F8E4M3, 0, &w8f, isa);
        double e4c = run(FLAT_I4, 1, &w4c, isa);
        double e4g = run(FLAT_I4, 0, &w4g, isa);
        printf("test_quant_accuracy [%s]: relative L2 vs the fp32 cache (worst row): int8 g32 "
               "%.2e (%.2e), fp8 g32 %.2e (%.2e), int4 k-channel/v-g32 %.2e (%.2e), int4 g32 "
               "%.2e (%.2e)\n", flat_isa_name(isa), e8, w8, e8f, w8f, e4c, w4c, e4g, w4g);
        /* int8 products (FLAT_PRECISION_INT8, avx512_vnni) round Q and P too:
         * flat.h's 2e-2 (measured 7.8e-3 here) */
        const double b8 = tables[i]->compute == FLAT_I8 ? 2e-2 : 5e-3;
        if (!(e8 <= b8))
            fail_msg("int8 per-token groups: %.3g > %g", e8, b8);
        if (!(e4c <= INT4_BOUND))
            fail_msg("int4 per-channel keys: %.3g > %g", e4c, INT4_BOUND);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_outlier_channels)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
