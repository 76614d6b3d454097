#if !defined(__aarch64__)
#error "kernels/neon/ is built for AArch64 only"
#endif
/* flat_quantize's row kernel and input check: kernels/encode.h's portable
 * reference, specialised on the source and code types. Writing the cache is
 * a small part of a step next to attention on AArch64 too; NEON code here
 * waits for a measurement on a real AArch64 core that says it pays. */
#include "../encode.h"
#include "../ukernel.h"
#include "kernels.h"

void flat_quantize_row__neon(int64_t n, const void *x, flat_dtype xt, int64_t group,
                             flat_dtype t, void *restrict codes, void *scale, flat_dtype scale_t,
                             int given)
{
    flat_quantize_row_portable(n, x, xt, group, t, codes, scale, scale_t, given);
}

int64_t flat_first_nonfinite__neon(int64_t n, const void *x, flat_dtype xt)
{
    return flat_first_nonfinite_ref(n, x, xt);
}
