/* index/filefmt.c: the container format of index files: a checksummed 4096-byte
 * header with a section table, sections CRC-32C'd one by one. The builder streams
 * sections through idx_fw; idx_index_open maps files through idx_fmap and refuses
 * any truncated or altered file with the path and byte offset at fault. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/index_int.h"

#define FW_BUF_BYTES (1u << 20)

#if defined(__x86_64__)
/* CRC-32C with the SSE4.2 crc32 instruction: the same polynomial as cw_crc32c, about
 * ten times faster than its table-driven loop, which keeps open of a million-document
 * index (hundreds of MB checksummed) well under a second. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
                                                            size_t n)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return ~c32;
}
#endif

/* CRC-32C of the format: hardware when the CPU has it, else common's portable one. */
static uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) {
        return crc32c_hw(crc, data, n);
    }
#endif
    return cw_crc32c(crc, data, n);
}

struct idx_fw {
    int fd;
    char path[4096];
    uint32_t kind;
    uint64_t pos; /* file offset of the next byte (buffered included) */
    uint8_t *buf;
    size_t buf_len;
    bool in_section;
    uint64_t sec_start;
    uint32_t sec_crc;
    idx_file_header hdr;
};

static int fw_flush(idx_fw *w, cw_err *err)
{
    size_t done = 0;
    while (done < w->buf_len) {
        ssize_t k = write(w->fd, w->buf + done, w->buf_len - done);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return cw_err_set(err, CW_EIO, "write %s: %s", w->path, strerror(errno));
        }
        done += (size_t)k;
    }
    w->buf_len = 0;
    return CW_OK;
}

static int fw_raw(idx_fw *w, const void *p, size_t n, cw_err *err)
{
    const uint8_t *s = p;
    while (n > 0) {
        if (w->buf_len == FW_BUF_BYTES) {
            int rc = fw_flush(w, err);
            if (rc != CW_OK) {
                return rc;
            }
        }
        size_t k = CW_MIN(n, FW_BUF_BYTES - w->buf_len);
        memcpy(w->buf + w->buf_len, s, k);
        w->buf_len += k;
        w->pos += k;
        s += k;
        n -= k;
    }
    return CW_OK;
}

static int fw_zeros(idx_fw *w, size_t n, cw_err *err)
{
    static const uint8_t z[256];
    while (n > 0) {
        size_t k = CW_MIN(n, sizeof z);
        int rc = fw_raw(w, z, k, err);
        if (rc != CW_OK) {
            return rc;
        }
        n -= k;
    }
    return CW_OK;
}

int idx_fw_open(const char *path, uint32_t kind, idx_fw **out, cw_err *err)
{
    idx_fw *w = calloc(1, sizeof *w);
    if (!w || !(w->buf = malloc(FW_BUF_BYTES))) {
        free(w);
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", path);
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = cw_err_set(err, CW_EIO, "create %s: %s", path, strerror(errno));
        free(w->buf);
        free(w);
        return rc;
    }
    w->kind = kind;
    /* Placeholder header, rewritten by idx_fw_close. */
    int rc = fw_zeros(w, IDX_HEADER_BYTES, err);
    if (rc != CW_OK) {
        idx_fw_abort(w);
        return rc;
    }
    *out = w;
    return CW_OK;
}

int idx_fw_begin(idx_fw *w, uint32_t id, cw_err *err)
{
    if (w->in_section || w->hdr.n_sections >= IDX_MAX_SECTIONS) {
        return cw_err_set(err, CW_EINVAL, "%s: section %u: bad writer state", w->path, id);
    }
    uint64_t aligned = (w->pos + IDX_SECTION_ALIGN - 1) / IDX_SECTION_ALIGN * IDX_SECTION_ALIGN;
    int rc = fw_zeros(w, aligned - w->pos, err);
    if (rc != CW_OK) {
        return rc;
    }
    w->in_section = true;
    w->sec_start = w->pos;
    w->sec_crc = 0;
    w->hdr.sections[w->hdr.n_sections].id = id;
    return CW_OK;
}

int idx_fw_write(idx_fw *w, const void *p, size_t n, cw_err *err)
{
    if (n == 0) {
        return CW_OK;
    }
    w->sec_crc = crc32c(w->sec_crc, p, n);
    return fw_raw(w, p, n, err);
}

uint64_t idx_fw_section_pos(const idx_fw *w)
{
    return w->pos - w->sec_start;
}

int idx_fw_end(idx_fw *w, cw_err *err)
{
    idx_section_rec *s = &w->hdr.sections[w->hdr.n_sections];
    s->offset = w->sec_start;
    s->length = w->pos - w->sec_start;
    s->crc = w->sec_crc;
    w->hdr.n_sections++;
    w->in_section = false;
    return fw_zeros(w, IDX_SECTION_PAD, err);
}

int idx_fw_close(idx_fw *w, bool sync, uint32_t *header_crc, uint64_t *file_bytes, cw_err *err)
{
    int rc = fw_flush(w, err);
    if (rc != CW_OK) {
        idx_fw_abort(w);
        return rc;
    }
    uint8_t hdr[IDX_HEADER_BYTES];
    memset(hdr, 0, sizeof hdr);
    w->hdr.magic = IDX_MAGIC;
    w->hdr.version = IDX_FORMAT_VERSION;
    w->hdr.kind = w->kind;
    w->hdr.file_bytes = w->pos;
    memcpy(hdr, &w->hdr, sizeof w->hdr);
    uint32_t crc = crc32c(0, hdr, IDX_HEADER_BYTES - 4);
    memcpy(hdr + IDX_HEADER_BYTES - 4, &crc, 4);
    if (pwrite(w->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
        rc = cw_err_set(err, CW_EIO, "write %s: %s", w->path, strerror(errno));
        idx_fw_abort(w);
        return rc;
    }
    if ((sync && fsync(w->fd) != 0) || close(w->fd) != 0) {
        rc = cw_err_set(err, CW_EIO, "sync %s: %s", w->path, strerror(errno));
        w->fd = -1;
        idx_fw_abort(w);
        return rc;
    }
    if (header_crc) {
        *header_crc = crc;
    }
    if (file_bytes) {
        *file_bytes = w->pos;
    }
    free(w->buf);
    free(w);
    return CW_OK;
}

void idx_fw_abort(idx_fw *w)
{
    if (!w) {
        return;
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    free(w->buf);
    free(w);
}

int idx_fmap_open(const char *dir, const char *name, uint32_t kind, size_t verify_max_bytes,
                  idx_fmap *fm, cw_err *err)
{
    memset(fm, 0, sizeof *fm);
    snprintf(fm->path, sizeof fm->path, "%s/%s", dir, name);
    int fd = open(fm->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return cw_err_set(err, errno == ENOENT ? CW_ENOTFOUND : CW_EIO, "%s: %s", fm->path,
                          strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = cw_err_set(err, CW_EIO, "%s: %s", fm->path, strerror(errno));
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size < IDX_HEADER_BYTES) {
        close(fd);
        return cw_err_set(err, CW_ECORRUPT,
                          "%s: offset %lld: truncated (file shorter than its header)", fm->path,
                          (long long)st.st_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        return cw_err_set(err, CW_EIO, "mmap %s: %s", fm->path, strerror(errno));
    }
    fm->base = p;
    fm->size = (size_t)st.st_size;
    idx_file_header h;
    memcpy(&h, fm->base, sizeof h);
    int rc = CW_OK;
    if (h.magic != IDX_MAGIC) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: offset 0: not a causeway index file (bad magic)",
                        fm->path);
        goto fail;
    }
    uint32_t crc_stored;
    memcpy(&crc_stored, fm->base + IDX_HEADER_BYTES - 4, 4);
    uint32_t crc = crc32c(0, fm->base, IDX_HEADER_BYTES - 4);
    if (crc != crc_stored) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: offset 0: header checksum mismatch", fm->path);
        goto fail;
    }
    if (h.version != IDX_FORMAT_VERSION) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: offset 8: format version %u, expected %u", fm->path,
                        h.version, IDX_FORMAT_VERSION);
        goto fail;
    }
    if (h.kind != kind) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: offset 12: file kind %u, expected %u", fm->path,
                        h.kind, kind);
        goto fail;
    }
    if (h.file_bytes != fm->size) {
        rc = cw_err_set(err, CW_ECORRUPT,
                        "%s: offset %zu: truncated or extended: %zu bytes, header says %llu",
                        fm->path, CW_MIN(fm->size, (size_t)h.file_bytes), fm->size,
                        (unsigned long long)h.file_bytes);
        goto fail;
    }
    if (h.n_sections > IDX_MAX_SECTIONS) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: offset 24: %u sections", fm->path, h.n_sections);
        goto fail;
    }
    fm->header_crc = crc;
    fm->n_sections = h.n_sections;
    memcpy(fm->sections, h.sections, sizeof fm->sections);
    for (uint32_t i = 0; i < h.n_sections; i++) {
        const idx_section_rec *s = &h.sections[i];
        if (s->offset < IDX_HEADER_BYTES || s->offset > fm->size ||
            s->length > fm->size - s->offset ||
            fm->size - s->offset - s->length < IDX_SECTION_PAD) {
            rc = cw_err_set(err, CW_ECORRUPT, "%s: offset %llu: section %u out of bounds", fm->path,
                            (unsigned long long)s->offset, s->id);
            goto fail;
        }
        if (s->length <= verify_max_bytes && crc32c(0, fm->base + s->offset, s->length) != s->crc) {
            rc = cw_err_set(
                err, CW_ECORRUPT, "%s: offset %llu: checksum mismatch in section %u (%llu bytes)",
                fm->path, (unsigned long long)s->offset, s->id, (unsigned long long)s->length);
            goto fail;
        }
    }
    return CW_OK;
fail:
    idx_fmap_close(fm);
    return rc;
}

int idx_fmap_verify_all(const idx_fmap *fm, cw_err *err)
{
    for (uint32_t i = 0; i < fm->n_sections; i++) {
        const idx_section_rec *s = &fm->sections[i];
        if (crc32c(0, fm->base + s->offset, s->length) != s->crc) {
            return cw_err_set(
                err, CW_ECORRUPT, "%s: offset %llu: checksum mismatch in section %u (%llu bytes)",
                fm->path, (unsigned long long)s->offset, s->id, (unsigned long long)s->length);
        }
    }
    return CW_OK;
}

int idx_fmap_section(const idx_fmap *fm, uint32_t id, size_t elem_bytes, const uint8_t **p,
                     size_t *len, cw_err *err)
{
    for (uint32_t i = 0; i < fm->n_sections; i++) {
        if (fm->sections[i].id == id) {
            if (elem_bytes > 1 && fm->sections[i].length % elem_bytes != 0) {
                return cw_err_set(err, CW_ECORRUPT,
                                  "%s: offset %llu: section %u length %llu not a multiple of %zu",
                                  fm->path, (unsigned long long)fm->sections[i].offset, id,
                                  (unsigned long long)fm->sections[i].length, elem_bytes);
            }
            *p = fm->base + fm->sections[i].offset;
            *len = (size_t)fm->sections[i].length;
            return CW_OK;
        }
    }
    return cw_err_set(err, CW_ECORRUPT, "%s: offset 0: section %u missing", fm->path, id);
}

void idx_fmap_close(idx_fmap *fm)
{
    if (fm && fm->base) {
        munmap((void *)fm->base, fm->size);
        fm->base = NULL;
    }
}
