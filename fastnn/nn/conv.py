"""Convolution, pooling and Flatten modules (NCHW, torch.nn names and defaults)."""
import numpy as np

from fastnn import _checks as C
from fastnn._engine import conv as econv
from fastnn._engine.buffers import Buffers, owned_empty
from fastnn._kernels import _conv
from fastnn.nn.module import Module, Parameter


def _check_x(x, dtype, channels, who):
    x = C.layer_input(x, dtype, who)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        ch = channels if channels is not None else "C"
        raise ValueError(f"{who} expects input of shape (N, {ch}, H, W). Received: {x.shape}")
    return x


class Conv2d(Module):
    """2-D convolution over NCHW input (torch.nn.Conv2d).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (number of filters).
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw), >= 1. Default 1.
        padding: int or (ph, pw) zeros added on each side, >= 0. Default 0.
        bias: learn an additive per-channel bias (default True).
        dtype: float32 (default) or float64, keyword-only.
        seed: seed of the initialization (torch's default: uniform in
            ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, fan_in = in_channels*kh*kw).

    Input shape: ``(N, in_channels, H, W)``.
    Output shape: ``(N, out_channels, OH, OW)`` with ``OH = (H + 2*ph - kh) // sh + 1``.

    Parameters are ``weight`` (out_channels, in_channels, kh, kw) and ``bias``
    (out_channels,), so torch state_dicts load directly.  The forward pass is an
    im2col into a reused column buffer, one batched GEMM that writes NCHW, and
    one in-place pass for the bias (plus a following activation, when run
    inside Sequential); 3x3 stride-1 convs with at least 12 input channels use
    Winograd F(2x2, 3x3) instead (2.25x fewer multiplies), and other stride-1
    convs with suitable row widths a direct kernel (measured faster there; see
    ``fastnn._engine.conv``).  With several threads (``fastnn.set_num_threads``) each thread
    runs a part of the batch.  Buffers are kept per input shape: a training step
    after the first allocates nothing.
    """

    _splits_batch = True   # see fastnn._engine.parallel and Sequential

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, *,
                 dtype=np.float32, seed=None):
        super().__init__()
        self.in_channels = C.positive_int(in_channels, "in_channels")
        self.out_channels = C.positive_int(out_channels, "out_channels")
        self.kernel_size = C.int_pair(kernel_size, "kernel_size", 1)
        self.stride = C.int_pair(stride, "stride", 1)
        self.padding = C.int_pair(padding, "padding", 0)
        dt = C.float_dtype(dtype)
        rng = np.random.default_rng(seed)
        kh, kw = self.kernel_size
        bound = 1.0 / np.sqrt(self.in_channels * kh * kw)
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dt))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dt))
        else:
            self.bias = None
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")

    def forward(self, x):
        """Compute the output for input ``x`` (returns a new array)."""
        return self._forward(x, public=True)

    def backward(self, grad_y):
        """Back-propagate ``grad_y``: accumulate the parameter gradients, return the
        gradient with respect to the input (a new array)."""
        return self._backward(grad_y, True, public=True)

    def _takes_activation(self):
        return True

    def _takes_rows(self):
        return True

    def _forward(self, x, act=econv.IDENTITY, slope=0.0, public=False, rows=None):
        w = self.weight.data
        x = _check_x(x, w.dtype, self.in_channels, "Conv2d")
        k, oh, ow = C.conv_geometry(x.shape, w.shape, self.stride, self.padding)
        shape = (x.shape[0], self.out_channels, oh, ow)
        # the public forward writes into an array the caller owns (no copy); the
        # layer keeps it only when backward needs it (a fused activation)
        y = owned_empty(self, "forward", shape, w.dtype) if public else self._bufs.get("y", shape, w.dtype)
        b = self.bias.data if self.bias is not None else None
        # a following row pass (Sequential: a pooling layer) runs inside each part
        out, after = (y, None) if rows is None else rows._rows_forward(y)
        st = econv.forward_into(x, w, b, self.stride, self.padding, oh, ow, self._bufs, y, act,
                                    slope, after)
        object.__setattr__(self, "_saved", (x.shape, y if act != econv.IDENTITY else None, st, act, slope, shape))
        return out

    def _backward(self, grad_y, need_input_grad=True, public=False, rows=None):
        if self._saved is None:
            raise RuntimeError("Conv2d.backward() called before forward()")
        x_shape, y, st, act, slope, y_shape = self._saved
        w = self.weight.data
        before = None
        if rows is not None:   # grad_y is the row pass's: its backward runs inside each part
            grad_y, before = rows._rows_backward(grad_y)
        grad_y = C.grad_output(grad_y, y_shape, w.dtype)
        gw, gw_acc = self.weight.grad_target()
        gb, gb_acc = (None, False) if self.bias is None else self.bias.grad_target()
        gx = owned_empty(self, "backward", x_shape, w.dtype) if public and need_input_grad else None
        return econv.backward_into(grad_y, y, x_shape, w, self.stride, self.padding, st,
                                       self._bufs, gw, gw_acc, gb, gb_acc, need_input_grad, act,
                                       slope, gx, before)


class _Pool2d(Module):
    """Pooling over each (N*C) plane: ``_pool(x, y, lo, hi, n_threads)`` and
    ``_unpool(gy, gx, lo, hi, n_threads)`` do batch rows lo..hi, for the whole
    batch here and part by part inside a preceding Conv2d (see Sequential)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = C.pool_args(kernel_size, stride, padding)
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _row_pass(self):
        return True

    def _rows_forward(self, x):
        x = _check_x(x, None, None, type(self).__name__)
        shape = C.pool_output_shape(x.shape, self.kernel_size, self.stride, self.padding,
                                       type(self).__name__)
        y = self._bufs.get("y", shape, x.dtype)
        self._save(x, y)
        return y, lambda lo, hi, nt: self._pool(x, y, lo, hi, nt)

    def _rows_backward(self, grad_y):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        shape, y = self._saved[0], self._saved[1]
        grad_y = C.grad_output(grad_y, y.shape, y.dtype)
        gx = self._bufs.get("gx", shape, y.dtype)
        return gx, lambda lo, hi, nt: self._unpool(grad_y, gx, lo, hi, nt)

    def _forward(self, x):
        y, rows = self._rows_forward(x)
        rows(0, x.shape[0], econv.pass_threads(y.size * self.kernel_size[0] * self.kernel_size[1]))
        return y

    def _backward(self, grad_y, need_input_grad=True):
        gx, rows = self._rows_backward(grad_y)
        if not need_input_grad:
            return None
        rows(0, gx.shape[0], econv.pass_threads(gx.size))
        return gx


class MaxPool2d(_Pool2d):
    """Max pooling over NCHW input (torch.nn.MaxPool2d).

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw); default ``kernel_size``.
        padding: implicit -inf padding on each side, at most half the kernel.

    Input shape: ``(N, C, H, W)``. Output shape: ``(N, C, OH, OW)`` with
    ``OH = (H + 2*ph - kh) // sh + 1``.  The argmax of every window is kept for
    backward (int32, one per output element); a NaN in a window propagates.
    """

    def _save(self, x, y):
        idx = self._bufs.get("idx", y.shape, np.dtype(np.int32))
        object.__setattr__(self, "_saved", (x.shape, y, idx))

    def _pool(self, x, y, lo, hi, nt):
        _conv.max_pool2d(x[lo:hi], y[lo:hi], self._saved[2][lo:hi], self.kernel_size,
                         self.stride, self.padding, nt)

    def _unpool(self, gy, gx, lo, hi, nt):
        _conv.max_pool2d_backward(gy[lo:hi], self._saved[2][lo:hi], gx[lo:hi], nt)


class AvgPool2d(_Pool2d):
    """Average pooling over NCHW input (torch.nn.AvgPool2d, ceil_mode=False).

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw); default ``kernel_size``.
        padding: zero padding on each side, at most half the kernel.
        count_include_pad: count the zero padding in the divisor (torch's
            default, True) or only the input elements of each window.

    Input shape: ``(N, C, H, W)``. Output shape: ``(N, C, OH, OW)``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def _save(self, x, y):
        object.__setattr__(self, "_saved", (x.shape, y))

    def _pool(self, x, y, lo, hi, nt):
        _conv.avg_pool2d(x[lo:hi], y[lo:hi], self.kernel_size, self.stride, self.padding,
                         self.count_include_pad, nt)

    def _unpool(self, gy, gx, lo, hi, nt):
        _conv.avg_pool2d_backward(gy[lo:hi], gx[lo:hi], self.kernel_size, self.stride,
                                  self.padding, self.count_include_pad, nt)


class Flatten(Module):
    """Flatten dimensions ``start_dim..end_dim`` into one (torch.nn.Flatten; default 1..-1).

    Input shape: ``(N, *)``. Output shape: ``(N, prod(*))`` for the defaults.
    Forward and backward are reshapes (views, no copy, for C-contiguous input).
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for v, name in ((start_dim, "start_dim"), (end_dim, "end_dim")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int. Received: {v!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)
        object.__setattr__(self, "_saved", None)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def _forward(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Flatten expects a numpy array. Received: {type(x).__name__}")
        nd = max(x.ndim, 1)
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= s < nd and 0 <= e < nd) or s > e:
            raise ValueError(f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) does not fit "
                             f"input of shape {x.shape}")
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        shape = x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:]
        object.__setattr__(self, "_saved", x.shape)
        return x.reshape(shape)

    def _backward(self, grad_y, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("Flatten.backward() called before forward()")
        if not need_input_grad:
            return None
        if not isinstance(grad_y, np.ndarray) or grad_y.size != int(np.prod(self._saved)):
            raise ValueError(f"Flatten: grad_y must have {int(np.prod(self._saved))} elements "
                             f"(input shape {self._saved}). Received: "
                             f"{getattr(grad_y, 'shape', type(grad_y).__name__)}")
        if not grad_y.flags.c_contiguous:
            grad_y = np.ascontiguousarray(grad_y)
        return grad_y.reshape(self._saved)
