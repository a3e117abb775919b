/* cli/clicklists.c: causal_sessions -> rank_clicks (see cli/clicklists.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli/clicklists.h"

int cli_sessions_to_clicks(const causal_sessions *s, size_t begin, size_t end, const double *x,
                           size_t n_rows, size_t n_features, const size_t *pair_row,
                           const size_t *cand_begin, const size_t *cand_end, bool merge,
                           rank_clicks **out, cw_err *err)
{
    if (begin >= end || end > s->n_sessions) {
        return cw_err_set(err, CW_EINVAL, "no sessions in [%zu, %zu) of %zu", begin, end,
                          s->n_sessions);
    }
    size_t max_n = 0;
    for (size_t i = begin; i < end; i++) {
        size_t n = s->s_begin[i + 1] - s->s_begin[i];
        if (cand_begin) {
            uint32_t q = s->s_query[i];
            n += cand_end[q] - cand_begin[q];
        }
        max_n = CW_MAX(max_n, n);
    }
    rank_clicks *c = NULL;
    int rc = rank_clicks_new(x, n_rows, n_features, &c, err);
    if (rc != CW_OK) {
        return rc;
    }
    size_t *rows = malloc((max_n ? max_n : 1) * sizeof *rows);
    uint32_t *ranks = malloc((max_n ? max_n : 1) * sizeof *ranks);
    double *clicks = malloc((max_n ? max_n : 1) * sizeof *clicks);
    /* marks rows already in the list, to add each unshown candidate once */
    uint8_t *in_list = cand_begin ? calloc(n_rows ? n_rows : 1, 1) : NULL;
    if (!rows || !ranks || !clicks || (cand_begin && !in_list)) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory converting sessions");
    }
    for (size_t i = begin; rc == CW_OK && i < end; i++) {
        size_t n = 0;
        for (size_t j = s->s_begin[i]; j < s->s_begin[i + 1]; j++) {
            if (s->i_pos[j] > RANK_MAX_RANK) {
                continue;
            }
            rows[n] = pair_row[s->i_pair[j]];
            ranks[n] = s->i_pos[j];
            clicks[n] = s->i_click[j];
            n++;
        }
        if (cand_begin) {
            uint32_t q = s->s_query[i];
            for (size_t k = 0; k < n; k++) {
                if (rows[k] < n_rows) {
                    in_list[rows[k]] = 1;
                }
            }
            for (size_t r = cand_begin[q]; r < cand_end[q]; r++) {
                if (!in_list[r]) {
                    rows[n] = r;
                    ranks[n] = 0;
                    clicks[n] = 0;
                    n++;
                }
            }
            for (size_t k = 0; k < n; k++) {
                if (rows[k] < n_rows) {
                    in_list[rows[k]] = 0;
                }
            }
        }
        if (n > 0) {
            rc = rank_clicks_add(c, s->s_query[i], rows, ranks, clicks, n, 1.0, merge, err);
            if (rc != CW_OK) {
                cw_err_prefix(err, "session %zu: ", i);
            }
        }
    }
    free(rows);
    free(ranks);
    free(clicks);
    free(in_list);
    if (rc != CW_OK) {
        rank_clicks_free(c);
        return rc;
    }
    *out = c;
    return CW_OK;
}
