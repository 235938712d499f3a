"""Linear estimators, drop-in for scikit-learn's classes of the same name.

``LinearRegression`` (closed form or gradient descent, ridge / elastic net),
``Perceptron``, ``LogisticRegression`` (L-BFGS on the full-batch loss),
``SGDClassifier`` and ``SGDRegressor`` (per-sample SGD).

The per-sample SGD is the Cython kernel ``fastnn._kernels._sgd.sgd_epoch``:
it follows scikit-learn's ``_plain_sgd`` step for step (losses, learning-rate
schedules with the "optimal" t0 heuristic, the wscale trick for L2, the
truncated-gradient L1, ASGD averaging, the xorshift shuffle and the seeds drawn
from ``random_state`` in the same order), so a model fitted here with the same
settings and ``random_state`` as the scikit-learn one has the same
coefficients (bit for bit in the tested cases).  That includes
``early_stopping``, whose validation score is computed as scikit-learn's
callback does (on the raw weight buffer, before the wscale factor).  The epoch
loop and the stopping rules (``tol``, ``n_iter_no_change``, ``early_stopping``,
the "adaptive" rate) run here; multiclass one-vs-rest problems run on threads.

``LogisticRegression`` minimizes scikit-learn's lbfgs objective with the same
scipy options, so its coefficients agree to ~1e-6 or better (float64); the
pointwise loss/gradient is a fastnn kernel between two BLAS products.  Float32
input is computed in float32 (scikit-learn evaluates the float32 problem in
float64), so float32 coefficients agree less tightly.

Input: dense arrays only.  A scipy sparse matrix raises TypeError (convert it
with ``.toarray()``).  float32 input is fitted in float32 and gives float32
coefficients; anything else is converted to float64 as scikit-learn does.

Known, deliberate differences from scikit-learn 1.9:

* ``Perceptron`` stops at the first epoch without a mistake (the classic
  algorithm), so ``n_iter_`` can be up to ``n_iter_no_change`` smaller than
  scikit-learn's; the coefficients are the same (epochs without a mistake do
  not change the model when there is no penalty).  It reports ``n_updates_``.
* Binary ``average`` fits keep the running (non-averaged) intercept between
  ``partial_fit`` calls.
* ``SGDRegressor(loss="absolute_error")`` is fastnn's name for
  ``epsilon_insensitive`` with epsilon 0.
"""
import numbers
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    import scipy.optimize as _sp_optimize
    import scipy.sparse as _sp
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
    from sklearn.utils import check_random_state, compute_class_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without sklearn
    raise ImportError(
        "fastnn.estimators needs scikit-learn (and scipy), which is not installed. "
        'Install the optional extra: pip install "fastnn-cpu[estimators]"'
    ) from exc

from fastnn._engine import codes
from fastnn import _checks as C
from fastnn._engine.config import get_num_threads
from fastnn._kernels import _sgd

__all__ = ["LinearRegression", "LogisticRegression", "Perceptron", "SGDClassifier", "SGDRegressor"]

MAX_INT = np.iinfo(np.int32).max
_S = {name: i for i, name in enumerate(
    ["intercept", "avg_intercept", "wscale", "avg_a", "avg_b", "sq_norm", "l1_norm", "u", "t", "eta",
     "sumloss", "objective", "count", "updates", "nonfinite"])}
assert len(_S) == _sgd.STATE_SIZE

_CLASSIFIER_LOSSES = ("hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron",
                      "squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive")
_REGRESSOR_LOSSES = ("squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive",
                     "absolute_error")
_PENALTIES = ("l2", "l1", "elasticnet", None)
_LEARNING_RATES = ("constant", "optimal", "invscaling", "adaptive", "pa1", "pa2")


# ---------------------------------------------------------------------------
# validation helpers (messages: expected vs received)
# ---------------------------------------------------------------------------

def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")
    return bool(value)


def _check_int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value}")
    return int(value)


def _check_real(value, name, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a real number. Received: {name}={value!r}")
    return C.real(value, name, low=low, high=high, low_open=low_open, high_open=high_open)


def _check_option(value, name, options):
    if not any(value is o or (isinstance(value, str) and value == o) for o in options):
        raise ValueError(f"{name} must be one of {list(options)}. Received: {name}={value!r}")
    return value


def _reject_sparse(X):
    if _sp.issparse(X):
        raise TypeError(
            "fastnn's linear estimators take dense input; received a scipy sparse matrix "
            f"({type(X).__name__}). Convert it with X.toarray() (or use scikit-learn for sparse data)."
        )


def _sample_weight(sample_weight, n, dtype):
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
    if isinstance(sample_weight, numbers.Number):
        return np.full(n, sample_weight, dtype=dtype)
    sw = np.asarray(sample_weight)
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},). Received shape {sw.shape}")
    if sw.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric. Received dtype {sw.dtype}")
    sw = np.ascontiguousarray(sw, dtype=dtype)
    if not np.all(np.isfinite(sw)):
        raise ValueError("sample_weight must be finite. Received NaN or inf")
    if np.any(sw < 0):
        raise ValueError("sample_weight must be non-negative. Received negative weights")
    if n and not np.any(sw > 0):
        raise ValueError("Sample weights must contain at least one non-zero number. Received all zeros")
    return sw


_NO_Y = object()


def _validate_X(est, X, reset, y=_NO_Y, **kw):
    _reject_sparse(X)
    if y is _NO_Y:
        return validate_data(est, X, reset=reset, dtype=[np.float64, np.float32], order="C", **kw)
    return validate_data(est, X, y, reset=reset, dtype=[np.float64, np.float32], order="C", **kw)


# ---------------------------------------------------------------------------
# the per-sample SGD driver (epoch loop and stopping rules around the kernel)
# ---------------------------------------------------------------------------

def _plain_sgd(X, y, sample_weight, coef, intercept, avg_coef, avg_intercept, *, loss, loss_param,
               penalty, alpha, l1_ratio, validation_mask, score_cb, n_iter_no_change, max_iter, tol,
               fit_intercept, verbose, shuffle, seed, weight_pos, weight_neg, learning_rate, eta0,
               power_t, t, average, stop_without_mistake=False):
    """Run up to ``max_iter`` epochs in place on ``coef`` / ``avg_coef`` (1-D, C-contiguous).

    Returns (intercept, avg_intercept, n_iter, n_updates).
    """
    dtype = X.dtype
    loss_code = codes.SGD_LOSSES[loss]
    penalty_code = codes.SGD_PENALTIES[penalty]
    lr_code = codes.SGD_LEARNING_RATES[learning_rate]
    n_features = X.shape[1]
    l1 = penalty in ("l1", "elasticnet")
    q = np.zeros(n_features if l1 else 0, dtype=dtype)
    aw = avg_coef if (average and avg_coef is not None) else np.zeros(0, dtype=dtype)
    eff_l1_ratio = {"l2": 0.0, "l1": 1.0}.get(penalty, l1_ratio)
    optimal_init = 0.0
    if learning_rate == "optimal":
        typw = np.sqrt(1.0 / np.sqrt(alpha))
        initial_eta0 = typw / max(1.0, _sgd.dloss(loss_code, loss_param, 1.0, -typw))
        optimal_init = 1.0 / (initial_eta0 * alpha)
    st = np.zeros(_sgd.STATE_SIZE, dtype=np.float64)
    st[_S["intercept"]] = intercept
    st[_S["avg_intercept"]] = avg_intercept
    st[_S["wscale"]] = 1.0
    st[_S["avg_b"]] = 1.0
    c64 = coef.astype(np.float64)
    st[_S["sq_norm"]] = float(c64 @ c64)
    st[_S["l1_norm"]] = float(np.abs(c64).sum())
    st[_S["t"]] = t
    st[_S["eta"]] = eta0
    index = np.arange(X.shape[0], dtype=np.intc)
    mask = validation_mask.astype(np.uint8) if validation_mask is not None and validation_mask.any() \
        else np.zeros(0, dtype=np.uint8)
    train_count = X.shape[0] - int(mask.sum())
    early = score_cb is not None
    tol = -np.inf if tol is None else tol
    best_obj, best_score, no_improvement = np.inf, -np.inf, 0
    is_hinge = loss in ("hinge", "perceptron")
    n_updates = 0
    epoch = 0
    for epoch in range(max_iter):
        _sgd.sgd_epoch(X, y, sample_weight, mask, index, coef, aw, q, st, loss_code, loss_param, is_hinge,
                       penalty_code, alpha, l1_ratio, fit_intercept, shuffle, seed, weight_pos, weight_neg,
                       lr_code, eta0, power_t, optimal_init, float(average), not early)
        n_updates += int(st[_S["updates"]])
        if st[_S["nonfinite"]]:
            raise ValueError(
                f"Floating-point under-/overflow occurred at epoch #{epoch + 1}. Scaling input data "
                "with StandardScaler or MinMaxScaler might help."
            )
        if early:
            # scikit-learn scores the raw weight buffer (without wscale): kept for identical results
            score = score_cb(coef, st[_S["intercept"]])
            if tol > -np.inf and score < best_score + tol:
                no_improvement += 1
            else:
                no_improvement = 0
            best_score = max(best_score, score)
        else:
            obj = st[_S["objective"]] / train_count
            if verbose:
                print(f"-- Epoch {epoch + 1}: avg. loss {st[_S['sumloss']] / train_count:.6f}, "
                      f"objective {obj:.6f}, bias {st[_S['intercept']]:.6f}")
            if tol > -np.inf and obj > best_obj - tol:
                no_improvement += 1
            else:
                no_improvement = 0
            best_obj = min(best_obj, obj)
        if stop_without_mistake and st[_S["updates"]] == 0:
            break
        if no_improvement >= n_iter_no_change:
            if learning_rate == "adaptive" and st[_S["eta"]] > 1e-6:
                st[_S["eta"]] /= 5
                no_improvement = 0
            else:
                break
    _sgd.sgd_finalize(coef, aw, st)
    return st[_S["intercept"]], st[_S["avg_intercept"]], epoch + 1, n_updates


class _BaseSGD(BaseEstimator):
    """Shared hyperparameter checks and fitting machinery of the SGD estimators."""

    _losses = _CLASSIFIER_LOSSES

    def _validate_params(self, for_partial_fit=False):
        _check_option(self.loss, "loss", self._losses)
        _check_option(self.penalty, "penalty", _PENALTIES)
        _check_real(self.alpha, "alpha", low=0.0)
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'. Received: l1_ratio=None")
        _check_real(self.l1_ratio, "l1_ratio", low=0.0, high=1.0, allow_none=True)
        _check_bool(self.fit_intercept, "fit_intercept")
        _check_int(self.max_iter, "max_iter", 1)
        _check_real(self.tol, "tol", low=0.0, allow_none=True)
        _check_bool(self.shuffle, "shuffle")
        if not isinstance(self.verbose, (bool, np.bool_)):
            _check_int(self.verbose, "verbose", 0)
        _check_real(self.epsilon, "epsilon", low=0.0)
        _check_option(self.learning_rate, "learning_rate", _LEARNING_RATES)
        _check_real(self.eta0, "eta0", low=0.0, low_open=True)
        _check_real(self.power_t, "power_t")
        _check_bool(self.early_stopping, "early_stopping")
        _check_real(self.validation_fraction, "validation_fraction", low=0.0, high=1.0, low_open=True,
                    high_open=True)
        _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        _check_bool(self.warm_start, "warm_start")
        n_jobs = getattr(self, "n_jobs", None)
        if n_jobs is not None and (isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral)
                                   or n_jobs == 0):
            raise ValueError(f"n_jobs must be None or a non-zero integer (-1: all cores). Received: n_jobs={n_jobs!r}")
        avg = self.average
        if not isinstance(avg, (bool, np.bool_)):
            _check_int(avg, "average", 1)
        if self.early_stopping and for_partial_fit:
            raise ValueError("early_stopping must be False with partial_fit. Received: early_stopping=True")
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError("alpha must be > 0 when learning_rate='optimal' (it sets the step size). "
                             "Received: alpha=0")
        if self.learning_rate in ("pa1", "pa2"):
            need = "hinge" if isinstance(self, ClassifierMixin) else "epsilon_insensitive"
            if self.loss != need:
                raise ValueError(f"learning_rate={self.learning_rate!r} only works with loss={need!r}. "
                                 f"Received: loss={self.loss!r}")

    def _loss_args(self):
        if self.loss == "absolute_error":
            return "epsilon_insensitive", 0.0
        if self.loss in ("huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
            return self.loss, float(self.epsilon)
        return self.loss, {"hinge": 1.0, "squared_hinge": 1.0, "perceptron": 0.0}.get(self.loss, 0.0)

    def _sgd_kwargs(self, learning_rate, max_iter):
        loss, param = self._loss_args()
        return dict(loss=loss, loss_param=param, penalty=self.penalty, alpha=float(self.alpha),
                    l1_ratio=0.0 if self.l1_ratio is None else float(self.l1_ratio),
                    n_iter_no_change=int(self.n_iter_no_change), max_iter=max_iter, tol=self.tol,
                    fit_intercept=bool(self.fit_intercept), verbose=int(self.verbose),
                    shuffle=bool(self.shuffle), learning_rate=learning_rate, eta0=float(self.eta0),
                    power_t=float(self.power_t), average=int(self.average),
                    stop_without_mistake=isinstance(self, Perceptron))

    def _validation_split(self, y, sample_weight, classifier):
        n = y.shape[0]
        mask = np.zeros(n, dtype=bool)
        if not self.early_stopping:
            return mask
        splitter = (StratifiedShuffleSplit if classifier else ShuffleSplit)(
            test_size=self.validation_fraction, random_state=self.random_state)
        idx_train, idx_val = next(splitter.split(np.zeros((n, 1)), y))
        if idx_train.shape[0] == 0 or idx_val.shape[0] == 0:
            raise ValueError(
                f"Splitting {n} samples into a train set and a validation set with validation_fraction="
                f"{self.validation_fraction} led to an empty set; increase the number of samples, change "
                "validation_fraction or disable early_stopping."
            )
        if not np.any(sample_weight[idx_val] > 0):
            raise ValueError("The sample weights of the validation set are all zero; use another random_state.")
        mask[idx_val] = True
        return mask

    def _warn_max_iter(self):
        if self.tol is not None and self.n_iter_ == self.max_iter:
            warnings.warn("Maximum number of iteration reached before convergence. Consider increasing "
                          "max_iter to improve the fit.", ConvergenceWarning)

    def _decision(self, X):
        check_is_fitted(self, "coef_")
        X = _validate_X(self, X, reset=False)
        return X @ self.coef_.T.astype(X.dtype, copy=False) + self.intercept_.astype(X.dtype, copy=False)


def _score_classifier(Xv, yv, swv):
    # as scikit-learn's _ValidationScoreCallback: classes (-1, 1) against the labels in the
    # loss's own encoding ({0, 1} for log_loss)
    def cb(coef, intercept):
        pred = np.where(Xv @ coef + intercept > 0, 1.0, -1.0)
        return float(np.average(pred == yv, weights=swv))
    return cb


def _score_regressor(Xv, yv, swv):
    def cb(coef, intercept):
        pred = Xv @ coef + intercept
        yv64 = yv.astype(np.float64)
        ss_res = float(np.sum(swv * (yv64 - pred) ** 2))
        ss_tot = float(np.sum(swv * (yv64 - np.average(yv64, weights=swv)) ** 2))
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    return cb


# ---------------------------------------------------------------------------
# SGDClassifier / Perceptron
# ---------------------------------------------------------------------------

class _BaseSGDClassifier(ClassifierMixin, _BaseSGD):

    def _fit_binary_problem(self, X, y, i, sample_weight, validation_mask, random_state, learning_rate,
                            max_iter, weight_pos, weight_neg):
        """Fit class ``i`` against the rest (scikit-learn's fit_binary, same seed draws)."""
        label_encode = self.loss == "log_loss"
        y_i = np.ones(y.shape, dtype=X.dtype)
        y_i[y != self.classes_[i]] = 0.0 if label_encode else -1.0
        binary = len(self.classes_) == 2
        row = 0 if binary else i
        coef = self._standard_coef[row]
        intercept = self._standard_intercept[row]
        avg_coef = self._average_coef[row] if self.average else None
        avg_intercept = self._average_intercept[row] if self.average else 0.0
        rs = check_random_state(random_state)
        rs.randint(1, MAX_INT)  # scikit-learn's make_dataset draws its sampling seed first
        if validation_mask is None:
            validation_mask = self._validation_split(y_i, sample_weight, True)
        cb = None
        if self.early_stopping:
            m = validation_mask
            cb = _score_classifier(X[m], y_i[m], sample_weight[m])
        seed = int(rs.randint(MAX_INT))
        # work on copies: a fit that fails (overflow) leaves the model as it was
        w = np.array(coef, order="C", copy=True)
        aw = None if avg_coef is None else np.array(avg_coef, order="C", copy=True)
        b, ab, n_iter, n_upd = _plain_sgd(
            X, y_i, sample_weight, w, intercept, aw, avg_intercept, validation_mask=validation_mask,
            score_cb=cb, seed=seed, weight_pos=weight_pos, weight_neg=weight_neg, t=self.t_,
            **self._sgd_kwargs(learning_rate, max_iter))
        return i, w, b, aw, ab, n_iter, n_upd

    def _allocate(self, n_rows, n_features, dtype, coef_init, intercept_init):
        if coef_init is not None:
            coef = np.array(coef_init, dtype=dtype, order="C", copy=True).reshape(n_rows, -1) \
                if np.size(coef_init) == n_rows * n_features else None
            if coef is None:
                raise ValueError(f"coef_init must have shape ({n_rows}, {n_features}). Received shape "
                                 f"{np.shape(coef_init)}")
        else:
            coef = np.zeros((n_rows, n_features), dtype=dtype)
        if intercept_init is not None:
            if np.size(intercept_init) != n_rows:
                raise ValueError(f"intercept_init must have shape ({n_rows},). Received shape "
                                 f"{np.shape(intercept_init)}")
            intercept = np.array(intercept_init, dtype=dtype, copy=True).reshape(n_rows)
        else:
            intercept = np.zeros(n_rows, dtype=dtype)
        self._standard_coef = coef
        self._standard_intercept = intercept
        if self.average:
            self._average_coef = np.zeros_like(coef)
            self._average_intercept = np.zeros_like(intercept)

    def _partial_fit(self, X, y, classes, sample_weight, max_iter, coef_init=None, intercept_init=None,
                     reset=False):
        first_call = reset or not hasattr(self, "classes_")
        X, y = _validate_X(self, X, reset=first_call, y=y)
        check_classification_targets(y)
        if first_call:
            if reset:
                classes = y
            elif classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to partial_fit "
                             f"(classes_={self.classes_!r})")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels {unknown.tolist()} that are not in classes "
                             f"{self.classes_.tolist()}")
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(f"The number of classes has to be greater than one; got {n_classes} class")
        n_samples, n_features = X.shape
        cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        sw = _sample_weight(sample_weight, n_samples, X.dtype)
        n_rows = 1 if n_classes == 2 else n_classes
        if getattr(self, "_standard_coef", None) is None or coef_init is not None:
            self._allocate(n_rows, n_features, X.dtype, coef_init, intercept_init)
        elif self._standard_coef.shape[-1] != n_features:
            raise ValueError(f"X has {n_features} features, but the model was fitted with "
                             f"{self._standard_coef.shape[-1]} features")
        if self._standard_coef.dtype != X.dtype:
            raise TypeError(f"X has dtype {X.dtype} but the model was fitted in {self._standard_coef.dtype}; "
                            f"pass X.astype(np.{self._standard_coef.dtype})")
        if not hasattr(self, "t_"):
            self.t_ = 1.0
        lr = self.learning_rate
        if n_classes == 2:
            _, w, b, aw, ab, n_iter, n_upd = self._fit_binary_problem(
                X, y, 1, sw, None, self.random_state, lr, max_iter, cw[1], cw[0])
            self._standard_coef[0] = w
            self._standard_intercept[0] = b
            if self.average:
                self._average_coef[0] = aw
                self._average_intercept[0] = ab
            n_iter_ = n_iter
            n_updates = n_upd
        else:
            mask = self._validation_split(y, sw, True)
            rs = check_random_state(self.random_state)
            seeds = rs.randint(MAX_INT, size=n_classes)
            jobs = [(X, y, i, sw, mask, int(s), lr, max_iter, cw[i], 1.0) for i, s in enumerate(seeds)]
            # n_jobs=None: fastnn's thread setting (results do not depend on it)
            n_jobs = self.n_jobs if self.n_jobs is not None else get_num_threads()
            n_jobs = min(n_classes, n_jobs if n_jobs > 0 else max(1, os.cpu_count() or 1))
            if n_jobs > 1:  # the kernel releases the GIL: one-vs-rest problems run on threads
                with ThreadPoolExecutor(n_jobs) as pool:
                    results = list(pool.map(lambda a: self._fit_binary_problem(*a), jobs))
            else:
                results = [self._fit_binary_problem(*a) for a in jobs]
            n_iter_, n_updates = 0, 0
            for i, w, b, aw, ab, n_iter, n_upd in results:
                self._standard_coef[i] = w
                self._standard_intercept[i] = b
                if self.average:
                    self._average_coef[i] = aw
                    self._average_intercept[i] = ab
                n_iter_ = max(n_iter_, n_iter)
                n_updates += n_upd
        self.t_ += n_iter_ * n_samples
        self.n_iter_ = n_iter_
        self._n_updates = n_updates
        if self.average and self.average <= self.t_ - 1:
            self.coef_ = self._average_coef.copy()
            self.intercept_ = self._average_intercept.copy()
        else:
            self.coef_ = self._standard_coef.copy()
            self.intercept_ = self._standard_intercept.copy()
        return self

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the linear model with per-sample stochastic gradient descent.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; float32 stays float32, other dtypes become float64).
        y : array-like of shape (n_samples,)
            Class labels.
        coef_init : ndarray of shape (n_classes, n_features), default=None
            Initial coefficients (warm start).
        intercept_init : ndarray of shape (n_classes,), default=None
            Initial intercept.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights (multiplied by ``class_weight``).

        Returns
        -------
        self
        """
        self._validate_params()
        _reject_sparse(X)
        if self.warm_start and hasattr(self, "coef_"):
            if coef_init is None:
                coef_init = self._standard_coef
            if intercept_init is None:
                intercept_init = self._standard_intercept
        else:
            self._standard_coef = None
        self.t_ = 1.0
        self._partial_fit(X, y, None, sample_weight, int(self.max_iter), coef_init, intercept_init,
                          reset=True)
        self._warn_max_iter()
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch of SGD on the given samples (online / out-of-core learning).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All classes; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        if not hasattr(self, "classes_"):
            self._validate_params(for_partial_fit=True)
            if self.class_weight == "balanced":
                raise ValueError("class_weight='balanced' is not supported by partial_fit; compute the "
                                 "weights with sklearn.utils.compute_class_weight and pass a dict.")
        return self._partial_fit(X, y, classes, sample_weight, 1)

    def decision_function(self, X):
        """Signed distance to the hyperplane: ndarray of shape (n_samples,) for two classes,
        else (n_samples, n_classes)."""
        scores = self._decision(X)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Predicted class labels, ndarray of shape (n_samples,)."""
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class SGDClassifier(_BaseSGDClassifier):
    """Linear classifiers (SVM, logistic regression, ...) trained by per-sample SGD.

    Drop-in for :class:`sklearn.linear_model.SGDClassifier` (same parameters, attributes and
    results at equal settings and ``random_state``); multiclass is one-vs-rest.  The epoch loop is
    fastnn's Cython kernel (dense input only).

    Parameters
    ----------
    loss : {'hinge', 'log_loss', 'modified_huber', 'squared_hinge', 'perceptron', 'squared_error',
            'huber', 'epsilon_insensitive', 'squared_epsilon_insensitive'}, default='hinge'
    penalty : {'l2', 'l1', 'elasticnet', None}, default='l2'
    alpha : float, default=1e-4
        Regularization strength (also sets the "optimal" learning rate).
    l1_ratio : float, default=0.15
        Elastic-net mixing (0: L2, 1: L1); used with penalty='elasticnet'.
    fit_intercept, max_iter, tol, shuffle, verbose, epsilon, n_jobs, random_state, learning_rate,
    eta0, power_t, early_stopping, validation_fraction, n_iter_no_change, class_weight,
    warm_start, average :
        As in scikit-learn.  The one-vs-rest problems run on ``n_jobs`` threads (the kernel
        releases the GIL); ``n_jobs=None`` means fastnn's thread setting
        (``fastnn.set_num_threads`` / ``fastnn.threads``).  The model does not depend on it.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
        Epochs run (the maximum over the one-vs-rest problems).
    t_ : float
        Number of weight updates performed, plus one.
    n_features_in_ : int
    """

    def __init__(self, loss="hinge", *, penalty="l2", alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, verbose=0, epsilon=0.1, n_jobs=None,
                 random_state=None, learning_rate="optimal", eta0=0.01, power_t=0.5, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, class_weight=None, warm_start=False,
                 average=False):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average

    def _check_proba(self):
        if self.loss not in ("log_loss", "modified_huber"):
            raise AttributeError(f"probability estimates are not available for loss={self.loss!r} "
                                 "(use loss='log_loss' or 'modified_huber')")
        return True

    @property
    def predict_proba(self):
        """Class probabilities, ndarray of shape (n_samples, n_classes) (log_loss, modified_huber)."""
        self._check_proba()
        return self._predict_proba

    @property
    def predict_log_proba(self):
        """Log of predict_proba."""
        self._check_proba()
        return lambda X: np.log(self._predict_proba(X))

    def _predict_proba(self, X):
        scores = self.decision_function(X)
        binary = scores.ndim == 1
        if self.loss == "log_loss":
            if binary:
                p = 1.0 / (1.0 + np.exp(-scores.astype(np.float64)))
                return np.column_stack([1.0 - p, p])
            p = 1.0 / (1.0 + np.exp(-scores.astype(np.float64)))
            s = p.sum(axis=1, keepdims=True)
            s[s == 0] = 1.0
            return p / s
        prob = (np.clip(scores.astype(np.float64), -1, 1) + 1.0) / 2.0
        if binary:
            return np.column_stack([1.0 - prob, prob])
        s = prob.sum(axis=1)
        zero = s == 0
        prob[zero, :] = 1.0
        s[zero] = prob.shape[1]
        return prob / s[:, None]


class Perceptron(_BaseSGDClassifier):
    """The perceptron: ``w += eta0 * y_i x_i`` and ``b += eta0 * y_i`` on each mistake.

    Drop-in for :class:`sklearn.linear_model.Perceptron` (an SGDClassifier with loss='perceptron',
    learning_rate='constant').  Training stops at the first epoch without a mistake (the classic
    algorithm; the coefficients equal scikit-learn's, ``n_iter_`` may be smaller), by scikit-learn's
    ``tol`` rule, or at ``max_iter``.  On linearly separable data with margin rho, radius r and an
    optimal separating hyperplane with unit normal and bias b*, the number of updates is at most
    ``(r**2 + 1) * (b***2 + 1) / rho**2`` (Novikoff on the augmented vectors).

    Parameters
    ----------
    penalty : {'l2', 'l1', 'elasticnet', None}, default=None
    alpha, l1_ratio, fit_intercept, max_iter, tol, shuffle, verbose, eta0, n_jobs, random_state,
    early_stopping, validation_fraction, n_iter_no_change, class_weight, warm_start :
        As in scikit-learn (``eta0=1.0``, ``random_state=0`` by default).

    Attributes
    ----------
    coef_, intercept_, classes_, n_iter_, t_, n_features_in_ :
        As in SGDClassifier.
    n_updates_ : int
        Number of updates (mistakes) made in the last fit / partial_fit call, summed over the
        one-vs-rest problems.
    """

    loss = "perceptron"
    learning_rate = "constant"
    epsilon = 0.1
    power_t = 0.5
    average = False

    def __init__(self, *, penalty=None, alpha=0.0001, l1_ratio=0.15, fit_intercept=True, max_iter=1000,
                 tol=1e-3, shuffle=True, verbose=0, eta0=1.0, n_jobs=None, random_state=0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, class_weight=None,
                 warm_start=False):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.eta0 = eta0
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.warm_start = warm_start

    @property
    def n_updates_(self):
        check_is_fitted(self, "coef_")
        return self._n_updates


# ---------------------------------------------------------------------------
# SGDRegressor
# ---------------------------------------------------------------------------

class SGDRegressor(RegressorMixin, _BaseSGD):
    """Linear regression trained by per-sample SGD (squared error, Huber, epsilon-insensitive).

    Drop-in for :class:`sklearn.linear_model.SGDRegressor` (same parameters, attributes and
    results at equal settings and ``random_state``).  ``loss='absolute_error'`` (fastnn) is
    epsilon-insensitive with epsilon 0.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
    n_iter_ : int
    t_ : float
    n_features_in_ : int
    """

    _losses = _REGRESSOR_LOSSES

    def __init__(self, loss="squared_error", *, penalty="l2", alpha=0.0001, l1_ratio=0.15,
                 fit_intercept=True, max_iter=1000, tol=1e-3, shuffle=True, verbose=0, epsilon=0.1,
                 random_state=None, learning_rate="invscaling", eta0=0.01, power_t=0.25,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5, warm_start=False,
                 average=False):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average

    def _partial_fit(self, X, y, sample_weight, max_iter, coef_init=None, intercept_init=None, reset=False):
        first_call = reset or not hasattr(self, "coef_")
        X, y = _validate_X(self, X, reset=first_call, y=y, y_numeric=True)
        y = np.ascontiguousarray(y, dtype=X.dtype)
        n_samples, n_features = X.shape
        sw = _sample_weight(sample_weight, n_samples, X.dtype)
        if getattr(self, "_standard_coef", None) is None or coef_init is not None:
            if coef_init is not None:
                if np.size(coef_init) != n_features:
                    raise ValueError(f"coef_init must have shape ({n_features},). Received shape "
                                     f"{np.shape(coef_init)}")
                self._standard_coef = np.array(coef_init, dtype=X.dtype, copy=True).reshape(n_features)
            else:
                self._standard_coef = np.zeros(n_features, dtype=X.dtype)
            if intercept_init is not None:
                if np.size(intercept_init) != 1:
                    raise ValueError(f"intercept_init must have shape (1,). Received shape "
                                     f"{np.shape(intercept_init)}")
                self._standard_intercept = np.array(intercept_init, dtype=X.dtype).reshape(1)
            else:
                self._standard_intercept = np.zeros(1, dtype=X.dtype)
            self._average_coef = np.zeros(n_features, dtype=X.dtype)
            self._average_intercept = np.zeros(1, dtype=X.dtype)
        elif self._standard_coef.shape[-1] != n_features:
            raise ValueError(f"X has {n_features} features, but the model was fitted with "
                             f"{self._standard_coef.shape[-1]} features")
        if self._standard_coef.dtype != X.dtype:
            raise TypeError(f"X has dtype {X.dtype} but the model was fitted in {self._standard_coef.dtype}; "
                            f"pass X.astype(np.{self._standard_coef.dtype})")
        if not hasattr(self, "t_"):
            self.t_ = 1.0
        mask = self._validation_split(y, sw, False)
        cb = None
        if self.early_stopping:
            cb = _score_regressor(X[mask], y[mask], sw[mask])
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(0, MAX_INT))
        rs.randint(1, MAX_INT)  # make_dataset's draw, kept for identical random streams
        w = self._standard_coef.copy()  # copies: a failed fit leaves the model as it was
        aw = self._average_coef.copy() if self.average else None
        b, ab, n_iter, _ = _plain_sgd(
            X, y, sw, w, float(self._standard_intercept[0]), aw, float(self._average_intercept[0]),
            validation_mask=mask, score_cb=cb, seed=seed, weight_pos=1.0, weight_neg=1.0, t=self.t_,
            **self._sgd_kwargs(self.learning_rate, max_iter))
        self._standard_coef = w
        if aw is not None:
            self._average_coef = aw
        self._standard_intercept[0] = b
        self._average_intercept[0] = ab
        self.n_iter_ = n_iter
        self.t_ += n_iter * n_samples
        if self.average and self.average <= self.t_ - 1.0:
            self.coef_ = self._average_coef.copy()
            self.intercept_ = self._average_intercept.copy()
        else:
            self.coef_ = self._standard_coef.copy()
            self.intercept_ = self._standard_intercept.copy()
        return self

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the linear model with per-sample SGD.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        coef_init : ndarray of shape (n_features,), default=None
        intercept_init : ndarray of shape (1,), default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._validate_params()
        _reject_sparse(X)
        if self.warm_start and hasattr(self, "coef_"):
            if coef_init is None:
                coef_init = self._standard_coef
            if intercept_init is None:
                intercept_init = self._standard_intercept
        else:
            self._standard_coef = None
        self.t_ = 1.0
        self._partial_fit(X, y, sample_weight, int(self.max_iter), coef_init, intercept_init, reset=True)
        self._warn_max_iter()
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch of SGD on the given samples."""
        if not hasattr(self, "coef_"):
            self._validate_params(for_partial_fit=True)
        return self._partial_fit(X, y, sample_weight, 1)

    def predict(self, X):
        """Predicted targets, ndarray of shape (n_samples,)."""
        return self._decision(X).ravel()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


# ---------------------------------------------------------------------------
# LogisticRegression (L-BFGS on the full-batch objective)
# ---------------------------------------------------------------------------

class LogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-regularized logistic regression fitted by L-BFGS (scipy) on the full-batch loss.

    Drop-in for :class:`sklearn.linear_model.LogisticRegression` with its default solver: the same
    objective ``mean_w(loss) + ||coef||^2 / (2 C sum(sample_weight))`` (binomial for two classes,
    multinomial otherwise; the intercept is not penalized), the same L-BFGS-B options
    (``maxiter=max_iter``, ``gtol=tol``, ``maxls=50``, ``ftol=64 eps``) and a zero start, so the
    coefficients agree closely.  The loss and gradient are one fused fastnn pass around two BLAS
    products per evaluation; float32 input is computed in float32.

    Parameters
    ----------
    penalty : {'l2', None, 'deprecated'}, default='deprecated'
        'deprecated' means L2 (as in scikit-learn 1.8+); None (or C=inf) means no penalty.
    C : float, default=1.0
        Inverse regularization strength.
    l1_ratio : float, default=0.0
        Only 0 is supported (the L-BFGS solver is L2-only).
    dual, intercept_scaling, random_state, n_jobs :
        Accepted for compatibility; ``dual`` must be False.
    tol : float, default=1e-4
    fit_intercept : bool, default=True
    class_weight : dict or 'balanced', default=None
    solver : {'lbfgs'}, default='lbfgs'
    max_iter : int, default=100
    verbose : int, default=0
    warm_start : bool, default=False

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
    n_features_in_ : int
    """

    def __init__(self, penalty="deprecated", *, C=1.0, l1_ratio=0.0, dual=False, tol=1e-4, fit_intercept=True,
                 intercept_scaling=1, class_weight=None, random_state=None, solver="lbfgs", max_iter=100,
                 verbose=0, warm_start=False, n_jobs=None):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs

    def _check_params(self):
        _check_option(self.penalty, "penalty", ("deprecated", "l2", None))
        if self.C != np.inf:
            _check_real(self.C, "C", low=0.0, low_open=True)
        _check_real(self.l1_ratio, "l1_ratio", low=0.0, high=1.0)
        if self.l1_ratio != 0:
            raise ValueError(f"l1_ratio > 0 needs an L1-capable solver; fastnn's LogisticRegression uses "
                             f"lbfgs (L2 only). Received: l1_ratio={self.l1_ratio}")
        if self.dual:
            raise ValueError("dual=True is not supported (lbfgs solves the primal). Received: dual=True")
        _check_option(self.solver, "solver", ("lbfgs",))
        _check_real(self.tol, "tol", low=0.0)
        _check_int(self.max_iter, "max_iter", 0)
        _check_bool(self.fit_intercept, "fit_intercept")
        _check_bool(self.warm_start, "warm_start")

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._check_params()
        X, y = _validate_X(self, X, reset=True, y=y)
        check_classification_targets(y)
        dtype = X.dtype
        classes, y_enc = np.unique(y, return_inverse=True)
        n_classes = len(classes)
        if n_classes < 2:
            raise ValueError(f"This solver needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {classes[0]!r}")
        n, d = X.shape
        sw = _sample_weight(sample_weight, n, np.float64)
        if self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=classes, y=y)
            sw = sw * cw[y_enc]
        sw_sum = float(sw.sum())
        if sw_sum <= 0:
            raise ValueError("sample_weight must have a positive sum. Received all-zero weights")
        no_penalty = self.penalty is None or self.C == np.inf
        l2 = 0.0 if no_penalty else 1.0 / (float(self.C) * sw_sum)
        swn = (sw / sw_sum).astype(dtype)  # objective is the weighted mean loss
        fi = bool(self.fit_intercept)
        binary = n_classes == 2
        k = 1 if binary else n_classes
        size = k * (d + int(fi))
        w0 = np.zeros(size, dtype=np.float64)
        prev = getattr(self, "coef_", None)
        if self.warm_start and prev is not None and prev.shape == (k, d):
            W = w0.reshape(k, d + int(fi))
            W[:, :d] = prev
            if fi:
                W[:, d] = self.intercept_
        if binary:
            yb = (y_enc == 1).astype(dtype)
            raw = np.empty(n, dtype=dtype)
            g = np.empty(n, dtype=dtype)

            def fun(wflat):
                w = wflat[:d].astype(dtype)
                b = wflat[d] if fi else 0.0
                np.matmul(X, w, out=raw)
                if fi:
                    np.add(raw, dtype.type(b), out=raw)
                loss = _sgd.binomial_loss_grad(raw, yb, swn, g)
                grad = np.empty(size, dtype=np.float64)
                grad[:d] = X.T @ g
                if fi:
                    grad[d] = g.sum(dtype=np.float64)
                wd = wflat[:d]
                loss += 0.5 * l2 * float(wd @ wd)
                grad[:d] += l2 * wd
                return loss, grad
        else:
            yi = np.ascontiguousarray(y_enc, dtype=np.intp)
            raw = np.empty((n, k), dtype=dtype)
            G = np.empty((n, k), dtype=dtype)

            def fun(wflat):
                W = wflat.reshape(k, d + int(fi))
                Wd = W[:, :d]
                np.matmul(X, Wd.T.astype(dtype), out=raw)
                if fi:
                    np.add(raw, W[:, d].astype(dtype), out=raw)
                loss = _sgd.multinomial_loss_grad(raw, yi, swn, G)
                grad = np.empty((k, d + int(fi)), dtype=np.float64)
                grad[:, :d] = G.T @ X
                if fi:
                    grad[:, d] = G.sum(axis=0, dtype=np.float64)
                loss += 0.5 * l2 * float(np.sum(Wd * Wd))
                grad[:, :d] += l2 * Wd
                return loss, grad.ravel()

        if self.max_iter == 0:
            wopt, n_iter = w0, 0
        else:
            res = _sp_optimize.minimize(
                fun, w0, method="L-BFGS-B", jac=True,
                options={"maxiter": int(self.max_iter), "maxls": 50, "gtol": float(self.tol),
                         "ftol": 64 * np.finfo(float).eps})
            if res.status != 0:
                warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}): "
                              f"{res.message}. Increase max_iter or scale the data.", ConvergenceWarning)
            wopt, n_iter = res.x, min(int(res.nit), int(self.max_iter))
        W = wopt.reshape(k, d + int(fi))
        self.classes_ = classes
        self.coef_ = np.ascontiguousarray(W[:, :d], dtype=dtype)
        self.intercept_ = W[:, d].astype(dtype) if fi else np.zeros(k, dtype=dtype)
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        return self

    def decision_function(self, X):
        """Logits: ndarray of shape (n_samples,) for two classes, else (n_samples, n_classes)."""
        check_is_fitted(self, "coef_")
        X = _validate_X(self, X, reset=False)
        scores = X @ self.coef_.T.astype(X.dtype, copy=False) + self.intercept_.astype(X.dtype, copy=False)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Predicted class labels, ndarray of shape (n_samples,)."""
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    def predict_proba(self, X):
        """Class probabilities, ndarray of shape (n_samples, n_classes) (sigmoid / softmax)."""
        s = self.decision_function(X).astype(np.float64)
        if s.ndim == 1:
            p = 0.5 * (1.0 + np.tanh(0.5 * s))
            return np.column_stack([1.0 - p, p])
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Log of predict_proba."""
        s = self.decision_function(X).astype(np.float64)
        if s.ndim == 1:
            return np.column_stack([-np.logaddexp(0, s), -np.logaddexp(0, -s)])
        s = s - s.max(axis=1, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=1, keepdims=True))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


# ---------------------------------------------------------------------------
# LinearRegression (closed form / gradient descent; ridge and elastic net)
# ---------------------------------------------------------------------------

class LinearRegression(RegressorMixin, BaseEstimator):
    """Least squares with optional ridge / elastic-net penalty.

    Minimizes ``0.5 ||y - X w - b||^2 + alpha * (0.5 (1 - l1_ratio) ||w||^2 + l1_ratio ||w||_1)``
    (sums over samples, weighted by ``sample_weight``; the intercept is not penalized), so
    ``alpha=0`` is :class:`sklearn.linear_model.LinearRegression` and ``l1_ratio=0`` is
    :class:`sklearn.linear_model.Ridge` with the same ``alpha``.

    Parameters
    ----------
    solver : {'closed_form', 'gd'}, default='closed_form'
        'closed_form': a least-squares solve (``numpy.linalg.lstsq``, SVD based) on the centered
        data, ridge through the augmented system ``[X; sqrt(alpha) I] w = [y; 0]``; the intercept
        is recovered from the means.  'gd': gradient descent on the mean objective, full batch
        (``batch_size=None``, step 1/L from the largest singular value) or minibatch SGD
        (``batch_size`` rows per step), with a proximal (soft-threshold) step for the L1 part.
    alpha : float, default=0.0
    l1_ratio : float, default=0.0
        > 0 needs solver='gd'.
    fit_intercept : bool, default=True
    copy_X : bool, default=True
        Accepted for compatibility (X is never modified).
    max_iter : int, default=1000
        Epochs for solver='gd'.
    tol : float, default=1e-6
        solver='gd' stops when an epoch changes the coefficients by less than tol (relative).
    learning_rate : 'auto' or float, default='auto'
        Step size for 'gd' ('auto': 1/L for full batch, 0.1/L per minibatch).
    batch_size : int or None, default=None
    random_state : int, RandomState or None, default=None
        Shuffling for minibatch SGD.
    n_jobs : ignored

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    rank_, singular_ : rank and singular values of the centered X (closed form, alpha=0)
    n_iter_ : int
        Epochs run by solver='gd' (1 for the closed form: one solve).
    n_features_in_ : int
    """

    def __init__(self, *, solver="closed_form", alpha=0.0, l1_ratio=0.0, fit_intercept=True, copy_X=True,
                 max_iter=1000, tol=1e-6, learning_rate="auto", batch_size=None, random_state=None,
                 n_jobs=None):
        self.solver = solver
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self):
        _check_option(self.solver, "solver", ("closed_form", "gd"))
        _check_real(self.alpha, "alpha", low=0.0)
        _check_real(self.l1_ratio, "l1_ratio", low=0.0, high=1.0)
        if self.l1_ratio > 0 and self.alpha > 0 and self.solver != "gd":
            raise ValueError(f"l1_ratio > 0 (an L1 penalty) has no closed form: use solver='gd'. "
                             f"Received: solver={self.solver!r}, l1_ratio={self.l1_ratio}")
        _check_bool(self.fit_intercept, "fit_intercept")
        _check_int(self.max_iter, "max_iter", 1)
        _check_real(self.tol, "tol", low=0.0)
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            _check_real(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        if self.batch_size is not None:
            _check_int(self.batch_size, "batch_size", 1)

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._check_params()
        X, y = _validate_X(self, X, reset=True, y=y, y_numeric=True, multi_output=True)
        dtype = X.dtype
        y = np.asarray(y, dtype=dtype)
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        n, d = X.shape
        sw = _sample_weight(sample_weight, n, np.float64)
        if self.fit_intercept:
            x_mean = np.average(X, axis=0, weights=sw).astype(dtype)
            y_mean = np.average(y2, axis=0, weights=sw).astype(dtype)
        else:
            x_mean = np.zeros(d, dtype=dtype)
            y_mean = np.zeros(y2.shape[1], dtype=dtype)
        Xc = X - x_mean
        yc = y2 - y_mean
        if sample_weight is not None:
            s = np.sqrt(sw).astype(dtype)[:, None]
            Xc = Xc * s
            yc = yc * s
        alpha = float(self.alpha)
        l1_ratio = float(self.l1_ratio) if alpha > 0 else 0.0
        self.n_iter_ = 1
        if self.solver == "closed_form":
            if alpha == 0:
                coef, _, self.rank_, self.singular_ = np.linalg.lstsq(Xc, yc, rcond=None)
            else:
                A = np.vstack([Xc, dtype.type(np.sqrt(alpha)) * np.eye(d, dtype=dtype)])
                B = np.vstack([yc, np.zeros((d, yc.shape[1]), dtype=dtype)])
                coef, _, self.rank_, self.singular_ = np.linalg.lstsq(A, B, rcond=None)
            coef = coef.T  # (n_targets, n_features)
        else:
            coef = self._fit_gd(Xc, yc, alpha, l1_ratio)
        coef = np.ascontiguousarray(coef, dtype=dtype)
        intercept = (y_mean - coef @ x_mean).astype(dtype) if self.fit_intercept else \
            np.zeros(y2.shape[1], dtype=dtype)
        if y.ndim == 1:
            self.coef_ = coef[0]
            self.intercept_ = dtype.type(intercept[0]) if self.fit_intercept else 0.0
        else:
            self.coef_ = coef
            self.intercept_ = intercept
        return self

    def _fit_gd(self, Xc, yc, alpha, l1_ratio):
        n, d = Xc.shape
        dtype = Xc.dtype
        k = yc.shape[1]
        lam2 = alpha * (1.0 - l1_ratio) / n  # per-sample-mean scale
        lam1 = alpha * l1_ratio / n
        smax = np.linalg.norm(Xc, 2) if min(n, d) > 0 else 0.0
        L = smax * smax / n + lam2
        if L <= 0:
            return np.zeros((k, d), dtype=dtype)
        batch = self.batch_size
        full = batch is None or batch >= n
        if self.learning_rate == "auto":
            lr = 1.0 / L if full else 0.1 / L
        else:
            lr = float(self.learning_rate)
        W = np.zeros((d, k), dtype=np.float64)
        rng = check_random_state(self.random_state)
        XT = Xc.T
        n_iter = 0
        for n_iter in range(1, int(self.max_iter) + 1):
            W_prev = W.copy()
            if full:
                R = Xc @ W.astype(dtype) - yc
                G = (XT @ R).astype(np.float64) / n + lam2 * W
                W -= lr * G
                if lam1 > 0:
                    W = np.sign(W) * np.maximum(np.abs(W) - lr * lam1, 0.0)
            else:
                order = rng.permutation(n)
                for start in range(0, n, batch):
                    idx = order[start:start + batch]
                    Xb = Xc[idx]
                    R = Xb @ W.astype(dtype) - yc[idx]
                    G = (Xb.T @ R).astype(np.float64) / len(idx) + lam2 * W
                    W -= lr * G
                    if lam1 > 0:
                        W = np.sign(W) * np.maximum(np.abs(W) - lr * lam1, 0.0)
            if not np.all(np.isfinite(W)):
                raise FloatingPointError(f"LinearRegression(solver='gd') diverged at epoch {n_iter} "
                                         f"(learning_rate={lr:g}); lower learning_rate or scale X.")
            delta = np.max(np.abs(W - W_prev))
            if delta <= self.tol * max(1.0, float(np.max(np.abs(W)))):
                break
        self.n_iter_ = n_iter
        return W.T

    def predict(self, X):
        """Predicted targets, ndarray of shape (n_samples,) or (n_samples, n_targets)."""
        check_is_fitted(self, "coef_")
        X = _validate_X(self, X, reset=False)
        coef = np.asarray(self.coef_)
        return X @ coef.T.astype(X.dtype, copy=False) + np.asarray(self.intercept_, dtype=X.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.target_tags.multi_output = True
        return tags
