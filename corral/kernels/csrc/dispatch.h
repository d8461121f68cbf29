/* Entry point of the kernels: out(T, N) = x(T, K) @ W(N, K)^T with W in GGUF blocks. */
#ifndef CORRAL_DISPATCH_H
#define CORRAL_DISPATCH_H

#include "qtypes.h"

enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVXVNNI = 2, ISA_AVX512 = 3 };
enum { QM_OK = 0, QM_ENOMEM = -1, QM_ETYPE = -2, QM_ESHAPE = -3 };

/* The highest level this CPU (and OS) runs. */
int kernels_best_level(void);
/* 1 when this CPU runs the kernel set of `level` (levels are not nested: see dispatch.c). */
int kernels_level_supported(int level);
const kernel_set *kernels_for_level(int level);

/* Most tokens a call of this type takes through row dots at `level` (more go through tiles); 0 if
 * the level has no row dot for the type. */
int row_dot_max_tokens(int level, int type_id);

/* W: N rows of K values of `type_id` blocks, rows `row_stride` bytes apart; x, out contiguous.
 * `level` must be one kernels_level_supported() accepts. Returns QM_OK or a negative QM_E* code. */
int qmatmul_run(int level, int type_id, const uint8_t *w, size_t row_stride, int N, int K, const float *x,
                int T, float *out, int nthreads);

/* One weight of a multi-weight call: out(T, N) = x(T, K) @ W(N, K)^T. */
typedef struct {
    int type_id;
    const uint8_t *w;
    size_t row_stride;
    int N;
    float *out;
} qm_weight;

/* Several weights against the same x, quantized once, in one parallel region where the kernels
 * allow (few tokens); each out is exactly what qmatmul_run gives for that weight alone. */
int qmatmul_many_run(int level, const qm_weight *jobs, int njobs, int K, const float *x, int T, int nthreads);

/* Several weights, weight i against its own x_i = xs[i] (T, K) (a mixture's experts, each on its own
 * tokens' activations), in one parallel region where the kernels allow; each out is exactly what
 * qmatmul_run gives for that weight and its x alone. */
int qmatmul_each_run(int level, const qm_weight *jobs, int njobs, int K, const float *const *xs, int T,
                     int nthreads);

#endif
