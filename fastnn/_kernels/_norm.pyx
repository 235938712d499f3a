"""norm kernels (in progress)."""

