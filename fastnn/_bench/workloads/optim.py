"""Optimizer steps over many float32 parameters (memory-bandwidth bound)."""
import numpy as np

from fastnn import _baselines as B

from ..harness import Impl, Workload, assert_close, torch_module

__all__ = ["OPTIMIZERS", "OptimizerStep"]


OPTIMIZERS = {
    # name: (fastnn/torch class, hyperparameters, bytes moved per parameter, torch variants)
    "adam": ("Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8), 28,
             ("torch-fused", "torch-foreach")),
    "sgd_momentum": ("SGD", dict(lr=1e-2, momentum=0.9), 20, ("torch-fused", "torch-foreach")),
    "rmsprop": ("RMSprop", dict(lr=1e-2, alpha=0.99, eps=1e-8), 20, ("torch-foreach",)),
}


class OptimizerStep(Workload):
    """One optimizer step over ``n_params`` float32 parameters in ``n_tensors`` tensors."""

    repeats = 15

    def __init__(self, kind, n_params=10_000_000, n_tensors=20, seed=0):
        self.kind = kind
        self.cls_name, self.hyper, self.bytes_per_param, torch_variants = OPTIMIZERS[kind]
        self.name = kind
        self.n_params = n_params
        label = f"{n_params / 1e6:g}M" if n_params >= 1e6 else f"{n_params / 1e3:g}k"
        self.title = f"{self.cls_name} step {label} f32 x{n_tensors}"
        self.impl_names = ("fastnn", "numpy") + torch_variants
        rng = np.random.default_rng(seed)
        sizes = [n_params // n_tensors + (i < n_params % n_tensors) for i in range(n_tensors)]
        self.params0 = [rng.standard_normal(s, dtype=np.float32) for s in sizes]
        self.grads = [rng.standard_normal(s, dtype=np.float32) for s in sizes]

    def _make_numpy(self):
        params = [p.copy() for p in self.params0]
        h = self.hyper
        if self.kind == "adam":
            m = [np.zeros_like(p) for p in params]
            v = [np.zeros_like(p) for p in params]
            state = {"step": 0}

            def run():
                state["step"] += 1
                B.adam_step(params, self.grads, m, v, step=state["step"], lr=h["lr"],
                            beta1=h["betas"][0], beta2=h["betas"][1], eps=h["eps"])
        elif self.kind == "sgd_momentum":
            bufs = [np.zeros_like(p) for p in params]
            state = {"step": 0}

            def run():
                state["step"] += 1
                B.sgd_step(params, self.grads, bufs, lr=h["lr"], momentum=h["momentum"],
                           first_step=state["step"] == 1)
        else:
            sq = [np.zeros_like(p) for p in params]

            def run():
                B.rmsprop_step(params, self.grads, sq, lr=h["lr"], alpha=h["alpha"],
                               eps=h["eps"])
        return Impl(run, lambda: params)

    def _make_fastnn(self):
        from fastnn import nn, optim

        params = [nn.Parameter(p.copy()) for p in self.params0]
        for p, g in zip(params, self.grads):
            p.grad[...] = g
        opt = getattr(optim, self.cls_name)(params, **self.hyper)
        return Impl(opt.step, lambda: [p.data for p in params])

    def _make_torch(self, fused):
        torch = torch_module(required=True)
        params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in self.params0]
        for p, g in zip(params, self.grads):
            p.grad = torch.from_numpy(g)   # read-only use; shared with the others
        kw = {"fused": True} if fused else {"foreach": True}
        opt = getattr(torch.optim, self.cls_name)(params, **self.hyper, **kw)
        return Impl(opt.step, lambda: [p.detach().numpy() for p in params])

    def _make_torch_fused(self):
        return self._make_torch(True)

    def _make_torch_foreach(self):
        return self._make_torch(False)

    def check(self, name, impl, ref):
        if name == "numpy" and ref is impl:
            return
        # float32 states drift apart with the number of steps (fastnn and torch alike
        # end 1.2e-5 from the NumPy baseline after ~400 steps), so the tolerance grows
        tol = 1e-5 * max(1.0, impl.calls / 200)
        assert_close(f"{self.title} [{name}] after {impl.calls} steps", impl.result(),
                      ref.result(), rtol=tol, atol=tol)

    def extra(self, ms):
        gbs = {k: self.n_params * self.bytes_per_param / (t * 1e-3) / 1e9
               for k, t in ms.items() if t and k != "numpy"}
        text = ", ".join(f"{k} {v:.1f}" for k, v in gbs.items()) + \
            f" GB/s ({self.bytes_per_param} B/param)"
        torch_ms = ", ".join(f"{k} {ms[k]:.2f}" for k in ms if k.startswith("torch"))
        if torch_ms:
            text += f"; ms: {torch_ms}"
        return {"GB/s": gbs}, text
