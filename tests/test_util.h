/* test_util.h - a minimal harness for C tests: EXPECT records a failure
 * with file:line and carries on, so one run reports every broken case;
 * TEST_EXIT() prints "N passed, N failed" and returns the exit code. */
#ifndef RT_TESTS_TEST_UTIL_H
#define RT_TESTS_TEST_UTIL_H

#include <math.h>
#include <stdio.h>

static int test_passed_count;
static int test_failed_count;

#define EXPECT(cond, ...) \
    do { if (cond) { test_passed_count++; } else { test_failed_count++; \
         fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
         fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* |got - want| <= atol + rtol*|want|, and never NaN */
static inline int test_close(double got, double want, double atol, double rtol)
{
    return !isnan(got) && fabs(got - want) <= atol + rtol * fabs(want);
}

#define TEST_EXIT() \
    (printf("%d passed, %d failed\n", test_passed_count, test_failed_count), \
     test_failed_count ? 1 : 0)

#endif
