/* index/open.c: opening an index directory (index.cw + docs.cw, both memory-mapped
 * and checked), the dictionary, collection statistics and the document store.
 * Everything here only reads the maps, so an open idx_index is shareable. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"

/* Every section of index.cw is checksummed at open (hardware CRC-32C: about 0.05 s
 * of CPU for the 1M-document synth index, 334 MB). Sections of docs.cw larger than
 * this are not (the document text of a million documents is over a gigabyte):
 * idx_doc_get bounds-checks every record it reads, and `causeway index verify`
 * checks all checksums. */
#define DOCS_VERIFY_AT_OPEN_MAX ((size_t)64 << 20)

static int corrupt(const idx_fmap *fm, const void *at, const char *what, cw_err *err)
{
    return cw_err_set(err, CW_ECORRUPT, "%s: offset %zu: %s", fm->path,
                      (size_t)((const uint8_t *)at - fm->base), what);
}

int idx_index_open(const char *dir, idx_index **out, cw_err *err)
{
    idx_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        return cw_err_set(err, CW_ENOMEM, "index open: out of memory");
    }
    snprintf(ix->dir, sizeof ix->dir, "%s", dir);
    int rc = idx_fmap_open(dir, "index.cw", IDX_KIND_MAIN, SIZE_MAX, &ix->main, err);
    if (rc != CW_OK) {
        free(ix);
        return rc;
    }
    rc = idx_fmap_open(dir, "docs.cw", IDX_KIND_DOCS, DOCS_VERIFY_AT_OPEN_MAX, &ix->docs, err);
    if (rc != CW_OK) {
        idx_fmap_close(&ix->main);
        free(ix);
        return rc;
    }
    const uint8_t *p;
    size_t len;
    idx_fmap *fm = &ix->main;
    rc = idx_fmap_section(fm, IDX_S_META, 1, &p, &len, err);
    if (rc != CW_OK) {
        goto fail;
    }
    if (len != sizeof ix->meta) {
        rc = corrupt(fm, p, "metadata section has the wrong size", err);
        goto fail;
    }
    memcpy(&ix->meta, p, sizeof ix->meta);
    uint32_t n = ix->meta.n_docs, nt = ix->meta.n_terms;
    if (memchr(ix->meta.stemmer, '\0', sizeof ix->meta.stemmer) == NULL) {
        rc = corrupt(fm, p, "stemmer name not terminated", err);
        goto fail;
    }
#define SEC(file, id, elem, ptr, count_var)                                                        \
    do {                                                                                           \
        rc = idx_fmap_section(file, id, elem, &p, &len, err);                                      \
        if (rc != CW_OK) {                                                                         \
            goto fail;                                                                             \
        }                                                                                          \
        ptr = (const void *)p;                                                                     \
        count_var = len / (elem);                                                                  \
    } while (0)
    size_t cnt;
    SEC(fm, IDX_S_POSTINGS, 1, ix->postings, ix->postings_len);
    SEC(fm, IDX_S_BLOCKS, sizeof(idx_block_rec), ix->blocks, ix->n_blocks);
    SEC(fm, IDX_S_TPOSTINGS, 1, ix->tpostings, ix->tpostings_len);
    SEC(fm, IDX_S_TBLOCKS, sizeof(idx_block_rec), ix->tblocks, ix->n_tblocks);
    SEC(fm, IDX_S_TERMSTR, 1, ix->termstr, ix->termstr_len);
    SEC(fm, IDX_S_TERMOFF, 4, ix->termoff, cnt);
    if (cnt != (size_t)nt + 1) {
        rc = corrupt(fm, p, "term offset table size disagrees with the term count", err);
        goto fail;
    }
    SEC(fm, IDX_S_TERMINFO, sizeof(idx_term_info), ix->terms, cnt);
    if (cnt != nt) {
        rc = corrupt(fm, p, "term table size disagrees with the term count", err);
        goto fail;
    }
    SEC(fm, IDX_S_DOCLEN, 8, ix->doclen, cnt);
    if (cnt != n) {
        rc = corrupt(fm, p, "document length table disagrees with the document count", err);
        goto fail;
    }
    SEC(fm, IDX_S_FLATLEN, 4, ix->flatlen, cnt);
    if (cnt != n) {
        rc = corrupt(fm, p, "flat length table disagrees with the document count", err);
        goto fail;
    }
    fm = &ix->docs;
    SEC(fm, IDX_S_DOCBLOB, 1, ix->docblob, ix->docblob_len);
    SEC(fm, IDX_S_DOCOFF, 8, ix->docoff, cnt);
    if (cnt != (size_t)n + 1) {
        rc = corrupt(fm, p, "document offset table disagrees with the document count", err);
        goto fail;
    }
    SEC(fm, IDX_S_IDSORT, 4, ix->idsort, cnt);
    if (cnt != n) {
        rc = corrupt(fm, p, "id table disagrees with the document count", err);
        goto fail;
    }
#undef SEC
    /* Cheap structural checks on the small tables (O(terms)); posting blocks and
     * documents are checked when read. */
    fm = &ix->main;
    if (ix->termoff[0] != 0 || ix->termoff[nt] != ix->termstr_len) {
        rc = corrupt(fm, ix->termoff, "term offsets do not span the term strings", err);
        goto fail;
    }
    for (uint32_t t = 0; t < nt; t++) {
        const idx_term_info *ti = &ix->terms[t];
        if (ix->termoff[t] > ix->termoff[t + 1]) {
            rc = corrupt(fm, &ix->termoff[t], "term offsets decrease", err);
            goto fail;
        }
        if (ti->df > n || ti->df_title > ti->df || ti->df_text > ti->df ||
            ti->n_blocks != (ti->df + IDX_BLOCK - 1) / IDX_BLOCK ||
            ti->n_tblocks != (ti->df_title + IDX_BLOCK - 1) / IDX_BLOCK ||
            ti->block_idx > ix->n_blocks || ti->n_blocks > ix->n_blocks - ti->block_idx ||
            ti->tblock_idx > ix->n_tblocks || ti->n_tblocks > ix->n_tblocks - ti->tblock_idx ||
            ti->post_off > ix->postings_len || ti->tpost_off > ix->tpostings_len ||
            !(ti->max_tfn >= 0.0f && ti->max_tfn <= 1.0f)) {
            rc = corrupt(fm, ti, "inconsistent term entry", err);
            goto fail;
        }
    }
    uint64_t tot[IDX_N_FIELDS] = {0};
    for (uint32_t d = 0; d < n; d++) {
        tot[0] += ix->doclen[2 * d];
        tot[1] += ix->doclen[2 * d + 1];
        tot[2] += ix->flatlen[d];
    }
    for (int f = 0; f < IDX_N_FIELDS; f++) {
        if (tot[f] != ix->meta.total_terms[f] || ix->meta.doc_count[f] > n) {
            rc = corrupt(fm, ix->doclen, "document lengths disagree with the field totals", err);
            goto fail;
        }
        ix->avgdl[f] = ix->meta.doc_count[f]
                           ? (double)ix->meta.total_terms[f] / (double)ix->meta.doc_count[f]
                           : 1.0;
        if (ix->avgdl[f] <= 0) {
            ix->avgdl[f] = 1.0;
        }
    }
    snprintf(ix->version, sizeof ix->version, "%08x%08x", ix->main.header_crc, ix->docs.header_crc);
    *out = ix;
    return CW_OK;
fail:
    idx_index_close(ix);
    return rc;
}

void idx_index_close(idx_index *ix)
{
    if (!ix) {
        return;
    }
    idx_fmap_close(&ix->main);
    idx_fmap_close(&ix->docs);
    free(ix);
}

uint32_t idx_index_n_docs(const idx_index *ix)
{
    return ix->meta.n_docs;
}

const char *idx_index_version(const idx_index *ix)
{
    return ix->version;
}

int idx_index_analyzer(const idx_index *ix, idx_analyzer **out, cw_err *err)
{
    idx_analyzer_opts o;
    memset(&o, 0, sizeof o);
    o.stem = ix->meta.stem != 0;
    o.stopwords = ix->meta.stopwords != 0;
    memcpy(o.stemmer, ix->meta.stemmer, sizeof o.stemmer);
    return idx_analyzer_new(&o, out, err);
}

void idx_index_field_stats(const idx_index *ix, idx_field f, idx_field_stats *out)
{
    out->doc_count = ix->meta.doc_count[f];
    out->total_terms = ix->meta.total_terms[f];
    out->avg_len = ix->avgdl[f];
}

double idx_bm25_idf(uint64_t n_docs, uint64_t df)
{
    /* Lucene BM25Similarity.idf (METHODS.md section 2): always > 0, so even a term in
     * every document adds a little; Robertson's original can go negative. */
    return log(1.0 + ((double)n_docs - (double)df + 0.5) / ((double)df + 0.5));
}

int64_t idx_term_find(const idx_index *ix, const char *term, size_t len)
{
    size_t lo = 0, hi = ix->meta.n_terms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *s = ix->termstr + ix->termoff[mid];
        size_t sl = ix->termoff[mid + 1] - ix->termoff[mid];
        int c = memcmp(s, term, CW_MIN(sl, len));
        if (c == 0) {
            c = (sl > len) - (sl < len);
        }
        if (c == 0) {
            return (int64_t)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

int idx_doc_get(const idx_index *ix, uint32_t docid, idx_doc *out, cw_err *err)
{
    if (docid >= ix->meta.n_docs) {
        return cw_err_set(err, CW_ENOTFOUND, "document %u not in the index (%u documents)", docid,
                          ix->meta.n_docs);
    }
    uint64_t b = ix->docoff[docid], e = ix->docoff[docid + 1];
    if (b > e || e > ix->docblob_len || e - b < 16) {
        return corrupt(&ix->docs, &ix->docoff[docid], "bad document offset", err);
    }
    const uint8_t *p = ix->docblob + b;
    uint32_t l[4];
    memcpy(l, p, sizeof l);
    if ((uint64_t)l[0] + l[1] + l[2] + l[3] != e - b - 16) {
        return corrupt(&ix->docs, p, "document record lengths disagree with its size", err);
    }
    idx_doc d;
    const char *s = (const char *)p + 16;
    d.id = s;
    d.id_len = l[0];
    d.title = s + l[0];
    d.title_len = l[1];
    d.text = d.title + l[1];
    d.text_len = l[2];
    d.fields_json = d.text + l[2];
    d.fields_len = l[3];
    d.len[IDX_FIELD_TITLE] = ix->doclen[2 * docid];
    d.len[IDX_FIELD_TEXT] = ix->doclen[2 * docid + 1];
    d.len[IDX_FIELD_FLAT] = ix->flatlen[docid];
    *out = d;
    return CW_OK;
}

int idx_doc_lookup(const idx_index *ix, const char *id, size_t id_len, uint32_t *docid, cw_err *err)
{
    size_t lo = 0, hi = ix->meta.n_docs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        idx_doc d;
        int rc = idx_doc_get(ix, ix->idsort[mid] < ix->meta.n_docs ? ix->idsort[mid] : UINT32_MAX,
                             &d, err);
        if (rc != CW_OK) {
            return rc == CW_ENOTFOUND ? corrupt(&ix->docs, &ix->idsort[mid], "bad id table", err)
                                      : rc;
        }
        int c = memcmp(d.id, id, CW_MIN(d.id_len, id_len));
        if (c == 0) {
            c = (d.id_len > id_len) - (d.id_len < id_len);
        }
        if (c == 0) {
            *docid = ix->idsort[mid];
            return CW_OK;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return cw_err_set(err, CW_ENOTFOUND, "no document with id \"%.*s\"", (int)CW_MIN(id_len, 200),
                      id);
}

void idx_index_info_get(const idx_index *ix, idx_index_info *out)
{
    memset(out, 0, sizeof *out);
    out->n_docs = ix->meta.n_docs;
    out->n_terms = ix->meta.n_terms;
    out->n_postings = ix->meta.n_postings;
    out->bytes = ix->main.size + ix->docs.size;
    out->analyzer.stem = ix->meta.stem != 0;
    out->analyzer.stopwords = ix->meta.stopwords != 0;
    memcpy(out->analyzer.stemmer, ix->meta.stemmer, sizeof out->analyzer.stemmer);
    out->build_unix_ms = (int64_t)ix->meta.build_unix_ms;
}

int idx_index_verify(const idx_index *ix, cw_err *err)
{
    int rc = idx_fmap_verify_all(&ix->main, err);
    if (rc == CW_OK) {
        rc = idx_fmap_verify_all(&ix->docs, err);
    }
    if (rc == CW_OK) {
        rc = idx_index_check_postings(ix, err);
    }
    for (uint32_t d = 0; rc == CW_OK && d < ix->meta.n_docs; d++) {
        idx_doc doc;
        rc = idx_doc_get(ix, d, &doc, err);
        if (rc == CW_OK && d + 1 < ix->meta.n_docs && ix->docoff[d] > ix->docoff[d + 1]) {
            rc = corrupt(&ix->docs, &ix->docoff[d], "document offsets decrease", err);
        }
    }
    for (uint32_t i = 0; rc == CW_OK && i < ix->meta.n_docs; i++) {
        if (ix->idsort[i] >= ix->meta.n_docs) {
            rc = corrupt(&ix->docs, &ix->idsort[i], "id table entry out of range", err);
        }
    }
    return rc;
}
