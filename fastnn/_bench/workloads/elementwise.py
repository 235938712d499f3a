"""Dropout (forward + backward) and the element-wise losses (value + gradient).

The NumPy baselines are written the way a NumPy user would: a boolean mask from a
Generator; the loss and its gradient as array expressions.  The losses are checked
against the NumPy value and gradient (float64 math); dropout by its invariants
(kept elements scaled by 1/(1-p), dropped ones zero, the same mask in backward, the
keep rate), since every library draws its own mask.
"""
import numpy as np

from ..harness import Impl, Workload, torch_module

__all__ = ["ELEMENTWISE_SHAPE", "ELEMENTWISE_SHAPE_QUICK", "P_DROP", "LOSSES", "numpy_loss",
           "DropoutStep", "LossStep"]

# 1M elements: the activations of a wide layer
ELEMENTWISE_SHAPE, ELEMENTWISE_SHAPE_QUICK = (256, 4096), (64, 256)
P_DROP = 0.5
LOSSES = ("mse", "l1", "huber", "logistic", "hinge")
_LOSS_CLASSES = {"mse": "MSELoss", "l1": "L1Loss", "huber": "HuberLoss",
                 "logistic": "LogisticLoss", "hinge": "HingeLoss"}


def _data(quick, seed=0):
    rng = np.random.default_rng(seed)
    shape = ELEMENTWISE_SHAPE_QUICK if quick else ELEMENTWISE_SHAPE
    return (rng.standard_normal(shape, dtype=np.float32),
            rng.standard_normal(shape, dtype=np.float32))


def numpy_loss(name, pred, t):
    """NumPy baseline: (mean loss, gradient w.r.t. ``pred``) in float64 math.

    Parameters
    ----------
    name : {"mse", "l1", "huber", "logistic", "hinge"}
        Huber uses delta 1; logistic and hinge take targets in {-1, 1}.
    pred, t : ndarray of the same shape
    """
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
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


class DropoutStep(Workload):
    """Dropout(p) forward and backward, train mode, on a float32 array."""

    name = "dropout"
    impl_names = ("fastnn", "numpy", "torch")
    repeats = 50

    def __init__(self, quick=False, p=P_DROP):
        self.p = p
        self.x, self.g = _data(quick)
        self.title = f"Dropout({p}) fwd+bwd {self.x.shape}"

    def _make_numpy(self):
        rng = np.random.default_rng(1)
        scale = np.float32(1.0 / (1.0 - self.p))
        out = {}

        def run():
            mask = rng.random(self.x.shape, dtype=np.float32) >= self.p
            out["r"] = (self.x * mask * scale, self.g * mask * scale)
        return Impl(run, lambda: out["r"])

    def _make_fastnn(self):
        from fastnn import nn
        from fastnn.nn.module import backward_step, forward_step

        layer = nn.Dropout(self.p, seed=1)
        out = {}

        def run():
            y = forward_step(layer, self.x)
            out["r"] = (y, backward_step(layer, self.g, True))
        return Impl(run, lambda: out["r"])

    def _make_torch(self):
        torch = torch_module(required=True)
        layer = torch.nn.Dropout(self.p)
        xt = torch.from_numpy(self.x).requires_grad_(True)
        gt = torch.from_numpy(self.g)
        out = {}

        def run():
            xt.grad = None
            y = layer(xt)
            y.backward(gt)
            out["r"] = (y, xt.grad)
        return Impl(run, lambda: tuple(t.detach().numpy() for t in out["r"]))

    def reference(self, calls):
        return None

    def check(self, name, impl, ref=None):
        y, gx = (np.asarray(a) for a in impl.result())
        kept = y != 0
        scale = 1.0 / (1.0 - self.p)
        where = f"{self.title} [{name}]"
        if not np.allclose(y[kept], self.x[kept] * scale, rtol=1e-6, atol=0):
            raise AssertionError(f"{where}: kept outputs are not x / (1 - p)")
        if not np.allclose(gx[kept], self.g[kept] * scale, rtol=1e-6, atol=0):
            raise AssertionError(f"{where}: gradient of kept elements is not g / (1 - p)")
        if not np.all(gx[~kept] == 0):
            raise AssertionError(f"{where}: gradient is not zero where the output was dropped")
        rate = float(kept.mean())
        if not abs(rate - (1 - self.p)) < 0.01:
            raise AssertionError(f"{where}: keep rate {rate:.4f}, expected {1 - self.p}")


class LossStep(Workload):
    """An element-wise loss's mean value and its gradient w.r.t. the prediction."""

    impl_names = ("fastnn", "numpy", "torch")
    repeats = 50

    def __init__(self, loss, quick=False):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")
        self.loss = loss
        self.name = f"loss_{loss}"
        self.pred, t = _data(quick)
        if loss in ("logistic", "hinge"):
            t = np.where(t > 0, 1.0, -1.0).astype(np.float32)
        self.t = t
        self.title = f"{_LOSS_CLASSES[loss]} value+grad {self.pred.shape}"
        self._ref64 = None

    def _make_numpy(self):
        out = {}

        def run():
            out["r"] = numpy_loss(self.loss, self.pred, self.t)
        return Impl(run, lambda: out["r"])

    def _make_fastnn(self):
        from fastnn import losses

        loss = getattr(losses, _LOSS_CLASSES[self.loss])()
        out = {}

        def run():
            out["r"] = (loss(self.pred, self.t), loss.backward())
        return Impl(run, lambda: out["r"])

    def _make_torch(self):
        torch = torch_module(required=True)
        F = torch.nn.functional
        pt = torch.from_numpy(self.pred).requires_grad_(True)
        tt = torch.from_numpy(self.t)
        t01 = (tt + 1) / 2
        fns = {"mse": lambda: F.mse_loss(pt, tt), "l1": lambda: F.l1_loss(pt, tt),
               "huber": lambda: F.huber_loss(pt, tt, delta=1.0),
               "logistic": lambda: F.binary_cross_entropy_with_logits(pt, t01),
               "hinge": lambda: torch.clamp(1 - tt * pt, min=0).mean()}
        fn = fns[self.loss]
        out = {}

        def run():
            pt.grad = None
            v = fn()
            v.backward()
            out["r"] = (v, pt.grad)
        return Impl(run, lambda: (out["r"][0].item(), out["r"][1].numpy()))

    def reference(self, calls):
        return None

    def check(self, name, impl, ref=None):
        if self._ref64 is None:
            self._ref64 = numpy_loss(self.loss, self.pred, self.t)
        ref_value, ref_grad = self._ref64
        value, grad = impl.result()
        where = f"{self.title} [{name}]"
        if not np.isclose(float(value), ref_value, rtol=1e-4, atol=0):
            raise AssertionError(f"{where}: loss {float(value):.7g}, NumPy {ref_value:.7g}")
        scale = float(np.max(np.abs(ref_grad)))
        got = np.asarray(grad, np.float64) / scale
        if got.shape != ref_grad.shape or not np.allclose(got, ref_grad / scale, rtol=1e-4,
                                                          atol=1e-5):
            raise AssertionError(f"{where}: gradient differs from the NumPy baseline "
                                 f"(rtol=1e-4, atol=1e-5 of its largest element)")
