/*
 * flat-bench-mixed: a server step as one ragged paged call against its parts
 * called apart (issue 21, point 5a).
 *
 * The step: 8 decodes (one query each) of 100..3000 tokens and one prefill
 * chunk of 64 queries at the end of a --chunk-kv token prompt (causal), 32
 * query / 8 kv heads, D 128, q and out f32, K/V bf16 in shuffled pages of
 * 16 tokens (head-major pages, vLLM's CPU layout; --nhd: token-major).
 * Three calls of flat_attention_paged with q_offsets over the same pools:
 *   mixed     all 9 sequences
 *   decodes   the 8 decodes alone
 *   chunk     the chunk alone
 * alternating M D C, C D M so drift hits all alike. The line gives the
 * median of each and the median of the per-round ratios mixed / (decodes +
 * chunk), which a noisy neighbour disturbs less than the medians. It then
 * compares the mixed call's rows with the parts' (bitwise equal rows, the
 * largest difference).
 *
 *   flat-bench-mixed [--threads N] [--rounds N] [--chunk-kv N] [--page N] [--nhd]
 *                    [--quick]
 * Without --threads it measures 1 and 2 threads. FLAT_VERBOSE=1 prints the plans.
 */
#include <flat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DECODES = 8, SEQS = DECODES + 1, HQ = 32, HKV = 8, D = 128, CHUNK = 64, MAX_ROUNDS = 400 };

static const int32_t decode_lens[DECODES] = {1757, 100, 2586, 929, 3000, 514, 2171, 1343};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *x, int n)
{
    double *y = malloc(sizeof *y * (size_t)n);
    memcpy(y, x, sizeof *y * (size_t)n);
    qsort(y, (size_t)n, sizeof *y, cmp_double);
    double m = n % 2 ? y[n / 2] : 0.5 * (y[n / 2 - 1] + y[n / 2]);
    free(y);
    return m;
}

static void *alloc_or_die(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "flat-bench-mixed: out of memory\n");
        exit(1);
    }
    return p;
}

static float value(size_t i, unsigned seed)
{
    return (float)(((i * 2654435761u + seed * 40503u) >> 8) & 1023) / 1024.0f - 0.5f;
}

/* bf16 of x, rounded to nearest even (the values are small and finite). */
static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

typedef struct {
    uint16_t *kp, *vp;
    int32_t lens[SEQS], *table, offsets[SEQS + 1];
    int64_t pages, per_seq, page_size;
    float *q, *out_mixed, *out_parts; /* [1, HQ, 72, D] */
    flat_paged_kv kv;                 /* all sequences */
} step;

static void make_step(step *s, int64_t chunk_kv, int64_t ps, int nhd)
{
    int64_t longest = chunk_kv;
    for (int b = 0; b < DECODES; b++) {
        s->lens[b] = decode_lens[b];
        longest = decode_lens[b] > longest ? decode_lens[b] : longest;
    }
    s->lens[DECODES] = (int32_t)chunk_kv;
    s->page_size = ps;
    s->per_seq = (longest + ps - 1) / ps;
    s->pages = SEQS * s->per_seq;
    const int64_t page = ps * HKV * D;
    s->kp = alloc_or_die(sizeof(uint16_t) * (size_t)(s->pages * page));
    s->vp = alloc_or_die(sizeof(uint16_t) * (size_t)(s->pages * page));
    s->table = alloc_or_die(sizeof(int32_t) * (size_t)s->pages);
    for (int64_t i = 0; i < s->pages; i++)
        s->table[i] = (int32_t)((i * 7919) % s->pages); /* scrambled (7919 is prime) */
    for (size_t i = 0; i < (size_t)(s->pages * page); i++)
        s->kp[i] = to_bf16(value(i, 2)), s->vp[i] = to_bf16(value(i, 3));
    s->offsets[0] = 0;
    for (int b = 0; b < SEQS; b++)
        s->offsets[b + 1] = s->offsets[b] + (b < DECODES ? 1 : CHUNK);
    const size_t rows = (size_t)HQ * (DECODES + CHUNK) * D;
    s->q = alloc_or_die(sizeof(float) * rows);
    s->out_mixed = alloc_or_die(sizeof(float) * rows);
    s->out_parts = alloc_or_die(sizeof(float) * rows);
    for (size_t i = 0; i < rows; i++)
        s->q[i] = value(i, 1), s->out_mixed[i] = s->out_parts[i] = 0.0f;
    const int64_t sh = nhd ? D : ps * D, st = nhd ? HKV * D : D;
    s->kv = (flat_paged_kv){FLAT_BF16, s->kp, s->vp, s->pages, ps, HKV, D, D,
                            page, st, sh, page, st, sh,
                            SEQS, s->lens, s->table, s->per_seq, s->offsets};
}

static void free_step(step *s)
{
    free(s->kp), free(s->vp), free(s->table), free(s->q), free(s->out_mixed), free(s->out_parts);
}

/* q or out rows [row0, row0 + n) of the [1, HQ, 72, D] tensor, as a tensor of n rows. */
static flat_tensor rows_of(float *data, int64_t row0, int64_t n)
{
    flat_tensor t = flat_tensor_bhsd(data + row0 * D, FLAT_F32, 1, HQ, n, D);
    t.stride_batch = t.stride_head = (int64_t)(DECODES + CHUNK) * D;
    return t;
}

typedef struct {
    flat_tensor q, out;
    flat_paged_kv kv;
    int32_t offsets[SEQS + 1];
} call;

/* Sequences [b0, b0 + n) of the step as one ragged call writing into `out`. */
static void make_call(const step *s, int b0, int n, float *out, call *c)
{
    int64_t row0 = s->offsets[b0], rows = s->offsets[b0 + n] - row0;
    for (int b = 0; b <= n; b++)
        c->offsets[b] = s->offsets[b0 + b] - (int32_t)row0;
    c->q = rows_of(s->q, row0, rows);
    c->out = rows_of(out, row0, rows);
    c->kv = s->kv;
    c->kv.batch = n;
    c->kv.seq_lens = s->lens + b0;
    c->kv.block_table = s->table + b0 * s->per_seq;
    c->kv.q_offsets = c->offsets;
}

static double timed(const call *c, const flat_options *opt)
{
    double t0 = now();
    if (flat_attention_paged(&c->q, &c->kv, &c->out, opt) != FLAT_OK) {
        fprintf(stderr, "flat-bench-mixed: %s\n", flat_last_error());
        exit(1);
    }
    return now() - t0;
}

/* Rows of the mixed call bitwise equal to the parts', and the largest difference. */
static void compare(const step *s, int *equal, double *diff)
{
    *equal = 0, *diff = 0;
    for (int64_t r = 0; r < (int64_t)HQ * (DECODES + CHUNK); r++) {
        const float *a = s->out_mixed + r * D, *b = s->out_parts + r * D;
        *equal += memcmp(a, b, sizeof(float) * D) == 0;
        for (int c = 0; c < D; c++)
            *diff = fmax(*diff, fabs((double)a[c] - b[c]));
    }
}

static void measure(step *s, int threads, int rounds)
{
    call mixed, decodes, chunk;
    make_call(s, 0, SEQS, s->out_mixed, &mixed);
    make_call(s, 0, DECODES, s->out_parts, &decodes);
    make_call(s, DECODES, 1, s->out_parts, &chunk);
    flat_options opt = {0};
    opt.num_threads = threads, opt.causal = 1;
    static double tm[MAX_ROUNDS], td[MAX_ROUNDS], tc[MAX_ROUNDS], ratio[MAX_ROUNDS];
    timed(&mixed, &opt), timed(&decodes, &opt), timed(&chunk, &opt); /* warm up */
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            tm[r] = timed(&mixed, &opt), td[r] = timed(&decodes, &opt), tc[r] = timed(&chunk, &opt);
        } else {
            tc[r] = timed(&chunk, &opt), td[r] = timed(&decodes, &opt), tm[r] = timed(&mixed, &opt);
        }
        ratio[r] = tm[r] / (td[r] + tc[r]);
    }
    int equal;
    double diff;
    compare(s, &equal, &diff);
    double m = median(tm, rounds), d = median(td, rounds), c = median(tc, rounds);
    printf("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %d / %d | %.2g |\n", threads,
           1e3 * m, 1e3 * d, 1e3 * c, 1e3 * (d + c), m / (d + c), median(ratio, rounds), equal,
           HQ * (DECODES + CHUNK), diff);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int threads = 0, rounds = 41, nhd = 0;
    int64_t chunk_kv = 1024, ps = 16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk-kv") && i + 1 < argc)
            chunk_kv = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--page") && i + 1 < argc)
            ps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--nhd"))
            nhd = 1;
        else if (!strcmp(argv[i], "--quick"))
            rounds = 3;
        else {
            fprintf(stderr, "usage: flat-bench-mixed [--threads N] [--rounds N] [--chunk-kv N] "
                            "[--page N] [--nhd] [--quick]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || chunk_kv < CHUNK || ps < 1) {
        fprintf(stderr, "flat-bench-mixed: --rounds in [1, %d], --chunk-kv >= %d, --page >= 1\n",
                MAX_ROUNDS, CHUNK);
        return 2;
    }
    step s;
    make_step(&s, chunk_kv, ps, nhd);
    printf("## Mixed step: 8 decodes (100..3000 tokens) + a %d-query chunk at %lld tokens, "
           "32/8 heads, D 128, bf16 %s pages of %lld, q/out f32, causal; medians of %d rounds\n\n",
           CHUNK, (long long)chunk_kv, nhd ? "NHD" : "HND", (long long)ps, rounds);
    printf("| threads | mixed ms | decodes ms | chunk ms | parts ms | mixed / parts "
           "| median ratio | rows bitwise equal | max diff |\n");
    printf("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int t = threads ? threads : 1; t <= (threads ? threads : 2); t++)
        measure(&s, t, rounds);
    free_step(&s);
    return 0;
}
