/* fnn_norm.c -- the inner loops of every normalization layer, compiled as
 * x86-64-v4 / v3 / baseline clones (fnn_simd.h).  Called by
 * fastnn/_kernels/_norm.pyx, one call per block of work of one thread.
 *
 * The input is always viewed as (rows, C, S): rows of C channels of S
 * contiguous elements (S = 1 for (N, C) input).  Two families:
 *
 *   "b" (batch): statistics per channel over all rows and S (BatchNorm, and
 *       InstanceNorm in eval mode with running statistics).  A thread sums its
 *       block of rows into its own per-channel double accumulators
 *       (fnn_norm_bsums / fnn_norm_bgsums), the driver adds them up, then
 *       fnn_norm_bapply / fnn_norm_bdx write y or dx with per-channel
 *       coefficients.
 *   "set": statistics over one contiguous set of C*S elements (GroupNorm per
 *       (n, group), InstanceNorm per (n, c), LayerNorm per row with S = 1 and
 *       C = the normalized size), with a per-channel affine inside the set.
 *       fnn_norm_set_fwd / fnn_norm_set_bwd do one whole set (statistics and
 *       output in one call, so the set is still in cache for the second pass).
 *
 * Sums are taken of d = x - shift (shift: a sample of the same set) in double,
 * so var = E[d^2] - E[d]^2 does not cancel catastrophically when |mean| >> std.
 * Contiguous reductions are explicit SIMD lanes accumulated in double (no
 * reassociation without fast-math, so gcc would not vectorize them).
 * Backward:  dx = rstd * (gamma*g - mean(gamma*g) - xhat * mean(gamma*g*xhat))
 * written as dx = k1*g + k2*(x - mean) + k3 with coefficients computed once.
 * The loops never allocate and never raise. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include "fastnn.h"
#include "fnn_simd.h"

/* Contiguous reductions in explicit SIMD (GCC/clang vector extensions; each
 * target_clones level compiles them for its own vector width).  gcc does not
 * vectorize a floating-point reduction without -ffast-math, so the lanes are
 * written out: VL elements per step, converted to double lanes and accumulated
 * there (products are formed in T, as in the scalar tail).  A compiler without
 * __builtin_convertvector gets the scalar loops (same results, slower). */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 9)
#define DEFINE_SUMS(T, SUF, VL)                                                             \
typedef T fnn_vt_##SUF __attribute__((vector_size(VL * sizeof(T))));                        \
typedef double fnn_vd_##SUF __attribute__((vector_size(VL * sizeof(double))));             \
static inline double fnn_hsum_##SUF(const fnn_vd_##SUF *v)                                 \
{                                                                                           \
    double s = 0;                                                                           \
    for (int k = 0; k < VL; k++) s += (*v)[k];                                              \
    return s;                                                                               \
}                                                                                           \
/* *s += sum(x - sh), *q += sum((x - sh)^2) */                                              \
static inline void fnn_sum2_##SUF(const T *x, ptrdiff_t n, T sh, double *s, double *q)      \
{                                                                                           \
    fnn_vd_##SUF vs = {0}, vq = {0};                                                        \
    ptrdiff_t j = 0;                                                                        \
    for (; j + VL <= n; j += VL) {                                                          \
        fnn_vt_##SUF v;                                                                     \
        memcpy(&v, x + j, sizeof v);                                                        \
        fnn_vd_##SUF d = __builtin_convertvector(v - sh, fnn_vd_##SUF);                     \
        vs += d;                                                                            \
        vq += d * d;                                                                        \
    }                                                                                       \
    double ts = fnn_hsum_##SUF(&vs), tq = fnn_hsum_##SUF(&vq);                              \
    for (; j < n; j++) {                                                                    \
        double d = (double)(x[j] - sh);                                                     \
        ts += d;                                                                            \
        tq += d * d;                                                                        \
    }                                                                                       \
    *s += ts;                                                                               \
    *q += tq;                                                                               \
}                                                                                           \
/* *s1 += sum(w * g), *s2 += sum(w * g * (x - m)); w NULL: 1 */                              \
static inline void fnn_gsum2_##SUF(const T *w, const T *g, const T *x, ptrdiff_t n, T m,   \
                                   double *s1, double *s2)                                  \
{                                                                                           \
    fnn_vd_##SUF v1 = {0}, v2 = {0};                                                        \
    ptrdiff_t j = 0;                                                                        \
    if (w == NULL) {                                                                        \
        for (; j + VL <= n; j += VL) {                                                      \
            fnn_vt_##SUF gv, xv;                                                            \
            memcpy(&gv, g + j, sizeof gv);                                                  \
            memcpy(&xv, x + j, sizeof xv);                                                  \
            v1 += __builtin_convertvector(gv, fnn_vd_##SUF);                                \
            v2 += __builtin_convertvector(gv * (xv - m), fnn_vd_##SUF);                     \
        }                                                                                   \
    } else {                                                                                \
        for (; j + VL <= n; j += VL) {                                                      \
            fnn_vt_##SUF gv, xv, wv;                                                        \
            memcpy(&gv, g + j, sizeof gv);                                                  \
            memcpy(&xv, x + j, sizeof xv);                                                  \
            memcpy(&wv, w + j, sizeof wv);                                                  \
            gv = gv * wv;                                                                   \
            v1 += __builtin_convertvector(gv, fnn_vd_##SUF);                                \
            v2 += __builtin_convertvector(gv * (xv - m), fnn_vd_##SUF);                     \
        }                                                                                   \
    }                                                                                       \
    double t1 = fnn_hsum_##SUF(&v1), t2 = fnn_hsum_##SUF(&v2);                              \
    for (; j < n; j++) {                                                                    \
        T gv = w != NULL ? w[j] * g[j] : g[j];                                              \
        t1 += (double)gv;                                                                   \
        t2 += (double)(gv * (x[j] - m));                                                    \
    }                                                                                       \
    *s1 += t1;                                                                              \
    *s2 += t2;                                                                              \
}

#else
#define DEFINE_SUMS(T, SUF, VL)                                                             \
static inline void fnn_sum2_##SUF(const T *x, ptrdiff_t n, T sh, double *s, double *q)      \
{                                                                                           \
    double ts = 0, tq = 0;                                                                  \
    for (ptrdiff_t j = 0; j < n; j++) {                                                     \
        double d = (double)(x[j] - sh);                                                     \
        ts += d;                                                                            \
        tq += d * d;                                                                        \
    }                                                                                       \
    *s += ts;                                                                               \
    *q += tq;                                                                               \
}                                                                                           \
static inline void fnn_gsum2_##SUF(const T *w, const T *g, const T *x, ptrdiff_t n, T m,   \
                                   double *s1, double *s2)                                  \
{                                                                                           \
    double t1 = 0, t2 = 0;                                                                  \
    for (ptrdiff_t j = 0; j < n; j++) {                                                     \
        T gv = w != NULL ? w[j] * g[j] : g[j];                                              \
        t1 += (double)gv;                                                                   \
        t2 += (double)(gv * (x[j] - m));                                                    \
    }                                                                                       \
    *s1 += t1;                                                                              \
    *s2 += t2;                                                                              \
}
#endif

DEFINE_SUMS(float, f32, 8)
DEFINE_SUMS(double, f64, 4)

#define DEFINE_NORM(T, SUF)                                                                 \
/* acc_s[c] += sum(x - shift[c]), acc_q[c] += sum((x - shift[c])^2) over rows and S */      \
FNN_CLONES void fnn_norm_bsums_##SUF(const T *x, ptrdiff_t rows, ptrdiff_t C, ptrdiff_t S,   \
                                     const T *shift, double *acc_s, double *acc_q)          \
{                                                                                           \
    if (S == 1) {                                                                           \
        /* (N, C): four rows summed in T (of x - shift, small), then into double */         \
        ptrdiff_t r = 0;                                                                    \
        for (; r + 4 <= rows; r += 4) {                                                     \
            const T *x0 = x + r * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;              \
            for (ptrdiff_t c = 0; c < C; c++) {                                             \
                T sh = shift[c], d0 = x0[c] - sh, d1 = x1[c] - sh, d2 = x2[c] - sh, d3 = x3[c] - sh; \
                acc_s[c] += (double)((d0 + d1) + (d2 + d3));                                \
                acc_q[c] += (double)((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3));            \
            }                                                                               \
        }                                                                                   \
        for (; r < rows; r++) {                                                             \
            const T *xr = x + r * C;                                                        \
            for (ptrdiff_t c = 0; c < C; c++) {                                             \
                double d = (double)(xr[c] - shift[c]);                                      \
                acc_s[c] += d;                                                              \
                acc_q[c] += d * d;                                                          \
            }                                                                               \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    for (ptrdiff_t r = 0; r < rows; r++)                                                    \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            fnn_sum2_##SUF(x + (r * C + c) * S, S, shift[c], acc_s + c, acc_q + c);         \
        }                                                                                   \
}                                                                                           \
                                                                                            \
/* y = (x - mu[c]) * a[c] + b[c] */                                                         \
FNN_CLONES void fnn_norm_bapply_##SUF(const T *x, T *y, ptrdiff_t rows, ptrdiff_t C,        \
                                      ptrdiff_t S, const T *mu, const T *a, const T *b)     \
{                                                                                           \
    if (S == 1) {                                                                           \
        for (ptrdiff_t r = 0; r < rows; r++) {                                              \
            const T *xr = x + r * C;                                                        \
            T *yr = y + r * C;                                                              \
            for (ptrdiff_t c = 0; c < C; c++) yr[c] = (xr[c] - mu[c]) * a[c] + b[c];        \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    for (ptrdiff_t r = 0; r < rows; r++)                                                    \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            const T *xs = x + (r * C + c) * S;                                              \
            T *ys = y + (r * C + c) * S;                                                    \
            T m = mu[c], ac = a[c], bc = b[c];                                              \
            for (ptrdiff_t s = 0; s < S; s++) ys[s] = (xs[s] - m) * ac + bc;                \
        }                                                                                   \
}                                                                                           \
                                                                                            \
/* acc_g[c] += sum(g), acc_gx[c] += sum(g * (x - mu[c])) */                                 \
FNN_CLONES void fnn_norm_bgsums_##SUF(const T *g, const T *x, ptrdiff_t rows, ptrdiff_t C,  \
                                      ptrdiff_t S, const T *mu, double *acc_g,              \
                                      double *acc_gx)                                       \
{                                                                                           \
    if (S == 1) {                                                                           \
        /* (N, C): four rows summed in T, then into double */                               \
        ptrdiff_t r = 0;                                                                    \
        for (; r + 4 <= rows; r += 4) {                                                     \
            const T *x0 = x + r * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;              \
            const T *g0 = g + r * C, *g1 = g0 + C, *g2 = g1 + C, *g3 = g2 + C;              \
            for (ptrdiff_t c = 0; c < C; c++) {                                             \
                T m = mu[c];                                                                \
                acc_g[c] += (double)((g0[c] + g1[c]) + (g2[c] + g3[c]));                    \
                acc_gx[c] += (double)((g0[c] * (x0[c] - m) + g1[c] * (x1[c] - m))           \
                                      + (g2[c] * (x2[c] - m) + g3[c] * (x3[c] - m)));       \
            }                                                                               \
        }                                                                                   \
        for (; r < rows; r++) {                                                             \
            const T *xr = x + r * C, *gr = g + r * C;                                       \
            for (ptrdiff_t c = 0; c < C; c++) {                                             \
                T gv = gr[c];                                                               \
                acc_g[c] += (double)gv;                                                     \
                acc_gx[c] += (double)(gv * (xr[c] - mu[c]));                                \
            }                                                                               \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    for (ptrdiff_t r = 0; r < rows; r++)                                                    \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            fnn_gsum2_##SUF(NULL, g + (r * C + c) * S, x + (r * C + c) * S, S, mu[c],      \
                            acc_g + c, acc_gx + c);                                         \
        }                                                                                   \
}                                                                                           \
                                                                                            \
/* dx = k1[c] * g + k2[c] * (x - mu[c]) + k3[c]; x == NULL: dx = k1[c] * g */               \
FNN_CLONES void fnn_norm_bdx_##SUF(const T *g, const T *x, T *dx, ptrdiff_t rows,           \
                                   ptrdiff_t C, ptrdiff_t S, const T *mu, const T *k1,      \
                                   const T *k2, const T *k3)                                \
{                                                                                           \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                  \
        if (S == 1) {                                                                       \
            const T *gr = g + r * C;                                                        \
            T *dr = dx + r * C;                                                             \
            if (x == NULL) {                                                                \
                for (ptrdiff_t c = 0; c < C; c++) dr[c] = k1[c] * gr[c];                    \
            } else {                                                                        \
                const T *xr = x + r * C;                                                    \
                for (ptrdiff_t c = 0; c < C; c++)                                           \
                    dr[c] = k1[c] * gr[c] + k2[c] * (xr[c] - mu[c]) + k3[c];                \
            }                                                                               \
            continue;                                                                       \
        }                                                                                   \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            const T *gs = g + (r * C + c) * S;                                              \
            T *ds = dx + (r * C + c) * S;                                                   \
            T a = k1[c];                                                                    \
            if (x == NULL) {                                                                \
                for (ptrdiff_t s = 0; s < S; s++) ds[s] = a * gs[s];                        \
            } else {                                                                        \
                const T *xs = x + (r * C + c) * S;                                          \
                T b = k2[c], m = mu[c], k = k3[c];                                          \
                for (ptrdiff_t s = 0; s < S; s++) ds[s] = a * gs[s] + b * (xs[s] - m) + k;  \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* One set of C*S contiguous elements: mean and rstd into mean_out, rstd_out and, when y    */ \
/* is not NULL, y = (x - mean) * rstd * gamma[c] + beta[c] (NULL gamma: 1, NULL beta: 0) */ \
FNN_CLONES void fnn_norm_set_fwd_##SUF(const T *x, T *y, ptrdiff_t C, ptrdiff_t S,          \
                                       double eps, const T *gamma, const T *beta,           \
                                       double *mean_out, double *rstd_out)                  \
{                                                                                           \
    ptrdiff_t L = C * S, j;                                                                 \
    double ss = 0, sq = 0;                                                                  \
    fnn_sum2_##SUF(x, L, x[0], &ss, &sq);                                                   \
    double sh = (double)x[0], dm = ss / (double)L;                                          \
    double var = sq / (double)L - dm * dm;                                                  \
    if (var < 0) var = 0;                                                                   \
    double mean = sh + dm, rstd = 1.0 / sqrt(var + eps);                                    \
    *mean_out = mean;                                                                       \
    *rstd_out = rstd;                                                                       \
    if (y == NULL)                                                                          \
        return;                                                                             \
    /* x - m is exact-ish (m: the mean rounded to T); d, the rounding residual, */       \
    /* keeps float32 accurate when |mean| >> std */                                          \
    T m = (T)mean, d = (T)(mean - (double)m), rs = (T)rstd;                                 \
    if (gamma == NULL && beta == NULL) {                                                    \
        for (j = 0; j < L; j++) y[j] = ((x[j] - m) - d) * rs;                               \
    } else if (S == 1) {                                                                    \
        if (gamma == NULL)                                                                  \
            for (ptrdiff_t c = 0; c < C; c++) y[c] = ((x[c] - m) - d) * rs + beta[c];       \
        else if (beta == NULL)                                                              \
            for (ptrdiff_t c = 0; c < C; c++) y[c] = ((x[c] - m) - d) * (rs * gamma[c]);    \
        else                                                                                \
            for (ptrdiff_t c = 0; c < C; c++)                                               \
                y[c] = ((x[c] - m) - d) * (rs * gamma[c]) + beta[c];                        \
    } else {                                                                                \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            double ad = rstd * (gamma != NULL ? (double)gamma[c] : 1.0);                    \
            T a = (T)ad, b = (T)((beta != NULL ? (double)beta[c] : 0.0) - (mean - (double)m) * ad); \
            const T *xs = x + c * S;                                                        \
            T *ys = y + c * S;                                                              \
            for (ptrdiff_t s = 0; s < S; s++) ys[s] = (xs[s] - m) * a + b;                  \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* Backward of one set.  acc_g[c] += sum(g), acc_gx[c] += sum(g * xhat) (either NULL:   */ \
/* skipped); dx (NULL: skipped) = rstd*(gamma*g - mean(gamma*g) - xhat*mean(gamma*g*xhat)) */ \
FNN_CLONES void fnn_norm_set_bwd_##SUF(const T *x, const T *g, T *dx, ptrdiff_t C,          \
                                       ptrdiff_t S, double mean, double rstd,               \
                                       const T *gamma, double *acc_g, double *acc_gx)       \
{                                                                                           \
    ptrdiff_t L = C * S;                                                                    \
    T m = (T)mean;                                                                          \
    double delta = mean - (double)m;  /* x - mean = (x - m) - delta */                      \
    double m1, m2;  /* sum(gamma * g), sum(gamma * g * (x - m)) */                          \
    m1 = 0;                                                                                 \
    m2 = 0;                                                                                 \
    if (S == 1) {                                                                           \
        /* a row of LayerNorm: the reductions, then ONE pass (over data still in L1)     */ \
        /* that accumulates dgamma/dbeta and writes dx                                   */ \
        fnn_gsum2_##SUF(gamma, g, x, C, m, &m1, &m2);                                       \
        m2 -= delta * m1;                                                                   \
        double k2d = -rstd * rstd * rstd * m2 / (double)L;                                  \
        T k2 = (T)k2d, k3 = (T)(-rstd * m1 / (double)L - k2d * delta);                      \
        T rs = (T)rstd, d = (T)delta;                                                       \
        if (dx == NULL) {                                                                   \
            if (acc_g != NULL)                                                              \
                for (ptrdiff_t c = 0; c < C; c++) {                                         \
                    T gv = g[c];                                                            \
                    acc_g[c] += (double)gv;                                                 \
                    acc_gx[c] += (double)(gv * (((x[c] - m) - d) * rs));                    \
                }                                                                           \
        } else if (acc_g != NULL && gamma != NULL) {                                        \
            for (ptrdiff_t c = 0; c < C; c++) {                                             \
                T gv = g[c], xm = x[c] - m;                                                 \
                acc_g[c] += (double)gv;                                                     \
                acc_gx[c] += (double)(gv * ((xm - d) * rs));                                \
                dx[c] = (rs * gamma[c]) * gv + k2 * xm + k3;                                \
            }                                                                               \
        } else if (acc_g != NULL) {                                                         \
            for (ptrdiff_t c = 0; c < C; c++) {                                             \
                T gv = g[c], xm = x[c] - m;                                                 \
                acc_g[c] += (double)gv;                                                     \
                acc_gx[c] += (double)(gv * ((xm - d) * rs));                                \
                dx[c] = rs * gv + k2 * xm + k3;                                             \
            }                                                                               \
        } else if (gamma == NULL) {                                                         \
            for (ptrdiff_t c = 0; c < C; c++) dx[c] = rs * g[c] + k2 * (x[c] - m) + k3;     \
        } else {                                                                            \
            for (ptrdiff_t c = 0; c < C; c++)                                               \
                dx[c] = (rs * gamma[c]) * g[c] + k2 * (x[c] - m) + k3;                      \
        }                                                                                   \
        return;                                                                             \
    }                                                                                       \
    {                                                                                       \
        for (ptrdiff_t c = 0; c < C; c++) {                                                 \
            double sg = 0, sx = 0, w = gamma != NULL ? (double)gamma[c] : 1.0;              \
            fnn_gsum2_##SUF(NULL, g + c * S, x + c * S, S, m, &sg, &sx);                    \
            m1 += w * sg;                                                                   \
            m2 += w * sx;                                                                   \
            if (acc_g != NULL) {                                                            \
                acc_g[c] += sg;                                                             \
                acc_gx[c] += (sx - delta * sg) * rstd;                                      \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    if (dx == NULL)                                                                         \
        return;                                                                             \
    m2 -= delta * m1;                                                                       \
    double k2d = -rstd * rstd * rstd * m2 / (double)L;                                      \
    T k2 = (T)k2d, k3 = (T)(-rstd * m1 / (double)L - k2d * delta);                          \
    T rs = (T)rstd;                                                                         \
    for (ptrdiff_t c = 0; c < C; c++) {                                                     \
        const T *xs = x + c * S, *gs = g + c * S;                                           \
        T *ds = dx + c * S;                                                                 \
        T a = gamma != NULL ? rs * gamma[c] : rs;                                           \
        for (ptrdiff_t s = 0; s < S; s++) ds[s] = a * gs[s] + k2 * (xs[s] - m) + k3;        \
    }                                                                                       \
}

DEFINE_NORM(float, f32)
DEFINE_NORM(double, f64)
