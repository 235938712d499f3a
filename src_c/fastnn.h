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
#include <stdint.h>
#include "fnn_codes.h"

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

/* Update n_tensors tensors as one virtual vector split into equal spans, one per
 * thread, in ONE parallel region.  ptrs holds 5 pointers per tensor (param,
 * grad, s0, s1, s2; NULL when unused); offs[t] is the first element of tensor t
 * (offs[n_tensors] = total).  With check_finite, every thread first scans its
 * span of the gradients; after a barrier, nothing is updated if any thread saw
 * a NaN/inf, and the function returns 0.  Returns 1 when the update was done. */
int fnn_multi_update(fnn_update_fn fn, char *const *ptrs, const ptrdiff_t *offs, ptrdiff_t n_tensors,
                     ptrdiff_t itemsize, const fnn_optim_args *a, int n_threads, int check_finite);

/* 1 when every element of the n_arrays arrays is finite (ptrs[k] holds sizes[k] elements). */
int fnn_all_finite(char *const *ptrs, const ptrdiff_t *sizes, ptrdiff_t n_arrays, ptrdiff_t itemsize,
                   int n_threads);

/* Dense epilogues (fnn_dense.c), on `rows` contiguous rows of m elements.
 * act: an FNN_ACT_* code (fnn_codes.h).
 * act_rows: y = act(x + b) (y may be x, b may be NULL).
 * dact_rows: gz = gy * act'(y) (gz NULL: identity, nothing written) and, when acc
 * is not NULL, acc[0:m] = column sums of gz over the rows, in double. */
void fnn_act_rows_f32(float *y, const float *x, const float *b, ptrdiff_t rows, ptrdiff_t m,
                      int act, float slope);
void fnn_act_rows_f64(double *y, const double *x, const double *b, ptrdiff_t rows, ptrdiff_t m,
                      int act, double slope);
void fnn_dact_rows_f32(float *gz, const float *gy, const float *y, double *acc, ptrdiff_t rows,
                       ptrdiff_t m, int act, float slope);
void fnn_dact_rows_f64(double *gz, const double *gy, const double *y, double *acc, ptrdiff_t rows,
                       ptrdiff_t m, int act, double slope);
/* g = scale * (p - t); returns sum((p - t)^2) in double. */
double fnn_mse_f32(const float *p, const float *t, float *g, ptrdiff_t n, float scale);
double fnn_mse_f64(const double *p, const double *t, double *g, ptrdiff_t n, double scale);

/* Element-wise losses (fnn_dense.c): kind an FNN_LOSS_* code (fnn_codes.h) other than
 * FNN_LOSS_MSE; Huber and epsilon-insensitive take param (delta, epsilon), logistic and
 * hinge work on the margin t * p with t in {-1, +1}.  g = scale * d loss / d p; returns the sum. */
double fnn_elem_loss_f32(int kind, const float *p, const float *t, float *g, ptrdiff_t n,
                         float scale, float param);
double fnn_elem_loss_f64(int kind, const double *p, const double *t, double *g, ptrdiff_t n,
                         double scale, double param);

/* Weight penalty (fnn_dense.c): kind FNN_PENALTY_L1 = lam * sum|w|, FNN_PENALTY_L2 =
 * 0.5 * lam * sum w^2;
 * adds its gradient into g and returns the penalty. */
double fnn_penalty_f32(int kind, const float *w, float *g, ptrdiff_t n, float lam);
double fnn_penalty_f64(int kind, const double *w, double *g, ptrdiff_t n, double lam);

/* Inverted dropout (fnn_dense.c) on elements [offset, offset + n) of a tensor:
 * kept where the counter-based hash of (key, index) is >= threshold. */
void fnn_dropout_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t offset, uint64_t key,
                     uint32_t threshold, float scale);
void fnn_dropout_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t offset, uint64_t key,
                     uint32_t threshold, double scale);

/* Name of the SIMD path these loops were compiled for. */
const char *fnn_simd_path(void);

/* ---- convolution and pooling (fnn_conv.c) ---- */
/* Geometry of one (image, channel) plane: input h x w, kernel kh x kw, stride,
 * zero padding, output oh x ow.  im2col writes the kh*kw rows (row stride ld)
 * of one input channel; col2im overwrites one input-gradient plane with the
 * sum of its rows. */
typedef struct {
    ptrdiff_t h, w, kh, kw, sh, sw, ph, pw, oh, ow;
} fnn_conv_geom;

void fnn_im2col_f32(const float *x, float *cols, ptrdiff_t ld, const fnn_conv_geom *g);
void fnn_im2col_f64(const double *x, double *cols, ptrdiff_t ld, const fnn_conv_geom *g);
void fnn_col2im_f32(const float *cols, float *gx, ptrdiff_t ld, const fnn_conv_geom *g);
void fnn_col2im_f64(const double *cols, double *gx, ptrdiff_t ld, const fnn_conv_geom *g);
/* Direct stride-1 convolution with bias and activation (g: kernel, padding and
 * output size; stride fields unused); -1 when its scratch cannot be allocated. */
int fnn_conv_direct_f32(const float *x, const float *w, const float *b, float *y, ptrdiff_t nimg,
                        ptrdiff_t C, ptrdiff_t O, const fnn_conv_geom *g, int act, float slope);
int fnn_conv_direct_f64(const double *x, const double *w, const double *b, double *y,
                        ptrdiff_t nimg, ptrdiff_t C, ptrdiff_t O, const fnn_conv_geom *g, int act,
                        double slope);
void fnn_conv_bias_act_f32(float *y, const float *b, ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t O,
                           ptrdiff_t P, int act, float slope);
void fnn_conv_bias_act_f64(double *y, const double *b, ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t O,
                           ptrdiff_t P, int act, double slope);
void fnn_conv_dact_f32(const float *gy, const float *y, float *gt, double *acc, ptrdiff_t n0,
                       ptrdiff_t n1, ptrdiff_t O, ptrdiff_t P, int act, float slope);
void fnn_conv_dact_f64(const double *gy, const double *y, double *gt, double *acc, ptrdiff_t n0,
                       ptrdiff_t n1, ptrdiff_t O, ptrdiff_t P, int act, double slope);
void fnn_maxpool2d_f32(const float *x, float *y, int32_t *idx, ptrdiff_t planes, const fnn_conv_geom *g);
void fnn_maxpool2d_f64(const double *x, double *y, int32_t *idx, ptrdiff_t planes, const fnn_conv_geom *g);
void fnn_maxpool2d_backward_f32(const float *gy, const int32_t *idx, float *gx, ptrdiff_t planes,
                                const fnn_conv_geom *g);
void fnn_maxpool2d_backward_f64(const double *gy, const int32_t *idx, double *gx, ptrdiff_t planes,
                                const fnn_conv_geom *g);
void fnn_avgpool2d_f32(const float *x, float *y, ptrdiff_t planes, const fnn_conv_geom *g,
                       int count_include_pad);
void fnn_avgpool2d_f64(const double *x, double *y, ptrdiff_t planes, const fnn_conv_geom *g,
                       int count_include_pad);
void fnn_avgpool2d_backward_f32(const float *gy, float *gx, ptrdiff_t planes, const fnn_conv_geom *g,
                                int count_include_pad);
void fnn_avgpool2d_backward_f64(const double *gy, double *gx, ptrdiff_t planes, const fnn_conv_geom *g,
                                int count_include_pad);

/* ---- Winograd F(2x2, 3x3) transforms (fnn_wino.c) ---- */
/* For 3x3 stride-1 convolutions; g gives h, w, ph, pw, oh, ow (kernel and stride
 * fields unused).  Layouts are described in fnn_wino.c.  The int functions
 * return -1 when their scratch buffer cannot be allocated, else 0. */
#define FNN_WINO_PROTOS(T, SUF)                                                              \
int fnn_wino_in_##SUF(const T *x, T *V, ptrdiff_t nimg, ptrdiff_t C, ptrdiff_t ps,           \
                      const fnn_conv_geom *g);                                               \
int fnn_wino_out_##SUF(const T *M, T *y, const T *bias, ptrdiff_t nimg, ptrdiff_t O,         \
                       ptrdiff_t ps, const fnn_conv_geom *g);                                \
int fnn_wino_gout_##SUF(const T *gy, T *gM, ptrdiff_t nimg, ptrdiff_t O, ptrdiff_t ps,       \
                        const fnn_conv_geom *g);                                             \
int fnn_wino_gin_##SUF(const T *dV, T *gx, ptrdiff_t nimg, ptrdiff_t C, ptrdiff_t ps,        \
                       const fnn_conv_geom *g);                                              \
void fnn_wino_weight_##SUF(const T *w, T *U, ptrdiff_t O, ptrdiff_t C);                      \
void fnn_wino_wgrad_##SUF(const T *dU, T *gw, ptrdiff_t O, ptrdiff_t C, int accumulate);
FNN_WINO_PROTOS(float, f32)
FNN_WINO_PROTOS(double, f64)

/* ---- normalization (fnn_norm.c) ---- */
/* Input viewed as (rows, C, S).  "b" loops: per-channel statistics over rows and S
 * (BatchNorm); a thread calls them on its block of rows with its own double
 * accumulators.  "set" loops: one contiguous set of C*S elements (GroupNorm per
 * (n, group), InstanceNorm per (n, c), LayerNorm per row with S = 1), with a
 * per-channel affine; gamma/beta may be NULL (1 and 0).  See fnn_norm.c. */
#define FNN_NORM_PROTOS(T, SUF) \
void fnn_norm_bsums_##SUF(const T *x, ptrdiff_t rows, ptrdiff_t C, ptrdiff_t S, const T *shift, \
                          double *acc_s, double *acc_q); \
void fnn_norm_bapply_##SUF(const T *x, T *y, ptrdiff_t rows, ptrdiff_t C, ptrdiff_t S, const T *mu, \
                           const T *a, const T *b); \
void fnn_norm_bgsums_##SUF(const T *g, const T *x, ptrdiff_t rows, ptrdiff_t C, ptrdiff_t S, \
                           const T *mu, double *acc_g, double *acc_gx); \
void fnn_norm_bdx_##SUF(const T *g, const T *x, T *dx, ptrdiff_t rows, ptrdiff_t C, ptrdiff_t S, \
                        const T *mu, const T *k1, const T *k2, const T *k3); \
void fnn_norm_set_fwd_##SUF(const T *x, T *y, ptrdiff_t C, ptrdiff_t S, double eps, const T *gamma, \
                            const T *beta, double *mean_out, double *rstd_out); \
void fnn_norm_set_bwd_##SUF(const T *x, const T *g, T *dx, ptrdiff_t C, ptrdiff_t S, double mean, \
                            double rstd, const T *gamma, double *acc_g, double *acc_gx);
FNN_NORM_PROTOS(float, f32)
FNN_NORM_PROTOS(double, f64)

/* ---- recurrent layers (fnn_rnn.c) ---- */
/* One time step of a batch of n rows (row strides in elements; see fnn_rnn.c).
 * LSTM forward: gates (input projection, in) += rec + bias, replaced by the
 * activations (i, f, g, o); c = f * c_prev + i * g; y (and h_next unless NULL)
 * = o * tanh(c).  Backward: dz = gate pre-activation gradients from the saved
 * activations, c, c_prev and dh = gy + dh_rec; dc (in: from step t+1, out: for
 * step t-1); acc[0:4h] += column sums of dz (in double) unless NULL; dh_rec rows are
 * dhs elements apart. */
void fnn_lstm_fwd_step_f32(ptrdiff_t n, ptrdiff_t h, const float *rec, const float *bias,
                           float *gates, ptrdiff_t gs, const float *c_prev, ptrdiff_t cps, float *c,
                           ptrdiff_t cs, float *y, ptrdiff_t ys, float *h_next, ptrdiff_t hns);
void fnn_lstm_fwd_step_f64(ptrdiff_t n, ptrdiff_t h, const double *rec, const double *bias,
                           double *gates, ptrdiff_t gs, const double *c_prev, ptrdiff_t cps,
                           double *c, ptrdiff_t cs, double *y, ptrdiff_t ys, double *h_next,
                           ptrdiff_t hns);
void fnn_lstm_bwd_step_f32(ptrdiff_t n, ptrdiff_t h, const float *gates, ptrdiff_t gs,
                           const float *c, ptrdiff_t cs, const float *c_prev, ptrdiff_t cps,
                           const float *gy, ptrdiff_t gys, const float *dh_rec, ptrdiff_t dhs, float *dc,
                           float *dz, ptrdiff_t dzs, double *acc);
void fnn_lstm_bwd_step_f64(ptrdiff_t n, ptrdiff_t h, const double *gates, ptrdiff_t gs,
                           const double *c, ptrdiff_t cs, const double *c_prev, ptrdiff_t cps,
                           const double *gy, ptrdiff_t gys, const double *dh_rec, ptrdiff_t dhs, double *dc,
                           double *dz, ptrdiff_t dzs, double *acc);
/* Elman RNN step: y (and h_next) = act(xp + rec + bias), act tanh or relu (relu != 0);
 * backward dz = (gy + dh_rec) * act'(y), acc as above (h columns). */
void fnn_rnn_fwd_step_f32(ptrdiff_t n, ptrdiff_t h, const float *rec, const float *bias,
                          const float *xp, ptrdiff_t xs, float *y, ptrdiff_t ys, float *h_next,
                          ptrdiff_t hns, int relu);
void fnn_rnn_fwd_step_f64(ptrdiff_t n, ptrdiff_t h, const double *rec, const double *bias,
                          const double *xp, ptrdiff_t xs, double *y, ptrdiff_t ys, double *h_next,
                          ptrdiff_t hns, int relu);
void fnn_rnn_bwd_step_f32(ptrdiff_t n, ptrdiff_t h, const float *y, ptrdiff_t ys, const float *gy,
                          ptrdiff_t gys, const float *dh_rec, ptrdiff_t dhs, float *dz, ptrdiff_t dzs,
                          double *acc, int relu);
void fnn_rnn_bwd_step_f64(ptrdiff_t n, ptrdiff_t h, const double *y, ptrdiff_t ys,
                          const double *gy, ptrdiff_t gys, const double *dh_rec, ptrdiff_t dhs,
                          double *dz, ptrdiff_t dzs, double *acc, int relu);
/* The gate nonlinearities used above, element-wise (for tests). */
void fnn_sigmoid_tanh_f32(const float *x, float *sig, float *th, ptrdiff_t n);
void fnn_sigmoid_tanh_f64(const double *x, double *sig, double *th, ptrdiff_t n);

#endif
