#include <omp.h>
#include <stdlib.h>

#include "attend.h"
#include "error.h"
#include "parallel.h"

/* Packs K of every (batch, kv head) once; every query head of the GQA group
 * and every query block then reads the same panels. Batches whose kv_lens
 * hide trailing keys pack only the visible ones. */
static void pack_all_keys(const flat_problem *p, const flat_plan *plan, const flat_ukernels *uk,
                          float *kp, int threads)
{
    int64_t pairs = p->batch * p->kv_heads;
    int64_t panel_floats = plan->k_panels * uk->nr * p->dim;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < pairs; i++) {
        int64_t b = i / p->kv_heads, h = i % p->kv_heads;
        int64_t n = p->kv_lens ? p->kv_lens[b] : p->kv_len;
        if (n > 0)
            uk->pack_k((int)n, (int)p->dim, p->k.data + b * p->k.sb + h * p->k.sh, p->k.ss,
                       kp + i * panel_floats);
    }
}

flat_status flat_parallel_run(const flat_problem *p, const flat_plan *plan,
                              const flat_ukernels *uk)
{
    int64_t panel_floats = plan->k_panels * uk->nr * p->dim;
    int64_t kp_floats = p->batch * p->kv_heads * panel_floats;
    int64_t scratch_floats = flat_scratch_floats(p, plan);
    int64_t total = kp_floats + scratch_floats * plan->threads;
    float *mem = NULL;
    if (total > (int64_t)(SIZE_MAX / 8) ||
        posix_memalign((void **)&mem, 64, (size_t)total * sizeof(float)) != 0)
        return flat_error(FLAT_ERROR_OUT_OF_MEMORY,
                          "workspace of %lld bytes could not be allocated",
                          (long long)total * 4);
    float *kp = mem;
    pack_all_keys(p, plan, uk, kp, plan->threads);

#pragma omp parallel num_threads(plan->threads)
    {
        flat_scratch ws;
        flat_scratch_init(&ws, kp + kp_floats + scratch_floats * omp_get_thread_num(), p, plan);
        int64_t kv_stride = panel_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < plan->tasks; t++) {
            flat_task task = flat_task_at(p, plan, t);
            const float *task_kp = kp + (task.b * p->kv_heads + task.kv_head) * kv_stride;
            flat_attend_task(p, plan, uk, task_kp, &task, &ws);
        }
    }
    free(mem);
    return FLAT_OK;
}
