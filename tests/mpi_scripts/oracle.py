"""Run under ``mpiexec -n R``: train an MLP (Adam, Dropout), a LeNet-style CNN (SGD with
momentum) and an MLP whose last global batch has one row, data-parallel for 3 epochs with shuffling, and on rank 0 also in one process
with the whole batch; rank 0 writes both parameter sets and histories to OUT (npz).

Usage: python oracle.py OUT DTYPE  (DTYPE: float32 or float64)
"""
import json
import sys

import numpy as np

from fastnn import distributed, losses, nn, optim, train


def mlp(dtype):
    return nn.Sequential(nn.Linear(20, 32, dtype=dtype, seed=1), nn.ReLU(), nn.Dropout(0.2, seed=7),
                         nn.Linear(32, 3, dtype=dtype, seed=2))


def cnn(dtype):
    return nn.Sequential(nn.Conv2d(1, 4, 3, dtype=dtype, seed=3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 3, dtype=dtype, seed=4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(72, 5, dtype=dtype, seed=5))


KINDS = ("mlp", "cnn", "uneven")


def run(kind, dtype, dist):
    rng = np.random.default_rng(0 if kind == "mlp" else 1)
    if kind == "mlp":
        X = rng.standard_normal((203, 20))
        y = rng.integers(0, 3, 203)
        model = mlp(dtype)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        bs = 32
    elif kind == "uneven":  # the last global batch has 1 row: the other ranks' parts are empty
        X = rng.standard_normal((65, 20))
        y = rng.integers(0, 3, 65)
        model = mlp(dtype)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        bs = 32
    else:
        X = rng.standard_normal((101, 1, 12, 12))
        y = rng.integers(0, 5, 101)
        model = cnn(dtype)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        bs = 16
    Xv, yv = X[:37], y[:37]
    hist = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=bs, shuffle=True,
                     seed=42, validation_data=(Xv, yv), progress=False, distributed=dist)
    return model.state_dict(), {k: v for k, v in hist.history.items() if k != "time"}


def main():
    out, dtype = sys.argv[1], np.dtype(sys.argv[2])
    distributed.init()
    res = {}
    hists = {}
    for kind in KINDS:
        state, hist = run(kind, dtype, True)
        for k, v in state.items():
            res[f"dist/{kind}/{k}"] = v
        hists[f"dist/{kind}"] = hist
    if distributed.is_main():
        for kind in KINDS:
            state, hist = run(kind, dtype, False)
            for k, v in state.items():
                res[f"single/{kind}/{k}"] = v
            hists[f"single/{kind}"] = hist
        res["histories"] = np.array(json.dumps(hists))
        np.savez(out, **res)


if __name__ == "__main__":
    main()
