/* Where AUTO sits on the roofline: the q_len sweep's table, and roofline.dat,
 * the data of plot_roofline.gp (every shape and sweep point that ran, per
 * thread count, with both ceilings). */
#include <math.h>
#include <stdio.h>

#include "summary.h"

static int auto_case(int shape, int threads, flat_isa isa)
{
    return summary_find_case(BENCH_FLAT, shape, isa, FLAT_DATAFLOW_AUTO, threads);
}

static int any_sweep_ran(const bench_config *cfg, flat_isa isa)
{
    for (int s = 0; s < bench_shape_count(); s++)
        for (int t = 0; t < cfg->n_threads; t++)
            if (bench_shape_in_sweep(s) &&
                !isnan(summary_median_seconds(auto_case(s, cfg->threads[t], isa))))
                return 1;
    return 0;
}

static void print_sweep_head(FILE *f, flat_isa isa)
{
    fprintf(f, "\nq_len sweep (qsweep.csv), AUTO on %s: %% BW over the read bandwidth, "
               "%% roof over min(FMA peak, FLOP/B x read bandwidth):\n\n",
            flat_isa_name(isa));
    fprintf(f, "| %-16s | %3s | %5s | %6s | %5s | %9s | %9s | %7s | %6s | %7s | %9s | %6s |\n",
            "point", "thr", "q_len", "kv_len", "AUTO", "ms", "GFLOP/s", "KV GB/s", "% BW",
            "FLOP/B", "roof", "% roof");
    fprintf(f, "|------------------|----:|------:|-------:|-------|----------:|----------:"
               "|--------:|-------:|--------:|----------:|-------:|\n");
}

static void print_sweep_row(FILE *f, int index)
{
    const bench_shape *s = bench_shape_get(bench_case_get(index)->shape);
    bench_figures fig = summary_figures(index);
    fprintf(f, "| %-16s | %3d | %5lld | %6lld | %5s | %9.2f | %9.1f%s | %7.1f | %5.1f%s | %7.1f "
               "| %9.1f | %5.1f%s |\n",
            s->name, bench_case_get(index)->threads, (long long)s->q_len, (long long)s->kv_len,
            summary_auto_choice(index), 1e3 * summary_median_seconds(index), fig.gflops,
            summary_worst_error(index) > summary_error_bound(index) ? "!" : "", fig.kv_gbs,
            100 * figures_bw_frac(&fig), summary_over_mark(figures_bw_frac(&fig)),
            fig.flops_per_byte, fig.roof_gflops, 100 * figures_roof_frac(&fig),
            summary_over_mark(figures_roof_frac(&fig)));
}

void summary_print_sweep(FILE *f, const bench_config *cfg, flat_isa isa)
{
    if (!any_sweep_ran(cfg, isa))
        return;
    print_sweep_head(f, isa);
    for (int s = 0; s < bench_shape_count(); s++) {
        for (int t = 0; t < cfg->n_threads && bench_shape_in_sweep(s); t++) {
            int index = auto_case(s, cfg->threads[t], isa);
            if (!isnan(summary_median_seconds(index)))
                print_sweep_row(f, index);
        }
    }
}

/* One block per thread count whose AUTO cases ran: the ceilings in its header line and
 * on every row (gnuplot's stats reads them from the columns), then one row
 * per shape or sweep point whose AUTO case ran. */
static int any_auto_ran(int threads, flat_isa isa)
{
    for (int s = 0; s < bench_shape_count(); s++)
        if (!isnan(summary_median_seconds(auto_case(s, threads, isa))))
            return 1;
    return 0;
}

static void write_roofline_block(FILE *f, int threads, flat_isa isa, int first)
{
    bench_figures ceiling = figures_of(bench_shape_get(0), isa, threads, NAN);
    fprintf(f, "%s# threads=%d isa=%s peak=%.2f read=%.2f\n"
               "# name FLOP/B GFLOP/s peak_GFLOP/s read_GB/s sweep\n",
            first ? "" : "\n\n", threads, flat_isa_name(isa), ceiling.peak_gflops,
            ceiling.read_gbs);
    for (int s = 0; s < bench_shape_count(); s++) {
        int index = auto_case(s, threads, isa);
        if (isnan(summary_median_seconds(index)))
            continue;
        bench_figures fig = summary_figures(index);
        fprintf(f, "%-16s %10.3f %10.2f %10.2f %10.2f %d\n", bench_shape_get(s)->name,
                fig.flops_per_byte, fig.gflops, fig.peak_gflops, fig.read_gbs,
                bench_shape_in_sweep(s));
    }
}

void summary_write_roofline_dat(FILE *f, const bench_config *cfg, flat_isa isa)
{
    int first = 1;
    for (int t = 0; t < cfg->n_threads; t++) {
        if (!any_auto_ran(cfg->threads[t], isa))
            continue; /* an empty block would leave the plot's stats nothing */
        write_roofline_block(f, cfg->threads[t], isa, first);
        first = 0;
    }
}
