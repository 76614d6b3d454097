/*
 * Attention on quantized K/V (FLAT_I8, FLAT_F8E4M3, FLAT_I4 with f32 or f16
 * scales) against the double reference computed on the dequantized values
 * (each element fl32(code * scale), decoded here independently of
 * kernels/convert.h), at the fp32 bound (1e-5 relative per row; the
 * avx512_bf16 table at its own bound): every table, every dataflow (AUTO,
 * FLAT, FLASH, DECODE, a split-KV decode), plans, the score rules, K/V
 * layouts BHSD, BSHD and padded rows, and every scale granularity: groups of
 * 32 per token, per token (group = dim), per channel (group 1, seq stride 0),
 * per tensor (all strides 0), and in the paged call (NHD and HND pools, page
 * sizes 7 and 16, shuffled pages, ragged q) per-token groups and per page
 * (token stride 0). Codes are random over the whole code range (F8E4M3: every
 * non-NaN byte), so every decode path sees every code.
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
#include "reference.h"
#include "quantutil.h"
#include "testutil.h"

static const flat_ukernels *tables[8];
static int ntables;
static double worst[3]; /* fp32, bf16, int8 products (tu_products) */
static long calls;

enum { G32, GTOKEN, GCHANNEL, GTENSOR, GPAGE };
static const char *gran_name[] = {"group32", "token", "channel", "tensor", "page"};

/* ---- one quantized K or V: codes and scales in flat's views ---- */
typedef struct {
    void *codes, *scales;
    flat_tensor t, s; /* the code view and the scale view */
    int32_t group;
} qkv;

/* Scale view strides of granularity g over [B, H, S, D / group]. */
static void scale_view(int g, int64_t B, int64_t H, int64_t S, int64_t D, flat_dtype st,
                       qkv *x, int64_t *nscales)
{
    int32_t group = g == G32 ? 32 : g == GCHANNEL ? 1 : (int32_t)D;
    int64_t ng = D / group;
    flat_tensor s = {NULL, st, B, H, S, ng, H * S * ng, S * ng, ng};
    if (g == GCHANNEL)
        s.stride_seq = 0, s.stride_head = ng, s.stride_batch = H * ng;
    if (g == GTENSOR)
        s.stride_batch = s.stride_head = s.stride_seq = 0;
    *nscales = (B - 1) * s.stride_batch + (H - 1) * s.stride_head + (S - 1) * s.stride_seq + ng;
    x->s = s;
    x->group = group;
}

static void fill_scales(qkv *x, int64_t n, flat_dtype t, tu_rng *r)
{
    x->scales = malloc((size_t)n * 4);
    x->s.data = x->scales;
    for (int64_t i = 0; i < n; i++)
        qu_set_scale(x->scales, x->s.dtype, i, qu_random_scale(r, t));
}

/* Element (b, h, s, c) of a quantized view as the reference sees it. */
static float deq(const qkv *x, int64_t b, int64_t h, int64_t s, int64_t c)
{
    const flat_tensor *t = &x->t, *sc = &x->s;
    float code = qu_code_value(t->data, t->dtype,
                            b * t->stride_batch + h * t->stride_head + s * t->stride_seq + c);
    return code * qu_scale_value(sc->data, sc->dtype,
                              b * sc->stride_batch + sc->stride_head * h + sc->stride_seq * s +
                                  c / x->group);
}

/* Layouts of the code view: 0 BHSD, 1 BSHD, 2 BHSD with 2 padding elements a row. */
static void make_qkv(int layout, int g, flat_dtype t, flat_dtype st, int64_t B, int64_t H,
                     int64_t S, int64_t D, tu_rng *r, qkv *x)
{
    int64_t row = D + (layout == 2 ? 2 : 0);
    flat_tensor v = {NULL, t, B, H, S, D, H * S * row, S * row, row};
    if (layout == 1)
        v.stride_seq = H * D, v.stride_head = D, v.stride_batch = S * H * D;
    int64_t n = B * H * S * row;
    x->codes = calloc((size_t)n, 1);
    v.data = x->codes;
    for (int64_t i = 0; i < n; i++)
        qu_set_code(x->codes, t, i, qu_random_code(r, t));
    x->t = v;
    int64_t ns;
    scale_view(g, B, H, S, D, st, x, &ns);
    fill_scales(x, ns, t, r);
}

static void free_qkv(qkv *x)
{
    free(x->codes);
    free(x->scales);
}

/* ---- checking ---- */
static void check_rows(const char *what, const flat_ukernels *t, flat_dtype kv, const float *out,
                       const double *ref, const int64_t *seen, int64_t rows, int64_t dv)
{
    for (int64_t r = 0; r < rows; r++) {
        double err = 0, norm = 0;
        for (int64_t c = 0; c < dv; c++) {
            double d = out[r * dv + c] - ref[r * dv + c];
            err += d * d, norm += ref[r * dv + c] * ref[r * dv + c];
        }
        if (seen[r] == 0) {
            if (err != 0)
                fail_msg("%s: row %lld sees no key but is not 0", what, (long long)r);
            continue;
        }
        double rel = sqrt(err / norm);
        const int pr = tu_products(t, kv);
        worst[pr] = rel > worst[pr] ? rel : worst[pr];
        if (!(rel <= tu_row_bound(t, kv)))
            fail_msg("%s: row %lld relative error %.3g > %g", what, (long long)r, rel,
                     tu_row_bound(t, kv));
    }
    calls++;
}

/* The dequantized [B, H, S, D] f32 tensor of a quantized one. */
static float *dequantized(const qkv *x, flat_tensor *out)
{
    const flat_tensor *t = &x->t;
    float *f = malloc(sizeof(float) * (size_t)(t->batch * t->heads * t->seq * t->dim));
    *out = flat_tensor_bhsd(f, FLAT_F32, t->batch, t->heads, t->seq, t->dim);
    for (int64_t b = 0; b < t->batch; b++)
        for (int64_t h = 0; h < t->heads; h++)
            for (int64_t s = 0; s < t->seq; s++)
                for (int64_t c = 0; c < t->dim; c++)
                    ref_row(out, b, h, s)[c] = deq(x, b, h, s, c);
    return f;
}

typedef struct {
    int64_t B, Hq, Hkv, Nq, Nk, D, Dv;
    int causal, rules, threads;
} shape;

/* One contiguous problem over every table and dataflow (and a plan). */
static void run_contiguous(const shape *c, flat_dtype t, int kg, int vg, flat_dtype st, int layout)
{
    tu_rng rng = {(uint64_t)(c->Nk * 131 + t * 17 + kg * 5 + vg + layout * 1000)};
    qkv k, v;
    make_qkv(layout, kg, t, st, c->B, c->Hkv, c->Nk, c->D, &rng, &k);
    make_qkv(layout, vg, t, st == FLAT_F16 ? FLAT_F32 : FLAT_F16, c->B, c->Hkv, c->Nk, c->Dv,
             &rng, &v);
    flat_tensor kf, vf;
    float *kd = dequantized(&k, &kf), *vd = dequantized(&v, &vf);
    const int64_t rows = c->B * c->Hq * c->Nq;
    float *qb = malloc(sizeof(float) * (size_t)(rows * c->D));
    float *ob = malloc(sizeof(float) * (size_t)(rows * c->Dv));
    for (int64_t i = 0; i < rows * c->D; i++)
        qb[i] = tu_uniform(&rng, -1.0f, 1.0f);
    flat_tensor q = flat_tensor_bhsd(qb, FLAT_F32, c->B, c->Hq, c->Nq, c->D);
    flat_tensor o = flat_tensor_bhsd(ob, FLAT_F32, c->B, c->Hq, c->Nq, c->Dv);
    float sinks[16], slopes[16];
    for (int h = 0; h < 16; h++)
        sinks[h] = 0.25f * (float)(h % 3), slopes[h] = 0.05f * (float)(h + 1);
    flat_options base = {0};
    base.causal = c->causal;
    if (c->rules) {
        base.window_left = (int32_t)(c->Nk / 3), base.softcap = 5.0f;
        base.sinks = sinks, base.alibi_slopes = slopes;
    }
    double *ref = malloc(sizeof(double) * (size_t)(rows * c->Dv));
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)rows);
    ref_attention(&q, &kf, &vf, &base, ref, NULL, seen);
    flat_kv_quant kq = {k.s, v.s, k.group, v.group, {0, 0}};
    char what[160];
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE + 1; df++) {
            flat_options opt = base;
            opt.isa = tables[ti]->isa;
            opt.dataflow = df > FLAT_DATAFLOW_DECODE ? FLAT_DATAFLOW_AUTO : (flat_dataflow)df;
            opt.num_threads = c->threads;
            opt.kv_quant = &kq;
            snprintf(what, sizeof what, "%s K %s V %s scales %s layout %d %s df=%d%s Nq=%lld Nk=%lld",
                     qu_type_name(t), gran_name[kg], gran_name[vg], st == FLAT_F16 ? "f16" : "f32",
                     layout, tables[ti]->name, df, df > FLAT_DATAFLOW_DECODE ? " (plan)" : "",
                     (long long)c->Nq, (long long)c->Nk);
            for (int64_t i = 0; i < rows * c->Dv; i++)
                ob[i] = NAN;
            flat_status s;
            if (df > FLAT_DATAFLOW_DECODE) {
                flat_plan *plan = NULL;
                s = flat_plan_create(&q, &k.t, &v.t, &o, &opt, &plan);
                if (s == FLAT_OK)
                    s = flat_plan_execute(plan, NULL);
                flat_plan_destroy(plan);
            } else {
                s = flat_attention(&q, &k.t, &v.t, &o, &opt);
            }
            if (!(tables[ti]->dtypes & FLAT_DTYPE_BIT(t))) { /* a table without the type refuses */
                if (s != FLAT_ERROR_UNSUPPORTED)
                    fail_msg("%s: a table without the type must refuse", what);
                continue;
            }
            if (s != FLAT_OK)
                fail_msg("%s: %s: %s", what, flat_status_string(s), flat_last_error());
            check_rows(what, tables[ti], t, ob, ref, seen, rows, c->Dv);
        }
    free(ref), free(seen), free(qb), free(ob), free(kd), free(vd);
    free_qkv(&k), free_qkv(&v);
}

static const flat_dtype types[3] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};

/* Every type x granularity pair x layout on a prefill-shaped and a
 * decode-shaped problem (the decode one long enough to split keys). */
static void test_contiguous(void **state)
{
    (void)state;
    const shape prefill = {2, 4, 2, 37, 83, 64, 64, 1, 0, 2};
    const shape decode = {1, 4, 1, 1, 1500, 64, 32, 0, 0, 2};
    const shape gqa = {2, 8, 2, 3, 300, 128, 128, 1, 1, 1};
    const int grans[5][2] = {{G32, G32}, {GTOKEN, GTOKEN}, {GCHANNEL, G32}, {GTENSOR, GTENSOR},
                             {GCHANNEL, GTOKEN}};
    for (int ti = 0; ti < 3; ti++)
        for (int g = 0; g < 5; g++) {
            flat_dtype st = (g + ti) % 2 ? FLAT_F16 : FLAT_F32;
            run_contiguous(&prefill, types[ti], grans[g][0], grans[g][1], st, g % 3);
            run_contiguous(&decode, types[ti], grans[g][0], grans[g][1], st, (g + 1) % 3);
            if (g == 0 || g == 2)
                run_contiguous(&gqa, types[ti], grans[g][0], grans[g][1], st, (g + 2) % 3);
        }
    printf("test_quant: %ld calls; worst row error %.3g (fp32 products), %.3g (bf16 products), "
           "%.3g (int8 products)\n",
           calls, worst[0], worst[1], worst[2]);
}

/* Every rule of flat_kv_quant and the quantized types: the status, the
 * message naming the field, out and lse untouched. */
static void test_validation(void **state)
{
    (void)state;
    static int8_t kc[2 * 8 * 66], vc[2 * 8 * 66];
    static float ks[2 * 8 * 2], vs[2 * 8 * 2], qb[2 * 64], ob[2 * 64 + 16], lse[2];
    static float kf[2 * 8 * 64];
    flat_tensor q = flat_tensor_bhsd(qb, FLAT_F32, 1, 2, 1, 64);
    flat_tensor o = flat_tensor_bhsd(ob, FLAT_F32, 1, 2, 1, 64);
    char want[96];
#define CHECK(setup, text)                                                                    \
    do {                                                                                      \
        flat_tensor k = flat_tensor_bhsd(kc, FLAT_I8, 1, 2, 8, 64);                           \
        flat_tensor v = flat_tensor_bhsd(vc, FLAT_I8, 1, 2, 8, 64);                           \
        flat_kv_quant kq = {flat_tensor_bhsd(ks, FLAT_F32, 1, 2, 8, 2),                       \
                            flat_tensor_bhsd(vs, FLAT_F16, 1, 2, 8, 2), 32, 32, {0, 0}};      \
        flat_options opt = {0};                                                               \
        opt.kv_quant = &kq;                                                                   \
        flat_tensor qq = q, oo = o;                                                           \
        setup;                                                                                \
        for (int i = 0; i < 2 * 64 + 16; i++)                                                 \
            ob[i] = 7.0f;                                                                     \
        lse[0] = lse[1] = 7.0f;                                                               \
        flat_status st = flat_attention(&qq, &k, &v, &oo, &opt);                              \
        snprintf(want, sizeof want, "%s", text);                                              \
        if (st != FLAT_ERROR_INVALID_ARGUMENT || !strstr(flat_last_error(), want))            \
            fail_msg("%s: got %s '%s'", want, flat_status_string(st), flat_last_error());     \
        for (int i = 0; i < 2 * 64 + 16; i++)                                                 \
            if (ob[i] != 7.0f)                                                                \
                fail_msg("%s: out written", want);                                            \
        if (lse[0] != 7.0f || lse[1] != 7.0f)                                                 \
            fail_msg("%s: lse written", want);                                                \
    } while (0)
    CHECK(opt.kv_quant = NULL, "opt.kv_quant is NULL (required for FLAT_I8");
    CHECK((opt.kv_quant = NULL, k.dtype = v.dtype = FLAT_I4), "opt.kv_quant is NULL (required for FLAT_I4");
    CHECK((k = flat_tensor_bhsd(kf, FLAT_F32, 1, 2, 8, 64), v = k), "opt.kv_quant must be NULL for an unquantized K/V");
    CHECK(kq.reserved[1] = 3, "opt.kv_quant->reserved[1] (3) must be 0");
    CHECK(kq.k_group = 0, "opt.kv_quant->k_group (0) must be >= 1 and divide the dim (64)");
    CHECK(kq.k_group = 3, "opt.kv_quant->k_group (3)");
    CHECK(kq.v_group = 128, "opt.kv_quant->v_group (128)");
    CHECK(kq.k_scale.data = NULL, "opt.kv_quant->k_scale.data is NULL");
    CHECK(kq.v_scale.dtype = FLAT_BF16, "opt.kv_quant->v_scale.dtype (2) must be FLAT_F32 or FLAT_F16");
    CHECK(kq.k_scale.seq = 7, "opt.kv_quant->k_scale.seq (7) must be 8");
    CHECK(kq.k_scale.dim = 4, "opt.kv_quant->k_scale.dim (4) must be 2");
    CHECK(kq.v_scale.heads = 1, "opt.kv_quant->v_scale.heads (1) must be 2");
    CHECK(kq.k_scale.stride_seq = -1, "opt.kv_quant->k_scale.stride_seq (-1) must be >= 0");
    CHECK(kq.k_scale.data = ob + 8, "out overlaps opt.kv_quant->k_scale");
    CHECK((opt.lse = lse, kq.v_scale.data = lse), "opt.lse overlaps opt.kv_quant->v_scale");
    CHECK((k.dtype = v.dtype = FLAT_I4, k.stride_seq = 65, k.stride_head = 8 * 66),
          "k.stride_seq (65) must be even for FLAT_I4");
    CHECK((k.dtype = v.dtype = FLAT_I4, v.dim = 63, oo.dim = 63), "v.dim (63) must be even");
    CHECK((qq.dtype = FLAT_I8, oo.dtype = FLAT_I8), "q.dtype (3) must be FLAT_F32, FLAT_F16 or FLAT_BF16");
    CHECK(k.dtype = v.dtype = (flat_dtype)6, "k.dtype (6) is not a flat_dtype value");
    /* F8E4M3 without kv_quant is valid: scale 1 */
    o.dim = 64;
    flat_tensor k8 = flat_tensor_bhsd(kc, FLAT_F8E4M3, 1, 2, 8, 64);
    flat_tensor v8 = flat_tensor_bhsd(vc, FLAT_F8E4M3, 1, 2, 8, 64);
    memset(kc, 0x38, sizeof kc), memset(vc, 0x38, sizeof vc); /* 1.0 */
    assert_int_equal(flat_attention(&q, &k8, &v8, &o, NULL), FLAT_OK);
    assert_true(ob[0] == 1.0f && ob[127] == 1.0f);
#undef CHECK
}

int main(void)
{
    ntables = tu_runnable_tables("test_quant", tables, 8);
    if (tu_check_required_isas("test_quant"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_contiguous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
