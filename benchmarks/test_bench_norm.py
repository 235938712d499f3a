"""Normalization layers, forward + backward (dx, dweight, dbias), train mode.

One group per layer (``norm_bn1d``, ``norm_bn2d``, ``norm_layernorm``,
``norm_groupnorm``, ``norm_instancenorm``), each holding the NumPy baseline
(written the way a NumPy user would: keepdims reductions and broadcasting),
fastnn and, when installed, PyTorch eager.  torch runs in this process (see
README.md on torch's libgomp: at 2 threads the shared OpenMP runtime can
distort one side; ``-k "not torch"`` and ``-k torch`` time them apart).  Every
test runs at 1 and 2 threads and checks its last result against the NumPy
baseline after timing (y, dx, dweight, dbias).

| group | input (float32) |
|---|---|
| norm_bn1d | BatchNorm1d(1024), (512, 1024) |
| norm_bn2d | BatchNorm2d(64), (32, 64, 32, 32) |
| norm_layernorm | LayerNorm(768), (2048, 768) |
| norm_groupnorm | GroupNorm(8, 64), (32, 64, 32, 32) |
| norm_instancenorm | InstanceNorm2d(64, affine=True), (32, 64, 32, 32) |
"""
import numpy as np
import pytest

from fastnn import _bench

# name: (layer kind, full shape, quick shape, groups)
WORKLOADS = {
    "bn1d": ("batch", (512, 1024), (64, 128), None),
    "bn2d": ("batch", (32, 64, 32, 32), (4, 16, 8, 8), None),
    "layernorm": ("layer", (2048, 768), (64, 96), None),
    "groupnorm": ("group", (32, 64, 32, 32), (4, 16, 8, 8), 8),
    "instancenorm": ("instance", (32, 64, 32, 32), (4, 16, 8, 8), None),
}
IMPLS = ("numpy", "fastnn", "torch")
EPS = 1e-5


def make_data(name, quick=False, seed=0):
    kind, full, small, groups = WORKLOADS[name]
    shape = small if quick else full
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    pshape = shape[-1:] if kind == "layer" else shape[1:2]
    w = rng.uniform(0.5, 1.5, pshape).astype(np.float32)
    b = rng.standard_normal(pshape).astype(np.float32)
    return kind, groups, x, g, w, b


# -- NumPy baseline ------------------------------------------------------------------------

def _numpy_view(kind, groups, x):
    """(x viewed so that the normalization sets reduce over `axes`, axes, param broadcast shape)."""
    if kind == "batch":
        v = x.reshape(x.shape[0], x.shape[1], -1)
        return v, (0, 2), (1, x.shape[1], 1)
    if kind == "layer":
        return x, (x.ndim - 1,), (1, x.shape[-1])
    n, c = x.shape[:2]
    gr = c if kind == "instance" else groups
    return x.reshape(n, gr, c // gr, -1), (2, 3), (1, gr, c // gr, 1)


def numpy_forward_backward(kind, groups, x, g, w, b):
    """y, dx, dweight, dbias of y = norm(x) * w + b for the loss sum(y * g)."""
    v, axes, ps = _numpy_view(kind, groups, x)
    gv = g.reshape(v.shape)
    wv = w.reshape(ps)
    mean = v.mean(axis=axes, keepdims=True)
    var = v.var(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(var + EPS)
    xhat = (v - mean) * rstd
    y = xhat * wv + b.reshape(ps)
    red = tuple(i for i, k in enumerate(ps) if k == 1)
    dw = (gv * xhat).sum(axis=red).reshape(w.shape)
    db = gv.sum(axis=red).reshape(b.shape)
    gh = gv * wv
    dx = rstd * (gh - gh.mean(axis=axes, keepdims=True) - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    return y.reshape(x.shape), dx.reshape(x.shape), dw, db


def make_numpy(name, quick):
    kind, groups, x, g, w, b = make_data(name, quick)
    out = {}

    def run():
        out["r"] = numpy_forward_backward(kind, groups, x, g, w, b)

    return run, lambda: out["r"]


# -- fastnn ----------------------------------------------------------------------------------

def make_layer(nn, kind, groups, x, w, b):
    """The layer from module ``nn`` (fastnn.nn or torch.nn: same names and arguments)."""
    if kind == "batch":
        layer = (nn.BatchNorm1d if x.ndim in (2, 3) else nn.BatchNorm2d)(x.shape[1])
    elif kind == "layer":
        layer = nn.LayerNorm(x.shape[-1])
    elif kind == "group":
        layer = nn.GroupNorm(groups, x.shape[1])
    else:
        layer = nn.InstanceNorm2d(x.shape[1], affine=True)
    layer.weight.data[...] = w
    layer.bias.data[...] = b
    return layer


def make_fastnn(name, quick):
    from fastnn import nn

    kind, groups, x, g, w, b = make_data(name, quick)
    layer = make_layer(nn, kind, groups, x, w, b)
    out = {}

    def run():
        layer.zero_grad()
        y = layer._forward(x)
        dx = layer._backward(g, True)
        out["r"] = (y, dx)

    return run, lambda: out["r"] + (layer.weight.grad, layer.bias.grad)


# -- torch -----------------------------------------------------------------------------------

def make_torch(name, quick):
    torch = pytest.importorskip("torch")
    kind, groups, x, g, w, b = make_data(name, quick)
    layer = make_layer(torch.nn, kind, groups, x, torch.from_numpy(w), torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g)
    out = {}

    def run():
        layer.zero_grad(set_to_none=True)
        xt.grad = None
        y = layer(xt)
        y.backward(gt)
        out["y"] = y

    def result():
        return (out["y"].detach().numpy(), xt.grad.numpy(), layer.weight.grad.numpy(),
                layer.bias.grad.numpy())

    return run, result


MAKERS = {"numpy": make_numpy, "fastnn": make_fastnn, "torch": make_torch}


def check(name, got, ref):
    for what, a, r in zip(("y", "dx", "dweight", "dbias"), got, ref):
        a = np.asarray(a, np.float64)
        r = np.asarray(r, np.float64)
        assert a.shape == r.shape, (name, what)
        # float32 sums over up to 65536 elements: compare relative to the magnitude
        np.testing.assert_allclose(a, r, rtol=2e-3, atol=2e-3 * max(1.0, float(np.max(np.abs(r)))),
                                   err_msg=f"{name} {what}")


CASES = [
    pytest.param(name, impl, id=f"{name}-{impl}", marks=pytest.mark.benchmark(group=f"norm_{name}"))
    for name in WORKLOADS
    for impl in IMPLS
]


@pytest.mark.parametrize("name, impl", CASES)
def test_norm_forward_backward(benchmark, n_threads, quick, name, impl):
    run, result = MAKERS[impl](name, quick)
    kind, full, small, _ = WORKLOADS[name]
    benchmark.extra_info.update(shape=str(small if quick else full), impl=impl, threads=n_threads)
    with _bench.thread_limit(n_threads):
        benchmark.pedantic(run, rounds=3 if quick else 30, warmup_rounds=1, iterations=1)
    check(name, result(), numpy_forward_backward(*make_data(name, quick)))
