"""Layers: Module/Parameter API with torch.nn names, shapes and defaults."""
from fastnn.nn.module import Module, Parameter, Sequential
from fastnn.nn.layers import Dropout, Linear, ReLU, LeakyReLU, Sigmoid, Tanh
from fastnn.nn.conv import AvgPool2d, Conv2d, Flatten, MaxPool2d
from fastnn.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from fastnn.nn.rnn import LSTM, RNN

__all__ = ["Module", "Parameter", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout",
           "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm2d",
           "RNN", "LSTM"]
