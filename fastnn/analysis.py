"""Model assessment: gradient checks, Hessians and critical points, bias-variance.

Everything here is a diagnostic, not a training path: it works in float64, calls
the model many times and favours clear, exact bookkeeping over speed.

- :func:`gradient_check` compares a model's analytic backward with central finite
  differences of the loss.
- :func:`hessian` is the finite-difference Hessian of a scalar function of a flat
  vector; :func:`model_hessian` the Hessian of a model's loss over all of its
  parameters (central differences of the analytic gradient).
- :func:`critical_point` classifies a point from its Hessian's eigenvalues
  (minimum, maximum, saddle, degenerate) and gives the direction of steepest
  negative curvature to escape a saddle.
- :func:`bias_variance` estimates bias^2 and variance of an estimator under
  squared loss by refitting it on bootstrap samples.
"""
import math
import numbers
from dataclasses import dataclass

import numpy as np

from fastnn import _checks as C

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------
# model bookkeeping
# --------------------------------------------------------------------------------------

def _float64_model(model, X, who):
    params = list(model.named_parameters())
    if not params:
        raise ValueError(f"{who}: the model has no parameters")
    for name, p in params:
        if p.data.dtype != np.float64:
            raise TypeError(
                f"{who} needs a float64 model (finite differences in float32 are too coarse); "
                f"parameter {name!r} has dtype {p.data.dtype}. Build the model with dtype=np.float64"
            )
    if not isinstance(X, np.ndarray) or X.dtype != np.float64:
        got = X.dtype if isinstance(X, np.ndarray) else type(X).__name__
        raise TypeError(f"{who} needs float64 input X (the model's dtype). Received: {got}")
    if X.shape[:1] == (0,):
        raise ValueError(f"{who}: X must hold at least one sample. Received shape {X.shape}")
    return params


class _ModelState:
    """Snapshot of every parameter (data, grad and its lazy-zero flag) and buffer of a
    model, restored exactly by ``restore()`` (values copied back in place)."""

    def __init__(self, model):
        self.params = [(p, p.data.copy(), p.grad_is_zero, p.grad, p.grad.copy())
                       for p in model.parameters()]
        self.buffers = [(b, b.copy()) for _, b in model.named_buffers()]

    def restore(self):
        for p, data, grad_zero, grad_obj, grad in self.params:
            np.copyto(p.data, data)
            np.copyto(grad_obj, grad)
            p.grad = grad_obj
            if grad_zero:
                p.zero_grad()
        for b, value in self.buffers:
            np.copyto(b, value)


def _loss_value(model, loss, X, y):
    value = float(loss(model.forward(X), y))
    return value


def _flat_gradient(model, params, loss, X, y, out):
    """out[:] = d loss / d parameters (analytic backward), flattened in named_parameters() order."""
    model.zero_grad()
    value = loss(model.forward(X), y)
    model.backward(loss.backward())
    k = 0
    for _, p in params:
        out[k:k + p.size] = p.grad.reshape(-1)
        k += p.size
    return float(value)


# --------------------------------------------------------------------------------------
# gradient check
# --------------------------------------------------------------------------------------

def gradient_check(model, loss, X, y, eps=1e-6, floor=1e-7, return_details=False):
    """Largest relative error between a model's analytic gradient and finite differences.

    The analytic gradient is what training uses: ``loss(model.forward(X), y)``, then
    ``model.backward(loss.backward())`` (parameters' ``.grad``).  The numeric one is
    the central difference ``(L(w + eps e_k) - L(w - eps e_k)) / (2 eps)`` for every
    parameter element ``k``, in float64.

    Parameters
    ----------
    model : fastnn Module with float64 parameters (TypeError otherwise)
    loss : a fastnn loss object (e.g. ``MSELoss()``, ``CrossEntropyLoss()``)
    X : float64 ndarray of shape (n_samples, ...)
    y : targets accepted by ``loss``
    eps : float > 0
        Finite-difference step (default 1e-6; the difference itself is then
        accurate to about 1e-9 relative for smooth losses).
    floor : float > 0
        Relative errors are ``|a - n| / max(|a|, |n|, floor)`` element-wise, so
        gradient entries that are zero up to rounding (|a|, |n| < floor) are judged
        by their absolute difference instead of a meaningless ratio.
    return_details : bool
        Also return a dict ``{parameter name: max relative error}``.

    Returns
    -------
    max_rel_error : float
        Typically < 1e-6 for a correct backward; errors near 1 mean a wrong gradient.
        ReLU-like kinks inside ``eps`` of a pre-activation can give isolated larger
        errors; a Dropout layer must be in eval mode (random masks otherwise).

    Notes
    -----
    Every parameter is restored exactly (its saved value is copied back), and each
    parameter's ``.grad`` is left as it was found (values and lazy-zero state), as
    are module buffers (e.g. BatchNorm running statistics updated by the forward
    passes).  The model's internal activations saved for backward are those of the
    last finite-difference forward pass.
    """
    params = _float64_model(model, X, "gradient_check")
    eps = C.real(eps, "eps", low=0.0, low_open=True)
    floor = C.real(floor, "floor", low=0.0, low_open=True)
    n_total = sum(p.size for _, p in params)
    state = _ModelState(model)
    try:
        analytic = np.empty(n_total)
        _flat_gradient(model, params, loss, X, y, analytic)
        numeric = np.empty(n_total)
        k = 0
        for _, p in params:
            view = p.data                      # index in C order whatever the memory layout
            for idx in np.ndindex(*p.shape):
                old = view[idx]
                view[idx] = old + eps
                fp = _loss_value(model, loss, X, y)
                view[idx] = old - eps
                fm = _loss_value(model, loss, X, y)
                view[idx] = old
                numeric[k] = (fp - fm) / (2 * eps)
                k += 1
    finally:
        state.restore()
    if not (np.all(np.isfinite(analytic)) and np.all(np.isfinite(numeric))):
        raise FloatingPointError("gradient_check: the loss or its gradient is not finite at these parameters")
    rel = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    worst = float(rel.max())
    if not return_details:
        return worst
    details, k = {}, 0
    for name, p in params:
        details[name] = float(rel[k:k + p.size].max())
        k += p.size
    return worst, details


# --------------------------------------------------------------------------------------
# Hessians
# --------------------------------------------------------------------------------------

def _as_vector(w, name="w"):
    w = np.asarray(w)
    if w.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real vector. Received dtype: {w.dtype}")
    if w.ndim != 1 or w.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector. Received shape {w.shape}")
    w = np.array(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite")
    return w


def hessian(f, w, eps=None):
    """Hessian of a scalar function by central finite differences (float64).

    Parameters
    ----------
    f : callable
        ``f(w) -> float`` for a float64 vector ``w`` of shape (n,) (it receives a
        fresh copy each call, so it may keep or modify it).
    w : array-like of shape (n,)
        The point (converted to a float64 copy).
    eps : float > 0, optional
        Step; default ``eps_machine ** (1/4) * max(1, |w_i|)`` per coordinate
        (about 1.2e-4), which balances truncation and rounding error.

    Returns
    -------
    H : ndarray of shape (n, n), float64, exactly symmetric

    Notes
    -----
    Diagonal: ``(f(w + h e_i) - 2 f(w) + f(w - h e_i)) / h^2``; off-diagonal: the
    four-point formula ``(f(++) - f(+-) - f(-+) + f(--)) / (4 h_i h_j)``.  Both are
    exact for quadratics and O(h^2) (fourth derivatives) otherwise; rounding
    contributes about ``eps_machine * |f| / h^2`` (~1e-8 * |f| with the default
    step).  Costs ``2 n^2 + 1`` evaluations of ``f``.
    """
    if not callable(f):
        raise TypeError(f"f must be callable. Received: {type(f).__name__}")
    w = _as_vector(w)
    n = w.shape[0]
    if eps is None:
        h = _EPS ** 0.25 * np.maximum(1.0, np.abs(w))
    else:
        h = np.full(n, C.real(eps, "eps", low=0.0, low_open=True))

    def call(*steps):
        x = w.copy()
        for i, s in steps:
            x[i] += s
        v = f(x)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"f must return a scalar. Received: {type(v).__name__}") from None
        if not math.isfinite(v):
            raise FloatingPointError(f"f returned a non-finite value ({v}) near w")
        return v

    f0 = call()
    H = np.empty((n, n))
    for i in range(n):
        H[i, i] = (call((i, h[i])) - 2.0 * f0 + call((i, -h[i]))) / (h[i] * h[i])
        for j in range(i):
            v = (call((i, h[i]), (j, h[j])) - call((i, h[i]), (j, -h[j]))
                 - call((i, -h[i]), (j, h[j])) + call((i, -h[i]), (j, -h[j])))
            H[i, j] = H[j, i] = v / (4.0 * h[i] * h[j])
    return H


def model_hessian(model, loss, X, y, eps=None):
    """Hessian of a model's loss over all of its parameters.

    Parameters are flattened in ``named_parameters()`` order, each in C order
    (``p.data.reshape(-1)``), so ``H[k, l]`` pairs flat entries ``k`` and ``l``.

    Method: central differences of the analytic gradient (the model's backward),
    column ``k`` = ``(g(w + h e_k) - g(w - h e_k)) / (2 h)``, then symmetrized
    ``(H + H.T) / 2``.  With the default step ``h = eps_machine ** (1/3) *
    max(1, |w_k|)`` (about 6e-6) the error is O(h^2) from third derivatives plus
    about ``eps_machine * |g| / h`` from rounding: ~1e-10 relative for smooth
    losses.  Costs 2 forward + backward passes per parameter.

    Parameters
    ----------
    model : fastnn Module with float64 parameters (TypeError otherwise)
    loss : a fastnn loss object
    X : float64 ndarray of shape (n_samples, ...)
    y : targets accepted by ``loss``
    eps : float > 0, optional
        Fixed step instead of the default.

    Returns
    -------
    H : ndarray of shape (n_params, n_params), float64, symmetric

    The parameters, their ``.grad`` and module buffers are restored exactly, as in
    :func:`gradient_check`.  Non-smooth points (ReLU kinks within ``h``) give
    one-sided, meaningless curvature there.
    """
    params = _float64_model(model, X, "model_hessian")
    n_total = sum(p.size for _, p in params)
    fixed = None if eps is None else C.real(eps, "eps", low=0.0, low_open=True)
    state = _ModelState(model)
    H = np.empty((n_total, n_total))
    gp = np.empty(n_total)
    gm = np.empty(n_total)
    try:
        k = 0
        for _, p in params:
            view = p.data                      # index in C order whatever the memory layout
            for idx in np.ndindex(*p.shape):
                old = view[idx]
                h = fixed if fixed is not None else _EPS ** (1.0 / 3.0) * max(1.0, abs(old))
                view[idx] = old + h
                _flat_gradient(model, params, loss, X, y, gp)
                view[idx] = old - h
                _flat_gradient(model, params, loss, X, y, gm)
                view[idx] = old
                H[:, k] = (gp - gm) / (2.0 * h)
                k += 1
    finally:
        state.restore()
    if not np.all(np.isfinite(H)):
        raise FloatingPointError("model_hessian: the gradient is not finite near these parameters")
    return 0.5 * (H + H.T)


# --------------------------------------------------------------------------------------
# critical points
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CriticalPoint:
    """Second-order classification of a point with zero gradient.

    Attributes
    ----------
    kind : str
        ``"minimum"`` (all eigenvalues > tol), ``"maximum"`` (all < -tol),
        ``"saddle"`` (some > tol and some < -tol, whatever the others) or
        ``"degenerate"`` (the test is inconclusive: some |eigenvalue| <= tol and the
        rest of one sign, or all of them zero).
    eigenvalues : ndarray of shape (n,), ascending
    eigenvectors : ndarray of shape (n, n), column i belongs to eigenvalues[i]
    escape_direction : ndarray of shape (n,) or None
        Unit eigenvector of the most negative eigenvalue when that eigenvalue is
        < -tol (moving along it, either way, lowers the function to second order),
        else None.  Its sign is fixed so that its largest-magnitude entry is positive.
    tol : float
        The threshold used for "zero" eigenvalues.
    """

    kind: str
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    escape_direction: object
    tol: float


def critical_point(H, tol=None):
    """Classify a critical point from its Hessian (second-derivative test).

    Parameters
    ----------
    H : array-like of shape (n, n)
        A symmetric Hessian (e.g. from :func:`hessian` or :func:`model_hessian`).
        Asymmetry up to 1e-6 relative (finite-difference noise) is removed by
        symmetrizing; more raises ValueError.
    tol : float >= 0, optional
        Eigenvalues with ``|lambda| <= tol`` count as zero.  Default
        ``1e-6 * max(1, max |lambda|)``, above the ~1e-8 noise of a
        finite-difference Hessian of a function of order 1.  Pass 0 for an exact
        Hessian.

    Returns
    -------
    CriticalPoint
        ``.kind``, ``.eigenvalues`` (ascending), ``.eigenvectors``,
        ``.escape_direction`` (unit vector or None) and ``.tol``.

    The gradient is not checked: the classification assumes it is zero there.
    """
    H = np.asarray(H)
    if H.dtype.kind not in "fiu":
        raise TypeError(f"H must be a real matrix. Received dtype: {H.dtype}")
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"H must be a non-empty square matrix. Received shape {H.shape}")
    H = H.astype(np.float64)
    if not np.all(np.isfinite(H)):
        raise ValueError("H contains NaN or infinity")
    scale = max(1.0, float(np.max(np.abs(H))))
    asym = float(np.max(np.abs(H - H.T)))
    if asym > 1e-6 * scale:
        raise ValueError(f"H must be symmetric. Received a matrix with max |H - H.T| = {asym:.3g}")
    lam, vec = np.linalg.eigh(0.5 * (H + H.T))
    if tol is None:
        tol = 1e-6 * max(1.0, float(np.max(np.abs(lam))))
    else:
        tol = C.real(tol, "tol", low=0.0)
    pos = bool(np.any(lam > tol))
    neg = bool(np.any(lam < -tol))
    zero = bool(np.any(np.abs(lam) <= tol))
    if pos and neg:
        kind = "saddle"
    elif zero:
        kind = "degenerate"
    elif pos:
        kind = "minimum"
    else:
        kind = "maximum"
    direction = None
    if lam[0] < -tol:
        direction = vec[:, 0].copy()
        if direction[np.argmax(np.abs(direction))] < 0:
            direction = -direction
        direction /= np.linalg.norm(direction)
    return CriticalPoint(kind=kind, eigenvalues=lam, eigenvectors=vec, escape_direction=direction,
                         tol=float(tol))


# --------------------------------------------------------------------------------------
# bias-variance
# --------------------------------------------------------------------------------------

def _predictions(est, X_test, n_test, round_):
    p = est.predict(X_test)
    if hasattr(p, "detach"):
        p = p.detach().cpu().numpy()
    p = np.asarray(p)
    if p.dtype.kind not in "fiub":
        raise TypeError(f"predict() must return numbers for squared loss. Received dtype: {p.dtype}")
    if p.ndim == 0 or p.shape[0] != n_test:
        raise ValueError(f"predict(X_test) must return one prediction per test sample ({n_test}). "
                         f"Received shape {p.shape} (round {round_})")
    return p.astype(np.float64, copy=False)


def bias_variance(make_estimator, X, y, X_test, f_test=None, n_rounds=50, seed=None, *, y_test=None):
    """Bias^2, variance and expected error of an estimator under squared loss.

    The estimator is refitted ``n_rounds`` times, each time on a bootstrap sample
    of (X, y) (n rows drawn with replacement), and predicts ``X_test``.  With
    ``P[r, j]`` the prediction of round r at test point j and ``m_j`` its mean over
    the rounds (all averages below are also taken over test points, and over
    outputs for multi-output predictions):

    - ``variance = mean_j mean_r (P[r, j] - m_j)^2``
    - ``bias2 = mean_j (m_j - f_j)^2`` against the true function ``f_j = f(x_j)``
      when ``f_test`` is given; otherwise against the noisy ``y_test`` (then bias2
      contains the noise, as in mlxtend's ``bias_variance_decomp``); ``None`` when
      neither is given.
    - ``noise``: the noise variance ``sigma^2 = E[(y - f(x))^2]``, estimated as the
      mean of ``(y - f(X))^2`` over the training points when ``f_test`` is a
      callable, or of ``(y_test - f_test)^2`` over the test points when both arrays
      are given; ``None`` otherwise (it cannot be measured honestly without f at
      points with observed y).
    - ``expected_error = bias2 + variance (+ noise when known)``.  With f given and
      the noise known this is the expected squared error of a bootstrap-trained
      model against a fresh noisy observation at the test points; without the
      noise it is the expected squared error against f, and
      ``mean_r mean_j (P[r, j] - f_j)^2 == bias2 + variance`` holds exactly.

    Parameters
    ----------
    make_estimator : callable
        ``make_estimator()`` returns a new unfitted object with ``fit(X, y)`` and
        ``predict(X)`` (a fastnn or scikit-learn estimator, or your own).
    X : ndarray of shape (n_samples, ...)
        Training inputs (passed to fit as given; rows are indexed, dtype kept).
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    X_test : ndarray of shape (n_test, ...)
    f_test : ndarray of shape of the predictions, or callable ``f(X) -> ndarray``, optional
        The true (noise-free) regression function at X_test, or the function itself.
    n_rounds : int >= 2
        Number of bootstrap refits (default 50).
    seed : int or None
        Seed of the bootstrap draws (the estimator's own randomness is its business).
    y_test : ndarray, optional, keyword-only
        Observed (noisy) targets at X_test, for real data where f is unknown.

    Returns
    -------
    dict with keys ``"bias2"``, ``"variance"``, ``"expected_error"``, ``"noise"``
    (floats or None as described) and ``"mean_prediction"`` (ndarray ``m``).
    """
    if not callable(make_estimator):
        raise TypeError(f"make_estimator must be a callable returning an estimator. "
                        f"Received: {type(make_estimator).__name__}")
    if isinstance(n_rounds, bool) or not isinstance(n_rounds, numbers.Integral) or n_rounds < 2:
        raise ValueError(f"n_rounds must be an integer >= 2. Received: n_rounds={n_rounds!r}")
    X = np.asarray(X)
    y = np.asarray(y)
    X_test = np.asarray(X_test)
    if X.ndim == 0 or y.ndim == 0 or X_test.ndim == 0:
        raise ValueError("X, y and X_test must be arrays with samples along the first axis")
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"X must hold at least 2 samples for bootstrap refits. Received {n}")
    if y.shape[0] != n:
        raise ValueError(f"X and y must have the same number of samples. Received: {n} and {y.shape[0]}")
    if y.dtype.kind not in "fiu":
        raise TypeError(f"y must be numeric for squared loss. Received dtype: {y.dtype}")
    n_test = X_test.shape[0]
    if n_test == 0:
        raise ValueError("X_test must hold at least one sample")
    rng = np.random.default_rng(seed)

    noise = None
    if callable(f_test):
        f_fun = f_test
        f_test = np.asarray(f_fun(X_test), dtype=np.float64)
        f_train = np.asarray(f_fun(X), dtype=np.float64)
        if f_train.shape != y.shape:
            raise ValueError(f"f(X) must have the shape of y {y.shape}. Received {f_train.shape}")
        noise = float(np.mean((y - f_train) ** 2))
    elif f_test is not None:
        f_test = np.asarray(f_test)
        if f_test.dtype.kind not in "fiu":
            raise TypeError(f"f_test must be numeric. Received dtype: {f_test.dtype}")
        f_test = f_test.astype(np.float64)
    if y_test is not None:
        y_test = np.asarray(y_test)
        if y_test.dtype.kind not in "fiu":
            raise TypeError(f"y_test must be numeric. Received dtype: {y_test.dtype}")
        y_test = y_test.astype(np.float64)

    preds = None
    for r in range(n_rounds):
        idx = rng.integers(0, n, n)
        est = make_estimator()
        if not (hasattr(est, "fit") and hasattr(est, "predict")):
            raise TypeError(f"make_estimator() must return an object with fit and predict. "
                            f"Received: {type(est).__name__}")
        est.fit(X[idx], y[idx])
        p = _predictions(est, X_test, n_test, r)
        if preds is None:
            preds = np.empty((n_rounds,) + p.shape)
        elif p.shape != preds.shape[1:]:
            raise ValueError(f"predict(X_test) changed shape between rounds: {preds.shape[1:]} then {p.shape}")
        preds[r] = p
    if not np.all(np.isfinite(preds)):
        raise FloatingPointError("bias_variance: the estimator predicted NaN or infinity")
    mean_pred = preds.mean(axis=0)
    variance = float(np.mean((preds - mean_pred) ** 2))

    for name, ref in (("f_test", f_test), ("y_test", y_test)):
        if ref is not None and ref.shape != mean_pred.shape:
            if ref.size == mean_pred.size and ref.shape[0] == n_test:
                continue     # e.g. (n,) against (n, 1): compared after reshaping below
            raise ValueError(f"{name} must have the shape of the predictions {mean_pred.shape}. "
                             f"Received {ref.shape}")
    target = f_test if f_test is not None else y_test
    bias2 = expected = None
    if target is not None:
        bias2 = float(np.mean((mean_pred - target.reshape(mean_pred.shape)) ** 2))
        if f_test is not None and y_test is not None and noise is None:
            noise = float(np.mean((y_test.reshape(mean_pred.shape) - f_test.reshape(mean_pred.shape)) ** 2))
        expected = bias2 + variance + (noise if (noise is not None and f_test is not None) else 0.0)
    return {"bias2": bias2, "variance": variance, "expected_error": expected, "noise": noise,
            "mean_prediction": mean_pred}


__all__ = ["gradient_check", "hessian", "model_hessian", "critical_point", "CriticalPoint",
           "bias_variance"]
