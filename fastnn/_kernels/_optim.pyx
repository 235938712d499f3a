"""Fused optimizer updates over a list of tensors, plus a finiteness check.

Design note
-----------
The update loops are plain C (src_c/fnn_optim.c) with one signature per
optimizer: fn(param, grad, s0, s1, s2, n, args).  This driver takes the lists of
arrays of a whole optimizer (every parameter of a model), treats them as one
long virtual vector and splits it into n_threads equal spans, so one OpenMP
region updates the whole model, however many tensors it has, with balanced work.
Pointers are read once per call with PyArray_DATA (the Python layer checks
shapes, dtypes and contiguity).  Step scalars arrive precomputed in args.
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint32_t, uint64_t

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

# Below this many elements in total, one thread does the whole update: waking a
# second thread costs more than it saves.
cdef Py_ssize_t PARALLEL_MIN = 65536

cdef enum:
    N_SLOTS = 5     # param, grad, s0, s1, s2

KINDS = {"sgd": 0, "adam": 1, "adagrad": 2, "rmsprop": 3}


cdef fnn_update_fn _pick(int kind, bint f64):
    if kind == 0:
        return fnn_sgd_f64 if f64 else fnn_sgd_f32
    if kind == 1:
        return fnn_adam_f64 if f64 else fnn_adam_f32
    if kind == 2:
        return fnn_adagrad_f64 if f64 else fnn_adagrad_f32
    return fnn_rmsprop_f64 if f64 else fnn_rmsprop_f32


cdef inline char *_ptr(object a):
    if a is None:
        return NULL
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef void _span(fnn_update_fn fn, char **ptrs, Py_ssize_t *offs, Py_ssize_t n_tensors,
                Py_ssize_t itemsize, Py_ssize_t lo, Py_ssize_t hi,
                const fnn_optim_args *a) noexcept nogil:
    """Apply fn to the global element range [lo, hi) of the concatenated tensors."""
    cdef Py_ssize_t t, s, e, k
    cdef char *p[N_SLOTS]
    for t in range(n_tensors):
        s = offs[t]
        e = offs[t + 1]
        if e <= lo or s >= hi:
            continue
        if s < lo:
            s = lo
        if e > hi:
            e = hi
        for k in range(N_SLOTS):
            p[k] = ptrs[t * N_SLOTS + k]
            if p[k] != NULL:
                p[k] = p[k] + (s - offs[t]) * itemsize
        fn(p[0], p[1], p[2], p[3], p[4], e - s, a)


def multi_update(int kind, list params, list grads, list s0, list s1, list s2, bint f64,
                 dict hp, int n_threads):
    """Update every tensor in params in place (one OpenMP region for all of them).

    s0/s1/s2 are lists of state arrays aligned with params, or None for unused slots.
    hp holds the step scalars of fnn_optim_args.
    """
    cdef Py_ssize_t n = len(params), t, total, nt, tid, lo, hi
    cdef Py_ssize_t itemsize = 8 if f64 else 4
    cdef fnn_optim_args a
    cdef fnn_update_fn fn = _pick(kind, f64)
    cdef char **ptrs
    cdef Py_ssize_t *offs
    if n == 0:
        return
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
        total = offs[n]
        nt = n_threads if total >= PARALLEL_MIN else 1
        if nt > 1:
            for tid in prange(nt, nogil=True, schedule="static", chunksize=1, num_threads=nt):
                lo = total * tid // nt
                hi = total * (tid + 1) // nt
                _span(fn, ptrs, offs, n, itemsize, lo, hi, &a)
        else:
            with nogil:
                _span(fn, ptrs, offs, n, itemsize, 0, total, &a)
    finally:
        free(ptrs)
        free(offs)


cdef bint _finite_span(const char *data, Py_ssize_t n, bint f64) noexcept nogil:
    """True when every element is finite: no exponent field is all ones.

    Integer OR-reduction of the masked exponent bits, which gcc vectorizes (a
    floating-point sum would be a serial dependency chain without -ffast-math).
    """
    cdef Py_ssize_t j
    cdef const uint32_t *xf
    cdef const uint64_t *xd
    cdef uint32_t accf = 0
    cdef uint64_t accd = 0
    if f64:
        xd = <const uint64_t *>data
        for j in range(n):
            accd |= ((xd[j] & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL)
        return accd == 0
    xf = <const uint32_t *>data
    for j in range(n):
        accf |= ((xf[j] & 0x7f800000U) == 0x7f800000U)
    return accf == 0


def all_finite(list arrays, bint f64, int n_threads):
    """True when every element of every (C-contiguous) array in the list is finite."""
    cdef Py_ssize_t t, n, c, nc, lo, hi, chunk = 65536
    cdef Py_ssize_t bad = 0
    cdef Py_ssize_t itemsize = 8 if f64 else 4
    cdef const char *data
    cdef int nt
    for arr in arrays:
        data = _ptr(arr)
        n = cnp.PyArray_SIZE(<cnp.ndarray>arr)
        nc = (n + chunk - 1) // chunk
        nt = n_threads if n >= 4 * chunk else 1
        for c in prange(nc, nogil=True, schedule="static", num_threads=nt):
            lo = c * chunk
            hi = min(lo + chunk, n)
            if not _finite_span(data + lo * itemsize, hi - lo, f64):
                bad += 1
        if bad:
            return False
    return True
