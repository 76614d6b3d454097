/*
 * flat-bench-memory: peak memory of fused (flat) and unfused attention as the
 * sequence grows (batch 1, 8 heads, D = 64, no mask, Nq = Nk = N).
 *
 * Each measurement runs in a forked child, and the parent reads that child's
 * peak resident set from wait4()'s rusage (ru_maxrss), so nothing another run
 * allocated is counted. The parent itself allocates nothing large and runs
 * no OpenMP before forking (an OpenMP pool does not survive fork()).
 *
 * flat at long lengths: all N query rows would be O(N^2) work that tells
 * nothing more about memory. Above --full-rows-up-to the child still
 * allocates and touches the full Q, K, V and O, but computes only the last
 * --query-rows rows (a strided view). flat's workspace is sized by kv_len,
 * D and the thread count (packed K and score tiles per thread), not by the
 * number of query rows beyond a block per thread; the run measures both ways
 * at the crossover length and prints the difference as a check.
 *
 * The unfused baseline (unfused.c) holds an N x N score matrix per thread; it
 * is run while inputs + scores fit --budget-gib, and reported as "would need
 * X GiB" beyond.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "explain.h"
#include "unfused.h"
#include "workload.h"

enum { HEADS = 8, DIM = 64, MIB = 1 << 20 };
enum impl { IDLE, UNFUSED, FUSED_FLAT, FUSED_FLASH };

typedef struct {
    long min_len, max_len, threads, full_rows_up_to, query_rows;
    double budget_gib;
    const char *dat_path, *md_path;
} mem_options;

typedef struct {
    double mib; /* peak resident set of the child, MiB; NAN if not run */
    int ok;
} child_result;

static bench_shape shape_for(long n)
{
    return (bench_shape){.name = "memory", .batch = 1, .q_heads = HEADS, .kv_heads = HEADS,
                         .q_len = n, .kv_len = n, .head_dim = DIM, .kv_dtype = FLAT_F32};
}

/* Runs in the child: allocate, compute once, exit status 0 on success. */
static int child_main(enum impl impl, long n, long rows, int threads)
{
    if (impl == IDLE)
        return 0;
    bench_shape s = shape_for(n);
    workload w;
    if (workload_alloc(&w, &s, 1) != 0)
        return 3;
    if (impl == UNFUSED) {
        float *scores = malloc((size_t)unfused_score_bytes(&s, threads));
        if (!scores)
            return 3;
        unfused_attention(&w, threads, scores);
        return 0;
    }
    flat_tensor q = w.tq, out = w.tout; /* the last `rows` query positions */
    q.data = w.q + (n - rows) * DIM;
    out.data = w.out + (n - rows) * DIM;
    q.seq = out.seq = rows;
    flat_options opt = {.num_threads = threads,
                        .dataflow = impl == FUSED_FLAT ? FLAT_DATAFLOW_FLAT : FLAT_DATAFLOW_FLASH};
    return flat_attention(&q, &w.tk, &w.tv, &out, &opt) == FLAT_OK ? 0 : 1;
}

static child_result measure_in_child(enum impl impl, long n, long rows, int threads)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_main(impl, n, rows, threads));
    struct rusage ru;
    int status;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
        return (child_result){NAN, 0};
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    return (child_result){ok ? (double)ru.ru_maxrss / 1024.0 : NAN, ok}; /* KiB -> MiB */
}

static double unfused_needs_gib(long n, int threads)
{
    bench_shape s = shape_for(n);
    return (workload_bytes(&s) + unfused_score_bytes(&s, threads)) / (1 << 30);
}

static long flat_rows_for(long n, const mem_options *o)
{
    return n <= o->full_rows_up_to || n <= o->query_rows ? n : o->query_rows;
}

typedef struct {
    long n, rows;
    double inputs_mib, needs_gib;
    child_result unfused, flat, flash;
} mem_row;

static mem_row measure_length(long n, const mem_options *o)
{
    bench_shape s = shape_for(n);
    int t = (int)o->threads;
    mem_row r = {n, flat_rows_for(n, o), workload_bytes(&s) / MIB, unfused_needs_gib(n, t),
                 {NAN, 0}, {NAN, 0}, {NAN, 0}};
    if (r.needs_gib <= o->budget_gib)
        r.unfused = measure_in_child(UNFUSED, n, n, t);
    r.flat = measure_in_child(FUSED_FLAT, n, r.rows, t);
    r.flash = measure_in_child(FUSED_FLASH, n, r.rows, t);
    return r;
}

static void print_row(FILE *f, const mem_row *r, const mem_options *o)
{
    char unfused[48];
    if (r->needs_gib > o->budget_gib)
        snprintf(unfused, sizeof unfused, "exceeds budget: would need %.1f GiB", r->needs_gib);
    else
        snprintf(unfused, sizeof unfused, r->unfused.ok ? "%.0f" : "failed", r->unfused.mib);
    char rows[32];
    snprintf(rows, sizeof rows, r->rows == r->n ? "all" : "last %ld", r->rows);
    fprintf(f, "| %6ld | %8.0f | %36s | %9.0f | %9.0f | %21s |\n", r->n, r->inputs_mib, unfused,
            r->flat.mib, r->flash.mib, rows);
}

static void print_head(FILE *f, const mem_options *o, double idle_mib)
{
    fprintf(f, "Peak resident memory (MiB) per run, batch 1, %d heads, D %d, no mask, %ld "
               "thread(s); budget %.1f GiB; an idle child process peaks at %.0f MiB.\n\n",
            HEADS, DIM, o->threads, o->budget_gib, idle_mib);
    fprintf(f, "| %6s | %8s | %36s | %9s | %9s | %21s |\n", "N", "Q,K,V,O", "unfused (OpenBLAS)",
            "flat FLAT", "flat FLASH", "flat query rows run");
    fprintf(f, "|-------:|---------:|-------------------------------------:|----------:|"
               "----------:|----------------------:|\n");
}

/* The headline: where unfused stops fitting while flat still runs. */
static void print_verdict(FILE *f, const mem_row *rows, int n_rows, const mem_options *o)
{
    const mem_row *first_over = NULL, *last = &rows[n_rows - 1];
    for (int i = 0; i < n_rows && !first_over; i++)
        if (rows[i].needs_gib > o->budget_gib)
            first_over = &rows[i];
    if (first_over)
        fprintf(f, "\nUnfused exceeds the %.1f GiB budget from N = %ld (would need %.1f GiB); ",
                o->budget_gib, first_over->n, first_over->needs_gib);
    else
        fprintf(f, "\nUnfused stays within the %.1f GiB budget up to N = %ld; ", o->budget_gib,
                last->n);
    fprintf(f, "flat %s at N = %ld with a peak of %.0f MiB (FLAT) / %.0f MiB (FLASH).\n",
            last->flat.ok && last->flash.ok ? "runs" : "FAILED", last->n, last->flat.mib,
            last->flash.mib);
}

/* Evidence for the reduced-rows method, at the last length run in full. */
static void print_method_check(FILE *f, const mem_options *o)
{
    long n = o->full_rows_up_to;
    if (n < o->min_len || n > o->max_len || n <= o->query_rows)
        return;
    int t = (int)o->threads;
    child_result full[2] = {measure_in_child(FUSED_FLAT, n, n, t),
                            measure_in_child(FUSED_FLASH, n, n, t)};
    child_result part[2] = {measure_in_child(FUSED_FLAT, n, o->query_rows, t),
                            measure_in_child(FUSED_FLASH, n, o->query_rows, t)};
    fprintf(f, "Method check at N = %ld: all rows vs the last %ld rows: FLAT %.0f vs %.0f MiB, "
               "FLASH %.0f vs %.0f MiB.\n",
            n, o->query_rows, full[0].mib, part[0].mib, full[1].mib, part[1].mib);
}

static void write_dat(const char *path, const mem_row *rows, int n_rows)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    fprintf(f, "# N inputs_MiB unfused_MiB flat_FLAT_MiB flat_FLASH_MiB unfused_needs_MiB\n");
    for (int i = 0; i < n_rows; i++)
        fprintf(f, "%ld %.1f %.1f %.1f %.1f %.1f\n", rows[i].n, rows[i].inputs_mib,
                rows[i].unfused.mib, rows[i].flat.mib, rows[i].flash.mib,
                rows[i].needs_gib * 1024);
    fclose(f);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: flat-bench-memory [options]\n"
               "  --min-len N          first sequence length (default 1024)\n"
               "  --max-len N          last, doubling from the first (default 65536)\n"
               "  --threads N          threads of every run (default 2)\n"
               "  --budget-gib G       memory the unfused baseline may use (default 8)\n"
               "  --full-rows-up-to N  compute all query rows up to this length (default 4096)\n"
               "  --query-rows R       query rows computed above it (default 512)\n"
               "  --dat FILE           write the gnuplot data (MiB) to FILE\n"
               "  --markdown FILE      also write the table to FILE\n");
}

static int parse_long(const char *text, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, mem_options *o)
{
    static const struct option longopts[] = {
        {"min-len", required_argument, 0, 'a'}, {"max-len", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'}, {"budget-gib", required_argument, 0, 'g'},
        {"full-rows-up-to", required_argument, 0, 'f'},
        {"query-rows", required_argument, 0, 'r'}, {"dat", required_argument, 0, 'd'},
        {"markdown", required_argument, 0, 'm'}, {0, 0, 0, 0}};
    *o = (mem_options){1024, 65536, 2, 4096, 512, 8.0, NULL, NULL};
    long *targets[128] = {['a'] = &o->min_len, ['b'] = &o->max_len, ['t'] = &o->threads,
                          ['f'] = &o->full_rows_up_to, ['r'] = &o->query_rows};
    int id;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        if (id == 'd')
            o->dat_path = optarg;
        else if (id == 'm')
            o->md_path = optarg;
        else if (id == 'g')
            o->budget_gib = strtod(optarg, &end);
        else if (id == '?' || parse_long(optarg, targets[id]) != 0)
            return -1;
        if (id == 'g' && (*end != '\0' || !(o->budget_gib > 0)))
            return -1;
    }
    return optind == argc && o->min_len <= o->max_len ? 0 : -1;
}

int main(int argc, char **argv)
{
    mem_options o;
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    enum { MAX_ROWS = 48 };
    mem_row rows[MAX_ROWS];
    int n_rows = 0;
    double idle = measure_in_child(IDLE, 0, 0, (int)o.threads).mib;
    print_head(stdout, &o, idle);
    for (long n = o.min_len; n <= o.max_len && n_rows < MAX_ROWS; n *= 2) {
        rows[n_rows] = measure_length(n, &o);
        print_row(stdout, &rows[n_rows++], &o);
    }
    print_verdict(stdout, rows, n_rows, &o);
    print_method_check(stdout, &o);
    if (o.dat_path)
        write_dat(o.dat_path, rows, n_rows);
    FILE *md = o.md_path ? fopen(o.md_path, "w") : NULL;
    if (md) {
        print_head(md, &o, idle);
        for (int i = 0; i < n_rows; i++)
            print_row(md, &rows[i], &o);
        print_verdict(md, rows, n_rows, &o);
        fclose(md);
    }
    return 0;
}
