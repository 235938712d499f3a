"""Build facts the Python layer reports through fastnn.show_config()."""
from fastnn._kernels._omp cimport FNN_OPENMP, omp_get_max_threads

cdef extern from "fastnn.h" nogil:
    const char *fnn_simd_path()


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FNN_OPENMP)


def omp_max_threads():
    """OpenMP's default team size (1 in a serial build)."""
    return omp_get_max_threads()


def simd_path():
    """Name of the SIMD path the C inner loops were compiled for."""
    return fnn_simd_path().decode("ascii")


# -- the kernel codes (src_c/fnn_codes.h), by name: fastnn._engine.codes re-exports them --
from fastnn._kernels cimport _codes as K

ACTIVATIONS = {"identity": K.ACT_IDENTITY, "relu": K.ACT_RELU, "leaky_relu": K.ACT_LEAKY,
               "sigmoid": K.ACT_SIGMOID, "tanh": K.ACT_TANH}
ELEM_LOSSES = {"l1": K.LOSS_L1, "huber": K.LOSS_HUBER, "epsilon_insensitive": K.LOSS_EPS_INS,
               "logistic": K.LOSS_LOGISTIC, "hinge": K.LOSS_HINGE, "mse": K.LOSS_MSE}
PENALTIES = {"l1": K.PENALTY_L1, "l2": K.PENALTY_L2}
OPTIMIZERS = {"sgd": K.OPTIM_SGD, "adam": K.OPTIM_ADAM, "adagrad": K.OPTIM_ADAGRAD,
              "rmsprop": K.OPTIM_RMSPROP}
SGD_LOSSES = {"hinge": K.L_HINGE, "perceptron": K.L_HINGE, "squared_hinge": K.L_SQ_HINGE,
              "log_loss": K.L_LOG, "modified_huber": K.L_MOD_HUBER, "squared_error": K.L_SQUARED,
              "huber": K.L_HUBER, "epsilon_insensitive": K.L_EPS_INS,
              "squared_epsilon_insensitive": K.L_SQ_EPS_INS}
SGD_PENALTIES = {None: K.P_NONE, "l1": K.P_L1, "l2": K.P_L2, "elasticnet": K.P_ELASTICNET}
SGD_LEARNING_RATES = {"constant": K.LR_CONSTANT, "optimal": K.LR_OPTIMAL,
                      "invscaling": K.LR_INVSCALING, "adaptive": K.LR_ADAPTIVE,
                      "pa1": K.LR_PA1, "pa2": K.LR_PA2}
