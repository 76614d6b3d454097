/*
 * The quantized codecs, exhaustively.
 *   Decoding, on every table: every code of I8 (-128..127), F8E4M3 (all 256
 *   bytes, NaNs included) and I4 (all 16 nibbles, in both halves of a byte)
 *   through pv (one key, P = 1, so O is the dequantized V row, bit for bit)
 *   and qk_rows (one-hot Q), against an independent decoder; scale groups of
 *   1, 2, 4, 8, 16, 32, 3 and dim with f32 and f16 scales, each lane's value
 *   fl32(code * scale) exactly.
 *   Encoding (flat_quantize): every I8 and I4 code and every rounding
 *   midpoint between codes (ties to even), the values one ulp either side,
 *   saturation (-128 never produced); every F8E4M3 value, every midpoint
 *   between neighbours (ties to even mantissa), subnormals, saturation at
 *   448; computed scales (amax / 127, / 448, / 7, f32 and f16) and the
 *   all-zero group (scale 0, codes 0); NaN and inf refused with dst
 *   untouched; argument errors. The encoding runs once per table (FLAT_ISA),
 *   on each table's quantize_row; test_quantize_rows.c compares the tables'
 *   rows with kernels/encode.h's reference bit for bit.
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

#include "convert.h"
#include "dispatch.h"
#include "quantutil.h"
#include "testutil.h"

static const flat_ukernels *tables[8];
static int ntables;

/* ---- decoding through the kernels ---- */

/* One V row of dv codes (code i = codes[i]) with scales of `group` columns,
 * through pv with P = 1: O must be fl32(code * scale) for every column. */
static void check_row(const flat_ukernels *k, flat_dtype t, const int *codes, int dv, int group,
                      flat_dtype st)
{
    assert_true(dv % group == 0); /* kv_quant's groups divide the dim */
    uint8_t buf[512] = {0};
    float sc[512];
    uint16_t sc16[512];
    for (int i = 0; i < dv; i++)
        qu_set_code(buf, t, i, codes[i]);
    for (int g = 0; g < dv / group; g++) {
        float s = 0.75f + 0.125f * (float)g / 7.0f; /* distinct per group */
        sc16[g] = flat_f32_to_f16(s);
        sc[g] = st == FLAT_F16 ? flat_f16_to_f32(sc16[g]) : s;
    }
    flat_kv_src v = flat_kv_src_plain(buf, dv, t);
    v.scale = st == FLAT_F16 ? (const void *)sc16 : (const void *)sc;
    v.scale_t = st, v.group = group, v.ld_scale = 0;
    float p = 1.0f, o[512], want[512];
    for (int i = 0; i < dv; i++)
        want[i] = qu_code_value(buf, t, i) * sc[i / group];
    k->pv(1, 1, dv, &p, 1, &v, o, dv, NULL);
    /* int8 products (avx512_vnni on I8): P = 1 is the u8 code 255 exactly,
     * and the scale 1/255 * s a rounding more: within 4 ulp, not exact */
    const double ulps = tu_products(k, t) == 2 ? 4 * 0x1p-24 : 0.0;
    for (int i = 0; i < dv; i++)
        if (!(fabs((double)o[i] - want[i]) <= ulps * fabs(want[i])) &&
            !(isnan(o[i]) && isnan(want[i]))) /* exact; -0 sums to +0 */
            fail_msg("%s pv %s group %d %s scales: column %d (code %d) = %.9g, want %.9g",
                     k->name, qu_type_name(t), group, st == FLAT_F16 ? "f16" : "f32", i,
                     codes[i], o[i], want[i]);
    /* qk_rows with Q = e_c reads the same values as scores (1 x value) */
    if (k->compute == FLAT_BF16 || dv > 64)
        return;
    float qp[64 * 16] = {0}, s[64];
    for (int c = 0; c < dv; c++) {
        memset(qp, 0, sizeof qp);
        qp[c * k->mr] = 1.0f;
        v.ld = 0; /* one row, read as key 0 */
        k->qk_rows(1, dv, 1, qp, &v, s, 1);
        if (!(fabs((double)s[0] - want[c]) <= ulps * fabs(want[c])) &&
            !(isnan(s[0]) && isnan(want[c])))
            fail_msg("%s qk_rows %s group %d: column %d = %.9g, want %.9g", k->name,
                     qu_type_name(t), group, c, s[0], want[c]);
    }
}

static void test_decode_every_code(void **state)
{
    (void)state;
    int codes[256];
    for (int ti = 0; ti < ntables; ti++) {
        const flat_ukernels *k = tables[ti];
        for (int st = FLAT_F32; st <= FLAT_F16; st++) {
            for (int i = 0; i < 256; i++)
                codes[i] = i - 128;
            check_row(k, FLAT_I8, codes, 256, 1, (flat_dtype)st);
            for (int i = 0; i < 256; i++)
                codes[i] = i;
            check_row(k, FLAT_F8E4M3, codes, 256, 16, (flat_dtype)st);
            for (int i = 0; i < 32; i++)
                codes[i] = (i * 7) % 16 - 8; /* each nibble in both halves */
            check_row(k, FLAT_I4, codes, 32, 2, (flat_dtype)st);
            /* every group the kernels special-case, and a generic one */
            static const int groups[] = {1, 2, 4, 8, 16, 32, 3, 48};
            for (int g = 0; g < 8; g++) {
                /* a dim the group divides (the contract): a group of 32 in
                 * 48 columns left the last 16 columns' scale unset, and the
                 * test read stack garbage (a flaky failure under ASan) */
                const int dv = 48 % groups[g] ? 64 : 48;
                for (int i = 0; i < dv; i++)
                    codes[i] = (i * 37) % 255 - 127;
                check_row(k, FLAT_I8, codes, dv, groups[g], (flat_dtype)st);
                for (int i = 0; i < dv; i++)
                    codes[i] = (i * 5) % 16 - 8;
                check_row(k, FLAT_I4, codes, dv, groups[g], (flat_dtype)st);
                for (int i = 0; i < dv; i++)
                    codes[i] = (i * 53) % 256 == 0x7f ? 1 : (i * 53) % 256;
                check_row(k, FLAT_F8E4M3, codes, dv, groups[g], (flat_dtype)st);
            }
        }
        /* F8E4M3 without scales (kv_quant NULL: scale 1), all bytes */
        uint8_t buf[256];
        float p = 1.0f, o[256];
        for (int i = 0; i < 256; i++)
            buf[i] = (uint8_t)i;
        flat_kv_src v = flat_kv_src_plain(buf, 256, FLAT_F8E4M3);
        k->pv(1, 1, 256, &p, 1, &v, o, 256, NULL);
        for (int i = 0; i < 256; i++) {
            float want = qu_decode_f8((uint8_t)i);
            int nan = (i & 0x7f) == 0x7f;
            if (nan ? !isnan(o[i]) : o[i] != want)
                fail_msg("%s f8 byte 0x%02x = %.9g, want %s%.9g", k->name, i, o[i],
                         nan ? "NaN " : "", want);
        }
    }
}

/* convert.h's decoder against the independent one (the scalar reference). */
static void test_convert_h(void **state)
{
    (void)state;
    for (int i = 0; i < 256; i++) {
        float a = flat_f8e4m3_to_f32((uint8_t)i), b = qu_decode_f8((uint8_t)i);
        if ((i & 0x7f) == 0x7f ? !isnan(a) : memcmp(&a, &b, 4) != 0)
            fail_msg("flat_f8e4m3_to_f32(0x%02x) = %.9g, want %.9g", i, a, b);
    }
    for (int i = 0; i < 16; i++) {
        uint8_t b = (uint8_t)(i | (15 - i) << 4);
        assert_int_equal(flat_i4_code(&b, 0), i >= 8 ? i - 16 : i);
        assert_int_equal(flat_i4_code(&b, 1), 15 - i >= 8 ? 15 - i - 16 : 15 - i);
    }
}


/* ---- encoding (flat_quantize) ---- */

/* Quantizes n f32 values (one row, one group, given scale s unless s < 0)
 * into codes; returns the status. */
static flat_status quantize_row(const float *x, int n, flat_dtype t, float s, void *codes,
                                float *scale_out)
{
    float sc = s;
    flat_tensor src = flat_tensor_bhsd((void *)x, FLAT_F32, 1, 1, 1, n);
    flat_tensor dst = flat_tensor_bhsd(codes, t, 1, 1, 1, n);
    flat_tensor st = flat_tensor_bhsd(&sc, FLAT_F32, 1, 1, 1, 1);
    flat_status r = flat_quantize(&src, &dst, &st, n, s < 0 ? 0 : FLAT_QUANTIZE_GIVEN_SCALES);
    if (scale_out)
        *scale_out = sc;
    return r;
}

/* Every integer code, every midpoint, one ulp either side, saturation. */
static void test_encode_integers(void **state)
{
    (void)state;
    for (int ti = 0; ti < 2; ti++) {
        const flat_dtype t = ti ? FLAT_I4 : FLAT_I8;
        const int lo = ti ? -8 : -127, hi = ti ? 7 : 127;
        for (int k = lo - 3; k <= hi + 3; k++) {
            const float base = (float)k, mid = (float)k + 0.5f;
            const float xs[5] = {base, mid, nextafterf(mid, -INFINITY), nextafterf(mid, INFINITY),
                                 -mid};
            for (int i = 0; i < 5; i++) {
                float x[2] = {xs[i], 0.0f};
                uint8_t codes[2] = {0xaa, 0xaa};
                assert_int_equal(quantize_row(x, 2, t, 1.0f, codes, NULL), FLAT_OK);
                double r = nearbyint((double)xs[i]); /* ties to even, the default mode */
                int want = (int)(r < lo ? lo : r > hi ? hi : r);
                int got = (int)qu_code_value(codes, t, 0);
                if (got != want)
                    fail_msg("%s: %.9g -> %d, want %d", qu_type_name(t), xs[i], got, want);
            }
        }
        float x[2] = {-1e30f, 1e30f};
        uint8_t codes[2];
        assert_int_equal(quantize_row(x, 2, t, 1.0f, codes, NULL), FLAT_OK);
        assert_int_equal((int)qu_code_value(codes, t, 0), lo); /* -128 never */
        assert_int_equal((int)qu_code_value(codes, t, 1), hi);
    }
}

/* The nearest e4m3 value to x, ties to the even code, saturated (a scan). */
static int nearest_e4m3(double x)
{
    int best = 0;
    double bd = INFINITY, ax = fabs(x) > 448 ? 448 : fabs(x);
    for (int b = 0; b < 0x7f; b++) {
        double d = fabs(qu_decode_f8((uint8_t)b) - ax);
        if (d < bd || (d == bd && (b & 1) == 0 && (best & 1)))
            bd = d, best = b;
    }
    return (x < 0 || (x == 0 && signbit(x))) ? best | 0x80 : best;
}

static void test_encode_f8(void **state)
{
    (void)state;
    int n = 0;
    for (int b = 0; b < 0x7e; b++) {
        const double v = qu_decode_f8((uint8_t)b), w = qu_decode_f8((uint8_t)(b + 1));
        const float mid = (float)((v + w) / 2); /* exact in f32 */
        const float xs[5] = {(float)v, mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid};
        for (int i = 0; i < 5; i++, n++) {
            float x[1] = {xs[i]};
            uint8_t code = 0xaa;
            assert_int_equal(quantize_row(x, 1, FLAT_F8E4M3, 1.0f, &code, NULL), FLAT_OK);
            int want = nearest_e4m3(xs[i]);
            if (code != want && !(xs[i] == 0 && (code & 0x7f) == 0))
                fail_msg("f8e4m3: %.9g -> 0x%02x, want 0x%02x", xs[i], code, want);
        }
    }
    const float sat[4] = {448.0f, 464.0f, 1e9f, -500.0f};
    for (int i = 0; i < 4; i++) {
        uint8_t code;
        quantize_row(&sat[i], 1, FLAT_F8E4M3, 1.0f, &code, NULL);
        assert_int_equal(code, sat[i] < 0 ? 0xfe : 0x7e);
    }
    printf("test_quantize: %d e4m3 values and midpoints round as the nearest-even scan\n", n);
}

/* Computed scales: amax / 127, / 448, / 7 (f32 and f16), the amax element
 * at the range end, an all-zero group scale 0 and codes 0. */
static void test_encode_scales(void **state)
{
    (void)state;
    const flat_dtype types[3] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    const float maxc[3] = {127.0f, 448.0f, 7.0f};
    for (int ti = 0; ti < 3; ti++)
        for (int sd = FLAT_F32; sd <= FLAT_F16; sd++) {
            float x[64];
            for (int i = 0; i < 64; i++)
                x[i] = i < 32 ? 0.0f : sinf((float)i) * 3.0f;
            x[40] = -5.25f; /* the amax of group 1 */
            uint8_t codes[64];
            memset(codes, 0xaa, sizeof codes);
            float sc[2] = {-1, -1};
            flat_tensor src = flat_tensor_bhsd(x, FLAT_F32, 1, 1, 1, 64);
            flat_tensor dst = flat_tensor_bhsd(codes, types[ti], 1, 1, 1, 64);
            flat_tensor st = flat_tensor_bhsd(sc, (flat_dtype)sd, 1, 1, 1, 2);
            assert_int_equal(flat_quantize(&src, &dst, &st, 32, 0), FLAT_OK);
            float s0 = qu_scale_value(sc, (flat_dtype)sd, 0), s1 = qu_scale_value(sc, (flat_dtype)sd, 1);
            float want = 5.25f / maxc[ti];
            if (sd == FLAT_F16)
                want = flat_f16_to_f32(flat_f32_to_f16(want));
            assert_true(s0 == 0.0f && !signbit(s0));
            if (s1 != want)
                fail_msg("%s scale %.9g, want %.9g", qu_type_name(types[ti]), s1, want);
            for (int i = 0; i < 32; i++)
                assert_true(qu_code_value(codes, types[ti], i) == 0.0f);
            float c40 = qu_code_value(codes, types[ti], 40);
            if (c40 != -maxc[ti])
                fail_msg("%s: the amax element's code %g, want %g", qu_type_name(types[ti]), c40,
                         -maxc[ti]);
        }
}

/* NaN and inf are refused before anything is written; argument errors. */
static void test_encode_refuses(void **state)
{
    (void)state;
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        float x[4] = {1, 2, bad[i], 3};
        uint8_t codes[4] = {0xaa, 0xaa, 0xaa, 0xaa};
        float sc = -7.0f;
        assert_int_equal(quantize_row(x, 4, FLAT_I8, -1.0f, codes, &sc),
                         FLAT_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(flat_last_error(), "src[0][0][0][2]"));
        assert_true(codes[0] == 0xaa && codes[3] == 0xaa && sc == -1.0f);
    }
    float x[4] = {1, 2, 3, 4}, sc = 1.0f, neg = -1.0f;
    uint8_t codes[4];
    flat_tensor src = flat_tensor_bhsd(x, FLAT_F32, 1, 1, 1, 4);
    flat_tensor dst = flat_tensor_bhsd(codes, FLAT_I8, 1, 1, 1, 4);
    flat_tensor st = flat_tensor_bhsd(&sc, FLAT_F32, 1, 1, 1, 1);
#define REFUSE(call, text)                                                                    \
    do {                                                                                      \
        assert_int_equal(call, FLAT_ERROR_INVALID_ARGUMENT);                                  \
        if (!strstr(flat_last_error(), text))                                                 \
            fail_msg("message '%s' lacks '%s'", flat_last_error(), text);                     \
    } while (0)
    REFUSE(flat_quantize(&src, &dst, &st, 3, 0), "group (3)");
    REFUSE(flat_quantize(&src, &dst, &st, 4, 2), "flags");
    REFUSE(flat_quantize(&src, &src, &st, 4, 0), "dst.dtype");
    REFUSE(flat_quantize(&dst, &dst, &st, 4, 0), "src.dtype");
    REFUSE(flat_quantize(NULL, &dst, &st, 4, 0), "src is NULL");
    flat_tensor st2 = flat_tensor_bhsd(&sc, FLAT_F32, 1, 1, 1, 2);
    REFUSE(flat_quantize(&src, &dst, &st2, 4, 0), "scale.dim (2) must be 1");
    flat_tensor d4 = flat_tensor_bhsd(codes, FLAT_I4, 1, 1, 1, 4);
    d4.dim = 3, src.dim = 3;
    REFUSE(flat_quantize(&src, &d4, &st, 3, 0), "dst.dim (3) must be even");
    src.dim = 4;
    flat_tensor negs = flat_tensor_bhsd(&neg, FLAT_F32, 1, 1, 1, 1);
    REFUSE(flat_quantize(&src, &dst, &negs, 4, FLAT_QUANTIZE_GIVEN_SCALES), "scale[0][0][0][0]");
    flat_tensor alias = flat_tensor_bhsd(x, FLAT_I8, 1, 1, 1, 4);
    REFUSE(flat_quantize(&src, &alias, &st, 4, 0), "dst overlaps src");
#undef REFUSE
}

int flat_test_quantize_encode(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_integers),
        cmocka_unit_test(test_encode_f8),
        cmocka_unit_test(test_encode_scales),
        cmocka_unit_test(test_encode_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    ntables = tu_runnable_tables("test_quantize", tables, 8);
    if (tu_check_required_isas("test_quantize"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_h),
        cmocka_unit_test(test_decode_every_code),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* The encoding through flat_quantize on each table's quantize_row and
     * first_nonfinite (flat_quantize runs the table FLAT_ISA names). */
    for (int ti = 0; ti < ntables; ti++) {
        setenv("FLAT_ISA", tables[ti]->name, 1);
        printf("test_quantize: encoding on FLAT_ISA=%s\n", tables[ti]->name);
        rc |= flat_test_quantize_encode();
    }
    unsetenv("FLAT_ISA");
    return rc;
}
