"""Data utilities: minibatches, train/test split, one-hot encoding, standardization."""
import numbers

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


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (str, bytes))


def _plain(v):
    """NumPy scalars as Python values (np.str_('a') == 'a', one key in dicts)."""
    return v.item() if isinstance(v, np.generic) else v


def _is_missing(v):
    return v is None or (isinstance(v, float) and v != v)


class OneHotEncoder:
    """One-hot encode nominal columns of a table; numeric columns pass through.

    A scikit-learn-like encoder for mixed tables: each nominal column is replaced,
    in place, by one 0/1 column per category (categories sorted), and numeric
    columns are copied as they are, so the output keeps the input's column order.

    Args:
        columns: which input columns are nominal: a list of column indices (or
            names, for a pandas DataFrame), or None (default) to take every column
            that holds a non-number (a string or other object; every column of a
            string array).
        handle_unknown: ``"error"`` (default): a category not seen in fit raises
            ValueError naming the column and the value; ``"ignore"``: its one-hot
            block is all zeros.
        dtype: float32 (default) or float64, the output dtype.

    Input: a 2-D object ndarray, a list of rows (e.g. ``[["Yes", "Single", 125.0],
    ...]``) or a pandas DataFrame (column names are then kept for the feature
    names).  Build arrays of mixed rows with ``dtype=object``: ``np.array(rows)``
    would turn every number into a string.  Missing values (None, NaN) in
    nominal columns are rejected.

    Output shape: ``(n_samples, n_output_features)``: for each input column in
    order, ``len(categories_[k])`` columns if it is nominal, else one column.

    Attributes:
        categories_: list of ndarrays (object dtype), the sorted categories of
            each nominal column, in column order.
        nominal_columns_: indices of the nominal columns.
        n_features_in_: number of input columns.
        feature_names_in_: column names (only for a DataFrame input), else None.

    Example::

        enc = OneHotEncoder()
        Z = enc.fit_transform([["Yes", "Single", 125.0], ["No", "Married", 100.0]])
        enc.get_feature_names_out()
        # ['x0_No', 'x0_Yes', 'x1_Married', 'x1_Single', 'x2']
    """

    def __init__(self, columns=None, handle_unknown="error", dtype=np.float32):
        if handle_unknown not in ("error", "ignore"):
            raise ValueError(f'handle_unknown must be "error" or "ignore". Received: {handle_unknown!r}')
        if columns is not None and (isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__")):
            raise TypeError(f"columns must be a list of column indices or names, or None. Received: {columns!r}")
        self.columns = None if columns is None else list(columns)
        self.handle_unknown = handle_unknown
        self.dtype = C.float_dtype(dtype)
        self.categories_ = None
        self.nominal_columns_ = None
        self.n_features_in_ = None
        self.feature_names_in_ = None

    # -- input --------------------------------------------------------------------
    @staticmethod
    def _table(X):
        """(2-D object array, column names or None, per-column 'is nominal' hints or None)."""
        names = hints = None
        if type(X).__module__.startswith("pandas") and hasattr(X, "columns") and hasattr(X, "dtypes"):
            names = [str(c) for c in X.columns]
            hints = [dt.kind not in "fiub" for dt in X.dtypes]
            X = np.asarray(X, dtype=object)
        elif isinstance(X, np.ndarray):
            if X.dtype.kind in "US":
                hints = [True] * (X.shape[1] if X.ndim == 2 else 0)
            elif X.dtype.kind in "fiub":
                hints = [False] * (X.shape[1] if X.ndim == 2 else 0)
            elif X.dtype.kind != "O":
                raise TypeError(f"X must hold numbers, strings or objects. Received dtype: {X.dtype}")
            X = X.astype(object)
        else:
            try:
                X = np.array(X, dtype=object)
            except ValueError:
                raise ValueError("X must be a table: rows of equal length") from None
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_columns). Received shape {X.shape}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must hold at least one row and one column. Received shape {X.shape}")
        return X, names, hints

    def _resolve_columns(self, X, names, hints):
        n_cols = X.shape[1]
        if self.columns is None:
            if hints is not None:
                return [j for j in range(n_cols) if hints[j]]
            return [j for j in range(n_cols) if not all(_is_number(v) for v in X[:, j])]
        out = []
        for c in self.columns:
            if isinstance(c, (numbers.Integral, np.integer)) and not isinstance(c, bool):
                j = int(c)
                if not -n_cols <= j < n_cols:
                    raise ValueError(f"columns: index {j} is out of range for {n_cols} columns")
                j %= n_cols
            elif isinstance(c, str) and names is not None and c in names:
                j = names.index(c)
            elif isinstance(c, str):
                known = names if names is not None else "none (X has no column names)"
                raise ValueError(f"columns: unknown column name {c!r}; known names: {known}")
            else:
                raise TypeError(f"columns must hold column indices or names. Received: {c!r}")
            if j not in out:
                out.append(j)
        return sorted(out)

    def _column_label(self, j):
        return repr(self.feature_names_in_[j]) if self.feature_names_in_ is not None else str(j)

    # -- API ----------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn the categories of each nominal column of ``X``."""
        X, names, hints = self._table(X)
        nominal = self._resolve_columns(X, names, hints)
        self.feature_names_in_ = None if names is None else np.array(names, dtype=object)
        cats = []
        for j in nominal:
            values = [_plain(v) for v in X[:, j]]
            if any(_is_missing(v) for v in values):
                raise ValueError(f"column {names[j] if names else j} holds a missing value (None or NaN); "
                                 f"fill it with a category first")
            try:
                uniq = sorted(set(values))
            except TypeError:   # mixed types (e.g. str and int): group by type name
                uniq = sorted(set(values), key=lambda v: (type(v).__name__, v))
            cats.append(np.array(uniq + [None], dtype=object)[:-1])   # 1-D even for tuples
        self.categories_ = cats
        self.nominal_columns_ = nominal
        self.n_features_in_ = X.shape[1]
        self._lookup = [{v: k for k, v in enumerate(c)} for c in cats]
        return self

    def transform(self, X):
        """Encode ``X``; returns an ndarray of shape (n_samples, n_output_features)."""
        if self.categories_ is None:
            raise RuntimeError("OneHotEncoder is not fitted yet: call fit() first")
        X, names, _ = self._table(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns; the encoder was fitted on {self.n_features_in_}")
        n = X.shape[0]
        widths = self._widths()
        out = np.zeros((n, sum(widths)), dtype=self.dtype)
        nominal = dict(zip(self.nominal_columns_, range(len(self.nominal_columns_))))
        start = 0
        for j in range(self.n_features_in_):
            if j in nominal:
                lookup = self._lookup[nominal[j]]
                for i in range(n):
                    v = _plain(X[i, j])
                    try:
                        k = lookup.get(v)
                    except TypeError:          # unhashable value
                        k = None
                    if k is not None:
                        out[i, start + k] = 1
                    elif self.handle_unknown == "error":
                        raise ValueError(f"column {self._column_label(j)} has the unknown category {v!r} "
                                         f"(row {i}); known: {list(self.categories_[nominal[j]])}. "
                                         f'Use handle_unknown="ignore" to encode it as all zeros')
            else:
                col = X[:, j]
                try:
                    vals = np.array(col.tolist(), dtype=np.float64)
                except (TypeError, ValueError):
                    bad = next(v for v in col if not _is_number(v))
                    raise ValueError(f"column {self._column_label(j)} is numeric (passed through) but holds "
                                     f"{bad!r}; list it in columns= to one-hot encode it") from None
                out[:, start] = vals
            start += widths[j]
        return out

    def fit_transform(self, X, y=None):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def _widths(self):
        nominal = dict(zip(self.nominal_columns_, self.categories_))
        return [len(nominal[j]) if j in nominal else 1 for j in range(self.n_features_in_)]

    def get_feature_names_out(self, input_features=None):
        """Output column names: ``"<column>_<category>"`` for one-hot columns and the
        column name for passed-through ones; columns are named by ``input_features``,
        the DataFrame's names, or ``x0, x1, ...``."""
        if self.categories_ is None:
            raise RuntimeError("OneHotEncoder is not fitted yet: call fit() first")
        if input_features is None:
            input_features = (self.feature_names_in_ if self.feature_names_in_ is not None
                              else [f"x{j}" for j in range(self.n_features_in_)])
        input_features = [str(f) for f in input_features]
        if len(input_features) != self.n_features_in_:
            raise ValueError(f"input_features must name {self.n_features_in_} columns. "
                             f"Received {len(input_features)}")
        nominal = dict(zip(self.nominal_columns_, self.categories_))
        names = []
        for j, f in enumerate(input_features):
            if j in nominal:
                names.extend(f"{f}_{c}" for c in nominal[j])
            else:
                names.append(f)
        return np.array(names, dtype=object)

    def __repr__(self):
        return (f"OneHotEncoder(columns={self.columns}, handle_unknown={self.handle_unknown!r}, "
                f"dtype=np.{self.dtype})")


__all__ = ["minibatches", "train_test_split", "one_hot", "OneHotEncoder", "StandardScaler"]
