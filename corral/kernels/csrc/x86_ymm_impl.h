/* 256-bit kernels, compiled once per x86 level. The including file defines:
 *   KTARGET      the target attribute string (e.g. "avx2,fma,f16c")
 *   KSET, KNAME  the name of the kernel_set to define and its printable name
 *   KDOT_AVXVNNI or KDOT_AVX512VNNI  to use the VNNI dot instructions; neither: AVX2 emulation
 *   KNO_TILE     when the including file brings its own tile_gemm (then it defines KTILE_GEMM,
 *                KTILE_TOK and KTILE_ROWS)
 *   KNO_SET      when the including file defines the kernel_set itself
 *
 * Row dots quantize the activation like the weight's own blocks: 32-value scales for the 32-value
 * types, one scale per 256 values for the K-quants, so that a whole super-block accumulates in
 * int32 before one float multiply. Weight values enter the u8 x s8 products unsigned
 * (offsets like Q4_0's -8 are applied through the activation sums); Q8_0 uses |w| x sign(x, w).
 */
#include <immintrin.h>
#include <string.h>

#include "qtypes.h"

#define KFN static inline __attribute__((target(KTARGET), always_inline))
#define KFN_OUT static __attribute__((target(KTARGET)))

/* acc + sum of 4 u8*s8 products per int32 lane. Emulated: exact while each pair sum fits int16
 * (u <= 128 with |s| <= 127, true for every caller except wide tiles). */
KFN __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
#if defined(KDOT_AVX512VNNI)
    return _mm256_dpbusd_epi32(acc, u, s);
#elif defined(KDOT_AVXVNNI)
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* dpbusd for u up to 255: splits u into nibbles where the instruction is emulated. */
KFN __m256i dpbusd_wide(__m256i acc, __m256i u, __m256i s) {
#if defined(KDOT_AVX512VNNI) || defined(KDOT_AVXVNNI)
    return dpbusd(acc, u, s);
#else
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(u, m4), s);
    __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(u, 4), m4), s);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(lo, _mm256_set1_epi16(1)));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(hi, _mm256_set1_epi16(16)));
#endif
}

/* acc + pairwise int16 products summed into int32 lanes. */
KFN __m256i dpwssd(__m256i acc, __m256i a, __m256i b) {
#if defined(KDOT_AVX512VNNI)
    return _mm256_dpwssd_epi32(acc, a, b);
#elif defined(KDOT_AVXVNNI)
    return _mm256_dpwssd_avx_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

KFN float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

KFN int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

KFN float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

KFN __m256i load256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 32 bits -> 32 bytes, 0x10 where the bit is set (byte i from bit i). */
KFN __m256i bits_to_0x10(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
    v = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(-1));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Low and high nibbles of 16 bytes as 32 bytes: values 0..15 then 16..31 of a 32-block. */
KFN __m256i nibbles16(const uint8_t *p) {
    __m128i raw = _mm_loadu_si128((const __m128i *)p), m4 = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
}

/* ---- activation quantization ---- */

KFN_OUT void quantize_row(const float *x, int K, int blk, int8_t *q, float *d, int16_t *s16,
                          int16_t *s32) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int b = 0; b < K / blk; b++) {
        const float *xb = x + (size_t)b * blk;
        __m256 mx = _mm256_setzero_ps();
        for (int i = 0; i < blk; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + i)));
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        float amax = _mm_cvtss_f32(m);
        d[b] = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        for (int i = 0; i < blk; i += 32) {
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i), id));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 8), id));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 16), id));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 24), id));
            __m256i w01 = _mm256_packs_epi32(i0, i1), w23 = _mm256_packs_epi32(i2, i3);
            __m256i bytes = _mm256_packs_epi16(w01, w23);
            /* packs interleave 128-bit lanes: dwords come out as 0 2 4 6 1 3 5 7 */
            bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(q + (size_t)b * blk + i), bytes);
        }
    }
    for (int g = 0; g < K / 16; g++) {
        __m128i v = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(q + 16 * g)));
        __m128i w = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(q + 16 * g + 8)));
        v = _mm_madd_epi16(_mm_add_epi16(v, w), _mm_set1_epi16(1));
        v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
        v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
        s16[g] = (int16_t)_mm_cvtsi128_si32(v);
    }
    for (int g = 0; g < K / 32; g++) s32[g] = (int16_t)(s16[2 * g] + s16[2 * g + 1]);
}

/* ---- row dots, 32-value types (activation scale per 32) ---- */

KFN_OUT float dot_q4_0(const uint8_t *w, const act_row *x, int K) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const int nb = K / 32;
    int b = 0;
    for (; b + 1 < nb; b += 2) {
        const uint8_t *p0 = w + 18 * b, *p1 = p0 + 18;
        __m256i i0 = dpbusd(_mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * x->s32[b])), nibbles16(p0 + 2),
                            load256(x->q + 32 * b));
        __m256i i1 = dpbusd(_mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * x->s32[b + 1])), nibbles16(p1 + 2),
                            load256(x->q + 32 * b + 32));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p0) * x->d[b]), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_set1_ps(f16(p1) * x->d[b + 1]), acc1);
    }
    for (; b < nb; b++) {
        const uint8_t *p = w + 18 * b;
        __m256i i0 = dpbusd(_mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * x->s32[b])), nibbles16(p + 2),
                            load256(x->q + 32 * b));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p) * x->d[b]), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

KFN_OUT float dot_q4_1(const uint8_t *w, const act_row *x, int K) {
    __m256 acc = _mm256_setzero_ps();
    float macc = 0.0f;
    for (int b = 0; b < K / 32; b++) {
        const uint8_t *p = w + 20 * b;
        __m256i i0 = dpbusd(_mm256_setzero_si256(), nibbles16(p + 4), load256(x->q + 32 * b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p) * x->d[b]), acc);
        macc += f16(p + 2) * x->d[b] * (float)x->s32[b];
    }
    return hsum_ps(acc) + macc;
}

KFN_OUT float dot_q5_0(const uint8_t *w, const act_row *x, int K) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < K / 32; b++) {
        const uint8_t *p = w + 22 * b;
        uint32_t qh;
        memcpy(&qh, p + 2, 4);
        __m256i q = _mm256_or_si256(nibbles16(p + 6), bits_to_0x10(qh));
        __m256i i0 = dpbusd(_mm256_zextsi128_si256(_mm_cvtsi32_si128(-16 * x->s32[b])), q, load256(x->q + 32 * b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p) * x->d[b]), acc);
    }
    return hsum_ps(acc);
}

KFN_OUT float dot_q5_1(const uint8_t *w, const act_row *x, int K) {
    __m256 acc = _mm256_setzero_ps();
    float macc = 0.0f;
    for (int b = 0; b < K / 32; b++) {
        const uint8_t *p = w + 24 * b;
        uint32_t qh;
        memcpy(&qh, p + 4, 4);
        __m256i q = _mm256_or_si256(nibbles16(p + 8), bits_to_0x10(qh));
        __m256i i0 = dpbusd(_mm256_setzero_si256(), q, load256(x->q + 32 * b));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p) * x->d[b]), acc);
        macc += f16(p + 2) * x->d[b] * (float)x->s32[b];
    }
    return hsum_ps(acc) + macc;
}

KFN_OUT float dot_q8_0(const uint8_t *w, const act_row *x, int K) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const int nb = K / 32;
    int b = 0;
    for (; b + 1 < nb; b += 2) {
        const uint8_t *p0 = w + 34 * b, *p1 = p0 + 34;
        __m256i w0 = load256(p0 + 2), w1 = load256(p1 + 2);
        __m256i i0 = dpbusd(_mm256_setzero_si256(), _mm256_abs_epi8(w0), _mm256_sign_epi8(load256(x->q + 32 * b), w0));
        __m256i i1 = dpbusd(_mm256_setzero_si256(), _mm256_abs_epi8(w1), _mm256_sign_epi8(load256(x->q + 32 * b + 32), w1));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p0) * x->d[b]), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_set1_ps(f16(p1) * x->d[b + 1]), acc1);
    }
    for (; b < nb; b++) {
        const uint8_t *p = w + 34 * b;
        __m256i w0 = load256(p + 2);
        __m256i i0 = dpbusd(_mm256_setzero_si256(), _mm256_abs_epi8(w0), _mm256_sign_epi8(load256(x->q + 32 * b), w0));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p) * x->d[b]), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* The IQ4 table in both 128-bit lanes, for byte shuffles; `bias` is added to every value. */
KFN __m256i iq4_table(int bias) {
    return _mm256_add_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_VALUES)),
                           _mm256_set1_epi8((char)bias));
}

/* sum over 32 values of table[nibble] * x, with x the 32 int8 activations at xq: |w| x sign(x, w)
 * as for Q8_0 (|w| <= 127). */
KFN __m256i iq4_dot32(__m256i table, const uint8_t *nib, const int8_t *xq) {
    const __m256i w = _mm256_shuffle_epi8(table, nibbles16(nib));
    return dpbusd(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(load256(xq), w));
}

KFN_OUT float dot_iq4_nl(const uint8_t *w, const act_row *x, int K) {
    const __m256i table = iq4_table(0);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const int nb = K / 32;
    int b = 0;
    for (; b + 1 < nb; b += 2) {
        const uint8_t *p0 = w + 18 * b, *p1 = p0 + 18;
        __m256i i0 = iq4_dot32(table, p0 + 2, x->q + 32 * b), i1 = iq4_dot32(table, p1 + 2, x->q + 32 * b + 32);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(f16(p0) * x->d[b]), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_set1_ps(f16(p1) * x->d[b + 1]), acc1);
    }
    for (; b < nb; b++) {
        const uint8_t *p = w + 18 * b;
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iq4_dot32(table, p + 2, x->q + 32 * b)),
                               _mm256_set1_ps(f16(p) * x->d[b]), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* IQ4_XS against activations scaled per 32 values: each sub-block is a 32-value dot like IQ4_NL's,
 * scaled by d * (its scale - 32). */
KFN_OUT float dot_iq4_xs(const uint8_t *w, const act_row *x, int K) {
    const __m256i table = iq4_table(0);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int i = 0; i < K / 256; i++) {
        const uint8_t *p = w + 136 * i;
        const float d = f16(p);
        const int8_t *xq = x->q + 256 * i;
        const float *xd = x->d + 8 * i;
        for (int j = 0; j < 8; j += 2) {
            __m256i i0 = iq4_dot32(table, p + 8 + 16 * j, xq + 32 * j);
            __m256i i1 = iq4_dot32(table, p + 24 + 16 * j, xq + 32 * j + 32);
            const float s0 = d * (float)iq4xs_scale(p, j) * xd[j], s1 = d * (float)iq4xs_scale(p, j + 1) * xd[j + 1];
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(s0), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_set1_ps(s1), acc1);
        }
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- row dots, K-quants (activation scale per 256) ---- */

/* Q4_K / Q5_K 12-byte scales: bytes 0..7 of the result are the 8 scales, 8..15 the 8 mins. */
KFN __m128i kq_scales_mins(const uint8_t *s12) {
    uint32_t u[3], o[4];
    memcpy(u, s12, 12);
    o[0] = u[0] & 0x3f3f3f3f;
    o[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    o[2] = u[1] & 0x3f3f3f3f;
    o[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    return _mm_loadu_si128((const __m128i *)o);
}

/* int32 sum over j of mins[j] * s32[j], 8 values. */
KFN int mins_dot(__m128i scmn, const int16_t *s32) {
    __m128i mn = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(scmn, scmn));
    __m128i v = _mm_madd_epi16(mn, _mm_loadu_si128((const __m128i *)s32));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
    return _mm_cvtsi128_si32(v);
}

KFN __m256i bcast16(int v) { return _mm256_set1_epi16((short)v); }

KFN_OUT float dot_q4_k(const uint8_t *w, const act_row *x, int K) {
    __m256 acc = _mm256_setzero_ps();
    float macc = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int i = 0; i < K / 256; i++) {
        const uint8_t *p = w + 144 * i;
        const int8_t *xq = x->q + 256 * i;
        __m128i scmn = kq_scales_mins(p + 4);
        uint8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, scmn);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i raw = load256(p + 16 + 32 * c);
            __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(raw, m4), load256(xq + 64 * c));
            __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), load256(xq + 64 * c + 32));
            isum = dpwssd(isum, p0, bcast16(sc[2 * c]));
            isum = dpwssd(isum, p1, bcast16(sc[2 * c + 1]));
        }
        float dx = x->d[i];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(p) * dx), acc);
        macc += f16(p + 2) * dx * (float)mins_dot(scmn, x->s32 + 8 * i);
    }
    return hsum_ps(acc) - macc;
}

KFN_OUT float dot_q5_k(const uint8_t *w, const act_row *x, int K) {
    __m256 acc = _mm256_setzero_ps();
    float macc = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(15), m10 = _mm256_set1_epi8(0x10);
    for (int i = 0; i < K / 256; i++) {
        const uint8_t *p = w + 176 * i;
        const int8_t *xq = x->q + 256 * i;
        __m128i scmn = kq_scales_mins(p + 4);
        uint8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, scmn);
        const __m256i qh = load256(p + 16);
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i raw = load256(p + 48 + 32 * c);
            /* high bit of sub-block j is bit j of qh: move it to bit 4 */
            __m256i h0 = 2 * c <= 4 ? _mm256_slli_epi16(qh, 4 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 4);
            __m256i h1 = 2 * c + 1 <= 4 ? _mm256_slli_epi16(qh, 3 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 3);
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(h0, m10));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_and_si256(h1, m10));
            isum = dpwssd(isum, _mm256_maddubs_epi16(q0, load256(xq + 64 * c)), bcast16(sc[2 * c]));
            isum = dpwssd(isum, _mm256_maddubs_epi16(q1, load256(xq + 64 * c + 32)), bcast16(sc[2 * c + 1]));
        }
        float dx = x->d[i];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(p) * dx), acc);
        macc += f16(p + 2) * dx * (float)mins_dot(scmn, x->s32 + 8 * i);
    }
    return hsum_ps(acc) - macc;
}

KFN_OUT float dot_q6_k(const uint8_t *w, const act_row *x, int K) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    for (int i = 0; i < K / 256; i++) {
        const uint8_t *p = w + 210 * i, *ql = p, *qhp = p + 128;
        const int8_t *sc = (const int8_t *)(p + 192);
        const int8_t *xq = x->q + 256 * i;
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i a0 = load256(ql + 64 * h), a1 = load256(ql + 64 * h + 32), hh = load256(qhp + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(a0, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(a1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a0, 4), m4), _mm256_and_si256(hh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
            for (int j = 0; j < 4; j++) {
                const int g = 8 * h + 2 * j;
                __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
                isum = dpwssd(isum, _mm256_maddubs_epi16(q[j], load256(xq + 128 * h + 32 * j)), s);
            }
        }
        /* values are q - 32: subtract 32 * sum_g sc[g] * s16[g] */
        __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)),
                                        load256(x->s16 + 16 * i));
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(off, 5));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(p + 208) * x->d[i]), acc);
    }
    return hsum_ps(acc);
}

/* ---- tile path: unpacking rows, and 4 rows x 8 tokens ---- */

KFN void store32(uint8_t *p, __m256i v) { _mm256_storeu_si256((__m256i *)p, v); }

/* Rows of the common types unpacked with SIMD; the rest through the scalar unpacker. */
KFN_OUT void unpack_rows(wrows *w, int type_id, const uint8_t *rows, size_t row_stride, int nrows) {
    const int K = w->K, ng = K / w->group;
    const __m256i m4 = _mm256_set1_epi8(15), m10 = _mm256_set1_epi8(0x10), m30 = _mm256_set1_epi8(0x30);
    switch (type_id) {
    case QT_Q4_0: case QT_Q4_1: case QT_Q5_0: case QT_Q5_1: case QT_Q8_0: case QT_Q4_K: case QT_Q5_K: case QT_Q6_K:
    case QT_IQ4_NL: case QT_IQ4_XS:
        break;
    default: wrows_unpack_scalar(w, type_id, rows, row_stride, nrows); return;
    }
    w->wide = type_id == QT_Q8_0 || type_id == QT_IQ4_NL || type_id == QT_IQ4_XS;
    const __m256i iq4_u8 = iq4_table(128);   /* table value + 128: unsigned, offset 128 as Q8_0 */
    for (int r = 0; r < nrows; r++) {
        const uint8_t *row = rows + (size_t)r * row_stride;
        uint8_t *q = w->q + (size_t)r * K;
        float *a = w->a + (size_t)r * ng, *b = w->b + (size_t)r * ng;
        switch (type_id) {
        case QT_Q4_0:
            for (int i = 0; i < K / 32; i++) {
                const uint8_t *p = row + 18 * i;
                store32(q + 32 * i, nibbles16(p + 2));
                a[i] = f16(p);
                b[i] = -8.0f * a[i];
            }
            break;
        case QT_Q4_1:
            for (int i = 0; i < K / 32; i++) {
                const uint8_t *p = row + 20 * i;
                store32(q + 32 * i, nibbles16(p + 4));
                a[i] = f16(p);
                b[i] = f16(p + 2);
            }
            break;
        case QT_Q5_0: case QT_Q5_1: {
            const int q51 = type_id == QT_Q5_1, bytes = q51 ? 24 : 22, hq = q51 ? 4 : 2;
            for (int i = 0; i < K / 32; i++) {
                const uint8_t *p = row + bytes * i;
                uint32_t qh;
                memcpy(&qh, p + hq, 4);
                store32(q + 32 * i, _mm256_or_si256(nibbles16(p + hq + 4), bits_to_0x10(qh)));
                a[i] = f16(p);
                b[i] = q51 ? f16(p + 2) : -16.0f * a[i];
            }
            break;
        }
        case QT_Q8_0:
            for (int i = 0; i < K / 32; i++) {
                const uint8_t *p = row + 34 * i;
                store32(q + 32 * i, _mm256_xor_si256(load256(p + 2), _mm256_set1_epi8((char)0x80)));
                a[i] = f16(p);
                b[i] = -128.0f * a[i];
            }
            break;
        case QT_Q4_K: case QT_Q5_K: {
            const int q5 = type_id == QT_Q5_K, bytes = q5 ? 176 : 144;
            for (int i = 0; i < K / 256; i++) {
                const uint8_t *p = row + (size_t)bytes * i, *qs = p + (q5 ? 48 : 16);
                const __m256i qh = q5 ? load256(p + 16) : _mm256_setzero_si256();
                for (int c = 0; c < 4; c++) {
                    __m256i raw = load256(qs + 32 * c);
                    __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                    if (q5) {
                        __m256i h0 = 2 * c <= 4 ? _mm256_slli_epi16(qh, 4 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 4);
                        __m256i h1 = 2 * c + 1 <= 4 ? _mm256_slli_epi16(qh, 3 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 3);
                        lo = _mm256_or_si256(lo, _mm256_and_si256(h0, m10));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(h1, m10));
                    }
                    store32(q + 256 * i + 64 * c, lo);
                    store32(q + 256 * i + 64 * c + 32, hi);
                }
                const __m128i sm = kq_scales_mins(p + 4);   /* 8 scales, then 8 mins */
                const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm));
                const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)));
                _mm256_storeu_ps(a + 8 * i, _mm256_mul_ps(_mm256_set1_ps(f16(p)), sc));
                _mm256_storeu_ps(b + 8 * i, _mm256_mul_ps(_mm256_set1_ps(-f16(p + 2)), mn));
            }
            break;
        }
        case QT_IQ4_NL:
            for (int i = 0; i < K / 32; i++) {
                const uint8_t *p = row + 18 * i;
                store32(q + 32 * i, _mm256_shuffle_epi8(iq4_u8, nibbles16(p + 2)));
                a[i] = f16(p);
                b[i] = -128.0f * a[i];
            }
            break;
        case QT_IQ4_XS:
            for (int i = 0; i < K / 256; i++) {
                const uint8_t *p = row + 136 * i;
                const float d = f16(p);
                for (int j = 0; j < 8; j++) {
                    store32(q + 256 * i + 32 * j, _mm256_shuffle_epi8(iq4_u8, nibbles16(p + 8 + 16 * j)));
                    a[8 * i + j] = d * (float)iq4xs_scale(p, j);
                    b[8 * i + j] = -128.0f * a[8 * i + j];
                }
            }
            break;
        case QT_Q6_K:
            for (int i = 0; i < K / 256; i++) {
                const uint8_t *p = row + 210 * i, *ql = p, *qhp = p + 128;
                const int8_t *sc = (const int8_t *)(p + 192);
                for (int h = 0; h < 2; h++) {
                    __m256i a0 = load256(ql + 64 * h), a1 = load256(ql + 64 * h + 32), hh = load256(qhp + 32 * h);
                    uint8_t *o = q + 256 * i + 128 * h;
                    store32(o, _mm256_or_si256(_mm256_and_si256(a0, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 4), m30)));
                    store32(o + 32, _mm256_or_si256(_mm256_and_si256(a1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30)));
                    store32(o + 64, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a0, 4), m4), _mm256_and_si256(hh, m30)));
                    store32(o + 96, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a1, 4), m4),
                                                    _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30)));
                }
                const __m256 d = _mm256_set1_ps(f16(p + 208)), m32 = _mm256_set1_ps(-32.0f);
                for (int h = 0; h < 2; h++) {
                    const __m256 ah = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 8 * h)))));
                    _mm256_storeu_ps(a + 16 * i + 8 * h, ah);
                    _mm256_storeu_ps(b + 16 * i + 8 * h, _mm256_mul_ps(m32, ah));
                }
            }
            break;
        }
    }
}

#ifndef KNO_TILE
/* Rows r0 .. r0+NR of w against the 8 tokens of one tile; lanes are tokens. */
KFN void tile_rows8(const wrows *w, int r0, const int NR, const act_tiles *x, int tile, float *out, size_t ldo,
                    const int OFFSET, const int WIDE) {
    const int K = w->K, G = w->group, ng = K / G, steps = G / 4;
    const int8_t *xq = x->q + (size_t)tile * 8 * K;
    const float *xd = x->d + (size_t)tile * 8 * (K / 32);
    const int32_t *xo = x->off + (size_t)tile * 8 * ng;
    const float *xs = x->ds + (size_t)tile * 8 * ng;
    const uint8_t *wq[4];
    const float *wa[4], *wb[4];
    __m256 acc[4];
    for (int r = 0; r < NR; r++) {
        wq[r] = w->q + (size_t)(r0 + r) * K;
        wa[r] = w->a + (size_t)(r0 + r) * ng;
        wb[r] = w->b + (size_t)(r0 + r) * ng;
        acc[r] = _mm256_setzero_ps();
    }
    for (int g = 0; g < ng; g++) {
        __m256i ia[4];
        for (int r = 0; r < NR; r++) ia[r] = OFFSET ? load256(xo + 8 * g) : _mm256_setzero_si256();
        for (int j = 0; j < steps; j++) {
            const int k = g * G + 4 * j;
            __m256i xv = load256(xq + (size_t)k * 8);
            for (int r = 0; r < NR; r++) {
                int32_t wv;
                memcpy(&wv, wq[r] + k, 4);
                ia[r] = WIDE ? dpbusd_wide(ia[r], _mm256_set1_epi32(wv), xv) : dpbusd(ia[r], _mm256_set1_epi32(wv), xv);
            }
        }
        const __m256 dx = _mm256_loadu_ps(xd + 8 * (g * G / 32));
        if (OFFSET) {
            for (int r = 0; r < NR; r++)
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[r]), _mm256_mul_ps(_mm256_set1_ps(wa[r][g]), dx), acc[r]);
        } else {
            const __m256 ds = _mm256_loadu_ps(xs + 8 * g);
            for (int r = 0; r < NR; r++) {
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[r]), _mm256_mul_ps(_mm256_set1_ps(wa[r][g]), dx), acc[r]);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wb[r][g]), ds, acc[r]);
            }
        }
    }
    const int nt = x->T - tile * 8 < 8 ? x->T - tile * 8 : 8;
    for (int r = 0; r < NR; r++) {
        float v[8];
        _mm256_storeu_ps(v, acc[r]);
        for (int t = 0; t < nt; t++) out[(size_t)(tile * 8 + t) * ldo + r0 + r] = v[t];
    }
}

#define TILE_CASE(nr) \
    case nr: \
        if (offset_type) { if (w->wide) tile_rows8(w, r0, nr, x, tile, out, ldo, 1, 1); \
                           else tile_rows8(w, r0, nr, x, tile, out, ldo, 1, 0); } \
        else tile_rows8(w, r0, nr, x, tile, out, ldo, 0, 0); \
        break;

KFN_OUT void tile_gemm(const wrows *w, int r0, int nr, const act_tiles *x, int tile, float *out, size_t ldo,
                       int offset_type) {
    switch (nr) { TILE_CASE(4) TILE_CASE(3) TILE_CASE(2) TILE_CASE(1) default: break; }
}
#undef TILE_CASE
#define KTILE_GEMM tile_gemm
#define KTILE_TOK 8
#define KTILE_ROWS 4
#endif

#ifndef KNO_SET
const kernel_set KSET = {
    .name = KNAME,
    .quantize_row = quantize_row,
    .row_dot = {[QT_Q4_0] = dot_q4_0, [QT_Q4_1] = dot_q4_1, [QT_Q5_0] = dot_q5_0, [QT_Q5_1] = dot_q5_1,
                [QT_Q8_0] = dot_q8_0, [QT_Q4_K] = dot_q4_k, [QT_Q5_K] = dot_q5_k, [QT_Q6_K] = dot_q6_k,
                [QT_IQ4_NL] = dot_iq4_nl, [QT_IQ4_XS] = dot_iq4_xs},
    .row_dot_blk = {[QT_Q4_0] = 32, [QT_Q4_1] = 32, [QT_Q5_0] = 32, [QT_Q5_1] = 32, [QT_Q8_0] = 32,
                    [QT_Q4_K] = 256, [QT_Q5_K] = 256, [QT_Q6_K] = 256, [QT_IQ4_NL] = 32, [QT_IQ4_XS] = 32},
    .tok = KTILE_TOK,
    .rows = KTILE_ROWS,
    .unpack = unpack_rows,
    .tile_gemm = KTILE_GEMM,
};
#endif
