"""The perceptron on linearly separable data, and Novikoff's mistake bound.

Draws 2,000 points in 10 dimensions, labels them by a fixed hyperplane
w*.x + b* (unit-norm w*) and drops the points closer to it than rho = 0.2, so
the data are separable with margin at least rho.  fastnn's Perceptron makes an
update w += y_i x_i, b += y_i at each mistake and stops at the first epoch
without one.  The classic convergence theorem (on the augmented vectors
(x, 1) and (w*, b*)) bounds the number of updates by

    (r^2 + 1) (b*^2 + 1) / rho^2,     r = max ||x_i||.

The script prints the bound, the updates made, the training errors (zero),
and checks the fitted coefficients against scikit-learn's Perceptron, which
runs the same algorithm with the same shuffling.
Run: python examples/perceptron.py   (about a second)
"""
# requires: sklearn
import time

import numpy as np

from fastnn.estimators import Perceptron


def separable_data(n=2000, d=10, margin=0.2, seed=0):
    rng = np.random.default_rng(seed)
    w_star = rng.normal(size=d)
    w_star /= np.linalg.norm(w_star)
    b_star = 0.5
    X = rng.uniform(-1.5, 1.5, size=(3 * n, d))
    f = X @ w_star + b_star
    keep = np.abs(f) >= margin
    X, f = X[keep][:n], f[keep][:n]
    return X, np.where(f > 0, 1, -1), w_star, b_star


def main():
    X, y, w_star, b_star = separable_data()
    r = np.max(np.linalg.norm(X, axis=1))
    rho = np.min(y * (X @ w_star + b_star))
    bound = (r ** 2 + 1) * (b_star ** 2 + 1) / rho ** 2
    print(f"data: {X.shape[0]} points, {X.shape[1]} features; r = {r:.3f}, rho = {rho:.3f}, b* = {b_star}")
    print(f"mistake bound (r^2 + 1)(b*^2 + 1)/rho^2 = {bound:.0f}")

    t0 = time.perf_counter()
    clf = Perceptron(max_iter=1000, tol=None, random_state=0).fit(X, y)
    t_fit = time.perf_counter() - t0
    errors = int(np.sum(clf.predict(X) != y))
    print(f"fastnn Perceptron: {clf.n_updates_} updates in {clf.n_iter_} epochs ({t_fit * 1e3:.1f} ms), "
          f"training errors: {errors}")
    print(f"updates within the bound: {clf.n_updates_ <= bound}")
    w = np.concatenate([clf.coef_[0], clf.intercept_])
    w /= np.linalg.norm(w[:-1])
    print(f"learned hyperplane (normalized): w[:3] = {np.round(w[:3], 3)}, b = {w[-1]:.3f}; "
          f"true: w*[:3] = {np.round(w_star[:3], 3)}, b* = {b_star}")

    from sklearn.linear_model import Perceptron as SkPerceptron

    sk = SkPerceptron(max_iter=1000, tol=None, random_state=0).fit(X, y)
    same = np.allclose(sk.coef_, clf.coef_) and np.allclose(sk.intercept_, clf.intercept_)
    print(f"same coefficients as scikit-learn's Perceptron: {same}")


if __name__ == "__main__":
    main()
