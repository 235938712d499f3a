"""Conv2d forward+backward on the three shapes of issue 3, and a LeNet-5 training step."""
import pytest

from fastnn import _bench

IMPLS = ("numpy", "fastnn", "torch")

CASES = [
    pytest.param(i, impl, id=f"shape{i}-{impl}", marks=pytest.mark.benchmark(group=f"conv_shape{i}"))
    for i in range(len(_bench.CONV_SHAPES))
    for impl in IMPLS
]


@pytest.mark.parametrize("shape_index, impl", CASES)
def test_conv_forward_backward(benchmark, run_and_check, quick, shape_index, impl):
    shape = (_bench.CONV_SHAPES_QUICK if quick else _bench.CONV_SHAPES)[shape_index]
    benchmark.extra_info["shape"] = "N={} {}->{} {}x{} k{} pad {}".format(*shape[:4], shape[3], *shape[4:])
    run_and_check("conv_n{}_{}x{}_{}_k{}p{}".format(*shape), impl, rounds=20, quick_rounds=3)


@pytest.mark.benchmark(group="lenet_step")
@pytest.mark.parametrize("impl", IMPLS)
def test_lenet_step(run_and_check, impl):
    run_and_check("lenet_step", impl, rounds=20, quick_rounds=3)
