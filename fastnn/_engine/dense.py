"""The dense layer engine, shared by ``fastnn.ops.linear*`` and ``nn.Linear``.

Takes validated arrays and writes into the outputs it is given; the GEMMs go to
BLAS through :func:`fastnn._engine.parallel.matmul`, everything around them is
one fused kernel pass.
"""
import numpy as np

from fastnn._engine import codes, parallel
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _dense

IDENTITY = codes.ACTIVATIONS["identity"]


def linear_forward(x, w, b, y, act, slope):
    """``y = act(x @ w.T + b)`` into ``y`` (n, out); ``b`` may be None."""
    parallel.matmul(x, w.T, y)
    if b is not None or act != IDENTITY:
        _dense.bias_act_forward(y, b, act, slope, n_threads_for(y.size))
    return y


def _weight_grad(x, gz, gw, accumulate, bufs):
    """gw (out, in) = gz.T @ x, or += when ``accumulate``; the product is written
    in whichever orientation makes the output C-contiguous for BLAS."""
    f_order = gw.T.flags.c_contiguous     # Linear's weights (and grads) are Fortran-ordered
    a, b, target = (x.T, gz, gw.T) if f_order else (gz.T, x, gw)
    if accumulate:
        tmp = bufs.get("gw_tmp", target.shape, gw.dtype)
        parallel.matmul(a, b, tmp)
        np.add(target, tmp, out=target)
    else:
        parallel.matmul(a, b, target)


def linear_backward(grad_y, x, w, y, act, slope, gw, gw_acc, gb, gb_acc, gx, bufs):
    """Gradients of :func:`linear_forward` from its output ``y``.

    Writes (or, with ``*_acc``, adds) the weight gradient into ``gw`` and the
    bias gradient into ``gb`` (None: no bias); writes the input gradient into
    ``gx`` unless it is None.  ``bufs`` supplies the work arrays.
    """
    nt = n_threads_for(grad_y.size)
    if act == IDENTITY:
        gz = grad_y
        if gb is not None:
            _dense.act_backward_bias(gz, None, None, gb, gb_acc, act, 0.0, nt)
    else:
        gz = bufs.get("gz", grad_y.shape, grad_y.dtype)
        _dense.act_backward_bias(grad_y, y, gz, gb, gb_acc, act, slope, nt)
    _weight_grad(x, gz, gw, gw_acc, bufs)
    if gx is not None:
        parallel.matmul(gz, w, gx)
    return gx
