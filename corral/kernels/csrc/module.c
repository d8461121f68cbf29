/* CPython bindings: raw addresses and sizes in, nothing allocated on the Python side. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "attention.h"
#include "decode_layers.h"
#include "dispatch.h"
#include "float_act.h"
#include "moe.h"
#include "ops.h"

static const char *LEVEL_NAMES[] = {"scalar", "avx2", "avxvnni", "avx512vnni"};

static int check_level(int level) {
    if (!kernels_level_supported(level)) {
        PyErr_Format(PyExc_ValueError, "instruction set level %d is not available on this CPU", level);
        return -1;
    }
    return 0;
}

static PyObject *py_qmatmul(PyObject *self, PyObject *args) {
    int level, type_id, N, K, T, nthreads;
    unsigned long long w, x, out;
    Py_ssize_t row_stride;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiKniiKiKi", &level, &type_id, &w, &row_stride, &N, &K, &x, &T, &out,
                          &nthreads))
        return NULL;
    if (check_level(level)) return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qmatmul_run(level, type_id, (const uint8_t *)(uintptr_t)w, (size_t)row_stride, N, K,
                     (const float *)(uintptr_t)x, T, (float *)(uintptr_t)out, nthreads);
    Py_END_ALLOW_THREADS
    switch (rc) {
    case QM_OK: Py_RETURN_NONE;
    case QM_ENOMEM: return PyErr_NoMemory();
    case QM_ETYPE: PyErr_Format(PyExc_ValueError, "GGML type %d has no kernel", type_id); return NULL;
    default: PyErr_Format(PyExc_ValueError, "bad shape N=%d K=%d T=%d for type %d", N, K, T, type_id); return NULL;
    }
}

typedef int (*jobs_runner)(int level, const qm_weight *jobs, int njobs, int K, const float *x, int T, int nthreads);

/* (level, [(type_id, w_addr, row_stride, N, out_addr), ...], K, x_addr, T, n_threads) -> run(...). */
static PyObject *run_weight_list(PyObject *args, jobs_runner run) {
    int level, K, T, nthreads;
    unsigned long long x;
    PyObject *list;
    if (!PyArg_ParseTuple(args, "iO!iKii", &level, &PyList_Type, &list, &K, &x, &T, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    const Py_ssize_t n = PyList_GET_SIZE(list);
    qm_weight *jobs = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(qm_weight));
    if (!jobs) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long w, out;
        Py_ssize_t stride;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "iKniK", &jobs[i].type_id, &w, &stride, &jobs[i].N, &out)) {
            PyMem_Free(jobs);
            return NULL;
        }
        jobs[i].w = (const uint8_t *)(uintptr_t)w;
        jobs[i].row_stride = (size_t)stride;
        jobs[i].out = (float *)(uintptr_t)out;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = run(level, jobs, (int)n, K, (const float *)(uintptr_t)x, T, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_Free(jobs);
    switch (rc) {
    case QM_OK: Py_RETURN_NONE;
    case QM_ENOMEM: return PyErr_NoMemory();
    case QM_ETYPE: PyErr_SetString(PyExc_ValueError, "a weight's GGML type has no kernel"); return NULL;
    default: PyErr_Format(PyExc_ValueError, "bad shape K=%d T=%d for one of the weights", K, T); return NULL;
    }
}

static PyObject *py_qmatmul_many(PyObject *self, PyObject *args) {
    (void)self;
    return run_weight_list(args, qmatmul_many_run);
}

static PyObject *py_qmatmul_each(PyObject *self, PyObject *args) {
    int level, K, T, nthreads;
    PyObject *list;
    (void)self;
    if (!PyArg_ParseTuple(args, "iO!iii", &level, &PyList_Type, &list, &K, &T, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    const Py_ssize_t n = PyList_GET_SIZE(list);
    qm_weight *jobs = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(qm_weight));
    const float **xs = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof(float *));
    if (!jobs || !xs) { PyMem_Free(jobs); PyMem_Free(xs); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long w, out, x;
        Py_ssize_t stride;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "iKniKK", &jobs[i].type_id, &w, &stride, &jobs[i].N, &out, &x)) {
            PyMem_Free(jobs);
            PyMem_Free(xs);
            return NULL;
        }
        jobs[i].w = (const uint8_t *)(uintptr_t)w;
        jobs[i].row_stride = (size_t)stride;
        jobs[i].out = (float *)(uintptr_t)out;
        xs[i] = (const float *)(uintptr_t)x;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qmatmul_each_run(level, jobs, (int)n, K, xs, T, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_Free(jobs);
    PyMem_Free(xs);
    switch (rc) {
    case QM_OK: Py_RETURN_NONE;
    case QM_ENOMEM: return PyErr_NoMemory();
    case QM_ETYPE: PyErr_SetString(PyExc_ValueError, "a weight's GGML type has no kernel"); return NULL;
    default: PyErr_Format(PyExc_ValueError, "bad shape K=%d T=%d for one of the weights", K, T); return NULL;
    }
}

static PyObject *py_qmatmul_float(PyObject *self, PyObject *args) {
    (void)self;
    return run_weight_list(args, qmatmul_float_run);
}

/* The small ops take microseconds at one token: they keep the GIL then, since handing it to
 * another thread can cost a whole switch interval to get it back. Larger calls release it. */
#define OPS_GIL_FREE_MIN 65536

/* CALL (a statement), with the GIL released when it touches `work` values or more. */
#define OPS_CALL(work, CALL) \
    do { \
        if ((work) >= OPS_GIL_FREE_MIN) { \
            Py_BEGIN_ALLOW_THREADS \
            CALL; \
            Py_END_ALLOW_THREADS \
        } else { \
            CALL; \
        } \
    } while (0)

static PyObject *py_rms_norm(PyObject *self, PyObject *args) {
    int level, T, D, nthreads;
    unsigned long long x, residual, w, out;
    float eps;
    (void)self;
    if (!PyArg_ParseTuple(args, "iKKKfiiKi", &level, &x, &residual, &w, &eps, &T, &D, &out, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    const float *px = (const float *)(uintptr_t)x, *pw = (const float *)(uintptr_t)w;
    float *pr = (float *)(uintptr_t)residual, *po = (float *)(uintptr_t)out;
    OPS_CALL((long long)T * D, ops_rms_norm(level, px, pr, pw, eps, T, D, po, nthreads));
    Py_RETURN_NONE;
}

static PyObject *py_heads_epilogue(PyObject *self, PyObject *args) {
    int level, T, D, nthreads;
    unsigned long long cos, sin;
    float eps;
    PyObject *list;
    (void)self;
    if (!PyArg_ParseTuple(args, "iO!iifKKi", &level, &PyList_Type, &list, &T, &D, &eps, &cos, &sin, &nthreads))
        return NULL;
    if (check_level(level)) return NULL;
    enum { MAX_JOBS = 8 };
    ops_heads jobs[MAX_JOBS];
    const Py_ssize_t n = PyList_GET_SIZE(list);
    if (n > MAX_JOBS) {
        PyErr_Format(PyExc_ValueError, "at most %d tensors per call, got %zd", (int)MAX_JOBS, n);
        return NULL;
    }
    long long work = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long x, bias, norm_w;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "KiKKp", &x, &jobs[i].H, &bias, &norm_w, &jobs[i].rotate))
            return NULL;
        jobs[i].x = (float *)(uintptr_t)x;
        jobs[i].bias = (const float *)(uintptr_t)bias;
        jobs[i].norm_w = (const float *)(uintptr_t)norm_w;
        work += (long long)T * jobs[i].H * D;
    }
    const float *pc = (const float *)(uintptr_t)cos, *ps = (const float *)(uintptr_t)sin;
    OPS_CALL(work, ops_heads_epilogue(level, jobs, (int)n, T, D, eps, pc, ps, nthreads));
    Py_RETURN_NONE;
}

typedef void (*act_mul_fn)(int level, const float *gate, const float *up, long long n, float *out, int nthreads);

/* (level, gate_addr, up_addr, n, out_addr, n_threads) -> fn(...) */
static PyObject *run_act_mul(PyObject *args, act_mul_fn fn) {
    int level, nthreads;
    unsigned long long gate, up, out;
    long long n;
    if (!PyArg_ParseTuple(args, "iKKLKi", &level, &gate, &up, &n, &out, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    const float *pg = (const float *)(uintptr_t)gate, *pu = (const float *)(uintptr_t)up;
    float *po = (float *)(uintptr_t)out;
    OPS_CALL(n, fn(level, pg, pu, n, po, nthreads));
    Py_RETURN_NONE;
}

static PyObject *py_silu_mul(PyObject *self, PyObject *args) {
    (void)self;
    return run_act_mul(args, ops_silu_mul);
}

static PyObject *py_gelu_tanh_mul(PyObject *self, PyObject *args) {
    (void)self;
    return run_act_mul(args, ops_gelu_tanh_mul);
}

static PyObject *py_argmax_rows(PyObject *self, PyObject *args) {
    int level, rows, nthreads;
    unsigned long long x, out;
    long long n;
    (void)self;
    if (!PyArg_ParseTuple(args, "iKiLKi", &level, &x, &rows, &n, &out, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    if (rows < 0 || n < 1) {
        PyErr_SetString(PyExc_ValueError, "argmax_rows needs rows >= 0 and n >= 1");
        return NULL;
    }
    const float *px = (const float *)(uintptr_t)x;
    int64_t *po = (int64_t *)(uintptr_t)out;
    OPS_CALL((long long)rows * n, ops_argmax_rows(level, px, rows, n, po, nthreads));
    Py_RETURN_NONE;
}

static PyObject *py_dequant_rows(PyObject *self, PyObject *args) {
    int type_id, n, K;
    unsigned long long w, ids, out;
    Py_ssize_t row_stride;
    long long nrows;
    (void)self;
    if (!PyArg_ParseTuple(args, "iKnLKiiK", &type_id, &w, &row_stride, &nrows, &ids, &n, &K, &out)) return NULL;
    const int rc = ops_dequant_rows(type_id, (const uint8_t *)(uintptr_t)w, (size_t)row_stride, nrows,
                                    (const int64_t *)(uintptr_t)ids, n, (int)K, (float *)(uintptr_t)out);
    switch (rc) {
    case QM_OK: Py_RETURN_NONE;
    case QM_ENOMEM: return PyErr_NoMemory();
    case QM_ETYPE: PyErr_Format(PyExc_ValueError, "GGML type %d has no kernel", type_id); return NULL;
    default: PyErr_Format(PyExc_ValueError, "row ids must be in [0, %lld) and K=%d whole blocks", nrows, K); return NULL;
    }
}

static PyObject *py_repack_q4_0_x16(PyObject *self, PyObject *args) {
    unsigned long long src, dst;
    Py_ssize_t stride;
    int N, K;
    (void)self;
    if (!PyArg_ParseTuple(args, "KniiK", &src, &stride, &N, &K, &dst)) return NULL;
    if (N <= 0 || N % X16_ROWS != 0 || K <= 0 || K % 32 != 0 || stride < (Py_ssize_t)(K / 32) * 18) {
        PyErr_Format(PyExc_ValueError, "cannot repack a %dx%d Q4_0 weight with rows %zd bytes apart into groups of %d",
                     N, K, stride, X16_ROWS);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    repack_q4_0_x16((const uint8_t *)(uintptr_t)src, (size_t)stride, N, K, (uint8_t *)(uintptr_t)dst);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_paged_decode_attention(PyObject *self, PyObject *args) {
    int level, nthreads, bad_seq = -1;
    unsigned long long q, kv, tables, lens, out, k_new = 0, v_new = 0, slots = 0;
    long long num_blocks;
    att_args a;
    (void)self;
    a.softcap = 0.0f;
    if (!PyArg_ParseTuple(args, "iKKKKKiiiiLiiifip|KKKf", &level, &q, &kv, &tables, &lens, &out, &a.B, &a.Hq, &a.Hk,
                          &a.D, &num_blocks, &a.block_size, &a.max_blocks, &a.window, &a.scale, &nthreads, &a.kv_half,
                          &k_new, &v_new, &slots, &a.softcap))
        return NULL;
    if ((k_new == 0) != (v_new == 0) || (k_new == 0) != (slots == 0)) {
        PyErr_SetString(PyExc_ValueError, "new keys, values and slots come together");
        return NULL;
    }
    a.k_new = (const float *)(uintptr_t)k_new;
    a.v_new = (const float *)(uintptr_t)v_new;
    a.slots = (const int64_t *)(uintptr_t)slots;
    if (check_level(level)) return NULL;
    a.num_blocks = (int64_t)num_blocks;
    a.q = (const float *)(uintptr_t)q;
    a.kv = (const void *)(uintptr_t)kv;
    a.block_tables = (const int64_t *)(uintptr_t)tables;
    a.seq_lens = (const int64_t *)(uintptr_t)lens;
    a.out = (float *)(uintptr_t)out;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = paged_decode_attention_run(level, &a, nthreads, &bad_seq);
    Py_END_ALLOW_THREADS
    switch (rc) {
    case ATT_OK: Py_RETURN_NONE;
    case ATT_ELEN:
        PyErr_Format(PyExc_ValueError, "seq_lens[%d] = %lld is outside 1..%lld (the block table's capacity)",
                     bad_seq, (long long)a.seq_lens[bad_seq], (long long)a.max_blocks * a.block_size);
        return NULL;
    case ATT_EBLOCK:
        PyErr_Format(PyExc_ValueError, "block_tables row %d names a block outside 0..%lld", bad_seq,
                     (long long)a.num_blocks - 1);
        return NULL;
    case ATT_ESLOT:
        PyErr_Format(PyExc_ValueError, "slots[%d] = %lld is outside the cache's 0..%lld", bad_seq,
                     (long long)a.slots[bad_seq], (long long)a.num_blocks * a.block_size - 1);
        return NULL;
    default:
        PyErr_Format(PyExc_ValueError, "bad attention shape B=%d Hq=%d Hk=%d D=%d blocks=%lld block_size=%d "
                     "(Hq must be a multiple of Hk, at most %d times it)", a.B, a.Hq, a.Hk, a.D,
                     (long long)a.num_blocks, a.block_size, ATT_MAX_GROUP);
        return NULL;
    }
}


/* (type_id, w_addr, row_stride, N), or with float_act not NULL (type_id, w_addr, row_stride, N,
 * float_act); out unset. */
static int parse_weight(PyObject *t, qm_weight *w, int *float_act) {
    unsigned long long addr;
    Py_ssize_t stride;
    if (float_act ? !PyArg_ParseTuple(t, "iKnip", &w->type_id, &addr, &stride, &w->N, float_act)
                  : !PyArg_ParseTuple(t, "iKni", &w->type_id, &addr, &stride, &w->N))
        return -1;
    w->w = (const uint8_t *)(uintptr_t)addr;
    w->row_stride = (size_t)stride;
    w->out = NULL;
    return 0;
}

/* ---- decode plans: a model's layers as decode_layers_run takes them, built once ---- */

#define PLAN_CAPSULE "corral.decode_plan"

static void plan_free(PyObject *capsule) {
    dl_model *m = PyCapsule_GetPointer(capsule, PLAN_CAPSULE);
    if (m) {
        PyMem_Free(m->layers);
        PyMem_Free(m);
    }
}

/* (type_id, w_addr, row_stride, N, float_act) */
static int parse_proj(PyObject *t, dl_proj *p) { return parse_weight(t, &p->w, &p->float_act); }

#define ADDR(v) ((const float *)(uintptr_t)(v))

/* ---- mixture-of-experts blocks: a router and its experts' weights, built once ---- */

#define MOE_CAPSULE "corral.moe_block"

typedef struct {
    moe_block b;
    qm_weight *experts;
} moe_plan;

static void moe_plan_free(PyObject *capsule) {
    moe_plan *p = PyCapsule_GetPointer(capsule, MOE_CAPSULE);
    if (p) {
        PyMem_Free(p->experts);
        PyMem_Free(p);
    }
}


/* (router_addr or 0, router weight tuple or None, E, hidden, size, top_k, normalize, experts or None) -> capsule.
 * experts: 3 E weight tuples (gate, up, down of each expert in turn). */
static PyObject *py_moe_plan(PyObject *self, PyObject *args) {
    unsigned long long router;
    PyObject *router_q, *experts;
    moe_plan *p = PyMem_Calloc(1, sizeof(moe_plan));
    (void)self;
    if (!p) return PyErr_NoMemory();
    moe_block *b = &p->b;
    if (!PyArg_ParseTuple(args, "KOiiiipO", &router, &router_q, &b->E, &b->hidden, &b->size, &b->top_k,
                          &b->normalize, &experts))
        goto fail;
    if (b->E < 1 || b->top_k < 1 || b->top_k > b->E || b->top_k > MOE_MAX_TOP_K || b->hidden < 1 || b->size < 1) {
        PyErr_Format(PyExc_ValueError, "bad mixture: top %d of %d experts, hidden %d, size %d", b->top_k, b->E,
                     b->hidden, b->size);
        goto fail;
    }
    b->router = ADDR(router);
    if (!b->router && (router_q == Py_None || parse_weight(router_q, &b->router_q, NULL))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a router is needed");
        goto fail;
    }
    if (experts != Py_None) {
        if (!PyList_Check(experts) || PyList_GET_SIZE(experts) != 3 * (Py_ssize_t)b->E) {
            PyErr_SetString(PyExc_ValueError, "experts: a list of 3 weights an expert");
            goto fail;
        }
        p->experts = PyMem_Calloc(3 * (size_t)b->E, sizeof(qm_weight));
        if (!p->experts) { PyErr_NoMemory(); goto fail; }
        for (int i = 0; i < 3 * b->E; i++)
            if (parse_weight(PyList_GET_ITEM(experts, i), &p->experts[i], NULL)) goto fail;
        b->experts = p->experts;
    }
    PyObject *capsule = PyCapsule_New(p, MOE_CAPSULE, moe_plan_free);
    if (capsule) return capsule;
fail:
    PyMem_Free(p->experts);
    PyMem_Free(p);
    return NULL;
}

static PyObject *qm_error(int rc) {
    switch (rc) {
    case QM_ENOMEM: return PyErr_NoMemory();
    case QM_ETYPE: PyErr_SetString(PyExc_ValueError, "a weight's GGML type has no kernel"); return NULL;
    default: PyErr_SetString(PyExc_ValueError, "bad shapes for one of the weights"); return NULL;
    }
}

/* (level, plan, x_addr, T, weights_addr, chosen_addr, n_threads) */
static PyObject *py_moe_route(PyObject *self, PyObject *args) {
    int level, T, nthreads, rc;
    PyObject *capsule;
    unsigned long long x, w, ids;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOKiKKi", &level, &capsule, &x, &T, &w, &ids, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    const moe_plan *p = PyCapsule_GetPointer(capsule, MOE_CAPSULE);
    if (!p) return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = moe_route(level, &p->b, ADDR(x), T, (float *)(uintptr_t)w, (int64_t *)(uintptr_t)ids, nthreads);
    Py_END_ALLOW_THREADS
    return rc == QM_OK ? Py_NewRef(Py_None) : qm_error(rc);
}

/* (level, plan, x_addr, out_addr, n_threads) */
static PyObject *py_moe_token(PyObject *self, PyObject *args) {
    int level, nthreads, rc;
    PyObject *capsule;
    unsigned long long x, out;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOKKi", &level, &capsule, &x, &out, &nthreads)) return NULL;
    if (check_level(level)) return NULL;
    const moe_plan *p = PyCapsule_GetPointer(capsule, MOE_CAPSULE);
    if (!p) return NULL;
    if (!p->b.experts) {
        PyErr_SetString(PyExc_ValueError, "the mixture's experts are not all kept in blocks");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = moe_token_run(level, &p->b, ADDR(x), (float *)(uintptr_t)out, nthreads);
    Py_END_ALLOW_THREADS
    return rc == QM_OK ? Py_NewRef(Py_None) : qm_error(rc);
}

/* ([(q, k, v, o, gate, up, down, attn_norm, ffn_norm, q_bias, k_bias, v_bias, q_norm, k_norm, kv
 *    [, moe plan or None, post_attn_norm, post_ffn_norm, local_rope, window]), ...],
 *  hidden, Hq, Hk, D, inter, eps, scale, kv_half, block_size, num_blocks, final_norm, head or None
 *  [, gelu, softcap]) -> capsule.
 * Projections as parse_proj takes them; the rest addresses, 0 for none; window -1: the step's. */
static PyObject *py_decode_plan(PyObject *self, PyObject *args) {
    PyObject *list, *head;
    unsigned long long final_norm;
    long long num_blocks;
    dl_model *m = PyMem_Calloc(1, sizeof(dl_model));
    (void)self;
    if (!m) return PyErr_NoMemory();
    if (!PyArg_ParseTuple(args, "O!iiiiiffpiLKO|pf", &PyList_Type, &list, &m->hidden, &m->Hq, &m->Hk, &m->D,
                          &m->inter, &m->eps, &m->scale, &m->kv_half, &m->block_size, &num_blocks, &final_norm, &head,
                          &m->gelu, &m->softcap)) {
        PyMem_Free(m);
        return NULL;
    }
    m->has_head = head != Py_None;
    if (m->has_head && parse_proj(head, &m->head)) {
        PyMem_Free(m);
        return NULL;
    }
    m->num_blocks = (int64_t)num_blocks;
    m->final_norm = ADDR(final_norm);
    m->n_layers = (int)PyList_GET_SIZE(list);
    m->layers = PyMem_Calloc(m->n_layers > 0 ? (size_t)m->n_layers : 1, sizeof(dl_layer));
    if (!m->layers) { PyMem_Free(m); return PyErr_NoMemory(); }
    for (int i = 0; i < m->n_layers; i++) {
        dl_layer *L = &m->layers[i];
        PyObject *q, *k, *v, *o, *g, *u, *d;
        PyObject *moe = Py_None;
        unsigned long long an, fn, qb, kb, vb, qn, kn, kv, pan = 0, pfn = 0;
        L->window = -1;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(list, i), "OOOOOOOKKKKKKKK|OKKpi", &q, &k, &v, &o, &g, &u, &d, &an, &fn,
                              &qb, &kb, &vb, &qn, &kn, &kv, &moe, &pan, &pfn, &L->local_rope, &L->window)
            || parse_proj(q, &L->q) || parse_proj(k, &L->k) || parse_proj(v, &L->v) || parse_proj(o, &L->o)
            || parse_proj(g, &L->gate) || parse_proj(u, &L->up) || parse_proj(d, &L->down)) {
            PyMem_Free(m->layers);
            PyMem_Free(m);
            return NULL;
        }
        L->attn_norm = ADDR(an); L->ffn_norm = ADDR(fn);
        L->q_bias = ADDR(qb); L->k_bias = ADDR(kb); L->v_bias = ADDR(vb);
        L->q_norm = ADDR(qn); L->k_norm = ADDR(kn);
        L->kv = (void *)(uintptr_t)kv;
        L->post_attn_norm = ADDR(pan); L->post_ffn_norm = ADDR(pfn);
        if (moe != Py_None) {
            const moe_plan *mp = PyCapsule_GetPointer(moe, MOE_CAPSULE);
            if (!mp || !mp->b.experts) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a mixture's experts must be in blocks");
                PyMem_Free(m->layers);
                PyMem_Free(m);
                return NULL;
            }
            L->moe = &mp->b;  /* the caller keeps the mixture's capsule alive as long as this plan */
        }
    }
    PyObject *capsule = PyCapsule_New(m, PLAN_CAPSULE, plan_free);
    if (!capsule) { PyMem_Free(m->layers); PyMem_Free(m); }
    return capsule;
}

/* (level, plan, T, max_blocks, window, x, out, cos, sin, block_tables, seq_lens, slots, q, k, v, att, gate, up,
 *  logits, n_threads[, cos_local, sin_local]): decode_layers_run, the GIL released throughout. */
static PyObject *py_decode_layers(PyObject *self, PyObject *args) {
    int level, nthreads, bad_layer = -1, bad_seq = -1;
    PyObject *capsule;
    dl_step st;
    unsigned long long x, out, cs, sn, tables, lens, slots, q, k, v, att, gate, up, logits, csl = 0, snl = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "iOiiiKKKKKKKKKKKKKKi|KK", &level, &capsule, &st.T, &st.max_blocks, &st.window, &x,
                          &out, &cs, &sn, &tables, &lens, &slots, &q, &k, &v, &att, &gate, &up, &logits, &nthreads,
                          &csl, &snl))
        return NULL;
    st.cos_local = ADDR(csl); st.sin_local = ADDR(snl);
    st.logits = (float *)(uintptr_t)logits;
    if (check_level(level)) return NULL;
    const dl_model *m = PyCapsule_GetPointer(capsule, PLAN_CAPSULE);
    if (!m) return NULL;
    if (m->has_head && !logits) {
        PyErr_SetString(PyExc_ValueError, "the plan has an output projection: logits are needed");
        return NULL;
    }
    for (int l = 0; l < m->n_layers; l++)
        if (m->layers[l].local_rope && (!csl || !snl)) {
            PyErr_SetString(PyExc_ValueError, "the plan has layers with local rotary tables: they are needed");
            return NULL;
        }
    st.x = (float *)(uintptr_t)x; st.out = (float *)(uintptr_t)out;
    st.cos = ADDR(cs); st.sin = ADDR(sn);
    st.block_tables = (const int64_t *)(uintptr_t)tables;
    st.seq_lens = (const int64_t *)(uintptr_t)lens;
    st.slots = (const int64_t *)(uintptr_t)slots;
    st.q = (float *)(uintptr_t)q; st.k = (float *)(uintptr_t)k; st.v = (float *)(uintptr_t)v;
    st.att = (float *)(uintptr_t)att; st.gate = (float *)(uintptr_t)gate; st.up = (float *)(uintptr_t)up;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = decode_layers_run(level, m, &st, nthreads, &bad_layer, &bad_seq);
    Py_END_ALLOW_THREADS
    if (rc == 0) Py_RETURN_NONE;
    if (rc == QM_ENOMEM) return PyErr_NoMemory();
    if (rc <= DL_ATT_ERROR_BASE + ATT_ELEN && rc >= DL_ATT_ERROR_BASE + ATT_ESLOT) {
        const int att = rc - DL_ATT_ERROR_BASE;
        PyErr_Format(PyExc_ValueError, "layer %d: %s of sequence %d is outside the KV cache", bad_layer,
                     att == ATT_ELEN ? "the length" : att == ATT_EBLOCK ? "a block id" : "the new slot", bad_seq);
        return NULL;
    }
    PyErr_Format(PyExc_ValueError, "layer %d: bad shapes for the decode kernels (code %d)", bad_layer, rc);
    return NULL;
}

static PyObject *py_best_level(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    return PyLong_FromLong(kernels_best_level());
}

static PyObject *py_level_supported(PyObject *self, PyObject *args) {
    int level;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &level)) return NULL;
    return PyBool_FromLong(kernels_level_supported(level));
}

static PyObject *py_level_name(PyObject *self, PyObject *args) {
    int level;
    (void)self;
    if (!PyArg_ParseTuple(args, "i", &level)) return NULL;
    if (level < 0 || level > ISA_AVX512) {
        PyErr_Format(PyExc_ValueError, "no instruction set level %d", level);
        return NULL;
    }
    return PyUnicode_FromString(LEVEL_NAMES[level]);
}

static PyObject *py_has_row_dot(PyObject *self, PyObject *args) {
    int level, type_id;
    (void)self;
    if (!PyArg_ParseTuple(args, "ii", &level, &type_id)) return NULL;
    if (type_id < 0 || type_id >= QT_MAX) Py_RETURN_FALSE;
    return PyBool_FromLong(kernels_for_level(level)->row_dot[type_id] != NULL);
}

static PyObject *py_row_dot_max_tokens(PyObject *self, PyObject *args) {
    int level, type_id;
    (void)self;
    if (!PyArg_ParseTuple(args, "ii", &level, &type_id)) return NULL;
    if (level < 0 || level > ISA_AVX512) {
        PyErr_Format(PyExc_ValueError, "no instruction set level %d", level);
        return NULL;
    }
    return PyLong_FromLong(row_dot_max_tokens(level, type_id));
}

static PyMethodDef METHODS[] = {
    {"qmatmul", py_qmatmul, METH_VARARGS,
     "qmatmul(level, type_id, w_addr, row_stride, N, K, x_addr, T, out_addr, n_threads)\n"
     "out(T, N) float32 = x(T, K) float32 @ W(N, K)^T, W in GGUF blocks; all buffers contiguous."},
    {"qmatmul_many", py_qmatmul_many, METH_VARARGS,
     "qmatmul_many(level, [(type_id, w_addr, row_stride, N, out_addr), ...], K, x_addr, T, n_threads)\n"
     "qmatmul for several weights sharing x(T, K): x is quantized once, one parallel region."},
    {"qmatmul_each", py_qmatmul_each, METH_VARARGS,
     "qmatmul_each(level, [(type_id, w_addr, row_stride, N, out_addr, x_addr), ...], K, T, n_threads)\n"
     "out_i(T, N_i) = x_i(T, K) @ W_i(N_i, K)^T, each weight against its own x, one parallel region."},
    {"qmatmul_float", py_qmatmul_float, METH_VARARGS,
     "qmatmul_float(level, [(type_id, w_addr, row_stride, N, out_addr), ...], K, x_addr, T, n_threads)\n"
     "out(T, N) = x(T, K) @ W(N, K)^T for each weight with x kept in float32 (never quantized)."},
    {"rms_norm", py_rms_norm, METH_VARARGS,
     "rms_norm(level, x_addr, residual_addr_or_0, w_addr, eps, T, D, out_addr, n_threads)\n"
     "out(T, D) = RMSNorm(x) * w; with a residual, residual += x first and the norm is of the sum."},
    {"heads_epilogue", py_heads_epilogue, METH_VARARGS,
     "heads_epilogue(level, [(x_addr, H, bias_addr_or_0, norm_w_addr_or_0, rotate), ...], T, D, eps, cos_addr, "
     "sin_addr, n_threads)\nIn place on each x(T, H, D): + bias, per-head RMSNorm, half-split rotary."},
    {"silu_mul", py_silu_mul, METH_VARARGS,
     "silu_mul(level, gate_addr, up_addr, n, out_addr, n_threads)\nout(n) = silu(gate) * up."},
    {"gelu_tanh_mul", py_gelu_tanh_mul, METH_VARARGS,
     "gelu_tanh_mul(level, gate_addr, up_addr, n, out_addr, n_threads)\nout(n) = gelu_tanh(gate) * up."},
    {"argmax_rows", py_argmax_rows, METH_VARARGS,
     "argmax_rows(level, x_addr, rows, n, out_addr, n_threads)\nout(rows) int64 = first maximum of each row of x "
     "(rows, n) float32; the first NaN of a row that has one."},
    {"dequant_rows", py_dequant_rows, METH_VARARGS,
     "dequant_rows(type_id, w_addr, row_stride, n_rows, ids_addr, n, K, out_addr)\n"
     "out(n, K) float32 = rows ids (int64) of a weight in GGUF blocks, dequantized."},
    {"paged_decode_attention", py_paged_decode_attention, METH_VARARGS,
     "paged_decode_attention(level, q_addr, kv_addr, tables_addr, lens_addr, out_addr, B, Hq, Hk, D,\n"
     "                       num_blocks, block_size, max_blocks, window, scale, n_threads, kv_half\n"
     "                       [, k_new_addr, v_new_addr, slots_addr, softcap])\n"
     "out(B, Hq, D) = softmax(scale * q K^T) V over each sequence's cached positions (window 0: all), scores\n"
     "soft-capped to softcap * tanh(score / softcap) when softcap > 0; addresses 0: no new rows;\n"
     "with k_new, v_new (B, Hk, D) float32 and slots (B) int64, those rows are written to the cache first;\n"
     "q, out float32; kv (2, num_blocks, block_size, Hk, D) float32 (float16 with kv_half); tables (B, max_blocks)\n"
     "and lens (B)\n"
     "int64; all contiguous."},
    {"repack_q4_0_x16", py_repack_q4_0_x16, METH_VARARGS,
     "repack_q4_0_x16(src_addr, src_stride, N, K, dst_addr)\n"
     "N rows (a multiple of 16) of GGUF Q4_0 into the 16-row-group layout (N * K / 32 * 18 bytes at dst)."},
    {"moe_plan", py_moe_plan, METH_VARARGS,
     "moe_plan(router_addr or 0, (type_id, w_addr, row_stride, N) or None, E, hidden, size, top_k, normalize,\n"
     "         [3 E (type_id, w_addr, row_stride, N): gate, up, down of each expert] or None) -> plan"},
    {"moe_route", py_moe_route, METH_VARARGS,
     "moe_route(level, plan, x_addr, T, weights_addr, chosen_addr, n_threads)\n"
     "weights (T, top_k) float32, chosen (T, top_k) int64: each row's top experts by router softmax."},
    {"moe_token", py_moe_token, METH_VARARGS,
     "moe_token(level, plan, x_addr, out_addr, n_threads)\nout(hidden) = one token's sparse MLP."},
    {"decode_plan", py_decode_plan, METH_VARARGS,
     "A model's decoder layers for decode_layers: ([(q, k, v, o, gate, up, down, attn_norm, ffn_norm, q_bias, "
     "k_bias, v_bias, q_norm, k_norm, kv[, moe plan, post_attn_norm, post_ffn_norm, local_rope, window]), ...], "
     "hidden, Hq, Hk, D, inter, eps, scale, kv_half, block_size, num_blocks, final_norm, head or None"
     "[, gelu, softcap]) -> plan."},
    {"decode_layers", py_decode_layers, METH_VARARGS,
     "(level, plan, T, max_blocks, window, x, out, cos, sin, block_tables, seq_lens, slots, q, k, v, att, gate, "
     "up, logits, n_threads[, cos_local, sin_local]): a decode step's decoder layers, final norm and output "
     "projection in one call."},
    {"best_level", py_best_level, METH_NOARGS, "Highest instruction set level this CPU runs."},
    {"level_supported", py_level_supported, METH_VARARGS, "Whether this CPU runs the kernel set of a level."},
    {"level_name", py_level_name, METH_VARARGS, "Printable name of a level."},
    {"has_row_dot", py_has_row_dot, METH_VARARGS, "Whether a level has a few-token kernel for a type."},
    {"row_dot_max_tokens", py_row_dot_max_tokens, METH_VARARGS,
     "Most tokens a call of a type takes through row dots at a level (0: none)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_qmatmul",
                                     "corral's CPU kernels: quantized matmul, paged decode attention, small fused ops.", -1, METHODS};

PyMODINIT_FUNC PyInit__qmatmul(void) {
    PyObject *m = PyModule_Create(&MODULE);
    if (m && PyModule_AddIntConstant(m, "MOE_MAX_TOP_K", MOE_MAX_TOP_K) < 0) Py_CLEAR(m);
    return m;
}
