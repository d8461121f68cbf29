/* Cephes' expf, its constants and vector core shared by the exps of the fused ops and of attention:
 * x = n ln2 + r with ln2 split in two (EXP_C1 + EXP_C2) so r is exact, |r| <= ln2 / 2, e^r by a
 * polynomial in r with coefficients EXP_P0..EXP_P5, times 2^n. Each user clamps x to its own range. */
#ifndef CORRAL_EXP_CEPHES_H
#define CORRAL_EXP_CEPHES_H

#define EXP_LOG2E 1.44269504088896341f
#define EXP_C1 0.693359375f
#define EXP_C2 (-2.12194440e-4f)
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#include <immintrin.h>

/* The vector core on 8 and 16 lanes, for x already clamped by the caller: *fn = round(x log2 e),
 * *r = x - fn ln2 and the polynomial p returned, so e^x = (1 + r + r^2 p) 2^fn. */
static inline __attribute__((target("avx2,fma"), always_inline)) __m256
exp_cephes_poly8(__m256 x, __m256 *fn, __m256 *r) {
    *fn = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *r = _mm256_fnmadd_ps(*fn, _mm256_set1_ps(EXP_C2), _mm256_fnmadd_ps(*fn, _mm256_set1_ps(EXP_C1), x));
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, *r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, *r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, *r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, *r, _mm256_set1_ps(EXP_P4));
    return _mm256_fmadd_ps(p, *r, _mm256_set1_ps(EXP_P5));
}

static inline __attribute__((target("avx512f"), always_inline)) __m512
exp_cephes_poly16(__m512 x, __m512 *fn, __m512 *r) {
    *fn = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *r = _mm512_fnmadd_ps(*fn, _mm512_set1_ps(EXP_C2), _mm512_fnmadd_ps(*fn, _mm512_set1_ps(EXP_C1), x));
    __m512 p = _mm512_set1_ps(EXP_P0);
    p = _mm512_fmadd_ps(p, *r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, *r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, *r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, *r, _mm512_set1_ps(EXP_P4));
    return _mm512_fmadd_ps(p, *r, _mm512_set1_ps(EXP_P5));
}
#endif

#endif
