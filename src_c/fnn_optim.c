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
#include "fastnn.h"

/* One portable binary, several x86-64 levels: gcc emits a clone of each loop for
 * x86-64-v4 (AVX-512), x86-64-v3 (AVX2/FMA) and the baseline, and the dynamic
 * loader picks one for the running CPU (ifunc).  FASTNN_NO_CLONES=1 at build time,
 * or a compiler without the attribute, gives the baseline only. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12) \
    && defined(__linux__) && !defined(FNN_NO_CLONES)
#define FNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FNN_HAVE_CLONES 1
#else
#define FNN_CLONES
#define FNN_HAVE_CLONES 0
#endif

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
FNN_CLONES void fnn_rmsprop_##SUF(void *param, const void *grad, void *s0, void *s1, void *s2,         \
                       ptrdiff_t n, const fnn_optim_args *a)                                \
{                                                                                           \
    T *restrict p = (T *)param;                                                             \
    const T *restrict g = (const T *)grad;                                                  \
    T *restrict sq = (T *)s0;                                                               \
    T *restrict buf = (T *)s1;                                                              \
    T *restrict gavg = (T *)s2;                                                             \
    const T wd = (T)a->weight_decay, alpha = (T)a->alpha, w = (T)(1.0 - a->alpha);          \
    const T eps = (T)a->eps, lr = (T)a->lr, mom = (T)a->momentum;                           \
    for (ptrdiff_t i = 0; i < n; i++) {                                                     \
        T gi = g[i] + wd * p[i];                                                            \
        T si = alpha * sq[i] + w * gi * gi;                                                 \
        sq[i] = si;                                                                         \
        T avg;                                                                              \
        if (gavg != NULL) {                                                                 \
            T ga = gavg[i] + w * (gi - gavg[i]);                                            \
            gavg[i] = ga;                                                                   \
            avg = SQRT(si - ga * ga) + eps;                                                 \
        } else {                                                                            \
            avg = SQRT(si) + eps;                                                           \
        }                                                                                   \
        if (buf != NULL) {                                                                  \
            T b = mom * buf[i] + gi / avg;                                                  \
            buf[i] = b;                                                                     \
            p[i] = p[i] - lr * b;                                                           \
        } else {                                                                            \
            p[i] = p[i] - lr * gi / avg;                                                    \
        }                                                                                   \
    }                                                                                       \
}

static inline float fnn_maxf(float x, float y) { return x > y ? x : y; }
static inline double fnn_maxd(double x, double y) { return x > y ? x : y; }

DEFINE_UPDATES(float, f32, sqrtf, fnn_maxf)
DEFINE_UPDATES(double, f64, sqrt, fnn_maxd)

const char *fnn_simd_path(void)
{
#if FNN_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4 (AVX-512 clone)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3 (AVX2/FMA clone)";
    return "x86-64 baseline (SSE2 clone)";
#elif defined(__x86_64__)
    return "x86-64 baseline (SSE2)";
#elif defined(__aarch64__)
    return "aarch64 baseline (NEON)";
#else
    return "generic (auto-vectorized)";
#endif
}
