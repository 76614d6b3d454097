/* The registration table: every case the suite offers, built from the shape
 * set and the kernel tables this build has and this CPU runs (the XNNPACK
 * bench/ pattern: a new ISA table is benchmarked without touching this file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "dtypes.h"
#include "suite.h"

/* The variants of each decode-like shape of the set: element types (a
 * --dtype spec, dtypes.h) and the paged call. They run AUTO on the best
 * table, and sit in the tables and plots right below their shape. */
static const struct {
    const char *dtype;
    int64_t page_size;
} variants[] = {
    {"kv=f16", 0}, {"kv=bf16", 0}, {"bf16", 0}, {"f32", 16},
};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

static bench_config config;
static bench_shape *shapes; /* the shape set's, then the sweep's */
static int n_shapes, n_table_shapes;
static bench_case *cases;
static int n_cases, cases_cap;

static const char *dataflow_name(flat_dataflow d)
{
    return d == FLAT_DATAFLOW_FLAT     ? "FLAT"
           : d == FLAT_DATAFLOW_FLASH  ? "FLASH"
           : d == FLAT_DATAFLOW_DECODE ? "DECODE"
                                       : "AUTO";
}

static int add_case(const bench_case *c)
{
    if (n_cases == cases_cap) {
        int cap = cases_cap ? 2 * cases_cap : 64;
        bench_case *grown = realloc(cases, (size_t)cap * sizeof *cases);
        if (!grown)
            return -1;
        cases = grown;
        cases_cap = cap;
    }
    cases[n_cases++] = *c;
    return 0;
}

static const flat_dataflow all_dataflows[] = {FLAT_DATAFLOW_FLAT, FLAT_DATAFLOW_FLASH,
                                             FLAT_DATAFLOW_DECODE, FLAT_DATAFLOW_AUTO};
static const flat_dataflow auto_only[] = {FLAT_DATAFLOW_AUTO};

int bench_shape_is_variant(int index)
{
    const bench_shape *s = &shapes[index];
    return s->q_dtype != FLAT_F32 || s->kv_dtype != FLAT_F32 || s->page_size > 0;
}

static int add_flat_cases(int shape, const flat_ukernels *table, const flat_dataflow *dataflows,
                          int n_dataflows, int primary, const bench_config *cfg)
{
    for (int d = 0; d < n_dataflows; d++) {
        /* The decode path on request only where it is meant to serve: few
         * query rows (forced onto a prefill shape it holds all rows of a kv
         * head in one task, by design slow). */
        if (dataflows[d] == FLAT_DATAFLOW_DECODE && !shape_is_decode_like(&shapes[shape]))
            continue;
        for (int t = 0; t < cfg->n_threads; t++) {
            bench_case c = {.kind = BENCH_FLAT, .shape = shape, .isa = table->isa,
                            .dataflow = dataflows[d], .threads = cfg->threads[t],
                            .primary = primary};
            snprintf(c.name, sizeof c.name, "flat/%s/%s/%s/t%d", shapes[shape].name, table->name,
                     dataflow_name(c.dataflow), c.threads);
            if (add_case(&c) != 0)
                return -1;
        }
    }
    return 0;
}

static int add_baseline_cases(int shape, const bench_config *cfg)
{
    for (int t = 0; t < cfg->n_threads; t++) {
        bench_case c = {.kind = BENCH_UNFUSED, .shape = shape, .isa = flat_isa_detect(),
                        .threads = cfg->threads[t], .primary = 1};
        snprintf(c.name, sizeof c.name, "openblas/%s/t%d", shapes[shape].name, c.threads);
        if (add_case(&c) != 0)
            return -1;
    }
    return 0;
}

/* Tables compiled in but not runnable here are not registered: say so once. */
static void report_unrunnable_tables(const flat_ukernels *const *tables, int n)
{
    for (int i = 0; i < n; i++)
        if (!flat_dispatch_runnable(tables[i]))
            fprintf(stderr, "bench: kernel table %s is built but this CPU cannot run it\n",
                    tables[i]->name);
}

/* The sweep asks where AUTO, the dataflow users get, sits on the roofline;
 * the best table says that for this machine. */
static int add_sweep_cases(const flat_ukernels *best, const bench_config *cfg)
{
    for (int s = n_table_shapes; s < n_shapes; s++)
        if (add_flat_cases(s, best, auto_only, 1, 1, cfg) != 0)
            return -1;
    return 0;
}

/* Case order is run order. The best table with the baseline comes first,
 * shape by shape, then the sweep: those cases make the summary's tables, so a
 * time budget that runs out cuts the other tables, not them. */
static int add_all_cases(const bench_config *cfg)
{
    int n_tables, first = 1;
    const flat_ukernels *const *tables = flat_dispatch_tables(&n_tables);
    report_unrunnable_tables(tables, n_tables);
    for (int i = 0; i < n_tables; i++) {
        if (!flat_dispatch_runnable(tables[i]))
            continue;
        /* avx512_vnni: on these f32 shapes its products are fp32, the avx512
         * table's kernels and bits; its int8 products are flat-bench-quant's */
        if (tables[i]->compute == FLAT_I8)
            continue;
        for (int s = 0; s < n_table_shapes; s++) {
            if (bench_shape_is_variant(s)) { /* AUTO on the best table only */
                if (first && add_flat_cases(s, tables[i], auto_only, 1, 1, cfg) != 0)
                    return -1;
                continue;
            }
            if (add_flat_cases(s, tables[i], all_dataflows, 4, first, cfg) != 0 ||
                (first && add_baseline_cases(s, cfg) != 0))
                return -1;
        }
        if (first && add_sweep_cases(tables[i], cfg) != 0)
            return -1;
        first = 0;
    }
    return 0;
}

/* The set's shapes with each decode-like one followed by its variants
 * (named <shape>+<types or pages>, e.g. decode_4k+kv_bf16, decode_4k+paged16). */
static int add_variants(char *err, size_t err_len)
{
    int decode = 0;
    for (int s = 0; s < n_shapes; s++)
        decode += shape_is_decode_like(&shapes[s]);
    bench_shape *all = malloc((size_t)(n_shapes + decode * N_VARIANTS) * sizeof *all);
    if (!all) {
        snprintf(err, err_len, "out of memory listing shape variants");
        return -1;
    }
    int n = 0;
    for (int s = 0; s < n_shapes; s++) {
        all[n++] = shapes[s];
        for (int v = 0; v < N_VARIANTS && shape_is_decode_like(&shapes[s]); v++) {
            bench_types t;
            char label[32];
            if (bench_types_parse(variants[v].dtype, &t, err, err_len) != 0) {
                free(all);
                return -1;
            }
            bench_shape *x = &all[n++];
            *x = shapes[s];
            x->q_dtype = t.q->dtype;
            x->kv_dtype = t.kv->dtype;
            x->page_size = variants[v].page_size;
            if (x->page_size > 0)
                snprintf(label, sizeof label, "paged%lld", (long long)x->page_size);
            else
                bench_types_label(&t, label, sizeof label);
            snprintf(x->name, sizeof x->name, "%.*s+%s", (int)(sizeof x->name - 2 - strlen(label)),
                     shapes[s].name, label);
        }
    }
    free(shapes);
    shapes = all;
    n_shapes = n;
    return 0;
}

/* Appends the sweep's points to the shape set; "none" means no sweep. */
static int load_sweep(const char *path, char *err, size_t err_len)
{
    bench_shape *points;
    if (strcmp(path, "none") == 0)
        return 0;
    int n = shapes_load(path, &points, err, err_len);
    if (n < 0)
        return -1;
    bench_shape *grown = realloc(shapes, (size_t)(n_shapes + n) * sizeof *shapes);
    if (!grown) {
        snprintf(err, err_len, "%s: out of memory", path);
        free(points);
        return -1;
    }
    shapes = grown;
    memcpy(shapes + n_shapes, points, (size_t)n * sizeof *points);
    n_shapes += n;
    free(points);
    return 0;
}

int bench_cases_build(const bench_config *cfg)
{
    char err[256];
    config = *cfg;
    n_shapes = shapes_load(cfg->shapes_path, &shapes, err, sizeof err);
    if (n_shapes >= 0 && cfg->variants && add_variants(err, sizeof err) != 0)
        n_shapes = -1;
    n_table_shapes = n_shapes;
    if (n_shapes < 0 || load_sweep(cfg->qsweep_path, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    if (add_all_cases(cfg) != 0) {
        fprintf(stderr, "bench: out of memory listing cases\n");
        return -1;
    }
    return n_cases;
}

int bench_case_count(void) { return n_cases; }
const bench_case *bench_case_get(int index) { return &cases[index]; }
int bench_shape_count(void) { return n_shapes; }
int bench_shape_in_sweep(int index) { return index >= n_table_shapes; }
const bench_shape *bench_shape_get(int index) { return &shapes[index]; }
const bench_config *suite_config(void) { return &config; }
