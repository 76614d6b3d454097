/* The public plan object: making it, its task interface, executing it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "dispatch.h"
#include "error.h"
#include "fork.h"
#include "parallel.h"

#define FLAT_STR_(x) #x
#define FLAT_STR(x) FLAT_STR_(x)

/* The index arrays a problem points to, copied into the plan so a plan
 * never reads the caller's arrays after it is made. */
typedef struct {
    int64_t kv_lens, q_offsets, block_table; /* int32 counts */
    int64_t sinks, alibi;                    /* float counts */
} plan_copies;

static plan_copies copies_of(const flat_problem *p)
{
    plan_copies c = {p->kv_lens ? p->batch : 0, p->q_offsets ? p->batch + 1 : 0, 0,
                     p->sinks ? p->q_heads : 0, p->alibi_slopes ? p->q_heads : 0};
    if (p->paged)
        c.block_table = p->batch * p->pages.bt_stride;
    return c;
}

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

static size_t plan_bytes(int64_t units, plan_copies c)
{
    return align64(sizeof(struct flat_plan)) + align64((size_t)units * sizeof(flat_unit)) +
           align64((size_t)units * sizeof(float)) + 2 * align64((size_t)units * sizeof(int64_t)) +
           align64((size_t)(c.kv_lens + c.q_offsets + c.block_table + c.sinks + c.alibi) * 4);
}

static const int32_t *copy_ints(int32_t **at, const int32_t *src, int64_t n)
{
    if (!src || n == 0)
        return src;
    int32_t *dst = *at;
    memcpy(dst, src, (size_t)n * sizeof *dst);
    *at += n;
    return dst;
}

static const float *copy_floats(int32_t **at, const float *src, int64_t n)
{
    if (!src || n == 0)
        return src;
    float *dst = (float *)(void *)*at;
    memcpy(dst, src, (size_t)n * sizeof *dst);
    *at += n;
    return dst;
}

/* Carves the plan's arrays from one allocation and repoints the problem at
 * the copies. */
static void lay_out(struct flat_plan *plan, int64_t units, plan_copies c)
{
    char *at = (char *)plan + align64(sizeof *plan);
    plan->units = (flat_unit *)(void *)at;
    at += align64((size_t)units * sizeof(flat_unit));
    plan->costs = (float *)(void *)at;
    at += align64((size_t)units * sizeof(float));
    plan->order = (int64_t *)(void *)at;
    at += align64((size_t)units * sizeof(int64_t));
    plan->merge_units = (int64_t *)(void *)at;
    at += align64((size_t)units * sizeof(int64_t));
    int32_t *ints = (int32_t *)(void *)at;
    plan->p.kv_lens = copy_ints(&ints, plan->p.kv_lens, c.kv_lens);
    plan->p.q_offsets = copy_ints(&ints, plan->p.q_offsets, c.q_offsets);
    plan->p.pages.block_table = copy_ints(&ints, plan->p.pages.block_table, c.block_table);
    plan->p.sinks = copy_floats(&ints, plan->p.sinks, c.sinks);
    plan->p.alibi_slopes = copy_floats(&ints, plan->p.alibi_slopes, c.alibi);
}

static const char *dataflow_name(const flat_tiling *t)
{
    return t->k_in_place ? "DECODE" : t->dataflow == FLAT_DATAFLOW_FLAT ? "FLAT" : "FLASH";
}

/* A mixed call's decode part, after the GEMM-shaped part's fields. */
static void describe_decode_part(const flat_tiling *t, char *at, size_t room)
{
    snprintf(at, room,
             "; mixed call: sequences of <= " FLAT_STR(FLAT_DECODE_MAX_ROWS) " rows per kv head "
             "on the decode path (rows=%d Bk=%d blocks=%lld splits=%d because %s)",
             t->rows, t->bk, (long long)t->tasks, t->splits, t->reason);
}

static void describe(struct flat_plan *plan)
{
    const flat_problem *p = &plan->p;
    const flat_tiling *t = &plan->t;
    int mixed = plan->n_tilings > 1;
    snprintf(plan->describe, sizeof plan->describe,
             "isa=%s dataflow=%s%s B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld Dv=%lld "
             "causal=%d visible=%lld%s%s rows=%d (heads %d x positions %d) Bk=%d blocks=%lld "
             "splits=%d tasks=%lld workers=%d because %s%s",
             plan->uk->name, dataflow_name(t), mixed ? "+DECODE" : "",
             (long long)p->batch, (long long)p->q_heads, (long long)p->kv_heads,
             (long long)p->q_len, (long long)p->kv_len, (long long)p->dim, (long long)p->v_dim,
             p->causal, (long long)p->kv_visible, p->paged ? " paged" : "",
             p->q_offsets ? " ragged" : "", t->rows, t->heads_per_task, t->bq, t->bk,
             (long long)t->tasks, t->splits, (long long)plan->n_units, plan->workers, t->reason,
             flat_fork_threads_lost() ? "; one thread: forked after threaded calls" : "");
    if (mixed) {
        size_t used = strlen(plan->describe);
        describe_decode_part(&plan->t_decode, plan->describe + used,
                             sizeof plan->describe - used);
    }
}

/* Sizes the packed K of each tiling, the scratch a worker needs for any of
 * them and the partial rows of a split unit. */
static void size_buffers(struct flat_plan *plan)
{
    const flat_tiling *tl[2] = {&plan->t, &plan->t_decode};
    plan->scratch_floats = plan->split_floats = 0;
    for (int k = 0; k < plan->n_tilings; k++) {
        plan->scratch_floats = flat_max(plan->scratch_floats, flat_scratch_floats(&plan->p, tl[k]));
        if (tl[k]->splits > 1)
            plan->split_floats = flat_max(plan->split_floats, flat_split_floats(&plan->p, tl[k]));
    }
}

flat_status flat_plan_build(const flat_problem *p, const flat_ukernels *uk,
                            flat_dataflow requested, int threads, int force_splits,
                            flat_plan **out)
{
    *out = NULL;
    /* A child forked after threaded calls runs serially (runtime/fork.h):
     * plan for one thread, so its tiles suit that and describe says so. */
    if (flat_fork_threads_lost())
        threads = 1;
    flat_tiling t[2];
    int n_tilings = flat_tiling_choose_parts(p, uk, requested, threads, t);
    int64_t units = 0, work = 0;
    for (int k = 0; k < n_tilings; k++) {
        if (force_splits > 0 && !t[k].invariant) /* its ranges are part of the bits */
            flat_tiling_set_splits(&t[k], force_splits, threads > 0 ? threads : t[k].threads);
        work += t[k].tasks * t[k].splits;
    }
    if (force_splits > 0 && n_tilings > 1) /* the parts' tasks share the threads */
        t[0].threads = t[1].threads = (int)flat_max(
            1, flat_min(threads > 0 ? threads : flat_parallel_default_threads(), work));
    for (int k = 0; k < n_tilings; k++) {
        int64_t n = flat_partition_count(p, &t[k], t[k].threads);
        flat_tiling_size_k(p, uk, &t[k], n == t[k].tasks);
        units += n;
    }
    plan_copies c = copies_of(p);
    struct flat_plan *plan = malloc(plan_bytes(units, c));
    if (!plan)
        return flat_error(FLAT_ERROR_OUT_OF_MEMORY, "the plan (%zu bytes) could not be allocated",
                          plan_bytes(units, c));
    plan->p = *p;
    plan->uk = uk;
    plan->t = t[0];
    plan->t_decode = n_tilings > 1 ? t[1] : t[0];
    plan->n_tilings = n_tilings;
    plan->workers = t[0].threads;
    plan->n_units = units;
    lay_out(plan, units, c);
    const flat_tiling *tl[2] = {&plan->t, &plan->t_decode};
    plan->n_merges = flat_partition_fill(&plan->p, tl, n_tilings, plan->workers, plan->units,
                                         plan->costs, plan->order, plan->merge_units,
                                         &plan->split_units);
    size_buffers(plan);
    plan->workspace_bytes = (size_t)(plan->scratch_floats * plan->workers +
                                     plan->split_floats * plan->split_units) * sizeof(float);
    describe(plan);
    *out = plan;
    return FLAT_OK;
}

/* FLAT_VERBOSE=1: the plan's description on stderr, once per plan made. */
static void explain(const flat_plan *plan)
{
    const char *v = getenv("FLAT_VERBOSE");
    if (v && *v && *v != '0')
        fprintf(stderr, "flat: %s\n", plan->describe);
}

static flat_status make_plan(const flat_problem *p, const flat_options *opt, flat_plan **plan)
{
    flat_status s;
    char why[256];
    const flat_ukernels *uk =
        flat_dispatch_choose(opt->isa, opt->precision, p->q_dtype, p->kv_dtype, &s, why, sizeof why);
    if (!uk || !flat_dispatch_takes(uk, p->q_dtype, p->kv_dtype, &s))
        return s;
    if (p->batch_invariant && uk->compute == FLAT_I8 &&
        (p->kv_dtype == FLAT_I8 || p->kv_dtype == FLAT_I4))
        /* its u8 P scales are per chunk of a pv call: the bits follow the splits */
        return flat_error(FLAT_ERROR_UNSUPPORTED,
                          "FLAT_FLAG_BATCH_INVARIANT with int8 products (isa %s on an i8 "
                          "or i4 cache): their rounding depends on how keys are split; use "
                          "FLAT_PRECISION_FP32 or AUTO for invariant calls", uk->name);
    s = flat_plan_build(p, uk, opt->dataflow, flat_parallel_threads(opt->num_threads), 0, plan);
    if (s != FLAT_OK)
        return s;
    (*plan)->isa_asked = opt->isa;
    (*plan)->dataflow_asked = opt->dataflow;
    (*plan)->threads_asked = opt->num_threads;
    (*plan)->precision_asked = opt->precision;
    char *d = (*plan)->describe;
    size_t used = strlen(d);
    snprintf(d + used, sizeof (*plan)->describe - used, "; isa %s by %s", uk->name, why);
    explain(*plan);
    return s;
}

flat_status flat_plan_create(const flat_tensor *q, const flat_tensor *k, const flat_tensor *v,
                             const flat_tensor *out, const flat_options *opt, flat_plan **plan)
{
    static const flat_options defaults;
    flat_error_clear();
    if (!plan)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "plan (the result pointer) is NULL");
    *plan = NULL;
    flat_problem p;
    flat_status s = flat_validate(q, k, v, out, opt ? opt : &defaults, &p);
    return s != FLAT_OK ? s : make_plan(&p, opt ? opt : &defaults, plan);
}

flat_status flat_plan_create_paged(const flat_tensor *q, const flat_paged_kv *kv,
                                   const flat_tensor *out, const flat_options *opt,
                                   flat_plan **plan)
{
    static const flat_options defaults;
    flat_error_clear();
    if (!plan)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "plan (the result pointer) is NULL");
    *plan = NULL;
    flat_problem p;
    flat_status s = flat_validate_paged(q, kv, out, opt ? opt : &defaults, &p);
    return s != FLAT_OK ? s : make_plan(&p, opt ? opt : &defaults, plan);
}

void flat_plan_destroy(flat_plan *plan) { free(plan); }

size_t flat_plan_workspace_size(const flat_plan *plan) { return plan ? plan->workspace_bytes : 0; }

int flat_plan_workers(const flat_plan *plan) { return plan ? plan->workers : 0; }

int64_t flat_plan_tasks(const flat_plan *plan, int phase)
{
    if (!plan || phase < 0 || phase > 1)
        return -1;
    return phase == 0 ? plan->n_units : plan->n_merges;
}

const char *flat_plan_describe(const flat_plan *plan)
{
    return plan ? plan->describe : "(no plan)";
}

flat_status flat_plan_run_task(const flat_plan *plan, int phase, int64_t task, int worker,
                               void *workspace)
{
    if (!plan)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "plan is NULL");
    int64_t n = flat_plan_tasks(plan, phase);
    if (n < 0)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "phase (%d) is not 0 or 1", phase);
    if (task < 0 || task >= n)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "task (%lld) outside [0, %lld) of phase %d",
                          (long long)task, (long long)n, phase);
    if (worker < 0 || worker >= plan->workers)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "worker (%d) outside [0, %d)", worker,
                          plan->workers);
    if (!workspace || ((uintptr_t)workspace & 63) != 0)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT,
                          "workspace (%p) must be non-NULL and 64-byte aligned", workspace);
    if (phase == 0)
        flat_plan_run_unit(plan, task, worker, workspace);
    else
        flat_plan_run_merge(plan, task, workspace);
    return FLAT_OK;
}

flat_status flat_plan_execute(const flat_plan *plan, void *workspace)
{
    if (!plan)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "plan is NULL");
    if (workspace && ((uintptr_t)workspace & 63) != 0)
        return flat_error(FLAT_ERROR_INVALID_ARGUMENT, "workspace (%p) must be 64-byte aligned",
                          workspace);
    void *mem = workspace;
    if (!mem && posix_memalign(&mem, 64, plan->workspace_bytes ? plan->workspace_bytes : 64) != 0)
        return flat_error(FLAT_ERROR_OUT_OF_MEMORY,
                          "workspace of %zu bytes could not be allocated", plan->workspace_bytes);
    flat_parallel_execute(plan, mem);
    if (!workspace)
        free(mem);
    return FLAT_OK;
}
