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


# -- the worker hand-off of fastnn._engine.parallel (src_c/fnn_team.h) --
cdef extern from "fnn_team.h" nogil:
    int FNN_HAVE_TEAM
    ctypedef struct fnn_team:
        long gen
        long done
    void fnn_team_init(fnn_team *t)
    void fnn_team_destroy(fnn_team *t)
    void fnn_team_wait_post(fnn_team *t, long gen, long spin_ns)
    void fnn_team_post(fnn_team *t)
    void fnn_team_finish(fnn_team *t)
    void fnn_team_join(fnn_team *t, long done, long spin_ns)

HAVE_TEAM = bool(FNN_HAVE_TEAM)


cdef class Team:
    """Counters that a poster and its worker threads wait on, spinning for up to
    ``spin_ns`` nanoseconds (without the GIL) before they sleep.

    ``post()`` starts round ``gen``; a worker's ``wait_post(gen)`` returns once
    it has; each part calls ``finish()``; ``join(done)`` returns once ``done``
    parts in all have finished.
    """

    cdef fnn_team t
    cdef long spin_ns

    def __cinit__(self, long spin_ns=0):
        fnn_team_init(&self.t)
        self.spin_ns = spin_ns

    def __dealloc__(self):
        fnn_team_destroy(&self.t)

    @property
    def gen(self):
        return self.t.gen

    @property
    def done(self):
        return self.t.done

    def post(self):
        fnn_team_post(&self.t)
        return self.t.gen

    def wait_post(self, long gen):
        with nogil:
            fnn_team_wait_post(&self.t, gen, self.spin_ns)

    def finish(self):
        fnn_team_finish(&self.t)

    def join(self, long done):
        with nogil:
            fnn_team_join(&self.t, done, self.spin_ns)
