"""MLP training: one epoch on MNIST-shaped data, and the digits protocol."""
import warnings

import numpy as np

from fastnn import _baselines as B
from fastnn._zoo import fastnn_mlp, load_digits_split, train_fastnn_mlp

from ..harness import Impl, Unavailable, Workload, require_sklearn, torch_module
from .common import mnist_shaped, sklearn_mlp, torch_mlp, torch_predict, torch_train_epoch

__all__ = ["MLPEpoch", "Digits"]


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
        self.X, self.y, self.params0 = mnist_shaped(n_samples, self.sizes, seed)
        n_eval = min(n_samples, 5000)
        self.X_eval, self.y_eval = self.X[:n_eval], self.y[:n_eval]

    def _make_fastnn(self):
        from fastnn import losses, optim, train

        model = fastnn_mlp(self.params0)
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
        torch = torch_module(required=True)
        model = torch_mlp(self.params0)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)
        Xt = torch.from_numpy(self.X)
        yt = torch.from_numpy(self.y)
        gen = torch.Generator().manual_seed(self.seed)
        return Impl(lambda: torch_train_epoch(model, opt, Xt, yt, self.batch_size, gen),
                    lambda: torch_predict(model, self.X_eval))

    def _make_sklearn(self):
        require_sklearn()
        clf = sklearn_mlp(self.sizes[1:-1], self.batch_size, self.lr, 1, self.seed)
        classes = np.arange(self.sizes[-1])

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.partial_fit(self.X, self.y, classes=classes)
        return Impl(run, lambda: clf.predict(self.X_eval))

    def _make_bound(self):
        """The epoch's matrix products alone: per step 3 forward, 3 weight-grad, 2 input-grad."""
        batches, step = self.bound_steps()

        def run():
            for bs in batches:
                step(bs)
        return Impl(run)

    def bound_steps(self):
        """(the epoch's batch sizes, ``step(bs, before=None, between=None)``): one batch's
        products of the bound, calling ``before(acts)`` ahead of them and ``between(acts)``
        after the forward ones (``acts[0]`` is the batch, ``acts[-1]`` the logits).

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

        def step(bs, before=None, between=None):
            acts, grads = bufs[bs]
            if before is not None:
                before(acts)
            for i in range(n_layers):                 # forward
                np.matmul(acts[i], Wts[i], out=acts[i + 1])
            if between is not None:
                between(acts)
            for i in range(n_layers - 1, -1, -1):     # backward
                np.matmul(acts[i].T, grads[i + 1], out=gWts[i])
                if i > 0:
                    np.matmul(grads[i + 1], Ws[i], out=grads[i])
        return batches, step

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
        try:
            self.X_train, self.X_test, self.y_train, self.y_test = load_digits_split()
        except ImportError as exc:
            raise Unavailable(str(exc)) from exc
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
        torch = torch_module(required=True)
        Xt = torch.from_numpy(self.X_train)
        yt = torch.from_numpy(self.y_train)

        def train_one(s):
            model = torch_mlp(self.init[s])
            opt = torch.optim.Adam(model.parameters(), lr=self.lr, fused=True)
            gen = torch.Generator().manual_seed(s)
            for _ in range(self.epochs):
                torch_train_epoch(model, opt, Xt, yt, self.batch_size, gen)
            return model
        return self._impl(train_one, lambda m: torch_predict(m, self.X_test))

    def _make_sklearn(self):
        require_sklearn()

        def train_one(s):
            clf = sklearn_mlp(self.hidden, self.batch_size, self.lr, self.epochs, s)
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
