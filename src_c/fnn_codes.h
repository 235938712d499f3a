/* fnn_codes.h -- the one table of the integer codes that select a kernel's variant.
 *
 * The C loops switch on these; fastnn/_kernels/_codes.pxd declares them for Cython,
 * and fastnn/_kernels/_common.pyx maps names to them for Python (fastnn._engine.codes).
 * Nothing else writes a code as a number. */
#ifndef FNN_CODES_H
#define FNN_CODES_H

/* activations of the dense and conv epilogues (fnn_act.h); derivatives from the output */
enum {
    FNN_ACT_IDENTITY = 0,
    FNN_ACT_RELU = 1,
    FNN_ACT_LEAKY_RELU = 2,
    FNN_ACT_SIGMOID = 3,
    FNN_ACT_TANH = 4
};

/* element-wise losses (fnn_elem_loss_*; MSE has its own loop, fnn_mse_*) */
enum {
    FNN_LOSS_L1 = 0,
    FNN_LOSS_HUBER = 1,                /* param: delta */
    FNN_LOSS_EPSILON_INSENSITIVE = 2,  /* param: epsilon */
    FNN_LOSS_LOGISTIC = 3,             /* on the margin t * p, t in {-1, +1} */
    FNN_LOSS_HINGE = 4,                /* likewise */
    FNN_LOSS_MSE = 5
};

/* weight penalties (fnn_penalty_*) */
enum {
    FNN_PENALTY_L1 = 0,                /* lam * sum |w| */
    FNN_PENALTY_L2 = 1                 /* 0.5 * lam * sum w^2 */
};

/* fused optimizer updates (fnn_multi_update) */
enum {
    FNN_OPTIM_SGD = 0,
    FNN_OPTIM_ADAM = 1,
    FNN_OPTIM_ADAGRAD = 2,
    FNN_OPTIM_RMSPROP = 3
};

/* per-sample SGD of the linear estimators (_sgd.pyx): losses, penalties, learning rates */
enum {
    FNN_SGD_HINGE = 0,                 /* param: threshold (1 hinge, 0 perceptron) */
    FNN_SGD_SQUARED_HINGE = 1,         /* param: threshold */
    FNN_SGD_LOG = 2,                   /* half binomial, y in {0, 1} */
    FNN_SGD_MODIFIED_HUBER = 3,
    FNN_SGD_SQUARED = 4,               /* half squared error */
    FNN_SGD_HUBER = 5,                 /* param: delta */
    FNN_SGD_EPSILON_INSENSITIVE = 6,   /* param: epsilon */
    FNN_SGD_SQUARED_EPSILON_INSENSITIVE = 7
};
enum {
    FNN_SGD_PENALTY_NONE = 0,
    FNN_SGD_PENALTY_L1 = 1,
    FNN_SGD_PENALTY_L2 = 2,
    FNN_SGD_PENALTY_ELASTICNET = 3
};
enum {                                 /* ordered: the kernel tests >= PA1 */
    FNN_LR_CONSTANT = 1,
    FNN_LR_OPTIMAL = 2,
    FNN_LR_INVSCALING = 3,
    FNN_LR_ADAPTIVE = 4,
    FNN_LR_PA1 = 5,
    FNN_LR_PA2 = 6
};
#endif
