"""fastnn.estimators.MLPClassifier / MLPRegressor: scikit-learn compatibility and parity.

scikit-learn is the reference: at equal settings in float64 the fitted weights,
loss curves and stopping decisions must agree with sklearn.neural_network's to
rounding (the same RandomState stream for init, shuffling and the early-stopping
split; the same loss, L2 term, Adam / SGD rules and schedules).
"""
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import scipy.sparse as sp  # noqa: E402
from sklearn import neural_network as skn  # noqa: E402
from sklearn.datasets import load_digits, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as fn  # noqa: E402
from fastnn.estimators import MLPClassifier, MLPRegressor  # noqa: E402
from fastnn.estimators._mlp_engine import Net  # noqa: E402

from conftest import SKLEARN_VERSION, numeric_grad, sklearn_reference  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(160, 8, n_targets=3, noise=0.1, random_state=0)
    return X, y / 100.0


# ---------------------------------------------------------------------------
# scikit-learn's own estimator checks
# ---------------------------------------------------------------------------

@parametrize_with_checks(
    [MLPClassifier(max_iter=100), MLPRegressor(max_iter=100),
     MLPClassifier(solver="lbfgs", max_iter=50), MLPRegressor(solver="lbfgs", max_iter=50)],
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("est", [MLPClassifier(solver="lbfgs"),
                                 MLPRegressor(solver="sgd", tol=1e-2, random_state=42)],
                         ids=["clf-lbfgs", "reg-sgd"])
def test_sample_weight_equivalence(est):
    # the configurations scikit-learn itself runs this check with (the check is new in 1.6)
    check = getattr(estimator_checks, "check_sample_weight_equivalence_on_dense_data", None)
    if check is None:
        pytest.skip(f"scikit-learn {sklearn.__version__} has no check_sample_weight_equivalence_on_dense_data")
    check(type(est).__name__, est)


# ---------------------------------------------------------------------------
# parity with scikit-learn (float64: to rounding)
# ---------------------------------------------------------------------------

BASE = dict(hidden_layer_sizes=(24, 12), random_state=0, max_iter=6)

CLF_CASES = {
    "adam": BASE,
    "adam-l2-tanh": dict(BASE, alpha=1.0, activation="tanh"),
    "adam-logistic-batch7": dict(BASE, activation="logistic", batch_size=7),
    "adam-identity-noshuffle": dict(BASE, activation="identity", shuffle=False),
    "sgd-nesterov-invscaling": dict(BASE, solver="sgd", learning_rate="invscaling",
                                    learning_rate_init=0.1, power_t=0.3),
    "sgd-momentum-adaptive": dict(BASE, solver="sgd", nesterovs_momentum=False,
                                  learning_rate="adaptive", max_iter=25, n_iter_no_change=2,
                                  tol=0.1),
    "sgd-plain": dict(BASE, solver="sgd", momentum=0.0, learning_rate_init=0.2, alpha=0.01),
    "adam-tol-stop": dict(BASE, max_iter=200, tol=0.5, n_iter_no_change=2),
    "early-stopping": dict(BASE, early_stopping=True, max_iter=15, n_iter_no_change=3,
                           validation_fraction=0.2),
    "lbfgs": dict(BASE, solver="lbfgs", max_iter=15),
    "lbfgs-l2-relu1": dict(hidden_layer_sizes=8, random_state=3, solver="lbfgs", max_iter=10,
                           alpha=0.3),
}


def _assert_same_fit(a, b, rtol=1e-9, atol=1e-11):
    assert len(a.coefs_) == len(b.coefs_)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert ca.shape == cb.shape
        np.testing.assert_allclose(cb, ca, rtol=rtol, atol=atol)
    assert b.n_iter_ == a.n_iter_
    np.testing.assert_allclose(b.loss_, a.loss_, rtol=1e-9)
    for attr in ("loss_curve_", "validation_scores_"):
        va, vb = getattr(a, attr, None), getattr(b, attr, None)
        if va is None:
            assert vb is None
        else:
            np.testing.assert_allclose(vb, va, rtol=1e-9)
    for attr in ("best_loss_", "t_", "n_layers_", "n_outputs_", "out_activation_",
                 "n_features_in_", "best_validation_score_"):
        assert getattr(b, attr, None) == pytest.approx(getattr(a, attr, None), rel=1e-9) \
            if isinstance(getattr(a, attr, None), float) else getattr(b, attr, None) == getattr(a, attr, None)


@pytest.mark.parametrize("case", sorted(CLF_CASES))
def test_classifier_matches_sklearn(case, digits):
    X, y = digits
    kw = CLF_CASES[case]
    a = skn.MLPClassifier(**kw).fit(X, y)
    b = MLPClassifier(**kw).fit(X, y)
    _assert_same_fit(a, b)
    np.testing.assert_array_equal(b.classes_, a.classes_)
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(b.predict(X), a.predict(X))
    assert b.score(X, y) == a.score(X, y)


@pytest.mark.parametrize("target", ["binary", "binary-strings", "multilabel"])
def test_binary_and_multilabel_match_sklearn(target, digits):
    X, y = digits
    if target == "binary":
        t = (y > 4).astype(int)
    elif target == "binary-strings":
        t = np.where(y % 2 == 0, "even", "odd")
    else:
        t = np.stack([y > 4, y % 2 == 0, y == 3], axis=1).astype(int)
    a = skn.MLPClassifier(**BASE).fit(X, t)
    b = MLPClassifier(**BASE).fit(X, t)
    _assert_same_fit(a, b)
    assert b.out_activation_ == "logistic"
    assert b.coefs_[-1].shape[1] == (1 if target != "multilabel" else 3)
    proba = b.predict_proba(X)
    np.testing.assert_allclose(proba, a.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(b.predict(X), a.predict(X))
    if target != "multilabel":
        assert proba.shape == (len(X), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(b.predict_log_proba(X), np.log(proba))


@sklearn_reference
@pytest.mark.parametrize("kw", [
    BASE, dict(BASE, solver="sgd", learning_rate_init=0.01), dict(BASE, solver="lbfgs", alpha=0.5),
    dict(BASE, loss="poisson"), dict(BASE, early_stopping=True, max_iter=12),
], ids=["adam", "sgd", "lbfgs", "poisson", "early-stopping"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor_matches_sklearn(kw, n_targets, regression):
    X, y = regression
    y = y[:, 0] if n_targets == 1 else y
    if kw.get("loss") == "poisson":
        y = np.abs(y)
    a = skn.MLPRegressor(**kw).fit(X, y)
    b = MLPRegressor(**kw).fit(X, y)
    _assert_same_fit(a, b)
    pa, pb = a.predict(X), b.predict(X)
    assert pb.shape == pa.shape == ((len(X),) if n_targets == 1 else (len(X), 3))
    np.testing.assert_allclose(pb, pa, rtol=1e-8, atol=1e-12)


@sklearn_reference
def test_sample_weight_matches_sklearn(digits, regression):
    X, y = digits
    sw = np.random.default_rng(0).uniform(0.0, 2.0, len(y))
    a = skn.MLPClassifier(**BASE).fit(X, y, sample_weight=sw)
    b = MLPClassifier(**BASE).fit(X, y, sample_weight=sw)
    _assert_same_fit(a, b)
    Xr, yr = regression
    swr = np.random.default_rng(1).uniform(0.0, 2.0, len(yr))
    a = skn.MLPRegressor(**BASE).fit(Xr, yr, sample_weight=swr)
    b = MLPRegressor(**BASE).fit(Xr, yr, sample_weight=swr)
    _assert_same_fit(a, b)


@sklearn_reference
def test_partial_fit_and_warm_start_match_sklearn(digits):
    X, y = digits
    classes = np.unique(y)
    kw = dict(hidden_layer_sizes=(16,), random_state=1, solver="sgd", learning_rate_init=0.05)
    a, b = skn.MLPClassifier(**kw), MLPClassifier(**kw)
    for k in range(3):
        sl = slice(300 * k, 300 * (k + 1))
        a.partial_fit(X[sl], y[sl], classes=classes)
        b.partial_fit(X[sl], y[sl], classes=classes)
    _assert_same_fit(a, b)
    kw = dict(BASE, warm_start=True, max_iter=3)
    a, b = skn.MLPClassifier(**kw), MLPClassifier(**kw)
    for _ in range(2):
        a.fit(X, y)
        b.fit(X, y)
    _assert_same_fit(a, b)


@sklearn_reference
def test_warm_start_early_stopping_matches_sklearn(digits):
    X, y = digits
    kw = dict(BASE, warm_start=True, early_stopping=True, max_iter=4, n_iter_no_change=2)
    a, b = skn.MLPClassifier(**kw), MLPClassifier(**kw)
    for k in range(3):
        a.set_params(learning_rate_init=0.001 * (k + 1))
        b.set_params(learning_rate_init=0.001 * (k + 1))
        a.fit(X, y)
        b.fit(X, y)
        _assert_same_fit(a, b)


def test_partial_fit_rules():
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 3
    clf = MLPClassifier(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, np.full(20, 7))
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y.astype(float))


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------

def test_float32_stays_float32_and_tracks_sklearn(digits):
    X, y = digits
    X32 = X.astype(np.float32)
    a = skn.MLPClassifier(**BASE).fit(X32, y)
    b = MLPClassifier(**BASE).fit(X32, y)
    for c in b.coefs_ + b.intercepts_:
        assert c.dtype == np.float32
    assert b.predict_proba(X32).dtype == np.float32
    assert b.predict_proba(X).dtype == np.float32      # a float64 X is cast to the model dtype
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(cb, ca, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-4)
    r = MLPRegressor(**BASE).fit(X32, y.astype(np.float32))
    assert r.predict(X32).dtype == np.float32


def test_digits_protocol_accuracy_matches_sklearn():
    """The core issue's digits protocol (64-128-10, Adam 1e-3, batch 32), shortened to
    15 epochs: mean test accuracy over seeds within sklearn's own seed-to-seed spread."""
    from fastnn._zoo import load_digits_split
    Xtr, Xte, ytr, yte = load_digits_split()
    kw = dict(hidden_layer_sizes=(128,), alpha=0.0, batch_size=32, max_iter=15, tol=0.0,
              n_iter_no_change=10 ** 9)
    acc_sk, acc_fn = [], []
    for s in (0, 1, 2):
        acc_sk.append(skn.MLPClassifier(random_state=s, **kw).fit(Xtr, ytr).score(Xte, yte))
        acc_fn.append(MLPClassifier(random_state=s, **kw).fit(Xtr, ytr).score(Xte, yte))
    spread = max(np.ptp(acc_sk), 2.0 / len(yte))
    assert abs(np.mean(acc_fn) - np.mean(acc_sk)) <= spread
    assert min(acc_fn) > 0.9


# ---------------------------------------------------------------------------
# the engine: float64 finite-difference gradient of the packed loss
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("out_kind", ["softmax", "logistic", "identity", "exp"])
@pytest.mark.parametrize("activation", ["identity", "relu", "logistic", "tanh"])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_finite_differences(out_kind, activation, weighted):
    rng = np.random.default_rng(5)
    n, units = 9, (4, 5, 3, 3)
    net = Net(units, activation, out_kind, np.float64)
    net.theta[...] = rng.uniform(-0.8, 0.8, net.size)
    X = rng.standard_normal((n, units[0]))
    if out_kind == "softmax":
        target = rng.integers(0, 3, n).astype(np.intp)
    elif out_kind == "logistic":
        target = np.where(rng.random((n, 3)) < 0.5, 1.0, -1.0)
    else:
        target = rng.uniform(0.1, 2.0, (n, 3))
    sw = rng.uniform(0.2, 2.0, n) if weighted else None
    sw_sum = n if sw is None else sw.sum()
    alpha = 0.7
    net.loss_grad(X, target, sw, sw_sum, alpha, 1.0, 1)
    analytic = net.grad.copy()

    def f():
        loss = net.loss_grad(X, target, sw, sw_sum, alpha, 1.0, 1)
        if out_kind == "identity":
            # scikit-learn reports 0.5 * mean over samples AND outputs of the squared
            # error but steps along the gradient of 0.5 * sum over outputs (its
            # delta is (pred - y) / n); fastnn keeps both for parity, so the
            # gradient is that of loss + (n_outputs - 1) * data_loss
            l2 = 0.5 * alpha * sum(float(np.sum(w * w)) for w in net.W) / sw_sum
            loss = l2 + units[-1] * (loss - l2)
        return loss
    num = numeric_grad(f, net.theta)
    np.testing.assert_allclose(analytic, num, rtol=1e-6, atol=1e-8)
    # the scale argument (used for SGD's learning rate) scales the gradient only
    loss1 = net.loss_grad(X, target, sw, sw_sum, alpha, 1.0, 1)
    loss2 = net.loss_grad(X, target, sw, sw_sum, alpha, 0.25, 1)
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    np.testing.assert_allclose(net.grad, 0.25 * analytic, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# input handling and hyperparameters
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("param, value", [
    ("hidden_layer_sizes", (10, 0)), ("hidden_layer_sizes", "abc"), ("activation", "softmax"),
    ("solver", "newton"), ("alpha", -1.0), ("batch_size", 0), ("batch_size", "big"),
    ("learning_rate", "cyclic"), ("learning_rate_init", 0.0), ("power_t", -0.5),
    ("max_iter", 0), ("max_iter", 2.5), ("shuffle", "yes"), ("tol", -1e-3), ("momentum", 1.5),
    ("validation_fraction", 1.0), ("beta_1", 1.0), ("beta_2", -0.1), ("epsilon", 0.0),
    ("n_iter_no_change", 0), ("max_fun", 0), ("alpha", float("nan")),
])
def test_bad_hyperparameters_raise(param, value):
    X = np.random.default_rng(0).standard_normal((12, 3))
    y = np.arange(12) % 2
    with pytest.raises(ValueError, match=param):
        MLPClassifier(**{param: value}).fit(X, y)


def test_regressor_bad_loss_and_poisson_targets():
    X = np.random.default_rng(0).standard_normal((12, 3))
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="huber").fit(X, np.ones(12))
    with pytest.raises(ValueError, match="non-negative"):
        MLPRegressor(loss="poisson").fit(X, -np.ones(12))


def test_bad_input_raises_and_keeps_parameters():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = np.arange(30) % 3
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    before = [c.copy() for c in clf.coefs_ + clf.intercepts_]
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.partial_fit(Xnan, y)
    with pytest.raises(ValueError, match="4 features"):
        clf.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="4 features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError):
        clf.partial_fit(X, y[:10])
    with pytest.raises(ValueError, match="sample_weight"):
        clf.partial_fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-zero"):
        clf.partial_fit(X, y, sample_weight=np.zeros(30))
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, warm_start=True).fit(X, y * 1.0)
    reg_before = [c.copy() for c in reg.coefs_]
    with pytest.raises(ValueError, match="layer sizes"):
        reg.partial_fit(X, np.stack([y, y], axis=1) * 1.0)
    with pytest.raises(ValueError, match="layer sizes"):
        reg.set_params(hidden_layer_sizes=(6,)).fit(X, y * 1.0)
    assert reg.n_outputs_ == 1
    for c, b in zip(reg.coefs_, reg_before):
        np.testing.assert_array_equal(c, b)
    for c, b in zip(clf.coefs_ + clf.intercepts_, before):
        np.testing.assert_array_equal(c, b)
    with pytest.raises(ValueError, match="requires y"):
        MLPClassifier().fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, rng.standard_normal(30))
    with pytest.raises(ValueError, match="0 sample"):
        MLPRegressor().fit(np.empty((0, 4)), np.empty(0))


def test_noncontiguous_and_sparse_input(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(10,), max_iter=3, random_state=0)
    ref = MLPClassifier(**kw).fit(X, y)
    Xf = np.asfortranarray(X)
    Xs = np.ascontiguousarray(np.repeat(X, 2, axis=1))[:, ::2]
    for Xv in (Xf, Xs, sp.csr_matrix(X), sp.csc_matrix(X)):
        m = MLPClassifier(**kw).fit(Xv, y)
        for c, r in zip(m.coefs_, ref.coefs_):
            np.testing.assert_allclose(c, r, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(m.predict_proba(Xv), ref.predict_proba(X), rtol=1e-12)


def test_pickle_and_assigned_coefs(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=3, random_state=0).fit(X, y)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
    # weights set by the user are what predict and further training use
    clone.coefs_ = [np.zeros_like(c) for c in clone.coefs_]
    clone.intercepts_ = [np.zeros_like(b) for b in clone.intercepts_]
    np.testing.assert_allclose(clone.predict_proba(X), 0.1)
    ref = skn.MLPClassifier(hidden_layer_sizes=(10,), max_iter=3, random_state=0).fit(X, y)
    ref.coefs_ = [np.zeros_like(c) for c in ref.coefs_]
    ref.intercepts_ = [np.zeros_like(b) for b in ref.intercepts_]
    clone.partial_fit(X, y)
    ref.partial_fit(X, y)
    for c, r in zip(clone.coefs_, ref.coefs_):
        np.testing.assert_allclose(c, r, rtol=1e-9, atol=1e-12)


@sklearn_reference
def test_get_set_params_and_verbose(capsys):
    clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, verbose=True, random_state=0)
    p = clf.get_params()
    assert p["hidden_layer_sizes"] == (3,) and p["solver"] == "adam" and p["max_fun"] == 15000
    assert set(p) == set(skn.MLPClassifier().get_params())
    assert set(MLPRegressor().get_params()) == set(skn.MLPRegressor().get_params())
    for cls in (MLPClassifier, MLPRegressor):
        assert "Parameters" in cls.__doc__ and "hidden_layer_sizes" in cls.__doc__
    clf.set_params(solver="sgd", learning_rate_init=0.01)
    assert clf.solver == "sgd"
    X = np.random.default_rng(0).standard_normal((20, 2))
    clf.fit(X, np.arange(20) % 2)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


def test_threads_do_not_change_results(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    with fn.threads(1):
        a = MLPClassifier(**kw).fit(X, y)
    with fn.threads(2):
        b = MLPClassifier(**kw).fit(X, y)
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(cb, ca, rtol=1e-10, atol=1e-12)
