"""Dropout (forward + backward) and the element-wise losses (value + gradient).

Groups ``dropout`` and ``loss_<name>``, each with the NumPy baseline (written
the way a NumPy user would: a boolean mask from a Generator; the loss and its
gradient as array expressions), fastnn and, when installed, PyTorch eager
(in this process; see README.md on torch's libgomp).  Every test runs at 1 and
2 threads and checks its result after timing: the losses against the NumPy
value and gradient, dropout by its invariants (kept elements scaled by
1/(1-p), dropped ones zero, the same mask in backward, the keep rate).
"""
import numpy as np
import pytest

from fastnn import _bench

SHAPE, SHAPE_QUICK = (256, 4096), (64, 256)   # 1M elements (activations of a wide layer)
P_DROP = 0.5


def _data(quick, seed=0):
    rng = np.random.default_rng(seed)
    shape = SHAPE_QUICK if quick else SHAPE
    return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)


# -- dropout -----------------------------------------------------------------------------------
def _dropout_numpy(quick):
    x, g = _data(quick)
    rng = np.random.default_rng(1)
    out = {}

    def run():
        mask = rng.random(x.shape, dtype=np.float32) >= P_DROP
        scale = np.float32(1.0 / (1.0 - P_DROP))
        y = x * mask * scale
        gx = g * mask * scale
        out["r"] = (y, gx)
    return run, lambda: out["r"]


def _dropout_fastnn(quick):
    from fastnn import nn

    x, g = _data(quick)
    layer = nn.Dropout(P_DROP, seed=1)
    out = {}

    def run():
        y = layer._forward(x)
        gx = layer._backward(g, True)
        out["r"] = (y, gx)
    return run, lambda: out["r"]


def _dropout_torch(quick):
    torch = pytest.importorskip("torch")
    x, g = _data(quick)
    layer = torch.nn.Dropout(P_DROP)
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g)
    out = {}

    def run():
        xt.grad = None
        y = layer(xt)
        y.backward(gt)
        out["r"] = (y, xt.grad)
    return run, lambda: tuple(t.detach().numpy() for t in out["r"])


@pytest.mark.benchmark(group="dropout")
@pytest.mark.parametrize("impl", ["numpy", "fastnn", "torch"])
def test_dropout_forward_backward(benchmark, n_threads, quick, impl):
    run, result = {"numpy": _dropout_numpy, "fastnn": _dropout_fastnn, "torch": _dropout_torch}[impl](quick)
    benchmark.extra_info.update(shape=str(SHAPE_QUICK if quick else SHAPE), p=P_DROP, impl=impl,
                                threads=n_threads)
    with _bench.thread_limit(n_threads):
        benchmark.pedantic(run, rounds=3 if quick else 50, warmup_rounds=1, iterations=1)
    x, g = _data(quick)
    y, gx = result()
    kept = y != 0
    scale = 1.0 / (1.0 - P_DROP)
    np.testing.assert_allclose(y[kept], x[kept] * scale, rtol=1e-6)
    np.testing.assert_allclose(gx[kept], g[kept] * scale, rtol=1e-6)
    assert np.all(gx[~kept] == 0)
    assert abs(kept.mean() - (1 - P_DROP)) < 0.01


# -- losses --------------------------------------------------------------------------------------
def _targets(name, quick):
    pred, t = _data(quick)
    if name in ("logistic", "hinge"):
        t = np.where(t > 0, 1.0, -1.0).astype(np.float32)
    return pred, t


def numpy_loss(name, pred, t):
    """(mean loss, gradient w.r.t. pred) in float64 math, the NumPy way."""
    p, y = pred.astype(np.float64), t.astype(np.float64)
    n = p.size
    d = p - y
    if name == "mse":
        return float(np.mean(d * d)), 2 * d / n
    if name == "l1":
        return float(np.mean(np.abs(d))), np.sign(d) / n
    if name == "huber":
        a = np.abs(d)
        return (float(np.mean(np.where(a <= 1.0, 0.5 * d * d, a - 0.5))),
                np.clip(d, -1.0, 1.0) / n)
    if name == "logistic":
        z = y * p
        return float(np.mean(np.logaddexp(0, -z))), -y / (1 + np.exp(z)) / n
    if name == "hinge":
        m = 1 - y * p
        return float(np.mean(np.maximum(m, 0))), np.where(m > 0, -y, 0.0) / n
    raise ValueError(name)


def _loss_numpy(name, quick):
    pred, t = _targets(name, quick)
    out = {}

    def run():
        out["r"] = numpy_loss(name, pred, t)
    return run, lambda: out["r"]


def _loss_fastnn(name, quick):
    from fastnn import losses

    pred, t = _targets(name, quick)
    loss = {"mse": losses.MSELoss, "l1": losses.L1Loss, "huber": losses.HuberLoss,
            "logistic": losses.LogisticLoss, "hinge": losses.HingeLoss}[name]()
    out = {}

    def run():
        out["r"] = (loss(pred, t), loss.backward())
    return run, lambda: out["r"]


def _loss_torch(name, quick):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pred, t = _targets(name, quick)
    pt = torch.from_numpy(pred).requires_grad_(True)
    tt = torch.from_numpy(t)
    t01 = (tt + 1) / 2
    fns = {"mse": lambda: F.mse_loss(pt, tt), "l1": lambda: F.l1_loss(pt, tt),
           "huber": lambda: F.huber_loss(pt, tt, delta=1.0),
           "logistic": lambda: F.binary_cross_entropy_with_logits(pt, t01),
           "hinge": lambda: torch.clamp(1 - tt * pt, min=0).mean()}
    out = {}

    def run():
        pt.grad = None
        v = fns[name]()
        v.backward()
        out["r"] = (v, pt.grad)
    return run, lambda: (out["r"][0].item(), out["r"][1].numpy())


LOSSES = ("mse", "l1", "huber", "logistic", "hinge")
CASES = [pytest.param(name, impl, id=f"{name}-{impl}", marks=pytest.mark.benchmark(group=f"loss_{name}"))
         for name in LOSSES for impl in ("numpy", "fastnn", "torch")]


@pytest.mark.parametrize("name, impl", CASES)
def test_loss_value_and_gradient(benchmark, n_threads, quick, name, impl):
    run, result = {"numpy": _loss_numpy, "fastnn": _loss_fastnn, "torch": _loss_torch}[impl](name, quick)
    benchmark.extra_info.update(shape=str(SHAPE_QUICK if quick else SHAPE), impl=impl, threads=n_threads)
    with _bench.thread_limit(n_threads):
        benchmark.pedantic(run, rounds=3 if quick else 50, warmup_rounds=1, iterations=1)
    value, grad = result()
    ref_value, ref_grad = numpy_loss(name, *_targets(name, quick))
    np.testing.assert_allclose(value, ref_value, rtol=1e-4)
    scale = float(np.max(np.abs(ref_grad)))
    np.testing.assert_allclose(np.asarray(grad, np.float64) / scale, ref_grad / scale, rtol=1e-4, atol=1e-5)
