"""Thread configuration: one setting for fastnn's OpenMP kernels and the BLAS pool.

fastnn's kernels take an explicit ``n_threads``; the Python layer resolves it
here.  ``set_num_threads`` also limits the BLAS library (through threadpoolctl)
that ``np.matmul`` uses, so the GEMMs and the fastnn kernels that take turns
around them never oversubscribe the cores.
"""
import contextlib
import numbers
import os

# Work (in elements) under which a memory-bound kernel runs on the calling thread: waking
# OpenMP threads, while OpenBLAS's worker still spins after a GEMM, costs more than it saves.
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


_openmp = {}


def has_private_openmp():
    """True when fastnn runs on its own, privately named libgomp (a wheel repaired by
    auditwheel puts it in fastnn_cpu.libs/), not on the system's shared libgomp.so.1."""
    import glob

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return bool(glob.glob(os.path.join(os.path.dirname(pkg), "fastnn_cpu.libs", "libgomp*")))


def openmp_private():
    """:func:`has_private_openmp`, computed once."""
    if "private" not in _openmp:
        _openmp["private"] = has_private_openmp()
    return _openmp["private"]


def forked():
    """True in a process forked from a fastnn process (kernels then run on one thread)."""
    return _state["forked"]


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


def resolve_threads():
    """fastnn's thread setting, resolved (the default on first use)."""
    n = _state["n"]
    return n if n is not None else get_num_threads()


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
    return resolve_threads()


def show_config():
    """Build and runtime facts.

    Returns
    -------
    dict
        ``version``; ``openmp`` (bool, built with OpenMP); ``num_threads`` (fastnn's
        setting); ``blas`` (threadpoolctl's description of the BLAS pools);
        ``simd`` (the SIMD path of the C inner loops); ``c_loops_gemm`` (the
        library and symbol that the kernels' C loops call for GEMMs, or None
        when they run their steps from Python: fastnn._engine.blas).
    """
    from threadpoolctl import threadpool_info

    from fastnn._engine import blas
    from fastnn._kernels import _common
    from fastnn._version import __version__

    return {
        "version": __version__,
        "openmp": _common.openmp_enabled(),
        "num_threads": get_num_threads(),
        "blas": [info for info in threadpool_info() if info.get("user_api") == "blas"],
        "simd": _common.simd_path(),
        "c_loops_gemm": blas.source(),
    }
