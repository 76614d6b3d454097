/* Re-pointing a plan (flat_plan_repoint, flat_plan_repoint_paged): the new
 * arguments are validated as a new call would be, and must describe the same
 * problem as the plan's in everything its tiling and tasks depend on; only
 * the data pointers change (and, paged, the block table's entries). */
#include <string.h>

#include "call.h"
#include "error.h"

#define INVALID(...) flat_error(FLAT_ERROR_INVALID_ARGUMENT, __VA_ARGS__)

/* One integer field: the same in the plan (a) and the new call (b). */
#define SAME(field, name)                                                                   \
    do {                                                                                    \
        if ((int64_t)(a->field) != (int64_t)(b->field))                                     \
            return INVALID("%s (%lld) differs from the plan's (%lld)", name,                \
                           (long long)(b->field), (long long)(a->field));                   \
    } while (0)
/* One optional array: given in both or in neither. */
#define BOTH_OR_NEITHER(field, name)                                                        \
    do {                                                                                    \
        if (!a->field != !b->field)                                                         \
            return INVALID("%s is %s, the plan's was %s", name, b->field ? "given" : "NULL", \
                           a->field ? "given" : "NULL");                                    \
    } while (0)

static flat_status same_ints(const char *name, const int32_t *a, const int32_t *b, int64_t n)
{
    for (int64_t i = 0; a && i < n; i++)
        if (a[i] != b[i])
            return INVALID("%s[%lld] (%d) differs from the plan's (%d)", name, (long long)i,
                           (int)b[i], (int)a[i]);
    return FLAT_OK;
}

static flat_status same_views(const flat_problem *a, const flat_problem *b)
{
    SAME(q.sb, "q.stride_batch"); SAME(q.sh, "q.stride_head"); SAME(q.ss, "q.stride_seq");
    SAME(out_sb, "out.stride_batch"); SAME(out_sh, "out.stride_head");
    SAME(out_ss, "out.stride_seq");
    SAME(q_dtype, "q.dtype"); SAME(kv_dtype, "the K/V dtype");
    SAME(batch, "the batch"); SAME(q_heads, "q.heads"); SAME(kv_heads, "the kv heads");
    SAME(q_len, "the query length"); SAME(q_rows, "q.seq"); SAME(kv_len, "the key length");
    SAME(dim, "q.dim"); SAME(v_dim, "the value dim");
    if (a->paged) {
        SAME(pages.page_size, "kv.page_size"); SAME(pages.bt_stride, "kv.block_table_stride");
        SAME(pages.k_sp, "kv.k_stride_page"); SAME(pages.k_st, "kv.k_stride_token");
        SAME(pages.k_sh, "kv.k_stride_head"); SAME(pages.v_sp, "kv.v_stride_page");
        SAME(pages.v_st, "kv.v_stride_token"); SAME(pages.v_sh, "kv.v_stride_head");
    } else {
        SAME(k.sb, "k.stride_batch"); SAME(k.sh, "k.stride_head"); SAME(k.ss, "k.stride_seq");
        SAME(v.sb, "v.stride_batch"); SAME(v.sh, "v.stride_head"); SAME(v.ss, "v.stride_seq");
    }
    BOTH_OR_NEITHER(k_scales.data, "opt.kv_quant->k_scale.data");
    BOTH_OR_NEITHER(v_scales.data, "opt.kv_quant->v_scale.data");
    SAME(k_scales.t, "opt.kv_quant->k_scale.dtype"); SAME(v_scales.t, "opt.kv_quant->v_scale.dtype");
    SAME(k_scales.group, "opt.kv_quant->k_group"); SAME(v_scales.group, "opt.kv_quant->v_group");
    SAME(k_scales.sb, "k_scale's batch (page) stride"); SAME(k_scales.sh, "k_scale's head stride");
    SAME(k_scales.ss, "k_scale's seq (token) stride"); SAME(v_scales.sb, "v_scale's batch (page) stride");
    SAME(v_scales.sh, "v_scale's head stride"); SAME(v_scales.ss, "v_scale's seq (token) stride");
    return FLAT_OK;
}

static flat_status same_options(const flat_problem *a, const flat_problem *b)
{
    SAME(causal, "opt.causal"); SAME(window_left, "opt.window_left");
    SAME(window_right, "opt.window_right"); SAME(flags, "opt.flags");
    if (a->scale != b->scale || a->softcap != b->softcap)
        return INVALID("opt.scale or opt.softcap (%g, %g) differs from the plan's (%g, %g)",
                       (double)b->scale, (double)b->softcap, (double)a->scale,
                       (double)a->softcap);
    BOTH_OR_NEITHER(lse, "opt.lse"); BOTH_OR_NEITHER(sinks, "opt.sinks");
    BOTH_OR_NEITHER(alibi_slopes, "opt.alibi_slopes"); BOTH_OR_NEITHER(mask, "opt.mask");
    BOTH_OR_NEITHER(kv_lens, a->paged ? "kv.seq_lens" : "opt.kv_lens");
    BOTH_OR_NEITHER(q_offsets, "kv.q_offsets");
    if (a->mask) {
        SAME(mask_sb, "opt.mask->stride_batch"); SAME(mask_sh, "opt.mask->stride_head");
        SAME(mask_ss, "opt.mask->stride_seq"); SAME(mask_dtype, "opt.mask->dtype");
    }
    flat_status s = same_ints(a->paged ? "kv.seq_lens" : "opt.kv_lens", a->kv_lens, b->kv_lens,
                              a->batch);
    return s != FLAT_OK ? s : same_ints("kv.q_offsets", a->q_offsets, b->q_offsets, a->batch + 1);
}

/* The plan's own copy of an array (plan.c copied it), overwritten. */
static void recopy(const void *plan_copy, const void *src, int64_t n)
{
    if (plan_copy && n > 0)
        memcpy((void *)(uintptr_t)plan_copy, src, (size_t)n * 4);
}

static flat_status adopt(flat_plan *plan, const flat_problem *b, const flat_options *opt)
{
    flat_problem *a = &plan->p;
    flat_status s;
    if (opt->isa != plan->isa_asked || opt->dataflow != plan->dataflow_asked ||
        opt->num_threads != plan->threads_asked || opt->precision != plan->precision_asked)
        return INVALID("opt.isa, opt.dataflow, opt.num_threads or opt.precision (%d, %d, %d, %d) "
                       "differs from the plan's (%d, %d, %d, %d)", (int)opt->isa,
                       (int)opt->dataflow, opt->num_threads, (int)opt->precision,
                       (int)plan->isa_asked, (int)plan->dataflow_asked, plan->threads_asked,
                       (int)plan->precision_asked);
    if ((s = same_views(a, b)) != FLAT_OK || (s = same_options(a, b)) != FLAT_OK)
        return s;
    a->q.data = b->q.data, a->k.data = b->k.data, a->v.data = b->v.data;
    a->out = b->out, a->lse = b->lse, a->mask = b->mask;
    a->k_scales.data = b->k_scales.data, a->v_scales.data = b->v_scales.data;
    a->pages.k = b->pages.k, a->pages.v = b->pages.v;
    recopy(a->pages.block_table, b->pages.block_table, a->paged ? a->batch * a->pages.bt_stride : 0);
    recopy(a->sinks, b->sinks, a->q_heads);
    recopy(a->alibi_slopes, b->alibi_slopes, a->q_heads);
    return FLAT_OK;
}

flat_status flat_plan_repoint(flat_plan *plan, const flat_tensor *q, const flat_tensor *k,
                              const flat_tensor *v, const flat_tensor *out,
                              const flat_options *opt)
{
    static const flat_options defaults;
    flat_error_clear();
    if (!plan)
        return INVALID("plan is NULL");
    if (plan->p.paged)
        return INVALID("plan is paged: re-point it with flat_plan_repoint_paged");
    opt = opt ? opt : &defaults;
    flat_problem p;
    flat_status s = flat_validate(q, k, v, out, opt, &p);
    return s != FLAT_OK ? s : adopt(plan, &p, opt);
}

flat_status flat_plan_repoint_paged(flat_plan *plan, const flat_tensor *q,
                                    const flat_paged_kv *kv, const flat_tensor *out,
                                    const flat_options *opt)
{
    static const flat_options defaults;
    flat_error_clear();
    if (!plan)
        return INVALID("plan is NULL");
    if (!plan->p.paged)
        return INVALID("plan is not paged: re-point it with flat_plan_repoint");
    opt = opt ? opt : &defaults;
    flat_problem p;
    flat_status s = flat_validate_paged(q, kv, out, opt, &p);
    return s != FLAT_OK ? s : adopt(plan, &p, opt);
}
