"""Normalization kernels: BatchNorm, LayerNorm, GroupNorm, InstanceNorm.

Design note
-----------
All five layers are "normalize over a set of elements, then a per-channel
affine", and the input is always viewed as a C-contiguous (rows, C, S) array:

* batch family (``batch_norm_forward`` / ``batch_norm_backward``): one set per
  channel, over every row and S (BatchNorm1d/2d; InstanceNorm in eval mode with
  running statistics).  The rows are split into one block per thread; each
  thread sums its block into its own per-channel double accumulators (sums of
  ``x - shift`` with shift a sample of the channel, so the variance does not
  cancel when |mean| >> std), the accumulators are added after the loop, the
  per-channel coefficients are computed once (double) and a second parallel
  pass writes ``y = (x - mean) * gamma * rstd + beta``.  Backward: one pass for
  ``sum(g)`` and ``sum(g * (x - mean))`` (these are also dbeta and dgamma), one
  pass for ``dx = k1 * g + k2 * (x - mean) + k3``.
* set family (``group_norm_forward`` / ``group_norm_backward``): one contiguous
  set per (row, group) of C/G * S elements (GroupNorm; InstanceNorm with G = C;
  LayerNorm as rows of (D, 1) with G = 1, so its elementwise weight is the
  "per-channel" affine).  Sets are independent: the forward does a whole set per
  C call (statistics, then the output while the set is still in cache), and
  the backward likewise, adding dgamma/dbeta into per-thread accumulators.

The forward saves (mean, rstd) per set; the backward recomputes xhat from x.
Kernels never raise (the only failure, a failed malloc of the small per-thread
accumulators, is reported by a return code and raised by the def wrapper).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

cnp.import_array()


cdef extern from "fastnn.h" nogil:
    void fnn_norm_bsums_f32(const float *x, Py_ssize_t rows, Py_ssize_t C, Py_ssize_t S,
                            const float *shift, double *acc_s, double *acc_q)
    void fnn_norm_bsums_f64(const double *x, Py_ssize_t rows, Py_ssize_t C, Py_ssize_t S,
                            const double *shift, double *acc_s, double *acc_q)
    void fnn_norm_bapply_f32(const float *x, float *y, Py_ssize_t rows, Py_ssize_t C, Py_ssize_t S,
                             const float *mu, const float *a, const float *b)
    void fnn_norm_bapply_f64(const double *x, double *y, Py_ssize_t rows, Py_ssize_t C,
                             Py_ssize_t S, const double *mu, const double *a, const double *b)
    void fnn_norm_bgsums_f32(const float *g, const float *x, Py_ssize_t rows, Py_ssize_t C,
                             Py_ssize_t S, const float *mu, double *acc_g, double *acc_gx)
    void fnn_norm_bgsums_f64(const double *g, const double *x, Py_ssize_t rows, Py_ssize_t C,
                             Py_ssize_t S, const double *mu, double *acc_g, double *acc_gx)
    void fnn_norm_bdx_f32(const float *g, const float *x, float *dx, Py_ssize_t rows, Py_ssize_t C,
                          Py_ssize_t S, const float *mu, const float *k1, const float *k2,
                          const float *k3)
    void fnn_norm_bdx_f64(const double *g, const double *x, double *dx, Py_ssize_t rows,
                          Py_ssize_t C, Py_ssize_t S, const double *mu, const double *k1,
                          const double *k2, const double *k3)
    void fnn_norm_set_fwd_f32(const float *x, float *y, Py_ssize_t C, Py_ssize_t S, double eps,
                              const float *gamma, const float *beta, double *mean_out,
                              double *rstd_out)
    void fnn_norm_set_fwd_f64(const double *x, double *y, Py_ssize_t C, Py_ssize_t S, double eps,
                              const double *gamma, const double *beta, double *mean_out,
                              double *rstd_out)
    void fnn_norm_set_bwd_f32(const float *x, const float *g, float *dx, Py_ssize_t C, Py_ssize_t S,
                              double mean, double rstd, const float *gamma, double *acc_g,
                              double *acc_gx)
    void fnn_norm_set_bwd_f64(const double *x, const double *g, double *dx, Py_ssize_t C,
                              Py_ssize_t S, double mean, double rstd, const double *gamma,
                              double *acc_g, double *acc_gx)


# -- one-element/one-block helpers (fused type dispatch) ------------------------------

cdef inline void _bsums(const floating *x, Py_ssize_t rows, Py_ssize_t C, Py_ssize_t S,
                        const floating *shift, double *acc_s, double *acc_q) noexcept nogil:
    if floating is float:
        fnn_norm_bsums_f32(x, rows, C, S, shift, acc_s, acc_q)
    else:
        fnn_norm_bsums_f64(x, rows, C, S, shift, acc_s, acc_q)


cdef inline void _bapply(const floating *x, floating *y, Py_ssize_t rows, Py_ssize_t C,
                         Py_ssize_t S, const floating *mu, const floating *a,
                         const floating *b) noexcept nogil:
    if floating is float:
        fnn_norm_bapply_f32(x, y, rows, C, S, mu, a, b)
    else:
        fnn_norm_bapply_f64(x, y, rows, C, S, mu, a, b)


cdef inline void _bgsums(const floating *g, const floating *x, Py_ssize_t rows, Py_ssize_t C,
                         Py_ssize_t S, const floating *mu, double *acc_g,
                         double *acc_gx) noexcept nogil:
    if floating is float:
        fnn_norm_bgsums_f32(g, x, rows, C, S, mu, acc_g, acc_gx)
    else:
        fnn_norm_bgsums_f64(g, x, rows, C, S, mu, acc_g, acc_gx)


cdef inline void _bdx(const floating *g, const floating *x, floating *dx, Py_ssize_t rows,
                      Py_ssize_t C, Py_ssize_t S, const floating *mu, const floating *k1,
                      const floating *k2, const floating *k3) noexcept nogil:
    if floating is float:
        fnn_norm_bdx_f32(g, x, dx, rows, C, S, mu, k1, k2, k3)
    else:
        fnn_norm_bdx_f64(g, x, dx, rows, C, S, mu, k1, k2, k3)


cdef inline void _set_fwd(const floating *x, floating *y, Py_ssize_t C, Py_ssize_t S, double eps,
                          const floating *gamma, const floating *beta, double *mean_out,
                          double *rstd_out) noexcept nogil:
    if floating is float:
        fnn_norm_set_fwd_f32(x, y, C, S, eps, gamma, beta, mean_out, rstd_out)
    else:
        fnn_norm_set_fwd_f64(x, y, C, S, eps, gamma, beta, mean_out, rstd_out)


cdef inline void _set_bwd(const floating *x, const floating *g, floating *dx, Py_ssize_t C,
                          Py_ssize_t S, double mean, double rstd, const floating *gamma,
                          double *acc_g, double *acc_gx) noexcept nogil:
    if floating is float:
        fnn_norm_set_bwd_f32(x, g, dx, C, S, mean, rstd, gamma, acc_g, acc_gx)
    else:
        fnn_norm_set_bwd_f64(x, g, dx, C, S, mean, rstd, gamma, acc_g, acc_gx)


cdef inline void *_data(object a) noexcept:
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int _threads(Py_ssize_t blocks, int n_threads) noexcept nogil:
    if n_threads < 1:
        return 1
    return <int>blocks if blocks < n_threads else n_threads


# -- batch family ----------------------------------------------------------------------

cdef int _batch_fwd(const floating *x, floating *y, Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                    const floating *w, const floating *b, double *mean, double *rstd,
                    bint batch_stats, double eps, floating *rm, floating *rv, double factor,
                    int n_threads) noexcept nogil:
    cdef int nt = _threads(N, n_threads)
    cdef Py_ssize_t t, c, lo, hi
    cdef double M = <double>(N * S), s, q, dm, var, ad
    cdef double *acc = NULL
    cdef floating *coef = <floating *>malloc(4 * C * sizeof(floating))
    if coef == NULL:
        return -1
    cdef floating *shift = coef
    cdef floating *a = coef + C
    cdef floating *bb = coef + 2 * C
    cdef floating *mu = coef + 3 * C
    if batch_stats:
        acc = <double *>malloc(2 * nt * C * sizeof(double))
        if acc == NULL:
            free(coef)
            return -1
        for c in range(C):
            shift[c] = x[c * S]
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            lo = N * t // nt
            hi = N * (t + 1) // nt
            for c in range(2 * C):
                acc[2 * C * t + c] = 0.0
            _bsums(x + lo * C * S, hi - lo, C, S, shift, acc + 2 * C * t, acc + 2 * C * t + C)
        for c in range(C):
            s = 0.0
            q = 0.0
            for t in range(nt):
                s = s + acc[2 * C * t + c]
                q = q + acc[2 * C * t + C + c]
            dm = s / M
            var = q / M - dm * dm
            if var < 0.0:
                var = 0.0
            mean[c] = shift[c] + dm
            rstd[c] = 1.0 / sqrt(var + eps)
            if rm != NULL:
                rm[c] = <floating>((1.0 - factor) * rm[c] + factor * mean[c])
                rv[c] = <floating>((1.0 - factor) * rv[c] + factor * var * M / (M - 1.0))
        free(acc)
    else:
        for c in range(C):
            mean[c] = rm[c]
            rstd[c] = 1.0 / sqrt(<double>rv[c] + eps)
    for c in range(C):
        # y = (x - mu) * a + bb with mu the mean rounded to x's type; bb absorbs the
        # rounding residual so float32 stays accurate when |mean| >> std
        mu[c] = <floating>mean[c]
        ad = (w[c] if w != NULL else 1.0) * rstd[c]
        a[c] = <floating>ad
        bb[c] = <floating>((b[c] if b != NULL else 0.0) - (mean[c] - <double>mu[c]) * ad)
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        lo = N * t // nt
        hi = N * (t + 1) // nt
        _bapply(x + lo * C * S, y + lo * C * S, hi - lo, C, S, mu, a, bb)
    free(coef)
    return 0


def batch_norm_forward(cnp.ndarray x, cnp.ndarray y, object weight, object bias,
                       cnp.ndarray mean_out, cnp.ndarray rstd_out, bint batch_stats, double eps,
                       object running_mean, object running_var, double factor, int n_threads):
    """Per-channel normalization of a C-contiguous (N, C, S) array ``x`` into ``y``.

    batch_stats: normalize with the batch statistics (train mode), saved in
    ``mean_out`` and ``rstd_out`` (float64, (C,)); when
    running_mean/running_var are given they are updated in place with weight
    ``factor`` (momentum, or 1/num_batches for a cumulative average), the
    variance unbiased.  Otherwise normalize with running_mean/running_var
    (eval mode; mean_out/rstd_out receive them).  weight/bias may be None.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), C = cnp.PyArray_DIM(x, 1), S = cnp.PyArray_DIM(x, 2)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _data(weight)
    cdef void *bp = _data(bias)
    cdef double *mp = <double *>cnp.PyArray_DATA(mean_out)
    cdef double *rp = <double *>cnp.PyArray_DATA(rstd_out)
    cdef void *rmp = _data(running_mean)
    cdef void *rvp = _data(running_var)
    cdef bint f64 = cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE
    cdef int rc
    if C == 0 or N * S == 0:
        return
    with nogil:
        if f64:
            rc = _batch_fwd(<const double *>xp, <double *>yp, N, C, S, <const double *>wp,
                            <const double *>bp, mp, rp, batch_stats, eps,
                            <double *>rmp, <double *>rvp, factor, n_threads)
        else:
            rc = _batch_fwd(<const float *>xp, <float *>yp, N, C, S, <const float *>wp,
                            <const float *>bp, mp, rp, batch_stats, eps,
                            <float *>rmp, <float *>rvp, factor, n_threads)
    if rc < 0:
        raise MemoryError()


cdef int _batch_bwd(const floating *g, const floating *x, floating *dx, Py_ssize_t N, Py_ssize_t C,
                    Py_ssize_t S, const floating *w, const double *mean, const double *rstd,
                    bint batch_stats, floating *dw, floating *db, bint accumulate,
                    int n_threads) noexcept nogil:
    cdef int nt = _threads(N, n_threads)
    cdef Py_ssize_t t, c, lo, hi
    cdef double M = <double>(N * S), sg, sx, wc, r, k2
    cdef double *acc = NULL
    cdef bint sums = (batch_stats and dx != NULL) or dw != NULL or db != NULL
    # mu: the mean rounded to x's type (sums of g * (x - mu) are corrected by the residual)
    cdef floating *coef = <floating *>malloc(4 * C * sizeof(floating))
    if coef == NULL:
        return -1
    cdef floating *mu = coef + 3 * C
    for c in range(C):
        mu[c] = <floating>mean[c]
    if sums:
        acc = <double *>malloc(2 * nt * C * sizeof(double))
        if acc == NULL:
            free(coef)
            return -1
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            lo = N * t // nt
            hi = N * (t + 1) // nt
            for c in range(2 * C):
                acc[2 * C * t + c] = 0.0
            _bgsums(g + lo * C * S, x + lo * C * S, hi - lo, C, S, mu, acc + 2 * C * t,
                    acc + 2 * C * t + C)
        # totals into the first thread's slots
        for c in range(C):
            sg = 0.0
            sx = 0.0
            for t in range(nt):
                sg = sg + acc[2 * C * t + c]
                sx = sx + acc[2 * C * t + C + c]
            sx = sx - (mean[c] - <double>mu[c]) * sg
            acc[c] = sg
            acc[C + c] = sx
            if dw != NULL:
                if accumulate:
                    dw[c] = <floating>(dw[c] + sx * rstd[c])
                else:
                    dw[c] = <floating>(sx * rstd[c])
            if db != NULL:
                if accumulate:
                    db[c] = <floating>(db[c] + sg)
                else:
                    db[c] = <floating>sg
    if dx != NULL:
        for c in range(C):
            wc = w[c] if w != NULL else 1.0
            r = rstd[c]
            coef[c] = <floating>(wc * r)
            if batch_stats:
                k2 = -wc * r * r * r * acc[C + c] / M
                coef[C + c] = <floating>k2
                coef[2 * C + c] = <floating>(-wc * r * acc[c] / M - k2 * (mean[c] - <double>mu[c]))
        for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
            lo = N * t // nt
            hi = N * (t + 1) // nt
            _bdx(g + lo * C * S, x + lo * C * S if batch_stats else NULL, dx + lo * C * S,
                 hi - lo, C, S, mu, coef, coef + C, coef + 2 * C)
    free(coef)
    free(acc)
    return 0


def batch_norm_backward(cnp.ndarray grad_y, cnp.ndarray x, object grad_x_out, object weight,
                        cnp.ndarray mean, cnp.ndarray rstd, bint batch_stats,
                        object grad_weight_out, object grad_bias_out, bint accumulate,
                        int n_threads):
    """Backward of ``batch_norm_forward`` on (N, C, S) arrays.

    grad_x_out (None: not computed) receives dx; grad_weight_out/grad_bias_out
    (None: not computed) are overwritten or, with ``accumulate``, added to.
    batch_stats says whether the forward used batch statistics (then the
    statistics depend on x and dx has the two correction terms).
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), C = cnp.PyArray_DIM(x, 1), S = cnp.PyArray_DIM(x, 2)
    cdef void *gp = cnp.PyArray_DATA(grad_y)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = _data(grad_x_out)
    cdef void *wp = _data(weight)
    cdef const double *mp = <const double *>cnp.PyArray_DATA(mean)
    cdef const double *rp = <const double *>cnp.PyArray_DATA(rstd)
    cdef void *dwp = _data(grad_weight_out)
    cdef void *dbp = _data(grad_bias_out)
    cdef bint f64 = cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE
    cdef int rc
    if C == 0 or N * S == 0:
        return
    with nogil:
        if f64:
            rc = _batch_bwd(<const double *>gp, <const double *>xp, <double *>dxp, N, C, S,
                            <const double *>wp, mp, rp, batch_stats,
                            <double *>dwp, <double *>dbp, accumulate, n_threads)
        else:
            rc = _batch_bwd(<const float *>gp, <const float *>xp, <float *>dxp, N, C, S,
                            <const float *>wp, mp, rp, batch_stats,
                            <float *>dwp, <float *>dbp, accumulate, n_threads)
    if rc < 0:
        raise MemoryError()


# -- set family --------------------------------------------------------------------------

cdef void _group_fwd(const floating *x, floating *y, Py_ssize_t N, Py_ssize_t C, Py_ssize_t S,
                     Py_ssize_t G, const floating *w, const floating *b, double eps,
                     double *mean, double *rstd, int n_threads) noexcept nogil:
    cdef Py_ssize_t cg = C // G, L = cg * S, nsets = N * G, i, ch0
    cdef int nt = _threads(nsets, n_threads)
    for i in prange(nsets, schedule="static", num_threads=nt):
        ch0 = (i % G) * cg
        _set_fwd(x + i * L, y + i * L, cg, S, eps, (w + ch0) if w != NULL else NULL,
                 (b + ch0) if b != NULL else NULL, mean + i, rstd + i)


def group_norm_forward(cnp.ndarray x, cnp.ndarray y, Py_ssize_t num_groups, object weight,
                       object bias, double eps, cnp.ndarray mean_out, cnp.ndarray rstd_out,
                       int n_threads):
    """Normalize each (row, group) set of a C-contiguous (N, C, S) array ``x`` into ``y``.

    C must be divisible by num_groups; weight/bias (C,) may be None.  The
    statistics of the N * num_groups sets go to mean_out/rstd_out (float64).
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), C = cnp.PyArray_DIM(x, 1), S = cnp.PyArray_DIM(x, 2)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _data(weight)
    cdef void *bp = _data(bias)
    cdef double *mp = <double *>cnp.PyArray_DATA(mean_out)
    cdef double *rp = <double *>cnp.PyArray_DATA(rstd_out)
    cdef bint f64 = cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE
    if N == 0 or C == 0 or S == 0:
        return
    with nogil:
        if f64:
            _group_fwd(<const double *>xp, <double *>yp, N, C, S, num_groups, <const double *>wp,
                       <const double *>bp, eps, mp, rp, n_threads)
        else:
            _group_fwd(<const float *>xp, <float *>yp, N, C, S, num_groups, <const float *>wp,
                       <const float *>bp, eps, mp, rp, n_threads)


cdef int _group_bwd(const floating *g, const floating *x, floating *dx, Py_ssize_t N,
                    Py_ssize_t C, Py_ssize_t S, Py_ssize_t G, const floating *w,
                    const double *mean, const double *rstd, floating *dw, floating *db,
                    bint accumulate, int n_threads) noexcept nogil:
    cdef Py_ssize_t cg = C // G, L = cg * S, nsets = N * G, i, c, t, ch0, lo, hi
    cdef int nt = _threads(nsets, n_threads)
    cdef bint sums = dw != NULL or db != NULL
    cdef double *acc = NULL
    cdef double sg, sx
    if not sums and dx == NULL:
        return 0
    if sums:
        acc = <double *>malloc(2 * nt * C * sizeof(double))
        if acc == NULL:
            return -1
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        lo = nsets * t // nt
        hi = nsets * (t + 1) // nt
        if acc != NULL:
            for c in range(2 * C):
                acc[2 * C * t + c] = 0.0
        for i in range(lo, hi):
            ch0 = (i % G) * cg
            _set_bwd(x + i * L, g + i * L, (dx + i * L) if dx != NULL else NULL, cg, S, mean[i],
                     rstd[i], (w + ch0) if w != NULL else NULL,
                     (acc + 2 * C * t + ch0) if acc != NULL else NULL,
                     (acc + 2 * C * t + C + ch0) if acc != NULL else NULL)
    if sums:
        for c in range(C):
            sg = 0.0
            sx = 0.0
            for t in range(nt):
                sg = sg + acc[2 * C * t + c]
                sx = sx + acc[2 * C * t + C + c]
            if dw != NULL:
                dw[c] = <floating>((dw[c] + sx) if accumulate else sx)
            if db != NULL:
                db[c] = <floating>((db[c] + sg) if accumulate else sg)
        free(acc)
    return 0


def group_norm_backward(cnp.ndarray grad_y, cnp.ndarray x, object grad_x_out, Py_ssize_t num_groups,
                        object weight, cnp.ndarray mean, cnp.ndarray rstd, object grad_weight_out,
                        object grad_bias_out, bint accumulate, int n_threads):
    """Backward of ``group_norm_forward`` on (N, C, S) arrays.

    grad_x_out, grad_weight_out and grad_bias_out may each be None (not
    computed); the parameter gradients are overwritten or, with
    ``accumulate``, added to.
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(x, 0), C = cnp.PyArray_DIM(x, 1), S = cnp.PyArray_DIM(x, 2)
    cdef void *gp = cnp.PyArray_DATA(grad_y)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = _data(grad_x_out)
    cdef void *wp = _data(weight)
    cdef const double *mp = <const double *>cnp.PyArray_DATA(mean)
    cdef const double *rp = <const double *>cnp.PyArray_DATA(rstd)
    cdef void *dwp = _data(grad_weight_out)
    cdef void *dbp = _data(grad_bias_out)
    cdef bint f64 = cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE
    cdef int rc
    if C == 0:
        return
    if N == 0 or S == 0:
        if not accumulate:
            if grad_weight_out is not None:
                grad_weight_out[...] = 0
            if grad_bias_out is not None:
                grad_bias_out[...] = 0
        return
    with nogil:
        if f64:
            rc = _group_bwd(<const double *>gp, <const double *>xp, <double *>dxp, N, C, S,
                            num_groups, <const double *>wp, mp, rp, <double *>dwp,
                            <double *>dbp, accumulate, n_threads)
        else:
            rc = _group_bwd(<const float *>gp, <const float *>xp, <float *>dxp, N, C, S,
                            num_groups, <const float *>wp, mp, rp, <float *>dwp,
                            <float *>dbp, accumulate, n_threads)
    if rc < 0:
        raise MemoryError()
