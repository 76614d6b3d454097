/* opt.kv_quant's rules (flat.h, flat_kv_quant), checked like the tensors
 * before anything is written, and the scale views they give the problem.
 * The element type rules that quantized K/V add (I4: even dims and strides)
 * are here too, for both the contiguous and the paged call. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "kvquant.h"
#include "validate.h"

#define INVALID(...) flat_error(FLAT_ERROR_INVALID_ARGUMENT, __VA_ARGS__)

flat_status flat_check_kv_dtype(const char *name, flat_dtype t, const int64_t *even,
                                const char *const *even_names, int n_even)
{
    if ((int)t < FLAT_F32 || (int)t > FLAT_I4)
        return INVALID("%s (%d) is not a flat_dtype value", name, (int)t);
    if (t != FLAT_I4)
        return FLAT_OK;
    for (int i = 0; i < n_even; i++)
        if (even[i] % 2 != 0)
            return INVALID("%s (%lld) must be even for FLAT_I4 (two elements per byte)",
                           even_names[i], (long long)even[i]);
    return FLAT_OK;
}

/* One scale tensor against the K (or V) it scales: the expected batch,
 * heads, seq, and dim / group. */
static flat_status check_scale(const char *name, const flat_tensor *sc, const int64_t want[4],
                               int64_t dim, int32_t group, const char *group_name)
{
    if (group < 1 || dim % group != 0)
        return INVALID("opt.kv_quant->%s (%d) must be >= 1 and divide the dim (%lld)",
                       group_name, (int)group, (long long)dim);
    char full[64];
    snprintf(full, sizeof full, "opt.kv_quant->%s", name);
    if (!sc->data)
        return INVALID("%s.data is NULL", full);
    if (sc->dtype != FLAT_F32 && sc->dtype != FLAT_F16)
        return INVALID("%s.dtype (%d) must be FLAT_F32 or FLAT_F16", full, (int)sc->dtype);
    flat_status s = flat_check_shape(full, sc);
    if (s != FLAT_OK)
        return s;
    const int64_t got[4] = {sc->batch, sc->heads, sc->seq, sc->dim};
    static const char *dims[4] = {"batch", "heads", "seq", "dim"};
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i])
            return INVALID("%s.%s (%lld) must be %lld%s", full, dims[i], (long long)got[i],
                           (long long)want[i],
                           i == 3 ? " (the dim / the group)" : " (as the K/V it scales)");
    int64_t last;
    return flat_last_offset(full, sc, &last);
}

/* Bytes of a scale view (validated). */
static int64_t scale_bytes(const flat_tensor *sc)
{
    int64_t last;
    flat_last_offset("", sc, &last);
    return flat_view_bytes(sc, last);
}

flat_status flat_check_kv_quant(const flat_options *opt, flat_dtype t, const int64_t kshape[4],
                                const int64_t vshape[4], const void *out, int64_t out_bytes,
                                int64_t lse_bytes)
{
    const flat_kv_quant *kq = opt->kv_quant;
    if (!flat_dtype_quantized(t)) {
        if (kq)
            return INVALID("opt.kv_quant must be NULL for an unquantized K/V (dtype %d)",
                           (int)t);
        return FLAT_OK;
    }
    if (!kq)
        return t == FLAT_F8E4M3 ? FLAT_OK
                                : INVALID("opt.kv_quant is NULL (required for FLAT_%s K/V)",
                                          t == FLAT_I8 ? "I8" : "I4");
    for (int i = 0; i < 2; i++)
        if (kq->reserved[i] != 0)
            return INVALID("opt.kv_quant->reserved[%d] (%llu) must be 0", i,
                           (unsigned long long)kq->reserved[i]);
    const int64_t kwant[4] = {kshape[0], kshape[1], kshape[2],
                              kq->k_group >= 1 ? kshape[3] / kq->k_group : 0};
    const int64_t vwant[4] = {vshape[0], vshape[1], vshape[2],
                              kq->v_group >= 1 ? vshape[3] / kq->v_group : 0};
    flat_status s;
    if ((s = check_scale("k_scale", &kq->k_scale, kwant, kshape[3], kq->k_group, "k_group")) !=
            FLAT_OK ||
        (s = check_scale("v_scale", &kq->v_scale, vwant, vshape[3], kq->v_group, "v_group")) !=
            FLAT_OK)
        return s;
    const flat_tensor *sc[2] = {&kq->k_scale, &kq->v_scale};
    static const char *names[2] = {"k_scale", "v_scale"};
    for (int i = 0; i < 2; i++) {
        if (flat_ranges_overlap(out, out_bytes, sc[i]->data, scale_bytes(sc[i])))
            return INVALID("out overlaps opt.kv_quant->%s (out must not share memory with an "
                           "input)", names[i]);
        if (opt->lse && flat_ranges_overlap(opt->lse, lse_bytes, sc[i]->data, scale_bytes(sc[i])))
            return INVALID("opt.lse overlaps opt.kv_quant->%s", names[i]);
    }
    return FLAT_OK;
}

static flat_scales scales_of(const flat_tensor *sc, int32_t group)
{
    return (flat_scales){sc->data, sc->dtype, sc->stride_batch, sc->stride_head,
                         sc->stride_seq, group};
}

void flat_fill_kv_quant(const flat_options *opt, flat_problem *p)
{
    const flat_kv_quant *kq = opt->kv_quant;
    if (!kq || !flat_dtype_quantized(p->kv_dtype))
        return;
    p->k_scales = scales_of(&kq->k_scale, kq->k_group);
    p->v_scales = scales_of(&kq->v_scale, kq->v_group);
}

/* ---- flat_quantize's arguments (runtime/quantize.c) ---- */

static flat_status check_present(const char *name, const flat_tensor *t)
{
    if (!t)
        return INVALID("%s is NULL", name);
    if (!t->data)
        return INVALID("%s.data is NULL", name);
    return flat_check_shape(name, t);
}

/* The first non-finite element of a float view (or, negative_too, one
 * below 0), as an error naming it. */
/* Every element of t finite (and >= 0 with negative_too). nonfinite, when
 * given, finds a row's first inf or NaN (a table's first_nonfinite: flat_quantize
 * reads its whole source here before writing anything, so this pass runs at
 * the kernels' speed); the element loop names the value either way. */
static flat_status check_finite(const char *name, const flat_tensor *t, int negative_too,
                                flat_first_nonfinite_fn nonfinite)
{
    for (int64_t b = 0; b < t->batch; b++)
        for (int64_t h = 0; h < t->heads; h++)
            for (int64_t s = 0; s < t->seq; s++) {
                const void *row = flat_elem_ptr(
                    t->data, b * t->stride_batch + h * t->stride_head + s * t->stride_seq,
                    t->dtype);
                const int64_t c0 = nonfinite ? nonfinite(t->dim, row, t->dtype) : 0;
                for (int64_t c = c0; c < t->dim; c++) {
                    float x = flat_load_elem(row, c, t->dtype);
                    if (!isfinite(x) || (negative_too && x < 0))
                        return INVALID("%s[%lld][%lld][%lld][%lld] (%g) must be finite%s", name,
                                       (long long)b, (long long)h, (long long)s, (long long)c,
                                       (double)x, negative_too ? " and >= 0" : "");
                }
            }
    return FLAT_OK;
}

static flat_status check_quantize_overlaps(const flat_tensor *src, const flat_tensor *dst,
                                           const flat_tensor *scale, int given)
{
    int64_t ls, ld, lc;
    flat_status s;
    if ((s = flat_last_offset("src", src, &ls)) != FLAT_OK ||
        (s = flat_last_offset("dst", dst, &ld)) != FLAT_OK ||
        (s = flat_last_offset("scale", scale, &lc)) != FLAT_OK ||
        (s = flat_check_one_to_one("dst", dst)) != FLAT_OK ||
        (!given && (s = flat_check_one_to_one("scale", scale)) != FLAT_OK))
        return s;
    const int64_t bs = flat_view_bytes(src, ls), bd = flat_view_bytes(dst, ld),
                  bc = flat_view_bytes(scale, lc);
    if (flat_ranges_overlap(dst->data, bd, src->data, bs))
        return INVALID("dst overlaps src");
    if (flat_ranges_overlap(dst->data, bd, scale->data, bc))
        return INVALID("dst overlaps scale");
    if (!given && flat_ranges_overlap(scale->data, bc, src->data, bs))
        return INVALID("scale overlaps src (it is written unless FLAT_QUANTIZE_GIVEN_SCALES)");
    return FLAT_OK;
}

flat_status flat_check_quantize(const flat_tensor *src, const flat_tensor *dst,
                                const flat_tensor *scale, int32_t group, uint32_t flags,
                                flat_first_nonfinite_fn nonfinite)
{
    flat_status s;
    if ((s = check_present("src", src)) != FLAT_OK || (s = check_present("dst", dst)) != FLAT_OK ||
        (s = check_present("scale", scale)) != FLAT_OK)
        return s;
    if (flags & ~FLAT_QUANTIZE_GIVEN_SCALES)
        return INVALID("flags (0x%x) has bits other than FLAT_QUANTIZE_GIVEN_SCALES", flags);
    if ((int)src->dtype < FLAT_F32 || (int)src->dtype > FLAT_BF16)
        return INVALID("src.dtype (%d) must be FLAT_F32, FLAT_F16 or FLAT_BF16", (int)src->dtype);
    if (!flat_dtype_quantized(dst->dtype))
        return INVALID("dst.dtype (%d) must be FLAT_I8, FLAT_F8E4M3 or FLAT_I4", (int)dst->dtype);
    if (scale->dtype != FLAT_F32 && scale->dtype != FLAT_F16)
        return INVALID("scale.dtype (%d) must be FLAT_F32 or FLAT_F16", (int)scale->dtype);
    const int64_t sd[4] = {src->batch, src->heads, src->seq, src->dim};
    const int64_t dd[4] = {dst->batch, dst->heads, dst->seq, dst->dim};
    static const char *dims[4] = {"batch", "heads", "seq", "dim"};
    for (int i = 0; i < 4; i++)
        if (dd[i] != sd[i])
            return INVALID("dst.%s (%lld) != src.%s (%lld)", dims[i], (long long)dd[i], dims[i],
                           (long long)sd[i]);
    if (group < 1 || src->dim % group != 0)
        return INVALID("group (%d) must be >= 1 and divide src.dim (%lld)", (int)group,
                       (long long)src->dim);
    const int64_t cd[4] = {scale->batch, scale->heads, scale->seq, scale->dim};
    const int64_t want[4] = {src->batch, src->heads, src->seq, src->dim / group};
    for (int i = 0; i < 4; i++)
        if (cd[i] != want[i])
            return INVALID("scale.%s (%lld) must be %lld%s", dims[i], (long long)cd[i],
                           (long long)want[i], i == 3 ? " (src.dim / group)" : " (as src)");
    const int64_t even[4] = {dst->dim, dst->stride_batch, dst->stride_head, dst->stride_seq};
    static const char *even_names[4] = {"dst.dim", "dst.stride_batch", "dst.stride_head",
                                        "dst.stride_seq"};
    const int given = (flags & FLAT_QUANTIZE_GIVEN_SCALES) != 0;
    if ((s = flat_check_kv_dtype("dst.dtype", dst->dtype, even, even_names, 4)) != FLAT_OK ||
        (s = check_quantize_overlaps(src, dst, scale, given)) != FLAT_OK ||
        (s = check_finite("src", src, 0, nonfinite)) != FLAT_OK ||
        (given && (s = check_finite("scale", scale, 1, NULL)) != FLAT_OK))
        return s;
    return FLAT_OK;
}
