"""One epoch of MLP 784-256-128-10 on 60,000 MNIST-shaped samples, and the digits protocol."""
import pytest


@pytest.mark.benchmark(group="mlp_epoch")
@pytest.mark.parametrize("impl", ["numpy", "fastnn", "torch", "sklearn", "bound"])
def test_mlp_epoch(run_and_check, impl):
    run_and_check("mlp_epoch", impl, rounds=3, quick_rounds=1)


@pytest.mark.benchmark(group="digits")
@pytest.mark.parametrize("impl", ["numpy", "fastnn", "torch", "sklearn"])
def test_digits(benchmark, run_and_check, impl):
    # one round = one 50-epoch training run per seed (0, 1, 2); see extra_info
    wl, trained = run_and_check("digits", impl, rounds=2, quick_rounds=1)
    benchmark.extra_info["mean_test_accuracy"] = trained.result()
