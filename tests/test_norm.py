"""Normalization layers: BatchNorm1d/2d, LayerNorm, GroupNorm, InstanceNorm2d.

NumPy references (float64) for forward and backward in train and eval mode,
float64 finite differences of input and parameter gradients, the 2-thread
kernel paths, torch comparisons (outputs, gradients, running statistics over
several steps, state_dict both ways), bad input, and a small model trained with
``fastnn.train.fit``.
"""
import numpy as np
import pytest

import fastnn as fn
from fastnn import nn
from conftest import numeric_grad


# --------------------------------------------------------------------------------------
# NumPy reference: every layer is "normalize x3 = (A, K, B) over axes, then affine"
# --------------------------------------------------------------------------------------

def _sets(layer, x):
    """(view of x in float64 whose reduction axes are `axes`, axes, channel broadcaster)."""
    x = np.asarray(x, np.float64)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        n, c = x.shape[:2]
        v = x.reshape(n, c, -1)
        return v, (0, 2), lambda p: np.asarray(p, np.float64).reshape(1, c, 1)
    if isinstance(layer, nn.GroupNorm):
        n, c = x.shape[:2]
        g = layer.num_groups
        v = x.reshape(n, g, c // g, -1)
        return v, (2, 3), lambda p: np.asarray(p, np.float64).reshape(1, g, c // g, 1)
    if isinstance(layer, nn.InstanceNorm2d):
        c = layer.num_features
        v = x.reshape(-1, c, x.shape[-2] * x.shape[-1])
        return v, (2,), lambda p: np.asarray(p, np.float64).reshape(1, c, 1)
    if isinstance(layer, nn.LayerNorm):
        d = int(np.prod(layer.normalized_shape))
        v = x.reshape(-1, d)
        return v, (1,), lambda p: np.asarray(p, np.float64).reshape(1, d)
    raise AssertionError(type(layer))


def _uses_batch_stats(layer):
    track = getattr(layer, "track_running_stats", False)
    return layer.training or not track


def ref_forward(layer, x):
    """Reference output (float64, shaped like x) and the (mean, var) used."""
    v, axes, ch = _sets(layer, x)
    if _uses_batch_stats(layer):
        mean = v.mean(axis=axes, keepdims=True)
        var = v.var(axis=axes, keepdims=True)
    else:
        if isinstance(layer, nn.InstanceNorm2d):
            mean, var = ch(layer.running_mean), ch(layer.running_var)
        else:
            mean, var = ch(layer.running_mean), ch(layer.running_var)
    xhat = (v - mean) / np.sqrt(var + layer.eps)
    y = xhat
    if layer.weight is not None:
        y = y * ch(layer.weight.data)
    if layer.bias is not None:
        y = y + ch(layer.bias.data)
    return y.reshape(np.shape(x)), mean, var


def ref_backward(layer, x, g):
    """Reference (dx, dweight, dbias) for the loss sum(y * g)."""
    v, axes, ch = _sets(layer, x)
    gv = np.asarray(g, np.float64).reshape(v.shape)
    _, mean, var = ref_forward(layer, x)
    rstd = 1.0 / np.sqrt(var + layer.eps)
    xhat = (v - mean) * rstd
    w = ch(layer.weight.data) if layer.weight is not None else 1.0
    gh = gv * w
    if _uses_batch_stats(layer):
        dx = rstd * (gh - gh.mean(axis=axes, keepdims=True)
                     - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    else:
        dx = rstd * gh
    # parameter grads: sum over everything except the parameter's own axes
    shape_w = layer.weight.shape if layer.weight is not None else None
    dw = db = None
    if shape_w is not None:
        full = ch(np.zeros(int(np.prod(shape_w)))).shape
        red = tuple(i for i, k in enumerate(full) if k == 1)
        dw = (gv * xhat).sum(axis=red).reshape(shape_w)
        if layer.bias is not None:
            db = gv.sum(axis=red).reshape(shape_w)
    return dx.reshape(np.shape(x)), dw, db


# --------------------------------------------------------------------------------------
# layer factories (weights set to non-trivial values)
# --------------------------------------------------------------------------------------

CASES = {
    "bn1d_2d": (lambda dt: nn.BatchNorm1d(5, dtype=dt), (16, 5)),
    "bn1d_3d": (lambda dt: nn.BatchNorm1d(4, dtype=dt), (6, 4, 7)),
    "bn2d": (lambda dt: nn.BatchNorm2d(3, dtype=dt), (5, 3, 4, 6)),
    "ln_1": (lambda dt: nn.LayerNorm(12, dtype=dt), (7, 12)),
    "ln_2": (lambda dt: nn.LayerNorm((4, 5), dtype=dt), (3, 2, 4, 5)),
    "ln_noaffine": (lambda dt: nn.LayerNorm(9, elementwise_affine=False, dtype=dt), (5, 9)),
    "ln_nobias": (lambda dt: nn.LayerNorm(9, bias=False, dtype=dt), (5, 9)),
    "gn": (lambda dt: nn.GroupNorm(3, 6, dtype=dt), (4, 6, 5, 3)),
    "gn_3d": (lambda dt: nn.GroupNorm(2, 4, dtype=dt), (3, 4, 10)),
    "gn_2d_input": (lambda dt: nn.GroupNorm(2, 8, dtype=dt), (5, 8)),
    "in2d": (lambda dt: nn.InstanceNorm2d(3, dtype=dt), (4, 3, 5, 6)),
    "in2d_affine": (lambda dt: nn.InstanceNorm2d(3, affine=True, dtype=dt), (4, 3, 5, 6)),
    "in2d_tracked": (lambda dt: nn.InstanceNorm2d(3, affine=True, track_running_stats=True, dtype=dt),
                     (4, 3, 5, 6)),
    "bn2d_noaffine": (lambda dt: nn.BatchNorm2d(3, affine=False, dtype=dt), (5, 3, 4, 4)),
    "bn1d_untracked": (lambda dt: nn.BatchNorm1d(5, track_running_stats=False, dtype=dt), (8, 5)),
}


def make(case, dtype, rng):
    factory, shape = CASES[case]
    layer = factory(dtype)
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) if p is layer.weight else rng.standard_normal(p.shape)
    if getattr(layer, "track_running_stats", False):
        layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    x = (rng.standard_normal(shape) * 2.0 + 0.5).astype(dtype)
    return layer, x


# --------------------------------------------------------------------------------------
# forward / backward vs the NumPy reference
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_backward_match_numpy(case, mode, dtype, n_threads, rng, assert_close):
    layer, x = make(case, dtype, rng)
    layer.train(mode == "train")
    y_ref, _, _ = ref_forward(layer, x)
    y = layer.forward(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert_close(y, y_ref, scale=10)
    g = rng.standard_normal(x.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = ref_backward(layer, x, g)
    layer.zero_grad()
    dx = layer.backward(g)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert_close(dx, dx_ref, scale=30)
    if layer.weight is not None:
        assert_close(layer.weight.grad, dw_ref, scale=30)
    if layer.bias is not None:
        assert_close(layer.bias.grad, db_ref, scale=30)


@pytest.mark.parametrize("case", ["bn1d_2d", "bn2d", "gn", "ln_2", "in2d_affine"])
def test_two_threads_equal_one_thread(case, rng, monkeypatch):
    """The parallel split (per-thread accumulators) gives the 1-thread result."""
    layer, x = make(case, np.float64, rng)
    g = rng.standard_normal(x.shape)
    outs = []
    monkeypatch.setattr(fn._engine.config, "PARALLEL_MIN_ELEMENTS", 1)
    for nt in (1, 2):
        lay, _ = make(case, np.float64, np.random.default_rng(7))
        for p_src, p in zip(layer.parameters(), lay.parameters()):
            p.data[...] = p_src.data
        with fn.threads(nt):
            y = lay.forward(x)
            dx = lay.backward(g)
        outs.append((y, dx, [p.grad.copy() for p in lay.parameters()]))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-10, atol=1e-12)
    for a, b in zip(outs[0][2], outs[1][2]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_normalized_output_statistics(rng):
    """Without affine, train-mode BatchNorm2d output has per-channel mean 0, var 1."""
    bn = nn.BatchNorm2d(4, affine=False, dtype=np.float64)
    x = rng.standard_normal((8, 4, 5, 5)) * np.array([1, 3, 0.1, 10]).reshape(1, 4, 1, 1) + 7
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1 / (1 + bn.eps / x.var(axis=(0, 2, 3))), rtol=1e-10)


def test_large_mean_float32_is_stable(rng, assert_close):
    """Shifted sums: |mean| >> std does not cancel in float32."""
    for layer in (nn.BatchNorm1d(3), nn.LayerNorm(64), nn.GroupNorm(1, 3)):
        shape = (256, 3) if not isinstance(layer, nn.LayerNorm) else (8, 64)
        x = (1000.0 + rng.standard_normal(shape)).astype(np.float32)
        y = layer.forward(x)
        y_ref, _, _ = ref_forward(layer, x)
        # float32 input rounding of x (~6e-5 absolute) bounds the attainable accuracy
        np.testing.assert_allclose(y, y_ref, atol=2e-4)


# --------------------------------------------------------------------------------------
# finite differences (float64)
# --------------------------------------------------------------------------------------

FD_CASES = ["bn1d_2d", "bn1d_3d", "bn2d", "ln_2", "ln_nobias", "gn", "in2d_affine", "in2d_tracked"]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", FD_CASES)
def test_finite_differences(case, mode, rng):
    layer, x = make(case, np.float64, rng)
    x = x[:3] if x.shape[0] > 3 else x
    layer.train(mode == "train")
    track = getattr(layer, "track_running_stats", False)
    bufs = [getattr(layer, k) for k in ("running_mean", "running_var")] if track else []
    saved = [a.copy() for a in bufs]
    g = rng.standard_normal(x.shape)

    def loss():
        for a, v in zip(bufs, saved):  # running statistics must not drift between evaluations
            a[...] = v
        return float(np.sum(layer._forward(x) * g))

    loss()
    layer.zero_grad()
    dx = layer.backward(g).copy()
    assert np.max(np.abs(dx - numeric_grad(loss, x))) < 1e-6 * max(1.0, np.max(np.abs(dx)))
    for name, p in layer.named_parameters():
        num = numeric_grad(loss, p.data)
        assert np.max(np.abs(p.grad - num)) < 1e-6 * max(1.0, np.max(np.abs(num))), name


# --------------------------------------------------------------------------------------
# running statistics, modes, buffers
# --------------------------------------------------------------------------------------

def test_running_stats_update_numpy(rng, dtype, assert_close):
    bn = nn.BatchNorm2d(3, momentum=0.2, dtype=dtype)
    rm = np.zeros(3)
    rv = np.ones(3)
    for step in range(4):
        x = (rng.standard_normal((4, 3, 3, 5)) * (step + 1) + step).astype(dtype)
        bn.forward(x)
        m = x.astype(np.float64).mean(axis=(0, 2, 3))
        v = x.astype(np.float64).var(axis=(0, 2, 3), ddof=1)
        rm = 0.8 * rm + 0.2 * m
        rv = 0.8 * rv + 0.2 * v
    assert_close(bn.running_mean, rm, scale=10)
    assert_close(bn.running_var, rv, scale=10)
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == np.int64
    assert int(bn.num_batches_tracked) == 4
    bn.eval()
    x = rng.standard_normal((2, 3, 3, 5)).astype(dtype)
    before = bn.running_mean.copy()
    y = bn.forward(x)
    assert_close(y, (x - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 1e-5), scale=10)
    np.testing.assert_array_equal(bn.running_mean, before)  # eval does not update
    assert int(bn.num_batches_tracked) == 4


def test_cumulative_average_momentum_none(rng):
    bn = nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    xs = [rng.standard_normal((10, 2)) + k for k in range(3)]
    for x in xs:
        bn.forward(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(axis=0) for x in xs], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, np.mean([x.var(axis=0, ddof=1) for x in xs], axis=0),
                               rtol=1e-12)


def test_untracked_batchnorm_uses_batch_stats_in_eval(rng):
    bn = nn.BatchNorm1d(3, track_running_stats=False, dtype=np.float64).eval()
    assert "running_mean" not in bn.state_dict()
    x = rng.standard_normal((6, 3)) * 3 + 1
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)


def test_state_dict_names_and_order():
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm1d(3, affine=False).state_dict()) == ["running_mean", "running_var",
                                                                 "num_batches_tracked"]
    assert list(nn.LayerNorm((2, 3)).state_dict()) == ["weight", "bias"]
    assert nn.LayerNorm((2, 3)).weight.shape == (2, 3)
    assert list(nn.GroupNorm(2, 4).state_dict()) == ["weight", "bias"]
    assert list(nn.InstanceNorm2d(3).state_dict()) == []
    assert list(nn.InstanceNorm2d(3, affine=True, track_running_stats=True).state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    bn.load_state_dict({"weight": np.full(3, 2.0), "bias": np.zeros(3), "running_mean": np.ones(3),
                        "running_var": np.full(3, 4.0), "num_batches_tracked": np.array(7)})
    assert int(bn.num_batches_tracked) == 7 and bn.running_var[0] == 4.0


def test_grad_accumulates_and_buffers_are_reused(rng):
    bn = nn.BatchNorm1d(4, dtype=np.float64)
    x = rng.standard_normal((8, 4))
    g = rng.standard_normal((8, 4))
    y1 = bn._forward(x)
    bn.backward(g)
    w1 = bn.weight.grad.copy()
    y2 = bn._forward(x)
    bn.backward(g)
    assert y1 is y2  # the steady state allocates no new output
    np.testing.assert_allclose(bn.weight.grad, 2 * w1, rtol=1e-12)
    bn.zero_grad()
    bn._forward(x)
    bn.backward(g)
    np.testing.assert_allclose(bn.weight.grad, w1, rtol=1e-12)


def test_no_input_grad(rng):
    gn = nn.GroupNorm(2, 4, dtype=np.float64)
    x = rng.standard_normal((3, 4, 5))
    gn._forward(x)
    assert gn._backward(rng.standard_normal(x.shape), False) is None
    assert np.any(gn.weight.grad != 0)


def test_non_contiguous_input(rng, assert_close):
    x = rng.standard_normal((6, 4, 5, 5)).transpose(0, 1, 3, 2)
    for layer in (nn.BatchNorm2d(4, dtype=np.float64), nn.GroupNorm(2, 4, dtype=np.float64),
                  nn.InstanceNorm2d(4, dtype=np.float64), nn.LayerNorm(5, dtype=np.float64)):
        assert not x.flags.c_contiguous
        assert_close(layer.forward(x), ref_forward(layer, np.ascontiguousarray(x))[0])
        g = rng.standard_normal(x.shape)[:, :, ::1].transpose(0, 1, 3, 2)
        assert_close(layer.backward(g), ref_backward(layer, x, g)[0])


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

def test_batch_of_one_raises_in_train_only():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn.forward(np.ones((1, 3), np.float32))
    assert int(bn.num_batches_tracked) == 0
    bn.eval()
    assert bn.forward(np.ones((1, 3), np.float32)).shape == (1, 3)
    inorm = nn.InstanceNorm2d(2)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        inorm.forward(np.ones((3, 2, 1, 1), np.float32))


@pytest.mark.parametrize("layer, x, err, match", [
    (nn.BatchNorm1d(3), np.ones((4, 2), np.float32), ValueError, "expects 3 channels"),
    (nn.BatchNorm1d(3), np.ones((4, 3, 2, 2), np.float32), ValueError, r"\(N, C\) or \(N, C, L\)"),
    (nn.BatchNorm1d(3), np.ones(3, np.float32), ValueError, "Received 1-D"),
    (nn.BatchNorm2d(3), np.ones((4, 3), np.float32), ValueError, r"\(N, C, H, W\)"),
    (nn.BatchNorm2d(3), np.ones((0, 3, 2, 2), np.float32), ValueError, "non-empty"),
    (nn.BatchNorm2d(3), np.ones((2, 3, 2, 2), np.float64), TypeError, "float32"),
    (nn.LayerNorm(4), np.ones((3, 5), np.float32), ValueError, "normalized_shape"),
    (nn.LayerNorm((2, 4)), np.ones(4, np.float32), ValueError, "trailing"),
    (nn.GroupNorm(2, 4), np.ones((3, 6, 2), np.float32), ValueError, r"\(N, 4, \*\)"),
    (nn.GroupNorm(2, 4), np.ones(4, np.float32), ValueError, "Received"),
    (nn.GroupNorm(2, 4, dtype=np.float64), np.ones((3, 4), np.float32), TypeError, "float64"),
    (nn.InstanceNorm2d(3), np.ones((2, 4, 3, 3), np.float32), ValueError, "expects 3 channels"),
    (nn.InstanceNorm2d(3), np.ones((2, 3, 3), np.float64), TypeError, "float32"),
    (nn.InstanceNorm2d(3), np.ones((2, 3), np.float32), ValueError, r"\(N, C, H, W\)"),
    (nn.BatchNorm1d(3), [[1.0, 2.0, 3.0]], TypeError, "numpy array"),
])
def test_bad_input(layer, x, err, match):
    state = {k: v.copy() for k, v in layer.state_dict().items()}
    with pytest.raises(err, match=match):
        layer.forward(x)
    for k, v in layer.state_dict().items():  # nothing was modified
        np.testing.assert_array_equal(v, state[k])


@pytest.mark.parametrize("make_layer, err, match", [
    (lambda: nn.GroupNorm(3, 4), ValueError, "divisible"),
    (lambda: nn.GroupNorm(0, 4), ValueError, "num_groups"),
    (lambda: nn.BatchNorm1d(0), ValueError, "num_features"),
    (lambda: nn.BatchNorm1d(2.5), TypeError, "num_features"),
    (lambda: nn.BatchNorm2d(3, eps=0.0), ValueError, "eps"),
    (lambda: nn.BatchNorm2d(3, eps=-1e-5), ValueError, "eps"),
    (lambda: nn.LayerNorm(3, eps=float("nan")), ValueError, "eps"),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError, "momentum"),
    (lambda: nn.BatchNorm1d(3, momentum=-0.1), ValueError, "momentum"),
    (lambda: nn.InstanceNorm2d(3, momentum=float("inf")), ValueError, "momentum"),
    (lambda: nn.BatchNorm1d(3, momentum="0.1"), TypeError, "momentum"),
    (lambda: nn.LayerNorm(()), TypeError, "normalized_shape"),
    (lambda: nn.LayerNorm((3, 0)), ValueError, "normalized_shape"),
    (lambda: nn.BatchNorm1d(3, dtype=np.int32), TypeError, "dtype"),
    (lambda: nn.BatchNorm1d(3, affine="yes"), TypeError, "affine"),
])
def test_bad_hyperparameters(make_layer, err, match):
    with pytest.raises(err, match=match):
        make_layer()


def test_bad_grad_and_backward_before_forward(rng):
    bn = nn.BatchNorm1d(3)
    with pytest.raises(RuntimeError, match="before forward"):
        bn.backward(np.ones((4, 3), np.float32))
    bn.forward(rng.standard_normal((4, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        bn.backward(np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        bn.backward(np.ones((4, 3), np.float64))


# --------------------------------------------------------------------------------------
# composition: Sequential, Conv2d, fit
# --------------------------------------------------------------------------------------

def test_sequential_with_conv2d(rng):
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.InstanceNorm2d(4))
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    y = model.forward(x)
    assert y.shape == (3, 4, 6, 6)
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0, atol=1e-5)
    gx = model.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert gx.shape == x.shape and np.all(np.isfinite(gx))
    assert np.any(model[1].weight.grad != 0)
    assert list(model.state_dict())[2:7] == ["1.weight", "1.bias", "1.running_mean", "1.running_var",
                                             "1.num_batches_tracked"]


def test_fit_small_model_with_batchnorm(rng):
    from fastnn import losses, optim, train

    n = 600
    X = rng.standard_normal((n, 6)).astype(np.float32) * np.array([1, 3, 0.3, 1, 1, 2], np.float32) + 5
    y = ((X[:, 0] - 5) + (X[:, 1] - 5) / 3 > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(6, 16, seed=0), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2, seed=1))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    hist = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=8, batch_size=32, seed=0,
                     progress=False)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    bn = model[1]
    assert int(bn.num_batches_tracked) == 8 * int(np.ceil(n / 32))
    model.eval()
    acc = np.mean(np.argmax(model.forward(X), axis=1) == y)
    assert acc > 0.9


# --------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------

def _torch_twin(torch, layer):
    tn = torch.nn
    if isinstance(layer, nn.BatchNorm1d):
        t = tn.BatchNorm1d(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    elif isinstance(layer, nn.BatchNorm2d):
        t = tn.BatchNorm2d(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    elif isinstance(layer, nn.InstanceNorm2d):
        t = tn.InstanceNorm2d(layer.num_features, layer.eps, layer.momentum, layer.affine,
                              layer.track_running_stats)
    elif isinstance(layer, nn.GroupNorm):
        t = tn.GroupNorm(layer.num_groups, layer.num_channels, layer.eps, layer.affine)
    else:
        t = tn.LayerNorm(layer.normalized_shape, layer.eps, layer.elementwise_affine,
                         bias=layer.bias is not None)
    t = t.double() if layer._dtype == np.float64 else t.float()
    t.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    return t


TORCH_CASES = [(case, 0.1) for case in sorted(CASES)] + [
    (case, None) for case in sorted(CASES) if case.startswith(("bn", "in2d"))]


@pytest.mark.parametrize("case, momentum", TORCH_CASES)
def test_matches_torch_over_several_steps(case, momentum, dtype, rng, assert_close):
    torch = pytest.importorskip("torch")
    factory, shape = CASES[case]
    layer, _ = make(case, dtype, rng)
    if hasattr(layer, "momentum"):
        layer.momentum = momentum
    t = _torch_twin(torch, layer)
    for step in range(4):
        mode = step < 3
        layer.train(mode)
        t.train(mode)
        x = (rng.standard_normal(shape) * (1 + step) + step).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        yt = t(xt)
        yt.backward(torch.from_numpy(g))
        y = layer.forward(x)
        dx = layer.backward(g)
        assert_close(y, yt.detach().numpy(), scale=10, err_msg=f"step {step} output")
        assert_close(dx, xt.grad.numpy(), scale=30, err_msg=f"step {step} input grad")
        for name, p in layer.named_parameters():
            assert_close(p.grad, getattr(t, name).grad.numpy(), scale=30, err_msg=f"step {step} {name}.grad")
        sd = t.state_dict()
        for k, v in layer.state_dict().items():
            tv = sd[k].numpy()
            assert v.shape == tv.shape and v.dtype == tv.dtype, k
            if v.dtype.kind == "f":
                assert_close(v, tv, scale=10, err_msg=f"step {step} {k}")
            else:
                np.testing.assert_array_equal(v, tv)


def test_state_dict_both_ways_with_torch(rng):
    torch = pytest.importorskip("torch")
    t = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        t.weight.uniform_()
        t.bias.uniform_()
    t.train()
    for _ in range(3):
        t(torch.randn(4, 3, 5, 5) * 2 + 1)
    bn = nn.BatchNorm2d(3)
    bn.load_state_dict(t.state_dict())
    assert int(bn.num_batches_tracked) == 3
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    bn.eval()
    t.eval()
    np.testing.assert_allclose(bn.forward(x), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    # and back
    bn.train()
    bn.forward(x * 3)
    t2 = torch.nn.BatchNorm2d(3)
    t2.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in bn.state_dict().items()})
    assert int(t2.num_batches_tracked) == 4
    np.testing.assert_allclose(t2.running_var.numpy(), bn.running_var)
    ln = nn.LayerNorm((2, 3))
    tl = torch.nn.LayerNorm((2, 3))
    with torch.no_grad():
        tl.weight.normal_()
    ln.load_state_dict(tl.state_dict())
    np.testing.assert_array_equal(ln.weight.data, tl.weight.detach().numpy())


def test_unbatched_inputs_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 5))
    inorm = nn.InstanceNorm2d(3, affine=True, dtype=np.float64)
    inorm.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    t = _torch_twin(torch, inorm)
    g = rng.standard_normal(x.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    t(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(inorm.forward(x), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(inorm.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    ln = nn.LayerNorm((4, 5), dtype=np.float64)  # a single sample: input shape == normalized_shape
    y = ln.forward(x[0])
    np.testing.assert_allclose(y, torch.nn.LayerNorm((4, 5)).double()(torch.from_numpy(x[0])).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
