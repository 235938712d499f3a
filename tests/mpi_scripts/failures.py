"""Run under ``mpiexec -n 2``: one rank misbehaves; every rank prints how its fit ended.

Usage: python failures.py MODE DIR   (MODE: bad_data, nan_loss, callback, model, args, kill, interrupt, ok)
Each rank writes ``RANK <r> RAISED <type>: <message>`` (or ``RANK <r> OK <digest of the parameters>``)
to DIR/rank<r>.txt (mpiexec interleaves the ranks' stdout) and exits with 3 after an error.
"""
import os
import signal
import sys

import numpy as np

from fastnn import distributed, losses, nn, optim, train


def report(folder, r, line):
    with open(os.path.join(folder, f"rank{r}.txt"), "w") as f:
        f.write(line + "\n")


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    distributed.init()
    r = distributed.rank()
    rng = np.random.default_rng(r)
    hidden = 9 if (mode == "model" and r == 1) else 8
    model = nn.Sequential(nn.Linear(5, hidden, dtype=np.float64, seed=0), nn.ReLU(),
                          nn.Linear(hidden, 2, dtype=np.float64, seed=1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    X = rng.standard_normal((64, 5))
    y = rng.integers(0, 2, 64)
    kw = {"shard": False}
    callbacks = []
    if mode == "bad_data" and r == 1:
        X[10, 2] = np.nan
    if mode == "nan_loss" and r == 1:
        X[:] = 1e308
    if mode == "callback" and r == 1:
        def boom(step, logs):
            if step == 2:
                raise KeyError("a user callback failed")
        callbacks.append(train.LambdaCallback(on_batch_end=boom))
    if mode == "kill" and r == 1:
        def die(step, logs):
            if step == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        callbacks.append(train.LambdaCallback(on_batch_end=die))
    if mode == "interrupt" and r == 1:
        def interrupt(step, logs):
            if step == 2:
                raise KeyboardInterrupt
        callbacks.append(train.LambdaCallback(on_batch_end=interrupt))
    epochs = 4 if (mode == "args" and r == 1) else 3
    try:
        train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=16, seed=0,
                  progress=False, callbacks=callbacks, distributed=True, **kw)
    except Exception as e:  # noqa: BLE001
        report(folder, r, f"RANK {r} RAISED {type(e).__name__}: {e}")
        sys.exit(3)
    digest = sum(float(np.sum(v)) for v in model.state_dict().values())
    report(folder, r, f"RANK {r} OK {digest.hex()}")


if __name__ == "__main__":
    main()
