"""Winograd F(2x2, 3x3) convolutions and the batch split of the conv passes.

The transform kernels (fastnn._kernels._conv.wino_*) against the matrix formulas
of src_c/fnn_wino.c written out in NumPy; the Winograd path of ops.conv2d /
ops.conv2d_backward / nn.Conv2d against im2col, a float64 reference, finite
differences and torch; the batch split over fastnn's threads against one thread;
and fastnn._engine.parallel itself.
"""
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnn as fn
from fastnn import nn, ops
from fastnn._engine import blas
from fastnn._engine import conv as econv
from fastnn._engine import parallel as _parallel
from fastnn._kernels import _conv

from conftest import numeric_grad
from test_conv import ref_conv, ref_conv_backward

# -- transform matrices (src_c/fnn_wino.c) ----------------------------------------------------
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)

# relative tolerance (of the reference's largest magnitude) of a conv against float64 math
_REL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _close(actual, desired, scale=1.0, err_msg=""):
    actual = np.asarray(actual)
    desired = np.asarray(desired, np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    tol = _REL[actual.dtype] * scale
    mag = float(np.max(np.abs(desired))) if desired.size else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), desired, rtol=tol,
                               atol=tol * (mag or 1.0), err_msg=err_msg)


def _tiles(oh, ow):
    return (oh + 1) // 2, (ow + 1) // 2


def _out_hw(h, w, p):
    return h + 2 * p[0] - 2, w + 2 * p[1] - 2


# -- NumPy references of the transforms (float64) ---------------------------------------------
def ref_wino_in(x, p, oh, ow):
    """(16, C, N, T): B^T d B of every 4x4 tile (stride 2) of the zero-padded input."""
    n, c, h, w = x.shape
    th, tw = _tiles(oh, ow)
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    v = np.empty((4, 4, c, n, th, tw))
    for ty in range(th):
        for tx in range(tw):
            d = xp[:, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]
            v[..., ty, tx] = np.einsum("ia,ncab,jb->ijcn", BT, d, BT)
    return v.reshape(16, c, n, th * tw)


def ref_wino_out(M, b, n, oh, ow):
    """(n, O, OH, OW): A^T m A (+ b) of every tile of M (16, O, n * T), clipped to OH x OW."""
    th, tw = _tiles(oh, ow)
    m = M.astype(np.float64).reshape(4, 4, -1, n, th, tw)
    y = np.einsum("ri,ijonyx,sj->noyrxs", AT, m, AT).reshape(n, -1, 2 * th, 2 * tw)[:, :, :oh, :ow]
    return y if b is None else y + np.asarray(b, np.float64)[None, :, None, None]


def ref_wino_gout(gy):
    """(16, O, N, T): A g A^T of the 2x2 tiles of gy, zero-padded past OH / OW."""
    n, o, oh, ow = gy.shape
    th, tw = _tiles(oh, ow)
    gp = np.zeros((n, o, 2 * th, 2 * tw))
    gp[:, :, :oh, :ow] = gy
    g = gp.reshape(n, o, th, 2, tw, 2)
    return np.einsum("ri,noyrxs,sj->ijonyx", AT, g, AT).reshape(16, o, n, th * tw)


def ref_wino_gin(dV, n, hw, p, oh, ow):
    """(n, C, H, W): sum over tiles of B dv B^T scattered into the padded plane, cropped."""
    th, tw = _tiles(oh, ow)
    v = dV.astype(np.float64).reshape(4, 4, -1, n, th, tw)
    c = v.shape[2]
    gp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    for ty in range(th):
        for tx in range(tw):
            gp[:, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4] += np.einsum(
                "ia,ijcn,jb->ncab", BT, v[..., ty, tx], BT)
    return gp[:, :, p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]]


def ref_wino_weight(w):
    """(16, O, C): G g G^T of every 3x3 filter."""
    o, c = w.shape[:2]
    return np.einsum("ia,ocab,jb->ijoc", G, w.astype(np.float64), G).reshape(16, o, c)


def ref_wino_wgrad(dU, o, c):
    """(O, C, 3, 3): G^T u G of every 4x4 u of dU (16, O, C)."""
    return np.einsum("ia,ijoc,jb->ocab", G, dU.astype(np.float64).reshape(4, 4, o, c), G)


TRANSFORM_GEOMS = [  # (H, W, padding): odd, even, tiny, wide (vector loops + remainder)
    (7, 9, (0, 0)), (7, 9, (1, 1)), (5, 7, (2, 2)), (7, 9, (1, 0)), (6, 5, (0, 2)),
    (4, 8, (2, 1)), (3, 3, (0, 0)), (1, 1, (1, 1)), (2, 1, (1, 2)), (9, 41, (1, 1)),
    (5, 38, (0, 1)),
]
TRANSFORM_IDS = [f"{h}x{w}_p{p[0]}{p[1]}" for h, w, p in TRANSFORM_GEOMS]
N_IMG, N0, N1 = 4, 1, 3  # the kernels work on images [N0, N1) of N_IMG
# channel counts: a few, and enough for full 64-byte transpose blocks (16 floats,
# 8 doubles) plus a remainder; the 9x41 and 5x38 planes give full blocks along W
CHANNELS = pytest.mark.parametrize("ch", [3, 18], ids=["ch3", "ch18"])


def _nan_outside(a, axis):
    """Entries of the images outside [N0, N1) along ``axis`` all still NaN."""
    outside = np.take(a, [i for i in range(a.shape[axis]) if not N0 <= i < N1], axis=axis)
    return bool(np.isnan(outside).all())


def _rows(a):
    """(16, ch, N, T) reference layout -> the kernels' (16, N * T, ch) point blocks."""
    return a.transpose(0, 2, 3, 1).reshape(16, -1, a.shape[1])


def _cols(a):
    """The kernels' chunk blocks (16, R, ch) -> the references' (16, ch, R)."""
    return a.transpose(0, 2, 1)


def _padded(rows, ch, dtype, extra=3):
    """A (16, rows, ch) view of a NaN buffer with ``extra`` spare rows per point
    block (the engine's chunk buffers are such leading slices): the kernels must
    step between blocks by the array's stride and leave the spare rows alone."""
    buf = np.full((16, rows + extra, ch), np.nan, dtype)
    return buf, buf[:, :rows]


@pytest.mark.parametrize("h, w, p", TRANSFORM_GEOMS, ids=TRANSFORM_IDS)
@CHANNELS
def test_wino_in_matches_numpy(h, w, p, ch, dtype, rng, assert_close):
    """V's rows of images [n0, n1) = B^T d B per tile of the padded input; other
    images' rows untouched and the input images outside [n0, n1) not read."""
    c = ch
    oh, ow = _out_hw(h, w, p)
    t = np.prod(_tiles(oh, ow))
    x = rng.standard_normal((N_IMG, c, h, w)).astype(dtype)
    ref = _rows(ref_wino_in(x, p, oh, ow)).reshape(16, N_IMG, t, c)
    x[:N0] = np.nan
    x[N1:] = np.nan
    buf, V = _padded(N_IMG * t, c, dtype)
    _conv.wino_in(x, V, N0, N1, p, (oh, ow))
    V = V.reshape(16, N_IMG, t, c)
    assert_close(V[:, N0:N1], ref[:, N0:N1], scale=4)
    assert _nan_outside(V, 1)
    assert np.isnan(buf[:, N_IMG * t:]).all()


@pytest.mark.parametrize("h, w, p", TRANSFORM_GEOMS, ids=TRANSFORM_IDS)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
@CHANNELS
def test_wino_out_matches_numpy(h, w, p, with_bias, ch, dtype, rng, assert_close):
    """y[n0:n1] = A^T m A + bias per tile from the chunk's M, clipped to OH x OW;
    other images untouched."""
    o = ch
    oh, ow = _out_hw(h, w, p)
    th, tw = _tiles(oh, ow)
    buf = rng.standard_normal((16, (N1 - N0) * th * tw + 3, o)).astype(dtype)
    buf[:, (N1 - N0) * th * tw:] = np.nan   # spare rows past the chunk: never read
    M = buf[:, :(N1 - N0) * th * tw]
    b = rng.standard_normal(o).astype(dtype) if with_bias else None
    y = np.full((N_IMG, o, oh, ow), np.nan, dtype)
    _conv.wino_out(M, y, b, N0, N1, (h, w), p)
    assert_close(y[N0:N1], ref_wino_out(_cols(M), b, N1 - N0, oh, ow), scale=4)
    assert _nan_outside(y, 0)


@pytest.mark.parametrize("h, w, p", TRANSFORM_GEOMS, ids=TRANSFORM_IDS)
@CHANNELS
def test_wino_gout_matches_numpy(h, w, p, ch, dtype, rng, assert_close):
    """The chunk's gM = A g A^T of the zero-padded 2x2 output-gradient tiles of
    images [n0, n1), every entry written; gy outside [n0, n1) not read."""
    o = ch
    oh, ow = _out_hw(h, w, p)
    t = np.prod(_tiles(oh, ow))
    gy = rng.standard_normal((N_IMG, o, oh, ow)).astype(dtype)
    ref = _rows(ref_wino_gout(gy)).reshape(16, N_IMG, t, o)[:, N0:N1]
    gy[:N0] = np.nan
    gy[N1:] = np.nan
    buf, gM = _padded((N1 - N0) * t, o, dtype)
    _conv.wino_gout(gy, gM, N0, N1, (h, w), p)
    assert_close(gM.reshape(16, N1 - N0, t, o), ref, scale=4)
    assert np.isnan(buf[:, (N1 - N0) * t:]).all()


@pytest.mark.parametrize("h, w, p", TRANSFORM_GEOMS, ids=TRANSFORM_IDS)
@CHANNELS
def test_wino_gin_matches_numpy(h, w, p, ch, dtype, rng, assert_close):
    """gx[n0:n1] = sum of B dv B^T scattered into the padded plane and cropped
    (overwriting gx); other images untouched."""
    c = ch
    oh, ow = _out_hw(h, w, p)
    th, tw = _tiles(oh, ow)
    buf = rng.standard_normal((16, (N1 - N0) * th * tw + 3, c)).astype(dtype)
    buf[:, (N1 - N0) * th * tw:] = np.nan   # spare rows past the chunk: never read
    dV = buf[:, :(N1 - N0) * th * tw]
    gx = np.full((N_IMG, c, h, w), np.nan, dtype)
    _conv.wino_gin(dV, gx, N0, N1, p, (oh, ow))
    assert_close(gx[N0:N1], ref_wino_gin(_cols(dV), N1 - N0, (h, w), p, oh, ow), scale=10)
    assert _nan_outside(gx, 0)


@pytest.mark.parametrize("o, c", [(1, 1), (3, 5), (7, 16)])
def test_wino_weight_and_wgrad_match_numpy(o, c, dtype, rng, assert_close):
    """U[xi, c, o] = (G g[o, c] G^T)[xi]; gw = G^T u G, written or (accumulate) added."""
    w = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    U = np.full((16, c, o), np.nan, dtype)
    _conv.wino_weight(w, U)
    assert_close(U, ref_wino_weight(w).transpose(0, 2, 1), scale=4)
    dU = rng.standard_normal((16, c, o)).astype(dtype)
    ref = ref_wino_wgrad(dU.transpose(0, 2, 1), o, c)
    gw = np.full((o, c, 3, 3), np.nan, dtype)
    _conv.wino_wgrad(dU, gw, False)
    assert_close(gw, ref, scale=4)
    gw0 = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    gw = gw0.copy()
    _conv.wino_wgrad(dU, gw, True)
    assert_close(gw, gw0.astype(np.float64) + ref, scale=4)


@pytest.mark.parametrize("h, w, p", TRANSFORM_GEOMS, ids=TRANSFORM_IDS)
def test_wino_transforms_are_adjoint(h, w, p, dtype, rng, assert_close):
    """<wino_in(x), v> == <x, wino_gin(v)> and <wino_out(m), g> == <m, wino_gout(g)>:
    the backward transforms are the exact transposes of the forward ones."""
    c, o, n = 3, 2, 2
    oh, ow = _out_hw(h, w, p)
    t = np.prod(_tiles(oh, ow))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    V = np.empty((16, n * t, c), dtype)
    _conv.wino_in(x, V, 0, n, p, (oh, ow))
    v = rng.standard_normal((16, n * t, c)).astype(dtype)
    gx = np.empty_like(x)
    _conv.wino_gin(v, gx, 0, n, p, (oh, ow))
    assert_close(np.vdot(V.astype(np.float64), v), np.vdot(x.astype(np.float64), gx),
                 dtype=dtype, scale=100)

    m = rng.standard_normal((16, n * t, o)).astype(dtype)
    y = np.empty((n, o, oh, ow), dtype)
    _conv.wino_out(m, y, None, 0, n, (h, w), p)
    g = rng.standard_normal(y.shape).astype(dtype)
    gM = np.empty((16, n * t, o), dtype)
    _conv.wino_gout(g, gM, 0, n, (h, w), p)
    assert_close(np.vdot(y.astype(np.float64), g), np.vdot(m.astype(np.float64), gM),
                 dtype=dtype, scale=100)


# -- the Winograd path of the convs -----------------------------------------------------------
@pytest.fixture(autouse=True)
def _winograd_on_small_shapes(monkeypatch):
    """Every 3x3 stride-1 conv of these tests takes Winograd (WINOGRAD = True); the
    automatic rule ("auto", the default) keeps the small test shapes on im2col."""
    monkeypatch.setattr(econv, "WINOGRAD", True)


@pytest.fixture
def paths(monkeypatch):
    """The path of every conv prepared from now on (True: Winograd, False: im2col)."""
    taken = []
    real = econv.prepare

    def spy(*args, **kwargs):
        st = real(*args, **kwargs)
        taken.append(st.wino)
        return st

    monkeypatch.setattr(econv, "prepare", spy)
    return taken


WINO_CASES = [  # (N, C, O, H, W, padding): all take Winograd (3x3, stride 1, C >= 16, OH, OW >= 8)
    (2, 16, 5, 8, 8, (1, 1)),     # 8x8 out
    (3, 17, 1, 9, 11, (1, 1)),    # 9x11: partial tiles in both directions
    (2, 16, 5, 16, 13, (0, 0)),   # 14x11
    (2, 17, 5, 16, 13, (2, 2)),   # 18x15
    (2, 16, 1, 9, 11, (1, 0)),    # 9x9
    (1, 17, 5, 10, 11, (0, 1)),   # 8x11
]
WINO_IDS = [f"n{n}c{c}o{o}_{h}x{w}_p{p[0]}{p[1]}" for n, c, o, h, w, p in WINO_CASES]
ACT_REF = {
    None: (lambda z: z, lambda gy, z, y: gy),
    "relu": (lambda z: np.maximum(z, 0), lambda gy, z, y: gy * (y > 0)),
    "tanh": (np.tanh, lambda gy, z, y: gy * (1 - np.tanh(z) ** 2)),
}


def _use_loops(loops, monkeypatch):
    """Winograd parts with their chunk loops in C ("c": skipped when fastnn found no BLAS
    entry point) or in NumPy ("numpy")."""
    if loops == "c":
        if not blas.c_loops():
            pytest.skip("no BLAS entry point for the C loops (fastnn._engine.blas)")
    else:
        monkeypatch.setattr(blas, "C_LOOPS", False)


def _case_arrays(case, dtype, rng, with_bias=True):
    n, c, o, h, w, p = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if with_bias else None
    return x, wt, b, p


@pytest.mark.parametrize("case", WINO_CASES, ids=WINO_IDS)
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_functional_winograd_matches_im2col_and_numpy(case, activation, with_bias, dtype, rng,
                                                      paths, monkeypatch):
    """ops.conv2d / conv2d_backward take Winograd on these shapes and agree with the
    im2col path (WINOGRAD = False) and with float64 NumPy."""
    x, wt, b, p = _case_arrays(case, dtype, rng, with_bias)
    fwd, bwd = ACT_REF[activation]
    z = ref_conv(x, wt, b, (1, 1), p)
    gy = rng.standard_normal(z.shape).astype(dtype)
    results = {}
    for wino in (True, False):
        monkeypatch.setattr(econv, "WINOGRAD", wino)
        del paths[:]
        y = ops.conv2d(x, wt, b, 1, p, activation=activation)
        gx, gw, gb = ops.conv2d_backward(gy, x, wt, y, 1, p, activation=activation)
        assert paths == [wino, wino]
        assert y.dtype == gx.dtype == gw.dtype == gb.dtype == dtype
        _close(y, fwd(z), err_msg=f"y wino={wino}")
        rgx, rgw, rgb = ref_conv_backward(bwd(gy, z, y), x, wt, (1, 1), p)
        _close(gx, rgx, err_msg=f"gx wino={wino}")
        _close(gw, rgw, err_msg=f"gw wino={wino}")
        _close(gb, rgb, err_msg=f"gb wino={wino}")
        results[wino] = (y, gx, gw, gb)
    for a, b_ in zip(results[True], results[False]):
        _close(a, b_.astype(np.float64), scale=2)


def _conv_model(c, o, p, activation, dtype, bias=True, k=3, s=1, seed=0):
    conv = nn.Conv2d(c, o, k, s, p, bias=bias, dtype=dtype, seed=seed)
    if activation is None:
        return conv, conv
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]()
    return nn.Sequential(conv, act), conv


@pytest.mark.parametrize("case", WINO_CASES, ids=WINO_IDS)
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_layer_winograd_matches_im2col_and_numpy(case, activation, dtype, rng, monkeypatch):
    """nn.Conv2d (alone, or with ReLU / Tanh fused in Sequential) takes Winograd on these
    shapes; forward and all gradients agree with im2col and with float64 NumPy."""
    n, c, o, h, w, p = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    results = {}
    for wino in (True, False):
        monkeypatch.setattr(econv, "WINOGRAD", wino)
        model, conv = _conv_model(c, o, p, activation, dtype)
        y = model.forward(x).copy()
        state, act = conv._saved[2], conv._saved[3]
        assert state.wino is wino and (state.U is not None) == wino
        assert (act != 0) == (activation is not None)  # the activation ran fused
        fwd, bwd = ACT_REF[activation]
        z = ref_conv(x, conv.weight.data, conv.bias.data, (1, 1), p)
        _close(y, fwd(z), err_msg=f"y wino={wino}")
        gy = np.random.default_rng(7).standard_normal(y.shape).astype(dtype)
        gx = model.backward(gy).copy()
        rgx, rgw, rgb = ref_conv_backward(bwd(gy, z, y), x, conv.weight.data, (1, 1), p)
        _close(gx, rgx, err_msg=f"gx wino={wino}")
        _close(conv.weight.grad, rgw, err_msg=f"gw wino={wino}")
        _close(conv.bias.grad, rgb, err_msg=f"gb wino={wino}")
        results[wino] = (y, gx, conv.weight.grad.copy(), conv.bias.grad.copy())
    for a, b_ in zip(results[True], results[False]):
        _close(a, b_.astype(np.float64), scale=2)


@pytest.mark.parametrize("wino, loops", [(True, "c"), (True, "numpy"), (False, "numpy")],
                         ids=["winograd-c", "winograd-numpy", "im2col"])
@pytest.mark.parametrize("n", [3, 5])
def test_chunked_batch_with_short_last_chunk_matches_numpy(wino, loops, n, dtype, rng, monkeypatch):
    """At one thread, with econv.CHUNK_ELEMENTS lowered to two images' work, a batch whose
    last chunk is shorter than the others still gives NumPy's y, gx and gradients (in
    normal use: e.g. N=6, C=64, 16x16 runs in chunks of 4 and 2 images); Winograd with
    its chunk loops in C (BLAS from C) and in NumPy."""
    _use_loops(loops, monkeypatch)
    c, o, h, w, p = 16, 3, 8, 9, (1, 1)
    t = np.prod(_tiles(h, w))
    per = 16 * max(c, o) * t if wino else c * 9 * h * w
    monkeypatch.setattr(econv, "WINOGRAD", wino)
    monkeypatch.setattr(econv, "CHUNK_ELEMENTS", 2 * per)
    assert econv.chunk_len(n, per) == 2 and [e - a for a, e in econv.chunks(0, n, per)][-1] == 1
    conv = nn.Conv2d(c, o, 3, 1, p, dtype=dtype, seed=6)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    gy = rng.standard_normal((n, o, h, w)).astype(dtype)
    with fn.threads(1):
        y = conv.forward(x).copy()
        assert conv._saved[2].wino is wino
        gx = conv.backward(gy).copy()
        yf = ops.conv2d(x, conv.weight.data, conv.bias.data, 1, p)
        gxf, gwf, gbf = ops.conv2d_backward(gy, x, conv.weight.data, None, 1, p)
    ref = ref_conv(x, conv.weight.data, conv.bias.data, (1, 1), p)
    rgx, rgw, rgb = ref_conv_backward(gy, x, conv.weight.data, (1, 1), p)
    for name, got, want in [("y", y, ref), ("gx", gx, rgx), ("gw", conv.weight.grad, rgw),
                            ("gb", conv.bias.grad, rgb), ("functional y", yf, ref),
                            ("functional gx", gxf, rgx), ("functional gw", gwf, rgw),
                            ("functional gb", gbf, rgb)]:
        _close(got, want, err_msg=name)


@pytest.mark.parametrize("c, k, stride, hw, expected", [
    (16, 3, 1, (10, 10), True),
    (3, 3, 1, (5, 6), True),        # any channels and size
    (16, 3, 2, (20, 20), False),    # stride 2
    (16, 3, (1, 2), (10, 20), False),
    (16, 5, 1, (12, 12), False),    # 5x5 kernel
    (16, (3, 1), 1, (10, 10), False),
])
def test_winograd_forced_takes_every_3x3_stride1_conv(c, k, stride, hw, expected, paths):
    """With WINOGRAD = True every 3x3 stride-1 conv takes Winograd, and only those."""
    x = np.random.default_rng(0).standard_normal((2, c) + hw).astype(np.float32)
    conv = nn.Conv2d(c, 2, k, stride, seed=0)
    y = conv.forward(x)
    assert conv._saved[2].wino is expected
    gw = np.random.default_rng(1).standard_normal((2, c) + conv.kernel_size).astype(np.float32)
    ops.conv2d(x, gw, None, stride)
    assert paths == [expected, expected]
    assert econv.use_winograd(c, 2, conv.kernel_size, conv.stride, *y.shape[2:]) is expected


@pytest.mark.parametrize("c, o, side, expected", [
    (32, 64, 16, True),      # the benchmark shape
    (12, 12, 16, True),
    (16, 3, 4, True),        # few output channels, tiny images: still faster
    (11, 64, 32, False),     # under 12 input channels: im2col measured faster
    (3, 32, 32, False),
])
def test_winograd_auto_rule(c, o, side, expected, monkeypatch):
    """The default ("auto") takes Winograd for 3x3 stride-1 convs with at least 12 input
    channels (where it measured faster than im2col), and only for those."""
    monkeypatch.setattr(econv, "WINOGRAD", "auto")
    assert econv.use_winograd(c, o, (3, 3), (1, 1), side, side) is expected
    assert econv.use_winograd(c, o, (3, 3), (1, 1), side, 2 * side) is expected
    assert econv.use_winograd(c, o, (3, 3), (2, 2), side, side) is False
    x = np.zeros((1, c, side + 2, side + 2), np.float32)
    conv = nn.Conv2d(c, o, 3, seed=0)
    conv.forward(x)
    assert conv._saved[2].wino is expected


def test_winograd_flag_off_takes_im2col(monkeypatch, rng):
    """econv.WINOGRAD = False sends a Winograd-eligible shape to im2col."""
    conv = nn.Conv2d(16, 2, 3, padding=1, seed=0)
    x = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    conv.forward(x)
    assert conv._saved[2].wino is True
    monkeypatch.setattr(econv, "WINOGRAD", False)
    conv.forward(x)
    assert conv._saved[2].wino is False and conv._saved[2].U is None


def test_winograd_layer_finite_differences(rng):
    """float64 Winograd-path Conv2d: input, weight and bias gradients equal central
    differences of <conv(x), gy>."""
    layer = nn.Conv2d(16, 2, 3, padding=1, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, 16, 8, 8))
    y = layer.forward(x)
    assert layer._saved[2].wino is True
    gy = rng.standard_normal(y.shape)

    def f():
        return float(np.vdot(layer.forward(x), gy))

    layer.zero_grad()
    layer.forward(x)
    gx = layer.backward(gy).copy()
    np.testing.assert_allclose(gx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)
    for name, prm in layer.named_parameters():
        np.testing.assert_allclose(prm.grad, numeric_grad(f, prm.data), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_winograd_fused_tanh_finite_differences(rng):
    """float64 Conv2d + Tanh fused on the Winograd path: gradients of a random subset
    of the input and weight entries equal central differences."""
    model, conv = _conv_model(16, 3, (1, 0), "tanh", np.float64, seed=2)
    x = rng.standard_normal((2, 16, 9, 11))
    y = model.forward(x)
    assert conv._saved[2].wino is True and conv._saved[3] != 0
    gy = rng.standard_normal(y.shape)
    model.zero_grad()
    model.forward(x)
    gx = model.backward(gy).copy()
    h = 1e-6
    for arr, grad in ((x, gx), (conv.weight.data, conv.weight.grad), (conv.bias.data, conv.bias.grad)):
        flat = arr.reshape(-1)
        idx = rng.choice(flat.size, size=min(flat.size, 60), replace=False)
        for i in idx:
            old = flat[i]
            flat[i] = old + h
            fp = float(np.vdot(model.forward(x), gy))
            flat[i] = old - h
            fm = float(np.vdot(model.forward(x), gy))
            flat[i] = old
            np.testing.assert_allclose(grad.reshape(-1)[i], (fp - fm) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", [None, "relu"])
def test_winograd_accumulating_and_repeated_backward(activation, rng, assert_close):
    """Two forward+backward steps without zero_grad give 2x the grads; two backwards after
    one forward give the same input gradient and the same grads per call."""
    model, conv = _conv_model(16, 4, 1, activation, np.float64, seed=3)
    x = rng.standard_normal((3, 16, 9, 8))
    gy = rng.standard_normal((3, 4, 9, 8))
    model.zero_grad()
    model.forward(x)
    assert conv._saved[2].wino is True
    gx1 = model.backward(gy).copy()
    gw1, gb1 = conv.weight.grad.copy(), conv.bias.grad.copy()
    model.forward(x)
    model.backward(gy)
    assert_close(conv.weight.grad, 2 * gw1)
    assert_close(conv.bias.grad, 2 * gb1)
    # backward twice after one forward
    model.zero_grad()
    model.forward(x)
    gx_a = model.backward(gy).copy()
    gx_b = model.backward(gy).copy()
    np.testing.assert_array_equal(gx_a, gx1)
    np.testing.assert_array_equal(gx_b, gx1)
    assert_close(conv.weight.grad, 2 * gw1)
    assert_close(conv.bias.grad, 2 * gb1)
    model.zero_grad()
    model.backward(gy)
    np.testing.assert_array_equal(conv.weight.grad, gw1)
    np.testing.assert_array_equal(conv.bias.grad, gb1)


def test_winograd_bias_false(dtype, rng):
    """Conv2d(bias=False) on the Winograd path: no bias parameter, output and weight
    gradient match NumPy, and accumulate."""
    conv = nn.Conv2d(17, 3, 3, padding=1, bias=False, dtype=dtype, seed=0)
    assert conv.bias is None and [name for name, _ in conv.named_parameters()] == ["weight"]
    x = rng.standard_normal((2, 17, 9, 10)).astype(dtype)
    y = conv.forward(x).copy()
    assert conv._saved[2].wino is True
    _close(y, ref_conv(x, conv.weight.data, None, (1, 1), (1, 1)))
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = conv.backward(gy).copy()
    rgx, rgw, _ = ref_conv_backward(gy, x, conv.weight.data, (1, 1), (1, 1))
    _close(gx, rgx)
    _close(conv.weight.grad, rgw)
    conv.forward(x)
    conv.backward(gy)
    _close(conv.weight.grad, 2 * rgw)


TORCH_WINO_CASES = [(3, 16, 6, 10, 9, 1), (2, 17, 4, 9, 11, (1, 0)), (2, 32, 3, 8, 8, 2)]


@pytest.mark.parametrize("case", TORCH_WINO_CASES, ids=[str(c) for c in TORCH_WINO_CASES])
def test_winograd_conv2d_matches_torch(case, dtype, n_threads, rng):
    """A Winograd-path Conv2d with torch's weights: output, input, weight and bias
    gradients equal torch.nn.Conv2d's."""
    torch = pytest.importorskip("torch")
    n, c, o, h, w, p = case
    tconv = torch.nn.Conv2d(c, o, 3, 1, p).to(torch.float64 if dtype == np.float64 else torch.float32)
    conv = nn.Conv2d(c, o, 3, 1, p, dtype=dtype)
    conv.load_state_dict(tconv.state_dict())
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = tconv(tx)
    y = conv.forward(x)
    assert conv._saved[2].wino is True
    scale = 10 if dtype == np.float32 else 100  # ~1e-4 (float32) and ~1e-10 (float64) relative
    _close(y, ty.detach().numpy(), scale=scale)
    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.tensor(gy))
    gx = conv.backward(gy)
    _close(gx, tx.grad.numpy(), scale=scale)
    _close(conv.weight.grad, tconv.weight.grad.numpy(), scale=scale)
    _close(conv.bias.grad, tconv.bias.grad.numpy(), scale=scale)


# -- batch split over fastnn's threads ----------------------------------------------------------
@pytest.fixture
def run_ranges(monkeypatch):
    """The ranges of every _parallel.run call from now on."""
    seen = []
    real = _parallel.run

    def spy(f, ranges):
        seen.append(list(ranges))
        return real(f, ranges)

    monkeypatch.setattr(_parallel, "run", spy)
    return seen


SPLIT_PATHS = {  # name: (C, O, H, W, kernel, stride, padding, WINOGRAD)
    "winograd": (16, 3, 8, 9, 3, 1, 1, True),
    "im2col": (16, 3, 8, 9, 3, 1, 1, False),
    "im2col_strided": (3, 4, 9, 8, (3, 2), 2, (1, 0), True),
}
SPLIT_VARIANTS = [(None, True), ("relu", True), ("tanh", False)]  # (activation, bias)


@pytest.mark.parametrize("path", list(SPLIT_PATHS) + ["winograd_numpy_loops"])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("activation, bias", SPLIT_VARIANTS,
                         ids=[f"{a}-{'bias' if b else 'nobias'}" for a, b in SPLIT_VARIANTS])
def test_batch_split_matches_one_thread(path, n, activation, bias, dtype, rng, run_ranges,
                                        monkeypatch):
    """At 2 threads with the split threshold at 1 MAC, forward / backward run one part per
    thread (N >= 2) and give y, gx and the weight / bias gradients of one thread, also
    when accumulating over two steps (Winograd: chunk loops in C, and in NumPy)."""
    if path == "winograd_numpy_loops":
        _use_loops("numpy", monkeypatch)
        path = "winograd"
    c, o, h, w, k, s, p, wino = SPLIT_PATHS[path]
    monkeypatch.setattr(econv, "WINOGRAD", wino)
    monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)
    model, conv = _conv_model(c, o, p, activation, dtype, bias=bias, k=k, s=s, seed=4)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)

    def step(threads):
        with fn.threads(threads):
            y = model.forward(x).copy()
            gy = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
            model.zero_grad()
            gx = model.backward(gy).copy()
            grads = [prm.grad.copy() for _, prm in model.named_parameters()]
            model.forward(x)
            model.backward(gy)   # accumulates
            acc = [prm.grad.copy() for _, prm in model.named_parameters()]
        return y, gx, grads, acc

    del run_ranges[:]
    y1, gx1, g1, acc1 = step(1)
    assert all(len(r) == 1 for r in run_ranges)
    assert conv._saved[2].wino is (path == "winograd")
    del run_ranges[:]
    y2, gx2, g2, acc2 = step(2)
    expected = _parallel.split(n, 2)
    assert run_ranges == [expected] * 4 and len(expected) == min(n, 2)
    assert len(g1) == (2 if bias else 1)
    _close(y2, y1.astype(np.float64), scale=2)
    _close(gx2, gx1.astype(np.float64), scale=2)
    for a, b_, acc_a, acc_b in zip(g2, g1, acc2, acc1):
        _close(a, b_.astype(np.float64), scale=2)
        _close(acc_a, acc_b.astype(np.float64), scale=2)
        _close(acc_a, 2 * b_.astype(np.float64), scale=2)


@pytest.mark.parametrize("wino", [True, False], ids=["winograd", "im2col"])
def test_functional_batch_split_matches_one_thread(wino, dtype, rng, run_ranges, monkeypatch):
    """ops.conv2d / conv2d_backward split the batch at 2 threads and match one thread."""
    monkeypatch.setattr(econv, "WINOGRAD", wino)
    monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)
    x, wt, b, p = _case_arrays((5, 16, 3, 9, 8, (1, 1)), dtype, rng)
    gy = rng.standard_normal((5, 3, 9, 8)).astype(dtype)
    out = {}
    for t in (1, 2):
        del run_ranges[:]
        with fn.threads(t):
            y = ops.conv2d(x, wt, b, 1, p, activation="relu")
            out[t] = (y,) + ops.conv2d_backward(gy, x, wt, y, 1, p, activation="relu")
        assert run_ranges == [_parallel.split(5, t)] * 2
    for a, b_ in zip(out[2], out[1]):
        _close(a, b_.astype(np.float64), scale=2)


def test_conv_parts_thresholds(monkeypatch):
    """One range at 1 thread, for N = 1 and under the MAC threshold; else one balanced
    range per thread."""
    with fn.threads(1):
        assert _parallel.parts(8, 10 ** 9, 1) == [(0, 8)]
        assert econv.parts(8, 64, 64, (3, 3), 32, 32) == [(0, 8)]
    with fn.threads(2):
        assert _parallel.parts(1, 10 ** 9, 1) == [(0, 1)]
        assert _parallel.parts(8, 99, 100) == [(0, 8)]
        assert _parallel.parts(5, 100, 100) == [(0, 3), (3, 5)]
        assert _parallel.parts(8, 100, 100) == [(0, 4), (4, 8)]
        # conv work is N*O*C*kh*kw*OH*OW multiply-adds against CONV_SPLIT_MIN_MACS
        assert econv.parts(2, 16, 16, (3, 3), 8, 8) == [(0, 2)]            # 295k MACs
        assert econv.parts(4, 64, 64, (3, 3), 16, 16) == [(0, 2), (2, 4)]  # 37.7M MACs
        monkeypatch.setattr(econv, "SPLIT_MIN_MACS", 1)
        assert econv.parts(2, 1, 1, (1, 1), 1, 1) == [(0, 1), (1, 2)]


# -- fastnn._engine.parallel ------------------------------------------------------------------------
def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 16, 17])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 20])
def test_split_covers_range_contiguously_and_balanced(n, k):
    """split(n, k): max(1, min(k, n)) contiguous ranges covering range(n), sizes within 1."""
    ranges = _parallel.split(n, k)
    assert len(ranges) == max(1, min(k, n))
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [hi - lo for lo, hi in ranges]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
    assert sum(sizes) == n


def test_run_returns_results_in_range_order_with_part0_on_caller():
    """run: results in range order, part 0 on the calling thread, the others on workers
    with BLAS limited to one thread while they run."""
    ranges = _parallel.split(7, 3)
    main = threading.get_ident()

    def part(k, lo, hi):
        time.sleep(0.01 * (3 - k))  # finish in reverse order
        return k, lo, hi, threading.get_ident(), _blas_threads() if k == 0 else None

    with fn.threads(2):
        before = _blas_threads()
        results = _parallel.run(part, ranges)
        assert _blas_threads() == before
    assert [r[:3] for r in results] == [(k, lo, hi) for k, (lo, hi) in enumerate(ranges)]
    assert results[0][3] == main and all(r[3] != main for r in results[1:])
    assert all(t == 1 for t in results[0][4])
    assert _parallel.run(lambda k, lo, hi: (k, lo, hi, threading.get_ident()), [(0, 4)]) == \
        [(0, 0, 4, main)]


@pytest.mark.parametrize("failing", [0, 1], ids=["part0", "worker"])
def test_run_reraises_after_all_parts_and_restores_blas(failing):
    """An exception in part 0 (calling thread) or part 1 (a worker) is re-raised after every
    part has finished, and BLAS gets its thread count back."""
    finished = []

    def part(k, lo, hi):
        if k == failing:
            raise ValueError(f"boom in part {k}")
        time.sleep(0.05)
        finished.append(k)
        return k

    with fn.threads(2):
        before = _blas_threads()   # 2 where BLAS follows fastnn's setting: the parts ran it on 1
        with pytest.raises(ValueError, match=f"boom in part {failing}"):
            _parallel.run(part, _parallel.split(6, 3))
        assert sorted(finished) == [k for k in range(3) if k != failing]
        assert _blas_threads() == before
        # the pool still works afterwards
        assert _parallel.run(lambda k, lo, hi: hi - lo, _parallel.split(6, 3)) == [2, 2, 2]


def test_blas_single_thread_restores():
    """BlasSingleThread: BLAS on one thread inside, the previous count after."""
    with fn.threads(2):
        before = _blas_threads()
        with _parallel.BlasSingleThread():
            assert all(t == 1 for t in _blas_threads())
        assert _blas_threads() == before


@pytest.mark.parametrize("c", [3, 16], ids=["im2col", "winograd"])
def test_empty_batch_gives_empty_output_and_zero_gradients(c):
    """N=0 (as torch): empty output and input gradient, zero weight and bias gradients."""
    conv = nn.Conv2d(c, 4, 3, padding=1, seed=0)
    conv.weight.grad[...] = 1.0
    conv.zero_grad()
    y = conv.forward(np.zeros((0, c, 8, 8), np.float32))
    gx = conv.backward(np.zeros(y.shape, np.float32))
    assert y.shape == (0, 4, 8, 8) and gx.shape == (0, c, 8, 8)
    assert not conv.weight.grad.any() and not conv.bias.grad.any()
    gx, gw, gb = ops.conv2d_backward(np.zeros((0, 4, 8, 8)), np.zeros((0, c, 8, 8)),
                                     np.ones((4, c, 3, 3)), padding=1)
    assert gx.shape == (0, c, 8, 8) and not gw.any() and not gb.any()


def test_run_called_from_a_part_runs_serially_instead_of_deadlocking():
    """A part that itself calls run() (its worker would wait on its own pool) gets its
    sub-parts run one after another on its thread."""
    def inner(k, lo, hi):
        return (k, lo, hi, threading.current_thread().name)

    def outer(k, lo, hi):
        return _parallel.run(inner, _parallel.split(4, 2))

    with fn.threads(2):
        res = _parallel.run(outer, _parallel.split(4, 2))
    assert [r[:3] for r in res[1]] == [(0, 0, 2), (1, 2, 4)]
    assert all(r[3] == res[1][0][3] for r in res[1])   # part 1's sub-parts: one thread
    assert res[1][0][3].startswith("fastnn-worker")
