"""fastnn.train: fit()/evaluate(), History, callbacks, progress output, validation,
reproducible shuffling, a real data set (digits), and no allocation in the steady
state of training."""
import tracemalloc

import numpy as np
import pytest

from fastnn import data, losses, nn, optim, train


def _blobs(n=300, d=5, k=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    X = (centers[y] + rng.standard_normal((n, d))).astype(dtype)
    return X, y


def _classifier(d=5, k=3, hidden=16, dtype=np.float32, seed=0):
    return nn.Sequential(
        nn.Linear(d, hidden, dtype=dtype, seed=seed), nn.ReLU(),
        nn.Linear(hidden, k, dtype=dtype, seed=seed + 1),
    )


def _params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


class Recorder:
    def __init__(self):
        self.epoch_begin, self.epoch_end, self.batch_end = [], [], []

    def on_epoch_begin(self, epoch, logs):
        self.epoch_begin.append(epoch)

    def on_epoch_end(self, epoch, logs):
        self.epoch_end.append((epoch, dict(logs or {})))

    def on_batch_end(self, step, logs):
        self.batch_end.append((step, dict(logs or {})))


# ---------------------------------------------------------------------------- basics

def test_fit_loss_decreases_and_history(dtype):
    X, y = _blobs(dtype=dtype)
    model = _classifier(dtype=dtype)
    opt = optim.Adam(model.parameters(), lr=0.01)
    hist = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=8, batch_size=32,
                     seed=0, progress=False)
    h = hist.history
    assert set(h) >= {"loss", "accuracy"}
    assert "val_loss" not in h
    assert len(h["loss"]) == 8 and len(h["accuracy"]) == 8
    assert len(hist.epoch) == 8
    assert all(isinstance(v, float) for v in h["loss"])
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["accuracy"][-1] > 0.9
    assert all(0.0 <= a <= 1.0 for a in h["accuracy"])
    for p in model.parameters():
        assert p.data.dtype == dtype and np.all(np.isfinite(p.data))
    ev = train.evaluate(model, losses.CrossEntropyLoss(), X, y)
    assert ev["accuracy"] > 0.9


def test_fit_mse_regression_has_no_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    w = rng.standard_normal((4, 2))
    Y = X @ w + 0.01 * rng.standard_normal((200, 2))
    model = nn.Sequential(nn.Linear(4, 2, dtype=np.float64, seed=0))
    hist = train.fit(model, losses.MSELoss(), optim.SGD(model.parameters(), lr=0.05), X, Y,
                     epochs=10, batch_size=16, seed=0, progress=False)
    assert "accuracy" not in hist.history
    assert hist.history["loss"][-1] < 0.01 * hist.history["loss"][0]
    np.testing.assert_allclose(model[0].weight.data, w.T, atol=0.05)


def test_fit_converts_input_to_model_dtype():
    X, y = _blobs(dtype=np.float64)
    model = _classifier(dtype=np.float32)
    Xs = X.copy()
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
              epochs=1, progress=False, seed=0)
    for p in model.parameters():
        assert p.data.dtype == np.float32
    np.testing.assert_array_equal(X, Xs)  # the caller's array is not modified


def test_fit_accepts_noncontiguous_readonly_input():
    X, y = _blobs()
    Xf = np.asfortranarray(X)
    Xf.setflags(write=False)
    m1, m2 = _classifier(), _classifier()
    for m, XX in ((m1, X), (m2, Xf)):
        train.fit(m, losses.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.1), XX, y,
                  epochs=2, seed=3, progress=False)
    for k, v in m1.state_dict().items():
        np.testing.assert_allclose(m2.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_fit_with_probability_targets():
    X, y = _blobs()
    Y = data.one_hot(y, 3)
    model = _classifier()
    hist = train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01),
                     X, Y, epochs=5, seed=0, progress=False)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


# ---------------------------------------------------------------------------- callbacks / progress

def test_callbacks_called_with_right_counts():
    X, y = _blobs(n=100)
    model = _classifier()
    rec = Recorder()
    hist = train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
                     epochs=3, batch_size=32, seed=0, callbacks=[rec], progress=False)
    assert len(rec.epoch_begin) == 3
    assert len(rec.epoch_end) == 3
    assert len(rec.batch_end) == 3 * 4  # ceil(100 / 32) steps per epoch
    assert rec.epoch_begin == [e for e, _ in rec.epoch_end]
    assert len(set(rec.epoch_begin)) == 3
    # epoch-end logs carry the epoch's loss as recorded in History
    for (_, logs), loss in zip(rec.epoch_end, hist.history["loss"]):
        assert logs["loss"] == pytest.approx(loss)
    for _, logs in rec.batch_end:
        assert "loss" in logs and np.isfinite(logs["loss"])


def test_callback_with_only_some_methods():
    class OnlyEnd:
        def __init__(self):
            self.n = 0

        def on_epoch_end(self, epoch, logs):
            self.n += 1

    X, y = _blobs(n=64)
    model = _classifier()
    cb = OnlyEnd()
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
              epochs=2, callbacks=(cb,), progress=False)
    assert cb.n == 2


def test_progress_false_prints_nothing(capsys):
    X, y = _blobs(n=64)
    model = _classifier()
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
              epochs=2, progress=False, validation_data=(X, y))
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ""


def test_progress_true_prints_something(capsys):
    X, y = _blobs(n=64)
    model = _classifier()
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
              epochs=2, progress=True)
    out, err = capsys.readouterr()
    assert (out + err).strip() != ""


# ---------------------------------------------------------------------------- validation data

def test_validation_data_gives_val_loss():
    X_all, y_all = _blobs(n=390, seed=0)
    X, y, Xv, yv = X_all[:300], y_all[:300], X_all[300:], y_all[300:]
    model = _classifier()
    rec = Recorder()
    ce = losses.CrossEntropyLoss()
    hist = train.fit(model, ce, optim.Adam(model.parameters(), lr=0.01), X, y, epochs=4,
                     seed=0, validation_data=(Xv, yv), callbacks=[rec], progress=False)
    h = hist.history
    assert len(h["val_loss"]) == 4 and len(h["val_accuracy"]) == 4
    assert h["val_loss"][-1] < h["val_loss"][0]
    ev = train.evaluate(model, losses.CrossEntropyLoss(), Xv, yv)
    assert h["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-4)
    assert h["val_accuracy"][-1] == pytest.approx(ev["accuracy"])
    assert rec.epoch_end[-1][1]["val_loss"] == pytest.approx(h["val_loss"][-1])


def test_evaluate_matches_manual_computation(dtype, ref):
    X, y = _blobs(n=103, dtype=dtype)
    model = _classifier(dtype=dtype)
    res = train.evaluate(model, losses.CrossEntropyLoss(), X, y, batch_size=10)
    logits = model(X)
    loss, _ = ref.softmax_ce(logits, y)
    assert isinstance(res["loss"], float)
    assert res["loss"] == pytest.approx(loss, rel=1e-5)
    assert res["accuracy"] == pytest.approx(np.mean(np.argmax(logits, 1) == y))
    mse_res = train.evaluate(model, losses.MSELoss(), X, data.one_hot(y, 3, dtype=dtype))
    assert "accuracy" not in mse_res
    assert mse_res["loss"] == pytest.approx(ref.mse(logits, data.one_hot(y, 3))[0], rel=1e-5)


def test_evaluate_does_not_change_parameters():
    X, y = _blobs(n=50)
    model = _classifier()
    before = _params(model)
    train.evaluate(model, losses.CrossEntropyLoss(), X, y)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# ---------------------------------------------------------------------------- reproducibility

def _fit_once(seed, shuffle=True, threads=None):
    X, y = _blobs(n=150)
    model = _classifier(seed=10)
    hist = train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                     X, y, epochs=3, batch_size=16, shuffle=shuffle, seed=seed, progress=False)
    return _params(model), hist.history["loss"]


def test_shuffle_same_seed_is_reproducible():
    p1, l1 = _fit_once(7)
    p2, l2 = _fit_once(7)
    p3, l3 = _fit_once(8)
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    assert l1 == l2
    assert any(not np.array_equal(p1[k], p3[k]) for k in p1)


def test_shuffle_false_is_deterministic_and_differs_from_shuffled():
    p1, _ = _fit_once(None, shuffle=False)
    p2, _ = _fit_once(None, shuffle=False)
    p3, _ = _fit_once(0, shuffle=True)
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    assert any(not np.array_equal(p1[k], p3[k]) for k in p1)


def test_fit_equivalent_to_manual_loop_without_shuffle(assert_close):
    """fit(shuffle=False) == forward/backward/step over consecutive batches."""
    X, y = _blobs(n=70, dtype=np.float64)
    m1 = _classifier(dtype=np.float64, seed=4)
    m2 = _classifier(dtype=np.float64, seed=4)
    train.fit(m1, losses.CrossEntropyLoss(), optim.Adam(m1.parameters(), lr=0.01), X, y,
              epochs=2, batch_size=16, shuffle=False, progress=False)
    ce = losses.CrossEntropyLoss()
    opt = optim.Adam(m2.parameters(), lr=0.01)
    for _ in range(2):
        for s in range(0, 70, 16):
            opt.zero_grad()
            ce(m2(X[s:s + 16]), y[s:s + 16])
            m2.backward(ce.backward())
            opt.step()
    for k, v in m2.state_dict().items():
        assert_close(m1.state_dict()[k], v, scale=10, err_msg=k)


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    X, y = _blobs(n=64)
    model = _classifier()
    hist = train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
                     epochs=2, progress=False, validation_data=(X, y))
    path = tmp_path / "history.png"
    hist.plot(path=str(path))
    assert path.exists() and path.stat().st_size > 0


# ---------------------------------------------------------------------------- real data

def test_fit_digits_reaches_high_accuracy():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, test_size=0.25, seed=0, stratify=y)
    model = nn.Sequential(nn.Linear(64, 64, seed=0), nn.ReLU(), nn.Linear(64, 10, seed=1))
    hist = train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=3e-3),
                     X_tr, y_tr, epochs=15, batch_size=32, seed=0, progress=False,
                     validation_data=(X_te, y_te))
    res = train.evaluate(model, losses.CrossEntropyLoss(), X_te, y_te)
    assert res["accuracy"] > 0.9
    assert hist.history["val_accuracy"][-1] > 0.9
    pred = np.argmax(model(X_te), axis=1)
    assert np.mean(pred == y_te) > 0.9


# ---------------------------------------------------------------------------- allocation

def test_no_allocation_after_first_steps():
    """Steady-state training steps allocate (almost) nothing: the peak of traced
    allocations over steps 3..10 stays far below one batch of hidden activations."""
    batch, hidden, d, k = 128, 256, 32, 10
    n = batch * 12
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    model = nn.Sequential(
        nn.Linear(d, hidden, seed=0), nn.ReLU(),
        nn.Linear(hidden, hidden, seed=1), nn.Tanh(),
        nn.Linear(hidden, k, seed=2),
    )
    one_activation = batch * hidden * np.dtype(np.float32).itemsize

    class Probe:
        def __init__(self):
            self.calls = 0
            self.started_here = False
            self.base = None
            self.peak = None
            self.current = None

        def on_batch_end(self, step, logs):
            self.calls += 1
            if self.calls == 2:
                if not tracemalloc.is_tracing():
                    tracemalloc.start()
                    self.started_here = True
                tracemalloc.reset_peak()
                self.base = tracemalloc.get_traced_memory()[0]
            elif self.calls == 10:
                self.current, self.peak = tracemalloc.get_traced_memory()
                if self.started_here:
                    tracemalloc.stop()

    probe = Probe()
    try:
        train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3), X, y,
                  epochs=1, batch_size=batch, seed=0, callbacks=[probe], progress=False)
    finally:
        if probe.started_here and tracemalloc.is_tracing():
            tracemalloc.stop()
    assert probe.calls == 12
    assert probe.peak is not None
    transient = probe.peak - probe.base
    growth = probe.current - probe.base
    assert transient < one_activation / 4, (
        f"steps 3..10 allocated up to {transient} bytes at once "
        f"(one activation is {one_activation} bytes)")
    assert growth < one_activation / 8, f"memory grew by {growth} bytes over 8 steps"


def test_fit_same_at_1_and_2_threads():
    from fastnn import threads

    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 128))
    y = rng.integers(0, 4, 256)
    params = {}
    for n in (1, 2):
        model = nn.Sequential(nn.Linear(128, 512, dtype=np.float64, seed=0), nn.Tanh(),
                              nn.Linear(512, 4, dtype=np.float64, seed=1))
        with threads(n):
            train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3), X, y,
                      epochs=2, batch_size=128, seed=0, progress=False)
        params[n] = _params(model)
    for k in params[1]:
        np.testing.assert_allclose(params[1][k], params[2][k], rtol=1e-9, atol=1e-11, err_msg=k)
