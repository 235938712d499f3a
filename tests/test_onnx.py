"""fastnn.io.export_onnx: onnxruntime's output equals fastnn's eval-mode forward."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fastnn import nn  # noqa: E402
from fastnn.io import export_onnx  # noqa: E402

BATCHES = (1, 7)


def _session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _flat(out):
    if isinstance(out, tuple):
        return [a for part in out for a in _flat(part)]
    return [out]


def _check(model, input_shape, tmp_path, dtype=np.float32, batches=BATCHES, tol=None, seed=0):
    """Export, run at each batch size, compare every output with fastnn's forward."""
    path = str(tmp_path / "model.onnx")
    assert export_onnx(model, path, input_shape) == path
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    batch_axis = list(input_shape).index(None)
    assert dims[batch_axis].dim_param == "N"
    sess = _session(path)
    tol = tol if tol is not None else (1e-5 if dtype == np.float32 else 1e-10)
    rng = np.random.default_rng(seed)
    for n in batches:
        shape = list(input_shape)
        shape[batch_axis] = n
        x = rng.standard_normal(shape).astype(dtype)
        ref = _flat(model(x))
        got = sess.run(None, {"input": x})
        assert len(got) == len(ref)
        for r, o in zip(ref, got):
            assert o.dtype == dtype and o.shape == r.shape
            scale = max(1.0, float(np.max(np.abs(r))))
            np.testing.assert_allclose(o, r, rtol=0, atol=tol * scale)
    return proto


def _fill_running(bn, seed):
    rng = np.random.default_rng(seed)
    bn.running_mean[...] = rng.standard_normal(bn.num_features)
    bn.running_var[...] = rng.uniform(0.5, 2.0, bn.num_features)
    if bn.weight is not None:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.num_features)
        bn.bias.data[...] = rng.standard_normal(bn.num_features)


# --------------------------------------------------------------------------------------
# each layer kind
# --------------------------------------------------------------------------------------

LAYERS = {
    "linear": lambda: (nn.Linear(6, 4, seed=0), (None, 6)),
    "linear_nobias": lambda: (nn.Linear(6, 4, bias=False, seed=1), (None, 6)),
    "relu": lambda: (nn.Sequential(nn.Linear(6, 5, seed=0), nn.ReLU()), (None, 6)),
    "leaky_relu": lambda: (nn.Sequential(nn.Linear(6, 5, seed=0), nn.LeakyReLU(0.2)), (None, 6)),
    "sigmoid": lambda: (nn.Sigmoid(), (None, 3, 4)),
    "tanh": lambda: (nn.Tanh(), (None, 5)),
    "dropout": lambda: (nn.Sequential(nn.Linear(6, 5, seed=0), nn.Dropout(0.5, seed=0)), (None, 6)),
    "conv": lambda: (nn.Conv2d(3, 4, 3, seed=0), (None, 3, 8, 8)),
    "conv_stride_pad": lambda: (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), seed=0), (None, 2, 7, 6)),
    "maxpool": lambda: (nn.MaxPool2d(3, stride=2, padding=1), (None, 2, 7, 7)),
    "avgpool_include_pad": lambda: (nn.AvgPool2d(3, stride=2, padding=1), (None, 2, 7, 7)),
    "avgpool_exclude_pad": lambda: (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (None, 2, 7, 7)),
    "flatten": lambda: (nn.Flatten(), (None, 2, 3, 4)),
    "flatten_partial": lambda: (nn.Flatten(1, 2), (None, 2, 3, 4)),
    "flatten_tail": lambda: (nn.Flatten(2, 3), (None, 2, 3, 4)),
    "batchnorm1d": lambda: (nn.BatchNorm1d(5), (None, 5)),
    "batchnorm1d_3d": lambda: (nn.BatchNorm1d(3), (None, 3, 6)),
    "batchnorm2d": lambda: (nn.BatchNorm2d(3), (None, 3, 5, 5)),
    "batchnorm2d_no_affine": lambda: (nn.BatchNorm2d(3, affine=False), (None, 3, 5, 5)),
    "batchnorm2d_batch_stats": lambda: (nn.BatchNorm2d(3, track_running_stats=False), (None, 3, 5, 5)),
    "layernorm": lambda: (nn.LayerNorm(6), (None, 6)),
    "layernorm_2d": lambda: (nn.LayerNorm((4, 5)), (None, 3, 4, 5)),
    "layernorm_nobias": lambda: (nn.LayerNorm(6, bias=False), (None, 2, 6)),
    "groupnorm": lambda: (nn.GroupNorm(2, 4), (None, 4, 5, 5)),
    "groupnorm_2d": lambda: (nn.GroupNorm(3, 6, affine=False), (None, 6)),
    "instancenorm": lambda: (nn.InstanceNorm2d(3), (None, 3, 5, 5)),
    "instancenorm_affine": lambda: (nn.InstanceNorm2d(3, affine=True), (None, 3, 5, 5)),
    "instancenorm_running": lambda: (nn.InstanceNorm2d(3, track_running_stats=True, affine=True), (None, 3, 5, 5)),
}


def _randomize_norm(model, seed=1):
    """Non-trivial affine parameters and running statistics (the defaults are ones and zeros)."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None:
            _fill_running(m, seed)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.weight.data.shape)
            if m.bias is not None:
                m.bias.data[...] = rng.standard_normal(m.bias.data.shape)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_each_layer_matches_forward(kind, tmp_path):
    model, shape = LAYERS[kind]()
    _randomize_norm(model)
    model.eval()
    _check(model, shape, tmp_path)


@pytest.mark.parametrize("kind", ["linear", "leaky_relu", "batchnorm1d_3d", "batchnorm2d", "layernorm_2d",
                                  "groupnorm", "instancenorm_affine", "instancenorm_running", "maxpool"])
def test_float64_model_exports_float64(kind, tmp_path):
    model, shape = LAYERS[kind]()
    if kind == "maxpool":  # parameter-free layers export as float32; a float64 layer in front decides
        model = nn.Sequential(nn.GroupNorm(1, 2, dtype=np.float64), model)
    else:
        model = _same_layers_float64(model)
    _randomize_norm(model)
    model.eval()
    proto = _check(model, shape, tmp_path, dtype=np.float64)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def _same_layers_float64(model):
    builders = {
        nn.Linear: lambda m: nn.Linear(m.in_features, m.out_features, m.bias is not None, dtype=np.float64, seed=0),
        nn.BatchNorm1d: lambda m: nn.BatchNorm1d(m.num_features, dtype=np.float64),
        nn.BatchNorm2d: lambda m: nn.BatchNorm2d(m.num_features, dtype=np.float64),
        nn.LayerNorm: lambda m: nn.LayerNorm(m.normalized_shape, dtype=np.float64),
        nn.GroupNorm: lambda m: nn.GroupNorm(m.num_groups, m.num_channels, dtype=np.float64),
        nn.InstanceNorm2d: lambda m: nn.InstanceNorm2d(m.num_features, affine=m.affine,
                                                       track_running_stats=m.track_running_stats,
                                                       dtype=np.float64),
    }
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    return nn.Sequential(*[builders[type(m)](m) if type(m) in builders else m for m in layers])


# --------------------------------------------------------------------------------------
# whole networks
# --------------------------------------------------------------------------------------

def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2, seed=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, seed=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, seed=2), nn.ReLU(),
        nn.Linear(120, 84, seed=3), nn.ReLU(),
        nn.Linear(84, 10, seed=4),
    )


def test_lenet5(tmp_path):
    model = lenet5()
    model.eval()
    proto = _check(model, (None, 1, 28, 28), tmp_path)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Conv") == 2 and ops.count("MaxPool") == 2 and ops.count("Gemm") == 3
    out = proto.graph.output[0].type.tensor_type.shape.dim
    assert out[0].dim_param == "N" and out[1].dim_value == 10


def test_mlp_nested_sequential_with_dropout_and_batchnorm(tmp_path):
    model = nn.Sequential(
        nn.Sequential(nn.Linear(10, 32, seed=0), nn.BatchNorm1d(32), nn.Tanh(), nn.Dropout(0.3, seed=1)),
        nn.Sequential(nn.Linear(32, 16, seed=2), nn.LeakyReLU(0.05), nn.LayerNorm(16)),
        nn.Linear(16, 3, seed=3), nn.Sigmoid(),
    )
    _randomize_norm(model)
    model.eval()
    _check(model, (None, 10), tmp_path)


def test_batch_size_in_input_shape_is_exported_dynamic(tmp_path):
    model = nn.Linear(4, 2, seed=0)
    path = str(tmp_path / "m.onnx")
    export_onnx(model, path, (32, 4))
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 4
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(_session(path).run(None, {"input": x})[0], model(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_opsets(opset, tmp_path):
    model = nn.Sequential(nn.Linear(6, 8, seed=0), nn.ReLU(), nn.LayerNorm(8))
    _randomize_norm(model)
    path = str(tmp_path / "m.onnx")
    export_onnx(model, path, (None, 6), opset=opset)
    proto = onnx.load(path)
    assert proto.opset_import[0].version == opset
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(_session(path).run(None, {"input": x})[0], model(x), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------
# recurrent layers
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm(batch_first, bias, tmp_path):
    model = nn.LSTM(4, 5, bias=bias, batch_first=batch_first, seed=0)
    shape = (None, 6, 4) if batch_first else (6, None, 4)
    proto = _check(model, shape, tmp_path)
    assert [o.name for o in proto.graph.output] == ["output", "h_n", "c_n"]
    assert "LSTM" in [n.op_type for n in proto.graph.node]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn(batch_first, nonlinearity, tmp_path):
    model = nn.RNN(4, 5, nonlinearity=nonlinearity, batch_first=batch_first, seed=0)
    shape = (None, 6, 4) if batch_first else (6, None, 4)
    proto = _check(model, shape, tmp_path)
    assert [o.name for o in proto.graph.output] == ["output", "h_n"]
    assert "RNN" in [n.op_type for n in proto.graph.node]


def test_lstm_after_layernorm_in_sequential(tmp_path):
    # Linear needs 2-D input, so a feature stage in front of an LSTM is per-step: LayerNorm here
    norm, lstm = nn.LayerNorm(4), nn.LSTM(4, 3, seed=0)
    _randomize_norm(norm)
    path = str(tmp_path / "m.onnx")
    export_onnx(nn.Sequential(norm, nn.Sequential(lstm)), path, (None, 5, 4))
    x = np.random.default_rng(0).standard_normal((7, 5, 4)).astype(np.float32)
    # the reference is the chain by hand: Sequential's public forward copies one array, not a tuple
    ref = _flat(lstm(norm(x)))
    got = _session(path).run(None, {"input": x})
    for r, o in zip(ref, got):
        np.testing.assert_allclose(o, r, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------

class Custom(nn.Module):
    def _forward(self, x):
        return x


class MyReLU(nn.ReLU):
    def forward(self, x):
        return super().forward(x) * 2


def _no_file(tmp_path):
    return not any(tmp_path.iterdir())


def test_user_module_is_refused_with_its_position(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), Custom()))
    with pytest.raises(TypeError, match=r"layer '1\.1'.*Custom.*not a built-in"):
        export_onnx(model, str(tmp_path / "m.onnx"), (None, 3))
    assert _no_file(tmp_path)


def test_subclass_of_builtin_layer_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"layer '1'.*MyReLU.*subclass of fastnn.nn.ReLU"):
        export_onnx(nn.Sequential(nn.Linear(3, 3), MyReLU()), str(tmp_path / "m.onnx"), (None, 3))
    with pytest.raises(TypeError, match="fastnn.nn.Module"):
        export_onnx(lambda x: x, str(tmp_path / "m.onnx"), (None, 3))
    assert _no_file(tmp_path)


def test_recurrent_layer_must_be_last(tmp_path):
    with pytest.raises(TypeError, match=r"layer '0'.*LSTM.*last layer"):
        export_onnx(nn.Sequential(nn.LSTM(3, 4), nn.Tanh()), str(tmp_path / "m.onnx"), (None, 5, 3))


@pytest.mark.parametrize("layer", [nn.Dropout(0.2), nn.BatchNorm1d(4)])
def test_train_mode_is_refused_and_mode_unchanged(layer, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), layer)
    assert model.training
    with pytest.raises(ValueError, match=r"layer '1'.*training mode.*model.eval\(\)"):
        export_onnx(model, str(tmp_path / "m.onnx"), (None, 3))
    assert model.training and layer.training
    assert _no_file(tmp_path)


def test_train_mode_is_fine_where_train_and_eval_agree(tmp_path):
    # Linear, LayerNorm, Dropout(p=0) compute the same in both modes: no eval() needed
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.LayerNorm(4), nn.Dropout(0.0))
    _check(model, (None, 3), tmp_path)
    assert model.training


def test_model_is_unchanged_by_export(tmp_path):
    model = lenet5()
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    export_onnx(model, str(tmp_path / "m.onnx"), (None, 1, 28, 28))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not model.training


@pytest.mark.parametrize("shape, exc, match", [
    ((None, 5), ValueError, r"the model \(Linear\) expects input of shape \(N, 4\).*\(N, 5\)"),
    ((None, 4, 1), ValueError, r"expects input of shape \(N, 4\)"),
    ((None,), ValueError, "batch dimension and at least one more"),
    ((None, 0), ValueError, r"input_shape\[1\] must be positive"),
    ((None, None), TypeError, r"input_shape\[1\] must be a positive int"),
    ((None, 4.0), TypeError, r"input_shape\[1\] must be a positive int"),
    (("a", 4), TypeError, r"input_shape\[0\] must be None or a positive int"),
    (4, TypeError, "input_shape must be a tuple"),
    ("N4", TypeError, "input_shape must be a tuple"),
])
def test_bad_input_shape(shape, exc, match, tmp_path):
    with pytest.raises(exc, match=match):
        export_onnx(nn.Linear(4, 2), str(tmp_path / "m.onnx"), shape)
    assert _no_file(tmp_path)


def test_input_shape_not_fitting_a_later_layer_names_it(tmp_path):
    model = lenet5()
    model.eval()
    with pytest.raises(ValueError, match=r"layer '7' \(Linear\) expects input of shape \(N, 400\).*\(N, 576\)"):
        export_onnx(model, str(tmp_path / "m.onnx"), (None, 1, 32, 32))
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2d\) expects input of shape \(N, 1, H, W\)"):
        export_onnx(model, str(tmp_path / "m.onnx"), (None, 3, 28, 28))
    with pytest.raises(ValueError, match=r"layer '3' \(Conv2d\).*window 5 is larger"):
        export_onnx(model, str(tmp_path / "m.onnx"), (None, 1, 4, 4))


def test_flatten_merging_batch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="merges the batch dimension"):
        export_onnx(nn.Flatten(0), str(tmp_path / "m.onnx"), (None, 3))


def test_path_errors(tmp_path):
    model = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="is a directory"):
        export_onnx(model, str(tmp_path), (None, 4))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(model, str(tmp_path / "missing" / "m.onnx"), (None, 4))
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        export_onnx(model, 3, (None, 4))
    export_onnx(model, tmp_path / "pathlike.onnx", (None, 4))  # os.PathLike works
    assert sorted(os.listdir(tmp_path)) == ["pathlike.onnx"]  # no temporary file left behind


def test_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    export_onnx(nn.Linear(4, 2), path, (None, 4))
    onnx.checker.check_model(onnx.load(str(path)))


@pytest.mark.parametrize("opset, exc", [(12, ValueError), (10 ** 4, ValueError), ("17", TypeError),
                                        (True, TypeError)])
def test_bad_opset(opset, exc, tmp_path):
    with pytest.raises(exc, match="opset"):
        export_onnx(nn.Linear(4, 2), str(tmp_path / "m.onnx"), (None, 4), opset=opset)


def test_mixed_dtypes_are_refused(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, dtype=np.float64))
    with pytest.raises(TypeError, match=r"one dtype.*float32.*float64"):
        export_onnx(model, str(tmp_path / "m.onnx"), (None, 4))


@pytest.mark.parametrize("layer, shape", [(nn.Conv2d(1, 2, 3, dtype=np.float64), (None, 1, 5, 5)),
                                          (nn.LSTM(2, 3, dtype=np.float64), (None, 4, 2))])
def test_float64_without_runtime_kernels_is_refused(layer, shape, tmp_path):
    with pytest.raises(TypeError, match=r"in float64.*float32 only"):
        export_onnx(layer, str(tmp_path / "m.onnx"), shape)
    assert _no_file(tmp_path)


def test_missing_onnx_gives_install_hint(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "fastnn-cpu\[onnx\]"'):
        export_onnx(nn.Linear(4, 2), str(tmp_path / "m.onnx"), (None, 4))
