/* The baseline flat is measured against: attention the unfused way, with the
 * whole q_len x kv_len score matrix of a head in memory. */
#ifndef BENCH_UNFUSED_H
#define BENCH_UNFUSED_H

#include "workload.h"

/* Bytes of score matrices the baseline holds at once: one Nq x Nk fp32
 * matrix per thread (each thread works on its own (batch, head)). */
double unfused_score_bytes(const bench_shape *s, int threads);

/*
 * w->out = softmax(Q K^T / sqrt(D) + causal mask) V, per (batch, head):
 *   S = scale * Q K^T  (cblas_sgemm), row softmax of S, O = P V (cblas_sgemm).
 * OpenMP deals (batch, head) pairs to `threads` threads, each running
 * single-threaded sgemm on its own matrix in `scores` (threads x Nq x Nk
 * floats): the same split flat uses, and no oversubscription between
 * OpenBLAS's threads and OpenMP's.
 */
void unfused_attention(const workload *w, int threads, float *scores);

/*
 * In place, row by row: s[i][j] = exp(s[i][j] - max_i) / sum_i over the
 * visible prefix j < visible(i), 0 after it. visible(i) is cols, or with
 * causal min(cols, max(0, i + 1 + causal_offset)), causal_offset being
 * kv_len - q_len (bottom-right aligned, as flat.h defines the mask).
 */
void unfused_softmax_rows(float *s, int64_t rows, int64_t cols, int causal,
                          int64_t causal_offset);

#endif
