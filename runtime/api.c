/* flat_attention: validate, select the kernels, plan, run. */
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "error.h"
#include "fork.h"
#include "parallel.h"
#include "tiling.h"
#include "problem.h"

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

static void explain(const flat_problem *p, const flat_ukernels *uk, const flat_tiling *plan)
{
    const char *v = getenv("FLAT_VERBOSE");
    if (!v || !*v || *v == '0')
        return;
    fprintf(stderr,
            "flat: isa=%s dataflow=%s B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld Dv=%lld "
            "causal=%d visible=%lld rows=%d (heads %d x positions %d) Bk=%d tasks=%lld splits=%d "
            "threads=%d because %s%s\n",
            uk->name,
            plan->k_in_place                       ? "DECODE"
            : plan->dataflow == FLAT_DATAFLOW_FLAT ? "FLAT"
                                                   : "FLASH",
            (long long)p->batch, (long long)p->q_heads, (long long)p->kv_heads,
            (long long)p->q_len, (long long)p->kv_len, (long long)p->dim,
            (long long)p->v_dim, p->causal, (long long)p->kv_visible, plan->rows,
            plan->heads_per_task, plan->bq, plan->bk, (long long)plan->tasks, plan->splits,
            plan->threads, plan->reason,
            flat_fork_threads_lost() ? "; one thread: forked after threaded calls" : "");
}

flat_status flat_attention(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                           const flat_tensor *out, const flat_options *opt)
{
    static const flat_options defaults;
    flat_error_clear();
    if (!opt)
        opt = &defaults;
    flat_problem p;
    flat_status s = flat_validate(q, k, v, out, opt, &p);
    if (s != FLAT_OK)
        return s;
    const flat_ukernels *uk = flat_dispatch_select(opt->isa, &s);
    if (!uk || !flat_dispatch_takes(uk, p.q_dtype, p.kv_dtype, &s))
        return s;
    /* A child forked after threaded calls runs serially (runtime/fork.h):
     * plan for one thread, so its tiles suit that and FLAT_VERBOSE says so. */
    int threads = flat_fork_threads_lost() ? 1 : opt->num_threads;
    flat_tiling plan;
    flat_tiling_choose(&p, uk, opt->dataflow, threads, &plan);
    explain(&p, uk, &plan);
    return flat_parallel_run(&p, &plan, uk);
}
