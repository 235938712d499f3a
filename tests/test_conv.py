"""Conv2d, MaxPool2d, AvgPool2d, Flatten: NumPy references, finite differences, torch."""
import tracemalloc

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastnn as fn
from fastnn import losses, nn, ops, optim, train
from fastnn import _checks as C
from fastnn._engine.buffers import Scratch
from fastnn._engine import conv as econv
from fastnn._kernels import _conv

from conftest import numeric_grad


@pytest.fixture(autouse=True)
def _conv_passes_parallel(monkeypatch):
    """Let the conv/pool passes use the threads of the test's ``n_threads`` (a source
    build keeps them serial next to BLAS; see fastnn._engine.conv.pass_threads), and lower the
    batch-split threshold to one multiply-add so that every conv of a 2-thread test
    with N >= 2 also runs split into one part per thread (see fastnn._engine.parallel)."""
    monkeypatch.setattr(econv, "CONV_PARALLEL", True)
    monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)


def test_conv_passes_stay_serial_next_to_a_spinning_openmp_runtime(monkeypatch):
    monkeypatch.setattr(fn._engine.config, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setattr(econv, "CONV_PARALLEL", None)
    with fn.threads(2):
        assert econv.pass_threads(10 ** 9) == (2 if fn._engine.config.openmp_private() else 1)


# -- NumPy references (float64) -------------------------------------------------------------
def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))


def ref_windows(x, k, s, p, fill=0.0):
    """(N, C, OH, OW, kh, kw) windows of the padded input."""
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    return sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]


def ref_conv(x, w, b, s, p):
    win = ref_windows(x.astype(np.float64), w.shape[2:], s, p)
    y = np.einsum("nchwij,ocij->nohw", win, w.astype(np.float64))
    return y if b is None else y + b[None, :, None, None]


def ref_conv_backward(gy, x, w, s, p):
    gy, x, w = (a.astype(np.float64) for a in (gy, x, w))
    kh, kw = w.shape[2:]
    oh, ow = gy.shape[2:]
    win = ref_windows(x, (kh, kw), s, p)
    gw = np.einsum("nohw,nchwij->ocij", gy, win)
    gxp = np.zeros(_pad(x, p).shape)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i:i + s[0] * oh:s[0], j:j + s[1] * ow:s[1]] += np.einsum("nohw,oc->nchw", gy, w[:, :, i, j])
    gx = gxp[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]]
    return gx, gw, gy.sum(axis=(0, 2, 3))


def ref_max_pool(x, k, s, p):
    return ref_windows(x.astype(np.float64), k, s, p, fill=-np.inf).max(axis=(4, 5))


def ref_avg_pool(x, k, s, p, count_include_pad=True):
    win = ref_windows(x.astype(np.float64), k, s, p)
    total = win.sum(axis=(4, 5))
    if count_include_pad:
        return total / (k[0] * k[1])
    ones = ref_windows(np.ones((1, 1) + x.shape[2:]), k, s, p).sum(axis=(4, 5))
    return total / ones


GEOMS = [
    # (N, C, H, W, O, kernel, stride, padding)
    (2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1)),
    (3, 2, 8, 6, 5, (3, 2), (2, 2), (0, 1)),
    (1, 1, 5, 5, 2, (5, 5), (1, 1), (2, 2)),
    (2, 3, 6, 6, 4, (1, 1), (1, 1), (0, 0)),
    (2, 4, 11, 7, 3, (5, 3), (2, 1), (2, 0)),
    (1, 2, 4, 4, 3, (4, 4), (1, 1), (0, 0)),  # kernel = image: 1x1 output
]
GEOM_IDS = [f"n{g[0]}c{g[1]}_{g[2]}x{g[3]}_o{g[4]}_k{g[5]}s{g[6]}p{g[7]}" for g in GEOMS]


@pytest.mark.parametrize("geom", GEOMS, ids=GEOM_IDS)
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_conv2d_matches_numpy(geom, activation, dtype, n_threads, rng, assert_close):
    n, c, h, w, o, k, s, p = geom
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c) + k).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    z = ref_conv(x, wt, b, s, p)
    ref = {None: z, "relu": np.maximum(z, 0), "tanh": np.tanh(z)}[activation]
    y = ops.conv2d(x, wt, b, s, p, activation=activation)
    assert y.dtype == dtype and y.shape == ref.shape
    assert_close(y, ref, scale=10)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gz = {None: gy, "relu": gy * (z > 0), "tanh": gy * (1 - np.tanh(z) ** 2)}[activation]
    gx, gw, gb = ops.conv2d_backward(gy, x, wt, y, s, p, activation=activation)
    rgx, rgw, rgb = ref_conv_backward(gz, x, wt, s, p)
    assert_close(gx, rgx, scale=10)
    assert_close(gw, rgw, scale=30)
    assert_close(gb, rgb, scale=30)


def test_im2col_col2im_are_adjoint(dtype, n_threads, rng, assert_close):
    """<im2col(x), c> == <x, col2im(c)>: col2im is the exact transpose of im2col."""
    x = rng.standard_normal((3, 2, 7, 6)).astype(dtype)
    k, s, p, oh, ow = (3, 2), (2, 1), (1, 1), 4, 7
    cols = np.empty((3, 2 * 6, oh * ow), dtype)
    _conv.im2col(x, cols, k, s, p, oh, ow, fn.get_num_threads())
    ref = ref_windows(x.astype(np.float64), k, s, p).transpose(0, 1, 4, 5, 2, 3).reshape(cols.shape)
    assert_close(cols, ref)
    c = rng.standard_normal(cols.shape).astype(dtype)
    gx = np.empty_like(x)
    _conv.col2im(c, gx, k, s, p, oh, ow, fn.get_num_threads())
    assert_close(np.vdot(cols.astype(np.float64), c), np.vdot(x.astype(np.float64), gx), dtype=dtype, scale=100)


POOLS = [((2, 2), None, (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0)), ((2, 3), (3, 1), (0, 1))]


@pytest.mark.parametrize("k, s, p", POOLS)
def test_max_pool_matches_numpy(k, s, p, dtype, n_threads, rng, assert_close):
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    y, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
    s_ = k if s is None else s
    ref = ref_max_pool(x, k, s_, p)
    np.testing.assert_array_equal(y, ref.astype(dtype))
    flat = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.reshape(2, 3, -1), 2).reshape(y.shape), y)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = ops.max_pool2d_backward(gy, idx, x.shape)
    ref_gx = np.zeros((2, 3, 72))
    for a in range(2):
        for b in range(3):
            np.add.at(ref_gx[a, b], idx[a, b].ravel(), gy[a, b].ravel())
    assert_close(gx, ref_gx.reshape(x.shape))


@pytest.mark.parametrize("k, s, p", POOLS)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_numpy(k, s, p, count_include_pad, dtype, n_threads, rng, assert_close):
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    y = ops.avg_pool2d(x, k, s, p, count_include_pad)
    s_ = k if s is None else s
    assert_close(y, ref_avg_pool(x, k, s_, p, count_include_pad))
    # backward is the transpose of forward: <avg(x), g> == <x, avg_backward(g)>
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = ops.avg_pool2d_backward(gy, x.shape, k, s, p, count_include_pad)
    assert_close(np.vdot(y.astype(np.float64), gy), np.vdot(x.astype(np.float64), gx), dtype=dtype, scale=100)


def ref_max_pool_argmax(x, k, s):
    """Max pooling (no padding) with torch's rule, window by window in row-major order:
    an element wins if it is greater than the current max or is NaN (so the first
    maximum wins, and the last NaN)."""
    n, c, h, w = x.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    y = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64)
    for a, b, i, j in np.ndindex(n, c, oh, ow):
        m, mi = -np.inf, None
        for u in range(i * s[0], i * s[0] + k[0]):
            for v in range(j * s[1], j * s[1] + k[1]):
                e = x[a, b, u, v]
                if mi is None or e > m or e != e:
                    m, mi = e, u * w + v
        y[a, b, i, j], idx[a, b, i, j] = m, mi
    return y, idx


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 12), (1, 1, 5, 1024), (1, 1, 3, 2050),
                                   (2, 2, 6, 7)])
def test_max_pool_2x2_ties_and_nans_follow_torchs_rule(shape, dtype, n_threads, rng):
    # few distinct values (ties in most windows) and NaNs; even widths take the
    # two-pass block path (widths over its buffer and odd widths the general loop)
    x = rng.integers(0, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.15] = np.nan
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    ry, ridx = ref_max_pool_argmax(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


def test_max_pool_propagates_nan():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    y = ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and np.all(y.ravel()[1:] == 0)


# -- finite differences of every layer, float64 ----------------------------------------------
def _layer_fd(layer, x, rng, params=True):
    y = layer.forward(x)
    gy = rng.standard_normal(y.shape)

    def f():
        return float(np.vdot(layer.forward(x), gy))

    layer.zero_grad()
    layer.forward(x)
    gx = layer.backward(gy)
    np.testing.assert_allclose(gx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    if params:
        for name, prm in layer.named_parameters():
            np.testing.assert_allclose(prm.grad, numeric_grad(f, prm.data), rtol=1e-6, atol=1e-8,
                                       err_msg=name)


@pytest.mark.parametrize("geom", GEOMS[:5], ids=GEOM_IDS[:5])
def test_conv2d_layer_finite_differences(geom, rng):
    n, c, h, w, o, k, s, p = geom
    layer = nn.Conv2d(c, o, k, s, p, dtype=np.float64, seed=1)
    _layer_fd(layer, rng.standard_normal((n, c, h, w)), rng)


def test_conv2d_relu_fused_in_sequential_finite_differences(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, seed=0), nn.Tanh(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 2, dtype=np.float64, seed=1))
    assert model._build_plan()[0][1] is not None  # Conv2d + Tanh run fused
    _layer_fd(model, rng.standard_normal((2, 2, 4, 4)), rng)


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1),
                                   nn.AvgPool2d((2, 3), 1, (1, 0), count_include_pad=False),
                                   nn.Flatten()], ids=lambda m: repr(m))
def test_pool_and_flatten_finite_differences(layer, rng):
    x = rng.standard_normal((2, 3, 6, 5))  # distinct values: max pooling is differentiable here
    _layer_fd(layer, x, rng, params=False)


def test_bias_false_and_accumulating_grads(rng, assert_close):
    x = rng.standard_normal((2, 3, 6, 6))
    conv = nn.Conv2d(3, 4, 3, bias=False, dtype=np.float64, seed=0)
    assert conv.bias is None and [n for n, _ in conv.named_parameters()] == ["weight"]
    gy = rng.standard_normal((2, 4, 4, 4))
    conv.forward(x)
    conv.backward(gy)
    once = conv.weight.grad.copy()
    conv.forward(x)
    conv.backward(gy)
    assert_close(conv.weight.grad, 2 * once)
    assert_close(once, ref_conv_backward(gy, x, conv.weight.data, (1, 1), (0, 0))[1])


def test_flatten_start_end_dims():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    assert nn.Flatten().forward(x).shape == (2, 60)
    assert nn.Flatten(2).forward(x).shape == (2, 3, 20)
    assert nn.Flatten(0, 1).forward(x).shape == (6, 4, 5)
    with pytest.raises(ValueError, match="does not fit"):
        nn.Flatten(3, 1).forward(x)


# -- torch ------------------------------------------------------------------------------------
TORCH_CASES = [  # (N, C, H, W, O, kernel, stride, padding)
    (4, 3, 12, 12, 5, 1, 1, 0), (4, 3, 12, 12, 5, 3, 1, 1), (4, 3, 12, 12, 5, 5, 2, 2),
    (1, 1, 9, 13, 2, (3, 5), (2, 1), (1, 2)), (3, 2, 7, 5, 6, (2, 3), 2, 0), (2, 4, 8, 8, 3, 3, 2, 1),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[str(c) for c in TORCH_CASES])
def test_conv2d_matches_torch(case, dtype, n_threads, rng, assert_close):
    torch = pytest.importorskip("torch")
    n, c, h, w, o, k, s, p = case
    tconv = torch.nn.Conv2d(c, o, k, s, p).to(torch.float64 if dtype == np.float64 else torch.float32)
    conv = nn.Conv2d(c, o, k, s, p, dtype=dtype)
    conv.load_state_dict(tconv.state_dict())
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = tconv(tx)
    y = conv.forward(x)
    assert_close(y, ty.detach().numpy(), scale=10)
    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(gy))
    gx = conv.backward(gy)
    assert_close(gx, tx.grad.numpy(), scale=10)
    assert_close(conv.weight.grad, tconv.weight.grad.numpy(), scale=30)
    assert_close(conv.bias.grad, tconv.bias.grad.numpy(), scale=30)
    assert set(conv.state_dict()) == set(tconv.state_dict())


@pytest.mark.parametrize("kind", ["max", "avg", "avg_nopad_count"])
@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 2, 1), ((3, 2), (2, 1), (1, 1))])
def test_pooling_matches_torch(kind, k, s, p, dtype, rng, assert_close):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    if kind == "max":
        layer, tlayer = nn.MaxPool2d(k, s, p), torch.nn.MaxPool2d(k, s, p)
    else:
        cip = kind == "avg"
        layer, tlayer = nn.AvgPool2d(k, s, p, cip), torch.nn.AvgPool2d(k, s, p, count_include_pad=cip)
    tx = torch.tensor(x, requires_grad=True)
    ty = tlayer(tx)
    y = layer.forward(x)
    assert_close(y, ty.detach().numpy())
    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(gy))
    assert_close(layer.backward(gy), tx.grad.numpy())


def lenet(dtype=np.float32, seed=0):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, dtype=dtype, seed=seed), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, dtype=dtype, seed=seed + 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 120, dtype=dtype, seed=seed + 2), nn.ReLU(),
        nn.Linear(120, 84, dtype=dtype, seed=seed + 3), nn.ReLU(), nn.Linear(84, 10, dtype=dtype, seed=seed + 4),
    )


def test_lenet_matches_torch_logits_and_gradients(dtype, n_threads, rng, assert_close):
    torch = pytest.importorskip("torch")
    T = torch.nn
    tmodel = T.Sequential(T.Conv2d(1, 6, 5), T.ReLU(), T.MaxPool2d(2), T.Conv2d(6, 16, 5), T.ReLU(),
                          T.MaxPool2d(2), T.Flatten(), T.Linear(256, 120), T.ReLU(), T.Linear(120, 84),
                          T.ReLU(), T.Linear(84, 10))
    tmodel = tmodel.to(torch.float64 if dtype == np.float64 else torch.float32)
    model = lenet(dtype)
    model.load_state_dict(tmodel.state_dict())
    x = rng.standard_normal((16, 1, 28, 28)).astype(dtype)
    labels = rng.integers(0, 10, 16)
    tx = torch.tensor(x)
    tlogits = tmodel(tx)
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(labels))
    tloss.backward()
    logits = model.forward(x)
    assert_close(logits, tlogits.detach().numpy(), scale=30)
    loss = losses.CrossEntropyLoss()
    value = loss(logits, labels)
    assert_close(value, tloss.item(), dtype=dtype, scale=30)
    model.backward(loss.backward())
    for (name, prm), tp in zip(model.named_parameters(), tmodel.parameters()):
        assert_close(prm.grad, tp.grad.numpy(), scale=100, err_msg=name)
    back = dict(tmodel.state_dict())
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    for k, v in back.items():
        np.testing.assert_array_equal(tmodel.state_dict()[k].numpy(), v.numpy())


# -- training ---------------------------------------------------------------------------------
def _stripes(n=240, seed=0):
    """8x8 images: class 0 has a horizontal bar, class 1 a vertical one, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 0.3
    pos = rng.integers(1, 7, n)
    for i in range(n):
        if y[i] == 0:
            X[i, 0, pos[i], :] += 1.5
        else:
            X[i, 0, :, pos[i]] += 1.5
    return X, y


def test_cnn_trains_with_fit_and_allocates_nothing_per_step():
    X, y = _stripes()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, seed=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64, 2, seed=1))
    loss = losses.CrossEntropyLoss()

    class Probe:
        calls = 0
        base = peak = None

        def on_batch_end(self, step, logs):
            Probe.calls += 1
            if Probe.calls == 3:
                tracemalloc.start()
                Probe.base = tracemalloc.get_traced_memory()[0]
            elif Probe.calls == 8:
                Probe.peak = tracemalloc.get_traced_memory()[1] - Probe.base
                tracemalloc.stop()

    hist = train.fit(model, loss, optim.Adam(model.parameters(), lr=0.01), X, y, epochs=8, batch_size=24,
                     seed=0, progress=False, callbacks=[Probe()])
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert train.evaluate(model, loss, X, y)["accuracy"] > 0.9
    # steps 3..8: only small Python objects, never an activation- or column-sized array
    assert Probe.peak is not None and Probe.peak < 24 * 4 * 8 * 8 * 4 / 2


# -- bad input -------------------------------------------------------------------------------
def test_conv2d_bad_input():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        conv.forward(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        conv.forward(np.zeros((2, 2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="float32"):
        conv.forward(np.zeros((2, 3, 8, 8), np.float64))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv.forward(np.zeros((2, 3, 2, 8), np.float32))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        nn.Conv2d(3, 4, 3, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        nn.Conv2d(3, 4, 3, padding=-1)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        nn.Conv2d(3, 4, (3, 0))
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(3, 4, 2.5)
    with pytest.raises(ValueError, match="pair"):
        nn.Conv2d(3, 4, (3, 3, 3))
    with pytest.raises(ValueError, match="out_channels"):
        nn.Conv2d(3, 0, 3)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Conv2d(3, 4, 3).backward(np.zeros((1, 4, 1, 1), np.float32))
    y = conv.forward(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="output's shape"):
        conv.backward(np.zeros((2, 4, 5, 6), np.float32))
    with pytest.raises(TypeError, match="dtype float32"):
        conv.backward(np.zeros(y.shape, np.float64))


def test_conv2d_bad_input_leaves_parameters_unchanged():
    conv = nn.Conv2d(2, 3, 3, seed=0)
    before = {k: v.copy() for k, v in conv.state_dict().items()}
    for bad in (np.zeros((1, 3, 5, 5), np.float32), np.full((1, 2), np.nan, np.float32)):
        with pytest.raises(ValueError):
            conv.forward(bad)
    for k, v in conv.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_functional_bad_input(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="channels"):
        ops.conv2d(x, w[:, :2])
    with pytest.raises(TypeError, match="dtype"):
        ops.conv2d(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="bias"):
        ops.conv2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="grad_y must have shape"):
        ops.conv2d_backward(np.zeros((2, 4, 3, 3), np.float32), x, w)
    with pytest.raises(ValueError, match="y .the forward output. is required"):
        ops.conv2d_backward(np.zeros((2, 4, 4, 4), np.float32), x, w, activation="relu")
    with pytest.raises(ValueError, match="at most half"):
        ops.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.MaxPool2d(7).forward(x)
    with pytest.raises(ValueError, match="indices must lie"):
        ops.max_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), np.full((2, 3, 3, 3), 99), x.shape)
    with pytest.raises(ValueError, match="grad_y must have shape"):
        ops.avg_pool2d_backward(np.zeros((2, 3, 2, 2), np.float32), x.shape, 2)


def test_read_only_and_non_contiguous_input_are_not_written(rng, assert_close):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    conv = nn.Conv2d(3, 2, 3, padding=1, seed=0)
    ref = conv.forward(x)
    ro = x.copy()
    ro.flags.writeable = False
    assert_close(conv.forward(ro), ref)
    xt = np.asfortranarray(x)
    assert_close(conv.forward(xt), ref)
    assert_close(ops.max_pool2d(x[:, :, ::2, ::2], 2), ref_max_pool(x[:, :, ::2, ::2], (2, 2), (2, 2), (0, 0)))


# -- the direct stride-1 kernel (econv.DIRECT) ---------------------------------------------------
DIRECT_GEOMS = [
    # (N, C, H, W, O, kernel, padding): widths that fill the float32 (16) / float64 (8) lanes
    (2, 3, 9, 32, 5, (3, 3), (1, 1)),
    (3, 1, 20, 16, 6, (5, 5), (2, 2)),
    (2, 4, 7, 18, 9, (3, 3), (0, 0)),     # OW = 16
    (1, 2, 6, 17, 3, (2, 2), (0, 0)),     # OW = 16, even kernel
    (2, 3, 5, 30, 4, (3, 5), (2, 1)),     # OW = 28 (f64) / 28 (f32: 7/8 of 32)
    (2, 5, 4, 12, 2, (3, 3), (3, 3)),     # OW = 16; padding > k - 1: input gradient by GEMM
]


@pytest.mark.parametrize("geom", DIRECT_GEOMS, ids=[f"{g[:5]}k{g[5]}p{g[6]}" for g in DIRECT_GEOMS])
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_direct_conv_matches_gemm_and_numpy(geom, activation, dtype, n_threads, rng, assert_close,
                                            monkeypatch):
    """The direct forward and input gradient give the GEMM path's and NumPy's numbers."""
    n, c, h, w, o, k, p = geom
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c) + k).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    z = ref_conv(x, wt, b, (1, 1), p)
    ref = {None: z, "relu": np.maximum(z, 0), "tanh": np.tanh(z)}[activation]
    gy = rng.standard_normal(ref.shape).astype(dtype)
    gz = {None: gy, "relu": gy * (z > 0), "tanh": gy * (1 - np.tanh(z) ** 2)}[activation]
    rgx, rgw, rgb = ref_conv_backward(gz, x, wt, (1, 1), p)
    seen = []
    real = econv.prepare

    def spy(*args):
        st = real(*args)
        seen.append(st.direct)
        return st

    monkeypatch.setattr(econv, "prepare", spy)
    for direct in (True, False):
        monkeypatch.setattr(econv, "DIRECT", direct)
        y = ops.conv2d(x, wt, b, 1, p, activation=activation)
        assert_close(y, ref, scale=10)
        gx, gw, gb = ops.conv2d_backward(gy, x, wt, y, 1, p, activation=activation)
        assert_close(gx, rgx, scale=10)
        assert_close(gw, rgw, scale=30)
        assert_close(gb, rgb, scale=30)
    assert seen == [True, True, False, False]


def test_direct_path_only_where_rows_fill_its_vectors():
    """Direct for stride 1, kernels above 1x1 and rows filling >= 7/8 of the vectors."""
    assert econv.direct_fits(32, np.float32) and econv.direct_fits(16, np.float32)
    assert econv.direct_fits(28, np.float32) and not econv.direct_fits(24, np.float32)
    assert econv.direct_fits(24, np.float64) and not econv.direct_fits(12, np.float64)
    for width, k, s, expected in [(18, 3, 1, True), (18, 1, 1, False), (18, 3, 2, False),
                                  (14, 3, 1, False)]:   # OW = 16, 18, 8, 12
        x = np.zeros((1, 2, 18, width), np.float32)
        st = econv.prepare(x, np.zeros((4, 2, k, k), np.float32), (s, s), (0, 0),
                               *C.conv_geometry(x.shape, (4, 2, k, k), (s, s), (0, 0))[1:],
                               Scratch())
        assert st.direct is expected, (width, k, s)


def test_direct_kernel_reads_only_its_images(rng):
    """conv_direct on images [1, 3) of 4: other outputs untouched, other inputs unread."""
    x = rng.standard_normal((4, 2, 6, 16)).astype(np.float32)
    w = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    ref = ref_conv(x, w, None, (1, 1), (1, 1))
    x[0] = x[3] = np.nan
    y = np.full(ref.shape, np.nan, np.float32)
    _conv.conv_direct(x, w, None, y, 1, 3, (1, 1), 0, 0.0)
    np.testing.assert_allclose(y[1:3], ref[1:3], rtol=1e-5, atol=1e-5)
    assert np.isnan(y[[0, 3]]).all()


def test_direct_conv_layer_finite_differences(rng):
    """float64 finite differences through the direct forward and input gradient."""
    layer = nn.Conv2d(3, 4, 3, padding=1, dtype=np.float64, seed=2)
    x = rng.standard_normal((2, 3, 4, 16))
    layer.forward(x)
    assert layer._saved[2].direct
    _layer_fd(layer, x, rng)
