# Shared declarations for the kernel modules: OpenMP helpers (stubs in a serial build).
cdef extern from "fnn_omp.h" nogil:
    int FNN_OPENMP
    int omp_get_max_threads()
    int omp_get_thread_num()
    int omp_get_num_threads()
