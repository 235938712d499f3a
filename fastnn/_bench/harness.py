"""The benchmark harness: implementations, timing, thread limits, torch's own process.

A workload (:class:`Workload`) builds *implementations* of one job (fastnn, a NumPy
baseline, PyTorch and scikit-learn when installed, sometimes a "bound": the matrix
products alone), all from the same initial data.  An implementation is an
:class:`Impl` with ``run()`` (the timed call), ``result()`` (what the check looks at)
and ``calls`` (how many times ``run()`` ran).  ``Workload.check(name, impl, ref)``
compares a result with the NumPy baseline's after the same number of calls (or
against an accuracy floor for training runs, or a float64 reference).

Every torch implementation of a workload built by ``registry.make_workload`` runs in
its own spawned process (:class:`RemoteImpl`); :func:`run_workload` times the
implementations interleaved, at one thread count for all (:func:`set_threads`),
and checks each result after timing.  PyTorch, scikit-learn and matplotlib are
optional: a missing one drops its column (:class:`Unavailable`).
"""
import gc
import importlib.util
import math
import statistics
import sys
import time
from contextlib import contextmanager

import numpy as np

__all__ = ["SETTLE_S", "WARM_S", "Unavailable", "Impl", "RemoteImpl", "torch_module", "require_sklearn",
           "thread_limit", "set_threads", "assert_close", "check_layer_step", "Workload",
           "COLUMNS", "column", "build_impls", "close_impls", "run_workload"]


SETTLE_S = 0.05   # untimed pause between implementations (see run_workload)
# A timed sample is this many back-to-back calls (the same for every implementation of a
# workload), enough to last SAMPLE_S for the fastest: a lone short call after a pause runs
# on cores that the VM has let idle, up to 2x slower than the same call inside a loop.
SAMPLE_S = 0.1
MAX_CALLS_PER_SAMPLE = 8
# Each sample follows this long of untimed calls (the same count for every
# implementation, set by the fastest): after the settle pause the VM runs the first
# ~25 ms of calls up to 1.6x slower (measured on the 2-core VM, LeNet step: calls
# 1-3 after a 50 ms pause 7.7 ms, from the 5th on 5.1-5.3 ms), more so for the
# faster implementation, whose sample is shorter.  A training loop runs steady.
WARM_S = 0.04


class Unavailable(Exception):
    """An implementation cannot be built here (its library is not installed)."""


class Impl:
    """One implementation of a workload: ``run()`` is timed, ``result()`` is checked."""

    def __init__(self, run, result=None, label=None):
        self._run = run
        self._result = result
        self.label = label
        self.calls = 0

    def run(self):
        self.calls += 1
        return self._run()

    def run_timed(self, times=1, warm=0):
        """Seconds for ``times`` calls of run() back to back, after ``warm`` untimed calls."""
        for _ in range(warm):
            self.run()
        t0 = time.perf_counter()
        for _ in range(times):
            self.run()
        return time.perf_counter() - t0

    def result(self):
        return None if self._result is None else self._result()


_IN_CHILD = False


class RemoteImpl(Impl):
    """An implementation that runs in its own (spawned) process.

    PyTorch implementations run this way.  torch ships a libgomp with the same
    soname as the system one that a source build of fastnn links, so in one
    process both libraries share one OpenMP runtime, and its wait policy then
    distorts one side or the other (measured on the 2-core VM: with PASSIVE,
    torch's MLP epoch ran 70% slower; with the default spinning, NumPy's 2-thread
    MLP epoch ran 35-60% slower once torch had run in the process).  The parent
    still interleaves the calls; the time reported is measured in the child
    around the call itself.
    """

    def __init__(self, factory, name):
        import multiprocessing as mp

        if importlib.util.find_spec("torch") is None:
            raise Unavailable("PyTorch is not installed")
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_remote_main, args=(child, factory, name), daemon=True)
        self._proc.start()
        child.close()
        status, payload = self._conn.recv()
        if status != "ok":
            self.close()
            if status == "unavailable":
                raise Unavailable(payload)
            raise RuntimeError(f"{name} could not start in its own process: {payload}")
        super().__init__(self._remote_run, self._remote_result, label=name)

    def _call(self, *msg):
        self._conn.send(msg)
        status, payload = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.label} (child process): {payload}")
        return payload

    def _remote_run(self):
        self._call("run", 1, 0)

    def run_timed(self, times=1, warm=0):
        """Seconds for ``times`` back-to-back calls after ``warm`` untimed ones, measured
        in the child around the timed calls."""
        self.calls += warm + times
        return self._call("run", times, warm)

    def _remote_result(self):
        return self._call("result")

    def set_threads(self, n):
        self._call("threads", n)

    def close(self):
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        try:
            self._conn.send(("close",))
        except (OSError, EOFError, BrokenPipeError):
            pass
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
        self._proc = None

    def __del__(self):
        self.close()


def _remote_main(conn, factory, name):
    """Child side of RemoteImpl: build the same workload, then serve run/result/threads."""
    global _IN_CHILD
    _IN_CHILD = True
    limits = None
    try:
        from .registry import make_workload

        impl = make_workload(*factory).make(name)
    except Unavailable as exc:
        conn.send(("unavailable", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", repr(exc)))
        return
    conn.send(("ok", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        cmd = msg[0]
        try:
            if cmd == "run":
                conn.send(("ok", impl.run_timed(msg[1], msg[2])))
            elif cmd == "result":
                conn.send(("ok", impl.result()))
            elif cmd == "threads":
                from threadpoolctl import threadpool_limits

                from fastnn._engine.config import set_num_threads

                n = msg[1]
                limits = threadpool_limits(limits=n)
                set_num_threads(n)
                torch = sys.modules.get("torch")
                if torch is not None:
                    torch.set_num_threads(n)
                conn.send(("ok", None))
            elif cmd == "close":
                return
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            conn.send(("error", repr(exc)))
    del limits


# ---------------------------------------------------------------------------
# optional libraries and threads
# ---------------------------------------------------------------------------

_TORCH = []


def torch_module(required=False):
    """torch, or None when it is not installed (imported once, lazily)."""
    if not _TORCH:
        try:
            import torch
        except ImportError:
            torch = None
        _TORCH.append(torch)
    if _TORCH[0] is None and required:
        raise Unavailable("PyTorch is not installed")
    return _TORCH[0]


def require_sklearn(required=True):
    if importlib.util.find_spec("sklearn") is None:
        if required:
            raise Unavailable("scikit-learn is not installed")
        return False
    return True


@contextmanager
def thread_limit(n):
    """Use ``n`` threads in fastnn, NumPy's BLAS (threadpoolctl) and torch."""
    from threadpoolctl import threadpool_limits

    from fastnn._engine.config import threads

    torch = sys.modules.get("torch")   # only if this process already uses it
    old = torch.get_num_threads() if torch is not None else None
    with threads(n), threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(old)


def assert_close(name, got, ref, rtol, atol):
    for i, (a, r) in enumerate(zip(got, ref)):
        a = np.asarray(a)
        r = np.asarray(r)
        if a.shape != r.shape:
            raise AssertionError(f"{name}: array {i} has shape {a.shape}, expected {r.shape}")
        if not np.allclose(a, r, rtol=rtol, atol=atol):
            err = np.max(np.abs(a.astype(np.float64) - r) / (atol + rtol * np.abs(r)))
            raise AssertionError(
                f"{name}: array {i} differs from the NumPy baseline "
                f"(max |diff| = {np.max(np.abs(a.astype(np.float64) - r)):.3g}, "
                f"{err:.3g}x the tolerance rtol={rtol}, atol={atol})")


def check_layer_step(title, name, impl, ref):
    """A layer's (y, grad_x, grad_W, grad_b) against the NumPy baseline's, each
    compared relative to its own magnitude."""
    if name == "numpy" and ref is impl:
        return
    ref_r = ref.result()
    scale = [max(float(np.max(np.abs(r))), 1.0) for r in ref_r]
    got = [np.asarray(a) / s for a, s in zip(impl.result(), scale)]
    assert_close(f"{title} [{name}] (y, grad_x, grad_W, grad_b)", got,
                  [r / s for r, s in zip(ref_r, scale)], rtol=1e-4, atol=1e-5)



class Workload:
    """Base class: a named job with implementations, a check and extra metrics."""

    name = ""          # stable id (CLI --only, JSON, pytest ids)
    title = ""         # table label
    impl_names = ()    # implementations in table order
    repeats = 5        # default number of timed rounds in the CLI
    units_per_call = 1  # a run() does this many units; times are reported per unit
    unit = "call"

    def make(self, name):
        factory = getattr(self, "_factory", None)
        if name.startswith("torch") and factory is not None and not _IN_CHILD:
            return RemoteImpl(factory, name)
        return getattr(self, "_make_" + name.replace("-", "_"))()

    def check(self, name, impl, ref):  # pragma: no cover - overridden
        """Raise AssertionError if ``impl``'s result is wrong (``ref``: NumPy impl)."""

    def reference(self, calls):
        """A NumPy-baseline Impl that has run ``calls`` times (cached)."""
        cache = self.__dict__.setdefault("_ref_cache", {})
        if calls not in cache:
            cache.clear()
            ref = self.make("numpy")
            for _ in range(calls):
                ref.run()
            cache[calls] = ref
        return cache[calls]

    def extra(self, ms):
        """(metrics dict, short text) from the median ms per implementation."""
        return {}, ""



def set_threads(impls, n):
    """Give the implementations that run in their own process ``n`` threads too
    (:func:`thread_limit` sets this process's)."""
    for impl in impls:
        if isinstance(impl, RemoteImpl):
            impl.set_threads(n)


def close_impls(impls):
    """Stop the child processes of the implementations that have them."""
    for impl in impls:
        if callable(getattr(impl, "close", None)):
            impl.close()


COLUMNS = ("fastnn", "numpy", "torch", "sklearn")


def column(impl_name):
    return "torch" if impl_name.startswith("torch") else impl_name


def build_impls(wl, log=None):
    impls, skipped = {}, {}
    for name in wl.impl_names:
        try:
            impls[name] = wl.make(name)
        except Unavailable as exc:
            skipped[name] = str(exc)
            if log:
                log(f"  [{wl.name}] skipping {name}: {exc}")
    return impls, skipped


def run_workload(wl, impls, n_threads, repeats=None, warmup=1):
    """Time ``impls`` of ``wl`` interleaved at ``n_threads``; returns a result record."""
    repeats = wl.repeats if repeats is None else repeats
    names = list(impls)
    times = {k: [] for k in names}
    with thread_limit(n_threads):
        set_threads(impls.values(), n_threads)
        for _ in range(warmup):
            for k in names:
                impls[k].run()
        fastest = min(impls[k].run_timed(1) for k in names)   # one more call each: equal counts
        per_sample = max(1, min(MAX_CALLS_PER_SAMPLE, math.ceil(SAMPLE_S / max(fastest, 1e-9))))
        warm = min(MAX_CALLS_PER_SAMPLE, math.ceil(WARM_S / max(fastest, 1e-9)))
        gc_was_enabled = gc.isenabled()
        try:
            for r in range(repeats):
                order = names[r % len(names):] + names[:r % len(names)]
                for k in order:
                    gc.collect()
                    # Let the previous implementation's idle OpenMP threads finish
                    # spinning (libgomp's default spin lasts a few ms) before timing
                    # the next one: torch, scikit-learn and a source build of fastnn
                    # each keep their runtime's default wait policy.
                    time.sleep(SETTLE_S)
                    gc.disable()
                    times[k].append(impls[k].run_timed(per_sample, warm) / per_sample)
                    if gc_was_enabled:
                        gc.enable()
        finally:
            if gc_was_enabled:
                gc.enable()
    scale = 1e3 / wl.units_per_call
    ms = {k: statistics.median(v) * scale for k, v in times.items()}
    failures = []
    ref = impls.get("numpy")
    for k in names:
        try:
            wl.check(k, impls[k], ref)
        except AssertionError as exc:
            failures.append(str(exc))
    metrics, text = wl.extra(ms)
    cols = {}
    for k, t in ms.items():
        c = column(k)
        if c in COLUMNS:
            cols[c] = min(t, cols.get(c, math.inf))
    f = cols.get("fastnn")
    speedup = {c: cols[c] / f for c in COLUMNS[1:] if c in cols and f}
    return {"workload": wl.name, "title": wl.title, "threads": n_threads,
            "unit": wl.unit, "repeats": repeats, "calls_per_sample": per_sample,
            "warm_calls": warm, "ms": ms, "columns_ms": cols,
            "speedup": speedup, "times_s": times, "metrics": metrics, "extra": text,
            "check": "ok" if not failures else "FAILED: " + " | ".join(failures)}
