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


cdef Py_ssize_t _gather(const char *X, Py_ssize_t rows, Py_ssize_t w, const intp_t *idx,
                        Py_ssize_t n, char *out, int n_threads) noexcept nogil:
    cdef Py_ssize_t k, r, bad = 0
    for k in prange(n, schedule="static", num_threads=n_threads):
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
