/* Paged decode attention: each (sequence, KV head) pair streams its cached keys and values once,
 * in tiles of up to TILE positions, for all the query heads that share that KV head, keeping a
 * float32 online softmax (running max m, running sum l, output rescaled when m grows) per head.
 * No (B, L, Hk, D) gather: rows are found through the block table where they lie. This file holds
 * the checks, the threads and the plain C kernel; attention_avx2.c and attention_avx512.c the
 * vector ones. */
#include <math.h>
#include <string.h>

#include "attention_pair.h"
#include "dispatch.h"

/* exp(x) for x <= 0, as described with EXP_* in attention_pair.h. */
static inline float exp_neg(float x) {
    if (x < EXP_LO) return 0.0f;
    if (x > 0.0f) x = 0.0f;
    const float fn = x * EXP_LOG2E;
    const int n = (int)(fn - 0.5f);   /* fn <= 0: truncating fn - 0.5 rounds to nearest */
    const float r = x - (float)n * EXP_C1 - (float)n * EXP_C2;
    float y = EXP_P0;
    y = y * r + EXP_P1;
    y = y * r + EXP_P2;
    y = y * r + EXP_P3;
    y = y * r + EXP_P4;
    y = y * r + EXP_P5;
    y = y * r * r + r + 1.0f;
    const uint32_t bits = (uint32_t)(n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, 4);
    return y * two_n;
}

/* Element i of a K or V row. */
static inline float kv_at(const char *row, int i, int half) {
    if (half) {
        uint16_t h;
        memcpy(&h, row + 2 * (size_t)i, 2);
        return fp16_to_f32(h);
    }
    float f;
    memcpy(&f, row + 4 * (size_t)i, 4);
    return f;
}

/* Plain C, one head at a time: any head dim, any CPU. */
void pair_scalar(const att_pair *j) {
    const int G = j->G, D = j->D, half = j->half;
    float m[ATT_MAX_GROUP], l[ATT_MAX_GROUP], s[TILE];
    const char *rows[TILE + 1];
    for (int g = 0; g < G; g++) { m[g] = -INFINITY; l[g] = 0.0f; }
    memset(j->out, 0, (size_t)G * D * sizeof(float));
    for (int t0 = j->start; t0 < j->end; t0 += TILE) {
        const int n = tile_rows(j, t0, rows);
        for (int g = 0; g < G; g++) {
            const float *q = j->q + (size_t)g * D;
            float *o = j->out + (size_t)g * D;
            float top = -INFINITY;
            for (int t = 0; t < n; t++) {
                float d = 0.0f;
                for (int i = 0; i < D; i++) d += q[i] * kv_at(rows[t], i, half);
                s[t] = d * j->scale;
                if (j->softcap > 0.0f) {
                    const float e = exp_neg(-2.0f * fabsf(s[t]) / j->softcap);
                    s[t] = copysignf(j->softcap * (1.0f - e) / (1.0f + e), s[t]);
                }
                top = s[t] > top ? s[t] : top;
            }
            const float mn = top > m[g] ? top : m[g];
            const float corr = exp_neg(m[g] - mn);   /* 0 on the first tile */
            float sum = 0.0f;
            for (int t = 0; t < n; t++) { s[t] = exp_neg(s[t] - mn); sum += s[t]; }
            l[g] = l[g] * corr + sum;
            m[g] = mn;
            for (int i = 0; i < D; i++) o[i] *= corr;
            for (int t = 0; t < n; t++) {
                const char *v = rows[t] + j->v_off;
                for (int i = 0; i < D; i++) o[i] += s[t] * kv_at(v, i, half);
            }
        }
    }
    for (int g = 0; g < G; g++) {
        const float inv = 1.0f / l[g];
        for (int i = 0; i < D; i++) j->out[(size_t)g * D + i] *= inv;
    }
}

typedef void (*pair_fn)(const att_pair *);

static pair_fn pick(int level, int D) {
#ifdef ATT_HAVE_X86
    if (level >= ISA_AVX512 && D % 16 == 0) return pair_avx512;
    if (level >= ISA_AVX2 && D % 8 == 0) return pair_avx2;
#endif
    (void)level; (void)D;
    return pair_scalar;
}

/* First position a sequence of `len` tokens attends to. */
static int first_pos(int64_t len, int window) { return window > 0 && len > window ? (int)(len - window) : 0; }

static int check(const att_args *a, int *bad_seq) {
    if (a->B < 0 || a->Hq <= 0 || a->Hk <= 0 || a->Hq % a->Hk != 0 || a->Hq / a->Hk > ATT_MAX_GROUP ||
        a->D <= 0 || a->num_blocks <= 0 || a->block_size <= 0 || a->max_blocks < 0 || a->window < 0 ||
        !(a->softcap >= 0.0f) || isinf(a->softcap))
        return ATT_ESHAPE;
    const int64_t cap = (int64_t)a->max_blocks * a->block_size;
    for (int b = 0; b < a->B; b++) {
        const int64_t len = a->seq_lens[b];
        *bad_seq = b;
        if (len < 1 || len > cap || len > INT32_MAX) return ATT_ELEN;
        const int64_t *table = a->block_tables + (size_t)b * a->max_blocks;
        for (int64_t blk = first_pos(len, a->window) / a->block_size; blk <= (len - 1) / a->block_size; blk++)
            if (table[blk] < 0 || table[blk] >= a->num_blocks) return ATT_EBLOCK;
        if (a->k_new && (a->slots[b] < 0 || a->slots[b] >= a->num_blocks * a->block_size)) return ATT_ESLOT;
    }
    return ATT_OK;
}

/* n floats to IEEE halves, rounded to nearest even. */
static void to_half(const float *x, size_t n, uint16_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = f32_to_fp16(x[i]);
}

#ifdef ATT_HAVE_X86
#include <immintrin.h>
__attribute__((target("avx2,f16c"))) static void to_half_f16c(const float *x, size_t n, uint16_t *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    to_half(x + i, n - i, out + i);
}
#endif

/* The step's keys and values into their slots (B * Hk * D values each: a few thousand; one at a
 * time, 16 sequences' float16 conversions took 17 us a call, half the attention's). */
static void write_new(const att_args *a, int level) {
    const size_t n = (size_t)a->Hk * a->D, plane = (size_t)a->num_blocks * a->block_size * n;
    void (*half)(const float *, size_t, uint16_t *) = to_half;
#ifdef ATT_HAVE_X86
    if (level >= ISA_AVX2) half = to_half_f16c;
#endif
    (void)level;
    for (int b = 0; b < a->B; b++) {
        const float *k = a->k_new + (size_t)b * n, *v = a->v_new + (size_t)b * n;
        const size_t at = (size_t)a->slots[b] * n;
        if (a->kv_half) {
            half(k, n, (uint16_t *)a->kv + at);
            half(v, n, (uint16_t *)a->kv + plane + at);
        } else {
            memcpy((float *)a->kv + at, k, n * sizeof(float));
            memcpy((float *)a->kv + plane + at, v, n * sizeof(float));
        }
    }
}

/* The work of pair i = b * Hk + kvh. */
static att_pair pair_job(const att_args *a, int i) {
    const int b = i / a->Hk, kvh = i % a->Hk, G = a->Hq / a->Hk;
    const int64_t len = a->seq_lens[b];
    const size_t esize = a->kv_half ? 2 : 4, slot = (size_t)a->Hk * a->D * esize;
    const att_pair job = {
        .q = a->q + ((size_t)b * a->Hq + (size_t)kvh * G) * a->D,
        .out = a->out + ((size_t)b * a->Hq + (size_t)kvh * G) * a->D,
        .k0 = (const char *)a->kv + (size_t)kvh * a->D * esize,
        .v_off = (size_t)a->num_blocks * a->block_size * slot,
        .slot_stride = slot,
        .half = a->kv_half,
        .table = a->block_tables + (size_t)b * a->max_blocks,
        .block_size = a->block_size,
        .start = first_pos(len, a->window),
        .end = (int)len,
        .G = G,
        .D = a->D,
        .scale = a->scale,
        .softcap = a->softcap,
    };
    return job;
}

int paged_decode_attention_run(int level, const att_args *a, int nthreads, int *bad_seq) {
    const int rc = check(a, bad_seq);
    if (rc != ATT_OK) return rc;
    if (a->k_new) write_new(a, level);
    const pair_fn fn = pick(level, a->D);
    const int pairs = a->B * a->Hk;
    if (nthreads > pairs) nthreads = pairs;
    if (nthreads < 1) nthreads = 1;
    /* Work is claimed one unit at a time (sequences differ in length, and the CPU may be shared):
     * a whole sequence, its KV heads one after the other, when there are sequences enough for
     * every thread. A cache slot holds all KV heads side by side, so the first head's reads bring
     * the next heads' rows into this core's L2 (the adjacent-line prefetcher); split over threads,
     * each core would fetch those lines again. Otherwise single (sequence, KV head) pairs. */
    const int per_unit = a->B >= nthreads ? a->Hk : 1, units = pairs / per_unit;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (nthreads > 1)
#endif
    for (int u = 0; u < units; u++)
        for (int i = u * per_unit; i < (u + 1) * per_unit; i++) {
            const att_pair job = pair_job(a, i);
            fn(&job);
        }
    (void)nthreads;
    return ATT_OK;
}
