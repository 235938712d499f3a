"""A model's architecture as JSON, and back, without executing code from a file.

Each built-in layer is described by its constructor arguments, read back from
the layer's public attributes (one entry per class in ``_BUILTIN``); a
``Sequential`` lists its children.  A user's Module subclass is described by its
``get_config()`` once registered with :func:`register`.  Rebuilding looks a
class up by name in the built-in table or in the registry only: a file can name
a class, never supply one.
"""
import numpy as np

from fastnn import nn
from fastnn.nn import Module, Sequential

ARCH_VERSION = 1

# Registered user classes: name -> class.
_REGISTRY = {}


def _dtype_name(arr):
    return np.dtype(arr.dtype).name


def _norm_dtype(m):
    """The dtype of a normalization layer (which may have no parameter to read it from)."""
    return np.dtype(m.dtype).name


def _linear(m):
    return {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None,
            "dtype": _dtype_name(m.weight.data)}


def _conv(m):
    return {"in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding),
            "bias": m.bias is not None, "dtype": _dtype_name(m.weight.data)}


def _pool(m):
    return {"kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding)}


def _avgpool(m):
    d = _pool(m)
    d["count_include_pad"] = m.count_include_pad
    return d


def _per_channel(m):
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine,
            "track_running_stats": m.track_running_stats, "dtype": _norm_dtype(m)}


def _groupnorm(m):
    return {"num_groups": m.num_groups, "num_channels": m.num_channels, "eps": m.eps, "affine": m.affine,
            "dtype": _norm_dtype(m)}


def _layernorm(m):
    return {"normalized_shape": list(m.normalized_shape), "eps": m.eps,
            "elementwise_affine": m.elementwise_affine,
            "bias": m.bias is not None if m.elementwise_affine else True, "dtype": _norm_dtype(m)}


def _rnn(m):
    return {"input_size": m.input_size, "hidden_size": m.hidden_size, "nonlinearity": m.nonlinearity,
            "bias": bool(m.bias), "batch_first": m.batch_first, "dtype": _dtype_name(m.weight_ih_l0.data)}


def _lstm(m):
    return {"input_size": m.input_size, "hidden_size": m.hidden_size, "bias": bool(m.bias),
            "batch_first": m.batch_first, "dtype": _dtype_name(m.weight_ih_l0.data)}


def _none(m):
    return {}


# class -> function(module) -> constructor keyword arguments (JSON-able)
_BUILTIN = {
    nn.Linear: _linear,
    nn.ReLU: _none,
    nn.Sigmoid: _none,
    nn.Tanh: _none,
    nn.LeakyReLU: lambda m: {"negative_slope": m.negative_slope},
    nn.Dropout: lambda m: {"p": m.p, "seed": m.seed},
    nn.Conv2d: _conv,
    nn.MaxPool2d: _pool,
    nn.AvgPool2d: _avgpool,
    nn.Flatten: lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim},
    nn.BatchNorm1d: _per_channel,
    nn.BatchNorm2d: _per_channel,
    nn.InstanceNorm2d: _per_channel,
    nn.GroupNorm: _groupnorm,
    nn.LayerNorm: _layernorm,
    nn.RNN: _rnn,
    nn.LSTM: _lstm,
}
_BUILTIN_BY_NAME = {cls.__name__: cls for cls in _BUILTIN}
_BUILTIN_BY_NAME["Sequential"] = Sequential

# constructor arguments given back as tuples (JSON has only lists)
_TUPLE_ARGS = ("kernel_size", "stride", "padding", "normalized_shape")


def _registered_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls, name=None):
    """Let :func:`fastnn.io.save` and :func:`fastnn.io.load` handle a custom Module class.

    The class must define ``get_config(self) -> dict``: JSON-able constructor
    keyword arguments (numbers, strings, bools, None, lists and dicts of them),
    so that ``cls(**module.get_config())`` builds an equal module whose
    ``state_dict`` has the same names and shapes (Keras' convention).  A class
    may instead define a classmethod ``from_config(config)``.  ``load`` then
    rebuilds the module with it and copies the saved weights and buffers in.

    Register the class in every process that loads such a file (e.g. at import
    of the module that defines it): ``load`` finds classes only in fastnn's
    built-in layers and in this registry, never in the file.

    Parameters
    ----------
    cls : subclass of fastnn.nn.Module
    name : str, optional
        The name stored in files; default ``"<module>.<qualname>"`` of the class.

    Returns
    -------
    cls
        Unchanged, so ``register`` works as a class decorator.
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register expects a subclass of fastnn.nn.Module. Received: {cls!r}")
    if cls is Sequential or cls in _BUILTIN:
        raise ValueError(f"{cls.__name__} is a built-in layer; it needs no registration")
    if not callable(getattr(cls, "get_config", None)):
        raise TypeError(f"{cls.__qualname__} must define get_config(self) -> dict of its constructor "
                        f"arguments to be registered")
    if name is None:
        name = _registered_name(cls)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str. Received: {name!r}")
    if name in _BUILTIN_BY_NAME:
        raise ValueError(f"name {name!r} is taken by a built-in layer")
    other = _REGISTRY.get(name)
    if other is not None and other is not cls:
        raise ValueError(f"name {name!r} is already registered for {other!r}")
    _REGISTRY[name] = cls
    cls._fastnn_io_name = name
    return cls


def _check_json(value, where):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_check_json(v, where) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings. Received key {k!r}")
            out[k] = _check_json(v, where)
        return out
    raise TypeError(f"{where} must be JSON-able (numbers, strings, bools, None, lists, dicts). "
                    f"Received a {type(value).__name__}: {value!r}")


def describe(module):
    """The JSON-able description of ``module`` (raises TypeError for an unregistered class)."""
    cls = type(module)
    if cls is Sequential:
        return {"class": "Sequential", "modules": [describe(m) for m in module]}
    name = getattr(cls, "_fastnn_io_name", None)
    if name is not None and _REGISTRY.get(name) is cls:
        cfg = module.get_config()
        if not isinstance(cfg, dict):
            raise TypeError(f"{cls.__qualname__}.get_config() must return a dict. Received: {type(cfg).__name__}")
        return {"class": name, "config": _check_json(cfg, f"{cls.__qualname__}.get_config()")}
    fn = _BUILTIN.get(cls)
    if fn is None:
        raise TypeError(
            f"cannot save a {cls.__module__}.{cls.__qualname__}: it is not a built-in fastnn layer and is not "
            f"registered. Define get_config() (its constructor arguments) and call "
            f"fastnn.io.register({cls.__qualname__}) first, or save only the weights with "
            f"fastnn.io.save_weights")
    return {"class": cls.__name__, "config": fn(module)}


def build(desc, where="model"):
    """A new module from a description made by :func:`describe`."""
    if not isinstance(desc, dict) or not isinstance(desc.get("class"), str):
        raise ValueError(f"bad architecture entry at {where}: expected an object with a 'class' name. "
                         f"Received: {desc!r}")
    name = desc["class"]
    if name == "Sequential":
        mods = desc.get("modules")
        if not isinstance(mods, list):
            raise ValueError(f"bad architecture entry at {where}: Sequential needs a 'modules' list")
        return Sequential(*(build(d, f"{where}[{i}]") for i, d in enumerate(mods)))
    cfg = desc.get("config", {})
    if not isinstance(cfg, dict):
        raise ValueError(f"bad architecture entry at {where}: 'config' must be an object")
    cls = _BUILTIN_BY_NAME.get(name)
    if cls is not None:
        kwargs = {k: tuple(v) if k in _TUPLE_ARGS and isinstance(v, list) else v for k, v in cfg.items()}
        if "dtype" in kwargs:
            kwargs["dtype"] = np.dtype(kwargs["dtype"]).type
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"cannot rebuild {name} at {where} from {cfg}: {e}") from None
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"the file needs the class {name!r} at {where}, which is neither a built-in layer "
                         f"nor registered in this process: import the code that defines it and call "
                         f"fastnn.io.register on it before loading")
    make = getattr(cls, "from_config", None)
    return make(cfg) if callable(make) else cls(**cfg)


