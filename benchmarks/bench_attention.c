/* Benchmark bodies: one flat_attention call, or one unfused baseline call,
 * per iteration; counters from the shape's FLOPs and bytes and from the
 * probes measured in this process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "figures.h"
#include "probes.h"
#include "suite.h"
#include "unfused.h"
#include "workload.h"

enum { CHECK_ROWS = 64, GIB = 1 << 30 };

/* Below this a call lasts well under a second, so one untimed call first
 * (thread pool start, first-touch of the workspace) is cheap; above it the
 * first-call overhead is a negligible share of the call itself. */
static const double WARMUP_MAX_FLOPS = 10e9;

struct bench_run {
    int index;
    const bench_case *c;
    workload *w;
    flat_options opt;
    float *scores; /* the baseline's per-thread score matrices */
    double *calls; /* seconds of every timed call, for the summary's median */
    int n_calls, calls_cap;
    char label[32];
    char error[256];
    double timed_from; /* when its timed loop began (after setup) */
};

/* Seconds of the cases' timed loops so far (each from its first timed call
 * to its close, reference check included), not of their setup: filling
 * inputs and cold copies and measuring ceilings cost what the machine makes
 * them cost, and must not eat a budget meant for measurements. */
static double timed_total;

double suite_elapsed(void) { return timed_total; }

/* The last shape's inputs stay allocated: the case table is ordered by shape,
 * and refilling hundreds of MiB for every case would cost more than many of
 * the cases themselves. Cold: every call reads a K/V copy that the calls
 * since its last use have pushed out of the last-level cache (workload.h). */
static workload cached;
static int cached_shape = -1;

static workload *workload_for(int shape)
{
    if (shape == cached_shape)
        return &cached;
    if (cached_shape >= 0)
        workload_free(&cached);
    cached_shape = -1;
    if (workload_alloc_cold(&cached, bench_shape_get(shape), 0x5eed0000u + (unsigned)shape) != 0)
        return NULL;
    cached_shape = shape;
    return &cached;
}

static double timed_flat_call(bench_run *r)
{
    workload *w = r->w;
    double t0 = bench_now();
    flat_status st = workload_call(w, &r->opt);
    double t = bench_now() - t0;
    if (st != FLAT_OK) {
        snprintf(r->error, sizeof r->error, "flat_attention: %s: %s", flat_status_string(st),
                 flat_last_error());
        return -1;
    }
    return t;
}

static double timed_unfused_call(bench_run *r)
{
    double t0 = bench_now();
    unfused_attention(r->w, r->c->threads, r->scores);
    return bench_now() - t0;
}

/* The first AUTO call also asks the runtime which dataflow it chose. */
static double call_explained(bench_run *r)
{
    double seconds;
    char line[512], dataflow[16];
    flat_status st = flat_call_explained(r->w, &r->opt, &seconds, line, sizeof line);
    if (st != FLAT_OK) {
        snprintf(r->error, sizeof r->error, "flat_attention: %s: %s", flat_status_string(st),
                 flat_last_error());
        return -1;
    }
    explain_field(line, "dataflow=", dataflow, sizeof dataflow);
    snprintf(r->label, sizeof r->label, "AUTO->%s", dataflow);
    return seconds;
}

static double run_once(bench_run *r)
{
    workload_next_kv(r->w);
    if (r->c->kind == BENCH_UNFUSED)
        return timed_unfused_call(r);
    if (r->c->dataflow == FLAT_DATAFLOW_AUTO && !r->label[0])
        return call_explained(r);
    return timed_flat_call(r);
}

static void remember_call(bench_run *r, double seconds)
{
    if (r->n_calls == r->calls_cap) {
        int cap = r->calls_cap ? 2 * r->calls_cap : 64;
        double *grown = realloc(r->calls, (size_t)cap * sizeof *grown);
        if (!grown)
            return; /* the median then covers the calls kept so far */
        r->calls = grown;
        r->calls_cap = cap;
    }
    r->calls[r->n_calls++] = seconds;
}

double bench_iterate(bench_run *r)
{
    double seconds = run_once(r);
    if (seconds >= 0)
        remember_call(r, seconds);
    return seconds;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median timed call: a call that another process preempted (the cores
 * are shared) moves the mean Google Benchmark reports, not the median. */
static double median_call(bench_run *r, double fallback)
{
    if (r->n_calls == 0)
        return fallback;
    qsort(r->calls, (size_t)r->n_calls, sizeof r->calls[0], compare_doubles);
    return r->calls[r->n_calls / 2];
}

/* The baseline's score matrices, within the memory budget, touched now so
 * page faults stay out of the timed calls. */
static int alloc_scores(bench_run *r, char *why, size_t why_len)
{
    double bytes = unfused_score_bytes(&r->w->shape, r->c->threads);
    double budget = suite_config()->memory_budget_gib * GIB;
    if (bytes > budget) {
        snprintf(why, why_len, "baseline skipped: score matrices need %.1f GiB > budget %.1f GiB",
                 bytes / GIB, budget / GIB);
        return -1;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)bytes) != 0) {
        snprintf(why, why_len, "baseline skipped: %.1f GiB of scores: out of memory", bytes / GIB);
        return -1;
    }
    memset(p, 0, (size_t)bytes);
    r->scores = p;
    return 0;
}

/* Measures the ceilings now (once per ISA and thread count), so no probe
 * runs inside a timed loop: the FMA peak and read bandwidth of the roofline,
 * and the triad the summary quotes beside them. */
static void probe_ceilings(const bench_case *c)
{
    figures_of(bench_shape_get(c->shape), c->isa, c->threads, NAN);
    probe_triad_bandwidth(c->threads);
}

static bench_run *prepare_run(bench_run *r, char *why, size_t why_len)
{
    const bench_case *c = r->c;
    r->w = workload_for(c->shape);
    if (!r->w) {
        snprintf(why, why_len, "inputs need %.1f GiB: out of memory",
                 workload_bytes(bench_shape_get(c->shape)) / GIB);
        return NULL;
    }
    workload_poison_output(r->w);
    if (c->kind == BENCH_UNFUSED && alloc_scores(r, why, why_len) != 0)
        return NULL;
    r->opt = (flat_options){.causal = r->w->shape.causal, .num_threads = c->threads,
                            .dataflow = c->dataflow, .isa = c->isa};
    probe_ceilings(c);
    if (shape_flops(&r->w->shape) <= WARMUP_MAX_FLOPS && run_once(r) < 0) {
        snprintf(why, why_len, "%s", r->error);
        return NULL;
    }
    return r;
}

/* The time guard of --flat_max_call_seconds, from the rate of earlier cases. */
static int predicted_too_long(const bench_case *c, char *why, size_t why_len)
{
    double limit = suite_config()->max_call_seconds;
    double rate = summary_recent_rate(c);
    double predicted = rate > 0 ? shape_flops(bench_shape_get(c->shape)) / rate * 1e-9 : 0;
    if (c->primary || limit <= 0 || predicted <= limit)
        return 0;
    snprintf(why, why_len,
             "skipped: ~%.0f s per call predicted from the %.1f GFLOP/s of the previous shape "
             "(--flat_max_call_seconds=%g)",
             predicted, rate, limit);
    return 1;
}

/* The case whose first repetition ran: Google Benchmark runs a case's
 * repetitions back to back, and aborts (ComputeStats: iterations differ)
 * when some of them ran and others were skipped, so the budget and the time
 * guard judge a case once, at its first repetition. */
static int started_case = -1;

static bench_run *open_case(int index, char *why, size_t why_len)
{
    const bench_config *cfg = suite_config();
    const int judged = index == started_case;
    if (!judged && cfg->time_budget > 0 && suite_elapsed() > cfg->time_budget) {
        snprintf(why, why_len, "skipped: suite time budget of %g s of timed work used up",
                 cfg->time_budget);
        return NULL;
    }
    if (!judged && predicted_too_long(bench_case_get(index), why, why_len))
        return NULL;
    started_case = index;
    bench_run *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    r->index = index;
    r->c = bench_case_get(index);
    if (!prepare_run(r, why, why_len)) {
        bench_close(r); /* records a failed call */
        return NULL;
    }
    r->timed_from = bench_now();
    return r;
}

bench_run *bench_open(int index, char *why, size_t why_len)
{
    bench_run *r = open_case(index, why, why_len);
    if (!r)
        summary_skip(index, why);
    return r;
}

const char *bench_error(const bench_run *r) { return r->error; }
const char *bench_label(const bench_run *r) { return r->label; }

static int put(bench_counter *out, int n, int max, const char *name, double value)
{
    if (n < max)
        out[n] = (bench_counter){name, value};
    return n < max ? n + 1 : n;
}

/* The counters of one call: rates, ceilings and fractions (figures.h); the
 * read-bandwidth fraction only where it is the figure that judges the shape. */
static int put_figures(const bench_figures *f, int decode_like, bench_counter *out, int max)
{
    int n = put(out, 0, max, "GFLOP/s", f->gflops);
    n = put(out, n, max, "KV_GB/s", f->kv_gbs);
    n = put(out, n, max, "FLOP/B", f->flops_per_byte);
    if (f->peak_gflops > 0) {
        n = put(out, n, max, "peak_GFLOP/s", f->peak_gflops);
        n = put(out, n, max, "peak_frac", figures_peak_frac(f));
    }
    if (f->roof_gflops > 0) {
        n = put(out, n, max, "read_GB/s", f->read_gbs);
        n = put(out, n, max, "roof_GFLOP/s", f->roof_gflops);
        n = put(out, n, max, "roof_frac", figures_roof_frac(f));
    }
    if (decode_like && f->read_gbs > 0)
        n = put(out, n, max, "bw_frac", figures_bw_frac(f));
    return n;
}

int bench_finish(bench_run *r, double seconds_per_call, bench_counter *out, int max)
{
    const bench_shape *s = &r->w->shape;
    workload_sync_output(r->w);
    ref_check check = ref_check_rows(r->w, CHECK_ROWS);
    summary_record(r->index, median_call(r, seconds_per_call), r->label, &check);
    bench_figures f = figures_of(s, r->c->isa, r->c->threads, seconds_per_call);
    int n = put_figures(&f, shape_is_decode_like(s), out, max);
    return put(out, n, max, "max_row_err", check.max_row_rel);
}

void bench_close(bench_run *r)
{
    if (r && r->error[0])
        summary_fail(r->index, r->error); /* a call failed, warm-up or timed */
    if (r) {
        if (r->timed_from > 0)
            timed_total += bench_now() - r->timed_from;
        free(r->scores);
        free(r->calls);
    }
    free(r);
}

/* The attention cases as a family for the shim. */
static int family_count(void) { return bench_case_count(); }
static const char *family_name(int index) { return bench_case_get(index)->name; }
static void *family_open(int index, char *why, size_t n) { return bench_open(index, why, n); }
static double family_iterate(void *run) { return bench_iterate(run); }
static const char *family_error(const void *run) { return bench_error(run); }
static const char *family_label(const void *run) { return bench_label(run); }
static void family_close(void *run) { bench_close(run); }

static int family_finish(void *run, double seconds, bench_counter *out, int max)
{
    return bench_finish(run, seconds, out, max);
}

const bench_family bench_attention_family = {family_count,  family_name,   family_open,
                                             family_iterate, family_error, family_finish,
                                             family_label,  family_close};
