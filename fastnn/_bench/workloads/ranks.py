"""Data-parallel MLP training: fastnn over MPI ranks, one fastnn process, torch DDP (gloo)."""
import numpy as np

from fastnn._zoo import fastnn_mlp

from ..harness import Impl, Workload, torch_module
from .common import mnist_shaped, torch_mlp, torch_predict

__all__ = ["DataParallelMLP"]


class DataParallelMLP(Workload):
    """One epoch of MLP 784-256-128-10 (Adam 1e-3, global batch 256) on 60,000 MNIST-shaped
    samples: ``fastnn`` is ``fit(distributed=True)`` on ``ranks`` MPI ranks x 1 thread,
    ``one-process`` is fastnn in this process at the row's thread count, ``torch-ddp`` is
    PyTorch DistributedDataParallel on gloo, ``ranks`` processes x 1 thread, each rank
    taking its part of every global batch as fastnn does."""

    name = "mlp_ranks"
    impl_names = ("fastnn", "one-process", "torch-ddp")
    repeats = 3

    def __init__(self, n_samples=60_000, sizes=(784, 256, 128, 10), batch_size=256, lr=1e-3, seed=0,
                 ranks=2, min_accuracy=0.6):
        self.sizes, self.batch_size, self.lr, self.seed = tuple(sizes), batch_size, lr, seed
        self.ranks, self.min_accuracy = ranks, min_accuracy
        self.title = f"MLP {'-'.join(map(str, sizes))} epoch N={n_samples} B={batch_size}, {ranks} ranks x 1 thr"
        self.X, self.y, self.params0 = mnist_shaped(n_samples, self.sizes, seed)
        n_eval = min(n_samples, 5000)
        self.X_eval, self.y_eval = self.X[:n_eval], self.y[:n_eval]
        self.comm_stats = None

    def make(self, name):
        from ..group import GroupImpl

        if name == "one-process":
            return self._fastnn_impl(False)
        backend = {"fastnn": "mpi", "torch-ddp": "gloo"}[name]
        return GroupImpl(self._factory, name, self.ranks, backend)

    def make_rank(self, name, group):
        """The implementation on one rank of a :class:`~fastnn._bench.group.GroupImpl`."""
        return self._fastnn_impl(True) if name == "fastnn" else self._torch_ddp_rank(group)

    def _fastnn_impl(self, distributed):
        from fastnn import distributed as dist
        from fastnn import losses, optim, train

        model = fastnn_mlp(self.params0)
        loss = losses.CrossEntropyLoss()
        opt = optim.Adam(model.parameters(), lr=self.lr)
        impl = None
        if distributed:
            dist.comm_stats(reset=True)

        def run():
            train.fit(model, loss, opt, self.X, self.y, epochs=1, batch_size=self.batch_size,
                      seed=self.seed + impl.calls, progress=False, distributed=distributed)

        def result():
            out = {"pred": model.forward(self.X_eval).argmax(axis=1).tolist()}
            if distributed:
                out["stats"] = dist.comm_stats()
            return out
        impl = Impl(run, result)
        return impl

    def _torch_ddp_rank(self, group):
        torch = torch_module(required=True)
        F = torch.nn.functional
        model = torch_mlp(self.params0)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.Adam(ddp.parameters(), lr=self.lr, fused=True)
        Xt, yt = torch.from_numpy(self.X), torch.from_numpy(self.y)
        gen = torch.Generator().manual_seed(self.seed)   # the same permutation on every rank
        r, size, bs = group.rank, group.size, self.batch_size

        def run():
            perm = torch.randperm(Xt.shape[0], generator=gen)
            for start in range(0, Xt.shape[0], bs):
                idx = perm[start:start + bs]
                k = idx.shape[0]
                part = idx[k * r // size:k * (r + 1) // size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(ddp(Xt.index_select(0, part)), yt.index_select(0, part)).backward()
                opt.step()
        return Impl(run, lambda: {"pred": torch_predict(model, self.X_eval).tolist()})

    def reference(self, calls):
        return None

    def check(self, name, impl, ref=None):
        res = impl.result()
        if name == "fastnn":
            self.comm_stats = res.get("stats")
        acc = float(np.mean(np.asarray(res["pred"]) == self.y_eval))
        if not acc >= self.min_accuracy:
            raise AssertionError(f"{self.title} [{name}]: training accuracy {acc:.3f} after {impl.calls} "
                                 f"epoch(s), expected at least {self.min_accuracy}")

    def extra(self, ms):
        metrics, parts = {}, []
        f, one = ms.get("fastnn"), ms.get("one-process")
        if one:
            metrics["one_process_ms"] = one
            parts.append(f"1 process {one:.0f} ms")
            if f:
                metrics["ranks_over_one_process"] = f / one
                parts.append(f"ranks = {f / one:.2f}x of it")
        st = self.comm_stats
        if st and st.get("allreduce_calls"):
            per_ms = 1e3 * st["allreduce_s"] / st["allreduce_calls"]
            per_bytes = st["allreduce_bytes"] / st["allreduce_calls"]
            metrics.update(allreduce_ms_per_step=per_ms, allreduce_bytes_per_step=per_bytes)
            parts.append(f"allreduce {per_ms:.3f} ms/step, {per_bytes / 1e6:.2f} MB/step")
        return metrics, "; ".join(parts)
