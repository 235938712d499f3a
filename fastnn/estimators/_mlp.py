"""scikit-learn compatible multi-layer perceptrons on fastnn's kernels.

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's constructor parameters
with scikit-learn's meaning, expose the same fitted attributes and follow the same
training algorithm step by step: Glorot-uniform initialization and minibatch
shuffling drawn from the same ``RandomState`` stream, the same loss (including
the ``alpha * 0.5 * ||W||^2 / n`` L2 term per batch), scikit-learn's own Adam and
SGD/momentum/Nesterov update rules and learning-rate schedules, its tol /
n_iter_no_change / early-stopping logic, and L-BFGS through
``scipy.optimize.minimize``.  At equal settings (and float64) the fitted weights
agree with scikit-learn's to rounding; in float32 they agree statistically.

Design note
-----------
All parameters live in one flat buffer laid out as scikit-learn's ``_pack``
(every ``coefs_[i]`` of shape (fan_in, fan_out), C order, then every
``intercepts_[i]``); ``coefs_`` and ``intercepts_`` are views into it, the
gradients live in a second flat buffer of the same layout.  So an optimizer step
is ONE fused kernel call (``fastnn._kernels._optim.multi_update``) for the whole
network, L-BFGS hands the buffers to scipy without packing, and a training step
allocates nothing after the first batch of a given size:

* forward: ``np.matmul(a, W, out=buf)`` then the fused bias + activation epilogue;
* loss: the fused softmax-cross-entropy / logistic / squared-error kernels write
  ``d loss / d logits`` (already divided by the batch size) in the same pass that
  sums the loss;
* backward: weight gradients by BLAS straight into the flat gradient buffer, the
  activation derivative and the next bias gradient in one fused pass, the L2 term
  added (and its value returned) by the fused penalty kernel;
* update: scikit-learn's Adam is torch's fused Adam kernel with the step size
  ``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` and no second bias correction
  (epsilon outside the square root, as scikit-learn); scikit-learn's SGD velocity
  rule ``v = momentum * v - lr * g`` is the fused momentum kernel run with lr = 1
  on a gradient pre-scaled by lr (the scale is folded into the loss gradient, so
  it costs nothing), which keeps the rule exact when the learning rate changes.

Sample weights, the Poisson loss and the output of ``predict_proba`` go through
plain NumPy (off the hot path of the default settings).  Sparse (CSR/CSC) input
is accepted as scikit-learn does, and densified (the kernels are dense).
"""
import math
import numbers
import warnings

import numpy as np

try:
    import scipy.optimize
    from scipy.special import expit, xlogy
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils import shuffle as _sk_shuffle
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - exercised only without sklearn
    raise ImportError(
        "fastnn.estimators needs scikit-learn (and scipy, which it installs), which is not "
        'installed. Install the optional extra: pip install "fastnn-cpu[estimators]"'
    ) from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

from fastnn._engine.config import n_threads_for
from fastnn._engine import codes
from fastnn._kernels import _data, _dense, _loss, _optim

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> kernel codes
_HIDDEN_ACT = {name: codes.ACTIVATIONS[kernel] for name, kernel in
               (("identity", "identity"), ("relu", "relu"), ("logistic", "sigmoid"), ("tanh", "tanh"))}
_SOLVERS = ("lbfgs", "sgd", "adam")
_STOCHASTIC = ("sgd", "adam")
_LOGISTIC_LOSS = codes.ELEM_LOSSES["logistic"]
_MSE_LOSS = codes.ELEM_LOSSES["mse"]
_L2 = codes.PENALTIES["l2"]


# ---------------------------------------------------------------------------
# shared private helpers (validation)
# ---------------------------------------------------------------------------


def _validate_data(est, X, y="no_validation", reset=True, **kw):
    """scikit-learn's validate_data (>= 1.6) or the estimator method (older).

    ``y="no_validation"`` validates X alone; ``y=None`` raises scikit-learn's
    "requires y to be passed" ValueError.
    """
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, reset=reset, **kw)
    return est._validate_data(X, y, reset=reset, **kw)  # pragma: no cover - older scikit-learn


def _dense_input(X):
    """A dense ndarray for validated X (sparse matrices and arrays are densified)."""
    if hasattr(X, "toarray"):
        return X.toarray()
    return X


def _check_sample_weight(sample_weight, X):
    """Sample weights as a float array of shape (n_samples,) in X's dtype, finite, >= 0."""
    n = X.shape[0]
    if isinstance(sample_weight, numbers.Number):
        sw = np.full(n, sample_weight, dtype=X.dtype)
    else:
        sw = np.asarray(sample_weight)
        if sw.dtype.kind not in "fiub":
            raise ValueError(f"sample_weight must be numeric. Received dtype {sw.dtype}")
        if sw.ndim != 1 or sw.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},)!")
        sw = np.ascontiguousarray(sw, dtype=X.dtype)
    if not np.all(np.isfinite(sw)):
        raise ValueError("sample_weight must be finite. Received NaN or inf values")
    if np.any(sw < 0):
        raise ValueError("sample_weight must be non-negative. Received negative values")
    if n and not np.any(sw > 0):
        raise ValueError("Sample weights must contain at least one non-zero number. "
                         "Received all-zero sample_weight")
    return sw


def _param_real(est, name, low=None, high=None, low_open=False, high_open=False):
    v = getattr(est, name)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be a finite real "
                         f"number. Received: {name}={v!r}")
    ok = True
    if low is not None:
        ok &= v > low if low_open else v >= low
    if high is not None:
        ok &= v < high if high_open else v <= high
    if not ok:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        rng = ("(" if low_open else "[") + f"{lo}, {hi}" + (")" if high_open else "]")
        raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be in {rng}. "
                         f"Received: {name}={v!r}")
    return float(v)


def _param_int(est, name, low=1, allow_inf=False):
    v = getattr(est, name)
    if allow_inf and isinstance(v, numbers.Real) and v == np.inf:
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be an int >= {low}"
                         f"{' or np.inf' if allow_inf else ''}. Received: {name}={v!r}")
    return int(v)


def _param_option(est, name, options):
    v = getattr(est, name)
    if not isinstance(v, str) or v not in options:
        raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be one of "
                         f"{sorted(options)}. Received: {name}={v!r}")
    return v


def _param_bool(est, name):
    v = getattr(est, name)
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be a bool. "
                         f"Received: {name}={v!r}")
    return bool(v)


# ---------------------------------------------------------------------------
# the network engine: flat parameters, buffers per batch size, fused kernels
# ---------------------------------------------------------------------------


class _Net:
    """Forward/backward of an MLP on a flat parameter buffer in scikit-learn's _pack layout.

    ``theta`` holds every coefs_[i] (fan_in, fan_out) then every intercepts_[i];
    ``grad`` has the same layout.  ``out_kind`` is "softmax", "logistic",
    "identity" or "exp" (the output activation; the loss is the matching
    canonical one, so d loss / d logits = (output - target) / sum of weights).
    """

    def __init__(self, layer_units, activation, out_kind, dtype):
        self.units = tuple(int(u) for u in layer_units)
        self.n_layers = len(self.units) - 1
        self.act = _HIDDEN_ACT[activation]
        self.out_kind = out_kind
        self.dtype = np.dtype(dtype)
        self.f64 = self.dtype == np.float64
        sizes = [a * b for a, b in zip(self.units[:-1], self.units[1:])] + list(self.units[1:])
        self.size = int(sum(sizes))
        self.theta = np.zeros(self.size, self.dtype)
        self.grad = np.zeros(self.size, self.dtype)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        self.coef_slices, self.intercept_slices = [], []
        start = 0
        for a, b in zip(self.units[:-1], self.units[1:]):
            self.coef_slices.append((start, start + a * b, (a, b)))
            self.W.append(self.theta[start:start + a * b].reshape(a, b))
            self.gW.append(self.grad[start:start + a * b].reshape(a, b))
            start += a * b
        for b in self.units[1:]:
            self.intercept_slices.append((start, start + b))
            self.b.append(self.theta[start:start + b])
            self.gb.append(self.grad[start:start + b])
            start += b
        self._bufs = {}

    # -- parameters ----------------------------------------------------------
    def load(self, coefs, intercepts):
        for dst, src in zip(self.W + self.b, list(coefs) + list(intercepts)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"coefs_/intercepts_ have shape {src.shape}, expected {dst.shape} "
                                 "(they no longer match the network's layer sizes)")
            dst[...] = src

    def views(self):
        return list(self.W), list(self.b)

    def buffers(self, n):
        bufs = self._bufs.get(n)
        if bufs is None:
            if len(self._bufs) > 8:
                self._bufs.clear()
            dt = self.dtype
            acts = [np.empty((n, u), dt) for u in self.units[1:]]
            delta = np.empty((n, self.units[-1]), dt)
            gx = [np.empty((n, u), dt) for u in self.units[1:-1]]
            dz = [np.empty((n, u), dt) for u in self.units[1:-1]]
            bufs = self._bufs[n] = (acts, delta, gx, dz)
        return bufs

    # -- passes --------------------------------------------------------------
    def forward(self, X, acts, nt):
        """Hidden activations and the output layer's pre-activation (logits) into acts."""
        a = X
        last = self.n_layers - 1
        for i in range(self.n_layers):
            out = acts[i]
            np.matmul(a, self.W[i], out=out)
            _dense.bias_act_forward(out, self.b[i], self.act if i < last else 0, 0.0, nt)
            a = out
        return a

    def loss_delta(self, z, target, sw, sw_sum, scale, delta, nt):
        """Data loss (scikit-learn's value) and delta = scale * d loss / d z (z: logits)."""
        kind = self.out_kind
        n = z.shape[0]
        if sw is None:
            if kind == "softmax":
                total, _, bad = _loss.softmax_ce_labels(z, target, delta, scale / sw_sum, nt)
                return total / sw_sum
            if kind == "logistic":
                total = _loss.elem_loss(_LOGISTIC_LOSS, z, target, delta, scale / sw_sum, 0.0, nt)
                return total / sw_sum
            if kind == "identity":
                total = _loss.elem_loss(_MSE_LOSS, z, target, delta, scale / sw_sum, 0.0, nt)
                return 0.5 * total / (n * z.shape[1])
        # weighted samples, or the Poisson loss: NumPy
        w = np.ones(n, z.dtype) if sw is None else sw
        if kind == "softmax":
            zz = z - z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(zz).sum(axis=1, keepdims=True))
            logp = zz - lse
            p = np.exp(logp)
            y = np.zeros_like(z)
            y[np.arange(n), target] = 1
            loss = -float(np.dot(w, (y * logp).sum(axis=1))) / sw_sum
        elif kind == "logistic":
            y = (target > 0).astype(z.dtype)
            p = expit(z)
            # log(1 + exp(-t z)) with t = +-1, stable
            per = np.logaddexp(0.0, -target * z).sum(axis=1)
            loss = float(np.dot(w, per)) / sw_sum
        elif kind == "identity":
            y, p = target, z
            loss = 0.5 * float(np.average((y - p) ** 2, weights=w, axis=0).mean())
        else:  # "exp": Poisson with log link
            y = target
            p = np.exp(z)
            loss = float(np.average(xlogy(y, y / p) - y + p, weights=w, axis=0).sum())
        np.subtract(p, y, out=delta)
        delta *= (w * (scale / sw_sum))[:, None].astype(z.dtype)
        return loss

    def loss_grad(self, X, target, sw, sw_sum, alpha, scale, nt):
        """scikit-learn's batch loss (data + L2) and grad = scale * its gradient (in self.grad)."""
        n = X.shape[0]
        acts, delta, gx, dz = self.buffers(n)
        z = self.forward(X, acts, nt)
        loss = self.loss_delta(z, target, sw, sw_sum, scale, delta, nt)
        d = delta
        lam = alpha * scale / sw_sum
        l2 = 0.0
        act = self.act
        for i in range(self.n_layers - 1, -1, -1):
            a_in = X if i == 0 else acts[i - 1]
            np.matmul(a_in.T, d, out=self.gW[i])
            if i == self.n_layers - 1:
                _dense.act_backward_bias(d, None, None, self.gb[i], False, 0, 0.0, nt)
            if alpha > 0:
                l2 += _loss.penalty(_L2, self.W[i], self.gW[i], lam)
            if i > 0:
                g = gx[i - 1]
                np.matmul(d, self.W[i].T, out=g)
                if act == 0:
                    _dense.act_backward_bias(g, None, None, self.gb[i - 1], False, 0, 0.0, nt)
                    d = g
                else:
                    _dense.act_backward_bias(g, acts[i - 1], dz[i - 1], self.gb[i - 1], False,
                                             act, 0.0, nt)
                    d = dz[i - 1]
        if alpha > 0:
            loss += l2 / scale
        return loss

    def predict_raw(self, X, nt):
        """Output-layer activations (probabilities / values) for X, in a new array."""
        a = X
        last = self.n_layers - 1
        for i in range(self.n_layers):
            out = np.matmul(a, self.W[i])
            code = self.act if i < last else (3 if self.out_kind == "logistic" else 0)
            _dense.bias_act_forward(out, self.b[i], code, 0.0, nt)
            a = out
        if self.out_kind == "softmax":
            a -= a.max(axis=1, keepdims=True)
            np.exp(a, out=a)
            a /= a.sum(axis=1, keepdims=True)
        elif self.out_kind == "exp":
            np.exp(a, out=a)
        return a


class _Adam:
    """scikit-learn's AdamOptimizer rule on the flat buffers, one fused kernel call a step."""

    def __init__(self, net, lr, beta_1, beta_2, epsilon):
        self.lr = self.learning_rate = float(lr)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.t = 0
        self.m = np.zeros_like(net.theta)
        self.v = np.zeros_like(net.theta)
        self.hp = {"lr": self.lr, "beta1": self.beta_1, "beta2": self.beta_2,
                   "eps": float(epsilon), "weight_decay": 0.0, "decoupled": 0,
                   "step_size": 0.0, "bc2_sqrt": 1.0}
        self.grad_scale = 1.0

    def step(self, net, nt):
        self.t += 1
        t = self.t
        lr_t = self.lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        self.learning_rate = lr_t
        self.hp["step_size"] = lr_t
        _optim.multi_update(1, [net.theta], [net.grad], [self.m], [self.v], None, net.f64,
                            self.hp, nt)

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class _SGD:
    """scikit-learn's SGDOptimizer rule (velocity v = momentum * v - lr * g)."""

    def __init__(self, net, lr, lr_schedule, momentum, nesterov, power_t):
        self.learning_rate_init = float(lr)
        self.learning_rate = float(lr)
        self.lr_schedule = lr_schedule
        self.momentum = float(momentum)
        self.power_t = float(power_t)
        self.buf = np.zeros_like(net.theta) if self.momentum > 0 else None
        # torch's momentum kernel with lr = 1 on the lr-scaled gradient:
        # buf = momentum * buf + lr * g = -v and p -= buf (or lr * g + momentum * buf).
        self.hp = {"lr": 1.0, "momentum": self.momentum, "dampening": 0.0,
                   "nesterov": int(bool(nesterov) and self.momentum > 0), "weight_decay": 0.0,
                   "first_step": 0}

    @property
    def grad_scale(self):
        return self.learning_rate

    def step(self, net, nt):
        _optim.multi_update(0, [net.theta], [net.grad], None if self.buf is None else [self.buf],
                            None, None, net.f64, self.hp, nt)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


# ---------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------


class _BaseMLP(BaseEstimator):
    """Shared fit machinery of MLPClassifier and MLPRegressor (not public)."""

    _loss_name = "log_loss"

    # -- validation ------------------------------------------------------------
    def _check_params(self):
        name = type(self).__name__
        hls = self.hidden_layer_sizes
        if isinstance(hls, numbers.Integral) and not isinstance(hls, (bool, np.bool_)):
            hls = [hls]
        try:
            hls = list(hls)
        except TypeError:
            raise ValueError(f"The 'hidden_layer_sizes' parameter of {name} must be an int or a "
                             f"sequence of ints. Received: {self.hidden_layer_sizes!r}") from None
        for h in hls:
            if isinstance(h, (bool, np.bool_)) or not isinstance(h, numbers.Integral):
                raise ValueError(f"hidden_layer_sizes must hold ints. Received: {self.hidden_layer_sizes!r}")
        if any(h <= 0 for h in hls):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hls)
        _param_option(self, "activation", _HIDDEN_ACT)
        _param_option(self, "solver", _SOLVERS)
        _param_real(self, "alpha", low=0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _param_int(self, "batch_size", 1)
        _param_option(self, "learning_rate", ("constant", "invscaling", "adaptive"))
        _param_real(self, "learning_rate_init", low=0.0, low_open=True)
        _param_real(self, "power_t", low=0.0)
        _param_int(self, "max_iter", 1)
        _param_bool(self, "shuffle")
        _param_real(self, "tol", low=0.0)
        _param_bool(self, "warm_start")
        _param_real(self, "momentum", 0.0, 1.0)
        _param_bool(self, "nesterovs_momentum")
        _param_bool(self, "early_stopping")
        _param_real(self, "validation_fraction", 0.0, 1.0, high_open=True)
        _param_real(self, "beta_1", 0.0, 1.0, high_open=True)
        _param_real(self, "beta_2", 0.0, 1.0, high_open=True)
        _param_real(self, "epsilon", low=0.0, low_open=True)
        _param_int(self, "n_iter_no_change", 1, allow_inf=True)
        _param_int(self, "max_fun", 1)
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise ValueError(f"The 'verbose' parameter of {name} must be a bool or an int. "
                             f"Received: verbose={self.verbose!r}")
        check_random_state(self.random_state)
        return hls

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        # The engine's coefs_/intercepts_ are views of its flat buffer, a relation
        # that pickling (and deepcopy) would silently break: drop the engine, it is
        # rebuilt from coefs_/intercepts_ by the next fit or predict.
        state = super().__getstate__()
        state = dict(state)
        state.pop("_net", None)
        return state

    # -- initialization ----------------------------------------------------------
    def _init_coef(self, fan_in, fan_out, dtype):
        factor = 2.0 if self.activation == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-bound, bound, fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        self.coefs_, self.intercepts_ = [], []
        self._best_theta = None   # early stopping's best weights (scikit-learn's _best_coefs)
        for a, b in zip(layer_units[:-1], layer_units[1:]):
            c, i = self._init_coef(a, b, dtype)
            self.coefs_.append(c)
            self.intercepts_.append(i)
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _make_net(self, layer_units, dtype):
        """The engine on the current coefs_/intercepts_ (copied into its flat buffer);
        coefs_ and intercepts_ then become views of that buffer."""
        net = getattr(self, "_net", None)
        kind = self.out_activation_
        if (net is None or net.units != tuple(layer_units) or net.dtype != dtype
                or net.out_kind != kind or net.act != _HIDDEN_ACT[self.activation]):
            net = _Net(layer_units, self.activation, kind, dtype)
        net.load(self.coefs_, self.intercepts_)
        self._net = net
        self.coefs_, self.intercepts_ = net.views()
        return net

    # -- targets ---------------------------------------------------------------
    def _targets(self, y, dtype):
        """The loss kernels' target for the (2-D) training y."""
        kind = self.out_activation_
        if kind == "softmax":
            return np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.intp)
        if kind == "logistic":
            t = np.where(y, 1.0, -1.0).astype(dtype)
            return np.ascontiguousarray(t)
        return np.ascontiguousarray(y, dtype=dtype)

    # -- fit -------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [n_features] + hidden + [y.shape[1]]
        if not first_pass:
            fitted = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
            if fitted != layer_units:
                raise ValueError(
                    f"the fitted network has layer sizes {fitted}, but hidden_layer_sizes and "
                    f"this X, y need {layer_units}; fit without warm_start to start over")
        self.n_outputs_ = y.shape[1]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        dtype = self.coefs_[0].dtype if self.coefs_[0].dtype in (np.float32, np.float64) else X.dtype
        if X.dtype != dtype:
            X = X.astype(dtype)
        X = np.ascontiguousarray(_dense_input(X))
        net = self._make_net(layer_units, dtype)
        if self.solver in _STOCHASTIC:
            self._fit_stochastic(net, X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(net, X, y, sample_weight)
        if not np.all(np.isfinite(net.theta)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may"
                             " contain large values and need to be preprocessed.")
        return self

    def _fit_lbfgs(self, net, X, y, sample_weight):
        target = self._targets(y, net.dtype)
        sw_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        alpha = float(self.alpha)
        nt = n_threads_for(X.shape[0] * max(net.units))
        theta, grad = net.theta, net.grad

        def fun(x):
            theta[...] = x
            loss = net.loss_grad(X, target, sample_weight, sw_sum, alpha, 1.0, nt)
            # a new array each call: scipy may keep the previous gradient
            return loss, grad.astype(np.float64)

        res = scipy.optimize.minimize(
            fun, theta.astype(np.float64), method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if res.status != 0:
            msg = res.message.decode("latin1") if isinstance(res.message, bytes) else res.message
            warnings.warn(
                "lbfgs failed to converge after %d iteration(s) (status=%d):\n%s\n\n"
                "Increase the number of iterations to improve the convergence (max_iter=%d)."
                % (res.nit, res.status, msg, self.max_iter), ConvergenceWarning, stacklevel=3)
        self.n_iter_ = min(res.nit, self.max_iter)
        self.loss_ = float(res.fun)
        theta[...] = res.x

    def _make_optimizer(self, net):
        if self.solver == "sgd":
            return _SGD(net, self.learning_rate_init, self.learning_rate, self.momentum,
                        self.nesterovs_momentum, self.power_t)
        return _Adam(net, self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)

    def _fit_stochastic(self, net, X, y, sample_weight, incremental):
        opt = getattr(self, "_optimizer", None)
        if (not incremental or opt is None or not hasattr(opt, "grad_scale")
                or getattr(opt, "_size", None) != net.size):
            opt = self._optimizer = self._make_optimizer(net)
            opt._size = net.size
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if (self._is_classifier and self.n_outputs_ == 1) else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify)
                sw_train = sw_val = None
            else:
                X_train, X_val, y_train, y_val, sw_train, sw_val = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            if self._is_classifier:
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_train = np.ascontiguousarray(X_train)
            best_theta = getattr(self, "_best_theta", None)
            if best_theta is None or best_theta.shape != net.theta.shape:
                best_theta = net.theta.copy()
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            X_val = y_val = sw_val = None

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        target = self._targets(y_train, net.dtype)
        sample_idx = np.arange(n_samples, dtype=int)
        bounds = [(s, min(s + batch_size, n_samples)) for s in range(0, n_samples, batch_size)]
        nt = n_threads_for(batch_size * max(net.units))
        alpha = float(self.alpha)
        shuffle = self.shuffle
        dtype = net.dtype
        Xbufs, tbufs = {}, {}
        theta = net.theta
        step = opt.step
        loss_grad = net.loss_grad
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if shuffle:
                    sample_idx = _sk_shuffle(sample_idx, random_state=self._random_state)
                    idx_all = np.ascontiguousarray(sample_idx, dtype=np.intp)
                accumulated_loss = 0.0
                for lo, hi in bounds:
                    nb = hi - lo
                    if shuffle:
                        idx = idx_all[lo:hi]
                        Xb = Xbufs.get(nb)
                        if Xb is None:
                            Xb = Xbufs[nb] = np.empty((nb, X_train.shape[1]), dtype)
                            tbufs[nb] = np.empty((nb,) + target.shape[1:], target.dtype)
                        _data.gather_rows(X_train, idx, Xb, 1)
                        tb = tbufs[nb]
                        if target.ndim == 1:
                            target.take(idx, out=tb)
                        else:
                            _data.gather_rows(target, idx, tb, 1)
                        swb = None if sw_train is None else sw_train[idx]
                    else:
                        Xb = X_train[lo:hi]
                        tb = target[lo:hi]
                        swb = None if sw_train is None else sw_train[lo:hi]
                    sw_sum = nb if swb is None else float(swb.sum())
                    batch_loss = loss_grad(Xb, tb, swb, sw_sum, alpha, opt.grad_scale, nt)
                    accumulated_loss += batch_loss * nb
                    step(net, nt)
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                if early_stopping:
                    val_score = self._score(X_val, y_val, sample_weight=sw_val)
                    self.validation_scores_.append(val_score)
                    if self.verbose:
                        print("Validation score: %f" % self.validation_scores_[-1])
                    if val_score < self.best_validation_score_ + self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if val_score > self.best_validation_score_:
                        self.best_validation_score_ = val_score
                        best_theta[...] = theta
                else:
                    if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                        self._no_improvement_count += 1
                    else:
                        self._no_improvement_count = 0
                    if self.loss_curve_[-1] < self.best_loss_:
                        self.best_loss_ = self.loss_curve_[-1]
                opt.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if opt.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                                  "optimization hasn't converged yet." % self.max_iter,
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            self._best_theta = best_theta
            theta[...] = best_theta

    # -- prediction ------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = _validate_data(self, X, reset=False, accept_sparse=["csr", "csc"],
                               dtype=(np.float64, np.float32))
            X = _dense_input(X)
        dtype = self.coefs_[0].dtype
        units = [X.shape[1]] + [c.shape[1] for c in self.coefs_]
        net = getattr(self, "_net", None)
        if net is None or not all(np.shares_memory(c, net.theta)
                                  for c in self.coefs_ + self.intercepts_) \
                or net.units != tuple(units) or net.act != _HIDDEN_ACT.get(self.activation) \
                or net.out_kind != self.out_activation_:
            # coefs_ were set or unpickled (or set_params changed the activation):
            # run on a fresh engine over a copy of them
            net = _Net(units, self.activation, self.out_activation_, dtype)
            net.load(self.coefs_, self.intercepts_)
        X = np.ascontiguousarray(X, dtype=net.dtype)
        return net.predict_raw(X, n_threads_for(X.shape[0] * max(units)))

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data (float32 input trains in float32, other input in float64).
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The fitted model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)


_PARAMS_DOC = """
    Parameters
    ----------
{extra}    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'lbfgs' runs scipy.optimize.minimize(method="L-BFGS-B") on the packed
        parameters; 'sgd' is SGD with (Nesterov) momentum; 'adam' is
        scikit-learn's Adam.
    alpha : float, default=0.0001
        L2 penalty: ``alpha * 0.5 * ||W||^2 / n_samples`` added to the loss of each batch.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is min(200, n_samples). Not used by lbfgs.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule of the sgd learning rate: 'invscaling' is
        ``learning_rate_init / (t + 1) ** power_t`` with t the number of samples seen;
        'adaptive' divides it by 5 when n_iter_no_change epochs do not improve by tol.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs for sgd/adam, iterations for lbfgs.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Initial weights, minibatch order and the early-stopping split.
    tol : float, default=1e-4
    verbose : bool, default=False
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out validation_fraction of the data and stop when its score stops improving.
    validation_fraction : float, default=0.1
    beta_1, beta_2 : float, default=0.9, 0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Maximum number of loss evaluations (lbfgs only).

    Attributes
    ----------
    loss_ : float
    best_loss_ : float or None
    loss_curve_ : list of float
    validation_scores_ : list of float or None
    best_validation_score_ : float or None
    t_ : int
        Number of training samples seen by the solver.
    coefs_ : list of ndarray of shape (fan_in, fan_out)
    intercepts_ : list of ndarray of shape (fan_out,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron classifier, a drop-in for ``sklearn.neural_network.MLPClassifier``.

    Minimizes the log-loss (softmax cross-entropy for multiclass targets, logistic
    with one output per label for binary and multilabel targets) with scikit-learn's
    algorithm, on fastnn's fused kernels.
    """ + _PARAMS_DOC.replace("{extra}", "") + """    classes_ : ndarray or list of ndarray

    Examples
    --------
    >>> from fastnn.estimators import MLPClassifier
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]); y = [0, 1, 1, 0]
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.predict(X).shape
    (4,)
    """

    _is_classifier = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, reset=reset, multi_output=True,
                              accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X):
        """Predict class labels (or a label-indicator matrix for multilabel targets).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of the stochastic solver over (X, y).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Every class of the problem; required on the first call.

        Returns
        -------
        self : object
        """
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        first = False
        if classes is not None:
            if getattr(self, "classes_", None) is not None:
                if not np.array_equal(self.classes_, unique_labels(classes)):
                    raise ValueError("`classes=%r` is not the same as on last call to "
                                     "partial_fit, was: %r" % (classes, self.classes_))
            else:
                self.classes_ = unique_labels(classes)
                first = True
        if first:
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``, of shape (n_samples, n_classes)."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """Multi-layer perceptron regressor, a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Minimizes half the squared error (``loss="squared_error"``, identity output) or
    half the Poisson deviance (``loss="poisson"``, exponential output), with
    scikit-learn's algorithm on fastnn's fused kernels.  Single and multi-output.
    """ + _PARAMS_DOC.replace("{extra}", """    loss : {'squared_error', 'poisson'}, default='squared_error'
        Half squared error, or half Poisson deviance (log link, y >= 0).
""") + """
    Examples
    --------
    >>> from fastnn.estimators import MLPRegressor
    >>> import numpy as np
    >>> X = np.linspace(0, 1, 20).reshape(-1, 1); y = 2 * X.ravel()
    >>> reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0).fit(X, y)
    >>> reg.predict(X).shape
    (20,)
    """

    _is_classifier = False

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _check_params(self):
        _param_option(self, "loss", ("squared_error", "poisson"))
        return super()._check_params()

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True,
                              accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs non-negative targets y. Received a minimum "
                             f"of {np.min(y)}")
        return X, y

    def predict(self, X):
        """Predict with the fitted network.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of the stochastic solver over (X, y).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
