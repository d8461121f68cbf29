/* Picking a kernel set for this CPU and running one quantized matmul over threads. */
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch.h"

/* At most this many tokens go through row dots (one weight pass per call, T dots per row);
 * more go through tiles (unpack once, then integer tiles over all tokens). */
#define ROWDOT_MAX_T 3

/* Weight rows unpacked at a time on the tile path: 64 x K bytes stay in L2. */
#define ROW_BLOCK 64

/* Rows per unit of work on the row-dot path. Threads claim units one at a time, so a thread the
 * OS delays (the CPU is shared) leaves its work to the others instead of holding up the call. */
#define ROWDOT_CHUNK 32

static int claim(int *next) {
    int c;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
    c = (*next)++;
    return c;
}

int kernels_best_level(void) {
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return ISA_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avxvnni")) return ISA_AVXVNNI;
    return ISA_AVX2;
#else
    return ISA_SCALAR;
#endif
}

const kernel_set *kernels_for_level(int level) {
#if defined(__x86_64__) || defined(_M_X64)
    switch (level) {
    case ISA_AVX512: return &kernels_avx512;
    case ISA_AVXVNNI: return &kernels_avxvnni;
    case ISA_AVX2: return &kernels_avx2;
    default: break;
    }
#endif
    (void)level;
    return &kernels_scalar;
}

static void split(int n, int parts, int part, int unit, int *lo, int *hi) {
    int units = (n + unit - 1) / unit;
    int a = (int)((long long)units * part / parts), b = (int)((long long)units * (part + 1) / parts);
    *lo = a * unit < n ? a * unit : n;
    *hi = b * unit < n ? b * unit : n;
}

static int run_row_dots(const kernel_set *ks, int type_id, const uint8_t *w, size_t row_stride, int N,
                        int K, const float *x, int T, float *out, int nthreads) {
    act_set a;
    if (act_set_alloc(&a, T, K, ks->row_dot_blk[type_id]) != 0) return QM_ENOMEM;
    for (int t = 0; t < T; t++) {
        act_row r = act_set_row(&a, t);
        ks->quantize_row(x + (size_t)t * K, K, a.blk, (int8_t *)r.q, (float *)r.d, (int16_t *)r.s16,
                         (int16_t *)r.s32);
    }
    act_row rows[ROWDOT_MAX_T];
    for (int t = 0; t < T; t++) rows[t] = act_set_row(&a, t);
    row_dot_fn dot = ks->row_dot[type_id];
    const int nchunks = (N + ROWDOT_CHUNK - 1) / ROWDOT_CHUNK;
    int next = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    for (;;) {
        int c = claim(&next);
        if (c >= nchunks) break;
        const int hi = (c + 1) * ROWDOT_CHUNK < N ? (c + 1) * ROWDOT_CHUNK : N;
        for (int n = c * ROWDOT_CHUNK; n < hi; n++) {
            const uint8_t *wr = w + (size_t)n * row_stride;
            for (int t = 0; t < T; t++) out[(size_t)t * N + n] = dot(wr, &rows[t], K);
        }
    }
    (void)nthreads;
    act_set_free(&a);
    return QM_OK;
}

static int run_tiles(const kernel_set *ks, const qtype_info *ti, int type_id, const uint8_t *w,
                     size_t row_stride, int N, int K, const float *x, int T, float *out, int nthreads) {
    act_set rows;
    act_tiles at;
    if (act_set_alloc(&rows, T, K, ACT_BLOCK) != 0) return QM_ENOMEM;
    if (act_tiles_alloc(&at, T, K, ks->tok, ti->group) != 0) { act_set_free(&rows); return QM_ENOMEM; }
    int failed = 0, next = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        int part = 0, parts = 1;
#ifdef _OPENMP
        part = omp_get_thread_num(); parts = omp_get_num_threads();
#endif
        int lo, hi;
        split(T, parts, part, 1, &lo, &hi);
        for (int t = lo; t < hi; t++) {
            act_row r = act_set_row(&rows, t);
            ks->quantize_row(x + (size_t)t * K, K, ACT_BLOCK, (int8_t *)r.q, (float *)r.d, (int16_t *)r.s16,
                             (int16_t *)r.s32);
        }
        act_tiles_fill(&at, &rows, ti, lo, hi);
#ifdef _OPENMP
#pragma omp barrier
#endif
        wrows wr;
        if (wrows_alloc(&wr, K, ti->group, ROW_BLOCK) != 0) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
        } else {
            const int nblocks = (N + ROW_BLOCK - 1) / ROW_BLOCK;
            for (;;) {
                const int c = claim(&next);
                if (c >= nblocks) break;
                const int n0 = c * ROW_BLOCK, nrows = N - n0 < ROW_BLOCK ? N - n0 : ROW_BLOCK;
                ks->unpack(&wr, type_id, w + (size_t)n0 * row_stride, row_stride, nrows);
                for (int tile = 0; tile < at.ntiles; tile++)
                    for (int r0 = 0; r0 < nrows; r0 += ks->rows) {
                        const int nr = nrows - r0 < ks->rows ? nrows - r0 : ks->rows;
                        ks->tile_gemm(&wr, r0, nr, &at, tile, out + n0, (size_t)N, ti->offset != 0);
                    }
            }
            wrows_free(&wr);
        }
    }
    (void)nthreads;
    act_tiles_free(&at);
    act_set_free(&rows);
    return failed ? QM_ENOMEM : QM_OK;
}

int qmatmul_run(int level, int type_id, const uint8_t *w, size_t row_stride, int N, int K, const float *x,
                int T, float *out, int nthreads) {
    const qtype_info *ti = qtype_get(type_id);
    if (!ti) return QM_ETYPE;
    if (N <= 0 || T <= 0 || K <= 0 || K % ti->block != 0) return QM_ESHAPE;
    if (nthreads < 1) nthreads = 1;
    const kernel_set *ks = kernels_for_level(level);
    if (T <= ROWDOT_MAX_T && ks->row_dot[type_id])
        return run_row_dots(ks, type_id, w, row_stride, N, K, x, T, out, nthreads);
    return run_tiles(ks, ti, type_id, w, row_stride, N, K, x, T, out, nthreads);
}
