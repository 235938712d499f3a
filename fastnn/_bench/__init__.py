"""The benchmark harness shared by ``python -m fastnn bench`` and ``benchmarks/``.

- :mod:`.harness`: :class:`Impl`, :class:`RemoteImpl` (torch in its own process),
  :class:`Workload`, thread limits, the interleaved timing and the result checks;
- :mod:`.workloads`: one module per family (optim, dense, mlp, conv, rnn, norm,
  elementwise), each with its NumPy baseline (``fastnn._baselines`` or its own);
- :mod:`.registry`: the workload names and ``make_workload``;
- :mod:`.report`: the ratio table, the JSON environment record, the PNG chart;
- :mod:`.cli`: ``main(argv)``.

The digits data and the model specs that the demo and the tests share are in
``fastnn._zoo``, not here.
"""
from .harness import (Impl, RemoteImpl, Unavailable, Workload, build_impls, close_impls,
                      run_workload, set_threads, thread_limit)
from .registry import (FAMILIES, all_workload_names, extra_workload_names, make_workload,
                       select, workload_names)
from .workloads.conv import CONV_SHAPES, CONV_SHAPES_QUICK
from .workloads.dense import DENSE_SHAPES, DENSE_SHAPES_QUICK


def main(argv=None):
    """``python -m fastnn bench`` (see :mod:`.cli`)."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["Unavailable", "Impl", "RemoteImpl", "Workload", "thread_limit", "set_threads",
           "build_impls", "close_impls", "run_workload", "FAMILIES", "workload_names",
           "extra_workload_names", "all_workload_names", "select", "make_workload",
           "CONV_SHAPES", "CONV_SHAPES_QUICK", "DENSE_SHAPES", "DENSE_SHAPES_QUICK", "main"]
