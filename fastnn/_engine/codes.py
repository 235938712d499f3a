"""Kernel codes by name, from the one table in ``src_c/fnn_codes.h``.

The Python layer passes these to the kernels; it never writes a code as a number.
"""
from fastnn._kernels._common import (ACTIVATIONS, ELEM_LOSSES, OPTIMIZERS, PENALTIES,
                                     SGD_LEARNING_RATES, SGD_LOSSES, SGD_PENALTIES)

__all__ = ["ACTIVATIONS", "ELEM_LOSSES", "OPTIMIZERS", "PENALTIES", "SGD_LEARNING_RATES",
           "SGD_LOSSES", "SGD_PENALTIES"]
