/* Judging a paged call: each sequence against the reference over its keys
 * gathered from the pool shadows; rows no sequence owns stay untouched. */
#include <stdlib.h>
#include <string.h>

#include "fcase_int.h"

/* Sequence b's K or V rows, gathered contiguous [1, heads, n, dim]. */
static flat_tensor gather(const fc_case *c, const float *pool, int64_t dim, int64_t sp,
                          int64_t st, int64_t sh, int64_t b, int64_t n)
{
    const flat_paged_kv *kv = &c->kv;
    const int64_t H = kv->heads, P = kv->page_size;
    float *rows = malloc(sizeof(float) * (size_t)(H * n * dim));
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < n; t++) {
            int64_t page = c->block_table[b * kv->block_table_stride + t / P];
            memcpy(rows + (h * n + t) * dim, pool + page * sp + (t % P) * st + h * sh,
                   sizeof(float) * (size_t)dim);
        }
    return flat_tensor_bhsd(rows, FLAT_F32, 1, H, n, dim);
}

/* Rows [i0, i1) of q batch 0 belong to no sequence: out and lse untouched. */
static void check_unowned(fc_case *c, fc_result *r, int64_t i0, int64_t i1)
{
    const flat_tensor *o = &c->out.t;
    const int64_t es = o->dtype == FLAT_F32 ? 4 : 2;
    for (int64_t h = 0; h < o->heads; h++)
        for (int64_t i = i0; i < i1; i++) {
            size_t at = (size_t)((uint8_t *)o->data - c->arena) +
                        (size_t)((h * o->stride_head + i * o->stride_seq) * es);
            if (memcmp(c->arena + at, c->before + at, (size_t)(o->dim * es)) != 0)
                fc_fail(r, "out row (0,%lld,%lld), owned by no sequence, was written",
                        (long long)h, (long long)i);
            if (c->lse && memcmp(c->lse + h * o->seq + i,
                                 (float *)(c->before + ((uint8_t *)c->lse - c->arena)) +
                                     h * o->seq + i,
                                 4) != 0)
                fc_fail(r, "lse of row (0,%lld,%lld), owned by no sequence, was written",
                        (long long)h, (long long)i);
        }
}

void fc_check_paged(fc_case *c, fc_result *r)
{
    const flat_paged_kv *kv = &c->kv;
    const int ragged = kv->q_offsets != NULL;
    flat_options none;
    memset(&none, 0, sizeof none);
    for (int64_t b = 0; b < kv->batch; b++) {
        const int32_t len = kv->seq_lens[b];
        const int64_t i0 = ragged ? kv->q_offsets[b] : 0;
        const int64_t count = ragged ? kv->q_offsets[b + 1] - i0 : c->q.t.seq;
        const int64_t qb = ragged ? 0 : b;
        if (count == 0 || len <= 0) /* the generator keeps count <= len */
            continue;
        flat_tensor k = gather(c, c->kpool_ref, kv->dim, kv->k_stride_page, kv->k_stride_token,
                               kv->k_stride_head, b, len);
        flat_tensor v = gather(c, c->vpool_ref, kv->v_dim, kv->v_stride_page,
                               kv->v_stride_token, kv->v_stride_head, b, len);
        flat_tensor q = c->q.ref;
        q.data = (float *)q.data + qb * q.stride_batch + i0 * q.stride_seq;
        q.batch = 1, q.seq = count;
        flat_options opt = c->popt ? c->opt : none;
        opt.kv_lens = NULL; /* k holds exactly the sequence's len keys */
        flat_tensor mask;
        if (opt.mask) {
            mask = *opt.mask;
            mask.data = (float *)mask.data + qb * mask.stride_batch + i0 * mask.stride_seq;
            mask.batch = 1, mask.seq = count;
            opt.mask = &mask;
        }
        fc_check_rows(c, r, &q, &k, &v, &opt, qb, i0, qb);
        free(k.data);
        free(v.data);
    }
    if (ragged)
        check_unowned(c, r, kv->q_offsets[kv->batch], c->q.t.seq);
}
