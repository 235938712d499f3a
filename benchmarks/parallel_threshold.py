"""Does a memory-bound kernel under PARALLEL_MIN_ELEMENTS gain from fastnn's OpenMP threads?

fastnn runs its element-wise and normalization kernels on the calling thread below
``fastnn._engine.config.PARALLEL_MIN_ELEMENTS`` (4M elements).  This script times the
normalization rows of the catalogue (forward + backward of GroupNorm, LayerNorm and
BatchNorm2d at the bench's shapes, in the layer's buffers as ``fit`` runs them) at
``--threads`` with that threshold as shipped and with it at 1 (every kernel on all threads),
alone and right after a BLAS GEMM on the same thread count (256x1024 @ 1024x1024), the
order they run in in a network::

    python benchmarks/parallel_threshold.py --threads 2

Medians of ``--reps`` calls; run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset.
"""
import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastnn
from fastnn import nn
from fastnn._engine import config
from fastnn.nn.module import backward_step, forward_step

CASES = {
    "GroupNorm(8, 64) (32, 64, 32, 32)": (lambda: nn.GroupNorm(8, 64), (32, 64, 32, 32)),
    "LayerNorm(768) (2048, 768)": (lambda: nn.LayerNorm(768), (2048, 768)),
    "BatchNorm2d(64) (32, 64, 32, 32)": (lambda: nn.BatchNorm2d(64), (32, 64, 32, 32)),
}


def median_ms(f, reps):
    for _ in range(5):
        f()
    s = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        s.append(time.perf_counter() - t0)
    return statistics.median(s) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    c = np.empty((256, 1024), np.float32)
    shipped = config.PARALLEL_MIN_ELEMENTS
    fastnn.set_num_threads(args.threads)
    print(f"{args.threads} thread(s) (fastnn and BLAS), median of {args.reps} calls, ms")
    print(f"{'layer':36s} {'threshold':>9s} {'step':>7s} {'GEMM':>7s} {'GEMM+step':>10s}")
    try:
        with threadpool_limits(args.threads, user_api="blas"):
            for name, (make, shape) in CASES.items():
                layer = make()
                x = rng.standard_normal(shape, dtype=np.float32)
                g = rng.standard_normal(shape, dtype=np.float32)

                def step():                        # as fit runs it: results in the layer's buffers
                    forward_step(layer, x)
                    backward_step(layer, g)

                def gemm():
                    np.matmul(a, b, out=c)

                def gemm_step():
                    gemm()
                    step()
                for thr in (shipped, 1):
                    config.PARALLEL_MIN_ELEMENTS = thr
                    row = [median_ms(f, args.reps) for f in (step, gemm, gemm_step)]
                    label = "shipped" if thr == shipped else "1"
                    print(f"{name:36s} {label:>9s} {row[0]:7.3f} {row[1]:7.3f} {row[2]:10.3f}")
    finally:
        config.PARALLEL_MIN_ELEMENTS = shipped


if __name__ == "__main__":
    main()
