"""Recurrent-layer kernels: the per-time-step work between the GEMMs of RNN/LSTM.

Design note
-----------
The Python layer (fastnn/nn/rnn.py) runs the input projection of the whole
sequence as one GEMM before the loop and the weight gradients as one GEMM after
it (``np.matmul(..., out=buf)``); the time loops in between (the recurrent
product h_{t-1} @ W_hh^T per step, in backward dz_t @ [W_hh | W_ih]) are
``forward_loop`` / ``backward_loop`` at the end of this module, which call BLAS
through fastnn._kernels._blas, or, without it, per step from Python.
What is left per step is element-wise and runs here, in ONE pass over the step's
rows: forward adds the recurrent product and the bias to the input projection,
applies the gate nonlinearities, updates the cell and writes h_t (to the output
and to the h_{t-1} array that the next step's GEMM and the weight gradient read);
backward computes the pre-activation gate gradients from the saved activations
and accumulates the bias gradient in double.

Sequence arrays are 2-D (rows, width).  The layer's own arrays (gates, cell
states, h_{t-1}, gate gradients) are time-major (row = t*N + b), so the rows of
a step are one contiguous (N, width) block, which is what the per-step GEMMs
read and write.  The output y and its gradient are in the user's layout:
batch_first puts the T steps of a sample next to each other (row = b*T + t), so
the kernel writes/reads a step's rows of y with a stride, and the output never
needs a transposing copy.  The kernels take the whole arrays and the step index
and find the step's rows themselves.  A step is small (N x 4H
elements, tens of microseconds), so it runs on the calling thread: waking a
second thread costs more than it saves.  Kernels never raise; the caller
validates shapes, dtypes and contiguity.
"""
cimport numpy as cnp
from cython cimport floating
from libc.string cimport memset

from fastnn._kernels cimport _blas

cnp.import_array()


cdef extern from "fastnn.h" nogil:
    void fnn_lstm_fwd_step_f32(Py_ssize_t n, Py_ssize_t h, const float *rec, const float *bias,
                               float *gates, Py_ssize_t gs, const float *c_prev, Py_ssize_t cps,
                               float *c, Py_ssize_t cs, float *y, Py_ssize_t ys, float *h_next,
                               Py_ssize_t hns)
    void fnn_lstm_fwd_step_f64(Py_ssize_t n, Py_ssize_t h, const double *rec, const double *bias,
                               double *gates, Py_ssize_t gs, const double *c_prev, Py_ssize_t cps,
                               double *c, Py_ssize_t cs, double *y, Py_ssize_t ys, double *h_next,
                               Py_ssize_t hns)
    void fnn_lstm_bwd_step_f32(Py_ssize_t n, Py_ssize_t h, const float *gates, Py_ssize_t gs,
                               const float *c, Py_ssize_t cs, const float *c_prev, Py_ssize_t cps,
                               const float *gy, Py_ssize_t gys, const float *dh_rec, Py_ssize_t dhs, float *dc,
                               float *dz, Py_ssize_t dzs, double *acc)
    void fnn_lstm_bwd_step_f64(Py_ssize_t n, Py_ssize_t h, const double *gates, Py_ssize_t gs,
                               const double *c, Py_ssize_t cs, const double *c_prev, Py_ssize_t cps,
                               const double *gy, Py_ssize_t gys, const double *dh_rec, Py_ssize_t dhs, double *dc,
                               double *dz, Py_ssize_t dzs, double *acc)
    void fnn_rnn_fwd_step_f32(Py_ssize_t n, Py_ssize_t h, const float *rec, const float *bias,
                              const float *xp, Py_ssize_t xs, float *y, Py_ssize_t ys, float *h_next,
                              Py_ssize_t hns, int relu)
    void fnn_rnn_fwd_step_f64(Py_ssize_t n, Py_ssize_t h, const double *rec, const double *bias,
                              const double *xp, Py_ssize_t xs, double *y, Py_ssize_t ys,
                              double *h_next, Py_ssize_t hns, int relu)
    void fnn_rnn_bwd_step_f32(Py_ssize_t n, Py_ssize_t h, const float *y, Py_ssize_t ys,
                              const float *gy, Py_ssize_t gys, const float *dh_rec, Py_ssize_t dhs, float *dz,
                              Py_ssize_t dzs, double *acc, int relu)
    void fnn_rnn_bwd_step_f64(Py_ssize_t n, Py_ssize_t h, const double *y, Py_ssize_t ys,
                              const double *gy, Py_ssize_t gys, const double *dh_rec, Py_ssize_t dhs, double *dz,
                              Py_ssize_t dzs, double *acc, int relu)
    void fnn_sigmoid_tanh_f32(const float *x, float *sig, float *th, Py_ssize_t n)
    void fnn_sigmoid_tanh_f64(const double *x, double *sig, double *th, Py_ssize_t n)


cdef inline char *_data(object a) noexcept:
    return NULL if a is None else <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline char *_user_at(char *base, Py_ssize_t t, Py_ssize_t n, bint batch_first,
                           Py_ssize_t width, Py_ssize_t isz) noexcept nogil:
    """First row of step t in a (rows, width) array in the user's layout."""
    return base + (t if batch_first else t * n) * width * isz


def lstm_forward_step(Py_ssize_t t, Py_ssize_t steps, bint batch_first, cnp.ndarray rec,
                      object bias, cnp.ndarray gates, cnp.ndarray c, cnp.ndarray c0,
                      cnp.ndarray y, cnp.ndarray h_prev):
    """One LSTM forward step t (of `steps`), in place.

    rec (n, 4h): h_{t-1} @ W_hh^T.  bias (4h,) or None: b_ih + b_hh.
    gates (rows, 4h), time-major: the input projection in, the activations
    (i, f, g, o) out.  c (rows, h), time-major: cell states written; c0 (n, h).
    y (rows, h), user layout: h_t written; h_prev (rows, w >= h), time-major: h_t
    also written to its first h columns as the h_{t-1} of step t+1 (when
    t+1 < steps).
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(rec, 0), h4 = cnp.PyArray_DIM(rec, 1), h = h4 // 4
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(rec), ys = (steps if batch_first else 1) * h
    cdef bint f64 = cnp.PyArray_TYPE(rec) == cnp.NPY_DOUBLE
    cdef char *rp = _data(rec)
    cdef char *bp = _data(bias)
    cdef char *gp = _data(gates) + t * n * h4 * isz
    cdef char *cp = _data(c) + t * n * h * isz
    cdef char *yp = _user_at(_data(y), t, n, batch_first, h, isz)
    cdef char *cprev = _data(c0) if t == 0 else cp - n * h * isz
    cdef Py_ssize_t hw = cnp.PyArray_DIM(h_prev, 1)
    cdef char *hn = _data(h_prev) + (t + 1) * n * hw * isz if t + 1 < steps else NULL
    with nogil:
        if f64:
            fnn_lstm_fwd_step_f64(n, h, <const double *>rp, <const double *>bp, <double *>gp, h4,
                                  <const double *>cprev, h, <double *>cp, h, <double *>yp, ys,
                                  <double *>hn, hw)
        else:
            fnn_lstm_fwd_step_f32(n, h, <const float *>rp, <const float *>bp, <float *>gp, h4,
                                  <const float *>cprev, h, <float *>cp, h, <float *>yp, ys,
                                  <float *>hn, hw)


def lstm_backward_step(Py_ssize_t t, Py_ssize_t steps, bint batch_first, cnp.ndarray gates,
                       cnp.ndarray c, cnp.ndarray c0, cnp.ndarray grad_y, cnp.ndarray dh_rec,
                       cnp.ndarray dc, cnp.ndarray dz, object acc):
    """One LSTM backward step t: dz rows of step t from the saved gates/c.

    gates, c, dz: time-major as in forward; grad_y (rows, h), user layout: gradient
    w.r.t. the output; dh_rec (n, h), rows with any stride (unit inner stride):
    gradient w.r.t. h_t from step t+1 (dz_{t+1} @ W_hh, or grad_h_n); dc (n, h): gradient w.r.t. c_t in, w.r.t.
    c_{t-1} out; dz (rows, 4h) written; acc (4h,) float64 or None: bias
    gradient, accumulated.
    """
    cdef Py_ssize_t n = cnp.PyArray_DIM(dh_rec, 0), h = cnp.PyArray_DIM(dh_rec, 1), h4 = 4 * h
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(dh_rec), ys = (steps if batch_first else 1) * h
    cdef bint f64 = cnp.PyArray_TYPE(dh_rec) == cnp.NPY_DOUBLE
    cdef char *gp = _data(gates) + t * n * h4 * isz
    cdef char *cp = _data(c) + t * n * h * isz
    cdef char *gyp = _user_at(_data(grad_y), t, n, batch_first, h, isz)
    cdef char *dzp = _data(dz) + t * n * h4 * isz
    cdef char *dhp = _data(dh_rec)
    cdef Py_ssize_t dhs = cnp.PyArray_STRIDE(dh_rec, 0) // isz
    cdef char *dcp = _data(dc)
    cdef double *ap = <double *>_data(acc)
    cdef char *cprev = _data(c0) if t == 0 else cp - n * h * isz
    with nogil:
        if f64:
            fnn_lstm_bwd_step_f64(n, h, <const double *>gp, h4, <const double *>cp, h,
                                  <const double *>cprev, h, <const double *>gyp, ys,
                                  <const double *>dhp, dhs, <double *>dcp, <double *>dzp, h4, ap)
        else:
            fnn_lstm_bwd_step_f32(n, h, <const float *>gp, h4, <const float *>cp, h,
                                  <const float *>cprev, h, <const float *>gyp, ys,
                                  <const float *>dhp, dhs, <float *>dcp, <float *>dzp, h4, ap)


def rnn_forward_step(Py_ssize_t t, Py_ssize_t steps, bint batch_first, cnp.ndarray rec,
                     object bias, cnp.ndarray xp, cnp.ndarray y, cnp.ndarray h_prev, bint relu):
    """One Elman RNN forward step: y rows of step t (user layout) = act(xp + rec +
    bias); also written to the first h columns of h_prev's rows of step t+1.
    rec (n, h); xp (rows, h) and h_prev (rows, w >= h) time-major; y (rows, h)
    user layout."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(rec, 0), h = cnp.PyArray_DIM(rec, 1)
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(rec), ys = (steps if batch_first else 1) * h
    cdef bint f64 = cnp.PyArray_TYPE(rec) == cnp.NPY_DOUBLE
    cdef char *rp = _data(rec)
    cdef char *bp = _data(bias)
    cdef char *xpp = _data(xp) + t * n * h * isz
    cdef char *yp = _user_at(_data(y), t, n, batch_first, h, isz)
    cdef Py_ssize_t hw = cnp.PyArray_DIM(h_prev, 1)
    cdef char *hn = _data(h_prev) + (t + 1) * n * hw * isz if t + 1 < steps else NULL
    with nogil:
        if f64:
            fnn_rnn_fwd_step_f64(n, h, <const double *>rp, <const double *>bp, <const double *>xpp,
                                 h, <double *>yp, ys, <double *>hn, hw, relu)
        else:
            fnn_rnn_fwd_step_f32(n, h, <const float *>rp, <const float *>bp, <const float *>xpp,
                                 h, <float *>yp, ys, <float *>hn, hw, relu)


def rnn_backward_step(Py_ssize_t t, Py_ssize_t steps, bint batch_first, cnp.ndarray y,
                      cnp.ndarray grad_y, cnp.ndarray dh_rec, cnp.ndarray dz, object acc, bint relu):
    """One Elman RNN backward step: dz rows of step t (time-major) = (grad_y +
    dh_rec) * act'(y), y and grad_y in the user layout; acc (h,) float64 or None
    accumulates the bias gradient."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(dh_rec, 0), h = cnp.PyArray_DIM(dh_rec, 1)
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(dh_rec), ys = (steps if batch_first else 1) * h
    cdef bint f64 = cnp.PyArray_TYPE(dh_rec) == cnp.NPY_DOUBLE
    cdef char *yp = _user_at(_data(y), t, n, batch_first, h, isz)
    cdef char *gyp = _user_at(_data(grad_y), t, n, batch_first, h, isz)
    cdef char *dhp = _data(dh_rec)
    cdef Py_ssize_t dhs = cnp.PyArray_STRIDE(dh_rec, 0) // isz
    cdef char *dzp = _data(dz) + t * n * h * isz
    cdef double *ap = <double *>_data(acc)
    with nogil:
        if f64:
            fnn_rnn_bwd_step_f64(n, h, <const double *>yp, ys, <const double *>gyp, ys,
                                 <const double *>dhp, dhs, <double *>dzp, h, ap, relu)
        else:
            fnn_rnn_bwd_step_f32(n, h, <const float *>yp, ys, <const float *>gyp, ys,
                                 <const float *>dhp, dhs, <float *>dzp, h, ap, relu)


def sigmoid_tanh(cnp.ndarray x, cnp.ndarray sig_out, cnp.ndarray tanh_out):
    """The gate nonlinearities of the kernels above, element-wise on contiguous arrays."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef char *xp = _data(x)
    cdef char *sp = _data(sig_out)
    cdef char *tp = _data(tanh_out)
    with nogil:
        if cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE:
            fnn_sigmoid_tanh_f64(<const double *>xp, <double *>sp, <double *>tp, n)
        else:
            fnn_sigmoid_tanh_f32(<const float *>xp, <float *>sp, <float *>tp, n)


# -- the time loops in C (GEMMs through _blas) ----------------------------------------------
# The per-step loops of fastnn/nn/rnn.py for when _blas has an entry point: a whole
# forward or backward through time in one call, without the GIL between its steps (the
# parts of a batch split then never queue for it).  Same arrays as the step kernels.

cdef inline int _gemm(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                      Py_ssize_t lda, const floating *b, Py_ssize_t ldb, floating *c,
                      Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        return _blas.gemm_f32(ta, tb, m, n, k, a, lda, b, ldb, 0.0, c, ldc)
    else:
        return _blas.gemm_f64(ta, tb, m, n, k, a, lda, b, ldb, 0.0, c, ldc)


cdef int _forward_loop(bint lstm, bint relu, Py_ssize_t n, Py_ssize_t h, Py_ssize_t steps, bint bf,
                       floating *hx, Py_ssize_t hw, const floating *whhT, floating *rec,
                       const floating *bias, floating *gates, floating *c, const floating *c0,
                       floating *y, bint zero_h0) noexcept nogil:
    cdef Py_ssize_t g = (4 if lstm else 1) * h, ys = (steps if bf else 1) * h, t
    cdef floating *yp
    cdef floating *hn
    cdef int rc
    for t in range(steps):
        if t == 0 and zero_h0:
            memset(rec, 0, n * g * sizeof(floating))
        else:
            rc = _gemm(False, False, n, g, h, hx + t * n * hw, hw, whhT, g, rec, g)
            if rc != 0:
                return rc
        yp = y + (t if bf else t * n) * h
        hn = hx + (t + 1) * n * hw if t + 1 < steps else NULL
        if floating is float:
            if lstm:
                fnn_lstm_fwd_step_f32(n, h, rec, bias, gates + t * n * g, g,
                                      c0 if t == 0 else c + (t - 1) * n * h, h, c + t * n * h, h,
                                      yp, ys, hn, hw)
            else:
                fnn_rnn_fwd_step_f32(n, h, rec, bias, gates + t * n * g, h, yp, ys, hn, hw, relu)
        else:
            if lstm:
                fnn_lstm_fwd_step_f64(n, h, rec, bias, gates + t * n * g, g,
                                      c0 if t == 0 else c + (t - 1) * n * h, h, c + t * n * h, h,
                                      yp, ys, hn, hw)
            else:
                fnn_rnn_fwd_step_f64(n, h, rec, bias, gates + t * n * g, h, yp, ys, hn, hw, relu)
    return 0


def forward_loop(bint lstm, bint relu, bint batch_first, cnp.ndarray hx, cnp.ndarray whhT,
                 cnp.ndarray rec, object bias, cnp.ndarray gates, object c, object c0,
                 cnp.ndarray y, bint zero_h0):
    """The forward through time of fastnn/nn/rnn.py after the input projection: per
    step rec = h_{t-1} @ W_hh^T from hx's first h columns (zeros at step 0 when
    zero_h0), then the LSTM (c, c0 given) or RNN step kernel above.  Returns False
    (nothing run) when _blas has no entry point."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(rec, 0), h = cnp.PyArray_DIM(whhT, 0)
    cdef Py_ssize_t steps = cnp.PyArray_DIM(hx, 0) // n, hw = cnp.PyArray_DIM(hx, 1)
    cdef char *hp = _data(hx)
    cdef char *wp = _data(whhT)
    cdef char *rp = _data(rec)
    cdef char *bp = _data(bias)
    cdef char *gp = _data(gates)
    cdef char *cp = _data(c)
    cdef char *c0p = _data(c0)
    cdef char *yp = _data(y)
    cdef bint f64 = cnp.PyArray_TYPE(rec) == cnp.NPY_DOUBLE
    cdef int rc
    if lstm and (c is None or c0 is None):
        raise ValueError("forward_loop: an LSTM needs c and c0")
    with nogil:
        if f64:
            rc = _forward_loop(lstm, relu, n, h, steps, batch_first, <double *>hp, hw,
                               <const double *>wp, <double *>rp, <const double *>bp, <double *>gp,
                               <double *>cp, <const double *>c0p, <double *>yp, zero_h0)
        else:
            rc = _forward_loop(lstm, relu, n, h, steps, batch_first, <float *>hp, hw,
                               <const float *>wp, <float *>rp, <const float *>bp, <float *>gp,
                               <float *>cp, <const float *>c0p, <float *>yp, zero_h0)
    return rc == 0


cdef int _backward_loop(bint lstm, bint relu, Py_ssize_t n, Py_ssize_t h, Py_ssize_t steps, bint bf,
                        const floating *gates, const floating *c, const floating *c0,
                        const floating *y, const floating *gy, floating *dh, floating *dc,
                        floating *dz, double *acc, const floating *w, Py_ssize_t ww,
                        floating *dhx) noexcept nogil:
    cdef Py_ssize_t g = (4 if lstm else 1) * h, ys = (steps if bf else 1) * h, t, dhs = h
    cdef const floating *dh_rec = dh
    cdef const floating *gyp
    cdef int rc
    t = steps - 1
    while t >= 0:
        gyp = gy + (t if bf else t * n) * h
        if floating is float:
            if lstm:
                fnn_lstm_bwd_step_f32(n, h, gates + t * n * g, g, c + t * n * h, h,
                                      c0 if t == 0 else c + (t - 1) * n * h, h, gyp, ys, dh_rec, dhs,
                                      dc, dz + t * n * g, g, acc)
            else:
                fnn_rnn_bwd_step_f32(n, h, y + (t if bf else t * n) * h, ys, gyp, ys, dh_rec, dhs,
                                     dz + t * n * g, h, acc, relu)
        else:
            if lstm:
                fnn_lstm_bwd_step_f64(n, h, gates + t * n * g, g, c + t * n * h, h,
                                      c0 if t == 0 else c + (t - 1) * n * h, h, gyp, ys, dh_rec, dhs,
                                      dc, dz + t * n * g, g, acc)
            else:
                fnn_rnn_bwd_step_f64(n, h, y + (t if bf else t * n) * h, ys, gyp, ys, dh_rec, dhs,
                                     dz + t * n * g, h, acc, relu)
        if dhx != NULL:   # [grad h_{t-1} | grad x_t] = dz_t @ [W_hh | W_ih]
            rc = _gemm(False, False, n, ww, g, dz + t * n * g, g, w, ww, dhx + t * n * ww, ww)
            dh_rec = dhx + t * n * ww
            dhs = ww
        else:             # grad h_{t-1} = dz_t @ W_hh
            rc = _gemm(False, False, n, h, g, dz + t * n * g, g, w, ww, dh, h)
        if rc != 0:
            return rc
        t -= 1
    return 0


def backward_loop(bint lstm, bint relu, bint batch_first, cnp.ndarray gates, object c, object c0,
                  cnp.ndarray y, cnp.ndarray grad_y, cnp.ndarray dh, object dc, cnp.ndarray dz,
                  object acc, cnp.ndarray w, object dhx):
    """The backward through time of fastnn/nn/rnn.py before the weight-gradient GEMM: per
    step (last to first) the LSTM (c, c0, dc given) or RNN step kernel above, then
    dhx rows of the step = dz_t @ w with w = [W_hh | W_ih] (dhx given), or
    dh = dz_t @ w with w = W_hh (dhx None).  dh holds grad h_n in; without dhx it
    holds grad h_0 out (with dhx: dhx's first rows, first h columns).  Returns
    False (nothing run) when _blas has no entry point."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(dh, 0), h = cnp.PyArray_DIM(dh, 1)
    cdef Py_ssize_t steps = cnp.PyArray_DIM(dz, 0) // n, ww = cnp.PyArray_DIM(w, 1)
    cdef char *gp = _data(gates)
    cdef char *cp = _data(c)
    cdef char *c0p = _data(c0)
    cdef char *yp = _data(y)
    cdef char *gyp = _data(grad_y)
    cdef char *dhp = _data(dh)
    cdef char *dcp = _data(dc)
    cdef char *dzp = _data(dz)
    cdef double *ap = <double *>_data(acc)
    cdef char *wp = _data(w)
    cdef char *dxp = _data(dhx)
    cdef bint f64 = cnp.PyArray_TYPE(dz) == cnp.NPY_DOUBLE
    cdef int rc
    if lstm and (c is None or c0 is None or dc is None):
        raise ValueError("backward_loop: an LSTM needs c, c0 and dc")
    if dhx is not None and cnp.PyArray_DIM(<cnp.ndarray>dhx, 1) != ww:
        raise ValueError("backward_loop: dhx and w must have the same width")
    with nogil:
        if f64:
            rc = _backward_loop(lstm, relu, n, h, steps, batch_first, <const double *>gp,
                                <const double *>cp, <const double *>c0p, <const double *>yp,
                                <const double *>gyp, <double *>dhp, <double *>dcp, <double *>dzp, ap,
                                <const double *>wp, ww, <double *>dxp)
        else:
            rc = _backward_loop(lstm, relu, n, h, steps, batch_first, <const float *>gp,
                                <const float *>cp, <const float *>c0p, <const float *>yp,
                                <const float *>gyp, <float *>dhp, <float *>dcp, <float *>dzp, ap,
                                <const float *>wp, ww, <float *>dxp)
    return rc == 0
