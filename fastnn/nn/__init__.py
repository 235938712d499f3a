"""Layers: Module/Parameter API with torch.nn names, shapes and defaults."""
from fastnn.nn.module import Module, Parameter, Sequential
from fastnn.nn.layers import Dropout, Linear, ReLU, LeakyReLU, Sigmoid, Tanh

__all__ = ["Module", "Parameter", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout"]
