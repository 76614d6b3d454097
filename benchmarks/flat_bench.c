/*
 * flat-bench: time flat_attention on one shape given on the command line and
 * put the figure in context: GFLOP/s, % of this machine's FMA peak (probed
 * now for the ISA and thread count used), K/V bytes per second against the
 * read bandwidth, the roofline, and the error against a double-precision
 * reference.
 */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtypes.h"
#include "explain.h"
#include "figures.h"
#include "probes.h"
#include "refcheck.h"
#include "workload.h"

enum { MAX_REPS = 1000, OPT_HELP = 1000, OPT_DTYPE, OPT_PAGE, OPT_JSON, OPT_NHD };

/* Reference work (multiply-adds) the check may spend: about a second. */
static const double REFERENCE_BUDGET = 1e9;

typedef struct {
    bench_shape shape;
    int threads, reps, json;
    flat_isa isa;
    flat_dataflow dataflow;
    bench_types types;
    uint64_t flags; /* --batch-invariant: FLAT_FLAG_BATCH_INVARIANT */
} cli_options;

static void usage(FILE *f)
{
    char types[128];
    bench_dtype_names(types, sizeof types);
    fprintf(f,
            "usage: flat-bench [options]\n"
            "  --batch N        batch size (default 1)\n"
            "  --heads N        query heads (default 8)\n"
            "  --kv-heads N     key/value heads, dividing --heads (default: --heads)\n"
            "  --q-len N        query positions (default 1024)\n"
            "  --kv-len N       key positions (default: --q-len)\n"
            "  --dim N          head dimension (default 64)\n"
            "  --causal         causal mask, bottom-right aligned\n"
            "  --threads N      threads (default: the OpenMP default)\n"
            "  --isa NAME       auto, scalar, avx2, avx512, neon, avx512_bf16, amx_bf16 (default auto)\n"
            "  --dataflow NAME  auto, flat, flash, decode (default auto)\n"
            "  --reps N         timed calls; the median is reported (default 5)\n"
            "  --dtype SPEC     element types: TYPE for q/out and k/v, or q=TYPE,kv=TYPE\n"
            "                   (either part; default f32); TYPE one of %s\n"
            "  --page N         K/V in head-major pages of N tokens (scrambled order), the\n"
            "                   call flat_attention_paged (default: contiguous, flat_attention);\n"
            "                   the report adds the paged read probe (the read probe's buffer\n"
            "                   in pages of this size, scrambled, next page prefetched)\n"
            "  --nhd            with --page: token-major pages [pages, page, heads, dim]\n"
            "                   (vLLM's NHD) instead of head-major [pages, heads, page, dim]\n"
            "  --json           one JSON object on stdout instead of the text report\n"
            "  --batch-invariant  opt.flags = FLAT_FLAG_BATCH_INVARIANT (its cost: run\n"
            "                   with and without)\n"
            "  --help           this text\n",
            types);
}

static int parse_int(const char *text, long min, long max, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_isa(const char *name, flat_isa *isa)
{
    for (flat_isa i = FLAT_ISA_AUTO; i <= FLAT_ISA_AVX512_VNNI; i++)
        if (strcmp(name, flat_isa_name(i)) == 0) {
            *isa = i;
            return 0;
        }
    return -1;
}

static int parse_dataflow(const char *name, flat_dataflow *d)
{
    static const char *const names[] = {"auto", "flat", "flash", "decode"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *d = (flat_dataflow)i;
            return 0;
        }
    return -1;
}

/* Applies one option; returns -1 when its value is invalid. */
static int apply_option(int id, const char *arg, cli_options *o)
{
    long v = 0;
    bench_shape *s = &o->shape;
    if (id == 'i')
        return parse_isa(arg, &o->isa);
    if (id == 'f')
        return parse_dataflow(arg, &o->dataflow);
    if (id == OPT_DTYPE) {
        char err[160];
        if (bench_types_parse(arg, &o->types, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "flat-bench: --dtype %s: %s\n", arg, err);
        return -2;
    }
    if (parse_int(arg, 1, id == 't' ? 1024 : INT_MAX, &v) != 0)
        return -1;
    switch (id) {
    case 'b': s->batch = v; break;
    case 'h': s->q_heads = v; break;
    case 'k': s->kv_heads = v; break;
    case 'q': s->q_len = v; break;
    case 'n': s->kv_len = v; break;
    case 'd': s->head_dim = v; break;
    case OPT_PAGE: s->page_size = v; break;
    case 't': o->threads = (int)v; break;
    case 'r':
        if (v > MAX_REPS)
            return -1;
        o->reps = (int)v;
        break;
    default: return -1;
    }
    return 0;
}

/* Returns 0 to run, 1 after --help, 2 on a bad command line. */
static int parse_args(int argc, char **argv, cli_options *o)
{
    static const struct option longopts[] = {
        {"batch", required_argument, 0, 'b'},  {"heads", required_argument, 0, 'h'},
        {"kv-heads", required_argument, 0, 'k'}, {"q-len", required_argument, 0, 'q'},
        {"kv-len", required_argument, 0, 'n'}, {"dim", required_argument, 0, 'd'},
        {"causal", no_argument, 0, 'c'},       {"threads", required_argument, 0, 't'},
        {"isa", required_argument, 0, 'i'},    {"dataflow", required_argument, 0, 'f'},
        {"reps", required_argument, 0, 'r'},   {"help", no_argument, 0, OPT_HELP},
        {"dtype", required_argument, 0, OPT_DTYPE}, {"page", required_argument, 0, OPT_PAGE},
        {"json", no_argument, 0, OPT_JSON},    {"batch-invariant", no_argument, 0, 'B'},
        {"nhd", no_argument, 0, OPT_NHD},
        {0, 0, 0, 0}};
    *o = (cli_options){.shape = {.name = "cli", .batch = 1, .q_heads = 8, .q_len = 1024,
                                 .head_dim = 64, .kv_dtype = FLAT_F32},
                       .reps = 5, .types = bench_types_f32()};
    int id;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (id == OPT_HELP)
            return 1;
        int bad = 0;
        if (id == 'c')
            o->shape.causal = 1;
        else if (id == OPT_JSON)
            o->json = 1;
        else if (id == 'B')
            o->flags |= FLAT_FLAG_BATCH_INVARIANT;
        else if (id == OPT_NHD)
            o->shape.page_nhd = 1;
        else if (id == '?' || (bad = apply_option(id, optarg, o)) != 0) {
            if (id != '?' && bad == -1)
                fprintf(stderr, "flat-bench: invalid value \"%s\"\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flat-bench: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    bench_shape *s = &o->shape;
    s->kv_heads = s->kv_heads ? s->kv_heads : s->q_heads;
    s->kv_len = s->kv_len ? s->kv_len : s->q_len;
    s->q_dtype = o->types.q->dtype;
    s->kv_dtype = o->types.kv->dtype;
    if (s->q_heads % s->kv_heads != 0) {
        fprintf(stderr, "flat-bench: --heads (%lld) is not a multiple of --kv-heads (%lld)\n",
                (long long)s->q_heads, (long long)s->kv_heads);
        return 2;
    }
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Times `reps` calls into t[] (sorted), each on the next K/V copy so it reads
 * them from memory, as the suite does; returns 0 or the failing status. */
static flat_status time_calls(workload *w, const flat_options *opt, int reps, double *t)
{
    for (int i = 0; i < reps; i++) {
        workload_next_kv(w);
        double t0 = bench_now();
        flat_status st = workload_call(w, opt);
        t[i] = bench_now() - t0;
        if (st != FLAT_OK)
            return st;
    }
    qsort(t, (size_t)reps, sizeof t[0], compare_doubles);
    return FLAT_OK;
}

typedef struct {
    char isa[16], dataflow[16], types[64];
    double t[MAX_REPS]; /* sorted */
    bench_figures fig;
    ref_check check;
    double bound; /* flat.h's row bound for this output type */
} bench_result;

static double row_bound(const bench_shape *s)
{
    return s->q_dtype == FLAT_BF16 ? 8e-3 : s->q_dtype == FLAT_F16 ? 1e-3 : 1e-5;
}

/* A paged call against the paged read probe: its pages (one head's page_size
 * rows, as the pool lays them out) read in a scrambled order with the next
 * page prefetched, the ceiling no page walk can pass on this machine. */
static void print_paged_ceiling(const cli_options *o, const bench_figures *f)
{
    const int64_t page_bytes = o->shape.page_size * o->shape.head_dim * shape_kv_elem_bytes(&o->shape);
    const probe_result *p =
        o->shape.page_size > 0 && !o->shape.page_nhd ? probe_paged_read_bandwidth(page_bytes, o->threads)
                                                      : NULL;
    if (!p || p->value <= 0)
        return;
    printf("paged:  %.1f%% of the paged read probe (%.1f GB/s: the read probe's buffer in %lld-byte "
           "pages, scrambled, each next page prefetched; %.0f%% of the read bandwidth)\n",
           100 * f->kv_gbs / p->value, p->value, (long long)page_bytes,
           f->read_gbs > 0 ? 100 * p->value / f->read_gbs : 0.0);
}

static void print_rates(const cli_options *o, const bench_result *r)
{
    const bench_figures *f = &r->fig;
    printf("rate:   %.1f GFLOP/s", f->gflops);
    if (f->peak_gflops > 0)
        printf(" = %.1f%% of the %s FP32 FMA peak (%.1f GFLOP/s on %d thread(s), measured now)",
               100 * figures_peak_frac(f), r->isa, f->peak_gflops, o->threads);
    printf("\nmemory: K and V (%.1f MiB at %s, read once) at %.1f GB/s",
           shape_kv_bytes(&o->shape) / (1 << 20), bench_dtype_of(o->shape.kv_dtype)->name,
           f->kv_gbs);
    if (f->read_gbs > 0)
        printf(" = %.1f%% of the read bandwidth (%.1f GB/s, measured now)%s",
               100 * figures_bw_frac(f), f->read_gbs,
               figures_bw_frac(f) > 1 ? " (over 100%: part of K/V served from L3/L2, or the "
                                        "probe measured low)" : "");
    printf("\n");
    print_paged_ceiling(o, f);
    if (f->roof_gflops > 0)
        printf("roof:   %.1f FLOP/B; attainable min(peak, FLOP/B x read) = %.1f GFLOP/s (%s-bound); "
               "reached %.1f%%\n",
               f->flops_per_byte, f->roof_gflops, f->roof_gflops < f->peak_gflops ? "memory" : "compute",
               100 * figures_roof_frac(f));
}

static void print_error(const bench_result *r)
{
    const ref_check *c = &r->check;
    printf("error:  max |out - ref| %.2e, max row relative 2-norm %.2e (bound %g) against a "
           "double-precision reference on ",
           c->max_abs, c->max_row_rel, r->bound);
    if (c->rows_checked == c->rows_total)
        printf("all %lld rows\n", (long long)c->rows_total);
    else
        printf("%lld of %lld rows, spread evenly (all rows would take ~%.1fx as long)\n",
               (long long)c->rows_checked, (long long)c->rows_total,
               (double)c->rows_total / (double)c->rows_checked);
}

static void print_text(const cli_options *o, const bench_result *r)
{
    const bench_shape *s = &o->shape;
    printf("shape:  B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld causal=%d; isa=%s dataflow=%s%s "
           "threads=%d%s\n",
           (long long)s->batch, (long long)s->q_heads, (long long)s->kv_heads,
           (long long)s->q_len, (long long)s->kv_len, (long long)s->head_dim, s->causal, r->isa,
           o->dataflow == FLAT_DATAFLOW_AUTO ? "AUTO->" : "", r->dataflow, o->threads,
           o->flags ? " batch-invariant" : "");
    printf("types:  %s; K/V %s\n", r->types,
           s->page_size > 0 ? "paged (flat_attention_paged)" : "contiguous (flat_attention)");
    if (s->page_size > 0)
        printf("pages:  %lld tokens each, %s, scrambled order\n", (long long)s->page_size,
               s->page_nhd ? "token-major [pages, page, heads, dim]"
                           : "head-major [pages, heads, page, dim]");
    printf("time:   %.3f ms (median of %d; min %.3f, max %.3f)\n", 1e3 * r->t[o->reps / 2],
           o->reps, 1e3 * r->t[0], 1e3 * r->t[o->reps - 1]);
    print_rates(o, r);
    print_error(r);
}

/* A JSON number, or null where the figure is unknown. */
static void json_number(const char *key, double v, int last)
{
    if (isfinite(v))
        printf("  \"%s\": %.6g%s\n", key, v, last ? "" : ",");
    else
        printf("  \"%s\": null%s\n", key, last ? "" : ",");
}

static void print_json(const cli_options *o, const bench_result *r)
{
    const bench_shape *s = &o->shape;
    const bench_figures *f = &r->fig;
    printf("{\n  \"batch\": %lld,\n  \"q_heads\": %lld,\n  \"kv_heads\": %lld,\n  \"q_len\": %lld,\n"
           "  \"kv_len\": %lld,\n  \"head_dim\": %lld,\n  \"causal\": %s,\n",
           (long long)s->batch, (long long)s->q_heads, (long long)s->kv_heads,
           (long long)s->q_len, (long long)s->kv_len, (long long)s->head_dim,
           s->causal ? "true" : "false");
    printf("  \"q_dtype\": \"%s\",\n  \"kv_dtype\": \"%s\",\n  \"page_nhd\": %d,\n  \"page_size\": %lld,\n",
           bench_dtype_of(s->q_dtype)->name, bench_dtype_of(s->kv_dtype)->name, s->page_nhd,
           (long long)s->page_size);
    printf("  \"isa\": \"%s\",\n  \"dataflow\": \"%s\",\n  \"dataflow_requested\": \"%s\",\n"
           "  \"threads\": %d,\n  \"reps\": %d,\n",
           r->isa, r->dataflow, o->dataflow == FLAT_DATAFLOW_AUTO ? "auto" : "forced",
           o->threads, o->reps);
    json_number("ms_median", 1e3 * r->t[o->reps / 2], 0);
    json_number("ms_min", 1e3 * r->t[0], 0);
    json_number("ms_max", 1e3 * r->t[o->reps - 1], 0);
    json_number("gflops", f->gflops, 0);
    json_number("kv_bytes", shape_kv_bytes(s), 0);
    json_number("kv_gbs", f->kv_gbs, 0);
    json_number("flops_per_byte", f->flops_per_byte, 0);
    json_number("peak_gflops", f->peak_gflops > 0 ? f->peak_gflops : NAN, 0);
    json_number("read_gbs", f->read_gbs > 0 ? f->read_gbs : NAN, 0);
    json_number("roof_gflops", f->roof_gflops > 0 ? f->roof_gflops : NAN, 0);
    json_number("peak_frac", figures_peak_frac(f), 0);
    json_number("bw_frac", figures_bw_frac(f), 0);
    json_number("roof_frac", figures_roof_frac(f), 0);
    json_number("max_abs_err", r->check.max_abs, 0);
    json_number("max_row_rel_err", r->check.max_row_rel, 0);
    json_number("row_err_bound", r->bound, 0);
    printf("  \"rows_checked\": %lld,\n  \"rows_total\": %lld\n}\n",
           (long long)r->check.rows_checked, (long long)r->check.rows_total);
}

static void check_output(workload *w, bench_result *r)
{
    const bench_shape *s = &w->shape;
    double per_row = 2.0 * (double)s->kv_len * (double)s->head_dim;
    int64_t max_rows = (int64_t)(REFERENCE_BUDGET / per_row);
    workload_sync_output(w);
    r->check = ref_check_rows(w, max_rows < 64 ? 64 : max_rows);
    r->bound = row_bound(s);
}

static int run(cli_options *o)
{
    workload w;
    if (workload_alloc_cold(&w, &o->shape, 0x5eed) != 0) {
        fprintf(stderr, "flat-bench: inputs need %.1f GiB: out of memory\n",
                workload_bytes(&o->shape) / (1 << 30));
        return 1;
    }
    flat_options opt = {.causal = o->shape.causal, .num_threads = o->threads,
                        .dataflow = o->dataflow, .isa = o->isa, .flags = o->flags};
    static bench_result r;
    double warmup;
    char line[512];
    flat_status st = flat_call_explained(&w, &opt, &warmup, line, sizeof line);
    if (st == FLAT_OK)
        st = time_calls(&w, &opt, o->reps, r.t);
    if (st != FLAT_OK) {
        fprintf(stderr, "flat-bench: %s: %s\n", flat_status_string(st), flat_last_error());
        workload_free(&w);
        return 1;
    }
    explain_field(line, "isa=", r.isa, sizeof r.isa);
    explain_field(line, "dataflow=", r.dataflow, sizeof r.dataflow);
    bench_types_describe(&o->types, r.types, sizeof r.types);
    flat_isa isa = FLAT_ISA_AUTO;
    parse_isa(r.isa, &isa);
    r.fig = figures_of(&o->shape, isa, o->threads, r.t[o->reps / 2]);
    check_output(&w, &r);
    if (o->json)
        print_json(o, &r);
    else
        print_text(o, &r);
    workload_free(&w);
    return 0;
}

int main(int argc, char **argv)
{
    cli_options o;
    int parsed = parse_args(argc, argv, &o);
    if (parsed != 0) {
        usage(parsed == 1 ? stdout : stderr);
        return parsed == 1 ? 0 : 2;
    }
    if (o.threads == 0)
        o.threads = omp_get_max_threads();
    return run(&o);
}
