"""``LinearRegression``, drop-in for scikit-learn's: least squares in closed form or by
gradient descent, with ridge and elastic-net penalties.

Input: dense arrays only (a scipy sparse matrix raises TypeError).
"""
import numpy as np

from fastnn.estimators._common import DenseOnly, keep_params, validate_dense
from sklearn.base import RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastnn import _checks as C

__all__ = ["LinearRegression"]


class LinearRegression(RegressorMixin, DenseOnly):
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
        keep_params(self, locals())

    def _check_params(self):
        C.option(self.solver, "solver", ("closed_form", "gd"))
        C.real(self.alpha, "alpha", low=0.0)
        C.real(self.l1_ratio, "l1_ratio", low=0.0, high=1.0)
        if self.l1_ratio > 0 and self.alpha > 0 and self.solver != "gd":
            raise ValueError(f"l1_ratio > 0 (an L1 penalty) has no closed form: use solver='gd'. "
                             f"Received: solver={self.solver!r}, l1_ratio={self.l1_ratio}")
        C.flag(self.fit_intercept, "fit_intercept")
        C.integer(self.max_iter, "max_iter", 1)
        C.real(self.tol, "tol", low=0.0)
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            C.real(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        if self.batch_size is not None:
            C.integer(self.batch_size, "batch_size", 1)

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
        X, y = validate_dense(self, X, reset=True, y=y, y_numeric=True, multi_output=True)
        dtype = X.dtype
        y = np.asarray(y, dtype=dtype)
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        n, d = X.shape
        sw = C.sample_weight(sample_weight, n, np.float64)
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
        X = validate_dense(self, X, reset=False)
        coef = np.asarray(self.coef_)
        return X @ coef.T.astype(X.dtype, copy=False) + np.asarray(self.intercept_, dtype=X.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {**super()._more_tags(), "multioutput": True}
