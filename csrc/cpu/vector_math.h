// Declares glibc's libmvec vector variants of the libm functions the step uses, so that GCC can
// vectorise the loops over nodes that call them (glibc itself declares them only under -ffast-math,
// which this project does not use: it would break the reference match and NaN handling).
// -fno-math-errno (CMakeLists.txt) lets the calls be treated as pure. Needs glibc >= 2.35 (expm1,
// tanh); elsewhere the loops stay scalar and results are the same up to libm rounding.
#pragma once
#include <cmath>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GLIBC_PREREQ) && !defined(__clang__)
#if __GLIBC_PREREQ(2, 35)
#define NMMFIT_VECTOR_MATH 1
#define NMMFIT_SIMD_DECL(ret, name, ...) extern "C" __attribute__((simd("notinbranch"))) ret name(__VA_ARGS__) noexcept;
NMMFIT_SIMD_DECL(double, exp, double)
NMMFIT_SIMD_DECL(float, expf, float)
NMMFIT_SIMD_DECL(double, expm1, double)
NMMFIT_SIMD_DECL(float, expm1f, float)
NMMFIT_SIMD_DECL(double, log, double)
NMMFIT_SIMD_DECL(float, logf, float)
NMMFIT_SIMD_DECL(double, sin, double)
NMMFIT_SIMD_DECL(float, sinf, float)
NMMFIT_SIMD_DECL(double, cos, double)
NMMFIT_SIMD_DECL(float, cosf, float)
NMMFIT_SIMD_DECL(double, tanh, double)
NMMFIT_SIMD_DECL(float, tanhf, float)
NMMFIT_SIMD_DECL(double, pow, double, double)
NMMFIT_SIMD_DECL(float, powf, float, float)
#undef NMMFIT_SIMD_DECL
#endif
#endif
