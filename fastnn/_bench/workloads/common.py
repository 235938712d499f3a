"""PyTorch and scikit-learn counterparts of the fastnn models the workloads time."""
import numpy as np

from fastnn._zoo import cnn_layers

from ..harness import torch_module

__all__ = ["torch_mlp", "torch_train_epoch", "torch_predict", "sklearn_mlp", "torch_cnn"]


def torch_mlp(params):
    """torch Sequential(Linear, ReLU, ..., Linear) holding a copy of ``params``."""
    torch = torch_module(required=True)
    layers = []
    n_layers = len(params) // 2
    state = {}
    for i in range(n_layers):
        out_f, in_f = params[2 * i].shape
        layers.append(torch.nn.Linear(in_f, out_f))
        state[f"{len(layers) - 1}.weight"] = torch.from_numpy(params[2 * i].copy())
        state[f"{len(layers) - 1}.bias"] = torch.from_numpy(params[2 * i + 1].copy())
        if i < n_layers - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    model.load_state_dict(state)
    return model


def torch_train_epoch(model, opt, Xt, yt, batch_size, generator):
    """A PyTorch eager epoch: shuffled minibatches, cross-entropy, optimizer step."""
    torch = torch_module(required=True)
    F = torch.nn.functional
    n = Xt.shape[0]
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        xb = Xt.index_select(0, idx)
        yb = yt.index_select(0, idx)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()


def torch_predict(model, X):
    torch = torch_module(required=True)
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(X))).argmax(dim=1).numpy()


def sklearn_mlp(hidden, batch_size, lr, max_iter, seed):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=tuple(hidden), activation="relu", solver="adam",
                         alpha=0.0, batch_size=batch_size, learning_rate_init=lr,
                         max_iter=max_iter, shuffle=True, random_state=seed, tol=0.0,
                         n_iter_no_change=10 ** 9)



def torch_cnn(spec, params):
    torch = torch_module(required=True)
    model = torch.nn.Sequential(*cnn_layers(torch.nn, spec, params))
    with torch.no_grad():
        for p, v in zip(model.parameters(), params):
            p.copy_(torch.from_numpy(np.asarray(v)))
    return model


def mnist_shaped(n_samples, sizes, seed):
    """(X, y, initial MLP params): standard-normal float32 samples of ``sizes[0]`` features,
    labels 0..sizes[-1]-1 from a fixed random linear teacher (so an epoch visibly learns)."""
    from fastnn import _baselines as B

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, sizes[0]), dtype=np.float32)
    teacher = rng.standard_normal((sizes[0], sizes[-1])).astype(np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return X, y, B.mlp_init(tuple(sizes), seed=seed)
