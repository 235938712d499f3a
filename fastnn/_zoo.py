"""Data and model specs shared by the demo, the tests and the benchmarks.

``load_digits_split`` is the digits protocol's data (scikit-learn's bundled digits,
stratified 80/20 split, standardized on the training part); the specs are the small
CNNs of ``fastnn._baselines`` (LeNet-5 and the demo's digits CNN) and the helpers
build fastnn models from them, loaded with given initial weights.  Public fastnn
APIs only; nothing here imports the benchmark harness.
"""
import numpy as np

__all__ = ["load_digits_split", "fastnn_mlp", "train_fastnn_mlp", "LENET_SPEC",
           "DIGITS_CNN_SPEC", "cnn_layers", "fastnn_cnn"]


def fastnn_mlp(params):
    """fastnn Sequential(Linear, ReLU, ..., Linear) holding a copy of ``params``."""
    from fastnn import nn

    layers = []
    n_layers = len(params) // 2
    state = {}
    for i in range(n_layers):
        out_f, in_f = params[2 * i].shape
        layers.append(nn.Linear(in_f, out_f, dtype=params[2 * i].dtype))
        state[f"{len(layers) - 1}.weight"] = params[2 * i]
        state[f"{len(layers) - 1}.bias"] = params[2 * i + 1]
        if i < n_layers - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    model.load_state_dict(state)
    return model


def load_digits_split(split_seed=0, dtype=np.float32):
    """Digits, stratified 80/20 split (fastnn.data, seed 0), standardized on train.

    Returns X_train, X_test, y_train, y_test (X float32, y int64).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("load_digits_split needs scikit-learn (it provides the digits data), "
                          "which is not installed; pip install scikit-learn") from exc
    from fastnn import data

    X, y = load_digits(return_X_y=True)
    X = X.astype(dtype)
    y = y.astype(np.int64)
    X_train, X_test, y_train, y_test = data.train_test_split(
        X, y, test_size=0.2, stratify=y, seed=split_seed)
    scaler = data.StandardScaler()
    X_train = np.ascontiguousarray(scaler.fit_transform(X_train), dtype=dtype)
    X_test = np.ascontiguousarray(scaler.transform(X_test), dtype=dtype)
    return X_train, X_test, np.asarray(y_train), np.asarray(y_test)


def train_fastnn_mlp(X, y, *, hidden=(128,), epochs=50, batch_size=32, lr=1e-3, seed=0,
                     init_params=None, n_classes=10):
    """fastnn: Sequential(Linear, ReLU, ..., Linear) trained with fit(); returns the model."""
    from fastnn import losses, nn, optim, train

    sizes = (X.shape[1],) + tuple(hidden) + (n_classes,)
    if init_params is not None:
        model = fastnn_mlp(init_params)
    else:
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, seed=None if seed is None else 1000 * seed + i))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers)
    opt = optim.Adam(model.parameters(), lr=lr)
    train.fit(model, losses.CrossEntropyLoss(), opt, X, y, epochs=epochs,
              batch_size=batch_size, seed=seed, progress=False)
    return model



LENET_SPEC = (("conv", 6, 5, 0), ("relu",), ("maxpool", 2), ("conv", 16, 5, 0), ("relu",),
              ("maxpool", 2), ("flatten",), ("linear", 120), ("relu",), ("linear", 84), ("relu",),
              ("linear", 10))
# the demo's CNN for 8x8 digits
DIGITS_CNN_SPEC = (("conv", 16, 3, 1), ("relu",), ("maxpool", 2), ("conv", 32, 3, 1), ("relu",),
                   ("maxpool", 2), ("flatten",), ("linear", 10))


def cnn_layers(nn, spec, params):
    """The layers of a CNN spec (see fastnn._baselines) from ``nn`` (fastnn.nn or
    torch.nn: same names and arguments), sized from the parameter shapes."""
    mods, i = [], 0
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            o, c, k, _ = params[i].shape
            mods.append(nn.Conv2d(c, o, k, padding=layer[3]))
            i += 2
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "maxpool":
            mods.append(nn.MaxPool2d(layer[1]))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        else:
            mods.append(nn.Linear(params[i].shape[1], params[i].shape[0]))
            i += 2
    return mods


def fastnn_cnn(spec, params):
    """A float32 fastnn Sequential for a CNN spec, loaded with ``params``."""
    from fastnn import nn

    model = nn.Sequential(*cnn_layers(nn, spec, params))
    model.load_state_dict(dict(zip(model.state_dict(), params)))
    return model
