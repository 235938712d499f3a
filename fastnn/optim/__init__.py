"""Optimizers (torch.optim names, arguments and update rules)."""
from fastnn.optim import schedules
from fastnn.optim.averaging import ParameterAverager
from fastnn.optim.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "schedules", "ParameterAverager"]
