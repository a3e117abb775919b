/* cli/clicklists.c: causal_sessions -> rank_clicks (see cli/clicklists.h). */
#include "config.h"

#include <stdio.h>
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

int cli_letor_sim_init(cli_letor_sim *sim, const rank_letor *d, const double *scores, cw_err *err)
{
    memset(sim, 0, sizeof *sim);
    size_t nf = d->n_features, n_max = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        n_max = CW_MAX(n_max, d->q_begin[q + 1] - d->q_begin[q]);
    }
    if (n_max > CAUSAL_SIM_MAX_CANDIDATES) {
        return cw_err_set(err, CW_EINVAL, "a query has %zu rows, the simulator takes %u", n_max,
                          CAUSAL_SIM_MAX_CANDIDATES);
    }
    float *feat = malloc(n_max * nf * sizeof *feat);
    int *labels = malloc(n_max * sizeof *labels);
    char(*id_buf)[24] = malloc(n_max * sizeof *id_buf);
    const char **ids = malloc(n_max * sizeof *ids);
    int rc = CW_OK;
    if (!feat || !labels || !id_buf || !ids) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for the simulator");
        goto done;
    }
    rc = causal_sessions_new(&sim->s, err);
    rc = rc ? rc : causal_sessions_set_n_features(sim->s, nf, err);
    rc = rc ? rc : causal_simcoll_new(sim->s, 1, NULL, &sim->coll, err);
    for (size_t q = 0; rc == CW_OK && q < d->n_queries; q++) {
        size_t b = d->q_begin[q], n = d->q_begin[q + 1] - b;
        for (size_t i = 0; i < n; i++) {
            double y = d->y[b + i];
            if (!(y >= 0 && y <= CAUSAL_MAX_LABEL)) {
                rc = cw_err_set(err, CW_EINVAL, "qid %s: label %g outside 0..%d", d->qid[q], y,
                                CAUSAL_MAX_LABEL);
                goto done;
            }
            snprintf(id_buf[i], sizeof id_buf[i], "%zu", b + i);
            ids[i] = id_buf[i];
            labels[i] = (int)(y + 0.5);
            for (size_t j = 0; j < nf; j++) {
                feat[i * nf + j] = (float)d->x[(b + i) * nf + j];
            }
        }
        const double *sc[1] = {scores + b};
        rc = causal_simcoll_add(sim->coll, d->qid[q], n, ids, labels, sc, feat, err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    causal_sessions *s = sim->s;
    sim->pair_row = malloc((s->n_pairs ? s->n_pairs : 1) * sizeof *sim->pair_row);
    sim->cand_begin = malloc((s->n_queries ? s->n_queries : 1) * sizeof *sim->cand_begin);
    sim->cand_end = malloc((s->n_queries ? s->n_queries : 1) * sizeof *sim->cand_end);
    if (!sim->pair_row || !sim->cand_begin || !sim->cand_end) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory for the simulator");
        goto done;
    }
    for (size_t q = 0; q < s->n_queries; q++) {
        sim->cand_begin[q] = SIZE_MAX;
        sim->cand_end[q] = 0;
    }
    for (size_t p = 0; p < s->n_pairs; p++) {
        size_t row = strtoull(s->doc_names[s->pair_doc[p]], NULL, 10);
        uint32_t q = s->pair_query[p];
        sim->pair_row[p] = row;
        sim->cand_begin[q] = CW_MIN(sim->cand_begin[q], row);
        sim->cand_end[q] = CW_MAX(sim->cand_end[q], row + 1);
    }
done:
    free(feat);
    free(labels);
    free(id_buf);
    free(ids);
    if (rc != CW_OK) {
        cli_letor_sim_fini(sim);
    }
    return rc;
}

void cli_letor_sim_fini(cli_letor_sim *sim)
{
    causal_simcoll_free(sim->coll);
    causal_sessions_free(sim->s);
    free(sim->pair_row);
    free(sim->cand_begin);
    free(sim->cand_end);
    memset(sim, 0, sizeof *sim);
}
