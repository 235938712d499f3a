"""LSTM forward + backward through time: fastnn vs a NumPy LSTM vs torch.nn.LSTM.

Workload: one LSTM layer, input 64, hidden 128, sequence 50, batch 64 (batch_first),
float32; one timed call = forward of the whole sequence, then backward of a fixed
output gradient (gradients of the input and of all four parameters).  The three
implementations start from the same weights; after timing, each one's output and
gradients are checked against a float64 NumPy reference.  ``--fastnn-quick`` uses
a small shape.

The NumPy baseline is the LSTM one writes by hand: the input projection of the
whole sequence as one matmul, then per step one matmul, the gate nonlinearities
and the cell update as NumPy expressions; backward per step likewise, with the
weight gradients accumulated step by step.

torch runs in this process (set to the same thread count); for timings that other
suites will be compared with, run this file on its own.
"""
import numpy as np
import pytest

from fastnn import _bench

FULL = dict(batch=64, seq=50, inp=64, hid=128)
QUICK = dict(batch=8, seq=6, inp=8, hid=16)
IMPLS = ("numpy", "fastnn", "torch")


def _shape(quick):
    return QUICK if quick else FULL


def _data(s):
    rng = np.random.default_rng(0)
    h = s["hid"]
    k = 1.0 / np.sqrt(h)
    params = {
        "weight_ih_l0": rng.uniform(-k, k, (4 * h, s["inp"])).astype(np.float32),
        "weight_hh_l0": rng.uniform(-k, k, (4 * h, h)).astype(np.float32),
        "bias_ih_l0": rng.uniform(-k, k, 4 * h).astype(np.float32),
        "bias_hh_l0": rng.uniform(-k, k, 4 * h).astype(np.float32),
    }
    x = rng.standard_normal((s["batch"], s["seq"], s["inp"])).astype(np.float32)
    gy = rng.standard_normal((s["batch"], s["seq"], h)).astype(np.float32)
    return params, x, gy


def _sigmoid(z):
    return 0.5 * np.tanh(0.5 * z) + 0.5   # no overflow


class NumpyLSTM:
    """Plain NumPy LSTM (batch_first), forward + BPTT; works in the weights' dtype."""

    def __init__(self, params):
        self.p = {k: v.copy() for k, v in params.items()}

    def run(self, x, gy):
        wih, whh = self.p["weight_ih_l0"], self.p["weight_hh_l0"]
        b = self.p["bias_ih_l0"] + self.p["bias_hh_l0"]
        n, t_len, _ = x.shape
        h_sz = whh.shape[1]
        xs = np.ascontiguousarray(x.transpose(1, 0, 2))           # (T, N, I)
        xp = (xs.reshape(-1, xs.shape[2]) @ wih.T + b).reshape(t_len, n, 4 * h_sz)
        h = np.zeros((n, h_sz), x.dtype)
        c = np.zeros((n, h_sz), x.dtype)
        hs, cs, acts = [h], [c], []
        for t in range(t_len):
            z = xp[t] + h @ whh.T
            i, f = _sigmoid(z[:, :h_sz]), _sigmoid(z[:, h_sz:2 * h_sz])
            g, o = np.tanh(z[:, 2 * h_sz:3 * h_sz]), _sigmoid(z[:, 3 * h_sz:])
            c = f * c + i * g
            h = o * np.tanh(c)
            hs.append(h)
            cs.append(c)
            acts.append((i, f, g, o))
        y = np.stack(hs[1:], axis=1)
        gys = gy.transpose(1, 0, 2)
        gwih, gwhh = np.zeros_like(wih), np.zeros_like(whh)
        gb = np.zeros(4 * h_sz, x.dtype)
        gx = np.empty_like(xs)
        dh = np.zeros((n, h_sz), x.dtype)
        dc = np.zeros((n, h_sz), x.dtype)
        for t in range(t_len - 1, -1, -1):
            i, f, g, o = acts[t]
            dh = dh + gys[t]
            tc = np.tanh(cs[t + 1])
            dc = dc + dh * o * (1 - tc * tc)
            dz = np.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f),
                                 dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
            dc = dc * f
            gwih += dz.T @ xs[t]
            gwhh += dz.T @ hs[t]
            gb += dz.sum(axis=0)
            gx[t] = dz @ wih
            dh = dz @ whh
        self.result = (y, gx.transpose(1, 0, 2), gwih, gwhh, gb)
        return y


def _make(impl, params, x, gy):
    """A zero-argument callable doing forward + backward, and a result getter
    returning (output, grad_x, grad_weight_ih, grad_weight_hh, grad_bias_ih)."""
    if impl == "numpy":
        m = NumpyLSTM(params)
        return (lambda: m.run(x, gy)), (lambda: m.result)
    if impl == "fastnn":
        import fastnn as fn

        m = fn.nn.LSTM(x.shape[2], params["weight_hh_l0"].shape[1])
        m.load_state_dict(params)
        box = {}

        def run():
            m.zero_grad()
            y, _ = m.forward(x)
            box["y"], box["gx"] = y, m.backward(gy)

        return run, (lambda: (box["y"], box["gx"], m.weight_ih_l0.grad, m.weight_hh_l0.grad,
                              m.bias_ih_l0.grad))
    torch = pytest.importorskip("torch")
    m = torch.nn.LSTM(x.shape[2], params["weight_hh_l0"].shape[1], batch_first=True)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    gyt = torch.from_numpy(gy)
    box = {}

    def run_torch():
        m.zero_grad()
        xt.grad = None
        y, _ = m(xt)
        y.backward(gyt)
        box["y"] = y

    def result():
        named = dict(m.named_parameters())
        return (box["y"].detach().numpy(), xt.grad.numpy(), named["weight_ih_l0"].grad.numpy(),
                named["weight_hh_l0"].grad.numpy(), named["bias_ih_l0"].grad.numpy())

    return run_torch, result


def _reference(params, x, gy):
    m = NumpyLSTM({k: v.astype(np.float64) for k, v in params.items()})
    m.run(x.astype(np.float64), gy.astype(np.float64))
    return m.result


@pytest.mark.parametrize("impl", IMPLS)
def test_lstm_forward_backward(benchmark, n_threads, quick, impl):
    s = _shape(quick)
    params, x, gy = _data(s)
    run, result = _make(impl, params, x, gy)
    benchmark.group = "lstm_b{batch}_t{seq}_i{inp}_h{hid}".format(**s) + f"-threads{n_threads}"
    benchmark.extra_info.update(impl=impl, threads=n_threads, shape=str(s))
    with _bench.thread_limit(n_threads):
        benchmark.pedantic(run, rounds=3 if quick else 20, warmup_rounds=1, iterations=1)
    ref = _reference(params, x, gy)
    names = ("output", "grad_x", "grad_weight_ih", "grad_weight_hh", "grad_bias")
    for name, got, want in zip(names, result(), ref):
        got = np.asarray(got, np.float64)
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * scale, err_msg=f"{impl}: {name}")
