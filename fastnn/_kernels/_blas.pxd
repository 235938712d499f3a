# GEMM through NumPy's BLAS for the C loops of the other kernel modules (_blas.pyx).
cdef int gemm_f32(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a,
                  Py_ssize_t lda, const float *b, Py_ssize_t ldb, float beta, float *c,
                  Py_ssize_t ldc) noexcept nogil
cdef int gemm_f64(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a,
                  Py_ssize_t lda, const double *b, Py_ssize_t ldb, double beta, double *c,
                  Py_ssize_t ldc) noexcept nogil
