"""Linear regression three ways: closed form, full-batch gradient descent, minibatch SGD.

A synthetic problem y = X w_true + 3 + noise (5,000 samples, 20 features) is
fitted by fastnn's LinearRegression with

* solver="closed_form": a least-squares solve (SVD) on the centered data, the
  intercept recovered from the means;
* solver="gd": full-batch gradient descent with step 1/L (L the largest
  eigenvalue of X^T X / n), stopped when an epoch moves the weights by < tol;
* solver="gd", batch_size=64: minibatch SGD (shuffled each epoch).

It prints each fit's distance to the true weights and to the closed form, and
the time taken.  The closed form is checked against scikit-learn's
LinearRegression, and ridge (alpha > 0) against sklearn.linear_model.Ridge.
Run: python examples/linear_regression.py   (about a second)
"""
# requires: sklearn
import time

import numpy as np

from fastnn.estimators import LinearRegression


def main():
    rng = np.random.default_rng(0)
    n, d = 5000, 20
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    w_true = rng.normal(size=d)
    y = X @ w_true + 3.0 + 0.1 * rng.normal(size=n)

    fits = {}
    for name, est in [
        ("closed form", LinearRegression()),
        ("full-batch GD", LinearRegression(solver="gd", max_iter=2000, tol=1e-10)),
        ("minibatch SGD (64)", LinearRegression(solver="gd", batch_size=64, max_iter=20, random_state=0)),
    ]:
        t0 = time.perf_counter()
        est.fit(X, y)
        dt = time.perf_counter() - t0
        fits[name] = est
        err = np.linalg.norm(est.coef_ - w_true) / np.linalg.norm(w_true)
        print(f"{name:20s} |w - w_true|/|w_true| = {err:.2e}  intercept = {est.intercept_:.4f}  "
              f"epochs = {est.n_iter_:4d}  R^2 = {est.score(X, y):.6f}  ({dt * 1e3:.1f} ms)")
    cf = fits["closed form"].coef_
    for name in ("full-batch GD", "minibatch SGD (64)"):
        rel = np.linalg.norm(fits[name].coef_ - cf) / np.linalg.norm(cf)
        print(f"{name} vs closed form: relative difference {rel:.1e}")

    from sklearn.linear_model import LinearRegression as SkLinearRegression
    from sklearn.linear_model import Ridge

    sk = SkLinearRegression().fit(X, y)
    rel = np.max(np.abs(cf - sk.coef_) / np.abs(sk.coef_))
    print(f"closed form vs scikit-learn LinearRegression: max relative difference {rel:.1e} "
          f"(agrees to 1e-6: {rel < 1e-6})")
    ridge = LinearRegression(alpha=50.0).fit(X, y)
    sk_ridge = Ridge(alpha=50.0).fit(X, y)
    rel = np.max(np.abs(ridge.coef_ - sk_ridge.coef_) / np.abs(sk_ridge.coef_))
    print(f"ridge alpha=50 vs scikit-learn Ridge: max relative difference {rel:.1e} (agrees to 1e-6: {rel < 1e-6})")


if __name__ == "__main__":
    main()
