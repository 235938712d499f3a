"""How close can the LSTM and MLP-epoch rows of issue 15 get?  Floors measured in one run.

Two rows of ``python -m fastnn bench`` have targets this script tests against what no
implementation on NumPy's BLAS can beat:

1. LSTM(64, 128) T=50 B=64 fwd+bwd, target torch / fastnn >= 1.2.  ``gemms`` times the
   matrix products of fastnn's LSTM alone, in its layouts and order (input projection,
   49 recurrent products, 50 products ``dz_t @ [W_hh | W_ih]``, the weight-gradient
   product), with nothing between them: the time fastnn would take with free gate
   math, copies and Python.  If torch / gemms < 1.2, the target needs a faster GEMM
   than the BLAS in use, whatever happens around it.  ``gemms/2`` is the same for
   one half of the batch on one BLAS thread: at 2 threads fastnn runs the halves as
   independent recurrences, one per thread, so no part finishes sooner than this.
   ``cols/2`` is the other way to halve the work: the whole batch's products for half of
   the hidden units (gate columns forward, gradient columns backward), one BLAS thread.
   ``peak`` is the LSTM's multiply-adds (940M) at the rate the same BLAS reaches on a
   large square product (1536^3 SGEMM, the best case of any GEMM): no schedule of
   these products on this BLAS and these cores can take less.  Adding what fastnn spends
   beside its GEMMs (fastnn - gemms, at 2+ threads fastnn - gemms/2: gate math, copies,
   loop) gives the ratio fastnn would reach with every GEMM at that rate.
2. MLP 784-256-128-10 epoch, target fastnn <= 1.15 x bound (the epoch's GEMMs alone).
   ``bound+adam`` is the bound's loop plus fastnn's Adam step (``optimizer.step()``, no
   finiteness check) on the model's 235K parameters after each batch: every real
   epoch does at least this.  If bound+adam / bound > 1.15, the target is out of reach
   with the batch gathers, activations and the loss still to add.  ``floor`` is the
   whole epoch without its layers: per batch, the gather of its shuffled rows (the
   kernel ``fit`` uses), the bound's GEMMs, the loss forward+backward on the logits and
   the Adam step with ``fit``'s finiteness check (``_step()``).  What fastnn spends
   above ``floor`` is its layers' bias/activation passes and its Python.

Rows are timed interleaved (fastnn, torch in its own process, the floor), median of
rounds, at each thread count (fastnn, threadpoolctl and torch set to it).  Run on an
otherwise idle machine, with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset::

    python benchmarks/floors.py --threads 1,2
"""
import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastnn._bench.harness import SETTLE_S, Impl, set_threads, thread_limit
from fastnn._bench.registry import make_workload


def lstm_gemms(wl, part=1, by="batch"):
    """The GEMMs of fastnn's LSTM forward+backward (fastnn/nn/rnn.py), alone.  With
    ``part`` > 1, one thread's share on one BLAS thread: ``by="batch"`` those of n / part
    sequences (fastnn's batch split), ``by="columns"`` the full batch's products for 1 / part
    of the gate columns (forward), of the [h | x] gradient columns (backward) and of the
    weight-gradient rows (a split by hidden units, which would need a barrier per step)."""
    n, t, i_sz, h = wl.shape
    g, gcols, bcols = 4 * h, 4 * h, h + i_sz
    if by == "batch":
        n //= part
    else:
        gcols, bcols = gcols // part, bcols // part
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n * t, i_sz), dtype=np.float32)
    hx = rng.standard_normal((n * t, h + i_sz), dtype=np.float32)
    wih = np.ascontiguousarray(wl.params["weight_ih_l0"][:gcols])
    whhT = np.ascontiguousarray(wl.params["weight_hh_l0"][:gcols].T)
    wcat = np.concatenate([wl.params["weight_hh_l0"], wl.params["weight_ih_l0"]], axis=1)[:, :bcols].copy()
    gates = np.empty((n * t, gcols), np.float32)
    rec = np.empty((n, gcols), np.float32)
    dz = rng.standard_normal((n * t, g), dtype=np.float32)
    dhx = np.empty((n * t, bcols), np.float32)
    gw = np.empty((gcols, h + i_sz), np.float32)

    def run():
        np.matmul(x, wih.T, out=gates)
        for k in range(1, t):                        # step 0 has h0 = 0: no product
            np.matmul(hx[k * n:(k + 1) * n, :h], whhT, out=rec)
        for k in range(t - 1, -1, -1):
            np.matmul(dz[k * n:(k + 1) * n], wcat, out=dhx[k * n:(k + 1) * n])
        np.matmul(dz[:, :gcols].T, hx, out=gw)

    if part == 1:
        return Impl(run)

    def run_part():
        with threadpool_limits(1, user_api="blas"):
            run()
    return Impl(run_part)


def lstm_flops(wl):
    """Floating-point operations (2 per multiply-add) of ``lstm_gemms(wl)``."""
    n, t, i_sz, h = wl.shape
    g = 4 * h
    macs = n * t * i_sz * g + (t - 1) * n * h * g + 2 * t * n * g * (h + i_sz)
    return 2 * macs


def square_gemm(size=1536):
    """A large square SGEMM, the best rate the BLAS reaches; returns (Impl, flops)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    return Impl(lambda: np.matmul(a, b, out=c)), 2 * size ** 3


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


def mlp_floor(wl):
    """Per batch: gather, the bound's GEMMs, loss forward+backward, checked Adam step."""
    from fastnn import losses, optim
    from fastnn._kernels import _data
    from fastnn._zoo import fastnn_mlp

    batches, step = wl.bound_steps()
    model = fastnn_mlp(wl.params0)
    opt = optim.Adam(model.parameters(), lr=wl.lr)
    loss = losses.CrossEntropyLoss()
    loss.forward(model.forward(wl.X[:wl.batch_size]), wl.y[:wl.batch_size])
    model.backward(loss.backward())                 # real gradients, kept for every step
    labels = {bs: np.empty(bs, wl.y.dtype) for bs in set(batches)}
    order = np.random.default_rng(0)

    cur = {}                                        # this batch's row indices and labels

    def gather(acts):
        _data.gather_rows(wl.X, cur["idx"], acts[0], 1)
        _data.gather_rows(wl.y, cur["idx"], cur["y"], 1)

    def loss_pass(acts):
        loss.forward(acts[-1], cur["y"])
        loss.backward()

    def run():
        perm, lo = order.permutation(wl.X.shape[0]), 0
        for bs in batches:
            cur["idx"], cur["y"] = perm[lo:lo + bs], labels[bs]
            lo += bs
            step(bs, gather, loss_pass)
            if not opt._step():
                raise FloatingPointError("non-finite gradient in the floor loop")
    return Impl(run)


def time_rows(rows, threads, rounds, warm):
    """Median ms per call of each row; each sample follows a pause and ``warm`` untimed
    calls, as in the bench harness (the previous row's threads, torch's in another
    process included, stop spinning, and the first calls after a switch are slow)."""
    out = {}
    with thread_limit(threads):
        set_threads(rows.values(), threads)
        for impl in rows.values():
            impl.run_timed(1, warm=2)
        samples = {k: [] for k in rows}
        for _ in range(rounds):
            for k, impl in rows.items():
                time.sleep(SETTLE_S)
                samples[k].append(impl.run_timed(1, warm) * 1e3)
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
    lstm_rows = {"fastnn": lstm.make("fastnn"), "torch": lstm.make("torch"), "gemms": lstm_gemms(lstm),
                 "gemms/2": lstm_gemms(lstm, part=2),
                 "cols/2": lstm_gemms(lstm, part=2, by="columns")}
    square, square_flops = square_gemm()
    mlp_rows = {"fastnn": mlp.make("fastnn"), "bound": mlp.make("bound"),
                "bound+adam": mlp_bound_adam(mlp), "floor": mlp_floor(mlp)}
    for n in (int(s) for s in args.threads.split(",")):
        ms = time_rows(lstm_rows, n, args.lstm_rounds, warm=3)
        print(f"LSTM(64, 128) T=50 B=64 fwd+bwd, {n} thread(s), median of {args.lstm_rounds}: "
              f"fastnn {ms['fastnn']:.2f} ms, torch {ms['torch']:.2f} ms, fastnn's GEMMs alone "
              f"{ms['gemms']:.2f} ms, those of half the batch on one thread {ms['gemms/2']:.2f} ms "
              f"(half the hidden units {ms['cols/2']:.2f} ms) "
              f"-> torch/fastnn {ms['torch'] / ms['fastnn']:.2f}x, torch/GEMMs-alone "
              f"{ms['torch'] / ms['gemms']:.2f}x, torch/half-batch-GEMMs "
              f"{ms['torch'] / ms['gemms/2']:.2f}x, torch/half-units-GEMMs {ms['torch'] / ms['cols/2']:.2f}x "
              f"(target 1.2x)")
        sq = time_rows({"square": square}, n, 5, warm=1)["square"]
        rate = square_flops / sq / 1e6                   # GFLOP/s (ms in sq)
        peak = lstm_flops(lstm) / rate / 1e6
        beside = ms["fastnn"] - (ms["gemms"] if n == 1 else ms["gemms/2"])   # as fastnn runs them
        print(f"  the LSTM's {lstm_flops(lstm) / 1e9:.2f} GFLOP at the 1536^3 SGEMM's {rate:.1f} GFLOP/s: "
              f"{peak:.2f} ms (GEMMs alone run at {peak / ms['gemms']:.0%} of it) -> torch/peak "
              f"{ms['torch'] / peak:.2f}x; with fastnn's time beside its GEMMs "
              f"({beside:.2f} ms) {ms['torch'] / (peak + beside):.2f}x (target 1.2x)")
        ms = time_rows(mlp_rows, n, args.mlp_rounds, warm=0)
        print(f"MLP 784-256-128-10 epoch, {n} thread(s), median of {args.mlp_rounds}: "
              f"fastnn {ms['fastnn']:.0f} ms, bound {ms['bound']:.0f} ms, bound+Adam steps "
              f"{ms['bound+adam']:.0f} ms, floor {ms['floor']:.0f} ms -> fastnn/bound "
              f"{ms['fastnn'] / ms['bound']:.2f}x, (bound+Adam)/bound {ms['bound+adam'] / ms['bound']:.2f}x, "
              f"floor/bound {ms['floor'] / ms['bound']:.2f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
