/*
 * Helpers shared by the suites: a seeded RNG, strided test tensors with
 * poisoned padding, the list of kernel tables this host runs, quick mode.
 */
#ifndef FLAT_TEST_UTIL_H
#define FLAT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "flat.h"

/* ---- random numbers (splitmix64: the same sequence on every host) ---- */
typedef struct {
    uint64_t s;
} tu_rng;

static inline uint64_t tu_next(tu_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline float tu_uniform(tu_rng *r, float lo, float hi)
{
    double u = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

/* ---- test tensors ---- */
typedef enum {
    TU_BHSD = 0, /* contiguous [B,H,S,D] (flat_tensor_bhsd) */
    TU_BSHD,     /* contiguous [B,S,H,D] (flat_tensor_bshd) */
    TU_PADDED,   /* [B,H,S,D] with gaps after every row, head and batch */
    TU_SBHD,     /* [S,B,H,D]: stride_batch < stride_seq, padded rows */
    TU_BCAST,    /* like PADDED but stride_batch = 0: every batch aliases one */
    TU_NLAYOUTS
} tu_layout;

const char *tu_layout_name(tu_layout l);

/*
 * A view plus the buffer behind it. Every float of the buffer that is not
 * an element of the view holds a NaN with payload TU_POISON_BITS, so a read
 * of padding shows up as NaN in results and a write to it is detectable.
 */
#define TU_POISON_BITS 0x7fc0dead
#define TU_POISON16_BITS 0x7fd1 /* a NaN as f16 and as bf16: the poison of 16-bit buffers */

typedef struct {
    flat_tensor t;
    float *buf;
    size_t n;              /* floats in buf */
    unsigned char *in_view; /* n flags: element of the view */
} tu_tensor;

void tu_tensor_alloc(tu_tensor *x, tu_layout l, int64_t b, int64_t h, int64_t s, int64_t d);
void tu_tensor_free(tu_tensor *x);
/* Poison every float of the buffer (padding and elements). */
void tu_tensor_poison(tu_tensor *x);
/*
 * y = x's view in element type t (same layout; padding poisoned in t), and
 * x's elements rounded in place to what t holds, so a double reference over
 * x sees exactly the values the library reads from y. NaNs stay NaN.
 */
void tu_tensor_typed(tu_tensor *x, flat_dtype t, tu_tensor *y);

/* Element (b, h, s, d) of any tensor, as f32. */
float tu_tensor_get(const tu_tensor *x, int64_t b, int64_t h, int64_t s, int64_t d);

/* Fill the view's elements uniformly in [-mag, mag). */
void tu_tensor_fill(tu_tensor *x, tu_rng *r, float mag);
/* Fill the view's elements uniformly in [lo, hi). */
void tu_tensor_fill_range(tu_tensor *x, tu_rng *r, float lo, float hi);
/* Index of padding floats that no longer hold the poison, or -1. */
int64_t tu_tensor_padding_changed(const tu_tensor *x);

/* ---- the kernel tables ---- */
struct flat_ukernels;

/*
 * Fills `out` with the compiled tables the host can run (best first) and
 * returns their number; prints "<suite>: ran: ... / skipped: ..." once.
 */
int tu_runnable_tables(const char *suite, const struct flat_ukernels **out, int max);

/*
 * Keeps, of the n tables in `tables`, those whose products are fp32 (compute
 * FLAT_F32) and returns their number; prints the ones it drops. For the
 * suites that hold every table to the fp32 bound (1e-5): a table with bf16
 * products (avx512_bf16) has its own bound, which test_dtypes and
 * test_ukernels check, across dtypes, dataflows, layouts and masks.
 */
int tu_fp32_product_tables(const char *suite, const struct flat_ukernels **tables, int n);

/*
 * Returns 0 when every name in env FLAT_REQUIRE_ISAS (comma separated) is
 * among the runnable tables; otherwise prints the missing ones and returns 1.
 */
int tu_check_required_isas(const char *suite);

/* ---- misc ---- */
/* Non-zero in quick mode (built with FLAT_TEST_QUICK or env FLAT_TEST_QUICK=1). */
int tu_quick(void);

/* Float bits. */
uint32_t tu_bits(float f);
float tu_from_bits(uint32_t u);

/* Which products a table computes a K/V type with: 0 fp32, 1 bf16 (compute
 * FLAT_BF16), 2 int8 (compute FLAT_I8 on FLAT_I8 or FLAT_I4 K/V:
 * avx512_vnni), and the
 * row bound flat.h states for each (relative L2 per output row against the
 * double reference): 1e-5, 1e-2 (FLAT_ISA_AVX512_BF16), 2e-2
 * (FLAT_PRECISION_INT8). */
int tu_products(const struct flat_ukernels *t, flat_dtype kv);
double tu_row_bound(const struct flat_ukernels *t, flat_dtype kv);

#endif
