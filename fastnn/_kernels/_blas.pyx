"""GEMM for the kernels' own C loops, through NumPy's BLAS.

A loop whose steps are GEMMs with cheap transforms between them (a Winograd conv's
chunks) runs as one C call when it can reach BLAS itself: no GIL between its
steps, so the parts of a batch on fastnn's threads never queue for the GIL
(fastnn._engine.parallel).  fastnn._engine.blas finds the row-major ``cblas_?gemm``
entry points of the BLAS that NumPy loaded (no BLAS of fastnn's own, no link
dependency) and hands their addresses to :func:`set_gemm`; without them
:func:`available` is False and the callers keep their NumPy loops.

``gemm_f32``/``gemm_f64``: C (m, n) = op(A) @ op(B) + beta * C, row-major, op(X)
= X.T when the flag is set (alpha 1).  They return 0, or -1 when no entry point
is set or a size does not fit a 32-bit BLAS integer.
"""
from libc.stdint cimport int64_t

cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112

ctypedef void (*sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                           const float *, int64_t, float, float *, int64_t) noexcept nogil
ctypedef void (*dgemm64_t)(int, int, int, int64_t, int64_t, int64_t, double, const double *,
                           int64_t, const double *, int64_t, double, double *, int64_t) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float *, int, const float *,
                           int, float, float *, int) noexcept nogil
ctypedef void (*dgemm32_t)(int, int, int, int, int, int, double, const double *, int,
                           const double *, int, double, double *, int) noexcept nogil

cdef void *_sgemm = NULL
cdef void *_dgemm = NULL
cdef bint _ilp64 = False
cdef Py_ssize_t _INT32_MAX = 2147483647


cdef inline bint _fits32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t lda, Py_ssize_t ldb,
                         Py_ssize_t ldc) noexcept nogil:
    return (m <= _INT32_MAX and n <= _INT32_MAX and k <= _INT32_MAX and lda <= _INT32_MAX
            and ldb <= _INT32_MAX and ldc <= _INT32_MAX)


cdef int gemm_f32(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a,
                  Py_ssize_t lda, const float *b, Py_ssize_t ldb, float beta, float *c,
                  Py_ssize_t ldc) noexcept nogil:
    if _sgemm == NULL:
        return -1
    if _ilp64:
        (<sgemm64_t>_sgemm)(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS,
                            m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc)
    elif _fits32(m, n, k, lda, ldb, ldc):
        (<sgemm32_t>_sgemm)(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS,
                            <int>m, <int>n, <int>k, 1.0, a, <int>lda, b, <int>ldb, beta, c, <int>ldc)
    else:
        return -1
    return 0


cdef int gemm_f64(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a,
                  Py_ssize_t lda, const double *b, Py_ssize_t ldb, double beta, double *c,
                  Py_ssize_t ldc) noexcept nogil:
    if _dgemm == NULL:
        return -1
    if _ilp64:
        (<dgemm64_t>_dgemm)(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS,
                            m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc)
    elif _fits32(m, n, k, lda, ldb, ldc):
        (<dgemm32_t>_dgemm)(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS,
                            <int>m, <int>n, <int>k, 1.0, a, <int>lda, b, <int>ldb, beta, c, <int>ldc)
    else:
        return -1
    return 0


def set_gemm(size_t sgemm, size_t dgemm, bint ilp64):
    """Use these ``cblas_sgemm``/``cblas_dgemm`` addresses (64-bit integers when
    ``ilp64``); 0, 0 turns the C loops' GEMM off."""
    global _sgemm, _dgemm, _ilp64
    if (sgemm == 0) != (dgemm == 0):
        raise ValueError("set_gemm needs both entry points, or neither")
    _sgemm = <void *>sgemm
    _dgemm = <void *>dgemm
    _ilp64 = ilp64


def available():
    """Whether the C loops have a GEMM."""
    return _sgemm != NULL and _dgemm != NULL


def gemm(a, b, c, bint ta=False, bint tb=False, double beta=0.0):
    """c = op(a) @ op(b) + beta * c through the entry point (the self-check's and the
    tests' way in): 2-D C-contiguous arrays of one float dtype (a and b may be
    read-only), shapes checked."""
    cdef const double[:, ::1] a8, b8
    cdef const float[:, ::1] a4, b4
    cdef double[:, ::1] c8
    cdef float[:, ::1] c4
    cdef Py_ssize_t m, n, k, k2
    cdef int rc
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    k2, n = (b.shape[1], b.shape[0]) if tb else b.shape
    if k != k2 or tuple(c.shape) != (m, n):
        raise ValueError(f"gemm: op(a) {m}x{k}, op(b) {k2}x{n} and c {tuple(c.shape)} do not match")
    if m == 0 or n == 0 or k == 0:
        raise ValueError("gemm: empty operands")
    if a.dtype == b.dtype == c.dtype == "float64":
        a8, b8 = a, b
        c8 = c
        with nogil:
            rc = gemm_f64(ta, tb, m, n, k, &a8[0, 0], a8.shape[1],
                          &b8[0, 0], b8.shape[1], beta,
                          &c8[0, 0], c8.shape[1])
    elif a.dtype == b.dtype == c.dtype == "float32":
        a4, b4 = a, b
        c4 = c
        with nogil:
            rc = gemm_f32(ta, tb, m, n, k, &a4[0, 0], a4.shape[1],
                          &b4[0, 0], b4.shape[1], <float>beta,
                          &c4[0, 0], c4.shape[1])
    else:
        raise TypeError(f"gemm: a, b and c must share float32 or float64; received {a.dtype}, "
                        f"{b.dtype}, {c.dtype}")
    if rc != 0:
        raise RuntimeError("gemm: no BLAS entry point is set (or a size exceeds its integers)")
    return c
