/* cli/clicklists.h: turns causal/'s session sets (simulated or loaded from the server's
 * log) into ranker/'s click lists; shared by `causeway train --db` and the ULTR
 * experiment driver (bench/ultr_experiment.c). */
#ifndef CAUSEWAY_CLI_CLICKLISTS_H
#define CAUSEWAY_CLI_CLICKLISTS_H

#include "causal/causal.h"
#include "common/cw.h"
#include "ranker/ranker.h"

/* Adds sessions [begin, end) of s to click lists over the feature rows x (n_rows x
 * n_features, borrowed by *out): item i of a session becomes slot (pair_row[i_pair[i]],
 * i_pos[i], i_click[i]); when cand_begin/cand_end are given (indexed by s's query id),
 * the query's other rows [cand_begin[q], cand_end[q]) join each list as unshown
 * candidates (rank 0). With merge, identical (query, ranking) sessions become one list;
 * without, every session is its own list (throughput benchmarks). Items deeper than
 * RANK_MAX_RANK are dropped. Errors: CW_EINVAL (row out of range, empty range),
 * CW_ENOMEM. *out is new (rank_clicks_free). */
int cli_sessions_to_clicks(const causal_sessions *s, size_t begin, size_t end, const double *x,
                           size_t n_rows, size_t n_features, const size_t *pair_row,
                           const size_t *cand_begin, const size_t *cand_end, bool merge,
                           rank_clicks **out, cw_err *err) CW_MUST_CHECK;

/* A click simulator over LETOR data: every query of d with its rows as candidates (doc
 * name = row number), labels d->y (rounded, 0..CAUSAL_MAX_LABEL), one ranker column with
 * scores (n_rows, the logging ranker's), and d's features. *pair_row maps the session
 * set's pair ids to rows of d; cand_begin/cand_end[q] bound the rows of its query q.
 * All out-pointers are new: causal_simcoll_free, causal_sessions_free, free().
 * Errors: CW_EINVAL (label out of range, query over CAUSAL_SIM_MAX_CANDIDATES rows),
 * CW_ENOMEM. */
typedef struct cli_letor_sim {
    causal_sessions *s;
    causal_simcoll *coll;
    size_t *pair_row;   /* s->n_pairs */
    size_t *cand_begin; /* s->n_queries */
    size_t *cand_end;
} cli_letor_sim;
int cli_letor_sim_init(cli_letor_sim *sim, const rank_letor *d, const double *scores,
                       cw_err *err) CW_MUST_CHECK;
void cli_letor_sim_fini(cli_letor_sim *sim);

#endif /* CAUSEWAY_CLI_CLICKLISTS_H */
