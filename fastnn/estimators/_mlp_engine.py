"""The MLP estimators' network engine: forward/backward on one flat parameter buffer,
and scikit-learn's Adam and SGD update rules, on fastnn's fused kernels.

All parameters live in one flat buffer laid out as scikit-learn's ``_pack``
(every ``coefs_[i]`` of shape (fan_in, fan_out), C order, then every
``intercepts_[i]``); ``coefs_`` and ``intercepts_`` are views into it, the
gradients live in a second flat buffer of the same layout.  So an optimizer step
is ONE fused kernel call (``fastnn._kernels._optim.multi_update``) for the whole
network, L-BFGS hands the buffers to scipy without packing, and a training step
allocates nothing after the first batch of a given size:

* forward: ``np.matmul(a, W, out=buf)`` then the fused bias + activation epilogue;
* loss: the fused softmax-cross-entropy / logistic / squared-error kernels write
  ``d loss / d logits`` (already divided by the batch size) in the same pass that
  sums the loss;
* backward: weight gradients by BLAS straight into the flat gradient buffer, the
  activation derivative and the next bias gradient in one fused pass, the L2 term
  added (and its value returned) by the fused penalty kernel;
* update: scikit-learn's Adam is torch's fused Adam kernel with the step size
  ``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`` and no second bias correction
  (epsilon outside the square root, as scikit-learn); scikit-learn's SGD velocity
  rule ``v = momentum * v - lr * g`` is the fused momentum kernel run with lr = 1
  on a gradient pre-scaled by lr (the scale is folded into the loss gradient, so
  it costs nothing), which keeps the rule exact when the learning rate changes.

Sample weights, the Poisson loss and the output of ``predict_proba`` go through
plain NumPy (off the hot path of the default settings).  Sparse (CSR/CSC) input
is accepted as scikit-learn does, and densified (the kernels are dense).
"""
import math

import numpy as np
from scipy.special import expit, xlogy

from fastnn._engine import codes
from fastnn._kernels import _dense, _loss, _optim

__all__ = ["Adam", "HIDDEN_ACTIVATIONS", "Net", "SGD"]

# scikit-learn's activation names -> kernel codes
HIDDEN_ACTIVATIONS = {name: codes.ACTIVATIONS[kernel] for name, kernel in
                      (("identity", "identity"), ("relu", "relu"), ("logistic", "sigmoid"), ("tanh", "tanh"))}
_LOGISTIC_LOSS = codes.ELEM_LOSSES["logistic"]
_MSE_LOSS = codes.ELEM_LOSSES["mse"]
_L2 = codes.PENALTIES["l2"]



# ---------------------------------------------------------------------------
# the network engine: flat parameters, buffers per batch size, fused kernels
# ---------------------------------------------------------------------------


class Net:
    """Forward/backward of an MLP on a flat parameter buffer in scikit-learn's _pack layout.

    ``theta`` holds every coefs_[i] (fan_in, fan_out) then every intercepts_[i];
    ``grad`` has the same layout.  ``out_kind`` is "softmax", "logistic",
    "identity" or "exp" (the output activation; the loss is the matching
    canonical one, so d loss / d logits = (output - target) / sum of weights).
    """

    def __init__(self, layer_units, activation, out_kind, dtype):
        self.units = tuple(int(u) for u in layer_units)
        self.n_layers = len(self.units) - 1
        self.act = HIDDEN_ACTIVATIONS[activation]
        self.out_kind = out_kind
        self.dtype = np.dtype(dtype)
        self.f64 = self.dtype == np.float64
        sizes = [a * b for a, b in zip(self.units[:-1], self.units[1:])] + list(self.units[1:])
        self.size = int(sum(sizes))
        self.theta = np.zeros(self.size, self.dtype)
        self.grad = np.zeros(self.size, self.dtype)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        self.coef_slices, self.intercept_slices = [], []
        start = 0
        for a, b in zip(self.units[:-1], self.units[1:]):
            self.coef_slices.append((start, start + a * b, (a, b)))
            self.W.append(self.theta[start:start + a * b].reshape(a, b))
            self.gW.append(self.grad[start:start + a * b].reshape(a, b))
            start += a * b
        for b in self.units[1:]:
            self.intercept_slices.append((start, start + b))
            self.b.append(self.theta[start:start + b])
            self.gb.append(self.grad[start:start + b])
            start += b
        self._bufs = {}

    # -- parameters ----------------------------------------------------------
    def load(self, coefs, intercepts):
        for dst, src in zip(self.W + self.b, list(coefs) + list(intercepts)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"coefs_/intercepts_ have shape {src.shape}, expected {dst.shape} "
                                 "(they no longer match the network's layer sizes)")
            dst[...] = src

    def views(self):
        return list(self.W), list(self.b)

    def buffers(self, n):
        bufs = self._bufs.get(n)
        if bufs is None:
            if len(self._bufs) > 8:
                self._bufs.clear()
            dt = self.dtype
            acts = [np.empty((n, u), dt) for u in self.units[1:]]
            delta = np.empty((n, self.units[-1]), dt)
            gx = [np.empty((n, u), dt) for u in self.units[1:-1]]
            dz = [np.empty((n, u), dt) for u in self.units[1:-1]]
            bufs = self._bufs[n] = (acts, delta, gx, dz)
        return bufs

    # -- passes --------------------------------------------------------------
    def forward(self, X, acts, nt):
        """Hidden activations and the output layer's pre-activation (logits) into acts."""
        a = X
        last = self.n_layers - 1
        for i in range(self.n_layers):
            out = acts[i]
            np.matmul(a, self.W[i], out=out)
            _dense.bias_act_forward(out, self.b[i], self.act if i < last else 0, 0.0, nt)
            a = out
        return a

    def loss_delta(self, z, target, sw, sw_sum, scale, delta, nt):
        """Data loss (scikit-learn's value) and delta = scale * d loss / d z (z: logits)."""
        kind = self.out_kind
        n = z.shape[0]
        if sw is None:
            if kind == "softmax":
                total, _, bad = _loss.softmax_ce_labels(z, target, delta, scale / sw_sum, nt)
                return total / sw_sum
            if kind == "logistic":
                total = _loss.elem_loss(_LOGISTIC_LOSS, z, target, delta, scale / sw_sum, 0.0, nt)
                return total / sw_sum
            if kind == "identity":
                total = _loss.elem_loss(_MSE_LOSS, z, target, delta, scale / sw_sum, 0.0, nt)
                return 0.5 * total / (n * z.shape[1])
        # weighted samples, or the Poisson loss: NumPy
        w = np.ones(n, z.dtype) if sw is None else sw
        if kind == "softmax":
            zz = z - z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(zz).sum(axis=1, keepdims=True))
            logp = zz - lse
            p = np.exp(logp)
            y = np.zeros_like(z)
            y[np.arange(n), target] = 1
            loss = -float(np.dot(w, (y * logp).sum(axis=1))) / sw_sum
        elif kind == "logistic":
            y = (target > 0).astype(z.dtype)
            p = expit(z)
            # log(1 + exp(-t z)) with t = +-1, stable
            per = np.logaddexp(0.0, -target * z).sum(axis=1)
            loss = float(np.dot(w, per)) / sw_sum
        elif kind == "identity":
            y, p = target, z
            loss = 0.5 * float(np.average((y - p) ** 2, weights=w, axis=0).mean())
        else:  # "exp": Poisson with log link
            y = target
            p = np.exp(z)
            loss = float(np.average(xlogy(y, y / p) - y + p, weights=w, axis=0).sum())
        np.subtract(p, y, out=delta)
        delta *= (w * (scale / sw_sum))[:, None].astype(z.dtype)
        return loss

    def loss_grad(self, X, target, sw, sw_sum, alpha, scale, nt):
        """scikit-learn's batch loss (data + L2) and grad = scale * its gradient (in self.grad)."""
        n = X.shape[0]
        acts, delta, gx, dz = self.buffers(n)
        z = self.forward(X, acts, nt)
        loss = self.loss_delta(z, target, sw, sw_sum, scale, delta, nt)
        d = delta
        lam = alpha * scale / sw_sum
        l2 = 0.0
        act = self.act
        for i in range(self.n_layers - 1, -1, -1):
            a_in = X if i == 0 else acts[i - 1]
            np.matmul(a_in.T, d, out=self.gW[i])
            if i == self.n_layers - 1:
                _dense.act_backward_bias(d, None, None, self.gb[i], False, 0, 0.0, nt)
            if alpha > 0:
                l2 += _loss.penalty(_L2, self.W[i], self.gW[i], lam)
            if i > 0:
                g = gx[i - 1]
                np.matmul(d, self.W[i].T, out=g)
                if act == 0:
                    _dense.act_backward_bias(g, None, None, self.gb[i - 1], False, 0, 0.0, nt)
                    d = g
                else:
                    _dense.act_backward_bias(g, acts[i - 1], dz[i - 1], self.gb[i - 1], False,
                                             act, 0.0, nt)
                    d = dz[i - 1]
        if alpha > 0:
            loss += l2 / scale
        return loss

    def predict_raw(self, X, nt):
        """Output-layer activations (probabilities / values) for X, in a new array."""
        a = X
        last = self.n_layers - 1
        for i in range(self.n_layers):
            out = np.matmul(a, self.W[i])
            code = self.act if i < last else (3 if self.out_kind == "logistic" else 0)
            _dense.bias_act_forward(out, self.b[i], code, 0.0, nt)
            a = out
        if self.out_kind == "softmax":
            a -= a.max(axis=1, keepdims=True)
            np.exp(a, out=a)
            a /= a.sum(axis=1, keepdims=True)
        elif self.out_kind == "exp":
            np.exp(a, out=a)
        return a


class Adam:
    """scikit-learn's AdamOptimizer rule on the flat buffers, one fused kernel call a step."""

    def __init__(self, net, lr, beta_1, beta_2, epsilon):
        self.lr = self.learning_rate = float(lr)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.t = 0
        self.m = np.zeros_like(net.theta)
        self.v = np.zeros_like(net.theta)
        self.hp = {"lr": self.lr, "beta1": self.beta_1, "beta2": self.beta_2,
                   "eps": float(epsilon), "weight_decay": 0.0, "decoupled": 0,
                   "step_size": 0.0, "bc2_sqrt": 1.0}
        self.grad_scale = 1.0

    def step(self, net, nt):
        self.t += 1
        t = self.t
        lr_t = self.lr * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        self.learning_rate = lr_t
        self.hp["step_size"] = lr_t
        _optim.multi_update(1, [net.theta], [net.grad], [self.m], [self.v], None, net.f64,
                            self.hp, nt)

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class SGD:
    """scikit-learn's SGDOptimizer rule (velocity v = momentum * v - lr * g)."""

    def __init__(self, net, lr, lr_schedule, momentum, nesterov, power_t):
        self.learning_rate_init = float(lr)
        self.learning_rate = float(lr)
        self.lr_schedule = lr_schedule
        self.momentum = float(momentum)
        self.power_t = float(power_t)
        self.buf = np.zeros_like(net.theta) if self.momentum > 0 else None
        # torch's momentum kernel with lr = 1 on the lr-scaled gradient:
        # buf = momentum * buf + lr * g = -v and p -= buf (or lr * g + momentum * buf).
        self.hp = {"lr": 1.0, "momentum": self.momentum, "dampening": 0.0,
                   "nesterov": int(bool(nesterov) and self.momentum > 0), "weight_decay": 0.0,
                   "first_step": 0}

    @property
    def grad_scale(self):
        return self.learning_rate

    def step(self, net, nt):
        _optim.multi_update(0, [net.theta], [net.grad], None if self.buf is None else [self.buf],
                            None, None, net.f64, self.hp, nt)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False
