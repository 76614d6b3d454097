#include "figures.h"

#include <math.h>

#include "probes.h"

static double ceiling_value(const probe_result *p) { return p && p->value > 0 ? p->value : 0; }

/* The roofline: a call can go no faster than the FMAs allow, nor than the
 * memory delivers K and V, which even a compute-heavy shape must read once. */
static double attainable_gflops(double peak, double flops_per_byte, double read_gbs)
{
    if (peak <= 0 || read_gbs <= 0)
        return 0;
    return fmin(peak, flops_per_byte * read_gbs);
}

bench_figures figures_of(const bench_shape *s, flat_isa isa, int threads, double seconds)
{
    bench_figures f;
    f.gflops = shape_flops(s) / seconds * 1e-9;
    f.kv_gbs = shape_kv_bytes(s) / seconds * 1e-9;
    f.flops_per_byte = shape_flops(s) / shape_kv_bytes(s);
    f.peak_gflops = ceiling_value(probe_fma_peak(isa, threads));
    f.read_gbs = ceiling_value(probe_read_bandwidth(threads));
    f.roof_gflops = attainable_gflops(f.peak_gflops, f.flops_per_byte, f.read_gbs);
    return f;
}

static double fraction(double value, double ceiling) { return ceiling > 0 ? value / ceiling : NAN; }

double figures_peak_frac(const bench_figures *f) { return fraction(f->gflops, f->peak_gflops); }
double figures_roof_frac(const bench_figures *f) { return fraction(f->gflops, f->roof_gflops); }
double figures_bw_frac(const bench_figures *f) { return fraction(f->kv_gbs, f->read_gbs); }
