"""Row gather for shuffled minibatches: out[k] = X[idx[k]] along axis 0.

Each output row is one contiguous memcpy (any dtype, any trailing shape); rows
are split across threads when the batch is large enough.  An out-of-range
index is counted (its row zeroed) and the Python layer raises after the loop.
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

cnp.import_array()

ctypedef Py_ssize_t intp_t


cdef extern from *:
    """
    /* Prefetch the whole source row that will be copied PF_AHEAD rows from now:
       the rows are scattered (each one a TLB miss and a new DRAM stream), so
       asking early hides most of the latency behind the current memcpy. */
    #define PF_AHEAD 4
    static inline void fnn_prefetch_row(const char *p, Py_ssize_t w) {
        for (Py_ssize_t o = 0; o < w; o += 64)
            __builtin_prefetch(p + o, 0, 0);
    }
    """
    int PF_AHEAD
    void fnn_prefetch_row(const char *p, Py_ssize_t w) nogil


cdef Py_ssize_t _gather(const char *X, Py_ssize_t rows, Py_ssize_t w, const intp_t *idx,
                        Py_ssize_t n, char *out, int n_threads) noexcept nogil:
    cdef Py_ssize_t k, r, rp, bad = 0
    for k in prange(n, schedule="static", num_threads=n_threads):
        if k + PF_AHEAD < n:
            rp = idx[k + PF_AHEAD]
            if rp >= 0 and rp < rows:
                fnn_prefetch_row(X + rp * w, w)
        r = idx[k]
        if r < 0 or r >= rows:
            bad += 1
            memset(out + k * w, 0, w)
        else:
            memcpy(out + k * w, X + r * w, w)
    return bad


def gather_rows(cnp.ndarray X, cnp.ndarray idx, cnp.ndarray out, int n_threads):
    """out[k] = X[idx[k]] for C-contiguous X and out of one dtype, intp idx.

    Returns the number of out-of-range indices.
    """
    cdef Py_ssize_t rows = cnp.PyArray_DIM(X, 0), n = cnp.PyArray_DIM(idx, 0), w
    cdef const char *xp = <const char *>cnp.PyArray_DATA(X)
    cdef const intp_t *ip = <const intp_t *>cnp.PyArray_DATA(idx)
    cdef char *op = <char *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t bad
    if n == 0:
        return 0
    w = cnp.PyArray_NBYTES(out) // n
    if w == 0:
        return 0
    with nogil:
        bad = _gather(xp, rows, w, ip, n, op, n_threads)
    return bad
