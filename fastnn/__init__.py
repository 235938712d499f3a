"""fastnn: fast CPU neural-network training for NumPy users.

Cython + OpenMP kernels around BLAS matrix products, with a PyTorch-like layer
and optimizer API and the same numbers as PyTorch.  See ``fastnn.show_config()``.
"""
import os as _os

from fastnn._version import __version__

# libgomp spin-waits after a parallel region by default; its idle threads would
# then steal the cores from the BLAS GEMM that follows a fastnn kernel.  A wheel
# repaired by auditwheel carries its own, privately named libgomp (in
# fastnn_cpu.libs/), used by fastnn alone: for it we ask for sleeping threads.
# The variable is read when libgomp loads (with our first kernel module) and is
# removed right after, so child processes see the environment the user set.  A
# source build links the system's shared libgomp.so.1, which other libraries
# (torch ships one with the same name) may load and use too: there we leave the
# wait policy alone rather than change theirs (measured: torch's MLP epoch ran
# 10% slower with PASSIVE), and fastnn's kernels only go parallel for
# multi-million-element work anyway.
from fastnn._engine import config as _engine_config  # noqa: E402  (imports no kernel)

_openmp_private = _engine_config.openmp_private()
_wait_policy_was = _os.environ.get("OMP_WAIT_POLICY")
_set_wait_policy = _openmp_private and _wait_policy_was is None
if _set_wait_policy:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
try:
    from fastnn._kernels import _common as _common_kernels  # noqa: F401  (loads libgomp now)
finally:
    if _set_wait_policy:
        _os.environ.pop("OMP_WAIT_POLICY", None)

from fastnn._engine.config import get_num_threads, set_num_threads, show_config, threads  # noqa: E402
from fastnn import ops, nn, losses, optim, data, io, train, regularizers, analysis  # noqa: E402


if _os.environ.get("FASTNN_NUM_THREADS"):
    set_num_threads(get_num_threads())

__all__ = [
    "__version__", "show_config", "get_num_threads", "set_num_threads", "threads",
    "ops", "nn", "losses", "optim", "data", "io", "train", "regularizers", "analysis",
]
