"""Loss objects: ``value = loss(pred, target)``, then ``grad = loss.backward()``.

The value and the gradient (of the mean loss with respect to ``pred``) come out
of one fused kernel pass; ``backward()`` returns a copy of the stored gradient.
Reduction is torch's ``reduction="mean"``: over samples for cross-entropy, over
all elements for element-wise losses.
"""
import math

import numpy as np

from fastnn._engine import codes
from fastnn import _checks as C
from fastnn._engine import loss as eloss
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _loss
from fastnn._engine.buffers import Buffers, owned_copy


class Loss:
    """Base class: subclasses implement ``_forward(pred, target) -> float``."""

    def __init__(self):
        self._bufs = Buffers()
        self._grad = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
        """Return the mean loss (a Python float) and keep the gradient for backward()."""
        return self._forward(pred, target)

    def backward(self):
        """Gradient of the last computed loss with respect to ``pred`` (a new array)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before the loss was computed")
        return owned_copy(self, "grad", self._grad)

    def _backward(self):
        return self._grad

    # fit() converts targets once with this, then calls _forward on batches.
    def prepare_target(self, y, dtype):
        return y

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropyLoss(Loss):
    """Multiclass logistic loss on logits (torch.nn.CrossEntropyLoss, mean reduction).

    ``loss(logits, target)`` with logits of shape (n_samples, n_classes) and
    target either integer labels of shape (n_samples,) in [0, n_classes) or
    class probabilities of shape (n_samples, n_classes).  Softmax, log-sum-exp,
    value and gradient are computed in one fused pass that is stable for huge
    logits.  After a call, ``n_correct`` holds the number of rows whose argmax
    matches the target (used for accuracy).

    Args:
        weight: optional class weights, array-like of shape (n_classes,), finite
            and >= 0 (stored as float64; any float or integer array, list or torch
            tensor).  torch's ``weight=`` semantics:

            - integer targets: ``sum_i w[y_i] * l_i / sum_i w[y_i]`` (a weighted
              mean; when the labels of a batch all have weight 0 the result is
              NaN, as in torch);
            - probability targets: ``l_i = -sum_c w_c p_ic log softmax(z_i)_c``,
              averaged over the n_samples rows (not divided by the weights).

    Input shape: logits ``(n_samples, n_classes)``; target ``(n_samples,)`` or
    ``(n_samples, n_classes)`` (probabilities, logits dtype).
    Output: a Python float; ``backward()`` returns the gradient with the shape of
    the logits.
    """

    def __init__(self, weight=None):
        super().__init__()
        self.n_correct = 0
        self.weight = weight

    @property
    def weight(self):
        """Class weights (float64 array of shape (n_classes,)) or None."""
        return self._weight

    @weight.setter
    def weight(self, value):
        if value is None:
            self._weight = None
            return
        if hasattr(value, "detach"):               # torch tensor
            value = value.detach().cpu().numpy()
        w = np.asarray(value)
        if w.dtype.kind not in "fiu":
            raise TypeError(f"weight must be a real array of class weights. Received dtype: {w.dtype}")
        if w.ndim != 1 or w.shape[0] == 0:
            raise ValueError(f"weight must be 1-D with one weight per class. Received shape {w.shape}")
        w = np.array(w, dtype=np.float64, order="C")        # own copy
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            bad = w[~(np.isfinite(w) & (w >= 0))][0]
            raise ValueError(f"weight must hold finite values >= 0. Received: {bad}")
        self._weight = w

    def prepare_target(self, y, dtype):
        y = np.asarray(y)
        if y.ndim == 2:
            return C.as_float(y.astype(dtype, copy=False), "target")
        return C.labels_1d(y)

    def _forward(self, pred, target):
        pred = C.as_float(pred, "logits", ndim=2)
        if pred.shape[0] == 0:
            raise ValueError(f"logits must hold at least one sample. Received shape {pred.shape}")
        kind, t = C.ce_target(pred, target)
        grad = self._bufs.get("grad", pred.shape, pred.dtype)
        if self._weight is None:
            loss, correct = eloss.softmax_cross_entropy(pred, kind, t, grad, n_threads_for(pred.size))
        else:
            loss, correct = self._weighted_run(pred, kind, t, grad)
        self._grad = grad
        self.n_correct = correct
        return loss

    def _weighted_run(self, pred, kind, t, grad):
        n, c = pred.shape
        w = self._weight
        if w.shape[0] != c:
            raise ValueError(f"weight has {w.shape[0]} class weights for logits with {c} classes")
        n_threads = n_threads_for(pred.size)
        if kind == "probs":
            total, correct = _loss.softmax_ce_probs(pred, t, grad, 1.0 / n, n_threads, w)
            return total / n, correct
        # Weighted mean: the kernel normalizes by the weight sum of the batch's labels.
        total, correct, bad = _loss.softmax_ce_labels(pred, t, grad, 1.0, n_threads, w)
        if bad:
            lo, hi = int(t.min()), int(t.max())
            raise ValueError(f"target labels must be in [0, {c}) for {c} classes. "
                             f"Received labels in [{lo}, {hi}]")
        return total, correct

    def __repr__(self):
        if self._weight is None:
            return "CrossEntropyLoss()"
        return f"CrossEntropyLoss(weight={self._weight.tolist()})"


class _Elementwise(Loss):
    """Mean of an element-wise loss of (pred, target) of one shape and dtype, value
    and gradient from one fused kernel pass.  A 1-D target for a (n, 1) prediction
    is treated as a column."""

    _kind = None       # key of fastnn._engine.codes.ELEM_LOSSES
    _binary = False    # targets are labels in {-1, +1} (or {0, 1}, mapped to -1/+1)
    _param = 0.0
    _grad_factor = 1.0   # the kernel's gradient is _grad_factor * scale * (its per-element slope)

    def prepare_target(self, y, dtype):
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{type(self).__name__} targets must be numeric. Received dtype: {y.dtype}")
        y = np.ascontiguousarray(y, dtype=dtype)
        return self._binary_targets(y) if self._binary else y

    def _binary_targets(self, t):
        """Targets as -1/+1 (a new array when they were 0/1); ValueError otherwise."""
        plus_minus = np.abs(t) == 1
        if np.all(plus_minus):
            return t
        if np.all((t == 0) | (t == 1)):
            return (2 * t - 1).astype(t.dtype)
        bad = t[~(plus_minus | (t == 0))]
        shown = bad[0] if bad.size else "a mix of 0 and -1"
        raise ValueError(f"{type(self).__name__} targets must be in {{-1, +1}} or {{0, 1}}. Received: {shown}")

    def _forward(self, pred, target):
        pred = C.as_float(pred, "pred")
        target = C.as_float(target, "target", dtype=pred.dtype)
        if target.shape != pred.shape:
            if pred.ndim == 2 and pred.shape[1] == 1 and target.shape == pred.shape[:1]:
                target = target.reshape(pred.shape)
            else:
                raise ValueError(f"target must have the shape of pred {pred.shape}. Received: {target.shape}")
        if pred.size == 0:
            raise ValueError("pred must not be empty")
        grad = self._bufs.get("grad", pred.shape, pred.dtype)
        scale = 1.0 / pred.size
        total = self._run(pred, target, grad, scale)
        if self._binary and math.isnan(total):
            converted = self._binary_targets(target)     # raises on invalid labels
            if converted is not target:
                total = self._run(pred, converted, grad, scale)
        self._grad = grad
        return total * scale

    def _run(self, pred, target, grad, scale):
        return _loss.elem_loss(codes.ELEM_LOSSES[self._kind], pred.reshape(-1), target.reshape(-1),
                               grad.reshape(-1), self._grad_factor * scale, self._param,
                               n_threads_for(pred.size))

    def __repr__(self):
        return f"{type(self).__name__}()" if not self._param else f"{type(self).__name__}({self._param})"


class MSELoss(_Elementwise):
    """Mean squared error ``mean((pred - target) ** 2)`` (torch.nn.MSELoss)."""

    _kind = "mse"
    _grad_factor = 2.0       # d (p - t)^2 / dp = 2 (p - t)


class L1Loss(_Elementwise):
    """Mean absolute error ``mean(|pred - target|)`` (torch.nn.L1Loss; gradient sign, 0 at 0)."""

    _kind = "l1"


class HuberLoss(_Elementwise):
    """Huber loss (torch.nn.HuberLoss): ``0.5 d^2`` where ``|d| < delta``, else
    ``delta * (|d| - 0.5 delta)``, with ``d = pred - target``.

    Args:
        delta: threshold between the quadratic and linear parts, > 0 (default 1.0).
    """

    _kind = "huber"

    def __init__(self, delta=1.0):
        super().__init__()
        self._param = C.real(delta, "delta", low=0.0, low_open=True)


class EpsilonInsensitiveLoss(_Elementwise):
    """Epsilon-insensitive loss ``mean(max(0, |pred - target| - epsilon))`` (support
    vector regression's loss).

    Args:
        epsilon: width of the insensitive tube, >= 0 (default 0.1).
    """

    _kind = "epsilon_insensitive"

    def __init__(self, epsilon=0.1):
        super().__init__()
        self._param = C.real(epsilon, "epsilon", low=0.0)


class LogisticLoss(_Elementwise):
    """Binary logistic loss on logits ``mean(log(1 + exp(-y f)))`` for targets y in
    {-1, +1}; targets in {0, 1} are accepted (then it equals torch's
    BCEWithLogitsLoss).  Computed stably (softplus), finite for huge logits."""

    _kind = "logistic"
    _binary = True


class HingeLoss(_Elementwise):
    """Soft-margin hinge loss ``mean(max(0, 1 - y f))`` for targets y in {-1, +1}
    (or {0, 1}); subgradient 0 at the hinge."""

    _kind = "hinge"
    _binary = True


__all__ = ["Loss", "CrossEntropyLoss", "MSELoss", "L1Loss", "HuberLoss", "EpsilonInsensitiveLoss",
           "LogisticLoss", "HingeLoss"]
