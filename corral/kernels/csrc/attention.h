/* Decode attention over a paged KV cache: one query token per sequence, K/V read where they lie. */
#ifndef CORRAL_ATTENTION_H
#define CORRAL_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

enum { ATT_OK = 0, ATT_ESHAPE = -1, ATT_ELEN = -2, ATT_EBLOCK = -3, ATT_ESLOT = -4 };

/* Query heads sharing one KV head that a call takes (their softmax states live on the stack). */
#define ATT_MAX_GROUP 256

/* One decode-attention call. Every buffer is contiguous; q and out are float32, kv float32 or
 * IEEE float16 (kv_half). */
typedef struct {
    const float *q;               /* (B, Hq, D) */
    const void *kv;               /* (2, num_blocks, block_size, Hk, D): keys, then values */
    int kv_half;                  /* 1: kv holds float16, converted to float32 as it is read */
    const int64_t *block_tables;  /* (B, max_blocks): block ids of each sequence, in order */
    const int64_t *seq_lens;      /* (B,): cache positions 0 .. seq_lens[b]-1 hold sequence b */
    float *out;                   /* (B, Hq, D) */
    int B, Hq, Hk, D;
    int64_t num_blocks;
    int block_size, max_blocks;
    int window;                   /* > 0: keys at positions >= seq_len - window only; 0: all */
    float scale;                  /* applied to q . k before the softmax */
    float softcap;                /* > 0: scores become softcap * tanh(score / softcap) (Gemma 2); 0: as they are */
    /* The step's new keys and values, or NULL: (B, Hk, D) float32 each, written (converted to the
     * cache's type) into cache slot slots[b] (block * block_size + offset) before any is read. */
    const float *k_new, *v_new;
    const int64_t *slots;         /* (B,) */
} att_args;

/* out[b, h] = softmax(cap(scale * q[b, h] . K[b, kvh])) @ V[b, kvh] over the sequence's cached
 * positions, kvh = h / (Hq / Hk), with float32 online softmax. `level` (an ISA_* of dispatch.h,
 * at most kernels_best_level()) picks the instruction set. Returns ATT_OK, ATT_ESHAPE, or ATT_ELEN /
 * ATT_EBLOCK / ATT_ESLOT with *bad_seq set to the sequence whose length, block id or new slot is out
 * of range (checked before anything is written). */
int paged_decode_attention_run(int level, const att_args *a, int nthreads, int *bad_seq);

#endif
