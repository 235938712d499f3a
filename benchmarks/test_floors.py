"""The floors script (benchmarks/floors.py) times what it says it times.

Not timings: the LSTM rows run the products whose FLOP count the peak row divides by (a
split row exactly half of them), and the MLP floor runs one real epoch's worth of steps.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import floors  # noqa: E402

from fastnn._bench.registry import make_workload  # noqa: E402
from fastnn._bench.workloads.mlp import MLPEpoch  # noqa: E402


def _counted_flops(impl, monkeypatch):
    flops = []
    matmul = np.matmul

    def counting(a, b, out=None):
        flops.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        assert a.shape[1] == b.shape[0] and out.shape == (a.shape[0], b.shape[1])
        return matmul(a, b, out=out)

    with monkeypatch.context() as m:
        m.setattr(np, "matmul", counting)
        impl.run()
    return sum(flops), len(flops)


@pytest.fixture(scope="module")
def lstm():
    return make_workload("lstm_t50_b64_64x128")


def test_lstm_gemms_are_the_counted_flops(lstm, monkeypatch):
    t = lstm.shape[1]
    flops, calls = _counted_flops(floors.lstm_gemms(lstm), monkeypatch)
    assert flops == floors.lstm_flops(lstm)
    assert calls == 1 + (t - 1) + t + 1          # projection, recurrent, backward, weight grads


@pytest.mark.parametrize("by", ["batch", "columns"])
def test_lstm_split_rows_are_half_the_work(lstm, monkeypatch, by):
    flops, _ = _counted_flops(floors.lstm_gemms(lstm, part=2, by=by), monkeypatch)
    assert flops * 2 == floors.lstm_flops(lstm)


def test_mlp_floor_steps_the_model_once_per_batch(monkeypatch):
    wl = MLPEpoch(n_samples=300, batch_size=128)
    batches, step = wl.bound_steps()
    assert batches == [128, 128, 44]
    seen = []
    step(44, before=lambda acts: seen.append(("before", acts[0].shape)),
         between=lambda acts: seen.append(("between", acts[-1].shape)))
    assert seen == [("before", (44, 784)), ("between", (44, 10))]

    from fastnn.optim import Adam

    floor = floors.mlp_floor(wl)
    calls, orig = [], Adam._step

    def counting(self):
        calls.append(1)
        return orig(self)

    monkeypatch.setattr(Adam, "_step", counting)
    floor.run()
    assert len(calls) == len(batches)
