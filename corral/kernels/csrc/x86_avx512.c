/* AVX-512 (F, BW, VL, VNNI) kernels: 512-bit tiles of 8 rows x 16 tokens for many tokens; the
 * 256-bit row dots with EVEX VNNI for few tokens (they are memory-bound, wider buys nothing). */
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <string.h>

#include "qtypes.h"

#define Z_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"

/* Rows r0 .. r0+NR of w against the 16 tokens of one tile; lanes are tokens. */
static inline __attribute__((target(Z_TARGET), always_inline)) void
tile_rows16(const wrows *w, int r0, const int NR, const act_tiles *x, int tile, float *out, size_t ldo,
            const int OFFSET) {
    const int K = w->K, G = w->group, ng = K / G, steps = G / 4;
    const int8_t *xq = x->q + (size_t)tile * 16 * K;
    const float *xd = x->d + (size_t)tile * 16 * (K / 32);
    const int32_t *xo = x->off + (size_t)tile * 16 * ng;
    const float *xs = x->ds + (size_t)tile * 16 * ng;
    const uint8_t *wq[8];
    const float *wa[8], *wb[8];
    __m512 acc[8];
    for (int r = 0; r < NR; r++) {
        wq[r] = w->q + (size_t)(r0 + r) * K;
        wa[r] = w->a + (size_t)(r0 + r) * ng;
        wb[r] = w->b + (size_t)(r0 + r) * ng;
        acc[r] = _mm512_setzero_ps();
    }
    for (int g = 0; g < ng; g++) {
        __m512i ia[8];
        for (int r = 0; r < NR; r++) ia[r] = OFFSET ? _mm512_loadu_si512(xo + 16 * g) : _mm512_setzero_si512();
        for (int j = 0; j < steps; j++) {
            const int k = g * G + 4 * j;
            __m512i xv = _mm512_loadu_si512(xq + (size_t)k * 16);
            for (int r = 0; r < NR; r++) {
                int32_t wv;
                memcpy(&wv, wq[r] + k, 4);
                ia[r] = _mm512_dpbusd_epi32(ia[r], _mm512_set1_epi32(wv), xv);
            }
        }
        const __m512 dx = _mm512_loadu_ps(xd + 16 * (g * G / 32));
        if (OFFSET) {
            for (int r = 0; r < NR; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r]), _mm512_mul_ps(_mm512_set1_ps(wa[r][g]), dx), acc[r]);
        } else {
            const __m512 ds = _mm512_loadu_ps(xs + 16 * g);
            for (int r = 0; r < NR; r++) {
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[r]), _mm512_mul_ps(_mm512_set1_ps(wa[r][g]), dx), acc[r]);
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(wb[r][g]), ds, acc[r]);
            }
        }
    }
    const int nt = x->T - tile * 16 < 16 ? x->T - tile * 16 : 16;
    for (int r = 0; r < NR; r++) {
        float v[16];
        _mm512_storeu_ps(v, acc[r]);
        for (int t = 0; t < nt; t++) out[(size_t)(tile * 16 + t) * ldo + r0 + r] = v[t];
    }
}

#define TILE_CASE(nr) \
    case nr: \
        if (offset_type) tile_rows16(w, r0, nr, x, tile, out, ldo, 1); \
        else tile_rows16(w, r0, nr, x, tile, out, ldo, 0); \
        break;

static __attribute__((target(Z_TARGET))) void
tile_gemm512(const wrows *w, int r0, int nr, const act_tiles *x, int tile, float *out, size_t ldo, int offset_type) {
    switch (nr) {
    TILE_CASE(8) TILE_CASE(7) TILE_CASE(6) TILE_CASE(5) TILE_CASE(4) TILE_CASE(3) TILE_CASE(2) TILE_CASE(1)
    default: break;
    }
}
#undef TILE_CASE

#define KTARGET Z_TARGET
#define KSET kernels_avx512
#define KNAME "avx512vnni"
#define KDOT_AVX512VNNI
#define KNO_TILE
#define KTILE_GEMM tile_gemm512
#define KTILE_TOK 16
#define KTILE_ROWS 8
#include "x86_ymm_impl.h"
#endif
