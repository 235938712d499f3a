"""Private compiled kernels. Use :mod:`fastnn.ops` for the validated public API."""
