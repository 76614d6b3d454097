/* Shared test helpers (see testutil.h). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "convert.h"
#include "dispatch.h"

const char *tu_layout_name(tu_layout l)
{
    static const char *names[] = {"bhsd", "bshd", "padded", "sbhd", "bcast"};
    return (unsigned)l < TU_NLAYOUTS ? names[l] : "?";
}

uint32_t tu_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float tu_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void tu_tensor_alloc(tu_tensor *x, tu_layout l, int64_t b, int64_t h, int64_t s, int64_t d)
{
    int64_t sb, sh, ss, n;
    switch (l) {
    case TU_BSHD:
        ss = h * d, sh = d, sb = s * h * d, n = b * sb;
        break;
    case TU_PADDED:
        ss = d + 3, sh = s * ss + 5, sb = h * sh + 7, n = b * sb + 2;
        break;
    case TU_SBHD:
        sh = d + 1, sb = h * sh, ss = b * sb, n = s * ss;
        break;
    case TU_BCAST:
        ss = d + 3, sh = s * ss + 5, sb = 0, n = h * sh + 2;
        break;
    case TU_BHSD:
    default:
        ss = d, sh = s * d, sb = h * s * d, n = b * sb;
        break;
    }
    memset(x, 0, sizeof *x);
    x->t.dtype = FLAT_F32;
    x->t.batch = b, x->t.heads = h, x->t.seq = s, x->t.dim = d;
    x->t.stride_batch = sb, x->t.stride_head = sh, x->t.stride_seq = ss;
    x->n = (size_t)(n > 0 ? n : 1);
    /* Exact size: an over-read past the last element is an ASan report. */
    x->buf = malloc(x->n * sizeof(float));
    x->in_view = calloc(x->n, 1);
    if (!x->buf || !x->in_view) {
        fprintf(stderr, "tu_tensor_alloc: out of memory (%zu floats)\n", x->n);
        abort();
    }
    x->t.data = x->buf;
    for (int64_t ib = 0; ib < b; ib++)
        for (int64_t ih = 0; ih < h; ih++)
            for (int64_t is = 0; is < s; is++)
                for (int64_t id = 0; id < d; id++)
                    x->in_view[ib * sb + ih * sh + is * ss + id] = 1;
    tu_tensor_poison(x);
}

void tu_tensor_free(tu_tensor *x)
{
    free(x->buf);
    free(x->in_view);
    memset(x, 0, sizeof *x);
}

void tu_tensor_poison(tu_tensor *x)
{
    const float p = tu_from_bits(TU_POISON_BITS);
    if (x->t.dtype != FLAT_F32) {
        for (size_t i = 0; i < x->n; i++)
            ((uint16_t *)x->buf)[i] = TU_POISON16_BITS;
        return;
    }
    for (size_t i = 0; i < x->n; i++)
        x->buf[i] = p;
}

void tu_tensor_typed(tu_tensor *x, flat_dtype t, tu_tensor *y)
{
    *y = *x;
    y->t.dtype = t;
    y->in_view = malloc(x->n);
    y->buf = malloc(x->n * (size_t)flat_dtype_size(t));
    if (!y->in_view || !y->buf) {
        fprintf(stderr, "tu_tensor_typed: out of memory (%zu elements)\n", x->n);
        abort();
    }
    memcpy(y->in_view, x->in_view, x->n);
    y->t.data = y->buf;
    tu_tensor_poison(y);
    for (size_t i = 0; i < x->n; i++)
        if (x->in_view[i] || !isnan(x->buf[i])) { /* elements, and values planted in gaps */
            flat_store_elem(y->buf, (int64_t)i, x->buf[i], t);
            x->buf[i] = flat_load_elem(y->buf, (int64_t)i, t);
        }
}

float tu_tensor_get(const tu_tensor *x, int64_t b, int64_t h, int64_t s, int64_t d)
{
    const flat_tensor *t = &x->t;
    return flat_load_elem(x->buf, b * t->stride_batch + h * t->stride_head + s * t->stride_seq + d,
                          t->dtype);
}

void tu_tensor_fill(tu_tensor *x, tu_rng *r, float mag)
{
    tu_tensor_fill_range(x, r, -mag, mag);
}

void tu_tensor_fill_range(tu_tensor *x, tu_rng *r, float lo, float hi)
{
    /* Walk the view (not the buffer) so aliased batches get one value. */
    const flat_tensor *t = &x->t;
    for (int64_t ib = 0; ib < t->batch; ib++)
        for (int64_t ih = 0; ih < t->heads; ih++)
            for (int64_t is = 0; is < t->seq; is++)
                for (int64_t id = 0; id < t->dim; id++)
                    x->buf[ib * t->stride_batch + ih * t->stride_head + is * t->stride_seq +
                           id] = tu_uniform(r, lo, hi);
}

int64_t tu_tensor_padding_changed(const tu_tensor *x)
{
    if (x->t.dtype != FLAT_F32) {
        for (size_t i = 0; i < x->n; i++)
            if (!x->in_view[i] && ((const uint16_t *)x->buf)[i] != TU_POISON16_BITS)
                return (int64_t)i;
        return -1;
    }
    for (size_t i = 0; i < x->n; i++)
        if (!x->in_view[i] && tu_bits(x->buf[i]) != TU_POISON_BITS)
            return (int64_t)i;
    return -1;
}

int tu_runnable_tables(const char *suite, const flat_ukernels **out, int max)
{
    int count = 0, n = 0;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    char ran[256] = "", skipped[256] = "";
    for (int i = 0; i < count; i++) {
        if (flat_dispatch_runnable(all[i])) {
            if (n < max)
                out[n++] = all[i];
            strncat(ran, " ", sizeof ran - strlen(ran) - 1);
            strncat(ran, all[i]->name, sizeof ran - strlen(ran) - 1);
        } else {
            strncat(skipped, " ", sizeof skipped - strlen(skipped) - 1);
            strncat(skipped, all[i]->name, sizeof skipped - strlen(skipped) - 1);
            strncat(skipped, " (host)", sizeof skipped - strlen(skipped) - 1);
        }
    }
    /* Tables this build did not compile are skipped too; say so. */
    static const char *known[] = {"scalar", "avx2", "avx512", "neon", "avx512_bf16", "amx_bf16"};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        int built = 0;
        for (int i = 0; i < count; i++)
            built |= strcmp(all[i]->name, known[k]) == 0;
        if (!built) {
            strncat(skipped, " ", sizeof skipped - strlen(skipped) - 1);
            strncat(skipped, known[k], sizeof skipped - strlen(skipped) - 1);
            strncat(skipped, " (not built)", sizeof skipped - strlen(skipped) - 1);
        }
    }
    printf("%s: ran:%s / skipped:%s\n", suite, ran, skipped[0] ? skipped : " none");
    fflush(stdout);
    return n;
}

int tu_fp32_product_tables(const char *suite, const flat_ukernels **tables, int n)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (tables[i]->compute == FLAT_F32)
            tables[kept++] = tables[i];
        else
            printf("%s: %s computes in bf16: held to its own bound by test_dtypes and "
                   "test_ukernels, not run here\n",
                   suite, tables[i]->name);
    }
    fflush(stdout);
    return kept;
}

int tu_check_required_isas(const char *suite)
{
    const char *req = getenv("FLAT_REQUIRE_ISAS");
    if (!req || !*req)
        return 0;
    int count = 0, bad = 0;
    const flat_ukernels *const *all = flat_dispatch_tables(&count);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", req);
    for (char *save = NULL, *name = strtok_r(buf, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save)) {
        int ran = 0;
        for (int i = 0; i < count; i++)
            if (strcmp(all[i]->name, name) == 0 && flat_dispatch_runnable(all[i]))
                ran = 1;
        if (!ran) {
            printf("%s: FLAT_REQUIRE_ISAS lists '%s', which did not run here\n", suite, name);
            bad = 1;
        }
    }
    if (!bad)
        printf("%s: FLAT_REQUIRE_ISAS=%s: all ran\n", suite, req);
    return bad;
}

int tu_quick(void)
{
#if defined(FLAT_TEST_QUICK) && FLAT_TEST_QUICK
    return 1;
#else
    const char *e = getenv("FLAT_TEST_QUICK");
    return e && *e && strcmp(e, "0") != 0 && strcmp(e, "OFF") != 0;
#endif
}

int tu_products(const flat_ukernels *t, flat_dtype kv)
{
    return t->compute == FLAT_BF16                                       ? 1
           : t->compute == FLAT_I8 && (kv == FLAT_I8 || kv == FLAT_I4) ? 2
                                                                         : 0;
}

double tu_row_bound(const flat_ukernels *t, flat_dtype kv)
{
    static const double bound[3] = {1e-5, 1e-2, 2e-2};
    return bound[tu_products(t, kv)];
}
