/* AVX2 + FMA decode attention (attention_pair.h), head-dim rows in 256-bit vectors (D % 8 == 0).
 *
 * Query heads of a group go HC = 8 at a time, the lanes of one vector: the softmax state (m, l,
 * rescale factor) of 8 heads is one vector, and a position's 8 dot products reduce into one vector
 * with hadd instead of 8 horizontal sums. Probabilities of a tile are kept position-major, so the
 * value pass broadcasts each (position, head) probability onto the value row it scales. */
#include "attention_pair.h"

#ifdef ATT_HAVE_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define YFN static inline __attribute__((target("avx2,fma,f16c"), always_inline))
#define HC 8

/* exp_neg (attention.c) on 8 lanes; NaN stays NaN. */
YFN __m256 exp_neg8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(EXP_LO);
    const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_setzero_ps(), _mm256_max_ps(lo, x));   /* this order keeps NaN */
    __m256 fn, r;
    __m256 y = exp_cephes_poly8(x, &fn, &r);
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fn), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

/* cap * tanh(x / cap) on 8 lanes (attention_pair.h), inv2 = -2 / cap. */
YFN __m256 softcap8(__m256 x, __m256 cap, __m256 inv2) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 e = exp_neg8(_mm256_mul_ps(_mm256_andnot_ps(sign, x), inv2));
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 t = _mm256_div_ps(_mm256_mul_ps(cap, _mm256_sub_ps(one, e)), _mm256_add_ps(one, e));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

/* Lane g = the total of a[g]. */
YFN __m256 sum8(const __m256 *a) {
    const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 h0123 = _mm256_hadd_ps(h01, h23);   /* lanes 0-3: halves 0-3 of a[0..3]; 4-7: halves 4-7 */
    const __m256 h4567 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

/* 8 values from element c of a K or V row, float32 or (HALF) float16. */
YFN __m256 load8(const char *row, int c, const int HALF) {
    return HALF ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)c)))
                : _mm256_loadu_ps((const float *)row + c);
}

/* Tile i of the ring for NG heads (a constant after inlining) from query rows q into output rows
 * o: scores, online-softmax update of (m, l), o = o * corr + p V; with pf, prefetches the next two
 * tiles a position at a time. */
YFN void tile8(const att_pair *j, const tile_ring *ring, int i, int pf, const float *q, float *o,
               __m256 *m, __m256 *l, const int NG, const int HALF) {
    const char *const *rows = ring->rows[i % 3];
    const int n = ring->n[i % 3];
    const int D = j->D;
    __m256 s[TILE];   /* scores, then probabilities; lanes: heads (beyond NG: 0, unused) */
    float corr[HC];
    const __m256 scale = _mm256_set1_ps(j->scale);
    const int capped = j->softcap > 0.0f;
    const __m256 cap = _mm256_set1_ps(j->softcap), inv2 = _mm256_set1_ps(capped ? -2.0f / j->softcap : 0.0f);
    __m256 top = _mm256_set1_ps(-INFINITY);
    for (int t = 0; t < n; t++) {
        if (pf) prefetch_ahead(ring, i, t, j->v_off, D * (HALF ? 2 : 4));
        __m256 acc[HC];
        for (int g = 0; g < HC; g++) acc[g] = _mm256_setzero_ps();
        for (int c = 0; c < D; c += 8) {
            const __m256 k = load8(rows[t], c, HALF);
            for (int g = 0; g < NG; g++)
                acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)g * D + c), k, acc[g]);
        }
        s[t] = _mm256_mul_ps(sum8(acc), scale);
        if (capped) s[t] = softcap8(s[t], cap, inv2);
        top = _mm256_max_ps(top, s[t]);
    }
    const __m256 mn = _mm256_max_ps(*m, top);
    const __m256 cv = exp_neg8(_mm256_sub_ps(*m, mn));   /* 0 on the first tile */
    _mm256_storeu_ps(corr, cv);
    __m256 sum = _mm256_mul_ps(*l, cv);
    for (int t = 0; t < n; t++) {
        s[t] = exp_neg8(_mm256_sub_ps(s[t], mn));
        sum = _mm256_add_ps(sum, s[t]);
    }
    *l = sum;
    *m = mn;
    const float *p = (const float *)s;   /* p[t * HC + g] */
    for (int c = 0; c < D; c += 8) {
        __m256 acc[HC];
        for (int g = 0; g < NG; g++)
            acc[g] = _mm256_mul_ps(_mm256_loadu_ps(o + (size_t)g * D + c), _mm256_set1_ps(corr[g]));
        for (int t = 0; t < n; t++) {
            const __m256 v = load8(rows[t] + j->v_off, c, HALF);
            for (int g = 0; g < NG; g++) acc[g] = _mm256_fmadd_ps(_mm256_set1_ps(p[t * HC + g]), v, acc[g]);
        }
        for (int g = 0; g < NG; g++) _mm256_storeu_ps(o + (size_t)g * D + c, acc[g]);
    }
}

__attribute__((target("avx2,fma,f16c"))) void pair_avx2(const att_pair *j) {
    if (j->half) {
        ATT_PAIR_BODY(tile8, 1)
    } else {
        ATT_PAIR_BODY(tile8, 0)
    }
}
#endif
