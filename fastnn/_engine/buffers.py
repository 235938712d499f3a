"""Work arrays: per-layer buffers reused across steps, and arrays handed to the caller.

A layer keeps a :class:`Buffers` (allocated once per batch shape, reused every
step); the functional forms in ``fastnn.ops`` pass a :class:`Scratch`, which has
the same interface and returns fresh arrays.  :func:`owned_empty` recycles the
arrays that public ``forward``/``backward`` return once the caller has dropped them.
"""
import sys

import numpy as np

_MAX_BUFFER_SETS = 8
_POOL_MAX = 3


class Buffers:
    """Work arrays keyed by (name, shape, dtype): allocated once, reused."""

    __slots__ = ("_d",)

    def __init__(self):
        self._d = {}

    def get(self, name, shape, dtype):
        key = (name, shape, dtype)
        a = self._d.get(key)
        if a is None:
            if len(self._d) >= 4 * _MAX_BUFFER_SETS:
                self._d.clear()  # many batch shapes seen: don't grow without bound
            a = self._d[key] = np.empty(shape, dtype)
        return a


class Scratch:
    """Fresh arrays with the interface of :class:`Buffers` (for one-off calls)."""

    __slots__ = ()

    @staticmethod
    def get(name, shape, dtype):
        return np.empty(shape, dtype)


def flat_views(arrays, fill=0.0, align=1):
    """One flat buffer of the arrays' (common) dtype, filled with ``fill``, and a view of
    it per array in that array's shape and memory layout (C or Fortran order); the
    views start a multiple of ``align`` elements apart.  Returns (flat, views)."""
    offs, total = [], 0
    for a in arrays:
        offs.append(total)
        total += -(-a.size // align) * align
    flat = np.full(total, fill, arrays[0].dtype)
    views = [flat[o:o + a.size].reshape(a.shape, order="C" if a.flags.c_contiguous else "F")
             for a, o in zip(arrays, offs)]
    return flat, views


def owned_empty(owner, slot, shape, dtype):
    """An array the caller will own, recycled when possible (contents undefined).

    ``owner`` keeps up to _POOL_MAX earlier results per (slot, shape, dtype); one
    is reused only when nothing outside the pool references it any more (no
    variable, view or exported buffer: its reference count is the pool's own),
    so an array a user still holds is never written again.  Reusing saves the
    page faults of a fresh large allocation.
    """
    pools = owner.__dict__.get("_out_pools")
    if pools is None:
        pools = {}
        object.__setattr__(owner, "_out_pools", pools)
    key = (slot, tuple(shape), np.dtype(dtype))
    pool = pools.get(key)
    if pool is None:
        pool = pools[key] = []
    for out in pool:
        # references: the pool list, the loop variable and getrefcount's argument
        if sys.getrefcount(out) == 3:
            return out
    out = np.empty(shape, dtype)
    if len(pool) < _POOL_MAX:
        pool.append(out)
    return out


def owned_copy(owner, slot, a):
    """A copy of ``a`` that the caller owns, in a recycled array when possible
    (see :func:`owned_empty`; reusing saves page faults that cost more than the copy)."""
    out = owned_empty(owner, slot, a.shape, a.dtype)
    np.copyto(out, a)
    return out
