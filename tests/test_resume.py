"""A real crash: a training subprocess is killed with SIGKILL in the middle of the run,
or in the middle of writing a checkpoint, then started again with the same call; the
result must be bit-identical to a run that was never interrupted (issue 13).

The run has shuffling, Dropout, BatchNorm, Adam, a schedule and early stopping, in
float32 and float64, on 1 and 2 threads.
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 60

SCRIPT = r"""
import json, os, signal, sys
import numpy as np
import fastnn as fn
from fastnn import losses, nn, optim, train
from fastnn.io import _format

dtype, threads, ckpt, out, kill_step, kill_write, every_steps = sys.argv[1:8]
dtype = np.dtype(dtype).type
threads, kill_step, kill_write = int(threads), int(kill_step), int(kill_write)
every_steps = int(every_steps) or None
if threads > 1:
    fn._engine.config.PARALLEL_MIN_ELEMENTS = 1  # run every kernel's parallel path

r = np.random.default_rng(0)
X = r.standard_normal((160, 10)).astype(dtype)
y = r.integers(0, 4, 160)
model = nn.Sequential(nn.Linear(10, 32, dtype=dtype, seed=1), nn.ReLU(), nn.Dropout(0.3, seed=2),
                      nn.BatchNorm1d(32, dtype=dtype), nn.Linear(32, 4, dtype=dtype, seed=3))
opt = optim.Adam(model.parameters(), lr=0.01)
sched = optim.schedules.StepDecay(opt, step_size=2, gamma=0.5)
es = train.EarlyStopping(patience=100)


class KillAt:
    def on_batch_end(self, step, logs):
        if step == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)


writes = [0]


def half_then_die(f, data):
    writes[0] += 1
    if writes[0] == kill_write:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    f.write(data)


if kill_write:
    _format._write_hook = half_then_die
with fn.threads(threads):
    hist = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=6, batch_size=16, seed=5,
                     validation_data=(X[:40], y[:40]), scheduler=sched, early_stopping=es,
                     callbacks=[KillAt()], progress=False,
                     checkpoint=train.Checkpoint(ckpt, every=1, every_steps=every_steps), resume=True)
np.savez(out + ".npz", **model.state_dict())
with open(out + ".json", "w") as f:
    json.dump({"history": {k: v for k, v in hist.history.items() if k != "time"}, "epoch": hist.epoch}, f)
print("done")
"""


def _run(tmp_path, dtype, threads, ckpt, out, kill_step=-1, kill_write=0, every_steps=0):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("FASTNN_NUM_THREADS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, np.dtype(dtype).name, str(threads), str(ckpt), str(tmp_path / out),
         str(kill_step), str(kill_write), str(every_steps)],
        cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, then reap it
        proc.communicate()
        pytest.fail(f"training subprocess ran past {TIMEOUT_S} s")
    return proc.returncode, stdout, stderr


def _result(tmp_path, out):
    with np.load(tmp_path / (out + ".npz")) as z:
        params = {k: z[k].copy() for k in z.files}
    with open(tmp_path / (out + ".json")) as f:
        return params, json.load(f)


def _assert_identical(a, b):
    (pa, ha), (pb, hb) = a, b
    assert list(pa) == list(pb)
    for k in pa:
        assert pa[k].dtype == pb[k].dtype and pa[k].tobytes() == pb[k].tobytes(), k
    assert ha == hb


@pytest.mark.parametrize("threads", [1, 2], ids=["1thread", "2threads"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path, dtype, threads):
    rc, out, err = _run(tmp_path, dtype, threads, tmp_path / "ref.st", "ref")
    assert rc == 0, err
    ref = _result(tmp_path, "ref")
    assert len(ref[1]["epoch"]) == 6

    ckpt = tmp_path / "run.st"
    # killed in epoch 4 (10 steps per epoch): after three epoch checkpoints and a step one
    every_steps = 7 if threads == 2 else 0
    rc, out, err = _run(tmp_path, dtype, threads, ckpt, "run", kill_step=34, every_steps=every_steps)
    assert rc == -signal.SIGKILL, (rc, err)
    assert ckpt.exists() and not (tmp_path / "run.npz").exists()
    rc, out, err = _run(tmp_path, dtype, threads, ckpt, "run", every_steps=every_steps)
    assert rc == 0, err
    _assert_identical(ref, _result(tmp_path, "run"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_one(tmp_path, dtype):
    from fastnn import io

    rc, _, err = _run(tmp_path, dtype, 1, tmp_path / "ref.st", "ref")
    assert rc == 0, err
    ref = _result(tmp_path, "ref")

    ckpt = tmp_path / "run.st"
    # the third write (the checkpoint after epoch 3) dies half way through the temporary file
    rc, _, err = _run(tmp_path, dtype, 1, ckpt, "run", kill_write=3)
    assert rc == -signal.SIGKILL, (rc, err)
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".run.st.") and n.endswith(".tmp")]
    assert len(leftovers) == 1  # the half-written temporary file; the checkpoint itself is untouched
    parts = io.load_checkpoint(ckpt)  # still the complete checkpoint of epoch 2
    assert parts["fit"]["run"]["epoch"] == 2 and parts["fit"]["history"]["epoch"] == [0, 1]
    rc, _, err = _run(tmp_path, dtype, 1, ckpt, "run")
    assert rc == 0, err
    _assert_identical(ref, _result(tmp_path, "run"))
