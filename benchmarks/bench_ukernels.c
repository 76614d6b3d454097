/*
 * Micro-kernel benchmarks (research/aesthetics.md 9.6): qk, exp2_row and pv
 * of every kernel table this CPU runs, called through the contract of
 * kernels/ukernel.h only. The list comes from runtime/dispatch.h, so a new
 * table is benchmarked here without an edit (XNNPACK's bench/ pattern).
 *
 * Working sets are the ones the runtime tiles for: K panels and V rows in
 * L2, the score tile in L1 (runtime/plan.c). Unlike XNNPACK's rotation of
 * buffers through memory, this measures each kernel where it runs in flat;
 * the attention cases measure the whole, memory traffic included.
 * Single-threaded: a micro-kernel runs on one core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h" /* flat_kv_src_plain */
#include "dispatch.h"
#include "explain.h"
#include "probes.h"
#include "suite.h"

enum {
    KEYS = 512,     /* keys of a qk call: a K strip that stays in L2 */
    Q_PANELS = 64,  /* Q panels per qk iteration, as a task streams them */
    EXP_ROWS = 64,  /* rows per exp2_row iteration */
    PV_ROWS = 48,   /* rows of a pv call: a task's block */
    PV_KEYS = 256,  /* keys of a pv call */
    PV_BLOCKS = 4,  /* V blocks per pv iteration */
    MAX_CASES = 64,
};

typedef enum { UK_QK, UK_EXP2, UK_PV } uk_kernel;

typedef struct {
    char name[64];
    const flat_ukernels *table;
    uk_kernel kernel;
    int dim;
} uk_case;

typedef struct {
    const uk_case *c;
    float *a, *b, *out; /* qk: Q panels, K panels, S; exp2: -, rows, -; pv: P, V, O */
    double work;        /* FLOPs (qk, pv) or elements (exp2) per iteration */
} uk_run;

static uk_case cases[MAX_CASES];
static int n_cases;
static double rates[MAX_CASES]; /* last result of each case, for the summary */

static void add_case(const flat_ukernels *t, uk_kernel k, int dim)
{
    static const char *const names[] = {"qk", "exp2_row", "pv"};
    if (n_cases == MAX_CASES)
        return;
    uk_case *c = &cases[n_cases++];
    *c = (uk_case){"", t, k, dim};
    if (k == UK_EXP2)
        snprintf(c->name, sizeof c->name, "ukernel/%s/exp2_row", t->name);
    else
        snprintf(c->name, sizeof c->name, "ukernel/%s/%s/d%d", t->name, names[k], dim);
}

static int uk_count(void)
{
    if (n_cases == 0) {
        int n;
        const flat_ukernels *const *tables = flat_dispatch_tables(&n);
        for (int i = 0; i < n; i++) {
            if (!flat_dispatch_runnable(tables[i]))
                continue;
            add_case(tables[i], UK_QK, 64);
            add_case(tables[i], UK_QK, 128);
            add_case(tables[i], UK_EXP2, 0);
            add_case(tables[i], UK_PV, 64);
            add_case(tables[i], UK_PV, 128);
        }
    }
    return n_cases;
}

static const char *uk_name(int index) { return cases[index].name; }

static float *zero_floats(int64_t n)
{
    float *x = NULL;
    if (posix_memalign((void **)&x, 64, (size_t)n * sizeof *x) != 0)
        return NULL;
    return memset(x, 0, (size_t)n * sizeof *x);
}

static float *random_floats(int64_t n, float lo, float hi, unsigned seed)
{
    float *x = zero_floats(n);
    srand(seed);
    for (int64_t i = 0; x && i < n; i++)
        x[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return x;
}

static void free_buffers(uk_run *r)
{
    free(r->a);
    free(r->b);
    free(r->out);
}

/* Q_PANELS packed Q panels and one packed strip of KEYS keys. */
static int setup_qk(uk_run *r)
{
    const flat_ukernels *t = r->c->table;
    int d = r->c->dim, rows = Q_PANELS * t->mr;
    float *q = random_floats((int64_t)rows * d, -1, 1, 1);
    float *k = random_floats((int64_t)KEYS * d, -1, 1, 2);
    const float **row_ptrs = malloc((size_t)rows * sizeof *row_ptrs);
    r->a = zero_floats((int64_t)rows * d);
    r->b = zero_floats((int64_t)KEYS * d);
    r->out = zero_floats((int64_t)t->mr * KEYS);
    int ok = q && k && row_ptrs && r->a && r->b && r->out;
    if (ok) {
        for (int i = 0; i < rows; i++)
            row_ptrs[i] = q + (int64_t)i * d;
        t->pack_q(rows, d, (const void *const *)row_ptrs, FLAT_F32, 1.0f, r->a);
        const flat_kv_src src = flat_kv_src_plain(k, d, FLAT_F32);
        t->pack_k(KEYS, d, &src, r->b);
    }
    free(q);
    free(k);
    free(row_ptrs);
    r->work = 2.0 * rows * KEYS * d;
    return ok ? 0 : -1;
}

/* Rows in [0.5, 1] with m = 2: exp2(s - 2) maps them back into
 * [0.35, 0.5], so repeated iterations stay normal and in range. */
static int setup_exp2(uk_run *r)
{
    r->b = random_floats((int64_t)EXP_ROWS * KEYS, 0.5f, 1.0f, 3);
    r->work = (double)EXP_ROWS * KEYS;
    return r->b ? 0 : -1;
}

static int setup_pv(uk_run *r)
{
    int d = r->c->dim;
    r->a = random_floats((int64_t)PV_ROWS * PV_KEYS, 0, 1, 4);
    r->b = random_floats((int64_t)PV_BLOCKS * PV_KEYS * d, -1, 1, 5);
    r->out = zero_floats((int64_t)PV_ROWS * d);
    r->work = 2.0 * PV_BLOCKS * PV_ROWS * PV_KEYS * d;
    return r->a && r->b && r->out ? 0 : -1;
}

static void *uk_open(int index, char *why, size_t why_len)
{
    uk_run *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    r->c = &cases[index];
    int (*setup[])(uk_run *) = {setup_qk, setup_exp2, setup_pv};
    if (setup[r->c->kernel](r) != 0) {
        snprintf(why, why_len, "out of memory");
        free_buffers(r);
        free(r);
        return NULL;
    }
    if (r->c->kernel != UK_EXP2)
        probe_fma_peak(r->c->table->isa, 1); /* outside the timed loop */
    return r;
}

static void run_kernel(const uk_run *r)
{
    const flat_ukernels *t = r->c->table;
    int d = r->c->dim;
    switch (r->c->kernel) {
    case UK_QK:
        for (int p = 0; p < Q_PANELS; p++)
            t->qk(d, KEYS / t->nr, r->a + (int64_t)p * d * t->mr, r->b, r->out, KEYS);
        break;
    case UK_EXP2:
        for (int i = 0; i < EXP_ROWS; i++)
            t->exp2_row(KEYS, KEYS, r->b + (int64_t)i * KEYS, 2.0f);
        break;
    case UK_PV:
        for (int blk = 0; blk < PV_BLOCKS; blk++) {
            const flat_kv_src v = flat_kv_src_plain(r->b + (int64_t)blk * PV_KEYS * d, d, FLAT_F32);
            t->pv(PV_ROWS, PV_KEYS, d, r->a, PV_KEYS, &v, r->out, d, NULL);
        }
        break;
    }
}

static double uk_iterate(void *run)
{
    double t0 = bench_now();
    run_kernel(run);
    return bench_now() - t0;
}

static const char *uk_error(const void *run)
{
    (void)run;
    return "";
}

static const char *uk_label(const void *run)
{
    (void)run;
    return "";
}

static int uk_finish(void *run, double seconds, bench_counter *out, int max)
{
    const uk_run *r = run;
    double rate = r->work / seconds * 1e-9;
    rates[r->c - cases] = rate;
    if (max < 2)
        return 0;
    if (r->c->kernel == UK_EXP2) {
        out[0] = (bench_counter){"Gelem/s", rate};
        return 1;
    }
    const probe_result *peak = probe_fma_peak(r->c->table->isa, 1);
    out[0] = (bench_counter){"GFLOP/s", rate};
    out[1] = (bench_counter){"peak_frac", peak && peak->value > 0 ? rate / peak->value : 0};
    return 2;
}

static void uk_close(void *run)
{
    uk_run *r = run;
    if (r)
        free_buffers(r);
    free(r);
}

const bench_family bench_ukernel_family = {uk_count, uk_name,   uk_open,  uk_iterate,
                                           uk_error, uk_finish, uk_label, uk_close};

void ukernel_summary_print(FILE *f)
{
    int header = 0;
    for (int i = 0; i < n_cases; i++) {
        if (rates[i] <= 0)
            continue;
        if (!header++)
            fprintf(f, "\nMicro-kernels, 1 thread, working sets in L1/L2 as the runtime tiles "
                       "them:\n\n| %-28s | %15s | %6s |\n|%s|%s|%s|\n",
                    "kernel", "rate", "% peak", "------------------------------",
                    "----------------:", "-------:");
        const uk_case *c = &cases[i];
        const probe_result *peak = probe_fma_peak(c->table->isa, 1);
        if (c->kernel == UK_EXP2)
            fprintf(f, "| %-28s | %7.2f Gelem/s | %6s |\n", c->name, rates[i], "-");
        else
            fprintf(f, "| %-28s | %7.1f GFLOP/s | %6.1f |\n", c->name, rates[i],
                    peak ? 100 * rates[i] / peak->value : 0);
    }
}
