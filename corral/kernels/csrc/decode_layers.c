/* The Llama family's decoder layers for a decode step in one call (decode_layers.h). */
#include "decode_layers.h"

#include <stddef.h>

#include "attention.h"
#include "float_act.h"
#include "ops.h"

/* out_i(T, N_i) = x(T, K) @ W_i^T for n projections reading the same x, as the Python layers run
 * them: the float-activation weights in one call, then the others in one call. A weight's result
 * does not depend on which others share its call. */
static int project(int level, const dl_proj *const *projs, float *const *outs, int n, int K, const float *x, int T,
                   int nthreads) {
    qm_weight fa[4], q8[4];
    int nfa = 0, nq8 = 0;
    for (int i = 0; i < n; i++) {
        qm_weight w = projs[i]->w;
        w.out = outs[i];
        if (projs[i]->float_act) fa[nfa++] = w;
        else q8[nq8++] = w;
    }
    int rc = QM_OK;
    if (nfa) rc = qmatmul_float_run(level, fa, nfa, K, x, T, nthreads);
    if (rc == QM_OK && nq8) rc = qmatmul_many_run(level, q8, nq8, K, x, T, nthreads);
    return rc;
}

/* logits = out @ head^T, when the plan has a head. */
static int head(int level, const dl_model *m, const dl_step *s, int nthreads) {
    if (!m->has_head) return 0;
    const dl_proj *p[1] = {&m->head};
    float *o[1] = {s->logits};
    return project(level, p, o, 1, m->hidden, s->out, s->T, nthreads);
}

int decode_layers_run(int level, const dl_model *m, const dl_step *s, int nthreads, int *bad_layer, int *bad_seq) {
    const int T = s->T, H = m->hidden, D = m->D;
    float *h = s->out;   /* each sub-layer's input (normed) and output, in turn */
    *bad_layer = -1;
    *bad_seq = -1;
    if (m->n_layers == 0) {
        ops_rms_norm(level, s->x, NULL, m->final_norm, m->eps, T, H, h, nthreads);
        return head(level, m, s, nthreads);
    }
    for (int l = 0; l < m->n_layers; l++) {
        const dl_layer *L = &m->layers[l];
        /* residual += previous output, h = norm(residual); the first layer norms the embeddings */
        if (l == 0) ops_rms_norm(level, s->x, NULL, L->attn_norm, m->eps, T, H, h, nthreads);
        else ops_rms_norm(level, h, s->x, L->attn_norm, m->eps, T, H, h, nthreads);

        const dl_proj *qkv[3] = {&L->q, &L->k, &L->v};
        float *qkv_out[3] = {s->q, s->k, s->v};
        int rc = project(level, qkv, qkv_out, 3, H, h, T, nthreads);
        if (rc != QM_OK) { *bad_layer = l; return rc; }

        ops_heads jobs[3] = {{s->q, m->Hq, L->q_bias, L->q_norm, 1}, {s->k, m->Hk, L->k_bias, L->k_norm, 1},
                             {s->v, m->Hk, L->v_bias, NULL, 0}};
        const float *cs = L->local_rope ? s->cos_local : s->cos, *sn = L->local_rope ? s->sin_local : s->sin;
        ops_heads_epilogue(level, jobs, L->v_bias ? 3 : 2, T, D, m->eps, cs, sn, nthreads);

        att_args a;
        a.q = s->q;
        a.kv = L->kv;
        a.kv_half = m->kv_half;
        a.block_tables = s->block_tables;
        a.seq_lens = s->seq_lens;
        a.out = s->att;
        a.B = T; a.Hq = m->Hq; a.Hk = m->Hk; a.D = D;
        a.num_blocks = m->num_blocks;
        a.block_size = m->block_size;
        a.max_blocks = s->max_blocks;
        a.window = L->window >= 0 ? L->window : s->window;
        a.scale = m->scale;
        a.softcap = m->softcap;
        a.k_new = s->k; a.v_new = s->v; a.slots = s->slots;
        rc = paged_decode_attention_run(level, &a, nthreads, bad_seq);
        if (rc != ATT_OK) { *bad_layer = l; return DL_ATT_ERROR_BASE + rc; }

        const dl_proj *o[1] = {&L->o};
        float *o_out[1] = {h};
        rc = project(level, o, o_out, 1, m->Hq * D, s->att, T, nthreads);
        if (rc != QM_OK) { *bad_layer = l; return rc; }

        if (L->post_attn_norm) ops_rms_norm(level, h, NULL, L->post_attn_norm, m->eps, T, H, h, nthreads);
        ops_rms_norm(level, h, s->x, L->ffn_norm, m->eps, T, H, h, nthreads);
        if (L->moe) {
            if (T != 1) { *bad_layer = l; return QM_ESHAPE; }
            rc = moe_token_run(level, L->moe, h, h, nthreads);
            if (rc != QM_OK) { *bad_layer = l; return rc; }
            continue;
        }
        const dl_proj *gu[2] = {&L->gate, &L->up};
        float *gu_out[2] = {s->gate, s->up};
        rc = project(level, gu, gu_out, 2, H, h, T, nthreads);
        if (rc != QM_OK) { *bad_layer = l; return rc; }
        if (m->gelu) ops_gelu_tanh_mul(level, s->gate, s->up, (long long)T * m->inter, s->gate, nthreads);
        else ops_silu_mul(level, s->gate, s->up, (long long)T * m->inter, s->gate, nthreads);

        const dl_proj *down[1] = {&L->down};
        float *down_out[1] = {h};
        rc = project(level, down, down_out, 1, m->inter, s->gate, T, nthreads);
        if (rc != QM_OK) { *bad_layer = l; return rc; }
        if (L->post_ffn_norm) ops_rms_norm(level, h, NULL, L->post_ffn_norm, m->eps, T, H, h, nthreads);
    }
    ops_rms_norm(level, h, s->x, m->final_norm, m->eps, T, H, h, nthreads);
    return head(level, m, s, nthreads);
}
