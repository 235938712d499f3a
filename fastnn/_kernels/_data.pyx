"""Row gather for shuffled minibatches: out[k, :] = X[idx[k], :].

Each output row is one contiguous memcpy; rows are split across threads when the
batch is large enough.  An out-of-range index is counted (the row is zeroed) and
the Python layer raises after the loop.
"""
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

ctypedef Py_ssize_t intp_t


def gather_rows(const unsigned char[:, ::1] X, const intp_t[::1] idx,
                unsigned char[:, ::1] out, int n_threads):
    """Byte-wise row gather (X and out viewed as uint8 rows of equal width).

    Returns the number of out-of-range indices.
    """
    cdef Py_ssize_t n = idx.shape[0], rows = X.shape[0], w = X.shape[1], k, r
    cdef Py_ssize_t bad = 0
    if n == 0 or w == 0:
        return 0
    for k in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        r = idx[k]
        if r < 0 or r >= rows:
            bad += 1
            memset(&out[k, 0], 0, w)
        else:
            memcpy(&out[k, 0], &X[r, 0], w)
    return bad
