"""fastnn.nn: Parameter, Module contract, Linear, activation modules, Sequential,
state_dict; float64 finite-difference gradient checks for every layer."""
import numpy as np
import pytest

import fastnn as fn
from fastnn import nn, ops, optim

from conftest import numeric_grad

ACT_MODULES = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(negative_slope=0.1),
    "sigmoid": lambda: nn.Sigmoid(),
    "tanh": lambda: nn.Tanh(),
}


# ---------------------------------------------------------------------------- helpers



def check_module_gradients(model, x, seed=0, rtol=1e-6, atol=1e-8):
    """L = sum(R * model(x)); compare analytic input/parameter grads with finite differences."""
    rng = np.random.default_rng(seed)
    y = model(x)
    R = rng.standard_normal(y.shape)
    model.zero_grad()
    y = model(x)
    gx = model.backward(R.copy())
    assert gx.shape == x.shape
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}

    def f():
        return float(np.sum(R * model(x)))

    np.testing.assert_allclose(gx, numeric_grad(f, x), rtol=rtol, atol=atol, err_msg="input grad")
    for name, p in model.named_parameters():
        np.testing.assert_allclose(analytic[name], numeric_grad(f, p.data), rtol=rtol, atol=atol,
                                   err_msg=f"grad of {name}")
    return analytic


# ---------------------------------------------------------------------------- Parameter / Linear

def test_parameter_holds_data_and_zero_grad(dtype):
    data = np.arange(6, dtype=dtype).reshape(2, 3)
    p = nn.Parameter(data)
    np.testing.assert_array_equal(p.data, data)
    assert p.data.dtype == dtype
    assert p.grad.shape == (2, 3) and p.grad.dtype == dtype
    np.testing.assert_array_equal(p.grad, 0)


def test_linear_shapes_dtype_and_names(dtype):
    lin = nn.Linear(5, 3, dtype=dtype, seed=0)
    assert lin.weight.data.shape == (3, 5)
    assert lin.bias.data.shape == (3,)
    assert lin.weight.data.dtype == dtype and lin.bias.data.dtype == dtype
    names = [n for n, _ in lin.named_parameters()]
    assert names == ["weight", "bias"]
    params = list(lin.parameters())
    assert len(params) == 2
    assert params[0] is lin.weight and params[1] is lin.bias
    assert set(lin.state_dict()) == {"weight", "bias"}


def test_linear_default_dtype_is_float32():
    lin = nn.Linear(4, 2, seed=0)
    assert lin.weight.data.dtype == np.float32
    y = lin(np.ones((3, 4), np.float32))
    assert y.dtype == np.float32


def test_linear_without_bias(dtype, rng, assert_close):
    lin = nn.Linear(4, 3, bias=False, dtype=dtype, seed=1)
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert set(lin.state_dict()) == {"weight"}
    x = rng.standard_normal((5, 4)).astype(dtype)
    assert_close(lin(x), x.astype(np.float64) @ lin.weight.data.T.astype(np.float64), scale=2)


def test_linear_init_torch_default(dtype):
    in_f, out_f = 200, 150
    lin = nn.Linear(in_f, out_f, dtype=dtype, seed=0)
    bound = 1.0 / np.sqrt(in_f)
    w, b = lin.weight.data, lin.bias.data
    assert np.all(np.abs(w) <= bound * (1 + 1e-6))
    assert np.all(np.abs(b) <= bound * (1 + 1e-6))
    # uniform(-bound, bound): std bound/sqrt(3), mean ~0, fills the range
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.05)
    assert abs(w.mean()) < 0.05 * bound
    assert w.max() > 0.95 * bound and w.min() < -0.95 * bound
    assert len(np.unique(b)) == out_f


def test_linear_seed_reproducible():
    a = nn.Linear(8, 4, seed=3)
    b = nn.Linear(8, 4, seed=3)
    c = nn.Linear(8, 4, seed=4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_linear_forward_matches_ops(dtype, rng, ref, assert_close):
    lin = nn.Linear(6, 4, dtype=dtype, seed=0)
    x = rng.standard_normal((9, 6)).astype(dtype)
    y = lin(x)
    assert y.dtype == dtype and y.shape == (9, 4)
    assert_close(y, ref.linear_forward(x, lin.weight.data, lin.bias.data, None), scale=2)
    np.testing.assert_array_equal(lin.forward(x), y)
    assert_close(y, ops.linear(x, lin.weight.data, lin.bias.data), scale=2)


def test_linear_backward_matches_reference(dtype, n_threads, rng, ref, assert_close):
    lin = nn.Linear(6, 4, dtype=dtype, seed=0)
    x = rng.standard_normal((9, 6)).astype(dtype)
    gy = rng.standard_normal((9, 4)).astype(dtype)
    y = lin(x)
    gx = lin.backward(gy)
    rgx, rgw, rgb = ref.linear_backward(gy, x, lin.weight.data, y, None)
    assert gx.dtype == dtype
    assert_close(gx, rgx, scale=2)
    assert_close(lin.weight.grad, rgw, scale=2)
    assert_close(lin.bias.grad, rgb, scale=2)


def test_changing_batch_size(dtype, rng, ref, assert_close):
    lin = nn.Linear(3, 2, dtype=dtype, seed=0)
    for n in (5, 1, 8, 5):
        x = rng.standard_normal((n, 3)).astype(dtype)
        y = lin(x)
        assert y.shape == (n, 2)
        assert_close(y, ref.linear_forward(x, lin.weight.data, lin.bias.data, None), scale=2)
        gx = lin.backward(np.ones((n, 2), dtype))
        assert gx.shape == (n, 3)


# ---------------------------------------------------------------------------- activation modules

@pytest.mark.parametrize("name", list(ACT_MODULES))
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 2)])
def test_activation_module_forward_backward(name, shape, dtype, rng, ref, assert_close):
    mod = ACT_MODULES[name]()
    slope = 0.1
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    y = mod(x)
    assert y.shape == shape and y.dtype == dtype
    assert_close(y, ref.act_forward(x, name, slope))
    gy = rng.standard_normal(shape).astype(dtype)
    gx = mod.backward(gy)
    assert gx.shape == shape and gx.dtype == dtype
    assert_close(gx, ref.act_backward(gy, ref.act_forward(x, name, slope), name, slope))
    assert list(mod.parameters()) == []
    assert mod.state_dict() == {}


def test_leaky_relu_default_slope(rng, ref, assert_close):
    x = rng.standard_normal((4, 4))
    assert_close(nn.LeakyReLU()(x), ref.act_forward(x, "leaky_relu", 0.01))


# ---------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear(bias, rng):
    lin = nn.Linear(5, 4, bias=bias, dtype=np.float64, seed=0)
    x = rng.standard_normal((6, 5))
    check_module_gradients(lin, x)


@pytest.mark.parametrize("name", list(ACT_MODULES))
def test_gradcheck_linear_plus_activation(name, rng, ref):
    lin = nn.Linear(5, 4, dtype=np.float64, seed=0)
    model = nn.Sequential(lin, ACT_MODULES[name]())
    x = ref.well_separated_linear_input(rng, 6, 5, lin.weight.data, lin.bias.data, np.float64)
    grads = check_module_gradients(model, x)
    assert set(grads) == {"0.weight", "0.bias"}


@pytest.mark.parametrize("name", list(ACT_MODULES))
def test_gradcheck_activation_module(name, rng):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # away from the ReLU kink
    check_module_gradients(ACT_MODULES[name](), x)


def test_gradcheck_deep_sequential(rng, ref):
    l0 = nn.Linear(6, 8, dtype=np.float64, seed=0)
    model = nn.Sequential(
        l0, nn.ReLU(),
        nn.Linear(8, 7, dtype=np.float64, seed=1), nn.Tanh(),
        nn.Linear(7, 5, dtype=np.float64, seed=2), nn.Sigmoid(),
        nn.Linear(5, 3, dtype=np.float64, seed=3),
    )
    x = ref.well_separated_linear_input(rng, 5, 6, l0.weight.data, l0.bias.data, np.float64)
    grads = check_module_gradients(model, x)
    assert set(grads) == {f"{i}.{k}" for i in (0, 2, 4, 6) for k in ("weight", "bias")}


def test_gradcheck_sequential_with_leaky_relu_middle(rng, ref):
    l0 = nn.Linear(4, 6, dtype=np.float64, seed=5)
    model = nn.Sequential(l0, nn.LeakyReLU(0.2), nn.Linear(6, 2, dtype=np.float64, seed=6))
    x = ref.well_separated_linear_input(rng, 7, 4, l0.weight.data, l0.bias.data, np.float64)
    check_module_gradients(model, x)


# ---------------------------------------------------------------------------- grad accumulation

def _model(dtype=np.float64):
    return nn.Sequential(
        nn.Linear(4, 6, dtype=dtype, seed=0), nn.Tanh(), nn.Linear(6, 3, dtype=dtype, seed=1)
    )


def test_backward_accumulates_and_zero_grad_resets(dtype, rng, assert_close):
    model = _model(dtype)
    x = rng.standard_normal((5, 4)).astype(dtype)
    gy = rng.standard_normal((5, 3)).astype(dtype)
    model(x)
    gx1 = model.backward(gy)
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    assert any(np.any(g != 0) for g in once.values())
    model(x)
    gx2 = model.backward(gy)
    for n, p in model.named_parameters():
        assert_close(p.grad, 2 * once[n].astype(np.float64), err_msg=n)
    # the input gradient does not accumulate
    assert_close(gx2, gx1)
    model.zero_grad()
    for n, p in model.named_parameters():
        assert p.grad.shape == p.data.shape and p.grad.dtype == p.data.dtype
        np.testing.assert_array_equal(p.grad, 0)
    model(x)
    model.backward(gy)
    for n, p in model.named_parameters():
        assert_close(p.grad, once[n])


def test_backward_does_not_change_parameters(rng):
    model = _model()
    before = model.state_dict()
    model(rng.standard_normal((3, 4)))
    model.backward(rng.standard_normal((3, 3)))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_outputs_are_owned_by_caller(dtype, rng):
    model = _model(dtype)
    x1 = rng.standard_normal((5, 4)).astype(dtype)
    x2 = rng.standard_normal((5, 4)).astype(dtype)
    y1 = model(x1)
    y1_copy = y1.copy()
    g1 = model.backward(np.ones((5, 3), dtype))
    g1_copy = g1.copy()
    y2 = model(x2)
    g2 = model.backward(2 * np.ones((5, 3), dtype))
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(g1, g1_copy)
    assert not np.shares_memory(y1, y2)
    assert not np.shares_memory(g1, g2)
    # mutating a returned array does not corrupt the next backward
    y2[...] = 0
    model.zero_grad()
    model(x1)
    np.testing.assert_allclose(model.backward(np.ones((5, 3), dtype)), g1_copy, rtol=1e-6)


def test_forward_does_not_modify_input(dtype, rng):
    model = _model(dtype)
    x = rng.standard_normal((5, 4)).astype(dtype)
    xs = x.copy()
    model(x)
    gy = np.ones((5, 3), dtype)
    model.backward(gy)
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(gy, 1)


@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly"])
def test_module_accepts_any_input_layout(layout, dtype, rng, assert_close):
    model = _model(dtype)
    x = rng.standard_normal((6, 4)).astype(dtype)
    want = model(x).copy()
    model.zero_grad()
    model.backward(np.ones((6, 3), dtype))
    want_g = {n: p.grad.copy() for n, p in model.named_parameters()}
    if layout == "strided":
        big = np.zeros((12, 8), dtype)
        big[::2, ::2] = x
        xv = big[::2, ::2]
    elif layout == "fortran":
        xv = np.asfortranarray(x)
    else:
        xv = x.copy()
        xv.setflags(write=False)
    snap = xv.copy()
    model.zero_grad()
    assert_close(model(xv), want, scale=2)
    model.backward(np.ones((6, 3), dtype))
    for n, p in model.named_parameters():
        assert_close(p.grad, want_g[n], scale=2)
    np.testing.assert_array_equal(xv, snap)


# ---------------------------------------------------------------------------- Sequential / Module

def test_sequential_indexing_and_len():
    a, r, b = nn.Linear(3, 4, seed=0), nn.ReLU(), nn.Linear(4, 2, seed=1)
    seq = nn.Sequential(a, r, b)
    assert len(seq) == 3
    assert seq[0] is a and seq[1] is r and seq[2] is b
    params = list(seq.parameters())
    assert [id(p) for p in params] == [id(a.weight), id(a.bias), id(b.weight), id(b.bias)]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_sequential_forward_is_composition(dtype, rng, assert_close):
    a, b = nn.Linear(3, 4, dtype=dtype, seed=0), nn.Linear(4, 2, dtype=dtype, seed=1)
    seq = nn.Sequential(a, nn.Sigmoid(), b)
    x = rng.standard_normal((5, 3)).astype(dtype)
    h = 1 / (1 + np.exp(-(x.astype(np.float64) @ a.weight.data.T + a.bias.data)))
    want = h @ b.weight.data.T.astype(np.float64) + b.bias.data
    assert_close(seq(x), want, scale=2)


def test_train_eval_flags():
    seq = nn.Sequential(nn.Linear(2, 2, seed=0), nn.ReLU())
    assert seq.training is True
    ret = seq.eval()
    assert seq.training is False
    assert seq[0].training is False and seq[1].training is False
    seq.train()
    assert seq.training is True and seq[0].training is True
    assert ret is None or ret is seq


def test_state_dict_keys_values_are_copies(dtype):
    seq = nn.Sequential(nn.Linear(3, 4, dtype=dtype, seed=0), nn.Tanh(), nn.Linear(4, 2, dtype=dtype, seed=1))
    sd = seq.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sd["0.weight"].shape == (4, 3) and sd["2.bias"].shape == (2,)
    for k, v in sd.items():
        assert isinstance(v, np.ndarray) and v.dtype == dtype
    np.testing.assert_array_equal(sd["0.weight"], seq[0].weight.data)
    sd["0.weight"][...] = 123.0
    assert not np.any(seq[0].weight.data == 123.0)


def test_load_state_dict_roundtrip(dtype, rng, assert_close):
    src = nn.Sequential(nn.Linear(3, 4, dtype=dtype, seed=0), nn.ReLU(), nn.Linear(4, 2, dtype=dtype, seed=1))
    dst = nn.Sequential(nn.Linear(3, 4, dtype=dtype, seed=7), nn.ReLU(), nn.Linear(4, 2, dtype=dtype, seed=8))
    x = rng.standard_normal((5, 3)).astype(dtype)
    assert not np.allclose(src(x), dst(x))
    sd = src.state_dict()
    dst.load_state_dict(sd)
    np.testing.assert_array_equal(dst(x), src(x))
    # the model does not alias the loaded arrays
    sd["0.weight"][...] = 0
    np.testing.assert_array_equal(dst[0].weight.data, src[0].weight.data)
    # parameters stay the same objects (optimizers hold them)
    w_obj = dst[0].weight
    dst.load_state_dict(src.state_dict())
    assert dst[0].weight is w_obj


def test_load_state_dict_keeps_parameter_views_used_by_optimizer(rng):
    model = nn.Sequential(nn.Linear(3, 2, dtype=np.float64, seed=0))
    opt = optim.SGD(model.parameters(), lr=0.5)
    new = {"0.weight": np.ones((2, 3)), "0.bias": np.zeros(2)}
    model.load_state_dict(new)
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(model[0].weight.data, 0.5)
    np.testing.assert_allclose(model[0].bias.data, -0.5)


def test_load_state_dict_from_float64_into_float32_is_rejected_or_cast():
    """A float64 array loaded into a float32 model: either TypeError (model unchanged)
    or a cast to float32; never a silent dtype change of the parameter."""
    model = nn.Linear(2, 2, seed=0)
    before = model.state_dict()
    try:
        model.load_state_dict({"weight": np.ones((2, 2)), "bias": np.ones(2)})
    except TypeError:
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, before[k])
    assert model.weight.data.dtype == np.float32
    assert model.bias.data.dtype == np.float32


def test_unseeded_layers_differ():
    a, b = nn.Linear(16, 8), nn.Linear(16, 8)
    assert not np.array_equal(a.weight.data, b.weight.data)


def test_nested_sequential_names_follow_torch():
    inner = nn.Sequential(nn.Linear(3, 4, seed=0), nn.ReLU())
    outer = nn.Sequential(inner, nn.Linear(4, 2, seed=1))
    assert list(outer.state_dict()) == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in outer.named_parameters()] == list(outer.state_dict())
    x = np.ones((2, 3), np.float32)
    y = outer(x)
    assert y.shape == (2, 2)
    gx = outer.backward(np.ones((2, 2), np.float32))
    assert gx.shape == (2, 3)
    assert np.any(inner[0].weight.grad != 0)


def test_large_model_same_at_1_and_2_threads(dtype, assert_close):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1024)).astype(dtype)
    gy = rng.standard_normal((64, 256)).astype(dtype)
    results = {}
    for n in (1, 2):
        model = nn.Sequential(nn.Linear(1024, 512, dtype=dtype, seed=0), nn.ReLU(),
                              nn.Linear(512, 256, dtype=dtype, seed=1), nn.Sigmoid())
        with fn.threads(n):
            y = model(x)
            gx = model.backward(gy)
        results[n] = [y, gx] + [p.grad.copy() for p in model.parameters()]
    for a, b in zip(results[1], results[2]):
        assert_close(a, b, scale=20)


def test_recycled_outputs_never_overwrite_what_a_caller_holds(rng):
    """forward() reuses an earlier output array only when nobody references it."""
    model = fn.nn.Sequential(fn.nn.Linear(4, 3, seed=0), fn.nn.ReLU())
    xs = [rng.standard_normal((5, 4)).astype(np.float32) for _ in range(6)]
    held = []
    for x in xs[:3]:
        held.append(model(x))          # all three stay referenced
    view = model(xs[3])[1:3]           # only a view of the fourth survives
    view_copy = view.copy()
    for x in xs[4:]:
        out = model(x)
        for h in held:
            assert not np.shares_memory(out, h)
        assert not np.shares_memory(out, view)
    for h, x in zip(held, xs[:3]):
        np.testing.assert_allclose(h, np.maximum(x @ model[0].weight.data.T + model[0].bias.data, 0),
                                   rtol=1e-6)
    np.testing.assert_array_equal(view, view_copy)
    # once dropped, arrays are recycled: the results stay correct
    del held, view
    for x in xs:
        np.testing.assert_allclose(model(x), np.maximum(x @ model[0].weight.data.T + model[0].bias.data, 0),
                                   rtol=1e-6)
