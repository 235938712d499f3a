"""The benchmark harness (fastnn._bench): registry, checks, and the demo kept off it."""
import subprocess
import sys

import numpy as np
import pytest

from fastnn import _bench
from fastnn._bench.harness import Impl


def test_default_set_has_the_lstm_row_and_extras_run_on_request():
    names = _bench.workload_names()
    assert "lstm_t50_b64_64x128" in names
    # the rows of the README's measured table keep their names and order
    assert names[:12] == ["adam", "sgd_momentum", "rmsprop", "dense_b256_784x1024",
                          "dense_b64_1024x1024", "dense_b4096_256x256", "mlp_epoch", "digits",
                          "conv_n64_3x32_32_k3p1", "conv_n64_32x64_16_k3p1",
                          "conv_n128_1x8_28_k5p0", "lenet_step"]
    extra = _bench.extra_workload_names()
    assert not set(extra) & set(names)
    selected, unknown = _bench.select(["norm", "elementwise", "lstm", "distributed"])
    assert unknown == []
    assert selected == ["lstm_t50_b64_64x128"] + extra
    assert extra[-1] == "mlp_ranks"


def test_unknown_workload_names_are_reported():
    assert _bench.select(["nonsense"])[1] == ["nonsense"]
    with pytest.raises(ValueError, match="unknown workload 'nonsense'"):
        _bench.make_workload("nonsense")


@pytest.mark.parametrize("name", ["lstm_t6_b8_8x16", "norm_groupnorm", "loss_huber", "dropout"])
def test_quick_workload_fastnn_passes_and_a_wrong_result_fails(name):
    wl = _bench.make_workload(name, quick=True)
    impl = wl.make("fastnn")
    impl.run()
    wl.check("fastnn", impl, wl.reference(impl.calls))
    good = impl.result()
    wrong = Impl(lambda: None, lambda: tuple(np.asarray(a) * 1.5 + 0.1 for a in good))
    with pytest.raises(AssertionError, match=r"\[wrong\]"):
        wl.check("wrong", wrong, wl.reference(1))


def test_demo_and_zoo_do_not_import_the_bench():
    code = ("import sys, fastnn._demo, fastnn._zoo; "
            "print(any(m.startswith('fastnn._bench') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_samples_are_back_to_back_calls_equal_for_every_implementation(monkeypatch):
    import time

    from fastnn._bench import harness

    monkeypatch.setattr(harness, "SETTLE_S", 0.0)

    class Fake(harness.Workload):
        name = title = "fake"
        impl_names = ("fast", "slow")

    wl = Fake()
    impls = {"fast": Impl(lambda: time.sleep(0.002)), "slow": Impl(lambda: time.sleep(0.02))}
    rec = harness.run_workload(wl, impls, 1, repeats=3)
    # the fastest call (~2 ms) sets the sample length: the cap of back-to-back calls
    assert rec["calls_per_sample"] == harness.MAX_CALLS_PER_SAMPLE
    # and the untimed warm-up calls before each sample (WARM_S of the fastest, capped)
    assert rec["warm_calls"] == harness.MAX_CALLS_PER_SAMPLE
    # every implementation ran the same number of calls (checks compare states after them)
    assert impls["fast"].calls == impls["slow"].calls == 1 + 1 + 3 * 2 * harness.MAX_CALLS_PER_SAMPLE
    # times are per call (>= the sleep), not per sample (>= 8 sleeps)
    assert 2 <= rec["ms"]["fast"] < 0.9 * 8 * 2 and 20 <= rec["ms"]["slow"] < 0.9 * 8 * 20
