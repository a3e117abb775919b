/* Tests of common/rng.c: determinism per seed and the distributions' moments. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <string.h>

#include "common/cw.h"

Test(cw_rng, same_seed_same_stream_different_seed_different_stream)
{
    cw_rng a, b, c;
    cw_rng_seed(&a, 42);
    cw_rng_seed(&b, 42);
    cw_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = cw_rng_u64(&a), y = cw_rng_u64(&b), z = cw_rng_u64(&c);
        cr_assert(eq(u64, x, y));
        differ += x != z;
    }
    cr_expect(gt(int, differ, 990));
}

Test(cw_rng, uniform_is_inside_open_interval_with_mean_half)
{
    cw_rng r;
    cw_rng_seed(&r, 7);
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = cw_rng_uniform(&r);
        cr_assert(u > 0.0 && u < 1.0);
        sum += u;
    }
    /* sd of the mean = sqrt(1/12/n) ~ 0.00065; 5 sd. */
    cr_expect(epsilon_eq(dbl, sum / n, 0.5, 0.0033));
}

Test(cw_rng, below_is_unbiased_over_small_range)
{
    cw_rng r;
    cw_rng_seed(&r, 11);
    int counts[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        uint64_t v = cw_rng_below(&r, 7);
        cr_assert(lt(u64, v, 7));
        counts[v]++;
    }
    /* Each count ~ Binomial(n, 1/7): sd ~ 92; allow 5 sd. */
    for (int k = 0; k < 7; k++) {
        cr_expect(lt(int, abs(counts[k] - 10000), 460), "bucket %d has %d", k, counts[k]);
    }
}

Test(cw_rng, normal_has_unit_variance)
{
    cw_rng r;
    cw_rng_seed(&r, 3);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = cw_rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    cr_expect(epsilon_eq(dbl, mean, 0.0, 0.012));
    cr_expect(epsilon_eq(dbl, var, 1.0, 0.02));
}

Test(cw_rng, shuffle_is_a_permutation_and_streams_differ)
{
    cw_rng r;
    cw_rng_seed_stream(&r, 5, 1);
    int a[50];
    for (int i = 0; i < 50; i++) {
        a[i] = i;
    }
    cw_rng_shuffle(&r, a, 50, sizeof a[0]);
    int seen[50] = {0}, moved = 0;
    for (int i = 0; i < 50; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 50; i++) {
        cr_assert(eq(int, seen[i], 1));
    }
    cr_expect(gt(int, moved, 30));
    cw_rng s1, s2;
    cw_rng_seed_stream(&s1, 5, 1);
    cw_rng_seed_stream(&s2, 5, 2);
    cr_expect(ne(u64, cw_rng_u64(&s1), cw_rng_u64(&s2)));
}

Test(cw_rng, shuffle_moves_elements_larger_than_its_swap_buffer)
{
    /* 300-byte elements used to be left unshuffled (a silent no-op above 256 bytes). */
    typedef struct big {
        int id;
        char pad[296];
    } big;
    big a[20];
    for (int i = 0; i < 20; i++) {
        memset(&a[i], 0, sizeof a[i]);
        a[i].id = i;
        a[i].pad[295] = (char)i;
    }
    cw_rng r;
    cw_rng_seed(&r, 9);
    cw_rng_shuffle(&r, a, 20, sizeof a[0]);
    int seen[20] = {0}, moved = 0;
    for (int i = 0; i < 20; i++) {
        cr_assert(eq(int, a[i].pad[295], a[i].id), "element %d torn", i);
        seen[a[i].id]++;
        moved += a[i].id != i;
    }
    for (int i = 0; i < 20; i++) {
        cr_assert(eq(int, seen[i], 1));
    }
    cr_expect(gt(int, moved, 10));
}
