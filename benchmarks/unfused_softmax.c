/*
 * The baseline's softmax, compiled with -O3 -ffast-math (this file only):
 * glibc then vectorises expf through libmvec and the max/sum reductions
 * through SIMD, as any tuned unfused implementation does; a scalar expf
 * loop would make the baseline look slower than it needs to be. Masked
 * entries are never fed to exp (loop bounds skip them), so fast-math's
 * "no infinities" assumption holds.
 */
#include <math.h>

#include "unfused.h"

static int64_t visible_columns(int64_t row, int64_t cols, int causal, int64_t causal_offset)
{
    if (!causal)
        return cols;
    int64_t lim = row + 1 + causal_offset;
    return lim < 0 ? 0 : lim > cols ? cols : lim;
}

static void softmax_row(float *s, int64_t n, int64_t cols)
{
    float max = n > 0 ? s[0] : 0.0f, sum = 0.0f;
    for (int64_t j = 1; j < n; j++)
        max = s[j] > max ? s[j] : max;
    for (int64_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - max);
        sum += s[j];
    }
    float inv = n > 0 ? 1.0f / sum : 0.0f;
    for (int64_t j = 0; j < n; j++)
        s[j] *= inv;
    for (int64_t j = n; j < cols; j++)
        s[j] = 0.0f;
}

void unfused_softmax_rows(float *s, int64_t rows, int64_t cols, int causal,
                          int64_t causal_offset)
{
    for (int64_t i = 0; i < rows; i++)
        softmax_row(s + i * cols, visible_columns(i, cols, causal, causal_offset), cols);
}
