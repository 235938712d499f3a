"""Run under ``mpiexec -n R``: distributed fit with a checkpoint and a CSVLogger in DIR.

Usage: python resume.py DIR EPOCHS RESUME OUT
Trains an MLP (Adam, Dropout, a step scheduler) for EPOCHS epochs with
``checkpoint=Checkpoint(DIR/ckpt)`` (resume when RESUME is 1); rank 0 writes the
parameters and history to OUT (npz).  Every rank writes its own parameters to
OUT.rank<r>.npz, so the test can check that the ranks agree.
"""
import json
import os
import sys

import numpy as np

from fastnn import callbacks, distributed, losses, nn, optim, train


def main():
    folder, epochs, resume, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    distributed.init()
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 10))
    y = rng.integers(0, 4, 150)
    model = nn.Sequential(nn.Linear(10, 16, seed=1), nn.ReLU(), nn.Dropout(0.3, seed=5), nn.Linear(16, 4, seed=2))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    sched = optim.schedules.StepDecay(opt, step_size=1, gamma=0.7)
    hist = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=32, seed=11,
                     scheduler=sched, progress=False, distributed=True, resume=resume,
                     checkpoint=train.Checkpoint(os.path.join(folder, "ckpt.fnn")),
                     callbacks=[callbacks.CSVLogger(os.path.join(folder, "log.csv"))])
    state = model.state_dict()
    np.savez(f"{out}.rank{distributed.rank()}.npz", **state)
    if distributed.is_main():
        h = {k: v for k, v in hist.history.items() if k != "time"}
        np.savez(out, history=np.array(json.dumps(h)), **state)


if __name__ == "__main__":
    main()
