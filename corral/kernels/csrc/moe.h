/* A mixture-of-experts MLP (Mixtral, Qwen2-MoE, Qwen3-MoE) at decode: the router's choice of
 * experts and one token's pass through its chosen experts, quantized weights read in place. The
 * Python layers and the C decode loop (decode_layers.c) both call these, so the two give the same
 * values bit for bit. */
#ifndef CORRAL_MOE_H
#define CORRAL_MOE_H

#include <stdint.h>

#include "dispatch.h"

/* Most experts a token's block runs in one call (moe_token_run); plans with more are refused. */
#define MOE_MAX_TOP_K 64

typedef struct {
    int E, top_k, normalize, hidden, size;
    const float *router;   /* (E, hidden) float32, or NULL when router_q holds the router */
    qm_weight router_q;    /* a router kept in GGUF blocks (router NULL); out unused */
    const qm_weight *experts; /* 3 E (gate, up, down of expert e at 3e..3e+2; out unused), or NULL */
} moe_block;

/* For each of T rows of x (T, hidden): the router's logits, their softmax over the E experts, the
 * top_k largest probabilities (the lower index first among equals) in descending order, divided by
 * their sum when `normalize`. weights (T, top_k) float32, chosen (T, top_k) int64. Returns QM_OK or
 * a negative QM_E* code (a quantized router's matmul). */
int moe_route(int level, const moe_block *b, const float *x, int T, float *weights, int64_t *chosen, int nthreads);

/* One token's sparse MLP: out(hidden) = sum over its top_k experts in ascending expert order of
 * weight_e * down_e(silu(gate_e x) * up_e x), each product rounded to float32 before its add.
 * out may be x. Needs b->experts. Returns QM_OK or a negative QM_E* code. */
int moe_token_run(int level, const moe_block *b, const float *x, float *out, int nthreads);

#endif
