"""Callbacks: set_model, stopping (stop_training / returning True), LambdaCallback,
CSVLogger (appends on resume), ModelCheckpoint (through fastnn.io.save) (issue 13)."""
import csv

import numpy as np
import pytest

from fastnn import io, losses, nn, optim, train


def _problem(seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((64, 5)).astype(np.float32)
    y = r.integers(0, 2, 64)
    model = nn.Sequential(nn.Linear(5, 8, seed=1), nn.Tanh(), nn.Linear(8, 2, seed=2))
    return X, y, model, optim.Adam(model.parameters(), lr=0.02)


def _fit(model, opt, X, y, **kw):
    kw.setdefault("epochs", 4)
    return train.fit(model, losses.CrossEntropyLoss(), opt, X, y, batch_size=16, seed=0, progress=False, **kw)


def test_callbacks_get_the_model_and_all_hooks():
    X, y, model, opt = _problem()
    calls = []

    class Rec(train.Callback):
        def on_train_begin(self, logs):
            calls.append(("train_begin", logs["initial_epoch"], self.model is model))

        def on_epoch_end(self, epoch, logs):
            calls.append(("epoch_end", epoch))

        def on_train_end(self, logs):
            calls.append(("train_end", logs["epochs"]))

    class Plain:  # not a Callback subclass: set_model is optional and used when present
        def set_model(self, m):
            self.got = m

        def on_batch_end(self, step, logs):
            pass

    plain = Plain()
    _fit(model, opt, X, y, epochs=2, callbacks=[Rec(), plain])
    assert calls == [("train_begin", 0, True), ("epoch_end", 0), ("epoch_end", 1), ("train_end", 2)]
    assert plain.got is model


def test_stop_training_attribute_at_epoch_and_batch():
    X, y, model, opt = _problem()

    class StopAfter(train.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                self.stop_training = True

    h = _fit(model, opt, X, y, epochs=10, callbacks=[StopAfter()])
    assert h.epoch == [0, 1]

    X, y, model, opt = _problem()
    seen = []

    class StopAtBatch(train.Callback):
        def on_batch_end(self, step, logs):
            seen.append(step)
            self.stop_training = step == 5

    h = _fit(model, opt, X, y, epochs=10, callbacks=[StopAtBatch()])
    assert seen == list(range(6)) and h.epoch == [0, 1]  # epoch 2 (index 1) ends after its 2nd batch
    assert opt.step_count == 6


def test_returning_true_stops_and_other_values_do_not():
    X, y, model, opt = _problem()
    h = _fit(model, opt, X, y, epochs=10, callbacks=[train.LambdaCallback(on_epoch_end=lambda e, logs: e == 2)])
    assert h.epoch == [0, 1, 2]
    X, y, model, opt = _problem()
    h = _fit(model, opt, X, y, epochs=3, callbacks=[train.LambdaCallback(on_epoch_end=lambda e, logs: "yes")])
    assert h.epoch == [0, 1, 2]


def test_lambda_callback_calls_its_functions():
    X, y, model, opt = _problem()
    log = []
    cb = train.LambdaCallback(on_train_begin=lambda logs: log.append("begin"),
                              on_epoch_begin=lambda e, logs: log.append(("eb", e)),
                              on_batch_end=lambda s, logs: log.append(("b", s, logs["size"])),
                              on_epoch_end=lambda e, logs: log.append(("ee", e, round(logs["loss"], 12))),
                              on_train_end=lambda logs: log.append("end"))
    h = _fit(model, opt, X, y, epochs=1, callbacks=[cb])
    assert log == ["begin", ("eb", 0), ("b", 0, 16), ("b", 1, 16), ("b", 2, 16), ("b", 3, 16),
                   ("ee", 0, round(h.history["loss"][0], 12)), "end"]
    with pytest.raises(TypeError, match="on_epoch_end=...\\) must be callable"):
        train.LambdaCallback(on_epoch_end=3)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    X, y, model, opt = _problem()
    path = tmp_path / "log.csv"
    h = _fit(model, opt, X, y, epochs=3, validation_data=(X, y), callbacks=[train.CSVLogger(path)])
    rows = _rows(path)
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert [float(r[1]) for r in rows[1:]] == h.history["loss"]  # written exactly (repr)


def test_csv_logger_appends_on_resume_without_duplicates(tmp_path):
    path, ckpt = tmp_path / "log.csv", tmp_path / "c.st"

    def run(epochs, every, interrupt_at=None):
        X, y, model, opt = _problem()
        cbs = [train.CSVLogger(path)]
        if interrupt_at is not None:
            def boom(step, logs):
                if step == interrupt_at:
                    raise KeyboardInterrupt
            cbs.append(train.LambdaCallback(on_batch_end=boom))
        return _fit(model, opt, X, y, epochs=epochs, callbacks=cbs,
                    checkpoint=train.Checkpoint(ckpt, every=every), resume=True)

    ref = run(5, 2)
    ckpt.unlink()
    path.unlink()
    with pytest.raises(KeyboardInterrupt):
        run(5, 2, interrupt_at=13)  # in epoch 4 (index 3); the last checkpoint is after epoch 2
    assert [r[0] for r in _rows(path)[1:]] == ["0", "1", "2"]  # epoch 2 logged, not checkpointed
    h = run(5, 2)
    rows = _rows(path)
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3", "4"]
    assert [float(r[1]) for r in rows[1:]] == ref.history["loss"] == h.history["loss"]


def test_model_checkpoint_saves_the_best_model(tmp_path):
    X, y, model, opt = _problem()
    path = tmp_path / "best.st"
    saved = []

    class Watch(train.Callback):
        def on_epoch_end(self, epoch, logs):
            if path.exists():
                saved.append((epoch, path.stat().st_mtime_ns))

    mc = train.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    h = _fit(model, opt, X, y, epochs=6, validation_data=(X[:20], y[:20]), callbacks=[mc, Watch()])
    val = h.history["val_loss"]
    best_epoch = int(np.argmin(val))
    assert mc.best == val[best_epoch]
    best = io.load(path)
    # the file holds the weights of the best epoch: its val_loss matches that epoch's
    ev = train.evaluate(best, losses.CrossEntropyLoss(), X[:20], y[:20])
    assert ev["loss"] == pytest.approx(val[best_epoch], rel=1e-6)


def test_model_checkpoint_every_epoch_with_formatted_name(tmp_path):
    X, y, model, opt = _problem()
    mc = train.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{loss:.3f}.st"), save_best_only=False)
    h = _fit(model, opt, X, y, epochs=3, callbacks=[mc])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"m-{e + 1:02d}-{h.history['loss'][e]:.3f}.st" for e in range(3)]
    last = io.load(tmp_path / names[-1])
    assert all(np.array_equal(a, b) for a, b in zip(last.state_dict().values(), model.state_dict().values()))


def test_model_checkpoint_needs_the_monitored_metric(tmp_path):
    X, y, model, opt = _problem()
    with pytest.raises(ValueError, match="monitors 'val_loss'.*validation_data"):
        _fit(model, opt, X, y, epochs=1, callbacks=[train.ModelCheckpoint(tmp_path / "m.st")])
    with pytest.raises(ValueError, match="mode must be"):
        train.ModelCheckpoint(tmp_path / "m.st", mode="best")


def test_model_checkpoint_best_survives_a_resume(tmp_path):
    ckpt = tmp_path / "c.st"
    X, y, model, opt = _problem()
    mc = train.ModelCheckpoint(tmp_path / "best.st", monitor="loss")
    _fit(model, opt, X, y, epochs=2, callbacks=[mc], checkpoint=train.Checkpoint(ckpt))
    X, y, model, opt = _problem()
    mc2 = train.ModelCheckpoint(tmp_path / "best.st", monitor="loss")
    _fit(model, opt, X, y, epochs=2, callbacks=[mc2], checkpoint=train.Checkpoint(ckpt), resume=True)
    assert mc2.best == mc.best is not None
