"""optim.ParameterAverager (issue 4 part)."""
import numpy as np
import pytest

import fastnn as fn


def _run(mode, decay, dtype, rng, steps=25):
    ps = [fn.nn.Parameter(rng.standard_normal((3, 4)).astype(dtype)), fn.nn.Parameter(np.zeros(5, dtype))]
    avg = fn.optim.ParameterAverager(ps, mode=mode, decay=decay)
    history = []
    for _ in range(steps):
        for p in ps:
            p.data += rng.standard_normal(p.data.shape).astype(dtype)
        history.append([p.data.astype(np.float64).copy() for p in ps])
        avg.update()
    return ps, avg, history


@pytest.mark.parametrize("mode,decay", [("polyak", 0.9), ("ema", 0.9), ("ema", 0.5)])
def test_average_matches_reference_and_applied_restores(mode, decay, dtype, rng):
    ps, avg, history = _run(mode, decay, dtype, rng)
    T = len(history)
    if mode == "polyak":
        w = np.full(T, 1.0 / T)
    else:
        w = (1 - decay) * decay ** (T - 1 - np.arange(T)) / (1 - decay ** T)
    want = [sum(w[t] * history[t][i] for t in range(T)) for i in range(2)]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for got, ref in zip(avg.averaged(), want):
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol)
    trained = [p.data.copy() for p in ps]
    with avg.applied():
        for p, ref in zip(ps, want):
            np.testing.assert_allclose(p.data, ref, rtol=rtol, atol=rtol)
    for p, t in zip(ps, trained):
        np.testing.assert_array_equal(p.data, t)


def test_applied_restores_on_exception(rng):
    ps, avg, _ = _run("ema", 0.9, np.float64, rng, steps=3)
    before = [p.data.copy() for p in ps]
    with pytest.raises(KeyError):
        with avg.applied():
            raise KeyError("boom")
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.data, b)


def test_bad_arguments():
    p = fn.nn.Parameter(np.zeros(3))
    with pytest.raises(ValueError):
        fn.optim.ParameterAverager([p], mode="swa")
    with pytest.raises(ValueError):
        fn.optim.ParameterAverager([p], decay=1.0)
    with pytest.raises(TypeError):
        fn.optim.ParameterAverager(p)
    with pytest.raises(RuntimeError):
        fn.optim.ParameterAverager([p]).averaged()
