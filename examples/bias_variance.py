"""Bias and variance of an underfit and an overfit model, by bootstrap refits.

Data: 30 points x evenly spaced in [0, 1], y = sin(2 pi x) + noise (sd 0.3).
Three least-squares polynomials are compared: degree 1 (a straight line: it
cannot bend, so it is wrong in the same way on every training set: high bias),
degree 3 (about right), and degree 9 (flexible enough to chase the noise of
each training set: low bias, high variance).

``fastnn.analysis.bias_variance`` refits each model on 200 bootstrap samples of
the data and predicts on test points in [0.1, 0.9].  With the true function
passed as ``f_test`` it reports, under squared loss,

- bias2: squared difference between the average prediction and f,
- variance: spread of the predictions around their average,
- noise: variance of y - f(x) at the training points (measurable because f is known),
- expected_error = bias2 + variance + noise.

The estimator is written here (``numpy.polynomial`` with plain least squares);
any object with fit/predict works, e.g. scikit-learn's regressors.

Run: python examples/bias_variance.py   (a second or two)
"""
import warnings

import numpy as np

from fastnn.analysis import bias_variance

# numpy 2 has it in numpy.exceptions; numpy 1.x at the top level
RankWarning = getattr(getattr(np, "exceptions", None), "RankWarning", None) or np.RankWarning


class PolynomialRegression:
    """Least-squares polynomial of ``degree`` in the single feature X[:, 0]."""

    def __init__(self, degree):
        self.degree = degree

    def fit(self, X, y):
        with warnings.catch_warnings():          # a bootstrap sample may repeat many points
            warnings.simplefilter("ignore", RankWarning)
            self.poly_ = np.polynomial.Polynomial.fit(X[:, 0], y, self.degree)
        return self

    def predict(self, X):
        return self.poly_(X[:, 0])


def f(X):
    return np.sin(2 * np.pi * X[:, 0])


def main():
    rng = np.random.default_rng(0)
    X = np.linspace(0.0, 1.0, 30)[:, None]
    y = f(X) + 0.3 * rng.standard_normal(len(X))
    X_test = np.linspace(0.1, 0.9, 41)[:, None]

    print(f"{'degree':>6s} {'bias^2':>9s} {'variance':>9s} {'noise':>7s} {'expected':>9s}")
    results = {}
    for degree in (1, 3, 9):
        r = bias_variance(lambda: PolynomialRegression(degree), X, y, X_test, f_test=f,
                          n_rounds=200, seed=1)
        results[degree] = r
        print(f"{degree:>6d} {r['bias2']:>9.4f} {r['variance']:>9.4f} {r['noise']:>7.4f} "
              f"{r['expected_error']:>9.4f}")
    lin, poly = results[1], results[9]
    print(f"degree 1 underfits: bias^2 is {lin['bias2'] / poly['bias2']:.0f}x that of degree 9")
    print(f"degree 9 overfits: variance is {poly['variance'] / lin['variance']:.0f}x that of degree 1")
    best = min(results, key=lambda d: results[d]["expected_error"])
    print(f"lowest expected error: degree {best}")


if __name__ == "__main__":
    main()
