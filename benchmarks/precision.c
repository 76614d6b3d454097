/*
 * flat-bench-precision: the products a call uses, timed. For each shape of
 * a shapes file (or those named), q, k and v of one element type, one
 * precision policy (or an explicit isa), on T threads: the table the policy
 * chose, the median time, GFLOP/s, and against this process's own ceilings:
 * the chosen table's peak probe (FMA, vdpbf16ps or tdpbf16ps) and, for
 * decode-like shapes, the read bandwidth (K and V bytes per second).
 *
 *   flat-bench-precision [--shapes FILE] [--only a,b] [--threads N] [--reps N]
 *                        [--dtype f32|f16|bf16] [--precision auto|fp32|bf16]
 *                        [--isa NAME] [--peaks] [--phases]
 *
 * --peaks prints the FMA, vdpbf16ps and AMX probes on the threads.
 * --phases times one task's kernel steps (pack, qk, softmax, pv) of each
 * shape on one thread, on the table the policy chose: where the time goes.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "dispatch.h"
#include "explain.h"
#include "flat.h"
#include "probes.h"
#include "shapes.h"
#include "ukernel.h"

typedef struct {
    const char *shapes, *only;
    int threads, reps, peaks, phases;
    flat_dtype dtype;
    flat_options opt;
} cli;

static uint16_t to_16(float x, flat_dtype t)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if (t == FLAT_BF16)
        return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    _Float16 h = (_Float16)x;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}

/* n elements of type t, uniform in [-1, 1), from a fixed seed. */
static void *random_tensor(int64_t n, flat_dtype t, uint64_t seed)
{
    size_t size = t == FLAT_F32 ? 4 : 2;
    void *p = aligned_alloc(64, ((size_t)n * size + 63) / 64 * 64);
    if (!p)
        return NULL;
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = (seed + (uint64_t)i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
        float x = (float)((double)(z >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
        if (t == FLAT_F32)
            ((float *)p)[i] = x;
        else
            ((uint16_t *)p)[i] = to_16(x, t);
    }
    return p;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *dtype_name(flat_dtype t) { return t == FLAT_F32 ? "f32" : t == FLAT_F16 ? "f16" : "bf16"; }

/* One shape: the chosen table, the median of reps calls, rates. K and V in
 * enough copies to span 4x the last-level cache when the shape is decode-like
 * (each call reads them from memory), one copy otherwise (compute-bound). */
static int run_shape(const cli *c, const bench_shape *s)
{
    const int64_t nq = s->batch * s->q_heads * s->q_len * s->head_dim;
    const int64_t nkv = s->batch * s->kv_heads * s->kv_len * s->head_dim;
    const size_t es = c->dtype == FLAT_F32 ? 4 : 2;
    int copies = 1;
    if (shape_is_decode_like(s)) {
        double llc = (double)probe_llc_bytes(), kvb = 2.0 * (double)nkv * (double)es;
        copies = (int)fmin(256, ceil(4 * llc / kvb));
    }
    void *q = random_tensor(nq, c->dtype, 1), *out = random_tensor(nq, c->dtype, 2);
    void *k = random_tensor(nkv * copies, c->dtype, 3), *v = random_tensor(nkv * copies, c->dtype, 4);
    if (!q || !out || !k || !v) {
        fprintf(stderr, "%s: out of memory\n", s->name);
        return 1;
    }
    flat_tensor tq = flat_tensor_bhsd(q, c->dtype, s->batch, s->q_heads, s->q_len, s->head_dim);
    flat_tensor to = flat_tensor_bhsd(out, c->dtype, s->batch, s->q_heads, s->q_len, s->head_dim);
    flat_options opt = c->opt;
    opt.causal = s->causal;
    opt.num_threads = c->threads;
    flat_plan *plan = NULL;
    flat_tensor tk = flat_tensor_bhsd(k, c->dtype, s->batch, s->kv_heads, s->kv_len, s->head_dim);
    flat_tensor tv = flat_tensor_bhsd(v, c->dtype, s->batch, s->kv_heads, s->kv_len, s->head_dim);
    flat_status st = flat_plan_create(&tq, &tk, &tv, &to, &opt, &plan);
    if (st != FLAT_OK) {
        printf("%-16s %s: %s\n", s->name, flat_status_string(st), flat_last_error());
        return 0;
    }
    char isa[32] = "?";
    const char *d = flat_plan_describe(plan), *at = strstr(d, "isa=");
    if (at)
        sscanf(at + 4, "%31s", isa);
    const char *why = strstr(d, "; isa ");
    double t[64];
    for (int r = -1; r < c->reps; r++) {
        int64_t off = (int64_t)((r + 1) % copies) * nkv * (int64_t)es;
        tk.data = (char *)k + off;
        tv.data = (char *)v + off;
        double t0 = bench_now();
        st = flat_attention(&tq, &tk, &tv, &to, &opt);
        if (r >= 0)
            t[r] = bench_now() - t0;
        if (st != FLAT_OK) {
            printf("%-16s %s: %s\n", s->name, flat_status_string(st), flat_last_error());
            return 1;
        }
    }
    qsort(t, (size_t)c->reps, sizeof t[0], cmp);
    const double sec = t[c->reps / 2], gflops = shape_flops(s) / sec * 1e-9;
    flat_isa chosen = FLAT_ISA_AUTO;
    for (flat_isa i = FLAT_ISA_SCALAR; i <= FLAT_ISA_AVX512_VNNI; i++)
        if (strcmp(isa, flat_isa_name(i)) == 0)
            chosen = i;
    const probe_result *peak = probe_fma_peak(chosen, c->threads);
    printf("%-16s dtype=%s isa=%-11s threads=%-2d %9.3f ms %8.1f GFLOP/s", s->name,
           dtype_name(c->dtype), isa, c->threads, 1e3 * sec, gflops);
    if (peak && peak->value > 0)
        printf("  %5.1f%% of %s peak (%.0f)", 100 * gflops / peak->value, isa, peak->value);
    if (shape_is_decode_like(s)) {
        bench_shape kv = *s;
        kv.kv_dtype = c->dtype;
        const double gbs = shape_kv_bytes(&kv) / sec * 1e-9;
        const probe_result *bw = probe_read_bandwidth(c->threads);
        printf("  K/V %.1f GB/s = %.1f%% of read bandwidth (%.1f GB/s)", gbs,
               bw && bw->value > 0 ? 100 * gbs / bw->value : NAN, bw ? bw->value : NAN);
    }
    printf("  [%s]\n", why ? why + 2 : "");
    fflush(stdout);
    flat_plan_destroy(plan);
    free(q), free(out), free(k), free(v);
    return 0;
}

/* Median seconds of `reps` runs of the step. */
#define TIME_STEP(result, reps, body)                                                              \
    do {                                                                                           \
        double ts_[64];                                                                            \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t0_ = bench_now();                                                              \
            body;                                                                                  \
            ts_[r_] = bench_now() - t0_;                                                           \
        }                                                                                          \
        qsort(ts_, (size_t)(reps), sizeof ts_[0], cmp);                                            \
        (result) = ts_[(reps) / 2];                                                                \
    } while (0)

/* One task's steps on one thread: 48 query rows (a task's), 512 keys (a key
 * block), the shape's d, the chosen table; K and V bf16 in L2. */
static void phases(const cli *c, const bench_shape *s)
{
    flat_status st;
    char why[256];
    const flat_ukernels *uk = flat_dispatch_choose(c->opt.isa, c->opt.precision, c->dtype,
                                                   c->dtype, &st, why, sizeof why);
    if (!uk)
        return;
    const int d = (int)s->head_dim, rows = 48, n = 512, reps = 31;
    const int panels_q = (rows + uk->mr - 1) / uk->mr, panels_k = n / uk->nr;
    float *qp = aligned_alloc(64, sizeof(float) * (size_t)panels_q * uk->mr * d);
    float *kp = aligned_alloc(64, sizeof(float) * (size_t)n * d);
    float *sc = aligned_alloc(64, sizeof(float) * (size_t)panels_q * uk->mr * n);
    float *o = aligned_alloc(64, sizeof(float) * (size_t)rows * d);
    void *q = random_tensor((int64_t)rows * d, c->dtype, 5), *k = random_tensor((int64_t)n * d, c->dtype, 6);
    void *v = random_tensor((int64_t)n * d, c->dtype, 7);
    const void *qrows[48];
    const size_t es = c->dtype == FLAT_F32 ? 4 : 2;
    for (int i = 0; i < rows; i++)
        qrows[i] = (const char *)q + (size_t)i * d * es;
    double t_pq, t_pk, t_qk, t_sm, t_pv;
    TIME_STEP(t_pq, reps, uk->pack_q(rows, d, qrows, c->dtype, 0.125f, qp));
    const flat_kv_src ks = {.data = k, .ld = d, .t = c->dtype}, vs = {.data = v, .ld = d, .t = c->dtype};
    TIME_STEP(t_pk, reps, uk->pack_k(n, d, &ks, kp));
    TIME_STEP(t_qk, reps, for (int p = 0; p < panels_q; p++) uk->qk(d, panels_k, qp + (size_t)p * uk->mr * d, kp, sc + (size_t)p * uk->mr * n, n));
    float *s2 = aligned_alloc(64, sizeof(float) * (size_t)rows * n);
    TIME_STEP(t_sm, reps, memcpy(s2, sc, sizeof(float) * (size_t)rows * n);
              for (int i = 0; i < rows; i++) {
                  float m = uk->row_max(n, s2 + (size_t)i * n);
                  uk->exp2_row(n, n, s2 + (size_t)i * n, m);
              });
    TIME_STEP(t_pv, reps, for (int r0 = 0; r0 < rows; r0 += uk->pv_mr)
                  uk->pv(rows - r0 < uk->pv_mr ? rows - r0 : uk->pv_mr, n, d, s2 + (size_t)r0 * n, n, &vs,
                         o + (size_t)r0 * d, d, NULL));
    const double fl = 2.0 * rows * n * d, total = t_pq + t_pk + t_qk + t_sm + t_pv;
    const probe_result *peak = probe_fma_peak(uk->isa, 1);
    const double pk = peak ? peak->value : NAN;
    printf("phases %-14s %s d=%d (48 rows x 512 keys, 1 thread): pack_q %.1f us, pack_k %.1f us, "
           "qk %.1f us (%.0f GFLOP/s, %.1f%% of peak), softmax %.1f us, pv %.1f us (%.0f GFLOP/s, "
           "%.1f%% of peak, incl. P to bf16 and V pairs); whole block %.0f GFLOP/s = %.1f%% of "
           "the %s peak %.0f; shares: pack %.0f%% qk %.0f%% softmax %.0f%% pv %.0f%%\n",
           s->name, uk->name, d, 1e6 * t_pq, 1e6 * t_pk, 1e6 * t_qk, fl / t_qk * 1e-9,
           100 * fl / t_qk * 1e-9 / pk, 1e6 * t_sm, 1e6 * t_pv, fl / t_pv * 1e-9,
           100 * fl / t_pv * 1e-9 / pk, 2 * fl / total * 1e-9, 100 * 2 * fl / total * 1e-9 / pk,
           uk->name, pk, 100 * (t_pq + t_pk) / total, 100 * t_qk / total, 100 * t_sm / total,
           100 * t_pv / total);
    fflush(stdout);
    free(qp), free(kp), free(sc), free(s2), free(o), free(q), free(k), free(v);
}

static int parse(int argc, char **argv, cli *c)
{
    static const struct option lo[] = {{"shapes", 1, 0, 's'}, {"only", 1, 0, 'o'},
                                       {"threads", 1, 0, 't'}, {"reps", 1, 0, 'r'},
                                       {"dtype", 1, 0, 'd'},  {"precision", 1, 0, 'p'},
                                       {"isa", 1, 0, 'i'},    {"peaks", 0, 0, 'k'},
                                       {"phases", 0, 0, 'f'}, {0, 0, 0, 0}};
    *c = (cli){.shapes = BENCH_SHAPES_CSV, .threads = omp_get_max_threads(), .reps = 5,
               .dtype = FLAT_BF16};
    int id;
    while ((id = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (id) {
        case 's': c->shapes = optarg; break;
        case 'o': c->only = optarg; break;
        case 't': c->threads = atoi(optarg); break;
        case 'r': c->reps = atoi(optarg) < 1 ? 1 : atoi(optarg) > 63 ? 63 : atoi(optarg); break;
        case 'k': c->peaks = 1; break;
        case 'f': c->phases = 1; break;
        case 'd':
            c->dtype = strcmp(optarg, "f32") == 0 ? FLAT_F32 : strcmp(optarg, "f16") == 0 ? FLAT_F16 : FLAT_BF16;
            break;
        case 'p':
            c->opt.precision = strcmp(optarg, "fp32") == 0   ? FLAT_PRECISION_FP32
                               : strcmp(optarg, "bf16") == 0 ? FLAT_PRECISION_BF16
                                                             : FLAT_PRECISION_AUTO;
            break;
        case 'i':
            for (flat_isa i = FLAT_ISA_AUTO; i <= FLAT_ISA_AVX512_VNNI; i++)
                if (strcmp(optarg, flat_isa_name(i)) == 0)
                    c->opt.isa = i;
            break;
        default: return 2;
        }
    }
    return 0;
}

static int wanted(const cli *c, const char *name)
{
    if (!c->only)
        return 1;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", c->only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (strcmp(tok, name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    cli c;
    if (parse(argc, argv, &c) != 0) {
        fprintf(stderr, "usage: see the comment at the top of benchmarks/precision.c\n");
        return 2;
    }
    if (c.peaks) {
        static const flat_isa isas[] = {FLAT_ISA_AVX512, FLAT_ISA_AVX512_BF16, FLAT_ISA_AMX_BF16};
        for (size_t i = 0; i < 3; i++) {
            const probe_result *p = probe_fma_peak(isas[i], c.threads);
            printf("peak %-11s threads=%-2d %s\n", flat_isa_name(isas[i]), c.threads, "");
            if (p)
                printf("     %.1f GFLOP/s (spread %.3f)\n", p->value, p->spread);
            else
                printf("     (no probe: not built or not runnable here)\n");
        }
    }
    bench_shape *shapes = NULL;
    char err[256];
    int n = shapes_load(c.shapes, &shapes, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "flat-bench-precision: %s\n", err);
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (wanted(&c, shapes[i].name)) {
            if (c.phases)
                phases(&c, &shapes[i]);
            else
                bad |= run_shape(&c, &shapes[i]);
        }
    free(shapes);
    return bad;
}
