/* fnn_optim.c -- fused in-place optimizer updates (torch.optim update rules).
 *
 * One pass per span: each of param, grad and the state tensors is read once and
 * each written tensor is written once.  Arithmetic is done in the tensor's own
 * type (float for float32, as torch's fused CPU kernels do for float), with the
 * step scalars precomputed in double by the caller.  The loops are written so
 * that gcc -O3 vectorizes them (restrict pointers, no calls but sqrt, which
 * -fno-math-errno turns into a vector instruction).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "fastnn.h"

#include "fnn_simd.h"

#define DEFINE_UPDATES(T, SUF, SQRT, MAX)                                                   \
FNN_CLONES void fnn_sgd_##SUF(void *param, const void *grad, void *s0, void *s1, void *s2,             \
                   ptrdiff_t n, const fnn_optim_args *a)                                    \
{                                                                                           \
    T *restrict p = (T *)param;                                                             \
    const T *restrict g = (const T *)grad;                                                  \
    T *restrict buf = (T *)s0;                                                              \
    const T lr = (T)a->lr, wd = (T)a->weight_decay, mom = (T)a->momentum;                   \
    const T damp = (T)(1.0 - a->dampening);                                                 \
    (void)s1; (void)s2;                                                                     \
    if (buf == NULL) {                                                                      \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T d = g[i] + wd * p[i];                                                         \
            p[i] = p[i] - lr * d;                                                           \
        }                                                                                   \
    } else if (a->first_step) {                                                             \
        if (a->nesterov) {                                                                  \
            for (ptrdiff_t i = 0; i < n; i++) {                                             \
                T d = g[i] + wd * p[i];                                                     \
                buf[i] = d;                                                                 \
                p[i] = p[i] - lr * (d + mom * d);                                           \
            }                                                                               \
        } else {                                                                            \
            for (ptrdiff_t i = 0; i < n; i++) {                                             \
                T d = g[i] + wd * p[i];                                                     \
                buf[i] = d;                                                                 \
                p[i] = p[i] - lr * d;                                                       \
            }                                                                               \
        }                                                                                   \
    } else if (a->nesterov) {                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T d = g[i] + wd * p[i];                                                         \
            T b = mom * buf[i] + damp * d;                                                  \
            buf[i] = b;                                                                     \
            p[i] = p[i] - lr * (d + mom * b);                                               \
        }                                                                                   \
    } else {                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T d = g[i] + wd * p[i];                                                         \
            T b = mom * buf[i] + damp * d;                                                  \
            buf[i] = b;                                                                     \
            p[i] = p[i] - lr * b;                                                           \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_adam_##SUF(void *param, const void *grad, void *s0, void *s1, void *s2,            \
                    ptrdiff_t n, const fnn_optim_args *a)                                   \
{                                                                                           \
    T *restrict p = (T *)param;                                                             \
    const T *restrict g = (const T *)grad;                                                  \
    T *restrict m = (T *)s0;                                                                \
    T *restrict v = (T *)s1;                                                                \
    T *restrict vmax = (T *)s2;                                                             \
    const T w1 = (T)(1.0 - a->beta1), b2 = (T)a->beta2, w2 = (T)(1.0 - a->beta2);           \
    const T eps = (T)a->eps, step_size = (T)a->step_size;                                   \
    const T inv_bc2 = (T)(1.0 / a->bc2_sqrt);                                              \
    /* L2 (Adam) folds wd into the gradient; decoupled (AdamW) shrinks the parameter. */    \
    const T wd_l2 = a->decoupled ? (T)0 : (T)a->weight_decay;                               \
    const T shrink = a->decoupled ? (T)(1.0 - a->lr * a->weight_decay) : (T)1;              \
    if (vmax == NULL) {                                                                     \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T pi = p[i];                                                                    \
            T gi = g[i] + wd_l2 * pi;                                                       \
            pi = pi * shrink;                                                               \
            T mi = m[i] + w1 * (gi - m[i]);                                                 \
            T vi = b2 * v[i] + w2 * gi * gi;                                                \
            m[i] = mi;                                                                      \
            v[i] = vi;                                                                      \
            p[i] = pi - step_size * mi / (SQRT(vi) * inv_bc2 + eps);                        \
        }                                                                                   \
    } else {                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T pi = p[i];                                                                    \
            T gi = g[i] + wd_l2 * pi;                                                       \
            pi = pi * shrink;                                                               \
            T mi = m[i] + w1 * (gi - m[i]);                                                 \
            T vi = b2 * v[i] + w2 * gi * gi;                                                \
            T vm = MAX(vmax[i], vi);                                                        \
            m[i] = mi;                                                                      \
            v[i] = vi;                                                                      \
            vmax[i] = vm;                                                                   \
            p[i] = pi - step_size * mi / (SQRT(vm) * inv_bc2 + eps);                        \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_adagrad_##SUF(void *param, const void *grad, void *s0, void *s1, void *s2,         \
                       ptrdiff_t n, const fnn_optim_args *a)                                \
{                                                                                           \
    T *restrict p = (T *)param;                                                             \
    const T *restrict g = (const T *)grad;                                                  \
    T *restrict s = (T *)s0;                                                                \
    const T wd = (T)a->weight_decay, clr = (T)a->clr, eps = (T)a->eps;                      \
    (void)s1; (void)s2;                                                                     \
    for (ptrdiff_t i = 0; i < n; i++) {                                                     \
        T gi = g[i] + wd * p[i];                                                            \
        T si = s[i] + gi * gi;                                                              \
        s[i] = si;                                                                          \
        p[i] = p[i] - clr * gi / (SQRT(si) + eps);                                          \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_rmsprop_##SUF(void *param, const void *grad, void *s0, void *s1, void *s2,  \
                       ptrdiff_t n, const fnn_optim_args *a)                                \
{                                                                                           \
    T *restrict p = (T *)param;                                                             \
    const T *restrict g = (const T *)grad;                                                  \
    T *restrict sq = (T *)s0;                                                               \
    T *restrict buf = (T *)s1;                                                              \
    T *restrict gavg = (T *)s2;                                                             \
    const T wd = (T)a->weight_decay, alpha = (T)a->alpha, w = (T)(1.0 - a->alpha);          \
    const T eps = (T)a->eps, lr = (T)a->lr, mom = (T)a->momentum;                           \
    /* four loops, the variant chosen outside, so that each one vectorizes */               \
    if (gavg == NULL && buf == NULL) {                                                      \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T gi = g[i] + wd * p[i];                                                        \
            T si = alpha * sq[i] + w * gi * gi;                                             \
            sq[i] = si;                                                                     \
            p[i] = p[i] - lr * gi / (SQRT(si) + eps);                                       \
        }                                                                                   \
    } else if (gavg == NULL) {                                                              \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T gi = g[i] + wd * p[i];                                                        \
            T si = alpha * sq[i] + w * gi * gi;                                             \
            sq[i] = si;                                                                     \
            T b = mom * buf[i] + gi / (SQRT(si) + eps);                                     \
            buf[i] = b;                                                                     \
            p[i] = p[i] - lr * b;                                                           \
        }                                                                                   \
    } else if (buf == NULL) {                                                               \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T gi = g[i] + wd * p[i];                                                        \
            T si = alpha * sq[i] + w * gi * gi;                                             \
            T ga = gavg[i] + w * (gi - gavg[i]);                                            \
            sq[i] = si;                                                                     \
            gavg[i] = ga;                                                                   \
            p[i] = p[i] - lr * gi / (SQRT(si - ga * ga) + eps);                             \
        }                                                                                   \
    } else {                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                                 \
            T gi = g[i] + wd * p[i];                                                        \
            T si = alpha * sq[i] + w * gi * gi;                                             \
            T ga = gavg[i] + w * (gi - gavg[i]);                                            \
            sq[i] = si;                                                                     \
            gavg[i] = ga;                                                                   \
            T b = mom * buf[i] + gi / (SQRT(si - ga * ga) + eps);                           \
            buf[i] = b;                                                                     \
            p[i] = p[i] - lr * b;                                                           \
        }                                                                                   \
    }                                                                                       \
}

static inline float fnn_maxf(float x, float y) { return x > y ? x : y; }
static inline double fnn_maxd(double x, double y) { return x > y ? x : y; }

DEFINE_UPDATES(float, f32, sqrtf, fnn_maxf)
DEFINE_UPDATES(double, f64, sqrt, fnn_maxd)

/* ---- multi-tensor driver --------------------------------------------------- */

#include "fnn_omp.h"

#define FNN_SLOTS 5

/* Apply fn to the global element range [lo, hi) of the concatenated tensors. */
static void fnn_span(fnn_update_fn fn, char *const *ptrs, const ptrdiff_t *offs, ptrdiff_t n_tensors,
                     ptrdiff_t itemsize, ptrdiff_t lo, ptrdiff_t hi, const fnn_optim_args *a)
{
    for (ptrdiff_t t = 0; t < n_tensors; t++) {
        ptrdiff_t s = offs[t], e = offs[t + 1];
        if (e <= lo || s >= hi)
            continue;
        if (s < lo) s = lo;
        if (e > hi) e = hi;
        char *p[FNN_SLOTS];
        for (int k = 0; k < FNN_SLOTS; k++) {
            p[k] = ptrs[t * FNN_SLOTS + k];
            if (p[k] != NULL)
                p[k] += (s - offs[t]) * itemsize;
        }
        fn(p[0], p[1], p[2], p[3], p[4], e - s, a);
    }
}

/* 1 when no element has an all-ones exponent: an integer OR-reduction, which
 * vectorizes (a float sum would be a serial dependency chain without fast-math). */
FNN_CLONES static int fnn_finite_f32(const uint32_t *restrict x, ptrdiff_t n)
{
    uint32_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= (x[i] & 0x7f800000u) == 0x7f800000u;
    return bad == 0;
}

FNN_CLONES static int fnn_finite_f64(const uint64_t *restrict x, ptrdiff_t n)
{
    uint64_t bad = 0;
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= (x[i] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
    return bad == 0;
}

/* Finiteness of the range [lo, hi) of the concatenation of arrays (slot `slot`
 * of each FNN_SLOTS-wide row of ptrs, or a plain list when stride == 1). */
static int fnn_span_finite(char *const *ptrs, ptrdiff_t stride, ptrdiff_t slot, const ptrdiff_t *offs,
                           ptrdiff_t n_arrays, ptrdiff_t itemsize, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t t = 0; t < n_arrays; t++) {
        ptrdiff_t s = offs[t], e = offs[t + 1];
        if (e <= lo || s >= hi)
            continue;
        if (s < lo) s = lo;
        if (e > hi) e = hi;
        const char *base = ptrs[t * stride + slot] + (s - offs[t]) * itemsize;
        int ok = itemsize == 8 ? fnn_finite_f64((const uint64_t *)base, e - s)
                               : fnn_finite_f32((const uint32_t *)base, e - s);
        if (!ok)
            return 0;
    }
    return 1;
}

int fnn_multi_update(fnn_update_fn fn, char *const *ptrs, const ptrdiff_t *offs, ptrdiff_t n_tensors,
                     ptrdiff_t itemsize, const fnn_optim_args *a, int n_threads, int check_finite)
{
    const ptrdiff_t total = offs[n_tensors];
    int any_bad = 0;
    if (n_threads <= 1) {
        if (check_finite && !fnn_span_finite(ptrs, FNN_SLOTS, 1, offs, n_tensors, itemsize, 0, total))
            return 0;
        fnn_span(fn, ptrs, offs, n_tensors, itemsize, 0, total, a);
        return 1;
    }
    /* any_bad is shared (no reduction clause: a reduction would give each thread
       a private copy, and the flags would not be seen across the barrier). */
#pragma omp parallel num_threads(n_threads) shared(any_bad)
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const ptrdiff_t lo = total * tid / nt, hi = total * (tid + 1) / nt;
        int bad = 0;
        if (check_finite) {
            if (!fnn_span_finite(ptrs, FNN_SLOTS, 1, offs, n_tensors, itemsize, lo, hi)) {
#pragma omp atomic write
                any_bad = 1;
            }
            /* every thread must know whether any span was bad before anyone writes */
#pragma omp barrier
#pragma omp atomic read
            bad = any_bad;
        }
        if (!bad)
            fnn_span(fn, ptrs, offs, n_tensors, itemsize, lo, hi, a);
    }
    return !any_bad;
}

int fnn_all_finite(char *const *ptrs, const ptrdiff_t *sizes, ptrdiff_t n_arrays, ptrdiff_t itemsize,
                   int n_threads)
{
    ptrdiff_t offs_small[17];
    ptrdiff_t *offs = offs_small;
    int ok = 1;
    if (n_arrays > 16) {
        offs = (ptrdiff_t *)malloc((size_t)(n_arrays + 1) * sizeof(ptrdiff_t));
        if (offs == NULL)
            return -1;
    }
    offs[0] = 0;
    for (ptrdiff_t t = 0; t < n_arrays; t++)
        offs[t + 1] = offs[t] + sizes[t];
    const ptrdiff_t total = offs[n_arrays];
    if (n_threads <= 1) {
        ok = fnn_span_finite(ptrs, 1, 0, offs, n_arrays, itemsize, 0, total);
    } else {
#pragma omp parallel num_threads(n_threads) reduction(&:ok)
        {
            const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
            ok = fnn_span_finite(ptrs, 1, 0, offs, n_arrays, itemsize, total * tid / nt,
                                 total * (tid + 1) / nt);
        }
    }
    if (offs != offs_small)
        free(offs);
    return ok;
}

const char *fnn_simd_path(void)
{
#if FNN_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4 (AVX-512 clones of the optimizer, activation and loss loops)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3 (AVX2/FMA clones of the optimizer, activation and loss loops)";
    return "x86-64 baseline (SSE2)";
#elif defined(__x86_64__)
    return "x86-64 baseline (SSE2)";
#elif defined(__aarch64__)
    return "aarch64 baseline (NEON)";
#else
    return "generic (auto-vectorized)";
#endif
}
