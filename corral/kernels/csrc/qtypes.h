/* Shared declarations of the quantized matmul kernels.
 *
 * Weights stay in their GGUF blocks. Two paths compute out(T, N) = x(T, K) @ W(N, K)^T:
 *  - row dots (few tokens): the activation row is quantized to int8 blocks and each weight row is
 *    dotted against it block by block with integer SIMD (one kernel per weight type);
 *  - tiles (many tokens): a block of weight rows is unpacked once into a common form
 *    (value = a[group] * q + b[group], q an unsigned byte, groups of 16 or 32 values) and
 *    multiplied against tiles of tokens whose int8 activations are interleaved so that a broadcast
 *    of 4 weight bytes meets 4 values of every token of the tile in one VNNI instruction. Each
 *    weight byte is read from memory once per call, not once per token.
 * One exception to "weights stay in their blocks": on AVX-512, model loading rearranges Q4_0 into
 * groups of 16 rows (QT_Q4_0_X16 below), whose kernel takes any number of tokens with lanes = rows:
 * a 64-byte load is 16 rows x 8 values, met by broadcasts of 4 activation bytes, no unpacking pass.
 */
#ifndef CORRAL_QTYPES_H
#define CORRAL_QTYPES_H

#include <stddef.h>
#include <stdint.h>

/* GGML type ids (the numbers stored in GGUF files). */
enum {
    QT_Q4_0 = 2, QT_Q4_1 = 3, QT_Q5_0 = 6, QT_Q5_1 = 7, QT_Q8_0 = 8,
    QT_Q2_K = 10, QT_Q3_K = 11, QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14,
    /* Not a file type: Q4_0 rearranged at load time (repack_q4_0_x16) for the x16 kernels. Rows
     * come in groups of 16; a group holds its blocks in order, each 16 f16 scales (one per row)
     * then 4 runs of 64 bytes, byte 64c + 4r + i of a block holding row r's values 8c + i (low
     * nibble) and 8c + 4 + i (high nibble), unsigned with offset 8 as in Q4_0. Same 18 bytes per
     * 32 values, so row n starts at n * (K / 32) * 18 bytes when n is a multiple of 16. */
    QT_Q4_0_X16 = 16,
    /* Non-linear 4-bit: each nibble indexes IQ4_VALUES, times the block's (IQ4_NL) or the 32-value
     * sub-block's (IQ4_XS: d * (6-bit scale - 32)) scale. */
    QT_IQ4_NL = 20, QT_IQ4_XS = 23,
    QT_MAX = 24
};

/* The 16 values an IQ4_NL / IQ4_XS nibble stands for (ggml's kvalues_iq4nl). */
static const int8_t IQ4_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* IQ4_XS block (256 values, 136 bytes): d f16 | scales_h u16 | scales_l 4 bytes | 128 bytes of
 * nibbles, 16 per 32-value sub-block (low nibbles values 0..15, high 16..31). Sub-block j's scale
 * is d * (its 6-bit scale - 32): low 4 bits from nibble j of scales_l, high 2 from bits 2j of
 * scales_h. */
static inline int iq4xs_scale(const uint8_t *blk, int j) {
    const int low = (blk[4 + j / 2] >> (4 * (j & 1))) & 15, high = ((blk[2] | (blk[3] << 8)) >> (2 * j)) & 3;
    return (low | (high << 4)) - 32;
}

#define X16_ROWS 16
#define X16_BLOCK_BYTES (X16_ROWS * 18)
/* A block of a group unpacked: 8 x 64 value bytes (16 rows x 4 values each), 16 float scales. */
#define X16_UNPACKED_BLOCK 576
/* Tokens beyond which x16_gemm unpacks its rows once when given scratch (the unpacking then costs
 * a few operations per block for all tokens instead of 12 per 8 tokens: 10% faster at 128). */
#define X16_UNPACK_MIN_T 32
#define X16_UNPACKED_BYTES(nrows, K) ((size_t)((nrows) + X16_ROWS - 1) / X16_ROWS * ((K) / 32) * X16_UNPACKED_BLOCK)

typedef struct {
    int block;      /* values per block: 32 or 256 */
    int bytes;      /* bytes per block */
    int group;      /* values sharing one scale when unpacked: 16 or 32 */
    int offset;     /* value = a * (q - offset) per group; 0: value = a * q + b (a min b) */
} qtype_info;

/* NULL for ids without a kernel. */
const qtype_info *qtype_get(int type_id);

#define ACT_BLOCK 32      /* activation values per float scale on the tile path */

/* One activation row quantized to int8: x[k] ~= d[k / blk] * q[k].
 * s16[i] = sum of q over values 16i .. 16i+15 (exact), s32 likewise over 32 (|s32| <= 4064). */
typedef struct {
    const int8_t *q;      /* (K,) */
    const float *d;       /* (K / blk,) */
    const int16_t *s16;   /* (K / 16,) */
    const int16_t *s32;   /* (K / 32,) */
} act_row;

/* Storage for T quantized activation rows of K values with scale blocks of blk. */
typedef struct {
    int T, K, blk;
    int8_t *q;        /* (T, K) */
    float *d;         /* (T, K / blk) */
    int16_t *s16;     /* (T, K / 16) */
    int16_t *s32;     /* (T, K / 32) */
} act_set;

int act_set_alloc(act_set *a, int T, int K, int blk);
void act_set_free(act_set *a);
act_row act_set_row(const act_set *a, int t);

/* Activations for the tile path, tok tokens interleaved so one SIMD register holds 4 consecutive
 * values of every token of a tile (tokens past T are zero). With G the weight type's group:
 *   q   (ntiles, K / 4, tok, 4) int8
 *   d   (ntiles, K / 32, tok)   float scales
 *   off (ntiles, K / G, tok)    int32 -offset * (sum of q over the group), offset types
 *   ds  (ntiles, K / G, tok)    float d * (sum of q over the group), min types */
typedef struct {
    int T, K, tok, ntiles, group;
    int8_t *q;
    float *d;
    int32_t *off;
    float *ds;
} act_tiles;

int act_tiles_alloc(act_tiles *a, int T, int K, int tok, int group);
void act_tiles_free(act_tiles *a);
/* Interleave rows [t0, t1) of `rows` (blk == ACT_BLOCK) into `a` for a weight of `ti`. */
void act_tiles_fill(act_tiles *a, const act_set *rows, const qtype_info *ti, int t0, int t1);

/* Up to `cap` weight rows unpacked row by row: value k of row r = a[r, g] * q[r, k] + b[r, g]
 * (g = k / group), with b = -offset * a for offset types. q (cap, K) u8, a and b (cap, K / group). */
typedef struct {
    int K, group, cap;
    int wide;           /* q may exceed 127 (Q8_0): emulated u8 x s8 products must split it */
    uint8_t *q;
    float *a, *b;
    /* Optional (pf_rows 0: none): raw rows that tile kernels prefetch, a slice per group, while they
     * multiply these, so the next rows to unpack arrive while the integer work runs. */
    const uint8_t *pf;
    size_t pf_stride, pf_row_bytes;
    int pf_rows;
} wrows;

int wrows_alloc(wrows *w, int K, int group, int cap);
void wrows_free(wrows *w);
/* Scalar unpacking of rows [0, nrows) of a weight whose rows are row_stride bytes apart. For
 * QT_Q4_0_X16, `rows` starts a group of 16 rows and nrows is a multiple of 16. */
void wrows_unpack_scalar(wrows *w, int type_id, const uint8_t *rows, size_t row_stride, int nrows);

/* N rows (a multiple of 16) of K values of GGUF Q4_0, rows src_stride bytes apart, into the
 * QT_Q4_0_X16 layout at dst (N * K / 32 * 18 bytes). */
void repack_q4_0_x16(const uint8_t *src, size_t src_stride, int N, int K, uint8_t *dst);

/* Kernel sets, one per instruction-set level. */
typedef float (*row_dot_fn)(const uint8_t *wrow, const act_row *x, int K);
/* out[r] = row r of W dotted with x for r < nrows (rows row_stride bytes apart). Computes each row
 * exactly as for any other nrows, so results do not depend on how rows are split over threads. */
typedef void (*rows_dot_fn)(const uint8_t *w, size_t row_stride, int nrows, const act_row *x, int K,
                            float *out);
/* out[t * ldo + r] = row r of W dotted with x[t] for r < nrows, t < T: each weight block is loaded
 * and unpacked once per group of tokens and dotted against all of them. Each (row, token) result is
 * bitwise what rows_dot gives for that row and token alone. */
typedef void (*rows_dot_t_fn)(const uint8_t *w, size_t row_stride, int nrows, const act_row *x, int T, int K,
                              float *out, size_t ldo);
typedef struct {
    const char *name;
    /* x (K,) float -> one quantized row with scale blocks of blk (32 or 256). */
    void (*quantize_row)(const float *x, int K, int blk, int8_t *q, float *d, int16_t *s16,
                         int16_t *s32);
    row_dot_fn row_dot[QT_MAX];   /* NULL: no row-dot kernel for the type, use tiles */
    int row_dot_blk[QT_MAX];      /* activation scale block the row dot expects */
    rows_dot_fn rows_dot[QT_MAX]; /* optional: several rows sharing activation loads (same blk) */
    rows_dot_t_fn rows_dot_t[QT_MAX]; /* optional: several rows against several tokens */
    int tok;                      /* tokens per activation tile */
    int rows;                     /* weight rows per tile_gemm call, at most */
    void (*unpack)(wrows *w, int type_id, const uint8_t *rows, size_t row_stride, int nrows);
    /* out[t * ldo + r] = sum_k W[r0 + r, k] x[t, k] for r < nr (<= rows) and every token t of
     * tile `tile` below T. */
    void (*tile_gemm)(const wrows *w, int r0, int nr, const act_tiles *x, int tile, float *out,
                      size_t ldo, int offset_type);
    /* Optional: out[t * ldo + r] for r < nrows (a multiple of 16) and t < T, of QT_Q4_0_X16 rows
     * starting at w against T activation rows quantized in blocks of 32: xq (T, K) int8, xd
     * (T, K / 32) scales, xo (T, K / 32) = -8 * each block's sum of xq. Each (row, token) result
     * is computed alike whatever T and nrows are. `after` (or NULL): the first 16 rows of the next
     * call, prefetched while the last group of this one runs. `scratch` (or NULL): room for
     * X16_UNPACKED_BYTES(nrows, K), 64-byte aligned, where many tokens have the rows unpacked once. */
    void (*x16_gemm)(const uint8_t *w, int nrows, int K, const int8_t *xq, const float *xd, const int32_t *xo,
                     int T, float *out, size_t ldo, const uint8_t *after, uint8_t *scratch);
} kernel_set;

extern const kernel_set kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const kernel_set kernels_avx2;
extern const kernel_set kernels_avxvnni;
extern const kernel_set kernels_avx512;
#endif

/* IEEE half to float, portable. */
static inline float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    union { uint32_t u; float f; } v = { bits };
    return v.f;
}

/* IEEE half of a float, rounded to nearest even (as torch's .to(float16)); overflow gives inf,
 * NaN stays NaN (quiet). */
static inline uint16_t f32_to_fp16(float f) {
    union { float f; uint32_t u; } v = { f };
    const uint32_t sign = (v.u >> 16) & 0x8000, ax = v.u & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00 | ((ax >> 13) & 0x3ff) : 0x7c00));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);   /* 65520 and above round to inf */
    if (ax < 0x38800000u) {   /* below 2^-14: a subnormal half, or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;   /* below 2^-25 */
        const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        const int shift = 126 - (int)e;   /* 14 .. 24 */
        uint32_t h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax - 0x38000000u) >> 13;   /* exponent rebiased from 127 to 15 */
    const uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;   /* a carry moves into the exponent */
    return (uint16_t)(sign | h);
}

static inline uint16_t read_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline float read_f16(const uint8_t *p) { return fp16_to_f32(read_u16(p)); }
static inline uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* The 6-bit scales and mins of Q4_K / Q5_K: 12 bytes -> sc[8], mn[8]. */
static inline void kquant_scales_mins(const uint8_t *s12, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s12[j] & 63;
        mn[j] = s12[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s12[j + 8] & 15) | ((s12[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s12[j + 8] >> 4) | ((s12[j + 4] >> 6) << 4));
    }
}

/* The 6-bit signed scales of Q3_K: 12 bytes -> sc[16] in [-32, 31]. */
static inline void q3k_scales(const uint8_t *s12, int8_t sc[16]) {
    for (int i = 0; i < 16; i++) {
        int lo = (i < 8) ? (s12[i] & 15) : (s12[i - 8] >> 4);
        int hi = (s12[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
        sc[i] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

#endif
