"""Element-wise losses: L1, Huber, epsilon-insensitive, logistic, hinge (issue 4 part)."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import losses

from conftest import numeric_grad


def ref_value_grad(name, p, t, param):
    """NumPy reference of the mean loss and its gradient with respect to p."""
    n = p.size
    if name == "l1":
        d = p - t
        return np.abs(d).mean(), np.sign(d) / n
    if name == "huber":
        d = p - t
        a = np.abs(d)
        v = np.where(a < param, 0.5 * d * d, param * (a - 0.5 * param))
        return v.mean(), np.clip(d, -param, param) / n
    if name == "eps":
        d = p - t
        a = np.abs(d)
        return np.maximum(a - param, 0).mean(), np.where(a > param, np.sign(d), 0) / n
    y = np.where(t > 0, 1.0, -1.0)
    m = y * p
    if name == "logistic":
        return np.logaddexp(0, -m).mean(), -y / (1 + np.exp(m)) / n
    return np.maximum(1 - m, 0).mean(), np.where(m < 1, -y, 0) / n


def make(name, param):
    return {"l1": lambda: losses.L1Loss(), "huber": lambda: losses.HuberLoss(param),
            "eps": lambda: losses.EpsilonInsensitiveLoss(param), "logistic": lambda: losses.LogisticLoss(),
            "hinge": lambda: losses.HingeLoss()}[name]()


CASES = [("l1", 0.0), ("huber", 1.0), ("huber", 0.3), ("eps", 0.1), ("eps", 0.0), ("logistic", 0.0),
         ("hinge", 0.0)]


def _data(name, rng, dtype, shape=(40, 3)):
    p = rng.standard_normal(shape).astype(dtype) * 2
    if name in ("logistic", "hinge"):
        t = rng.choice([-1.0, 1.0], size=shape).astype(dtype)
    else:
        t = rng.standard_normal(shape).astype(dtype)
    return p, t


@pytest.mark.parametrize("name,param", CASES)
def test_value_and_grad_match_numpy(name, param, dtype, n_threads, rng, assert_close):
    p, t = _data(name, rng, dtype, shape=(300, 7))
    loss = make(name, param)
    value = loss(p, t)
    rv, rg = ref_value_grad(name, p.astype(np.float64), t.astype(np.float64), param)
    assert_close(np.array(value), np.array(rv), dtype=dtype, scale=10)
    assert_close(loss.backward(), rg, dtype=dtype, scale=10)


@pytest.mark.parametrize("name,param", CASES)
def test_finite_difference_gradient(name, param, rng):
    p, t = _data(name, rng, np.float64, shape=(6, 4))
    if name in ("l1", "huber", "eps", "hinge"):
        # keep away from the kinks, where the loss is not differentiable
        if name == "hinge":
            p[np.abs(1 - t * p) < 1e-3] += 0.01
        else:
            d = np.abs(p - t)
            p[(d < 1e-3) | (np.abs(d - param) < 1e-3)] += 0.01
    loss = make(name, param)
    loss(p, t)
    g = loss.backward()
    num = numeric_grad(lambda: loss(p, t), p)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["logistic", "hinge"])
def test_zero_one_targets_equal_plus_minus_one(name, rng):
    p = rng.standard_normal(50)
    t01 = rng.integers(0, 2, 50).astype(np.float64)
    loss = make(name, 0.0)
    a = loss(p, t01)
    ga = loss.backward()
    b = loss(p, 2 * t01 - 1)
    np.testing.assert_allclose(a, b, rtol=1e-14)
    np.testing.assert_allclose(ga, loss.backward(), rtol=1e-14)


def test_logistic_is_finite_for_huge_logits():
    p = np.array([1e4, -1e4, 3e38, -3e38], dtype=np.float32)
    t = np.array([1, 1, -1, 1], dtype=np.float32)
    loss = losses.LogisticLoss()
    v = loss(p, t)
    g = loss.backward()
    assert np.isfinite(v) and np.all(np.isfinite(g))
    np.testing.assert_allclose(v, (0 + 1e4 + 3e38 + 3e38) / 4, rtol=1e-6)


@pytest.mark.parametrize("name,param", [c for c in CASES if c[0] in ("l1", "huber", "logistic")])
def test_matches_torch(name, param, rng):
    """(torch has no element-wise epsilon-insensitive or binary hinge loss.)"""
    torch = pytest.importorskip("torch")
    p, t = _data(name, rng, np.float64, shape=(30, 5))
    tp = torch.tensor(p, requires_grad=True)
    if name == "l1":
        tl = torch.nn.L1Loss()(tp, torch.tensor(t))
    elif name == "huber":
        tl = torch.nn.HuberLoss(delta=param)(tp, torch.tensor(t))
    else:
        tl = torch.nn.BCEWithLogitsLoss()(tp, torch.tensor((t + 1) / 2))
    tl.backward()
    loss = make(name, param)
    np.testing.assert_allclose(loss(p, t), tl.item(), rtol=1e-12)
    np.testing.assert_allclose(loss.backward(), tp.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name", ["logistic", "hinge"])
def test_invalid_binary_targets(name):
    loss = make(name, 0.0)
    with pytest.raises(ValueError, match="targets must be in"):
        loss(np.zeros(3), np.array([1.0, 2.0, -1.0]))
    with pytest.raises(ValueError, match="targets must be in"):
        loss(np.zeros(3), np.array([1.0, 0.0, -1.0]))


def test_bad_hyperparameters_and_inputs():
    with pytest.raises(ValueError, match="delta"):
        losses.HuberLoss(0.0)
    with pytest.raises(ValueError, match="delta"):
        losses.HuberLoss(float("nan"))
    with pytest.raises(ValueError, match="epsilon"):
        losses.EpsilonInsensitiveLoss(-0.1)
    with pytest.raises(TypeError):
        losses.L1Loss()(np.zeros(3, np.float32), np.zeros(3, np.float64))
    with pytest.raises(ValueError, match="shape"):
        losses.L1Loss()(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        losses.HuberLoss()(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("make_loss,binary", [
    (losses.L1Loss, False), (losses.HuberLoss, False), (losses.EpsilonInsensitiveLoss, False),
    (losses.LogisticLoss, True), (losses.HingeLoss, True)])
def test_fit_decreases_each_loss(make_loss, binary, rng):
    X = rng.standard_normal((400, 5)).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    y = (X @ w > 0).astype(np.float32) if binary else (X @ w).astype(np.float32)
    model = fn.nn.Sequential(fn.nn.Linear(5, 16, seed=0), fn.nn.Tanh(), fn.nn.Linear(16, 1, seed=1))
    opt = fn.optim.Adam(model.parameters(), lr=1e-2)
    hist = fn.train.fit(model, make_loss(), opt, X, y, epochs=15, batch_size=32, seed=0, progress=False)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
