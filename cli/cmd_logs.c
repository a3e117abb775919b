/* cli/cmd_logs.c: `causeway logs export|import|stats`: the impression/event log
 * (causal/ log store) as JSONL, one object per line (format in docs/logs.md). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "causal/causal.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: causeway logs export --db FILE [--out FILE.jsonl] [--policy NAME]\n"
               "                           [--from MS] [--to MS]\n"
               "       causeway logs import --db FILE FILE.jsonl\n"
               "       causeway logs stats --db FILE\n\n"
               "export  writes every impression (with its items, propensities and feature\n"
               "        vectors), then every event, one JSON object per line (docs/logs.md);\n"
               "        --policy/--from/--to select impressions (events are all exported)\n"
               "import  appends such a file in one transaction; the first bad line stops it\n"
               "        with FILE:LINE: reason and nothing of the file is written\n"
               "stats   prints the row counts\n");
    fprintf(f, "\nExit codes: 0 success, 1 failure (the message names the file and line or\n"
               "byte offset at fault), 2 usage error.\n");
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *impression_json(const causal_impression *imp)
{
    json_t *o = json_object();
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, imp->seed);
    json_object_set_new(o, "kind", json_string("impression"));
    json_object_set_new(o, "id", json_integer((json_int_t)imp->id));
    json_object_set_new(o, "ts_ms", json_integer(imp->ts_ms));
    json_object_set_new(o, "query", json_string(imp->query));
    json_object_set_new(o, "qid", imp->qid ? json_string(imp->qid) : json_null());
    json_object_set_new(o, "policy", json_string(imp->policy));
    json_object_set_new(o, "model_version",
                        imp->model_version ? json_string(imp->model_version) : json_null());
    json_object_set_new(o, "index_version",
                        imp->index_version ? json_string(imp->index_version) : json_null());
    json_object_set_new(o, "log_prob", num_or_null(imp->log_prob));
    json_object_set_new(o, "mc_samples", json_integer(imp->mc_samples));
    json_object_set_new(o, "temperature", num_or_null(imp->temperature));
    json_object_set_new(o, "seed", imp->has_seed ? json_string(seed) : json_null());
    json_object_set_new(o, "feature_set",
                        imp->feature_set ? json_string(imp->feature_set) : json_null());
    json_t *names = json_array();
    for (uint32_t f = 0; imp->feature_set && f < imp->n_features; f++) {
        json_array_append_new(names, json_string(imp->feature_names[f]));
    }
    json_object_set_new(o, "feature_names", names);
    json_t *items = json_array();
    for (size_t j = 0; j < imp->n_items; j++) {
        const causal_item *it = &imp->items[j];
        json_t *io = json_object();
        json_object_set_new(io, "doc_id", json_string(it->doc_id));
        json_object_set_new(io, "position", json_integer(it->position));
        json_object_set_new(io, "score", num_or_null(it->score));
        json_object_set_new(io, "propensity", num_or_null(it->propensity));
        json_t *fv = json_null();
        if (it->features) {
            fv = json_array();
            for (uint32_t f = 0; f < imp->n_features; f++) {
                json_array_append_new(fv, json_real(it->features[f]));
            }
        }
        json_object_set_new(io, "features", fv);
        json_object_set_new(io, "clicks", json_integer(it->n_clicks));
        json_array_append_new(items, io);
    }
    json_object_set_new(o, "items", items);
    return o;
}

static json_t *event_json(const causal_event *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string("event"));
    json_object_set_new(o, "impression_id", json_integer((json_int_t)e->impression_id));
    json_object_set_new(o, "doc_id", json_string(e->doc_id));
    json_object_set_new(o, "position", json_integer(e->position));
    json_object_set_new(o, "type", json_string(causal_event_type_name(e->type)));
    json_object_set_new(o, "ts_ms", json_integer(e->ts_ms));
    json_object_set_new(o, "value_ms", e->value_ms >= 0 ? json_integer(e->value_ms) : json_null());
    json_object_set_new(o, "client_id", e->client_id ? json_string(e->client_id) : json_null());
    return o;
}

static int put_line(FILE *out, json_t *o, cw_err *err)
{
    int rc =
        json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(9)) == 0 && fputc('\n', out) != EOF
            ? CW_OK
            : cw_err_set(err, CW_EIO, "writing the export failed");
    json_decref(o);
    return rc;
}

static int do_export(const char *db, const char *out_path, const causal_log_filter *filter,
                     cw_err *err)
{
    causal_log_opts opts = causal_log_opts_default();
    opts.read_only = true;
    causal_log *log = NULL;
    int rc = causal_log_open(db, &opts, &log, err);
    if (rc != CW_OK) {
        return rc;
    }
    /* --out is written to OUT.tmp.PID and renamed at the end, so a failed or interrupted
     * export never leaves a truncated file under the name a user would take as complete. */
    char tmp_path[4096];
    if (out_path && (size_t)snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%ld", out_path,
                                     (long)getpid()) >= sizeof tmp_path) {
        causal_log_close(log);
        return cw_err_set(err, CW_ELIMIT, "%s: path too long", out_path);
    }
    FILE *out = out_path ? fopen(tmp_path, "w") : stdout;
    if (!out) {
        int e = errno; /* causal_log_close may change errno */
        causal_log_close(log);
        return cw_err_set(err, CW_EIO, "%s: %s", out_path, strerror(e));
    }
    causal_log_reader *r = NULL;
    rc = causal_log_reader_new(log, filter, &r, err);
    const causal_impression *imp;
    int s = 0;
    while (rc == CW_OK && (s = causal_log_reader_next(r, &imp, err)) == 1) {
        rc = put_line(out, impression_json(imp), err);
        if (rc == CW_OK && cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted");
        }
    }
    if (rc == CW_OK && s < 0) {
        rc = s;
    }
    causal_log_reader_free(r);
    causal_event_reader *er = NULL;
    if (rc == CW_OK) {
        rc = causal_event_reader_new(log, &er, err);
    }
    const causal_event *e;
    while (rc == CW_OK && (s = causal_event_reader_next(er, &e, err)) == 1) {
        rc = put_line(out, event_json(e), err);
        if (rc == CW_OK && cw_interrupted()) {
            rc = cw_err_set(err, CW_EINTR, "interrupted");
        }
    }
    if (rc == CW_OK && s < 0) {
        rc = s;
    }
    causal_event_reader_free(er);
    if (out != stdout && fclose(out) != 0 && rc == CW_OK) {
        rc = cw_err_set(err, CW_EIO, "%s: %s", out_path, strerror(errno));
    } else if (out == stdout && fflush(stdout) != 0 && rc == CW_OK) {
        rc = cw_err_set(err, CW_EIO, "writing stdout: %s", strerror(errno));
    }
    if (out != stdout && rc == CW_OK && rename(tmp_path, out_path) != 0) {
        rc = cw_err_set(err, CW_EIO, "%s: rename: %s", out_path, strerror(errno));
    }
    if (out != stdout && rc != CW_OK) {
        unlink(tmp_path);
    }
    causal_log_close(log);
    return rc;
}

/* ---- import ---------------------------------------------------------------- */

static int want_str(json_t *o, const char *key, bool nullable, const char **out, char *why,
                    size_t n)
{
    json_t *v = json_object_get(o, key);
    if ((!v || json_is_null(v)) && nullable) {
        *out = NULL;
        return CW_OK;
    }
    if (!json_is_string(v)) {
        snprintf(why, n, "\"%s\" must be a string%s", key, nullable ? " or null" : "");
        return CW_EPARSE;
    }
    *out = json_string_value(v);
    return CW_OK;
}

static int want_num(json_t *o, const char *key, double *out, char *why, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = NAN;
        return CW_OK;
    }
    if (!json_is_number(v)) {
        snprintf(why, n, "\"%s\" must be a number or null", key);
        return CW_EPARSE;
    }
    *out = json_number_value(v);
    return CW_OK;
}

static int want_int(json_t *o, const char *key, bool required, int64_t lo, int64_t *out, char *why,
                    size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) {
            snprintf(why, n, "\"%s\" is missing", key);
            return CW_EPARSE;
        }
        return CW_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo) {
        snprintf(why, n, "\"%s\" must be an integer >= %lld", key, (long long)lo);
        return CW_EPARSE;
    }
    *out = json_integer_value(v);
    return CW_OK;
}

typedef struct import_buf {
    causal_item *items;
    float *feat;
    const char **names;
} import_buf;

static int import_impression(causal_log *log, json_t *o, import_buf *b, char *why, size_t n,
                             cw_err *err)
{
    causal_impression imp = {0};
    int64_t id = 0, ts = 0, mc = 0;
    int rc = want_int(o, "id", true, 1, &id, why, n);
    rc = rc ? rc : want_int(o, "ts_ms", true, INT64_MIN, &ts, why, n);
    rc = rc ? rc : want_int(o, "mc_samples", false, 0, &mc, why, n);
    rc = rc ? rc : want_str(o, "query", false, &imp.query, why, n);
    rc = rc ? rc : want_str(o, "qid", true, &imp.qid, why, n);
    rc = rc ? rc : want_str(o, "policy", false, &imp.policy, why, n);
    rc = rc ? rc : want_str(o, "model_version", true, &imp.model_version, why, n);
    rc = rc ? rc : want_str(o, "index_version", true, &imp.index_version, why, n);
    rc = rc ? rc : want_str(o, "feature_set", true, &imp.feature_set, why, n);
    rc = rc ? rc : want_num(o, "log_prob", &imp.log_prob, why, n);
    rc = rc ? rc : want_num(o, "temperature", &imp.temperature, why, n);
    if (rc != CW_OK) {
        return rc;
    }
    /* A policy name the session loader cannot read would make the whole log unloadable
     * for every fit later: refuse it here, at its line. */
    causal_policy_name_info pn;
    char key[CAUSAL_RANKER_KEY_BYTES];
    cw_err e2 = {0};
    if (causal_policy_name_ranker(imp.policy, imp.model_version, &pn, key, sizeof key, &e2) !=
        CW_OK) {
        snprintf(why, n, "\"policy\": %s", e2.msg);
        return CW_EPARSE;
    }
    imp.id = (uint64_t)id;
    imp.ts_ms = ts;
    imp.mc_samples = (uint32_t)CW_MIN(mc, (int64_t)UINT32_MAX);
    json_t *seed = json_object_get(o, "seed");
    if (json_is_string(seed)) {
        char *end = NULL;
        errno = 0;
        imp.seed = strtoull(json_string_value(seed), &end, 10);
        if (errno || *end || !*json_string_value(seed)) {
            snprintf(why, n, "\"seed\" must be a decimal string");
            return CW_EPARSE;
        }
        imp.has_seed = true;
    } else if (json_is_integer(seed)) {
        imp.seed = (uint64_t)json_integer_value(seed);
        imp.has_seed = true;
    } else if (seed && !json_is_null(seed)) {
        snprintf(why, n, "\"seed\" must be a decimal string, an integer or null");
        return CW_EPARSE;
    }
    json_t *names = json_object_get(o, "feature_names");
    size_t nf = json_is_array(names) ? json_array_size(names) : 0;
    if (imp.feature_set) {
        if (nf == 0 || nf > CAUSAL_MAX_FEATURES) {
            snprintf(why, n, "\"feature_names\" must list 1..%u names", CAUSAL_MAX_FEATURES);
            return CW_EPARSE;
        }
        for (size_t f = 0; f < nf; f++) {
            b->names[f] = json_string_value(json_array_get(names, f));
            if (!b->names[f]) {
                snprintf(why, n, "feature_names[%zu] must be a string", f);
                return CW_EPARSE;
            }
        }
        imp.feature_names = b->names;
        imp.n_features = (uint32_t)nf;
    }
    json_t *items = json_object_get(o, "items");
    if (!json_is_array(items) || json_array_size(items) > CAUSAL_MAX_ITEMS) {
        snprintf(why, n, "\"items\" must be an array of at most %u items", CAUSAL_MAX_ITEMS);
        return CW_EPARSE;
    }
    imp.n_items = json_array_size(items);
    for (size_t j = 0; j < imp.n_items; j++) {
        json_t *it = json_array_get(items, j);
        causal_item *ci = &b->items[j];
        memset(ci, 0, sizeof *ci);
        int64_t pos = 0;
        if (!json_is_object(it)) {
            snprintf(why, n, "items[%zu] must be an object", j);
            return CW_EPARSE;
        }
        rc = want_str(it, "doc_id", false, &ci->doc_id, why, n);
        rc = rc ? rc : want_int(it, "position", true, 1, &pos, why, n);
        rc = rc ? rc : want_num(it, "score", &ci->score, why, n);
        rc = rc ? rc : want_num(it, "propensity", &ci->propensity, why, n);
        if (rc != CW_OK) {
            return rc;
        }
        ci->position = (uint32_t)CW_MIN(pos, (int64_t)UINT32_MAX);
        json_t *fv = json_object_get(it, "features");
        if (fv && !json_is_null(fv)) {
            if (!json_is_array(fv) || json_array_size(fv) != nf || !imp.feature_set) {
                snprintf(why, n, "items[%zu].features must hold %zu numbers", j, nf);
                return CW_EPARSE;
            }
            float *dst = &b->feat[j * CAUSAL_MAX_FEATURES];
            for (size_t f = 0; f < nf; f++) {
                json_t *x = json_array_get(fv, f);
                if (!json_is_number(x)) {
                    snprintf(why, n, "items[%zu].features[%zu] must be a number", j, f);
                    return CW_EPARSE;
                }
                dst[f] = (float)json_number_value(x);
            }
            ci->features = dst;
        }
    }
    imp.items = b->items;
    rc = causal_log_append_impressions(log, &imp, 1, err);
    if (rc == CW_EINVAL) {
        snprintf(why, n, "%s", err->msg);
    }
    return rc;
}

static int import_event(causal_log *log, json_t *o, char *why, size_t n, cw_err *err)
{
    causal_event e = {.value_ms = -1};
    int64_t imp = 0, pos = 0;
    const char *type = NULL;
    int rc = want_int(o, "impression_id", true, 1, &imp, why, n);
    rc = rc ? rc : want_int(o, "position", true, 1, &pos, why, n);
    rc = rc ? rc : want_int(o, "ts_ms", true, INT64_MIN, &e.ts_ms, why, n);
    rc = rc ? rc : want_int(o, "value_ms", false, 0, &e.value_ms, why, n);
    rc = rc ? rc : want_str(o, "doc_id", false, &e.doc_id, why, n);
    rc = rc ? rc : want_str(o, "type", false, &type, why, n);
    rc = rc ? rc : want_str(o, "client_id", true, &e.client_id, why, n);
    if (rc != CW_OK) {
        return rc;
    }
    cw_err terr;
    if (causal_event_type_parse(type, &e.type, &terr) != CW_OK) {
        snprintf(why, n, "%s", terr.msg);
        return CW_EPARSE;
    }
    e.impression_id = (uint64_t)imp;
    e.position = (uint32_t)CW_MIN(pos, (int64_t)UINT32_MAX);
    causal_event_reject rj;
    size_t n_rj = 0;
    rc = causal_log_append_events(log, &e, 1, &rj, &n_rj, NULL, err);
    if (rc == CW_EINVAL && n_rj > 0) {
        snprintf(why, n, "%s", rj.reason);
    }
    return rc;
}

static int do_import(const char *db, const char *path, uint64_t *n_imp, uint64_t *n_ev, cw_err *err)
{
    causal_log *log = NULL;
    int rc = causal_log_open(db, NULL, &log, err);
    if (rc != CW_OK) {
        return rc;
    }
    import_buf b = {malloc(CAUSAL_MAX_ITEMS * sizeof *b.items),
                    malloc((size_t)CAUSAL_MAX_ITEMS * CAUSAL_MAX_FEATURES * sizeof *b.feat),
                    malloc(CAUSAL_MAX_FEATURES * sizeof *b.names)};
    cw_lines *lr = NULL;
    if (!b.items || !b.feat || !b.names) {
        rc = cw_err_set(err, CW_ENOMEM, "out of memory");
        goto done;
    }
    rc = cw_lines_open(path, &lr, err);
    if (rc != CW_OK) {
        goto done;
    }
    rc = causal_log_begin(log, err);
    if (rc != CW_OK) {
        goto done;
    }
    const char *line;
    size_t len;
    long line_no = 0;
    int s;
    while (rc == CW_OK && (s = cw_lines_next(lr, &line, &len, &line_no, err)) == 1) {
        if (cw_interrupted()) { /* rolled back below: nothing of the file is written */
            rc = cw_err_set(err, CW_EINTR, "interrupted at %s:%ld", path, line_no);
            break;
        }
        if (len == 0) {
            continue;
        }
        json_error_t je;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            rc = cw_err_set(err, CW_EPARSE, "%s:%ld:%d: %s", path, line_no, je.column, je.text);
            break;
        }
        char why[CW_ERR_MSG_BYTES] = "";
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (!json_is_object(o) || !kind) {
            snprintf(why, sizeof why, "expected an object with \"kind\"");
            rc = CW_EPARSE;
        } else if (strcmp(kind, "impression") == 0) {
            rc = import_impression(log, o, &b, why, sizeof why, err);
            *n_imp += rc == CW_OK;
        } else if (strcmp(kind, "event") == 0) {
            rc = import_event(log, o, why, sizeof why, err);
            *n_ev += rc == CW_OK;
        } else {
            snprintf(why, sizeof why, "unknown kind \"%.64s\" (impression or event)", kind);
            rc = CW_EPARSE;
        }
        json_decref(o);
        if (rc != CW_OK && why[0]) {
            rc =
                cw_err_set(err, rc == CW_EPARSE ? CW_EPARSE : rc, "%s:%ld: %s", path, line_no, why);
        } else if (rc != CW_OK) {
            cw_err_prefix(err, "%s:%ld: ", path, line_no);
        }
    }
    if (rc == CW_OK && s < 0) {
        rc = s;
    }
    if (rc == CW_OK) {
        rc = causal_log_commit(log, err);
    } else {
        causal_log_rollback(log);
    }
done:
    cw_lines_close(lr);
    free(b.items);
    free(b.feat);
    free(b.names);
    causal_log_close(log);
    return rc;
}

int cli_cmd_logs(int argc, char **argv)
{
    const char *cmd = "logs";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2) {
        return cli_usage_error(cmd, "expected export, import or stats");
    }
    const char *sub = argv[1];
    const char *db = NULL, *out = NULL, *file = NULL, *export_only = NULL;
    causal_log_filter filter = causal_log_filter_all();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (a[0] != '-' && !file) {
            file = a;
            continue;
        }
        if (!v) {
            return cli_usage_error(cmd, "unknown option or missing value: '%s'", a);
        }
        i++;
        if (strcmp(a, "--db") != 0) {
            export_only = a; /* every other option selects or places the export */
        }
        if (strcmp(a, "--db") == 0) {
            db = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--policy") == 0) {
            filter.policy = v;
        } else if (strcmp(a, "--from") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, INT64_MAX, &n)) {
                return CLI_EXIT_USAGE;
            }
            filter.ts_from_ms = (int64_t)n;
        } else if (strcmp(a, "--to") == 0) {
            if (!cli_parse_u64(cmd, a, v, 0, INT64_MAX, &n)) {
                return CLI_EXIT_USAGE;
            }
            filter.ts_to_ms = (int64_t)n;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!db) {
        return cli_usage_error(cmd, "--db is required");
    }
    /* Options or files a subcommand does not use are errors, not silently ignored. */
    if (export_only && strcmp(sub, "export") != 0) {
        return cli_usage_error(cmd, "%s applies to export only", export_only);
    }
    if (file && strcmp(sub, "stats") == 0) {
        return cli_usage_error(cmd, "unexpected argument '%s'", file);
    }
    cw_err err;
    if (strcmp(sub, "export") == 0) {
        if (file) {
            return cli_usage_error(cmd, "unexpected argument '%s'", file);
        }
        return do_export(db, out, &filter, &err) == CW_OK ? CLI_EXIT_OK : cli_fail(cmd, &err);
    }
    if (strcmp(sub, "import") == 0) {
        if (!file) {
            return cli_usage_error(cmd, "import needs a JSONL file");
        }
        uint64_t n_imp = 0, n_ev = 0;
        if (do_import(db, file, &n_imp, &n_ev, &err) != CW_OK) {
            return cli_fail(cmd, &err);
        }
        fprintf(stderr, "imported %llu impressions and %llu events\n", (unsigned long long)n_imp,
                (unsigned long long)n_ev);
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "stats") == 0) {
        causal_log_opts o = causal_log_opts_default();
        o.read_only = true;
        causal_log *log = NULL;
        causal_log_counts c;
        if (causal_log_open(db, &o, &log, &err) != CW_OK ||
            causal_log_count(log, &c, &err) != CW_OK) {
            causal_log_close(log);
            return cli_fail(cmd, &err);
        }
        causal_log_close(log);
        printf("impressions %llu\nitems %llu\nevents %llu\n", (unsigned long long)c.n_impressions,
               (unsigned long long)c.n_items, (unsigned long long)c.n_events);
        return CLI_EXIT_OK;
    }
    return cli_usage_error(cmd, "unknown subcommand '%s' (export, import or stats)", sub);
}
