"""Data larger than memory: np.memmap inputs gathered and converted per minibatch,
iterables of (X_batch, y_batch) pairs and per-epoch callables (issue 13)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import losses, nn, optim, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(dtype, d=8, seed=1):
    return nn.Sequential(nn.Linear(d, 16, dtype=dtype, seed=seed), nn.ReLU(), nn.Dropout(0.2, seed=3),
                         nn.Linear(16, 3, dtype=dtype, seed=seed + 1))


def _memmap(tmp_path, X, name="X.npy"):
    np.save(tmp_path / name, X)
    return np.load(tmp_path / name, mmap_mode="r")


def _fit(model, X, y, **kw):
    return train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01), X, y, epochs=3,
                     batch_size=16, seed=2, progress=False, **kw)


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(sa[k].tobytes() == sb[k].tobytes() for k in sa)


@pytest.mark.parametrize("data_dtype", [np.float32, np.float64, np.float16], ids=["f32", "f64", "f16"])
@pytest.mark.parametrize("model_dtype", [np.float32, np.float64], ids=["model32", "model64"])
def test_memmap_trains_like_the_array_in_memory(tmp_path, data_dtype, model_dtype):
    r = np.random.default_rng(0)
    X = r.standard_normal((100, 8)).astype(data_dtype)
    y = r.integers(0, 3, 100)
    Xm = _memmap(tmp_path, X)
    assert isinstance(Xm, np.memmap)
    a, b = _model(model_dtype), _model(model_dtype)
    ha = _fit(a, X, y, validation_data=(X[:30], y[:30]))
    hb = _fit(b, Xm, y, validation_data=(Xm[:30], y[:30]))
    assert _state_equal(a, b)
    assert ha.history["loss"] == hb.history["loss"] and ha.history["val_loss"] == hb.history["val_loss"]
    ea = train.evaluate(a, losses.CrossEntropyLoss(), X, y, batch_size=32)
    eb = train.evaluate(a, losses.CrossEntropyLoss(), Xm, y, batch_size=32)
    assert ea == eb


def test_fortran_order_memmap(tmp_path):
    r = np.random.default_rng(0)
    X = np.asfortranarray(r.standard_normal((50, 8)).astype(np.float32))
    y = r.integers(0, 3, 50)
    Xm = _memmap(tmp_path, X)
    assert not Xm.flags.c_contiguous
    a, b = _model(np.float64), _model(np.float64)
    _fit(a, np.ascontiguousarray(X), y)
    _fit(b, Xm, y)
    assert _state_equal(a, b)


def test_memmap_bad_input(tmp_path):
    r = np.random.default_rng(0)
    y = r.integers(0, 3, 40)
    one_d = _memmap(tmp_path, r.standard_normal(40).astype(np.float32), "a.npy")
    with pytest.raises(ValueError, match=r"at least 2-D.*\(40,\)"):
        _fit(_model(np.float32), one_d, y)
    wide = _memmap(tmp_path, r.standard_normal((40, 5)).astype(np.float32), "b.npy")
    model = _model(np.float32)
    snap = model.state_dict()
    with pytest.raises(ValueError, match=r"Linear expects input of shape \(n_samples, 8\). Received: \(16, 5\)"):
        _fit(model, wide, y)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in snap.items())
    rows = _memmap(tmp_path, r.standard_normal((30, 8)).astype(np.float32), "c.npy")
    with pytest.raises(ValueError, match="same number of samples. Received: 30 and 40"):
        _fit(_model(np.float32), rows, y)
    text = np.memmap(tmp_path / "s.bin", dtype="S4", mode="w+", shape=(40, 2))
    with pytest.raises(TypeError, match="must be numeric"):
        _fit(_model(np.float32), text, y)


def test_memmap_nan_is_caught_in_its_batch(tmp_path):
    r = np.random.default_rng(0)
    X = r.standard_normal((64, 8)).astype(np.float32)
    X[5, 3] = np.nan
    y = r.integers(0, 3, 64)
    with pytest.raises(ValueError, match=r"NaN or infinity \(in the minibatch of epoch 1, step 1\)"):
        train.fit(_model(np.float64), losses.CrossEntropyLoss(), optim.SGD(_model(np.float64).parameters(), lr=0.1),
                  _memmap(tmp_path, X), y, epochs=1, batch_size=16, shuffle=False, progress=False)


RSS_SCRIPT = r"""
import sys, threading, time
import numpy as np
from fastnn import losses, nn, optim, train

def rss_anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no RssAnon")

path, model_dtype = sys.argv[1], np.dtype(sys.argv[2]).type
X = np.load(path, mmap_mode="r")
y = np.zeros(X.shape[0], np.int64)
model = nn.Sequential(nn.Linear(X.shape[1], 8, dtype=model_dtype, seed=0), nn.ReLU(),
                      nn.Linear(8, 2, dtype=model_dtype, seed=1))
opt = optim.SGD(model.parameters(), lr=0.01)
base = rss_anon()
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_anon())
        time.sleep(0.001)
t = threading.Thread(target=sample, daemon=True)
t.start()
train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=1, batch_size=256, seed=0, progress=False,
          validation_data=(X, y))
train.evaluate(model, losses.CrossEntropyLoss(), X, y)
done.set()
t.join()
peak[0] = max(peak[0], rss_anon())
print(peak[0] - base)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
def test_memmap_is_not_copied_whole(tmp_path, model_dtype):
    """Anonymous memory (copies, not the mapped file's pages) grows by far less than the file."""
    n, d = 40_000, 256  # 41 MB of float32; a whole float64 copy would be 82 MB
    X = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 10_000):
        X[s:s + 10_000] = np.random.default_rng(s).standard_normal((min(10_000, n - s), d), dtype=np.float32)
    X.flush()
    del X
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), FASTNN_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tmp_path / "big.npy"), model_dtype],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    growth = int(proc.stdout.strip().splitlines()[-1])
    assert growth < 12e6, f"RssAnon grew by {growth / 1e6:.1f} MB for a 41 MB memmap"


# ------------------------------------------------------------------------- iterables

def _batches(X, y, bs):
    return [(X[s:s + bs], y[s:s + bs]) for s in range(0, X.shape[0], bs)]


def test_list_of_batches_equals_unshuffled_arrays():
    r = np.random.default_rng(0)
    X = r.standard_normal((90, 8))  # float64 batches for a float32 model: converted per batch
    y = r.integers(0, 3, 90)
    a, b = _model(np.float32), _model(np.float32)
    ha = train.fit(a, losses.CrossEntropyLoss(), optim.Adam(a.parameters(), lr=0.01), X, y, epochs=3,
                   batch_size=16, shuffle=False, progress=False)
    hb = train.fit(b, losses.CrossEntropyLoss(), optim.Adam(b.parameters(), lr=0.01), _batches(X, y, 16),
                   epochs=3, progress=False)
    assert _state_equal(a, b)
    assert ha.history["loss"] == hb.history["loss"] and ha.history["accuracy"] == hb.history["accuracy"]
    assert train.evaluate(a, losses.CrossEntropyLoss(), _batches(X, y, 16)) == \
        train.evaluate(a, losses.CrossEntropyLoss(), X, y, batch_size=16)


def test_callable_per_epoch_and_step_counts():
    r = np.random.default_rng(0)
    X = r.standard_normal((64, 8)).astype(np.float32)
    y = r.integers(0, 3, 64)
    asked = []

    def epoch_batches(epoch):
        asked.append(epoch)
        perm = np.random.default_rng(epoch).permutation(64)
        return (pair for pair in _batches(X[perm], y[perm], 16))  # a fresh generator per epoch

    steps = []
    model = _model(np.float32)
    h = train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), epoch_batches,
                  epochs=3, progress=False, callbacks=[train.LambdaCallback(on_batch_end=lambda s, l: steps.append(s))])
    assert asked == [0, 1, 2] and steps == list(range(12)) and len(h.epoch) == 3
    no_arg = []
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
              lambda: no_arg.append(1) or _batches(X, y, 32), epochs=2, progress=False)
    assert no_arg == [1, 1]


def test_progress_gets_the_step_count_when_known(monkeypatch):
    r = np.random.default_rng(0)
    X = r.standard_normal((40, 8)).astype(np.float32)
    y = r.integers(0, 3, 40)
    totals = []

    class Recorder(train._Progress):
        def begin(self, epoch, steps, done=0):
            totals.append(steps)

    monkeypatch.setattr(train, "_Progress", Recorder)
    model = _model(np.float32)
    opt = optim.SGD(model.parameters(), lr=0.1)
    train.fit(model, losses.CrossEntropyLoss(), opt, _batches(X, y, 16), epochs=1, progress=False)
    train.fit(model, losses.CrossEntropyLoss(), opt, lambda: iter(_batches(X, y, 16)), epochs=1, progress=False)
    train.fit(model, losses.CrossEntropyLoss(), opt, X, y, batch_size=8, epochs=1, progress=False)
    assert totals == [3, None, 5]


def test_iterable_bad_input():
    r = np.random.default_rng(0)
    X = r.standard_normal((32, 8)).astype(np.float32)
    y = r.integers(0, 3, 32)
    model = _model(np.float32)
    opt = optim.SGD(model.parameters(), lr=0.1)
    ce = losses.CrossEntropyLoss()
    with pytest.raises(TypeError, match="one-shot iterator"):
        train.fit(model, ce, opt, iter(_batches(X, y, 16)), epochs=2, progress=False)
    with pytest.raises(TypeError, match="must be a pair"):
        train.fit(model, ce, opt, [X[:16]], epochs=1, progress=False)
    with pytest.raises(ValueError, match="y is required"):
        train.fit(model, ce, opt, X, epochs=1, progress=False)
    with pytest.raises(ValueError, match="no batches in epoch 1"):
        train.fit(model, ce, opt, [], epochs=1, progress=False)
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinity \(in the minibatch of epoch 1, batch 2\)"):
        train.fit(model, ce, opt, _batches(np.vstack([X, bad]), np.concatenate([y, y]), 32), epochs=1,
                  progress=False)


def test_iterable_resume_is_bit_identical(tmp_path):
    r = np.random.default_rng(0)
    X = r.standard_normal((64, 8)).astype(np.float32)
    y = r.integers(0, 3, 64)

    def run(path, stop_at=None):
        model = _model(np.float32)
        cbs = []
        if stop_at is not None:
            def boom(step, logs):
                if step == stop_at:
                    raise KeyboardInterrupt
            cbs.append(train.LambdaCallback(on_batch_end=boom))
        h = train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01),
                      lambda epoch: _batches(X[::-1] if epoch % 2 else X, y[::-1] if epoch % 2 else y, 16),
                      epochs=4, progress=False, callbacks=cbs,
                      checkpoint=None if path is None else train.Checkpoint(path, every_steps=3),
                      resume=path is not None)
        return model, h

    ref_m, ref_h = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "c.st", stop_at=10)
    m, h = run(tmp_path / "c.st")
    assert _state_equal(ref_m, m)
    assert ref_h.history["loss"] == h.history["loss"]


def test_torch_dataloader():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(0)
    X = r.standard_normal((48, 8)).astype(np.float32)
    y = r.integers(0, 3, 48)
    ds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=False)
    a, b = _model(np.float32), _model(np.float32)
    train.fit(a, losses.CrossEntropyLoss(), optim.SGD(a.parameters(), lr=0.1), loader, epochs=2, progress=False)
    train.fit(b, losses.CrossEntropyLoss(), optim.SGD(b.parameters(), lr=0.1), X, y, batch_size=16, shuffle=False,
              epochs=2, progress=False)
    assert _state_equal(a, b)


def test_evaluate_takes_a_one_shot_generator():
    r = np.random.default_rng(0)
    X = r.standard_normal((40, 8)).astype(np.float32)
    y = r.integers(0, 3, 40)
    model = _model(np.float32)
    ce = losses.CrossEntropyLoss()
    assert train.evaluate(model, ce, (pair for pair in _batches(X, y, 8))) == \
        train.evaluate(model, ce, X, y, batch_size=8)
    with pytest.raises(ValueError, match="y is required"):
        train.evaluate(model, ce, X)
