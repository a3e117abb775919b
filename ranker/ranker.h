/* ranker/ranker.h: ranking metrics (trec_eval conventions), LETOR data, features
 * shared by training and serving, ranking models and (unbiased) learning-to-rank.
 * Data flow: logged impressions + propensities (causal/) -> training -> model.json -> server/. */
#ifndef CAUSEWAY_RANKER_RANKER_H
#define CAUSEWAY_RANKER_RANKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"
#include "index/index.h"

/* ==== metrics (ranker/metrics.c) ========================================== */

/* ==== LETOR data (ranker/letor.c) ========================================= */

/* ==== features (ranker/features.c) ======================================== */

/* ==== models and training (ranker/model.c, ranker/train.c) ================ */

#endif /* CAUSEWAY_RANKER_RANKER_H */
