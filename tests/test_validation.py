"""Bad input: every public entry point raises ValueError or TypeError (as the spec pins
it), leaves state unchanged, and fit() turns a non-finite loss into FloatingPointError."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import data, losses, nn, ops, optim, train

BAD = (ValueError, TypeError)


def _snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _assert_unchanged(model, snap):
    now = model.state_dict()
    assert set(now) == set(snap)
    for k, v in snap.items():
        np.testing.assert_array_equal(now[k], v, err_msg=k)


# ---------------------------------------------------------------------------- ops

def test_ops_dtype_mismatch_is_type_error():
    x32 = np.ones((3, 4), np.float32)
    w64 = np.ones((2, 4), np.float64)
    with pytest.raises(TypeError):
        ops.linear(x32, w64)
    with pytest.raises(TypeError):
        ops.linear(x32, w64.astype(np.float32), np.ones(2, np.float64))
    with pytest.raises(TypeError):
        ops.activation_backward(np.ones(3, np.float32), np.ones(3, np.float64), "relu")
    with pytest.raises(TypeError):
        ops.mse_loss(np.ones(3, np.float32), np.ones(3, np.float64))
    with pytest.raises(TypeError):
        ops.softmax_cross_entropy(np.ones((2, 3), np.float32), np.full((2, 3), 1 / 3, np.float64))
    with pytest.raises(TypeError):
        ops.linear_backward(np.ones((3, 2), np.float64), x32, np.ones((2, 4), np.float32),
                            np.ones((3, 2), np.float32))


def test_ops_non_float_input_rejected():
    with pytest.raises(TypeError):
        ops.linear(np.ones((3, 4), np.int64), np.ones((2, 4), np.int64))
    with pytest.raises(TypeError):
        ops.activation_forward(np.ones(3, np.float16), "relu")


def test_ops_shape_mismatch_is_value_error():
    with pytest.raises(ValueError):
        ops.linear(np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError):
        ops.linear(np.ones((3, 4)), np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError):
        ops.linear(np.ones(4), np.ones((2, 4)))
    with pytest.raises(ValueError):
        ops.mse_loss(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        ops.activation_backward(np.ones((3, 2)), np.ones((3, 3)), "tanh")
    with pytest.raises(ValueError):
        ops.softmax_cross_entropy(np.ones((3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError):
        ops.softmax_cross_entropy(np.ones((3, 4)), np.full((3, 3), 1 / 3))
    with pytest.raises(ValueError):
        ops.linear_backward(np.ones((3, 3)), np.ones((3, 4)), np.ones((2, 4)), np.ones((3, 2)))


def test_ops_unknown_activation():
    with pytest.raises(ValueError):
        ops.linear(np.ones((3, 4)), np.ones((2, 4)), activation="gelu_typo")
    with pytest.raises(ValueError):
        ops.activation_forward(np.ones(3), "softplus_typo")


@pytest.mark.parametrize("labels", [
    np.array([0, 1, 4]),        # == C
    np.array([0, -1, 2]),       # negative
    np.array([0.0, 1.5, 2.0]),  # fractional float labels
])
def test_softmax_cross_entropy_bad_labels(labels):
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError):
        ops.softmax_cross_entropy(logits, labels)
    with pytest.raises(ValueError):
        losses.CrossEntropyLoss()(logits, labels)


def test_bad_out_arguments():
    x = np.ones((3, 4))
    w = np.ones((2, 4))
    with pytest.raises(BAD):
        ops.linear(x, w, out=np.empty((3, 3)))
    with pytest.raises(BAD):
        ops.linear(x, w, out=np.empty((3, 2), np.float32))
    with pytest.raises(BAD):
        ops.linear(x, w, out=np.empty((2, 3)).T)  # not C-contiguous
    ro = np.empty((3, 2))
    ro.setflags(write=False)
    with pytest.raises(BAD):
        ops.linear(x, w, out=ro)
    with pytest.raises(BAD):
        ops.activation_forward(x, "relu", out=np.empty((4, 3)))
    with pytest.raises(BAD):
        ops.mse_loss(x, x, out=np.empty((3, 4), np.float32))


def test_gather_rows_out_of_range():
    X = np.ones((5, 2))
    with pytest.raises((IndexError, ValueError)):
        ops.gather_rows(X, np.array([0, 5]))
    with pytest.raises((IndexError, ValueError)):
        ops.gather_rows(X, np.array([0, 1000000]))


def test_optimizer_kernel_shape_and_dtype_mismatch():
    p = np.zeros(5)
    with pytest.raises(ValueError):
        ops.adam_update(p, np.ones(4), np.zeros(5), np.zeros(5), step=1, lr=0.1, beta1=0.9,
                        beta2=0.99, eps=1e-8)
    with pytest.raises(TypeError):
        ops.sgd_update(p, np.ones(5, np.float32), lr=0.1)
    np.testing.assert_array_equal(p, 0)


# ---------------------------------------------------------------------------- modules

def test_linear_feature_mismatch():
    lin = nn.Linear(4, 3, seed=0)
    with pytest.raises(ValueError):
        lin(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError):
        nn.Sequential(lin, nn.ReLU())(np.ones((2, 3), np.float32))


def test_float64_into_float32_model_is_type_error():
    model = nn.Sequential(nn.Linear(4, 3, seed=0), nn.ReLU())
    with pytest.raises(TypeError):
        model(np.ones((2, 4), np.float64))
    model64 = nn.Linear(4, 3, dtype=np.float64, seed=0)
    with pytest.raises(TypeError):
        model64(np.ones((2, 4), np.float32))


def test_backward_grad_shape_mismatch():
    lin = nn.Linear(4, 3, dtype=np.float64, seed=0)
    lin(np.ones((2, 4)))
    with pytest.raises(BAD):
        lin.backward(np.ones((2, 4)))


@pytest.mark.parametrize("bad", [-1, -3])
def test_linear_bad_sizes(bad):
    with pytest.raises(BAD):
        nn.Linear(bad, 3)
    with pytest.raises(BAD):
        nn.Linear(3, bad)


def test_linear_bad_dtype():
    with pytest.raises(BAD):
        nn.Linear(3, 2, dtype=np.int32)


# ---------------------------------------------------------------------------- load_state_dict

def _model():
    return nn.Sequential(nn.Linear(3, 4, dtype=np.float64, seed=0), nn.ReLU(),
                         nn.Linear(4, 2, dtype=np.float64, seed=1))


def _good_sd():
    return {"0.weight": np.full((4, 3), 7.0), "0.bias": np.full(4, 7.0),
            "2.weight": np.full((2, 4), 7.0), "2.bias": np.full(2, 7.0)}


def test_load_state_dict_wrong_shape_leaves_model_unchanged():
    model = _model()
    snap = _snapshot(model)
    sd = _good_sd()
    sd["2.weight"] = np.full((4, 2), 7.0)  # transposed; earlier keys are valid
    with pytest.raises(ValueError):
        model.load_state_dict(sd)
    _assert_unchanged(model, snap)


def test_load_state_dict_missing_key_leaves_model_unchanged():
    model = _model()
    snap = _snapshot(model)
    sd = _good_sd()
    del sd["2.bias"]
    with pytest.raises(ValueError):
        model.load_state_dict(sd)
    _assert_unchanged(model, snap)


def test_load_state_dict_unexpected_key_leaves_model_unchanged():
    model = _model()
    snap = _snapshot(model)
    sd = _good_sd()
    sd["4.weight"] = np.ones((2, 2))
    with pytest.raises(ValueError):
        model.load_state_dict(sd)
    _assert_unchanged(model, snap)


def test_load_state_dict_non_strict_allows_missing_keys():
    model = _model()
    snap = _snapshot(model)
    sd = _good_sd()
    del sd["2.bias"]
    model.load_state_dict(sd, strict=False)
    np.testing.assert_array_equal(model[0].weight.data, 7.0)
    np.testing.assert_array_equal(model[2].bias.data, snap["2.bias"])


def test_load_state_dict_non_array_value():
    model = _model()
    snap = _snapshot(model)
    sd = _good_sd()
    sd["0.bias"] = "not an array"
    with pytest.raises(BAD):
        model.load_state_dict(sd)
    _assert_unchanged(model, snap)


def test_load_state_dict_works_after_failed_load():
    model = _model()
    sd = _good_sd()
    del sd["0.weight"]
    with pytest.raises(ValueError):
        model.load_state_dict(sd)
    model.load_state_dict(_good_sd())
    np.testing.assert_array_equal(model[2].weight.data, 7.0)


# ---------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "Adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
    "RMSprop": lambda ps: optim.RMSprop(ps, lr=0.1),
    "Adam": lambda ps: optim.Adam(ps, lr=0.1),
    "AdamW": lambda ps: optim.AdamW(ps, lr=0.1),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("bad_grad", ["shape", "dtype"])
def test_step_with_bad_grad_leaves_params_unchanged(name, bad_grad):
    p1 = nn.Parameter(np.ones((3, 2)))
    p2 = nn.Parameter(np.ones(4))
    opt = OPTIMIZERS[name]([p1, p2])
    # one good step first so that optimizer state exists
    p1.grad[...] = 0.5
    p2.grad[...] = 0.5
    opt.step()
    before = [p1.data.copy(), p2.data.copy()]
    p1.grad[...] = 1.0
    if bad_grad == "shape":
        p2.grad = np.ones(5)
        expected = ValueError
    else:
        p2.grad = np.ones(4, np.float32)
        expected = TypeError
    with pytest.raises(expected):
        opt.step()
    np.testing.assert_array_equal(p1.data, before[0])
    np.testing.assert_array_equal(p2.data, before[1])
    # a good step after the failure still works and moves the params
    p2.grad = np.ones(4)
    opt.step()
    assert not np.array_equal(p2.data, before[1])


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=-1.0),
    lambda ps: optim.SGD(ps, lr=float("nan")),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.1),
    lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1e-4),
    lambda ps: optim.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5, nesterov=True),
    lambda ps: optim.Adagrad(ps, lr=-0.01),
    lambda ps: optim.Adagrad(ps, lr_decay=-0.1),
    lambda ps: optim.Adagrad(ps, weight_decay=-0.1),
    lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1.0),
    lambda ps: optim.Adagrad(ps, eps=-1e-10),
    lambda ps: optim.RMSprop(ps, lr=-0.01),
    lambda ps: optim.RMSprop(ps, alpha=-0.1),
    lambda ps: optim.RMSprop(ps, eps=-1e-8),
    lambda ps: optim.RMSprop(ps, momentum=-0.5),
    lambda ps: optim.RMSprop(ps, weight_decay=-0.1),
    lambda ps: optim.Adam(ps, lr=-1e-3),
    lambda ps: optim.Adam(ps, lr=float("nan")),
    lambda ps: optim.Adam(ps, betas=(1.2, 0.999)),
    lambda ps: optim.Adam(ps, betas=(0.9, 1.0)),
    lambda ps: optim.Adam(ps, betas=(-0.1, 0.999)),
    lambda ps: optim.Adam(ps, eps=-1e-8),
    lambda ps: optim.Adam(ps, weight_decay=-0.1),
    lambda ps: optim.AdamW(ps, lr=-1e-3),
    lambda ps: optim.AdamW(ps, betas=(0.9, 1.5)),
    lambda ps: optim.AdamW(ps, eps=-1.0),
    lambda ps: optim.AdamW(ps, weight_decay=-0.01),
], ids=[
    "sgd-neg-lr", "sgd-nan-lr", "sgd-neg-momentum", "sgd-neg-wd", "sgd-nesterov-no-momentum",
    "sgd-nesterov-dampening", "adagrad-neg-lr", "adagrad-neg-lr-decay", "adagrad-neg-wd",
    "adagrad-neg-init-acc", "adagrad-neg-eps", "rmsprop-neg-lr", "rmsprop-neg-alpha",
    "rmsprop-neg-eps", "rmsprop-neg-momentum", "rmsprop-neg-wd", "adam-neg-lr", "adam-nan-lr",
    "adam-beta1-1.2", "adam-beta2-1.0", "adam-beta1-neg", "adam-neg-eps", "adam-neg-wd",
    "adamw-neg-lr", "adamw-beta2-1.5", "adamw-neg-eps", "adamw-neg-wd",
])
def test_invalid_hyperparameters(make):
    with pytest.raises(ValueError):
        make([nn.Parameter(np.zeros(3))])


def test_invalid_beta_message_names_index():
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([nn.Parameter(np.zeros(3))], betas=(1.2, 0.999))


def test_empty_parameter_list():
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)


# ---------------------------------------------------------------------------- fit

def _setup(n=40, dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 3)).astype(dtype)
    y = rng.integers(0, 2, n)
    model = nn.Sequential(nn.Linear(3, 2, dtype=dtype, seed=0))
    return model, losses.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X, y


def test_fit_length_mismatch():
    model, loss, opt, X, y = _setup()
    snap = _snapshot(model)
    with pytest.raises(ValueError):
        train.fit(model, loss, opt, X, y[:-1], epochs=1, progress=False)
    _assert_unchanged(model, snap)


@pytest.mark.parametrize("bs", [0, -1])
def test_fit_bad_batch_size(bs):
    model, loss, opt, X, y = _setup()
    snap = _snapshot(model)
    with pytest.raises(ValueError):
        train.fit(model, loss, opt, X, y, epochs=1, batch_size=bs, progress=False)
    _assert_unchanged(model, snap)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_fit_non_finite_X(bad_value):
    model, loss, opt, X, y = _setup()
    X[7, 1] = bad_value
    snap = _snapshot(model)
    with pytest.raises(ValueError):
        train.fit(model, loss, opt, X, y, epochs=1, progress=False)
    _assert_unchanged(model, snap)


def test_fit_labels_out_of_range():
    model, loss, opt, X, y = _setup()
    y[3] = 2  # model has 2 outputs
    with pytest.raises(ValueError):
        train.fit(model, loss, opt, X, y, epochs=1, progress=False)


def test_fit_feature_mismatch():
    model, loss, opt, X, y = _setup()
    with pytest.raises(ValueError):
        train.fit(model, loss, opt, np.hstack([X, X]), y, epochs=1, progress=False)


def test_fit_bad_validation_data():
    model, loss, opt, X, y = _setup()
    with pytest.raises(ValueError):
        train.fit(model, loss, opt, X, y, epochs=1, progress=False, validation_data=(X, y[:-2]))


def test_evaluate_length_mismatch():
    model, loss, _, X, y = _setup()
    with pytest.raises(ValueError):
        train.evaluate(model, loss, X, y[:-1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_huge_inputs_float64_loss_overflow_raises_before_step():
    """X = 1e200 (finite) makes the MSE loss overflow to inf on the very first batch."""
    rng = np.random.default_rng(0)
    X = np.full((32, 3), 1e200)
    y = rng.standard_normal((32, 1))
    model = nn.Sequential(nn.Linear(3, 1, dtype=np.float64, seed=0))
    snap = _snapshot(model)
    opt = optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(FloatingPointError, match="(?i)epoch"):
        train.fit(model, losses.MSELoss(), opt, X, y, epochs=2, batch_size=8, progress=False)
    _assert_unchanged(model, snap)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_huge_inputs_float32_gradient_overflow_raises():
    """float32 X = 1e30: the loss may stay finite in double, but the weight gradient
    (~1e60) overflows; fit must stop before stepping on a non-finite gradient."""
    rng = np.random.default_rng(0)
    X = np.full((16, 3), 1e30, np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 1, seed=0))
    snap = _snapshot(model)
    opt = optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(FloatingPointError, match="(?i)epoch"):
        train.fit(model, losses.MSELoss(), opt, X, y, epochs=1, batch_size=8, progress=False)
    for p in model.parameters():
        assert np.all(np.isfinite(p.data))
    _assert_unchanged(model, snap)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_divergence_raises_with_finite_parameters():
    """SGD with a huge learning rate on regression diverges until the loss overflows."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 4))
    y = X @ rng.standard_normal((4, 1))
    model = nn.Sequential(nn.Linear(4, 1, dtype=np.float64, seed=0))
    opt = optim.SGD(model.parameters(), lr=1e3)
    rec = []

    class CB:
        def on_epoch_end(self, epoch, logs):
            rec.append(epoch)

    with pytest.raises(FloatingPointError) as info:
        train.fit(model, losses.MSELoss(), opt, X, y, epochs=200, batch_size=16, shuffle=False,
                  callbacks=[CB()], progress=False)
    msg = str(info.value).lower()
    assert "epoch" in msg and "step" in msg
    assert len(rec) < 200
    for p in model.parameters():
        assert np.all(np.isfinite(p.data))


# ---------------------------------------------------------------------------- data

def test_minibatches_bad_arguments():
    X = np.ones((10, 2))
    with pytest.raises(ValueError):
        list(data.minibatches(X, np.ones(9), batch_size=2))
    with pytest.raises(ValueError):
        list(data.minibatches(X, batch_size=0))
    with pytest.raises(ValueError):
        list(data.minibatches(X, batch_size=-4))


def test_train_test_split_bad_arguments():
    X, y = np.ones((10, 2)), np.arange(10)
    with pytest.raises(ValueError):
        data.train_test_split(X, y[:9])
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            data.train_test_split(X, y, test_size=bad)


def test_one_hot_bad_labels():
    with pytest.raises(BAD):
        data.one_hot(np.array([0.5, 1.0]), 3)


# ---------------------------------------------------------------------------- threads

@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_non_positive_value_error(bad):
    with pytest.raises(ValueError):
        fn.set_num_threads(bad)


def test_set_num_threads_string_type_error():
    with pytest.raises(TypeError):
        fn.set_num_threads("2")

