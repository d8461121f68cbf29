/* AVX-512 (F, BW, VL, VNNI) kernels: 512-bit tiles of 16 rows x 8 tokens for many tokens; the
 * 256-bit row dots with EVEX VNNI for few tokens (they are memory-bound, wider buys nothing). */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <string.h>

#include "qtypes.h"

#define Z_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"

/* out rows [0, nrows) for tokens [t0, t0 + NT): one zmm of 16 rows per token. */
static inline __attribute__((target(Z_TARGET), always_inline)) void
tile16(const wtile *w, const act_set *x, int t0, const int NT, float *out, size_t ldo, int nrows) {
    const int K = w->K, G = w->group, steps = G / 4, ng = K / G;
    const int nd = K / ACT_BLOCK;
    __m512 acc[8];
    const int8_t *xq[8];
    const float *xd[8];
    const int16_t *xs[8];
    for (int t = 0; t < NT; t++) {
        acc[t] = _mm512_setzero_ps();
        xq[t] = x->q + (size_t)(t0 + t) * K;
        xd[t] = x->d + (size_t)(t0 + t) * nd;
        xs[t] = G == 16 ? x->s16 + (size_t)(t0 + t) * (K / 16) : x->s32 + (size_t)(t0 + t) * (K / 32);
    }
    for (int g = 0; g < ng; g++) {
        __m512i ia[8];
        for (int t = 0; t < NT; t++) ia[t] = _mm512_setzero_si512();
        const uint8_t *wq = w->q + (size_t)g * steps * 64;
        for (int j = 0; j < steps; j++) {
            __m512i wv = _mm512_loadu_si512(wq + 64 * j);
            for (int t = 0; t < NT; t++) {
                int32_t xv;
                memcpy(&xv, xq[t] + g * G + 4 * j, 4);
                ia[t] = _mm512_dpbusd_epi32(ia[t], wv, _mm512_set1_epi32(xv));
            }
        }
        __m512 av = _mm512_loadu_ps(w->a + g * TILE_ROWS), bv = _mm512_loadu_ps(w->b + g * TILE_ROWS);
        const int gd = g * G / ACT_BLOCK;
        for (int t = 0; t < NT; t++) {
            float dx = xd[t][gd];
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[t]), _mm512_mul_ps(av, _mm512_set1_ps(dx)), acc[t]);
            acc[t] = _mm512_fmadd_ps(bv, _mm512_set1_ps(dx * (float)xs[t][g]), acc[t]);
        }
    }
    const __mmask16 m = (__mmask16)((1u << nrows) - 1);
    for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(out + (size_t)(t0 + t) * ldo, m, acc[t]);
}

static __attribute__((target(Z_TARGET))) void
tile_gemm512(const wtile *w, const act_set *x, int t0, int nt, float *out, size_t ldo, int nrows) {
    int t = t0;
    for (; t + 8 <= t0 + nt; t += 8) tile16(w, x, t, 8, out, ldo, nrows);
    switch (t0 + nt - t) {
    case 7: tile16(w, x, t, 7, out, ldo, nrows); break;
    case 6: tile16(w, x, t, 6, out, ldo, nrows); break;
    case 5: tile16(w, x, t, 5, out, ldo, nrows); break;
    case 4: tile16(w, x, t, 4, out, ldo, nrows); break;
    case 3: tile16(w, x, t, 3, out, ldo, nrows); break;
    case 2: tile16(w, x, t, 2, out, ldo, nrows); break;
    case 1: tile16(w, x, t, 1, out, ldo, nrows); break;
    default: break;
    }
}

#define KTARGET Z_TARGET
#define KSET kernels_avx512
#define KNAME "avx512vnni"
#define KDOT_AVX512VNNI
#define KNO_TILE
#define KTILE_GEMM tile_gemm512
#include "x86_ymm_impl.h"
#endif
