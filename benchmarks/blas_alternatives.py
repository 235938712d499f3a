"""Would another BLAS make fastnn's LSTM faster?  OpenBLAS (NumPy's) vs MKL and BLIS.

    pip install mkl blis          # only for this script; neither is a fastnn dependency
    python benchmarks/blas_alternatives.py [--threads 1,2]

Prints, on one thread per GEMM:

1. the GEMMs of the LSTM row of the bench (LSTM(64, 128), T=50, B=64): the
   per-step recurrent product, the per-step backward product, the input
   projection and the weight gradients of the whole sequence, timed with
   ``np.matmul`` (NumPy's OpenBLAS), ``cblas_sgemm`` of MKL's single dynamic
   library ``libmkl_rt`` (from the PyPI wheel ``mkl``, sequential layer, through
   ctypes) and ``blis.py.gemm`` (PyPI ``blis``);
2. the whole fastnn LSTM forward+backward with its GEMMs done by OpenBLAS, then
   by MKL (the matmul that ``fastnn.nn.rnn`` calls is swapped for MKL's for the
   second timing: an experiment, not an option of the library), at each thread
   count;
3. what each package costs on disk (its installed files, dependencies included).

A missing package is reported and skipped.  Set thread counts are explicit: one
thread per GEMM, ``fastnn.set_num_threads`` for the LSTM.
"""
import argparse
import ctypes
import glob
import importlib.metadata as md
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL")   # one thread per GEMM
os.environ.setdefault("BLIS_NUM_THREADS", "1")

LSTM = (64, 50, 64, 128)   # batch, steps, input, hidden: the bench row lstm_t50_b64_64x128
B, T, I, H = LSTM
SHAPES = [   # (m, k, n, what)
    (B, H, 4 * H, "recurrent product per step, forward"),
    (B, 4 * H, H + I, "dz @ [W_hh | W_ih] per step, backward"),
    (B * T, I, 4 * H, "input projection, whole sequence"),
    (4 * H, B * T, H + I, "weight gradients dz^T @ [h | x]"),
]


def best_of(fn, calls=50, rounds=9):
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def load_mkl():
    """cblas_sgemm of the mkl wheel's libmkl_rt, or None."""
    libs = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    if not libs:
        return None
    lib = ctypes.CDLL(libs[0])
    f = lib.cblas_sgemm
    i, p, s = ctypes.c_int, ctypes.c_void_p, ctypes.c_float
    f.argtypes = [i, i, i, i, i, i, s, p, i, p, i, s, p, i]
    f.restype = None
    return f


def mkl_matmul(sgemm):
    """``np.matmul(a, b, out=out)`` for 2-D float32 operands with unit stride on
    one axis (transposed views allowed), through MKL's row-major cblas_sgemm."""
    def layout(x):
        if x.strides[1] == 4:
            return 111, x.strides[0] // 4     # CblasNoTrans, row stride
        if x.strides[0] == 4:
            return 112, x.strides[1] // 4     # CblasTrans
        raise ValueError("operand needs a unit stride on one axis")

    def matmul(a, b, out=None):
        if a.dtype != np.float32 or out is None or out.strides[1] != 4:
            return np.matmul(a, b, out=out)
        ta, lda = layout(a)
        tb, ldb = layout(b)
        sgemm(101, ta, tb, a.shape[0], b.shape[1], a.shape[1], 1.0, a.ctypes.data, lda,
              b.ctypes.data, ldb, 0.0, out.ctypes.data, out.strides[0] // 4)
        return out
    return matmul


def installed_mb(dist):
    """Installed size of a distribution and its dependencies (but numpy, which fastnn
    has anyway), in MB (None when absent)."""
    seen, todo, total = {"numpy"}, [dist], 0
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            d = md.distribution(name)
        except md.PackageNotFoundError:
            if name == dist:
                return None, []
            continue
        total += sum(os.path.getsize(f.locate()) for f in d.files or () if os.path.isfile(f.locate()))
        for req in d.requires or ():
            if "extra ==" not in req:
                todo.append(req.split(";")[0].split()[0].split(">")[0].split("=")[0].split("<")[0])
    return total / 1e6, sorted(seen - {"numpy"})


def gemm_table(sgemm, blis_gemm):
    from threadpoolctl import threadpool_limits

    print("GEMMs of the LSTM row, float32, 1 thread: us (GFLOP/s)")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for m, k, n, what in SHAPES:
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            c = np.empty((m, n), np.float32)
            want = a.astype(np.float64) @ b
            cols = {"openblas": lambda: np.matmul(a, b, out=c)}
            if sgemm is not None:
                mm = mkl_matmul(sgemm)
                cols["mkl"] = lambda: mm(a, b, out=c)
            if blis_gemm is not None:
                cols["blis"] = lambda: blis_gemm(a, b, out=c, beta=0.0)
            flop = 2.0 * m * k * n
            row = []
            for name, fn in cols.items():
                t = best_of(fn)
                fn()
                np.testing.assert_allclose(c, want, rtol=1e-3, atol=1e-3 * np.sqrt(k))
                row.append(f"{name} {t * 1e6:7.1f} ({flop / t / 1e9:4.0f})")
            print(f"  {m:>4}x{k:<4} @ {k:>4}x{n:<4} {what:<40} " + "  ".join(row))


def lstm_table(sgemm, threads):
    import fastnn
    import fastnn.nn.rnn as rnn_module
    from fastnn.nn import LSTM as FastLSTM

    print("fastnn LSTM(64, 128) forward+backward T=50 B=64: ms, median of 9 rounds")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I), dtype=np.float32)
    gy = rng.standard_normal((B, T, H), dtype=np.float32)

    class _NumpyWithMKLMatmul:   # the module's numpy, with matmul swapped
        def __init__(self, mm):
            self.matmul = mm

        def __getattr__(self, name):
            return getattr(np, name)

    for nt in threads:
        row = []
        with fastnn.threads(nt):
            m = FastLSTM(I, H, seed=0)

            def call():
                m.zero_grad()
                m.forward(x)
                m.backward(gy)

            backends = [("openblas", np)]
            if sgemm is not None:
                backends.append(("mkl", _NumpyWithMKLMatmul(mkl_matmul(sgemm))))
            grads = {}
            for name, mod in backends:
                rnn_module.np = mod
                try:
                    row.append(f"{name} {best_of(call, calls=10) * 1e3:6.2f}")
                    call()
                    grads[name] = m.weight_hh_l0.grad.copy()
                finally:
                    rnn_module.np = np
            if "mkl" in grads:
                np.testing.assert_allclose(grads["mkl"], grads["openblas"], rtol=1e-3, atol=1e-4)
        print(f"  {nt} thread(s): " + "  ".join(row))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="fastnn thread counts for the LSTM rows")
    args = ap.parse_args()
    sgemm = load_mkl()
    if sgemm is None:
        print("mkl: not installed (pip install mkl), skipped")
    try:
        import blis.py
        blis_gemm = blis.py.gemm
    except ImportError:
        blis_gemm = None
        print("blis: not installed (pip install blis), skipped")
    print(f"numpy {np.__version__}; {os.cpu_count()} cores")
    gemm_table(sgemm, blis_gemm)
    lstm_table(sgemm, [int(t) for t in args.threads.split(",")])
    for dist in ("mkl", "blis"):
        mb, names = installed_mb(dist)
        if mb is not None:
            print(f"install size {dist}: {mb:.0f} MB ({', '.join(names)})")


if __name__ == "__main__":
    main()
