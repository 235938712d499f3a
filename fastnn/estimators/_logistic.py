"""``LogisticRegression``, drop-in for scikit-learn's: L-BFGS on the full-batch loss.

It minimizes scikit-learn's lbfgs objective with the same scipy options, so its
coefficients agree to ~1e-6 or better (float64); the pointwise loss/gradient is a
fastnn kernel between two BLAS products.  Float32 input is computed in float32
(scikit-learn evaluates the float32 problem in float64), so float32 coefficients
agree less tightly.  Input: dense arrays only (a scipy sparse matrix raises TypeError).
"""
import warnings

import numpy as np

from fastnn.estimators._common import DenseOnly, keep_params, validate_dense
import scipy.optimize as _sp_optimize
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from fastnn import _checks as C
from fastnn._kernels import _sgd

__all__ = ["LogisticRegression"]


class LogisticRegression(ClassifierMixin, DenseOnly):
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
        keep_params(self, locals())

    def _check_params(self):
        C.option(self.penalty, "penalty", ("deprecated", "l2", None))
        if self.C != np.inf:
            C.real(self.C, "C", low=0.0, low_open=True)
        C.real(self.l1_ratio, "l1_ratio", low=0.0, high=1.0)
        if self.l1_ratio != 0:
            raise ValueError(f"l1_ratio > 0 needs an L1-capable solver; fastnn's LogisticRegression uses "
                             f"lbfgs (L2 only). Received: l1_ratio={self.l1_ratio}")
        if self.dual:
            raise ValueError("dual=True is not supported (lbfgs solves the primal). Received: dual=True")
        C.option(self.solver, "solver", ("lbfgs",))
        C.real(self.tol, "tol", low=0.0)
        C.integer(self.max_iter, "max_iter", 0)
        C.flag(self.fit_intercept, "fit_intercept")
        C.flag(self.warm_start, "warm_start")

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
        X, y = validate_dense(self, X, reset=True, y=y)
        check_classification_targets(y)
        dtype = X.dtype
        classes, y_enc = np.unique(y, return_inverse=True)
        n_classes = len(classes)
        if n_classes < 2:
            raise ValueError(f"This solver needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {classes[0]!r}")
        n, d = X.shape
        sw = C.sample_weight(sample_weight, n, np.float64)
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
        X = validate_dense(self, X, reset=False)
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
