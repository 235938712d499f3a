"""Per-sample SGD estimators: ``SGDClassifier``, ``Perceptron`` and ``SGDRegressor``,
drop-in for scikit-learn's classes of the same name, on one ``_BaseSGD``.

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

Input: dense arrays only.  A scipy sparse matrix raises TypeError (convert it
with ``.toarray()``).  float32 input is fitted in float32 and gives float32
coefficients; anything else is converted to float64 as scikit-learn does.

Known, deliberate differences from scikit-learn:

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

from fastnn.estimators._common import DenseOnly, keep_params, reject_sparse, validate_dense
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state, compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from fastnn import _checks as C
from fastnn._engine import codes
from fastnn._engine.config import get_num_threads
from fastnn._kernels import _sgd

__all__ = ["Perceptron", "SGDClassifier", "SGDRegressor"]


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


class _BaseSGD(DenseOnly):
    """Shared hyperparameter checks and fitting machinery of the SGD estimators."""

    _losses = _CLASSIFIER_LOSSES

    _xfail_checks = {  # scikit-learn < 1.6, as its own SGD models
        "check_sample_weights_invariance": "zero sample_weight is not equivalent to removing samples"}

    def _validate_params(self, for_partial_fit=False):
        C.option(self.loss, "loss", self._losses)
        C.option(self.penalty, "penalty", _PENALTIES)
        C.real(self.alpha, "alpha", low=0.0)
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'. Received: l1_ratio=None")
        C.real(self.l1_ratio, "l1_ratio", low=0.0, high=1.0, allow_none=True)
        C.flag(self.fit_intercept, "fit_intercept")
        C.integer(self.max_iter, "max_iter", 1)
        C.real(self.tol, "tol", low=0.0, allow_none=True)
        C.flag(self.shuffle, "shuffle")
        if not isinstance(self.verbose, (bool, np.bool_)):
            C.integer(self.verbose, "verbose", 0)
        C.real(self.epsilon, "epsilon", low=0.0)
        C.option(self.learning_rate, "learning_rate", _LEARNING_RATES)
        C.real(self.eta0, "eta0", low=0.0, low_open=True)
        C.real(self.power_t, "power_t")
        C.flag(self.early_stopping, "early_stopping")
        C.real(self.validation_fraction, "validation_fraction", low=0.0, high=1.0, low_open=True,
               high_open=True)
        C.integer(self.n_iter_no_change, "n_iter_no_change", 1)
        C.flag(self.warm_start, "warm_start")
        n_jobs = getattr(self, "n_jobs", None)
        if n_jobs is not None and (isinstance(n_jobs, (bool, np.bool_)) or not isinstance(n_jobs, numbers.Integral)
                                   or n_jobs == 0):
            raise ValueError(f"n_jobs must be None or a non-zero integer (-1: all cores). Received: n_jobs={n_jobs!r}")
        avg = self.average
        if not isinstance(avg, (bool, np.bool_)):
            C.integer(avg, "average", 1)
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

    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the linear model with per-sample stochastic gradient descent.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense; float32 stays float32, other dtypes become float64).
        y : array-like of shape (n_samples,)
            Class labels (classifiers) or targets (regressors).
        coef_init : ndarray of the shape of ``coef_``, default=None
            Initial coefficients (warm start).
        intercept_init : ndarray of the shape of ``intercept_``, default=None
            Initial intercept.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights (multiplied by ``class_weight`` in classifiers).

        Returns
        -------
        self
        """
        self._validate_params()
        reject_sparse(X)
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

    def _allocate(self, coef_shape, dtype, coef_init, intercept_init):
        """Zero (or ``*_init``) coefficients of ``coef_shape`` and their averages."""
        n_rows = coef_shape[0] if len(coef_shape) == 2 else 1
        if coef_init is not None:
            if np.size(coef_init) != int(np.prod(coef_shape)):
                raise ValueError(f"coef_init must have shape {coef_shape}. Received shape {np.shape(coef_init)}")
            coef = np.array(coef_init, dtype=dtype, order="C", copy=True).reshape(coef_shape)
        else:
            coef = np.zeros(coef_shape, dtype=dtype)
        if intercept_init is not None:
            if np.size(intercept_init) != n_rows:
                raise ValueError(f"intercept_init must have shape ({n_rows},). Received shape "
                                 f"{np.shape(intercept_init)}")
            intercept = np.array(intercept_init, dtype=dtype, copy=True).reshape(n_rows)
        else:
            intercept = np.zeros(n_rows, dtype=dtype)
        self._standard_coef = coef
        self._standard_intercept = intercept
        self._average_coef = np.zeros_like(coef)
        self._average_intercept = np.zeros_like(intercept)

    def _prepare_model(self, coef_shape, dtype, coef_init, intercept_init):
        """Allocate on the first call (or for ``coef_init``); else check X against the model."""
        if getattr(self, "_standard_coef", None) is None or coef_init is not None:
            self._allocate(coef_shape, dtype, coef_init, intercept_init)
        elif self._standard_coef.shape[-1] != coef_shape[-1]:
            raise ValueError(f"X has {coef_shape[-1]} features, but the model was fitted with "
                             f"{self._standard_coef.shape[-1]} features")
        if self._standard_coef.dtype != dtype:
            raise TypeError(f"X has dtype {dtype} but the model was fitted in {self._standard_coef.dtype}; "
                            f"pass X.astype(np.{self._standard_coef.dtype})")
        if not hasattr(self, "t_"):
            self.t_ = 1.0

    def _publish(self, n_iter, n_samples):
        """Advance ``t_`` and expose the averaged or the plain coefficients."""
        self.n_iter_ = n_iter
        self.t_ += n_iter * n_samples
        avg = self.average and self.average <= self.t_ - 1.0
        self.coef_ = (self._average_coef if avg else self._standard_coef).copy()
        self.intercept_ = (self._average_intercept if avg else self._standard_intercept).copy()

    def _warn_max_iter(self):
        if self.tol is not None and self.n_iter_ == self.max_iter:
            warnings.warn("Maximum number of iteration reached before convergence. Consider increasing "
                          "max_iter to improve the fit.", ConvergenceWarning)

    def _decision(self, X):
        check_is_fitted(self, "coef_")
        X = validate_dense(self, X, reset=False)
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

    def _partial_fit(self, X, y, sample_weight, max_iter, coef_init=None, intercept_init=None, reset=False,
                     classes=None):
        first_call = reset or not hasattr(self, "classes_")
        X, y = validate_dense(self, X, reset=first_call, y=y)
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
        sw = C.sample_weight(sample_weight, n_samples, X.dtype)
        n_rows = 1 if n_classes == 2 else n_classes
        self._prepare_model((n_rows, n_features), X.dtype, coef_init, intercept_init)
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
        self._n_updates = n_updates
        self._publish(n_iter_, n_samples)
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
        return self._partial_fit(X, y, sample_weight, 1, classes=classes)

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
        keep_params(self, locals())

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
        keep_params(self, locals())

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
        keep_params(self, locals())

    def _partial_fit(self, X, y, sample_weight, max_iter, coef_init=None, intercept_init=None, reset=False):
        first_call = reset or not hasattr(self, "coef_")
        X, y = validate_dense(self, X, reset=first_call, y=y, y_numeric=True)
        y = np.ascontiguousarray(y, dtype=X.dtype)
        n_samples, n_features = X.shape
        sw = C.sample_weight(sample_weight, n_samples, X.dtype)
        self._prepare_model((n_features,), X.dtype, coef_init, intercept_init)
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
        self._publish(n_iter, n_samples)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch of SGD on the given samples."""
        if not hasattr(self, "coef_"):
            self._validate_params(for_partial_fit=True)
        return self._partial_fit(X, y, sample_weight, 1)

    def predict(self, X):
        """Predicted targets, ndarray of shape (n_samples,)."""
        return self._decision(X).ravel()

