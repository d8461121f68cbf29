/* Small fused float32 ops of a decoder layer: what is left of a decode step around the matmuls.
 *
 * Each op makes one pass over its rows, so a step pays one call instead of several torch ops, and
 * touches each value once while the caches are busy streaming weights. `level` is a dispatch.h ISA
 * level (at most kernels_best_level()); every level gives the same results up to float rounding.
 * Rows are split over `nthreads` OpenMP threads only when there are many of them (prefill); a
 * decode step's few rows run on the calling thread. All buffers are contiguous float32. */
#ifndef CORRAL_OPS_H
#define CORRAL_OPS_H

#include <stddef.h>
#include <stdint.h>

/* out(T, D) = x / sqrt(mean(x^2) + eps) * w per row. With `residual` (T, D) not NULL, first
 * residual += x and the norm is of the sum (the residual stream's add fused with the next norm).
 * out may be x. */
void ops_rms_norm(int level, const float *x, float *residual, const float *w, float eps, int T, int D,
                  float *out, int nthreads);

/* One of q, k, v in place, (T, H, D): add `bias` (H * D) when not NULL, then RMSNorm each head
 * with weight `norm_w` (D) when not NULL, then rotate each head by the half-split rotary
 * (x[i], x[i + D/2]) -> (x[i] cos[i] - x[i + D/2] sin[i], x[i + D/2] cos[i + D/2] + x[i] sin[i + D/2])
 * with `cos`, `sin` (T, D) when not NULL (D even). */
typedef struct {
    float *x;
    int H;
    const float *bias;
    const float *norm_w;
    int rotate;
} ops_heads;

/* The heads of q, k and v (njobs of them) for T tokens of head size D; cos/sin as above. */
void ops_heads_epilogue(int level, const ops_heads *jobs, int njobs, int T, int D, float eps, const float *cos,
                        const float *sin, int nthreads);

/* out(n) = silu(gate) * up = gate / (1 + exp(-gate)) * up; out may be gate or up. */
void ops_silu_mul(int level, const float *gate, const float *up, long long n, float *out, int nthreads);

/* out(n) = gelu_tanh(gate) * up, GELU's tanh form 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
 * computed as x / (1 + exp(-2 sqrt(2 / pi) (x + 0.044715 x^3))); out may be gate or up. */
void ops_gelu_tanh_mul(int level, const float *gate, const float *up, long long n, float *out, int nthreads);

/* out[r] = the index of the first maximum of row r of x (rows, n), n >= 1; of its first NaN when
 * it has one (numpy's argmax). */
void ops_argmax_rows(int level, const float *x, int rows, long long n, int64_t *out, int nthreads);

/* out(n, K) = rows ids[0..n) of a weight in GGUF blocks of `type_id` (nrows rows of K values,
 * row_stride bytes apart), dequantized: a token embedding lookup. Returns QM_OK, QM_ETYPE,
 * QM_ESHAPE (K not whole blocks, or an id outside [0, nrows)) or QM_ENOMEM. */
int ops_dequant_rows(int type_id, const uint8_t *w, size_t row_stride, long long nrows, const int64_t *ids, int n,
                     int K, float *out);

#endif
