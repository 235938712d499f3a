"""Loss objects: ``value = loss(pred, target)``, then ``grad = loss.backward()``.

The value and the gradient (of the mean loss with respect to ``pred``) come out
of one fused kernel pass; ``backward()`` returns a copy of the stored gradient.
Reduction is torch's ``reduction="mean"``: over samples for cross-entropy, over
all elements for element-wise losses.
"""
import numpy as np

from fastnn import _checks as C
from fastnn import ops
from fastnn._config import n_threads_for
from fastnn._kernels import _loss
from fastnn.nn.layers import _Buffers
from fastnn.nn.module import owned_copy


class Loss:
    """Base class: subclasses implement ``_forward(pred, target) -> float``."""

    def __init__(self):
        self._bufs = _Buffers()
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
    """

    def __init__(self):
        super().__init__()
        self.n_correct = 0

    def prepare_target(self, y, dtype):
        y = np.asarray(y)
        if y.ndim == 2:
            return C.as_float(y.astype(dtype, copy=False), "target")
        return C.labels_1d(y)

    def _forward(self, pred, target):
        pred = C.as_float(pred, "logits", ndim=2)
        if pred.shape[0] == 0:
            raise ValueError(f"logits must hold at least one sample. Received shape {pred.shape}")
        kind, t = ops._ce_target(pred, target)
        grad = self._bufs.get("grad", pred.shape, pred.dtype)
        loss, correct = ops._ce_run(pred, kind, t, grad, n_threads_for(pred.size))
        self._grad = grad
        self.n_correct = correct
        return loss


class MSELoss(Loss):
    """Mean squared error ``mean((pred - target) ** 2)`` (torch.nn.MSELoss).

    ``pred`` and ``target`` share shape and dtype; a 1-D target for a
    (n_samples, 1) prediction is accepted and treated as a column.
    """

    def prepare_target(self, y, dtype):
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"MSELoss targets must be numeric. Received dtype: {y.dtype}")
        return np.ascontiguousarray(y, dtype=dtype)

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
        total = _loss.mse(pred.reshape(-1), target.reshape(-1), grad.reshape(-1), 2.0 * scale,
                          n_threads_for(pred.size))
        self._grad = grad
        return total * scale


__all__ = ["Loss", "CrossEntropyLoss", "MSELoss"]
