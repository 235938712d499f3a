"""fastnn._engine.blas / fastnn._kernels._blas: NumPy's BLAS GEMM reached from C (the
Winograd conv's chunk loops) against np.matmul, its argument checks, and the NumPy
loops the conv falls back to without it."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnn as fn
from fastnn import nn
from fastnn._engine import blas
from fastnn._engine import conv as econv
from fastnn._kernels import _blas, _conv

OPENBLAS = any(i.get("internal_api") == "openblas" for i in threadpool_info())


@pytest.fixture
def c_gemm():
    if not blas.ready():
        pytest.skip("no cblas_?gemm entry point in NumPy's BLAS")


def test_numpys_openblas_is_found():
    if not OPENBLAS:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    assert blas.ready()
    assert "cblas_sgemm" in blas.source()


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gemm_matches_matmul(ta, tb, beta, dt, c_gemm):
    rng = np.random.default_rng(1)
    m, n, k = 37, 19, 53
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
    c0 = rng.standard_normal((m, n)).astype(dt)
    c = c0.copy()
    out = _blas.gemm(a, b, c, ta, tb, beta)
    assert out is c
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64) + beta * c0
    tol = 1e-4 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol * np.abs(want).max())


def test_gemm_rejects_bad_operands(c_gemm):
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        _blas.gemm(a, np.ones((5, 2), np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="do not match"):
        _blas.gemm(a, np.ones((4, 2), np.float32), np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _blas.gemm(a, np.ones((4, 2)), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="empty"):
        _blas.gemm(np.ones((3, 0), np.float32), np.ones((0, 2), np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="both entry points"):
        _blas.set_gemm(1, 0, True)
    with pytest.raises(ValueError, match="C-contiguous"):
        _blas.gemm(np.ones((4, 3), np.float32).T, np.ones((4, 2), np.float32), np.ones((3, 2), np.float32))
    out = np.ones((3, 2), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _blas.gemm(a, np.ones((4, 2), np.float32), out)
    ro = np.ones((4, 2), np.float32)
    ro.flags.writeable = False   # read-only operands are fine
    np.testing.assert_array_equal(_blas.gemm(a, ro, np.zeros((3, 2), np.float32)), np.full((3, 2), 4.0))


def _conv_step(x, seed=2):
    conv = nn.Conv2d(x.shape[1], 6, 3, padding=1, dtype=x.dtype, seed=seed)
    y = conv.forward(x).copy()
    gx = conv.backward(np.cos(np.arange(y.size, dtype=x.dtype)).reshape(y.shape)).copy()
    return y, gx, conv.weight.grad.copy(), conv.bias.grad.copy()


@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_parts_run_the_c_loops_and_match_the_numpy_loops(threads, c_gemm, monkeypatch):
    """With an entry point the Winograd parts call the C chunk loops (one call per part
    and pass), and give the NumPy loops' results; without one (cleared) they take the
    NumPy loops."""
    monkeypatch.setattr(econv, "WINOGRAD", True)
    monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)
    monkeypatch.setattr(econv, "CHUNK_ELEMENTS", 16 * 16 * 16)   # one image per chunk
    x = np.random.default_rng(3).standard_normal((5, 16, 8, 9)).astype(np.float32)
    calls = []
    for name in ("wino_forward_chunks", "wino_backward_chunks"):
        real = getattr(_conv, name)
        monkeypatch.setattr(_conv, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
    with fn.threads(threads):
        got = _conv_step(x)
        assert calls.count("wino_forward_chunks") == threads == calls.count("wino_backward_chunks")
        monkeypatch.setattr(blas, "C_LOOPS", False)
        want = _conv_step(x)
        assert len(calls) == 2 * threads
        monkeypatch.setattr(blas, "C_LOOPS", True)
        _blas.set_gemm(0, 0, False)
        try:
            assert not blas.c_loops()
            cleared = _conv_step(x)
        finally:
            blas._state["tried"] = False
            assert blas.ready()
        assert len(calls) == 2 * threads
    for name, a, b, c in zip(("y", "gx", "gw", "gb"), got, want, cleared):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(c, b, err_msg=name)
