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
from libc.math cimport exp, expf, tanh, tanhf
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cnp.import_array()

cdef enum:
    ACT_IDENTITY = 0
    ACT_RELU = 1
    ACT_LEAKY = 2
    ACT_SIGMOID = 3
    ACT_TANH = 4

ACTIVATIONS = {None: ACT_IDENTITY, "identity": ACT_IDENTITY, "relu": ACT_RELU,
               "leaky_relu": ACT_LEAKY, "sigmoid": ACT_SIGMOID, "tanh": ACT_TANH}


cdef inline floating _sigmoid(floating z) noexcept nogil:
    if floating is float:
        return 1.0 / (1.0 + expf(-z))
    else:
        return 1.0 / (1.0 + exp(-z))


cdef inline floating _tanh(floating z) noexcept nogil:
    if floating is float:
        return tanhf(z)
    else:
        return tanh(z)


cdef void _act_row(floating *y, const floating *x, const floating *b, Py_ssize_t n,
                   int act, floating slope) noexcept nogil:
    """y[j] = act(x[j] + b[j]) for one row (y may alias x; b may be NULL)."""
    cdef Py_ssize_t j
    cdef floating z
    if b == NULL:
        if act == ACT_IDENTITY:
            if y != x:
                for j in range(n):
                    y[j] = x[j]
        elif act == ACT_RELU:
            for j in range(n):
                z = x[j]
                y[j] = z if z > 0 else 0
        elif act == ACT_LEAKY:
            for j in range(n):
                z = x[j]
                y[j] = z if z > 0 else z * slope
        elif act == ACT_SIGMOID:
            for j in range(n):
                y[j] = _sigmoid(x[j])
        else:
            for j in range(n):
                y[j] = _tanh(x[j])
    else:
        if act == ACT_IDENTITY:
            for j in range(n):
                y[j] = x[j] + b[j]
        elif act == ACT_RELU:
            for j in range(n):
                z = x[j] + b[j]
                y[j] = z if z > 0 else 0
        elif act == ACT_LEAKY:
            for j in range(n):
                z = x[j] + b[j]
                y[j] = z if z > 0 else z * slope
        elif act == ACT_SIGMOID:
            for j in range(n):
                y[j] = _sigmoid(x[j] + b[j])
        else:
            for j in range(n):
                y[j] = _tanh(x[j] + b[j])


cdef void _dact_row(floating *gz, const floating *gy, const floating *y, Py_ssize_t n,
                    int act, floating slope) noexcept nogil:
    """gz[j] = gy[j] * act'(y[j]) with the derivative taken from the output y."""
    # Loads are unconditional (g = gy[j] first): a load inside one arm of a
    # conditional stops gcc from if-converting, and so from vectorizing, the loop.
    cdef Py_ssize_t j
    cdef floating v, g
    if act == ACT_IDENTITY:
        for j in range(n):
            gz[j] = gy[j]
    elif act == ACT_RELU:
        for j in range(n):
            g = gy[j]
            gz[j] = g if y[j] > 0 else 0
    elif act == ACT_LEAKY:
        for j in range(n):
            g = gy[j]
            gz[j] = g if y[j] > 0 else g * slope
    elif act == ACT_SIGMOID:
        for j in range(n):
            v = y[j]
            gz[j] = gy[j] * v * (1 - v)
    else:
        for j in range(n):
            v = y[j]
            gz[j] = gy[j] * (1 - v * v)



cdef inline bint _is_f64(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE


cdef inline void *_data(object a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef void _bias_act_rows(floating *y, const floating *b, Py_ssize_t n, Py_ssize_t m, int act,
                         floating slope, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    for i in prange(n, schedule="static", num_threads=n_threads):
        _act_row(y + i * m, y + i * m, b, m, act, slope)


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
        _act_row(out + lo, x + lo, <const floating *>NULL, min(chunk, n - lo), act, slope)


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
        _dact_row(out + lo, gy + lo, y + lo, min(chunk, n - lo), act, slope)


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


cdef void _rows_block(const floating *gy, const floating *y, floating *gz, double *acc,
                      Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t m, int act,
                      floating slope) noexcept nogil:
    """Rows [lo, hi): gz = gy * act'(y) (skipped when gz is NULL: identity) and, when
    acc is not NULL, acc = column sums of gz over these rows.  Full rows are walked
    contiguously; rows are added four at a time in the array's type, then into the
    double accumulators (a quarter of the conversions of a pure double sum)."""
    cdef Py_ssize_t i = lo, j, k, r
    cdef const floating *src = gz if gz != NULL else gy
    cdef const floating *r0
    cdef const floating *r1
    cdef const floating *r2
    cdef const floating *r3
    if acc != NULL:
        for j in range(m):
            acc[j] = 0.0
    while i < hi:
        r = min(4, hi - i)
        if gz != NULL:
            for k in range(r):
                _dact_row(gz + (i + k) * m, gy + (i + k) * m, y + (i + k) * m, m, act, slope)
        if acc != NULL:
            r0 = src + i * m
            if r == 4:
                r1 = r0 + m
                r2 = r1 + m
                r3 = r2 + m
                for j in range(m):
                    acc[j] += (r0[j] + r1[j]) + (r2[j] + r3[j])
            else:
                for k in range(r):
                    r1 = r0 + k * m
                    for j in range(m):
                        acc[j] += r1[j]
        i += r


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
        _rows_block(gy, y, gz, (acc + t * m) if acc != NULL else NULL, lo, hi, m, act, slope)
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
