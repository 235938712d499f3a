"""Workload names and how to build each one (full size, or small with ``quick``).

The default set (``workload_names``) is the ratio table of ``python -m fastnn bench``;
the extra set (normalization, dropout, the element-wise losses and the data-parallel
MLP over MPI ranks) runs with
``--only`` (a name, a prefix or a family of :data:`FAMILIES`) or ``--all``.
"""
from .workloads.conv import CONV_SHAPES, CONV_SHAPES_QUICK, ConvStep, LeNetStep
from .workloads.dense import DENSE_SHAPES, DENSE_SHAPES_QUICK, DenseStep
from .workloads.elementwise import LOSSES, DropoutStep, LossStep
from .workloads.mlp import Digits, MLPEpoch
from .workloads.norm import NORM_WORKLOADS, NormStep
from .workloads.optim import OPTIMIZERS, OptimizerStep
from .workloads.ranks import DataParallelMLP
from .workloads.rnn import LSTM_SHAPE, LSTM_SHAPE_QUICK, LSTMStep

__all__ = ["FAMILIES", "workload_names", "extra_workload_names", "all_workload_names",
           "select", "make_workload"]


def _dense_name(shape):
    return "dense_b{}_{}x{}".format(*shape)


def _conv_name(shape):
    return "conv_n{}_{}x{}_{}_k{}p{}".format(*shape)


def _lstm_name(shape):
    return "lstm_t{1}_b{0}_{2}x{3}".format(*shape)


def _families(quick):
    dense = DENSE_SHAPES_QUICK if quick else DENSE_SHAPES
    conv = CONV_SHAPES_QUICK if quick else CONV_SHAPES
    return {
        "optim": list(OPTIMIZERS),
        "dense": [_dense_name(s) for s in dense],
        "mlp": ["mlp_epoch", "digits"],
        "conv": [_conv_name(s) for s in conv] + ["lenet_step"],
        "rnn": [_lstm_name(LSTM_SHAPE_QUICK if quick else LSTM_SHAPE)],
        "norm": [f"norm_{k}" for k in NORM_WORKLOADS],
        "elementwise": ["dropout"] + [f"loss_{k}" for k in LOSSES],
        "distributed": ["mlp_ranks"],
    }


FAMILIES = tuple(_families(False))
_DEFAULT_FAMILIES = ("optim", "dense", "mlp", "conv", "rnn")


def workload_names(quick=False):
    """The default set, in table order."""
    fam = _families(quick)
    return [n for f in _DEFAULT_FAMILIES for n in fam[f]]


def extra_workload_names(quick=False):
    """Workloads run only on request (``--only`` or ``--all``)."""
    fam = _families(quick)
    return [n for f in FAMILIES if f not in _DEFAULT_FAMILIES for n in fam[f]]


def all_workload_names(quick=False):
    return workload_names(quick) + extra_workload_names(quick)


def select(patterns, quick=False):
    """(names matching any pattern: a name, a prefix or a family; patterns matching none)."""
    fam = _families(quick)
    names = all_workload_names(quick)

    def matches(name, p):
        return name == p or name.startswith(p) or name in fam.get(p, ())
    selected = [n for n in names if any(matches(n, p) for p in patterns)]
    unknown = [p for p in patterns if not any(matches(n, p) for n in names)]
    return selected, unknown


def make_workload(name, quick=False):
    """Build the workload called ``name`` (full size, or small with ``quick``)."""
    fam = _families(quick)
    wl = None
    if name in OPTIMIZERS:
        wl = OptimizerStep(name, n_params=200_000 if quick else 10_000_000, n_tensors=20)
    elif name in fam["dense"]:
        wl = DenseStep(*(DENSE_SHAPES_QUICK if quick else DENSE_SHAPES)[fam["dense"].index(name)])
    elif name in fam["conv"][:-1]:
        wl = ConvStep(*(CONV_SHAPES_QUICK if quick else CONV_SHAPES)[fam["conv"].index(name)])
    elif name == "lenet_step":
        wl = LeNetStep(batch=16 if quick else 128)
    elif name == "mlp_epoch":
        wl = MLPEpoch(n_samples=8192, min_accuracy=0.5) if quick else MLPEpoch()
    elif name == "digits":
        wl = (Digits(seeds=(0,), epochs=5, min_accuracy=0.85) if quick else Digits())
    elif name == "mlp_ranks":
        wl = DataParallelMLP(n_samples=8192, min_accuracy=0.4) if quick else DataParallelMLP()
    elif name in fam["rnn"]:
        wl = LSTMStep(*(LSTM_SHAPE_QUICK if quick else LSTM_SHAPE))
    elif name in fam["norm"]:
        wl = NormStep(name[len("norm_"):], quick=quick)
    elif name == "dropout":
        wl = DropoutStep(quick=quick)
    elif name in fam["elementwise"]:
        wl = LossStep(name[len("loss_"):], quick=quick)
    if wl is None:
        raise ValueError(f"unknown workload {name!r}; expected one of "
                         f"{all_workload_names(quick)}")
    if quick:
        wl.repeats = min(wl.repeats, 3)
    wl._factory = (name, quick)
    return wl
