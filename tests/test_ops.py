"""fastnn.ops dense/activation/loss/gather kernels against NumPy references.

Every kernel: both dtypes, 1 and 2 threads, out=, non-contiguous / Fortran-order /
read-only inputs (same result, never modified), and thread-count independence on
sizes large enough to run in parallel.
"""
import numpy as np
import pytest

import fastnn as fn
from fastnn import ops

ACTIVATIONS = [None, "identity", "relu", "leaky_relu", "sigmoid", "tanh"]

N, IN, OUT = 17, 13, 7


def _linear_inputs(rng, dtype, n=N, in_f=IN, out_f=OUT):
    x = rng.standard_normal((n, in_f)).astype(dtype)
    w = (rng.standard_normal((out_f, in_f)) / np.sqrt(in_f)).astype(dtype)
    b = rng.standard_normal(out_f).astype(dtype)
    return x, w, b


# ---------------------------------------------------------------------------- linear

@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_forward_matches_numpy(rng, dtype, n_threads, activation, ref, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    y = ops.linear(x, w, b, activation=activation)
    assert y.shape == (N, OUT)
    assert y.dtype == dtype
    assert_close(y, ref.linear_forward(x, w, b, activation), scale=4)


@pytest.mark.parametrize("activation", ["relu", "tanh", None])
def test_linear_forward_without_bias(rng, dtype, activation, ref, assert_close):
    x, w, _ = _linear_inputs(rng, dtype)
    y = ops.linear(x, w, None, activation=activation)
    assert_close(y, ref.linear_forward(x, w, None, activation), scale=4)


def test_linear_leaky_relu_negative_slope(rng, dtype, ref, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    y = ops.linear(x, w, b, activation="leaky_relu", negative_slope=0.2)
    assert_close(y, ref.linear_forward(x, w, b, "leaky_relu", 0.2), scale=4)
    # the slope really is used
    y_default = ops.linear(x, w, b, activation="leaky_relu")
    assert not np.allclose(y, y_default)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_out_argument(rng, dtype, activation, ref, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    out = np.full((N, OUT), np.nan, dtype=dtype)
    y = ops.linear(x, w, b, activation=activation, out=out)
    assert y is out
    assert_close(out, ref.linear_forward(x, w, b, activation), scale=4)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_backward_matches_numpy(rng, dtype, n_threads, activation, ref, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    y = ref.linear_forward(x, w, b, activation).astype(dtype)
    gy = rng.standard_normal((N, OUT)).astype(dtype)
    gx, gw, gb = ops.linear_backward(gy, x, w, y, activation=activation)
    rgx, rgw, rgb = ref.linear_backward(gy, x, w, y, activation)
    assert gx.shape == x.shape and gw.shape == w.shape and gb.shape == b.shape
    assert gx.dtype == gw.dtype == gb.dtype == dtype
    assert_close(gx, rgx, scale=4)
    assert_close(gw, rgw, scale=4)
    assert_close(gb, rgb, scale=4)


def test_linear_backward_leaky_slope(rng, dtype, ref, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    y = ref.linear_forward(x, w, b, "leaky_relu", 0.3).astype(dtype)
    gy = rng.standard_normal((N, OUT)).astype(dtype)
    got = ops.linear_backward(gy, x, w, y, activation="leaky_relu", negative_slope=0.3)
    want = ref.linear_backward(gy, x, w, y, "leaky_relu", 0.3)
    for g, r in zip(got, want):
        assert_close(g, r, scale=4)


def test_linear_backward_does_not_modify_inputs(rng, dtype):
    x, w, b = _linear_inputs(rng, dtype)
    y = np.tanh(x @ w.T + b).astype(dtype)
    gy = rng.standard_normal((N, OUT)).astype(dtype)
    copies = [a.copy() for a in (gy, x, w, y)]
    ops.linear_backward(gy, x, w, y, activation="tanh")
    for a, c in zip((gy, x, w, y), copies):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------- activations

@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(5,), (6, 7), (2, 3, 4)])
def test_activation_forward_matches_numpy(rng, dtype, n_threads, activation, shape, ref, assert_close):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = ops.activation_forward(x, activation)
    assert y.shape == shape and y.dtype == dtype
    assert_close(y, ref.act_forward(x, activation))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(5,), (6, 7), (2, 3, 4)])
def test_activation_backward_matches_numpy(rng, dtype, n_threads, activation, shape, ref, assert_close):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = ref.act_forward(x, activation).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    g = ops.activation_backward(gy, y, activation)
    assert g.shape == shape and g.dtype == dtype
    assert_close(g, ref.act_backward(gy, y, activation))


def test_activation_out_argument(rng, dtype, ref, assert_close):
    x = rng.standard_normal((8, 9)).astype(dtype)
    out = np.empty_like(x)
    y = ops.activation_forward(x, "sigmoid", out=out)
    assert y is out
    assert_close(out, ref.act_forward(x, "sigmoid"))
    gy = rng.standard_normal((8, 9)).astype(dtype)
    out2 = np.empty_like(x)
    g = ops.activation_backward(gy, out, "sigmoid", out=out2)
    assert g is out2
    assert_close(out2, ref.act_backward(gy, out, "sigmoid"))


def test_activation_leaky_slope(rng, dtype, ref, assert_close):
    x = rng.standard_normal((40,)).astype(dtype)
    y = ops.activation_forward(x, "leaky_relu", negative_slope=0.25)
    assert_close(y, ref.act_forward(x, "leaky_relu", 0.25))
    gy = np.ones_like(x)
    g = ops.activation_backward(gy, y, "leaky_relu", negative_slope=0.25)
    assert_close(g, np.where(x > 0, 1.0, 0.25))


def test_sigmoid_tanh_saturate_without_nan(dtype):
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype=dtype)
    s = ops.activation_forward(x, "sigmoid")
    t = ops.activation_forward(x, "tanh")
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(t))
    np.testing.assert_allclose(s[[0, -1]], [0.0, 1.0], atol=1e-30)
    assert s[3] == 0.5
    np.testing.assert_array_equal(t[[0, -1]], [-1.0, 1.0])


# ---------------------------------------------------------------------------- losses

@pytest.mark.parametrize("n,c", [(1, 2), (9, 5), (64, 10)])
def test_softmax_cross_entropy_int_targets(rng, dtype, n_threads, n, c, ref, assert_close):
    logits = (2 * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(0, c, size=n)
    loss, grad = ops.softmax_cross_entropy(logits, target)
    rloss, rgrad = ref.softmax_ce(logits, target)
    assert isinstance(loss, float)
    assert grad.shape == (n, c) and grad.dtype == dtype
    assert_close(loss, rloss, dtype=dtype, scale=2)
    assert_close(grad, rgrad, scale=2)


@pytest.mark.parametrize("int_dtype", [np.int64, np.int32, np.intp])
def test_softmax_cross_entropy_int_label_dtypes(rng, int_dtype, ref, assert_close):
    logits = rng.standard_normal((6, 4))
    target = np.array([0, 1, 2, 3, 0, 1], dtype=int_dtype)
    loss, grad = ops.softmax_cross_entropy(logits, target)
    rloss, rgrad = ref.softmax_ce(logits, target)
    assert_close(loss, rloss, dtype=np.float64)
    assert_close(grad, rgrad)


def test_softmax_cross_entropy_prob_targets(rng, dtype, n_threads, ref, assert_close):
    n, c = 11, 6
    logits = (2 * rng.standard_normal((n, c))).astype(dtype)
    t = rng.random((n, c))
    t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    loss, grad = ops.softmax_cross_entropy(logits, t)
    rloss, rgrad = ref.softmax_ce(logits, t)
    assert_close(loss, rloss, dtype=dtype, scale=2)
    assert_close(grad, rgrad, scale=2)


def test_softmax_cross_entropy_one_hot_equals_int(rng, dtype, assert_close):
    n, c = 10, 4
    logits = rng.standard_normal((n, c)).astype(dtype)
    labels = rng.integers(0, c, size=n)
    t = np.eye(c, dtype=dtype)[labels]
    l1, g1 = ops.softmax_cross_entropy(logits, labels)
    l2, g2 = ops.softmax_cross_entropy(logits, t)
    assert_close(l1, l2, dtype=dtype)
    assert_close(g1, g2)


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e6])
def test_softmax_cross_entropy_huge_logits_finite(rng, dtype, scale, ref, assert_close):
    n, c = 8, 5
    logits = (scale * rng.standard_normal((n, c))).astype(dtype)
    target = rng.integers(0, c, size=n)
    loss, grad = ops.softmax_cross_entropy(logits, target)
    assert np.isfinite(loss)
    assert np.all(np.isfinite(grad))
    rloss, rgrad = ref.softmax_ce(logits, target)
    # the loss is itself ~scale large: relative tolerance
    np.testing.assert_allclose(loss, rloss, rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert_close(grad, rgrad)
    # all-equal huge logits: exactly uniform softmax
    same = np.full((2, c), 1e4, dtype=dtype)
    loss, grad = ops.softmax_cross_entropy(same, np.array([0, 3]))
    assert_close(loss, np.log(c), dtype=dtype)


def test_softmax_cross_entropy_huge_logits_prob_targets(rng, dtype, ref, assert_close):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]], dtype=dtype)
    t = np.array([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0]], dtype=dtype)
    loss, grad = ops.softmax_cross_entropy(logits, t)
    rloss, rgrad = ref.softmax_ce(logits, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, rloss, rtol=1e-6)
    assert_close(grad, rgrad)


def test_softmax_cross_entropy_out(rng, dtype, ref, assert_close):
    logits = rng.standard_normal((5, 3)).astype(dtype)
    target = np.array([0, 1, 2, 1, 0])
    out = np.full((5, 3), np.nan, dtype=dtype)
    loss, grad = ops.softmax_cross_entropy(logits, target, out=out)
    assert grad is out
    assert_close(out, ref.softmax_ce(logits, target)[1])


@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 3, 2)])
def test_mse_loss_matches_numpy(rng, dtype, n_threads, shape, ref, assert_close):
    pred = rng.standard_normal(shape).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    loss, grad = ops.mse_loss(pred, target)
    rloss, rgrad = ref.mse(pred, target)
    assert isinstance(loss, float)
    assert grad.shape == shape and grad.dtype == dtype
    assert_close(loss, rloss, dtype=dtype, scale=2)
    assert_close(grad, rgrad)


def test_mse_loss_out(rng, dtype, ref, assert_close):
    pred = rng.standard_normal((6, 2)).astype(dtype)
    target = rng.standard_normal((6, 2)).astype(dtype)
    out = np.empty_like(pred)
    loss, grad = ops.mse_loss(pred, target, out=out)
    assert grad is out
    assert_close(out, ref.mse(pred, target)[1])


# ---------------------------------------------------------------------------- gather_rows

@pytest.mark.parametrize("int_dtype", [np.int64, np.int32])
def test_gather_rows_matches_fancy_indexing(rng, dtype, n_threads, int_dtype):
    X = rng.standard_normal((50, 7)).astype(dtype)
    idx = rng.permutation(50)[:23].astype(int_dtype)
    got = ops.gather_rows(X, idx)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, X[idx])
    out = np.empty((23, 7), dtype=dtype)
    assert ops.gather_rows(X, idx, out=out) is out
    np.testing.assert_array_equal(out, X[idx])


def test_gather_rows_repeated_and_empty(rng, dtype):
    X = rng.standard_normal((5, 3)).astype(dtype)
    idx = np.array([4, 4, 0, 2, 4])
    np.testing.assert_array_equal(ops.gather_rows(X, idx), X[idx])
    empty = ops.gather_rows(X, np.array([], dtype=np.int64))
    assert empty.shape == (0, 3)


def test_gather_rows_large_parallel_equal(rng):
    X = rng.standard_normal((20000, 33))
    idx = rng.permutation(20000)
    with fn.threads(1):
        a = ops.gather_rows(X, idx)
    with fn.threads(2):
        b = ops.gather_rows(X, idx)
    np.testing.assert_array_equal(a, X[idx])
    np.testing.assert_array_equal(b, X[idx])


# ---------------------------------------------------------------------------- layouts

def _variants(a):
    """Non-contiguous, Fortran-ordered and read-only versions of a 2-D array."""
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), dtype=a.dtype)
    big[::2, ::3] = a
    strided = big[::2, ::3]
    assert not strided.flags.c_contiguous
    fortran = np.asfortranarray(a)
    readonly = a.copy()
    readonly.setflags(write=False)
    ro_strided = big.copy()[::2, ::3]
    ro_strided.setflags(write=False)
    return {"strided": strided, "fortran": fortran, "readonly": readonly,
            "readonly_strided": ro_strided}


LAYOUTS = ["strided", "fortran", "readonly", "readonly_strided"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_linear_layouts(rng, dtype, layout, activation, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    want = ops.linear(x, w, b, activation=activation)
    xv, wv = _variants(x)[layout], _variants(w)[layout]
    bv = b.copy()
    if layout.startswith("readonly"):
        bv.setflags(write=False)
    else:
        bb = np.zeros(2 * OUT, dtype)
        bb[::2] = b
        bv = bb[::2]
    snapshots = [a.copy() for a in (xv, wv, bv)]
    got = ops.linear(xv, wv, bv, activation=activation)
    assert_close(got, want, scale=4)
    for a, s in zip((xv, wv, bv), snapshots):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_backward_layouts(rng, dtype, layout, ref, assert_close):
    x, w, b = _linear_inputs(rng, dtype)
    y = ref.linear_forward(x, w, b, "tanh").astype(dtype)
    gy = rng.standard_normal((N, OUT)).astype(dtype)
    want = ops.linear_backward(gy, x, w, y, activation="tanh")
    args = [_variants(a)[layout] for a in (gy, x, w, y)]
    snapshots = [a.copy() for a in args]
    got = ops.linear_backward(*args, activation="tanh")
    for g, r in zip(got, want):
        assert_close(g, r, scale=4)
    for a, s in zip(args, snapshots):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_activation_layouts(rng, dtype, layout, assert_close):
    x = rng.standard_normal((9, 6)).astype(dtype)
    gy = rng.standard_normal((9, 6)).astype(dtype)
    want_y = ops.activation_forward(x, "tanh")
    want_g = ops.activation_backward(gy, want_y, "tanh")
    xv = _variants(x)[layout]
    gv = _variants(gy)[layout]
    yv = _variants(want_y)[layout]
    snaps = [a.copy() for a in (xv, gv, yv)]
    got_y = ops.activation_forward(xv, "tanh")
    got_g = ops.activation_backward(gv, yv, "tanh")
    assert_close(got_y, want_y)
    assert_close(got_g, want_g)
    assert got_y.shape == x.shape
    for a, s in zip((xv, gv, yv), snaps):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_ce_and_mse_layouts(rng, dtype, layout, assert_close):
    logits = rng.standard_normal((12, 5)).astype(dtype)
    probs = rng.random((12, 5))
    probs = (probs / probs.sum(1, keepdims=True)).astype(dtype)
    labels = rng.integers(0, 5, 12)
    want_int = ops.softmax_cross_entropy(logits, labels)
    want_prob = ops.softmax_cross_entropy(logits, probs)
    target = rng.standard_normal((12, 5)).astype(dtype)
    want_mse = ops.mse_loss(logits, target)

    lv, pv, tv = (_variants(a)[layout] for a in (logits, probs, target))
    labels_v = np.zeros(24, labels.dtype)
    labels_v[::2] = labels
    labels_v = labels_v[::2]
    labels_v.setflags(write=False)
    snaps = [a.copy() for a in (lv, pv, tv, labels_v)]
    for got, want in [
        (ops.softmax_cross_entropy(lv, labels_v), want_int),
        (ops.softmax_cross_entropy(lv, pv), want_prob),
        (ops.mse_loss(lv, tv), want_mse),
    ]:
        assert_close(got[0], want[0], dtype=dtype)
        assert_close(got[1], want[1])
    for a, s in zip((lv, pv, tv, labels_v), snaps):
        np.testing.assert_array_equal(a, s)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gather_rows_layouts(rng, dtype, layout):
    X = rng.standard_normal((30, 4)).astype(dtype)
    idx = rng.permutation(30)[:10]
    Xv = _variants(X)[layout]
    snap = Xv.copy()
    ro_idx = idx.copy()
    ro_idx.setflags(write=False)
    np.testing.assert_array_equal(ops.gather_rows(Xv, ro_idx), X[idx])
    np.testing.assert_array_equal(Xv, snap)


def test_inputs_never_modified(rng, dtype):
    x, w, b = _linear_inputs(rng, dtype)
    snaps = [a.copy() for a in (x, w, b)]
    y = ops.linear(x, w, b, activation="relu")
    for a, s in zip((x, w, b), snaps):
        np.testing.assert_array_equal(a, s)
    gy = np.ones_like(y)
    ys = y.copy()
    ops.activation_backward(gy, y, "relu")
    np.testing.assert_array_equal(y, ys)
    np.testing.assert_array_equal(gy, np.ones_like(y))
    logits = rng.standard_normal((4, 3)).astype(dtype)
    ls = logits.copy()
    ops.softmax_cross_entropy(logits, np.array([0, 1, 2, 0]))
    np.testing.assert_array_equal(logits, ls)
    t = rng.standard_normal((4, 3)).astype(dtype)
    ts = t.copy()
    ops.mse_loss(logits, t)
    np.testing.assert_array_equal(logits, ls)
    np.testing.assert_array_equal(t, ts)


# ---------------------------------------------------------------------------- threads

@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", None])
def test_linear_large_same_at_1_and_2_threads(dtype, activation, assert_close):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 1024)).astype(dtype)
    w = (rng.standard_normal((512, 1024)) / 32).astype(dtype)
    b = rng.standard_normal(512).astype(dtype)
    gy = rng.standard_normal((64, 512)).astype(dtype)
    res = {}
    for n in (1, 2):
        with fn.threads(n):
            y = ops.linear(x, w, b, activation=activation)
            res[n] = (y,) + tuple(ops.linear_backward(gy, x, w, y, activation=activation))
    for a, b_ in zip(res[1], res[2]):
        assert_close(a, b_, scale=20)


def test_elementwise_large_same_at_1_and_2_threads(dtype, assert_close):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((600, 1000)).astype(dtype)
    gy = rng.standard_normal((600, 1000)).astype(dtype)
    labels = rng.integers(0, 1000, 600)
    res = {}
    for n in (1, 2):
        with fn.threads(n):
            outs = []
            for act in ("relu", "leaky_relu", "sigmoid", "tanh"):
                y = ops.activation_forward(x, act)
                outs.append(y)
                outs.append(ops.activation_backward(gy, y, act))
            outs.extend(ops.softmax_cross_entropy(x, labels))
            outs.extend(ops.mse_loss(x, gy))
            res[n] = outs
    for a, b in zip(res[1], res[2]):
        assert_close(a, b, dtype=dtype, scale=10)
