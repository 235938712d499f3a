"""Benchmark workloads shared by ``python -m fastnn bench`` and ``benchmarks/``.

Every workload is a small object that builds *implementations* of the same job
(fastnn, the NumPy baseline of ``fastnn._baselines``, PyTorch and scikit-learn when
they are installed, and a "bound": the matrix products alone, timed with
``np.matmul(out=)``), all from the same initial data.  An implementation is an
:class:`Impl` with ``run()`` (the timed call), ``result()`` (what the check looks at)
and ``calls`` (how many times ``run()`` ran).  ``Workload.check(name, impl, ref)``
compares a result with the NumPy baseline's after the same number of calls (for the
deterministic workloads) or against an accuracy floor (for training runs, whose
shuffling differs between libraries).

The command line runs each workload's implementations in the same process,
interleaved (one round = one call of each, in a rotating order), repeated, with the
same thread count for all of them (:func:`thread_limit`), and reports medians.

PyTorch, scikit-learn and matplotlib are optional: they are imported lazily, and a
missing one drops its column (:class:`Unavailable`).
"""
import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np

from . import _baselines as B

__all__ = ["Unavailable", "Impl", "thread_limit", "make_workload", "workload_names",
           "run_workload", "main"]


SETTLE_S = 0.05   # untimed pause between implementations (see run_workload)


class Unavailable(Exception):
    """An implementation cannot be built here (its library is not installed)."""


class Impl:
    """One implementation of a workload: ``run()`` is timed, ``result()`` is checked."""

    def __init__(self, run, result=None, label=None):
        self._run = run
        self._result = result
        self.label = label
        self.calls = 0

    def run(self):
        self.calls += 1
        return self._run()

    def result(self):
        return None if self._result is None else self._result()


_IN_CHILD = False


class RemoteImpl(Impl):
    """An implementation that runs in its own (spawned) process.

    PyTorch implementations run this way.  torch ships a libgomp with the same
    soname as the system one that a source build of fastnn links, so in one
    process both libraries share one OpenMP runtime, and its wait policy then
    distorts one side or the other (measured on the 2-core VM: with PASSIVE,
    torch's MLP epoch ran 70% slower; with the default spinning, NumPy's 2-thread
    MLP epoch ran 35-60% slower once torch had run in the process).  The parent
    still interleaves the calls; the time reported is measured in the child
    around the call itself.
    """

    def __init__(self, factory, name):
        import multiprocessing as mp

        if importlib.util.find_spec("torch") is None:
            raise Unavailable("PyTorch is not installed")
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_remote_main, args=(child, factory, name), daemon=True)
        self._proc.start()
        child.close()
        status, payload = self._conn.recv()
        if status != "ok":
            self.close()
            if status == "unavailable":
                raise Unavailable(payload)
            raise RuntimeError(f"{name} could not start in its own process: {payload}")
        super().__init__(self._remote_run, self._remote_result, label=name)
        self.last_elapsed = None

    def _call(self, *msg):
        self._conn.send(msg)
        status, payload = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.label} (child process): {payload}")
        return payload

    def _remote_run(self):
        self.last_elapsed = self._call("run")

    def _remote_result(self):
        return self._call("result")

    def set_threads(self, n):
        self._call("threads", n)

    def close(self):
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        try:
            self._conn.send(("close",))
        except (OSError, EOFError, BrokenPipeError):
            pass
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
        self._proc = None

    def __del__(self):
        self.close()


def _remote_main(conn, factory, name):
    """Child side of RemoteImpl: build the same workload, then serve run/result/threads."""
    global _IN_CHILD
    _IN_CHILD = True
    limits = None
    try:
        impl = make_workload(*factory).make(name)
    except Unavailable as exc:
        conn.send(("unavailable", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", repr(exc)))
        return
    conn.send(("ok", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        cmd = msg[0]
        try:
            if cmd == "run":
                t0 = time.perf_counter()
                impl.run()
                conn.send(("ok", time.perf_counter() - t0))
            elif cmd == "result":
                conn.send(("ok", impl.result()))
            elif cmd == "threads":
                import fastnn
                from threadpoolctl import threadpool_limits

                n = msg[1]
                limits = threadpool_limits(limits=n)
                fastnn.set_num_threads(n)
                torch = sys.modules.get("torch")
                if torch is not None:
                    torch.set_num_threads(n)
                conn.send(("ok", None))
            elif cmd == "close":
                return
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            conn.send(("error", repr(exc)))
    del limits


# ---------------------------------------------------------------------------
# optional libraries and threads
# ---------------------------------------------------------------------------

_TORCH = []


def _torch(required=False):
    """torch, or None when it is not installed (imported once, lazily)."""
    if not _TORCH:
        try:
            import torch
        except ImportError:
            torch = None
        _TORCH.append(torch)
    if _TORCH[0] is None and required:
        raise Unavailable("PyTorch is not installed")
    return _TORCH[0]


def _sklearn(required=True):
    if importlib.util.find_spec("sklearn") is None:
        if required:
            raise Unavailable("scikit-learn is not installed")
        return False
    return True


@contextmanager
def thread_limit(n):
    """Use ``n`` threads in fastnn, NumPy's BLAS (threadpoolctl) and torch."""
    import fastnn
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")   # only if this process already uses it
    old = torch.get_num_threads() if torch is not None else None
    with fastnn.threads(n), threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(old)


def _assert_close(name, got, ref, rtol, atol):
    for i, (a, r) in enumerate(zip(got, ref)):
        a = np.asarray(a)
        r = np.asarray(r)
        if a.shape != r.shape:
            raise AssertionError(f"{name}: array {i} has shape {a.shape}, expected {r.shape}")
        if not np.allclose(a, r, rtol=rtol, atol=atol):
            err = np.max(np.abs(a.astype(np.float64) - r) / (atol + rtol * np.abs(r)))
            raise AssertionError(
                f"{name}: array {i} differs from the NumPy baseline "
                f"(max |diff| = {np.max(np.abs(a.astype(np.float64) - r)):.3g}, "
                f"{err:.3g}x the tolerance rtol={rtol}, atol={atol})")


def _check_layer_step(title, name, impl, ref):
    """A layer's (y, grad_x, grad_W, grad_b) against the NumPy baseline's, each
    compared relative to its own magnitude."""
    if name == "numpy" and ref is impl:
        return
    ref_r = ref.result()
    scale = [max(float(np.max(np.abs(r))), 1.0) for r in ref_r]
    got = [np.asarray(a) / s for a, s in zip(impl.result(), scale)]
    _assert_close(f"{title} [{name}] (y, grad_x, grad_W, grad_b)", got,
                  [r / s for r, s in zip(ref_r, scale)], rtol=1e-4, atol=1e-5)


def _fastnn_mlp(params):
    """fastnn Sequential(Linear, ReLU, ..., Linear) holding a copy of ``params``."""
    from fastnn import nn

    layers = []
    n_layers = len(params) // 2
    state = {}
    for i in range(n_layers):
        out_f, in_f = params[2 * i].shape
        layers.append(nn.Linear(in_f, out_f, dtype=params[2 * i].dtype))
        state[f"{len(layers) - 1}.weight"] = params[2 * i]
        state[f"{len(layers) - 1}.bias"] = params[2 * i + 1]
        if i < n_layers - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    model.load_state_dict(state)
    return model


def _torch_mlp(params):
    """torch Sequential(Linear, ReLU, ..., Linear) holding a copy of ``params``."""
    torch = _torch(required=True)
    layers = []
    n_layers = len(params) // 2
    state = {}
    for i in range(n_layers):
        out_f, in_f = params[2 * i].shape
        layers.append(torch.nn.Linear(in_f, out_f))
        state[f"{len(layers) - 1}.weight"] = torch.from_numpy(params[2 * i].copy())
        state[f"{len(layers) - 1}.bias"] = torch.from_numpy(params[2 * i + 1].copy())
        if i < n_layers - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict(state)
    return model


def _torch_train_epoch(model, opt, Xt, yt, batch_size, generator):
    """A PyTorch eager epoch: shuffled minibatches, cross-entropy, optimizer step."""
    torch = _torch(required=True)
    F = torch.nn.functional
    n = Xt.shape[0]
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        xb = Xt.index_select(0, idx)
        yb = yt.index_select(0, idx)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()


def _torch_predict(model, X):
    torch = _torch(required=True)
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(X))).argmax(dim=1).numpy()


def _sklearn_mlp(hidden, batch_size, lr, max_iter, seed):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=tuple(hidden), activation="relu", solver="adam",
                         alpha=0.0, batch_size=batch_size, learning_rate_init=lr,
                         max_iter=max_iter, shuffle=True, random_state=seed, tol=0.0,
                         n_iter_no_change=10 ** 9)


class Workload:
    """Base class: a named job with implementations, a check and extra metrics."""

    name = ""          # stable id (CLI --only, JSON, pytest ids)
    title = ""         # table label
    impl_names = ()    # implementations in table order
    repeats = 5        # default number of timed rounds in the CLI
    units_per_call = 1  # a run() does this many units; times are reported per unit
    unit = "call"

    def make(self, name):
        factory = getattr(self, "_factory", None)
        if name.startswith("torch") and factory is not None and not _IN_CHILD:
            return RemoteImpl(factory, name)
        return getattr(self, "_make_" + name.replace("-", "_"))()

    def check(self, name, impl, ref):  # pragma: no cover - overridden
        """Raise AssertionError if ``impl``'s result is wrong (``ref``: NumPy impl)."""

    def reference(self, calls):
        """A NumPy-baseline Impl that has run ``calls`` times (cached)."""
        cache = self.__dict__.setdefault("_ref_cache", {})
        if calls not in cache:
            cache.clear()
            ref = self.make("numpy")
            for _ in range(calls):
                ref.run()
            cache[calls] = ref
        return cache[calls]

    def extra(self, ms):
        """(metrics dict, short text) from the median ms per implementation."""
        return {}, ""


# ---------------------------------------------------------------------------
# optimizer steps
# ---------------------------------------------------------------------------

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
        torch = _torch(required=True)
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
        _assert_close(f"{self.title} [{name}] after {impl.calls} steps", impl.result(),
                      ref.result(), rtol=1e-5, atol=1e-5)

    def extra(self, ms):
        gbs = {k: self.n_params * self.bytes_per_param / (t * 1e-3) / 1e9
               for k, t in ms.items() if t and k != "numpy"}
        text = ", ".join(f"{k} {v:.1f}" for k, v in gbs.items()) + \
            f" GB/s ({self.bytes_per_param} B/param)"
        torch_ms = ", ".join(f"{k} {ms[k]:.2f}" for k in ms if k.startswith("torch"))
        if torch_ms:
            text += f"; ms: {torch_ms}"
        return {"GB/s": gbs}, text


# ---------------------------------------------------------------------------
# dense layer forward + backward
# ---------------------------------------------------------------------------

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
        torch = _torch(required=True)
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
            _check_layer_step(self.title, name, impl, ref)

    def extra(self, ms):
        g = ms.get("gemm")
        if not g:
            return {}, ""
        frac = {k: max(0.0, (t - g) / t) for k, t in ms.items() if t and k != "gemm"}
        text = f"GEMMs {g:.2f} ms; outside GEMM: " + ", ".join(
            f"{k} {100 * v:.0f}%" for k, v in frac.items())
        return {"gemm_ms": g, "outside_gemm_fraction": frac}, text


# ---------------------------------------------------------------------------
# one epoch of an MNIST-shaped MLP
# ---------------------------------------------------------------------------


class MLPEpoch(Workload):
    """One epoch of MLP 784-256-128-10 (ReLU, cross-entropy, Adam lr 1e-3, batch 128).

    The data are random MNIST-shaped float32 samples (784 standard-normal features,
    i.e. already standardized); the labels 0..9 come from a fixed random linear
    teacher, so that one epoch visibly learns (the check is a training-accuracy floor).
    """

    name = "mlp_epoch"
    impl_names = ("fastnn", "numpy", "torch", "sklearn", "bound")
    repeats = 3

    def __init__(self, n_samples=60_000, sizes=(784, 256, 128, 10), batch_size=128,
                 lr=1e-3, seed=0, min_accuracy=0.7):
        self.sizes = tuple(sizes)
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.min_accuracy = min_accuracy
        self.title = (f"MLP {'-'.join(map(str, sizes))} epoch N={n_samples} B={batch_size}")
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((n_samples, sizes[0]), dtype=np.float32)
        teacher = rng.standard_normal((sizes[0], sizes[-1])).astype(np.float32)
        self.y = np.argmax(self.X @ teacher, axis=1).astype(np.int64)
        self.params0 = B.mlp_init(self.sizes, seed=seed)
        n_eval = min(n_samples, 5000)
        self.X_eval, self.y_eval = self.X[:n_eval], self.y[:n_eval]

    def _make_fastnn(self):
        from fastnn import losses, optim, train

        model = _fastnn_mlp(self.params0)
        loss = losses.CrossEntropyLoss()
        opt = optim.Adam(model.parameters(), lr=self.lr)
        impl = None

        def run():
            train.fit(model, loss, opt, self.X, self.y, epochs=1, batch_size=self.batch_size,
                      seed=self.seed + impl.calls, progress=False)
        impl = Impl(run, lambda: model.forward(self.X_eval).argmax(axis=1))
        return impl

    def _make_numpy(self):
        mlp = B.NumpyMLP(params=self.params0, lr=self.lr, seed=self.seed)
        return Impl(lambda: mlp.fit_epoch(self.X, self.y, self.batch_size),
                    lambda: mlp.predict(self.X_eval))

    def _make_torch(self):
        torch = _torch(required=True)
        model = _torch_mlp(self.params0)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)
        Xt = torch.from_numpy(self.X)
        yt = torch.from_numpy(self.y)
        gen = torch.Generator().manual_seed(self.seed)
        return Impl(lambda: _torch_train_epoch(model, opt, Xt, yt, self.batch_size, gen),
                    lambda: _torch_predict(model, self.X_eval))

    def _make_sklearn(self):
        _sklearn()
        clf = _sklearn_mlp(self.sizes[1:-1], self.batch_size, self.lr, 1, self.seed)
        classes = np.arange(self.sizes[-1])

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.partial_fit(self.X, self.y, classes=classes)
        return Impl(run, lambda: clf.predict(self.X_eval))

    def _make_bound(self):
        """The epoch's matrix products alone: per step 3 forward, 3 weight-grad, 2 input-grad.

        Each product is timed in its fastest operand layout (a lower bound no single
        weight layout reaches): forward ``x @ Wt`` with Wt = W.T stored C-contiguous
        (NN), input gradient ``g @ W`` with W C-contiguous (NN), weight gradient
        ``x.T @ g`` written into a C-contiguous (in, out) buffer.
        """
        rng = np.random.default_rng(1)
        sizes, n = self.sizes, self.X.shape[0]
        Ws = [rng.standard_normal((o, i), dtype=np.float32) for i, o in zip(sizes[:-1], sizes[1:])]
        Wts = [np.ascontiguousarray(W.T) for W in Ws]
        gWts = [np.empty_like(Wt) for Wt in Wts]
        batches = [self.batch_size] * (n // self.batch_size)
        if n % self.batch_size:
            batches.append(n % self.batch_size)
        bufs = {}
        for bs in set(batches):
            acts = [rng.standard_normal((bs, s), dtype=np.float32) for s in sizes]
            grads = [rng.standard_normal((bs, s), dtype=np.float32) for s in sizes]
            bufs[bs] = (acts, grads)
        n_layers = len(Ws)

        def run():
            for bs in batches:
                acts, grads = bufs[bs]
                for i in range(n_layers):                 # forward
                    np.matmul(acts[i], Wts[i], out=acts[i + 1])
                for i in range(n_layers - 1, -1, -1):     # backward
                    np.matmul(acts[i].T, grads[i + 1], out=gWts[i])
                    if i > 0:
                        np.matmul(grads[i + 1], Ws[i], out=grads[i])
        return Impl(run)

    def reference(self, calls):
        return None

    def check(self, name, impl, ref=None):
        if name == "bound":
            return
        acc = float(np.mean(np.asarray(impl.result()) == self.y_eval))
        if not acc >= self.min_accuracy:
            raise AssertionError(
                f"{self.title} [{name}]: training accuracy {acc:.3f} after {impl.calls} "
                f"epoch(s), expected at least {self.min_accuracy}")

    def extra(self, ms):
        bound, f = ms.get("bound"), ms.get("fastnn")
        if not bound:
            return {}, ""
        text = f"bound (GEMMs only) {bound:.0f} ms"
        metrics = {"bound_ms": bound}
        if f:
            metrics["fastnn_over_bound"] = f / bound
            text += f"; fastnn = {f / bound:.2f}x bound"
        return metrics, text


# ---------------------------------------------------------------------------
# digits protocol
# ---------------------------------------------------------------------------


def load_digits_split(split_seed=0, dtype=np.float32):
    """Digits, stratified 80/20 split (fastnn.data, seed 0), standardized on train.

    Returns X_train, X_test, y_train, y_test (X float32, y int64).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise Unavailable("scikit-learn is not installed (it provides the digits data)") from exc
    from fastnn import data

    X, y = load_digits(return_X_y=True)
    X = X.astype(dtype)
    y = y.astype(np.int64)
    X_train, X_test, y_train, y_test = data.train_test_split(
        X, y, test_size=0.2, stratify=y, seed=split_seed)
    scaler = data.StandardScaler()
    X_train = np.ascontiguousarray(scaler.fit_transform(X_train), dtype=dtype)
    X_test = np.ascontiguousarray(scaler.transform(X_test), dtype=dtype)
    return X_train, X_test, np.asarray(y_train), np.asarray(y_test)


def train_fastnn_mlp(X, y, *, hidden=(128,), epochs=50, batch_size=32, lr=1e-3, seed=0,
                     init_params=None, n_classes=10):
    """fastnn: Sequential(Linear, ReLU, ..., Linear) trained with fit(); returns the model."""
    from fastnn import losses, nn, optim, train

    sizes = (X.shape[1],) + tuple(hidden) + (n_classes,)
    if init_params is not None:
        model = _fastnn_mlp(init_params)
    else:
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, seed=None if seed is None else 1000 * seed + i))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers)
    opt = optim.Adam(model.parameters(), lr=lr)
    train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=epochs,
              batch_size=batch_size, seed=seed, progress=False)
    return model


class Digits(Workload):
    """The digits protocol: MLP 64-128-10, Adam 1e-3, batch 32, 50 epochs, seeds 0,1,2.

    One run() trains one model per seed; times are reported per training run and the
    accuracy is the mean test accuracy over the seeds.  All libraries start from the
    same initial weights per seed (torch's default init, drawn with NumPy) except
    scikit-learn, which uses its own initialization with random_state=seed.
    """

    name = "digits"
    impl_names = ("fastnn", "numpy", "torch", "sklearn")
    repeats = 3
    unit = "training run"

    def __init__(self, seeds=(0, 1, 2), epochs=50, hidden=(128,), batch_size=32, lr=1e-3,
                 min_accuracy=0.95):
        self.seeds = tuple(seeds)
        self.units_per_call = len(self.seeds)
        self.epochs = epochs
        self.hidden = tuple(hidden)
        self.batch_size = batch_size
        self.lr = lr
        self.min_accuracy = min_accuracy
        self.title = (f"Digits MLP 64-{'-'.join(map(str, hidden))}-10, {epochs} epochs "
                      f"B={batch_size}, seeds {','.join(map(str, self.seeds))}")
        self.X_train, self.X_test, self.y_train, self.y_test = load_digits_split()
        sizes = (self.X_train.shape[1],) + self.hidden + (10,)
        self.init = {s: B.mlp_init(sizes, seed=s) for s in self.seeds}
        self.accuracy = {}

    def _impl(self, train_one, predict):
        models = {}

        def run():
            for s in self.seeds:
                models[s] = train_one(s)

        def result():
            accs = [float(np.mean(np.asarray(predict(models[s])) == self.y_test))
                    for s in self.seeds]
            return float(np.mean(accs))
        return Impl(run, result)

    def _make_fastnn(self):
        def train_one(s):
            return train_fastnn_mlp(self.X_train, self.y_train, hidden=self.hidden,
                                    epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                    seed=s, init_params=self.init[s])
        return self._impl(train_one, lambda m: m.forward(self.X_test).argmax(axis=1))

    def _make_numpy(self):
        def train_one(s):
            return B.numpy_mlp_fit(self.X_train, self.y_train, hidden=self.hidden,
                                   epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                   seed=s, n_classes=10, init_params=self.init[s])
        return self._impl(train_one, lambda p: B.numpy_mlp_predict(p, self.X_test))

    def _make_torch(self):
        torch = _torch(required=True)
        Xt = torch.from_numpy(self.X_train)
        yt = torch.from_numpy(self.y_train)

        def train_one(s):
            model = _torch_mlp(self.init[s])
            opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)
            gen = torch.Generator().manual_seed(s)
            for _ in range(self.epochs):
                _torch_train_epoch(model, opt, Xt, yt, self.batch_size, gen)
            return model
        return self._impl(train_one, lambda m: _torch_predict(m, self.X_test))

    def _make_sklearn(self):
        _sklearn()

        def train_one(s):
            clf = _sklearn_mlp(self.hidden, self.batch_size, self.lr, self.epochs, s)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(self.X_train, self.y_train)
            return clf
        return self._impl(train_one, lambda c: c.predict(self.X_test))

    def reference(self, calls):
        return None

    def check(self, name, impl, ref=None):
        acc = impl.result()
        self.accuracy[name] = acc
        if not acc >= self.min_accuracy:
            raise AssertionError(f"{self.title} [{name}]: mean test accuracy {acc:.4f}, "
                                 f"expected at least {self.min_accuracy}")

    def extra(self, ms):
        if not self.accuracy:
            return {}, ""
        return ({"accuracy": dict(self.accuracy)},
                "test acc " + ", ".join(f"{k} {v:.4f}" for k, v in self.accuracy.items()))


# ---------------------------------------------------------------------------
# convolutional networks
# ---------------------------------------------------------------------------

# (N, C_in, C_out, H=W, kernel, padding), stride 1: the shapes of issue 3
CONV_SHAPES = ((64, 3, 32, 32, 3, 1), (64, 32, 64, 16, 3, 1), (128, 1, 8, 28, 5, 0))
CONV_SHAPES_QUICK = ((8, 3, 8, 16, 3, 1), (8, 8, 16, 8, 3, 1), (16, 1, 4, 14, 5, 0))

LENET_SPEC = (("conv", 6, 5, 0), ("relu",), ("maxpool", 2), ("conv", 16, 5, 0), ("relu",),
              ("maxpool", 2), ("flatten",), ("linear", 120), ("relu",), ("linear", 84), ("relu",),
              ("linear", 10))
# the demo's CNN for 8x8 digits
DIGITS_CNN_SPEC = (("conv", 16, 3, 1), ("relu",), ("maxpool", 2), ("conv", 32, 3, 1), ("relu",),
                   ("maxpool", 2), ("flatten",), ("linear", 10))


def _cnn_layers(nn, spec, params):
    """The layers of a CNN spec (see fastnn._baselines) from ``nn`` (fastnn.nn or
    torch.nn: same names and arguments), sized from the parameter shapes."""
    mods, i = [], 0
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            o, c, k, _ = params[i].shape
            mods.append(nn.Conv2d(c, o, k, padding=layer[3]))
            i += 2
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "maxpool":
            mods.append(nn.MaxPool2d(layer[1]))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        else:
            mods.append(nn.Linear(params[i].shape[1], params[i].shape[0]))
            i += 2
    return mods


def fastnn_cnn(spec, params):
    """A float32 fastnn Sequential for a CNN spec, loaded with ``params``."""
    from fastnn import nn

    model = nn.Sequential(*_cnn_layers(nn, spec, params))
    model.load_state_dict(dict(zip(model.state_dict(), params)))
    return model


def _torch_cnn(spec, params):
    torch = _torch(required=True)
    model = torch.nn.Sequential(*_cnn_layers(torch.nn, spec, params))
    with torch.no_grad():
        for p, v in zip(model.parameters(), params):
            p.copy_(torch.from_numpy(np.asarray(v)))
    return model


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
        torch = _torch(required=True)
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
        _check_layer_step(self.title, name, impl, ref)


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

        model = fastnn_cnn(LENET_SPEC, self.params0)
        loss = losses.CrossEntropyLoss()
        opt = optim.Adam(model.parameters(), lr=self.lr)
        out = {}

        def run():
            opt.zero_grad()
            out["loss"] = loss(model._forward(self.x), self.y)
            model._backward(loss.backward(), False)
            opt.step()
        return Impl(run, lambda: out["loss"])

    def _make_torch(self):
        torch = _torch(required=True)
        model = _torch_cnn(LENET_SPEC, self.params0)
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


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------


def workload_names(quick=False):
    shapes = DENSE_SHAPES_QUICK if quick else DENSE_SHAPES
    conv = CONV_SHAPES_QUICK if quick else CONV_SHAPES
    return (["adam", "sgd_momentum", "rmsprop"]
            + [f"dense_b{b}_{i}x{o}" for b, i, o in shapes] + ["mlp_epoch", "digits"]
            + ["conv_n{}_{}x{}_{}_k{}p{}".format(*c) for c in conv] + ["lenet_step"])


def make_workload(name, quick=False):
    """Build the workload called ``name`` (full size, or small with ``quick``)."""
    if name in OPTIMIZERS:
        wl = OptimizerStep(name, n_params=200_000 if quick else 10_000_000, n_tensors=20)
    elif name.startswith("dense_b"):
        shapes = DENSE_SHAPES_QUICK if quick else DENSE_SHAPES
        for shape in shapes:
            if name == "dense_b{}_{}x{}".format(*shape):
                wl = DenseStep(*shape)
                break
        else:
            raise ValueError(f"unknown dense workload {name!r}; "
                             f"expected one of {workload_names(quick)}")
    elif name.startswith("conv_n"):
        for shape in (CONV_SHAPES_QUICK if quick else CONV_SHAPES):
            if name == "conv_n{}_{}x{}_{}_k{}p{}".format(*shape):
                wl = ConvStep(*shape)
                break
        else:
            raise ValueError(f"unknown conv workload {name!r}; "
                             f"expected one of {workload_names(quick)}")
    elif name == "lenet_step":
        wl = LeNetStep(batch=16 if quick else 128)
    elif name == "mlp_epoch":
        wl = MLPEpoch(n_samples=8192, min_accuracy=0.5) if quick else MLPEpoch()
    elif name == "digits":
        wl = (Digits(seeds=(0,), epochs=5, min_accuracy=0.85) if quick else Digits())
    else:
        raise ValueError(f"unknown workload {name!r}; expected one of {workload_names(quick)}")
    if quick:
        wl.repeats = min(wl.repeats, 3)
    wl._factory = (name, quick)
    return wl


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------

COLUMNS = ("fastnn", "numpy", "torch", "sklearn")


def _column(impl_name):
    return "torch" if impl_name.startswith("torch") else impl_name


def build_impls(wl, log=None):
    impls, skipped = {}, {}
    for name in wl.impl_names:
        try:
            impls[name] = wl.make(name)
        except Unavailable as exc:
            skipped[name] = str(exc)
            if log:
                log(f"  [{wl.name}] skipping {name}: {exc}")
    return impls, skipped


def run_workload(wl, impls, n_threads, repeats=None, warmup=1):
    """Time ``impls`` of ``wl`` interleaved at ``n_threads``; returns a result record."""
    repeats = wl.repeats if repeats is None else repeats
    names = list(impls)
    times = {k: [] for k in names}
    with thread_limit(n_threads):
        for impl in impls.values():
            if isinstance(impl, RemoteImpl):
                impl.set_threads(n_threads)
        for _ in range(warmup):
            for k in names:
                impls[k].run()
        gc_was_enabled = gc.isenabled()
        try:
            for r in range(repeats):
                order = names[r % len(names):] + names[:r % len(names)]
                for k in order:
                    gc.collect()
                    # Let the previous implementation's idle OpenMP threads finish
                    # spinning (libgomp's default spin lasts a few ms) before timing
                    # the next one: torch, scikit-learn and a source build of fastnn
                    # each keep their runtime's default wait policy.
                    time.sleep(SETTLE_S)
                    gc.disable()
                    t0 = time.perf_counter()
                    impls[k].run()
                    elapsed = time.perf_counter() - t0
                    # a RemoteImpl reports the time of the call in its own process
                    times[k].append(getattr(impls[k], "last_elapsed", None) or elapsed)
                    if gc_was_enabled:
                        gc.enable()
        finally:
            if gc_was_enabled:
                gc.enable()
    scale = 1e3 / wl.units_per_call
    ms = {k: statistics.median(v) * scale for k, v in times.items()}
    failures = []
    ref = impls.get("numpy")
    for k in names:
        try:
            wl.check(k, impls[k], ref)
        except AssertionError as exc:
            failures.append(str(exc))
    metrics, text = wl.extra(ms)
    cols = {}
    for k, t in ms.items():
        c = _column(k)
        if c in COLUMNS:
            cols[c] = min(t, cols.get(c, math.inf))
    f = cols.get("fastnn")
    speedup = {c: cols[c] / f for c in COLUMNS[1:] if c in cols and f}
    return {"workload": wl.name, "title": wl.title, "threads": n_threads,
            "unit": wl.unit, "repeats": repeats, "ms": ms, "columns_ms": cols,
            "speedup": speedup, "times_s": times, "metrics": metrics, "extra": text,
            "check": "ok" if not failures else "FAILED: " + " | ".join(failures)}


def _fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def format_table(records):
    head = ["workload", "thr", "fastnn ms", "numpy ms", "torch ms", "sklearn ms",
            "vs numpy", "vs torch", "vs sklearn", "notes"]
    rows = []
    for r in records:
        c, s = r["columns_ms"], r["speedup"]
        notes = r["extra"]
        if r["check"] != "ok":
            notes = "CHECK FAILED; " + notes
        rows.append([r["title"], str(r["threads"])]
                    + [_fmt_ms(c.get(k)) for k in COLUMNS]
                    + [f"{s[k]:.2f}x" if k in s else "-" for k in ("numpy", "torch", "sklearn")]
                    + [notes])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    widths[-1] = len(head[-1])

    def line(cells):
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths)):
            out.append(cell.ljust(w) if i in (0, len(cells) - 1) else cell.rjust(w))
        return "  ".join(out).rstrip()
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep] + [line(row) for row in rows])


def save_png(records, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--png: matplotlib is not installed; "
              "install it with `pip install matplotlib` (or fastnn-cpu[bench]).", file=sys.stderr)
        return False
    labels = [f"{r['workload']} ({r['threads']} thr)" for r in records]
    vs = [k for k in ("numpy", "torch", "sklearn") if any(k in r["speedup"] for r in records)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(records) + 2), 4.5))
    width = 0.8 / max(1, len(vs))
    for j, k in enumerate(vs):
        xs = [i + (j - (len(vs) - 1) / 2) * width for i in range(len(records))]
        ax.bar(xs, [r["speedup"].get(k, 0.0) for r in records], width, label=f"vs {k}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(records)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("fastnn speed-up (x, higher is better)")
    ax.set_title("fastnn speed-up, same process, same thread count")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _environment():
    import fastnn

    env = {"python": sys.version.split()[0], "numpy": np.__version__,
           "machine": platform.machine(), "cpu_count": os.cpu_count(),
           "processor": platform.processor()}
    try:
        cfg = fastnn.show_config()
        env["fastnn"] = {k: v for k, v in cfg.items() if k != "blas"}
    except Exception as exc:  # noqa: BLE001 - environment info only
        env["fastnn"] = repr(exc)
    torch = _torch()
    if torch is not None:
        env["torch"] = torch.__version__
    if _sklearn(required=False):
        import sklearn
        env["sklearn"] = sklearn.__version__
    return env


def _parse_threads(text):
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers. Received: {text!r}")
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers. Received: {text!r}")
    return list(dict.fromkeys(out))


def main(argv=None):
    cpus = os.cpu_count() or 1
    default_threads = ",".join(str(t) for t in dict.fromkeys([1, cpus]))
    parser = argparse.ArgumentParser(
        prog="python -m fastnn bench",
        description="Time fastnn against NumPy baselines (and PyTorch / scikit-learn "
                    "when installed) in one process, interleaved, at fixed thread counts, "
                    "and print the ratio table.")
    parser.add_argument("--threads", type=_parse_threads, default=_parse_threads(default_threads),
                        help=f"comma-separated thread counts (default {default_threads})")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a smoke run of a few seconds)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="workloads to run (a name or a prefix: " +
                             ", ".join(workload_names()) + ")")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per workload (default: per workload)")
    parser.add_argument("--png", metavar="PATH", help="save a bar chart of the speed-ups")
    parser.add_argument("--json", metavar="PATH", help="save all timings as JSON")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be a positive integer. Received: {args.repeats}")

    names = workload_names(args.quick)
    if args.only:
        selected = [n for n in names if any(n == o or n.startswith(o) for o in args.only)]
        unknown = [o for o in args.only if not any(n == o or n.startswith(o) for n in names)]
        if unknown:
            parser.error(f"unknown workload(s) {unknown}; expected names or prefixes of {names}")
        names = selected

    def log(msg):
        print(msg, flush=True)

    env = _environment()
    log(f"fastnn bench: {len(names)} workload(s), threads {args.threads}, "
        f"{'quick' if args.quick else 'full'} sizes; numpy {env['numpy']}"
        + (f", torch {env['torch']}" if "torch" in env else ", torch not installed")
        + (f", scikit-learn {env['sklearn']}" if "sklearn" in env
           else ", scikit-learn not installed"))
    records = []
    t_start = time.perf_counter()
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        try:
            wl = make_workload(name, args.quick)
        except Unavailable as exc:
            log(f"[{i}/{len(names)}] {name}: skipped ({exc})")
            continue
        impls, _ = build_impls(wl, log)
        for n in args.threads:
            rec = run_workload(wl, impls, n, repeats=args.repeats)
            records.append(rec)
            cols = rec["columns_ms"]
            log(f"[{i}/{len(names)}] {wl.title}, {n} thread(s): "
                + ", ".join(f"{k} {_fmt_ms(v)} ms" for k, v in cols.items())
                + ("" if rec["check"] == "ok" else "  << " + rec["check"]))
        del impls, wl
        gc.collect()
        log(f"    ({time.perf_counter() - t0:.1f} s)")
    log(f"\nfastnn speed-ups (median of repeats; higher is better), "
        f"total {time.perf_counter() - t_start:.0f} s:\n")
    print(format_table(records))
    failed = [r for r in records if r["check"] != "ok"]
    for r in failed:
        print(f"\n{r['title']} ({r['threads']} thr): {r['check']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "quick": args.quick, "results": records}, f,
                      indent=1, default=float)
        print(f"\nwrote {args.json}")
    if args.png and save_png(records, args.png):
        print(f"wrote {args.png}")
    return 1 if failed else 0
