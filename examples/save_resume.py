"""Train, checkpoint, get interrupted, resume, save, reload and export a model.

1. ``fit(..., checkpoint=Checkpoint(path), resume=True)`` is interrupted in the
   middle of epoch 4 (here by a callback raising KeyboardInterrupt, as Ctrl-C
   would; a ``kill -9`` works the same way);
2. the same call, run again, continues from the checkpoint after epoch 3 and ends
   with exactly the weights and history of a run that was never interrupted;
3. ``fastnn.io.save`` writes the model (weights + architecture) to one
   safetensors file and ``fastnn.io.load`` rebuilds it;
4. ``fastnn.io.export_onnx`` writes an ONNX graph (needs ``pip install 'fastnn-cpu[onnx]'``).
"""
import os
import tempfile

import numpy as np

import fastnn as fn
from fastnn import io, losses, nn, optim, train


def make_data(n=600, d=10, k=3, seed=0):
    r = np.random.default_rng(seed)
    centers = r.standard_normal((k, d)) * 2.0
    y = r.integers(0, k, n)
    X = (centers[y] + r.standard_normal((n, d))).astype(np.float32)
    return X, y


def run(X, y, folder, interrupt_at_step=None, checkpoint=True):
    """One fit call: the same arguments every time, so a resume continues it exactly."""
    model = nn.Sequential(nn.Linear(10, 32, seed=1), nn.ReLU(), nn.Dropout(0.2, seed=2), nn.Linear(32, 3, seed=3))
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.schedules.StepDecay(opt, step_size=3, gamma=0.5)
    callbacks = [train.CSVLogger(os.path.join(folder, "log.csv"))]
    if interrupt_at_step is not None:
        def interrupt(step, logs):
            if step == interrupt_at_step:
                raise KeyboardInterrupt("simulated Ctrl-C")
        callbacks.append(train.LambdaCallback(on_batch_end=interrupt))
    ckpt = train.Checkpoint(os.path.join(folder, "run.ckpt.safetensors"), every=1) if checkpoint else None
    hist = train.fit(model, losses.CrossEntropyLoss(), opt, X[:500], y[:500], epochs=8, batch_size=32, seed=0,
                     validation_data=(X[500:], y[500:]), scheduler=sched, callbacks=callbacks, progress=False,
                     checkpoint=ckpt, resume=checkpoint)
    return model, hist


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(sa[k].tobytes() == sb[k].tobytes() for k in sa)


def main():
    X, y = make_data()
    with tempfile.TemporaryDirectory() as folder:
        reference, ref_hist = run(X, y, folder, checkpoint=False)

        steps_per_epoch = 16  # 500 samples in batches of 32
        try:
            run(X, y, folder, interrupt_at_step=3 * steps_per_epoch + 5)
        except KeyboardInterrupt:
            parts = io.load_checkpoint(os.path.join(folder, "run.ckpt.safetensors"))
            print(f"interrupted in epoch 4; the checkpoint holds {parts['fit']['run']['epoch']} finished epochs")

        model, hist = run(X, y, folder)  # the same call again: resumes
        strip = lambda h: {k: v for k, v in h.history.items() if k != "time"}  # noqa: E731
        print(f"resumed to epoch {len(hist.epoch)}: weights bit-identical to an uninterrupted run: "
              f"{same_weights(model, reference)}, history identical: {strip(hist) == strip(ref_hist)}")
        with open(os.path.join(folder, "log.csv")) as f:
            print(f"log.csv has {len(f.readlines()) - 1} rows (one per epoch, none repeated)")

        path = os.path.join(folder, "model.safetensors")
        io.save(model, path)
        loaded = io.load(path)
        model.eval()
        loaded.eval()
        same = np.array_equal(model(X[500:]), loaded(X[500:]))
        acc = train.evaluate(loaded, losses.CrossEntropyLoss(), X[500:], y[500:])["accuracy"]
        print(f"saved and reloaded: same predictions: {same}; validation accuracy {acc:.2f}")

        try:
            io.export_onnx(loaded, os.path.join(folder, "model.onnx"), input_shape=(None, 10))
            print("exported to ONNX: model.onnx")
        except ImportError as e:
            print(f"ONNX export skipped: {e}")
    print(f"fastnn {fn.__version__}")


if __name__ == "__main__":
    main()
