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

#endif /* CAUSEWAY_CLI_CLICKLISTS_H */
