/* Small fused float32 ops (ops.h): scalar code for any CPU, AVX2 and AVX-512 versions picked at
 * run time by the same ISA levels as the matmul kernels. */
#include <math.h>
#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch.h"
#include "exp_cephes.h"
#include "ops.h"
#include "qtypes.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define OPS_X86 1
#include <immintrin.h>
#endif

/* Below this many floats a call stays on the calling thread: waking others costs more, and each
 * parallel region can stall a whole timeslice when another process holds a core. */
#define OPS_PARALLEL_MIN (1 << 18)
/* An exp per value: SiLU counts as this many floats of the other ops' work (16 sequences of a
 * 4864-wide MLP, 78k values, split across 2 threads: 34 -> 23 us). */
#define SILU_WORK 8

typedef struct {
    float (*sumsq)(const float *x, int n);               /* sum of x^2 */
    float (*add_sumsq)(float *r, const float *x, int n); /* r += x; sum of r^2 */
    void (*scale_mul)(const float *x, float s, const float *w, float *out, int n); /* out = x s w */
    void (*add)(float *x, const float *b, int n);        /* x += b */
    void (*rope)(float *x, const float *cos, const float *sin, int half);
    /* out = act(g) u, act SiLU, or with `gelu` GELU's tanh form: x sigmoid(GELU_K0 x + GELU_K1 x^3) */
    void (*act_mul)(const float *g, const float *u, long long n, float *out, int gelu);
    long long (*argmax)(const float *x, long long n);      /* first maximum; the first NaN if any */
} ops_set;

/* ---- scalar ---------------------------------------------------------------------------------- */

static float sumsq_scalar(const float *x, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j] * x[i + j];
    float s = 0;
    for (; i < n; i++) s += x[i] * x[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

static float add_sumsq_scalar(float *r, const float *x, int n) {
    for (int i = 0; i < n; i++) r[i] += x[i];
    return sumsq_scalar(r, n);
}

static void scale_mul_scalar(const float *x, float s, const float *w, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

static void add_scalar(float *x, const float *b, int n) {
    for (int i = 0; i < n; i++) x[i] += b[i];
}

/* Pairs (x[i], x[i + half]) for i in [from, half). */
static void rope_pairs(float *x, const float *c, const float *s, int half, int from) {
    for (int i = from; i < half; i++) {
        const float a = x[i], b = x[i + half];
        x[i] = a * c[i] - b * s[i];
        x[i + half] = b * c[i + half] + a * s[i + half];
    }
}

static void rope_scalar(float *x, const float *c, const float *s, int half) { rope_pairs(x, c, s, half, 0); }

/* 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)), u = sqrt(2 / pi) (x + 0.044715 x^3): GELU's tanh form
 * is SiLU of 2u / x times x, e^(-2u) = e^(-(GELU_K0 x + GELU_K1 x^3)). */
#define GELU_K0 1.5957691216057308f  /* 2 sqrt(2 / pi) */
#define GELU_K1 0.0713548162726009f  /* 2 sqrt(2 / pi) 0.044715 */

static void act_mul_scalar(const float *g, const float *u, long long n, float *out, int gelu) {
    for (long long i = 0; i < n; i++) {
        const float v = g[i], a = gelu ? v * (GELU_K0 + GELU_K1 * v * v) : v;
        out[i] = v / (1.0f + expf(-a)) * u[i];
    }
}

static long long argmax_scalar(const float *x, long long n) {
    long long best = 0;
    float m = x[0];
    if (m != m) return 0;
    for (long long i = 1; i < n; i++) {
        const float v = x[i];
        if (v != v) return i;
        if (v > m) {
            m = v;
            best = i;
        }
    }
    return best;
}

static const ops_set OPS_SCALAR = {sumsq_scalar, add_sumsq_scalar, scale_mul_scalar, add_scalar, rope_scalar,
                                   act_mul_scalar, argmax_scalar};

#ifdef OPS_X86

/* exp(x) as Cephes' expf (exp_cephes.h).
 * x is clamped to [-87, 88] (2^n stays a normal float), which only matters for SiLU's far tails. */
#define SILU_EXP_LO -87.0f
#define SILU_EXP_HI 88.0f

/* ---- AVX2 + FMA ------------------------------------------------------------------------------ */

#define Y_TARGET "avx2,fma"

__attribute__((target(Y_TARGET))) static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target(Y_TARGET))) static float sumsq_avx2(const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * x[i];
    return s;
}

__attribute__((target(Y_TARGET))) static float add_sumsq_avx2(float *r, const float *x, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_add_ps(_mm256_loadu_ps(r + i), _mm256_loadu_ps(x + i));
        _mm256_storeu_ps(r + i, v);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float s = hsum256(acc);
    for (; i < n; i++) {
        r[i] += x[i];
        s += r[i] * r[i];
    }
    return s;
}

__attribute__((target(Y_TARGET))) static void scale_mul_avx2(const float *x, float s, const float *w, float *out,
                                                             int n) {
    const __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = x[i] * s * w[i];
}

__attribute__((target(Y_TARGET))) static void add_avx2(float *x, const float *b, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) x[i] += b[i];
}

__attribute__((target(Y_TARGET))) static void rope_avx2(float *x, const float *c, const float *s, int half) {
    int i = 0;
    for (; i + 8 <= half; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + half);
        const __m256 lo = _mm256_sub_ps(_mm256_mul_ps(a, _mm256_loadu_ps(c + i)), _mm256_mul_ps(b, _mm256_loadu_ps(s + i)));
        const __m256 hi = _mm256_add_ps(_mm256_mul_ps(b, _mm256_loadu_ps(c + i + half)),
                                        _mm256_mul_ps(a, _mm256_loadu_ps(s + i + half)));
        _mm256_storeu_ps(x + i, lo);
        _mm256_storeu_ps(x + i + half, hi);
    }
    rope_pairs(x, c, s, half, i);
}

__attribute__((target(Y_TARGET))) static inline __m256 exp_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(SILU_EXP_LO)), _mm256_set1_ps(SILU_EXP_HI));
    __m256 n, r;
    const __m256 p = exp_cephes_poly8(x, &n, &r);
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target(Y_TARGET))) static void act_mul_avx2(const float *g, const float *u, long long n, float *out,
                                                           int gelu) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 k0 = _mm256_set1_ps(GELU_K0), k1 = _mm256_set1_ps(GELU_K1);
    long long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(g + i);
        const __m256 a = gelu ? _mm256_mul_ps(v, _mm256_add_ps(k0, _mm256_mul_ps(k1, _mm256_mul_ps(v, v)))) : v;
        const __m256 e = exp_avx2(_mm256_sub_ps(zero, a));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(v, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    act_mul_scalar(g + i, u + i, n - i, out + i, gelu);
}

static const ops_set OPS_AVX2 = {sumsq_avx2, add_sumsq_avx2, scale_mul_avx2, add_avx2, rope_avx2, act_mul_avx2,
                                 argmax_scalar};

/* ---- AVX-512F: the same with 16 lanes; tails are masked, not scalar ------------------------- */

#define Z_TARGET "avx512f"

static inline __mmask16 tail_mask(int left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

__attribute__((target(Z_TARGET))) static float sumsq_avx512(const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
    }
    for (; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        a0 = _mm512_fmadd_ps(v, v, a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

__attribute__((target(Z_TARGET))) static float add_sumsq_avx512(float *r, const float *x, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, r + i), _mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(r + i, m, v);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

__attribute__((target(Z_TARGET))) static void scale_mul_avx512(const float *x, float s, const float *w, float *out,
                                                               int n) {
    const __m512 vs = _mm512_set1_ps(s);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs), _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

__attribute__((target(Z_TARGET))) static void add_avx512(float *x, const float *b, int n) {
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, b + i)));
    }
}

__attribute__((target(Z_TARGET))) static void rope_avx512(float *x, const float *c, const float *s, int half) {
    for (int i = 0; i < half; i += 16) {
        const __mmask16 m = tail_mask(half - i);
        const __m512 a = _mm512_maskz_loadu_ps(m, x + i), b = _mm512_maskz_loadu_ps(m, x + i + half);
        const __m512 lo = _mm512_sub_ps(_mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, c + i)),
                                        _mm512_mul_ps(b, _mm512_maskz_loadu_ps(m, s + i)));
        const __m512 hi = _mm512_add_ps(_mm512_mul_ps(b, _mm512_maskz_loadu_ps(m, c + i + half)),
                                        _mm512_mul_ps(a, _mm512_maskz_loadu_ps(m, s + i + half)));
        _mm512_mask_storeu_ps(x + i, m, lo);
        _mm512_mask_storeu_ps(x + i + half, m, hi);
    }
}

__attribute__((target(Z_TARGET))) static inline __m512 exp_avx512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(SILU_EXP_LO)), _mm512_set1_ps(SILU_EXP_HI));
    __m512 n, r;
    const __m512 p = exp_cephes_poly16(x, &n, &r);
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

__attribute__((target(Z_TARGET))) static void act_mul_avx512(const float *g, const float *u, long long n, float *out,
                                                             int gelu) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    const __m512 k0 = _mm512_set1_ps(GELU_K0), k1 = _mm512_set1_ps(GELU_K1);
    for (long long i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i < 16 ? (int)(n - i) : 16);
        const __m512 v = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 a = gelu ? _mm512_mul_ps(v, _mm512_add_ps(k0, _mm512_mul_ps(k1, _mm512_mul_ps(v, v)))) : v;
        const __m512 d = _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(zero, a)));
        /* 1 / d: the 14-bit estimate and one Newton step instead of a division (78k values on
         * one thread: 38 -> 34 us; still within 1e-6 of float64) */
        __m512 r = _mm512_rcp14_ps(d);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(v, r), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

/* Two passes: the maximum (four independent chains, and one NaN test per two vectors), then the
 * first position holding it, from L2. A NaN anywhere hands the row to the scalar loop, which
 * returns the first one. */
__attribute__((target(Z_TARGET))) static long long argmax_avx512(const float *x, long long n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    __mmask16 nan = 0;
    long long i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        const __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
        nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v2, v3, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, v0);
        m1 = _mm512_max_ps(m1, v1);
        m2 = _mm512_max_ps(m2, v2);
        m3 = _mm512_max_ps(m3, v3);
    }
    for (; i < n; i += 16) {
        const __mmask16 t = tail_mask(n - i < 16 ? (int)(n - i) : 16);
        const __m512 v = _mm512_mask_loadu_ps(ninf, t, x + i);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, v);
    }
    if (nan) return argmax_scalar(x, n);
    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3))));
    for (i = 0; i < n; i += 16) {
        const __mmask16 t = tail_mask(n - i < 16 ? (int)(n - i) : 16);
        const __mmask16 eq = _mm512_mask_cmp_ps_mask(t, _mm512_maskz_loadu_ps(t, x + i), top, _CMP_EQ_OQ);
        if (eq) return i + __builtin_ctz(eq);
    }
    return 0;   /* not reached: the maximum is one of the values */
}

static const ops_set OPS_AVX512 = {sumsq_avx512, add_sumsq_avx512, scale_mul_avx512, add_avx512, rope_avx512,
                                   act_mul_avx512, argmax_avx512};

#endif /* OPS_X86 */

static const ops_set *ops_for_level(int level) {
#ifdef OPS_X86
    if (level >= ISA_AVX512) return &OPS_AVX512;
    if (level >= ISA_AVX2) return &OPS_AVX2;
#endif
    (void)level;
    return &OPS_SCALAR;
}

/* Threads for `work` floats: one below OPS_PARALLEL_MIN. */
static int threads_for(long long work, int nthreads) {
#ifdef _OPENMP
    return work >= OPS_PARALLEL_MIN && nthreads > 1 ? nthreads : 1;
#else
    (void)work; (void)nthreads;
    return 1;
#endif
}

/* ---- the ops --------------------------------------------------------------------------------- */

static void rms_norm_row(const ops_set *o, const float *x, float *residual, const float *w, float eps, int D,
                         float *out) {
    const float ss = residual ? o->add_sumsq(residual, x, D) : o->sumsq(x, D);
    const float scale = 1.0f / sqrtf(ss / (float)D + eps);
    o->scale_mul(residual ? residual : x, scale, w, out, D);
}

void ops_rms_norm(int level, const float *x, float *residual, const float *w, float eps, int T, int D, float *out,
                  int nthreads) {
    const ops_set *o = ops_for_level(level);
    const int nt = threads_for((long long)T * D, nthreads);
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int t = 0; t < T; t++)
            rms_norm_row(o, x + (size_t)t * D, residual ? residual + (size_t)t * D : NULL, w, eps, D, out + (size_t)t * D);
        return;
    }
    for (int t = 0; t < T; t++)
        rms_norm_row(o, x + (size_t)t * D, residual ? residual + (size_t)t * D : NULL, w, eps, D, out + (size_t)t * D);
}

static void heads_token(const ops_set *o, const ops_heads *jobs, int njobs, int t, int D, float eps, const float *cos,
                        const float *sin) {
    for (int j = 0; j < njobs; j++) {
        const ops_heads *job = &jobs[j];
        for (int h = 0; h < job->H; h++) {
            float *x = job->x + ((size_t)t * job->H + h) * D;
            if (job->bias) o->add(x, job->bias + (size_t)h * D, D);
            if (job->norm_w) {
                const float scale = 1.0f / sqrtf(o->sumsq(x, D) / (float)D + eps);
                o->scale_mul(x, scale, job->norm_w, x, D);
            }
            if (job->rotate && cos) o->rope(x, cos + (size_t)t * D, sin + (size_t)t * D, D / 2);
        }
    }
}

void ops_heads_epilogue(int level, const ops_heads *jobs, int njobs, int T, int D, float eps, const float *cos,
                        const float *sin, int nthreads) {
    const ops_set *o = ops_for_level(level);
    long long work = 0;
    for (int j = 0; j < njobs; j++) work += (long long)T * jobs[j].H * D;
    const int nt = threads_for(work, nthreads);
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int t = 0; t < T; t++) heads_token(o, jobs, njobs, t, D, eps, cos, sin);
        return;
    }
    for (int t = 0; t < T; t++) heads_token(o, jobs, njobs, t, D, eps, cos, sin);
}

static void act_mul(int level, const float *gate, const float *up, long long n, float *out, int nthreads, int gelu) {
    const ops_set *o = ops_for_level(level);
    const int nt = threads_for(n * SILU_WORK, nthreads);
    if (nt > 1) {
        const long long chunk = (n / nt + 15) / 16 * 16;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int p = 0; p < nt; p++) {
            const long long lo = (long long)p * chunk, hi = lo + chunk < n ? lo + chunk : n;
            if (lo < hi) o->act_mul(gate + lo, up + lo, hi - lo, out + lo, gelu);
        }
        return;
    }
    o->act_mul(gate, up, n, out, gelu);
}

void ops_silu_mul(int level, const float *gate, const float *up, long long n, float *out, int nthreads) {
    act_mul(level, gate, up, n, out, nthreads, 0);
}

void ops_gelu_tanh_mul(int level, const float *gate, const float *up, long long n, float *out, int nthreads) {
    act_mul(level, gate, up, n, out, nthreads, 1);
}

void ops_argmax_rows(int level, const float *x, int rows, long long n, int64_t *out, int nthreads) {
    const ops_set *o = ops_for_level(level);
    const int nt = rows > 1 ? threads_for((long long)rows * n, nthreads) : 1;
    if (nt > 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int r = 0; r < rows; r++) out[r] = o->argmax(x + (size_t)r * n, n);
        return;
    }
    for (int r = 0; r < rows; r++) out[r] = o->argmax(x + (size_t)r * n, n);
}

int ops_dequant_rows(int type_id, const uint8_t *w, size_t row_stride, long long nrows, const int64_t *ids, int n,
                     int K, float *out) {
    const qtype_info *ti = qtype_get(type_id);
    if (!ti || type_id == QT_Q4_0_X16) return QM_ETYPE;   /* rows of x16 groups are not contiguous */
    if (K <= 0 || K % ti->block != 0 || n < 0) return QM_ESHAPE;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nrows) return QM_ESHAPE;
    /* The matmul tiles' unpacked form: value = a[group] * (q - offset) for offset types (an exact
     * product: IQ4_XS's a * q could take 25 bits), a[group] * q + b[group] for the others. */
    wrows wr;
    if (wrows_alloc(&wr, K, ti->group, 1) != 0) return QM_ENOMEM;
    const int G = ti->group;
    for (int i = 0; i < n; i++) {
        wrows_unpack_scalar(&wr, type_id, w + (size_t)ids[i] * row_stride, row_stride, 1);
        float *o = out + (size_t)i * K;
        if (ti->offset)
            for (int k = 0; k < K; k++) o[k] = wr.a[k / G] * (float)((int)wr.q[k] - ti->offset);
        else
            for (int k = 0; k < K; k++) o[k] = wr.a[k / G] * (float)wr.q[k] + wr.b[k / G];
    }
    wrows_free(&wr);
    return QM_OK;
}
