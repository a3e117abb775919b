/* common/stats.c: order statistics for benchmark and experiment summaries. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/cw.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cw_quantile(const double *x, size_t n, double q)
{
    if (n == 0) {
        return 0.0;
    }
    double *c = malloc(n * sizeof *c);
    if (!c) {
        return 0.0;
    }
    memcpy(c, x, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    if (q <= 0) {
        q = 0;
    }
    if (q >= 1) {
        q = 1;
    }
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double frac = pos - (double)lo;
    double v = c[lo] * (1 - frac) + c[hi] * frac;
    free(c);
    return v;
}

double cw_median(const double *x, size_t n)
{
    return cw_quantile(x, n, 0.5);
}
