/* fnn_act.h -- activation row loops shared by the dense and conv kernels.
 *
 * Activation codes: FNN_ACT_* of fnn_codes.h (SIG and TANH: the vectorizable
 * functions of fnn_math.h).
 * Derivatives are taken from the forward OUTPUT y.  Loads are unconditional (a
 * load in one arm of a conditional stops gcc from vectorizing the loop).  These
 * are static inline: each includer's FNN_CLONES functions get their own SIMD
 * copies. */
#ifndef FNN_ACT_H
#define FNN_ACT_H
#include <stddef.h>
#include "fnn_codes.h"

#define DEFINE_ACT_ROWS(T, SUF, SIG, TANH)                                                  \
/* gz = gy * act'(y) on one row of m elements */                                            \
static inline void fnn_dact_row_##SUF(T *restrict gz, const T *restrict gy,                 \
                                      const T *restrict y, ptrdiff_t m, int act, T slope)   \
{                                                                                           \
    switch (act) {                                                                          \
    case FNN_ACT_IDENTITY: for (ptrdiff_t j = 0; j < m; j++) gz[j] = gy[j]; break;                         \
    case FNN_ACT_RELU: for (ptrdiff_t j = 0; j < m; j++) { T g = gy[j]; gz[j] = y[j] > 0 ? g : 0; } break; \
    case FNN_ACT_LEAKY_RELU: for (ptrdiff_t j = 0; j < m; j++) { T g = gy[j]; gz[j] = y[j] > 0 ? g : g * slope; } break; \
    case FNN_ACT_SIGMOID: for (ptrdiff_t j = 0; j < m; j++) { T v = y[j]; gz[j] = gy[j] * v * (1 - v); } break; \
    default: for (ptrdiff_t j = 0; j < m; j++) { T v = y[j]; gz[j] = gy[j] * (1 - v * v); } break; \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* y = act(x + b) on one row of m elements, with one scalar bias for the row */            \
static inline void fnn_bias_act_row_##SUF(T *y, const T *x, T b, /* y may be x */          \
                                          ptrdiff_t m, int act, T slope)                    \
{                                                                                           \
    switch (act) {                                                                          \
    case FNN_ACT_IDENTITY: for (ptrdiff_t j = 0; j < m; j++) y[j] = x[j] + b; break;                       \
    case FNN_ACT_RELU: for (ptrdiff_t j = 0; j < m; j++) { T z = x[j] + b; y[j] = z > 0 ? z : 0; } break; \
    case FNN_ACT_LEAKY_RELU: for (ptrdiff_t j = 0; j < m; j++) { T z = x[j] + b; y[j] = z > 0 ? z : z * slope; } break; \
    case FNN_ACT_SIGMOID: for (ptrdiff_t j = 0; j < m; j++) y[j] = SIG(x[j] + b); break;                  \
    default: for (ptrdiff_t j = 0; j < m; j++) y[j] = TANH(x[j] + b); break;                \
    }                                                                                       \
}
#endif
