/* flat_plan_workspace_bound: the workspace of the worst plan of a size. A
 * plan's workspace is one scratch per worker plus, when it splits keys, the
 * partial rows of every (block, split) unit. */
#include "call.h"
#include "dispatch.h"
#include "error.h"
#include "parallel.h"
#include "validate.h"

/* Units of a splitting plan: splits <= ceil(4 T / tasks) (tiling.c) with
 * tasks < 4 T, so tasks x splits < 8 T. */
#define SPLIT_UNITS_PER_THREAD 8

size_t flat_plan_workspace_bound(int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t q_len,
                                 int64_t kv_len, int64_t dim, int64_t v_dim,
                                 const flat_options *opt)
{
    static const flat_options defaults;
    flat_status s;
    opt = opt ? opt : &defaults;
    flat_error_clear();
    if (batch < 1 || q_heads < 1 || kv_heads < 1 || q_len < 0 || kv_len < 0 || dim < 1 ||
        v_dim < 1 || q_heads % kv_heads != 0 || q_len > INT32_MAX || kv_len > INT32_MAX ||
        dim > INT32_MAX || v_dim > INT32_MAX) {
        flat_error(FLAT_ERROR_INVALID_ARGUMENT, "flat_plan_workspace_bound: sizes out of range");
        return 0;
    }
    const flat_ukernels *uk = flat_dispatch_select(opt->isa, &s);
    if (!uk || flat_check_option_words(opt) != FLAT_OK)
        return 0;
    flat_problem p = {0};
    p.batch = batch, p.q_heads = q_heads, p.kv_heads = kv_heads;
    p.q_len = q_len, p.kv_len = kv_len, p.kv_visible = kv_len, p.dim = dim, p.v_dim = v_dim;
    p.batch_invariant = (opt->flags & FLAT_FLAG_BATCH_INVARIANT) != 0;
    flat_tiling worst;
    flat_tiling_bound(&p, uk, opt->dataflow, &worst);
    int64_t threads = flat_parallel_threads(opt->num_threads);
    int64_t floats = flat_scratch_floats(&p, &worst) * threads;
    int may_split = !(opt->flags & FLAT_FLAG_ONE_PHASE) && opt->dataflow != FLAT_DATAFLOW_FLAT;
    /* Batch-invariant plans split into all their key ranges (not a count
     * chosen for the threads), with fewer than 4 T tasks. */
    if (may_split)
        floats += SPLIT_UNITS_PER_THREAD * threads * flat_max(1, worst.ranges) *
                  flat_split_floats(&p, &worst);
    return (size_t)floats * sizeof(float);
}
