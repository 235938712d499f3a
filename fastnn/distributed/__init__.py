"""Data-parallel training over MPI (``mpi4py``): init, broadcasts, gradient allreduce.

Launch a script as MPI programs are launched (``mpiexec -n 4 python train.py``;
``mpiexec -hostfile hosts -n 32 ...`` or ``srun`` on a cluster) and call
``fastnn.train.fit(..., distributed=True)``; the functions here are the parts
that ``fit`` uses, for a hand-written loop::

    from fastnn import distributed as dist
    dist.init()                               # MPI.COMM_WORLD (or init(comm))
    dist.broadcast_parameters(model)          # rank 0's weights on every rank
    dist.broadcast_state(optimizer)
    ...  forward / backward on this rank's part of the batch ...
    dist.allreduce_gradients(model)           # one in-place Allreduce per dtype
    optimizer.step()

``mpi4py`` is imported only when one of these is called (or ``fit`` gets
``distributed=``); without it they raise ImportError with the install hint
``pip install "fastnn-cpu[mpi]"``.

Gradients travel in one contiguous buffer per dtype: the first
``allreduce_gradients`` (or distributed ``fit``) re-binds every parameter's
``.grad`` to a view of that buffer (same shape, dtype and memory layout, values
kept), so the layers' backward passes write straight into it and the reduction
is a single ``Allreduce(IN_PLACE)`` with no packing copy.
"""
import time
import weakref

import numpy as np

from fastnn._engine.buffers import flat_views
from fastnn.nn import Dropout

INSTALL_HINT = 'pip install "fastnn-cpu[mpi]"'

_state = {"comm": None}
_buffers = weakref.WeakKeyDictionary()   # model -> _FlatGrads
_stats = {"allreduce_s": 0.0, "allreduce_calls": 0, "allreduce_bytes": 0}


class DistributedError(RuntimeError):
    """A rank failed during distributed training; raised on every rank, naming the
    failing rank(s) and the cause (``failures``: a list of (rank, type name, message))."""

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"distributed training needs mpi4py and an MPI runtime: {INSTALL_HINT} "
                          f"(or mpi4py built against your cluster's MPI). ({e})") from None
    return MPI


def _is_comm(obj):
    MPI = _mpi()
    return isinstance(obj, MPI.Comm)


def init(comm=None):
    """Select the communicator that fastnn uses (default ``MPI.COMM_WORLD``) and return it.

    Calling it again replaces the communicator.  MPI itself is initialized by
    ``mpi4py`` when it is imported.
    """
    MPI = _mpi()
    if comm is None:
        comm = MPI.COMM_WORLD
    elif not isinstance(comm, MPI.Comm):
        raise TypeError(f"comm must be an mpi4py MPI.Comm (or None for COMM_WORLD). "
                        f"Received: {type(comm).__name__}")
    _state["comm"] = comm
    return comm


def get_comm(comm=None):
    """``comm`` when given (checked), else the one of :func:`init` (calling ``init()`` if needed)."""
    if comm is not None:
        if not _is_comm(comm):
            raise TypeError(f"comm must be an mpi4py MPI.Comm. Received: {type(comm).__name__}")
        return comm
    return _state["comm"] if _state["comm"] is not None else init()


def rank(comm=None):
    """This process's rank (0 .. size-1)."""
    return get_comm(comm).Get_rank()


def size(comm=None):
    """The number of ranks."""
    return get_comm(comm).Get_size()


def is_main(comm=None):
    """True on rank 0 (the rank that prints and writes files)."""
    return rank(comm) == 0


def _check_model(model):
    if not (hasattr(model, "named_parameters") and hasattr(model, "named_state")):
        raise TypeError(f"model must be a fastnn.nn.Module. Received: {type(model).__name__}")


def _check_root(root, comm):
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < comm.Get_size():
        raise ValueError(f"root must be a rank in [0, {comm.Get_size()}). Received: {root!r}")
    return int(root)


def _bcast_array(comm, arr, root):
    if arr.flags.c_contiguous:
        comm.Bcast(arr, root=root)
    else:
        tmp = np.ascontiguousarray(arr)
        comm.Bcast(tmp, root=root)
        np.copyto(arr, tmp)


def model_signature(model):
    """The model's structure as every rank must agree on it (``Module.signature()``: the
    module class names, and the name, shape and dtype of every parameter and buffer)."""
    _check_model(model)
    sig = model.signature()
    # keyed by state name, so that a mismatch names the parameter
    return {"classes": sig["classes"],
            "state": {k: f"{dtype} {tuple(shape)}" for k, shape, dtype in sig["state"]}}


def broadcast_parameters(model, root=0, comm=None):
    """Copy rank ``root``'s parameters and buffers (BatchNorm running statistics, ...)
    into every rank's model, in place; also the seed and call counter of every
    Dropout layer, so that all ranks draw the same masks.

    Raises ValueError on every rank when the models differ in structure.
    """
    comm = get_comm(comm)
    root = _check_root(root, comm)
    check_same(comm, {"model": model_signature(model)}, "the model")
    for _, arr in model.named_state():
        _bcast_array(comm, arr, root)
    drops = [m for m in model.modules() if isinstance(m, Dropout)]
    if drops:
        values = comm.bcast([m.rng_state() for m in drops], root=root)
        for m, (seed, calls) in zip(drops, values):
            m.set_rng_state(seed, calls)


def broadcast_state(optimizer, root=0, comm=None):
    """Copy rank ``root``'s optimizer state (state arrays, step count, hyperparameters
    such as the learning rate) into every rank's optimizer, in place."""
    if not hasattr(optimizer, "state") or not hasattr(optimizer, "params"):
        raise TypeError(f"optimizer must be a fastnn.optim.Optimizer. Received: {type(optimizer).__name__}")
    comm = get_comm(comm)
    root = _check_root(root, comm)
    sig = [[(k, tuple(v.shape), v.dtype.name) for k, v in sorted(s.items())] for s in optimizer.state]
    check_same(comm, {"optimizer": type(optimizer).__name__, "state": sig}, "the optimizer")
    for s in optimizer.state:
        for k in sorted(s):
            _bcast_array(comm, s[k], root)
    scalars = comm.bcast((getattr(optimizer, "step_count", None), dict(getattr(optimizer, "defaults", {}))),
                         root=root)
    if scalars[0] is not None:
        optimizer.step_count = scalars[0]
    if hasattr(optimizer, "defaults"):
        optimizer.defaults.update(scalars[1])


def check_same(comm, fingerprint, what):
    """Collective: raise ValueError on every rank when ``fingerprint`` (a small
    picklable object) is not the same on all ranks; the message names the ranks
    and the entries that differ."""
    fps = comm.allgather(fingerprint)
    ref = fps[0]
    diffs = []
    for r, fp in enumerate(fps[1:], 1):
        if fp != ref:
            diffs.append("; ".join(f"{path or 'value'}: {a!r} on rank 0, {b!r} on rank {r}"
                                   for path, a, b in _differences(ref, fp, "")))
    if diffs:
        text = " | ".join(d if len(d) < 600 else d[:600] + "..." for d in diffs)
        err = ValueError(f"the ranks do not agree on {what} ({text}); every rank must build the same "
                         f"model and call fit with the same arguments")
        err._fastnn_agreed = True
        raise err


def _differences(a, b, path):
    """(path, a part, b part) where ``a`` and ``b`` differ, descending into dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                out += _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, z) in enumerate(zip(a, b)):
            if x != z:
                return _differences(x, z, f"{path}[{i}]")
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [(path + " (length)", len(a), len(b))]
    return [(path, a, b)]


class _FlatGrads:
    """One contiguous gradient buffer per dtype; parameter ``.grad`` arrays are views of it."""

    def __init__(self, params):
        self.params = list(params)
        self.flats, self.views = [], []
        groups = {}
        for p in self.params:
            groups.setdefault(p.data.dtype, []).append(p)
        for ps in groups.values():
            flat, views = flat_views([p.data for p in ps])
            self.flats.append(flat)
            self.views.extend(zip(ps, views))
        self.nbytes = sum(f.nbytes for f in self.flats)
        self.bind()

    def bind(self):
        """Point every ``p.grad`` at its view (copying the current values in)."""
        for p, view in self.views:
            p.bind_grad(view)

    def matches(self, params):
        return len(params) == len(self.params) and all(a is b for a, b in zip(params, self.params))

    def allreduce(self, comm, scale):
        """Scale this rank's gradients by ``scale`` and sum them over ranks, in place."""
        MPI = _mpi()
        self.bind()
        for p, _ in self.views:
            p.grad   # a lazy zero (no backward wrote it this step) is written out as zeros
        t0 = time.perf_counter()
        for flat in self.flats:
            if scale != 1.0:
                flat *= scale
            comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        _stats["allreduce_s"] += time.perf_counter() - t0
        _stats["allreduce_calls"] += 1
        _stats["allreduce_bytes"] += self.nbytes


def flat_gradients(model):
    """The model's :class:`_FlatGrads` (built on first use, rebuilt when its parameters change)."""
    params = list(model.parameters())
    fg = _buffers.get(model)
    if fg is None or not fg.matches(params):
        fg = _buffers[model] = _FlatGrads(params)
    return fg


def allreduce_gradients(model, average=True, comm=None, scale=None):
    """Sum every parameter gradient over the ranks, in place (one ``Allreduce`` per dtype).

    Parameters
    ----------
    model : fastnn.nn.Module
    average : bool
        Divide by the number of ranks (the mean of the ranks' gradients), as
        Horovod and torch DDP do.
    scale : float, optional
        Instead of ``average``: multiply this rank's gradient by ``scale`` before
        the sum (``fit`` passes ``n_rank / n_global`` so that uneven shards give
        exactly the whole-batch gradient of a mean-reduced loss).

    Returns
    -------
    int : the bytes this rank sent (the size of the gradient buffers).
    """
    _check_model(model)
    comm = get_comm(comm)
    if scale is None:
        scale = 1.0 / comm.Get_size() if average else 1.0
    scale = float(scale)
    if not np.isfinite(scale):
        raise ValueError(f"scale must be finite. Received: {scale}")
    fg = flat_gradients(model)
    fg.allreduce(comm, scale)
    return fg.nbytes


def comm_stats(reset=False):
    """Counters of the gradient allreduces in this process: {"allreduce_s", "allreduce_calls",
    "allreduce_bytes"} (seconds, calls, bytes of gradient buffer reduced).  ``reset`` zeroes them."""
    out = dict(_stats)
    if reset:
        _stats.update(allreduce_s=0.0, allreduce_calls=0, allreduce_bytes=0)
    return out


__all__ = ["init", "get_comm", "rank", "size", "is_main", "broadcast_parameters", "broadcast_state",
           "allreduce_gradients", "check_same", "model_signature", "comm_stats", "DistributedError",
           "INSTALL_HINT"]
