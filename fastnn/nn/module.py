"""Parameter, Module and Sequential, and the buffered forward protocol.

A Module's public ``forward``/``backward`` return arrays the caller owns.  The
built-in layers implement ``_forward(x)``/``_backward(grad_y, need_input_grad)``,
which work in per-layer buffers (keyed by batch shape) and return them;
Sequential and ``fit`` chain these through :func:`forward_step` and
:func:`backward_step`, so a training step after the first allocates nothing.
A class that overrides ``forward`` (or ``backward``) below the class that
defines ``_forward`` (``_backward``), e.g. a user's subclass of ``ReLU``, is
called through its own method instead, so the override is always honoured.

Fusion: a layer whose ``_takes_activation()`` is true (Linear, Conv2d) applies a
following module's ``_epilogue()`` (an activation's kernel code and slope) in
its own bias epilogue; Sequential asks the two modules, it matches no types.
Likewise a layer whose ``_takes_rows()`` is true (Conv2d, which computes its
output in batch parts on fastnn's threads) runs a following module whose
``_row_pass()`` is true (the pooling layers: each batch row on its own) inside
those parts, forward and backward, so the pair is one parallel region.
"""
from collections import OrderedDict

import numpy as np

from fastnn import _checks as C
from fastnn._engine import parallel
from fastnn._engine.buffers import owned_copy


class Parameter:
    """A trainable array and its gradient.

    Parameters
    ----------
    data : ndarray (float32 or float64)
        The values, kept as a contiguous array (C or Fortran order; shared when
        already contiguous, copied to C order otherwise).

    Attributes
    ----------
    data : ndarray
    grad : ndarray
        Same shape and dtype as ``data``; starts at zeros.  ``backward`` calls
        accumulate into it (as in torch); ``zero_grad`` resets it.

    Code that writes or moves gradients (layers, regularizers, optimizers, MPI
    collectives, ``fit``) uses ``grad_target()``, ``grad_is_zero`` and
    ``bind_grad()`` rather than the attributes behind them.
    """

    __slots__ = ("data", "_grad", "_grad_zero")

    def __init__(self, data):
        data = np.asarray(data)
        if data.dtype not in C.FLOAT_DTYPES:
            raise TypeError(f"Parameter data must be float32 or float64. Received dtype: {data.dtype}")
        if not (data.flags.c_contiguous or data.flags.f_contiguous):
            data = np.ascontiguousarray(data)
        self.data = data
        self._grad = np.zeros_like(data)  # same memory layout as data
        # True: .grad is logically zero and has not been written yet, so the next
        # backward may overwrite it instead of accumulating (no zero-fill pass).
        self._grad_zero = False

    @property
    def grad(self):
        if self._grad_zero:
            self._grad[...] = 0
            self._grad_zero = False
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = value
        self._grad_zero = False

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        """Make the gradient zero (lazily: the next write overwrites instead of adding)."""
        self._grad_zero = True

    # -- for code that writes or relocates gradients (layers, regularizers, optimizers,
    #    collectives, fit) ---------------------------------------------------------------
    @property
    def grad_is_zero(self):
        """True while the gradient is zero by ``zero_grad()`` and not written since
        (its buffer then holds stale values that nothing reads)."""
        return self._grad_zero

    def bind_grad(self, array):
        """Make ``array`` (this parameter's shape and dtype, writeable) the gradient's
        buffer from now on, with the current gradient copied in (a lazy zero stays
        lazy, and nothing is copied for it)."""
        d = self.data
        if not isinstance(array, np.ndarray) or array.shape != d.shape or array.dtype != d.dtype \
                or not array.flags.writeable:
            raise ValueError(f"bind_grad needs a writeable {d.dtype} array of shape {d.shape}; "
                             f"received {type(array).__name__} {getattr(array, 'dtype', '')} "
                             f"{getattr(array, 'shape', '')}")
        if array is not self._grad:
            if not self._grad_zero:
                np.copyto(array, self._grad)
            self._grad = array

    def grad_target(self):
        """(array, accumulate) for a kernel that produces this parameter's gradient:
        write into the array when ``accumulate`` is False (the gradient was a lazy
        zero, and counts as written from now on), add into it when True."""
        g = self._grad
        d = self.data
        if not isinstance(g, np.ndarray) or g.shape != d.shape or g.dtype != d.dtype \
                or not g.flags.writeable:
            raise ValueError(
                f"Parameter.grad must be a writeable {d.dtype} array of shape {d.shape}; "
                f"received {type(g).__name__} {getattr(g, 'dtype', '')} {getattr(g, 'shape', '')}"
            )
        if self._grad_zero:
            self._grad_zero = False
            return g, False
        return g, True

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def _native(cls, public, buffered):
    """True when ``cls.<public>`` is defined at or above the class defining ``cls.<buffered>``
    (so the buffered method is what the public one runs)."""
    mro = cls.__mro__
    where = {name: next(i for i, k in enumerate(mro) if name in k.__dict__)
             for name in (public, buffered)}
    return where[public] >= where[buffered]


def _owned(owner, slot, y):
    """Copies the caller owns of a forward's result: an array, or a (nested) tuple of
    arrays and None, as a recurrent layer returns (output, state)."""
    if isinstance(y, tuple):
        return tuple(_owned(owner, f"{slot}.{i}", v) for i, v in enumerate(y))
    return None if y is None else owned_copy(owner, slot, y)


def forward_step(module, x):
    """``module``'s forward in its own buffers (its ``forward`` when a subclass overrides it)."""
    return module._forward(x) if module._native_forward else module.forward(x)


def backward_step(module, grad_y, need_input_grad=True):
    """``module``'s backward in its own buffers (its ``backward`` when a subclass overrides it);
    with ``need_input_grad=False`` a built-in layer may skip the input gradient and return None."""
    if module._native_backward:
        return module._backward(grad_y, need_input_grad)
    return module.backward(grad_y)


class Module:
    """Base class of layers and models.

    Subclasses set Parameters and sub-Modules as attributes (registered in order)
    and implement ``forward(x)`` and ``backward(grad_y)``.
    """

    _native_forward = True
    _native_backward = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._native_forward = _native(cls, "forward", "_forward")
        cls._native_backward = _native(cls, "backward", "_backward")

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def register_buffer(self, name, array):
        """Register a non-trainable array (e.g. ``running_mean``) as part of the state.

        Buffers appear in ``state_dict`` (after the parameters, as in torch) and
        ``load_state_dict`` copies into them in place; the array is also set as
        the attribute ``name``.
        """
        if not isinstance(array, np.ndarray):
            raise TypeError(f"buffer {name!r} must be a numpy array. Received: {type(array).__name__}")
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    # -- forward / backward -------------------------------------------------
    def forward(self, x):
        """Compute the output for input ``x`` (returns a new array)."""
        if type(self)._forward is Module._forward:
            raise NotImplementedError(f"{type(self).__name__} must implement forward()")
        return _owned(self, "forward", self._forward(x))

    def backward(self, grad_y):
        """Back-propagate ``grad_y``: accumulate parameter gradients, return grad wrt input."""
        if type(self)._backward is Module._backward:
            raise NotImplementedError(f"{type(self).__name__} must implement backward()")
        g = self._backward(grad_y, True)
        return None if g is None else owned_copy(self, "backward", g)

    def _forward(self, x):
        # Default for user modules: their own forward.
        return self.forward(x)

    def _backward(self, grad_y, need_input_grad=True):
        return self.backward(grad_y)

    def __call__(self, x):
        return self.forward(x)

    def _takes_activation(self):
        """Whether this layer can apply a following activation in its own epilogue
        (its ``_forward`` then takes ``(x, code, slope)``)."""
        return False

    def _epilogue(self):
        """(kernel code, slope) of this element-wise activation, for a preceding layer's
        epilogue; None for modules that are not such an activation."""
        return None

    def _takes_rows(self):
        """Whether this layer can run a following row pass (see :meth:`_row_pass`) inside
        its own batch parts (its ``_forward``/``_backward`` then take ``rows=``)."""
        return False

    def _row_pass(self):
        """Whether this module works on each batch row on its own, through
        ``_rows_forward(x)`` and ``_rows_backward(grad_y)``: each returns its output
        buffer and ``fn(lo, hi, n_threads)``, which computes rows lo..hi of it."""
        return False

    # -- parameters & modes ---------------------------------------------------
    def named_parameters(self, prefix=""):
        """Yield (name, Parameter) pairs, in registration order, with dotted names."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self):
        """Yield every Parameter of this module and its sub-modules."""
        for _, p in self.named_parameters():
            yield p

    def children(self):
        return iter(self._modules.values())

    def modules(self):
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def zero_grad(self):
        """Reset every parameter gradient to zero."""
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # -- state ------------------------------------------------------------------
    def named_buffers(self, prefix=""):
        """Yield (name, array) of every buffer (e.g. running statistics), with dotted
        names: the live arrays, not copies."""
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_buffers(prefix + name + ".")

    def named_state(self, prefix=""):
        """Yield (name, array) of everything ``state_dict`` holds, in its order (each
        module's parameters, then its buffers, then its children): the live arrays."""
        for name, p in self._parameters.items():
            yield prefix + name, p.data
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, m in self._modules.items():
            yield from m.named_state(prefix + name + ".")

    def signature(self):
        """The model's structure, JSON-able: its module class names in order and the
        (name, shape, dtype) of everything in ``state_dict``.  Checkpoints store it
        (a resume checks it) and MPI ranks compare it before training together."""
        return {"classes": [type(m).__name__ for m in self.modules()],
                "state": [[k, list(v.shape), v.dtype.name] for k, v in self.named_state()]}

    def state_dict(self):
        """Copies of every parameter (and buffer), keyed like torch ("0.weight", ...)."""
        return OrderedDict((k, v.copy()) for k, v in self.named_state())

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the model's arrays.

        Everything is validated before anything is written: on a missing or
        unexpected key (with ``strict``), a wrong shape or a non-numeric value the
        model is left unchanged.  Values may be NumPy arrays or anything with
        ``__array__`` (torch tensors); they are cast to the model's dtype.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping. Received: {type(state_dict).__name__}")
        own = OrderedDict(self.named_state())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"Error loading state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        staged = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.dtype.kind not in "fiub":
                raise TypeError(f"state_dict[{key!r}] must be numeric. Received dtype: {value.dtype}")
            if value.shape != target.shape:
                raise ValueError(
                    f"state_dict[{key!r}] has shape {value.shape}; the model expects {target.shape}"
                )
            staged.append((target, value))
        for target, value in staged:
            np.copyto(target, value, casting="unsafe")
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            lines.append(f"  ({name}): " + repr(m).replace("\n", "\n  "))
        return "\n".join(lines) + ("\n)" if len(lines) > 1 else ")")


def _fusable_epilogue(layer, nxt):
    """The epilogue (code, slope) that ``layer`` takes over from the module after it, or None.
    Only the built-in methods fuse: an overridden forward/backward on either side runs as is."""
    if not _both_native(layer, nxt):
        return None
    return nxt._epilogue() if layer._takes_activation() else None


def _fusable_rows(layer, nxt):
    """The row-pass module that ``layer`` runs inside its parts, or None (built-in
    methods on both sides only, as for epilogues)."""
    if not _both_native(layer, nxt):
        return None
    return nxt if layer._takes_rows() and nxt._row_pass() else None


def _both_native(layer, nxt):
    """Both modules run their built-in forward and backward (a fusion may replace them)."""
    return nxt is not None and (layer._native_forward and layer._native_backward
                                and nxt._native_forward and nxt._native_backward)


class Sequential(Module):
    """A chain of modules; ``Sequential(Linear, ReLU, Linear)`` as in torch.

    state_dict keys are ``"<index>.<name>"``.  A Linear or Conv2d followed
    directly by an activation module (ReLU, LeakyReLU, Sigmoid, Tanh) runs as one
    fused layer: the activation is applied in the layer's bias epilogue (not when
    either one is a subclass that overrides ``forward`` or ``backward``).  A
    MaxPool2d or AvgPool2d right after a Conv2d (or its activation) runs inside
    the conv's batch parts, forward and backward: one parallel region for both.
    """

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential expects Module instances. Received at index {i}: {type(m).__name__}")
            setattr(self, str(i), m)
        self._plan = None
        self._single_blas = False

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append expects a Module. Received: {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        self._plan = None
        return self

    def _build_plan(self):
        mods = list(self._modules.values())
        plan, i = [], 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            epi = _fusable_epilogue(m, nxt)
            i += 1 if epi is None else 2
            rows = _fusable_rows(m, mods[i] if i < len(mods) else None)
            i += rows is not None
            plan.append((m, epi, rows))
        # Layers that split the batch across fastnn's threads (Conv2d) want BLAS on
        # one thread around them: see fastnn._engine.parallel.
        self._single_blas = any(getattr(m, "_splits_batch", False) for m in self.modules())
        self._plan = plan
        return plan

    def _forward(self, x):
        plan = self._plan or self._build_plan()
        with parallel.blas_single_thread_if(self._single_blas):
            for m, epi, rows in plan:
                if rows is not None:
                    x = m._forward(x, *(epi or ()), rows=rows)
                else:
                    x = forward_step(m, x) if epi is None else m._forward(x, *epi)
        return x

    def _backward(self, grad_y, need_input_grad=True):
        plan = self._plan or self._build_plan()
        g = grad_y
        last = len(plan) - 1
        with parallel.blas_single_thread_if(self._single_blas):
            for k in range(last, -1, -1):
                m, _, rows = plan[k]
                if rows is not None:
                    g = m._backward(g, need_input_grad or k > 0, rows=rows)
                else:
                    g = backward_step(m, g, need_input_grad or k > 0)
        return g
