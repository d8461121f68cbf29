/* A decode step's decoder layers in one call: the Llama family's layer loop (RMSNorm, q/k/v,
 * bias / q-k norm / rotary, paged attention, output projection, RMSNorm, gate/up, SiLU, down;
 * a mixture-of-experts block in place of the MLP; Gemma's norms after attention and MLP, GELU,
 * sliding-window layers with their own rotary table, attention soft-capping)
 * run by the same kernels, in the same order and with the same arguments as the Python layers
 * call them one by one, so the hidden states are bitwise the same. A 135M model's 30 layers make
 * about 300 calls a step from Python, a few microseconds each; here the step makes one. */
#ifndef CORRAL_DECODE_LAYERS_H
#define CORRAL_DECODE_LAYERS_H

#include <stdint.h>

#include "dispatch.h"
#include "moe.h"

/* A projection: its weight (out unused here) and whether it keeps activations in float32. */
typedef struct {
    qm_weight w;
    int float_act;
} dl_proj;

typedef struct {
    dl_proj q, k, v, o, gate, up, down;
    const float *attn_norm, *ffn_norm;          /* (hidden,) */
    const float *q_bias, *k_bias, *v_bias;      /* (H * D,) or NULL */
    const float *q_norm, *k_norm;               /* (D,) or NULL (Qwen3) */
    void *kv;                                   /* (2, num_blocks, block_size, Hk, D) */
    const moe_block *moe;                       /* a sparse MLP in place of gate/up/down (one token), or NULL */
    const float *post_attn_norm, *post_ffn_norm; /* (hidden,): Gemma's norms of the sub-layer outputs, or NULL */
    int local_rope;                             /* rotate by the step's local tables (Gemma 3's sliding layers) */
    int window;                                 /* >= 0: this layer's window (0: all); -1: the step's */
} dl_layer;

typedef struct {
    int n_layers, hidden, Hq, Hk, D, inter;
    float eps, scale;
    int gelu;                                   /* the MLP's activation: GELU-tanh (Gemma), else SiLU */
    float softcap;                              /* > 0: attention scores soft-capped (Gemma 2) */
    int kv_half, block_size;
    int64_t num_blocks;
    const float *final_norm;                    /* (hidden,) */
    dl_proj head;                               /* the output projection (vocab rows), if has_head */
    int has_head;
    dl_layer *layers;
} dl_model;

/* One step of T decode tokens, one per sequence. x (T, hidden): the token embeddings in, the
 * residual stream while the layers run. out (T, hidden): the final norm's output. cos, sin
 * (T, D). Scratch: q, att (T, Hq * D), k, v (T, Hk * D), gate, up (T, inter). */
typedef struct {
    int T, max_blocks;
    float *logits;                              /* (T, vocab): the head's output, when the plan has one */
    int window;                                 /* > 0: the last `window` positions only; 0: all */
    float *x, *out;
    const float *cos, *sin;
    const float *cos_local, *sin_local;         /* (T, D): the local rotary tables, or NULL */
    const int64_t *block_tables, *seq_lens, *slots;
    float *q, *k, *v, *att, *gate, *up;
} dl_step;

/* Returns 0, a negative QM_E* code of a matmul (*bad_seq -1), or a negative ATT_E* code of the
 * attention minus 100 with *bad_seq set as paged_decode_attention_run sets it (and *bad_layer). */
int decode_layers_run(int level, const dl_model *m, const dl_step *s, int nthreads, int *bad_layer, int *bad_seq);

#define DL_ATT_ERROR_BASE (-100)

#endif
