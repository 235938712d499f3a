/* fnn_dense.c -- the element-wise loops around a dense layer's GEMM, compiled
 * as x86-64-v4 / v3 / baseline clones (fnn_simd.h).  Called by
 * fastnn/_kernels/_dense.pyx on blocks of whole rows, one block per thread.
 *
 * Activation codes: 0 identity, 1 relu, 2 leaky relu, 3 sigmoid, 4 tanh.
 * Derivatives are taken from the forward OUTPUT y.  Loads are unconditional (a
 * load in one arm of a conditional stops gcc from vectorizing the loop). */
/* no-trapping-math: see fnn_math.h */
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
#include "fnn_act.h"

#define DEFINE_DENSE(T, SUF, SIG, TANH)                                                     \
FNN_CLONES void fnn_act_rows_##SUF(T *y, const T *x, const T *b, ptrdiff_t rows,            \
                                   ptrdiff_t m, int act, T slope)                           \
{                                                                                           \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                  \
        T *yr = y + r * m;                                                                  \
        const T *xr = x + r * m;                                                            \
        if (b == NULL) {                                                                    \
            switch (act) {                                                                  \
            case FNN_ACT_IDENTITY: if (yr != xr) for (ptrdiff_t j = 0; j < m; j++) yr[j] = xr[j]; break;   \
            case FNN_ACT_RELU: for (ptrdiff_t j = 0; j < m; j++) { T z = xr[j]; yr[j] = z > 0 ? z : 0; } break; \
            case FNN_ACT_LEAKY_RELU: for (ptrdiff_t j = 0; j < m; j++) { T z = xr[j]; yr[j] = z > 0 ? z : z * slope; } break; \
            case FNN_ACT_SIGMOID: for (ptrdiff_t j = 0; j < m; j++) yr[j] = SIG(xr[j]); break;            \
            default: for (ptrdiff_t j = 0; j < m; j++) yr[j] = TANH(xr[j]); break;          \
            }                                                                               \
        } else {                                                                            \
            switch (act) {                                                                  \
            case FNN_ACT_IDENTITY: for (ptrdiff_t j = 0; j < m; j++) yr[j] = xr[j] + b[j]; break;          \
            case FNN_ACT_RELU: for (ptrdiff_t j = 0; j < m; j++) { T z = xr[j] + b[j]; yr[j] = z > 0 ? z : 0; } break; \
            case FNN_ACT_LEAKY_RELU: for (ptrdiff_t j = 0; j < m; j++) { T z = xr[j] + b[j]; yr[j] = z > 0 ? z : z * slope; } break; \
            case FNN_ACT_SIGMOID: for (ptrdiff_t j = 0; j < m; j++) yr[j] = SIG(xr[j] + b[j]); break;     \
            default: for (ptrdiff_t j = 0; j < m; j++) yr[j] = TANH(xr[j] + b[j]); break;   \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_dact_rows_##SUF(T *gz, const T *gy, const T *y, double *acc,            \
                                    ptrdiff_t rows, ptrdiff_t m, int act, T slope)          \
{                                                                                           \
    const T *src = gz != NULL ? gz : gy;                                                    \
    if (acc != NULL)                                                                        \
        for (ptrdiff_t j = 0; j < m; j++) acc[j] = 0.0;                                     \
    for (ptrdiff_t i = 0; i < rows; i += 4) {                                               \
        ptrdiff_t r = rows - i < 4 ? rows - i : 4;                                          \
        if (gz != NULL)                                                                     \
            for (ptrdiff_t k = 0; k < r; k++)                                               \
                fnn_dact_row_##SUF(gz + (i + k) * m, gy + (i + k) * m, y + (i + k) * m, m, act, slope); \
        if (acc == NULL)                                                                    \
            continue;                                                                       \
        const T *r0 = src + i * m;                                                          \
        if (r == 4) {                                                                       \
            /* four rows in the array's type, then into the double accumulators */         \
            const T *r1 = r0 + m, *r2 = r1 + m, *r3 = r2 + m;                               \
            for (ptrdiff_t j = 0; j < m; j++) acc[j] += (r0[j] + r1[j]) + (r2[j] + r3[j]);  \
        } else {                                                                            \
            for (ptrdiff_t k = 0; k < r; k++)                                               \
                for (ptrdiff_t j = 0; j < m; j++) acc[j] += r0[k * m + j];                  \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES double fnn_mse_##SUF(const T *restrict p, const T *restrict t, T *restrict g,   \
                                ptrdiff_t n, T scale)                                       \
{                                                                                           \
    /* 8 independent partial sums: one double accumulator would be a serial   */         \
    /* dependency chain (no reassociation without fast-math), 4 cycles/element */         \
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                              \
    ptrdiff_t j = 0;                                                                        \
    for (; j + 8 <= n; j += 8)                                                              \
        for (int k = 0; k < 8; k++) {                                                       \
            T d = p[j + k] - t[j + k];                                                      \
            g[j + k] = scale * d;                                                           \
            part[k] += (double)d * d;                                                       \
        }                                                                                   \
    for (; j < n; j++) {                                                                    \
        T d = p[j] - t[j];                                                                  \
        g[j] = scale * d;                                                                   \
        part[0] += (double)d * d;                                                           \
    }                                                                                       \
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])); \
}

DEFINE_ACT_ROWS(float, f32, fnn_sigmoid_f32, fnn_tanh_f32)
DEFINE_DENSE(float, f32, fnn_sigmoid_f32, fnn_tanh_f32)
DEFINE_ACT_ROWS(double, f64, fnn_sigmoid_f64, fnn_tanh_f64)
DEFINE_DENSE(double, f64, fnn_sigmoid_f64, fnn_tanh_f64)

/* Element-wise losses on d = p - t (or on the margin m = t * p for the binary
 * ones, t in {-1, +1}): kind 0 L1, 1 Huber(param = delta), 2 epsilon-insensitive
 * (param = epsilon), 3 logistic log(1 + exp(-m)), 4 hinge max(0, 1 - m).  One
 * inlined function per kind returns the value and sets the gradient; the loop
 * (one per kind, the switch outside) writes scale * gradient to g and sums the
 * values in 8 double partial sums (one accumulator would be a serial dependency
 * chain without fast-math), so it vectorizes.  A binary target other than +-1
 * makes the sum NaN, and the caller then validates the targets (the fast path
 * needs no separate pass and no temporary). */
#define FNN_ELEM_LOOP(T, FN)                                                                \
    {                                                                                       \
        ptrdiff_t j = 0;                                                                    \
        for (; j + 8 <= n; j += 8)                                                          \
            for (int k = 0; k < 8; k++) {                                                   \
                T gr, v = FN(p[j + k], t[j + k], param, &gr);                               \
                g[j + k] = scale * gr;                                                      \
                part[k] += (double)v;                                                       \
            }                                                                               \
        for (; j < n; j++) {                                                                \
            T gr, v = FN(p[j], t[j], param, &gr);                                           \
            g[j] = scale * gr;                                                              \
            part[0] += (double)v;                                                           \
        }                                                                                   \
    }

#define DEFINE_ELEMLOSS(T, SUF, FABS)                                                       \
static inline T fnn_sign_##SUF(T x) { return (x > 0 ? (T)1 : (T)0) - (x < 0 ? (T)1 : (T)0); }      \
static inline T fnn_el_l1_##SUF(T p, T t, T param, T *gr)                                   \
{                                                                                           \
    (void)param;                                                                            \
    T d = p - t;                                                                            \
    *gr = fnn_sign_##SUF(d);                                                                \
    return FABS(d);                                                                         \
}                                                                                           \
static inline T fnn_el_huber_##SUF(T p, T t, T param, T *gr)                                \
{                                                                                           \
    T d = p - t, a = FABS(d);                                                               \
    *gr = d <= -param ? -param : (d >= param ? param : d);                                  \
    return a < param ? (T)0.5 * d * d : param * (a - (T)0.5 * param);                       \
}                                                                                           \
static inline T fnn_el_eps_##SUF(T p, T t, T param, T *gr)                                  \
{                                                                                           \
    T d = p - t, e = FABS(d) - param;                                                       \
    T on = e > 0 ? (T)1 : (T)0;         /* 0/1 factors: gcc if-converts these loops */     \
    *gr = fnn_sign_##SUF(d) * on;                                                           \
    return e * on;                                                                          \
}                                                                                           \
/* the value is NaN unless t is exactly +1 or -1 (the caller then validates) */            \
static inline T fnn_el_logistic_##SUF(T p, T t, T param, T *gr)                             \
{                                                                                           \
    (void)param;                                                                            \
    T m = t * p, am = FABS(m);                                                              \
    T e = fnn_expneg_##SUF(-am);                      /* in (0, 1]: never overflows */      \
    T inv = 1 / (1 + e), pos = m >= 0 ? (T)1 : (T)0;                                        \
    *gr = -t * inv * (pos * e + (1 - pos));           /* -t sigmoid(-m) */                  \
    T nanv = t * t == 1 ? (T)0 : (T)NAN;                                                    \
    return am * (1 - pos) + fnn_log1p01_##SUF(e) + nanv;   /* softplus(-m), stable */      \
}                                                                                           \
static inline T fnn_el_hinge_##SUF(T p, T t, T param, T *gr)                                \
{                                                                                           \
    (void)param;                                                                            \
    T h = 1 - t * p, on = h > 0 ? (T)1 : (T)0;                                              \
    *gr = -t * on;                                                                          \
    T nanv = t * t == 1 ? (T)0 : (T)NAN;                                                    \
    return h * on + nanv;                                                                   \
}                                                                                           \
FNN_CLONES double fnn_elem_loss_##SUF(int kind, const T *restrict p, const T *restrict t,  \
                                      T *restrict g, ptrdiff_t n, T scale, T param)         \
{                                                                                           \
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                              \
    switch (kind) {                                                                         \
    case FNN_LOSS_L1: FNN_ELEM_LOOP(T, fnn_el_l1_##SUF) break;                                        \
    case FNN_LOSS_HUBER: FNN_ELEM_LOOP(T, fnn_el_huber_##SUF) break;                                     \
    case FNN_LOSS_EPSILON_INSENSITIVE: FNN_ELEM_LOOP(T, fnn_el_eps_##SUF) break;                                       \
    case FNN_LOSS_LOGISTIC: FNN_ELEM_LOOP(T, fnn_el_logistic_##SUF) break;                                  \
    default: FNN_ELEM_LOOP(T, fnn_el_hinge_##SUF) break;                                    \
    }                                                                                       \
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])); \
}

DEFINE_ELEMLOSS(float, f32, fabsf)
DEFINE_ELEMLOSS(double, f64, fabs)

/* Weight penalties (regularizers): FNN_PENALTY_L1 = lam * sum|w| (subgradient
 * lam * sign(w), sign(0) = 0), FNN_PENALTY_L2 = 0.5 * lam * sum w^2 (gradient lam * w).
 * Adds the gradient into g and returns the penalty, in one pass. */
#define DEFINE_PENALTY(T, SUF, FABS)                                                        \
FNN_CLONES double fnn_penalty_##SUF(int kind, const T *restrict w, T *restrict g,           \
                                    ptrdiff_t n, T lam)                                     \
{                                                                                           \
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                              \
    if (kind == FNN_PENALTY_L1) {                                                           \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            T x = w[j];                                                                     \
            g[j] += lam * (T)((x > 0) - (x < 0));                                           \
            part[j & 7] += (double)FABS(x);                                                 \
        }                                                                                   \
    } else {                                                                                \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            T x = w[j];                                                                     \
            g[j] += lam * x;                                                                \
            part[j & 7] += (double)x * x;                                                   \
        }                                                                                   \
    }                                                                                       \
    double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])); \
    return kind == FNN_PENALTY_L1 ? (double)lam * s : 0.5 * (double)lam * s;                \
}

DEFINE_PENALTY(float, f32, fabsf)
DEFINE_PENALTY(double, f64, fabs)

/* Inverted dropout with a counter-based mask: element i is kept when the top
 * 32 bits of splitmix64(key + i * golden) are >= threshold (threshold = p * 2^32).
 * The mask depends only on (key, i), so it is the same for any thread split, and
 * the backward pass regenerates exactly the forward's mask from the same key:
 * nothing is stored.  y = keep ? x * scale : 0 (y may be x). */
static inline uint32_t fnn_mask_bits(uint64_t key, uint64_t i)
{
    uint64_t z = key + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

#define DEFINE_DROPOUT(T, SUF)                                                              \
FNN_CLONES void fnn_dropout_##SUF(const T *x, T *y, ptrdiff_t n, ptrdiff_t offset,          \
                                  uint64_t key, uint32_t threshold, T scale)                \
{                                                                                           \
    for (ptrdiff_t j = 0; j < n; j++) {                                                     \
        T v = x[j];                                                                         \
        y[j] = fnn_mask_bits(key, (uint64_t)(offset + j)) >= threshold ? v * scale : 0;     \
    }                                                                                       \
}

DEFINE_DROPOUT(float, f32)
DEFINE_DROPOUT(double, f64)
