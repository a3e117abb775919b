/* index/index_int.h: structures shared by the files of index/: the on-disk
 * container format (checksummed header + sections), the postings block codec,
 * the analyzer's term cache and the open index. Not part of the public API. */
#ifndef CAUSEWAY_INDEX_INDEX_INT_H
#define CAUSEWAY_INDEX_INDEX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"
#include "index/index.h"

/* ---- container files ------------------------------------------------------
 * Every index file is a 4096-byte header followed by sections. The header holds
 * the magic, the format version, the file kind, a table of sections (id, offset,
 * length, CRC-32C of the section bytes) and, last, the CRC-32C of the header bytes
 * before it. Sections start 64-byte aligned and are followed by at least 64 zero
 * bytes, so word-sized loads just past a section's end stay inside the file.
 * All integers are little-endian (the format is only written and read on
 * little-endian hosts; open refuses others through the magic's byte order). */
#define IDX_MAGIC 0x3158444957434155ull /* "UACWIDX1" read as little-endian u64 */
#define IDX_FORMAT_VERSION 1u
#define IDX_HEADER_BYTES 4096u
#define IDX_MAX_SECTIONS 32u
#define IDX_SECTION_ALIGN 64u
#define IDX_SECTION_PAD 64u

enum { IDX_KIND_MAIN = 1, IDX_KIND_DOCS = 2 };

/* Sections of index.cw (IDX_KIND_MAIN). */
enum {
    IDX_S_META = 1,      /* idx_meta */
    IDX_S_POSTINGS = 2,  /* flat-field blocks: packed docid gaps + packed tf-1 */
    IDX_S_BLOCKS = 3,    /* idx_block_rec per flat block */
    IDX_S_TPOSTINGS = 4, /* title-field blocks, same codec */
    IDX_S_TBLOCKS = 5,   /* idx_block_rec per title block (max_tfn unused) */
    IDX_S_TERMSTR = 6,   /* sorted term bytes, concatenated */
    IDX_S_TERMOFF = 7,   /* u32[n_terms + 1] offsets into TERMSTR */
    IDX_S_TERMINFO = 8,  /* idx_term_info[n_terms], same (sorted) order */
    IDX_S_DOCLEN = 9,    /* u32[2 * n_docs]: analysed title and text lengths */
    IDX_S_FLATLEN = 10,  /* u32[n_docs]: title + text length (the scorer's dl) */
};
/* Sections of docs.cw (IDX_KIND_DOCS). */
enum {
    IDX_S_DOCBLOB = 1, /* per doc: u32 id_len, title_len, text_len, fields_len, then bytes */
    IDX_S_DOCOFF = 2,  /* u64[n_docs + 1] offsets into DOCBLOB */
    IDX_S_IDSORT = 3,  /* u32[n_docs] docids sorted by external id (memcmp, then length) */
};

typedef struct idx_section_rec {
    uint32_t id;
    uint32_t crc;    /* CRC-32C of the section's bytes */
    uint64_t offset; /* from the start of the file, >= IDX_HEADER_BYTES */
    uint64_t length; /* bytes */
} idx_section_rec;

typedef struct idx_file_header {
    uint64_t magic;
    uint32_t version;
    uint32_t kind;
    uint64_t file_bytes; /* total size, so truncation is caught before anything else */
    uint32_t n_sections;
    uint32_t reserved;
    idx_section_rec sections[IDX_MAX_SECTIONS];
    /* header_crc sits at IDX_HEADER_BYTES - 4 and covers all bytes before it */
} idx_file_header;

/* Streaming writer of one container file (buffered write(2), header written last). */
typedef struct idx_fw idx_fw;
int idx_fw_open(const char *path, uint32_t kind, idx_fw **out, cw_err *err) CW_MUST_CHECK;
int idx_fw_begin(idx_fw *w, uint32_t id, cw_err *err) CW_MUST_CHECK;
int idx_fw_write(idx_fw *w, const void *p, size_t n, cw_err *err) CW_MUST_CHECK;
int idx_fw_end(idx_fw *w, cw_err *err) CW_MUST_CHECK;
/* Bytes written so far into the open section. */
uint64_t idx_fw_section_pos(const idx_fw *w);
/* Writes the header, fsyncs and closes; *header_crc (may be NULL) gets the header CRC.
 * Frees w on every path. */
int idx_fw_close(idx_fw *w, bool sync, uint32_t *header_crc, uint64_t *file_bytes,
                 cw_err *err) CW_MUST_CHECK;
/* Closes without finishing (error paths); the file is left for the caller to remove. */
void idx_fw_abort(idx_fw *w);

/* A memory-mapped container file. */
typedef struct idx_fmap {
    char path[4096];
    const uint8_t *base;
    size_t size;
    uint32_t header_crc;
    uint32_t n_sections;
    idx_section_rec sections[IDX_MAX_SECTIONS];
} idx_fmap;

/* Maps dir/name, checks magic, version, kind, size, header CRC and section bounds,
 * and the CRC of every section no longer than verify_max_bytes (all of them with
 * SIZE_MAX). Errors: CW_ENOTFOUND, CW_ECORRUPT (path + byte offset), CW_EIO. */
int idx_fmap_open(const char *dir, const char *name, uint32_t kind, size_t verify_max_bytes,
                  idx_fmap *fm, cw_err *err) CW_MUST_CHECK;
void idx_fmap_close(idx_fmap *fm);
/* The section with this id; CW_ECORRUPT if absent or if its length is not a multiple
 * of elem_bytes (elem_bytes 1 accepts any). */
int idx_fmap_section(const idx_fmap *fm, uint32_t id, size_t elem_bytes, const uint8_t **p,
                     size_t *len, cw_err *err) CW_MUST_CHECK;
/* Verifies the CRC of every section. Errors: CW_ECORRUPT. */
int idx_fmap_verify_all(const idx_fmap *fm, cw_err *err) CW_MUST_CHECK;

/* ---- index metadata ------------------------------------------------------ */

typedef struct idx_meta {
    uint32_t n_docs;
    uint32_t n_terms;
    uint64_t doc_count[IDX_N_FIELDS];   /* documents with a non-empty field */
    uint64_t total_terms[IDX_N_FIELDS]; /* sumTotalTermFreq per field */
    uint64_t n_postings;                /* flat (term, doc) pairs */
    uint64_t n_skipped;
    double bound_k1; /* the BM25 parameters the stored block maxima were computed for */
    double bound_b;
    uint8_t stem;
    uint8_t stopwords;
    uint8_t reserved[6];
    char stemmer[32];
    uint64_t build_unix_ms;
} idx_meta;

/* One term's entry in the dictionary (sorted by term bytes). */
typedef struct idx_term_info {
    uint32_t df;        /* flat-field document frequency */
    uint32_t df_title;  /* documents whose title contains the term */
    uint32_t df_text;   /* documents whose text contains the term */
    uint32_t n_blocks;  /* flat blocks */
    uint64_t post_off;  /* byte offset of the first flat block in POSTINGS */
    uint64_t block_idx; /* index of the first idx_block_rec in BLOCKS */
    uint64_t tpost_off; /* same for the title field */
    uint64_t tblock_idx;
    uint32_t n_tblocks;
    uint32_t max_tf; /* over the flat postings */
    uint32_t min_dl; /* smallest flat length among the term's documents */
    float max_tfn;   /* max tf/(tf + K(dl)) at (bound_k1, bound_b), rounded up */
} idx_term_info;

#define IDX_BLOCK 128u

/* Skip and block-max metadata of one block of (up to) 128 postings. */
typedef struct idx_block_rec {
    uint32_t last_doc; /* last docid in the block */
    uint32_t data_off; /* byte offset of the block from the term's first block */
    uint32_t max_tf;   /* largest tf in the block */
    uint32_t min_dl;   /* smallest flat length in the block */
    float max_tfn;     /* max tf/(tf + K(dl)) at (bound_k1, bound_b), rounded up */
} idx_block_rec;

/* ---- block codec -----------------------------------------------------------
 * A block of n <= 128 postings: byte gap_bits, byte tf_bits, then n values of
 * (docid - previous docid - 1) bit-packed at gap_bits each, then n values of tf - 1
 * at tf_bits each, both LSB-first, each rounded up to whole bytes. Decoding reads
 * 64-bit words and may touch up to 7 bytes past the block (sections are padded). */
/* Appends the encoding to out. prev_doc is the docid before the block (UINT32_MAX
 * for the first block of a list, so the first stored value is docid). */
int idx_block_encode(const uint32_t *docs, const uint32_t *tfs, uint32_t n, uint32_t prev_doc,
                     cw_buf *out) CW_MUST_CHECK;
/* Decodes n postings from p (avail bytes readable, padding not counted); returns the
 * number of bytes consumed or 0 if the data is malformed (bits > 32, past avail). */
size_t idx_block_decode(const uint8_t *p, size_t avail, uint32_t n, uint32_t prev_doc,
                        uint32_t *docs, uint32_t *tfs);

/* ---- analyzer internals -------------------------------------------------- */

/* A cached analysis of one surface form. kind: IDX_TERM_ONE (term valid),
 * IDX_TERM_STOP (dropped). aux is free for the caller (the builder keeps a termid
 * there); -1 until set. Valid until the next call into the analyzer. */
enum { IDX_TERM_ONE = 1, IDX_TERM_STOP = 2 };
typedef struct idx_term_ent {
    const char *term;
    uint32_t term_len;
    int32_t aux;
    uint8_t kind;
    uint64_t hash; /* cw_hash64(term, term_len, 0), computed once per cached entry */
} idx_term_ent;

/* Like idx_analyze but hands out the cache entries (for the builder). ent->aux may be
 * written by fn. Tokens that normalise into several terms (NFKC of ligatures,
 * fractions) arrive as several calls with the same byte range and a transient entry
 * whose aux writes are not kept. */
typedef int (*idx_term_fn)(void *ctx, idx_term_ent *ent, size_t byte_begin, size_t byte_end);
int idx_analyze_terms(idx_analyzer *a, const char *text, size_t len, idx_term_fn fn, void *ctx,
                      cw_err *err);
/* The embedded stopword list (NULL-terminated). */
extern const char *const idx_stopwords_en[];
bool idx_is_stopword(const char *s, size_t n);
/* Lowers the number of cached surface forms before the cache is reset (tests). */
void idx_analyzer_set_cache_limit(idx_analyzer *a, size_t max_entries);
/* Tokens skip the batched look-up while the cache has at most max_slots slots (tests set
 * 0 to check the batched path on small texts). */
void idx_analyzer_set_direct_slots(idx_analyzer *a, size_t max_slots);

/* ---- the open index ------------------------------------------------------ */

struct idx_index {
    char dir[4096];
    idx_fmap main;
    idx_fmap docs;
    idx_meta meta;
    char version[24];
    const uint8_t *postings;
    size_t postings_len;
    const idx_block_rec *blocks;
    size_t n_blocks;
    const uint8_t *tpostings;
    size_t tpostings_len;
    const idx_block_rec *tblocks;
    size_t n_tblocks;
    const char *termstr;
    size_t termstr_len;
    const uint32_t *termoff;
    const idx_term_info *terms;
    const uint32_t *doclen;  /* 2 per doc */
    const uint32_t *flatlen; /* 1 per doc */
    const uint8_t *docblob;
    size_t docblob_len;
    const uint64_t *docoff;
    const uint32_t *idsort;
    double avgdl[IDX_N_FIELDS];
    int taat; /* IDX_TAAT_AUTO (0, as opened) or a strategy forced by a test */
};

/* Top-k strategy of OR queries: term-at-a-time for small collections when it pays
 * (AUTO), or forced, so tests check block-max WAND and TAAT against the same oracle.
 * Call before the index is shared between threads. */
enum { IDX_TAAT_AUTO = 0, IDX_TAAT_NEVER = 1, IDX_TAAT_ALWAYS = 2 };
void idx_index_set_taat(idx_index *ix, int mode);

/* Dictionary lookup: index of the term or -1. */
int64_t idx_term_find(const idx_index *ix, const char *term, size_t len);

/* Lucene BM25 term-frequency part tf / (tf + k1 (1 - b + b dl / avgdl)) (METHODS.md
 * section 2, no (k1 + 1) factor). Every scorer in index/ goes through this one
 * function so that pruned and exhaustive scores are bit-identical. */
static inline double idx_bm25_tfn(double tf, double dl, double k1, double b, double avgdl)
{
    return tf / (tf + k1 * (1.0 - b + b * dl / avgdl));
}

/* Structural check of every posting list (decodes all blocks); used by verify. */
int idx_index_check_postings(const idx_index *ix, cw_err *err) CW_MUST_CHECK;

#endif /* CAUSEWAY_INDEX_INDEX_INT_H */
