/*
 * Fault injection: every allocation a call makes is failed in turn.
 *
 * This executable interposes the malloc family (its definitions win over the
 * C library's, or ASan's, for every caller in the process, libflat
 * included) and forwards to the next definition, so it runs in the plain and
 * the ASan builds alike. For each entry point it counts the allocations of
 * a successful call (n), then, for every i in 1..n, fails the i-th and
 * checks that the call
 *   - returns FLAT_ERROR_OUT_OF_MEMORY with a message,
 *   - leaves out and lse untouched (byte for byte),
 *   - frees whatever it had allocated (live allocations back to the count
 *     before the call; LeakSanitizer checks the whole run at exit in the
 *     ASan build).
 * OpenMP's own allocations (its thread pool) are not flat's failure paths,
 * and libgomp aborts when one fails: the threaded calls run after a warm-up
 * call has made the pool (they then allocate only what flat does).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flat.h"

/* ---- the interposed allocator ------------------------------------------ */

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);

static atomic_long made, freed;  /* successful allocations and frees (non-NULL) */
static atomic_long fail_at = 0;  /* fail the fail_at-th allocation from now (0: none) */
static atomic_long seen;         /* allocations since arm() */

/* dlsym may allocate before next_calloc is known: serve it from here. */
static char boot[4096];
static size_t boot_used;

static void resolve(void)
{
    if (next_malloc)
        return;
    next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
}

/* Whether this allocation is the one to fail. */
static int should_fail(void)
{
    long at = atomic_load(&fail_at);
    return at > 0 && atomic_fetch_add(&seen, 1) + 1 == at;
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add(&made, 1);
    return p;
}

void *malloc(size_t n)
{
    resolve();
    return should_fail() ? NULL : counted(next_malloc(n));
}

void *calloc(size_t a, size_t b)
{
    if (!next_calloc) { /* inside dlsym */
        size_t n = (a * b + 15) & ~(size_t)15;
        if (boot_used + n > sizeof boot)
            return NULL;
        void *p = boot + boot_used;
        boot_used += n;
        return p; /* zeroed: static storage */
    }
    return should_fail() ? NULL : counted(next_calloc(a, b));
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (should_fail())
        return NULL;
    void *q = next_realloc(p, n);
    if (q && !p)
        atomic_fetch_add(&made, 1);
    return q;
}

void free(void *p)
{
    if (!p || ((char *)p >= boot && (char *)p < boot + sizeof boot))
        return;
    resolve();
    atomic_fetch_add(&freed, 1);
    next_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    if (should_fail())
        return 12; /* ENOMEM */
    int r = next_posix_memalign(out, align, n);
    if (r == 0)
        atomic_fetch_add(&made, 1);
    return r;
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    return should_fail() ? NULL : counted(next_aligned_alloc(align, n));
}

static void arm(long at) { atomic_store(&seen, 0), atomic_store(&fail_at, at); }
static long disarm(void)
{
    atomic_store(&fail_at, 0);
    return atomic_load(&seen);
}
static long live(void) { return atomic_load(&made) - atomic_load(&freed); }

/* ---- the calls ------------------------------------------------------------ */

enum { B = 2, HQ = 4, HKV = 2, NQ = 24, NK = 80, D = 32, PAGE = 16 };

typedef struct {
    const char *name;
    int entry; /* 0 attention, 1 paged, 2 plan_create, 3 plan_execute(NULL) */
    flat_dtype kv_dtype;
    int rules;   /* mask + sinks + softcap */
    int threads; /* num_threads */
} scenario;

static float q[B * HQ * NQ * D], out[B * HQ * NQ * D], lse[B * HQ * NQ];
static float k[B * HKV * NK * D], v[B * HKV * NK * D], mask[B * HQ * NQ * NK], sinks[HQ];
static uint16_t k16[B * HKV * NK * D], v16[B * HKV * NK * D];
static int32_t seq_lens[B] = {NK, NK - 17}, table[B * (NK / PAGE)];
static float sentinel_out[sizeof out / 4], sentinel_lse[sizeof lse / 4];

static void fill(void)
{
    uint32_t s = 12345;
    float *all[] = {q, k, v, mask};
    size_t n[] = {sizeof q / 4, sizeof k / 4, sizeof v / 4, sizeof mask / 4};
    for (int a = 0; a < 4; a++)
        for (size_t i = 0; i < n[a]; i++)
            s = s * 1664525u + 1013904223u, all[a][i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < sizeof k16 / 2; i++) {
        uint32_t kb, vb;
        memcpy(&kb, &k[i], 4), memcpy(&vb, &v[i], 4);
        k16[i] = (uint16_t)(kb >> 16), v16[i] = (uint16_t)(vb >> 16); /* bf16 (truncated) */
    }
    for (int h = 0; h < HQ; h++)
        sinks[h] = 0.25f * (float)h;
    for (int i = 0; i < B * (NK / PAGE); i++)
        table[i] = B * (NK / PAGE) - 1 - i; /* pages reversed */
}

static void poison_outputs(void)
{
    memset(out, 0xA5, sizeof out), memset(lse, 0x5A, sizeof lse);
    memcpy(sentinel_out, out, sizeof out), memcpy(sentinel_lse, lse, sizeof lse);
}

static flat_plan *made_plan; /* scenario 3: made before arming */

static flat_status call(const scenario *sc)
{
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, B, HQ, NQ, D);
    flat_tensor to = flat_tensor_bhsd(out, FLAT_F32, B, HQ, NQ, D);
    const int wide = sc->kv_dtype == FLAT_F32;
    flat_tensor tk = flat_tensor_bhsd(wide ? (void *)k : k16, sc->kv_dtype, B, HKV, NK, D);
    flat_tensor tv = flat_tensor_bhsd(wide ? (void *)v : v16, sc->kv_dtype, B, HKV, NK, D);
    flat_tensor tm = flat_tensor_bhsd(mask, FLAT_F32, B, HQ, NQ, NK);
    flat_options o;
    memset(&o, 0, sizeof o);
    o.num_threads = sc->threads, o.causal = 1, o.lse = lse;
    if (sc->rules)
        o.mask = &tm, o.sinks = sinks, o.softcap = 20.0f;
    /* the pools: [pages, heads, page, dim] views of the contiguous K/V */
    flat_paged_kv kv = {0};
    kv.dtype = sc->kv_dtype, kv.k = tk.data, kv.v = tv.data, kv.pages = B * (NK / PAGE);
    kv.page_size = PAGE, kv.heads = HKV, kv.dim = D, kv.v_dim = D;
    kv.k_stride_page = kv.v_stride_page = PAGE * D, kv.k_stride_token = kv.v_stride_token = D;
    kv.k_stride_head = kv.v_stride_head = (int64_t)B * NK * D; /* heads apart by a batch */
    kv.batch = B, kv.seq_lens = seq_lens, kv.block_table = table, kv.block_table_stride = NK / PAGE;
    if (sc->entry == 1)
        o.mask = NULL; /* the mask's width would be the longest sequence: kept simple */
    switch (sc->entry) {
    case 0: return flat_attention(&tq, &tk, &tv, &to, &o);
    case 1: return flat_attention_paged(&tq, &kv, &to, &o);
    case 2: {
        flat_plan *p = (flat_plan *)(uintptr_t)1;
        flat_status s = flat_plan_create(&tq, &tk, &tv, &to, &o, &p);
        if (s != FLAT_OK && p != NULL)
            fail_msg("a failed flat_plan_create left *plan non-NULL");
        if (s == FLAT_OK)
            flat_plan_destroy(p);
        return s;
    }
    default:
        if (!made_plan && flat_plan_create(&tq, &tk, &tv, &to, &o, &made_plan) != FLAT_OK)
            fail_msg("flat_plan_create: %s", flat_last_error());
        return flat_plan_execute(made_plan, NULL);
    }
}

static long injected;

static void run_scenario(const scenario *sc)
{
    poison_outputs();
    if (sc->entry == 3 && !made_plan)
        assert_int_equal(call(sc), FLAT_OK); /* the plan, before counting */
    long before = live();
    arm(LONG_MAX);
    flat_status s = call(sc);
    long n = disarm();
    if (s != FLAT_OK)
        fail_msg("%s: %s", sc->name, flat_last_error());
    if (live() != before)
        fail_msg("%s: a successful call left %ld allocations live", sc->name, live() - before);
    assert_true(n >= 1);
    for (long i = 1; i <= n; i++) {
        poison_outputs();
        before = live();
        arm(i);
        s = call(sc);
        disarm();
        if (s != FLAT_ERROR_OUT_OF_MEMORY)
            fail_msg("%s: allocation %ld of %ld failed, but the call returned %s (%s)", sc->name,
                     i, n, flat_status_string(s), flat_last_error());
        if (!flat_last_error()[0])
            fail_msg("%s: out of memory without a message", sc->name);
        if (memcmp(out, sentinel_out, sizeof out) != 0 || memcmp(lse, sentinel_lse, sizeof lse) != 0)
            fail_msg("%s: allocation %ld failed and out or lse was written", sc->name, i);
        if (live() != before)
            fail_msg("%s: allocation %ld failed and %ld allocations leaked", sc->name, i,
                     live() - before);
        injected++;
    }
    printf("  %-34s %ld allocation(s), each failed in turn: FLAT_ERROR_OUT_OF_MEMORY (\"%s\"), "
           "out untouched, nothing leaked\n", sc->name, n, flat_last_error());
    /* and the call works again afterwards */
    poison_outputs();
    assert_int_equal(call(sc), FLAT_OK);
}

static void test_every_allocation_fails(void **state)
{
    (void)state;
    fill();
    static const scenario all[] = {
        {"flat_attention f32", 0, FLAT_F32, 0, 1},
        {"flat_attention bf16 K/V + rules", 0, FLAT_BF16, 1, 1},
        {"flat_attention_paged bf16", 1, FLAT_BF16, 0, 1},
        {"flat_attention_paged f32 + sinks", 1, FLAT_F32, 1, 1},
        {"flat_plan_create", 2, FLAT_F32, 1, 1},
        {"flat_plan_execute(workspace NULL)", 3, FLAT_F16, 0, 1},
        /* threaded, once OpenMP's pool exists (the warm-up call below) */
        {"flat_attention f32, 2 threads", 0, FLAT_F32, 1, 2},
        {"flat_attention_paged, 2 threads", 1, FLAT_F16, 0, 2},
    };
    flat_tensor tq = flat_tensor_bhsd(q, FLAT_F32, B, HQ, NQ, D);
    flat_tensor to = flat_tensor_bhsd(out, FLAT_F32, B, HQ, NQ, D);
    flat_tensor tk = flat_tensor_bhsd(k, FLAT_F32, B, HKV, NK, D);
    flat_options warm = {0};
    warm.num_threads = 1;
    assert_int_equal(flat_attention(&tq, &tk, &tk, &to, &warm), FLAT_OK); /* CPU detection */
    warm.num_threads = 2;
    assert_int_equal(flat_attention(&tq, &tk, &tk, &to, &warm), FLAT_OK); /* OpenMP's pool */
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        run_scenario(&all[i]);
    flat_plan_destroy(made_plan);
    printf("test_faults: %ld allocation failures injected, every one handled\n", injected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_allocation_fails)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
