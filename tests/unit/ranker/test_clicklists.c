/* Tests of cli/clicklists.c, the bridge from causal/'s sessions to ranker/'s click lists:
 * simulated deterministic sessions merge into one list per query with every click and
 * session counted, unshown candidates join as rank 0, and rows map back to the LETOR rows. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/clicklists.h"
#include "ranker/ranker_int.h"

static char *write_letor(void)
{
    /* two queries: 12 and 3 candidates, labels 0..2, one feature = the row's own score */
    char *path = strdup("/tmp/cw_clicklists_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 12; i++) {
        fprintf(f, "%d qid:a 1:%d\n", i % 3, 12 - i);
    }
    for (int i = 0; i < 3; i++) {
        fprintf(f, "%d qid:b 1:%d\n", 2 - i, 3 - i);
    }
    fclose(f);
    return path;
}

Test(cli_clicklists, deterministic_sessions_merge_per_query_and_keep_every_click)
{
    char *path = write_letor();
    const char *paths[] = {path};
    rank_letor *d = NULL;
    cr_assert(eq(int, rank_letor_read(paths, 1, &d, NULL), CW_OK));
    cli_letor_sim sim;
    cw_err err;
    cr_assert(eq(int, cli_letor_sim_init(&sim, d, d->x, &err), CW_OK), "%s", err.msg);
    causal_sim_opts so = causal_sim_opts_default();
    so.user = causal_user_default(CAUSAL_USER_PBM, 2);
    so.n_sessions = 500;
    so.seed = 9;
    cr_assert(eq(int, causal_simulate(sim.coll, &so, &err), CW_OK), "%s", err.msg);
    size_t clicks_in_sessions = 0;
    for (size_t i = 0; i < sim.s->n_items; i++) {
        clicks_in_sessions += sim.s->i_click[i];
    }
    rank_clicks *c = NULL;
    cr_assert(eq(int,
                 cli_sessions_to_clicks(sim.s, 0, sim.s->n_sessions, d->x, d->n_rows, d->n_features,
                                        sim.pair_row, sim.cand_begin, sim.cand_end, true, &c, &err),
                 CW_OK),
              "%s", err.msg);
    /* one ranking per query (deterministic policy) */
    cr_expect(eq(sz, rank_clicks_n_lists(c), 2));
    cr_expect(eq(dbl, rank_clicks_n_sessions(c), 500.0));
    cr_expect(gt(sz, clicks_in_sessions, 0)); /* else the click sum below proves nothing */
    double clicks = 0;
    size_t n_lists_a = 0;
    for (size_t l = 0; l < c->n_lists; l++) {
        size_t n = c->list_begin[l + 1] - c->list_begin[l];
        /* query a: top 10 shown by score (rows 0..9 in order) + 2 unshown candidates */
        if (n == 12) {
            n_lists_a++;
            for (size_t j = 0; j < 12; j++) {
                size_t slot = c->list_begin[l] + j;
                cr_expect(eq(sz, c->slot_row[slot], j));
                cr_expect(eq(u32, c->slot_rank[slot], j < 10 ? (uint32_t)j + 1 : 0u));
            }
        } else {
            cr_expect(eq(sz, n, 3));
        }
        for (size_t j = c->list_begin[l]; j < c->list_begin[l + 1]; j++) {
            clicks += c->slot_clicks[j];
            cr_expect(le(dbl, c->slot_clicks[j], c->list_n[l]));
        }
    }
    cr_expect(eq(sz, n_lists_a, 1)); /* query a's slots were checked above */
    cr_expect(eq(dbl, clicks, (double)clicks_in_sessions));
    /* without merging: one list per session */
    rank_clicks *u = NULL;
    cr_assert(eq(int,
                 cli_sessions_to_clicks(sim.s, 0, sim.s->n_sessions, d->x, d->n_rows, d->n_features,
                                        sim.pair_row, NULL, NULL, false, &u, &err),
                 CW_OK));
    cr_expect(eq(sz, rank_clicks_n_lists(u), 500));
    cr_expect(eq(int,
                 cli_sessions_to_clicks(sim.s, 5, 5, d->x, d->n_rows, d->n_features, sim.pair_row,
                                        NULL, NULL, true, &u, &err),
                 CW_EINVAL));
    cr_expect(eq(str, err.msg, "no sessions in [5, 5) of 500"));
    rank_clicks_free(u);
    rank_clicks_free(c);
    cli_letor_sim_fini(&sim);
    rank_letor_free(d);
    unlink(path);
    free(path);
}
