/* Internal to the attention kernels: the work of one (sequence, KV head) pair and what every
 * instruction-set version of it shares. */
#ifndef CORRAL_ATTENTION_PAIR_H
#define CORRAL_ATTENTION_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "attention.h"
#include "exp_cephes.h"

/* Inlined into each instruction-set version (a prefetch-only function left out of line would be
 * taken for one without effects, and its calls dropped). */
#if defined(__GNUC__)
#define ATT_INLINE static inline __attribute__((always_inline))
#else
#define ATT_INLINE static inline
#endif

/* Cache positions per tile: their K and V rows (2 x 32 x D floats) stay in L1 between the score
 * pass and the value pass. */
#define TILE 32

typedef struct {
    const float *q;         /* (G, D): the query rows of the group's heads */
    float *out;             /* (G, D) */
    const char *k0;         /* key row of slot 0 for this KV head: kv + kvh * D elements */
    size_t v_off;           /* bytes from a key row to the value row of the same slot */
    size_t slot_stride;     /* bytes between consecutive slots: Hk * D elements */
    int half;               /* elements are float16 (2 bytes), else float32 */
    const int64_t *table;   /* the sequence's block ids */
    int block_size, start, end;   /* positions [start, end) */
    int G, D;
    float scale;
    float softcap;          /* > 0: scores soft-capped, softcap * tanh(score / softcap) */
} att_pair;

/* Key rows of positions t0 .. t0+n-1 into rows[0..n) (n <= TILE, returned; 0 past the end); value
 * rows are v_off bytes further. rows[n] repeats rows[n-1], so kernels may take positions in pairs. */
ATT_INLINE int tile_rows(const att_pair *j, int t0, const char **rows) {
    if (t0 >= j->end) return 0;
    const int n = j->end - t0 < TILE ? j->end - t0 : TILE;
    int blk = t0 / j->block_size, off = t0 % j->block_size;
    for (int i = 0; i < n; i++) {
        rows[i] = j->k0 + ((size_t)j->table[blk] * (size_t)j->block_size + (size_t)off) * j->slot_stride;
        if (++off == j->block_size) { off = 0; blk++; }
    }
    rows[n] = rows[n - 1];
    return n;
}

/* The rows of the tile being computed and of the two after it, which are prefetched meanwhile (the
 * next into L1, the one after into L2): left to the hardware prefetchers, the kernels wait on the
 * scattered blocks and compute in turn (16 sequences of 200 tokens from DRAM: 1.8x the time, see
 * docs/benchmarks.md). Tile i (counting from the pair's first) is rows[i % 3]. */
typedef struct {
    const char *rows[3][TILE + 1];
    int n[3];
} tile_ring;

ATT_INLINE void ring_start(tile_ring *r, const att_pair *j) {
    r->n[0] = tile_rows(j, j->start, r->rows[0]);
    r->n[1] = tile_rows(j, j->start + TILE, r->rows[1]);
}

/* Before computing tile i: finds the rows of tile i + 2. */
ATT_INLINE void ring_advance(tile_ring *r, const att_pair *j, int i) {
    r->n[(i + 2) % 3] = tile_rows(j, j->start + (i + 2) * TILE, r->rows[(i + 2) % 3]);
}

/* While computing position t of tile i: starts fetching position t of tiles i + 1 and i + 2 (rows
 * of `bytes`). */
ATT_INLINE void prefetch_ahead(const tile_ring *r, int i, int t, size_t v_off, int bytes) {
#if defined(__GNUC__)
    const int a = (i + 1) % 3, b = (i + 2) % 3;
    if (t < r->n[a])
        for (int c = 0; c < bytes; c += 64) {
            __builtin_prefetch(r->rows[a][t] + c, 0, 3);
            __builtin_prefetch(r->rows[a][t] + v_off + c, 0, 3);
        }
    if (t < r->n[b])
        for (int c = 0; c < bytes; c += 64) {
            __builtin_prefetch(r->rows[b][t] + c, 0, 2);
            __builtin_prefetch(r->rows[b][t] + v_off + c, 0, 2);
        }
#else
    (void)r; (void)i; (void)t; (void)v_off; (void)bytes;
#endif
}

/* exp(x) for x <= 0 (larger x are taken as 0) within 2 ulp, and exactly 0 below ln(FLT_MIN), so
 * exp(-inf) = 0. Cephes' expf (exp_cephes.h). */
#define EXP_LO (-87.33654475f)

/* The pair kernels: out rows = softmax(cap(scale * q K^T)) V over positions [start, end), cap the
 * soft-cap when j->softcap > 0. tanh(x) is (1 - e) / (1 + e) with e = exp(-2|x|) <= 1 (exp_neg's
 * range), the sign of x put back: within a few float32 ulp of the score's scale. */
void pair_scalar(const att_pair *j);
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define ATT_HAVE_X86 1
/* The body of pair_avx2 and pair_avx512 (TILE_FN: tile8 or tile16, which keep each head chunk's
 * running max m and sum l, HC heads a chunk, in 8 lanes): one copy of the tile per head count
 * (HALF: a constant, whether K/V are float16), then each head's output divided by its sum. */
#define ATT_PAIR_BODY(TILE_FN, HALF) \
    const int G = j->G, D = j->D, nch = (G + HC - 1) / HC; \
    __m256 m[ATT_MAX_GROUP / HC], l[ATT_MAX_GROUP / HC];   /* lanes: the heads of a chunk */ \
    tile_ring ring; \
    for (int ch = 0; ch < nch; ch++) { m[ch] = _mm256_set1_ps(-INFINITY); l[ch] = _mm256_setzero_ps(); } \
    memset(j->out, 0, (size_t)G * D * sizeof(float)); \
    ring_start(&ring, j); \
    for (int i = 0; j->start + i * TILE < j->end; i++) { \
        ring_advance(&ring, j, i); \
        for (int ch = 0; ch < nch; ch++) { \
            const float *q = j->q + (size_t)ch * HC * D; \
            float *o = j->out + (size_t)ch * HC * D; \
            const int pf = ch == 0;   /* the first head chunk prefetches for the others */ \
            switch (G - ch * HC < HC ? G - ch * HC : HC) { \
            case 1: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 1, HALF); break; \
            case 2: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 2, HALF); break; \
            case 3: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 3, HALF); break; \
            case 4: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 4, HALF); break; \
            case 5: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 5, HALF); break; \
            case 6: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 6, HALF); break; \
            case 7: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 7, HALF); break; \
            default: TILE_FN(j, &ring, i, pf, q, o, &m[ch], &l[ch], 8, HALF); break; \
            } \
        } \
    } \
    for (int g = 0; g < G; g++) { \
        float lg[HC]; \
        _mm256_storeu_ps(lg, l[g / HC]); \
        const float inv = 1.0f / lg[g % HC]; \
        float *o = j->out + (size_t)g * D; \
        for (int c = 0; c < D; c++) o[c] *= inv; \
    }

void pair_avx2(const att_pair *j);     /* D % 8 == 0; needs AVX2 + FMA (+ F16C for float16) */
void pair_avx512(const att_pair *j);   /* D % 16 == 0; needs AVX-512F */
#endif

#endif
