"""Weight penalties: ``L1(lam)`` and ``L2(lam)``.

A regularizer applies to a model's *weights* (parameters named ``weight``), not
to biases.  ``fit(..., regularizer=L2(1e-4))`` adds the penalty to the reported
loss and its gradient to the weight gradients after every backward pass (before
the finiteness check and the optimizer step).  Penalty and gradient come from
one fused pass over each weight.

Conventions (the gradient is what training sees):
- ``L1(lam)``: ``lam * sum |w|``, subgradient ``lam * sign(w)`` with sign(0) = 0.
- ``L2(lam)``: ``0.5 * lam * sum w^2``, gradient ``lam * w`` (the same step as
  SGD's ``weight_decay=lam``).
"""
import numpy as np

from fastnn import _checks as C
from fastnn._engine import codes
from fastnn._kernels import _loss


class Regularizer:
    """Base class: ``penalty(model)`` and ``add_grad(model) -> penalty``."""

    _kind = None

    def __init__(self, lam):
        self.lam = C.real(lam, "lam", low=0.0)

    @staticmethod
    def weights(model):
        """The parameters the penalty applies to: those named ``weight``."""
        return [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "weight"]

    def penalty(self, model):
        """The penalty value for the model's current weights."""
        total = 0.0
        for p in self.weights(model):
            w = p.data.astype(np.float64)
            total += float(np.abs(w).sum()) if self._kind == "l1" else 0.5 * float((w * w).sum())
        return self.lam * total

    def add_grad(self, model, weights=None):
        """Add the penalty's gradient into each weight's ``.grad``; return the penalty."""
        total = 0.0
        for p in (self.weights(model) if weights is None else weights):
            g, accumulate = p.grad_target()
            if not accumulate:
                g[...] = 0
            if g.strides != p.data.strides:
                raise ValueError("a weight and its gradient must share one memory layout")
            total += _loss.penalty(codes.PENALTIES[self._kind], p.data, g, self.lam)
        return total

    def __repr__(self):
        return f"{type(self).__name__}({self.lam})"


class L1(Regularizer):
    """``lam * sum |w|`` over the weights (subgradient ``lam * sign(w)``, sign(0) = 0)."""

    _kind = "l1"


class L2(Regularizer):
    """``0.5 * lam * sum w^2`` over the weights (gradient ``lam * w``)."""

    _kind = "l2"


__all__ = ["Regularizer", "L1", "L2"]
