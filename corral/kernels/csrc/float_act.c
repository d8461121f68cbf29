/* Quantized weights against float32 activations (float_act.h). */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "float_act.h"
#include "work_shares.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FA_X86 1
#define Z_TARGET "avx512f,avx512bw,avx512vl,fma,f16c"
#endif

/* Most tokens for which AVX-512 makes Q4_0/Q4_1/Q8_0 block values in registers, with no buffer. */
#define FA_FUSED_MAX_T 3

/* How far ahead (bytes, into L2) the few-token path fetches rows stored back to back. Without it
 * the L1 prefetch 4 blocks ahead left SmolLM2's decode step latency-bound: 8.4 ms a step on two
 * threads (14.4 on one), 5.7-5.8 ms at 8192 (10.5), 6.0-6.5 at 4096, 6.7 at 16384 (AMD Zen 4). */
#ifndef FA_PF_FAR
#define FA_PF_FAR 8192
#endif

/* Below this many weight bytes in one call, a second thread costs more to wake than it saves. */
#define FA_PARALLEL_MIN_BYTES (96 * 1024)

/* Units of work: a multiple of FA_ROWS rows, of about equal bytes in all the call's weights, at
 * most FA_CHUNK_BYTES and at least FA_UNITS_PER_THREAD units per thread, shared out as
 * work_shares.h says. Each row's arithmetic does not depend on the unit it falls in, so results
 * are the same however units are shared out. */
#define FA_CHUNK_BYTES 32768
#define FA_UNITS_PER_THREAD 4
#define FA_MAX_THREADS WS_MAX_THREADS

/* Rows of a unit of job j: about unit_bytes of its rows, a multiple of FA_ROWS. */
static int fa_unit_rows(const qm_weight *j, size_t unit_bytes) {
    const int rows = (int)(unit_bytes / (j->row_stride ? j->row_stride : 1));
    return rows < FA_ROWS ? FA_ROWS : rows / FA_ROWS * FA_ROWS;
}

static int fa_units(const qm_weight *j, size_t unit_bytes) {
    const int rows = fa_unit_rows(j, unit_bytes);
    return (j->N + rows - 1) / rows;
}

static float *alloc_floats(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float) + 64) != 0) return NULL;
    return (float *)p;
}

/* ---- portable: the exact block values, then a float dot in 16 lanes ------------------------- */

/* Offset types (value = a * (q - offset)) come from `unpack` with b unset; the others with
 * value = a * q + b. */
static void dequant_tile_plain(const wrows *w, int nr, int offset, float *buf) {
    const int K = w->K, G = w->group, ng = K / G;
    for (int r = 0; r < nr; r++) {
        const uint8_t *q = w->q + (size_t)r * K;
        const float *a = w->a + (size_t)r * ng, *b = w->b + (size_t)r * ng;
        float *o = buf + (size_t)r * K;
        for (int k = 0; k < K; k++)
            o[k] = offset ? a[k / G] * (float)((int)q[k] - offset) : a[k / G] * (float)q[k] + b[k / G];
    }
}

/* 16 lanes summed pairwise at the end: the same order for every (row, token). */
static float dot_plain(const float *w, const float *x, int K) {
    float lane[16] = {0};
    for (int k = 0; k < K; k += 16)
        for (int l = 0; l < 16; l++) lane[l] += w[k + l] * x[k + l];
    for (int width = 8; width >= 1; width /= 2)
        for (int l = 0; l < width; l++) lane[l] += lane[l + width];
    return lane[0];
}

static void dot_tile_plain(const float *buf, int nr, int K, const float *x, int T, float *out, size_t ldo) {
    for (int t = 0; t < T; t++)
        for (int r = 0; r < nr; r++) out[(size_t)t * ldo + r] = dot_plain(buf + (size_t)r * K, x + (size_t)t * K, K);
}

#ifdef FA_X86
/* ---- AVX-512: 16 values per register, 4 rows x 4 tokens of accumulators ---------------------- */

static __attribute__((target(Z_TARGET))) void dequant_tile_z(const wrows *w, int nr, int offset, float *buf) {
    const int K = w->K, G = w->group, ng = K / G;
    for (int r = 0; r < nr; r++) {
        const uint8_t *q = w->q + (size_t)r * K;
        const float *a = w->a + (size_t)r * ng, *b = w->b + (size_t)r * ng;
        float *o = buf + (size_t)r * K;
        for (int g = 0; g < ng; g++) {
            /* Offsets are powers of two, so a * offset is exact and fma(a, q, -a * offset) rounds
             * a * (q - offset) once, as the portable path does. */
            const __m512 va = _mm512_set1_ps(a[g]), vb = _mm512_set1_ps(offset ? -a[g] * (float)offset : b[g]);
            for (int k = g * G; k < (g + 1) * G; k += 16) {
                const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + k))));
                _mm512_store_ps(o + k, _mm512_fmadd_ps(va, qf, vb));
            }
        }
    }
}

/* The 16 lanes summed pairwise (as dot_plain does, so every level that reaches here agrees). */
static inline __attribute__((target(Z_TARGET), always_inline)) float hsum_z(__m512 v) {
    const __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    const __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
    return _mm_cvtss_f32(h1);
}

/* acc[r][t] = fma(w_r[k], x_t[k], acc[r][t]) for k ascending, 16 lanes at a time: the same
 * operations for a (row, token) whether it is computed in a 4 x 4 block or alone. */
static __attribute__((target(Z_TARGET))) void dot_tile_z(const float *buf, int nr, int K, const float *x, int T,
                                                         float *out, size_t ldo) {
    int t = 0;
    if (nr == 4) {
        const float *w0 = buf, *w1 = buf + K, *w2 = buf + 2 * (size_t)K, *w3 = buf + 3 * (size_t)K;
        for (; t + 4 <= T; t += 4) {
            const float *x0 = x + (size_t)t * K, *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
                   a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            for (int k = 0; k < K; k += 16) {
                const __m512 v0 = _mm512_load_ps(w0 + k), v1 = _mm512_load_ps(w1 + k);
                const __m512 v2 = _mm512_load_ps(w2 + k), v3 = _mm512_load_ps(w3 + k);
                __m512 u = _mm512_loadu_ps(x0 + k);
                a00 = _mm512_fmadd_ps(v0, u, a00); a10 = _mm512_fmadd_ps(v1, u, a10);
                a20 = _mm512_fmadd_ps(v2, u, a20); a30 = _mm512_fmadd_ps(v3, u, a30);
                u = _mm512_loadu_ps(x1 + k);
                a01 = _mm512_fmadd_ps(v0, u, a01); a11 = _mm512_fmadd_ps(v1, u, a11);
                a21 = _mm512_fmadd_ps(v2, u, a21); a31 = _mm512_fmadd_ps(v3, u, a31);
                u = _mm512_loadu_ps(x2 + k);
                a02 = _mm512_fmadd_ps(v0, u, a02); a12 = _mm512_fmadd_ps(v1, u, a12);
                a22 = _mm512_fmadd_ps(v2, u, a22); a32 = _mm512_fmadd_ps(v3, u, a32);
                u = _mm512_loadu_ps(x3 + k);
                a03 = _mm512_fmadd_ps(v0, u, a03); a13 = _mm512_fmadd_ps(v1, u, a13);
                a23 = _mm512_fmadd_ps(v2, u, a23); a33 = _mm512_fmadd_ps(v3, u, a33);
            }
            float *o = out + (size_t)t * ldo;
            o[0] = hsum_z(a00); o[1] = hsum_z(a10); o[2] = hsum_z(a20); o[3] = hsum_z(a30); o += ldo;
            o[0] = hsum_z(a01); o[1] = hsum_z(a11); o[2] = hsum_z(a21); o[3] = hsum_z(a31); o += ldo;
            o[0] = hsum_z(a02); o[1] = hsum_z(a12); o[2] = hsum_z(a22); o[3] = hsum_z(a32); o += ldo;
            o[0] = hsum_z(a03); o[1] = hsum_z(a13); o[2] = hsum_z(a23); o[3] = hsum_z(a33);
        }
        for (; t < T; t++) {
            const float *x0 = x + (size_t)t * K;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < K; k += 16) {
                const __m512 u = _mm512_loadu_ps(x0 + k);
                a0 = _mm512_fmadd_ps(_mm512_load_ps(w0 + k), u, a0);
                a1 = _mm512_fmadd_ps(_mm512_load_ps(w1 + k), u, a1);
                a2 = _mm512_fmadd_ps(_mm512_load_ps(w2 + k), u, a2);
                a3 = _mm512_fmadd_ps(_mm512_load_ps(w3 + k), u, a3);
            }
            float *o = out + (size_t)t * ldo;
            o[0] = hsum_z(a0); o[1] = hsum_z(a1); o[2] = hsum_z(a2); o[3] = hsum_z(a3);
        }
        return;
    }
    for (; t < T; t++)
        for (int r = 0; r < nr; r++) {
            const float *wr = buf + (size_t)r * K, *x0 = x + (size_t)t * K;
            __m512 acc = _mm512_setzero_ps();
            for (int k = 0; k < K; k += 16) acc = _mm512_fmadd_ps(_mm512_load_ps(wr + k), _mm512_loadu_ps(x0 + k), acc);
            out[(size_t)t * ldo + r] = hsum_z(acc);
        }
}

/* Few tokens of Q4_0, Q4_1 and Q8_0: the block values are made in registers, as dequant_tile_z
 * makes them (fma(d, q, b) with b = -offset * d or Q4_1's m), and met by the tokens straight away,
 * no buffer between. Each (row, token) sum takes the operations of dot_tile_z in its order, so a
 * token gets the same result here as in a larger call. */
static inline __attribute__((target(Z_TARGET), always_inline)) float f16_z(const uint8_t *p) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)(p[0] | (p[1] << 8)))));
}

/* The 32 values of one block as two registers (values 0-15, 16-31). */
static inline __attribute__((target(Z_TARGET), always_inline)) void
block_values_z(int type_id, const uint8_t *blk, __m512 *lo, __m512 *hi) {
    if (type_id == QT_Q8_0) {
        /* d q rounded once: what fma(d, q + 128, -128 d) of the tiles gives (the same real number) */
        const __m512 d = _mm512_set1_ps(f16_z(blk));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2)), q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
        *lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)));
        *hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)));
        return;
    }
    /* The 16 values a nibble can stand for, fma(d, q, b) for q = 0..15 (one fma a block), then
     * each value looked up by its nibble (vpermps): the same floats as converting and scaling
     * every nibble, with 2 permutes in place of 2 conversions and 2 fmas. */
    __m512 d, b;
    if (type_id == QT_Q4_1) {  /* d and m, two f16 side by side: one conversion for both */
        int dm;
        memcpy(&dm, blk, 4);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(dm));
        d = _mm512_broadcastss_ps(f);
        b = _mm512_broadcastss_ps(_mm_movehdup_ps(f));
    } else {
        const float df = f16_z(blk);
        d = _mm512_set1_ps(df);
        b = _mm512_set1_ps(-8.0f * df);
    }
    const __m512 table = _mm512_fmadd_ps(d, _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), b);
    const __m128i v = _mm_loadu_si128((const __m128i *)(blk + (type_id == QT_Q4_0 ? 2 : 4)));
    const __m512i all = _mm512_cvtepu8_epi32(v);  /* vpermps reads the low 4 bits of each index */
    *lo = _mm512_permutexvar_ps(all, table);
    *hi = _mm512_permutexvar_ps(_mm512_srli_epi32(all, 4), table);
}

/* Rows [0, nr) of a weight starting at w as floats in buf (nr, K), straight from their blocks. */
static __attribute__((target(Z_TARGET))) void block_tile_z(int type_id, const uint8_t *w, size_t stride, int nr,
                                                           int K, float *buf) {
    const int nb = K / 32, bytes = qtype_get(type_id)->bytes;
    for (int r = 0; r < nr; r++)
        for (int bi = 0; bi < nb; bi++) {
            __m512 lo, hi;
            block_values_z(type_id, w + r * stride + (size_t)bi * bytes, &lo, &hi);
            _mm512_store_ps(buf + (size_t)r * K + 32 * bi, lo);
            _mm512_store_ps(buf + (size_t)r * K + 32 * bi + 16, hi);
        }
}

static int fused_type(int type_id) { return type_id == QT_Q4_0 || type_id == QT_Q4_1 || type_id == QT_Q8_0; }

/* Rows [0, nr) (nr <= 4) of a weight starting at w, against T <= FA_FUSED_MAX_T tokens. */
static __attribute__((target(Z_TARGET))) void fused_rows_z(int type_id, const uint8_t *w, size_t stride, int nr,
                                                           int K, const float *x, int T, float *out, size_t ldo) {
    const int nb = K / 32, bytes = qtype_get(type_id)->bytes;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * K;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        if (nr == 4) {
            /* rows stored back to back: the 4 rows are one region read at 4 blocks a step; fetch
             * it into L2 FA_PF_FAR bytes ahead as well (the next groups, in address order) */
            const int contiguous = t == 0 && stride == (size_t)nb * bytes;
            for (int bi = 0; bi < nb; bi++) {
                const __m512 u0 = _mm512_loadu_ps(xt + 32 * bi), u1 = _mm512_loadu_ps(xt + 32 * bi + 16);
                const uint8_t *p = w + (size_t)bi * bytes;
                if (contiguous)
                    for (int o = 0; o < 4 * bytes; o += 64)
                        _mm_prefetch((const char *)w + FA_PF_FAR + 4 * (size_t)bi * bytes + o, _MM_HINT_T1);
                if (bi + 4 < nb) {
                    _mm_prefetch((const char *)(p + 4 * bytes), _MM_HINT_T0);
                    _mm_prefetch((const char *)(p + stride + 4 * bytes), _MM_HINT_T0);
                    _mm_prefetch((const char *)(p + 2 * stride + 4 * bytes), _MM_HINT_T0);
                    _mm_prefetch((const char *)(p + 3 * stride + 4 * bytes), _MM_HINT_T0);
                }
                __m512 lo, hi;
                block_values_z(type_id, p, &lo, &hi);
                acc[0] = _mm512_fmadd_ps(hi, u1, _mm512_fmadd_ps(lo, u0, acc[0]));
                block_values_z(type_id, p + stride, &lo, &hi);
                acc[1] = _mm512_fmadd_ps(hi, u1, _mm512_fmadd_ps(lo, u0, acc[1]));
                block_values_z(type_id, p + 2 * stride, &lo, &hi);
                acc[2] = _mm512_fmadd_ps(hi, u1, _mm512_fmadd_ps(lo, u0, acc[2]));
                block_values_z(type_id, p + 3 * stride, &lo, &hi);
                acc[3] = _mm512_fmadd_ps(hi, u1, _mm512_fmadd_ps(lo, u0, acc[3]));
            }
        } else {
            for (int r = 0; r < nr; r++)
                for (int bi = 0; bi < nb; bi++) {
                    __m512 lo, hi;
                    block_values_z(type_id, w + r * stride + (size_t)bi * bytes, &lo, &hi);
                    acc[r] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xt + 32 * bi + 16),
                                             _mm512_fmadd_ps(lo, _mm512_loadu_ps(xt + 32 * bi), acc[r]));
                }
        }
        for (int r = 0; r < nr; r++) out[(size_t)t * ldo + r] = hsum_z(acc[r]);
    }
}
#endif

/* Rows [n0, n1) of one weight against all T tokens, FA_ROWS rows at a time. */
static void run_rows(const kernel_set *ks, int level, const qm_weight *j, int K, const float *x, int T,
                     wrows *wr, float *buf, int n0, int n1) {
    const int offset = qtype_get(j->type_id)->offset;
    for (int r0 = n0; r0 < n1; r0 += FA_ROWS) {
        const int nr = n1 - r0 < FA_ROWS ? n1 - r0 : FA_ROWS;
#ifdef FA_X86
        if (level == ISA_AVX512 && T <= FA_FUSED_MAX_T && fused_type(j->type_id)) {
            fused_rows_z(j->type_id, j->w + (size_t)r0 * j->row_stride, j->row_stride, nr, K, x, T, j->out + r0,
                         (size_t)j->N);
            continue;
        }
        if (level == ISA_AVX512 && fused_type(j->type_id)) {
            block_tile_z(j->type_id, j->w + (size_t)r0 * j->row_stride, j->row_stride, nr, K, buf);
            dot_tile_z(buf, nr, K, x, T, j->out + r0, (size_t)j->N);
            continue;
        }
#endif
        ks->unpack(wr, j->type_id, j->w + (size_t)r0 * j->row_stride, j->row_stride, nr);
        float *out = j->out + r0;
#ifdef FA_X86
        if (level == ISA_AVX512) {
            dequant_tile_z(wr, nr, offset, buf);
            dot_tile_z(buf, nr, K, x, T, out, (size_t)j->N);
            continue;
        }
#endif
        (void)level;
        dequant_tile_plain(wr, nr, offset, buf);
        dot_tile_plain(buf, nr, K, x, T, out, (size_t)j->N);
    }
}

int qmatmul_float_run(int level, const qm_weight *jobs, int njobs, int K, const float *x, int T, int nthreads) {
    if (K <= 0 || T < 0 || njobs < 0) return QM_ESHAPE;
    size_t bytes = 0;
    int all_fused = 1;
    for (int i = 0; i < njobs; i++) {
        const qtype_info *ti = qtype_get(jobs[i].type_id);
        if (!ti || jobs[i].type_id == QT_Q4_0_X16) return QM_ETYPE;
        if (K % ti->block != 0 || jobs[i].N < 0 || jobs[i].row_stride < (size_t)(K / ti->block) * ti->bytes)
            return QM_ESHAPE;
        bytes += (size_t)jobs[i].N * jobs[i].row_stride;
#ifdef FA_X86
        all_fused &= level == ISA_AVX512 && fused_type(jobs[i].type_id);
#else
        all_fused = 0;
#endif
    }
    if (T == 0 || njobs == 0) return QM_OK;
    /* Scratch only where a path needs it: none for few tokens of the types made in registers. */
    const int need_buf = !(all_fused && T <= FA_FUSED_MAX_T), need_unpack = !all_fused;
    const kernel_set *ks = kernels_for_level(level);
    int failed = 0, nunits = 0;
    const int threads = bytes >= FA_PARALLEL_MIN_BYTES ? (nthreads < FA_MAX_THREADS ? nthreads : FA_MAX_THREADS) : 1;
    /* Units of about equal bytes in every job, so that equal numbers of them are equal work. */
    size_t unit_bytes = bytes / ((size_t)FA_UNITS_PER_THREAD * threads);
    if (unit_bytes > FA_CHUNK_BYTES) unit_bytes = FA_CHUNK_BYTES;
    for (int i = 0; i < njobs; i++) nunits += fa_units(&jobs[i], unit_bytes);
    /* Shares for the threads asked for: those of a thread that does not come (a smaller team, or a
     * failed allocation) are taken over by the others. */
    ws_share shares[FA_MAX_THREADS];
    ws_split(shares, threads, nunits);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        /* One unpack buffer per group size in use: wrows' a and b are sized by K / group. */
        wrows w16 = {0}, w32 = {0};
        float *buf = need_buf ? alloc_floats((size_t)FA_ROWS * K) : NULL;
        int ok = !need_buf || buf != NULL;
        if (ok && need_unpack) {
            ok = wrows_alloc(&w16, K, 16, FA_ROWS) == 0;
            if (ok && wrows_alloc(&w32, K, 32, FA_ROWS) != 0) { wrows_free(&w16); ok = 0; }
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        } else {
            int me = 0;
#ifdef _OPENMP
            me = omp_get_thread_num();
#endif
            for (int u; (u = ws_claim(shares, me, threads)) >= 0;) {
                int i = 0;
                while (u >= fa_units(&jobs[i], unit_bytes)) u -= fa_units(&jobs[i++], unit_bytes);
                const qm_weight *j = &jobs[i];
                const int rows = fa_unit_rows(j, unit_bytes);
                const int lo = u * rows, hi = lo + rows < j->N ? lo + rows : j->N;
                wrows *wr = qtype_get(j->type_id)->group == 32 ? &w32 : &w16;
                run_rows(ks, level, j, K, x, T, wr, buf, lo, hi);
            }
            if (need_unpack) {
                wrows_free(&w16);
                wrows_free(&w32);
            }
        }
        free(buf);
    }
    return failed ? QM_ENOMEM : QM_OK;
}
