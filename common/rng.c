/* common/rng.c: xoshiro256** (Blackman & Vigna, 2018), the only source of
 * randomness in causeway, always seeded from the command line. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "common/cw.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void cw_rng_seed(cw_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&x);
    }
}

void cw_rng_seed_stream(cw_rng *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
    uint64_t mixed = splitmix64(&x);
    cw_rng_seed(rng, mixed);
}

uint64_t cw_rng_u64(cw_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cw_rng_uniform(cw_rng *rng)
{
    /* 52 random mantissa bits offset by half a step: strictly inside (0, 1). */
    return ((double)(cw_rng_u64(rng) >> 12) + 0.5) * (1.0 / 4503599627370496.0);
}

uint64_t cw_rng_below(cw_rng *rng, uint64_t n)
{
    /* Lemire, "Fast random integer generation in an interval" (TOMACS 2019). */
    uint64_t x = cw_rng_u64(rng);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            x = cw_rng_u64(rng);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double cw_rng_normal(cw_rng *rng)
{
    double u1 = cw_rng_uniform(rng);
    double u2 = cw_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double cw_rng_gumbel(cw_rng *rng)
{
    return -log(-log(cw_rng_uniform(rng)));
}

bool cw_rng_bernoulli(cw_rng *rng, double p)
{
    return cw_rng_uniform(rng) < p;
}

/* Swaps two elements through a small buffer, in chunks, so any element size works. */
static void swap_bytes(unsigned char *a, unsigned char *b, size_t n)
{
    unsigned char tmp[256];
    while (n > 0) {
        size_t c = n < sizeof tmp ? n : sizeof tmp;
        memcpy(tmp, a, c);
        memcpy(a, b, c);
        memcpy(b, tmp, c);
        a += c;
        b += c;
        n -= c;
    }
}

void cw_rng_shuffle(cw_rng *rng, void *base, size_t n, size_t elem_bytes)
{
    unsigned char *b = base;
    if (n < 2) {
        return;
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)cw_rng_below(rng, i + 1);
        if (j != i) {
            swap_bytes(b + i * elem_bytes, b + j * elem_bytes, elem_bytes);
        }
    }
}
