"""Conv2d forward and backward on three shapes, and a LeNet-5 training step."""
import numpy as np

from fastnn import _baselines as B
from fastnn._zoo import LENET_SPEC, fastnn_cnn

from ..harness import Impl, Workload, check_layer_step, torch_module
from .common import torch_cnn

__all__ = ["CONV_SHAPES", "CONV_SHAPES_QUICK", "ConvStep", "LeNetStep"]


CONV_SHAPES = ((64, 3, 32, 32, 3, 1), (64, 32, 64, 16, 3, 1), (128, 1, 8, 28, 5, 0))
CONV_SHAPES_QUICK = ((8, 3, 8, 16, 3, 1), (8, 8, 16, 8, 3, 1), (16, 1, 4, 14, 5, 0))


class ConvStep(Workload):
    """Conv2d forward + backward (grads of input, weight and bias), NCHW float32, stride 1."""

    impl_names = ("fastnn", "numpy", "torch")
    repeats = 20

    def __init__(self, n, c_in, c_out, hw, k, padding, seed=0):
        self.shape = (n, c_in, c_out, hw, k, padding)
        self.name = f"conv_n{n}_{c_in}x{c_out}_{hw}_k{k}p{padding}"
        self.title = f"Conv2d fwd+bwd N={n} {c_in}->{c_out} {hw}x{hw} k{k} pad {padding}"
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((n, c_in, hw, hw), dtype=np.float32)
        self.W, self.b = B.cnn_init((("conv", c_out, k, padding),), (c_in, hw, hw), seed=seed)
        oh = hw + 2 * padding - k + 1
        self.gy = rng.standard_normal((n, c_out, oh, oh), dtype=np.float32)

    def _make_numpy(self):
        p = self.shape[5]
        out = {}

        def run():
            y, cols = B.conv2d_forward(self.x, self.W, self.b, 1, p)
            out["r"] = (y,) + B.conv2d_backward(self.gy, self.x.shape, self.W, cols, 1, p)
        return Impl(run, lambda: out["r"])

    def _make_fastnn(self):
        from fastnn import nn

        n, ci, co, hw, k, p = self.shape
        conv = nn.Conv2d(ci, co, k, padding=p)
        conv.load_state_dict({"weight": self.W, "bias": self.b})
        out = {}

        def run():
            conv.zero_grad()
            y = conv.forward(self.x)
            gx = conv.backward(self.gy)
            out["r"] = (y, gx, conv.weight.grad, conv.bias.grad)
        return Impl(run, lambda: out["r"])

    def _make_torch(self):
        torch = torch_module(required=True)
        n, ci, co, hw, k, p = self.shape
        conv = torch.nn.Conv2d(ci, co, k, padding=p)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(self.W))
            conv.bias.copy_(torch.from_numpy(self.b))
        x = torch.from_numpy(self.x.copy()).requires_grad_(True)
        gy = torch.from_numpy(self.gy)
        out = {}

        def run():
            conv.zero_grad(set_to_none=True)
            x.grad = None
            y = conv(x)
            y.backward(gy)
            out["r"] = (y, x.grad, conv.weight.grad, conv.bias.grad)
        return Impl(run, lambda: tuple(t.detach().numpy() for t in out["r"]))

    def reference(self, calls):
        return super().reference(1)

    def check(self, name, impl, ref):
        check_layer_step(self.title, name, impl, ref)


class LeNetStep(Workload):
    """One LeNet-5-like training step: forward, cross-entropy, backward, Adam (lr 1e-3).

    conv5x5 1->6, relu, maxpool2, conv5x5 6->16, relu, maxpool2, fc 256-120-84-10, on a
    fixed batch of random 28x28 images with random labels; every implementation
    starts from the same weights, and the check compares the loss of the last step.
    """

    name = "lenet_step"
    impl_names = ("fastnn", "numpy", "torch")
    repeats = 20

    def __init__(self, batch=128, seed=0, lr=1e-3):
        self.batch, self.lr = batch, lr
        self.title = f"LeNet-5 training step B={batch} 28x28 (Adam)"
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        self.y = rng.integers(0, 10, batch).astype(np.int64)
        self.params0 = B.cnn_init(LENET_SPEC, (1, 28, 28), seed=seed)

    def _make_numpy(self):
        cnn = B.NumpyCNN(LENET_SPEC, self.params0, lr=self.lr)
        out = {}

        def run():
            out["loss"] = cnn.train_step(self.x, self.y)
        return Impl(run, lambda: out["loss"])

    def _make_fastnn(self):
        from fastnn import losses, optim
        from fastnn.nn.module import backward_step, forward_step

        model = fastnn_cnn(LENET_SPEC, self.params0)
        loss = losses.CrossEntropyLoss()
        opt = optim.Adam(model.parameters(), lr=self.lr)
        out = {}

        def run():
            opt.zero_grad()
            # the step of fit(): no input gradient for the first layer
            out["loss"] = loss(forward_step(model, self.x), self.y)
            backward_step(model, loss.backward(), False)
            opt.step()
        return Impl(run, lambda: out["loss"])

    def _make_torch(self):
        torch = torch_module(required=True)
        model = torch_cnn(LENET_SPEC, self.params0)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)
        x, y = torch.from_numpy(self.x), torch.from_numpy(self.y)
        out = {}

        def run():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            out["loss"] = loss.item()
        return Impl(run, lambda: out["loss"])

    def check(self, name, impl, ref):
        if name == "numpy" and ref is impl:
            return
        got, want = float(impl.result()), float(ref.result())
        if not abs(got - want) <= 0.02 * abs(want) + 1e-3:
            raise AssertionError(f"{self.title} [{name}]: loss after {impl.calls} steps {got:.5f}, "
                                 f"NumPy {want:.5f}")
