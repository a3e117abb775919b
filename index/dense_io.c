/* index/dense_io.c: the checksummed section container of the dense files
 * (dense.enc, dense.ckpt, dense.hnsw): streamed atomic writes, mmapped reads that
 * verify every CRC-32C at open so a damaged file is refused with its byte offset. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/dense_int.h"

#define ALIGN 64u

static size_t header_bytes(uint32_t n_sect)
{
    return 8 + 4 + 4 + 8 * DENSE_N_META + (size_t)n_sect * 24 + 4;
}

static uint64_t align_up(uint64_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int dense_file_write(const char *path, const char magic[8], const uint64_t meta[DENSE_N_META],
                     const dense_section *sect, uint32_t n_sect, cw_err *err)
{
    if (n_sect > DENSE_MAX_SECTIONS) {
        return cw_err_set(err, CW_EINVAL, "%s: %u sections over the limit", path, n_sect);
    }
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        return cw_err_set(err, CW_EINVAL, "%s: path too long", path);
    }
    size_t hb = header_bytes(n_sect);
    unsigned char *hdr = calloc(1, hb);
    if (!hdr) {
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
    }
    memcpy(hdr, magic, 8);
    uint32_t version = DENSE_FILE_VERSION;
    memcpy(hdr + 8, &version, 4);
    memcpy(hdr + 12, &n_sect, 4);
    memcpy(hdr + 16, meta, 8 * DENSE_N_META);
    uint64_t off = align_up(hb);
    unsigned char *tab = hdr + 16 + 8 * DENSE_N_META;
    for (uint32_t i = 0; i < n_sect; i++) {
        uint32_t crc = cw_crc32c(0, sect[i].data, sect[i].bytes);
        uint32_t zero = 0;
        memcpy(tab + 24 * i, &off, 8);
        memcpy(tab + 24 * i + 8, &sect[i].bytes, 8);
        memcpy(tab + 24 * i + 16, &crc, 4);
        memcpy(tab + 24 * i + 20, &zero, 4);
        off = align_up(off + sect[i].bytes);
    }
    uint32_t hcrc = cw_crc32c(0, hdr, hb - 4);
    memcpy(hdr + hb - 4, &hcrc, 4);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(hdr);
        return cw_err_set(err, CW_EIO, "%s: %s", tmp, strerror(errno));
    }
    static const unsigned char pad[ALIGN];
    uint64_t pos = hb;
    int rc = write_all(fd, hdr, hb);
    for (uint32_t i = 0; rc == 0 && i < n_sect; i++) {
        uint64_t want = align_up(pos);
        rc = write_all(fd, pad, (size_t)(want - pos));
        pos = want;
        if (rc == 0) {
            rc = write_all(fd, sect[i].data, (size_t)sect[i].bytes);
            pos += sect[i].bytes;
        }
    }
    free(hdr);
    if (rc != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return cw_err_set(err, CW_EIO, "%s: write: %s", tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return cw_err_set(err, CW_EIO, "%s: %s", path, strerror(e));
    }
    return CW_OK;
}

int dense_file_map(const char *path, const char magic[8], uint32_t n_sect_min, dense_map *out,
                   cw_err *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        int code = errno == ENOENT ? CW_ENOTFOUND : CW_EIO;
        return cw_err_set(err, code, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cw_err_set(err, CW_EIO, "%s: stat: %s", path, strerror(e));
    }
    size_t size = (size_t)st.st_size;
    size_t hb = header_bytes(n_sect_min);
    if (size < hb) {
        close(fd);
        return cw_err_set(err, CW_ECORRUPT, "%s: byte %zu: file truncated (%zu bytes)", path, size,
                          size);
    }
    void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) {
        return cw_err_set(err, CW_EIO, "%s: mmap: %s", path, strerror(e));
    }
    const unsigned char *b = base;
    uint32_t version, n_sect, hcrc;
    memcpy(&version, b + 8, 4);
    memcpy(&n_sect, b + 12, 4);
    int rc = CW_OK;
    if (memcmp(b, magic, 8) != 0) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte 0: bad magic (not a %.8s file)", path, magic);
        goto fail;
    }
    if (version != DENSE_FILE_VERSION) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte 8: unsupported version %u", path, version);
        goto fail;
    }
    if (n_sect < n_sect_min || n_sect > DENSE_MAX_SECTIONS) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte 12: %u sections, expected %u to %u", path,
                        n_sect, n_sect_min, DENSE_MAX_SECTIONS);
        goto fail;
    }
    hb = header_bytes(n_sect);
    if (size < hb) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte %zu: file truncated (%zu bytes)", path, size,
                        size);
        goto fail;
    }
    memcpy(&hcrc, b + hb - 4, 4);
    if (cw_crc32c(0, b, hb - 4) != hcrc) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: byte %zu: header checksum mismatch", path, hb - 4);
        goto fail;
    }
    dense_map m = {.base = base, .bytes = size, .n_sect = n_sect};
    memcpy(m.meta, b + 16, 8 * DENSE_N_META);
    const unsigned char *tab = b + 16 + 8 * DENSE_N_META;
    for (uint32_t i = 0; i < n_sect; i++) {
        uint64_t off, len;
        uint32_t crc;
        memcpy(&off, tab + 24 * i, 8);
        memcpy(&len, tab + 24 * i + 8, 8);
        memcpy(&crc, tab + 24 * i + 16, 4);
        if (off < hb || off > size || len > size - off) {
            rc = cw_err_set(err, CW_ECORRUPT,
                            "%s: byte %zu: section %u [%llu, +%llu) outside the %zu-byte file",
                            path, (size_t)(tab + 24 * i - b), i, (unsigned long long)off,
                            (unsigned long long)len, size);
            goto fail;
        }
        if (cw_crc32c(0, b + off, len) != crc) {
            rc = cw_err_set(err, CW_ECORRUPT,
                            "%s: byte %llu: checksum mismatch in section %u (%llu bytes)", path,
                            (unsigned long long)off, i, (unsigned long long)len);
            goto fail;
        }
        m.sect[i].data = b + off;
        m.sect[i].bytes = len;
    }
    *out = m;
    return CW_OK;
fail:
    munmap(base, size);
    return rc;
}

void dense_file_unmap(dense_map *m)
{
    if (m && m->base) {
        munmap(m->base, m->bytes);
        m->base = NULL;
    }
}
