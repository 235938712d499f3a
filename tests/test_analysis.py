"""fastnn.analysis: gradient_check, hessian, model_hessian, critical_point, bias_variance."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import analysis as A
from fastnn.losses import CrossEntropyLoss, MSELoss


def mlp64(seed=0, in_f=3, hidden=4, out_f=2, act=None):
    act = act if act is not None else fn.nn.Tanh()
    return fn.nn.Sequential(fn.nn.Linear(in_f, hidden, dtype=np.float64, seed=seed), act,
                            fn.nn.Linear(hidden, out_f, dtype=np.float64, seed=seed + 1))


def saddle_model():
    """L(w1, w2) = (1 - w1 w2)^2 as a two-layer scalar linear net at w = (0, 0)."""
    m = fn.nn.Sequential(fn.nn.Linear(1, 1, bias=False, dtype=np.float64),
                         fn.nn.Linear(1, 1, bias=False, dtype=np.float64))
    for p in m.parameters():
        p.data[...] = 0.0
    return m, np.ones((1, 1)), np.ones((1, 1))


def saddle_f(w):
    return (1.0 - w[0] * w[1]) ** 2


# -- gradient_check ---------------------------------------------------------------------

@pytest.mark.parametrize("loss_name", ["ce", "mse"])
def test_gradient_check_correct_models(rng, loss_name):
    X = rng.standard_normal((6, 3))
    if loss_name == "ce":
        loss, y = CrossEntropyLoss(), rng.integers(0, 2, 6)
    else:
        loss, y = MSELoss(), rng.standard_normal((6, 2))
    err, details = A.gradient_check(mlp64(), loss, X, y, return_details=True)
    assert err < 1e-6
    assert set(details) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert max(details.values()) == err


def test_gradient_check_with_batchnorm_restores_running_stats(rng):
    # bias=False: BatchNorm removes a per-feature constant, so a bias before it has an
    # exactly zero gradient that finite differences only see as rounding noise.
    m = fn.nn.Sequential(fn.nn.Linear(3, 4, bias=False, dtype=np.float64, seed=0),
                         fn.nn.BatchNorm1d(4, dtype=np.float64), fn.nn.Tanh(),
                         fn.nn.Linear(4, 2, dtype=np.float64, seed=1))
    before = {k: v.copy() for k, v in m.state_dict().items()}
    err = A.gradient_check(m, MSELoss(), rng.standard_normal((8, 3)), rng.standard_normal((8, 2)))
    assert err < 1e-5
    after = m.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


class _WrongBackward(fn.nn.Module):
    """y = x * w with a backward that forgets the factor x (a bug to catch)."""

    def __init__(self):
        super().__init__()
        self.w = fn.nn.Parameter(np.array([1.5, -0.5]))

    def forward(self, x):
        self._x = x
        return x * self.w.data

    def backward(self, g):
        self.w.grad += g.sum(axis=0)                # wrong: should be (g * x).sum(axis=0)
        return g * self.w.data


def test_gradient_check_catches_a_wrong_backward(rng):
    X = rng.uniform(2.0, 3.0, (5, 2))
    err = A.gradient_check(_WrongBackward(), MSELoss(), X, rng.standard_normal((5, 2)))
    assert err > 0.3


def test_gradient_check_restores_params_and_grads_exactly(rng):
    m = mlp64()
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    params = list(m.parameters())
    data = [p.data.copy() for p in params]
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)   # some user's accumulated grads
    grads = [p.grad.copy() for p in params]
    grad_objs = [p.grad for p in params]
    params[1].zero_grad()                             # lazily zeroed state must survive too
    A.gradient_check(m, CrossEntropyLoss(), X, y)
    for p, d, g, obj in zip(params, data, grads, grad_objs):
        np.testing.assert_array_equal(p.data, d)      # bit-exact
        assert p._grad is obj
    assert params[1]._grad_zero is True
    assert np.all(params[1].grad == 0)
    for i in (0, 2, 3):
        np.testing.assert_array_equal(params[i].grad, grads[i])


def test_gradient_check_restores_on_error(rng):
    m = mlp64()
    data = [p.data.copy() for p in m.parameters()]
    calls = {"n": 0}

    class Boom(MSELoss):
        def forward(self, pred, target):
            calls["n"] += 1
            if calls["n"] > 3:
                raise RuntimeError("boom")
            return super().forward(pred, target)

    with pytest.raises(RuntimeError, match="boom"):
        A.gradient_check(m, Boom(), rng.standard_normal((4, 3)), rng.standard_normal((4, 2)))
    for p, d in zip(m.parameters(), data):
        np.testing.assert_array_equal(p.data, d)


def test_gradient_check_requires_float64(rng):
    m32 = fn.nn.Sequential(fn.nn.Linear(3, 2, seed=0))
    with pytest.raises(TypeError, match="float64 model"):
        A.gradient_check(m32, MSELoss(), rng.standard_normal((4, 3)).astype(np.float32),
                         np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match="float64 input"):
        A.gradient_check(mlp64(), MSELoss(), rng.standard_normal((4, 3)).astype(np.float32),
                         np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least one sample"):
        A.gradient_check(mlp64(), MSELoss(), np.zeros((0, 3)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="eps"):
        A.gradient_check(mlp64(), MSELoss(), np.zeros((2, 3)), np.zeros((2, 2)), eps=0.0)


# -- hessian ------------------------------------------------------------------------------

def test_hessian_of_quadratic_is_exact(rng):
    M = rng.standard_normal((5, 5))
    Q = M @ M.T
    b = rng.standard_normal(5)
    H = A.hessian(lambda w: 0.5 * w @ Q @ w + b @ w + 3.0, rng.standard_normal(5))
    np.testing.assert_allclose(H, Q, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(H, H.T)


def test_hessian_rosenbrock_at_minimum():
    f = lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2      # noqa: E731
    H = A.hessian(f, np.array([1.0, 1.0]))
    np.testing.assert_allclose(H, [[802.0, -400.0], [-400.0, 200.0]], rtol=1e-6)
    assert A.critical_point(H).kind == "minimum"


def test_hessian_saddle_worked_example():
    H = A.hessian(saddle_f, [0, 0])                  # integer input is converted to float64
    np.testing.assert_allclose(H, [[0.0, -2.0], [-2.0, 0.0]], atol=1e-7)
    cp = A.critical_point(H)
    assert cp.kind == "saddle"
    np.testing.assert_allclose(cp.eigenvalues, [-2.0, 2.0], atol=1e-7)
    np.testing.assert_allclose(cp.escape_direction, np.array([1.0, 1.0]) / np.sqrt(2), atol=1e-7)
    # the gradient is zero at (0, 0), yet stepping along the escape direction lowers L
    for t in (1e-3, 0.1, 0.5):
        assert saddle_f(t * cp.escape_direction) < saddle_f(np.zeros(2))
        assert saddle_f(-t * cp.escape_direction) < saddle_f(np.zeros(2))
    # while the positive-curvature direction (1, -1)/sqrt(2) raises it
    assert saddle_f(0.1 * np.array([1.0, -1.0]) / np.sqrt(2)) > saddle_f(np.zeros(2))


def test_hessian_bad_input():
    with pytest.raises(TypeError, match="callable"):
        A.hessian(3.0, [0.0])
    with pytest.raises(ValueError, match="1-D"):
        A.hessian(saddle_f, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        A.hessian(saddle_f, [np.nan, 0.0])
    with pytest.raises(TypeError, match="scalar"):
        A.hessian(lambda w: w, [0.0, 1.0])
    with pytest.raises(FloatingPointError, match="non-finite"):
        A.hessian(lambda w: np.inf if w[0] > 0 else 0.0, [0.0])


def test_hessian_does_not_modify_w():
    w = np.array([0.3, -0.7])
    A.hessian(saddle_f, w)
    np.testing.assert_array_equal(w, [0.3, -0.7])


# -- model_hessian ------------------------------------------------------------------------

def test_model_hessian_saddle_model():
    m, X, y = saddle_model()
    H = A.model_hessian(m, MSELoss(), X, y)
    np.testing.assert_allclose(H, [[0.0, -2.0], [-2.0, 0.0]], atol=1e-8)
    cp = A.critical_point(H)
    assert cp.kind == "saddle"
    np.testing.assert_allclose(cp.escape_direction, [2 ** -0.5, 2 ** -0.5], atol=1e-8)
    assert all(np.all(p.data == 0) for p in m.parameters())


def test_model_hessian_linear_regression_exact_and_ordering(rng):
    # MSE of x W^T + b (out 2): H over W (flattened in C order, (out, in)) is
    # kron(I_2, X^T X) * 2 / (n * 2); W is stored in Fortran order, so this checks the order.
    n = 7
    X = rng.standard_normal((n, 3))
    y = rng.standard_normal((n, 2))
    lin = fn.nn.Linear(3, 2, dtype=np.float64, seed=0)
    assert lin.weight.data.flags.f_contiguous
    H = A.model_hessian(lin, MSELoss(), X, y)
    Xb = np.hstack([X, np.ones((n, 1))])
    G = Xb.T @ Xb * 2.0 / (n * 2)
    ref = np.zeros((8, 8))
    w_idx = [[0, 1, 2], [3, 4, 5]]                     # weight[o, i] -> o * 3 + i
    b_idx = [6, 7]
    for o in range(2):
        idx = w_idx[o] + [b_idx[o]]
        ref[np.ix_(idx, idx)] = G
    np.testing.assert_allclose(H, ref, rtol=1e-7, atol=1e-8)
    assert A.critical_point(H).kind == "minimum"


def test_model_hessian_matches_function_hessian(rng):
    m = mlp64(seed=3)
    X, y = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    loss = CrossEntropyLoss()
    params = list(m.parameters())
    w0 = np.concatenate([p.data.reshape(-1) for p in params])

    def f(w):
        k = 0
        for p in params:
            p.data[...] = w[k:k + p.size].reshape(p.shape)
            k += p.size
        return loss(m.forward(X), y)

    Hf = A.hessian(f, w0)
    f(w0)
    Hm = A.model_hessian(m, loss, X, y)
    assert Hm.shape == (w0.size, w0.size)
    np.testing.assert_array_equal(Hm, Hm.T)
    np.testing.assert_allclose(Hm, Hf, atol=1e-6 * np.abs(Hf).max())


def test_model_hessian_restores_grads(rng):
    m = mlp64()
    for p in m.parameters():
        p.grad[...] = 7.0
    A.model_hessian(m, MSELoss(), rng.standard_normal((3, 3)), rng.standard_normal((3, 2)))
    assert all(np.all(p.grad == 7.0) for p in m.parameters())


def test_model_hessian_requires_float64(rng):
    with pytest.raises(TypeError, match="float64"):
        A.model_hessian(fn.nn.Linear(2, 1), MSELoss(), np.zeros((2, 2), np.float32), np.zeros((2, 1), np.float32))


# -- critical_point ------------------------------------------------------------------------

@pytest.mark.parametrize("diag,kind,escape", [
    ([1.0, 2.0], "minimum", None),
    ([-1.0, -2.0], "maximum", 1),
    ([-1.0, 2.0], "saddle", 0),
    ([-1.0, 0.0, 2.0], "saddle", 0),
    ([0.0, 2.0], "degenerate", None),
    ([-3.0, 0.0], "degenerate", 0),
    ([0.0, 0.0], "degenerate", None),
])
def test_critical_point_kinds(diag, kind, escape):
    cp = A.critical_point(np.diag(diag))
    assert cp.kind == kind
    np.testing.assert_array_equal(cp.eigenvalues, np.sort(diag))
    if escape is None:
        assert cp.escape_direction is None
    else:
        e = np.zeros(len(diag))
        e[escape] = 1.0
        np.testing.assert_allclose(cp.escape_direction, e)


def test_critical_point_tolerance():
    H = np.diag([1e-9, 1.0])
    assert A.critical_point(H).kind == "degenerate"
    assert A.critical_point(H, tol=0).kind == "minimum"
    assert A.critical_point(np.diag([-1e-3, 1.0]), tol=1e-2).kind == "degenerate"
    assert A.critical_point(np.diag([-1e-3, 1.0]), tol=1e-2).escape_direction is None


def test_critical_point_escape_is_unit_and_lowers_quadratic(rng):
    M = rng.standard_normal((6, 6))
    H = M + M.T
    cp = A.critical_point(H)
    d = cp.escape_direction
    assert cp.kind == "saddle"
    assert abs(np.linalg.norm(d) - 1) < 1e-12
    assert d @ H @ d == pytest.approx(cp.eigenvalues[0])
    assert d @ H @ d < 0


def test_critical_point_bad_input():
    with pytest.raises(ValueError, match="square"):
        A.critical_point(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        A.critical_point(np.array([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        A.critical_point(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="tol"):
        A.critical_point(np.eye(2), tol=-1.0)
    with pytest.raises(TypeError, match="real"):
        A.critical_point(np.array([["a", "b"], ["c", "d"]]))


# -- bias_variance --------------------------------------------------------------------------

class MeanEstimator:
    """Predicts the mean of the training targets everywhere."""

    def fit(self, X, y):
        self.m = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.m)


class PolyFit:
    """Least-squares polynomial in x = X[:, 0]."""

    def __init__(self, degree):
        self.degree = degree

    def fit(self, X, y):
        self.p = np.polynomial.Polynomial.fit(X[:, 0], y, self.degree)
        return self

    def predict(self, X):
        return self.p(X[:, 0])


def test_bias_variance_of_the_mean_estimator(rng):
    # Bootstrap mean: variance ~ var(y) / n, bias^2 against f = 0 is mean_pred^2.
    n = 50
    y = rng.standard_normal(n)
    X = np.zeros((n, 1))
    out = A.bias_variance(MeanEstimator, X, y, np.zeros((3, 1)), f_test=np.zeros(3), n_rounds=3000, seed=0)
    assert out["variance"] == pytest.approx(np.var(y) / n, rel=0.1)
    assert out["bias2"] == pytest.approx(out["mean_prediction"][0] ** 2, rel=1e-12)
    assert out["mean_prediction"][0] == pytest.approx(np.mean(y), abs=0.02)
    assert out["noise"] is None
    assert out["expected_error"] == pytest.approx(out["bias2"] + out["variance"], rel=1e-12)


def test_bias_variance_identity_against_direct_computation(rng):
    x = np.sort(rng.uniform(0, 1, 30))[:, None]
    f = lambda X: np.sin(2 * np.pi * X[:, 0])                              # noqa: E731
    y = f(x) + 0.3 * rng.standard_normal(30)
    Xt = np.linspace(0.1, 0.9, 20)[:, None]
    out = A.bias_variance(lambda: PolyFit(3), x, y, Xt, f_test=f(Xt), n_rounds=40, seed=1)
    # recompute the same bootstrap rounds by hand
    r = np.random.default_rng(1)
    P = []
    for _ in range(40):
        idx = r.integers(0, 30, 30)
        P.append(PolyFit(3).fit(x[idx], y[idx]).predict(Xt))
    P = np.array(P)
    direct = np.mean((P - f(Xt)) ** 2)
    assert out["bias2"] + out["variance"] == pytest.approx(direct, rel=1e-10)
    assert out["variance"] == pytest.approx(np.mean(P.var(axis=0)), rel=1e-10)
    np.testing.assert_allclose(out["mean_prediction"], P.mean(0), rtol=1e-12)


def test_bias_variance_underfit_vs_overfit(rng):
    n = 30
    x = np.linspace(0, 1, n)[:, None]
    f = lambda X: np.sin(2 * np.pi * X[:, 0])                              # noqa: E731
    y = f(x) + 0.3 * rng.standard_normal(n)
    Xt = np.linspace(0.1, 0.9, 41)[:, None]
    lin = A.bias_variance(lambda: PolyFit(1), x, y, Xt, f_test=f, n_rounds=100, seed=0)
    poly = A.bias_variance(lambda: PolyFit(9), x, y, Xt, f_test=f, n_rounds=100, seed=0)
    assert lin["bias2"] > 3 * poly["bias2"]
    assert poly["variance"] > 3 * lin["variance"]
    # callable f: noise from training residuals, included in the expected error
    assert lin["noise"] == pytest.approx(np.mean((y - f(x)) ** 2), rel=1e-12)
    assert lin["expected_error"] == pytest.approx(lin["bias2"] + lin["variance"] + lin["noise"], rel=1e-12)


def test_bias_variance_y_test_and_noise_from_test_points(rng):
    n = 40
    x = rng.uniform(0, 1, n)[:, None]
    y = 2 * x[:, 0] + 0.1 * rng.standard_normal(n)
    Xt = rng.uniform(0, 1, 25)[:, None]
    ft = 2 * Xt[:, 0]
    yt = ft + 0.1 * rng.standard_normal(25)
    only_y = A.bias_variance(lambda: PolyFit(1), x, y, Xt, y_test=yt, n_rounds=20, seed=0)
    both = A.bias_variance(lambda: PolyFit(1), x, y, Xt, f_test=ft, y_test=yt, n_rounds=20, seed=0)
    assert only_y["noise"] is None and both["noise"] == pytest.approx(np.mean((yt - ft) ** 2))
    assert only_y["bias2"] > both["bias2"]          # against noisy targets: contains the noise
    assert only_y["expected_error"] == pytest.approx(only_y["bias2"] + only_y["variance"])
    neither = A.bias_variance(lambda: PolyFit(1), x, y, Xt, n_rounds=20, seed=0)
    assert neither["bias2"] is None and neither["expected_error"] is None
    assert neither["variance"] == pytest.approx(both["variance"], rel=1e-12)


def test_bias_variance_seed_reproducible(rng):
    x = rng.uniform(0, 1, (20, 1))
    y = x[:, 0] + rng.standard_normal(20)
    a = A.bias_variance(lambda: PolyFit(2), x, y, x[:5], f_test=x[:5, 0], n_rounds=10, seed=5)
    b = A.bias_variance(lambda: PolyFit(2), x, y, x[:5], f_test=x[:5, 0], n_rounds=10, seed=5)
    c = A.bias_variance(lambda: PolyFit(2), x, y, x[:5], f_test=x[:5, 0], n_rounds=10, seed=6)
    assert a["variance"] == b["variance"] and a["bias2"] == b["bias2"]
    assert a["variance"] != c["variance"]


def test_bias_variance_with_sklearn_estimator(rng):
    lm = pytest.importorskip("sklearn.linear_model")
    X = rng.standard_normal((60, 2))
    f = lambda X: X @ np.array([1.0, -2.0]) + 0.5                          # noqa: E731
    y = f(X) + 0.1 * rng.standard_normal(60)
    out = A.bias_variance(lm.LinearRegression, X, y, X[:10], f_test=f, n_rounds=30, seed=0)
    assert out["bias2"] < 1e-3 and 0 < out["variance"] < 1e-2


@pytest.mark.filterwarnings("ignore::UserWarning")      # ConvergenceWarning after max_iter=5
def test_bias_variance_with_fastnn_mlp_regressor(rng):
    est = pytest.importorskip("fastnn.estimators")
    X = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    y = (0.5 * X[:, 0]).astype(np.float32)
    out = A.bias_variance(lambda: est.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
                          X, y, X[:8], f_test=y[:8], n_rounds=3, seed=0)
    assert np.isfinite(out["bias2"]) and out["variance"] >= 0


def test_bias_variance_bad_input(rng):
    X = np.zeros((5, 1))
    y = np.zeros(5)
    with pytest.raises(TypeError, match="callable"):
        A.bias_variance(MeanEstimator(), X, y, X)
    with pytest.raises(ValueError, match="n_rounds"):
        A.bias_variance(MeanEstimator, X, y, X, n_rounds=1)
    with pytest.raises(ValueError, match="same number of samples"):
        A.bias_variance(MeanEstimator, X, y[:4], X)
    with pytest.raises(ValueError, match="at least 2 samples"):
        A.bias_variance(MeanEstimator, X[:1], y[:1], X)
    with pytest.raises(ValueError, match="f_test must have the shape"):
        A.bias_variance(MeanEstimator, X, y, X, f_test=np.zeros(3))
    with pytest.raises(TypeError, match="fit and predict"):
        A.bias_variance(object, X, y, X)
    with pytest.raises(ValueError, match="one prediction per test sample"):
        A.bias_variance(lambda: type("E", (), {"fit": lambda s, X, y: s,
                                               "predict": lambda s, X: np.zeros(2)})(), X, y, X)
    with pytest.raises(TypeError, match="y must be numeric"):
        A.bias_variance(MeanEstimator, X, np.array(["a"] * 5), X)


def test_bias_variance_fastnn_linear_regression_matches_sklearn(rng):
    est = pytest.importorskip("fastnn.estimators")
    lm = pytest.importorskip("sklearn.linear_model")
    if not hasattr(est, "LinearRegression"):
        pytest.skip("fastnn.estimators.LinearRegression is not available")
    X = rng.standard_normal((40, 3))
    f = lambda X: X @ np.array([1.0, -2.0, 0.5]) + 0.3 * X[:, 0] ** 2          # noqa: E731
    y = f(X) + 0.2 * rng.standard_normal(40)
    ours = A.bias_variance(est.LinearRegression, X, y, X[:15], f_test=f, n_rounds=20, seed=3)
    theirs = A.bias_variance(lm.LinearRegression, X, y, X[:15], f_test=f, n_rounds=20, seed=3)
    for key in ("bias2", "variance", "expected_error", "noise"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-6), key
    assert ours["bias2"] > 0.01               # the quadratic term is missed: some bias
