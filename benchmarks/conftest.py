"""Fixtures for the fastnn benchmark suite (pytest-benchmark).

Workloads come from the harness ``fastnn._bench`` (the same code as ``python -m fastnn
bench``).  Every test: builds one implementation (torch ones in their own process),
times it at a fixed thread count with ``benchmark.pedantic`` (a fixed number of rounds,
so the number of calls is known), then checks its result with the workload's check
(the NumPy baseline after the same number of calls, a float64 reference, invariants
or an accuracy floor for training runs).

Options: ``--fastnn-quick`` (or FASTNN_BENCH_QUICK=1) uses the small sizes of
``python -m fastnn bench --quick``.
"""
import functools
import os

import pytest

from fastnn import _bench

THREADS = (1, 2)


def pytest_addoption(parser):
    parser.addoption("--fastnn-quick", action="store_true", default=False,
                     help="fastnn benchmarks: small sizes and few rounds (smoke run)")


@pytest.fixture(scope="session")
def quick(request):
    return bool(request.config.getoption("--fastnn-quick")
                or os.environ.get("FASTNN_BENCH_QUICK", "0") not in ("", "0"))


@pytest.fixture(params=THREADS, ids=[f"threads{n}" for n in THREADS])
def n_threads(request):
    return request.param


@functools.lru_cache(maxsize=2)
def get_workload(name, quick):
    return _bench.make_workload(name, quick)


def _run_and_check(benchmark, n_threads, quick, opened, name, impl_name, rounds, quick_rounds=2):
    wl = get_workload(name, quick)
    try:
        impl = wl.make(impl_name)
    except _bench.Unavailable as exc:
        pytest.skip(str(exc))
    opened.append(impl)
    benchmark.extra_info.update(workload=wl.title, impl=impl_name, threads=n_threads,
                                units_per_call=wl.units_per_call, unit=wl.unit)
    with _bench.thread_limit(n_threads):
        _bench.set_threads([impl], n_threads)   # a torch impl's own process
        benchmark.pedantic(impl.run, rounds=quick_rounds if quick else rounds,
                           warmup_rounds=1, iterations=1)
    wl.check(impl_name, impl, wl.reference(impl.calls))
    return wl, impl


@pytest.fixture
def run_and_check(benchmark, n_threads, quick):
    """``run_and_check(workload, impl, rounds, quick_rounds=2) -> (workload, impl)``.

    Times implementation ``impl`` of ``workload`` at ``n_threads`` threads, then checks
    its result; a torch implementation's process is stopped when the test ends.
    """
    opened = []
    yield functools.partial(_run_and_check, benchmark, n_threads, quick, opened)
    _bench.close_impls(opened)
