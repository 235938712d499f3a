"""Dense-layer epilogues: everything around the GEMM of a Linear layer.

Design note
-----------
Forward is ``np.matmul(x, W.T, out=y)`` in the Python layer followed by ONE pass
here that adds the bias and applies the activation in place.  Backward fuses the
activation derivative into the incoming gradient and, in the same pass, reduces
the bias gradient (column sums, accumulated in double).  The derivative is taken
from the forward *output* y (relu: y > 0, sigmoid: y(1-y), tanh: 1-y^2, leaky
relu: y > 0 with slope >= 0), so the pre-activation never has to be stored.

The activation switch sits outside the inner loops so gcc can vectorize each
loop.  Both passes walk whole rows contiguously (a column-block walk was
measured 2x slower: the row stride makes the three streams alias in L1) and
split rows across threads; in backward each thread sums its rows into its own
double accumulators, added together after the loop.  Kernels never raise.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memset

cnp.import_array()



cdef extern from "fastnn.h" nogil:
    void fnn_act_rows_f32(float *y, const float *x, const float *b, Py_ssize_t rows, Py_ssize_t m,
                          int act, float slope)
    void fnn_act_rows_f64(double *y, const double *x, const double *b, Py_ssize_t rows,
                          Py_ssize_t m, int act, double slope)
    void fnn_dact_rows_f32(float *gz, const float *gy, const float *y, double *acc, Py_ssize_t rows,
                           Py_ssize_t m, int act, float slope)
    void fnn_dact_rows_f64(double *gz, const double *gy, const double *y, double *acc,
                           Py_ssize_t rows, Py_ssize_t m, int act, double slope)


cdef extern from "fastnn.h" nogil:
    void fnn_dropout_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t offset, uint64_t key,
                         uint32_t threshold, float scale)
    void fnn_dropout_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t offset, uint64_t key,
                         uint32_t threshold, double scale)


def dropout(cnp.ndarray x, cnp.ndarray out, uint64_t key, uint32_t threshold, double scale,
            int n_threads):
    """out = x * scale where the counter-based mask of (key, index) keeps it, else 0."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x), chunk = 16384, nc, c, lo
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    cdef bint f64 = cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE
    if n == 0:
        return
    nc = (n + chunk - 1) // chunk
    with nogil:
        for c in prange(nc, schedule="static", num_threads=n_threads):
            lo = c * chunk
            if f64:
                fnn_dropout_f64(<const double *>xp + lo, <double *>op + lo, min(chunk, n - lo), lo, key,
                                threshold, scale)
            else:
                fnn_dropout_f32(<const float *>xp + lo, <float *>op + lo, min(chunk, n - lo), lo, key,
                                threshold, <float>scale)


cdef inline void _act_rows(floating *y, const floating *x, const floating *b, Py_ssize_t rows,
                           Py_ssize_t m, int act, floating slope) noexcept nogil:
    if floating is float:
        fnn_act_rows_f32(y, x, b, rows, m, act, slope)
    else:
        fnn_act_rows_f64(y, x, b, rows, m, act, slope)


cdef inline void _dact_rows(floating *gz, const floating *gy, const floating *y, double *acc,
                            Py_ssize_t rows, Py_ssize_t m, int act, floating slope) noexcept nogil:
    if floating is float:
        fnn_dact_rows_f32(gz, gy, y, acc, rows, m, act, slope)
    else:
        fnn_dact_rows_f64(gz, gy, y, acc, rows, m, act, slope)


cdef inline bint _is_f64(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE


cdef inline void *_data(object a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef void _bias_act_rows(floating *y, const floating *b, Py_ssize_t n, Py_ssize_t m, int act,
                         floating slope, int n_threads) noexcept nogil:
    cdef Py_ssize_t t, lo, hi
    cdef int nt = n_threads if n >= n_threads else 1
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        lo = n * t // nt
        hi = n * (t + 1) // nt
        _act_rows(y + lo * m, y + lo * m, b, hi - lo, m, act, slope)


def bias_act_forward(cnp.ndarray y, object bias, int act, double slope, int n_threads):
    """In place on a C-contiguous 2-D y: y = act(y + bias) (bias may be None)."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(y, 0), m = cnp.PyArray_DIM(y, 1)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    if n == 0 or m == 0:
        return
    cdef bint f64 = _is_f64(y)
    with nogil:
        if f64:
            _bias_act_rows(<double *>yp, <const double *>bp, n, m, act, slope, n_threads)
        else:
            _bias_act_rows(<float *>yp, <const float *>bp, n, m, act, <float>slope, n_threads)


cdef void _act_flat(floating *out, const floating *x, Py_ssize_t n, int act, floating slope,
                    int n_threads) noexcept nogil:
    cdef Py_ssize_t chunk = 16384, nc = (n + chunk - 1) // chunk, c, lo
    for c in prange(nc, schedule="static", num_threads=n_threads):
        lo = c * chunk
        _act_rows(out + lo, x + lo, <const floating *>NULL, 1, min(chunk, n - lo), act, slope)


def act_forward(cnp.ndarray x, cnp.ndarray out, int act, double slope, int n_threads):
    """out = act(x) element-wise on C-contiguous arrays of equal size (out may be x)."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *op = cnp.PyArray_DATA(out)
    if n == 0:
        return
    cdef bint f64 = _is_f64(x)
    with nogil:
        if f64:
            _act_flat(<double *>op, <const double *>xp, n, act, slope, n_threads)
        else:
            _act_flat(<float *>op, <const float *>xp, n, act, <float>slope, n_threads)


cdef void _dact_flat(floating *out, const floating *gy, const floating *y, Py_ssize_t n, int act,
                     floating slope, int n_threads) noexcept nogil:
    cdef Py_ssize_t chunk = 16384, nc = (n + chunk - 1) // chunk, c, lo
    for c in prange(nc, schedule="static", num_threads=n_threads):
        lo = c * chunk
        _dact_rows(out + lo, gy + lo, y + lo, NULL, 1, min(chunk, n - lo), act, slope)


def act_backward(cnp.ndarray grad_y, cnp.ndarray y, cnp.ndarray out, int act, double slope,
                 int n_threads):
    """out = grad_y * act'(y) element-wise (out may be grad_y)."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(y)
    cdef void *gp = cnp.PyArray_DATA(grad_y)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *op = cnp.PyArray_DATA(out)
    if n == 0:
        return
    cdef bint f64 = _is_f64(y)
    with nogil:
        if f64:
            _dact_flat(<double *>op, <const double *>gp, <const double *>yp, n, act, slope, n_threads)
        else:
            _dact_flat(<float *>op, <const float *>gp, <const float *>yp, n, act, <float>slope, n_threads)


cdef int _act_bias(const floating *gy, const floating *y, floating *gz, floating *gb,
                   Py_ssize_t n, Py_ssize_t m, bint accumulate, int act, floating slope,
                   int n_threads) noexcept nogil:
    """Rows split across threads, each with its own double accumulators, summed after.
    Returns -1 when the accumulators cannot be allocated."""
    cdef int nt = n_threads if n >= 16 * n_threads else 1
    cdef Py_ssize_t t, j, lo, hi
    cdef double *acc = NULL
    cdef double total
    if gb != NULL:
        acc = <double *>malloc(nt * m * sizeof(double))
        if acc == NULL:
            return -1
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        lo = n * t // nt
        hi = n * (t + 1) // nt
        _dact_rows(gz + lo * m if gz != NULL else NULL, gy + lo * m, y + lo * m if y != NULL else NULL,
                   (acc + t * m) if acc != NULL else NULL, hi - lo, m, act, slope)
    if gb != NULL:
        for j in range(m):
            total = 0.0
            for t in range(nt):
                total = total + acc[t * m + j]
            if accumulate:
                gb[j] = <floating>(gb[j] + total)
            else:
                gb[j] = <floating>total
        free(acc)
    return 0


def act_backward_bias(cnp.ndarray grad_y, object y, object grad_z_out, object grad_bias_out,
                      bint accumulate, int act, double slope, int n_threads):
    """grad_z = grad_y * act'(y) and grad_bias (+)= grad_z.sum(axis=0), in one pass.

    2-D C-contiguous arrays.  grad_z_out=None means the identity activation (only
    the bias gradient is computed, from grad_y); grad_bias_out may be None.
    Rows are split across threads, each summing its own rows.
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(grad_y, 0), m = cnp.PyArray_DIM(grad_y, 1)
    cdef void *gp = cnp.PyArray_DATA(grad_y)
    cdef void *yp = _data(y)
    cdef void *zp = _data(grad_z_out)
    cdef void *bp = _data(grad_bias_out)
    cdef bint f64 = _is_f64(grad_y)
    cdef int rc
    if m == 0 or (zp == NULL and bp == NULL):
        return
    if n == 0:
        if bp != NULL and not accumulate:
            memset(bp, 0, m * (8 if f64 else 4))
        return
    with nogil:
        if f64:
            rc = _act_bias(<const double *>gp, <const double *>yp, <double *>zp, <double *>bp,
                           n, m, accumulate, act, slope, n_threads)
        else:
            rc = _act_bias(<const float *>gp, <const float *>yp, <float *>zp, <float *>bp,
                           n, m, accumulate, act, <float>slope, n_threads)
    if rc < 0:
        raise MemoryError()
