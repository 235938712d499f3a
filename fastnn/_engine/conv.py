"""The convolution engine: im2col + GEMM, Winograd F(2x2, 3x3) and direct paths.

Shared by ``fastnn.ops.conv2d*`` and ``nn.Conv2d``.  Takes validated arrays, the
geometry and a buffer source (``buffers.Buffers`` or ``buffers.Scratch``);
writes into the outputs it is given.  Module globals are the policy knobs
(tests set them); the functions read them at call time.
"""
import numpy as np

from fastnn._engine import blas, codes, config, parallel
from fastnn._engine.config import n_threads_for
from fastnn._kernels import _conv

IDENTITY = codes.ACTIVATIONS["identity"]

# The conv and pooling passes run between multithreaded GEMMs.  The system libgomp (a
# source build) lets finished OpenMP threads spin on the cores that OpenBLAS's next GEMM
# needs, so there the passes stay on one thread; a wheel's private libgomp sleeps
# (PASSIVE, see fastnn/__init__.py) and they go parallel above the usual size threshold.
# None: decided on first use (config.openmp_private()).
CONV_PARALLEL = None


def pass_threads(n_elements):
    """Threads for a conv or pooling pass over ``n_elements`` (see CONV_PARALLEL)."""
    global CONV_PARALLEL
    if CONV_PARALLEL is None:
        CONV_PARALLEL = config.openmp_private()
    return n_threads_for(n_elements) if CONV_PARALLEL else 1


# Winograd F(2x2, 3x3) (src_c/fnn_wino.c) replaces im2col for 3x3 stride-1 convs with
# at least WINOGRAD_MIN_CHANNELS input channels, where it measured faster (2.25x fewer
# multiplies; with a few input channels its GEMMs' inner dimension is too small).
# WINOGRAD: "auto" (that rule), True (every 3x3 stride-1 conv: the tests use it on small
# shapes) or False (never).
WINOGRAD = "auto"
WINOGRAD_MIN_CHANNELS = 12

# Other stride-1 convs (kernel larger than 1x1) compute the forward output, and the input
# gradient (a stride-1 conv of grad_y with the flipped, transposed weight), directly in C
# (fnn_conv_direct) where that measured faster than GEMM (+ col2im): the kernel works on
# 64-byte vectors of an output row and blocks of 4 output channels, so it needs rows that
# fill its vectors (use_direct) and, for the input gradient, at least 3 input channels.
# The weight gradient keeps its GEMM on the columns.  False: always GEMM (tests compare).
DIRECT = True


def direct_fits(width, dtype):
    """Output rows of ``width`` fill the direct kernel's 64-byte vectors to >= 7/8."""
    lanes = 64 // np.dtype(dtype).itemsize
    padded = -(-width // lanes) * lanes
    return 8 * width >= 7 * padded


def use_direct(k, stride, width, dtype):
    """The direct kernel for a conv (or an input gradient) whose output rows are ``width`` long."""
    return DIRECT and stride == (1, 1) and k != (1, 1) and direct_fits(width, dtype)


# Work is done a chunk of images at a time, sized so that a chunk's columns (or
# transformed tiles) stay in L2 between the loop that writes them and the GEMM
# that reads them.
CHUNK_ELEMENTS = 1 << 18
# Multiply-adds under which a conv stays in one part (see fastnn._engine.parallel).
SPLIT_MIN_MACS = 1 << 22


def use_winograd(c, o, k, stride, oh, ow):
    if WINOGRAD is False or k != (3, 3) or stride != (1, 1):
        return False
    return WINOGRAD is True or c >= WINOGRAD_MIN_CHANNELS


def chunk_len(n, per_image):
    return max(1, min(n, CHUNK_ELEMENTS // max(1, per_image)))


def chunks(lo, hi, per_image):
    step = chunk_len(hi - lo, per_image)
    for a in range(lo, hi, step):
        yield a, min(hi, a + step)


def point_blocks(bufs, name, rows, ch, dtype):
    """A (16, rows, ch) Winograd array (src_c/fnn_wino.c) from ``bufs``.

    Its 16 dense (rows, ch) point blocks start 256 bytes past a 4 KiB multiple
    apart: a transform writes (or reads) all 16 at once, and blocks a 4 KiB
    multiple apart would all map to the same L1 sets.
    """
    dtype = np.dtype(dtype)
    isz = dtype.itemsize
    step = -(-rows * ch * isz // 4096) * 4096 + 256
    flat = bufs.get(name, (15 * step // isz + rows * ch,), dtype)
    return np.lib.stride_tricks.as_strided(flat, (16, rows, ch), (step, ch * isz, isz))


class ConvState:
    """What a conv's backward needs from its forward: the path taken, its saved
    array (the (N, K, P) columns, or the (16, N * T, C) transformed input tiles)
    and, for Winograd, the transformed weight U (16, C, O)."""

    __slots__ = ("wino", "saved", "U", "direct")

    def __init__(self, wino, saved, U=None, direct=False):
        self.wino, self.saved, self.U, self.direct = wino, saved, U, direct


def prepare(x, w, stride, padding, oh, ow, bufs):
    """The path for this conv, with its saved-array buffer (not filled yet)."""
    n, c = x.shape[:2]
    o, k = w.shape[0], (w.shape[2], w.shape[3])
    if use_winograd(c, o, k, stride, oh, ow):
        t = ((oh + 1) // 2) * ((ow + 1) // 2)
        U = bufs.get("wino_U", (16, c, o), x.dtype)
        _conv.wino_weight(w, U)
        return ConvState(True, point_blocks(bufs, "wino_V", n * t, c, x.dtype), U)
    return ConvState(False, bufs.get("cols", (n, c * k[0] * k[1], oh * ow), x.dtype), None,
                      use_direct(k, stride, ow, x.dtype))


def parts(n, o, c, k, oh, ow):
    return parallel.parts(n, n * o * c * k[0] * k[1] * oh * ow, SPLIT_MIN_MACS)


def forward_into(x, w, b, stride, padding, oh, ow, bufs, y, act, slope, after=None):
    """y = act(conv(x, w) + b) (y: (N, O, OH, OW)); returns the ConvState for backward.

    ``after(lo, hi, n_threads)``, when given, runs at the end of each part, on the
    rows lo..hi of y it has just finished (a following row pass, e.g. pooling).

    The batch is cut into parts (one per thread, see fastnn._engine.parallel) and each
    part into chunks.  im2col path: im2col -> GEMM W2d @ cols[n] writing NCHW ->
    bias + activation in place.  Winograd path: input transform -> 16 GEMMs
    V[:, xi] @ U[xi] -> output transform with the bias -> activation.
    """
    n, c = x.shape[:2]
    o, k = w.shape[0], (w.shape[2], w.shape[3])
    st = prepare(x, w, stride, padding, oh, ow, bufs)
    if y.size == 0:   # empty batch (or zero output channels): nothing to compute
        return st
    ranges = parts(n, o, c, k, oh, ow)
    nt = 1 if len(ranges) > 1 else pass_threads(y.size)
    longest = max(hi - lo for lo, hi in ranges)
    if st.wino:
        V, U = st.saved, st.U
        t = V.shape[1] // n
        per = 16 * max(c, o) * t
        Ms = [point_blocks(bufs, f"wino_M{i}", chunk_len(longest, per) * t, o, x.dtype)
              for i in range(len(ranges))]
        in_c = blas.c_loops()   # the chunk loop as one C call: no GIL between its steps

        def part(i, lo, hi):
            if in_c:
                _conv.wino_forward_chunks(x, V, U, Ms[i], y, b, lo, hi, chunk_len(hi - lo, per),
                                          padding, act, slope)
            else:
                for a, e in chunks(lo, hi, per):
                    M = Ms[i][:, :(e - a) * t]
                    _conv.wino_in(x, V, a, e, padding, (oh, ow))
                    np.matmul(V[:, a * t:e * t], U, out=M)
                    _conv.wino_out(M, y, b, a, e, x.shape[2:], padding)
                    if act != IDENTITY:
                        _conv.bias_act_nchw(y[a:e], None, act, slope, nt)
            if after is not None:
                after(lo, hi, nt)
    else:
        cols = st.saved
        W2 = w.reshape(o, -1)
        y3 = y.reshape(n, o, -1)
        per = cols.shape[1] * cols.shape[2]

        def part(i, lo, hi):
            for a, e in chunks(lo, hi, per):
                _conv.im2col(x[a:e], cols[a:e], k, stride, padding, oh, ow, nt)
                if st.direct:
                    _conv.conv_direct(x, w, b, y, a, e, padding, act, slope)
                    continue
                np.matmul(W2, cols[a:e], out=y3[a:e])
                if b is not None or act != IDENTITY:
                    _conv.bias_act_nchw(y[a:e], b, act, slope, nt)
            if after is not None:
                after(lo, hi, nt)
    parallel.run(part, ranges)
    return st


def backward_into(grad_y, y, x_shape, w, stride, padding, st, bufs, gw, gw_acc, gb, gb_acc,
                        need_gx, act, slope, gx=None, before=None):
    """Gradients of a conv from its forward's ConvState.

    ``before(lo, hi, n_threads)``, when given, runs at the start of each part and
    fills rows lo..hi of grad_y (the backward of a following row pass).

    Writes the weight gradient into gw (O, C, kh, kw), or adds it when gw_acc;
    likewise the bias gradient into gb (may be None).  Returns the input gradient
    (N, C, H, W): gx when given, else a buffer of bufs; None when not need_gx.
    Per part of the batch (see fastnn._engine.parallel): the activation derivative
    fused with the bias sums, then per chunk the column-gradient GEMM + col2im
    (direct: one conv of gt with the flipped weight; Winograd: the output-gradient
    transform, the 16 GEMMs and the inverse input transform), and the part's
    weight gradient; the parts' weight and bias gradients are summed.
    """
    n, o, oh, ow = grad_y.shape
    c = x_shape[1]
    k = (w.shape[2], w.shape[3])
    dt = grad_y.dtype
    ranges = parts(n, o, c, k, oh, ow)
    nparts = len(ranges)
    nt = 1 if nparts > 1 else pass_threads(grad_y.size)
    longest = max(hi - lo for lo, hi in ranges)
    gt = grad_y if act == IDENTITY else bufs.get("gt", grad_y.shape, dt)
    gbs = bufs.get("gb_parts", (nparts, o), dt) if gb is not None else None
    if gx is None and need_gx:
        gx = bufs.get("gx", x_shape, dt)
    if n == 0:   # empty batch: zero gradients
        for g, acc in ((gw, gw_acc), (gb, gb_acc)):
            if g is not None and not acc:
                g[...] = 0
        return gx

    def dact(i, lo, hi):
        if before is not None:
            before(lo, hi, nt)
        if act != IDENTITY or gb is not None:
            _conv.dact_nchw(grad_y[lo:hi], y[lo:hi] if act != IDENTITY else None, gt[lo:hi],
                            None if gbs is None else gbs[i], False, act, slope, nt)

    if st.wino:
        V, U = st.saved, st.U
        t = V.shape[1] // n
        Vt = V.transpose(0, 2, 1)      # (16, C, N * T)
        if need_gx:   # a contiguous U^T: OpenBLAS runs gM @ U^T faster from it than from a view
            Ut = bufs.get("wino_Ut", (16, o, c), dt)
            np.copyto(Ut, U.transpose(0, 2, 1))
        per = 16 * max(c, o) * t
        rows = chunk_len(longest, per) * t
        gMs = [point_blocks(bufs, f"wino_gM{i}", rows, o, dt) for i in range(nparts)]
        dVs = [point_blocks(bufs, f"wino_dV{i}", rows, c, dt)
               for i in range(nparts)] if need_gx else None
        dUs = bufs.get("wino_dU", (nparts, 16, c, o), dt)
        in_c = blas.c_loops()   # the chunk loop as one C call: no GIL between its steps
        tmps = None if in_c else [bufs.get(f"wino_dUc{i}", (16, c, o), dt) for i in range(nparts)]

        def part(i, lo, hi):
            dact(i, lo, hi)
            if in_c:
                _conv.wino_backward_chunks(gt, gMs[i], Ut if need_gx else None,
                                           dVs[i] if need_gx else None, gx if need_gx else None, V,
                                           dUs[i], lo, hi, chunk_len(hi - lo, per), padding,
                                           x_shape[2:])
            else:
                for a, e in chunks(lo, hi, per):
                    gM = gMs[i][:, :(e - a) * t]
                    _conv.wino_gout(gt, gM, a, e, x_shape[2:], padding)
                    if need_gx:
                        dV = dVs[i][:, :(e - a) * t]
                        np.matmul(gM, Ut, out=dV)
                        _conv.wino_gin(dV, gx, a, e, padding, (oh, ow))
                    # the chunk's weight gradient while its gM is in cache
                    if a == lo:
                        np.matmul(Vt[:, :, a * t:e * t], gM, out=dUs[i])
                    else:
                        np.matmul(Vt[:, :, a * t:e * t], gM, out=tmps[i])
                        dUs[i] += tmps[i]

        parallel.run(part, ranges)
        dU = dUs[0] if nparts == 1 else np.add.reduce(dUs, axis=0,
                                                      out=bufs.get("wino_dUsum", (16, c, o), dt))
        _conv.wino_wgrad(dU, gw, gw_acc)
    else:
        cols = st.saved
        kk, p = cols.shape[1], cols.shape[2]
        g3 = gt.reshape(n, o, p)
        W2 = w.reshape(o, kk)
        # per-image weight gradients, transposed: cols[n] @ gt[n].T (K, O) is measurably
        # faster in OpenBLAS than gt[n] @ cols[n].T (O, K) for these shapes; summed into a
        # contiguous buffer (6x faster than summing into the transposed view)
        gw_parts = bufs.get("gw_parts", (n, kk, o), dt)
        # the input gradient is the stride-1 conv of gt with the flipped, transposed
        # weight and padding k - 1 - p (direct, when that padding is not negative)
        flip = (need_gx and c >= 3 and padding[0] < k[0] and padding[1] < k[1]
                and use_direct(k, stride, x_shape[3], dt))
        if flip:
            wf = bufs.get("w_flip", (c, o) + k, dt)
            np.copyto(wf, w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
            fpad = (k[0] - 1 - padding[0], k[1] - 1 - padding[1])
        gcs = [bufs.get(f"gcols{i}", (chunk_len(longest, kk * p), kk, p), dt)
               for i in range(nparts)] if need_gx and not flip else None

        def part(i, lo, hi):
            dact(i, lo, hi)
            np.matmul(cols[lo:hi], g3[lo:hi].transpose(0, 2, 1), out=gw_parts[lo:hi])
            if flip:
                _conv.conv_direct(gt, wf, None, gx, lo, hi, fpad, 0, 0.0)
            elif need_gx:
                for a, e in chunks(lo, hi, kk * p):
                    gc = gcs[i][:e - a]
                    np.matmul(W2.T, g3[a:e], out=gc)
                    _conv.col2im(gc, gx[a:e], k, stride, padding, oh, ow, nt)

        parallel.run(part, ranges)
        gw_sum = np.add.reduce(gw_parts, axis=0, out=bufs.get("gw_sum", (kk, o), dt))
        gw2d = gw.reshape(o, kk)
        if gw_acc:
            gw2d += gw_sum.T
        else:
            np.copyto(gw2d, gw_sum.T)
    if gb is not None:
        if gb_acc:
            for part_sum in gbs:   # in place: no temporary in the training step
                gb += part_sum
        else:
            np.add.reduce(gbs, axis=0, out=gb)
    return gx




def state_for_backward(x, w, stride, padding, oh, ow, bufs):
    """The ConvState of a forward that was not run here (the functional backward):
    the path for this conv with its saved array filled from ``x``."""
    n = x.shape[0]
    st = prepare(x, w, stride, padding, oh, ow, bufs)
    if st.wino:
        _conv.wino_in(x, st.saved, 0, n, padding, (oh, ow))
    else:
        _conv.im2col(x, st.saved, (w.shape[2], w.shape[3]), stride, padding, oh, ow,
                     pass_threads(st.saved.size))
    return st
