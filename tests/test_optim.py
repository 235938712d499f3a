"""fastnn.optim and the ops optimizer kernels against a NumPy implementation of
torch.optim's update rules (written out below), against torch.optim itself when
installed, state_dict round trips and thread-count independence."""
import copy

import numpy as np
import pytest

import fastnn as fn
from fastnn import nn, ops, optim

N_STEPS = 25


# ---------------------------------------------------------------------------- reference

class RefOptimizer:
    """torch.optim update rules (single param group, default non-capturable path)."""

    def __init__(self, kind, params, **hp):
        self.kind = kind
        self.params = params  # list of float64 arrays, updated in place
        defaults = {
            "SGD": dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
            "Adagrad": dict(lr=0.01, lr_decay=0.0, weight_decay=0.0,
                            initial_accumulator_value=0.0, eps=1e-10),
            "RMSprop": dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                            centered=False),
            "Adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False),
            "AdamW": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                          amsgrad=False),
        }[kind]
        self.hp = {**defaults, **hp}
        self.state = [dict() for _ in params]

    @property
    def lr(self):
        return self.hp["lr"]

    @lr.setter
    def lr(self, value):
        self.hp["lr"] = value

    def step(self, grads):
        for p, g, st in zip(self.params, grads, self.state):
            getattr(self, "_" + self.kind.lower())(p, np.asarray(g, np.float64), st, **self.hp)

    @staticmethod
    def _sgd(p, g, st, lr, momentum, dampening, nesterov, weight_decay):
        d = g + weight_decay * p if weight_decay != 0 else g.copy()
        if momentum != 0:
            if "buf" not in st:
                st["buf"] = d.copy()
            else:
                st["buf"] = momentum * st["buf"] + (1 - dampening) * d
            d = d + momentum * st["buf"] if nesterov else st["buf"]
        p -= lr * d

    @staticmethod
    def _adagrad(p, g, st, lr, lr_decay, weight_decay, initial_accumulator_value, eps):
        if "sum" not in st:
            st["sum"] = np.full_like(p, initial_accumulator_value)
            st["step"] = 0
        st["step"] += 1
        if weight_decay != 0:
            g = g + weight_decay * p
        clr = lr / (1 + (st["step"] - 1) * lr_decay)
        st["sum"] += g * g
        p -= clr * g / (np.sqrt(st["sum"]) + eps)

    @staticmethod
    def _rmsprop(p, g, st, lr, alpha, eps, weight_decay, momentum, centered):
        if "sq" not in st:
            st["sq"] = np.zeros_like(p)
            st["buf"] = np.zeros_like(p)
            st["gavg"] = np.zeros_like(p)
        if weight_decay != 0:
            g = g + weight_decay * p
        st["sq"] = alpha * st["sq"] + (1 - alpha) * g * g
        if centered:
            st["gavg"] = alpha * st["gavg"] + (1 - alpha) * g
            avg = np.sqrt(st["sq"] - st["gavg"] ** 2) + eps
        else:
            avg = np.sqrt(st["sq"]) + eps
        if momentum > 0:
            st["buf"] = momentum * st["buf"] + g / avg
            p -= lr * st["buf"]
        else:
            p -= lr * g / avg

    @staticmethod
    def _adam(p, g, st, lr, betas, eps, weight_decay, amsgrad, decoupled=False):
        b1, b2 = betas
        if "m" not in st:
            st["m"] = np.zeros_like(p)
            st["v"] = np.zeros_like(p)
            st["vmax"] = np.zeros_like(p)
            st["step"] = 0
        st["step"] += 1
        t = st["step"]
        if weight_decay != 0:
            if decoupled:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
        st["m"] = b1 * st["m"] + (1 - b1) * g
        st["v"] = b2 * st["v"] + (1 - b2) * g * g
        bc1 = 1 - b1 ** t
        bc2 = 1 - b2 ** t
        if amsgrad:
            st["vmax"] = np.maximum(st["vmax"], st["v"])
            denom = np.sqrt(st["vmax"]) / np.sqrt(bc2) + eps
        else:
            denom = np.sqrt(st["v"]) / np.sqrt(bc2) + eps
        p -= (lr / bc1) * st["m"] / denom

    def _adamw(self, p, g, st, **hp):
        self._adam(p, g, st, decoupled=True, **hp)


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, eps=1e-6, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True, eps=1e-6)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.0)),
]
CONFIG_IDS = [f"{k}-" + "-".join(f"{a}={v}" for a, v in hp.items()) for k, hp in CONFIGS]

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def _grad_sequence(n_steps, shapes, seed=0):
    """Random grads whose scale varies over time (so amsgrad's max matters)."""
    rng = np.random.default_rng(seed)
    seq = []
    for t in range(n_steps):
        scale = 3.0 if t % 5 == 0 else 0.5
        seq.append([scale * rng.standard_normal(s) for s in shapes])
    return seq


def _initial_params(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _make(kind, params, **hp):
    return getattr(optim, kind)(params, **hp)


def _run_fastnn(kind, hp, dtype, grads, init, lr_change=None):
    params = [nn.Parameter(a.astype(dtype)) for a in init]
    opt = _make(kind, params, **hp)
    traj = []
    for t, gs in enumerate(grads):
        if lr_change is not None and t == lr_change[0]:
            opt.lr = lr_change[1]
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()
        traj.append([p.data.copy() for p in params])
    return params, opt, traj


def _run_ref(kind, hp, grads, init, lr_change=None):
    params = [a.astype(np.float64).copy() for a in init]
    opt = RefOptimizer(kind, params, **hp)
    traj = []
    for t, gs in enumerate(grads):
        if lr_change is not None and t == lr_change[0]:
            opt.lr = lr_change[1]
        opt.step(gs)
        traj.append([p.copy() for p in params])
    return traj


# ---------------------------------------------------------------------------- trajectories

@pytest.mark.parametrize("kind,hp", CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_reference(kind, hp, dtype, assert_close):
    grads = _grad_sequence(N_STEPS, SHAPES)
    init = _initial_params(SHAPES)
    if dtype == np.float32:
        # the reference starts from the same (rounded) values and sees the same grads
        init = [a.astype(np.float32).astype(np.float64) for a in init]
        grads = [[g.astype(np.float32).astype(np.float64) for g in gs] for gs in grads]
    _, _, got = _run_fastnn(kind, hp, dtype, grads, init)
    want = _run_ref(kind, hp, grads, init)
    for t, (g_t, w_t) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(g_t, w_t)):
            assert a.dtype == dtype
            assert_close(a, b, scale=30 if dtype == np.float32 else 10,
                         err_msg=f"step {t + 1}, param {i}")


@pytest.mark.parametrize("kind,hp", [c for c in CONFIGS if c[0] in ("SGD", "Adam", "RMSprop", "Adagrad")][::2])
def test_lr_setter_changes_following_steps(kind, hp, assert_close):
    grads = _grad_sequence(12, SHAPES, seed=3)
    init = _initial_params(SHAPES, seed=4)
    params, opt, got = _run_fastnn(kind, hp, np.float64, grads, init, lr_change=(6, hp["lr"] * 0.25))
    assert opt.lr == pytest.approx(hp["lr"] * 0.25)
    want = _run_ref(kind, hp, grads, init, lr_change=(6, hp["lr"] * 0.25))
    for a, b in zip(got[-1], want[-1]):
        assert_close(a, b, scale=10)
    unchanged = _run_ref(kind, hp, grads, init)
    assert not np.allclose(got[-1][0], unchanged[-1][0])


def test_lr_property_reads_constructor_value():
    p = nn.Parameter(np.zeros(3))
    assert optim.SGD([p], lr=0.3).lr == pytest.approx(0.3)
    assert optim.Adam([p]).lr == pytest.approx(1e-3)
    assert optim.Adagrad([p]).lr == pytest.approx(0.01)
    assert optim.RMSprop([p]).lr == pytest.approx(0.01)
    assert optim.AdamW([p]).lr == pytest.approx(1e-3)


def test_adamw_default_weight_decay_is_applied(assert_close):
    """AdamW's default weight_decay=0.01 (decoupled) differs from Adam's 0."""
    grads = _grad_sequence(5, [(3,)])
    init = _initial_params([(3,)])
    _, _, got = _run_fastnn("AdamW", {}, np.float64, grads, init)
    want = _run_ref("AdamW", dict(weight_decay=0.01), grads, init)
    assert_close(got[-1][0], want[-1][0])
    adam = _run_ref("Adam", {}, grads, init)
    assert not np.allclose(got[-1][0], adam[-1][0], rtol=1e-12, atol=0)


def test_zero_grad_zeroes_all_grads():
    params = [nn.Parameter(np.ones((2, 3))), nn.Parameter(np.ones(4, np.float64))]
    opt = optim.SGD(params, lr=0.1)
    for p in params:
        p.grad[...] = 5.0
    opt.zero_grad()
    for p in params:
        np.testing.assert_array_equal(p.grad, 0)
        assert p.grad.shape == p.data.shape


def test_step_with_zero_grad_sgd_leaves_params(dtype):
    p = nn.Parameter(np.arange(4, dtype=dtype))
    opt = optim.SGD([p], lr=0.5, momentum=0.9)
    opt.step()
    np.testing.assert_array_equal(p.data, np.arange(4, dtype=dtype))


def test_optimizer_accepts_generator_of_parameters(assert_close):
    model = nn.Sequential(nn.Linear(3, 2, dtype=np.float64, seed=0))
    opt = optim.SGD(model.parameters(), lr=1.0)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad[...] = 1.0
    opt.step()
    for k, v in model.state_dict().items():
        assert_close(v, before[k] - 1.0)


# ---------------------------------------------------------------------------- state_dict

@pytest.mark.parametrize("kind,hp", CONFIGS[1::2], ids=CONFIG_IDS[1::2])
def test_state_dict_round_trip(kind, hp, dtype):
    grads = _grad_sequence(12, SHAPES, seed=5)
    init = _initial_params(SHAPES, seed=6)
    params = [nn.Parameter(a.astype(dtype)) for a in init]
    opt = _make(kind, params, **hp)
    for gs in grads[:6]:
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()
    sd = copy.deepcopy(opt.state_dict())
    saved = [p.data.copy() for p in params]
    for gs in grads[6:]:
        for p, g in zip(params, gs):
            p.grad[...] = g
        opt.step()
    want = [p.data.copy() for p in params]

    # a fresh optimizer over fresh parameters holding the saved values
    params2 = [nn.Parameter(s.copy()) for s in saved]
    opt2 = _make(kind, params2, **hp)
    opt2.load_state_dict(sd)
    for gs in grads[6:]:
        for p, g in zip(params2, gs):
            p.grad[...] = g
        opt2.step()
    for a, b in zip(params2, want):
        np.testing.assert_array_equal(a.data, b)

    # without the state the trajectory differs (the state matters for these configs)
    params3 = [nn.Parameter(s.copy()) for s in saved]
    opt3 = _make(kind, params3, **hp)
    for gs in grads[6:]:
        for p, g in zip(params3, gs):
            p.grad[...] = g
        opt3.step()
    assert any(not np.array_equal(a.data, b) for a, b in zip(params3, want))


def test_state_dict_restores_lr():
    p = nn.Parameter(np.zeros(3))
    opt = optim.Adam([p], lr=0.02)
    sd = copy.deepcopy(opt.state_dict())
    opt2 = optim.Adam([nn.Parameter(np.zeros(3))], lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.lr == pytest.approx(0.02)


# ---------------------------------------------------------------------------- ops kernels

def _kernel_arrays(dtype, shape=(37, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("hp", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
    dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
])
def test_sgd_update_kernel(hp, dtype, n_threads, assert_close):
    p0, _, _, _ = _kernel_arrays(dtype)
    grads = _grad_sequence(N_STEPS, [p0.shape], seed=2)
    grads = [[g[0].astype(dtype)] for g in grads]
    p = p0.copy()
    buf = np.zeros_like(p) if hp.get("momentum", 0) else None
    for t, (g,) in enumerate(grads):
        ret = ops.sgd_update(p, g, buf, first_step=(t == 0), **hp)
        assert ret is None or ret is p
    ref_p = [p0.astype(np.float64)]
    ref = RefOptimizer("SGD", ref_p, **hp)
    for gs in grads:
        ref.step(gs)
    assert_close(p, ref_p[0], scale=30)
    if buf is not None:
        assert_close(buf, ref.state[0]["buf"], scale=30)


def test_sgd_update_first_step_copies_grad(dtype):
    p = np.ones(10, dtype)
    g = np.full(10, 2.0, dtype)
    buf = np.full(10, 123.0, dtype)  # garbage: first_step must overwrite it
    ops.sgd_update(p, g, buf, lr=0.1, momentum=0.9, dampening=0.5, first_step=True)
    np.testing.assert_allclose(buf, 2.0)
    np.testing.assert_allclose(p, 1 - 0.1 * 2.0, rtol=1e-6)


@pytest.mark.parametrize("hp", [dict(lr=0.1), dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, eps=1e-6)])
def test_adagrad_update_kernel(hp, dtype, n_threads, assert_close):
    p0 = _kernel_arrays(dtype)[0]
    grads = [[g[0].astype(dtype)] for g in _grad_sequence(N_STEPS, [p0.shape], seed=2)]
    p = p0.copy()
    state_sum = np.full_like(p, 0.1)
    for t, (g,) in enumerate(grads, start=1):
        ops.adagrad_update(p, g, state_sum, step=t, **hp)
    ref_p = [p0.astype(np.float64)]
    ref = RefOptimizer("Adagrad", ref_p, initial_accumulator_value=0.1, **hp)
    for gs in grads:
        ref.step(gs)
    assert_close(p, ref_p[0], scale=30)
    assert_close(state_sum, ref.state[0]["sum"], scale=30)


@pytest.mark.parametrize("hp", [
    dict(lr=0.01, alpha=0.99, eps=1e-8),
    dict(lr=0.01, alpha=0.9, eps=1e-8, momentum=0.9),
    dict(lr=0.01, alpha=0.9, eps=1e-8, centered=True, weight_decay=0.1),
    dict(lr=0.01, alpha=0.95, eps=1e-6, centered=True, momentum=0.5),
])
def test_rmsprop_update_kernel(hp, dtype, n_threads, assert_close):
    p0 = _kernel_arrays(dtype)[0]
    grads = [[g[0].astype(dtype)] for g in _grad_sequence(N_STEPS, [p0.shape], seed=2)]
    p = p0.copy()
    sq = np.zeros_like(p)
    buf = np.zeros_like(p) if hp.get("momentum", 0) else None
    gavg = np.zeros_like(p) if hp.get("centered", False) else None
    for (g,) in grads:
        ops.rmsprop_update(p, g, sq, momentum_buffer=buf, grad_avg=gavg, **hp)
    ref_p = [p0.astype(np.float64)]
    ref = RefOptimizer("RMSprop", ref_p, **hp)
    for gs in grads:
        ref.step(gs)
    assert_close(p, ref_p[0], scale=30)
    assert_close(sq, ref.state[0]["sq"], scale=30)
    if buf is not None:
        assert_close(buf, ref.state[0]["buf"], scale=100)
    if gavg is not None:
        assert_close(gavg, ref.state[0]["gavg"], scale=30)


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_update_kernel(decoupled, amsgrad, weight_decay, dtype, n_threads, assert_close):
    p0 = _kernel_arrays(dtype)[0]
    grads = [[g[0].astype(dtype)] for g in _grad_sequence(N_STEPS, [p0.shape], seed=2)]
    p = p0.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    vmax = np.zeros_like(p) if amsgrad else None
    for t, (g,) in enumerate(grads, start=1):
        ops.adam_update(p, g, m, v, step=t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                        weight_decay=weight_decay, decoupled=decoupled, max_exp_avg_sq=vmax)
    ref_p = [p0.astype(np.float64)]
    ref = RefOptimizer("AdamW" if decoupled else "Adam", ref_p, lr=0.01, betas=(0.9, 0.999),
                       eps=1e-8, weight_decay=weight_decay, amsgrad=amsgrad)
    for gs in grads:
        ref.step(gs)
    assert_close(p, ref_p[0], scale=30)
    assert_close(m, ref.state[0]["m"], scale=30)
    assert_close(v, ref.state[0]["v"], scale=30)
    if vmax is not None:
        assert_close(vmax, ref.state[0]["vmax"], scale=30)


@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly"])
def test_optimizer_kernels_accept_any_grad_layout(layout, dtype):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((6, 4)).astype(dtype)
    g = rng.standard_normal((6, 4)).astype(dtype)
    if layout == "strided":
        big = np.zeros((12, 8), dtype)
        big[::2, ::2] = g
        gv = big[::2, ::2]
    elif layout == "fortran":
        gv = np.asfortranarray(g)
    else:
        gv = g.copy()
        gv.setflags(write=False)
    snap = gv.copy()

    def run(grad):
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        ops.adam_update(p, grad, m, v, step=1, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
        q, buf = p0.copy(), np.zeros_like(p0)
        ops.sgd_update(q, grad, buf, lr=0.1, momentum=0.9, first_step=True)
        r, s = p0.copy(), np.zeros_like(p0)
        ops.adagrad_update(r, grad, s, step=1, lr=0.1)
        u, sq = p0.copy(), np.zeros_like(p0)
        ops.rmsprop_update(u, grad, sq, lr=0.1, alpha=0.9, eps=1e-8)
        return p, q, r, u

    for a, b in zip(run(g), run(gv)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(gv, snap)


# ---------------------------------------------------------------------------- threads

@pytest.mark.parametrize("kind,hp", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=0.01)),
])
def test_large_update_same_at_1_and_2_threads(kind, hp, dtype, assert_close):
    shapes = [(300_000,), (1000, 50)]
    grads = _grad_sequence(3, shapes, seed=11)
    init = _initial_params(shapes, seed=12)
    results = {}
    for n in (1, 2):
        with fn.threads(n):
            params, _, _ = _run_fastnn(kind, hp, dtype, grads, init)
        results[n] = [p.data for p in params]
    want = _run_ref(kind, hp, [[g.astype(dtype) for g in gs] for gs in grads],
                    [a.astype(dtype) for a in init])
    for a, b, r in zip(results[1], results[2], want[-1]):
        assert_close(a, b)
        assert_close(a, r, scale=30)


# ---------------------------------------------------------------------------- torch

def _torch_run(torch, kind, hp, grads, init):
    tparams = [torch.tensor(a, dtype=torch.float64) for a in init]
    for t in tparams:
        t.requires_grad_(True)
    topt = getattr(torch.optim, kind)(tparams, **hp)
    traj = []
    for gs in grads:
        for t, g in zip(tparams, gs):
            t.grad = torch.tensor(g, dtype=torch.float64)
        topt.step()
        traj.append([t.detach().numpy().copy() for t in tparams])
    return traj


@pytest.mark.parametrize("kind,hp", CONFIGS, ids=CONFIG_IDS)
def test_trajectory_matches_torch(kind, hp, assert_close):
    torch = pytest.importorskip("torch")
    grads = _grad_sequence(N_STEPS, SHAPES, seed=21)
    init = _initial_params(SHAPES, seed=22)
    _, _, got = _run_fastnn(kind, hp, np.float64, grads, init)
    want = _torch_run(torch, kind, hp, grads, init)
    for t, (g_t, w_t) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(g_t, w_t)):
            assert_close(a, b, scale=10, err_msg=f"step {t + 1}, param {i}")


@pytest.mark.parametrize("kind,hp", CONFIGS[::3], ids=CONFIG_IDS[::3])
def test_trajectory_matches_torch_float32(kind, hp, assert_close):
    torch = pytest.importorskip("torch")
    grads = _grad_sequence(N_STEPS, SHAPES, seed=23)
    grads = [[g.astype(np.float32).astype(np.float64) for g in gs] for gs in grads]
    init = [a.astype(np.float32).astype(np.float64) for a in _initial_params(SHAPES, seed=24)]
    _, _, got = _run_fastnn(kind, hp, np.float32, grads, init)
    want = _torch_run(torch, kind, hp, grads, init)
    for a, b in zip(got[-1], want[-1]):
        assert_close(a, b, scale=30)


def test_reference_matches_torch_sanity():
    """The NumPy reference above is itself validated against torch when available."""
    torch = pytest.importorskip("torch")
    grads = _grad_sequence(10, SHAPES, seed=31)
    init = _initial_params(SHAPES, seed=32)
    for kind, hp in CONFIGS:
        want = _torch_run(torch, kind, hp, grads, init)
        got = _run_ref(kind, hp, grads, init)
        for a, b in zip(got[-1], want[-1]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{kind} {hp}")


@pytest.mark.parametrize("size", [1000, 300_000])   # one thread / the parallel path
@pytest.mark.parametrize("make", [
    lambda ps: fn.optim.Adam(ps, lr=1e-2),
    lambda ps: fn.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: fn.optim.RMSprop(ps, lr=1e-2, centered=True, momentum=0.5),
    lambda ps: fn.optim.Adagrad(ps, lr=0.1),
], ids=["adam", "sgd", "rmsprop", "adagrad"])
def test_checked_step_with_nonfinite_grad_changes_nothing(make, size, n_threads):
    rng = np.random.default_rng(0)
    ps = [fn.nn.Parameter(rng.standard_normal(size).astype(np.float32)) for _ in range(3)]
    opt = make(ps)
    for p in ps:
        p.grad[...] = rng.standard_normal(size).astype(np.float32)
    opt.step()  # a normal step first, so the state is non-trivial
    before = [p.data.copy() for p in ps]
    state_before = opt.state_dict()
    ps[2].grad[size - 1] = np.nan   # the very last element: the last thread's span
    ps[0].grad[0] = np.inf
    # fit's step: the fused kernel scans the gradients before any thread writes
    assert opt._step(check_finite=True) is False
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.data, b)
    after = opt.state_dict()
    assert after["state"][0]["step"] == state_before["state"][0]["step"]
    for i in range(3):
        for k, v in state_before["state"][i].items():
            np.testing.assert_array_equal(after["state"][i][k], v)
    # the plain step follows torch: the NaN goes through
    opt.step()
    assert np.isnan(ps[2].data[size - 1])


def test_fused_check_parallel_path_kernel_level(dtype):
    """The multi-tensor driver with 2 threads: a NaN in one thread's span stops every thread."""
    from fastnn._kernels import _optim
    rng = np.random.default_rng(1)
    sizes = [5, 1000, 37]
    f64 = dtype == np.float64

    def fresh():
        ps = [rng.standard_normal(k).astype(dtype) for k in sizes]
        gs = [rng.standard_normal(k).astype(dtype) for k in sizes]
        ms = [np.zeros(k, dtype) for k in sizes]
        vs = [np.zeros(k, dtype) for k in sizes]
        return ps, gs, ms, vs

    hp = fn.ops.adam_hp(1, 1e-2, 0.9, 0.999, 1e-8, 0.0, False)
    ps, gs, ms, vs = fresh()
    one = [a.copy() for a in ps]
    m1, v1 = [a.copy() for a in ms], [a.copy() for a in vs]
    assert _optim.multi_update(1, one, gs, m1, v1, None, f64, hp, 1, True)
    assert _optim.multi_update(1, ps, gs, ms, vs, None, f64, hp, 2, True)
    for a, b in zip(ps, one):
        np.testing.assert_array_equal(a, b)   # same spans, same arithmetic
    for first in (True, False):                # NaN in the first / the last thread's span
        before = [a.copy() for a in ps]
        gs_bad = [g.copy() for g in gs]
        gs_bad[0 if first else 2][0 if first else -1] = np.inf if first else np.nan
        assert not _optim.multi_update(1, ps, gs_bad, ms, vs, None, f64, hp, 2, True)
        for a, b in zip(ps, before):
            np.testing.assert_array_equal(a, b)
        assert not _optim.all_finite(gs_bad, f64, 2)
    assert _optim.all_finite(gs, f64, 2)


# ---------------------------------------------------------------------------- state storage

@pytest.mark.parametrize("kind,hp", [("Adam", dict(lr=1e-2, amsgrad=True)), ("RMSprop", dict(momentum=0.9, centered=True)),
                                     ("Adagrad", dict(initial_accumulator_value=0.25)),
                                     ("SGD", dict(lr=0.1, momentum=0.9))])
def test_state_views_share_nothing_between_parameters(kind, hp):
    """The state arrays of one name are views of one buffer per dtype: each takes its
    parameter's shape and layout, starts at the rule's initial value, and a step over
    all parameters together is bit-identical to one optimizer per parameter (an
    overlap between neighbouring views would mix their states)."""
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((7, 5)), np.asfortranarray(rng.standard_normal((6, 9))),
              rng.standard_normal(1).reshape(()), rng.standard_normal(17).astype(np.float32),
              np.asfortranarray(rng.standard_normal((3, 33)).astype(np.float32)), rng.standard_normal(31)]
    together = [nn.Parameter(a.copy(order="K")) for a in arrays]
    alone = [nn.Parameter(a.copy(order="K")) for a in arrays]
    opt = getattr(optim, kind)(together, **hp)
    opts = [getattr(optim, kind)([p], **hp) for p in alone]
    init = hp.get("initial_accumulator_value", 0.0)
    for p, st in zip(together, opt.state):
        assert st, "this configuration keeps state"
        for name, arr in st.items():
            assert arr.shape == p.data.shape and arr.dtype == p.data.dtype, name
            assert arr.strides == p.data.strides, name
            np.testing.assert_array_equal(arr, init)
    for _ in range(6):
        for a, b in zip(together, alone):
            a.grad[...] = b.grad[...] = rng.standard_normal(a.data.shape)
        opt.step()
        for o in opts:
            o.step()
    for i, (a, b) in enumerate(zip(together, alone)):
        np.testing.assert_array_equal(a.data, b.data, err_msg=f"param {i}")
        for name in opt.state[i]:
            np.testing.assert_array_equal(opt.state[i][name], opts[i].state[0][name], err_msg=f"{name} of param {i}")
