"""Fused losses: value and gradient in one pass over the predictions.

Design note
-----------
Softmax cross-entropy works row by row: max (and argmax, which gives the
accuracy count for free), exp(z - max) written straight into the gradient
buffer with its sum, then one scaling pass.  Subtracting the row max keeps huge
logits finite.  Sums are accumulated in double.  Labels out of range are not
raised from nogil code: the row is skipped and counted, and the Python layer
raises after the loop.  Optional class weights (float64, one per class, NULL for
none; torch's ``weight=``): with integer targets each row's loss and gradient
are scaled by the weight of its label over the batch's weight sum (a serial
pre-pass over the labels), with probability targets p_ij becomes w_j p_ij.
Rows are split across threads; the loss sum is an OpenMP reduction.  Entry
points take validated C-contiguous ndarrays and
dispatch on dtype to fused-type cores on raw pointers (low per-call overhead).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log

cnp.import_array()

ctypedef Py_ssize_t intp_t


cdef inline double _softmax_row(const floating *z, floating *g, Py_ssize_t c,
                                Py_ssize_t *argmax) noexcept nogil:
    """g = exp(z - max(z)); returns log(sum) + max (the log-sum-exp)."""
    cdef Py_ssize_t j, am = 0
    cdef floating m = z[0]
    cdef double s = 0.0
    for j in range(1, c):
        if z[j] > m:
            m = z[j]
            am = j
    for j in range(c):
        g[j] = <floating>exp(<double>(z[j] - m))
        s += g[j]
    argmax[0] = am
    return log(s) + m



cdef void _ce_labels(const floating *z, const intp_t *t, floating *grad, Py_ssize_t n, Py_ssize_t c,
                     double scale, const double *weight, int n_threads, double *total_out,
                     Py_ssize_t *correct_out, Py_ssize_t *bad_out) noexcept nogil:
    # weight == NULL: unweighted.  Otherwise row i's loss and gradient are multiplied
    # by weight[t[i]] / W, W = sum of the weights of the (valid) labels: torch's
    # weighted mean (W == 0 gives NaN, as in torch).
    cdef Py_ssize_t i, j, ti, am
    cdef double total = 0.0, lse, inv, wi, si, wnorm = 1.0
    cdef Py_ssize_t correct = 0, bad = 0
    cdef floating *g
    cdef const floating *zi
    if weight != NULL:
        wnorm = 0.0
        for i in range(n):
            if 0 <= t[i] < c:
                wnorm = wnorm + weight[t[i]]
        wnorm = 1.0 / wnorm if wnorm > 0 else 0.0 / wnorm   # 0/0: NaN
    for i in prange(n, schedule="static", num_threads=n_threads):
        ti = t[i]
        g = grad + i * c
        zi = z + i * c
        if ti < 0 or ti >= c:
            bad += 1
            for j in range(c):
                g[j] = 0
            continue
        wi = 1.0
        if weight != NULL:
            wi = weight[ti] * wnorm
        si = scale * wi
        lse = _softmax_row(zi, g, c, &am)
        total += wi * (lse - zi[ti])
        if am == ti:
            correct += 1
        inv = si * exp(-(lse - zi[am]))   # scale * w / sum(exp(z - max))
        for j in range(c):
            g[j] = <floating>(g[j] * inv)
        g[ti] = <floating>(g[ti] - si)
    total_out[0] = total
    correct_out[0] = correct
    bad_out[0] = bad


def softmax_ce_labels(cnp.ndarray logits, cnp.ndarray target, cnp.ndarray grad_out, double scale,
                      int n_threads, cnp.ndarray weight=None):
    """Cross-entropy with integer (intp) labels, logits and grad_out (N, C) C-contiguous.

    grad_out = scale * (softmax(logits) - onehot(target)); returns
    (sum of per-row losses, number of correct argmax predictions, number of bad labels).
    With ``weight`` (float64, C-contiguous, shape (C,)) row i's loss and gradient are
    multiplied by weight[target[i]] / W, W the sum of weight[target[i]] over the valid
    labels (so with scale=1 the returned sum is torch's weighted mean; NaN when W == 0).
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(logits, 0), c = cnp.PyArray_DIM(logits, 1)
    cdef void *zp = cnp.PyArray_DATA(logits)
    cdef const intp_t *tp = <const intp_t *>cnp.PyArray_DATA(target)
    cdef void *gp = cnp.PyArray_DATA(grad_out)
    cdef const double *wp = NULL
    cdef double total = 0.0
    cdef Py_ssize_t correct = 0, bad = 0
    cdef bint f64 = cnp.PyArray_TYPE(logits) == cnp.NPY_DOUBLE
    if weight is not None:
        wp = <const double *>cnp.PyArray_DATA(weight)
    with nogil:
        if f64:
            _ce_labels(<const double *>zp, tp, <double *>gp, n, c, scale, wp, n_threads, &total,
                       &correct, &bad)
        else:
            _ce_labels(<const float *>zp, tp, <float *>gp, n, c, scale, wp, n_threads, &total,
                       &correct, &bad)
    return total, correct, bad


cdef void _ce_probs(const floating *z, const floating *target, floating *grad, Py_ssize_t n,
                    Py_ssize_t c, double scale, const double *weight, int n_threads,
                    double *total_out, Py_ssize_t *correct_out) noexcept nogil:
    # weight != NULL: loss_i = -sum_j weight[j] p_ij log softmax_ij (torch's class weights).
    cdef Py_ssize_t i, j, am, tm
    cdef double total = 0.0, lse, inv, psum, pz, wp
    cdef Py_ssize_t correct = 0
    cdef floating *g
    cdef const floating *p
    cdef const floating *zi
    for i in prange(n, schedule="static", num_threads=n_threads):
        g = grad + i * c
        p = target + i * c
        zi = z + i * c
        lse = _softmax_row(zi, g, c, &am)
        psum = 0.0
        pz = 0.0
        tm = 0
        if weight == NULL:
            for j in range(c):
                psum = psum + p[j]
                pz = pz + p[j] * zi[j]
                if p[j] > p[tm]:
                    tm = j
        else:
            for j in range(c):
                wp = weight[j] * p[j]
                psum = psum + wp
                pz = pz + wp * zi[j]
                if p[j] > p[tm]:
                    tm = j
        total += lse * psum - pz
        if am == tm:
            correct += 1
        inv = scale * psum * exp(-(lse - zi[am]))
        if weight == NULL:
            for j in range(c):
                g[j] = <floating>(g[j] * inv - scale * p[j])
        else:
            for j in range(c):
                g[j] = <floating>(g[j] * inv - scale * weight[j] * p[j])
    total_out[0] = total
    correct_out[0] = correct


def softmax_ce_probs(cnp.ndarray logits, cnp.ndarray target, cnp.ndarray grad_out, double scale,
                     int n_threads, cnp.ndarray weight=None):
    """Cross-entropy with probability targets: loss_i = -sum_j p_ij log softmax_ij.

    grad_out = scale * (softmax * sum_j p_ij - p); returns (loss sum, correct count)
    where a row is correct when argmax(logits) == argmax(target).  With ``weight``
    (float64, C-contiguous, shape (C,)), p_ij is replaced by weight[j] * p_ij in the
    loss and gradient (torch's class weights with probability targets).
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(logits, 0), c = cnp.PyArray_DIM(logits, 1)
    cdef void *zp = cnp.PyArray_DATA(logits)
    cdef void *tp = cnp.PyArray_DATA(target)
    cdef void *gp = cnp.PyArray_DATA(grad_out)
    cdef const double *wptr = NULL
    cdef double total = 0.0
    cdef Py_ssize_t correct = 0
    cdef bint f64 = cnp.PyArray_TYPE(logits) == cnp.NPY_DOUBLE
    if weight is not None:
        wptr = <const double *>cnp.PyArray_DATA(weight)
    with nogil:
        if f64:
            _ce_probs(<const double *>zp, <const double *>tp, <double *>gp, n, c, scale, wptr,
                      n_threads, &total, &correct)
        else:
            _ce_probs(<const float *>zp, <const float *>tp, <float *>gp, n, c, scale, wptr,
                      n_threads, &total, &correct)
    return total, correct


cdef extern from "fastnn.h" nogil:
    double fnn_mse_f32(const float *p, const float *t, float *g, Py_ssize_t n, float scale)
    double fnn_mse_f64(const double *p, const double *t, double *g, Py_ssize_t n, double scale)
    double fnn_elem_loss_f32(int kind, const float *p, const float *t, float *g, Py_ssize_t n,
                             float scale, float param)
    double fnn_elem_loss_f64(int kind, const double *p, const double *t, double *g, Py_ssize_t n,
                             double scale, double param)

cdef extern from "fastnn.h" nogil:
    double fnn_penalty_f32(int kind, const float *w, float *g, Py_ssize_t n, float lam)
    double fnn_penalty_f64(int kind, const double *w, double *g, Py_ssize_t n, double lam)


def penalty(int kind, cnp.ndarray w, cnp.ndarray g, double lam):
    """g += d penalty / d w and return the penalty (fastnn._engine.codes.PENALTIES); w and g share
    one contiguous layout (C or Fortran) and dtype."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(w)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *gp = cnp.PyArray_DATA(g)
    cdef double total
    cdef bint f64 = cnp.PyArray_TYPE(w) == cnp.NPY_DOUBLE
    with nogil:
        if f64:
            total = fnn_penalty_f64(kind, <const double *>wp, <double *>gp, n, lam)
        else:
            total = fnn_penalty_f32(kind, <const float *>wp, <float *>gp, n, <float>lam)
    return total


from fastnn._kernels._codes cimport LOSS_MSE   # fnn_mse_*: its own loop (grad = scale * (p - t))


cdef double _elem(int kind, const floating *p, const floating *t, floating *g, Py_ssize_t n,
                  floating scale, floating param, int n_threads) noexcept nogil:
    cdef Py_ssize_t chunk = 16384, nc = (n + chunk - 1) // chunk, c, lo
    cdef double total = 0.0
    for c in prange(nc, schedule="static", num_threads=n_threads):
        lo = c * chunk
        if floating is float:
            if kind == LOSS_MSE:
                total += fnn_mse_f32(p + lo, t + lo, g + lo, min(chunk, n - lo), scale)
            else:
                total += fnn_elem_loss_f32(kind, p + lo, t + lo, g + lo, min(chunk, n - lo), scale, param)
        else:
            if kind == LOSS_MSE:
                total += fnn_mse_f64(p + lo, t + lo, g + lo, min(chunk, n - lo), scale)
            else:
                total += fnn_elem_loss_f64(kind, p + lo, t + lo, g + lo, min(chunk, n - lo), scale, param)
    return total


def elem_loss(int kind, cnp.ndarray pred, cnp.ndarray target, cnp.ndarray grad_out, double scale,
              double param, int n_threads):
    """grad_out = scale * d loss/d pred for an element-wise loss (a code of fastnn._engine.codes.ELEM_LOSSES); returns the sum.

    For "mse" the gradient is scale * (pred - target): pass 2 / n for the mean."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pred)
    cdef void *pp = cnp.PyArray_DATA(pred)
    cdef void *tp = cnp.PyArray_DATA(target)
    cdef void *gp = cnp.PyArray_DATA(grad_out)
    cdef double total = 0.0
    cdef bint f64 = cnp.PyArray_TYPE(pred) == cnp.NPY_DOUBLE
    if n == 0:
        return 0.0
    with nogil:
        if f64:
            total = _elem(kind, <const double *>pp, <const double *>tp, <double *>gp, n, scale, param,
                          n_threads)
        else:
            total = _elem(kind, <const float *>pp, <const float *>tp, <float *>gp, n, <float>scale,
                          <float>param, n_threads)
    return total
