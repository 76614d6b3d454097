/* The summary after the run: per shape and thread count, flat's dataflows
 * against the unfused baseline, as a markdown table (stdout and
 * summary.md) and a data file for the GFLOP/s plot (gflops.dat). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "probes.h"
#include "suite.h"

enum { MAX_REPS = 64, CELL = 16 };

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
    return results ? &results[index] : NULL;
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

/* Median seconds per call of case `index`, NAN when it did not run. */
static double median_seconds(int index)
{
    const case_result *r = index >= 0 ? result_at(index) : NULL;
    if (!r || r->reps == 0)
        return NAN;
    double s[MAX_REPS];
    memcpy(s, r->seconds, (size_t)r->reps * sizeof s[0]);
    qsort(s, (size_t)r->reps, sizeof s[0], compare_doubles);
    return r->reps % 2 ? s[r->reps / 2] : 0.5 * (s[r->reps / 2 - 1] + s[r->reps / 2]);
}

static int same_pool(const bench_case *a, const bench_case *b)
{
    return a->kind == b->kind && a->isa == b->isa && a->threads == b->threads &&
           shape_is_decode_like(bench_shape_get(a->shape)) == shape_is_decode_like(bench_shape_get(b->shape));
}

double summary_recent_rate(const bench_case *c)
{
    double rate = 0;
    for (int i = 0; i < bench_case_count(); i++) {
        double t = median_seconds(i);
        if (!isnan(t) && same_pool(bench_case_get(i), c))
            rate = shape_flops(bench_shape_get(bench_case_get(i)->shape)) / t * 1e-9;
    }
    return rate;
}

static int find_case(bench_kind kind, int shape, flat_isa isa, flat_dataflow df, int threads)
{
    for (int i = 0; i < bench_case_count(); i++) {
        const bench_case *c = bench_case_get(i);
        if (c->kind == kind && c->shape == shape && c->threads == threads &&
            (kind == BENCH_UNFUSED || (c->isa == isa && c->dataflow == df)))
            return i;
    }
    return -1;
}

/* GFLOP/s of a case as a table cell: "-" not run, "skip" skipped, a trailing
 * "!" when its output failed the reference check. */
static void gflops_cell(int index, char *cell)
{
    const case_result *r = index >= 0 ? result_at(index) : NULL;
    double s = median_seconds(index);
    if (isnan(s)) {
        snprintf(cell, CELL, "%s", r && r->skipped[0] ? "skip" : "-");
        return;
    }
    double gflops = shape_flops(bench_shape_get(bench_case_get(index)->shape)) / s * 1e-9;
    snprintf(cell, CELL, "%.1f%s", gflops, r->err > SUMMARY_MAX_ERROR ? " !" : "");
}

/* The kernel table the main table shows: the best one that ran. */
static flat_isa summary_isa(void)
{
    int n;
    const flat_ukernels *const *tables = flat_dispatch_tables(&n);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < bench_case_count(); i++)
            if (bench_case_get(i)->kind == BENCH_FLAT && bench_case_get(i)->isa == tables[t]->isa &&
                !isnan(median_seconds(i)))
                return tables[t]->isa;
    return flat_isa_detect();
}

static void cpu_model(char *buf, size_t len)
{
    char line[256];
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && strncmp(line, "model name", 10) == 0) {
            snprintf(buf, len, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
            break;
        }
    }
    if (f)
        fclose(f);
}

static int any_decode_ran(int threads)
{
    for (int i = 0; i < bench_case_count(); i++) {
        const bench_case *c = bench_case_get(i);
        if (c->threads == threads && shape_is_decode_like(bench_shape_get(c->shape)) &&
            !isnan(median_seconds(i)))
            return 1;
    }
    return 0;
}

static void print_ceilings(FILE *f, const bench_config *cfg, flat_isa isa)
{
    for (int t = 0; t < cfg->n_threads; t++) {
        const probe_result *p = probe_fma_peak(isa, cfg->threads[t]);
        if (p)
            fprintf(f, "- FP32 FMA peak, %s, %d thread(s): %.1f GFLOP/s (median of 7 runs, "
                       "spread %.1f%%, %d round(s))\n",
                    flat_isa_name(isa), cfg->threads[t], p->value, 100 * p->spread, p->rounds);
    }
    for (int t = 0; t < cfg->n_threads; t++) {
        if (!any_decode_ran(cfg->threads[t]))
            continue;
        const probe_result *p = probe_triad_bandwidth(cfg->threads[t]);
        fprintf(f, "- STREAM triad, %d thread(s): %.1f GB/s (spread %.1f%%)\n", cfg->threads[t],
                p->value, 100 * p->spread);
    }
}

/* The 1-minute load average: above the thread count, other processes shared
 * the cores during the run and the figures are pessimistic. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &load) != 1)
        load = -1;
    if (f)
        fclose(f);
    return load;
}

static void print_header(FILE *f, const bench_config *cfg, flat_isa isa)
{
    char model[128];
    const char *pinned = getenv("OPENBLAS_CORETYPE");
    cpu_model(model, sizeof model);
    fprintf(f, "- Machine: %s, %ld logical CPUs; flat %s, kernel table %s; baseline: OpenBLAS "
               "%s kernels%s%s%s\n",
            model, sysconf(_SC_NPROCESSORS_ONLN), flat_version(), flat_isa_name(isa),
            openblas_get_corename(), pinned ? " (pinned by OPENBLAS_CORETYPE=" : "",
            pinned ? pinned : "", pinned ? ")" : "");
    print_ceilings(f, cfg, isa);
    fprintf(f, "- Load average (1 min) when the suite ended: %.2f\n", load_average());
    fprintf(f, "\nTimes are medians over all timed calls. GFLOP/s = 4*B*Hq*D per visible "
               "query-key pair / time (shapes.csv header); %% peak and speed-up are AUTO's; %% BW: K and V bytes "
               "read per second over the triad bandwidth (decode only); ! = output failed "
               "the reference check.\n\n");
}

typedef struct {
    int flat, flash, autoflow, baseline; /* case indices, -1 if not listed */
} row_cases;

static row_cases cases_of_row(int shape, int threads, flat_isa isa)
{
    return (row_cases){
        find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_FLAT, threads),
        find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_FLASH, threads),
        find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_AUTO, threads),
        find_case(BENCH_UNFUSED, shape, isa, FLAT_DATAFLOW_AUTO, threads),
    };
}

static int touched(int index)
{
    const case_result *r = index >= 0 ? result_at(index) : NULL;
    return r && (r->reps > 0 || r->skipped[0]);
}

/* AUTO's figures: its choice, ms, % of the FMA peak, % of triad bandwidth,
 * speed-up over the baseline. */
static void auto_cells(const row_cases *rc, int threads, flat_isa isa, char cells[5][CELL])
{
    const bench_shape *s = bench_shape_get(bench_case_get(rc->autoflow)->shape);
    double t = median_seconds(rc->autoflow), base = median_seconds(rc->baseline);
    const probe_result *peak = probe_fma_peak(isa, threads);
    const char *label = result_at(rc->autoflow)->label;
    snprintf(cells[0], CELL, "%s", strncmp(label, "AUTO->", 6) == 0 ? label + 6 : "-");
    for (int i = 1; i < 5; i++)
        snprintf(cells[i], CELL, "-");
    if (isnan(t))
        return;
    snprintf(cells[1], CELL, "%.2f", 1e3 * t);
    if (peak && peak->value > 0)
        snprintf(cells[2], CELL, "%.1f", 100 * shape_flops(s) / t * 1e-9 / peak->value);
    if (shape_is_decode_like(s)) {
        const probe_result *bw = probe_triad_bandwidth(threads);
        snprintf(cells[3], CELL, "%.1f", 100 * shape_kv_bytes(s) / t * 1e-9 / bw->value);
    }
    if (!isnan(base))
        snprintf(cells[4], CELL, "%.2fx", base / t);
}

static void print_table_head(FILE *f)
{
    fprintf(f, "| %-16s | %3s | %9s | %9s | %5s | %9s | %9s | %6s | %6s | %9s | %8s |\n",
            "shape", "thr", "FLAT", "FLASH", "AUTO", "AUTO ms", "AUTO", "% peak", "% BW",
            "OpenBLAS", "speed-up");
    fprintf(f, "|%s|----:|%s|%s|-------|%s|%s|-------:|-------:|%s|---------:|\n",
            "------------------", "----------:", "----------:", "----------:", "----------:",
            "----------:");
}

static void print_row(FILE *f, int shape, int threads, flat_isa isa)
{
    row_cases rc = cases_of_row(shape, threads, isa);
    if (!touched(rc.flat) && !touched(rc.flash) && !touched(rc.autoflow) && !touched(rc.baseline))
        return; /* filtered out */
    char flat[CELL], flash[CELL], autoflow[CELL], base[CELL], a[5][CELL];
    gflops_cell(rc.flat, flat);
    gflops_cell(rc.flash, flash);
    gflops_cell(rc.autoflow, autoflow);
    gflops_cell(rc.baseline, base);
    if (rc.autoflow >= 0)
        auto_cells(&rc, threads, isa, a);
    else
        for (int i = 0; i < 5; i++)
            snprintf(a[i], CELL, "-");
    fprintf(f, "| %-16s | %3d | %9s | %9s | %5s | %9s | %9s | %6s | %6s | %9s | %8s |\n",
            bench_shape_get(shape)->name, threads, flat, flash, a[0], a[1], autoflow, a[2], a[3],
            base, a[4]);
}

/* Every other flat case that ran (the non-summary kernel tables). */
static void print_other_isas(FILE *f, flat_isa shown)
{
    int header = 0;
    for (int i = 0; i < bench_case_count(); i++) {
        const bench_case *c = bench_case_get(i);
        double t = median_seconds(i);
        if (c->kind != BENCH_FLAT || c->isa == shown || isnan(t))
            continue;
        if (!header++)
            fprintf(f, "\nOther kernel tables:\n\n| %-36s | %9s | %9s | %6s |\n|%s|%s|%s|%s|\n",
                    "case", "ms", "GFLOP/s", "% peak", "--------------------------------------",
                    "----------:", "----------:", "-------:");
        double gflops = shape_flops(bench_shape_get(c->shape)) / t * 1e-9;
        const probe_result *peak = probe_fma_peak(c->isa, c->threads);
        fprintf(f, "| %-36s | %9.2f | %9.1f%s | %6.1f |\n", c->name, 1e3 * t, gflops,
                result_at(i)->err > SUMMARY_MAX_ERROR ? "!" : "",
                peak ? 100 * gflops / peak->value : NAN);
    }
}

static void print_skips(FILE *f)
{
    for (int i = 0; i < bench_case_count(); i++)
        if (result_at(i)->skipped[0])
            fprintf(f, "- %s: %s\n", bench_case_get(i)->name, result_at(i)->skipped);
}

static void print_summary(FILE *f, const bench_config *cfg, flat_isa isa)
{
    print_header(f, cfg, isa);
    print_table_head(f);
    for (int s = 0; s < bench_shape_count(); s++)
        for (int t = 0; t < cfg->n_threads; t++)
            print_row(f, s, cfg->threads[t], isa);
    print_other_isas(f, isa);
    ukernel_summary_print(f);
    fprintf(f, "\n");
    print_skips(f);
}

static void print_gflops_value(FILE *f, int index)
{
    double t = median_seconds(index);
    fprintf(f, " %10.2f",
            isnan(t) ? NAN : shape_flops(bench_shape_get(bench_case_get(index)->shape)) / t * 1e-9);
}

/* One gnuplot data block per thread count: shape FLAT FLASH AUTO OpenBLAS peak. */
static void write_gflops_dat(FILE *f, const bench_config *cfg, flat_isa isa)
{
    for (int t = 0; t < cfg->n_threads; t++) {
        const probe_result *peak = probe_fma_peak(isa, cfg->threads[t]);
        fprintf(f, "%s# threads=%d isa=%s\n# shape FLAT FLASH AUTO OpenBLAS peak\n",
                t ? "\n\n" : "", cfg->threads[t], flat_isa_name(isa));
        for (int s = 0; s < bench_shape_count(); s++) {
            row_cases rc = cases_of_row(s, cfg->threads[t], isa);
            fprintf(f, "%-16s", bench_shape_get(s)->name);
            print_gflops_value(f, rc.flat);
            print_gflops_value(f, rc.flash);
            print_gflops_value(f, rc.autoflow);
            print_gflops_value(f, rc.baseline);
            fprintf(f, " %10.2f\n", peak ? peak->value : NAN);
        }
    }
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
        failures += result_at(i)->failed || result_at(i)->err > SUMMARY_MAX_ERROR;
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
    print_summary(stdout, cfg, isa);
    fflush(stdout);
    if (cfg->summary_dir) {
        write_file(cfg->summary_dir, "summary.md", cfg, isa, print_summary);
        write_file(cfg->summary_dir, "gflops.dat", cfg, isa, write_gflops_dat);
    }
    int failures = count_failures();
    if (failures)
        printf("%d case(s) FAILED: flat_attention errors or outputs off the reference by "
               "more than %g\n", failures, SUMMARY_MAX_ERROR);
    return failures;
}
