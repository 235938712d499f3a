"""How close can the LSTM and MLP-epoch rows of issue 15 get?  Floors measured in one run.

Two rows of ``python -m fastnn bench`` have targets this script tests against what no
implementation on NumPy's BLAS can beat:

1. LSTM(64, 128) T=50 B=64 fwd+bwd, target torch / fastnn >= 1.2.  ``gemms`` times the
   matrix products of fastnn's LSTM alone, in its layouts and order (input projection,
   49 recurrent products, 50 products ``dz_t @ [W_hh | W_ih]``, the weight-gradient
   product), with nothing between them: the time fastnn would take with free gate
   math, copies and Python.  If torch / gemms < 1.2, the target needs a faster GEMM
   than the BLAS in use, whatever happens around it.
2. MLP 784-256-128-10 epoch, target fastnn <= 1.15 x bound (the epoch's GEMMs alone).
   ``bound+adam`` is the bound's loop plus fastnn's Adam step (``optimizer.step()``, no
   finiteness check) on the model's 235K parameters after each batch: every real
   epoch does at least this.  If bound+adam / bound > 1.15, the target is out of reach
   with the batch gathers, activations and the loss still to add.

Rows are timed interleaved (fastnn, torch in its own process, the floor), median of
rounds, at each thread count (fastnn, threadpoolctl and torch set to it).  Run on an
otherwise idle machine, with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset::

    python benchmarks/floors.py --threads 1,2
"""
import argparse
import os
import statistics

import numpy as np

from fastnn._bench.harness import Impl, set_threads, thread_limit
from fastnn._bench.registry import make_workload


def lstm_gemms(wl):
    """The GEMMs of fastnn's LSTM forward+backward (fastnn/nn/rnn.py), alone."""
    n, t, i_sz, h = wl.shape
    g = 4 * h
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n * t, i_sz), dtype=np.float32)
    hx = rng.standard_normal((n * t, h + i_sz), dtype=np.float32)
    wih = wl.params["weight_ih_l0"]
    whhT = np.ascontiguousarray(wl.params["weight_hh_l0"].T)
    wcat = np.concatenate([wl.params["weight_hh_l0"], wih], axis=1)
    gates = np.empty((n * t, g), np.float32)
    rec = np.empty((n, g), np.float32)
    dz = rng.standard_normal((n * t, g), dtype=np.float32)
    dhx = np.empty((n * t, h + i_sz), np.float32)
    gw = np.empty((g, h + i_sz), np.float32)

    def run():
        np.matmul(x, wih.T, out=gates)
        for k in range(1, t):                        # step 0 has h0 = 0: no product
            np.matmul(hx[k * n:(k + 1) * n, :h], whhT, out=rec)
        for k in range(t - 1, -1, -1):
            np.matmul(dz[k * n:(k + 1) * n], wcat, out=dhx[k * n:(k + 1) * n])
        np.matmul(dz.T, hx, out=gw)
    return Impl(run)


def mlp_bound_adam(wl):
    """The MLP epoch's bound loop plus fastnn's Adam step after every batch."""
    from fastnn import losses, optim
    from fastnn._zoo import fastnn_mlp

    bound = wl.make("bound")
    model = fastnn_mlp(wl.params0)
    loss = losses.CrossEntropyLoss()
    xb, yb = wl.X[:wl.batch_size], wl.y[:wl.batch_size]
    loss.forward(model.forward(xb), yb)
    model.backward(loss.backward())                 # real gradients, kept for every step
    opt = optim.Adam(model.parameters(), lr=wl.lr)
    n_steps = -(-wl.X.shape[0] // wl.batch_size)
    # the steps run after the bound's GEMMs, not between them: their state stays in
    # cache, which a real epoch's GEMMs evict, so this is still a floor

    def run():
        bound.run()
        for _ in range(n_steps):
            opt.step()
    return Impl(run)


def time_rows(rows, threads, rounds):
    out = {}
    with thread_limit(threads):
        set_threads(rows.values(), threads)
        for impl in rows.values():
            impl.run_timed(1, warm=2)
        samples = {k: [] for k in rows}
        for _ in range(rounds):
            for k, impl in rows.items():
                samples[k].append(impl.run_timed(1) * 1e3)
    for k, s in samples.items():
        out[k] = statistics.median(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--lstm-rounds", type=int, default=40)
    ap.add_argument("--mlp-rounds", type=int, default=5)
    args = ap.parse_args()
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; unset it for benchmarks")
    lstm = make_workload("lstm_t50_b64_64x128")
    mlp = make_workload("mlp_epoch")
    lstm_rows = {"fastnn": lstm.make("fastnn"), "torch": lstm.make("torch"), "gemms": lstm_gemms(lstm)}
    mlp_rows = {"fastnn": mlp.make("fastnn"), "bound": mlp.make("bound"),
                "bound+adam": mlp_bound_adam(mlp)}
    for n in (int(s) for s in args.threads.split(",")):
        ms = time_rows(lstm_rows, n, args.lstm_rounds)
        print(f"LSTM(64, 128) T=50 B=64 fwd+bwd, {n} thread(s), median of {args.lstm_rounds}: "
              f"fastnn {ms['fastnn']:.2f} ms, torch {ms['torch']:.2f} ms, fastnn's GEMMs alone "
              f"{ms['gemms']:.2f} ms -> torch/fastnn {ms['torch'] / ms['fastnn']:.2f}x, "
              f"torch/GEMMs-alone {ms['torch'] / ms['gemms']:.2f}x (target 1.2x)")
        ms = time_rows(mlp_rows, n, args.mlp_rounds)
        print(f"MLP 784-256-128-10 epoch, {n} thread(s), median of {args.mlp_rounds}: "
              f"fastnn {ms['fastnn']:.0f} ms, bound {ms['bound']:.0f} ms, bound+Adam steps "
              f"{ms['bound+adam']:.0f} ms -> fastnn/bound {ms['fastnn'] / ms['bound']:.2f}x, "
              f"(bound+Adam)/bound {ms['bound+adam'] / ms['bound']:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
