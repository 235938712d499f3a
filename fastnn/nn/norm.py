"""Normalization layers: BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm, InstanceNorm2d.

All five normalize over a set of elements and then apply a per-channel (or,
for LayerNorm, per-element) affine.  The input is viewed as a C-contiguous
(rows, C, S) array and one of two kernel families in ``fastnn._kernels._norm``
does the work: per-channel statistics over rows and S (BatchNorm; InstanceNorm
in eval mode with running statistics), or per-set statistics over contiguous
sets (GroupNorm per (n, group), InstanceNorm per (n, c), LayerNorm per row).
Forward saves (mean, rstd); backward recomputes xhat from the saved input and
fuses the weight/bias gradient reductions into the pass that computes dx.

Parameter and buffer names, shapes, defaults and the running-statistics update
(momentum, unbiased running variance, ``momentum=None`` for a cumulative
average, ``num_batches_tracked``) follow torch.nn, so state_dicts move both ways.
"""
import numbers

import numpy as np

from fastnn import _checks as C
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _norm
from fastnn._engine.buffers import Buffers
from fastnn.nn.module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm2d"]


def _eps(eps):
    return C.real(eps, "eps", low=0.0, low_open=True)


def _momentum(momentum):
    if momentum is None:
        return None
    return C.real(momentum, "momentum", low=0.0, high=1.0)


def _grad_pair(weight, bias):
    """Gradient targets of (weight, bias) with one common accumulate flag."""
    if weight is None and bias is None:
        return None, None, False
    tw = weight.grad_target() if weight is not None else None
    tb = bias.grad_target() if bias is not None else None
    flags = {t[1] for t in (tw, tb) if t is not None}
    if len(flags) == 2:  # one was zeroed, the other holds a gradient: add into both
        for t in (tw, tb):
            if not t[1]:
                t[0][...] = 0
        accumulate = True
    else:
        accumulate = flags.pop()
    return (tw[0] if tw else None), (tb[0] if tb else None), accumulate


class _Norm(Module):
    """Shared plumbing: dtype, validation of inputs and incoming gradients, buffers."""

    def _setup(self, dtype):
        object.__setattr__(self, "_dtype", C.float_dtype(dtype))
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)

    @property
    def dtype(self):
        """The layer's dtype (its inputs, parameters and buffers)."""
        return self._dtype

    def _check_x(self, x):
        return C.layer_input(x, self._dtype, type(self).__name__)

    def _check_grad(self, grad_y):
        who = type(self).__name__
        if self._saved is None:
            raise RuntimeError(f"{who}.backward() called before forward()")
        return C.grad_output(grad_y, self._saved[0], self._dtype)

    def _per_channel_setup(self, num_features, eps, momentum, affine, track_running_stats, dtype):
        """Arguments, affine parameters and running-statistics buffers of the batch and
        instance norms (torch's names)."""
        self._setup(dtype)
        self.num_features = C.positive_int(num_features, "num_features")
        self.eps = _eps(eps)
        self.momentum = _momentum(momentum)
        self.affine = C.flag(affine, "affine")
        self.track_running_stats = C.flag(track_running_stats, "track_running_stats")
        self._affine_params((self.num_features,), self.affine)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, self._dtype))
            self.register_buffer("running_var", np.ones(self.num_features, self._dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            object.__setattr__(self, "running_mean", None)
            object.__setattr__(self, "running_var", None)
            object.__setattr__(self, "num_batches_tracked", None)

    def _affine_params(self, shape, affine, bias=True):
        if affine:
            self.weight = Parameter(np.ones(shape, self._dtype))
            self.bias = Parameter(np.zeros(shape, self._dtype)) if bias else None
        else:
            self.weight = None
            self.bias = None

    def _wb(self):
        w = self.weight.data.reshape(-1) if self.weight is not None else None
        b = self.bias.data.reshape(-1) if self.bias is not None else None
        return w, b


# --------------------------------------------------------------------------------------
# BatchNorm
# --------------------------------------------------------------------------------------

class _BatchNorm(_Norm):
    _ndims = ()
    _shape_doc = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 *, dtype=np.float32, seed=None):
        super().__init__()
        self._per_channel_setup(num_features, eps, momentum, affine, track_running_stats, dtype)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _view3(self, x):
        who = type(self).__name__
        if x.ndim not in self._ndims:
            raise ValueError(f"{who} expects input of shape {self._shape_doc}. "
                             f"Received {x.ndim}-D input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{who}({self.num_features}) expects {self.num_features} channels "
                             f"(x.shape[1]). Received input of shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{who} expects a non-empty batch. Received input of shape {x.shape}")
        n, c = x.shape[0], x.shape[1]
        return x.reshape(n, c, x.size // (n * c) if c else 0)

    def _forward(self, x):
        x = self._check_x(x)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        x3 = self._view3(x)
        n, c, s = x3.shape
        if x.size == 0:
            raise ValueError(f"{type(self).__name__} expects a non-empty input. Received shape {x.shape}")
        batch_stats = self.training or not self.track_running_stats
        if batch_stats and n * s <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, "
                             f"got input size {x.shape}")
        rm = rv = None
        factor = 0.0
        if self.track_running_stats:
            self._check_running()
            if self.training:
                self.num_batches_tracked[...] += 1
                factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                rm, rv = self.running_mean, self.running_var
            elif not batch_stats:
                rm, rv = self.running_mean, self.running_var
        w, b = self._wb()
        y = self._bufs.get("y", x.shape, self._dtype)
        mean = self._bufs.get("mean", (c,), np.float64)
        rstd = self._bufs.get("rstd", (c,), np.float64)
        _norm.batch_norm_forward(x3, y.reshape(n, c, s), w, b, mean, rstd, batch_stats, self.eps,
                                 rm, rv, factor, n_threads_for(x.size))
        object.__setattr__(self, "_saved", (x.shape, x3, mean, rstd, batch_stats))
        return y

    def _check_running(self):
        for name in ("running_mean", "running_var"):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.shape != (self.num_features,) or a.dtype != self._dtype \
                    or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"{name} must be a writeable C-contiguous {self._dtype} array of shape "
                                 f"({self.num_features},). Received: {getattr(a, 'dtype', type(a).__name__)} "
                                 f"{getattr(a, 'shape', '')}")

    def _backward(self, grad_y, need_input_grad=True):
        grad_y = self._check_grad(grad_y)
        shape, x3, mean, rstd, batch_stats = self._saved
        gw, gb, acc = _grad_pair(self.weight, self.bias)
        gx = self._bufs.get("gx", shape, self._dtype) if need_input_grad else None
        w = self.weight.data if self.weight is not None else None
        _norm.batch_norm_backward(grad_y.reshape(x3.shape), x3, None if gx is None else gx.reshape(x3.shape),
                                  w, mean, rstd, batch_stats, gw, gb, acc, n_threads_for(x3.size))
        return gx


class BatchNorm1d(_BatchNorm):
    """Batch normalization over a 2-D or 3-D input (torch.nn.BatchNorm1d).

    In train mode each channel is normalized with the batch's mean and (biased)
    variance over N (and L), and the running statistics are updated:
    ``running = (1 - momentum) * running + momentum * batch_stat`` with the
    unbiased batch variance.  In eval mode the running statistics are used.

    Args:
        num_features: number of channels C.
        eps: added to the variance, > 0 (default 1e-5).
        momentum: weight of the new batch statistic in [0, 1] (default 0.1), or
            None for a cumulative average (weight 1 / num_batches_tracked).
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) of shape (C,).
        track_running_stats: keep ``running_mean``, ``running_var`` and
            ``num_batches_tracked`` buffers; when False, batch statistics are
            used in eval mode too.
        dtype: float32 (default) or float64, keyword-only.
        seed: accepted for API uniformity (the initialization is deterministic).

    Input shape: ``(N, C)`` or ``(N, C, L)``.  Output shape: the input's.
    """

    _ndims = (2, 3)
    _shape_doc = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over a 4-D NCHW input (torch.nn.BatchNorm2d).

    Statistics per channel over N, H and W; otherwise as :class:`BatchNorm1d`
    (same arguments).

    Input shape: ``(N, C, H, W)``.  Output shape: the input's.
    """

    _ndims = (4,)
    _shape_doc = "(N, C, H, W)"


# --------------------------------------------------------------------------------------
# Set family: GroupNorm, LayerNorm, InstanceNorm2d
# --------------------------------------------------------------------------------------

class _SetNorm(_Norm):
    """Forward/backward over (rows, C, S) with num_groups sets per row."""

    def _set_forward(self, x, x3, groups):
        n, c, s = x3.shape
        w, b = self._wb()
        y = self._bufs.get("y", x.shape, self._dtype)
        mean = self._bufs.get("mean", (n * groups,), np.float64)
        rstd = self._bufs.get("rstd", (n * groups,), np.float64)
        _norm.group_norm_forward(x3, y.reshape(x3.shape), groups, w, b, self.eps, mean, rstd,
                                 n_threads_for(x3.size))
        object.__setattr__(self, "_saved", (x.shape, x3, groups, mean, rstd))
        return y

    def _set_backward(self, grad_y, need_input_grad):
        shape, x3, groups, mean, rstd = self._saved
        gw, gb, acc = _grad_pair(self.weight, self.bias)
        gx = self._bufs.get("gx", shape, self._dtype) if need_input_grad else None
        w = self.weight.data.reshape(-1) if self.weight is not None else None
        wflat = None if gw is None else gw.reshape(-1)
        bflat = None if gb is None else gb.reshape(-1)
        _norm.group_norm_backward(grad_y.reshape(x3.shape), x3, None if gx is None else gx.reshape(x3.shape),
                                  groups, w, mean, rstd, wflat, bflat, acc, n_threads_for(x3.size))
        return gx

    def _backward(self, grad_y, need_input_grad=True):
        grad_y = self._check_grad(grad_y)
        return self._set_backward(grad_y, need_input_grad)


class GroupNorm(_SetNorm):
    """Group normalization (torch.nn.GroupNorm).

    The C channels are split into ``num_groups`` groups; each (sample, group)
    is normalized with its own mean and biased variance over the group's
    channels and all spatial positions, then ``weight`` and ``bias`` (per
    channel) are applied.  Same in train and eval mode.

    Args:
        num_groups: number of groups G; must divide num_channels.
        num_channels: number of channels C.
        eps: added to the variance, > 0 (default 1e-5).
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) of shape (C,).
        dtype: float32 (default) or float64, keyword-only.
        seed: accepted for API uniformity (the initialization is deterministic).

    Input shape: ``(N, C, *)``.  Output shape: the input's.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, *, dtype=np.float32, seed=None):
        super().__init__()
        self._setup(dtype)
        self.num_groups = C.positive_int(num_groups, "num_groups")
        self.num_channels = C.positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_channels must be divisible by num_groups. Received: "
                             f"num_channels={self.num_channels}, num_groups={self.num_groups}")
        self.eps = _eps(eps)
        self.affine = C.flag(affine, "affine")
        self._affine_params((self.num_channels,), self.affine)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"

    def _forward(self, x):
        x = self._check_x(x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm expects input of shape (N, {self.num_channels}, *). "
                             f"Received: {x.shape}")
        if x.size == 0:
            raise ValueError(f"GroupNorm expects a non-empty input. Received shape {x.shape}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        n = x.shape[0]
        x3 = x.reshape(n, self.num_channels, x.size // (n * self.num_channels))
        return self._set_forward(x, x3, self.num_groups)


class LayerNorm(_SetNorm):
    """Layer normalization over the trailing dimensions (torch.nn.LayerNorm).

    Every sample (each index of the leading dimensions) is normalized with the
    mean and biased variance of its ``normalized_shape`` trailing elements, then
    the element-wise ``weight`` and ``bias`` (of shape normalized_shape) are
    applied.  Same in train and eval mode.

    Args:
        normalized_shape: int or tuple of ints, the trailing shape to normalize.
        eps: added to the variance, > 0 (default 1e-5).
        elementwise_affine: learn ``weight`` (init 1) and ``bias`` (init 0).
        bias: with elementwise_affine, also learn ``bias`` (default True).
        dtype: float32 (default) or float64, keyword-only.
        seed: accepted for API uniformity (the initialization is deterministic).

    Input shape: ``(*, *normalized_shape)``.  Output shape: the input's.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *,
                 dtype=np.float32, seed=None):
        super().__init__()
        self._setup(dtype)
        if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)) or len(normalized_shape) == 0:
            raise TypeError(f"normalized_shape must be a positive int or a non-empty tuple of them. "
                            f"Received: {normalized_shape!r}")
        self.normalized_shape = tuple(C.positive_int(d, "normalized_shape entry") for d in normalized_shape)
        object.__setattr__(self, "_size", int(np.prod(self.normalized_shape)))
        self.eps = _eps(eps)
        self.elementwise_affine = C.flag(elementwise_affine, "elementwise_affine")
        self._affine_params(self.normalized_shape, self.elementwise_affine, C.flag(bias, "bias"))

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

    def _forward(self, x):
        x = self._check_x(x)
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k:] != self.normalized_shape:
            raise ValueError(f"LayerNorm expects input of shape (*, {', '.join(map(str, self.normalized_shape))}) "
                             f"(trailing dimensions = normalized_shape). Received: {x.shape}")
        d = self._size
        rows = x.size // d
        if rows == 0:
            raise ValueError(f"LayerNorm expects a non-empty input. Received shape {x.shape}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return self._set_forward(x, x.reshape(rows, d, 1), 1)


class InstanceNorm2d(_SetNorm):
    """Instance normalization over a 4-D NCHW input (torch.nn.InstanceNorm2d).

    Each (sample, channel) plane is normalized with its own mean and biased
    variance over H and W.  Defaults as torch: no affine, no running statistics.
    With ``track_running_stats=True`` the running mean/variance (the batch
    average of the instance statistics, unbiased variance) are updated in train
    mode and used in eval mode.

    Args:
        num_features: number of channels C.
        eps: added to the variance, > 0 (default 1e-5).
        momentum: weight of the new statistic in [0, 1] (default 0.1).  As in
            torch, ``num_batches_tracked`` is kept (for state_dict
            compatibility) but not incremented, and momentum=None leaves the
            running statistics unchanged.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0) of shape (C,)
            (default False).
        track_running_stats: keep running statistics (default False).
        dtype: float32 (default) or float64, keyword-only.
        seed: accepted for API uniformity (the initialization is deterministic).

    Input shape: ``(N, C, H, W)`` or unbatched ``(C, H, W)``.  Output shape: the input's.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 *, dtype=np.float32, seed=None):
        super().__init__()
        self._per_channel_setup(num_features, eps, momentum, affine, track_running_stats, dtype)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")

    _check_running = _BatchNorm._check_running

    def _forward(self, x):
        x = self._check_x(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"InstanceNorm2d expects input of shape (N, C, H, W) or (C, H, W). "
                             f"Received {x.ndim}-D input of shape {x.shape}")
        ch = x.shape[-3]
        if ch != self.num_features:
            raise ValueError(f"InstanceNorm2d({self.num_features}) expects {self.num_features} channels. "
                             f"Received input of shape {x.shape}")
        if x.size == 0:
            raise ValueError(f"InstanceNorm2d expects a non-empty input. Received shape {x.shape}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        s = x.shape[-1] * x.shape[-2]
        n = x.size // (ch * s)
        x3 = x.reshape(n, ch, s)
        if self.training or not self.track_running_stats:
            if self.training and s <= 1:
                raise ValueError(f"Expected more than 1 spatial element when training, "
                                 f"got input size {x.shape}")
            y = self._set_forward(x, x3, ch)
            if self.training and self.track_running_stats:
                self._update_running(n, ch, s)
            return y
        # eval with running statistics: a per-channel (batch-family) normalization
        self._check_running()
        w, b = self._wb()
        y = self._bufs.get("y", x.shape, self._dtype)
        mean = self._bufs.get("rmean", (ch,), np.float64)
        rstd = self._bufs.get("rrstd", (ch,), np.float64)
        _norm.batch_norm_forward(x3, y.reshape(x3.shape), w, b, mean, rstd, False, self.eps,
                                 self.running_mean, self.running_var, 0.0, n_threads_for(x.size))
        object.__setattr__(self, "_saved", (x.shape, x3, None, mean, rstd))
        return y

    def _update_running(self, n, ch, s):
        self._check_running()
        _, _, _, mean, rstd = self._saved
        # as torch's InstanceNorm: num_batches_tracked is not incremented and
        # momentum=None means the running statistics stay as they are
        f = 0.0 if self.momentum is None else self.momentum
        m = mean.reshape(n, ch)
        var = (1.0 / (rstd.reshape(n, ch) ** 2) - self.eps) * (s / (s - 1.0))
        rm, rv = self.running_mean, self.running_var
        rm[...] = (1.0 - f) * rm + f * m.mean(axis=0)
        rv[...] = (1.0 - f) * rv + f * np.maximum(var, 0.0).mean(axis=0)

    def _backward(self, grad_y, need_input_grad=True):
        grad_y = self._check_grad(grad_y)
        shape, x3, groups, mean, rstd = self._saved
        if groups is not None:
            return self._set_backward(grad_y, need_input_grad)
        gw, gb, acc = _grad_pair(self.weight, self.bias)
        gx = self._bufs.get("gx", shape, self._dtype) if need_input_grad else None
        w = self.weight.data if self.weight is not None else None
        _norm.batch_norm_backward(grad_y.reshape(x3.shape), x3, None if gx is None else gx.reshape(x3.shape),
                                  w, mean, rstd, False, gw, gb, acc, n_threads_for(x3.size))
        return gx
