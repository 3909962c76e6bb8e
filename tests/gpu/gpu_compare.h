/* gpu_compare.h - the element-wise comparison the GPU op tests share: a
 * device result against the CPU oracle's, with an absolute and a relative
 * tolerance, one summary line per comparison and one EXPECT (test_util.h).
 * NaN on either side is out of tolerance. */
#ifndef RT_TESTS_GPU_COMPARE_H
#define RT_TESTS_GPU_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "test_util.h"

static void compare(const char *op, const char *what, const float *got, const float *ref,
                    int64_t n, double atol, double rtol)
{
    double max_abs = 0.0, worst = 0.0;
    int64_t bad = 0, first_bad = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        double ratio = tol > 0 ? d / tol : (d > 0 ? INFINITY : 0.0);
        if (isnan(got[i]) || isnan(ref[i]) || !test_close(got[i], ref[i], atol, rtol)) {
            if (first_bad < 0)
                first_bad = i;
            bad++;
            ratio = isnan(ratio) ? INFINITY : ratio;
        }
        if (d > max_abs && !isnan(d))
            max_abs = d;
        if (ratio > worst || isnan(ratio))
            worst = isnan(ratio) ? INFINITY : ratio;
    }
    printf("op %-26s %-32s n=%-9lld max_abs_err=%.3e err/tol=%.3f %s\n", op, what,
           (long long)n, max_abs, worst, bad ? "FAIL" : "ok");
    EXPECT(bad == 0, "%s %s: %lld of %lld elements out of tolerance (first at %lld: gpu %.9g cpu %.9g)",
           op, what, (long long)bad, (long long)n, (long long)first_bad,
           first_bad >= 0 ? got[first_bad] : 0.0, first_bad >= 0 ? ref[first_bad] : 0.0);
}

#endif
