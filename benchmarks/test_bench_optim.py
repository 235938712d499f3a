"""Optimizer steps: 10M float32 parameters in 20 tensors (memory-bandwidth bound)."""
import pytest

CASES = [
    pytest.param(kind, impl, id=f"{kind}-{impl}",
                 marks=pytest.mark.benchmark(group=f"optim_{kind}"))
    for kind, impls in [("adam", ("numpy", "fastnn", "torch-fused", "torch-foreach")),
                        ("sgd_momentum", ("numpy", "fastnn", "torch-fused", "torch-foreach")),
                        ("rmsprop", ("numpy", "fastnn", "torch-foreach"))]
    for impl in impls
]


@pytest.mark.parametrize("kind, impl", CASES)
def test_optimizer_step(run_and_check, kind, impl):
    run_and_check(kind, impl, rounds=20)
