"""fit(early_stopping=EarlyStopping(...)) (issue 4 part)."""
import numpy as np
import pytest

import fastnn as fn
from fastnn.train import EarlyStopping


def _setup(rng, lr):
    X = rng.standard_normal((128, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    model = fn.nn.Sequential(fn.nn.Linear(4, 8, dtype=np.float64, seed=0), fn.nn.ReLU(),
                             fn.nn.Linear(8, 2, dtype=np.float64, seed=1))
    return X, y, model, fn.optim.SGD(model.parameters(), lr=lr)


class Snapshots:
    def __init__(self, model):
        self.model, self.states = model, []

    def on_epoch_end(self, epoch, logs):
        self.states.append(self.model.state_dict())


def test_stops_after_patience_without_improvement(rng):
    X, y, model, opt = _setup(rng, lr=0.0)        # nothing changes: no improvement after epoch 0
    es = EarlyStopping(monitor="val_loss", patience=2)
    h = fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=20, batch_size=32,
                     validation_data=(X, y), early_stopping=es, progress=False)
    assert len(h.epoch) == 4                        # epoch 0 best, then 3 without improvement
    assert es.stopped_epoch == 3 and es.best_epoch == 0


def test_restores_the_best_weights(rng):
    X, y, model, opt = _setup(rng, lr=5.0)         # a large lr: the loss jumps around
    snaps = Snapshots(model)
    es = EarlyStopping(monitor="loss", patience=3, restore_best=True)
    h = fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=12, batch_size=16, seed=0,
                     early_stopping=es, callbacks=[snaps], progress=False)
    best = int(np.argmin(h.history["loss"]))
    assert es.best_epoch == best
    assert best < len(h.epoch) - 1, "the best epoch is the last one: restoring would prove nothing"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snaps.states[best][k])


def test_min_delta_and_max_mode(rng):
    es = EarlyStopping(monitor="val_accuracy", mode="max", patience=0, min_delta=0.05)

    class M:
        def state_dict(self):
            return {}
    m = M()
    assert not es._update(0, {"val_accuracy": 0.80}, m)
    assert es._update(1, {"val_accuracy": 0.84}, m)     # +0.04 is not > min_delta
    es._reset()
    assert not es._update(0, {"val_accuracy": 0.80}, m)
    assert not es._update(1, {"val_accuracy": 0.86}, m)
    assert es.best == 0.86


def test_bad_arguments(rng):
    with pytest.raises(ValueError):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError):
        EarlyStopping(mode="best")
    X, y, model, opt = _setup(rng, lr=0.1)
    with pytest.raises(TypeError, match="EarlyStopping"):
        fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, early_stopping=3, progress=False)
    with pytest.raises(ValueError, match="val_loss"):      # no validation data to monitor
        fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=2,
                     early_stopping=EarlyStopping(), progress=False)
