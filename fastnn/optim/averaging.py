"""Parameter averaging: Polyak (running mean) and exponential moving average."""
import contextlib

import numpy as np

from fastnn import _checks as C
from fastnn.nn.module import Parameter


class ParameterAverager:
    """Keeps an average of parameters over training steps.

    Args:
        params: iterable of Parameters (e.g. ``model.parameters()``).
        mode: "polyak" (running mean of every ``update()``) or "ema"
            (exponential moving average with bias correction).
        decay: EMA decay in [0, 1) (ignored by "polyak").

    Call ``update()`` after each optimizer step.  ``with avg.applied(): ...``
    puts the averaged values into the parameters (e.g. to evaluate) and
    restores the trained values afterwards, even on an exception.

    Averages are kept in float64: ``average = sum_t w_t p_t`` with
    w_t = 1/T for Polyak and ``(1 - decay) decay^(T - t) / (1 - decay^T)`` for EMA.
    """

    def __init__(self, params, mode="ema", decay=0.999):
        if isinstance(params, Parameter):
            raise TypeError("params must be an iterable of Parameters, not a single Parameter")
        self.params = list(params)
        if not self.params:
            raise ValueError("ParameterAverager got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a fastnn.nn.Parameter. Received: {type(p).__name__}")
        if mode not in ("ema", "polyak"):
            raise ValueError(f"mode must be 'ema' or 'polyak'. Received: {mode!r}")
        self.mode = mode
        self.decay = C.real(decay, "decay", 0.0, 1.0, high_open=True)
        self.n_updates = 0
        self._avg = [np.zeros(p.data.shape, np.float64) for p in self.params]

    def update(self):
        """Fold the parameters' current values into the average."""
        self.n_updates += 1
        for a, p in zip(self._avg, self.params):
            if self.mode == "polyak":
                a += (p.data - a) / self.n_updates
            else:
                a *= self.decay
                a += (1.0 - self.decay) * p.data

    def averaged(self):
        """The averaged values (new arrays in the parameters' dtypes)."""
        if self.n_updates == 0:
            raise RuntimeError("ParameterAverager.update() has not been called yet")
        scale = 1.0 if self.mode == "polyak" else 1.0 / (1.0 - self.decay ** self.n_updates)
        return [(a * scale).astype(p.data.dtype) for a, p in zip(self._avg, self.params)]

    @contextlib.contextmanager
    def applied(self):
        """Temporarily load the averaged values into the parameters."""
        values = self.averaged()
        saved = [p.data.copy() for p in self.params]
        try:
            for p, v in zip(self.params, values):
                np.copyto(p.data, v)
            yield self
        finally:
            for p, s in zip(self.params, saved):
                np.copyto(p.data, s)


__all__ = ["ParameterAverager"]
