"""conv kernels (in progress)."""

