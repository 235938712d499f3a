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
loop.  Rows are split across threads for the forward pass; the backward pass
splits *columns* into blocks so that each thread owns its slice of the bias
gradient and no reduction across threads is needed.  Kernels never raise.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, tanh, tanhf

cdef enum:
    ACT_IDENTITY = 0
    ACT_RELU = 1
    ACT_LEAKY = 2
    ACT_SIGMOID = 3
    ACT_TANH = 4
    COL_BLOCK_MAX = 512

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
    cdef Py_ssize_t j
    cdef floating v
    if act == ACT_IDENTITY:
        for j in range(n):
            gz[j] = gy[j]
    elif act == ACT_RELU:
        for j in range(n):
            gz[j] = gy[j] if y[j] > 0 else 0
    elif act == ACT_LEAKY:
        for j in range(n):
            gz[j] = gy[j] if y[j] > 0 else gy[j] * slope
    elif act == ACT_SIGMOID:
        for j in range(n):
            v = y[j]
            gz[j] = gy[j] * v * (1 - v)
    else:
        for j in range(n):
            v = y[j]
            gz[j] = gy[j] * (1 - v * v)


def bias_act_forward(floating[:, ::1] y, const floating[::1] bias, int act, double slope,
                     int n_threads):
    """In place: y = act(y + bias), row by row (bias may be None)."""
    cdef Py_ssize_t n = y.shape[0], m = y.shape[1], i
    cdef const floating *b = NULL
    cdef floating s = <floating>slope
    if n == 0 or m == 0:
        return
    if bias is not None:
        b = &bias[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        _act_row(&y[i, 0], &y[i, 0], b, m, act, s)


def act_forward(const floating[::1] x, floating[::1] out, int act, double slope, int n_threads):
    """out = act(x) on flat arrays (out may be x)."""
    cdef Py_ssize_t n = x.shape[0], chunk, c, nc, lo, hi
    cdef floating s = <floating>slope
    if n == 0:
        return
    chunk = 16384
    nc = (n + chunk - 1) // chunk
    for c in prange(nc, nogil=True, schedule="static", num_threads=n_threads):
        lo = c * chunk
        hi = min(lo + chunk, n)
        _act_row(&out[lo], &x[lo], NULL, hi - lo, act, s)


def act_backward(const floating[::1] grad_y, const floating[::1] y, floating[::1] out,
                 int act, double slope, int n_threads):
    """out = grad_y * act'(y) on flat arrays (out may be grad_y)."""
    cdef Py_ssize_t n = y.shape[0], chunk, c, nc, lo, hi
    cdef floating s = <floating>slope
    if n == 0:
        return
    chunk = 16384
    nc = (n + chunk - 1) // chunk
    for c in prange(nc, nogil=True, schedule="static", num_threads=n_threads):
        lo = c * chunk
        hi = min(lo + chunk, n)
        _dact_row(&out[lo], &grad_y[lo], &y[lo], hi - lo, act, s)


cdef void _col_block(const floating[:, ::1] gy, const floating[:, ::1] y,
                     floating[:, ::1] gz, floating *gb, bint accumulate, int act,
                     floating slope, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    cdef double acc[COL_BLOCK_MAX]
    cdef Py_ssize_t n = gy.shape[0], w = c1 - c0, i, j
    cdef floating *row
    for j in range(w):
        acc[j] = 0.0
    for i in range(n):
        row = &gz[i, c0]
        _dact_row(row, &gy[i, c0], &y[i, c0], w, act, slope)
        for j in range(w):
            acc[j] += row[j]
    if gb != NULL:
        if accumulate:
            for j in range(w):
                gb[c0 + j] = <floating>(gb[c0 + j] + acc[j])
        else:
            for j in range(w):
                gb[c0 + j] = <floating>acc[j]


def act_backward_bias(const floating[:, ::1] grad_y, const floating[:, ::1] y,
                      floating[:, ::1] grad_z_out, floating[::1] grad_bias_out,
                      bint accumulate, int act, double slope, int n_threads):
    """grad_z = grad_y * act'(y) and grad_bias (+)= grad_z.sum(axis=0), in one pass.

    grad_z_out may be grad_y itself (in place).  grad_bias_out may be None.
    Columns are split into blocks; each block is owned by one thread.
    """
    cdef Py_ssize_t m = y.shape[1], width, nb, blk, c0, c1
    cdef floating s = <floating>slope
    cdef floating *gb = NULL
    if m == 0:
        return
    if grad_bias_out is not None:
        gb = &grad_bias_out[0]
    width = (m + n_threads - 1) // n_threads
    width = ((width + 15) // 16) * 16
    if width > COL_BLOCK_MAX:
        width = COL_BLOCK_MAX
    nb = (m + width - 1) // width
    for blk in prange(nb, nogil=True, schedule="static", num_threads=n_threads):
        c0 = blk * width
        c1 = min(c0 + width, m)
        _col_block(grad_y, y, grad_z_out, gb, accumulate, act, s, c0, c1)


def bias_grad(const floating[:, ::1] grad_z, floating[::1] grad_bias_out, bint accumulate,
              int n_threads):
    """grad_bias (+)= grad_z.sum(axis=0) in double, column blocks across threads."""
    cdef Py_ssize_t m = grad_z.shape[1], width, nb, blk, c0, c1
    if m == 0:
        return
    width = (m + n_threads - 1) // n_threads
    width = ((width + 15) // 16) * 16
    if width > COL_BLOCK_MAX:
        width = COL_BLOCK_MAX
    nb = (m + width - 1) // width
    for blk in prange(nb, nogil=True, schedule="static", num_threads=n_threads):
        c0 = blk * width
        c1 = min(c0 + width, m)
        _sum_cols(grad_z, &grad_bias_out[0], accumulate, c0, c1)


cdef void _sum_cols(const floating[:, ::1] g, floating *out, bint accumulate,
                    Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    cdef double acc[COL_BLOCK_MAX]
    cdef Py_ssize_t n = g.shape[0], w = c1 - c0, i, j
    cdef const floating *row
    for j in range(w):
        acc[j] = 0.0
    for i in range(n):
        row = &g[i, c0]
        for j in range(w):
            acc[j] += row[j]
    if accumulate:
        for j in range(w):
            out[c0 + j] = <floating>(out[c0 + j] + acc[j])
    else:
        for j in range(w):
            out[c0 + j] = <floating>acc[j]
