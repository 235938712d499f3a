"""Learning-rate schedules (issue 4 part): closed forms, torch equivalence, fit integration."""
import math

import numpy as np
import pytest

import fastnn as fn
from fastnn.optim import schedules as S


def _opt(lr=0.1):
    return fn.optim.SGD([fn.nn.Parameter(np.zeros(3))], lr=lr)


def _trajectory(sched, n, metrics=None):
    out = []
    for i in range(n):
        sched.step(metrics[i]) if metrics is not None else sched.step()
        out.append(sched.optimizer.lr)
    return out


def test_closed_forms():
    np.testing.assert_allclose(_trajectory(S.StepDecay(_opt(), 3, 0.5), 7),
                               [0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    np.testing.assert_allclose(_trajectory(S.ExponentialDecay(_opt(), 0.9), 3), [0.09, 0.081, 0.0729])
    opt = _opt()
    sched = S.PolynomialDecay(opt, alpha=1.0, beta=2.0, power=0.5)
    assert opt.lr == pytest.approx(1 / math.sqrt(2))
    np.testing.assert_allclose(_trajectory(sched, 3), [1 / math.sqrt(3), 0.5, 1 / math.sqrt(5)])
    cos = _trajectory(S.CosineDecay(_opt(), t_max=4, eta_min=0.01), 4)
    np.testing.assert_allclose(cos, [0.01 + 0.09 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)])


TORCH_CASES = [
    ("step", lambda o: S.StepDecay(o, 3, 0.5), lambda t, o: t.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    ("exp", lambda o: S.ExponentialDecay(o, 0.8), lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, 0.8)),
    ("cos", lambda o: S.CosineDecay(o, 5, 0.001), lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, 5, 0.001)),
]


@pytest.mark.parametrize("name,ours,theirs", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_schedulers(name, ours, theirs):
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    tsched = theirs(torch, topt)
    sched = ours(_opt(0.1))
    got, want = [], []
    for _ in range(12):
        topt.step()
        tsched.step()
        want.append(topt.param_groups[0]["lr"])
        got.append(sched.step())
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_reduce_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.9, 0.95, 0.91, 0.9, 0.89, 0.95, 0.96, 0.97, 0.98, 0.5, 0.6, 0.7, 0.8]
    for kw in ({"patience": 2}, {"patience": 1, "cooldown": 2, "factor": 0.5}, {"patience": 0, "min_lr": 0.02}):
        topt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
        tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
        want = []
        for m in metrics:
            topt.step()
            tsched.step(m)
            want.append(topt.param_groups[0]["lr"])
        got = _trajectory(S.ReduceOnPlateau(_opt(0.1), **kw), len(metrics), metrics)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=str(kw))


def test_bad_arguments():
    with pytest.raises(ValueError):
        S.StepDecay(_opt(), 0)
    with pytest.raises(ValueError):
        S.ExponentialDecay(_opt(), float("nan"))
    with pytest.raises(ValueError):
        S.PolynomialDecay(_opt(), 1.0, 0.0)
    with pytest.raises(ValueError):
        S.ReduceOnPlateau(_opt(), factor=1.0)
    with pytest.raises(ValueError):
        S.ReduceOnPlateau(_opt(), mode="up")
    with pytest.raises(ValueError):
        S.CosineDecay(_opt(), 5, interval="batch")
    with pytest.raises(TypeError):
        S.StepDecay(object(), 3)


def test_fit_steps_per_epoch_and_per_step(rng):
    X = rng.standard_normal((64, 3))
    y = rng.integers(0, 2, 64)
    for interval, steps in (("epoch", 3), ("step", 3 * 4)):
        model = fn.nn.Sequential(fn.nn.Linear(3, 2, dtype=np.float64, seed=0))
        opt = fn.optim.SGD(model.parameters(), lr=0.1)
        sched = S.ExponentialDecay(opt, 0.5, interval=interval)
        fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=16, progress=False,
                     scheduler=sched)
        assert sched.t == steps
        assert opt.lr == pytest.approx(0.1 * 0.5 ** steps)


def test_fit_feeds_val_loss_to_reduce_on_plateau(rng):
    X = rng.standard_normal((64, 3))
    y = rng.integers(0, 2, 64)
    model = fn.nn.Sequential(fn.nn.Linear(3, 2, dtype=np.float64, seed=0))
    opt = fn.optim.SGD(model.parameters(), lr=0.0)            # nothing learns: a plateau
    sched = S.ReduceOnPlateau(opt, patience=1, factor=0.5)
    opt.lr = 0.0
    h = fn.train.fit(model, fn.losses.CrossEntropyLoss(), opt, X, y, epochs=4, batch_size=16, progress=False,
                     scheduler=sched, validation_data=(X, y))
    assert sched.best == pytest.approx(h.history["val_loss"][0])
    assert sched.t == 4
