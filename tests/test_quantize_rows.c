/*
 * flat_quantize's kernels (ukernel.h's quantize_row and first_nonfinite) on
 * every table against kernels/encode.h's reference, bit for bit: codes
 * (with canary bytes after them), computed scales (f32 and f16) and given
 * ones (zero scales included), over every source type (f32, f16, bf16),
 * code type (I8, F8E4M3, I4), group sizes 1, 2, 3, 4, 6, 8, 16, 24, 32, 48,
 * 64, 128 and the whole row, row lengths around the vector widths; values
 * random, on rounding midpoints, tiny (subnormal e4m3 quotients), huge
 * (saturation), subnormal (f32 scales that are subnormal too), -0 and
 * all-zero groups. first_nonfinite: inf and NaN of
 * every type at every position of rows up to 70 long. test_quantize.c runs
 * the exhaustive codec through flat_quantize on each table as well.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dispatch.h"
#include "encode.h"
#include "testutil.h"

static const char *tname(flat_dtype t)
{
    static const char *n[] = {"f32", "f16", "bf16", "i8", "f8e4m3", "i4"};
    return n[t];
}

static const flat_ukernels *tables[8];
static int ntables;

enum { MAXN = 272, CANARY = 16 };

/* One value of a row: kind picks random, midpoint, tiny, huge, -0 or 0. */
static float pick(tu_rng *r, int kind, flat_dtype t)
{
    switch (kind) {
    case 0: return (float)(tu_next(r) % 17) - 8.0f + 0.5f; /* a midpoint when s = 1 */
    case 1: return tu_uniform(r, -1e-3f, 1e-3f);
    case 2: return tu_uniform(r, -6e4f, 6e4f); /* finite in f16 too */
    case 3: return -0.0f;
    case 4: return 0.0f;
    case 5: return tu_uniform(r, -1e-38f, 1e-38f); /* subnormal scales (f32 and bf16 sources) */
    default: return tu_uniform(r, -1.0f, 1.0f) * flat_code_max(t);
    }
}

static void store_src(void *x, int64_t i, flat_dtype xt, float v)
{
    flat_store_elem(x, i, v, xt);
}

/* One row through table k and the reference; everything written compared. */
static void check_one(const flat_ukernels *k, int64_t n, flat_dtype xt, int64_t group,
                      flat_dtype t, flat_dtype st, int given, tu_rng *r, int pattern)
{
    float xs[MAXN];
    uint8_t x[MAXN * 4], c_ref[MAXN + CANARY], c_k[MAXN + CANARY];
    uint8_t s_ref[MAXN * 4 + CANARY], s_k[MAXN * 4 + CANARY];
    const int64_t groups = n / group;
    for (int64_t i = 0; i < n; i++) {
        const int kind = pattern == 7 ? (int)(tu_next(r) % 7) : pattern;
        xs[i] = (i / group) % 5 == 4 ? 0.0f : pick(r, kind, t); /* every 5th group all zero */
        store_src(x, i, xt, xs[i]);
    }
    memset(c_ref, 0x5a, sizeof c_ref), memset(c_k, 0x5a, sizeof c_k);
    memset(s_ref, 0xa5, sizeof s_ref), memset(s_k, 0xa5, sizeof s_k);
    if (given)
        for (int64_t g = 0; g < groups; g++) {
            const float s = g % 7 == 3 ? 0.0f : tu_uniform(r, 0.001f, 2.0f);
            flat_store_elem(s_ref, g, s, st), flat_store_elem(s_k, g, s, st);
        }
    flat_quantize_row_ref(n, x, xt, group, t, c_ref, s_ref, st, given);
    k->quantize_row(n, x, xt, group, t, c_k, s_k, st, given);
    const int64_t cb = flat_dtype_bytes(t, n), sb = groups * flat_dtype_size(st);
    for (int64_t i = 0; i < cb + CANARY; i++)
        if (c_k[i] != c_ref[i])
            fail_msg("%s quantize_row n %lld %s -> %s group %lld %s scales%s pattern %d: code "
                     "byte %lld = 0x%02x, reference 0x%02x%s",
                     k->name, (long long)n, tname(xt), tname(t), (long long)group,
                     tname(st), given ? " given" : "", pattern, (long long)i, c_k[i],
                     c_ref[i], i >= cb ? " (past the codes)" : "");
    for (int64_t i = 0; i < sb + CANARY; i++)
        if (s_k[i] != s_ref[i])
            fail_msg("%s quantize_row n %lld %s -> %s group %lld: scale byte %lld differs%s",
                     k->name, (long long)n, tname(xt), tname(t), (long long)group,
                     (long long)i, i >= sb ? " (past the scales)" : "");
}

static void test_rows_match_reference(void **state)
{
    (void)state;
    static const int64_t lens[] = {2, 6, 8, 16, 30, 32, 48, 96, 128, 130, 192, 256, 258};
    static const int64_t groups[] = {1, 2, 3, 4, 6, 8, 16, 24, 32, 48, 64, 128, 0};
    const flat_dtype xts[3] = {FLAT_F32, FLAT_F16, FLAT_BF16};
    const flat_dtype ts[3] = {FLAT_I8, FLAT_F8E4M3, FLAT_I4};
    long rows = 0;
    for (int ti = 0; ti < ntables; ti++) {
        tu_rng r = {0x1234 + (uint64_t)ti};
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
                const int64_t n = lens[li], g = groups[gi] ? groups[gi] : n;
                if (n % g)
                    continue;
                for (int xi = 0; xi < 3; xi++)
                    for (int di = 0; di < 3; di++)
                        for (int st = FLAT_F32; st <= FLAT_F16; st++)
                            for (int given = 0; given < 2; given++)
                                for (int pattern = tu_quick() ? 7 : 0; pattern < 8;
                                     pattern++, rows++)
                                    check_one(tables[ti], n, xts[xi], g, ts[di], (flat_dtype)st,
                                              given, &r, pattern);
            }
    }
    printf("test_quantize_rows: %ld rows, every table's bits = the reference's\n", rows);
}

static void test_first_nonfinite(void **state)
{
    (void)state;
    const flat_dtype xts[3] = {FLAT_F32, FLAT_F16, FLAT_BF16};
    const float bad[3] = {INFINITY, -INFINITY, NAN};
    uint8_t x[80 * 4];
    for (int ti = 0; ti < ntables; ti++)
        for (int xi = 0; xi < 3; xi++)
            for (int64_t n = 0; n <= 70; n++) {
                for (int64_t i = 0; i < n; i++) /* 65504 and 3e38: finite extremes */
                    store_src(x, i, xts[xi], xts[xi] == FLAT_F16 ? 65504.0f : (i % 2 ? -3e38f : 1.0f));
                assert_int_equal(tables[ti]->first_nonfinite(n, x, xts[xi]), n);
                for (int64_t at = 0; at < n; at++)
                    for (int b = 0; b < 3; b++) {
                        store_src(x, at, xts[xi], bad[b]);
                        if (at + 3 < n)
                            store_src(x, at + 3, xts[xi], bad[(b + 1) % 3]);
                        const int64_t got = tables[ti]->first_nonfinite(n, x, xts[xi]);
                        if (got != at)
                            fail_msg("%s first_nonfinite n %lld %s: %g at %lld, got %lld",
                                     tables[ti]->name, (long long)n, tname(xts[xi]),
                                     (double)bad[b], (long long)at, (long long)got);
                        store_src(x, at, xts[xi], 1.0f);
                        if (at + 3 < n)
                            store_src(x, at + 3, xts[xi], 1.0f);
                    }
            }
}

int main(void)
{
    ntables = tu_runnable_tables("test_quantize_rows", tables, 8);
    if (tu_check_required_isas("test_quantize_rows"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_match_reference),
        cmocka_unit_test(test_first_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
