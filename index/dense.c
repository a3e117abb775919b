/* index/dense.c: the dense side of an open index directory (dense.enc + dense.hnsw),
 * the cosine ranker feature, and hybrid retrieval: BM25 and dense runs fused by
 * reciprocal rank fusion or a weighted sum of min-max normalised scores (issue 6). */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/dense_int.h"

struct idx_dense {
    idx_encoder *enc;
    idx_hnsw *hnsw;
};

int idx_dense_open(const char *dir, idx_dense **out, cw_err *err)
{
    char p[PATH_MAX];
    idx_dense *dn = calloc(1, sizeof *dn);
    if (!dn) {
        return cw_err_set(err, CW_ENOMEM, "%s: out of memory", dir);
    }
    snprintf(p, sizeof p, "%s/dense.enc", dir);
    int rc = idx_encoder_load(p, &dn->enc, err);
    if (rc == CW_ENOTFOUND) {
        cw_err_prefix(err, "no trained encoder (run 'causeway embed train --index %s'): ", dir);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    snprintf(p, sizeof p, "%s/dense.hnsw", dir);
    rc = idx_hnsw_open(p, &dn->hnsw, err);
    if (rc == CW_ENOTFOUND) {
        cw_err_prefix(err, "no vector index (run 'causeway embed build --index %s'): ", dir);
    }
    if (rc != CW_OK) {
        goto fail;
    }
    if (idx_hnsw_dim(dn->hnsw) != idx_encoder_dim(dn->enc)) {
        rc = cw_err_set(err, CW_ECORRUPT, "%s: dense.hnsw has dimension %u, dense.enc %u", dir,
                        idx_hnsw_dim(dn->hnsw), idx_encoder_dim(dn->enc));
        goto fail;
    }
    *out = dn;
    return CW_OK;
fail:
    idx_dense_close(dn);
    return rc;
}

void idx_dense_close(idx_dense *dn)
{
    if (dn) {
        idx_encoder_free(dn->enc);
        idx_hnsw_close(dn->hnsw);
        free(dn);
    }
}

const idx_encoder *idx_dense_encoder(const idx_dense *dn)
{
    return dn->enc;
}

const idx_hnsw *idx_dense_hnsw(const idx_dense *dn)
{
    return dn->hnsw;
}

int idx_dense_cosine(const idx_dense *dn, const float *q, uint32_t docid, double *out, cw_err *err)
{
    const float *v = idx_hnsw_vector(dn->hnsw, docid);
    if (!v) {
        return cw_err_set(err, CW_ENOTFOUND, "dense: document %u out of %u", docid,
                          idx_hnsw_n(dn->hnsw));
    }
    double s = 0;
    for (uint32_t j = 0; j < idx_hnsw_dim(dn->hnsw); j++) {
        s += (double)q[j] * v[j];
    }
    *out = s;
    return CW_OK;
}

idx_hybrid_opts idx_hybrid_opts_default(void)
{
    return (idx_hybrid_opts){.fusion = IDX_FUSION_RRF,
                             .rrf_k = 60,
                             .w_dense = 0.5,
                             .depth = 100,
                             .ef = 128,
                             .exact = false};
}

typedef struct fused {
    uint32_t doc;
    double score;
} fused;

static int fused_cmp(const void *a, const void *b)
{
    const fused *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int doc_cmp(const void *a, const void *b)
{
    const fused *x = a, *y = b;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static void minmax(const idx_hit *h, size_t n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        *lo = h[i].score < *lo ? h[i].score : *lo;
        *hi = h[i].score > *hi ? h[i].score : *hi;
    }
}

int idx_fuse(const idx_hit *bm25, size_t n_bm25, const idx_hit *dense, size_t n_dense,
             const idx_hybrid_opts *opts, uint32_t out_k, idx_hit *out, size_t *n_out, cw_err *err)
{
    double w = opts->w_dense;
    if (!(w >= 0 && w <= 1) || (opts->fusion == IDX_FUSION_RRF && !(opts->rrf_k >= 0)) ||
        (opts->fusion != IDX_FUSION_RRF && opts->fusion != IDX_FUSION_WEIGHTED)) {
        return cw_err_set(err, CW_EINVAL, "fusion: w_dense %g outside [0, 1] or bad rrf_k %g", w,
                          opts->rrf_k);
    }
    size_t n = n_bm25 + n_dense;
    fused *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) {
        return cw_err_set(err, CW_ENOMEM, "fusion: out of memory");
    }
    double lo_b, hi_b, lo_d, hi_d;
    minmax(bm25, n_bm25, &lo_b, &hi_b);
    minmax(dense, n_dense, &lo_d, &hi_d);
    for (size_t r = 0; r < n_bm25; r++) {
        double s;
        if (opts->fusion == IDX_FUSION_RRF) {
            /* Reciprocal rank fusion, Cormack, Clarke & Buettcher SIGIR 2009: 1/(k + rank),
             * rank 1-based; each run weighted 2(1-w) / 2w so w = 0.5 is the paper's sum. */
            s = 2 * (1 - w) / (opts->rrf_k + (double)(r + 1));
        } else {
            /* Convex combination of min-max normalised scores; a document missing from
             * a run gets that run's 0 (its minimum), the usual hybrid convention. */
            s = (1 - w) * (hi_b > lo_b ? (bm25[r].score - lo_b) / (hi_b - lo_b) : 1.0);
        }
        all[r] = (fused){bm25[r].doc, s};
    }
    for (size_t r = 0; r < n_dense; r++) {
        double s;
        if (opts->fusion == IDX_FUSION_RRF) {
            s = 2 * w / (opts->rrf_k + (double)(r + 1));
        } else {
            s = w * (hi_d > lo_d ? (dense[r].score - lo_d) / (hi_d - lo_d) : 1.0);
        }
        all[n_bm25 + r] = (fused){dense[r].doc, s};
    }
    /* Merge duplicates (a document in both runs) by summing. */
    qsort(all, n, sizeof *all, doc_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && all[m - 1].doc == all[i].doc) {
            all[m - 1].score += all[i].score;
        } else {
            all[m++] = all[i];
        }
    }
    qsort(all, m, sizeof *all, fused_cmp);
    size_t k = CW_MIN(m, (size_t)out_k);
    for (size_t i = 0; i < k; i++) {
        out[i] = (idx_hit){all[i].doc, all[i].score};
    }
    *n_out = k;
    free(all);
    return CW_OK;
}
