"""Fused optimizer updates over a list of tensors, plus a finiteness check.

Design note
-----------
The update loops are plain C (src_c/fnn_optim.c) with one signature per
optimizer: fn(param, grad, s0, s1, s2, n, args).  This driver takes the lists of
arrays of a whole optimizer (every parameter of a model), treats them as one
long virtual vector and splits it into n_threads equal spans, so one OpenMP
region updates the whole model, however many tensors it has, with balanced work.
Pointers are read once per call with PyArray_DATA (the Python layer checks
shapes, dtypes and layouts).  Step scalars arrive precomputed in args.  With
check_finite, each thread first scans its span of the gradients and, after a
barrier, nobody writes if any NaN/inf was seen: the check costs no extra
parallel region, and a failed step leaves every parameter and state untouched.
"""
cimport numpy as cnp
from libc.stdlib cimport malloc, free

cnp.import_array()

cdef extern from "fastnn.h" nogil:
    ctypedef struct fnn_optim_args:
        double lr
        double weight_decay
        double momentum
        double dampening
        int nesterov
        int first_step
        double beta1
        double beta2
        double eps
        double step_size
        double bc2_sqrt
        int decoupled
        double alpha
        int centered
        double clr
    ctypedef void (*fnn_update_fn)(void *param, const void *grad, void *s0, void *s1, void *s2,
                                   Py_ssize_t n, const fnn_optim_args *a)
    void fnn_sgd_f32(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_sgd_f64(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_adam_f32(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_adam_f64(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_adagrad_f32(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_adagrad_f64(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_rmsprop_f32(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    void fnn_rmsprop_f64(void *, const void *, void *, void *, void *, Py_ssize_t, const fnn_optim_args *)
    int fnn_multi_update(fnn_update_fn fn, char **ptrs, const Py_ssize_t *offs, Py_ssize_t n_tensors,
                         Py_ssize_t itemsize, const fnn_optim_args *a, int n_threads, int check_finite)
    int fnn_all_finite(char **ptrs, const Py_ssize_t *sizes, Py_ssize_t n_arrays, Py_ssize_t itemsize,
                       int n_threads)

cdef enum:
    N_SLOTS = 5     # param, grad, s0, s1, s2

from fastnn._kernels._codes cimport OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAGRAD


cdef fnn_update_fn _pick(int kind, bint f64):
    if kind == OPTIM_SGD:
        return fnn_sgd_f64 if f64 else fnn_sgd_f32
    if kind == OPTIM_ADAM:
        return fnn_adam_f64 if f64 else fnn_adam_f32
    if kind == OPTIM_ADAGRAD:
        return fnn_adagrad_f64 if f64 else fnn_adagrad_f32
    return fnn_rmsprop_f64 if f64 else fnn_rmsprop_f32


cdef inline char *_ptr(object a):
    if a is None:
        return NULL
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


def multi_update(int kind, list params, list grads, list s0, list s1, list s2, bint f64,
                 dict hp, int n_threads, bint check_finite=False):
    """Update every tensor in params in place (one OpenMP region for all of them,
    n_threads as resolved by the caller, 1 for small work).

    s0/s1/s2 are lists of state arrays aligned with params, or None for unused
    slots; hp holds the step scalars of fnn_optim_args.  Returns False (and
    changes nothing) when check_finite is set and a gradient holds NaN/inf.
    """
    cdef Py_ssize_t n = len(params), t
    cdef Py_ssize_t itemsize = 8 if f64 else 4
    cdef fnn_optim_args a
    cdef fnn_update_fn fn = _pick(kind, f64)
    cdef char **ptrs
    cdef Py_ssize_t *offs
    cdef int ok
    if n == 0:
        return True
    a.lr = hp.get("lr", 0.0)
    a.weight_decay = hp.get("weight_decay", 0.0)
    a.momentum = hp.get("momentum", 0.0)
    a.dampening = hp.get("dampening", 0.0)
    a.nesterov = hp.get("nesterov", 0)
    a.first_step = hp.get("first_step", 0)
    a.beta1 = hp.get("beta1", 0.0)
    a.beta2 = hp.get("beta2", 0.0)
    a.eps = hp.get("eps", 0.0)
    a.step_size = hp.get("step_size", 0.0)
    a.bc2_sqrt = hp.get("bc2_sqrt", 1.0)
    a.decoupled = hp.get("decoupled", 0)
    a.alpha = hp.get("alpha", 0.0)
    a.centered = hp.get("centered", 0)
    a.clr = hp.get("clr", 0.0)
    ptrs = <char **>malloc(n * N_SLOTS * sizeof(char *))
    offs = <Py_ssize_t *>malloc((n + 1) * sizeof(Py_ssize_t))
    if ptrs == NULL or offs == NULL:
        free(ptrs)
        free(offs)
        raise MemoryError()
    try:
        offs[0] = 0
        for t in range(n):
            ptrs[t * N_SLOTS + 0] = _ptr(params[t])
            ptrs[t * N_SLOTS + 1] = _ptr(grads[t])
            ptrs[t * N_SLOTS + 2] = _ptr(s0[t]) if s0 is not None else NULL
            ptrs[t * N_SLOTS + 3] = _ptr(s1[t]) if s1 is not None else NULL
            ptrs[t * N_SLOTS + 4] = _ptr(s2[t]) if s2 is not None else NULL
            offs[t + 1] = offs[t] + cnp.PyArray_SIZE(<cnp.ndarray>params[t])
        with nogil:
            ok = fnn_multi_update(fn, ptrs, offs, n, itemsize, &a, n_threads, check_finite)
    finally:
        free(ptrs)
        free(offs)
    return ok != 0


def all_finite(list arrays, bint f64, int n_threads):
    """True when every element of every contiguous array in the list is finite."""
    cdef Py_ssize_t n = len(arrays), t
    cdef Py_ssize_t itemsize = 8 if f64 else 4
    cdef char **ptrs
    cdef Py_ssize_t *sizes
    cdef int ok
    if n == 0:
        return True
    ptrs = <char **>malloc(n * sizeof(char *))
    sizes = <Py_ssize_t *>malloc(n * sizeof(Py_ssize_t))
    if ptrs == NULL or sizes == NULL:
        free(ptrs)
        free(sizes)
        raise MemoryError()
    try:
        for t in range(n):
            ptrs[t] = _ptr(arrays[t])
            sizes[t] = cnp.PyArray_SIZE(<cnp.ndarray>arrays[t])
        with nogil:
            ok = fnn_all_finite(ptrs, sizes, n, itemsize, n_threads)
    finally:
        free(ptrs)
        free(sizes)
    if ok < 0:
        raise MemoryError()
    return ok != 0
