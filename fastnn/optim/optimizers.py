"""Optimizers with torch.optim's arguments and update rules.

One ``Optimizer`` base does validation, state and ``step``; each subclass only
says which fused kernel it runs, which state arrays it keeps and which step
scalars it passes (tinygrad's shape).  ``step`` updates *every* parameter in one
kernel call (one OpenMP region) per dtype.  Gradients are checked before any
parameter is touched: a wrong shape or dtype raises and leaves the model as it
was.
"""
import numpy as np

from fastnn._engine import codes
from fastnn import _checks as C
from fastnn._engine.buffers import flat_views
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _optim
from fastnn.ops import adam_hp
from fastnn.nn.module import Parameter


class Optimizer:
    """Base class.

    Subclasses define ``_kind`` (the fused kernel), ``_state_names()`` (state
    arrays per parameter, in kernel slot order, None for an unused slot) and
    ``_scalars()`` (the step scalars of the kernel).
    """

    _kind = None

    def __init__(self, params, defaults):
        if isinstance(params, Parameter):
            raise TypeError("params must be an iterable of Parameters (e.g. model.parameters()), "
                            "not a single Parameter")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a fastnn.nn.Parameter. Received: {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear more than once in params")
        self.params = params
        self.defaults = dict(defaults)
        self.step_count = 0
        self.state_dtype = [p.data.dtype for p in params]
        self._total = sum(p.data.size for p in params)
        self._cache = None
        # Parameters grouped by dtype: one kernel call per group.
        self._groups = {}
        for i, p in enumerate(params):
            self._groups.setdefault(p.data.dtype, []).append(i)
        self.state = self._new_state()

    # -- hyperparameters ---------------------------------------------------------
    @property
    def lr(self):
        return self.defaults["lr"]

    @lr.setter
    def lr(self, value):
        self.defaults["lr"] = C.real(value, "learning rate", low=0.0)

    def _new_state(self):
        """One dict of state arrays per parameter, each in its parameter's layout.

        The arrays of one state name and dtype are views of one flat buffer: a
        single allocation, which NumPy backs with huge pages once it is 4 MiB or
        more, where separate arrays under 4 MiB each would get none (fewer TLB
        misses in a step that streams the whole state: benchmarks/README.md).
        """
        state = [{} for _ in self.params]
        names = [name for name in self._state_names() if name is not None]
        for idx in self._groups.values():
            for name in names:
                _, views = flat_views([self.params[i].data for i in idx], self._state_init(name), _ALIGN)
                for i, v in zip(idx, views):
                    state[i][name] = v
        return state

    def _state_names(self):
        raise NotImplementedError

    def _state_init(self, name):
        """The initial value of state ``name`` (every element)."""
        return 0.0

    def _scalars(self, step):
        raise NotImplementedError

    # -- step ----------------------------------------------------------------------
    def zero_grad(self):
        """Reset the gradients of this optimizer's parameters to zero."""
        for p in self.params:
            p.zero_grad()

    def _checked_grads(self):
        grads = []
        for i, p in enumerate(self.params):
            d = p.data
            if not isinstance(d, np.ndarray) or d.dtype not in C.FLOAT_DTYPES or not d.flags.writeable \
                    or not (d.flags.c_contiguous or d.flags.f_contiguous):
                raise ValueError(f"params[{i}].data must be a writeable contiguous float32/float64 array")
            g = p.grad
            if not isinstance(g, np.ndarray):
                raise TypeError(f"params[{i}].grad must be a numpy array. Received: {type(g).__name__}")
            if g.shape != d.shape:
                raise ValueError(f"params[{i}].grad has shape {g.shape}; expected the parameter's shape {d.shape}")
            if g.dtype != d.dtype:
                raise TypeError(f"params[{i}].grad has dtype {g.dtype}; expected the parameter's dtype {d.dtype}")
            if d.dtype != self.state_dtype[i]:
                raise TypeError(f"params[{i}] changed dtype from {self.state_dtype[i]} to {d.dtype}")
            # The fused kernel walks param, grad and state as flat buffers: they
            # must share one memory layout (C or Fortran order).
            if g.strides != d.strides:
                g = _like(d, g)
            for name, arr in self.state[i].items():
                if arr.strides != d.strides:
                    self.state[i][name] = _like(d, arr)
            grads.append(g)
        return grads

    def _kernel_lists(self):
        """Per-dtype lists of (params, grads, state slots) for the fused kernel.

        Built once and reused while every ``p.data`` and ``p.grad`` is the same
        array object as when they were validated (the common case: a training
        loop never rebinds them), so a step builds no lists.
        """
        cache = self._cache
        params = self.params
        if cache is not None:
            datas, grads, lists = cache
            for i, p in enumerate(params):
                # .grad materializes a lazy zero (the kernel reads the buffer)
                if p.data is not datas[i] or p.grad is not grads[i]:
                    break
            else:
                return lists
        grads = self._checked_grads()
        names = self._state_names()
        lists = []
        for dtype, idx in self._groups.items():
            slots = [None if name is None else [self.state[i][name] for i in idx] for name in names]
            slots += [None] * (3 - len(slots))
            lists.append(([params[i].data for i in idx], [grads[i] for i in idx], slots,
                          dtype == np.float64))
        self._cache = ([p.data for p in params], grads, lists)
        return lists

    def step(self):
        """Update every parameter in place from its ``.grad`` (torch.optim semantics).

        Gradients are validated (shape, dtype, layout) before any parameter
        changes; one fused kernel call per dtype updates all parameters.  As in
        torch, a NaN/inf gradient is applied as it is; ``fastnn.train.fit`` runs
        the step with a fused finiteness check instead (see ``_step``).
        """
        self._step(check_finite=False)

    def _step(self, check_finite=True):
        """The update.  With ``check_finite``, returns False and changes nothing when
        a gradient holds NaN/inf: each thread scans its span of the gradients inside
        the fused kernel, and after a barrier nobody writes if any span was bad (one
        extra read of the gradients, no extra parallel region)."""
        lists = self._kernel_lists()
        n_threads = n_threads_for(self._total)
        if check_finite and len(lists) > 1:
            # Several dtypes: check every group first so a failure never leaves a partial update.
            for ps, gs, slots, f64 in lists:
                if not _optim.all_finite(gs, f64, n_threads):
                    return False
        step = self.step_count + 1
        hp = self._scalars(step)
        kind = codes.OPTIMIZERS[self._kind]
        for ps, gs, slots, f64 in lists:
            if not _optim.multi_update(kind, ps, gs, slots[0], slots[1], slots[2], f64, hp, n_threads,
                                       check_finite and len(lists) == 1):
                return False
        self.step_count = step
        return True

    # -- state ----------------------------------------------------------------------
    def state_dict(self):
        """{"state": {i: {"step": t, <name>: array}}, "param_groups": [{hyperparameters, "params": [...]}]}."""
        state = {}
        for i, s in enumerate(self.state):
            entry = {"step": self.step_count}
            entry.update({k: v.copy() for k, v in s.items()})
            state[i] = entry
        group = dict(self.defaults)
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters, step count and state arrays (validated first)."""
        try:
            groups = state_dict["param_groups"]
            states = state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError("state_dict must have 'state' and 'param_groups' entries") from None
        if len(groups) != 1 or len(groups[0].get("params", ())) != len(self.params):
            raise ValueError(f"state_dict is for a different parameter list (expected one group of "
                             f"{len(self.params)} parameters)")
        staged, step = [], None
        for i, p in enumerate(self.params):
            s = states.get(i, states.get(str(i), {}))
            for name, arr in self.state[i].items():
                if name not in s:
                    raise ValueError(f"state_dict has no '{name}' for parameter {i}")
                v = np.asarray(s[name])
                if v.shape != arr.shape:
                    raise ValueError(f"state '{name}' of parameter {i} has shape {v.shape}; expected {arr.shape}")
                staged.append((arr, v))
            if "step" in s:
                step = int(s["step"])
        new_defaults = {k: v for k, v in groups[0].items() if k != "params"}
        for k in self.defaults:
            if k in new_defaults:
                self.defaults[k] = new_defaults[k]
        for arr, v in staged:
            np.copyto(arr, v, casting="unsafe")
        if step is not None:
            self.step_count = step

    def __repr__(self):
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hp})"


_ALIGN = 16   # state views start 64 bytes (of float32) apart


def _like(d, values):
    """A copy of ``values`` in the memory layout of ``d``."""
    out = np.empty_like(d)
    np.copyto(out, values)
    return out


def _lr(lr):
    return C.real(lr, "learning rate", low=0.0)


def _betas(betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2). Received: {betas!r}") from None
    return (C.real(b1, "beta parameter at index 0", 0.0, 1.0, high_open=True),
            C.real(b2, "beta parameter at index 1", 0.0, 1.0, high_open=True))


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD): momentum, dampening, Nesterov, weight decay."""

    _kind = "sgd"

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        defaults = {"lr": _lr(lr), "momentum": C.real(momentum, "momentum value", low=0.0),
                    "dampening": C.real(dampening, "dampening"),
                    "weight_decay": C.real(weight_decay, "weight_decay value", low=0.0),
                    "nesterov": bool(nesterov)}
        if nesterov and (defaults["momentum"] <= 0 or defaults["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(received momentum={momentum}, dampening={dampening})")
        super().__init__(params, defaults)

    def _state_names(self):
        return ["momentum_buffer"] if self.defaults["momentum"] > 0 else []

    def _scalars(self, step):
        d = self.defaults
        return {"lr": d["lr"], "momentum": d["momentum"], "dampening": d["dampening"],
                "nesterov": int(d["nesterov"]), "weight_decay": d["weight_decay"], "first_step": int(step == 1)}


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad)."""

    _kind = "adagrad"

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        defaults = {"lr": _lr(lr), "lr_decay": C.real(lr_decay, "lr_decay value", low=0.0),
                    "weight_decay": C.real(weight_decay, "weight_decay value", low=0.0),
                    "initial_accumulator_value": C.real(initial_accumulator_value,
                                                        "initial_accumulator_value", low=0.0),
                    "eps": C.real(eps, "epsilon value", low=0.0)}
        self._init_acc = defaults["initial_accumulator_value"]
        super().__init__(params, defaults)

    def _state_names(self):
        return ["sum"]

    def _state_init(self, name):
        return self._init_acc

    def _scalars(self, step):
        d = self.defaults
        return {"weight_decay": d["weight_decay"], "eps": d["eps"],
                "clr": d["lr"] / (1.0 + (step - 1) * d["lr_decay"])}


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop): momentum and centered variants, weight decay."""

    _kind = "rmsprop"

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        defaults = {"lr": _lr(lr), "alpha": C.real(alpha, "alpha value", low=0.0),
                    "eps": C.real(eps, "epsilon value", low=0.0),
                    "weight_decay": C.real(weight_decay, "weight_decay value", low=0.0),
                    "momentum": C.real(momentum, "momentum value", low=0.0), "centered": bool(centered)}
        super().__init__(params, defaults)

    def _state_names(self):
        d = self.defaults
        return ["square_avg", "momentum_buffer" if d["momentum"] > 0 else None,
                "grad_avg" if d["centered"] else None]

    def _scalars(self, step):
        d = self.defaults
        return {"lr": d["lr"], "alpha": d["alpha"], "eps": d["eps"], "weight_decay": d["weight_decay"],
                "momentum": d["momentum"], "centered": int(d["centered"])}


class Adam(Optimizer):
    """Adam (torch.optim.Adam), with L2 ``weight_decay`` folded into the gradient and amsgrad."""

    _kind = "adam"
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        defaults = {"lr": _lr(lr), "betas": _betas(betas), "eps": C.real(eps, "epsilon value", low=0.0),
                    "weight_decay": C.real(weight_decay, "weight_decay value", low=0.0), "amsgrad": bool(amsgrad)}
        super().__init__(params, defaults)

    def _state_names(self):
        return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if self.defaults["amsgrad"] else None]

    def _scalars(self, step):
        d = self.defaults
        return adam_hp(step, d["lr"], d["betas"][0], d["betas"][1], d["eps"], d["weight_decay"],
                       self._decoupled)


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): decoupled weight decay ``p *= 1 - lr * weight_decay``."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
