/* common/hash.c: CRC-32C for file checksums (index header, vector files) and a
 * 64-bit hash for hash tables and feature hashing. */
#include "config.h"

#include <string.h>

#include "common/cw.h"

static uint32_t crc_table[8][256];
static bool crc_ready;

static void crc_init(void)
{
    /* Slicing-by-8 tables for the reflected Castagnoli polynomial 0x82F63B78. */
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc_table[t - 1][i];
            crc_table[t][i] = (prev >> 8) ^ crc_table[0][prev & 0xFF];
        }
    }
    crc_ready = true;
}

uint32_t cw_crc32c(uint32_t crc, const void *data, size_t n)
{
    if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE)) {
        /* Idempotent: racing initialisers write identical tables. */
        crc_init();
    }
    const unsigned char *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc_table[7][w & 0xFF] ^ crc_table[6][(w >> 8) & 0xFF] ^
              crc_table[5][(w >> 16) & 0xFF] ^ crc_table[4][(w >> 24) & 0xFF] ^
              crc_table[3][(w >> 32) & 0xFF] ^ crc_table[2][(w >> 40) & 0xFF] ^
              crc_table[1][(w >> 48) & 0xFF] ^ crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
    }
    return ~crc;
}

static inline uint64_t mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t cw_hash64(const void *data, size_t n, uint64_t seed)
{
    /* A multiply-fold hash in the style of wyhash: fast on short keys (terms). */
    const unsigned char *p = data;
    const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
    uint64_t h = seed ^ k0 ^ (uint64_t)n * k1;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w, k1);
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    h = mix(h ^ tail ^ ((uint64_t)n << 56), k0);
    return mix(h, k1 ^ 0x8ebc6af09c88c6e3ULL);
}
