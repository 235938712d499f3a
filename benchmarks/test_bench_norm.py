"""Normalization layers, forward + backward (dx, dweight, dbias), train mode.

One group per layer, each holding the NumPy baseline (keepdims reductions and
broadcasting), fastnn and, when installed, PyTorch eager in its own process; the
workloads are the harness's ``norm_*`` (``fastnn._bench.workloads.norm``).  Every test
runs at 1 and 2 threads and checks its last result against the NumPy baseline after
timing (y, dx, dweight, dbias).

| group | input (float32) |
|---|---|
| norm_bn1d | BatchNorm1d(1024), (512, 1024) |
| norm_bn2d | BatchNorm2d(64), (32, 64, 32, 32) |
| norm_layernorm | LayerNorm(768), (2048, 768) |
| norm_groupnorm | GroupNorm(8, 64), (32, 64, 32, 32) |
| norm_instancenorm | InstanceNorm2d(64, affine=True), (32, 64, 32, 32) |
"""
import pytest

from fastnn._bench.workloads.norm import NORM_WORKLOADS

IMPLS = ("numpy", "fastnn", "torch")

CASES = [
    pytest.param(name, impl, id=f"{name}-{impl}", marks=pytest.mark.benchmark(group=f"norm_{name}"))
    for name in NORM_WORKLOADS
    for impl in IMPLS
]


@pytest.mark.parametrize("name, impl", CASES)
def test_norm_forward_backward(benchmark, run_and_check, quick, name, impl):
    _, full, small, _ = NORM_WORKLOADS[name]
    benchmark.extra_info["shape"] = str(small if quick else full)
    run_and_check(f"norm_{name}", impl, rounds=30, quick_rounds=3)
