/* Score rules between qk and the row max: softcap, ALiBi, an additive mask. */
#include <math.h>

#include "../convert.h"
#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

#define LOG2E 1.44269504088896340736f

/* tanh as ukernel.h states it: the Cephes tanhf polynomial below 0.625,
 * 1 - 2 / (e^{2|x|} + 1) above (no cancellation there: tanh >= 0.55). */
static float tanh_model(float x)
{
    float a = fabsf(x);
    if (a < 0.625f) {
        float z = x * x;
        return ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    }
    float e = flat_exp2_scalar(2.0f * LOG2E * a);
    float t = 1.0f - 2.0f / (e + 1.0f);
    return x < 0 ? -t : t;
}

float flat_score_rules__scalar(int n, float *s, const flat_rules_row *r)
{
    float m = -INFINITY;
    for (int c = 0; c < n; c++) {
        float x = s[c];
        if (r->cap > 0)
            x = r->cap * tanh_model(x / r->cap);
        if (r->slope != 0)
            x += r->slope * fabsf(r->dist - (float)c);
        if (r->mask)
            x += LOG2E * flat_load_elem(r->mask, c, r->mask_t);
        s[c] = x;
        m = x > m ? x : m;
    }
    return m;
}
