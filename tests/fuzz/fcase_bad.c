/* The mistakes a caller can make, injected into a decoded case: each one
 * alone makes the call invalid, so it must be refused with nothing written
 * (fc_run checks; it does not rely on these being refused to judge a
 * success, which it always checks against the reference). */
#include <math.h>
#include <stdint.h>

#include "fcase_int.h"

static const char *bad_tensor(fc_case *c, unsigned which, unsigned how)
{
    flat_tensor *t[4] = {&c->q.t, &c->k.t, &c->v.t, &c->out.t};
    const flat_tensor **pt[4] = {&c->pq, &c->pk, &c->pv, &c->pout};
    if (c->entry == 1 || c->entry == 3)
        which = which & 1 ? 3 : 0; /* paged: q and out are the tensors */
    flat_tensor *x = t[which];
    switch (how) {
    case 0: *pt[which] = NULL; return "a NULL tensor";
    case 1: x->data = NULL; return "NULL data";
    case 2: x->dtype = (flat_dtype)7; return "an unknown dtype";
    case 3: x->seq = 0; return "seq 0";
    case 4: x->dim = -1; return "dim -1";
    case 5: x->stride_seq = -1; return "a negative stride";
    case 6: x->stride_batch = INT64_MAX / 2, x->batch = x->batch < 2 ? 2 : x->batch;
            return "a stride past the int64 range";
    case 7: x->dim += 1; return "a dim that does not match";
    case 8: x->heads += 1; return "heads that do not match";
    default: x->batch += 1; return "a batch that does not match";
    }
}

static const char *bad_option(fc_case *c, unsigned how)
{
    flat_options *o = &c->opt;
    c->popt = o;
    switch (how) {
    case 0: o->scale = NAN; return "scale NaN";
    case 1: o->scale = -1.0f; return "a negative scale";
    case 2: o->scale = INFINITY; return "scale inf";
    case 3: o->num_threads = -1; return "num_threads -1";
    case 4: o->dataflow = (flat_dataflow)9; return "an unknown dataflow";
    case 5: o->isa = (flat_isa)42; return "an unknown isa";
    case 6: o->precision = 4; return "precision out of range";
    case 7: o->reserved[0] = 5; return "reserved[0] set";
    case 8: o->window_left = -1; return "window_left -1";
    case 9: o->window_right = -3; return "window_right -3";
    case 10: o->softcap = -1.0f; return "softcap -1";
    case 11: o->softcap = NAN; return "softcap NaN";
    case 12: c->sinks[c->q.t.heads - 1] = NAN, o->sinks = c->sinks; return "a NaN sink";
    case 13: c->alibi[0] = INFINITY, o->alibi_slopes = c->alibi; return "an inf ALiBi slope";
    case 14:
        if (c->entry == 1 || c->entry == 3) {
            o->kv_lens = c->kv_lens; return "kv_lens on a paged call";
        }
        c->kv_lens[c->q.t.batch - 1] = (int32_t)c->k.t.seq + 1, o->kv_lens = c->kv_lens;
        return "kv_lens past k.seq";
    case 15: /* out over q: the call must see the overlap */
        c->out.t.data = c->q.t.data; return "out overlapping q";
    case 16:
        if (c->entry == 1 || c->entry == 3) {
            c->out.t.data = (void *)c->kv.k; return "out overlapping the K pool";
        }
        c->out.t.data = c->v.t.data; return "out overlapping v";
    case 17: o->lse = (float *)c->out.t.data; return "lse inside out";
    case 18: o->lse = (float *)c->q.t.data; return "lse inside q";
    case 19:
        c->out.t.stride_seq = 0, c->out.t.seq = c->out.t.seq < 2 ? 2 : c->out.t.seq;
        c->q.t.seq = c->out.t.seq; /* keep the shapes agreeing: only the overlap is wrong */
        c->q.t.stride_seq = 0;
        return "out overlapping itself";
    default:
        if (o->mask) {
            static const char *names[] = {"a mask of the wrong dtype", "a mask of the wrong width",
                                          "a mask over out", "a mask with NULL data"};
            flat_tensor *m = &c->mask.t;
            unsigned k = how % 4;
            if (k == 0) m->dtype = (flat_dtype)(3 + how % 5); /* past FLAT_BF16 */
            if (k == 1) m->dim += 1;
            if (k == 2) m->data = c->out.t.data;
            if (k == 3) m->data = NULL;
            return names[k];
        }
        o->lse = (float *)c->out.t.data;
        return "lse inside out";
    }
}

static const char *bad_paged(fc_case *c, unsigned how)
{
    flat_paged_kv *kv = &c->kv;
    int64_t B = kv->batch;
    switch (how) {
    case 0: c->pkv = NULL; return "kv NULL";
    case 1: kv->k = NULL; return "a NULL K pool";
    case 2: kv->seq_lens = NULL; return "seq_lens NULL";
    case 3: kv->block_table = NULL; return "block_table NULL";
    case 4: kv->page_size = 0; return "page_size 0";
    case 5: kv->heads = c->q.t.heads + 1; return "kv heads that do not divide q.heads";
    case 6: kv->dim += 1; return "kv.dim != q.dim";
    case 7: kv->v_stride_token = -1; return "a negative pool stride";
    case 8: kv->batch = 0; return "batch 0";
    case 9: kv->dtype = (flat_dtype)7; return "an unknown pool dtype"; /* 3..5 are 0.3's */
    case 10:
        c->seq_lens[B - 1] = (int32_t)(kv->block_table_stride * kv->page_size + 1);
        return "seq_lens past the block table";
    case 11: c->seq_lens[0] = -1; return "a negative seq_len";
    default:
        for (int64_t b = 0; b < B; b++)
            if (c->seq_lens[b] > 0) { /* a bad page number where it is read */
                c->block_table[b * kv->block_table_stride] =
                    how & 1 ? -1 : (int32_t)kv->pages;
                return "a page number outside the pool";
            }
        if (kv->q_offsets) {
            c->q_offsets[B] = (int32_t)c->q.t.seq + 1;
            return "q_offsets past q.seq";
        }
        kv->pages = 0;
        return "pages 0";
    }
}

/* A quantized cache's mistakes (opt.kv_quant and the codes' rules). */
static const char *bad_quant(fc_case *c, unsigned how)
{
    flat_kv_quant *kq = &c->quant.kq;
    flat_tensor *ks = &kq->k_scale, *vs = &kq->v_scale;
    const int paged = c->entry == 1 || c->entry == 3;
    const flat_dtype kt = paged ? c->kv.dtype : c->k.t.dtype;
    c->popt = &c->opt;
    if (!c->opt.kv_quant) { /* F8E4M3 without scales: give them wrong */
        c->quant.kq.k_scale = c->quant.sc[0].t, c->quant.kq.v_scale = c->quant.sc[1].t;
        kq->k_group = kq->v_group = 0;
        c->opt.kv_quant = kq;
        return "an F8E4M3 cache's kv_quant with group 0";
    }
    switch (how) {
    case 0:
        if (kt == FLAT_F8E4M3) { /* NULL is allowed there: a float cache with scales is not */
            if (paged)
                c->kv.dtype = FLAT_F16;
            else
                c->k.t.dtype = c->v.t.dtype = FLAT_F16;
            return "kv_quant with an f16 cache";
        }
        c->opt.kv_quant = NULL;
        return kt == FLAT_I8 ? "an I8 cache without scales" : "an I4 cache without scales";
    case 1: kq->k_group = (int32_t)ks->dim * kq->k_group + 1; return "a k_group that does not divide";
    case 2: kq->v_group = 0; return "v_group 0";
    case 3: ks->stride_seq = -1; return "a negative k_scale stride";
    case 4: vs->stride_head = -2; return "a negative v_scale stride";
    case 5: ks->dtype = FLAT_BF16; return "bf16 k scales";
    case 6: vs->data = NULL; return "v_scale with NULL data";
    case 7: ks->dim += 1; return "k_scale.dim != k.dim / k_group";
    case 8: vs->heads += 1; return "v_scale.heads that do not match";
    case 9: ks->batch += 1; return "k_scale.batch that does not match";
    case 10: kq->reserved[1] = 1; return "kv_quant.reserved[1] set";
    case 11: c->out.t.data = ks->data; return "out overlapping the K scales";
    case 12: c->opt.lse = (float *)vs->data; return "lse inside the V scales";
    default:
        if (kt == FLAT_I4) { /* odd element strides (or dims): I4 packs pairs */
            if (paged)
                c->kv.k_stride_token |= 1;
            else
                c->k.t.stride_seq |= 1;
            return "an I4 cache with an odd stride";
        }
        ks->stride_batch = INT64_MAX / 4, ks->batch = ks->batch < 2 ? 2 : ks->batch;
        return "a k_scale stride past the int64 range";
    }
}

/* Injects at most one mistake (about one case in three); its name, or NULL. */
const char *fc_inject(fc_source *src, fc_case *c)
{
    const int paged = c->entry == 1 || c->entry == 3;
    switch (fc_pick(src, paged ? 9 : 6)) {
    case 0: return bad_tensor(c, fc_pick(src, 4), fc_pick(src, 10));
    case 1: return bad_option(c, fc_pick(src, 24));
    case 5: /* a quantized cache's own mistakes (the float cases read as before) */
        return c->quant.on ? bad_quant(c, fc_pick(src, 15)) : NULL;
    case 6:
    case 7: return bad_paged(c, fc_pick(src, 16));
    default: return NULL;
    }
}
