/* flat_attention_paged's argument rules (flat.h, flat_paged_kv), checked
 * before anything is written, and the problem they describe. Every index the
 * kernels will follow is checked here: page numbers, lengths, offsets. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "kvquant.h"
#include "validate.h"

#define INVALID(...) flat_error(FLAT_ERROR_INVALID_ARGUMENT, __VA_ARGS__)

static flat_status check_q_out(const flat_tensor *q, const flat_tensor *out)
{
    if (!q)
        return INVALID("q is NULL");
    if (!out)
        return INVALID("out is NULL");
    if (!q->data)
        return INVALID("q.data is NULL");
    if (!out->data)
        return INVALID("out.data is NULL");
    flat_status s;
    if ((s = flat_check_dtype("q", q, "", NULL)) != FLAT_OK ||
        (s = flat_check_dtype("out", out, "q", q)) != FLAT_OK ||
        (s = flat_check_shape("q", q)) != FLAT_OK || (s = flat_check_shape("out", out)) != FLAT_OK)
        return s;
    if (out->batch != q->batch) return INVALID("out.batch (%lld) != q.batch (%lld)", (long long)out->batch, (long long)q->batch);
    if (out->heads != q->heads) return INVALID("out.heads (%lld) != q.heads (%lld)", (long long)out->heads, (long long)q->heads);
    if (out->seq != q->seq) return INVALID("out.seq (%lld) != q.seq (%lld)", (long long)out->seq, (long long)q->seq);
    if (q->seq > INT32_MAX || q->dim > INT32_MAX || out->dim > INT32_MAX)
        return INVALID("q.seq, q.dim and out.dim must be < 2^31");
    return flat_check_out_layout(out);
}

static flat_status check_kv_fields(const flat_paged_kv *kv)
{
    if (!kv)
        return INVALID("kv is NULL");
    if ((int)kv->dtype < FLAT_F32 || (int)kv->dtype > FLAT_I4)
        return INVALID("kv.dtype (%d) is not a flat_dtype value", (int)kv->dtype);
    if (!kv->k) return INVALID("kv.k is NULL");
    if (!kv->v) return INVALID("kv.v is NULL");
    if (!kv->seq_lens) return INVALID("kv.seq_lens is NULL");
    if (!kv->block_table) return INVALID("kv.block_table is NULL");
    const int64_t pos[7] = {kv->pages, kv->page_size, kv->heads, kv->dim, kv->v_dim, kv->batch,
                            kv->block_table_stride};
    static const char *pos_names[7] = {"pages", "page_size", "heads", "dim", "v_dim", "batch",
                                       "block_table_stride"};
    for (int i = 0; i < 7; i++)
        if (pos[i] <= 0 || pos[i] > INT32_MAX)
            return INVALID("kv.%s (%lld) must be in [1, 2^31)", pos_names[i], (long long)pos[i]);
    const int64_t str[6] = {kv->k_stride_page, kv->k_stride_token, kv->k_stride_head,
                            kv->v_stride_page, kv->v_stride_token, kv->v_stride_head};
    static const char *str_names[6] = {"k_stride_page", "k_stride_token", "k_stride_head",
                                       "v_stride_page", "v_stride_token", "v_stride_head"};
    for (int i = 0; i < 6; i++)
        if (str[i] < 0)
            return INVALID("kv.%s (%lld) must be >= 0", str_names[i], (long long)str[i]);
    const int64_t even[8] = {kv->dim, kv->v_dim, kv->k_stride_page, kv->k_stride_token,
                             kv->k_stride_head, kv->v_stride_page, kv->v_stride_token,
                             kv->v_stride_head};
    static const char *even_names[8] = {"kv.dim", "kv.v_dim", "kv.k_stride_page",
                                        "kv.k_stride_token", "kv.k_stride_head",
                                        "kv.v_stride_page", "kv.v_stride_token",
                                        "kv.v_stride_head"};
    flat_status s = flat_check_kv_dtype("kv.dtype", kv->dtype, even, even_names, 8);
    if (s != FLAT_OK)
        return s;
    if (kv->block_table_stride > INT64_MAX / kv->page_size ||
        kv->block_table_stride * kv->page_size > INT32_MAX)
        return INVALID("kv.block_table_stride (%lld) x kv.page_size (%lld) must be < 2^31",
                       (long long)kv->block_table_stride, (long long)kv->page_size);
    return FLAT_OK;
}

/* Offset of a pool's last element and its bytes, overflow-checked. */
static flat_status pool_bytes(const char *name, const flat_paged_kv *kv, int64_t sp, int64_t st,
                              int64_t sh, int64_t dim, int64_t *bytes)
{
    int64_t a, b, c, sum;
    if (__builtin_mul_overflow(kv->pages - 1, sp, &a) ||
        __builtin_mul_overflow(kv->page_size - 1, st, &b) ||
        __builtin_mul_overflow(kv->heads - 1, sh, &c) || __builtin_add_overflow(a, b, &sum) ||
        __builtin_add_overflow(sum, c, &sum) || __builtin_add_overflow(sum, dim, &sum) ||
        __builtin_mul_overflow(sum, 4, bytes))
        return INVALID("kv.%s strides address beyond the int64 range", name);
    *bytes = flat_dtype_bytes(kv->dtype, sum);
    return FLAT_OK;
}

/* q against the sequences: head and dim match, rows per sequence. */
static flat_status check_sequences(const flat_tensor *q, const flat_tensor *out,
                                   const flat_paged_kv *kv)
{
    if (q->heads % kv->heads != 0)
        return INVALID("q.heads (%lld) is not a multiple of kv.heads (%lld)", (long long)q->heads, (long long)kv->heads);
    if (q->dim != kv->dim) return INVALID("kv.dim (%lld) != q.dim (%lld)", (long long)kv->dim, (long long)q->dim);
    if (out->dim != kv->v_dim) return INVALID("out.dim (%lld) != kv.v_dim (%lld)", (long long)out->dim, (long long)kv->v_dim);
    const int64_t cap = kv->block_table_stride * kv->page_size;
    const int32_t *qo = kv->q_offsets;
    if (qo) {
        if (q->batch != 1)
            return INVALID("q.batch (%lld) must be 1 with kv.q_offsets", (long long)q->batch);
        if (qo[0] < 0)
            return INVALID("kv.q_offsets[0] (%d) must be >= 0", (int)qo[0]);
        if (qo[kv->batch] > q->seq)
            return INVALID("kv.q_offsets[%lld] (%d) is past q.seq (%lld)", (long long)kv->batch,
                           (int)qo[kv->batch], (long long)q->seq);
    } else if (q->batch != kv->batch) {
        return INVALID("q.batch (%lld) != kv.batch (%lld)", (long long)q->batch, (long long)kv->batch);
    }
    for (int64_t b = 0; b < kv->batch; b++) {
        int32_t n = kv->seq_lens[b];
        if (n < 0 || n > cap)
            return INVALID("kv.seq_lens[%lld] (%d) outside [0, block_table_stride x page_size = "
                           "%lld]", (long long)b, (int)n, (long long)cap);
        if (qo && qo[b + 1] < qo[b])
            return INVALID("kv.q_offsets[%lld] (%d) < kv.q_offsets[%lld] (%d): must not decrease",
                           (long long)b + 1, (int)qo[b + 1], (long long)b, (int)qo[b]);
        /* A ragged sequence's queries are its last tokens, so they must be in
         * the cache. Without q_offsets every sequence has q.seq rows and, as
         * flat_attention's kv_lens, seq_lens may be shorter (an empty slot of a
         * fixed batch is seq_lens[b] = 0): rows that see no key get zeros. */
        int64_t count = qo ? qo[b + 1] - qo[b] : 0;
        if (count > n)
            return INVALID("sequence %lld has %lld queries but kv.seq_lens[%lld] is %d (queries are "
                           "its last tokens)", (long long)b, (long long)count, (long long)b, (int)n);
    }
    return FLAT_OK;
}

/* The pages each sequence reads must exist; the rest may hold anything. */
static flat_status check_block_table(const flat_paged_kv *kv)
{
    for (int64_t b = 0; b < kv->batch; b++) {
        int64_t used = (kv->seq_lens[b] + kv->page_size - 1) / kv->page_size;
        const int32_t *row = kv->block_table + b * kv->block_table_stride;
        for (int64_t i = 0; i < used; i++)
            if (row[i] < 0 || row[i] >= kv->pages)
                return INVALID("kv.block_table[%lld][%lld] (%d) outside [0, kv.pages = %lld)",
                               (long long)b, (long long)i, (int)row[i], (long long)kv->pages);
    }
    return FLAT_OK;
}

/* out and lse are written, so they may share memory with nothing read. */
static flat_status check_overlaps(const flat_tensor *q, const flat_tensor *out,
                                  const flat_paged_kv *kv, const float *lse)
{
    int64_t kb, vb, lq, lo;
    flat_status s;
    if ((s = pool_bytes("k", kv, kv->k_stride_page, kv->k_stride_token, kv->k_stride_head, kv->dim, &kb)) != FLAT_OK ||
        (s = pool_bytes("v", kv, kv->v_stride_page, kv->v_stride_token, kv->v_stride_head, kv->v_dim, &vb)) != FLAT_OK ||
        (s = flat_last_offset("q", q, &lq)) != FLAT_OK || (s = flat_last_offset("out", out, &lo)) != FLAT_OK)
        return s;
    const void *in[3] = {q->data, kv->k, kv->v};
    const int64_t in_bytes[3] = {flat_view_bytes(q, lq), kb, vb};
    static const char *names[3] = {"q", "kv.k", "kv.v"};
    for (int i = 0; i < 3; i++) {
        if (flat_ranges_overlap(out->data, flat_view_bytes(out, lo), in[i], in_bytes[i]))
            return INVALID("out overlaps %s (out must not share memory with an input)", names[i]);
        if (lse && flat_ranges_overlap(lse, q->batch * q->heads * q->seq * 4, in[i], in_bytes[i]))
            return INVALID("opt.lse overlaps %s", names[i]);
    }
    if (lse && flat_ranges_overlap(lse, q->batch * q->heads * q->seq * 4, out->data,
                                   flat_view_bytes(out, lo)))
        return INVALID("opt.lse overlaps out");
    return FLAT_OK;
}

static void fill_problem(const flat_tensor *q, const flat_paged_kv *kv, const flat_tensor *out,
                         const flat_options *opt, flat_problem *p)
{
    memset(p, 0, sizeof *p);
    p->q = (flat_view){q->data, q->stride_batch, q->stride_head, q->stride_seq};
    p->q_dtype = q->dtype;
    p->kv_dtype = kv->dtype;
    p->out = out->data;
    p->out_sb = out->stride_batch, p->out_sh = out->stride_head, p->out_ss = out->stride_seq;
    p->lse = opt->lse;
    p->batch = kv->batch;
    p->q_heads = q->heads;
    p->kv_heads = kv->heads;
    p->q_rows = q->seq;
    p->q_offsets = kv->q_offsets;
    p->q_len = q->seq;
    if (kv->q_offsets) {
        p->q_len = 0;
        for (int64_t b = 0; b < kv->batch; b++)
            p->q_len = flat_max(p->q_len, kv->q_offsets[b + 1] - kv->q_offsets[b]);
    }
    p->kv_lens = kv->seq_lens;
    for (int64_t b = 0; b < kv->batch; b++)
        p->kv_visible = flat_max(p->kv_visible, kv->seq_lens[b]);
    p->kv_len = p->kv_visible;
    p->dim = kv->dim;
    p->v_dim = kv->v_dim;
    p->causal = opt->causal != 0;
    p->scale = opt->scale != 0 ? opt->scale : 1.0f / sqrtf((float)q->dim);
    p->paged = 1;
    p->pages = (flat_pages){kv->k, kv->v, kv->page_size, kv->k_stride_page, kv->k_stride_token,
                            kv->k_stride_head, kv->v_stride_page, kv->v_stride_token,
                            kv->v_stride_head, kv->block_table, kv->block_table_stride};
}

flat_status flat_validate_paged(const flat_tensor *q, const flat_paged_kv *kv,
                                const flat_tensor *out, const flat_options *opt,
                                flat_problem *p)
{
    flat_status s;
    if ((s = check_q_out(q, out)) != FLAT_OK || (s = check_kv_fields(kv)) != FLAT_OK ||
        (s = check_sequences(q, out, kv)) != FLAT_OK || (s = check_block_table(kv)) != FLAT_OK ||
        (s = flat_check_option_words(opt)) != FLAT_OK)
        return s;
    if (opt->kv_lens)
        return INVALID("opt.kv_lens must be NULL for a paged call (kv.seq_lens gives the lengths)");
    int64_t longest = 0;
    for (int64_t b = 0; b < kv->batch; b++)
        longest = flat_max(longest, kv->seq_lens[b]);
    if ((s = check_overlaps(q, out, kv, opt->lse)) != FLAT_OK ||
        (s = flat_check_rules(opt, q, longest, out, opt->lse)) != FLAT_OK)
        return s;
    int64_t lo;
    flat_last_offset("out", out, &lo); /* already checked */
    const int64_t ks[4] = {kv->pages, kv->heads, kv->page_size, kv->dim};
    const int64_t vs[4] = {kv->pages, kv->heads, kv->page_size, kv->v_dim};
    if ((s = flat_check_kv_quant(opt, kv->dtype, ks, vs, out->data, flat_view_bytes(out, lo),
                                 q->batch * q->heads * q->seq * 4)) != FLAT_OK)
        return s;
    fill_problem(q, kv, out, opt, p);
    flat_fill_kv_quant(opt, p);
    flat_fill_rules(opt, p);
    return FLAT_OK;
}
