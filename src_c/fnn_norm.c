/* fnn_norm.c -- placeholder until the norm kernels land. */
#include "fastnn.h"
