#define _POSIX_C_SOURCE 200112L /* posix_memalign */
/* Portable parts: the type table, buffers, unpacking GGUF blocks into tiles, and the scalar
 * kernel set (the fallback on CPUs without AVX2, and the reference the SIMD sets must match). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtypes.h"

static const qtype_info TYPES[QT_MAX] = {
    [QT_Q4_0] = {32, 18, 32, 8},    [QT_Q4_1] = {32, 20, 32, 0},    [QT_Q5_0] = {32, 22, 32, 16},
    [QT_Q5_1] = {32, 24, 32, 0},    [QT_Q8_0] = {32, 34, 32, 128},  [QT_Q2_K] = {256, 84, 16, 0},
    [QT_Q3_K] = {256, 110, 16, 4},  [QT_Q4_K] = {256, 144, 32, 0},  [QT_Q5_K] = {256, 176, 32, 0},
    [QT_Q6_K] = {256, 210, 16, 32}, [QT_Q4_0_X16] = {32, 18, 32, 8},
    /* unpacked as Q8_0 is: q = table value + 128, offset 128 */
    [QT_IQ4_NL] = {32, 18, 32, 128}, [QT_IQ4_XS] = {256, 136, 32, 128},
};

const qtype_info *qtype_get(int type_id) {
    if (type_id < 0 || type_id >= QT_MAX || TYPES[type_id].block == 0) return NULL;
    return &TYPES[type_id];
}

static void *alloc64(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0) return NULL;
    return p;
}

int act_set_alloc(act_set *a, int T, int K, int blk) {
    a->T = T; a->K = K; a->blk = blk;
    a->q = alloc64((size_t)T * K);
    a->d = alloc64((size_t)T * (K / blk) * sizeof(float));
    a->s16 = alloc64((size_t)T * (K / 16) * sizeof(int16_t));
    a->s32 = alloc64((size_t)T * (K / 32) * sizeof(int16_t));
    if (!a->q || !a->d || !a->s16 || !a->s32) { act_set_free(a); return -1; }
    return 0;
}

void act_set_free(act_set *a) {
    free(a->q); free(a->d); free(a->s16); free(a->s32);
    a->q = NULL; a->d = NULL; a->s16 = NULL; a->s32 = NULL;
}

act_row act_set_row(const act_set *a, int t) {
    act_row r = {
        a->q + (size_t)t * a->K, a->d + (size_t)t * (a->K / a->blk),
        a->s16 + (size_t)t * (a->K / 16), a->s32 + (size_t)t * (a->K / 32),
    };
    return r;
}

int act_tiles_alloc(act_tiles *a, int T, int K, int tok, int group) {
    a->T = T; a->K = K; a->tok = tok; a->group = group;
    a->ntiles = (T + tok - 1) / tok;
    size_t lanes = (size_t)a->ntiles * tok;
    a->q = alloc64(lanes * K);
    a->d = alloc64(lanes * (K / 32) * sizeof(float));
    a->off = alloc64(lanes * (K / group) * sizeof(int32_t));
    a->ds = alloc64(lanes * (K / group) * sizeof(float));
    if (!a->q || !a->d || !a->off || !a->ds) { act_tiles_free(a); return -1; }
    if (T % tok) { /* padding lanes of the last tile read as zero */
        size_t last = (size_t)(a->ntiles - 1);
        memset(a->q + last * tok * K, 0, (size_t)tok * K);
        memset(a->d + last * tok * (K / 32), 0, (size_t)tok * (K / 32) * sizeof(float));
        memset(a->off + last * tok * (K / group), 0, (size_t)tok * (K / group) * sizeof(int32_t));
        memset(a->ds + last * tok * (K / group), 0, (size_t)tok * (K / group) * sizeof(float));
    }
    return 0;
}

void act_tiles_free(act_tiles *a) {
    free(a->q); free(a->d); free(a->off); free(a->ds);
    a->q = NULL; a->d = NULL; a->off = NULL; a->ds = NULL;
}

void act_tiles_fill(act_tiles *a, const act_set *rows, const qtype_info *ti, int t0, int t1) {
    const int K = a->K, tok = a->tok, G = a->group, ng = K / G;
    for (int t = t0; t < t1; t++) {
        const int tile = t / tok, lane = t % tok;
        act_row r = act_set_row(rows, t);
        int8_t *q = a->q + (size_t)tile * tok * K + lane * 4;
        for (int k4 = 0; k4 < K / 4; k4++) memcpy(q + (size_t)k4 * tok * 4, r.q + 4 * k4, 4);
        float *d = a->d + (size_t)tile * tok * (K / 32) + lane;
        for (int b = 0; b < K / 32; b++) d[(size_t)b * tok] = r.d[b];
        int32_t *off = a->off + (size_t)tile * tok * ng + lane;
        float *ds = a->ds + (size_t)tile * tok * ng + lane;
        for (int g = 0; g < ng; g++) {
            int sum = G == 16 ? r.s16[g] : r.s32[g];
            off[(size_t)g * tok] = -ti->offset * sum;
            ds[(size_t)g * tok] = r.d[g * G / 32] * (float)sum;
        }
    }
}

int wrows_alloc(wrows *w, int K, int group, int cap) {
    w->K = K; w->group = group; w->cap = cap; w->wide = 0;
    w->pf = NULL; w->pf_stride = w->pf_row_bytes = 0; w->pf_rows = 0;
    w->q = alloc64((size_t)K * cap);
    w->a = alloc64((size_t)(K / group) * cap * sizeof(float));
    w->b = alloc64((size_t)(K / group) * cap * sizeof(float));
    if (!w->q || !w->a || !w->b) { wrows_free(w); return -1; }
    return 0;
}

void wrows_free(wrows *w) {
    free(w->q); free(w->a); free(w->b);
    w->q = NULL; w->a = NULL; w->b = NULL;
}

/* One block -> q[block] (unsigned values) and a, b per group: value = a * q + b. */
static void unpack_block(int type_id, const uint8_t *p, uint8_t *q, float *a, float *b) {
    switch (type_id) {
    case QT_Q4_0: case QT_Q4_1: {
        float d = read_f16(p);
        const uint8_t *qs = p + (type_id == QT_Q4_0 ? 2 : 4);
        for (int j = 0; j < 16; j++) { q[j] = qs[j] & 15; q[j + 16] = qs[j] >> 4; }
        a[0] = d;
        b[0] = type_id == QT_Q4_0 ? -8.0f * d : read_f16(p + 2);
        break;
    }
    case QT_Q5_0: case QT_Q5_1: {
        float d = read_f16(p);
        int off = type_id == QT_Q5_0 ? 2 : 4;
        uint32_t qh = read_u32(p + off);
        const uint8_t *qs = p + off + 4;
        for (int j = 0; j < 16; j++) {
            q[j] = (uint8_t)((qs[j] & 15) | (((qh >> j) & 1) << 4));
            q[j + 16] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        a[0] = d;
        b[0] = type_id == QT_Q5_0 ? -16.0f * d : read_f16(p + 2);
        break;
    }
    case QT_Q8_0: {
        float d = read_f16(p);
        for (int j = 0; j < 32; j++) q[j] = (uint8_t)((int)(int8_t)p[2 + j] + 128);
        a[0] = d;
        b[0] = -128.0f * d;
        break;
    }
    case QT_IQ4_NL: {
        float d = read_f16(p);
        for (int j = 0; j < 16; j++) {
            q[j] = (uint8_t)(IQ4_VALUES[p[2 + j] & 15] + 128);
            q[j + 16] = (uint8_t)(IQ4_VALUES[p[2 + j] >> 4] + 128);
        }
        a[0] = d;
        b[0] = -128.0f * d;
        break;
    }
    case QT_IQ4_XS: {
        float d = read_f16(p);
        for (int g = 0; g < 8; g++) {
            const uint8_t *qs = p + 8 + 16 * g;
            for (int j = 0; j < 16; j++) {
                q[32 * g + j] = (uint8_t)(IQ4_VALUES[qs[j] & 15] + 128);
                q[32 * g + j + 16] = (uint8_t)(IQ4_VALUES[qs[j] >> 4] + 128);
            }
            a[g] = d * (float)iq4xs_scale(p, g);
            b[g] = -128.0f * a[g];
        }
        break;
    }
    case QT_Q2_K: {
        const uint8_t *sc = p, *qs = p + 16;
        float d = read_f16(p + 80), dmin = read_f16(p + 82);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) q[128 * h + 32 * j + l] = (qs[32 * h + l] >> (2 * j)) & 3;
        for (int g = 0; g < 16; g++) { a[g] = d * (sc[g] & 15); b[g] = -dmin * (sc[g] >> 4); }
        break;
    }
    case QT_Q3_K: {
        const uint8_t *hm = p, *qs = p + 32;
        int8_t sc[16];
        q3k_scales(p + 96, sc);
        float d = read_f16(p + 108);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) {
                    int lo = (qs[32 * h + l] >> (2 * j)) & 3, hi = (hm[l] >> (4 * h + j)) & 1;
                    q[128 * h + 32 * j + l] = (uint8_t)(lo | (hi << 2));
                }
        for (int g = 0; g < 16; g++) { a[g] = d * sc[g]; b[g] = -4.0f * a[g]; }
        break;
    }
    case QT_Q4_K: case QT_Q5_K: {
        float d = read_f16(p), dmin = read_f16(p + 2);
        uint8_t sc[8], mn[8];
        kquant_scales_mins(p + 4, sc, mn);
        const uint8_t *qh = p + 16, *qs = p + (type_id == QT_Q4_K ? 16 : 48);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] = qs[32 * c + l] & 15;
                q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
            }
        if (type_id == QT_Q5_K)
            for (int j = 0; j < 8; j++)
                for (int l = 0; l < 32; l++) q[32 * j + l] |= (uint8_t)(((qh[l] >> j) & 1) << 4);
        for (int g = 0; g < 8; g++) { a[g] = d * sc[g]; b[g] = -dmin * mn[g]; }
        break;
    }
    case QT_Q6_K: {
        const uint8_t *ql = p, *qh = p + 128;
        const int8_t *sc = (const int8_t *)(p + 192);
        float d = read_f16(p + 208);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 32; l++) {
                    int lo = (ql[64 * h + 32 * (j & 1) + l] >> (4 * (j >> 1))) & 15;
                    int hi = (qh[32 * h + l] >> (2 * j)) & 3;
                    q[128 * h + 32 * j + l] = (uint8_t)(lo | (hi << 4));
                }
        for (int g = 0; g < 16; g++) { a[g] = d * sc[g]; b[g] = -32.0f * a[g]; }
        break;
    }
    }
}

/* Rows [0, nrows) of QT_Q4_0_X16 groups at `rows` (row_stride is (K / 32) * 18). */
static void unpack_x16(wrows *w, const uint8_t *rows, int nrows) {
    const int K = w->K, nb = K / 32;
    w->wide = 0;
    for (int r0 = 0; r0 < nrows; r0 += X16_ROWS) {
        const uint8_t *grp = rows + (size_t)r0 * nb * 18;
        for (int b = 0; b < nb; b++) {
            const uint8_t *p = grp + (size_t)b * X16_BLOCK_BYTES;
            for (int r = 0; r < X16_ROWS; r++) {
                uint8_t *q = w->q + (size_t)(r0 + r) * K + 32 * b;
                for (int c = 0; c < 4; c++)
                    for (int i = 0; i < 4; i++) {
                        const uint8_t v = p[32 + 64 * c + 4 * r + i];
                        q[8 * c + i] = v & 15;
                        q[8 * c + 4 + i] = v >> 4;
                    }
                const float a = read_f16(p + 2 * r);
                w->a[(size_t)(r0 + r) * (K / w->group) + b] = a;
                w->b[(size_t)(r0 + r) * (K / w->group) + b] = -8.0f * a;
            }
        }
    }
}

void repack_q4_0_x16(const uint8_t *src, size_t src_stride, int N, int K, uint8_t *dst) {
    const int nb = K / 32;
    for (int r0 = 0; r0 < N; r0 += X16_ROWS)
        for (int b = 0; b < nb; b++) {
            uint8_t *o = dst + ((size_t)r0 * nb + (size_t)b * X16_ROWS) * 18;
            for (int r = 0; r < X16_ROWS; r++) {
                const uint8_t *blk = src + (size_t)(r0 + r) * src_stride + (size_t)b * 18;
                o[2 * r] = blk[0];
                o[2 * r + 1] = blk[1];
                for (int c = 0; c < 4; c++)
                    for (int i = 0; i < 4; i++) {   /* values 8c + i and 8c + 4 + i of 32: low then high nibbles */
                        const int k0 = 8 * c + i, k1 = k0 + 4;
                        const int v0 = k0 < 16 ? blk[2 + k0] & 15 : blk[2 + k0 - 16] >> 4;
                        const int v1 = k1 < 16 ? blk[2 + k1] & 15 : blk[2 + k1 - 16] >> 4;
                        o[32 + 64 * c + 4 * r + i] = (uint8_t)(v0 | v1 << 4);
                    }
            }
        }
}

void wrows_unpack_scalar(wrows *w, int type_id, const uint8_t *rows, size_t row_stride, int nrows) {
    if (type_id == QT_Q4_0_X16) {
        unpack_x16(w, rows, nrows);
        return;
    }
    const qtype_info *ti = qtype_get(type_id);
    const int K = w->K, ng = K / w->group, nb = K / ti->block, gpb = ti->block / w->group;
    w->wide = ti->offset == 128;   /* Q8_0 and the IQ4 types: q up to 255 */
    for (int r = 0; r < nrows; r++) {
        const uint8_t *row = rows + (size_t)r * row_stride;
        for (int bi = 0; bi < nb; bi++)
            unpack_block(type_id, row + (size_t)bi * ti->bytes, w->q + (size_t)r * K + (size_t)bi * ti->block,
                         w->a + (size_t)r * ng + bi * gpb, w->b + (size_t)r * ng + bi * gpb);
    }
}

static void quantize_row_scalar(const float *x, int K, int blk, int8_t *q, float *d, int16_t *s16,
                                int16_t *s32) {
    for (int b = 0; b < K / blk; b++) {
        const float *xb = x + (size_t)b * blk;
        float amax = 0.0f;
        for (int i = 0; i < blk; i++) amax = fmaxf(amax, fabsf(xb[i]));
        float db = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        d[b] = db;
        for (int i = 0; i < blk; i++) q[b * blk + i] = (int8_t)lrintf(xb[i] * id);
    }
    for (int g = 0; g < K / 16; g++) {
        int s = 0;
        for (int i = 0; i < 16; i++) s += q[16 * g + i];
        s16[g] = (int16_t)s;
    }
    for (int g = 0; g < K / 32; g++) s32[g] = (int16_t)(s16[2 * g] + s16[2 * g + 1]);
}

static void tile_gemm_scalar(const wrows *w, int r0, int nr, const act_tiles *x, int tile, float *out,
                             size_t ldo, int offset_type) {
    const int K = w->K, G = w->group, ng = K / G, tok = x->tok;
    const int8_t *xq = x->q + (size_t)tile * tok * K;
    const float *xd = x->d + (size_t)tile * tok * (K / 32);
    const int32_t *xo = x->off + (size_t)tile * tok * ng;
    const float *xs = x->ds + (size_t)tile * tok * ng;
    for (int lane = 0; lane < tok && tile * tok + lane < x->T; lane++) {
        const int t = tile * tok + lane;
        for (int r = r0; r < r0 + nr; r++) {
            const uint8_t *wq = w->q + (size_t)r * K;
            float acc = 0.0f;
            for (int g = 0; g < ng; g++) {
                int dot = 0;
                for (int k = g * G; k < (g + 1) * G; k++)
                    dot += (int)wq[k] * xq[((size_t)(k >> 2) * tok + lane) * 4 + (k & 3)];
                float dx = xd[(size_t)(g * G / 32) * tok + lane], a = w->a[(size_t)r * ng + g];
                if (offset_type)
                    acc += a * dx * (float)(dot + xo[(size_t)g * tok + lane]);
                else
                    acc += a * dx * (float)dot + w->b[(size_t)r * ng + g] * xs[(size_t)g * tok + lane];
            }
            out[(size_t)t * ldo + r] = acc;
        }
    }
}

const kernel_set kernels_scalar = {
    .name = "scalar",
    .quantize_row = quantize_row_scalar,
    .tok = 1,
    .rows = 4,
    .unpack = wrows_unpack_scalar,
    .tile_gemm = tile_gemm_scalar,
};
