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


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer. Received: {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    return int(value)


def real(value, name, low=None, high=None, low_open=False, high_open=False):
    """A finite real hyperparameter within [low, high] (open ends on request)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number. Received: {value!r}")
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
