/* AVX-512 decode attention (attention_pair.h), D % 16 == 0: two positions per 512-bit vector.
 *
 * As in attention_avx2.c, query heads go HC = 8 at a time and a position's scores are one 8-lane
 * vector (lanes: heads). Here the score pass takes positions two at a time: the low 256 bits hold 8
 * key values of position t, the high 256 bits the same 8 of position t+1, against the query chunk
 * broadcast to both halves. The 8 heads' accumulators then reduce together into one vector of 16
 * scores [t: heads 0-7 | t+1: heads 0-7] in 15 shuffles per pair of positions (hadd on 256-bit
 * vectors needs 22 per position), and exp runs on both positions at once. The value pass keeps two
 * 16-wide column chunks in flight so that the FMA chains overlap. */
#include "attention_pair.h"

#ifdef ATT_HAVE_X86
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define ZFN static inline __attribute__((target("avx2,fma,f16c,avx512f"), always_inline))
#define HC 8

/* exp_neg (attention.c) on 16 lanes; NaN stays NaN. */
ZFN __m512 exp_neg16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(EXP_LO);
    const __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_setzero_ps(), _mm512_max_ps(lo, x));   /* this order keeps NaN */
    __m512 fn, r;
    __m512 y = exp_cephes_poly16(x, &fn, &r);
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps((__mmask16)~tiny, y, fn);   /* y * 2^fn */
}

/* cap * tanh(x / cap) on 16 lanes (attention_pair.h), inv2 = -2 / cap. */
ZFN __m512 softcap16(__m512 x, __m512 cap, __m512 inv2) {
    const __m512 e = exp_neg16(_mm512_mul_ps(_mm512_abs_ps(x), inv2));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 t = _mm512_div_ps(_mm512_mul_ps(cap, _mm512_sub_ps(one, e)), _mm512_add_ps(one, e));
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

ZFN __m512 dup256(__m256 x) { return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(x))); }

ZFN __m256 high256(__m512 x) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)); }

/* x[g] holds head g's partial dot products, low half for position t, high half for t+1; returns
 * [t: heads 0-7 | t+1: heads 0-7]. */
ZFN __m512 sum8x2(const __m512 *x) {
    /* within 128-bit lanes: [a0+a2, b0+b2, a1+a3, b1+b3] for (a, b) = (x0, x1), ... */
    const __m512 y01 = _mm512_add_ps(_mm512_unpacklo_ps(x[0], x[1]), _mm512_unpackhi_ps(x[0], x[1]));
    const __m512 y23 = _mm512_add_ps(_mm512_unpacklo_ps(x[2], x[3]), _mm512_unpackhi_ps(x[2], x[3]));
    const __m512 y45 = _mm512_add_ps(_mm512_unpacklo_ps(x[4], x[5]), _mm512_unpackhi_ps(x[4], x[5]));
    const __m512 y67 = _mm512_add_ps(_mm512_unpacklo_ps(x[6], x[7]), _mm512_unpackhi_ps(x[6], x[7]));
    /* within 128-bit lanes: [x0, x1, x2, x3] (each lane's 4 values summed) */
    const __m512 z0 = _mm512_add_ps(_mm512_shuffle_ps(y01, y23, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_ps(y01, y23, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 z4 = _mm512_add_ps(_mm512_shuffle_ps(y45, y67, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_ps(y45, y67, _MM_SHUFFLE(3, 2, 3, 2)));
    /* 128-bit lanes of z0: (t, heads 0-3) twice, then (t+1, heads 0-3) twice; z4: heads 4-7 */
    const __m512 r = _mm512_add_ps(_mm512_shuffle_f32x4(z0, z4, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(z0, z4, _MM_SHUFFLE(3, 1, 3, 1)));
    /* r: (t, 0-3), (t+1, 0-3), (t, 4-7), (t+1, 4-7) */
    return _mm512_shuffle_f32x4(r, r, _MM_SHUFFLE(3, 1, 2, 0));
}

/* 8 key values (from column c) of positions t and t+1 in the low and high halves; float32 or
 * (HALF) float16 rows. */
ZFN __m512 keys2(const char *k0, const char *k1, int c, const int HALF) {
    if (HALF) {
        const __m128i lo = _mm_loadu_si128((const __m128i *)(k0 + 2 * (size_t)c));
        const __m128i hi = _mm_loadu_si128((const __m128i *)(k1 + 2 * (size_t)c));
        return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
    }
    const __m512d lo = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps((const float *)k0 + c)));
    return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_loadu_ps((const float *)k1 + c)), 1));
}

/* 16 values from element c of a value row. */
ZFN __m512 load16(const char *row, int c, const int HALF) {
    return HALF ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * (size_t)c)))
                : _mm512_loadu_ps((const float *)row + c);
}

/* o[g] (W 16-wide chunks from column c) = o[g] * corr[g] + sum over the tile's positions of
 * p[t][g] V[t]; W = 1 or 2 and NG constants after inlining. */
ZFN void values16(const att_pair *j, const char *const *rows, int n, const float *p, const float *corr, float *o,
                  int c, const int W, const int NG, const int HALF) {
    const int D = j->D;
    __m512 acc[2][HC];
    for (int w = 0; w < W; w++)
        for (int g = 0; g < NG; g++)
            acc[w][g] = _mm512_mul_ps(_mm512_loadu_ps(o + (size_t)g * D + c + 16 * w), _mm512_set1_ps(corr[g]));
    for (int t = 0; t < n; t++) {
        __m512 v[2];
        for (int w = 0; w < W; w++) v[w] = load16(rows[t] + j->v_off, c + 16 * w, HALF);
        for (int g = 0; g < NG; g++) {
            const __m512 pg = _mm512_set1_ps(p[t * HC + g]);
            for (int w = 0; w < W; w++) acc[w][g] = _mm512_fmadd_ps(pg, v[w], acc[w][g]);
        }
    }
    for (int w = 0; w < W; w++)
        for (int g = 0; g < NG; g++) _mm512_storeu_ps(o + (size_t)g * D + c + 16 * w, acc[w][g]);
}

/* One tile, as tile8 in attention_avx2.c. */
ZFN void tile16(const att_pair *j, const tile_ring *ring, int i, int pf, const float *q, float *o,
                __m256 *m, __m256 *l, const int NG, const int HALF) {
    const char *const *rows = ring->rows[i % 3];
    const int n = ring->n[i % 3];
    const int D = j->D;
    __m512 s[TILE / 2];   /* scores, then probabilities: s[u] = [2u: heads | 2u+1: heads], float t * HC + g */
    float corr[HC];
    const __m512 scale = _mm512_set1_ps(j->scale);
    const int capped = j->softcap > 0.0f;
    const __m512 cap = _mm512_set1_ps(j->softcap), inv2 = _mm512_set1_ps(capped ? -2.0f / j->softcap : 0.0f);
    __m512 top = _mm512_set1_ps(-INFINITY);
    for (int t = 0; t < n; t += 2) {   /* when n is odd, rows[n] repeats rows[n-1]: same score */
        if (pf) {
            prefetch_ahead(ring, i, t, j->v_off, D * (HALF ? 2 : 4));
            prefetch_ahead(ring, i, t + 1, j->v_off, D * (HALF ? 2 : 4));
        }
        __m512 acc[HC];
        for (int g = 0; g < HC; g++) acc[g] = _mm512_setzero_ps();
        for (int c = 0; c < D; c += 8) {
            const __m512 k = keys2(rows[t], rows[t + 1], c, HALF);
            for (int g = 0; g < NG; g++)
                acc[g] = _mm512_fmadd_ps(dup256(_mm256_loadu_ps(q + (size_t)g * D + c)), k, acc[g]);
        }
        s[t / 2] = _mm512_mul_ps(sum8x2(acc), scale);
        if (capped) s[t / 2] = softcap16(s[t / 2], cap, inv2);
        top = _mm512_max_ps(top, s[t / 2]);
    }
    const __m256 mn = _mm256_max_ps(*m, _mm256_max_ps(_mm512_castps512_ps256(top), high256(top)));
    const __m256 cv = _mm512_castps512_ps256(exp_neg16(dup256(_mm256_sub_ps(*m, mn))));   /* 0 on the first tile */
    _mm256_storeu_ps(corr, cv);
    const __m512 mn2 = dup256(mn);
    __m512 sum = _mm512_setzero_ps();
    for (int t = 0; t < n; t += 2) {
        __m512 pt = exp_neg16(_mm512_sub_ps(s[t / 2], mn2));
        if (t + 1 == n) pt = _mm512_maskz_mov_ps(0x00FF, pt);   /* the repeated position */
        s[t / 2] = pt;
        sum = _mm512_add_ps(sum, pt);
    }
    *l = _mm256_fmadd_ps(*l, cv, _mm256_add_ps(_mm512_castps512_ps256(sum), high256(sum)));
    *m = mn;
    const float *p = (const float *)s;
    int c = 0;
    for (; c + 32 <= D; c += 32) values16(j, rows, n, p, corr, o, c, 2, NG, HALF);
    if (c < D) values16(j, rows, n, p, corr, o, c, 1, NG, HALF);
}

__attribute__((target("avx2,fma,f16c,avx512f"))) void pair_avx512(const att_pair *j) {
    if (j->half) {
        ATT_PAIR_BODY(tile16, 1)
    } else {
        ATT_PAIR_BODY(tile16, 0)
    }
}
#endif
