/* server/page.c: what people see in a browser: the search page (server/web/search.html,
 * embedded at build time as server/page_html.h) and the live report of the server's own
 * log (report/), served by GET / and GET /report. */
#include "config.h"

#include <stdlib.h>

#include "report/report.h"
#include "server/page_html.h"
#include "server/server_int.h"

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
    int rc = report_log_stats_read(db_path, 10, 20, stats, err);
    if (rc == CW_OK) {
        report_input in = report_input_default();
        in.title = "causeway: live click report";
        in.db_label = db_path;
        in.log = stats;
        in.generated_ms = cw_wall_ms();
        in.live = true;
        rc = report_render(&in, out, err);
    }
    free(stats);
    return rc;
}
