"""Callbacks for ``fastnn.train.fit`` (re-exported from ``fastnn.train``).

A callback is any object with some of these methods (Keras' names)::

    set_model(model)                      # called once before training
    on_train_begin(logs)                  # logs: {"initial_epoch": e} (e > 0 on a resume)
    on_epoch_begin(epoch, logs)
    on_batch_end(step, logs)              # step counts every minibatch of the run
    on_epoch_end(epoch, logs)             # logs: "loss", "val_loss", metrics, "time"
    on_train_end(logs)

A callback stops training by setting ``stop_training = True`` (checked after
every ``on_batch_end`` and ``on_epoch_end``; a stop at a batch ends that epoch
early, its logs cover the batches run) or by returning ``True`` (the object
``True``, not any true value) from one of these methods.  A callback with
``state_dict()``/``load_state_dict(d)`` has that state saved in ``fit``'s
checkpoints and restored on resume.

:class:`Callback` is a convenient base class (no-op methods, ``model`` and
``stop_training`` attributes), but any object with the methods works.
"""
import csv
import math
import os

from fastnn import _checks as C


class Callback:
    """Base class: every hook is a no-op; ``set_model`` stores ``self.model``.

    Attributes
    ----------
    model : fastnn.nn.Module or None
        The model being trained (set by ``fit`` before training).
    stop_training : bool
        Set it to True to stop ``fit`` after the current batch or epoch.
    """

    def __init__(self):
        self.model = None
        self.stop_training = False

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs):
        pass

    def on_epoch_begin(self, epoch, logs):
        pass

    def on_batch_end(self, step, logs):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self, logs):
        pass


class LambdaCallback(Callback):
    """A callback made of functions (Keras' LambdaCallback).

    Parameters
    ----------
    on_epoch_begin, on_epoch_end : callable(epoch, logs), optional
    on_batch_end : callable(step, logs), optional
    on_train_begin, on_train_end : callable(logs), optional

    A function that returns ``True`` stops training (see :mod:`fastnn.callbacks`).

    Examples
    --------
    >>> losses = []
    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: losses.append(logs["loss"]))
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_end=None, on_train_begin=None,
                 on_train_end=None):
        super().__init__()
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_batch_end": on_batch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        for name, f in given.items():
            if f is not None and not callable(f):
                raise TypeError(f"LambdaCallback({name}=...) must be callable. Received: {f!r}")
        self._fns = given

    def on_train_begin(self, logs):
        f = self._fns["on_train_begin"]
        return None if f is None else f(logs)

    def on_epoch_begin(self, epoch, logs):
        f = self._fns["on_epoch_begin"]
        return None if f is None else f(epoch, logs)

    def on_batch_end(self, step, logs):
        f = self._fns["on_batch_end"]
        return None if f is None else f(step, logs)

    def on_epoch_end(self, epoch, logs):
        f = self._fns["on_epoch_end"]
        return None if f is None else f(epoch, logs)

    def on_train_end(self, logs):
        f = self._fns["on_train_end"]
        return None if f is None else f(logs)


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` and every key of the epoch logs.

    The file is rewritten when a run starts from epoch 0.  On a resume
    (``fit(..., resume=True)`` continuing from epoch ``e``), the rows of epochs
    before ``e`` are kept and the run appends from there (rows a crashed run had
    written after its last checkpoint are dropped, so no epoch appears twice).

    Parameters
    ----------
    path : str or os.PathLike
    separator : str
        Field separator (default ",").
    """

    def __init__(self, path, separator=","):
        super().__init__()
        self.path = os.fspath(path)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be a one-character string. Received: {separator!r}")
        self.separator = separator
        self._keys = None

    def on_train_begin(self, logs):
        start = int(logs.get("initial_epoch", 0)) if logs else 0
        self._keys = None
        rows = []
        if start > 0 and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f, delimiter=self.separator)
                header = next(reader, None)
                if header and header[0] == "epoch":
                    self._keys = header[1:]
                    rows = [r for r in reader if r and r[0].isdigit() and int(r[0]) < start]
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            if self._keys is not None:
                w = csv.writer(f, delimiter=self.separator)
                w.writerow(["epoch"] + self._keys)
                w.writerows(rows)

    def on_epoch_end(self, epoch, logs):
        new = self._keys is None
        if new:
            self._keys = list(logs)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=self.separator)
            if new:
                w.writerow(["epoch"] + self._keys)
            w.writerow([epoch] + [_cell(logs.get(k, "")) for k in self._keys])


def _cell(v):
    return repr(v) if isinstance(v, float) else v


class ModelCheckpoint(Callback):
    """Save the model with :func:`fastnn.io.save` after epochs (Keras' ModelCheckpoint).

    Parameters
    ----------
    path : str or os.PathLike
        The file; may hold ``str.format`` fields filled from the epoch (1-based)
        and the logs, e.g. ``"model-{epoch:02d}-{val_loss:.3f}.safetensors"``.
    monitor : str
        The key of the epoch logs to compare (default "val_loss"; pass
        ``validation_data`` to ``fit`` for it).
    save_best_only : bool
        Save only when ``monitor`` improved on the best value so far (default True);
        False saves after every epoch.
    mode : {"auto", "min", "max"}
        "auto": "max" for accuracies ("acc" in the name), "min" otherwise.

    Attributes
    ----------
    best : float or None
        The best monitored value so far (kept in ``fit``'s checkpoints).
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        super().__init__()
        self.path = os.fspath(path)
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str. Received: {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'. Received: {mode!r}")
        self.monitor = monitor
        self.save_best_only = C.flag(save_best_only, "save_best_only")
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best = None

    def on_train_begin(self, logs):
        if not (logs and logs.get("initial_epoch", 0) > 0):
            self.best = None

    def _improved(self, value):
        if self.best is None or math.isnan(self.best):
            return not math.isnan(value)
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs):
        from fastnn import io

        if self.model is None:
            raise RuntimeError("ModelCheckpoint has no model: fit calls set_model(model) before training")
        if self.save_best_only:
            if self.monitor not in logs:
                raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, which the epoch logs do not have "
                                 f"(available: {sorted(logs)}); pass validation_data for 'val_*' metrics")
            value = float(logs[self.monitor])
            if not self._improved(value):
                return
            self.best = value
        io.save(self.model, self.path.format(epoch=epoch + 1, **logs))

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, d):
        self.best = None if d.get("best") is None else float(d["best"])


__all__ = ["Callback", "LambdaCallback", "CSVLogger", "ModelCheckpoint"]
