/* fnn_wino.c -- Winograd F(2x2, 3x3) transforms for 3x3, stride-1 convolutions.
 *
 * A 3x3 stride-1 convolution computes each 2x2 output tile from a 4x4 input
 * tile with 16 multiplies per (input, output) channel pair instead of 36
 * (Lavin & Gray 2016):
 *     y_tile = A^T [ (G g G^T) (.) (B^T d B) ] A
 * with g the 3x3 filter, d the 4x4 input tile (stride 2 between tiles) and
 *     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *     G   = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
 *     A^T = [1 1 1 0; 0 1 -1 -1].
 * Summed over input channels, the element-wise product becomes 16 GEMMs
 * (one per transform point xi = 4*i + j):  M[xi] (O x T) = U[xi] (O x C) @ V[xi] (C x T)
 * with U = G g G^T, V = B^T d B and T tiles.  The GEMMs run in NumPy's BLAS;
 * this file has the transforms.  Backward is the transpose of the same
 * linear maps (so no other transform matrices are needed):
 *     gM = A gy_tile A^T                       (2x2 -> 4x4 per output tile)
 *     dV[xi] = U[xi]^T @ gM[xi],  gx += B dV B^T (scattered; tiles overlap by 2)
 *     dU[xi] = sum_tiles gM[xi] @ V[xi]^T,  gW = G^T dU G.
 * All coefficients are 0, +-1 and +-0.5, so float32 results stay within a few
 * ulp of the direct sum's rounding.
 *
 * Layout.  V and gM rows: element (xi, channel, image, tile) at
 *     base[(xi * channels + c) * ld + image * T + tile]
 * (ld >= images * T), so one buffer holds the whole batch for the weight
 * gradient and a chunk of images is a column block of it.  A tile index is
 * ty * TW + tx with TH = ceil(OH / 2), TW = ceil(OW / 2).  The functions take a
 * range of nimg consecutive images (x and y in NCHW) and work on one padded
 * plane at a time in a scratch buffer; they return -1 when that buffer cannot be
 * allocated (nothing is written), else 0. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "fastnn.h"
#include "fnn_simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#define WINO_IVDEP _Pragma("GCC ivdep")
#else
#define WINO_IVDEP
#endif

/* Every transform is one loop over the TW tiles of a tile row, with 16 loads and
 * 16 stores per tile; the rows are first split into their even and odd columns,
 * so all accesses in that loop are unit-stride and it vectorizes across tiles.
 * (Separate small loops for the two 1-D passes cost more in loop overhead than
 * they compute: 2.2 ms against 0.x for the input transform of N=64, 32x16x16.) */
#define WINO_TILES(g, TH, TW)                                                                \
    const ptrdiff_t TH = ((g)->oh + 1) / 2, TW = ((g)->ow + 1) / 2

/* Split a padded row (zeros outside [lo, lo + n)) into even / odd columns: e[k] =
 * row[2k], o[k] = row[2k + 1] for k < len. */
#define WINO_SPLIT(T, src, n, lo, e, o, len)                                                 \
    do {                                                                                     \
        for (ptrdiff_t k_ = 0; k_ < (len); k_++) { (e)[k_] = 0; (o)[k_] = 0; }               \
        /* element j lands in column j + lo: even j go to one half, odd to the other */     \
        T *ev_ = ((lo) & 1) ? (o) + ((lo) >> 1) : (e) + ((lo) >> 1);                         \
        T *od_ = ((lo) & 1) ? (e) + (((lo) + 1) >> 1) : (o) + ((lo) >> 1);                   \
        for (ptrdiff_t k_ = 0; k_ < ((n) + 1) / 2; k_++) ev_[k_] = (src)[2 * k_];            \
        for (ptrdiff_t k_ = 0; k_ < (n) / 2; k_++) od_[k_] = (src)[2 * k_ + 1];              \
    } while (0)

/* Interleave: row[k] = k even ? e[k/2] : o[k/2], for k < n. */
#define WINO_MERGE(row, e, o, n)                                                             \
    do {                                                                                     \
        for (ptrdiff_t k_ = 0; k_ < (n) / 2; k_++) {                                         \
            (row)[2 * k_] = (e)[k_];                                                         \
            (row)[2 * k_ + 1] = (o)[k_];                                                     \
        }                                                                                    \
        if ((n) & 1) (row)[(n) - 1] = (e)[(n) >> 1];                                         \
    } while (0)

#define DEFINE_WINO(T, SUF)                                                                  \
/* V <- B^T d B for every (channel, tile) of nimg images. */                                \
FNN_CLONES int fnn_wino_in_##SUF(const T *restrict x, T *restrict V, ptrdiff_t nimg,          \
                                 ptrdiff_t C, ptrdiff_t ld, const fnn_conv_geom *g)          \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t H = g->h, W = g->w, NT = TH * TW, HP = 2 * TH + 2, L = TW + 1;          \
    const ptrdiff_t xs = C * ld; /* stride between transform points */                      \
    T *E = (T *)malloc((size_t)(2 * HP * L) * sizeof(T));                                    \
    if (!E) return -1;                                                                      \
    T *Od = E + HP * L;                                                                      \
    for (ptrdiff_t n = 0; n < nimg; n++)                                                     \
        for (ptrdiff_t c = 0; c < C; c++) {                                                  \
            const T *xp = x + (n * C + c) * H * W;                                           \
            for (ptrdiff_t r = 0; r < HP; r++) {                                             \
                const ptrdiff_t h = r - g->ph;                                               \
                WINO_SPLIT(T, xp + h * W, (h >= 0 && h < H) ? W : 0, g->pw, E + r * L,       \
                           Od + r * L, L);                                                   \
            }                                                                                \
            for (ptrdiff_t ty = 0; ty < TH; ty++) {                                          \
                const T *e0 = E + 2 * ty * L, *e1 = e0 + L, *e2 = e1 + L, *e3 = e2 + L;      \
                const T *o0 = Od + 2 * ty * L, *o1 = o0 + L, *o2 = o1 + L, *o3 = o2 + L;     \
                T *v = V + c * ld + n * NT + ty * TW;                                        \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t t = 0; t < TW; t++) {                                         \
                    /* row i: d_i = (e_i[t], o_i[t], e_i[t+1], o_i[t+1]); along columns: */  \
                    T a[4][4];                                                               \
                    const T *er[4] = {e0, e1, e2, e3}, *orr[4] = {o0, o1, o2, o3};           \
                    for (int i = 0; i < 4; i++) {                                            \
                        const T d0 = er[i][t], d1 = orr[i][t];                               \
                        const T d2 = er[i][t + 1], d3 = orr[i][t + 1];                       \
                        a[i][0] = d0 - d2; a[i][1] = d1 + d2;                                \
                        a[i][2] = d2 - d1; a[i][3] = d1 - d3;                                \
                    }                                                                        \
                    for (int k = 0; k < 4; k++) {                                            \
                        v[k * xs + t] = a[0][k] - a[2][k];                                   \
                        v[(4 + k) * xs + t] = a[1][k] + a[2][k];                             \
                        v[(8 + k) * xs + t] = a[2][k] - a[1][k];                             \
                        v[(12 + k) * xs + t] = a[1][k] - a[3][k];                            \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    free(E);                                                                                \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* y <- A^T M A (+ bias) for nimg images; M rows (xi * O + o) * ld + image * T + tile. */    \
FNN_CLONES int fnn_wino_out_##SUF(const T *restrict M, ptrdiff_t ld, T *restrict y,          \
                                  const T *restrict bias, ptrdiff_t nimg, ptrdiff_t O,       \
                                  const fnn_conv_geom *g)                                    \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t OH = g->oh, OW = g->ow, NT = TH * TW, xs = O * ld;                       \
    T *buf = (T *)malloc((size_t)(4 * TW) * sizeof(T));                                      \
    if (!buf) return -1;                                                                    \
    T *y0e = buf, *y0o = buf + TW, *y1e = buf + 2 * TW, *y1o = buf + 3 * TW;                 \
    for (ptrdiff_t n = 0; n < nimg; n++)                                                     \
        for (ptrdiff_t o = 0; o < O; o++) {                                                  \
            const T b = bias ? bias[o] : (T)0;                                               \
            T *yp = y + (n * O + o) * OH * OW;                                               \
            for (ptrdiff_t ty = 0; ty < TH; ty++) {                                          \
                const T *m = M + o * ld + n * NT + ty * TW;                                  \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t t = 0; t < TW; t++) {                                         \
                    T q[2][4];                                                               \
                    for (int j = 0; j < 4; j++) {                                            \
                        const T m0 = m[j * xs + t], m1 = m[(4 + j) * xs + t];                \
                        const T m2 = m[(8 + j) * xs + t], m3 = m[(12 + j) * xs + t];         \
                        q[0][j] = m0 + m1 + m2;                                              \
                        q[1][j] = m1 - m2 - m3;                                              \
                    }                                                                        \
                    y0e[t] = q[0][0] + q[0][1] + q[0][2] + b;                                \
                    y0o[t] = q[0][1] - q[0][2] - q[0][3] + b;                                \
                    y1e[t] = q[1][0] + q[1][1] + q[1][2] + b;                                \
                    y1o[t] = q[1][1] - q[1][2] - q[1][3] + b;                                \
                }                                                                            \
                WINO_MERGE(yp + 2 * ty * OW, y0e, y0o, OW);                                  \
                if (2 * ty + 1 < OH) WINO_MERGE(yp + (2 * ty + 1) * OW, y1e, y1o, OW);       \
            }                                                                                \
        }                                                                                    \
    free(buf);                                                                              \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* gM <- A gy A^T (2x2 output-gradient tiles -> 4x4) for nimg images. */                   \
FNN_CLONES int fnn_wino_gout_##SUF(const T *restrict gy, T *restrict gM, ptrdiff_t ld,       \
                                   ptrdiff_t nimg, ptrdiff_t O, const fnn_conv_geom *g)      \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t OH = g->oh, OW = g->ow, NT = TH * TW, xs = O * ld;                       \
    T *buf = (T *)malloc((size_t)(4 * TW) * sizeof(T));                                      \
    if (!buf) return -1;                                                                    \
    T *g0e = buf, *g0o = buf + TW, *g1e = buf + 2 * TW, *g1o = buf + 3 * TW;                 \
    for (ptrdiff_t n = 0; n < nimg; n++)                                                     \
        for (ptrdiff_t o = 0; o < O; o++) {                                                  \
            const T *gp = gy + (n * O + o) * OH * OW;                                        \
            for (ptrdiff_t ty = 0; ty < TH; ty++) {                                          \
                WINO_SPLIT(T, gp + 2 * ty * OW, OW, 0, g0e, g0o, TW);                        \
                WINO_SPLIT(T, gp + (2 * ty + 1) * OW, (2 * ty + 1 < OH) ? OW : 0, 0, g1e, g1o, TW); \
                T *m = gM + o * ld + n * NT + ty * TW;                                       \
                /* per row a: s_a = A g_a = (e, e + o, e - o, -o); then along a.  One */   \
                /* pass per column j keeps the store streams in registers. */               \
                for (int j = 0; j < 4; j++) {                                                \
                    const T ce = j == 3 ? 0 : 1, co = j == 0 ? 0 : (j == 1 ? 1 : -1);        \
                    T *m0 = m + j * xs, *m1 = m + (4 + j) * xs;                              \
                    T *m2 = m + (8 + j) * xs, *m3 = m + (12 + j) * xs;                       \
                    WINO_IVDEP                                                               \
                    for (ptrdiff_t t = 0; t < TW; t++) {                                     \
                        const T s0 = ce * g0e[t] + co * g0o[t];                              \
                        const T s1 = ce * g1e[t] + co * g1o[t];                              \
                        m0[t] = s0;                                                          \
                        m1[t] = s0 + s1;                                                     \
                        m2[t] = s0 - s1;                                                     \
                        m3[t] = -s1;                                                         \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    free(buf);                                                                              \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* gx <- sum over tiles of B dV B^T (overwrites gx) for nimg images. */                     \
FNN_CLONES int fnn_wino_gin_##SUF(const T *restrict dV, ptrdiff_t ld, T *restrict gx,        \
                                  ptrdiff_t nimg, ptrdiff_t C, const fnn_conv_geom *g)       \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t H = g->h, W = g->w, NT = TH * TW, xs = C * ld;                           \
    const ptrdiff_t HP = 2 * TH + 2, L = TW + 1;                                             \
    /* even / odd column accumulators of the padded plane, and one tile row's */            \
    /* 16 transformed values per tile */                                                    \
    T *AE = (T *)malloc((size_t)(2 * HP * L + 16 * TW) * sizeof(T));                         \
    if (!AE) return -1;                                                                     \
    T *AO = AE + HP * L, *tmp = AO + HP * L;                                                 \
    for (ptrdiff_t n = 0; n < nimg; n++)                                                     \
        for (ptrdiff_t c = 0; c < C; c++) {                                                  \
            memset(AE, 0, (size_t)(2 * HP * L) * sizeof(T));                                \
            for (ptrdiff_t ty = 0; ty < TH; ty++) {                                          \
                const T *v = dV + c * ld + n * NT + ty * TW;                                 \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t t = 0; t < TW; t++) {                                         \
                    T q[4][4];                                                               \
                    for (int k = 0; k < 4; k++) { /* B along the rows */                     \
                        const T v0 = v[k * xs + t], v1 = v[(4 + k) * xs + t];                \
                        const T v2 = v[(8 + k) * xs + t], v3 = v[(12 + k) * xs + t];         \
                        q[0][k] = v0;                                                        \
                        q[1][k] = v1 - v2 + v3;                                              \
                        q[2][k] = v1 + v2 - v0;                                              \
                        q[3][k] = -v3;                                                       \
                    }                                                                        \
                    for (int r = 0; r < 4; r++) { /* and along the columns */                \
                        tmp[(4 * r) * TW + t] = q[r][0];                                     \
                        tmp[(4 * r + 1) * TW + t] = q[r][1] - q[r][2] + q[r][3];             \
                        tmp[(4 * r + 2) * TW + t] = q[r][1] + q[r][2] - q[r][0];             \
                        tmp[(4 * r + 3) * TW + t] = -q[r][3];                                \
                    }                                                                        \
                }                                                                            \
                /* tiles overlap by two columns: columns 2t, 2t+1 and 2t+2, 2t+3 */         \
                for (ptrdiff_t r = 0; r < 4; r++) {                                          \
                    T *ae = AE + (2 * ty + r) * L, *ao = AO + (2 * ty + r) * L;              \
                    const T *s = tmp + 4 * r * TW;                                           \
                    for (ptrdiff_t t = 0; t < TW; t++) {                                     \
                        ae[t] += s[t];                                                       \
                        ao[t] += s[TW + t];                                                  \
                    }                                                                        \
                    for (ptrdiff_t t = 0; t < TW; t++) {                                     \
                        ae[t + 1] += s[2 * TW + t];                                          \
                        ao[t + 1] += s[3 * TW + t];                                          \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
            T *gp = gx + (n * C + c) * H * W;                                                \
            for (ptrdiff_t h = 0; h < H; h++) {                                              \
                const T *ae = AE + (h + g->ph) * L, *ao = AO + (h + g->ph) * L;              \
                if (g->pw & 1) /* column w + pw: odd for even w */                           \
                    WINO_MERGE(gp + h * W, ao + (g->pw >> 1), ae + ((g->pw + 1) >> 1), W);   \
                else                                                                         \
                    WINO_MERGE(gp + h * W, ae + (g->pw >> 1), ao + (g->pw >> 1), W);         \
            }                                                                                \
        }                                                                                    \
    free(AE);                                                                               \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* U[(xi * O + o) * C + c] <- (G w[o, c] G^T)[xi] */                                       \
void fnn_wino_weight_##SUF(const T *restrict w, T *restrict U, ptrdiff_t O, ptrdiff_t C)    \
{                                                                                           \
    const ptrdiff_t xs = O * C;                                                              \
    for (ptrdiff_t oc = 0; oc < O * C; oc++) {                                               \
        const T *k = w + 9 * oc;                                                             \
        T t[4][3], u[4][4];                                                                  \
        for (int j = 0; j < 3; j++) {                                                        \
            t[0][j] = k[j];                                                                  \
            t[1][j] = (T)0.5 * (k[j] + k[3 + j] + k[6 + j]);                                 \
            t[2][j] = (T)0.5 * (k[j] - k[3 + j] + k[6 + j]);                                 \
            t[3][j] = k[6 + j];                                                              \
        }                                                                                    \
        for (int i = 0; i < 4; i++) {                                                        \
            u[i][0] = t[i][0];                                                               \
            u[i][1] = (T)0.5 * (t[i][0] + t[i][1] + t[i][2]);                                \
            u[i][2] = (T)0.5 * (t[i][0] - t[i][1] + t[i][2]);                                \
            u[i][3] = t[i][2];                                                               \
        }                                                                                    \
        for (int i = 0; i < 16; i++) U[i * xs + oc] = u[i / 4][i % 4];                       \
    }                                                                                        \
}                                                                                           \
                                                                                            \
/* gw[o, c] (3x3) <- G^T dU G (or += when accumulate); dU[(xi * O + o) * C + c] */          \
void fnn_wino_wgrad_##SUF(const T *restrict dU, T *restrict gw, ptrdiff_t O, ptrdiff_t C,   \
                          int accumulate)                                                   \
{                                                                                           \
    const ptrdiff_t xs = O * C;                                                              \
    for (ptrdiff_t oc = 0; oc < O * C; oc++) {                                               \
        T u[4][4], t[3][4];                                                                  \
        for (int i = 0; i < 16; i++) u[i / 4][i % 4] = dU[i * xs + oc];                      \
        for (int j = 0; j < 4; j++) {                                                        \
            t[0][j] = u[0][j] + (T)0.5 * (u[1][j] + u[2][j]);                                \
            t[1][j] = (T)0.5 * (u[1][j] - u[2][j]);                                          \
            t[2][j] = (T)0.5 * (u[1][j] + u[2][j]) + u[3][j];                                \
        }                                                                                    \
        T *k = gw + 9 * oc;                                                                  \
        for (int i = 0; i < 3; i++) {                                                        \
            const T r0 = t[i][0] + (T)0.5 * (t[i][1] + t[i][2]);                             \
            const T r1 = (T)0.5 * (t[i][1] - t[i][2]);                                       \
            const T r2 = (T)0.5 * (t[i][1] + t[i][2]) + t[i][3];                             \
            if (accumulate) {                                                                \
                k[3 * i] += r0; k[3 * i + 1] += r1; k[3 * i + 2] += r2;                      \
            } else {                                                                         \
                k[3 * i] = r0; k[3 * i + 1] = r1; k[3 * i + 2] = r2;                         \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
}

DEFINE_WINO(float, f32)
DEFINE_WINO(double, f64)
