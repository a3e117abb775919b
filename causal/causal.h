/* causal/causal.h: the click-log store (SQLite schema, migrations, writer, reader: the
 * only SQL in the tree), click models, the user simulator, propensity models and
 * off-policy estimators.
 * Data flow: server/ -> log store -> click models / propensities -> ranker/ training and OPE. */
#ifndef CAUSEWAY_CAUSAL_CAUSAL_H
#define CAUSEWAY_CAUSAL_CAUSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"
#include "index/index.h"
#include "ranker/ranker.h"

/* ==== log store (causal/logstore.c) ======================================= */

/* ==== sessions in memory, click models (causal/clickmodel.c) ============== */

/* ==== user simulator (causal/sim.c) ======================================= */

/* ==== propensity estimation (causal/propensity.c) ========================= */

/* ==== Plackett-Luce policies and off-policy evaluation (causal/ope.c) ===== */

/* ---- ranking policies over one candidate list (causal/pl.c) ------------- */
/* A policy turns the scores of n candidates into a distribution over top-k rankings
 * (METHODS.md section 6). Candidates are indices 0..n-1 into the caller's score array;
 * a ranking is an array of k distinct indices, slot j (0-based) = rank j+1.
 * The deterministic order is score descending, ties broken by the lower index.
 * All functions are pure apart from the caller's cw_rng: thread-safe on distinct rngs. */

#define CAUSAL_PL_MAX_ITEMS 4096u     /* candidates in one list */
#define CAUSAL_PL_EXACT_MAX_ITEMS 20u /* exact PL marginals: subset DP over 2^n states */
#define CAUSAL_PL_MAX_MC_SAMPLES 100000000u

typedef enum causal_rpol_kind {
    CAUSAL_RPOL_DET = 0,       /* the deterministic order (probability 1) */
    CAUSAL_RPOL_PL = 1,        /* Plackett-Luce over scores / tau */
    CAUSAL_RPOL_RANDTOPN = 2,  /* deterministic order with its top n shuffled uniformly */
    CAUSAL_RPOL_EPSGREEDY = 3, /* with prob. epsilon a uniform permutation, else DET */
} causal_rpol_kind;

typedef struct causal_rpol {
    causal_rpol_kind kind;
    double tau;      /* PL temperature, finite and > 0 (PL only) */
    uint32_t top_n;  /* RandTop-n: number of top results shuffled, >= 1 (RANDTOPN only) */
    double epsilon;  /* exploration probability in [0, 1] (EPSGREEDY only) */
} causal_rpol;

/* Parses "det", "pl:TAU" (e.g. "pl:0.5"), "randtop:N", "egreedy:EPS" into *out.
 * Errors: CW_EPARSE (unknown kind, bad or out-of-range number; message quotes spec). */
int causal_rpol_parse(const char *spec, causal_rpol *out, cw_err *err) CW_MUST_CHECK;
/* Writes the canonical spec ("pl:0.5") into buf (always NUL-terminated). */
void causal_rpol_format(const causal_rpol *pol, char *buf, size_t buf_bytes);
/* Checks parameters and list sizes: 1 <= k <= n <= CAUSAL_PL_MAX_ITEMS, scores finite.
 * Errors: CW_EINVAL (bad parameter or non-finite score, naming the candidate),
 * CW_ELIMIT (n over the limit). */
int causal_rpol_check(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                        cw_err *err) CW_MUST_CHECK;

/* Draws one top-k ranking into ranking[0..k). PL uses Gumbel top-k (Kool, van Hoof &
 * Welling, ICML 2019): the k largest s_d/tau + G_d. O(n log n).
 * Errors: those of causal_rpol_check, CW_ENOMEM. */
int causal_rpol_sample(const causal_rpol *pol, const double *scores, uint32_t n, uint32_t k,
                         cw_rng *rng, uint32_t *ranking, cw_err *err) CW_MUST_CHECK;

/* Exact log-probabilities of the prefixes of a top-k ranking:
 * log_prefix[j] = log pi(ranking[0..j] in slots 1..j+1), j < k; log_prefix[k-1] is the
 * ranking's own log-probability. Impossible prefixes give -INFINITY (a valid outcome,
 * not an error). PL in log space with log-sum-exp; O(n k).
 * Errors: causal_rpol_check's, CW_EINVAL (index >= n or repeated, naming the slot). */
int causal_rpol_log_prob(const causal_rpol *pol, const double *scores, uint32_t n,
                           const uint32_t *ranking, uint32_t k, double *log_prefix,
                           cw_err *err) CW_MUST_CHECK;

/* Distribution of the candidate in slot j+1 given the prefix ranking[0..j) (j < k):
 * probs[d] = pi(d | prefix), 0 for candidates already in the prefix. If the prefix itself
 * has probability 0 the conditional is undefined: returns CW_EINVAL.
 * Errors: causal_rpol_check's, CW_EINVAL. */
int causal_rpol_next_probs(const causal_rpol *pol, const double *scores, uint32_t n,
                             const uint32_t *prefix, uint32_t j, double *probs,
                             cw_err *err) CW_MUST_CHECK;

/* Exact marginals marg[d * k + j] = pi(d at slot j+1), d < n, j < k. Closed form for
 * DET, RANDTOPN, EPSGREEDY; PL by dynamic programming over the sets of already placed
 * candidates, O(2^n n), only for n <= CAUSAL_PL_EXACT_MAX_ITEMS (else CW_ELIMIT: use
 * causal_rpol_marginals_mc). Errors: causal_rpol_check's, CW_ELIMIT, CW_ENOMEM. */
int causal_rpol_marginals(const causal_rpol *pol, const double *scores, uint32_t n,
                            uint32_t k, double *marg, cw_err *err) CW_MUST_CHECK;

/* Monte-Carlo marginals of any policy from m samples (METHODS.md section 6):
 * marg[d*k+j] = share of samples with d at slot j+1; se (may be NULL) gets the standard
 * error sqrt(p(1-p)/m). 1 <= m <= CAUSAL_PL_MAX_MC_SAMPLES. O(m n log n).
 * Errors: causal_rpol_check's, CW_EINVAL (m out of range), CW_ENOMEM. */
int causal_rpol_marginals_mc(const causal_rpol *pol, const double *scores, uint32_t n,
                           uint32_t k, uint32_t m, cw_rng *rng, double *marg, double *se,
                           cw_err *err) CW_MUST_CHECK;


#endif /* CAUSEWAY_CAUSAL_CAUSAL_H */
