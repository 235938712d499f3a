/* fnn_rnn.c -- placeholder until the rnn kernels land. */
#include "fastnn.h"
