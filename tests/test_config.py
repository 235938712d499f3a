"""fastnn's configuration surface: version, show_config(), the threads API and its
coupling to the BLAS pool through threadpoolctl."""
import os

import numpy as np
import pytest

import fastnn as fn
from fastnn import ops


def test_version_is_a_string():
    assert isinstance(fn.__version__, str)
    assert fn.__version__[0].isdigit()


def test_show_config_keys_and_types():
    cfg = fn.show_config()
    assert isinstance(cfg, dict)
    for key in ("version", "openmp", "num_threads", "blas", "simd"):
        assert key in cfg, key
    assert cfg["version"] == fn.__version__
    assert isinstance(cfg["openmp"], bool)
    assert isinstance(cfg["num_threads"], int) and not isinstance(cfg["num_threads"], bool)
    assert cfg["num_threads"] == fn.get_num_threads()
    assert cfg["num_threads"] >= 1
    assert isinstance(cfg["simd"], str) and cfg["simd"]
    assert cfg["blas"] is not None
    assert isinstance(cfg["blas"], (list, dict, str))
    assert cfg["c_loops_gemm"] is None or "cblas_sgemm" in cfg["c_loops_gemm"]


def test_show_config_follows_thread_setting():
    with fn.threads(1):
        assert fn.show_config()["num_threads"] == 1
    with fn.threads(2):
        assert fn.show_config()["num_threads"] == 2


def test_get_num_threads_default_is_positive_int():
    n = fn.get_num_threads()
    assert isinstance(n, int) and not isinstance(n, bool)
    assert n >= 1


def test_set_get_roundtrip():
    before = fn.get_num_threads()
    try:
        fn.set_num_threads(1)
        assert fn.get_num_threads() == 1
        fn.set_num_threads(2)
        assert fn.get_num_threads() == 2
    finally:
        fn.set_num_threads(before)
    assert fn.get_num_threads() == before


def test_threads_context_restores():
    before = fn.get_num_threads()
    other = 1 if before != 1 else 2
    with fn.threads(other):
        assert fn.get_num_threads() == other
        with fn.threads(3):
            assert fn.get_num_threads() == 3
        assert fn.get_num_threads() == other
    assert fn.get_num_threads() == before


def test_threads_context_restores_on_exception():
    before = fn.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError, match="boom"):
        with fn.threads(other):
            assert fn.get_num_threads() == other
            raise RuntimeError("boom")
    assert fn.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad):
    before = fn.get_num_threads()
    with pytest.raises(ValueError):
        fn.set_num_threads(bad)
    assert fn.get_num_threads() == before


def test_set_num_threads_rejects_string():
    before = fn.get_num_threads()
    with pytest.raises(TypeError):
        fn.set_num_threads("2")
    assert fn.get_num_threads() == before


@pytest.mark.parametrize("bad", [2.0, 1.5, None])
def test_set_num_threads_rejects_non_int(bad):
    before = fn.get_num_threads()
    with pytest.raises((ValueError, TypeError)):
        fn.set_num_threads(bad)
    assert fn.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1])
def test_threads_context_rejects_non_positive(bad):
    before = fn.get_num_threads()
    with pytest.raises((ValueError, TypeError)):
        with fn.threads(bad):
            pass
    assert fn.get_num_threads() == before


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    info = [d for d in threadpoolctl.threadpool_info() if d.get("user_api") == "blas"]
    if not info:
        pytest.skip("no BLAS library visible to threadpoolctl")
    return {d["num_threads"] for d in info}


def test_blas_pool_follows_set_num_threads():
    _blas_threads()  # skip early if not observable
    before = fn.get_num_threads()
    try:
        fn.set_num_threads(1)
        assert _blas_threads() == {1}
        n = min(2, os.cpu_count() or 1)
        fn.set_num_threads(n)
        assert _blas_threads() == {n}
    finally:
        fn.set_num_threads(before)


def test_blas_pool_follows_threads_context():
    _blas_threads()
    before_fn = fn.get_num_threads()
    with fn.threads(1):
        assert _blas_threads() == {1}
    assert fn.get_num_threads() == before_fn
    n = min(2, os.cpu_count() or 1)
    with fn.threads(n):
        assert _blas_threads() == {n}


def test_threads_setting_does_not_change_results_type():
    # smoke: a kernel runs under each setting and returns the input dtype
    x = np.ones((4, 3), np.float32)
    w = np.ones((2, 3), np.float32)
    for n in (1, 2):
        with fn.threads(n):
            y = ops.linear(x, w)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, np.full((4, 2), 3.0, np.float32))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_runs_kernels_without_hanging(monkeypatch):
    """libgomp is not fork-safe; fastnn's kernels go serial in a forked child."""
    import multiprocessing as mp

    monkeypatch.setattr(fn._engine.config, "PARALLEL_MIN_ELEMENTS", 1)
    x = np.linspace(-1, 1, 100_000, dtype=np.float32)
    with fn.threads(2):
        expected = fn.ops.activation_forward(x, "relu")   # a real 2-thread region in the parent

        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_child_relu, args=(x, q))
        p.start()
        try:
            got = q.get(timeout=60)   # read before join: a full pipe would block the child's exit
        except Exception:             # queue.Empty: the child hung (or died) before answering
            got = None
        p.join(10)
        if p.is_alive():
            p.kill()
    assert got is not None, "forked child hung in a fastnn kernel"
    np.testing.assert_array_equal(got, expected)


def _child_relu(x, q):
    with fn.threads(2):
        q.put(fn.ops.activation_forward(x, "relu"))


def test_concurrent_python_threads_give_serial_results(rng):
    """Kernels release the GIL and keep no shared scratch state."""
    from concurrent.futures import ThreadPoolExecutor

    X = rng.standard_normal((512, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def train(seed):
        model = fn.nn.Sequential(fn.nn.Linear(20, 32, seed=seed), fn.nn.ReLU(), fn.nn.Linear(32, 2, seed=seed + 1))
        opt = fn.optim.Adam(model.parameters(), lr=1e-2)
        fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=32, seed=seed,
                     progress=False)
        return model.state_dict()

    serial = [train(s) for s in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(train, range(4)))
    for a, b in zip(serial, parallel):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def _python(code, env_extra=None):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_default_threads_follow_affinity_and_env():
    n_aff = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    code = "import fastnn; print(fastnn.get_num_threads())"
    assert int(_python(code)) == n_aff
    assert int(_python(code, {"OMP_NUM_THREADS": "1"})) == 1
    assert int(_python(code, {"FASTNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"})) == 1
    # a request above the cores the process may use is capped by the affinity
    assert int(_python(code, {"FASTNN_NUM_THREADS": str(n_aff + 7)})) == n_aff


@pytest.mark.parametrize("order", ["torch_first", "fastnn_first"])
def test_import_next_to_torch_in_either_order(order):
    pytest.importorskip("torch")
    imports = "import torch, fastnn" if order == "torch_first" else "import fastnn, torch"
    code = f"""{imports}
import numpy as np
fastnn._engine.config.PARALLEL_MIN_ELEMENTS = 1
x = np.linspace(-1, 1, 200_000, dtype=np.float32)
with fastnn.threads(2):
    y = fastnn.ops.activation_forward(x, "relu")
t = torch.relu(torch.from_numpy(x)).numpy()
assert np.array_equal(y, t)
print("ok", fastnn.show_config()["openmp"])
"""
    assert _python(code) == "ok True"
