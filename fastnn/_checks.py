"""Input validation shared by the Python layer (messages: expected vs received)."""
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype, name="dtype"):
    """Normalize a dtype argument; only float32 and float64 are supported."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64. Received: {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64. Received: {dt}")
    return dt


def as_float(a, name, dtype=None, ndim=None):
    """Return ``a`` as a C-contiguous float32/float64 ndarray (copying only if needed).

    A non-float array raises TypeError; when ``dtype`` is given the array must
    already have it (nothing is silently upcast or downcast).
    """
    if not isinstance(a, np.ndarray):
        if hasattr(a, "__array__") or isinstance(a, (list, tuple)):
            a = np.asarray(a)
        else:
            raise TypeError(f"{name} must be a numpy array. Received: {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array. Received dtype: {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name} must have dtype {np.dtype(dtype)} (the model/array dtype); received {a.dtype}. "
            f"Convert it explicitly with .astype(np.{np.dtype(dtype)})"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D. Received shape {a.shape}")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


def check_out(out, shape, dtype, name="out"):
    """Validate a user-supplied output buffer."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array. Received: {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}. Received: {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}. Received: {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a C-contiguous, writeable array")
    return out


def same_dtype(*pairs):
    """Every (name, array) must share the first array's dtype (TypeError otherwise)."""
    first_name, first = pairs[0]
    for name, a in pairs[1:]:
        if a is not None and a.dtype != first.dtype:
            raise TypeError(
                f"{name} must have the same dtype as {first_name} ({first.dtype}). Received: {a.dtype}"
            )


class ParameterError(ValueError, TypeError):
    """A hyperparameter of the wrong type.

    Both a ValueError and a TypeError, as scikit-learn's InvalidParameterError, so code that
    catches either (scikit-learn's conventions or Python's) sees it.
    """


def flag(value, name):
    """A bool hyperparameter (True/False or a NumPy bool); anything else raises ParameterError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False. Received: {name}={value!r}")
    return bool(value)


def integer(value, name, low, allow_inf=False):
    """An integer hyperparameter >= ``low`` (``np.inf`` too when ``allow_inf``)."""
    if allow_inf and isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) \
            and value == math.inf:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer >= {low}{' or np.inf' if allow_inf else ''}. "
                             f"Received: {name}={value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value}")
    return int(value)


def option(value, name, options):
    """One of ``options`` (strings compared by value, anything else such as None by identity)."""
    if not any(value is o or (isinstance(value, str) and value == o) for o in options):
        raise ValueError(f"{name} must be one of {list(options)}. Received: {name}={value!r}")
    return value


def sample_weight(weights, n, dtype):
    """Per-sample weights: None (all ones), a number, or a finite, non-negative (n,) array with
    at least one positive entry; returned C-contiguous in ``dtype``."""
    if weights is None:
        return np.ones(n, dtype=dtype)
    if isinstance(weights, numbers.Number):
        return np.full(n, weights, dtype=dtype)
    sw = np.asarray(weights)
    if sw.dtype.kind not in "biuf":
        raise ParameterError(f"sample_weight must be numeric. Received dtype {sw.dtype}")
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},). Received shape {sw.shape}")
    sw = np.ascontiguousarray(sw, dtype=dtype)
    if not np.all(np.isfinite(sw)):
        raise ValueError("sample_weight must be finite. Received NaN or inf")
    if np.any(sw < 0):
        raise ValueError("sample_weight must be non-negative. Received negative weights")
    if n and not np.any(sw > 0):
        raise ValueError("sample_weight must contain at least one non-zero number. Received all zeros")
    return sw


def int_pair(value, name, minimum):
    """An int or a pair of ints (height, width), each >= minimum, as a tuple of two ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w). Received: {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints. Received: {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value!r}")
    return (int(pair[0]), int(pair[1]))


def image(x, name, dtype=None, channels=None):
    """A C-contiguous float (N, C, H, W) array (see :func:`as_float` for the dtype rule)."""
    x = as_float(x, name, dtype=dtype)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W). Received shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels (dimension 1). Received shape {x.shape}")
    return x


def window_output(hw, kernel, stride, padding, who):
    """Output (height, width) of a sliding window; raises when the window does not fit."""
    out = []
    for size, k, s, p, axis in zip(hw, kernel, stride, padding, ("height", "width")):
        if size + 2 * p < k:
            raise ValueError(
                f"{who}: kernel {axis} {k} is larger than the padded input {axis} {size} + 2*{p}"
            )
        out.append((size + 2 * p - k) // s + 1)
    return tuple(out)


def conv_geometry(x_shape, w_shape, stride, padding):
    """((kh, kw), OH, OW) of a conv of an (N, C, H, W) input with an (O, C, kh, kw) weight."""
    kh, kw = w_shape[2], w_shape[3]
    oh, ow = window_output(x_shape[2:], (kh, kw), stride, padding, "conv2d")
    return (kh, kw), oh, ow


def pool_args(kernel_size, stride, padding):
    """Validated (kernel, stride, padding) pairs of a pooling window (stride None: the kernel)."""
    k = int_pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else int_pair(stride, "stride", 1)
    p = int_pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half the kernel size. Received padding={p} "
                         f"for kernel_size={k}")
    return k, s, p


def pool_output_shape(x_shape, k, s, p, who):
    """(N, C, OH, OW) of a pooling window over an (N, C, H, W) input."""
    oh, ow = window_output(x_shape[2:], k, s, p, who)
    return (x_shape[0], x_shape[1], oh, ow)


def layer_input(x, dtype, who):
    """A layer's input: an ndarray of the layer's dtype (float32 or float64 when ``dtype`` is
    None).  Shapes are the layer's to check.  Returns it C-contiguous."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who} expects a numpy array. Received: {type(x).__name__}")
    if dtype is None:
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{who} expects float32 or float64 input. Received: {x.dtype}")
    elif x.dtype != dtype:
        raise TypeError(
            f"{who} expects {dtype} input (the layer's dtype); received {x.dtype}. "
            f"Convert with x.astype(np.{dtype}) or build the layer with dtype=np.{x.dtype}"
        )
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def grad_output(grad_y, shape, dtype, name="grad_y"):
    """The gradient passed to a layer's backward: an ndarray of the forward output's
    shape and dtype.  Returns it C-contiguous."""
    if not isinstance(grad_y, np.ndarray) or grad_y.shape != tuple(shape):
        raise ValueError(f"{name} must have the output's shape {tuple(shape)}. "
                         f"Received: {getattr(grad_y, 'shape', type(grad_y).__name__)}")
    if grad_y.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}. Received: {grad_y.dtype}")
    return grad_y if grad_y.flags.c_contiguous else np.ascontiguousarray(grad_y)


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer. Received: {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    return int(value)


def nonneg_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer. Received: {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value}")
    return int(value)


def real(value, name, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """A finite real hyperparameter within [low, high] (open ends on request; None if allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a real number. Received: {name}={value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if not bad and low is not None:
        bad = value <= low if low_open else value < low
    if not bad and high is not None:
        bad = value >= high if high_open else value > high
    if bad:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        rng = ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + (")" if high_open or high is None else "]")
        raise ValueError(f"{name} must be a finite number in {rng}. Received: {name}={value}")
    return value


def labels_1d(y, name="target"):
    """Integer class labels as a C-contiguous intp array; fractional floats raise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} labels must be 1-D. Received shape {y.shape}")
    if y.dtype.kind in "iu":
        return np.ascontiguousarray(y, dtype=np.intp)
    if y.dtype.kind == "b":
        return y.astype(np.intp)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name} labels must be finite integers. Received non-finite values")
        if np.any(y != np.round(y)):
            bad = y[y != np.round(y)][0]
            raise ValueError(f"{name} labels must be integers. Received a fractional label: {bad}")
        return y.astype(np.intp)
    raise TypeError(f"{name} labels must be integers. Received dtype: {y.dtype}")


def ce_target(logits, target):
    """Cross-entropy targets for ``logits``: ('labels', intp array) or ('probs', float array)."""
    t = np.asarray(target)
    if t.ndim == 2:
        t = as_float(t, "target")
        if t.dtype != logits.dtype:
            raise TypeError(f"probability targets must have the logits dtype {logits.dtype}. Received: {t.dtype}")
        if t.shape != logits.shape:
            raise ValueError(f"probability targets must have shape {logits.shape}. Received: {t.shape}")
        return "probs", t
    labels = labels_1d(t)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"target has {labels.shape[0]} labels for {logits.shape[0]} rows of logits")
    return "labels", labels
