"""Recurrent-layer kernels: the per-time-step work between the GEMMs of RNN/LSTM.

Design note
-----------
The Python layer (fastnn/nn/rnn.py) runs every matrix product through
``np.matmul(..., out=buf)``: the input projection of the whole sequence as one
GEMM before the loop, the recurrent product h_{t-1} @ W_hh^T once per step, and
in backward the weight and input gradients as one GEMM each after the loop.
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
