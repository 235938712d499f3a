"""Learning-rate schedules: ``sched.step()`` (or ``sched.step(metric)``) sets ``opt.lr``.

Each schedule follows the torch.optim.lr_scheduler class of the same idea, with
the closed forms below (``t`` counts ``step()`` calls, starting at 0 when the
schedule is created; the optimizer's lr at creation is ``base_lr``):

- ``StepDecay(opt, step_size, gamma)``: ``base_lr * gamma ** (t // step_size)`` (StepLR).
- ``ExponentialDecay(opt, gamma)``: ``base_lr * gamma ** t`` (ExponentialLR).
- ``PolynomialDecay(opt, alpha, beta, power=1.0)``: ``alpha / (beta + t) ** power``
  (the classic Robbins-Monro style schedule; it sets the lr at creation too).
- ``CosineDecay(opt, t_max, eta_min=0.0)``:
  ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / t_max)) / 2`` (CosineAnnealingLR).
- ``ReduceOnPlateau(opt, factor=0.1, patience=10, threshold=1e-4, mode="min",
  cooldown=0, min_lr=0.0)``: ReduceLROnPlateau with relative threshold: the lr
  stays constant until the metric has not improved for more than ``patience``
  steps, then is multiplied by ``factor``.

``interval="epoch"`` (default) or ``"step"`` tells ``fastnn.train.fit`` whether to
call ``step()`` after every epoch or after every minibatch.  ``ReduceOnPlateau``
is stepped per epoch with ``val_loss`` (or the training loss without validation).
"""
import math

from fastnn import _checks as C

_INTERVALS = ("epoch", "step")


class Schedule:
    """Base class: subclasses implement ``_lr(t)``."""

    needs_metric = False

    def __init__(self, optimizer, interval="epoch"):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer must be a fastnn.optim optimizer. Received: {type(optimizer).__name__}")
        if interval not in _INTERVALS:
            raise ValueError(f"interval must be one of {_INTERVALS}. Received: {interval!r}")
        self.optimizer = optimizer
        self.interval = interval
        self.base_lr = optimizer.lr
        self.t = 0

    def step(self):
        """Advance one step and set the optimizer's learning rate."""
        self.t += 1
        self.optimizer.lr = self._lr(self.t)
        return self.optimizer.lr

    def get_lr(self):
        return self.optimizer.lr

    def state_dict(self):
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, d):
        self.t = int(d["t"])
        self.base_lr = float(d["base_lr"])


class StepDecay(Schedule):
    """``base_lr * gamma ** (t // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, interval="epoch"):
        super().__init__(optimizer, interval)
        self.step_size = C.positive_int(step_size, "step_size")
        self.gamma = C.real(gamma, "gamma", low=0.0)

    def _lr(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class ExponentialDecay(Schedule):
    """``base_lr * gamma ** t``."""

    def __init__(self, optimizer, gamma, interval="epoch"):
        super().__init__(optimizer, interval)
        self.gamma = C.real(gamma, "gamma", low=0.0)

    def _lr(self, t):
        return self.base_lr * self.gamma ** t


class PolynomialDecay(Schedule):
    """``alpha / (beta + t) ** power`` (sets the optimizer's lr at creation)."""

    def __init__(self, optimizer, alpha, beta, power=1.0, interval="epoch"):
        super().__init__(optimizer, interval)
        self.alpha = C.real(alpha, "alpha", low=0.0)
        self.beta = C.real(beta, "beta", low=0.0, low_open=True)
        self.power = C.real(power, "power", low=0.0)
        optimizer.lr = self._lr(0)

    def _lr(self, t):
        return self.alpha / (self.beta + t) ** self.power


class CosineDecay(Schedule):
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / t_max)) / 2``."""

    def __init__(self, optimizer, t_max, eta_min=0.0, interval="epoch"):
        super().__init__(optimizer, interval)
        self.t_max = C.positive_int(t_max, "t_max")
        self.eta_min = C.real(eta_min, "eta_min", low=0.0)

    def _lr(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.t_max)) / 2


class ReduceOnPlateau(Schedule):
    """Multiply the lr by ``factor`` when the metric has not improved for more than
    ``patience`` steps (torch's ReduceLROnPlateau, relative threshold)."""

    needs_metric = True

    def __init__(self, optimizer, factor=0.1, patience=10, threshold=1e-4, mode="min", cooldown=0,
                 min_lr=0.0, eps=1e-8):
        super().__init__(optimizer, "epoch")
        self.factor = C.real(factor, "factor", 0.0, 1.0, low_open=True, high_open=True)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer. Received: {patience!r}")
        self.patience = patience
        self.threshold = C.real(threshold, "threshold", low=0.0)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'. Received: {mode!r}")
        self.mode = mode
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown must be a non-negative integer. Received: {cooldown!r}")
        self.cooldown = cooldown
        self.min_lr = C.real(min_lr, "min_lr", low=0.0)
        self.eps = C.real(eps, "eps", low=0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_counter = 0

    def _better(self, metric):
        if self.mode == "min":
            return metric < self.best * (1 - self.threshold) if self.best != math.inf else True
        return metric > self.best * (1 + self.threshold) if self.best != -math.inf else True

    def step(self, metric):
        """Record ``metric`` (e.g. the validation loss) and reduce the lr if it plateaued."""
        metric = float(metric)
        self.t += 1
        if self._better(metric):
            self.best = metric
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad = 0
        return self.optimizer.lr

    def state_dict(self):
        d = super().state_dict()
        d.update(best=self.best, num_bad=self.num_bad, cooldown_counter=self.cooldown_counter)
        return d

    def load_state_dict(self, d):
        super().load_state_dict(d)
        self.best, self.num_bad = float(d["best"]), int(d["num_bad"])
        self.cooldown_counter = int(d["cooldown_counter"])


__all__ = ["Schedule", "StepDecay", "ExponentialDecay", "PolynomialDecay", "CosineDecay", "ReduceOnPlateau"]
