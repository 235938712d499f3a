/* fnn_conv.c -- placeholder until the conv kernels land. */
#include "fastnn.h"
