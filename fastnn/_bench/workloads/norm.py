"""Normalization layers, forward + backward (dx, dweight, dbias), train mode.

The NumPy baseline is written the way a NumPy user would: keepdims reductions and
broadcasting.  fastnn runs the layer's step as ``fit`` does (``forward_step`` /
``backward_step``: results in the layer's own buffers).  The check compares
y, dx, dweight and dbias with the NumPy baseline's.
"""
import numpy as np

from ..harness import Impl, Workload, torch_module

__all__ = ["NORM_WORKLOADS", "EPS", "norm_forward_backward", "NormStep"]

# name: (layer kind, full shape, quick shape, groups)
NORM_WORKLOADS = {
    "bn1d": ("batch", (512, 1024), (64, 128), None),
    "bn2d": ("batch", (32, 64, 32, 32), (4, 16, 8, 8), None),
    "layernorm": ("layer", (2048, 768), (64, 96), None),
    "groupnorm": ("group", (32, 64, 32, 32), (4, 16, 8, 8), 8),
    "instancenorm": ("instance", (32, 64, 32, 32), (4, 16, 8, 8), None),
}
EPS = 1e-5
_TITLES = {"batch": "BatchNorm", "layer": "LayerNorm", "group": "GroupNorm",
           "instance": "InstanceNorm2d"}   # BatchNorm gets "1d"/"2d" from the input's rank


def _numpy_view(kind, groups, x):
    """(x viewed so that the normalization sets reduce over ``axes``, axes, param broadcast shape)."""
    if kind == "batch":
        v = x.reshape(x.shape[0], x.shape[1], -1)
        return v, (0, 2), (1, x.shape[1], 1)
    if kind == "layer":
        return x, (x.ndim - 1,), (1, x.shape[-1])
    n, c = x.shape[:2]
    gr = c if kind == "instance" else groups
    return x.reshape(n, gr, c // gr, -1), (2, 3), (1, gr, c // gr, 1)


def norm_forward_backward(kind, groups, x, g, w, b):
    """NumPy baseline: y, dx, dweight, dbias of y = norm(x) * w + b for the loss sum(y * g).

    Parameters
    ----------
    kind : {"batch", "layer", "group", "instance"}
    groups : int or None
        Number of groups (``kind="group"`` only).
    x, g : ndarray of shape (N, C, ...) or (N, F)
        Input and output gradient.
    w, b : ndarray of shape (C,) (or (F,) for ``kind="layer"``)
    """
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
    dx = rstd * (gh - gh.mean(axis=axes, keepdims=True)
                 - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
    return y.reshape(x.shape), dx.reshape(x.shape), dw, db


def _make_layer(nn, kind, groups, x):
    """The layer from module ``nn`` (fastnn.nn or torch.nn: same names and arguments)."""
    if kind == "batch":
        return (nn.BatchNorm1d if x.ndim in (2, 3) else nn.BatchNorm2d)(x.shape[1])
    if kind == "layer":
        return nn.LayerNorm(x.shape[-1])
    if kind == "group":
        return nn.GroupNorm(groups, x.shape[1])
    return nn.InstanceNorm2d(x.shape[1], affine=True)


class NormStep(Workload):
    """One normalization layer's forward and backward in train mode (float32)."""

    impl_names = ("fastnn", "numpy", "torch")
    repeats = 30

    def __init__(self, key, quick=False, seed=0):
        kind, full, small, groups = NORM_WORKLOADS[key]
        shape = small if quick else full
        self.key, self.kind, self.groups = key, kind, groups
        self.name = f"norm_{key}"
        layer = _TITLES[kind] + (("1d" if len(shape) <= 3 else "2d") if kind == "batch" else "")
        layer += f"({groups})" if groups else ""
        self.title = f"{layer} fwd+bwd {tuple(shape)}"
        rng = np.random.default_rng(seed)
        self.x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        self.g = rng.standard_normal(shape).astype(np.float32)
        pshape = shape[-1:] if kind == "layer" else shape[1:2]
        self.w = rng.uniform(0.5, 1.5, pshape).astype(np.float32)
        self.b = rng.standard_normal(pshape).astype(np.float32)

    def _make_numpy(self):
        out = {}

        def run():
            out["r"] = norm_forward_backward(self.kind, self.groups, self.x, self.g,
                                             self.w, self.b)
        return Impl(run, lambda: out["r"])

    def _make_fastnn(self):
        from fastnn import nn
        from fastnn.nn.module import backward_step, forward_step

        layer = _make_layer(nn, self.kind, self.groups, self.x)
        layer.weight.data[...] = self.w
        layer.bias.data[...] = self.b
        out = {}

        def run():
            layer.zero_grad()
            y = forward_step(layer, self.x)
            out["r"] = (y, backward_step(layer, self.g, True))
        return Impl(run, lambda: out["r"] + (layer.weight.grad, layer.bias.grad))

    def _make_torch(self):
        torch = torch_module(required=True)
        layer = _make_layer(torch.nn, self.kind, self.groups, self.x)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(self.w))
            layer.bias.copy_(torch.from_numpy(self.b))
        xt = torch.from_numpy(self.x).requires_grad_(True)
        gt = torch.from_numpy(self.g)
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
        return Impl(run, result)

    def reference(self, calls):
        return super().reference(1)

    def check(self, name, impl, ref):
        if name == "numpy" and ref is impl:
            return
        for what, a, r in zip(("y", "dx", "dweight", "dbias"), impl.result(), ref.result()):
            a = np.asarray(a, np.float64)
            r = np.asarray(r, np.float64)
            if a.shape != r.shape:
                raise AssertionError(f"{self.title} [{name}] {what}: shape {a.shape}, "
                                     f"expected {r.shape}")
            # float32 sums over up to 65536 elements: compare relative to the magnitude
            scale = max(1.0, float(np.max(np.abs(r))))
            if not np.allclose(a, r, rtol=2e-3, atol=2e-3 * scale):
                raise AssertionError(
                    f"{self.title} [{name}] {what} differs from the NumPy baseline "
                    f"(max |diff| = {np.max(np.abs(a - r)):.3g}, rtol=2e-3, atol={2e-3 * scale:.3g})")
