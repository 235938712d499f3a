/* fnn_conv.c -- the loops around a convolution's GEMMs, and pooling.
 *
 * Layout.  Each image's column matrix is cols[n][K][P] with K = C*kh*kw rows (one
 * per input channel and kernel offset, in the order of the (O, C, kh, kw)
 * weight) and one column per output pixel (P = OH*OW).  So, per image n (one
 * batched np.matmul call for the whole batch):
 *   forward   y[n][O][P]     = W[O][K] @ cols[n]      (already NCHW)
 *   backward  gW[O][K]       = sum_n gt[n] @ cols[n]^T
 *             gcols[n][K][P] = W^T @ gt[n]
 * The bias and activation are applied in place on y, and the activation
 * derivative and the bias-gradient sums are fused in one pass over grad_y.
 * (This per-image layout measured faster than one (K, N*P) matrix and one big GEMM.)
 *
 * im2col / col2im work on one (image, channel) plane per call, so callers
 * parallelize over planes: col2im then accumulates into one input plane per
 * task and needs no atomics.  Rows are split into a zero-padding head, a copied
 * middle (a plain copy for stride 1, so it vectorizes) and a zero tail.
 *
 * Pooling works on (N*C) independent planes; max pooling stores the argmax
 * (index within the plane) for backward; a NaN in the window wins, as in torch. */
/* no-trapping-math: see fnn_math.h.  fp-contract=fast: the build's -std=c99 turns
 * multiply-add contraction off, and the direct conv's inner loop is multiply-adds
 * (FMA makes it measurably faster).  The rest of this file
 * computes no a*b+c whose rounding a test pins down. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fastnn.h"
#include "fnn_simd.h"
#include "fnn_math.h"
#include "fnn_act.h"

#define DIRECT_OB 4  /* output channels per register block of fnn_conv_direct */
#define FNN_POOL2_BUF 1024  /* elements of the 2x2 max-pool block buffers (stack, 8 KiB for doubles) */

/* Output positions o in [*lo, *hi) read input index o*s + off inside [0, L). */
static inline void fnn_valid_range(ptrdiff_t L, ptrdiff_t O, ptrdiff_t s, ptrdiff_t off,
                                   ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    ptrdiff_t b = (L - 1 - off) < 0 ? 0 : (L - 1 - off) / s + 1;
    if (b > O) b = O;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

#define DEFINE_CONV(T, SUF)                                                                 \
FNN_CLONES void fnn_im2col_##SUF(const T *restrict x, T *restrict cols, ptrdiff_t ld,       \
                                 const fnn_conv_geom *g)                                    \
{                                                                                           \
    const ptrdiff_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw, OH = g->oh, OW = g->ow; \
    for (ptrdiff_t ki = 0; ki < kh; ki++) {                                                 \
        ptrdiff_t hlo, hhi;                                                                 \
        fnn_valid_range(g->h, OH, sh, ki - g->ph, &hlo, &hhi);                              \
        for (ptrdiff_t kj = 0; kj < kw; kj++) {                                             \
            T *dst = cols + (ki * kw + kj) * ld;                                            \
            ptrdiff_t wlo, whi, off = kj - g->pw;                                           \
            fnn_valid_range(g->w, OW, sw, off, &wlo, &whi);                                 \
            if (hlo > 0) memset(dst, 0, (size_t)(hlo * OW) * sizeof(T));                    \
            for (ptrdiff_t oh = hlo; oh < hhi; oh++) {                                      \
                const T *src = x + (oh * sh + ki - g->ph) * g->w + off;                     \
                T *d = dst + oh * OW;                                                       \
                for (ptrdiff_t ow = 0; ow < wlo; ow++) d[ow] = 0;                           \
                if (sw == 1)                                                                \
                    fnn_copy_row(d + wlo, src + wlo, (size_t)(whi - wlo) * sizeof(T));      \
                else                                                                        \
                    for (ptrdiff_t ow = wlo; ow < whi; ow++) d[ow] = src[ow * sw];          \
                for (ptrdiff_t ow = whi; ow < OW; ow++) d[ow] = 0;                          \
            }                                                                               \
            if (hhi < OH) memset(dst + hhi * OW, 0, (size_t)((OH - hhi) * OW) * sizeof(T)); \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_col2im_##SUF(const T *restrict cols, T *restrict gx, ptrdiff_t ld,      \
                                 const fnn_conv_geom *g)                                    \
{                                                                                           \
    const ptrdiff_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw, OH = g->oh, OW = g->ow; \
    memset(gx, 0, (size_t)(g->h * g->w) * sizeof(T));                                       \
    for (ptrdiff_t ki = 0; ki < kh; ki++) {                                                 \
        ptrdiff_t hlo, hhi;                                                                 \
        fnn_valid_range(g->h, OH, sh, ki - g->ph, &hlo, &hhi);                              \
        for (ptrdiff_t kj = 0; kj < kw; kj++) {                                             \
            const T *src = cols + (ki * kw + kj) * ld;                                      \
            ptrdiff_t wlo, whi, off = kj - g->pw;                                           \
            fnn_valid_range(g->w, OW, sw, off, &wlo, &whi);                                 \
            for (ptrdiff_t oh = hlo; oh < hhi; oh++) {                                      \
                T *d = gx + (oh * sh + ki - g->ph) * g->w + off;                            \
                const T *s = src + oh * OW;                                                 \
                if (sw == 1)                                                                \
                    for (ptrdiff_t ow = wlo; ow < whi; ow++) d[ow] += s[ow];                \
                else                                                                        \
                    for (ptrdiff_t ow = wlo; ow < whi; ow++) d[ow * sw] += s[ow];           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* Direct stride-1 convolution, y = act(conv(x, w) + b), for nimg images (NCHW).   \
 * Each image is copied into a zero-padded plane whose rows are long enough for   \
 * whole vectors; the weights are packed in blocks of DIRECT_OB output channels.   \
 * The kernel keeps DIRECT_OB accumulator vectors of one output row segment in     \
 * registers and loads each input row segment once per DIRECT_OB FMAs, so for few  \
 * input channels (K = C*kh*kw small) it beats im2col + GEMM, whose GEMM streams   \
 * the column matrix for little work per element (1x1 kernels excepted: there      \
 * im2col is a copy and GEMM wins).  Returns -1 when the                           \
 * scratch cannot be allocated. */                                                  \
FNN_CLONES int fnn_conv_direct_##SUF(const T *restrict x, const T *restrict w,              \
                                     const T *restrict b, T *restrict y, ptrdiff_t nimg,    \
                                     ptrdiff_t C, ptrdiff_t O, const fnn_conv_geom *g,      \
                                     int act, T slope)                                      \
{                                                                                           \
    typedef T vec __attribute__((vector_size(64)));                                         \
    enum { VW = 64 / sizeof(T), OB = DIRECT_OB };                                           \
    const ptrdiff_t H = g->h, W = g->w, kh = g->kh, kw = g->kw, OH = g->oh, OW = g->ow;     \
    const ptrdiff_t OWr = (OW + VW - 1) / VW * VW, Wp = OWr + kw - 1, Hp = OH + kh - 1;     \
    const ptrdiff_t Ob = (O + OB - 1) / OB, KK = C * kh * kw;                               \
    T *P = (T *)calloc((size_t)(C * Hp * Wp + Ob * OB * KK + VW), sizeof(T));              \
    if (!P) return -1;                                                                      \
    T *wp = P + C * Hp * Wp, *row = wp + Ob * OB * KK;  /* wp[ob][k][lane] */              \
    for (ptrdiff_t o = 0; o < O; o++)                                                       \
        for (ptrdiff_t k = 0; k < KK; k++)                                                  \
            wp[((o / OB) * KK + k) * OB + o % OB] = w[o * KK + k];                          \
    for (ptrdiff_t n = 0; n < nimg; n++) {                                                  \
        for (ptrdiff_t c = 0; c < C; c++)                                                   \
            for (ptrdiff_t h = 0; h < H; h++) {                                             \
                const ptrdiff_t r = h + g->ph;                                              \
                if (r < 0 || r >= Hp) continue;                                             \
                memcpy(P + (c * Hp + r) * Wp + g->pw, x + ((n * C + c) * H + h) * W,        \
                       (size_t)W * sizeof(T));                                              \
            }                                                                               \
        for (ptrdiff_t ob = 0; ob < Ob; ob++)                                               \
            for (ptrdiff_t h = 0; h < OH; h++)                                              \
                for (ptrdiff_t w0 = 0; w0 < OWr; w0 += VW) {                                \
                    vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                             \
                    const T *wk = wp + ob * KK * OB;                                        \
                    for (ptrdiff_t c = 0; c < C; c++)                                       \
                        for (ptrdiff_t i = 0; i < kh; i++) {                                \
                            const T *src = P + (c * Hp + h + i) * Wp + w0;                  \
                            for (ptrdiff_t j = 0; j < kw; j++, wk += OB) {                  \
                                vec v;                                                      \
                                memcpy(&v, src + j, sizeof v);                              \
                                a0 += wk[0] * v; a1 += wk[1] * v;                           \
                                a2 += wk[2] * v; a3 += wk[3] * v;                           \
                            }                                                               \
                        }                                                                   \
                    const ptrdiff_t m = OW - w0 < VW ? OW - w0 : VW;                        \
                    const vec acc[OB] = {a0, a1, a2, a3};                                   \
                    for (ptrdiff_t q = 0; q < OB && ob * OB + q < O; q++) {                 \
                        const ptrdiff_t o = ob * OB + q;                                    \
                        memcpy(row, &acc[q], sizeof(vec));                                  \
                        fnn_bias_act_row_##SUF(y + ((n * O + o) * OH + h) * OW + w0, row,   \
                                               b != NULL ? b[o] : (T)0, m, act, slope);     \
                    }                                                                       \
                }                                                                           \
        /* the padding border of P is still zero; its interior is overwritten next */       \
    }                                                                                       \
    free(P);                                                                                \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* y[n][o][:] = act(y[n][o][:] + b[o]) in place, for the images n of [n0, n1) */             \
FNN_CLONES void fnn_conv_bias_act_##SUF(T *y, const T *b, ptrdiff_t n0, ptrdiff_t n1,        \
                                        ptrdiff_t O, ptrdiff_t P, int act, T slope)         \
{                                                                                           \
    for (ptrdiff_t n = n0; n < n1; n++)                                                     \
        for (ptrdiff_t o = 0; o < O; o++) {                                                 \
            T *r = y + (n * O + o) * P;                                                     \
            fnn_bias_act_row_##SUF(r, r, b != NULL ? b[o] : (T)0, P, act, slope);           \
        }                                                                                   \
}                                                                                           \
                                                                                            \
/* gt = gy * act'(y) (NCHW, gt may be gy); acc[o] += sum of gt[n][o][:] in double */        \
FNN_CLONES void fnn_conv_dact_##SUF(const T *gy, const T *y, T *gt, double *acc,            \
                                    ptrdiff_t n0, ptrdiff_t n1, ptrdiff_t O, ptrdiff_t P,   \
                                    int act, T slope)                                       \
{                                                                                           \
    for (ptrdiff_t n = n0; n < n1; n++)                                                     \
        for (ptrdiff_t o = 0; o < O; o++) {                                                 \
            const ptrdiff_t r = (n * O + o) * P;                                            \
            T *d = gt + r;                                                                  \
            if (act != FNN_ACT_IDENTITY || d != gy + r)                                                    \
                fnn_dact_row_##SUF(d, gy + r, y + r, P, act, slope);                        \
            if (acc != NULL) {                                                              \
                /* 16 independent lane sums: the inner loop is one vector add, which */    \
                /* gcc emits without reassociating (a serial sum would not vectorize) */   \
                T s[16] = {0};                                                              \
                ptrdiff_t p = 0;                                                            \
                for (; p + 16 <= P; p += 16)                                                \
                    for (int l = 0; l < 16; l++) s[l] += d[p + l];                          \
                for (; p < P; p++) s[0] += d[p];                                            \
                double t = 0;                                                               \
                for (int l = 0; l < 16; l++) t += (double)s[l];                             \
                acc[o] += t;                                                                \
            }                                                                               \
        }                                                                                   \
}                                                                                           \
                                                                                            \
/* One window's max and argmax, branch-free (a data-dependent branch per element  \
 * mispredicts half the time on real data): the first maximum in row-major order   \
 * wins, and a NaN wins over everything (the last NaN), as in torch. */             \
static inline void fnn_pool_take_##SUF(T v, ptrdiff_t i, T *m, ptrdiff_t *mi)           \
{                                                                                           \
    int take = (v > *m) | (v != v);                                                         \
    *m = take ? v : *m;                                                                     \
    *mi = take ? i : *mi;                                                                   \
}                                                                                           \
                                                                                            \
/* The 2x2 / stride-2 case with an even W, a block of row pairs at a time, in two   \
 * flat loops that GCC vectorizes (rows of a few outputs do not fill a vector):   \
 * each column's winner of its two rows into v / vi (in-plane index), then each      \
 * output's winner of its two columns.  Same rule as fnn_pool_take: the max with the   \
 * lowest index, or the NaN with the highest. */                                     \
FNN_ROW void fnn_pool2_block_##SUF(const T *restrict x, T *restrict y, int32_t *restrict idx, \
                                  ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t H, ptrdiff_t W,     \
                                  ptrdiff_t OH, T *restrict v, int32_t *restrict vi)         \
{                                                                                           \
    const ptrdiff_t OW = W / 2;                                                             \
    for (ptrdiff_t j = j0; j < j1; j++) {                                                   \
        const ptrdiff_t q = j / OH, oh = j - q * OH;                                        \
        const T *restrict r0 = x + q * H * W + 2 * oh * W, *restrict r1 = r0 + W;           \
        T *restrict vr = v + (j - j0) * W;                                                  \
        int32_t *restrict ir = vi + (j - j0) * W;                                           \
        const int32_t i0 = (int32_t)(2 * oh * W), i1 = (int32_t)((2 * oh + 1) * W);         \
        for (ptrdiff_t w = 0; w < W; w++) {                                                 \
            T a = r0[w], c = r1[w];                                                         \
            int t = (c > a) | (c != c);                                                     \
            vr[w] = t ? c : a;                                                              \
            ir[w] = (t ? i1 : i0) + (int32_t)w;                                             \
        }                                                                                   \
    }                                                                                       \
    T *restrict yb = y + j0 * OW;                                                           \
    int32_t *restrict ib = idx + j0 * OW;                                                   \
    for (ptrdiff_t e = 0; e < (j1 - j0) * OW; e++) {                                        \
        T m0 = v[2 * e], m1 = v[2 * e + 1];                                                 \
        int32_t k0 = vi[2 * e], k1 = vi[2 * e + 1];                                         \
        int n0 = m0 != m0, n1 = m1 != m1;                                                   \
        int t = n1 ? ((!n0) | (k1 > k0)) : ((!n0) & ((m1 > m0) | ((m1 == m0) & (k1 < k0)))); \
        yb[e] = t ? m1 : m0;                                                                \
        ib[e] = t ? k1 : k0;                                                                \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_maxpool2d_##SUF(const T *x, T *y, int32_t *idx, ptrdiff_t planes,       \
                                    const fnn_conv_geom *g)                                 \
{                                                                                           \
    const ptrdiff_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;                             \
    const int k2s2 = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2                   \
                     && g->ph == 0 && g->pw == 0;                                           \
    if (k2s2 && W % 2 == 0 && W <= FNN_POOL2_BUF) {                                          \
        T v[FNN_POOL2_BUF];                                                                 \
        int32_t vi[FNN_POOL2_BUF];                                                          \
        const ptrdiff_t rows = planes * OH, block = FNN_POOL2_BUF / W;                      \
        for (ptrdiff_t j = 0; j < rows; j += block)                                         \
            fnn_pool2_block_##SUF(x, y, idx, j, j + block < rows ? j + block : rows, H, W,  \
                                  OH, v, vi);                                               \
        return;                                                                             \
    }                                                                                       \
    for (ptrdiff_t q = 0; q < planes; q++) {                                                \
        const T *xp = x + q * H * W;                                                        \
        T *yp = y + q * OH * OW;                                                            \
        int32_t *ip = idx + q * OH * OW;                                                    \
        for (ptrdiff_t oh = 0; oh < OH; oh++) {                                             \
            ptrdiff_t h0 = oh * g->sh - g->ph, hs = h0 < 0 ? 0 : h0;                        \
            ptrdiff_t he = h0 + g->kh < H ? h0 + g->kh : H;                                 \
            for (ptrdiff_t ow = 0; ow < OW; ow++) {                                         \
                ptrdiff_t w0 = ow * g->sw - g->pw, ws = w0 < 0 ? 0 : w0;                    \
                ptrdiff_t we = w0 + g->kw < W ? w0 + g->kw : W;                             \
                T m = -INFINITY;                                                            \
                ptrdiff_t mi = hs * W + ws;                                                 \
                for (ptrdiff_t h = hs; h < he; h++)                                         \
                    for (ptrdiff_t w = ws; w < we; w++)                                     \
                        fnn_pool_take_##SUF(xp[h * W + w], h * W + w, &m, &mi);             \
                yp[oh * OW + ow] = m;                                                       \
                ip[oh * OW + ow] = (int32_t)mi;                                             \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_maxpool2d_backward_##SUF(const T *gy, const int32_t *idx, T *gx,        \
                                             ptrdiff_t planes, const fnn_conv_geom *g)      \
{                                                                                           \
    const ptrdiff_t HW = g->h * g->w, P = g->oh * g->ow;                                    \
    for (ptrdiff_t q = 0; q < planes; q++) {                                                \
        T *gp = gx + q * HW;                                                                \
        const T *gyp = gy + q * P;                                                          \
        const int32_t *ip = idx + q * P;                                                    \
        memset(gp, 0, (size_t)HW * sizeof(T));                                              \
        for (ptrdiff_t p = 0; p < P; p++) gp[ip[p]] += gyp[p];                              \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* divisor of the window at (oh, ow): torch's count_include_pad rule */                     \
static inline T fnn_avg_div_##SUF(const fnn_conv_geom *g, ptrdiff_t h0, ptrdiff_t w0,       \
                                  ptrdiff_t hs, ptrdiff_t he, ptrdiff_t ws, ptrdiff_t we,   \
                                  int count_include_pad)                                    \
{                                                                                           \
    if (!count_include_pad) return (T)((he - hs) * (we - ws));                              \
    ptrdiff_t hp = h0 + g->kh < g->h + g->ph ? h0 + g->kh : g->h + g->ph;                   \
    ptrdiff_t wp = w0 + g->kw < g->w + g->pw ? w0 + g->kw : g->w + g->pw;                   \
    return (T)((hp - h0) * (wp - w0));                                                      \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_avgpool2d_##SUF(const T *x, T *y, ptrdiff_t planes,                     \
                                    const fnn_conv_geom *g, int count_include_pad)          \
{                                                                                           \
    const ptrdiff_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;                             \
    for (ptrdiff_t q = 0; q < planes; q++) {                                                \
        const T *xp = x + q * H * W;                                                        \
        T *yp = y + q * OH * OW;                                                            \
        for (ptrdiff_t oh = 0; oh < OH; oh++) {                                             \
            ptrdiff_t h0 = oh * g->sh - g->ph, hs = h0 < 0 ? 0 : h0;                        \
            ptrdiff_t he = h0 + g->kh < H ? h0 + g->kh : H;                                 \
            for (ptrdiff_t ow = 0; ow < OW; ow++) {                                         \
                ptrdiff_t w0 = ow * g->sw - g->pw, ws = w0 < 0 ? 0 : w0;                    \
                ptrdiff_t we = w0 + g->kw < W ? w0 + g->kw : W;                             \
                T s = 0;                                                                    \
                for (ptrdiff_t h = hs; h < he; h++)                                         \
                    for (ptrdiff_t w = ws; w < we; w++) s += xp[h * W + w];                 \
                yp[oh * OW + ow] = s / fnn_avg_div_##SUF(g, h0, w0, hs, he, ws, we,         \
                                                         count_include_pad);                \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
                                                                                            \
FNN_CLONES void fnn_avgpool2d_backward_##SUF(const T *gy, T *gx, ptrdiff_t planes,          \
                                             const fnn_conv_geom *g, int count_include_pad) \
{                                                                                           \
    const ptrdiff_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;                             \
    for (ptrdiff_t q = 0; q < planes; q++) {                                                \
        T *gp = gx + q * H * W;                                                             \
        const T *gyp = gy + q * OH * OW;                                                    \
        memset(gp, 0, (size_t)(H * W) * sizeof(T));                                         \
        for (ptrdiff_t oh = 0; oh < OH; oh++) {                                             \
            ptrdiff_t h0 = oh * g->sh - g->ph, hs = h0 < 0 ? 0 : h0;                        \
            ptrdiff_t he = h0 + g->kh < H ? h0 + g->kh : H;                                 \
            for (ptrdiff_t ow = 0; ow < OW; ow++) {                                         \
                ptrdiff_t w0 = ow * g->sw - g->pw, ws = w0 < 0 ? 0 : w0;                    \
                ptrdiff_t we = w0 + g->kw < W ? w0 + g->kw : W;                             \
                T v = gyp[oh * OW + ow] / fnn_avg_div_##SUF(g, h0, w0, hs, he, ws, we,      \
                                                            count_include_pad);             \
                for (ptrdiff_t h = hs; h < he; h++)                                         \
                    for (ptrdiff_t w = ws; w < we; w++) gp[h * W + w] += v;                 \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

DEFINE_ACT_ROWS(float, f32, fnn_sigmoid_f32, fnn_tanh_f32)
DEFINE_ACT_ROWS(double, f64, fnn_sigmoid_f64, fnn_tanh_f64)
DEFINE_CONV(float, f32)
DEFINE_CONV(double, f64)
