/*
 * test_ukernels' view of the packing layouts of kernels/ukernel.h: the fp32
 * panels drawn there, and the bf16-pair panels of a table whose products are
 * bf16 (compute = FLAT_BF16). Packed panels are built and checked here for
 * either kind, so each kernel test runs unchanged over every table.
 */
#ifndef FLAT_TEST_UKERNEL_PANELS_H
#define FLAT_TEST_UKERNEL_PANELS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "convert.h"
#include "testutil.h"
#include "ukernel.h"

/* Tables that multiply in bf16: bf16-pair panels, P and V rounded in pv. */
static inline int bf16_products(const flat_ukernels *k) { return k->compute == FLAT_BF16; }

/* x rounded to bf16 as those tables round (nearest even; vdpbf16ps and
 * vcvtne2ps2bf16 flush subnormals to zero). */
static inline float bf16_round(float x)
{
    if (fabsf(x) < 0x1p-126f)
        return copysignf(0.0f, x);
    return flat_bf16_to_f32(flat_f32_to_bf16(x));
}

/* The 32-bit word of a bf16-pair panel holding dims (lo, hi). */
static inline uint32_t pair_word(float lo, float hi)
{
    return (uint32_t)flat_f32_to_bf16(bf16_round(lo)) |
           (uint32_t)flat_f32_to_bf16(bf16_round(hi)) << 16;
}

static inline uint32_t word_at(const float *panel, size_t i)
{
    uint32_t w;
    memcpy(&w, panel + i, sizeof w);
    return w;
}

/* Equal as packed values: the same bits, or each half a zero of either sign. */
static inline int same_word(uint32_t a, uint32_t b)
{
    for (int h = 0; h < 2; h++) {
        uint16_t x = (uint16_t)(a >> 16 * h), y = (uint16_t)(b >> 16 * h);
        if (x != y && !((x & 0x7fffu) == 0 && (y & 0x7fffu) == 0))
            return 0;
    }
    return 1;
}

/*
 * One panel of d dims x w lanes in table k's layout, random in [lo, hi):
 * vals[c*w + i] receives the value the kernels multiply (bf16-rounded for a
 * bf16-products table, with zeros in the pad half of an odd d's last pair),
 * panel (d*w floats) the packed form; words past a bf16 panel's pairs hold
 * the poison, which the kernels must not read.
 */
static inline void fill_panel(const flat_ukernels *k, tu_rng *rng, int d, int w, float lo, float hi,
                       float *restrict vals, float *restrict panel)
{
    for (int i = 0; i < d * w; i++)
        vals[i] = tu_uniform(rng, lo, hi);
    if (!bf16_products(k)) {
        memcpy(panel, vals, sizeof(float) * (size_t)d * w);
        return;
    }
    for (int i = 0; i < d * w; i++)
        panel[i] = tu_from_bits(TU_POISON_BITS);
    for (int c2 = 0; c2 < (d + 1) / 2; c2++)
        for (int i = 0; i < w; i++) {
            float *a = vals + (size_t)(2 * c2) * w + i;
            *a = bf16_round(*a);
            float b = 0.0f;
            if (2 * c2 + 1 < d)
                b = a[w] = bf16_round(a[w]);
            uint32_t word = pair_word(*a, b);
            memcpy(panel + (size_t)c2 * w + i, &word, sizeof word);
        }
}

/*
 * Checks one packed panel (d dims x w lanes) of table k against the values
 * want(c, i) (already scaled; 0 for padding): fp32 tables bit for bit as
 * floats, bf16-products tables as bf16 pairs (convert.h's rounding) with the
 * rest of the panel untouched. Returns 0, or 1 after a failure message.
 */
static inline int check_panel(const flat_ukernels *k, const float *panel, int d, int w,
                       const float *want, const char *what)
{
    if (!bf16_products(k)) {
        for (int c = 0; c < d; c++)
            for (int i = 0; i < w; i++) {
                const float got = panel[(size_t)c * w + i], x = want[(size_t)c * w + i];
                if (tu_bits(got) != tu_bits(x) && !(got == 0.0f && x == 0.0f)) {
                    fail_msg("%s: [%d][%d] = %a, want %a", what, c, i, got, x);
                    return 1;
                }
            }
        return 0;
    }
    const int pairs = (d + 1) / 2;
    for (int c2 = 0; c2 < pairs; c2++)
        for (int i = 0; i < w; i++) {
            const float lo = want[(size_t)(2 * c2) * w + i];
            const float hi = 2 * c2 + 1 < d ? want[(size_t)(2 * c2 + 1) * w + i] : 0.0f;
            const uint32_t got = word_at(panel, (size_t)c2 * w + i), x = pair_word(lo, hi);
            if (!same_word(got, x)) {
                fail_msg("%s: pair [%d][%d] = %08x, want %08x (%a, %a)", what, c2, i, got, x,
                         lo, hi);
                return 1;
            }
        }
    for (size_t i = (size_t)pairs * w; i < (size_t)d * w; i++)
        if (tu_bits(panel[i]) != TU_POISON_BITS) {
            fail_msg("%s: wrote word %zu past the pairs", what, i);
            return 1;
        }
    return 0;
}

#endif
