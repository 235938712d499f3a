"""Dropout (forward + backward) and the element-wise losses (value + gradient).

Groups ``dropout`` and ``loss_<name>``, each with the NumPy baseline (a boolean mask
from a Generator; the loss and its gradient as array expressions), fastnn and, when
installed, PyTorch eager in its own process; the workloads are the harness's
(``fastnn._bench.workloads.elementwise``).  Every test runs at 1 and 2 threads and
checks its result after timing: the losses against the NumPy value and gradient,
dropout by its invariants (kept elements scaled by 1/(1-p), dropped ones zero, the
same mask in backward, the keep rate).
"""
import pytest

from fastnn._bench.workloads.elementwise import (ELEMENTWISE_SHAPE, ELEMENTWISE_SHAPE_QUICK,
                                                 LOSSES, P_DROP)

IMPLS = ("numpy", "fastnn", "torch")


@pytest.mark.benchmark(group="dropout")
@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_forward_backward(benchmark, run_and_check, quick, impl):
    benchmark.extra_info.update(shape=str(ELEMENTWISE_SHAPE_QUICK if quick else ELEMENTWISE_SHAPE),
                                p=P_DROP)
    run_and_check("dropout", impl, rounds=50, quick_rounds=3)


CASES = [pytest.param(name, impl, id=f"{name}-{impl}", marks=pytest.mark.benchmark(group=f"loss_{name}"))
         for name in LOSSES for impl in IMPLS]


@pytest.mark.parametrize("name, impl", CASES)
def test_loss_value_and_gradient(benchmark, run_and_check, quick, name, impl):
    benchmark.extra_info["shape"] = str(ELEMENTWISE_SHAPE_QUICK if quick else ELEMENTWISE_SHAPE)
    run_and_check(f"loss_{name}", impl, rounds=50, quick_rounds=3)
