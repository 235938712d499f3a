"""Data-parallel MLP 784-256-128-10 epoch, global batch 256: fastnn on 2 MPI ranks x 1
thread (``fit(distributed=True)``), fastnn in one process at the test's thread count, and
PyTorch DDP (gloo) on 2 processes x 1 thread.  Skipped without mpi4py/mpiexec or torch."""
import pytest


@pytest.mark.benchmark(group="mlp_ranks")
@pytest.mark.parametrize("impl", ["fastnn", "one-process", "torch-ddp"])
def test_mlp_ranks(run_and_check, impl):
    run_and_check("mlp_ranks", impl, rounds=3, quick_rounds=1)
