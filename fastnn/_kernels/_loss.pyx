"""Fused losses: value and gradient in one pass over the predictions.

Design note
-----------
Softmax cross-entropy works row by row: max (and argmax, which gives the
accuracy count for free), exp(z - max) written straight into the gradient
buffer with its sum, then one scaling pass.  Subtracting the row max keeps huge
logits finite.  Sums are accumulated in double.  Labels out of range are not
raised from nogil code: the row is skipped and counted, and the Python layer
raises after the loop.  Rows are split across threads; the loss sum is an
OpenMP reduction.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log

ctypedef Py_ssize_t intp_t


cdef inline double _softmax_row(const floating *z, floating *g, Py_ssize_t c,
                                Py_ssize_t *argmax) noexcept nogil:
    """g = exp(z - max(z)); returns log(sum) + max (the log-sum-exp)."""
    cdef Py_ssize_t j, am = 0
    cdef floating m = z[0]
    cdef double s = 0.0
    for j in range(1, c):
        if z[j] > m:
            m = z[j]
            am = j
    for j in range(c):
        g[j] = <floating>exp(<double>(z[j] - m))
        s += g[j]
    argmax[0] = am
    return log(s) + m


def softmax_ce_labels(const floating[:, ::1] logits, const intp_t[::1] target,
                      floating[:, ::1] grad_out, double scale, int n_threads):
    """Cross-entropy with integer labels.

    grad_out = scale * (softmax(logits) - onehot(target)); returns
    (sum of per-row losses, number of correct argmax predictions, number of bad labels).
    """
    cdef Py_ssize_t n = logits.shape[0], c = logits.shape[1], i, j, t, am
    cdef double total = 0.0, lse, inv
    cdef Py_ssize_t correct = 0, bad = 0
    cdef floating *g
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        t = target[i]
        g = &grad_out[i, 0]
        if t < 0 or t >= c:
            bad += 1
            for j in range(c):
                g[j] = 0
            continue
        lse = _softmax_row(&logits[i, 0], g, c, &am)
        total += lse - logits[i, t]
        if am == t:
            correct += 1
        inv = scale * exp(-(lse - logits[i, am]))   # scale / sum(exp(z - max))
        for j in range(c):
            g[j] = <floating>(g[j] * inv)
        g[t] = <floating>(g[t] - scale)
    return total, correct, bad


def softmax_ce_probs(const floating[:, ::1] logits, const floating[:, ::1] target,
                     floating[:, ::1] grad_out, double scale, int n_threads):
    """Cross-entropy with probability targets: loss_i = -sum_j p_ij log softmax_ij.

    grad_out = scale * (softmax * sum_j p_ij - p); returns (loss sum, correct count)
    where a row is correct when argmax(logits) == argmax(target).
    """
    cdef Py_ssize_t n = logits.shape[0], c = logits.shape[1], i, j, am, tm
    cdef double total = 0.0, lse, inv, psum, pz
    cdef Py_ssize_t correct = 0
    cdef floating *g
    cdef const floating *p
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        g = &grad_out[i, 0]
        p = &target[i, 0]
        lse = _softmax_row(&logits[i, 0], g, c, &am)
        psum = 0.0
        pz = 0.0
        tm = 0
        for j in range(c):
            psum = psum + p[j]
            pz = pz + p[j] * logits[i, j]
            if p[j] > p[tm]:
                tm = j
        total += lse * psum - pz
        if am == tm:
            correct += 1
        inv = scale * psum * exp(-(lse - logits[i, am]))
        for j in range(c):
            g[j] = <floating>(g[j] * inv - scale * p[j])
    return total, correct


def mse(const floating[::1] pred, const floating[::1] target, floating[::1] grad_out,
        double scale, int n_threads):
    """grad_out = scale * (pred - target); returns sum((pred - target)^2) in double."""
    cdef Py_ssize_t n = pred.shape[0], c, nc, lo, hi, j
    cdef Py_ssize_t chunk = 8192
    cdef double total = 0.0, part, d
    cdef floating s = <floating>scale
    if n == 0:
        return 0.0
    nc = (n + chunk - 1) // chunk
    for c in prange(nc, nogil=True, schedule="static", num_threads=n_threads):
        lo = c * chunk
        hi = min(lo + chunk, n)
        part = _mse_span(&pred[lo], &target[lo], &grad_out[lo], hi - lo, s)
        total += part
    return total


cdef double _mse_span(const floating *p, const floating *t, floating *g, Py_ssize_t n,
                      floating s) noexcept nogil:
    cdef Py_ssize_t j
    cdef double acc = 0.0
    cdef floating d
    for j in range(n):
        d = p[j] - t[j]
        g[j] = s * d
        acc += <double>d * d
    return acc
