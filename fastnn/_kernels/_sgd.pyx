"""Per-sample SGD for linear models (scikit-learn's ``_plain_sgd`` on dense rows).

Design note
-----------
``sgd_epoch`` runs ONE epoch of plain stochastic gradient descent over the
rows of a dense C-contiguous X, with the GIL released.  It follows
scikit-learn's ``sklearn/linear_model/_sgd_fast.pyx.tp`` step for step, so that
a fastnn estimator and the scikit-learn one of the same name agree at equal
settings:

* the same losses (hinge / perceptron, squared hinge, half binomial on {0, 1}
  targets, modified Huber, half squared error, Huber, epsilon-insensitive and
  its square), the same dloss clipping at 1e12, class and sample weights;
* the same learning rates ("constant", "optimal" with Bottou's t0 heuristic
  computed by the caller, "invscaling", "adaptive", "pa1", "pa2");
* the weight vector kept as ``wscale * w`` so the L2 shrink is O(1) per
  sample (reset when wscale underflows 1e-9 / 1e-6 in float64 / float32), the
  truncated-gradient L1 of Tsuruoka et al. (2009) with its cumulative penalty
  ``u`` and per-feature record ``q``, and ASGD averaging with Bottou's
  ``average_a`` / ``average_b`` trick (the average is never touched row-wise
  beyond one axpy per sample);
* the same shuffle: a Fisher-Yates pass driven by the xorshift generator of
  ``sklearn.utils._random.our_rand_r`` from the same seed at every epoch,
  applied to the current order.

Where fastnn differs is speed, not arithmetic: rows are dense (no index
indirection), the next rows of the shuffled order are prefetched, and the
norms that only feed the reported objective are accumulated only when that
objective is needed.  The dot product keeps scikit-learn's single serial double
accumulator on purpose: with the default "optimal" schedule the first steps are
large and the per-sample map is expanding, so a reassociated sum (tried: four
accumulators, ~1.3x faster per epoch) drifts from scikit-learn's trajectory
(1e-14 after one epoch, 1e-1 after three on a 600 x 12 log-loss problem).
With the serial sum, models agree with scikit-learn's bit for bit in the
cases the tests cover.

All scalar state that scikit-learn keeps inside its WeightVector (intercept,
wscale, the averaging coefficients, the norms, the L1 ``u``, the step count
``t``, the current eta) lives in one float64 array ``state`` that the caller
keeps between epochs; the Python layer runs the epoch loop and the stopping
rules.  The kernel never raises: a non-finite weight sets a flag in ``state``.

``binomial_loss_grad`` and ``multinomial_loss_grad`` are the fused pointwise
passes of the full-batch logistic-regression objective (the matrix products
around them are BLAS calls from the Python layer).
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport exp, fabs, isfinite, log, log1p, pow, sqrt
from libc.stdint cimport uint32_t

cnp.import_array()

from fastnn._kernels._codes cimport (L_HINGE, L_SQ_HINGE, L_LOG, L_MOD_HUBER, L_SQUARED, L_HUBER,
                                      L_EPS_INS, L_SQ_EPS_INS, P_NONE, P_L1, P_L2, P_ELASTICNET,
                                      LR_CONSTANT, LR_OPTIMAL, LR_INVSCALING, LR_ADAPTIVE, LR_PA1,
                                      LR_PA2)

# slots of the float64 state array
cdef enum:
    S_INTERCEPT = 0
    S_AVG_INTERCEPT = 1
    S_WSCALE = 2
    S_AVG_A = 3
    S_AVG_B = 4
    S_SQ_NORM = 5
    S_L1_NORM = 6
    S_U = 7
    S_T = 8
    S_ETA = 9
    S_SUMLOSS = 10
    S_OBJECTIVE = 11
    S_COUNT = 12
    S_UPDATES = 13
    S_NONFINITE = 14
    N_STATE = 15

STATE_SIZE = N_STATE
cdef double MAX_DLOSS = 1e12

cdef extern from *:
    """
    #if defined(__GNUC__)
    #define FNN_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
    #else
    #define FNN_PREFETCH(p) ((void)0)
    #endif
    """
    void FNN_PREFETCH(const void *p) noexcept nogil

# rows are visited in shuffled order, so the hardware prefetcher cannot guess the
# next one: each step asks for the row PREFETCH_AHEAD positions ahead (measured:
# without it a shuffled epoch over 20k x 100 float64 took 3x as long as an
# unshuffled one).
cdef enum:
    PREFETCH_AHEAD = 8


# ----------------------------------------------------------------------------
# losses: value and derivative w.r.t. the prediction p (scikit-learn's formulas)
# ----------------------------------------------------------------------------

cdef inline double _log1pexp(double x) noexcept nogil:
    if x <= -37:
        return exp(x)
    elif x <= -2:
        return log1p(exp(x))
    elif x <= 18:
        return log(1. + exp(x))
    elif x <= 33.3:
        return x + exp(-x)
    return x


cdef inline double _loss(int kind, double param, double y, double p) noexcept nogil:
    cdef double z
    if kind == L_HINGE:
        z = p * y
        return param - z if z <= param else 0.0
    elif kind == L_SQ_HINGE:
        z = param - p * y
        return z * z if z > 0 else 0.0
    elif kind == L_LOG:
        return _log1pexp(p) - y * p
    elif kind == L_MOD_HUBER:
        z = p * y
        if z >= 1.0:
            return 0.0
        elif z >= -1.0:
            return (1.0 - z) * (1.0 - z)
        return -4.0 * z
    elif kind == L_SQUARED:
        z = p - y
        return 0.5 * z * z
    elif kind == L_HUBER:
        z = fabs(y - p)
        if z <= param:
            return 0.5 * z * z
        return param * (z - 0.5 * param)
    elif kind == L_EPS_INS:
        z = fabs(y - p) - param
        return z if z > 0 else 0.0
    else:
        z = fabs(y - p) - param
        return z * z if z > 0 else 0.0


cdef inline double _dloss(int kind, double param, double y, double p) noexcept nogil:
    cdef double z, e
    if kind == L_HINGE:
        return -y if p * y <= param else 0.0
    elif kind == L_SQ_HINGE:
        z = param - p * y
        return -2 * y * z if z > 0 else 0.0
    elif kind == L_LOG:
        if p > -37:
            e = exp(-p)
            return ((1 - y) - y * e) / (1 + e)
        return exp(p) - y
    elif kind == L_MOD_HUBER:
        z = p * y
        if z >= 1.0:
            return 0.0
        elif z >= -1.0:
            return 2.0 * (1.0 - z) * -y
        return -4.0 * y
    elif kind == L_SQUARED:
        return p - y
    elif kind == L_HUBER:
        z = p - y
        if fabs(z) <= param:
            return z
        return param if z >= 0 else -param
    elif kind == L_EPS_INS:
        if y - p > param:
            return -1
        elif p - y > param:
            return 1
        return 0
    else:
        z = y - p
        if z > param:
            return -2 * (z - param)
        elif z < -param:
            return 2 * (-z - param)
        return 0


def dloss(int kind, double param, double y, double p):
    """Derivative of loss ``kind`` w.r.t. the prediction (for the "optimal" eta0 heuristic)."""
    return _dloss(kind, param, y, p)


def loss_value(int kind, double param, double y, double p):
    """Pointwise loss value (for tests)."""
    return _loss(kind, param, y, p)


# ----------------------------------------------------------------------------
# row helpers on the dense weight vector
# ----------------------------------------------------------------------------

cdef inline double _dot(const floating *w, const floating *x, Py_ssize_t n) noexcept nogil:
    # one serial chain in scikit-learn's order (see the design note)
    cdef double a0 = 0.0
    cdef Py_ssize_t j
    for j in range(n):
        a0 += w[j] * x[j]
    return a0


cdef inline double _sqnorm(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0, z
    cdef Py_ssize_t j
    for j in range(n):
        z = x[j]
        s += z * z
    return s


cdef inline void _reset_wscale(floating *w, floating *aw, Py_ssize_t n, double *st) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating a, inv_b, ws
    if aw != NULL:
        a = <floating>st[S_AVG_A]
        inv_b = <floating>(1.0 / st[S_AVG_B])
        for j in range(n):
            aw[j] += a * w[j]
        for j in range(n):
            aw[j] *= inv_b
        st[S_AVG_A] = 0.0
        st[S_AVG_B] = 1.0
    ws = <floating>st[S_WSCALE]
    for j in range(n):
        w[j] *= ws
    st[S_WSCALE] = 1.0


cdef inline void _add(floating *w, const floating *x, Py_ssize_t n, floating c, double wscale,
                      bint track_norms, double *st) noexcept nogil:
    """w += x * c / wscale (in the wscale representation); optionally refresh the norms."""
    cdef Py_ssize_t j
    cdef floating ws = <floating>wscale
    cdef floating cw = c / ws
    cdef double l2a = 0.0, l2b = 0.0, l1a = 0.0, l1b = 0.0, v0, v1
    if not track_norms:
        for j in range(n):
            w[j] = <floating>(w[j] + <double>x[j] * cw)
        return
    j = 0
    while j + 2 <= n:
        w[j] = <floating>(w[j] + <double>x[j] * cw)
        w[j + 1] = <floating>(w[j + 1] + <double>x[j + 1] * cw)
        v0 = w[j]
        v1 = w[j + 1]
        l2a += v0 * v0
        l2b += v1 * v1
        l1a += fabs(v0)
        l1b += fabs(v1)
        j += 2
    if j < n:
        w[j] = <floating>(w[j] + <double>x[j] * cw)
        v0 = w[j]
        l2a += v0 * v0
        l1a += fabs(v0)
    st[S_SQ_NORM] = (l2a + l2b) * (<double>ws * ws)
    st[S_L1_NORM] = (l1a + l1b) * ws


cdef inline void _add_average(floating *aw, const floating *x, Py_ssize_t n, floating c,
                              floating num_iter, double *st) noexcept nogil:
    cdef Py_ssize_t j
    cdef double mu = 1.0 / num_iter
    cdef double wscale = st[S_WSCALE]
    cdef double k = st[S_AVG_A] * (-c / wscale)
    for j in range(n):
        aw[j] = <floating>(aw[j] + k * x[j])
    if num_iter > 1:
        st[S_AVG_B] /= (1.0 - mu)
    st[S_AVG_A] += mu * st[S_AVG_B] * wscale


cdef inline void _l1_truncate(floating *w, floating *q, Py_ssize_t n, double u,
                              double wscale) noexcept nogil:
    """Cumulative truncated-gradient L1 step (Tsuruoka, Tsujii and Ananiadou, 2009)."""
    cdef Py_ssize_t j
    cdef double z
    for j in range(n):
        z = w[j]
        if wscale * z > 0.0:
            w[j] = <floating>max(0.0, w[j] - ((u + q[j]) / wscale))
        elif wscale * z < 0.0:
            w[j] = <floating>min(0.0, w[j] + ((u - q[j]) / wscale))
        q[j] = <floating>(q[j] + wscale * (w[j] - z))


cdef inline uint32_t _rand_r(uint32_t *seed) noexcept nogil:
    # sklearn.utils._random.our_rand_r (xorshift32, modulo 2^31)
    if seed[0] == 0:
        seed[0] = 1
    seed[0] ^= <uint32_t>(seed[0] << 13)
    seed[0] ^= <uint32_t>(seed[0] >> 17)
    seed[0] ^= <uint32_t>(seed[0] << 5)
    return seed[0] % (<uint32_t>2147483647 + 1)


cdef inline void _shuffle(int *ind, int n, uint32_t seed) noexcept nogil:
    cdef unsigned int i, j
    cdef int tmp
    if n < 2:
        return
    for i in range(<unsigned int>(n - 1)):
        j = i + _rand_r(&seed) % (n - i)
        tmp = ind[i]
        ind[i] = ind[j]
        ind[j] = tmp


def shuffle_index(int[::1] index, uint32_t seed):
    """One scikit-learn SequentialDataset shuffle of ``index`` in place (for tests)."""
    with nogil:
        _shuffle(&index[0], <int>index.shape[0], seed)


# ----------------------------------------------------------------------------
# one epoch
# ----------------------------------------------------------------------------

def sgd_epoch(const floating[:, ::1] X, const floating[::1] y, const floating[::1] sample_weight,
              const unsigned char[::1] validation_mask, int[::1] index,
              floating[::1] w, floating[::1] aw, floating[::1] q, double[::1] state,
              int loss, double loss_param, bint is_hinge, int penalty, double alpha, double l1_ratio,
              bint fit_intercept, bint shuffle, uint32_t seed, double weight_pos, double weight_neg,
              int learning_rate, double eta0, double power_t, double optimal_init, double average,
              bint need_objective):
    """Run one epoch of per-sample SGD, updating ``w``, ``aw``, ``q`` and ``state`` in place.

    X : (n_samples, n_features) C-contiguous; y, sample_weight : (n_samples,);
    validation_mask : (n_samples,) uint8, rows set to 1 are skipped (may have length 0);
    index : (n_samples,) int32 visiting order, shuffled in place when ``shuffle``;
    w : (n_features,) raw weights (the model is state[S_WSCALE] * w);
    aw : (n_features,) average weights, or length 0 without averaging;
    q : (n_features,) L1 record, or length 0 without an L1 term;
    state : float64 (STATE_SIZE,), see the module docstring.
    """
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t i, idx
    cdef bint has_mask = validation_mask.shape[0] > 0
    cdef floating *wp = &w[0]
    cdef floating *awp = &aw[0] if aw.shape[0] > 0 else NULL
    cdef floating *qp = &q[0] if q.shape[0] > 0 else NULL
    cdef int *ind = &index[0]
    cdef double *st = &state[0]
    cdef const floating *xrow
    cdef const char *pf
    cdef Py_ssize_t row_bytes = n_features * sizeof(floating), off
    cdef double p, eta, update, cur, dl, norm, thr
    cdef double intercept = st[S_INTERCEPT]
    cdef double t = st[S_T]
    cdef double sumloss = 0.0, objective = 0.0, n_updates = 0.0, count = 0.0
    cdef floating yi, swi, cw, upd_f
    cdef bint track_norms = need_objective and penalty != P_NONE
    if penalty == P_L2:
        l1_ratio = 0.0
    elif penalty == P_L1:
        l1_ratio = 1.0
    thr = 1e-9 if floating is double else 1e-6
    if n_samples == 0 or n_features == 0:
        return
    eta = st[S_ETA]
    with nogil:
        if shuffle:
            _shuffle(ind, <int>n_samples, seed)
        for i in range(n_samples):
            if i + PREFETCH_AHEAD < n_samples:
                pf = <const char *>&X[ind[i + PREFETCH_AHEAD], 0]
                off = 0
                while off < row_bytes:
                    FNN_PREFETCH(pf + off)
                    off += 64
            idx = ind[i]
            if has_mask and validation_mask[idx]:
                continue
            xrow = &X[idx, 0]
            yi = y[idx]
            swi = sample_weight[idx]
            p = <floating>(_dot(wp, xrow, n_features) * st[S_WSCALE]) + intercept
            if learning_rate == LR_OPTIMAL:
                eta = 1.0 / (alpha * (optimal_init + t - 1))
            elif learning_rate == LR_INVSCALING:
                eta = eta0 / pow(t, power_t)
            if need_objective:
                cur = _loss(loss, loss_param, yi, p)
                sumloss += cur
                objective += cur
                if learning_rate != LR_PA1 and learning_rate != LR_PA2 and penalty != P_NONE:
                    norm = <floating>sqrt(st[S_SQ_NORM])
                    objective += alpha * ((1 - l1_ratio) * 0.5 * norm * norm
                                          + l1_ratio * <floating>st[S_L1_NORM])
            cw = <floating>(weight_pos if yi > 0.0 else weight_neg)
            if learning_rate == LR_PA1:
                update = _sqnorm(xrow, n_features)
                if update == 0:
                    continue
                update = min(eta0, _loss(loss, loss_param, yi, p) / update)
            elif learning_rate == LR_PA2:
                update = _sqnorm(xrow, n_features)
                update = _loss(loss, loss_param, yi, p) / (update + 0.5 / eta0)
            else:
                dl = _dloss(loss, loss_param, yi, p)
                if dl < -MAX_DLOSS:
                    dl = -MAX_DLOSS
                elif dl > MAX_DLOSS:
                    dl = MAX_DLOSS
                update = -eta * dl
            if learning_rate >= LR_PA1:
                if is_hinge:
                    update *= yi
                elif yi - p < 0:
                    update *= -1
            update *= cw * swi
            if penalty >= P_L2:
                # w.scale(c): never scale to negative values
                upd_f = <floating>max(0.0, 1.0 - ((1.0 - l1_ratio) * eta * alpha))
                st[S_WSCALE] *= upd_f
                st[S_SQ_NORM] *= (upd_f * upd_f)
                st[S_L1_NORM] *= fabs(upd_f)
                if st[S_WSCALE] < thr:
                    _reset_wscale(wp, awp, n_features, st)
            if update != 0.0:
                _add(wp, xrow, n_features, <floating>update, st[S_WSCALE], track_norms, st)
                n_updates += 1
            if fit_intercept and update != 0.0:
                intercept += update
            if 0 < average <= t:
                _add_average(awp, xrow, n_features, <floating>update, <floating>(t - average + 1), st)
                st[S_AVG_INTERCEPT] += (intercept - st[S_AVG_INTERCEPT]) / (t - average + 1)
            if penalty == P_L1 or penalty == P_ELASTICNET:
                st[S_U] += l1_ratio * eta * alpha
                _l1_truncate(wp, qp, n_features, st[S_U], st[S_WSCALE])
            t += 1
            count += 1
        st[S_NONFINITE] = 0.0
        if not isfinite(intercept):
            st[S_NONFINITE] = 1.0
        else:
            for i in range(n_features):
                if not isfinite(wp[i]):
                    st[S_NONFINITE] = 1.0
                    break
    st[S_INTERCEPT] = intercept
    st[S_T] = t
    st[S_ETA] = eta
    st[S_SUMLOSS] = sumloss
    st[S_OBJECTIVE] = objective
    st[S_COUNT] = count
    st[S_UPDATES] = n_updates


def sgd_finalize(floating[::1] w, floating[::1] aw, double[::1] state):
    """Fold wscale (and the averaging coefficients) back into ``w`` / ``aw``."""
    cdef floating *awp = &aw[0] if aw.shape[0] > 0 else NULL
    if w.shape[0] == 0:
        return
    with nogil:
        _reset_wscale(&w[0], awp, w.shape[0], &state[0])


# ----------------------------------------------------------------------------
# full-batch logistic losses (pointwise part; the matmuls are BLAS calls)
# ----------------------------------------------------------------------------

def binomial_loss_grad(const floating[::1] raw, const floating[::1] y, const floating[::1] sw,
                       floating[::1] grad_out):
    """Sum of sw_i * (log(1 + exp(raw_i)) - y_i raw_i); grad_out = sw * (expit(raw) - y).

    y in {0, 1}; sums in double.  Returns the weighted loss sum.
    """
    cdef Py_ssize_t i, n = raw.shape[0]
    cdef double total = 0.0, r, e, yi, s, p
    with nogil:
        for i in range(n):
            # one exp per element: e = exp(-|r|) gives both log(1 + exp(r)) and expit(r)
            r = raw[i]
            yi = y[i]
            s = sw[i]
            if r > 0:
                e = exp(-r)
                p = 1.0 / (1.0 + e)
                total += s * (r + log1p(e) - yi * r)
            else:
                e = exp(r)
                p = e / (1.0 + e)
                total += s * (log1p(e) - yi * r)
            grad_out[i] = <floating>(s * (p - yi))
    return total


def multinomial_loss_grad(const floating[:, ::1] raw, const cnp.intp_t[::1] y, const floating[::1] sw,
                          floating[:, ::1] grad_out):
    """Sum of sw_i * (logsumexp(raw_i) - raw_i[y_i]); grad_out = sw * (softmax(raw) - onehot(y)).

    Labels must lie in [0, n_classes) (checked by the caller).  Returns the weighted loss sum.
    """
    cdef Py_ssize_t i, j, n = raw.shape[0], k = raw.shape[1]
    cdef double total = 0.0, m, s, lse, si
    with nogil:
        for i in range(n):
            m = raw[i, 0]
            for j in range(1, k):
                if raw[i, j] > m:
                    m = raw[i, j]
            s = 0.0
            for j in range(k):
                grad_out[i, j] = <floating>exp(raw[i, j] - m)
                s += grad_out[i, j]
            lse = log(s) + m
            si = sw[i]
            total += si * (lse - raw[i, y[i]])
            for j in range(k):
                grad_out[i, j] = <floating>(si * (grad_out[i, j] / s))
            grad_out[i, y[i]] = <floating>(grad_out[i, y[i]] - si)
    return total
