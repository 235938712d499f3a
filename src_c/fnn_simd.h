/* fnn_simd.h -- one portable binary, several x86-64 levels.
 *
 * FNN_CLONES makes gcc emit a clone of a loop function for x86-64-v4 (AVX-512),
 * x86-64-v3 (AVX2/FMA) and the baseline; the dynamic loader picks one for the
 * running CPU (ifunc).  Building with -DFNN_NO_CLONES, or a compiler without the
 * attribute, gives the baseline only. */
#ifndef FNN_SIMD_H
#define FNN_SIMD_H
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12) \
    && defined(__linux__) && !defined(FNN_NO_CLONES)
#define FNN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FNN_HAVE_CLONES 1
#else
#define FNN_CLONES
#define FNN_HAVE_CLONES 0
#endif
#endif
