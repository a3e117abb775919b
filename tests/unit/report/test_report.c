/* Tests of report/: Wilson intervals against hand-computed values, the log summary against
 * a log written through causal/, and the rendered HTML: plots present, every plotted
 * number equal to its input, escaping, self-containment, and every documented error. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "causal/causal.h"
#include "report/report.h"

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* The value of attribute `attr` on the first element whose opening tag contains `key`. */
static double attr_after(const char *html, const char *key, const char *attr)
{
    const char *p = strstr(html, key);
    cr_assert(p != NULL, "no element with %s", key);
    const char *tag = p;
    while (tag > html && *tag != '<') {
        tag--;
    }
    const char *end = strchr(p, '>');
    char pat[64];
    snprintf(pat, sizeof pat, " %s=\"", attr);
    const char *a = strstr(tag, pat);
    cr_assert(a != NULL && a < end, "no %s on the element with %s", attr, key);
    return strtod(a + strlen(pat), NULL);
}

static char *render(const report_input *in)
{
    cw_buf b = {0};
    cw_err err;
    int rc = report_render(in, &b, &err);
    cr_assert(eq(int, rc, CW_OK), "%s", err.msg);
    char *s = malloc(b.len + 1);
    memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    cw_buf_fini(&b);
    return s;
}

static report_source src(const char *name, const char *text)
{
    return (report_source){.name = name, .text = text, .len = strlen(text)};
}

Test(report_wilson, matches_hand_computed_intervals)
{
    double lo, hi;
    /* 5/10, z = 1.96: centre 0.5, half-width 1.96/1.38416 * sqrt(0.025 + 0.009604) =
     * 0.26341; the textbook interval [0.2366, 0.7634] (4 digits, hence the 5e-5). */
    report_wilson(5, 10, 1.96, &lo, &hi);
    cr_expect(ieee_ulp_eq(dbl, lo + hi, 1.0, 8));
    cr_expect(epsilon_eq(dbl, lo, 0.2366, 5e-5));
    cr_expect(epsilon_eq(dbl, hi, 0.7634, 5e-5));
    /* 0/10: starts at 0 and ends at 2 * 0.19208/1.38416 = 0.2775 */
    report_wilson(0, 10, 1.96, &lo, &hi);
    cr_expect(eq(dbl, lo, 0.0));
    cr_expect(epsilon_eq(dbl, hi, 0.2775, 5e-5));
    report_wilson(0, 0, 1.96, &lo, &hi);
    cr_expect(eq(dbl, lo, 0.0));
    cr_expect(eq(dbl, hi, 1.0));
}

/* ---- the log summary --------------------------------------------------------------- */

static char tmpdir[64];
static char dbpath[128];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/cw_report_XXXXXX");
    cr_assert(mkdtemp(tmpdir) != NULL);
    snprintf(dbpath, sizeof dbpath, "%s/log.db", tmpdir);
}

static void teardown(void)
{
    cw_err err;
    cr_expect(eq(int, cw_rmtree(tmpdir, &err), CW_OK));
}

/* Four impressions of three items; clicks: imp 1 pos 1, imp 2 pos 1 and 3, imp 3 pos 2
 * (twice), imp 4 none; plus one view event. */
static void write_log(void)
{
    causal_log *log = NULL;
    cw_err err;
    cr_assert(eq(int, causal_log_open(dbpath, NULL, &log, &err), CW_OK), "%s", err.msg);
    static const char *const queries[] = {"alpha", "beta <b>", "gamma", "delta"};
    static const char *const docs[] = {"d1", "d2", "d3"};
    causal_item items[4][3];
    causal_impression imps[4];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 3; j++) {
            items[i][j] = (causal_item){.doc_id = docs[j],
                                        .position = (uint32_t)j + 1,
                                        .score = 3.0 - j,
                                        .propensity = 1.0};
        }
        imps[i] = (causal_impression){.id = (uint64_t)i + 1,
                                      .ts_ms = 1700000000000 + i,
                                      .query = queries[i],
                                      .policy = "bm25",
                                      .log_prob = 0.0,
                                      .temperature = NAN,
                                      .n_items = 3,
                                      .items = items[i]};
    }
    cr_assert(eq(int, causal_log_append_impressions(log, imps, 4, &err), CW_OK), "%s", err.msg);
    causal_event ev[] = {
        {.impression_id = 1,
         .doc_id = "d1",
         .position = 1,
         .type = CAUSAL_EVENT_CLICK,
         .ts_ms = 1700000001000,
         .value_ms = -1},
        {.impression_id = 2,
         .doc_id = "d1",
         .position = 1,
         .type = CAUSAL_EVENT_CLICK,
         .ts_ms = 1700000002000,
         .value_ms = -1},
        {.impression_id = 2,
         .doc_id = "d3",
         .position = 3,
         .type = CAUSAL_EVENT_CLICK,
         .ts_ms = 1700000003000,
         .value_ms = -1},
        {.impression_id = 3,
         .doc_id = "d2",
         .position = 2,
         .type = CAUSAL_EVENT_VIEW,
         .ts_ms = 1700000004000,
         .value_ms = -1},
        {.impression_id = 3,
         .doc_id = "d2",
         .position = 2,
         .type = CAUSAL_EVENT_CLICK,
         .ts_ms = 1700000005000,
         .value_ms = -1},
        {.impression_id = 3,
         .doc_id = "d2",
         .position = 2,
         .type = CAUSAL_EVENT_CLICK,
         .ts_ms = 1700000006000,
         .value_ms = -1},
    };
    causal_event_reject rj[6];
    size_t n_rj = 0;
    cr_assert(eq(int, causal_log_append_events(log, ev, 6, rj, &n_rj, NULL, &err), CW_OK), "%s",
              err.msg);
    causal_log_close(log);
}

TestSuite(report_log, .init = setup, .fini = teardown);

Test(report_log, counts_clicked_items_per_position_and_lists_latest_clicks_first)
{
    write_log();
    report_log_stats *st = malloc(sizeof *st);
    cw_err err;
    cr_assert(eq(int, report_log_stats_read(dbpath, 10, 3, st, &err), CW_OK), "%s", err.msg);
    cr_expect(eq(u64, st->n_impressions, 4));
    cr_expect(eq(u64, st->n_items, 12));
    cr_expect(eq(u64, st->n_events, 6));
    cr_expect(eq(u64, st->n_clicks, 5));
    cr_assert(eq(u32, st->n_ranks, 3));
    uint64_t shown[3] = {4, 4, 4}, clicked[3] = {2, 1, 1}; /* two clicks on one item count once */
    for (int k = 0; k < 3; k++) {
        cr_expect(eq(u64, st->shown[k], shown[k]), "position %d", k + 1);
        cr_expect(eq(u64, st->clicked[k], clicked[k]), "position %d", k + 1);
    }
    /* The ring keeps the last 3 of 5 clicks, newest first, joined with their queries. */
    cr_assert(eq(sz, st->n_recent, 3));
    uint64_t want_imp[3] = {3, 3, 2};
    uint32_t want_pos[3] = {2, 2, 3};
    for (int i = 0; i < 3; i++) {
        cr_expect(eq(u64, st->recent[i].impression_id, want_imp[i]));
        cr_expect(eq(u32, st->recent[i].position, want_pos[i]));
    }
    cr_expect(eq(str, st->recent[0].query, "gamma"));
    cr_expect(eq(str, st->recent[2].query, "beta <b>"));
    cr_expect(eq(str, st->recent[2].doc_id, "d3"));
    cr_expect(eq(str, st->recent[2].policy, "bm25"));
    cr_expect(eq(i64, st->recent[0].ts_ms, 1700000006000));

    /* Rendered: CTR points equal clicked/shown, the clicks table escapes the query. */
    report_input in = report_input_default();
    in.log = st;
    in.db_label = dbpath;
    char *html = render(&in);
    cr_expect(strstr(html, "<figure id=\"plot-ctr\">") != NULL);
    cr_expect(eq(sz, count_of(html, "<circle class=\"pt\""), 3));
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-x=\"1\"", "data-value"), 0.5, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-x=\"2\"", "data-value"), 0.25, 1e-12));
    double lo, hi;
    report_wilson(1, 4, 1.959964, &lo, &hi);
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-x=\"3\"", "data-lo"), lo, 1e-9));
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-x=\"3\"", "data-hi"), hi, 1e-9));
    cr_expect(strstr(html, "<tr data-impression=\"2\" data-position=\"3\">") != NULL);
    cr_expect(strstr(html, "beta &lt;b&gt;") != NULL);
    cr_expect(strstr(html, "beta <b>") == NULL);
    cr_expect(strstr(html, "<b id=\"n-clicks\">5</b>") != NULL);
    free(html);
    free(st);
}

Test(report_log, missing_log_is_enotfound)
{
    report_log_stats *st = malloc(sizeof *st);
    cw_err err;
    cr_expect(eq(int, report_log_stats_read(dbpath, 10, 3, st, &err), CW_ENOTFOUND));
    cr_expect(strstr(err.msg, dbpath) != NULL, "%s", err.msg);
    free(st);
}

/* ---- propensity ------------------------------------------------------------------- */

static const char prop_json[] =
    "{\"method\":\"randomization\",\"n_ranks\":3,\"ranks\":["
    "{\"rank\":1,\"ratio\":1,\"ci_lo\":1,\"ci_hi\":1,\"clicks\":10,\"impressions\":20},"
    "{\"rank\":2,\"ratio\":0.5123,\"ci_lo\":0.45,\"ci_hi\":0.58,\"true_ratio\":0.5},"
    "{\"rank\":3,\"ratio\":0.3301,\"ci_lo\":null,\"ci_hi\":null}],\"diagnostics\":{}}";

Test(report_render, propensity_points_bands_and_truth_match_the_json)
{
    report_input in = report_input_default();
    in.propensity = src("fit.json", prop_json);
    char *html = render(&in);
    cr_expect(strstr(html, "<figure id=\"plot-propensity\"><svg") != NULL);
    cr_expect(eq(sz, count_of(html, "<circle class=\"pt\""), 3));
    cr_expect(eq(sz, count_of(html, "<path class=\"band\""), 1));
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-value=\"0.5123\"", "data-x"), 2, 0));
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-value=\"0.5123\"", "data-lo"), 0.45, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, "data-value=\"0.5123\"", "data-hi"), 0.58, 1e-12));
    cr_expect(strstr(html, "data-value=\"0.3301\" data-") == NULL, "NaN interval not drawn");
    /* true_ratio of the fit becomes the dashed reference */
    cr_expect(eq(sz, count_of(html, "<circle class=\"ref\""), 1));
    cr_expect(strstr(html, "stroke-dasharray=\"6 4\"") != NULL);
    cr_expect(strstr(html, "id=\"table-propensity\"") != NULL);
    free(html);
}

Test(report_render, true_eta_draws_the_power_law)
{
    report_input in = report_input_default();
    in.propensity = src("fit.json", prop_json);
    in.true_eta = 1.0;
    char *html = render(&in);
    cr_expect(eq(sz, count_of(html, "<circle class=\"ref\""), 3));
    cr_expect(strstr(html, "class=\"ref\" cx") != NULL);
    cr_expect(strstr(html, "data-x=\"3\" data-value=\"0.3333333333\"") != NULL);
    cr_expect(strstr(html, "true k^-1 (simulation)") != NULL);
    free(html);
}

Test(report_render, several_fits_become_several_series)
{
    const char *two = "{\"fits\":[{\"method\":\"rem\",\"ranks\":[{\"rank\":1,\"ratio\":1},"
                      "{\"rank\":2,\"ratio\":0.6}]},{\"method\":\"harvest\",\"ranks\":[{\"rank\":"
                      "1,\"ratio\":1},{\"rank\":2,\"ratio\":0.7}]}]}";
    report_input in = report_input_default();
    in.propensity = src("fits.json", two);
    char *html = render(&in);
    cr_expect(eq(sz, count_of(html, "<polyline class=\"line\""), 2));
    cr_expect(strstr(html, "data-series=\"harvest\" data-x=\"2\" data-value=\"0.7\"") != NULL);
    free(html);
}

/* ---- OPE -------------------------------------------------------------------------- */

static const char ope_json[] =
    "{\"log\":{\"impressions\":5000},\"metric\":\"ctr@10\",\"policies\":["
    "{\"policy\":\"logged\",\"estimates\":["
    "{\"estimator\":\"snips\",\"valid\":true,\"value\":0.21,\"se\":0.01,\"ci95\":[0.19,0.23],"
    "\"n_eff\":4980,\"w_max\":1,\"warning\":\"\"}]},"
    "{\"policy\":\"model<x>.json\",\"true_value\":0.25,\"estimates\":["
    "{\"estimator\":\"ips\",\"valid\":true,\"value\":0.2612,\"ci95\":[0.2,0.33],\"n_eff\":312.5,"
    "\"w_max\":40,\"warning\":\"few effective samples\"},"
    "{\"estimator\":\"pbm\",\"valid\":false,\"error\":\"no propensities\"}]}]}";

Test(report_render, ope_forest_plot_numbers_match_the_json)
{
    report_input in = report_input_default();
    in.ope = src("ope.json", ope_json);
    char *html = render(&in);
    cr_expect(strstr(html, "<figure id=\"plot-ope\"><svg") != NULL);
    cr_expect(eq(sz, count_of(html, "<circle class=\"est\""), 2));
    const char *k = "data-estimator=\"ips\"";
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-value"), 0.2612, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-lo"), 0.2, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-hi"), 0.33, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-neff"), 312.5, 1e-12));
    cr_expect(
        epsilon_eq(dbl, attr_after(html, "data-estimator=\"snips\"", "data-neff"), 4980, 1e-9));
    cr_expect(strstr(html, "data-policy=\"model&lt;x&gt;.json\"") != NULL);
    cr_expect(strstr(html, "<path class=\"truth\"") != NULL);
    cr_expect(strstr(html, ">not valid<title>no propensities</title>") != NULL);
    cr_expect(strstr(html, "(log: 5000 impressions)") != NULL);
    cr_expect(strstr(html, "few effective samples") != NULL);
    free(html);
}

/* ---- ULTR ------------------------------------------------------------------------- */

Test(report_render, ultr_json_curves_on_a_log_axis)
{
    const char *j = "{\"metric\":\"nDCG@10\",\"curves\":[{\"method\":\"naive\",\"points\":["
                    "{\"sessions\":1e6,\"value\":0.62},{\"sessions\":1e4,\"value\":0.55},"
                    "{\"sessions\":1e5,\"value\":0.6,\"ci_lo\":0.58,\"ci_hi\":0.61}]},"
                    "{\"method\":\"ips\",\"points\":[{\"sessions\":1e4,\"value\":0.57},"
                    "{\"sessions\":1e6,\"value\":0.7}]}]}";
    report_input in = report_input_default();
    in.ultr = src("curves.json", j);
    char *html = render(&in);
    cr_expect(strstr(html, "<figure id=\"plot-ultr\"><svg") != NULL);
    cr_expect(eq(sz, count_of(html, "<circle class=\"pt\""), 5));
    cr_expect(strstr(html, ">10k</text>") != NULL, "log axis labels powers of ten");
    cr_expect(strstr(html, ">1M</text>") != NULL);
    /* points sorted by sessions: the naive line runs 1e4 -> 1e5 -> 1e6 */
    const char *a = strstr(html, "data-series=\"naive\" data-x=\"10000\"");
    const char *b = strstr(html, "data-series=\"naive\" data-x=\"100000\"");
    const char *c = strstr(html, "data-series=\"naive\" data-x=\"1000000\"");
    cr_assert(a && b && c);
    cr_expect(a < b && b < c);
    cr_expect(strstr(html, "data-series=\"ips\" data-x=\"1000000\" data-value=\"0.7\"") != NULL);
    free(html);
}

Test(report_render, ultr_tsv_is_averaged_over_folds)
{
    const char *tsv = "fold\teta\tsessions\tmethod\tndcg@1\tndcg@3\tndcg@5\tndcg@10\tnote\n"
                      "1\t1\t10000\tnaive\t0\t0\t0\t0.5\t\n"
                      "2\t1\t10000\tnaive\t0\t0\t0\t0.7\t\n"
                      "1\t1\t100000\tnaive\t0\t0\t0\t0.6\t\n"
                      "1\t1\t10000\tips-true\t0\t0\t0\t0.65\tx\n";
    report_input in = report_input_default();
    in.ultr = src("ultr.tsv", tsv);
    char *html = render(&in);
    const char *k = "data-series=\"naive\" data-x=\"10000\"";
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-value"), 0.6, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-lo"), 0.5, 1e-12));
    cr_expect(epsilon_eq(dbl, attr_after(html, k, "data-hi"), 0.7, 1e-12));
    cr_expect(strstr(html, "data-series=\"ips-true\" data-x=\"10000\" data-value=\"0.65\"") !=
              NULL);
    free(html);
}

Test(report_render, ultr_tsv_baselines_span_the_range_and_eta_filters_rows)
{
    const char *tsv = "fold\teta\tsessions\tmethod\tndcg@1\tndcg@3\tndcg@5\tndcg@10\tnote\n"
                      "1\t0\t0\tskyline\t0\t0\t0\t0.72\t\n"
                      "2\t0\t0\tskyline\t0\t0\t0\t0.74\t\n"
                      "1\t1\t10000\tnaive\t0\t0\t0\t0.5\t\n"
                      "1\t1\t1000000\tnaive\t0\t0\t0\t0.6\t\n"
                      "1\t2\t10000\tnaive\t0\t0\t0\t0.4\t\n";
    report_input in = report_input_default();
    in.ultr = src("ultr.tsv", tsv);
    in.ultr_eta = 1;
    char *html = render(&in);
    /* the skyline (sessions 0) is a dashed level line from the first to the last x */
    cr_expect(strstr(html, "data-series=\"skyline\" data-x=\"10000\" data-value=\"0.73\"") != NULL);
    cr_expect(strstr(html, "data-series=\"skyline\" data-x=\"1000000\" data-value=\"0.73\"") !=
              NULL);
    cr_expect(eq(sz, count_of(html, "<circle class=\"ref\""), 2));
    /* eta 2 dropped: one naive curve with plain name, 0.5 at 1e4 */
    cr_expect(strstr(html, "data-series=\"naive\" data-x=\"10000\" data-value=\"0.5\"") != NULL);
    cr_expect(strstr(html, "eta 2") == NULL);
    cr_expect(eq(sz, count_of(html, "<circle class=\"pt\""), 2));
    free(html);
    /* without the filter the two etas are told apart */
    in.ultr_eta = NAN;
    html = render(&in);
    cr_expect(strstr(html, "data-series=\"naive (eta 2)\" data-x=\"10000\" data-value=\"0.4\"") !=
              NULL);
    free(html);
}

/* ---- the page as a whole ------------------------------------------------------------ */

Test(report_render, is_self_contained_and_notes_missing_inputs)
{
    report_input in = report_input_default();
    in.ope = src("ope.json", ope_json);
    in.title = "a <title>";
    char *html = render(&in);
    cr_expect(strncmp(html, "<!doctype html>", 15) == 0);
    cr_expect(strstr(html, "<script") == NULL);
    cr_expect(strstr(html, "http://") == NULL);
    cr_expect(strstr(html, "https://") == NULL);
    cr_expect(strstr(html, "@import") == NULL);
    cr_expect(strstr(html, "<title>a &lt;title&gt;</title>") != NULL);
    cr_expect(strstr(html, "No propensity fit given") != NULL);
    cr_expect(strstr(html, "No learning curves given") != NULL);
    cr_expect(strstr(html, "id=\"plot-ctr\"") == NULL, "no log, no CTR section");
    cr_expect(strstr(html, "</html>\n") != NULL);
    free(html);
}

/* ---- errors ------------------------------------------------------------------------ */

typedef struct bad_case {
    int which; /* 0 propensity, 1 ope, 2 ultr, 3 ultr with --ultr-eta 7 */
    char text[320];
    int code;
    char msg[120];
} bad_case;

ParameterizedTestParameters(report_render, rejects_bad_input_naming_the_place)
{
    static bad_case cases[] = {
        {0, "{\"ranks\":[", CW_EPARSE, "p.json:1:"},
        {0, "{\"method\":\"rem\"}", CW_EPARSE, "p.json: fit: expected an object with array"},
        {0, "{\"ranks\":[{\"rank\":1,\"ratio\":1},{\"rank\":2,\"ratio\":\"x\"}]}", CW_EPARSE,
         "p.json: fit.ranks[1].ratio: expected a number"},
        {0, "{\"ranks\":[{\"rank\":0,\"ratio\":1}]}", CW_EPARSE,
         "p.json: fit.ranks[0].rank: expected an integer in 1..50"},
        {0, "{\"method\":7,\"ranks\":[]}", CW_EPARSE, "p.json: fit.method: expected a string"},
        /* QA regressions: a negative ratio and a repeated rank were drawn without a word. */
        {0, "{\"ranks\":[{\"rank\":1,\"ratio\":1},{\"rank\":2,\"ratio\":-1}]}", CW_EPARSE,
         "p.json: fit.ranks[1].ratio: expected a number >= 0, got -1"},
        {0, "{\"ranks\":[{\"rank\":1,\"ratio\":1},{\"rank\":1,\"ratio\":0.5}]}", CW_EPARSE,
         "p.json: fit.ranks[1].rank: 1 after 1, ranks must increase"},
        {1, "[1,2]", CW_EPARSE, "o.json: expected an object with array \"policies\""},
        {1,
         "{\"policies\":[{\"policy\":\"a\",\"estimates\":[{\"estimator\":\"ips\","
         "\"value\":0.1,\"ci95\":[0.1]}]}]}",
         CW_EPARSE, "o.json: policies[0].estimates[0].ci95: expected [lo, hi]"},
        {1, "{\"policies\":[{\"estimates\":[]}]}", CW_EPARSE,
         "o.json: policies[0]: missing string \"policy\""},
        {2, "{\"curves\":[{\"method\":\"a\",\"points\":[{\"sessions\":-1,\"value\":0.5}]}]}",
         CW_EPARSE, "u: curves[0].points[0].sessions: expected a positive number"},
        {2, "fold\tmethod\n1\tnaive\n", CW_EPARSE,
         "u:1: expected a header with columns sessions, method and ndcg@10"},
        {2, "sessions\tmethod\tndcg@10\n1e4\tnaive\thigh\n", CW_EPARSE,
         "u:2: sessions and ndcg@10 must be numbers"},
        /* QA regressions: an empty TSV, negative sessions and an --ultr-eta matching no
         * row drew an empty or meaningless plot without a word. */
        {2, "", CW_EPARSE, "u: empty, expected a header with columns sessions"},
        {2, "sessions\tmethod\tndcg@10\n-5\tnaive\t0.5\n", CW_EPARSE,
         "u:2: sessions must be >= 0, got -5"},
        {3, "eta\tsessions\tmethod\tndcg@10\n1\t100\tnaive\t0.5\n", CW_EPARSE,
         "u: no curve rows with eta 7"},
    };
    return cr_make_param_array(bad_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bad_case *c, report_render, rejects_bad_input_naming_the_place)
{
    report_input in = report_input_default();
    report_source s = {.text = c->text, .len = strlen(c->text)};
    if (c->which == 0) {
        s.name = "p.json";
        in.propensity = s;
    } else if (c->which == 1) {
        s.name = "o.json";
        in.ope = s;
    } else {
        s.name = "u";
        in.ultr = s;
        in.ultr_eta = c->which == 3 ? 7 : NAN; /* 3: ultr with --ultr-eta 7 */
    }
    cw_buf b = {0};
    cw_err err;
    cw_err_clear(&err);
    cr_expect(eq(int, report_render(&in, &b, &err), c->code));
    cr_expect(strncmp(err.msg, c->msg, strlen(c->msg)) == 0, "got \"%s\"", err.msg);
    cw_buf_fini(&b);
}

Test(report_render, too_many_fits_is_elimit)
{
    cw_buf text = {0};
    cr_assert(eq(int, cw_buf_printf(&text, "["), CW_OK));
    for (unsigned i = 0; i <= REPORT_MAX_SERIES; i++) {
        cr_assert(eq(int,
                     cw_buf_printf(&text, "%s{\"ranks\":[{\"rank\":1,\"ratio\":1}]}", i ? "," : ""),
                     CW_OK));
    }
    cr_assert(eq(int, cw_buf_printf(&text, "]"), CW_OK));
    report_input in = report_input_default();
    in.propensity = (report_source){.name = "many.json", .text = text.data, .len = text.len};
    cw_buf b = {0};
    cw_err err;
    cr_expect(eq(int, report_render(&in, &b, &err), CW_ELIMIT));
    cr_expect(strstr(err.msg, "many.json: 65 fits (limit 64)") != NULL, "%s", err.msg);
    cw_buf_fini(&b);
    cw_buf_fini(&text);
}

/* ---- propensities fitted from a log -------------------------------------------------- */

/* A RandTop-10 log of PBM users with theta_k = 1/k (eta 1) written through causal/. */
static void simulate_log(causal_policy kind, uint64_t n_sessions)
{
    causal_sessions *s = NULL;
    causal_simcoll *c = NULL;
    cw_err err;
    cr_assert(eq(int, causal_sessions_new(&s, &err), CW_OK));
    cr_assert(eq(int, causal_simcoll_random(s, 40, 20, 4, 1, 1.0, 11, &c, &err), CW_OK), "%s",
              err.msg);
    causal_sim_opts o = causal_sim_opts_default();
    causal_user_theta_power(&o.user, 1.0, 10);
    o.policy.kind = kind;
    o.policy.k = 10;
    o.policy.randtop_n = 10;
    o.n_sessions = n_sessions;
    o.seed = 5;
    cr_assert(eq(int, causal_simulate(c, &o, &err), CW_OK), "%s", err.msg);
    cr_assert(
        eq(int,
           causal_sessions_save_log(s, 0, s->n_sessions, dbpath, 1700000000000, 10000, NULL, &err),
           CW_OK),
        "%s", err.msg);
    causal_simcoll_free(c);
    causal_sessions_free(s);
}

Test(report_log, fit_from_a_randomized_log_recovers_the_simulated_curve)
{
    simulate_log(CAUSAL_POLICY_RANDTOP, 40000);
    cw_buf fit = {0};
    cw_err err;
    cr_assert(eq(int, report_fit_propensity(dbpath, "randomization", 10, 50, 3, &fit, &err), CW_OK),
              "%s", err.msg);
    report_input in = report_input_default();
    in.propensity = (report_source){.name = "fit", .text = fit.data, .len = fit.len};
    in.true_eta = 1.0;
    char *html = render(&in);
    cr_expect(eq(sz, count_of(html, "<circle class=\"pt\""), 10));
    cr_expect(eq(sz, count_of(html, "<circle class=\"ref\""), 10));
    /* 40000 sessions give each rank ~4000 examinations of random documents: the ratio
     * theta_k/theta_1 = 1/k is recovered to about 10% (2 standard errors at rank 10). */
    for (int k = 2; k <= 10; k++) {
        const char *key = "class=\"pt\" cx", *p = html; /* the k-th mark is rank k */
        for (int i = 0; i < k; i++) {
            p = strstr(p, key);
            cr_assert(p != NULL, "no mark for rank %d", k);
            p++;
        }
        double v = attr_after(p - 1, key, "data-value");
        cr_expect(epsilon_eq(dbl, v, 1.0 / k, 0.12 / k + 0.01), "rank %d: %g vs %g", k, v, 1.0 / k);
    }
    free(html);
    cw_buf_fini(&fit);
}

Test(report_log, fit_from_a_deterministic_log_says_why_not)
{
    simulate_log(CAUSAL_POLICY_DETERMINISTIC, 2000);
    cw_buf fit = {0};
    cw_err err;
    cr_expect(
        eq(int, report_fit_propensity(dbpath, "randomization", 10, 0, 3, &fit, &err), CW_EINVAL));
    cr_expect(strlen(err.msg) > 10, "%s", err.msg);
    cr_expect(eq(int, report_fit_propensity(dbpath, "bogus", 10, 0, 3, &fit, &err), CW_EINVAL));
    cw_buf_fini(&fit);
}

Test(report_render, live_report_puts_clicks_first_and_leaves_out_offline_sections)
{
    report_log_stats *st = calloc(1, sizeof *st);
    st->n_impressions = 1;
    st->n_items = 2;
    st->n_events = st->n_clicks = 1;
    st->n_ranks = 2;
    st->shown[0] = st->shown[1] = 1;
    st->clicked[1] = 1;
    st->n_recent = 1;
    st->recent[0] = (report_click){.impression_id = 42, .position = 2, .ts_ms = 1};
    strcpy(st->recent[0].query, "q");
    report_input in = report_input_default();
    in.log = st;
    in.live = true;
    in.propensity_note = "No examination curve: because";
    char *html = render(&in);
    const char *clicks = strstr(html, "<tr data-impression=\"42\" data-position=\"2\">");
    const char *ctr = strstr(html, "id=\"plot-ctr\"");
    cr_assert(clicks && ctr);
    cr_expect(clicks < ctr);
    cr_expect(strstr(html, "id=\"ope\"") == NULL);
    cr_expect(strstr(html, "id=\"ultr\"") == NULL);
    cr_expect(strstr(html, "<a href=\"/report\">reload</a>") != NULL);
    cr_expect(strstr(html, "id=\"propensity-note\">No examination curve: because</p>") != NULL);
    free(html);
    free(st);
}
