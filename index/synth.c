/* index/synth.c: the synthetic test collection (corpus.jsonl, queries.tsv, qrels.txt)
 * behind the demo, the 1M-document benchmarks and, in later issues, simulated users.
 * The generative model is documented in index/index.h ("synthetic corpus"). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/index.h"

/* Ranks below this are never topic words: the commonest words stay topic-neutral. */
#define SYN_NEUTRAL_RANKS 50u
/* Largest share of a document's topical tokens spent on an unrelated (distractor) topic. */
#define SYN_DISTRACT_MAX 0.4
/* Zipf exponent of the choice of topic words among background ranks. */
#define SYN_TOPIC_VOCAB_S 0.8
/* Probability that a query term after the first is a general word, not a topic word. */
#define SYN_QUERY_NOISE 0.25
#define SYN_FOCUS_MIN 0.15
#define SYN_FOCUS_MAX 0.55
#define SYN_TITLE_EXTRA_FOCUS 0.4
#define SYN_LEN_SIGMA 0.6
#define SYN_MAX_DOC_TOPICS 3 /* relevant topics; one distractor comes on top */
#define SYN_MAX_QUERY_TERMS 4
#define SYN_WORD_MAX 16 /* bytes per word slot: V <= 5e6 needs at most 4 syllables */

static const char syn_consonants[] = "bdfghklmnprstvz";
static const char syn_vowels[] = "aeiou";
#define SYN_N_CONS 15u
#define SYN_N_VOW 5u
#define SYN_N_SYLL (SYN_N_CONS * SYN_N_VOW)

idx_synth_opts idx_synth_opts_default(void)
{
    idx_synth_opts o = {0};
    o.seed = 1;
    o.n_docs = 10000;
    o.n_queries = 200;
    o.words_per_topic = 100;
    o.doc_len_mean = 200;
    o.zipf_s = 1.0;
    return o;
}

/* Walker's alias method (Walker, ACM TOMS 1977; Vose's O(n) construction, IEEE TSE 1991):
 * one 64-bit draw per sample, the high half picks a column, the low half the coin. */
typedef struct syn_alias {
    uint32_t n;
    uint32_t *thresh; /* coin threshold scaled to 2^32 */
    uint32_t *alias;
} syn_alias;

static void alias_fini(syn_alias *a)
{
    free(a->thresh);
    free(a->alias);
    a->thresh = a->alias = NULL;
}

static int alias_init(syn_alias *a, const double *w, uint32_t n, cw_err *err)
{
    a->n = n;
    a->thresh = malloc(sizeof(uint32_t) * n);
    a->alias = malloc(sizeof(uint32_t) * n);
    double *p = malloc(sizeof(double) * n);
    uint32_t *small = malloc(sizeof(uint32_t) * n);
    uint32_t *large = malloc(sizeof(uint32_t) * n);
    if (!a->thresh || !a->alias || !p || !small || !large) {
        free(p);
        free(small);
        free(large);
        alias_fini(a);
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory for a %u-entry table", n);
    }
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += w[i];
    }
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        p[i] = w[i] / sum * n;
        a->alias[i] = i;
        if (p[i] < 1.0) {
            small[ns++] = i;
        } else {
            large[nl++] = i;
        }
    }
    while (ns > 0 && nl > 0) {
        uint32_t s = small[--ns], l = large[nl - 1];
        a->thresh[s] = (uint32_t)fmin(p[s] * 4294967296.0, 4294967295.0);
        a->alias[s] = l;
        p[l] -= 1.0 - p[s];
        if (p[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    /* Leftovers are 1 up to rounding: always keep their own column. */
    while (nl > 0) {
        a->thresh[large[--nl]] = UINT32_MAX;
    }
    while (ns > 0) {
        a->thresh[small[--ns]] = UINT32_MAX;
    }
    free(p);
    free(small);
    free(large);
    return CW_OK;
}

static inline uint32_t alias_draw(const syn_alias *a, cw_rng *rng)
{
    uint64_t x = cw_rng_u64(rng);
    uint32_t col = (uint32_t)(((x >> 32) * (uint64_t)a->n) >> 32);
    return (uint32_t)x < a->thresh[col] ? col : a->alias[col];
}

/* Word of background rank r: 2 syllables for the 75^2 commonest ranks, then 3, ...
 * Within a length class the index is scrambled by an affine bijection (the multiplier
 * 4099 is coprime with 3 and 5, hence with every 75^m) so neighbours in rank do not look
 * alike. Returns the length written into buf (no NUL). */
static size_t word_spell(uint32_t r, char *buf)
{
    uint64_t cls = (uint64_t)SYN_N_SYLL * SYN_N_SYLL;
    unsigned n_syll = 2;
    uint64_t idx = r;
    while (idx >= cls) {
        idx -= cls;
        cls *= SYN_N_SYLL;
        n_syll++;
    }
    idx = (idx * 4099u + 1234567u) % cls;
    size_t len = 0;
    for (unsigned i = 0; i < n_syll; i++) {
        unsigned s = (unsigned)(idx % SYN_N_SYLL);
        idx /= SYN_N_SYLL;
        buf[len++] = syn_consonants[s / SYN_N_VOW];
        buf[len++] = syn_vowels[s % SYN_N_VOW];
    }
    return len;
}

typedef struct syn_qrel {
    uint32_t q;     /* query index, 0-based */
    uint32_t grade; /* 1..3 */
    uint64_t doc;   /* document index, 0-based */
} syn_qrel;

typedef struct syn_state {
    idx_synth_opts o;
    uint32_t n_topics;
    uint32_t vocab;
    char *words;       /* vocab * SYN_WORD_MAX bytes */
    uint8_t *word_len; /* per rank */
    syn_alias background;
    syn_alias in_topic;         /* over positions 0..words_per_topic-1 */
    syn_alias topic_pop;        /* over topics */
    syn_alias topic_vocab;      /* over ranks SYN_NEUTRAL_RANKS..vocab-1 */
    uint32_t *topic_words;      /* n_topics * words_per_topic background ranks */
    uint32_t *query_topic;      /* per query */
    uint32_t *q_by_topic_start; /* n_topics + 1 offsets into q_by_topic */
    uint32_t *q_by_topic;
    syn_qrel *qrels;
    uint64_t n_qrels, cap_qrels;
    char *out; /* output buffer */
    size_t out_len, out_cap;
    FILE *f;
    uint64_t n_tokens;
} syn_state;

static void state_fini(syn_state *st)
{
    free(st->words);
    free(st->word_len);
    alias_fini(&st->background);
    alias_fini(&st->in_topic);
    alias_fini(&st->topic_pop);
    alias_fini(&st->topic_vocab);
    free(st->topic_words);
    free(st->query_topic);
    free(st->q_by_topic_start);
    free(st->q_by_topic);
    free(st->qrels);
    free(st->out);
}

static int zipf_alias(syn_alias *a, uint32_t n, double q, double s, cw_err *err)
{
    double *w = malloc(sizeof(double) * n);
    if (!w) {
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        w[i] = pow((double)i + q, -s);
    }
    int rc = alias_init(a, w, n, err);
    free(w);
    return rc;
}

static int setup(syn_state *st, cw_err *err)
{
    const idx_synth_opts *o = &st->o;
    st->vocab = o->vocab_size;
    if (st->vocab == 0) {
        double v = 20.0 * sqrt((double)o->n_docs * o->doc_len_mean);
        st->vocab = (uint32_t)fmin(fmax(v, 5000.0), 1e6);
    }
    st->n_topics = o->n_topics;
    if (st->n_topics == 0) {
        st->n_topics = (uint32_t)CW_MIN(CW_MAX(o->n_docs / 50, 8), 20000);
    }
    if (st->vocab < SYN_NEUTRAL_RANKS + o->words_per_topic) {
        return cw_err_set(err, CW_EINVAL, "synth: vocabulary %u too small for %u words per topic",
                          st->vocab, o->words_per_topic);
    }
    st->words = malloc((size_t)st->vocab * SYN_WORD_MAX);
    st->word_len = malloc(st->vocab);
    if (!st->words || !st->word_len) {
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory for %u words", st->vocab);
    }
    for (uint32_t r = 0; r < st->vocab; r++) {
        st->word_len[r] = (uint8_t)word_spell(r, st->words + (size_t)r * SYN_WORD_MAX);
    }
    /* Zipf-Mandelbrot with q = 2.7, a common fit to English word frequencies. */
    int rc = zipf_alias(&st->background, st->vocab, 2.7, o->zipf_s, err);
    if (rc == CW_OK) {
        rc = zipf_alias(&st->in_topic, o->words_per_topic, 1.0, 1.0, err);
    }
    if (rc == CW_OK) {
        rc = zipf_alias(&st->topic_pop, st->n_topics, 1.0, 0.5, err);
    }
    if (rc == CW_OK) {
        /* Topic words favour commoner words ((r + 2.7)^-0.5), so topics share vocabulary
         * and query words also occur off topic, as in real text. */
        rc = zipf_alias(&st->topic_vocab, st->vocab - SYN_NEUTRAL_RANKS, 2.7 + SYN_NEUTRAL_RANKS,
                        SYN_TOPIC_VOCAB_S, err);
    }
    if (rc != CW_OK) {
        return rc;
    }
    /* Topics and query topics come from stream 0, documents from streams 1..n_docs,
     * query words from the last stream. */
    cw_rng rng;
    cw_rng_seed_stream(&rng, o->seed, 0);
    size_t n_tw = (size_t)st->n_topics * o->words_per_topic;
    st->topic_words = malloc(sizeof(uint32_t) * n_tw);
    st->query_topic = malloc(sizeof(uint32_t) * o->n_queries);
    st->q_by_topic_start = calloc((size_t)st->n_topics + 1, sizeof(uint32_t));
    st->q_by_topic = malloc(sizeof(uint32_t) * o->n_queries);
    if (!st->topic_words || !st->query_topic || !st->q_by_topic_start || !st->q_by_topic) {
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory for %u topics", st->n_topics);
    }
    for (uint32_t t = 0; t < st->n_topics; t++) {
        uint32_t *tw = st->topic_words + (size_t)t * o->words_per_topic;
        for (uint32_t j = 0; j < o->words_per_topic; j++) {
            uint32_t w;
            bool dup;
            do {
                w = SYN_NEUTRAL_RANKS + alias_draw(&st->topic_vocab, &rng);
                dup = false;
                for (uint32_t i = 0; i < j; i++) {
                    dup |= tw[i] == w;
                }
            } while (dup);
            tw[j] = w;
        }
    }
    for (uint32_t q = 0; q < o->n_queries; q++) {
        st->query_topic[q] = alias_draw(&st->topic_pop, &rng);
        st->q_by_topic_start[st->query_topic[q] + 1]++;
    }
    for (uint32_t t = 0; t < st->n_topics; t++) {
        st->q_by_topic_start[t + 1] += st->q_by_topic_start[t];
    }
    uint32_t *fill = calloc(st->n_topics, sizeof(uint32_t));
    if (!fill) {
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory");
    }
    for (uint32_t q = 0; q < o->n_queries; q++) {
        uint32_t t = st->query_topic[q];
        st->q_by_topic[st->q_by_topic_start[t] + fill[t]++] = q;
    }
    free(fill);
    st->out_cap = 1 << 20;
    st->out = malloc(st->out_cap);
    if (!st->out) {
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory");
    }
    return CW_OK;
}

static int out_reserve(syn_state *st, size_t n, cw_err *err)
{
    if (st->out_len + n <= st->out_cap) {
        return CW_OK;
    }
    size_t cap = st->out_cap;
    while (cap < st->out_len + n) {
        cap *= 2;
    }
    char *p = realloc(st->out, cap);
    if (!p) {
        return cw_err_set(err, CW_ENOMEM, "synth: out of memory for a %zu-byte document", cap);
    }
    st->out = p;
    st->out_cap = cap;
    return CW_OK;
}

static int out_flush(syn_state *st, const char *path, cw_err *err)
{
    if (st->out_len && fwrite(st->out, 1, st->out_len, st->f) != st->out_len) {
        return cw_err_set(err, CW_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    st->out_len = 0;
    return CW_OK;
}

static inline void put_word(syn_state *st, uint32_t r, bool capital)
{
    size_t n = st->word_len[r];
    char *dst = st->out + st->out_len;
    memcpy(dst, st->words + (size_t)r * SYN_WORD_MAX, SYN_WORD_MAX);
    if (capital) {
        dst[0] = (char)(dst[0] - 'a' + 'A');
    }
    st->out_len += n;
}

typedef struct syn_doc {
    uint32_t n_topics; /* relevant topics; topic[n_topics] is the distractor */
    uint32_t topic[SYN_MAX_DOC_TOPICS + 1];
    double weight[SYN_MAX_DOC_TOPICS + 1]; /* shares of the topical tokens, sum 1 */
    double focus;
} syn_doc;

static inline uint32_t draw_token(const syn_state *st, const syn_doc *d, double focus, cw_rng *rng)
{
    double u = cw_rng_uniform(rng);
    if (u >= focus) {
        return alias_draw(&st->background, rng);
    }
    /* Reuse u (uniform on [0, focus)) to pick the topic by its mixture weight. */
    double acc = 0, v = u / focus;
    uint32_t t = d->topic[d->n_topics];
    for (uint32_t i = 0; i < d->n_topics; i++) {
        acc += d->weight[i];
        if (v < acc) {
            t = d->topic[i];
            break;
        }
    }
    return st->topic_words[(size_t)t * st->o.words_per_topic + alias_draw(&st->in_topic, rng)];
}

static int add_qrels(syn_state *st, uint64_t doc, const syn_doc *d, cw_err *err)
{
    for (uint32_t i = 0; i < d->n_topics; i++) {
        uint32_t t = d->topic[i];
        double r = d->weight[i] * d->focus / SYN_FOCUS_MAX;
        uint32_t grade = r >= 0.7 ? 3 : r >= 0.45 ? 2 : r >= 0.2 ? 1 : 0;
        if (grade == 0) {
            continue;
        }
        for (uint32_t k = st->q_by_topic_start[t]; k < st->q_by_topic_start[t + 1]; k++) {
            if (st->n_qrels == st->cap_qrels) {
                if (st->cap_qrels >= IDX_SYNTH_MAX_QRELS) {
                    return cw_err_set(err, CW_ELIMIT,
                                      "synth: more than %llu judged pairs; use more topics "
                                      "(--topics) or fewer queries",
                                      (unsigned long long)IDX_SYNTH_MAX_QRELS);
                }
                uint64_t cap = st->cap_qrels ? st->cap_qrels * 2 : 4096;
                syn_qrel *p = realloc(st->qrels, sizeof(syn_qrel) * cap);
                if (!p) {
                    return cw_err_set(err, CW_ENOMEM, "synth: out of memory for qrels");
                }
                st->qrels = p;
                st->cap_qrels = cap;
            }
            st->qrels[st->n_qrels++] = (syn_qrel){st->q_by_topic[k], grade, doc};
        }
    }
    return CW_OK;
}

static int write_doc(syn_state *st, uint64_t i, cw_err *err)
{
    const idx_synth_opts *o = &st->o;
    cw_rng rng;
    cw_rng_seed_stream(&rng, o->seed, i + 1);
    syn_doc d = {0};
    double u = cw_rng_uniform(&rng);
    d.n_topics = u < 0.55 ? 1 : u < 0.85 ? 2 : 3;
    d.n_topics = CW_MIN(d.n_topics, st->n_topics - 1);
    double sum = 0;
    for (uint32_t k = 0; k <= d.n_topics; k++) {
        uint32_t t;
        bool dup;
        do {
            t = alias_draw(&st->topic_pop, &rng);
            dup = false;
            for (uint32_t j = 0; j < k; j++) {
                dup |= d.topic[j] == t;
            }
        } while (dup);
        d.topic[k] = t;
        /* Normalised Exp(1) draws = a flat Dirichlet sample. */
        if (k < d.n_topics) {
            d.weight[k] = d.n_topics == 1 ? 1.0 : -log(cw_rng_uniform(&rng));
            sum += d.weight[k];
        }
    }
    /* The distractor: passing mentions of an unrelated topic, never relevant. */
    double distract = SYN_DISTRACT_MAX * cw_rng_uniform(&rng);
    for (uint32_t k = 0; k < d.n_topics; k++) {
        d.weight[k] *= (1.0 - distract) / sum;
    }
    d.weight[d.n_topics] = distract;
    d.focus = SYN_FOCUS_MIN + (SYN_FOCUS_MAX - SYN_FOCUS_MIN) * cw_rng_uniform(&rng);
    /* LogNormal(mu, sigma) with mu = -sigma^2/2 has mean 1. */
    double z = cw_rng_normal(&rng);
    double len_d = o->doc_len_mean * exp(SYN_LEN_SIGMA * z - 0.5 * SYN_LEN_SIGMA * SYN_LEN_SIGMA);
    uint32_t body_len = (uint32_t)fmax(1.0, fmin(round(len_d), 20.0 * o->doc_len_mean));
    uint32_t title_len = 3 + (uint32_t)cw_rng_below(&rng, 6);

    size_t need = 64 + (size_t)(body_len + title_len) * (SYN_WORD_MAX + 3);
    int rc = out_reserve(st, need, err);
    if (rc != CW_OK) {
        return rc;
    }
    st->out_len += (size_t)sprintf(st->out + st->out_len, "{\"id\":\"d%llu\",\"title\":\"",
                                   (unsigned long long)(i + 1));
    double title_focus = fmin(1.0, d.focus + SYN_TITLE_EXTRA_FOCUS);
    for (uint32_t k = 0; k < title_len; k++) {
        if (k) {
            st->out[st->out_len++] = ' ';
        }
        put_word(st, draw_token(st, &d, title_focus, &rng), k == 0);
    }
    memcpy(st->out + st->out_len, "\",\"text\":\"", 10);
    st->out_len += 10;
    uint32_t left_in_sentence = 0;
    for (uint32_t k = 0; k < body_len; k++) {
        bool start = left_in_sentence == 0;
        if (start) {
            left_in_sentence = 6 + (uint32_t)cw_rng_below(&rng, 13);
        }
        if (k) {
            st->out[st->out_len++] = ' ';
        }
        put_word(st, draw_token(st, &d, d.focus, &rng), start);
        if (--left_in_sentence == 0 || k + 1 == body_len) {
            st->out[st->out_len++] = '.';
            left_in_sentence = 0;
        }
    }
    memcpy(st->out + st->out_len, "\"}\n", 3);
    st->out_len += 3;
    st->n_tokens += body_len + title_len;
    return add_qrels(st, i, &d, err);
}

static int cmp_qrel(const void *a, const void *b)
{
    const syn_qrel *x = a, *y = b;
    if (x->q != y->q) {
        return x->q < y->q ? -1 : 1;
    }
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

static int join_path(char *buf, size_t n, const char *dir, const char *name, cw_err *err)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) {
        return cw_err_set(err, CW_EINVAL, "synth: path too long: %s/%s", dir, name);
    }
    return CW_OK;
}

/* Opens path + ".tmp" for writing; finish_file renames it over path. */
static int open_tmp(syn_state *st, const char *path, cw_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    st->f = fopen(tmp, "wb");
    if (!st->f) {
        return cw_err_set(err, CW_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    return CW_OK;
}

static int finish_file(syn_state *st, const char *path, bool ok, cw_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = CW_OK;
    if (ok) {
        rc = out_flush(st, path, err);
    }
    if (fclose(st->f) != 0 && ok && rc == CW_OK) {
        rc = cw_err_set(err, CW_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    st->f = NULL;
    if (ok && rc == CW_OK && rename(tmp, path) != 0) {
        rc = cw_err_set(err, CW_EIO, "%s: rename failed: %s", path, strerror(errno));
    }
    if (!ok || rc != CW_OK) {
        unlink(tmp);
    }
    st->out_len = 0;
    return rc;
}

static int write_queries(syn_state *st, const char *path, cw_err *err)
{
    int rc = open_tmp(st, path, err);
    if (rc != CW_OK) {
        return rc;
    }
    const idx_synth_opts *o = &st->o;
    cw_rng rng;
    /* Queries use the last stream so adding documents never changes them. */
    cw_rng_seed_stream(&rng, o->seed, UINT64_MAX);
    for (uint32_t q = 0; q < o->n_queries && rc == CW_OK; q++) {
        rc = out_reserve(st, 32 + SYN_MAX_QUERY_TERMS * (SYN_WORD_MAX + 1), err);
        if (rc != CW_OK) {
            break;
        }
        const uint32_t *tw = st->topic_words + (size_t)st->query_topic[q] * o->words_per_topic;
        uint32_t n = 2 + (uint32_t)cw_rng_below(&rng, SYN_MAX_QUERY_TERMS - 1);
        n = CW_MIN(n, o->words_per_topic);
        uint32_t pos[SYN_MAX_QUERY_TERMS];
        st->out_len += (size_t)sprintf(st->out + st->out_len, "%u\t", q + 1);
        for (uint32_t k = 0; k < n; k++) {
            bool dup;
            do {
                pos[k] = alias_draw(&st->in_topic, &rng);
                dup = false;
                for (uint32_t j = 0; j < k; j++) {
                    dup |= pos[j] == pos[k];
                }
            } while (dup);
            if (k) {
                st->out[st->out_len++] = ' ';
            }
            /* Users also type general words: the first term is always on topic, later
             * ones are general (drawn like topic words) with probability SYN_QUERY_NOISE. */
            bool general = k > 0 && cw_rng_uniform(&rng) < SYN_QUERY_NOISE;
            uint32_t w =
                general ? SYN_NEUTRAL_RANKS + alias_draw(&st->topic_vocab, &rng) : tw[pos[k]];
            put_word(st, w, false);
        }
        st->out[st->out_len++] = '\n';
        if (st->out_len > (1u << 19)) {
            rc = out_flush(st, path, err);
        }
    }
    int rc2 = finish_file(st, path, rc == CW_OK, err);
    return rc != CW_OK ? rc : rc2;
}

static int write_qrels(syn_state *st, const char *path, idx_synth_stats *stats, cw_err *err)
{
    qsort(st->qrels, st->n_qrels, sizeof(syn_qrel), cmp_qrel);
    int rc = open_tmp(st, path, err);
    if (rc != CW_OK) {
        return rc;
    }
    uint32_t judged = 0;
    for (uint64_t i = 0; i < st->n_qrels && rc == CW_OK; i++) {
        const syn_qrel *r = &st->qrels[i];
        judged += i == 0 || st->qrels[i - 1].q != r->q;
        rc = out_reserve(st, 64, err);
        if (rc == CW_OK) {
            st->out_len += (size_t)sprintf(st->out + st->out_len, "%u 0 d%llu %u\n", r->q + 1,
                                           (unsigned long long)(r->doc + 1), r->grade);
            if (st->out_len > (1u << 19)) {
                rc = out_flush(st, path, err);
            }
        }
    }
    stats->n_judged_queries = judged;
    stats->n_qrels = st->n_qrels;
    int rc2 = finish_file(st, path, rc == CW_OK, err);
    return rc != CW_OK ? rc : rc2;
}

static int write_corpus(syn_state *st, const char *path, idx_synth_stats *stats, cw_err *err)
{
    int rc = open_tmp(st, path, err);
    if (rc != CW_OK) {
        return rc;
    }
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < st->o.n_docs && rc == CW_OK; i++) {
        rc = write_doc(st, i, err);
        if (rc == CW_OK && st->out_len > (1u << 19)) {
            bytes += st->out_len;
            rc = out_flush(st, path, err);
        }
        if ((i & 4095) == 4095) {
            if (cw_interrupted()) {
                rc = cw_err_set(err, CW_EINTR, "synth: interrupted after %llu documents",
                                (unsigned long long)(i + 1));
            }
            cw_progress_report(&st->o.progress, "synth", i + 1, st->o.n_docs);
        }
    }
    bytes += st->out_len;
    if (rc == CW_OK) {
        cw_progress_report(&st->o.progress, "synth", st->o.n_docs, st->o.n_docs);
    }
    stats->corpus_bytes = bytes;
    int rc2 = finish_file(st, path, rc == CW_OK, err);
    return rc != CW_OK ? rc : rc2;
}

int idx_synth_write(const idx_synth_opts *opts, const char *out_dir, idx_synth_stats *stats,
                    cw_err *err)
{
    if (opts->n_docs < 1 || opts->n_docs > IDX_SYNTH_MAX_DOCS) {
        return cw_err_set(err, CW_EINVAL, "synth: documents must be in [1, %llu]",
                          (unsigned long long)IDX_SYNTH_MAX_DOCS);
    }
    if (opts->n_queries < 1 || opts->n_queries > IDX_SYNTH_MAX_QUERIES) {
        return cw_err_set(err, CW_EINVAL, "synth: queries must be in [1, %u]",
                          IDX_SYNTH_MAX_QUERIES);
    }
    if (opts->doc_len_mean < 1 || opts->doc_len_mean > IDX_SYNTH_MAX_DOC_LEN) {
        return cw_err_set(err, CW_EINVAL, "synth: mean document length must be in [1, %u]",
                          IDX_SYNTH_MAX_DOC_LEN);
    }
    if (opts->words_per_topic < SYN_MAX_QUERY_TERMS || opts->words_per_topic > 100000) {
        return cw_err_set(err, CW_EINVAL, "synth: words per topic must be in [%u, 100000]",
                          SYN_MAX_QUERY_TERMS);
    }
    if (opts->n_topics == 1) {
        return cw_err_set(err, CW_EINVAL,
                          "synth: at least 2 topics (one relevant, one distractor)");
    }
    if (opts->vocab_size > IDX_SYNTH_MAX_VOCAB || opts->n_topics > 1000000) {
        return cw_err_set(err, CW_EINVAL, "synth: vocabulary <= %u and topics <= 1000000",
                          IDX_SYNTH_MAX_VOCAB);
    }
    if (!(opts->zipf_s > 0 && opts->zipf_s <= 4)) {
        return cw_err_set(err, CW_EINVAL, "synth: Zipf exponent must be in (0, 4]");
    }
    uint64_t t0 = cw_now_ns();
    syn_state st = {0};
    st.o = *opts;
    idx_synth_stats s = {0};
    char path[4096];
    int rc = cw_mkdir_p(out_dir, err);
    if (rc == CW_OK) {
        rc = setup(&st, err);
    }
    if (rc == CW_OK) {
        rc = join_path(path, sizeof path, out_dir, "queries.tsv", err);
    }
    if (rc == CW_OK) {
        rc = write_queries(&st, path, err);
    }
    if (rc == CW_OK) {
        rc = join_path(path, sizeof path, out_dir, "corpus.jsonl", err);
    }
    if (rc == CW_OK) {
        rc = write_corpus(&st, path, &s, err);
    }
    if (rc == CW_OK) {
        rc = join_path(path, sizeof path, out_dir, "qrels.txt", err);
    }
    if (rc == CW_OK) {
        rc = write_qrels(&st, path, &s, err);
    }
    if (rc == CW_OK && stats) {
        s.n_docs = opts->n_docs;
        s.n_queries = opts->n_queries;
        s.n_tokens = st.n_tokens;
        s.n_topics = st.n_topics;
        s.vocab_size = st.vocab;
        s.seconds = (double)(cw_now_ns() - t0) / 1e9;
        *stats = s;
    }
    state_fini(&st);
    return rc;
}
