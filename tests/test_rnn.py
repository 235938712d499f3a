"""Recurrent layers (fastnn.nn.RNN, fastnn.nn.LSTM): NumPy BPTT references,
float64 finite differences, torch comparisons, edge shapes and bad input."""
import numpy as np
import pytest

import fastnn as fn
from fastnn._engine import blas
from fastnn._kernels import _rnn
from conftest import numeric_grad

KINDS = ["lstm", "rnn_tanh", "rnn_relu"]


@pytest.fixture(params=["c", "numpy"])
def loops(request, monkeypatch):
    """The time loops in C (GEMMs through fastnn._engine.blas; skipped without an entry
    point) or in NumPy."""
    if request.param == "c":
        if not blas.c_loops():
            pytest.skip("no BLAS entry point for the C loops (fastnn._engine.blas)")
        calls = []
        for name in ("forward_loop", "backward_loop"):
            real = getattr(_rnn, name)
            monkeypatch.setattr(_rnn, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
        yield calls
        assert "forward_loop" in calls and "backward_loop" in calls, calls
    else:
        monkeypatch.setattr(blas, "C_LOOPS", False)
        yield None


# --------------------------------------------------------------------------------------
# NumPy reference (float64), time-major internally
# --------------------------------------------------------------------------------------

def _sigmoid(z):
    e = np.exp(-np.abs(z))  # never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def ref_forward(kind, x, state, params, batch_first):
    """Returns (output, h_n, c_n or None, cache) in float64."""
    wih, whh, bih, bhh = (None if p is None else np.asarray(p, np.float64) for p in params)
    x = np.asarray(x, np.float64)
    xs = x.transpose(1, 0, 2) if batch_first else x
    t_len, n, _ = xs.shape
    hsz = whh.shape[1]
    h0, c0 = state
    h = np.zeros((n, hsz)) if h0 is None else np.asarray(h0, np.float64)[0].copy()
    c = np.zeros((n, hsz)) if c0 is None else np.asarray(c0, np.float64)[0].copy()
    hs, cs, acts = [h], [c], []
    for t in range(t_len):
        z = xs[t] @ wih.T + h @ whh.T
        if bih is not None:
            z = z + bih + bhh
        if kind == "lstm":
            i, f = _sigmoid(z[:, :hsz]), _sigmoid(z[:, hsz:2 * hsz])
            g, o = np.tanh(z[:, 2 * hsz:3 * hsz]), _sigmoid(z[:, 3 * hsz:])
            c = f * c + i * g
            h = o * np.tanh(c)
            acts.append((i, f, g, o))
        else:
            h = np.tanh(z) if kind == "rnn_tanh" else np.maximum(z, 0.0)
            acts.append(h)
        hs.append(h)
        cs.append(c)
    ys = np.stack(hs[1:])
    out = ys.transpose(1, 0, 2) if batch_first else ys
    cache = (kind, xs, hs, cs, acts, wih, whh, bih is not None, batch_first)
    return out, h[None], (c[None] if kind == "lstm" else None), cache


def ref_backward(cache, grad_out, grad_h_n=None, grad_c_n=None):
    """BPTT: returns (grad_x, [grad_wih, grad_whh, grad_bih, grad_bhh], grad_h0, grad_c0)."""
    kind, xs, hs, cs, acts, wih, whh, has_bias, batch_first = cache
    gys = np.asarray(grad_out, np.float64)
    gys = gys.transpose(1, 0, 2) if batch_first else gys
    t_len, n, _ = xs.shape
    hsz = whh.shape[1]
    dh = np.zeros((n, hsz)) if grad_h_n is None else np.asarray(grad_h_n, np.float64)[0].copy()
    dc = np.zeros((n, hsz)) if grad_c_n is None else np.asarray(grad_c_n, np.float64)[0].copy()
    gwih, gwhh = np.zeros_like(wih), np.zeros_like(whh)
    gb = np.zeros(wih.shape[0])
    gx = np.zeros_like(xs)
    for t in range(t_len - 1, -1, -1):
        dh = dh + gys[t]
        if kind == "lstm":
            i, f, g, o = acts[t]
            tc = np.tanh(cs[t + 1])
            dc = dc + dh * o * (1 - tc ** 2)
            dz = np.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f),
                                 dc * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
            dc = dc * f
        else:
            h = acts[t]
            dz = dh * (1 - h ** 2) if kind == "rnn_tanh" else dh * (h > 0)
        gwih += dz.T @ xs[t]
        gwhh += dz.T @ hs[t]
        gb += dz.sum(axis=0)
        gx[t] = dz @ wih
        dh = dz @ whh
    gx = gx.transpose(1, 0, 2) if batch_first else gx
    grads = [gwih, gwhh] + ([gb, gb.copy()] if has_bias else [])
    return gx, grads, dh[None], (dc[None] if kind == "lstm" else None)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def make(kind, in_f, hid, dtype=np.float32, batch_first=True, bias=True, seed=0):
    if kind == "lstm":
        return fn.nn.LSTM(in_f, hid, bias=bias, batch_first=batch_first, dtype=dtype, seed=seed)
    return fn.nn.RNN(in_f, hid, nonlinearity=kind[4:], bias=bias, batch_first=batch_first, dtype=dtype,
                     seed=seed)


def params_of(m):
    return [m.weight_ih_l0.data, m.weight_hh_l0.data,
            None if m.bias_ih_l0 is None else m.bias_ih_l0.data,
            None if m.bias_hh_l0 is None else m.bias_hh_l0.data]


def run_forward(m, kind, x, h0=None, c0=None):
    """Uniform (output, h_n, c_n) over RNN/LSTM."""
    if kind == "lstm":
        y, (h, c) = m.forward(x, None if h0 is None else (h0, c0))
        return y, h, c
    y, h = m.forward(x, h0)
    return y, h, None


def run_backward(m, kind, gy, ghn=None, gcn=None):
    if kind == "lstm":
        gs = None if ghn is None and gcn is None else (ghn, gcn)
        gx = m.backward(gy, gs)
        gh0, gc0 = m.grad_state0
        return gx, gh0, gc0
    gx = m.backward(gy, ghn)
    return gx, m.grad_state0, None


def seq_shape(n, t, f, batch_first):
    return (n, t, f) if batch_first else (t, n, f)


# --------------------------------------------------------------------------------------
# NumPy reference, forward and backward
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
def test_matches_numpy_reference(kind, batch_first, with_state, dtype, n_threads, rng, assert_close,
                                 loops):
    n, t, i, h = 5, 7, 6, 8
    m = make(kind, i, h, dtype, batch_first, seed=3)
    x = rng.standard_normal(seq_shape(n, t, i, batch_first)).astype(dtype)
    h0 = rng.standard_normal((1, n, h)).astype(dtype) if with_state else None
    c0 = rng.standard_normal((1, n, h)).astype(dtype) if with_state and kind == "lstm" else None
    y, hn, cn = run_forward(m, kind, x, h0, c0)
    ry, rh, rc, cache = ref_forward(kind, x, (h0, c0), params_of(m), batch_first)
    assert y.shape == seq_shape(n, t, h, batch_first) and y.dtype == dtype
    assert hn.shape == (1, n, h)
    assert_close(y, ry, scale=10)
    assert_close(hn, rh, scale=10)
    if kind == "lstm":
        assert_close(cn, rc, scale=10)

    gy = rng.standard_normal(y.shape).astype(dtype)
    ghn = rng.standard_normal((1, n, h)).astype(dtype) if with_state else None
    gcn = rng.standard_normal((1, n, h)).astype(dtype) if with_state and kind == "lstm" else None
    gx, gh0, gc0 = run_backward(m, kind, gy, ghn, gcn)
    rgx, rgrads, rgh0, rgc0 = ref_backward(cache, gy, ghn, gcn)
    assert gx.shape == x.shape and gx.dtype == dtype
    assert_close(gx, rgx, scale=30)
    assert_close(gh0, rgh0, scale=30)
    if kind == "lstm":
        assert_close(gc0, rgc0, scale=30)
    for (name, p), rg in zip(m.named_parameters(), rgrads):
        assert_close(p.grad, rg, scale=100, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n, t", [(1, 4), (3, 1), (1, 1)], ids=["batch1", "seq1", "batch1_seq1"])
def test_edge_shapes(kind, n, t, dtype, rng, assert_close):
    i, h = 3, 5
    m = make(kind, i, h, dtype)
    x = rng.standard_normal((n, t, i)).astype(dtype)
    y, hn, cn = run_forward(m, kind, x)
    ry, rh, rc, cache = ref_forward(kind, x, (None, None), params_of(m), True)
    assert_close(y, ry, scale=10)
    assert_close(hn, rh, scale=10)
    np.testing.assert_array_equal(hn[0], y[:, -1])
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx, gh0, _ = run_backward(m, kind, gy)
    rgx, rgrads, rgh0, _ = ref_backward(cache, gy)
    assert_close(gx, rgx, scale=30)
    assert_close(gh0, rgh0, scale=30)
    for (name, p), rg in zip(m.named_parameters(), rgrads):
        assert_close(p.grad, rg, scale=100, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_no_bias(kind, rng, assert_close):
    m = make(kind, 4, 6, np.float64, bias=False)
    assert [name for name, _ in m.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    x = rng.standard_normal((3, 5, 4))
    y, hn, _ = run_forward(m, kind, x)
    ry, rh, _, cache = ref_forward(kind, x, (None, None), params_of(m), True)
    assert_close(y, ry)
    gy = rng.standard_normal(y.shape)
    gx, _, _ = run_backward(m, kind, gy)
    rgx, rgrads, _, _ = ref_backward(cache, gy)
    assert_close(gx, rgx)
    for (name, p), rg in zip(m.named_parameters(), rgrads):
        assert_close(p.grad, rg, err_msg=name)


# --------------------------------------------------------------------------------------
# float64 finite differences
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
def test_finite_differences(kind, batch_first, rng):
    n, t, i, h = 2, 3, 3, 4
    m = make(kind, i, h, np.float64, batch_first, seed=7)
    x = rng.standard_normal(seq_shape(n, t, i, batch_first))
    h0 = rng.standard_normal((1, n, h))
    c0 = rng.standard_normal((1, n, h))
    gy = rng.standard_normal(seq_shape(n, t, h, batch_first))
    ghn = rng.standard_normal((1, n, h))
    gcn = rng.standard_normal((1, n, h))
    if kind == "rnn_relu":  # keep pre-activations away from the kink
        m.bias_ih_l0.data[...] = 0.3

    def loss():
        y, hn, cn = run_forward(m, kind, x, h0, c0 if kind == "lstm" else None)
        val = np.sum(y * gy) + np.sum(hn * ghn)
        if kind == "lstm":
            val += np.sum(cn * gcn)
        return val

    loss()
    m.zero_grad()
    gx, gh0, gc0 = run_backward(m, kind, gy, ghn, gcn if kind == "lstm" else None)
    checks = [("x", x, gx), ("h0", h0, gh0)]
    if kind == "lstm":
        checks.append(("c0", c0, gc0))
    checks += [(name, p.data, p.grad.copy()) for name, p in m.named_parameters()]
    for name, arr, analytic in checks:
        num = numeric_grad(loss, arr)
        np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-8, err_msg=name)


# --------------------------------------------------------------------------------------
# torch comparison
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_state", "state_and_grad_state"])
def test_matches_torch(kind, batch_first, with_state, dtype, rng, assert_close):
    torch = pytest.importorskip("torch")
    n, t, i, h = 4, 6, 5, 7
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    if kind == "lstm":
        tm = torch.nn.LSTM(i, h, batch_first=batch_first).to(tdt)
    else:
        tm = torch.nn.RNN(i, h, nonlinearity=kind[4:], batch_first=batch_first).to(tdt)
    m = make(kind, i, h, dtype, batch_first, seed=123)
    m.load_state_dict(tm.state_dict())
    x = rng.standard_normal(seq_shape(n, t, i, batch_first)).astype(dtype)
    gy = rng.standard_normal(seq_shape(n, t, h, batch_first)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    h0 = c0 = ghn = gcn = None
    if with_state:
        h0 = rng.standard_normal((1, n, h)).astype(dtype)
        c0 = rng.standard_normal((1, n, h)).astype(dtype)
        ghn = rng.standard_normal((1, n, h)).astype(dtype)
        gcn = rng.standard_normal((1, n, h)).astype(dtype)
        h0t = torch.tensor(h0, requires_grad=True)
        c0t = torch.tensor(c0, requires_grad=True)
    if kind == "lstm":
        yt, (hnt, cnt) = tm(xt, (h0t, c0t) if with_state else None)
    else:
        yt, hnt = tm(xt, h0t if with_state else None)
        cnt = None
    obj = (yt * torch.tensor(gy)).sum()
    if with_state:
        obj = obj + (hnt * torch.tensor(ghn)).sum()
        if kind == "lstm":
            obj = obj + (cnt * torch.tensor(gcn)).sum()
    obj.backward()

    y, hn, cn = run_forward(m, kind, x, h0, c0 if kind == "lstm" else None)
    assert_close(y, yt.detach().numpy(), scale=10)
    assert_close(hn, hnt.detach().numpy(), scale=10)
    if kind == "lstm":
        assert_close(cn, cnt.detach().numpy(), scale=10)
    gx, gh0, gc0 = run_backward(m, kind, gy, ghn, gcn if kind == "lstm" else None)
    assert_close(gx, xt.grad.numpy(), scale=30)
    if with_state:
        assert_close(gh0, h0t.grad.numpy(), scale=30)
        if kind == "lstm":
            assert_close(gc0, c0t.grad.numpy(), scale=30)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad, tparams[name].grad.numpy(), scale=100, err_msg=name)


def test_lstm_grad_state_partial(rng, assert_close):
    """grad_state=(grad_h_n, None) and (None, grad_c_n) as the reference."""
    m = make("lstm", 3, 4, np.float64)
    x = rng.standard_normal((2, 5, 3))
    gy = rng.standard_normal((2, 5, 4))
    g = rng.standard_normal((1, 2, 4))
    m.forward(x)
    _, _, _, cache = ref_forward("lstm", x, (None, None), params_of(m), True)
    for ghn, gcn in ((g, None), (None, g)):
        m.zero_grad()
        gx = m.backward(gy, (ghn, gcn))
        rgx, rgrads, rgh0, rgc0 = ref_backward(cache, gy, ghn, gcn)
        assert_close(gx, rgx)
        assert_close(m.grad_state0[0], rgh0)
        assert_close(m.grad_state0[1], rgc0)
        assert_close(m.weight_hh_l0.grad, rgrads[1])


def test_state_dict_names_and_torch_roundtrip():
    torch = pytest.importorskip("torch")
    m = fn.nn.LSTM(5, 6)
    tm = torch.nn.LSTM(5, 6, batch_first=True)
    assert list(m.state_dict()) == list(tm.state_dict())
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), m.state_dict()[k])
    r = fn.nn.RNN(5, 6)
    assert list(r.state_dict()) == list(torch.nn.RNN(5, 6).state_dict())


# --------------------------------------------------------------------------------------
# semantics: accumulation, buffers, owned outputs, init
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_grads_accumulate_and_zero_grad(kind, rng, assert_close):
    m = make(kind, 3, 4, np.float64)
    x = rng.standard_normal((2, 3, 3))
    gy = rng.standard_normal((2, 3, 4))
    m.forward(x)
    m.backward(gy)
    first = {name: p.grad.copy() for name, p in m.named_parameters()}
    assert all(np.any(g != 0) for g in first.values())
    m.forward(x)
    m.backward(gy)
    for name, p in m.named_parameters():
        assert_close(p.grad, 2 * first[name], err_msg=name)
    m.zero_grad()
    m.forward(x)
    m.backward(gy)
    for name, p in m.named_parameters():
        assert_close(p.grad, first[name], err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_buffers_reused_and_outputs_owned(kind, rng):
    m = make(kind, 3, 4)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 5, 4)).astype(np.float32)
    y1, h1, _ = run_forward(m, kind, x)
    gx1 = m.backward(gy)
    keep = (y1.copy(), h1.copy(), gx1.copy())
    bufs = {k: id(v) for k, v in m._bufs._d.items()}
    y2, h2, _ = run_forward(m, kind, 2 * x)
    m.backward(2 * gy)
    # same shapes: no new work arrays
    assert {k: id(v) for k, v in m._bufs._d.items()} == bufs
    # arrays handed out earlier are never overwritten
    np.testing.assert_array_equal(y1, keep[0])
    np.testing.assert_array_equal(h1, keep[1])
    np.testing.assert_array_equal(gx1, keep[2])
    assert not np.array_equal(y1, y2)


def test_init_bounds_and_seed():
    h = 16
    m = fn.nn.LSTM(8, h, seed=5)
    k = 1 / np.sqrt(h)
    for name, p in m.named_parameters():
        assert p.data.dtype == np.float32
        assert np.all(np.abs(p.data) <= k), name
        assert p.data.std() > 0.4 * k, name  # uniform on [-k, k] has std k / sqrt(3)
    assert m.weight_ih_l0.shape == (4 * h, 8) and m.weight_hh_l0.shape == (4 * h, h)
    assert m.bias_ih_l0.shape == (4 * h,) and m.bias_hh_l0.shape == (4 * h,)
    r = fn.nn.RNN(8, h, seed=5)
    assert r.weight_ih_l0.shape == (h, 8) and r.weight_hh_l0.shape == (h, h)
    m2 = fn.nn.LSTM(8, h, seed=5)
    np.testing.assert_array_equal(m.weight_hh_l0.data, m2.weight_hh_l0.data)
    assert not np.array_equal(m.weight_hh_l0.data, fn.nn.LSTM(8, h, seed=6).weight_hh_l0.data)


@pytest.mark.parametrize("kind", KINDS)
def test_non_contiguous_input(kind, rng, assert_close):
    m = make(kind, 3, 4, np.float64)
    big = rng.standard_normal((2, 10, 3))
    x = big[:, ::2]
    assert not x.flags.c_contiguous
    y, _, _ = run_forward(m, kind, x)
    ry, _, _, cache = ref_forward(kind, x, (None, None), params_of(m), True)
    assert_close(y, ry)
    gy = rng.standard_normal((2, 5, 4))[:, ::-1]
    gx, _, _ = run_backward(m, kind, gy)
    assert_close(gx, ref_backward(cache, gy)[0])


def test_call_is_forward(rng):
    m = fn.nn.LSTM(3, 4, dtype=np.float64)
    x = rng.standard_normal((2, 3, 3))
    s = (rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4)))
    y1, (h1, c1) = m(x, s)
    y2, (h2, c2) = m.forward(x, s)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(c1, c2)


# --------------------------------------------------------------------------------------
# nonlinearities: accuracy and extreme inputs
# --------------------------------------------------------------------------------------

def test_gate_nonlinearities_accurate_and_safe(dtype):
    x = np.concatenate([np.linspace(-100, 100, 200001),
                        [0.0, -0.0, 1e-30, -1e-30, 0.6249, 0.625, 20.0, -20.0, 88.0, -88.0,
                         1e30, -1e30, np.inf, -np.inf]]).astype(dtype)
    sig, th = np.empty_like(x), np.empty_like(x)
    with np.errstate(over="raise", invalid="raise"):
        _rnn.sigmoid_tanh(x, sig, th)
    xd = x.astype(np.float64)
    rs = np.where(xd >= 0, 1 / (1 + np.exp(-np.abs(xd))), np.exp(-np.abs(xd)) / (1 + np.exp(-np.abs(xd))))
    rt = np.tanh(xd)
    assert np.all(np.isfinite(sig)) and np.all(np.isfinite(th))
    assert np.all((sig >= 0) & (sig <= 1)) and np.all(np.abs(th) <= 1)
    if dtype == np.float32:
        # within a few float32 ulps of the exact value (absolute near 0 for the sigmoid tail)
        ulp_s = np.spacing(rs.astype(np.float32)).astype(np.float64)
        ulp_t = np.spacing(np.abs(rt).astype(np.float32)).astype(np.float64)
        assert np.max(np.abs(sig - rs) / np.maximum(ulp_s, 1e-38)) <= 4
        assert np.max(np.abs(th - rt) / np.maximum(ulp_t, 1e-45)) <= 4
    else:
        np.testing.assert_allclose(sig, rs, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(th, rt, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(np.sign(th), np.sign(x))  # odd, including -0.0 -> -0.0 sign 0
    nan = np.array([np.nan], dtype)
    s1, t1 = np.empty_like(nan), np.empty_like(nan)
    _rnn.sigmoid_tanh(nan, s1, t1)
    assert np.isnan(s1[0]) and np.isnan(t1[0])


@pytest.mark.parametrize("kind", KINDS)
def test_large_inputs_saturate_without_overflow(kind, dtype, rng, assert_close):
    m = make(kind, 4, 6, dtype)
    x = (rng.standard_normal((3, 4, 4)) * 1e4).astype(dtype)
    with np.errstate(all="raise"):
        y, hn, cn = run_forward(m, kind, x)
    ry, _, _, cache = ref_forward(kind, x, (None, None), params_of(m), True)
    assert np.all(np.isfinite(y))
    assert_close(y, ry, scale=10)
    gx, _, _ = run_backward(m, kind, np.ones_like(y))
    assert np.all(np.isfinite(gx))


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------

def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="hidden_size"):
        fn.nn.LSTM(3, 0)
    with pytest.raises(ValueError, match="hidden_size"):
        fn.nn.RNN(3, 0)
    with pytest.raises(ValueError, match="input_size"):
        fn.nn.RNN(-1, 4)
    with pytest.raises(TypeError, match="hidden_size"):
        fn.nn.LSTM(3, 2.5)
    with pytest.raises(ValueError, match="nonlinearity.*'sigmoid'"):
        fn.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="dtype"):
        fn.nn.LSTM(3, 4, dtype=np.int32)
    with pytest.raises(TypeError, match="batch_first"):
        fn.nn.LSTM(3, 4, batch_first="yes")


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_raises_and_leaves_model_unchanged(kind, rng):
    m = make(kind, 3, 4)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    good = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"3-D.*Received shape \(2, 3\)"):
        run_forward(m, kind, good[:, 0])
    with pytest.raises(ValueError, match=r"input_size=3.*\(2, 5, 4\)"):
        run_forward(m, kind, np.zeros((2, 5, 4), np.float32))
    with pytest.raises(TypeError, match="float32.*float64"):
        run_forward(m, kind, good.astype(np.float64))
    with pytest.raises(TypeError, match="numpy array"):
        run_forward(m, kind, "abc")
    with pytest.raises(ValueError, match="non-empty"):
        run_forward(m, kind, np.zeros((0, 5, 3), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        run_forward(m, kind, np.zeros((2, 0, 3), np.float32))
    bad_h = np.zeros((2, 4), np.float32)  # torch wants (1, batch, hidden)
    with pytest.raises(ValueError, match=r"h0 must have shape.*\(1, 2, 4\).*\(2, 4\)"):
        run_forward(m, kind, good, bad_h, bad_h)
    with pytest.raises(ValueError, match=r"h0 must have shape"):
        run_forward(m, kind, good, np.zeros((1, 3, 4), np.float32), np.zeros((1, 3, 4), np.float32))
    with pytest.raises(TypeError, match="h0 must have dtype float32"):
        run_forward(m, kind, good, np.zeros((1, 2, 4)), np.zeros((1, 2, 4), np.float32))
    if kind == "lstm":
        with pytest.raises(ValueError, match=r"c0 must have shape"):
            run_forward(m, kind, good, np.zeros((1, 2, 4), np.float32), np.zeros((1, 2, 5), np.float32))
        with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
            m.forward(good, np.zeros((1, 2, 4), np.float32))
        with pytest.raises(ValueError, match="both h0 and c0"):
            m.forward(good, (np.zeros((1, 2, 4), np.float32), None))
    with pytest.raises(RuntimeError, match="before forward"):
        make(kind, 3, 4).backward(np.zeros((2, 5, 4), np.float32))
    y, _, _ = run_forward(m, kind, good)
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape \(2, 5, 4\)"):
        m.backward(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(TypeError, match="grad_output must have dtype float32"):
        m.backward(np.zeros((2, 5, 4)))
    bad_gs = np.zeros((1, 2, 5), np.float32)
    with pytest.raises(ValueError, match="grad_state"):
        m.backward(np.zeros_like(y), (bad_gs, None) if kind == "lstm" else bad_gs)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    for name, p in m.named_parameters():
        assert not np.any(p.grad), name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_split", [False, True], ids=["one_thread", "batch_split"])
def test_backward_without_input_grad(kind, batch_split, rng, assert_close, monkeypatch, loops):
    """The internal backward of a first layer (no input gradient wanted) still gives
    the parameter gradients and the initial-state gradient."""
    from fastnn.nn import rnn as rnn_mod

    if batch_split:
        monkeypatch.setattr(rnn_mod, "BATCH_SPLIT_MIN_MACS", 0)
        monkeypatch.setattr(rnn_mod, "BATCH_SPLIT_MIN_ROWS", 1)
    n, t, i, h = 3, 9, 4, 5
    m = make(kind, i, h, np.float64, seed=4)
    x = rng.standard_normal((n, t, i))
    gy = rng.standard_normal((n, t, h))
    with fn.threads(2 if batch_split else 1):
        m._forward(x)
        assert m._saved[0] == ("split" if batch_split else "one")
        assert m._backward(gy, False) is None
    _, _, _, cache = ref_forward(kind, x, (None, None), params_of(m), True)
    _, rgrads, rgh0, rgc0 = ref_backward(cache, gy)
    for (name, p), rg in zip(m.named_parameters(), rgrads):
        assert_close(p.grad, rg, err_msg=name)
    gs0 = m.grad_state0
    assert_close(gs0[0] if kind == "lstm" else gs0, rgh0)
    if kind == "lstm":
        assert_close(gs0[1], rgc0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [2, 7], ids=["batch2", "batch7_uneven"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_batch_split_matches_reference(kind, n, with_state, threads, dtype, rng, assert_close,
                                       monkeypatch, loops):
    """With several threads and enough work (forced here), parts of the batch (one per
    thread, at most one per sequence) run on the threads in their own buffers: same
    outputs and gradients, the parameter gradients of the parts summed and accumulated."""
    from fastnn.nn import rnn as rnn_mod

    monkeypatch.setattr(rnn_mod, "BATCH_SPLIT_MIN_MACS", 0)
    monkeypatch.setattr(rnn_mod, "BATCH_SPLIT_MIN_ROWS", 1)
    t, i, h = 6, 4, 5
    m = make(kind, i, h, dtype, True, seed=9)
    x = rng.standard_normal((n, t, i)).astype(dtype)
    gy = rng.standard_normal((n, t, h)).astype(dtype)
    h0 = rng.standard_normal((1, n, h)).astype(dtype) if with_state else None
    c0 = rng.standard_normal((1, n, h)).astype(dtype) if with_state else None
    ghn = rng.standard_normal((1, n, h)).astype(dtype) if with_state else None
    gcn = rng.standard_normal((1, n, h)).astype(dtype) if with_state else None
    lstm = kind == "lstm"
    with fn.threads(threads):
        y, hn, cn = run_forward(m, kind, x, h0, c0 if lstm else None)
        assert m._saved[0] == "split"
        assert len(m._saved[1][1]) == min(threads, n)   # the parts' row ranges
        gx, gh0, gc0 = run_backward(m, kind, gy, ghn, gcn if lstm else None)
        run_forward(m, kind, x, h0, c0 if lstm else None)
        assert m._backward(gy, False, (ghn, gcn) if lstm else ghn) is None
    ry, rh, rc, cache = ref_forward(kind, x, (h0, c0 if lstm else None), params_of(m), True)
    rgx, rgrads, rgh0, rgc0 = ref_backward(cache, gy, ghn, gcn if lstm else None)
    assert_close(y, ry, scale=10)
    assert_close(hn, rh, scale=10)
    assert_close(gx, rgx, scale=30)
    assert_close(gh0, rgh0, scale=30)
    if lstm:
        assert_close(cn, rc, scale=10)
        assert_close(gc0, rgc0, scale=30)
        assert_close(m.grad_state0[1], rgc0, scale=30)
    for (name, p), rg in zip(m.named_parameters(), rgrads):
        assert_close(p.grad, 2 * rg, scale=100, err_msg=name)


def test_batch_split_parts_keep_min_rows(monkeypatch):
    """Each part holds at least BATCH_SPLIT_MIN_ROWS sequences, at any thread count."""
    from fastnn.nn import rnn as rnn_mod

    monkeypatch.setattr(rnn_mod, "BATCH_SPLIT_MIN_MACS", 0)
    m = fn.nn.LSTM(4, 8, batch_first=True)
    for threads, n, parts in ((2, 64, 2), (4, 64, 4), (8, 64, 8), (16, 64, 8), (16, 20, 2),
                              (4, 15, 1), (1, 64, 1)):
        with fn.threads(threads):
            ranges = m._split_ranges(n, 10)
        assert len(ranges) == parts, (threads, n)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(hi - lo >= rnn_mod.BATCH_SPLIT_MIN_ROWS for lo, hi in ranges) or parts == 1
