/* The summary after the run: the results of every case that ran, kept here,
 * and the files written from them: the markdown tables (stdout and
 * summary.md, summary_tables.c), gflops.dat for the GFLOP/s plot and
 * roofline.dat for the roofline plot (summary_roofline.c). */
#include "summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

enum { MAX_REPS = 64 };

typedef struct {
    double seconds[MAX_REPS]; /* median call of each repetition */
    int reps;
    char label[32];
    double err;          /* worst relative row error over repetitions */
    char skipped[160];   /* why the case did not run, if it did not */
    int failed;          /* flat_attention returned an error */
} case_result;

static case_result *results;

static case_result *result_at(int index)
{
    if (!results)
        results = calloc((size_t)bench_case_count(), sizeof *results);
    return results && index >= 0 ? &results[index] : NULL;
}

void summary_record(int index, double seconds_per_call, const char *label,
                    const ref_check *check)
{
    case_result *r = result_at(index);
    if (!r)
        return;
    if (r->reps < MAX_REPS)
        r->seconds[r->reps++] = seconds_per_call;
    snprintf(r->label, sizeof r->label, "%s", label);
    double e = isnan(check->max_row_rel) ? INFINITY : check->max_row_rel;
    if (e > r->err)
        r->err = e;
}

void summary_skip(int index, const char *why)
{
    case_result *r = result_at(index);
    if (r && !r->failed)
        snprintf(r->skipped, sizeof r->skipped, "%s", why);
}

void summary_fail(int index, const char *why)
{
    case_result *r = result_at(index);
    if (r) {
        snprintf(r->skipped, sizeof r->skipped, "FAILED: %s", why);
        r->failed = 1;
    }
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double summary_median_seconds(int index)
{
    const case_result *r = result_at(index);
    if (!r || r->reps == 0)
        return NAN;
    double s[MAX_REPS];
    memcpy(s, r->seconds, (size_t)r->reps * sizeof s[0]);
    qsort(s, (size_t)r->reps, sizeof s[0], compare_doubles);
    return r->reps % 2 ? s[r->reps / 2] : 0.5 * (s[r->reps / 2 - 1] + s[r->reps / 2]);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

static const char *summary_label(int index)
{
    return or_empty(result_at(index) ? result_at(index)->label : NULL);
}

const char *summary_skip_reason(int index)
{
    return or_empty(result_at(index) ? result_at(index)->skipped : NULL);
}

const char *summary_auto_choice(int index)
{
    const char *label = summary_label(index);
    return strncmp(label, "AUTO->", 6) == 0 ? label + 6 : "-";
}

double summary_error_bound(int index)
{
    const bench_case *c = bench_case_get(index);
    double table = c && (c->isa == FLAT_ISA_AVX512_BF16 || c->isa == FLAT_ISA_AMX_BF16) ? SUMMARY_MAX_ERROR_BF16_PRODUCTS
                                                       : SUMMARY_MAX_ERROR;
    flat_dtype out = c ? bench_shape_get(c->shape)->q_dtype : FLAT_F32;
    double rounding = out == FLAT_BF16  ? SUMMARY_MAX_ERROR_BF16_OUT
                      : out == FLAT_F16 ? SUMMARY_MAX_ERROR_F16_OUT
                                        : 0;
    return table > rounding ? table : rounding;
}

double summary_worst_error(int index) { return result_at(index) ? result_at(index)->err : 0; }

int summary_touched(int index)
{
    const case_result *r = result_at(index);
    return r && (r->reps > 0 || r->skipped[0]);
}

bench_figures summary_figures(int index)
{
    double t = summary_median_seconds(index);
    if (isnan(t)) /* and no probe measured for a case that never ran */
        return (bench_figures){NAN, NAN, NAN, 0, 0, 0};
    const bench_case *c = bench_case_get(index);
    return figures_of(bench_shape_get(c->shape), c->isa, c->threads, t);
}

int summary_any_ran(int threads)
{
    for (int i = 0; i < bench_case_count(); i++)
        if (bench_case_get(i)->threads == threads && !isnan(summary_median_seconds(i)))
            return 1;
    return 0;
}

static int same_pool(const bench_case *a, const bench_case *b)
{
    return a->kind == b->kind && a->isa == b->isa && a->threads == b->threads &&
           shape_is_decode_like(bench_shape_get(a->shape)) ==
               shape_is_decode_like(bench_shape_get(b->shape));
}

double summary_recent_rate(const bench_case *c)
{
    double rate = 0;
    for (int i = 0; i < bench_case_count(); i++) {
        double t = summary_median_seconds(i);
        if (!isnan(t) && same_pool(bench_case_get(i), c))
            rate = shape_flops(bench_shape_get(bench_case_get(i)->shape)) / t * 1e-9;
    }
    return rate;
}

static int over_marked;

const char *summary_over_mark(double frac)
{
    if (!(frac > 1.0))
        return "";
    over_marked = 1;
    return "*";
}

void summary_print_over_note(FILE *f)
{
    if (!over_marked)
        return;
    fprintf(f, "\n\\* above 100%%: the ceiling was under-measured for this call, not beaten: "
               "part of K/V was still served from L3/L2 between calls, or the read probe "
               "ran while other processes loaded the memory.\n");
    over_marked = 0;
}

int summary_find_case(bench_kind kind, int shape, flat_isa isa, flat_dataflow df, int threads)
{
    for (int i = 0; i < bench_case_count(); i++) {
        const bench_case *c = bench_case_get(i);
        if (c->kind == kind && c->shape == shape && c->threads == threads &&
            (kind == BENCH_UNFUSED || (c->isa == isa && c->dataflow == df)))
            return i;
    }
    return -1;
}

flat_isa summary_isa(void)
{
    int n;
    const flat_ukernels *const *tables = flat_dispatch_tables(&n);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < bench_case_count(); i++)
            if (bench_case_get(i)->kind == BENCH_FLAT && bench_case_get(i)->isa == tables[t]->isa &&
                !isnan(summary_median_seconds(i)))
                return tables[t]->isa;
    return flat_isa_detect();
}

static void write_file(const char *dir, const char *name, const bench_config *cfg, flat_isa isa,
                       void (*writer)(FILE *, const bench_config *, flat_isa))
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    writer(f, cfg, isa);
    fclose(f);
}

static int count_failures(void)
{
    int failures = 0;
    for (int i = 0; i < bench_case_count(); i++)
        failures += result_at(i)->failed || result_at(i)->err > summary_error_bound(i);
    return failures;
}

int bench_summary_print(const bench_config *cfg)
{
    if (!results) { /* no attention case ran */
        ukernel_summary_print(stdout);
        return 0;
    }
    flat_isa isa = summary_isa();
    printf("\n");
    summary_write_text(stdout, cfg, isa);
    fflush(stdout);
    if (cfg->summary_dir) {
        write_file(cfg->summary_dir, "summary.md", cfg, isa, summary_write_text);
        write_file(cfg->summary_dir, "gflops.dat", cfg, isa, summary_write_gflops_dat);
        write_file(cfg->summary_dir, "roofline.dat", cfg, isa, summary_write_roofline_dat);
    }
    int failures = count_failures();
    if (failures)
        printf("%d case(s) FAILED: flat_attention errors or outputs off the reference by "
               "more than %g (%g for bf16 products)\n", failures, SUMMARY_MAX_ERROR,
               SUMMARY_MAX_ERROR_BF16_PRODUCTS);
    return failures;
}
