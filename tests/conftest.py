"""Shared fixtures and NumPy reference implementations for the fastnn tests.

Fixtures
--------
dtype        float32 and float64 (every kernel runs in both)
n_threads    1 and 2, applied with ``fastnn.threads(n)`` for the test's duration
rng          a seeded ``numpy.random.Generator``
assert_close tolerance keyed by the dtype of the *computed* array
             (float32: rtol 1e-5 / atol 1e-6, float64: rtol 1e-10 / atol 1e-12;
             ``scale`` widens both for long reductions, atol is relative to the
             magnitude of the reference)
ref          NumPy references (float64 math) for every ops kernel
"""
import types

import numpy as np
import pytest

import fastnn as fn

ACTIVATIONS = [None, "identity", "relu", "leaky_relu", "sigmoid", "tanh"]
DTYPES = [np.float32, np.float64]

_TOL = {
    np.dtype(np.float32): (1e-5, 1e-6),
    np.dtype(np.float64): (1e-10, 1e-12),
}


def _sklearn_version():
    try:
        import sklearn
    except ImportError:
        return (0, 0)
    return tuple(int("".join(c for c in part if c.isdigit()) or 0) for part in sklearn.__version__.split(".")[:2])


SKLEARN_VERSION = _sklearn_version()   # (major, minor); (0, 0) without scikit-learn
# fastnn's estimators follow scikit-learn's algorithms as of 1.8; older releases compute other
# numbers (and lack some parameters), so comparisons with them run from 1.8 on. The API tests
# run on every supported version (the wheel check installs the floor, 1.1.3).
SKLEARN_REFERENCE = (1, 8)
sklearn_reference = pytest.mark.skipif(
    SKLEARN_VERSION < SKLEARN_REFERENCE,
    reason=f"compares with scikit-learn's own results as of {SKLEARN_REFERENCE}; installed {SKLEARN_VERSION}")


def tolerance(dtype, scale=1.0):
    rtol, atol = _TOL[np.dtype(dtype)]
    return rtol * scale, atol * scale


def _assert_close(actual, desired, dtype=None, scale=1.0, err_msg=""):
    """Compare a fastnn result to a (float64) reference.

    The tolerance is chosen by the dtype fastnn computed in (``dtype`` or the
    dtype of ``actual``); atol is scaled by the reference's magnitude so that
    values near zero in a large-magnitude array are judged sensibly.
    """
    actual_arr = np.asarray(actual)
    desired = np.asarray(desired, dtype=np.float64)
    if dtype is None:
        dtype = actual_arr.dtype if actual_arr.dtype.kind == "f" else np.float64
    rtol, atol = tolerance(dtype, scale)
    mag = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(
        actual_arr.astype(np.float64), desired, rtol=rtol, atol=atol * mag, err_msg=err_msg
    )


def numeric_grad(f, a, h=1e-6):
    """Central finite differences of scalar f() w.r.t. array a (perturbed in place)."""
    g = np.zeros(a.shape, dtype=np.float64)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[i]
        a[i] = old + h
        fp = f()
        a[i] = old - h
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param).type


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request, monkeypatch):
    """1 or 2 threads.  With 2, the size threshold under which kernels stay on one
    thread is lowered to one element, so every kernel of the test runs its
    parallel path (in normal use only multi-million-element work does)."""
    if request.param > 1:
        monkeypatch.setattr(fn._engine.config, "PARALLEL_MIN_ELEMENTS", 1)
    with fn.threads(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def assert_close():
    return _assert_close


@pytest.fixture(autouse=True)
def _restore_threads():
    """No test may leak a changed thread setting into the next one."""
    before = fn.get_num_threads()
    yield
    if fn.get_num_threads() != before:
        fn.set_num_threads(before)
        pytest.fail(f"test changed fastnn's thread setting from {before}")


# --------------------------------------------------------------------------------------
# NumPy references (computed in float64)
# --------------------------------------------------------------------------------------

def act_forward(z, activation, negative_slope=0.01):
    z = np.asarray(z, dtype=np.float64)
    if activation in (None, "identity"):
        return z.copy()
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "leaky_relu":
        return np.where(z > 0, z, negative_slope * z)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    raise AssertionError(activation)


def act_backward(grad_y, y, activation, negative_slope=0.01):
    """grad_y * act'(z), with the derivative written in terms of the output y."""
    g = np.asarray(grad_y, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if activation in (None, "identity"):
        return g.copy()
    if activation == "relu":
        return np.where(y > 0, g, 0.0)
    if activation == "leaky_relu":
        return np.where(y > 0, g, negative_slope * g)
    if activation == "sigmoid":
        return g * y * (1.0 - y)
    if activation == "tanh":
        return g * (1.0 - y * y)
    raise AssertionError(activation)


def linear_forward(x, w, b, activation, negative_slope=0.01):
    z = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    if b is not None:
        z = z + np.asarray(b, np.float64)
    return act_forward(z, activation, negative_slope)


def linear_backward(grad_y, x, w, y, activation, negative_slope=0.01):
    gz = act_backward(grad_y, y, activation, negative_slope)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    return gz @ w, gz.T @ x, gz.sum(axis=0)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def softmax_ce(logits, target):
    """Mean softmax cross-entropy (torch semantics) and its gradient."""
    lsm = log_softmax(logits)
    n, c = lsm.shape
    target = np.asarray(target)
    if target.ndim == 1:
        t = np.zeros((n, c))
        t[np.arange(n), target.astype(np.int64)] = 1.0
    else:
        t = target.astype(np.float64)
    loss = -(t * lsm).sum() / n
    p = np.exp(lsm)
    grad = (p * t.sum(axis=1, keepdims=True) - t) / n
    return loss, grad


def mse(pred, target):
    d = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    return float(np.mean(d * d)), 2.0 * d / d.size


def well_separated_linear_input(rng, n, in_f, w, b, dtype, margin=1e-3):
    """Random x whose pre-activations stay away from 0 (ReLU kinks) by ``margin``."""
    for _ in range(100):
        x = rng.standard_normal((n, in_f)).astype(dtype)
        z = x.astype(np.float64) @ np.asarray(w, np.float64).T
        if b is not None:
            z = z + b
        if np.min(np.abs(z)) > margin:
            return x
    raise RuntimeError("could not draw well separated inputs")


@pytest.fixture(scope="session")
def ref():
    return types.SimpleNamespace(
        act_forward=act_forward,
        act_backward=act_backward,
        linear_forward=linear_forward,
        linear_backward=linear_backward,
        log_softmax=log_softmax,
        softmax_ce=softmax_ce,
        mse=mse,
        well_separated_linear_input=well_separated_linear_input,
        ACTIVATIONS=ACTIVATIONS,
    )
