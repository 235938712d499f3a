"""Build facts the Python layer reports through fastnn.show_config()."""
from fastnn._kernels._omp cimport FNN_OPENMP, omp_get_max_threads

cdef extern from "fastnn.h" nogil:
    const char *fnn_simd_path()


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FNN_OPENMP)


def omp_max_threads():
    """OpenMP's default team size (1 in a serial build)."""
    return omp_get_max_threads()


def simd_path():
    """Name of the SIMD path the C inner loops were compiled for."""
    return fnn_simd_path().decode("ascii")
