"""A saddle point: zero gradient, yet not a minimum; the Hessian shows the way out.

L(w1, w2) = (1 - w1 * w2)^2 is the squared error of the smallest "deep" linear
network, y = w2 * (w1 * x), fitting x = 1 -> y = 1.  At w = (0, 0) the gradient
is zero, so plain gradient descent started there never moves.  The Hessian there
is [[0, -2], [-2, 0]] with eigenvalues -2 and 2: a saddle.  The eigenvector of
the negative eigenvalue, (1, 1)/sqrt(2), is a direction in which L decreases;
a small step along it lets gradient descent escape and reach a minimum
(any w with w1 * w2 = 1).

The same analysis is done twice: with ``fastnn.analysis.hessian`` on the plain
function, and with ``fastnn.analysis.model_hessian`` on the equivalent fastnn
model (two 1x1 Linear layers without bias, float64) and its MSE loss.

Run: python examples/saddle_point.py   (well under a second)
"""
import numpy as np

import fastnn as fn
from fastnn.analysis import critical_point, hessian, model_hessian


def L(w):
    return (1.0 - w[0] * w[1]) ** 2


def make_model(w):
    model = fn.nn.Sequential(fn.nn.Linear(1, 1, bias=False, dtype=np.float64),
                             fn.nn.Linear(1, 1, bias=False, dtype=np.float64))
    for p, value in zip(model.parameters(), w):
        p.data[...] = value
    return model


def descend(w0, steps=200, lr=0.1):
    """Plain gradient descent (fastnn SGD) on the model from w0; returns (w, loss)."""
    model = make_model(w0)
    loss = fn.losses.MSELoss()
    opt = fn.optim.SGD(list(model.parameters()), lr=lr)
    X, y = np.ones((1, 1)), np.ones((1, 1))
    for _ in range(steps):
        opt.zero_grad()
        loss(model.forward(X), y)
        model.backward(loss.backward())
        opt.step()
    w = np.array([p.data.item() for p in model.parameters()])
    return w, L(w)


def main():
    w0 = np.zeros(2)
    H = hessian(L, w0)
    cp = critical_point(H)
    print(f"L(0, 0) = {L(w0):.4f}")
    print(f"Hessian at (0, 0):\n{np.round(H, 6)}")
    print(f"kind: {cp.kind}; eigenvalues: {np.round(cp.eigenvalues, 6).tolist()}")
    print(f"escape direction: {np.round(cp.escape_direction, 6).tolist()}  ((1, 1)/sqrt(2))")

    Hm = model_hessian(make_model(w0), fn.losses.MSELoss(), np.ones((1, 1)), np.ones((1, 1)))
    print(f"model_hessian of the fastnn model agrees: {np.allclose(Hm, H, atol=1e-6)} "
          f"(kind: {critical_point(Hm).kind})")

    for t in (0.1, 0.5):
        w = t * cp.escape_direction
        print(f"step {t} along it: L = {L(w):.4f} (lower than {L(w0):.4f})")

    w_stuck, l_stuck = descend(w0)
    w_escaped, l_escaped = descend(0.01 * cp.escape_direction)
    print(f"gradient descent from (0, 0): w = {np.round(w_stuck, 4).tolist()}, L = {l_stuck:.4f} (stuck)")
    print(f"gradient descent from 0.01 * escape direction: w = {np.round(w_escaped, 4).tolist()}, "
          f"L = {l_escaped:.2e}")


if __name__ == "__main__":
    main()
