/* report/logstats.c: summarises a click log for the report (counts, shown and clicked items
 * per position, the latest clicks with their queries) through causal/'s read-only reader;
 * one pass over events, one over impressions. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "causal/causal.h"
#include "report/report.h"

/* Copies s into dst (REPORT_TEXT_BYTES), cutting at a UTF-8 character boundary. */
static void copy_cut(char *dst, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= REPORT_TEXT_BYTES) {
        n = REPORT_TEXT_BYTES - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--; /* s[n] is a continuation byte: the character starting before it is cut */
        }
    }
    if (n) {
        memcpy(dst, s, n);
    }
    dst[n] = '\0';
}

void report_wilson(uint64_t k, uint64_t n, double z, double *lo, double *hi)
{
    if (n == 0) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    /* Wilson (1927): centre (p + z^2/2n) / (1 + z^2/n), half-width
     * z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2). Unlike the Wald interval it stays inside
     * [0, 1] and is not degenerate at p = 0, which deep positions with no clicks need. */
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double denom = 1.0 + z2 / nn;
    double centre = (p + z2 / (2.0 * nn)) / denom;
    double half = z / denom * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
    *lo = fmax(0.0, centre - half);
    *hi = fmin(1.0, centre + half);
}

static int cmp_click_id(const void *a, const void *b)
{
    const report_click *x = *(const report_click *const *)a, *y = *(const report_click *const *)b;
    return x->impression_id < y->impression_id ? -1 : x->impression_id > y->impression_id;
}

int report_log_stats_read(const char *db_path, uint32_t max_rank, size_t n_recent,
                          report_log_stats *out, cw_err *err)
{
    memset(out, 0, sizeof *out);
    max_rank = CW_MAX(1u, CW_MIN(max_rank, REPORT_MAX_RANK));
    n_recent = CW_MIN(n_recent, (size_t)REPORT_MAX_RECENT);
    causal_log_opts lo = causal_log_opts_default();
    lo.read_only = true;
    causal_log *log = NULL;
    causal_event_reader *er = NULL;
    causal_log_reader *lr = NULL;
    report_click **by_id = NULL;
    report_click *ring = out->recent;
    int rc = causal_log_open(db_path, &lo, &log, err);
    if (rc != CW_OK) {
        return rc;
    }
    rc = causal_event_reader_new(log, &er, err);
    if (rc != CW_OK) {
        goto fail;
    }
    /* Events come in insertion order: a ring keeps the last n_recent clicks. */
    size_t head = 0, count = 0;
    const causal_event *ev;
    int more;
    while ((more = causal_event_reader_next(er, &ev, err)) == 1) {
        out->n_events++;
        if (ev->type != CAUSAL_EVENT_CLICK) {
            continue;
        }
        out->n_clicks++;
        if (n_recent == 0) {
            continue;
        }
        report_click *c = &ring[(head + count) % n_recent];
        if (count == n_recent) {
            head = (head + 1) % n_recent;
        } else {
            count++;
        }
        memset(c, 0, sizeof *c);
        c->impression_id = ev->impression_id;
        c->ts_ms = ev->ts_ms;
        c->position = ev->position;
        copy_cut(c->doc_id, ev->doc_id);
    }
    if (more < 0) {
        rc = more;
        goto fail;
    }
    causal_event_reader_free(er);
    er = NULL;
    /* Newest first: rotate the ring into a reversed copy. */
    report_click tmp[REPORT_MAX_RECENT];
    for (size_t i = 0; i < count; i++) {
        tmp[i] = ring[(head + count - 1 - i) % n_recent];
    }
    if (count) {
        memcpy(ring, tmp, count * sizeof *tmp);
    }
    out->n_recent = count;
    by_id = malloc((count ? count : 1) * sizeof *by_id);
    if (!by_id) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        by_id[i] = &ring[i];
    }
    qsort(by_id, count, sizeof *by_id, cmp_click_id);

    causal_log_filter f = causal_log_filter_all();
    rc = causal_log_reader_new(log, &f, &lr, err);
    if (rc != CW_OK) {
        goto fail;
    }
    const causal_impression *imp;
    while ((more = causal_log_reader_next(lr, &imp, err)) == 1) {
        out->n_impressions++;
        out->n_items += imp->n_items;
        for (size_t j = 0; j < imp->n_items; j++) {
            uint32_t pos = imp->items[j].position;
            if (pos >= 1 && pos <= max_rank) {
                out->shown[pos - 1]++;
                out->clicked[pos - 1] += imp->items[j].n_clicks > 0;
                out->n_ranks = CW_MAX(out->n_ranks, pos);
            }
        }
        /* Several recent clicks may share the impression: find the first with this id. */
        size_t a = 0, b = count;
        while (a < b) {
            size_t m = a + (b - a) / 2;
            if (by_id[m]->impression_id < imp->id) {
                a = m + 1;
            } else {
                b = m;
            }
        }
        for (; a < count && by_id[a]->impression_id == imp->id; a++) {
            copy_cut(by_id[a]->query, imp->query);
            copy_cut(by_id[a]->policy, imp->policy);
        }
    }
    if (more < 0) {
        rc = more;
        goto fail;
    }
    rc = CW_OK;
fail:
    free(by_id);
    causal_log_reader_free(lr);
    causal_event_reader_free(er);
    causal_log_close(log);
    return rc;
}

int report_fit_propensity(const char *db_path, const char *method, uint32_t max_rank,
                          uint32_t n_boot, uint64_t seed, cw_buf *out, cw_err *err)
{
    causal_prop_method m;
    int rc = causal_prop_method_parse(method, &m, err);
    if (rc != CW_OK) {
        return rc;
    }
    causal_prop_opts o = causal_prop_opts_default(m);
    o.max_rank = CW_MAX(2u, CW_MIN(max_rank, CW_MIN(REPORT_MAX_RANK, CAUSAL_MAX_RANK)));
    o.n_boot = n_boot;
    o.seed = seed;
    causal_sessions *s = NULL;
    causal_load_stats st;
    rc = causal_sessions_load_log(db_path, o.max_rank, &s, &st, err);
    if (rc != CW_OK) {
        return rc;
    }
    causal_propensity *p = malloc(sizeof *p);
    if (!p) {
        causal_sessions_free(s);
        return cw_err_set(err, CW_ENOMEM, "out of memory");
    }
    rc = causal_propensity_fit(s, &o, p, err);
    if (rc == CW_OK) {
        rc = causal_propensity_to_json(p, out, err);
    }
    free(p);
    causal_sessions_free(s);
    return rc;
}
