/* Quantized weights against float32 activations that are never rounded.
 *
 * The int8 kernels (dispatch.h) quantize each activation row to 8 bits per block of 32, as
 * llama.cpp does: fast, but about 1/254 of |x| * |w| off per product, enough to flip a close
 * greedy choice on a small model. Here each tile of FA_ROWS weight rows is unpacked by the level's
 * `unpack` (value = a[group] * q + b[group], the exact block values), written out as floats in a
 * small per-thread buffer, and dotted in float32 against every token: what a dense float32
 * matmul of the dequantized weight gives, up to summation order, at the memory cost of the blocks.
 *
 * Each (row, token) result is computed by the same operations in the same order whatever T, the
 * number of threads and the tile a row falls in, so batching never changes a result. */
#ifndef CORRAL_FLOAT_ACT_H
#define CORRAL_FLOAT_ACT_H

#include "dispatch.h"

#define FA_ROWS 4

/* out_j(T, N_j) = x(T, K) @ W_j(N_j, K)^T for each job, float32 activations; the jobs share one
 * parallel region. Returns QM_OK or a negative QM_E* code (QT_Q4_0_X16 weights are refused:
 * their rows are not contiguous). */
int qmatmul_float_run(int level, const qm_weight *jobs, int njobs, int K, const float *x, int T, int nthreads);

#endif
