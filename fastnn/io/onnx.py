"""ONNX export of fastnn models (``fastnn.io.export_onnx``).

The graph is built node by node with ``onnx.helper`` from the layers' public
attributes and weights, checked with ``onnx.checker.check_model`` (full check,
shape inference included) and written crash-safely.  ``onnx`` is imported only
when :func:`export_onnx` runs; fastnn itself never needs it.

Each built-in layer maps to standard ONNX operators: Linear -> Gemm, the
activations -> Relu/LeakyRelu/Sigmoid/Tanh, Dropout -> nothing (eval mode is
the identity), Conv2d -> Conv, MaxPool2d -> MaxPool, AvgPool2d -> AveragePool,
Flatten -> Flatten/Reshape, BatchNorm with running statistics ->
BatchNormalization, the other normalizations -> ReduceMean/Sub/Div arithmetic
(the same statistics fastnn computes), RNN -> RNN, LSTM -> LSTM (gates
reordered from torch's i, f, g, o to ONNX's i, o, f, c).
"""
import os
import uuid

import numpy as np

from fastnn import nn
from fastnn._version import __version__

_INSTALL_HINT = 'pip install "fastnn-cpu[onnx]"'
_MIN_OPSET = 13  # Squeeze/Unsqueeze take axes as an input from 13 on; older opsets are not emitted


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:
        raise ImportError(f"fastnn.io.export_onnx needs the onnx package ({e}). Install it with: "
                          f"{_INSTALL_HINT}") from e
    return onnx, helper, numpy_helper


# --------------------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------------------

class _Graph:
    """Nodes and initializers of one graph, with unique names and opset-aware helpers."""

    def __init__(self, onnx, helper, numpy_helper, dtype, opset):
        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.dtype = dtype
        self.elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
        self.opset = opset
        self.nodes, self.inits = [], []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint):
        name = self._name(hint)
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, array, hint):
        """An initializer in the model's dtype (parameters are already of it; this casts ones/zeros)."""
        return self.const(np.asarray(array, dtype=self.dtype), hint)

    def node(self, op, inputs, hint, n_out=1, **attrs):
        outs = [self._name(f"{hint}_{op}") for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op, list(inputs), outs, name=self._name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def reduce_mean(self, x, axes, hint):
        axes = [int(a) for a in axes]
        if self.opset >= 18:  # axes became an input in opset 18
            return self.node("ReduceMean", [x, self.const(np.array(axes, np.int64), "axes")], hint, keepdims=1)
        return self.node("ReduceMean", [x], hint, axes=axes, keepdims=1)

    def normalize(self, x, axes, eps, hint):
        """``(x - mean) / sqrt(var + eps)`` with the mean and biased variance over ``axes``."""
        mean = self.reduce_mean(x, axes, hint)
        d = self.node("Sub", [x, mean], hint)
        var = self.reduce_mean(self.node("Mul", [d, d], hint), axes, hint)
        std = self.node("Sqrt", [self.node("Add", [var, self.weight(eps, f"{hint}_eps")], hint)], hint)
        return self.node("Div", [d, std], hint)

    def affine(self, x, weight, bias, shape, hint):
        """``x * weight + bias`` with the parameters reshaped to ``shape`` (broadcasting); None skips."""
        if weight is not None:
            x = self.node("Mul", [x, self.weight(weight.data.reshape(shape), f"{hint}_weight")], hint)
        if bias is not None:
            x = self.node("Add", [x, self.weight(bias.data.reshape(shape), f"{hint}_bias")], hint)
        return x


# --------------------------------------------------------------------------------------
# Layers: each takes (graph, layer, input name, static shape with None for the batch,
# where) and returns (output name(s), output shape).
# --------------------------------------------------------------------------------------

def _expect(cond, where, layer, expected, shape):
    if not cond:
        raise ValueError(f"{where} ({type(layer).__name__}) expects input of shape {expected}; "
                         f"the input_shape given makes its input {_fmt(shape)}")


def _fmt(shape):
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _window(size, k, s, p, where, layer, shape):
    if size + 2 * p < k:
        raise ValueError(f"{where} ({type(layer).__name__}): the window {k} is larger than the padded "
                         f"input size {size} + 2*{p} (input {_fmt(shape)})")
    return (size + 2 * p - k) // s + 1


def _linear(g, m, x, shape, where):
    _expect(len(shape) == 2 and shape[1] == m.in_features, where, m, f"(N, {m.in_features})", shape)
    inputs = [x, g.weight(m.weight.data, "linear_weight")]
    if m.bias is not None:
        inputs.append(g.weight(m.bias.data, "linear_bias"))
    return g.node("Gemm", inputs, "linear", transB=1), (shape[0], m.out_features)


def _activation(op):
    def convert(g, m, x, shape, where):
        return g.node(op, [x], op.lower()), shape
    return convert


def _leaky_relu(g, m, x, shape, where):
    if g.dtype == np.float32:
        return g.node("LeakyRelu", [x], "leakyrelu", alpha=float(m.negative_slope)), shape
    # LeakyRelu's alpha is a float32 attribute: in float64 the slope is a double constant instead
    positive = g.node("Greater", [x, g.weight(0.0, "zero")], "leakyrelu")
    scaled = g.node("Mul", [x, g.weight(m.negative_slope, "leakyrelu_slope")], "leakyrelu")
    return g.node("Where", [positive, x, scaled], "leakyrelu"), shape


def _dropout(g, m, x, shape, where):
    return x, shape  # eval mode: the identity


def _conv2d(g, m, x, shape, where):
    _expect(len(shape) == 4 and shape[1] == m.in_channels, where, m, f"(N, {m.in_channels}, H, W)", shape)
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    oh = _window(shape[2], kh, sh, ph, where, m, shape)
    ow = _window(shape[3], kw, sw, pw, where, m, shape)
    inputs = [x, g.weight(m.weight.data, "conv_weight")]
    if m.bias is not None:
        inputs.append(g.weight(m.bias.data, "conv_bias"))
    y = g.node("Conv", inputs, "conv", kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
               dilations=[1, 1], group=1)
    return y, (shape[0], m.out_channels, oh, ow)


def _pool(op):
    def convert(g, m, x, shape, where):
        _expect(len(shape) == 4, where, m, "(N, C, H, W)", shape)
        (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
        oh = _window(shape[2], kh, sh, ph, where, m, shape)
        ow = _window(shape[3], kw, sw, pw, where, m, shape)
        attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw], ceil_mode=0)
        if op == "AveragePool":
            attrs["count_include_pad"] = int(m.count_include_pad)
        return g.node(op, [x], op.lower(), **attrs), (shape[0], shape[1], oh, ow)
    return convert


def _flatten(g, m, x, shape, where):
    nd = len(shape)
    s = m.start_dim + nd if m.start_dim < 0 else m.start_dim
    e = m.end_dim + nd if m.end_dim < 0 else m.end_dim
    if not (0 <= s < nd and 0 <= e < nd) or s > e:
        raise ValueError(f"{where} (Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})) does not fit "
                         f"its input of shape {_fmt(shape)}")
    if s == 0 and e > 0:
        raise ValueError(f"{where} (Flatten(start_dim={m.start_dim})) merges the batch dimension into "
                         f"another one, which cannot be exported with a dynamic batch size")
    if s == e:
        return x, shape
    out = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    if s == 1 and e == nd - 1:
        return g.node("Flatten", [x], "flatten", axis=1), out
    # 0 copies the input's dimension (the batch and the other leading ones)
    target = [0] * s + list(out[s:])
    return g.node("Reshape", [x, g.const(np.array(target, np.int64), "flatten_shape")], "flatten"), out


def _channel_shape(rank):
    return (-1,) + (1,) * (rank - 2)


def _batchnorm(g, m, x, shape, where):
    ranks = (4,) if isinstance(m, nn.BatchNorm2d) else (2, 3)
    expected = "(N, C, H, W)" if ranks == (4,) else "(N, C) or (N, C, L)"
    _expect(len(shape) in ranks and shape[1] == m.num_features, where, m,
            expected.replace("C", str(m.num_features)), shape)
    if m.track_running_stats:
        return _running_norm(g, m, x, "batchnorm"), shape
    # track_running_stats=False: batch statistics in eval mode too, as fastnn and torch do
    y = g.normalize(x, [0] + list(range(2, len(shape))), m.eps, "batchnorm")
    return g.affine(y, m.weight, m.bias, _channel_shape(len(shape)), "batchnorm"), shape


def _running_norm(g, m, x, hint):
    c = m.num_features
    scale = m.weight.data if m.weight is not None else np.ones(c)
    bias = m.bias.data if m.bias is not None else np.zeros(c)
    inputs = [x, g.weight(scale, f"{hint}_scale"), g.weight(bias, f"{hint}_bias"),
              g.weight(m.running_mean, f"{hint}_mean"), g.weight(m.running_var, f"{hint}_var")]
    return g.node("BatchNormalization", inputs, hint, epsilon=float(m.eps))


def _instancenorm(g, m, x, shape, where):
    _expect(len(shape) == 4 and shape[1] == m.num_features, where, m, f"(N, {m.num_features}, H, W)", shape)
    if m.track_running_stats:  # eval with running statistics: a per-channel normalization
        return _running_norm(g, m, x, "instancenorm"), shape
    y = g.normalize(x, [2, 3], m.eps, "instancenorm")
    return g.affine(y, m.weight, m.bias, _channel_shape(4), "instancenorm"), shape


def _groupnorm(g, m, x, shape, where):
    _expect(len(shape) >= 2 and shape[1] == m.num_channels, where, m, f"(N, {m.num_channels}, *)", shape)
    grouped = g.node("Reshape", [x, g.const(np.array([0, m.num_groups, -1], np.int64), "groupnorm_shape")],
                     "groupnorm")
    y = g.normalize(grouped, [2], m.eps, "groupnorm")
    y = g.node("Reshape", [y, g.const(np.array([0] + list(shape[1:]), np.int64), "groupnorm_shape")],
               "groupnorm")
    return g.affine(y, m.weight, m.bias, _channel_shape(len(shape)), "groupnorm"), shape


def _layernorm(g, m, x, shape, where):
    k = len(m.normalized_shape)
    _expect(len(shape) > k and tuple(shape[len(shape) - k:]) == m.normalized_shape, where, m,
            f"(N, *, {', '.join(map(str, m.normalized_shape))})", shape)
    y = g.normalize(x, range(len(shape) - k, len(shape)), m.eps, "layernorm")
    return g.affine(y, m.weight, m.bias, m.normalized_shape, "layernorm"), shape


_LSTM_GATES = [0, 3, 1, 2]  # torch's (i, f, g, o) blocks in ONNX's order (i, o, f, c)


def _recurrent(g, m, x, shape, where):
    is_lstm = isinstance(m, nn.LSTM)
    layout = "(N, T, input_size)" if m.batch_first else "(T, N, input_size)"
    _expect(len(shape) == 3 and shape[2] == m.input_size, where, m,
            layout.replace("input_size", str(m.input_size)), shape)
    H, I = m.hidden_size, m.input_size
    hint = "lstm" if is_lstm else "rnn"

    def onnx_order(a, cols):
        a = np.asarray(a)
        return a.reshape(4, H, cols)[_LSTM_GATES].reshape(4 * H, cols) if is_lstm else a

    w = onnx_order(m.weight_ih_l0.data, I)[None]
    r = onnx_order(m.weight_hh_l0.data, H)[None]
    inputs = [g.node("Transpose", [x], hint, perm=[1, 0, 2]) if m.batch_first else x,
              g.weight(w, f"{hint}_W"), g.weight(r, f"{hint}_R")]
    if m.bias:
        b = np.concatenate([onnx_order(m.bias_ih_l0.data, 1).reshape(-1),
                            onnx_order(m.bias_hh_l0.data, 1).reshape(-1)])[None]
        inputs.append(g.weight(b, f"{hint}_B"))
    if is_lstm:
        y, h_n, c_n = g.node("LSTM", inputs, hint, n_out=3, hidden_size=H)
    else:
        act = "Relu" if m.nonlinearity == "relu" else "Tanh"
        y, h_n = g.node("RNN", inputs, hint, n_out=2, hidden_size=H, activations=[act])
    # Y is (T, num_directions=1, N, H)
    y = g.node("Squeeze", [y, g.const(np.array([1], np.int64), "axes")], hint)
    if m.batch_first:
        y = g.node("Transpose", [y], hint, perm=[1, 0, 2])
    t = shape[1] if m.batch_first else shape[0]
    y_shape = (None, t, H) if m.batch_first else (t, None, H)
    outs = [(y, y_shape), (h_n, (1, None, H))]
    if is_lstm:
        outs.append((c_n, (1, None, H)))
    return outs, None


_CONVERTERS = {
    nn.Linear: _linear,
    nn.ReLU: _activation("Relu"),
    nn.LeakyReLU: _leaky_relu,
    nn.Sigmoid: _activation("Sigmoid"),
    nn.Tanh: _activation("Tanh"),
    nn.Dropout: _dropout,
    nn.Conv2d: _conv2d,
    nn.MaxPool2d: _pool("MaxPool"),
    nn.AvgPool2d: _pool("AveragePool"),
    nn.Flatten: _flatten,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.InstanceNorm2d: _instancenorm,
    nn.GroupNorm: _groupnorm,
    nn.LayerNorm: _layernorm,
    nn.RNN: _recurrent,
    nn.LSTM: _recurrent,
}


# --------------------------------------------------------------------------------------
# Checks of the model and the arguments (all before anything is built or written)
# --------------------------------------------------------------------------------------

def _leaves(module, prefix):
    """(where, layer) of every layer in forward order, nested Sequentials flattened."""
    if type(module) is nn.Sequential:
        out = []
        for i, child in enumerate(module):  # Sequential names its children "0", "1", ...
            out.extend(_leaves(child, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return [(f"layer {prefix!r}" if prefix else "the model", module)]


def _check_layers(leaves):
    for k, (where, m) in enumerate(leaves):
        if type(m) not in _CONVERTERS:
            base = next((c.__name__ for c in type(m).__mro__[1:] if c in _CONVERTERS or c is nn.Sequential), None)
            why = (f"a subclass of fastnn.nn.{base} (its forward may differ from the built-in one)" if base
                   else "not a built-in fastnn layer")
            raise TypeError(f"export_onnx cannot export {where}: {type(m).__name__} is {why}. Supported: "
                            f"{', '.join(sorted(c.__name__ for c in _CONVERTERS))} and nested Sequential")
        if isinstance(m, (nn.RNN, nn.LSTM)) and k != len(leaves) - 1:
            raise TypeError(f"export_onnx cannot export {where}: {type(m).__name__} returns (output, state), "
                            f"so it must be the model's last layer; found {len(leaves) - 1 - k} layer(s) after it")
        stateful = ((isinstance(m, nn.Dropout) and m.p > 0.0)
                    or (isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d))
                        and m.track_running_stats))
        if stateful and m.training:
            raise ValueError(f"export_onnx exports inference (eval mode) semantics, but {where} "
                             f"({type(m).__name__}) is in training mode. Call model.eval() first")


# ONNX defines these operators for double too, but onnxruntime (the reference
# runtime) has float32 kernels only, so a float64 graph with them could not run there
_FLOAT32_ONLY = {nn.Conv2d: "Conv", nn.AvgPool2d: "AveragePool", nn.RNN: "RNN", nn.LSTM: "LSTM"}


def _model_dtype(model, leaves):
    dtypes = {a.dtype for k, a in model.state_dict().items() if a.dtype.kind == "f"}
    dtypes |= {np.dtype(m.dtype) for _, m in leaves if isinstance(getattr(m, "dtype", None), np.dtype)}
    if len(dtypes) > 1:
        raise TypeError(f"export_onnx needs one dtype for the whole model. Received a model with "
                        f"{sorted(d.name for d in dtypes)}")
    dt = dtypes.pop() if dtypes else np.dtype(np.float32)  # no parameters at all: float32
    if dt not in (np.float32, np.float64):
        raise TypeError(f"export_onnx exports float32 or float64 models. Received: {dt}")
    if dt == np.float64:
        for where, m in leaves:
            if type(m) in _FLOAT32_ONLY:
                raise TypeError(f"export_onnx cannot export {where} ({type(m).__name__}) in float64: "
                                f"onnxruntime runs ONNX {_FLOAT32_ONLY[type(m)]} in float32 only. Export a "
                                f"float32 copy (the same layers with dtype=np.float32, then "
                                f"load_state_dict of the weights cast to float32)")
    return dt


def _check_input_shape(input_shape, batch_axis):
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"input_shape must be a tuple such as (None, 10) or (None, 1, 28, 28). "
                        f"Received: {input_shape!r}")
    shape = tuple(input_shape)
    if len(shape) < 2:
        raise ValueError(f"input_shape must have a batch dimension and at least one more. Received: {shape!r}")
    if batch_axis >= len(shape):
        raise ValueError(f"input_shape {shape!r} has no batch dimension at index {batch_axis}")
    out = []
    for i, d in enumerate(shape):
        if d is None and i == batch_axis:
            out.append(None)
            continue
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            what = "None or a positive int (the batch size is exported as dynamic)" if i == batch_axis \
                else "a positive int"
            raise TypeError(f"input_shape[{i}] must be {what}. Received: {d!r} in {shape!r}")
        if d < 1:
            raise ValueError(f"input_shape[{i}] must be positive. Received: {d!r} in {shape!r}")
        out.append(None if i == batch_axis else int(d))
    return tuple(out)


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike. Received: {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory; export_onnx expects a file path, e.g. "
                         f"{os.path.join(path, 'model.onnx')!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {path!r} does not exist: {folder!r}")
    return path


def _value_info(helper, elem, name, shape):
    dims = ["N" if d is None else d for d in shape]
    return helper.make_tensor_value_info(name, elem, dims)


# --------------------------------------------------------------------------------------
# Public
# --------------------------------------------------------------------------------------

def export_onnx(model, path, input_shape, opset=17):
    """Write ``model`` as an ONNX graph with a dynamic batch dimension.

    The graph computes the model's forward in eval mode: onnxruntime's output
    equals ``model(x)`` within float rounding.  Export needs the ``onnx``
    package (``pip install "fastnn-cpu[onnx]"``, which also installs
    onnxruntime to run the file); it is imported only here.

    Parameters
    ----------
    model : fastnn.nn.Module
        A built-in layer or a ``Sequential`` (nested too) of Linear, ReLU,
        LeakyReLU, Sigmoid, Tanh, Dropout, BatchNorm1d, BatchNorm2d, LayerNorm,
        GroupNorm, InstanceNorm2d, Conv2d, MaxPool2d, AvgPool2d, Flatten, and RNN
        or LSTM as the last layer.  Layers whose train and eval behaviour differ
        (Dropout with p > 0, BatchNorm and InstanceNorm2d with running
        statistics) must be in eval mode: call ``model.eval()`` first.  The
        model is never changed (its mode included).
    path : str or os.PathLike
        The ``.onnx`` file, written crash-safely (a temporary file in the same
        folder, then ``os.replace``).
    input_shape : tuple
        The shape of the model's input including the batch dimension, which
        may be None, e.g. ``(None, 10)``, ``(None, 1, 28, 28)``; an RNN/LSTM
        with ``batch_first=False`` takes ``(seq_len, None, input_size)``.  The
        batch dimension is exported as the dynamic dimension ``"N"``; the others
        are fixed.
    opset : int, default 17
        ONNX opset of the graph, from 13 to the newest one the installed onnx
        knows.

    Returns
    -------
    str
        The path written.

    Notes
    -----
    The graph's input is named ``"input"``; its output ``"output"``, or
    ``"output"``, ``"h_n"`` (and ``"c_n"`` for LSTM) for a model that ends in
    a recurrent layer, as fastnn's forward returns them.  The recurrent layers'
    initial state is zeros (the ``forward(x)`` default).  Weights are stored in
    the model's dtype (float32 or float64; a model without parameters exports
    as float32).  A float64 model with Conv2d, AvgPool2d, RNN or LSTM is
    refused: onnxruntime has float32 kernels only for those operators.

    Raises
    ------
    ImportError
        onnx is not installed.
    TypeError
        A layer that cannot be exported (a user Module, a subclass of a
        built-in layer, a recurrent layer that is not last), named with its
        position, e.g. ``layer '2.1'``; a model of mixed or non-float dtypes; a
        float64 model with Conv2d, AvgPool2d, RNN or LSTM; an argument of the
        wrong type.
    ValueError
        A layer in training mode (see ``model``), an ``input_shape`` that does
        not fit the model (naming the layer), a path that is a directory, an
        opset out of range.
    FileNotFoundError
        The folder of ``path`` does not exist.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx expects a fastnn.nn.Module. Received: {type(model).__name__}")
    path = _check_path(path)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int. Received: {opset!r}")
    onnx, helper, numpy_helper = _import_onnx()
    newest = onnx.defs.onnx_opset_version()
    if not _MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be between {_MIN_OPSET} and {newest} (the newest this onnx "
                         f"{onnx.__version__} knows). Received: {opset}")
    opset = int(opset)

    leaves = _leaves(model, "")
    if not leaves:
        raise ValueError("export_onnx: the model is an empty Sequential")
    _check_layers(leaves)
    dtype = _model_dtype(model, leaves)
    first = leaves[0][1]
    batch_axis = 1 if isinstance(first, (nn.RNN, nn.LSTM)) and not first.batch_first else 0
    shape = _check_input_shape(input_shape, batch_axis)

    g = _Graph(onnx, helper, numpy_helper, dtype, opset)
    x, cur = "input", shape
    outputs = None
    for where, m in leaves:
        x, cur = _CONVERTERS[type(m)](g, m, x, cur, where)
        if cur is None:  # a recurrent layer: several outputs, and it is the last layer
            outputs = x
    if outputs is None:
        outputs = [(x, cur)]
    names = ["output", "h_n", "c_n"][:len(outputs)]
    out_infos = []
    for (src, shp), name in zip(outputs, names):
        g.nodes.append(helper.make_node("Identity", [src], [name], name=f"{name}_Identity"))
        out_infos.append(_value_info(helper, g.elem, name, shp))

    graph = helper.make_graph(g.nodes, f"fastnn_{type(model).__name__}",
                              [_value_info(helper, g.elem, "input", shape)], out_infos, g.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastnn", producer_version=__version__)
    # the oldest IR version that carries this opset, so older runtimes read the file too
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)

    folder = os.path.dirname(os.path.abspath(path))
    # a fresh name opened with "xb" (not mkstemp, whose 0600 mode the final file would keep)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:  # a named file: onnx.save reads f.name
            onnx.save(proto, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
