/*
 * The decode kernels on quantized K/V, directly: qk_rows of every table
 * and pv of every fp32-product table against double sums of the
 * dequantized values (for a bf16-product table's qk_rows, the values and Q
 * rounded to bf16 as it rounds them: then its products are exact), with
 * random codes and scales, for every row count up to the register block,
 * key counts around every block width, head dims around every chunk width
 * (the dot-product kernels' limit included) and each way the kernels reach
 * scales (kernels/avx512/kernels.h's modes): groups of 32 per token (a
 * chunk in one group), per token, per channel and per tensor (the same
 * scales for every row), groups of 8 and 3 (a per-lane map), F8E4M3
 * without scales; f16 and f32 scales. Buffers end right after the last
 * byte a kernel may read, so an over-read is an ASan report.
 *
 * Bound: the kernels may fold a scale into the other operand, (q * s) *
 * code instead of q * (code * s), one more fp32 rounding per term than a
 * dot product of dequantized values: (terms + 4) u of the sum of |terms|.
 * bf16-product tables' pv (P rounded too) is held to its bound by test_quant
 * and test_dtypes. widen_rows is exact: its values, and pv over them, are
 * compared bit for bit.
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
#include "ukernel_panels.h"

#define U (1.0 / 16777216.0) /* unit roundoff of fp32, 2^-24 */

static const flat_ukernels *tables[8];
static int ntables;

typedef struct {
    const char *name;
    int group;     /* 0: the dim */
    int per_row;   /* 0: ld_scale 0 (every row the same scales) */
    flat_dtype st; /* scale type */
    int none;      /* no scales (F8E4M3 only) */
} scale_case;

static const scale_case cases[] = {
    {"g32/token f16", 32, 1, FLAT_F16, 0}, {"token f32", 0, 1, FLAT_F32, 0},
    {"channel f16", 1, 0, FLAT_F16, 0},    {"tensor f32", 0, 0, FLAT_F32, 0},
    {"g8/token f32", 8, 1, FLAT_F32, 0},   {"g3/token f16", 3, 1, FLAT_F16, 0},
    {"g16/channel f32", 16, 0, FLAT_F32, 0}, {"none", 0, 0, FLAT_F32, 1},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static const int dims[] = {16, 24, 48, 64, 96, 128, 200, 576, 592};
#define NDIMS ((int)(sizeof dims / sizeof dims[0]))

/* n rows of d codes (row stride ld) and their scales, as a flat_kv_src. */
typedef struct {
    uint8_t *codes;
    void *scales;
    flat_kv_src src;
} qrows;

static int make_rows(qrows *q, tu_rng *r, flat_dtype t, const scale_case *sc, int n, int d)
{
    const int group = sc->group ? sc->group : d;
    if (d % group || (t == FLAT_I4 && d % 2) || (sc->none && t != FLAT_F8E4M3))
        return 0;
    const int64_t ld = d + 2; /* even: I4 rows start on bytes */
    const int64_t rows = n > 0 ? n : 1; /* n 0: one row allocated, none read */
    const int64_t bytes = flat_dtype_bytes(t, (rows - 1) * ld + d);
    q->codes = malloc((size_t)bytes);
    memset(q->codes, 0, (size_t)bytes);
    for (int j = 0; j < n; j++)
        for (int c = 0; c < d; c++)
            qu_set_code(q->codes, t, j * ld + c, qu_random_code(r, t));
    q->src = flat_kv_src_plain(q->codes, ld, t);
    q->scales = NULL;
    if (sc->none)
        return 1;
    /* rows of scales padded (odd n) or contiguous (even n): int8 products
     * read the two differently (kernels/avx512_vnni/pv.c) */
    const int64_t ng = d / group, ld_s = sc->per_row ? ng + (n % 2) : 0;
    const int64_t ns = (sc->per_row ? (rows - 1) * ld_s : 0) + ng;
    q->scales = malloc((size_t)ns * 4);
    for (int64_t i = 0; i < ns; i++)
        qu_set_scale(q->scales, sc->st, i, qu_random_scale(r, t));
    q->src.scale = q->scales;
    q->src.scale_t = sc->st;
    q->src.ld_scale = ld_s;
    q->src.group = group;
    return 1;
}

static double value(const qrows *q, int64_t j, int64_t c)
{
    return flat_kv_load(&q->src, j, c, q->src.t);
}

/* |code| of element (j, c) and the largest |scale| of the rows' scales
 * (int8 products' bounds: kernels/avx512_vnni/kernels.h). */
static double code_mag(const qrows *q, int64_t j, int64_t c)
{
    flat_kv_src plain = q->src;
    plain.scale = NULL;
    return fabs(flat_kv_load(&plain, j, c, q->src.t));
}

static double max_scale(const qrows *q, int n, int d)
{
    double m = 0;
    for (int j = 0; j < (n > 0 ? n : 1); j++)
        for (int c = 0; c < d; c++) {
            const double code = code_mag(q, j, c), v = fabs(value(q, j, c));
            if (code > 0)
                m = fmax(m, v / code);
        }
    return m;
}

static void check_qk_rows(const flat_ukernels *k, flat_dtype t, const scale_case *sc, int m,
                          int n, int d, tu_rng *r)
{
    qrows q;
    if (!(k->dtypes & FLAT_DTYPE_BIT(t)) || !make_rows(&q, r, t, sc, n, d))
        return; /* a table without this K/V type (every table takes all today) */
    const int b16 = bf16_products(k);
    float *qv = malloc(sizeof(float) * (size_t)m * d);
    const void **rows = malloc(sizeof(void *) * (size_t)m);
    for (int i = 0; i < m; i++) {
        for (int c = 0; c < d; c++)
            qv[i * d + c] = tu_uniform(r, -1.0f, 1.0f);
        rows[i] = qv + i * d;
    }
    float *qp = malloc(sizeof(float) * (size_t)d * k->mr);
    k->pack_q(m, d, (const void *const *)rows, FLAT_F32, 1.0f, qp);
    const int64_t ld_s = n + 1;
    float *s = malloc(sizeof(float) * (size_t)(m * ld_s));
    k->qk_rows(m, d, n, qp, &q.src, s, ld_s);
    /* int8 products: Q rounded to int8 per row, a step of max|q| max|s| / 127
     * at most, half of it per code (kernels/avx512_vnni/kernels.h) */
    const double smax = tu_products(k, t) == 2 ? max_scale(&q, n, d) : 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = 0, mag = 0, qmax = 0, codes = 0;
            for (int c = 0; c < d; c++) {
                const float qc = qv[i * d + c], kc = (float)value(&q, j, c);
                double x = b16 ? (double)bf16_round(qc) * bf16_round(kc) : (double)qc * kc;
                ref += x, mag += fabs(x);
                qmax = fmax(qmax, fabs(qc)), codes += code_mag(&q, j, c);
            }
            const double i8 = qmax * smax / 254 * (1 + 1e-5) * codes;
            if (!(fabs(s[i * ld_s + j] - ref) <= (d + (b16 ? 1 : 4)) * U * mag + i8))
                fail_msg("%s qk_rows %s %s m=%d n=%d d=%d: S[%d][%d] = %.9g, want %.9g", k->name,
                         qu_type_name(t), sc->name, m, n, d, i, j, s[i * ld_s + j], ref);
        }
    free(s), free(qp), free(rows), free(qv), free(q.codes), free(q.scales);
}

static void check_pv(const flat_ukernels *k, flat_dtype t, const scale_case *sc, int m, int n,
                     int dv, int with_alpha, int signed_p, tu_rng *r)
{
    qrows v;
    if (!make_rows(&v, r, t, sc, n, dv))
        return;
    const int64_t ld_p = n + 1, ld_o = dv + 3;
    float *p = malloc(sizeof(float) * (size_t)(m * ld_p));
    float *o = malloc(sizeof(float) * (size_t)(m * ld_o)), *o0 = malloc(sizeof(float) * (size_t)(m * ld_o));
    float alpha[40];
    /* bf16 products (ukernel.h: rows of 3 or more): P and V, or V's codes with
     * the scale applied to the product, each rounded to bf16 once (u = 2^-8) */
    const double ub = bf16_products(k) && m > 2 ? 1.0 / 256 : 0;
    /* signed_p: P of either sign from key 150 on, which the int8 table's
     * u8 P cannot hold (it declines from that chunk of 128 keys on) */
    for (int i = 0; i < m * ld_p; i++)
        p[i] = tu_uniform(r, signed_p && i % ld_p >= 150 ? -1.0f : 0.0f, 1.0f);
    for (int i = 0; i < m * ld_o; i++)
        o0[i] = o[i] = tu_uniform(r, -1.0f, 1.0f);
    for (int i = 0; i < m; i++)
        alpha[i] = tu_uniform(r, 0.0f, 1.0f);
    k->pv(m, n, dv, p, ld_p, &v.src, o, ld_o, with_alpha ? alpha : NULL);
    /* int8 products: p * s rounded to u8 per chunk, a step of max p max s / 255
     * at most, half of it per key (kernels/avx512_vnni/kernels.h) */
    const double smax = tu_products(k, t) == 2 ? max_scale(&v, n, dv) : 0;
    for (int i = 0; i < m; i++)
        for (int c = 0; c < dv; c++) {
            double ref = with_alpha ? (double)alpha[i] * o0[i * ld_o + c] : 0;
            double mag = fabs(ref);
            double pmag = 0, pmax = 0, codes = 0;
            for (int j = 0; j < n; j++) {
                double x = (double)p[i * ld_p + j] * value(&v, j, c);
                ref += x, mag += fabs(x), pmag += fabs(x);
                pmax = fmax(pmax, p[i * ld_p + j]), codes += code_mag(&v, j, c);
            }
            const double i8 = pmax * smax / 510 * (1 + 1e-5) * codes;
            if (!(fabs(o[i * ld_o + c] - ref) <= (n + 4) * U * mag + (2 * ub + ub * ub) * pmag + i8))
                fail_msg("%s pv %s %s m=%d n=%d dv=%d: O[%d][%d] = %.9g, want %.9g", k->name,
                         qu_type_name(t), sc->name, m, n, dv, i, c, o[i * ld_o + c], ref);
        }
    free(o0), free(o), free(p), free(v.codes), free(v.scales);
}

/* widen_rows: every element bitwise flat_kv_load's value, nothing written
 * past `cols` in a row (the pad columns keep their canary) nor past row n;
 * and, for an fp32-product table, pv over the widened rows the bits of pv
 * over the codes (what lets the runtime widen a V chunk once: dataflow.c). */
static void check_widen(const flat_ukernels *k, flat_dtype t, const scale_case *sc, int n, int dv,
                        tu_rng *r)
{
    qrows v;
    if (!make_rows(&v, r, t, sc, n, dv))
        return;
    const int64_t ld_y = dv + 3;
    const float canary = -12345.0f;
    float *y = malloc(sizeof(float) * (size_t)((n + 1) * ld_y));
    for (int64_t i = 0; i < (n + 1) * ld_y; i++)
        y[i] = canary;
    k->widen_rows(n, dv, &v.src, y, ld_y);
    for (int j = 0; j <= n; j++)
        for (int c = 0; c < ld_y; c++) {
            const float want = j < n && c < dv ? (float)value(&v, j, c) : canary;
            if (memcmp(&y[j * ld_y + c], &want, sizeof want))
                fail_msg("%s widen_rows %s %s n=%d dv=%d: y[%d][%d] = %.9g, want %.9g", k->name,
                         qu_type_name(t), sc->name, n, dv, j, c, y[j * ld_y + c], want);
        }
    if (tu_products(k, t) == 0) { /* ukernel.h's promise for fp32 products */
        const int m = 7;
        const int64_t ld_p = n + 1, ld_o = dv + 1;
        float *p = malloc(sizeof(float) * (size_t)(m * ld_p));
        float *o1 = malloc(sizeof(float) * (size_t)(m * ld_o)), *o2 = malloc(sizeof(float) * (size_t)(m * ld_o));
        for (int i = 0; i < m * ld_p; i++)
            p[i] = tu_uniform(r, 0.0f, 1.0f);
        for (int i = 0; i < m * ld_o; i++)
            o1[i] = o2[i] = tu_uniform(r, -1.0f, 1.0f);
        const float alpha[7] = {0.5f, 1, 0.25f, 0.75f, 1, 0.125f, 0.9f};
        const flat_kv_src wide = flat_kv_src_plain(y, ld_y, FLAT_F32);
        k->pv(m, n, dv, p, ld_p, &v.src, o1, ld_o, alpha);
        k->pv(m, n, dv, p, ld_p, &wide, o2, ld_o, alpha);
        if (memcmp(o1, o2, sizeof(float) * (size_t)(m * ld_o)))
            fail_msg("%s pv over widen_rows %s %s n=%d dv=%d: not the bits of pv over the codes",
                     k->name, qu_type_name(t), sc->name, n, dv);
        free(o2), free(o1), free(p);
    }
    free(y), free(v.codes), free(v.scales);
}

static const flat_dtype qtypes[] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};
static const int ns[] = {1, 3, 8, 16, 17, 40};
#define NNS ((int)(sizeof ns / sizeof ns[0]))

static void test_qk_rows_quant(void **state)
{
    (void)state;
    tu_rng r = {77};
    int it = 0;
    for (int ti = 0; ti < ntables; ti++)
        for (int qt = 0; qt < 3; qt++)
            for (int ci = 0; ci < NCASES; ci++)
                for (int di = 0; di < NDIMS; di++)
                    for (int m = 1; m <= tables[ti]->mr; m++)
                        for (int ni = 0; ni < NNS; ni++)
                            if (!tu_quick() || it++ % 5 == 0)
                                if ((m + ni + di + ci) % 2 == 0) /* half the grid, every axis value */
                                    check_qk_rows(tables[ti], qtypes[qt], &cases[ci], m, ns[ni],
                                                  dims[di], &r);
}

static void test_pv_quant(void **state)
{
    (void)state;
    tu_rng r = {78};
    /* 16, 32, 33: amx_bf16's tile blocks (1 x 4 and 2 x 2 tiles, and the
     * vector kernel for the rest) */
    static const int ms[] = {1, 2, 3, 6, 7, 16, 32, 33};
    int it = 0;
    for (int ti = 0; ti < ntables; ti++)
        for (int qt = 0; qt < 3; qt++)
            for (int ci = 0; ci < NCASES; ci++)
                for (int di = 0; di < NDIMS; di++)
                    for (int mi = 0; mi < 8; mi++)
                        for (int ni = 0; ni < NNS; ni++)
                            if (!tu_quick() || it++ % 5 == 0)
                                check_pv(tables[ti], qtypes[qt], &cases[ci], ms[mi], ns[ni],
                                         dims[di], (mi + ni) % 2, 0, &r);
}

/* P.V past a chunk whose P has negative values: the int8 table's kernel
 * hands the rest to fp32 products, O so far kept (what a wrong split of
 * that hand-over, or P rounded to u8 regardless, would break). */
static void test_pv_signed_p(void **state)
{
    (void)state;
    tu_rng r = {80};
    static const int ms[] = {1, 2, 4, 5};
    for (int ti = 0; ti < ntables; ti++)
        for (int qt = 0; qt < 3; qt++)
            for (int ci = 0; ci < NCASES; ci++)
                for (int mi = 0; mi < 4; mi++)
                    check_pv(tables[ti], qtypes[qt], &cases[ci], ms[mi], 300, 128, mi % 2, 1, &r);
}

/* F8E4M3 NaN codes (S.1111.111, both signs) in K and V: a key holding one
 * scores NaN in every row and a V column holding one is NaN in every O row,
 * as the IEEE products through it give; every other score and column is
 * bitwise what the call gives with those codes zeroed (the avx512 decode
 * kernels read NaN codes as finite and record them apart, then set the
 * scores and columns: a missed record, or a set too wide, fails here). */
static void check_f8_nan(const flat_ukernels *k, const scale_case *sc, int m, int n, int d,
                         tu_rng *r)
{
    qrows q;
    if (!make_rows(&q, r, FLAT_F8E4M3, sc, n, d))
        return;
    const int64_t ld = q.src.ld, bytes = (int64_t)(n - 1) * ld + d;
    uint8_t *zeroed = malloc((size_t)bytes);
    const int64_t nan_at[3][2] = {{n / 2, d - 1}, {0, 0}, {n - 1, d / 2}};
    memcpy(zeroed, q.codes, (size_t)bytes);
    for (int u = 0; u < 3; u++) {
        q.codes[nan_at[u][0] * ld + nan_at[u][1]] = u % 2 ? 0xff : 0x7f;
        zeroed[nan_at[u][0] * ld + nan_at[u][1]] = 0;
    }
    flat_kv_src z = q.src;
    z.data = zeroed;
    /* Q.K^T */
    float *qv = malloc(sizeof(float) * (size_t)m * d), *qp = malloc(sizeof(float) * (size_t)d * k->mr);
    const void **rows = malloc(sizeof(void *) * (size_t)m);
    for (int i = 0; i < m; i++) {
        for (int c = 0; c < d; c++)
            qv[i * d + c] = tu_uniform(r, -1.0f, 1.0f);
        rows[i] = qv + i * d;
    }
    k->pack_q(m, d, (const void *const *)rows, FLAT_F32, 1.0f, qp);
    float *s = malloc(sizeof(float) * (size_t)(m * n)), *s0 = malloc(sizeof(float) * (size_t)(m * n));
    k->qk_rows(m, d, n, qp, &q.src, s, n);
    k->qk_rows(m, d, n, qp, &z, s0, n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const int nan = j == nan_at[0][0] || j == nan_at[1][0] || j == nan_at[2][0];
            if (nan ? !isnan(s[i * n + j]) : memcmp(&s[i * n + j], &s0[i * n + j], 4) != 0)
                fail_msg("%s qk_rows f8 NaN codes %s m=%d n=%d d=%d: S[%d][%d] = %.9g, want %s%.9g",
                         k->name, sc->name, m, n, d, i, j, s[i * n + j], nan ? "NaN, not " : "",
                         s0[i * n + j]);
        }
    /* P.V, with alpha */
    float *p = malloc(sizeof(float) * (size_t)(m * n)), alpha[8];
    float *o = malloc(sizeof(float) * (size_t)(m * d)), *o0 = malloc(sizeof(float) * (size_t)(m * d));
    for (int i = 0; i < m * n; i++)
        p[i] = tu_uniform(r, 0.0f, 1.0f);
    for (int i = 0; i < m * d; i++)
        o0[i] = o[i] = tu_uniform(r, -1.0f, 1.0f);
    for (int i = 0; i < m; i++)
        alpha[i] = tu_uniform(r, 0.0f, 1.0f);
    k->pv(m, n, d, p, n, &q.src, o, d, alpha);
    k->pv(m, n, d, p, n, &z, o0, d, alpha);
    for (int i = 0; i < m; i++)
        for (int c = 0; c < d; c++) {
            const int nan = c == nan_at[0][1] || c == nan_at[1][1] || c == nan_at[2][1];
            if (nan ? !isnan(o[i * d + c]) : memcmp(&o[i * d + c], &o0[i * d + c], 4) != 0)
                fail_msg("%s pv f8 NaN codes %s m=%d n=%d d=%d: O[%d][%d] = %.9g, want %s%.9g",
                         k->name, sc->name, m, n, d, i, c, o[i * d + c], nan ? "NaN, not " : "",
                         o0[i * d + c]);
        }
    free(o0), free(o), free(p), free(s0), free(s), free(rows), free(qp), free(qv);
    free(zeroed), free(q.codes), free(q.scales);
}

static void test_f8_nan_codes(void **state)
{
    (void)state;
    tu_rng r = {81};
    static const int ms[] = {1, 2, 4, 7}, nn[] = {1, 9, 40}, dd[] = {64, 128, 200};
    for (int ti = 0; ti < ntables; ti++)
        for (int ci = 0; ci < NCASES; ci++)
            for (int mi = 0; mi < 4; mi++)
                for (int ni = 0; ni < 3; ni++)
                    for (int di = 0; di < 3; di++)
                        if (ms[mi] <= tables[ti]->mr)
                            check_f8_nan(tables[ti], &cases[ci], ms[mi], nn[ni], dd[di], &r);
}

static void test_widen_rows(void **state)
{
    (void)state;
    tu_rng r = {79};
    static const int nw[] = {0, 1, 5, 40};
    for (int ti = 0; ti < ntables; ti++)
        for (int qt = 0; qt < 3; qt++)
            for (int ci = 0; ci < NCASES; ci++)
                for (int di = 0; di < NDIMS; di++)
                    for (int ni = 0; ni < 4; ni++)
                        if (!tu_quick() || (ci + di + ni) % 3 == 0)
                            check_widen(tables[ti], qtypes[qt], &cases[ci], nw[ni], dims[di], &r);
}

/* flat_kv_src.next (the runs a paged call hands over next, for prefetching
 * only): qk_rows and pv give the bits of the same call without it, on
 * every table (those that follow the chain and those that ignore it), and
 * never read those rows (a kernel that did would change the scores). */
/* make_rows for every type: float rows hold values in [-1, 1). */
static int make_any_rows(qrows *q, tu_rng *r, flat_dtype t, const scale_case *sc, int n, int d)
{
    if (!make_rows(q, r, t, sc, n, d))
        return 0;
    if (!flat_dtype_quantized(t))
        for (int64_t e = 0; e < (int64_t)((n > 0 ? n : 1) - 1) * (d + 2) + d; e++) {
            const float x = tu_uniform(r, -1.0f, 1.0f);
            uint32_t u;
            memcpy(&u, &x, 4);
            if (t == FLAT_F32)
                ((float *)q->codes)[e] = x;
            else
                ((uint16_t *)q->codes)[e] = (uint16_t)(u >> 16); /* bf16 */
        }
    return 1;
}

static void check_next_runs(const flat_ukernels *k, flat_dtype t, const scale_case *sc, int m, int n,
                            int d, tu_rng *r)
{
    qrows a, b, c;
    if (!make_any_rows(&a, r, t, sc, n, d))
        return;
    make_any_rows(&b, r, t, sc, 16, d);
    make_any_rows(&c, r, t, sc, 7, d);
    float *qv = malloc(sizeof(float) * (size_t)m * d), *qp = malloc(sizeof(float) * (size_t)d * k->mr);
    const void *rows[16];
    for (int i = 0; i < m * d; i++)
        qv[i] = tu_uniform(r, -1.0f, 1.0f);
    for (int i = 0; i < m; i++)
        rows[i] = qv + i * d;
    k->pack_q(m, d, rows, FLAT_F32, 1.0f, qp);
    const int64_t ld = n + 1;
    float *s1 = calloc((size_t)(m * ld), sizeof(float)), *s2 = calloc((size_t)(m * ld), sizeof(float));
    float *o1 = malloc(sizeof(float) * (size_t)(m * d)), *o2 = malloc(sizeof(float) * (size_t)(m * d));
    for (int i = 0; i < m * ld; i++)
        s1[i] = s2[i] = tu_uniform(r, 0.0f, 1.0f);
    for (int i = 0; i < m * d; i++)
        o1[i] = o2[i] = tu_uniform(r, -1.0f, 1.0f);
    const float alpha[16] = {0.5f, 1, 0.25f, 0.75f, 1, 0.125f, 0.9f, 0.3f, 1, 1, 0.5f, 0.5f};
    flat_kv_src chained = a.src;
    b.src.next = &c.src, b.src.next_n = 7;
    chained.next = &b.src, chained.next_n = 16;
    k->pv(m, n, d, s1, ld, &a.src, o1, d, alpha);
    k->pv(m, n, d, s1, ld, &chained, o2, d, alpha);
    if (memcmp(o1, o2, sizeof(float) * (size_t)(m * d)))
        fail_msg("%s pv %s %s m=%d n=%d d=%d: next runs changed O", k->name, qu_type_name(t),
                 sc->name, m, n, d);
    k->qk_rows(m, d, n, qp, &a.src, s1, ld);
    k->qk_rows(m, d, n, qp, &chained, s2, ld);
    if (memcmp(s1, s2, sizeof(float) * (size_t)(m * ld)))
        fail_msg("%s qk_rows %s %s m=%d n=%d d=%d: next runs changed S", k->name,
                 qu_type_name(t), sc->name, m, n, d);
    free(o2), free(o1), free(s2), free(s1), free(qp), free(qv);
    free(a.codes), free(a.scales), free(b.codes), free(b.scales), free(c.codes), free(c.scales);
}

static void test_next_runs(void **state)
{
    (void)state;
    tu_rng r = {82};
    static const flat_dtype types[] = {FLAT_F32, FLAT_BF16, FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    static const int ms[] = {1, 2, 4, 7}, nn[] = {3, 16, 40}, dd[] = {64, 128, 200};
    int it = 0;
    for (int ti = 0; ti < ntables; ti++)
        for (int ty = 0; ty < 5; ty++)
            for (int ci = 0; ci < NCASES; ci++)
                for (int mi = 0; mi < 4; mi++)
                    for (int ni = 0; ni < 3; ni++)
                        for (int di = 0; di < 3; di++)
                            if (ms[mi] <= tables[ti]->mr && (flat_dtype_quantized(types[ty]) || ci == 0))
                                if ((mi + ni + di) % 2 == 0 && (!tu_quick() || it++ % 4 == 0))
                                    check_next_runs(tables[ti], types[ty], &cases[ci], ms[mi],
                                                    nn[ni], dd[di], &r);
}

int main(void)
{
    ntables = tu_runnable_tables("test_quant_kernels", tables, 8);
    if (tu_check_required_isas("test_quant_kernels"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qk_rows_quant),
        cmocka_unit_test(test_pv_quant),
        cmocka_unit_test(test_pv_signed_p),
        cmocka_unit_test(test_widen_rows),
        cmocka_unit_test(test_f8_nan_codes),
        cmocka_unit_test(test_next_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
