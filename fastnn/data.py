"""Data utilities: minibatches, train/test split, one-hot encoding, standardization."""
import numpy as np

from fastnn import _checks as C
from fastnn import ops


def _n_samples(X, name="X"):
    X = np.asarray(X)
    if X.ndim < 1:
        raise ValueError(f"{name} must have at least one dimension (samples first). Received a scalar")
    return X, X.shape[0]


def minibatches(X, y=None, batch_size=32, shuffle=True, seed=None, drop_last=False):
    """Iterate over minibatches of ``X`` (and ``y``), in a shuffled order if asked.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
    y : ndarray of shape (n_samples, ...), optional
    batch_size : int > 0
    shuffle : bool
        Visit the rows in a random permutation (``seed``) instead of in order.
    seed : int or None
    drop_last : bool
        Skip the final batch when it is smaller than ``batch_size``.

    Yields
    ------
    (X_batch, y_batch), or X_batch when y is None.  Batches are new arrays
    (gathered in parallel), so keeping them is safe.
    """
    X, n = _n_samples(X)
    batch_size = C.positive_int(batch_size, "batch_size")
    if y is not None:
        y, ny = _n_samples(y, "y")
        if ny != n:
            raise ValueError(f"X and y must have the same number of samples. Received: {n} and {ny}")
    if shuffle:
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            xb = X[start:end].copy()
            yb = None if y is None else y[start:end].copy()
        else:
            idx = order[start:end]
            xb = ops.gather_rows(X, idx)
            yb = None if y is None else ops.gather_rows(y, idx)
        yield xb if y is None else (xb, yb)


def train_test_split(X, y, test_size=0.2, seed=None, stratify=None):
    """Split arrays into random train and test subsets (scikit-learn's order of outputs).

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
    y : ndarray of shape (n_samples, ...)
    test_size : float in (0, 1) or int in [1, n_samples)
    seed : int or None
    stratify : array of shape (n_samples,), optional
        Class labels: each class keeps its proportion in both subsets.

    Returns
    -------
    X_train, X_test, y_train, y_test
    """
    X, n = _n_samples(X)
    y, ny = _n_samples(y, "y")
    if ny != n:
        raise ValueError(f"X and y must have the same number of samples. Received: {n} and {ny}")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1). Received: {test_size}")
        n_test = int(np.ceil(test_size * n))
    else:
        n_test = C.positive_int(test_size, "test_size")
    if not 1 <= n_test < n:
        raise ValueError(f"test_size gives {n_test} test samples out of {n}; need between 1 and {n - 1}")
    rng = np.random.default_rng(seed)
    if stratify is None:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    else:
        strat = np.asarray(stratify)
        if strat.shape[:1] != (n,):
            raise ValueError(f"stratify must have one label per sample ({n}). Received shape {strat.shape}")
        classes, inv = np.unique(strat, return_inverse=True)
        counts = np.bincount(inv)
        # Allocate test rows to classes proportionally (largest remainders), as sklearn does.
        exact = counts * n_test / n
        alloc = np.floor(exact).astype(int)
        short = n_test - alloc.sum()
        if short > 0:
            order = np.argsort(-(exact - alloc), kind="stable")
            alloc[order[:short]] += 1
        test_parts, train_parts = [], []
        for k in range(len(classes)):
            rows = rng.permutation(np.flatnonzero(inv == k))
            test_parts.append(rows[:alloc[k]])
            train_parts.append(rows[alloc[k]:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def one_hot(labels, num_classes, dtype=np.float32):
    """One-hot rows for integer labels.

    Parameters
    ----------
    labels : int array of shape (n_samples,), values in [0, num_classes)
    num_classes : int
    dtype : float32 (default) or float64

    Returns
    -------
    ndarray of shape (n_samples, num_classes)
    """
    labels = C.labels_1d(labels, "labels")
    num_classes = C.positive_int(num_classes, "num_classes")
    dt = C.float_dtype(dtype)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}). Received values in "
                         f"[{labels.min()}, {labels.max()}]")
    out = np.zeros((labels.shape[0], num_classes), dt)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


class StandardScaler:
    """Standardize features: ``(X - mean_) / scale_`` (scikit-learn's StandardScaler).

    Columns with zero variance get ``scale_ = 1``.  The dtype of X is kept.
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None

    def _check(self, X):
        X = C.as_float(X, "X", ndim=2)
        if X.shape[0] == 0:
            raise ValueError("X must hold at least one sample")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinity")
        return X

    def fit(self, X, y=None):
        X = self._check(X)
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        self.mean_, self.scale_ = mean, std
        return self

    def transform(self, X):
        if self.mean_ is None:
            raise RuntimeError("StandardScaler is not fitted yet: call fit() first")
        X = self._check(X)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features; the scaler was fitted on {self.mean_.shape[0]}")
        return ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        if self.mean_ is None:
            raise RuntimeError("StandardScaler is not fitted yet: call fit() first")
        X = C.as_float(X, "X", ndim=2)
        return (X * self.scale_ + self.mean_).astype(X.dtype, copy=False)


__all__ = ["minibatches", "train_test_split", "one_hot", "StandardScaler"]
