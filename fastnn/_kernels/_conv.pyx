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
transform cannot allocate its one-plane scratch.
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc
from libc.stdint cimport int32_t
from libc.string cimport memset

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

    int fnn_wino_in_f32(const float *x, float *V, Py_ssize_t nimg, Py_ssize_t C, const fnn_conv_geom *g)
    int fnn_wino_in_f64(const double *x, double *V, Py_ssize_t nimg, Py_ssize_t C, const fnn_conv_geom *g)
    int fnn_wino_out_f32(const float *M, float *y, const float *bias, Py_ssize_t nimg, Py_ssize_t O,
                         const fnn_conv_geom *g)
    int fnn_wino_out_f64(const double *M, double *y, const double *bias, Py_ssize_t nimg, Py_ssize_t O,
                         const fnn_conv_geom *g)
    int fnn_wino_gout_f32(const float *gy, float *gM, Py_ssize_t nimg, Py_ssize_t O, const fnn_conv_geom *g)
    int fnn_wino_gout_f64(const double *gy, double *gM, Py_ssize_t nimg, Py_ssize_t O,
                          const fnn_conv_geom *g)
    int fnn_wino_gin_f32(const float *dV, float *gx, Py_ssize_t nimg, Py_ssize_t C, const fnn_conv_geom *g)
    int fnn_wino_gin_f64(const double *dV, double *gx, Py_ssize_t nimg, Py_ssize_t C, const fnn_conv_geom *g)
    void fnn_wino_weight_f32(const float *w, float *U, Py_ssize_t O, Py_ssize_t C)
    void fnn_wino_weight_f64(const double *w, double *U, Py_ssize_t O, Py_ssize_t C)
    void fnn_wino_wgrad_f32(const float *dU, float *gw, Py_ssize_t O, Py_ssize_t C, int accumulate)
    void fnn_wino_wgrad_f64(const double *dU, double *gw, Py_ssize_t O, Py_ssize_t C, int accumulate)


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


def im2col(cnp.ndarray x, cnp.ndarray cols, tuple k, tuple s, tuple p, Py_ssize_t oh, Py_ssize_t ow,
           int n_threads):
    """cols[n, (c*kh + i)*kw + j, q] = padded x[n, c, oh_q*sh + i - ph, ow_q*sw + j - pw].

    x: C-contiguous (N, C, H, W); cols: C-contiguous (N, C*kh*kw, oh*ow), same dtype.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), Cn = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t H = cnp.PyArray_DIM(x, 2), W = cnp.PyArray_DIM(x, 3)
    cdef fnn_conv_geom g = _geom(H, W, k, s, p, oh, ow)
    cdef Py_ssize_t P = oh * ow, rows = g.kh * g.kw, t, n, c
    cdef Py_ssize_t ld = P, nstep = Cn * rows * P
    cdef char *xp = <char *>cnp.PyArray_DATA(x)
    cdef char *cp = <char *>cnp.PyArray_DATA(cols)
    cdef bint f64 = _is_f64(x)
    cdef Py_ssize_t isz = 8 if f64 else 4
    if N * Cn * P == 0:
        return
    with nogil:
        for t in prange(N * Cn, schedule="static", num_threads=n_threads):
            n = t // Cn
            c = t - n * Cn
            if f64:
                fnn_im2col_f64(<const double *>(xp + (t * H * W) * isz),
                               <double *>(cp + (c * rows * ld + n * nstep) * isz), ld, &g)
            else:
                fnn_im2col_f32(<const float *>(xp + (t * H * W) * isz),
                               <float *>(cp + (c * rows * ld + n * nstep) * isz), ld, &g)


def col2im(cnp.ndarray cols, cnp.ndarray gx, tuple k, tuple s, tuple p, Py_ssize_t oh, Py_ssize_t ow,
           int n_threads):
    """gx[n, c] = image n's column-gradient rows of channel c scattered back (overwrites gx).

    cols: C-contiguous (N, C*kh*kw, oh*ow); gx: C-contiguous (N, C, H, W).
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(gx, 0), Cn = cnp.PyArray_DIM(gx, 1)
    cdef Py_ssize_t H = cnp.PyArray_DIM(gx, 2), W = cnp.PyArray_DIM(gx, 3)
    cdef fnn_conv_geom g = _geom(H, W, k, s, p, oh, ow)
    cdef Py_ssize_t P = oh * ow, rows = g.kh * g.kw, t, n, c
    cdef Py_ssize_t ld = P, nstep = Cn * rows * P
    cdef char *gp = <char *>cnp.PyArray_DATA(gx)
    cdef char *cp = <char *>cnp.PyArray_DATA(cols)
    cdef bint f64 = _is_f64(gx)
    cdef Py_ssize_t isz = 8 if f64 else 4
    if N * Cn * H * W == 0:
        return
    with nogil:
        for t in prange(N * Cn, schedule="static", num_threads=n_threads):
            n = t // Cn
            c = t - n * Cn
            if f64:
                fnn_col2im_f64(<const double *>(cp + (c * rows * ld + n * nstep) * isz),
                               <double *>(gp + (t * H * W) * isz), ld, &g)
            else:
                fnn_col2im_f32(<const float *>(cp + (c * rows * ld + n * nstep) * isz),
                               <float *>(gp + (t * H * W) * isz), ld, &g)


def conv_direct(cnp.ndarray x, cnp.ndarray w, object bias, cnp.ndarray y, Py_ssize_t n0,
                Py_ssize_t n1, tuple p, int act, double slope):
    """y[n0:n1] = act(conv(x[n0:n1], w) + bias), stride 1, computed directly (no columns).

    x: C-contiguous (N, C, H, W); w: C-contiguous (O, C, kh, kw); y: (N, O, OH, OW).
    """
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(x, 1), O = cnp.PyArray_DIM(w, 0)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3),
                                 (cnp.PyArray_DIM(w, 2), cnp.PyArray_DIM(w, 3)), (1, 1), p,
                                 cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3))
    cdef Py_ssize_t xi = Cn * g.h * g.w, yi = O * g.oh * g.ow
    cdef void *bp = _data(bias)
    cdef bint f64 = _is_f64(x)
    cdef int rc
    if n1 <= n0 or yi == 0:
        return
    with nogil:
        if f64:
            rc = fnn_conv_direct_f64(<const double *>cnp.PyArray_DATA(x) + n0 * xi,
                                     <const double *>cnp.PyArray_DATA(w), <const double *>bp,
                                     <double *>cnp.PyArray_DATA(y) + n0 * yi, n1 - n0, Cn, O, &g,
                                     act, slope)
        else:
            rc = fnn_conv_direct_f32(<const float *>cnp.PyArray_DATA(x) + n0 * xi,
                                     <const float *>cnp.PyArray_DATA(w), <const float *>bp,
                                     <float *>cnp.PyArray_DATA(y) + n0 * yi, n1 - n0, Cn, O, &g,
                                     act, <float>slope)
    if rc != 0:
        raise MemoryError("conv2d (direct): could not allocate a scratch plane")


def bias_act_nchw(cnp.ndarray y, object bias, int act, double slope, int n_threads):
    """In place on a C-contiguous (N, O, ...) y: y[n, o] = act(y[n, o] + bias[o]) (bias may be None)."""
    cdef Py_ssize_t N = cnp.PyArray_DIM(y, 0), O = cnp.PyArray_DIM(y, 1)
    cdef Py_ssize_t P = cnp.PyArray_SIZE(y) // (N * O) if N * O else 0, t, n0, n1
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *bp = _data(bias)
    cdef bint f64 = _is_f64(y)
    cdef int nt = n_threads if N >= n_threads else 1
    if N * O * P == 0:
        return
    with nogil:
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            n0 = N * t // nt
            n1 = N * (t + 1) // nt
            if f64:
                fnn_conv_bias_act_f64(<double *>yp, <const double *>bp, n0, n1, O, P, act, slope)
            else:
                fnn_conv_bias_act_f32(<float *>yp, <const float *>bp, n0, n1, O, P, act, <float>slope)


def dact_nchw(cnp.ndarray gy, object y, cnp.ndarray gt, object grad_bias, bint accumulate, int act,
              double slope, int n_threads):
    """gt = gy * act'(y) on (N, O, ...) arrays; grad_bias (= or +=) its sums over all but axis 1.

    With act 0 (identity) gt may be gy itself (then only the sums are computed)
    and y may be None.  grad_bias may be None.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(gy, 0), O = cnp.PyArray_DIM(gy, 1)
    cdef Py_ssize_t P = cnp.PyArray_SIZE(gy) // (N * O) if N * O else 0, t, n0, n1, o
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *yp = _data(y) if y is not None else cnp.PyArray_DATA(gy)
    cdef void *tp = cnp.PyArray_DATA(gt)
    cdef bint f64 = _is_f64(gy)
    cdef int nt = n_threads if N >= n_threads else 1
    cdef double *acc = NULL
    cdef double *a
    cdef double s
    if grad_bias is None and act == 0 and tp == gp:
        return
    if grad_bias is not None:
        acc = <double *>malloc(nt * O * sizeof(double) + 1)
        if acc == NULL:
            raise MemoryError()
        memset(acc, 0, nt * O * sizeof(double))
    try:
        if N * O * P != 0:
            with nogil:
                for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
                    n0 = N * t // nt
                    n1 = N * (t + 1) // nt
                    a = NULL if acc == NULL else acc + t * O
                    if f64:
                        fnn_conv_dact_f64(<const double *>gp, <const double *>yp, <double *>tp, a,
                                          n0, n1, O, P, act, slope)
                    else:
                        fnn_conv_dact_f32(<const float *>gp, <const float *>yp, <float *>tp, a,
                                          n0, n1, O, P, act, <float>slope)
        if acc != NULL:
            for o in range(O):
                s = 0.0
                for t in range(nt):
                    s += acc[t * O + o]
                if f64:
                    if accumulate:
                        (<double *>cnp.PyArray_DATA(grad_bias))[o] += s
                    else:
                        (<double *>cnp.PyArray_DATA(grad_bias))[o] = s
                else:
                    if accumulate:
                        (<float *>cnp.PyArray_DATA(grad_bias))[o] += <float>s
                    else:
                        (<float *>cnp.PyArray_DATA(grad_bias))[o] = <float>s
    finally:
        free(acc)


cdef inline void _split(Py_ssize_t n, int t, int nt, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    lo[0] = n * t // nt
    hi[0] = n * (t + 1) // nt


def max_pool2d(cnp.ndarray x, cnp.ndarray y, cnp.ndarray idx, tuple k, tuple s, tuple p, int n_threads):
    """Max over windows of each (N*C) plane; idx (int32) = argmax within the input plane."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0) * cnp.PyArray_DIM(x, 1)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3), k, s, p,
                                 cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3))
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = n_threads if planes >= n_threads else 1
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef int32_t *ip = <int32_t *>cnp.PyArray_DATA(idx)
    cdef bint f64 = _is_f64(x)
    if planes * P == 0:
        return
    with nogil:
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            _split(planes, t, nt, &lo, &hi)
            if f64:
                fnn_maxpool2d_f64(<const double *>xp + lo * HW, <double *>yp + lo * P, ip + lo * P,
                                  hi - lo, &g)
            else:
                fnn_maxpool2d_f32(<const float *>xp + lo * HW, <float *>yp + lo * P, ip + lo * P,
                                  hi - lo, &g)


def max_pool2d_backward(cnp.ndarray gy, cnp.ndarray idx, cnp.ndarray gx, int n_threads):
    """gx (overwritten) = gy scattered to the argmax positions, plane by plane."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(gx, 0) * cnp.PyArray_DIM(gx, 1)
    cdef fnn_conv_geom g
    g.h = cnp.PyArray_DIM(gx, 2); g.w = cnp.PyArray_DIM(gx, 3)
    g.oh = cnp.PyArray_DIM(gy, 2); g.ow = cnp.PyArray_DIM(gy, 3)
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = n_threads if planes >= n_threads else 1
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *xp = cnp.PyArray_DATA(gx)
    cdef const int32_t *ip = <const int32_t *>cnp.PyArray_DATA(idx)
    cdef bint f64 = _is_f64(gx)
    if planes * HW == 0:
        return
    with nogil:
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            _split(planes, t, nt, &lo, &hi)
            if f64:
                fnn_maxpool2d_backward_f64(<const double *>gp + lo * P, ip + lo * P,
                                           <double *>xp + lo * HW, hi - lo, &g)
            else:
                fnn_maxpool2d_backward_f32(<const float *>gp + lo * P, ip + lo * P,
                                           <float *>xp + lo * HW, hi - lo, &g)


def avg_pool2d(cnp.ndarray x, cnp.ndarray y, tuple k, tuple s, tuple p, bint count_include_pad,
               int n_threads):
    """Mean over windows of each (N*C) plane (torch's divisor rule)."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(x, 0) * cnp.PyArray_DIM(x, 1)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3), k, s, p,
                                 cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3))
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = n_threads if planes >= n_threads else 1
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef bint f64 = _is_f64(x)
    if planes * P == 0:
        return
    with nogil:
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            _split(planes, t, nt, &lo, &hi)
            if f64:
                fnn_avgpool2d_f64(<const double *>xp + lo * HW, <double *>yp + lo * P, hi - lo, &g,
                                  count_include_pad)
            else:
                fnn_avgpool2d_f32(<const float *>xp + lo * HW, <float *>yp + lo * P, hi - lo, &g,
                                  count_include_pad)


def avg_pool2d_backward(cnp.ndarray gy, cnp.ndarray gx, tuple k, tuple s, tuple p,
                        bint count_include_pad, int n_threads):
    """gx (overwritten) = each output gradient spread evenly over its window."""
    cdef Py_ssize_t planes = cnp.PyArray_DIM(gx, 0) * cnp.PyArray_DIM(gx, 1)
    cdef fnn_conv_geom g = _geom(cnp.PyArray_DIM(gx, 2), cnp.PyArray_DIM(gx, 3), k, s, p,
                                 cnp.PyArray_DIM(gy, 2), cnp.PyArray_DIM(gy, 3))
    cdef Py_ssize_t HW = g.h * g.w, P = g.oh * g.ow, lo, hi
    cdef int t, nt = n_threads if planes >= n_threads else 1
    cdef void *gp = cnp.PyArray_DATA(gy)
    cdef void *xp = cnp.PyArray_DATA(gx)
    cdef bint f64 = _is_f64(gx)
    if planes * HW == 0:
        return
    with nogil:
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            _split(planes, t, nt, &lo, &hi)
            if f64:
                fnn_avgpool2d_backward_f64(<const double *>gp + lo * P, <double *>xp + lo * HW,
                                           hi - lo, &g, count_include_pad)
            else:
                fnn_avgpool2d_backward_f32(<const float *>gp + lo * P, <float *>xp + lo * HW,
                                           hi - lo, &g, count_include_pad)


# -- Winograd F(2x2, 3x3) transforms (src_c/fnn_wino.c has the maths and layouts) ----------
# Each works on the images [n0, n1) of its NCHW argument, on the calling thread.
# V / M / gM / dV are C-contiguous (R, 16, channels) arrays, one row per tile (T
# tiles per image, images in order): V holds the whole batch (R = N * T) and is
# indexed from image n0; the chunk arrays M, gM, dV (R = (n1 - n0) * T) from
# their start.

cdef fnn_conv_geom _wgeom(tuple hw, tuple p, tuple ohw):
    return _geom(hw[0], hw[1], (3, 3), (1, 1), p, ohw[0], ohw[1])


cdef inline void _wcheck(int rc) except *:
    if rc != 0:
        raise MemoryError("conv2d (Winograd): could not allocate a scratch plane")


cdef inline Py_ssize_t _tiles(fnn_conv_geom *g) noexcept:
    return ((g.oh + 1) // 2) * ((g.ow + 1) // 2)


def wino_in(cnp.ndarray x, cnp.ndarray V, Py_ssize_t n0, Py_ssize_t n1, tuple p, tuple ohw):
    """V[n0*T:n1*T] <- B^T d B of the 4x4 input tiles of images x[n0:n1]."""
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(x, 1)
    cdef fnn_conv_geom g = _wgeom((cnp.PyArray_DIM(x, 2), cnp.PyArray_DIM(x, 3)), p, ohw)
    cdef Py_ssize_t img = Cn * g.h * g.w, row = _tiles(&g) * 16 * Cn
    cdef bint f64 = _is_f64(x)
    cdef int rc
    with nogil:
        if f64:
            rc = fnn_wino_in_f64(<const double *>cnp.PyArray_DATA(x) + n0 * img,
                                 <double *>cnp.PyArray_DATA(V) + n0 * row, n1 - n0, Cn, &g)
        else:
            rc = fnn_wino_in_f32(<const float *>cnp.PyArray_DATA(x) + n0 * img,
                                 <float *>cnp.PyArray_DATA(V) + n0 * row, n1 - n0, Cn, &g)
    _wcheck(rc)


def wino_out(cnp.ndarray M, cnp.ndarray y, object bias, Py_ssize_t n0, Py_ssize_t n1, tuple hw,
             tuple p):
    """y[n0:n1] <- A^T M A (+ bias) from the chunk's M ((n1 - n0) * T, 16, O)."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(y, 1)
    cdef fnn_conv_geom g = _wgeom(hw, p, (cnp.PyArray_DIM(y, 2), cnp.PyArray_DIM(y, 3)))
    cdef Py_ssize_t img = O * g.oh * g.ow
    cdef void *bp = _data(bias)
    cdef bint f64 = _is_f64(y)
    cdef int rc
    with nogil:
        if f64:
            rc = fnn_wino_out_f64(<const double *>cnp.PyArray_DATA(M),
                                  <double *>cnp.PyArray_DATA(y) + n0 * img, <const double *>bp,
                                  n1 - n0, O, &g)
        else:
            rc = fnn_wino_out_f32(<const float *>cnp.PyArray_DATA(M),
                                  <float *>cnp.PyArray_DATA(y) + n0 * img, <const float *>bp,
                                  n1 - n0, O, &g)
    _wcheck(rc)


def wino_gout(cnp.ndarray gy, cnp.ndarray gM, Py_ssize_t n0, Py_ssize_t n1, tuple hw, tuple p):
    """The chunk's gM ((n1 - n0) * T, 16, O) <- A g A^T of the 2x2 output-gradient
    tiles of gy[n0:n1]."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(gy, 1)
    cdef fnn_conv_geom g = _wgeom(hw, p, (cnp.PyArray_DIM(gy, 2), cnp.PyArray_DIM(gy, 3)))
    cdef Py_ssize_t img = O * g.oh * g.ow
    cdef bint f64 = _is_f64(gy)
    cdef int rc
    with nogil:
        if f64:
            rc = fnn_wino_gout_f64(<const double *>cnp.PyArray_DATA(gy) + n0 * img,
                                   <double *>cnp.PyArray_DATA(gM), n1 - n0, O, &g)
        else:
            rc = fnn_wino_gout_f32(<const float *>cnp.PyArray_DATA(gy) + n0 * img,
                                   <float *>cnp.PyArray_DATA(gM), n1 - n0, O, &g)
    _wcheck(rc)


def wino_gin(cnp.ndarray dV, cnp.ndarray gx, Py_ssize_t n0, Py_ssize_t n1, tuple p, tuple ohw):
    """gx[n0:n1] <- sum of B dV B^T over tiles, from the chunk's dV ((n1 - n0) * T, 16, C)."""
    cdef Py_ssize_t Cn = cnp.PyArray_DIM(gx, 1)
    cdef fnn_conv_geom g = _wgeom((cnp.PyArray_DIM(gx, 2), cnp.PyArray_DIM(gx, 3)), p, ohw)
    cdef Py_ssize_t img = Cn * g.h * g.w
    cdef bint f64 = _is_f64(gx)
    cdef int rc
    with nogil:
        if f64:
            rc = fnn_wino_gin_f64(<const double *>cnp.PyArray_DATA(dV),
                                  <double *>cnp.PyArray_DATA(gx) + n0 * img, n1 - n0, Cn, &g)
        else:
            rc = fnn_wino_gin_f32(<const float *>cnp.PyArray_DATA(dV),
                                  <float *>cnp.PyArray_DATA(gx) + n0 * img, n1 - n0, Cn, &g)
    _wcheck(rc)


def wino_weight(cnp.ndarray w, cnp.ndarray U):
    """U (16, C, O) <- G w G^T for the (O, C, 3, 3) weight."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(w, 0), Cn = cnp.PyArray_DIM(w, 1)
    cdef bint f64 = _is_f64(w)
    with nogil:
        if f64:
            fnn_wino_weight_f64(<const double *>cnp.PyArray_DATA(w), <double *>cnp.PyArray_DATA(U), O, Cn)
        else:
            fnn_wino_weight_f32(<const float *>cnp.PyArray_DATA(w), <float *>cnp.PyArray_DATA(U), O, Cn)


def wino_wgrad(cnp.ndarray dU, cnp.ndarray gw, bint accumulate):
    """gw (O, C, 3, 3) <- G^T dU G (+= when accumulate) from dU (16, C, O)."""
    cdef Py_ssize_t O = cnp.PyArray_DIM(gw, 0), Cn = cnp.PyArray_DIM(gw, 1)
    cdef bint f64 = _is_f64(gw)
    with nogil:
        if f64:
            fnn_wino_wgrad_f64(<const double *>cnp.PyArray_DATA(dU), <double *>cnp.PyArray_DATA(gw),
                               O, Cn, accumulate)
        else:
            fnn_wino_wgrad_f32(<const float *>cnp.PyArray_DATA(dU), <float *>cnp.PyArray_DATA(gw),
                               O, Cn, accumulate)
