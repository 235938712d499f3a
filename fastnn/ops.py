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
from fastnn._engine import codes
from fastnn._engine import conv as econv
from fastnn._engine import dense
from fastnn._engine import loss as eloss
from fastnn._engine.buffers import Scratch
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _conv, _data, _dense, _loss, _optim

ACTIVATIONS = tuple(codes.ACTIVATIONS)


def _act_code(activation, negative_slope):
    try:
        code = codes.ACTIVATIONS["identity" if activation is None else activation]
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
    return dense.linear_forward(x, weight, bias, out, code, slope)


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
    grad_x = np.empty(x.shape, grad_y.dtype)
    grad_weight = np.empty(weight.shape, grad_y.dtype)
    grad_bias = np.empty(out_f, grad_y.dtype)
    dense.linear_backward(grad_y, x, weight, y, code, slope, grad_weight, False, grad_bias, False,
                          grad_x, Scratch())
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
    kind, t = C.ce_target(logits, target)
    grad = np.empty_like(logits) if out is None else C.check_out(out, logits.shape, logits.dtype)
    loss, _ = eloss.softmax_cross_entropy(logits, kind, t, grad, n_threads_for(logits.size))
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
    total = _loss.elem_loss(codes.ELEM_LOSSES["mse"], pred.reshape(-1), target.reshape(-1),
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
    _optim.multi_update(codes.OPTIMIZERS[kind], [param], [grad],
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


def conv2d(x, weight, bias=None, stride=1, padding=0, activation=None, negative_slope=0.01, out=None):
    """2-D convolution (cross-correlation, as torch.nn.functional.conv2d), NCHW.

    Computed as im2col into a column buffer + one batched GEMM that writes NCHW
    directly, then the bias and the activation in one in-place pass; or, where
    measured faster, by Winograd F(2x2, 3x3) (3x3 stride-1 kernels, >= 12 input
    channels) or a direct stride-1 kernel (policy: fastnn._engine.conv).

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
    stride = C.int_pair(stride, "stride", 1)
    padding = C.int_pair(padding, "padding", 0)
    x = C.image(x, "x")
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
    k, oh, ow = C.conv_geometry(x.shape, weight.shape, stride, padding)
    n, o = x.shape[0], weight.shape[0]
    shape = (n, o, oh, ow)
    y = np.empty(shape, x.dtype) if out is None else C.check_out(out, shape, x.dtype)
    econv.forward_into(x, weight, bias, stride, padding, oh, ow, Scratch(), y, code, slope)
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
    stride = C.int_pair(stride, "stride", 1)
    padding = C.int_pair(padding, "padding", 0)
    grad_y = C.image(grad_y, "grad_y")
    x = C.image(x, "x", dtype=grad_y.dtype)
    weight = C.as_float(weight, "weight", dtype=grad_y.dtype)
    if weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must have shape (O, {x.shape[1]}, kh, kw). Received: {weight.shape}")
    k, oh, ow = C.conv_geometry(x.shape, weight.shape, stride, padding)
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
    bufs = Scratch()
    st = econv.state_for_backward(x, weight, stride, padding, oh, ow, bufs)
    grad_weight = np.empty(weight.shape, x.dtype)
    grad_bias = np.empty(o, x.dtype)
    grad_x = econv.backward_into(grad_y, y, x.shape, weight, stride, padding, st, bufs, grad_weight,
                                 False, grad_bias, False, True, code, slope)
    return grad_x, grad_weight, grad_bias


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
    k, s, p = C.pool_args(kernel_size, stride, padding)
    x = C.image(x, "x")
    shape = C.pool_output_shape(x.shape, k, s, p, "max_pool2d")
    y = np.empty(shape, x.dtype)
    idx = np.empty(shape, np.int32)
    _conv.max_pool2d(x, y, idx, k, s, p, econv.pass_threads(y.size * k[0] * k[1]))
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
    grad_y = C.image(grad_y, "grad_y")
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
    _conv.max_pool2d_backward(grad_y, indices, grad_x, econv.pass_threads(grad_x.size))
    return grad_x


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Average pooling (torch.nn.functional.avg_pool2d, NCHW, ceil_mode=False).

    With ``count_include_pad`` (torch's default) the zero padding counts in the
    divisor; otherwise only the input elements of the window do.

    Returns
    -------
    y : ndarray of shape (N, C, OH, OW)
    """
    k, s, p = C.pool_args(kernel_size, stride, padding)
    x = C.image(x, "x")
    y = np.empty(C.pool_output_shape(x.shape, k, s, p, "avg_pool2d"), x.dtype)
    _conv.avg_pool2d(x, y, k, s, p, bool(count_include_pad), econv.pass_threads(y.size * k[0] * k[1]))
    return y


def avg_pool2d_backward(grad_y, input_shape, kernel_size, stride=None, padding=0,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool2d` with respect to its input (shape ``input_shape``)."""
    k, s, p = C.pool_args(kernel_size, stride, padding)
    grad_y = C.image(grad_y, "grad_y")
    shape = _check_input_shape(input_shape)
    expected = C.pool_output_shape(shape, k, s, p, "avg_pool2d")
    if grad_y.shape != expected:
        raise ValueError(f"grad_y must have shape {expected} for input_shape {shape}. "
                         f"Received: {grad_y.shape}")
    grad_x = np.empty(shape, grad_y.dtype)
    _conv.avg_pool2d_backward(grad_y, grad_x, k, s, p, bool(count_include_pad),
                              econv.pass_threads(grad_x.size * k[0] * k[1]))
    return grad_x
