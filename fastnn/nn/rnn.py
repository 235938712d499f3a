"""Recurrent layers: single-layer Elman RNN and LSTM, backward through time.

How a call runs (N sequences of T steps, input size I, hidden size H, G gates:
1 for RNN, 4 for LSTM).  All work arrays are time-major (the rows of one step
are one contiguous block); the output and its gradient stay in the user's
layout (the kernels write/read them with a stride), so batch_first costs one
copy of x and nothing else.

- forward: the input projection of the whole sequence is ONE GEMM
  ``x (N*T, I) @ weight_ih.T``; then per step one GEMM ``h_{t-1} @ weight_hh.T``
  and one fused kernel (fastnn/_kernels/_rnn.pyx, src_c/fnn_rnn.c) that adds
  both biases and the projection, applies the gate nonlinearities, updates the
  cell and writes h_t.  Gate activations and cell states are kept for backward.
- backward: per step one fused kernel computes the pre-activation gradients of
  the gates from the saved activations (and accumulates the bias gradient), and
  one GEMM ``dz_t @ [weight_hh | weight_ih]`` gives the gradients w.r.t. h_{t-1}
  and x_t together.  Both weight gradients are ONE GEMM over the whole sequence,
  ``dz^T @ [h_{t-1} | x_t]`` (h_{t-1} and x_t are stored side by side for this).
- each time loop (forward after the input projection, backward before the weight
  gradients) is one C call, ``_rnn.forward_loop`` / ``backward_loop``, calling BLAS
  itself (fastnn._engine.blas), so no step takes the GIL; without a BLAS entry point
  the same steps run from Python.
- threads: with several threads (fastnn.threads) and a large enough batch_first
  problem, parts of the batch (one per thread, at least BATCH_SPLIT_MIN_ROWS
  sequences each) run as independent recurrences (BATCH_SPLIT); otherwise the GEMMs use BLAS's threads and the
  per-step kernels run on the calling thread (a step is tens of microseconds).

Every work array lives in per-layer buffers keyed by shape: a training step
after the first with the same shapes allocates nothing except the returned
copies of the public ``forward``/``backward``.
"""

import numpy as np

from fastnn import _checks as C
from fastnn._engine import blas, parallel
from fastnn._kernels import _rnn
from fastnn._engine.buffers import Buffers, owned_copy
from fastnn.nn.module import Module, Parameter

_NONLINEARITIES = ("tanh", "relu")

# Batch split (on by default): with several fastnn threads, batch_first input and enough
# work, parts of the batch are independent recurrences: each part (one per thread, at
# least BATCH_SPLIT_MIN_ROWS sequences) runs the whole forward and backward on its own
# thread with BLAS on one thread, in its own buffers, which measured faster than
# spreading each small per-step GEMM over BLAS's threads; the parts' weight and bias
# gradients are added at the end.  Below BATCH_SPLIT_MIN_MACS the hand-off costs more.
BATCH_SPLIT = True
BATCH_SPLIT_MIN_ROWS = 8
BATCH_SPLIT_MIN_MACS = 1 << 24

class _Recurrent(Module):
    """Shared parameters, validation, buffers and the time loops of RNN and LSTM."""

    _gates = 1

    def __init__(self, input_size, hidden_size, bias, batch_first, dtype, seed):
        super().__init__()
        self.input_size = C.positive_int(input_size, "input_size")
        self.hidden_size = C.positive_int(hidden_size, "hidden_size")
        self.batch_first = C.flag(batch_first, "batch_first")
        bias = C.flag(bias, "bias")
        dt = C.float_dtype(dtype)
        rng = np.random.default_rng(seed)
        gh = self._gates * self.hidden_size
        k = 1.0 / np.sqrt(self.hidden_size)
        # torch's names, shapes, order and initialization U(-1/sqrt(H), 1/sqrt(H))
        self.weight_ih_l0 = Parameter(rng.uniform(-k, k, (gh, self.input_size)).astype(dt))
        self.weight_hh_l0 = Parameter(rng.uniform(-k, k, (gh, self.hidden_size)).astype(dt))
        if bias:
            self.bias_ih_l0 = Parameter(rng.uniform(-k, k, gh).astype(dt))
            self.bias_hh_l0 = Parameter(rng.uniform(-k, k, gh).astype(dt))
        else:
            self.bias_ih_l0 = None
            self.bias_hh_l0 = None
        object.__setattr__(self, "_bufs", Buffers())
        object.__setattr__(self, "_saved", None)
        object.__setattr__(self, "grad_state0", None)

    @property
    def bias(self):
        return self.bias_ih_l0 is not None

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}, batch_first={self.batch_first}"
        if not self.bias:
            s += ", bias=False"
        return s

    def __call__(self, x, state=None):
        return self.forward(x, state)

    # -- validation -----------------------------------------------------------------
    def _check_x(self, x):
        who = type(self).__name__
        x = C.layer_input(x, self.weight_ih_l0.data.dtype, who)
        layout = "(batch, seq_len, input_size)" if self.batch_first else "(seq_len, batch, input_size)"
        if x.ndim != 3:
            raise ValueError(f"{who} expects 3-D input of shape {layout}. Received shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"{who} expects input of shape {layout} with input_size={self.input_size}. "
                             f"Received shape {x.shape}")
        n, t = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if n == 0 or t == 0:
            raise ValueError(f"{who} expects a non-empty batch and sequence {layout}. Received shape {x.shape}")
        return x, n, t

    def _check_state(self, s, name, n):
        dt = self.weight_ih_l0.data.dtype
        who = type(self).__name__
        shape = (1, n, self.hidden_size)
        if not isinstance(s, np.ndarray):
            raise TypeError(f"{who} {name} must be a numpy array of shape {shape}. Received: {type(s).__name__}")
        if s.dtype != dt:
            raise TypeError(f"{who} {name} must have dtype {dt} (the layer's dtype). Received: {s.dtype}")
        if s.shape != shape:
            raise ValueError(f"{who} {name} must have shape (1, batch, hidden_size) = {shape}. Received: {s.shape}")
        return s.reshape(n, self.hidden_size)

    def _check_grad_output(self, grad_output, y_shape, dt):
        return C.grad_output(grad_output, y_shape, dt, "grad_output")

    # -- the time loops -------------------------------------------------------------
    def _run_forward(self, x, n, t, h0, c0):
        """Forward over the sequence; h0/c0: (n, H) or None (zeros).  Returns the
        output (user layout) and h_n (and c_n), views of the layer's buffers."""
        H = self.hidden_size
        ranges = self._split_ranges(n, t)
        if len(ranges) == 1:
            saved = self._forward_part(self._bufs, x, n, t, h0, c0, None)
            object.__setattr__(self, "_saved", ("one", saved, n, t, x.shape))
            _, _, cs, _, y, _, _ = saved
            if self.batch_first:
                h_n = y.reshape(n, t, H)[:, t - 1]
            else:
                h_n = y[(t - 1) * n:]
            c_n = None if cs is None else cs[(t - 1) * n:]
        else:
            # batch split: independent parts of the batch, one per thread (BLAS on one
            # thread each); batch_first only, where a part of x and of the output is one
            # contiguous block of rows
            y = self._bufs.get("y_split", (n * t, H), x.dtype)
            bufs = [self._part_bufs(k) for k in range(len(ranges))]

            def part(k, lo, hi):
                return self._forward_part(bufs[k], x[lo:hi], hi - lo, t,
                                          None if h0 is None else h0[lo:hi],
                                          None if c0 is None else c0[lo:hi], y[lo * t:hi * t])

            saved = parallel.run(part, ranges)
            object.__setattr__(self, "_saved", ("split", (saved, ranges), n, t, x.shape))
            h_n = y.reshape(n, t, H)[:, t - 1]
            c_n = None
            if saved[0][2] is not None:
                c_n = self._bufs.get("c_n_split", (n, H), x.dtype)
                for (lo, hi), sv in zip(ranges, saved):
                    c_n[lo:hi] = sv[2][(t - 1) * (hi - lo):]
        return y.reshape(x.shape[:2] + (H,)), h_n.reshape(1, n, H), \
            (None if c_n is None else c_n.reshape(1, n, H))

    def _part_bufs(self, k):
        """The buffers of part k of a batch split (part 0: the layer's own)."""
        if k == 0:
            return self._bufs
        extra = self.__dict__.get("_bufs_parts")
        if extra is None:
            extra = []
            object.__setattr__(self, "_bufs_parts", extra)
        while len(extra) < k:
            extra.append(Buffers())
        return extra[k - 1]

    def _split_ranges(self, n, t):
        """Row ranges of the batch split: one per fastnn thread, each of at least
        BATCH_SPLIT_MIN_ROWS sequences, when there is enough work (else one range)."""
        if not BATCH_SPLIT or not self.batch_first:
            return [(0, n)]
        G = self._gates * self.hidden_size
        ranges = parallel.parts(n, n * t * G * (self.hidden_size + self.input_size),
                                BATCH_SPLIT_MIN_MACS)
        if len(ranges) > 1 and n // len(ranges) < BATCH_SPLIT_MIN_ROWS:
            ranges = parallel.split(n, max(1, n // BATCH_SPLIT_MIN_ROWS))
        return ranges

    def _dims(self, n, t):
        """(lstm, W_ih, W_hh, dtype, H, I, G, rows) for a part of n sequences of t steps."""
        wih = self.weight_ih_l0.data
        H, I = self.hidden_size, self.input_size
        return (self._gates == 4, wih, self.weight_hh_l0.data, wih.dtype, H, I, self._gates * H,
                n * t)

    def _forward_part(self, b, x, n, t, h0, c0, y):
        """The forward of n sequences in the buffers b (y: the output rows in the
        user's layout, or None for b's own).  Returns what backward needs."""
        lstm, wih, whh, dt, H, I, G, rows = self._dims(n, t)
        # hx holds [h_{t-1} | x_t] on each row, time-major (every step's rows are one
        # contiguous block): the per-step GEMM reads its h columns, the input
        # projection its x columns, and backward gets both weight gradients from
        # ONE GEMM dz^T @ hx (measured 15% faster than two).
        hx = b.get("hx", (rows, H + I), dt)
        np.copyto(hx.reshape(t, n, H + I)[:, :, H:], x.transpose(1, 0, 2) if self.batch_first else x)
        gates = b.get("gates", (rows, G), dt)
        if y is None:
            y = b.get("y", (rows, H), dt)
        rec = b.get("rec", (n, G), dt)
        whhT = b.get("whhT", (H, G), dt)
        np.copyto(whhT, whh.T)
        bias = None
        if self.bias_ih_l0 is not None:
            bias = b.get("bias", (G,), dt)
            np.add(self.bias_ih_l0.data, self.bias_hh_l0.data, out=bias)
        if h0 is None:
            hx[:n, :H] = 0
        else:
            hx[:n, :H] = h0
        cs = c0b = None
        if lstm:
            cs = b.get("c", (rows, H), dt)
            c0b = b.get("c0", (n, H), dt)
            if c0 is None:
                c0b[...] = 0
            else:
                c0b[...] = c0
        relu = getattr(self, "nonlinearity", "tanh") == "relu"
        bf = self.batch_first

        np.matmul(hx[:, H:], wih.T, out=gates)   # input projection of the whole sequence
        if blas.c_loops() and _rnn.forward_loop(lstm, relu, bf, hx, whhT, rec, bias, gates, cs, c0b,
                                                y, h0 is None):
            return hx, gates, cs, c0b, y, n, t
        for k in range(t):
            if k == 0 and h0 is None:
                rec[...] = 0
            else:
                np.matmul(hx[k * n:(k + 1) * n, :H], whhT, out=rec)
            if lstm:
                _rnn.lstm_forward_step(k, t, bf, rec, bias, gates, cs, c0b, y, hx)
            else:
                _rnn.rnn_forward_step(k, t, bf, rec, bias, gates, y, hx, relu)
        return hx, gates, cs, c0b, y, n, t

    def _run_backward(self, grad_output, need_input_grad, dh_init, dc_init):
        """Backward through time; dh_init / dc_init: gradients w.r.t. h_n / c_n,
        (n, H) or None.  Stores the parameter gradients; returns (grad_x in the
        user layout or None, grad_h0, grad_c0 or None), views of buffers."""
        mode, saved, n, t, x_shape = self._saved
        dt = self.weight_ih_l0.data.dtype
        H = self.hidden_size
        gy = self._check_grad_output(grad_output, x_shape[:2] + (H,), dt).reshape(n * t, H)
        if mode == "one":
            gx, dh0, dc0, gw, acc = self._backward_part(self._bufs, saved, gy, need_input_grad, dh_init,
                                                        dc_init)
            if gx is not None:
                gx = gx.transpose(1, 0, 2) if self.batch_first else gx
        else:
            parts_saved, ranges = saved
            b = self._bufs
            if need_input_grad:
                gx = b.get("gx_split", x_shape, dt)
            bufs = [self._part_bufs(k) for k in range(len(ranges))]

            def part(k, lo, hi):
                out = self._backward_part(bufs[k], parts_saved[k], gy[lo * t:hi * t],
                                          need_input_grad, None if dh_init is None else dh_init[lo:hi],
                                          None if dc_init is None else dc_init[lo:hi])
                if need_input_grad:   # each thread copies its part of grad_x
                    np.copyto(gx[lo:hi], out[0].transpose(1, 0, 2))
                return out

            outs = parallel.run(part, ranges)
            gw, acc = outs[0][3], outs[0][4]
            for out in outs[1:]:
                np.add(gw, out[3], out=gw)
                if acc is not None:
                    np.add(acc, out[4], out=acc)
            dh0 = b.get("dh0_split", (n, H), dt)
            dc0 = None if outs[0][2] is None else b.get("dc0_split", (n, H), dt)
            for (lo, hi), out in zip(ranges, outs):
                dh0[lo:hi] = out[1]
                if dc0 is not None:
                    dc0[lo:hi] = out[2]
            if not need_input_grad:
                gx = None
        self._store_weight_grads(gw)
        if acc is not None:
            for p in (self.bias_ih_l0, self.bias_hh_l0):
                g, accumulate = p.grad_target()
                if accumulate:
                    np.add(g, acc, out=g)
                else:
                    g[...] = acc
        return gx, dh0, dc0

    def _backward_part(self, b, saved, gy, need_input_grad, dh_init, dc_init):
        """Backward through time of the sequences of one forward part (buffers b;
        gy: their output-gradient rows in the user layout; dh_init / dc_init:
        gradients w.r.t. h_n / c_n, (n, H) or None).  Parameters are not touched.
        Returns (grad_x as a (t, n, I) view or None, grad_h0, grad_c0 or None,
        [grad W_hh | grad W_ih], bias gradient in float64 or None).

        Per step: the kernel turns dh (from step t+1) into dz_t, then ONE GEMM
        dz_t @ [W_hh | W_ih] gives both dh_{t-1} and dx_t (measured 8% faster
        than dz_t @ W_hh per step plus dz @ W_ih after the loop); with no input
        gradient wanted it is dz_t @ W_hh.  The weight gradients are one GEMM
        dz^T @ [h_{t-1} | x_t] over the whole sequence."""
        hx, gates, cs, c0b, y, n, t = saved
        lstm, wih, whh, dt, H, I, G, rows = self._dims(n, t)
        dh = b.get("dh", (n, H), dt)
        if dh_init is None:
            dh[...] = 0
        else:
            dh[...] = dh_init
        dc = None
        if lstm:
            dc = b.get("dc", (n, H), dt)
            if dc_init is None:
                dc[...] = 0
            else:
                dc[...] = dc_init
        dz = b.get("dz", (rows, G), dt)
        acc = None
        if self.bias_ih_l0 is not None:
            acc = b.get("acc", (G,), np.float64)
            acc[...] = 0
        relu = getattr(self, "nonlinearity", "tanh") == "relu"
        bf = self.batch_first
        if need_input_grad:
            # dhx rows of step t: [grad h_{t-1} | grad x_t]
            dhx = b.get("dhx", (rows, H + I), dt)
            wcat = b.get("w_hh_ih", (G, H + I), dt)
            np.copyto(wcat[:, :H], whh)
            np.copyto(wcat[:, H:], wih)
        gw = b.get("gw", (G, H + I), dt)

        dh_rec = dh
        w = wcat if need_input_grad else np.ascontiguousarray(whh)
        if blas.c_loops() and _rnn.backward_loop(lstm, relu, bf, gates, cs, c0b, y, gy, dh, dc, dz, acc,
                                                 w, dhx if need_input_grad else None):
            dh_rec = dhx[:n, :H] if need_input_grad else dh
        else:
            for k in range(t - 1, -1, -1):
                if lstm:
                    _rnn.lstm_backward_step(k, t, bf, gates, cs, c0b, gy, dh_rec, dc, dz, acc)
                else:
                    _rnn.rnn_backward_step(k, t, bf, y, gy, dh_rec, dz, acc, relu)
                r = slice(k * n, (k + 1) * n)
                if need_input_grad:
                    np.matmul(dz[r], wcat, out=dhx[r])
                    dh_rec = dhx[r, :H]
                else:
                    np.matmul(dz[r], w, out=dh)
        # both weight gradients: ONE GEMM over the whole sequence
        np.matmul(dz.T, hx, out=gw)
        if not need_input_grad:
            return None, dh_rec, dc, gw, acc
        return dhx.reshape(t, n, H + I)[:, :, H:], dh_rec, dc, gw, acc

    def _store_weight_grads(self, gw):
        """gw = [grad weight_hh | grad weight_ih] (columns), into the parameters."""
        H = self.hidden_size
        for p, src in ((self.weight_hh_l0, gw[:, :H]), (self.weight_ih_l0, gw[:, H:])):
            g, accumulate = p.grad_target()
            if accumulate:
                np.add(g, src, out=g)
            else:
                np.copyto(g, src)


class RNN(_Recurrent):
    """Elman RNN, one layer: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``
    (torch.nn.RNN with num_layers=1).

    Args:
        input_size: number of features of each input step.
        hidden_size: number of features of the hidden state.
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        bias: learn the biases ``bias_ih_l0`` and ``bias_hh_l0`` (default True).
        batch_first: input and output are (batch, seq, feature) (default True,
            unlike torch's default; the layout of h0/h_n is (1, batch, hidden)
            either way, as in torch).
        dtype: float32 (default) or float64, keyword-only.
        seed: seed of the initialization (torch's: every parameter uniform in
            ``[-1/sqrt(hidden_size), 1/sqrt(hidden_size)]``), keyword-only.

    Input shape: ``x`` (batch, seq_len, input_size) when batch_first, else
    (seq_len, batch, input_size); ``h0`` (1, batch, hidden_size) or None (zeros).

    Output shape: ``(output, h_n)``: output (batch, seq_len, hidden_size) when
    batch_first, else (seq_len, batch, hidden_size), the h_t of every step;
    h_n (1, batch, hidden_size).

    Parameters (torch's names, so torch state_dicts load): ``weight_ih_l0``
    (hidden_size, input_size), ``weight_hh_l0`` (hidden_size, hidden_size),
    ``bias_ih_l0`` and ``bias_hh_l0`` (hidden_size,).

    ``backward(grad_output, grad_state=None)`` (grad_state: the gradient w.r.t.
    h_n, or None) accumulates the parameter gradients, returns the gradient
    w.r.t. x, and sets the attribute ``grad_state0``: the gradient w.r.t. h0, of
    shape (1, batch, hidden_size) (computed also when h0 was None, i.e. zeros).
    """

    _gates = 1

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", bias=True, batch_first=True, *,
                 dtype=np.float32, seed=None):
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; expected 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, batch_first, dtype, seed)
        self.nonlinearity = nonlinearity

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")

    def forward(self, x, h0=None):
        """Run the sequence.  Returns ``(output, h_n)`` (new arrays the caller owns)."""
        y, h_n = self._forward(x, h0)
        return owned_copy(self, "forward", y), owned_copy(self, "h_n", h_n)

    def backward(self, grad_output, grad_state=None):
        """Back-propagate through time; returns the gradient w.r.t. x.

        grad_state: gradient w.r.t. h_n, shape (1, batch, hidden_size), or None.
        Parameter gradients are accumulated; ``self.grad_state0`` is set to the
        gradient w.r.t. h0.
        """
        g = self._backward(grad_output, True, grad_state)
        object.__setattr__(self, "grad_state0", owned_copy(self, "grad_h0", self.grad_state0))
        return owned_copy(self, "backward", g)

    def _forward(self, x, h0=None):
        x, n, t = self._check_x(x)
        if h0 is not None:
            h0 = self._check_state(h0, "h0", n)
        y, h_n, _ = self._run_forward(x, n, t, h0, None)
        return y, h_n

    def _backward(self, grad_output, need_input_grad=True, grad_state=None):
        if self._saved is None:
            raise RuntimeError("RNN.backward() called before forward()")
        n = self._saved[2]
        dh_n = None
        if grad_state is not None:
            dh_n = self._check_state(grad_state, "grad_state (gradient w.r.t. h_n)", n)
        gx, dh, _ = self._run_backward(grad_output, need_input_grad, dh_n, None)
        object.__setattr__(self, "grad_state0", dh.reshape(1, n, self.hidden_size))
        return gx


class LSTM(_Recurrent):
    """Long short-term memory, one layer (torch.nn.LSTM with num_layers=1)::

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    with the gates stacked in torch's order (i, f, g, o) along the first axis of
    the weights.

    Args:
        input_size: number of features of each input step.
        hidden_size: number of features of the hidden and cell states.
        bias: learn the biases ``bias_ih_l0`` and ``bias_hh_l0`` (default True).
        batch_first: input and output are (batch, seq, feature) (default True,
            unlike torch's default; h0/c0/h_n/c_n are (1, batch, hidden) either
            way, as in torch).
        dtype: float32 (default) or float64, keyword-only.
        seed: seed of the initialization (torch's: every parameter uniform in
            ``[-1/sqrt(hidden_size), 1/sqrt(hidden_size)]``), keyword-only.

    Input shape: ``x`` (batch, seq_len, input_size) when batch_first, else
    (seq_len, batch, input_size); ``state`` ``(h0, c0)``, each (1, batch,
    hidden_size), or None (zeros).

    Output shape: ``(output, (h_n, c_n))``: output (batch, seq_len, hidden_size)
    when batch_first, else (seq_len, batch, hidden_size); h_n and c_n
    (1, batch, hidden_size).

    Parameters (torch's names, so torch state_dicts load): ``weight_ih_l0``
    (4*hidden_size, input_size), ``weight_hh_l0`` (4*hidden_size, hidden_size),
    ``bias_ih_l0`` and ``bias_hh_l0`` (4*hidden_size,).

    ``backward(grad_output, grad_state=None)`` (grad_state: ``(grad_h_n,
    grad_c_n)``, either may be None) accumulates the parameter gradients,
    returns the gradient w.r.t. x, and sets the attribute ``grad_state0 =
    (grad_h0, grad_c0)``, the gradients w.r.t. the initial state (computed also
    when the state was None, i.e. zeros).
    """

    _gates = 4

    def __init__(self, input_size, hidden_size, bias=True, batch_first=True, *, dtype=np.float32,
                 seed=None):
        super().__init__(input_size, hidden_size, bias, batch_first, dtype, seed)

    def forward(self, x, state=None):
        """Run the sequence.  Returns ``(output, (h_n, c_n))`` (new arrays the caller owns)."""
        y, (h_n, c_n) = self._forward(x, state)
        return owned_copy(self, "forward", y), (owned_copy(self, "h_n", h_n), owned_copy(self, "c_n", c_n))

    def backward(self, grad_output, grad_state=None):
        """Back-propagate through time; returns the gradient w.r.t. x.

        grad_state: ``(grad_h_n, grad_c_n)`` (each (1, batch, hidden_size) or
        None) or None.  Parameter gradients are accumulated; ``self.grad_state0``
        is set to ``(grad_h0, grad_c0)``.
        """
        g = self._backward(grad_output, True, grad_state)
        gh0, gc0 = self.grad_state0
        object.__setattr__(self, "grad_state0",
                           (owned_copy(self, "grad_h0", gh0), owned_copy(self, "grad_c0", gc0)))
        return owned_copy(self, "backward", g)

    @staticmethod
    def _unpack(state, what):
        if state is None:
            return None, None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"LSTM {what} must be a tuple (h, c) or None. Received: {type(state).__name__}"
                            + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else ""))
        return state[0], state[1]

    def _forward(self, x, state=None):
        x, n, t = self._check_x(x)
        h0, c0 = self._unpack(state, "state")
        if (h0 is None) != (c0 is None):
            raise ValueError("LSTM state must give both h0 and c0 (or be None)")
        if h0 is not None:
            h0 = self._check_state(h0, "h0", n)
            c0 = self._check_state(c0, "c0", n)
        y, h_n, c_n = self._run_forward(x, n, t, h0, c0)
        return y, (h_n, c_n)

    def _backward(self, grad_output, need_input_grad=True, grad_state=None):
        if self._saved is None:
            raise RuntimeError("LSTM.backward() called before forward()")
        n = self._saved[2]
        gh_n, gc_n = self._unpack(grad_state, "grad_state")
        if gh_n is not None:
            gh_n = self._check_state(gh_n, "grad_state[0] (gradient w.r.t. h_n)", n)
        if gc_n is not None:
            gc_n = self._check_state(gc_n, "grad_state[1] (gradient w.r.t. c_n)", n)
        gx, dh, dc = self._run_backward(grad_output, need_input_grad, gh_n, gc_n)
        H = self.hidden_size
        object.__setattr__(self, "grad_state0", (dh.reshape(1, n, H), dc.reshape(1, n, H)))
        return gx
