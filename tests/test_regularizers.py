"""L1/L2 weight penalties (issue 4 part)."""
import numpy as np
import pytest

import fastnn as fn
from fastnn.regularizers import L1, L2


def _model(dtype=np.float64, bias=True):
    return fn.nn.Sequential(fn.nn.Linear(4, 6, bias=bias, dtype=dtype, seed=0), fn.nn.Tanh(),
                            fn.nn.Linear(6, 2, bias=bias, dtype=dtype, seed=1))


@pytest.mark.parametrize("reg_cls", [L1, L2])
def test_penalty_and_gradient_match_numpy_and_skip_biases(reg_cls, dtype):
    model = _model(dtype)
    model[0].weight.data[0, 0] = 0.0          # sign(0) = 0 for L1
    model.zero_grad()
    for p in model.parameters():
        p.grad[...] = 1.0                     # gradients are added to, not replaced
    reg = reg_cls(0.3)
    weights = [model[0].weight.data.astype(np.float64), model[2].weight.data.astype(np.float64)]
    if reg_cls is L1:
        want = 0.3 * sum(np.abs(w).sum() for w in weights)
        want_g = [1.0 + 0.3 * np.sign(w) for w in weights]
    else:
        want = 0.15 * sum((w * w).sum() for w in weights)
        want_g = [1.0 + 0.3 * w for w in weights]
    got = reg.add_grad(model)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol)
    np.testing.assert_allclose(reg.penalty(model), want, rtol=rtol)
    np.testing.assert_allclose(model[0].weight.grad, want_g[0], rtol=rtol)
    np.testing.assert_allclose(model[2].weight.grad, want_g[1], rtol=rtol)
    assert model[0].weight.grad[0, 0] == 1.0
    np.testing.assert_array_equal(model[0].bias.grad, 1.0)   # biases untouched
    np.testing.assert_array_equal(model[2].bias.grad, 1.0)


def test_add_grad_after_zero_grad_writes_penalty_gradient_only():
    model = _model()
    model.zero_grad()
    L2(2.0).add_grad(model)
    np.testing.assert_allclose(model[0].weight.grad, 2.0 * model[0].weight.data)


def test_fit_with_l2_equals_sgd_weight_decay_without_biases(rng):
    X = rng.standard_normal((64, 4))
    y = rng.integers(0, 2, 64)
    runs = []
    for use_reg in (True, False):
        model = _model(bias=False)
        opt = fn.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.0 if use_reg else 0.05)
        fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=16, seed=0,
                     progress=False, regularizer=L2(0.05) if use_reg else None)
        runs.append(model.state_dict())
    for k in runs[0]:
        np.testing.assert_allclose(runs[0][k], runs[1][k], rtol=1e-12, atol=1e-14)


def test_fit_reports_loss_with_penalty_and_l1_shrinks_weights(rng):
    X = rng.standard_normal((256, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    sums = {}
    losses = {}
    for lam in (0.0, 0.05):
        model = _model(np.float32)
        opt = fn.optim.Adam(model.parameters(), lr=1e-2)
        h = fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=20, batch_size=32, seed=0,
                         progress=False, regularizer=L1(lam))
        sums[lam] = sum(np.abs(p.data).sum() for p in L1.weights(model))
        losses[lam] = h.history["loss"][-1]
    assert sums[0.05] < 0.6 * sums[0.0]
    assert losses[0.05] > losses[0.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="lam"):
        L2(-1.0)
    with pytest.raises(ValueError, match="lam"):
        L1(float("nan"))
    model = _model()
    opt = fn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="regularizer"):
        fn.train.fit(model, fn.losses.MSELoss(), opt, np.zeros((4, 4)), np.zeros((4, 2)),
                     regularizer=0.1, progress=False)
