/* CPython bindings: raw addresses and sizes in, nothing allocated on the Python side. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "dispatch.h"

static const char *LEVEL_NAMES[] = {"scalar", "avx2", "avxvnni", "avx512vnni"};

static PyObject *py_qmatmul(PyObject *self, PyObject *args) {
    int level, type_id, N, K, T, nthreads;
    unsigned long long w, x, out;
    Py_ssize_t row_stride;
    (void)self;
    if (!PyArg_ParseTuple(args, "iiKniiKiKi", &level, &type_id, &w, &row_stride, &N, &K, &x, &T, &out,
                          &nthreads))
        return NULL;
    if (level < 0 || level > kernels_best_level()) {
        PyErr_Format(PyExc_ValueError, "instruction set level %d is not available on this CPU", level);
        return NULL;
    }
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

static PyObject *py_qmatmul_many(PyObject *self, PyObject *args) {
    int level, K, T, nthreads;
    unsigned long long x;
    PyObject *list;
    (void)self;
    if (!PyArg_ParseTuple(args, "iO!iKii", &level, &PyList_Type, &list, &K, &x, &T, &nthreads)) return NULL;
    if (level < 0 || level > kernels_best_level()) {
        PyErr_Format(PyExc_ValueError, "instruction set level %d is not available on this CPU", level);
        return NULL;
    }
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
    rc = qmatmul_many_run(level, jobs, (int)n, K, (const float *)(uintptr_t)x, T, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_Free(jobs);
    switch (rc) {
    case QM_OK: Py_RETURN_NONE;
    case QM_ENOMEM: return PyErr_NoMemory();
    case QM_ETYPE: PyErr_SetString(PyExc_ValueError, "a weight's GGML type has no kernel"); return NULL;
    default: PyErr_Format(PyExc_ValueError, "bad shape K=%d T=%d for one of the weights", K, T); return NULL;
    }
}

static PyObject *py_best_level(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    return PyLong_FromLong(kernels_best_level());
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
    {"best_level", py_best_level, METH_NOARGS, "Highest instruction set level this CPU runs."},
    {"level_name", py_level_name, METH_VARARGS, "Printable name of a level."},
    {"has_row_dot", py_has_row_dot, METH_VARARGS, "Whether a level has a few-token kernel for a type."},
    {"row_dot_max_tokens", py_row_dot_max_tokens, METH_VARARGS,
     "Most tokens a call of a type takes through row dots at a level (0: none)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_qmatmul", "Quantized matmul kernels.", -1, METHODS};

PyMODINIT_FUNC PyInit__qmatmul(void) { return PyModule_Create(&MODULE); }
