"""A scikit-learn script made faster by changing one import line.

This is an ordinary scikit-learn workflow: load the handwritten digits, split
them, standardize, train a multi-layer perceptron (one hidden layer of 128 ReLU
units, Adam, minibatches of 32, 50 epochs) and report the test accuracy.  It
runs twice, once with

    from sklearn.neural_network import MLPClassifier

and once with the only change a fastnn user makes:

    from fastnn.estimators import MLPClassifier

Everything else (constructor arguments, fit, predict, score, the fitted
attributes) is the same.  fastnn follows scikit-learn's algorithm step by step
(same initialization, same shuffling, same Adam rule), so with the same
random_state the two models reach the same accuracy; fastnn trains faster
because every step runs on fused kernels over one flat parameter buffer.
The data are float32 and stay float32 in fastnn.

Both fits run on one thread so the comparison is fair.
Run: python examples/sklearn_dropin.py   (a few seconds)
"""
# requires: sklearn
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn


def user_script(MLPClassifier, seed=0):
    """The user's code, unchanged between the two runs: returns (accuracy, fit seconds)."""
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    clf = MLPClassifier(hidden_layer_sizes=(128,), solver="adam", batch_size=32,
                        learning_rate_init=1e-3, max_iter=50, random_state=seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # 50 epochs: stops at max_iter
        clf.fit(X_train, y_train)
    seconds = time.perf_counter() - t0
    return clf.score(X_test, y_test), seconds, clf


def main():
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from fastnn.estimators import MLPClassifier as FastnnMLP

    with fastnn.threads(1):
        results = {}
        for name, cls in (("scikit-learn", SklearnMLP), ("fastnn", FastnnMLP)):
            acc, seconds, clf = user_script(cls)
            results[name] = (acc, seconds)
            print(f"{name:>12}: test accuracy {acc:.4f}, fit {seconds:.3f} s, "
                  f"{clf.n_iter_} epochs, weights {clf.coefs_[0].dtype}")
    speedup = results["scikit-learn"][1] / results["fastnn"][1]
    print(f"fastnn fit is {speedup:.1f}x faster at the same accuracy "
          f"({results['fastnn'][0]:.4f} vs {results['scikit-learn'][0]:.4f})")


if __name__ == "__main__":
    main()
