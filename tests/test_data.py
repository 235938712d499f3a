"""fastnn.data: minibatches, train_test_split, one_hot, StandardScaler."""
import numpy as np
import pytest

from fastnn import data


def _dataset(n=103, d=4, dtype=np.float64):
    X = np.arange(n * d, dtype=dtype).reshape(n, d)
    y = np.arange(n) * 10
    return X, y


def _collect(it):
    out = []
    for batch in it:
        if isinstance(batch, tuple):
            out.append(tuple(np.array(b, copy=True) for b in batch))
        else:
            out.append(np.array(batch, copy=True))
    return out


# ---------------------------------------------------------------------------- minibatches

@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 10, 32, 103, 500])
def test_minibatches_cover_every_row_once(shuffle, batch_size, dtype):
    X, y = _dataset(dtype=dtype)
    batches = _collect(data.minibatches(X, y, batch_size=batch_size, shuffle=shuffle, seed=0))
    rows = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert rows.shape == X.shape
    assert rows.dtype == dtype
    # every row exactly once
    np.testing.assert_array_equal(np.sort(rows[:, 0]), X[:, 0])
    # y stays aligned with X
    np.testing.assert_array_equal(labels, (rows[:, 0] / 4).astype(int) * 10)
    # batch sizes
    sizes = [len(b[0]) for b in batches]
    assert all(s == batch_size for s in sizes[:-1])
    assert 0 < sizes[-1] <= batch_size
    assert len(batches) == -(-len(X) // batch_size)
    if not shuffle:
        np.testing.assert_array_equal(rows, X)
        np.testing.assert_array_equal(labels, y)


def test_minibatches_shuffle_changes_order():
    X, y = _dataset()
    rows = np.concatenate([b[0] for b in _collect(data.minibatches(X, y, batch_size=10, seed=0))])
    assert not np.array_equal(rows, X)


def test_minibatches_default_is_shuffled_and_batch_32():
    X, y = _dataset(n=100)
    batches = _collect(data.minibatches(X, y, seed=1))
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
    rows = np.concatenate([b[0] for b in batches])
    assert not np.array_equal(rows, X)


def test_minibatches_drop_last():
    X, y = _dataset(n=103)
    batches = _collect(data.minibatches(X, y, batch_size=10, shuffle=True, seed=0, drop_last=True))
    assert len(batches) == 10
    assert all(len(b[0]) == 10 and len(b[1]) == 10 for b in batches)
    rows = np.concatenate([b[0] for b in batches])
    assert len(np.unique(rows[:, 0])) == 100
    # exact multiple: nothing dropped
    X2, y2 = _dataset(n=100)
    assert len(_collect(data.minibatches(X2, y2, batch_size=10, drop_last=True))) == 10


def test_minibatches_seed_reproducible():
    X, y = _dataset()
    a = _collect(data.minibatches(X, y, batch_size=16, seed=42))
    b = _collect(data.minibatches(X, y, batch_size=16, seed=42))
    c = _collect(data.minibatches(X, y, batch_size=16, seed=43))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_minibatches_without_y():
    X, _ = _dataset(n=20)
    batches = _collect(data.minibatches(X, batch_size=8, shuffle=False))
    assert all(isinstance(b, np.ndarray) for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), X)


def test_minibatches_one_dimensional_y_and_two_dimensional_y():
    X, y = _dataset(n=30)
    Y = np.stack([y, -y], axis=1)
    for xb, yb in _collect(data.minibatches(X, Y, batch_size=7, seed=3)):
        np.testing.assert_array_equal(yb[:, 0], (xb[:, 0] / 4).astype(int) * 10)
        np.testing.assert_array_equal(yb[:, 1], -yb[:, 0])


def test_minibatches_does_not_modify_inputs():
    X, y = _dataset(n=50)
    Xs, ys = X.copy(), y.copy()
    _collect(data.minibatches(X, y, batch_size=7, seed=0))
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)


def test_minibatches_noncontiguous_input():
    X, y = _dataset(n=40)
    Xf = np.asfortranarray(X)
    Xs = X[:, ::2]
    for src, want in ((Xf, X), (Xs, X[:, ::2])):
        rows = np.concatenate(_collect(data.minibatches(src, batch_size=9, shuffle=False)))
        np.testing.assert_array_equal(rows, want)


# ---------------------------------------------------------------------------- train_test_split

@pytest.mark.parametrize("n,test_size", [(100, 0.2), (101, 0.25), (10, 0.5), (50, 0.1)])
def test_train_test_split_sizes_and_partition(n, test_size):
    X, y = _dataset(n=n)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, test_size=test_size, seed=0)
    n_test = len(X_te)
    assert n_test in (int(np.floor(test_size * n)), int(np.ceil(test_size * n)))
    assert len(X_tr) + n_test == n
    assert len(y_tr) == len(X_tr) and len(y_te) == n_test
    both = np.concatenate([X_tr[:, 0], X_te[:, 0]])
    np.testing.assert_array_equal(np.sort(both), X[:, 0])
    np.testing.assert_array_equal(y_tr, (X_tr[:, 0] / 4).astype(int) * 10)
    np.testing.assert_array_equal(y_te, (X_te[:, 0] / 4).astype(int) * 10)


def test_train_test_split_default_size_and_seed():
    X, y = _dataset(n=100)
    a = data.train_test_split(X, y, seed=5)
    b = data.train_test_split(X, y, seed=5)
    c = data.train_test_split(X, y, seed=6)
    assert len(a[1]) == 20
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])
    # shuffled, not just the tail
    assert not np.array_equal(np.sort(a[1][:, 0]), X[80:, 0])


def test_train_test_split_stratify_proportions():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [60, 30, 10])
    rng.shuffle(y)
    X = np.arange(len(y) * 2, dtype=np.float64).reshape(-1, 2)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, test_size=0.2, seed=1, stratify=y)
    counts_te = np.bincount(y_te, minlength=3)
    counts_tr = np.bincount(y_tr, minlength=3)
    np.testing.assert_allclose(counts_te, [12, 6, 2], atol=1)
    np.testing.assert_array_equal(counts_te + counts_tr, [60, 30, 10])
    # X/y alignment survives
    idx_te = (X_te[:, 0] / 2).astype(int)
    np.testing.assert_array_equal(y[idx_te], y_te)


def test_train_test_split_stratify_preserves_rare_class():
    y = np.array([0] * 45 + [1] * 5)
    X = np.arange(50, dtype=np.float64).reshape(-1, 1)
    for seed in range(5):
        _, _, y_tr, y_te = data.train_test_split(X, y, test_size=0.2, seed=seed, stratify=y)
        assert np.sum(y_te == 1) == 1
        assert np.sum(y_tr == 1) == 4


# ---------------------------------------------------------------------------- one_hot

def test_one_hot_values_and_default_dtype():
    labels = np.array([2, 0, 1, 2])
    oh = data.one_hot(labels, 3)
    assert oh.dtype == np.float32
    np.testing.assert_array_equal(oh, np.eye(3)[labels])


def test_one_hot_dtype_and_extra_classes(dtype):
    oh = data.one_hot(np.array([0, 1]), 5, dtype=dtype)
    assert oh.dtype == dtype and oh.shape == (2, 5)
    np.testing.assert_array_equal(oh.sum(axis=1), 1)
    np.testing.assert_array_equal(np.argmax(oh, axis=1), [0, 1])


def test_one_hot_out_of_range():
    with pytest.raises((ValueError, IndexError)):
        data.one_hot(np.array([0, 3]), 3)
    with pytest.raises((ValueError, IndexError)):
        data.one_hot(np.array([-1, 0]), 3)


# ---------------------------------------------------------------------------- StandardScaler

def test_standard_scaler_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((50, 4)) * [1, 10, 0.1, 3] + [5, -2, 0, 100]).astype(dtype)
    sc = data.StandardScaler()
    Z = sc.fit_transform(X)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(sc.mean_, X.astype(np.float64).mean(axis=0), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(sc.scale_, X.astype(np.float64).std(axis=0), rtol=rtol)
    np.testing.assert_allclose(Z, (X - X.mean(0)) / X.std(0), rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1, rtol=1e-4 if dtype == np.float32 else 1e-10)
    back = sc.inverse_transform(Z)
    np.testing.assert_allclose(back, X, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)


def test_standard_scaler_fit_then_transform_new_data():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3)) * 4 + 1
    X2 = rng.standard_normal((7, 3))
    sc = data.StandardScaler()
    ret = sc.fit(X)
    assert ret is sc
    Xs = X.copy()
    np.testing.assert_allclose(sc.transform(X2), (X2 - X.mean(0)) / X.std(0), rtol=1e-12)
    np.testing.assert_array_equal(X, Xs)


def test_standard_scaler_constant_column_is_finite():
    X = np.column_stack([np.full(10, 3.0), np.arange(10.0)])
    Z = data.StandardScaler().fit_transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z[:, 0], 0)


def test_standard_scaler_matches_sklearn():
    sk = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 5)) * 3 - 1
    X[:, 2] = 7.0
    ours = data.StandardScaler().fit(X)
    theirs = sk.StandardScaler().fit(X)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=1e-12)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=1e-10, atol=1e-12)
