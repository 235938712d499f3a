"""Checkpoints: named parts (model, optimizer, scheduler, any JSON-able state) in one file.

A part is turned into a tree of JSON values whose arrays become safetensors
tensors named by their path ("optimizer/state/0/exp_avg"); the tree is stored
as JSON in the metadata.  Objects with ``state_dict()`` are stored as their
state dict (a Module's as its ``state_dict()``, with the model's class names
and shapes kept alongside).  Tags (objects with a ``"__fastnn__"`` key) keep
what JSON alone would lose: tuples, dicts with non-string keys, tensors.
"""
import os
from collections import OrderedDict

import numpy as np

from fastnn.io import _format
from fastnn.nn import Dropout, Module

KIND = "checkpoint"
_TREE_KEY = "fastnn.checkpoint"
_TAG = "__fastnn__"


def dropout_counters(model):
    """[index in model.modules(), calls] of every Dropout: its masks are counter-based
    (``Dropout.rng_state()``: seed and forward count), and the seed is part of the
    model's configuration, so the counter is what a checkpoint adds."""
    return [[i, m.rng_state()[1]] for i, m in enumerate(model.modules()) if isinstance(m, Dropout)]


def set_dropout_counters(model, counters):
    mods = list(model.modules())
    bad = [i for i, _ in counters if not (0 <= i < len(mods) and isinstance(mods[i], Dropout))]
    if bad:
        raise ValueError(f"the checkpoint has Dropout call counters for module #{bad[0]}, which is not a "
                         f"Dropout in this model")
    for i, calls in counters:
        mods[i].set_rng_state(mods[i].seed, int(calls))


class ModuleState(OrderedDict):
    """A Module part of a checkpoint: its state_dict, plus ``dropout_counters``
    (restored by ``load_checkpoint(path, model=model)``)."""

    dropout_counters = ()


class _Encoder:
    def __init__(self):
        self.tensors = {}

    def tensor(self, path, a):
        name = path or "tensor"
        k = 1
        while name in self.tensors:
            k += 1
            name = f"{path}#{k}"
        if a.dtype.kind not in "fiub":
            raise TypeError(f"checkpoint part {path!r}: arrays must be numeric. Received dtype {a.dtype}")
        self.tensors[name] = a
        return {_TAG: "tensor", "name": name}

    def encode(self, value, path):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, np.generic):
            return value
        if isinstance(value, np.generic):
            if value.dtype.kind in "fiub":
                return value.item()
            raise TypeError(f"checkpoint part {path!r}: a {type(value).__name__} is not JSON-able")
        if isinstance(value, np.ndarray):
            return self.tensor(path, value)
        if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
            return self.tensor(path, value.detach().cpu().numpy())
        if isinstance(value, Module):
            return {_TAG: "module", "arch": value.signature(), "dropout": dropout_counters(value),
                    "state": self.encode(value.state_dict(), path)}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {_TAG: "tuple", "items": items}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and _TAG not in value:
                return {k: self.encode(v, f"{path}/{k}") for k, v in value.items()}
            return {_TAG: "dict", "items": [[self.encode(k, f"{path}/key{i}"), self.encode(v, f"{path}/{k}")]
                                            for i, (k, v) in enumerate(value.items())]}
        if callable(getattr(value, "state_dict", None)):
            return {_TAG: "state", "class": type(value).__name__,
                    "value": self.encode(value.state_dict(), path)}
        raise TypeError(f"checkpoint part {path!r}: cannot store a {type(value).__name__} (use numbers, "
                        f"strings, bools, None, lists, tuples, dicts, numpy arrays, or objects with "
                        f"state_dict())")


def _decode(value, tensors, path):
    if isinstance(value, list):
        return [_decode(v, tensors, path) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v, tensors, path) for k, v in value.items()}
    if tag == "tensor":
        name = value.get("name")
        if name not in tensors:
            raise ValueError(f"{path!r}: the checkpoint refers to a tensor {name!r} it does not hold")
        return tensors[name]
    if tag == "tuple":
        return tuple(_decode(v, tensors, path) for v in value["items"])
    if tag == "dict":
        return {_hashable(_decode(k, tensors, path)): _decode(v, tensors, path) for k, v in value["items"]}
    if tag == "module":
        state = ModuleState(_decode(value["state"], tensors, path))
        state.dropout_counters = [[int(i), int(c)] for i, c in value.get("dropout", [])]
        return state
    if tag == "state":
        return _decode(value["value"], tensors, path)
    raise ValueError(f"{path!r}: unknown entry {tag!r} in the checkpoint")


def _hashable(k):
    return tuple(_hashable(v) for v in k) if isinstance(k, (list, tuple)) else k


def save_checkpoint(path, **parts):
    """Write a checkpoint: every keyword argument is one named part.

    Parameters
    ----------
    path : str or os.PathLike
        The file (safetensors); written crash-safely (a temporary file in the same
        folder, fsync, ``os.replace``): a crash during the write leaves the previous
        file intact.
    **parts
        A ``fastnn.nn.Module`` (stored as its ``state_dict()``), an optimizer,
        schedule or any object with ``state_dict()`` (stored as that), or a value
        made of numbers, strings, bools, None, lists, tuples, dicts and numpy
        arrays (e.g. ``epoch=3, rng=gen.bit_generator.state``).

    Examples
    --------
    >>> fastnn.io.save_checkpoint("ckpt.safetensors", model=model, optimizer=opt, epoch=epoch)
    >>> parts = fastnn.io.load_checkpoint("ckpt.safetensors", model=model, optimizer=opt)
    >>> start = parts["epoch"] + 1
    """
    if not parts:
        raise ValueError("save_checkpoint needs at least one part, e.g. save_checkpoint(path, model=model)")
    enc = _Encoder()
    tree = {name: enc.encode(value, name) for name, value in parts.items()}
    _format.write(path, enc.tensors, {_TREE_KEY: _format.dumps(tree)}, KIND)


def read_parts(path):
    """The parts of a checkpoint, decoded (no object is changed)."""
    tensors, meta = _format.read(path, KIND)
    if _TREE_KEY not in meta:
        raise ValueError(f"{os.fspath(path)!r} is not a readable fastnn checkpoint: the "
                         f"'{_TREE_KEY}' metadata is missing")
    tree = _format.loads(meta[_TREE_KEY], path, _TREE_KEY)
    if not isinstance(tree, dict):
        raise ValueError(f"{os.fspath(path)!r} is not a readable fastnn checkpoint: its parts are not an object")
    return {name: _decode(v, tensors, os.fspath(path)) for name, v in tree.items()}, tree


def module_fingerprint(tree, name):
    """The class names and state shapes stored for the Module part ``name`` (or None)."""
    entry = tree.get(name)
    if isinstance(entry, dict) and entry.get(_TAG) == "module":
        return entry.get("arch")
    return None


def restore(targets, parts, path):
    """``obj.load_state_dict(parts[name])`` for every ``name=obj`` in ``targets``, all or none:
    when one fails, the ones already loaded get their old state back."""
    missing = [name for name in targets if name not in parts]
    if missing:
        raise ValueError(f"{os.fspath(path)!r} has no part {missing[0]!r} (it has {sorted(parts)})")
    for name, obj in targets.items():
        if not callable(getattr(obj, "load_state_dict", None)):
            raise TypeError(f"load_checkpoint({name}=...) needs an object with load_state_dict(). "
                            f"Received: {type(obj).__name__}")
    done = []
    try:
        for name, obj in targets.items():
            part = parts[name]
            if isinstance(obj, Module):
                backup = (obj.state_dict(), dropout_counters(obj))
                obj.load_state_dict(part)
                done.append((obj, backup))
                set_dropout_counters(obj, getattr(part, "dropout_counters", ()))
            else:
                backup = obj.state_dict()
                obj.load_state_dict(part)
                done.append((obj, backup))
    except BaseException:
        for obj, backup in reversed(done):
            if isinstance(obj, Module):
                obj.load_state_dict(backup[0])
                set_dropout_counters(obj, backup[1])
            else:
                obj.load_state_dict(backup)
        raise


def load_checkpoint(path, **targets):
    """Read a checkpoint written by :func:`save_checkpoint` (or by ``fit``).

    Parameters
    ----------
    path : str or os.PathLike
    **targets
        Optional objects to restore in place, by part name (``model=model,
        optimizer=opt``): each gets ``load_state_dict(part)``; all are validated
        and loaded, or (on an error) none is changed.

    Returns
    -------
    dict
        Every part: a Module as its state dict (``model.load_state_dict(parts["model"])``;
        pass ``model=model`` instead to also restore its Dropout layers' mask
        counters, for an exact resume), an object with state_dict as its state dict, other
        values as saved (arrays as numpy arrays, tuples as tuples).

    Raises
    ------
    FileNotFoundError, ValueError
        A missing, truncated or corrupted file (the checksum is verified), or one
        that is not a fastnn checkpoint; the message names the file.
    """
    parts, _ = read_parts(path)
    if targets:
        restore(targets, parts, path)
    return parts
