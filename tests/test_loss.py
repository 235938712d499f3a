"""fastnn.losses: CrossEntropyLoss (integer and probability targets) and MSELoss
against NumPy, plus float64 finite-difference checks of d loss / d pred and of the
gradients through a model."""
import numpy as np
import pytest

from fastnn import losses, nn

from conftest import numeric_grad




def _prob_targets(rng, n, c, dtype):
    t = rng.random((n, c))
    return (t / t.sum(axis=1, keepdims=True)).astype(dtype)


# ---------------------------------------------------------------------------- values

def test_cross_entropy_int_targets(dtype, n_threads, rng, ref, assert_close):
    logits = (2 * rng.standard_normal((13, 4))).astype(dtype)
    target = rng.integers(0, 4, 13)
    ce = losses.CrossEntropyLoss()
    value = ce(logits, target)
    assert isinstance(value, float)
    grad = ce.backward()
    assert grad.shape == logits.shape and grad.dtype == dtype
    rv, rg = ref.softmax_ce(logits, target)
    assert_close(value, rv, dtype=dtype, scale=2)
    assert_close(grad, rg)


def test_cross_entropy_prob_targets(dtype, rng, ref, assert_close):
    logits = (2 * rng.standard_normal((9, 5))).astype(dtype)
    t = _prob_targets(rng, 9, 5, dtype)
    ce = losses.CrossEntropyLoss()
    value = ce(logits, t)
    rv, rg = ref.softmax_ce(logits, t)
    assert_close(value, rv, dtype=dtype, scale=2)
    assert_close(ce.backward(), rg)


def test_cross_entropy_known_value():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    ce = losses.CrossEntropyLoss()
    # sample 0: log 2; sample 1 with label 0: -log(3/4)
    np.testing.assert_allclose(ce(logits, np.array([1, 0])), (np.log(2) - np.log(0.75)) / 2, rtol=1e-12)


def test_cross_entropy_huge_logits(dtype, rng, ref):
    logits = (1e4 * rng.standard_normal((6, 3))).astype(dtype)
    target = rng.integers(0, 3, 6)
    ce = losses.CrossEntropyLoss()
    value = ce(logits, target)
    grad = ce.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, ref.softmax_ce(logits, target)[0], rtol=1e-5)


def test_mse_value_and_grad(dtype, n_threads, rng, ref, assert_close):
    pred = rng.standard_normal((8, 3)).astype(dtype)
    target = rng.standard_normal((8, 3)).astype(dtype)
    mse = losses.MSELoss()
    value = mse(pred, target)
    assert isinstance(value, float)
    grad = mse.backward()
    assert grad.shape == pred.shape and grad.dtype == dtype
    rv, rg = ref.mse(pred, target)
    assert_close(value, rv, dtype=dtype, scale=2)
    assert_close(grad, rg)


def test_mse_one_dimensional(rng, ref, assert_close):
    pred, target = rng.standard_normal(10), rng.standard_normal(10)
    mse = losses.MSELoss()
    assert_close(mse(pred, target), ref.mse(pred, target)[0], dtype=np.float64)
    assert_close(mse.backward(), ref.mse(pred, target)[1])


def test_loss_backward_returns_owned_array(rng):
    ce = losses.CrossEntropyLoss()
    ce(rng.standard_normal((4, 3)), np.array([0, 1, 2, 0]))
    g1 = ce.backward()
    g1c = g1.copy()
    ce(rng.standard_normal((4, 3)), np.array([2, 2, 2, 2]))
    ce.backward()
    np.testing.assert_array_equal(g1, g1c)


def test_loss_does_not_modify_inputs(rng):
    logits = rng.standard_normal((4, 3))
    t = np.array([0, 1, 2, 0])
    ls, ts = logits.copy(), t.copy()
    ce = losses.CrossEntropyLoss()
    ce(logits, t)
    ce.backward()
    np.testing.assert_array_equal(logits, ls)
    np.testing.assert_array_equal(t, ts)


# ---------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("kind", ["int", "prob"])
def test_gradcheck_cross_entropy(kind, rng):
    logits = rng.standard_normal((7, 4))
    target = rng.integers(0, 4, 7) if kind == "int" else _prob_targets(rng, 7, 4, np.float64)
    ce = losses.CrossEntropyLoss()
    ce(logits, target)
    analytic = ce.backward().copy()
    num = numeric_grad(lambda: ce(logits, target), logits)
    np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-9)


def test_gradcheck_mse(rng):
    pred = rng.standard_normal((6, 3))
    target = rng.standard_normal((6, 3))
    mse = losses.MSELoss()
    mse(pred, target)
    analytic = mse.backward().copy()
    num = numeric_grad(lambda: mse(pred, target), pred)
    np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["ce_int", "ce_prob", "mse"])
def test_gradcheck_model_through_loss(kind, rng, ref):
    """d loss / d (input, every parameter) through Linear-Tanh-Linear + loss."""
    l0 = nn.Linear(5, 6, dtype=np.float64, seed=0)
    model = nn.Sequential(l0, nn.Tanh(), nn.Linear(6, 3, dtype=np.float64, seed=1))
    x = rng.standard_normal((8, 5))
    if kind == "ce_int":
        loss, target = losses.CrossEntropyLoss(), rng.integers(0, 3, 8)
    elif kind == "ce_prob":
        loss, target = losses.CrossEntropyLoss(), _prob_targets(rng, 8, 3, np.float64)
    else:
        loss, target = losses.MSELoss(), rng.standard_normal((8, 3))
    model.zero_grad()
    loss(model(x), target)
    gx = model.backward(loss.backward())
    analytic = {n: p.grad.copy() for n, p in model.named_parameters()}

    def f():
        return loss(model(x), target)

    np.testing.assert_allclose(gx, numeric_grad(f, x), rtol=1e-6, atol=1e-9)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(analytic[n], numeric_grad(f, p.data), rtol=1e-6, atol=1e-9,
                                   err_msg=n)
