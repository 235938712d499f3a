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
 * Summed over input channels, the element-wise product becomes 16 GEMMs, one
 * per transform point xi = 4*i + j:
 *     M[xi] (R x O) = V[xi] (R x C) @ U[xi] (C x O)
 * over the R = images * T tiles, with U[xi][c][o] = (G g[o, c] G^T)[xi] and
 * V = B^T d B.  The GEMMs run in NumPy's BLAS; this file has the transforms.
 * Backward is the transpose of the same linear maps:
 *     gM = A gy_tile A^T                      (2x2 -> 4x4 per output tile)
 *     dV[xi] = gM[xi] @ U[xi]^T,  gx += B dV B^T (tiles overlap by 2)
 *     dU[xi] = V[xi]^T @ gM[xi],  gW = G^T dU G.
 * All coefficients are 0, +-1 and +-0.5, so float32 results stay within a few
 * ulp of the direct sum's rounding.
 *
 * Layout.  V, M, gM and dV are (16, R, channels) with the 16 transform points
 * ps elements apart (ps >= R * channels): one row of channels per tile, tiles
 * of an image in row-major order (ty * TW + tx, TH = ceil(OH / 2), TW =
 * ceil(OW / 2)), images one after another.  So each GEMM operand V[xi], M[xi],
 * gM[xi], dV[xi] is a dense (R, channels) matrix (measured 1.8-2.1x faster in
 * OpenBLAS for the backward GEMMs than 16 * channels-strided rows), and every
 * transform loops over the channels innermost, with unit stride on both sides:
 * it works on one image at a time in a channels-last (HWC) copy of its plane,
 * made or read back by one transposition per image (a per-plane version
 * vectorized over a tile row was slower: loop overhead per row).  The functions
 * take nimg consecutive images (x, y in NCHW) and return -1 when their scratch
 * plane cannot be allocated (nothing written), else 0. */
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

/* Transposes: d[j * ds + i] = s[i * ss + j] for i < nr, j < nc.  The HWC copies of
 * the transforms are such transposes of a plane's rows (channels x W <-> W x
 * channels); done element by element they took half of a transform's time, so
 * full 64-byte blocks (16 x 16 floats, 8 x 8 doubles) go through registers:
 * log2(B) rounds of interleaving rows i and i + B/2 give the transpose. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
typedef float wino_vf __attribute__((vector_size(64)));
typedef double wino_vd __attribute__((vector_size(64)));
#define WINO_ZIP_F32(a, b, r0, r1) do {                                                      \
        r0 = __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22,  \
                                     7, 23);                                                 \
        r1 = __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, \
                                     30, 15, 31);                                            \
    } while (0)
#define WINO_ZIP_F64(a, b, r0, r1) do {                                                      \
        r0 = __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11);                        \
        r1 = __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);                      \
    } while (0)
/* always_inline: compiled inside each FNN_CLONES transform, for its instruction set */
#define DEFINE_WINO_BLOCK(T, V, SUF, B, ROUNDS, ZIP)                                         \
static inline __attribute__((always_inline)) void                                            \
wino_block_##SUF(const T *restrict s, ptrdiff_t ss, T *restrict d, ptrdiff_t ds)            \
{                                                                                           \
    V r[B], o[B];                                                                            \
    for (int i = 0; i < B; i++) memcpy(&r[i], s + i * ss, sizeof(V));                        \
    for (int round = 0; round < ROUNDS; round++) {                                           \
        for (int i = 0; i < B / 2; i++) ZIP(r[i], r[i + B / 2], o[2 * i], o[2 * i + 1]);     \
        for (int i = 0; i < B; i++) r[i] = o[i];                                             \
    }                                                                                        \
    for (int j = 0; j < B; j++) memcpy(d + j * ds, &r[j], sizeof(V));                        \
}
DEFINE_WINO_BLOCK(float, wino_vf, f32, 16, 4, WINO_ZIP_F32)
DEFINE_WINO_BLOCK(double, wino_vd, f64, 8, 3, WINO_ZIP_F64)
#define WINO_BLOCK(SUF, s, ss, d, ds) wino_block_##SUF(s, ss, d, ds)
#define WINO_B(T) ((ptrdiff_t)(64 / sizeof(T)))
#else
#define WINO_BLOCK(SUF, s, ss, d, ds) ((void)0)
#define WINO_B(T) ((ptrdiff_t)1 << 30) /* no full blocks: element by element */
#endif

#define DEFINE_WINO_TRANSPOSE(T, SUF)                                                        \
static inline __attribute__((always_inline)) void                                            \
wino_transpose_##SUF(const T *restrict s, ptrdiff_t ss, ptrdiff_t nr, ptrdiff_t nc,          \
                     T *restrict d, ptrdiff_t ds)                                            \
{                                                                                           \
    const ptrdiff_t B = WINO_B(T), nr_b = nr - nr % B, nc_b = nc - nc % B;                   \
    for (ptrdiff_t i = 0; i < nr_b; i += B)                                                  \
        for (ptrdiff_t j = 0; j < nc_b; j += B)                                              \
            WINO_BLOCK(SUF, s + i * ss + j, ss, d + j * ds + i, ds);                         \
    for (ptrdiff_t i = 0; i < nr; i++) /* the edges: rows past nr_b, columns past nc_b */    \
        for (ptrdiff_t j = i < nr_b ? nc_b : 0; j < nc; j++) d[j * ds + i] = s[i * ss + j];   \
}
DEFINE_WINO_TRANSPOSE(float, f32)
DEFINE_WINO_TRANSPOSE(double, f64)

#define WINO_TILES(g, TH, TW)                                                                \
    const ptrdiff_t TH = ((g)->oh + 1) / 2, TW = ((g)->ow + 1) / 2

#define DEFINE_WINO(T, SUF)                                                                  \
/* P (rows x cols x C, channels last) <- plane x (C x H x W) at row / column offset */       \
/* (ph, pw); the rest of P is left as it is. */                                             \
static inline __attribute__((always_inline)) void                                            \
wino_to_hwc_##SUF(const T *restrict x, T *restrict P, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,  \
                  ptrdiff_t cols, ptrdiff_t ph, ptrdiff_t pw)                                \
{                                                                                           \
    for (ptrdiff_t h = 0; h < H; h++)                                                        \
        wino_transpose_##SUF(x + h * W, H * W, C, W, P + ((h + ph) * cols + pw) * C, C);     \
}                                                                                           \
                                                                                            \
/* x (C x H x W) <- the (H x W) window of P at offset (ph, pw) */                            \
static inline __attribute__((always_inline)) void                                            \
wino_from_hwc_##SUF(const T *restrict P, T *restrict x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, \
                    ptrdiff_t cols, ptrdiff_t ph, ptrdiff_t pw)                              \
{                                                                                           \
    for (ptrdiff_t h = 0; h < H; h++)                                                        \
        wino_transpose_##SUF(P + ((h + ph) * cols + pw) * C, C, W, C, x + h * W, H * W);     \
}                                                                                           \
                                                                                            \
/* V <- B^T d B for every tile and channel of nimg images. */                               \
FNN_CLONES int fnn_wino_in_##SUF(const T *restrict x, T *restrict V, ptrdiff_t nimg,          \
                                 ptrdiff_t C, ptrdiff_t ps, const fnn_conv_geom *g)          \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t H = g->h, W = g->w, HP = 2 * TH + 2, WP = 2 * TW + 2, rs = WP * C;      \
    T *P = (T *)calloc((size_t)(HP * WP * C), sizeof(T)); /* zero border stays zero */     \
    if (!P) return -1;                                                                      \
    for (ptrdiff_t n = 0; n < nimg; n++) {                                                   \
        wino_to_hwc_##SUF(x + n * C * H * W, P, C, H, W, WP, g->ph, g->pw);                  \
        T *v = V + n * TH * TW * C;                                                          \
        for (ptrdiff_t ty = 0; ty < TH; ty++)                                                \
            for (ptrdiff_t tx = 0; tx < TW; tx++, v += C) {                                  \
                const T *d0 = P + (2 * ty * WP + 2 * tx) * C, *d1 = d0 + rs;                 \
                const T *d2 = d1 + rs, *d3 = d2 + rs;                                        \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t c = 0; c < C; c++) {                                          \
                    T a[4][4];                                                               \
                    const T *dr[4] = {d0 + c, d1 + c, d2 + c, d3 + c};                       \
                    for (int i = 0; i < 4; i++) { /* B^T along each row's 4 columns */       \
                        const T e0 = dr[i][0], e1 = dr[i][C];                                \
                        const T e2 = dr[i][2 * C], e3 = dr[i][3 * C];                        \
                        a[i][0] = e0 - e2; a[i][1] = e1 + e2;                                \
                        a[i][2] = e2 - e1; a[i][3] = e1 - e3;                                \
                    }                                                                        \
                    for (int k = 0; k < 4; k++) { /* then down the columns */                \
                        v[k * ps + c] = a[0][k] - a[2][k];                                   \
                        v[(4 + k) * ps + c] = a[1][k] + a[2][k];                             \
                        v[(8 + k) * ps + c] = a[2][k] - a[1][k];                             \
                        v[(12 + k) * ps + c] = a[1][k] - a[3][k];                            \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
    }                                                                                        \
    free(P);                                                                                \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* y <- A^T M A (+ bias) for nimg images. */                                               \
FNN_CLONES int fnn_wino_out_##SUF(const T *restrict M, T *restrict y, const T *restrict bias, \
                                  ptrdiff_t nimg, ptrdiff_t O, ptrdiff_t ps,                 \
                                  const fnn_conv_geom *g)                                    \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t OH = g->oh, OW = g->ow, W2 = 2 * TW, rs = W2 * O;                        \
    T *Y = (T *)malloc((size_t)(2 * TH * W2 * O + O) * sizeof(T));                           \
    if (!Y) return -1;                                                                      \
    T *b = Y + 2 * TH * W2 * O;                                                              \
    for (ptrdiff_t o = 0; o < O; o++) b[o] = bias ? bias[o] : (T)0;                          \
    for (ptrdiff_t n = 0; n < nimg; n++) {                                                   \
        const T *m = M + n * TH * TW * O;                                                    \
        for (ptrdiff_t ty = 0; ty < TH; ty++)                                                \
            for (ptrdiff_t tx = 0; tx < TW; tx++, m += O) {                                  \
                T *y0 = Y + (2 * ty * W2 + 2 * tx) * O, *y1 = y0 + rs;                       \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t o = 0; o < O; o++) {                                          \
                    T q[2][4];                                                               \
                    for (int j = 0; j < 4; j++) {                                            \
                        const T m0 = m[j * ps + o], m1 = m[(4 + j) * ps + o];                \
                        const T m2 = m[(8 + j) * ps + o], m3 = m[(12 + j) * ps + o];         \
                        q[0][j] = m0 + m1 + m2;                                              \
                        q[1][j] = m1 - m2 - m3;                                              \
                    }                                                                        \
                    y0[o] = q[0][0] + q[0][1] + q[0][2] + b[o];                              \
                    y0[O + o] = q[0][1] - q[0][2] - q[0][3] + b[o];                          \
                    y1[o] = q[1][0] + q[1][1] + q[1][2] + b[o];                              \
                    y1[O + o] = q[1][1] - q[1][2] - q[1][3] + b[o];                          \
                }                                                                            \
            }                                                                                \
        wino_from_hwc_##SUF(Y, y + n * O * OH * OW, O, OH, OW, W2, 0, 0);                    \
    }                                                                                        \
    free(Y);                                                                                \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* gM <- A gy A^T (2x2 output-gradient tiles -> 4x4) for nimg images. */                   \
FNN_CLONES int fnn_wino_gout_##SUF(const T *restrict gy, T *restrict gM, ptrdiff_t nimg,     \
                                   ptrdiff_t O, ptrdiff_t ps, const fnn_conv_geom *g)        \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t OH = g->oh, OW = g->ow, W2 = 2 * TW, rs = W2 * O;                        \
    T *G = (T *)calloc((size_t)(2 * TH * W2 * O), sizeof(T)); /* zeros past OH, OW stay */ \
    if (!G) return -1;                                                                      \
    for (ptrdiff_t n = 0; n < nimg; n++) {                                                   \
        wino_to_hwc_##SUF(gy + n * O * OH * OW, G, O, OH, OW, W2, 0, 0);                     \
        T *m = gM + n * TH * TW * O;                                                         \
        for (ptrdiff_t ty = 0; ty < TH; ty++)                                                \
            for (ptrdiff_t tx = 0; tx < TW; tx++, m += O) {                                  \
                const T *g0 = G + (2 * ty * W2 + 2 * tx) * O, *g1 = g0 + rs;                 \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t o = 0; o < O; o++) {                                          \
                    /* per row a: s_a = A g_a = (e, e + f, e - f, -f); then down */          \
                    const T e0 = g0[o], f0 = g0[O + o], e1 = g1[o], f1 = g1[O + o];          \
                    const T s0[4] = {e0, e0 + f0, e0 - f0, -f0};                             \
                    const T s1[4] = {e1, e1 + f1, e1 - f1, -f1};                             \
                    for (int j = 0; j < 4; j++) {                                            \
                        m[j * ps + o] = s0[j];                                               \
                        m[(4 + j) * ps + o] = s0[j] + s1[j];                                 \
                        m[(8 + j) * ps + o] = s0[j] - s1[j];                                 \
                        m[(12 + j) * ps + o] = -s1[j];                                       \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
    }                                                                                        \
    free(G);                                                                                \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* gx <- sum over tiles of B dV B^T (overwrites gx) for nimg images. */                     \
FNN_CLONES int fnn_wino_gin_##SUF(const T *restrict dV, T *restrict gx, ptrdiff_t nimg,      \
                                  ptrdiff_t C, ptrdiff_t ps, const fnn_conv_geom *g)         \
{                                                                                           \
    WINO_TILES(g, TH, TW);                                                                   \
    const ptrdiff_t H = g->h, W = g->w, HP = 2 * TH + 2, WP = 2 * TW + 2, rs = WP * C;      \
    T *A = (T *)malloc((size_t)(HP * WP * C) * sizeof(T));                                   \
    if (!A) return -1;                                                                      \
    for (ptrdiff_t n = 0; n < nimg; n++) {                                                   \
        memset(A, 0, (size_t)(HP * WP * C) * sizeof(T));                                     \
        const T *v = dV + n * TH * TW * C;                                                   \
        for (ptrdiff_t ty = 0; ty < TH; ty++)                                                \
            for (ptrdiff_t tx = 0; tx < TW; tx++, v += C) {                                  \
                T *a0 = A + (2 * ty * WP + 2 * tx) * C, *a1 = a0 + rs;                       \
                T *a2 = a1 + rs, *a3 = a2 + rs;                                              \
                WINO_IVDEP                                                                   \
                for (ptrdiff_t c = 0; c < C; c++) {                                          \
                    T q[4][4];                                                               \
                    for (int k = 0; k < 4; k++) { /* B along the rows */                     \
                        const T v0 = v[k * ps + c], v1 = v[(4 + k) * ps + c];                \
                        const T v2 = v[(8 + k) * ps + c], v3 = v[(12 + k) * ps + c];         \
                        q[0][k] = v0;                                                        \
                        q[1][k] = v1 - v2 + v3;                                              \
                        q[2][k] = v1 + v2 - v0;                                              \
                        q[3][k] = -v3;                                                       \
                    }                                                                        \
                    T *ar[4] = {a0 + c, a1 + c, a2 + c, a3 + c};                             \
                    for (int r = 0; r < 4; r++) { /* and along the columns */                \
                        ar[r][0] += q[r][0];                                                 \
                        ar[r][C] += q[r][1] - q[r][2] + q[r][3];                             \
                        ar[r][2 * C] += q[r][1] + q[r][2] - q[r][0];                         \
                        ar[r][3 * C] -= q[r][3];                                             \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        wino_from_hwc_##SUF(A, gx + n * C * H * W, C, H, W, WP, g->ph, g->pw);               \
    }                                                                                        \
    free(A);                                                                                \
    return 0;                                                                               \
}                                                                                           \
                                                                                            \
/* U[(xi * C + c) * O + o] <- (G w[o, c] G^T)[xi] */                                       \
void fnn_wino_weight_##SUF(const T *restrict w, T *restrict U, ptrdiff_t O, ptrdiff_t C)    \
{                                                                                           \
    for (ptrdiff_t o = 0; o < O; o++)                                                        \
        for (ptrdiff_t c = 0; c < C; c++) {                                                  \
            const T *k = w + 9 * (o * C + c);                                                \
            T t[4][3], u[4][4];                                                              \
            for (int j = 0; j < 3; j++) {                                                    \
                t[0][j] = k[j];                                                              \
                t[1][j] = (T)0.5 * (k[j] + k[3 + j] + k[6 + j]);                             \
                t[2][j] = (T)0.5 * (k[j] - k[3 + j] + k[6 + j]);                             \
                t[3][j] = k[6 + j];                                                          \
            }                                                                                \
            for (int i = 0; i < 4; i++) {                                                    \
                u[i][0] = t[i][0];                                                           \
                u[i][1] = (T)0.5 * (t[i][0] + t[i][1] + t[i][2]);                            \
                u[i][2] = (T)0.5 * (t[i][0] - t[i][1] + t[i][2]);                            \
                u[i][3] = t[i][2];                                                           \
            }                                                                                \
            for (int i = 0; i < 16; i++) U[(i * C + c) * O + o] = u[i / 4][i % 4];           \
        }                                                                                    \
}                                                                                           \
                                                                                            \
/* gw[o, c] (3x3) <- G^T dU G (or += when accumulate); dU[(xi * C + c) * O + o] */          \
void fnn_wino_wgrad_##SUF(const T *restrict dU, T *restrict gw, ptrdiff_t O, ptrdiff_t C,   \
                          int accumulate)                                                   \
{                                                                                           \
    for (ptrdiff_t o = 0; o < O; o++)                                                        \
        for (ptrdiff_t c = 0; c < C; c++) {                                                  \
            T u[4][4], t[3][4];                                                              \
            for (int i = 0; i < 16; i++) u[i / 4][i % 4] = dU[(i * C + c) * O + o];          \
            for (int j = 0; j < 4; j++) {                                                    \
                t[0][j] = u[0][j] + (T)0.5 * (u[1][j] + u[2][j]);                            \
                t[1][j] = (T)0.5 * (u[1][j] - u[2][j]);                                      \
                t[2][j] = (T)0.5 * (u[1][j] + u[2][j]) + u[3][j];                            \
            }                                                                                \
            T *k = gw + 9 * (o * C + c);                                                     \
            for (int i = 0; i < 3; i++) {                                                    \
                const T r0 = t[i][0] + (T)0.5 * (t[i][1] + t[i][2]);                         \
                const T r1 = (T)0.5 * (t[i][1] - t[i][2]);                                   \
                const T r2 = (T)0.5 * (t[i][1] + t[i][2]) + t[i][3];                         \
                if (accumulate) {                                                            \
                    k[3 * i] += r0; k[3 * i + 1] += r1; k[3 * i + 2] += r2;                  \
                } else {                                                                     \
                    k[3 * i] = r0; k[3 * i + 1] = r1; k[3 * i + 2] = r2;                     \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
}

DEFINE_WINO(float, f32)
DEFINE_WINO(double, f64)
