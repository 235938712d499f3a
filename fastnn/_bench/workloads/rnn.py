"""LSTM forward and backward through time: fastnn vs a NumPy LSTM vs torch.nn.LSTM.

One LSTM layer (batch_first, float32); one call = the forward of the whole sequence,
then the backward of a fixed output gradient (gradients of the input and of all four
parameters).  Every implementation starts from the same weights; the check compares
the output and gradients with a float64 run of the NumPy LSTM.

The NumPy baseline is the LSTM one writes by hand: the input projection of the whole
sequence as one matmul, then per step one matmul, the gate nonlinearities and the
cell update as NumPy expressions; backward per step likewise, with the weight
gradients accumulated step by step.
"""
import numpy as np

from ..harness import Impl, Workload, assert_close, torch_module

__all__ = ["LSTM_SHAPE", "LSTM_SHAPE_QUICK", "NumpyLSTM", "LSTMStep"]

# (batch, sequence length, input size, hidden size)
LSTM_SHAPE = (64, 50, 64, 128)
LSTM_SHAPE_QUICK = (8, 6, 8, 16)

RESULT_NAMES = ("output", "grad_x", "grad_weight_ih", "grad_weight_hh", "grad_bias")


def _sigmoid(z):
    return 0.5 * np.tanh(0.5 * z) + 0.5   # no overflow


class NumpyLSTM:
    """Plain NumPy LSTM (batch_first), forward + BPTT, in the weights' dtype.

    Parameters
    ----------
    params : dict of ndarray
        ``weight_ih_l0`` (4H, I), ``weight_hh_l0`` (4H, H), ``bias_ih_l0`` (4H,),
        ``bias_hh_l0`` (4H,), torch's gate order (i, f, g, o); copied.
    """

    def __init__(self, params):
        self.p = {k: v.copy() for k, v in params.items()}
        self.result = None

    def run(self, x, gy):
        """Forward of ``x`` (N, T, I) and backward of ``gy`` (N, T, H); returns y and sets
        ``result`` = (y, grad_x, grad_weight_ih, grad_weight_hh, grad_bias)."""
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


class LSTMStep(Workload):
    """LSTM(I, H) forward + backward through time on a (B, T, I) float32 batch."""

    impl_names = ("fastnn", "numpy", "torch")
    repeats = 20

    def __init__(self, batch, seq, inp, hid, seed=0):
        self.shape = (batch, seq, inp, hid)
        self.name = f"lstm_t{seq}_b{batch}_{inp}x{hid}"
        self.title = f"LSTM({inp}, {hid}) fwd+bwd T={seq} B={batch}"
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(hid)
        self.params = {
            "weight_ih_l0": rng.uniform(-k, k, (4 * hid, inp)).astype(np.float32),
            "weight_hh_l0": rng.uniform(-k, k, (4 * hid, hid)).astype(np.float32),
            "bias_ih_l0": rng.uniform(-k, k, 4 * hid).astype(np.float32),
            "bias_hh_l0": rng.uniform(-k, k, 4 * hid).astype(np.float32),
        }
        self.x = rng.standard_normal((batch, seq, inp)).astype(np.float32)
        self.gy = rng.standard_normal((batch, seq, hid)).astype(np.float32)
        self._ref64 = None

    def _make_numpy(self):
        m = NumpyLSTM(self.params)
        return Impl(lambda: m.run(self.x, self.gy), lambda: m.result)

    def _make_fastnn(self):
        from fastnn import nn

        m = nn.LSTM(self.shape[2], self.shape[3])
        m.load_state_dict(self.params)
        box = {}

        def run():
            m.zero_grad()
            y, _ = m.forward(self.x)
            box["y"], box["gx"] = y, m.backward(self.gy)

        return Impl(run, lambda: (box["y"], box["gx"], m.weight_ih_l0.grad,
                                  m.weight_hh_l0.grad, m.bias_ih_l0.grad))

    def _make_torch(self):
        torch = torch_module(required=True)
        m = torch.nn.LSTM(self.shape[2], self.shape[3], batch_first=True)
        m.load_state_dict({k: torch.from_numpy(v) for k, v in self.params.items()})
        xt = torch.from_numpy(self.x.copy()).requires_grad_(True)
        gyt = torch.from_numpy(self.gy)
        named = dict(m.named_parameters())
        box = {}

        def run():
            m.zero_grad()
            xt.grad = None
            y, _ = m(xt)
            y.backward(gyt)
            box["y"] = y

        def result():
            return (box["y"].detach().numpy(), xt.grad.numpy(),
                    named["weight_ih_l0"].grad.numpy(), named["weight_hh_l0"].grad.numpy(),
                    named["bias_ih_l0"].grad.numpy())
        return Impl(run, result)

    def reference(self, calls):
        return None

    def reference64(self):
        """(output, grads) of a float64 run of the NumPy LSTM (cached)."""
        if self._ref64 is None:
            m = NumpyLSTM({k: v.astype(np.float64) for k, v in self.params.items()})
            m.run(self.x.astype(np.float64), self.gy.astype(np.float64))
            self._ref64 = m.result
        return self._ref64

    def check(self, name, impl, ref=None):
        # each array relative to its own magnitude: float32 BPTT over T steps
        for what, got, want in zip(RESULT_NAMES, impl.result(), self.reference64()):
            scale = max(1.0, float(np.max(np.abs(want))))
            assert_close(f"{self.title} [{name}] {what}", [np.asarray(got, np.float64) / scale],
                         [want / scale], rtol=1e-3, atol=1e-4)
