"""scikit-learn compatible estimators built on fastnn's kernels.

This is the one part of fastnn that needs scikit-learn (for the estimator base
classes and their input checks): install it with ``pip install "fastnn-cpu[estimators]"``.
The rest of fastnn works without it.

One module per family: ``_sgd`` (SGDClassifier, Perceptron, SGDRegressor on one
``_BaseSGD``), ``_least_squares`` (LinearRegression), ``_logistic``
(LogisticRegression), ``_mlp`` (MLPClassifier, MLPRegressor) on the network engine
``_mlp_engine``; ``_common`` holds what they share (scikit-learn version support).
"""
try:
    import sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without sklearn
    raise ModuleNotFoundError(
        "fastnn.estimators needs scikit-learn, which is not installed. "
        'Install the optional extra: pip install "fastnn-cpu[estimators]"',
        name="sklearn",
    ) from exc

from fastnn.estimators._least_squares import LinearRegression  # noqa: E402
from fastnn.estimators._logistic import LogisticRegression  # noqa: E402
from fastnn.estimators._mlp import MLPClassifier, MLPRegressor  # noqa: E402
from fastnn.estimators._sgd import Perceptron, SGDClassifier, SGDRegressor  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor", "LinearRegression", "LogisticRegression", "Perceptron",
           "SGDClassifier", "SGDRegressor"]
