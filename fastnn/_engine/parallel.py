"""Independent parts of a batch on fastnn's threads, with BLAS on one thread each.

Layers whose work is many small GEMMs with cheap loops between them (the conv
layers' per-image GEMMs and transforms, the two halves of an LSTM batch) scale
better when each of fastnn's threads runs a whole part of the batch, its GEMMs
included, than when every GEMM is spread over BLAS's threads and the loops in
between wait for it.  :func:`run` does that: part 0 runs on the calling thread
and the others on a crew of worker threads (Python threads: the kernels and
``np.matmul`` release the GIL), with the BLAS pool limited to one thread for the
duration, so the parts never oversubscribe the cores.  The hand-off is a pair
of counters in C (``_common.Team``): the workers and the caller spin on them for
up to SPIN_NS without the GIL before they sleep.  A worker still waits for the
GIL to start its part (30-60 us on the 2-core VM, while the caller runs part 0's
Python code up to its first kernel); the Winograd conv parts and the RNN/LSTM
time loops then run as one C call each (BLAS from C, fastnn._engine.blas), so
that they do not queue for the GIL again at every step.

The callers fetch every buffer before :func:`run` (``_Buffers`` is not meant
for concurrent use) and give each part its own scratch arrays and partial sums.
"""
import contextlib
import os
import threading

import numpy as np

from fastnn._engine import config as _config
from fastnn._kernels import _common

_pool = {"crew": None, "blas": None, "single": 0}
_NO_CONTEXT = contextlib.nullcontext()
_WORKER_PREFIX = "fastnn-worker"
# How long (ns) a worker spins for the next part, and the caller for the workers to
# finish, before sleeping: waking a sleeping thread took 30-80 us per hand-off on
# the 2-core VM (a vCPU that halted), several times per layer.
SPIN_NS = 300_000
_STOP = object()


def _after_fork():
    _pool["crew"] = None   # the worker threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class _Crew:
    """Worker threads 1..workers, each running its part of a round posted by run()."""

    def __init__(self, workers):
        self.team = _common.Team(SPIN_NS)
        self.workers = workers
        self.tasks = [None] * (workers + 1)
        self.results = [None] * (workers + 1)
        self.errors = [None] * (workers + 1)
        self.busy = threading.Lock()   # one round at a time (see run)
        for k in range(1, workers + 1):
            threading.Thread(target=self._work, args=(k,), daemon=True,
                             name=f"{_WORKER_PREFIX}-{k}").start()

    def _work(self, k):
        # A task carries the round it was posted for, and a worker runs each round's
        # task once: a worker left out of a round may wake after the next one was
        # posted (or read the round number just before it), and must neither miss
        # that round nor run it twice.
        team, ran, seen = self.team, 0, 0
        while True:
            team.wait_post(max(seen, ran) + 1)
            seen = team.gen
            task = self.tasks[k]
            if task is _STOP:
                return
            if task is None or task[0] <= ran:   # no part for this worker since
                continue
            ran, fn, lo, hi = task
            try:
                self.results[k] = fn(k, lo, hi)
            except BaseException as e:   # re-raised by run()
                self.errors[k] = e
            finally:
                team.finish()

    def stop(self):
        self.tasks[:] = [_STOP] * len(self.tasks)
        self.team.post()

    def run(self, fn, ranges):
        """The parts on the crew; None if it is running a round already (a part
        of that round, or another thread, called run())."""
        if not self.busy.acquire(blocking=False):
            return None
        try:
            return self._round(fn, ranges)
        finally:
            self.busy.release()

    def _round(self, fn, ranges):
        team, n = self.team, len(ranges)
        rnd = team.gen + 1   # the post below (only the holder of busy posts)
        for k in range(1, self.workers + 1):
            self.tasks[k] = (rnd, fn) + tuple(ranges[k]) if k < n else None
            self.results[k] = self.errors[k] = None
        done = team.done + n - 1
        team.post()
        try:
            first = fn(0, *ranges[0])
        finally:
            team.join(done)   # every part has finished before anything is raised
        for k in range(1, n):
            if self.errors[k] is not None:
                err, self.errors[k] = self.errors[k], None
                raise err
        return [first] + self.results[1:n]


def _crew(workers):
    crew = _pool["crew"]
    if crew is None or (crew.workers < workers and not crew.busy.locked()):
        if crew is not None:
            crew.stop()
        crew = _pool["crew"] = _Crew(workers)
    return crew


def _blas_libs():
    libs = _pool["blas"]
    if libs is None:
        from threadpoolctl import ThreadpoolController

        libs = _pool["blas"] = ThreadpoolController().select(user_api="blas").lib_controllers
    return libs


class BlasSingleThread:
    """Context: BLAS on one thread, restored afterwards (nested uses are cheap:
    only the outermost one changes the BLAS setting)."""

    __slots__ = ("saved",)

    def __enter__(self):
        self.saved = None
        if _pool["single"] == 0:
            libs = _blas_libs()
            self.saved = [lib.num_threads for lib in libs]
            for lib in libs:
                lib.set_num_threads(1)
        _pool["single"] += 1
        return self

    def __exit__(self, *exc):
        _pool["single"] -= 1
        if self.saved is not None:
            for lib, k in zip(_blas_libs(), self.saved):
                lib.set_num_threads(k)
        return False


def blas_single_thread_if(flag):
    """BlasSingleThread() when ``flag`` and fastnn has several threads, else a no-op context."""
    if flag and _config.get_num_threads() > 1:
        return BlasSingleThread()
    return _NO_CONTEXT


# A model whose layers split the batch across fastnn's threads (Conv2d) runs its
# forward and backward inside BlasSingleThread (see nn.Sequential): its GEMMs are then
# inside those parts, split into row blocks by :func:`matmul` when large, or on one
# thread when small.  A multithreaded BLAS call in between costs more than it saves:
# OpenBLAS's idle workers spin for a while after it on the cores the parts need, and
# switching BLAS's thread count around every layer makes the next GEMMs wait for
# their workers to wake.  (Timings: benchmarks/README.md.)
SPLIT_GEMM_MACS = 1 << 24


def matmul(a, b, out):
    """``np.matmul(a, b, out=out)`` for 2-D operands; inside BlasSingleThread, with
    several fastnn threads and at least SPLIT_GEMM_MACS multiply-adds, as row
    blocks of ``a`` (and ``out``) on fastnn's threads."""
    if _pool["single"]:
        m = a.shape[0]
        ranges = parts(m, m * a.shape[1] * b.shape[1], SPLIT_GEMM_MACS)
        if len(ranges) > 1:
            run(lambda k, lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), ranges)
            return out
    return np.matmul(a, b, out=out)


def split(n, parts):
    """``parts`` contiguous (lo, hi) ranges covering range(n), sizes differing by <= 1."""
    parts = max(1, min(parts, n))
    q, r = divmod(n, parts)
    out, lo = [], 0
    for k in range(parts):
        hi = lo + q + (1 if k < r else 0)
        out.append((lo, hi))
        lo = hi
    return out


def parts(n, work, min_work):
    """Ranges of a batch of ``n`` items for :func:`run`: one per fastnn thread when
    there are several threads, at least 2 items and ``work >= min_work`` (and
    not in a forked child, see fastnn._engine.config); else one range."""
    t = _config.get_num_threads()
    if t < 2 or n < 2 or work < min_work or _config.forked():
        return [(0, n)]
    return split(n, t)


def run(fn, ranges):
    """Call ``fn(k, lo, hi)`` for each ``(lo, hi) = ranges[k]``, concurrently when
    there are several (part 0 on the calling thread; BLAS on one thread each).
    Returns the list of their results, after every part has finished; the first
    exception is re-raised."""
    if (len(ranges) > 1 and _common.HAVE_TEAM
            and not threading.current_thread().name.startswith(_WORKER_PREFIX)):
        with BlasSingleThread():
            results = _crew(len(ranges) - 1).run(fn, ranges)
        if results is not None:
            return results
    # one part, or called from a part (a worker waiting for the crew it is in would
    # wait forever), or while another thread's round runs, or a build without the
    # crew's counters (src_c/fnn_team.h: GCC/clang atomics, pthreads): the parts here,
    # in turn
    return [fn(k, lo, hi) for k, (lo, hi) in enumerate(ranges)]
