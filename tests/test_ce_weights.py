"""CrossEntropyLoss(weight=...): class weights with torch's semantics.

Integer targets: sum_i w[y_i] l_i / sum_i w[y_i].  Probability targets:
l_i = -sum_c w_c p_ic log q_ic, averaged over the rows.
"""
import numpy as np
import pytest

import fastnn as fn
from fastnn.losses import CrossEntropyLoss

from conftest import log_softmax, numeric_grad


def ref_weighted_ce(logits, target, weight):
    """NumPy (float64) reference of torch's weighted cross-entropy and its gradient."""
    lsm = log_softmax(logits)
    n, c = lsm.shape
    w = np.asarray(weight, np.float64)
    target = np.asarray(target)
    if target.ndim == 1:
        t = np.zeros((n, c))
        t[np.arange(n), target] = 1.0
        row_w = w[target]
        denom = row_w.sum()
        loss = -(row_w * lsm[np.arange(n), target]).sum() / denom
        wt = t * w
        grad = (np.exp(lsm) * wt.sum(axis=1, keepdims=True) - wt) / denom
    else:
        wt = target.astype(np.float64) * w
        loss = -(wt * lsm).sum() / n
        grad = (np.exp(lsm) * wt.sum(axis=1, keepdims=True) - wt) / n
    return loss, grad


def _data(rng, n, c, dtype, probs=False):
    z = (3 * rng.standard_normal((n, c))).astype(dtype)
    if probs:
        t = rng.dirichlet(np.ones(c), n).astype(dtype)
    else:
        t = rng.integers(0, c, n)
    w = rng.uniform(0.1, 3.0, c)
    return z, t, w


@pytest.mark.parametrize("probs", [False, True], ids=["labels", "probs"])
@pytest.mark.parametrize("n,c", [(1, 2), (17, 5), (300, 10)])
def test_matches_numpy_reference(rng, dtype, n_threads, assert_close, probs, n, c):
    z, t, w = _data(rng, n, c, dtype, probs)
    loss = CrossEntropyLoss(weight=w)
    value = loss(z, t)
    grad = loss.backward()
    ref_v, ref_g = ref_weighted_ce(z, t, w)
    assert isinstance(value, float)
    assert grad.dtype == z.dtype and grad.shape == z.shape
    assert_close(value, ref_v, dtype=dtype, scale=10)
    assert_close(grad, ref_g, scale=10)


def test_unit_weights_equal_unweighted(rng, dtype):
    z, t, _ = _data(rng, 50, 6, dtype)
    a, b = CrossEntropyLoss(), CrossEntropyLoss(weight=np.ones(6))
    va, vb = a(z, t), b(z, t)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(vb, va, rtol=rtol)
    np.testing.assert_allclose(b.backward(), a.backward(), rtol=rtol, atol=rtol * 1e-2)
    assert a.n_correct == b.n_correct


def test_weights_scale_invariant_for_labels_but_not_probs(rng):
    z, t, w = _data(rng, 40, 4, np.float64)
    v1 = CrossEntropyLoss(weight=w)(z, t)
    v2 = CrossEntropyLoss(weight=5 * w)(z, t)
    assert v1 == pytest.approx(v2, rel=1e-13)           # weighted mean: invariant
    p = rng.dirichlet(np.ones(4), 40)
    q1 = CrossEntropyLoss(weight=w)(z, p)
    q2 = CrossEntropyLoss(weight=5 * w)(z, p)
    assert q2 == pytest.approx(5 * q1, rel=1e-13)         # mean over rows: scales


@pytest.mark.parametrize("probs", [False, True], ids=["labels", "probs"])
def test_finite_difference_gradient_float64(rng, probs):
    z, t, w = _data(rng, 6, 4, np.float64, probs)
    loss = CrossEntropyLoss(weight=w)
    loss(z, t)
    analytic = loss.backward()
    numeric = numeric_grad(lambda: loss(z, t), z)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("probs", [False, True], ids=["labels", "probs"])
def test_matches_torch(rng, dtype, probs):
    torch = pytest.importorskip("torch")
    z, t, w = _data(rng, 33, 7, dtype, probs)
    w[2] = 0.0                                         # a zero weight is allowed
    loss = CrossEntropyLoss(weight=w)
    value = loss(z, t)
    grad = loss.backward()
    zt = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(t)
    ref = torch.nn.functional.cross_entropy(zt, tt, weight=torch.tensor(w, dtype=zt.dtype))
    ref.backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(ref.item(), rel=tol, abs=tol)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=tol, atol=tol * 1e-2)


def test_zero_total_weight_is_nan_like_torch(rng):
    z, _, _ = _data(rng, 5, 3, np.float64)
    t = np.array([0, 1, 1, 0, 0])
    loss = CrossEntropyLoss(weight=[0.0, 0.0, 1.0])
    assert np.isnan(loss(z, t))
    assert np.all(np.isnan(loss.backward()))
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(t),
                                            weight=torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert np.isnan(ref.item())


def test_n_correct_unaffected_by_weights(rng):
    z, t, w = _data(rng, 100, 5, np.float32)
    a, b = CrossEntropyLoss(), CrossEntropyLoss(weight=w)
    a(z, t)
    b(z, t)
    assert b.n_correct == a.n_correct == int(np.sum(z.argmax(1) == t))


def test_weight_accepts_lists_ints_and_torch_and_copies(rng):
    loss = CrossEntropyLoss(weight=[1, 2, 3])
    assert loss.weight.dtype == np.float64 and loss.weight.tolist() == [1.0, 2.0, 3.0]
    src = np.array([1.0, 2.0, 3.0])
    loss = CrossEntropyLoss(weight=src)
    src[0] = 100.0
    assert loss.weight[0] == 1.0
    assert "weight=[1.0, 2.0, 3.0]" in repr(loss)
    torch = pytest.importorskip("torch")
    loss = CrossEntropyLoss(weight=torch.tensor([0.5, 1.5]))
    assert loss.weight.tolist() == [0.5, 1.5]


@pytest.mark.parametrize("bad,exc,msg", [
    ([1.0, -1.0, 2.0], ValueError, ">= 0"),
    ([1.0, np.nan, 2.0], ValueError, "finite"),
    ([1.0, np.inf, 2.0], ValueError, "finite"),
    ([[1.0, 2.0, 3.0]], ValueError, "1-D"),
    ([], ValueError, "1-D"),
    (["a", "b", "c"], TypeError, "real"),
])
def test_bad_weight_raises(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        CrossEntropyLoss(weight=bad)


def test_weight_length_mismatch_and_bad_labels(rng):
    z, t, _ = _data(rng, 8, 4, np.float32)
    with pytest.raises(ValueError, match="3 class weights for logits with 4 classes"):
        CrossEntropyLoss(weight=[1.0, 2.0, 3.0])(z, t)
    bad = t.copy()
    bad[3] = 4
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        CrossEntropyLoss(weight=np.ones(4))(z, bad)
    bad[3] = -1
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        CrossEntropyLoss(weight=np.ones(4))(z, bad)


def test_probability_target_dtype_mismatch(rng):
    z, t, w = _data(rng, 8, 4, np.float32, probs=True)
    with pytest.raises(TypeError):
        CrossEntropyLoss(weight=w)(z, t.astype(np.float64))


@pytest.mark.parametrize("probs", [False, True], ids=["labels", "probs"])
def test_steady_state_allocates_nothing(rng, probs):
    import tracemalloc

    z, t, w = _data(rng, 512, 10, np.float32, probs)
    loss = CrossEntropyLoss(weight=w)
    loss._forward(z, t)
    g1 = loss._backward()
    tracemalloc.start()
    try:
        loss._forward(z, t)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loss._backward() is g1
    assert peak < 1024                 # not even one float64 per row (512 rows) was allocated


def test_fit_with_weighted_loss_favours_heavy_class(rng):
    # Overlapping classes: a large weight on class 1 must raise its recall.
    n = 400
    X = rng.standard_normal((n, 2)).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.standard_normal(n) > 0.6).astype(np.int64)
    recalls = []
    for w in (None, [1.0, 8.0]):
        model = fn.nn.Linear(2, 2, seed=0)
        loss = CrossEntropyLoss(weight=w)
        opt = fn.optim.SGD(list(model.parameters()), lr=0.5)
        fn.train.fit(model, loss, opt, X, y, epochs=30, batch_size=50, seed=0, progress=False)
        pred = model.forward(X).argmax(1)
        recalls.append(np.mean(pred[y == 1] == 1))
    assert recalls[1] > recalls[0] + 0.1
