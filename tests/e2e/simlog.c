/* tests/e2e/simlog.c: writes a simulated click log (causal/'s PBM users with theta_k =
 * k^-eta on a seeded random collection, RandTop-10 logging) so the reports have a log
 * whose true examination curve is known: docs/img/report.png is drawn from one.
 * Usage: simlog OUT.db [SESSIONS=40000] [ETA=1] [SEED=5] */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "causal/causal.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: simlog OUT.db [SESSIONS=40000] [ETA=1] [SEED=5]\n");
        return 2;
    }
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 40000;
    double eta = argc > 3 ? strtod(argv[3], NULL) : 1.0;
    uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 5;
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    cw_err err;
    cw_err_clear(&err);
    int rc = causal_sessions_new(&s, &err);
    /* 100 queries x 30 candidates, labels 0..4, one noisy ranker (causal_simcoll_random) */
    rc = rc ? rc : causal_simcoll_random(s, 100, 30, 4, 1, 1.0, seed + 6, &c, &err);
    causal_sim_opts o = causal_sim_opts_default();
    causal_user_theta_power(&o.user, eta, 10);
    o.policy.kind = CAUSAL_POLICY_RANDTOP;
    o.policy.k = 10;
    o.policy.randtop_n = 10;
    o.n_sessions = n;
    o.seed = seed;
    rc = rc ? rc : causal_simulate(c, &o, &err);
    rc = rc ? rc
            : causal_sessions_save_log(s, 0, s->n_sessions, argv[1], 1764000000000, 10000, NULL,
                                       &err);
    causal_simcoll_free(c);
    causal_sessions_free(s);
    if (rc != CW_OK) {
        fprintf(stderr, "simlog: %s\n", err.msg);
        return 1;
    }
    return 0;
}
