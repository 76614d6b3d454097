/*
 * Every argument rule of flat.h (and DESIGN "Semantics"), one test each:
 * the status, that flat_last_error() names the offending argument, and that
 * nothing was written: out, lse and every input buffer are compared byte for
 * byte with their state before the call (out and lse start as a sentinel
 * pattern). Also the small API functions: status strings, version, ISA
 * names, tensor helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "testutil.h"

/* A valid problem: q [2,4,5,8], k [2,2,6,8], v [2,2,6,12], out [2,4,5,12]. */
enum { B = 2, HQ = 4, HKV = 2, NQ = 5, NK = 6, D = 8, DV = 12 };
#define NQF (B * HQ * NQ * D)
#define NKF (B * HKV * NK * D)
#define NVF (B * HKV * NK * DV)
#define NOF (B * HQ * NQ * DV)
#define NLSE (B * HQ * NQ)

typedef struct {
    /* one arena, so overlap tests can point views anywhere in it */
    float arena[NQF + NKF + NVF + NOF + NLSE + 64];
    float *qd, *kd, *vd, *od, *lse;
    flat_tensor q, k, v, out;
    flat_options opt;
    int32_t kv_lens[B];
} fixture;

static fixture fx;

static void setup_valid(void)
{
    tu_rng rng = {42};
    memset(&fx, 0, sizeof fx);
    for (size_t i = 0; i < sizeof fx.arena / sizeof fx.arena[0]; i++)
        fx.arena[i] = tu_uniform(&rng, -1.0f, 1.0f);
    fx.qd = fx.arena;
    fx.kd = fx.qd + NQF;
    fx.vd = fx.kd + NKF;
    fx.od = fx.vd + NVF;
    fx.lse = fx.od + NOF;
    memset(fx.od, 0xA5, sizeof(float) * (NOF + NLSE)); /* sentinel */
    fx.q = flat_tensor_bhsd(fx.qd, FLAT_F32, B, HQ, NQ, D);
    fx.k = flat_tensor_bhsd(fx.kd, FLAT_F32, B, HKV, NK, D);
    fx.v = flat_tensor_bhsd(fx.vd, FLAT_F32, B, HKV, NK, DV);
    fx.out = flat_tensor_bhsd(fx.od, FLAT_F32, B, HQ, NQ, DV);
    fx.opt.lse = fx.lse;
    fx.kv_lens[0] = NK, fx.kv_lens[1] = 3;
}

/* Whether msg names `arg` as a whole token (not as part of a longer name). */
static int names_arg(const char *msg, const char *arg)
{
    size_t n = strlen(arg);
    for (const char *p = strstr(msg, arg); p; p = strstr(p + 1, arg)) {
        int before = p > msg && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == '.');
        int after = isalnum((unsigned char)p[n]) || p[n] == '_';
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* Calls flat_attention with the fixture (pointers may be overridden) and
 * checks the status, the message, and that no byte of the arena changed. */
static void expect_status(flat_status want, const char *arg, const flat_tensor *q,
                          const flat_tensor *k, const flat_tensor *v, const flat_tensor *out,
                          const flat_options *opt, int line)
{
    static float before[sizeof fx.arena / sizeof fx.arena[0]];
    memcpy(before, fx.arena, sizeof before);
    flat_status st = flat_attention(q, k, v, out, opt);
    const char *msg = flat_last_error();
    if (!msg)
        fail_msg("line %d: flat_last_error() returned NULL", line);
    if (st != want)
        fail_msg("line %d: status %s, want %s (message: \"%s\")", line, flat_status_string(st),
                 flat_status_string(want), msg);
    if (want != FLAT_OK) {
        if (arg && !names_arg(msg, arg))
            fail_msg("line %d: message \"%s\" does not name %s", line, msg, arg);
        if (memcmp(before, fx.arena, sizeof before) != 0)
            fail_msg("line %d: rejected call (%s) wrote memory", line, msg);
        printf("  %-30s -> %s: %s\n", arg ? arg : "", flat_status_string(st), msg);
    }
}

#define REJECT(arg) expect_status(FLAT_ERROR_INVALID_ARGUMENT, arg, &q, &k, &v, &out, &opt, __LINE__)
#define UNSUPPORTED(arg) expect_status(FLAT_ERROR_UNSUPPORTED, arg, &q, &k, &v, &out, &opt, __LINE__)
#define ACCEPT() expect_status(FLAT_OK, NULL, &q, &k, &v, &out, &opt, __LINE__)
#define FRESH()                                                                                \
    setup_valid();                                                                             \
    flat_tensor q = fx.q, k = fx.k, v = fx.v, out = fx.out;                                    \
    flat_options opt = fx.opt;                                                                 \
    (void)q, (void)k, (void)v, (void)out, (void)opt

/* The fixture itself is valid (otherwise every rejection below is vacuous). */
static void test_fixture_valid(void **state)
{
    (void)state;
    FRESH();
    ACCEPT();
    /* and it wrote out and lse */
    int changed = 0;
    for (int i = 0; i < NOF; i++)
        changed |= tu_bits(fx.od[i]) != 0xA5A5A5A5u;
    assert_true(changed);
    assert_true(isfinite(fx.lse[0]));
}

static void test_null_tensors(void **state)
{
    (void)state;
    static const char *names[] = {"q", "k", "v", "out"};
    for (int i = 0; i < 4; i++) {
        FRESH();
        const flat_tensor *t[4] = {&q, &k, &v, &out};
        t[i] = NULL;
        expect_status(FLAT_ERROR_INVALID_ARGUMENT, names[i], t[0], t[1], t[2], t[3], &opt,
                      __LINE__);
    }
}

static void test_null_data(void **state)
{
    (void)state;
    static const char *names[] = {"q.data", "k.data", "v.data", "out.data"};
    for (int i = 0; i < 4; i++) {
        FRESH();
        flat_tensor *t[4] = {&q, &k, &v, &out};
        t[i]->data = NULL;
        REJECT(names[i]);
    }
}

static void test_nonpositive_sizes(void **state)
{
    (void)state;
    static const char *tn[] = {"q", "k", "v", "out"}, *dn[] = {"batch", "heads", "seq", "dim"};
    static const int64_t bad[] = {0, -1, INT64_MIN};
    for (int i = 0; i < 4; i++)
        for (int d = 0; d < 4; d++)
            for (int b = 0; b < 3; b++) {
                FRESH();
                flat_tensor *t[4] = {&q, &k, &v, &out};
                int64_t *f[4] = {&t[i]->batch, &t[i]->heads, &t[i]->seq, &t[i]->dim};
                *f[d] = bad[b];
                char arg[32];
                snprintf(arg, sizeof arg, "%s.%s", tn[i], dn[d]);
                REJECT(arg);
            }
}

/* Size products beyond int64 (and element offsets beyond it) are errors, not wraps. */
static void test_size_overflow(void **state)
{
    (void)state;
    {
        FRESH(); /* batch * heads * seq * dim overflows */
        q.seq = out.seq = INT64_C(1) << 40;
        q.dim = k.dim = INT64_C(1) << 40;
        REJECT("q");
    }
    {
        FRESH(); /* the element count fits int64, the byte count does not */
        k.heads = v.heads = q.heads = out.heads = INT64_C(1) << 29;
        k.seq = v.seq = INT64_C(1) << 29; /* k: 2 * 2^29 * 2^29 * 8 = 2^62 floats */
        REJECT("k");
    }
    {
        FRESH(); /* strides that address beyond int64 */
        k.stride_batch = INT64_MAX / 2 + 1;
        REJECT("k");
    }
    {
        FRESH();
        out.stride_seq = INT64_MAX / 3;
        REJECT("out");
    }
}

/* Extents the kernels' int counters cannot hold (flat.h does not promise
 * them) are clean errors, INVALID_ARGUMENT or UNSUPPORTED, naming the extent. */
static void expect_error_naming(const char *arg, const flat_tensor *q, const flat_tensor *k,
                                const flat_tensor *v, const flat_tensor *out,
                                const flat_options *opt, int line)
{
    static float before[sizeof fx.arena / sizeof fx.arena[0]];
    memcpy(before, fx.arena, sizeof before);
    flat_status st = flat_attention(q, k, v, out, opt);
    if (st != FLAT_ERROR_INVALID_ARGUMENT && st != FLAT_ERROR_UNSUPPORTED)
        fail_msg("line %d: status %s, want an error", line, flat_status_string(st));
    if (!names_arg(flat_last_error(), arg))
        fail_msg("line %d: message \"%s\" does not name %s", line, flat_last_error(), arg);
    if (memcmp(before, fx.arena, sizeof before) != 0)
        fail_msg("line %d: rejected call wrote memory", line);
    printf("  %-30s -> %s: %s\n", arg, flat_status_string(st), flat_last_error());
}

static void test_extent_limits(void **state)
{
    (void)state;
    {
        FRESH();
        q.seq = out.seq = INT64_C(1) << 31;
        expect_error_naming("q.seq", &q, &k, &v, &out, &opt, __LINE__);
    }
    {
        FRESH();
        k.seq = v.seq = INT64_C(1) << 31;
        expect_error_naming("k.seq", &q, &k, &v, &out, &opt, __LINE__);
    }
    {
        FRESH();
        q.dim = k.dim = INT64_C(1) << 31;
        expect_error_naming("q.dim", &q, &k, &v, &out, &opt, __LINE__);
    }
}

static void test_batch_mismatch(void **state)
{
    (void)state;
    { FRESH(); k.batch = 1; REJECT("k.batch"); }
    { FRESH(); v.batch = 3; REJECT("v.batch"); }
    { FRESH(); out.batch = 1; REJECT("out.batch"); }
}

static void test_heads_divisibility(void **state)
{
    (void)state;
    {
        FRESH(); /* 4 query heads on 3 kv heads */
        k.heads = v.heads = 3;
        k.stride_batch = v.stride_batch = 0;
        REJECT("q.heads");
    }
    {
        FRESH(); /* more kv heads than query heads */
        k.heads = v.heads = 8;
        k.stride_batch = v.stride_batch = 0, k.stride_head = v.stride_head = 0;
        REJECT("q.heads");
    }
}

static void test_v_heads(void **state)
{
    (void)state;
    FRESH();
    v.heads = 1;
    REJECT("v.heads");
}

static void test_out_heads(void **state)
{
    (void)state;
    FRESH();
    out.heads = 2;
    REJECT("out.heads");
}

static void test_dim_mismatch(void **state)
{
    (void)state;
    FRESH();
    k.dim = 4;
    REJECT("k.dim");
    /* and the message carries both values, as flat.h's example does */
    assert_non_null(strstr(flat_last_error(), "4"));
    assert_non_null(strstr(flat_last_error(), "8"));
}

static void test_v_seq(void **state)
{
    (void)state;
    FRESH();
    v.seq = 5;
    REJECT("v.seq");
}

static void test_out_shape(void **state)
{
    (void)state;
    { FRESH(); out.seq = 4; REJECT("out.seq"); }
    { FRESH(); out.dim = 8; REJECT("out.dim"); }
}

static void test_out_overlaps_inputs(void **state)
{
    (void)state;
    static const char *names[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++)
        for (int partial = 0; partial < 2; partial++) {
            FRESH();
            float *base = i == 0 ? fx.qd : i == 1 ? fx.kd : fx.vd;
            /* out exactly on the input, or starting in its last row */
            out.data = partial ? base + (i == 0 ? NQF : i == 1 ? NKF : NVF) - 3 : base;
            expect_status(FLAT_ERROR_INVALID_ARGUMENT, "out", &q, &k, &v, &out, &opt, __LINE__);
            if (!names_arg(flat_last_error(), names[i]))
                fail_msg("message \"%s\" does not name %s", flat_last_error(), names[i]);
        }
    {
        FRESH(); /* an input inside out's range, below out's start: q after out */
        q.data = fx.od + 1;
        REJECT("out");
    }
}

static void test_out_self_overlap(void **state)
{
    (void)state;
    { FRESH(); out.stride_seq = DV - 1; REJECT("out.stride_seq"); }
    { FRESH(); out.stride_head = 0; REJECT("out.stride_head"); }
    { FRESH(); out.stride_batch = 0; REJECT("out.stride_batch"); }
    { FRESH(); out.stride_head = NQ * DV - 1; REJECT("out.stride_head"); }
    {
        FRESH(); /* BSHD-like with heads overlapping: stride_head < dim */
        out.stride_head = DV / 2, out.stride_seq = HQ * DV;
        out.stride_batch = NQ * HQ * DV;
        REJECT("out.stride_head");
    }
}

/* Unusual but valid strides are accepted: that is what makes the rejections
 * above mean something. */
static void test_valid_strides_accepted(void **state)
{
    (void)state;
    {
        FRESH(); /* inputs broadcast over batch (stride 0), aliasing each other */
        k.stride_batch = 0, v.stride_batch = 0;
        ACCEPT();
    }
    {
        FRESH(); /* k and v the same buffer (v.dim == k.dim) */
        v = k, out.dim = D;
        ACCEPT();
    }
    {
        FRESH(); /* out with an extent-1 dimension of stride 0 */
        q.batch = k.batch = v.batch = out.batch = 1;
        out.stride_batch = 0;
        ACCEPT();
    }
    {
        FRESH(); /* out in BSHD order */
        out = flat_tensor_bshd(fx.od, FLAT_F32, B, NQ, HQ, DV);
        ACCEPT();
    }
}

static void test_negative_strides(void **state)
{
    (void)state;
    static const char *tn[] = {"q", "k", "v", "out"};
    static const char *sn[] = {"stride_batch", "stride_head", "stride_seq"};
    for (int i = 0; i < 4; i++)
        for (int s = 0; s < 3; s++) {
            FRESH();
            flat_tensor *t[4] = {&q, &k, &v, &out};
            int64_t *f[3] = {&t[i]->stride_batch, &t[i]->stride_head, &t[i]->stride_seq};
            *f[s] = -1;
            char arg[40];
            snprintf(arg, sizeof arg, "%s.%s", tn[i], sn[s]);
            REJECT(arg);
        }
}

static void test_kv_lens_range(void **state)
{
    (void)state;
    {
        FRESH();
        fx.kv_lens[1] = -1;
        opt.kv_lens = fx.kv_lens;
        REJECT("opt.kv_lens[1]");
    }
    {
        FRESH();
        fx.kv_lens[0] = NK + 1;
        opt.kv_lens = fx.kv_lens;
        REJECT("opt.kv_lens[0]");
    }
    {
        FRESH();
        fx.kv_lens[0] = INT32_MIN;
        opt.kv_lens = fx.kv_lens;
        REJECT("opt.kv_lens[0]");
    }
    {
        FRESH(); /* the bounds themselves are valid */
        fx.kv_lens[0] = 0, fx.kv_lens[1] = NK;
        opt.kv_lens = fx.kv_lens;
        ACCEPT();
    }
}

static void test_unknown_dtype(void **state)
{
    (void)state;
    { FRESH(); q.dtype = (flat_dtype)7; REJECT("q.dtype"); }
    { FRESH(); k.dtype = (flat_dtype)-1; REJECT("k.dtype"); }
    { FRESH(); out.dtype = (flat_dtype)3; REJECT("out.dtype"); }
}

/* Every (q/out, k/v) pair of types is a valid call (the 16-bit views here
 * read the f32 arena as halves: any bits are some f16/bf16 value). */
static void test_dtype_combinations(void **state)
{
    (void)state;
    for (int a = FLAT_F32; a <= FLAT_BF16; a++)
        for (int b = FLAT_F32; b <= FLAT_BF16; b++) {
            FRESH();
            q.dtype = out.dtype = (flat_dtype)a;
            k.dtype = v.dtype = (flat_dtype)b;
            opt.isa = FLAT_ISA_SCALAR;
            opt.lse = NULL;
            ACCEPT();
        }
}

/* A table that lacks a type is FLAT_ERROR_UNSUPPORTED naming the type, not
 * a fallback to another table. */
static void test_dtype_table_lacks(void **state)
{
    (void)state;
    flat_ukernels f32_only = flat_ukernels_scalar;
    f32_only.dtypes = FLAT_DTYPE_BIT(FLAT_F32);
    flat_status st = FLAT_OK;
    assert_true(flat_dispatch_takes(&f32_only, FLAT_F32, FLAT_F32, &st));
    assert_false(flat_dispatch_takes(&f32_only, FLAT_F32, FLAT_BF16, &st));
    assert_int_equal(st, FLAT_ERROR_UNSUPPORTED);
    assert_non_null(strstr(flat_last_error(), "k/v dtype bf16"));
    assert_false(flat_dispatch_takes(&f32_only, FLAT_F16, FLAT_F32, &st));
    assert_non_null(strstr(flat_last_error(), "q/out dtype f16"));
}

static void test_dtype_mismatch(void **state)
{
    (void)state;
    { FRESH(); k.dtype = FLAT_F16; REJECT("k.dtype"); }
    { FRESH(); out.dtype = FLAT_BF16; REJECT("out.dtype"); }
    { FRESH(); q.dtype = FLAT_F16; REJECT("out.dtype"); }
    { FRESH(); v.dtype = FLAT_BF16; REJECT("v.dtype"); }
}

static void test_unknown_isa(void **state)
{
    (void)state;
    { FRESH(); opt.isa = (flat_isa)99; REJECT("opt.isa"); }
    { FRESH(); opt.isa = (flat_isa)-1; REJECT("opt.isa"); }
}

/* Every ISA value: runs if its table is built and runnable, else UNSUPPORTED. */
static void test_isa_not_available(void **state)
{
    (void)state;
    int count, unsupported = 0;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    for (flat_isa isa = FLAT_ISA_SCALAR; isa <= FLAT_ISA_NEON; isa++) {
        int ok = 0;
        for (int i = 0; i < count; i++)
            ok |= all[i]->isa == isa && flat_dispatch_runnable(all[i]);
        FRESH();
        opt.isa = isa;
        if (ok) {
            ACCEPT();
        } else {
            UNSUPPORTED(NULL);
            if (!strstr(flat_last_error(), flat_isa_name(isa)))
                fail_msg("message \"%s\" does not name %s", flat_last_error(),
                         flat_isa_name(isa));
            unsupported++;
        }
    }
#if defined(__x86_64__) || defined(__i386__)
    assert_true(unsupported >= 1); /* NEON, at least */
#elif defined(__aarch64__)
    assert_true(unsupported >= 2); /* AVX2 and AVX-512 */
#endif
}

static void test_negative_threads(void **state)
{
    (void)state;
    { FRESH(); opt.num_threads = -1; REJECT("opt.num_threads"); }
    { FRESH(); opt.num_threads = INT32_MIN; REJECT("opt.num_threads"); }
}

static void test_reserved_nonzero(void **state)
{
    (void)state;
    { FRESH(); opt.reserved[0] = 1; REJECT("opt.reserved[0]"); }
    { FRESH(); opt.flags = (uint64_t)1 << 63 | FLAT_FLAG_BATCH_INVARIANT; REJECT("opt.flags"); }
    { FRESH(); opt.precision = 4; REJECT("opt.precision"); }
    { FRESH(); opt.precision = -1; REJECT("opt.precision"); }
    /* flags: bits no FLAT_FLAG_* names */
    { FRESH(); opt.flags = (uint64_t)1 << 40; REJECT("opt.flags"); }
    { FRESH(); opt.flags = FLAT_FLAG_ONE_PHASE | 4u; REJECT("opt.flags"); }
}

/* The score rules' own checks (flat.h): each a clear error, out untouched. */
static void test_score_rule_checks(void **state)
{
    (void)state;
    float bad[HQ], ok[HQ];
    for (int i = 0; i < HQ; i++)
        ok[i] = 0.5f, bad[i] = i == 1 ? NAN : 0.5f;
    flat_tensor m = flat_tensor_bhsd(fx.arena, FLAT_F32, B, HQ, NQ, NK);
    { FRESH(); opt.window_left = -1; REJECT("opt.window_left"); }
    { FRESH(); opt.window_right = -3; REJECT("opt.window_right"); }
    { FRESH(); opt.softcap = -1.0f; REJECT("opt.softcap"); }
    { FRESH(); opt.softcap = INFINITY; REJECT("opt.softcap"); }
    { FRESH(); opt.softcap = NAN; REJECT("opt.softcap"); }
    { FRESH(); opt.sinks = bad; REJECT("opt.sinks[1]"); }
    { FRESH(); opt.alibi_slopes = bad; REJECT("opt.alibi_slopes[1]"); }
    { FRESH(); opt.sinks = ok; opt.alibi_slopes = ok; opt.window_left = 3; opt.softcap = 5; ACCEPT(); }
    { FRESH(); flat_tensor mm = m; mm.dim = NK + 1; opt.mask = &mm; REJECT("opt.mask->dim"); }
    { FRESH(); flat_tensor mm = m; mm.heads = 1; opt.mask = &mm; REJECT("opt.mask->heads"); }
    { FRESH(); flat_tensor mm = m; mm.seq = NQ + 2; opt.mask = &mm; REJECT("opt.mask->seq"); }
    { FRESH(); flat_tensor mm = m; mm.dtype = (flat_dtype)3; opt.mask = &mm; REJECT("opt.mask->dtype"); }
    { FRESH(); flat_tensor mm = m; mm.stride_seq = -1; opt.mask = &mm; REJECT("opt.mask.stride_seq"); }
    { FRESH(); flat_tensor mm = m; mm.data = NULL; opt.mask = &mm; REJECT("opt.mask->data"); }
    { FRESH(); flat_tensor mm = m; mm.data = fx.od; opt.mask = &mm; REJECT("opt.mask"); }
    { FRESH(); flat_tensor mm = m; mm.stride_batch = 0; mm.stride_head = 0; opt.mask = &mm; ACCEPT(); }
}

static void test_bad_scale(void **state)
{
    (void)state;
    const float bad[] = {NAN, INFINITY, -INFINITY, -1.0f, -1e-30f};
    for (int i = 0; i < 5; i++) {
        FRESH();
        opt.scale = bad[i];
        REJECT("opt.scale");
    }
}

static void test_unknown_dataflow(void **state)
{
    (void)state;
    { FRESH(); opt.dataflow = (flat_dataflow)(FLAT_DATAFLOW_DECODE + 1); REJECT("opt.dataflow"); }
    { FRESH(); opt.dataflow = (flat_dataflow)-1; REJECT("opt.dataflow"); }
}

static void test_lse_overlap(void **state)
{
    (void)state;
    { FRESH(); opt.lse = fx.od; REJECT("opt.lse"); }              /* on out */
    { FRESH(); opt.lse = fx.od + NOF - 1; REJECT("opt.lse"); }    /* into out's tail */
    { FRESH(); opt.lse = fx.qd + 3; REJECT("opt.lse"); }          /* inside q */
    { FRESH(); opt.lse = fx.kd; REJECT("opt.lse"); }
    { FRESH(); opt.lse = fx.vd + NVF - 2; REJECT("opt.lse"); }
}

/* The first offending argument is the one named (tensors before options). */
static void test_first_error_named(void **state)
{
    (void)state;
    FRESH();
    k.dim = 4;
    opt.num_threads = -1;
    REJECT("k.dim");
}

static void test_status_strings(void **state)
{
    (void)state;
    assert_string_equal(flat_status_string(FLAT_OK), "FLAT_OK");
    assert_string_equal(flat_status_string(FLAT_ERROR_INVALID_ARGUMENT),
                        "FLAT_ERROR_INVALID_ARGUMENT");
    assert_string_equal(flat_status_string(FLAT_ERROR_UNSUPPORTED), "FLAT_ERROR_UNSUPPORTED");
    assert_string_equal(flat_status_string(FLAT_ERROR_OUT_OF_MEMORY),
                        "FLAT_ERROR_OUT_OF_MEMORY");
    /* never NULL, even for values outside the enum */
    assert_non_null(flat_status_string((flat_status)42));
    assert_non_null(flat_status_string((flat_status)-1));
}

static void test_version(void **state)
{
    (void)state;
    assert_string_equal(flat_version(), FLAT_VERSION_STRING);
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", FLAT_VERSION_MAJOR, FLAT_VERSION_MINOR,
             FLAT_VERSION_PATCH);
    assert_string_equal(flat_version(), want);
}

static void test_isa_names(void **state)
{
    (void)state;
    assert_string_equal(flat_isa_name(FLAT_ISA_AUTO), "auto");
    assert_string_equal(flat_isa_name(FLAT_ISA_SCALAR), "scalar");
    assert_string_equal(flat_isa_name(FLAT_ISA_AVX2), "avx2");
    assert_string_equal(flat_isa_name(FLAT_ISA_AVX512), "avx512");
    assert_string_equal(flat_isa_name(FLAT_ISA_NEON), "neon");
    assert_string_equal(flat_isa_name((flat_isa)99), "unknown");
    assert_string_equal(flat_isa_name((flat_isa)-1), "unknown");
}

static void test_isa_detect(void **state)
{
    (void)state;
    flat_isa best = flat_isa_detect();
    assert_int_not_equal(best, FLAT_ISA_AUTO);
    int count;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    int first_runnable = -1;
    for (int i = 0; i < count && first_runnable < 0; i++)
        if (flat_dispatch_runnable(all[i]))
            first_runnable = i;
    assert_true(first_runnable >= 0);
    assert_int_equal(best, all[first_runnable]->isa);
    /* asking for it explicitly works */
    FRESH();
    opt.isa = best;
    ACCEPT();
}

static void test_tensor_helpers(void **state)
{
    (void)state;
    float x;
    flat_tensor t = flat_tensor_bhsd(&x, FLAT_F32, 2, 3, 5, 7);
    assert_ptr_equal(t.data, &x);
    assert_int_equal(t.dtype, FLAT_F32);
    assert_true(t.batch == 2 && t.heads == 3 && t.seq == 5 && t.dim == 7);
    assert_true(t.stride_batch == 3 * 5 * 7 && t.stride_head == 5 * 7 && t.stride_seq == 7);
    t = flat_tensor_bshd(&x, FLAT_BF16, 2, 5, 3, 7);
    assert_int_equal(t.dtype, FLAT_BF16);
    assert_true(t.batch == 2 && t.heads == 3 && t.seq == 5 && t.dim == 7);
    assert_true(t.stride_batch == 5 * 3 * 7 && t.stride_head == 7 && t.stride_seq == 3 * 7);
}

/* A success after a failure clears the message; the message of a failure is
 * never empty. */
static void test_last_error_lifecycle(void **state)
{
    (void)state;
    FRESH();
    k.dim = 4;
    REJECT("k.dim");
    assert_true(strlen(flat_last_error()) > 0);
    k.dim = D;
    ACCEPT();
    assert_string_equal(flat_last_error(), "");
}

int main(void)
{
    const char *filter = getenv("FLAT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_valid),
        cmocka_unit_test(test_null_tensors),
        cmocka_unit_test(test_null_data),
        cmocka_unit_test(test_nonpositive_sizes),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_extent_limits),
        cmocka_unit_test(test_batch_mismatch),
        cmocka_unit_test(test_heads_divisibility),
        cmocka_unit_test(test_v_heads),
        cmocka_unit_test(test_out_heads),
        cmocka_unit_test(test_dim_mismatch),
        cmocka_unit_test(test_v_seq),
        cmocka_unit_test(test_out_shape),
        cmocka_unit_test(test_out_overlaps_inputs),
        cmocka_unit_test(test_out_self_overlap),
        cmocka_unit_test(test_valid_strides_accepted),
        cmocka_unit_test(test_negative_strides),
        cmocka_unit_test(test_kv_lens_range),
        cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_dtype_combinations),
        cmocka_unit_test(test_dtype_table_lacks),
        cmocka_unit_test(test_dtype_mismatch),
        cmocka_unit_test(test_unknown_isa),
        cmocka_unit_test(test_isa_not_available),
        cmocka_unit_test(test_negative_threads),
        cmocka_unit_test(test_reserved_nonzero),
        cmocka_unit_test(test_score_rule_checks),
        cmocka_unit_test(test_bad_scale),
        cmocka_unit_test(test_unknown_dataflow),
        cmocka_unit_test(test_lse_overlap),
        cmocka_unit_test(test_first_error_named),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_isa_names),
        cmocka_unit_test(test_isa_detect),
        cmocka_unit_test(test_tensor_helpers),
        cmocka_unit_test(test_last_error_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
