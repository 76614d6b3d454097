/* flat_quantize: f32/f16/bf16 rows into I8, F8E4M3 or I4 codes with one
 * scale per group (flat.h). The rows go through the kernel table's
 * quantize_row (ukernel.h; the table AUTO chooses, so FLAT_ISA picks it as
 * for attention), whose bits every table shares (kernels/encode.h is the
 * reference); the input check before any write runs the table's
 * first_nonfinite over the source. */
#include "dispatch.h"
#include "error.h"
#include "kvquant.h"

static void *row_of(const flat_tensor *t, int64_t b, int64_t h, int64_t s)
{
    return (void *)flat_elem_ptr(t->data, b * t->stride_batch + h * t->stride_head +
                                              s * t->stride_seq, t->dtype);
}

flat_status flat_quantize(const flat_tensor *src, const flat_tensor *dst,
                          const flat_tensor *scale, int32_t group, uint32_t flags)
{
    flat_status st = FLAT_OK;
    const flat_ukernels *k = flat_dispatch_select(FLAT_ISA_AUTO, &st);
    if (!k)
        return st;
    if ((st = flat_check_quantize(src, dst, scale, group, flags, k->first_nonfinite)) != FLAT_OK)
        return st;
    const int given = (flags & FLAT_QUANTIZE_GIVEN_SCALES) != 0;
    for (int64_t b = 0; b < src->batch; b++)
        for (int64_t h = 0; h < src->heads; h++)
            for (int64_t s = 0; s < src->seq; s++)
                k->quantize_row(src->dim, row_of(src, b, h, s), src->dtype, group, dst->dtype,
                                row_of(dst, b, h, s), row_of(scale, b, h, s), scale->dtype,
                                given);
    return FLAT_OK;
}
