"""Dense layer and activation modules."""
import numpy as np

from fastnn import _checks as C
from fastnn._engine import codes, dense
from fastnn._engine.buffers import Buffers
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _dense
from fastnn.nn.module import Module, Parameter


def _check_input(x, dtype, features, who):
    x = C.layer_input(x, dtype, who)
    if x.ndim != 2 or (features is not None and x.shape[1] != features):
        expected = f"(n_samples, {features})" if features is not None else "(n_samples, n_features)"
        raise ValueError(f"{who} expects input of shape {expected}. Received: {x.shape}")
    return x


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias`` (torch.nn.Linear).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        dtype: float32 (default) or float64, keyword-only.
        seed: seed of the initialization (torch's default: uniform in
            ``[-1/sqrt(in_features), 1/sqrt(in_features)]`` for weight and bias).

    Input shape: ``(n_samples, in_features)`` of the layer's dtype.
    Output shape: ``(n_samples, out_features)``.

    Parameters are ``weight`` of shape (out_features, in_features) and ``bias`` of
    shape (out_features,), so torch state_dicts load directly.
    """

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, seed=None):
        super().__init__()
        self.in_features = C.positive_int(in_features, "in_features")
        self.out_features = C.positive_int(out_features, "out_features")
        dt = C.float_dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        # Stored in Fortran order: weight.T is then C-contiguous, so the forward
        # product x @ weight.T is a plain (NN) GEMM, measurably faster in OpenBLAS
        # than the transposed-operand (NT) form, and the first layer of a network
        # (which needs no input gradient) never runs an NT product at all.
        w = rng.uniform(-bound, bound, (self.out_features, self.in_features)).astype(dt)
        self.weight = Parameter(np.asfortranarray(w))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, self.out_features).astype(dt))
        else:
            self.bias = None
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def _forward(self, x, act=dense.IDENTITY, slope=0.0):
        w = self.weight.data
        x = _check_input(x, w.dtype, self.in_features, "Linear")
        y = self._bufs.get("y", (x.shape[0], self.out_features), w.dtype)
        dense.linear_forward(x, w, None if self.bias is None else self.bias.data, y, act, slope)
        object.__setattr__(self, "_saved", (x, y, act, slope))
        return y

    def _backward(self, grad_y, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("Linear.backward() called before forward()")
        x, y, act, slope = self._saved
        w = self.weight.data
        grad_y = C.grad_output(grad_y, y.shape, w.dtype)
        gb, gb_acc = (None, False) if self.bias is None else self.bias.grad_target()
        gw, gw_acc = self.weight.grad_target()
        gx = self._bufs.get("gx", x.shape, w.dtype) if need_input_grad else None
        return dense.linear_backward(grad_y, x, w, y, act, slope, gw, gw_acc, gb, gb_acc, gx,
                                     self._bufs)

    def _takes_activation(self):
        return True


class _Activation(Module):
    """Element-wise activation; the derivative is computed from the saved output."""

    _name = "identity"

    def __init__(self, negative_slope=0.0):
        super().__init__()
        object.__setattr__(self, "_code", codes.ACTIVATIONS[self._name])
        object.__setattr__(self, "_slope", float(negative_slope))
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)

    def _epilogue(self):
        return self._code, self._slope

    def _forward(self, x):
        x = C.layer_input(x, None, type(self).__name__)
        y = self._bufs.get("y", x.shape, x.dtype)
        _dense.act_forward(x.reshape(-1), y.reshape(-1), self._code, self._slope, n_threads_for(x.size))
        object.__setattr__(self, "_saved", y)
        return y

    def _backward(self, grad_y, need_input_grad=True):
        y = self._saved
        if y is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        grad_y = C.grad_output(grad_y, y.shape, y.dtype)
        if not need_input_grad:
            return None
        gx = self._bufs.get("gx", y.shape, y.dtype)
        _dense.act_backward(grad_y.reshape(-1), y.reshape(-1), gx.reshape(-1), self._code, self._slope,
                            n_threads_for(y.size))
        return gx


class ReLU(_Activation):
    """``max(x, 0)`` element-wise (torch.nn.ReLU). Any input shape."""

    _name = "relu"

    def __init__(self):
        super().__init__()


class LeakyReLU(_Activation):
    """``x if x > 0 else negative_slope * x`` (torch.nn.LeakyReLU).

    Args:
        negative_slope: slope for negative inputs, >= 0 (the derivative is taken
            from the output, which needs a non-negative slope). Default 0.01.
    """

    _name = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        super().__init__(C.real(negative_slope, "negative_slope", low=0.0))

    @property
    def negative_slope(self):
        return self._slope

    def extra_repr(self):
        return f"negative_slope={self._slope}"


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))`` element-wise (torch.nn.Sigmoid)."""

    _name = "sigmoid"

    def __init__(self):
        super().__init__()


class Tanh(_Activation):
    """``tanh(x)`` element-wise (torch.nn.Tanh)."""

    _name = "tanh"

    def __init__(self):
        super().__init__()


_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


class Dropout(Module):
    """Inverted dropout (torch.nn.Dropout): in train mode each element is zeroed
    with probability ``p`` and the others are scaled by ``1 / (1 - p)``; in eval
    mode, and for ``p = 0``, it is the identity.

    In data-parallel ``fit(..., distributed=True)`` each rank's shard of a global
    batch gets the masks of its rows' places in the global batch, so training is
    the same as one process with the whole batch.

    The mask is counter-based: element ``i`` of the ``k``-th training forward is
    kept according to a hash of (seed, k, i), so a seed gives the same masks on
    every run and for any thread count, and ``backward`` regenerates exactly the
    mask of the forward it follows (nothing is stored).

    Args:
        p: probability of zeroing an element, in [0, 1] (default 0.5).
        seed: seed of the masks (keyword-only); None draws one from the OS.

    Input shape: any.  Output shape: the input's.
    """

    def __init__(self, p=0.5, *, seed=None):
        super().__init__()
        self.p = C.real(p, "dropout probability p", 0.0, 1.0)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        object.__setattr__(self, "_seed", int(seed) & _MASK64)
        object.__setattr__(self, "_calls", 0)
        object.__setattr__(self, "_row_offset", 0)   # set by distributed fit, see _forward
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)

    @property
    def seed(self):
        """The seed of the masks (drawn from the OS when the constructor got None)."""
        return self._seed

    # -- for checkpoints and data-parallel fit ------------------------------------------
    def rng_state(self):
        """(seed, calls): the layer's whole random state; ``calls`` counts the training
        forwards drawn so far (each draws the masks of its own stream)."""
        return self._seed, self._calls

    def set_rng_state(self, seed, calls):
        """Restore a state from :meth:`rng_state` (the next forward draws the masks that
        the saved layer's next forward would have drawn)."""
        seed, calls = C.nonneg_int(seed, "seed"), C.nonneg_int(calls, "calls")
        object.__setattr__(self, "_seed", seed & _MASK64)
        object.__setattr__(self, "_calls", calls)

    @property
    def row_offset(self):
        """The row of the whole batch where this layer's input starts (0 unless a
        rank's shard of a larger batch: data-parallel fit sets it, so that each rank
        draws the masks of its rows of the whole batch)."""
        return self._row_offset

    @row_offset.setter
    def row_offset(self, value):
        object.__setattr__(self, "_row_offset", C.nonneg_int(value, "row_offset"))

    def extra_repr(self):
        return f"p={self.p}"

    def _key(self, k):
        z = (self._seed + (k + 1) * _GOLDEN) & _MASK64   # a distinct stream per call
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        return ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64

    def _apply(self, src, key, shape, name):
        out = self._bufs.get(name, shape, src.dtype)
        if self.p >= 1.0:
            out[...] = 0
            return out
        threshold = min(int(self.p * 2.0 ** 32), 2 ** 32 - 1)
        _dense.dropout(src.reshape(-1), out.reshape(-1), key, threshold, 1.0 / (1.0 - self.p),
                       n_threads_for(src.size))
        return out

    def _forward(self, x):
        if not isinstance(x, np.ndarray) or x.dtype not in C.FLOAT_DTYPES:
            raise TypeError(f"Dropout expects a float32 or float64 numpy array. Received: "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if not self.training or self.p == 0.0:
            object.__setattr__(self, "_saved", (None, x.shape, x.dtype))
            return x
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        key = self._key(self._calls)
        rows = self._row_offset
        if rows and x.shape[0]:
            # This batch is rows [rows, rows + n) of a larger one (a rank's shard in
            # data-parallel fit): element j gets the mask of element offset + j of the
            # whole, since the mask of (key, i) hashes key + i * golden.
            key = (key + rows * (x.size // x.shape[0]) * _GOLDEN) & _MASK64
        object.__setattr__(self, "_calls", self._calls + 1)
        object.__setattr__(self, "_saved", (key, x.shape, x.dtype))
        return self._apply(x, key, x.shape, "y")

    def _backward(self, grad_y, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("Dropout.backward() called before forward()")
        key, shape, dtype = self._saved
        grad_y = C.grad_output(grad_y, shape, dtype)
        if not need_input_grad:
            return None
        if key is None:
            return grad_y
        return self._apply(grad_y, key, shape, "gx")
