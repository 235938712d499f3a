"""Data-parallel fit over MPI: the scripts in tests/mpi_scripts run under ``mpiexec``
(from the ``mpich`` wheel of the ``mpi`` extra), each with a timeout after which
the whole process group is killed, so a hang fails a test instead of CI."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastnn import distributed, losses, nn, optim, train

SCRIPTS = Path(__file__).parent / "mpi_scripts"
TIMEOUT = 120


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's, in this environment
    return str(here) if here.exists() else shutil.which("mpiexec")


def _have_mpi4py():
    try:
        import importlib.util

        return importlib.util.find_spec("mpi4py") is not None
    except ImportError:
        return False


needs_mpi = pytest.mark.skipif(
    not _have_mpi4py() or _mpiexec() is None,
    reason=f"distributed tests need mpi4py and mpiexec: {distributed.INSTALL_HINT}")


def run_mpi(n, script, *args, timeout=TIMEOUT, cwd=None):
    """Run ``mpiexec -n n python script args``; kill its process group on timeout."""
    env = dict(os.environ, FASTNN_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    cmd = [_mpiexec(), "-n", str(n), sys.executable, str(SCRIPTS / script), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=cwd, start_new_session=True)
    t0 = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {script} {args} hung for {timeout} s; output:\n{out[-3000:]}")
    return proc.returncode, out, time.monotonic() - t0


# -- without MPI: the API's own checks ------------------------------------------------------

def test_without_mpi4py_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    for call in (distributed.init, distributed.rank, distributed.size):
        with pytest.raises(ImportError, match=r"fastnn-cpu\[mpi\]"):
            call()
    model = nn.Sequential(nn.Linear(3, 2, seed=0))
    X, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    w = model.state_dict()
    with pytest.raises(ImportError, match="mpi4py"):
        train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
                  epochs=1, progress=False, distributed=True)
    assert all(np.array_equal(w[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kw, exc, match", [
    ({"distributed": 1}, TypeError, "distributed must be False, True or an mpi4py communicator"),
    ({"distributed": "world"}, TypeError, "distributed must be"),
    ({"distributed": True, "shard": "yes"}, TypeError, "shard must be True or False"),
])
def test_bad_distributed_arguments(kw, exc, match):
    model = nn.Sequential(nn.Linear(3, 2, seed=0))
    X, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(exc, match=match):
        train.fit(model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y,
                  epochs=1, progress=False, **kw)


# -- the oracle: R ranks with 1/R of every global batch == 1 process with all of it ----------

@needs_mpi
@pytest.mark.parametrize("n", [2, 4])   # 4 oversubscribes a 2-core machine
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-5)])
def test_ranks_train_like_one_process_with_the_whole_batch(tmp_path, n, dtype, rtol):
    out = tmp_path / "oracle.npz"
    rc, log, _ = run_mpi(n, "oracle.py", out, dtype)
    assert rc == 0, log[-3000:]
    d = np.load(out)
    dist_keys = [k for k in d.files if k.startswith("dist/")]
    assert {k.split("/")[1] for k in dist_keys} == {"mlp", "cnn", "uneven"}
    for k in dist_keys:
        a, b = d[k], d["single/" + k[len("dist/"):]]
        assert a.dtype == np.dtype(dtype)
        scale = max(float(np.max(np.abs(b))), 1e-30)
        assert float(np.max(np.abs(a - b))) <= rtol * scale, k
    hist = json.loads(str(d["histories"]))
    for kind in ("mlp", "cnn", "uneven"):
        dh, sh = hist[f"dist/{kind}"], hist[f"single/{kind}"]
        assert set(dh) == set(sh) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for key in dh:
            np.testing.assert_allclose(dh[key], sh[key], rtol=10 * rtol, err_msg=f"{kind} {key}")
    # Dropout was active: the trained MLP differs from one trained without it (sanity of the oracle).
    assert not np.allclose(d["dist/mlp/0.weight"], d["dist/uneven/0.weight"])


# -- checkpoints: rank 0 writes, every rank resumes, bit for bit ----------------------------

@needs_mpi
def test_distributed_resume_is_bit_identical_and_only_rank0_writes(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir()
    part.mkdir()
    rc, log, _ = run_mpi(2, "resume.py", full, 3, 0, tmp_path / "a")
    assert rc == 0, log[-3000:]
    rc, log, _ = run_mpi(2, "resume.py", part, 2, 0, tmp_path / "b1")
    assert rc == 0, log[-3000:]
    rc, log, _ = run_mpi(2, "resume.py", part, 3, 1, tmp_path / "b2")
    assert rc == 0, log[-3000:]
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b2.npz")
    assert set(a.files) == set(b.files)
    for k in a.files:
        assert np.array_equal(a[k], b[k]), k
    r0, r1 = np.load(tmp_path / "b2.rank0.npz"), np.load(tmp_path / "b2.rank1.npz")
    for k in r0.files:
        assert np.array_equal(r0[k], r1[k]), k
    assert sorted(p.name for p in part.iterdir()) == ["ckpt.fnn", "log.csv"]  # no per-rank files
    rows = (part / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,loss") and [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]


# -- failures: every rank stops, with the rank and the cause; nothing hangs -----------------

@needs_mpi
@pytest.mark.parametrize("mode, kind, cause", [
    ("bad_data", "DistributedError", "rank 1 raised ValueError: X contains NaN or infinity"),
    ("nan_loss", "FloatingPointError", "rank 1 raised FloatingPointError: non-finite loss"),
    ("callback", "DistributedError", "rank 1 raised KeyError: 'a user callback failed'"),
    ("model", "ValueError", "model.state.0.weight: 'float64 (8, 5)' on rank 0, 'float64 (9, 5)' on rank 1"),
    ("args", "ValueError", "epochs: 3 on rank 0, 4 on rank 1"),
])
def test_one_failing_rank_stops_every_rank_with_its_cause(tmp_path, mode, kind, cause):
    rc, log, _ = run_mpi(2, "failures.py", mode, tmp_path, timeout=60)
    assert rc != 0, log
    for r in (0, 1):
        path = tmp_path / f"rank{r}.txt"
        assert path.exists(), f"rank {r} did not report how its fit ended:\n{log}"
        line = path.read_text().strip()
        assert line.startswith(f"RANK {r} RAISED {kind}:") and cause in line, line


@needs_mpi
def test_ranks_with_their_own_data_agree_on_the_parameters(tmp_path):
    rc, log, _ = run_mpi(2, "failures.py", "ok", tmp_path, timeout=60)
    assert rc == 0, log
    lines = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert lines[0][:3] == ["RANK", "0", "OK"] and lines[1][:3] == ["RANK", "1", "OK"], lines
    assert lines[0][3] == lines[1][3]


@needs_mpi
@pytest.mark.parametrize("mode", ["kill", "interrupt"])
def test_a_rank_that_dies_ends_the_job_in_bounded_time(tmp_path, mode):
    # kill: SIGKILL of rank 1 mid-epoch (mpiexec tears the job down); interrupt: a
    # KeyboardInterrupt outside fit's agreement points, which aborts the MPI job.
    rc, log, elapsed = run_mpi(2, "failures.py", mode, tmp_path, timeout=60)
    assert rc != 0, log
    assert not any("OK" in p.read_text() for p in tmp_path.glob("rank*.txt")), log
    assert elapsed < 60
