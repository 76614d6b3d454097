/* flat_attention and flat_attention_paged: a plan made, executed and freed. */
#include "call.h"
#include "error.h"

flat_tensor flat_tensor_bhsd(void *data, flat_dtype t, int64_t b, int64_t h, int64_t s,
                             int64_t d)
{
    return (flat_tensor){data, t, b, h, s, d, h * s * d, s * d, d};
}

flat_tensor flat_tensor_bshd(void *data, flat_dtype t, int64_t b, int64_t s, int64_t h,
                             int64_t d)
{
    return (flat_tensor){data, t, b, h, s, d, s * h * d, d, h * d};
}

static flat_status run_once(flat_plan *plan)
{
    flat_status s = flat_plan_execute(plan, NULL);
    flat_plan_destroy(plan);
    return s;
}

flat_status flat_attention(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                           const flat_tensor *out, const flat_options *opt)
{
    flat_plan *plan = NULL;
    flat_status s = flat_plan_create(q, k, v, out, opt, &plan);
    return s != FLAT_OK ? s : run_once(plan);
}

flat_status flat_attention_paged(const flat_tensor *q, const flat_paged_kv *kv,
                                 const flat_tensor *out, const flat_options *opt)
{
    flat_plan *plan = NULL;
    flat_status s = flat_plan_create_paged(q, kv, out, opt, &plan);
    return s != FLAT_OK ? s : run_once(plan);
}
