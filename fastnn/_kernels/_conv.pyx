"""Convolution and pooling loops (everything around the conv GEMMs).

Design note
-----------
A Conv2d forward is ``im2col`` (this module) into a (N, K, P) column buffer ->
one batched GEMM (``np.matmul(W2d, cols, out=y3d)`` in the Python layer, which
writes NCHW directly) -> ``bias_act_nchw`` in place.  Backward is ``dact_nchw``
(activation derivative with the bias-gradient sums fused), the weight-gradient
and column-gradient GEMMs, then ``col2im``.  See src_c/fnn_conv.c for the layout.
3x3 stride-1 convs with enough channels use the Winograd F(2x2, 3x3) transforms
at the end of this module instead of im2col/col2im (src_c/fnn_wino.c).

The Python layer (fastnn.ops) calls these on a chunk of images at a time and,
with several threads, on one part of the batch per thread (fastnn._engine.parallel)
with ``n_threads=1``.  The loops that take ``n_threads`` are also parallel over
independent pieces with ``prange``: (image, channel) planes for im2col/col2im/
pooling (col2im accumulates into one input plane per task, so there are no
races), images for the element-wise passes (each thread sums its images' bias
gradients into its own double accumulators, added after the loop).  Kernels
assume validated input and never raise, except MemoryError when a Winograd
transform or the direct conv cannot allocate its one-plane scratch (or the
bias-gradient accumulators cannot be allocated).

Entry points take validated C-contiguous ndarrays of one dtype (float32 or
float64) and dispatch on it once, before the loops, to fused-type cores on raw
pointers, so a call acquires no buffer (several run once per chunk of images).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.stdint cimport int32_t
from libc.string cimport memset

from fastnn._kernels cimport _blas
from fastnn._kernels cimport _codes as K

cnp.import_array()


cdef extern from "fastnn.h" nogil:
    ctypedef struct fnn_conv_geom:
        Py_ssize_t h, w, kh, kw, sh, sw, ph, pw, oh, ow
    void fnn_im2col_f32(const float *x, float *cols, Py_ssize_t ld, const fnn_conv_geom *g)
    void fnn_im2col_f64(const double *x, double *cols, Py_ssize_t ld, const fnn_conv_geom *g)
    void fnn_col2im_f32(const float *cols, float *gx, Py_ssize_t ld, const fnn_conv_geom *g)
    void fnn_col2im_f64(const double *cols, double *gx, Py_ssize_t ld, const fnn_conv_geom *g)
    int fnn_conv_direct_f32(const float *x, const float *w, const float *b, float *y, Py_ssize_t nimg,
                            Py_ssize_t C, Py_ssize_t O, const fnn_conv_geom *g, int act, float slope)
    int fnn_conv_direct_f64(const double *x, const double *w, const double *b, double *y,
                            Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t O, const fnn_conv_geom *g,
                            int act, double slope)
    void fnn_conv_bias_act_f32(float *y, const float *b, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t O,
                               Py_ssize_t P, int act, float slope)
    void fnn_conv_bias_act_f64(double *y, const double *b, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t O,
                               Py_ssize_t P, int act, double slope)
    void fnn_conv_dact_f32(const float *gy, const float *y, float *gt, double *acc, Py_ssize_t n0,
                           Py_ssize_t n1, Py_ssize_t O, Py_ssize_t P, int act, float slope)
    void fnn_conv_dact_f64(const double *gy, const double *y, double *gt, double *acc, Py_ssize_t n0,
                           Py_ssize_t n1, Py_ssize_t O, Py_ssize_t P, int act, double slope)
    void fnn_maxpool2d_f32(const float *x, float *y, int32_t *idx, Py_ssize_t planes,
                           const fnn_conv_geom *g)
    void fnn_maxpool2d_f64(const double *x, double *y, int32_t *idx, Py_ssize_t planes,
                           const fnn_conv_geom *g)
    void fnn_maxpool2d_backward_f32(const float *gy, const int32_t *idx, float *gx, Py_ssize_t planes,
                                    const fnn_conv_geom *g)
    void fnn_maxpool2d_backward_f64(const double *gy, const int32_t *idx, double *gx,
                                    Py_ssize_t planes, const fnn_conv_geom *g)
    void fnn_avgpool2d_f32(const float *x, float *y, Py_ssize_t planes, const fnn_conv_geom *g,
                           int count_include_pad)
    void fnn_avgpool2d_f64(const double *x, double *y, Py_ssize_t planes, const fnn_conv_geom *g,
                           int count_include_pad)
    void fnn_avgpool2d_backward_f32(const float *gy, float *gx, Py_ssize_t planes,
                                    const fnn_conv_geom *g, int count_include_pad)
    void fnn_avgpool2d_backward_f64(const double *gy, double *gx, Py_ssize_t planes,
                                    const fnn_conv_geom *g, int count_include_pad)

    int fnn_wino_in_f32(const float *x, float *V, Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t ps,
                        const fnn_conv_geom *g)
    int fnn_wino_in_f64(const double *x, double *V, Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t ps,
                        const fnn_conv_geom *g)
    int fnn_wino_out_f32(const float *M, float *y, const float *bias, Py_ssize_t nimg, Py_ssize_t O,
                         Py_ssize_t ps, const fnn_conv_geom *g)
    int fnn_wino_out_f64(const double *M, double *y, const double *bias, Py_ssize_t nimg, Py_ssize_t O,
                         Py_ssize_t ps, const fnn_conv_geom *g)
    int fnn_wino_gout_f32(const float *gy, float *gM, Py_ssize_t nimg, Py_ssize_t O, Py_ssize_t ps,
                          const fnn_conv_geom *g)
    int fnn_wino_gout_f64(const double *gy, double *gM, Py_ssize_t nimg, Py_ssize_t O, Py_ssize_t ps,
                          const fnn_conv_geom *g)
    int fnn_wino_gin_f32(const float *dV, float *gx, Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t ps,
                         const fnn_conv_geom *g)
    int fnn_wino_gin_f64(const double *dV, double *gx, Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t ps,
                         const fnn_conv_geom *g)
    void fnn_wino_weight_f32(const float *w, float *U, Py_ssize_t O, Py_ssize_t C)
    void fnn_wino_weight_f64(const double *w, double *U, Py_ssize_t O, Py_ssize_t C)
    void fnn_wino_wgrad_f32(const float *dU, float *gw, Py_ssize_t O, Py_ssize_t C, int accumulate)
    void fnn_wino_wgrad_f64(const double *dU, double *gw, Py_ssize_t O, Py_ssize_t C, int accumulate)


# -- one-call helpers: the C function of the fused type's suffix -------------------------

cdef inline void _im2col(const floating *x, floating *cols, Py_ssize_t ld,
                         const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        fnn_im2col_f32(x, cols, ld, g)
    else:
        fnn_im2col_f64(x, cols, ld, g)


cdef inline void _col2im(const floating *cols, floating *gx, Py_ssize_t ld,
                         const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        fnn_col2im_f32(cols, gx, ld, g)
    else:
        fnn_col2im_f64(cols, gx, ld, g)


cdef inline int _direct(const floating *x, const floating *w, const floating *b, floating *y,
                        Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t O, const fnn_conv_geom *g,
                        int act, double slope) noexcept nogil:
    if floating is float:
        return fnn_conv_direct_f32(x, w, b, y, nimg, C, O, g, act, <float>slope)
    else:
        return fnn_conv_direct_f64(x, w, b, y, nimg, C, O, g, act, slope)


cdef inline void _bias_act(floating *y, const floating *b, Py_ssize_t n0, Py_ssize_t n1,
                           Py_ssize_t O, Py_ssize_t P, int act, double slope) noexcept nogil:
    if floating is float:
        fnn_conv_bias_act_f32(y, b, n0, n1, O, P, act, <float>slope)
    else:
        fnn_conv_bias_act_f64(y, b, n0, n1, O, P, act, slope)


cdef inline void _dact(const floating *gy, const floating *y, floating *gt, double *acc,
                       Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t O, Py_ssize_t P, int act,
                       double slope) noexcept nogil:
    if floating is float:
        fnn_conv_dact_f32(gy, y, gt, acc, n0, n1, O, P, act, <float>slope)
    else:
        fnn_conv_dact_f64(gy, y, gt, acc, n0, n1, O, P, act, slope)


cdef inline void _maxpool(const floating *x, floating *y, int32_t *idx, Py_ssize_t planes,
                          const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        fnn_maxpool2d_f32(x, y, idx, planes, g)
    else:
        fnn_maxpool2d_f64(x, y, idx, planes, g)


cdef inline void _maxpool_bwd(const floating *gy, const int32_t *idx, floating *gx,
                              Py_ssize_t planes, const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        fnn_maxpool2d_backward_f32(gy, idx, gx, planes, g)
    else:
        fnn_maxpool2d_backward_f64(gy, idx, gx, planes, g)


cdef inline void _avgpool(const floating *x, floating *y, Py_ssize_t planes, const fnn_conv_geom *g,
                          int count_include_pad) noexcept nogil:
    if floating is float:
        fnn_avgpool2d_f32(x, y, planes, g, count_include_pad)
    else:
        fnn_avgpool2d_f64(x, y, planes, g, count_include_pad)


cdef inline void _avgpool_bwd(const floating *gy, floating *gx, Py_ssize_t planes,
                              const fnn_conv_geom *g, int count_include_pad) noexcept nogil:
    if floating is float:
        fnn_avgpool2d_backward_f32(gy, gx, planes, g, count_include_pad)
    else:
        fnn_avgpool2d_backward_f64(gy, gx, planes, g, count_include_pad)


cdef inline int _wino_in(const floating *x, floating *V, Py_ssize_t nimg, Py_ssize_t C,
                         Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        return fnn_wino_in_f32(x, V, nimg, C, ps, g)
    else:
        return fnn_wino_in_f64(x, V, nimg, C, ps, g)


cdef inline int _wino_out(const floating *M, floating *y, const floating *bias, Py_ssize_t nimg,
                          Py_ssize_t O, Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        return fnn_wino_out_f32(M, y, bias, nimg, O, ps, g)
    else:
        return fnn_wino_out_f64(M, y, bias, nimg, O, ps, g)


cdef inline int _wino_gout(const floating *gy, floating *gM, Py_ssize_t nimg, Py_ssize_t O,
                           Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        return fnn_wino_gout_f32(gy, gM, nimg, O, ps, g)
    else:
        return fnn_wino_gout_f64(gy, gM, nimg, O, ps, g)


cdef inline int _wino_gin(const floating *dV, floating *gx, Py_ssize_t nimg, Py_ssize_t C,
                          Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    if floating is float:
        return fnn_wino_gin_f32(dV, gx, nimg, C, ps, g)
    else:
        return fnn_wino_gin_f64(dV, gx, nimg, C, ps, g)


cdef inline void _wino_weight(const floating *w, floating *U, Py_ssize_t O,
                              Py_ssize_t C) noexcept nogil:
    if floating is float:
        fnn_wino_weight_f32(w, U, O, C)
    else:
        fnn_wino_weight_f64(w, U, O, C)


cdef inline void _wino_wgrad(const floating *dU, floating *gw, Py_ssize_t O, Py_ssize_t C,
                             int accumulate) noexcept nogil:
    if floating is float:
        fnn_wino_wgrad_f32(dU, gw, O, C, accumulate)
    else:
        fnn_wino_wgrad_f64(dU, gw, O, C, accumulate)


# -- argument helpers (with the GIL, before the loops) -----------------------------------

cdef inline bint _is_f64(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE


cdef inline void *_data(object a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef fnn_conv_geom _geom(Py_ssize_t h, Py_ssize_t w, tuple k, tuple s, tuple p, Py_ssize_t oh,
                         Py_ssize_t ow):
    cdef fnn_conv_geom g
    g.h = h; g.w = w
    g.kh = k[0]; g.kw = k[1]
    g.sh = s[0]; g.sw = s[1]
    g.ph = p[0]; g.pw = p[1]
    g.oh = oh; g.ow = ow
    return g


cdef inline void _split(Py_ssize_t n, int t, int nt, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    lo[0] = n * t // nt
    hi[0] = n * (t + 1) // nt


# -- im2col / col2im: one task per (image, channel) plane --------------------------------

cdef void _im2col_planes(const floating *x, floating *cols, Py_ssize_t N, Py_ssize_t Cn,
                         Py_ssize_t HW, const fnn_conv_geom *g, int n_threads) noexcept nogil:
    # plane (n, c) of x -> rows c*kh*kw.. of image n's (C*kh*kw, P) column block
    cdef Py_ssize_t ld = g.oh * g.ow, rows = g.kh * g.kw, t, n, c
    cdef Py_ssize_t nstep = Cn * rows * ld
    for t in prange(N * Cn, schedule="static", num_threads=n_threads):
        n = t // Cn
        c = t - n * Cn
        _im2col(x + t * HW, cols + c * rows * ld + n * nstep, ld, g)


def im2col(cnp.ndarray x, cnp.ndarray cols, tuple k, tuple s, tuple p, Py_ssize_t oh, Py_ssize_t ow,
           int n_threads):
    """cols[n, (c*kh + i)*kw + j, q] = padded x[n, c, oh_q*sh + i - ph, ow_q*sw + j - pw].

    x: C-contiguous (N, C, H, W); cols: C-contiguous (N, C*kh*kw, oh*ow), same dtype.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), Cn = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t H = cnp.PyArray_DIM(x, 2), W = cnp.PyArray_DIM(x, 3)
    cdef fnn_conv_geom g = _geom(H, W, k, s, p, oh, ow)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *cp = cnp.PyArray_DATA(cols)
    cdef bint f64 = _is_f64(x)
    if N * Cn * oh * ow == 0:
        return
    with nogil:
        if f64:
            _im2col_planes(<const double *>xp, <double *>cp, N, Cn, H * W, &g, n_threads)
        else:
            _im2col_planes(<const float *>xp, <float *>cp, N, Cn, H * W, &g, n_threads)


cdef void _col2im_planes(const floating *cols, floating *gx, Py_ssize_t N, Py_ssize_t Cn,
                         Py_ssize_t HW, const fnn_conv_geom *g, int n_threads) noexcept nogil:
    # each task overwrites its own input plane (n, c): no races
    cdef Py_ssize_t ld = g.oh * g.ow, rows = g.kh * g.kw, t, n, c
    cdef Py_ssize_t nstep = Cn * rows * ld
    for t in prange(N * Cn, schedule="static", num_threads=n_threads):
        n = t // Cn
        c = t - n * Cn
        _col2im(cols + c * rows * ld + n * nstep, gx + t * HW, ld, g)


def col2im(cnp.ndarray cols, cnp.ndarray gx, tuple k, tuple s, tuple p, Py_ssize_t oh, Py_ssize_t ow,
           int n_threads):
    """gx[n, c] = image n's column-gradient rows of channel c scattered back (overwrites gx).

    cols: C-contiguous (N, C*kh*kw, oh*ow); gx: C-contiguous (N, C, H, W).
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(gx, 0), Cn = cnp.PyArray_DIM(gx, 1)
    cdef Py_ssize_t H = cnp.PyArray_DIM(gx, 2), W = cnp.PyArray_DIM(gx, 3)
    cdef fnn_conv_geom g = _geom(H, W, k, s, p, oh, ow)
    cdef void *gp = cnp.PyArray_DATA(gx)
    cdef void *cp = cnp.PyArray_DATA(cols)
    cdef bint f64 = _is_f64(gx)
    if N * Cn * H * W == 0:
        return
    with nogil:
        if f64:
            _col2im_planes(<const double *>cp, <double *>gp, N, Cn, H * W, &g, n_threads)
        else:
            _col2im_planes(<const float *>cp, <float *>gp, N, Cn, H * W, &g, n_threads)


# -- direct stride-1 conv ----------------------------------------------------------------

cdef int _direct_images(const floating *x, const floating *w, const floating *b, floating *y,
                        Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t Cn, Py_ssize_t O,
                        const fnn_conv_geom *g, int act, double slope) noexcept nogil:
    return _direct(x + n0 * Cn * g.h * g.w, w, b, y + n0 * O * g.oh * g.ow, n1 - n0, Cn, O, g,
                   act, slope)


def conv_direct(cnp.ndarray x, cnp.ndarray w, object bias, cnp.ndarray y, Py_ssize_t n0,
                Py_ssize_t n1, tuple p, int act, double slope):
    """y[n0:n1] = act(conv(x[n0:n1], w) + bias), stride 1, computed directly (no columns).

    x: C-contiguous (N, C, H, W); w: C-contiguous (O, C, kh, kw); y: (N, O, OH, OW).
    """
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(x, 1), O = cnp.PyArray_DIM(w, 0)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3),
                                 (cnp.PyArray_DIM(w, 2), cnp.PyArray_DIM(w, 3)), (1, 1), p,
                                 cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3))
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *bp = _data(bias)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f64 = _is_f64(x)
    cdef int rc
    if n1 <= n0 or O * g.oh * g.ow == 0:
        return
    with nogil:
        if f64:
            rc = _direct_images(<const double *>xp, <const double *>wp, <const double *>bp,
                                <double *>yp, n0, n1, Cn, O, &g, act, slope)
        else:
            rc = _direct_images(<const float *>xp, <const float *>wp, <const float *>bp,
                                <float *>yp, n0, n1, Cn, O, &g, act, slope)
    if rc != 0:
        raise MemoryError("conv2d (direct): could not allocate a scratch plane")


# -- element-wise passes over (N, O, P): one block of images per thread ------------------

cdef inline int _image_threads(Py_ssize_t N, int n_threads) noexcept nogil:
    return n_threads if N >= n_threads else 1


cdef void _bias_act_images(floating *y, const floating *b, Py_ssize_t N, Py_ssize_t O,
                           Py_ssize_t P, int act, double slope, int n_threads) noexcept nogil:
    cdef int t, nt = _image_threads(N, n_threads)
    cdef Py_ssize_t n0, n1
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        _split(N, t, nt, &n0, &n1)
        _bias_act(y, b, n0, n1, O, P, act, slope)


def bias_act_nchw(cnp.ndarray y, object bias, int act, double slope, int n_threads):
    """In place on a C-contiguous (N, O, ...) y: y[n, o] = act(y[n, o] + bias[o]) (bias may be None)."""
    cdef Py_ssize_t N = cnp.PyArray_DIM(y, 0), O = cnp.PyArray_DIM(y, 1)
    cdef Py_ssize_t P = cnp.PyArray_SIZE(y) // (N * O) if N * O else 0
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef bint f64 = _is_f64(y)
    if N * O * P == 0:
        return
    with nogil:
        if f64:
            _bias_act_images(<double *>yp, <const double *>bp, N, O, P, act, slope, n_threads)
        else:
            _bias_act_images(<float *>yp, <const float *>bp, N, O, P, act, slope, n_threads)


cdef int _dact_images(const floating *gy, const floating *y, floating *gt, floating *gb,
                      bint accumulate, Py_ssize_t N, Py_ssize_t O, Py_ssize_t P, int act,
                      double slope, int n_threads) noexcept nogil:
    """Returns -1 when the per-thread bias-gradient accumulators cannot be allocated."""
    cdef int t, nt = _image_threads(N, n_threads)
    cdef Py_ssize_t n0, n1, o
    cdef double *acc = NULL
    cdef double s
    if gb != NULL:
        acc = <double *>malloc(nt * O * sizeof(double) + 1)
        if acc == NULL:
            return -1
        memset(acc, 0, nt * O * sizeof(double))
    if N * O * P != 0:
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            _split(N, t, nt, &n0, &n1)
            _dact(gy, y, gt, NULL if acc == NULL else acc + t * O, n0, n1, O, P, act, slope)
    if acc != NULL:
        for o in range(O):
            s = 0.0
            for t in range(nt):
                s = s + acc[t * O + o]
            # round the sum to the dtype, then add in the dtype (as NumPy's gb += sum does)
            if accumulate:
                gb[o] = gb[o] + <floating>s
            else:
                gb[o] = <floating>s
        free(acc)
    return 0


def dact_nchw(cnp.ndarray gy, object y, cnp.ndarray gt, object grad_bias, bint accumulate, int act,
              double slope, int n_threads):
    """gt = gy * act'(y) on (N, O, ...) arrays; grad_bias (= or +=) its sums over all but axis 1.

    With act 0 (identity) gt may be gy itself (then only the sums are computed)
    and y may be None.  grad_bias may be None.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(gy, 0), O = cnp.PyArray_DIM(gy, 1)
    cdef Py_ssize_t P = cnp.PyArray_SIZE(gy) // (N * O) if N * O else 0
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *yp = _data(y) if y is not None else gp
    cdef void *tp = cnp.PyArray_DATA(gt)
    cdef void *bp = _data(grad_bias)
    cdef bint f64 = _is_f64(gy)
    cdef int rc
    if grad_bias is None and act == K.ACT_IDENTITY and tp == gp:
        return
    with nogil:
        if f64:
            rc = _dact_images(<const double *>gp, <const double *>yp, <double *>tp, <double *>bp,
                              accumulate, N, O, P, act, slope, n_threads)
        else:
            rc = _dact_images(<const float *>gp, <const float *>yp, <float *>tp, <float *>bp,
                              accumulate, N, O, P, act, slope, n_threads)
    if rc < 0:
        raise MemoryError()


# -- pooling: one block of (N*C) planes per thread ---------------------------------------

cdef inline int _plane_threads(Py_ssize_t planes, int n_threads) noexcept nogil:
    return n_threads if planes >= n_threads else 1


cdef void _maxpool_planes(const floating *x, floating *y, int32_t *idx, Py_ssize_t planes,
                          const fnn_conv_geom *g, int n_threads) noexcept nogil:
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = _plane_threads(planes, n_threads)
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        _split(planes, t, nt, &lo, &hi)
        _maxpool(x + lo * HW, y + lo * P, idx + lo * P, hi - lo, g)


def max_pool2d(cnp.ndarray x, cnp.ndarray y, cnp.ndarray idx, tuple k, tuple s, tuple p, int n_threads):
    """Max over windows of each (N*C) plane; idx (int32) = argmax within the input plane."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0) * cnp.PyArray_DIM(x, 1)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3), k, s, p,
                                 cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3))
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef int32_t *ip = <int32_t *>cnp.PyArray_DATA(idx)
    cdef bint f64 = _is_f64(x)
    if planes * g.oh * g.ow == 0:
        return
    with nogil:
        if f64:
            _maxpool_planes(<const double *>xp, <double *>yp, ip, planes, &g, n_threads)
        else:
            _maxpool_planes(<const float *>xp, <float *>yp, ip, planes, &g, n_threads)


cdef void _maxpool_bwd_planes(const floating *gy, const int32_t *idx, floating *gx,
                              Py_ssize_t planes, const fnn_conv_geom *g,
                              int n_threads) noexcept nogil:
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = _plane_threads(planes, n_threads)
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        _split(planes, t, nt, &lo, &hi)
        _maxpool_bwd(gy + lo * P, idx + lo * P, gx + lo * HW, hi - lo, g)


def max_pool2d_backward(cnp.ndarray gy, cnp.ndarray idx, cnp.ndarray gx, int n_threads):
    """gx (overwritten) = gy scattered to the argmax positions, plane by plane."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(gx, 0) * cnp.PyArray_DIM(gx, 1)
    cdef fnn_conv_geom g
    g.h = cnp.PyArray_DIM(gx, 2); g.w = cnp.PyArray_DIM(gx, 3)
    g.oh = cnp.PyArray_DIM(gy, 2); g.ow = cnp.PyArray_DIM(gy, 3)
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *xp = cnp.PyArray_DATA(gx)
    cdef const int32_t *ip = <const int32_t *>cnp.PyArray_DATA(idx)
    cdef bint f64 = _is_f64(gx)
    if planes * g.h * g.w == 0:
        return
    with nogil:
        if f64:
            _maxpool_bwd_planes(<const double *>gp, ip, <double *>xp, planes, &g, n_threads)
        else:
            _maxpool_bwd_planes(<const float *>gp, ip, <float *>xp, planes, &g, n_threads)


cdef void _avgpool_planes(const floating *x, floating *y, Py_ssize_t planes, const fnn_conv_geom *g,
                          int count_include_pad, int n_threads) noexcept nogil:
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = _plane_threads(planes, n_threads)
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        _split(planes, t, nt, &lo, &hi)
        _avgpool(x + lo * HW, y + lo * P, hi - lo, g, count_include_pad)


def avg_pool2d(cnp.ndarray x, cnp.ndarray y, tuple k, tuple s, tuple p, bint count_include_pad,
               int n_threads):
    """Mean over windows of each (N*C) plane (torch's divisor rule)."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0) * cnp.PyArray_DIM(x, 1)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3), k, s, p,
                                 cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3))
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f64 = _is_f64(x)
    if planes * g.oh * g.ow == 0:
        return
    with nogil:
        if f64:
            _avgpool_planes(<const double *>xp, <double *>yp, planes, &g, count_include_pad,
                            n_threads)
        else:
            _avgpool_planes(<const float *>xp, <float *>yp, planes, &g, count_include_pad,
                            n_threads)


cdef void _avgpool_bwd_planes(const floating *gy, floating *gx, Py_ssize_t planes,
                              const fnn_conv_geom *g, int count_include_pad,
                              int n_threads) noexcept nogil:
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = _plane_threads(planes, n_threads)
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        _split(planes, t, nt, &lo, &hi)
        _avgpool_bwd(gy + lo * P, gx + lo * HW, hi - lo, g, count_include_pad)


def avg_pool2d_backward(cnp.ndarray gy, cnp.ndarray gx, tuple k, tuple s, tuple p,
                        bint count_include_pad, int n_threads):
    """gx (overwritten) = each output gradient spread evenly over its window."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(gx, 0) * cnp.PyArray_DIM(gx, 1)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(gx, 2), cnp.PyArray_DIM(gx, 3), k, s, p,
                                 cnp.PyArray_DIM(gy, 2), cnp.PyArray_DIM(gy, 3))
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *xp = cnp.PyArray_DATA(gx)
    cdef bint f64 = _is_f64(gx)
    if planes * g.h * g.w == 0:
        return
    with nogil:
        if f64:
            _avgpool_bwd_planes(<const double *>gp, <double *>xp, planes, &g, count_include_pad,
                                n_threads)
        else:
            _avgpool_bwd_planes(<const float *>gp, <float *>xp, planes, &g, count_include_pad,
                                n_threads)


# -- Winograd F(2x2, 3x3) transforms (src_c/fnn_wino.c has the maths and layouts) ----------
# Each works on the images [n0, n1) of its NCHW argument, on the calling thread.
# V / M / gM / dV are (16, R, channels) arrays whose (R, channels) blocks are
# C-contiguous (the 16 blocks may lie further apart: a leading slice of a larger
# buffer), one row per tile (T tiles per image, images in order): V holds the
# whole batch (R = N * T) and is indexed from image n0; the chunk arrays M, gM,
# dV (R >= (n1 - n0) * T) from their start.

cdef fnn_conv_geom _wgeom(tuple hw, tuple p, tuple ohw):
    return _geom(hw[0], hw[1], (3, 3), (1, 1), p, ohw[0], ohw[1])


cdef inline void _wcheck(int rc) except *:
    if rc != 0:
        raise MemoryError("conv2d (Winograd): could not allocate a scratch plane")


cdef inline Py_ssize_t _tiles(const fnn_conv_geom *g) noexcept nogil:
    return ((g.oh + 1) // 2) * ((g.ow + 1) // 2)


cdef inline Py_ssize_t _points(cnp.ndarray a):
    """Elements between a transform array's 16 point blocks."""
    return cnp.PyArray_STRIDE(a, 0) // cnp.PyArray_ITEMSIZE(a)


cdef int _wino_in_images(const floating *x, floating *V, Py_ssize_t n0, Py_ssize_t n1,
                         Py_ssize_t Cn, Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    return _wino_in(x + n0 * Cn * g.h * g.w, V + n0 * _tiles(g) * Cn, n1 - n0, Cn, ps, g)


def wino_in(cnp.ndarray x, cnp.ndarray V, Py_ssize_t n0, Py_ssize_t n1, tuple p, tuple ohw):
    """V[:, n0*T:n1*T] <- B^T d B of the 4x4 input tiles of images x[n0:n1]."""
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(x, 1), ps = _points(V)
    cdef fnn_conv_geom g = _wgeom((cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3)), p, ohw)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *vp = cnp.PyArray_DATA(V)
    cdef bint f64 = _is_f64(x)
    cdef int rc
    with nogil:
        if f64:
            rc = _wino_in_images(<const double *>xp, <double *>vp, n0, n1, Cn, ps, &g)
        else:
            rc = _wino_in_images(<const float *>xp, <float *>vp, n0, n1, Cn, ps, &g)
    _wcheck(rc)


cdef int _wino_out_images(const floating *M, floating *y, const floating *bias, Py_ssize_t n0,
                          Py_ssize_t n1, Py_ssize_t O, Py_ssize_t ps,
                          const fnn_conv_geom *g) noexcept nogil:
    return _wino_out(M, y + n0 * O * g.oh * g.ow, bias, n1 - n0, O, ps, g)


def wino_out(cnp.ndarray M, cnp.ndarray y, object bias, Py_ssize_t n0, Py_ssize_t n1, tuple hw,
             tuple p):
    """y[n0:n1] <- A^T M A (+ bias) from the chunk's M (16, (n1 - n0) * T, O)."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(y, 1), ps = _points(M)
    cdef fnn_conv_geom g = _wgeom(hw, p, (cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3)))
    cdef void *mp = cnp.PyArray_DATA(M)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef bint f64 = _is_f64(y)
    cdef int rc
    with nogil:
        if f64:
            rc = _wino_out_images(<const double *>mp, <double *>yp, <const double *>bp, n0, n1,
                                  O, ps, &g)
        else:
            rc = _wino_out_images(<const float *>mp, <float *>yp, <const float *>bp, n0, n1,
                                  O, ps, &g)
    _wcheck(rc)


cdef int _wino_gout_images(const floating *gy, floating *gM, Py_ssize_t n0, Py_ssize_t n1,
                           Py_ssize_t O, Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    return _wino_gout(gy + n0 * O * g.oh * g.ow, gM, n1 - n0, O, ps, g)


def wino_gout(cnp.ndarray gy, cnp.ndarray gM, Py_ssize_t n0, Py_ssize_t n1, tuple hw, tuple p):
    """The chunk's gM (16, (n1 - n0) * T, O) <- A g A^T of the 2x2 output-gradient
    tiles of gy[n0:n1]."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(gy, 1), ps = _points(gM)
    cdef fnn_conv_geom g = _wgeom(hw, p, (cnp.PyArray_DIM(gy, 2), cnp.PyArray_DIM(gy, 3)))
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *mp = cnp.PyArray_DATA(gM)
    cdef bint f64 = _is_f64(gy)
    cdef int rc
    with nogil:
        if f64:
            rc = _wino_gout_images(<const double *>gp, <double *>mp, n0, n1, O, ps, &g)
        else:
            rc = _wino_gout_images(<const float *>gp, <float *>mp, n0, n1, O, ps, &g)
    _wcheck(rc)


cdef int _wino_gin_images(const floating *dV, floating *gx, Py_ssize_t n0, Py_ssize_t n1,
                          Py_ssize_t Cn, Py_ssize_t ps, const fnn_conv_geom *g) noexcept nogil:
    return _wino_gin(dV, gx + n0 * Cn * g.h * g.w, n1 - n0, Cn, ps, g)


def wino_gin(cnp.ndarray dV, cnp.ndarray gx, Py_ssize_t n0, Py_ssize_t n1, tuple p, tuple ohw):
    """gx[n0:n1] <- sum of B dV B^T over tiles, from the chunk's dV (16, (n1 - n0) * T, C)."""
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(gx, 1), ps = _points(dV)
    cdef fnn_conv_geom g = _wgeom((cnp.PyArray_DIM(gx, 2), cnp.PyArray_DIM(gx, 3)), p, ohw)
    cdef void *vp = cnp.PyArray_DATA(dV)
    cdef void *xp = cnp.PyArray_DATA(gx)
    cdef bint f64 = _is_f64(gx)
    cdef int rc
    with nogil:
        if f64:
            rc = _wino_gin_images(<const double *>vp, <double *>xp, n0, n1, Cn, ps, &g)
        else:
            rc = _wino_gin_images(<const float *>vp, <float *>xp, n0, n1, Cn, ps, &g)
    _wcheck(rc)


def wino_weight(cnp.ndarray w, cnp.ndarray U):
    """U (16, C, O) <- G w G^T for the (O, C, 3, 3) weight."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(w, 0), Cn = cnp.PyArray_DIM(w, 1)
    cdef void *wp = cnp.PyArray_DATA(w)
    cdef void *up = cnp.PyArray_DATA(U)
    cdef bint f64 = _is_f64(w)
    with nogil:
        if f64:
            _wino_weight(<const double *>wp, <double *>up, O, Cn)
        else:
            _wino_weight(<const float *>wp, <float *>up, O, Cn)


def wino_wgrad(cnp.ndarray dU, cnp.ndarray gw, bint accumulate):
    """gw (O, C, 3, 3) <- G^T dU G (+= when accumulate) from dU (16, C, O)."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(gw, 0), Cn = cnp.PyArray_DIM(gw, 1)
    cdef void *dp = cnp.PyArray_DATA(dU)
    cdef void *gp = cnp.PyArray_DATA(gw)
    cdef bint f64 = _is_f64(gw)
    with nogil:
        if f64:
            _wino_wgrad(<const double *>dp, <double *>gp, O, Cn, accumulate)
        else:
            _wino_wgrad(<const float *>dp, <float *>gp, O, Cn, accumulate)


# -- Winograd chunk loops: a part of the batch in one call (GEMMs through _blas) ----------
# The loops of fastnn._engine.conv's Winograd parts, for when _blas has an entry point:
# each chunk's transforms and its 16 point GEMMs run without the GIL between them.

cdef inline int _gemm(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                      Py_ssize_t lda, const floating *b, Py_ssize_t ldb, double beta, floating *c,
                      Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        return _blas.gemm_f32(ta, tb, m, n, k, a, lda, b, ldb, <float>beta, c, ldc)
    else:
        return _blas.gemm_f64(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)


cdef inline void _ccheck(int rc) except *:
    if rc == -1:
        raise RuntimeError("conv2d (Winograd): BLAS has no entry point for the C loop, or a size "
                           "exceeds its integers")
    _wcheck(rc)


cdef int _wino_fwd_chunks(const floating *x, floating *V, Py_ssize_t vps, const floating *U,
                          floating *M, Py_ssize_t mps, floating *y, const floating *bias,
                          Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t step, Py_ssize_t Cn,
                          Py_ssize_t O, const fnn_conv_geom *g, int act, double slope) noexcept nogil:
    cdef Py_ssize_t T = _tiles(g), P = g.oh * g.ow, a = lo, e, r, xi
    cdef int rc
    while a < hi:
        e = min(hi, a + step)
        r = (e - a) * T
        rc = _wino_in_images(x, V, a, e, Cn, vps, g)
        if rc != 0:
            return rc
        for xi in range(16):
            rc = _gemm(False, False, r, O, Cn, V + xi * vps + a * T * Cn, Cn, U + xi * Cn * O, O,
                       0.0, M + xi * mps, O)
            if rc != 0:
                return rc
        rc = _wino_out(M, y + a * O * P, bias, e - a, O, mps, g)
        if rc != 0:
            return rc
        if act != K.ACT_IDENTITY:
            _bias_act(y, <const floating *>NULL, a, e, O, P, act, slope)
        a = e
    return 0


def wino_forward_chunks(cnp.ndarray x, cnp.ndarray V, cnp.ndarray U, cnp.ndarray M, cnp.ndarray y,
                        object bias, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t step, tuple p, int act,
                        double slope):
    """Images lo..hi in chunks of ``step``: wino_in into V, M[xi] = V[xi] @ U[xi] for the
    16 points (M: the part's chunk array), wino_out (+ bias) into y, then act."""
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(x, 1), O = cnp.PyArray_DIM(y, 1)
    cdef Py_ssize_t vps = _points(V), mps = _points(M)
    cdef fnn_conv_geom g = _wgeom((cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3)), p,
                                  (cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3)))
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *vp = cnp.PyArray_DATA(V)
    cdef void *up = cnp.PyArray_DATA(U)
    cdef void *mp = cnp.PyArray_DATA(M)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef int rc
    if step < 1:
        raise ValueError(f"step must be >= 1; received {step}")
    cdef bint f64 = _is_f64(x)
    with nogil:
        if f64:
            rc = _wino_fwd_chunks(<const double *>xp, <double *>vp, vps, <const double *>up,
                                  <double *>mp, mps, <double *>yp, <const double *>bp, lo, hi, step,
                                  Cn, O, &g, act, slope)
        else:
            rc = _wino_fwd_chunks(<const float *>xp, <float *>vp, vps, <const float *>up,
                                  <float *>mp, mps, <float *>yp, <const float *>bp, lo, hi, step,
                                  Cn, O, &g, act, slope)
    _ccheck(rc)


cdef int _wino_bwd_chunks(const floating *gt, floating *gM, Py_ssize_t gps, const floating *Ut,
                          floating *dV, Py_ssize_t dps, floating *gx, const floating *V,
                          Py_ssize_t vps, floating *dU, Py_ssize_t lo, Py_ssize_t hi,
                          Py_ssize_t step, Py_ssize_t Cn, Py_ssize_t O,
                          const fnn_conv_geom *g) noexcept nogil:
    cdef Py_ssize_t T = _tiles(g), a = lo, e, r, xi
    cdef int rc
    while a < hi:
        e = min(hi, a + step)
        r = (e - a) * T
        rc = _wino_gout_images(gt, gM, a, e, O, gps, g)
        if rc != 0:
            return rc
        if dV != NULL:
            for xi in range(16):
                rc = _gemm(False, False, r, Cn, O, gM + xi * gps, O, Ut + xi * O * Cn, Cn, 0.0,
                           dV + xi * dps, Cn)
                if rc != 0:
                    return rc
            rc = _wino_gin_images(dV, gx, a, e, Cn, dps, g)
            if rc != 0:
                return rc
        # the chunk's weight gradient while its gM is in cache, summed over the chunks
        for xi in range(16):
            rc = _gemm(True, False, Cn, O, r, V + xi * vps + a * T * Cn, Cn, gM + xi * gps, O,
                       0.0 if a == lo else 1.0, dU + xi * Cn * O, O)
            if rc != 0:
                return rc
        a = e
    return 0


def wino_backward_chunks(cnp.ndarray gt, cnp.ndarray gM, object Ut, object dV, object gx,
                         cnp.ndarray V, cnp.ndarray dU, Py_ssize_t lo, Py_ssize_t hi,
                         Py_ssize_t step, tuple p, tuple hw):
    """Images lo..hi in chunks of ``step``: wino_gout of gt into gM; with Ut/dV/gx (else
    None), dV[xi] = gM[xi] @ Ut[xi] and wino_gin into gx; dU[xi] (16, C, O) = the sum
    over the chunks of V[xi]^T @ gM[xi]."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(gt, 1), Cn = cnp.PyArray_DIM(dU, 1)
    cdef Py_ssize_t gps = _points(gM), vps = _points(V), dps = 0
    cdef fnn_conv_geom g = _wgeom(hw, p, (cnp.PyArray_DIM(gt, 2), cnp.PyArray_DIM(gt, 3)))
    cdef void *tp = cnp.PyArray_DATA(gt)
    cdef void *mp = cnp.PyArray_DATA(gM)
    cdef void *vp = cnp.PyArray_DATA(V)
    cdef void *up = _data(Ut)
    cdef void *dvp = _data(dV)
    cdef void *xp = _data(gx)
    cdef void *dup = cnp.PyArray_DATA(dU)
    cdef int rc
    if step < 1:
        raise ValueError(f"step must be >= 1; received {step}")
    if (Ut is None) != (dV is None) or (dV is None) != (gx is None):
        raise ValueError("Ut, dV and gx are given together, or not at all")
    if dV is not None:
        dps = _points(dV)
    cdef bint f64 = _is_f64(gt)
    with nogil:
        if f64:
            rc = _wino_bwd_chunks(<const double *>tp, <double *>mp, gps, <const double *>up,
                                  <double *>dvp, dps, <double *>xp, <const double *>vp, vps,
                                  <double *>dup, lo, hi, step, Cn, O, &g)
        else:
            rc = _wino_bwd_chunks(<const float *>tp, <float *>mp, gps, <const float *>up,
                                  <float *>dvp, dps, <float *>xp, <const float *>vp, vps,
                                  <float *>dup, lo, hi, step, Cn, O, &g)
    _ccheck(rc)
