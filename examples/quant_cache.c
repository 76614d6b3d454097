/*
 * A server's int8 KV cache, end to end: paged pools of int8 codes
 * [pages, page_size, Hkv, D] (vLLM's layout) with f16 scale pools
 * [pages, page_size, Hkv, D / 32] beside them; each new token's K and V rows
 * are written with flat_quantize straight into their page slot; each decode
 * step reads the pools with flat_attention_paged and opt.kv_quant. The same
 * steps on an f32 cache give the reference the int8 output is compared with.
 *
 *   quant_cache [steps]      prints the relative L2 of each step's output
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flat.h"

enum { HQ = 8, HKV = 2, D = 128, G = 32, PS = 16, PAGES = 64, PROMPT = 200 };

static int8_t kpool[PAGES][PS][HKV][D], vpool[PAGES][PS][HKV][D];
static uint16_t kscale[PAGES][PS][HKV][D / G], vscale[PAGES][PS][HKV][D / G]; /* f16 bits */
static float kref[PAGES][PS][HKV][D], vref[PAGES][PS][HKV][D];                /* f32 cache */

static float rnd(void) { return (float)rand() / RAND_MAX * 2.0f - 1.0f; }

/* One token's [1, HKV, 1, D] row of a pool slot, as a flat_tensor. */
static flat_tensor slot(void *pool_slot, flat_dtype t, int64_t dim)
{
    flat_tensor x = flat_tensor_bhsd(pool_slot, t, 1, HKV, 1, dim);
    x.stride_head = dim; /* NHD: the heads of one token are adjacent */
    return x;
}

/* Appends token `pos` (K and V rows for every kv head) to the caches. */
static void append(const int32_t *table, int pos, const float *k, const float *v)
{
    int page = table[pos / PS], s = pos % PS;
    flat_tensor src_k = slot((void *)k, FLAT_F32, D), src_v = slot((void *)v, FLAT_F32, D);
    flat_tensor dk = slot(kpool[page][s], FLAT_I8, D), dv = slot(vpool[page][s], FLAT_I8, D);
    flat_tensor sk = slot(kscale[page][s], FLAT_F16, D / G);
    flat_tensor sv = slot(vscale[page][s], FLAT_F16, D / G);
    if (flat_quantize(&src_k, &dk, &sk, G, 0) != FLAT_OK ||
        flat_quantize(&src_v, &dv, &sv, G, 0) != FLAT_OK) {
        fprintf(stderr, "flat_quantize: %s\n", flat_last_error());
        exit(1);
    }
    memcpy(kref[page][s], k, sizeof kref[page][s]);
    memcpy(vref[page][s], v, sizeof vref[page][s]);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 8;
    int32_t table[PAGES], len = 0;
    for (int i = 0; i < PAGES; i++)
        table[i] = (i * 37) % PAGES; /* pages anywhere in the pool */
    float k[HKV * D], v[HKV * D], q[HQ * D], out[HQ * D], want[HQ * D];
    for (; len < PROMPT; len++) { /* the prompt's K/V (prefill would compute them) */
        for (int i = 0; i < HKV * D; i++)
            k[i] = rnd() + (i % D == 7 ? 6.0f : 0.0f), v[i] = rnd() + 0.5f * (float)(i % 3);
        append(table, len, k, v);
    }
    /* The scale pools are indexed [page, head, token, group] like the code pools. */
    flat_kv_quant kq = {0};
    kq.k_scale = flat_tensor_bhsd(kscale, FLAT_F16, PAGES, HKV, PS, D / G);
    kq.k_scale.stride_head = D / G, kq.k_scale.stride_seq = HKV * D / G;
    kq.v_scale = kq.k_scale;
    kq.v_scale.data = vscale;
    kq.k_group = kq.v_group = G;
    double worst = 0;
    for (int step = 0; step < steps && len < PAGES * PS; step++, len++) {
        for (int i = 0; i < HKV * D; i++)
            k[i] = rnd() + (i % D == 7 ? 6.0f : 0.0f), v[i] = rnd() + 0.5f * (float)(i % 3);
        append(table, len, k, v); /* the new token joins the cache, then attends */
        for (int i = 0; i < HQ * D; i++)
            q[i] = rnd();
        int32_t seq_len = len + 1;
        flat_paged_kv kv = {FLAT_I8, kpool, vpool, PAGES, PS, HKV, D, D,
                            PS * HKV * D, HKV * D, D, PS * HKV * D, HKV * D, D,
                            1, &seq_len, table, PAGES, NULL};
        flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, 1, HQ, 1, D);
        flat_tensor to = flat_tensor_bhsd(out, FLAT_F32, 1, HQ, 1, D);
        flat_options opt = {0};
        opt.kv_quant = &kq;
        flat_status s = flat_attention_paged(&tq, &kv, &to, &opt);
        /* the same step on the f32 cache */
        flat_paged_kv kf = kv;
        kf.dtype = FLAT_F32, kf.k = kref, kf.v = vref;
        flat_tensor tw = flat_tensor_bhsd(want, FLAT_F32, 1, HQ, 1, D);
        if (s != FLAT_OK || flat_attention_paged(&tq, &kf, &tw, NULL) != FLAT_OK) {
            fprintf(stderr, "flat_attention_paged: %s\n", flat_last_error());
            return 1;
        }
        double e = 0, n = 0;
        for (int i = 0; i < HQ * D; i++)
            e += (out[i] - want[i]) * (out[i] - want[i]), n += want[i] * want[i];
        worst = fmax(worst, sqrt(e / n));
        printf("step %d: %d tokens, int8 cache vs f32 cache: relative L2 %.2e\n", step, seq_len,
               sqrt(e / n));
    }
    /* 0.5% of a value per group step, averaged by attention: well under 1e-2 */
    return worst < 1e-2 ? 0 : 1;
}
