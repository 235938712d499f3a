"""Linear + ReLU forward and backward on one batch, and its matrix products alone."""
import numpy as np

from fastnn import _baselines as B

from ..harness import Impl, Workload, check_layer_step, torch_module

__all__ = ["DENSE_SHAPES", "DENSE_SHAPES_QUICK", "DenseStep"]


DENSE_SHAPES = ((256, 784, 1024), (64, 1024, 1024), (4096, 256, 256))
DENSE_SHAPES_QUICK = ((64, 196, 256), (16, 256, 256), (512, 64, 64))


class DenseStep(Workload):
    """Linear + ReLU forward and backward (grads of x, W, b) on one batch."""

    impl_names = ("fastnn", "numpy", "torch", "gemm")
    repeats = 30

    def __init__(self, batch, in_features, out_features, seed=0):
        self.shape = (batch, in_features, out_features)
        self.name = f"dense_b{batch}_{in_features}x{out_features}"
        self.title = f"Linear+ReLU fwd+bwd B={batch} {in_features}->{out_features}"
        rng = np.random.default_rng(seed)
        self.W, self.b = B.mlp_init((in_features, out_features), seed=seed)
        self.x = rng.standard_normal((batch, in_features), dtype=np.float32)
        gy = rng.standard_normal((batch, out_features), dtype=np.float32)
        # No gradient where the pre-activation is within rounding of 0, so that a
        # ReLU mask flipped by a different summation order cannot fail the check.
        z = self.x @ self.W.T + self.b
        gy[np.abs(z) < 1e-3] = 0.0
        self.gy = gy

    def _make_numpy(self):
        out = {}

        def run():
            y = B.dense_forward(self.x, self.W, self.b, "relu")
            out["r"] = (y,) + B.dense_backward(self.gy, self.x, self.W, y, "relu")
            return out["r"]
        return Impl(run, lambda: out["r"])

    def _make_fastnn(self):
        from fastnn import nn

        lin = nn.Linear(self.shape[1], self.shape[2])
        model = nn.Sequential(lin, nn.ReLU())
        model.load_state_dict({"0.weight": self.W, "0.bias": self.b})
        named = dict(model.named_parameters())
        w, b = named["0.weight"], named["0.bias"]
        x, gy = self.x, self.gy
        out = {}

        def run():
            model.zero_grad()
            y = model.forward(x)
            gx = model.backward(gy)
            out["r"] = (y, gx, w.grad, b.grad)
            return out["r"]
        return Impl(run, lambda: out["r"])

    def _make_torch(self):
        torch = torch_module(required=True)
        lin = torch.nn.Linear(self.shape[1], self.shape[2])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(self.W))
            lin.bias.copy_(torch.from_numpy(self.b))
        x = torch.from_numpy(self.x.copy()).requires_grad_(True)
        gy = torch.from_numpy(self.gy)
        relu = torch.nn.functional.relu
        out = {}

        def run():
            lin.zero_grad(set_to_none=True)
            x.grad = None
            y = relu(lin(x))
            y.backward(gy)
            out["r"] = (y, x.grad, lin.weight.grad, lin.bias.grad)
            return out["r"]
        return Impl(run, lambda: tuple(t.detach().numpy() for t in out["r"]))

    def _make_gemm(self):
        batch, in_f, out_f = self.shape
        x, W, gy = self.x, self.W, self.gy
        y = np.empty((batch, out_f), np.float32)
        gx = np.empty((batch, in_f), np.float32)
        gW = np.empty((out_f, in_f), np.float32)

        def run():
            np.matmul(x, W.T, out=y)
            np.matmul(gy, W, out=gx)
            np.matmul(gy.T, x, out=gW)
        return Impl(run)

    def reference(self, calls):
        return super().reference(1)

    def check(self, name, impl, ref):
        if name != "gemm":
            check_layer_step(self.title, name, impl, ref)

    def extra(self, ms):
        g = ms.get("gemm")
        if not g:
            return {}, ""
        frac = {k: max(0.0, (t - g) / t) for k, t in ms.items() if t and k != "gemm"}
        text = f"GEMMs {g:.2f} ms; outside GEMM: " + ", ".join(
            f"{k} {100 * v:.0f}%" for k, v in frac.items())
        return {"gemm_ms": g, "outside_gemm_fraction": frac}, text
