"""Linear + ReLU forward and backward (grads of x, W and b), and the GEMMs alone."""
import pytest

from fastnn import _bench

SHAPES = {"full": _bench.DENSE_SHAPES, "quick": _bench.DENSE_SHAPES_QUICK}
IMPLS = ("numpy", "fastnn", "torch", "gemm")

CASES = [
    pytest.param(i, impl, id=f"shape{i}-{impl}",
                 marks=pytest.mark.benchmark(group=f"dense_shape{i}"))
    for i in range(len(_bench.DENSE_SHAPES))
    for impl in IMPLS
]


@pytest.mark.parametrize("shape_index, impl", CASES)
def test_dense_forward_backward(benchmark, run_and_check, quick, shape_index, impl):
    batch, in_f, out_f = SHAPES["quick" if quick else "full"][shape_index]
    name = f"dense_b{batch}_{in_f}x{out_f}"
    benchmark.extra_info["shape"] = f"B={batch} {in_f}->{out_f}"
    run_and_check(name, impl, rounds=50, quick_rounds=3)
