/*
 * f16 and bf16 masks (flat_options.mask; llama.cpp keeps its mask in f16):
 * a 16-bit mask gives bitwise the output and lse of the fp32 mask holding the
 * same values, on every kernel table and dataflow, with and without causal,
 * ALiBi and softcap (the rules run in pieces of keys, and ALiBi's
 * distance must follow them), for a full and a broadcast (stride 0) mask,
 * contiguous and paged, with -inf entries, f16 subnormals and rows the mask
 * hides whole. The fp32 mask itself is checked against the reference by
 * test_rules.
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
#include "reference.h"
#include "testutil.h"
#include "ukernel.h"

enum { B = 2, HQ = 4, HKV = 2, NQ = 19, NK = 1300, D = 64 }; /* NK: past two 512-key chunks */

typedef struct {
    float *f32;
    uint16_t *f16, *bf16;
    int64_t n;
} masks;

/* Values every type holds exactly: multiples of 1/8 in [-4, 4], -inf (about
 * one in ten), f16 subnormals (2^-20), and a query row hidden whole. */
static void make_masks(masks *m, int64_t n, int64_t row_len, tu_rng *rng)
{
    m->n = n;
    m->f32 = malloc(sizeof(float) * (size_t)n);
    m->f16 = malloc(sizeof(uint16_t) * (size_t)n);
    m->bf16 = malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = tu_next(rng) % 80;
        float x = r < 8 ? -INFINITY : r < 10 ? 0x1p-20f * (float)(r - 8 ? 1 : -3)
                                             : (float)((int)r - 45) / 8.0f;
        m->f32[i] = i / row_len == 3 ? -INFINITY : x; /* row 3: nothing visible */
        m->f16[i] = flat_f32_to_f16(m->f32[i]);
        m->bf16[i] = flat_f32_to_bf16(m->f32[i]);
        assert_true(flat_f16_to_f32(m->f16[i]) == m->f32[i]);
        assert_true(flat_bf16_to_f32(m->bf16[i]) == m->f32[i]);
    }
}

static void free_masks(masks *m)
{
    free(m->f32);
    free(m->f16);
    free(m->bf16);
}

typedef struct {
    tu_tensor q, k, v;
    /* paged copy of k, v: pages of 16, in order */
    float *kpool, *vpool;
    int32_t table[B * ((NK + 15) / 16)], lens[B];
    flat_paged_kv kv;
} inputs;

static void make_inputs(inputs *in, tu_rng *rng)
{
    tu_tensor_alloc(&in->q, TU_BHSD, B, HQ, NQ, D);
    tu_tensor_alloc(&in->k, TU_BHSD, B, HKV, NK, D);
    tu_tensor_alloc(&in->v, TU_BHSD, B, HKV, NK, D);
    tu_tensor_fill(&in->q, rng, 1.0f);
    tu_tensor_fill(&in->k, rng, 1.0f);
    tu_tensor_fill(&in->v, rng, 1.0f);
    const int64_t per = (NK + 15) / 16, page = HKV * 16 * D;
    in->kpool = calloc((size_t)(B * per * page), sizeof(float));
    in->vpool = calloc((size_t)(B * per * page), sizeof(float));
    for (int64_t b = 0; b < B; b++) {
        in->lens[b] = NK;
        for (int64_t i = 0; i < per; i++)
            in->table[b * per + i] = (int32_t)(b * per + i);
        for (int64_t h = 0; h < HKV; h++)
            for (int64_t j = 0; j < NK; j++) {
                int64_t at = (b * per + j / 16) * page + h * 16 * D + (j % 16) * D;
                memcpy(in->kpool + at, ref_row(&in->k.t, b, h, j), sizeof(float) * D);
                memcpy(in->vpool + at, ref_row(&in->v.t, b, h, j), sizeof(float) * D);
            }
    }
    in->kv = (flat_paged_kv){FLAT_F32, in->kpool, in->vpool, B * per, 16, HKV, D, D, page, D,
                             16 * D, page, D, 16 * D, B, in->lens, in->table, per, NULL};
}

static void free_inputs(inputs *in)
{
    tu_tensor_free(&in->q);
    tu_tensor_free(&in->k);
    tu_tensor_free(&in->v);
    free(in->kpool);
    free(in->vpool);
}

/* out and lse of one call with the mask in type t. */
static void call(const inputs *in, flat_options opt, flat_tensor mask, int paged, float *out,
                 float *lse)
{
    flat_tensor o = flat_tensor_bhsd(out, FLAT_F32, B, HQ, NQ, D);
    opt.mask = &mask, opt.lse = lse;
    flat_status s = paged ? flat_attention_paged(&in->q.t, &in->kv, &o, &opt)
                          : flat_attention(&in->q.t, &in->k.t, &in->v.t, &o, &opt);
    if (s != FLAT_OK)
        fail_msg("%s: %s", flat_status_string(s), flat_last_error());
}

static void test_mask16_bitwise(void **state)
{
    (void)state;
    const flat_ukernels *tables[8];
    int nt = tu_runnable_tables("test_mask16", tables, 8);
    tu_rng rng = {16};
    inputs in;
    make_inputs(&in, &rng);
    masks full, bcast;
    make_masks(&full, (int64_t)B * HQ * NQ * NK, NK, &rng);
    make_masks(&bcast, (int64_t)NQ * NK, NK, &rng);
    const size_t out_n = (size_t)B * HQ * NQ * D, lse_n = (size_t)B * HQ * NQ;
    float *want = malloc(out_n * 4), *got = malloc(out_n * 4), *want_lse = malloc(lse_n * 4),
          *got_lse = malloc(lse_n * 4);
    static const float slopes[HQ] = {0.5f, 0.25f, 0.125f, 0.0625f};
    int compared = 0;
    for (int ti = 0; ti < nt; ti++)
        for (int df = FLAT_DATAFLOW_AUTO; df <= FLAT_DATAFLOW_DECODE; df++)
            for (int variant = 0; variant < 4; variant++) {
                flat_options opt = {0};
                opt.isa = tables[ti]->isa, opt.dataflow = (flat_dataflow)df;
                opt.num_threads = 1 + variant % 2, opt.causal = variant & 1;
                if (variant >= 2)
                    opt.alibi_slopes = slopes, opt.softcap = 20.0f;
                int paged = variant == 3, broadcast = variant == 1;
                const masks *m = broadcast ? &bcast : &full;
                flat_tensor t32 = flat_tensor_bhsd(m->f32, FLAT_F32, B, HQ, NQ, NK);
                if (broadcast)
                    t32.stride_batch = t32.stride_head = 0;
                call(&in, opt, t32, paged, want, want_lse);
                for (int which = 0; which < 2; which++) {
                    flat_tensor t16 = t32;
                    t16.data = which ? (void *)m->bf16 : (void *)m->f16;
                    t16.dtype = which ? FLAT_BF16 : FLAT_F16;
                    memset(got, 0xff, out_n * 4);
                    call(&in, opt, t16, paged, got, got_lse);
                    if (memcmp(want, got, out_n * 4) != 0 || memcmp(want_lse, got_lse, lse_n * 4) != 0)
                        fail_msg("%s mask differs from f32: %s, dataflow %d, variant %d",
                                 which ? "bf16" : "f16", tables[ti]->name, df, variant);
                    compared++;
                }
            }
    printf("  %d calls with a 16-bit mask: bitwise those with the f32 mask (%d tables x 4 "
           "dataflows x causal/broadcast/ALiBi+softcap/paged)\n", compared, nt);
    assert_true(compared > 0);
    free(want), free(got), free(want_lse), free(got_lse);
    free_masks(&full);
    free_masks(&bcast);
    free_inputs(&in);
    assert_int_equal(tu_check_required_isas("test_mask16"), 0);
}

static void test_mask_dtype_checked(void **state)
{
    (void)state;
    tu_rng rng = {17};
    inputs in;
    make_inputs(&in, &rng);
    float *out = malloc(sizeof(float) * B * HQ * NQ * D), *mask = calloc((size_t)NQ * NK, 4);
    flat_tensor o = flat_tensor_bhsd(out, FLAT_F32, B, HQ, NQ, D);
    flat_tensor m = flat_tensor_bhsd(mask, (flat_dtype)7, B, HQ, NQ, NK);
    m.stride_batch = m.stride_head = 0;
    flat_options opt = {0};
    opt.mask = &m;
    assert_int_equal(flat_attention(&in.q.t, &in.k.t, &in.v.t, &o, &opt), FLAT_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(flat_last_error(), "opt.mask->dtype"));
    printf("  dtype 7: %s\n", flat_last_error());
    free(out);
    free(mask);
    free_inputs(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask16_bitwise),
        cmocka_unit_test(test_mask_dtype_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
