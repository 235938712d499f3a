"""rnn kernels (in progress)."""

