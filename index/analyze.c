/* index/analyze.c: text analysis for documents and queries (METHODS.md section 2,
 * "causeway reference"): NFKC + case folding (utf8proc), tokens = maximal runs of
 * Unicode letters and digits, the 33 Lucene English stopwords, Snowball stemming.
 * Speed: ASCII is lower-cased by hand, and a cache maps each surface form to its
 * stemmed term, so stemming runs once per distinct word, not once per token. */
#include "config.h"

#include <libstemmer.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "index/index_int.h"

/* Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, identical to data/stopwords_en.txt
 * (a unit test compares them). */
const char *const idx_stopwords_en[] = {
    "a",    "an",    "and",   "are",  "as",   "at", "be",  "but",  "by",   "for",  "if",  "in",
    "into", "is",    "it",    "no",   "not",  "of", "on",  "or",   "such", "that", "the", "their",
    "then", "there", "these", "they", "this", "to", "was", "will", "with", NULL,
};

bool idx_is_stopword(const char *s, size_t n)
{
    if (n > 5) {
        return false;
    }
    for (size_t i = 0; idx_stopwords_en[i]; i++) {
        const char *w = idx_stopwords_en[i];
        if (strlen(w) == n && memcmp(w, s, n) == 0) {
            return true;
        }
    }
    return false;
}

/* Cache entry: surface form -> analysis. Keys and terms live in `pool`. */
typedef struct cache_slot {
    uint64_t hash;
    uint64_t prefix; /* first 8 key bytes, zero-padded: short keys compare in one load */
    uint32_t key_off;
    uint32_t term_off; /* STOP_OFF for a stopword */
    uint16_t key_len;  /* 0 = empty slot */
    uint16_t term_len; /* may be 0: porter stems "s" (of "prandtl's") to "", and the
                          reference figures index that empty term */
    int32_t aux;
    uint64_t term_hash; /* cw_hash64(term, term_len, 0), handed to callers (idx_token) */
} cache_slot;           /* 40 bytes */

#define STOP_OFF UINT32_MAX
#define MAX_CACHED_KEY 4096u /* longer non-ASCII runs are analysed without the cache */

#define CACHE_MAX_ENTRIES (1u << 20) /* reset when full: at most ~64 MiB of slots + keys */
#define MAX_TOKEN_BYTES 256u         /* longer runs are cut (a term is never this long) */
#define BATCH 64u                    /* tokens scanned ahead of their cache lookups */
#define DIRECT_MAX_SLOTS (1u << 15)  /* up to 1.25 MiB of slots: no batching */

struct idx_analyzer {
    idx_analyzer_opts opts;
    struct sb_stemmer *stemmer;
    cache_slot *slots;
    size_t cap; /* power of two */
    size_t n;
    size_t cache_max;  /* entries before a reset (CACHE_MAX_ENTRIES; tests lower it) */
    size_t direct_max; /* slots up to which tokens skip batching (DIRECT_MAX_SLOTS) */
    char *pool;
    size_t pool_len, pool_cap;
    char tok[MAX_TOKEN_BYTES * 4]; /* lower-cased ASCII token / scratch */
    /* A batch of scanned tokens whose cache slots are prefetched before lookup: rare
     * words miss the caches, and overlapping those misses is most of the speed. */
    size_t pend_b[BATCH], pend_e[BATCH];
    uint32_t pend_koff[BATCH], pend_klen[BATCH];
    uint64_t pend_hash[BATCH], pend_prefix[BATCH];
    bool pend_ascii[BATCH];
    /* Each key is followed by 8 zero bytes, so key_hash_padded reads whole words. */
    char keys[BATCH * (MAX_TOKEN_BYTES + 8) + 8];
    /* fold[c]: the lower-cased byte for [0-9A-Za-z], 0 for other ASCII, 1 for bytes >= 0x80
     * (decoded by category): the scanner's one table look-up per byte. */
    uint8_t fold[256];
    idx_term_ent tmp; /* transient entry for uncached results */
    char tmp_term[MAX_TOKEN_BYTES * 4];
};

/* 1 for [0-9a-zA-Z], 0 for other ASCII; bytes >= 0x80 handled separately. */
static const uint8_t ascii_alnum[128] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

idx_analyzer_opts idx_analyzer_opts_default(void)
{
    idx_analyzer_opts o;
    memset(&o, 0, sizeof o);
    o.stem = true;
    strcpy(o.stemmer, "porter");
    o.stopwords = true;
    return o;
}

int idx_analyzer_new(const idx_analyzer_opts *opts, idx_analyzer **out, cw_err *err)
{
    idx_analyzer_opts o = opts ? *opts : idx_analyzer_opts_default();
    if (o.stem && memchr(o.stemmer, '\0', sizeof o.stemmer) == NULL) {
        return cw_err_set(err, CW_EINVAL, "stemmer name not NUL-terminated");
    }
    if (o.stem && strcmp(o.stemmer, "porter") != 0 && strcmp(o.stemmer, "english") != 0) {
        return cw_err_set(err, CW_EINVAL, "unknown stemmer \"%s\" (porter or english)", o.stemmer);
    }
    idx_analyzer *a = calloc(1, sizeof *a);
    if (!a) {
        return cw_err_set(err, CW_ENOMEM, "analyzer: out of memory");
    }
    a->opts = o;
    a->cache_max = CACHE_MAX_ENTRIES;
    a->direct_max = DIRECT_MAX_SLOTS;
    for (int c = 0; c < 256; c++) {
        a->fold[c] = c >= 0x80 ? 1 : ascii_alnum[c] ? (uint8_t)(c | (c <= 'Z' ? 0x20 : 0)) : 0;
    }
    if (o.stem) {
        a->stemmer = sb_stemmer_new(o.stemmer, "UTF_8");
        if (!a->stemmer) {
            free(a);
            return cw_err_set(err, CW_ENOMEM, "cannot create Snowball stemmer \"%s\"", o.stemmer);
        }
    }
    a->cap = 1u << 12;
    a->slots = calloc(a->cap, sizeof *a->slots);
    a->pool_cap = 1u << 16;
    a->pool = malloc(a->pool_cap);
    if (!a->slots || !a->pool) {
        idx_analyzer_free(a);
        return cw_err_set(err, CW_ENOMEM, "analyzer: out of memory");
    }
    *out = a;
    return CW_OK;
}

void idx_analyzer_free(idx_analyzer *a)
{
    if (!a) {
        return;
    }
    if (a->stemmer) {
        sb_stemmer_delete(a->stemmer);
    }
    free(a->slots);
    free(a->pool);
    free(a);
}

/* Inline multiply-xorshift hash (the splitmix64 finaliser constants) over 8-byte
 * words; also returns the zero-padded first word used as the slot's prefix. */
static inline uint64_t key_hash(const char *s, size_t n, uint64_t *prefix)
{
    uint64_t h = (uint64_t)n * 0x9e3779b97f4a7c15ull;
    uint64_t w = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        if (i == 0) {
            *prefix = w;
        }
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, s + i, n - i);
    if (i == 0) {
        *prefix = w;
    }
    h = (h ^ w) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* key_hash of a key followed by at least 8 zero bytes: the same value without the
 * tail's variable-length copy. */
static inline uint64_t key_hash_padded(const char *s, size_t n, uint64_t *prefix)
{
    uint64_t h = (uint64_t)n * 0x9e3779b97f4a7c15ull;
    uint64_t w;
    memcpy(prefix, s, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static inline bool slot_matches(const idx_analyzer *a, const cache_slot *s, uint64_t h,
                                uint64_t prefix, const char *key, size_t n)
{
    return s->hash == h && s->key_len == n && s->prefix == prefix &&
           (n <= 8 || memcmp(a->pool + s->key_off + 8, key + 8, n - 8) == 0);
}

void idx_analyzer_set_cache_limit(idx_analyzer *a, size_t max_entries)
{
    a->cache_max = max_entries > 0 ? max_entries : 1;
}

void idx_analyzer_set_direct_slots(idx_analyzer *a, size_t max_slots)
{
    a->direct_max = max_slots;
}

static void cache_reset(idx_analyzer *a)
{
    memset(a->slots, 0, a->cap * sizeof *a->slots);
    a->n = 0;
    a->pool_len = 0;
}

static int pool_add(idx_analyzer *a, const char *s, size_t n, uint32_t *off)
{
    if (a->pool_len + n > a->pool_cap) {
        size_t cap = a->pool_cap;
        while (a->pool_len + n > cap) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return CW_ELIMIT;
        }
        char *p = realloc(a->pool, cap);
        if (!p) {
            return CW_ENOMEM;
        }
        a->pool = p;
        a->pool_cap = cap;
    }
    memcpy(a->pool + a->pool_len, s, n);
    *off = (uint32_t)a->pool_len;
    a->pool_len += n;
    return CW_OK;
}

static int cache_grow(idx_analyzer *a)
{
    size_t cap = a->cap * 2;
    cache_slot *s = calloc(cap, sizeof *s);
    if (!s) {
        return CW_ENOMEM;
    }
    for (size_t i = 0; i < a->cap; i++) {
        if (a->slots[i].key_len) {
            size_t j = a->slots[i].hash & (cap - 1);
            while (s[j].key_len) {
                j = (j + 1) & (cap - 1);
            }
            s[j] = a->slots[i];
        }
    }
    free(a->slots);
    a->slots = s;
    a->cap = cap;
    return CW_OK;
}

/* Normalised (folded) term -> stopword check + stem into *term. */
static void finish_term(idx_analyzer *a, const char *norm, size_t n, const char **term,
                        size_t *term_len, uint8_t *kind)
{
    if (a->opts.stopwords && idx_is_stopword(norm, n)) {
        *kind = IDX_TERM_STOP;
        *term = norm;
        *term_len = 0;
        return;
    }
    *kind = IDX_TERM_ONE;
    if (a->stemmer) {
        const sb_symbol *s = sb_stemmer_stem(a->stemmer, (const sb_symbol *)norm, (int)n);
        if (s) {
            *term = (const char *)s;
            *term_len = (size_t)sb_stemmer_length(a->stemmer);
            return;
        }
    }
    *term = norm;
    *term_len = n;
}

/* Looks up or inserts the surface form key[0..n) (n <= MAX_CACHED_KEY); norm is its
 * normalised form, used on a miss. Returns the entry or NULL on ENOMEM. */
static cache_slot *cache_get_h(idx_analyzer *a, const char *key, size_t n, uint64_t h,
                               uint64_t prefix, const char *norm, size_t norm_len)
{
    size_t mask = a->cap - 1;
    size_t j = h & mask;
    while (a->slots[j].key_len) {
        cache_slot *s = &a->slots[j];
        if (slot_matches(a, s, h, prefix, key, n)) {
            return s;
        }
        j = (j + 1) & mask;
    }
    if (a->n >= a->cache_max) {
        cache_reset(a);
        return cache_get_h(a, key, n, h, prefix, norm, norm_len);
    }
    if ((a->n + 1) * 2 > a->cap) {
        if (cache_grow(a) != CW_OK) {
            return NULL;
        }
        return cache_get_h(a, key, n, h, prefix, norm, norm_len);
    }
    const char *term;
    size_t term_len;
    uint8_t kind;
    finish_term(a, norm, norm_len, &term, &term_len, &kind);
    cache_slot s = {.hash = h,
                    .prefix = prefix,
                    .key_len = (uint16_t)n,
                    .term_len = (uint16_t)term_len,
                    .aux = -1,
                    .term_hash = cw_hash64(term, term_len, 0)};
    /* term may point into the stemmer's buffer: copy it before the key can move pool. */
    char tbuf[MAX_TOKEN_BYTES * 4];
    memcpy(tbuf, term, term_len);
    if (pool_add(a, key, n, &s.key_off) != CW_OK || pool_add(a, tbuf, term_len, &s.term_off)) {
        return NULL;
    }
    if (kind == IDX_TERM_STOP) {
        s.term_off = STOP_OFF;
    }
    a->slots[j] = s;
    a->n++;
    return &a->slots[j];
}

static cache_slot *cache_get(idx_analyzer *a, const char *key, size_t n, const char *norm,
                             size_t norm_len)
{
    uint64_t prefix = 0;
    uint64_t h = key_hash(key, n, &prefix);
    return cache_get_h(a, key, n, h, prefix, norm, norm_len);
}

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the scanner's word-at-a-time run length assumes a little-endian host"
#endif
#define SWAR_ONES 0x0101010101010101ull
#define SWAR_HIGH 0x8080808080808080ull

/* 0x80 in each byte of w that is an ASCII letter or digit, 0 elsewhere: byte-wise range
 * tests on the low 7 bits, whose sums never carry into the next byte (Warren, Hacker's
 * Delight, 2nd ed., section 6-1, "find first byte in a range"), masked by the bytes'
 * high bit (non-ASCII bytes are not alnum here). Assumes a little-endian host. */
static inline uint64_t swar_alnum(uint64_t w)
{
    uint64_t x = w & ~SWAR_HIGH;
    uint64_t l = x | (0x20 * SWAR_ONES); /* ASCII letters to lower case */
    uint64_t letter = (l + (0x80 - 'a') * SWAR_ONES) & ~(l + (0x7f - 'z') * SWAR_ONES);
    uint64_t digit = (x + (0x80 - '0') * SWAR_ONES) & ~(x + (0x7f - '9') * SWAR_ONES);
    return (letter | digit) & ~w & SWAR_HIGH;
}

static inline bool cp_is_alnum(utf8proc_int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return true;
    default: return false;
    }
}

static inline bool cp_is_mark(utf8proc_int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

/* Decodes one code point of already validated UTF-8 at s (n bytes left). */
static inline utf8proc_int32_t decode_cp(const uint8_t *s, size_t n, size_t *used)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate(s, (utf8proc_ssize_t)n, &cp);
    if (k <= 0) {
        *used = 1;
        return -1;
    }
    *used = (size_t)k;
    return cp;
}

static int emit_entry(idx_analyzer *a, cache_slot *s, idx_term_fn fn, void *ctx, size_t b, size_t e)
{
    if (s->term_off == STOP_OFF) {
        return CW_OK;
    }
    idx_term_ent ent = {a->pool + s->term_off, s->term_len, s->aux, IDX_TERM_ONE, s->term_hash};
    int rc = fn(ctx, &ent, b, e);
    s->aux = ent.aux;
    return rc;
}

/* A token containing non-ASCII: NFKC + case fold the run, split the result again on
 * non-alphanumerics (NFKC may produce punctuation, e.g. the fraction slash of U+00BD),
 * then stopwords and stemming per piece. All pieces carry the run's byte range. */
static int slow_token(idx_analyzer *a, const char *text, size_t b, size_t e, idx_term_fn fn,
                      void *ctx, cw_err *err)
{
    size_t n = e - b;
    /* The cache key is the raw surface form: it contains a byte >= 0x80, so it never
     * collides with the lower-cased ASCII keys of the fast path. */
    if (n <= MAX_CACHED_KEY) {
        uint64_t prefix = 0;
        uint64_t h = key_hash(text + b, n, &prefix);
        size_t j = h & (a->cap - 1);
        while (a->slots[j].key_len) {
            cache_slot *s = &a->slots[j];
            if (slot_matches(a, s, h, prefix, text + b, n)) {
                return emit_entry(a, s, fn, ctx, b, e);
            }
            j = (j + 1) & (a->cap - 1);
        }
    }
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t nl =
        utf8proc_map((const utf8proc_uint8_t *)text + b, (utf8proc_ssize_t)n, &norm,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
    if (nl < 0) {
        return cw_err_set(err, CW_EPARSE, "byte %zu: cannot normalise: %s", b, utf8proc_errmsg(nl));
    }
    /* Split into pieces of letters/digits (marks continue a piece). */
    size_t pieces = 0, i = 0;
    size_t pb[64], pe[64];
    while (i < (size_t)nl && pieces < 64) {
        size_t used;
        utf8proc_int32_t cp = decode_cp(norm + i, (size_t)nl - i, &used);
        if (!cp_is_alnum(cp)) {
            i += used;
            continue;
        }
        size_t start = i;
        i += used;
        while (i < (size_t)nl) {
            cp = decode_cp(norm + i, (size_t)nl - i, &used);
            if (!cp_is_alnum(cp) && !cp_is_mark(cp)) {
                break;
            }
            i += used;
        }
        size_t end = CW_MIN(i, start + MAX_TOKEN_BYTES);
        while (end > start && end < i && (norm[end] & 0xC0) == 0x80) {
            end--; /* cut long runs on a code point boundary: terms stay valid UTF-8 */
        }
        pb[pieces] = start;
        pe[pieces] = end;
        pieces++;
    }
    int rc = CW_OK;
    if (pieces == 1 && n <= MAX_CACHED_KEY) {
        cache_slot *s = cache_get(a, text + b, n, (const char *)norm + pb[0], pe[0] - pb[0]);
        if (!s) {
            free(norm);
            return cw_err_set(err, CW_ENOMEM, "analyzer: out of memory");
        }
        free(norm);
        return emit_entry(a, s, fn, ctx, b, e);
    }
    for (size_t p = 0; p < pieces && rc == CW_OK; p++) {
        const char *term;
        size_t term_len;
        uint8_t kind;
        finish_term(a, (const char *)norm + pb[p], pe[p] - pb[p], &term, &term_len, &kind);
        if (kind == IDX_TERM_STOP) {
            continue;
        }
        memcpy(a->tmp_term, term, term_len);
        a->tmp = (idx_term_ent){a->tmp_term, (uint32_t)term_len, -1, kind,
                                cw_hash64(a->tmp_term, term_len, 0)};
        rc = fn(ctx, &a->tmp, b, e);
    }
    free(norm);
    return rc;
}

/* Looks up the pending batch in order and emits its terms. */
/* Emits the lower-cased ASCII token key[0..n) (hash h, prefix: key_hash_padded) found
 * at [b, e): the hit path inline (most tokens of a warm cache); a miss inserts. */
static inline int ascii_token(idx_analyzer *a, const char *key, size_t n, uint64_t h,
                              uint64_t prefix, idx_term_fn fn, void *ctx, size_t b, size_t e,
                              cw_err *err)
{
    size_t mask = a->cap - 1;
    cache_slot *slot = &a->slots[h & mask];
    while (slot->key_len && !slot_matches(a, slot, h, prefix, key, n)) {
        slot = &a->slots[(size_t)(slot - a->slots + 1) & mask];
    }
    if (!slot->key_len) {
        slot = cache_get_h(a, key, n, h, prefix, key, n);
        if (!slot) {
            return cw_err_set(err, CW_ENOMEM, "analyzer: out of memory");
        }
    }
    return emit_entry(a, slot, fn, ctx, b, e);
}

static int drain(idx_analyzer *a, const char *text, size_t n_pend, idx_term_fn fn, void *ctx,
                 cw_err *err)
{
    for (size_t t = 0; t < n_pend; t++) {
        int rc;
        if (a->pend_ascii[t]) {
            rc = ascii_token(a, a->keys + a->pend_koff[t], a->pend_klen[t], a->pend_hash[t],
                             a->pend_prefix[t], fn, ctx, a->pend_b[t], a->pend_e[t], err);
        } else {
            rc = slow_token(a, text, a->pend_b[t], a->pend_e[t], fn, ctx, err);
        }
        if (rc != CW_OK) {
            return rc;
        }
    }
    return CW_OK;
}

int idx_analyze_terms(idx_analyzer *a, const char *text, size_t len, idx_term_fn fn, void *ctx,
                      cw_err *err)
{
    size_t bad;
    if (!cw_utf8_valid(text, len, &bad)) {
        return cw_err_set(err, CW_EPARSE, "invalid UTF-8 at byte %zu", bad);
    }
    const uint8_t *s = (const uint8_t *)text;
    const uint8_t *fold = a->fold;
    /* A small cache stays in the CPU caches: each token is then looked up as soon as it
     * is scanned. A large one (index builds) takes tokens in batches whose slots are
     * prefetched first. (Both emit the same terms in the same order.) */
    bool direct = a->cap <= a->direct_max;
    size_t i = 0, n_pend = 0, key_used = 0;
    while (i < len) {
        /* Skip separators. */
        while (i < len && fold[s[i]] == 0) {
            i++;
        }
        if (i >= len) {
            break;
        }
        size_t b = i;
        bool ascii = true;
        if (s[i] >= 0x80) {
            size_t used;
            utf8proc_int32_t cp = decode_cp(s + i, len - i, &used);
            if (!cp_is_alnum(cp)) {
                i += used;
                continue;
            }
            ascii = false;
            i += used;
        }
        /* Extend the run; ASCII bytes through the table, others by category. The
         * lower-cased ASCII key goes straight into the batch's key buffer (a run that
         * turns out non-ASCII leaves harmless bytes there: its key is not used). */
        char *key = a->keys + key_used;
        size_t k = 0;
        for (;;) {
            /* Eight bytes at a time while they fit in the text and the key: the run ends
             * at the first byte that is not an ASCII letter or digit, and for those
             * bytes OR 0x20 is the fold table's lower-cased value. Bytes stored past the
             * run's end are overwritten by the next word or the key's zero padding. */
            bool ended = false; /* the word loop found the run's end */
            while (i + 8 <= len && k + 8 <= MAX_TOKEN_BYTES) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                uint64_t stop = ~swar_alnum(w) & SWAR_HIGH;
                uint64_t lower = w | (0x20 * SWAR_ONES);
                memcpy(key + k, &lower, 8);
                if (stop) {
                    size_t m = (size_t)__builtin_ctzll(stop) >> 3; /* little-endian load */
                    k += m;
                    i += m;
                    ended = true;
                    break;
                }
                k += 8;
                i += 8;
            }
            /* The text's last bytes, or a long run: copy at most the room left in the
             * key, then skip the rest of the run. */
            if (!ended) {
                size_t lim = CW_MIN(len, i + (MAX_TOKEN_BYTES - k));
                uint8_t c;
                while (i < lim && (c = fold[s[i]]) > 1) {
                    key[k++] = (char)c;
                    i++;
                }
                while (i < len && fold[s[i]] > 1) {
                    i++;
                }
            }
            if (i < len && s[i] >= 0x80) {
                size_t used;
                utf8proc_int32_t cp = decode_cp(s + i, len - i, &used);
                if (cp_is_alnum(cp) || cp_is_mark(cp)) {
                    ascii = false;
                    i += used;
                    continue;
                }
            }
            break;
        }
        if (direct) {
            int rc;
            if (ascii) {
                memset(key + k, 0, 8);
                uint64_t prefix;
                uint64_t h = key_hash_padded(key, k, &prefix);
                rc = ascii_token(a, key, k, h, prefix, fn, ctx, b, i, err);
            } else {
                rc = slow_token(a, text, b, i, fn, ctx, err);
            }
            if (rc != CW_OK) {
                return rc;
            }
            continue;
        }
        a->pend_b[n_pend] = b;
        a->pend_e[n_pend] = i;
        a->pend_ascii[n_pend] = ascii;
        if (ascii) {
            memset(key + k, 0, 8);
            uint64_t prefix;
            uint64_t h = key_hash_padded(key, k, &prefix);
            __builtin_prefetch(&a->slots[h & (a->cap - 1)]);
            a->pend_koff[n_pend] = (uint32_t)key_used;
            a->pend_klen[n_pend] = (uint32_t)k;
            a->pend_hash[n_pend] = h;
            a->pend_prefix[n_pend] = prefix;
            key_used += k + 8;
        }
        if (++n_pend == BATCH) {
            int rc = drain(a, text, n_pend, fn, ctx, err);
            if (rc != CW_OK) {
                return rc;
            }
            n_pend = key_used = 0;
        }
    }
    return drain(a, text, n_pend, fn, ctx, err);
}

typedef struct pub_ctx {
    idx_token_fn fn;
    void *ctx;
    uint32_t pos;
} pub_ctx;

static int pub_cb(void *ctx, idx_term_ent *ent, size_t b, size_t e)
{
    pub_ctx *p = ctx;
    idx_token t = {ent->term, ent->term_len, p->pos++, b, e, ent->hash};
    return p->fn(p->ctx, &t);
}

int idx_analyze(idx_analyzer *a, const char *text, size_t len, idx_token_fn fn, void *ctx,
                cw_err *err)
{
    pub_ctx p = {fn, ctx, 0};
    return idx_analyze_terms(a, text, len, pub_cb, &p, err);
}
