"""``python -m fastnn demo``: train on real data, compare with NumPy in the same process.

The job: scikit-learn's bundled handwritten digits (1,797 8x8 images), a stratified
80/20 split (seed 0), standardized features, an MLP 64-128-10 with ReLU trained with
cross-entropy and Adam (lr 1e-3, batch 32, 50 epochs); ``--model cnn`` trains a small
CNN on the images as 1x8x8 (conv3x3 16, maxpool, conv3x3 32, maxpool, fc 10) instead.  fastnn and the NumPy baseline
(``fastnn._baselines``) start from the same initial weights and run at the same
thread count; the demo prints test accuracy, training time and the speed-up.
"""
import argparse
import sys
import time

import numpy as np

DEMO_EXTRA_HINT = "pip install 'fastnn-cpu[demo]'"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer. Received: {text!r}")
    return value


def _run_mlp(args, data, log):
    from . import _baselines as B
    from ._zoo import train_fastnn_mlp

    X_train, X_test, y_train, y_test = data
    hidden = (128,)
    sizes = (X_train.shape[1],) + hidden + (10,)
    init = B.mlp_init(sizes, seed=args.seed)
    log(f"model: MLP {'-'.join(map(str, sizes))} (ReLU), cross-entropy, Adam lr 1e-3, "
        f"batch 32, {args.epochs} epochs, seed {args.seed}, {args.threads} thread(s)")

    t0 = time.perf_counter()
    model = train_fastnn_mlp(X_train, y_train, hidden=hidden, epochs=args.epochs,
                             batch_size=32, lr=1e-3, seed=args.seed, init_params=init)
    t_fastnn = time.perf_counter() - t0
    acc_fastnn = float(np.mean(model.forward(X_test).argmax(axis=1) == y_test))
    log(f"  fastnn          test accuracy {acc_fastnn:.4f}   training time {t_fastnn:6.2f} s")

    t0 = time.perf_counter()
    params = B.numpy_mlp_fit(X_train, y_train, hidden=hidden, epochs=args.epochs,
                             batch_size=32, lr=1e-3, seed=args.seed, n_classes=10,
                             init_params=init)
    t_numpy = time.perf_counter() - t0
    acc_numpy = float(np.mean(B.numpy_mlp_predict(params, X_test) == y_test))
    log(f"  NumPy baseline  test accuracy {acc_numpy:.4f}   training time {t_numpy:6.2f} s")
    return {"accuracy": acc_fastnn, "time_s": t_fastnn,
            "numpy_accuracy": acc_numpy, "numpy_time_s": t_numpy}


def _run_cnn(args, data, log):
    from . import _baselines as B
    from ._zoo import DIGITS_CNN_SPEC, fastnn_cnn
    from . import losses, optim, train

    X_train, X_test, y_train, y_test = (a.reshape(-1, 1, 8, 8) if a.ndim == 2 else a for a in data)
    init = B.cnn_init(DIGITS_CNN_SPEC, (1, 8, 8), seed=args.seed)
    log(f"model: CNN conv3x3 1->16, relu, maxpool2, conv3x3 16->32, relu, maxpool2, fc 128->10, "
        f"cross-entropy, Adam lr 1e-3, batch 32, {args.epochs} epochs, seed {args.seed}, "
        f"{args.threads} thread(s)")

    t0 = time.perf_counter()
    model = fastnn_cnn(DIGITS_CNN_SPEC, init)
    train.fit(model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-3),
              X_train, y_train, epochs=args.epochs, batch_size=32, seed=args.seed, progress=False)
    t_fastnn = time.perf_counter() - t0
    acc_fastnn = float(np.mean(model.forward(X_test).argmax(axis=1) == y_test))
    log(f"  fastnn          test accuracy {acc_fastnn:.4f}   training time {t_fastnn:6.2f} s")

    t0 = time.perf_counter()
    cnn = B.NumpyCNN(DIGITS_CNN_SPEC, init, lr=1e-3, seed=args.seed)
    for _ in range(args.epochs):
        cnn.fit_epoch(X_train, y_train, 32)
    t_numpy = time.perf_counter() - t0
    acc_numpy = float(np.mean(cnn.predict(X_test) == y_test))
    log(f"  NumPy baseline  test accuracy {acc_numpy:.4f}   training time {t_numpy:6.2f} s")
    return {"accuracy": acc_fastnn, "time_s": t_fastnn,
            "numpy_accuracy": acc_numpy, "numpy_time_s": t_numpy}


MODELS = {"mlp": _run_mlp, "cnn": _run_cnn}
DEFAULT_EPOCHS = {"mlp": 50, "cnn": 15}


def main(argv=None):
    from fastnn._engine.config import get_num_threads, threads
    from fastnn._version import __version__

    parser = argparse.ArgumentParser(
        prog="python -m fastnn demo",
        description="Train a network on scikit-learn's handwritten digits with fastnn and "
                    "with a NumPy implementation of the same training run; print test "
                    "accuracy, training time and the speed-up.")
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp",
                        help="network to train (default mlp)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="training epochs (default 50 for mlp, 15 for cnn)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="threads for fastnn and for NumPy's BLAS "
                             f"(default: fastnn's setting, now {get_num_threads()})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and the shuffling (default 0); "
                             "the train/test split always uses seed 0")
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = get_num_threads()
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS[args.model]

    def log(msg=""):
        print(msg, flush=True)

    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        print("fastnn demo: the digits data set comes with scikit-learn, which is not "
              f"installed.\nInstall the demo extra and run it again:\n    {DEMO_EXTRA_HINT}",
              file=sys.stderr)
        return 1
    from threadpoolctl import threadpool_limits

    from ._zoo import load_digits_split

    data = load_digits_split(split_seed=0)
    X_train, X_test = data[0], data[1]
    log(f"fastnn {__version__} demo: handwritten digits (scikit-learn load_digits, "
        f"8x8 images, 10 classes)")
    log(f"data: {len(X_train)} train / {len(X_test)} test images, stratified split (seed 0), "
        f"standardized")
    with threads(args.threads), threadpool_limits(limits=args.threads):
        res = MODELS[args.model](args, data, log)
    speedup = res["numpy_time_s"] / res["time_s"]
    log(f"speed-up over NumPy (same training run, same process, {args.threads} thread(s)): "
        f"{speedup:.1f}x")
    return 0
