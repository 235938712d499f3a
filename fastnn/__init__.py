"""fastnn: fast CPU neural-network training for NumPy users.

Cython + OpenMP kernels around BLAS matrix products, with a PyTorch-like layer
and optimizer API and the same numbers as PyTorch.  See ``fastnn.show_config()``.
"""
import os as _os

from fastnn._version import __version__

# libgomp spin-waits after a parallel region by default; its idle threads would
# then steal the cores from the BLAS GEMM that follows every fastnn kernel.  Ask
# for sleeping threads, for our OpenMP runtime only: the variable is read when
# libgomp loads (with our first kernel module) and is removed again right after,
# so other libraries and child processes see the environment the user set.
_wait_policy_was = _os.environ.get("OMP_WAIT_POLICY")
if _wait_policy_was is None:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
try:
    from fastnn._kernels import _common as _common_kernels
finally:
    if _wait_policy_was is None:
        _os.environ.pop("OMP_WAIT_POLICY", None)

from fastnn._config import get_num_threads, set_num_threads, threads  # noqa: E402
from fastnn import ops, nn, losses, optim, data, train  # noqa: E402


def show_config():
    """Build and runtime facts.

    Returns
    -------
    dict
        ``version``; ``openmp`` (bool, built with OpenMP); ``num_threads`` (fastnn's
        setting); ``blas`` (threadpoolctl's description of the BLAS pools);
        ``simd`` (the SIMD path of the C inner loops).
    """
    from threadpoolctl import threadpool_info

    return {
        "version": __version__,
        "openmp": _common_kernels.openmp_enabled(),
        "num_threads": get_num_threads(),
        "blas": [info for info in threadpool_info() if info.get("user_api") == "blas"],
        "simd": _common_kernels.simd_path(),
    }


if _os.environ.get("FASTNN_NUM_THREADS"):
    set_num_threads(get_num_threads())

__all__ = [
    "__version__", "show_config", "get_num_threads", "set_num_threads", "threads",
    "ops", "nn", "losses", "optim", "data", "train",
]
