/* Mixture-of-experts routing and one token's experts (moe.h). */
#include "moe.h"

#include <math.h>
#include <stdlib.h>

#include "ops.h"

/* Router values (E * hidden) from which routing splits over threads. */
#define MOE_PARALLEL_MIN (1 << 18)

/* sum of r[i] x[i] in 16 running sums, then their total: the order is fixed, whatever the CPU. */
static float dot16(const float *r, const float *x, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += r[i + j] * x[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += r[i] * x[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* probs (E) = softmax(logits) in place; then the top_k into w, ids. */
static void softmax_top_k(float *p, int E, int k, int normalize, float *w, int64_t *ids) {
    float m = p[0];
    for (int e = 1; e < E; e++)
        if (p[e] > m) m = p[e];
    float s = 0.0f;
    for (int e = 0; e < E; e++) {
        p[e] = expf(p[e] - m);
        s += p[e];
    }
    for (int e = 0; e < E; e++) p[e] /= s;
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int j = 0; j < i; j++) taken |= ids[j] == e;
            if (taken) continue;
            if (best < 0 || p[e] > p[best]) best = e;  /* NaN never wins: the first unchosen stays */
        }
        ids[i] = best;
        w[i] = p[best];
    }
    if (normalize) {
        float t = 0.0f;
        for (int i = 0; i < k; i++) t += w[i];
        for (int i = 0; i < k; i++) w[i] /= t;
    }
}

int moe_route(int level, const moe_block *b, const float *x, int T, float *weights, int64_t *chosen, int nthreads) {
    const int E = b->E, K = b->hidden;
    float *logits = malloc((size_t)T * (size_t)E * sizeof(float));
    if (!logits) return QM_ENOMEM;
    if (b->router) {
        /* a float32 router is E * hidden * 4 bytes (1 MB for Qwen3-30B-A3B's): split over the
         * threads when that large; each logit is one dot, whatever thread computes it */
        const long long n = (long long)T * E;
        const int nt = (long long)E * K >= MOE_PARALLEL_MIN ? nthreads : 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
        for (long long i = 0; i < n; i++) {
            const int t = (int)(i / E), e = (int)(i % E);
            logits[i] = dot16(b->router + (size_t)e * K, x + (size_t)t * K, K);
        }
        (void)nt;
    } else {
        int rc = qmatmul_run(level, b->router_q.type_id, b->router_q.w, b->router_q.row_stride, E, K, x, T, logits,
                             nthreads);
        if (rc != QM_OK) { free(logits); return rc; }
    }
    for (int t = 0; t < T; t++)
        softmax_top_k(logits + (size_t)t * E, E, b->top_k, b->normalize, weights + (size_t)t * b->top_k,
                      chosen + (size_t)t * b->top_k);
    free(logits);
    return QM_OK;
}

int moe_token_run(int level, const moe_block *b, const float *x, float *out, int nthreads) {
    enum { MAX_K = MOE_MAX_TOP_K };
    const int k = b->top_k, size = b->size, H = b->hidden;
    if (!b->experts || k > MAX_K) return QM_ESHAPE;
    float w[MAX_K];
    int64_t ids[MAX_K];
    int rc = moe_route(level, b, x, 1, w, ids, nthreads);
    if (rc != QM_OK) return rc;
    for (int i = 1; i < k; i++) /* ascending expert order (insertion sort of k ids with their weights) */
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            int64_t ti = ids[j]; ids[j] = ids[j - 1]; ids[j - 1] = ti;
            float tw = w[j]; w[j] = w[j - 1]; w[j - 1] = tw;
        }
    /* g, u (k, size); y (k, H) */
    float *g = malloc(((size_t)2 * k * size + (size_t)k * H) * sizeof(float));
    if (!g) return QM_ENOMEM;
    float *u = g + (size_t)k * size, *y = u + (size_t)k * size;
    qm_weight jobs[2 * MAX_K];
    const float *xs[MAX_K];
    for (int i = 0; i < k; i++) {
        const qm_weight *e = b->experts + 3 * ids[i];
        jobs[2 * i] = e[0];
        jobs[2 * i].out = g + (size_t)i * size;
        jobs[2 * i + 1] = e[1];
        jobs[2 * i + 1].out = u + (size_t)i * size;
    }
    rc = qmatmul_many_run(level, jobs, 2 * k, H, x, 1, nthreads);
    if (rc == QM_OK) {
        ops_silu_mul(level, g, u, (long long)k * size, g, nthreads);
        for (int i = 0; i < k; i++) {
            jobs[i] = b->experts[3 * ids[i] + 2];
            jobs[i].out = y + (size_t)i * H;
            xs[i] = g + (size_t)i * size;
        }
        rc = qmatmul_each_run(level, jobs, k, size, xs, 1, nthreads);
    }
    if (rc == QM_OK) {
        for (int j = 0; j < H; j++) out[j] = 0.0f;
        for (int i = 0; i < k; i++) {
            const float *yi = y + (size_t)i * H;
            for (int j = 0; j < H; j++) {
                const float p = yi[j] * w[i];
                out[j] += p;
            }
        }
    }
    free(g);
    return rc;
}
