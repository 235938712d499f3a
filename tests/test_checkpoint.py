"""Checkpoints: save_checkpoint/load_checkpoint, fit(checkpoint=..., resume=True) after an
exception or Ctrl-C, the call fingerprint, corrupted checkpoints (issue 13).

The SIGKILL tests (a real crash, also inside a checkpoint write) are in test_resume.py.
"""
import os

import numpy as np
import pytest

from fastnn import io, losses, nn, optim, train
from fastnn.io import _format


def _problem(dtype=np.float32, n=96, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, 6)).astype(dtype)
    y = r.integers(0, 3, n)
    model = nn.Sequential(nn.Linear(6, 12, dtype=dtype, seed=1), nn.ReLU(), nn.Dropout(0.25, seed=2),
                          nn.BatchNorm1d(12, dtype=dtype), nn.Linear(12, 3, dtype=dtype, seed=3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.schedules.StepDecay(opt, step_size=2, gamma=0.5)
    return X, y, model, opt, sched


class Interrupt:
    """Raises ``exc`` at one global step (an interrupted run)."""

    def __init__(self, at, exc=KeyboardInterrupt):
        self.at, self.exc = at, exc

    def on_batch_end(self, step, logs):
        if step == self.at:
            raise self.exc("interrupted")


def _fit(path, dtype=np.float32, interrupt=None, every=1, every_steps=None, epochs=5, batch_size=16, seed=4,
         resume=True, es=True, step_schedule=False, **kw):
    X, y, model, opt, sched = _problem(dtype)
    if step_schedule:
        sched = optim.schedules.ExponentialDecay(opt, 0.99, interval="step")
    cbs = [interrupt] if interrupt is not None else []
    ckpt = None if path is None else train.Checkpoint(path, every=every, every_steps=every_steps)
    h = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=batch_size, seed=seed,
                  validation_data=(X[:24], y[:24]), scheduler=sched,
                  early_stopping=train.EarlyStopping(patience=50) if es else None,
                  callbacks=cbs, progress=False, checkpoint=ckpt, resume=resume and ckpt is not None, **kw)
    return model, opt, h


def _history(h):
    return {k: v for k, v in h.history.items() if k != "time"}, h.epoch


def _assert_same_run(a, b):
    (ma, oa, ha), (mb, ob, hb) = a, b
    sa, sb = ma.state_dict(), mb.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].tobytes() == sb[k].tobytes(), k
    assert _history(ha) == _history(hb)
    assert oa.step_count == ob.step_count and oa.lr == ob.lr


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("every_steps, at", [(None, 13), (None, 6), (4, 17), (4, 11)])
def test_resume_after_interrupt_is_bit_identical(tmp_path, dtype, every_steps, at, n_threads):
    ref = _fit(None, dtype)
    path = tmp_path / "ckpt.st"
    with pytest.raises(KeyboardInterrupt):
        _fit(path, dtype, Interrupt(at), every_steps=every_steps)
    assert path.exists()
    resumed = _fit(path, dtype, every_steps=every_steps)
    _assert_same_run(ref, resumed)


def test_resume_after_exception_with_step_schedule_and_every_two_epochs(tmp_path):
    ref = _fit(None, step_schedule=True)
    path = tmp_path / "ckpt.st"
    with pytest.raises(RuntimeError):
        _fit(path, interrupt=Interrupt(27, RuntimeError), every=2, step_schedule=True)
    _assert_same_run(ref, _fit(path, every=2, step_schedule=True))


def test_resume_without_a_file_starts_fresh_and_a_finished_run_is_a_no_op(tmp_path):
    ref = _fit(None)
    path = tmp_path / "ckpt.st"
    first = _fit(path)  # resume=True, no file yet: a fresh run, checkpointed
    _assert_same_run(ref, first)
    again = _fit(path)  # the run is complete: nothing more is trained
    _assert_same_run(ref, again)


def test_more_epochs_continue_a_finished_run(tmp_path):
    ref = _fit(None, epochs=7)
    path = tmp_path / "ckpt.st"
    _fit(path, epochs=4)
    _assert_same_run(ref, _fit(path, epochs=7))


def test_early_stopping_state_is_resumed(tmp_path):
    def run(path, interrupt=None):
        X, y, model, opt, _ = _problem()
        es = train.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)  # stops at epoch 2
        cbs = [interrupt] if interrupt else []
        h = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=10, batch_size=16, seed=1,
                      validation_data=(X, y), early_stopping=es, callbacks=cbs, progress=False,
                      checkpoint=None if path is None else train.Checkpoint(path), resume=path is not None)
        return model, h, es

    m_ref, h_ref, es_ref = run(None)
    assert es_ref.stopped_epoch == 2
    path = tmp_path / "c.st"
    with pytest.raises(KeyboardInterrupt):
        run(path, Interrupt(14))  # during epoch 3 (index 2), after two checkpoints
    m, h, es = run(path)
    assert es.stopped_epoch == 2 and es.best_epoch == es_ref.best_epoch and es.wait == es_ref.wait
    assert _history(h) == _history(h_ref)
    assert all(np.array_equal(a, b) for a, b in zip(m.state_dict().values(), m_ref.state_dict().values()))


@pytest.mark.parametrize("change, msg", [
    ({"batch_size": 8}, r"batch_size: 16 in the checkpoint, 8 now"),
    ({"seed": 5}, r"seed: 4 in the checkpoint, 5 now"),
    ({"shuffle": False}, r"shuffle: True in the checkpoint, False now"),
])
def test_checkpoint_from_another_call_is_refused(tmp_path, change, msg):
    path = tmp_path / "c.st"
    _fit(path, epochs=2)
    X, y, model, opt, sched = _problem()
    snap = model.state_dict()
    kw = dict(epochs=3, batch_size=16, seed=4, shuffle=True)
    kw.update(change)
    with pytest.raises(ValueError, match=msg):
        train.fit(model, losses.CrossEntropyLoss(), opt, X, y, validation_data=(X[:24], y[:24]), scheduler=sched,
                  early_stopping=train.EarlyStopping(patience=50), progress=False,
                  checkpoint=train.Checkpoint(path), resume=True, **kw)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in snap.items())
    assert opt.step_count == 0


def test_checkpoint_for_other_data_or_model_is_refused(tmp_path):
    path = tmp_path / "c.st"
    _fit(path, epochs=1)
    X, y, model, opt, sched = _problem(n=80)
    with pytest.raises(ValueError, match=r"X_shape: \[96, 6\] in the checkpoint, \[80, 6\] now"):
        train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=2, batch_size=16, seed=4, scheduler=sched,
                  early_stopping=train.EarlyStopping(patience=50), progress=False,
                  checkpoint=train.Checkpoint(path), resume=True)
    X, y, _, _, _ = _problem()
    other = nn.Sequential(nn.Linear(6, 3, seed=0))
    with pytest.raises(ValueError, match="model:"):
        train.fit(other, losses.CrossEntropyLoss(), optim.Adam(other.parameters()), X, y, epochs=2,
                  batch_size=16, seed=4, progress=False, checkpoint=train.Checkpoint(path), resume=True)


def test_resume_false_overwrites_and_resume_needs_a_checkpoint(tmp_path):
    path = tmp_path / "c.st"
    _fit(path, epochs=1, seed=9)
    ref = _fit(None, epochs=2)
    _assert_same_run(ref, _fit(path, epochs=2, resume=False))
    X, y, model, opt, _ = _problem()
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        train.fit(model, losses.CrossEntropyLoss(), opt, X, y, resume=True, progress=False)
    with pytest.raises(TypeError, match="checkpoint must be a fastnn.train.Checkpoint"):
        train.fit(model, losses.CrossEntropyLoss(), opt, X, y, checkpoint=str(path), progress=False)
    with pytest.raises(ValueError, match="every must be a positive integer|every"):
        train.Checkpoint(path, every=0)


def test_corrupted_checkpoint_is_refused_and_model_unchanged(tmp_path):
    path = tmp_path / "c.st"
    _fit(path, epochs=1)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x04
    path.write_bytes(bytes(data))
    X, y, model, opt, sched = _problem()
    snap = model.state_dict()
    with pytest.raises(ValueError, match=r"c.st.*corrupted"):
        train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=2, batch_size=16, seed=4, scheduler=sched,
                  progress=False, checkpoint=train.Checkpoint(path), resume=True)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in snap.items())
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"c.st.*empty"):
        io.load_checkpoint(path)


# ------------------------------------------------------------- save_checkpoint / load_checkpoint

def test_save_and_load_checkpoint_for_a_custom_loop(tmp_path):
    X, y, model, opt, sched = _problem()
    loss = losses.CrossEntropyLoss()

    def steps(k):
        for _ in range(k):
            model.zero_grad()
            loss(model(X), y)
            model.backward(loss.backward())
            opt.step()
        sched.step()

    steps(3)
    gen = np.random.default_rng(3)
    path = tmp_path / "loop.st"
    io.save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=3, rng=gen.bit_generator.state,
                       extra={"note": "hi", "pair": (1, 2.5), "by_int": {7: np.arange(3)}, "none": None})
    steps(2)
    expected = model.state_dict()

    _, _, model2, opt2, sched2 = _problem()
    model, opt, sched = model2, opt2, sched2
    parts = io.load_checkpoint(path, model=model, optimizer=opt, scheduler=sched)
    assert parts["epoch"] == 3
    assert parts["extra"]["note"] == "hi" and parts["extra"]["pair"] == (1, 2.5)
    assert np.array_equal(parts["extra"]["by_int"][7], np.arange(3)) and parts["extra"]["none"] is None
    assert parts["rng"] == gen.bit_generator.state
    assert opt.step_count == 3 and sched.t == 1
    steps(2)
    got = model.state_dict()
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


def test_load_checkpoint_restores_all_or_nothing(tmp_path):
    _, _, model, opt, _ = _problem()
    path = tmp_path / "c.st"
    io.save_checkpoint(path, model=model, optimizer=opt)
    other = nn.Sequential(nn.Linear(6, 12, seed=7), nn.ReLU(), nn.Dropout(0.25, seed=2),
                          nn.BatchNorm1d(12), nn.Linear(12, 3, seed=8))
    wrong_opt = optim.Adam([nn.Parameter(np.zeros(3, np.float32))])
    snap = other.state_dict()
    with pytest.raises(ValueError, match="different parameter list"):
        io.load_checkpoint(path, model=other, optimizer=wrong_opt)
    assert all(np.array_equal(v, other.state_dict()[k]) for k, v in snap.items())  # rolled back
    with pytest.raises(ValueError, match="has no part 'scheduler'"):
        io.load_checkpoint(path, scheduler=optim.schedules.StepDecay(opt, 1))
    with pytest.raises(TypeError, match="cannot store a object|cannot store"):
        io.save_checkpoint(path, thing=object())
    with pytest.raises(ValueError, match="at least one part"):
        io.save_checkpoint(path)


def test_checkpoint_write_interrupted_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "c.st"
    _fit(path, epochs=2)
    old = path.read_bytes()
    calls = []

    def crash(f, data):
        calls.append(1)
        f.write(data[: len(data) // 3])
        raise KeyboardInterrupt

    monkeypatch.setattr(_format, "_write_hook", crash)
    with pytest.raises(KeyboardInterrupt):
        _fit(path, epochs=3)  # resumes, trains epoch 3, is interrupted while writing its checkpoint
    assert calls and path.read_bytes() == old
    assert os.listdir(tmp_path) == ["c.st"]
    monkeypatch.setattr(_format, "_write_hook", None)
    _assert_same_run(_fit(None, epochs=3), _fit(path, epochs=3))


class Doubler(nn.Module):
    """A user module (not registered): checkpoints need no registration."""

    def forward(self, x):
        self._x = x
        return 2 * x

    def backward(self, g):
        return 2 * g


def test_fit_checkpoints_a_model_with_an_unregistered_module(tmp_path):
    def run(path, interrupt=None):
        X, y, _, _, _ = _problem()
        model = nn.Sequential(nn.Linear(6, 8, seed=1), Doubler(), nn.ReLU(), nn.Linear(8, 3, seed=2))
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        h = train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=3, batch_size=16,
                      seed=np.random.default_rng(8), callbacks=[interrupt] if interrupt else [], progress=False,
                      checkpoint=None if path is None else train.Checkpoint(path), resume=path is not None)
        return model, opt, h

    ref = run(None)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "c.st", Interrupt(8))
    _assert_same_run(ref, run(tmp_path / "c.st"))
