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

#endif /* CAUSEWAY_CAUSAL_CAUSAL_H */
