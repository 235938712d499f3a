/* fnn_omp.h -- OpenMP is optional at build time: without it these stubs make
 * every kernel run serially (and fastnn reports openmp=False). */
#ifndef FNN_OMP_H
#define FNN_OMP_H
#ifdef _OPENMP
#include <omp.h>
#define FNN_OPENMP 1
#else
#define FNN_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif
#endif
