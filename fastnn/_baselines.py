"""Plain NumPy reference implementations used as benchmark baselines.

These are written the way a competent NumPy user would write them: vectorized,
in-place where that is natural (``out=``, augmented assignment), with the same
update rules as ``torch.optim`` and the same default initialization as
``torch.nn.Linear``.  They are deliberately *not* tuned beyond that (no fused
kernels, no flat parameter buffers), because they stand for "what you would get
without fastnn".  ``python -m fastnn demo`` and ``python -m fastnn bench`` time
them next to fastnn in the same process, and the benchmark suite uses them as the
reference the fastnn results are checked against.

Only NumPy is imported here.
"""
import math

import numpy as np

__all__ = [
    "adam_step",
    "sgd_step",
    "rmsprop_step",
    "dense_forward",
    "dense_backward",
    "mlp_init",
    "mlp_forward",
    "numpy_mlp_fit",
    "numpy_mlp_predict",
    "NumpyMLP",
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "cnn_init",
    "NumpyCNN",
]


# ---------------------------------------------------------------------------
# Optimizer steps (in place, over lists of arrays, torch.optim update rules)
# ---------------------------------------------------------------------------


def adam_step(params, grads, exp_avgs, exp_avg_sqs, *, step, lr=1e-3, beta1=0.9,
              beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One Adam step in place, torch.optim.Adam's rule (amsgrad=False).

    ``step`` is the 1-based step number after the increment (torch's
    ``state["step"]`` during the update).
    """
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        if weight_decay != 0.0:
            g = g + weight_decay * p
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        tmp = g * g
        tmp *= 1.0 - beta2
        v += tmp
        denom = np.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += eps
        np.divide(m, denom, out=denom)      # the update direction, reusing the buffer
        denom *= step_size
        p -= denom


def sgd_step(params, grads, momentum_buffers, *, lr, momentum=0.0, dampening=0.0,
             nesterov=False, weight_decay=0.0, first_step=False):
    """One SGD step in place, torch.optim.SGD's rule.

    ``momentum_buffers`` is a list of arrays (ignored when momentum == 0); on
    ``first_step`` the buffer is set to the gradient, as torch clones it.
    """
    for i, (p, g) in enumerate(zip(params, grads)):
        d_p = g
        if weight_decay != 0.0:
            d_p = d_p + weight_decay * p
        if momentum != 0.0:
            buf = momentum_buffers[i]
            if first_step:
                buf[...] = d_p
            else:
                buf *= momentum
                buf += d_p if dampening == 0.0 else (1.0 - dampening) * d_p
            if nesterov:
                d_p = d_p + momentum * buf
            else:
                d_p = buf
        p -= lr * d_p


def rmsprop_step(params, grads, square_avgs, *, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, momentum_buffers=None,
                 centered=False, grad_avgs=None):
    """One RMSprop step in place, torch.optim.RMSprop's rule."""
    for i, (p, g, sq) in enumerate(zip(params, grads, square_avgs)):
        if weight_decay != 0.0:
            g = g + weight_decay * p
        sq *= alpha
        tmp = g * g
        tmp *= 1.0 - alpha
        sq += tmp
        if centered:
            ga = grad_avgs[i]
            ga += (1.0 - alpha) * (g - ga)          # lerp
            np.multiply(ga, ga, out=tmp)
            np.subtract(sq, tmp, out=tmp)
            avg = np.sqrt(tmp, out=tmp)
        else:
            avg = np.sqrt(sq, out=tmp)
        avg += eps
        np.divide(g, avg, out=avg)
        if momentum > 0.0:
            buf = momentum_buffers[i]
            buf *= momentum
            buf += avg
            np.multiply(buf, lr, out=avg)
        else:
            avg *= lr
        p -= avg


# ---------------------------------------------------------------------------
# Dense layer
# ---------------------------------------------------------------------------


def dense_forward(x, weight, bias, activation="relu"):
    """y = act(x @ weight.T + bias); activation None or "relu"."""
    y = x @ weight.T
    y += bias
    if activation == "relu":
        np.maximum(y, 0, out=y)
    elif activation not in (None, "identity"):
        raise ValueError(f"unsupported activation for the baseline: {activation!r}")
    return y


def dense_backward(grad_y, x, weight, y, activation="relu"):
    """Gradients of dense_forward from its output y: (grad_x, grad_weight, grad_bias)."""
    if activation == "relu":
        grad_z = grad_y * (y > 0)
    else:
        grad_z = grad_y
    grad_weight = grad_z.T @ x
    grad_bias = grad_z.sum(axis=0)
    grad_x = grad_z @ weight
    return grad_x, grad_weight, grad_bias


# ---------------------------------------------------------------------------
# MLP: ReLU hidden layers, softmax cross-entropy, Adam, shuffled minibatches
# ---------------------------------------------------------------------------


def mlp_init(sizes, seed=None, dtype=np.float32):
    """torch.nn.Linear's default init for each layer: U(-1/sqrt(in), 1/sqrt(in)).

    Returns a flat list [W0, b0, W1, b1, ...] with W of shape (out, in).
    """
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(dtype))
        params.append(rng.uniform(-bound, bound, size=fan_out).astype(dtype))
    return params


def mlp_forward(params, X):
    """Logits of the MLP; also returns the list of layer inputs (for backward)."""
    h = X
    inputs = []
    n_layers = len(params) // 2
    for i in range(n_layers):
        W, b = params[2 * i], params[2 * i + 1]
        inputs.append(h)
        h = dense_forward(h, W, b, "relu" if i < n_layers - 1 else None)
    return h, inputs


def _softmax_cross_entropy(logits, y):
    """Mean cross-entropy and its gradient with respect to the logits."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = -float(np.mean(np.log(np.maximum(z[rows, y], np.finfo(z.dtype).tiny))))
    z[rows, y] -= 1.0
    z /= n
    return loss, z


class NumpyMLP:
    """A small NumPy MLP trainer (the baseline behind numpy_mlp_fit).

    Parameters are a flat list [W0, b0, W1, b1, ...] (torch layout), trained with
    Adam (torch's rule) on softmax cross-entropy, minibatches reshuffled every epoch.
    """

    def __init__(self, sizes=None, *, params=None, lr=1e-3, betas=(0.9, 0.999),
                 eps=1e-8, seed=None, dtype=np.float32):
        if params is None:
            params = mlp_init(sizes, seed=seed, dtype=dtype)
        else:
            params = [np.array(p, dtype=dtype, copy=True) for p in params]
        self.params = params
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.dtype = np.dtype(dtype)
        self.exp_avgs = [np.zeros_like(p) for p in params]
        self.exp_avg_sqs = [np.zeros_like(p) for p in params]
        self.t = 0
        # shuffling stream, independent of the init stream drawn from the same seed
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 1])

    def train_step(self, Xb, yb):
        logits, inputs = mlp_forward(self.params, Xb)
        loss, grad = _softmax_cross_entropy(logits, yb)
        n_layers = len(self.params) // 2
        grads = [None] * len(self.params)
        for i in range(n_layers - 1, -1, -1):
            W = self.params[2 * i]
            x_in = inputs[i]
            grads[2 * i] = grad.T @ x_in
            grads[2 * i + 1] = grad.sum(axis=0)
            if i > 0:
                grad = grad @ W
                grad *= x_in > 0          # x_in is the previous layer's ReLU output
        self.t += 1
        adam_step(self.params, grads, self.exp_avgs, self.exp_avg_sqs, step=self.t,
                  lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], eps=self.eps)
        return loss

    def fit_epoch(self, X, y, batch_size):
        """One pass over shuffled minibatches; returns the mean training loss."""
        n = X.shape[0]
        perm = self.rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            total += self.train_step(X[idx], y[idx]) * len(idx)
        return total / n

    def predict(self, X):
        logits, _ = mlp_forward(self.params, np.asarray(X, dtype=self.dtype))
        return logits.argmax(axis=1)


def numpy_mlp_fit(X, y, hidden=(128,), epochs=10, batch_size=32, lr=1e-3, seed=None,
                  dtype=np.float32, n_classes=None, init_params=None):
    """Train a NumPy MLP (ReLU hidden layers, softmax cross-entropy, Adam).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), integer labels in [0, n_classes)
    hidden : tuple of int, hidden layer widths
    init_params : optional list [W0, b0, ...] to start from (copied); otherwise
        torch's default init from ``seed``.

    Returns
    -------
    params : list of ndarray [W0, b0, W1, b1, ...], W of shape (out, in)
    """
    X = np.ascontiguousarray(X, dtype=dtype)
    y = np.asarray(y, dtype=np.intp)
    if n_classes is None:
        n_classes = int(y.max()) + 1
    sizes = (X.shape[1],) + tuple(hidden) + (n_classes,)
    mlp = NumpyMLP(sizes, params=init_params, lr=lr, seed=seed, dtype=dtype)
    for _ in range(epochs):
        mlp.fit_epoch(X, y, batch_size)
    return mlp.params


def numpy_mlp_predict(params, X):
    """Predicted class labels of a parameter list returned by numpy_mlp_fit."""
    X = np.asarray(X, dtype=params[0].dtype)
    logits, _ = mlp_forward(params, X)
    return logits.argmax(axis=1)


# ---------------------------------------------------------------------------
# convolutional networks
# ---------------------------------------------------------------------------
# A CNN is described by a spec: a tuple of layers
#   ("conv", out_channels, kernel, padding)   stride 1, bias
#   ("relu",)   ("maxpool", k)   (k x k windows, stride k)   ("flatten",)
#   ("linear", out_features)
# Parameters are a flat list [W0, b0, W1, b1, ...] in torch's layout and order.

def _windows(x, k, stride, padding):
    from numpy.lib.stride_tricks import sliding_window_view

    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d_forward(x, W, b, stride=1, padding=0):
    """NCHW convolution the NumPy way: sliding_window_view im2col + one matmul.

    Returns (y, cols) with cols of shape (N*OH*OW, C*k*k) for the backward pass.
    """
    n, c = x.shape[:2]
    o, _, k, _ = W.shape
    win = _windows(x, k, stride, padding)                  # (N, C, OH, OW, k, k)
    oh, ow = win.shape[2:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)
    y = cols @ W.reshape(o, -1).T
    y += b
    return np.ascontiguousarray(y.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)), cols


def conv2d_backward(grad_y, x_shape, W, cols, stride=1, padding=0):
    """(grad_x, grad_W, grad_b) of conv2d_forward from its column matrix."""
    n, c, h, w = x_shape
    o, _, k, _ = W.shape
    oh, ow = grad_y.shape[2:]
    g2 = grad_y.transpose(0, 2, 3, 1).reshape(-1, o)
    grad_W = (g2.T @ cols).reshape(W.shape)
    grad_b = g2.sum(axis=0)
    gcols = (g2 @ W.reshape(o, -1)).reshape(n, oh, ow, c, k, k)
    gxp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), grad_y.dtype)
    for i in range(k):
        for j in range(k):
            gxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += \
                gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    grad_x = gxp[:, :, padding:padding + h, padding:padding + w] if padding else gxp
    return grad_x, grad_W, grad_b


def maxpool2d_forward(x, k):
    """k x k max pooling with stride k (H and W cropped to multiples of k); returns (y, mask)."""
    n, c, h, w = x.shape
    xr = x[:, :, :h - h % k, :w - w % k].reshape(n, c, h // k, k, w // k, k)
    y = xr.max(axis=(3, 5))
    mask = xr == y[:, :, :, None, :, None]
    return y, mask


def maxpool2d_backward(grad_y, mask, x_shape):
    """Gradient of maxpool2d_forward (ties share the gradient of their window)."""
    n, c, h, w = x_shape
    k = mask.shape[3]
    g = mask * grad_y[:, :, :, None, :, None]
    grad_x = np.zeros(x_shape, grad_y.dtype)
    grad_x[:, :, :h - h % k, :w - w % k] = g.reshape(n, c, (h // k) * k, (w // k) * k)
    return grad_x


def cnn_init(spec, in_shape, seed=None, dtype=np.float32):
    """torch's default init (uniform +-1/sqrt(fan_in)) for the layers of ``spec``."""
    rng = np.random.default_rng(seed)
    c, h, w = in_shape
    params = []
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            o, k, p = layer[1:]
            bound = 1.0 / math.sqrt(c * k * k)
            params += [rng.uniform(-bound, bound, (o, c, k, k)).astype(dtype),
                       rng.uniform(-bound, bound, o).astype(dtype)]
            c, h, w = o, h + 2 * p - k + 1, w + 2 * p - k + 1
        elif kind == "maxpool":
            h, w = h // layer[1], w // layer[1]
        elif kind == "flatten":
            c, h, w = c * h * w, None, None
        elif kind == "linear":
            bound = 1.0 / math.sqrt(c)
            params += [rng.uniform(-bound, bound, (layer[1], c)).astype(dtype),
                       rng.uniform(-bound, bound, layer[1]).astype(dtype)]
            c = layer[1]
    return params


class NumpyCNN:
    """A NumPy CNN trainer for a spec (softmax cross-entropy, Adam with torch's rule)."""

    def __init__(self, spec, params, *, lr=1e-3, seed=None):
        self.spec = tuple(tuple(layer) for layer in spec)
        self.params = [np.array(p, copy=True) for p in params]
        self.lr = lr
        self.exp_avgs = [np.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.rng = np.random.default_rng(None if seed is None else [int(seed), 1])

    def forward(self, X):
        h, tape, i = X, [], 0
        for layer in self.spec:
            kind = layer[0]
            if kind == "conv":
                W, b = self.params[i], self.params[i + 1]
                y, cols = conv2d_forward(h, W, b, 1, layer[3])
                tape.append((h.shape, cols))
                h, i = y, i + 2
            elif kind == "relu":
                h = np.maximum(h, 0)
                tape.append(h)
            elif kind == "maxpool":
                y, mask = maxpool2d_forward(h, layer[1])
                tape.append((h.shape, mask))
                h = y
            elif kind == "flatten":
                tape.append(h.shape)
                h = h.reshape(h.shape[0], -1)
            else:
                W, b = self.params[i], self.params[i + 1]
                tape.append(h)
                h, i = h @ W.T + b, i + 2
        return h, tape

    def train_step(self, Xb, yb):
        logits, tape = self.forward(Xb)
        loss, g = _softmax_cross_entropy(logits, yb)
        grads = [None] * len(self.params)
        i = len(self.params)
        for layer, saved in zip(reversed(self.spec), reversed(tape)):
            kind = layer[0]
            if kind == "conv":
                i -= 2
                shape, cols = saved
                g, grads[i], grads[i + 1] = conv2d_backward(g, shape, self.params[i], cols, 1, layer[3])
            elif kind == "relu":
                g = g * (saved > 0)
            elif kind == "maxpool":
                g = maxpool2d_backward(g, saved[1], saved[0])
            elif kind == "flatten":
                g = g.reshape(saved)
            else:
                i -= 2
                grads[i] = g.T @ saved
                grads[i + 1] = g.sum(axis=0)
                g = g @ self.params[i]
        self.t += 1
        adam_step(self.params, grads, self.exp_avgs, self.exp_avg_sqs, step=self.t, lr=self.lr)
        return loss

    fit_epoch = NumpyMLP.fit_epoch

    def predict(self, X):
        return self.forward(X)[0].argmax(axis=1)
