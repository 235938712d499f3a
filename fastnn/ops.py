"""Functional kernels on NumPy arrays: validate, allocate (or use ``out=``), call a kernel.

Every function takes float32 or float64 arrays; all arrays of one call share a
dtype (a mismatch raises TypeError, nothing is upcast).  Inputs may be
non-contiguous, Fortran-ordered or read-only (they are copied when a kernel
needs C order, and never written).  Outputs passed as ``out=`` must be
C-contiguous, writeable and of the right shape and dtype.  The optimizer
updates work in place on ``param`` and the state arrays, which must therefore
be C-contiguous and writeable.
"""
import math

import numpy as np

from fastnn import _checks as C
from fastnn import _parallel
from fastnn._config import n_threads_for
from fastnn._kernels import _conv, _data, _dense, _loss, _optim

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")


def _act_code(activation, negative_slope):
    try:
        code = _dense.ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation must be one of {(None,) + ACTIVATIONS}. Received: {activation!r}"
        ) from None
    slope = 0.0
    if activation == "leaky_relu":
        slope = C.real(negative_slope, "negative_slope", low=0.0)
    return code, slope


def linear(x, weight, bias=None, activation=None, negative_slope=0.01, out=None):
    """Dense layer forward: ``act(x @ weight.T + bias)``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,), optional
    activation : {None, "identity", "relu", "leaky_relu", "sigmoid", "tanh"}
    negative_slope : float, default 0.01
        Slope of leaky_relu for negative inputs (>= 0).
    out : ndarray of shape (n_samples, out_features), optional

    Returns
    -------
    y : ndarray of shape (n_samples, out_features)
    """
    code, slope = _act_code(activation, negative_slope)
    x = C.as_float(x, "x", ndim=2)
    weight = C.as_float(weight, "weight", ndim=2)
    C.same_dtype(("x", x), ("weight", weight))
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} features but weight expects in_features={weight.shape[1]} "
            f"(weight shape {weight.shape})"
        )
    if bias is not None:
        bias = C.as_float(bias, "bias", dtype=x.dtype, ndim=1)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias must have shape ({weight.shape[0]},). Received: {bias.shape}")
    shape = (x.shape[0], weight.shape[0])
    out = np.empty(shape, x.dtype) if out is None else C.check_out(out, shape, x.dtype)
    np.matmul(x, weight.T, out=out)
    if bias is not None or code != 0:
        _dense.bias_act_forward(out, bias, code, slope, n_threads_for(out.size))
    return out


def linear_backward(grad_y, x, weight, y, activation=None, negative_slope=0.01):
    """Dense layer backward from the forward output ``y``.

    Parameters
    ----------
    grad_y : ndarray of shape (n_samples, out_features)
        Gradient of the loss with respect to the layer output.
    x : ndarray of shape (n_samples, in_features)
        The forward input.
    weight : ndarray of shape (out_features, in_features)
    y : ndarray of shape (n_samples, out_features)
        The forward output (after the activation).
    activation, negative_slope : as in :func:`linear`

    Returns
    -------
    grad_x : ndarray of shape (n_samples, in_features)
    grad_weight : ndarray of shape (out_features, in_features)
    grad_bias : ndarray of shape (out_features,)
    """
    code, slope = _act_code(activation, negative_slope)
    grad_y = C.as_float(grad_y, "grad_y", ndim=2)
    x = C.as_float(x, "x", dtype=grad_y.dtype, ndim=2)
    weight = C.as_float(weight, "weight", dtype=grad_y.dtype, ndim=2)
    y = C.as_float(y, "y", dtype=grad_y.dtype, ndim=2)
    n, out_f = grad_y.shape
    if y.shape != grad_y.shape:
        raise ValueError(f"y must have the shape of grad_y {grad_y.shape}. Received: {y.shape}")
    if weight.shape[0] != out_f or x.shape != (n, weight.shape[1]):
        raise ValueError(
            f"inconsistent shapes: grad_y {grad_y.shape}, x {x.shape}, weight {weight.shape} "
            "(expected grad_y (N, out), x (N, in), weight (out, in))"
        )
    grad_bias = np.empty(out_f, grad_y.dtype)
    nt = n_threads_for(grad_y.size)
    if code == 0:
        grad_z = grad_y
        _dense.act_backward_bias(grad_z, None, None, grad_bias, False, 0, 0.0, nt)
    else:
        grad_z = np.empty_like(grad_y)
        _dense.act_backward_bias(grad_y, y, grad_z, grad_bias, False, code, slope, nt)
    grad_x = grad_z @ weight
    grad_weight = grad_z.T @ x
    return grad_x, grad_weight, grad_bias


def activation_forward(x, activation, negative_slope=0.01, out=None):
    """Element-wise activation of an array of any shape."""
    code, slope = _act_code(activation, negative_slope)
    x = C.as_float(x, "x")
    out = np.empty_like(x) if out is None else C.check_out(out, x.shape, x.dtype)
    _dense.act_forward(x.reshape(-1), out.reshape(-1), code, slope, n_threads_for(x.size))
    return out


def activation_backward(grad_y, y, activation, negative_slope=0.01, out=None):
    """``grad_y * act'(.)`` with the derivative computed from the forward output ``y``."""
    code, slope = _act_code(activation, negative_slope)
    grad_y = C.as_float(grad_y, "grad_y")
    y = C.as_float(y, "y", dtype=grad_y.dtype)
    if y.shape != grad_y.shape:
        raise ValueError(f"y must have the shape of grad_y {grad_y.shape}. Received: {y.shape}")
    out = np.empty_like(grad_y) if out is None else C.check_out(out, y.shape, y.dtype)
    _dense.act_backward(grad_y.reshape(-1), y.reshape(-1), out.reshape(-1), code, slope,
                        n_threads_for(y.size))
    return out


def _ce_target(logits, target):
    """('labels', intp array) or ('probs', float array) after validation."""
    t = np.asarray(target)
    if t.ndim == 2:
        t = C.as_float(t, "target")
        if t.dtype != logits.dtype:
            raise TypeError(f"probability targets must have the logits dtype {logits.dtype}. Received: {t.dtype}")
        if t.shape != logits.shape:
            raise ValueError(f"probability targets must have shape {logits.shape}. Received: {t.shape}")
        return "probs", t
    labels = C.labels_1d(t)
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"target has {labels.shape[0]} labels for {logits.shape[0]} rows of logits")
    return "labels", labels


def _ce_run(logits, kind, t, grad, n_threads):
    """Run the fused kernel; returns (mean loss, correct count)."""
    n, c = logits.shape
    scale = 1.0 / n
    if kind == "labels":
        total, correct, bad = _loss.softmax_ce_labels(logits, t, grad, scale, n_threads)
        if bad:
            lo, hi = int(t.min()), int(t.max())
            raise ValueError(
                f"target labels must be in [0, {c}) for {c} classes. Received labels in [{lo}, {hi}]"
            )
    else:
        total, correct = _loss.softmax_ce_probs(logits, t, grad, scale, n_threads)
    return total * scale, correct


def softmax_cross_entropy(logits, target, out=None):
    """Mean softmax cross-entropy and its gradient, in one pass.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
    target : int ndarray of shape (n_samples,) or float ndarray of shape (n_samples, n_classes)
        Class labels in [0, n_classes), or class probabilities (same dtype as logits).
    out : ndarray of shape (n_samples, n_classes), optional
        Buffer for the gradient.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_samples, n_classes)
        Gradient of the mean loss with respect to the logits.
    """
    logits = C.as_float(logits, "logits", ndim=2)
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one sample. Received shape " + str(logits.shape))
    kind, t = _ce_target(logits, target)
    grad = np.empty_like(logits) if out is None else C.check_out(out, logits.shape, logits.dtype)
    loss, _ = _ce_run(logits, kind, t, grad, n_threads_for(logits.size))
    return loss, grad


def mse_loss(pred, target, out=None):
    """Mean squared error ``mean((pred - target) ** 2)`` and its gradient.

    Returns
    -------
    loss : float
    grad : ndarray, shape of pred
    """
    pred = C.as_float(pred, "pred")
    target = C.as_float(target, "target", dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"target must have the shape of pred {pred.shape}. Received: {target.shape}")
    if pred.size == 0:
        raise ValueError("pred must not be empty")
    grad = np.empty_like(pred) if out is None else C.check_out(out, pred.shape, pred.dtype)
    scale = 1.0 / pred.size
    total = _loss.elem_loss(_loss.ELEM_LOSSES["mse"], pred.reshape(-1), target.reshape(-1),
                            grad.reshape(-1), 2.0 * scale, 0.0, n_threads_for(pred.size))
    return total * scale, grad


def gather_rows(X, indices, out=None):
    """``X[indices]`` for a 2-D (or N-D, gathered along axis 0) array, in parallel.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
    indices : int ndarray of shape (k,)
    out : ndarray of shape (k, ...), optional
    """
    X = np.asarray(X)
    if X.ndim < 1:
        raise ValueError("X must have at least one dimension")
    if not X.flags.c_contiguous:
        X = np.ascontiguousarray(X)
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be a 1-D integer array. Received dtype {idx.dtype}, shape {idx.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.intp)
    shape = (idx.shape[0],) + X.shape[1:]
    out = np.empty(shape, X.dtype) if out is None else C.check_out(out, shape, X.dtype)
    bad = _data.gather_rows(X, idx, out, n_threads_for(out.size))
    if bad:
        raise IndexError(f"indices must be in [0, {X.shape[0]}). Received values in [{idx.min()}, {idx.max()}]")
    return out


# --- optimizer updates -------------------------------------------------------

def _state_array(a, name, like):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array. Received: {type(a).__name__}")
    if a.dtype != like.dtype:
        raise TypeError(f"{name} must have dtype {like.dtype}. Received: {a.dtype}")
    if a.shape != like.shape:
        raise ValueError(f"{name} must have shape {like.shape}. Received: {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable (it is updated in place)")
    return a


def _momentum_buffer(momentum, buf, param):
    """The momentum buffer to pass to a kernel: validated, or None without momentum."""
    if momentum <= 0:
        return None
    if buf is None:
        raise ValueError("momentum > 0 needs a momentum_buffer array")
    return _state_array(buf, "momentum_buffer", param)


def _update_args(param, grad):
    _state_array(param, "param", param)
    if param.dtype not in C.FLOAT_DTYPES:
        raise TypeError(f"param must be float32 or float64. Received: {param.dtype}")
    grad = C.as_float(grad, "grad", dtype=param.dtype)
    if grad.shape != param.shape:
        raise ValueError(f"grad must have shape {param.shape}. Received: {grad.shape}")
    return grad


def _run_update(kind, param, grad, s0, s1, s2, hp):
    _optim.multi_update(_optim.KINDS[kind], [param], [grad],
                        None if s0 is None else [s0], None if s1 is None else [s1],
                        None if s2 is None else [s2], param.dtype == np.float64, hp,
                        n_threads_for(param.size))


def sgd_update(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0,
               nesterov=False, weight_decay=0.0, first_step=False):
    """In-place SGD step with torch.optim.SGD's rule.

    ``first_step=True`` initializes the momentum buffer with the (weight-decayed)
    gradient, as torch does when the buffer does not exist yet.
    """
    grad = _update_args(param, grad)
    lr = C.real(lr, "learning rate", low=0.0)
    momentum = C.real(momentum, "momentum value", low=0.0)
    momentum_buffer = _momentum_buffer(momentum, momentum_buffer, param)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    hp = {"lr": lr, "momentum": momentum, "dampening": C.real(dampening, "dampening"),
          "nesterov": int(bool(nesterov)), "weight_decay": C.real(weight_decay, "weight_decay value", low=0.0),
          "first_step": int(bool(first_step))}
    _run_update("sgd", param, grad, momentum_buffer, None, None, hp)
    return param


def adam_hp(step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """Step scalars for the fused Adam kernel, computed once in double."""
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    return {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay,
            "decoupled": int(bool(decoupled)), "step_size": lr / bc1, "bc2_sqrt": math.sqrt(bc2)}


def adam_update(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1, beta2, eps,
                weight_decay=0.0, decoupled=False, max_exp_avg_sq=None):
    """In-place Adam (``decoupled=True``: AdamW) step with torch.optim's rule.

    ``step`` is the 1-based step number; passing ``max_exp_avg_sq`` selects amsgrad.
    """
    grad = _update_args(param, grad)
    _state_array(exp_avg, "exp_avg", param)
    _state_array(exp_avg_sq, "exp_avg_sq", param)
    if max_exp_avg_sq is not None:
        _state_array(max_exp_avg_sq, "max_exp_avg_sq", param)
    step = C.positive_int(step, "step")
    hp = adam_hp(step, C.real(lr, "learning rate", low=0.0), C.real(beta1, "beta parameter at index 0", 0.0, 1.0, high_open=True),
                 C.real(beta2, "beta parameter at index 1", 0.0, 1.0, high_open=True),
                 C.real(eps, "epsilon value", low=0.0), C.real(weight_decay, "weight_decay value", low=0.0),
                 decoupled)
    _run_update("adam", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, hp)
    return param


def adagrad_update(param, grad, state_sum, *, step, lr, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    """In-place Adagrad step with torch.optim.Adagrad's rule (``step`` is 1-based)."""
    grad = _update_args(param, grad)
    _state_array(state_sum, "state_sum", param)
    step = C.positive_int(step, "step")
    lr = C.real(lr, "learning rate", low=0.0)
    lr_decay = C.real(lr_decay, "lr_decay value", low=0.0)
    hp = {"weight_decay": C.real(weight_decay, "weight_decay value", low=0.0),
          "eps": C.real(eps, "epsilon value", low=0.0), "clr": lr / (1.0 + (step - 1) * lr_decay)}
    _run_update("adagrad", param, grad, state_sum, None, None, hp)
    return param


def rmsprop_update(param, grad, square_avg, *, lr, alpha, eps, weight_decay=0.0, momentum=0.0,
                   momentum_buffer=None, centered=False, grad_avg=None):
    """In-place RMSprop step with torch.optim.RMSprop's rule."""
    grad = _update_args(param, grad)
    _state_array(square_avg, "square_avg", param)
    momentum = C.real(momentum, "momentum value", low=0.0)
    momentum_buffer = _momentum_buffer(momentum, momentum_buffer, param)
    if centered:
        if grad_avg is None:
            raise ValueError("centered=True needs a grad_avg array")
        _state_array(grad_avg, "grad_avg", param)
    else:
        grad_avg = None
    hp = {"lr": C.real(lr, "learning rate", low=0.0), "alpha": C.real(alpha, "alpha value", low=0.0),
          "eps": C.real(eps, "epsilon value", low=0.0), "momentum": momentum,
          "weight_decay": C.real(weight_decay, "weight_decay value", low=0.0), "centered": int(bool(centered))}
    _run_update("rmsprop", param, grad, square_avg, momentum_buffer, grad_avg, hp)
    return param


# -- convolution and pooling ---------------------------------------------------------------
# The conv and pooling passes run between multithreaded GEMMs.  With the system libgomp
# (a source build), finished OpenMP threads spin-wait and take the cores that
# OpenBLAS's next GEMM needs: on the 2-core VM at 2 threads, Conv2d fwd+bwd (N=64,
# 3->32, 32x32) took 52 ms with parallel passes against 9 ms with serial ones (and
# N=64, 32->64, 16x16: 41-64 ms against 24 ms).  A wheel's private libgomp sleeps
# instead (PASSIVE, see fastnn/__init__.py); there the passes go parallel above the
# usual size threshold.  None: decided on first use from fastnn._openmp_private.
_CONV_PARALLEL = None


def _conv_threads(n_elements):
    global _CONV_PARALLEL
    if _CONV_PARALLEL is None:
        import fastnn

        _CONV_PARALLEL = bool(fastnn._openmp_private)
    return n_threads_for(n_elements) if _CONV_PARALLEL else 1


def _pair(value, name, minimum):
    """An int or a pair of ints (height, width), each >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w). Received: {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints. Received: {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value!r}")
    return (int(pair[0]), int(pair[1]))


def _out_size(hw, kernel, stride, padding, who):
    """Output (height, width) of a sliding window; raises when the window does not fit."""
    out = []
    for size, k, s, p, axis in zip(hw, kernel, stride, padding, ("height", "width")):
        if size + 2 * p < k:
            raise ValueError(
                f"{who}: kernel {axis} {k} is larger than the padded input {axis} {size} + 2*{p}"
            )
        out.append((size + 2 * p - k) // s + 1)
    return tuple(out)


def _check_image(x, name, dtype=None, channels=None):
    x = C.as_float(x, name, dtype=dtype)
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W). Received shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels (dimension 1). Received shape {x.shape}")
    return x


def _conv_geometry(x_shape, w_shape, stride, padding):
    n, c, h, w = x_shape
    o, ci, kh, kw = w_shape
    oh, ow = _out_size((h, w), (kh, kw), stride, padding, "conv2d")
    return (kh, kw), oh, ow


# Winograd F(2x2, 3x3) (src_c/fnn_wino.c) replaces im2col for 3x3 stride-1 convs
# with at least WINOGRAD_MIN_CHANNELS input channels: 2.25x fewer multiplies, in
# 16 GEMMs with C or O as their inner dimension.  fwd+bwd at one thread on the
# 2-core VM, im2col -> Winograd, ms: N=64 32->64 16x16 26.7 -> 16.9; 16->32
# 16x16 8.5 -> 5.5; 16->16 32x32 25.0 -> 15.0; 64->64 8x8 15.5 -> 8.5; 32->32
# 12x12 10.1 -> 5.7; 12->12 16x16 3.3 -> 2.7; 32->3 16x16 6.6 -> 4.5; 16->16
# 4x4 0.60 -> 0.20; but 8->16 16x16 2.0 -> 1.9, 8->32 32x32 18.4 -> 19.0, 4->16
# 32x32 5.2 -> 8.4, 3->32 32x32 7.3 -> 15.9 (a GEMM with an inner dimension of a
# few channels runs at a few GFLOP/s).  WINOGRAD: "auto" (that rule), True
# (every 3x3 stride-1 conv: the tests use it on small shapes) or False (never).
WINOGRAD = "auto"
WINOGRAD_MIN_CHANNELS = 12

# Other stride-1 convs (kernel larger than 1x1) compute the forward output, and
# the input gradient (a stride-1 conv of grad_y with the flipped, transposed
# weight), directly in C (fnn_conv_direct in src_c/fnn_conv.c) instead of GEMM
# (+ col2im) where that measured faster: the kernel works on 64-byte vectors of
# an output row and blocks of 4 output channels, so it needs rows that fill its
# vectors (_use_direct) and, for the input gradient, at least 3 input channels.
# fwd+bwd at one thread, GEMM -> direct, ms: N=64 3->32 32x32 k3 7.8 -> 6.2
# (with FMA contraction; 7.0 without); 16->32 16x16 k5 23.0 -> 20.1-20.4;
# 3->64 64x64 k7 228-241 -> 206-214; 8->16 16x16 k3 2.2-2.3 -> 2.0-2.1; but rows of 24 (N=128 1->8 28x28 k5: 2.7-3.3
# -> 4.6-5.0, a third of each second vector wasted, and the input gradient has
# one channel) or of 8 (32->64 8x8 k5: 21 -> 28) lose, and a 32-byte-vector
# variant for such rows lost too (1->8 28x28 k5 forward 1.00 against 0.85 ms,
# LeNet's 6->16 12x12 k5 1.21 against 0.98).  The weight gradient keeps its GEMM
# on the columns.  False: always GEMM (the tests compare the two).
DIRECT = True


def _direct_fits(width, dtype):
    """Output rows of ``width`` fill the direct kernel's 64-byte vectors to >= 7/8."""
    lanes = 64 // np.dtype(dtype).itemsize
    padded = -(-width // lanes) * lanes
    return 8 * width >= 7 * padded


def _use_direct(k, stride, width, dtype):
    """The direct kernel for a conv (or an input gradient) whose output rows are ``width`` long."""
    return DIRECT and stride == (1, 1) and k != (1, 1) and _direct_fits(width, dtype)


# Work is done a chunk of images at a time, sized so that a chunk's columns (or
# transformed tiles) stay in L2 between the loop that writes them and the GEMM
# that reads them.
_CHUNK_ELEMENTS = 1 << 18
# Multiply-adds under which a conv stays in one part (see fastnn._parallel).
CONV_SPLIT_MIN_MACS = 1 << 22


class _Scratch:
    """Fresh arrays with the interface of nn.layers._Buffers (for the functional forms)."""

    @staticmethod
    def get(name, shape, dtype):
        return np.empty(shape, dtype)


def _use_winograd(c, o, k, stride, oh, ow):
    if WINOGRAD is False or k != (3, 3) or stride != (1, 1):
        return False
    return WINOGRAD is True or c >= WINOGRAD_MIN_CHANNELS


def _chunk_len(n, per_image):
    return max(1, min(n, _CHUNK_ELEMENTS // max(1, per_image)))


def _chunks(lo, hi, per_image):
    step = _chunk_len(hi - lo, per_image)
    for a in range(lo, hi, step):
        yield a, min(hi, a + step)


class _ConvState:
    """What a conv's backward needs from its forward: the path taken, its saved
    array (the (N, K, P) columns, or the (N * T, 16, C) transformed input tiles)
    and, for Winograd, the transformed weight U (16, C, O)."""

    __slots__ = ("wino", "saved", "U", "direct")

    def __init__(self, wino, saved, U=None, direct=False):
        self.wino, self.saved, self.U, self.direct = wino, saved, U, direct


def _conv_prepare(x, w, stride, padding, oh, ow, bufs):
    """The path for this conv, with its saved-array buffer (not filled yet)."""
    n, c = x.shape[:2]
    o, k = w.shape[0], (w.shape[2], w.shape[3])
    if _use_winograd(c, o, k, stride, oh, ow):
        t = ((oh + 1) // 2) * ((ow + 1) // 2)
        U = bufs.get("wino_U", (16, c, o), x.dtype)
        _conv.wino_weight(w, U)
        return _ConvState(True, bufs.get("wino_V", (n * t, 16, c), x.dtype), U)
    return _ConvState(False, bufs.get("cols", (n, c * k[0] * k[1], oh * ow), x.dtype), None,
                      _use_direct(k, stride, ow, x.dtype))


def _conv_parts(n, o, c, k, oh, ow):
    return _parallel.parts(n, n * o * c * k[0] * k[1] * oh * ow, CONV_SPLIT_MIN_MACS)


def _conv_forward_into(x, w, b, stride, padding, oh, ow, bufs, y, act, slope):
    """y = act(conv(x, w) + b) (y: (N, O, OH, OW)); returns the _ConvState for backward.

    The batch is cut into parts (one per thread, see fastnn._parallel) and each
    part into chunks.  im2col path: im2col -> GEMM W2d @ cols[n] writing NCHW ->
    bias + activation in place.  Winograd path: input transform -> 16 GEMMs
    V[:, xi] @ U[xi] -> output transform with the bias -> activation.
    """
    n, c = x.shape[:2]
    o, k = w.shape[0], (w.shape[2], w.shape[3])
    st = _conv_prepare(x, w, stride, padding, oh, ow, bufs)
    if y.size == 0:   # empty batch (or zero output channels): nothing to compute
        return st
    ranges = _conv_parts(n, o, c, k, oh, ow)
    nt = 1 if len(ranges) > 1 else _conv_threads(y.size)
    longest = max(hi - lo for lo, hi in ranges)
    if st.wino:
        V, U = st.saved, st.U
        t = V.shape[0] // n
        Vt = V.transpose(1, 0, 2)
        per = 16 * max(c, o) * t
        Ms = [bufs.get(f"wino_M{i}", (_chunk_len(longest, per) * t, 16, o), x.dtype)
              for i in range(len(ranges))]

        def part(i, lo, hi):
            for a, e in _chunks(lo, hi, per):
                M = Ms[i][:(e - a) * t]
                _conv.wino_in(x, V, a, e, padding, (oh, ow))
                np.matmul(Vt[:, a * t:e * t], U, out=M.transpose(1, 0, 2))
                _conv.wino_out(M, y, b, a, e, x.shape[2:], padding)
                if act != 0:
                    _conv.bias_act_nchw(y[a:e], None, act, slope, nt)
    else:
        cols = st.saved
        W2 = w.reshape(o, -1)
        y3 = y.reshape(n, o, -1)
        per = cols.shape[1] * cols.shape[2]

        def part(i, lo, hi):
            for a, e in _chunks(lo, hi, per):
                _conv.im2col(x[a:e], cols[a:e], k, stride, padding, oh, ow, nt)
                if st.direct:
                    _conv.conv_direct(x, w, b, y, a, e, padding, act, slope)
                    continue
                np.matmul(W2, cols[a:e], out=y3[a:e])
                if b is not None or act != 0:
                    _conv.bias_act_nchw(y[a:e], b, act, slope, nt)
    _parallel.run(part, ranges)
    return st


def _conv_backward_into(grad_y, y, x_shape, w, stride, padding, st, bufs, gw, gw_acc, gb, gb_acc,
                        need_gx, act, slope, gx=None):
    """Gradients of a conv from its forward's _ConvState.

    Writes the weight gradient into gw (O, C, kh, kw), or adds it when gw_acc;
    likewise the bias gradient into gb (may be None).  Returns the input gradient
    (N, C, H, W): gx when given, else a buffer of bufs; None when not need_gx.
    Per part of the batch (see fastnn._parallel): the activation derivative
    fused with the bias sums, then per chunk the column-gradient GEMM + col2im
    (direct: one conv of gt with the flipped weight; Winograd: the output-gradient
    transform, the 16 GEMMs and the inverse input transform), and the part's
    weight gradient; the parts' weight and bias gradients are summed.
    """
    n, o, oh, ow = grad_y.shape
    c = x_shape[1]
    k = (w.shape[2], w.shape[3])
    dt = grad_y.dtype
    ranges = _conv_parts(n, o, c, k, oh, ow)
    nparts = len(ranges)
    nt = 1 if nparts > 1 else _conv_threads(grad_y.size)
    longest = max(hi - lo for lo, hi in ranges)
    gt = grad_y if act == 0 else bufs.get("gt", grad_y.shape, dt)
    gbs = bufs.get("gb_parts", (nparts, o), dt) if gb is not None else None
    if gx is None and need_gx:
        gx = bufs.get("gx", x_shape, dt)
    if n == 0:   # empty batch: zero gradients
        for g, acc in ((gw, gw_acc), (gb, gb_acc)):
            if g is not None and not acc:
                g[...] = 0
        return gx

    def dact(i, lo, hi):
        if act != 0 or gb is not None:
            _conv.dact_nchw(grad_y[lo:hi], y[lo:hi] if act != 0 else None, gt[lo:hi],
                            None if gbs is None else gbs[i], False, act, slope, nt)

    if st.wino:
        V, U = st.saved, st.U
        t = V.shape[0] // n
        Vt = V.transpose(1, 2, 0)      # (16, C, N * T)
        Ut = U.transpose(0, 2, 1)      # (16, O, C)
        per = 16 * max(c, o) * t
        rows = _chunk_len(longest, per) * t
        gMs = [bufs.get(f"wino_gM{i}", (rows, 16, o), dt) for i in range(nparts)]
        dVs = [bufs.get(f"wino_dV{i}", (rows, 16, c), dt) for i in range(nparts)] if need_gx else None
        dUs = bufs.get("wino_dU", (nparts, 16, c, o), dt)
        tmps = [bufs.get(f"wino_dUc{i}", (16, c, o), dt) for i in range(nparts)]

        def part(i, lo, hi):
            dact(i, lo, hi)
            for a, e in _chunks(lo, hi, per):
                gM = gMs[i][:(e - a) * t]
                gMt = gM.transpose(1, 0, 2)
                _conv.wino_gout(gt, gM, a, e, x_shape[2:], padding)
                if need_gx:
                    dV = dVs[i][:(e - a) * t]
                    np.matmul(gMt, Ut, out=dV.transpose(1, 0, 2))
                    _conv.wino_gin(dV, gx, a, e, padding, (oh, ow))
                # the chunk's weight gradient while its gM is in cache
                if a == lo:
                    np.matmul(Vt[:, :, a * t:e * t], gMt, out=dUs[i])
                else:
                    np.matmul(Vt[:, :, a * t:e * t], gMt, out=tmps[i])
                    dUs[i] += tmps[i]

        _parallel.run(part, ranges)
        dU = dUs[0] if nparts == 1 else np.add.reduce(dUs, axis=0,
                                                      out=bufs.get("wino_dUsum", (16, c, o), dt))
        _conv.wino_wgrad(dU, gw, gw_acc)
    else:
        cols = st.saved
        kk, p = cols.shape[1], cols.shape[2]
        g3 = gt.reshape(n, o, p)
        W2 = w.reshape(o, kk)
        # per-image weight gradients, transposed: cols[n] @ gt[n].T (K, O) is measurably
        # faster in OpenBLAS than gt[n] @ cols[n].T (O, K) for these shapes; summed into a
        # contiguous buffer (6x faster than summing into the transposed view)
        gw_parts = bufs.get("gw_parts", (n, kk, o), dt)
        # the input gradient is the stride-1 conv of gt with the flipped, transposed
        # weight and padding k - 1 - p (direct, when that padding is not negative)
        flip = (need_gx and c >= 3 and padding[0] < k[0] and padding[1] < k[1]
                and _use_direct(k, stride, x_shape[3], dt))
        if flip:
            wf = bufs.get("w_flip", (c, o) + k, dt)
            np.copyto(wf, w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
            fpad = (k[0] - 1 - padding[0], k[1] - 1 - padding[1])
        gcs = [bufs.get(f"gcols{i}", (_chunk_len(longest, kk * p), kk, p), dt)
               for i in range(nparts)] if need_gx and not flip else None

        def part(i, lo, hi):
            dact(i, lo, hi)
            np.matmul(cols[lo:hi], g3[lo:hi].transpose(0, 2, 1), out=gw_parts[lo:hi])
            if flip:
                _conv.conv_direct(gt, wf, None, gx, lo, hi, fpad, 0, 0.0)
            elif need_gx:
                for a, e in _chunks(lo, hi, kk * p):
                    gc = gcs[i][:e - a]
                    np.matmul(W2.T, g3[a:e], out=gc)
                    _conv.col2im(gc, gx[a:e], k, stride, padding, oh, ow, nt)

        _parallel.run(part, ranges)
        gw_sum = np.add.reduce(gw_parts, axis=0, out=bufs.get("gw_sum", (kk, o), dt))
        gw2d = gw.reshape(o, kk)
        if gw_acc:
            gw2d += gw_sum.T
        else:
            np.copyto(gw2d, gw_sum.T)
    if gb is not None:
        if gb_acc:
            for part_sum in gbs:   # in place: no temporary in the training step
                gb += part_sum
        else:
            np.add.reduce(gbs, axis=0, out=gb)
    return gx


def conv2d(x, weight, bias=None, stride=1, padding=0, activation=None, negative_slope=0.01, out=None):
    """2-D convolution (cross-correlation, as torch.nn.functional.conv2d), NCHW.

    Computed as im2col into a column buffer + one batched GEMM that writes NCHW
    directly, then the bias and the activation in one in-place pass; or, where
    measured faster, by Winograd F(2x2, 3x3) (3x3 stride-1 kernels, >= 12 input
    channels) or a direct stride-1 kernel (see WINOGRAD and DIRECT above).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    weight : ndarray of shape (O, C, kh, kw)
    bias : ndarray of shape (O,), optional
    stride, padding : int or (int, int)
        stride >= 1; zero padding >= 0 on each side.
    activation : None, "identity", "relu", "leaky_relu", "sigmoid" or "tanh"
    out : ndarray of shape (N, O, OH, OW), optional
        OH = (H + 2*ph - kh) // sh + 1, OW likewise.

    Returns
    -------
    y : ndarray of shape (N, O, OH, OW)
    """
    code, slope = _act_code(activation, negative_slope)
    stride = _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    x = _check_image(x, "x")
    weight = C.as_float(weight, "weight", dtype=x.dtype)
    if weight.ndim != 4:
        raise ValueError(f"weight must be 4-D (O, C, kh, kw). Received shape {weight.shape}")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but weight expects {weight.shape[1]} "
                         f"(weight shape {weight.shape}, x shape {x.shape})")
    if bias is not None:
        bias = C.as_float(bias, "bias", dtype=x.dtype, ndim=1)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias must have shape ({weight.shape[0]},). Received: {bias.shape}")
    k, oh, ow = _conv_geometry(x.shape, weight.shape, stride, padding)
    n, o = x.shape[0], weight.shape[0]
    shape = (n, o, oh, ow)
    y = np.empty(shape, x.dtype) if out is None else C.check_out(out, shape, x.dtype)
    _conv_forward_into(x, weight, bias, stride, padding, oh, ow, _Scratch(), y, code, slope)
    return y


def conv2d_backward(grad_y, x, weight, y=None, stride=1, padding=0, activation=None,
                    negative_slope=0.01):
    """Gradients of :func:`conv2d`.

    Parameters
    ----------
    grad_y : ndarray of shape (N, O, OH, OW)
    x : ndarray of shape (N, C, H, W)
        The forward input.
    weight : ndarray of shape (O, C, kh, kw)
    y : ndarray of shape (N, O, OH, OW)
        The forward output; required when ``activation`` is not the identity.
    stride, padding, activation, negative_slope : as in :func:`conv2d`

    Returns
    -------
    grad_x : ndarray of shape (N, C, H, W)
    grad_weight : ndarray of shape (O, C, kh, kw)
    grad_bias : ndarray of shape (O,)
    """
    code, slope = _act_code(activation, negative_slope)
    stride = _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    grad_y = _check_image(grad_y, "grad_y")
    x = _check_image(x, "x", dtype=grad_y.dtype)
    weight = C.as_float(weight, "weight", dtype=grad_y.dtype)
    if weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must have shape (O, {x.shape[1]}, kh, kw). Received: {weight.shape}")
    k, oh, ow = _conv_geometry(x.shape, weight.shape, stride, padding)
    n, o = x.shape[0], weight.shape[0]
    if grad_y.shape != (n, o, oh, ow):
        raise ValueError(f"grad_y must have shape {(n, o, oh, ow)} (the conv output). "
                         f"Received: {grad_y.shape}")
    if code != 0:
        if y is None:
            raise ValueError(f"y (the forward output) is required for activation={activation!r}")
        y = C.as_float(y, "y", dtype=grad_y.dtype)
        if y.shape != grad_y.shape:
            raise ValueError(f"y must have the shape of grad_y {grad_y.shape}. Received: {y.shape}")
    bufs = _Scratch()
    st = _conv_prepare(x, weight, stride, padding, oh, ow, bufs)
    if st.wino:
        _conv.wino_in(x, st.saved, 0, n, padding, (oh, ow))
    else:
        _conv.im2col(x, st.saved, k, stride, padding, oh, ow, _conv_threads(st.saved.size))
    grad_weight = np.empty(weight.shape, x.dtype)
    grad_bias = np.empty(o, x.dtype)
    grad_x = _conv_backward_into(grad_y, y, x.shape, weight, stride, padding, st, bufs, grad_weight,
                                 False, grad_bias, False, True, code, slope)
    return grad_x, grad_weight, grad_bias


def _pool_args(kernel_size, stride, padding):
    k = _pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half the kernel size. Received padding={p} "
                         f"for kernel_size={k}")
    return k, s, p


def _pool_output_shape(x_shape, k, s, p, who):
    oh, ow = _out_size(x_shape[2:], k, s, p, who)
    return (x_shape[0], x_shape[1], oh, ow)


def _check_input_shape(input_shape):
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"input_shape must be (N, C, H, W). Received: {input_shape!r}")
    return shape


def max_pool2d(x, kernel_size, stride=None, padding=0, return_indices=False):
    """Max pooling over (kh, kw) windows (torch.nn.functional.max_pool2d, NCHW).

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), default kernel_size
    padding : int or (int, int)
        Implicit -inf padding, at most half the kernel size.
    return_indices : bool
        Also return the int32 argmax of each window (flat index into the H*W
        input plane), which :func:`max_pool2d_backward` takes.

    Returns
    -------
    y : ndarray of shape (N, C, OH, OW), and indices of the same shape when asked.
    """
    k, s, p = _pool_args(kernel_size, stride, padding)
    x = _check_image(x, "x")
    shape = _pool_output_shape(x.shape, k, s, p, "max_pool2d")
    y = np.empty(shape, x.dtype)
    idx = np.empty(shape, np.int32)
    _conv.max_pool2d(x, y, idx, k, s, p, _conv_threads(y.size * k[0] * k[1]))
    return (y, idx) if return_indices else y


def max_pool2d_backward(grad_y, indices, input_shape):
    """Gradient of :func:`max_pool2d`: ``grad_y`` routed to each window's argmax.

    Parameters
    ----------
    grad_y : ndarray of shape (N, C, OH, OW)
    indices : int32 ndarray of shape (N, C, OH, OW), from ``max_pool2d(..., return_indices=True)``
    input_shape : tuple (N, C, H, W)

    Returns
    -------
    grad_x : ndarray of shape input_shape
    """
    grad_y = _check_image(grad_y, "grad_y")
    shape = _check_input_shape(input_shape)
    indices = np.asarray(indices)
    if indices.shape != grad_y.shape or indices.dtype.kind not in "iu":
        raise ValueError(f"indices must be an integer array of shape {grad_y.shape}. "
                         f"Received: {indices.dtype} {indices.shape}")
    if shape[:2] != grad_y.shape[:2]:
        raise ValueError(f"input_shape {shape} does not match grad_y {grad_y.shape} in (N, C)")
    hw = shape[2] * shape[3]
    if indices.size and (indices.min() < 0 or indices.max() >= hw):
        raise ValueError(f"indices must lie in [0, H*W={hw}). Received values in "
                         f"[{indices.min()}, {indices.max()}]")
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    grad_x = np.empty(shape, grad_y.dtype)
    _conv.max_pool2d_backward(grad_y, indices, grad_x, _conv_threads(grad_x.size))
    return grad_x


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Average pooling (torch.nn.functional.avg_pool2d, NCHW, ceil_mode=False).

    With ``count_include_pad`` (torch's default) the zero padding counts in the
    divisor; otherwise only the input elements of the window do.

    Returns
    -------
    y : ndarray of shape (N, C, OH, OW)
    """
    k, s, p = _pool_args(kernel_size, stride, padding)
    x = _check_image(x, "x")
    y = np.empty(_pool_output_shape(x.shape, k, s, p, "avg_pool2d"), x.dtype)
    _conv.avg_pool2d(x, y, k, s, p, bool(count_include_pad), _conv_threads(y.size * k[0] * k[1]))
    return y


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool2d` with respect to its input (shape ``input_shape``)."""
    k, s, p = _pool_args(kernel_size, stride, padding)
    grad_y = _check_image(grad_y, "grad_y")
    shape = _check_input_shape(input_shape)
    expected = _pool_output_shape(shape, k, s, p, "avg_pool2d")
    if grad_y.shape != expected:
        raise ValueError(f"grad_y must have shape {expected} for input_shape {shape}. "
                         f"Received: {grad_y.shape}")
    grad_x = np.empty(shape, grad_y.dtype)
    _conv.avg_pool2d_backward(grad_y, grad_x, k, s, p, bool(count_include_pad),
                              _conv_threads(grad_x.size * k[0] * k[1]))
    return grad_x
