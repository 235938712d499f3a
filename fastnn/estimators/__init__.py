"""scikit-learn compatible estimators built on fastnn's kernels.

This is the one part of fastnn that needs scikit-learn (for the estimator base
classes and their input checks): install it with ``pip install "fastnn-cpu[estimators]"``.
The rest of fastnn works without it.
"""
try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without sklearn
    raise ModuleNotFoundError(
        "fastnn.estimators needs scikit-learn, which is not installed. "
        'Install the optional extra: pip install "fastnn-cpu[estimators]"',
        name="sklearn",
    ) from exc

from fastnn.estimators._mlp import MLPClassifier, MLPRegressor  # noqa: E402
from fastnn.estimators._linear import (  # noqa: E402
    LinearRegression, LogisticRegression, Perceptron, SGDClassifier, SGDRegressor,
)

__all__ = ["MLPClassifier", "MLPRegressor", "LinearRegression", "LogisticRegression", "Perceptron",
           "SGDClassifier", "SGDRegressor"]
