/* fastnn.h -- every plain-C inner loop of fastnn, float32 (_f32) and float64 (_f64).
 *
 * The optimizer updates share one signature so that the Cython driver in
 * fastnn/_kernels/_optim.pyx can split a list of tensors into equal-sized spans
 * across threads and call the same function pointer on each span:
 *
 *     fn(param, grad, s0, s1, s2, n, args)
 *
 * param/grad/state pointers point at the first element of the span; unused
 * state pointers are NULL.  All step scalars (bias corrections, step size,
 * decayed lr) are computed once, in double, by the caller and passed in args.
 * The loops never allocate, never raise and never call BLAS.
 */
#ifndef FASTNN_H
#define FASTNN_H

#include <stddef.h>

typedef struct {
    double lr;
    double weight_decay;
    /* SGD */
    double momentum;
    double dampening;
    int nesterov;
    int first_step;     /* momentum buffer := d_p (torch clones on the first step) */
    /* Adam / AdamW */
    double beta1;
    double beta2;
    double eps;
    double step_size;   /* lr / (1 - beta1^t) */
    double bc2_sqrt;    /* sqrt(1 - beta2^t) */
    int decoupled;      /* AdamW: p *= 1 - lr * weight_decay */
    /* RMSprop */
    double alpha;
    int centered;
    /* Adagrad */
    double clr;         /* lr / (1 + (t - 1) * lr_decay) */
} fnn_optim_args;

typedef void (*fnn_update_fn)(void *param, const void *grad, void *s0, void *s1, void *s2,
                              ptrdiff_t n, const fnn_optim_args *a);

/* s0 = momentum buffer (NULL when momentum == 0) */
void fnn_sgd_f32(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
void fnn_sgd_f64(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
/* s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq (NULL unless amsgrad) */
void fnn_adam_f32(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
void fnn_adam_f64(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
/* s0 = state_sum */
void fnn_adagrad_f32(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
void fnn_adagrad_f64(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
/* s0 = square_avg, s1 = momentum_buffer (NULL when momentum == 0), s2 = grad_avg (NULL unless centered) */
void fnn_rmsprop_f32(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);
void fnn_rmsprop_f64(void *param, const void *grad, void *s0, void *s1, void *s2, ptrdiff_t n, const fnn_optim_args *a);

/* Name of the SIMD path these loops were compiled for. */
const char *fnn_simd_path(void);

#endif
