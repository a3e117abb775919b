/* report/report.h: one self-contained HTML page with inline SVG plots that people read
 * instead of JSON: click-through by position and the latest clicks of a log, fitted
 * examination propensities (with the truth of a simulated log), off-policy estimates and
 * ULTR learning curves. Data flow: logs -> causal fits / OPE / ranker experiments -> report
 * (`causeway report` and the server's GET /report). Input formats: docs/reports.md. */
#ifndef CAUSEWAY_REPORT_REPORT_H
#define CAUSEWAY_REPORT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cw.h"

/* ---- limits on external input --------------------------------------------- */
#define REPORT_MAX_INPUT_BYTES ((size_t)64 << 20) /* one JSON/TSV input */
#define REPORT_MAX_RANK 50u                       /* positions plotted */
#define REPORT_MAX_SERIES 64u                     /* propensity fits, OPE rows, ULTR methods */
#define REPORT_MAX_POINTS 256u                    /* points of one ULTR curve */
#define REPORT_MAX_RECENT 100u                    /* latest clicks listed */
#define REPORT_TEXT_BYTES 128u /* query / doc id / name shown (longer ones are cut) */

/* ---- the click log summarised --------------------------------------------- */

/* One click event joined with its impression. */
typedef struct report_click {
    uint64_t impression_id;
    int64_t ts_ms;                  /* client time of the click */
    uint32_t position;              /* 1-based */
    char doc_id[REPORT_TEXT_BYTES]; /* cut at a UTF-8 boundary if longer */
    char query[REPORT_TEXT_BYTES];  /* "" if the impression was not found */
    char policy[REPORT_TEXT_BYTES];
} report_click;

typedef struct report_log_stats {
    uint64_t n_impressions;
    uint64_t n_items;
    uint64_t n_events;                 /* all types */
    uint64_t n_clicks;                 /* click events */
    uint32_t n_ranks;                  /* positions with data, <= max_rank given */
    uint64_t shown[REPORT_MAX_RANK];   /* items shown at position k + 1 */
    uint64_t clicked[REPORT_MAX_RANK]; /* of those, items with at least one click */
    size_t n_recent;                   /* entries of recent, newest first */
    report_click recent[REPORT_MAX_RECENT];
} report_log_stats;

/* Reads the log at db_path (read-only; safe while a server writes it: WAL readers do not
 * block the writer) into *out: counts, per-position shown/clicked items for positions
 * 1..max_rank (1..REPORT_MAX_RANK), and the n_recent (<= REPORT_MAX_RECENT) latest click
 * events joined with their impression's query. One pass over events and one over
 * impressions: O(events + items) time, O(n_recent) memory.
 * Errors: those of causal_log_open (CW_ENOTFOUND for a missing file), CW_EIO,
 * CW_ECORRUPT, CW_ENOMEM. */
int report_log_stats_read(const char *db_path, uint32_t max_rank, size_t n_recent,
                          report_log_stats *out, cw_err *err) CW_MUST_CHECK;

/* Wilson score interval for a binomial proportion k/n at normal quantile z (Wilson 1927,
 * JASA 22:209, eq. for the "score" interval). n = 0 gives [0, 1]. */
void report_wilson(uint64_t k, uint64_t n, double z, double *lo, double *hi);

/* ---- rendering -------------------------------------------------------------- */

/* A named text input: name is used in error messages (a file path or "propensity"). */
typedef struct report_source {
    const char *name;
    const char *text; /* NULL = not given */
    size_t len;
} report_source;

typedef struct report_input {
    const char *title;           /* page title; NULL = "causeway report" */
    const char *db_label;        /* shown as the log's name, NULL = none */
    const report_log_stats *log; /* NULL = no log sections */
    report_source propensity;    /* causal_propensity_to_json output, an array of them,
                                    or {"fits":[...]} (docs/reports.md) */
    report_source ope;           /* `causeway ope --json` output */
    report_source ultr;          /* learning curves: JSON or ultr_experiment TSV */
    const char *propensity_note; /* shown when propensity is absent (e.g. why a fit from the
                                    log was not possible), NULL = the default hint */
    double true_eta;             /* simulated log: true theta_k/theta_1 = k^-eta; NaN = none */
    double ultr_eta;             /* TSV curves: keep rows of this eta (and the sessions = 0
                                    baselines); NaN = all */
    int64_t generated_ms;        /* shown as the generation time; 0 = none */
    bool live;                   /* served by GET /report: add a reload link */
} report_input;

report_input report_input_default(void);

/* Fits examination propensities to the log at db_path (causal_sessions_load_log, then
 * causal_propensity_fit with `method`, a causal_prop_method_parse name, ranks 1..max_rank,
 * n_boot bootstrap replicates seeded by seed) and appends causal_propensity_to_json's
 * object to out, ready for report_input.propensity. Errors: CW_EINVAL (unknown method, an
 * empty log, or a method that cannot identify propensities from this log: the message
 * says why, e.g. a deterministic ranker without randomized sessions), and those of
 * causal_sessions_load_log and causal_propensity_fit. */
int report_fit_propensity(const char *db_path, const char *method, uint32_t max_rank,
                          uint32_t n_boot, uint64_t seed, cw_buf *out, cw_err *err) CW_MUST_CHECK;

/* Appends the whole HTML document to out: a header with the counts, then one section per
 * input (an absent input gets a one-line note naming the option that adds it). Every plot
 * is an inline <svg> inside <figure id="plot-...">; every plotted value is also a
 * data-value attribute of its mark and a table cell, so tests and readers can check the
 * numbers. No scripts, fonts or URLs outside the page.
 * Errors: CW_EPARSE (malformed JSON/TSV: "name:line:col: ..." or "name: ranks[2].ratio:
 * expected a number"), CW_ELIMIT (more than REPORT_MAX_SERIES series or REPORT_MAX_POINTS
 * points, or an input over REPORT_MAX_INPUT_BYTES), CW_ENOMEM. On error out may hold a
 * partial document. */
int report_render(const report_input *in, cw_buf *out, cw_err *err) CW_MUST_CHECK;

#endif /* CAUSEWAY_REPORT_REPORT_H */
