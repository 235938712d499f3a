"""The training loop: ``fit`` and ``evaluate``.

``fit`` converts X once to the model's dtype and the targets once to what the
loss needs, then runs epochs of shuffled minibatches.  Each step gathers the
batch rows into a reused buffer, runs the model's buffered forward and
backward (no input gradient for the first layer), checks that the loss and the
gradients are finite, and only then lets the optimizer update the parameters.
After the first step of each batch size, a step allocates no new arrays.
"""
import sys
import time

import numpy as np

from fastnn import _checks as C
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _data, _optim
from fastnn.losses import CrossEntropyLoss, Loss
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
    """tqdm when installed, else one plain line per epoch on stderr."""

    def __init__(self, enabled, epochs, steps):
        self.enabled, self.epochs, self.steps = enabled, epochs, steps
        self.bar = None
        self.tqdm = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.tqdm = tqdm
            except ImportError:
                self.tqdm = None

    def begin(self, epoch):
        if self.enabled and self.tqdm is not None:
            self.bar = self.tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}", leave=True,
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

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, mode={self.mode!r}, restore_best={self.restore_best})")


def _prepare(model, loss, X, y, name=""):
    """Convert X once to the model's dtype (C-contiguous) and the targets for the loss."""
    params = list(model.parameters())
    dtype = params[0].data.dtype if params else np.dtype(np.float32)
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"X{name} must be numeric. Received dtype: {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"X{name} must be at least 2-D (n_samples, n_features). Received shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if X.shape[0] == 0:
        raise ValueError(f"X{name} is empty: at least one sample is required")
    if X.dtype.kind == "f" and not _optim.all_finite([X], X.dtype == np.float64, n_threads_for(X.size)):
        raise ValueError(f"X{name} contains NaN or infinity")
    y = np.asarray(y)
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"X{name} and y{name} must have the same number of samples. "
                         f"Received: {X.shape[0]} and {y.shape[0] if y.ndim else 'a scalar'}")
    y = loss.prepare_target(y, dtype)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"y{name} contains NaN or infinity")
    return X, np.ascontiguousarray(y)


class _Batcher:
    """Gathers shuffled rows of X and y into reused buffers (one set per batch size)."""

    def __init__(self, X, y):
        self.X, self.y = X, y
        self.bufs = {}

    def get(self, idx):
        k = idx.shape[0]
        bufs = self.bufs.get(k)
        if bufs is None:
            xb = np.empty((k,) + self.X.shape[1:], self.X.dtype)
            yb = np.empty((k,) + self.y.shape[1:], self.y.dtype)
            bufs = self.bufs[k] = (xb, yb)
        xb, yb = bufs
        _data.gather_rows(self.X, idx, xb, n_threads_for(xb.size))
        _data.gather_rows(self.y, idx, yb, 1)
        return xb, yb


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


def _check_callbacks(callbacks):
    if callbacks is None:
        return ()
    if not isinstance(callbacks, (list, tuple)):
        callbacks = (callbacks,)
    hooks = ("on_epoch_begin", "on_epoch_end", "on_batch_end")
    for cb in callbacks:
        if not any(callable(getattr(cb, h, None)) for h in hooks):
            raise TypeError(f"a callback must define one of {hooks}. Received: {cb!r}")
    return tuple(callbacks)


def _call(callbacks, hook, *args):
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def fit(model, loss, optimizer, X, y, *, epochs=10, batch_size=32, shuffle=True, seed=None,
        validation_data=None, scheduler=None, regularizer=None, early_stopping=None,
        callbacks=(), progress=True):
    """Train ``model`` on (X, y) with minibatch gradient descent.

    Parameters
    ----------
    model : fastnn.nn.Module
    loss : fastnn.losses.Loss
    optimizer : fastnn.optim.Optimizer
    X : array of shape (n_samples, n_features)
        Converted once to the model's dtype (a float64 X for a float32 model is
        cast to float32 here, not per batch).  NaN or inf raises ValueError.
    y : array of shape (n_samples,) or (n_samples, n_outputs)
        Integer labels (or class probabilities) for CrossEntropyLoss, values for MSELoss.
    epochs : int
    batch_size : int
    shuffle : bool
        Reshuffle the rows every epoch (seeded by ``seed``).
    seed : int or None
    validation_data : (X_val, y_val), optional
        Evaluated after every epoch ("val_loss", "val_accuracy").
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
    callbacks : iterable of objects with any of ``on_epoch_begin(epoch, logs)``,
        ``on_epoch_end(epoch, logs)``, ``on_batch_end(step, logs)``.
    progress : bool
        Show a progress bar (tqdm if installed, else a line per epoch).

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        When the loss or a gradient becomes NaN/inf; raised before the optimizer
        step, so the parameters keep their last finite values.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastnn.nn.Module. Received: {type(model).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a fastnn.losses.Loss. Received: {type(loss).__name__}")
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "params"):
        raise TypeError(f"optimizer must be a fastnn.optim.Optimizer. Received: {type(optimizer).__name__}")
    epochs = C.positive_int(epochs, "epochs")
    batch_size = C.positive_int(batch_size, "batch_size")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be a fastnn.train.EarlyStopping. "
                        f"Received: {type(early_stopping).__name__}")
    if early_stopping is not None:
        early_stopping._reset()
    if regularizer is not None and not callable(getattr(regularizer, "add_grad", None)):
        raise TypeError(f"regularizer must be a fastnn.regularizers.Regularizer (L1, L2). "
                        f"Received: {type(regularizer).__name__}")
    callbacks = _check_callbacks(callbacks)
    X, y = _prepare(model, loss, X, y)
    val = None
    if validation_data is not None:
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        val = _prepare(model, loss, Xv, yv, "_val")

    n = X.shape[0]
    steps = (n + batch_size - 1) // batch_size
    classify = isinstance(loss, CrossEntropyLoss)
    params = list(model.parameters())
    batcher = _Batcher(X, y)
    rng = np.random.default_rng(seed)
    order = np.arange(n)
    history = History()
    bar = _Progress(progress, epochs, steps)
    opt_step = getattr(optimizer, "_step", None) or _checked_step(optimizer, params)
    reg_weights = regularizer.weights(model) if regularizer is not None else None
    model.train()
    global_step = 0
    for epoch in range(epochs):
        logs = {}
        _call(callbacks, "on_epoch_begin", epoch, logs)
        bar.begin(epoch)
        t0 = time.perf_counter()
        if shuffle:
            rng.shuffle(order)
        total_loss, total_correct = 0.0, 0
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb, yb = batcher.get(idx)
            for p in params:
                p._grad_zero = True
            out = forward_step(model, xb)
            value = loss._forward(out, yb)
            if not np.isfinite(value):
                raise FloatingPointError(
                    f"non-finite loss ({value}) at epoch {epoch + 1}, step {step + 1}; "
                    "parameters keep their values from before this step (try a smaller learning rate)")
            backward_step(model, loss._backward(), False)
            if regularizer is not None:
                value += regularizer.add_grad(model, reg_weights)
            # The fused optimizer kernel checks every gradient before any thread
            # writes; on NaN/inf it updates nothing and reports it.
            if not opt_step():
                raise FloatingPointError(
                    f"non-finite gradient at epoch {epoch + 1}, step {step + 1}; "
                    "parameters keep their values from before this step (try a smaller learning rate)")
            k = idx.shape[0]
            total_loss += value * k
            if classify:
                total_correct += loss.n_correct
            global_step += 1
            if scheduler is not None and getattr(scheduler, "interval", "epoch") == "step":
                scheduler.step()
            bar.update()
            if callbacks:
                _call(callbacks, "on_batch_end", global_step - 1,
                      {"loss": value, "batch": step, "size": k})
        logs["loss"] = total_loss / n
        if classify:
            logs["accuracy"] = total_correct / n
        if val is not None:
            vlogs = _evaluate(model, loss, val[0], val[1], 256, classify)
            logs.update({"val_" + k: v for k, v in vlogs.items()})
            model.train()
        logs["time"] = time.perf_counter() - t0
        if scheduler is not None and getattr(scheduler, "interval", "epoch") == "epoch":
            if getattr(scheduler, "needs_metric", False):
                scheduler.step(logs.get("val_loss", logs["loss"]))
            else:
                scheduler.step()
        history._append(epoch, logs)
        bar.end(epoch, logs)
        _call(callbacks, "on_epoch_end", epoch, logs)
        if early_stopping is not None and early_stopping._update(epoch, logs, model):
            break
    if early_stopping is not None and early_stopping.restore_best and early_stopping.best_state is not None:
        model.load_state_dict(early_stopping.best_state)
    return history


def _evaluate(model, loss, X, y, batch_size, classify):
    was_training = model.training
    model.eval()
    n = X.shape[0]
    total, correct = 0.0, 0
    try:
        for start in range(0, n, batch_size):
            xb = X[start:start + batch_size]
            yb = y[start:start + batch_size]
            value = loss._forward(forward_step(model, xb), yb)
            total += value * xb.shape[0]
            if classify:
                correct += loss.n_correct
    finally:
        model.train(was_training)
    out = {"loss": total / n}
    if classify:
        out["accuracy"] = correct / n
    return out


def evaluate(model, loss, X, y, batch_size=256):
    """Mean loss (and accuracy for CrossEntropyLoss) of ``model`` on (X, y), in eval mode.

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
    X, y = _prepare(model, loss, X, y)
    return _evaluate(model, loss, X, y, batch_size, isinstance(loss, CrossEntropyLoss))


__all__ = ["fit", "evaluate", "History", "EarlyStopping"]
