"""nn.Dropout: inverted, train-mode only, seeded, mask reused in backward (issue 4 part)."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import nn


def test_train_mode_statistics_and_scaling(dtype, n_threads):
    p = 0.3
    d = fn.nn.Dropout(p, seed=0)
    x = np.linspace(1, 2, 200_000).astype(dtype)
    y = d(x)
    dropped = y == 0
    frac = dropped.mean()
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / x.size)      # 4 sigma
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - p), rtol=1e-6)
    assert abs(y.mean() / x.mean() - 1) < 0.01                       # inverted: unbiased


def test_backward_reuses_the_forward_mask(rng):
    d = fn.nn.Dropout(0.5, seed=3)
    x = rng.uniform(1, 2, (64, 33))                                  # no zeros in x
    y = d(x)
    g = rng.standard_normal(x.shape)
    gx = d.backward(g)
    mask = y != 0
    np.testing.assert_allclose(gx, np.where(mask, g * 2.0, 0.0))
    y2 = d(x)                                                        # a new call, a new mask
    assert not np.array_equal(y2 != 0, mask)
    np.testing.assert_allclose(d.backward(g), np.where(y2 != 0, g * 2.0, 0.0))


def test_seeded_masks_are_reproducible_and_thread_independent(monkeypatch):
    x = np.ones(100_000, np.float32)
    with fn.threads(1):
        a = fn.nn.Dropout(0.5, seed=7)(x)
    monkeypatch.setattr(fn._engine.config, "PARALLEL_MIN_ELEMENTS", 1)
    with fn.threads(2):
        b = fn.nn.Dropout(0.5, seed=7)(x)
    np.testing.assert_array_equal(a, b)
    c = fn.nn.Dropout(0.5, seed=8)(x)
    assert not np.array_equal(a, c)


def test_eval_mode_and_p0_are_exact_identities(rng):
    x = rng.standard_normal((10, 5)).astype(np.float32)
    d = fn.nn.Dropout(0.9, seed=0).eval()
    np.testing.assert_array_equal(d(x), x)
    np.testing.assert_array_equal(d.backward(x * 3), x * 3)
    d0 = fn.nn.Dropout(0.0, seed=0)
    np.testing.assert_array_equal(d0(x), x)
    np.testing.assert_array_equal(d0.backward(x), x)


def test_p_one_zeroes_everything():
    d = fn.nn.Dropout(1.0, seed=0)
    y = d(np.ones(10))
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_array_equal(d.backward(np.ones(10)), 0)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_bad_p(p):
    with pytest.raises(ValueError, match="dropout probability"):
        fn.nn.Dropout(p)


def test_bad_input_types():
    d = fn.nn.Dropout(0.5, seed=0)
    with pytest.raises(TypeError):
        d(np.ones(3, dtype=np.int64))
    d(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        d.backward(np.ones(4))


def test_dropout_in_a_model_trains_and_evaluates_deterministically(rng):
    X = rng.standard_normal((512, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = fn.nn.Sequential(fn.nn.Linear(10, 64, seed=0), fn.nn.ReLU(), fn.nn.Dropout(0.2, seed=1),
                             fn.nn.Linear(64, 2, seed=2))
    opt = fn.optim.Adam(model.parameters(), lr=1e-2)
    h = fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=10, batch_size=32, seed=0,
                     progress=False, validation_data=(X, y))
    assert h.history["val_accuracy"][-1] > 0.9
    model.eval()
    np.testing.assert_array_equal(model(X), model(X))               # no dropout in eval mode


def test_rng_state_round_trip_and_row_offset(rng):
    """set_rng_state(*rng_state()) on another layer makes its next masks the saved layer's
    next masks; row_offset shifts a batch onto its rows of a larger batch's masks; bad
    values are refused with the expected type and range."""
    x = np.ones((6, 10), np.float32)
    a = nn.Dropout(0.5, seed=11)
    a.forward(x)
    b = nn.Dropout(0.5, seed=99)
    b.set_rng_state(*a.rng_state())
    assert b.rng_state() == a.rng_state() == (11, 1)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    whole = nn.Dropout(0.5, seed=5).forward(x).copy()
    part = nn.Dropout(0.5, seed=5)
    part.row_offset = 4
    np.testing.assert_array_equal(part.forward(x[4:]), whole[4:])
    assert part.row_offset == 4
    with pytest.raises(ValueError, match="non-negative"):
        part.row_offset = -1
    with pytest.raises(TypeError, match="non-negative integer"):
        part.set_rng_state(1.5, 0)
    with pytest.raises(ValueError, match="calls"):
        part.set_rng_state(1, -2)
    assert part.row_offset == 4 and part.rng_state() == (5, 1)
