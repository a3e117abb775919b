/* report/render.c: the report as one self-contained HTML page: inputs (propensity fits,
 * OPE estimates, ULTR curves, log summary) are parsed and validated, then drawn as inline
 * SVG (line charts with interval bands, a forest plot for OPE) beside tables of the same
 * numbers. Every mark carries its value in data-* attributes for tests and readers. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/report.h"

report_input report_input_default(void)
{
    return (report_input){.true_eta = NAN, .ultr_eta = NAN};
}

/* ---- output with a sticky error ------------------------------------------------ */

typedef struct html {
    cw_buf *b;
    int rc;
} html;

static void raw(html *h, const char *s)
{
    if (h->rc == CW_OK) {
        h->rc = cw_buf_append(h->b, s, strlen(s));
    }
}

static void put(html *h, const char *fmt, ...) CW_PRINTF(2, 3);
static void put(html *h, const char *fmt, ...)
{
    if (h->rc != CW_OK) {
        return;
    }
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        h->rc = CW_EINVAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        h->rc = cw_buf_append(h->b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        h->rc = CW_ENOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    h->rc = cw_buf_append(h->b, big, (size_t)n);
    free(big);
}

/* Text as HTML character data or attribute value. */
static void esc(html *h, const char *s)
{
    for (const char *p = s; *p && h->rc == CW_OK; p++) {
        switch (*p) {
        case '&': raw(h, "&amp;"); break;
        case '<': raw(h, "&lt;"); break;
        case '>': raw(h, "&gt;"); break;
        case '"': raw(h, "&quot;"); break;
        case '\'': raw(h, "&#39;"); break;
        default: h->rc = cw_buf_append(h->b, p, 1);
        }
    }
}

/* A number for people: 4 significant digits, "–" for NaN. */
static void num(html *h, double v)
{
    if (isfinite(v)) {
        put(h, "%.4g", v);
    } else {
        raw(h, "&#8211;");
    }
}

/* A number for machines (data-* attributes): round-trips the JSON input to 1e-9. */
static void dnum(html *h, const char *attr, double v)
{
    if (isfinite(v)) {
        put(h, " %s=\"%.10g\"", attr, v);
    } else {
        put(h, " %s=\"NaN\"", attr);
    }
}

static void copy_name(char *dst, const char *s)
{
    snprintf(dst, REPORT_TEXT_BYTES, "%s", s ? s : "");
}

/* ---- series and charts ---------------------------------------------------------- */

/* Okabe & Ito (2008) colour-blind-safe palette. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define N_COLOURS 8

typedef struct series {
    char name[REPORT_TEXT_BYTES];
    size_t n;
    double x[REPORT_MAX_POINTS];
    double y[REPORT_MAX_POINTS];
    double lo[REPORT_MAX_POINTS]; /* interval, NaN = none */
    double hi[REPORT_MAX_POINTS];
    bool dashed; /* a reference (the truth), drawn without marks */
    int colour;
} series;

typedef struct chart {
    double w, h, ml, mr, mt, mb; /* size and margins, px */
    double x0, x1, y0, y1;       /* data range */
    bool log_x;
} chart;

static double px(const chart *c, double x)
{
    double t = c->log_x ? (log10(x) - log10(c->x0)) / (log10(c->x1) - log10(c->x0))
                        : (x - c->x0) / (c->x1 - c->x0);
    return c->ml + t * (c->w - c->ml - c->mr);
}

static double py(const chart *c, double y)
{
    return c->h - c->mb - (y - c->y0) / (c->y1 - c->y0) * (c->h - c->mt - c->mb);
}

/* Step of about `target` ticks over range: 1, 2 or 5 times a power of ten. */
static double nice_step(double range, int target)
{
    double raw_step = range / target;
    double mag = pow(10.0, floor(log10(raw_step)));
    double f = raw_step / mag;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

/* Session counts as people write them: 1k, 10k, 1M. */
static void fmt_count(char *buf, size_t n, double v)
{
    if (v >= 1e6 && fmod(v, 1e6) == 0) {
        snprintf(buf, n, "%gM", v / 1e6);
    } else if (v >= 1e3 && fmod(v, 1e3) == 0) {
        snprintf(buf, n, "%gk", v / 1e3);
    } else {
        snprintf(buf, n, "%g", v);
    }
}

static void chart_axes(html *h, const chart *c, const char *xlabel, const char *ylabel,
                       bool x_integer)
{
    double ystep = nice_step(c->y1 - c->y0, 5);
    for (double t = ceil(c->y0 / ystep) * ystep; t <= c->y1 + 1e-9 * ystep; t += ystep) {
        double y = py(c, t);
        put(h,
            "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
            "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
            c->ml, c->w - c->mr, y, y, c->ml - 6, y + 4, fabs(t) < 1e-12 ? 0.0 : t);
    }
    double base = c->h - c->mb;
    if (c->log_x) {
        for (double t = pow(10.0, ceil(log10(c->x0))); t <= c->x1 * (1 + 1e-9); t *= 10) {
            char lab[32];
            fmt_count(lab, sizeof lab, t);
            double x = px(c, t);
            put(h,
                "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, x, c->mt, base, x, base + 16, lab);
        }
    } else {
        double xstep = nice_step(c->x1 - c->x0, 8);
        if (x_integer) {
            xstep = fmax(1.0, round(xstep));
        }
        for (double t = ceil(c->x0 / xstep) * xstep; t <= c->x1 + 1e-9 * xstep; t += xstep) {
            double x = px(c, t);
            put(h, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                x, base + 16, t);
        }
    }
    put(h,
        "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
        "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
        c->ml, c->w - c->mr, base, base, c->ml, c->ml, c->mt, base);
    put(h, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
        (c->ml + c->w - c->mr) / 2, c->h - 6);
    esc(h, xlabel);
    put(h,
        "</text><text class=\"label\" transform=\"translate(14 %.1f) rotate(-90)\" "
        "text-anchor=\"middle\">",
        (c->mt + base) / 2);
    esc(h, ylabel);
    raw(h, "</text>\n");
}

#define LEGEND_COLUMN_PX 200.0
#define LEGEND_ROW_PX 18.0

static size_t legend_columns(const chart *c)
{
    return (size_t)CW_MAX(1.0, floor((c->w - c->ml - c->mr) / LEGEND_COLUMN_PX));
}

/* Entries in rows of legend_columns() across the top margin. */
static void legend(html *h, const chart *c, const series *s, size_t n_s)
{
    size_t cols = legend_columns(c);
    for (size_t i = 0; i < n_s; i++) {
        double x = c->ml + 10 + LEGEND_COLUMN_PX * (double)(i % cols);
        double y = 6 + LEGEND_ROW_PX * (double)(i / cols);
        const char *col = palette[s[i].colour % N_COLOURS];
        put(h,
            "<g class=\"legend\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\" stroke-width=\"2.5\"%s/><text x=\"%.1f\" y=\"%.1f\">",
            x, x + 22, y + 8, y + 8, col, s[i].dashed ? " stroke-dasharray=\"6 4\"" : "", x + 28,
            y + 12);
        esc(h, s[i].name);
        raw(h, "</text></g>\n");
    }
}

/* A line chart: interval bands, lines, marks with tooltips and data attributes. */
static void line_chart(html *h, const char *id, const char *title, const char *xlabel,
                       const char *ylabel, const series *s, size_t n_s, bool x_integer, bool log_x,
                       bool y_from_zero)
{
    chart c = {.w = 720, .h = 300, .ml = 64, .mr = 20, .mt = 16, .mb = 46, .log_x = log_x};
    double xmin = INFINITY, xmax = -INFINITY, ymin = y_from_zero ? 0.0 : INFINITY, ymax = -INFINITY;
    for (size_t i = 0; i < n_s; i++) {
        for (size_t j = 0; j < s[i].n; j++) {
            if (!isfinite(s[i].x[j]) || (log_x && s[i].x[j] <= 0)) {
                continue;
            }
            xmin = fmin(xmin, s[i].x[j]);
            xmax = fmax(xmax, s[i].x[j]);
            double v[3] = {s[i].y[j], s[i].lo[j], s[i].hi[j]};
            for (int k = 0; k < 3; k++) {
                if (isfinite(v[k])) {
                    ymin = fmin(ymin, v[k]);
                    ymax = fmax(ymax, v[k]);
                }
            }
        }
    }
    if (!isfinite(xmin)) {
        xmin = 1;
        xmax = 2;
    }
    if (!isfinite(ymin)) {
        ymin = 0.0;
    }
    if (!isfinite(ymax) || ymax <= ymin) {
        ymax = ymin + 1.0;
    }
    if (!y_from_zero) {
        double pad = 0.05 * (ymax - ymin); /* keep marks off the frame */
        ymin -= pad;
        ymax += pad;
    }
    if (log_x) {
        c.x0 = xmin / 1.5;
        c.x1 = xmax * 1.5;
    } else if (x_integer) {
        c.x0 = xmin - 0.5;
        c.x1 = xmax + 0.5;
    } else {
        c.x0 = xmin;
        c.x1 = xmax > xmin ? xmax : xmin + 1;
    }
    double ystep = nice_step(ymax - ymin, 5);
    c.y0 = floor(ymin / ystep) * ystep;
    c.y1 = ceil(ymax * 1.02 / ystep) * ystep;
    /* Room for the legend rows above the data; the plot area keeps its height. */
    size_t legend_cols = legend_columns(&c);
    double legend_px = LEGEND_ROW_PX * (double)((n_s + legend_cols - 1) / legend_cols);
    c.mt += legend_px;
    c.h += legend_px;

    put(h,
        "<figure id=\"%s\"><svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-labelledby=\"%s-t\">",
        id, c.w, c.h, id);
    put(h, "<title id=\"%s-t\">", id);
    esc(h, title);
    raw(h, "</title>\n");
    chart_axes(h, &c, xlabel, ylabel, x_integer);
    for (size_t i = 0; i < n_s; i++) {
        const series *se = &s[i];
        const char *col = palette[se->colour % N_COLOURS];
        size_t n_ci = 0;
        for (size_t j = 0; j < se->n; j++) {
            n_ci += isfinite(se->lo[j]) && isfinite(se->hi[j]) && isfinite(se->x[j]);
        }
        if (n_ci >= 2) {
            /* Many overlapping bands turn to mud: lighter when there are several. */
            put(h, "<path class=\"band\" data-series=\"%zu\" fill=\"%s\"%s d=\"", i, col,
                n_s > 3 ? " style=\"fill-opacity:.06\"" : "");
            bool first = true;
            for (size_t j = 0; j < se->n; j++) {
                if (isfinite(se->lo[j]) && isfinite(se->hi[j]) && isfinite(se->x[j])) {
                    put(h, "%c%.1f,%.1f", first ? 'M' : 'L', px(&c, se->x[j]), py(&c, se->hi[j]));
                    first = false;
                }
            }
            for (size_t j = se->n; j-- > 0;) {
                if (isfinite(se->lo[j]) && isfinite(se->hi[j]) && isfinite(se->x[j])) {
                    put(h, "L%.1f,%.1f", px(&c, se->x[j]), py(&c, se->lo[j]));
                }
            }
            raw(h, "Z\"/>\n");
        }
        put(h, "<polyline class=\"line\" data-series=\"%zu\" stroke=\"%s\"%s points=\"", i, col,
            se->dashed ? " stroke-dasharray=\"6 4\"" : "");
        for (size_t j = 0; j < se->n; j++) {
            if (isfinite(se->y[j]) && isfinite(se->x[j])) {
                put(h, "%.1f,%.1f ", px(&c, se->x[j]), py(&c, se->y[j]));
            }
        }
        raw(h, "\"/>\n");
        for (size_t j = 0; j < se->n; j++) {
            if (!isfinite(se->y[j]) || !isfinite(se->x[j])) {
                continue;
            }
            if (n_ci == 1 && isfinite(se->lo[j]) && isfinite(se->hi[j])) {
                put(h,
                    "<line class=\"whisker\" stroke=\"%s\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" "
                    "y2=\"%.1f\"/>",
                    col, px(&c, se->x[j]), px(&c, se->x[j]), py(&c, se->lo[j]), py(&c, se->hi[j]));
            }
            put(h, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\"",
                se->dashed ? "ref" : "pt", px(&c, se->x[j]), py(&c, se->y[j]),
                se->dashed ? "2" : "3.5", col);
            raw(h, " data-series=\"");
            esc(h, se->name);
            raw(h, "\"");
            dnum(h, "data-x", se->x[j]);
            dnum(h, "data-value", se->y[j]);
            if (isfinite(se->lo[j])) {
                dnum(h, "data-lo", se->lo[j]);
                dnum(h, "data-hi", se->hi[j]);
            }
            raw(h, "><title>");
            esc(h, se->name);
            put(h, ", %s %g: %.4g", xlabel, se->x[j], se->y[j]);
            if (isfinite(se->lo[j])) {
                put(h, " [%.4g, %.4g]", se->lo[j], se->hi[j]);
            }
            raw(h, "</title></circle>\n");
        }
    }
    legend(h, &c, s, n_s);
    raw(h, "</svg></figure>\n");
}

/* ---- JSON helpers ----------------------------------------------------------------- */

static int load_json(const report_source *src, json_t **out, cw_err *err)
{
    if (src->len > REPORT_MAX_INPUT_BYTES) {
        return cw_err_set(err, CW_ELIMIT, "%s: %zu bytes (limit %zu)", src->name, src->len,
                          REPORT_MAX_INPUT_BYTES);
    }
    json_error_t je;
    json_t *root = json_loadb(src->text, src->len, 0, &je);
    if (!root) {
        return cw_err_set(err, CW_EPARSE, "%s:%d:%d: %s", src->name, je.line, je.column, je.text);
    }
    *out = root;
    return CW_OK;
}

/* A number member: absent (when optional) or null -> NaN. */
static int get_num(const json_t *o, const char *key, bool required, double *out, const char *src,
                   const char *where, cw_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v && !required) {
        *out = NAN;
        return CW_OK;
    }
    if (v && json_is_null(v)) {
        *out = NAN;
        return CW_OK;
    }
    if (!v || !json_is_number(v)) {
        return cw_err_set(err, CW_EPARSE, "%s: %s.%s: expected a number", src, where, key);
    }
    *out = json_number_value(v);
    return CW_OK;
}

static int get_str(const json_t *o, const char *key, const char *dflt, const char **out,
                   const char *src, const char *where, cw_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (!dflt) {
            return cw_err_set(err, CW_EPARSE, "%s: %s: missing string \"%s\"", src, where, key);
        }
        *out = dflt;
        return CW_OK;
    }
    if (!json_is_string(v)) {
        return cw_err_set(err, CW_EPARSE, "%s: %s.%s: expected a string", src, where, key);
    }
    *out = json_string_value(v);
    return CW_OK;
}

static void date_utc(char *buf, size_t n, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) {
        strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
    } else {
        snprintf(buf, n, "?");
    }
}

/* ---- sections ----------------------------------------------------------------------- */

static void section_open(html *h, const char *id, const char *heading)
{
    put(h, "<section id=\"%s\" aria-labelledby=\"%s-h\"><h2 id=\"%s-h\">", id, id, id);
    esc(h, heading);
    raw(h, "</h2>\n");
}

/* Examination propensity: theta_k/theta_1 per fit with bootstrap bands (METHODS.md
 * section 4), and the truth of a simulated log as a dashed reference. */
static int render_propensity(html *h, const report_input *in, cw_err *err)
{
    section_open(h, "propensity", "Examination propensity by position");
    if (in->propensity_note) {
        raw(h, "<p class=\"note\" id=\"propensity-note\">");
        esc(h, in->propensity_note);
        raw(h, "</p>\n");
    }
    if (!in->propensity.text && !isfinite(in->true_eta)) {
        if (!in->propensity_note) {
            raw(h, "<p class=\"note\">No propensity fit given: add <code>--propensity "
                   "FIT.json</code> or <code>--fit randomization</code> to fit the log.</p>");
        }
        raw(h, "</section>\n");
        return CW_OK;
    }
    json_t *root = NULL;
    series *s = calloc(REPORT_MAX_SERIES + 1, sizeof *s);
    if (!s) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    size_t n_s = 0, n_fits = 0;
    int rc = CW_OK;
    const char *src = in->propensity.name ? in->propensity.name : "propensity";
    series truth = {.dashed = true, .colour = 6};
    copy_name(truth.name, "true (simulation)");
    uint32_t max_rank = 0;
    if (in->propensity.text) {
        rc = load_json(&in->propensity, &root, err);
        if (rc != CW_OK) {
            goto done;
        }
        const json_t *fits = root;
        if (json_is_object(root) && json_is_array(json_object_get(root, "fits"))) {
            fits = json_object_get(root, "fits");
        }
        n_fits = json_is_array(fits) ? json_array_size(fits) : 1;
        if (n_fits > REPORT_MAX_SERIES) {
            rc = cw_err_set(err, CW_ELIMIT, "%s: %zu fits (limit %u)", src, n_fits,
                            REPORT_MAX_SERIES);
            goto done;
        }
        for (size_t f = 0; f < n_fits; f++) {
            const json_t *fit = json_is_array(fits) ? json_array_get(fits, f) : fits;
            char where[48];
            snprintf(where, sizeof where, json_is_array(fits) ? "fits[%zu]" : "fit", f);
            const json_t *ranks = json_object_get(fit, "ranks");
            if (!json_is_object(fit) || !json_is_array(ranks)) {
                rc = cw_err_set(err, CW_EPARSE, "%s: %s: expected an object with array \"ranks\"",
                                src, where);
                goto done;
            }
            const char *method = "";
            rc = get_str(fit, "method", "fit", &method, src, where, err);
            if (rc != CW_OK) {
                goto done;
            }
            series *se = &s[n_s++];
            copy_name(se->name, method);
            se->colour = (int)f;
            size_t n = json_array_size(ranks);
            if (n > REPORT_MAX_RANK) {
                rc = cw_err_set(err, CW_ELIMIT, "%s: %s: %zu ranks (limit %u)", src, where, n,
                                REPORT_MAX_RANK);
                goto done;
            }
            for (size_t k = 0; k < n; k++) {
                const json_t *r = json_array_get(ranks, k);
                char w2[80];
                snprintf(w2, sizeof w2, "%s.ranks[%zu]", where, k);
                double rank, t;
                if (!json_is_object(r)) {
                    rc = cw_err_set(err, CW_EPARSE, "%s: %s: expected an object", src, w2);
                    goto done;
                }
                rc = get_num(r, "rank", true, &rank, src, w2, err);
                rc = rc ? rc : get_num(r, "ratio", true, &se->y[k], src, w2, err);
                rc = rc ? rc : get_num(r, "ci_lo", false, &se->lo[k], src, w2, err);
                rc = rc ? rc : get_num(r, "ci_hi", false, &se->hi[k], src, w2, err);
                rc = rc ? rc : get_num(r, "true_ratio", false, &t, src, w2, err);
                if (rc != CW_OK) {
                    goto done;
                }
                if (!(rank >= 1 && rank <= REPORT_MAX_RANK) || rank != floor(rank)) {
                    rc = cw_err_set(err, CW_EPARSE, "%s: %s.rank: expected an integer in 1..%u",
                                    src, w2, REPORT_MAX_RANK);
                    goto done;
                }
                if (k > 0 && rank <= se->x[k - 1]) { /* two marks at one x, or a zigzag line */
                    rc = cw_err_set(err, CW_EPARSE, "%s: %s.rank: %g after %g, ranks must increase",
                                    src, w2, rank, se->x[k - 1]);
                    goto done;
                }
                if (se->y[k] < 0) { /* theta_k/theta_1 is a ratio of probabilities */
                    rc = cw_err_set(err, CW_EPARSE, "%s: %s.ratio: expected a number >= 0, got %g",
                                    src, w2, se->y[k]);
                    goto done;
                }
                se->x[k] = rank;
                max_rank = CW_MAX(max_rank, (uint32_t)rank);
                if (isfinite(t) && !isfinite(in->true_eta) && f == 0) {
                    truth.x[truth.n] = rank;
                    truth.y[truth.n] = t;
                    truth.lo[truth.n] = truth.hi[truth.n] = NAN;
                    truth.n++;
                }
            }
            se->n = n;
        }
    }
    if (isfinite(in->true_eta)) {
        /* The simulator's power-law examination theta_k = k^-eta (Joachims et al. WSDM 2017,
         * section 6): theta_k/theta_1 = k^-eta. */
        uint32_t n = max_rank ? max_rank : 10;
        for (uint32_t k = 1; k <= n; k++) {
            truth.x[k - 1] = k;
            truth.y[k - 1] = pow((double)k, -in->true_eta);
            truth.lo[k - 1] = truth.hi[k - 1] = NAN;
        }
        truth.n = n;
        snprintf(truth.name, sizeof truth.name, "true k^-%g (simulation)", in->true_eta);
    }
    if (truth.n) {
        s[n_s++] = truth;
    }
    raw(h, "<p>Probability that a user examines position <i>k</i>, relative to position 1 "
           "(&#952;<sub>k</sub>/&#952;<sub>1</sub>), with 95% bootstrap intervals as "
           "bands.</p>\n");
    line_chart(h, "plot-propensity", "Examination propensity by position", "position",
               "theta_k / theta_1", s, n_s, true, false, true);
    raw(h, "<details><summary>Numbers</summary><table class=\"num\" id=\"table-propensity\">"
           "<thead><tr><th>position</th>");
    for (size_t i = 0; i < n_s; i++) {
        raw(h, "<th>");
        esc(h, s[i].name);
        raw(h, "</th>");
    }
    raw(h, "</tr></thead><tbody>\n");
    uint32_t rows = 0;
    for (size_t i = 0; i < n_s; i++) {
        for (size_t j = 0; j < s[i].n; j++) {
            rows = CW_MAX(rows, (uint32_t)s[i].x[j]);
        }
    }
    for (uint32_t k = 1; k <= rows; k++) {
        put(h, "<tr><td>%u</td>", k);
        for (size_t i = 0; i < n_s; i++) {
            raw(h, "<td>");
            for (size_t j = 0; j < s[i].n; j++) {
                if (s[i].x[j] == k) {
                    num(h, s[i].y[j]);
                    if (isfinite(s[i].lo[j])) {
                        put(h, " [%.4g, %.4g]", s[i].lo[j], s[i].hi[j]);
                    }
                }
            }
            raw(h, "</td>");
        }
        raw(h, "</tr>\n");
    }
    raw(h, "</tbody></table></details></section>\n");
done:
    json_decref(root);
    free(s);
    return rc;
}

/* Click-through rate by position from the log with Wilson intervals. */
static void render_ctr(html *h, const report_log_stats *L)
{
    section_open(h, "ctr", "Click-through rate by position");
    if (L->n_ranks == 0) {
        raw(h, "<p class=\"note\">The log has no impressions yet: search on the page and "
               "click a result.</p></section>\n");
        return;
    }
    series *s = calloc(1, sizeof *s);
    if (!s) {
        h->rc = CW_ENOMEM;
        return;
    }
    copy_name(s->name, "clicked / shown (95% Wilson interval)");
    for (uint32_t k = 0; k < L->n_ranks; k++) {
        s->x[k] = k + 1;
        s->y[k] = L->shown[k] ? (double)L->clicked[k] / (double)L->shown[k] : NAN;
        if (L->shown[k]) {
            report_wilson(L->clicked[k], L->shown[k], 1.959964, &s->lo[k], &s->hi[k]);
        } else {
            s->lo[k] = s->hi[k] = NAN;
        }
    }
    s->n = L->n_ranks;
    raw(h, "<p>Share of shown results that were clicked at each position. Position bias makes "
           "this fall with rank even when relevance does not.</p>\n");
    line_chart(h, "plot-ctr", "Click-through rate by position", "position", "CTR", s, 1, true,
               false, true);
    raw(h, "<details><summary>Numbers</summary><table class=\"num\" id=\"table-ctr\"><thead><tr>"
           "<th>position</th><th>shown</th><th>clicked</th><th>CTR</th><th>95% interval</th>"
           "</tr></thead><tbody>\n");
    for (uint32_t k = 0; k < L->n_ranks; k++) {
        put(h, "<tr><td>%u</td><td>%llu</td><td>%llu</td><td>", k + 1,
            (unsigned long long)L->shown[k], (unsigned long long)L->clicked[k]);
        num(h, s->y[k]);
        raw(h, "</td><td>");
        if (L->shown[k]) {
            put(h, "[%.4g, %.4g]", s->lo[k], s->hi[k]);
        }
        raw(h, "</td></tr>\n");
    }
    raw(h, "</tbody></table></details></section>\n");
    free(s);
}

typedef struct ope_row {
    char policy[REPORT_TEXT_BYTES];
    char est[32];
    bool valid;
    double value, lo, hi, n_eff, w_max, truth;
    char note[REPORT_TEXT_BYTES]; /* warning or why it is not valid */
} ope_row;

/* A forest plot: one row per (policy, estimator), point and interval on a shared axis. */
static void forest_plot(html *h, const ope_row *r, size_t n, const char *metric)
{
    chart c = {.w = 720, .ml = 250, .mr = 90, .mt = 26, .mb = 46};
    c.h = c.mt + c.mb + 26.0 * (double)n;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v[4] = {r[i].value, r[i].lo, r[i].hi, r[i].truth};
        for (int k = 0; r[i].valid && k < 4; k++) {
            if (isfinite(v[k])) {
                lo = fmin(lo, v[k]);
                hi = fmax(hi, v[k]);
            }
        }
    }
    if (!isfinite(lo)) {
        lo = 0;
        hi = 1;
    }
    if (hi <= lo) {
        hi = lo + 1e-3;
    }
    double step = nice_step(hi - lo, 6);
    c.x0 = floor(lo / step) * step;
    c.x1 = ceil(hi / step) * step;
    c.y0 = 0;
    c.y1 = 1;
    put(h,
        "<figure id=\"plot-ope\"><svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
        "aria-labelledby=\"plot-ope-t\"><title id=\"plot-ope-t\">Off-policy estimates with 95%% "
        "intervals</title>\n",
        c.w, c.h);
    double base = c.h - c.mb;
    for (double t = c.x0; t <= c.x1 + 1e-9 * step; t += step) {
        double x = px(&c, t);
        put(h,
            "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/><text "
            "class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
            x, x, c.mt, base, x, base + 16, fabs(t) < 1e-12 * step ? 0.0 : t);
    }
    put(h, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", c.ml,
        c.w - c.mr, base, base);
    put(h, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">estimated ",
        (c.ml + c.w - c.mr) / 2, c.h - 6);
    esc(h, metric);
    raw(h, "</text><text class=\"tick\" x=\"712\" y=\"16\" text-anchor=\"end\">n_eff</text>\n");
    /* Rows of one policy share a colour; a light rule separates policies. */
    int colour = -1;
    for (size_t i = 0; i < n; i++) {
        double y = c.mt + 26.0 * (double)i + 18;
        if (i == 0 || strcmp(r[i].policy, r[i - 1].policy) != 0) {
            colour++;
            if (i) {
                put(h, "<line class=\"grid\" x1=\"8\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
                    c.w - 8, y - 13, y - 13);
            }
        }
        const char *col = palette[colour % N_COLOURS];
        size_t pl = strlen(r[i].policy);
        put(h, "<text class=\"rowlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\"><title>",
            c.ml - 10, y + 4);
        esc(h, r[i].policy);
        raw(h, "</title>");
        /* Long names (model paths) keep their informative end. */
        if (pl > 28) {
            raw(h, "&#8230;");
            esc(h, r[i].policy + pl - 28);
        } else {
            esc(h, r[i].policy);
        }
        put(h, " &#183; %s</text>\n", r[i].est);
        if (!r[i].valid) {
            put(h, "<text class=\"invalid\" x=\"%.1f\" y=\"%.1f\">not valid<title>", c.ml + 4,
                y + 4);
            esc(h, r[i].note);
            raw(h, "</title></text>\n");
            continue;
        }
        if (isfinite(r[i].lo) && isfinite(r[i].hi)) {
            put(h,
                "<line class=\"whisker\" stroke=\"%s\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" "
                "y2=\"%.1f\"/>",
                col, px(&c, r[i].lo), px(&c, r[i].hi), y, y);
        }
        if (isfinite(r[i].truth)) {
            double x = px(&c, r[i].truth);
            put(h,
                "<path class=\"truth\" d=\"M%.1f,%.1fl5,6l-5,6l-5,-6z\" data-value=\"%.10g\">"
                "<title>true value %.4g</title></path>",
                x, y - 6, r[i].truth, r[i].truth);
        }
        put(h, "<circle class=\"est\" cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"",
            px(&c, r[i].value), y, col);
        raw(h, " data-policy=\"");
        esc(h, r[i].policy);
        put(h, "\" data-estimator=\"%s\"", r[i].est);
        dnum(h, "data-value", r[i].value);
        dnum(h, "data-lo", r[i].lo);
        dnum(h, "data-hi", r[i].hi);
        dnum(h, "data-neff", r[i].n_eff);
        raw(h, "><title>");
        esc(h, r[i].policy);
        put(h, " %s: %.4g [%.4g, %.4g], n_eff %.4g</title></circle>", r[i].est, r[i].value, r[i].lo,
            r[i].hi, r[i].n_eff);
        put(h, "<text class=\"tick neff\" x=\"712\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
            y + 4, r[i].n_eff >= 100 ? 0 : 1, r[i].n_eff);
    }
    raw(h, "</svg></figure>\n");
}

static int render_ope(html *h, const report_input *in, cw_err *err)
{
    section_open(h, "ope", "Off-policy estimates");
    if (!in->ope.text) {
        raw(h, "<p class=\"note\">No off-policy evaluation given: add <code>--ope "
               "OPE.json</code> (from <code>causeway ope --json</code>).</p></section>\n");
        return CW_OK;
    }
    const char *src = in->ope.name ? in->ope.name : "ope";
    json_t *root = NULL;
    ope_row *rows = calloc(REPORT_MAX_SERIES, sizeof *rows);
    if (!rows) {
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    int rc = load_json(&in->ope, &root, err);
    if (rc != CW_OK) {
        goto done;
    }
    const json_t *pols = json_object_get(root, "policies");
    if (!json_is_array(pols)) {
        rc = cw_err_set(err, CW_EPARSE, "%s: expected an object with array \"policies\"", src);
        goto done;
    }
    const char *metric = "";
    rc = get_str(root, "metric", "value", &metric, src, "root", err);
    if (rc != CW_OK) {
        goto done;
    }
    size_t n = 0;
    for (size_t p = 0; p < json_array_size(pols); p++) {
        const json_t *po = json_array_get(pols, p);
        char where[48];
        snprintf(where, sizeof where, "policies[%zu]", p);
        const json_t *ests = json_object_get(po, "estimates");
        if (!json_is_object(po) || !json_is_array(ests)) {
            rc = cw_err_set(err, CW_EPARSE, "%s: %s: expected an object with array \"estimates\"",
                            src, where);
            goto done;
        }
        const char *policy = "";
        double truth;
        rc = get_str(po, "policy", NULL, &policy, src, where, err);
        rc = rc ? rc : get_num(po, "true_value", false, &truth, src, where, err);
        if (rc != CW_OK) {
            goto done;
        }
        for (size_t e = 0; e < json_array_size(ests); e++) {
            const json_t *x = json_array_get(ests, e);
            char w2[80];
            snprintf(w2, sizeof w2, "%s.estimates[%zu]", where, e);
            if (n == REPORT_MAX_SERIES) {
                rc = cw_err_set(err, CW_ELIMIT, "%s: more than %u (policy, estimator) rows", src,
                                REPORT_MAX_SERIES);
                goto done;
            }
            if (!json_is_object(x)) {
                rc = cw_err_set(err, CW_EPARSE, "%s: %s: expected an object", src, w2);
                goto done;
            }
            ope_row *r = &rows[n++];
            const char *est = "", *note = "";
            rc = get_str(x, "estimator", NULL, &est, src, w2, err);
            if (rc != CW_OK) {
                goto done;
            }
            copy_name(r->policy, policy);
            snprintf(r->est, sizeof r->est, "%s", est);
            r->truth = truth;
            const json_t *valid = json_object_get(x, "valid");
            r->valid = !valid || json_is_true(valid);
            if (!r->valid) {
                rc = get_str(x, "error", "", &note, src, w2, err);
                copy_name(r->note, note);
                r->value = r->lo = r->hi = r->n_eff = r->w_max = NAN;
                if (rc != CW_OK) {
                    goto done;
                }
                continue;
            }
            rc = get_num(x, "value", true, &r->value, src, w2, err);
            rc = rc ? rc : get_num(x, "n_eff", false, &r->n_eff, src, w2, err);
            rc = rc ? rc : get_num(x, "w_max", false, &r->w_max, src, w2, err);
            rc = rc ? rc : get_str(x, "warning", "", &note, src, w2, err);
            if (rc != CW_OK) {
                goto done;
            }
            copy_name(r->note, note);
            r->lo = r->hi = NAN;
            const json_t *ci = json_object_get(x, "ci95");
            if (ci && !json_is_null(ci)) {
                if (!json_is_array(ci) || json_array_size(ci) != 2 ||
                    !json_is_number(json_array_get(ci, 0)) ||
                    !json_is_number(json_array_get(ci, 1))) {
                    rc = cw_err_set(err, CW_EPARSE, "%s: %s.ci95: expected [lo, hi]", src, w2);
                    goto done;
                }
                r->lo = json_number_value(json_array_get(ci, 0));
                r->hi = json_number_value(json_array_get(ci, 1));
            }
        }
    }
    const json_t *lg = json_object_get(root, "log");
    double n_imp = NAN;
    if (json_is_object(lg)) {
        rc = get_num(lg, "impressions", false, &n_imp, src, "log", err);
        if (rc != CW_OK) {
            goto done;
        }
    }
    raw(h, "<p>Estimated ");
    esc(h, metric);
    raw(h, " of each candidate policy from the logged clicks, with 95% intervals and the "
           "effective sample size n<sub>eff</sub> of the importance weights");
    if (isfinite(n_imp)) {
        put(h, " (log: %.0f impressions)", n_imp);
    }
    raw(h, ". Small n<sub>eff</sub> means few impressions carry the estimate.</p>\n");
    forest_plot(h, rows, n, metric);
    raw(h, "<details><summary>Numbers</summary><table class=\"num\" id=\"table-ope\"><thead><tr>"
           "<th>policy</th><th>estimator</th><th>value</th><th>95% interval</th><th>n_eff</th>"
           "<th>w_max</th><th>note</th></tr></thead><tbody>\n");
    for (size_t i = 0; i < n; i++) {
        raw(h, "<tr><td class=\"t\">");
        esc(h, rows[i].policy);
        put(h, "</td><td class=\"t\">%s</td><td>", rows[i].est);
        num(h, rows[i].value);
        raw(h, "</td><td>");
        if (isfinite(rows[i].lo)) {
            put(h, "[%.4g, %.4g]", rows[i].lo, rows[i].hi);
        }
        raw(h, "</td><td>");
        num(h, rows[i].n_eff);
        raw(h, "</td><td>");
        num(h, rows[i].w_max);
        raw(h, "</td><td class=\"t\">");
        esc(h, rows[i].note);
        raw(h, "</td></tr>\n");
    }
    raw(h, "</tbody></table></details></section>\n");
done:
    json_decref(root);
    free(rows);
    return rc;
}

/* ---- ULTR learning curves ----------------------------------------------------------- */

static series *find_series(series *s, size_t *n_s, const char *name, cw_err *err, int *rc)
{
    for (size_t i = 0; i < *n_s; i++) {
        if (strcmp(s[i].name, name) == 0) {
            return &s[i];
        }
    }
    if (*n_s == REPORT_MAX_SERIES) {
        *rc = cw_err_set(err, CW_ELIMIT, "more than %u learning curves", REPORT_MAX_SERIES);
        return NULL;
    }
    series *se = &s[(*n_s)++];
    copy_name(se->name, name);
    se->colour = (int)(*n_s - 1);
    return se;
}

/* bench/ultr_experiment's TSV (fold, eta, sessions, method, ndcg@1..10, note): nDCG@10
 * averaged over folds per (eta, method, sessions); lo/hi hold the fold minimum and maximum.
 * Rows with sessions = 0 (production ranker, supervised skyline) become dashed baselines.
 * keep_eta (NaN = all) drops the trained rows of other etas. */
static int parse_ultr_tsv(const report_source *src, double keep_eta, series *s, size_t *n_s,
                          size_t *counts, char *metric, size_t metric_bytes, cw_err *err)
{
    const char *name = src->name ? src->name : "ultr";
    const char *p = src->text, *end = src->text + src->len;
    long line_no = 0;
    int col_eta = -1, col_sessions = -1, col_method = -1, col_value = -1, n_cols = 0;
    char etas[8][32];
    size_t n_etas = 0;
    int rc = CW_OK;
    /* Two passes: the first collects the distinct eta values so a single-eta file keeps
     * plain method names. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && line_no == 0) { /* an empty file would draw an empty plot silently */
            return cw_err_set(err, CW_EPARSE,
                              "%s: empty, expected a header with columns sessions, method and "
                              "ndcg@10",
                              name);
        }
        if (pass == 1 && n_etas == 0 && isfinite(keep_eta)) {
            return cw_err_set(err, CW_EPARSE, "%s: no curve rows with eta %g", name, keep_eta);
        }
        p = src->text;
        line_no = 0;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            line_no++;
            char line[1024];
            if (len >= sizeof line) {
                return cw_err_set(err, CW_ELIMIT, "%s:%ld: line over %zu bytes", name, line_no,
                                  sizeof line - 1);
            }
            memcpy(line, p, len);
            line[len] = '\0';
            if (len && line[len - 1] == '\r') {
                line[len - 1] = '\0';
            }
            p += len + (nl ? 1 : 0);
            char *fields[16];
            int nf = 0;
            for (char *f = line; nf < 16;) {
                fields[nf++] = f;
                char *tab = strchr(f, '\t');
                if (!tab) {
                    break;
                }
                *tab = '\0';
                f = tab + 1;
            }
            if (line_no == 1) {
                for (int i = 0; i < nf; i++) {
                    if (strcmp(fields[i], "eta") == 0) {
                        col_eta = i;
                    } else if (strcmp(fields[i], "sessions") == 0) {
                        col_sessions = i;
                    } else if (strcmp(fields[i], "method") == 0) {
                        col_method = i;
                    } else if (strcmp(fields[i], "ndcg@10") == 0) {
                        col_value = i;
                    }
                }
                if (col_sessions < 0 || col_method < 0 || col_value < 0) {
                    return cw_err_set(err, CW_EPARSE,
                                      "%s:1: expected a header with columns sessions, method and "
                                      "ndcg@10",
                                      name);
                }
                n_cols = nf;
                continue;
            }
            if (fields[0][0] == '\0' && nf == 1) {
                continue;
            }
            if (nf < n_cols - 1) {
                return cw_err_set(err, CW_EPARSE, "%s:%ld: %d fields, expected %d", name, line_no,
                                  nf, n_cols);
            }
            const char *eta = col_eta >= 0 ? fields[col_eta] : "";
            char *e1, *e2;
            double sessions = strtod(fields[col_sessions], &e1);
            double v = strtod(fields[col_value], &e2);
            if (*e1 || *e2 || e1 == fields[col_sessions] || e2 == fields[col_value] ||
                !isfinite(sessions) || !isfinite(v)) {
                return cw_err_set(err, CW_EPARSE, "%s:%ld: sessions and ndcg@10 must be numbers",
                                  name, line_no);
            }
            if (sessions < 0) {
                return cw_err_set(err, CW_EPARSE, "%s:%ld: sessions must be >= 0, got %s", name,
                                  line_no, fields[col_sessions]);
            }
            bool baseline = sessions == 0;
            if (!baseline && isfinite(keep_eta) && strtod(eta, NULL) != keep_eta) {
                continue;
            }
            if (pass == 0) {
                if (baseline) {
                    continue;
                }
                bool seen = false;
                for (size_t i = 0; i < n_etas; i++) {
                    seen = seen || strcmp(etas[i], eta) == 0;
                }
                if (!seen && n_etas < 8) {
                    snprintf(etas[n_etas++], sizeof etas[0], "%s", eta);
                }
                continue;
            }
            char sname[REPORT_TEXT_BYTES];
            if (n_etas > 1 && !baseline) {
                snprintf(sname, sizeof sname, "%.80s (eta %s)", fields[col_method], eta);
            } else {
                snprintf(sname, sizeof sname, "%s", fields[col_method]);
            }
            series *se = find_series(s, n_s, sname, err, &rc);
            if (!se) {
                return rc;
            }
            se->dashed = baseline;
            size_t si = (size_t)(se - s), j = 0;
            while (j < se->n && se->x[j] != sessions) {
                j++;
            }
            if (j == se->n) {
                if (se->n == REPORT_MAX_POINTS) {
                    return cw_err_set(err, CW_ELIMIT, "%s:%ld: more than %u points for %s", name,
                                      line_no, REPORT_MAX_POINTS, sname);
                }
                se->n++;
                se->x[j] = sessions;
                se->y[j] = 0;
                se->lo[j] = INFINITY;
                se->hi[j] = -INFINITY;
                counts[si * REPORT_MAX_POINTS + j] = 0;
            }
            size_t *cnt = &counts[si * REPORT_MAX_POINTS + j];
            (*cnt)++;
            se->y[j] += (v - se->y[j]) / (double)*cnt; /* running mean over folds */
            se->lo[j] = fmin(se->lo[j], v);
            se->hi[j] = fmax(se->hi[j], v);
        }
    }
    snprintf(metric, metric_bytes, "nDCG@10");
    for (size_t i = 0; i < *n_s; i++) {
        for (size_t j = 0; j < s[i].n; j++) {
            if (counts[i * REPORT_MAX_POINTS + j] < 2) {
                s[i].lo[j] = s[i].hi[j] = NAN; /* one fold: no spread to show */
            }
        }
    }
    return CW_OK;
}

static int parse_ultr_json(const report_source *src, series *s, size_t *n_s, char *metric,
                           size_t metric_bytes, cw_err *err)
{
    const char *name = src->name ? src->name : "ultr";
    json_t *root = NULL;
    int rc = load_json(src, &root, err);
    if (rc != CW_OK) {
        return rc;
    }
    const json_t *curves = json_object_get(root, "curves");
    const char *m = "";
    if (!json_is_array(curves)) {
        rc = cw_err_set(err, CW_EPARSE, "%s: expected an object with array \"curves\"", name);
        goto done;
    }
    rc = get_str(root, "metric", "nDCG@10", &m, name, "root", err);
    if (rc != CW_OK) {
        goto done;
    }
    snprintf(metric, metric_bytes, "%s", m);
    for (size_t c = 0; c < json_array_size(curves); c++) {
        const json_t *cu = json_array_get(curves, c);
        char where[48];
        snprintf(where, sizeof where, "curves[%zu]", c);
        const json_t *pts = json_object_get(cu, "points");
        const char *method = "";
        if (!json_is_object(cu) || !json_is_array(pts)) {
            rc = cw_err_set(err, CW_EPARSE, "%s: %s: expected an object with array \"points\"",
                            name, where);
            goto done;
        }
        rc = get_str(cu, "method", NULL, &method, name, where, err);
        if (rc != CW_OK) {
            goto done;
        }
        if (*n_s == REPORT_MAX_SERIES) {
            rc = cw_err_set(err, CW_ELIMIT, "%s: more than %u curves", name, REPORT_MAX_SERIES);
            goto done;
        }
        if (json_array_size(pts) > REPORT_MAX_POINTS) {
            rc = cw_err_set(err, CW_ELIMIT, "%s: %s: %zu points (limit %u)", name, where,
                            json_array_size(pts), REPORT_MAX_POINTS);
            goto done;
        }
        series *se = &s[(*n_s)++];
        copy_name(se->name, method);
        se->colour = (int)c;
        for (size_t j = 0; j < json_array_size(pts); j++) {
            const json_t *pt = json_array_get(pts, j);
            char w2[80];
            snprintf(w2, sizeof w2, "%s.points[%zu]", where, j);
            if (!json_is_object(pt)) {
                rc = cw_err_set(err, CW_EPARSE, "%s: %s: expected an object", name, w2);
                goto done;
            }
            rc = get_num(pt, "sessions", true, &se->x[j], name, w2, err);
            rc = rc ? rc : get_num(pt, "value", true, &se->y[j], name, w2, err);
            rc = rc ? rc : get_num(pt, "ci_lo", false, &se->lo[j], name, w2, err);
            rc = rc ? rc : get_num(pt, "ci_hi", false, &se->hi[j], name, w2, err);
            if (rc != CW_OK) {
                goto done;
            }
            if (!(se->x[j] > 0)) {
                rc = cw_err_set(err, CW_EPARSE, "%s: %s.sessions: expected a positive number", name,
                                w2);
                goto done;
            }
        }
        se->n = json_array_size(pts);
    }
done:
    json_decref(root);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int render_ultr(html *h, const report_input *in, cw_err *err)
{
    section_open(h, "ultr", "Unbiased learning to rank: learning curves");
    if (!in->ultr.text) {
        raw(h, "<p class=\"note\">No learning curves given: add <code>--ultr FILE</code> "
               "(JSON curves or the TSV of <code>bench/ultr_experiment</code>).</p></section>\n");
        return CW_OK;
    }
    series *s = calloc(REPORT_MAX_SERIES, sizeof *s);
    size_t *counts = calloc((size_t)REPORT_MAX_SERIES * REPORT_MAX_POINTS, sizeof *counts);
    if (!s || !counts) {
        free(s);
        free(counts);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    size_t n_s = 0;
    char metric[96];
    bool is_tsv = false;
    const char *t = in->ultr.text;
    size_t i0 = 0;
    while (i0 < in->ultr.len && (t[i0] == ' ' || t[i0] == '\n' || t[i0] == '\t' || t[i0] == '\r')) {
        i0++;
    }
    int rc;
    if (in->ultr.len > REPORT_MAX_INPUT_BYTES) {
        rc = cw_err_set(err, CW_ELIMIT, "%s: %zu bytes (limit %zu)",
                        in->ultr.name ? in->ultr.name : "ultr", in->ultr.len,
                        REPORT_MAX_INPUT_BYTES);
    } else if (i0 < in->ultr.len && (t[i0] == '{' || t[i0] == '[')) {
        rc = parse_ultr_json(&in->ultr, s, &n_s, metric, sizeof metric, err);
    } else {
        is_tsv = true;
        rc = parse_ultr_tsv(&in->ultr, in->ultr_eta, s, &n_s, counts, metric, sizeof metric, err);
    }
    if (rc != CW_OK) {
        goto done;
    }
    /* Points in order of sessions so lines and bands run left to right. */
    for (size_t i = 0; i < n_s; i++) {
        double tmp[REPORT_MAX_POINTS][4];
        for (size_t j = 0; j < s[i].n; j++) {
            tmp[j][0] = s[i].x[j];
            tmp[j][1] = s[i].y[j];
            tmp[j][2] = s[i].lo[j];
            tmp[j][3] = s[i].hi[j];
        }
        qsort(tmp, s[i].n, sizeof tmp[0], cmp_double);
        for (size_t j = 0; j < s[i].n; j++) {
            s[i].x[j] = tmp[j][0];
            s[i].y[j] = tmp[j][1];
            s[i].lo[j] = tmp[j][2];
            s[i].hi[j] = tmp[j][3];
        }
    }
    double xmin = INFINITY, xmax = 0;
    for (size_t i = 0; i < n_s; i++) {
        for (size_t j = 0; j < s[i].n; j++) {
            if (s[i].x[j] > 0) {
                xmin = fmin(xmin, s[i].x[j]);
                xmax = fmax(xmax, s[i].x[j]);
            }
        }
    }
    /* A baseline (sessions = 0: trained without clicks) is a level line across the range. */
    for (size_t i = 0; i < n_s && isfinite(xmin); i++) {
        if (s[i].n == 1 && s[i].x[0] <= 0) {
            s[i].dashed = true;
            s[i].n = 2;
            s[i].x[0] = xmin;
            s[i].x[1] = xmax;
            s[i].y[1] = s[i].y[0];
            s[i].lo[0] = s[i].hi[0] = s[i].lo[1] = s[i].hi[1] = NAN;
        }
    }
    raw(h, "<p>Test ");
    esc(h, metric);
    raw(h, " of rankers trained on more and more simulated click sessions, per method");
    if (is_tsv) {
        raw(h, " (mean over folds; bands: fold minimum to maximum; dashed: trained without "
               "clicks)");
    }
    raw(h, ".</p>\n");
    line_chart(h, "plot-ultr", "Learning curves", "sessions", metric, s, n_s, false,
               isfinite(xmin) && xmax / xmin >= 20, false);
    raw(h, "<details><summary>Numbers</summary><table class=\"num\" id=\"table-ultr\"><thead>"
           "<tr><th>method</th><th>sessions</th><th>value</th><th>interval</th></tr></thead>"
           "<tbody>\n");
    for (size_t i = 0; i < n_s; i++) {
        for (size_t j = 0; j < s[i].n; j++) {
            raw(h, "<tr><td class=\"t\">");
            esc(h, s[i].name);
            put(h, "</td><td>%.0f</td><td>", s[i].x[j]);
            num(h, s[i].y[j]);
            raw(h, "</td><td>");
            if (isfinite(s[i].lo[j])) {
                put(h, "[%.4g, %.4g]", s[i].lo[j], s[i].hi[j]);
            }
            raw(h, "</td></tr>\n");
        }
    }
    raw(h, "</tbody></table></details></section>\n");
done:
    free(s);
    free(counts);
    return rc;
}

static void render_clicks(html *h, const report_log_stats *L)
{
    section_open(h, "clicks", "Latest clicks");
    if (L->n_recent == 0) {
        raw(h, "<p class=\"note\">No clicks logged yet.</p></section>\n");
        return;
    }
    raw(h, "<table id=\"recent-clicks\"><thead><tr><th>time (UTC)</th><th>impression</th>"
           "<th>query</th><th>position</th><th>document</th><th>policy</th></tr></thead>"
           "<tbody>\n");
    for (size_t i = 0; i < L->n_recent; i++) {
        const report_click *c = &L->recent[i];
        char when[48];
        date_utc(when, sizeof when, c->ts_ms);
        put(h,
            "<tr data-impression=\"%llu\" data-position=\"%u\"><td>%.19s</td><td>%llu</td>"
            "<td class=\"t\">",
            (unsigned long long)c->impression_id, c->position, when,
            (unsigned long long)c->impression_id);
        esc(h, c->query);
        put(h, "</td><td>%u</td><td class=\"t\">", c->position);
        esc(h, c->doc_id);
        raw(h, "</td><td class=\"t\">");
        esc(h, c->policy);
        raw(h, "</td></tr>\n");
    }
    raw(h, "</tbody></table></section>\n");
}

static const char css[] =
    ":root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}"
    "header,main,footer{max-width:980px;margin:0 auto;padding:0 16px}"
    "header{padding-top:20px}h1{font-size:1.6rem;margin:0 0 4px}"
    "h2{font-size:1.15rem;margin:0 0 8px}"
    ".meta,.note,footer{color:var(--muted)}"
    "a{color:#0969da}a:focus-visible,summary:focus-visible{outline:3px solid #0969da;"
    "outline-offset:2px}"
    "section{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:16px 20px;margin:16px 0}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0;margin:12px 0}"
    ".cards li{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:10px 16px;min-width:140px}"
    ".cards b{display:block;font-size:1.4rem;font-variant-numeric:tabular-nums}"
    "figure{margin:8px 0}svg{width:100%;height:auto;font:12px system-ui,'DejaVu Sans',"
    "sans-serif}"
    ".grid{stroke:#e6eaef}.axis{stroke:#8c959f}.tick{fill:var(--muted)}"
    ".label{fill:var(--fg)}.rowlabel{fill:var(--fg)}.invalid{fill:#cf222e}"
    ".line{fill:none;stroke-width:2.2}.band{fill-opacity:.16;stroke:none}"
    ".whisker{stroke-width:2}.truth{fill:#000}.legend text{fill:var(--fg)}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:8px 0}"
    "th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:right}"
    "th{font-weight:600}td.t{text-align:left;max-width:320px;overflow-wrap:anywhere}"
    "#recent-clicks th{text-align:left}#recent-clicks td{text-align:left}"
    "summary{cursor:pointer;color:var(--muted)}code{font-size:.9em}"
    "footer{padding:8px 16px 32px}";

int report_render(const report_input *in, cw_buf *out, cw_err *err)
{
    html h = {.b = out, .rc = CW_OK};
    const char *title = in->title ? in->title : "causeway report";
    raw(&h, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\"><title>");
    esc(&h, title);
    put(&h, "</title><style>%s</style></head>\n<body><header><h1>", css);
    esc(&h, title);
    raw(&h, "</h1><p class=\"meta\">");
    if (in->db_label) {
        raw(&h, "log <code>");
        esc(&h, in->db_label);
        raw(&h, "</code>");
    }
    if (in->generated_ms) {
        char when[48];
        date_utc(when, sizeof when, in->generated_ms);
        put(&h, "%sgenerated %s", in->db_label ? " &#183; " : "", when);
    }
    if (in->live) {
        raw(&h, " &#183; <a href=\"/report\">reload</a> &#183; <a href=\"/\">search page</a>");
    }
    raw(&h, "</p></header>\n<main>\n");
    const report_log_stats *L = in->log;
    if (L) {
        double ctr = L->n_items ? (double)L->n_clicks / (double)L->n_items : NAN;
        put(&h,
            "<ul class=\"cards\" id=\"summary\"><li>impressions<b id=\"n-impressions\">%llu</b>"
            "</li><li>results shown<b>%llu</b></li><li>events<b id=\"n-events\">%llu</b></li>"
            "<li>clicks<b id=\"n-clicks\">%llu</b></li><li>clicks per shown result<b>",
            (unsigned long long)L->n_impressions, (unsigned long long)L->n_items,
            (unsigned long long)L->n_events, (unsigned long long)L->n_clicks);
        num(&h, ctr);
        raw(&h, "</b></li></ul>\n");
    }
    /* Live (GET /report): the clicks just made come first; sections that need offline
     * inputs are left out rather than suggesting options a browser cannot pass. */
    if (L && in->live) {
        render_clicks(&h, L);
    }
    int rc = render_propensity(&h, in, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (L) {
        render_ctr(&h, L);
    }
    rc = in->live && !in->ope.text ? CW_OK : render_ope(&h, in, err);
    if (rc != CW_OK) {
        return rc;
    }
    rc = in->live && !in->ultr.text ? CW_OK : render_ultr(&h, in, err);
    if (rc != CW_OK) {
        return rc;
    }
    if (L && !in->live) {
        render_clicks(&h, L);
    }
    put(&h, "</main><footer>causeway %s</footer></body></html>\n", PACKAGE_VERSION);
    if (h.rc != CW_OK) {
        return cw_err_set(err, CW_ENOMEM, "out of memory rendering the report");
    }
    return CW_OK;
}
