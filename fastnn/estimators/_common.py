"""What every estimator family shares: scikit-learn's base classes and input checks,
across the scikit-learn versions fastnn supports (see ``SKLEARN_FLOOR``).

scikit-learn 1.6 moved ``BaseEstimator._validate_data`` to the function
``sklearn.utils.validation.validate_data`` and the estimator tags from
``_more_tags`` dicts to ``__sklearn_tags__`` objects; :func:`validate_data` and
:class:`DenseOnly` speak whichever the installed version has.
"""
import numpy as np

SKLEARN_FLOOR = "1.1.3"   # the oldest version the wheel check installs and tests against
_HINT = 'Install the optional extra: pip install "fastnn-cpu[estimators]"'

try:
    import scipy.sparse as _sp
    import sklearn
    from sklearn.base import BaseEstimator
except ImportError as exc:  # pragma: no cover - exercised only without sklearn
    raise ImportError(f"fastnn.estimators needs scikit-learn (and scipy, which it installs), which is not "
                      f"installed. {_HINT}") from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # older: the estimator method
    _sk_validate_data = None


def _version_tuple(v):
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in v.split(".")[:2])


if _version_tuple(sklearn.__version__) < _version_tuple(SKLEARN_FLOOR):  # pragma: no cover
    raise ImportError(f"fastnn.estimators needs scikit-learn >= {SKLEARN_FLOOR}; found "
                      f"{sklearn.__version__}. {_HINT}")


def validate_data(est, X, y="no_validation", reset=True, **kw):
    """scikit-learn's input check and ``n_features_in_`` bookkeeping, on any supported version.

    ``y="no_validation"`` checks X alone; ``y=None`` raises scikit-learn's "requires y" error.
    """
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, reset=reset, **kw)
    return est._validate_data(X, y, reset=reset, **kw)


def keep_params(est, params):
    """Store the constructor's arguments (``locals()`` at its start) unchanged, by name.

    scikit-learn's rule: ``__init__`` only stores; ``get_params`` reads them back by the
    names in its signature, and every check happens in ``fit``.
    """
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


def reject_sparse(X):
    """TypeError for a scipy sparse matrix (the estimators that take dense input only)."""
    if _sp.issparse(X):
        raise TypeError(
            "fastnn's linear estimators take dense input; received a scipy sparse matrix "
            f"({type(X).__name__}). Convert it with X.toarray() (or use scikit-learn for sparse data)."
        )


def validate_dense(est, X, reset, y="no_validation", **kw):
    """Dense float32/float64 C-ordered X (other dtypes become float64), and y if given."""
    reject_sparse(X)
    return validate_data(est, X, y, reset=reset, dtype=[np.float64, np.float32], order="C", **kw)


class DenseOnly(BaseEstimator):
    """Tags an estimator as taking dense input only, in both tag systems."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    _xfail_checks = {}   # scikit-learn < 1.6: checks known to fail, by name (from 1.6 the tests say)

    def _more_tags(self):  # scikit-learn < 1.6
        return {"X_types": ["2darray"], "_xfail_checks": dict(self._xfail_checks)}
