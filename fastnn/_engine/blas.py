"""NumPy's BLAS for the kernels' C loops (fastnn/_kernels/_blas.pyx).

:func:`ready` looks, once, for the row-major ``cblas_sgemm``/``cblas_dgemm`` of the
BLAS libraries NumPy loaded (threadpoolctl lists them), hands their addresses to
the kernels, and checks one small product of each dtype against ``np.matmul``.
NumPy's own wheels carry OpenBLAS with 64-bit integers and a ``scipy_`` prefix
(``scipy_cblas_sgemm64_``); an ILP64 build without the prefix and a plain LP64
``cblas_sgemm`` (a system OpenBLAS or MKL) are tried after it.  When none is
found, or the check fails, the kernels' callers keep their NumPy loops.
"""
import ctypes

import numpy as np

from fastnn._kernels import _blas

# The kernels' C loops (Winograd conv parts, the RNN/LSTM time loops) call BLAS
# themselves when an entry point was found; False: their NumPy loops (the tests compare).
C_LOOPS = True

# (prefix, suffix, 64-bit integers), in the order tried
_NAMES = (("scipy_", "64_", True), ("", "64_", True), ("", "", False))
_state = {"tried": False, "source": None}


def _entry_points(path):
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix, ilp64 in _NAMES:
        try:
            s = getattr(lib, f"{prefix}cblas_sgemm{suffix}")
            d = getattr(lib, f"{prefix}cblas_dgemm{suffix}")
        except AttributeError:
            continue
        addr = [ctypes.cast(f, ctypes.c_void_p).value for f in (s, d)]
        return addr[0], addr[1], ilp64, f"{path}: {prefix}cblas_sgemm{suffix}"
    return None


def _agrees():
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        a = rng.standard_normal((5, 3)).astype(dt)
        b = rng.standard_normal((4, 3)).astype(dt)
        c = np.ones((5, 4), dt)
        _blas.gemm(a, b, c, False, True, 0.5)
        if not np.allclose(c, a @ b.T + 0.5, rtol=1e-5, atol=1e-5):
            return False
    return True


def ready():
    """Whether the kernels' C loops can call BLAS (found and checked on first use)."""
    if not _state["tried"]:
        _state["tried"] = True
        from threadpoolctl import ThreadpoolController

        for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
            found = _entry_points(lib.filepath)
            if found is None:
                continue
            _blas.set_gemm(*found[:3])
            if _agrees():
                _state["source"] = found[3]
                break
            _blas.set_gemm(0, 0, False)
    return _blas.available()


def c_loops():
    """Whether the kernels' C loops run (C_LOOPS and an entry point found)."""
    return C_LOOPS and ready()


def source():
    """The library and symbol the C loops call, or None."""
    ready()
    return _state["source"]
