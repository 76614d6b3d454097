/*
 * flat_attention_paged on quantized pools (FLAT_I8, FLAT_F8E4M3, FLAT_I4)
 * with scale pools indexed [page, head, token in page, group] like the K/V
 * pools: per-token groups of 32, per page (token stride 0) and per page and
 * channel (group 1, token stride 0); vLLM's NHD and the HND layouts, page
 * sizes 7 and 16, pages shuffled in the pool, ragged q (q_offsets) and one
 * query row per sequence (decode), causal; every table and dataflow and a
 * plan. Each sequence is checked against the double reference on its
 * dequantized keys and values (fl32(code * scale)) at the fp32 bound.
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
#include "reference.h"
#include "testutil.h"

static const flat_ukernels *tables[8];
static int ntables;
static double worst[3]; /* fp32, bf16, int8 products (tu_products) */
static long calls;

enum { NHD = 0, HND = 1 };
enum { PER_TOKEN32, PER_PAGE, PER_PAGE_CHANNEL };
static const char *gran_name[] = {"token/32", "page", "page x channel"};

#define B 3
#define HQ 4
#define HKV 2
#define D 64
static const int32_t seq_lens[B] = {50, 17, 33};

typedef struct {
    uint8_t *codes;
    void *scales;
    int64_t sp, st, sh;      /* code strides (elements) */
    flat_tensor scale;       /* the scale pool view */
    int32_t group;
} qpool;

static void make_pool(qpool *x, flat_dtype t, flat_dtype sd, int layout, int gran, int64_t pages,
                      int64_t ps, tu_rng *r)
{
    x->sp = HKV * ps * D;
    x->st = layout == NHD ? HKV * D : D;
    x->sh = layout == NHD ? D : ps * D;
    int64_t n = pages * x->sp;
    x->codes = calloc((size_t)n, 1);
    for (int64_t i = 0; i < n; i++)
        qu_set_code(x->codes, t, i, qu_random_code(r, t));
    x->group = gran == PER_TOKEN32 ? 32 : gran == PER_PAGE ? D : 1;
    int64_t ng = D / x->group;
    /* [page, head, token, group]: token-major or head-major like the codes */
    flat_tensor s = {NULL, sd, pages, HKV, ps, ng, HKV * ps * ng,
                     layout == NHD ? ng : ps * ng, layout == NHD ? HKV * ng : ng};
    if (gran != PER_TOKEN32)
        s.stride_seq = 0;
    int64_t ns = pages * HKV * ps * ng;
    x->scales = malloc((size_t)ns * 4);
    for (int64_t i = 0; i < ns; i++)
        qu_set_scale(x->scales, sd, i, qu_random_scale(r, t));
    s.data = x->scales;
    x->scale = s;
}

/* Key (or value) token j of sequence b, head h, column c, dequantized. */
static float pool_value(const qpool *x, flat_dtype t, const int32_t *table, int64_t bt_stride,
                        int64_t ps, int b, int h, int64_t j, int c)
{
    int64_t page = table[b * bt_stride + j / ps], slot = j % ps;
    float code = qu_code_value(x->codes, t, page * x->sp + slot * x->st + h * x->sh + c);
    const flat_tensor *s = &x->scale;
    return code * qu_scale_value(s->data, s->dtype,
                                 page * s->stride_batch + h * s->stride_head +
                                     slot * s->stride_seq + c / x->group);
}

static void run_case(flat_dtype t, int layout, int gran, int64_t ps, int ragged, flat_dtype sd)
{
    tu_rng rng = {(uint64_t)(t * 1000 + layout * 100 + gran * 10 + ps + ragged)};
    int64_t per_seq = (seq_lens[0] + ps - 1) / ps, used = 0;
    for (int b = 0; b < B; b++) {
        int64_t np = (seq_lens[b] + ps - 1) / ps;
        per_seq = np > per_seq ? np : per_seq;
        used += np;
    }
    const int64_t pages = used + 2, bt_stride = per_seq + 1;
    int32_t *table = malloc(sizeof(int32_t) * (size_t)(B * bt_stride));
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)pages);
    for (int64_t i = 0; i < pages; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = pages - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_next(&rng) % (uint64_t)(i + 1));
        int32_t x = perm[i];
        perm[i] = perm[j], perm[j] = x;
    }
    int64_t next = 0;
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < bt_stride; i++)
            table[b * bt_stride + i] = i < (seq_lens[b] + ps - 1) / ps ? perm[next++] : -1;
    qpool k, v;
    make_pool(&k, t, sd, layout, gran, pages, ps, &rng);
    make_pool(&v, t, sd == FLAT_F16 ? FLAT_F32 : FLAT_F16, layout, gran == PER_PAGE_CHANNEL ? PER_TOKEN32 : gran,
              pages, ps, &rng);
    /* queries: ragged counts {3, 1, 5}, or one each (decode) */
    int32_t counts[B] = {3, 1, 5}, offsets[B + 1] = {0};
    for (int b = 0; b < B; b++)
        counts[b] = ragged ? counts[b] : 1, offsets[b + 1] = offsets[b] + counts[b];
    const int64_t nq = offsets[B];
    float *qb = malloc(sizeof(float) * (size_t)(nq * HQ * D));
    float *ob = malloc(sizeof(float) * (size_t)(nq * HQ * D));
    for (int64_t i = 0; i < nq * HQ * D; i++)
        qb[i] = tu_uniform(&rng, -1.0f, 1.0f);
    /* ragged: q [1, HQ, nq, D]; decode: q [B, HQ, 1, D]; the same memory either way */
    flat_tensor q = ragged ? flat_tensor_bhsd(qb, FLAT_F32, 1, HQ, nq, D)
                           : flat_tensor_bhsd(qb, FLAT_F32, B, HQ, 1, D);
    flat_tensor o = q;
    o.data = ob;
    flat_paged_kv kv = {t, k.codes, v.codes, pages, ps, HKV, D, D, k.sp, k.st, k.sh,
                        v.sp, v.st, v.sh, B, seq_lens, table, bt_stride, ragged ? offsets : NULL};
    flat_kv_quant kq = {k.scale, v.scale, k.group, v.group, {0, 0}};

    /* the reference, per sequence, on its dequantized K and V */
    double *ref = malloc(sizeof(double) * (size_t)(nq * HQ * D));
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)(nq * HQ));
    for (int b = 0; b < B; b++) {
        const int64_t n = seq_lens[b], c = counts[b];
        float *kd = malloc(sizeof(float) * (size_t)(HKV * n * D));
        float *vd = malloc(sizeof(float) * (size_t)(HKV * n * D));
        float *qs = malloc(sizeof(float) * (size_t)(HQ * c * D));
        for (int h = 0; h < HKV; h++)
            for (int64_t j = 0; j < n; j++)
                for (int x = 0; x < D; x++) {
                    kd[(h * n + j) * D + x] = pool_value(&k, t, table, bt_stride, ps, b, h, j, x);
                    vd[(h * n + j) * D + x] = pool_value(&v, t, table, bt_stride, ps, b, h, j, x);
                }
        for (int h = 0; h < HQ; h++)
            for (int64_t i = 0; i < c; i++)
                memcpy(qs + (h * c + i) * D, ref_row(&q, ragged ? 0 : b, h, ragged ? offsets[b] + i : i),
                       sizeof(float) * D);
        flat_tensor tq = flat_tensor_bhsd(qs, FLAT_F32, 1, HQ, c, D);
        flat_tensor tk = flat_tensor_bhsd(kd, FLAT_F32, 1, HKV, n, D);
        flat_tensor tv = flat_tensor_bhsd(vd, FLAT_F32, 1, HKV, n, D);
        flat_options ro = {0};
        ro.causal = 1;
        double *r = malloc(sizeof(double) * (size_t)(HQ * c * D));
        int64_t *sn = malloc(sizeof(int64_t) * (size_t)(HQ * c));
        ref_attention(&tq, &tk, &tv, &ro, r, NULL, sn);
        for (int h = 0; h < HQ; h++)
            for (int64_t i = 0; i < c; i++) {
                /* the row's place in out, as a flat index of rows of D */
                int64_t row = ragged ? h * nq + offsets[b] + i : (b * HQ + h);
                memcpy(ref + row * D, r + (h * c + i) * D, sizeof(double) * D);
                seen[row] = sn[h * c + i];
            }
        free(kd), free(vd), free(qs), free(r), free(sn);
    }
    char what[160];
    for (int ti = 0; ti < ntables; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE + 1; df++) {
            flat_options opt = {0};
            opt.causal = 1;
            opt.isa = tables[ti]->isa;
            opt.dataflow = df > FLAT_DATAFLOW_DECODE ? FLAT_DATAFLOW_AUTO : (flat_dataflow)df;
            opt.num_threads = 1 + df % 2;
            opt.kv_quant = &kq;
            snprintf(what, sizeof what, "paged %s %s %s page %lld %s %s df=%d", qu_type_name(t),
                     gran_name[gran], layout == NHD ? "NHD" : "HND", (long long)ps,
                     ragged ? "ragged" : "decode", tables[ti]->name, df);
            for (int64_t i = 0; i < nq * HQ * D; i++)
                ob[i] = NAN;
            flat_status s;
            if (df > FLAT_DATAFLOW_DECODE) {
                flat_plan *plan = NULL;
                s = flat_plan_create_paged(&q, &kv, &o, &opt, &plan);
                if (s == FLAT_OK)
                    s = flat_plan_execute(plan, NULL);
                flat_plan_destroy(plan);
            } else {
                s = flat_attention_paged(&q, &kv, &o, &opt);
            }
            if (s != FLAT_OK)
                fail_msg("%s: %s: %s", what, flat_status_string(s), flat_last_error());
            const double bound = tu_row_bound(tables[ti], t);
            for (int64_t r = 0; r < nq * HQ; r++) {
                double err = 0, norm = 0;
                for (int x = 0; x < D; x++) {
                    double e = ob[r * D + x] - ref[r * D + x];
                    err += e * e, norm += ref[r * D + x] * ref[r * D + x];
                }
                double rel = seen[r] ? sqrt(err / norm) : sqrt(err);
                const int pr = tu_products(tables[ti], t);
                worst[pr] = rel > worst[pr] ? rel : worst[pr];
                if (!(rel <= bound))
                    fail_msg("%s: row %lld relative error %.3g > %g", what, (long long)r, rel, bound);
            }
            calls++;
        }
    free(ref), free(seen), free(qb), free(ob), free(table), free(perm);
    free(k.codes), free(k.scales), free(v.codes), free(v.scales);
}

static void test_paged(void **state)
{
    (void)state;
    const flat_dtype types[3] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    for (int ti = 0; ti < 3; ti++)
        for (int g = 0; g < 3; g++)
            for (int layout = NHD; layout <= HND; layout++) {
                const int64_t ps = (g + layout) % 2 ? 7 : 16;
                const flat_dtype sd = (ti + g) % 2 ? FLAT_F16 : FLAT_F32;
                run_case(types[ti], layout, g, ps, 1, sd);
                run_case(types[ti], layout, g, ps, 0, sd);
            }
    printf("test_quant_paged: %ld calls; worst row error %.3g (fp32 products), %.3g (bf16 "
           "products), %.3g (int8 products)\n", calls, worst[0], worst[1], worst[2]);
}

int main(void)
{
    ntables = tu_runnable_tables("test_quant_paged", tables, 8);
    if (tu_check_required_isas("test_quant_paged"))
        return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_paged)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
