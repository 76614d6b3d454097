/* The summary's text: machine and ceilings, the table of the shape set (flat's
 * dataflows against the unfused baseline, with AUTO's place on the roofline),
 * the sweep (summary_roofline.c), the other kernel tables, the micro-kernels,
 * and what was skipped; and gflops.dat for the GFLOP/s plot. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probes.h"
#include "summary.h"

enum { AUTO_CELLS = 8 };

/* GFLOP/s of a case as a table cell: "-" not run, "skip" skipped, a trailing
 * "!" when its output failed the reference check. */
static void gflops_cell(int index, char *cell)
{
    double s = summary_median_seconds(index);
    if (isnan(s)) {
        snprintf(cell, CELL, "%s", summary_skip_reason(index)[0] ? "skip" : "-");
        return;
    }
    snprintf(cell, CELL, "%.1f%s", summary_figures(index).gflops,
             summary_worst_error(index) > summary_error_bound(index) ? " !" : "");
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

static void print_ceilings(FILE *f, const bench_config *cfg, flat_isa isa)
{
    for (int t = 0; t < cfg->n_threads; t++) {
        int threads = cfg->threads[t];
        if (!summary_any_ran(threads))
            continue; /* its probes never ran: measuring them now would only cost time */
        const probe_result *p = probe_fma_peak(isa, threads);
        const probe_result *rd = probe_read_bandwidth(threads);
        const probe_result *tr = probe_triad_bandwidth(threads);
        if (p)
            fprintf(f, "- FP32 FMA peak, %s, %d thread(s): %.1f GFLOP/s (median of 7 runs, "
                       "spread %.1f%%, %d round(s))\n",
                    flat_isa_name(isa), threads, p->value, 100 * p->spread, p->rounds);
        fprintf(f, "- Read bandwidth (the roofline's and %% BW's ceiling), %d thread(s): "
                   "%.1f GB/s (best of 9 passes over %.0f MiB, spread %.1f%%)",
                threads, rd->value, (double)probe_read_bytes() / (1 << 20), 100 * rd->spread);
        fprintf(f, "; STREAM triad for comparison: %.1f GB/s", tr->value);
        if (p && rd->value > 0)
            fprintf(f, "; ridge at %.1f FLOP/B", p->value / rd->value);
        fprintf(f, "\n");
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
    fprintf(f, "- Machine: %s, %ld logical CPUs, %.0f MiB last-level cache (%s); flat %s, "
               "kernel table %s; baseline: OpenBLAS %s kernels%s%s%s\n",
            model, sysconf(_SC_NPROCESSORS_ONLN), (double)probe_llc_bytes() / (1 << 20),
            probe_llc_source(), flat_version(), flat_isa_name(isa), openblas_get_corename(),
            pinned ? " (pinned by OPENBLAS_CORETYPE=" : "", pinned ? pinned : "",
            pinned ? ")" : "");
    fprintf(f, "- Cold K/V: each shape rotates through identical K/V copies spanning %.0f MiB "
               "(4x the LLC, bounded to 64-256 MiB whatever the LLC claims), one copy per "
               "call; the read probe sums %.0f MiB (8x the LLC within 1-2 GiB)\n",
            (double)probe_cold_span_bytes() / (1 << 20), (double)probe_read_bytes() / (1 << 20));
    print_ceilings(f, cfg, isa);
    fprintf(f, "- Load average (1 min) when the suite ended: %.2f\n", load_average());
    fprintf(f, "\nTimes are medians over all timed calls; each call starts with K and V out of "
               "the last-level cache. GFLOP/s = 4*B*Hq*D per visible query-key pair / time "
               "(shapes.csv header). The AUTO columns are AUTO's: %% peak = GFLOP/s over the "
               "FMA peak; FLOP/B = FLOPs over the bytes of K and V read once; %% roof = "
               "GFLOP/s over the attainable min(FMA peak, FLOP/B x read bandwidth); KV GB/s "
               "and %% BW (decode-like shapes, at most %d query rows) = K and V bytes read per "
               "second, and that over the read bandwidth at the same thread count; speed-up "
               "over OpenBLAS. ! = output failed the reference check.\n\n",
            SHAPE_DECODE_MAX_Q_LEN);
}

typedef struct {
    int flat, flash, decode, autoflow, baseline; /* case indices, -1 if not listed */
} row_cases;

static row_cases cases_of_row(int shape, int threads, flat_isa isa)
{
    return (row_cases){
        summary_find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_FLAT, threads),
        summary_find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_FLASH, threads),
        summary_find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_DECODE, threads),
        summary_find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_AUTO, threads),
        summary_find_case(BENCH_UNFUSED, shape, isa, FLAT_DATAFLOW_AUTO, threads),
    };
}

static void percent_cell(char *cell, double frac)
{
    if (!isnan(frac))
        snprintf(cell, CELL, "%.1f%s", 100 * frac, summary_over_mark(frac));
}

/* AUTO's figures: its choice, ms, % of the FMA peak, FLOP/B, % of the
 * roofline, K/V GB/s and % of read bandwidth (decode-like), speed-up over
 * the baseline. */
static void auto_cells(const row_cases *rc, char cells[AUTO_CELLS][CELL])
{
    const bench_shape *s = bench_shape_get(bench_case_get(rc->autoflow)->shape);
    double t = summary_median_seconds(rc->autoflow);
    double base = summary_median_seconds(rc->baseline);
    for (int i = 0; i < AUTO_CELLS; i++)
        snprintf(cells[i], CELL, "-");
    snprintf(cells[0], CELL, "%s", summary_auto_choice(rc->autoflow));
    if (isnan(t))
        return;
    bench_figures fig = summary_figures(rc->autoflow);
    snprintf(cells[1], CELL, "%.2f", 1e3 * t);
    percent_cell(cells[2], figures_peak_frac(&fig));
    snprintf(cells[3], CELL, "%.1f", fig.flops_per_byte);
    percent_cell(cells[4], figures_roof_frac(&fig));
    if (shape_is_decode_like(s)) {
        snprintf(cells[5], CELL, "%.1f", fig.kv_gbs);
        percent_cell(cells[6], figures_bw_frac(&fig));
    }
    if (!isnan(base))
        snprintf(cells[7], CELL, "%.2fx", base / t);
}

static void print_table_head(FILE *f)
{
    fprintf(f, "| %-24s | %3s | %9s | %9s | %9s | %6s | %9s | %9s | %6s | %7s | %6s | %7s "
               "| %6s | %9s | %8s |\n",
            "shape", "thr", "FLAT", "FLASH", "DECODE", "AUTO", "AUTO ms", "AUTO", "% peak",
            "FLOP/B", "% roof", "KV GB/s", "% BW", "OpenBLAS", "speed-up");
    fprintf(f, "|--------------------------|----:|----------:|----------:|----------:|--------|----------:"
               "|----------:|-------:|--------:|-------:|--------:|-------:|----------:"
               "|---------:|\n");
}

static void print_row(FILE *f, int shape, int threads, flat_isa isa)
{
    row_cases rc = cases_of_row(shape, threads, isa);
    if (!summary_touched(rc.flat) && !summary_touched(rc.flash) && !summary_touched(rc.decode) &&
        !summary_touched(rc.autoflow) && !summary_touched(rc.baseline))
        return; /* filtered out */
    char flat[CELL], flash[CELL], decode[CELL], autoflow[CELL], base[CELL], a[AUTO_CELLS][CELL];
    gflops_cell(rc.flat, flat);
    gflops_cell(rc.flash, flash);
    gflops_cell(rc.decode, decode);
    gflops_cell(rc.autoflow, autoflow);
    gflops_cell(rc.baseline, base);
    if (rc.autoflow >= 0)
        auto_cells(&rc, a);
    else
        for (int i = 0; i < AUTO_CELLS; i++)
            snprintf(a[i], CELL, "-");
    fprintf(f, "| %-24s | %3d | %9s | %9s | %9s | %6s | %9s | %9s | %6s | %7s | %6s | %7s "
               "| %6s | %9s | %8s |\n",
            bench_shape_get(shape)->name, threads, flat, flash, decode, a[0], a[1], autoflow,
            a[2], a[3], a[4], a[5], a[6], base, a[7]);
}

/* Every other flat case that ran (the non-summary kernel tables). */
static void print_other_isas(FILE *f, flat_isa shown)
{
    int header = 0;
    for (int i = 0; i < bench_case_count(); i++) {
        const bench_case *c = bench_case_get(i);
        double t = summary_median_seconds(i);
        if (c->kind != BENCH_FLAT || c->isa == shown || isnan(t))
            continue;
        if (!header++)
            fprintf(f, "\nOther kernel tables:\n\n| %-36s | %9s | %9s | %6s | %6s |\n"
                       "|%s|%s|%s|%s|%s|\n",
                    "case", "ms", "GFLOP/s", "% peak", "% roof",
                    "--------------------------------------", "----------:", "----------:",
                    "-------:", "-------:");
        bench_figures fig = summary_figures(i);
        fprintf(f, "| %-36s | %9.2f | %9.1f%s | %6.1f | %6.1f |\n", c->name, 1e3 * t, fig.gflops,
                summary_worst_error(i) > summary_error_bound(i) ? "!" : "",
                100 * figures_peak_frac(&fig), 100 * figures_roof_frac(&fig));
    }
}

static void print_skips(FILE *f)
{
    for (int i = 0; i < bench_case_count(); i++)
        if (summary_skip_reason(i)[0])
            fprintf(f, "- %s: %s\n", bench_case_get(i)->name, summary_skip_reason(i));
}

void summary_write_text(FILE *f, const bench_config *cfg, flat_isa isa)
{
    print_header(f, cfg, isa);
    print_table_head(f);
    for (int s = 0; s < bench_shape_count(); s++)
        for (int t = 0; t < cfg->n_threads && !bench_shape_in_sweep(s); t++)
            print_row(f, s, cfg->threads[t], isa);
    summary_print_over_note(f);
    summary_print_sweep(f, cfg, isa);
    summary_print_over_note(f);
    print_other_isas(f, isa);
    ukernel_summary_print(f);
    fprintf(f, "\n");
    print_skips(f);
}

static void print_gflops_value(FILE *f, int index)
{
    fprintf(f, " %10.2f", summary_figures(index).gflops);
}

static int row_ran(const row_cases *rc)
{
    return !isnan(summary_median_seconds(rc->flat)) || !isnan(summary_median_seconds(rc->flash)) ||
           !isnan(summary_median_seconds(rc->autoflow)) ||
           !isnan(summary_median_seconds(rc->baseline));
}

static int block_ran(int threads, flat_isa isa)
{
    for (int s = 0; s < bench_shape_count() && !bench_shape_in_sweep(s); s++) {
        row_cases rc = cases_of_row(s, threads, isa);
        if (row_ran(&rc))
            return 1;
    }
    return 0;
}

/* One gnuplot data block per thread count of which something ran: shape FLAT
 * FLASH AUTO OpenBLAS peak, a row per shape that ran (a budget that skipped
 * cases leaves the plot what ran; no block at all when nothing did). */
void summary_write_gflops_dat(FILE *f, const bench_config *cfg, flat_isa isa)
{
    int blocks = 0;
    for (int t = 0; t < cfg->n_threads; t++) {
        if (!block_ran(cfg->threads[t], isa))
            continue;
        const probe_result *peak = probe_fma_peak(isa, cfg->threads[t]);
        fprintf(f, "%s# threads=%d isa=%s\n# shape FLAT FLASH AUTO OpenBLAS peak\n",
                blocks++ ? "\n\n" : "", cfg->threads[t], flat_isa_name(isa));
        for (int s = 0; s < bench_shape_count() && !bench_shape_in_sweep(s); s++) {
            row_cases rc = cases_of_row(s, cfg->threads[t], isa);
            if (!row_ran(&rc))
                continue;
            fprintf(f, "%-24s", bench_shape_get(s)->name);
            print_gflops_value(f, rc.flat);
            print_gflops_value(f, rc.flash);
            print_gflops_value(f, rc.autoflow);
            print_gflops_value(f, rc.baseline);
            fprintf(f, " %10.2f\n", peak ? peak->value : NAN);
        }
    }
}
