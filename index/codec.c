/* index/codec.c: the postings block codec: docid gaps and term frequencies of up
 * to 128 postings, each bit-packed at the block's own width (the "binary packing"
 * of Lemire & Boytsov, SPE 2015, scalar). Chosen by measurement on this machine:
 * decoding in-cache lists of the 1M-doc synth index runs at 0.9-0.95 G integers/s
 * of CPU time (gaps and tfs counted), above Debian's libstreamvbyte (~0.2 G/s per
 * the issue), below an SSSE3 StreamVByte (~2 G/s), but bit packing stores tfs
 * (mostly 1) in 0-2 bits where any byte-oriented code spends 8-10; width-specialised
 * unrolled unpacking measured no faster (0.86 G/s), so the generic loop stays.
 * Query time is dominated by other work (p50 0.14 ms top-10 at 1M docs). */
#include "config.h"

#include <string.h>

#include "index/index_int.h"

static inline uint32_t bits_needed(uint32_t v)
{
    return v ? 32u - (uint32_t)__builtin_clz(v) : 0u;
}

static int pack(const uint32_t *v, uint32_t n, uint32_t bits, cw_buf *out)
{
    size_t bytes = ((size_t)n * bits + 7) / 8;
    uint8_t tmp[IDX_BLOCK * 4 + 8];
    memset(tmp, 0, bytes + 8);
    uint64_t bitpos = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t w;
        size_t byte = bitpos >> 3;
        memcpy(&w, tmp + byte, 8);
        w |= (uint64_t)v[i] << (bitpos & 7);
        memcpy(tmp + byte, &w, 8);
        bitpos += bits;
    }
    return cw_buf_append(out, tmp, bytes);
}

int idx_block_encode(const uint32_t *docs, const uint32_t *tfs, uint32_t n, uint32_t prev_doc,
                     cw_buf *out)
{
    uint32_t gaps[IDX_BLOCK], tf1[IDX_BLOCK];
    uint32_t gmax = 0, tmax = 0;
    uint32_t prev = prev_doc;
    for (uint32_t i = 0; i < n; i++) {
        gaps[i] = docs[i] - prev - 1u; /* wraps to docs[0] for prev = UINT32_MAX */
        prev = docs[i];
        tf1[i] = tfs[i] - 1u;
        gmax |= gaps[i];
        tmax |= tf1[i];
    }
    uint8_t head[2] = {(uint8_t)bits_needed(gmax), (uint8_t)bits_needed(tmax)};
    int rc = cw_buf_append(out, head, 2);
    if (rc == CW_OK) {
        rc = pack(gaps, n, head[0], out);
    }
    if (rc == CW_OK) {
        rc = pack(tf1, n, head[1], out);
    }
    return rc;
}

/* Unpacks n values of `bits` bits; bits == 0 gives zeros. */
static inline void unpack(const uint8_t *p, uint32_t n, uint32_t bits, uint32_t *v)
{
    if (bits == 0) {
        memset(v, 0, n * sizeof *v);
        return;
    }
    const uint64_t mask = bits == 32 ? 0xFFFFFFFFull : ((1ull << bits) - 1);
    uint64_t bitpos = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t w;
        memcpy(&w, p + (bitpos >> 3), 8);
        v[i] = (uint32_t)((w >> (bitpos & 7)) & mask);
        bitpos += bits;
    }
}

size_t idx_block_decode(const uint8_t *p, size_t avail, uint32_t n, uint32_t prev_doc,
                        uint32_t *docs, uint32_t *tfs)
{
    if (avail < 2 || n == 0 || n > IDX_BLOCK) {
        return 0;
    }
    uint32_t gb = p[0], tb = p[1];
    if (gb > 32 || tb > 32) {
        return 0;
    }
    size_t gbytes = ((size_t)n * gb + 7) / 8, tbytes = ((size_t)n * tb + 7) / 8;
    if (2 + gbytes + tbytes > avail) {
        return 0;
    }
    unpack(p + 2, n, gb, docs);
    unpack(p + 2 + gbytes, n, tb, tfs);
    /* 64-bit running docid: a corrupt block cannot wrap around into a smaller docid. */
    int64_t d = prev_doc == UINT32_MAX ? -1 : (int64_t)prev_doc;
    for (uint32_t i = 0; i < n; i++) {
        d += (int64_t)docs[i] + 1;
        docs[i] = (uint32_t)d;
        tfs[i] += 1u;
    }
    if (d >= (int64_t)UINT32_MAX) {
        return 0;
    }
    return 2 + gbytes + tbytes;
}
