/* index/dense_hybrid.c: hybrid retrieval for one query: BM25 top-depth from the
 * inverted index and dense top-depth from the HNSW graph, fused by idx_fuse
 * (reciprocal rank fusion by default). Used by `causeway search/run --hybrid` and serve. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "index/dense_int.h"

int idx_hybrid_search(const idx_index *ix, const idx_dense *dn, idx_hnsw_searcher *s,
                      const idx_query *q, const char *text, size_t len, const idx_search_opts *bm25,
                      const idx_hybrid_opts *opts, idx_hit *hits, size_t *n_hits, cw_err *err)
{
    uint32_t want = bm25->offset + bm25->k;
    uint32_t depth = CW_MAX(opts->depth, want);
    if (bm25->k < 1 || want > IDX_MAX_K || depth > IDX_MAX_K) {
        return cw_err_set(err, CW_EINVAL, "hybrid: k %u + offset %u (depth %u) outside [1, %u]",
                          bm25->k, bm25->offset, depth, IDX_MAX_K);
    }
    idx_hit *run_b = malloc(2 * (size_t)depth * sizeof *run_b + want * sizeof *run_b);
    if (!run_b) {
        return cw_err_set(err, CW_ENOMEM, "hybrid: out of memory");
    }
    idx_hit *run_d = run_b + depth, *fusedh = run_d + depth;
    size_t nb = 0, nd = 0, nf = 0;
    float qv[IDX_DENSE_MAX_DIM];
    idx_search_opts so = *bm25;
    so.k = depth;
    so.offset = 0;
    int rc = idx_search(ix, q, &so, run_b, &nb, NULL, err);
    if (rc == CW_OK) {
        rc = idx_encoder_encode(idx_dense_encoder(dn), text, len, qv, err);
    }
    if (rc == CW_OK) {
        rc = idx_hnsw_search(idx_dense_hnsw(dn), s, qv, depth, CW_MAX(opts->ef, depth), opts->exact,
                             run_d, &nd, err);
    }
    if (rc == CW_OK) {
        rc = idx_fuse(run_b, nb, run_d, nd, opts, want, fusedh, &nf, err);
    }
    if (rc == CW_OK) {
        size_t from = CW_MIN(nf, (size_t)bm25->offset);
        memcpy(hits, fusedh + from, (nf - from) * sizeof *hits);
        *n_hits = nf - from;
    }
    free(run_b);
    return rc;
}
