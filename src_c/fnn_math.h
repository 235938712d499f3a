/* fnn_math.h -- exp, log1p, sigmoid and tanh written so that loops calling them
 * vectorize (a libm call keeps a loop scalar: the logistic loss ran at 28 ns per
 * element, a float32 tanh activation at 16 ns).  Shared by the dense, conv, loss
 * and recurrent loops; static and always inlined, so each SIMD clone of a
 * caller gets its own vector code.
 *
 * float32 exp is Cephes' expf for x <= 0 (range reduction by ln2 in two parts,
 * degree-6 polynomial, 2^n from the exponent bits; about 1 ulp; below -87 it
 * gives 0).  float64 exp for x <= 0: Taylor polynomial of degree 12 after the
 * same reduction (0 below -708).  log1p(e) for e in [0, 1]: 2 atanh(u), u = e / (2 + e) in [0, 1/3],
 * an odd series whose terms shrink by 1/9 (8 terms in float, 18 in double).
 * sigmoid(x) = 1/(1+e) or e/(1+e), e = exp(-|x|); float32 tanh(|x|) =
 * (1-e)/(1+e), e = exp(-2|x|), for |x| >= 0.625 and Cephes' odd polynomial
 * below, where 1-e would cancel; float64 tanh is libm's.  Measured against
 * float64 references: logistic loss values and gradients within 2 ulp.
 *
 * The selects below (clamp, sign, small/large branch) are if-converted into
 * blends only when gcc may evaluate both arms, i.e. without -ftrapping-math
 * (AVX-512 has masked ops and does not need it; AVX2 and SSE do, and without it
 * these loops stay scalar: 8x slower, measured).  fastnn never enables
 * floating-point traps; an includer puts the pragma before its first function. */
#ifndef FNN_MATH_H
#define FNN_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* row helpers are inlined into each SIMD clone of their caller (gcc does not
 * inline large ones on its own, and a helper compiled once for the baseline
 * target runs scalar code) */
#if defined(__GNUC__)
#define FNN_ROW static inline __attribute__((always_inline))
#else
#define FNN_ROW static inline
#endif

/* memcpy of a short row without the call: the row copies of im2col are often 8-24
 * floats, where the libc call and its size dispatch cost more than the copy.  Under
 * 64 bytes, two fixed-size (so inlined) copies that may overlap cover the row; d and
 * s must not overlap.  (Written out: as a loop over the sizes GCC 12 keeps the
 * libc call, and the 32-byte rows of im2col took 1.6x longer.) */
FNN_ROW void fnn_copy_row(void *restrict d, const void *restrict s, size_t b)
{
    char *dc = (char *)d;
    const char *sc = (const char *)s;
    if (b >= 64) {
        memcpy(dc, sc, b);
    } else if (b >= 32) {
        memcpy(dc, sc, 32);
        memcpy(dc + b - 32, sc + b - 32, 32);
    } else if (b >= 16) {
        memcpy(dc, sc, 16);
        memcpy(dc + b - 16, sc + b - 16, 16);
    } else if (b >= 8) {
        memcpy(dc, sc, 8);
        memcpy(dc + b - 8, sc + b - 8, 8);
    } else if (b >= 4) {
        memcpy(dc, sc, 4);
        memcpy(dc + b - 4, sc + b - 4, 4);
    }
}

/* exp(x) for x <= 0, float64, vectorizable (0 below -708, NaN stays NaN); the
 * rounding to an integer uses the 1.5 * 2^52 trick, as the float32 version (a
 * double -> int64 conversion kept this loop scalar) */
FNN_ROW double fnn_expneg_f64(double x)
{
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * 1.4426950408889634074 + 6755399441055744.0;
    double kf = t - 6755399441055744.0;
    int64_t ti;
    memcpy(&ti, &t, 8);
    int64_t ki = ti - INT64_C(0x4338000000000000);      /* the integer kf, in [-1022, 0] */
    double r = (xc - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
    double q = 1.0 / 479001600;
    q = q * r + 1.0 / 39916800; q = q * r + 1.0 / 3628800; q = q * r + 1.0 / 362880;
    q = q * r + 1.0 / 40320; q = q * r + 1.0 / 5040; q = q * r + 1.0 / 720;
    q = q * r + 1.0 / 120; q = q * r + 1.0 / 24; q = q * r + 1.0 / 6; q = q * r + 0.5;
    q = q * r + 1.0; q = q * r + 1.0;
    int64_t bits = (ki + 1023) << 52;
    double sc;
    memcpy(&sc, &bits, sizeof sc);
    double e = q * sc;
    return x < -708.0 ? 0.0 : e;
}

/* exp(x) for x <= 0, float32, vectorizable */
FNN_ROW float fnn_expneg_f32(float x)
{
    float xc = x < -87.0f ? -87.0f : x;
    float t = xc * 1.44269504088896341f + 12582912.0f;   /* 1.5 * 2^23: rounds to an integer */
    float n = t - 12582912.0f;
    int32_t ti;
    memcpy(&ti, &t, 4);
    int32_t ni = ti - 0x4B400000;                        /* the integer n, in [-126, 0] */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t si = (ni + 127) << 23;
    float s;
    memcpy(&s, &si, 4);
    float e = p * s;
    return x < -87.0f ? 0.0f : e;
}

FNN_ROW float fnn_sigmoid_f32(float x)
{
    float e = fnn_expneg_f32(-fabsf(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

FNN_ROW float fnn_tanh_f32(float x)
{
    float a = fabsf(x);
    float e = fnn_expneg_f32(-2.0f * a);
    float big = (1.0f - e) / (1.0f + e);
    float z = a * a;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * a + a;
    return copysignf(a < 0.625f ? small : big, x);
}

FNN_ROW double fnn_sigmoid_f64(double x)
{
    double e = fnn_expneg_f64(-fabs(x));
    double s = 1.0 / (1.0 + e);
    return x >= 0.0 ? s : e * s;
}

FNN_ROW double fnn_tanh_f64(double x) { return tanh(x); }

FNN_ROW float fnn_log1p01_f32(float e)
{
    float u = e / (2.0f + e), u2 = u * u, q = 1.0f / 15;
    q = q * u2 + 1.0f / 13; q = q * u2 + 1.0f / 11; q = q * u2 + 1.0f / 9;
    q = q * u2 + 1.0f / 7; q = q * u2 + 1.0f / 5; q = q * u2 + 1.0f / 3; q = q * u2 + 1.0f;
    return 2.0f * u * q;
}

FNN_ROW double fnn_log1p01_f64(double e)
{
    double u = e / (2.0 + e), u2 = u * u, q = 1.0 / 35;
    q = q * u2 + 1.0 / 33; q = q * u2 + 1.0 / 31; q = q * u2 + 1.0 / 29; q = q * u2 + 1.0 / 27;
    q = q * u2 + 1.0 / 25; q = q * u2 + 1.0 / 23; q = q * u2 + 1.0 / 21; q = q * u2 + 1.0 / 19;
    q = q * u2 + 1.0 / 17; q = q * u2 + 1.0 / 15; q = q * u2 + 1.0 / 13; q = q * u2 + 1.0 / 11;
    q = q * u2 + 1.0 / 9; q = q * u2 + 1.0 / 7; q = q * u2 + 1.0 / 5; q = q * u2 + 1.0 / 3;
    q = q * u2 + 1.0;
    return 2.0 * u * q;
}

#endif
