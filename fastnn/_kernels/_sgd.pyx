"""sgd kernels (in progress)."""
