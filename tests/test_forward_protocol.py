"""The buffered forward protocol: user subclasses of built-in layers that override
``forward``/``backward`` are honoured inside Sequential, fit and evaluate (and not fused)."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import losses, nn, optim, train
from fastnn.nn.module import backward_step, forward_step


class DoubledReLU(nn.ReLU):
    """relu(x) * 2, by overriding forward and backward of the built-in ReLU."""

    calls = {"forward": 0, "backward": 0}

    def forward(self, x):
        DoubledReLU.calls["forward"] += 1
        return super().forward(x) * 2

    def backward(self, grad_y):
        DoubledReLU.calls["backward"] += 1
        return super().backward(grad_y * 2)


class ScaledLinear(nn.Linear):
    """A Linear whose output (and so its gradients) is scaled by 0.5."""

    def forward(self, x):
        return super().forward(x) * 0.5

    def backward(self, grad_y):
        return super().backward(grad_y * 0.5)


class CountingLinear(nn.Linear):
    """Overrides backward only: forward stays the built-in one."""

    backward_calls = 0

    def backward(self, grad_y):
        CountingLinear.backward_calls += 1
        return super().backward(grad_y)


class PlainSubclass(nn.ReLU):
    """No override: still the built-in methods, so still fusable."""


def _data(n=24, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, c, n)


def test_plan_fuses_builtin_pairs_only():
    plain = nn.Sequential(nn.Linear(5, 4, seed=0), nn.ReLU(), nn.Linear(4, 3, seed=1))
    plan = plain._build_plan()
    assert [epi is not None for _, epi, _ in plan] == [True, False]
    assert all(rows is None for _, _, rows in plan)
    sub = nn.Sequential(nn.Linear(5, 4, seed=0), PlainSubclass(), nn.Linear(4, 3, seed=1))
    assert [epi is not None for _, epi, _ in sub._build_plan()] == [True, False]
    for act in (DoubledReLU(), ):
        m = nn.Sequential(nn.Linear(5, 4, seed=0), act, nn.Linear(4, 3, seed=1))
        assert all(epi is None for _, epi, _ in m._build_plan())
        assert len(m._build_plan()) == 3
    m = nn.Sequential(ScaledLinear(5, 4, seed=0), nn.ReLU())
    assert all(epi is None for _, epi, _ in m._build_plan())
    m = nn.Sequential(CountingLinear(5, 4, seed=0), nn.ReLU())
    assert all(epi is None for _, epi, _ in m._build_plan())


class CountingMaxPool(nn.MaxPool2d):
    """Overrides forward: must run on its own, not inside the conv's parts."""

    calls = 0

    def forward(self, x):
        CountingMaxPool.calls += 1
        return super().forward(x)


def _cnn(pool, act=True, seed=0):
    layers = [nn.Conv2d(2, 4, 3, padding=1, dtype=np.float64, seed=seed)]
    layers += [nn.ReLU()] if act else []
    layers += [pool, nn.Conv2d(4, 3, 3, dtype=np.float64, seed=seed + 1), nn.AvgPool2d(2),
               nn.Flatten(), nn.Linear(3 * 2 * 2, 2, dtype=np.float64, seed=seed + 2)]
    return layers


def test_plan_runs_a_pool_inside_the_conv_before_it():
    plan = nn.Sequential(*_cnn(nn.MaxPool2d(2)))._build_plan()
    assert [(type(m).__name__, epi is not None, type(r).__name__) for m, epi, r in plan] == [
        ("Conv2d", True, "MaxPool2d"), ("Conv2d", False, "AvgPool2d"), ("Flatten", False, "NoneType"),
        ("Linear", False, "NoneType")]
    plan = nn.Sequential(*_cnn(CountingMaxPool(2)))._build_plan()
    assert [type(m).__name__ for m, _, _ in plan][:2] == ["Conv2d", "CountingMaxPool"]
    assert plan[0][2] is None


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("pool", ["max", "avg", "max-no-act", "subclass"])
def test_conv_with_pool_inside_matches_the_layers_one_by_one(pool, threads, monkeypatch):
    """Sequential's conv+pool regions give the outputs and gradients of the layers
    called one by one (float64, so any difference is a bug, not rounding); the
    convs split the batch into one part per thread, with chunks of 2 images."""
    from fastnn._engine import conv as econv

    monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)
    monkeypatch.setattr(econv, "CHUNK_ELEMENTS", 2 * 4 * 9 * 144)
    make = {"max": lambda: nn.MaxPool2d(2), "avg": lambda: nn.AvgPool2d(3, 2, 1),
            "max-no-act": lambda: nn.MaxPool2d(2), "subclass": lambda: CountingMaxPool(2)}[pool]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 2, 12, 12))
    fused = nn.Sequential(*_cnn(make(), act=pool != "max-no-act"))
    alone = _cnn(make(), act=pool != "max-no-act")
    for a, b in zip(fused, alone):
        b.load_state_dict(a.state_dict())
    with fn.threads(threads):
        for step in range(2):   # the second step reuses every buffer
            y = fused.forward(x)
            g = rng.standard_normal(y.shape)
            fused.zero_grad()
            gx = fused.backward(g)
            for m in alone:
                m.zero_grad()
            ry, rgx = _reference(alone, x, g)
            np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(gx, rgx, rtol=1e-12, atol=1e-12)
            for (name, p), (_, q) in zip(fused.named_parameters(), nn.Sequential(*alone).named_parameters()):
                np.testing.assert_allclose(p.grad, q.grad, rtol=1e-11, atol=1e-12, err_msg=name)
    # the pool inside a region keeps what its own backward needs
    pool_layer = fused[2] if pool != "max-no-act" else fused[1]
    gp = pool_layer.backward(np.ones(pool_layer._saved[1].shape))
    assert gp.shape == (9, 4, 12, 12)


def _reference(model_layers, x, g):
    """Forward and backward by calling each layer's public methods in order."""
    h = x
    for layer in model_layers:
        h = layer.forward(h)
    out = h.copy()
    for layer in reversed(model_layers):
        g = layer.backward(g)
    return out, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_honours_overridden_activation(dtype):
    x, _ = _data()
    x = x.astype(dtype)
    layers = [nn.Linear(5, 4, seed=0, dtype=dtype), DoubledReLU(), nn.Linear(4, 3, seed=1, dtype=dtype)]
    ref_layers = [nn.Linear(5, 4, seed=0, dtype=dtype), DoubledReLU(), nn.Linear(4, 3, seed=1, dtype=dtype)]
    model = nn.Sequential(*layers)
    g = np.ones((x.shape[0], 3), dtype)
    before = dict(DoubledReLU.calls)
    y = model(x)
    gx = model.backward(g)
    assert DoubledReLU.calls["forward"] == before["forward"] + 1
    assert DoubledReLU.calls["backward"] == before["backward"] + 1
    want_y, want_gx = _reference(ref_layers, x, g)
    np.testing.assert_allclose(y, want_y, rtol=1e-6)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-6)
    # and the doubling is really there: the plain model gives half the hidden activation
    plain = nn.Sequential(nn.Linear(5, 4, seed=0, dtype=dtype), nn.ReLU(), nn.Linear(4, 3, seed=1, dtype=dtype))
    assert not np.allclose(plain(x), y)
    for (name, p), (_, q) in zip(model.named_parameters(), nn.Sequential(*ref_layers).named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-6, err_msg=name)


def test_sequential_honours_overridden_linear():
    x, _ = _data()
    x = x.astype(np.float32)
    model = nn.Sequential(ScaledLinear(5, 4, seed=0), nn.Tanh(), nn.Linear(4, 3, seed=1))
    ref = [ScaledLinear(5, 4, seed=0), nn.Tanh(), nn.Linear(4, 3, seed=1)]
    g = np.full((x.shape[0], 3), 0.25, np.float32)
    y = model(x)
    gx = model.backward(g)
    want_y, want_gx = _reference(ref, x, g)
    np.testing.assert_allclose(y, want_y, rtol=1e-6)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-6)
    np.testing.assert_allclose(model[0].weight.grad, ref[0].weight.grad, rtol=1e-6)


def test_fit_and_evaluate_honour_overrides():
    X, y = _data(n=40)
    loss = losses.CrossEntropyLoss()

    def run(act):
        model = nn.Sequential(nn.Linear(5, 8, seed=0, dtype=np.float64), act,
                              nn.Linear(8, 3, seed=1, dtype=np.float64))
        opt = optim.SGD(model.parameters(), lr=0.1)
        hist = train.fit(model, loss, opt, X, y, epochs=2, batch_size=8, seed=0, progress=False)
        return model, hist

    before = dict(DoubledReLU.calls)
    model, hist = run(DoubledReLU())
    assert DoubledReLU.calls["forward"] - before["forward"] == 2 * 5
    assert DoubledReLU.calls["backward"] - before["backward"] == 2 * 5
    plain, plain_hist = run(nn.ReLU())
    assert hist.history["loss"] != plain_hist.history["loss"]
    # a reference run by hand with the same order of minibatches gives the same weights
    ref = nn.Sequential(nn.Linear(5, 8, seed=0, dtype=np.float64), DoubledReLU(),
                        nn.Linear(8, 3, seed=1, dtype=np.float64))
    opt = optim.SGD(ref.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    order = np.arange(40)
    for _ in range(2):
        rng.shuffle(order)
        for s in range(5):
            idx = order[s * 8:(s + 1) * 8]
            opt.zero_grad()
            loss(ref(X[idx]), y[idx])
            ref.backward(loss.backward())
            opt.step()
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12, err_msg=name)
    before = DoubledReLU.calls["forward"]
    res = train.evaluate(model, loss, X, y, batch_size=16)
    assert DoubledReLU.calls["forward"] - before == 3
    logits = model(X)
    want = loss(logits, y)
    assert res["loss"] == pytest.approx(want, rel=1e-12)


def test_fit_honours_backward_only_override():
    X, y = _data(n=16)
    CountingLinear.backward_calls = 0
    model = nn.Sequential(CountingLinear(5, 4, seed=0, dtype=np.float64), nn.ReLU(),
                          nn.Linear(4, 3, seed=1, dtype=np.float64))
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
              epochs=1, batch_size=4, progress=False)
    assert CountingLinear.backward_calls == 4


def test_model_subclass_forward_honoured_by_fit():
    """A Sequential subclass that overrides forward/backward: fit calls them."""
    calls = []

    class Tapped(nn.Sequential):
        def forward(self, x):
            calls.append("f")
            return super().forward(x)

        def backward(self, grad_y):
            calls.append("b")
            return super().backward(grad_y)

    X, y = _data(n=12)
    model = Tapped(nn.Linear(5, 3, seed=0, dtype=np.float64))
    train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
              epochs=1, batch_size=4, progress=False)
    assert calls == ["f", "b"] * 3


def test_step_functions_dispatch():
    relu = DoubledReLU()
    x = np.array([[-1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(forward_step(relu, x), [[0.0, 4.0]])
    np.testing.assert_array_equal(backward_step(relu, np.ones((1, 2), np.float32)), [[0.0, 2.0]])
    plain = nn.ReLU()
    np.testing.assert_array_equal(forward_step(plain, x), [[0.0, 2.0]])
    assert backward_step(plain, np.ones((1, 2), np.float32), False) is None
    assert fn.nn.ReLU._native_forward and not DoubledReLU._native_forward
    assert PlainSubclass._native_forward and PlainSubclass._native_backward


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_sequential_ending_in_recurrent_layer(kind):
    """Sequential's public forward returns owned copies of a recurrent layer's
    (output, state) tuple, and backward takes the output gradient."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    rec = nn.LSTM(5, 6, batch_first=True, seed=0) if kind == "lstm" else nn.RNN(5, 6, batch_first=True, seed=0)
    alone = nn.LSTM(5, 6, batch_first=True, seed=0) if kind == "lstm" else nn.RNN(5, 6, batch_first=True, seed=0)
    model = nn.Sequential(rec)
    y, state = model(x)
    want_y, want_state = alone(x)
    np.testing.assert_array_equal(y, want_y)
    flat = state if kind == "lstm" else (state,)
    want_flat = want_state if kind == "lstm" else (want_state,)
    for a, b in zip(flat, want_flat):
        np.testing.assert_array_equal(a, b)
    y2, _ = model(2 * x)              # the first result is the caller's: not overwritten
    np.testing.assert_array_equal(y, want_y)
    assert not np.array_equal(y2, y)
    model(x)
    g = np.ones_like(y)
    np.testing.assert_allclose(model.backward(g), alone.backward(g), rtol=1e-6)


def test_parameter_gradient_protocol():
    """zero_grad() is lazy (grad_is_zero; the buffer is not touched), grad_target() says
    overwrite once and accumulate afterwards, bind_grad() moves the gradient into a new
    buffer (values copied, a lazy zero kept lazy, bad buffers refused)."""
    p = nn.Parameter(np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    g0 = p.grad
    g0[...] = 7.0
    assert not p.grad_is_zero
    buf = np.empty_like(p.data)
    p.bind_grad(buf)
    assert p.grad is buf and np.all(buf == 7.0)
    p.zero_grad()
    assert p.grad_is_zero and np.all(buf == 7.0)        # lazy: nothing written yet
    other = np.full_like(p.data, -1.0)
    p.bind_grad(other)
    assert p.grad_is_zero and np.all(other == -1.0)     # a lazy zero is not copied
    target, accumulate = p.grad_target()
    assert target is other and not accumulate and not p.grad_is_zero
    assert p.grad_target() == (other, True)
    p.zero_grad()
    assert np.all(p.grad == 0) and not p.grad_is_zero   # reading .grad writes the zeros
    for bad in (np.zeros((3, 2)), np.zeros((2, 3), np.float32), [[0.0] * 3] * 2):
        with pytest.raises(ValueError, match="bind_grad needs"):
            p.bind_grad(bad)
    ro = np.zeros((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        p.bind_grad(ro)
    assert p.grad is other


def test_named_state_and_buffers_are_the_live_arrays_of_state_dict():
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2, seed=1))
    state = model.state_dict()
    live = list(model.named_state())
    assert [k for k, _ in live] == list(state)
    params = dict(model.named_parameters())
    for k, arr in live:
        np.testing.assert_array_equal(arr, state[k])
        if k in params:
            assert arr is params[k].data
    bufs = list(model.named_buffers())
    assert bufs and all(k.startswith("1.") for k, _ in bufs)
    assert all(arr is dict(live)[k] for k, arr in bufs)


def test_signature_is_the_format_that_checkpoints_store():
    """Module.signature() keeps the format of the checkpoints already on disk (a resume
    compares it), and the MPI signature is the same facts keyed by state name."""
    from fastnn.distributed import model_signature

    model = nn.Sequential(nn.Linear(3, 2, seed=0), nn.BatchNorm1d(2))
    sig = model.signature()
    assert sig["classes"] == ["Sequential", "Linear", "BatchNorm1d"]
    assert sig["state"][:2] == [["0.weight", [2, 3], "float32"], ["0.bias", [2], "float32"]]
    assert [k for k, _, _ in sig["state"]] == list(model.state_dict())
    mpi = model_signature(model)
    assert mpi["classes"] == sig["classes"] and mpi["state"]["0.weight"] == "float32 (2, 3)"
