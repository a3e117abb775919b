// bench/xapian_bench.cc: the Xapian 1.4 baseline of bench/index_bench.sh, set up to match
// causeway's defaults as closely as Xapian allows:
// - one field, title + "\n" + text; Snowball "porter" stemmer, stemmed terms only
//   (STEM_ALL, no unstemmed copies); the same 33 English stopwords (STOP_ALL); no positions
//   (causeway stores none); document data = the JSONL line (causeway keeps id, title, text)
//   and a unique id term "Q<id>" (causeway has an id lookup).
// - BM25Weight(k1 = 0.9, k2 = 0, k3 = 1, b = 0.4, min_normlen = 0.5). Xapian's BM25 differs
//   from Lucene's in its idf (log((N - n + 0.5) / (n + 0.5)), can be negative, Xapian clamps)
//   and the (k1 + 1) factor, and min_normlen floors short document lengths; rankings are
//   close, figures are not meant to be equal.
// - Writes: DB_NO_SYNC (no fsync per flush), XAPIAN_FLUSH_THRESHOLD from the environment
//   (index_bench.sh sets it large), a single commit at the end.
// Build: g++ -O2 -o xapian_bench xapian_bench.cc $(pkg-config --cflags --libs xapian-core jansson)
#include <xapian.h>

#include <jansson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

static const char *const STOPWORDS[] = {
    "a",    "an",   "and",  "are",   "as",   "at",   "be",   "but",  "by",    "for", "if",
    "in",   "into", "is",   "it",    "no",   "not",  "of",   "on",   "or",    "such", "that",
    "the",  "their", "then", "there", "these", "they", "this", "to",  "was",  "will", "with"};

static double now_s()
{
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

static int cmd_index(const char *corpus, const char *db_path)
{
    Xapian::WritableDatabase db(db_path, Xapian::DB_CREATE_OR_OVERWRITE | Xapian::DB_NO_SYNC);
    Xapian::TermGenerator tg;
    Xapian::SimpleStopper stopper(std::begin(STOPWORDS), std::end(STOPWORDS));
    tg.set_stemmer(Xapian::Stem("porter"));
    tg.set_stemming_strategy(Xapian::TermGenerator::STEM_ALL);
    tg.set_stopper(&stopper);
    tg.set_stopper_strategy(Xapian::TermGenerator::STOP_ALL);
    std::ifstream in(corpus);
    if (!in) {
        std::cerr << "xapian_bench: cannot open " << corpus << "\n";
        return 1;
    }
    std::string line;
    unsigned long long n = 0, bytes = 0;
    double t0 = now_s();
    while (std::getline(in, line)) {
        bytes += line.size() + 1;
        json_error_t jerr;
        json_t *o = json_loadb(line.data(), line.size(), 0, &jerr);
        if (!o) {
            std::cerr << corpus << ":" << n + 1 << ": " << jerr.text << "\n";
            return 1;
        }
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *title = json_string_value(json_object_get(o, "title"));
        const char *text = json_string_value(json_object_get(o, "text"));
        std::string flat = std::string(title ? title : "") + "\n" + (text ? text : "");
        Xapian::Document doc;
        tg.set_document(doc);
        tg.index_text_without_positions(flat);
        doc.set_data(line);
        // add_document, not replace_document(idterm): Xapian's fastest path (no id lookup).
        doc.add_boolean_term(std::string("Q") + (id ? id : ""));
        db.add_document(doc);
        json_decref(o);
        n++;
    }
    db.commit();
    double secs = now_s() - t0;
    printf("docs %llu bytes %llu seconds %.2f docs_per_s %.0f mb_per_s %.2f\n", n, bytes, secs,
           n / secs, bytes / 1e6 / secs);
    return 0;
}

static int cmd_stats(const char *db_path)
{
    Xapian::Database db(db_path);
    unsigned long long postings = 0, terms = 0;
    for (Xapian::TermIterator t = db.allterms_begin(); t != db.allterms_end(); ++t) {
        if ((*t)[0] == 'Q') {
            continue; // id terms: causeway's id lookup is not counted as postings either
        }
        postings += t.get_termfreq();
        terms++;
    }
    printf("docs %u terms %llu postings %llu avglen %.2f\n", db.get_doccount(), terms, postings,
           db.get_avlength());
    return 0;
}

static int cmd_search(const char *db_path, const char *queries, unsigned k, unsigned passes)
{
    Xapian::Database db(db_path);
    Xapian::SimpleStopper stopper(std::begin(STOPWORDS), std::end(STOPWORDS));
    Xapian::QueryParser qp;
    qp.set_database(db);
    qp.set_stemmer(Xapian::Stem("porter"));
    qp.set_stemming_strategy(Xapian::QueryParser::STEM_ALL);
    qp.set_stopper(&stopper);
    qp.set_default_op(Xapian::Query::OP_OR);
    std::vector<std::string> qs, qids;
    std::ifstream in(queries);
    std::string line;
    while (std::getline(in, line)) {
        size_t tab = line.find('\t');
        qs.push_back(tab == std::string::npos ? line : line.substr(tab + 1));
        qids.push_back(tab == std::string::npos ? std::to_string(qs.size()) : line.substr(0, tab));
    }
    if (qs.empty()) {
        std::cerr << "xapian_bench: no queries in " << queries << "\n";
        return 1;
    }
    Xapian::Enquire enq(db);
    enq.set_weighting_scheme(Xapian::BM25Weight(0.9, 0, 1, 0.4, 0.5));
    if (passes == 0) { // TREC run of every query (a sanity check of the settings)
        for (size_t i = 0; i < qs.size(); i++) {
            enq.set_query(qp.parse_query(qs[i], 0));
            Xapian::MSet m = enq.get_mset(0, k);
            unsigned r = 1;
            for (Xapian::MSetIterator it = m.begin(); it != m.end(); ++it, ++r) {
                json_t *o = json_loads(it.get_document().get_data().c_str(), 0, nullptr);
                printf("%s Q0 %s %u %.6f xapian\n", qids[i].c_str(),
                       json_string_value(json_object_get(o, "id")), r, it.get_weight());
                json_decref(o);
            }
        }
        return 0;
    }
    auto one = [&](const std::string &q) {
        // Plain words only: no boolean operators or wildcards, like causeway's parser.
        Xapian::Query query = qp.parse_query(q, 0);
        enq.set_query(query);
        Xapian::MSet m = enq.get_mset(0, k);
        size_t n = 0;
        for (Xapian::MSetIterator it = m.begin(); it != m.end(); ++it) {
            n += *it != 0;
        }
        return n;
    };
    for (const auto &q : qs) {
        one(q); // warm-up
    }
    std::vector<double> lat;
    unsigned long long hits = 0;
    double t_all = now_s();
    for (unsigned p = 0; p < passes; p++) {
        for (const auto &q : qs) {
            double t0 = now_s();
            hits += one(q);
            lat.push_back((now_s() - t0) * 1e6);
        }
    }
    double secs = now_s() - t_all;
    std::vector<double> s = lat;
    std::sort(s.begin(), s.end());
    auto quant = [&](double p) {
        double pos = p * (s.size() - 1);
        size_t lo = (size_t)pos;
        size_t hi = std::min(lo + 1, s.size() - 1);
        return s[lo] + (s[hi] - s[lo]) * (pos - lo);
    };
    double sum = 0;
    for (double v : lat) {
        sum += v;
    }
    printf("queries %zu k %u p50_us %.1f p99_us %.1f mean_us %.1f qps %.1f mean_hits %.1f\n",
           qs.size(), k, quant(0.5), quant(0.99), sum / lat.size(), lat.size() / secs,
           (double)hits / lat.size());
    return 0;
}

int main(int argc, char **argv)
{
    try {
        if (argc == 4 && std::string(argv[1]) == "index") {
            return cmd_index(argv[2], argv[3]);
        }
        if (argc == 3 && std::string(argv[1]) == "stats") {
            return cmd_stats(argv[2]);
        }
        if (argc == 6 && std::string(argv[1]) == "search") {
            return cmd_search(argv[2], argv[3], (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]));
        }
    } catch (const Xapian::Error &e) {
        std::cerr << "xapian_bench: " << e.get_description() << "\n";
        return 1;
    }
    std::cerr << "usage: xapian_bench index CORPUS.jsonl DB | stats DB |"
                 " search DB QUERIES.tsv K PASSES (0: print a TREC run)\n";
    return 2;
}
