/* fnn_rnn.c -- the per-time-step loops of the recurrent layers (RNN, LSTM),
 * compiled as x86-64-v4 / v3 / baseline clones (fnn_simd.h).  Called by
 * fastnn/_kernels/_rnn.pyx once per time step, between the GEMMs that the
 * Python layer runs through np.matmul.
 *
 * Layout.  Each function gets the first row of one time step's n batch rows
 * and a row stride (in elements) per array: the layer's own arrays (gates, c,
 * dz, h_{t-1}) are time-major, so a step's rows are adjacent; the output y and
 * its gradient gy are in the user's layout (batch_first: stride T * h).  The
 * recurrent product of a step (`rec`) and the cell gradient `dc` are contiguous
 * (n, width) arrays; `dh_rec` and `h_next` may be the first columns of a wider
 * array (their own row strides).
 *
 * LSTM gates are in torch's order (i, f, g, o) along the 4h axis.  Forward
 * overwrites the input projection with the gate ACTIVATIONS (saved for
 * backward), writes c_t, and h_t to the output (and to the h_{t-1} array of the
 * next step).  Backward recomputes tanh(c_t) with the same function as forward
 * and writes the pre-activation gate gradients dz; the bias gradient (column sums
 * of dz) is accumulated in double in the same pass.
 *
 * sigmoid / tanh, float32: branch-free and vectorizable (an exp of a
 * non-positive argument only, so nothing overflows: sigmoid(x) = 1/(1+e) or
 * e/(1+e) with e = exp(-|x|); tanh(|x|) = (1-e)/(1+e) with e = exp(-2|x|) for
 * |x| >= 0.625, and Cephes' odd polynomial below, where 1-e would cancel).
 * The exp is Cephes' expf (range reduction by ln2 in two parts, degree-6
 * polynomial, 2^n from the exponent bits), about 1 ulp; arguments below -87
 * give 0.  NaN propagates.  float64 uses libm's exp and tanh (same formulas).
 * Kernels never raise. */
/* The selects in the nonlinearities below (clamp, sign, small/large branch)
 * are if-converted into blends only when gcc may evaluate both arms, i.e.
 * without -ftrapping-math (AVX-512 has masked ops and does not need it; AVX2 and
 * SSE do, and without it these loops stay scalar: 8x slower, measured).  fastnn
 * never enables floating-point traps, and results are bitwise the same. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fastnn.h"
#include "fnn_simd.h"
#include "fnn_math.h"


#define DEFINE_RNN(T, SUF)                                                                      \
FNN_ROW void fnn_lstm_fwd_row_##SUF(ptrdiff_t h, const T *restrict rec,                    \
        const T *restrict bias, T *restrict g, const T *restrict cp, T *restrict c,             \
        T *restrict y, T *restrict hn)                                                          \
{                                                                                               \
    /* one nonlinearity per loop: gcc vectorizes these (not one loop with five) */             \
    if (bias != NULL) {                                                                         \
        for (ptrdiff_t j = 0; j < 2 * h; j++) g[j] = fnn_sigmoid_##SUF(g[j] + rec[j] + bias[j]); \
        for (ptrdiff_t j = 2 * h; j < 3 * h; j++) g[j] = fnn_tanh_##SUF(g[j] + rec[j] + bias[j]); \
        for (ptrdiff_t j = 3 * h; j < 4 * h; j++) g[j] = fnn_sigmoid_##SUF(g[j] + rec[j] + bias[j]); \
    } else {                                                                                    \
        for (ptrdiff_t j = 0; j < 2 * h; j++) g[j] = fnn_sigmoid_##SUF(g[j] + rec[j]);          \
        for (ptrdiff_t j = 2 * h; j < 3 * h; j++) g[j] = fnn_tanh_##SUF(g[j] + rec[j]);         \
        for (ptrdiff_t j = 3 * h; j < 4 * h; j++) g[j] = fnn_sigmoid_##SUF(g[j] + rec[j]);      \
    }                                                                                           \
    const T *gi = g, *gf = g + h, *gg = g + 2 * h, *go = g + 3 * h;                             \
    for (ptrdiff_t j = 0; j < h; j++) {                                                         \
        T cn = gf[j] * cp[j] + gi[j] * gg[j];                                                   \
        c[j] = cn;                                                                              \
        y[j] = go[j] * fnn_tanh_##SUF(cn);                                                      \
    }                                                                                           \
    if (hn != NULL)                                                                             \
        for (ptrdiff_t j = 0; j < h; j++) hn[j] = y[j];                                         \
}                                                                                               \
                                                                                                \
FNN_CLONES void fnn_lstm_fwd_step_##SUF(ptrdiff_t n, ptrdiff_t h, const T *rec, const T *bias,   \
        T *gates, ptrdiff_t gs, const T *c_prev, ptrdiff_t cps, T *c, ptrdiff_t cs,             \
        T *y, ptrdiff_t ys, T *h_next, ptrdiff_t hns)                                           \
{                                                                                               \
    for (ptrdiff_t b = 0; b < n; b++)                                                           \
        fnn_lstm_fwd_row_##SUF(h, rec + b * 4 * h, bias, gates + b * gs, c_prev + b * cps,      \
                               c + b * cs, y + b * ys, h_next != NULL ? h_next + b * hns : NULL); \
}                                                                                               \
                                                                                                \
FNN_ROW void fnn_lstm_bwd_row_##SUF(ptrdiff_t h, const T *restrict a,                      \
        const T *restrict c, const T *restrict cp, const T *restrict gy,                        \
        const T *restrict dhr, T *restrict dc, T *restrict dz, double *restrict acc)            \
{                                                                                               \
    for (ptrdiff_t j = 0; j < h; j++) {                                                         \
        T i = a[j], f = a[h + j], g = a[2 * h + j], o = a[3 * h + j];                           \
        T tc = fnn_tanh_##SUF(c[j]);                                                            \
        T dh = gy[j] + dhr[j];                                                                  \
        T dcv = dc[j] + dh * o * (1 - tc * tc);                                                 \
        dz[j] = dcv * g * i * (1 - i);                                                          \
        dz[h + j] = dcv * cp[j] * f * (1 - f);                                                  \
        dz[2 * h + j] = dcv * i * (1 - g * g);                                                  \
        dz[3 * h + j] = dh * tc * o * (1 - o);                                                  \
        dc[j] = dcv * f;                                                                        \
    }                                                                                           \
    if (acc != NULL)                                                                            \
        for (ptrdiff_t j = 0; j < 4 * h; j++) acc[j] += (double)dz[j];                          \
}                                                                                               \
                                                                                                \
FNN_CLONES void fnn_lstm_bwd_step_##SUF(ptrdiff_t n, ptrdiff_t h, const T *gates, ptrdiff_t gs,  \
        const T *c, ptrdiff_t cs, const T *c_prev, ptrdiff_t cps, const T *gy, ptrdiff_t gys,   \
        const T *dh_rec, ptrdiff_t dhs, T *dc, T *dz, ptrdiff_t dzs, double *acc)               \
{                                                                                               \
    for (ptrdiff_t b = 0; b < n; b++)                                                           \
        fnn_lstm_bwd_row_##SUF(h, gates + b * gs, c + b * cs, c_prev + b * cps, gy + b * gys,  \
                               dh_rec + b * dhs, dc + b * h, dz + b * dzs, acc);                  \
}                                                                                               \
                                                                                                \
FNN_ROW void fnn_rnn_fwd_row_##SUF(ptrdiff_t h, const T *restrict rec,                     \
        const T *restrict bias, const T *restrict xp, T *restrict y, T *restrict hn, int relu)  \
{                                                                                               \
    if (relu) {                                                                                 \
        if (bias != NULL)                                                                       \
            for (ptrdiff_t j = 0; j < h; j++) { T z = xp[j] + rec[j] + bias[j]; y[j] = z > 0 ? z : 0; } \
        else                                                                                    \
            for (ptrdiff_t j = 0; j < h; j++) { T z = xp[j] + rec[j]; y[j] = z > 0 ? z : 0; }   \
    } else {                                                                                    \
        if (bias != NULL)                                                                       \
            for (ptrdiff_t j = 0; j < h; j++) y[j] = fnn_tanh_##SUF(xp[j] + rec[j] + bias[j]);  \
        else                                                                                    \
            for (ptrdiff_t j = 0; j < h; j++) y[j] = fnn_tanh_##SUF(xp[j] + rec[j]);            \
    }                                                                                           \
    if (hn != NULL)                                                                             \
        for (ptrdiff_t j = 0; j < h; j++) hn[j] = y[j];                                         \
}                                                                                               \
                                                                                                \
FNN_CLONES void fnn_rnn_fwd_step_##SUF(ptrdiff_t n, ptrdiff_t h, const T *rec, const T *bias,    \
        const T *xp, ptrdiff_t xs, T *y, ptrdiff_t ys, T *h_next, ptrdiff_t hns, int relu)       \
{                                                                                               \
    for (ptrdiff_t b = 0; b < n; b++)                                                           \
        fnn_rnn_fwd_row_##SUF(h, rec + b * h, bias, xp + b * xs, y + b * ys,                    \
                              h_next != NULL ? h_next + b * hns : NULL, relu);                  \
}                                                                                               \
                                                                                                \
FNN_ROW void fnn_rnn_bwd_row_##SUF(ptrdiff_t h, const T *restrict y,                       \
        const T *restrict gy, const T *restrict dhr, T *restrict dz, double *restrict acc,      \
        int relu)                                                                               \
{                                                                                               \
    if (relu)                                                                                   \
        for (ptrdiff_t j = 0; j < h; j++) { T d = gy[j] + dhr[j]; dz[j] = y[j] > 0 ? d : 0; }   \
    else                                                                                        \
        for (ptrdiff_t j = 0; j < h; j++) { T v = y[j]; dz[j] = (gy[j] + dhr[j]) * (1 - v * v); } \
    if (acc != NULL)                                                                            \
        for (ptrdiff_t j = 0; j < h; j++) acc[j] += (double)dz[j];                              \
}                                                                                               \
                                                                                                \
FNN_CLONES void fnn_rnn_bwd_step_##SUF(ptrdiff_t n, ptrdiff_t h, const T *y, ptrdiff_t ys,       \
        const T *gy, ptrdiff_t gys, const T *dh_rec, ptrdiff_t dhs, T *dz, ptrdiff_t dzs,        \
        double *acc, int relu)                                                                  \
{                                                                                               \
    for (ptrdiff_t b = 0; b < n; b++)                                                           \
        fnn_rnn_bwd_row_##SUF(h, y + b * ys, gy + b * gys, dh_rec + b * dhs, dz + b * dzs, acc, relu); \
}                                                                                               \
                                                                                                \
FNN_CLONES void fnn_sigmoid_tanh_##SUF(const T *x, T *sig, T *th, ptrdiff_t n)                   \
{                                                                                               \
    for (ptrdiff_t j = 0; j < n; j++) { sig[j] = fnn_sigmoid_##SUF(x[j]); th[j] = fnn_tanh_##SUF(x[j]); } \
}

DEFINE_RNN(float, f32)
DEFINE_RNN(double, f64)
