"""The training loop: ``fit`` and ``evaluate``.

``fit`` converts in-memory X once to the model's dtype and the targets once to
what the loss needs, then runs epochs of shuffled minibatches.  Each step
gathers the batch rows into a reused buffer, runs the model's buffered forward
and backward (no input gradient for the first layer), checks that the loss and
the gradients are finite, and only then lets the optimizer update the
parameters.  After the first step of each batch size, a step allocates no new
arrays.  A ``np.memmap`` X is never converted whole: each minibatch is gathered
and converted (and checked for NaN/inf) on its own.  An iterable of
``(X_batch, y_batch)`` pairs, or a callable returning one per epoch, is
consumed batch by batch.

With ``checkpoint=Checkpoint(path)`` the loop writes everything it needs to go
on (model, optimizer, schedule, early stopping, callbacks' state, history,
counters, the shuffle generator, dropout counters) with ``fastnn.io``'s
crash-safe writer, and ``resume=True`` continues from it bit for bit.
"""
import inspect
import os
import sys
import time
import traceback

import numpy as np

from fastnn import _checks as C
from fastnn import distributed as dist_mod
from fastnn import io
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _data, _optim
from fastnn.callbacks import Callback, CSVLogger, LambdaCallback, ModelCheckpoint
from fastnn.losses import CrossEntropyLoss, Loss
from fastnn.nn import Dropout
from fastnn.nn.module import Module, backward_step, forward_step


class History:
    """Per-epoch logs of a ``fit`` run.

    Attributes
    ----------
    history : dict of lists
        "loss" (and "accuracy" for CrossEntropyLoss), "val_loss"/"val_accuracy"
        with validation data, "time" (seconds per epoch).
    epoch : list of int
    """

    def __init__(self):
        self.history = {}
        self.epoch = []

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def state_dict(self):
        return {"history": {k: list(v) for k, v in self.history.items()}, "epoch": list(self.epoch)}

    def load_state_dict(self, d):
        self.history = {k: list(v) for k, v in d["history"].items()}
        self.epoch = [int(e) for e in d["epoch"]]

    def plot(self, path=None, keys=None):
        """Plot the loss (and metric) curves with matplotlib; save to ``path`` if given.

        Returns the matplotlib Figure.  Needs matplotlib (``pip install fastnn-cpu[plot]``).
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot() needs matplotlib: pip install 'fastnn-cpu[plot]'") from None
        keys = [k for k in (keys or self.history) if k != "time"]
        losses = [k for k in keys if k.endswith("loss")]
        metrics = [k for k in keys if not k.endswith("loss")]
        ncols = 2 if metrics else 1
        fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.5), squeeze=False)
        for ax, group, title in ((axes[0, 0], losses, "loss"), (axes[0, -1], metrics, "metrics")):
            if not group:
                continue
            for k in group:
                ax.plot(self.epoch, self.history[k], marker="o", label=k)
            ax.set_xlabel("epoch")
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class _Progress:
    """tqdm when installed, else one plain line per epoch on stderr.  ``steps`` per
    epoch may be None (an iterable without a length): the bar then counts up."""

    def __init__(self, enabled, epochs):
        self.enabled, self.epochs = enabled, epochs
        self.bar = None
        self.tqdm = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.tqdm = tqdm
            except ImportError:
                self.tqdm = None

    def begin(self, epoch, steps, done=0):
        if self.enabled and self.tqdm is not None:
            self.bar = self.tqdm(total=steps, initial=done, desc=f"Epoch {epoch + 1}/{self.epochs}", leave=True,
                                 unit="step", file=sys.stderr)

    def update(self):
        if self.bar is not None:
            self.bar.update(1)

    def end(self, epoch, logs):
        if not self.enabled:
            return
        text = " - ".join(f"{k}: {v:.4f}" if k != "time" else f"{v:.2f}s" for k, v in logs.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.close()
            self.bar = None
        else:
            print(f"Epoch {epoch + 1}/{self.epochs} - {text}", file=sys.stderr, flush=True)


class EarlyStopping:
    """Stop ``fit`` when a monitored metric stops improving, optionally restoring
    the best weights.

    Args:
        monitor: key of the epoch logs to watch ("val_loss" by default; "loss",
            "val_accuracy", ...).
        patience: epochs without improvement to wait before stopping (>= 0).
        min_delta: an improvement must exceed this (absolute, >= 0).
        mode: "min" (losses) or "max" (accuracies).
        restore_best: load the weights of the best epoch when training ends.

    After ``fit``, ``stopped_epoch`` is the epoch it stopped at (None if it ran
    all epochs) and ``best_epoch``/``best`` describe the best epoch.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="min", restore_best=True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer. Received: {patience!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'. Received: {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = C.real(min_delta, "min_delta", low=0.0)
        self.mode = mode
        self.restore_best = bool(restore_best)
        self._reset()

    def _reset(self):
        self.best = None
        self.best_epoch = None
        self.best_state = None
        self.wait = 0
        self.stopped_epoch = None

    def _update(self, epoch, logs, model):
        """Record an epoch; returns True when training should stop."""
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which the epoch logs do not have "
                             f"(available: {sorted(logs)}); pass validation_data for 'val_*' metrics")
        value = float(logs[self.monitor])
        if self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = model.state_dict()
            return False
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def state_dict(self):
        """Everything ``fit`` needs to resume early stopping (kept in checkpoints)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, d):
        self.best = None if d["best"] is None else float(d["best"])
        self.best_epoch = d["best_epoch"]
        self.best_state = None if d["best_state"] is None else dict(d["best_state"])
        self.wait = int(d["wait"])
        self.stopped_epoch = d["stopped_epoch"]

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, mode={self.mode!r}, restore_best={self.restore_best})")


class Checkpoint:
    """Where and how often ``fit`` writes its checkpoint (``fit(..., checkpoint=...)``).

    The file (safetensors, written crash-safely by ``fastnn.io``: a crash while
    writing leaves the previous checkpoint intact) holds the model's weights and
    buffers, the optimizer's state, the schedule's, early stopping's and the
    callbacks' (those with ``state_dict``), the history so far, the epoch and
    step counters, the shuffle generator's state, every Dropout layer's call
    counter, and a fingerprint of the call.  ``fit(..., resume=True)`` continues
    from it; a run interrupted at any point and started again with the same call
    ends with the same parameters and history (except the "time" entries) as one
    that was never interrupted.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (one file, replaced by every write).
    every : int or None
        Write after every ``every`` epochs (default 1).  The last epoch (or the
        one where training stops) is always written.
    every_steps : int or None
        Also write after every ``every_steps`` minibatches (counted over the run),
        for long epochs; a resume then continues inside the epoch.
    """

    def __init__(self, path, every=1, every_steps=None):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise ValueError(f"Checkpoint path {self.path!r} is a directory; expected a file path")
        self.every = None if every is None else C.positive_int(every, "every")
        self.every_steps = None if every_steps is None else C.positive_int(every_steps, "every_steps")

    def __repr__(self):
        return f"Checkpoint({self.path!r}, every={self.every}, every_steps={self.every_steps})"


def _check_x(X, name):
    if X.dtype.kind not in "fiub":
        raise TypeError(f"X{name} must be numeric. Received dtype: {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"X{name} must be at least 2-D (n_samples, n_features). Received shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"X{name} is empty: at least one sample is required")


def _prepare_y(loss, y, n, dtype, name, x_shape=None):
    y = np.asarray(y)
    if y.ndim < 1 or y.shape[0] != n:
        raise ValueError(f"X{name} and y{name} must have the same number of samples. "
                         f"Received: {n} and {y.shape[0] if y.ndim else 'a scalar'}")
    y = loss.prepare_target(y, dtype)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"y{name} contains NaN or infinity")
    return np.ascontiguousarray(y)


def _model_dtype(model):
    params = list(model.parameters())
    return params[0].data.dtype if params else np.dtype(np.float32)


def _prepare(model, loss, X, y, name=""):
    """Convert X once to the model's dtype (C-contiguous) and the targets for the loss.
    A np.memmap X is kept as it is (see :class:`_Batcher`)."""
    dtype = _model_dtype(model)
    if isinstance(X, np.memmap):
        _check_x(X, name)
        return X, _prepare_y(loss, y, X.shape[0], dtype, name)
    X = np.asarray(X)
    _check_x(X, name)
    X = np.ascontiguousarray(X, dtype=dtype)
    if X.dtype.kind == "f" and not _optim.all_finite([X], X.dtype == np.float64, n_threads_for(X.size)):
        raise ValueError(f"X{name} contains NaN or infinity")
    return X, _prepare_y(loss, y, X.shape[0], dtype, name)


def _finite_or_raise(xb, where):
    if not _optim.all_finite([xb], xb.dtype == np.float64, n_threads_for(xb.size)):
        raise ValueError(f"X contains NaN or infinity (in the minibatch of {where})")


class _Batcher:
    """Gathers shuffled rows of X and y into reused buffers (one set per batch size).

    X already in the model's dtype is gathered straight into the batch buffer.
    A memmap of another dtype is gathered into a buffer of its own dtype and
    converted into the batch buffer, so only a batch of it is ever in memory;
    a memmap's batches are checked for NaN/inf here (in-memory X was checked
    whole by :func:`_prepare`).
    """

    def __init__(self, X, y, dtype):
        self.X, self.y, self.dtype = X, y, np.dtype(dtype)
        self.lazy = isinstance(X, np.memmap)
        self.convert = X.dtype != self.dtype
        self.bufs = {}

    def get(self, idx, where=""):
        k = idx.shape[0]
        bufs = self.bufs.get(k)
        if bufs is None:
            xb = np.empty((k,) + self.X.shape[1:], self.dtype)
            yb = np.empty((k,) + self.y.shape[1:], self.y.dtype)
            src = np.empty((k,) + self.X.shape[1:], self.X.dtype) if self.convert else xb
            bufs = self.bufs[k] = (xb, yb, src)
        xb, yb, src = bufs
        if self.X.flags.c_contiguous:
            _data.gather_rows(self.X, idx, src, n_threads_for(xb.size))
        else:
            np.take(self.X, idx, axis=0, out=src)
        if self.convert:
            np.copyto(xb, src, casting="unsafe")
        if self.lazy and xb.dtype.kind == "f":
            _finite_or_raise(xb, where)
        _data.gather_rows(self.y, idx, yb, 1)
        return xb, yb


class _ArrayData:
    """(X, y) arrays: shuffled minibatches of ``batch_size`` rows."""

    def __init__(self, X, y, dtype, batch_size, shuffle):
        self.n = X.shape[0]
        self.batch_size, self.shuffle = batch_size, shuffle
        self.steps = (self.n + batch_size - 1) // batch_size
        self.batcher = _Batcher(X, y, dtype)
        self.order = np.arange(self.n)
        self.fingerprint = {"data": "arrays", "X_shape": list(X.shape), "y_shape": list(y.shape),
                            "batch_size": batch_size, "shuffle": bool(shuffle)}

    def begin_epoch(self, epoch, rng):
        if self.shuffle:
            rng.shuffle(self.order)
        return self.steps

    def batches(self, epoch, start):
        bs, order, get = self.batch_size, self.order, self.batcher.get
        for step in range(start, self.steps):
            yield get(order[step * bs:(step + 1) * bs], f"epoch {epoch + 1}, step {step + 1}")

    def state_dict(self):
        return {"order": self.order}

    def load_state_dict(self, d):
        order = np.asarray(d["order"])
        if order.shape != self.order.shape:
            raise ValueError(f"the checkpoint's row order has {order.shape[0]} rows; X has {self.n}")
        self.order[...] = order


class _ShardedArrays(_ArrayData):
    """(X, y) arrays on every rank: every rank draws the same permutation and takes
    its contiguous part ``[k * rank // size, k * (rank + 1) // size)`` of every
    global minibatch of ``k`` rows (an empty part is yielded as ``(None, None)``).
    ``offset`` is the part's first row in the global batch (for Dropout masks)."""

    def __init__(self, X, y, dtype, batch_size, shuffle, rank, size):
        super().__init__(X, y, dtype, batch_size, shuffle)
        self.rank, self.size = rank, size
        self.offset = 0

    def batches(self, epoch, start):
        bs, order, get = self.batch_size, self.order, self.batcher.get
        r, size = self.rank, self.size
        for step in range(start, self.steps):
            idx = order[step * bs:(step + 1) * bs]
            k = idx.shape[0]
            lo, hi = k * r // size, k * (r + 1) // size
            self.offset = lo
            if hi == lo:
                yield None, None
            else:
                yield get(idx[lo:hi], f"epoch {epoch + 1}, step {step + 1}")


def _call_with_epoch(f, epoch):
    try:
        params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):  # no signature (a builtin): call it plainly
        return f()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return f(epoch) if positional else f()


class _IterData:
    """An iterable of (X_batch, y_batch) pairs (re-iterated every epoch), or a
    callable returning one per epoch (called as ``f(epoch)`` or ``f()``)."""

    def __init__(self, source, model, loss, once=False):
        if callable(source) and not hasattr(source, "__iter__"):
            self.make = source
        elif hasattr(source, "__iter__"):
            if hasattr(source, "__next__") and not once:  # an iterator is its own iterable: exhausted after one epoch
                raise TypeError("X is a one-shot iterator (e.g. a generator), which cannot be read again in the "
                                "next epoch: pass a list, a DataLoader, or a callable returning the batches of "
                                "an epoch")
            self.make = None
        else:
            raise TypeError(f"without y, X must be an iterable of (X_batch, y_batch) pairs or a callable "
                            f"returning one. Received: {type(source).__name__}")
        self.source, self.model, self.loss = source, model, loss
        self.dtype = _model_dtype(model)
        self.epoch_source = None
        self.fingerprint = {"data": "iterable"}
        self.steps = None

    def begin_epoch(self, epoch, rng):
        src = self.source if self.make is None else _call_with_epoch(self.make, epoch)
        if not hasattr(src, "__iter__"):
            raise TypeError(f"the batch callable must return an iterable of (X_batch, y_batch) pairs. "
                            f"Received: {type(src).__name__}")
        self.epoch_source = src
        try:
            self.steps = len(src)
        except TypeError:
            self.steps = None
        return self.steps

    def batches(self, epoch, start):
        for step, pair in enumerate(self.epoch_source):
            if step < start:  # resuming inside the epoch: these batches were trained on
                continue
            yield self._convert(pair, epoch, step)

    def _convert(self, pair, epoch, step):
        where = f"epoch {epoch + 1}, batch {step + 1}"
        try:
            xb, yb = pair
        except (TypeError, ValueError):
            raise TypeError(f"each item of the batches must be a pair (X_batch, y_batch); {where} is a "
                            f"{type(pair).__name__}") from None
        xb = _as_numpy(xb)
        if xb.dtype.kind not in "fiub" or xb.ndim < 2 or xb.shape[0] == 0:
            raise ValueError(f"X_batch of {where} must be a non-empty numeric array of at least 2-D. "
                             f"Received dtype {xb.dtype}, shape {xb.shape}")
        xb = np.ascontiguousarray(xb, dtype=self.dtype)
        _finite_or_raise(xb, where)
        return xb, _prepare_y(self.loss, _as_numpy(yb), xb.shape[0], self.dtype, f" of {where}")

    def state_dict(self):
        return {}

    def load_state_dict(self, d):
        pass


def _as_numpy(a):
    if hasattr(a, "detach") and hasattr(a, "numpy"):  # a torch tensor
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _checked_step(optimizer, params):
    """For an optimizer without the fused check: test the gradients, then step."""
    def step():
        grads = [g if g.flags.c_contiguous or g.flags.f_contiguous else np.ascontiguousarray(g)
                 for g in (p.grad for p in params)]
        f64 = bool(grads) and grads[0].dtype == np.float64
        if not _optim.all_finite(grads, f64, n_threads_for(1 << 20)):
            return False
        optimizer.step()
        return True
    return step


_HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


def _check_callbacks(callbacks):
    if callbacks is None:
        return ()
    if not isinstance(callbacks, (list, tuple)):
        callbacks = (callbacks,)
    for cb in callbacks:
        if not any(callable(getattr(cb, h, None)) for h in _HOOKS):
            raise TypeError(f"a callback must define one of {_HOOKS}. Received: {cb!r}")
    return tuple(callbacks)


def _call(callbacks, hook, *args):
    """Run ``hook`` on every callback; True when one of them asks to stop training."""
    stop = False
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None and fn(*args) is True:
            stop = True
        if getattr(cb, "stop_training", False) is True:
            stop = True
    return stop


class _RunState:
    """Counters of a fit run: the next epoch and step to run, and the running sums of the epoch."""

    def __init__(self):
        self.epoch = 0            # the epoch being run (or the next one, when step == 0)
        self.step = 0             # next step inside the epoch
        self.global_step = 0      # minibatches run so far
        self.total_loss, self.total_correct, self.seen = 0.0, 0, 0
        self.finished = False

    def begin_epoch(self):
        self.step = 0
        self.total_loss, self.total_correct, self.seen = 0.0, 0, 0

    def state_dict(self):
        return {"epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "total_loss": self.total_loss, "total_correct": self.total_correct, "seen": self.seen,
                "finished": self.finished}

    def load_state_dict(self, d):
        self.epoch, self.step, self.global_step = int(d["epoch"]), int(d["step"]), int(d["global_step"])
        self.total_loss, self.total_correct = float(d["total_loss"]), int(d["total_correct"])
        self.seen, self.finished = int(d["seen"]), bool(d["finished"])


class _Checkpointer:
    """Writes and restores the checkpoint of one fit call."""

    def __init__(self, checkpoint, model, optimizer, scheduler, early_stopping, callbacks, data, history,
                 run, rng, fingerprint):
        self.ckpt = checkpoint
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.early_stopping, self.data, self.history, self.run, self.rng = early_stopping, data, history, run, rng
        self.stateful = [(i, cb) for i, cb in enumerate(callbacks)
                         if callable(getattr(cb, "state_dict", None))
                         and callable(getattr(cb, "load_state_dict", None))]
        self.fingerprint = fingerprint

    def _objects(self):
        objs = {"model": self.model, "optimizer": self.optimizer}
        if self.scheduler is not None and callable(getattr(self.scheduler, "state_dict", None)):
            objs["scheduler"] = self.scheduler
        return objs

    def save(self):
        record = {
            "fingerprint": self.fingerprint,
            "run": self.run.state_dict(),
            "rng": self.rng.bit_generator.state,
            "data": self.data.state_dict(),
            "history": self.history.state_dict(),
            "early_stopping": None if self.early_stopping is None else self.early_stopping.state_dict(),
            "callbacks": {str(i): cb.state_dict() for i, cb in self.stateful},
        }
        io.save_checkpoint(self.ckpt.path, fit=record, **self._objects())

    def _check(self, parts):
        path = self.ckpt.path
        rec = parts.get("fit")
        if not isinstance(rec, dict) or "fingerprint" not in rec:
            raise ValueError(f"{path!r} is a fastnn checkpoint but not one written by fit (no 'fit' part); "
                             f"pass resume=False to start over (it will be overwritten)")
        old = rec["fingerprint"]
        diffs = [f"{k}: {old.get(k)!r} in the checkpoint, {v!r} now"
                 for k, v in self.fingerprint.items() if _jsonish(old.get(k)) != _jsonish(v)]
        if diffs:
            raise ValueError(f"{path!r} was written by a different fit call ({'; '.join(diffs)}); "
                             f"refusing to mix them. Delete it or pass resume=False to start over")
        missing = [k for k in self._objects() if k not in parts]
        if missing:
            raise ValueError(f"{path!r} has no {missing[0]!r} state, which this fit call needs")
        if self.early_stopping is not None and rec.get("early_stopping") is None:
            raise ValueError(f"{path!r} was written without early_stopping; this call has one")
        return rec

    def restore(self):
        """Load the checkpoint (all or nothing); returns False when there is none."""
        path = self.ckpt.path
        if not os.path.exists(path):
            return False
        parts = io.load_checkpoint(path)
        rec = self._check(parts)
        self.data.load_state_dict(rec["data"])  # validates the row order first; changes only fit's own copy
        # model (with its Dropout counters), optimizer, schedule: all or nothing.  Read again
        # through the public API; a resume happens once per call.
        io.load_checkpoint(path, **self._objects())
        self.run.load_state_dict(rec["run"])
        self.history.load_state_dict(rec["history"])
        self.rng.bit_generator.state = rec["rng"]
        if self.early_stopping is not None:
            self.early_stopping.load_state_dict(rec["early_stopping"])
        for i, cb in self.stateful:
            if str(i) in rec["callbacks"]:
                cb.load_state_dict(rec["callbacks"][str(i)])
        return True


def _jsonish(v):
    """Compare fingerprints as JSON would store them (tuples as lists)."""
    if isinstance(v, (list, tuple)):
        return [_jsonish(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonish(x) for k, x in v.items()}
    return v


def _fit_fingerprint(model, loss, optimizer, data, seed):
    """What a resume checks: the data's shapes, batch size, shuffle, seed, the loss and
    optimizer classes, and the model (class names, state names, shapes, dtypes)."""
    fp = dict(data.fingerprint)
    arch = model.signature()
    # a Generator or SeedSequence: its state is in the checkpoint, compare the kind
    fp.update(seed=_seed_key(seed), loss=type(loss).__name__,
              optimizer=type(optimizer).__name__, model=arch)
    return fp


def _check_fit_args(model, loss, optimizer, early_stopping, regularizer, checkpoint, resume):
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastnn.nn.Module. Received: {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a fastnn.losses.Loss. Received: {type(loss).__name__}")
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "params"):
        raise TypeError(f"optimizer must be a fastnn.optim.Optimizer. Received: {type(optimizer).__name__}")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be a fastnn.train.EarlyStopping. "
                        f"Received: {type(early_stopping).__name__}")
    if regularizer is not None and not callable(getattr(regularizer, "add_grad", None)):
        raise TypeError(f"regularizer must be a fastnn.regularizers.Regularizer (L1, L2). "
                        f"Received: {type(regularizer).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"checkpoint must be a fastnn.train.Checkpoint. Received: {type(checkpoint).__name__}")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False. Received: {resume!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=fastnn.train.Checkpoint(path)")


def _data_source(model, loss, X, y, batch_size, shuffle, shard_of=None):
    if y is None:
        if isinstance(X, np.ndarray):
            raise ValueError("y is required when X is an array (pass y, or X as an iterable of "
                             "(X_batch, y_batch) pairs)")
        if shard_of is not None:
            raise ValueError("distributed fit with an iterable of batches needs shard=False (each rank "
                             "passes the batches of its own part of the data)")
        return _IterData(X, model, loss)
    X, y = _prepare(model, loss, X, y)
    if shard_of is not None:
        return _ShardedArrays(X, y, _model_dtype(model), batch_size, shuffle, *shard_of)
    return _ArrayData(X, y, _model_dtype(model), batch_size, shuffle)


def _resolve_comm(distributed, shard):
    """The communicator of ``fit(distributed=...)``, or None for a single-process run."""
    if distributed is None or distributed is False:
        return None
    if not isinstance(shard, bool):
        raise TypeError(f"shard must be True or False. Received: {shard!r}")
    if distributed is True:
        return dist_mod.get_comm()
    if isinstance(distributed, (int, float, str)):
        raise TypeError(f"distributed must be False, True or an mpi4py communicator. Received: {distributed!r}")
    return dist_mod.get_comm(distributed)


def _validation(model, loss, validation_data):
    if validation_data is None:
        return None
    try:
        Xv, yv = validation_data
    except (TypeError, ValueError):
        raise ValueError("validation_data must be a pair (X_val, y_val)") from None
    return _prepare(model, loss, Xv, yv, "_val")


def fit(model, loss, optimizer, X, y=None, *, epochs=10, batch_size=32, shuffle=True, seed=None,
        validation_data=None, scheduler=None, regularizer=None, early_stopping=None,
        callbacks=(), progress=True, checkpoint=None, resume=False, distributed=False, shard=True):
    """Train ``model`` on (X, y) with minibatch gradient descent.

    Parameters
    ----------
    model : fastnn.nn.Module
    loss : fastnn.losses.Loss
    optimizer : fastnn.optim.Optimizer
    X : array of shape (n_samples, n_features), np.memmap, iterable or callable
        An array is converted once to the model's dtype (a float64 X for a
        float32 model is cast to float32 here, not per batch); NaN or inf
        raises ValueError.  A ``np.memmap`` (``np.load(path, mmap_mode="r")``)
        of any numeric dtype is not copied: each minibatch is gathered, converted
        and checked on its own.  Without ``y``: an iterable of ``(X_batch,
        y_batch)`` pairs read again every epoch (a list, a torch DataLoader:
        anything whose batches have ``__array__``), or a callable returning one
        per epoch (called as ``f(epoch)``, or ``f()`` when it takes no argument);
        ``batch_size`` and ``shuffle`` then do not apply.
    y : array of shape (n_samples,) or (n_samples, n_outputs), optional
        Integer labels (or class probabilities) for CrossEntropyLoss, values for MSELoss.
    epochs : int
    batch_size : int
    shuffle : bool
        Reshuffle the rows every epoch (seeded by ``seed``).
    seed : int or None
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch ("val_loss", "val_accuracy"); X_val may be a memmap.
    scheduler : a fastnn.optim.schedules schedule (or any object with ``step()``), optional
        Stepped after every epoch (after validation), or after every minibatch
        when its ``interval`` is "step"; a schedule with ``needs_metric``
        (ReduceOnPlateau) gets ``val_loss``, or the training loss without
        validation data.
    early_stopping : EarlyStopping, optional
        Stops when its monitored metric has not improved for ``patience``
        epochs, and restores the best epoch's weights (``restore_best``).
    regularizer : fastnn.regularizers.L1 or L2, optional
        Penalty on the weights (not biases), added to the gradients every step
        and to the reported training "loss" (``val_loss`` is the loss alone).
    callbacks : iterable of callbacks (see :mod:`fastnn.callbacks`)
        Objects with any of ``set_model(model)``, ``on_train_begin(logs)``,
        ``on_epoch_begin(epoch, logs)``, ``on_batch_end(step, logs)``,
        ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``.  A callback stops
        training with ``stop_training = True`` or by returning ``True``.
    progress : bool
        Show a progress bar (tqdm if installed, else a line per epoch).
    checkpoint : Checkpoint, optional
        Write a checkpoint every ``checkpoint.every`` epochs (and every
        ``checkpoint.every_steps`` minibatches), and at the end.
    resume : bool
        With ``checkpoint``: continue from its file when it exists (else start
        fresh).  The checkpoint must come from the same call (data shapes,
        batch size, shuffle, seed, loss, optimizer, model): another one raises
        ValueError.  ``epochs`` may be larger than the first call's, to train on.
    distributed : bool or mpi4py communicator
        Data-parallel training over MPI (launch with ``mpiexec -n R python
        script.py``; needs ``pip install "fastnn-cpu[mpi]"``).  True uses
        ``fastnn.distributed.init()``'s communicator (``MPI.COMM_WORLD``).
        Before the first step the ranks check that they have the same model and
        the same step-determining arguments (ValueError on every rank
        otherwise), and rank 0's weights, optimizer state, Dropout seeds and
        shuffle generator are broadcast.  Every step, each rank's gradient is
        weighted by its share of the global batch and summed with one in-place
        Allreduce per dtype, so the update equals the whole-batch one; losses
        and metrics are summed over ranks; validation is split over the ranks.
        A failure on one rank (bad data, NaN loss, an exception in a callback)
        stops every rank at the same step with an error naming the rank
        (``fastnn.distributed.DistributedError``, or FloatingPointError when
        every cause is one).  Only rank 0 shows progress and writes the
        checkpoint and the files of ModelCheckpoint and CSVLogger (which are not
        run on the other ranks); other callbacks run on every rank with the same
        logs.  BatchNorm uses each rank's own batch statistics (as torch DDP).
    shard : bool
        With ``distributed``: True (default) when every rank passes the same
        (X, y) (arrays or memmaps): ``batch_size`` is the global batch, each rank
        computes its contiguous part of it.  False when each rank passes its own
        part of the data (arrays, or an iterable of batches): ``batch_size`` is
        then per rank, and the ranks must have the same number of steps per epoch.

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        When the loss or a gradient becomes NaN/inf; raised before the optimizer
        step, so the parameters keep their last finite values.
    """
    _check_fit_args(model, loss, optimizer, early_stopping, regularizer, checkpoint, resume)
    epochs = C.positive_int(epochs, "epochs")
    batch_size = C.positive_int(batch_size, "batch_size")
    callbacks = _check_callbacks(callbacks)
    comm = _resolve_comm(distributed, shard)
    ranks = _Alone() if comm is None else _Ranks(comm, shard)
    if comm is not None and checkpoint is not None and not shard:
        raise ValueError("checkpoint with distributed=... and shard=False is not supported: each rank's data "
                         "and shuffle are its own, and rank 0 writes the one checkpoint (use shard=True)")
    try:
        return _fit(ranks, model, loss, optimizer, X, y, epochs, batch_size, shuffle, seed, validation_data,
                    scheduler, regularizer, early_stopping, callbacks, progress, checkpoint, resume)
    except BaseException as e:
        ranks.unagreed(e)
        raise
    finally:
        ranks.end(model)


def _fit(ranks, model, loss, optimizer, X, y, epochs, batch_size, shuffle, seed, validation_data, scheduler,
         regularizer, early_stopping, callbacks, progress, checkpoint, resume):
    state = {}

    def prepare():
        state["data"] = _data_source(model, loss, X, y, batch_size, shuffle, ranks.shard_of())
        state["val"] = _validation(model, loss, validation_data)
    ranks.guarded("the data checks", prepare)
    data, val = state["data"], state["val"]
    if not ranks.main:  # files are written by rank 0 only
        callbacks = tuple(cb for cb in callbacks if not isinstance(cb, (ModelCheckpoint, CSVLogger)))
    if early_stopping is not None:
        early_stopping._reset()

    rng = np.random.default_rng(seed)
    history = History()
    run = _RunState()
    saver = None
    if checkpoint is not None:
        saver = _Checkpointer(checkpoint, model, optimizer, scheduler, early_stopping, callbacks, data, history,
                              run, rng, _fit_fingerprint(model, loss, optimizer, data, seed))
        if resume:
            ranks.guarded("the resume from the checkpoint", saver.restore)
    ranks.begin(model, optimizer, rng, data, val, run,
                {"loss": type(loss).__name__, "optimizer": type(optimizer).__name__, "epochs": epochs,
                 "batch_size": batch_size, "shuffle": bool(shuffle), "seed": _seed_key(seed)})

    def begin():
        for cb in callbacks:
            if hasattr(cb, "stop_training"):
                cb.stop_training = False
            if callable(getattr(cb, "set_model", None)):
                cb.set_model(model)
        _call(callbacks, "on_train_begin", {"initial_epoch": run.epoch})
        model.train()
    ranks.guarded("on_train_begin", begin)
    if not run.finished:
        _run_epochs(ranks, model, loss, optimizer, data, val, epochs, rng, run, history, scheduler, regularizer,
                    early_stopping, callbacks, progress and ranks.main, saver)

    def end():
        if early_stopping is not None and early_stopping.restore_best and early_stopping.best_state is not None:
            model.load_state_dict(early_stopping.best_state)
        _call(callbacks, "on_train_end", {"epochs": len(history.epoch)})
    ranks.guarded("on_train_end", end)
    return history


def _seed_key(seed):
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    return None if seed is None else type(seed).__name__


def _agreed(err):
    """Mark an error that every rank raises at the same point (no abort needed)."""
    err._fastnn_agreed = True
    return err


_END = object()


def _run_epochs(ranks, model, loss, optimizer, data, val, epochs, rng, run, history, scheduler, regularizer,
                early_stopping, callbacks, progress, saver):
    classify = isinstance(loss, CrossEntropyLoss)
    params = list(model.parameters())
    bar = _Progress(progress, epochs)
    opt_step = getattr(optimizer, "_step", None) or _checked_step(optimizer, params)
    reg_weights = regularizer.weights(model) if regularizer is not None else None
    per_step_schedule = scheduler is not None and getattr(scheduler, "interval", "epoch") == "step"
    every_steps = saver.ckpt.every_steps if saver is not None else None
    # Agree after every batch when any rank has batch-level work (rank 0 may run file
    # writers that the others do not).
    batch_hooks = ranks.any(bool(callbacks) or every_steps is not None)
    for epoch in range(run.epoch, epochs):
        logs = {}
        counts = {}

        def begin_epoch():
            if run.step == 0:
                run.begin_epoch()
                counts["steps"] = data.begin_epoch(epoch, rng)
            else:  # resuming inside this epoch: its shuffle (and sums so far) came from the checkpoint
                counts["steps"] = data.begin_epoch(epoch, None) if isinstance(data, _IterData) else data.steps
            run.epoch = epoch
            return _call(callbacks, "on_epoch_begin", epoch, logs)
        stop = ranks.guarded(f"the start of epoch {epoch + 1}", begin_epoch)
        bar.begin(epoch, counts["steps"], run.step)
        t0 = time.perf_counter()
        it = data.batches(epoch, run.step)
        while True:
            step = run.step
            where = f"epoch {epoch + 1}, step {step + 1}"
            exc, have, value, k, correct = None, False, 0.0, 0, 0
            try:
                xb, yb = next(it, (_END, None))
                have = xb is not _END
                if have:
                    for p in params:
                        p.zero_grad()
                if have and xb is not None:  # None: this rank's part of the global batch is empty
                    k = xb.shape[0]
                    ranks.place_rows(data, k)
                    out = forward_step(model, xb)
                    value = loss._forward(out, yb)
                    if not np.isfinite(value):
                        raise FloatingPointError(
                            f"non-finite loss ({value}) at {where}; parameters keep their values from "
                            "before this step (try a smaller learning rate)")
                    backward_step(model, loss._backward(), False)
                    if regularizer is not None:
                        value += regularizer.add_grad(model, reg_weights)
                    if classify:
                        correct = loss.n_correct
            except Exception as e:  # noqa: BLE001 - alone: re-raised as is; over MPI: reported on every rank
                exc = e
            got = ranks.step(exc, have, value, k, correct, where)
            if got is None:
                break
            batch_loss, loss_sum, total_k, total_correct = got
            # The fused optimizer kernel checks every gradient before any thread
            # writes; on NaN/inf it updates nothing and reports it.  Over MPI every
            # rank holds the same summed gradient, so all of them agree on it.
            if not opt_step():
                raise _agreed(FloatingPointError(
                    f"non-finite gradient at {where}{ranks.summed}; "
                    "parameters keep their values from before this step (try a smaller learning rate)"))
            run.total_loss += loss_sum
            run.seen += total_k
            if classify:
                run.total_correct += total_correct
            run.step += 1
            run.global_step += 1
            if per_step_schedule:
                scheduler.step()
            bar.update()
            if batch_hooks:
                def batch_end():
                    s = bool(callbacks) and _call(callbacks, "on_batch_end", run.global_step - 1,
                                                  {"loss": batch_loss, "batch": step, "size": total_k})
                    if not s and every_steps is not None and run.global_step % every_steps == 0 and ranks.main:
                        saver.save()
                    return s
                if ranks.guarded(where, batch_end):
                    stop = True
                    break
        if run.seen == 0:
            raise _agreed(ValueError(f"the training data yielded no batches in epoch {epoch + 1}"))
        logs["loss"] = run.total_loss / run.seen
        if classify:
            logs["accuracy"] = run.total_correct / run.seen
        if val is not None:
            vlogs = ranks.evaluate(model, loss, val, classify, f"the validation of epoch {epoch + 1}")
            logs.update({"val_" + k: v for k, v in vlogs.items()})
            model.train()
        logs["time"] = time.perf_counter() - t0

        def end_epoch():
            s = False
            if scheduler is not None and getattr(scheduler, "interval", "epoch") == "epoch":
                if getattr(scheduler, "needs_metric", False):
                    scheduler.step(logs.get("val_loss", logs["loss"]))
                else:
                    scheduler.step()
            history._append(epoch, logs)
            bar.end(epoch, logs)
            if _call(callbacks, "on_epoch_end", epoch, logs):
                s = True
            if early_stopping is not None and early_stopping._update(epoch, logs, model):
                s = True
            return s
        stop = ranks.guarded(f"the end of epoch {epoch + 1}", end_epoch) or stop
        run.epoch, run.step = epoch + 1, 0
        run.finished = stop  # stopped early: a resume trains no more (reaching `epochs` is not final)
        if saver is not None and (stop or epoch + 1 == epochs or (saver.ckpt.every is not None
                                                                  and (epoch + 1) % saver.ckpt.every == 0)):
            ranks.guarded(f"the checkpoint of epoch {epoch + 1}", saver.save if ranks.main else bool)
        if stop:
            break


class _Alone:
    """The agreement points of the training loop in a single process: nothing to agree on."""

    main = True
    summed = ""

    def shard_of(self):
        return None

    def guarded(self, where, f):
        return f() is True

    def any(self, flag):
        return bool(flag)

    def begin(self, model, optimizer, rng, data, val, run, args):
        pass

    def place_rows(self, data, k):
        pass

    def step(self, exc, have, value, k, correct, where):
        """(batch loss, sum of loss * rows, rows, correct) of this step, or None after the last batch."""
        if exc is not None:
            raise exc
        if not have:
            return None
        return value, value * k, k, correct

    def evaluate(self, model, loss, val, classify, where):
        return _evaluate(model, loss, val[0], val[1], 256, classify)

    def unagreed(self, exc):
        pass

    def end(self, model):
        pass


class _Ranks:
    """The agreement points of a data-parallel fit over ``comm``: every rank calls the
    same collectives at the same points, and a failure on any rank becomes the same
    error on all of them (naming the ranks and causes) instead of a hang."""

    def __init__(self, comm, shard):
        self.comm, self.shard = comm, shard
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.main = self.rank == 0
        self.summed = f" (summed over the {self.size} ranks)"
        self.flags = np.zeros(2)
        self.sums = None
        self.grads = None
        self.drops = []

    def shard_of(self):
        return (self.rank, self.size) if self.shard else None

    def _sum(self, arr):
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, arr, op=MPI.SUM)

    def fail(self, exc, where):
        """Collective, called on every rank when some rank failed: gather the causes and raise."""
        info = None if exc is None else (type(exc).__name__, str(exc))
        failures = [(r, i[0], i[1]) for r, i in enumerate(self.comm.allgather(info)) if i is not None]
        text = "; ".join(f"rank {r} raised {t}: {m}" for r, t, m in failures)
        msg = f"distributed fit stopped at {where} on all {self.size} ranks: {text}"
        if failures and all(t == "FloatingPointError" for _, t, _ in failures):
            err = FloatingPointError(msg)
            err.failures = failures
        else:
            err = dist_mod.DistributedError(msg, failures)
        raise _agreed(err) from exc

    def guarded(self, where, f):
        """Run ``f()`` here, then agree: raise on every rank if it raised on any; else
        True when it returned True (stop) on any rank."""
        exc, out = None, None
        try:
            out = f()
        except Exception as e:  # noqa: BLE001 - every error is reported on every rank
            exc = e
        self.flags[0], self.flags[1] = exc is not None, out is True
        self._sum(self.flags)
        if self.flags[0]:
            self.fail(exc, where)
        return bool(self.flags[1])

    def any(self, flag):
        self.flags[0], self.flags[1] = bool(flag), 0
        self._sum(self.flags)
        return bool(self.flags[0])

    def begin(self, model, optimizer, rng, data, val, run, args):
        """Before the first step: check that the ranks agree on the model and the
        step-determining arguments, then broadcast rank 0's weights, optimizer state,
        Dropout seeds and shuffle generator."""
        fp = dict(args, model=dist_mod.model_signature(model), shard=self.shard, data=type(data).__name__,
                  position=(run.epoch, run.step, run.global_step, run.finished),
                  validation=None if val is None else tuple(val[0].shape[1:]))
        if isinstance(data, _ArrayData):
            fp.update(steps_per_epoch=data.steps, sample_shape=tuple(data.batcher.X.shape[1:]))
            if self.shard:
                fp["n_samples"] = data.n
        dist_mod.check_same(self.comm, fp, "the model and the fit arguments")
        dist_mod.broadcast_parameters(model, 0, self.comm)
        dist_mod.broadcast_state(optimizer, 0, self.comm)
        rng.bit_generator.state = self.comm.bcast(rng.bit_generator.state, root=0)
        self.grads = dist_mod.flat_gradients(model)
        self.drops = [m for m in model.modules() if isinstance(m, Dropout)]
        # failed ranks, ranks with a batch, sum of loss * rows, rows, correct, ranks with rows,
        # then the Dropout call counters of the ranks with rows
        self.sums = np.zeros(6 + len(self.drops))

    def place_rows(self, data, k):
        # Dropout draws the masks of this part's rows' places in the global batch.
        offset = data.offset if isinstance(data, _ShardedArrays) else self.rank * k
        for m in self.drops:
            m.row_offset = offset

    def step(self, exc, have, value, k, correct, where):
        """Agree on this step and sum the gradients (each rank's weighted by its share
        of the global batch, so the update is the whole batch's)."""
        s = self.sums
        s[:6] = exc is not None, have, value * k, k, correct, k > 0
        for i, m in enumerate(self.drops):
            s[6 + i] = m.rng_state()[1] if k > 0 else 0
        self._sum(s)
        if have and k == 0 and s[5] > 0:
            # This rank's part was empty: its Dropout layers did not count the forward,
            # so take the counters of the ranks that ran it (the same on all of them).
            for i, m in enumerate(self.drops):
                m.set_rng_state(m.seed, int(round(s[6 + i] / s[5])))
        if s[0]:
            self.fail(exc, where)
        if s[1] == 0:
            return None
        if s[1] != self.size:
            self.fail(None if have else ValueError(
                "its data has no more batches in this epoch while other ranks have more (with shard=False "
                "every rank must have the same number of batches per epoch)"), where)
        total_k = int(s[3])
        self.grads.allreduce(self.comm, k / total_k)
        return s[2] / total_k, float(s[2]), total_k, int(s[4])

    def evaluate(self, model, loss, val, classify, where):
        """Validation: with shard=True each rank takes a contiguous part; sums reduced."""
        Xv, yv = val
        n = Xv.shape[0]
        lo, hi = (n * self.rank // self.size, n * (self.rank + 1) // self.size) if self.shard else (0, n)
        sums = np.zeros(4)
        exc = None
        try:
            if hi > lo:
                sums[1:] = _evaluate_sums(model, loss, _array_batches(Xv[lo:hi], yv[lo:hi], 256,
                                                                       _model_dtype(model)), classify)
        except Exception as e:  # noqa: BLE001 - reported on every rank
            exc = e
        sums[0] = exc is not None
        self._sum(sums)
        if sums[0]:
            self.fail(exc, where)
        out = {"loss": sums[1] / sums[3]}
        if classify:
            out["accuracy"] = sums[2] / sums[3]
        return out

    def unagreed(self, exc):
        """An error the other ranks did not agree on (a bug, KeyboardInterrupt, MemoryError):
        they may wait in a collective forever, so end the whole job."""
        if getattr(exc, "_fastnn_agreed", False) or self.size == 1:
            return
        sys.stderr.write(f"fastnn.distributed: rank {self.rank} failed outside a synchronized point; aborting "
                         f"the MPI job:\n{''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))}")
        sys.stderr.flush()
        self.comm.Abort(1)

    def end(self, model):
        for m in self.drops:   # empty when begin() did not run: no offsets were set
            m.row_offset = 0


def _array_batches(X, y, batch_size, dtype):
    lazy = isinstance(X, np.memmap)
    for start in range(0, X.shape[0], batch_size):
        xb = X[start:start + batch_size]
        if lazy:  # a memmap: convert and check this batch only
            xb = np.ascontiguousarray(xb, dtype=dtype)
            if xb.dtype.kind == "f":
                _finite_or_raise(xb, f"rows {start}..{start + xb.shape[0] - 1}")
        yield xb, y[start:start + batch_size]


def _evaluate(model, loss, X, y, batch_size, classify):
    return _evaluate_batches(model, loss, _array_batches(X, y, batch_size, _model_dtype(model)), classify)


def _evaluate_sums(model, loss, batches, classify):
    """(sum of loss * rows, correct predictions, rows) over ``batches``, in eval mode."""
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    try:
        for xb, yb in batches:
            value = loss._forward(forward_step(model, xb), yb)
            total += value * xb.shape[0]
            n += xb.shape[0]
            if classify:
                correct += loss.n_correct
    finally:
        model.train(was_training)
    return total, correct, n


def _evaluate_batches(model, loss, batches, classify):
    total, correct, n = _evaluate_sums(model, loss, batches, classify)
    if n == 0:
        raise ValueError("evaluate got no batches")
    out = {"loss": total / n}
    if classify:
        out["accuracy"] = correct / n
    return out


def evaluate(model, loss, X, y=None, batch_size=256):
    """Mean loss (and accuracy for CrossEntropyLoss) of ``model`` on (X, y), in eval mode.

    ``X`` may be an array, a ``np.memmap`` (read and converted batch by batch), or,
    without ``y``, an iterable of ``(X_batch, y_batch)`` pairs.

    Returns
    -------
    dict
        {"loss": float} plus {"accuracy": float} for classification.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastnn.nn.Module. Received: {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a fastnn.losses.Loss. Received: {type(loss).__name__}")
    batch_size = C.positive_int(batch_size, "batch_size")
    classify = isinstance(loss, CrossEntropyLoss)
    if y is None and not isinstance(X, np.ndarray):
        src = _IterData(X, model, loss, once=True)  # one pass: a generator is fine
        src.begin_epoch(0, None)
        return _evaluate_batches(model, loss, src.batches(0, 0), classify)
    if y is None:
        raise ValueError("y is required when X is an array (pass y, or X as an iterable of "
                         "(X_batch, y_batch) pairs)")
    X, y = _prepare(model, loss, X, y)
    return _evaluate(model, loss, X, y, batch_size, classify)


__all__ = ["fit", "evaluate", "History", "EarlyStopping", "Checkpoint", "Callback", "ModelCheckpoint",
           "CSVLogger", "LambdaCallback"]
