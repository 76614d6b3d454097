/* Row max and exp2-and-sum, the softmax steps between qk and pv. */
#include <math.h>

#include "../ukernel.h"
#include "exp.h"
#include "kernels.h"

float flat_row_max__scalar(int n, const float *s)
{
    float m = -INFINITY;
    for (int j = 0; j < n; j++)
        m = s[j] > m ? s[j] : m;
    return m;
}

float flat_exp2_row__scalar(int n, int width, float *s, float m)
{
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        s[j] = flat_exp2_scalar(s[j] - m);
        sum += s[j];
    }
    for (int j = n; j < width; j++)
        s[j] = 0.0f;
    return sum;
}

void flat_vexp2__scalar(int n, const float *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] = flat_exp2_scalar(x[j]);
}
