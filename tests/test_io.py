"""fastnn.io: model files (save/load), weights (save_weights/load_weights), bad files,
crash-safe writes, and PyTorch interop (issue 13)."""
import json
import os
import struct

import numpy as np
import pytest

import fastnn as fn
from fastnn import io, nn
from fastnn.io import _format

DTYPES = [np.float32, np.float64]


def _models(dtype):
    """One model per layer kind (and nested Sequential), with an input for each."""
    r = np.random.default_rng(0)
    img = r.standard_normal((3, 2, 8, 8)).astype(dtype)
    vec = r.standard_normal((4, 6)).astype(dtype)
    seq = r.standard_normal((3, 5, 4)).astype(dtype)
    return {
        "mlp": (nn.Sequential(nn.Linear(6, 8, dtype=dtype, seed=1), nn.ReLU(), nn.Dropout(0.3, seed=7),
                              nn.Linear(8, 5, bias=False, dtype=dtype, seed=2), nn.LeakyReLU(0.2),
                              nn.Sequential(nn.Linear(5, 3, dtype=dtype, seed=3), nn.Tanh()), nn.Sigmoid()),
                vec),
        "norms1d": (nn.Sequential(nn.Linear(6, 4, dtype=dtype, seed=1), nn.BatchNorm1d(4, momentum=None, dtype=dtype),
                                  nn.LayerNorm(4, eps=1e-3, dtype=dtype),
                                  nn.LayerNorm((4,), elementwise_affine=False, dtype=dtype)), vec),
        "lenet": (nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=dtype, seed=1), nn.BatchNorm2d(4, dtype=dtype),
                                nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, (3, 1), stride=(1, 2), bias=False,
                                                                     dtype=dtype, seed=2),
                                nn.GroupNorm(2, 4, dtype=dtype), nn.InstanceNorm2d(4, affine=True, dtype=dtype),
                                nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
                                nn.Flatten(), nn.Linear(36, 3, dtype=dtype, seed=3)), img),
        "rnn": (nn.RNN(4, 6, nonlinearity="relu", dtype=dtype, seed=1), seq),
        "lstm": (nn.LSTM(4, 6, bias=False, batch_first=False, dtype=dtype, seed=1), seq),
    }


def _out(model, x):
    y = model(x)
    return y[0] if isinstance(y, tuple) else y


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", ["mlp", "norms1d", "lenet", "rnn", "lstm"])
def test_save_load_rebuilds_an_equal_model(tmp_path, dtype, kind):
    model, x = _models(dtype)[kind]
    model.train()
    _out(model, x)  # update the running statistics, so the buffers are not their initial values
    model.eval()
    path = tmp_path / "m.safetensors"
    io.save(model, path)
    loaded = io.load(path)
    assert type(loaded) is type(model)
    assert repr(loaded) == repr(model)
    assert _same_state(model, loaded)
    assert not loaded.training
    a, b = _out(model, x), _out(loaded, x)
    assert a.dtype == b.dtype == np.dtype(dtype)
    assert np.array_equal(a, b)  # bit for bit


def test_load_keeps_dropout_seed_and_train_mode(tmp_path):
    model = nn.Sequential(nn.Linear(4, 16, seed=0), nn.Dropout(0.5, seed=123))
    io.save(model, tmp_path / "m.st")
    loaded = io.load(tmp_path / "m.st")
    assert loaded.training and loaded[1].seed == 123 and loaded[1].p == 0.5
    x = np.ones((3, 4), np.float32)
    assert np.array_equal(model(x), loaded(x))  # the same masks: same seed, same call count


def test_file_is_plain_safetensors_with_architecture_json(tmp_path):
    stn = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    model = nn.Sequential(nn.Linear(3, 2, seed=0), nn.ReLU())
    io.save(model, tmp_path / "m.st")
    tensors = stn.load_file(str(tmp_path / "m.st"))
    assert sorted(tensors) == ["0.bias", "0.weight"]
    with safe_open(str(tmp_path / "m.st"), framework="np") as f:
        meta = f.metadata()
    arch = json.loads(meta["fastnn.architecture"])
    assert arch["module"]["class"] == "Sequential"
    assert arch["module"]["modules"][0] == {"class": "Linear", "config": {
        "in_features": 3, "out_features": 2, "bias": True, "dtype": "float32"}}
    assert meta["fastnn.kind"] == "model" and len(meta["fastnn.sha256"]) == 64


# ---------------------------------------------------------------------- custom classes

class Scale(nn.Module):
    """A user layer: y = x * factor (+ a learned shift)."""

    def __init__(self, features, factor=2.0):
        super().__init__()
        self.features, self.factor = features, factor
        self.shift = nn.Parameter(np.zeros(features, np.float32))

    def get_config(self):
        return {"features": self.features, "factor": self.factor}

    def forward(self, x):
        return x * self.factor + self.shift.data


class Unregistered(nn.Module):
    def forward(self, x):
        return x


def test_registered_custom_class_round_trips(tmp_path):
    io.register(Scale)
    model = nn.Sequential(nn.Linear(3, 4, seed=0), Scale(4, factor=0.5))
    model[1].shift.data[...] = [1, 2, 3, 4]
    io.save(model, tmp_path / "m.st")
    loaded = io.load(tmp_path / "m.st")
    assert isinstance(loaded[1], Scale) and loaded[1].factor == 0.5
    x = np.ones((2, 3), np.float32)
    assert np.array_equal(model(x), loaded(x))


def test_unregistered_class_fails_at_save_time(tmp_path):
    path = tmp_path / "m.st"
    with pytest.raises(TypeError, match=r"Unregistered.*not registered.*fastnn.io.register"):
        io.save(nn.Sequential(nn.Linear(2, 2), Unregistered()), path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left either


def test_register_validates_its_argument():
    with pytest.raises(TypeError, match="subclass of fastnn.nn.Module"):
        io.register(int)
    with pytest.raises(TypeError, match="get_config"):
        io.register(Unregistered)
    with pytest.raises(ValueError, match="built-in"):
        io.register(nn.Linear)


def _rewrite_arch(src, dst, arch):
    """Copy a model file with another architecture JSON (and a fresh checksum)."""
    tensors, meta = _format.read(src, "model")
    meta = dict(meta)
    meta["fastnn.architecture"] = json.dumps(arch)
    _format.write(dst, tensors, {k: v for k, v in meta.items() if not k.startswith("fastnn.")
                                 or k == "fastnn.architecture"}, "model")


def test_load_never_imports_a_class_named_by_the_file(tmp_path):
    io.save(nn.Sequential(nn.Linear(2, 2, seed=0)), tmp_path / "m.st")
    arch = {"version": 1, "module": {"class": "os.system", "config": {"command": "echo hacked"}}}
    _rewrite_arch(tmp_path / "m.st", tmp_path / "evil.st", arch)
    with pytest.raises(ValueError, match=r"'os.system'.*neither a built-in layer nor registered"):
        io.load(tmp_path / "evil.st")


def test_fastnn_formats_use_no_pickle():
    root = os.path.dirname(os.path.abspath(io.__file__))   # the installed package, not the source tree
    for name in os.listdir(root):
        if name.endswith(".py"):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                text = f.read()
            assert "import pickle" not in text and "allow_pickle=True" not in text, name


# ---------------------------------------------------------------------- weights only

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_save_weights_load_weights(tmp_path, dtype):
    model, x = _models(dtype)["lenet"]
    other = _models(dtype)["lenet"][0]
    for p in other.parameters():
        p.data[...] = 0
    io.save_weights(model, tmp_path / "w.st")
    assert io.load_weights(other, tmp_path / "w.st") == {"missing_keys": [], "unexpected_keys": []}
    assert _same_state(model, other)
    # a state dict works as well as a model
    io.save_weights(model.state_dict(), tmp_path / "w2.st")
    assert _format.read(tmp_path / "w2.st")[0].keys() == model.state_dict().keys()


def test_load_weights_strict_and_mismatches_leave_model_unchanged(tmp_path):
    src = nn.Sequential(nn.Linear(3, 4, seed=0), nn.ReLU(), nn.Linear(4, 2, seed=1))
    io.save_weights(src, tmp_path / "w.st")

    fewer = nn.Sequential(nn.Linear(3, 4, seed=5))
    snap = fewer.state_dict()
    with pytest.raises(ValueError, match=r"unexpected keys \['2.bias', '2.weight'\]"):
        io.load_weights(fewer, tmp_path / "w.st")
    assert all(np.array_equal(v, fewer.state_dict()[k]) for k, v in snap.items())
    res = io.load_weights(fewer, tmp_path / "w.st", strict=False)
    assert res == {"missing_keys": [], "unexpected_keys": ["2.bias", "2.weight"]}
    assert np.array_equal(fewer[0].weight.data, src[0].weight.data)

    wrong_shape = nn.Sequential(nn.Linear(3, 4, seed=5), nn.ReLU(), nn.Linear(4, 3, seed=6))
    snap = wrong_shape.state_dict()
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(2, 4\); the model expects \(3, 4\)"):
        io.load_weights(wrong_shape, tmp_path / "w.st", strict=False)
    assert all(np.array_equal(v, wrong_shape.state_dict()[k]) for k, v in snap.items())

    f64 = nn.Sequential(nn.Linear(3, 4, dtype=np.float64, seed=5), nn.ReLU(),
                        nn.Linear(4, 2, dtype=np.float64, seed=6))
    snap = f64.state_dict()
    with pytest.raises(TypeError, match=r"'0.weight' is float32; the model's '0.weight' is float64"):
        io.load_weights(f64, tmp_path / "w.st")
    assert all(np.array_equal(v, f64.state_dict()[k]) for k, v in snap.items())


# ---------------------------------------------------------------------- bad files

def _saved(tmp_path):
    model = nn.Sequential(nn.Linear(8, 8, seed=0), nn.ReLU(), nn.Linear(8, 2, seed=1))
    path = tmp_path / "m.st"
    io.save(model, path)
    return model, path


def test_missing_file_and_directory(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(FileNotFoundError, match="no such file.*nope.st"):
        io.load(tmp_path / "nope.st")
    with pytest.raises(FileNotFoundError, match="nope.st"):
        io.load_weights(model, tmp_path / "nope.st")
    with pytest.raises(ValueError, match="is a directory"):
        io.load(tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        io.save(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="folder"):
        io.save(model, tmp_path / "no" / "such" / "m.st")


def test_zero_length_truncated_and_other_format(tmp_path):
    model, path = _saved(tmp_path)
    data = path.read_bytes()
    cases = {
        "empty.st": (b"", "empty"),
        "short.st": (data[:5], "only 5 bytes"),
        "cut_header.st": (data[:40], "truncated"),
        "cut_data.st": (data[:-7], "not a readable safetensors file"),
        "text.st": (b"hello, this is not a model file\n" * 4, "not plausible|not valid JSON"),
    }
    np.save(tmp_path / "arr.npy", np.ones(3))
    cases["arr.st"] = ((tmp_path / "arr.npy").read_bytes(), "not plausible|not valid JSON|not readable")
    target = nn.Sequential(nn.Linear(8, 8, seed=3), nn.ReLU(), nn.Linear(8, 2, seed=4))
    snap = target.state_dict()
    for name, (content, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError, match=msg) as e:
            io.load(p)
        assert name in str(e.value)
        with pytest.raises(ValueError, match=name):
            io.load_weights(target, p)
    assert all(np.array_equal(v, target.state_dict()[k]) for k, v in snap.items())


def test_bit_flips_are_detected_never_loaded(tmp_path):
    model, path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    header_end = 8 + n
    # a flip in the tensor bytes, and one inside the architecture JSON (a digit of a shape)
    arch_pos = data.index(b'"out_features\\":8') + len(b'"out_features\\":')
    for pos, bit in ((header_end + 5, 0x10), (len(data) - 1, 0x01), (arch_pos, 0x01)):
        bad = bytearray(data)
        bad[pos] ^= bit
        p = tmp_path / "flip.st"
        p.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match=r"flip.st.*(corrupted|not a readable)"):
            io.load(p)
        target = nn.Sequential(nn.Linear(8, 8, seed=3), nn.ReLU(), nn.Linear(8, 2, seed=4))
        snap = target.state_dict()
        with pytest.raises(ValueError, match="flip.st"):
            io.load_weights(target, p)
        assert all(np.array_equal(v, target.state_dict()[k]) for k, v in snap.items())


def test_kinds_are_not_confused(tmp_path):
    model, path = _saved(tmp_path)
    io.save_weights(model, tmp_path / "w.st")
    with pytest.raises(ValueError, match="fastnn weights file; expected a model file"):
        io.load(tmp_path / "w.st")
    with pytest.raises(ValueError, match="fastnn model file; expected a checkpoint file"):
        io.load_checkpoint(path)
    # load_weights reads a whole-model file too (it is safetensors with the same names)
    other = nn.Sequential(nn.Linear(8, 8, seed=3), nn.ReLU(), nn.Linear(8, 2, seed=4))
    io.load_weights(other, path)
    assert _same_state(model, other)


# ---------------------------------------------------------------------- crash-safe writes

def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    model, path = _saved(tmp_path)
    old = path.read_bytes()

    def crash(f, data):
        f.write(data[:len(data) // 2])
        raise KeyboardInterrupt  # an interruption in the middle of the write

    monkeypatch.setattr(_format, "_write_hook", crash)
    changed = nn.Sequential(nn.Linear(8, 8, seed=9), nn.ReLU(), nn.Linear(8, 2, seed=9))
    with pytest.raises(KeyboardInterrupt):
        io.save(changed, path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.st"]
    assert _same_state(io.load(path), model)


def test_written_file_has_normal_permissions(tmp_path):
    _, path = _saved(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------------- PyTorch interop

def _torch_pair():
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors.torch")
    fmodel = nn.Sequential(nn.Conv2d(1, 3, 3, seed=0), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                           nn.Linear(3 * 4 * 4, 5, seed=1))
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    return torch, fmodel, tmodel


def test_torch_loads_save_weights_file(tmp_path):
    torch, fmodel, tmodel = _torch_pair()
    from safetensors.torch import load_file

    fmodel.train()
    fmodel(np.random.default_rng(0).standard_normal((4, 1, 6, 6)).astype(np.float32))
    io.save_weights(fmodel, tmp_path / "w.st")
    tmodel.load_state_dict(load_file(str(tmp_path / "w.st")))
    fmodel.eval()
    tmodel.eval()
    x = np.random.default_rng(1).standard_normal((2, 1, 6, 6)).astype(np.float32)
    with torch.no_grad():
        ty = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fmodel(x), ty, rtol=1e-5, atol=1e-6)


def test_fastnn_loads_torch_save_file(tmp_path):
    torch, fmodel, tmodel = _torch_pair()
    from safetensors.torch import save_file

    with torch.no_grad():
        tmodel[1].running_mean.uniform_(-1, 1)
    save_file(tmodel.state_dict(), str(tmp_path / "t.st"))
    assert io.load_weights(fmodel, tmp_path / "t.st") == {"missing_keys": [], "unexpected_keys": []}
    fmodel.eval()
    tmodel.eval()
    x = np.random.default_rng(1).standard_normal((2, 1, 6, 6)).astype(np.float32)
    with torch.no_grad():
        ty = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fmodel(x), ty, rtol=1e-5, atol=1e-6)
    assert fn.io is io
