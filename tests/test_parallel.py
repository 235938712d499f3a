"""The BLAS regime of models with conv layers (fastnn._engine.parallel.matmul, Sequential)."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnn as fn
from fastnn import losses, nn, ops
from fastnn._engine import conv as econv
from fastnn._engine import parallel as _parallel


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]


class _Probe(nn.Module):
    """Identity layer that records BLAS's thread counts when it runs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(("forward", _blas_threads()))
        return x

    def backward(self, grad_y):
        self.seen.append(("backward", _blas_threads()))
        return grad_y


def _needs_two_blas_threads():
    with fn.threads(2):
        if any(t != 2 for t in _blas_threads()) or not _blas_threads():
            pytest.skip(f"BLAS does not run 2 threads here ({_blas_threads()})")


@pytest.mark.parametrize("with_conv", [True, False], ids=["cnn", "mlp"])
def test_sequential_with_conv_runs_blas_on_one_thread(with_conv):
    """A Sequential holding a Conv2d runs forward and backward with BLAS on one thread
    (and gives it back); one without conv layers keeps BLAS's threads."""
    _needs_two_blas_threads()
    probe = _Probe()
    first = nn.Conv2d(2, 2, 3, padding=1, seed=0) if with_conv else nn.Flatten()
    model = nn.Sequential(first, probe, nn.Flatten(), nn.Linear(2 * 4 * 4, 3, seed=1))
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    with fn.threads(2):
        before = _blas_threads()
        model.backward(np.ones(model.forward(x).shape, np.float32))
        assert _blas_threads() == before
    want = [1] * len(before) if with_conv else before
    assert probe.seen == [("forward", want), ("backward", want)]


def test_matmul_splits_rows_only_inside_the_single_blas_regime(monkeypatch):
    """_parallel.matmul: row blocks on fastnn's threads inside BlasSingleThread (at or
    above SPLIT_GEMM_MACS), plain np.matmul otherwise; the same product either way."""
    calls = []
    real = _parallel.run
    monkeypatch.setattr(_parallel, "run", lambda f, r: calls.append(list(r)) or real(f, r))
    monkeypatch.setattr(_parallel, "SPLIT_GEMM_MACS", 1000)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((7, 20)), rng.standard_normal((20, 9))
    want = a @ b
    out = np.empty((7, 9))
    with fn.threads(2):
        np.testing.assert_allclose(_parallel.matmul(a, b, out), want, rtol=1e-13)
        assert calls == []                                  # BLAS keeps its threads
        with _parallel.BlasSingleThread():
            out[...] = 0
            np.testing.assert_allclose(_parallel.matmul(a, b, out), want, rtol=1e-13)
            assert calls == [[(0, 4), (4, 7)]]
            # transposed operand and a strided output, as in Linear's weight gradient
            gwT = np.empty((9, 7)).T
            np.testing.assert_allclose(_parallel.matmul(a, b, gwT), want, rtol=1e-13)
            _parallel.matmul(a[:, :2], b[:2, :2], np.empty((7, 2)))   # 28 MACs: not split
            assert len(calls) == 2
    with fn.threads(1), _parallel.BlasSingleThread():
        _parallel.matmul(a, b, out)
        assert len(calls) == 2                              # one thread: nothing to split


def test_cnn_with_a_large_linear_head_matches_one_thread(monkeypatch, rng):
    """A CNN whose Linear GEMMs are split into row blocks at 2 threads gives the
    logits and gradients of a 1-thread run."""
    monkeypatch.setattr(_parallel, "SPLIT_GEMM_MACS", 1)
    monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)
    x = rng.standard_normal((5, 2, 6, 6))
    y = rng.integers(0, 4, 5)

    def run(threads):
        model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64, seed=0), nn.ReLU(),
                              nn.Flatten(), nn.Linear(108, 16, dtype=np.float64, seed=1), nn.Tanh(),
                              nn.Linear(16, 4, dtype=np.float64, seed=2))
        loss = losses.CrossEntropyLoss()
        with fn.threads(threads):
            logits = model.forward(x)
            loss(logits, y)
            gx = model.backward(loss.backward())
        return [logits, gx] + [p.grad.copy() for p in model.parameters()]

    for got, want in zip(run(2), run(1)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


# -- the crew of worker threads behind run() -------------------------------------------------
def _where(k, lo, hi):
    import threading

    return (k, lo, hi, threading.current_thread().name)


@pytest.mark.parametrize("spin_ns", [0, 300_000], ids=["sleep", "spin"])
@pytest.mark.parametrize("t", [2, 3, 5])
def test_run_gives_each_part_to_its_own_thread(t, spin_ns, monkeypatch):
    monkeypatch.setattr(_parallel, "SPIN_NS", spin_ns)
    monkeypatch.setitem(_parallel._pool, "crew", None)   # a fresh crew with this spin
    with fn.threads(t):
        for rnd in range(50):   # many rounds: no lost wake-up, in either mode
            ranges = _parallel.split(7 + rnd % 3, t)
            res = _parallel.run(_where, ranges)
            assert [r[:3] for r in res] == [(k,) + r for k, r in enumerate(ranges)]
            names = [r[3] for r in res]
            assert not names[0].startswith("fastnn-worker")
            assert sorted(names[1:]) == sorted(f"fastnn-worker-{k}" for k in range(1, t))
        # a round with fewer parts than workers leaves the others idle
        assert [r[:3] for r in _parallel.run(_where, [(0, 1), (1, 2)])] == [(0, 0, 1), (1, 1, 2)]
    _parallel._pool["crew"].stop()   # its threads end (the previous crew comes back)


@pytest.mark.parametrize("spin_ns", [0, 300_000], ids=["sleep", "spin"])
def test_rounds_that_leave_workers_out_run_every_part_exactly_once(spin_ns, monkeypatch):
    """A worker left out of a round (fewer parts than workers) may wake late, after
    the next round was posted: it must run that round's part once, not miss it or
    run it twice."""
    import collections

    monkeypatch.setattr(_parallel, "SPIN_NS", spin_ns)
    monkeypatch.setitem(_parallel._pool, "crew", None)
    counts = collections.Counter()

    def part(k, lo, hi):
        counts[(rnd, k)] += 1
        return k

    with fn.threads(4):
        for rnd in range(300):
            n = 2 + rnd % 3   # 2, 3 or 4 parts on a crew of 3 workers
            assert _parallel.run(part, _parallel.split(n, n)) == list(range(n))
            assert [counts[(rnd, k)] for k in range(n)] == [1] * n
    assert sum(counts.values()) == sum(2 + r % 3 for r in range(300))
    _parallel._pool["crew"].stop()


def test_run_from_two_threads_at_once_gives_every_part_once():
    import threading

    out, errors = {}, []

    def caller(c):
        try:
            for i in range(100):
                res = _parallel.run(lambda k, lo, hi: (c, i, k, lo, hi), [(0, 5), (5, 9)])
                assert res == [(c, i, 0, 0, 5), (c, i, 1, 5, 9)]
            out[c] = True
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)

    with fn.threads(2):
        threads = [threading.Thread(target=caller, args=(c,)) for c in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    assert not errors and out == {0: True, 1: True, 2: True}


def test_team_counters_and_join():
    from fastnn._kernels._common import Team

    team = Team(1000)
    assert (team.gen, team.done) == (0, 0)
    assert team.post() == 1
    team.wait_post(1)          # already posted: returns at once
    team.finish()
    team.finish()
    team.join(2)               # two parts done: returns at once
    assert (team.gen, team.done) == (1, 2)


def test_run_without_the_crews_counters_runs_the_parts_in_turn(monkeypatch):
    """A build without src_c/fnn_team.h's counters (no GCC atomics or pthreads) runs
    the parts one after another on the calling thread."""
    monkeypatch.setattr(_parallel._common, "HAVE_TEAM", False)
    with fn.threads(2):
        res = _parallel.run(_where, [(0, 3), (3, 5)])
    assert [r[:3] for r in res] == [(0, 0, 3), (1, 3, 5)]
    assert res[0][3] == res[1][3] and not res[1][3].startswith("fastnn-worker")
