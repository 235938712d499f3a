"""Model files, weights and checkpoints (safetensors; nothing in a file is ever executed).

- :func:`save` / :func:`load`: a whole model, weights and buffers under their
  ``state_dict()`` names plus the architecture (each layer's constructor
  arguments) as JSON in the safetensors metadata; ``load`` rebuilds an equal model.
- :func:`save_weights` / :func:`load_weights`: weights only, a plain safetensors
  file that PyTorch reads with ``safetensors.torch.load_file`` (and fastnn reads
  files written by ``safetensors.torch.save_file``).
- :func:`save_checkpoint` / :func:`load_checkpoint`: model, optimizer, schedule and
  any JSON-able state for a hand-written training loop (``fit`` has
  ``checkpoint=fastnn.train.Checkpoint(path)``).
- :func:`register`: let ``save``/``load`` handle a custom Module class.
- :func:`export_onnx`: an ONNX graph for deployment (needs the ``onnx`` extra).

Every write is crash-safe (temporary file, fsync, ``os.replace``) and every file
carries a SHA-256 checksum that reading verifies.
"""
import os

import numpy as np

from fastnn.io import _arch, _format
from fastnn.io._arch import register
from fastnn.io._checkpoint import load_checkpoint, save_checkpoint
from fastnn.nn import Module

_ARCH_KEY = "fastnn.architecture"


def _state_arrays(model_or_state_dict, who):
    if isinstance(model_or_state_dict, Module):
        return model_or_state_dict.state_dict()
    if not hasattr(model_or_state_dict, "items"):
        raise TypeError(f"{who} expects a fastnn.nn.Module or a state dict (a mapping of names to arrays). "
                        f"Received: {type(model_or_state_dict).__name__}")
    out = {}
    for k, v in model_or_state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"{who}: state dict keys must be strings. Received key {k!r}")
        if hasattr(v, "detach"):  # a torch tensor
            v = v.detach().cpu().numpy()
        a = np.asarray(v)
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{who}: state dict entry {k!r} must be a numeric array. Received dtype {a.dtype}")
        out[k] = a
    return out


def save(model, path):
    """Save a whole model: weights, buffers and architecture, in one safetensors file.

    Parameters
    ----------
    model : fastnn.nn.Module
        Built-in layers, ``Sequential`` (nested too) and classes registered with
        :func:`register`.  Any other class raises TypeError before anything is
        written.
    path : str or os.PathLike
        Written crash-safely (an existing file is replaced only by a complete new one).

    See Also
    --------
    load, save_weights
    """
    if not isinstance(model, Module):
        raise TypeError(f"save expects a fastnn.nn.Module. Received: {type(model).__name__}")
    arch = {"version": _arch.ARCH_VERSION, "module": _arch.describe(model), "training": bool(model.training)}
    _format.write(path, model.state_dict(), {_ARCH_KEY: _format.dumps(arch)}, "model")


def load(path):
    """Rebuild a model saved by :func:`save`: same classes, arguments, dtype and weights.

    Classes come only from fastnn's built-in layers and from :func:`register`;
    the file names them, it cannot supply code.

    Returns
    -------
    fastnn.nn.Module
        In the train/eval mode it was saved in; its outputs equal the saved
        model's bit for bit.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing, truncated or corrupted file (the checksum is verified), a file
        that is not a fastnn model file, or a class that is not registered.
    """
    tensors, meta = _format.read(path, "model")
    if _ARCH_KEY not in meta:
        raise ValueError(f"{os.fspath(path)!r} is not a readable fastnn model file: the architecture is missing")
    arch = _format.loads(meta[_ARCH_KEY], path, _ARCH_KEY)
    if not isinstance(arch, dict) or "module" not in arch:
        raise ValueError(f"{os.fspath(path)!r} is not a readable fastnn model file: bad architecture entry")
    if arch.get("version") != _arch.ARCH_VERSION:
        raise ValueError(f"{os.fspath(path)!r} has architecture version {arch.get('version')!r}; this fastnn "
                         f"reads version {_arch.ARCH_VERSION}")
    model = _arch.build(arch["module"])
    _load_into(model, tensors, path, strict=True)
    model.train(bool(arch.get("training", True)))
    return model


def save_weights(model_or_state_dict, path):
    """Save weights (and buffers) only, as a plain safetensors file.

    PyTorch reads it with ``safetensors.torch.load_file(path)`` into the
    equivalent ``torch.nn`` model (the names and shapes are torch's).

    Parameters
    ----------
    model_or_state_dict : fastnn.nn.Module or mapping of str to array
    path : str or os.PathLike
    """
    _format.write(path, _state_arrays(model_or_state_dict, "save_weights"), {}, "weights")


def _load_into(model, tensors, path, strict):
    own = model.state_dict()
    spath = os.fspath(path)
    if strict:
        missing = [k for k in own if k not in tensors]
        unexpected = sorted(k for k in tensors if k not in own)  # (safetensors' order is not the file's)
        if missing or unexpected:
            raise ValueError(f"{spath!r} does not match the model: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
    for k, target in own.items():
        if k not in tensors:
            continue
        a = tensors[k]
        if a.shape != target.shape:
            raise ValueError(f"{spath!r}: {k!r} has shape {a.shape}; the model expects {target.shape}")
        if a.dtype != target.dtype:
            raise TypeError(f"{spath!r}: {k!r} is {a.dtype}; the model's {k!r} is {target.dtype} "
                            f"(fastnn does not cast silently: build the model with dtype={a.dtype.name} "
                            f"or convert the file)")
    model.load_state_dict({k: v for k, v in tensors.items() if k in own}, strict=False)
    return {"missing_keys": [k for k in own if k not in tensors],
            "unexpected_keys": sorted(k for k in tensors if k not in own)}


def load_weights(model, path, strict=True):
    """Copy the weights of a safetensors file into ``model``, in place.

    Reads files from :func:`save_weights` and :func:`save` and plain
    safetensors files, e.g. ``safetensors.torch.save_file(torch_model.state_dict(), path)``.

    Parameters
    ----------
    model : fastnn.nn.Module
    path : str or os.PathLike
    strict : bool
        Require the file's names to be exactly the model's ``state_dict()`` names.

    Returns
    -------
    dict
        ``{"missing_keys": [...], "unexpected_keys": [...]}``.

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        A missing or unreadable file, names (with ``strict``) or shapes that do not
        match (ValueError), a dtype that differs from the model's (TypeError).
        Everything is checked before anything is copied: on an error the model is
        unchanged.
    """
    if not isinstance(model, Module):
        raise TypeError(f"load_weights expects a fastnn.nn.Module. Received: {type(model).__name__}")
    tensors, _ = _format.read(path)
    return _load_into(model, tensors, path, bool(strict))


def __getattr__(name):
    # export_onnx lives in fastnn/io/onnx.py and imports onnx only when called.
    if name == "export_onnx":
        from fastnn.io.onnx import export_onnx

        return export_onnx
    raise AttributeError(f"module 'fastnn.io' has no attribute {name!r}")


__all__ = ["save", "load", "save_weights", "load_weights", "save_checkpoint", "load_checkpoint", "register",
           "export_onnx"]
