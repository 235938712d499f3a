"""Thread configuration: one setting for fastnn's OpenMP kernels and the BLAS pool.

fastnn's kernels take an explicit ``n_threads``; the Python layer resolves it
here.  ``set_num_threads`` also limits the BLAS library (through threadpoolctl)
that ``np.matmul`` uses, so the GEMMs and the fastnn kernels that take turns
around them never oversubscribe the cores.
"""
import contextlib
import numbers
import os

# Work (in elements) under which a memory-bound kernel runs on one thread.
# Measured on the 2-core reference VM: waking a sleeping OpenMP thread costs
# about 60 us, and right after a BLAS call the second core is still held by
# OpenBLAS's spinning worker, so a 2-thread Adam step over 2M float32 elements
# that follows a GEMM was no faster than 1 thread (1.38 vs 1.25 ms); on its own,
# without the GEMM before it, 2 threads gave 1.6x at 2M elements.  Kernels over
# less than about a million elements stay on the calling thread.
PARALLEL_MIN_ELEMENTS = 1 << 22

_state = {"n": None, "forked": False}


def _after_fork_in_child():
    # GNU libgomp is not fork-safe: a child process that starts a parallel
    # region after its parent used OpenMP threads waits forever for threads
    # that do not exist in the child.  fastnn's kernels therefore run on the
    # calling thread in a forked child (BLAS keeps its own setting).
    _state["forked"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _env_threads():
    for var in ("FASTNN_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var)
        if raw:
            try:
                value = int(raw.split(",")[0])
            except ValueError:
                continue
            if value >= 1:
                return value
    return None


def _default_threads():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    env = _env_threads()
    if env is not None:
        n = min(n, env)
    return max(1, n)


def _validate(n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n_threads must be a positive integer. Received: {n!r} of type {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n_threads must be a positive integer (>= 1). Received: {n}")
    return int(n)


def get_num_threads():
    """Number of threads fastnn's kernels (and the BLAS pool, once set) use."""
    if _state["n"] is None:
        _state["n"] = _default_threads()
    return _state["n"]


def _limit_blas(n):
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(user_api="blas").limit(limits=n)


def set_num_threads(n):
    """Set the thread count for fastnn's kernels and the BLAS library together.

    Parameters
    ----------
    n : int
        Number of threads, at least 1.
    """
    n = _validate(n)
    _state["n"] = n
    _limit_blas(n)


@contextlib.contextmanager
def threads(n):
    """Context manager: run fastnn (and BLAS) on ``n`` threads, then restore.

    Examples
    --------
    >>> import fastnn as fn
    >>> with fn.threads(1):
    ...     pass
    """
    n = _validate(n)
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController().select(user_api="blas")
    saved_blas = [lib.num_threads for lib in controller.lib_controllers]
    saved = _state["n"]
    _state["n"] = n
    controller.limit(limits=n)
    try:
        yield n
    finally:
        _state["n"] = saved
        for lib, k in zip(controller.lib_controllers, saved_blas):
            lib.set_num_threads(k)


def n_threads_for(work):
    """Thread count for a kernel over ``work`` elements (1 below the threshold,
    and always 1 in a process forked from a fastnn process)."""
    if work < PARALLEL_MIN_ELEMENTS or _state["forked"]:
        return 1
    n = _state["n"]
    return n if n is not None else get_num_threads()
