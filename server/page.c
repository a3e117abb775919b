/* server/page.c: what people see in a browser: the search page (server/web/search.html,
 * embedded at build time as server/page_html.h) and the live report of the server's own
 * log (report/), served by GET / and GET /report. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "report/report.h"
#include "server/page_html.h"
#include "server/server_int.h"

/* The live report fits propensities only on logs up to this size (a fit reloads the log). */
#define SRV_REPORT_MAX_FIT_IMPRESSIONS 50000u

const char *srv_page_html(size_t *len)
{
    *len = sizeof page_html - 1;
    return page_html;
}

int srv_report_live(const char *db_path, cw_buf *out, cw_err *err)
{
    /* Opens its own read-only connection: the writer thread owns the server's handle,
     * and WAL lets this reader run beside it without blocking it. */
    report_log_stats *stats = malloc(sizeof *stats);
    if (!stats) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    cw_buf fit = {0};
    char note[CW_ERR_MSG_BYTES + 64];
    int rc = report_log_stats_read(db_path, 10, 20, stats, err);
    if (rc == CW_OK) {
        report_input in = report_input_default();
        in.title = "causeway: live click report";
        in.db_label = db_path;
        in.log = stats;
        in.generated_ms = cw_wall_ms();
        in.live = true;
        /* Examination propensities are identified only by randomized rankings (RandTop,
         * swap); a log of a deterministic ranker gets the estimator's reason instead. The
         * fit reloads the log, so very large logs are left to `causeway report --fit`. */
        cw_err fe;
        cw_err_clear(&fe);
        if (stats->n_impressions == 0) {
            in.propensity_note = "No impressions yet: search and click on the search page.";
        } else if (stats->n_impressions > SRV_REPORT_MAX_FIT_IMPRESSIONS) {
            snprintf(note, sizeof note,
                     "Propensities are not fitted live on more than %u impressions: run "
                     "causeway report --db LOG --fit randomization.",
                     SRV_REPORT_MAX_FIT_IMPRESSIONS);
            in.propensity_note = note;
        } else if (report_fit_propensity(db_path, "randomization", 10, 100, 1, &fit, &fe) ==
                   CW_OK) {
            in.propensity = (report_source){.name = "fit", .text = fit.data, .len = fit.len};
        } else {
            snprintf(note, sizeof note, "No examination curve: %s", fe.msg);
            in.propensity_note = note;
        }
        rc = report_render(&in, out, err);
    }
    cw_buf_fini(&fit);
    free(stats);
    return rc;
}
