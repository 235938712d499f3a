"""LSTM forward + backward through time: fastnn vs a NumPy LSTM vs torch.nn.LSTM.

Workload ``lstm_t50_b64_64x128`` of the harness (``fastnn._bench.workloads.rnn``): one
LSTM layer, input 64, hidden 128, sequence 50, batch 64 (batch_first), float32; one
timed call = forward of the whole sequence, then backward of a fixed output gradient.
Each implementation's output and gradients are checked after timing against a float64
run of the NumPy LSTM.  ``--fastnn-quick`` uses a small shape.
"""
import pytest

from fastnn._bench.workloads.rnn import LSTM_SHAPE, LSTM_SHAPE_QUICK

IMPLS = ("numpy", "fastnn", "torch")


@pytest.mark.parametrize("impl", IMPLS)
def test_lstm_forward_backward(benchmark, run_and_check, n_threads, quick, impl):
    batch, seq, inp, hid = LSTM_SHAPE_QUICK if quick else LSTM_SHAPE
    name = f"lstm_t{seq}_b{batch}_{inp}x{hid}"
    benchmark.group = f"lstm_b{batch}_t{seq}_i{inp}_h{hid}-threads{n_threads}"
    benchmark.extra_info["shape"] = str(dict(batch=batch, seq=seq, inp=inp, hid=hid))
    run_and_check(name, impl, rounds=20, quick_rounds=3)
