"""Whole-model equivalence with PyTorch (skipped when torch is not importable):
weights copied from a torch model give the same logits, loss, gradients and the same
parameters after several optimizer steps."""
import numpy as np
import pytest

from fastnn import losses, nn, optim

SIZES = (10, 32, 16, 5)


def _torch_model(torch, dtype):
    torch.manual_seed(0)
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    return torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(),
        torch.nn.Linear(SIZES[1], SIZES[2]), torch.nn.Tanh(),
        torch.nn.Linear(SIZES[2], SIZES[3]),
    ).to(tdtype)


def _fastnn_model(dtype):
    return nn.Sequential(
        nn.Linear(SIZES[0], SIZES[1], dtype=dtype, seed=1), nn.ReLU(),
        nn.Linear(SIZES[1], SIZES[2], dtype=dtype, seed=2), nn.Tanh(),
        nn.Linear(SIZES[2], SIZES[3], dtype=dtype, seed=3),
    )


def _copy_weights(tmodel, model):
    sd = {k: v.detach().cpu().numpy().copy() for k, v in tmodel.state_dict().items()}
    model.load_state_dict(sd)
    return sd


def _data(dtype, n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[3], n)
    return X, y


def test_state_dict_keys_match_torch(dtype):
    torch = pytest.importorskip("torch")
    tmodel = _torch_model(torch, dtype)
    model = _fastnn_model(dtype)
    assert list(model.state_dict()) == list(tmodel.state_dict())
    for k, v in tmodel.state_dict().items():
        assert model.state_dict()[k].shape == tuple(v.shape)


def test_forward_loss_and_gradients_match_torch(dtype, n_threads, assert_close):
    torch = pytest.importorskip("torch")
    tmodel = _torch_model(torch, dtype)
    model = _fastnn_model(dtype)
    _copy_weights(tmodel, model)
    X, y = _data(dtype)

    tx = torch.tensor(X, requires_grad=True)
    tlogits = tmodel(tx)
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(y))
    tloss.backward()

    ce = losses.CrossEntropyLoss()
    model.zero_grad()
    logits = model(X)
    loss = ce(logits, y)
    gx = model.backward(ce.backward())

    assert_close(logits, tlogits.detach().numpy().astype(np.float64), scale=4)
    assert_close(loss, float(tloss.detach()), dtype=dtype, scale=4)
    assert_close(gx, tx.grad.numpy().astype(np.float64), scale=4)
    tgrads = {k: p.grad.numpy() for k, p in tmodel.named_parameters()}
    for k, p in model.named_parameters():
        assert_close(p.grad, tgrads[k].astype(np.float64), scale=4, err_msg=k)


def test_mse_gradients_match_torch(assert_close):
    torch = pytest.importorskip("torch")
    tmodel = _torch_model(torch, np.float64)
    model = _fastnn_model(np.float64)
    _copy_weights(tmodel, model)
    X, _ = _data(np.float64)
    Y = np.random.default_rng(5).standard_normal((len(X), SIZES[3]))
    tloss = torch.nn.functional.mse_loss(tmodel(torch.tensor(X)), torch.tensor(Y))
    tloss.backward()
    mse = losses.MSELoss()
    model.zero_grad()
    loss = mse(model(X), Y)
    model.backward(mse.backward())
    assert_close(loss, float(tloss.detach()), dtype=np.float64)
    tgrads = {k: p.grad.numpy() for k, p in tmodel.named_parameters()}
    for k, p in model.named_parameters():
        assert_close(p.grad, tgrads[k], err_msg=k)


@pytest.mark.parametrize("kind,hp", [
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01)),
])
def test_training_steps_match_torch(kind, hp, assert_close):
    torch = pytest.importorskip("torch")
    tmodel = _torch_model(torch, np.float64)
    model = _fastnn_model(np.float64)
    _copy_weights(tmodel, model)
    topt = getattr(torch.optim, kind)(tmodel.parameters(), **hp)
    opt = getattr(optim, kind)(model.parameters(), **hp)
    ce = losses.CrossEntropyLoss()
    for step in range(5):
        X, y = _data(np.float64, seed=step)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(X)), torch.tensor(y))
        tloss.backward()
        topt.step()
        opt.zero_grad()
        loss = ce(model(X), y)
        model.backward(ce.backward())
        opt.step()
        assert_close(loss, float(tloss.detach()), dtype=np.float64, scale=100, err_msg=f"step {step}")
    tsd = tmodel.state_dict()
    for k, v in model.state_dict().items():
        assert_close(v, tsd[k].numpy(), scale=1000, err_msg=k)


def test_adam_five_steps_float32_match_torch(assert_close):
    torch = pytest.importorskip("torch")
    tmodel = _torch_model(torch, np.float32)
    model = _fastnn_model(np.float32)
    _copy_weights(tmodel, model)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    ce = losses.CrossEntropyLoss()
    for step in range(5):
        X, y = _data(np.float32, seed=step)
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(torch.tensor(X)), torch.tensor(y)).backward()
        topt.step()
        opt.zero_grad()
        ce(model(X), y)
        model.backward(ce.backward())
        opt.step()
    tsd = tmodel.state_dict()
    for k, v in model.state_dict().items():
        # Adam normalises the step: near-zero grads can flip an update's sign in float32
        np.testing.assert_allclose(v, tsd[k].numpy(), rtol=1e-4, atol=2e-5, err_msg=k)


def test_weights_move_back_to_torch(assert_close):
    torch = pytest.importorskip("torch")
    model = _fastnn_model(np.float64)
    tmodel = _torch_model(torch, np.float64)
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    X, _ = _data(np.float64)
    assert_close(model(X), tmodel(torch.tensor(X)).detach().numpy())
