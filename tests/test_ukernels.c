/*
 * Every micro-kernel of every kernel table the host runs, against double
 * math (kernels/ukernel.h is the contract under test).
 *
 * The edge matrix comes from each table's own mr / nr / pv_mr, so a new ISA
 * table is tested by being listed in flat_dispatch_tables(): sizes one below,
 * at and above each register block, odd head dims, strided operands, zero
 * padding, masked (-inf) columns, inputs that overflow exp unless the max is
 * subtracted, and NaN where the contract says a kernel must not read.
 *
 * Buffers are allocated to their exact extent, so an over-read or over-write
 * is an ASan report in the sanitizer build; where a layout has gaps (strides)
 * the gaps hold a poison NaN and are checked to be untouched.
 *
 * Error bounds are the classical ones for fp32 dot products and sums
 * (|err| <= (k+1) u sum|terms|, u = 2^-24, k terms): they hold for any
 * summation order and with or without FMA, so they fail only on real bugs.
 * exp2 is held to the contract's 2 ulp.
 *
 * A table whose products are bf16 (compute = FLAT_BF16) packs bf16 pairs
 * (kernels/ukernel.h): its packings are checked bit for bit against
 * convert.h's rounding, its qk and qk_rows against double sums of the bf16
 * values they multiply (with the same fp32 bounds), and its pv against a
 * bound that adds the bf16 rounding of P and V (2^-7 of the terms' sum).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(FLAT_TEST_HAVE_SLEEF)
#include <sleef.h>
#endif

#include "convert.h"
#include "dispatch.h"
#include "reference.h"
#include "testutil.h"
#include "ukernel.h"
#include "ukernel_panels.h"

#define U (1.0 / 16777216.0) /* unit roundoff of fp32, 2^-24 */

static const flat_ukernels *tables[8];
static int ntables;

/* 545: more than 8 chunks of 32 dims (amx_bf16 turns Q into A tiles 8 at a
 * time), odd. 33: an odd dim count whose last pair of dims (bf16-pair panels) is a
 * single dim past a whole 32-dim chunk, and a 1-column tail past 32. */
static const int dims[] = {1, 7, 32, 33, 64, 80, 96, 128, 256, 545};
#define NDIMS ((int)(sizeof dims / sizeof dims[0]))

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static void fill_poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = tu_from_bits(TU_POISON_BITS);
}

static int is_poison(float f)
{
    return tu_bits(f) == TU_POISON_BITS;
}

/* x (n floats) rounded in place to what type t can hold, and returned as a
 * buffer of type t of exactly n elements (x itself for f32): kernels read
 * the typed buffer, the double references the rounded floats. NaN stays NaN. */
static void *typed(float *x, size_t n, flat_dtype t)
{
    if (t == FLAT_F32)
        return x;
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) {
        h[i] = t == FLAT_BF16 ? flat_f32_to_bf16(x[i]) : flat_f32_to_f16(x[i]);
        x[i] = t == FLAT_BF16 ? flat_bf16_to_f32(h[i]) : flat_f16_to_f32(h[i]);
    }
    return h;
}

static void typed_free(void *buf, const float *x)
{
    if (buf != x)
        free(buf);
}

static const char *dt_name(int t) { return t == FLAT_F16 ? "f16" : t == FLAT_BF16 ? "bf16" : "f32"; }

/* Whether table k takes element type t: the dtype loops below run
 * `for (dt...) if (takes(k, dt))` over every type a table claims. */
static int takes(const flat_ukernels *k, int t) { return (k->dtypes & FLAT_DTYPE_BIT(t)) != 0; }

/* The n-values of the edge matrix for a block width w. */
static int edge_ns(int w, int *out)
{
    int cand[] = {1, w - 1, w, w + 1, 2 * w + 3}, n = 0;
    for (int i = 0; i < 5; i++) {
        int dup = 0;
        for (int j = 0; j < n; j++)
            dup |= out[j] == cand[i];
        if (cand[i] >= 1 && !dup)
            out[n++] = cand[i];
    }
    return n;
}

/* Distance in ulps of float y from the exact value r (r > 0, normal). */
static double ulp_err(float y, double r)
{
    int e;
    frexp(r, &e); /* r = f * 2^e, f in [0.5, 1) */
    double ulp = ldexp(1.0, e - 24);
    if (ulp < ldexp(1.0, -149))
        ulp = ldexp(1.0, -149);
    return fabs((double)y - r) / ulp;
}

static int is_subnormal(float f)
{
    return fpclassify(f) == FP_SUBNORMAL;
}

/* ------------------------------------------------------------------ */

static void test_tables_sane(void **state)
{
    (void)state;
    assert_true(ntables >= 1);
    /* scalar runs everywhere and is always built */
    int have_scalar = 0;
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        have_scalar |= k->isa == FLAT_ISA_SCALAR;
        assert_string_equal(k->name, flat_isa_name(k->isa));
        assert_true(k->mr >= 1 && k->mr <= 64);
        assert_true(k->nr >= 1 && k->nr <= 256);
        assert_true(k->pv_mr >= 1 && k->pv_mr <= 64);
        assert_non_null(k->pack_q);
        assert_non_null(k->pack_k);
        assert_non_null(k->qk);
        assert_non_null(k->qk_rows);
        assert_non_null(k->row_max);
        assert_non_null(k->exp2_row);
        assert_non_null(k->pv);
        assert_non_null(k->store_row);
        assert_true(k->dtypes & FLAT_DTYPE_BIT(FLAT_F32));
        assert_non_null(k->vexp2);
        printf("  %-7s mr=%d nr=%d pv_mr=%d\n", k->name, k->mr, k->nr, k->pv_mr);
    }
    assert_true(have_scalar);
    /* The list is what flat_isa_detect() chooses from: the first runnable. */
    assert_int_equal(flat_isa_detect(), tables[0]->isa);
}

/* pack_q: panels of mr rows, dim-major, scaled; rows past m are 0. Rows come
 * through a pointer array, here in a scrambled order with a gap between. */
static void test_pack_q(void **state)
{
    (void)state;
    tu_rng rng = {1};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++) if (takes(k, dt))
        for (int m = 1; m <= 2 * k->mr + 1; m++)
            for (int di = 0; di < NDIMS; di++) {
                const int d = dims[di], ld = d + 5;
                float *q = falloc((size_t)m * ld);
                fill_poison(q, (size_t)m * ld);
                const float **rows = malloc(sizeof(float *) * (size_t)m);
                const void **trows = malloc(sizeof(void *) * (size_t)m);
                size_t *at = malloc(sizeof(size_t) * (size_t)m);
                for (int r = 0; r < m; r++) {
                    at[r] = (size_t)((r * 7 + 3) % m) * ld; /* a permutation when gcd(7,m)=1 */
                    if (m % 7 == 0)
                        at[r] = (size_t)(m - 1 - r) * ld;
                    for (int c = 0; c < d; c++)
                        q[at[r] + c] = tu_uniform(&rng, -2.0f, 2.0f);
                }
                void *tq = typed(q, (size_t)m * ld, (flat_dtype)dt);
                for (int r = 0; r < m; r++) {
                    rows[r] = q + at[r];
                    trows[r] = flat_elem_ptr(tq, (int64_t)at[r], (flat_dtype)dt);
                }
                const float scale = tu_uniform(&rng, 0.05f, 1.5f);
                const int panels = (m + k->mr - 1) / k->mr;
                const size_t nqp = (size_t)panels * d * k->mr;
                float *qp = falloc(nqp);
                fill_poison(qp, nqp);
                k->pack_q(m, d, trows, (flat_dtype)dt, scale, qp);
                float *want = falloc((size_t)d * k->mr);
                for (int p = 0; p < panels; p++) {
                    for (int c = 0; c < d; c++)
                        for (int i = 0; i < k->mr; i++) {
                            const int r = p * k->mr + i;
                            want[(size_t)c * k->mr + i] = r < m ? scale * rows[r][c] : 0.0f;
                        }
                    char what[96];
                    snprintf(what, sizeof what, "%s pack_q %s m=%d d=%d panel %d", k->name,
                             dt_name(dt), m, d, p);
                    if (check_panel(k, qp + (size_t)p * d * k->mr, d, k->mr, want, what))
                        break;
                }
                free(want);
                free(qp);
                free(rows);
                free(trows);
                free(at);
                typed_free(tq, q);
                free(q);
            }
    }
}

/* pack_k: panels of nr keys, dim-major; keys past n are 0; rows strided. */
static void test_pack_k(void **state)
{
    (void)state;
    tu_rng rng = {2};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        int ns[8], nn = edge_ns(k->nr, ns);
        ns[nn++] = 100;
        for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++) if (takes(k, dt))
        for (int ni = 0; ni < nn; ni++)
            for (int di = 0; di < NDIMS; di++)
                for (int ldpad = 0; ldpad <= 3; ldpad += 3) {
                    const int n = ns[ni], d = dims[di], ld = d + ldpad;
                    const size_t nk = (size_t)(n - 1) * ld + d;
                    float *kk = falloc(nk);
                    fill_poison(kk, nk);
                    for (int j = 0; j < n; j++)
                        for (int c = 0; c < d; c++)
                            kk[(size_t)j * ld + c] = tu_uniform(&rng, -2.0f, 2.0f);
                    void *tk = typed(kk, nk, (flat_dtype)dt);
                    const int panels = (n + k->nr - 1) / k->nr;
                    const size_t nkp = (size_t)panels * d * k->nr;
                    float *kp = falloc(nkp);
                    fill_poison(kp, nkp);
                    {
                        const flat_kv_src src = flat_kv_src_plain(tk, ld, (flat_dtype)dt);
                        k->pack_k(n, d, &src, kp);
                    }
                    float *want = falloc((size_t)d * k->nr);
                    for (int p = 0; p < panels; p++) {
                        for (int c = 0; c < d; c++)
                            for (int j = 0; j < k->nr; j++) {
                                const int key = p * k->nr + j;
                                want[(size_t)c * k->nr + j] =
                                    key < n ? kk[(size_t)key * ld + c] : 0.0f;
                            }
                        char what[96];
                        snprintf(what, sizeof what, "%s pack_k %s n=%d d=%d ld=%d panel %d",
                                 k->name, dt_name(dt), n, d, ld, p);
                        if (check_panel(k, kp + (size_t)p * d * k->nr, d, k->nr, want, what))
                            break;
                    }
                    free(want);
                    free(kp);
                    typed_free(tk, kk);
                    free(kk);
                }
    }
}

/* qk: S = Qp Kp^T for one Q panel and 1..3 K panels, into a strided S. */
static void test_qk(void **state)
{
    (void)state;
    tu_rng rng = {3};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        const int mr = k->mr, nr = k->nr;
        for (int di = 0; di < NDIMS; di++)
            for (int np = 1; np <= 3; np++)
                for (int gap = 0; gap <= 5; gap += 5) {
                    const int d = dims[di], w = np * nr;
                    const int64_t ld_s = w + gap;
                    float *qp = falloc((size_t)d * mr), *kp = falloc((size_t)np * d * nr);
                    float *qv = falloc((size_t)d * mr), *kv = falloc((size_t)np * d * nr);
                    fill_panel(k, &rng, d, mr, -1.0f, 1.0f, qv, qp);
                    for (int p = 0; p < np; p++)
                        fill_panel(k, &rng, d, nr, -1.0f, 1.0f, kv + (size_t)p * d * nr,
                                   kp + (size_t)p * d * nr);
                    const size_t ns = (size_t)(mr - 1) * ld_s + w; /* exact extent */
                    float *s = falloc(ns);
                    fill_poison(s, ns);
                    k->qk(d, np, qp, kp, s, ld_s);
                    for (int i = 0; i < mr; i++) {
                        for (int p = 0; p < np; p++)
                            for (int j = 0; j < nr; j++) {
                                double ref = 0, mag = 0;
                                for (int c = 0; c < d; c++) {
                                    double x = (double)qv[c * mr + i] *
                                               kv[((size_t)p * d + c) * nr + j];
                                    ref += x, mag += fabs(x);
                                }
                                const float got = s[i * ld_s + p * nr + j];
                                if (!(fabs(got - ref) <= (d + 1) * U * mag))
                                    fail_msg("%s qk d=%d n_panels=%d ld_s=%lld: S[%d][%d] = %.9g, "
                                             "want %.9g",
                                             k->name, d, np, (long long)ld_s, i, p * nr + j, got,
                                             ref);
                            }
                        for (int j = w; j < ld_s && i < mr - 1; j++)
                            if (!is_poison(s[i * ld_s + j]))
                                fail_msg("%s qk d=%d n_panels=%d: wrote S[%d][%d] past the block",
                                         k->name, d, np, i, j);
                    }
                    free(s);
                    free(kv);
                    free(qv);
                    free(kp);
                    free(qp);
                }
    }
}

/* qk_rows_exact (where a table has it): for every row count m <= mr, every
 * score bitwise what qk gives over the same K packed by pack_k (the
 * batch-invariant decode relies on it: runtime/keys.c), every K type. */
static void test_qk_rows_exact(void **state)
{
    (void)state;
    tu_rng rng = {37};
    static const int ns[] = {1, 5, 16, 17, 40};
    int checked = 0;
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        if (!k->qk_rows_exact)
            continue;
        for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++) if (takes(k, dt))
        for (int ni = 0; ni < 5; ni++)
            for (int di = 0; di < NDIMS; di++) {
                const int n = ns[ni], d = dims[di], mr = k->mr;
                const int npan = (n + k->nr - 1) / k->nr, ld_k = d + 1;
                const int64_t ld_s = (int64_t)npan * k->nr;
                float *qp = falloc((size_t)d * mr), *qv = falloc((size_t)d * mr);
                fill_panel(k, &rng, d, mr, -1.0f, 1.0f, qv, qp);
                float *kk = falloc((size_t)n * ld_k);
                for (int i = 0; i < n * ld_k; i++)
                    kk[i] = tu_uniform(&rng, -1.0f, 1.0f);
                void *tk = typed(kk, (size_t)n * ld_k, (flat_dtype)dt);
                const flat_kv_src src = flat_kv_src_plain(tk, ld_k, (flat_dtype)dt);
                float *kp = falloc((size_t)npan * d * k->nr), *want = falloc((size_t)mr * ld_s);
                float *got = falloc((size_t)mr * ld_s);
                k->pack_k(n, d, &src, kp);
                k->qk(d, npan, qp, kp, want, ld_s);
                for (int m = 1; m <= mr; m++) {
                    k->qk_rows_exact(m, d, n, qp, &src, got, ld_s);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                            if (memcmp(&got[i * ld_s + j], &want[i * ld_s + j], sizeof(float)))
                                fail_msg("%s qk_rows_exact %s m=%d d=%d n=%d: S[%d][%d] = %.9g, "
                                         "qk %.9g", k->name, dt_name(dt), m, d, n, i, j,
                                         got[i * ld_s + j], want[i * ld_s + j]);
                    checked++;
                }
                free(got), free(want), free(kp);
                typed_free(tk, kk);
                free(kk), free(qv), free(qp);
            }
    }
    printf("test_ukernels: qk_rows_exact: %d calls bitwise qk's\n", checked);
}

/* qk_rows: one Q panel against K rows in place, for every row count m <= mr
 * and key counts around every vector width (16, 8, 4 keys per block in the
 * SIMD tables); K rows past n are NaN and the buffer ends right after the
 * last one read, so an over-read shows (NaN, or an ASan report); S gaps hold
 * poison that must survive. */
static void test_qk_rows(void **state)
{
    (void)state;
    tu_rng rng = {31};
    static const int ns[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100};
    const int nns = (int)(sizeof ns / sizeof ns[0]);
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        const int mr = k->mr;
        for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++) if (takes(k, dt))
        for (int m = 1; m <= mr; m++)
            for (int ni = 0; ni < nns; ni++)
                for (int di = 0; di < NDIMS; di++) {
                    if (tu_quick() && (m + ni + di) % 3)
                        continue;
                    const int n = ns[ni], d = dims[di], ld_k = d + (ni % 2) * 3;
                    const int64_t ld_s = n + 2;
                    float *qp = falloc((size_t)d * mr), *qv = falloc((size_t)d * mr);
                    fill_panel(k, &rng, d, mr, -1.0f, 1.0f, qv, qp);
                    const size_t nk = (size_t)(n + 1) * ld_k; /* one NaN row past n */
                    float *kk = falloc(nk);
                    for (size_t i = 0; i < nk; i++)
                        kk[i] = NAN;
                    for (int j = 0; j < n; j++)
                        for (int c = 0; c < d; c++)
                            kk[(size_t)j * ld_k + c] = tu_uniform(&rng, -1.0f, 1.0f);
                    void *tk = typed(kk, nk, (flat_dtype)dt);
                    const size_t nsz = (size_t)(m - 1) * ld_s + (n ? n : 1);
                    float *sc = falloc(nsz);
                    fill_poison(sc, nsz);
                    {
                        const flat_kv_src src = flat_kv_src_plain(tk, ld_k, (flat_dtype)dt);
                        k->qk_rows(m, d, n, qp, &src, sc, ld_s);
                    }
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double ref = 0, mag = 0;
                            for (int c = 0; c < d; c++) {
                                /* bf16 products: K is rounded too (bf16 K exactly) */
                                const float kc = kk[(size_t)j * ld_k + c];
                                double x = (double)qv[c * mr + i] *
                                           (bf16_products(k) ? bf16_round(kc) : kc);
                                ref += x, mag += fabs(x);
                            }
                            const float got = sc[i * ld_s + j];
                            if (!(fabs(got - ref) <= (d + 1) * U * mag))
                                fail_msg("%s qk_rows %s m=%d d=%d n=%d: S[%d][%d] = %.9g, want %.9g",
                                         k->name, dt_name(dt), m, d, n, i, j, got, ref);
                        }
                        for (int j = n; j < ld_s && i < m - 1; j++)
                            if (!is_poison(sc[i * ld_s + j]))
                                fail_msg("%s qk_rows m=%d d=%d n=%d: wrote S[%d][%d] past n",
                                         k->name, m, d, n, i, j);
                    }
                    if (n == 0 && !is_poison(sc[0]))
                        fail_msg("%s qk_rows n=0 wrote S", k->name);
                    free(sc);
                    typed_free(tk, kk);
                    free(kk);
                    free(qv);
                    free(qp);
                }
    }
}

/* row_max: exact max; -inf for n == 0 (without reading s); -inf columns. */
static void test_row_max(void **state)
{
    (void)state;
    tu_rng rng = {4};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        float *one = falloc(1);
        one[0] = INFINITY; /* a kernel reading s at n == 0 would return +inf */
        float r0 = k->row_max(0, one);
        if (!(isinf(r0) && r0 < 0))
            fail_msg("%s row_max(n=0) = %g, want -inf", k->name, r0);
        free(one);
        int ns[300], nn = 0;
        for (int n = 1; n <= 3 * k->nr + 5 && nn < 290; n++)
            ns[nn++] = n;
        ns[nn++] = 100, ns[nn++] = 1000;
        for (int ni = 0; ni < nn; ni++) {
            const int n = ns[ni];
            for (int trial = 0; trial < 4; trial++) {
                float *s = falloc((size_t)n);
                for (int j = 0; j < n; j++)
                    s[j] = tu_uniform(&rng, -50.0f, 50.0f);
                int pos = trial == 0 ? 0 : trial == 1 ? n - 1 : (int)(tu_next(&rng) % (unsigned)n);
                if (trial == 3) /* masked columns */
                    for (int j = 0; j < n; j++)
                        s[j] = (j % 3 == 1) ? -INFINITY : s[j];
                s[pos] = 60.0f + (float)trial;
                const float got = k->row_max(n, s);
                if (got != s[pos])
                    fail_msg("%s row_max n=%d max at %d: got %g want %g", k->name, n, pos, got,
                             s[pos]);
                /* all -inf (a fully masked row) */
                for (int j = 0; j < n; j++)
                    s[j] = -INFINITY;
                const float all = k->row_max(n, s);
                if (!(isinf(all) && all < 0))
                    fail_msg("%s row_max n=%d all -inf: got %g", k->name, n, all);
                free(s);
            }
        }
    }
}

/* Checks one exp2_row result against the contract; returns the max ulp. */
static double check_exp2_row(const flat_ukernels *k, int n, int width, const float *in,
                             const float *out, float sum, float m, const char *what)
{
    double maxulp = 0, ref_sum = 0;
    for (int j = 0; j < n; j++) {
        const float arg = in[j] - m; /* the argument as fp32 computes it */
        const float y = out[j];
        if (is_subnormal(y))
            fail_msg("%s exp2_row %s n=%d: s[%d] = %a is subnormal", k->name, what, n, j, y);
        if (arg < -126.0f) {
            if (y != 0.0f)
                fail_msg("%s exp2_row %s n=%d: exp2(%a) = %a, want exactly 0", k->name, what, n,
                         (double)arg, y);
        } else {
            const double r = exp2((double)arg);
            const double e = ulp_err(y, r);
            if (!(e <= 2.0))
                fail_msg("%s exp2_row %s n=%d: exp2(%.9g) = %.9g, want %.9g (%.2f ulp)",
                         k->name, what, n, (double)arg, y, r, e);
            maxulp = e > maxulp ? e : maxulp;
        }
        ref_sum += y;
    }
    for (int j = n; j < width; j++)
        if (tu_bits(out[j]) != 0)
            fail_msg("%s exp2_row %s n=%d width=%d: s[%d] = %a, want +0", k->name, what, n,
                     width, j, out[j]);
    if (!(fabs(sum - ref_sum) <= (n + 1) * U * ref_sum))
        fail_msg("%s exp2_row %s n=%d: returned sum %.9g, sum of results %.9g", k->name, what,
                 n, sum, ref_sum);
    return maxulp;
}

/* exp2_row: exp2(s - m), zero fill to width, sum; masked columns; inputs
 * that only fit after subtracting the max; results below 2^-126 are 0. */
static void test_exp2_row(void **state)
{
    (void)state;
    tu_rng rng = {5};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        double maxulp = 0;
        int ns[600], nn = 0;
        for (int n = 0; n <= 2 * k->nr + 3 && nn < 590; n++)
            ns[nn++] = n;
        ns[nn++] = 64, ns[nn++] = 100, ns[nn++] = 1000;
        for (int ni = 0; ni < nn; ni++) {
            const int n = ns[ni];
            const int rn = (n + k->nr - 1) / k->nr * k->nr;
            const int widths[] = {n, n + 1, rn, rn + k->nr};
            for (int wi = 0; wi < 4; wi++) {
                const int width = widths[wi];
                if (width == 0 || (wi > 0 && width == widths[wi - 1]))
                    continue;
                for (int kind = 0; kind < 4; kind++) {
                    float *in = falloc((size_t)width), *s = falloc((size_t)width);
                    float m = -INFINITY;
                    for (int j = 0; j < n; j++) {
                        switch (kind) {
                        case 0: /* 90..100: exp2 overflows unless m is subtracted */
                            in[j] = tu_uniform(&rng, 90.0f, 100.0f);
                            break;
                        case 1: /* crosses the flush threshold */
                            in[j] = tu_uniform(&rng, -140.0f, 0.0f);
                            break;
                        case 2: /* masked columns */
                            in[j] = (j % 2) ? -INFINITY : tu_uniform(&rng, -20.0f, 20.0f);
                            break;
                        default: /* m above the max (a running max) */
                            in[j] = tu_uniform(&rng, -30.0f, 5.0f);
                            break;
                        }
                        m = in[j] > m ? in[j] : m;
                    }
                    if (kind == 1 && n > 0)
                        in[n - 1] = 0.0f, m = m > 0.0f ? m : 0.0f; /* exp2(-126..) boundaries */
                    if (kind == 3 && n > 0)
                        m += 7.5f;
                    for (int j = n; j < width; j++)
                        in[j] = tu_from_bits(TU_POISON_BITS); /* not to be read */
                    memcpy(s, in, sizeof(float) * (size_t)width);
                    const float sum = k->exp2_row(n, width, s, m);
                    char what[32];
                    snprintf(what, sizeof what, "kind=%d width=%d", kind, width);
                    double e = check_exp2_row(k, n, width, in, s, sum, m, what);
                    maxulp = e > maxulp ? e : maxulp;
                    free(in);
                    free(s);
                }
            }
        }
        /* The flush threshold itself: s - m lands on and around -126. */
        {
            const int n = 2 * k->nr + 3;
            float *in = falloc((size_t)n), *s = falloc((size_t)n);
            for (int j = 0; j < n; j++)
                in[j] = -126.0f + (float)(j - n / 2) * 0x1p-10f;
            in[0] = 0.0f;
            memcpy(s, in, sizeof(float) * (size_t)n);
            const float sum = k->exp2_row(n, n, s, 0.0f);
            double e = check_exp2_row(k, n, n, in, s, sum, 0.0f, "threshold");
            maxulp = e > maxulp ? e : maxulp;
            free(in);
            free(s);
        }
        printf("  %-7s exp2_row: max error %.3f ulp\n", k->name, maxulp);
    }
}

/* The dense sweep of [-126, 0]: a uniform grid plus every float around the
 * points where range reductions switch (integers and half-integers). */
static float *sweep_points(size_t *count)
{
    const int quick = tu_quick();
    const size_t grid = quick ? (1u << 16) : (1u << 22);
    const int around = quick ? 64 : 512;
    const size_t nbreak = 2 * 126 + 1 + 6;
    float *x = falloc(grid + 1 + nbreak * 2 * (size_t)around);
    size_t n = 0;
    for (size_t i = 0; i <= grid; i++)
        x[n++] = (float)(-126.0 * (double)i / (double)grid);
    for (size_t b = 0; b < nbreak; b++) {
        float c = b < 2 * 126 + 1 ? -(float)b * 0.5f : -(float)(b - 2 * 126 - 1 + 1) * 1e-3f;
        float lo = c, hi = c;
        for (int j = 0; j < around; j++) {
            lo = nextafterf(lo, -INFINITY);
            hi = nextafterf(hi, INFINITY);
            if (lo >= -126.0f)
                x[n++] = lo;
            if (hi <= 0.0f)
                x[n++] = hi;
        }
    }
    *count = n;
    return x;
}

/* vexp2 against double exp2 over [-126, 0]: the contract's 2 ulp. */
static void test_vexp2_ulp(void **state)
{
    (void)state;
    size_t n;
    float *x = sweep_points(&n);
    float *y = falloc(n);
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        fill_poison(y, n);
        /* in chunks of odd length, so every tail path runs */
        for (size_t i = 0; i < n;) {
            int len = (int)((n - i) < 1021 ? (n - i) : 1021);
            k->vexp2(len, x + i, y + i);
            i += (size_t)len;
        }
        double maxulp = 0;
        float worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double r = exp2((double)x[i]);
            const double e = ulp_err(y[i], r);
            if (is_subnormal(y[i]))
                fail_msg("%s vexp2(%a) = %a is subnormal", k->name, (double)x[i], y[i]);
            if (!(e <= maxulp))
                maxulp = e, worst = x[i];
        }
        printf("  %-7s vexp2 vs double exp2 over [-126, 0] (%zu points): max %.3f ulp at x = %.9g\n",
               k->name, n, maxulp, (double)worst);
        if (!(maxulp <= 2.0))
            fail_msg("%s vexp2: max error %.3f ulp at x = %a > 2 ulp", k->name, maxulp,
                     (double)worst);
    }
    free(y);
    free(x);
}

/* vexp2 against SLEEF's exp2f (1.0-ulp): the measured difference. */
static void test_vexp2_sleef(void **state)
{
    (void)state;
#if defined(FLAT_TEST_HAVE_SLEEF)
    size_t n;
    float *x = sweep_points(&n);
    float *y = falloc(n);
    double sleef_max = 0;
    for (size_t i = 0; i < n; i++) {
        double e = ulp_err(Sleef_exp2f_u10(x[i]), exp2((double)x[i]));
        sleef_max = e > sleef_max ? e : sleef_max;
    }
    printf("  sleef   Sleef_exp2f_u10 vs double exp2: max %.3f ulp\n", sleef_max);
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        k->vexp2((int)n, x, y);
        int64_t maxd = 0;
        float worst = 0;
        for (size_t i = 0; i < n; i++) {
            const float s = Sleef_exp2f_u10(x[i]);
            int64_t d = (int64_t)tu_bits(y[i]) - (int64_t)tu_bits(s); /* both > 0 */
            d = d < 0 ? -d : d;
            if (d > maxd)
                maxd = d, worst = x[i];
        }
        printf("  %-7s vexp2 vs Sleef_exp2f_u10: max difference %lld ulp (x = %.9g)\n", k->name,
               (long long)maxd, (double)worst);
        /* within 2 ulp of exact and SLEEF within 1: at most 3 apart */
        if (maxd > 3)
            fail_msg("%s vexp2 differs from SLEEF by %lld ulp at x = %a", k->name,
                     (long long)maxd, (double)worst);
    }
    free(y);
    free(x);
#else
    printf("  SLEEF not found at build time: no SLEEF comparison (install libsleef-dev)\n");
#endif
}

/* vexp2: every length (tails), flushing below -126, -inf, exact extents. */
static void test_vexp2_edges(void **state)
{
    (void)state;
    tu_rng rng = {6};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        for (int n = 1; n <= 67; n++) {
            float *x = falloc((size_t)n), *y = falloc((size_t)n + 3);
            for (int j = 0; j < n; j++)
                x[j] = tu_uniform(&rng, -200.0f, 0.0f);
            x[n - 1] = -INFINITY;
            if (n > 1)
                x[n / 2] = -126.0f;
            fill_poison(y, (size_t)n + 3);
            k->vexp2(n, x, y);
            for (int j = 0; j < n; j++) {
                if (is_subnormal(y[j]))
                    fail_msg("%s vexp2(%a) = %a is subnormal", k->name, (double)x[j], y[j]);
                if (x[j] < -126.0f) {
                    if (tu_bits(y[j]) != 0)
                        fail_msg("%s vexp2(%a) = %a, want +0", k->name, (double)x[j], y[j]);
                } else if (!(ulp_err(y[j], exp2((double)x[j])) <= 2.0))
                    fail_msg("%s vexp2(%a) = %a, want %a", k->name, (double)x[j], y[j],
                             exp2((double)x[j]));
            }
            for (int j = n; j < n + 3; j++)
                if (!is_poison(y[j]))
                    fail_msg("%s vexp2 n=%d wrote y[%d]", k->name, n, j);
            free(x);
            free(y);
        }
    }
}

/* One pv call on fresh operands, checked; `use_alpha` selects the alpha form. */
static void run_pv(const flat_ukernels *k, tu_rng *rng, int m, int n, int dv, int use_alpha,
                   flat_dtype dt)
{
    const int64_t ld_p = n + 3, ld_v = dv + 5, ld_o = dv + 2;
    const size_t np = (size_t)m * ld_p, nv = (size_t)(n + 2) * ld_v;
    const size_t no = (size_t)(m - 1) * ld_o + dv;
    float *p = falloc(np), *v = falloc(nv), *o = falloc(no), *o0 = falloc(no);
    float *alpha = use_alpha ? falloc((size_t)m) : NULL;
    /* P columns j >= n and V rows j >= n are NaN: pv must not read them. */
    for (size_t i = 0; i < np; i++)
        p[i] = NAN;
    for (size_t i = 0; i < nv; i++)
        v[i] = NAN;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            p[i * ld_p + j] = tu_uniform(rng, 0.0f, 1.0f);
    for (int j = 0; j < n; j++)
        for (int c = 0; c < dv; c++)
            v[j * ld_v + c] = tu_uniform(rng, -1.0f, 1.0f);
    fill_poison(o, no);
    for (int i = 0; i < m; i++)
        for (int c = 0; c < dv; c++)
            /* without alpha, O is write-only: NaN there must not leak */
            o[i * ld_o + c] = use_alpha ? tu_uniform(rng, -1.0f, 1.0f) : NAN;
    if (alpha)
        for (int i = 0; i < m; i++)
            alpha[i] = i % 4 == 0 ? 0.0f : i % 4 == 1 ? 1.0f : tu_uniform(rng, 0.0f, 1.0f);
    memcpy(o0, o, no * sizeof(float));
    void *tv = typed(v, nv, dt);
    const flat_kv_src vsrc = flat_kv_src_plain(tv, ld_v, dt);
    k->pv(m, n, dv, p, ld_p, &vsrc, o, ld_o, alpha);
    /* The contract's order: the same call split at key h (the rest with
     * a = 1) gives bitwise the same O (paged K/V split calls at pages). */
    if (n >= 2 && !bf16_products(k)) { /* bf16 products pair keys: ukernel.h */
        float *o2 = falloc(no), *ones = falloc((size_t)m);
        memcpy(o2, o0, no * sizeof(float));
        for (int i = 0; i < m; i++)
            ones[i] = 1.0f;
        const int h = n / 2 + n % 3;
        const flat_kv_src vrest = flat_kv_src_rows(&vsrc, h);
        k->pv(m, h, dv, p, ld_p, &vsrc, o2, ld_o, alpha);
        k->pv(m, n - h, dv, p + h, ld_p, &vrest, o2, ld_o, ones);
        if (memcmp(o, o2, no * sizeof(float)) != 0)
            fail_msg("%s pv %s m=%d n=%d dv=%d: split at key %d is not bitwise the same",
                     k->name, dt_name(dt), m, n, dv, h);
        free(ones);
        free(o2);
    }
    typed_free(tv, v);
    for (int i = 0; i < m; i++) {
        for (int c = 0; c < dv; c++) {
            double ref = 0, mag = 0;
            if (alpha) {
                ref = (double)alpha[i] * o0[i * ld_o + c];
                mag = fabs(ref);
            }
            double terms = 0;
            for (int j = 0; j < n; j++) {
                double x = (double)p[i * ld_p + j] * v[j * ld_v + c];
                ref += x, mag += fabs(x), terms += fabs(x);
            }
            /* bf16 products: P and V each rounded by at most 2^-8 (bf16's unit
             * roundoff: 8 significant bits), so each term by 2^-7 */
            const double tol = (n + 2) * U * mag + (bf16_products(k) ? 0x1p-7 * terms : 0.0);
            const float got = o[i * ld_o + c];
            if (!(fabs(got - ref) <= tol))
                fail_msg("%s pv %s m=%d n=%d dv=%d alpha=%s: O[%d][%d] = %.9g, want %.9g (tol %.3g)",
                         k->name, dt_name(dt), m, n, dv, alpha ? "yes" : "NULL", i, c, got, ref, tol);
        }
        for (int c = dv; c < ld_o && i < m - 1; c++)
            if (!is_poison(o[i * ld_o + c]))
                fail_msg("%s pv m=%d n=%d dv=%d: wrote the gap O[%d][%d]", k->name, m, n, dv, i,
                         c);
    }
    free(alpha);
    free(o0);
    free(o);
    free(v);
    free(p);
}

/* pv: O = diag(alpha) O + P V over the edge matrix of pv_mr and nr. */
static void test_pv(void **state)
{
    (void)state;
    tu_rng rng = {7};
    const int quick = tu_quick();
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        int ns[16], nn = 0;
        ns[nn++] = 0, ns[nn++] = 1, ns[nn++] = 7;
        int e[8], ne = edge_ns(k->nr, e);
        for (int i = 0; i < ne; i++)
            if (e[i] != 1 && e[i] != 7)
                ns[nn++] = e[i];
        ns[nn++] = 64;
        for (int m = 1; m <= 2 * k->pv_mr + 1; m++)
            for (int ni = 0; ni < nn; ni++)
                for (int di = 0; di < NDIMS; di++) {
                    if (quick && m % k->pv_mr > 1 && m != k->pv_mr - 1 && di % 2)
                        continue;
                    for (int a = 0; a < 2; a++)
                        for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++)
                            if (takes(k, dt) && (dt == FLAT_F32 || (m + ni + di + a) % 3 == 0))
                                run_pv(k, &rng, m, ns[ni], dims[di], a, (flat_dtype)dt);
                }
    }
}

/* pv over key counts around 256 and 512 (chunk boundaries a kernel may
 * have, such as avx512_bf16's P conversion chunk) for full and partial row
 * groups, with a column tail. */
static void test_pv_long(void **state)
{
    (void)state;
    tu_rng rng = {71};
    static const int ns[] = {255, 256, 257, 513};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        const int ms[] = {k->pv_mr, k->pv_mr + 3};
        for (int mi = 0; mi < 2; mi++)
            for (int ni = 0; ni < 4; ni++)
                for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++)
                    if (takes(k, dt))
                        run_pv(k, &rng, ms[mi], ns[ni], (ni + dt) % 2 ? 64 : 33, (ni + mi) % 2,
                               (flat_dtype)dt);
    }
}

/* kernels/convert.h against exhaustive properties: every f16 and bf16 value
 * converts to f32 and back unchanged (NaNs stay NaN); every midpoint between
 * two neighbouring finite f16 (bf16) values rounds to the even one, and the
 * floats just beside it to the nearer; f16 overflows to inf from 65520. */
static void test_conversions(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = flat_f16_to_f32((uint16_t)h), g = flat_bf16_to_f32((uint16_t)h);
        uint16_t hf = flat_f32_to_f16(f), hg = flat_f32_to_bf16(g);
        if (isnan(f) ? !isnan(flat_f16_to_f32(hf)) : hf != h)
            fail_msg("f16 %04x -> %a -> %04x", h, f, hf);
        if (isnan(g) ? !isnan(flat_bf16_to_f32(hg)) : hg != h)
            fail_msg("bf16 %04x -> %a -> %04x", h, g, hg);
    }
    for (int type = 0; type < 2; type++)
        for (uint32_t h = 0; h < 0x7bff + (uint32_t)type * 0x0380; h++) { /* to the largest finite */
            float a = type ? flat_bf16_to_f32((uint16_t)h) : flat_f16_to_f32((uint16_t)h);
            float b = type ? flat_bf16_to_f32((uint16_t)(h + 1)) : flat_f16_to_f32((uint16_t)(h + 1));
            float mid = (float)(((double)a + b) / 2); /* exact: one more bit than the type */
            uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            uint16_t got = type ? flat_f32_to_bf16(mid) : flat_f32_to_f16(mid);
            uint16_t below = type ? flat_f32_to_bf16(nextafterf(mid, 0)) : flat_f32_to_f16(nextafterf(mid, 0));
            uint16_t above = type ? flat_f32_to_bf16(nextafterf(mid, INFINITY))
                                  : flat_f32_to_f16(nextafterf(mid, INFINITY));
            if (got != even || below != h || above != h + 1)
                fail_msg("%s rounding between %04x and %04x: mid %04x below %04x above %04x",
                         type ? "bf16" : "f16", h, h + 1, got, below, above);
        }
    assert_int_equal(flat_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(flat_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(flat_f32_to_f16(-1e9f), 0xfc00);
    assert_int_equal(flat_f32_to_bf16(INFINITY), 0x7f80);
}

/* store_row: scale * x rounded once to the type, bit for bit as convert.h,
 * over ties, subnormals, overflow, NaN and inf; nothing past n written. */
static void test_store_row(void **state)
{
    (void)state;
    tu_rng rng = {41};
    static const int ns[] = {1, 7, 8, 15, 16, 17, 33, 100};
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        for (int dt = FLAT_F32; dt <= FLAT_BF16; dt++) if (takes(k, dt))
        for (int ni = 0; ni < 8; ni++) {
            const int n = ns[ni];
            float *x = falloc((size_t)n);
            for (int c = 0; c < n; c++) {
                switch (c % 8) {
                case 0: x[c] = tu_uniform(&rng, -4.0f, 4.0f); break;
                case 1: x[c] = 1.0f + 0x1p-11f; break;   /* an f16 tie */
                case 2: x[c] = 1.0f + 0x1p-8f; break;    /* a bf16 tie */
                case 3: x[c] = 3e-6f * tu_uniform(&rng, -1.0f, 1.0f); break; /* f16 subnormal */
                case 4: x[c] = 7e4f; break;              /* f16 overflow */
                case 5: x[c] = c % 16 == 5 ? NAN : -INFINITY; break;
                case 6: x[c] = 0x1p-130f; break;         /* f32 subnormal */
                default: x[c] = tu_uniform(&rng, -1e3f, 1e3f); break;
                }
            }
            const float scale = ni % 2 ? 1.0f : tu_uniform(&rng, 0.1f, 2.0f);
            const size_t size = (size_t)flat_dtype_size((flat_dtype)dt);
            unsigned char *y = malloc((size_t)(n + 2) * size), *want = malloc((size_t)n * size);
            memset(y, 0xa5, (size_t)(n + 2) * size);
            for (int c = 0; c < n; c++)
                flat_store_elem(want, c, scale * x[c], (flat_dtype)dt);
            k->store_row(n, x, scale, (flat_dtype)dt, y);
            for (int c = 0; c < n; c++) {
                float a = flat_load_elem(y, c, (flat_dtype)dt), b = flat_load_elem(want, c, (flat_dtype)dt);
                if (memcmp(y + c * size, want + c * size, size) != 0 && !(isnan(a) && isnan(b)))
                    fail_msg("%s store_row %s n=%d: y[%d] = %a, want %a (x %a, scale %a)",
                             k->name, dt_name(dt), n, c, a, b, x[c], scale);
            }
            for (size_t i = (size_t)n * size; i < (size_t)(n + 2) * size; i++)
                if (y[i] != 0xa5)
                    fail_msg("%s store_row %s n=%d wrote past n", k->name, dt_name(dt), n);
            free(want);
            free(y);
            free(x);
        }
    }
}

/*
 * The kernels composed the way the runtime composes them (one FLAT row
 * block): pack_q with scale*log2(e), pack_k, qk, row_max, exp2_row, pv, then
 * divide by the sum; compared with the reference attention of the same rows.
 */
static void test_pipeline(void **state)
{
    (void)state;
    tu_rng rng = {8};
    const double log2e = 1.4426950408889634;
    for (int t = 0; t < ntables; t++) {
        const flat_ukernels *k = tables[t];
        const int ms[] = {1, k->mr, k->mr + 1}, nkeys[] = {1, k->nr + 1, 200};
        const int ds[] = {7, 64, 80};
        for (int mi = 0; mi < 3; mi++)
            for (int ni = 0; ni < 3; ni++)
                for (int di = 0; di < 3; di++) {
                    const int m = ms[mi], n = nkeys[ni], d = ds[di], dv = d == 64 ? 96 : d;
                    tu_tensor q, kk, vv;
                    tu_tensor_alloc(&q, TU_BHSD, 1, 1, m, d);
                    tu_tensor_alloc(&kk, TU_PADDED, 1, 1, n, d);
                    tu_tensor_alloc(&vv, TU_PADDED, 1, 1, n, dv);
                    tu_tensor_fill(&q, &rng, 1.0f);
                    tu_tensor_fill(&kk, &rng, 1.0f);
                    tu_tensor_fill(&vv, &rng, 1.0f);
                    double *ref = malloc(sizeof(double) * (size_t)m * dv);
                    ref_attention(&q.t, &kk.t, &vv.t, NULL, ref, NULL, NULL);

                    const float scale = (float)(1.0 / sqrt((double)d) * log2e);
                    const int mp = (m + k->mr - 1) / k->mr, npan = (n + k->nr - 1) / k->nr;
                    const int64_t ld_s = (int64_t)npan * k->nr;
                    float *qp = falloc((size_t)mp * d * k->mr);
                    float *kp = falloc((size_t)npan * d * k->nr);
                    float *s = falloc((size_t)mp * k->mr * ld_s);
                    float *o = falloc((size_t)m * dv);
                    const float **rows = malloc(sizeof(float *) * (size_t)m);
                    for (int i = 0; i < m; i++)
                        rows[i] = ref_row(&q.t, 0, 0, i);
                    k->pack_q(m, d, (const void *const *)rows, FLAT_F32, scale, qp);
                    const flat_kv_src ksrc =
                        flat_kv_src_plain(ref_row(&kk.t, 0, 0, 0), kk.t.stride_seq, FLAT_F32);
                    const flat_kv_src vsrc =
                        flat_kv_src_plain(ref_row(&vv.t, 0, 0, 0), vv.t.stride_seq, FLAT_F32);
                    k->pack_k(n, d, &ksrc, kp);
                    float *sums = falloc((size_t)m);
                    for (int p = 0; p < mp; p++)
                        k->qk(d, npan, qp + (size_t)p * d * k->mr, kp,
                              s + (size_t)p * k->mr * ld_s, ld_s);
                    for (int i = 0; i < m; i++) {
                        float mx = k->row_max(n, s + i * ld_s);
                        sums[i] = k->exp2_row(n, (int)ld_s, s + i * ld_s, mx);
                    }
                    k->pv(m, n, dv, s, ld_s, &vsrc, o, dv, NULL);
                    for (int i = 0; i < m; i++) {
                        double num = 0, den = 0;
                        for (int c = 0; c < dv; c++) {
                            double x = o[i * dv + c] / sums[i] - ref[i * dv + c];
                            num += x * x, den += ref[i * dv + c] * ref[i * dv + c];
                        }
                        /* bf16 products: test_dtypes' bound for such tables */
                        if (!(sqrt(num) <= (bf16_products(k) ? 1e-2 : 1e-5) * sqrt(den)))
                            fail_msg("%s pipeline m=%d n=%d d=%d dv=%d: row %d rel err %.3g",
                                     k->name, m, n, d, dv, i, sqrt(num / den));
                    }
                    free(sums);
                    free(rows);
                    free(o);
                    free(s);
                    free(kp);
                    free(qp);
                    free(ref);
                    tu_tensor_free(&q);
                    tu_tensor_free(&kk);
                    tu_tensor_free(&vv);
                }
    }
}

static void test_required_isas(void **state)
{
    (void)state;
    assert_int_equal(tu_check_required_isas("test_ukernels"), 0);
}

int main(void)
{
    const char *filter = getenv("FLAT_TEST_FILTER"); /* cmocka's glob, for debugging */
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    ntables = tu_runnable_tables("test_ukernels", tables, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_sane),  cmocka_unit_test(test_pack_q),
        cmocka_unit_test(test_pack_k),       cmocka_unit_test(test_qk),
        cmocka_unit_test(test_qk_rows),      cmocka_unit_test(test_qk_rows_exact),
        cmocka_unit_test(test_conversions),  cmocka_unit_test(test_store_row),
        cmocka_unit_test(test_row_max),      cmocka_unit_test(test_exp2_row),
        cmocka_unit_test(test_vexp2_ulp),    cmocka_unit_test(test_vexp2_sleef),
        cmocka_unit_test(test_vexp2_edges),  cmocka_unit_test(test_pv),
        cmocka_unit_test(test_pv_long),
        cmocka_unit_test(test_pipeline),     cmocka_unit_test(test_required_isas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
