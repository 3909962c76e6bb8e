/* cpu_vecmath.h - lets the CPU ops' loops over expf and tanhf vectorise.
 * glibc ships vector versions of both (libmvec, linked through libm) but
 * math.h announces them only under -ffast-math, whose other licences
 * (reassociation, no NaN or infinity) an oracle cannot take. Declaring the
 * two functions again with GCC's simd attribute is all the announcement
 * needs: inside `omp simd` loops GCC then calls the vector variants, which
 * glibc documents as accurate to within 4 ulp (the scalar ones to 1). */
#ifndef RT_TRAINER_OPS_CPU_VECMATH_H
#define RT_TRAINER_OPS_CPU_VECMATH_H

#include <math.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(__FAST_MATH__)
__attribute__((__simd__("notinbranch"))) extern float expf(float);
__attribute__((__simd__("notinbranch"))) extern float tanhf(float);
#endif

#endif
